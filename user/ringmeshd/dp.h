/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * dp: the kernel side of ringmeshd. Loads bpf/ringmesh.bpf.c, fills the
 * include/exclude/port maps and the proxy config, attaches the programs to the
 * pods' cgroup (pinned bpf_links), pins the maps under the pin dir, beats the
 * heartbeat, answers "where was this accepted connection going?", and undoes it
 * all on a clean stop. A dead daemon's leftovers under the same pin dir are
 * replaced, never stacked.
 */
#ifndef RM_DP_H
#define RM_DP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "ringmesh/abi.h"
#include "ringmesh/workload.h"
#include "common/cidr.h"

struct rm_dp_opts {
	const char *cgroup_path;       /* pods' parent cgroup (cgroup2); required, never the root */
	const char *pin_dir;	       /* e.g. /sys/fs/bpf/ringmesh */
	const struct rm_cidr *include; /* ranges to intercept */
	size_t n_include;
	const struct rm_cidr *exclude; /* ranges never intercepted */
	size_t n_exclude;
	const uint16_t *exclude_ports; /* host order */
	size_t n_exclude_ports;
	struct sockaddr_in listen; /* proxy listener for clients in the daemon's netns */
	struct in_addr pod_gw;	   /* address clients in other netns are sent to (same port) */
	bool sockmap;		   /* enable the sk_msg shortcut */
	uint64_t heartbeat_max_ns; /* fail open after this long without a beat (0: 5 s) */
	bool allow_root_cgroup;	   /* --allow-root-cgroup: cgroup_path may be the root */
	uint32_t stats_keys;	   /* --stats-keys: rm_stats' key slots (0: RM_STATS_SLOTS) */
	uint32_t breaker_pools;	   /* --breaker-pools, --breaker-hosts (0: cb_size's defaults) */
	uint32_t breaker_hosts;
	/* Take over from the ringmeshd that serves pin_dir now (handover.h): its pinned
	 * maps are kept (rules, counters, breaker state, connections in flight), its
	 * links get our programs, and its beat goes on until ours. rm_stats/rm_breaker
	 * of another size or layout than ours are the exception: runtime state, they are
	 * re-created at our size and pinned in place of its (it drains on its own). */
	bool adopt;
};

struct rm_dp;

/* Mount bpffs if needed, remove what a dead daemon left under pin_dir, load,
 * configure, attach and pin. 0 or -errno; err gets a human-readable reason.
 * Interception starts only with the first rm_dp_heartbeat(), which the caller
 * gives once it is ready to serve (configuration loaded, workers accepting). */
/* The checks rm_dp_open() makes of opts->cgroup_path before it attaches anything:
 * a cgroup2 directory that is not the root of the hierarchy, by whatever path (a
 * container whose cgroup namespace makes its own /sys/fs/cgroup look like the root,
 * given the host's root through a hostPath, is refused too). mnt: the cgroup2 mount
 * to compare with (NULL: the first in /proc/self/mounts, as rm_dp_open uses).
 * 0 or -EINVAL with err filled. */
int dp_check_cgroup(const char *path, const char *mnt, char *err, size_t errlen);
int rm_dp_open(struct rm_dp **out, const struct rm_dp_opts *opts, char *err, size_t errlen);

/* Mount bpffs if needed and create pin_dir on it (rm_dp_open does it too; the daemon
 * needs the dir earlier, to lock it). 0 or -errno with err filled. */
int rm_dp_pin_dir(const char *pin_dir, char *err, size_t errlen);

/* Stamp the heartbeat (CLOCK_MONOTONIC) into rm_proxy. Cheap: a store into the mmapped map. */
void rm_dp_heartbeat(struct rm_dp *dp);

/* Original destination of an accepted connection, by its 4-tuple from the
 * daemon's side (local = the listener address, peer = the client). 0, -ENOENT
 * when the connection was not intercepted, or -errno. */
int rm_dp_orig_lookup(struct rm_dp *dp, const struct sockaddr *local, const struct sockaddr *peer,
		      struct rm_orig *out);

/* The rm_workload record of pod cgroup id: 0, -ENOENT when there is none, -errno. */
int rm_dp_workload_lookup(struct rm_dp *dp, uint64_t id, struct rm_workload *out);

/* Forget a connection's original destination (after the proxy closed it). */
void rm_dp_orig_forget(struct rm_dp *dp, const struct sockaddr *local, const struct sockaddr *peer);

/* Put an accepted socket into rm_socks (sk_msg shortcut); no-op without --sockmap. */
int rm_dp_sock_add(struct rm_dp *dp, int fd, const struct sockaddr *local,
		   const struct sockaddr *peer);

/* Read the per-CPU decision counters summed (array of RM_DP_STAT_MAX). */
int rm_dp_stats(struct rm_dp *dp, uint64_t *out);

/* What rm_dp_open() chose not to do, for the daemon to log ("" when nothing), e.g.
 * that SO_ORIGINAL_DST is not served because the daemon runs in the cgroup2 root. */
const char *rm_dp_note(const struct rm_dp *dp);

/* Detach and, when unpin is true (clean stop), remove every pin. Stops the heartbeat
 * first so that connect4 fails open before the links go. NULL-safe. */
void rm_dp_close(struct rm_dp *dp, bool unpin);

/* A hand-over happened: close our descriptors only. The links (with the successor's
 * programs), the maps and the heartbeat are the successor's. NULL-safe. */
void rm_dp_release(struct rm_dp *dp);

/* The predecessor was told TAKEN: the hand-over is complete. Until then a teardown
 * without unpinning (rm_dp_release) pins back the predecessor's rm_stats/rm_breaker
 * where rm_dp_open() had pinned fresh ones of another size. NULL-safe. */
void rm_dp_taken(struct rm_dp *dp);

/* Stop intercepting new connections (a stop with no successor): heartbeat 0. */
void rm_dp_fail_open(struct rm_dp *dp);

/* The predecessor is gone: its connections are no longer exempt. */
void rm_dp_forget_prev(struct rm_dp *dp);

/* A successor failed before taking over: our programs, identity and ranges again
 * (it may have replaced any of them). 0 or -errno with err filled. */
int rm_dp_reclaim(struct rm_dp *dp, char *err, size_t errlen);

#endif /* RM_DP_H */
