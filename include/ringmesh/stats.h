/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * L7/L4 metrics: the pinned, mmapable ARRAY map "rm_stats". ringmeshd's workers
 * write it with atomic adds; `ringmesh stats` and the Prometheus endpoint read
 * it. Includes nothing but <linux/types.h>.
 *
 * Layout: the map is a run of RM_STATS_MAP_PAGES values of RM_STATS_PAGE bytes that
 * every user mmaps whole, holding three regions (offsets in the header, so a reader
 * never assumes them):
 *   - the header (struct rm_stats_hdr) in the first page, so that a lookup of key 0
 *     reads it;
 *   - n_slots key slots (struct rm_stats_slot) at slot_off;
 *   - a pool of n_rows rows (struct rm_stats_row) at row_off, shared by all keys.
 * The map's memory follows what is counted, not the worst case: a key holds small
 * row indices, and the ~500 B rows are taken from the pool when a key first sees a
 * (response code, response flags) pair. The old layout (magic "RSTA": 8 rows inside
 * every slot, 4.6 MiB of which ~85% was never used) has another value size: a pinned
 * map of it is refused as "another layout" (stop the old daemon: no hand-over between
 * the two) and re-created on a fresh start.
 *
 * Sizing: RM_STATS_SLOTS keys (1,024), RM_STATS_POOL_ROWS rows (2 per key); the
 * daemon's --stats-keys K makes it K and 2 K (the map's page count follows). A key
 * is one (destination, caller) pair; nearly all see one or two (code, flags) pairs
 * over their life (200, and one error or a no-response row), so 2 per key averaged
 * over a node's keys leaves room for keys with many error codes while a busy
 * error-free node never uses more than one per key. With the defaults: 413 pages,
 * 1.61 MiB (a 4 KiB header, 1024 x 624 B slots, 2048 x 512 B rows).
 *
 * Keys: slot 0 is the overflow slot; slots 1.. are found by open addressing: start
 * at 1 + key_hash % (n_slots - 1), probe linearly, at most RM_STATS_PROBE slots. A
 * worker claims a free slot with CAS state FREE -> CLAIMING, writes the key and
 * key_hash, then stores state = LIVE (release). Readers skip slots that are not
 * LIVE and compare the key, never the hash alone. Keys are strings rather than
 * configuration indices so counters survive configuration flips. When no slot is
 * found the worker counts into the overflow slot (dst_service "overflow") and
 * hdr.dropped.
 *
 * Series: a slot is one key (destination service, version, workload; the calling
 * workload, its namespace, app, version, canonical service and revision; protocol)
 * and holds up to RM_STATS_ROWS rows, one per (response code, response flags) pair,
 * each with the three HTTP histograms; a request count is the duration histogram's
 * count, so istio_requests_total and the histograms' _count agree by construction.
 * slot.rows[i] is 0 (no row), RM_STATS_ROW_CLAIMING, or 1 + the row's index in the
 * pool. A position is claimed by CAS 0 -> CLAIMING; the claimer takes a row from the
 * pool (CAS bump of hdr.rows_used, never past n_rows), writes its id and stores the
 * index (release), or stores 0 back when the pool is empty; others wait out a
 * CLAIMING position (a few stores). Rows are never given back while the map lives.
 * The last position of a slot is never claimed for a (code, flags): it holds the
 * key's overflow row (exported with response_code "overflow"), counting the
 * requests whose pair found no position, or no row in the pool. When the pool
 * cannot give the key an overflow row either, the request counts in the overflow
 * slot's overflow row, reserved at init (pool row 0), and in hdr.pool_full. So per
 * node at most (RM_STATS_SLOTS - 1) keys x (RM_STATS_ROWS - 1) code/flag rows, and
 * at most n_rows rows in all, plus the overflow series are exported, and nothing is
 * lost.
 *
 * Consistent reads: writers bracket every update of a slot's counters and rows with
 * wbegin++ (acquire) and wend++ (release) of the slot that owns the row; a reader
 * that reads wend, copies the slot and the rows its indices name (indices loaded
 * with acquire), then (after an acquire fence) reads wbegin and finds them equal saw
 * no write in progress.
 *
 * Workers: hdr.wk[i] is worker i's buffer pools (client blocks, upstream input
 * buffers: in use, size, waits), refreshed by the worker at its memory trim (once a
 * second while it has events to handle). Only the
 * daemon whose pid is hdr.wk_pid writes them: a successor takes them over when it
 * opens the map; any daemon takes them over when no write came for
 * RM_STATS_WK_STALE_NS (its owner went away, e.g. a successor that failed).
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
#define RM_STATS_MAGIC 0x52535432u /* "RST2": keys and a shared row pool */

