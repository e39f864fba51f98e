/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * In-process timing of what `ringmesh apply` does besides touching the maps:
 * parse the file, merge over the stored sources (cfg_src_merge), compile, pack
 * the sources, compare with the previous half: the CPU part of an apply without
 * the maps. Built by tools/bench/cfg.sh --inproc.
 * Prints "first=MS unchanged=MS changed=MS" (CPU-bound wall ms, one run each).
 * Then the per-request routing cost of the daemon's router built from the result:
 * route_find_service + route_decide + route_pool for GET /api (no headers), ns per
 * request, to the last service of the table again and again (route_one_ns) and to
 * every service in a shuffled order (route_all_ns: the table's size in the caches).
 * Usage: cfgbench FILE CHANGED_FILE
 *        cfgbench --route FILE   (one apply, then the routing cost alone)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cfg.h"
#include "policy/route.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = 0;
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* One apply of path over *src (updated); *cfg holds the previous half. */
static int apply(const char *path, struct rm_cfg *cfg, struct rm_cfg *prev, struct rm_cfg_src *src,
		 struct rm_cfg_src *nsrc, double *ms, bool *changed)
{
	struct cfg_docs add = {0}, cur = {0};
	char err[512] = "";
	size_t len = 0;
	char *text = slurp(path, &len);
	double t0 = now_ms();
	int r;

	if (!text)
		return -errno;
	r = cfg_docs_parse(&add, path, text, len, err, sizeof(err));
	if (!r)
		r = cfg_src_merge(src, &add, &cur, err, sizeof(err));
	if (!r)
		r = cfg_compile(&cur, cfg, err, sizeof(err));
	if (!r)
		r = cfg_src_pack(&cur, nsrc, err, sizeof(err));
	if (!r) {
		struct rm_cfg t;
		struct rm_cfg_src ts;

		*changed = !cfg_equal(cfg, prev) || nsrc->used != src->used ||
			   memcmp(nsrc->text, src->text, nsrc->used);
		/* the new one becomes the previous one: swap, nothing leaks */
		t = *prev;
		*prev = *cfg;
		*cfg = t;
		ts = *src;
		*src = *nsrc;
		*nsrc = ts;
	}
	*ms = now_ms() - t0;
	if (r)
		fprintf(stderr, "cfgbench: %s\n", err);
	cfg_docs_free(&add);
	cfg_docs_free(&cur);
	free(text);
	return r;
}

#define ROUTE_ITERS 2000000u

/* ns per routed request over ROUTE_ITERS requests, to the services in order[] (n of
 * them, repeated); -1 when the table cannot be built or a request is not forwarded */
static double route_ns(const struct route_table *t, const struct rm_cfg *cfg, const uint32_t *order,
		       uint32_t n)
{
	static const struct route_hdrs none = {0};
	struct route_req req = {
	    .method = {"GET", 3},
	    .path = {"/api", 4},
	    .authority = {"svc", 3},
	    .scheme = {"http", 4},
	    .hdr_get = route_hdrs_get,
	    .hdr_ctx = &none,
	};
	uint64_t sink = 0;
	double t0 = now_ms();

	for (uint32_t i = 0; i < ROUTE_ITERS; i++) {
		const struct rm_cfg_service *sv = &cfg->services[order[i % n]];
		struct route_decision d;
		uint32_t pool, lb;
		const uint32_t *m;
		size_t nm;
		int s = route_find_service(t, &sv->addrs[0], sv->ports[0].port);

		if (s < 0 || route_decide(t, (uint32_t)s, &req, i * 0x9e3779b97f4a7c15ull, &d) ||
		    d.outcome != ROUTE_FORWARD ||
		    route_pool(t, d.target_service, d.target_subset, &pool, &m, &nm, &lb))
			return -1;
		sink += pool + nm;
	}
	__asm__ volatile("" : : "r"(sink));
	return (now_ms() - t0) * 1e6 / ROUTE_ITERS;
}

static int route_bench(const struct rm_cfg *cfg, double *one, double *all)
{
	struct route_table *t;
	uint32_t n = cfg->n_services, last = n - 1, *order;
	char err[256];

	if (!n || route_build(cfg, &t, err, sizeof(err)))
		return -1;
	order = malloc(n * sizeof(*order));
	if (!order) {
		route_free(t);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	srand(1);
	for (uint32_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
		uint32_t j = (uint32_t)rand() % (i + 1), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	*one = route_ns(t, cfg, &last, 1);
	*all = route_ns(t, cfg, order, n);
	free(order);
	route_free(t);
	return *one < 0 || *all < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct rm_cfg *cfg = calloc(1, sizeof(*cfg)), *prev = calloc(1, sizeof(*prev));
	struct rm_cfg_src *src = calloc(1, sizeof(*src)), *nsrc = calloc(1, sizeof(*nsrc));
	double a, b, c, one = -1, all = -1;
	bool ca, cb, cc;

	if (argc != 3) {
		fprintf(stderr, "usage: cfgbench FILE CHANGED_FILE | --route FILE\n");
		return 2;
	}
	if (!cfg || !prev || !src || !nsrc)
		return 1;
	if (!strcmp(argv[1], "--route")) {
		if (apply(argv[2], cfg, prev, src, nsrc, &a, &ca) ||
		    route_bench(prev, &one, &all)) {
			fprintf(stderr, "cfgbench: the router did not forward GET /api\n");
			return 1;
		}
		printf("services=%u route_one_ns=%.1f route_all_ns=%.1f\n", prev->n_services, one,
		       all);
		return 0;
	}
	if (apply(argv[1], cfg, prev, src, nsrc, &a, &ca) ||
	    apply(argv[1], cfg, prev, src, nsrc, &b, &cb) ||
	    apply(argv[2], cfg, prev, src, nsrc, &c, &cc))
		return 1;
	if (!ca || cb || !cc) {
		fprintf(stderr, "cfgbench: changed flags %d %d %d, want 1 0 1\n", ca, cb, cc);
		return 1;
	}
	if (route_bench(prev, &one, &all))
		fprintf(stderr, "cfgbench: the router did not forward GET /api\n");
	printf("first=%.0f unchanged=%.0f changed=%.0f services=%u rules=%u endpoints=%u "
	       "half_bytes=%zu src_bytes=%u route_one_ns=%.1f route_all_ns=%.1f\n",
	       a, b, c, prev->n_services, prev->n_rules, prev->n_endpoints, cfg_blob_size(prev),
	       src->used, one, all);
	cfg_free(cfg);
	cfg_free(prev);
	cfg_src_free(src);
	cfg_src_free(nsrc);
	free(cfg);
	free(prev);
	free(src);
	free(nsrc);
	return 0;
}
