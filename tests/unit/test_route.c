/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for the L7 router: the Istio 0.5 workshop scenarios (routerule-v1..v4 +
 * serviceentry) as decisions on hand-built compiled snapshots, every match type,
 * weighted choice against a chi-square bound, faults, redirect/rewrite, NR, the
 * (VIP, port) index, the regex resource limit and route_build's validation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "common/cfg.h"
#include "policy/route.h"

/* ---- a tiny compiler for hand-built snapshots ---- */

static uint32_t str(struct rm_cfg *c, const char *s)
{
	uint32_t off = c->strtab_len;
	size_t n = strlen(s) + 1;

	if (!s[0])
		return 0;
	assert_int_equal(cfg_reserve(c, RM_CFG_T_STRTAB, off + n), 0);
	memcpy(c->strtab + off, s, n);
	c->strtab_len += (uint32_t)n;
	return off;
}

static struct rm_cfg *cfg_new(void)
{
	struct rm_cfg *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	assert_int_equal(cfg_init(c), 0);
	/* hand-built: room for what the tests add (indices are written directly) */
	for (int t = 0; t < RM_CFG_T_STRTAB; t++)
		assert_int_equal(cfg_reserve(c, t, 4096), 0);
	c->generation = 7;
	return c;
}

static struct rm_addr v4(const char *ip)
{
	struct rm_addr a = {0};

	a.a8[10] = 0xff;
	a.a8[11] = 0xff;
	assert_int_equal(inet_pton(AF_INET, ip, &a.a8[12]), 1);
	return a;
}

static uint32_t add_service(struct rm_cfg *c, const char *host, const char *vip, uint16_t port)
{
	uint32_t i = c->n_services++;
	struct rm_cfg_service *s = &c->services[i];
	char name[64];

	snprintf(name, sizeof(name), "%.*s", (int)strcspn(host, "."), host);
	s->host_off = str(c, host);
	s->name_off = str(c, name);
	s->flags = RM_SF_DECLARED;
	if (vip) {
		s->addrs[0] = v4(vip);
		s->n_addrs = 1;
	}
	s->ports[0].port = htons(port);
	s->ports[0].proto = RM_PROTO_HTTP;
	s->ports[0].name_off = str(c, "http");
	s->n_ports = 1;
	s->endpoint_first = c->n_endpoints;
	s->subset_first = c->n_subsets;
	s->rule_first = c->n_rules;
	return i;
}

/* labels "k=v,k=v" appended to the label array */
static void add_labels(struct rm_cfg *c, const char *spec, uint32_t *first, uint32_t *count)
{
	char buf[256], *save, *kv;

	*first = c->n_labels;
	*count = 0;
	snprintf(buf, sizeof(buf), "%s", spec);
	for (kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');

		assert_non_null(eq);
		*eq = '\0';
		c->labels[c->n_labels].key_off = str(c, kv);
		c->labels[c->n_labels].val_off = str(c, eq + 1);
		c->n_labels++;
		(*count)++;
	}
}

static uint32_t add_endpoint(struct rm_cfg *c, uint32_t svc, const char *ip, const char *labels)
{
	uint32_t i = c->n_endpoints++;
	struct rm_cfg_endpoint *e = &c->endpoints[i];

	e->addr = v4(ip);
	e->family = AF_INET;
	e->service = svc;
	add_labels(c, labels, &e->label_first, &e->label_count);
	c->services[svc].endpoint_count++;
	return i;
}

static bool ep_has(const struct rm_cfg *c, const struct rm_cfg_endpoint *e,
		   const struct rm_cfg_label *l)
{
	for (uint32_t i = 0; i < e->label_count; i++) {
		const struct rm_cfg_label *m = &c->labels[e->label_first + i];

		if (!strcmp(c->strtab + m->key_off, c->strtab + l->key_off) &&
		    !strcmp(c->strtab + m->val_off, c->strtab + l->val_off))
			return true;
	}
	return false;
}

/* A subset selecting the service's endpoints whose labels include these. */
static uint32_t add_subset(struct rm_cfg *c, uint32_t svc, const char *labels, uint32_t lb)
{
	uint32_t i = c->n_subsets++;
	struct rm_cfg_subset *s = &c->subsets[i];
	const struct rm_cfg_service *sv = &c->services[svc];

	s->service = svc;
	s->name_off = str(c, labels);
	s->api = RM_API_IMPLICIT;
	s->lb = lb;
	add_labels(c, labels, &s->label_first, &s->label_count);
	s->member_first = c->n_members;
	for (uint32_t e = sv->endpoint_first; e < sv->endpoint_first + sv->endpoint_count; e++) {
		bool all = true;

		for (uint32_t k = 0; k < s->label_count; k++)
			all = all && ep_has(c, &c->endpoints[e], &c->labels[s->label_first + k]);
		if (all) {
			c->members[c->n_members++] = e;
			s->member_count++;
		}
	}
	c->services[svc].subset_count++;
	return i;
}

/* Rules must be added in evaluation order, all rules of a service together. */
static struct rm_cfg_rule *add_rule(struct rm_cfg *c, uint32_t svc, const char *name, int prec,
				    uint16_t api)
{
	uint32_t i = c->n_rules++;
	struct rm_cfg_rule *r = &c->rules[i];

	if (!c->services[svc].rule_count)
		c->services[svc].rule_first = i;
	c->services[svc].rule_count++;
	r->service = svc;
	r->name_off = str(c, name);
	r->ns_off = str(c, "order-system-production");
	r->precedence = prec;
	r->api = api;
	r->match_first = c->n_matches;
	r->target_first = c->n_targets;
	r->hdrop_first = c->n_hdrops;
	r->mirror_service = RM_CFG_NONE;
	r->mirror_subset = RM_CFG_NONE;
	if (api == RM_API_ROUTERULE) {
		r->timeout_ns = RM_CFG_OLD_DEFAULT_TIMEOUT_NS;
		r->flags |= RM_RF_TIMEOUT_DEFAULT;
	}
	return r;
}

static void add_target(struct rm_cfg *c, struct rm_cfg_rule *r, uint32_t svc, uint32_t subset,
		       uint32_t weight)
{
	struct rm_cfg_target *t = &c->targets[c->n_targets++];

	t->service = svc;
	t->subset = subset;
	t->weight = weight;
	r->target_count++;
}

/* A new OR alternative of the last rule; its conditions follow with add_cond. */
static struct rm_cfg_match *add_match(struct rm_cfg *c, struct rm_cfg_rule *r)
{
	struct rm_cfg_match *m = &c->matches[c->n_matches++];

	m->cond_first = c->n_conds;
	r->match_count++;
	return m;
}

static void add_cond(struct rm_cfg *c, struct rm_cfg_match *m, uint8_t field, uint8_t op,
		     const char *name, const char *value)
{
	struct rm_cfg_cond *k = &c->conds[c->n_conds++];

	k->field = field;
	k->op = op;
	k->name_off = name ? str(c, name) : 0;
	k->value_off = str(c, value);
	m->cond_count++;
}

static struct route_table *build_ok(struct rm_cfg *c)
{
	struct route_table *t = NULL;
	char err[256] = "";
	int ret = route_build(c, &t, err, sizeof(err));

	if (ret)
		print_error("route_build: %d %s\n", ret, err);
	assert_int_equal(ret, 0);
	assert_non_null(t);
	return t;
}

static int build_err(struct rm_cfg *c, const char *want)
{
	struct route_table *t = (void *)1;
	char err[256] = "";
	int ret = route_build(c, &t, err, sizeof(err));

	assert_null(t);
	if (!strstr(err, want))
		print_error("error \"%s\" lacks \"%s\"\n", err, want);
	assert_non_null(strstr(err, want));
	return ret;
}

