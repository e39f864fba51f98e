/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_compile: the set of applied documents -> one half of the pinned
 * configuration. Both API generations meet here: old-API rules are ordered by
 * precedence (desc) then "namespace/name", route label sets become subsets named
 * by their labels, a DestinationPolicy lands on the subset whose labels equal its
 * own; VirtualService http[] entries keep list order. Pure: no I/O. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "common/cfg_ir.h"

struct doc_list {
	uint32_t *v;
	uint32_t n, cap;
};

struct cb_ctx {
	struct rm_cfg *o;
	const struct cfg_docs *docs;
	char *err;
	size_t errlen;
	uint32_t *hash; /* strtab offsets by string hash (0 = free) */
	size_t hash_cap, hash_n;
	const char **hosts; /* service hosts, sorted */
	unsigned nhosts;
	/* Per host (index in hosts), the documents that can contribute to it, in
	 * document order: walking every document for every host made compiling n
	 * services O(n^2). A list may hold more than contributes (each builder
	 * still checks); it never misses one. */
	struct doc_list *se;   /* ServiceEntries declaring it (once per mention) */
	struct doc_list *sub;  /* DestinationRules, DestinationPolicies, RouteRule routes to it */
	struct doc_list *rule; /* RouteRules and VirtualServices with it in hosts */
	struct doc_list we;    /* every WorkloadEntry */
};

/* Append doc d; once_per_doc: not again when d is already last. */
static int list_add(struct doc_list *l, uint32_t d, bool once_per_doc)
{
	if (once_per_doc && l->n && l->v[l->n - 1] == d)
		return 0;
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 4;
		uint32_t *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = d;
	return 0;
}

static void lists_free(struct doc_list *l, unsigned n)
{
	for (unsigned i = 0; l && i < n; i++)
		free(l[i].v);
	free(l);
}

static int fail(struct cb_ctx *b, const struct cfg_doc_ir *ir, struct cfg_pos p, int code,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct cb_ctx *b, const struct cfg_doc_ir *ir, struct cfg_pos p, int code,
		const char *fmt, ...)
{
	va_list ap;
	int k;

	if (!p.line)
		p = ir->pos;
	k = snprintf(b->err, b->errlen, "%s:%u:%u: ", ir->file, p.line, p.col);
	if (k >= 0 && (size_t)k < b->errlen) {
		va_start(ap, fmt);
		vsnprintf(b->err + k, b->errlen - k, fmt, ap);
		va_end(ap);
	}
	return code;
}

