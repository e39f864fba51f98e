/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Every map of the node data path. All are pinned by name under the loader's
 * pin_root_path, so ringmeshd, the CLI and bpftool see the same objects; the key and
 * value types come from include/ringmesh/abi.h and nowhere else. */
#ifndef RM_BPF_MAPS_H
#define RM_BPF_MAPS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "ringmesh/abi.h"

/* Destination ranges to intercept (mapped address, prefixlen over 128 bits). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, RM_MAX_RANGES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rm_lpm_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_include SEC(".maps");

/* Ranges never intercepted even when inside an include range. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, RM_MAX_RANGES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rm_lpm_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_exclude SEC(".maps");

/* Destination ports never intercepted; key in host order (what the CLI types). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RM_MAX_XPORTS);
	__type(key, __u16);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_xports SEC(".maps");

/* connect4 -> sockops hand-off: the 4-tuple is not known before the SYN, the
 * socket cookie is. LRU so that connects that never establish age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RM_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct rm_orig);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_orig_ck SEC(".maps");

/* Original destination by the pod socket's own tuple; the daemon looks it up with
 * the mirror of its accepted socket's tuple. LRU: the daemon forgets entries on
 * close, but a crashed daemon must not leave the map full for its successor. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RM_MAX_CONNS);
	__type(key, struct rm_tuple);
	__type(value, struct rm_orig);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_orig SEC(".maps");

/* Both ends of intercepted connections for the sk_msg shortcut: pod sockets are
 * added by sockops, the daemon's accepted sockets from userspace (value = fd).
 * Sizes instead of BTF types: the kernel takes no BTF value type for sock maps. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, RM_MAX_CONNS * 2);
	__uint(key_size, sizeof(struct rm_tuple));
	__uint(value_size, sizeof(__u32));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_socks SEC(".maps");

/* rm_proxy[0]: the daemon's identity, listener and heartbeat. Mmapable so that the
 * heartbeat is a plain store from the daemon, not a syscall per beat. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct rm_proxy_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_proxy SEC(".maps");

/* Decision counters indexed by enum rm_dp_stat; per-CPU so no atomics on the hot path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RM_DP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rm_dpstats SEC(".maps");

#endif /* RM_BPF_MAPS_H */
