/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The client-bound response head (http1_resp.c): hop-by-hop fields and those the
 * Connection field names dropped, a route's response edits in order, the
 * Connection field a proxy sends for its client, and the bound of the output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/http1_resp.h"

static struct http_header hdrs[16];

static void parse(const char *in, struct http_response *res)
{
	int r = http_parse_response(in, strlen(in), 0, NULL, HTTP_M_GET, res, hdrs, 16);

	assert_true(r > 0);
}

static void expect(const struct http_response *res, const struct http_hdr_op *ops, size_t n,
		   unsigned int flags, const char *want)
{
	char out[512];
	ssize_t len = http_write_response_head(out, sizeof(out), res, ops, n, flags);

	assert_true(len > 0);
	assert_int_equal((size_t)len, strlen(want));
	out[len] = '\0';
	assert_string_equal(out, want);
}

static void test_hop_and_edits(void **state)
{
	struct http_response res;
	const struct http_hdr_op ops[2] = {{HTTP_HOP_REMOVE, "x-drop", ""},
					   {HTTP_HOP_ADD, "x-served-by", "ringmesh"}};
	char out[512];

	parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, x-hop\r\n"
	      "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nServer: b\r\nX-Drop: 1\r\n\r\nok",
	      &res);
	expect(&res, ops, 2, HTTP_RH_CLOSE,
	       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: b\r\n"
	       "x-served-by: ringmesh\r\nconnection: close\r\n\r\n");
	assert_int_equal(http_write_response_head(out, 20, &res, NULL, 0, 0), -ENOSPC);
}

/* SET replaces every upstream field of its name; SET and ADD go out in rule order. */
static void test_set_add_order(void **state)
{
	struct http_response res;
	const struct http_hdr_op ops[3] = {{HTTP_HOP_ADD, "x-a", "1"},
					   {HTTP_HOP_SET, "server", "mesh"},
					   {HTTP_HOP_ADD, "x-a", "2"}};

	parse("HTTP/1.1 404 Nope\r\nserver: b\r\nSERVER: c\r\nContent-Length: 0\r\n\r\n", &res);
	expect(&res, ops, 3, 0,
	       "HTTP/1.1 404 Nope\r\nContent-Length: 0\r\nx-a: 1\r\nserver: mesh\r\n"
	       "x-a: 2\r\n\r\n");
}

/* 101 keeps Upgrade and says Connection: upgrade, even when close is asked. */
static void test_upgrade(void **state)
{
	struct http_response res;

	parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	      "Connection: Upgrade\r\n\r\n",
	      &res);
	expect(&res, NULL, 0, HTTP_RH_UPGRADE | HTTP_RH_CLOSE,
	       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	       "connection: upgrade\r\n\r\n");
	/* not an upgrade for this client: Upgrade is hop-by-hop like the rest */
	expect(&res, NULL, 0, 0, "HTTP/1.1 101 Switching Protocols\r\n\r\n");
}

/* An HTTP/1.0 client kept alive is told so; no reason phrase: the standard one. */
static void test_keepalive_and_reason(void **state)
{
	struct http_response res;

	parse("HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n", &res);
	expect(&res, NULL, 0, HTTP_RH_KEEPALIVE,
	       "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
	       "connection: keep-alive\r\n\r\n");
}

/* Every cap below the head's length fails whole, none writes past cap. */
static void test_bound(void **state)
{
	struct http_response res;
	const struct http_hdr_op ops[1] = {{HTTP_HOP_ADD, "x-served-by", "ringmesh"}};
	char out[256];
	ssize_t full;

	parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: b\r\n\r\nok", &res);
	full = http_write_response_head(out, sizeof(out), &res, ops, 1, HTTP_RH_CLOSE);
	assert_true(full > 0);
	for (size_t cap = 0; cap < (size_t)full; cap++) {
		memset(out, 'Z', sizeof(out));
		assert_int_equal(http_write_response_head(out, cap, &res, ops, 1, HTTP_RH_CLOSE),
				 -ENOSPC);
		for (size_t i = cap; i < sizeof(out); i++)
			assert_int_equal(out[i], 'Z');
	}
	assert_int_equal(http_write_response_head(out, (size_t)full, &res, ops, 1, HTTP_RH_CLOSE),
			 full);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hop_and_edits), cmocka_unit_test(test_set_add_order),
	    cmocka_unit_test(test_upgrade),	  cmocka_unit_test(test_keepalive_and_reason),
	    cmocka_unit_test(test_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