static uint32_t fnv(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static int rehash(struct cb_ctx *b)
{
	size_t cap = b->hash_cap * 2;
	uint32_t *h = calloc(cap, sizeof(*h));

	if (!h)
		return -ENOMEM;
	for (size_t j = 0; j < b->hash_cap; j++) {
		uint32_t off = b->hash[j];
		size_t i;

		if (!off)
			continue;
		for (i = fnv(b->o->strtab + off) & (cap - 1); h[i]; i = (i + 1) & (cap - 1))
			;
		h[i] = off;
	}
	free(b->hash);
	b->hash = h;
	b->hash_cap = cap;
	return 0;
}

/* Intern s in strtab; 0 for NULL/"" or when out of memory (*ok cleared). */
static uint32_t str(struct cb_ctx *b, const char *s, bool *ok)
{
	struct rm_cfg *o = b->o;
	size_t len, i;
	uint32_t off;

	if (!s || !*s)
		return 0;
	for (i = fnv(s) & (b->hash_cap - 1);; i = (i + 1) & (b->hash_cap - 1)) {
		off = b->hash[i];
		if (!off)
			break;
		if (!strcmp(o->strtab + off, s))
			return off;
	}
	len = strlen(s) + 1;
	if (cfg_reserve(o, RM_CFG_T_STRTAB, o->strtab_len + len)) {
		*ok = false;
		return 0;
	}
	off = o->strtab_len;
	memcpy(o->strtab + off, s, len);
	o->strtab_len += (uint32_t)len;
	b->hash[i] = off;
	/* at most half full: a probe always ends at a free slot */
	if (++b->hash_n * 2 > b->hash_cap && rehash(b)) {
		*ok = false;
		return 0;
	}
	return off;
}

/* Room for one more entry of table t (count cnt); tables grow with the input. */
#define NEED(b, ir, pos, t, cnt, what)                                                             \
	do {                                                                                       \
		int need_r_ = cfg_reserve(b->o, t, (size_t)(cnt) + 1);                             \
		if (need_r_)                                                                       \
			return fail(b, ir, pos, need_r_, "too many %s (limit %u)", what,           \
				    RM_CFG_TABLE_LIMIT);                                           \
	} while (0)

static int labels_put(struct cb_ctx *b, const struct cfg_doc_ir *ir, struct cfg_pos pos,
		      const struct cfg_lset *l, uint32_t *first, uint32_t *count)
{
	struct rm_cfg *o = b->o;
	bool ok = true;

	*first = o->n_labels;
	*count = l->n;
	if (cfg_reserve(o, RM_CFG_T_LABELS, (size_t)o->n_labels + l->n))
		return fail(b, ir, pos, -ENOSPC, "too many labels (limit %u)", RM_CFG_TABLE_LIMIT);
	for (unsigned i = 0; i < l->n; i++) {
		o->labels[o->n_labels].key_off = str(b, l->v[i].k, &ok);
		o->labels[o->n_labels].val_off = str(b, l->v[i].v, &ok);
		o->n_labels++;
	}
	return ok ? 0 : fail(b, ir, pos, -ENOSPC, "string table full");
}

static bool lset_eq(const struct cfg_lset *a, const struct cfg_lset *c)
{
	if (a->n != c->n)
		return false;
	for (unsigned i = 0; i < a->n; i++)
		if (strcmp(a->v[i].k, c->v[i].k) || strcmp(a->v[i].v, c->v[i].v))
			return false;
	return true;
}

/* Does have carry every label of want? (both sorted by key) */
static bool lset_includes(const struct cfg_lset *have, const struct cfg_lset *want)
{
	for (unsigned i = 0; i < want->n; i++) {
		unsigned j;

		for (j = 0; j < have->n; j++)
			if (!strcmp(have->v[j].k, want->v[i].k) &&
			    !strcmp(have->v[j].v, want->v[i].v))
				break;
		if (j == have->n)
			return false;
	}
	return true;
}

/* Do the endpoint labels (first,count in out) include every label of want? */
static bool labels_include(const struct rm_cfg *o, uint32_t first, uint32_t count, uint32_t wfirst,
			   uint32_t wcount)
{
	for (uint32_t i = 0; i < wcount; i++) {
		const struct rm_cfg_label *w = &o->labels[wfirst + i];
		bool found = false;

		for (uint32_t j = 0; j < count && !found; j++) {
			const struct rm_cfg_label *e = &o->labels[first + j];

			found = !strcmp(o->strtab + e->key_off, o->strtab + w->key_off) &&
				!strcmp(o->strtab + e->val_off, o->strtab + w->val_off);
		}
		if (!found)
			return false;
	}
	return true;
}

static int cmp_str(const void *a, const void *c)
{
	return strcmp(*(const char *const *)a, *(const char *const *)c);
}

static int svc_index(const struct cb_ctx *b, const char *host)
{
	const char **p = bsearch(&host, b->hosts, b->nhosts, sizeof(*b->hosts), cmp_str);

	return p ? (int)(p - b->hosts) : -1;
}

static int collect_hosts(struct cb_ctx *b)
{
	size_t cap = 16, n = 0;
	const char **v = malloc(cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
#define ADD(h)                                                                                     \
	do {                                                                                       \
		if (n == cap) {                                                                    \
			const char **nv = realloc(v, (cap *= 2) * sizeof(*v));                     \
			if (!nv) {                                                                 \
				free(v);                                                           \
				return -ENOMEM;                                                    \
			}                                                                          \
			v = nv;                                                                    \
		}                                                                                  \
		v[n++] = (h);                                                                      \
	} while (0)
	for (size_t d = 0; d < b->docs->n; d++) {
		const struct cfg_doc_ir *ir = b->docs->v[d].ir;

		for (unsigned i = 0; i < ir->nhosts; i++)
			ADD(ir->hosts[i]);
		if (ir->host)
			ADD(ir->host);
		for (unsigned i = 0; i < ir->nhttp; i++) {
			for (unsigned j = 0; j < ir->http[i].nr; j++)
				ADD(ir->http[i].r[j].host);
			if (ir->http[i].mirror.host)
				ADD(ir->http[i].mirror.host);
		}
	}
#undef ADD
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	b->nhosts = 0;
	for (size_t i = 0; i < n; i++)
		if (!b->nhosts || strcmp(v[b->nhosts - 1], v[i]))
			v[b->nhosts++] = v[i];
	b->hosts = v;
	return 0;
}

/* Add document d to the list of host h (collect_hosts saw every host named). */
static int index_host(struct cb_ctx *b, struct doc_list *lists, const char *h, uint32_t d,
		      bool once_per_doc)
{
	int i = svc_index(b, h);

	return i < 0 ? 0 : list_add(&lists[i], d, once_per_doc);
}

static int index_docs(struct cb_ctx *b)
{
	int r = 0;

	b->se = calloc(b->nhosts + 1, sizeof(*b->se));
	b->sub = calloc(b->nhosts + 1, sizeof(*b->sub));
	b->rule = calloc(b->nhosts + 1, sizeof(*b->rule));
	if (!b->se || !b->sub || !b->rule)
		return -ENOMEM;
	for (uint32_t d = 0; d < b->docs->n && !r; d++) {
		const struct cfg_doc_ir *ir = b->docs->v[d].ir;

		switch (ir->kind) {
		case CFG_K_SERVICEENTRY:
			/* every mention: one ServiceEntry naming a host twice is a duplicate */
			for (unsigned i = 0; i < ir->nhosts && !r; i++)
				r = index_host(b, b->se, ir->hosts[i], d, false);
			break;
		case CFG_K_DESTRULE:
		case CFG_K_DESTPOLICY:
			if (ir->host)
				r = index_host(b, b->sub, ir->host, d, true);
			break;
		case CFG_K_WORKLOADENTRY:
			r = list_add(&b->we, d, false);
			break;
		default:
			break;
		}
		if (ir->kind == CFG_K_ROUTERULE) {
			for (unsigned j = 0; ir->nhttp && j < ir->http[0].nr && !r; j++)
				r = index_host(b, b->sub, ir->http[0].r[j].host, d, true);
			if (!r && ir->nhttp && ir->http[0].mirror.host)
				r = index_host(b, b->sub, ir->http[0].mirror.host, d, true);
		}
		if (ir->kind == CFG_K_ROUTERULE || ir->kind == CFG_K_VIRTUALSERVICE)
			for (unsigned i = 0; i < ir->nhosts && !r; i++)
				r = index_host(b, b->rule, ir->hosts[i], d, true);
	}
	return r;
}

static const struct cfg_doc_ir *find_se(struct cb_ctx *b, uint32_t idx,
					const struct cfg_doc_ir **dup)
{
	const struct doc_list *l = &b->se[idx];

	*dup = l->n > 1 ? b->docs->v[l->v[1]].ir : NULL;
	return l->n ? b->docs->v[l->v[0]].ir : NULL;
}

static int add_endpoint(struct cb_ctx *b, const struct cfg_doc_ir *se, uint32_t svc,
			const struct cfg_ep_ir *e)
{
	struct rm_cfg *o = b->o;
	struct rm_cfg_endpoint *ep;
	bool ok = true;
	int r;

	NEED(b, se, e->pos, RM_CFG_T_ENDPOINTS, o->n_endpoints, "endpoints");
	ep = &o->endpoints[o->n_endpoints];
	ep->addr = e->addr;
	ep->family = e->family;
	ep->service = svc;
	ep->weight = e->weight;
	ep->name_off = str(b, e->name, &ok);
	if ((r = labels_put(b, se, e->pos, &e->labels, &ep->label_first, &ep->label_count)))
		return r;
	for (uint32_t p = 0; p < o->services[svc].n_ports; p++) {
		const char *pname = o->strtab + o->services[svc].ports[p].name_off;

		for (unsigned k = 0; k < e->nports; k++)
			if (*pname && !strcmp(e->ports[k].k, pname))
				ep->ports[p] = htons(e->port_nums[k]);
	}
	o->n_endpoints++;
	return ok ? 0 : fail(b, se, e->pos, -ENOSPC, "string table full");
}

static int build_service(struct cb_ctx *b, uint32_t idx)
{
	struct rm_cfg *o = b->o;
	struct rm_cfg_service *s = &o->services[idx];
	const char *host = b->hosts[idx];
	const struct cfg_doc_ir *se, *dup;
	char name[256], *dot;
	const char *ns = "";
	bool ok = true;
	int r;

	s->host_off = str(b, host, &ok);
	snprintf(name, sizeof(name), "%s", host);
	dot = strchr(name, '.');
	if (dot) {
		*dot = 0;
		/* name.ns.svc.<domain> */
		if (strstr(dot + 1, ".svc.")) {
			ns = dot + 1;
			*strstr(dot + 1, ".svc.") = 0;
		}
	}
	s->name_off = str(b, name, &ok);
	s->ns_off = str(b, ns, &ok);
	s->endpoint_first = o->n_endpoints;
	se = find_se(b, idx, &dup);
	if (dup)
		return fail(b, dup, dup->pos, -EINVAL,
			    "host %s is already declared by ServiceEntry "
			    "%s/%s",
			    host, se->ns, se->name);
	if (se) {
		s->flags |= RM_SF_DECLARED;
		s->n_addrs = se->naddrs;
		if (se->naddrs) /* addrs is NULL without addresses: memcpy(x, NULL, 0) is UB */
			memcpy(s->addrs, se->addrs, se->naddrs * sizeof(*s->addrs));
		s->n_ports = se->nports;
		for (unsigned i = 0; i < se->nports; i++) {
			s->ports[i].port = htons(se->ports[i].number);
			s->ports[i].proto = se->ports[i].proto;
			s->ports[i].name_off = str(b, se->ports[i].name, &ok);
		}
		for (unsigned i = 0; i < se->neps; i++)
			if ((r = add_endpoint(b, se, idx, &se->eps[i])))
				return r;
		for (uint32_t w = 0; se->has_selector && w < b->we.n; w++) {
			const struct cfg_doc_ir *we = b->docs->v[b->we.v[w]].ir;

			if (we->kind != CFG_K_WORKLOADENTRY || strcmp(we->ns, se->ns) ||
			    !lset_includes(&we->we.labels, &se->selector))
				continue;
			if ((r = add_endpoint(b, se, idx, &we->we)))
				return r;
		}
	}
	s->endpoint_count = o->n_endpoints - s->endpoint_first;
	return ok ? 0
		  : fail(b, b->docs->v[0].ir, (struct cfg_pos){0}, -ENOSPC, "string table full");
}

/* Apply a policy's sections over cb (Istio merges a subset's policy over the
 * DestinationRule's by whole section). */
static void policy_over(struct rm_cfg_subset *s, const struct cfg_policy_ir *p)
{
	if (!p->set)
		return;
	if (p->has_lb)
		s->lb = p->lb;
	if (p->has_pool) {
		s->cb.max_connections = p->cb.max_connections;
		s->cb.max_pending = p->cb.max_pending;
		s->cb.max_requests = p->cb.max_requests;
		s->cb.max_requests_per_conn = p->cb.max_requests_per_conn;
		s->cb.max_retries = p->cb.max_retries;
	}
	if (p->has_outlier) {
		s->cb.consecutive_errors = p->cb.consecutive_errors;
		s->cb.consecutive_gateway_errors = p->cb.consecutive_gateway_errors;
		s->cb.max_ejection_percent = p->cb.max_ejection_percent;
		s->cb.base_ejection_ns = p->cb.base_ejection_ns;
		s->cb.interval_ns = p->cb.interval_ns;
		s->cb.outlier = 1;
	}
}

/* Label-set name of an implicit subset: "k=v,k=v" (keys sorted). */
static void lset_name(const struct cfg_lset *l, char *buf, size_t len)
{
	size_t k = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < l->n && k < len; i++)
		k += (size_t)snprintf(buf + k, len - k, "%s%s=%s", i ? "," : "", l->v[i].k,
				      l->v[i].v);
}

struct pending_subset {
	const struct cfg_lset *labels;
	const struct cfg_doc_ir *policy; /* DestinationPolicy, or NULL */
	const struct cfg_doc_ir *origin;
	struct cfg_pos pos;
	char name[512];
};

static int cmp_pending(const void *a, const void *c)
{
	return strcmp(((const struct pending_subset *)a)->name,
		      ((const struct pending_subset *)c)->name);
}

static int new_subset(struct cb_ctx *b, const struct cfg_doc_ir *ir, struct cfg_pos pos,
		      uint32_t svc, const char *name, const struct cfg_lset *l,
		      struct rm_cfg_subset **out)
{
	struct rm_cfg *o = b->o;
	struct rm_cfg_subset *s;
	bool ok = true;
	int r;

	NEED(b, ir, pos, RM_CFG_T_SUBSETS, o->n_subsets, "subsets");
	s = &o->subsets[o->n_subsets++];
	s->service = svc;
	s->name_off = str(b, name, &ok);
	if ((r = labels_put(b, ir, pos, l, &s->label_first, &s->label_count)))
		return r;
	*out = s;
	return ok ? 0 : fail(b, ir, pos, -ENOSPC, "string table full");
}

static int build_subsets(struct cb_ctx *b, uint32_t idx)
{
	struct rm_cfg *o = b->o;
	const char *host = b->hosts[idx];
	const struct cfg_doc_ir *dr = NULL;
	struct pending_subset *pend = NULL;
	size_t np = 0, cap = 0;
	struct rm_cfg_subset *s;
	bool ok = true;
	int r = 0;

	o->services[idx].subset_first = o->n_subsets;
	for (uint32_t d = 0; d < b->sub[idx].n; d++) {
		const struct cfg_doc_ir *ir = b->docs->v[b->sub[idx].v[d]].ir;
		const struct cfg_lset *ls[64];
		struct cfg_pos ps[64];
		unsigned nls = 0;

		if (ir->kind == CFG_K_DESTRULE && !strcmp(ir->host, host)) {
			if (dr) {
				r = fail(b, ir, ir->pos, -EINVAL,
					 "host %s already has "
					 "DestinationRule %s/%s",
					 host, dr->ns, dr->name);
				goto out;
			}
			dr = ir;
			continue;
		}
		if (ir->kind == CFG_K_ROUTERULE) {
			/* any RouteRule may send to this host with route.destination */
			for (unsigned j = 0; j < ir->http[0].nr && nls < 63; j++)
				if (ir->http[0].r[j].labels.n &&
				    !strcmp(ir->http[0].r[j].host, host)) {
					ps[nls] = ir->http[0].r[j].pos;
					ls[nls++] = &ir->http[0].r[j].labels;
				}
		}
		if (ir->kind == CFG_K_ROUTERULE && ir->http[0].mirror.host &&
		    !strcmp(ir->http[0].mirror.host, host) && ir->http[0].mirror.labels.n) {
			ps[nls] = ir->http[0].mirror.pos;
			ls[nls++] = &ir->http[0].mirror.labels;
		}
		if (ir->kind == CFG_K_DESTPOLICY && !strcmp(ir->host, host)) {
			ps[nls] = ir->pos;
			ls[nls++] = &ir->subsets[0].labels;
		}
		for (unsigned k = 0; k < nls; k++) {
			size_t j;

			for (j = 0; j < np; j++)
				if (lset_eq(pend[j].labels, ls[k]))
					break;
			if (j == np) {
				if (np == cap) {
					struct pending_subset *nv;

					cap = cap ? cap * 2 : 8;
					nv = realloc(pend, cap * sizeof(*pend));
					if (!nv) {
						r = -ENOMEM;
						goto out;
					}
					pend = nv;
				}
				memset(&pend[np], 0, sizeof(*pend));
				pend[np].labels = ls[k];
				pend[np].origin = ir;
				pend[np].pos = ps[k];
				lset_name(ls[k], pend[np].name, sizeof(pend[np].name));
				np++;
			}
			if (ir->kind == CFG_K_DESTPOLICY) {
				if (pend[j].policy) {
					r = fail(b, ir, ir->pos, -EINVAL,
						 "DestinationPolicy %s/%s "
						 "already applies to %s {%s}",
						 pend[j].policy->ns, pend[j].policy->name, host,
						 pend[j].name);
					goto out;
				}
				pend[j].policy = ir;
			}
		}
	}
	for (unsigned i = 0; dr && i < dr->nsubsets; i++) {
		const struct cfg_subset_ir *si = &dr->subsets[i];
		char pname[300];

		if ((r = new_subset(b, dr, si->pos, idx, si->name, &si->labels, &s)))
			goto out;
		s->api = RM_API_DESTRULE;
		cfg_breaker_new_defaults(&s->cb);
		s->lb = RM_LB_ROUND_ROBIN;
		policy_over(s, &dr->top);
		policy_over(s, &si->pol);
		if (dr->top.set || si->pol.set) {
			s->policy_api = RM_API_DESTRULE;
			snprintf(pname, sizeof(pname), "%s/%s", dr->ns, dr->name);
			s->policy_name_off = str(b, pname, &ok);
		}
	}
	if (dr && dr->top.set) {
		/* Traffic to the whole service (no subset) follows the top-level policy. */
		static const struct cfg_lset none;
		char pname[300];

		if ((r = new_subset(b, dr, dr->pos, idx, "", &none, &s)))
			goto out;
		s->api = RM_API_DESTRULE;
		s->policy_api = RM_API_DESTRULE;
		cfg_breaker_new_defaults(&s->cb);
		policy_over(s, &dr->top);
		snprintf(pname, sizeof(pname), "%s/%s", dr->ns, dr->name);
		s->policy_name_off = str(b, pname, &ok);
	}
	if (np)
		qsort(pend, np, sizeof(*pend), cmp_pending);
	for (size_t j = 0; j < np; j++) {
		char pname[300];

		if ((r = new_subset(b, pend[j].origin, pend[j].pos, idx, pend[j].name,
				    pend[j].labels, &s)))
			goto out;
		s->api = RM_API_IMPLICIT;
		cfg_breaker_old_defaults(&s->cb);
		s->cb.outlier = 0;
		s->lb = RM_LB_ROUND_ROBIN;
		if (pend[j].policy) {
			policy_over(s, &pend[j].policy->subsets[0].pol);
			s->policy_api = RM_API_DESTPOLICY;
			snprintf(pname, sizeof(pname), "%s/%s", pend[j].policy->ns,
				 pend[j].policy->name);
			s->policy_name_off = str(b, pname, &ok);
		}
	}
	o->services[idx].subset_count = o->n_subsets - o->services[idx].subset_first;
	if (!ok)
		r = fail(b, b->docs->v[0].ir, (struct cfg_pos){0}, -ENOSPC, "string table full");
out:
	free(pend);
	return r;
}

static int build_members(struct cb_ctx *b)
{
	struct rm_cfg *o = b->o;
	int r;

	for (uint32_t i = 0; i < o->n_subsets; i++) {
		struct rm_cfg_subset *s = &o->subsets[i];
		const struct rm_cfg_service *svc = &o->services[s->service];

		s->member_first = o->n_members;
		for (uint32_t e = svc->endpoint_first;
		     e < svc->endpoint_first + svc->endpoint_count; e++) {
			if (!labels_include(o, o->endpoints[e].label_first,
					    o->endpoints[e].label_count, s->label_first,
					    s->label_count))
				continue;
			if ((r = cfg_reserve(o, RM_CFG_T_MEMBERS, (size_t)o->n_members + 1)))
				return fail(b, b->docs->v[0].ir, (struct cfg_pos){0}, r,
					    "too many subset members (limit %u)",
					    RM_CFG_TABLE_LIMIT);
			o->members[o->n_members++] = e;
		}
		s->member_count = o->n_members - s->member_first;
	}
	return 0;
}

/* Subset index for a route destination, RM_CFG_NONE for the whole service. */
static int resolve_subset(struct cb_ctx *b, const struct cfg_doc_ir *ir,
			  const struct cfg_dest_ir *d, uint32_t svc, uint32_t *out)
{
	const struct rm_cfg *o = b->o;
	const struct rm_cfg_service *s = &o->services[svc];
	char name[512];
	bool by_name = ir->kind == CFG_K_VIRTUALSERVICE;

	*out = RM_CFG_NONE;
	if (by_name && !d->subset)
		return 0;
	if (!by_name && !d->labels.n)
		return 0;
	if (!by_name)
		lset_name(&d->labels, name, sizeof(name));
	for (uint32_t i = s->subset_first; i < s->subset_first + s->subset_count; i++) {
		const struct rm_cfg_subset *ss = &o->subsets[i];

		if ((by_name && ss->api == RM_API_DESTRULE &&
		     !strcmp(o->strtab + ss->name_off, d->subset)) ||
		    (!by_name && ss->api == RM_API_IMPLICIT &&
		     !strcmp(o->strtab + ss->name_off, name))) {
			*out = i;
			return 0;
		}
	}
	if (by_name)
		return fail(b, ir, d->pos, -EINVAL,
			    "subset \"%s\" of %s is not defined by any "
			    "DestinationRule",
			    d->subset, d->host);
	return fail(b, ir, d->pos, -EINVAL, "internal: no subset for {%s}", name);
}

/* Conditions (a match group's, or a corsPolicy's origins) appended to conds[]. */
static int put_conds(struct cb_ctx *b, const struct cfg_doc_ir *ir, struct cfg_pos pos,
		     const struct cfg_cond_ir *v, unsigned n, uint32_t *first, uint32_t *count)
{
	struct rm_cfg *o = b->o;
	bool ok = true;

	*first = o->n_conds;
	for (unsigned j = 0; j < n; j++) {
		struct rm_cfg_cond *c;

		NEED(b, ir, pos, RM_CFG_T_CONDS, o->n_conds, "match conditions");
		c = &o->conds[o->n_conds++];
		c->field = v[j].field;
		c->op = v[j].op;
		c->name_off = str(b, v[j].name, &ok);
		/* an empty value is legal ("" exact): keep it distinguishable */
		c->value_off = str(b, v[j].value, &ok);
	}
	*count = o->n_conds - *first;
	return ok ? 0 : fail(b, ir, pos, -ENOSPC, "string table full");
}

static int put_rule(struct cb_ctx *b, const struct cfg_doc_ir *ir, const struct cfg_http_ir *h,
		    uint32_t svc)
{
	struct rm_cfg *o = b->o;
	struct rm_cfg_rule *ru;
	char origin[600];
	bool ok = true;
	int r;

	NEED(b, ir, h->pos, RM_CFG_T_RULES, o->n_rules, "rules");
	ru = &o->rules[o->n_rules++];
	ru->service = svc;
	ru->name_off = str(b, ir->name, &ok);
	ru->ns_off = str(b, ir->ns, &ok);
	snprintf(origin, sizeof(origin), "%s:%u", ir->file, h->pos.line);
	ru->origin_off = str(b, origin, &ok);
	ru->precedence = h->precedence;
	ru->api = ir->kind == CFG_K_ROUTERULE ? RM_API_ROUTERULE : RM_API_VIRTUALSERVICE;
	ru->http_index = (uint16_t)h->http_index;
	ru->flags = h->flags;
	ru->match_first = o->n_matches;
	for (unsigned i = 0; i < h->nm; i++) {
		const struct cfg_match_ir *m = &h->m[i];
		struct rm_cfg_match *om;

		NEED(b, ir, h->pos, RM_CFG_T_MATCHES, o->n_matches, "match groups");
		om = &o->matches[o->n_matches++];
		om->src_name_off = str(b, m->src_name, &ok);
		om->src_ns_off = str(b, m->src_ns, &ok);
		if ((r = put_conds(b, ir, h->pos, m->c, m->n, &om->cond_first, &om->cond_count)))
			return r;
		if ((r = labels_put(b, ir, h->pos, &m->src, &om->src_label_first,
				    &om->src_label_count)))
			return r;
	}
	ru->match_count = o->n_matches - ru->match_first;
	ru->target_first = o->n_targets;
	for (unsigned i = 0; i < h->nr; i++) {
		const struct cfg_dest_ir *d = &h->r[i];
		struct rm_cfg_target *t;
		int si = svc_index(b, d->host);

		NEED(b, ir, d->pos, RM_CFG_T_TARGETS, o->n_targets, "route targets");
		t = &o->targets[o->n_targets++];
		t->service = (uint32_t)si;
		t->weight = d->weight;
		t->port = htons(d->port);
		if ((r = resolve_subset(b, ir, d, (uint32_t)si, &t->subset)))
			return r;
	}
	ru->target_count = o->n_targets - ru->target_first;
	ru->hdrop_first = o->n_hdrops;
	for (unsigned i = 0; i < h->nh; i++) {
		struct rm_cfg_hdrop *hd;

		NEED(b, ir, h->pos, RM_CFG_T_HDROPS, o->n_hdrops, "header operations");
		hd = &o->hdrops[o->n_hdrops++];
		hd->kind = h->h[i].kind;
		hd->response = h->h[i].resp;
		hd->name_off = str(b, h->h[i].name, &ok);
		hd->value_off = str(b, h->h[i].value, &ok);
	}
	ru->hdrop_count = o->n_hdrops - ru->hdrop_first;
	ru->timeout_ns = h->timeout_ns;
	ru->retry_attempts = h->retry_attempts;
	ru->retry_on = h->retry_on;
	ru->retry_per_try_ns = h->retry_per_try_ns;
	ru->delay_ns = h->delay_ns;
	ru->delay_ppm = h->delay_ppm;
	ru->abort_ppm = h->abort_ppm;
	ru->abort_status = h->abort_status;
	ru->redirect_code = h->redirect_code;
	ru->redirect_uri_off = str(b, h->redirect_uri, &ok);
	ru->redirect_authority_off = str(b, h->redirect_auth, &ok);
	ru->rewrite_uri_off = str(b, h->rewrite_uri, &ok);
	ru->rewrite_authority_off = str(b, h->rewrite_auth, &ok);
	ru->mirror_service = RM_CFG_NONE;
	ru->mirror_subset = RM_CFG_NONE;
	if (h->mirror.host) {
		ru->mirror_service = (uint32_t)svc_index(b, h->mirror.host);
		ru->mirror_ppm = h->mirror_ppm;
		if ((r = resolve_subset(b, ir, &h->mirror, ru->mirror_service, &ru->mirror_subset)))
			return r;
	}
	ru->cors_origins_off = str(b, h->cors_origins, &ok);
	ru->cors_methods_off = str(b, h->cors_methods, &ok);
	ru->cors_headers_off = str(b, h->cors_headers, &ok);
	ru->cors_expose_off = str(b, h->cors_expose, &ok);
	ru->cors_max_age_s = h->cors_max_age_s;
	ru->cors_credentials = h->cors_credentials;
	if ((r = put_conds(b, ir, h->pos, h->cors_orig, h->n_cors_orig, &ru->cors_origin_first,
			   &ru->cors_origin_count)))
		return r;
	return ok ? 0 : fail(b, ir, h->pos, -ENOSPC, "string table full");
}

struct rule_ref {
	const struct cfg_doc_ir *ir;
	char key[600]; /* namespace/name */
};

static int cmp_old(const void *a, const void *c)
{
	const struct rule_ref *x = a, *y = c;

	if (x->ir->http[0].precedence != y->ir->http[0].precedence)
		return x->ir->http[0].precedence > y->ir->http[0].precedence ? -1 : 1;
	return strcmp(x->key, y->key);
}

static int cmp_key(const void *a, const void *c)
{
	return strcmp(((const struct rule_ref *)a)->key, ((const struct rule_ref *)c)->key);
}

static int build_rules(struct cb_ctx *b, uint32_t idx)
{
	const char *host = b->hosts[idx];
	const struct doc_list *l = &b->rule[idx];
	struct rule_ref *old = calloc(l->n + 1, sizeof(*old));
	struct rule_ref *vs = calloc(l->n + 1, sizeof(*vs));
	size_t nold = 0, nvs = 0;
	int r = 0;

	if (!old || !vs) {
		r = -ENOMEM;
		goto out;
	}
	b->o->services[idx].rule_first = b->o->n_rules;
	for (uint32_t d = 0; d < l->n; d++) {
		const struct cfg_doc_ir *ir = b->docs->v[l->v[d]].ir;
		struct rule_ref *ref = NULL;

		for (unsigned i = 0; i < ir->nhosts; i++)
			if (!strcmp(ir->hosts[i], host)) {
				if (ir->kind == CFG_K_ROUTERULE)
					ref = &old[nold++];
				else if (ir->kind == CFG_K_VIRTUALSERVICE)
					ref = &vs[nvs++];
				break;
			}
		if (!ref)
			continue;
		ref->ir = ir;
		snprintf(ref->key, sizeof(ref->key), "%s/%s", ir->ns, ir->name);
	}
	/* RouteRules first (by precedence), then VirtualServices: mixing both for one
	 * host is legal here, and the old rules were there first. */
	if (nold)
		qsort(old, nold, sizeof(*old), cmp_old);
	if (nvs)
		qsort(vs, nvs, sizeof(*vs), cmp_key);
	for (size_t i = 0; i < nold && !r; i++)
		r = put_rule(b, old[i].ir, &old[i].ir->http[0], idx);
	for (size_t i = 0; i < nvs && !r; i++)
		for (unsigned j = 0; j < vs[i].ir->nhttp && !r; j++)
			r = put_rule(b, vs[i].ir, &vs[i].ir->http[j], idx);
	b->o->services[idx].rule_count = b->o->n_rules - b->o->services[idx].rule_first;
out:
	free(old);
	free(vs);
	return r;
}

int cfg_compile(const struct cfg_docs *docs, struct rm_cfg *out, char *err, size_t errlen)
{
	struct cb_ctx b = {.o = out, .docs = docs, .err = err, .errlen = errlen};
	int r;

	cfg_free(out);
	if ((r = cfg_init(out)))
		return r;
	out->n_docs = (uint32_t)docs->n;
	b.hash_cap = 1024;
	b.hash = calloc(b.hash_cap, sizeof(*b.hash));
	if (!b.hash) {
		cfg_free(out);
		return -ENOMEM;
	}
	if ((r = collect_hosts(&b)) || (r = index_docs(&b)))
		goto out;
	if (b.nhosts > RM_CFG_TABLE_LIMIT || cfg_reserve(out, RM_CFG_T_SERVICES, b.nhosts)) {
		r = fail(&b, docs->v[0].ir, (struct cfg_pos){0}, -ENOSPC,
			 "too many services: %u (limit %u)", b.nhosts, RM_CFG_TABLE_LIMIT);
		goto out;
	}
	out->n_services = b.nhosts;
	for (uint32_t i = 0; i < b.nhosts && !r; i++)
		r = build_service(&b, i);
	for (uint32_t i = 0; i < b.nhosts && !r; i++)
		r = build_subsets(&b, i);
	if (!r)
		r = build_members(&b);
	for (uint32_t i = 0; i < b.nhosts && !r; i++)
		r = build_rules(&b, i);
	/* Every name in a WorkloadEntry-selected endpoint list is resolved; warn-free. */
out:
	free(b.hash);
	lists_free(b.se, b.nhosts);
	lists_free(b.sub, b.nhosts);
	lists_free(b.rule, b.nhosts);
	free(b.we.v);
	free(b.hosts);
	if (r)
		cfg_free(out);
	return r;
}
