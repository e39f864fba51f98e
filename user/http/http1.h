/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http1: the HTTP/1.x codec of ringmeshd's L7 proxy. Owns request/response head
 * parsing (incremental, zero-copy, strict RFC 9112), the framing facts derived from
 * the head (Content-Length, Transfer-Encoding, Connection, Upgrade, Expect, Host),
 * the streaming body-framing decoder (tells how many input bytes belong to the
 * current message, never buffers the body), and the writers for a forwarded request
 * head and for locally generated replies. Pure: no I/O, no allocation.
 *
 * Parser contract (picohttpparser's): returns bytes consumed by a complete head,
 * -1 on error (code in ->err, HTTP status to answer from http_err_status()), or -2
 * when more bytes are needed. Every slice points into the caller's buffer (or into
 * static storage), so the buffer must outlive the results.
 *
 * Content-Length (RFC 9110 8.6 lets a recipient reject duplicates or replace them by
 * one value): a request may repeat the field line with the same value; it is framed by
 * that value and http_write_request() forwards exactly one "Content-Length: N", so the
 * upstream never sees the duplicate. A list in one field value ("1000,1000") is
 * refused (400): that is the form that lenient parsers read differently (atoi stops at
 * the comma, others take the last element), and AWS http-desync-guardian rates it
 * Severe. A response is refused (502) for either form: its head is relayed by the
 * engine, not by this codec's writer, so refusing is the only answer the codec can
 * guarantee, and it is nginx's and Envoy's answer too.
 *
 * Line endings: only CR LF. RFC 9112 2.2 lets a recipient accept a bare LF, but a
 * proxy that accepts what its upstream may reject (or vice versa) opens the door to
 * request smuggling, so ringmesh rejects bare LF and bare CR everywhere (head, chunk
 * lines, trailers). Up to HTTP_MAX_LEADING_CRLF empty lines before a request-line
 * are skipped (RFC 9112 2.2), and counted in the bytes consumed.
 */
#ifndef RM_HTTP1_H
#define RM_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Defaults for struct http_limits (a zero field means "use the default"). */
#define HTTP_DEF_MAX_URI (8u * 1024)   /* request-target bytes -> 414 beyond */
#define HTTP_DEF_MAX_HEAD (64u * 1024) /* whole head incl. start line -> 431 beyond */
#define HTTP_DEF_MAX_HEADERS 100u      /* field lines -> 431 beyond */
#define HTTP_DEF_MAX_CHUNK_LINE 4096u  /* chunk-size line incl. extensions -> 400 */
#define HTTP_MAX_HEAD_CAP (1u << 30)   /* larger limits are clamped: results fit an int */
#define HTTP_MAX_LEADING_CRLF 8

struct http_limits {
	size_t max_uri;	       /* request-target length */
	size_t max_head;       /* start line + field lines + final CRLF; also caps trailers */
	size_t max_headers;    /* field lines (also bounded by the caller's array) */
	size_t max_chunk_line; /* chunk-size + extensions of one chunk line */
};

/* A byte range in the caller's buffer; not NUL-terminated. */
struct http_slice {
	const char *p;
	size_t len;
};

struct http_header {
	struct http_slice name;	 /* as received (case preserved), a valid token */
	struct http_slice value; /* leading/trailing OWS removed */
};

