// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The sync's engine without a connection (user/k8s/k8s_sync.c): reflector events
 * into the cache, a Service + EndpointSlice + pods + DestinationRule +
 * VirtualService into documents that compile to the service, subsets and
 * weights a file gives; objects the compiler rejects alone (parse) and with the
 * others (cross-document: blamed by origin, or found by bisection when the
 * error names a file's document) skipped and recorded while the rest applies;
 * the stored documents of resources not listed yet kept; a re-list dropping
 * the objects it does not announce; the status file's text; the publish
 * schedule (a change after a quiet spell at once, a burst coalesced, a stream
 * published every debounce).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "k8s/k8s.h"
#include "k8s/k8s_sync.h"

static json_t *obj(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("bad test JSON %d:%d: %s", e.line, e.column, e.text);
	return j;
}

static void ev(struct k8s_sync *s, unsigned idx, int type, const char *text)
{
	json_t *j = text ? obj(text) : NULL;

	k8s_sync_event(s, idx, type, j, idx >= KS_VS && idx <= KS_WE ? "v1" : "v1");
	json_decref(j);
}

/* A complete list of resource idx with the given objects (NULL-terminated). */
static void list(struct k8s_sync *s, unsigned idx, ...)
{
	va_list ap;
	const char *t;

	ev(s, idx, K8S_EV_SYNC_BEGIN, NULL);
	va_start(ap, idx);
	while ((t = va_arg(ap, const char *)))
		ev(s, idx, K8S_EV_ADDED, t);
	va_end(ap);
	ev(s, idx, K8S_EV_SYNC_END, NULL);
}

#define SVC                                                                                        \
	"{\"metadata\":{\"name\":\"reviews\",\"namespace\":\"shop\",\"resourceVersion\":\"7\"},"   \
	"\"spec\":{\"clusterIP\":\"10.96.0.10\",\"ports\":[{\"name\":\"http\",\"port\":9080,"      \
	"\"protocol\":\"TCP\"}]}}"
#define SLICE                                                                                      \
	"{\"metadata\":{\"name\":\"reviews-1\",\"namespace\":\"shop\",\"labels\":{"                \
	"\"kubernetes.io/service-name\":\"reviews\"}},\"addressType\":\"IPv4\",\"ports\":[{"       \
	"\"name\":\"http\",\"port\":9080}],\"endpoints\":["                                        \
	"{\"addresses\":[\"10.1.0.1\"],\"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"shop\","    \
	"\"name\":\"r1\"}},"                                                                       \
	"{\"addresses\":[\"10.1.0.2\"],\"conditions\":{\"ready\":true},\"targetRef\":{\"kind\":"   \
	"\"Pod\",\"namespace\":\"shop\",\"name\":\"r2\"}},"                                        \
	"{\"addresses\":[\"10.1.0.3\"],\"conditions\":{\"ready\":false}}]}"
#define POD(name, v)                                                                               \
	"{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"shop\",\"uid\":\"u-" name "\","      \
	"\"labels\":{\"app\":\"reviews\",\"version\":\"" v "\"}}}"
#define DR                                                                                         \
	"{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\",\"metadata\":{"   \
	"\"name\":\"reviews\",\"namespace\":\"shop\"},\"spec\":{\"host\":\"reviews\",\"subsets\":" \
	"[{\"name\":\"v1\",\"labels\":{\"version\":\"v1\"}},{\"name\":\"v2\",\"labels\":{"         \
	"\"version\":\"v2\"}}]}}"
#define VS(name, host, subset, w)                                                                  \
	"{\"metadata\":{\"name\":\"" name                                                          \
	"\",\"namespace\":\"shop\"},\"spec\":{\"hosts\":[\"" host                                  \
	"\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\",\"subset\":\"v1\"},"     \
	"\"weight\":" w "},{\"destination\":{\"host\":\"reviews\",\"subset\":\"" subset "\"},"     \
	"\"weight\":30}]}]}}"

static struct k8s_sync *new_sync(void)
{
	struct k8s_sync_opts o = {.pin_dir = "/sys/fs/bpf/x", .node = "n1"};
	char err[256];
	struct k8s_sync *s = k8s_sync_new(&o, err, sizeof(err));

	assert_non_null(s);
	return s;
}

/* Everything but the Istio kinds listed empty. */
static void base_lists(struct k8s_sync *s)
{
	list(s, KS_SERVICE, SVC, NULL);
	list(s, KS_SLICE, SLICE, NULL);
	list(s, KS_PODMETA, POD("r1", "v1"), POD("r2", "v2"), NULL);
	for (unsigned i = KS_SE; i <= KS_DP; i++)
		list(s, i, NULL);
}

static int compile(const struct cfg_docs *base, const struct cfg_docs *out, struct rm_cfg *cfg)
{
	struct cfg_docs all = {0};
	char err[512];
	int r;

	all.v = calloc(base->n + out->n + 1, sizeof(*all.v));
	for (size_t i = 0; i < base->n; i++)
		all.v[all.n++] = base->v[i];
	for (size_t i = 0; i < out->n; i++)
		all.v[all.n++] = out->v[i];
	r = cfg_compile(&all, cfg, err, sizeof(err));
	if (r)
		print_message("compile: %s\n", err);
	free(all.v);
	return r;
}

static bool has_origin(const struct cfg_docs *d, const char *origin)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].origin, origin))
			return true;
	return false;
}

