/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * backend_http.h - the HTTP/1.x side of rm-backend: request-head parsing (strict framing:
 * Content-Length vs chunked), the x-rm-* / query-parameter test controls, the chunked body
 * decoder and the JSON description of a request. No I/O: it works on caller buffers, so
 * the event loop in rm-backend.c owns sockets and timing. Header-only because every
 * tools/bin/X.c is its own binary.
 */
#ifndef RINGMESH_BACKEND_HTTP_H
#define RINGMESH_BACKEND_HTTP_H

#include <ctype.h>
#include <strings.h>

#include "tool_common.h"

#define BH_MAX_HEAD (64 * 1024)
#define BH_MAX_HEADERS 128
#define BH_MAX_SIZE (1ull << 32)		 /* size=N cap: 4 GiB */
#define BH_MAX_DELAY_NS (600ull * 1000000000ull) /* delay cap: 10 minutes */

enum { BH_CLOSE_NONE, BH_CLOSE_EARLY, BH_CLOSE_RESET };
enum { BH_BODY_NONE, BH_BODY_LENGTH, BH_BODY_CHUNKED };
enum { BH_CH_SIZE, BH_CH_DATA, BH_CH_CRLF, BH_CH_TRAILER };

struct bh_req {
	bool http10;
	bool keepalive;
	bool head_method;
	bool echo;	   /* path /echo: stream the body back */
	bool echo_chunked; /* echo response uses chunked framing */
	bool admin;	   /* path /__stats: not counted as a request */
	bool admin_reset;
	bool expect_continue;
	int status;
	int close_mode;
	uint64_t delay_ns;
	int64_t size;	   /* -1: JSON body; else a body of exactly this many bytes */
	uint64_t gen_left; /* size body bytes not yet queued */
	int body_kind;
	uint64_t body_left; /* Content-Length remaining, or current chunk remaining */
	int ch_state;
	uint64_t body_bytes; /* decoded body bytes seen */
	struct tc_buf json;  /* "method":..,"path":..,...,"headers":{..} built at parse time */
};

static inline void bh_req_free(struct bh_req *r)
{
	tc_buf_free(&r->json);
}

static inline void bh_req_reset(struct bh_req *r)
{
	struct tc_buf keep = r->json;

	memset(r, 0, sizeof(*r));
	keep.off = keep.len = 0;
	r->json = keep;
	r->status = 200;
	r->size = -1;
	r->keepalive = true;
}

static inline const char *bh_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Status";
	}
}

/* size=N bodies: a fixed printable pattern, so a test can check framing by eye or md5 */
static inline void bh_fill_size_body(char *dst, uint64_t off, size_t n)
{
	static const char pat[] =
	    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";

	for (size_t i = 0; i < n; i++)
		dst[i] = pat[(off + i) % (sizeof(pat) - 1)];
}

static inline bool bh_is_tchar(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c);
}

static inline bool bh_token_eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && !strncasecmp(s, lit, n);
}

/* does the comma-separated list s[0..n) contain token `tok` (case-insensitive)? */
static inline bool bh_list_has(const char *s, size_t n, const char *tok)
{
	size_t i = 0;

	while (i < n) {
		size_t a, b;

		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
			i++;
		a = i;
		while (i < n && s[i] != ',')
			i++;
		b = i;
		while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
			b--;
		if (b > a && bh_token_eq(s + a, b - a, tok))
			return true;
	}
	return false;
}

/* one test control, from a query parameter or an x-rm-* header */
static inline int bh_control(struct bh_req *r, const char *k, size_t kn, const char *v, size_t vn,
			     char *err, size_t errlen)
{
	char val[64], *end;
	unsigned long long u;

	if (vn >= sizeof(val)) {
		snprintf(err, errlen, "control value too long");
		return -EINVAL;
	}
	memcpy(val, v, vn);
	val[vn] = '\0';
	if (bh_token_eq(k, kn, "delay")) {
		if (tc_parse_duration_ns(val, &r->delay_ns, err, errlen))
			return -EINVAL;
		if (r->delay_ns > BH_MAX_DELAY_NS) {
			snprintf(err, errlen, "delay %s over the 10m cap", val);
			return -EINVAL;
		}
	} else if (bh_token_eq(k, kn, "status")) {
		errno = 0;
		u = strtoull(val, &end, 10);
		if (!*val || *end || errno || u < 200 || u > 599) {
			snprintf(err, errlen, "status '%s': want 200..599", val);
			return -EINVAL;
		}
		r->status = (int)u;
	} else if (bh_token_eq(k, kn, "close")) {
		if (!strcmp(val, "early")) {
			r->close_mode = BH_CLOSE_EARLY;
		} else if (!strcmp(val, "reset")) {
			r->close_mode = BH_CLOSE_RESET;
		} else {
			snprintf(err, errlen, "close '%s': want early or reset", val);
			return -EINVAL;
		}
	} else if (bh_token_eq(k, kn, "size")) {
		uint64_t sz;

		if (tc_parse_size(val, &sz, err, errlen))
			return -EINVAL;
		if (sz > BH_MAX_SIZE) {
			snprintf(err, errlen, "size %s over the 4G cap", val);
			return -EINVAL;
		}
		r->size = (int64_t)sz;
	}
	return 0;
}

