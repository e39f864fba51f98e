/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* wl: per-worker pod identity cache (wl.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmeshd/wl.h"

int wl_cache_init(struct wl_cache *c, uint32_t n, uint64_t ttl_ns, wl_fetch_fn fetch, void *ctx)
{
	uint32_t p = 1;

	memset(c, 0, sizeof(*c));
	while (p < n && p < (1u << 20))
		p <<= 1;
	c->v = calloc(p, sizeof(*c->v));
	if (!c->v)
		return -ENOMEM;
	c->n = p;
	c->ttl_ns = ttl_ns ? ttl_ns : WL_TTL_NS;
	c->fetch = fetch;
	c->ctx = ctx;
	return 0;
}

void wl_cache_fini(struct wl_cache *c)
{
	free(c->v);
	memset(c, 0, sizeof(*c));
}

#define TERM(f) ((f)[sizeof(f) - 1] = 0)

uint32_t wl_split_labels(const struct rm_workload *w, struct route_label *out, uint32_t max)
{
	size_t len = w->labels_len < sizeof(w->labels) ? w->labels_len : sizeof(w->labels);
	const char *p = w->labels, *end = w->labels + len;
	uint32_t n = 0;

	while (p < end && n < max && n < w->n_labels) {
		const char *z = memchr(p, 0, (size_t)(end - p));
		const char *eq;

		if (!z)
			break; /* an unterminated last pair: not trusted */
		eq = memchr(p, '=', (size_t)(z - p));
		if (eq && eq > p) {
			out[n].key.p = p;
			out[n].key.len = (size_t)(eq - p);
			out[n].val.p = eq + 1;
			out[n].val.len = (size_t)(z - eq - 1);
			n++;
		}
		p = z + 1;
	}
	return n;
}

static void fill(struct wl_ident *e)
{
	struct rm_workload *w = &e->rec;

	TERM(w->uid), TERM(w->ns), TERM(w->pod), TERM(w->workload), TERM(w->app);
	TERM(w->version), TERM(w->canon_svc), TERM(w->canon_rev), TERM(w->sa);
	TERM(w->service);
	e->n_labels = wl_split_labels(w, e->labels, WL_MAX_LABELS);
	if (w->service[0])
		snprintf(e->service, sizeof(e->service), "%s", w->service);
	else if (w->app[0] && w->ns[0])
		snprintf(e->service, sizeof(e->service), "%s.%s.svc.cluster.local", w->app, w->ns);
	else
		snprintf(e->service, sizeof(e->service), "%s", w->app);
}

static uint32_t slot_of(const struct wl_cache *c, uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (uint32_t)id & (c->n - 1);
}

const struct wl_ident *wl_get(struct wl_cache *c, uint64_t id, uint64_t now_ns)
{
	struct wl_ident *e;

	if (!id || !c->v || !c->fetch)
		return NULL;
	e = &c->v[slot_of(c, id)];
	if (e->id == id && now_ns - e->fetched_ns < c->ttl_ns) {
		c->hits++;
		return e->known ? e : NULL;
	}
	c->fetches++;
	e->id = id;
	e->fetched_ns = now_ns;
	e->known = c->fetch(c->ctx, id, &e->rec) == 0;
	if (e->known)
		fill(e);
	return e->known ? e : NULL;
}

void wl_fill_req(const struct wl_ident *id, struct route_req *rr)
{
	rr->src_labels = NULL;
	rr->n_src_labels = 0;
	rr->src_service.p = rr->src_namespace.p = "";
	rr->src_service.len = rr->src_namespace.len = 0;
	if (!id)
		return;
	rr->src_labels = id->labels;
	rr->n_src_labels = id->n_labels;
	rr->src_service.p = id->service;
	rr->src_service.len = strlen(id->service);
	rr->src_namespace.p = id->rec.ns;
	rr->src_namespace.len = strlen(id->rec.ns);
}
