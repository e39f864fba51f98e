/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Trace context propagation (see trace.h). Precedence when a client sends several
 * forms: a valid `b3` single header wins outright; then the x-b3-* headers; then
 * W3C traceparent (B3 is what the Istio apps of the workshop propagate, so it is
 * the primary format; traceparent only fills in when B3 carries no ids).
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "policy/trace.h"

static const char *const in_names[] = {
    "x-request-id",	 "b3",		 "x-b3-traceid", "x-b3-spanid",
    "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",	 "traceparent",
};

bool trace_in_add(struct trace_in *in, const char *name, size_t nlen, const char *value,
		  size_t vlen)
{
	struct trace_slice *f[] = {&in->request_id,   &in->b3,	    &in->traceid, &in->spanid,
				   &in->parentspanid, &in->sampled, &in->flags,	  &in->traceparent};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (strlen(in_names[i]) != nlen || strncasecmp(name, in_names[i], nlen) != 0)
			continue;
		if (!(in->seen & (1u << i))) {
			in->seen |= 1u << i;
			f[i]->p = value;
			f[i]->len = vlen;
		}
		return true;
	}
	return false;
}

/* ---- parsing ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case is invalid in B3 and W3C alike */
}

static bool hex64(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 16)
		return false;
	for (size_t i = 0; i < len; i++) {
		int h = hexval(p[i]);

		if (h < 0)
			return false;
		v = v << 4 | (uint64_t)h;
	}
	*out = v;
	return true;
}

static bool span_id(const char *p, size_t len, uint64_t *out)
{
	return len == 16 && hex64(p, 16, out) && *out != 0;
}

static bool trace_id(const char *p, size_t len, struct trace_ctx *c)
{
	uint64_t hi = 0, lo;

	if (len == 32) {
		if (!hex64(p, 16, &hi) || !hex64(p + 16, 16, &lo))
			return false;
	} else if (len != 16 || !hex64(p, 16, &lo)) {
		return false;
	}
	if (!hi && !lo)
		return false;
	c->trace_hi = hi;
	c->trace_lo = lo;
	c->trace128 = len == 32;
	return true;
}

static bool slice_is(struct trace_slice s, const char *v)
{
	return s.len == strlen(v) && memcmp(s.p, v, s.len) == 0;
}

/* b3 = {trace}-{span}[-{0|1|d}[-{parent}]] | 0 | 1 | d */
static bool parse_b3_single(struct trace_slice s, struct trace_ctx *c)
{
	struct trace_slice part[4];
	size_t n = 0, start = 0;
	struct trace_ctx t = {0};

	if (s.len == 1) {
		if (s.p[0] == '0')
			c->sampling = TRACE_NOT_SAMPLED;
		else if (s.p[0] == '1')
			c->sampling = TRACE_SAMPLED;
		else if (s.p[0] == 'd')
			c->debug = true, c->sampling = TRACE_SAMPLED;
		else
			return false;
		c->src = TRACE_SRC_B3_SINGLE;
		return true;
	}
	for (size_t i = 0; i <= s.len; i++) {
		if (i < s.len && s.p[i] != '-')
			continue;
		if (n == 4)
			return false;
		part[n].p = s.p + start;
		part[n++].len = i - start;
		start = i + 1;
	}
	if (n < 2 || !trace_id(part[0].p, part[0].len, &t) ||
	    !span_id(part[1].p, part[1].len, &t.span_id))
		return false;
	if (n >= 3) {
		if (slice_is(part[2], "1"))
			t.sampling = TRACE_SAMPLED;
		else if (slice_is(part[2], "0"))
			t.sampling = TRACE_NOT_SAMPLED;
		else if (slice_is(part[2], "d"))
			t.sampling = TRACE_SAMPLED, t.debug = true;
		else
			return false;
	}
	if (n == 4 && !span_id(part[3].p, part[3].len, &t.parent_id))
		return false;
	c->has_ids = true;
	c->trace128 = t.trace128;
	c->trace_hi = t.trace_hi;
	c->trace_lo = t.trace_lo;
	c->span_id = t.span_id;
	c->parent_id = t.parent_id;
	c->sampling = t.sampling;
	c->debug = t.debug;
	c->src = TRACE_SRC_B3_SINGLE;
	return true;
}

