/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The RCU-like publication of configurations to workers (cfgwatch.c). Split from
 * test_l7.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "common/util.h"
#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/pick.h"

static struct rm_cfg *one_service_cfg(uint64_t gen)
{
	struct rm_cfg *c = calloc(1, sizeof(*c));
	static const char st[] = "\0svc.ns.svc.cluster.local\0svc\0ns\0version\0v1";

	assert_int_equal(cfg_init(c), 0);
	for (int t = 0; t <= RM_CFG_T_STRTAB; t++)
		assert_int_equal(cfg_reserve(c, t, 64), 0);
	c->generation = gen;

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
	cfg_free(snap);
	free(snap);
	cfg_free(bad);
	free(bad);
}

/* --- breaker slots claimed on first use (issue 13) --- */

static uint32_t put(struct rm_cfg *c, const char *s)
{
	uint32_t off = c->strtab_len;
	size_t n = strlen(s) + 1;

	assert_int_equal(cfg_reserve(c, RM_CFG_T_STRTAB, off + n), 0);
	memcpy(c->strtab + off, s, n);
	c->strtab_len += (uint32_t)n;
	return off;
}

static uint32_t put_label(struct rm_cfg *c, const char *k, const char *v)
{
	c->labels[c->n_labels].key_off = put(c, k);
	c->labels[c->n_labels].val_off = put(c, v);
	return c->n_labels++;
}

/*
 * n_svc services svcI.ns.svc.cluster.local (VIP 10.96.x.y:8080), each with two
 * endpoints (version v1, v2) and subsets "v1", "v2", "all" (both endpoints): four
 * balancer pools a service with the whole-service one. Subsets limit connections to
 * max_conn, with outlier detection (5 errors, 1 s, interval 100 ms).
 */
#define SUBSETS 3
static struct rm_cfg *many_cfg(uint32_t n_svc, uint64_t gen, uint32_t max_conn)
{
	struct rm_cfg *c = calloc(1, sizeof(*c));
	static const char *const sub[SUBSETS] = {"v1", "v2", "all"};

	assert_non_null(c);
	assert_int_equal(cfg_init(c), 0);
	for (int t = 0; t < RM_CFG_T_STRTAB; t++)
		assert_int_equal(cfg_reserve(c, t, (size_t)n_svc * 8 + 64), 0);
	c->strtab_len = 1; /* offset 0 = "" */
	assert_int_equal(cfg_reserve(c, RM_CFG_T_STRTAB, 1), 0);
	c->strtab[0] = 0;
	c->generation = gen;
	for (uint32_t i = 0; i < n_svc; i++) {
		struct rm_cfg_service *sv = &c->services[c->n_services++];
		char host[64], name[32];

		snprintf(name, sizeof(name), "svc%u", i);
		snprintf(host, sizeof(host), "svc%u.ns.svc.cluster.local", i);
		sv->host_off = put(c, host);
		sv->name_off = put(c, name);
		sv->ns_off = put(c, "ns");
		sv->flags = RM_SF_DECLARED;
		sv->n_addrs = 1;
		sv->addrs[0].a8[10] = sv->addrs[0].a8[11] = 0xff;
		sv->addrs[0].a8[12] = 10;
		sv->addrs[0].a8[13] = 96;
		sv->addrs[0].a8[14] = (uint8_t)(i / 250);
		sv->addrs[0].a8[15] = (uint8_t)(i % 250 + 1);
		sv->n_ports = 1;
		sv->ports[0].port = htons(8080);
		sv->ports[0].proto = RM_PROTO_HTTP;
		sv->endpoint_first = c->n_endpoints;
		sv->endpoint_count = 2;
		sv->subset_first = c->n_subsets;
		sv->subset_count = SUBSETS;
		sv->rule_first = c->n_rules;
		for (uint32_t v = 0; v < 2; v++) {
			struct rm_cfg_endpoint *e = &c->endpoints[c->n_endpoints++];

			e->addr = sv->addrs[0];
			e->addr.a8[13] = 244;
			e->addr.a8[14] = (uint8_t)(i / 100);
			e->addr.a8[15] = (uint8_t)(i % 100 * 2 + v + 1);
			e->family = AF_INET;
			e->service = i;
			e->label_first = put_label(c, "version", v ? "v2" : "v1");
			e->label_count = 1;
		}
		for (uint32_t k = 0; k < SUBSETS; k++) {
			struct rm_cfg_subset *ss = &c->subsets[c->n_subsets++];

			ss->service = i;
			ss->name_off = put(c, sub[k]);
			ss->api = RM_API_DESTRULE;
			ss->member_first = c->n_members;
			for (uint32_t v = 0; v < 2; v++)
				if (k == 2 || k == v)
					c->members[c->n_members++] = sv->endpoint_first + v;
			ss->member_count = c->n_members - ss->member_first;
			if (k < 2) {
				ss->label_first = c->endpoints[sv->endpoint_first + k].label_first;
				ss->label_count = 1;
			}
			cfg_breaker_old_defaults(&ss->cb);
			ss->cb.max_connections = max_conn;
			ss->cb.consecutive_errors = 5;
			ss->cb.max_ejection_percent = 100;
			ss->cb.base_ejection_ns = 1000000000ull;
			ss->cb.interval_ns = 100000000ull;
			ss->cb.outlier = 1;
		}
	}
	return c;
}

