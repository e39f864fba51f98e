/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * wl: a worker's cache of pod identities (include/ringmesh/workload.h), by the pod
 * cgroup id connect4 recorded in rm_orig.pod_cgroup_id. Owns the cached copies of
 * rm_workload records, their labels split into route_label slices (what the router's
 * sourceLabels match reads), the caller's service name for the old API's
 * match.source, and the refresh rule: an entry (found or not) is reused for ttl_ns,
 * then read again, so a record the sync rewrites or deletes is seen within ttl_ns and
 * a new pod within ttl_ns of its record. One cache per worker thread: no locks.
 * The map read is injected (wl_fetch_fn) and so is the clock: testable without BPF.
 */
#ifndef RM_WL_H
#define RM_WL_H

#include <stdbool.h>
#include <stdint.h>

#include "ringmesh/workload.h"
#include "policy/route.h"

#define WL_MAX_LABELS 64		  /* labels used for matching; more are ignored */
#define WL_TTL_NS (1000ull * 1000 * 1000) /* 1 s: "a new pod is known within 1 s" */
#define WL_SVC_LEN (RM_WL_SVC_LEN + RM_WL_NAME_LEN + 32)

/* The record of pod cgroup id into *out: 0, -ENOENT when there is none, or -errno. */
typedef int (*wl_fetch_fn)(void *ctx, uint64_t id, struct rm_workload *out);

struct wl_ident {
	uint64_t id;		/* pod cgroup id, 0 = slot unused */
	uint64_t fetched_ns;	/* when it was read (the cache's clock) */
	bool known;		/* a record was found: the fields below are valid */
	struct rm_workload rec; /* the record, every string NUL-terminated */
	struct route_label labels[WL_MAX_LABELS]; /* slices into rec.labels */
	uint32_t n_labels;
	char service[WL_SVC_LEN]; /* rec.service, else app.ns.svc.cluster.local, else "" */
};

struct wl_cache {
	struct wl_ident *v; /* n entries, direct-mapped by id */
	uint32_t n;	    /* power of two */
	uint64_t ttl_ns;
	wl_fetch_fn fetch; /* NULL: every caller is unknown */
	void *ctx;
	uint64_t hits, fetches; /* for tests and debugging */
};

/* n entries (rounded up to a power of two, at least 1); ttl_ns 0 = WL_TTL_NS.
 * 0 or -ENOMEM. */
int wl_cache_init(struct wl_cache *c, uint32_t n, uint64_t ttl_ns, wl_fetch_fn fetch, void *ctx);
void wl_cache_fini(struct wl_cache *c);

/* Who pod cgroup id is at now_ns: the entry, or NULL for an unknown caller (id 0, no
 * record, a failed read). The pointer is valid until the next wl_get on c. */
const struct wl_ident *wl_get(struct wl_cache *c, uint64_t id, uint64_t now_ns);

/* Split a record's "k=v\0" pairs into labels (at most max; pairs without '=' and
 * anything past labels_len or the array are skipped): the number filled. */
uint32_t wl_split_labels(const struct rm_workload *w, struct route_label *out, uint32_t max);

/* Fill the route request's source fields from id (NULL: unknown caller, fields empty). */
void wl_fill_req(const struct wl_ident *id, struct route_req *rr);

#endif /* RM_WL_H */
