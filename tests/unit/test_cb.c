/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for the breaker (cb): ejection after exactly N consecutive errors, resets,
 * gateway errors, k x base backoff with its cap and decay, max ejection percent, the
 * sweep's timing, overflow not being a host error, admission limits (also under four
 * threads hammering one pool), and the balancer hooks. Injected clock, no sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <endian.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>

#include "policy/cb.h"
#include "policy/lb.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define T0 (1000 * SEC) /* a monotonic clock far from zero */

struct fx {
	struct rm_cb_map *m;
	struct cb cb;
	struct rm_cb_pool *p;
	struct rm_cb_host *h[16];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->m = calloc(1, sizeof(*f->m));
	assert_non_null(f->m);
	cb_attach(&f->cb, f->m, 42);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	free(f->m);
	free(f);
	return 0;
}

static struct rm_cfg_breaker lim_outlier(uint32_t errs, uint64_t base, uint64_t iv, uint32_t pct)
{
	struct rm_cfg_breaker l;

	cb_limits_default(&l);
	l.consecutive_errors = errs;
	l.base_ejection_ns = base;
	l.interval_ns = iv;
	l.max_ejection_percent = pct;
	l.outlier = 1;
	return l;
}

static struct rm_addr addr_of(uint32_t i)
{
	struct rm_addr a;

	memset(&a, 0, sizeof(a));
	a.a8[10] = a.a8[11] = 0xff;
	a.a8[12] = 10;
	a.a8[15] = (uint8_t)(i + 1);
	return a;
}

/* A pool "svc" subset "v1" with n hosts and these limits. */
static void mk_pool(struct fx *f, const struct rm_cfg_breaker *l, uint32_t n)
{
	f->p = cb_pool(&f->cb, "svc.ns.svc.cluster.local", "v1");
	assert_non_null(f->p);
	assert_int_equal(cb_pool_configure(f->p, l, n, 1, T0), 0);
	for (uint32_t i = 0; i < n; i++) {
		struct rm_addr a = addr_of(i);

		f->h[i] = cb_host(&f->cb, f->p, &a, htobe16(8080), 2);
		assert_non_null(f->h[i]);
	}
}

static int errors(struct fx *f, struct rm_cb_host *h, unsigned n, enum cb_outcome o, uint64_t now)
{
	int ej = 0;

	for (unsigned i = 0; i < n; i++)
		ej += cb_host_result(&f->cb, h, o, now);
	return ej;
}

static void test_slots(void **state)
{
	struct fx *f = *state;
	struct rm_cb_pool *a, *b, *c;
	struct rm_cb_host *h1, *h2, *h3;
	struct rm_addr x = addr_of(0);

	assert_int_equal(f->m->hdr.magic, RM_CB_MAGIC);
	assert_int_equal(f->m->hdr.started_ns, 42);
	a = cb_pool(&f->cb, "svc", "v1");
	b = cb_pool(&f->cb, "svc", "v2");
	c = cb_pool(&f->cb, "svc", NULL);
	assert_non_null(a);
	assert_ptr_not_equal(a, b);
	assert_ptr_not_equal(a, c);
	assert_ptr_equal(cb_pool(&f->cb, "svc", "v1"), a);
	assert_ptr_equal(cb_pool(&f->cb, "svc", ""), c);
	/* fresh pools enforce the defaults until configured */
	assert_int_equal(a->lim.max_requests, RM_CB_OLD_MAX_REQUESTS);
	assert_int_equal(a->lim.outlier, 0);
	h1 = cb_host(&f->cb, a, &x, htobe16(80), 2);
	h2 = cb_host(&f->cb, b, &x, htobe16(80), 2);
	h3 = cb_host(&f->cb, a, &x, htobe16(81), 2);
	assert_non_null(h1);
	/* the same endpoint is judged per pool, as Envoy does per cluster */
	assert_ptr_not_equal(h1, h2);
	assert_ptr_not_equal(h1, h3);
	assert_ptr_equal(cb_host(&f->cb, a, &x, htobe16(80), 2), h1);
	assert_int_equal(h1->key.pool, cb_pool_index(&f->cb, a));
	assert_null(cb_host(&f->cb, NULL, &x, htobe16(80), 2));
}