/* ---- requests ---- */

#define S(x) ((struct route_slice){(x), sizeof(x) - 1})

struct req {
	struct route_req r;
	struct route_hdr h[8];
	struct route_hdrs hs;
};

static void req_init(struct req *q, const char *method, const char *path, const char *query)
{
	memset(q, 0, sizeof(*q));
	q->r.method = (struct route_slice){method, strlen(method)};
	q->r.path = (struct route_slice){path, strlen(path)};
	if (query) {
		q->r.query = (struct route_slice){query, strlen(query)};
		q->r.has_query = true;
	}
	q->r.authority = S("trans-service:8080");
	q->r.scheme = S("http");
	q->hs.v = q->h;
	q->r.hdr_get = route_hdrs_get;
	q->r.hdr_ctx = &q->hs;
}

static void req_hdr(struct req *q, const char *name, const char *value)
{
	assert_true(q->hs.n < 8);
	q->h[q->hs.n].name = (struct route_slice){name, strlen(name)};
	q->h[q->hs.n].value = (struct route_slice){value, strlen(value)};
	q->hs.n++;
}

/* splitmix64: the fixed-seed random source of the tests */
static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct route_decision decide(struct route_table *t, uint32_t svc, struct req *q)
{
	struct route_decision d;

	assert_int_equal(route_decide(t, svc, &q->r, rng(), &d), 0);
	return d;
}

/* ---- the workshop ---- */

struct ws {
	struct rm_cfg *c;
	uint32_t svc, v1, v2, v3;
	int r1, r2, r3, r4; /* rule indices, -1 when absent */
};

/* serviceentry.yaml + the chosen routerule-vN.yaml, compiled in precedence order. */
static void workshop(struct ws *w, bool r1, bool r2, bool r3, bool r4)
{
	struct rm_cfg *c = cfg_new();
	struct rm_cfg_rule *r;

	w->c = c;
	w->r1 = w->r2 = w->r3 = w->r4 = -1;
	w->svc = add_service(c, "trans-service.order-system-production.svc.cluster.local",
			     "10.96.0.20", 8080);
	add_endpoint(c, w->svc, "10.244.0.11", "app=trans-service,version=v1");
	add_endpoint(c, w->svc, "10.244.0.12", "app=trans-service,version=v2");
	add_endpoint(c, w->svc, "10.244.0.13", "app=trans-service,version=v3");
	w->v1 = add_subset(c, w->svc, "app=trans-service,version=v1", RM_LB_ROUND_ROBIN);
	w->v2 = add_subset(c, w->svc, "app=trans-service,version=v2", RM_LB_ROUND_ROBIN);
	w->v3 = add_subset(c, w->svc, "app=trans-service,version=v3", RM_LB_ROUND_ROBIN);
	if (r4) {
		w->r4 = (int)c->n_rules;
		r = add_rule(c, w->svc, "trans-service-bulkhead", 6, RM_API_ROUTERULE);
		add_target(c, r, w->svc, w->v3, 100);
		r->timeout_ns = 5000000000ull;
		r->flags &= ~RM_RF_TIMEOUT_DEFAULT;
	}
	if (r3) {
		w->r3 = (int)c->n_rules;
		r = add_rule(c, w->svc, "trans-service-canary", 3, RM_API_ROUTERULE);
		add_target(c, r, w->svc, w->v1, 70);
		add_target(c, r, w->svc, w->v2, 30);
	}
	if (r2) {
		w->r2 = (int)c->n_rules;
		r = add_rule(c, w->svc, "trans-service-featureflag", 2, RM_API_ROUTERULE);
		add_cond(c, add_match(c, r), RM_MF_HEADER, RM_OP_EXACT, "x-dev-user",
			 "super-secret");
		add_target(c, r, w->svc, w->v2, 100);
	}
	if (r1) {
		w->r1 = (int)c->n_rules;
		r = add_rule(c, w->svc, "trans-service-default", 1, RM_API_ROUTERULE);
		add_target(c, r, w->svc, w->v1, 100);
	}
}

static void test_workshop_rule1_all_v1(void **state)
{
	struct ws w;
	struct route_table *t;
	struct req q;

	workshop(&w, true, false, false, false);
	t = build_ok(w.c);
	rng_state = 1;
	for (int i = 0; i < 1000; i++) {
		req_init(&q, "GET", "/translate", "lang=de");
		if (i & 1)
			req_hdr(&q, "x-dev-user", "super-secret");
		struct route_decision d = decide(t, w.svc, &q);

		assert_int_equal(d.outcome, ROUTE_FORWARD);
		assert_int_equal(d.rule, w.r1);
		assert_int_equal(d.target_service, w.svc);
		assert_int_equal(d.target_subset, w.v1);
		assert_int_equal(d.timeout_ns, RM_CFG_OLD_DEFAULT_TIMEOUT_NS);
		assert_int_equal(d.delay_ns, 0);
	}
	struct route_decision d = decide(t, w.svc, &q);
	assert_string_equal(d.rule_name, "order-system-production/trans-service-default");
	route_free(t);
	cfg_free(w.c);
	free(w.c);
}

static void test_workshop_rule12_feature_flag(void **state)
{
	struct ws w;
	struct route_table *t;
	struct req q;
	struct route_decision d;

	workshop(&w, true, true, false, false);
	t = build_ok(w.c);
	rng_state = 2;
	for (int i = 0; i < 200; i++) {
		req_init(&q, "GET", "/translate", NULL);
		req_hdr(&q, "x-dev-user", "super-secret");
		d = decide(t, w.svc, &q);
		assert_int_equal(d.rule, w.r2);
		assert_int_equal(d.target_subset, w.v2);

		req_init(&q, "GET", "/translate", NULL);
		d = decide(t, w.svc, &q);
		assert_int_equal(d.rule, w.r1);
		assert_int_equal(d.target_subset, w.v1);
	}
	/* names are case-insensitive, values are not */
	req_init(&q, "GET", "/", NULL);
	req_hdr(&q, "X-Dev-User", "super-secret");
	assert_int_equal(decide(t, w.svc, &q).target_subset, w.v2);
	req_init(&q, "GET", "/", NULL);
	req_hdr(&q, "x-dev-user", "Super-Secret");
	assert_int_equal(decide(t, w.svc, &q).target_subset, w.v1);
	req_init(&q, "GET", "/", NULL);
	req_hdr(&q, "x-dev-user", "super-secret2");
	assert_int_equal(decide(t, w.svc, &q).target_subset, w.v1);
	route_free(t);
	cfg_free(w.c);
	free(w.c);
}

/* chi-square of observed counts against expected shares (weights) */
static double chi2(const unsigned *obs, const uint32_t *w, size_t k, unsigned n)
{
	double x = 0, tot = 0;

	for (size_t i = 0; i < k; i++)
		tot += w[i];
	for (size_t i = 0; i < k; i++) {
		double e = (double)n * w[i] / tot;

		if (w[i])
			x += (obs[i] - e) * (obs[i] - e) / e;
	}
	return x;
}

static void test_workshop_rule123_canary_shadows(void **state)
{
	struct ws w;
	struct route_table *t;
	struct req q;
	unsigned cnt[2] = {0, 0};
	const uint32_t wt[2] = {70, 30};
	const unsigned n = 100000;

	workshop(&w, true, true, true, false);
	t = build_ok(w.c);
	rng_state = 3;
	for (unsigned i = 0; i < n; i++) {
		req_init(&q, "GET", "/translate", NULL);
		/* rule 3 (precedence 3) shadows the header rule (precedence 2) */
		req_hdr(&q, "x-dev-user", "super-secret");
		struct route_decision d = decide(t, w.svc, &q);

		assert_int_equal(d.rule, w.r3);
		assert_true(d.target_subset == w.v1 || d.target_subset == w.v2);
		cnt[d.target_subset == w.v2]++;
	}
	print_message("70/30 with the header: %u/%u chi2 %.2f\n", cnt[0], cnt[1],
		      chi2(cnt, wt, 2, n));
	/* df = 1, p = 0.001 */
	assert_true(chi2(cnt, wt, 2, n) < 10.83);
	assert_in_range(cnt[1], 29000, 31000);
	route_free(t);
	cfg_free(w.c);
	free(w.c);
}