enum http_err {
	HTTP_OK = 0,
	HTTP_E_REQUEST_LINE, /* 400: malformed request-line (spaces, missing parts) */
	HTTP_E_METHOD,	     /* 400: method is not a token */
	HTTP_E_TARGET,	     /* 400: bad request-target, or form not allowed for the method */
	HTTP_E_URI_TOO_LONG, /* 414 */
	HTTP_E_VERSION,	     /* 400: not "HTTP/" DIGIT "." DIGIT */
	HTTP_E_VERSION_UNSUPPORTED,   /* 505: well-formed but not 1.0 or 1.1 */
	HTTP_E_STATUS_LINE,	      /* (response) malformed status-line or status code */
	HTTP_E_BARE_LF,		      /* 400: line ended by LF without CR */
	HTTP_E_BARE_CR,		      /* 400: CR not followed by LF */
	HTTP_E_TOO_MANY_LEADING_CRLF, /* 400 */
	HTTP_E_HEADER_NAME,	      /* 400: empty name, non-token byte or missing colon */
	HTTP_E_HEADER_WS_COLON,	      /* 400: whitespace between field name and colon */
	HTTP_E_OBS_FOLD,	      /* 400: line folding (field line starting with SP/HTAB) */
	HTTP_E_HEADER_VALUE,	      /* 400: control byte (NUL, DEL, ...) in a field value */
	HTTP_E_HEAD_TOO_LARGE,	      /* 431 */
	HTTP_E_TOO_MANY_HEADERS,      /* 431 */
	HTTP_E_CL_INVALID,	    /* 400: Content-Length not 1*DIGIT (sign, hex, empty, overflow,
				     * or a comma-separated list, even of equal values) */
	HTTP_E_CL_CONFLICT,	    /* 400: differing Content-Length values */
	HTTP_E_CL_DUP,		    /* (response) more than one Content-Length field line */
	HTTP_E_FRAMING_LOOKALIKE,   /* 400: "Content_Length", "Transfer---Encoding", ... */
	HTTP_E_TE_INVALID,	    /* 400: Transfer-Encoding list is not a list of tokens */
	HTTP_E_TE_CHUNKED_NOT_LAST, /* 400: chunked missing, not final, or repeated */
	HTTP_E_TE_UNKNOWN,	    /* 501: a coding other than chunked (request) */
	HTTP_E_TE_HTTP10,	    /* 400: Transfer-Encoding in an HTTP/1.0 message */
	HTTP_E_CL_AND_TE,	    /* 400: both present (smuggling / response splitting) */
	HTTP_E_HOST_MISSING,	    /* 400: HTTP/1.1 request without Host */
	HTTP_E_HOST_DUP,	    /* 400: more than one Host field line */
	HTTP_E_HOST_INVALID,	    /* 400: Host value is not uri-host [":" port] */
	HTTP_E_CHUNK_SIZE,	    /* 400: chunk-size not hex, empty, or overflowing 64 bits */
	HTTP_E_CHUNK_EXT,	    /* 400: malformed chunk extension or chunk line too long */
	HTTP_E_CHUNK_DATA_END,	    /* 400: chunk data not followed by CR LF */
	HTTP_E_TRAILER,		    /* 400: malformed trailer field line */
	HTTP_E_TRAILER_TOO_LARGE,   /* 431 */
	HTTP_E__COUNT
};

/* Status the proxy answers to a client whose request failed with err (400, 414, 431,
 * 501, 505). For errors in an upstream response the proxy answers 502 instead. */
int http_err_status(enum http_err err);
/* Short human-readable reason ("Content-Length values differ"); never NULL. */
const char *http_err_str(enum http_err err);

enum http_method {
	HTTP_M_OTHER = 0, /* any other valid token; use the method slice */
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_CONNECT,
	HTTP_M_OPTIONS,
	HTTP_M_TRACE,
	HTTP_M_PATCH,
};

enum http_target_form {
	HTTP_TF_ORIGIN,	   /* "/path?query" */
	HTTP_TF_ABSOLUTE,  /* "http://authority/path?query" */
	HTTP_TF_AUTHORITY, /* "host:port" (CONNECT only) */
	HTTP_TF_ASTERISK,  /* "*" (OPTIONS only) */
};

/* How the bytes after a head are framed. */
enum http_body_kind {
	HTTP_BODY_NONE,	       /* no body: the next message starts right after the head */
	HTTP_BODY_LENGTH,      /* exactly content_length bytes */
	HTTP_BODY_CHUNKED,     /* chunked coding, ends after the last chunk and trailers */
	HTTP_BODY_UNTIL_CLOSE, /* response: everything until the upstream closes */
	HTTP_BODY_TUNNEL,      /* 101 / CONNECT 2xx: raw bytes both ways from here on */
};

/* Derived flags (request and response). */
#define HTTP_F_CONN_CLOSE (1u << 0)	 /* Connection lists "close" */
#define HTTP_F_CONN_KEEP_ALIVE (1u << 1) /* Connection lists "keep-alive" */
#define HTTP_F_CONN_UPGRADE (1u << 2)	 /* Connection lists "upgrade" */
#define HTTP_F_UPGRADE (1u << 3)	 /* an Upgrade field is present */
#define HTTP_F_EXPECT_CONTINUE (1u << 4) /* Expect: 100-continue (1.1 requests only) */
#define HTTP_F_EXPECT_OTHER (1u << 5)	 /* other expectation: the proxy may answer 417 */
#define HTTP_F_HAS_CL (1u << 6)		 /* Content-Length present */
#define HTTP_F_HAS_TE (1u << 7)		 /* Transfer-Encoding present */
#define HTTP_F_KEEP_ALIVE (1u << 8)	 /* persistent after this message (version + tokens) */
#define HTTP_F_CL_DUP (1u << 9)		 /* request: several equal Content-Length field lines */

