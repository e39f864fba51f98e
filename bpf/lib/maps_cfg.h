/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The configuration's control word and the metrics. The BPF programs do not read
 * them; they are declared in the BPF object so that ringmeshd creates and pins them
 * with everything else, and `ringmesh apply` (which creates them itself when no
 * daemon ran yet, with these exact parameters) and ringmeshd share one set. The
 * halves of the configuration are maps the writer creates at the size it needs
 * (user/common/cfg_store.c), not declared here. Layouts: include/ringmesh/cfg.h
 * and include/ringmesh/stats.h.
 * Include after <bpf/bpf_helpers.h>.
 */
#ifndef RM_BPF_MAPS_CFG_H
#define RM_BPF_MAPS_CFG_H

#include "ringmesh/cfg.h"
#include "ringmesh/stats.h"

/* Which half is live, the generation and the per-half seqlock words. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rm_cfg_ctl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_cfg_ctl SEC(".maps");

/* Per {service, version, workloads} counters and histograms, written by ringmeshd: a run
 * of pages holding the header, the key slots and the row pool (stats.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, RM_STATS_MAP_PAGES);
	__type(key, __u32);
	__type(value, struct rm_stats_page);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_stats SEC(".maps");

#endif /* RM_BPF_MAPS_CFG_H */
