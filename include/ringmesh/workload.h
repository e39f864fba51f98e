/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Pod identity: the pinned HASH map "rm_workload", from the cgroup id of a local
 * pod's cgroup (the kubelet's pod-level cgroup, kubepods-<qos>-pod<uid>.slice or
 * pod<uid>) to who that pod is. `ringmesh sync` writes it from the Kubernetes API
 * (local pods in full); ringmeshd reads it to match `sourceLabels`,
 * `sourceNamespace` and the old API's `match.source`, and to fill the source_*
 * labels of the Istio metrics. A process in any cgroup below a pod's cgroup is that
 * pod: connect4 resolves the connecting task's ancestors against this map and
 * records the pod's cgroup id in rm_orig.pod_cgroup_id (rm_orig.cgroup_id stays the
 * task's own cgroup).
 *
 * Strings are NUL-terminated and NUL-padded; "" means not known. labels holds the
 * pod's labels as "key=value\0" pairs, n_labels of them in labels_len bytes; a pod
 * whose labels do not fit keeps the ones that do and sets RM_WL_F_LABELS_TRUNC.
 * Includes nothing but <linux/types.h>.
 */
#ifndef RINGMESH_WORKLOAD_H
#define RINGMESH_WORKLOAD_H

#include <linux/types.h>

#define RM_MAP_WORKLOAD "rm_workload"

#ifndef RM_MAX_WORKLOADS
#define RM_MAX_WORKLOADS 4096 /* pods per node (kubelet's default cap is 110) */
#endif

#define RM_WL_NAME_LEN 64     /* namespace, pod, workload, app, version, ... */
#define RM_WL_SVC_LEN 128     /* a service FQDN */
#define RM_WL_UID_LEN 40      /* a pod UID, 36 characters */
#define RM_WL_LABELS_LEN 1024 /* "key=value\0" pairs */

#define RM_WL_F_LABELS_TRUNC (1u << 0) /* some labels did not fit in labels[] */
#define RM_WL_F_HOSTNET (1u << 1)      /* hostNetwork pod (shares the node's netns) */

struct rm_workload {
	__u32 n_labels;	  /* pairs in labels */
	__u32 labels_len; /* bytes used in labels */
	__u32 flags;	  /* RM_WL_F_* */
	__u32 pad;
	__u64 updated_ns;		/* CLOCK_REALTIME of the write */
	char uid[RM_WL_UID_LEN];	/* metadata.uid */
	char ns[RM_WL_NAME_LEN];	/* metadata.namespace */
	char pod[RM_WL_NAME_LEN];	/* metadata.name */
	char workload[RM_WL_NAME_LEN];	/* owner (ReplicaSet's pod-template hash trimmed) */
	char app[RM_WL_NAME_LEN];	/* label app (app.kubernetes.io/name) */
	char version[RM_WL_NAME_LEN];	/* label version (app.kubernetes.io/version) */
	char canon_svc[RM_WL_NAME_LEN]; /* service.istio.io/canonical-name, else app, else workload
					 */
	char canon_rev[RM_WL_NAME_LEN]; /* service.istio.io/canonical-revision, else version, else
					   latest */
	char sa[RM_WL_NAME_LEN];	/* spec.serviceAccountName */
	char service[RM_WL_SVC_LEN];	/* FQDN of the first Service selecting the pod, or "" */
	char labels[RM_WL_LABELS_LEN];
};

#ifndef __bpf__
_Static_assert(sizeof(struct rm_workload) ==
		   24 + RM_WL_UID_LEN + 8 * RM_WL_NAME_LEN + RM_WL_SVC_LEN + RM_WL_LABELS_LEN,
	       "rm_workload layout");
#endif

#endif /* RINGMESH_WORKLOAD_H */
