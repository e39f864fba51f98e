/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Circuit breaker and outlier-ejection state: the pinned, mmapable ARRAY map
 * "rm_breaker" with ONE entry, struct rm_cb_map (header, pool slots, host slots),
 * like rm_cfg holds a whole half in one value: the daemon mmaps it once and every
 * worker thread (or process) mutates it with atomics; `ringmesh breaker show`
 * copies it with one lookup. Runtime state: ringmeshd removes it when it starts
 * and at a clean stop, so a restarted daemon begins with empty counters.
 * Includes nothing but <linux/types.h> and the other ABI headers.
 *
 * Pools: one slot per balancer pool in use (a subset, or a whole service with subset
 * ""): ringmeshd claims it at the first request that uses the pool, so the table
 * bounds the pools in use on the node, not the pools configured. Slots are
 * keyed by strings (service FQDN, subset name) rather than configuration indices,
 * because indices change across configuration flips while a pool's live counts
 * (connections, pending, active requests, retries in flight) must not. Found by
 * open addressing from key_hash % RM_CB_POOLS, probing linearly at most
 * RM_CB_PROBE slots; claimed FREE -> CLAIMING by CAS, key written, then LIVE
 * (release). Readers skip non-LIVE slots and compare the key, never the hash alone.
 *
 * Hosts: one slot per (pool slot, endpoint address, port), found the same way in
 * hosts[]. Outlier detection is per pool as in Envoy/Istio, where each subset is a
 * cluster: an endpoint in two subsets is judged in each independently.
 *
 * Slots are never freed while the daemon runs (a pool or host that leaves the
 * configuration keeps its slot); a full table is counted in the header and the
 * caller fails open (no limit, no ejection) for that pool or host.
 *
 * Times are CLOCK_MONOTONIC nanoseconds (the clock of bpf_ktime_get_ns), so the
 * CLI can compute "remaining" with its own clock.
 */
#ifndef RINGMESH_BREAKER_H
#define RINGMESH_BREAKER_H

#include <linux/types.h>

#include "ringmesh/abi.h"
#include "ringmesh/cfg.h"

#define RM_MAP_BREAKER "rm_breaker"
#define RM_CB_MAGIC 0x52434252u /* "RCBR" */
#define RM_CB_ABI_VERSION 1u

#ifndef RM_CB_POOLS
#define RM_CB_POOLS 256 /* pool slots */
#endif
#ifndef RM_CB_HOSTS
#define RM_CB_HOSTS 4096 /* host slots (pool x endpoint port) */
#endif
#define RM_CB_PROBE 32

#define RM_CB_SERVICE_LEN 128 /* service FQDN, NUL-padded */
#define RM_CB_SUBSET_LEN 96   /* subset name ("" = whole service), NUL-padded */

enum rm_cb_slot_state {
	RM_CB_FREE = 0,
	RM_CB_CLAIMING = 1,
	RM_CB_LIVE = 2,
};

/* rm_cb_host.ejected */
enum rm_cb_eject_state {
	RM_CB_IN = 0,	    /* available to the balancer */
	RM_CB_EJECTING = 1, /* being ejected: ejected_until not yet valid */
	RM_CB_OUT = 2,	    /* ejected until ejected_until_ns, then until a sweep returns it */
};

struct rm_cb_hdr {
	__u32 magic;	     /* RM_CB_MAGIC once the daemon initialised the map */
	__u32 abi_version;   /* RM_CB_ABI_VERSION */
	__u32 n_pools;	     /* RM_CB_POOLS */
	__u32 n_hosts;	     /* RM_CB_HOSTS */
	__u64 started_ns;    /* CLOCK_REALTIME when the daemon (re)initialised the state */
	__u64 pools_dropped; /* pool lookups that found no slot (failed open) */
	__u64 hosts_dropped; /* host lookups that found no slot (failed open) */
	__u64 last_sweep_ns; /* CLOCK_MONOTONIC of the last outlier sweep */
	__u64 reserved[2];
};

/* Live state of one pool. Limits are the daemon's copy of what it enforces (the
 * active configuration's, or defaults for a whole-service pool). */
