/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bufpool: bounded borrowing (exhaustion returns NULL and is counted, a block given
 * back is borrowed again first), and the trim that gives the pages of free blocks
 * back to the kernel, checked with mincore(2) on the real mapping: only what the
 * last period's demand needed (at least keep) stays resident, a block held for a
 * long time (a slow reader) keeps its pages and its bytes, and a dropped block
 * reads as zeroes when borrowed again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "ringmeshd/bufpool.h"

#define BLK 10000 /* rounded up to 3 pages of 4 KiB */

/* Resident pages of the block at b. */
static size_t resident(const struct bufpool *p, const void *b)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = p->size / page, r = 0;
	unsigned char v[64];

	assert_true(n <= sizeof(v));
	assert_int_equal(mincore((void *)b, p->size, v), 0);
	for (size_t i = 0; i < n; i++)
		r += v[i] & 1;
	return r;
}

static void test_exhaustion(void **state)
{
	struct bufpool p;
	void *b[4];

	(void)state;
	assert_int_equal(bufpool_init(&p, BLK, 4, 1), 0);
	assert_int_equal(p.size % (size_t)sysconf(_SC_PAGESIZE), 0);
	assert_true(p.size >= BLK);
	for (int i = 0; i < 4; i++) {
		b[i] = bufpool_get(&p);
		assert_non_null(b[i]);
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(b[i], b[j]);
		memset(b[i], 0xa0 + i, p.size); /* the whole block is ours */
	}
	assert_false(bufpool_avail(&p));
	assert_null(bufpool_get(&p));
	assert_null(bufpool_get(&p));
	assert_int_equal(p.exhausted, 2);
	assert_int_equal(p.used, 4);
	/* a block given back is the next one borrowed (its pages are warm) */
	bufpool_put(&p, b[2]);
	assert_true(bufpool_avail(&p));
	assert_ptr_equal(bufpool_get(&p), b[2]);
	bufpool_put(&p, b[1]);
	bufpool_put(&p, b[3]);
	assert_ptr_equal(bufpool_get(&p), b[3]);
	assert_ptr_equal(bufpool_get(&p), b[1]);
	assert_int_equal(p.gets, 7);
	bufpool_put(&p, NULL); /* no-op */
	assert_int_equal(p.used, 4);
	bufpool_fini(&p);
	assert_int_equal(bufpool_init(&p, 0, 4, 1), -22);
	assert_int_equal(bufpool_init(&p, BLK, 0, 1), -22);
}

static void test_idle_pages_go_back(void **state)
{
	struct bufpool p;
	void *b[8];

	(void)state;
	assert_int_equal(bufpool_init(&p, BLK, 64, 2), 0);
	/* never borrowed: nothing resident */
	assert_int_equal(resident(&p, p.base), 0);
	for (int i = 0; i < 8; i++) {
		b[i] = bufpool_get(&p);
		memset(b[i], 1, p.size);
		assert_int_equal(resident(&p, b[i]), p.size / (size_t)sysconf(_SC_PAGESIZE));
	}
	for (int i = 0; i < 8; i++)
		bufpool_put(&p, b[i]); /* the connections went idle */
	assert_int_equal(bufpool_warm(&p), 8);
	/* the period that just ended needed 8: they stay for now */
	assert_int_equal(bufpool_trim(&p), 0);
	assert_int_equal(bufpool_warm(&p), 8);
	/* a quiet period: all but keep go back, least recently used first */
	assert_int_equal(bufpool_trim(&p), 6);
	assert_int_equal(bufpool_warm(&p), 2);
	assert_int_equal(p.trimmed, 6);
	for (int i = 0; i < 6; i++)
		assert_int_equal(resident(&p, b[i]), 0);
	assert_true(resident(&p, b[6]) > 0);
	assert_true(resident(&p, b[7]) > 0);
	assert_int_equal(bufpool_trim(&p), 0);
	/* borrowing again: the warm ones first, then the dropped ones, which read zero */
	assert_ptr_equal(bufpool_get(&p), b[7]);
	assert_ptr_equal(bufpool_get(&p), b[6]);
	assert_ptr_equal(bufpool_get(&p), b[5]);
	assert_int_equal(((unsigned char *)b[5])[100], 0);
	assert_int_equal(p.cold, 5);
	assert_int_equal(bufpool_warm(&p), 3);
	bufpool_fini(&p);
}

/* One borrower keeps its block through many periods (a client that does not read its
 * response): it holds that one block, its bytes survive every trim, and the rest of
 * the pool keeps serving the others and follows their demand down. */
static void test_slow_reader_keeps_one(void **state)
{
	struct bufpool p;
	unsigned char *slow;

	(void)state;
	assert_int_equal(bufpool_init(&p, BLK, 4, 0), 0);
	slow = bufpool_get(&p);
	memset(slow, 0x5a, p.size);
	for (int round = 0; round < 50; round++) {
		void *o[3];

		for (int i = 0; i < 3; i++)
			assert_non_null(o[i] = bufpool_get(&p));
		assert_null(bufpool_get(&p)); /* the bound holds */
		for (int i = 0; i < 3; i++) {
			memset(o[i], round, 64);
			bufpool_put(&p, o[i]);
		}
		bufpool_trim(&p);
		bufpool_trim(&p); /* a quiet period: the others' blocks go back */
		assert_int_equal(bufpool_warm(&p), 1);
		assert_int_equal(p.used, 1);
		assert_true(resident(&p, slow) > 0);
		for (size_t k = 0; k < p.size; k += 997)
			assert_int_equal(slow[k], 0x5a);
	}
	bufpool_put(&p, slow);
	bufpool_trim(&p);
	bufpool_trim(&p);
	assert_int_equal(bufpool_warm(&p), 0);
	assert_int_equal(resident(&p, slow), 0);
	bufpool_fini(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exhaustion),
	    cmocka_unit_test(test_idle_pages_go_back),
	    cmocka_unit_test(test_slow_reader_keeps_one),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