#define RM_STATS_PAGE 4096 /* the map's value size: one page of the mapping */
#ifndef RM_STATS_SLOTS
#define RM_STATS_SLOTS 1024 /* key slots, the overflow slot included */
#endif
#ifndef RM_STATS_POOL_ROWS
#define RM_STATS_POOL_ROWS (2 * RM_STATS_SLOTS) /* rows shared by the keys (see "Sizing") */
#endif
#define RM_STATS_PROBE 32
#define RM_STATS_WORKERS 64 /* worker entries in the header (hdr.wk) */
#define RM_STATS_WK_STALE_NS (3000ull * 1000000ull)

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
#define RM_STATS_ROWS 8 /* row positions per slot, the last one for overflow */
#endif
#define RM_STATS_OVERFLOW_SLOT 0	  /* slot index of the overflow slot */
#define RM_STATS_ROW_CLAIMING 0xffffffffu /* slot.rows[i] while its row is being taken */
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
	__u8 pad[3];
	/* RM_STATS_TCP: the response flags its connections ended with (bit per
	 * rm_stats_flag, 0: none), a key of their own as Istio's TCP series carry
	 * response_flags (UO: maxConnections reached, UH: no healthy endpoint, UF: the
	 * upstream connect failed). HTTP keys: 0, their rows hold each request's flags.
	 * Maps written before it have 0 here (the former padding). */
	__u32 tcp_flags;
};

/* A histogram: non-cumulative buckets and the sum of the samples (us or bytes). */
struct rm_stats_hist {
	__u64 b[RM_STATS_BUCKETS];
	__u64 sum;
};

/* rm_stats_row.id: RM_STATS_ROW_USED | code << 32 | flags (bit per rm_stats_flag);
 * a key's overflow row has RM_STATS_ROW_OVERFLOW. */
#define RM_STATS_ROW_USED (1ull << 63)
#define RM_STATS_ROW_OVERFLOW (RM_STATS_ROW_USED | (1ull << 62))
#define RM_STATS_ROW_ID(code, flags)                                                               \
	(RM_STATS_ROW_USED | ((__u64)((code)&0xffff) << 32) | (__u64)(__u32)(flags))
#define RM_STATS_ROW_CODE(id) ((unsigned)(((id) >> 32) & 0xffff))
#define RM_STATS_ROW_FLAGS(id) ((__u32)(id))

/* One (response code, response flags) series of a key. code 0 = no response sent. */
struct rm_stats_row {
	__u64 id;		   /* 0 = free; RM_STATS_ROW_ID() or RM_STATS_ROW_OVERFLOW */
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
	__u32 rows[RM_STATS_ROWS]; /* 0, RM_STATS_ROW_CLAIMING, or 1 + index in the pool */
};

/* Worker i's buffer pools (bufpool.h), written by that worker once a second. */
struct rm_stats_wk {
	__u64 buf_waits;     /* times a connection found no client block free (it waited) */
	__u64 up_buf_waits;  /* times an upstream connection found no input buffer free */
	__u32 bufs_used;     /* client blocks borrowed now */
	__u32 bufs;	     /* client blocks in the pool */
	__u32 up_bufs_used;  /* upstream input buffers borrowed now */
	__u32 up_bufs;	     /* upstream input buffers in the pool */
	__u64 bufs_resident; /* bytes of both pools' blocks whose pages may be resident */
};

/* Request mirroring (a route's mirror: Envoy's request_mirror_policies), node-wide,
 * added by every worker (atomic, relaxed). The shadow requests themselves count in
 * the slots of the mirror destination like any request (istio_requests_total). */
enum rm_mirror_skip {
	RM_MIR_SKIP_LIMIT = 0, /* the worker had --max-mirrors shadow requests in flight */
	RM_MIR_SKIP_BODY,      /* the shadow head does not fit, or the request ended before
				* its streamed body was all read */
	RM_MIR_SKIP_OVERFLOW,  /* the mirror pool's circuit breaker refused it */
	RM_MIR_SKIP_NO_HOST,   /* no endpoint (none, or every one ejected) */
	RM_MIR_SKIP_RESOURCES, /* no upstream slot, socket or submission entry */
	RM_MIR_SKIP_BEHIND,    /* the shadow fell its block and 1 MiB (or the worker's 8 MiB
				* for all) behind the primary's streamed body: dropped, its
				* connection closed */
	RM_MIR_SKIP_N,
};
enum rm_mirror_fail {
	RM_MIR_FAIL_CONNECT = 0, /* connect failed or timed out */
	RM_MIR_FAIL_RESET,	 /* closed or reset before the end of its response */
	RM_MIR_FAIL_TIMEOUT,	 /* no complete response within the timeout */
	RM_MIR_FAIL_PROTOCOL,	 /* a response that does not parse */
	RM_MIR_FAIL_N,
};
struct rm_stats_mirror {
	__u64 sent;	  /* shadow requests whose every byte went to the mirror */
	__u64 answered;	  /* ... whose response was read to its end (any status) */
	__u64 skipped[8]; /* by enum rm_mirror_skip */
	__u64 failed[8];  /* by enum rm_mirror_fail */
};

