/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * rm_stats writer (stats_w.c): slot claiming, rows taken from the shared pool, the
 * overflow series when keys, row positions or the pool run out (nothing lost), all
 * also from several threads; consistent copies under concurrent writers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "common/prom.h"
#include "ringmeshd/bufpool.h"
#include "ringmeshd/stats_w.h"

#define NS 64
#define NR 128
#define NSEC 1000000000ull

/* a map of NS slots and NR rows (the biggest layout used here) */
static _Alignas(64) unsigned char mem[RM_STATS_BYTES(NS, NR)];

static void attach(struct stats_w *s, uint32_t ns, uint32_t nr, uint64_t t)
{
	memset(mem, 0, sizeof(mem));
	stats_w_attach(s, mem, ns, nr, t);
}

/* The pool row at position i of sl, NULL if none. */
static struct rm_stats_row *row(struct stats_w *s, struct rm_stats_slot *sl, int i)
{
	uint32_t ix = sl->rows[i];

	return ix && ix <= s->n_rows ? &s->rows[ix - 1] : NULL;
}

static uint64_t count(struct stats_w *s, struct rm_stats_slot *sl, int i)
{
	struct rm_stats_row *r = row(s, sl, i);

	return r ? prom_row_count(r) : 0;
}

/* Every request counted in the map, over all slots and rows. */
static uint64_t total(struct stats_w *s)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < s->n_rows; i++)
		n += prom_row_count(&s->rows[i]);
	return n;
}

static void test_stats_claim(void **state)
{
	struct stats_w s;
	struct rm_stats_key k1, k2;
	struct rm_stats_slot *a, *b;

	attach(&s, NS, NR, 42);
	assert_int_equal(s.h->magic, RM_STATS_MAGIC);
	assert_int_equal(s.h->n_slots, NS);
	assert_int_equal(s.h->n_rows, NR);
	assert_int_equal(s.h->row_off, RM_STATS_ROW_OFF(NS));
	assert_int_equal(s.h->rows_used, 1); /* the overflow slot's reserved row */
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
	/* a key takes no row before its first request */
	assert_int_equal(a->rows[0], 0);
	assert_int_equal(s.h->rows_used, 1);
	stats_request(&s, a, 200, 0, 700, 100, 2000);
	stats_request(&s, a, 503, 1u << RM_STATS_F_UF, 3000000, 0, 0);
	stats_request(&s, a, 0, 0, 1, 0, 0);
	stats_request(&s, a, 200, 0, 500, 0, 0);
	/* one row per (code, flags), in claim order, from the pool */
	assert_int_equal(s.h->rows_used, 4);
	assert_true(row(&s, a, 0)->id == RM_STATS_ROW_ID(200, 0));
	assert_true(row(&s, a, 1)->id == RM_STATS_ROW_ID(503, 1u << RM_STATS_F_UF));
	assert_true(row(&s, a, 2)->id == RM_STATS_ROW_ID(0, 0));
	assert_null(row(&s, a, 3));
	assert_int_equal(count(&s, a, 0), 2);
	assert_int_equal(row(&s, a, 0)->dur.b[0], 1); /* 500 us <= 0.5 ms: Envoy's bounds */
	assert_int_equal(row(&s, a, 0)->dur.b[1], 1); /* 700 us <= 1 ms */
	assert_int_equal(row(&s, a, 0)->dur.sum, 1200);
	assert_int_equal(row(&s, a, 0)->req.b[0], 1);	/* 0 bytes <= 0.5 */
	assert_int_equal(row(&s, a, 0)->req.b[6], 1);	/* 100 bytes <= 100 */
	assert_int_equal(row(&s, a, 0)->resp.b[10], 1); /* 2000 bytes <= 2500 */
	assert_int_equal(row(&s, a, 1)->dur.b[11], 1);	/* 3 s <= 5 s */
	assert_int_equal(row(&s, a, 2)->dur.b[0], 1);
	assert_int_equal(a->wbegin, 4);
	assert_int_equal(a->wend, 4);
	/* codes beyond the positions are counted in the key's overflow row, not lost */
	for (int c = 0; c < RM_STATS_ROWS + 2; c++)
		stats_request(&s, b, 300 + c, 0, 1, 0, 0);
	assert_int_equal(count(&s, b, RM_STATS_ROWS - 1), 3);
	assert_true(row(&s, b, RM_STATS_ROWS - 1)->id == RM_STATS_ROW_OVERFLOW);
	assert_int_equal(s.h->rows_used, 4 + RM_STATS_ROWS);
	assert_int_equal(s.h->pool_full, 0);
	{
		struct prom_stats ps;
		struct prom_series cp;
		struct prom_slot_sum sum;

		assert_int_equal(prom_stats_locate(mem, sizeof(mem), &ps), 0);
		assert_int_equal(prom_series_copy(&ps, (uint32_t)(b - s.slots), &cp), 0);
		prom_slot_sum(&cp, &sum);
		assert_int_equal(sum.requests, RM_STATS_ROWS + 2);
		assert_int_equal(sum.overflow, 3);
		assert_int_equal(sum.code_class[3], RM_STATS_ROWS - 1);
	}
	stats_tcp(a, 1, 1, 10, 20);
	assert_int_equal(a->tcp_received_bytes, 20);
	/* a re-open keeps the counters and the rows */
	stats_w_attach(&s, mem, NS, NR, 43);
	assert_int_equal(s.h->started_ns, 42);
	assert_int_equal(s.h->rows_used, 4 + RM_STATS_ROWS);
	assert_ptr_equal(stats_slot(&s, &k1), a);
	stats_request(&s, a, 200, 0, 1, 0, 0);
	assert_int_equal(count(&s, a, 0), 3);
	assert_int_equal(total(&s), 4 + RM_STATS_ROWS + 2 + 1);
}

