/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libFuzzer target for the HTTP/1.x codec. Byte 0 picks request or response parsing,
 * the request method a response answers, and tight or default limits; the rest is the
 * stream. Besides memory safety (ASan) it checks the codec's promises: results stay
 * inside the input; a prefix either asks for more or gives the whole input's answer;
 * the last_len hint never changes a complete answer; the body decoder consumes the
 * same bytes fed whole or one byte at a time; a parsed request written back out parses
 * again with the same framing.
 */
#include <assert.h>
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

static int parse(int req, const char *buf, size_t len, size_t last_len,
		 const struct http_limits *lim, enum http_method m, struct http_request *q,
		 struct http_response *s, struct http_header *hd, size_t cap, int *err)
{
	int r;

	if (req) {
		r = http_parse_request(buf, len, last_len, lim, q, hd, cap);
		*err = q->err;
	} else {
		r = http_parse_response(buf, len, last_len, lim, m, s, hd, cap);
		*err = s->err;
	}
	CHECK(r == -1 || r == -2 || (r > 0 && (size_t)r <= len));
	CHECK(r != -1 || (*err > HTTP_OK && *err < HTTP_E__COUNT));
	return r;
}

static void body_check(enum http_body_kind k, uint64_t cl, const struct http_limits *lim,
		       const char *p, size_t n)
{
	struct http_body a, b;
	ssize_t ra, rb = 0;

	http_body_init(&a, k, cl, lim);
	http_body_init(&b, k, cl, lim);
	ra = http_body_feed(&a, p, n);
	for (size_t i = 0; i < n; i++) {
		ssize_t x = http_body_feed(&b, p + i, 1);

		if (x < 0) {
			rb = -1;
			break;
		}
		rb += x;
		if (b.done)
			break;
	}
	CHECK(ra == rb);
	CHECK(ra < 0 ? a.err == b.err : (a.done == b.done && a.payload == b.payload));
	CHECK(ra < 0 || (size_t)ra <= n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_header hd[128], hd2[128];
	static char out[1 << 18];
	struct http_request q, q2;
	struct http_response s;
	int r, e, r2, e2;

	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	int req = !(sel & 1);
	enum http_method m =
	    (sel >> 1) & 3 ? ((sel >> 1) & 3) == 1 ? HTTP_M_HEAD : HTTP_M_CONNECT : HTTP_M_GET;
	const struct http_limits *lim = sel & 8 ? &tight : NULL;
	/* a private copy so ASan sees the exact end of the input */
	size_t len = size - 1;
	char *buf = malloc(len ? len : 1);

	memcpy(buf, data + 1, len);
	r = parse(req, buf, len, 0, lim, m, &q, &s, hd, 128, &e);

	if (r > 0) {
		struct http_header *h = req ? q.headers : s.headers;
		size_t n = req ? q.n_headers : s.n_headers;

		for (size_t i = 0; i < n; i++) {
			in_buf(h[i].name, buf, (size_t)r);
			in_buf(h[i].value, buf, (size_t)r);
			CHECK(h[i].name.len > 0);
		}
		if (req) {
			in_buf(q.method, buf, (size_t)r);
			in_buf(q.target, buf, (size_t)r);
			in_buf(q.path, buf, (size_t)r);
			in_buf(q.query, buf, (size_t)r);
			in_buf(q.authority, buf, (size_t)r);
			in_buf(q.host, buf, (size_t)r);
			CHECK(q.version_minor == 0 || q.version_minor == 1);
			CHECK(q.body <= HTTP_BODY_CHUNKED);
		} else {
			CHECK(s.status >= 100 && s.status <= 599);
		}
		body_check(req ? q.body : s.body, req ? q.content_length : s.content_length, lim,
			   buf + r, len - (size_t)r);
	}

	/* prefixes: a few cut points derived from the data, with and without the hint */
	for (size_t c = 0; c < 4 && len; c++) {
		size_t k = (c == 0) ? len - 1 : (size_t)data[c % size] * len / 256;
		int a = parse(req, buf, k, 0, lim, m, &q2, &s, hd2, 128, &e2);

		CHECK(a == -2 || (a == r && e2 == e));
		if (a == -2) {
			r2 = parse(req, buf, len, k, lim, m, &q2, &s, hd2, 128, &e2);
			/* the hint may only defer an answer to a later call */
			CHECK(r2 == -2 || (r2 == r && (r2 != -1 || e2 == e)));
		}
	}

	/* write back: the forwarded head must parse with the same framing */
	if (req && r > 0) {
		r = parse(1, buf, len, 0, lim, m, &q, &s, hd, 128, &e);
		ssize_t w = http_write_request(out, sizeof(out), &q, NULL);

		CHECK(w > 0);
		r2 = http_parse_request(out, (size_t)w, 0, NULL, &q2, hd2, 128);
		CHECK(r2 == (int)w || (r2 == -1 && (q2.err == HTTP_E_URI_TOO_LONG ||
						    q2.err == HTTP_E_TOO_MANY_HEADERS)));
		if (r2 > 0) {
			CHECK(q2.body == q.body && q2.content_length == q.content_length);
			CHECK(q2.method_id == q.method_id &&
			      q2.path.len ==
				  (q.path.len ? q.path.len : (q.form == HTTP_TF_ABSOLUTE)));
		}
	}
	free(buf);
	return 0;
}
