/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The rules compiler on material nobody on the team wrote: Istio's own sample files
 * (tests/samples, copied unchanged). The bookinfo networking samples in the order
 * Istio's tasks apply them (request routing, fault injection, traffic shifting), with
 * ServiceEntries standing in for Kubernetes; every other networking sample with the
 * outcome tests/cfg/samples-EXPECT states; Istio 0.x samples under the three
 * config.istio.io versions; null documents; files mixing Kubernetes objects and rules. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>

#include "test_cfg_lib.h"
#include "common/cfg_ir.h"

#define NET "../samples/istio/bookinfo/networking/"
#define OLD "../samples/istio-0.7.1/"
#define SE "bookinfo-serviceentries.yaml"

static struct rm_cfg *cfg;

static void compile_list(const char *const *files, struct cfg_docs *d)
{
	char err[512] = "";

	if (cfgt_load(d, files, err, sizeof(err)))
		fail_msg("load: %s", err);
	if (cfg_compile(d, cfg, err, sizeof(err)))
		fail_msg("compile: %s", err);
}

/* The version a target goes to: its subset's "version" label ("*" for none). */
static const char *target_version(uint32_t subset, char *buf, size_t len)
{
	const char *v;

	if (subset == RM_CFG_NONE)
		return "*";
	cfg_fmt_labels(cfg, cfg->subsets[subset].label_first, cfg->subsets[subset].label_count, buf,
		       len);
	v = strstr(buf, "version=");
	return v ? v + 8 : buf;
}

/* The routing of one service, in evaluation order, one rule per "|":
 * "end-user exact jason -> v2 | * -> v1", with weights when split
 * ("* -> v1:50,v3:50"), "delay 7s@100%" and "abort 500@100%" when set. */
static const char *routes(const char *host, char *out, size_t len)
{
	int s = cfg_service_find(cfg, host);
	size_t used = 0;

#define PUT(...) used += (size_t)snprintf(out + used, used < len ? len - used : 0, __VA_ARGS__)
	out[0] = 0;
	if (s < 0)
		return "(no such service)";
	for (uint32_t k = 0; k < cfg->services[s].rule_count; k++) {
		const struct rm_cfg_rule *r = &cfg->rules[cfg->services[s].rule_first + k];

		PUT("%s", k ? " | " : "");
		if (!r->match_count)
			PUT("*");
		for (uint32_t m = 0; m < r->match_count; m++) {
			const struct rm_cfg_match *mt = &cfg->matches[r->match_first + m];

			for (uint32_t c = 0; c < mt->cond_count; c++) {
				const struct rm_cfg_cond *cd = &cfg->conds[mt->cond_first + c];

				PUT("%s%s %s %s",
				    c	? " and "
				    : m ? " or "
					: "",
				    cfg_str(cfg, cd->name_off), cfg_op_name(cd->op),
				    cfg_str(cfg, cd->value_off));
			}
		}
		PUT(" ->");
		for (uint32_t t = 0; t < r->target_count; t++) {
			const struct rm_cfg_target *tg = &cfg->targets[r->target_first + t];
			char lb[128];

			PUT("%s%s", t ? "," : " ", target_version(tg->subset, lb, sizeof(lb)));
			if (r->target_count > 1)
				PUT(":%u", tg->weight);
		}
		if (r->flags & RM_RF_DELAY) {
			char d[32];

			PUT(" delay %s@%u%%", cfg_fmt_duration(r->delay_ns, d, sizeof(d)),
			    r->delay_ppm / 10000);
		}
		if (r->flags & RM_RF_ABORT)
			PUT(" abort %u@%u%%", r->abort_status, r->abort_ppm / 10000);
	}
#undef PUT
	return out;
}

#define ASSERT_ROUTES(host, want)                                                                  \
	do {                                                                                       \
		char _b[1024];                                                                     \
		assert_string_equal(routes(host ".default.svc.cluster.local", _b, sizeof(_b)),     \
				    want);                                                         \
	} while (0)

