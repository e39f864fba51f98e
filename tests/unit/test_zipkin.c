/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for the Zipkin span encoding: the exact JSON of a root and a child
 * span, 128/64-bit trace ids, the error tag, strings escaped (quotes, backslash,
 * control bytes, invalid UTF-8), fields cut to size, and --zipkin-url parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/zipkin.h"
#include "ringmesh/stats.h"

static uint32_t htonl_(uint32_t v)
{
	return __builtin_bswap32(v); /* the test machines are little-endian (x86-64) */
}

/* Drop the writer's blanks outside strings, so expectations are compact JSON. */
static void compact(char *p)
{
	bool in = false, esc = false;
	char *o = p;

	for (; *p; p++) {
		if (in) {
			if (esc)
				esc = false;
			else if (*p == '\\')
				esc = true;
			else if (*p == '"')
				in = false;
		} else if (*p == '"') {
			in = true;
		} else if (*p == ' ') {
			continue;
		}
		*o++ = *p;
	}
	*o = '\0';
}

static char *encode(const struct zipkin_span *s, size_t n)
{
	char *p = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&p, &len);

	assert_non_null(f);
	assert_int_equal(zipkin_encode(f, s, n), 0);
	fclose(f);
	compact(p);
	return p;
}

#define SET(f, v) zipkin_set((f), sizeof(f), (v), strlen(v))

static void fill(struct zipkin_span *s)
{
	memset(s, 0, sizeof(*s));
	s->trace128 = true;
	s->trace_hi = 0x80f198ee56343ba8ull;
	s->trace_lo = 0x64fe8b2a57d3eff7ull;
	s->id = 0xe457b5a2e4d86bd1ull;
	s->parent_id = 0x05e3ac9a4f6e3b90ull;
	s->ts_us = 1764625000123456ull;
	s->dur_us = 1431;
	s->local_ip = htonl_(0x0af4000c);
	s->remote_ip = htonl_(0x0af40010);
	s->remote_port = 9080;
	s->status = 200;
	s->req_size = 0;
	s->resp_size = 295;
	SET(s->name, "reviews.default.svc.cluster.local:9080/*");
	SET(s->method, "GET");
	SET(s->protocol, "HTTP/1.1");
	SET(s->url, "http://reviews:9080/reviews/0");
	SET(s->cluster, "outbound|9080|v1|reviews.default.svc.cluster.local");
	SET(s->request_id, "1ad2de20-806e-9622-949a-bd1d9735a3f4");
	SET(s->user_agent, "python-requests/2.31");
}

static void test_child_span(void **state)
{
	struct zipkin_span s;
	char *j;

	fill(&s);
	j = encode(&s, 1);
	assert_string_equal(
	    j,
	    "[{\"traceId\":\"80f198ee56343ba864fe8b2a57d3eff7\",\"parentId\":\"05e3ac9a4f6e3b90\","
	    "\"id\":\"e457b5a2e4d86bd1\",\"kind\":\"CLIENT\","
	    "\"name\":\"reviews.default.svc.cluster.local:9080/*\",\"timestamp\":1764625000123456,"
	    "\"duration\":1431,\"localEndpoint\":{\"serviceName\":\"unknown\",\"ipv4\":\"10.244.0."
	    "12\"},"
	    "\"remoteEndpoint\":{\"ipv4\":\"10.244.0.16\",\"port\":9080},\"tags\":{\"component\":"
	    "\"proxy\","
	    "\"guid:x-request-id\":\"1ad2de20-806e-9622-949a-bd1d9735a3f4\",\"http.method\":"
	    "\"GET\","
	    "\"http.protocol\":\"HTTP/1.1\",\"http.url\":\"http://reviews:9080/reviews/0\","
	    "\"http.status_code\":\"200\",\"response_flags\":\"-\","
	    "\"upstream_cluster\":\"outbound|9080|v1|reviews.default.svc.cluster.local\","
	    "\"upstream_cluster.name\":\"outbound|9080|v1|reviews.default.svc.cluster.local\","
	    "\"downstream_cluster\":\"-\",\"request_size\":\"0\",\"response_size\":\"295\","
	    "\"user_agent\":\"python-requests/2.31\",\"peer.address\":\"10.244.0.12\"}}]\n");
	free(j);
}