static void parse_b3_multi(const struct trace_in *in, struct trace_ctx *c)
{
	struct trace_ctx t = {0};

	if (slice_is(in->sampled, "1") || slice_is(in->sampled, "true"))
		c->sampling = TRACE_SAMPLED;
	else if (slice_is(in->sampled, "0") || slice_is(in->sampled, "false"))
		c->sampling = TRACE_NOT_SAMPLED;
	if (slice_is(in->flags, "1")) {
		c->debug = true;
		c->sampling = TRACE_SAMPLED;
	}
	if (!in->traceid.len || !trace_id(in->traceid.p, in->traceid.len, &t) ||
	    !span_id(in->spanid.p, in->spanid.len, &t.span_id))
		return;
	if (in->parentspanid.len &&
	    !span_id(in->parentspanid.p, in->parentspanid.len, &t.parent_id))
		return;
	c->has_ids = true;
	c->trace128 = t.trace128;
	c->trace_hi = t.trace_hi;
	c->trace_lo = t.trace_lo;
	c->span_id = t.span_id;
	c->parent_id = t.parent_id;
	c->src = TRACE_SRC_B3_MULTI;
}

/* traceparent = 2hex version - 32hex trace - 16hex parent - 2hex flags */
static bool parse_traceparent(struct trace_slice s, struct trace_ctx *c)
{
	uint64_t ver, flags, hi, lo, span;

	if (s.len < 55 || s.p[2] != '-' || s.p[35] != '-' || s.p[52] != '-')
		return false;
	if (!hex64(s.p, 2, &ver) || ver == 0xff)
		return false;
	/* version 00 has exactly these fields; later versions may append "-..." */
	if (s.len != 55 && (ver == 0 || s.p[55] != '-'))
		return false;
	if (!hex64(s.p + 3, 16, &hi) || !hex64(s.p + 19, 16, &lo) || (!hi && !lo) ||
	    !span_id(s.p + 36, 16, &span) || !hex64(s.p + 53, 2, &flags))
		return false;
	c->has_ids = true;
	c->trace128 = true;
	c->trace_hi = hi;
	c->trace_lo = lo;
	c->span_id = span;
	c->parent_id = 0;
	if (c->sampling == TRACE_UNDECIDED)
		c->sampling = (flags & 1) ? TRACE_SAMPLED : TRACE_NOT_SAMPLED;
	c->src = TRACE_SRC_W3C;
	return true;
}

static bool reqid_ok(struct trace_slice s)
{
	if (!s.len || s.len > TRACE_REQID_MAX)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.p[i] <= 0x20 || (unsigned char)s.p[i] >= 0x7f)
			return false;
	return true;
}

void trace_parse(const struct trace_in *in, struct trace_ctx *out)
{
	memset(out, 0, sizeof(*out));
	if (reqid_ok(in->request_id)) {
		memcpy(out->request_id, in->request_id.p, in->request_id.len);
		out->request_id[in->request_id.len] = '\0';
	}
	if (in->b3.len && parse_b3_single(in->b3, out))
		return;
	parse_b3_multi(in, out);
	if (!out->has_ids && in->traceparent.len)
		parse_traceparent(in->traceparent, out);
}

/* ---- new spans ---- */

static uint64_t nonzero(const struct trace_rng *rng)
{
	uint64_t v;

	for (int i = 0; i < 8; i++) {
		v = rng->next(rng->ctx);
		if (v)
			return v;
	}
	return 1; /* a broken source must not produce the invalid all-zero id */
}

int trace_rate_parse(const char *s, uint32_t *ppm)
{
	uint64_t whole = 0, frac = 0;
	int digits = 0, nd = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++, nd++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > 100)
			return -EINVAL;
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits == 4)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		if (!digits)
			return -EINVAL;
	}
	if (*p || !nd)
		return -EINVAL;
	for (int i = digits; i < 4; i++)
		frac *= 10;
	whole = whole * 10000 + frac;
	if (whole > TRACE_RATE_ONE)
		return -EINVAL;
	*ppm = (uint32_t)whole;
	return 0;
}

bool trace_sample(uint32_t ppm, uint64_t rnd)
{
	/* 2^64 % 10^6 leaves a bias of < 10^-13: irrelevant for sampling */
	return ppm >= TRACE_RATE_ONE || rnd % TRACE_RATE_ONE < ppm;
}

void trace_uuid4(const uint8_t rnd[16], char out[TRACE_UUID_LEN + 1])
{
	static const char hx[] = "0123456789abcdef";
	uint8_t b[16];
	size_t o = 0;

	memcpy(b, rnd, 16);
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hx[b[i] >> 4];
		out[o++] = hx[b[i] & 15];
	}
	out[o] = '\0';
}

void trace_next(const struct trace_ctx *in, const struct trace_opts *o, const struct trace_rng *rng,
		struct trace_ctx *out)
{
	struct trace_ctx c = *in;