static void test_pool_table_full(void **state)
{
	struct fx *f = *state;
	char name[32];
	int i, got = 0;

	for (i = 0; i < RM_CB_POOLS + 8; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		if (cb_pool(&f->cb, name, "v1"))
			got++;
	}
	assert_true(got <= RM_CB_POOLS);
	assert_int_equal(f->m->hdr.pools_dropped, (uint64_t)(RM_CB_POOLS + 8 - got));
	assert_true(f->m->hdr.pools_dropped >= 8);
	/* a pool without a slot fails open */
	assert_int_equal(cb_request_try_start(NULL, NULL), 0);
	assert_int_equal(cb_conn_try_open(NULL), 0);
	assert_int_equal(cb_pending_try_enter(NULL), 0);
	assert_int_equal(cb_retry_try_start(NULL), 0);
	assert_true(cb_host_available(&f->cb, NULL, T0));
}

static void test_configure_rejects(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(5, 0, 10 * MS, 10);
	struct rm_cb_pool *p = cb_pool(&f->cb, "svc", "v1");

	assert_int_equal(cb_pool_configure(p, &l, 3, 1, T0), -EINVAL);
	l = lim_outlier(5, 10 * MS, 0, 10);
	assert_int_equal(cb_pool_configure(p, &l, 3, 1, T0), -EINVAL);
	l = lim_outlier(5, 10 * MS, 10 * MS, 101);
	assert_int_equal(cb_pool_configure(p, &l, 3, 1, T0), -EINVAL);
	assert_int_equal(cb_pool_configure(NULL, &l, 3, 1, T0), -EINVAL);
	assert_int_equal(cb_pool_configure(p, NULL, 3, 7, T0), 0);
	assert_int_equal(p->lim.max_connections, RM_CB_OLD_MAX_CONNECTIONS);
	assert_int_equal(p->generation, 7);
	assert_int_equal(p->n_hosts, 3);
}

static void test_outcome_of_status(void **state)
{
	assert_int_equal(cb_outcome_of_status(200), CB_SUCCESS);
	assert_int_equal(cb_outcome_of_status(404), CB_SUCCESS);
	assert_int_equal(cb_outcome_of_status(429), CB_SUCCESS);
	assert_int_equal(cb_outcome_of_status(500), CB_5XX);
	assert_int_equal(cb_outcome_of_status(501), CB_5XX);
	assert_int_equal(cb_outcome_of_status(502), CB_GATEWAY);
	assert_int_equal(cb_outcome_of_status(503), CB_GATEWAY);
	assert_int_equal(cb_outcome_of_status(504), CB_GATEWAY);
	assert_int_equal(cb_outcome_of_status(505), CB_5XX);
	assert_int_equal(cb_outcome_of_status(599), CB_5XX);
	assert_int_equal(cb_outcome_of_status(600), CB_SUCCESS);
}

static void test_eject_exactly_n(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(5, 100 * MS, 100 * MS, 100);

	mk_pool(f, &l, 1);
	assert_int_equal(errors(f, f->h[0], 4, CB_5XX, T0), 0);
	assert_int_equal(f->h[0]->consecutive_errors, 4);
	assert_true(cb_host_available(&f->cb, f->h[0], T0));
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_5XX, T0), 1);
	assert_false(cb_host_available(&f->cb, f->h[0], T0));
	assert_int_equal(f->h[0]->ejected, RM_CB_OUT);
	assert_int_equal(f->h[0]->eject_k, 1);
	assert_int_equal(f->h[0]->total_ejections, 1);
	assert_int_equal(f->h[0]->ejected_until_ns, T0 + 100 * MS);
	assert_int_equal(f->p->ejected, 1);
	assert_int_equal(f->p->ejections_total, 1);
	/* in-flight failures of an ejected host are not counted */
	assert_int_equal(errors(f, f->h[0], 22, CB_5XX, T0 + MS), 0);
	assert_int_equal(f->h[0]->total_ejections, 1);
	assert_int_equal(f->h[0]->consecutive_errors, 0);
	assert_int_equal(f->h[0]->errors_total, 5);
}

