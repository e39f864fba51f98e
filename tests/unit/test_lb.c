/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for the balancer: round-robin fairness (also across threads), least
 * request by two choices preferring the less loaded host, random spread, ejected
 * hosts skipped without doubling a neighbour's share, and -ENOENT when none is left. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>

#include "policy/lb.h"

#define NEP 8

struct hosts {
	bool ejected[64];
	uint32_t active[64];
	unsigned avail_calls;
};

static bool h_avail(void *ctx, uint32_t ep)
{
	struct hosts *h = ctx;

	h->avail_calls++;
	return !h->ejected[ep];
}

static uint32_t h_active(void *ctx, uint32_t ep)
{
	return ((struct hosts *)ctx)->active[ep];
}

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* members are endpoint indices 10..10+n-1, so positions and endpoints differ */
static const uint32_t members[NEP] = {10, 11, 12, 13, 14, 15, 16, 17};

static void test_init(void **state)
{
	struct lb_state s;

	assert_int_equal(lb_init(&s, RM_LB_LEAST_CONN), 0);
	assert_int_equal(s.policy, RM_LB_LEAST_CONN);
	assert_int_equal(lb_init(&s, 9), -EINVAL);
	assert_int_equal(lb_init(NULL, 0), -EINVAL);
}

static void test_round_robin_fair(void **state)
{
	struct lb_state s;
	unsigned cnt[NEP] = {0};
	size_t pos, last = NEP;

	lb_init(&s, RM_LB_ROUND_ROBIN);
	for (int i = 0; i < 8000; i++) {
		assert_int_equal(lb_pick(&s, members, NEP, NULL, 0, &pos), 0);
		assert_true(pos < NEP);
		/* strict rotation */
		if (last != NEP)
			assert_int_equal(pos, (last + 1) % NEP);
		last = pos;
		cnt[pos]++;
	}
	for (int i = 0; i < NEP; i++)
		assert_int_equal(cnt[i], 1000);
}

/* With host 2 ejected the other seven share evenly (a skip-to-next scan would give
 * host 3 twice the others' share). */
static void test_round_robin_skips_ejected_evenly(void **state)
{
	struct lb_state s;
	struct hosts h = {0};
	struct lb_hooks hk = {h_avail, h_active, &h};
	unsigned cnt[NEP] = {0};
	size_t pos;

	lb_init(&s, RM_LB_ROUND_ROBIN);
	h.ejected[12] = true;
	for (int i = 0; i < 7000; i++) {
		assert_int_equal(lb_pick(&s, members, NEP, &hk, 0, &pos), 0);
		cnt[pos]++;
	}
	for (int i = 0; i < NEP; i++)
		assert_int_equal(cnt[i], i == 2 ? 0 : 1000);
}

#define RR_PER_THREAD 5000000

static pthread_barrier_t rr_bar;

struct rr_thread {
	struct lb_state *s;
	unsigned cnt[NEP];
};

static void *rr_worker(void *arg)
{
	struct rr_thread *t = arg;
	size_t pos;

	pthread_barrier_wait(&rr_bar);
	for (int i = 0; i < RR_PER_THREAD; i++)
		if (lb_pick(t->s, members, NEP, NULL, 0, &pos) == 0)
			t->cnt[pos]++;
	return NULL;
}