static void test_docs(void **state)
{
	struct k8s_sync *s = new_sync();
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	struct rm_cfg cfg = {0};
	char err[512];
	int si, r;

	base_lists(s);
	list(s, KS_DR, DR, NULL);
	list(s, KS_VS, VS("reviews", "reviews", "v2", "70"), NULL);
	assert_true(k8s_sync_dirty(s));
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_false(k8s_sync_dirty(s));
	assert_int_equal(out->n, 3);
	assert_true(has_origin(out, "k8s:Service/shop/reviews"));
	assert_true(has_origin(out, "k8s:DestinationRule/shop/reviews"));
	assert_true(has_origin(out, "k8s:VirtualService/shop/reviews"));
	assert_int_equal(compile(&stored, out, &cfg), 0);
	si = cfg_service_find(&cfg, "reviews.shop.svc.cluster.local");
	assert_true(si >= 0);
	/* the unready endpoint is left out; the pods' labels make the subsets */
	assert_int_equal(cfg.services[si].endpoint_count, 2);
	assert_int_equal(cfg.services[si].subset_count, 2);
	assert_int_equal(cfg.subsets[cfg.services[si].subset_first].member_count, 1);
	assert_int_equal(cfg.services[si].rule_count, 1);
	r = cfg_rule_find(&cfg, "reviews", "shop");
	assert_true(r >= 0);
	assert_int_equal(cfg.rules[r].target_count, 2);
	assert_int_equal(cfg.targets[cfg.rules[r].target_first].weight, 70);
	assert_false(k8s_sync_skipped(s, 0, &(const char *){0}, &(const char *){0},
				      &(const char *){0}, &(const char *){0}));
	cfg_free(&cfg);

	/* built again after a change: the unchanged objects' documents are the
	 * same parsed ones, the changed one is parsed anew */
	{
		const struct cfg_doc_ir *dr = NULL, *vs = NULL;

		for (size_t i = 0; i < out->n; i++) {
			if (!strcmp(out->v[i].origin, "k8s:DestinationRule/shop/reviews"))
				dr = out->v[i].ir;
			if (!strcmp(out->v[i].origin, "k8s:VirtualService/shop/reviews"))
				vs = out->v[i].ir;
		}
		ev(s, KS_VS, K8S_EV_MODIFIED, VS("reviews", "reviews", "v2", "60"));
		assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
		assert_int_equal(out->n, 3);
		for (size_t i = 0; i < out->n; i++) {
			if (!strcmp(out->v[i].origin, "k8s:DestinationRule/shop/reviews"))
				assert_ptr_equal(out->v[i].ir, dr);
			if (!strcmp(out->v[i].origin, "k8s:VirtualService/shop/reviews"))
				assert_ptr_not_equal(out->v[i].ir, vs);
		}
	}

	/* a pod's labels changed: its Service's endpoints follow (v2 -> v1) */
	ev(s, KS_PODMETA, K8S_EV_MODIFIED, POD("r2", "v1"));
	assert_true(k8s_sync_dirty(s));
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(compile(&stored, out, &cfg), 0);
	si = cfg_service_find(&cfg, "reviews.shop.svc.cluster.local");
	assert_true(si >= 0);
	assert_int_equal(cfg.subsets[cfg.services[si].subset_first].member_count, 2);
	assert_int_equal(cfg.subsets[cfg.services[si].subset_first + 1].member_count, 0);
	cfg_free(&cfg);
	/* and the slice losing an endpoint */
	ev(s, KS_SLICE, K8S_EV_MODIFIED,
	   "{\"metadata\":{\"name\":\"reviews-1\",\"namespace\":\"shop\",\"labels\":{"
	   "\"kubernetes.io/service-name\":\"reviews\"}},\"addressType\":\"IPv4\",\"ports\":[{"
	   "\"name\":\"http\",\"port\":9080}],\"endpoints\":[{\"addresses\":[\"10.1.0.1\"]}]}");
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(compile(&stored, out, &cfg), 0);
	si = cfg_service_find(&cfg, "reviews.shop.svc.cluster.local");
	assert_int_equal(cfg.services[si].endpoint_count, 1);
	cfg_free(&cfg);

	/* a MODIFIED that changes only the resourceVersion changes nothing */
	ev(s, KS_SERVICE, K8S_EV_MODIFIED,
	   "{\"metadata\":{\"name\":\"reviews\",\"namespace\":\"shop\",\"resourceVersion\":\"9\"},"
	   "\"spec\":{\"clusterIP\":\"10.96.0.10\",\"ports\":[{\"name\":\"http\",\"port\":9080,"
	   "\"protocol\":\"TCP\"}]}}");
	assert_false(k8s_sync_dirty(s));
	/* DELETED removes the rule */
	ev(s, KS_VS, K8S_EV_DELETED,
	   "{\"metadata\":{\"name\":\"reviews\",\"namespace\":\"shop\"}}");
	assert_true(k8s_sync_dirty(s));
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 2);
	assert_false(has_origin(out, "k8s:VirtualService/shop/reviews"));
	k8s_sync_free(s);
}

