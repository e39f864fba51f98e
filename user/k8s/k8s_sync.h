/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * k8s_sync: the engine of `ringmesh sync`. Keeps the node's object cache (what
 * the reflectors of k8s.h deliver, stripped by k8s_strip), turns it into the
 * documents the rules compiler reads (a Service with its EndpointSlices and pod
 * labels as the ServiceEntry k8s_service_entry derives, Istio objects as they
 * are) with origin "k8s:KIND/NS/NAME", skips the objects the compiler rejects
 * (each alone, then the whole set: the object a cross-document error names, or
 * the one a bisection finds) and publishes the rest with cfg_store_sync; local
 * Pods go to k8s_pods for pod identity. k8s_sync_run is the command's loop;
 * the status file it writes is read back by k8s_sync_status_*.
 *
 * This header needs no jansson: the CLI includes it beside its own JSON writer.
 */
#ifndef RM_K8S_SYNC_H
#define RM_K8S_SYNC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cfg.h"

/* The resources the sync watches, in this order (index = k8s_event_fn's idx). */
enum k8s_sync_res {
	KS_SERVICE,
	KS_SLICE,
	KS_PODMETA, /* every pod as metadata only: labels of remote endpoints */
	KS_VS,
	KS_DR,
	KS_SE,
	KS_WE,
	KS_RR,
	KS_DP,
	KS_POD, /* this node's pods, in full (fieldSelector=spec.nodeName); last:
		 * not watched without a node name */
	KS_N,
};

#define K8S_SYNC_ORIGIN "k8s:"
/* Two publishes are at least this far apart (from the end of one to the start of
 * the next): a change after a quiet spell is published at once, the changes
 * arriving within this of the last publish (a burst, a continuous stream) are
 * coalesced into the next one, published this long after the last. */
#define K8S_SYNC_DEBOUNCE_MS 50

/* The publish schedule (pure: the loop passes mono_ns times; unit-tested). */
struct k8s_debounce {
	uint64_t first_ns; /* first change not published yet */
	uint64_t done_ns;  /* end of the last publish (0: none yet) */
	bool pending;
};
/* A change at now. */
void k8s_debounce_change(struct k8s_debounce *d, uint64_t now);
/* A publish ended at now (what changed since is pending again with a change). */
void k8s_debounce_done(struct k8s_debounce *d, uint64_t now);
/* When the pending changes are due: max(first change, last publish + the
 * debounce); UINT64_MAX when nothing is pending. */
uint64_t k8s_debounce_due(const struct k8s_debounce *d);

struct k8s_sync_opts {
	const char *pin_dir;
	const char *node;	 /* NULL or "": no local pods (no pod identity) */
	const char *domain;	 /* "cluster.local" */
	const char *cgroup_dir;	 /* pods' parent cgroup, NULL: no pod identity */
	const char *status_file; /* NULL: none */
	bool verbose;
};

struct k8s_sync;
struct k8s_conf;
struct json_writer;

/* The cache alone (no connection, no I/O): k8s_sync_run adds those. */
struct k8s_sync *k8s_sync_new(const struct k8s_sync_opts *o, char *err, size_t errlen);
void k8s_sync_free(struct k8s_sync *s);

/* Name of resource idx ("Service", "VirtualService", ...). */
const char *k8s_sync_kind(unsigned idx);

/* Pure parts (unit-tested). Objects are jansson values passed as void * so that
 * this header stays free of jansson. */
/* One reflector event (k8s_event_fn's arguments; version: the served one). */
void k8s_sync_event(struct k8s_sync *s, unsigned idx, int ev, void *obj, const char *version);
/* Mark resource idx as listed with no objects (its group is not installed). */
void k8s_sync_absent(struct k8s_sync *s, unsigned idx);
/* Has a change arrived since the last k8s_sync_docs? */
bool k8s_sync_dirty(const struct k8s_sync *s);
unsigned k8s_sync_count(const struct k8s_sync *s, unsigned idx);

/* The documents of the cache. stored: what the store holds now (unpacked); on
 * return it holds only the documents not of the sync (the files'), and *docs
 * the sync's (owned by s, valid until the next call): built from the cache for
 * resources listed at least once, carried over from stored for the others (the
 * last rules stay while the API is not reachable). An object whose document
 * text did not change since the last call is not parsed again. Objects the
 * compiler rejects, alone or with the rest, are left out and recorded
 * (k8s_sync_skipped, logged to log when not NULL, once per object and
 * message); with validate, also those it rejects only with the others (else
 * see k8s_sync_validate). 0, or -errno with err when even the files'
 * documents do not compile. */
int k8s_sync_docs(struct k8s_sync *s, struct cfg_docs *stored, const struct cfg_docs **docs,
		  bool validate, FILE *log, char *err, size_t errlen);
/* Without validate, k8s_sync_docs leaves out only the objects rejected alone;
 * this drops those the compiler rejects with the rest (base: the files'
 * documents, k8s_sync_docs's stored on return) from the last build. */
int k8s_sync_validate(struct k8s_sync *s, const struct cfg_docs *base, FILE *log, char *err,
		      size_t errlen);
/* Skipped object i of the last k8s_sync_docs: false past the end. */
bool k8s_sync_skipped(const struct k8s_sync *s, size_t i, const char **kind, const char **ns,
		      const char **name, const char **error);

/* The connection: kubeconfig when not NULL, else in-cluster. NULL with err. */
struct k8s_conf *k8s_sync_conf_new(const char *kubeconfig, char *err, size_t errlen);
void k8s_sync_conf_free(struct k8s_conf *c);

/* The loop: connect with conf, watch, debounce, publish, write the status file,
 * until SIGTERM/SIGINT (blocked and read through a signalfd). API errors never
 * end it. 0 on a signal, -errno with err on a setup failure. */
int k8s_sync_run(struct k8s_sync *s, struct k8s_conf *conf, char *err, size_t errlen);

/* ---- the status file (JSON, written atomically by the loop) ---- */
/* Default path for a pin dir: /run/ringmesh/sync-<pin dir, '/' as '_'>.json. */
void k8s_sync_status_path(const char *pin_dir, char *buf, size_t len);
/* The status as JSON text (malloc'd; now_ns: realtime). */
char *k8s_sync_status_text(const struct k8s_sync *s, uint64_t now_ns);
/* Read a status file and print it as plain text to out (now_ns: realtime), or
 * as a value of w when w != NULL. 0, -ENOENT (no sync ran), -EINVAL (unreadable)
 * with err. brief: one summary line (for `ringmesh status`). */
int k8s_sync_status_show(const char *path, struct json_writer *w, FILE *out, bool brief,
			 uint64_t now_ns, char *err, size_t errlen);

#endif /* RM_K8S_SYNC_H */