/* The cursor is atomic: four threads sharing one state still share out exactly. */
static void test_round_robin_threads(void **state)
{
	struct lb_state s;
	struct rr_thread th[4];
	pthread_t tid[4];
	unsigned tot[NEP] = {0};

	lb_init(&s, RM_LB_ROUND_ROBIN);
	memset(th, 0, sizeof(th));
	pthread_barrier_init(&rr_bar, NULL, 4);
	for (int i = 0; i < 4; i++) {
		th[i].s = &s;
		assert_int_equal(pthread_create(&tid[i], NULL, rr_worker, &th[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&rr_bar);
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < NEP; k++)
			tot[k] += th[i].cnt[k];
	for (int k = 0; k < NEP; k++)
		assert_int_equal(tot[k], 4 * RR_PER_THREAD / NEP);
}

static void test_least_conn_prefers_less_loaded(void **state)
{
	struct lb_state s;
	struct hosts h = {0};
	struct lb_hooks hk = {h_avail, h_active, &h};
	unsigned cnt[NEP] = {0};
	size_t pos;
	const int n = 80000;

	lb_init(&s, RM_LB_LEAST_CONN);
	/* host 0 idle, the rest busy: host 0 wins every pair it is in: 2/8 of picks
	 * (P(in a pair of two distinct of eight) = 1 - 7/8 * 6/7 = 1/4) */
	for (int i = 1; i < NEP; i++)
		h.active[10 + i] = 5;
	rng_state = 11;
	for (int i = 0; i < n; i++) {
		assert_int_equal(lb_pick(&s, members, NEP, &hk, rng(), &pos), 0);
		cnt[pos]++;
	}
	assert_in_range(cnt[0], n / 4 - 600, n / 4 + 600);

	/* two hosts: the less loaded always wins, whatever the random value */
	memset(cnt, 0, sizeof(cnt));
	h.active[10] = 3;
	h.active[11] = 1;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(lb_pick(&s, members, 2, &hk, rng(), &pos), 0);
		cnt[pos]++;
	}
	assert_int_equal(cnt[1], 1000);

	/* the least loaded of the pair; a loaded host is never chosen over an idle one
	 * it was paired with: with loads 0..7 the busiest host can never win */
	memset(cnt, 0, sizeof(cnt));
	for (int i = 0; i < NEP; i++)
		h.active[10 + i] = (uint32_t)i;
	for (int i = 0; i < n; i++) {
		assert_int_equal(lb_pick(&s, members, NEP, &hk, rng(), &pos), 0);
		cnt[pos]++;
	}
	assert_int_equal(cnt[NEP - 1], 0);
	for (int i = 1; i < NEP - 1; i++)
		assert_true(cnt[i] < cnt[i - 1]);
	/* host k wins when paired only with busier ones: P = 2(7-k)/56 */
	assert_in_range(cnt[0], n * 14 / 56 - 600, n * 14 / 56 + 600);
	assert_in_range(cnt[3], n * 8 / 56 - 500, n * 8 / 56 + 500);
}

static void test_least_conn_and_random_skip_ejected(void **state)
{
	struct lb_state s;
	struct hosts h = {0};
	struct lb_hooks hk = {h_avail, h_active, &h};
	unsigned cnt[NEP] = {0};
	size_t pos;

	for (uint32_t pol = RM_LB_LEAST_CONN; pol <= RM_LB_RANDOM; pol++) {
		lb_init(&s, pol);
		memset(&h, 0, sizeof(h));
		memset(cnt, 0, sizeof(cnt));
		h.ejected[10] = h.ejected[13] = h.ejected[17] = true;
		rng_state = 21 + pol;
		for (int i = 0; i < 50000; i++) {
			assert_int_equal(lb_pick(&s, members, NEP, &hk, rng(), &pos), 0);
			cnt[pos]++;
		}
		for (int i = 0; i < NEP; i++) {
			if (h.ejected[members[i]])
				assert_int_equal(cnt[i], 0);
			else /* 5 left, equal load: 10000 each */
				assert_in_range(cnt[i], 9500, 10500);
		}
	}
}

static void test_all_ejected_or_empty(void **state)
{
	struct lb_state s;
	struct hosts h = {0};
	struct lb_hooks hk = {h_avail, h_active, &h};
	size_t pos = 99;

	for (int i = 0; i < 64; i++)
		h.ejected[i] = true;
	for (uint32_t pol = RM_LB_ROUND_ROBIN; pol <= RM_LB_PASSTHROUGH; pol++) {
		lb_init(&s, pol);
		assert_int_equal(lb_pick(&s, members, NEP, &hk, 1, &pos), -ENOENT);
		assert_int_equal(lb_pick(&s, members, 0, NULL, 1, &pos), -ENOENT);
		assert_int_equal(pos, 99);
	}
	/* one left: every policy finds it */
	h.ejected[15] = false;
	for (uint32_t pol = RM_LB_ROUND_ROBIN; pol <= RM_LB_PASSTHROUGH; pol++) {
		lb_init(&s, pol);
		for (int i = 0; i < 20; i++) {
			assert_int_equal(lb_pick(&s, members, NEP, &hk, (uint64_t)i * 77777, &pos),
					 0);
			assert_int_equal(pos, 5);
		}
	}
	assert_int_equal(lb_pick(&s, NULL, 3, NULL, 0, &pos), -EINVAL);
	assert_int_equal(lb_pick(&s, members, 3, NULL, 0, NULL), -EINVAL);
}

/* Same random values, same choices. */
static void test_deterministic(void **state)
{
	struct lb_state a, b;
	struct hosts h = {0};
	struct lb_hooks hk = {h_avail, h_active, &h};
	size_t pa, pb;

	for (int i = 0; i < NEP; i++)
		h.active[10 + i] = (uint32_t)(i * 7 % 5);
	for (uint32_t pol = RM_LB_LEAST_CONN; pol <= RM_LB_RANDOM; pol++) {
		lb_init(&a, pol);
		lb_init(&b, pol);
		for (uint64_t r = 0; r < 1000; r++) {
			uint64_t x = r * 0x9e3779b97f4a7c15ull;

			lb_pick(&a, members, NEP, &hk, x, &pa);
			lb_pick(&b, members, NEP, &hk, x, &pb);
			assert_int_equal(pa, pb);
		}
	}
}

/* Availability flipping between the count and the scan: the pick still returns an
 * available host (the last one seen), never an ejected one. */
struct flaky {
	unsigned calls;
	unsigned flip_after;
};

static bool flaky_avail(void *ctx, uint32_t ep)
{
	struct flaky *f = ctx;

	return ++f->calls <= f->flip_after || ep == 13;
}

static void test_availability_changes_during_pick(void **state)
{
	struct lb_state s;
	struct flaky f = {0, NEP};
	struct lb_hooks hk = {flaky_avail, NULL, &f};
	size_t pos;

	lb_init(&s, RM_LB_RANDOM);
	/* counted 8 available, then only host 13 (position 3) is */
	assert_int_equal(lb_pick(&s, members, NEP, &hk, ~0ull, &pos), 0);
	assert_int_equal(pos, 3);
	/* nothing at all during the scan: -ENOENT rather than an ejected host */
	f.calls = 0;
	f.flip_after = NEP - 4;
	assert_int_equal(lb_pick(&s, members + 4, NEP - 4, &hk, 0, &pos), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init),
	    cmocka_unit_test(test_round_robin_fair),
	    cmocka_unit_test(test_round_robin_skips_ejected_evenly),
	    cmocka_unit_test(test_round_robin_threads),
	    cmocka_unit_test(test_least_conn_prefers_less_loaded),
	    cmocka_unit_test(test_least_conn_and_random_skip_ejected),
	    cmocka_unit_test(test_all_ejected_or_empty),
	    cmocka_unit_test(test_deterministic),
	    cmocka_unit_test(test_availability_changes_during_pick),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