/* The endpoints of the subset of host whose version label is version. */
static const char *members(const char *host, const char *version, char *out, size_t len)
{
	int s = cfg_service_find(cfg, host);
	size_t used = 0;

	out[0] = 0;
	if (s < 0)
		return "(no such service)";
	for (uint32_t i = 0; i < cfg->services[s].subset_count; i++) {
		uint32_t sub = cfg->services[s].subset_first + i;
		char lb[128];

		if (strcmp(target_version(sub, lb, sizeof(lb)), version))
			continue;
		for (uint32_t m = 0; m < cfg->subsets[sub].member_count && used < len; m++) {
			const struct rm_cfg_endpoint *e =
			    &cfg->endpoints[cfg->members[cfg->subsets[sub].member_first + m]];

			used += (size_t)snprintf(out + used, len - used, "%s%u.%u.%u.%u",
						 m ? "," : "", e->addr.a8[12], e->addr.a8[13],
						 e->addr.a8[14], e->addr.a8[15]);
		}
		return out;
	}
	return "(no such subset)";
}

/* Istio's tasks, modern API: https://istio.io/latest/docs/tasks/traffic-management/
 * request-routing, fault-injection, traffic-shifting, each file applied on top of the
 * previous ones (same kind+name replaces, as `ringmesh apply` merges). */
static void test_bookinfo_tasks_modern(void **state)
{
	static const char *const base[] = {SE, NET "destination-rule-all.yaml",
					   NET "virtual-service-all-v1.yaml", NULL};
	static const char *const step[][2] = {
	    {NET "virtual-service-reviews-test-v2.yaml", NULL},
	    {NET "virtual-service-ratings-test-delay.yaml", NULL},
	    {NET "virtual-service-ratings-test-abort.yaml", NULL},
	    {NET "virtual-service-all-v1.yaml", NULL}, /* traffic shifting starts over */
	    {NET "virtual-service-reviews-50-v3.yaml", NULL},
	    {NET "virtual-service-reviews-v3.yaml", NULL},
	};
	struct cfg_docs d = {0};
	char b[256];

	/* request routing: everything to v1, then jason to reviews v2 */
	compile_list(base, &d);
	assert_int_equal(d.n, 4 + 4 + 4); /* the trailing `---` of two files adds nothing */
	ASSERT_ROUTES("productpage", "* -> v1");
	ASSERT_ROUTES("reviews", "* -> v1");
	ASSERT_ROUTES("ratings", "* -> v1");
	ASSERT_ROUTES("details", "* -> v1");
	assert_string_equal(members("reviews.default.svc.cluster.local", "v1", b, sizeof(b)),
			    "10.244.0.22");
	assert_string_equal(members("reviews.default.svc.cluster.local", "v2", b, sizeof(b)),
			    "10.244.0.23");
	assert_string_equal(members("reviews.default.svc.cluster.local", "v3", b, sizeof(b)),
			    "10.244.0.24");
	compile_list(step[0], &d);
	ASSERT_ROUTES("reviews", "end-user exact jason -> v2 | * -> v1");
	ASSERT_ROUTES("ratings", "* -> v1");
	/* fault injection: ratings delayed 7 s for jason, then aborted with 500 */
	compile_list(step[1], &d);
	ASSERT_ROUTES("ratings", "end-user exact jason -> v1 delay 7s@100% | * -> v1");
	ASSERT_ROUTES("reviews", "end-user exact jason -> v2 | * -> v1");
	compile_list(step[2], &d);
	ASSERT_ROUTES("ratings", "end-user exact jason -> v1 abort 500@100% | * -> v1");
	/* traffic shifting: all v1, 50/50 v1/v3, then all v3 */
	compile_list(step[3], &d);
	ASSERT_ROUTES("reviews", "* -> v1");
	ASSERT_ROUTES("ratings", "* -> v1");
	compile_list(step[4], &d);
	ASSERT_ROUTES("reviews", "* -> v1:50,v3:50");
	compile_list(step[5], &d);
	ASSERT_ROUTES("reviews", "* -> v3");
	ASSERT_ROUTES("productpage", "* -> v1");
	assert_int_equal(d.n, 12);
	cfg_docs_free(&d);
}

