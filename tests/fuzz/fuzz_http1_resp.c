/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libFuzzer target for the response side of the HTTP/1.x codec, driven the way the
 * proxy reads an upstream connection: heads (interim 1xx ones, then a final one), each
 * followed by its body through the framing decoder, then the next response on the
 * same connection. Byte 0 picks the method of the request being answered and tight or
 * default limits, byte 1 seeds the cut points; the rest is the upstream's bytes.
 *
 * Checked besides memory safety: a head parsed from a prefix with the last_len hint
 * gives the whole input's answer; the framing obeys RFC 9112 6.3 for the status and
 * method (HEAD, 1xx, 204, 304 -> none; 101 and CONNECT 2xx -> tunnel; never both
 * Content-Length and Transfer-Encoding; at most one Content-Length line); the body
 * decoder returns the same bytes, payload and verdict however the body is cut; and a
 * locally generated reply (http_write_response) parses back to what was asked.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http1.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

static const struct http_limits tight = {
    .max_uri = 32, .max_head = 256, .max_headers = 8, .max_chunk_line = 24};

static void in_buf(struct http_slice s, const char *buf, size_t len)
{
	CHECK(s.len == 0 || (s.p >= buf && s.p + s.len <= buf + len));
}

/* Next cut length from a small xorshift state seeded by byte 1: 1..64 bytes, so the
 * decoder sees chunk lines and trailers split everywhere. */
static size_t next_cut(uint32_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 17;
	*st ^= *st << 5;
	return 1 + (*st & 63);
}

/* Feed n bytes whole and in random pieces: same consumed count, verdict and payload. */
static ssize_t body_both(enum http_body_kind k, uint64_t cl, const struct http_limits *lim,
			 const char *p, size_t n, uint32_t *st, struct http_body *out)
{
	struct http_body a, b;
	ssize_t ra, rb = 0;
	size_t off = 0;

	http_body_init(&a, k, cl, lim);
	http_body_init(&b, k, cl, lim);
	ra = http_body_feed(&a, p, n);
	while (off < n) {
		size_t c = next_cut(st);
		ssize_t x;

		if (c > n - off)
			c = n - off;
		x = http_body_feed(&b, p + off, c);
		if (x < 0) {
			rb = -1;
			break;
		}
		CHECK((size_t)x <= c);
		rb += x;
		off += (size_t)x;
		if (b.done)
			break;
		CHECK((size_t)x == c); /* not done: the decoder took every byte offered */
	}
	CHECK(ra == rb);
	if (ra >= 0) {
		CHECK((size_t)ra <= n);
		CHECK(a.done == b.done && a.payload == b.payload && a.wire == b.wire);
		CHECK(a.payload <= a.wire);
		if (k == HTTP_BODY_LENGTH)
			CHECK(a.payload == a.wire && a.wire <= cl && (a.done == (a.wire == cl)));
		if (a.done)
			CHECK(http_body_feed(&a, p, n) == 0);
	} else {
		CHECK(a.err == b.err && a.err > HTTP_OK && a.err < HTTP_E__COUNT);
	}
	*out = a;
	return ra;
}

static void head_checks(const struct http_response *s, const char *buf, size_t r,
			enum http_method m)
{
	size_t ncl = 0, nte = 0;
	int st = s->status;

	CHECK(st >= 100 && st <= 599);
	CHECK(s->version_minor == 0 || s->version_minor == 1);
	CHECK(s->head_len == r);
	in_buf(s->reason, buf, r);
	in_buf(s->upgrade, buf, r);
	for (size_t i = 0; i < s->n_headers; i++) {
		in_buf(s->headers[i].name, buf, r);
		in_buf(s->headers[i].value, buf, r);
		CHECK(s->headers[i].name.len > 0);
		ncl += http_slice_ieq(s->headers[i].name, "content-length");
		nte += http_slice_ieq(s->headers[i].name, "transfer-encoding");
	}
	/* a relayed head must not carry framing a client could read two ways */
	CHECK(ncl <= 1);
	CHECK(!(ncl && nte));
	CHECK(!!ncl == !!(s->flags & HTTP_F_HAS_CL));
	CHECK(!(s->flags & HTTP_F_CL_DUP));
	if (st == 101)
		CHECK(s->body == HTTP_BODY_TUNNEL);
	else if (m == HTTP_M_HEAD || st < 200 || st == 204 || st == 304)
		CHECK(s->body == HTTP_BODY_NONE);
	else if (m == HTTP_M_CONNECT && st < 300)
		CHECK(s->body == HTTP_BODY_TUNNEL);
	else if (s->body == HTTP_BODY_LENGTH)
		CHECK(ncl == 1);
	else
		CHECK(s->body == HTTP_BODY_CHUNKED ? nte > 0
						   : s->body == HTTP_BODY_UNTIL_CLOSE && !ncl);
	if (s->body == HTTP_BODY_UNTIL_CLOSE || s->body == HTTP_BODY_TUNNEL)
		CHECK(!(s->flags & HTTP_F_KEEP_ALIVE));
}