static void test_workshop_rule1234_bulkhead(void **state)
{
	struct ws w;
	struct route_table *t;
	struct req q;

	workshop(&w, true, true, true, true);
	t = build_ok(w.c);
	rng_state = 4;
	for (int i = 0; i < 1000; i++) {
		req_init(&q, i & 1 ? "POST" : "GET", "/translate", NULL);
		if (i & 2)
			req_hdr(&q, "x-dev-user", "super-secret");
		struct route_decision d = decide(t, w.svc, &q);

		assert_int_equal(d.outcome, ROUTE_FORWARD);
		assert_int_equal(d.rule, w.r4);
		assert_int_equal(d.target_subset, w.v3);
		assert_int_equal(d.timeout_ns, 5000000000ull);
	}
	route_free(t);
	cfg_free(w.c);
	free(w.c);
}

/* ServiceEntry (TCP) text for test_top_level_pool: NAME, VIP (10.96.0.X), two endpoints. */
#define TOP_SE(name, x)                                                                            \
	"---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"                            \
	"metadata: {name: " name ", namespace: db}\nspec:\n"                                       \
	"  hosts: [" name ".db.svc.cluster.local]\n  addresses: [10.96.0." x "]\n"                 \
	"  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n"              \
	"  endpoints:\n  - {address: 10.244.1." x ", labels: {v: a}}\n"                            \
	"  - {address: 10.244.2." x ", labels: {v: b}}\n"

/* The whole service's pool of a service whose DestinationRule has a top-level
 * trafficPolicy is that policy's subset (every endpoint, its balancer and limits): a
 * TCP service's connections and HTTP requests without a subset follow it. Services
 * without one (or with subsets only) keep their own whole-service pool. */
static void test_top_level_pool(void **state)
{
	/* clang-format off */
	static const char text[] =
	    TOP_SE("db", "40") TOP_SE("plain", "41") TOP_SE("subs", "42")
	    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
	    "metadata: {name: db, namespace: db}\nspec:\n  host: db.db.svc.cluster.local\n"
	    "  trafficPolicy:\n    loadBalancer: {simple: LEAST_CONN}\n"
	    "    connectionPool: {tcp: {maxConnections: 2}}\n"
	    "    outlierDetection: {consecutive5xxErrors: 2, interval: 100ms, baseEjectionTime: 2s}\n"
	    "  subsets: [{name: a, labels: {v: a}}]\n"
	    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
	    "metadata: {name: subs, namespace: db}\nspec:\n  host: subs.db.svc.cluster.local\n"
	    "  subsets: [{name: a, labels: {v: a}, trafficPolicy: "
	    "{connectionPool: {tcp: {maxConnections: 3}}}}]\n";
	/* clang-format on */
	struct cfg_docs d = {0};
	struct rm_cfg c;
	struct route_table *t;
	const struct rm_cfg_breaker *cb;
	const uint32_t *mem;
	struct rm_addr a;
	char err[256];
	uint32_t pool, lb, sub;
	size_t n;
	int svc;

	(void)state;
	assert_int_equal(cfg_init(&c), 0);
	assert_int_equal(cfg_docs_parse(&d, "t", text, sizeof(text) - 1, err, sizeof(err)), 0);
	if (cfg_compile(&d, &c, err, sizeof(err)))
		fail_msg("%s", err);
	t = build_ok(&c);

	a = v4("10.96.0.40");
	svc = route_find_service(t, &a, htons(5432));
	assert_true(svc >= 0);
	assert_int_equal(route_pool(t, (uint32_t)svc, RM_CFG_NONE, &pool, &mem, &n, &lb), 0);
	assert_true(pool < route_n_subsets(t));
	assert_int_equal(n, 2);
	assert_int_equal(lb, RM_LB_LEAST_CONN);
	assert_string_equal(route_subset_name(t, pool), "");
	cb = route_subset_breaker(t, pool);
	assert_non_null(cb);
	assert_int_equal(cb->max_connections, 2);
	assert_int_equal(cb->outlier, 1);
	assert_int_equal(cb->consecutive_errors, 2);
	assert_int_equal(cb->base_ejection_ns, 2000000000ull);
	/* a named subset is itself */
	sub = c.services[svc].subset_first;
	assert_string_equal(cfg_str(&c, c.subsets[sub].name_off), "a");
	assert_int_equal(route_pool(t, (uint32_t)svc, sub, &pool, &mem, &n, &lb), 0);
	assert_int_equal(pool, sub);
	assert_int_equal(n, 1);

	a = v4("10.96.0.41");
	svc = route_find_service(t, &a, htons(5432));
	assert_true(svc >= 0);
	assert_int_equal(route_pool(t, (uint32_t)svc, RM_CFG_NONE, &pool, &mem, &n, &lb), 0);
	assert_int_equal(pool, route_n_subsets(t) + (uint32_t)svc);
	assert_int_equal(n, 2);
	assert_null(route_subset_breaker(t, pool));

	a = v4("10.96.0.42");
	svc = route_find_service(t, &a, htons(5432));
	assert_true(svc >= 0);
	assert_int_equal(route_pool(t, (uint32_t)svc, RM_CFG_NONE, &pool, &mem, &n, &lb), 0);
	assert_int_equal(pool, route_n_subsets(t) + (uint32_t)svc);
	assert_int_equal(lb, RM_LB_ROUND_ROBIN);
	route_free(t);
	cfg_free(&c);
	cfg_docs_free(&d);
}

static void test_find_service_and_pools(void **state)
{
	struct ws w;
	struct route_table *t;
	struct rm_addr a = v4("10.96.0.20"), b = v4("10.96.0.21");
	const uint32_t *mem;
	size_t n;
	uint32_t pool, lb;
	struct route_endpoint ep;
	uint8_t proto;

	workshop(&w, true, false, false, false);
	w.c->endpoints[1].ports[0] = htons(9090);
	t = build_ok(w.c);
	assert_int_equal(route_generation(t), 7);
	assert_int_equal(route_find_service(t, &a, htons(8080)), (int)w.svc);
	assert_int_equal(route_find_service(t, &a, htons(8081)), -ENOENT);
	assert_int_equal(route_find_service(t, &b, htons(8080)), -ENOENT);
	assert_string_equal(route_service_host(t, w.svc),
			    "trans-service.order-system-production.svc.cluster.local");
	assert_int_equal(route_service_port(t, w.svc, htons(8080), &proto), 0);
	assert_int_equal(proto, RM_PROTO_HTTP);

	assert_int_equal(route_n_pools(t), 4);
	assert_int_equal(route_pool(t, w.svc, w.v2, &pool, &mem, &n, &lb), 0);
	assert_int_equal(pool, w.v2);
	assert_int_equal(n, 1);
	assert_int_equal(mem[0], 1);
	assert_int_equal(route_pool(t, w.svc, RM_CFG_NONE, &pool, &mem, &n, &lb), 0);
	assert_int_equal(pool, 3 + w.svc);
	assert_int_equal(n, 3);
	assert_int_equal(mem[2], 2);
	assert_int_equal(route_pool(t, w.svc, 99, &pool, &mem, &n, &lb), -EINVAL);

	assert_int_equal(route_endpoint(t, 2, &ep), 0);
	assert_memory_equal(&ep.addr, &w.c->endpoints[2].addr, sizeof(ep.addr));
	assert_int_equal(ep.weight, 1);
	assert_int_equal(route_endpoint_port(t, 0, htons(8080)), htons(8080));
	assert_int_equal(route_endpoint_port(t, 1, htons(8080)), htons(9090));
	assert_int_equal(route_endpoint_port(t, 1, htons(1)), 0);
	route_free(t);
	cfg_free(w.c);
	free(w.c);
}