static void test_every_error_kind_counts(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(5, 100 * MS, 100 * MS, 100);

	mk_pool(f, &l, 1);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_5XX, T0), 0);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_GATEWAY, T0), 0);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_CONNECT_FAIL, T0), 0);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_TIMEOUT, T0), 0);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_RESET, T0 + 7), 1);
	assert_int_equal(f->h[0]->errors_total, 5);
	assert_int_equal(f->h[0]->last_error_ns, T0 + 7);
}

static void test_success_resets(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(5, 100 * MS, 100 * MS, 100);

	mk_pool(f, &l, 1);
	assert_int_equal(errors(f, f->h[0], 4, CB_5XX, T0), 0);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_SUCCESS, T0), 0);
	assert_int_equal(f->h[0]->consecutive_errors, 0);
	assert_int_equal(errors(f, f->h[0], 4, CB_GATEWAY, T0), 0);
	assert_true(cb_host_available(&f->cb, f->h[0], T0));
	assert_int_equal(errors(f, f->h[0], 1, CB_GATEWAY, T0), 1);
}

static void test_overflow_not_host_error(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(5, 100 * MS, 100 * MS, 100);

	mk_pool(f, &l, 1);
	assert_int_equal(errors(f, f->h[0], 100, CB_LOCAL_OVERFLOW, T0), 0);
	assert_int_equal(f->h[0]->consecutive_errors, 0);
	assert_int_equal(f->h[0]->errors_total, 0);
	/* nor does it break a run of real errors */
	assert_int_equal(errors(f, f->h[0], 4, CB_5XX, T0), 0);
	assert_int_equal(errors(f, f->h[0], 10, CB_LOCAL_OVERFLOW, T0), 0);
	assert_int_equal(f->h[0]->consecutive_errors, 4);
	assert_int_equal(errors(f, f->h[0], 1, CB_5XX, T0), 1);
}

static void test_gateway_errors(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(0, 100 * MS, 100 * MS, 100);

	l.consecutive_gateway_errors = 3; /* consecutive5xxErrors: 0 = off */
	mk_pool(f, &l, 1);
	assert_int_equal(errors(f, f->h[0], 2, CB_GATEWAY, T0), 0);
	assert_int_equal(errors(f, f->h[0], 1, CB_5XX, T0), 0); /* a 500 breaks the run */
	assert_int_equal(f->h[0]->consecutive_gateway, 0);
	assert_int_equal(errors(f, f->h[0], 10, CB_5XX, T0), 0); /* 5xx detection is off */
	assert_int_equal(errors(f, f->h[0], 2, CB_CONNECT_FAIL, T0), 0);
	assert_int_equal(errors(f, f->h[0], 1, CB_TIMEOUT, T0), 1);
}

static void test_outlier_off_counts_only(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l;

	cb_limits_default(&l); /* outlier off */
	mk_pool(f, &l, 1);
	assert_int_equal(errors(f, f->h[0], 50, CB_5XX, T0), 0);
	assert_true(cb_host_available(&f->cb, f->h[0], T0));
	assert_int_equal(f->h[0]->errors_total, 50);
	assert_int_equal(f->h[0]->total_ejections, 0);
}

