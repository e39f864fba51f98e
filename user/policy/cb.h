/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cb: circuit breaking and outlier ejection over the rm_breaker map
 * (include/ringmesh/breaker.h). Owns finding or claiming pool and host slots, the admission
 * counters (connections, pending requests, active requests, retries) and the outlier state machine
 * (consecutive errors -> ejection for k x base, max ejection percent, the sweep that returns
 * hosts). Every mutation is an atomic on the shared memory, so limits hold in
 * total across all worker threads (and processes mapping the same pin).
 *
 * Pure logic: the memory is attached by the caller (ringmeshd/cb_pin.h maps the pinned
 * map), the clock is a `now` argument (CLOCK_MONOTONIC ns), nothing prints.
 *
 * A request's life, as the proxy calls it (pool p, host h):
 *   pick:     lb_pick with hooks {cb_lb_available, cb_lb_active, &cb_lb_ctx}
 *   connect:  reuse an idle connection, or cb_conn_try_open(p): -EBUSY means
 *             maxConnections is reached: the request waits, cb_pending_try_enter(p)
 *             (-EOVERFLOW -> 503 UO), and leaves with cb_pending_leave(p) when it
 *             gets a connection (or gives up); every opened connection ends with
 *             cb_conn_close(p), whichever way it ends
 *   start:    cb_request_try_start(p, h) (-EOVERFLOW -> 503 UO), a retry also
 *             cb_retry_try_start(p) (-EOVERFLOW: no retry, answer as if exhausted)
 *   result:   cb_host_result(cb, h, cb_outcome_of_status(status) or CB_CONNECT_FAIL/
 *             CB_TIMEOUT/CB_RESET, now); overflows are never reported (not host errors)
 *   finish:   cb_request_finish(p, h) [+ cb_retry_finish(p)]; keep the connection only
 *             if cb_conn_keep(p, requests_on_it)
 *   timer:    cb_sweep(cb, now, ...) at the returned next time
 *
 * A NULL pool or host (slot table full) admits everything and never ejects: the
 * breaker fails open, as the data path does.
 */
#ifndef RM_CB_H
#define RM_CB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmesh/breaker.h"

/* The shared state's regions (breaker.h, "Layout"), located from its header. */
struct cb {
	struct rm_cb_hdr *h;
	struct rm_cb_pool *pools; /* n_pools slots */
	struct rm_cb_host *hosts; /* n_hosts slots */
	uint32_t n_pools, n_hosts;
	void *map; /* mmapped region (NULL when attached to caller memory) */
	size_t map_len;
	int fd;
};

/* The sizes of a map for ringmeshd's --breaker-pools and --breaker-hosts (0: the
 * defaults, RM_CB_POOLS and RM_CB_HOSTS_PER_POOL per pool), and its page count. */
void cb_size(uint32_t pools, uint32_t hosts, uint32_t *n_pools, uint32_t *n_hosts);
uint32_t cb_pages(uint32_t n_pools, uint32_t n_hosts);

/* Use caller memory of len bytes (zeroed or previously initialised): the pinned map's
 * mapping (cb_open), tests, or another mapping of the same map. Initialises it for
 * n_pools and n_hosts slots when it has no magic (started_ns = realtime_ns). 0;
 * -EINVAL: sizes out of RM_CB_*_MIN..MAX; -ENOSPC: len is too small for them;
 * -EPROTO: initialised with other sizes or another layout. */
int cb_attach(struct cb *cb, void *mem, size_t len, uint32_t n_pools, uint32_t n_hosts,
	      uint64_t realtime_ns);
/* A reader's view of an initialised map of len bytes (the CLI, the exporter): 0;
 * -ENOENT: no daemon initialised it (no magic); -EPROTO: another layout; -EINVAL: its
 * header describes regions beyond len. */
int cb_locate(struct cb *cb, const void *mem, size_t len);
/* Pool slot i (< n_pools) of a host key, or NULL. */
static inline struct rm_cb_pool *cb_pool_at(const struct cb *cb, uint32_t i)
{
	return cb && cb->pools && i < cb->n_pools ? &cb->pools[i] : NULL;
}