/* A cluster of domain corp.local: the Service is reviews.shop.svc.corp.local and the
 * rules' short hosts resolve there too, so the VirtualService routes the Service
 * (with cluster.local for its short names it would make a service of its own). */
static void test_domain(void **state)
{
	struct k8s_sync_opts o = {.pin_dir = "/sys/fs/bpf/x", .node = "n1", .domain = "corp.local"};
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	struct rm_cfg cfg = {0};
	char err[512];
	struct k8s_sync *s;
	int si;

	o.domain = "Corp";
	assert_null(k8s_sync_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "not a DNS name"));
	o.domain = "corp.local";
	s = k8s_sync_new(&o, err, sizeof(err));
	assert_non_null(s);
	base_lists(s);
	list(s, KS_DR, DR, NULL);
	list(s, KS_VS, VS("reviews", "reviews", "v2", "70"), NULL);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(compile(&stored, out, &cfg), 0);
	assert_int_equal(cfg.n_services, 1);
	si = cfg_service_find(&cfg, "reviews.shop.svc.corp.local");
	assert_true(si >= 0);
	assert_int_equal(cfg.services[si].rule_count, 1);
	assert_int_equal(cfg.services[si].subset_count, 2);
	cfg_free(&cfg);
	k8s_sync_free(s);
	assert_int_equal(cfg_set_domain(NULL), 0); /* the other tests' */
}

#define SVC_WEB                                                                                    \
	"{\"metadata\":{\"name\":\"front\",\"namespace\":\"web\"},\"spec\":{\"clusterIP\":"        \
	"\"10.96.0.20\",\"ports\":[{\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\"}]}}"
#define SLICE_WEB                                                                                  \
	"{\"metadata\":{\"name\":\"front-1\",\"namespace\":\"web\",\"labels\":{"                   \
	"\"kubernetes.io/service-name\":\"front\"}},\"addressType\":\"IPv4\",\"ports\":[{"         \
	"\"name\":\"http\",\"port\":80}],\"endpoints\":[{\"addresses\":[\"10.2.0.1\"]}]}"

/* Services shop/reviews and web/front with their slices and pods, every other
 * kind listed empty. */
static void two_services(struct k8s_sync *s)
{
	list(s, KS_SERVICE, SVC, SVC_WEB, NULL);
	list(s, KS_SLICE, SLICE, SLICE_WEB, NULL);
	list(s, KS_PODMETA, POD("r1", "v1"), POD("r2", "v2"), NULL);
	for (unsigned i = KS_VS; i <= KS_DP; i++)
		list(s, i, NULL);
}

static const struct cfg_doc_ir *ir_of(const struct cfg_docs *d, const char *origin)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].origin, origin))
			return d->v[i].ir;
	return NULL;
}

/* A Service's document is made again only when an event touched its namespace; a
 * deleted Service's goes, and comes back with it. */
