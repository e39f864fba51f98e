/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * wlrec: building the pod identity records of rm_workload (include/ringmesh/workload.h)
 * the same way wherever they are written: by hand (`ringmesh workload add`) or from
 * the Kubernetes API (`ringmesh sync`, user/k8s/k8s_pods.c). Istio's defaults live
 * here once: app and version from the labels, the canonical service and revision,
 * the workload name of a pod's controller, the pod UID in kubelet's cgroup names.
 * Functions return 0 or -errno; nothing prints.
 */
#ifndef RM_WLREC_H
#define RM_WLREC_H

#include <stdbool.h>
#include <stddef.h>

#include "ringmesh/workload.h"

/* Copy s into a record field of len bytes, NUL-padded; -E2BIG when it does not fit. */
int wlrec_set(char *dst, size_t len, const char *s);

/* The value of label key in w's labels, or NULL. */
const char *wlrec_label(const struct rm_workload *w, const char *key);

/* Append the label key=value (key klen bytes): -EEXIST when the key is there,
 * -E2BIG when the pair does not fit (the record is unchanged). */
int wlrec_add_label(struct rm_workload *w, const char *key, size_t klen, const char *value);

/* Fill what is empty as Istio does: app from the label app (else
 * app.kubernetes.io/name), version from version (else app.kubernetes.io/version),
 * workload from the pod name, canon_svc from service.istio.io/canonical-name (else
 * app, else workload), canon_rev from service.istio.io/canonical-revision (else
 * version, else "latest"). -E2BIG when a label's value is too long for its field. */
int wlrec_defaults(struct rm_workload *w);

/* The workload of a pod owned by a controller, as Istio names it: a ReplicaSet
 * whose name ends in "-<pod-template-hash>" is its Deployment (the suffix trimmed),
 * a Job named "<name>-<8 to 10 digits>" its CronJob, any other controller its own
 * name. Writes into buf; -E2BIG when it does not fit. */
int wlrec_workload_name(const char *owner_kind, const char *owner_name,
			const char *pod_template_hash, char *buf, size_t len);

/* The pod UID in a kubelet cgroup directory name (the last path component):
 * pod<uid> (cgroupfs driver) or kubepods[-<qos>]-pod<uid with '_' for '-'>.slice
 * (systemd driver). true and uid (37 bytes at least) filled when the name is one. */
bool wlrec_uid_from_cgroup(const char *name, char *uid, size_t len);

/* The cgroup id of a cgroup2 directory (its inode number, as
 * bpf_get_current_cgroup_id() reports it): -ENOTDIR when path is not a directory,
 * -EMEDIUMTYPE when it is not on cgroup2, or stat's -errno. */
int wlrec_cgroup_id(const char *path, unsigned long long *id);

#endif /* RM_WLREC_H */