static void test_stats_full(void **state)
{
	struct stats_w s;
	struct rm_stats_key k;
	struct rm_stats_slot *sl, *ovf = NULL;
	char v[16];
	int own = 0;

	attach(&s, 8, 16, 1);
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof(v), "v%d", i);
		stats_key_make(&k, "svc", v, NULL, RM_STATS_TCP);
		sl = stats_slot(&s, &k);
		assert_non_null(sl);
		if (sl == &s.slots[RM_STATS_OVERFLOW_SLOT])
			ovf = sl;
		else
			own++;
		stats_tcp(sl, 1, 0, 0, 0);
	}
	/* slots 1..7 probed; the rest land in the overflow slot, counted */
	assert_int_equal(own, 7);
	assert_int_equal(s.h->dropped, 3);
	assert_non_null(ovf);
	assert_string_equal(ovf->key.dst_service, RM_STATS_OVERFLOW_NAME);
	assert_int_equal(ovf->tcp_opened, 3);
}

/* The pool runs out: a key's new (code, flags) goes to its overflow row if it has
 * one, else to the overflow slot's reserved row; every request is counted once. */
static void test_stats_pool_exhausted(void **state)
{
	struct stats_w s;
	struct rm_stats_key k;
	struct rm_stats_slot *a, *b, *c, *ovf;
	uint64_t n = 0;

	attach(&s, 8, 5, 1); /* row 0 reserved: 4 to take */
	stats_key_make(&k, "a", "v1", NULL, RM_STATS_HTTP);
	a = stats_slot(&s, &k);
	stats_key_make(&k, "b", "v1", NULL, RM_STATS_HTTP);
	b = stats_slot(&s, &k);
	stats_key_make(&k, "c", "v1", NULL, RM_STATS_HTTP);
	c = stats_slot(&s, &k);
	ovf = &s.slots[RM_STATS_OVERFLOW_SLOT];
	stats_request(&s, a, 200, 0, 1, 0, 0), n++;
	stats_request(&s, a, 404, 0, 1, 0, 0), n++;
	stats_request(&s, b, 200, 0, 1, 0, 0), n++;
	assert_int_equal(s.h->rows_used, 4);
	/* the last row: b's 500 takes it; b's 502 finds no row, and b no overflow row */
	stats_request(&s, b, 500, 0, 1, 0, 0), n++;
	assert_int_equal(s.h->rows_used, 5);
	assert_int_equal(ovf->state, RM_STATS_FREE);
	stats_request(&s, b, 502, 0, 1, 0, 0), n++;
	stats_request(&s, c, 200, 0, 1, 0, 0), n++; /* c has no row at all */
	stats_request(&s, a, 200, 0, 1, 0, 0), n++; /* rows already held still count */
	assert_int_equal(s.h->rows_used, 5);	    /* never past n_rows */
	assert_int_equal(s.h->pool_full, 2);
	assert_int_equal(ovf->state, RM_STATS_LIVE);
	assert_string_equal(ovf->key.dst_service, RM_STATS_OVERFLOW_NAME);
	assert_ptr_equal(row(&s, ovf, RM_STATS_ROWS - 1), &s.rows[0]);
	assert_int_equal(count(&s, ovf, RM_STATS_ROWS - 1), 2);
	assert_int_equal(ovf->wbegin, 2); /* the owner of the row brackets the update */
	assert_int_equal(ovf->wend, 2);
	assert_int_equal(count(&s, a, 0), 2);
	assert_int_equal(c->rows[0], 0); /* the failed claim left the position free */
	assert_int_equal(total(&s), n);
	/* the overflow slot itself: its own codes find no row either, same reserved row */
	stats_request(&s, ovf, 200, 0, 1, 0, 0), n++;
	assert_int_equal(count(&s, ovf, RM_STATS_ROWS - 1), 3);
	assert_int_equal(total(&s), n);
}

struct race {
	struct stats_w *s;
	int id, keys, codes, iters;
};

static void *race_main(void *arg)
{
	struct race *r = arg;
	struct rm_stats_key k;
	char v[16];

	for (int i = 0; i < r->iters; i++) {
		snprintf(v, sizeof(v), "v%d", i % r->keys);
		stats_key_make(&k, "svc", v, NULL, RM_STATS_HTTP);
		stats_request(r->s, stats_slot(r->s, &k), 200 + (i / r->keys) % r->codes, 0, 1, 1,
			      1);
	}
	return NULL;
}

