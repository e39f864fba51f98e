/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * prom: the Prometheus text exposition (format 0.0.4) of ringmesh's pinned maps,
 * one renderer for ringmeshd's :15090 exporter and `ringmesh stats --prometheus`.
 *
 * prom.c is pure: it turns a struct prom_view (pointers to map contents, live
 * mmapped memory or copies) into text, with Istio's metric names, the 25 labels in
 * the Envoy filter's order and Envoy's default histogram buckets, plus ringmesh's own
 * ringmesh_* metrics. prom_src.c opens the pinned maps of a pin dir and fills a view.
 *
 * Reporter: ringmesh sees each request once, at the node of the caller. Every HTTP
 * row is exported with reporter="source"; the rows an upstream answered (a response
 * code and no locally generated flag: not UO, UT, UH, UF, UC, NR, FI, UPE) are
 * exported again with reporter="destination" and connection_security_policy="none",
 * what the server side's sidecar would have reported. Istio's dashboards filter on
 * one reporter per panel, so no panel counts a request twice.
 */
#ifndef RM_PROM_H
#define RM_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmesh/abi.h"
#include "ringmesh/breaker.h"
#include "ringmesh/stats.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A growing text buffer; err latches the first -ENOMEM. */
struct prom_buf {
	char *p;
	size_t len, cap;
	int err;
};

void prom_buf_free(struct prom_buf *b);

/* What to render. Any pointer may be NULL (map not pinned): its metrics are left out. */
struct prom_view {
	const void *stats; /* the mapped rm_stats (stats.h), stats_len bytes */
	size_t stats_len;
	const uint64_t *dp; /* RM_DP_STAT_MAX counters summed over CPUs */
	const void *cb;	    /* the mapped rm_breaker (breaker.h), cb_len bytes */
	size_t cb_len;
	bool has_store_gen;
	uint64_t store_gen; /* rm_cfg_ctl generation: what the CLI last flipped */
	const char *tag;    /* istio_build tag (the ringmesh version) */
};

/* Render the view. 0 or -ENOMEM. */
int prom_render(const struct prom_view *v, struct prom_buf *b);

/* The regions of a mapped rm_stats, located from its header (stats.h, "Layout"). */
struct prom_stats {
	const struct rm_stats_hdr *h;
	const struct rm_stats_slot *slots; /* n_slots */
	const struct rm_stats_row *rows;   /* the pool: n_rows */
	uint32_t n_slots, n_rows;
};
/* 0; -ENOENT: not initialised by a daemon (no magic); -EINVAL: the header's regions
 * do not fit in len bytes. */
int prom_stats_locate(const void *mem, size_t len, struct prom_stats *ps);

/* One key's series, copied: its slot and, for each row position i, the pool row
 * sl.rows[i] names (all zero where it names none; position RM_STATS_ROWS - 1 is the
 * key's overflow row). */
struct prom_series {
	struct rm_stats_slot sl;
	struct rm_stats_row rows[RM_STATS_ROWS];
};
/* A consistent copy of slot i's series (stats.h, "Consistent reads"). 0, or -EAGAIN
 * when writers never left it quiet within the retries: the copy is then still usable,
 * each histogram consistent with itself (counts are derived from buckets). */
int prom_series_copy(const struct prom_stats *ps, uint32_t i, struct prom_series *out);

/* A slot summed over its rows, for `ringmesh stats`. */
struct prom_slot_sum {
	uint64_t requests;
	uint64_t code_class[6]; /* [0] no response, [1..5] = 1xx..5xx */
	uint64_t flags[RM_STATS_F_MAX];
	uint64_t overflow;		/* requests in the overflow row */
	uint64_t dur[RM_STATS_BUCKETS]; /* merged duration buckets (not cumulative) */
	uint64_t dur_sum_us, req_bytes_sum, resp_bytes_sum;
};
void prom_slot_sum(const struct prom_series *s, struct prom_slot_sum *out);

/* Requests of a row (its duration histogram's count). */
uint64_t prom_row_count(const struct rm_stats_row *r);

/* Quantile q (0..1) of non-cumulative buckets with Envoy's bounds, in the unit of the
 * bounds (ms for durations), interpolated linearly inside the bucket as Prometheus's
 * histogram_quantile does; the +Inf bucket answers the largest bound. -1 when empty. */
double prom_quantile(const uint64_t *buckets, double q);

/* Envoy short names ("UO", ...) for enum rm_stats_flag; comma-joined for a mask, "-"
 * for none, into buf. */
const char *prom_flags_str(uint32_t mask, char *buf, size_t len);
/* Name of an rm_dpstats counter (enum rm_dp_stat), NULL if unknown. */
const char *prom_dp_stat_name(uint32_t i);
/* The reason label of a mirror counter (enum rm_mirror_skip / rm_mirror_fail), NULL if
 * unknown. */
const char *prom_mirror_skip_name(uint32_t i);
const char *prom_mirror_fail_name(uint32_t i);
/* Envoy's name of a response flag (enum rm_stats_flag: "UO", "DC", ...), NULL if none. */
const char *prom_flag_name(uint32_t f);

#endif /* RM_PROM_H */