/* Limits of a pool without a subset policy (a whole service): Envoy's cluster
 * defaults (1024 connections/pending/requests, 3 retries), outlier detection off. */
void cb_limits_default(struct rm_cfg_breaker *lim);

/* The pool slot of (service FQDN, subset name; NULL or "" = whole service): found or
 * claimed. NULL when RM_CB_PROBE slots from its home are taken (hdr.pools_dropped
 * counted). Names longer than the fields are truncated. */
struct rm_cb_pool *cb_pool(struct cb *cb, const char *service, const char *subset);
/* The pool slot of (service, subset) if it has been claimed, else NULL; claims
 * nothing and counts nothing. */
struct rm_cb_pool *cb_pool_find(struct cb *cb, const char *service, const char *subset);
/* Install the limits a pool enforces from now on (lim NULL = cb_limits_default), and
 * its host count for max_ejection_percent. Call on every configuration flip for each
 * pool of the new configuration; live counts are untouched. With outlier detection
 * on, the pool's next sweep becomes min(its current schedule, now + new interval),
 * so a shorter interval applies at once and a longer one after the sweep already
 * scheduled. -EINVAL when lim has an outlier section with a zero base ejection time
 * or interval. */
int cb_pool_configure(struct rm_cb_pool *p, const struct rm_cfg_breaker *lim, uint32_t n_hosts,
		      uint64_t generation, uint64_t now);
/* Index of a pool slot in the map (for host keys and the CLI). */
uint32_t cb_pool_index(const struct cb *cb, const struct rm_cb_pool *p);

/* The host slot of (pool, address, port network order, family): found or claimed;
 * NULL when the table is full (hdr.hosts_dropped counted) or p is NULL. */
struct rm_cb_host *cb_host(struct cb *cb, const struct rm_cb_pool *p, const struct rm_addr *addr,
			   __be16 port, uint16_t family);

/* --- admission (all return 0 when admitted and counted) --- */

/* A new upstream connection: -EBUSY when max_connections are open (not a failure:
 * the request waits as pending; cx_overflow counted). */
int cb_conn_try_open(struct rm_cb_pool *p);
void cb_conn_close(struct rm_cb_pool *p);
/* A request starts waiting for a connection: -EOVERFLOW past max_pending (503 UO). */
int cb_pending_try_enter(struct rm_cb_pool *p);
void cb_pending_leave(struct rm_cb_pool *p);
/* A request goes to host h (may be NULL): -EOVERFLOW past max_requests (503 UO). */
int cb_request_try_start(struct rm_cb_pool *p, struct rm_cb_host *h);
void cb_request_finish(struct rm_cb_pool *p, struct rm_cb_host *h);
/* A retry is about to be made: -EOVERFLOW past max_retries (do not retry). */
int cb_retry_try_start(struct rm_cb_pool *p);
void cb_retry_finish(struct rm_cb_pool *p);
/* May a connection that has carried `served` requests (the one just finished
 * included) carry another? false past max_requests_per_conn (0 = unlimited, 1 = no
 * keep-alive). */
bool cb_conn_keep(const struct rm_cb_pool *p, uint32_t served);

/* --- outlier detection --- */

enum cb_outcome {
	CB_SUCCESS = 0,	   /* any response that is not a 5xx */
	CB_5XX,		   /* 500, 501, 505..599 */
	CB_GATEWAY,	   /* 502, 503, 504 */
	CB_CONNECT_FAIL,   /* connect refused/failed/timed out (gateway class, like Envoy's 503) */
	CB_TIMEOUT,	   /* no response within the (per-try) timeout (gateway class, 504) */
	CB_RESET,	   /* closed/reset before the response head (gateway class, 503) */
	CB_LOCAL_OVERFLOW, /* our own 503 UO: not the host's fault, ignored */
	CB_OUTCOME_MAX,
};

