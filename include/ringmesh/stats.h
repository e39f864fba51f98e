/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * L7/L4 metrics: the pinned, mmapable ARRAY map "rm_stats". ringmeshd's workers
 * write it with atomic adds; `ringmesh stats` and the Prometheus endpoint read
 * it. Includes nothing but <linux/types.h>.
 *
 * Entry 0 is a struct rm_stats_hdr padded to a slot; entries 1..RM_STATS_SLOTS-1
 * are struct rm_stats_slot, found by open addressing: start at
 * 2 + key_hash % (RM_STATS_SLOTS - 2), probe linearly, at most RM_STATS_PROBE
 * slots. A worker claims a free slot with CAS state FREE -> CLAIMING, writes the
 * key and key_hash, then stores state = LIVE (release). Readers skip slots that
 * are not LIVE and compare the key, never the hash alone. Keys are strings rather
 * than configuration indices so counters survive configuration flips. When no
 * slot is found the worker counts into the overflow slot (below) and hdr.dropped.
 *
 * Series: a slot is one key (destination service, version, workload; the calling
 * workload, its namespace, app, version, canonical service and revision; protocol)
 * and holds RM_STATS_ROWS rows, one per (response code, response flags) pair, each
 * with the three HTTP histograms; a request count is the duration histogram's
 * count, so istio_requests_total and the histograms' _count agree by construction.
 * A row is claimed by CAS of its id; the last row of a slot is never claimed: it
 * counts the requests whose (code, flags) found no free row (exported with
 * response_code "overflow"). Slot 1 is never probed: it is the overflow slot,
 * counting every key that found no slot of its own (hdr.dropped says how often).
 * So per node at most (RM_STATS_SLOTS - 2) keys x (RM_STATS_ROWS - 1) code/flag
 * rows, plus the overflow series, are exported, and nothing is lost.
 *
 * Consistent reads: writers bracket every update of a slot with wbegin++ (acquire)
 * and wend++ (release); a reader that reads wend, copies the slot, then (after an
 * acquire fence) reads wbegin and finds them equal saw no write in progress.
 *
 * Histogram buckets are Envoy's defaults (HistogramSettingsImpl::defaultBuckets), in
 * thousandths of the unit: duration is recorded in microseconds (bounds 0.5 ms ..
 * 3600000 ms), sizes in bytes scaled by 1000 (bounds 0.5 B .. 3600000 B). A sample
 * lands in the first bucket whose bound is >= the value; the last bucket is +Inf.
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

/* Envoy's default histogram bounds x 1000 (duration in us, sizes in bytes x 1000). */
#define RM_STATS_BOUNDS_MILLI                                                                      \
	{                                                                                          \
		500ull, 1000ull, 5000ull, 10000ull, 25000ull, 50000ull, 100000ull, 250000ull,      \
		    500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull, 30000000ull,       \
		    60000000ull, 300000000ull, 600000000ull, 1800000000ull, 3600000000ull          \
	}
#define RM_STATS_BUCKETS 20 /* 19 bounds + Inf */

#ifndef RM_STATS_ROWS
#define RM_STATS_ROWS 8 /* (code, flags) rows per slot, the last one for overflow */
#endif
#define RM_STATS_OVERFLOW_SLOT 1 /* entry index of the overflow slot */
/* dst_service of the overflow slot, and response_code of overflow rows */
#define RM_STATS_OVERFLOW_NAME "overflow"

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
	RM_STATS_F_DC,	   /* downstream connection termination (client left mid-request) */
	RM_STATS_F_MAX,
};
#define RM_STATS_FLAGS_PAD 12 /* array length for rm_stats_flag, room to grow */

/* What a slot counts: Istio's metric labels that vary per request. */
struct rm_stats_key {
	char dst_service[RM_STATS_NAME_LEN];  /* FQDN; "unknown" when unresolved */
	char dst_version[RM_STATS_SHORT_LEN]; /* version label (or subset name) */
	char dst_workload[RM_STATS_SHORT_LEN];
	/* the calling pod (its rm_workload record), "unknown" when the node has none */
	char src_workload[RM_STATS_SHORT_LEN];
	char src_version[RM_STATS_SHORT_LEN];
	char src_namespace[RM_STATS_SHORT_LEN];
	char src_app[RM_STATS_SHORT_LEN];
	char src_canon_svc[RM_STATS_SHORT_LEN];
	char src_canon_rev[RM_STATS_SHORT_LEN];
	__u8 proto; /* enum rm_stats_proto */
	__u8 pad[7];
};

