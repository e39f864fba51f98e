/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The circuit-breaker and outlier-ejection state (layout: include/ringmesh/breaker.h).
 * No BPF program reads it; it is declared in the BPF object so that ringmeshd creates
 * and pins it with the data-path maps, mmaps it for its workers' atomics, and
 * `ringmesh breaker show` finds it under the pin dir. Include after <bpf/bpf_helpers.h>.
 */
#ifndef RM_BPF_MAPS_CB_H
#define RM_BPF_MAPS_CB_H

#include "ringmesh/breaker.h"

/* Pages holding the header, the pool and the host slots: mmapped whole by the daemon,
 * which sets max_entries for its --breaker-pools/--breaker-hosts before the load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, RM_CB_MAP_PAGES);
	__type(key, __u32);
	__type(value, struct rm_cb_page);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_breaker SEC(".maps");

#endif /* RM_BPF_MAPS_CB_H */
