/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http1: request and response head parsing (see http1.h for the contract).
 *
 * The scanner walks the head byte by byte from the start on every full parse and
 * decides each error from the bytes seen so far only, never from where the buffer
 * happens to end. That makes a split input behave exactly like the whole one: a
 * prefix either fails with the same error the whole input fails with, or asks for
 * more. The head limit is applied by clamping the scan to max_head bytes.
 */
#include <string.h>

#include "http/http1.h"
#include "http/http1_int.h"

#define T HTTP_C_TCHAR
#define V HTTP_C_VALUE
#define G HTTP_C_TARGET
#define H HTTP_C_HOST
#define X HTTP_C_HEX

const uint8_t http_cclass[256] = {
    ['\t'] = V,
    [' '] = V,
    ['!'] = T | V | G | H,
    ['"'] = V | G,
    ['#'] = T | V,
    ['$'] = T | V | G | H,
    ['%'] = T | V | G | H,
    ['&'] = T | V | G | H,
    ['\''] = T | V | G | H,
    ['('] = V | G | H,
    [')'] = V | G | H,
    ['*'] = T | V | G | H,
    ['+'] = T | V | G | H,
    [','] = V | G | H,
    ['-'] = T | V | G | H,
    ['.'] = T | V | G | H,
    ['/'] = V | G,
    ['0' ... '9'] = T | V | G | H | X,
    [':'] = V | G | H,
    [';'] = V | G | H,
    ['<'] = V | G,
    ['='] = V | G | H,
    ['>'] = V | G,
    ['?'] = V | G,
    ['@'] = V | G,
    ['A' ... 'F'] = T | V | G | H | X,
    ['G' ... 'Z'] = T | V | G | H,
    ['['] = V | G | H,
    ['\\'] = V | G,
    [']'] = V | G | H,
    ['^'] = T | V | G,
    ['_'] = T | V | G | H,
    ['`'] = T | V | G,
    ['a' ... 'f'] = T | V | G | H | X,
    ['g' ... 'z'] = T | V | G | H,
    ['{'] = V | G,
    ['|'] = T | V | G,
    ['}'] = V | G,
    ['~'] = T | V | G | H,
    [0x80 ... 0xff] = V, /* obs-text: allowed in values, never in tokens or targets */
};

#undef T
#undef V
#undef G
#undef H
#undef X

static const struct {
	int status;
	const char *str;
} err_tab[HTTP_E__COUNT] = {
    [HTTP_OK] = {200, "ok"},
    [HTTP_E_REQUEST_LINE] = {400, "malformed request-line"},
    [HTTP_E_METHOD] = {400, "method is not a token"},
    [HTTP_E_TARGET] = {400, "invalid request-target"},
    [HTTP_E_URI_TOO_LONG] = {414, "request-target over the limit"},
    [HTTP_E_VERSION] = {400, "malformed HTTP version"},
    [HTTP_E_VERSION_UNSUPPORTED] = {505, "HTTP version not supported"},
    [HTTP_E_STATUS_LINE] = {400, "malformed status-line"},
    [HTTP_E_BARE_LF] = {400, "line ended by LF without CR"},
    [HTTP_E_BARE_CR] = {400, "CR not followed by LF"},
    [HTTP_E_TOO_MANY_LEADING_CRLF] = {400, "too many empty lines before request-line"},
    [HTTP_E_HEADER_NAME] = {400, "invalid header name"},
    [HTTP_E_HEADER_WS_COLON] = {400, "whitespace between header name and colon"},
    [HTTP_E_OBS_FOLD] = {400, "obsolete line folding"},
    [HTTP_E_HEADER_VALUE] = {400, "control character in header value"},
    [HTTP_E_HEAD_TOO_LARGE] = {431, "header section over the limit"},
    [HTTP_E_TOO_MANY_HEADERS] = {431, "too many header fields"},
    [HTTP_E_CL_INVALID] = {400, "invalid Content-Length"},
    [HTTP_E_CL_CONFLICT] = {400, "Content-Length values differ"},
    [HTTP_E_CL_DUP] = {400, "more than one Content-Length"},
    [HTTP_E_FRAMING_LOOKALIKE] = {400, "field name spells a framing field differently"},
    [HTTP_E_TE_INVALID] = {400, "invalid Transfer-Encoding"},
    [HTTP_E_TE_CHUNKED_NOT_LAST] = {400, "chunked is not the final transfer coding"},
    [HTTP_E_TE_UNKNOWN] = {501, "unknown transfer coding"},
    [HTTP_E_TE_HTTP10] = {400, "Transfer-Encoding in an HTTP/1.0 message"},
    [HTTP_E_CL_AND_TE] = {400, "both Content-Length and Transfer-Encoding"},
    [HTTP_E_HOST_MISSING] = {400, "missing Host"},
    [HTTP_E_HOST_DUP] = {400, "more than one Host"},
    [HTTP_E_HOST_INVALID] = {400, "invalid Host"},
    [HTTP_E_CHUNK_SIZE] = {400, "invalid chunk size"},
    [HTTP_E_CHUNK_EXT] = {400, "invalid chunk extension or chunk line too long"},
    [HTTP_E_CHUNK_DATA_END] = {400, "chunk data not followed by CRLF"},
    [HTTP_E_TRAILER] = {400, "invalid trailer field"},
    [HTTP_E_TRAILER_TOO_LARGE] = {431, "trailer section over the limit"},
};

