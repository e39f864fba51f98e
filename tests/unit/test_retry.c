/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The retry policy's predicates (policy/retry.c) under Envoy's retryOn names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy/retry.h"
#include "ringmesh/cfg.h"

static void test_retry_policy(void **state)
{
	assert_true(retry_status(500, RM_RETRY_5XX));
	assert_false(retry_status(500, RM_RETRY_GATEWAY_ERROR));
	assert_true(retry_status(503, RM_RETRY_GATEWAY_ERROR));
	assert_false(retry_status(404, RM_RETRY_5XX));
	assert_false(retry_status(503, RM_RETRY_CONNECT_FAILURE));
	assert_true(retry_failure(RETRY_F_CONNECT, RM_RETRY_CONNECT_FAILURE));
	assert_false(retry_failure(RETRY_F_RESET, RM_RETRY_CONNECT_FAILURE));
	assert_true(retry_failure(RETRY_F_RESET, RM_RETRY_OLD_API_DEFAULT));
	assert_false(retry_failure(RETRY_F_CONNECT, 0));
}

/* Each status class at its edges, for each bit alone. */
static void test_status_edges(void **state)
{
	assert_false(retry_status(499, RM_RETRY_5XX));
	assert_true(retry_status(599, RM_RETRY_5XX));
	assert_false(retry_status(600, RM_RETRY_5XX));
	assert_false(retry_status(501, RM_RETRY_GATEWAY_ERROR));
	assert_true(retry_status(502, RM_RETRY_GATEWAY_ERROR));
	assert_true(retry_status(504, RM_RETRY_GATEWAY_ERROR));
	assert_false(retry_status(505, RM_RETRY_GATEWAY_ERROR));
	assert_true(retry_status(409, RM_RETRY_RETRIABLE_4XX));
	assert_false(retry_status(408, RM_RETRY_RETRIABLE_4XX));
	assert_false(retry_status(409, RM_RETRY_5XX | RM_RETRY_GATEWAY_ERROR));
}

/* A timeout per try counts as 5xx/gateway-error/reset, never as connect-failure. */
static void test_failure_kinds(void **state)
{
	assert_true(retry_failure(RETRY_F_TRY_TIMEOUT, RM_RETRY_GATEWAY_ERROR));
	assert_true(retry_failure(RETRY_F_TRY_TIMEOUT, RM_RETRY_RESET));
	assert_false(retry_failure(RETRY_F_TRY_TIMEOUT, RM_RETRY_CONNECT_FAILURE));
	assert_true(retry_failure(RETRY_F_CONNECT, RM_RETRY_5XX));
	assert_false(retry_failure(RETRY_F_CONNECT, RM_RETRY_RESET));
	assert_true(retry_failure(RETRY_F_RESET, RM_RETRY_GATEWAY_ERROR));
	assert_false(retry_failure(RETRY_F_RESET, RM_RETRY_RETRIABLE_4XX));
	assert_true(retry_failure(RETRY_F_STATUS, 0)); /* retry_status already decided */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_retry_policy),
	    cmocka_unit_test(test_status_edges),
	    cmocka_unit_test(test_failure_kinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