/* The sweep returns a host at the first pool sweep at or after its time. */
static void test_sweep_timing(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(5, 100 * MS, 10 * MS, 100);
	struct rm_cb_host *out[4];
	uint64_t next;

	mk_pool(f, &l, 2);
	assert_int_equal(cb_sweep(&f->cb, T0, out, 4, &next), 0);
	assert_int_equal(next, T0 + 10 * MS);
	assert_int_equal(errors(f, f->h[1], 5, CB_5XX, T0), 1);
	assert_int_equal(cb_sweep(&f->cb, T0 + 5 * MS, out, 4, &next), 0); /* not due */
	assert_int_equal(next, T0 + 10 * MS);
	assert_int_equal(cb_sweep(&f->cb, T0 + 50 * MS, out, 4, &next), 0);
	assert_int_equal(next, T0 + 60 * MS);
	assert_int_equal(cb_sweep(&f->cb, T0 + 99 * MS, out, 4, &next), 0);
	assert_int_equal(next, T0 + 109 * MS);
	assert_false(cb_host_available(&f->cb, f->h[1], T0 + 100 * MS));
	/* time is up at +100 ms, but the pool's next sweep is +109 ms (Envoy: on a tick) */
	assert_int_equal(cb_sweep(&f->cb, T0 + 100 * MS, out, 4, &next), 0);
	assert_false(cb_host_available(&f->cb, f->h[1], T0 + 100 * MS));
	assert_int_equal(cb_sweep(&f->cb, T0 + 109 * MS, out, 4, &next), 1);
	assert_ptr_equal(out[0], f->h[1]);
	assert_true(cb_host_available(&f->cb, f->h[1], T0 + 109 * MS));
	assert_int_equal(f->h[1]->unejected_at_ns, T0 + 109 * MS);
	assert_int_equal(f->p->ejected, 0);
	assert_int_equal(f->m->hdr.last_sweep_ns, T0 + 109 * MS);
	/* returned once only */
	assert_int_equal(cb_sweep(&f->cb, T0 + 200 * MS, out, 4, NULL), 0);
	/* with a 1 ns interval every sweep looks: not a nanosecond early, then at once */
	l.interval_ns = 1;
	assert_int_equal(cb_pool_configure(f->p, &l, 2, 2, T0 + 200 * MS), 0);
	assert_int_equal(errors(f, f->h[0], 5, CB_5XX, T0 + SEC), 1);
	assert_int_equal(f->h[0]->ejected_until_ns, T0 + SEC + 100 * MS);
	assert_int_equal(cb_sweep(&f->cb, T0 + SEC + 100 * MS - 1, out, 4, &next), 0);
	assert_int_equal(next, T0 + SEC + 100 * MS);
	assert_int_equal(cb_sweep(&f->cb, T0 + SEC + 100 * MS, out, 4, &next), 1);
	assert_ptr_equal(out[0], f->h[0]);
}

/* Returns h from an ejection: sweeps at until (the interval is 1 ms). */
static uint64_t sweep_back(struct fx *f, struct rm_cb_host *h)
{
	uint64_t t = h->ejected_until_ns;

	assert_int_equal(cb_sweep(&f->cb, t, NULL, 0, NULL), 1);
	assert_true(cb_host_available(&f->cb, h, t));
	return t;
}

static void test_backoff_and_cap(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(1, 100 * SEC, 1 * MS, 100);
	uint64_t t = T0;
	const uint64_t want[] = {100, 200, 300, 300, 300};

	mk_pool(f, &l, 1);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_5XX, t), 1);
		assert_int_equal(f->h[0]->eject_k, i + 1);
		assert_int_equal(f->h[0]->ejected_until_ns - f->h[0]->ejected_at_ns, want[i] * SEC);
		t = sweep_back(f, f->h[0]);
	}
	assert_int_equal(f->h[0]->total_ejections, 5);
}