int http_err_status(enum http_err err)
{
	if ((unsigned int)err >= HTTP_E__COUNT)
		return 400;
	return err_tab[err].status;
}

const char *http_err_str(enum http_err err)
{
	if ((unsigned int)err >= HTTP_E__COUNT)
		return "unknown error";
	return err_tab[err].str;
}

int http_header_find(const struct http_header *hdrs, size_t n, const char *lname, size_t start)
{
	for (size_t i = start; i < n; i++)
		if (http_slice_ieq(hdrs[i].name, lname))
			return (int)i;
	return -1;
}

static struct http_slice trim_ows(const char *p, size_t len)
{
	while (len && http_is_ows(p[0])) {
		p++;
		len--;
	}
	while (len && http_is_ows(p[len - 1]))
		len--;
	return (struct http_slice){p, len};
}

bool http_list_next(struct http_slice *list, struct http_slice *elem)
{
	while (list->len) {
		const char *comma = memchr(list->p, ',', list->len);
		size_t n = comma ? (size_t)(comma - list->p) : list->len;

		*elem = trim_ows(list->p, n);
		list->p += comma ? n + 1 : n;
		list->len -= comma ? n + 1 : n;
		if (elem->len) /* RFC 9110 5.6.1: empty elements are ignored */
			return true;
	}
	return false;
}

bool http_token_valid(const char *p, size_t len)
{
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!http_is(p[i], HTTP_C_TCHAR))
			return false;
	return true;
}

bool http_value_valid(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!http_is(p[i], HTTP_C_VALUE))
			return false;
	return true;
}

/* ---- scanner ---- */

struct hp {
	const char *buf;
	size_t pos;
	size_t end; /* min(len, max_head) */
	size_t len;
	enum http_err err;
};

/* Facts gathered from the field lines, shared by requests and responses. */
struct facts {
	unsigned int flags;
	uint64_t cl;
	unsigned int n_cl; /* Content-Length field lines */
	bool has_host;
	struct http_slice host;
	struct http_slice upgrade;
	unsigned int n_codings, n_chunked, n_other;
	bool last_chunked;
};

static int more(struct hp *h)
{
	if (h->len > h->end) {
		h->err = HTTP_E_HEAD_TOO_LARGE;
		return -1;
	}
	return -2;
}

static int fail(struct hp *h, enum http_err e)
{
	h->err = e;
	return -1;
}

#define NEED(h, n)                                                                                 \
	do {                                                                                       \
		if ((h)->pos + (n) > (h)->end)                                                     \
			return more(h);                                                            \
	} while (0)

