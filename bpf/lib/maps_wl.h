/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Pod identity (layout: include/ringmesh/workload.h): cgroup id of a local pod's
 * cgroup -> who the pod is. Written by `ringmesh sync`, read by ringmeshd and looked
 * up by connect4 for the connecting task's ancestors. Not preallocated: most nodes
 * hold a few dozen pods. Include after <bpf/bpf_helpers.h>.
 */
#ifndef RM_BPF_MAPS_WL_H
#define RM_BPF_MAPS_WL_H

#include "ringmesh/workload.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, RM_MAX_WORKLOADS);
	__type(key, __u64);
	__type(value, struct rm_workload);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_workload SEC(".maps");

#endif /* RM_BPF_MAPS_WL_H */