struct rm_cb_pool {
	__u32 state;	/* enum rm_cb_slot_state */
	__u32 key_hash; /* FNV-1a 32 of service and subset, for probing only */
	char service[RM_CB_SERVICE_LEN];
	char subset[RM_CB_SUBSET_LEN];
	struct rm_cfg_breaker lim; /* enforced limits, written by cb_pool_configure */
	__u64 generation;	   /* configuration generation lim came from */
	__u32 n_hosts;		   /* members of the pool in that configuration */
	__u32 connections;	   /* upstream connections open (or opening), all workers */
	__u32 pending;		   /* requests waiting for a connection */
	__u32 requests;		   /* requests in flight */
	__u32 retries;		   /* retries in flight */
	__u32 ejected;		/* hosts currently ejected (counts against max_ejection_percent) */
	__u64 next_sweep_ns;	/* the sweep looks at this pool's hosts again at this time */
	__u64 cx_overflow;	/* times maxConnections was reached (request went pending) */
	__u64 pending_overflow; /* 503 UO: httpMaxPendingRequests */
	__u64 rq_overflow;	/* 503 UO: httpMaxRequests */
	__u64 retry_overflow;	/* retries not made: httpMaxRetries */
	__u64 ejections_total;	/* ejections of this pool's hosts */
	__u64 reserved[2];
};

struct rm_cb_host_key {
	__u32 pool;	     /* index in rm_cb_map.pools */
	__u16 family;	     /* AF_INET or AF_INET6 */
	__be16 port;	     /* network order */
	struct rm_addr addr; /* IPv4 mapped */
};

struct rm_cb_host {
	__u32 state; /* enum rm_cb_slot_state */
	__u32 key_hash;
	struct rm_cb_host_key key;
	__u32 consecutive_errors;  /* 5xx, connect failures, timeouts, resets in a row */
	__u32 consecutive_gateway; /* 502/503/504 (incl. connect failure/timeout) in a row */
	__u32 ejected;		   /* enum rm_cb_eject_state */
	__u32 eject_k;		   /* ejections in a row: the next lasts (k + 1) x base */
	__u32 active;		   /* requests in flight to this host, all workers */
	__u32 pad;
	__u64 ejected_at_ns;
	__u64 ejected_until_ns; /* valid while ejected == RM_CB_OUT */
	__u64 unejected_at_ns;	/* last return by a sweep (0 = never ejected) */
	__u64 last_error_ns;	/* last host error (0 = none) */
	__u64 total_ejections;
	__u64 errors_total;	/* host errors (every kind above) */
	__u64 successes_total;	/* results that were not host errors */
	__u64 ejections_denied; /* threshold reached but max_ejection_percent forbade it */
	__u64 reserved[2];
};

/* rm_breaker[0]: the whole state. */
struct rm_cb_map {
	struct rm_cb_hdr hdr;
	struct rm_cb_pool pools[RM_CB_POOLS];
	struct rm_cb_host hosts[RM_CB_HOSTS];
};

#ifndef __bpf__
_Static_assert(sizeof(struct rm_cb_hdr) == 64, "rm_cb_hdr layout");
_Static_assert(sizeof(struct rm_cb_pool) ==
		   8 + RM_CB_SERVICE_LEN + RM_CB_SUBSET_LEN + 56 + 8 + 24 + 8 + 5 * 8 + 16,
	       "rm_cb_pool layout");
_Static_assert(sizeof(struct rm_cb_host_key) == 24, "rm_cb_host_key layout");
_Static_assert(sizeof(struct rm_cb_host) == 8 + 24 + 24 + 8 * 8 + 16, "rm_cb_host layout");
_Static_assert((RM_CB_SERVICE_LEN + RM_CB_SUBSET_LEN) % 8 == 0, "pool limits stay 8-aligned");
_Static_assert(sizeof(struct rm_cb_map) < 4u * 1024 * 1024, "one map value must stay < 4 MiB");
#endif

#endif /* RINGMESH_BREAKER_H */
