/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The rules compiler without privileges: golden descriptions of the workshop
 * examples, old API == modern API on the compiled structs, the malformed corpus
 * under tests/cfg/bad, merging/deleting documents and the source round trip.
 * RM_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>

#include "test_cfg_lib.h"
#include "common/cfg_ir.h"

static struct rm_cfg *cfg_a, *cfg_b;

static const char *const workshop[] = {"routerule-v1.yaml",
				       "routerule-v2.yaml",
				       "routerule-v3.yaml",
				       "routerule-v4.yaml",
				       "dest-rule.yaml",
				       "serviceentry.yaml",
				       NULL};

static void compile_files(const char *const *files, struct rm_cfg *out)
{
	struct cfg_docs d = {0};
	char err[512] = "";
	int r = cfgt_load(&d, files, err, sizeof(err));

	if (r)
		fail_msg("load: %s", err);
	r = cfg_compile(&d, out, err, sizeof(err));
	if (r)
		fail_msg("compile: %s", err);
	cfg_docs_free(&d);
}

static void check_golden(const char *const *files, const char *golden)
{
	char *text = NULL, *want, path[PATH_MAX / 2];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	compile_files(files, cfg_a);
	assert_int_equal(cfg_describe_all(cfg_a, f), 0);
	fclose(f);
	snprintf(path, sizeof(path), "golden/%s", golden);
	if (getenv("RM_UPDATE_GOLDEN")) {
		char full[2048];
		FILE *g;

		snprintf(full, sizeof(full), "%.1000s/%.1000s", cfgt_dir(), path);
		g = fopen(full, "w");
		assert_non_null(g);
		fwrite(text, 1, len, g);
		fclose(g);
	}
	want = cfgt_read(path, NULL);
	if (!want)
		fail_msg("missing golden file %s/%s (run with RM_UPDATE_GOLDEN=1)", cfgt_dir(),
			 path);
	if (strcmp(want, text))
		fail_msg("%s differs; got:\n%s", golden, text);
	free(want);
	free(text);
}

static void test_golden_each_example(void **state)
{
	static const char *const one[][2] = {
	    {"routerule-v1.yaml", NULL}, {"routerule-v2.yaml", NULL}, {"routerule-v3.yaml", NULL},
	    {"routerule-v4.yaml", NULL}, {"dest-rule.yaml", NULL},    {"serviceentry.yaml", NULL},
	};

	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		char g[128];

		snprintf(g, sizeof(g), "%.*s.txt", (int)(strlen(one[i][0]) - 5), one[i][0]);
		check_golden(one[i], g);
	}
}

static void test_golden_workshop(void **state)
{
	check_golden(workshop, "workshop.txt");
}

static void test_golden_features(void **state)
{
	static const char *const old[] = {"routerule-features.yaml", NULL};
	static const char *const modern[] = {"modern/features.yaml", NULL};

	check_golden(old, "routerule-features.txt");
	check_golden(modern, "modern-features.txt");
}

static const char *rule_name(const struct rm_cfg *c, uint32_t i)
{
	return cfg_str(c, c->rules[i].name_off);
}

/* TRAFFIC.md: higher precedence first; rule 3 (70/30, no match) shadows rule 2. */
static void test_precedence_order(void **state)
{
	static const char *const three[] = {"routerule-v2.yaml", "routerule-v1.yaml",
					    "routerule-v3.yaml", NULL};

	compile_files(three, cfg_a);
	assert_int_equal(cfg_a->n_rules, 3);
	assert_string_equal(rule_name(cfg_a, 0), "trans-service-canary");
	assert_string_equal(rule_name(cfg_a, 1), "trans-service-featureflag");
	assert_string_equal(rule_name(cfg_a, 2), "trans-service-default");
	assert_int_equal(cfg_a->rules[0].match_count, 0); /* matches all: shadows rule 2 */
	compile_files(workshop, cfg_a);
	assert_int_equal(cfg_a->n_rules, 4);
	assert_string_equal(rule_name(cfg_a, 0), "trans-service-bulkhead");
	assert_int_equal(cfg_a->rules[0].timeout_ns, 5000000000ull);
	assert_int_equal(cfg_a->rules[1].timeout_ns, RM_CFG_OLD_DEFAULT_TIMEOUT_NS);
	assert_true(cfg_a->rules[1].flags & RM_RF_TIMEOUT_DEFAULT);
}

