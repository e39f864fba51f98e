/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * trace: request identity and trace context propagation for the L7 proxy. Owns
 * x-request-id (kept, or a new UUID v4), reading an incoming B3 context (single
 * `b3` header, which wins, else the x-b3-* headers) or W3C `traceparent`, making the
 * upstream span (a child of the incoming one, or the root of a new trace), and the
 * header lines to send upstream (B3 multi-header, `b3` when the client used it, and
 * `traceparent` alongside).
 *
 * Pure: no I/O, no allocation; random ids come from an injected source. Invalid
 * context headers (bad hex, wrong length, all-zero ids) are treated as absent.
 */
#ifndef RM_TRACE_H
#define RM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_UUID_LEN 36   /* 8-4-4-4-12 */
#define TRACE_REQID_MAX 128 /* a longer incoming x-request-id is replaced */
#define TRACE_MAX_HDRS 8    /* header lines trace_inject() may write */
#define TRACE_HDR_BUF 512   /* buffer that always fits trace_inject()'s values */

struct trace_slice {
	const char *p;
	size_t len;
};

/* The incoming tracing headers (first occurrence of each), filled by trace_in_add(). */
struct trace_in {
	struct trace_slice request_id;	 /* x-request-id */
	struct trace_slice b3;		 /* b3 */
	struct trace_slice traceid;	 /* x-b3-traceid */
	struct trace_slice spanid;	 /* x-b3-spanid */
	struct trace_slice parentspanid; /* x-b3-parentspanid */
	struct trace_slice sampled;	 /* x-b3-sampled */
	struct trace_slice flags;	 /* x-b3-flags */
	struct trace_slice traceparent;	 /* traceparent */
	uint32_t seen;			 /* bit per field above, in order */
};

/* Offer one request header; returns true when it is a tracing header (which the
 * proxy then drops from the forwarded head: trace_inject() writes the new ones). */
bool trace_in_add(struct trace_in *in, const char *name, size_t nlen, const char *value,
		  size_t vlen);

enum trace_sampling {
	TRACE_UNDECIDED = 0,
	TRACE_NOT_SAMPLED,
	TRACE_SAMPLED,
};

enum trace_src {
	TRACE_SRC_NONE = 0,
	TRACE_SRC_B3_SINGLE, /* b3: ... */
	TRACE_SRC_B3_MULTI,  /* x-b3-* */
	TRACE_SRC_W3C,	     /* traceparent */
};

struct trace_ctx {
	bool has_ids;  /* trace id and span id are valid */
	bool trace128; /* the trace id has 128 bits (else trace_hi == 0 and 16 hex) */
	uint64_t trace_hi, trace_lo;
	uint64_t span_id;
	uint64_t parent_id; /* 0 = root span */
	enum trace_sampling sampling;
	bool debug;			      /* x-b3-flags: 1 or b3 "d": implies sampled */
	enum trace_src src;		      /* where the context came from */
	char request_id[TRACE_REQID_MAX + 1]; /* "" when absent */
};

/* Read an incoming context. Never fails: what is invalid is absent. */
void trace_parse(const struct trace_in *in, struct trace_ctx *out);

struct trace_rng {
	uint64_t (*next)(void *ctx); /* uniformly random 64 bits */
	void *ctx;
};

struct trace_opts {
	bool trace128; /* new traces get 128-bit ids (default 64) */
	bool sample;   /* sampling decision when the incoming context has none */
};

/*
 * The context of the upstream request: with incoming ids, same trace, new span,
 * parent = the incoming span, sampling and debug inherited; without, a new trace.
 * The request id is kept, or a new UUID v4 made from two draws.
 */
void trace_next(const struct trace_ctx *in, const struct trace_opts *o, const struct trace_rng *rng,
		struct trace_ctx *out);

/*
 * Sampling rate: millionths of the requests that start a trace here (an incoming
 * decision, x-b3-sampled, x-b3-flags, b3's state or traceparent's flag, is always
 * honoured by trace_next; this only decides the undecided ones).
 */
#define TRACE_RATE_ONE 1000000u	  /* 100 % */
#define TRACE_RATE_DEFAULT 10000u /* 1 %, Istio's PILOT_TRACE_SAMPLING default */

/* "PERCENT" (0..100, up to four decimals: "0.01", "100", "2.5") in millionths.
 * 0 or -EINVAL (not a number, more decimals, out of range). */
int trace_rate_parse(const char *s, uint32_t *ppm);
/* The decision for an undecided request: rnd (uniform 64 bits) below the rate. */
bool trace_sample(uint32_t ppm, uint64_t rnd);

/* UUID v4 text (36 chars + NUL) from 16 random bytes. */
void trace_uuid4(const uint8_t rnd[16], char out[TRACE_UUID_LEN + 1]);

struct trace_hdr {
	const char *name;  /* lower-case, static */
	const char *value; /* NUL-terminated, in the caller's buffer */
	size_t vlen;
};

/* Header lines to add to the upstream request; returns how many were written to
 * out (at most TRACE_MAX_HDRS), or -ENOSPC when cap or buflen is too small. */
int trace_inject(const struct trace_ctx *c, struct trace_hdr *out, size_t cap, char *buf,
		 size_t buflen);

/* Lower-case hex of the trace id (16 or 32 chars) / of a span id (16 chars). */
void trace_fmt_trace_id(const struct trace_ctx *c, char out[33]);
void trace_fmt_span_id(uint64_t id, char out[17]);

#endif /* RM_TRACE_H */
