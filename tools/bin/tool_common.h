/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * tool_common.h - helpers shared by the test tools rm-backend and rm-load: address,
 * duration and size parsing, a growable byte buffer, a log-linear latency histogram and
 * the deterministic byte pattern used to verify echoed data. Every tools/bin/X.c becomes
 * its own binary, so this code is header-only (static inline) and depends on nothing else
 * in ringmesh.
 */
#ifndef RINGMESH_TOOL_COMMON_H
#define RINGMESH_TOOL_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/util.h" /* mono_ns: the clock of libringmesh */

/*
 * "IP:PORT" or "[IPv6]:PORT"; numeric only, so a typo cannot silently resolve to some
 * off-machine name. "localhost" is accepted as 127.0.0.1 for convenience.
 */
static inline int tc_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len,
				char *err, size_t errlen)
{
	char host[128];
	const char *colon, *port_s;
	char *end;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, rb - s - 1);
		host[rb - s - 1] = '\0';
		port_s = rb + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			goto bad;
		memcpy(host, s, colon - s);
		host[colon - s] = '\0';
		port_s = colon + 1;
	}
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (!*port_s || *end || errno || port > 65535)
		goto bad;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (strchr(host, ':')) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			goto bad;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			goto bad;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof(*a4);
	}
	return 0;
bad:
	snprintf(err, errlen, "bad address '%s' (want IP:PORT or [IPv6]:PORT)", s);
	return -EINVAL;
}

static inline void tc_fmt_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(a6->sin6_port));
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, ntohs(a4->sin_port));
	} else {
		snprintf(out, outlen, "unknown");
	}
}

static inline void tc_fmt_sockname(int fd, bool peer, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
		      : getsockname(fd, (struct sockaddr *)&ss, &len);

	if (rc < 0)
		ss.ss_family = AF_UNSPEC;
	tc_fmt_addr(&ss, out, outlen);
}

/* "250ms", "1.5s", "100us", "2m", "1h"; a bare number means milliseconds. */
static inline int tc_parse_duration_ns(const char *s, uint64_t *ns, char *err, size_t errlen)
{
	char *end;
	double v, mul;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || v < 0)
		goto bad;
	if (!*end || !strcmp(end, "ms"))
		mul = 1e6;
	else if (!strcmp(end, "s"))
		mul = 1e9;
	else if (!strcmp(end, "us") || !strcmp(end, "µs"))
		mul = 1e3;
	else if (!strcmp(end, "ns"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60e9;
	else if (!strcmp(end, "h"))
		mul = 3600e9;
	else
		goto bad;
	if (v * mul > 1e18)
		goto bad;
	*ns = (uint64_t)(v * mul);
	return 0;
bad:
	snprintf(err, errlen, "bad duration '%s' (want e.g. 250ms, 5s, 100us)", s);
	return -EINVAL;
}

/* Byte counts: "4096", "64K", "10M", "1G" (binary multiples; "KiB"/"MiB"/"GiB" too). */
static inline int tc_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	if (!(*s >= '0' && *s <= '9'))
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno)
		goto bad;
	if (*end == 'k' || *end == 'K')
		mul = 1ull << 10;
	else if (*end == 'm' || *end == 'M')
		mul = 1ull << 20;
	else if (*end == 'g' || *end == 'G')
		mul = 1ull << 30;
	else if (*end)
		goto bad;
	if (*end) {
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
		if (*end)
			goto bad;
	}
	if (v > UINT64_MAX / mul)
		goto bad;
	*out = v * mul;
	return 0;
bad:
	snprintf(err, errlen, "bad size '%s' (want e.g. 4096, 64K, 10M, 1G)", s);
	return -EINVAL;
}

/* Growable byte buffer: live data is p[off .. off+len). */
struct tc_buf {
	char *p;
	size_t off;
	size_t len;
	size_t cap;
};

static inline char *tc_buf_data(struct tc_buf *b)
{
	return b->p + b->off;
}

/* Make room for at least n more bytes after the live data; returns the tail pointer. */
static inline char *tc_buf_reserve(struct tc_buf *b, size_t n)
{
	if (b->off && b->off + b->len + n > b->cap) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	if (b->off + b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		char *np;

		while (ncap < b->len + n)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np)
			return NULL;
		b->p = np;
		b->cap = ncap;
	}
	return b->p + b->off + b->len;
}