/* The same tasks as Istio 0.7.1 wrote them (RouteRules by precedence, jason by cookie). */
static void test_bookinfo_tasks_old(void **state)
{
	static const char *const base[] = {SE, OLD "bookinfo/kube/route-rule-all-v1.yaml", NULL};
	static const char *const steps[][2] = {
	    {OLD "bookinfo/kube/route-rule-reviews-test-v2.yaml", NULL},
	    {OLD "bookinfo/kube/route-rule-ratings-test-delay.yaml", NULL},
	    {OLD "bookinfo/kube/route-rule-ratings-test-abort.yaml", NULL},
	    {OLD "bookinfo/kube/route-rule-reviews-50-v3.yaml", NULL},
	    {OLD "bookinfo/kube/route-rule-reviews-v3.yaml", NULL},
	    {OLD "bookinfo/kube/destination-policy-reviews.yaml", NULL}, /* v1beta1 */
	};
	static const char jason[] = "cookie regex ^(.*?;)?(user=jason)(;.*)?$";
	struct cfg_docs d = {0};
	char want[256];
	int s;

	compile_list(base, &d);
	ASSERT_ROUTES("reviews", "* -> v1");
	ASSERT_ROUTES("details", "* -> v1");
	compile_list(steps[0], &d);
	snprintf(want, sizeof(want), "%s -> v2 | * -> v1", jason);
	ASSERT_ROUTES("reviews", want);
	compile_list(steps[1], &d);
	snprintf(want, sizeof(want), "%s -> v1 delay 7s@100%% | * -> v1", jason);
	ASSERT_ROUTES("ratings", want);
	compile_list(steps[2], &d); /* a second rule at precedence 2: ties by name */
	snprintf(want, sizeof(want), "%s -> v1 abort 500@100%% | %s -> v1 delay 7s@100%% | * -> v1",
		 jason, jason);
	ASSERT_ROUTES("ratings", want);
	compile_list(steps[3], &d);
	snprintf(want, sizeof(want), "%s -> v2 | * -> v1:50,v3:50", jason);
	ASSERT_ROUTES("reviews", want);
	compile_list(steps[4], &d);
	snprintf(want, sizeof(want), "%s -> v2 | * -> v3", jason);
	ASSERT_ROUTES("reviews", want);
	/* a DestinationPolicy applies to the subset whose labels equal its own (Istio 0.x
	 * matched them "precisely"): with none, the service's unlabelled set, not v3 */
	compile_list(steps[5], &d);
	s = cfg_service_find(cfg, "reviews.default.svc.cluster.local");
	assert_true(s >= 0);
	assert_int_equal(cfg->services[s].subset_count, 3);
	for (uint32_t i = 0; i < cfg->services[s].subset_count; i++) {
		const struct rm_cfg_subset *sub = &cfg->subsets[cfg->services[s].subset_first + i];

		assert_int_equal(sub->lb, sub->label_count ? RM_LB_ROUND_ROBIN : RM_LB_RANDOM);
	}
	cfg_docs_free(&d);
}

/* Istio 0.x served RouteRule and DestinationPolicy under config.istio.io v1alpha1,
 * v1alpha2 and v1beta1: httpbin's circuit breaker is a v1alpha1 DestinationPolicy. */