	if (in->has_ids) {
		c.parent_id = in->span_id;
		c.span_id = nonzero(rng);
	} else {
		c.has_ids = true;
		c.trace128 = o && o->trace128;
		c.trace_hi = c.trace128 ? rng->next(rng->ctx) : 0;
		c.trace_lo = nonzero(rng);
		c.span_id = nonzero(rng);
		c.parent_id = 0;
	}
	if (c.debug)
		c.sampling = TRACE_SAMPLED;
	else if (c.sampling == TRACE_UNDECIDED)
		c.sampling = o && o->sample ? TRACE_SAMPLED : TRACE_NOT_SAMPLED;
	if (!c.request_id[0]) {
		uint64_t r[2] = {rng->next(rng->ctx), rng->next(rng->ctx)};
		uint8_t b[16];

		memcpy(b, r, 16);
		trace_uuid4(b, c.request_id);
	}
	*out = c;
}

/* ---- output ---- */

static void hex_u64(uint64_t v, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = hx[v & 15];
}

void trace_fmt_span_id(uint64_t id, char out[17])
{
	hex_u64(id, out);
	out[16] = '\0';
}

void trace_fmt_trace_id(const struct trace_ctx *c, char out[33])
{
	if (c->trace128) {
		hex_u64(c->trace_hi, out);
		hex_u64(c->trace_lo, out + 16);
		out[32] = '\0';
	} else {
		hex_u64(c->trace_lo, out);
		out[16] = '\0';
	}
}

struct obuf {
	struct trace_hdr *h;
	size_t cap, n;
	char *buf;
	size_t len, off;
	bool over;
};

/* Starts a value; the caller appends with ob_cat and closes with ob_end. */
static char *ob_begin(struct obuf *o)
{
	return o->over ? NULL : o->buf + o->off;
}

static void ob_cat(struct obuf *o, const char *s, size_t n)
{
	if (o->over || o->off + n + 1 > o->len) {
		o->over = true;
		return;
	}
	memcpy(o->buf + o->off, s, n);
	o->off += n;
}

static void ob_end(struct obuf *o, const char *name, char *start)
{
	if (o->over || o->n >= o->cap || o->off + 1 > o->len) {
		o->over = true;
		return;
	}
	o->buf[o->off] = '\0';
	o->h[o->n].name = name;
	o->h[o->n].value = start;
	o->h[o->n].vlen = (size_t)(o->buf + o->off - start);
	o->n++;
	o->off++;
}

static void ob_add(struct obuf *o, const char *name, const char *v)
{
	char *s = ob_begin(o);

	ob_cat(o, v, strlen(v));
	ob_end(o, name, s);
}

int trace_inject(const struct trace_ctx *c, struct trace_hdr *out, size_t cap, char *buf,
		 size_t buflen)
{
	struct obuf o = {out, cap, 0, buf, buflen, 0, !buf || !out};
	char tid[33], sid[17], pid[17], tid32[33];
	char *s;

	if (c->request_id[0])
		ob_add(&o, "x-request-id", c->request_id);
	if (!c->has_ids)
		return o.over ? -ENOSPC : (int)o.n;
	trace_fmt_trace_id(c, tid);
	trace_fmt_span_id(c->span_id, sid);
	trace_fmt_span_id(c->parent_id, pid);
	ob_add(&o, "x-b3-traceid", tid);
	ob_add(&o, "x-b3-spanid", sid);
	if (c->parent_id)
		ob_add(&o, "x-b3-parentspanid", pid);
	/* B3: debug implies sampled, so X-B3-Sampled is not sent with it */
	if (c->debug)
		ob_add(&o, "x-b3-flags", "1");
	else if (c->sampling != TRACE_UNDECIDED)
		ob_add(&o, "x-b3-sampled", c->sampling == TRACE_SAMPLED ? "1" : "0");
	if (c->src == TRACE_SRC_B3_SINGLE) {
		s = ob_begin(&o);
		ob_cat(&o, tid, strlen(tid));
		ob_cat(&o, "-", 1);
		ob_cat(&o, sid, 16);
		if (c->debug || c->sampling != TRACE_UNDECIDED) {
			ob_cat(&o, "-", 1);
			ob_cat(&o, c->debug ? "d" : c->sampling == TRACE_SAMPLED ? "1" : "0", 1);
			if (c->parent_id) {
				ob_cat(&o, "-", 1);
				ob_cat(&o, pid, 16);
			}
		}
		ob_end(&o, "b3", s);
	}
	/* W3C wants 128 bits: a 64-bit B3 trace id is left-padded with zeros */
	hex_u64(c->trace_hi, tid32);
	hex_u64(c->trace_lo, tid32 + 16);
	tid32[32] = '\0';
	s = ob_begin(&o);
	ob_cat(&o, "00-", 3);
	ob_cat(&o, tid32, 32);
	ob_cat(&o, "-", 1);
	ob_cat(&o, sid, 16);
	ob_cat(&o, c->sampling == TRACE_SAMPLED ? "-01" : "-00", 3);
	ob_end(&o, "traceparent", s);
	return o.over ? -ENOSPC : (int)o.n;
}