/* A histogram: non-cumulative buckets and the sum of the samples (us or bytes). */
struct rm_stats_hist {
	__u64 b[RM_STATS_BUCKETS];
	__u64 sum;
};

/* rm_stats_row.id: RM_STATS_ROW_USED | code << 32 | flags (bit per rm_stats_flag). */
#define RM_STATS_ROW_USED (1ull << 63)
#define RM_STATS_ROW_ID(code, flags)                                                               \
	(RM_STATS_ROW_USED | ((__u64)((code)&0xffff) << 32) | (__u64)(__u32)(flags))
#define RM_STATS_ROW_CODE(id) ((unsigned)(((id) >> 32) & 0xffff))
#define RM_STATS_ROW_FLAGS(id) ((__u32)(id))

/* One (response code, response flags) series of a slot. code 0 = no response sent. */
struct rm_stats_row {
	__u64 id;		   /* 0 = free; RM_STATS_ROW_ID(); the overflow row keeps 0 */
	struct rm_stats_hist dur;  /* request duration, us */
	struct rm_stats_hist req;  /* request wire bytes (head + body) */
	struct rm_stats_hist resp; /* response wire bytes */
};

struct rm_stats_slot {
	__u32 state;	/* enum rm_stats_state */
	__u32 key_hash; /* FNV-1a 32 of the key bytes, for probing only */
	struct rm_stats_key key;
	__u64 wbegin; /* updates started (see "Consistent reads") */
	__u64 wend;   /* updates finished */
	/* TCP (every proxied connection, HTTP ones included, as Istio reports) */
	__u64 tcp_opened;
	__u64 tcp_closed;
	__u64 tcp_sent_bytes;	  /* proxy -> upstream */
	__u64 tcp_received_bytes; /* upstream -> proxy */
	__u64 reserved[2];
	struct rm_stats_row rows[RM_STATS_ROWS];
};

/* rm_stats[0], padded to the slot size. */
struct rm_stats_hdr {
	__u32 magic;		 /* RM_STATS_MAGIC once the daemon initialised the map */
	__u32 n_slots;		 /* RM_STATS_SLOTS */
	__u64 started_ns;	 /* CLOCK_REALTIME when the daemon (re)initialised counters */
	__u64 dropped;		 /* lookups that found no slot (counted in the overflow slot) */
	__u64 generation;	 /* config generation last seen by the daemon */
	__u64 cfg_applies;	 /* configurations the daemon made live */
	__u64 cfg_rejected;	 /* configurations it refused (kept the previous one) */
	__u64 cfg_apply_last_us; /* flip by the CLI -> live in the daemon, last one */
	struct rm_stats_hist cfg_apply; /* the same, every apply (us) */
};

union rm_stats_entry {
	struct rm_stats_hdr hdr;
	struct rm_stats_slot slot;
};

#ifndef __bpf__
_Static_assert(sizeof(struct rm_stats_key) == RM_STATS_NAME_LEN + 8 * RM_STATS_SHORT_LEN + 8,
	       "rm_stats_key layout");
_Static_assert(sizeof(struct rm_stats_hist) == (RM_STATS_BUCKETS + 1) * 8, "rm_stats_hist layout");
_Static_assert(sizeof(struct rm_stats_row) == 8 + 3 * sizeof(struct rm_stats_hist),
	       "rm_stats_row layout");
_Static_assert(sizeof(struct rm_stats_slot) % 8 == 0, "rm_stats_slot alignment");
_Static_assert(sizeof(union rm_stats_entry) == sizeof(struct rm_stats_slot),
	       "rm_stats entries are slot sized");
_Static_assert(sizeof(struct rm_stats_slot) == 8 + sizeof(struct rm_stats_key) + 8 * 8 +
						   RM_STATS_ROWS * sizeof(struct rm_stats_row),
	       "rm_stats_slot layout");
_Static_assert(RM_STATS_ROWS >= 2, "a row of its own and the overflow row");
#endif

#endif /* RINGMESH_STATS_H */
