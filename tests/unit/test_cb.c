/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for the breaker (cb): ejection after exactly N consecutive errors, resets,
 * gateway errors, k x base backoff with its cap and decay, max ejection percent, the
 * sweep's timing, the sweep schedule and the result accounting after a policy is
 * re-tuned (the 2 s / 4 s / 6 s sequence under steady load), overflow not being a host error,
 * admission limits (also under four threads hammering one pool), and the balancer hooks. Injected
 * clock, no sockets. */
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
	void *m; /* the map's memory, RM_CB_BYTES of the defaults */
	size_t len;
	struct cb cb;
	struct rm_cb_pool *p;
	struct rm_cb_host *h[16];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->len = RM_CB_BYTES(RM_CB_POOLS, RM_CB_HOSTS);
	f->m = calloc(1, f->len);
	assert_non_null(f->m);
	assert_int_equal(cb_attach(&f->cb, f->m, f->len, RM_CB_POOLS, RM_CB_HOSTS, 42), 0);
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

	assert_int_equal(f->cb.h->magic, RM_CB_MAGIC);
	assert_int_equal(f->cb.h->started_ns, 42);
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
	assert_int_equal(f->cb.h->pools_dropped, (uint64_t)(RM_CB_POOLS + 8 - got));
	assert_true(f->cb.h->pools_dropped >= 8);
	assert_int_equal(f->cb.h->pools_used, got);
	/* a pool without a slot fails open */
	assert_int_equal(cb_request_try_start(NULL, NULL), 0);
	assert_int_equal(cb_conn_try_open(NULL), 0);
	assert_int_equal(cb_pending_try_enter(NULL), 0);
	assert_int_equal(cb_retry_try_start(NULL), 0);
	assert_true(cb_host_available(&f->cb, NULL, T0));
}

/* --breaker-pools / --breaker-hosts: the sizes, the pages, where the regions lie. */
static void test_sizes(void **state)
{
	uint32_t np, nh;

	(void)state;
	cb_size(0, 0, &np, &nh);
	assert_int_equal(np, 256);
	assert_int_equal(nh, 4096);
	/* the defaults: a 4 KiB header, 256 x 384 B pools, 4096 x 136 B hosts */
	assert_int_equal(cb_pages(np, nh), 161);
	assert_int_equal(RM_CB_MAP_PAGES, 161);
	cb_size(512, 0, &np, &nh);
	assert_int_equal(np, 512);
	assert_int_equal(nh, 8192); /* hosts follow: 16 per pool */
	assert_int_equal(RM_CB_HOST_OFF(512), 4096 + 512 * 384);
	assert_int_equal(cb_pages(np, nh), (4096 + 512 * 384 + 8192 * 136 + 4095) / 4096);
	cb_size(512, 100, &np, &nh);
	assert_int_equal(nh, 100);
	cb_size(RM_CB_POOLS_MAX, 0, &np, &nh);
	assert_int_equal(nh, RM_CB_HOSTS_MAX);
	/* hosts stay 64-byte aligned whatever the pool count */
	assert_int_equal(RM_CB_HOST_OFF(17) % 64, 0);
}

/* A map initialised for some sizes is that map: other sizes, a short mapping, a
 * header of another layout or one pointing past the mapping are refused. */