static void test_old_api_versions(void **state)
{
	static const char *const httpbin[] = {OLD "httpbin/routerules/httpbin-v1.yaml",
					      OLD "httpbin/destinationpolicies/"
						  "httpbin-circuit-breaker.yaml",
					      NULL};
	static const char *const vers[] = {"v1alpha1", "v1alpha2", "v1beta1"};
	struct cfg_docs d = {0};
	const struct rm_cfg_breaker *cb;
	char err[512], text[512];

	compile_list(httpbin, &d);
	assert_int_equal(d.n, 2);
	assert_int_equal(cfg->n_subsets, 1);
	cb = &cfg->subsets[0].cb;
	assert_int_equal(cb->max_connections, 1);
	assert_int_equal(cb->max_pending, 1);
	assert_int_equal(cb->base_ejection_ns, 180000000000ull);
	assert_int_equal(cb->interval_ns, 1000000000ull);
	assert_int_equal(cb->max_ejection_percent, 100);
	assert_int_equal(cb->consecutive_errors, 1);
	assert_int_equal(cb->max_requests_per_conn, 1);
	assert_int_equal(cb->outlier, 1);
	cfg_docs_free(&d);
	for (size_t v = 0; v < 3; v++) {
		int n =
		    snprintf(text, sizeof(text),
			     "apiVersion: config.istio.io/%s\nkind: RouteRule\nmetadata: {name: "
			     "r}\nspec: {destination: {name: s}}\n---\napiVersion: "
			     "config.istio.io/%s\nkind: DestinationPolicy\nmetadata: {name: "
			     "p}\nspec: {destination: {name: s, labels: {version: v1}}}\n",
			     vers[v], vers[v]);

		if (cfg_docs_parse(&d, "t.yaml", text, (size_t)n, err, sizeof(err)))
			fail_msg("%s: %s", vers[v], err);
		assert_int_equal(d.n, 2);
		cfg_docs_free(&d);
	}
	/* a version Istio never served stays an error, naming the preferred one */
	snprintf(text, sizeof(text),
		 "apiVersion: config.istio.io/v1\nkind: DestinationPolicy\nmetadata: {name: p}\n"
		 "spec: {destination: {name: s}}\n");
	assert_int_equal(cfg_docs_parse(&d, "t.yaml", text, strlen(text), err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "t.yaml:1:13: apiVersion \"config.istio.io/v1\" does not serve "
				 "kind DestinationPolicy (use config.istio.io/v1alpha2)");
}

/* A `---` followed by nothing, by comments only, or by `~` is a null document. */
static void test_null_documents(void **state)
{
	static const char *const texts[] = {
	    "---\n",
	    "\n---\n---\n",
	    "# only a comment\n",
	    "--- ~\n",
	    "---\nnull\n---\n# trailing comment\n",
	};
	static const char rr[] = "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\n"
				 "metadata: {name: a}\nspec: {destination: {name: s}}\n";
	struct cfg_docs d = {0};
	char text[512], err[512] = "";

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		if (cfg_docs_parse(&d, "n.yaml", texts[i], strlen(texts[i]), err, sizeof(err)))
			fail_msg("\"%s\": %s", texts[i], err);
		assert_int_equal(d.n, 0);
	}
	/* between and after real documents; positions of later documents unchanged */
	snprintf(text, sizeof(text), "---\n%s---\n---\n# nothing\n---\n%s---\n", rr, rr);
	{
		char *second = strstr(text + 4 + strlen(rr), "metadata: {name: a}");

		assert_non_null(second);
		second[17] = 'b'; /* the second RouteRule is named b */
	}
	assert_int_equal(cfg_docs_parse(&d, "n.yaml", text, strlen(text), err, sizeof(err)), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.v[0].ir->pos.line, 2);
	assert_int_equal(d.v[1].ir->pos.line, 10);
	assert_string_equal(d.v[1].name, "b");
	cfg_docs_free(&d);
	/* a scalar that is not null is still not a document */
	assert_int_equal(cfg_docs_parse(&d, "n.yaml", "---\nhello\n", 10, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "n.yaml:2:1: document must be a mapping, not a scalar");
}

/* Kubernetes objects kept beside the rules are skipped and counted; Istio kinds
 * ringmesh does not implement are skipped or refused; typos are errors. */
static void test_mixed_files(void **state)
{
	struct cfg_docs d = {0};
	struct cfg_skipped sk = {0};
	char err[512] = "", buf[512];
	size_t len;
	char *k8s = cfgt_read("../samples/istio/bookinfo/platform/kube/bookinfo.yaml", &len);
	char *dr = cfgt_read(NET "destination-rule-all.yaml", NULL);
	char *gw = cfgt_read(NET "bookinfo-gateway.yaml", NULL);
	char *all;

	assert_non_null(k8s);
	assert_non_null(dr);
	assert_non_null(gw);
	assert_int_equal(cfg_docs_parse_counted(&d, &sk, "k.yaml", k8s, len, err, sizeof(err)), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(sk.total, 14);
	assert_string_equal(cfg_skipped_fmt(&sk, buf, sizeof(buf)),
			    "4 Service, 4 ServiceAccount, 6 Deployment");
	cfg_skipped_free(&sk);

	/* one file: Kubernetes objects, DestinationRules and the ingress Gateway with its
	 * gateway-only VirtualService (hosts "*", which ringmesh could not route) */
	assert_true(asprintf(&all, "%s---\n%s---\n%s", k8s, dr, gw) > 0);
	assert_int_equal(
	    cfg_docs_parse_counted(&d, &sk, "m.yaml", all, strlen(all), err, sizeof(err)), 0);
	assert_int_equal(d.n, 4);
	assert_int_equal(sk.total, 16);
	assert_string_equal(cfg_skipped_fmt(&sk, buf, sizeof(buf)),
			    "4 Service, 4 ServiceAccount, 6 Deployment; Istio configuration "
			    "ringmesh does not implement: 1 Gateway, 1 VirtualService bound to "
			    "gateways only");
	free(all);
	cfg_docs_free(&d);

	/* a typo of an Istio kind after the Kubernetes objects: an error at its line, and
	 * neither the documents nor the tally move */
	assert_true(asprintf(&all,
			     "%s---\napiVersion: networking.istio.io/v1\nkind: VirtualServce\n"
			     "metadata: {name: x}\nspec: {}\n",
			     k8s) > 0);
	assert_int_equal(
	    cfg_docs_parse_counted(&d, &sk, "t.yaml", all, strlen(all), err, sizeof(err)), -EINVAL);
	{
		unsigned lines = 0;

		for (const char *p = k8s; *p; p++)
			lines += *p == '\n';
		/* the kind is on the second line after the `---` that follows bookinfo.yaml */
		snprintf(buf, sizeof(buf),
			 "t.yaml:%u:7: unknown kind \"VirtualServce\" in networking.istio.io "
			 "(ringmesh reads VirtualService, DestinationRule, ServiceEntry, "
			 "WorkloadEntry)",
			 lines + 3);
		assert_string_equal(err, buf);
	}
	assert_int_equal(d.n, 0);
	assert_int_equal(sk.total, 16);
	assert_int_equal(sk.n, 5);
	free(all);
	cfg_skipped_free(&sk);
	free(k8s);
	free(dr);
	free(gw);
}

/* What each kind outside the consumed set becomes (text, expected error or NULL). */
static void test_kinds_outside(void **state)
{
	static const struct {
		const char *text, *err; /* err NULL: skipped */
	} cases[] = {
	    {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n", NULL},
	    {"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec: {}\n", NULL},
	    {"apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: c}\n", NULL},
	    {"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n", NULL},
	    {"apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: e}\n",
	     NULL},
	    {"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t}\n", NULL},
	    {"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service}\n", NULL},
	    {"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
	     "a}\n",
	     "x.yaml:2:7: AuthorizationPolicy (security.istio.io) is not implemented by "
	     "ringmesh: ringmesh cannot enforce it, so it is refused rather than skipped"},
	    {"apiVersion: config.istio.io/v1alpha2\nkind: RouteRul\nmetadata: {name: r}\n",
	     "x.yaml:2:7: unknown kind \"RouteRul\" in config.istio.io (ringmesh reads "
	     "RouteRule, DestinationPolicy)"},
	    {"apiVersion: telemetry.istio.io/v1\nkind: Telemetri\nmetadata: {name: t}\n",
	     "x.yaml:2:7: unknown kind \"Telemetri\" in telemetry.istio.io"},
	    {"apiVersion: v1\nkind: VirtualService\nmetadata: {name: v}\n",
	     "x.yaml:1:13: apiVersion \"v1\" does not serve kind VirtualService (use "
	     "networking.istio.io/v1)"},
	    {"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service}\n"
	     "- {apiVersion: networking.istio.io/v1, kind: VirtualService}\n",
	     "x.yaml:5:3: a List holding Istio objects is not read by ringmesh: give each "
	     "object its own document"},
	    {"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: h}\n"
	     "spec:\n  parentRefs:\n  - {name: ingress}\n",
	     NULL},
	    {"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: h}\n"
	     "spec:\n  parentRefs:\n  - {name: ingress}\n  - {group: \"\", kind: Service, name: "
	     "reviews}\n",
	     "x.yaml:7:5: HTTPRoute with a Service parent is mesh routing (Gateway API for mesh), "
	     "which ringmesh does not implement: write it as a VirtualService"},
	    {"apiVersion: networking.istio.io\nkind: VirtualServce\nmetadata: {name: v}\n",
	     "x.yaml:2:7: unknown kind \"VirtualServce\" in networking.istio.io (ringmesh reads "
	     "VirtualService, DestinationRule, ServiceEntry, WorkloadEntry)"},
	    {"kind: Service\nmetadata: {name: s}\n", "x.yaml:1:1: missing required field "
						     "\"apiVersion\""},
	    {"apiVersion: v1\nkind: ~\n", "x.yaml:1:1: missing required field \"kind\""},
	};
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg_docs d = {0};
		struct cfg_skipped sk = {0};
		int r = cfg_docs_parse_counted(&d, &sk, "x.yaml", cases[i].text,
					       strlen(cases[i].text), err, sizeof(err));

		if (!cases[i].err && (r || sk.total != 1 || d.n))
			fail_msg("case %zu: want skipped, got r=%d %s", i, r, r ? err : "");
		if (cases[i].err && (!r || strcmp(err, cases[i].err) || sk.total))
			fail_msg("case %zu:\n  want: %s\n  got:  %s", i, cases[i].err,
				 r ? err : "(accepted)");
		cfg_skipped_free(&sk);
		cfg_docs_free(&d);
	}
}

/* A VirtualService bound to "mesh" and to a gateway is ringmesh's (the sidecars' part);
 * trafficPolicy.tls mode DISABLE is what ringmesh does; TLS origination is refused. */
static void test_gateways_and_tls(void **state)
{
	static const char both[] =
	    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\n"
	    "spec:\n  hosts: [reviews]\n  gateways: [mesh, bookinfo-gateway]\n"
	    "  http:\n  - route:\n    - destination: {host: reviews}\n";
	static const char plain[] =
	    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
	    "spec:\n  host: reviews\n  trafficPolicy:\n    tls: {mode: DISABLE}\n";
	static const char mtls[] =
	    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
	    "spec:\n  host: reviews\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n";
	struct cfg_docs d = {0};
	char err[512] = "";

	assert_int_equal(cfg_docs_parse(&d, "g.yaml", both, strlen(both), err, sizeof(err)), 0);
	assert_int_equal(d.n, 1);
	assert_int_equal(cfg_docs_parse(&d, "g.yaml", plain, strlen(plain), err, sizeof(err)), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(cfg_compile(&d, cfg, err, sizeof(err)), 0);
	cfg_docs_free(&d);
	assert_int_equal(cfg_docs_parse(&d, "g.yaml", mtls, strlen(mtls), err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "g.yaml:7:17: tls.mode ISTIO_MUTUAL is not supported by ringmesh: "
				 "it sends plain text to upstream hosts (mode DISABLE)");
}

/* Every bookinfo networking sample, applied alone on top of the services and
 * destination-rule-all.yaml, has the outcome samples-EXPECT states: "ok", or the
 * error naming what ringmesh does not implement. Every file is listed. */
static void test_every_networking_sample(void **state)
{
	static const char *const base[] = {SE, NET "destination-rule-all.yaml", NULL};
	char *expect = cfgt_read("samples-EXPECT", NULL), *line, *save = NULL;
	struct cfg_docs store = {0};
	char err[512];
	int checked = 0, files = 0;
	DIR *dir;
	struct dirent *e;

	assert_non_null(expect);
	compile_list(base, &store);
	for (line = strtok_r(expect, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t'), rel[300];
		struct cfg_docs cur = {0}, add = {0};
		int r;

		if (line[0] == '#' || !tab)
			continue;
		*tab = 0;
		snprintf(rel, sizeof(rel), NET "%s", line);
		err[0] = 0;
		assert_int_equal(cfgt_load(&cur, base, err, sizeof(err)), 0);
		r = cfgt_parse(&add, rel, err, sizeof(err));
		if (!r) {
			assert_int_equal(cfg_docs_merge(&cur, &add), 0);
			r = cfg_compile(&cur, cfg, err, sizeof(err));
		}
		if (!strcmp(tab + 1, "ok")) {
			if (r)
				fail_msg("%s: want ok, got %s", line, err);
		} else if (!r || !strstr(err, tab + 1)) {
			fail_msg("%s:\n  want: %s\n  got:  %s", line, tab + 1, r ? err : "ok");
		}
		cfg_docs_free(&add);
		cfg_docs_free(&cur);
		checked++;
	}
	snprintf(err, sizeof(err), "%.400s/" NET, cfgt_dir());
	dir = opendir(err);
	assert_non_null(dir);
	while ((e = readdir(dir)))
		files += strstr(e->d_name, ".yaml") != NULL;
	closedir(dir);
	assert_int_equal(files, 21);
	assert_int_equal(checked, files);
	free(expect);
	cfg_docs_free(&store);
}

static int setup(void **state)
{
	cfg = calloc(1, sizeof(*cfg));
	return cfg ? 0 : -1;
}

static int teardown(void **state)
{
	cfg_free(cfg);
	free(cfg);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_null_documents),
	    cmocka_unit_test(test_bookinfo_tasks_modern),
	    cmocka_unit_test(test_bookinfo_tasks_old),
	    cmocka_unit_test(test_old_api_versions),
	    cmocka_unit_test(test_mixed_files),
	    cmocka_unit_test(test_kinds_outside),
	    cmocka_unit_test(test_gateways_and_tls),
	    cmocka_unit_test(test_every_networking_sample),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
