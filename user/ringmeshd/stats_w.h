/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * stats_w: ringmeshd's writer side of the rm_stats map (include/ringmesh/stats.h).
 * Owns opening and mmapping the pinned map, initialising its header when the magic
 * is absent, finding or claiming a slot for a key (open addressing, claim by CAS,
 * LIVE published with release), taking rows from the shared pool, and the atomic
 * adds of one request or connection. Every worker thread writes concurrently;
 * readers (the CLI) never block anyone.
 */
#ifndef RM_STATS_W_H
#define RM_STATS_W_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmesh/stats.h"
#include "ringmesh/workload.h"

struct bufpool;

struct stats_w {
	struct rm_stats_hdr *h;
	struct rm_stats_slot *slots; /* h->n_slots, [RM_STATS_OVERFLOW_SLOT] the overflow slot */
	struct rm_stats_row *rows;   /* the pool: h->n_rows */
	uint32_t n_slots, n_rows;
	uint32_t pid; /* ours: we write h->wk while h->wk_pid says so */
	void *map;    /* mmapped region (NULL when attached to caller memory) */
	size_t map_len;
	int fd;
};

/* Open pin_dir/rm_stats, sized for keys slots and 2 x keys rows (0: the defaults,
 * RM_STATS_SLOTS and RM_STATS_POOL_ROWS), mmap it and initialise the header
 * (layout, started_ns = realtime_ns) if it has no magic; take over the worker
 * entries. 0 or -errno with err filled (-EPROTO: another layout). */
int stats_w_open(struct stats_w *s, const char *pin_dir, uint32_t keys, uint64_t realtime_ns,
		 char *err, size_t errlen);
void stats_w_close(struct stats_w *s);

/* Use zeroed caller memory of RM_STATS_BYTES(n_slots, n_rows) bytes instead (tests);
 * initialises like stats_w_open. */
void stats_w_attach(struct stats_w *s, void *mem, uint32_t n_slots, uint32_t n_rows,
		    uint64_t realtime_ns);

/* Fill a key (NUL-padded, truncated to the field; NULL or "" -> "unknown"). */
void stats_key_make(struct rm_stats_key *k, const char *service, const char *version,
		    const char *workload, uint8_t proto);
/* The calling workload's fields of a key made by stats_key_make, from its pod's
 * record (NULL: an unknown caller, every field "unknown"). The canonical service and
 * revision default as Istio's do: app, else workload; version, else "latest". */
void stats_key_source(struct rm_stats_key *k, const struct rm_workload *src);
uint32_t stats_key_hash(const struct rm_stats_key *k);

/* The slot counting key: found, or claimed; the overflow slot (and hdr.dropped
 * counted) when RM_STATS_PROBE slots from the home position are all taken by other
 * keys. NULL only without a map. */
struct rm_stats_slot *stats_slot(struct stats_w *s, const struct rm_stats_key *k);

/* One finished HTTP request of slot sl (of s). code 0 = no response was sent.
 * flags: bit per enum rm_stats_flag. */
void stats_request(struct stats_w *s, struct rm_stats_slot *sl, int code, uint32_t flags,
		   uint64_t dur_us, uint64_t req_bytes, uint64_t resp_bytes);
/* TCP connection counters (to the destination). */
void stats_tcp(struct rm_stats_slot *sl, uint64_t opened, uint64_t closed, uint64_t sent,
	       uint64_t received);
void stats_set_generation(struct stats_w *s, uint64_t gen);
/* A configuration went live latency_us after the CLI flipped it (rm_stats header). */
void stats_cfg_applied(struct stats_w *s, uint64_t latency_us);
/* The daemon's count of refused configurations so far. */
void stats_cfg_rejected(struct stats_w *s, uint64_t rejected);
/* Worker `worker` publishes its buffer pools at now_ns (CLOCK_MONOTONIC): client
 * blocks cp, upstream input buffers up (hdr.wk, hdr.n_wk; workers beyond
 * RM_STATS_WORKERS are left out). Only while the entries are ours (stats.h,
 * "Workers"). */
void stats_worker_bufs(struct stats_w *s, unsigned int worker, const struct bufpool *cp,
		       const struct bufpool *up, uint64_t now_ns);

/* Request mirroring counters (hdr.mirror): a shadow request sent, answered, skipped
 * for reason (enum rm_mirror_skip) or failed for reason (enum rm_mirror_fail). */
void stats_mirror_sent(struct stats_w *s);
void stats_mirror_answered(struct stats_w *s);
void stats_mirror_skipped(struct stats_w *s, enum rm_mirror_skip why);
void stats_mirror_failed(struct stats_w *s, enum rm_mirror_fail why);

#endif /* RM_STATS_W_H */
