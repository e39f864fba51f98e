/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cfgwatch: configuration publication for the workers. Owns the watcher thread
 * (polls rm_cfg_ctl's generation every CFGW_POLL_MS, takes a consistent snapshot on
 * change, route_build()s a table), the published configuration object (table,
 * shared balancer state, per-endpoint metric labels) and its RCU-like reclamation.
 *
 * Readers (worker threads, each with an id < n_readers):
 *   cur = cfgw_current(cw)            at the start of a loop iteration
 *   cfgw_hold(cur, id) / cfgw_drop()  a request keeps its configuration across
 *                                     iterations; counted per worker, no sharing
 *   cfgw_quiescent(cw, id)            at the end of every loop iteration
 * A retired configuration is freed once every worker has passed a quiescent point
 * after the flip and holds no request on it. No request ever sees two
 * configurations, and connections are never touched by a flip.
 */
#ifndef RM_CFGWATCH_H
#define RM_CFGWATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cfg.h"
#include "ringmesh/stats.h"
#include "policy/cb.h"
#include "policy/lb.h"
#include "policy/route.h"

#define CFGW_MAX_READERS 64
#define CFGW_POLL_MS 20

/*
 * A pool's breaker: its rm_cb_pool and host slots cbh[off + port index * n + member],
 * aligned with route_pool's members. Slots are claimed on the first request that uses
 * the pool in this configuration (cfgw_cb_pool), not when the configuration is built:
 * the rm_breaker table bounds the pools in use on the node, not the pools configured.
 * A pool that already has a slot (used in an earlier generation) gets it, its new
 * limits and its host slots at build time, so a limit change applies at the flip.
 * p (atomic): NULL = not claimed yet, CFGW_CB_CLAIMING = being claimed by a worker,
 * CFGW_CB_FULL = no slot (table full: fails open), else the slot.
 */
#define CFGW_CB_CLAIMING ((struct rm_cb_pool *)(uintptr_t)1)
#define CFGW_CB_FULL ((struct rm_cb_pool *)(uintptr_t)2)
struct cfgw_cbpool {
	struct rm_cb_pool *p;
	uint32_t off, n_ports, n;
	uint32_t svc, subset;		/* route_pool's arguments */
	__be16 ports[RM_CFG_SVC_PORTS]; /* the service's port numbers */
};

/* One published configuration. */
struct cfgw_cfg {
	struct route_table *t;
	uint64_t gen;
	struct lb_state *lb; /* per balancer pool (route_pool index), shared by workers */
	uint32_t n_pools;
	uint32_t n_eps;
	char (*ep_version)[RM_STATS_SHORT_LEN];	 /* "version" label of each endpoint */
	char (*ep_workload)[RM_STATS_SHORT_LEN]; /* WorkloadEntry name, else "app" label */
	/* breaker slots (NULL when the daemon runs without a breaker), per pool */
	struct cfgw_cbpool *cbp;
	struct rm_cb_host **cbh;
	struct cb *cb;	 /* where cfgw_cb_pool claims slots */
	int *sweep_kick; /* cfgw.sweep_kick: a request that claims a pool with outlier
			  * detection sets it, so the watcher follows its schedule */
	/* pools and host slots of this configuration, in use or claimed at the flip,
	 * that the full rm_breaker table left without state (they run without limits or
	 * ejection); atomic: workers count them when they claim */
	uint32_t cb_pools_unslotted, cb_hosts_unslotted;
	uint32_t uses[CFGW_MAX_READERS];    /* requests holding it, per worker (own slot only) */
	uint64_t qs_snap[CFGW_MAX_READERS]; /* readers' quiescent counts when retired */
	struct cfgw_cfg *next;		    /* retired list */
};

struct cfgw_reader {
	uint64_t qs; /* loop iterations finished */
	char pad[56];
} __attribute__((aligned(64)));

typedef void (*cfgw_log_fn)(void *ctx, const char *msg);

