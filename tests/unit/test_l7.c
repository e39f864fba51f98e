/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Pure parts of the L7 proxy: the timer heap, the idle connection pool, rm_stats
 * slot claiming (also from several threads), the RCU-like configuration
 * publication. (The client-bound response head is tested in test_http1_resp.c, the
 * retry predicates in test_retry.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/l7_int.h"
#include "ringmeshd/timer.h"
#include "ringmeshd/pool.h"
#include "ringmeshd/stats_w.h"

/* ---- timer heap ---- */

static void test_timer_order(void **state)
{
	struct l7_theap h;
	struct l7_tmr t[200];
	uint64_t last = 0;
	unsigned int n = 0;
	struct l7_tmr *e;

	assert_int_equal(l7_theap_init(&h, 200), 0);
	for (int i = 0; i < 200; i++) {
		l7_tmr_init(&t[i], 1);
		assert_int_equal(l7_tmr_arm(&h, &t[i], (uint64_t)((i * 7919) % 1000) + 1), 0);
	}
	/* move some, cancel some */
	for (int i = 0; i < 200; i += 10)
		assert_int_equal(l7_tmr_arm(&h, &t[i], 5000 + i), 0);
	for (int i = 1; i < 200; i += 10)
		l7_tmr_cancel(&h, &t[i]);
	assert_int_equal(l7_theap_next(&h) <= 1000, 1);
	assert_null(l7_theap_pop_expired(&h, 0));
	while ((e = l7_theap_pop_expired(&h, 100000))) {
		assert_true(e->when >= last);
		assert_false(l7_tmr_armed(e));
		last = e->when;
		n++;
	}
	assert_int_equal(n, 180);
	assert_int_equal(l7_theap_next(&h), UINT64_MAX);
	l7_tmr_cancel(&h, &t[3]); /* not armed: no-op */
	l7_theap_fini(&h);
}

static void test_timer_full_and_partial(void **state)
{
	struct l7_theap h;
	struct l7_tmr a, b, c;

	assert_int_equal(l7_theap_init(&h, 2), 0);
	l7_tmr_init(&a, 1);
	l7_tmr_init(&b, 2);
	l7_tmr_init(&c, 3);
	assert_int_equal(l7_tmr_arm(&h, &a, 300), 0);
	assert_int_equal(l7_tmr_arm(&h, &b, 100), 0);
	assert_int_equal(l7_tmr_arm(&h, &c, 50), -ENOSPC);
	assert_ptr_equal(l7_theap_pop_expired(&h, 200), &b);
	assert_null(l7_theap_pop_expired(&h, 200)); /* a is later */
	assert_int_equal(l7_theap_next(&h), 300);
	l7_theap_fini(&h);
}

/* ---- pool ---- */

static struct pool_key key(uint8_t last, uint16_t port)
{
	struct pool_key k;

	memset(&k, 0, sizeof(k));
	k.addr.a8[10] = k.addr.a8[11] = 0xff;
	k.addr.a8[12] = 10;
	k.addr.a8[15] = last;
	k.port = port;
	k.family = 2;
	return k;
}

static void test_pool(void **state)
{
	struct pool p;
	struct pool_link l[5];
	struct pool_key k1 = key(11, 8080), k2 = key(12, 8080), k3 = key(11, 9090);

	assert_int_equal(pool_init(&p, 3, 2), 0);
	assert_int_equal(p.n_buckets, 4);
	for (int i = 0; i < 5; i++)
		pool_link_init(&l[i]);
	assert_null(pool_get(&p, &k1));
	assert_int_equal(pool_put(&p, &k1, &l[0]), 0);
	assert_int_equal(pool_put(&p, &k1, &l[1]), 0);
	assert_int_equal(pool_put(&p, &k1, &l[2]), -ENOSPC); /* max idle per endpoint */
	assert_int_equal(pool_put(&p, &k2, &l[3]), 0);
	assert_int_equal(pool_idle(&p, &k1), 2);
	assert_null(pool_get(&p, &k3));		    /* same address, other port */
	assert_ptr_equal(pool_get(&p, &k1), &l[1]); /* most recent first */
	pool_remove(&p, &l[0]);			    /* closed while idle */
	pool_remove(&p, &l[0]);			    /* twice: no-op */
	assert_null(pool_get(&p, &k1));
	assert_ptr_equal(pool_get(&p, &k2), &l[3]);
	assert_int_equal(p.parked, 0);
	assert_int_equal(pool_put(&p, &k3, &l[4]), 0);
	assert_ptr_equal(pool_get(&p, &k3), &l[4]);
	pool_fini(&p);
}

/* ---- stats ---- */

#define NS 64

static void test_stats_claim(void **state)
{
	static union rm_stats_entry mem[NS];
	struct stats_w s;
	struct rm_stats_key k1, k2;
	struct rm_stats_slot *a, *b;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&s, mem, NS, 42);
	assert_int_equal(mem[0].hdr.magic, RM_STATS_MAGIC);
	assert_int_equal(mem[0].hdr.n_slots, NS);
	stats_key_make(&k1, "trans-service.x.svc.cluster.local", "v1", "", RM_STATS_HTTP);
	stats_key_make(&k2, "trans-service.x.svc.cluster.local", "v2", NULL, RM_STATS_HTTP);
	assert_string_equal(k1.dst_workload, "unknown");
	a = stats_slot(&s, &k1);
	b = stats_slot(&s, &k2);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_ptr_equal(stats_slot(&s, &k1), a);
	assert_int_equal(a->state, RM_STATS_LIVE);
	stats_request(a, 200, 0, 700, 100, 2000);
	stats_request(a, 503, 1u << RM_STATS_F_UF, 3000000, 0, 0);
	stats_request(a, 0, 0, 1, 0, 0);
	assert_int_equal(a->requests, 3);
	assert_int_equal(a->code_class[2], 1);
	assert_int_equal(a->code_class[5], 1);
	assert_int_equal(a->code_class[0], 1);
	assert_int_equal(a->codes[0].code, 200);
	assert_int_equal(a->codes[1].code, 503);
	assert_int_equal(a->flags[RM_STATS_F_UF], 1);
	assert_int_equal(a->dur_buckets[1], 1);	       /* 700 us <= 1 ms */
	assert_int_equal(a->dur_buckets[11], 1);       /* 3 s <= 5 s */
	assert_int_equal(a->resp_bytes_buckets[4], 1); /* 2000 <= 10000 */
	for (int c = 0; c < RM_STATS_CODES + 3; c++)
		stats_request(b, 300 + c, 0, 1, 0, 0);
	assert_int_equal(b->codes_other, 3);
	stats_tcp(a, 1, 1, 10, 20);
	assert_int_equal(a->tcp_received_bytes, 20);
	/* a re-open keeps the counters */
	stats_w_attach(&s, mem, NS, 43);
	assert_int_equal(mem[0].hdr.started_ns, 42);
	assert_ptr_equal(stats_slot(&s, &k1), a);
}