static void test_service_texts(void **state)
{
	struct k8s_sync *s = new_sync();
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	const struct cfg_doc_ir *shop, *web;
	char err[512];

	two_services(s);
	list(s, KS_DR, DR, NULL);
	list(s, KS_VS, VS("reviews", "reviews", "v2", "70"), NULL);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 4);
	shop = ir_of(out, "k8s:Service/shop/reviews");
	web = ir_of(out, "k8s:Service/web/front");
	assert_non_null(shop);
	assert_non_null(web);

	/* a VirtualService edited: both Services' documents are the same parsed ones */
	ev(s, KS_VS, K8S_EV_MODIFIED, VS("reviews", "reviews", "v2", "60"));
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_ptr_equal(ir_of(out, "k8s:Service/shop/reviews"), shop);
	assert_ptr_equal(ir_of(out, "k8s:Service/web/front"), web);

	/* a pod of shop relabelled: shop's Service made again (its text changed), web's not */
	ev(s, KS_PODMETA, K8S_EV_MODIFIED, POD("r2", "v1"));
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_non_null(ir_of(out, "k8s:Service/shop/reviews"));
	assert_ptr_not_equal(ir_of(out, "k8s:Service/shop/reviews"), shop);
	assert_ptr_equal(ir_of(out, "k8s:Service/web/front"), web);

	/* web's Service deleted: its document goes; added again: it is back */
	ev(s, KS_SERVICE, K8S_EV_DELETED,
	   "{\"metadata\":{\"name\":\"front\",\"namespace\":\"web\"}}");
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 3);
	assert_null(ir_of(out, "k8s:Service/web/front"));
	assert_non_null(ir_of(out, "k8s:Service/shop/reviews"));
	ev(s, KS_SERVICE, K8S_EV_ADDED, SVC_WEB);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 4);
	assert_non_null(ir_of(out, "k8s:Service/web/front"));
	k8s_sync_free(s);
}