static void test_second_ejection_twice_as_long(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(5, 100 * MS, 1 * MS, 100);
	uint64_t t;

	mk_pool(f, &l, 1);
	assert_int_equal(errors(f, f->h[0], 5, CB_5XX, T0), 1);
	assert_int_equal(f->h[0]->ejected_until_ns, T0 + 100 * MS);
	t = sweep_back(f, f->h[0]);
	assert_int_equal(errors(f, f->h[0], 4, CB_5XX, t), 0);
	assert_int_equal(errors(f, f->h[0], 1, CB_5XX, t), 1);
	assert_int_equal(f->h[0]->ejected_until_ns, t + 200 * MS);
}

static void test_base_above_cap(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(1, 400 * SEC, 1 * MS, 100);

	mk_pool(f, &l, 1);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_5XX, T0), 1);
	assert_int_equal(f->h[0]->ejected_until_ns, T0 + 400 * SEC);
	sweep_back(f, f->h[0]);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_5XX, T0 + 400 * SEC), 1);
	/* the cap is max(300 s, base): never shorter than one base */
	assert_int_equal(f->h[0]->ejected_until_ns - f->h[0]->ejected_at_ns, 400 * SEC);
}

/* k decays by one per interval the host stays in after its return. */
static void test_backoff_decay(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(1, 100 * MS, 50 * MS, 100);
	struct rm_cb_host *h;
	uint64_t t;

	mk_pool(f, &l, 1);
	h = f->h[0];
	assert_int_equal(cb_host_result(&f->cb, h, CB_5XX, T0), 1);
	assert_int_equal(cb_sweep(&f->cb, T0 + 100 * MS, NULL, 0, NULL), 1);
	t = T0 + 100 * MS;
	assert_int_equal(cb_host_result(&f->cb, h, CB_5XX, t), 1);
	assert_int_equal(h->eject_k, 2);
	assert_int_equal(cb_sweep(&f->cb, t + 200 * MS, NULL, 0, NULL), 1);
	t += 200 * MS;
	assert_int_equal(h->eject_k, 2); /* not in the sweep that returned it */
	assert_int_equal(cb_sweep(&f->cb, t + 25 * MS, NULL, 0, NULL), 0); /* not due */
	assert_int_equal(h->eject_k, 2);
	assert_int_equal(cb_sweep(&f->cb, t + 50 * MS, NULL, 0, NULL), 0);
	assert_int_equal(h->eject_k, 1);
	assert_int_equal(cb_sweep(&f->cb, t + 100 * MS, NULL, 0, NULL), 0);
	assert_int_equal(h->eject_k, 0);
	assert_int_equal(cb_sweep(&f->cb, t + 150 * MS, NULL, 0, NULL), 0);
	assert_int_equal(h->eject_k, 0);
	assert_int_equal(cb_host_result(&f->cb, h, CB_5XX, t + 150 * MS), 1);
	assert_int_equal(h->ejected_until_ns, t + 250 * MS); /* 1 x base again */
}

static void test_max_ejection_percent_10_hosts(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(3, 100 * MS, 1 * MS, 10);

	mk_pool(f, &l, 10);
	assert_int_equal(errors(f, f->h[0], 3, CB_5XX, T0), 1);
	/* 2 of 10 would be 20% > 10% */
	assert_int_equal(errors(f, f->h[1], 3, CB_5XX, T0), 0);
	assert_true(cb_host_available(&f->cb, f->h[1], T0));
	assert_int_equal(f->h[1]->ejections_denied, 1);
	assert_int_equal(f->h[1]->consecutive_errors, 0); /* the run restarts, as Envoy's */
	assert_int_equal(f->p->ejected, 1);
	/* once the first is back, the next run of errors ejects the second */
	sweep_back(f, f->h[0]);
	assert_int_equal(errors(f, f->h[1], 3, CB_5XX, T0 + 200 * MS), 1);
	assert_int_equal(f->p->ejected, 1);
}