static void test_stats_full(void **state)
{
	static union rm_stats_entry mem[8];
	struct stats_w s;
	struct rm_stats_key k;
	char v[16];
	int found = 0;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&s, mem, 8, 1);
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof(v), "v%d", i);
		stats_key_make(&k, "svc", v, NULL, RM_STATS_TCP);
		found += stats_slot(&s, &k) != NULL;
	}
	assert_int_equal(found, 7);
	assert_int_equal(mem[0].hdr.dropped, 3);
}

struct race {
	struct stats_w *s;
	int id;
};

static void *race_main(void *arg)
{
	struct race *r = arg;
	struct rm_stats_key k;
	char v[16];

	for (int i = 0; i < 2000; i++) {
		snprintf(v, sizeof(v), "v%d", i % 20);
		stats_key_make(&k, "svc", v, NULL, RM_STATS_HTTP);
		stats_request(stats_slot(r->s, &k), 200, 0, 1, 1, 1);
	}
	return NULL;
}

static void test_stats_threads(void **state)
{
	static union rm_stats_entry mem[NS];
	struct stats_w s;
	pthread_t t[4];
	struct race r[4];
	uint64_t total = 0;
	int live = 0;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&s, mem, NS, 1);
	for (int i = 0; i < 4; i++) {
		r[i].s = &s;
		r[i].id = i;
		pthread_create(&t[i], NULL, race_main, &r[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 1; i < NS; i++) {
		if (mem[i].slot.state != RM_STATS_LIVE)
			continue;
		live++;
		total += mem[i].slot.requests;
		assert_int_equal(mem[i].slot.requests, 400); /* 4 threads x 100 each */
	}
	assert_int_equal(live, 20); /* one slot per key, never two */
	assert_int_equal(total, 8000);
}

/* ---- configuration publication ---- */

static struct rm_cfg *one_service_cfg(uint64_t gen)
{
	struct rm_cfg *c = calloc(1, sizeof(*c));

	c->magic = RM_CFG_MAGIC;
	c->abi_version = RM_CFG_ABI_VERSION;
	c->generation = gen;
	static const char st[] = "\0svc.ns.svc.cluster.local\0svc\0ns\0version\0v1";

	memcpy(c->strtab, st, sizeof(st));
	c->strtab_len = sizeof(st);
	c->n_services = 1;
	c->services[0].host_off = 1;
	c->services[0].name_off = 26;
	c->services[0].ns_off = 30;
	c->services[0].flags = RM_SF_DECLARED;
	c->services[0].n_addrs = 1;
	c->services[0].addrs[0].a8[10] = 0xff;
	c->services[0].addrs[0].a8[11] = 0xff;
	c->services[0].addrs[0].a8[12] = 10;
	c->services[0].addrs[0].a8[13] = 96;
	c->services[0].addrs[0].a8[15] = 20;
	c->services[0].n_ports = 1;
	c->services[0].ports[0].port = htons(8080);
	c->services[0].ports[0].proto = RM_PROTO_HTTP;
	c->services[0].endpoint_first = 0;
	c->services[0].endpoint_count = 1;
	c->n_endpoints = 1;
	c->endpoints[0].addr = c->services[0].addrs[0];
	c->endpoints[0].addr.a8[13] = 244;
	c->endpoints[0].family = 2;
	c->endpoints[0].label_first = 0;
	c->endpoints[0].label_count = 1;
	c->n_labels = 1;
	c->labels[0].key_off = 33;
	c->labels[0].val_off = 41;
	return c;
}

static void test_cfgw_publish_reclaim(void **state)
{
	struct cfgw cw;
	struct cfgw_cfg *first, *held, *now;
	struct rm_cfg *snap = one_service_cfg(7), *bad;
	char err[256];
	int svc;

	assert_int_equal(cfgw_init(&cw, 2, err, sizeof(err)), 0);
	first = cfgw_current(&cw);
	assert_int_equal(route_n_services(first->t), 0);
	/* worker 0 starts a request on the empty configuration and keeps it */
	held = cfgw_current(&cw);
	cfgw_hold(held, 0);
	if (cfgw_publish(&cw, snap, err, sizeof(err)))
		fail_msg("publish: %s", err);
	now = cfgw_current(&cw);
	assert_ptr_not_equal(now, first);
	assert_int_equal(now->gen, 7);
	svc = route_find_service(now->t, &snap->services[0].addrs[0], htons(8080));
	assert_int_equal(svc, 0);
	assert_string_equal(now->ep_version[0], "v1");
	/* no worker passed a quiescent point: nothing can be freed */
	assert_int_equal(cfgw_reclaim(&cw), 1);
	cfgw_quiescent(&cw, 0);
	cfgw_quiescent(&cw, 1);
	assert_int_equal(cfgw_reclaim(&cw), 1); /* worker 0 still holds it for a request */
	cfgw_drop(held, 0);
	assert_int_equal(cfgw_reclaim(&cw), 0);
	/* a bad snapshot keeps the current configuration */
	bad = one_service_cfg(8);
	bad->services[0].endpoint_count = 5; /* beyond n_endpoints */
	assert_int_not_equal(cfgw_publish(&cw, bad, err, sizeof(err)), 0);
	assert_true(strlen(err) > 0);
	assert_ptr_equal(cfgw_current(&cw), now);
	assert_int_equal(cw.rejected, 1);
	/* a reader that has not passed a quiescent point since the flip blocks reclaim */
	assert_int_equal(cfgw_publish(&cw, snap, err, sizeof(err)), 0);
	cfgw_quiescent(&cw, 0);
	assert_int_equal(cfgw_reclaim(&cw), 1);
	cfgw_quiescent(&cw, 1);
	assert_int_equal(cfgw_reclaim(&cw), 0);
	cfgw_fini(&cw);
	free(snap);
	free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timer_order),
	    cmocka_unit_test(test_timer_full_and_partial),
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_stats_claim),
	    cmocka_unit_test(test_stats_full),
	    cmocka_unit_test(test_stats_threads),
	    cmocka_unit_test(test_cfgw_publish_reclaim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
