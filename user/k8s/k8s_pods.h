/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * k8s_pods: who is calling. `ringmesh sync` hands every local Pod object (the full
 * object of a pod on this node) to this module; it finds the pod's cgroup under
 * the daemon's --cgroup directory by the pod UID in kubelet's names (cgroupfs
 * driver pod<uid>, systemd driver kubepods[-<qos>]-pod<uid with _>.slice, at the
 * top or under a QoS-class cgroup), and writes the pinned rm_workload map
 * (include/ringmesh/workload.h) from that cgroup's id to the pod's identity.
 *
 * A pod known from the API before its cgroup exists is written the moment the
 * cgroup appears (inotify on the directory and its QoS cgroups, and a rescan
 * every K8S_PODS_RESCAN_MS in case an event was missed); a pod deleted, or whose
 * cgroup went away, is removed from the map. A record in the map whose pod UID
 * names no pod cgroup under the directory is a pod gone while no sync ran, and is
 * removed too; records without a UID (`ringmesh workload add` by hand, for a
 * cgroup not named as kubelet names pods) are left alone.
 *
 * One thread: the caller polls k8s_pods_fd() with its other descriptors (or just
 * calls k8s_pods_step() every few hundred ms) and calls k8s_pods_step().
 */
#ifndef RM_K8S_PODS_H
#define RM_K8S_PODS_H

#include <stdint.h>

#include "k8s.h"
#include "ringmesh/workload.h"

#define K8S_PODS_RESCAN_MS 2000

struct k8s_pods;

struct k8s_pods_stat {
	unsigned pods;	      /* local pods known from the API */
	unsigned mapped;      /* of those, with a cgroup found and a record in the map */
	unsigned cgroups;     /* pod cgroups seen under the directory at the last scan */
	uint64_t writes;      /* map updates */
	uint64_t deletes;     /* map deletions (pods gone, cgroups gone, stale records) */
	uint64_t errors;      /* failed map writes, unreadable directories */
	uint64_t scans;	      /* directory scans */
	char last_error[256]; /* "" when none */
};

/* cgroup_dir: the pods' parent cgroup (the daemon's --cgroup, e.g.
 * /sys/fs/cgroup/kubepods.slice); it may not exist yet. pin_dir: where rm_workload
 * is pinned (the daemon creates it). NULL with err when the map cannot be opened. */
struct k8s_pods *k8s_pods_new(const char *cgroup_dir, const char *pin_dir, char *err,
			      size_t errlen);
/* A local pod was ADDED or MODIFIED: the full Pod object (borrowed). 0, or -EINVAL
 * when it has no metadata.uid/namespace (err says why, if given). */
int k8s_pods_update(struct k8s_pods *p, json_t *pod);
/* A local pod was DELETED (only metadata.uid is read). 0 or -ENOENT. */
int k8s_pods_delete(struct k8s_pods *p, json_t *pod);
/* The inotify descriptor (non-blocking) to poll for POLLIN, or -1 when inotify is
 * unavailable (the periodic rescan still runs). */
int k8s_pods_fd(const struct k8s_pods *p);
/* Read inotify events, rescan the directory when it changed (or every
 * K8S_PODS_RESCAN_MS), and bring the map in line. Cheap when nothing changed.
 * 0, or the -errno of the last failed write (the others still went through). */
int k8s_pods_step(struct k8s_pods *p);
const struct k8s_pods_stat *k8s_pods_stat(const struct k8s_pods *p);
void k8s_pods_free(struct k8s_pods *p);

/* Pure (unit-tested): the record of a Pod object (no cgroup, no map). 0 or -EINVAL
 * with a reason in err. */
int k8s_pod_record(json_t *pod, struct rm_workload *w, char *err, size_t errlen);

#endif /* RM_K8S_PODS_H */