/* At a CR or LF that must end a line: consume CR LF or fail. */
static int eat_crlf(struct hp *h, enum http_err other)
{
	NEED(h, 1);
	if (h->buf[h->pos] == '\n')
		return fail(h, HTTP_E_BARE_LF);
	if (h->buf[h->pos] != '\r')
		return fail(h, other);
	NEED(h, 2);
	if (h->buf[h->pos + 1] != '\n')
		return fail(h, HTTP_E_BARE_CR);
	h->pos += 2;
	return 0;
}

/* "HTTP/" DIGIT "." DIGIT; *minor gets the minor digit, 505 for anything but 1.0/1.1
 * is decided by the caller once the line is complete. */
static int scan_version(struct hp *h, int *major, int *minor)
{
	static const char pat[] = "HTTP/#.#";

	for (int i = 0; i < 8; i++) {
		char c;

		NEED(h, 1);
		c = h->buf[h->pos];
		if (pat[i] == '#' ? !(c >= '0' && c <= '9') : c != pat[i])
			return fail(h, HTTP_E_VERSION);
		if (i == 5)
			*major = c - '0';
		if (i == 7)
			*minor = c - '0';
		h->pos++;
	}
	return 0;
}

static bool host_valid(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!http_is(p[i], HTTP_C_HOST))
			return false;
	return true;
}