/* The table must not depend on the snapshot once built. */
static void test_table_owns_its_data(void **state)
{
	struct ws w;
	struct route_table *t;
	struct req q;
	struct route_decision d;

	workshop(&w, true, true, false, false);
	t = build_ok(w.c);
	/* scribble over the snapshot's tables, then free them */
	memset(w.c->strtab, 0xa5, w.c->strtab_len);
	memset(w.c->rules, 0xa5, w.c->n_rules * sizeof(*w.c->rules));
	memset(w.c->services, 0xa5, w.c->n_services * sizeof(*w.c->services));
	memset(w.c->conds, 0xa5, w.c->n_conds * sizeof(*w.c->conds));
	memset(w.c->targets, 0xa5, w.c->n_targets * sizeof(*w.c->targets));
	cfg_free(w.c);
	free(w.c);
	req_init(&q, "GET", "/", NULL);
	req_hdr(&q, "x-dev-user", "super-secret");
	d = decide(t, 0, &q);
	assert_int_equal(d.target_subset, 1);
	assert_string_equal(d.rule_name, "order-system-production/trans-service-featureflag");
	route_free(t);
}

static void test_no_rules_and_no_route(void **state)
{
	struct rm_cfg *c = cfg_new();
	struct route_table *t;
	struct req q;
	struct route_decision d;
	uint32_t a, b;
	struct rm_cfg_rule *r;

	a = add_service(c, "plain.default.svc.cluster.local", "10.96.0.1", 80);
	add_endpoint(c, a, "10.244.0.1", "app=plain");
	b = add_service(c, "guarded.default.svc.cluster.local", "10.96.0.2", 80);
	add_endpoint(c, b, "10.244.0.2", "app=guarded");
	r = add_rule(c, b, "only-admin", 0, RM_API_VIRTUALSERVICE);
	add_cond(c, add_match(c, r), RM_MF_URI, RM_OP_PREFIX, NULL, "/admin");
	t = build_ok(c);

	req_init(&q, "GET", "/anything", NULL);
	d = decide(t, a, &q);
	assert_int_equal(d.outcome, ROUTE_FORWARD);
	assert_int_equal(d.rule, ROUTE_RULE_NONE);
	assert_int_equal(d.target_service, a);
	assert_int_equal(d.target_subset, RM_CFG_NONE);
	assert_int_equal(d.timeout_ns, 0);

	d = decide(t, b, &q);
	assert_int_equal(d.outcome, ROUTE_NO_ROUTE);
	assert_int_equal(d.rule, ROUTE_RULE_NONE);

	req_init(&q, "GET", "/admin/users", NULL);
	d = decide(t, b, &q);
	assert_int_equal(d.outcome, ROUTE_FORWARD);
	assert_int_equal(d.rule, 0);
	assert_int_equal(d.target_subset, RM_CFG_NONE); /* no route: every endpoint */

	assert_int_equal(route_decide(t, 5, &q.r, 0, &d), -EINVAL);
	route_free(t);
	cfg_free(c);
	free(c);
}

/* ---- match types ---- */

struct mt {
	struct rm_cfg *c;
	struct route_table *t;
	uint32_t svc;
};

/* One VirtualService rule whose single match has one condition; rule 1 catches all. */
static void mt_one(struct mt *m, uint8_t field, uint8_t op, const char *name, const char *val)
{
	struct rm_cfg_rule *r;

	m->c = cfg_new();
	m->svc = add_service(m->c, "m.default.svc.cluster.local", "10.96.0.9", 80);
	add_endpoint(m->c, m->svc, "10.244.0.9", "app=m");
	r = add_rule(m->c, m->svc, "m", 0, RM_API_VIRTUALSERVICE);
	add_cond(m->c, add_match(m->c, r), field, op, name, val);
	m->t = build_ok(m->c);
}

static void mt_free(struct mt *m)
{
	route_free(m->t);
	cfg_free(m->c);
	free(m->c);
}

/* 1 when the request matches the single rule, 0 when it gets NR */
static int mt_uri(struct mt *m, const char *path, const char *query)
{
	struct req q;
	struct route_decision d;

	req_init(&q, "GET", path, query);
	d = decide(m->t, m->svc, &q);
	return d.outcome == ROUTE_FORWARD;
}

static void test_match_uri(void **state)
{
	struct mt m;

	mt_one(&m, RM_MF_URI, RM_OP_EXACT, NULL, "/api");
	assert_int_equal(mt_uri(&m, "/api", NULL), 1);
	assert_int_equal(mt_uri(&m, "/api", "x=1"), 1); /* exact ignores the query */
	assert_int_equal(mt_uri(&m, "/api/", NULL), 0);
	assert_int_equal(mt_uri(&m, "/ap", NULL), 0);
	assert_int_equal(mt_uri(&m, "/API", NULL), 0);
	mt_free(&m);

	mt_one(&m, RM_MF_URI, RM_OP_PREFIX, NULL, "/static");
	assert_int_equal(mt_uri(&m, "/static", NULL), 1);
	assert_int_equal(mt_uri(&m, "/static/app.js", "v=2"), 1);
	assert_int_equal(mt_uri(&m, "/stat", NULL), 0);
	assert_int_equal(mt_uri(&m, "/img/static", NULL), 0);
	mt_free(&m);

	/* Envoy's prefix sees :path with its query */
	mt_one(&m, RM_MF_URI, RM_OP_PREFIX, NULL, "/a?b=");
	assert_int_equal(mt_uri(&m, "/a", "b=1"), 1);
	assert_int_equal(mt_uri(&m, "/a", "c=1"), 0);
	assert_int_equal(mt_uri(&m, "/a", NULL), 0);
	assert_int_equal(mt_uri(&m, "/ab", NULL), 0);
	mt_free(&m);

	mt_one(&m, RM_MF_URI, RM_OP_REGEX, NULL, "/users/[0-9]+");
	assert_int_equal(mt_uri(&m, "/users/42", NULL), 1);
	assert_int_equal(mt_uri(&m, "/users/42", "a=b"), 1);  /* regex ignores the query */
	assert_int_equal(mt_uri(&m, "/users/42/x", NULL), 0); /* whole value */
	assert_int_equal(mt_uri(&m, "/v1/users/42", NULL), 0);
	assert_int_equal(mt_uri(&m, "/users/", NULL), 0);
	mt_free(&m);

	/* an alternation must still match the whole value, not its first branch */
	mt_one(&m, RM_MF_URI, RM_OP_REGEX, NULL, "/a|/ab");
	assert_int_equal(mt_uri(&m, "/ab", NULL), 1);
	assert_int_equal(mt_uri(&m, "/abc", NULL), 0);
	mt_free(&m);
}

static int mt_req(struct mt *m, const char *method, const char *auth, const char *scheme)
{
	struct req q;

	req_init(&q, method, "/", NULL);
	q.r.authority = (struct route_slice){auth, strlen(auth)};
	q.r.scheme = (struct route_slice){scheme, strlen(scheme)};
	return decide(m->t, m->svc, &q).outcome == ROUTE_FORWARD;
}

