/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* rm_stats slot claiming (stats_w.c), also from several threads. Split from test_l7.c. */
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
#include "ringmeshd/stats_w.h"

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
	stats_request(a, 200, 0, 500, 0, 0);
	/* one row per (code, flags), in claim order */
	assert_true(a->rows[0].id == RM_STATS_ROW_ID(200, 0));
	assert_true(a->rows[1].id == RM_STATS_ROW_ID(503, 1u << RM_STATS_F_UF));
	assert_true(a->rows[2].id == RM_STATS_ROW_ID(0, 0));
	assert_int_equal(prom_row_count(&a->rows[0]), 2);
	assert_int_equal(a->rows[0].dur.b[0], 1); /* 500 us <= 0.5 ms: Envoy's bounds */
	assert_int_equal(a->rows[0].dur.b[1], 1); /* 700 us <= 1 ms */
	assert_int_equal(a->rows[0].dur.sum, 1200);
	assert_int_equal(a->rows[0].req.b[0], 1);   /* 0 bytes <= 0.5 */
	assert_int_equal(a->rows[0].req.b[6], 1);   /* 100 bytes <= 100 */
	assert_int_equal(a->rows[0].resp.b[10], 1); /* 2000 bytes <= 2500 */
	assert_int_equal(a->rows[1].dur.b[11], 1);  /* 3 s <= 5 s */
	assert_int_equal(a->rows[2].dur.b[0], 1);
	assert_int_equal(a->wbegin, 4);
	assert_int_equal(a->wend, 4);
	/* codes beyond the rows are counted in the overflow row, not lost */
	for (int c = 0; c < RM_STATS_ROWS + 2; c++)
		stats_request(b, 300 + c, 0, 1, 0, 0);
	assert_int_equal(prom_row_count(&b->rows[RM_STATS_ROWS - 1]), 3);
	assert_true(b->rows[RM_STATS_ROWS - 1].id == 0);
	{
		struct prom_slot_sum sum;

		prom_slot_sum(b, &sum);
		assert_int_equal(sum.requests, RM_STATS_ROWS + 2);
		assert_int_equal(sum.overflow, 3);
		assert_int_equal(sum.code_class[3], RM_STATS_ROWS - 1);
	}
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
	struct rm_stats_slot *sl, *ovf = NULL;
	char v[16];
	int own = 0;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&s, mem, 8, 1);
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof(v), "v%d", i);
		stats_key_make(&k, "svc", v, NULL, RM_STATS_TCP);
		sl = stats_slot(&s, &k);
		assert_non_null(sl);
		if (sl == &mem[RM_STATS_OVERFLOW_SLOT].slot)
			ovf = sl;
		else
			own++;
		stats_tcp(sl, 1, 0, 0, 0);
	}
	/* entries 2..7 probed; the rest land in the overflow slot, counted */
	assert_int_equal(own, 6);
	assert_int_equal(mem[0].hdr.dropped, 4);
	assert_non_null(ovf);
	assert_string_equal(ovf->key.dst_service, RM_STATS_OVERFLOW_NAME);
	assert_int_equal(ovf->tcp_opened, 4);
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
		total += prom_row_count(&mem[i].slot.rows[0]);
		/* 4 threads x 100 each */
		assert_int_equal(prom_row_count(&mem[i].slot.rows[0]), 400);
		assert_int_equal(mem[i].slot.wbegin, 400);
		assert_int_equal(mem[i].slot.wend, 400);
	}
	assert_int_equal(live, 20); /* one slot per key, never two */
	assert_int_equal(total, 8000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stats_claim),
	    cmocka_unit_test(test_stats_full),
	    cmocka_unit_test(test_stats_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
