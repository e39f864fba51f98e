/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The runtime routing table and the per-request decision (see route.h).
 *
 * The table copies the used part of every array of the snapshot and the used part
 * of its string table, so it stays valid however the pinned half changes later.
 * Indices keep the snapshot's numbering (rule i here is rules[i] there), so logs,
 * stats and `ringmesh rule describe` speak about the same objects.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "policy/route.h"

struct route_cond {
	uint8_t field;	  /* enum rm_cfg_field */
	uint8_t op;	  /* enum rm_cfg_op */
	const char *name; /* lower-case header name (RM_MF_HEADER) */
	const char *value;
	size_t vlen;
	pcre2_code *re; /* RM_OP_REGEX only */
};

struct route_match {
	uint32_t cond_first, cond_count;
	uint32_t src_first, src_count; /* into labels */
	const char *src_name;	       /* "" = any caller */
	const char *src_ns;	       /* "" = any namespace */
};

struct route_rule {
	char *name;		       /* "namespace/name" */
	const struct rm_cfg_rule *c;   /* the copied cfg rule (numbers, flags) */
	uint64_t total_weight;	       /* sum of target weights */
	struct route_cors_policy cors; /* RM_RF_CORS: strings table-owned */
};

struct route_vip {
	struct rm_addr addr;
	__be16 port;
	uint8_t used;
	uint32_t svc;
};

struct route_table {
	uint64_t generation;
	char *strtab;
	uint32_t strtab_len;
	uint32_t n_services, n_rules, n_matches, n_conds, n_targets, n_hdrops;
	uint32_t n_subsets, n_endpoints, n_members, n_labels;
	struct rm_cfg_service *services;
	struct rm_cfg_rule *crules;
	struct route_rule *rules;
	struct route_match *matches;
	struct route_cond *conds;
	struct rm_cfg_target *targets;
	struct route_hdrop *hdrops;
	struct rm_cfg_subset *subsets;
	struct rm_cfg_endpoint *endpoints;
	uint32_t *members;
	uint32_t *ident; /* ident[i] = i: members of the whole-service pools */
	uint32_t *top;	 /* per service: its top-level DestinationRule subset, or RM_CFG_NONE */
	struct rm_cfg_label *labels;
	struct route_vip *vips; /* open addressing, vip_mask + 1 slots */
	uint32_t vip_mask;
	pcre2_match_context *mctx;
};

/* ---- small helpers ---- */

static const char *str_at(const struct route_table *t, uint32_t off)
{
	return off < t->strtab_len ? t->strtab + off : "";
}

static bool range_ok(uint32_t first, uint32_t count, uint32_t n)
{
	return first <= n && count <= n - first;
}