static void test_match_method_authority_scheme(void **state)
{
	struct mt m;

	mt_one(&m, RM_MF_METHOD, RM_OP_EXACT, NULL, "POST");
	assert_int_equal(mt_req(&m, "POST", "x", "http"), 1);
	assert_int_equal(mt_req(&m, "GET", "x", "http"), 0);
	assert_int_equal(mt_req(&m, "post", "x", "http"), 0);
	mt_free(&m);

	mt_one(&m, RM_MF_AUTHORITY, RM_OP_PREFIX, NULL, "api.");
	assert_int_equal(mt_req(&m, "GET", "api.example.com", "http"), 1);
	assert_int_equal(mt_req(&m, "GET", "www.example.com", "http"), 0);
	mt_free(&m);

	mt_one(&m, RM_MF_AUTHORITY, RM_OP_REGEX, NULL, "[a-z]+\\.example\\.com(:[0-9]+)?");
	assert_int_equal(mt_req(&m, "GET", "shop.example.com:8080", "http"), 1);
	assert_int_equal(mt_req(&m, "GET", "shop.example.org", "http"), 0);
	mt_free(&m);

	mt_one(&m, RM_MF_SCHEME, RM_OP_EXACT, NULL, "https");
	assert_int_equal(mt_req(&m, "GET", "x", "https"), 1);
	assert_int_equal(mt_req(&m, "GET", "x", "http"), 0);
	mt_free(&m);

	/* pseudo-header names map to the request line's parts */
	mt_one(&m, RM_MF_HEADER, RM_OP_EXACT, ":method", "PUT");
	assert_int_equal(mt_req(&m, "PUT", "x", "http"), 1);
	assert_int_equal(mt_req(&m, "GET", "x", "http"), 0);
	mt_free(&m);
}

static int mt_hdrs(struct mt *m, int n, ...)
{
	struct req q;
	va_list ap;

	req_init(&q, "GET", "/", NULL);
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *k = va_arg(ap, const char *), *v = va_arg(ap, const char *);

		req_hdr(&q, k, v);
	}
	va_end(ap);
	return decide(m->t, m->svc, &q).outcome == ROUTE_FORWARD;
}

static void test_match_headers(void **state)
{
	struct mt m;

	mt_one(&m, RM_MF_HEADER, RM_OP_PREFIX, "user-agent", "Mozilla/");
	assert_int_equal(mt_hdrs(&m, 1, "User-Agent", "Mozilla/5.0"), 1);
	assert_int_equal(mt_hdrs(&m, 1, "user-agent", "curl/8"), 0);
	assert_int_equal(mt_hdrs(&m, 0), 0); /* absent never matches */
	assert_int_equal(mt_hdrs(&m, 1, "user-agentx", "Mozilla/5.0"), 0);
	mt_free(&m);

	/* repeated field lines are seen joined with ',' (as Envoy does) */
	mt_one(&m, RM_MF_HEADER, RM_OP_EXACT, "x-tag", "a,b");
	assert_int_equal(mt_hdrs(&m, 2, "x-tag", "a", "x-tag", "b"), 1);
	assert_int_equal(mt_hdrs(&m, 3, "x-tag", "a", "x-other", "z", "X-Tag", "b"), 1);
	assert_int_equal(mt_hdrs(&m, 1, "x-tag", "a"), 0);
	assert_int_equal(mt_hdrs(&m, 3, "x-tag", "a", "x-tag", "b", "x-tag", "c"), 0);
	mt_free(&m);

	mt_one(&m, RM_MF_HEADER, RM_OP_REGEX, "x-tag", "(a|b)(,(a|b))*");
	assert_int_equal(mt_hdrs(&m, 3, "x-tag", "a", "x-tag", "b", "x-tag", "a"), 1);
	assert_int_equal(mt_hdrs(&m, 2, "x-tag", "a", "x-tag", "c"), 0);
	mt_free(&m);

	/* exact empty value matches a present empty header only */
	mt_one(&m, RM_MF_HEADER, RM_OP_EXACT, "x-empty", "");
	assert_int_equal(mt_hdrs(&m, 1, "x-empty", ""), 1);
	assert_int_equal(mt_hdrs(&m, 1, "x-empty", "1"), 0);
	assert_int_equal(mt_hdrs(&m, 0), 0);
	mt_free(&m);
}

/* Long repeated headers exceed the join buffer on the stack. */
static void test_match_repeated_long_headers(void **state)
{
	struct mt m;
	static char a[3000], b[3000], want[6002];

	memset(a, 'x', sizeof(a) - 1);
	memset(b, 'y', sizeof(b) - 1);
	snprintf(want, sizeof(want), "%s,%s", a, b);
	m.c = cfg_new();
	m.svc = add_service(m.c, "m.default.svc.cluster.local", "10.96.0.9", 80);
	add_endpoint(m.c, m.svc, "10.244.0.9", "app=m");
	add_cond(m.c, add_match(m.c, add_rule(m.c, m.svc, "m", 0, RM_API_VIRTUALSERVICE)),
		 RM_MF_HEADER, RM_OP_EXACT, "x-big", want);
	m.t = build_ok(m.c);
	assert_int_equal(mt_hdrs(&m, 2, "x-big", a, "x-big", b), 1);
	assert_int_equal(mt_hdrs(&m, 2, "x-big", b, "x-big", a), 0);
	mt_free(&m);
}

