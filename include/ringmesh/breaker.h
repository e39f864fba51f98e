/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Circuit breaker and outlier-ejection state: the pinned, mmapable ARRAY map
 * "rm_breaker". The daemon mmaps it whole and every worker thread (or process)
 * mutates it with atomics; `ringmesh breaker show` and the exporter map it
 * read-only. Runtime state: ringmeshd removes it when it starts and at a clean stop,
 * so a restarted daemon begins with empty counters. Includes nothing but
 * <linux/types.h> and the other ABI headers.
 *
 * Layout: like rm_stats, a run of RM_CB_PAGES(n_pools, n_hosts) values of RM_CB_PAGE
 * bytes, holding three regions whose offsets and sizes are in the header, so a reader
 * never assumes them:
 *   - the header (struct rm_cb_hdr) in the first page;
 *   - n_pools pool slots (struct rm_cb_pool) at pool_off;
 *   - n_hosts host slots (struct rm_cb_host) at host_off.
 * Sizing is ringmeshd's choice at run time: --breaker-pools N (default RM_CB_POOLS,
 * 256) and --breaker-hosts M (default RM_CB_HOSTS_PER_POOL x N, 4,096), ~2.5 KiB per
 * pool with its 16 hosts: 644 KiB (161 pages) with the defaults. One value holding
 * it all (the layout "RCBR" had) is bounded by the largest map value: older kernels
 * refuse values over KMALLOC_MAX_SIZE (4 MiB, ~1,600 pools); 6.18 takes up to INT_MAX,
 * but a syscall lookup then copies all of it. Pages have neither bound. A pinned map
 * of another size or layout is re-created by a fresh start and refuses a hand-over
 * (stop the old daemon first).
 *
 * Pools: one slot per balancer pool in use (a subset, or a whole service with subset
 * ""): ringmeshd claims it at the first request that uses the pool, so the table
 * bounds the pools in use on the node, not the pools configured. Slots are
 * keyed by strings (service FQDN, subset name) rather than configuration indices,
 * because indices change across configuration flips while a pool's live counts
 * (connections, pending, active requests, retries in flight) must not. Found by
 * open addressing from key_hash % n_pools, probing linearly at most RM_CB_PROBE
 * slots; claimed FREE -> CLAIMING by CAS, key written, then LIVE (release), and
 * counted in hdr.pools_used. Readers skip non-LIVE slots and compare the key, never
 * the hash alone.
 *
 * Hosts: one slot per (pool slot, endpoint address, port), found the same way in the
 * host region (key_hash % n_hosts). A claimer also pushes its slot on its pool's list
 * (pool.host_head -> host.next, CAS on the head before the slot goes LIVE; nothing is
 * ever unlinked), so the outlier sweep visits the hosts of the pools that are due,
 * not the whole region. Outlier detection is per pool as in Envoy/Istio, where each
 * subset is a cluster: an endpoint in two subsets is judged in each independently.
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
#define RM_CB_MAGIC 0x52434232u /* "RCB2": header page, pool and host regions */
#define RM_CB_ABI_VERSION 2u

#define RM_CB_PAGE 4096 /* the map's value size: one page of the mapping */
#ifndef RM_CB_POOLS
#define RM_CB_POOLS 256 /* pool slots by default (--breaker-pools) */
#endif
#define RM_CB_HOSTS_PER_POOL 16 /* host slots per pool slot by default (--breaker-hosts) */
#ifndef RM_CB_HOSTS
#define RM_CB_HOSTS (RM_CB_HOSTS_PER_POOL * RM_CB_POOLS) /* host slots (pool x endpoint port) */
#endif
/* ringmeshd --breaker-pools N, --breaker-hosts M */
#define RM_CB_POOLS_MIN 16
#define RM_CB_POOLS_MAX 65536
#define RM_CB_HOSTS_MIN 16
#define RM_CB_HOSTS_MAX 1048576 /* RM_CB_HOSTS_PER_POOL x RM_CB_POOLS_MAX */
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