struct bh_hdr {
	const char *name, *val;
	size_t nlen, vlen;
};

static inline void bh_json_headers(struct tc_buf *j, const struct bh_hdr *h, int nh)
{
	bool first = true;

	tc_buf_printf(j, "\"headers\":{");
	for (int i = 0; i < nh; i++) {
		int k;

		for (k = 0; k < i; k++)
			if (h[k].nlen == h[i].nlen && !strncasecmp(h[k].name, h[i].name, h[i].nlen))
				break;
		if (k < i)
			continue; /* folded into the first occurrence */
		tc_buf_printf(j, "%s\"", first ? "" : ",");
		first = false;
		for (size_t c = 0; c < h[i].nlen; c++) {
			char lc = (char)tolower((unsigned char)h[i].name[c]);

			tc_buf_json_str(j, &lc, 1);
		}
		tc_buf_printf(j, "\":\"");
		tc_buf_json_str(j, h[i].val, h[i].vlen);
		/* repeated fields combine with ", " as RFC 9110 5.3 allows */
		for (k = i + 1; k < nh; k++) {
			if (h[k].nlen != h[i].nlen || strncasecmp(h[k].name, h[i].name, h[i].nlen))
				continue;
			tc_buf_printf(j, ", ");
			tc_buf_json_str(j, h[k].val, h[k].vlen);
		}
		tc_buf_printf(j, "\"");
	}
	tc_buf_printf(j, "}");
}

/* next line of p[0..n); returns its length without the EOL, *adv past the EOL, -1 if none */
static inline long bh_line(const char *p, size_t n, size_t *adv)
{
	const char *nl = n ? memchr(p, '\n', n) : NULL;
	size_t l;

	if (!nl)
		return -1;
	l = nl - p;
	*adv = l + 1;
	if (l && p[l - 1] == '\r')
		l--;
	return (long)l;
}

/*
 * Parse one request head at p[0..n). Returns its length (> 0) when complete, 0 when more
 * bytes are needed, -EINVAL (answer 400) or -EPROTONOSUPPORT (505) with err filled.
 * Leading empty lines are skipped (RFC 9112 2.2).
 */
