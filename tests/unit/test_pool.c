/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The idle upstream connection pool (pool.c). Split from test_l7.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ringmeshd/pool.h"

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

/* The bound follows demand: it grows (doubling, up to max_idle) only when connections
 * come back over it after requests found none idle, never for a surplus alone. */
static void test_pool_follows_demand(void **state)
{
	static struct pool_link l[300];
	struct pool p;
	struct pool_key k = key(11, 8080), k2 = key(12, 8080);

	(void)state;
	assert_int_equal(pool_init(&p, 8, 200), 0);
	for (int i = 0; i < 300; i++)
		pool_link_init(&l[i]);
	/* 100 requests at once found nothing idle: 100 new connections come back */
	for (int i = 0; i < 100; i++)
		assert_null(pool_get(&p, &k));
	assert_int_equal(pool_limit(&p, &k), POOL_START_IDLE);
	for (int i = 0; i < 100; i++)
		assert_int_equal(pool_put(&p, &k, &l[i]), 0);
	assert_int_equal(pool_limit(&p, &k), 2 * POOL_START_IDLE);
	assert_int_equal(pool_idle(&p, &k), 100);
	/* the next burst of 100 finds them all: no misses, nothing closed */
	for (int i = 0; i < 100; i++)
		assert_non_null(pool_get(&p, &k));
	for (int i = 0; i < 100; i++)
		assert_int_equal(pool_put(&p, &k, &l[i]), 0);
	/* a surplus without a miss does not grow it */
	for (int i = 100; i < 128; i++)
		assert_int_equal(pool_put(&p, &k, &l[i]), 0);
	assert_int_equal(pool_put(&p, &k, &l[128]), -ENOSPC);
	assert_int_equal(pool_limit(&p, &k), 128);
	/* demand beyond: after a miss it grows to max_idle and no further */
	while (pool_get(&p, &k))
		;
	for (int i = 0; i < 250; i++)
		pool_put(&p, &k, &l[i]);
	assert_int_equal(pool_limit(&p, &k), 200);
	assert_int_equal(pool_idle(&p, &k), 200);
	assert_null(pool_get(&p, &k2)); /* every endpoint has a bound of its own */
	assert_int_equal(pool_limit(&p, &k2), POOL_START_IDLE);
	pool_fini(&p);
	/* a max_idle below the start is the bound from the start */
	assert_int_equal(pool_init(&p, 8, 3), 0);
	assert_null(pool_get(&p, &k));
	for (int i = 0; i < 3; i++)
		assert_int_equal(pool_put(&p, &k, &l[i]), 0);
	assert_int_equal(pool_put(&p, &k, &l[3]), -ENOSPC);
	pool_fini(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_pool_follows_demand),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
