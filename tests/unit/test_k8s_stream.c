// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The watch stream splitter and event parser of user/k8s: a body of watch
 * events cut at every byte boundary (two chunks, and one byte at a time) yields
 * the same events as the whole body; oversized lines and bad JSON are errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/k8s.h"

static const char body[] =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Service\",\"metadata\":{\"name\":\"a\","
    "\"resourceVersion\":\"11\"}}}\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Service\",\"metadata\":{"
    "\"resourceVersion\":\"12\"}}}\r\n"
    "\n"
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}\n";

struct seen {
	char types[8][16];
	char rvs[8][16];
	int n;
};

static int on_line(void *arg, const char *line, size_t len)
{
	struct seen *s = arg;
	char err[128];
	json_t *o;

	assert_int_equal(k8s_event_parse(line, len, s->types[s->n], 16, &o, err, sizeof(err)), 0);
	json_t *rv = json_object_get(json_object_get(o, "metadata"), "resourceVersion");
	snprintf(s->rvs[s->n], 16, "%s", rv ? json_string_value(rv) : "-");
	json_decref(o);
	s->n++;
	return 0;
}

static void check(const struct seen *s)
{
	assert_int_equal(s->n, 3);
	assert_string_equal(s->types[0], "ADDED");
	assert_string_equal(s->rvs[0], "11");
	assert_string_equal(s->types[1], "BOOKMARK");
	assert_string_equal(s->rvs[1], "12");
	assert_string_equal(s->types[2], "ERROR");
}

static void every_split(void **state)
{
	size_t len = strlen(body);

	for (size_t cut = 0; cut <= len; cut++) {
		struct k8s_stream st;
		struct seen s = {0};

		k8s_stream_init(&st, 1 << 20);
		assert_int_equal(k8s_stream_feed(&st, body, cut, on_line, &s), 0);
		assert_int_equal(k8s_stream_feed(&st, body + cut, len - cut, on_line, &s), 0);
		check(&s);
		assert_int_equal(st.len, 0);
		k8s_stream_free(&st);
	}
}

static void byte_at_a_time(void **state)
{
	struct k8s_stream st;
	struct seen s = {0};

	k8s_stream_init(&st, 1 << 20);
	for (size_t i = 0; body[i]; i++)
		assert_int_equal(k8s_stream_feed(&st, body + i, 1, on_line, &s), 0);
	check(&s);
	k8s_stream_free(&st);
}

static int never(void *arg, const char *line, size_t len)
{
	return -1;
}

static void too_long_and_bad_json(void **state)
{
	struct k8s_stream st;
	char type[16], err[128];
	json_t *o;

	k8s_stream_init(&st, 8);
	assert_int_equal(k8s_stream_feed(&st, "0123", 4, never, NULL), 0);
	assert_int_equal(k8s_stream_feed(&st, "456789", 6, never, NULL), -E2BIG);
	k8s_stream_free(&st);
	assert_int_equal(k8s_event_parse("{\"type\":", 8, type, sizeof(type), &o, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "watch event"));
	assert_int_equal(k8s_event_parse("{\"type\":\"ADDED\",\"type\":\"X\",\"object\":{}}", 38,
					 type, sizeof(type), &o, err, sizeof(err)),
			 -EINVAL);
}

static void backoff_and_protocol(void **state)
{
	struct k8s_opts o = {.backoff_min_ns = 200, .backoff_max_ns = 1000};

	assert_int_equal(k8s_backoff_ns(&o, 0, 0), 150);
	assert_int_equal(k8s_backoff_ns(&o, 1, UINT32_MAX), 500);
	assert_int_equal(k8s_backoff_ns(&o, 9, 0), 750);
	assert_string_equal(k8s_port_protocol("http-web", NULL, "TCP"), "HTTP");
	assert_string_equal(k8s_port_protocol("grpc-web", NULL, NULL), "HTTP");
	assert_string_equal(k8s_port_protocol("grpc", NULL, NULL), "GRPC");
	assert_string_equal(k8s_port_protocol("http2", NULL, NULL), "HTTP2");
	assert_string_equal(k8s_port_protocol("web", "http", NULL), "HTTP");
	assert_string_equal(k8s_port_protocol("httpx", NULL, NULL), "TCP");
	assert_null(k8s_port_protocol("dns", NULL, "UDP"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_split),
	    cmocka_unit_test(byte_at_a_time),
	    cmocka_unit_test(too_long_and_bad_json),
	    cmocka_unit_test(backoff_and_protocol),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