static void test_attach_and_locate(void **state)
{
	size_t len = RM_CB_BYTES(1000, 3000);
	void *mem = calloc(1, len);
	struct rm_cb_hdr *h = mem;
	struct cb cb, ro;

	(void)state;
	assert_non_null(mem);
	assert_int_equal(cb_locate(&ro, mem, len), -ENOENT); /* no daemon yet */
	assert_int_equal(cb_attach(&cb, mem, len - 1, 1000, 3000, 7), -ENOSPC);
	assert_int_equal(h->magic, 0);
	assert_int_equal(cb_attach(&cb, mem, len, RM_CB_POOLS_MAX + 1, 3000, 7), -EINVAL);
	assert_int_equal(cb_attach(&cb, mem, len, 1000, 3000, 7), 0);
	assert_int_equal(h->n_pools, 1000);
	assert_int_equal(h->n_hosts, 3000);
	assert_int_equal(h->pool_off, RM_CB_PAGE);
	assert_int_equal(h->host_off, RM_CB_HOST_OFF(1000));
	assert_ptr_equal(cb.pools, (char *)mem + RM_CB_PAGE);
	assert_ptr_equal(cb.hosts, (char *)mem + RM_CB_HOST_OFF(1000));
	/* attached again (a successor): the same state, not re-initialised */
	h->pools_dropped = 5;
	assert_int_equal(cb_attach(&cb, mem, len, 1000, 3000, 8), 0);
	assert_int_equal(h->started_ns, 7);
	assert_int_equal(h->pools_dropped, 5);
	/* another size: refused, nothing written */
	assert_int_equal(cb_attach(&cb, mem, len, 1000, 2999, 9), -EPROTO);
	assert_null(cb.pools);
	assert_int_equal(cb_attach(&cb, mem, len, 256, 4096, 9), -EPROTO);
	assert_int_equal(h->n_pools, 1000);
	/* readers take the sizes from the header */
	assert_int_equal(cb_locate(&ro, mem, len), 0);
	assert_int_equal(ro.n_pools, 1000);
	assert_int_equal(ro.n_hosts, 3000);
	assert_ptr_equal(ro.hosts, (char *)mem + RM_CB_HOST_OFF(1000));
	assert_int_equal(cb_locate(&ro, mem, len - 8), -EINVAL); /* hosts past the end */
	h->n_hosts = RM_CB_HOSTS_MAX + 1;
	assert_int_equal(cb_locate(&ro, mem, RM_CB_BYTES(1000, RM_CB_HOSTS_MAX + 1)), -EINVAL);
	h->n_hosts = 3000;
	h->abi_version = 1;
	assert_int_equal(cb_locate(&ro, mem, len), -EPROTO);
	free(mem);
}

/*
 * At a size other than the default (600 pools: more than the 256 of the defaults, not
 * a power of two): claims fill the table up to the probe bound, every slot in the
 * region and none twice; past it new pools fail open and are counted, while the ones
 * with a slot are still found. Then a pool past the default's 256 slots is swept.
 */