/* Outcome of an upstream response status. */
enum cb_outcome cb_outcome_of_status(int status);

/*
 * Where a host stands, as the balancer and the result accounting both see it (one
 * function, so they cannot disagree): a host the balancer may pick has its results
 * counted, and one it may not has none.
 *   IN       available; results counted
 *   OUT      ejected and its time is not up (or being ejected); not available,
 *            results ignored (requests in flight when it was ejected)
 *   DUE      its time is up and it waits for its pool's next sweep, as in Envoy a host
 *            stays ejected until the interval timer returns it; not available, results
 *            ignored. Lasts at most one interval while the sweeper keeps its schedule.
 *   OVERDUE  more than two intervals past its time and no sweep returned it (the
 *            sweeper is stuck or late): available (fail open), and its first result
 *            returns it as a sweep would, then counts.
 * p is the host's pool (NULL: OUT for any ejected host).
 */
enum cb_phase {
	CB_PHASE_IN = 0,
	CB_PHASE_OUT,
	CB_PHASE_DUE,
	CB_PHASE_OVERDUE,
};
enum cb_phase cb_host_phase(const struct rm_cb_pool *p, const struct rm_cb_host *h, uint64_t now);

/*
 * Record one result from host h. Host errors count toward consecutive_errors (every
 * kind) and consecutive_gateway_errors (gateway class only); a CB_5XX resets the
 * gateway count, a success resets both, CB_LOCAL_OVERFLOW changes nothing. When a
 * count reaches its threshold exactly, the count restarts and the host is ejected
 * for k x base_ejection (k = ejections in a row, capped at max(300 s, base)) unless
 * that would eject more than max_ejection_percent of the pool's hosts (one host may
 * always be ejected when none is). Results of a host in phase OUT or DUE are not
 * counted; an OVERDUE host is returned first (see cb_host_phase). Nothing is
 * ejected unless the pool's limits enable outlier detection.
 * Returns 1 when this result ejected the host, 0 otherwise.
 */
int cb_host_result(struct cb *cb, struct rm_cb_host *h, enum cb_outcome o, uint64_t now);

/* May the balancer pick h? Phase IN or OVERDUE (cb_host_phase). NULL is available. */
bool cb_host_available(const struct cb *cb, const struct rm_cb_host *h, uint64_t now);
uint32_t cb_host_active(const struct rm_cb_host *h);

/*
 * The outlier sweep. Visits each pool whose next_sweep_ns has come (then sets it one
 * interval ahead, CAS-claimed so concurrent sweepers split the work): returns to the
 * balancer every ejected host whose time is up (Envoy: at the first interval tick
 * after its ejection time), and decrements the ejections-in-a-row k of every host
 * that is in and has been in for at least one interval since its last return
 * (Envoy's backoff decay: once per interval spent healthy), so a host that stays
 * healthy works its way back to 1 x base while one failing again right after its
 * return is out k x base: 1, 2, 3 x base.
 * The first max returned hosts go to out (may be NULL); returns how many were
 * returned in all. *next_ns (may be NULL) gets the earliest time a pool wants the
 * next sweep (UINT64_MAX when none has outlier detection).
 */
size_t cb_sweep(struct cb *cb, uint64_t now, struct rm_cb_host **out, size_t max,
		uint64_t *next_ns);

/* Adapter for lb_pick's hooks (lb.h): ctx = struct cb_lb_ctx, whose hosts[i] is the
 * host slot of members[i] (NULL = no slot: available, 0 active). Lookup by linear
 * scan of members: pools are small. */
struct cb_lb_ctx {
	const struct cb *cb;
	const uint32_t *members; /* endpoint indices of the pool, as given to lb_pick */
	struct rm_cb_host *const *hosts;
	size_t n;
	uint64_t now;
};
bool cb_lb_available(void *ctx, uint32_t endpoint);
uint32_t cb_lb_active(void *ctx, uint32_t endpoint);

#endif /* RM_CB_H */