struct cbfx {
	struct cfgw cw;
	void *map; /* rm_breaker's memory */
	struct cb cb;
	struct rm_cfg *snap;
};

/* The breaker memory for np pools and nh hosts, attached to f->cb (which the
 * watcher's cb points to). */
static void cbfx_map(struct cbfx *f, uint32_t np, uint32_t nh)
{
	size_t len = RM_CB_BYTES(np, nh);

	free(f->map);
	f->map = calloc(1, len);
	assert_non_null(f->map);
	assert_int_equal(cb_attach(&f->cb, f->map, len, np, nh, 1), 0);
}

/* top: service `top`'s subset "all" (every endpoint, no labels) is named "", as the
 * compiler names a DestinationRule's top-level policy; UINT32_MAX: none. */
static void cbfx_publish_top(struct cbfx *f, uint32_t n_svc, uint64_t gen, uint32_t max_conn,
			     uint32_t top)
{
	char err[256];

	if (f->snap) {
		cfg_free(f->snap);
		free(f->snap);
	}
	f->snap = many_cfg(n_svc, gen, max_conn);
	if (top < n_svc)
		f->snap->subsets[f->snap->services[top].subset_first + 2].name_off = 0;
	if (cfgw_publish(&f->cw, f->snap, err, sizeof(err)))
		fail_msg("publish: %s", err);
	assert_int_equal(cfgw_current(&f->cw)->gen, gen);
}

static void cbfx_publish(struct cbfx *f, uint32_t n_svc, uint64_t gen, uint32_t max_conn)
{
	cbfx_publish_top(f, n_svc, gen, max_conn, UINT32_MAX);
}

static int cbfx_setup(void **state)
{
	struct cbfx *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	assert_int_equal(cfgw_init(&f->cw, 4, err, sizeof(err)), 0);
	cbfx_map(f, RM_CB_POOLS, RM_CB_HOSTS);
	f->cw.cb = &f->cb;
	*state = f;
	return 0;
}

static int cbfx_teardown(void **state)
{
	struct cbfx *f = *state;

	cfgw_fini(&f->cw);
	cfg_free(f->snap);
	free(f->snap);
	free(f->map);
	free(f);
	return 0;
}

static uint32_t live_pools(const struct cb *m)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < m->n_pools; i++)
		n += m->pools[i].state == RM_CB_LIVE;
	return n;
}

static uint32_t live_hosts(const struct cb *m)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < m->n_hosts; i++)
		n += m->hosts[i].state == RM_CB_LIVE;
	return n;
}

/* Pool index of service svc, subset k of its SUBSETS (SUBSETS = whole service). */
static uint32_t pool_of(const struct cfgw_cfg *c, const struct rm_cfg *snap, uint32_t svc,
			uint32_t k)
{
	uint32_t pool, lbp;
	const uint32_t *m;
	size_t n;

	assert_int_equal(
	    route_pool(c->t, svc, k == SUBSETS ? RM_CFG_NONE : snap->services[svc].subset_first + k,
		       &pool, &m, &n, &lbp),
	    0);
	return pool;
}