struct http_request {
	/* results; valid when http_parse_request() returned > 0 */
	struct http_slice method;
	enum http_method method_id;
	struct http_slice target; /* request-target as received */
	enum http_target_form form;
	struct http_slice authority; /* absolute-form/authority-form authority, else empty */
	struct http_slice path;	     /* up to '?'; empty for authority/asterisk form and for
				      * an absolute-form target without a path */
	struct http_slice query;     /* after '?' (excluded); empty if none */
	bool has_query;		     /* a '?' was present (query may still be empty) */
	int version_minor;	     /* 0 or 1 */
	struct http_header *headers; /* the caller's array */
	size_t n_headers;
	struct http_slice host; /* value of the one Host field (empty if none) */
	bool has_host;
	struct http_slice upgrade; /* value of Upgrade (empty if none) */
	unsigned int flags;	   /* HTTP_F_* */
	uint64_t content_length;   /* valid when flags & HTTP_F_HAS_CL */
	enum http_body_kind body;  /* NONE, LENGTH or CHUNKED */
	size_t head_len;	   /* == return value */
	enum http_err err;	   /* set when -1 is returned */
};

struct http_response {
	int version_minor;
	int status; /* 100..599 */
	struct http_slice reason;
	struct http_header *headers;
	size_t n_headers;
	struct http_slice upgrade;
	unsigned int flags;
	uint64_t content_length;
	/* framing for this response to a request of the given method (RFC 9112 6.3):
	 * HEAD, 1xx, 204, 304 -> NONE; 101 and CONNECT 2xx -> TUNNEL; chunked last ->
	 * CHUNKED; other Transfer-Encoding -> UNTIL_CLOSE; Content-Length -> LENGTH;
	 * neither -> UNTIL_CLOSE. A 1xx other than 101 is followed by another head. */
	enum http_body_kind body;
	size_t head_len;
	enum http_err err;
};

/*
 * Parse a request head in buf[0..len). hdrs/hdr_cap: the caller's header array (the
 * effective header limit is min(hdr_cap, lim->max_headers)). lim may be NULL for the
 * defaults. last_len: bytes of buf already given to a previous call that returned -2
 * (0 if none); with it the call rescans the head only when the new bytes hold a CR,
 * LF or other control byte, so a head trickled in byte by byte costs O(lines x head)
 * rather than O(n^2). A non-token byte or an over-long target is then reported when
 * its line ends (or the head limit is crossed) instead of at once; the result for
 * the same bytes is otherwise identical to a call with last_len 0.
 * Returns head length (> 0), -1 (req->err set) or -2 (need more).
 */
int http_parse_request(const char *buf, size_t len, size_t last_len, const struct http_limits *lim,
		       struct http_request *req, struct http_header *hdrs, size_t hdr_cap);

/* Same for a response head; req_method is the method of the request it answers
 * (framing of HEAD and CONNECT answers differs). */
int http_parse_response(const char *buf, size_t len, size_t last_len, const struct http_limits *lim,
			enum http_method req_method, struct http_response *res,
			struct http_header *hdrs, size_t hdr_cap);

/* ---- body framing ---- */

struct http_body {
	enum http_body_kind kind;
	uint64_t remaining; /* LENGTH: bytes left; CHUNKED: bytes left in this chunk */
	uint64_t payload;   /* body payload bytes seen so far (chunk framing excluded) */
	uint64_t wire;	    /* bytes of input that belonged to this message so far */
	size_t line;	    /* CHUNKED: bytes of the current chunk line / trailer section */
	size_t max_chunk_line;
	size_t max_trailer;
	int state;	   /* CHUNKED state machine (internal) */
	bool done;	   /* the message ended; bytes after it belong to the next one */
	enum http_err err; /* set when http_body_feed() returned -1 */
};

/* Start decoding a body of the given kind (length only for HTTP_BODY_LENGTH). */
void http_body_init(struct http_body *b, enum http_body_kind kind, uint64_t length,
		    const struct http_limits *lim);

/*
 * Feed the next len bytes of the stream. Returns how many of them belong to this
 * message (forward them untouched); when b->done is set, buf[ret..len) starts the
 * next message. UNTIL_CLOSE and TUNNEL take everything and end only at EOF (the
 * caller's business). Returns -1 on a framing error (b->err set). Once done, returns
 * 0. Never looks at more than len bytes and never keeps a pointer into buf.
 */
ssize_t http_body_feed(struct http_body *b, const char *buf, size_t len);

/* ---- helpers ---- */