static void test_bad_objects(void **state)
{
	struct k8s_sync *s = new_sync();
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	struct rm_cfg cfg = {0};
	const char *kind, *ns, *name, *error;
	char err[512];
	FILE *log;
	char *logtext = NULL;
	size_t loglen = 0;

	base_lists(s);
	list(s, KS_DR, DR, NULL);
	/* good; a subset no DestinationRule defines (only the set finds it); a weight
	 * that is not a number (the object alone is rejected) */
	list(s, KS_VS, VS("a-good", "reviews", "v2", "70"), VS("b-subset", "other", "v9", "70"),
	     VS("c-weight", "third", "v2", "\"x\""), NULL);
	log = open_memstream(&logtext, &loglen);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, log, err, sizeof(err)), 0);
	fclose(log);
	assert_int_equal(out->n, 3);
	assert_true(has_origin(out, "k8s:VirtualService/shop/a-good"));
	assert_int_equal(compile(&stored, out, &cfg), 0);
	cfg_free(&cfg);
	/* each skipped with the compiler's message, logged naming ns/name */
	assert_true(k8s_sync_skipped(s, 0, &kind, &ns, &name, &error));
	assert_string_equal(kind, "VirtualService");
	assert_string_equal(ns, "shop");
	assert_string_equal(name, "c-weight");
	assert_non_null(strstr(error, "k8s:VirtualService/shop/c-weight:"));
	assert_true(k8s_sync_skipped(s, 1, &kind, &ns, &name, &error));
	assert_string_equal(name, "b-subset");
	assert_non_null(strstr(error, "\"v9\""));
	assert_false(k8s_sync_skipped(s, 2, &kind, &ns, &name, &error));
	assert_non_null(strstr(logtext, "sync: skipped VirtualService shop/b-subset: "));
	assert_non_null(strstr(logtext, "sync: skipped VirtualService shop/c-weight: "));
	free(logtext);

	/* logged once: the same rejection again is not */
	logtext = NULL;
	log = open_memstream(&logtext, &loglen);
	ev(s, KS_VS, K8S_EV_MODIFIED, VS("a-good", "reviews", "v2", "60"));
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, log, err, sizeof(err)), 0);
	fclose(log);
	assert_int_equal(out->n, 3);
	assert_string_equal(logtext, "");
	free(logtext);

	/* without validation only the object rejected alone is left out; validating
	 * after drops the one the set rejects */
	ev(s, KS_VS, K8S_EV_MODIFIED, VS("a-good", "reviews", "v2", "50"));
	assert_int_equal(k8s_sync_docs(s, &stored, &out, false, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 4);
	assert_true(has_origin(out, "k8s:VirtualService/shop/b-subset"));
	assert_int_not_equal(compile(&stored, out, &cfg), 0);
	assert_int_equal(k8s_sync_validate(s, &stored, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 3);
	assert_false(has_origin(out, "k8s:VirtualService/shop/b-subset"));
	assert_true(k8s_sync_skipped(s, 1, &kind, &ns, &name, &error));
	assert_string_equal(name, "b-subset");
	assert_int_equal(compile(&stored, out, &cfg), 0);
	cfg_free(&cfg);
	k8s_sync_free(s);
}

/* A file declares the host the Service does: whichever document the compiler
 * names, the sync's object goes and the file's stays. */
static void test_conflict_with_file(void **state)
{
	static const char file[] = "apiVersion: networking.istio.io/v1\n"
				   "kind: ServiceEntry\n"
				   "metadata: {name: by-hand, namespace: shop}\n"
				   "spec:\n"
				   "  hosts: [reviews.shop.svc.cluster.local]\n"
				   "  addresses: [10.96.0.99]\n"
				   "  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
				   "  resolution: STATIC\n"
				   "  endpoints: [{address: 10.2.0.1}]\n";
	struct k8s_sync *s = new_sync();
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	struct rm_cfg cfg = {0};
	const char *kind, *ns, *name, *error;
	char err[512];

	assert_int_equal(cfg_docs_parse(&stored, "hand.yaml", file, strlen(file), err, sizeof(err)),
			 0);
	base_lists(s);
	list(s, KS_DR, NULL);
	list(s, KS_VS, NULL);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(stored.n, 1);
	assert_int_equal(out->n, 0);
	assert_true(k8s_sync_skipped(s, 0, &kind, &ns, &name, &error));
	assert_string_equal(kind, "Service");
	assert_string_equal(name, "reviews");
	assert_int_equal(compile(&stored, out, &cfg), 0);
	cfg_free(&cfg);
	cfg_docs_free(&stored);
	k8s_sync_free(s);
}

#define SE_REVIEWS                                                                                 \
	"{\"metadata\":{\"name\":\"reviews\",\"namespace\":\"shop\"},\"spec\":{\"hosts\":"         \
	"[\"reviews.example.com\"],\"addresses\":[\"10.96.2.2\"],\"ports\":[{\"number\":80,"       \
	"\"name\":\"http\",\"protocol\":\"HTTP\"}],\"resolution\":\"STATIC\",\"endpoints\":"       \
	"[{\"address\":\"10.4.0.1\"}]}}"

/* While no Service, slice or pod changes, the Services' documents move from one
 * build to the next as a block: through Istio objects added before them (their
 * place shifts), edited, and an Istio ServiceEntry that takes a Service's name
 * (the Service skipped, back once it goes). */
static void test_service_block(void **state)
{
	struct k8s_sync *s = new_sync();
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	const struct cfg_doc_ir *shop, *web;
	const char *kind, *ns, *name, *error;
	char err[512];

	two_services(s);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 2);
	shop = ir_of(out, "k8s:Service/shop/reviews");
	web = ir_of(out, "k8s:Service/web/front");
	assert_non_null(shop);
	assert_non_null(web);
	ev(s, KS_DR, K8S_EV_ADDED, DR);
	for (int round = 0; round < 3; round++) {
		ev(s, KS_VS, round ? K8S_EV_MODIFIED : K8S_EV_ADDED,
		   round & 1 ? VS("reviews", "reviews", "v2", "60")
			     : VS("reviews", "reviews", "v2", "70"));
		assert_int_equal(k8s_sync_docs(s, &stored, &out, false, NULL, err, sizeof(err)), 0);
		assert_int_equal(out->n, 4);
		assert_true(has_origin(out, "k8s:VirtualService/shop/reviews"));
		assert_true(has_origin(out, "k8s:DestinationRule/shop/reviews"));
		assert_ptr_equal(ir_of(out, "k8s:Service/shop/reviews"), shop);
		assert_ptr_equal(ir_of(out, "k8s:Service/web/front"), web);
		assert_false(k8s_sync_skipped(s, 0, &kind, &ns, &name, &error));
	}
	/* an Istio ServiceEntry named as shop's Service: that one skipped */
	ev(s, KS_VS, K8S_EV_DELETED,
	   "{\"metadata\":{\"name\":\"reviews\",\"namespace\":\"shop\"}}");
	ev(s, KS_DR, K8S_EV_DELETED,
	   "{\"metadata\":{\"name\":\"reviews\",\"namespace\":\"shop\"}}");
	ev(s, KS_SE, K8S_EV_ADDED, SE_REVIEWS);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, false, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 2);
	assert_true(has_origin(out, "k8s:ServiceEntry/shop/reviews"));
	assert_null(ir_of(out, "k8s:Service/shop/reviews"));
	assert_ptr_equal(ir_of(out, "k8s:Service/web/front"), web);
	assert_true(k8s_sync_skipped(s, 0, &kind, &ns, &name, &error));
	assert_string_equal(kind, "Service");
	/* and again (the block of the last build lacks it: not moved as it is) */
	assert_int_equal(k8s_sync_docs(s, &stored, &out, false, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 2);
	assert_null(ir_of(out, "k8s:Service/shop/reviews"));
	/* the ServiceEntry gone: the Service is back (parsed again), then moves as a
	 * block again */
	ev(s, KS_SE, K8S_EV_DELETED,
	   "{\"metadata\":{\"name\":\"reviews\",\"namespace\":\"shop\"}}");
	for (int round = 0; round < 2; round++) {
		assert_int_equal(k8s_sync_docs(s, &stored, &out, false, NULL, err, sizeof(err)), 0);
		assert_int_equal(out->n, 2);
		if (!round)
			shop = ir_of(out, "k8s:Service/shop/reviews");
		assert_non_null(shop);
		assert_ptr_equal(ir_of(out, "k8s:Service/shop/reviews"), shop);
		assert_ptr_equal(ir_of(out, "k8s:Service/web/front"), web);
		assert_false(k8s_sync_skipped(s, 0, &kind, &ns, &name, &error));
	}
	k8s_sync_free(s);
}