static void test_root_debug_error(void **state)
{
	struct zipkin_span s[2];
	char *j;

	fill(&s[0]);
	s[0].parent_id = 0;
	s[0].trace128 = false;
	s[0].debug = true;
	s[0].status = 0;
	s[0].dur_us = 0; /* the API wants >= 1 */
	s[0].remote_ip = 0;
	s[0].user_agent[0] = '\0';
	s[0].flags = 1u << RM_STATS_F_UF | 1u << RM_STATS_F_URX;
	SET(s[0].service, "productpage.default");
	fill(&s[1]);
	s[1].status = 503;
	j = encode(s, 2);
	assert_null(strstr(j, "\"parentId\":\"0000"));
	assert_non_null(strstr(j, "[{\"traceId\":\"64fe8b2a57d3eff7\",\"id\":"));
	assert_non_null(strstr(j, "\"duration\":1,\"debug\":true,"));
	assert_non_null(strstr(j, "\"serviceName\":\"productpage.default\""));
	assert_non_null(strstr(j, "\"http.status_code\":\"0\",\"response_flags\":\"UF,URX\""));
	assert_non_null(strstr(j, "\"user_agent\":\"-\""));
	assert_non_null(strstr(j, "\"error\":\"true\"}},{\"traceId\""));
	assert_non_null(strstr(j, "\"http.status_code\":\"503\""));
	assert_non_null(strstr(j, "\"error\":\"true\"}}]"));
	/* the first one has no remoteEndpoint, the second one has */
	assert_true(strstr(j, "remoteEndpoint") > strstr(j, "},{"));
	free(j);
	j = encode(s, 0);
	assert_string_equal(j, "[]\n");
	free(j);
}

static void test_escaping(void **state)
{
	struct zipkin_span s;
	char *j;
	char big[2000];

	fill(&s);
	SET(s.url, "http://h/\"q\\\x01\x1f\n\t\xff\xc3\xa9");
	SET(s.user_agent, "a\"b</script>");
	j = encode(&s, 1);
	assert_non_null(
	    strstr(j, "\"http.url\":\"http://h/\\\"q\\\\\\u0001\\u001f\\n\\t\\ufffd\xc3\xa9\""));
	assert_non_null(strstr(j, "\"user_agent\":\"a\\\"b</script>\""));
	free(j);
	/* a long value is cut to the field, a cut sequence becomes U+FFFD */
	memset(big, 'x', sizeof(big));
	big[sizeof(s.url) - 2] = '\xc3';
	big[sizeof(s.url) - 1] = '\xa9';
	zipkin_set(s.url, sizeof(s.url), big, sizeof(big));
	assert_int_equal(strlen(s.url), sizeof(s.url) - 1);
	j = encode(&s, 1);
	assert_non_null(strstr(j, "xxx\\ufffd\""));
	free(j);
	zipkin_set(s.method, sizeof(s.method), "", 0);
	assert_string_equal(s.method, "");
}

static void test_url(void **state)
{
	struct zipkin_url u;
	char err[256];
	static const char *const bad[] = {
	    "",
	    "zipkin:9411",
	    "ftp://h/",
	    "http://",
	    "http://:9411/x",
	    "http://h:/x",
	    "http://h:0/",
	    "http://h:65536/",
	    "http://h:12a/",
	    "http://u@h/",
	    "http://[::1]:9411/",
	    "http://h/a b",
	    "http://h/a#f",
	    "http://h/\x7f",
	};

	assert_int_equal(
	    zipkin_url_parse("http://zipkin.istio-system:9411/api/v2/spans", &u, err, sizeof(err)),
	    0);
	assert_string_equal(u.host, "zipkin.istio-system");
	assert_int_equal(u.port, 9411);
	assert_string_equal(u.path, "/api/v2/spans");
	assert_int_equal(zipkin_url_parse("http://127.0.0.1", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 80);
	assert_string_equal(u.path, ZIPKIN_DEFAULT_PATH);
	assert_int_equal(zipkin_url_parse("http://h:1/", &u, err, sizeof(err)), 0);
	assert_string_equal(u.path, ZIPKIN_DEFAULT_PATH);
	assert_int_equal(zipkin_url_parse("http://h:65535/c?x=1", &u, err, sizeof(err)), 0);
	assert_string_equal(u.path, "/c?x=1");
	assert_int_equal(zipkin_url_parse("https://zipkin:9411/api/v2/spans", &u, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "https is not supported"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(zipkin_url_parse(bad[i], &u, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_child_span),
	    cmocka_unit_test(test_root_debug_error),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