static inline int tc_buf_append(struct tc_buf *b, const void *d, size_t n)
{
	char *t = tc_buf_reserve(b, n);

	if (!t)
		return -ENOMEM;
	memcpy(t, d, n);
	b->len += n;
	return 0;
}

__attribute__((format(printf, 2, 3))) static inline int tc_buf_printf(struct tc_buf *b,
								      const char *fmt, ...)
{
	va_list ap;
	int n;
	char *t = tc_buf_reserve(b, 256);

	if (!t)
		return -ENOMEM;
	va_start(ap, fmt);
	n = vsnprintf(t, b->cap - b->off - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= b->cap - b->off - b->len) {
		t = tc_buf_reserve(b, n + 1);
		if (!t)
			return -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(t, n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += n;
	return 0;
}

static inline void tc_buf_consume(struct tc_buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (!b->len)
		b->off = 0;
}

static inline void tc_buf_free(struct tc_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* JSON string body (without quotes); bytes >= 0x80 pass through untouched. */
static inline int tc_buf_json_str(struct tc_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		int rc;

		if (ch == '"' || ch == '\\')
			rc = tc_buf_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			rc = tc_buf_printf(b, "\\u%04x", ch);
		else
			rc = tc_buf_append(b, &s[i], 1);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * Latency histogram, HDR style: values below 2^TC_HIST_BITS are exact, above that each
 * power of two is split into 2^TC_HIST_BITS buckets, so any recorded value is reported
 * within 1/128 (< 0.8%) of itself. Values are nanoseconds.
 */
#define TC_HIST_BITS 7
#define TC_HIST_SUB (1u << TC_HIST_BITS)
#define TC_HIST_N (TC_HIST_SUB + (64 - TC_HIST_BITS) * TC_HIST_SUB)

struct tc_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t b[TC_HIST_N];
};

static inline unsigned int tc_hist_idx(uint64_t v)
{
	unsigned int e;

	if (v < TC_HIST_SUB)
		return (unsigned int)v;
	e = 63 - __builtin_clzll(v);
	return TC_HIST_SUB + (e - TC_HIST_BITS) * TC_HIST_SUB +
	       (unsigned int)((v >> (e - TC_HIST_BITS)) - TC_HIST_SUB);
}

/* Upper edge of a bucket, so a percentile never under-reports. */
static inline uint64_t tc_hist_val(unsigned int idx)
{
	unsigned int e, m;

	if (idx < TC_HIST_SUB)
		return idx;
	e = (idx - TC_HIST_SUB) / TC_HIST_SUB + TC_HIST_BITS;
	m = TC_HIST_SUB + (idx - TC_HIST_SUB) % TC_HIST_SUB;
	return (((uint64_t)m + 1) << (e - TC_HIST_BITS)) - 1;
}

static inline void tc_hist_add(struct tc_hist *h, uint64_t v)
{
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += v;
	h->b[tc_hist_idx(v)]++;
}

static inline void tc_hist_merge(struct tc_hist *dst, const struct tc_hist *src)
{
	if (!src->count)
		return;
	if (!dst->count || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (unsigned int i = 0; i < TC_HIST_N; i++)
		dst->b[i] += src->b[i];
}

/* p in [0, 100]; clamped to the exact max so p100 and tiny samples read true. */
static inline uint64_t tc_hist_pct(const struct tc_hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	rank = (uint64_t)(p / 100.0 * (double)h->count + 0.5);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (unsigned int i = 0; i < TC_HIST_N; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = tc_hist_val(i);

			return v > h->max ? h->max : v < h->min ? h->min : v;
		}
	}
	return h->max;
}

/*
 * Deterministic pseudo-random stream: byte at offset o of stream `seed` is byte (o % 8)
 * of splitmix64(seed + o / 8). Computable at any offset, so sender and verifier need no
 * shared state beyond the seed, and a mismatch can be reported by exact offset.
 */
static inline uint64_t tc_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline void tc_pattern_fill(uint64_t seed, uint64_t off, unsigned char *dst, size_t n)
{
	while (n) {
		uint64_t w = tc_splitmix64(seed + off / 8);
		unsigned int k = off % 8;

		/* whole aligned words at once (same stream on little endian): ~8x faster */
		if (!k && n >= 8 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
			memcpy(dst, &w, 8);
			dst += 8;
			off += 8;
			n -= 8;
			continue;
		}
		for (; k < 8 && n; k++, n--, off++)
			*dst++ = (unsigned char)(w >> (8 * k));
	}
}

#endif /* RINGMESH_TOOL_COMMON_H */
