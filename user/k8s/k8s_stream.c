// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The watch body splitter: chunks of a chunked HTTP body in, complete JSON lines
 * out. Event and chunk boundaries are unrelated (REFERENCE.md section 6), so a
 * partial line is kept until its newline arrives.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/k8s.h"

void k8s_stream_init(struct k8s_stream *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
}

void k8s_stream_reset(struct k8s_stream *s)
{
	s->len = 0;
}

void k8s_stream_free(struct k8s_stream *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static int emit(const char *p, size_t n, k8s_line_fn fn, void *arg)
{
	while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
		n--;
	if (!n)
		return 0;
	return fn(arg, p, n);
}

static int keep(struct k8s_stream *s, const char *p, size_t n)
{
	if (s->len + n > s->max)
		return -E2BIG;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *b;

		while (cap < s->len + n + 1)
			cap *= 2;
		b = realloc(s->buf, cap);
		if (!b)
			return -ENOMEM;
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return 0;
}

int k8s_stream_feed(struct k8s_stream *s, const char *data, size_t len, k8s_line_fn fn, void *arg)
{
	int r;

	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t n;

		if (!nl)
			return keep(s, data, len);
		n = (size_t)(nl - data);
		if (s->len) {
			/* the line began in an earlier chunk */
			if ((r = keep(s, data, n)))
				return r;
			r = emit(s->buf, s->len, fn, arg);
			s->len = 0;
		} else {
			if (n > s->max)
				return -E2BIG;
			r = emit(data, n, fn, arg);
		}
		if (r)
			return r;
		data += n + 1;
		len -= n + 1;
	}
	return 0;
}