static inline int bh_parse_head(const char *p, size_t n, struct bh_req *r, char *err, size_t errlen)
{
	struct bh_hdr h[BH_MAX_HEADERS];
	size_t pos = 0, adv, plen;
	long l;
	int nh = 0, rc;
	const char *line, *sp1, *sp2, *target, *q, *method;
	bool have_cl = false, have_te = false;
	uint64_t cl = 0;

	bh_req_reset(r);
	for (;;) {
		l = bh_line(p + pos, n - pos, &adv);
		if (l < 0)
			return 0;
		if (l)
			break;
		pos += adv;
	}
	/* complete head? find the empty line first so partial heads cost no parsing */
	{
		size_t s = pos;
		bool done = false;

		while (s < n) {
			long ll = bh_line(p + s, n - s, &adv);

			if (ll < 0)
				break;
			s += adv;
			if (ll == 0 && s - adv > pos) {
				done = true;
				break;
			}
		}
		if (!done)
			return 0;
		if (s > BH_MAX_HEAD) {
			snprintf(err, errlen, "request head over %d bytes", BH_MAX_HEAD);
			return -EINVAL;
		}
	}

	line = p + pos;
	l = bh_line(line, n - pos, &adv);
	pos += adv;
	sp1 = memchr(line, ' ', l);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', line + l - sp1 - 1) : NULL;
	if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 ||
	    memchr(sp2 + 1, ' ', line + l - sp2 - 1)) {
		snprintf(err, errlen, "malformed request line");
		return -EINVAL;
	}
	for (const char *c = line; c < sp1; c++)
		if (!bh_is_tchar((unsigned char)*c)) {
			snprintf(err, errlen, "bad method");
			return -EINVAL;
		}
	if (line + l - sp2 - 1 != 8 || strncmp(sp2 + 1, "HTTP/1.", 7)) {
		snprintf(err, errlen, "unsupported protocol '%.*s'", (int)(line + l - sp2 - 1),
			 sp2 + 1);
		return -EPROTONOSUPPORT;
	}
	if (sp2[8] == '0')
		r->http10 = true;
	else if (sp2[8] != '1') {
		snprintf(err, errlen, "unsupported protocol HTTP/1.%c", sp2[8]);
		return -EPROTONOSUPPORT;
	}
	method = line;
	r->keepalive = !r->http10;
	r->head_method = bh_token_eq(line, sp1 - line, "HEAD");
	target = sp1 + 1;
	q = memchr(target, '?', sp2 - target);
	plen = (q ? q : sp2) - target;

	for (;;) {
		const char *colon, *v, *ve;

		l = bh_line(p + pos, n - pos, &adv);
		line = p + pos;
		pos += adv;
		if (l == 0)
			break;
		if (line[0] == ' ' || line[0] == '\t') {
			snprintf(err, errlen, "obsolete header line folding");
			return -EINVAL;
		}
		colon = memchr(line, ':', l);
		if (!colon || colon == line) {
			snprintf(err, errlen, "malformed header line");
			return -EINVAL;
		}
		for (const char *c = line; c < colon; c++)
			if (!bh_is_tchar((unsigned char)*c)) {
				snprintf(err, errlen, "bad header name '%.*s'", (int)(colon - line),
					 line);
				return -EINVAL;
			}
		if (nh == BH_MAX_HEADERS) {
			snprintf(err, errlen, "more than %d header fields", BH_MAX_HEADERS);
			return -EINVAL;
		}
		v = colon + 1;
		ve = line + l;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		h[nh] = (struct bh_hdr){line, v, colon - line, ve - v};
		nh++;
	}

	for (int i = 0; i < nh; i++) {
		const char *nm = h[i].name, *v = h[i].val;
		size_t nl = h[i].nlen, vl = h[i].vlen;

		if (bh_token_eq(nm, nl, "content-length")) {
			uint64_t x = 0;

			if (!vl) {
				snprintf(err, errlen, "empty Content-Length");
				return -EINVAL;
			}
			for (size_t c = 0; c < vl; c++) {
				if (!isdigit((unsigned char)v[c]) || x > (UINT64_MAX - 9) / 10) {
					snprintf(err, errlen, "bad Content-Length '%.*s'", (int)vl,
						 v);
					return -EINVAL;
				}
				x = x * 10 + (uint64_t)(v[c] - '0');
			}
			if (have_cl && x != cl) {
				snprintf(err, errlen, "conflicting Content-Length fields");
				return -EINVAL;
			}
			have_cl = true;
			cl = x;
		} else if (bh_token_eq(nm, nl, "transfer-encoding")) {
			size_t e = vl;

			while (e && v[e - 1] != ',')
				e--;
			while (e < vl && (v[e] == ' ' || v[e] == '\t'))
				e++;
			/* a request must end with chunked, else its length is unknowable */
			if (!bh_token_eq(v + e, vl - e, "chunked")) {
				snprintf(err, errlen, "Transfer-Encoding without final chunked");
				return -EINVAL;
			}
			have_te = true;
		} else if (bh_token_eq(nm, nl, "connection")) {
			if (bh_list_has(v, vl, "close"))
				r->keepalive = false;
			else if (r->http10 && bh_list_has(v, vl, "keep-alive"))
				r->keepalive = true;
		} else if (bh_token_eq(nm, nl, "expect")) {
			r->expect_continue = bh_token_eq(v, vl, "100-continue");
		} else if (nl > 5 && !strncasecmp(nm, "x-rm-", 5)) {
			rc = bh_control(r, nm + 5, nl - 5, v, vl, err, errlen);
			if (rc)
				return rc;
		}
	}
	if (have_te && have_cl) {
		/* smuggling vector: refuse instead of picking one */
		snprintf(err, errlen, "both Content-Length and Transfer-Encoding");
		return -EINVAL;
	}
	if (have_te && r->http10) {
		snprintf(err, errlen, "Transfer-Encoding in an HTTP/1.0 request");
		return -EINVAL;
	}
	if (have_te) {
		r->body_kind = BH_BODY_CHUNKED;
		r->ch_state = BH_CH_SIZE;
	} else if (have_cl && cl) {
		r->body_kind = BH_BODY_LENGTH;
		r->body_left = cl;
	}

	/* query parameters override headers */
	if (q) {
		const char *a = q + 1;

		while (a < sp2) {
			const char *amp = memchr(a, '&', sp2 - a), *e = amp ? amp : sp2;
			const char *eq = memchr(a, '=', e - a);

			if (eq) {
				rc = bh_control(r, a, eq - a, eq + 1, e - eq - 1, err, errlen);
				if (rc)
					return rc;
			}
			if (eq && eq - a == 5 && !strncmp(a, "reset", 5) && e - eq == 2 &&
			    eq[1] == '1')
				r->admin_reset = true;
			a = e + 1;
		}
	}
	r->echo = plen == 5 && !memcmp(target, "/echo", 5);
	r->admin = plen == 8 && !memcmp(target, "/__stats", 8);
	if (!r->admin)
		r->admin_reset = false;

	tc_buf_printf(&r->json, "\"method\":\"");
	tc_buf_json_str(&r->json, method, sp1 - method);
	tc_buf_printf(&r->json, "\",\"path\":\"");
	tc_buf_json_str(&r->json, target, plen);
	tc_buf_printf(&r->json, "\",\"uri\":\"");
	tc_buf_json_str(&r->json, target, sp2 - target);
	tc_buf_printf(&r->json, "\",\"query\":\"");
	if (q)
		tc_buf_json_str(&r->json, q + 1, sp2 - q - 1);
	tc_buf_printf(&r->json, "\",\"proto\":\"HTTP/1.%c\",", r->http10 ? '0' : '1');
	bh_json_headers(&r->json, h, nh);
	return (int)pos;
}