/* The first page of rm_stats. */
struct rm_stats_hdr {
	__u32 magic;		 /* RM_STATS_MAGIC once the daemon initialised the map */
	__u32 n_slots;		 /* key slots (RM_STATS_SLOTS), the overflow slot included */
	__u64 started_ns;	 /* CLOCK_REALTIME when the daemon (re)initialised counters */
	__u64 dropped;		 /* lookups that found no slot (counted in the overflow slot) */
	__u64 generation;	 /* config generation last seen by the daemon */
	__u64 cfg_applies;	 /* configurations the daemon made live */
	__u64 cfg_rejected;	 /* configurations it refused (kept the previous one) */
	__u64 cfg_apply_last_us; /* flip by the CLI -> live in the daemon, last one */
	struct rm_stats_hist cfg_apply; /* the same, every apply (us) */
	__u32 n_rows;			/* rows in the pool (RM_STATS_POOL_ROWS) */
	__u32 rows_used;		/* rows taken from the pool, <= n_rows */
	__u64 slot_off;			/* byte offset of slot 0 in the map */
	__u64 row_off;			/* byte offset of pool row 0 */
	__u64 pool_full; /* requests counted in the overflow slot's row: the pool was empty */
	__u32 wk_pid;	 /* the daemon that writes wk[] */
	__u32 n_wk;	 /* entries of wk[] in use (workers of that daemon) */
	__u64 wk_ns;	 /* CLOCK_MONOTONIC of its last write */
	__u64 reserved[3];
	struct rm_stats_wk wk[RM_STATS_WORKERS];
	struct rm_stats_mirror mirror; /* zero in a map of a daemon without it */
};

/* A page of the map, its value type. */
struct rm_stats_page {
	__u8 b[RM_STATS_PAGE];
};

/* The regions of a map with ns slots and nr rows (header, slots, 64-byte aligned rows). */
#define RM_STATS_SLOT_OFF ((__u64)RM_STATS_PAGE)
#define RM_STATS_ROW_OFF(ns)                                                                       \
	((RM_STATS_SLOT_OFF + (__u64)(ns) * sizeof(struct rm_stats_slot) + 63) & ~63ull)
#define RM_STATS_BYTES(ns, nr) (RM_STATS_ROW_OFF(ns) + (__u64)(nr) * sizeof(struct rm_stats_row))
#define RM_STATS_PAGES(ns, nr) ((RM_STATS_BYTES(ns, nr) + RM_STATS_PAGE - 1) / RM_STATS_PAGE)
#define RM_STATS_MAP_PAGES RM_STATS_PAGES(RM_STATS_SLOTS, RM_STATS_POOL_ROWS)
/* ringmeshd --stats-keys K: K slots and 2 K rows (the defaults are K = RM_STATS_SLOTS) */
#define RM_STATS_KEYS_MIN 16
#define RM_STATS_KEYS_MAX 65536

#ifndef __bpf__
_Static_assert(sizeof(struct rm_stats_key) == RM_STATS_NAME_LEN + 8 * RM_STATS_SHORT_LEN + 8,
	       "rm_stats_key layout");
_Static_assert(sizeof(struct rm_stats_hist) == (RM_STATS_BUCKETS + 1) * 8, "rm_stats_hist layout");
_Static_assert(sizeof(struct rm_stats_row) == 8 + 3 * sizeof(struct rm_stats_hist),
	       "rm_stats_row layout");
_Static_assert(sizeof(struct rm_stats_slot) % 8 == 0, "rm_stats_slot alignment");
_Static_assert(sizeof(struct rm_stats_slot) ==
		   8 + sizeof(struct rm_stats_key) + 8 * 8 + RM_STATS_ROWS * sizeof(__u32),
	       "rm_stats_slot layout");
_Static_assert(sizeof(struct rm_stats_wk) == 40, "rm_stats_wk layout");
_Static_assert(RM_MIR_SKIP_N <= 8 && RM_MIR_FAIL_N <= 8, "rm_stats_mirror room");
_Static_assert(sizeof(struct rm_stats_hdr) <= RM_STATS_PAGE, "the header is the first page");
_Static_assert(RM_STATS_ROWS >= 2, "a row of its own and the overflow row");
_Static_assert(RM_STATS_SLOTS >= 2 && RM_STATS_POOL_ROWS >= 1, "an overflow slot and its row");
#endif

#endif /* RINGMESH_STATS_H */