static void test_max_ejection_percent_2_hosts(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(3, 100 * MS, 1 * MS, 10);

	mk_pool(f, &l, 2);
	/* 1 of 2 is 50% > 10%, but one host may always be ejected */
	assert_int_equal(errors(f, f->h[0], 3, CB_5XX, T0), 1);
	assert_int_equal(errors(f, f->h[1], 3, CB_5XX, T0), 0);
	assert_true(cb_host_available(&f->cb, f->h[1], T0));
	assert_int_equal(f->p->ejected, 1);
}

static void test_all_ejected_lb_enoent(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(1, 100 * MS, 1 * MS, 100);
	const uint32_t members[2] = {7, 9};
	struct lb_state s;
	struct cb_lb_ctx ctx;
	struct lb_hooks hooks = {cb_lb_available, cb_lb_active, &ctx};
	size_t pos;

	mk_pool(f, &l, 2);
	ctx = (struct cb_lb_ctx){&f->cb, members, f->h, 2, T0};
	assert_int_equal(lb_init(&s, RM_LB_ROUND_ROBIN), 0);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_5XX, T0), 1);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(lb_pick(&s, members, 2, &hooks, 0, &pos), 0);
		assert_int_equal(pos, 1); /* only the healthy one */
	}
	assert_int_equal(cb_host_result(&f->cb, f->h[1], CB_5XX, T0), 1);
	assert_int_equal(lb_pick(&s, members, 2, &hooks, 0, &pos), -ENOENT);
	/* active counts reach LEAST_CONN through the same context */
	assert_int_equal(cb_request_try_start(f->p, f->h[1]), 0);
	assert_int_equal(cb_lb_active(&ctx, 9), 1);
	assert_int_equal(cb_lb_active(&ctx, 7), 0);
	cb_request_finish(f->p, f->h[1]);
	assert_int_equal(cb_lb_active(&ctx, 9), 0);
}

/* A stuck sweeper must not keep a host out forever. */
static void test_available_fails_open(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(1, 100 * MS, 10 * MS, 100);

	mk_pool(f, &l, 1);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_5XX, T0), 1);
	assert_false(cb_host_available(&f->cb, f->h[0], T0 + 120 * MS));
	assert_true(cb_host_available(&f->cb, f->h[0], T0 + 121 * MS));
}

/* Turning detection off returns ejected hosts at the next sweep. */
static void test_outlier_disabled_returns(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(1, 100 * SEC, 10 * SEC, 100);
	uint64_t next;

	mk_pool(f, &l, 1);
	assert_int_equal(cb_host_result(&f->cb, f->h[0], CB_5XX, T0), 1);
	assert_int_equal(cb_pool_configure(f->p, NULL, 1, 2, T0), 0);
	assert_int_equal(cb_sweep(&f->cb, T0 + MS, NULL, 0, &next), 1);
	assert_int_equal(next, UINT64_MAX);
	assert_true(cb_host_available(&f->cb, f->h[0], T0 + MS));
	assert_int_equal(f->h[0]->eject_k, 0);
}