/* the response body describing a request */
static inline void bh_req_json(struct bh_req *r, struct tc_buf *b, const char *name,
			       const char *version, const char *peer, const char *local,
			       uint64_t conn_id, uint64_t conn_req)
{
	tc_buf_printf(b, "{\"name\":\"");
	tc_buf_json_str(b, name, strlen(name));
	tc_buf_printf(b, "\",\"version\":\"");
	tc_buf_json_str(b, version, strlen(version));
	tc_buf_printf(b, "\",");
	tc_buf_append(b, tc_buf_data(&r->json), r->json.len);
	tc_buf_printf(b,
		      ",\"peer\":\"%s\",\"local\":\"%s\",\"conn_id\":%lu,\"conn_request\":%lu,"
		      "\"body_bytes\":%lu}\n",
		      peer, local, conn_id, conn_req, r->body_bytes);
}

/*
 * Consume body bytes from `in`. With `out` (echo), decoded data is appended to it,
 * re-chunked when r->echo_chunked, at most `room` bytes per call. Returns 1 when the body
 * is complete, 0 when more input (or output room) is needed, -1 on malformed chunking.
 */
static inline int bh_body_step(struct bh_req *r, struct tc_buf *in, struct tc_buf *out, size_t room)
{
	for (;;) {
		const char *d = tc_buf_data(in);
		size_t adv;
		long l;

		if (r->body_kind == BH_BODY_NONE)
			return 1;
		if (r->body_kind == BH_BODY_LENGTH ||
		    (r->body_kind == BH_BODY_CHUNKED && r->ch_state == BH_CH_DATA)) {
			size_t k = in->len < r->body_left ? in->len : r->body_left;

			if (out && k > room)
				k = room;
			if (!k)
				return 0;
			if (out) {
				if (r->echo_chunked)
					tc_buf_printf(out, "%zx\r\n", k);
				tc_buf_append(out, d, k);
				if (r->echo_chunked)
					tc_buf_append(out, "\r\n", 2);
				room -= k;
			}
			tc_buf_consume(in, k);
			r->body_left -= k;
			r->body_bytes += k;
			if (r->body_left)
				continue;
			if (r->body_kind == BH_BODY_LENGTH)
				return 1;
			r->ch_state = BH_CH_CRLF;
			continue;
		}
		switch (r->ch_state) {
		case BH_CH_SIZE: {
			uint64_t sz = 0;
			long i;

			l = bh_line(d, in->len, &adv);
			if (l < 0)
				return in->len > 4096 ? -1 : 0;
			for (i = 0; i < l && isxdigit((unsigned char)d[i]); i++) {
				if (sz >> 60)
					return -1;
				sz = sz * 16 +
				     (uint64_t)(isdigit((unsigned char)d[i])
						    ? d[i] - '0'
						    : (tolower((unsigned char)d[i]) - 'a' + 10));
			}
			if (i == 0 || (i < l && d[i] != ';' && d[i] != ' ' && d[i] != '\t'))
				return -1;
			tc_buf_consume(in, adv);
			if (sz == 0) {
				r->ch_state = BH_CH_TRAILER;
			} else {
				r->body_left = sz;
				r->ch_state = BH_CH_DATA;
			}
			break;
		}
		case BH_CH_CRLF:
			l = bh_line(d, in->len, &adv);
			if (l < 0)
				return in->len > 2 ? -1 : 0;
			if (l)
				return -1;
			tc_buf_consume(in, adv);
			r->ch_state = BH_CH_SIZE;
			break;
		case BH_CH_TRAILER:
			l = bh_line(d, in->len, &adv);
			if (l < 0)
				return in->len > BH_MAX_HEAD ? -1 : 0;
			tc_buf_consume(in, adv);
			if (l == 0) {
				r->body_kind = BH_BODY_NONE;
				return 1;
			}
			break;
		}
	}
}

#endif /* RINGMESH_BACKEND_HTTP_H */