static void run_race(struct stats_w *s, int nt, int keys, int codes, int iters)
{
	pthread_t t[4];
	struct race r[4];

	for (int i = 0; i < nt; i++) {
		r[i] = (struct race){.s = s, .id = i, .keys = keys, .codes = codes, .iters = iters};
		pthread_create(&t[i], NULL, race_main, &r[i]);
	}
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
}

static void test_stats_threads(void **state)
{
	struct stats_w s;
	uint64_t sum = 0;
	int live = 0;

	attach(&s, NS, NR, 1);
	run_race(&s, 4, 20, 3, 6000);
	for (uint32_t i = 1; i < s.n_slots; i++) {
		struct rm_stats_slot *sl = &s.slots[i];

		if (sl->state != RM_STATS_LIVE)
			continue;
		live++;
		/* 4 threads x 100 per code, 3 codes, each in a row of its own */
		for (int j = 0; j < 3; j++) {
			assert_non_null(row(&s, sl, j));
			assert_int_equal(count(&s, sl, j), 400);
			for (int o = 0; o < j; o++)
				assert_true(row(&s, sl, o)->id != row(&s, sl, j)->id);
			sum += count(&s, sl, j);
		}
		assert_null(row(&s, sl, 3));
		assert_int_equal(sl->wbegin, 1200);
		assert_int_equal(sl->wend, 1200);
	}
	assert_int_equal(live, 20); /* one slot per key, never two */
	assert_int_equal(sum, 24000);
	/* one row per (key, code), never two, none lost to a race */
	assert_int_equal(s.h->rows_used, 1 + 20 * 3);
	assert_int_equal(s.h->pool_full, 0);
}

/* Two threads claim rows from a pool too small for them: it fills exactly, the
 * rest is counted in overflow series, and the total is exact. */
static void test_stats_threads_pool(void **state)
{
	struct stats_w s;

	attach(&s, NS, 31, 1);
	run_race(&s, 2, 20, 3, 6000); /* 60 (key, code) pairs for 30 rows */
	assert_int_equal(s.h->rows_used, 31);
	assert_int_equal(total(&s), 12000);
	assert_true(s.h->pool_full > 0);
	for (uint32_t i = 0; i < s.n_slots; i++)
		assert_int_equal(s.slots[i].wbegin, s.slots[i].wend);
}

static void test_stats_workers(void **state)
{
	struct stats_w s, succ;
	struct bufpool cp, up;
	void *b;

	attach(&s, 8, 16, 1);
	assert_int_equal(bufpool_init(&cp, 8192, 4, 1), 0);
	assert_int_equal(bufpool_init(&up, 4096, 2, 1), 0);
	for (int i = 0; i < 4; i++)
		assert_non_null(bufpool_get(&cp));
	assert_null(bufpool_get(&cp)); /* a connection waits */
	b = bufpool_get(&up);
	stats_worker_bufs(&s, 1, &cp, &up, NSEC);
	assert_int_equal(s.h->n_wk, 2);
	assert_int_equal(s.h->wk[1].buf_waits, 1);
	assert_int_equal(s.h->wk[1].bufs_used, 4);
	assert_int_equal(s.h->wk[1].bufs, 4);
	assert_int_equal(s.h->wk[1].up_bufs_used, 1);
	assert_int_equal(s.h->wk[1].up_bufs, 2);
	assert_int_equal(s.h->wk[1].bufs_resident, 4 * 8192 + 4096);
	stats_worker_bufs(&s, RM_STATS_WORKERS, &cp, &up, NSEC); /* beyond the table */
	assert_int_equal(s.h->n_wk, 2);
	/* a successor takes the entries over: the predecessor no longer writes them */
	stats_w_attach(&succ, mem, 8, 16, 2);
	succ.pid = s.pid + 1;
	s.h->wk_pid = succ.pid;
	stats_worker_bufs(&succ, 0, &cp, &up, 2 * NSEC);
	assert_int_equal(s.h->wk[0].bufs, 4);
	s.h->wk[0].bufs = 0;
	stats_worker_bufs(&s, 0, &cp, &up, 3 * NSEC);
	assert_int_equal(s.h->wk_pid, succ.pid);
	assert_int_equal(s.h->wk[0].bufs, 0);
	/* the successor went away (no write for RM_STATS_WK_STALE_NS): ours again */
	stats_worker_bufs(&s, 0, &cp, &up, 2 * NSEC + RM_STATS_WK_STALE_NS);
	assert_int_equal(s.h->wk_pid, s.pid);
	assert_int_equal(s.h->wk[0].bufs, 4);
	assert_int_equal(s.h->n_wk, 1);
	bufpool_put(&up, b);
	bufpool_fini(&cp);
	bufpool_fini(&up);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stats_claim),		 cmocka_unit_test(test_stats_full),
	    cmocka_unit_test(test_stats_pool_exhausted), cmocka_unit_test(test_stats_threads),
	    cmocka_unit_test(test_stats_threads_pool),	 cmocka_unit_test(test_stats_workers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
