/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * l7: the HTTP/1.1 proxy of a ringmeshd worker. Owns the L7 connection slots
 * (client side), the upstream connection objects and their per-endpoint keep-alive
 * pool, the worker's timer heap, and the request life cycle: parse (http1), route
 * (route_decide on the configuration published by cfgwatch), fault delay/abort,
 * redirect, endpoint choice (lb), forwarding over a pooled connection with
 * timeouts and retries, streaming of both bodies, Envoy-compatible local replies,
 * 101 tunnels, and the per-request metrics (stats_w).
 *
 * Admission (accept.c) hands over the connections to HTTP ports of declared
 * services (l7_accept) and asks which configuration is current (l7_config); the
 * ring calls l7_complete() for completions of the RING_OP_L7_* ops and l7_tick()
 * once per loop iteration (timers, quiescent point, next deadline).
 */
#ifndef RM_L7_H
#define RM_L7_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ringmesh/breaker.h"
#include "http/http1.h"

struct ring_worker;
struct conn_admit;
struct cfgw;
struct cfgw_cfg;
struct stats_w;
struct cb;
struct spans;

/* Defaults (a zero field in struct l7_opts means the default). */
#define L7_DEF_BUF (64u * 1024)	     /* client input buffer: head + kept body */
#define L7_DEF_MAX_HEAD (60u * 1024) /* Envoy's max_request_headers_kb */
#define L7_DEF_MAX_IDLE 1024	     /* most idle upstream connections per endpoint per worker */
#define L7_DEF_IDLE_MS 60000	     /* idle upstream connection lifetime */
#define L7_DEF_CONNECT_MS 5000
#define L7_DEF_RETRY_BUF (64u * 1024) /* bodies up to this are kept for retries */
/* Client connections of a worker with a request under way at once: each borrows one
 * buffer block while it is (an idle keep-alive connection holds none); more wait,
 * not read, until a block comes back. */
#define L7_DEF_REQ_BUFS 4096
/* Shadow (mirrored) requests in flight per worker: more are skipped and counted. */
#define L7_DEF_MAX_MIRRORS 128

struct l7_opts {
	struct http_limits lim; /* request and response head limits */
	uint32_t buf_size;
	uint32_t max_idle; /* per endpoint and worker */
	uint32_t idle_timeout_ms;
	uint32_t connect_timeout_ms;
	uint32_t retry_buf;   /* a request body larger than this is streamed, never retried */
	uint32_t req_bufs;    /* buffer blocks per worker (at most its connection slots) */
	uint32_t max_mirrors; /* shadow requests in flight per worker */
};

/* Daemon-wide state every worker shares (owned by main). */
struct l7_shared {
	struct cfgw *cw;       /* published configuration */
	struct stats_w *stats; /* NULL: no metrics */
	struct cb *cb; /* circuit breaker state (rm_breaker); NULL: no limits, no ejection */
	/* per breaker pool slot (cb->n_pools), a bit per worker with requests pending for
	 * a connection: the others hand their connection slots over to such a worker
	 * instead of reusing them (else the worker that frees a slot would always win it
	 * back), and cb_handoff counts the slots handed to each worker, still counted as
	 * open (l7_shared_cb allocates both) */
	uint64_t *cb_want;
	uint32_t (*cb_handoff)[64];
	struct l7_opts o;    /* defaults filled by l7_opts_fill */
	struct spans *spans; /* Zipkin reporter (--zipkin-url); NULL: no spans */
	uint32_t trace_ppm;  /* --trace-sampling: millionths of new traces sampled */
};

void l7_opts_fill(struct l7_opts *o);

/* Give the workers the breaker state cb (mapped, sized from its header): sets sh->cb
 * and allocates the per-pool arrays above. NULL frees them and unsets it. 0 or
 * -ENOMEM (then sh has none). Before the workers run, after they stopped. */
int l7_shared_cb(struct l7_shared *sh, struct cb *cb);

/* Per-worker state (called from the worker thread / owner). */
int l7_worker_init(struct ring_worker *w);
void l7_worker_fini(struct ring_worker *w);
/* In the worker thread once its io_uring exists: register the provided buffers of
 * idle connections' reads. 0 or -errno. */
int l7_ring_setup(struct ring_worker *w);

/* An admitted connection to an HTTP port of declared service svc. 0: l7 owns a->fd
 * and the original-destination entry from here on; -ENOMEM: no free slot (the
 * caller still owns them). */
int l7_accept(struct ring_worker *w, const struct conn_admit *a, int svc);

/* The configuration this worker uses now (refreshed every loop iteration) and its
 * random source: admission classifies and balances with them as L7 does. */
struct cfgw_cfg *l7_config(struct ring_worker *w);
uint64_t l7_random(struct ring_worker *w);

void l7_complete(struct ring_worker *w, uint64_t ud, int32_t res, uint32_t flags);

/* Start of a loop iteration, after the wait: take the configuration published
 * while this worker slept, so the completions about to be handled (an accept
 * classified by service, a request routed) use the newest one. */
void l7_pass_begin(struct ring_worker *w);

/* Run expired timers and pass a quiescent point; returns the next deadline
 * (CLOCK_MONOTONIC ns, UINT64_MAX if none). */
uint64_t l7_tick(struct ring_worker *w, uint64_t now);

/* Reset everything (worker stopping). */
void l7_abort_all(struct ring_worker *w);

/* A drain (ring_mode) looks at the connections: every response from now on ends its
 * connection (Connection: close), and one waiting between requests since
 * L7_DRAIN_IDLE_MS or longer is closed with a FIN. Not at once: a client that got a
 * response a moment ago may have its next request on the wire, which then gets a
 * response, where a FIN would have made it fail. */
#define L7_DRAIN_IDLE_MS 200
void l7_drain(struct ring_worker *w, uint64_t now);

#endif /* RM_L7_H */
