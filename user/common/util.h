/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * util: the small primitives every layer had its own copy of. Owns the
 * caller-buffer error formatter (errf), the two clocks (CLOCK_MONOTONIC, the clock
 * of bpf_ktime_get_ns and of every deadline, and CLOCK_REALTIME, for start stamps
 * and flip times), and a bounded writer (struct sbuf) that appends into a caller's
 * buffer and remembers that something did not fit instead of failing at every call.
 *
 * Pure modules (user/http, user/policy) may use errf and sbuf; they never read a
 * clock (theirs is injected), which `make check` enforces. Include this from .c
 * files only, so that a file keeping a private helper of the same name still builds.
 */
#ifndef RM_UTIL_H
#define RM_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Format into err (when err && errlen) and return rc: `return errf(err, errlen, -EINVAL,
 * "--x: '%s': not a number", v);`. A message longer than errlen is cut short. */
int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with ": strerror(-rc)" appended when rc is non-zero: for failed syscalls. */
int errf_sys(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* CLOCK_MONOTONIC and CLOCK_REALTIME now, in nanoseconds. */
uint64_t mono_ns(void);
uint64_t realtime_ns(void);

/*
 * Bounded writer over a caller's buffer: appends until something does not fit (that
 * append is cut short at the end of the buffer), then sets `over` and ignores every
 * later append, so a writer checks once at the end.
 * Nothing is NUL-terminated until sbuf_cstr/sbuf_text: protocol text (an HTTP head)
 * may fill the buffer exactly.
 */
struct sbuf {
	char *p;    /* the caller's buffer */
	size_t cap; /* its size */
	size_t len; /* bytes written */
	bool over;  /* an append did not fit */
};

static inline struct sbuf sbuf_make(char *p, size_t cap)
{
	return (struct sbuf){.p = p, .cap = cap, .len = 0, .over = false};
}
void sbuf_put_slow(struct sbuf *b, const void *s, size_t n);
/* Inline: the HTTP head writers call these per field on the proxy's hot path. */
static inline void sbuf_put(struct sbuf *b, const void *s, size_t n)
{
	if (b->over || n > b->cap - b->len) {
		sbuf_put_slow(b, s, n);
		return;
	}
	if (n)
		__builtin_memcpy(b->p + b->len, s, n);
	b->len += n;
}
static inline void sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_put(b, s, __builtin_strlen(s));
}
void sbuf_u64(struct sbuf *b, uint64_t v);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The length written, or -ENOSPC when an append did not fit. */
static inline long sbuf_end(const struct sbuf *b)
{
	return b->over ? -ENOSPC : (long)b->len;
}
/* NUL-terminate: the length, or -ENOSPC when an append (or the NUL) did not fit. */
long sbuf_cstr(struct sbuf *b);
/* Text for people: NUL-terminated always (cap > 0); when something did not fit, what
 * fitted ends in "..." instead of failing. Returns b->p. */
const char *sbuf_text(struct sbuf *b);

#endif /* RM_UTIL_H */