/* A configuration's pools take no slot until a request uses them; the first use
 * claims the pool with this generation's limits and its host slots; later uses get
 * the same slot without a lookup. */
static void test_cfgw_cb_first_use(void **state)
{
	struct cbfx *f = *state;
	struct cfgw_cfg *c;
	struct rm_cb_pool *p;
	struct rm_cb_host *const *h;
	uint32_t pool;

	cbfx_publish(f, 1000, 3, 10); /* 4,000 pools: far more than RM_CB_POOLS */
	c = cfgw_current(&f->cw);
	assert_int_equal(c->n_pools, 4000);
	assert_int_equal(live_pools(&f->cb), 0);
	assert_int_equal(live_hosts(&f->cb), 0);
	assert_int_equal(f->cb.h->pools_dropped, 0);
	assert_int_equal(c->cb_pools_unslotted, 0);
	pool = pool_of(c, f->snap, 7, 0);
	assert_null(cfgw_cb_hosts(c, pool, 0)); /* not claimed yet */
	f->cw.sweep_kick = 0;
	p = cfgw_cb_pool(c, pool);
	assert_non_null(p);
	assert_string_equal(p->service, "svc7.ns.svc.cluster.local");
	assert_string_equal(p->subset, "v1");
	assert_int_equal(p->lim.max_connections, 10);
	assert_int_equal(p->lim.outlier, 1);
	assert_int_equal(p->generation, 3);
	assert_int_equal(p->n_hosts, 1);
	assert_int_equal(f->cw.sweep_kick, 1); /* the watcher follows its interval */
	h = cfgw_cb_hosts(c, pool, 0);
	assert_non_null(h);
	assert_non_null(h[0]);
	assert_int_equal(h[0]->key.pool, cb_pool_index(&f->cb, p));
	assert_int_equal(h[0]->key.port, htons(8080));
	assert_int_equal(live_pools(&f->cb), 1);
	assert_int_equal(live_hosts(&f->cb), 1);
	assert_ptr_equal(cfgw_cb_pool(c, pool), p);
	assert_ptr_equal(c->cbp[pool].p, p); /* cached: one load from now on */
	/* the whole-service pool: Envoy's defaults, both endpoints */
	p = cfgw_cb_pool(c, pool_of(c, f->snap, 7, SUBSETS));
	assert_non_null(p);
	assert_string_equal(p->subset, "");
	assert_int_equal(p->lim.max_connections, RM_CB_OLD_MAX_CONNECTIONS);
	assert_int_equal(live_pools(&f->cb), 2);
	assert_int_equal(live_hosts(&f->cb), 3);
	/* an ejection of a lazily claimed pool's host is returned by the sweep */
	h = cfgw_cb_hosts(c, pool, 0);
	for (int i = 0; i < 5; i++)
		cb_host_result(&f->cb, h[0], CB_5XX, 1000);
	assert_int_equal(h[0]->ejected, RM_CB_OUT);
	f->cw.next_sweep_ns = UINT64_MAX;
	f->cw.sweep_kick = 1;
	cfgw_sweep(&f->cw, 1000 + 1000000000ull + 200000000ull);
	assert_int_equal(h[0]->ejected, RM_CB_IN);
}

struct racer {
	struct cfgw_cfg *c;
	uint32_t pool;
	pthread_barrier_t *go;
	struct rm_cb_pool *got;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	r->got = cfgw_cb_pool(r->c, r->pool);
	return NULL;
}

/* Four workers racing the first use of a pool agree on one slot, claimed once. */
static void test_cfgw_cb_race(void **state)
{
	struct cbfx *f = *state;
	struct cfgw_cfg *c;
	pthread_barrier_t go;
	struct racer r[4];
	pthread_t th[4];

	cbfx_publish(f, 100, 4, 10);
	c = cfgw_current(&f->cw);
	for (uint32_t round = 0; round < 40; round++) {
		uint32_t pool = pool_of(c, f->snap, round, round % (SUBSETS + 1));

		pthread_barrier_init(&go, NULL, 4);
		for (int i = 0; i < 4; i++) {
			r[i] = (struct racer){c, pool, &go, NULL};
			assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
		}
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		assert_non_null(r[0].got);
		for (int i = 1; i < 4; i++)
			assert_ptr_equal(r[i].got, r[0].got);
		assert_int_equal(live_pools(&f->cb), round + 1);
	}
	assert_int_equal(f->cb.h->pools_dropped, 0);
	assert_int_equal(c->cb_pools_unslotted, 0);
}

