/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The pod identity cache (wl.c) with a fake map and clock, and the source fields
 * of a metrics key (stats_key_source). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ringmeshd/wl.h"
#include "ringmeshd/stats_w.h"

struct fake {
	uint64_t id;
	struct rm_workload w;
	bool present;
	int calls;
};

static int fetch(void *ctx, uint64_t id, struct rm_workload *out)
{
	struct fake *f = ctx;

	f->calls++;
	if (!f->present || id != f->id)
		return -ENOENT;
	*out = f->w;
	return 0;
}

static void put_labels(struct rm_workload *w, const char *const *kv, uint32_t n)
{
	size_t off = 0;

	for (uint32_t i = 0; i < n; i++) {
		size_t l = strlen(kv[i]) + 1;

		memcpy(w->labels + off, kv[i], l);
		off += l;
	}
	w->n_labels = n;
	w->labels_len = (uint32_t)off;
}

static void test_wl_cache_ttl(void **state)
{
	static struct fake f;
	static const char *const kv[] = {"app=cli", "version=v1", "broken", "team=a"};
	struct wl_cache c;
	const struct wl_ident *id;
	struct route_req rr = {0};

	f.id = 42;
	f.present = true;
	snprintf(f.w.ns, sizeof(f.w.ns), "ns-a");
	snprintf(f.w.app, sizeof(f.w.app), "cli");
	put_labels(&f.w, kv, 4);
	assert_int_equal(wl_cache_init(&c, 5, 1000, fetch, &f), 0);
	assert_int_equal(c.n, 8);

	assert_null(wl_get(&c, 0, 0)); /* no pod recorded: never looked up */
	assert_int_equal(f.calls, 0);
	id = wl_get(&c, 42, 10);
	assert_non_null(id);
	assert_int_equal(id->n_labels, 3); /* "broken" has no '=' */
	assert_int_equal(id->labels[2].key.len, 4);
	assert_memory_equal(id->labels[2].val.p, "a", 1);
	assert_string_equal(id->service, "cli.ns-a.svc.cluster.local");
	wl_fill_req(id, &rr);
	assert_int_equal(rr.n_src_labels, 3);
	assert_int_equal(rr.src_namespace.len, 4);
	/* cached within the TTL, even when the record changes */
	f.present = false;
	assert_non_null(wl_get(&c, 42, 1009));
	assert_int_equal(f.calls, 1);
	/* read again after it: deleted is seen */
	assert_null(wl_get(&c, 42, 1010));
	assert_int_equal(f.calls, 2);
	/* a miss is cached too, and a new record is seen after the TTL */
	f.present = true;
	snprintf(f.w.service, sizeof(f.w.service), "cli.ns-a.svc.cluster.local");
	assert_null(wl_get(&c, 42, 1500));
	id = wl_get(&c, 42, 2010);
	assert_non_null(id);
	assert_string_equal(id->service, "cli.ns-a.svc.cluster.local");
	wl_fill_req(NULL, &rr);
	assert_int_equal(rr.n_src_labels, 0);
	assert_int_equal(rr.src_namespace.len, 0);
	assert_int_equal(rr.src_service.len, 0);
	wl_cache_fini(&c);
}

/* Bad records: lengths beyond the array and an unterminated last pair are not read. */
static void test_wl_bad_labels(void **state)
{
	static struct rm_workload w;
	struct route_label l[4];

	memset(w.labels, 'x', sizeof(w.labels));
	memcpy(w.labels, "a=1", 4);
	w.n_labels = 99;
	w.labels_len = 100000;
	assert_int_equal(wl_split_labels(&w, l, 4), 1);
	w.n_labels = 0;
	assert_int_equal(wl_split_labels(&w, l, 4), 0);
}

static void test_stats_key_source(void **state)
{
	static struct rm_workload w;
	struct rm_stats_key k;

	stats_key_make(&k, "s.ns.svc.cluster.local", "v1", "s-v1", RM_STATS_HTTP);
	assert_string_equal(k.src_workload, "unknown");
	assert_string_equal(k.src_namespace, "unknown");
	assert_string_equal(k.src_canon_rev, "unknown");
	snprintf(w.ns, sizeof(w.ns), "ns-a");
	snprintf(w.workload, sizeof(w.workload), "cli-a");
	stats_key_source(&k, &w);
	assert_string_equal(k.src_workload, "cli-a");
	assert_string_equal(k.src_namespace, "ns-a");
	assert_string_equal(k.src_app, "unknown");
	assert_string_equal(k.src_canon_svc, "cli-a"); /* Istio: app, else workload */
	assert_string_equal(k.src_canon_rev, "latest");
	snprintf(w.app, sizeof(w.app), "cli");
	snprintf(w.version, sizeof(w.version), "v2");
	stats_key_source(&k, &w);
	assert_string_equal(k.src_canon_svc, "cli");
	assert_string_equal(k.src_canon_rev, "v2");
	assert_string_equal(k.dst_workload, "s-v1");
	stats_key_source(&k, NULL);
	assert_string_equal(k.src_app, "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wl_cache_ttl),
	    cmocka_unit_test(test_wl_bad_labels),
	    cmocka_unit_test(test_stats_key_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