/* An Istio ServiceEntry named as a Service: one document of each kind/ns/name,
 * the Istio object's. */
static void test_same_name(void **state)
{
	struct k8s_sync *s = new_sync();
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	const char *kind, *ns, *name, *error;
	char err[512];

	base_lists(s);
	list(s, KS_DR, NULL);
	list(s, KS_VS, NULL);
	list(s, KS_SE,
	     "{\"metadata\":{\"name\":\"reviews\",\"namespace\":\"shop\"},\"spec\":{\"hosts\":"
	     "[\"reviews.example.com\"],\"addresses\":[\"10.96.2.2\"],\"ports\":[{\"number\":80,"
	     "\"name\":\"http\",\"protocol\":\"HTTP\"}],\"resolution\":\"STATIC\",\"endpoints\":"
	     "[{\"address\":\"10.4.0.1\"}]}}",
	     NULL);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(out->n, 1);
	assert_true(has_origin(out, "k8s:ServiceEntry/shop/reviews"));
	assert_true(k8s_sync_skipped(s, 0, &kind, &ns, &name, &error));
	assert_string_equal(kind, "Service");
	assert_non_null(
	    strstr(error, "another object from the API declares ServiceEntry shop/reviews"));
	k8s_sync_free(s);
}

/* Stored documents of resources not listed yet stay; once listed, the list rules. */
static void test_carry_over(void **state)
{
	static const char vs[] = "apiVersion: networking.istio.io/v1\n"
				 "kind: VirtualService\n"
				 "metadata: {name: old, namespace: shop}\n"
				 "spec:\n"
				 "  hosts: [reviews]\n"
				 "  http: [{route: [{destination: {host: reviews}}]}]\n";
	static const char file[] = "apiVersion: networking.istio.io/v1\n"
				   "kind: ServiceEntry\n"
				   "metadata: {name: ext, namespace: shop}\n"
				   "spec:\n"
				   "  hosts: [ext.example.com]\n"
				   "  addresses: [10.96.1.1]\n"
				   "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
				   "  resolution: STATIC\n"
				   "  endpoints: [{address: 10.3.0.1}]\n";
	struct k8s_sync *s = new_sync();
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	char err[512];

	base_lists(s);
	assert_int_equal(cfg_docs_parse(&stored, "k8s:VirtualService/shop/old", vs, strlen(vs), err,
					sizeof(err)),
			 0);
	assert_int_equal(cfg_docs_parse(&stored, "ext.yaml", file, strlen(file), err, sizeof(err)),
			 0);
	/* VirtualServices not listed: the stored one stays */
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(stored.n, 1);
	assert_string_equal(stored.v[0].origin, "ext.yaml");
	assert_true(has_origin(out, "k8s:VirtualService/shop/old"));
	assert_true(has_origin(out, "k8s:Service/shop/reviews"));
	cfg_docs_free(&stored);

	/* listed empty (or the group absent): gone */
	assert_int_equal(cfg_docs_parse(&stored, "k8s:VirtualService/shop/old", vs, strlen(vs), err,
					sizeof(err)),
			 0);
	k8s_sync_absent(s, KS_VS);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	assert_int_equal(stored.n, 0);
	assert_false(has_origin(out, "k8s:VirtualService/shop/old"));
	cfg_docs_free(&stored);
	k8s_sync_free(s);
}

