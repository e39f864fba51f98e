/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for trace propagation: x-request-id kept or generated (UUID v4 shape),
 * B3 multi and single header parsing with validation, single-header precedence,
 * sampling/debug propagation, W3C traceparent, child spans, new traces and the
 * injected header lines. */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/trace.h"

static uint64_t seq_vals[16];
static unsigned seq_pos;

/* A scripted source: returns seq_vals[] in order. */
static uint64_t seq_next(void *ctx)
{
	return seq_vals[seq_pos++ % 16];
}

static const struct trace_rng seq_rng = {seq_next, NULL};

static void seq_set(int n, ...)
{
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
		seq_vals[i] = va_arg(ap, uint64_t);
	va_end(ap);
	seq_pos = 0;
}

static void in_add(struct trace_in *in, const char *n, const char *v)
{
	assert_true(trace_in_add(in, n, strlen(n), v, strlen(v)));
}

static struct trace_ctx parse1(const char *n, const char *v)
{
	struct trace_in in = {0};
	struct trace_ctx c;

	in_add(&in, n, v);
	trace_parse(&in, &c);
	return c;
}

/* value of an injected header, or NULL */
static const char *hv(const struct trace_hdr *h, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(h[i].name, name)) {
			assert_int_equal(strlen(h[i].value), h[i].vlen);
			return h[i].value;
		}
	return NULL;
}

static void test_in_add(void **state)
{
	struct trace_in in = {0};

	assert_true(trace_in_add(&in, "X-B3-TraceId", 12, "a", 1));
	assert_true(trace_in_add(&in, "x-b3-traceid", 12, "b", 1)); /* first one kept */
	assert_int_equal(in.traceid.len, 1);
	assert_int_equal(in.traceid.p[0], 'a');
	assert_true(trace_in_add(&in, "TraceParent", 11, "x", 1));
	assert_true(trace_in_add(&in, "b3", 2, "1", 1));
	assert_false(trace_in_add(&in, "b33", 3, "1", 1));
	assert_false(trace_in_add(&in, "x-b3", 4, "1", 1));
	assert_false(trace_in_add(&in, "content-type", 12, "x", 1));
	assert_false(trace_in_add(&in, "x-ot-span-context", 17, "x", 1));
}

static void test_b3_multi_valid(void **state)
{
	struct trace_in in = {0};
	struct trace_ctx c;

	in_add(&in, "x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7");
	in_add(&in, "x-b3-spanid", "e457b5a2e4d86bd1");
	in_add(&in, "x-b3-parentspanid", "05e3ac9a4f6e3b90");
	in_add(&in, "x-b3-sampled", "1");
	in_add(&in, "x-request-id", "3f1e7b8a-req");
	trace_parse(&in, &c);
	assert_true(c.has_ids);
	assert_true(c.trace128);
	assert_int_equal(c.trace_hi, 0x80f198ee56343ba8ull);
	assert_int_equal(c.trace_lo, 0x64fe8b2a57d3eff7ull);
	assert_int_equal(c.span_id, 0xe457b5a2e4d86bd1ull);
	assert_int_equal(c.parent_id, 0x05e3ac9a4f6e3b90ull);
	assert_int_equal(c.sampling, TRACE_SAMPLED);
	assert_false(c.debug);
	assert_int_equal(c.src, TRACE_SRC_B3_MULTI);
	assert_string_equal(c.request_id, "3f1e7b8a-req");

	c = parse1("x-b3-sampled", "false");
	assert_false(c.has_ids);
	assert_int_equal(c.sampling, TRACE_NOT_SAMPLED);
	c = parse1("x-b3-sampled", "true");
	assert_int_equal(c.sampling, TRACE_SAMPLED);
	c = parse1("x-b3-sampled", "yes");
	assert_int_equal(c.sampling, TRACE_UNDECIDED);
	c = parse1("x-b3-flags", "1");
	assert_true(c.debug);
	assert_int_equal(c.sampling, TRACE_SAMPLED);
	c = parse1("x-b3-flags", "0");
	assert_false(c.debug);
}