/* splitmix64's finaliser: independent-looking draws from one random value. */
static uint64_t mix(uint64_t rnd, uint64_t k)
{
	uint64_t z = rnd + (k + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) from 64 random bits, without the modulo bias. */
static uint64_t below(uint64_t r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

static bool slice_eq(struct route_slice s, const char *v, size_t vlen)
{
	return s.len == vlen && (vlen == 0 || memcmp(s.p, v, vlen) == 0);
}

int route_hdrs_get(const void *ctx, const char *lname, size_t idx, struct route_slice *out)
{
	const struct route_hdrs *h = ctx;
	size_t nlen = strlen(lname), seen = 0;

	for (size_t i = 0; h && i < h->n; i++) {
		if (h->v[i].name.len != nlen || strncasecmp(h->v[i].name.p, lname, nlen) != 0)
			continue;
		if (seen++ == idx) {
			*out = h->v[i].value;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- regex ---- */

static __thread pcre2_match_data *tls_md;

void route_thread_exit(void)
{
	pcre2_match_data_free(tls_md);
	tls_md = NULL;
}

/* Whole-value match; hitting a resource limit (or invalid UTF-8) is "no match". */
static bool re_match(const struct route_table *t, const pcre2_code *re, const char *s, size_t len)
{
	int rc;

	if (!tls_md) {
		tls_md = pcre2_match_data_create(1, NULL);
		if (!tls_md)
			return false;
	}
	rc = pcre2_match(re, (PCRE2_SPTR)(s ? s : ""), len, 0, 0, tls_md, t->mctx);
	return rc >= 0;
}

static pcre2_code *re_compile(const char *pat, size_t len, char *msg, size_t msglen)
{
	PCRE2_SIZE off;
	int code;
	pcre2_code *re;

	/* UTF like RE2; \C could split a character, so it is refused. */
	re = pcre2_compile((PCRE2_SPTR)pat, len,
			   PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C,
			   &code, &off, NULL);
	if (!re) {
		PCRE2_UCHAR buf[160];

		pcre2_get_error_message(code, buf, sizeof(buf));
		snprintf(msg, msglen, "%s at offset %zu", (char *)buf, (size_t)off);
		return NULL;
	}
	/* JIT is an optimisation: without it (no JIT support) the interpreter runs. */
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}

/* ---- build ---- */

static void *dup_arr(const void *src, size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);

	if (p && n)
		memcpy(p, src, n * sz);
	return p;
}

static uint32_t vip_hash(const struct rm_addr *a, __be16 port)
{
	uint64_t h = port;

	for (int i = 0; i < 4; i++)
		h = mix(h ^ a->a32[i], (uint64_t)i);
	return (uint32_t)h;
}

static struct route_vip *vip_slot(const struct route_table *t, const struct rm_addr *a, __be16 port)
{
	uint32_t i = vip_hash(a, port) & t->vip_mask;

	/* the table is at most half full: an empty slot always ends the probe */
	for (;; i = (i + 1) & t->vip_mask) {
		struct route_vip *v = &t->vips[i];

		if (!v->used || (v->port == port && memcmp(&v->addr, a, sizeof(*a)) == 0))
			return v;
	}
}

static int build_vips(struct route_table *t, char *err, size_t errlen)
{
	size_t n = 0, cap = 16;

	for (uint32_t s = 0; s < t->n_services; s++)
		n += (size_t)t->services[s].n_addrs * t->services[s].n_ports;
	while (cap < 2 * n)
		cap <<= 1;
	t->vips = calloc(cap, sizeof(*t->vips));
	if (!t->vips)
		return -ENOMEM;
	t->vip_mask = (uint32_t)(cap - 1);
	for (uint32_t s = 0; s < t->n_services; s++) {
		const struct rm_cfg_service *sv = &t->services[s];

		for (uint32_t a = 0; a < sv->n_addrs; a++) {
			for (uint32_t p = 0; p < sv->n_ports; p++) {
				struct route_vip *v = vip_slot(t, &sv->addrs[a], sv->ports[p].port);

				if (v->used && v->svc != s)
					return errf(err, errlen, -EINVAL,
						    "service %s: VIP and port %u already belong to "
						    "service %s",
						    str_at(t, sv->host_off),
						    (unsigned)__builtin_bswap16(sv->ports[p].port),
						    str_at(t, t->services[v->svc].host_off));
				v->used = 1;
				v->addr = sv->addrs[a];
				v->port = sv->ports[p].port;
				v->svc = s;
			}
		}
	}
	return 0;
}

static bool str_ok(const struct route_table *t, uint32_t off)
{
	return off < t->strtab_len;
}

/* Every count within capacity and every index/offset in range, before any use. */
static int check_cfg(const struct rm_cfg *c, char *err, size_t errlen)
{
	if (c->magic != RM_CFG_MAGIC)
		return errf(err, errlen, -EINVAL, "configuration: bad magic 0x%08x", c->magic);
	if (c->abi_version != RM_CFG_ABI_VERSION)
		return errf(err, errlen, -EINVAL, "configuration: ABI version %u, expected %u",
			    c->abi_version, RM_CFG_ABI_VERSION);
	/* a table with entries but no array: a count beyond what was built */
	if ((c->n_services && !c->services) || (c->n_rules && !c->rules) ||
	    (c->n_matches && !c->matches) || (c->n_conds && !c->conds) ||
	    (c->n_targets && !c->targets) || (c->n_hdrops && !c->hdrops) ||
	    (c->n_subsets && !c->subsets) || (c->n_endpoints && !c->endpoints) ||
	    (c->n_members && !c->members) || (c->n_labels && !c->labels))
		return errf(err, errlen, -EINVAL, "configuration: a count exceeds its table");
	if (c->strtab_len == 0 || !c->strtab || c->strtab[0] != '\0' ||
	    c->strtab[c->strtab_len - 1] != '\0')
		return errf(err, errlen, -EINVAL, "configuration: malformed string table");
	return 0;
}

static int check_service(const struct route_table *t, uint32_t s, char *err, size_t errlen)
{
	const struct rm_cfg_service *sv = &t->services[s];
	const char *h = str_at(t, sv->host_off);

	if (!str_ok(t, sv->host_off) || !str_ok(t, sv->name_off) || !str_ok(t, sv->ns_off))
		return errf(err, errlen, -EINVAL, "service %u: string offset out of range", s);
	if (sv->n_addrs > RM_CFG_SVC_ADDRS || sv->n_ports > RM_CFG_SVC_PORTS)
		return errf(err, errlen, -EINVAL, "service %s: too many addresses or ports", h);
	if (!range_ok(sv->rule_first, sv->rule_count, t->n_rules) ||
	    !range_ok(sv->subset_first, sv->subset_count, t->n_subsets) ||
	    !range_ok(sv->endpoint_first, sv->endpoint_count, t->n_endpoints))
		return errf(err, errlen, -EINVAL,
			    "service %s: rule/subset/endpoint range out of "
			    "bounds",
			    h);
	for (uint32_t r = sv->rule_first; r < sv->rule_first + sv->rule_count; r++)
		if (t->crules[r].service != s)
			return errf(err, errlen, -EINVAL,
				    "service %s: rule %u belongs to service %u", h, r,
				    t->crules[r].service);
	return 0;
}

static int check_subset(const struct route_table *t, uint32_t i, char *err, size_t errlen)
{
	const struct rm_cfg_subset *ss = &t->subsets[i];

	if (ss->service >= t->n_services ||
	    !range_ok(ss->member_first, ss->member_count, t->n_members) ||
	    !range_ok(ss->label_first, ss->label_count, t->n_labels) || !str_ok(t, ss->name_off))
		return errf(err, errlen, -EINVAL, "subset %u: index out of range", i);
	for (uint32_t m = 0; m < ss->member_count; m++)
		if (t->members[ss->member_first + m] >= t->n_endpoints)
			return errf(err, errlen, -EINVAL, "subset %u (%s): member %u out of range",
				    i, str_at(t, ss->name_off), t->members[ss->member_first + m]);
	if (ss->lb > RM_LB_PASSTHROUGH)
		return errf(err, errlen, -EINVAL, "subset %u (%s): unknown load balancer %u", i,
			    str_at(t, ss->name_off), ss->lb);
	return 0;
}

static int check_endpoint(const struct route_table *t, uint32_t i, char *err, size_t errlen)
{
	const struct rm_cfg_endpoint *e = &t->endpoints[i];

	if (e->service >= t->n_services || !str_ok(t, e->name_off) ||
	    !range_ok(e->label_first, e->label_count, t->n_labels))
		return errf(err, errlen, -EINVAL, "endpoint %u: index out of range", i);
	if (e->family != RM_AF_INET && e->family != RM_AF_INET6)
		return errf(err, errlen, -EINVAL, "endpoint %u: unknown address family %u", i,
			    e->family);
	return 0;
}

static int check_target(const struct route_table *t, const char *rn, const struct rm_cfg_target *tg,
			char *err, size_t errlen)
{
	if (tg->service >= t->n_services)
		return errf(err, errlen, -EINVAL, "rule %s: target service %u out of range", rn,
			    tg->service);
	if (tg->subset != RM_CFG_NONE &&
	    (tg->subset >= t->n_subsets || t->subsets[tg->subset].service != tg->service))
		return errf(err, errlen, -EINVAL,
			    "rule %s: target subset %u is not a subset of service %s", rn,
			    tg->subset, str_at(t, t->services[tg->service].host_off));
	return 0;
}

static int build_cond(struct route_table *t, uint32_t i, const struct rm_cfg_cond *cc,
		      const char *rn, char *err, size_t errlen)
{
	struct route_cond *c = &t->conds[i];
	char msg[200];

	if (!str_ok(t, cc->name_off) || !str_ok(t, cc->value_off))
		return errf(err, errlen, -EINVAL, "rule %s: condition %u: string out of range", rn,
			    i);
	if (cc->field < RM_MF_HEADER || cc->field > RM_MF_SCHEME || cc->op < RM_OP_EXACT ||
	    cc->op > RM_OP_REGEX)
		return errf(err, errlen, -EINVAL,
			    "rule %s: condition %u: unknown field %u or op %u", rn, i, cc->field,
			    cc->op);
	c->field = cc->field;
	c->op = cc->op;
	c->name = str_at(t, cc->name_off);
	c->value = str_at(t, cc->value_off);
	c->vlen = strlen(c->value);
	if (c->field == RM_MF_HEADER) {
		if (!c->name[0])
			return errf(err, errlen, -EINVAL,
				    "rule %s: header condition without a name", rn);
		for (const char *p = c->name; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				return errf(err, errlen, -EINVAL,
					    "rule %s: header name \"%s\" is not lower-case", rn,
					    c->name);
		/* HTTP/2 pseudo-headers name the request line's parts */
		if (!strcmp(c->name, ":path"))
			c->field = RM_MF_URI;
		else if (!strcmp(c->name, ":method"))
			c->field = RM_MF_METHOD;
		else if (!strcmp(c->name, ":authority") || !strcmp(c->name, "host"))
			c->field = RM_MF_AUTHORITY;
		else if (!strcmp(c->name, ":scheme"))
			c->field = RM_MF_SCHEME;
	}
	if (c->op == RM_OP_REGEX) {
		c->re = re_compile(c->value, c->vlen, msg, sizeof(msg));
		if (!c->re)
			return errf(err, errlen, -EINVAL, "rule %s: regex \"%s\": %s", rn, c->value,
				    msg);
	}
	return 0;
}

static int build_rule(struct route_table *t, uint32_t r, const struct rm_cfg *cfg, char *err,
		      size_t errlen)
{
	const struct rm_cfg_rule *cr = &t->crules[r];
	struct route_rule *rr = &t->rules[r];
	const char *rn;
	int ret;

	if (!str_ok(t, cr->name_off) || !str_ok(t, cr->ns_off) || !str_ok(t, cr->origin_off))
		return errf(err, errlen, -EINVAL, "rule %u: string offset out of range", r);
	if (asprintf(&rr->name, "%s/%s", str_at(t, cr->ns_off), str_at(t, cr->name_off)) < 0) {
		rr->name = NULL;
		return -ENOMEM;
	}
	rn = rr->name;
	rr->c = cr;
	if (cr->service >= t->n_services ||
	    !range_ok(cr->match_first, cr->match_count, t->n_matches) ||
	    !range_ok(cr->target_first, cr->target_count, t->n_targets) ||
	    !range_ok(cr->hdrop_first, cr->hdrop_count, t->n_hdrops))
		return errf(err, errlen, -EINVAL, "rule %s: index range out of bounds", rn);
	for (uint32_t k = cr->target_first; k < cr->target_first + cr->target_count; k++) {
		ret = check_target(t, rn, &t->targets[k], err, errlen);
		if (ret)
			return ret;
		rr->total_weight += t->targets[k].weight;
	}
	if (cr->target_count && !rr->total_weight)
		return errf(err, errlen, -EINVAL, "rule %s: every route weight is 0", rn);
	for (uint32_t m = cr->match_first; m < cr->match_first + cr->match_count; m++) {
		const struct rm_cfg_match *cm = &cfg->matches[m];
		struct route_match *mm = &t->matches[m];

		if (!range_ok(cm->cond_first, cm->cond_count, t->n_conds) ||
		    !range_ok(cm->src_label_first, cm->src_label_count, t->n_labels) ||
		    !str_ok(t, cm->src_name_off) || !str_ok(t, cm->src_ns_off))
			return errf(err, errlen, -EINVAL, "rule %s: match %u out of bounds", rn, m);
		mm->cond_first = cm->cond_first;
		mm->cond_count = cm->cond_count;
		mm->src_first = cm->src_label_first;
		mm->src_count = cm->src_label_count;
		mm->src_name = str_at(t, cm->src_name_off);
		mm->src_ns = str_at(t, cm->src_ns_off);
		for (uint32_t k = 0; k < cm->src_label_count; k++) {
			const struct rm_cfg_label *l = &t->labels[cm->src_label_first + k];

			if (!str_ok(t, l->key_off) || !str_ok(t, l->val_off))
				return errf(err, errlen, -EINVAL,
					    "rule %s: source label out of range", rn);
		}
		for (uint32_t k = cm->cond_first; k < cm->cond_first + cm->cond_count; k++) {
			/* a condition shared by two matches is compiled once */
			if (t->conds[k].field)
				continue;
			ret = build_cond(t, k, &cfg->conds[k], rn, err, errlen);
			if (ret)
				return ret;
		}
	}
	for (uint32_t k = cr->hdrop_first; k < cr->hdrop_first + cr->hdrop_count; k++) {
		const struct rm_cfg_hdrop *ho = &cfg->hdrops[k];

		if (!str_ok(t, ho->name_off) || !str_ok(t, ho->value_off) ||
		    ho->kind < RM_HDR_SET || ho->kind > RM_HDR_REMOVE)
			return errf(err, errlen, -EINVAL, "rule %s: bad header operation %u", rn,
				    k);
		t->hdrops[k].kind = ho->kind;
		t->hdrops[k].response = ho->response;
		t->hdrops[k].name = str_at(t, ho->name_off);
		t->hdrops[k].value = str_at(t, ho->value_off);
	}
	if (!str_ok(t, cr->redirect_uri_off) || !str_ok(t, cr->redirect_authority_off) ||
	    !str_ok(t, cr->rewrite_uri_off) || !str_ok(t, cr->rewrite_authority_off))
		return errf(err, errlen, -EINVAL, "rule %s: redirect/rewrite string out of range",
			    rn);
	if (cr->mirror_service != RM_CFG_NONE) {
		struct rm_cfg_target mt = {.service = cr->mirror_service,
					   .subset = cr->mirror_subset};

		ret = check_target(t, rn, &mt, err, errlen);
		if (ret)
			return ret;
	}
	if (cr->flags & RM_RF_CORS) {
		if (!range_ok(cr->cors_origin_first, cr->cors_origin_count, t->n_conds) ||
		    !str_ok(t, cr->cors_methods_off) || !str_ok(t, cr->cors_headers_off) ||
		    !str_ok(t, cr->cors_expose_off) || !str_ok(t, cr->cors_origins_off))
			return errf(err, errlen, -EINVAL, "rule %s: corsPolicy out of bounds", rn);
		for (uint32_t k = cr->cors_origin_first;
		     k < cr->cors_origin_first + cr->cors_origin_count; k++) {
			if (cfg->conds[k].field != RM_MF_HEADER)
				return errf(
				    err, errlen, -EINVAL,
				    "rule %s: corsPolicy origin %u is not a header condition", rn,
				    k);
			if (t->conds[k].field)
				continue;
			ret = build_cond(t, k, &cfg->conds[k], rn, err, errlen);
			if (ret)
				return ret;
		}
		rr->cors = (struct route_cors_policy){
		    .methods = str_at(t, cr->cors_methods_off),
		    .headers = str_at(t, cr->cors_headers_off),
		    .expose = str_at(t, cr->cors_expose_off),
		    .max_age_s = cr->cors_max_age_s,
		    .credentials = cr->cors_credentials == 2,
		};
	}
	if (cr->delay_ppm > 1000000 || cr->abort_ppm > 1000000 || cr->mirror_ppm > 1000000)
		return errf(err, errlen, -EINVAL, "rule %s: a percentage exceeds 100%%", rn);
	if (cr->abort_ppm && (cr->abort_status < 200 || cr->abort_status > 599))
		return errf(err, errlen, -EINVAL, "rule %s: abort status %u is not 200..599", rn,
			    cr->abort_status);
	return 0;
}

/*
 * The subset the compiler made of a DestinationRule's top-level trafficPolicy (name "",
 * no labels: every endpoint): traffic to the whole service uses it, as Istio's
 * outbound|port||host cluster carries the top-level policy. After check_subset and
 * check_service, so the indices are in range.
 */
static void find_top_subsets(struct route_table *t)
{
	for (uint32_t s = 0; s < t->n_services; s++) {
		const struct rm_cfg_service *sv = &t->services[s];

		t->top[s] = RM_CFG_NONE;
		for (uint32_t i = sv->subset_first; i < sv->subset_first + sv->subset_count; i++) {
			const struct rm_cfg_subset *ss = &t->subsets[i];

			if (ss->api == RM_API_DESTRULE && !ss->label_count &&
			    !*str_at(t, ss->name_off) && ss->service == s) {
				t->top[s] = i;
				break;
			}
		}
	}
}

int route_build(const struct rm_cfg *cfg, struct route_table **out, char *err, size_t errlen)
{
	struct route_table *t;
	int ret;

	*out = NULL;
	if (!cfg)
		return errf(err, errlen, -EINVAL, "configuration: none");
	ret = check_cfg(cfg, err, errlen);
	if (ret)
		return ret;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->generation = cfg->generation;
	t->strtab_len = cfg->strtab_len;
	t->n_services = cfg->n_services;
	t->n_rules = cfg->n_rules;
	t->n_matches = cfg->n_matches;
	t->n_conds = cfg->n_conds;
	t->n_targets = cfg->n_targets;
	t->n_hdrops = cfg->n_hdrops;
	t->n_subsets = cfg->n_subsets;
	t->n_endpoints = cfg->n_endpoints;
	t->n_members = cfg->n_members;
	t->n_labels = cfg->n_labels;
	t->strtab = dup_arr(cfg->strtab, cfg->strtab_len, 1);
	t->services = dup_arr(cfg->services, t->n_services, sizeof(*t->services));
	t->crules = dup_arr(cfg->rules, t->n_rules, sizeof(*t->crules));
	t->rules = calloc(t->n_rules ? t->n_rules : 1, sizeof(*t->rules));
	t->matches = calloc(t->n_matches ? t->n_matches : 1, sizeof(*t->matches));
	t->conds = calloc(t->n_conds ? t->n_conds : 1, sizeof(*t->conds));
	t->targets = dup_arr(cfg->targets, t->n_targets, sizeof(*t->targets));
	t->hdrops = calloc(t->n_hdrops ? t->n_hdrops : 1, sizeof(*t->hdrops));
	t->subsets = dup_arr(cfg->subsets, t->n_subsets, sizeof(*t->subsets));
	t->endpoints = dup_arr(cfg->endpoints, t->n_endpoints, sizeof(*t->endpoints));
	t->members = dup_arr(cfg->members, t->n_members, sizeof(*t->members));
	t->labels = dup_arr(cfg->labels, t->n_labels, sizeof(*t->labels));
	t->ident = calloc(t->n_endpoints ? t->n_endpoints : 1, sizeof(*t->ident));
	t->top = calloc(t->n_services ? t->n_services : 1, sizeof(*t->top));
	t->mctx = pcre2_match_context_create(NULL);
	if (!t->strtab || !t->services || !t->crules || !t->rules || !t->matches || !t->conds ||
	    !t->targets || !t->hdrops || !t->subsets || !t->endpoints || !t->members ||
	    !t->labels || !t->ident || !t->top || !t->mctx) {
		ret = -ENOMEM;
		goto err;
	}
	pcre2_set_match_limit(t->mctx, ROUTE_RE_MATCH_LIMIT);
	pcre2_set_depth_limit(t->mctx, ROUTE_RE_DEPTH_LIMIT);
	pcre2_set_heap_limit(t->mctx, ROUTE_RE_HEAP_LIMIT_KIB);
	for (uint32_t i = 0; i < t->n_endpoints; i++)
		t->ident[i] = i;

	for (uint32_t i = 0; i < t->n_labels; i++)
		if (!str_ok(t, t->labels[i].key_off) || !str_ok(t, t->labels[i].val_off)) {
			ret = errf(err, errlen, -EINVAL, "label %u: string out of range", i);
			goto err;
		}
	for (uint32_t i = 0; i < t->n_endpoints; i++)
		if ((ret = check_endpoint(t, i, err, errlen)))
			goto err;
	for (uint32_t i = 0; i < t->n_subsets; i++)
		if ((ret = check_subset(t, i, err, errlen)))
			goto err;
	for (uint32_t i = 0; i < t->n_services; i++)
		if ((ret = check_service(t, i, err, errlen)))
			goto err;
	find_top_subsets(t);
	for (uint32_t i = 0; i < t->n_rules; i++)
		if ((ret = build_rule(t, i, cfg, err, errlen)))
			goto err;
	if ((ret = build_vips(t, err, errlen)))
		goto err;
	*out = t;
	return 0;
err:
	if (ret == -ENOMEM)
		errf(err, errlen, ret, "out of memory building the routing table");
	route_free(t);
	return ret;
}

void route_free(struct route_table *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; t->conds && i < t->n_conds; i++)
		pcre2_code_free(t->conds[i].re);
	for (uint32_t i = 0; t->rules && i < t->n_rules; i++)
		free(t->rules[i].name);
	pcre2_match_context_free(t->mctx);
	free(t->strtab);
	free(t->services);
	free(t->crules);
	free(t->rules);
	free(t->matches);
	free(t->conds);
	free(t->targets);
	free(t->hdrops);
	free(t->subsets);
	free(t->endpoints);
	free(t->members);
	free(t->ident);
	free(t->top);
	free(t->labels);
	free(t->vips);
	free(t);
}

uint64_t route_generation(const struct route_table *t)
{
	return t->generation;
}

int route_find_service(const struct route_table *t, const struct rm_addr *dst, __be16 port)
{
	const struct route_vip *v = vip_slot(t, dst, port);

	return v->used ? (int)v->svc : -ENOENT;
}

/* ---- matching ---- */

static bool op_match(const struct route_table *t, const struct route_cond *c, const char *s,
		     size_t len)
{
	switch (c->op) {
	case RM_OP_EXACT:
		return len == c->vlen && (len == 0 || memcmp(s, c->value, len) == 0);
	case RM_OP_PREFIX:
		return len >= c->vlen && (c->vlen == 0 || memcmp(s, c->value, c->vlen) == 0);
	case RM_OP_REGEX:
		return re_match(t, c->re, s, len);
	}
	return false;
}

/*
 * Envoy matches a prefix against :path, which still carries the query, while exact
 * and regex ignore it; a prefix longer than the path may reach into "?query".
 */
static bool uri_prefix(const struct route_cond *c, const struct route_req *req)
{
	size_t pl = req->path.len, rest;

	if (c->vlen <= pl)
		return c->vlen == 0 || memcmp(req->path.p, c->value, c->vlen) == 0;
	if (!req->has_query || (pl && memcmp(req->path.p, c->value, pl) != 0) ||
	    c->value[pl] != '?')
		return false;
	rest = c->vlen - pl - 1;
	return rest <= req->query.len &&
	       (rest == 0 || memcmp(req->query.p, c->value + pl + 1, rest) == 0);
}

/*
 * Repeated field lines are matched as one value joined by ',' (what Envoy's header
 * matcher sees); an absent header never matches.
 */
static bool header_match(const struct route_table *t, const struct route_cond *c,
			 const struct route_req *req)
{
	struct route_slice v, w;
	char stack[1024], *buf;
	size_t total, n = 1, off = 0;
	bool ok;

	if (!req->hdr_get || req->hdr_get(req->hdr_ctx, c->name, 0, &v))
		return false;
	if (req->hdr_get(req->hdr_ctx, c->name, 1, &w))
		return op_match(t, c, v.p, v.len);
	total = v.len;
	while (!req->hdr_get(req->hdr_ctx, c->name, n, &w)) {
		total += 1 + w.len;
		n++;
	}
	buf = total <= sizeof(stack) ? stack : malloc(total);
	if (!buf)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (req->hdr_get(req->hdr_ctx, c->name, i, &w) || off + w.len + !!i > total)
			break;
		if (i)
			buf[off++] = ',';
		if (w.len)
			memcpy(buf + off, w.p, w.len);
		off += w.len;
	}
	ok = op_match(t, c, buf, off);
	if (buf != stack)
		free(buf);
	return ok;
}

static bool cond_match(const struct route_table *t, const struct route_cond *c,
		       const struct route_req *req)
{
	switch (c->field) {
	case RM_MF_URI:
		if (c->op == RM_OP_PREFIX)
			return uri_prefix(c, req);
		return op_match(t, c, req->path.p, req->path.len);
	case RM_MF_METHOD:
		return op_match(t, c, req->method.p, req->method.len);
	case RM_MF_AUTHORITY:
		return op_match(t, c, req->authority.p, req->authority.len);
	case RM_MF_SCHEME:
		return op_match(t, c, req->scheme.p, req->scheme.len);
	case RM_MF_HEADER:
		return header_match(t, c, req);
	}
	return false;
}

static size_t first_label_len(const char *p, size_t len)
{
	const char *dot = memchr(p, '.', len);

	return dot ? (size_t)(dot - p) : len;
}

/* Old API match.source.name: the caller's service, by FQDN or by short name. */
static bool src_name_match(const char *want, struct route_slice have)
{
	size_t wl = strlen(want), wf, hf;

	if (!have.len)
		return false;
	if (slice_eq(have, want, wl))
		return true;
	wf = first_label_len(want, wl);
	hf = first_label_len(have.p, have.len);
	/* only when one side is a bare name: a.x and a.y are different services */
	if (wf != wl && hf != have.len)
		return false;
	return wf == hf && memcmp(want, have.p, wf) == 0;
}

static bool src_match(const struct route_table *t, const struct route_match *m,
		      const struct route_req *req)
{
	if (m->src_name[0] && !src_name_match(m->src_name, req->src_service))
		return false;
	if (m->src_ns[0] && !slice_eq(req->src_namespace, m->src_ns, strlen(m->src_ns)))
		return false;
	for (uint32_t i = 0; i < m->src_count; i++) {
		const struct rm_cfg_label *l = &t->labels[m->src_first + i];
		const char *k = str_at(t, l->key_off), *v = str_at(t, l->val_off);
		size_t kl = strlen(k), vl = strlen(v);
		bool found = false;

		for (size_t j = 0; !found && j < req->n_src_labels; j++)
			found = slice_eq(req->src_labels[j].key, k, kl) &&
				slice_eq(req->src_labels[j].val, v, vl);
		if (!found)
			return false;
	}
	return true;
}

static bool match_ok(const struct route_table *t, const struct route_match *m,
		     const struct route_req *req)
{
	for (uint32_t i = 0; i < m->cond_count; i++)
		if (!cond_match(t, &t->conds[m->cond_first + i], req))
			return false;
	return src_match(t, m, req);
}

/* How much of the path a uri rewrite replaces: the matched prefix, else all of it. */
static size_t rewrite_strip(const struct route_table *t, int match, const struct route_req *req)
{
	size_t whole = req->path.len;

	if (match >= 0) {
		const struct route_match *m = &t->matches[match];

		for (uint32_t i = 0; i < m->cond_count; i++) {
			const struct route_cond *c = &t->conds[m->cond_first + i];

			if (c->field == RM_MF_URI && c->op == RM_OP_PREFIX)
				return c->vlen;
		}
	}
	return whole;
}

const struct route_cors_policy *route_cors_policy(const struct route_table *t, int rule)
{
	if (rule < 0 || (uint32_t)rule >= t->n_rules || !(t->rules[rule].c->flags & RM_RF_CORS))
		return NULL;
	return &t->rules[rule].cors;
}

/* Envoy's CORS filter on a request the rule matched: an Origin (non-empty) makes it a
 * CORS request; it is allowed when a matcher matches the origin or the literal "*"; a
 * preflight is an OPTIONS with a non-empty Access-Control-Request-Method. */
enum route_cors_verdict route_cors_check(const struct route_table *t, int rule,
					 const struct route_req *req, struct route_slice *origin,
					 bool *preflight)
{
	const struct rm_cfg_rule *cr;
	struct route_slice o = {0}, m = {0};

	*preflight = false;
	if (!route_cors_policy(t, rule) || !req->hdr_get ||
	    req->hdr_get(req->hdr_ctx, "origin", 0, &o) || !o.len)
		return ROUTE_CORS_NONE;
	*origin = o;
	*preflight = slice_eq(req->method, "OPTIONS", 7) &&
		     !req->hdr_get(req->hdr_ctx, "access-control-request-method", 0, &m) && m.len;
	cr = t->rules[rule].c;
	for (uint32_t i = 0; i < cr->cors_origin_count; i++) {
		const struct route_cond *c = &t->conds[cr->cors_origin_first + i];

		if (op_match(t, c, "*", 1) || op_match(t, c, o.p, o.len))
			return ROUTE_CORS_ALLOWED;
	}
	return ROUTE_CORS_DENIED;
}

static bool draw(uint64_t rnd, uint64_t k, uint32_t ppm)
{
	return ppm && below(mix(rnd, k), 1000000) < ppm;
}

int route_decide(const struct route_table *t, uint32_t svc, const struct route_req *req,
		 uint64_t rnd, struct route_decision *out)
{
	const struct rm_cfg_service *sv;
	const struct rm_cfg_rule *cr;
	const struct route_rule *rr;
	int rule = ROUTE_RULE_NONE, match = -1;

	memset(out, 0, sizeof(*out));
	out->rule = ROUTE_RULE_NONE;
	out->match = -1;
	out->rule_name = "";
	out->target_subset = RM_CFG_NONE;
	out->mirror_service = RM_CFG_NONE;
	out->mirror_subset = RM_CFG_NONE;
	if (!t || !req || svc >= t->n_services)
		return -EINVAL;
	sv = &t->services[svc];
	out->target_service = svc;
	if (!sv->rule_count) {
		out->outcome = ROUTE_FORWARD;
		return 0;
	}
	for (uint32_t r = sv->rule_first; r < sv->rule_first + sv->rule_count && rule < 0; r++) {
		cr = t->rules[r].c;
		if (!cr->match_count) {
			rule = (int)r;
			break;
		}
		for (uint32_t m = cr->match_first; m < cr->match_first + cr->match_count; m++) {
			if (match_ok(t, &t->matches[m], req)) {
				rule = (int)r;
				match = (int)m;
				break;
			}
		}
	}
	if (rule < 0) {
		out->outcome = ROUTE_NO_ROUTE;
		return 0;
	}
	rr = &t->rules[rule];
	cr = rr->c;
	out->rule = rule;
	out->match = match;
	out->rule_name = rr->name;
	out->rule_flags = cr->flags;
	out->timeout_ns = cr->timeout_ns;
	out->retry_attempts = cr->retry_attempts;
	out->retry_on = cr->retry_on;
	out->retry_per_try_ns = cr->retry_per_try_ns;
	out->hdrops = cr->hdrop_count ? &t->hdrops[cr->hdrop_first] : NULL;
	out->n_hdrops = cr->hdrop_count;

	if (cr->target_count) {
		uint64_t x = below(mix(rnd, 0), rr->total_weight);
		const struct rm_cfg_target *tg = &t->targets[cr->target_first];

		/* zero weights never satisfy x < w: they are skipped by construction */
		for (uint32_t i = 0; i < cr->target_count; i++, tg++) {
			if (x < tg->weight)
				break;
			x -= tg->weight;
		}
		out->target_service = tg->service;
		out->target_subset = tg->subset;
		out->target_port = tg->port;
	}
	if (cr->delay_ns && draw(rnd, 1, cr->delay_ppm))
		out->delay_ns = cr->delay_ns;
	if (cr->abort_status && draw(rnd, 2, cr->abort_ppm)) {
		out->abort_status = cr->abort_status;
		out->outcome = ROUTE_ABORT;
		return 0;
	}
	if ((cr->flags & RM_RF_REDIRECT) || cr->redirect_uri_off || cr->redirect_authority_off) {
		out->outcome = ROUTE_REDIRECT;
		out->redirect_code = cr->redirect_code ? cr->redirect_code : 301;
		out->redirect_uri = str_at(t, cr->redirect_uri_off);
		out->redirect_authority = str_at(t, cr->redirect_authority_off);
		return 0;
	}
	out->outcome = ROUTE_FORWARD;
	if (cr->rewrite_uri_off) {
		out->rewrite_uri = str_at(t, cr->rewrite_uri_off);
		out->rewrite_strip = rewrite_strip(t, match, req);
	}
	if (cr->rewrite_authority_off)
		out->rewrite_authority = str_at(t, cr->rewrite_authority_off);
	if (cr->mirror_service != RM_CFG_NONE && draw(rnd, 3, cr->mirror_ppm)) {
		out->mirror = true;
		out->mirror_service = cr->mirror_service;
		out->mirror_subset = cr->mirror_subset;
	}
	return 0;
}

/* ---- output helpers ---- */

int route_rewrite_path(const struct route_decision *d, const struct route_req *req, char *buf,
		       size_t len)
{
	struct sbuf b = sbuf_make(buf, len);
	size_t strip = d->rewrite_strip;

	if (d->rewrite_uri)
		sbuf_put(&b, d->rewrite_uri, strlen(d->rewrite_uri));
	else
		strip = 0;
	if (strip <= req->path.len) {
		sbuf_put(&b, req->path.p + strip, req->path.len - strip);
		if (req->has_query) {
			sbuf_put(&b, "?", 1);
			sbuf_put(&b, req->query.p, req->query.len);
		}
	} else {
		/* the matched prefix reached into the query */
		size_t q = strip - req->path.len - 1;

		if (q <= req->query.len)
			sbuf_put(&b, req->query.p + q, req->query.len - q);
	}
	return (int)sbuf_cstr(&b);
}

int route_redirect_location(const struct route_decision *d, const struct route_req *req, char *buf,
			    size_t len)
{
	struct sbuf b = sbuf_make(buf, len);
	const char *ru = d->redirect_uri ? d->redirect_uri : "";
	const char *ra = d->redirect_authority ? d->redirect_authority : "";

	if (req->scheme.len)
		sbuf_put(&b, req->scheme.p, req->scheme.len);
	else
		sbuf_put(&b, "http", 4);
	sbuf_put(&b, "://", 3);
	if (ra[0])
		sbuf_put(&b, ra, strlen(ra));
	else
		sbuf_put(&b, req->authority.p, req->authority.len);
	if (ru[0])
		sbuf_put(&b, ru, strlen(ru));
	else
		sbuf_put(&b, req->path.p, req->path.len);
	/* a redirect uri with its own query replaces the request's */
	if (req->has_query && !strchr(ru, '?')) {
		sbuf_put(&b, "?", 1);
		sbuf_put(&b, req->query.p, req->query.len);
	}
	return (int)sbuf_cstr(&b);
}

/* ---- read access ---- */

uint32_t route_n_services(const struct route_table *t)
{
	return t->n_services;
}

uint32_t route_n_subsets(const struct route_table *t)
{
	return t->n_subsets;
}

const char *route_service_host(const struct route_table *t, uint32_t svc)
{
	return svc < t->n_services ? str_at(t, t->services[svc].host_off) : NULL;
}

int route_service_port(const struct route_table *t, uint32_t svc, __be16 port, uint8_t *proto)
{
	if (svc >= t->n_services)
		return -ENOENT;
	for (uint32_t i = 0; i < t->services[svc].n_ports; i++) {
		if (t->services[svc].ports[i].port == port) {
			if (proto)
				*proto = t->services[svc].ports[i].proto;
			return (int)i;
		}
	}
	return -ENOENT;
}

uint32_t route_n_pools(const struct route_table *t)
{
	return t->n_subsets + t->n_services;
}

int route_pool(const struct route_table *t, uint32_t svc, uint32_t subset, uint32_t *pool,
	       const uint32_t **members, size_t *n_members, uint32_t *lb)
{
	if (svc >= t->n_services)
		return -EINVAL;
	if (subset == RM_CFG_NONE)
		subset = t->top[svc];
	if (subset == RM_CFG_NONE) {
		const struct rm_cfg_service *sv = &t->services[svc];

		*pool = t->n_subsets + svc;
		*members = &t->ident[sv->endpoint_first];
		*n_members = sv->endpoint_count;
		*lb = RM_LB_ROUND_ROBIN;
		return 0;
	}
	if (subset >= t->n_subsets || t->subsets[subset].service != svc)
		return -EINVAL;
	*pool = subset;
	*members = &t->members[t->subsets[subset].member_first];
	*n_members = t->subsets[subset].member_count;
	*lb = t->subsets[subset].lb;
	return 0;
}

const struct rm_cfg_breaker *route_subset_breaker(const struct route_table *t, uint32_t subset)
{
	return subset < t->n_subsets ? &t->subsets[subset].cb : NULL;
}

const char *route_subset_name(const struct route_table *t, uint32_t subset)
{
	return subset < t->n_subsets ? str_at(t, t->subsets[subset].name_off) : "";
}

int route_endpoint(const struct route_table *t, uint32_t ep, struct route_endpoint *out)
{
	const struct rm_cfg_endpoint *e;

	if (ep >= t->n_endpoints)
		return -EINVAL;
	e = &t->endpoints[ep];
	out->addr = e->addr;
	out->family = e->family;
	out->service = e->service;
	out->weight = e->weight ? e->weight : 1;
	out->name = str_at(t, e->name_off);
	return 0;
}

__be16 route_endpoint_port(const struct route_table *t, uint32_t ep, __be16 svc_port)
{
	const struct rm_cfg_endpoint *e;
	int i;

	if (ep >= t->n_endpoints)
		return 0;
	e = &t->endpoints[ep];
	i = route_service_port(t, e->service, svc_port, NULL);
	if (i < 0)
		return 0;
	return e->ports[i] ? e->ports[i] : svc_port;
}