/* A flip gives pools used before their slot with the new limits at once (live
 * counts carried over) and leaves pools never used without one. */
static void test_cfgw_cb_flip(void **state)
{
	struct cbfx *f = *state;
	struct cfgw_cfg *c;
	struct rm_cb_pool *p;
	uint32_t pool;

	cbfx_publish(f, 50, 5, 10);
	c = cfgw_current(&f->cw);
	pool = pool_of(c, f->snap, 3, 2);
	p = cfgw_cb_pool(c, pool);
	assert_non_null(p);
	for (int i = 0; i < 3; i++)
		assert_int_equal(cb_conn_try_open(p), 0);
	assert_int_equal(live_pools(&f->cb), 1);
	cbfx_publish(f, 50, 6, 20);
	c = cfgw_current(&f->cw);
	pool = pool_of(c, f->snap, 3, 2);
	assert_ptr_equal(c->cbp[pool].p, p); /* given at the flip, before any request */
	assert_non_null(cfgw_cb_hosts(c, pool, 0));
	assert_int_equal(p->lim.max_connections, 20);
	assert_int_equal(p->generation, 6);
	assert_int_equal(p->connections, 3);
	assert_null(c->cbp[pool_of(c, f->snap, 4, 2)].p);
	assert_int_equal(live_pools(&f->cb), 1);
	assert_int_equal(live_hosts(&f->cb), 2);
	/* a late first use by a request of the old generation keeps the new limits */
	p = cfgw_cb_pool(c, pool_of(c, f->snap, 4, 2));
	assert_non_null(p);
	assert_int_equal(p->lim.max_connections, 20);
	assert_null(f->cw.retired->cbp[pool_of(f->cw.retired, f->snap, 4, 2)].p);
	assert_ptr_equal(cfgw_cb_pool(f->cw.retired, pool_of(f->cw.retired, f->snap, 4, 2)), p);
	assert_int_equal(p->lim.max_connections, 20);
	assert_int_equal(p->generation, 6);
}

/* A service with a DestinationRule's top-level policy: its whole-service traffic is
 * that subset's pool (route_pool), whose breaker slot (service, "") has the policy's
 * limits on first use and after a flip, never the whole-service defaults. */
static void test_cfgw_cb_top_level(void **state)
{
	struct cbfx *f = *state;
	struct cfgw_cfg *c;
	struct rm_cb_pool *p;
	uint32_t pool;

	cbfx_publish_top(f, 50, 5, 10, 3);
	c = cfgw_current(&f->cw);
	pool = pool_of(c, f->snap, 3, SUBSETS);
	assert_int_equal(pool, pool_of(c, f->snap, 3, 2));
	assert_true(pool_of(c, f->snap, 4, SUBSETS) >= route_n_subsets(c->t));
	p = cfgw_cb_pool(c, pool);
	assert_non_null(p);
	assert_string_equal(p->subset, "");
	assert_int_equal(p->lim.max_connections, 10);
	assert_int_equal(p->lim.outlier, 1);
	assert_non_null(cfgw_cb_hosts(c, pool, 0));
	assert_int_equal(cb_conn_try_open(p), 0);
	cbfx_publish_top(f, 50, 6, 20, 3);
	c = cfgw_current(&f->cw);
	pool = pool_of(c, f->snap, 3, SUBSETS);
	assert_ptr_equal(c->cbp[pool].p, p); /* given at the flip */
	assert_int_equal(p->lim.max_connections, 20);
	assert_int_equal(p->lim.outlier, 1);
	assert_int_equal(p->generation, 6);
	assert_int_equal(p->connections, 1);
	assert_non_null(cfgw_cb_hosts(c, pool, 0));
	assert_int_equal(live_pools(&f->cb), 1);
	assert_int_equal(live_hosts(&f->cb), 2);
}

/* 1,000 services configured, 10 used (a subset and the whole service each): 20
 * pool slots and their hosts. Past the table, pools in use fail open, counted once
 * per pool and generation. */