static void test_claims_nondefault(void **state)
{
	const uint32_t np = 600, nh = 50;
	size_t len = RM_CB_BYTES(np, nh);
	void *mem = calloc(1, len);
	struct rm_cb_pool **got = calloc(4 * np, sizeof(*got));
	struct rm_cb_host *hs[200], *out[4];
	struct rm_cfg_breaker l = lim_outlier(1, 100 * MS, 10 * MS, 100);
	struct rm_cb_pool *high = NULL;
	struct rm_addr x = addr_of(0);
	uint32_t n = 0, nhs = 0, tries = 4 * np;
	uint64_t next;
	char name[32];
	struct cb cb;

	(void)state;
	assert_non_null(mem);
	assert_non_null(got);
	assert_int_equal(cb_attach(&cb, mem, len, np, nh, 1), 0);
	for (uint32_t i = 0; i < tries; i++) {
		snprintf(name, sizeof(name), "svc-%u.ns", i);
		got[i] = cb_pool(&cb, name, i % 2 ? "v1" : NULL);
		if (!got[i])
			continue;
		assert_true(got[i] >= cb.pools && got[i] < cb.pools + np);
		for (uint32_t j = 0; j < i; j++)
			assert_ptr_not_equal(got[j], got[i]);
		if (cb_pool_index(&cb, got[i]) >= RM_CB_POOLS)
			high = got[i];
		n++;
	}
	/* more than the default table holds, at most this one's; nearly full */
	assert_true(n > RM_CB_POOLS);
	assert_true(n <= np);
	assert_true(n >= np * 9 / 10);
	assert_int_equal(cb.h->pools_used, n);
	assert_int_equal(cb.h->pools_dropped, tries - n);
	/* full: a new pool fails open, counted; the claimed ones are found, unchanged */
	assert_null(cb_pool(&cb, "one-more.ns", "v9"));
	assert_int_equal(cb.h->pools_dropped, tries - n + 1);
	for (uint32_t i = 0; i < tries; i++) {
		snprintf(name, sizeof(name), "svc-%u.ns", i);
		assert_ptr_equal(cb_pool_find(&cb, name, i % 2 ? "v1" : NULL), got[i]);
	}
	assert_int_equal(cb.h->pools_used, n);
	/* hosts: the 50 slots of this table, then none; all on their pool's list, newest
	 * first, each once */
	high = got[0] ? got[0] : high;
	for (uint32_t i = 0; i < 200; i++) {
		hs[nhs] = cb_host(&cb, high, &x, htobe16((uint16_t)(1000 + i)), 2);
		if (hs[nhs]) {
			assert_true(hs[nhs] >= cb.hosts && hs[nhs] < cb.hosts + nh);
			nhs++;
		}
	}
	assert_true(nhs <= nh && nhs >= nh * 9 / 10);
	assert_int_equal(cb.h->hosts_used, nhs);
	assert_int_equal(cb.h->hosts_dropped, 200 - nhs);
	{
		uint32_t at = high->host_head, k = nhs;

		while (at) {
			assert_true(k > 0 && at <= nh);
			assert_ptr_equal(&cb.hosts[at - 1], hs[--k]);
			at = cb.hosts[at - 1].next;
		}
		assert_int_equal(k, 0);
	}
	free(got);
	free(mem);

	/* a pool beyond slot 255 is swept like any other (a sweep bounded by the
	 * default would leave its host out for ever) */
	len = RM_CB_BYTES(np, 16 * np);
	mem = calloc(1, len);
	assert_non_null(mem);
	assert_int_equal(cb_attach(&cb, mem, len, np, 16 * np, 1), 0);
	high = NULL;
	for (uint32_t i = 0; !high && i < tries; i++) {
		struct rm_cb_pool *p;

		snprintf(name, sizeof(name), "svc-%u.ns", i);
		p = cb_pool(&cb, name, NULL);
		if (p && cb_pool_index(&cb, p) >= RM_CB_POOLS)
			high = p;
	}
	assert_non_null(high);
	assert_int_equal(cb_pool_configure(high, &l, 2, 1, T0), 0);
	hs[0] = cb_host(&cb, high, &x, htobe16(80), 2);
	assert_non_null(hs[0]);
	assert_int_equal(hs[0]->key.pool, cb_pool_index(&cb, high));
	assert_int_equal(cb_host_result(&cb, hs[0], CB_5XX, T0), 1);
	assert_false(cb_host_available(&cb, hs[0], T0 + MS));
	assert_int_equal(cb_sweep(&cb, T0 + 200 * MS, out, 4, &next), 1);
	assert_ptr_equal(out[0], hs[0]);
	assert_true(cb_host_available(&cb, hs[0], T0 + 200 * MS));
	free(mem);
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
	assert_int_equal(f->cb.h->last_sweep_ns, T0 + 109 * MS);
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

/* ---- re-tuning (issue 8): the workshop policy, then a tuned one of the same name ---- */

/* dest-rule.yaml as is: 7 errors, sleepWindow 5m, httpDetectionInterval 2m */
static struct rm_cfg_breaker lim_workshop(void)
{
	return lim_outlier(7, 300 * SEC, 120 * SEC, 10);
}

/* the tuned DestinationPolicy: 3 errors, sleepWindow 2s, httpDetectionInterval 200ms */
static struct rm_cfg_breaker lim_tuned(void)
{
	return lim_outlier(3, 2 * SEC, 200 * MS, 10);
}

/* A shorter interval applies at once: the sweep the old one scheduled 2 min ahead
 * must not keep the pool's hosts out that long. */
static void test_retune_shorter_interval(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker w = lim_workshop(), t = lim_tuned();
	uint64_t next, at;

	mk_pool(f, &w, 2);
	assert_int_equal(cb_sweep(&f->cb, T0, NULL, 0, &next), 0);
	assert_int_equal(next, T0 + 120 * SEC);
	assert_int_equal(cb_pool_configure(f->p, &t, 2, 2, T0 + SEC), 0);
	assert_int_equal(f->p->next_sweep_ns, T0 + SEC + 200 * MS);
	assert_int_equal(cb_sweep(&f->cb, T0 + SEC + 100 * MS, NULL, 0, &next), 0);
	assert_int_equal(next, T0 + SEC + 200 * MS);
	assert_int_equal(errors(f, f->h[1], 3, CB_5XX, T0 + SEC), 1);
	assert_int_equal(f->h[1]->ejected_until_ns, T0 + 3 * SEC);
	/* ticks every 200 ms from the re-tune: back at the first one at or after +3 s */
	for (at = T0 + SEC + 200 * MS; at < T0 + 3 * SEC; at += 200 * MS) {
		assert_int_equal(cb_sweep(&f->cb, at, NULL, 0, &next), 0);
		assert_int_equal(next, at + 200 * MS);
		assert_false(cb_host_available(&f->cb, f->h[1], at));
	}
	assert_int_equal(at, T0 + 3 * SEC);
	assert_int_equal(cb_sweep(&f->cb, at, NULL, 0, &next), 1);
	assert_true(cb_host_available(&f->cb, f->h[1], at));
	assert_int_equal(f->p->ejected, 0);
	/* and it is judged again: 3 more errors eject it for 2 x 2 s */
	assert_int_equal(errors(f, f->h[1], 3, CB_5XX, at + MS), 1);
	assert_int_equal(f->h[1]->ejected_until_ns - f->h[1]->ejected_at_ns, 4 * SEC);
}

/* A longer interval applies from the sweep already scheduled; the same interval
 * leaves the schedule alone; a pool never swept stays due at once. */
static void test_retune_longer_interval(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker w = lim_workshop(), t = lim_tuned();
	uint64_t next;

	mk_pool(f, &t, 2);
	assert_int_equal(f->p->next_sweep_ns, 0); /* never swept: due at once */
	assert_int_equal(cb_sweep(&f->cb, T0, NULL, 0, &next), 0);
	assert_int_equal(next, T0 + 200 * MS);
	assert_int_equal(cb_pool_configure(f->p, &t, 2, 2, T0 + 150 * MS), 0);
	assert_int_equal(f->p->next_sweep_ns, T0 + 200 * MS);
	assert_int_equal(cb_pool_configure(f->p, &w, 2, 3, T0 + 50 * MS), 0);
	assert_int_equal(f->p->next_sweep_ns, T0 + 200 * MS); /* not T0 + 50 ms + 2 min */
	assert_int_equal(cb_sweep(&f->cb, T0 + 100 * MS, NULL, 0, &next), 0);
	assert_int_equal(next, T0 + 200 * MS);
	assert_int_equal(cb_sweep(&f->cb, T0 + 200 * MS, NULL, 0, &next), 0);
	assert_int_equal(next, T0 + 200 * MS + 120 * SEC);
	assert_int_equal(f->p->next_sweep_ns, T0 + 200 * MS + 120 * SEC);
	/* turning detection off and on again: now + interval at the latest */
	assert_int_equal(cb_pool_configure(f->p, NULL, 2, 4, T0 + SEC), 0);
	assert_int_equal(cb_pool_configure(f->p, &t, 2, 5, T0 + 2 * SEC), 0);
	assert_int_equal(f->p->next_sweep_ns, T0 + 2 * SEC + 200 * MS);
}

/* Past its time but before the sweep (DUE) a host is neither picked nor counted;
 * once overdue it is picked (fail open), so what it answers counts. */
static void test_past_time_accounting(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(3, SEC, 100 * MS, 100);
	struct rm_cb_host *h;
	uint64_t until;

	mk_pool(f, &l, 2);
	h = f->h[0];
	assert_int_equal(errors(f, h, 3, CB_5XX, T0), 1);
	until = h->ejected_until_ns;
	assert_int_equal(cb_host_phase(f->p, h, until - 1), CB_PHASE_OUT);
	assert_int_equal(cb_host_phase(f->p, h, until), CB_PHASE_DUE);
	assert_false(cb_host_available(&f->cb, h, until + 50 * MS));
	/* a late answer of a request in flight at the ejection: not counted */
	assert_int_equal(errors(f, h, 3, CB_5XX, until + 50 * MS), 0);
	assert_int_equal(h->errors_total, 3);
	assert_int_equal(h->eject_k, 1);
	/* no sweep came for two intervals: overdue, picked, and judged */
	assert_int_equal(cb_host_phase(f->p, h, until + 200 * MS), CB_PHASE_DUE);
	assert_int_equal(cb_host_phase(f->p, h, until + 201 * MS), CB_PHASE_OVERDUE);
	assert_true(cb_host_available(&f->cb, h, until + 201 * MS));
	assert_int_equal(errors(f, h, 2, CB_5XX, until + 201 * MS), 0);
	assert_int_equal(h->ejected, RM_CB_IN); /* its first result took it back in */
	assert_int_equal(h->unejected_at_ns, until + 201 * MS);
	assert_int_equal(f->p->ejected, 0);
	assert_int_equal(h->errors_total, 5);
	assert_int_equal(errors(f, h, 1, CB_5XX, until + 202 * MS), 1);
	assert_int_equal(h->eject_k, 2);
	assert_int_equal(f->p->ejected, 1);
	assert_int_equal(h->ejected_until_ns, until + 202 * MS + 2 * SEC);
	/* an overdue host that answers well is back in too */
	until = h->ejected_until_ns;
	assert_int_equal(cb_host_result(&f->cb, h, CB_SUCCESS, until + SEC), 0);
	assert_int_equal(h->ejected, RM_CB_IN);
	assert_int_equal(f->p->ejected, 0);
	/* the sweep less than an interval later does not count that as a healthy interval */
	assert_int_equal(cb_sweep(&f->cb, until + SEC + 50 * MS, NULL, 0, NULL), 0);
	assert_int_equal(h->eject_k, 2);
	assert_int_equal(cb_sweep(&f->cb, until + SEC + 150 * MS, NULL, 0, NULL), 0);
	assert_int_equal(h->eject_k, 1);
}

/* The invariant behind the two causes: at any time, with a sweeper that keeps its
 * schedule or one that stalls, a host the balancer may pick has its result counted
 * and one it may not has none. */
static void test_available_iff_counted(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker l = lim_outlier(2, 300 * MS, 50 * MS, 100);
	uint64_t t = T0, next = 0, rnd = 88172645463325252ull;
	unsigned counted = 0, ignored = 0, overdue = 0;

	mk_pool(f, &l, 2);
	for (int i = 0; i < 20000; i++) {
		struct rm_cb_host *h;
		uint64_t before;
		bool avail;

		rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
		t += (rnd % 20 + 1) * MS;
		/* the sweeper stalls for a second now and then */
		if (t >= next && (t / SEC) % 4 != 3) {
			cb_sweep(&f->cb, t, NULL, 0, &next);
			if (i % 500 == 0) /* and the policy is re-tuned */
				assert_int_equal(cb_pool_configure(f->p, &l, 2, 2 + i, t), 0);
		}
		h = f->h[(rnd >> 20) & 1];
		avail = cb_host_available(&f->cb, h, t);
		overdue += cb_host_phase(f->p, h, t) == CB_PHASE_OVERDUE;
		before = h->errors_total + h->successes_total;
		cb_host_result(&f->cb, h, (rnd >> 24) % 3 ? CB_SUCCESS : CB_5XX, t);
		assert_int_equal(h->errors_total + h->successes_total, before + (avail ? 1 : 0));
		if (avail)
			counted++;
		else
			ignored++;
		assert_int_equal(f->p->ejected,
				 (f->h[0]->ejected != RM_CB_IN) + (f->h[1]->ejected != RM_CB_IN));
	}
	print_message("available and counted %u (overdue %u), not available and ignored %u\n",
		      counted, overdue, ignored);
	assert_true(counted > 1000 && ignored > 1000 && overdue > 50);
}

/* The daemon under steady load, simulated: a request every 10 ms, round robin over a
 * healthy host and one answering 500, the watcher sweeping when cb_sweep says (at
 * least every 1 s, as cfgw_sweep). The workshop policy first, then the tuned one. */
struct sim {
	struct fx *f;
	struct lb_state lb;
	uint64_t t, next_sweep;
	bool bad_fails; /* the bad host answers 500 (else 200) */
	unsigned burst; /* requests the bad host got since it was last returned */
	unsigned bursts[8], n_ej;
	uint64_t ej_at[8], back_at[8];
};

static void sim_run(struct sim *s, uint64_t until)
{
	static const uint32_t members[2] = {0, 1};
	struct fx *f = s->f;
	struct cb_lb_ctx ctx = {&f->cb, members, f->h, 2, 0};
	struct lb_hooks hooks = {cb_lb_available, cb_lb_active, &ctx};

	for (; s->t < until; s->t += 10 * MS) {
		uint32_t was = f->h[1]->ejected;
		size_t pos;

		if (s->t >= s->next_sweep) {
			uint64_t nx;

			cb_sweep(&f->cb, s->t, NULL, 0, &nx);
			s->next_sweep = nx < s->t + SEC ? nx : s->t + SEC;
			if (was != RM_CB_IN && f->h[1]->ejected == RM_CB_IN && s->n_ej)
				s->back_at[s->n_ej - 1] = s->t, s->burst = 0;
		}
		ctx.now = s->t;
		assert_int_equal(lb_pick(&s->lb, members, 2, &hooks, 0, &pos), 0);
		assert_int_equal(cb_request_try_start(f->p, f->h[pos]), 0);
		if (pos == 1)
			s->burst++;
		if (cb_host_result(&f->cb, f->h[pos],
				   pos == 1 && s->bad_fails ? CB_5XX : CB_SUCCESS, s->t) &&
		    s->n_ej < 8) {
			assert_int_equal(pos, 1);
			s->bursts[s->n_ej] = s->burst;
			s->ej_at[s->n_ej++] = s->t;
		}
		cb_request_finish(f->p, f->h[pos]);
	}
}

static void test_retuned_steady_load_2_4_6(void **state)
{
	struct fx *f = *state;
	struct rm_cfg_breaker w = lim_workshop(), t = lim_tuned();
	struct sim s = {.f = f, .t = T0, .bad_fails = false};
	const uint64_t want[3] = {2 * SEC, 4 * SEC, 6 * SEC};

	mk_pool(f, &w, 2);
	assert_int_equal(lb_init(&s.lb, RM_LB_ROUND_ROBIN), 0);
	sim_run(&s, T0 + SEC); /* healthy traffic under the workshop policy */
	assert_int_equal(f->p->next_sweep_ns, T0 + 120 * SEC);
	assert_int_equal(cb_pool_configure(f->p, &t, 2, 2, s.t), 0);
	s.next_sweep = 0; /* cfgwatch: a new configuration sweeps at once */
	s.bad_fails = true;
	s.burst = 0;
	sim_run(&s, s.t + 15 * SEC);
	assert_true(s.n_ej >= 3);
	for (unsigned i = 0; i < 3; i++) {
		uint64_t d = s.back_at[i] - s.ej_at[i];

		/* ejected at the 3rd consecutive error, back at the first tick after its
		 * time: k x 2 s, k = 1, 2, 3 (no healthy interval in between) */
		assert_int_equal(s.bursts[i], 3);
		assert_true(s.back_at[i] > s.ej_at[i]);
		if (d < want[i] || d > want[i] + 200 * MS)
			fail_msg("ejection %u lasted %llu ms, want %llu..%llu", i + 1,
				 (unsigned long long)(d / MS), (unsigned long long)(want[i] / MS),
				 (unsigned long long)((want[i] + 200 * MS) / MS));
	}
	assert_int_equal(f->h[0]->total_ejections, 0);
	/* healthy from its next return on: k decays once per interval spent in */
	while (f->h[1]->ejected != RM_CB_IN)
		sim_run(&s, s.t + 10 * MS);
	s.bad_fails = false;
	sim_run(&s, s.t + 210 * MS);
	assert_int_equal(f->h[1]->eject_k, s.n_ej - 1);
	sim_run(&s, s.t + SEC);
	assert_int_equal(f->h[1]->eject_k, 0);
	s.bad_fails = true;
	sim_run(&s, s.t + 100 * MS);
	assert_int_equal(f->h[1]->ejected_until_ns - f->h[1]->ejected_at_ns, 2 * SEC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_table_full, setup, teardown),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_attach_and_locate),
	    cmocka_unit_test(test_claims_nondefault),
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
	    cmocka_unit_test_setup_teardown(test_retune_shorter_interval, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retune_longer_interval, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_past_time_accounting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_available_iff_counted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retuned_steady_load_2_4_6, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