static void test_admission_limits(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l;

	cb_limits_default(&l);
	l.max_connections = 2;
	l.max_pending = 1;
	l.max_requests = 3;
	l.max_retries = 1;
	mk_pool(f, &l, 1);
	/* connections: reaching the limit is not an error, the request waits */
	assert_int_equal(cb_conn_try_open(f->p), 0);
	assert_int_equal(cb_conn_try_open(f->p), 0);
	assert_int_equal(cb_conn_try_open(f->p), -EBUSY);
	assert_int_equal(f->p->cx_overflow, 1);
	assert_int_equal(cb_pending_try_enter(f->p), 0);
	assert_int_equal(cb_pending_try_enter(f->p), -EOVERFLOW);
	assert_int_equal(f->p->pending_overflow, 1);
	cb_conn_close(f->p);
	assert_int_equal(cb_conn_try_open(f->p), 0);
	cb_pending_leave(f->p);
	for (int i = 0; i < 3; i++)
		assert_int_equal(cb_request_try_start(f->p, f->h[0]), 0);
	assert_int_equal(cb_request_try_start(f->p, f->h[0]), -EOVERFLOW);
	assert_int_equal(f->p->rq_overflow, 1);
	assert_int_equal(f->h[0]->active, 3); /* a refused request is not active */
	assert_int_equal(cb_retry_try_start(f->p), 0);
	assert_int_equal(cb_retry_try_start(f->p), -EOVERFLOW);
	assert_int_equal(f->p->retry_overflow, 1);
	cb_retry_finish(f->p);
	for (int i = 0; i < 3; i++)
		cb_request_finish(f->p, f->h[0]);
	cb_conn_close(f->p);
	cb_conn_close(f->p);
	/* balanced, and a release too many does not wrap */
	cb_request_finish(f->p, f->h[0]);
	cb_pending_leave(f->p);
	cb_conn_close(f->p);
	cb_retry_finish(f->p);
	assert_int_equal(f->p->connections, 0);
	assert_int_equal(f->p->pending, 0);
	assert_int_equal(f->p->requests, 0);
	assert_int_equal(f->p->retries, 0);
	assert_int_equal(f->h[0]->active, 0);
	/* a limit of 0 admits nothing; unlimited admits everything */
	l.max_requests = 0;
	assert_int_equal(cb_pool_configure(f->p, &l, 1, 2, T0), 0);
	assert_int_equal(cb_request_try_start(f->p, NULL), -EOVERFLOW);
	l.max_requests = RM_CFG_UNLIMITED;
	assert_int_equal(cb_pool_configure(f->p, &l, 1, 3, T0), 0);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(cb_request_try_start(f->p, NULL), 0);
	assert_int_equal(f->p->requests, 5000);
}

static void test_requests_per_connection(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l;

	cb_limits_default(&l);
	mk_pool(f, &l, 1);
	assert_true(cb_conn_keep(f->p, 1000000)); /* 0 = unlimited */
	l.max_requests_per_conn = 1;		  /* no keep-alive */
	assert_int_equal(cb_pool_configure(f->p, &l, 1, 2, T0), 0);
	assert_false(cb_conn_keep(f->p, 1));
	l.max_requests_per_conn = 3;
	assert_int_equal(cb_pool_configure(f->p, &l, 1, 3, T0), 0);
	assert_true(cb_conn_keep(f->p, 1));
	assert_true(cb_conn_keep(f->p, 2));
	assert_false(cb_conn_keep(f->p, 3));
	assert_true(cb_conn_keep(NULL, 99));
}

/* ---- contention ---- */

#define NTHREADS 4
#define ITERS 200000
#define MAXRQ 8

struct hammer {
	struct fx *f;
	uint32_t inflight; /* admitted and not yet finished, as the test sees it */
	uint32_t high;	   /* high-water mark of inflight */
	uint64_t admitted, refused;
	pthread_barrier_t bar;
};

static void high_water(struct hammer *hm, uint32_t v)
{
	uint32_t h = __atomic_load_n(&hm->high, __ATOMIC_RELAXED);

	while (v > h && !__atomic_compare_exchange_n(&hm->high, &h, v, true, __ATOMIC_RELAXED,
						     __ATOMIC_RELAXED))
		;
}