/* Each invalid form: ids treated as absent. */
static void test_b3_multi_invalid(void **state)
{
	static const char *const bad[][3] = {
	    {"463ac35c9f6413ad", "a2fb4a1d1a96d31", ""},		/* span 15 hex */
	    {"463ac35c9f6413ad", "a2fb4a1d1a96d312a", ""},		/* span 17 hex */
	    {"463AC35C9F6413AD", "a2fb4a1d1a96d312", ""},		/* upper case */
	    {"463ac35c9f6413a", "a2fb4a1d1a96d312", ""},		/* trace 15 hex */
	    {"463ac35c9f6413ad463ac35c9f6413", "a2fb4a1d1a96d312", ""}, /* trace 30 */
	    {"0000000000000000", "a2fb4a1d1a96d312", ""},		/* zero trace */
	    {"463ac35c9f6413ad", "0000000000000000", ""},		/* zero span */
	    {"463ac35c9f6413ag", "a2fb4a1d1a96d312", ""},		/* not hex */
	    {"463ac35c9f6413ad", "", ""},				/* no span */
	    {"463ac35c9f6413ad", "a2fb4a1d1a96d312", "xyz"},		/* bad parent */
	    {"463ac35c9f6413ad", "a2fb4a1d1a96d312", "0000000000000000"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct trace_in in = {0};
		struct trace_ctx c;

		in_add(&in, "x-b3-traceid", bad[i][0]);
		if (bad[i][1][0])
			in_add(&in, "x-b3-spanid", bad[i][1]);
		if (bad[i][2][0])
			in_add(&in, "x-b3-parentspanid", bad[i][2]);
		in_add(&in, "x-b3-sampled", "0");
		trace_parse(&in, &c);
		if (c.has_ids)
			print_error("case %zu parsed as valid\n", i);
		assert_false(c.has_ids);
		/* the sampling decision alone still travels */
		assert_int_equal(c.sampling, TRACE_NOT_SAMPLED);
	}
}

static void test_b3_single(void **state)
{
	struct trace_ctx c;

	c = parse1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
	assert_true(c.has_ids);
	assert_true(c.trace128);
	assert_int_equal(c.span_id, 0xe457b5a2e4d86bd1ull);
	assert_int_equal(c.parent_id, 0x05e3ac9a4f6e3b90ull);
	assert_int_equal(c.sampling, TRACE_SAMPLED);
	assert_int_equal(c.src, TRACE_SRC_B3_SINGLE);

	c = parse1("b3", "e457b5a2e4d86bd1-05e3ac9a4f6e3b90");
	assert_true(c.has_ids);
	assert_false(c.trace128);
	assert_int_equal(c.trace_lo, 0xe457b5a2e4d86bd1ull);
	assert_int_equal(c.sampling, TRACE_UNDECIDED);
	assert_int_equal(c.parent_id, 0);

	c = parse1("b3", "e457b5a2e4d86bd1-05e3ac9a4f6e3b90-d");
	assert_true(c.debug);
	assert_int_equal(c.sampling, TRACE_SAMPLED);

	c = parse1("b3", "e457b5a2e4d86bd1-05e3ac9a4f6e3b90-0");
	assert_int_equal(c.sampling, TRACE_NOT_SAMPLED);

	c = parse1("b3", "0");
	assert_false(c.has_ids);
	assert_int_equal(c.sampling, TRACE_NOT_SAMPLED);
	assert_int_equal(c.src, TRACE_SRC_B3_SINGLE);
	c = parse1("b3", "1");
	assert_int_equal(c.sampling, TRACE_SAMPLED);
	c = parse1("b3", "d");
	assert_true(c.debug);

	static const char *const bad[] = {
	    "2",
	    "",
	    "e457b5a2e4d86bd1",
	    "e457b5a2e4d86bd1-",
	    "e457b5a2e4d86bd1-05e3ac9a4f6e3b90-true", /* single form: 0/1/d only */
	    "e457b5a2e4d86bd1-05e3ac9a4f6e3b90-1-",
	    "e457b5a2e4d86bd1-05e3ac9a4f6e3b90-1-05e3",
	    "e457b5a2e4d86bd1-05e3ac9a4f6e3b90-1-05e3ac9a4f6e3b90-1",
	    "E457B5A2E4D86BD1-05e3ac9a4f6e3b90",
	    "e457b5a2e4d86bd1-05e3ac9a4f6e3b9",
	    "e457b5a2e4d86bd1--1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = parse1("b3", bad[i]);
		if (c.has_ids || c.sampling != TRACE_UNDECIDED || c.src != TRACE_SRC_NONE)
			print_error("b3 \"%s\" accepted\n", bad[i]);
		assert_false(c.has_ids);
		assert_int_equal(c.sampling, TRACE_UNDECIDED);
		assert_int_equal(c.src, TRACE_SRC_NONE);
	}
}

static void test_b3_single_wins(void **state)
{
	struct trace_in in = {0};
	struct trace_ctx c;

	in_add(&in, "x-b3-traceid", "1111111111111111");
	in_add(&in, "x-b3-spanid", "2222222222222222");
	in_add(&in, "x-b3-sampled", "1");
	in_add(&in, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	in_add(&in, "b3", "3333333333333333-4444444444444444-0");
	trace_parse(&in, &c);
	assert_int_equal(c.src, TRACE_SRC_B3_SINGLE);
	assert_int_equal(c.trace_lo, 0x3333333333333333ull);
	assert_int_equal(c.span_id, 0x4444444444444444ull);
	assert_int_equal(c.sampling, TRACE_NOT_SAMPLED);

	/* an invalid single header is absent: the multi form is used */
	memset(&in, 0, sizeof(in));
	in_add(&in, "b3", "garbage");
	in_add(&in, "x-b3-traceid", "1111111111111111");
	in_add(&in, "x-b3-spanid", "2222222222222222");
	trace_parse(&in, &c);
	assert_int_equal(c.src, TRACE_SRC_B3_MULTI);
	assert_int_equal(c.trace_lo, 0x1111111111111111ull);

	/* B3 over traceparent; traceparent when B3 has no ids */
	memset(&in, 0, sizeof(in));
	in_add(&in, "x-b3-traceid", "1111111111111111");
	in_add(&in, "x-b3-spanid", "2222222222222222");
	in_add(&in, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	trace_parse(&in, &c);
	assert_int_equal(c.src, TRACE_SRC_B3_MULTI);
	memset(&in, 0, sizeof(in));
	in_add(&in, "x-b3-sampled", "0");
	in_add(&in, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	trace_parse(&in, &c);
	assert_int_equal(c.src, TRACE_SRC_W3C);
	assert_int_equal(c.sampling, TRACE_NOT_SAMPLED); /* the explicit B3 decision stays */
}

static void test_traceparent(void **state)
{
	struct trace_ctx c;

	c = parse1("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	assert_true(c.has_ids);
	assert_true(c.trace128);
	assert_int_equal(c.trace_hi, 0x0af7651916cd43ddull);
	assert_int_equal(c.trace_lo, 0x8448eb211c80319cull);
	assert_int_equal(c.span_id, 0xb7ad6b7169203331ull);
	assert_int_equal(c.sampling, TRACE_SAMPLED);
	assert_int_equal(c.src, TRACE_SRC_W3C);
	c = parse1("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
	assert_int_equal(c.sampling, TRACE_NOT_SAMPLED);
	/* a future version may append fields */
	c = parse1("traceparent", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xyz");
	assert_true(c.has_ids);

	static const char *const bad[] = {
	    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xyz", /* v00 + extra */
	    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",	   /* version ff */
	    "00-00000000000000000000000000000000-b7ad6b7169203331-01",	   /* zero trace */
	    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",	   /* zero parent */
	    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",	   /* upper case */
	    "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",	   /* short trace */
	    "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
	    "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = parse1("traceparent", bad[i]);
		if (c.has_ids)
			print_error("traceparent \"%s\" accepted\n", bad[i]);
		assert_false(c.has_ids);
		assert_int_equal(c.sampling, TRACE_UNDECIDED);
	}
}

static void test_uuid4(void **state)
{
	uint8_t r[16];
	char u[TRACE_UUID_LEN + 1];

	memset(r, 0xff, sizeof(r));
	trace_uuid4(r, u);
	assert_string_equal(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
	memset(r, 0, sizeof(r));
	trace_uuid4(r, u);
	assert_string_equal(u, "00000000-0000-4000-8000-000000000000");
	for (int i = 0; i < 16; i++)
		r[i] = (uint8_t)(i * 17 + 3);
	trace_uuid4(r, u);
	assert_int_equal(strlen(u), TRACE_UUID_LEN);
	for (int i = 0; i < TRACE_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(u[i], '-');
		else
			assert_true(isxdigit((unsigned char)u[i]) && !isupper((unsigned char)u[i]));
	}
	assert_int_equal(u[14], '4');
	assert_non_null(strchr("89ab", u[19]));
}

static void test_request_id(void **state)
{
	struct trace_in in = {0};
	struct trace_ctx c, n;
	struct trace_opts o = {0};
	char longid[TRACE_REQID_MAX + 2];

	/* absent: generated from two draws */
	seq_set(4, 0x1111ull, 0x2222ull, 0x0123456789abcdefull, 0xfedcba9876543210ull);
	trace_parse(&in, &c);
	assert_string_equal(c.request_id, "");
	trace_next(&c, &o, &seq_rng, &n);
	assert_int_equal(strlen(n.request_id), TRACE_UUID_LEN);
	assert_int_equal(n.request_id[14], '4');
	/* little-endian bytes of the two draws, version and variant bits forced */
	assert_string_equal(n.request_id, "efcdab89-6745-4301-9032-547698badcfe");

	/* present: kept */
	in_add(&in, "x-request-id", "a0b1c2d3-keep-me");
	trace_parse(&in, &c);
	trace_next(&c, &o, &seq_rng, &n);
	assert_string_equal(n.request_id, "a0b1c2d3-keep-me");

	/* unusable (too long, control bytes, spaces): replaced */
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	const char *bad[] = {longid, "has space", "tab\there", ""};
	for (size_t i = 0; i < 4; i++) {
		memset(&in, 0, sizeof(in));
		in_add(&in, "x-request-id", bad[i]);
		trace_parse(&in, &c);
		assert_string_equal(c.request_id, "");
		trace_next(&c, &o, &seq_rng, &n);
		assert_int_equal(strlen(n.request_id), TRACE_UUID_LEN);
	}
	longid[TRACE_REQID_MAX] = '\0'; /* exactly the maximum is fine */
	memset(&in, 0, sizeof(in));
	in_add(&in, "x-request-id", longid);
	trace_parse(&in, &c);
	assert_string_equal(c.request_id, longid);
}

static void test_child_span(void **state)
{
	struct trace_in in = {0};
	struct trace_ctx c, n;
	struct trace_opts o = {.sample = false};
	struct trace_hdr h[TRACE_MAX_HDRS];
	char buf[TRACE_HDR_BUF];
	int k;

	in_add(&in, "x-request-id", "rid-1");
	in_add(&in, "x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124");
	in_add(&in, "x-b3-spanid", "a2fb4a1d1a96d312");
	in_add(&in, "x-b3-parentspanid", "0020000000000001");
	in_add(&in, "x-b3-sampled", "1");
	trace_parse(&in, &c);
	seq_set(1, 0xbeefbeefbeefbeefull);
	trace_next(&c, &o, &seq_rng, &n);
	assert_int_equal(seq_pos, 1); /* one draw: the span id */
	assert_int_equal(n.trace_hi, c.trace_hi);
	assert_int_equal(n.trace_lo, c.trace_lo);
	assert_int_equal(n.parent_id, 0xa2fb4a1d1a96d312ull);
	assert_int_equal(n.span_id, 0xbeefbeefbeefbeefull);
	assert_int_equal(n.sampling, TRACE_SAMPLED); /* inherited, not o.sample */

	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_int_equal(k, 6);
	assert_string_equal(hv(h, k, "x-request-id"), "rid-1");
	assert_string_equal(hv(h, k, "x-b3-traceid"), "463ac35c9f6413ad48485a3953bb6124");
	assert_string_equal(hv(h, k, "x-b3-spanid"), "beefbeefbeefbeef");
	assert_string_equal(hv(h, k, "x-b3-parentspanid"), "a2fb4a1d1a96d312");
	assert_string_equal(hv(h, k, "x-b3-sampled"), "1");
	assert_null(hv(h, k, "x-b3-flags"));
	assert_null(hv(h, k, "b3")); /* the client used the multi form */
	assert_string_equal(hv(h, k, "traceparent"),
			    "00-463ac35c9f6413ad48485a3953bb6124-beefbeefbeefbeef-01");

	/* a draw of zero is never an id */
	seq_set(2, 0ull, 7ull);
	trace_next(&c, &o, &seq_rng, &n);
	assert_int_equal(n.span_id, 7);
}

static void test_child_of_single_and_debug(void **state)
{
	struct trace_in in = {0};
	struct trace_ctx c, n;
	struct trace_opts o = {0};
	struct trace_hdr h[TRACE_MAX_HDRS];
	char buf[TRACE_HDR_BUF];
	int k;

	in_add(&in, "b3", "80f198ee56343ba8-e457b5a2e4d86bd1-d");
	in_add(&in, "x-request-id", "r");
	trace_parse(&in, &c);
	seq_set(1, 0x0000000000000abcull);
	trace_next(&c, &o, &seq_rng, &n);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_int_equal(k, 7);
	assert_string_equal(hv(h, k, "x-b3-traceid"), "80f198ee56343ba8");
	assert_string_equal(hv(h, k, "x-b3-spanid"), "0000000000000abc");
	assert_string_equal(hv(h, k, "x-b3-parentspanid"), "e457b5a2e4d86bd1");
	assert_string_equal(hv(h, k, "x-b3-flags"), "1");
	assert_null(hv(h, k, "x-b3-sampled")); /* debug implies it */
	assert_string_equal(hv(h, k, "b3"), "80f198ee56343ba8-0000000000000abc-d-e457b5a2e4d86bd1");
	/* 64-bit ids are left-padded to W3C's 128 bits */
	assert_string_equal(hv(h, k, "traceparent"),
			    "00-000000000000000080f198ee56343ba8-0000000000000abc-01");
}

static void test_new_trace(void **state)
{
	struct trace_in in = {0};
	struct trace_ctx c, n;
	struct trace_opts o = {.trace128 = false, .sample = true};
	struct trace_hdr h[TRACE_MAX_HDRS];
	char buf[TRACE_HDR_BUF];
	int k;

	trace_parse(&in, &c);
	assert_false(c.has_ids);
	seq_set(4, 0x1000000000000001ull, 0x2000000000000002ull, 5ull, 6ull);
	trace_next(&c, &o, &seq_rng, &n);
	assert_true(n.has_ids);
	assert_false(n.trace128); /* 64-bit by default */
	assert_int_equal(n.trace_hi, 0);
	assert_int_equal(n.trace_lo, 0x1000000000000001ull);
	assert_int_equal(n.span_id, 0x2000000000000002ull);
	assert_int_equal(n.parent_id, 0);
	assert_int_equal(n.sampling, TRACE_SAMPLED);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_int_equal(k, 5); /* request id, trace, span, sampled, traceparent */
	assert_null(hv(h, k, "x-b3-parentspanid"));
	assert_string_equal(hv(h, k, "x-b3-traceid"), "1000000000000001");
	assert_string_equal(hv(h, k, "x-b3-sampled"), "1");

	/* 128-bit option, and the sampling decision of "b3: 0" travels into the new trace */
	o.trace128 = true;
	c = (struct trace_ctx){0};
	memset(&in, 0, sizeof(in));
	in_add(&in, "b3", "0");
	trace_parse(&in, &c);
	seq_set(5, 0xaull, 0xbull, 0xcull, 1ull, 2ull);
	trace_next(&c, &o, &seq_rng, &n);
	assert_true(n.trace128);
	assert_int_equal(n.trace_hi, 0xa);
	assert_int_equal(n.trace_lo, 0xb);
	assert_int_equal(n.span_id, 0xc);
	assert_int_equal(n.sampling, TRACE_NOT_SAMPLED);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_string_equal(hv(h, k, "x-b3-traceid"), "000000000000000a000000000000000b");
	assert_string_equal(hv(h, k, "x-b3-sampled"), "0");
	assert_string_equal(hv(h, k, "b3"), "000000000000000a000000000000000b-000000000000000c-0");
	assert_string_equal(hv(h, k, "traceparent"),
			    "00-000000000000000a000000000000000b-000000000000000c-00");

	/* W3C in, W3C + B3 out: sampled flag carried */
	memset(&in, 0, sizeof(in));
	in_add(&in, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	trace_parse(&in, &c);
	seq_set(3, 0x99ull, 1ull, 2ull);
	o.sample = false;
	trace_next(&c, &o, &seq_rng, &n);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_string_equal(hv(h, k, "traceparent"),
			    "00-0af7651916cd43dd8448eb211c80319c-0000000000000099-01");
	assert_string_equal(hv(h, k, "x-b3-parentspanid"), "b7ad6b7169203331");
	assert_string_equal(hv(h, k, "x-b3-sampled"), "1");
}

static void test_inject_space(void **state)
{
	struct trace_in in = {0};
	struct trace_ctx c, n;
	struct trace_opts o = {0};
	struct trace_hdr h[TRACE_MAX_HDRS];
	char buf[TRACE_HDR_BUF], id[33];
	int k;

	in_add(&in, "b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
	trace_parse(&in, &c);
	seq_set(3, 1ull, 2ull, 3ull);
	trace_next(&c, &o, &seq_rng, &n);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_int_equal(k, 7); /* the most there can be without debug */
	assert_int_equal(trace_inject(&n, h, 6, buf, sizeof(buf)), -ENOSPC);
	assert_int_equal(trace_inject(&n, h, TRACE_MAX_HDRS, buf, 100), -ENOSPC);
	assert_int_equal(trace_inject(&n, h, TRACE_MAX_HDRS, NULL, 0), -ENOSPC);
	trace_fmt_trace_id(&n, id);
	assert_string_equal(id, "80f198ee56343ba864fe8b2a57d3eff7");
	trace_fmt_span_id(0xabcull, id);
	assert_string_equal(id, "0000000000000abc");
	/* no ids: only the request id */
	memset(&c, 0, sizeof(c));
	strcpy(c.request_id, "x");
	assert_int_equal(trace_inject(&c, h, TRACE_MAX_HDRS, buf, sizeof(buf)), 1);
}

static void test_rate_parse(void **state)
{
	uint32_t r = 7;

	assert_int_equal(trace_rate_parse("1", &r), 0);
	assert_int_equal(r, TRACE_RATE_DEFAULT);
	assert_int_equal(trace_rate_parse("0", &r), 0);
	assert_int_equal(r, 0);
	assert_int_equal(trace_rate_parse("100", &r), 0);
	assert_int_equal(r, TRACE_RATE_ONE);
	assert_int_equal(trace_rate_parse("100.0000", &r), 0);
	assert_int_equal(r, TRACE_RATE_ONE);
	assert_int_equal(trace_rate_parse("0.01", &r), 0);
	assert_int_equal(r, 100);
	assert_int_equal(trace_rate_parse("2.5", &r), 0);
	assert_int_equal(r, 25000);
	assert_int_equal(trace_rate_parse("0.0001", &r), 0);
	assert_int_equal(r, 1);
	r = 7;
	static const char *const bad[] = {
	    "",	       "-1",	"100.01", "101",  "1e2",
	    "0.00001", ".5",	"5.",	  " 1",	  "1 ",
	    "abc",     "1.2.3", "+1",	  "1000", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(trace_rate_parse(bad[i], &r), -EINVAL);
	assert_int_equal(r, 7); /* untouched on error */
}

static void test_sample_rate(void **state)
{
	uint64_t hits = 0;

	assert_false(trace_sample(0, 0));
	assert_false(trace_sample(0, UINT64_MAX));
	assert_true(trace_sample(TRACE_RATE_ONE, 0));
	assert_true(trace_sample(TRACE_RATE_ONE, UINT64_MAX));
	assert_true(trace_sample(10000, 9999));
	assert_false(trace_sample(10000, 10000));
	assert_true(trace_sample(10000, 1000000 + 5));
	/* every residue once: exactly the rate */
	for (uint64_t v = 0; v < TRACE_RATE_ONE; v++)
		hits += trace_sample(25000, v * 7919 % TRACE_RATE_ONE);
	assert_int_equal(hits, 25000);
}

/* The upstream decision for one set of incoming headers at rate ppm, the random
 * draw being rnd (the first value of the injected source). */
static struct trace_ctx decide(const char *const *hdrs, uint32_t ppm, uint64_t rnd)
{
	struct trace_in in = {0};
	struct trace_ctx c, n;
	struct trace_opts o = {.trace128 = true};

	for (; hdrs && hdrs[0]; hdrs += 2)
		in_add(&in, hdrs[0], hdrs[1]);
	trace_parse(&in, &c);
	o.sample = trace_sample(ppm, rnd);
	seq_set(6, 11ull, 12ull, 13ull, 14ull, 15ull, 16ull);
	trace_next(&c, &o, &seq_rng, &n);
	return n;
}

static void test_sampling_decision(void **state)
{
	static const char *const tid[] = {"x-b3-traceid", "463ac35c9f6413ad", "x-b3-spanid",
					  "a2fb4a1d1a96d312", NULL};
	static const char *const s1[] = {"x-b3-sampled", "1", NULL};
	static const char *const s0[] = {"x-b3-sampled", "0", NULL};
	static const char *const st[] = {"x-b3-sampled", "true", NULL};
	static const char *const sf[] = {"x-b3-sampled", "false", NULL};
	static const char *const fl[] = {"x-b3-flags", "1", "x-b3-sampled", "0", NULL};
	static const char *const b30[] = {"b3", "0", NULL};
	static const char *const b31[] = {"b3", "1", NULL};
	static const char *const b3d[] = {"b3", "d", NULL};
	static const char *const b3ids0[] = {"b3", "463ac35c9f6413ad-a2fb4a1d1a96d312-0",
					     "x-b3-sampled", "1", NULL};
	static const char *const b3ids[] = {"b3", "463ac35c9f6413ad-a2fb4a1d1a96d312", NULL};
	struct trace_hdr h[TRACE_MAX_HDRS];
	char buf[TRACE_HDR_BUF];
	struct trace_ctx n;
	int k;

	/* no context: the rate decides, both ways, and a new 128-bit trace is a root */
	n = decide(NULL, TRACE_RATE_ONE, 0);
	assert_int_equal(n.sampling, TRACE_SAMPLED);
	assert_true(n.trace128);
	assert_int_equal(n.parent_id, 0);
	n = decide(NULL, 0, 0);
	assert_int_equal(n.sampling, TRACE_NOT_SAMPLED);
	n = decide(NULL, 10000, 10000); /* 1 %, draw just above */
	assert_int_equal(n.sampling, TRACE_NOT_SAMPLED);
	n = decide(NULL, 10000, 9999);
	assert_int_equal(n.sampling, TRACE_SAMPLED);
	/* ids without a decision: the rate decides, trace and parent kept */
	n = decide(tid, TRACE_RATE_ONE, 0);
	assert_int_equal(n.sampling, TRACE_SAMPLED);
	assert_int_equal(n.trace_lo, 0x463ac35c9f6413adull);
	assert_false(n.trace128);
	assert_int_equal(n.parent_id, 0xa2fb4a1d1a96d312ull);
	n = decide(b3ids, 0, 0);
	assert_int_equal(n.sampling, TRACE_NOT_SAMPLED);
	/* x-b3-sampled 1/0 and true/false beat the rate */
	assert_int_equal(decide(s1, 0, 0).sampling, TRACE_SAMPLED);
	assert_int_equal(decide(st, 0, 0).sampling, TRACE_SAMPLED);
	assert_int_equal(decide(s0, TRACE_RATE_ONE, 0).sampling, TRACE_NOT_SAMPLED);
	assert_int_equal(decide(sf, TRACE_RATE_ONE, 0).sampling, TRACE_NOT_SAMPLED);
	/* x-b3-flags: 1 is debug and sampled, whatever Sampled says; Flags goes upstream */
	n = decide(fl, 0, 0);
	assert_true(n.debug);
	assert_int_equal(n.sampling, TRACE_SAMPLED);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_string_equal(hv(h, k, "x-b3-flags"), "1");
	assert_null(hv(h, k, "x-b3-sampled"));
	/* b3 single state alone: 0 denies, 1 accepts, d is debug */
	n = decide(b30, TRACE_RATE_ONE, 0);
	assert_int_equal(n.sampling, TRACE_NOT_SAMPLED);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_string_equal(hv(h, k, "x-b3-sampled"), "0");
	n = decide(b31, 0, 0);
	assert_int_equal(n.sampling, TRACE_SAMPLED);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_string_equal(hv(h, k, "x-b3-sampled"), "1");
	assert_true(strstr(hv(h, k, "b3"), "-1") != NULL);
	n = decide(b3d, 0, 0);
	assert_true(n.debug);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_string_equal(hv(h, k, "x-b3-flags"), "1");
	assert_null(hv(h, k, "x-b3-sampled"));
	/* the single header's state wins over x-b3-sampled */
	n = decide(b3ids0, TRACE_RATE_ONE, 0);
	assert_int_equal(n.sampling, TRACE_NOT_SAMPLED);
	k = trace_inject(&n, h, TRACE_MAX_HDRS, buf, sizeof(buf));
	assert_string_equal(hv(h, k, "x-b3-sampled"), "0");
	assert_string_equal(hv(h, k, "x-b3-parentspanid"), "a2fb4a1d1a96d312");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_in_add),
	    cmocka_unit_test(test_b3_multi_valid),
	    cmocka_unit_test(test_b3_multi_invalid),
	    cmocka_unit_test(test_b3_single),
	    cmocka_unit_test(test_b3_single_wins),
	    cmocka_unit_test(test_traceparent),
	    cmocka_unit_test(test_uuid4),
	    cmocka_unit_test(test_request_id),
	    cmocka_unit_test(test_child_span),
	    cmocka_unit_test(test_child_of_single_and_debug),
	    cmocka_unit_test(test_new_trace),
	    cmocka_unit_test(test_inject_space),
	    cmocka_unit_test(test_rate_parse),
	    cmocka_unit_test(test_sample_rate),
	    cmocka_unit_test(test_sampling_decision),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