/* Case-insensitive equality of s and a lower-case C string. Inline: the callers pass
 * literals, whose length the compiler folds instead of a strlen per call (every
 * header of every request and response is compared with a few names). */
static inline bool http_slice_ieq(struct http_slice s, const char *lower)
{
	size_t n = __builtin_strlen(lower);

	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != (unsigned char)lower[i])
			return false;
	}
	return true;
}

/* Index of the first header at or after start whose name equals lname (lower-case,
 * compared case-insensitively), or -1. Loop with start = previous + 1 for repeats. */
int http_header_find(const struct http_header *hdrs, size_t n, const char *lname, size_t start);

/* Iterate a comma-separated field value: *elem gets the next non-empty element with
 * OWS trimmed, *list is advanced past it. false when the list is exhausted. */
bool http_list_next(struct http_slice *list, struct http_slice *elem);

/* Standard reason phrase for a status code ("Service Unavailable"), or "Unknown". */
const char *http_status_reason(int status);

/* ---- writers ---- */

#define HTTP_EDIT_STRIP_HOP (1u << 0)	 /* drop hop-by-hop fields + those Connection names */
#define HTTP_EDIT_KEEP_UPGRADE (1u << 1) /* with STRIP: keep Upgrade, send Connection: upgrade */
#define HTTP_EDIT_CLOSE (1u << 2)	 /* send Connection: close */

struct http_edit {
	const struct http_slice *target;    /* new request-target (origin-form), or NULL */
	const struct http_slice *authority; /* new Host value, or NULL */
	const char *const *remove;	    /* names whose fields are dropped (any case) */
	size_t n_remove;
	const struct http_header *set; /* replace every field of that name with this one */
	size_t n_set;
	const struct http_header *add; /* appended as is */
	size_t n_add;
	unsigned int flags; /* HTTP_EDIT_* */
};

/*
 * Serialise req (as parsed) with the edits into out[0..cap) as an HTTP/1.1 head:
 * request-line (absolute-form targets become origin-form), Host first (authority
 * override, else Host, else the target's authority), the remaining fields in order,
 * then set and add fields, then Connection if the flags ask. Framing fields
 * (Content-Length, Transfer-Encoding) are never removed because the body is forwarded
 * untouched; removing them through edit is refused. They are normalised instead: the
 * first Content-Length line becomes "Content-Length: N" (N = req->content_length) and
 * its repeats are dropped; the first Transfer-Encoding line of a chunked request
 * becomes "Transfer-Encoding: chunked" and the others are dropped (the parser only
 * accepts chunked as the one coding), so the upstream frames the body from the same
 * canonical bytes whatever spelling the client used. Returns bytes written, -ENOSPC if
 * cap is too small, -EINVAL if an edit name is not a token or a value/target/authority
 * contains CR, LF, NUL or another control byte. ed may be NULL.
 */
ssize_t http_write_request(char *out, size_t cap, const struct http_request *req,
			   const struct http_edit *ed);

/* The authority of a shadow (mirrored) request, as Envoy writes it: "-shadow" after
 * the host, before a port ("httpbin:8000" -> "httpbin-shadow:8000", "10.0.0.1" ->
 * "10.0.0.1-shadow", "[::1]:80" -> "[::1]-shadow:80"). Bytes written or -ENOSPC. */
ssize_t http_shadow_authority(char *out, size_t cap, const char *host, size_t len);
/* A copy of a head written by http_write_request (its Host field second) with that
 * Host made the shadow authority (fallback's when the field is empty, e.g. from an
 * HTTP/1.0 client without one). Bytes written, -ENOSPC, or -EINVAL (no Host field). */
ssize_t http_shadow_head(char *out, size_t cap, const char *head, size_t len, const char *fallback);

struct http_reply {
	int status;		  /* 100..599 */
	const char *reason;	  /* NULL: http_status_reason(status) */
	const char *content_type; /* NULL: "text/plain" */
	const char *body;	  /* may be NULL when body_len is 0 */
	size_t body_len;
	const struct http_header *headers; /* extra fields, e.g. x-envoy-overloaded */
	size_t n_headers;
	bool close; /* add Connection: close */
	bool head;  /* answering a HEAD: Content-Length of body but no body bytes */
};

/* Build a complete response (status line, Content-Type, Content-Length, extra fields,
 * body) for a locally generated reply. 1xx/204/304 get neither body nor Content-Length
 * (-EINVAL if body_len != 0). Returns bytes, -ENOSPC or -EINVAL. */
ssize_t http_write_response(char *out, size_t cap, const struct http_reply *r);

#endif /* RM_HTTP1_H */