/* Ties on precedence: "namespace/name" ascending. */
static void test_precedence_ties(void **state)
{
	static const char text[] =
	    "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {name: b, "
	    "namespace: x}\nspec: {destination: {name: s, namespace: x}}\n---\n"
	    "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {name: a, "
	    "namespace: y}\nspec: {destination: {name: s, namespace: x}}\n---\n"
	    "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {name: c, "
	    "namespace: x}\nspec: {destination: {name: s, namespace: x}, precedence: 1}\n";
	struct cfg_docs d = {0};
	char err[256];

	assert_int_equal(cfg_docs_parse(&d, "t", text, sizeof(text) - 1, err, sizeof(err)), 0);
	assert_int_equal(cfg_compile(&d, cfg_a, err, sizeof(err)), 0);
	assert_int_equal(cfg_a->n_rules, 3);
	assert_string_equal(rule_name(cfg_a, 0), "c");
	assert_string_equal(rule_name(cfg_a, 1), "b"); /* x/b < y/a */
	assert_string_equal(rule_name(cfg_a, 2), "a");
	assert_int_equal(cfg_a->n_services, 1);
	assert_string_equal(cfg_str(cfg_a, cfg_a->services[0].host_off), "s.x.svc.cluster.local");
	cfg_docs_free(&d);
}

/* route.destination sends to another service: its label set becomes a subset
 * of that service, not of the rule's. */