/* 1*DIGIT, capped at INT64_MAX so callers can hold it in off_t. */
static bool parse_u63(struct http_slice s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s.len)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned int d = (unsigned char)s.p[i] - '0';

		if (d > 9 || v > ((uint64_t)INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Content-Length: 1*DIGIT per field line; a repeated line must carry the same value
 * (RFC 9110 8.6), a list in one value is refused (see http1.h for why). */
static int fact_content_length(struct hp *h, struct facts *f, struct http_slice v)
{
	uint64_t n;

	if (!parse_u63(v, &n))
		return fail(h, HTTP_E_CL_INVALID);
	if ((f->flags & HTTP_F_HAS_CL) && n != f->cl)
		return fail(h, HTTP_E_CL_CONFLICT);
	f->cl = n;
	f->flags |= HTTP_F_HAS_CL;
	f->n_cl++;
	return 0;
}

static int fact_transfer_encoding(struct hp *h, struct facts *f, struct http_slice v)
{
	struct http_slice list = v, elem;
	bool any = false;

	while (http_list_next(&list, &elem)) {
		size_t n = 0;
		struct http_slice coding;

		while (n < elem.len && http_is(elem.p[n], HTTP_C_TCHAR))
			n++;
		coding = (struct http_slice){elem.p, n};
		if (!n)
			return fail(h, HTTP_E_TE_INVALID);
		if (n < elem.len) {
			/* only transfer-parameters may follow: OWS ";" ... */
			size_t k = n;

			while (k < elem.len && http_is_ows(elem.p[k]))
				k++;
			if (k == elem.len || elem.p[k] != ';')
				return fail(h, HTTP_E_TE_INVALID);
		}
		f->n_codings++;
		f->last_chunked = http_slice_ieq(coding, "chunked");
		if (f->last_chunked)
			f->n_chunked++;
		else
			f->n_other++;
		any = true;
	}
	if (!any)
		return fail(h, HTTP_E_TE_INVALID);
	f->flags |= HTTP_F_HAS_TE;
	return 0;
}

static void fact_connection(struct facts *f, struct http_slice v)
{
	struct http_slice list = v, elem;

	while (http_list_next(&list, &elem)) {
		if (http_slice_ieq(elem, "close"))
			f->flags |= HTTP_F_CONN_CLOSE;
		else if (http_slice_ieq(elem, "keep-alive"))
			f->flags |= HTTP_F_CONN_KEEP_ALIVE;
		else if (http_slice_ieq(elem, "upgrade"))
			f->flags |= HTTP_F_CONN_UPGRADE;
	}
}

/* Does a field name spell a framing field with other punctuation ("Content_Length",
 * "Transfer---Encoding")? Valid tokens, but CGI/WSGI-style servers fold '_' and '-'
 * together and some parsers skip what they do not know, so the upstream could frame
 * by a field the proxy ignored. Letters only, case-insensitive. */
static bool framing_lookalike(struct http_slice n)
{
	static const char *const names[] = {"contentlength", "transferencoding"};

	if (n.len < 13 || n.len > 64)
		return false;
	for (size_t k = 0; k < 2; k++) {
		const char *w = names[k];
		size_t j = 0, i;
		bool hyph = false, other = false;

		for (i = 0; i < n.len; i++) {
			unsigned char c = (unsigned char)n.p[i] | 0x20;

			if (c >= 'a' && c <= 'z') {
				if (!w[j] || c != (unsigned char)w[j])
					break;
				j++;
			} else if (n.p[i] == '-' && j == (k ? 8u : 7u) && !hyph) {
				hyph = true; /* the one '-' of the real name */
			} else {
				other = true;
			}
		}
		if (i == n.len && !w[j] && (other || !hyph))
			return true;
	}
	return false;
}

static int fact(struct hp *h, struct facts *f, const struct http_header *hd, bool request)
{
	struct http_slice n = hd->name;

	if (framing_lookalike(n))
		return fail(h, HTTP_E_FRAMING_LOOKALIKE);

	switch (n.len) {
	case 4:
		if (!request || !http_slice_ieq(n, "host"))
			return 0;
		if (f->has_host)
			return fail(h, HTTP_E_HOST_DUP);
		if (!host_valid(hd->value.p, hd->value.len))
			return fail(h, HTTP_E_HOST_INVALID);
		f->has_host = true;
		f->host = hd->value;
		return 0;
	case 6:
		if (request && http_slice_ieq(n, "expect")) {
			if (http_slice_ieq(hd->value, "100-continue"))
				f->flags |= HTTP_F_EXPECT_CONTINUE;
			else
				f->flags |= HTTP_F_EXPECT_OTHER;
		}
		return 0;
	case 7:
		if (http_slice_ieq(n, "upgrade")) {
			if (!(f->flags & HTTP_F_UPGRADE))
				f->upgrade = hd->value;
			f->flags |= HTTP_F_UPGRADE;
		}
		return 0;
	case 10:
		if (http_slice_ieq(n, "connection"))
			fact_connection(f, hd->value);
		return 0;
	case 14:
		if (http_slice_ieq(n, "content-length"))
			return fact_content_length(h, f, hd->value);
		return 0;
	case 17:
		if (http_slice_ieq(n, "transfer-encoding"))
			return fact_transfer_encoding(h, f, hd->value);
		return 0;
	}
	return 0;
}

/* Field lines up to and including the empty line that ends the head. */
static int scan_fields(struct hp *h, struct http_header *hdrs, size_t max, size_t *n,
		       struct facts *f, bool request)
{
	*n = 0;
	for (;;) {
		size_t name, colon, vstart, vend;
		struct http_header *hd;
		char c;
		int r;

		NEED(h, 1);
		c = h->buf[h->pos];
		if (c == '\r' || c == '\n')
			return eat_crlf(h, HTTP_E_HEADER_NAME);
		if (http_is_ows(c))
			return fail(h, HTTP_E_OBS_FOLD);
		if (*n >= max)
			return fail(h, HTTP_E_TOO_MANY_HEADERS);

		name = h->pos;
		for (;;) {
			NEED(h, 1);
			c = h->buf[h->pos];
			if (!http_is(c, HTTP_C_TCHAR))
				break;
			h->pos++;
		}
		if (c == ' ' || c == '\t')
			return fail(h, h->pos > name ? HTTP_E_HEADER_WS_COLON : HTTP_E_OBS_FOLD);
		if (c != ':' || h->pos == name)
			return fail(h, HTTP_E_HEADER_NAME);
		colon = h->pos++;

		for (;;) {
			NEED(h, 1);
			if (!http_is_ows(h->buf[h->pos]))
				break;
			h->pos++;
		}
		vstart = vend = h->pos;
		for (;;) {
			NEED(h, 1);
			c = h->buf[h->pos];
			if (c == '\r' || c == '\n')
				break;
			if (!http_is(c, HTTP_C_VALUE))
				return fail(h, HTTP_E_HEADER_VALUE);
			h->pos++;
			if (!http_is_ows(c))
				vend = h->pos;
		}
		r = eat_crlf(h, HTTP_E_HEADER_VALUE);
		if (r)
			return r;

		hd = &hdrs[(*n)++];
		hd->name = (struct http_slice){h->buf + name, colon - name};
		hd->value = (struct http_slice){h->buf + vstart, vend - vstart};
		r = fact(h, f, hd, request);
		if (r)
			return r;
	}
}

static size_t clamp_limit(size_t v, size_t def)
{
	if (!v)
		v = def;
	return v > HTTP_MAX_HEAD_CAP ? HTTP_MAX_HEAD_CAP : v;
}

static void limits_resolve(const struct http_limits *in, struct http_limits *out)
{
	static const struct http_limits zero;

	if (!in)
		in = &zero;
	out->max_uri = clamp_limit(in->max_uri, HTTP_DEF_MAX_URI);
	out->max_head = clamp_limit(in->max_head, HTTP_DEF_MAX_HEAD);
	out->max_headers = clamp_limit(in->max_headers, HTTP_DEF_MAX_HEADERS);
	out->max_chunk_line = clamp_limit(in->max_chunk_line, HTTP_DEF_MAX_CHUNK_LINE);
}

/*
 * With last_len, a rescan is needed only when the new bytes could change the answer:
 * a CR or LF (a line may have ended, correctly or not), another control byte (an
 * error), or the head limit crossed. Lines are bounded by max_headers, so a head
 * trickled in byte by byte costs O(lines x head), not O(n^2). What this defers are the
 * errors a full scan sees mid-line (a non-token byte, a request-target over max_uri):
 * they are reported when that line ends. Returns true when -2 can be answered now.
 */
static bool still_incomplete(const char *buf, size_t len, size_t last_len, size_t max_head)
{
	if (!last_len || last_len >= len || len > max_head)
		return false;
	for (size_t i = last_len; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static enum http_method method_id(struct http_slice m)
{
	static const struct {
		const char *s;
		enum http_method id;
	} tab[] = {
	    {"GET", HTTP_M_GET},	 {"HEAD", HTTP_M_HEAD},	    {"POST", HTTP_M_POST},
	    {"PUT", HTTP_M_PUT},	 {"DELETE", HTTP_M_DELETE}, {"CONNECT", HTTP_M_CONNECT},
	    {"OPTIONS", HTTP_M_OPTIONS}, {"TRACE", HTTP_M_TRACE},   {"PATCH", HTTP_M_PATCH},
	};

	/* methods are case-sensitive (RFC 9110 9.1) */
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (m.len == strlen(tab[i].s) && !memcmp(m.p, tab[i].s, m.len))
			return tab[i].id;
	return HTTP_M_OTHER;
}

static void split_path_query(struct http_request *r, const char *p, size_t len)
{
	const char *q = memchr(p, '?', len);

	r->path = (struct http_slice){p, q ? (size_t)(q - p) : len};
	r->has_query = q != NULL;
	r->query = q ? (struct http_slice){q + 1, len - (size_t)(q - p) - 1}
		     : (struct http_slice){p + len, 0};
}

/* authority-form: uri-host ":" port, nothing else (CONNECT). */
static bool authority_form_valid(struct http_slice a)
{
	const char *colon = NULL;

	if (!a.len || !host_valid(a.p, a.len))
		return false;
	for (size_t i = a.len; i > 0; i--)
		if (a.p[i - 1] == ':') {
			colon = a.p + i - 1;
			break;
		}
	if (!colon || colon == a.p || colon + 1 == a.p + a.len || a.p[a.len - 1] == ']')
		return false;
	for (const char *c = colon + 1; c < a.p + a.len; c++)
		if (*c < '0' || *c > '9')
			return false;
	return true;
}

static bool classify_target(struct http_request *r)
{
	const char *p = r->target.p;
	size_t len = r->target.len;

	r->authority = (struct http_slice){p, 0};
	r->query = (struct http_slice){p + len, 0};
	r->path = (struct http_slice){p, 0};
	r->has_query = false;

	if (r->method_id == HTTP_M_CONNECT) {
		r->form = HTTP_TF_AUTHORITY;
		r->authority = r->target;
		return authority_form_valid(r->authority);
	}
	if (p[0] == '/') {
		r->form = HTTP_TF_ORIGIN;
		split_path_query(r, p, len);
		return true;
	}
	if (len == 1 && p[0] == '*') {
		r->form = HTTP_TF_ASTERISK;
		return r->method_id == HTTP_M_OPTIONS;
	}

	/* absolute-form: scheme "://" authority [path-abempty] ["?" query] */
	size_t i = 0;

	if (!((p[0] | 0x20) >= 'a' && (p[0] | 0x20) <= 'z'))
		return false;
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	while (i < len &&
	       (((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'z') || (p[i] >= '0' && p[i] <= '9') ||
		p[i] == '+' || p[i] == '-' || p[i] == '.'))
		i++;
	if (len - i < 3 || memcmp(p + i, "://", 3))
		return false;
	i += 3;
	size_t a = i;

	while (i < len && p[i] != '/' && p[i] != '?')
		i++;
	r->form = HTTP_TF_ABSOLUTE;
	r->authority = (struct http_slice){p + a, i - a};
	/* userinfo ('@') is not a host byte: RFC 9110 4.2.4 says treat it as an error */
	if (!r->authority.len || !host_valid(r->authority.p, r->authority.len))
		return false;
	split_path_query(r, p + i, len - i);
	return true;
}

static int scan_request_line(struct hp *h, const struct http_limits *lim, struct http_request *r)
{
	size_t start;
	int major = 0, crlf = 0;
	char c;

	for (;;) {
		NEED(h, 1);
		c = h->buf[h->pos];
		if (c != '\r' && c != '\n')
			break;
		if (++crlf > HTTP_MAX_LEADING_CRLF)
			return fail(h, HTTP_E_TOO_MANY_LEADING_CRLF);
		int e = eat_crlf(h, HTTP_E_REQUEST_LINE);

		if (e)
			return e;
	}

	start = h->pos;
	for (;;) {
		NEED(h, 1);
		c = h->buf[h->pos];
		if (!http_is(c, HTTP_C_TCHAR))
			break;
		h->pos++;
	}
	if (c != ' ')
		return fail(h, h->pos > start && (c == '\r' || c == '\n') ? HTTP_E_REQUEST_LINE
									  : HTTP_E_METHOD);
	if (h->pos == start)
		return fail(h, HTTP_E_REQUEST_LINE);
	r->method = (struct http_slice){h->buf + start, h->pos - start};
	h->pos++;

	start = h->pos;
	for (;;) {
		NEED(h, 1);
		c = h->buf[h->pos];
		if (c == ' ')
			break;
		if (h->pos - start >= lim->max_uri)
			return fail(h, HTTP_E_URI_TOO_LONG);
		if (!http_is(c, HTTP_C_TARGET))
			return fail(h, c == '\r' || c == '\n' || c == '\t' ? HTTP_E_REQUEST_LINE
									   : HTTP_E_TARGET);
		h->pos++;
	}
	if (h->pos == start)
		return fail(h, HTTP_E_REQUEST_LINE);
	r->target = (struct http_slice){h->buf + start, h->pos - start};
	h->pos++;

	int e = scan_version(h, &major, &r->version_minor);

	if (e)
		return e;
	NEED(h, 1);
	c = h->buf[h->pos];
	if (c != '\r' && c != '\n')
		return fail(h, c == ' ' ? HTTP_E_REQUEST_LINE : HTTP_E_VERSION);
	e = eat_crlf(h, HTTP_E_REQUEST_LINE);
	if (e)
		return e;
	if (major != 1 || r->version_minor > 1)
		return fail(h, HTTP_E_VERSION_UNSUPPORTED);
	r->method_id = method_id(r->method);
	if (!classify_target(r))
		return fail(h, HTTP_E_TARGET);
	return 0;
}

int http_parse_request(const char *buf, size_t len, size_t last_len,
		       const struct http_limits *limits, struct http_request *r,
		       struct http_header *hdrs, size_t hdr_cap)
{
	struct http_limits lim;
	struct facts f = {0};
	struct hp h;
	int e;

	limits_resolve(limits, &lim);
	memset(r, 0, sizeof(*r));
	r->headers = hdrs;
	if (still_incomplete(buf, len, last_len, lim.max_head))
		return -2;
	h = (struct hp){buf, 0, len < lim.max_head ? len : lim.max_head, len, HTTP_OK};

	e = scan_request_line(&h, &lim, r);
	if (!e)
		e = scan_fields(&h, hdrs, hdr_cap < lim.max_headers ? hdr_cap : lim.max_headers,
				&r->n_headers, &f, true);
	if (e) {
		r->err = h.err;
		return e;
	}

	if (f.flags & HTTP_F_HAS_TE) {
		/* RFC 9112 6.1 / 6.3: order matters, the MUSTs (400) come before 501 */
		if (r->version_minor == 0)
			return r->err = HTTP_E_TE_HTTP10, -1;
		if (f.flags & HTTP_F_HAS_CL)
			return r->err = HTTP_E_CL_AND_TE, -1;
		if (!f.last_chunked || f.n_chunked != 1)
			return r->err = HTTP_E_TE_CHUNKED_NOT_LAST, -1;
		if (f.n_other)
			return r->err = HTTP_E_TE_UNKNOWN, -1;
		r->body = HTTP_BODY_CHUNKED;
	} else if (f.flags & HTTP_F_HAS_CL) {
		r->body = HTTP_BODY_LENGTH;
		if (f.n_cl > 1)
			f.flags |= HTTP_F_CL_DUP; /* http_write_request() forwards one */
	} else {
		r->body = HTTP_BODY_NONE;
	}
	if (r->version_minor == 1 && !f.has_host)
		return r->err = HTTP_E_HOST_MISSING, -1;
	if (r->version_minor == 0) /* RFC 9110 10.1.1: ignore expectations from 1.0 */
		f.flags &= ~(HTTP_F_EXPECT_CONTINUE | HTTP_F_EXPECT_OTHER);
	if (r->version_minor == 1 ? !(f.flags & HTTP_F_CONN_CLOSE)
				  : (f.flags & (HTTP_F_CONN_KEEP_ALIVE | HTTP_F_CONN_CLOSE)) ==
					HTTP_F_CONN_KEEP_ALIVE)
		f.flags |= HTTP_F_KEEP_ALIVE;

	r->flags = f.flags;
	r->content_length = f.cl;
	r->host = f.has_host ? f.host : (struct http_slice){buf, 0};
	r->has_host = f.has_host;
	r->upgrade = f.upgrade;
	r->head_len = h.pos;
	return (int)h.pos;
}

static int scan_status_line(struct hp *h, struct http_response *res)
{
	int major = 0, e;
	size_t start;
	char c;

	e = scan_version(h, &major, &res->version_minor);
	if (e)
		return h->err == HTTP_E_VERSION ? fail(h, HTTP_E_STATUS_LINE) : e;
	NEED(h, 1);
	if (h->buf[h->pos++] != ' ')
		return fail(h, HTTP_E_STATUS_LINE);
	res->status = 0;
	for (int i = 0; i < 3; i++) {
		NEED(h, 1);
		c = h->buf[h->pos++];
		if (c < '0' || c > '9')
			return fail(h, HTTP_E_STATUS_LINE);
		res->status = res->status * 10 + (c - '0');
	}
	NEED(h, 1);
	c = h->buf[h->pos];
	/* the SP before an empty reason is often left out; accept that, nothing else */
	if (c == ' ') {
		h->pos++;
		start = h->pos;
		for (;;) {
			NEED(h, 1);
			c = h->buf[h->pos];
			if (c == '\r' || c == '\n')
				break;
			if (!http_is(c, HTTP_C_VALUE))
				return fail(h, HTTP_E_STATUS_LINE);
			h->pos++;
		}
		res->reason = (struct http_slice){h->buf + start, h->pos - start};
	} else {
		res->reason = (struct http_slice){h->buf + h->pos, 0};
	}
	e = eat_crlf(h, HTTP_E_STATUS_LINE);
	if (e)
		return e;
	if (major != 1 || res->version_minor > 1)
		return fail(h, HTTP_E_VERSION_UNSUPPORTED);
	if (res->status < 100 || res->status > 599)
		return fail(h, HTTP_E_STATUS_LINE);
	return 0;
}

int http_parse_response(const char *buf, size_t len, size_t last_len,
			const struct http_limits *limits, enum http_method req_method,
			struct http_response *res, struct http_header *hdrs, size_t hdr_cap)
{
	struct http_limits lim;
	struct facts f = {0};
	struct hp h;
	int e, st;

	limits_resolve(limits, &lim);
	memset(res, 0, sizeof(*res));
	res->headers = hdrs;
	if (still_incomplete(buf, len, last_len, lim.max_head))
		return -2;
	h = (struct hp){buf, 0, len < lim.max_head ? len : lim.max_head, len, HTTP_OK};

	e = scan_status_line(&h, res);
	if (!e)
		e = scan_fields(&h, hdrs, hdr_cap < lim.max_headers ? hdr_cap : lim.max_headers,
				&res->n_headers, &f, false);
	if (e) {
		res->err = h.err;
		return e;
	}

	st = res->status;
	if (f.flags & HTTP_F_HAS_TE) {
		/* a proxy must not guess here: either side of a CL/TE disagreement could
		 * be what the client believes (response splitting) */
		if (res->version_minor == 0)
			return res->err = HTTP_E_TE_HTTP10, -1;
		if (f.flags & HTTP_F_HAS_CL)
			return res->err = HTTP_E_CL_AND_TE, -1;
		if (f.n_chunked > 1)
			return res->err = HTTP_E_TE_CHUNKED_NOT_LAST, -1;
	}
	/* even equal repeats: the engine relays the head, it cannot forward one value */
	if (f.n_cl > 1)
		return res->err = HTTP_E_CL_DUP, -1;
	if (st == 101)
		res->body = HTTP_BODY_TUNNEL;
	else if (req_method == HTTP_M_HEAD || st < 200 || st == 204 || st == 304)
		res->body = HTTP_BODY_NONE;
	else if (req_method == HTTP_M_CONNECT && st < 300)
		res->body = HTTP_BODY_TUNNEL;
	else if (f.flags & HTTP_F_HAS_TE) /* RFC 9112 6.3 (4): not chunked-last -> close */
		res->body = f.last_chunked ? HTTP_BODY_CHUNKED : HTTP_BODY_UNTIL_CLOSE;
	else if (f.flags & HTTP_F_HAS_CL)
		res->body = HTTP_BODY_LENGTH;
	else
		res->body = HTTP_BODY_UNTIL_CLOSE;

	if (res->body != HTTP_BODY_UNTIL_CLOSE && res->body != HTTP_BODY_TUNNEL &&
	    (res->version_minor == 1 ? !(f.flags & HTTP_F_CONN_CLOSE)
				     : (f.flags & (HTTP_F_CONN_KEEP_ALIVE | HTTP_F_CONN_CLOSE)) ==
					   HTTP_F_CONN_KEEP_ALIVE))
		f.flags |= HTTP_F_KEEP_ALIVE;
	res->flags = f.flags;
	res->content_length = f.cl;
	res->upgrade = f.upgrade;
	res->head_len = h.pos;
	return (int)h.pos;
}
