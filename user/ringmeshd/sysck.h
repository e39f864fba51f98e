/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sysck: what the node must offer before ringmeshd touches anything. Owns the
 * kernel feature probes (one clear refusal naming the missing feature and the
 * minimum kernel, instead of a verifier dump or an io_uring EINVAL later) and the
 * cgroup2 discovery (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a
 * hybrid one) that resolves a relative or absent --cgroup.
 *
 * Minimum kernel: Linux 6.0, bound by io_uring multishot recv (IORING_RECV_MULTISHOT,
 * 6.0) with provided buffer rings (5.19). The BPF side needs less: sockops
 * bpf_get_netns_cookie (5.15), bpf_link cgroup attach and bpf_link_update (5.7),
 * BPF_F_MMAPABLE arrays (5.5), cgroup/getsockopt (5.3), sockhash + sk_msg (4.18),
 * cgroup connect4 (4.17). SINGLE_ISSUER/DEFER_TASKRUN (6.0/6.1) are used when present.
 */
#ifndef RM_SYSCK_H
#define RM_SYSCK_H

#include <stdbool.h>
#include <stddef.h>

#define SYSCK_MIN_KERNEL "6.0"

/* Parse a uname release ("6.18.0-1-amd64") into major.minor; -EINVAL if unreadable. */
int sysck_parse_release(const char *rel, unsigned int *major, unsigned int *minor);

/*
 * Probe every kernel feature the daemon uses (BPF program, map and helper types,
 * mmapable arrays, io_uring with a provided buffer ring) and the kernel release for
 * what cannot be probed cheaply (multishot recv). 0, or -errno with err naming the
 * missing feature, the kernel that has it and the minimum kernel.
 */
int sysck_kernel(char *err, size_t errlen);

/*
 * The cgroup2 mount ringmeshd works under: /sys/fs/cgroup when it is cgroup2, then
 * /sys/fs/cgroup/unified, then the first cgroup2 mount in /proc/self/mounts.
 */
int sysck_cgroup2_mount(char *out, size_t len, char *err, size_t errlen);

/*
 * Resolve --cgroup: an absolute path as given, a relative one under mnt, none: the
 * kubelet's pods cgroup under mnt (kubepods.slice with the systemd driver, kubepods
 * with cgroupfs). Refuses a path that is not a cgroup2 directory, and the cgroup2
 * root unless allow_root. out gets the path; 0 or -errno with err filled.
 */
int sysck_pods_cgroup(const char *arg, const char *mnt, bool allow_root, char *out, size_t len,
		      char *err, size_t errlen);

#endif /* RM_SYSCK_H */