static void test_route_to_other_service(void **state)
{
	static const char text[] =
	    "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {name: r}\n"
	    "spec:\n  destination: {name: front}\n  route:\n"
	    "  - destination: {name: back, namespace: other}\n    labels: {version: v2}\n"
	    "    weight: 100\n";
	struct cfg_docs d = {0};
	const struct rm_cfg_target *t;
	char err[256];

	assert_int_equal(cfg_docs_parse(&d, "t", text, sizeof(text) - 1, err, sizeof(err)), 0);
	if (cfg_compile(&d, cfg_a, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(cfg_a->n_services, 2);
	t = &cfg_a->targets[cfg_a->rules[0].target_first];
	assert_string_equal(cfg_str(cfg_a, cfg_a->services[t->service].host_off),
			    "back.other.svc.cluster.local");
	assert_int_equal(cfg_a->subsets[t->subset].service, t->service);
	assert_string_equal(cfg_str(cfg_a, cfg_a->subsets[t->subset].name_off), "version=v2");
	assert_string_equal(cfg_str(cfg_a, cfg_a->services[cfg_a->rules[0].service].host_off),
			    "front.default.svc.cluster.local");
	cfg_docs_free(&d);
}

/* sourceNamespace (modern) and match.source with labels (old API) compile to the
 * match's source fields; `describe` shows them. */
static void test_source_match(void **state)
{
	static const char text[] =
	    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\n"
	    "spec:\n  hosts: [front]\n  http:\n  - match:\n    - sourceNamespace: team-a\n"
	    "      sourceLabels: {app: cli, version: v1}\n    route:\n"
	    "    - destination: {host: front}\n"
	    "---\napiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {name: rr}\n"
	    "spec:\n  destination: {name: back}\n  precedence: 2\n"
	    "  match:\n    source: {name: front, labels: {version: v2}}\n"
	    "  route:\n  - labels: {version: v1}\n";
	struct cfg_docs d = {0};
	const struct rm_cfg_match *m;
	char err[256], lb[128], *out = NULL;
	size_t olen = 0;
	FILE *f;
	bool seen_vs = false, seen_rr = false;

	assert_int_equal(cfg_docs_parse(&d, "t", text, sizeof(text) - 1, err, sizeof(err)), 0);
	if (cfg_compile(&d, cfg_a, err, sizeof(err)))
		fail_msg("%s", err);
	for (uint32_t i = 0; i < cfg_a->n_rules; i++) {
		const struct rm_cfg_rule *r = &cfg_a->rules[i];

		assert_int_equal(r->match_count, 1);
		m = &cfg_a->matches[r->match_first];
		cfg_fmt_labels(cfg_a, m->src_label_first, m->src_label_count, lb, sizeof(lb));
		if (r->api == RM_API_VIRTUALSERVICE) {
			assert_string_equal(cfg_str(cfg_a, m->src_ns_off), "team-a");
			assert_int_equal(m->src_name_off, 0);
			assert_string_equal(lb, "app=cli,version=v1");
			seen_vs = true;
		} else {
			assert_int_equal(m->src_ns_off, 0);
			assert_string_equal(cfg_str(cfg_a, m->src_name_off),
					    "front.default.svc.cluster.local");
			assert_string_equal(lb, "version=v2");
			seen_rr = true;
		}
	}
	assert_true(seen_vs && seen_rr);
	f = open_memstream(&out, &olen);
	assert_int_equal(cfg_describe_all(cfg_a, f), 0);
	fclose(f);
	if (!strstr(out, "source namespace team-a and source labels app=cli,version=v1"))
		fail_msg("describe:\n%s", out);
	free(out);
	cfg_docs_free(&d);
}

static void labels_of(const struct rm_cfg *c, uint32_t sub, char *buf, size_t len)
{
	if (sub == RM_CFG_NONE)
		snprintf(buf, len, "*");
	else
		cfg_fmt_labels(c, c->subsets[sub].label_first, c->subsets[sub].label_count, buf,
			       len);
}

/* Field by field, ignoring what legitimately differs between APIs: names,
 * api, precedence/http_index, origin and the "timeout is the default" flag. */
static void assert_same_rules(const struct rm_cfg *a, const struct rm_cfg *b)
{
	assert_int_equal(a->n_services, b->n_services);
	assert_int_equal(a->n_rules, b->n_rules);
	for (uint32_t s = 0; s < a->n_services; s++) {
		assert_string_equal(cfg_str(a, a->services[s].host_off),
				    cfg_str(b, b->services[s].host_off));
		assert_memory_equal(a->services[s].addrs, b->services[s].addrs,
				    sizeof(a->services[s].addrs));
		assert_int_equal(a->services[s].rule_first, b->services[s].rule_first);
		assert_int_equal(a->services[s].rule_count, b->services[s].rule_count);
		assert_int_equal(a->services[s].endpoint_count, b->services[s].endpoint_count);
	}
	for (uint32_t i = 0; i < a->n_rules; i++) {
		const struct rm_cfg_rule *x = &a->rules[i], *y = &b->rules[i];

		assert_int_equal(x->service, y->service);
		assert_int_equal(x->flags & ~RM_RF_TIMEOUT_DEFAULT,
				 y->flags & ~RM_RF_TIMEOUT_DEFAULT);
		assert_int_equal(x->timeout_ns, y->timeout_ns);
		assert_int_equal(x->retry_attempts, y->retry_attempts);
		assert_int_equal(x->retry_on, y->retry_on);
		assert_int_equal(x->retry_per_try_ns, y->retry_per_try_ns);
		assert_int_equal(x->delay_ns, y->delay_ns);
		assert_int_equal(x->delay_ppm, y->delay_ppm);
		assert_int_equal(x->abort_ppm, y->abort_ppm);
		assert_int_equal(x->abort_status, y->abort_status);
		assert_int_equal(x->match_count, y->match_count);
		for (uint32_t m = 0; m < x->match_count; m++) {
			const struct rm_cfg_match *mx = &a->matches[x->match_first + m];
			const struct rm_cfg_match *my = &b->matches[y->match_first + m];

			assert_int_equal(mx->cond_count, my->cond_count);
			for (uint32_t c = 0; c < mx->cond_count; c++) {
				const struct rm_cfg_cond *cx = &a->conds[mx->cond_first + c];
				const struct rm_cfg_cond *cy = &b->conds[my->cond_first + c];

				assert_int_equal(cx->field, cy->field);
				assert_int_equal(cx->op, cy->op);
				assert_string_equal(cfg_str(a, cx->name_off),
						    cfg_str(b, cy->name_off));
				assert_string_equal(cfg_str(a, cx->value_off),
						    cfg_str(b, cy->value_off));
			}
		}
		assert_int_equal(x->target_count, y->target_count);
		for (uint32_t t = 0; t < x->target_count; t++) {
			const struct rm_cfg_target *tx = &a->targets[x->target_first + t];
			const struct rm_cfg_target *ty = &b->targets[y->target_first + t];
			char lx[256], ly[256];

			assert_int_equal(tx->service, ty->service);
			assert_int_equal(tx->weight, ty->weight);
			assert_int_equal(tx->port, ty->port);
			labels_of(a, tx->subset, lx, sizeof(lx));
			labels_of(b, ty->subset, ly, sizeof(ly));
			assert_string_equal(lx, ly);
			if (tx->subset == RM_CFG_NONE)
				continue;
			/* the subset behind the target behaves the same */
			assert_int_equal(a->subsets[tx->subset].lb, b->subsets[ty->subset].lb);
			assert_memory_equal(&a->subsets[tx->subset].cb, &b->subsets[ty->subset].cb,
					    sizeof(struct rm_cfg_breaker));
			assert_int_equal(a->subsets[tx->subset].member_count,
					 b->subsets[ty->subset].member_count);
			for (uint32_t k = 0; k < a->subsets[tx->subset].member_count; k++)
				assert_memory_equal(
				    &a->endpoints[a->members[a->subsets[tx->subset].member_first +
							     k]]
					 .addr,
				    &b->endpoints[b->members[b->subsets[ty->subset].member_first +
							     k]]
					 .addr,
				    16);
		}
	}
}

static void test_modern_equals_old(void **state)
{
	static const char *const modern[] = {"modern/workshop.yaml", "serviceentry.yaml", NULL};
	uint32_t v3 = RM_CFG_NONE;

	compile_files(workshop, cfg_a);
	compile_files(modern, cfg_b);
	assert_same_rules(cfg_a, cfg_b);
	/* the breaker of v3 came from the policies, not from defaults */
	for (uint32_t i = 0; i < cfg_a->n_subsets; i++)
		if (!strcmp(cfg_str(cfg_a, cfg_a->subsets[i].name_off),
			    "app=trans-service,version=v3"))
			v3 = i;
	assert_int_not_equal(v3, RM_CFG_NONE);
	assert_int_equal(cfg_a->subsets[v3].cb.max_connections, 100);
	assert_int_equal(cfg_a->subsets[v3].cb.consecutive_errors, 7);
	assert_int_equal(cfg_a->subsets[v3].cb.base_ejection_ns, 300000000000ull);
	assert_int_equal(cfg_a->subsets[v3].cb.interval_ns, 120000000000ull);
	assert_int_equal(cfg_a->subsets[v3].cb.max_ejection_percent, 10);
	assert_int_equal(cfg_a->subsets[v3].cb.max_retries, 3);
	assert_int_equal(cfg_a->subsets[v3].cb.outlier, 1);
}

/* The comparison above must be able to fail: a modern set that differs in one
 * weight is told apart. */
static void test_equivalence_detects_difference(void **state)
{
	static const char *const modern[] = {"modern/workshop.yaml", "serviceentry.yaml", NULL};

	compile_files(workshop, cfg_a);
	compile_files(modern, cfg_b);
	cfg_b->targets[cfg_b->rules[1].target_first].weight = 71;
	assert_int_not_equal(cfg_b->targets[cfg_b->rules[1].target_first].weight,
			     cfg_a->targets[cfg_a->rules[1].target_first].weight);
}

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		uint64_t ns;
	} good[] = {{"5s", 5000000000ull},
		    {"250ms", 250000000ull},
		    {"1m", 60000000000ull},
		    {"1h", 3600000000000ull},
		    {"1.5s", 1500000000ull},
		    {"1m30s", 90000000000ull},
		    {"0s", 0},
		    {"100us", 100000},
		    {"7ns", 7}};
	static const char *const bad[] = {"",	  "5",	 "s",	 "-5s", "5 s",	       "5sec",
					  "1.s5", "+1s", "1e3s", "5S",	"99999999999h"};
	uint64_t ns;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(cfg_parse_duration(good[i].s, &ns), 0);
		assert_int_equal(ns, good[i].ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!cfg_parse_duration(bad[i], &ns))
			fail_msg("duration \"%s\" accepted", bad[i]);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every malformed document is rejected with the expected position and message,
 * and the set it was applied to compiles to the same bytes as before. */
static void test_bad_corpus(void **state)
{
	struct cfg_docs store = {0};
	struct rm_cfg_src *src = calloc(1, sizeof(*src));
	char *expect = cfgt_read("bad/EXPECT", NULL), *line, *save = NULL;
	char err[512];
	int checked = 0;
	size_t before;

	assert_non_null(src);
	assert_non_null(expect);
	assert_int_equal(cfgt_load(&store, workshop, err, sizeof(err)), 0);
	assert_int_equal(cfg_compile(&store, cfg_a, err, sizeof(err)), 0);
	before = cfg_blob_size(cfg_a);
	assert_int_equal(cfg_src_pack(&store, src, err, sizeof(err)), 0);
	for (line = strtok_r(expect, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t'), rel[300], want[600];
		struct cfg_docs add = {0}, cur = {0};
		int r;

		if (line[0] == '#' || !tab)
			continue;
		*tab = 0;
		snprintf(rel, sizeof(rel), "bad/%s", line);
		snprintf(want, sizeof(want), "%s:%s", rel, tab + 1);
		err[0] = 0;
		r = cfgt_parse(&add, rel, err, sizeof(err));
		if (!r) {
			/* valid alone: must fail when compiled with what is applied */
			assert_int_equal(cfg_src_unpack(src, &cur, err, sizeof(err)), 0);
			assert_int_equal(cfg_docs_merge(&cur, &add), 0);
			r = cfg_compile(&cur, cfg_b, err, sizeof(err));
		}
		if (!r)
			fail_msg("%s was accepted", rel);
		if (!strstr(err, want))
			fail_msg("%s:\n  want: %s\n  got:  %s", rel, want, err);
		cfg_docs_free(&add);
		cfg_docs_free(&cur);
		/* the applied set is untouched */
		assert_int_equal(cfg_compile(&store, cfg_b, err, sizeof(err)), 0);
		assert_int_equal(cfg_blob_size(cfg_b), before);
		assert_true(cfg_equal(cfg_a, cfg_b));
		checked++;
	}
	assert_true(checked >= 30);
	{
		/* every file in bad/ is listed */
		DIR *d;
		struct dirent *e;
		char path[1100];
		int files = 0;

		snprintf(path, sizeof(path), "%.1000s/bad", cfgt_dir());
		d = opendir(path);
		assert_non_null(d);
		while ((e = readdir(d)))
			files += strstr(e->d_name, ".yaml") != NULL;
		closedir(d);
		assert_int_equal(files, checked);
	}
	(void)cmp_names;
	free(expect);
	cfg_src_free(src);
	free(src);
	cfg_docs_free(&store);
}

static void test_merge_and_delete(void **state)
{
	static const char v1b[] =
	    "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n"
	    "  name: trans-service-default\n  namespace: order-system-production\nspec:\n"
	    "  destination: {name: trans-service}\n  precedence: 9\n";
	struct cfg_docs store = {0}, add = {0}, del = {0};
	char err[512];

	assert_int_equal(cfgt_load(&store, workshop, err, sizeof(err)), 0);
	assert_int_equal(store.n, 6);
	/* same kind+namespace+name replaces, in place */
	assert_int_equal(cfg_docs_parse(&add, "-", v1b, sizeof(v1b) - 1, err, sizeof(err)), 0);
	assert_int_equal(cfg_docs_merge(&store, &add), 0);
	assert_int_equal(store.n, 6);
	assert_int_equal(cfg_compile(&store, cfg_a, err, sizeof(err)), 0);
	assert_string_equal(rule_name(cfg_a, 0), "trans-service-default");
	assert_int_equal(cfg_a->rules[0].precedence, 9);
	assert_int_equal(cfg_a->rules[0].target_count, 0);
	/* unique adds (the sync's): into an empty set appended in order, over a set
	 * replacing in place */
	{
		struct cfg_docs u = {0}, w = {0}, ref = {0};

		assert_int_equal(cfgt_load(&w, workshop, err, sizeof(err)), 0);
		assert_int_equal(cfgt_load(&ref, workshop, err, sizeof(err)), 0);
		assert_int_equal(cfg_docs_merge_unique(&u, &w), 0);
		assert_int_equal(w.n, 0);
		assert_int_equal(u.n, ref.n);
		for (size_t i = 0; i < u.n; i++)
			assert_string_equal(u.v[i].name, ref.v[i].name);
		assert_int_equal(cfg_docs_parse(&add, "-", v1b, sizeof(v1b) - 1, err, sizeof(err)),
				 0);
		assert_int_equal(cfg_docs_merge_unique(&u, &add), 0);
		assert_int_equal(u.n, ref.n);
		for (size_t i = 0; i < u.n; i++) {
			assert_string_equal(u.v[i].name, ref.v[i].name);
			assert_string_equal(u.v[i].origin,
					    strcmp(u.v[i].name, "trans-service-default") ||
						    u.v[i].kind != CFG_K_ROUTERULE
						? ref.v[i].origin
						: "-");
		}
		cfg_docs_free(&u);
		cfg_docs_free(&ref);
	}
	/* delete -f */
	assert_int_equal(cfgt_parse(&del, "routerule-v2.yaml", err, sizeof(err)), 0);
	assert_int_equal(cfg_docs_remove(&store, &del, err, sizeof(err)), 0);
	assert_int_equal(store.n, 5);
	assert_int_equal(cfg_docs_remove(&store, &del, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "RouteRule order-system-production/trans-service-featureflag "
				    "is not applied"));
	assert_int_equal(store.n, 5);
	/* rule delete NAME */
	assert_int_equal(
	    cfg_docs_remove_rule(&store, "trans-service-canary", NULL, err, sizeof(err)), 0);
	assert_int_equal(
	    cfg_docs_remove_rule(&store, "trans-service-canary", NULL, err, sizeof(err)), -ENOENT);
	assert_int_equal(
	    cfg_docs_remove_rule(&store, "trans-service-bulkhead", "other", err, sizeof(err)),
	    -ENOENT);
	assert_int_equal(store.n, 4);
	assert_int_equal(cfg_compile(&store, cfg_a, err, sizeof(err)), 0);
	assert_int_equal(cfg_a->n_rules, 2);
	assert_int_equal(cfg_rule_find(cfg_a, "trans-service-bulkhead", NULL), 1);
	assert_int_equal(cfg_rule_find(cfg_a, "nope", NULL), -ENOENT);
	cfg_docs_free(&del);
	cfg_docs_free(&store);
}

/* The source half re-parses to the same compiled bytes, with positions still
 * pointing into the original files. */
static void test_src_roundtrip(void **state)
{
	static const char *const all[] = {
	    "routerule-v1.yaml",       "routerule-v2.yaml",    "routerule-v3.yaml",
	    "routerule-v4.yaml",       "dest-rule.yaml",       "serviceentry.yaml",
	    "routerule-features.yaml", "modern/features.yaml", NULL};
	struct cfg_docs store = {0}, back = {0};
	struct rm_cfg_src *src = calloc(1, sizeof(*src));
	char err[512];

	assert_non_null(src);
	assert_int_equal(cfgt_load(&store, all, err, sizeof(err)), 0);
	assert_int_equal(cfg_compile(&store, cfg_a, err, sizeof(err)), 0);
	assert_int_equal(cfg_src_pack(&store, src, err, sizeof(err)), 0);
	assert_int_equal(src->n_docs, store.n);
	assert_int_equal(cfg_src_unpack(src, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, store.n);
	for (size_t i = 0; i < back.n; i++) {
		assert_string_equal(back.v[i].origin, store.v[i].origin);
		assert_int_equal(back.v[i].first_line, store.v[i].first_line);
		assert_int_equal(back.v[i].ir->pos.line, store.v[i].ir->pos.line);
	}
	assert_int_equal(cfg_compile(&back, cfg_b, err, sizeof(err)), 0);
	assert_int_equal(cfg_blob_size(cfg_a), cfg_blob_size(cfg_b));
	assert_true(cfg_equal(cfg_a, cfg_b));
	/* a corrupt record is refused, not trusted */
	src->used = 12;
	cfg_docs_free(&back);
	assert_int_not_equal(cfg_src_unpack(src, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 0);
	cfg_src_free(src);
	free(src);
	cfg_docs_free(&store);
}

/* Variant v of what an apply brings, for test_src_merge. */
static void merge_variant(int v, struct cfg_docs *add)
{
	static const char extra[] = "---\napiVersion: networking.istio.io/v1\n"
				    "kind: DestinationRule\nmetadata: {name: extra, namespace: x}\n"
				    "spec:\n  host: extra.x.svc.cluster.local\n";
	static const char *const all[] = {
	    "routerule-v1.yaml",       "routerule-v2.yaml",    "routerule-v3.yaml",
	    "routerule-v4.yaml",       "dest-rule.yaml",       "serviceentry.yaml",
	    "routerule-features.yaml", "modern/features.yaml", NULL};
	char err[512] = "", *text, *w;
	size_t len;

	if (v == 0) { /* everything again, unchanged */
		assert_int_equal(cfgt_load(add, all, err, sizeof(err)), 0);
		return;
	}
	if (v == 4) { /* a file from the middle of the applied set: places are kept */
		assert_int_equal(cfgt_parse(add, "dest-rule.yaml", err, sizeof(err)), 0);
		return;
	}
	text = cfgt_read("modern/features.yaml", &len);
	assert_non_null(text);
	if (v == 2) { /* one weight changed, one document added */
		w = strstr(text, "weight: 3");
		assert_non_null(w);
		w[8] = '4';
		text = realloc(text, len + sizeof(extra));
		assert_non_null(text);
		memcpy(text + len, extra, sizeof(extra));
		len += sizeof(extra) - 1;
	}
	/* v 3: the same text from another file */
	assert_int_equal(cfg_docs_parse(add, v == 3 ? "moved.yaml" : "modern/features.yaml", text,
					len, err, sizeof(err)),
			 0);
	free(text);
}

/* cfg_src_merge skips parsing stored documents an apply carries again: it must
 * give what unpacking everything and merging gives, document for document. */
static void test_src_merge(void **state)
{
	static const char *const all[] = {
	    "routerule-v1.yaml",       "routerule-v2.yaml",    "routerule-v3.yaml",
	    "routerule-v4.yaml",       "dest-rule.yaml",       "serviceentry.yaml",
	    "routerule-features.yaml", "modern/features.yaml", NULL};
	struct cfg_docs store = {0};
	struct rm_cfg_src *src = calloc(1, sizeof(*src));
	char err[512];

	assert_non_null(src);
	assert_int_equal(cfgt_load(&store, all, err, sizeof(err)), 0);
	assert_int_equal(cfg_src_pack(&store, src, err, sizeof(err)), 0);
	for (int v = 0; v < 5; v++) {
		struct cfg_docs add1 = {0}, add2 = {0}, want = {0}, got = {0};

		merge_variant(v, &add1);
		merge_variant(v, &add2);
		assert_int_equal(cfg_src_unpack(src, &want, err, sizeof(err)), 0);
		assert_int_equal(cfg_docs_merge(&want, &add1), 0);
		assert_int_equal(cfg_src_merge(src, &add2, &got, err, sizeof(err)), 0);
		assert_int_equal(add2.n, 0);
		assert_int_equal(got.n, want.n);
		for (size_t i = 0; i < got.n; i++) {
			assert_int_equal(got.v[i].kind, want.v[i].kind);
			assert_string_equal(got.v[i].ns, want.v[i].ns);
			assert_string_equal(got.v[i].name, want.v[i].name);
			assert_string_equal(got.v[i].origin, want.v[i].origin);
			assert_string_equal(got.v[i].text, want.v[i].text);
			assert_int_equal(got.v[i].first_line, want.v[i].first_line);
			assert_non_null(got.v[i].ir);
			assert_int_equal(got.v[i].ir->pos.line, want.v[i].ir->pos.line);
		}
		assert_int_equal(cfg_compile(&want, cfg_a, err, sizeof(err)), 0);
		assert_int_equal(cfg_compile(&got, cfg_b, err, sizeof(err)), 0);
		assert_int_equal(cfg_blob_size(cfg_a), cfg_blob_size(cfg_b));
		assert_true(cfg_equal(cfg_a, cfg_b));
		cfg_docs_free(&want);
		cfg_docs_free(&got);
	}
	cfg_src_free(src);
	free(src);
	cfg_docs_free(&store);
}

/* Regressions the fuzzer found: a lone CR is a line break to libyaml, so stored
 * documents must be cut at it too (else a recompiled store differs); UTF-16 is
 * refused with a position (its NULs would truncate the stored text). */
static void test_line_breaks_and_encoding(void **state)
{
	static const char two[] = "apiVersion: config.istio.io/v1alpha2\rkind: RouteRule\r"
				  "metadata: {name: a, namespace: ns}\r"
				  "spec: {destination: {name: svc}, precedence: 1}\r---\r"
				  "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\n"
				  "metadata: {name: b, namespace: ns}\n"
				  "spec: {destination: {name: svc}, precedence: 2}\n";
	static const char utf16[] = "\xff\xfek\0i\0n\0d\0:\0 \0x\0\n\0";
	struct cfg_docs store = {0}, back = {0};
	struct rm_cfg_src *src = calloc(1, sizeof(*src));
	char err[512] = "";

	assert_non_null(src);
	assert_int_equal(cfg_docs_parse(&store, "cr.yaml", two, sizeof(two) - 1, err, sizeof(err)),
			 0);
	assert_int_equal(store.n, 2);
	assert_int_equal(cfg_compile(&store, cfg_a, err, sizeof(err)), 0);
	assert_int_equal(cfg_src_pack(&store, src, err, sizeof(err)), 0);
	assert_int_equal(cfg_src_unpack(src, &back, err, sizeof(err)), 0);
	assert_int_equal(cfg_compile(&back, cfg_b, err, sizeof(err)), 0);
	assert_int_equal(cfg_blob_size(cfg_a), cfg_blob_size(cfg_b));
	assert_true(cfg_equal(cfg_a, cfg_b));
	cfg_docs_free(&back);
	cfg_docs_free(&store);

	assert_int_not_equal(
	    cfg_docs_parse(&store, "u16.yaml", utf16, sizeof(utf16) - 1, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "u16.yaml:1:1: "));
	assert_int_equal(store.n, 0);
	cfg_src_free(src);
	free(src);
}

/* The line index against the scan it replaced (a document's text is cut at
 * these offsets): every line of random sources made of line-break bytes. */
static size_t ref_line_off(const unsigned char *t, size_t len, size_t line)
{
	size_t off = 0;

	while (line && off < len) {
		size_t w = 0;

		if (t[off] == '\r')
			w = off + 1 < len && t[off + 1] == '\n' ? 2 : 1;
		else if (t[off] == '\n')
			w = 1;
		else if (t[off] == 0xc2 && off + 1 < len && t[off + 1] == 0x85)
			w = 2;
		else if (t[off] == 0xe2 && off + 2 < len && t[off + 1] == 0x80 &&
			 (t[off + 2] == 0xa8 || t[off + 2] == 0xa9))
			w = 3;
		if (w)
			line--;
		off += w ? w : 1;
	}
	return off;
}

static void test_line_index(void **state)
{
	static const unsigned char alpha[] = {'a', '\r', '\n', 0xc2, 0x85, 0xe2, 0x80, 0xa8, 0xa9};
	static const char fixed[] = "a\r\nb\rc\nd\xc2\x85"
				    "e\xe2\x80\xa8"
				    "f\xe2\x80\xa9"
				    "g\xe2\x80\xaah";
	static const size_t want[] = {0, 3, 5, 7, 10, 14, 18};
	unsigned char buf[300];
	struct cfg_lines li;
	unsigned seed = 1;

	assert_int_equal(cfg_lines_index(&li, fixed, sizeof(fixed) - 1), 0);
	assert_int_equal(li.n, 7);
	for (size_t k = 0; k < 7; k++)
		assert_int_equal(cfg_lines_off(&li, k), want[k]);
	assert_int_equal(cfg_lines_off(&li, 7), sizeof(fixed) - 1);
	cfg_lines_free(&li);
	assert_int_equal(cfg_lines_index(&li, "", 0), 0);
	assert_int_equal(cfg_lines_off(&li, 0), 0);
	assert_int_equal(cfg_lines_off(&li, 5), 0);
	cfg_lines_free(&li);
	for (int round = 0; round < 500; round++) {
		size_t len = (size_t)(round % 7 ? round % 97 : 299);

		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = alpha[(seed >> 16) % sizeof(alpha)];
		}
		assert_int_equal(cfg_lines_index(&li, (const char *)buf, len), 0);
		for (size_t line = 0; line < len + 3; line++)
			assert_int_equal(cfg_lines_off(&li, line), ref_line_off(buf, len, line));
		cfg_lines_free(&li);
	}
}

static void test_describe_rule_text(void **state)
{
	static const char *const v2[] = {"routerule-v2.yaml", NULL};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	compile_files(v2, cfg_a);
	assert_int_equal(cfg_rule_describe(cfg_a, 0, f), 0);
	assert_int_equal(cfg_rule_describe(cfg_a, 1, f), -ENOENT);
	fclose(f);
	assert_string_equal(text,
			    "rule trans-service-featureflag.order-system-production  (RouteRule, "
			    "precedence 2)\n"
			    "  service   trans-service.order-system-production.svc.cluster.local\n"
			    "  match     header x-dev-user exact \"super-secret\"\n"
			    "  route     100% -> subset app=trans-service,version=v2\n"
			    "  timeout   15s (default)\n"
			    "  retries   none\n"
			    "  from      routerule-v2.yaml:1\n");
	free(text);
}

static int setup(void **state)
{
	cfg_a = calloc(1, sizeof(*cfg_a));
	cfg_b = calloc(1, sizeof(*cfg_b));
	return cfg_a && cfg_b ? 0 : -1;
}

static int teardown(void **state)
{
	cfg_free(cfg_a);
	free(cfg_a);
	cfg_free(cfg_b);
	free(cfg_b);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_golden_each_example),
	    cmocka_unit_test(test_golden_workshop),
	    cmocka_unit_test(test_golden_features),
	    cmocka_unit_test(test_precedence_order),
	    cmocka_unit_test(test_precedence_ties),
	    cmocka_unit_test(test_source_match),
	    cmocka_unit_test(test_route_to_other_service),
	    cmocka_unit_test(test_modern_equals_old),
	    cmocka_unit_test(test_equivalence_detects_difference),
	    cmocka_unit_test(test_bad_corpus),
	    cmocka_unit_test(test_merge_and_delete),
	    cmocka_unit_test(test_src_roundtrip),
	    cmocka_unit_test(test_describe_rule_text),
	    cmocka_unit_test(test_line_breaks_and_encoding),
	    cmocka_unit_test(test_line_index),
	    cmocka_unit_test(test_src_merge),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