/* The first page of rm_breaker. */
struct rm_cb_hdr {
	__u32 magic;	     /* RM_CB_MAGIC once the daemon initialised the map */
	__u32 abi_version;   /* RM_CB_ABI_VERSION */
	__u32 n_pools;	     /* pool slots (--breaker-pools) */
	__u32 n_hosts;	     /* host slots (--breaker-hosts) */
	__u64 started_ns;    /* CLOCK_REALTIME when the daemon (re)initialised the state */
	__u64 pools_dropped; /* pool lookups that found no slot (failed open) */
	__u64 hosts_dropped; /* host lookups that found no slot (failed open) */
	__u64 last_sweep_ns; /* CLOCK_MONOTONIC of the last outlier sweep */
	__u64 pool_off;	     /* byte offset of pool slot 0 in the map */
	__u64 host_off;	     /* byte offset of host slot 0 */
	__u32 pools_used;    /* pool slots claimed, <= n_pools */
	__u32 hosts_used;    /* host slots claimed, <= n_hosts */
	__u64 reserved[7];
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
	__u32 host_head;	/* 1 + the host slot last claimed for the pool, 0: none */
	__u32 pad;
	__u64 reserved[1];
};

struct rm_cb_host_key {
	__u32 pool;	     /* index of the pool slot */
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
	__u32 next;		   /* 1 + the pool's host slot claimed before, 0: the first */
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

/* A page of the map, its value type. */
struct rm_cb_page {
	__u8 b[RM_CB_PAGE];
};

/* The regions of a map with np pool and nh host slots (header page, pools, 64-byte
 * aligned hosts). */
#define RM_CB_POOL_OFF ((__u64)RM_CB_PAGE)
#define RM_CB_HOST_OFF(np)                                                                         \
	((RM_CB_POOL_OFF + (__u64)(np) * sizeof(struct rm_cb_pool) + 63) & ~63ull)
#define RM_CB_BYTES(np, nh) (RM_CB_HOST_OFF(np) + (__u64)(nh) * sizeof(struct rm_cb_host))
#define RM_CB_PAGES(np, nh) ((RM_CB_BYTES(np, nh) + RM_CB_PAGE - 1) / RM_CB_PAGE)
#define RM_CB_MAP_PAGES RM_CB_PAGES(RM_CB_POOLS, RM_CB_HOSTS)

#ifndef __bpf__
_Static_assert(sizeof(struct rm_cb_hdr) == 128, "rm_cb_hdr layout");
_Static_assert(sizeof(struct rm_cb_hdr) <= RM_CB_PAGE, "the header is the first page");
_Static_assert(sizeof(struct rm_cb_pool) ==
		   8 + RM_CB_SERVICE_LEN + RM_CB_SUBSET_LEN + 56 + 8 + 24 + 8 + 5 * 8 + 8 + 8,
	       "rm_cb_pool layout");
_Static_assert(sizeof(struct rm_cb_host_key) == 24, "rm_cb_host_key layout");
_Static_assert(sizeof(struct rm_cb_host) == 8 + 24 + 24 + 8 * 8 + 16, "rm_cb_host layout");
_Static_assert((RM_CB_SERVICE_LEN + RM_CB_SUBSET_LEN) % 8 == 0, "pool limits stay 8-aligned");
_Static_assert(sizeof(struct rm_cb_pool) % 64 == 0, "pool slots stay 64-byte aligned");
_Static_assert(RM_CB_POOLS >= RM_CB_POOLS_MIN && RM_CB_POOLS <= RM_CB_POOLS_MAX &&
		   RM_CB_HOSTS >= RM_CB_HOSTS_MIN && RM_CB_HOSTS <= RM_CB_HOSTS_MAX,
	       "the default sizes are within the option's bounds");
_Static_assert(RM_CB_HOSTS_MAX == RM_CB_HOSTS_PER_POOL * RM_CB_POOLS_MAX, "hosts follow pools");
#endif

#endif /* RINGMESH_BREAKER_H */