static void test_cfgw_cb_scale(void **state)
{
	struct cbfx *f = *state;
	struct cfgw_cfg *c;
	uint32_t dropped, unslotted, none = 0;

	cbfx_publish(f, 1000, 8, 10);
	c = cfgw_current(&f->cw);
	for (uint32_t s = 0; s < 1000; s += 100) {
		assert_non_null(cfgw_cb_pool(c, pool_of(c, f->snap, s, 2)));
		assert_non_null(cfgw_cb_pool(c, pool_of(c, f->snap, s, SUBSETS)));
	}
	assert_int_equal(live_pools(&f->cb), 20);
	assert_int_equal(live_hosts(&f->cb), 40);
	assert_int_equal(c->cb_pools_unslotted, 0);
	/* every pool of the 1,000 services in use: the table bounds what is in use */
	for (uint32_t s = 0; s < 1000; s++)
		for (uint32_t k = 0; k <= SUBSETS; k++)
			none += !cfgw_cb_pool(c, pool_of(c, f->snap, s, k));
	assert_true(live_pools(&f->cb) <= RM_CB_POOLS);
	assert_true(live_pools(&f->cb) > RM_CB_POOLS / 2);
	assert_int_equal(none, 4000 - live_pools(&f->cb));
	assert_int_equal(c->cb_pools_unslotted, none);
	dropped = (uint32_t)f->cb.h->pools_dropped;
	assert_int_equal(dropped, none);
	unslotted = c->cb_pools_unslotted;
	/* a pool left out is not looked up again by every request */
	for (uint32_t s = 0; s < 1000; s++)
		for (uint32_t k = 0; k <= SUBSETS; k++)
			cfgw_cb_pool(c, pool_of(c, f->snap, s, k));
	assert_int_equal(f->cb.h->pools_dropped, dropped);
	assert_int_equal(c->cb_pools_unslotted, unslotted);
}

/* The same 4,000 pools in use with a table sized for them (--breaker-pools 8192):
 * every one gets its slot and its hosts, nothing fails open. */
static void test_cfgw_cb_scale_sized(void **state)
{
	struct cbfx *f = *state;
	struct cfgw_cfg *c;
	uint32_t none = 0;

	cbfx_map(f, 8192, 16 * 8192);
	cbfx_publish(f, 1000, 8, 10);
	c = cfgw_current(&f->cw);
	for (uint32_t s = 0; s < 1000; s++)
		for (uint32_t k = 0; k <= SUBSETS; k++)
			none += !cfgw_cb_pool(c, pool_of(c, f->snap, s, k));
	assert_int_equal(none, 0);
	assert_int_equal(live_pools(&f->cb), 4000);
	assert_int_equal(f->cb.h->pools_used, 4000);
	assert_int_equal(f->cb.h->pools_dropped, 0);
	assert_int_equal(c->cb_pools_unslotted, 0);
	assert_int_equal(c->cb_hosts_unslotted, 0);
	assert_true(live_hosts(&f->cb) >= 4000);
	assert_int_equal(f->cb.h->hosts_used, live_hosts(&f->cb));
	assert_int_equal(f->cb.h->hosts_dropped, 0);
}

/* Member pos of p is 10.244.0.last:8080, as pick_addr gives it. */
static void assert_picked(struct cfgw_cfg *c, const struct pick *p, size_t pos, uint8_t last)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	struct rm_orig o;
	socklen_t len = 0;

	assert_int_equal(pick_addr(c, p, pos, htons(8080), &o, &ss, &len), 0);
	assert_int_equal(len, sizeof(*sin));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 8080);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), (10u << 24) | (244u << 16) | last);
	assert_int_equal(o.family, AF_INET);
	assert_int_equal(o.port, htons(8080));
}

/* The balancer step both proxies share (pick.c): a subset's pool comes with its
 * breaker slot, host slots and the hooks that skip an ejected host; a service's own
 * whole-service pool has a breaker for requests but none for a TCP service's
 * connections (subsets_only); no breaker, no hooks; bad indices are -ENOENT. */