/* A re-list (after a 410) announces what exists: the rest is gone at its end,
 * and not before. */
static void test_relist(void **state)
{
	struct k8s_sync *s = new_sync();

	list(s, KS_VS, VS("a", "reviews", "v2", "70"), VS("b", "reviews", "v2", "70"), NULL);
	assert_int_equal(k8s_sync_count(s, KS_VS), 2);
	ev(s, KS_VS, K8S_EV_SYNC_BEGIN, NULL);
	ev(s, KS_VS, K8S_EV_ADDED, VS("b", "reviews", "v2", "70"));
	assert_int_equal(k8s_sync_count(s, KS_VS), 2);
	ev(s, KS_VS, K8S_EV_SYNC_END, NULL);
	assert_int_equal(k8s_sync_count(s, KS_VS), 1);
	k8s_sync_free(s);
}

static void test_status(void **state)
{
	struct k8s_sync *s = new_sync();
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	char err[512], path[] = "/tmp/test_k8s_sync.XXXXXX", *text, *shown = NULL;
	size_t len = 0;
	json_t *j;
	FILE *f;
	int fd;

	k8s_sync_status_path("/sys/fs/bpf/ringmesh", err, sizeof(err));
	assert_string_equal(err, "/run/ringmesh/sync-sys_fs_bpf_ringmesh.json");
	k8s_sync_status_path("/sys/fs/bpf//rm-x/", err, sizeof(err));
	assert_string_equal(err, "/run/ringmesh/sync-sys_fs_bpf_rm-x.json");

	base_lists(s);
	list(s, KS_DR, DR, NULL);
	list(s, KS_VS, VS("bad", "other", "v9", "70"), NULL);
	assert_int_equal(k8s_sync_docs(s, &stored, &out, true, NULL, err, sizeof(err)), 0);
	text = k8s_sync_status_text(s, 1000000000000ull);
	assert_non_null(text);
	j = json_loads(text, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), getpid());
	assert_int_equal(json_array_size(json_object_get(j, "skipped")), 1);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(j, "skipped"), 0), "name")),
			    "bad");
	assert_int_equal(json_array_size(json_object_get(j, "kinds")), KS_N);
	json_decref(j);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	/* written at t=1000 s; read 3 s later by this (live) pid: running */
	f = open_memstream(&shown, &len);
	assert_int_equal(
	    k8s_sync_status_show(path, NULL, f, false, 1003000000000ull, err, sizeof(err)), 0);
	fclose(f);
	assert_non_null(strstr(shown, "sync running (pid "));
	assert_non_null(strstr(shown, "node n1, API unreachable"));
	assert_non_null(strstr(shown, "written 3.0 s ago"));
	assert_non_null(strstr(shown, "skipped        1 object:\n    VirtualService shop/bad: "));
	assert_non_null(strstr(shown, "  Service "));
	free(shown);
	/* 20 s later: not running any more */
	shown = NULL;
	f = open_memstream(&shown, &len);
	assert_int_equal(
	    k8s_sync_status_show(path, NULL, f, true, 1020000000000ull, err, sizeof(err)), 0);
	fclose(f);
	assert_non_null(strstr(
	    shown, "  sync           not running, API unreachable, 0 documents (generation 0)"));
	assert_non_null(strstr(shown, "1 skipped\n"));
	free(shown);
	unlink(path);
	assert_int_equal(k8s_sync_status_show(path, NULL, stdout, false, 0, err, sizeof(err)),
			 -ENOENT);
	free(text);
	k8s_sync_free(s);
}

#define MSEC 1000000ull

