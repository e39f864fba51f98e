/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* util: error formatter, clocks, bounded writer (see util.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int errf_sys(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		n = strlen(err);
		if (rc && n + 3 < errlen)
			snprintf(err + n, errlen - n, ": %s", strerror(rc < 0 ? -rc : rc));
	}
	return rc;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t realtime_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/* The append that does not fit: keep what fits, for sbuf_text. */
void sbuf_put_slow(struct sbuf *b, const void *s, size_t n)
{
	if (b->over)
		return;
	if (n > b->cap - b->len) {
		memcpy(b->p + b->len, s, b->cap - b->len);
		b->len = b->cap;
		b->over = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

void sbuf_u64(struct sbuf *b, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sbuf_put(b, tmp + sizeof(tmp) - n, n);
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	size_t room = b->cap - b->len;
	va_list ap;
	int n;

	if (b->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, room, fmt, ap);
	va_end(ap);
	/* vsnprintf needs room for its NUL: text that fills the buffer exactly is "over";
	 * what it wrote of the text stays, cut short, for sbuf_text */
	if (n < 0 || (size_t)n >= room) {
		if (n >= 0 && room)
			b->len += room - 1;
		b->over = true;
		return;
	}
	b->len += (size_t)n;
}

long sbuf_cstr(struct sbuf *b)
{
	if (b->over || b->len >= b->cap) {
		b->over = true;
		return -ENOSPC;
	}
	b->p[b->len] = '\0';
	return (long)b->len;
}

const char *sbuf_text(struct sbuf *b)
{
	if (!b->cap)
		return "";
	if (!b->over && b->len < b->cap) {
		b->p[b->len] = '\0';
		return b->p;
	}
	if (b->cap >= 4)
		memcpy(b->p + (b->len + 4 <= b->cap ? b->len : b->cap - 4), "...", 4);
	else
		b->p[0] = '\0';
	return b->p;
}