static void test_cfgw_pick(void **state)
{
	struct cbfx *f = *state;
	uint32_t all = 0;
	struct cfgw_cfg *c;
	struct cfgw plain;
	struct pick p;
	char err[256];
	size_t pos;

	cbfx_publish(f, 10, 3, 10);
	c = cfgw_current(&f->cw);
	all = f->snap->services[2].subset_first + 2; /* svc2's "all": 10.244.0.5, .6 */
	assert_int_equal(pick_pool(c, 2, f->snap->services[2].subset_first, htons(8080), true, &p),
			 0);
	assert_int_equal(p.n, 1);
	assert_non_null(p.cbp);
	assert_string_equal(p.cbp->subset, "v1");
	assert_non_null(p.hosts);
	assert_ptr_equal(p.hooks, &p.hk);
	assert_int_equal(pick_one(c, &p, 12345, &pos), 0);
	assert_int_equal(pos, 0);
	assert_picked(c, &p, pos, 5);
	assert_int_equal(pick_addr(c, &p, 1, htons(8080), &(struct rm_orig){0},
				   &(struct sockaddr_storage){0}, &(socklen_t){0}),
			 -ENOENT);

	/* an ejected host is not picked, whatever the random number (ejected now, for
	 * base_ejection 1 s: pick_pool's clock is mono_ns) */
	assert_int_equal(pick_pool(c, 2, all, htons(8080), false, &p), 0);
	assert_int_equal(p.n, 2);
	assert_non_null(p.hosts);
	for (int i = 0; i < 5; i++)
		cb_host_result(&f->cb, p.hosts[0], CB_5XX, mono_ns());
	assert_int_equal(p.hosts[0]->ejected, RM_CB_OUT);
	for (uint64_t r = 0; r < 64; r++) {
		assert_int_equal(pick_pool(c, 2, all, htons(8080), true, &p), 0);
		assert_int_equal(pick_one(c, &p, r * 0x9e3779b97f4a7c15ull, &pos), 0);
		assert_int_equal(pos, 1);
	}
	assert_picked(c, &p, pos, 6);

	/* the whole-service pool: a breaker for requests, none for TCP connections */
	assert_int_equal(pick_pool(c, 2, RM_CFG_NONE, htons(8080), false, &p), 0);
	assert_int_equal(p.n, 2);
	assert_non_null(p.cbp);
	assert_string_equal(p.cbp->subset, "");
	assert_non_null(p.hooks);
	assert_int_equal(pick_pool(c, 2, RM_CFG_NONE, htons(8080), true, &p), 0);
	assert_int_equal(p.n, 2);
	assert_null(p.cbp);
	assert_null(p.hosts);
	assert_null(p.hooks);
	assert_int_equal(pick_pool(c, 10, RM_CFG_NONE, htons(8080), false, &p), -ENOENT);
	assert_int_equal(pick_pool(c, 2, f->snap->services[3].subset_first, htons(8080), false, &p),
			 -ENOENT);

	/* a daemon without a breaker: members only */
	assert_int_equal(cfgw_init(&plain, 1, err, sizeof(err)), 0);
	assert_int_equal(cfgw_publish(&plain, f->snap, err, sizeof(err)), 0);
	c = cfgw_current(&plain);
	assert_int_equal(pick_pool(c, 2, all, htons(8080), false, &p), 0);
	assert_int_equal(p.n, 2);
	assert_null(p.cbp);
	assert_null(p.hooks);
	assert_int_equal(pick_one(c, &p, 7, &pos), 0);
	assert_picked(c, &p, pos, (uint8_t)(5 + pos));
	cfgw_fini(&plain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cfgw_publish_reclaim),
	    cmocka_unit_test_setup_teardown(test_cfgw_cb_first_use, cbfx_setup, cbfx_teardown),
	    cmocka_unit_test_setup_teardown(test_cfgw_cb_race, cbfx_setup, cbfx_teardown),
	    cmocka_unit_test_setup_teardown(test_cfgw_cb_flip, cbfx_setup, cbfx_teardown),
	    cmocka_unit_test_setup_teardown(test_cfgw_cb_top_level, cbfx_setup, cbfx_teardown),
	    cmocka_unit_test_setup_teardown(test_cfgw_cb_scale, cbfx_setup, cbfx_teardown),
	    cmocka_unit_test_setup_teardown(test_cfgw_cb_scale_sized, cbfx_setup, cbfx_teardown),
	    cmocka_unit_test_setup_teardown(test_cfgw_pick, cbfx_setup, cbfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