/* A local reply built from the input parses back with the asked status and length. */
static void reply_roundtrip(const char *p, size_t n, uint8_t sel)
{
	static char out[8192];
	static struct http_header hd[16];
	struct http_response s;
	size_t blen = n > 512 ? 512 : n;
	int status = 100 + (int)((n * 7 + sel) % 500);
	struct http_header extra = {{"x-fuzz", 6}, {p, n < 16 ? n : 16}};
	struct http_reply r = {.status = status,
			       .body = p,
			       .body_len = blen,
			       .headers = &extra,
			       .n_headers = 1,
			       .close = sel & 16,
			       .head = sel & 32};
	bool bodyless = status < 200 || status == 204 || status == 304;
	ssize_t w;
	int pr;

	if (bodyless)
		r.body_len = 0;
	w = http_write_response(out, sizeof(out), &r);
	if (w == -EINVAL)
		return; /* the extra header's value came from the input: may be refused */
	CHECK(w > 0);
	pr = http_parse_response(out, (size_t)w, 0, NULL, r.head ? HTTP_M_HEAD : HTTP_M_GET, &s, hd,
				 16);
	CHECK(pr > 0);
	CHECK(s.status == status);
	if (!bodyless) {
		CHECK((s.flags & HTTP_F_HAS_CL) && s.content_length == r.body_len);
		CHECK((size_t)w == (size_t)pr + (r.head ? 0 : r.body_len));
	} else {
		CHECK((size_t)w == (size_t)pr && !(s.flags & HTTP_F_HAS_CL));
	}
	CHECK(!!(s.flags & HTTP_F_CONN_CLOSE) == r.close);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_header hd[128], hd2[128];
	struct http_response s, s2;
	uint32_t st;

	if (size < 2)
		return 0;
	uint8_t sel = data[0];
	enum http_method m =
	    (sel >> 1) & 3 ? ((sel >> 1) & 3) == 1 ? HTTP_M_HEAD : HTTP_M_CONNECT : HTTP_M_GET;
	const struct http_limits *lim = sel & 8 ? &tight : NULL;
	size_t len = size - 2;
	char *buf = malloc(len ? len : 1); /* a private copy: ASan sees the exact end */
	size_t off = 0;

	st = 0x9e3779b9u ^ data[1];
	memcpy(buf, data + 2, len);
	for (int msg = 0; msg < 16 && off < len; msg++) {
		const char *p = buf + off;
		size_t n = len - off;
		int r = http_parse_response(p, n, 0, lim, m, &s, hd, 128);

		CHECK(r == -1 || r == -2 || (r > 0 && (size_t)r <= n));
		if (r == -1)
			CHECK(s.err > HTTP_OK && s.err < HTTP_E__COUNT);

		/* the proxy reads in pieces: a prefix, then the rest with the hint */
		size_t k = next_cut(&st) * n / 64;

		if (k < n) {
			int a = http_parse_response(p, k, 0, lim, m, &s2, hd2, 128);

			CHECK(a == -2 || (a == r && s2.err == s.err));
			if (a == -2) {
				int b = http_parse_response(p, n, k, lim, m, &s2, hd2, 128);

				CHECK(b == -2 || (b == r && (b != -1 || s2.err == s.err)));
				if (b > 0)
					CHECK(s2.body == s.body &&
					      s2.content_length == s.content_length &&
					      s2.status == s.status && s2.flags == s.flags);
			}
		}
		if (r <= 0)
			break;
		head_checks(&s, p, (size_t)r, m);
		off += (size_t)r;
		if (s.body == HTTP_BODY_NONE)
			continue; /* an interim 1xx, or a bodyless answer: the next head */

		struct http_body b;
		ssize_t used =
		    body_both(s.body, s.content_length, lim, buf + off, len - off, &st, &b);

		if (used < 0 || !b.done)
			break; /* a framing error, or the body runs to EOF */
		CHECK(s.body == HTTP_BODY_LENGTH || s.body == HTTP_BODY_CHUNKED);
		off += (size_t)used;
	}
	reply_roundtrip(buf, len, sel);
	free(buf);
	return 0;
}