/*
 * The publish schedule against a simulated loop at 1 ms resolution: changes at
 * the given times (ms from 1,000 on, sorted), each publish taking pub_ms;
 * returns the publishes, with each change's wait (change to the publish that
 * covers it) in wait[] and each publish's start in at[].
 */
static unsigned simulate(const unsigned *ch, unsigned n, unsigned pub_ms, unsigned *wait,
			 uint64_t *at, unsigned max_pub)
{
	struct k8s_debounce d = {0};
	unsigned next = 0, covered = 0, pubs = 0;
	uint64_t t;

	for (t = 1000; next < n || d.pending; t++) {
		uint64_t now = t * MSEC;

		while (next < n && 1000 + ch[next] <= t) {
			k8s_debounce_change(&d, now);
			next++;
		}
		if (d.pending && now >= k8s_debounce_due(&d)) {
			assert_true(pubs < max_pub);
			at[pubs++] = t;
			for (; covered < next; covered++) /* what the publish read */
				wait[covered] = (unsigned)(t - (1000 + ch[covered]));
			/* changes during the publish are seen after it */
			t += pub_ms;
			k8s_debounce_done(&d, t * MSEC);
		}
		assert_true(t < 100000);
	}
	assert_int_equal(covered, n);
	return pubs;
}

static void test_debounce(void **state)
{
	struct k8s_debounce d = {0};
	unsigned ch[400], wait[400];
	uint64_t at[400];
	unsigned n;

	assert_int_equal(k8s_debounce_due(&d), UINT64_MAX);
	/* the first change ever, and one after a quiet spell: due at once */
	k8s_debounce_change(&d, 5 * MSEC);
	assert_int_equal(k8s_debounce_due(&d), 5 * MSEC);
	k8s_debounce_done(&d, 6 * MSEC);
	assert_int_equal(k8s_debounce_due(&d), UINT64_MAX);
	k8s_debounce_change(&d, 500 * MSEC);
	k8s_debounce_change(&d, 501 * MSEC); /* read with it: the same publish */
	assert_int_equal(k8s_debounce_due(&d), 500 * MSEC);
	k8s_debounce_done(&d, 510 * MSEC);
	/* soon after a publish: waits for the debounce from its end */
	k8s_debounce_change(&d, 520 * MSEC);
	assert_int_equal(k8s_debounce_due(&d), (510 + K8S_SYNC_DEBOUNCE_MS) * MSEC);

	/* quiet: three changes 1 s apart are three publishes, none waits */
	ch[0] = 0, ch[1] = 1000, ch[2] = 2000;
	assert_int_equal(simulate(ch, 3, 20, wait, at, 3), 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(wait[i], 0);

	/* a burst: a change, then 20 more in the next 30 ms: the first alone at
	 * once, the rest coalesced into one publish the debounce after it */
	for (n = 0; n < 21; n++)
		ch[n] = n ? 10 + n : 0;
	assert_int_equal(simulate(ch, n, 5, wait, at, 2), 2);
	assert_int_equal(wait[0], 0);
	assert_int_equal(at[1], at[0] + 5 + K8S_SYNC_DEBOUNCE_MS);
	for (unsigned i = 1; i < n; i++)
		assert_true(wait[i] <= 5 + K8S_SYNC_DEBOUNCE_MS);

	/* a stream: a change every 5 ms for 2 s still publishes, every debounce +
	 * publish time, and no change waits longer than that */
	for (n = 0; n < 400; n++)
		ch[n] = 5 * n;
	unsigned pubs = simulate(ch, n, 10, wait, at, 400);
	assert_true(pubs >= 2000 / (10 + K8S_SYNC_DEBOUNCE_MS) - 1);
	assert_true(pubs <= 2000 / (10 + K8S_SYNC_DEBOUNCE_MS) + 2);
	for (unsigned i = 0; i < n; i++)
		assert_true(wait[i] <= 10 + K8S_SYNC_DEBOUNCE_MS);
	for (unsigned i = 1; i < pubs; i++)
		assert_int_equal(at[i] - at[i - 1], 10 + K8S_SYNC_DEBOUNCE_MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_docs),
	    cmocka_unit_test(test_domain),
	    cmocka_unit_test(test_service_texts),
	    cmocka_unit_test(test_bad_objects),
	    cmocka_unit_test(test_conflict_with_file),
	    cmocka_unit_test(test_carry_over),
	    cmocka_unit_test(test_relist),
	    cmocka_unit_test(test_same_name),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_debounce),
	    cmocka_unit_test(test_service_block),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