struct cfgw {
	struct cfgw_cfg *cur; /* atomic */
	struct cfgw_reader readers[CFGW_MAX_READERS];
	unsigned int n_readers;
	struct cfgw_cfg *retired; /* watcher thread only */
	uint64_t flips;		  /* configurations published */
	uint64_t rejected;	  /* snapshots route_build refused */
	/* watcher */
	const char *pin_dir;
	struct cfg_store store;
	bool store_open;
	struct rm_cfg *snap; /* scratch for snapshots (large) */
	uint64_t seen_gen;   /* generation last looked at (published or rejected) */
	uint64_t bad_gen;    /* generation whose rejection was logged */
	pthread_t thread;
	bool running;
	int stop; /* atomic */
	cfgw_log_fn log;
	void *log_ctx;
	void (*on_publish)(void *ctx, uint64_t gen); /* e.g. stats header generation */
	/* circuit breaker (set before cfgw_start; NULL = none): each new configuration
	 * installs its pools' limits, and the watcher thread runs the outlier sweep */
	struct cb *cb;
	uint64_t next_sweep_ns;
	int sweep_kick; /* atomic: set by workers, cfgw_sweep sweeps at once */
	/* the last "breaker table full" log line: generation, counts, when */
	uint64_t full_gen, full_ns;
	uint32_t full_pools, full_hosts;
};

/* Set up with an empty configuration (no services: every connection is L4). */
int cfgw_init(struct cfgw *cw, unsigned int n_readers, char *err, size_t errlen);
/* Stops the watcher and frees everything; no reader may run any more. */
void cfgw_fini(struct cfgw *cw);

/* Build from a snapshot and publish (the old one is retired). On a build error the
 * current configuration stays and -EINVAL is returned with err filled. */
int cfgw_publish(struct cfgw *cw, const struct rm_cfg *snap, char *err, size_t errlen);
/* Free retired configurations that no reader can use any more; returns how many
 * remain retired. */
unsigned int cfgw_reclaim(struct cfgw *cw);

/* One poll: open the store if needed, publish when the generation moved. Returns 1
 * when a configuration was published, 0 when nothing changed, -errno on failure
 * (logged once per generation). */
int cfgw_poll(struct cfgw *cw);

/* Slow path of cfgw_cb_pool: claim the pool's slot and host slots (once, whichever
 * worker comes first; the others wait a moment and get the same). */
struct rm_cb_pool *cfgw_cb_claim(struct cfgw_cfg *c, uint32_t pool);

/* The breaker slot of pool (index of route_pool) for a request of this
 * configuration: claimed and configured with its limits on the first use, then one
 * load. NULL when the daemon runs without a breaker or the table is full (fail open). */
static inline struct rm_cb_pool *cfgw_cb_pool(struct cfgw_cfg *c, uint32_t pool)
{
	struct rm_cb_pool *p;

	if (!c->cbp || pool >= c->n_pools)
		return NULL;
	p = __atomic_load_n(&c->cbp[pool].p, __ATOMIC_ACQUIRE);
	if (__builtin_expect(p == NULL || p == CFGW_CB_CLAIMING, 0))
		p = cfgw_cb_claim(c, pool);
	return p == CFGW_CB_FULL ? NULL : p;
}

/* The host slots of pool for service port index pi (of route_service_port), aligned
 * with the pool's members; NULL when there are none or the pool has no slot (call
 * cfgw_cb_pool first). */
struct rm_cb_host *const *cfgw_cb_hosts(const struct cfgw_cfg *c, uint32_t pool, int pi);

/* Log "breaker table full" when the current configuration's unslotted counts grew
 * (at most once a second); the watcher thread calls it after every poll. */
void cfgw_log_full(struct cfgw *cw);

/* Run the outlier sweep when due (now: CLOCK_MONOTONIC ns); returns the time the
 * watcher must look again: at most 1 s ahead, at least 1 ms. */
uint64_t cfgw_sweep(struct cfgw *cw, uint64_t now);

/* Start/stop the watcher thread polling pin_dir every CFGW_POLL_MS. */
int cfgw_start(struct cfgw *cw, const char *pin_dir, char *err, size_t errlen);
void cfgw_stop(struct cfgw *cw);

/* --- readers --- */
static inline struct cfgw_cfg *cfgw_current(struct cfgw *cw)
{
	return __atomic_load_n(&cw->cur, __ATOMIC_SEQ_CST);
}

static inline void cfgw_quiescent(struct cfgw *cw, unsigned int id)
{
	struct cfgw_reader *r = &cw->readers[id];

	__atomic_store_n(&r->qs, r->qs + 1, __ATOMIC_SEQ_CST);
}

static inline void cfgw_hold(struct cfgw_cfg *c, unsigned int id)
{
	__atomic_store_n(&c->uses[id], c->uses[id] + 1, __ATOMIC_SEQ_CST);
}

static inline void cfgw_drop(struct cfgw_cfg *c, unsigned int id)
{
	__atomic_store_n(&c->uses[id], c->uses[id] - 1, __ATOMIC_SEQ_CST);
}

#endif /* RM_CFGWATCH_H */