static void *hammer_fn(void *arg)
{
	struct hammer *hm = arg;
	struct rm_cb_pool *p = hm->f->p;
	struct rm_cb_host *h = hm->f->h[0];
	uint64_t ok = 0, no = 0;

	pthread_barrier_wait(&hm->bar);
	for (int i = 0; i < ITERS; i++) {
		bool cx = cb_conn_try_open(p) == 0, pend = false;

		if (!cx)
			pend = cb_pending_try_enter(p) == 0;
		if (cb_request_try_start(p, h)) {
			no++;
		} else {
			ok++;
			high_water(hm, __atomic_add_fetch(&hm->inflight, 1, __ATOMIC_ACQ_REL));
			__atomic_sub_fetch(&hm->inflight, 1, __ATOMIC_ACQ_REL);
			cb_request_finish(p, h);
		}
		if (pend)
			cb_pending_leave(p);
		if (cx)
			cb_conn_close(p);
	}
	__atomic_fetch_add(&hm->admitted, ok, __ATOMIC_RELAXED);
	__atomic_fetch_add(&hm->refused, no, __ATOMIC_RELAXED);
	return NULL;
}

static void test_contention(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l;
	struct hammer hm = {.f = f};
	pthread_t th[NTHREADS];

	cb_limits_default(&l);
	l.max_requests = MAXRQ / 4; /* 2: fewer than the threads, so some are refused */
	l.max_connections = 2;
	l.max_pending = 1;
	mk_pool(f, &l, 1);
	pthread_barrier_init(&hm.bar, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer_fn, &hm), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&hm.bar);
	assert_true(hm.high <= MAXRQ / 4);
	assert_true(hm.high >= 1);
	assert_int_equal(hm.admitted + hm.refused, (uint64_t)NTHREADS * ITERS);
	assert_int_equal(f->p->rq_overflow, hm.refused);
	assert_int_equal(f->p->requests, 0);
	assert_int_equal(f->p->connections, 0);
	assert_int_equal(f->p->pending, 0);
	assert_int_equal(f->h[0]->active, 0);
	print_message("contention: %llu admitted, %llu refused, high-water %u of %u\n",
		      (unsigned long long)hm.admitted, (unsigned long long)hm.refused, hm.high,
		      MAXRQ / 4);
}

struct racer {
	struct fx *f;
	int host; /* -1: thread index picks the host */
	int idx;
	pthread_barrier_t *bar;
	int ejected;
};

static void *racer_fn(void *arg)
{
	struct racer *r = arg;
	struct rm_cb_host *h = r->f->h[r->host >= 0 ? r->host : r->idx];

	pthread_barrier_wait(r->bar);
	for (int i = 0; i < 1000; i++)
		r->ejected += cb_host_result(&r->f->cb, h, CB_5XX, T0);
	return NULL;
}

static int race(struct fx *f, int host, int n)
{
	pthread_barrier_t bar;
	pthread_t th[16];
	struct racer r[16];
	int total = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		r[i] = (struct racer){f, host, i, &bar, 0};
		assert_int_equal(pthread_create(&th[i], NULL, racer_fn, &r[i]), 0);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		total += r[i].ejected;
	}
	pthread_barrier_destroy(&bar);
	return total;
}

/* Threads failing on one host eject it once; on many hosts, never past the quota. */
static void test_eject_races(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(5, 100 * MS, 1 * MS, 50);

	mk_pool(f, &l, 10);
	assert_int_equal(race(f, 0, 4), 1);
	assert_int_equal(f->h[0]->total_ejections, 1);
	assert_int_equal(f->p->ejected, 1);
	sweep_back(f, f->h[0]);
	assert_int_equal(f->p->ejected, 0);
	assert_int_equal(race(f, -1, 8), 5); /* 50% of 10 */
	assert_int_equal(f->p->ejected, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_table_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_configure_rejects, setup, teardown),
	    cmocka_unit_test(test_outcome_of_status),
	    cmocka_unit_test_setup_teardown(test_eject_exactly_n, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_error_kind_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_success_resets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overflow_not_host_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gateway_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outlier_off_counts_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sweep_timing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backoff_and_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_ejection_twice_as_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_base_above_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backoff_decay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_ejection_percent_10_hosts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_ejection_percent_2_hosts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_all_ejected_lb_enoent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_available_fails_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outlier_disabled_returns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_admission_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_requests_per_connection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_contention, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_eject_races, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
