/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The worker's timer heap (timer.c): order, cancel, capacity. Split from test_l7.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ringmeshd/timer.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timer_order),
	    cmocka_unit_test(test_timer_full_and_partial),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