static void test_match_and_or_source(void **state)
{
	struct rm_cfg *c = cfg_new();
	struct route_table *t;
	struct rm_cfg_rule *r;
	struct rm_cfg_match *mm;
	uint32_t svc;
	struct req q;
	struct route_label fe[] = {{S("app"), S("frontend")}, {S("version"), S("v2")}};

	svc = add_service(c, "m.default.svc.cluster.local", "10.96.0.9", 80);
	add_endpoint(c, svc, "10.244.0.9", "app=m");
	r = add_rule(c, svc, "and-or", 0, RM_API_VIRTUALSERVICE);
	/* (POST and /api*) or (header x-canary: 1) */
	mm = add_match(c, r);
	add_cond(c, mm, RM_MF_METHOD, RM_OP_EXACT, NULL, "POST");
	add_cond(c, mm, RM_MF_URI, RM_OP_PREFIX, NULL, "/api");
	mm = add_match(c, r);
	add_cond(c, mm, RM_MF_HEADER, RM_OP_EXACT, "x-canary", "1");
	r = add_rule(c, svc, "from-frontend", 0, RM_API_VIRTUALSERVICE);
	mm = add_match(c, r);
	add_labels(c, "app=frontend", &mm->src_label_first, &mm->src_label_count);
	r = add_rule(c, svc, "from-billing", 0, RM_API_ROUTERULE);
	mm = add_match(c, r);
	mm->src_name_off = str(c, "billing");
	r = add_rule(c, svc, "from-ns-a", 0, RM_API_VIRTUALSERVICE);
	mm = add_match(c, r);
	mm->src_ns_off = str(c, "ns-a");
	add_labels(c, "version=v9", &mm->src_label_first, &mm->src_label_count);
	r = add_rule(c, svc, "old-source-with-labels", 0, RM_API_ROUTERULE);
	mm = add_match(c, r);
	mm->src_name_off = str(c, "ratings.ns-b.svc.cluster.local");
	add_labels(c, "version=v9", &mm->src_label_first, &mm->src_label_count);
	t = build_ok(c);

	req_init(&q, "POST", "/api/x", NULL);
	assert_int_equal(decide(t, svc, &q).rule, 0);
	assert_int_equal(decide(t, svc, &q).match, 0);
	req_init(&q, "GET", "/api/x", NULL);
	assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);
	req_init(&q, "POST", "/other", NULL);
	assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);
	req_init(&q, "GET", "/other", NULL);
	req_hdr(&q, "x-canary", "1");
	assert_int_equal(decide(t, svc, &q).rule, 0);
	assert_int_equal(decide(t, svc, &q).match, 1);

	/* source labels: the caller must carry every one */
	req_init(&q, "GET", "/other", NULL);
	q.r.src_labels = fe;
	q.r.n_src_labels = 2;
	assert_int_equal(decide(t, svc, &q).rule, 1);
	q.r.n_src_labels = 0;
	assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);
	fe[0].val = S("frontendx");
	q.r.n_src_labels = 2;
	assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);

	/* source service: by FQDN or short name */
	req_init(&q, "GET", "/", NULL);
	q.r.src_service = S("billing.default.svc.cluster.local");
	assert_int_equal(decide(t, svc, &q).rule, 2);
	q.r.src_service = S("billing");
	assert_int_equal(decide(t, svc, &q).rule, 2);
	q.r.src_service = S("billingx");
	assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);

	/* sourceNamespace and sourceLabels together: both must hold */
	{
		struct route_label v9[] = {{S("version"), S("v9")}};

		req_init(&q, "GET", "/", NULL);
		q.r.src_labels = v9;
		q.r.n_src_labels = 1;
		q.r.src_namespace = S("ns-a");
		assert_int_equal(decide(t, svc, &q).rule, 3);
		q.r.src_namespace = S("ns-ab");
		assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);
		q.r.src_namespace = S("ns-");
		assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);
		q.r.src_namespace = S("");
		assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);
		q.r.src_namespace = S("ns-a");
		q.r.n_src_labels = 0;
		assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);

		/* old API source: service and labels */
		req_init(&q, "GET", "/", NULL);
		q.r.src_labels = v9;
		q.r.n_src_labels = 1;
		q.r.src_service = S("ratings.ns-b.svc.cluster.local");
		assert_int_equal(decide(t, svc, &q).rule, 4);
		q.r.src_service = S("ratings.ns-c.svc.cluster.local");
		assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);
		q.r.src_service = S("ratings.ns-b.svc.cluster.local");
		q.r.n_src_labels = 0;
		assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);

		/* an unknown caller (no record: nothing known) matches no source rule */
		req_init(&q, "GET", "/", NULL);
		assert_int_equal(decide(t, svc, &q).outcome, ROUTE_NO_ROUTE);
	}
	route_free(t);
	cfg_free(c);
	free(c);
}

/* A regex that backtracks exponentially hits the match limit and counts as no match;
 * the same regex still matches where little backtracking is needed. With PCRE2's
 * default limit (10^7) n = 20 would match after ~10^6 steps: the stricter limit is
 * what stops it. */
static void test_regex_match_limit(void **state)
{
	struct mt m;
	char s[80];

	mt_one(&m, RM_MF_HEADER, RM_OP_REGEX, "x-evil", "(?:(a+)+c|a+b)");
	memset(s, 'a', 8);
	strcpy(s + 8, "b");
	assert_int_equal(mt_hdrs(&m, 1, "x-evil", s), 1);
	memset(s, 'a', 20);
	strcpy(s + 20, "b");
	assert_int_equal(mt_hdrs(&m, 1, "x-evil", s), 0);
	memset(s, 'a', 64);
	strcpy(s + 64, "b");
	assert_int_equal(mt_hdrs(&m, 1, "x-evil", s), 0);
	mt_free(&m);

	/* invalid UTF-8 in a header is no match, not an error */
	mt_one(&m, RM_MF_HEADER, RM_OP_REGEX, "x-u", ".*");
	assert_int_equal(mt_hdrs(&m, 1, "x-u", "ok"), 1);
	assert_int_equal(mt_hdrs(&m, 1, "x-u", "\xff\xfe"), 0);
	mt_free(&m);
	route_thread_exit();
}

/* ---- weighted choice ---- */

static void weighted(const uint32_t *w, size_t k, double crit)
{
	struct rm_cfg *c = cfg_new();
	struct route_table *t;
	struct rm_cfg_rule *r;
	uint32_t svc, sub[4];
	unsigned cnt[4] = {0};
	const unsigned n = 100000;
	char lab[32];
	struct req q;

	svc = add_service(c, "w.default.svc.cluster.local", "10.96.0.7", 80);
	for (size_t i = 0; i < k; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "10.244.1.%zu", i + 1);
		snprintf(lab, sizeof(lab), "version=v%zu", i);
		add_endpoint(c, svc, ip, lab);
	}
	for (size_t i = 0; i < k; i++) {
		snprintf(lab, sizeof(lab), "version=v%zu", i);
		sub[i] = add_subset(c, svc, lab, RM_LB_ROUND_ROBIN);
	}
	r = add_rule(c, svc, "split", 0, RM_API_VIRTUALSERVICE);
	for (size_t i = 0; i < k; i++)
		add_target(c, r, svc, sub[i], w[i]);
	t = build_ok(c);
	rng_state = 0x5eed + k;
	req_init(&q, "GET", "/", NULL);
	for (unsigned i = 0; i < n; i++) {
		struct route_decision d = decide(t, svc, &q);

		assert_true(d.target_subset >= sub[0] && d.target_subset <= sub[k - 1]);
		cnt[d.target_subset - sub[0]]++;
	}
	for (size_t i = 0; i < k; i++)
		if (!w[i])
			assert_int_equal(cnt[i], 0);
	double x = chi2(cnt, w, k, n);

	print_message("weights %u/%u/%u/%u: counts %u/%u/%u/%u chi2 %.2f (bound %.2f)\n", w[0],
		      w[1], k > 2 ? w[2] : 0, k > 3 ? w[3] : 0, cnt[0], cnt[1], cnt[2], cnt[3], x,
		      crit);
	if (x >= crit)
		print_error("chi2 %.2f >= %.2f\n", x, crit);
	assert_true(x < crit);
	route_free(t);
	cfg_free(c);
	free(c);
}

static void test_weights_chi_square(void **state)
{
	/* critical values at p = 0.001: df 1 -> 10.83, df 2 -> 13.82 */
	weighted((const uint32_t[]){70, 30}, 2, 10.83);
	weighted((const uint32_t[]){50, 50}, 2, 10.83);
	weighted((const uint32_t[]){33, 33, 34}, 3, 13.82);
	weighted((const uint32_t[]){50, 0, 50}, 3, 10.83);  /* df 1: one share is 0 */
	weighted((const uint32_t[]){0, 1}, 2, 1e-9);	    /* all to the second */
	weighted((const uint32_t[]){1, 2, 3, 4}, 4, 16.27); /* modern relative weights */
}

/* ---- faults, redirect, rewrite, header ops ---- */

static void test_faults_independent(void **state)
{
	struct rm_cfg *c = cfg_new();
	struct route_table *t;
	struct rm_cfg_rule *r;
	uint32_t svc;
	unsigned delayed = 0, aborted = 0, both = 0;
	const unsigned n = 100000;
	struct req q;

	svc = add_service(c, "f.default.svc.cluster.local", "10.96.0.8", 80);
	add_endpoint(c, svc, "10.244.2.1", "app=f");
	r = add_rule(c, svc, "fault", 0, RM_API_VIRTUALSERVICE);
	r->flags = RM_RF_DELAY | RM_RF_ABORT;
	r->delay_ns = 2000000;
	r->delay_ppm = 500000;
	r->abort_ppm = 200000;
	r->abort_status = 503;
	t = build_ok(c);
	rng_state = 99;
	req_init(&q, "GET", "/", NULL);
	for (unsigned i = 0; i < n; i++) {
		struct route_decision d = decide(t, svc, &q);
		bool de = d.delay_ns != 0, ab = d.outcome == ROUTE_ABORT;

		if (de)
			assert_int_equal(d.delay_ns, 2000000);
		if (ab)
			assert_int_equal(d.abort_status, 503);
		else
			assert_int_equal(d.outcome, ROUTE_FORWARD);
		delayed += de;
		aborted += ab;
		both += de && ab;
	}
	/* 50% and 20%, and independent: 10% both (3-sigma bounds) */
	assert_in_range(delayed, 49526, 50474);
	assert_in_range(aborted, 19621, 20379);
	assert_in_range(both, 9716, 10284);
	route_free(t);
	cfg_free(c);
	free(c);
}

