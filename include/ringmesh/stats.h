/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * L7/L4 metrics: the pinned, mmapable ARRAY map "rm_stats". ringmeshd's workers
 * write it with atomic adds; `ringmesh stats` and the Prometheus endpoint read
 * it. Includes nothing but <linux/types.h>.
 *
 * Entry 0 is a struct rm_stats_hdr padded to a slot; entries 1..RM_STATS_SLOTS-1
 * are struct rm_stats_slot, found by open addressing: start at
 * 1 + key_hash % (RM_STATS_SLOTS - 1), probe linearly, at most RM_STATS_PROBE
 * slots. A worker claims a free slot with CAS state FREE -> CLAIMING, writes the
 * key and key_hash, then stores state = LIVE (release). Readers skip slots that
 * are not LIVE and compare the key, never the hash alone. Keys are strings rather
 * than configuration indices so counters survive configuration flips. When no
 * slot is found the worker counts into hdr.dropped.
 *
 * Histogram buckets follow TRAFFIC.md (Istio's defaults). A sample lands in the
 * first bucket whose upper bound is >= the value; the last bucket is +Inf.
 * Prometheus buckets are cumulative; these are not (the reader sums).
 */
#ifndef RINGMESH_STATS_H
#define RINGMESH_STATS_H

#include <linux/types.h>

#define RM_MAP_STATS "rm_stats"
#define RM_STATS_MAGIC 0x52535441u /* "RSTA" */

#ifndef RM_STATS_SLOTS
#define RM_STATS_SLOTS 1024 /* including the header entry */
#endif
#define RM_STATS_PROBE 32

#define RM_STATS_NAME_LEN 128 /* destination service FQDN */
#define RM_STATS_SHORT_LEN 48 /* workload, app, version */

/* Duration bounds in microseconds: 0.5, 1, 5, ... 3600000 ms. */
#define RM_STATS_DUR_BOUNDS_US                                                                     \
	{                                                                                          \
		500ull, 1000ull, 5000ull, 10000ull, 25000ull, 50000ull, 100000ull, 250000ull,      \
		    500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull, 30000000ull,       \
		    60000000ull, 300000000ull, 600000000ull, 1800000000ull, 3600000000ull          \
	}
#define RM_STATS_DUR_BUCKETS 20 /* 19 bounds + Inf */
/* Byte-size bounds: Istio's exponential(1, 10, 10): 1, 10, ... 1e9 bytes. */
#define RM_STATS_BYTES_BOUNDS                                                                      \
	{                                                                                          \
		1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,        \
		    100000000ull, 1000000000ull                                                    \
	}
#define RM_STATS_BYTES_BUCKETS 11 /* 10 bounds + Inf */

enum rm_stats_state {
	RM_STATS_FREE = 0,
	RM_STATS_CLAIMING = 1,
	RM_STATS_LIVE = 2,
};

enum rm_stats_proto {
	RM_STATS_HTTP = 1,
	RM_STATS_TCP = 2,
};

/* Response flags (Envoy), counted per slot; index = enum value. */
enum rm_stats_flag {
	RM_STATS_F_UO = 0, /* upstream overflow (breaker) */
	RM_STATS_F_UT,	   /* upstream request timeout */
	RM_STATS_F_UH,	   /* no healthy upstream */
	RM_STATS_F_UF,	   /* upstream connect failure */
	RM_STATS_F_UC,	   /* upstream connection termination */
	RM_STATS_F_URX,	   /* retries exhausted */
	RM_STATS_F_UPE,	   /* upstream protocol error */
	RM_STATS_F_NR,	   /* no route */
	RM_STATS_F_FI,	   /* fault injected (abort) */
	RM_STATS_F_DI,	   /* fault injected (delay) */
	RM_STATS_F_MAX,
};
#define RM_STATS_FLAGS_PAD 12 /* array length for rm_stats_flag, room to grow */

/* What a slot counts: Istio's metric labels that vary per request. */
struct rm_stats_key {
	char dst_service[RM_STATS_NAME_LEN];  /* FQDN; "unknown" when unresolved */
	char dst_version[RM_STATS_SHORT_LEN]; /* version label (or subset name) */
	char dst_workload[RM_STATS_SHORT_LEN];
	char src_workload[RM_STATS_SHORT_LEN];
	char src_version[RM_STATS_SHORT_LEN];
	__u8 proto; /* enum rm_stats_proto */
	__u8 pad[7];
};

/* Exact response codes next to the per-class counters, so response_code can be
 * exported as Istio does; claimed by CAS on code (0 = free). */
#define RM_STATS_CODES 8
struct rm_stats_code {
	__u32 code;
	__u32 pad;
	__u64 count;
};

struct rm_stats_slot {
	__u32 state;	/* enum rm_stats_state */
	__u32 key_hash; /* FNV-1a 32 of the key bytes, for probing only */
	struct rm_stats_key key;
	__u64 requests;	     /* completed requests (HTTP) */
	__u64 code_class[6]; /* [0] no response sent, [1..5] = 1xx..5xx */
	struct rm_stats_code codes[RM_STATS_CODES];
	__u64 codes_other;		 /* codes that found no free entry in codes[] */
	__u64 flags[RM_STATS_FLAGS_PAD]; /* by enum rm_stats_flag */
	__u64 dur_buckets[RM_STATS_DUR_BUCKETS];
	__u64 dur_sum_us;
	__u64 req_bytes_buckets[RM_STATS_BYTES_BUCKETS];
	__u64 req_bytes_sum;
	__u64 resp_bytes_buckets[RM_STATS_BYTES_BUCKETS];
	__u64 resp_bytes_sum;
	/* TCP (every proxied connection, HTTP ones included, as Istio reports) */
	__u64 tcp_opened;
	__u64 tcp_closed;
	__u64 tcp_sent_bytes;	  /* proxy -> upstream */
	__u64 tcp_received_bytes; /* upstream -> proxy */
	__u64 reserved[4];
};

/* rm_stats[0], padded to the slot size. */
struct rm_stats_hdr {
	__u32 magic;	  /* RM_STATS_MAGIC once the daemon initialised the map */
	__u32 n_slots;	  /* RM_STATS_SLOTS */
	__u64 started_ns; /* CLOCK_REALTIME when the daemon (re)initialised counters */
	__u64 dropped;	  /* samples that found no slot */
	__u64 generation; /* config generation last seen by the daemon */
};

union rm_stats_entry {
	struct rm_stats_hdr hdr;
	struct rm_stats_slot slot;
};

#ifndef __bpf__
_Static_assert(sizeof(struct rm_stats_key) == RM_STATS_NAME_LEN + 4 * RM_STATS_SHORT_LEN + 8,
	       "rm_stats_key layout");
_Static_assert(sizeof(struct rm_stats_code) == 16, "rm_stats_code layout");
_Static_assert(sizeof(struct rm_stats_slot) % 8 == 0, "rm_stats_slot alignment");
_Static_assert(sizeof(union rm_stats_entry) == sizeof(struct rm_stats_slot),
	       "rm_stats entries are slot sized");
_Static_assert(sizeof(struct rm_stats_slot) == 1048, "rm_stats_slot layout");
#endif

#endif /* RINGMESH_STATS_H */