static void test_redirect_rewrite_hdrops(void **state)
{
	struct rm_cfg *c = cfg_new();
	struct route_table *t;
	struct rm_cfg_rule *r;
	struct rm_cfg_match *mm;
	uint32_t svc;
	struct req q;
	struct route_decision d;
	char buf[256];

	svc = add_service(c, "r.default.svc.cluster.local", "10.96.0.6", 80);
	add_endpoint(c, svc, "10.244.3.1", "app=r");
	/* 0: redirect /old -> other.example.com/new */
	r = add_rule(c, svc, "redir", 0, RM_API_ROUTERULE);
	add_cond(c, add_match(c, r), RM_MF_URI, RM_OP_EXACT, NULL, "/old");
	r->flags |= RM_RF_REDIRECT;
	r->redirect_code = 302;
	r->redirect_uri_off = str(c, "/new");
	r->redirect_authority_off = str(c, "other.example.com");
	/* 1: prefix rewrite /v1 -> /v2, headers set/add/remove */
	r = add_rule(c, svc, "rewrite-prefix", 0, RM_API_VIRTUALSERVICE);
	mm = add_match(c, r);
	add_cond(c, mm, RM_MF_URI, RM_OP_PREFIX, NULL, "/v1");
	r->flags |= RM_RF_REWRITE;
	r->rewrite_uri_off = str(c, "/v2");
	r->rewrite_authority_off = str(c, "backend.internal");
	c->hdrops[c->n_hdrops++] =
	    (struct rm_cfg_hdrop){RM_HDR_SET, 0, 0, str(c, "x-a"), str(c, "1")};
	c->hdrops[c->n_hdrops++] = (struct rm_cfg_hdrop){RM_HDR_REMOVE, 1, 0, str(c, "server"), 0};
	r->hdrop_count = 2;
	/* 2: exact match rewrite replaces the whole path */
	r = add_rule(c, svc, "rewrite-exact", 0, RM_API_VIRTUALSERVICE);
	add_cond(c, add_match(c, r), RM_MF_URI, RM_OP_EXACT, NULL, "/login");
	r->flags |= RM_RF_REWRITE;
	r->rewrite_uri_off = str(c, "/auth/login");
	/* 3: the rest, modern redirect without code -> 301, keep the path */
	r = add_rule(c, svc, "https", 0, RM_API_VIRTUALSERVICE);
	r->redirect_authority_off = str(c, "secure.example.com");
	t = build_ok(c);

	req_init(&q, "GET", "/old", "q=1");
	d = decide(t, svc, &q);
	assert_int_equal(d.outcome, ROUTE_REDIRECT);
	assert_int_equal(d.redirect_code, 302);
	assert_int_equal(route_redirect_location(&d, &q.r, buf, sizeof(buf)),
			 (int)strlen("http://other.example.com/new?q=1"));
	assert_string_equal(buf, "http://other.example.com/new?q=1");
	assert_int_equal(route_redirect_location(&d, &q.r, buf, 10), -ENOSPC);

	req_init(&q, "GET", "/v1/users", "id=7");
	d = decide(t, svc, &q);
	assert_int_equal(d.outcome, ROUTE_FORWARD);
	assert_int_equal(d.rule, 1);
	assert_true(route_rewrite_path(&d, &q.r, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "/v2/users?id=7");
	assert_string_equal(d.rewrite_authority, "backend.internal");
	assert_int_equal(d.n_hdrops, 2);
	assert_int_equal(d.hdrops[0].kind, RM_HDR_SET);
	assert_string_equal(d.hdrops[0].name, "x-a");
	assert_string_equal(d.hdrops[0].value, "1");
	assert_int_equal(d.hdrops[1].kind, RM_HDR_REMOVE);
	assert_int_equal(d.hdrops[1].response, 1);
	assert_string_equal(d.hdrops[1].value, "");
	assert_int_equal(route_rewrite_path(&d, &q.r, buf, 5), -ENOSPC);

	req_init(&q, "GET", "/login", "next=/home");
	d = decide(t, svc, &q);
	assert_int_equal(d.rule, 2);
	route_rewrite_path(&d, &q.r, buf, sizeof(buf));
	assert_string_equal(buf, "/auth/login?next=/home");
	assert_null(d.rewrite_authority);

	req_init(&q, "GET", "/page", NULL);
	q.r.scheme = S("http");
	d = decide(t, svc, &q);
	assert_int_equal(d.outcome, ROUTE_REDIRECT);
	assert_int_equal(d.redirect_code, 301);
	route_redirect_location(&d, &q.r, buf, sizeof(buf));
	assert_string_equal(buf, "http://secure.example.com/page");
	/* no rewrite: the path as received */
	route_rewrite_path(&d, &q.r, buf, sizeof(buf));
	assert_string_equal(buf, "/page");
	route_free(t);
	cfg_free(c);
	free(c);
}

/* An allowed origin of rule r (a condition outside every match group). */
static void add_cors_origin(struct rm_cfg *c, struct rm_cfg_rule *r, uint8_t op, const char *v)
{
	struct rm_cfg_cond *k = &c->conds[c->n_conds++];

	if (!r->cors_origin_count)
		r->cors_origin_first = c->n_conds - 1;
	k->field = RM_MF_HEADER;
	k->op = op;
	k->name_off = str(c, "origin");
	k->value_off = str(c, v);
	r->cors_origin_count++;
}

static enum route_cors_verdict cors_of(struct route_table *t, uint32_t svc, const char *method,
				       const char *origin, const char *acrm, bool *pre, int *rule)
{
	struct route_slice o = {0};
	struct route_decision d;
	struct req q;

	req_init(&q, method, "/api/x", NULL);
	if (origin)
		req_hdr(&q, "Origin", origin);
	if (acrm)
		req_hdr(&q, "Access-Control-Request-Method", acrm);
	d = decide(t, svc, &q);
	*rule = d.rule;
	return route_cors_check(t, d.rule, &q.r, &o, pre);
}

static void test_cors(void **state)
{
	struct rm_cfg *c = cfg_new();
	struct route_table *t;
	struct rm_cfg_rule *r;
	const struct route_cors_policy *p;
	uint32_t svc, svc2;
	bool pre;
	int rule;

	svc = add_service(c, "c.default.svc.cluster.local", "10.96.0.7", 80);
	add_endpoint(c, svc, "10.244.4.1", "app=c");
	r = add_rule(c, svc, "cors", 0, RM_API_VIRTUALSERVICE);
	r->flags |= RM_RF_CORS;
	add_cors_origin(c, r, RM_OP_EXACT, "https://shop.example.com");
	add_cors_origin(c, r, RM_OP_PREFIX, "http://localhost:");
	add_cors_origin(c, r, RM_OP_REGEX, "https://[a-z]+\\.corp\\.example");
	r->cors_methods_off = str(c, "GET,POST");
	r->cors_expose_off = str(c, "x-a");
	r->cors_max_age_s = 600;
	r->cors_credentials = 2;
	svc2 = add_service(c, "star.default.svc.cluster.local", "10.96.0.8", 80);
	add_endpoint(c, svc2, "10.244.4.2", "app=s");
	r = add_rule(c, svc2, "star", 0, RM_API_VIRTUALSERVICE);
	r->flags |= RM_RF_CORS;
	add_cors_origin(c, r, RM_OP_EXACT, "*");
	t = build_ok(c);

	p = route_cors_policy(t, 0);
	assert_non_null(p);
	assert_string_equal(p->methods, "GET,POST");
	assert_string_equal(p->headers, "");
	assert_string_equal(p->expose, "x-a");
	assert_int_equal(p->max_age_s, 600);
	assert_true(p->credentials);
	assert_null(route_cors_policy(t, ROUTE_RULE_NONE));

	assert_int_equal(cors_of(t, svc, "GET", NULL, NULL, &pre, &rule), ROUTE_CORS_NONE);
	assert_int_equal(cors_of(t, svc, "GET", "", NULL, &pre, &rule), ROUTE_CORS_NONE);
	assert_int_equal(cors_of(t, svc, "GET", "https://shop.example.com", NULL, &pre, &rule),
			 ROUTE_CORS_ALLOWED);
	assert_false(pre);
	assert_int_equal(cors_of(t, svc, "OPTIONS", "https://shop.example.com", "PUT", &pre, &rule),
			 ROUTE_CORS_ALLOWED);
	assert_true(pre);
	/* OPTIONS without Access-Control-Request-Method (or an empty one): no preflight */
	cors_of(t, svc, "OPTIONS", "https://shop.example.com", NULL, &pre, &rule);
	assert_false(pre);
	cors_of(t, svc, "OPTIONS", "https://shop.example.com", "", &pre, &rule);
	assert_false(pre);
	assert_int_equal(cors_of(t, svc, "GET", "https://shop.example.com.evil", NULL, &pre, &rule),
			 ROUTE_CORS_DENIED);
	assert_int_equal(cors_of(t, svc, "GET", "http://localhost:3000", NULL, &pre, &rule),
			 ROUTE_CORS_ALLOWED);
	assert_int_equal(cors_of(t, svc, "GET", "https://eu.corp.example", NULL, &pre, &rule),
			 ROUTE_CORS_ALLOWED);
	/* a regex matches the whole origin */
	assert_int_equal(cors_of(t, svc, "GET", "https://eu.corp.example.evil", NULL, &pre, &rule),
			 ROUTE_CORS_DENIED);
	assert_int_equal(cors_of(t, svc, "GET", "https://EU.corp.example", NULL, &pre, &rule),
			 ROUTE_CORS_DENIED);
	assert_int_equal(cors_of(t, svc2, "GET", "null", NULL, &pre, &rule), ROUTE_CORS_ALLOWED);
	assert_int_equal(rule, 1);
	assert_false(route_cors_policy(t, 1)->credentials);
	route_free(t);

	/* an origin condition that is not a header one, or out of range, is refused */
	c->conds[c->rules[1].cors_origin_first].field = RM_MF_URI;
	assert_int_equal(build_err(c, "not a header condition"), -EINVAL);
	c->conds[c->rules[1].cors_origin_first].field = RM_MF_HEADER;
	c->rules[1].cors_origin_count = 100;
	assert_int_equal(build_err(c, "corsPolicy out of bounds"), -EINVAL);
	cfg_free(c);
	free(c);
}

/* ---- validation ---- */

static void test_build_errors(void **state)
{
	struct ws w;
	struct rm_cfg *c;
	uint32_t s2;
	struct route_table *t;

	assert_int_equal(route_build(NULL, &t, NULL, 0), -EINVAL);

	workshop(&w, true, false, false, false);
	w.c->magic = 0;
	assert_int_equal(build_err(w.c, "bad magic"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	workshop(&w, true, false, false, false);
	w.c->abi_version = 1;
	assert_int_equal(build_err(w.c, "ABI version 1"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	workshop(&w, true, false, false, false);
	w.c->strtab[w.c->strtab_len - 1] = 'x';
	assert_int_equal(build_err(w.c, "string table"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	workshop(&w, true, false, false, false);
	w.c->rules[0].name_off = w.c->strtab_len + 5;
	assert_int_equal(build_err(w.c, "string offset"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	workshop(&w, true, false, false, false);
	w.c->targets[0].weight = 0;
	assert_int_equal(build_err(w.c, "every route weight is 0"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	workshop(&w, true, false, false, false);
	w.c->members[0] = 77;
	assert_int_equal(build_err(w.c, "member 77 out of range"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	workshop(&w, true, true, false, false);
	w.c->rules[0].match_count = 5;
	assert_int_equal(build_err(w.c, "index range out of bounds"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	/* a target subset of another service */
	workshop(&w, true, false, false, false);
	c = w.c;
	s2 = add_service(c, "other.default.svc.cluster.local", "10.96.0.30", 80);
	add_endpoint(c, s2, "10.244.9.1", "app=other");
	add_subset(c, s2, "app=other", RM_LB_RANDOM);
	c->targets[0].subset = 3;
	assert_int_equal(build_err(c, "is not a subset of service"), -EINVAL);
	cfg_free(c);
	free(c);

	/* two services on one VIP and port */
	workshop(&w, true, false, false, false);
	c = w.c;
	add_service(c, "dup.default.svc.cluster.local", "10.96.0.20", 8080);
	assert_int_equal(build_err(c, "already belong to service trans-service"), -EINVAL);
	cfg_free(c);
	free(c);

	/* a regex PCRE2 refuses */
	workshop(&w, true, true, false, false);
	w.c->conds[0].op = RM_OP_REGEX;
	w.c->conds[0].value_off = str(w.c, "([a-z]+");
	assert_int_equal(build_err(w.c, "regex \"([a-z]+\": missing closing parenthesis"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	workshop(&w, true, true, false, false);
	w.c->conds[0].name_off = str(w.c, "X-Dev-User");
	assert_int_equal(build_err(w.c, "not lower-case"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	workshop(&w, true, true, false, false);
	w.c->rules[1].abort_ppm = 1000;
	w.c->rules[1].abort_status = 42;
	assert_int_equal(build_err(w.c, "abort status 42"), -EINVAL);
	cfg_free(w.c);
	free(w.c);

	/* a rule inside another service's range */
	workshop(&w, true, false, false, false);
	w.c->rules[0].service = 1;
	w.c->n_services = 2;
	assert_int_equal(build_err(w.c, "belongs to service 1"), -EINVAL);
	cfg_free(w.c);
	free(w.c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_workshop_rule1_all_v1),
	    cmocka_unit_test(test_workshop_rule12_feature_flag),
	    cmocka_unit_test(test_workshop_rule123_canary_shadows),
	    cmocka_unit_test(test_workshop_rule1234_bulkhead),
	    cmocka_unit_test(test_find_service_and_pools),
	    cmocka_unit_test(test_top_level_pool),
	    cmocka_unit_test(test_table_owns_its_data),
	    cmocka_unit_test(test_no_rules_and_no_route),
	    cmocka_unit_test(test_match_uri),
	    cmocka_unit_test(test_match_method_authority_scheme),
	    cmocka_unit_test(test_match_headers),
	    cmocka_unit_test(test_match_repeated_long_headers),
	    cmocka_unit_test(test_match_and_or_source),
	    cmocka_unit_test(test_regex_match_limit),
	    cmocka_unit_test(test_weights_chi_square),
	    cmocka_unit_test(test_faults_independent),
	    cmocka_unit_test(test_redirect_rewrite_hdrops),
	    cmocka_unit_test(test_cors),
	    cmocka_unit_test(test_build_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
