/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The Prometheus exposition (user/common/prom.c) for given map contents: exact
 * lines (Istio's names, the 25 labels in order, Envoy's buckets, value
 * conventions), the reporter rule, overflow series, ringmesh_* metrics, escaping,
 * quantiles, consistent slot copies; and the admin listener's answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "common/prom.h"
#include "policy/cb.h"
#include "ringmeshd/admin.h"
#include "ringmeshd/bufpool.h"
#include "ringmeshd/stats_w.h"

#define NS 16
#define NR 32
#define SVC "trans-service.order-system-production.svc.cluster.local"

/* The label sets the source and destination copies of one row must carry. */
#define SRC_LABELS(code, flags)                                                                    \
	"reporter=\"source\",source_workload=\"unknown\",source_workload_namespace=\"unknown\","   \
	"source_principal=\"unknown\",source_app=\"unknown\",source_version=\"unknown\","          \
	"source_canonical_service=\"unknown\",source_canonical_revision=\"unknown\","              \
	"source_cluster=\"unknown\",destination_workload=\"trans-service\","                       \
	"destination_workload_namespace=\"order-system-production\","                              \
	"destination_principal=\"unknown\",destination_app=\"unknown\",destination_version="       \
	"\"v1\","                                                                                  \
	"destination_service=\"" SVC "\",destination_service_name=\"trans-service\","              \
	"destination_service_namespace=\"order-system-production\","                               \
	"destination_canonical_service=\"trans-service\",destination_canonical_revision=\"v1\","   \
	"destination_cluster=\"unknown\",request_protocol=\"http\",response_code=\"" code "\","    \
	"grpc_response_status=\"\",response_flags=\"" flags "\","                                  \
	"connection_security_policy=\"unknown\""
#define DST_LABELS(code)                                                                           \
	"reporter=\"destination\",source_workload=\"unknown\",source_workload_namespace="          \
	"\"unknown\","                                                                             \
	"source_principal=\"unknown\",source_app=\"unknown\",source_version=\"unknown\","          \
	"source_canonical_service=\"unknown\",source_canonical_revision=\"unknown\","              \
	"source_cluster=\"unknown\",destination_workload=\"trans-service\","                       \
	"destination_workload_namespace=\"order-system-production\","                              \
	"destination_principal=\"unknown\",destination_app=\"unknown\",destination_version="       \
	"\"v1\","                                                                                  \
	"destination_service=\"" SVC "\",destination_service_name=\"trans-service\","              \
	"destination_service_namespace=\"order-system-production\","                               \
	"destination_canonical_service=\"trans-service\",destination_canonical_revision=\"v1\","   \
	"destination_cluster=\"unknown\",request_protocol=\"http\",response_code=\"" code "\","    \
	"grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"none\""

static _Alignas(64) unsigned char mem[RM_STATS_BYTES(NS, NR)];
static struct stats_w sw;

static char *render(const struct prom_view *v)
{
	static struct prom_buf b;

	prom_buf_free(&b);
	assert_int_equal(prom_render(v, &b), 0);
	return b.p;
}

/* The text holds this exact line. */
static void has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p++;
	}
	print_error("missing line: %s\n", line);
	fail();
}

static int count_of(const char *text, const char *s)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, s)); p++)
		n++;
	return n;
}

static struct rm_stats_slot *fill(void)
{
	struct rm_stats_key k;
	struct rm_stats_slot *sl;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&sw, mem, NS, NR, 1);
	stats_key_make(&k, SVC, "v1", "trans-service", RM_STATS_HTTP);
	sl = stats_slot(&sw, &k);
	stats_request(&sw, sl, 200, 0, 700, 120, 300);	   /* 0.7 ms */
	stats_request(&sw, sl, 200, 0, 12000, 120, 3000);  /* 12 ms */
	stats_request(&sw, sl, 200, 0, 5000000, 120, 300); /* 5 s */
	stats_request(&sw, sl, 503, 1u << RM_STATS_F_UO, 100, 80, 200);
	stats_request(&sw, sl, 504, 1u << RM_STATS_F_UT, 5000100, 80, 150);
	stats_request(&sw, sl, 200, 1u << RM_STATS_F_DI, 1000, 80, 150);
	stats_tcp(sl, 3, 2, 1000, 5000);
	stats_set_generation(&sw, 7);
	stats_cfg_applied(&sw, 2500);
	return sl;
}

static void test_istio_requests(void **state)
{
	struct prom_view v = {.stats = mem, .stats_len = sizeof(mem), .tag = "0.1.0"};
	char *t;

	fill();
	t = render(&v);
	has_line(t, "# TYPE istio_requests_total counter");
	has_line(t, "istio_requests_total{" SRC_LABELS("200", "-") "} 3");
	has_line(t, "istio_requests_total{" SRC_LABELS("503", "UO") "} 1");
	has_line(t, "istio_requests_total{" SRC_LABELS("504", "UT") "} 1");
	has_line(t, "istio_requests_total{" SRC_LABELS("200", "DI") "} 1");
	/* destination copy: only what an upstream answered, without the caller's proxy
	 * flags, so the DI row and the plain 200 row are one series there */
	has_line(t, "istio_requests_total{" DST_LABELS("200") "} 4");
	assert_int_equal(count_of(t, "istio_requests_total{reporter=\"destination\""), 1);
	assert_null(strstr(t, "reporter=\"destination\",source_workload=\"unknown\","
			      "source_workload_namespace=\"unknown\",source_principal=\"unknown\","
			      "source_app=\"unknown\",source_version=\"unknown\",source_canonical_"
			      "service=\"unknown\",source_canonical_revision=\"unknown\",source_"
			      "cluster=\"unknown\",destination_workload=\"trans-service\","
			      "destination_workload_namespace=\"order-system-production\","
			      "destination_principal=\"unknown\",destination_app=\"unknown\","
			      "destination_version=\"v1\",destination_service=\"" SVC "\","
			      "destination_service_name=\"trans-service\",destination_service_"
			      "namespace=\"order-system-production\",destination_canonical_service="
			      "\"trans-service\",destination_canonical_revision=\"v1\","
			      "destination_cluster=\"unknown\",request_protocol=\"http\","
			      "response_code=\"50"));
	assert_int_equal(count_of(t, "# TYPE "), count_of(t, "# HELP "));
	assert_int_equal(count_of(t, "# TYPE istio_requests_total "), 1);
	has_line(t, "istio_build{component=\"ringmesh\",tag=\"0.1.0\"} 1");
}

static void test_istio_histograms(void **state)
{
	struct prom_view v = {.stats = mem, .stats_len = sizeof(mem)};
	static const char *const le[] = {
	    "0.5",   "1",      "5",	 "10",	    "25",      "50",	"100",
	    "250",   "500",    "1000",	 "2500",    "5000",    "10000", "30000",
	    "60000", "300000", "600000", "1800000", "3600000", "+Inf",
	};
	/* 0.7 ms, 12 ms, 5 s: cumulative counts per bound */
	static const int cum[] = {0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3};
	char line[2048];
	char *t;

	fill();
	t = render(&v);
	has_line(t, "# TYPE istio_request_duration_milliseconds histogram");
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof(line),
			 "istio_request_duration_milliseconds_bucket{" SRC_LABELS(
			     "200", "-") ",le=\"%s\"} %d",
			 le[i], cum[i]);
		has_line(t, line);
	}
	has_line(t, "istio_request_duration_milliseconds_sum{" SRC_LABELS("200", "-") "} 5012.700");
	has_line(t, "istio_request_duration_milliseconds_count{" SRC_LABELS("200", "-") "} 3");
	/* sizes: 120 B x3 lands in le=250; response 300, 3000, 300 */
	has_line(t, "istio_request_bytes_bucket{" SRC_LABELS("200", "-") ",le=\"100\"} 0");
	has_line(t, "istio_request_bytes_bucket{" SRC_LABELS("200", "-") ",le=\"250\"} 3");
	has_line(t, "istio_request_bytes_sum{" SRC_LABELS("200", "-") "} 360");
	has_line(t, "istio_response_bytes_bucket{" SRC_LABELS("200", "-") ",le=\"500\"} 2");
	has_line(t, "istio_response_bytes_bucket{" SRC_LABELS("200", "-") ",le=\"5000\"} 3");
	has_line(t, "istio_response_bytes_bucket{" SRC_LABELS("200", "-") ",le=\"+Inf\"} 3");
	has_line(t, "istio_response_bytes_count{" SRC_LABELS("200", "-") "} 3");
	/* 20 buckets per series: 4 source rows + 1 destination series, per histogram */
	assert_int_equal(count_of(t, "istio_request_duration_milliseconds_bucket{"), 5 * 20);
	assert_int_equal(count_of(t, "istio_request_bytes_bucket{"), 5 * 20);
	has_line(t, "istio_request_duration_milliseconds_count{" DST_LABELS("200") "} 4");
	has_line(t, "istio_request_duration_milliseconds_sum{" DST_LABELS("200") "} 5013.700");
}

static void test_tcp_and_own(void **state)
{
	uint64_t dp[RM_DP_STAT_MAX] = {0};
	struct prom_view v = {.stats = mem,
			      .stats_len = sizeof(mem),
			      .dp = dp,
			      .has_store_gen = true,
			      .store_gen = 8};
	char *t;

	dp[RM_DP_REDIRECTED] = 42;
	dp[RM_DP_STALE] = 2;
	fill();
	t = render(&v);
	/* received = from the caller (the request direction), sent = to it */
	has_line(t,
		 "istio_tcp_received_bytes_total{reporter=\"source\",source_workload=\"unknown\","
		 "source_workload_namespace=\"unknown\",source_principal=\"unknown\",source_app="
		 "\"unknown\",source_version=\"unknown\",source_canonical_service=\"unknown\","
		 "source_canonical_revision=\"unknown\",source_cluster=\"unknown\","
		 "destination_workload=\"trans-service\",destination_workload_namespace=\"order-"
		 "system-production\",destination_principal=\"unknown\",destination_app="
		 "\"unknown\",destination_version=\"v1\",destination_service=\"" SVC
		 "\",destination_service_name=\"trans-service\",destination_service_namespace="
		 "\"order-system-production\",destination_canonical_service=\"trans-service\","
		 "destination_canonical_revision=\"v1\",destination_cluster=\"unknown\","
		 "request_protocol=\"http\",response_flags=\"-\",connection_security_policy="
		 "\"unknown\"} 1000");
	assert_non_null(strstr(t, "istio_tcp_sent_bytes_total{reporter=\"source\""));
	assert_non_null(strstr(t, "connection_security_policy=\"unknown\"} 5000\n"));
	assert_non_null(strstr(t, "connection_security_policy=\"none\"} 3\n"));
	assert_int_equal(count_of(t, "istio_tcp_connections_opened_total{"), 2);
	assert_int_equal(count_of(t, "istio_tcp_connections_closed_total{"), 2);
	has_line(t, "ringmesh_datapath_decisions_total{decision=\"redirected\"} 42");
	has_line(t, "ringmesh_datapath_decisions_total{decision=\"stale\"} 2");
	has_line(t, "ringmesh_datapath_decisions_total{decision=\"excluded\"} 0");
	has_line(t, "ringmesh_config_generation 7");
	has_line(t, "ringmesh_config_store_generation 8");
	has_line(t, "ringmesh_config_applies_total 1");
	has_line(t, "ringmesh_config_apply_duration_seconds_bucket{le=\"0.001\"} 0");
	has_line(t, "ringmesh_config_apply_duration_seconds_bucket{le=\"0.005\"} 1");
	has_line(t, "ringmesh_config_apply_duration_seconds_bucket{le=\"3600\"} 1");
	has_line(t, "ringmesh_config_apply_duration_seconds_sum 0.002500");
	has_line(t, "ringmesh_config_apply_duration_seconds_count 1");
	has_line(t, "ringmesh_stats_keys 1");
	has_line(t, "ringmesh_stats_keys_max 15");
	has_line(t, "ringmesh_stats_rows 5"); /* 4 (code, flags) rows and the reserved one */
	has_line(t, "ringmesh_stats_rows_max 32");
	has_line(t, "ringmesh_stats_overflow_total{kind=\"pool\"} 0");
	has_line(t, "ringmesh_stats_overflow_total{kind=\"key\"} 0");
	has_line(t, "istio_build{component=\"ringmesh\",tag=\"unknown\"} 1");
}

/* TCP series of a declared TCP service: a key per response flags (UO refused at
 * maxConnections, UF a failed connect), on the source side only, next to the
 * connections that went through ("-", on both sides) */
static void test_tcp_flags(void **state)
{
	struct prom_view v = {.stats = mem, .stats_len = sizeof(mem)};
	struct rm_stats_key k;
	char *t;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&sw, mem, NS, NR, 1);
	stats_key_make(&k, SVC, "v1", "trans-service", RM_STATS_TCP);
	stats_tcp(stats_slot(&sw, &k), 5, 4, 100, 200);
	k.tcp_flags = 1u << RM_STATS_F_UF;
	stats_tcp(stats_slot(&sw, &k), 2, 2, 0, 0);
	stats_key_make(&k, SVC, NULL, NULL, RM_STATS_TCP);
	k.tcp_flags = 1u << RM_STATS_F_UO;
	stats_tcp(stats_slot(&sw, &k), 3, 3, 0, 0);
	t = render(&v);
	assert_non_null(strstr(t, "destination_version=\"v1\",destination_service=\"" SVC));
	assert_non_null(strstr(t, "request_protocol=\"tcp\",response_flags=\"UF\","
				  "connection_security_policy=\"unknown\"} 2\n"));
	assert_non_null(strstr(t, "destination_version=\"unknown\",destination_service=\"" SVC));
	assert_non_null(strstr(t, "request_protocol=\"tcp\",response_flags=\"UO\","
				  "connection_security_policy=\"unknown\"} 3\n"));
	assert_non_null(strstr(t, "request_protocol=\"tcp\",response_flags=\"-\","
				  "connection_security_policy=\"none\"} 5\n"));
	/* 3 source series, 1 destination series (the connections that reached v1) */
	assert_int_equal(count_of(t, "istio_tcp_connections_opened_total{reporter=\"source\""), 3);
	assert_int_equal(count_of(t, "istio_tcp_connections_opened_total{reporter=\"destination\""),
			 1);
	assert_int_equal(count_of(t, "response_flags=\"UO\""), 4); /* 4 families, source only */
}

static void test_breaker(void **state)
{
	/* a map of another size than the defaults (--breaker-pools 300 --breaker-hosts
	 * 40), its live pool past the default's 256 slots: read from the header's sizes */
	size_t len = RM_CB_BYTES(300, 40);
	void *mem = calloc(1, len);
	struct prom_view v = {.cb = mem, .cb_len = len};
	struct rm_cb_pool *p;
	struct cb cb;
	char *t;

	assert_non_null(mem);
	assert_int_equal(cb_attach(&cb, mem, len, 300, 40, 1), 0);
	cb.h->hosts_dropped = 3;
	cb.h->pools_used = 2;
	cb.h->hosts_used = 7;
	p = &cb.pools[280];
	p->state = RM_CB_LIVE;
	strcpy(p->service, SVC);
	strcpy(p->subset, "v3");
	p->connections = 1;
	p->pending = 1;
	p->requests = 2;
	p->ejected = 1;
	p->n_hosts = 4;
	p->pending_overflow = 9;
	p->ejections_total = 5;
	cb.pools[299].state = RM_CB_CLAIMING; /* not live: not shown */
	t = render(&v);
	has_line(t, "ringmesh_breaker_pools_max 300");
	has_line(t, "ringmesh_breaker_hosts_max 40");
	has_line(t, "ringmesh_breaker_slots{table=\"pools\"} 2");
	has_line(t, "ringmesh_breaker_slots{table=\"hosts\"} 7");
	has_line(t,
		 "ringmesh_breaker_connections{destination_service=\"" SVC "\",subset=\"v3\"} 1");
	has_line(t, "ringmesh_breaker_pending{destination_service=\"" SVC "\",subset=\"v3\"} 1");
	has_line(t, "ringmesh_breaker_requests_active{destination_service=\"" SVC
		    "\",subset=\"v3\"} 2");
	has_line(t,
		 "ringmesh_breaker_hosts_ejected{destination_service=\"" SVC "\",subset=\"v3\"} 1");
	has_line(t, "ringmesh_breaker_hosts{destination_service=\"" SVC "\",subset=\"v3\"} 4");
	has_line(t, "ringmesh_breaker_ejections_total{destination_service=\"" SVC
		    "\",subset=\"v3\"} 5");
	has_line(t, "ringmesh_breaker_overflows_total{destination_service=\"" SVC
		    "\",subset=\"v3\",limit=\"pending\"} 9");
	has_line(t, "ringmesh_breaker_overflows_total{destination_service=\"" SVC
		    "\",subset=\"v3\",limit=\"requests\"} 0");
	has_line(t, "ringmesh_breaker_table_full_total{table=\"hosts\"} 3");
	assert_int_equal(count_of(t, "ringmesh_breaker_connections{"), 1);
	/* no rm_stats in the view: no Istio series, but istio_build */
	assert_null(strstr(t, "istio_requests_total"));
	has_line(t, "istio_build{component=\"ringmesh\",tag=\"unknown\"} 1");
	/* a mapping shorter than its header says: no breaker metrics at all */
	v.cb_len = len - 64;
	t = render(&v);
	assert_null(strstr(t, "ringmesh_breaker_"));
	free(mem);
}

static void test_overflow_and_escaping(void **state)
{
	struct prom_view v = {.stats = mem, .stats_len = sizeof(mem)};
	struct rm_stats_key k;
	struct rm_stats_slot *sl;
	char *t;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&sw, mem, NS, NR, 1);
	stats_key_make(&k, "odd-host:8080", "v\"1\\\n", NULL, RM_STATS_HTTP);
	sl = stats_slot(&sw, &k);
	for (int c = 0; c < RM_STATS_ROWS + 1; c++)
		stats_request(&sw, sl, 400 + c, 0, 10, 1, 1);
	/* keys beyond the table: 15 probed slots, the rest in the overflow slot */
	for (int i = 0; i < 20; i++) {
		char ver[16];

		snprintf(ver, sizeof(ver), "x%d", i);
		stats_key_make(&k, "many.ns.svc.cluster.local", ver, NULL, RM_STATS_HTTP);
		stats_request(&sw, stats_slot(&sw, &k), 200, 0, 10, 1, 1);
	}
	t = render(&v);
	/* a host that is no FQDN: name = host, namespace unknown; the value escaped */
	assert_non_null(strstr(t, "destination_version=\"v\\\"1\\\\\\n\",destination_service="
				  "\"odd-host:8080\",destination_service_name=\"odd-host:8080\","
				  "destination_service_namespace=\"unknown\""));
	assert_non_null(strstr(t,
			       "response_code=\"overflow\",grpc_response_status=\"\","
			       "response_flags=\"-\",connection_security_policy=\"unknown\"} 2\n"));
	has_line(t, "ringmesh_stats_overflow_total{kind=\"code\"} 2");
	assert_true(sw.h->dropped > 0);
	{
		char want[96];

		snprintf(want, sizeof(want), "ringmesh_stats_overflow_total{kind=\"key\"} %llu",
			 (unsigned long long)sw.h->dropped);
		has_line(t, want);
	}
	assert_non_null(strstr(t, "destination_service=\"overflow\",destination_service_name="
				  "\"overflow\",destination_service_namespace=\"unknown\""));
	/* every request of the 20 keys is somewhere: the 200 series sum to 20 */
	{
		unsigned long total = 0;

		for (const char *p = t; (p = strstr(p, "istio_requests_total{reporter=\"source\""));
		     p++) {
			const char *nl = strchr(p, '\n');

			if (strstr(p, "response_code=\"200\"") < nl)
				total += strtoul(memrchr(p, ' ', (size_t)(nl - p)) + 1, NULL, 10);
		}
		assert_int_equal(total, 20);
	}
}

/* The row pool runs out: the requests are in overflow series, counted, none lost. */
static void test_pool_full(void **state)
{
	struct prom_view v = {.stats = mem, .stats_len = sizeof(mem)};
	struct rm_stats_key k;
	struct bufpool cp, up;
	char *t;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&sw, mem, NS, 3, 1);
	stats_key_make(&k, SVC, "v1", "trans-service", RM_STATS_HTTP);
	stats_request(&sw, stats_slot(&sw, &k), 200, 0, 10, 1, 1);
	stats_request(&sw, stats_slot(&sw, &k), 201, 0, 10, 1, 1);
	stats_request(&sw, stats_slot(&sw, &k), 202, 0, 10, 1, 1);
	stats_key_make(&k, SVC, "v2", "trans-service", RM_STATS_HTTP);
	stats_request(&sw, stats_slot(&sw, &k), 200, 0, 10, 1, 1);
	assert_int_equal(bufpool_init(&cp, 4096, 8, 1), 0);
	assert_int_equal(bufpool_init(&up, 4096, 8, 1), 0);
	assert_non_null(bufpool_get(&cp));
	stats_worker_bufs(&sw, 0, &cp, &up, 1);
	t = render(&v);
	has_line(t, "istio_requests_total{" SRC_LABELS("200", "-") "} 1");
	assert_non_null(strstr(t, "istio_requests_total{reporter=\"source\""));
	/* 201 took the last row; 202 and v2's 200 went to the overflow slot's row */
	assert_non_null(
	    strstr(t, "destination_service=\"overflow\",destination_service_name="
		      "\"overflow\",destination_service_namespace=\"unknown\","
		      "destination_canonical_service=\"unknown\",destination_canonical_"
		      "revision=\"unknown\",destination_cluster=\"unknown\",request_"
		      "protocol=\"http\",response_code=\"overflow\",grpc_response_status="
		      "\"\",response_flags=\"-\",connection_security_policy=\"unknown\"} 2\n"));
	has_line(t, "ringmesh_stats_rows 3");
	has_line(t, "ringmesh_stats_rows_max 3");
	has_line(t, "ringmesh_stats_overflow_total{kind=\"pool\"} 2");
	has_line(t, "ringmesh_stats_overflow_total{kind=\"code\"} 2");
	has_line(t, "ringmesh_stats_keys 3"); /* v1, v2 and the overflow slot */
	has_line(t, "ringmesh_worker_buffers_in_use{worker=\"0\",pool=\"client\"} 1");
	has_line(t, "ringmesh_worker_buffers{worker=\"0\",pool=\"upstream\"} 8");
	has_line(t, "ringmesh_worker_buffer_waits_total{worker=\"0\",pool=\"client\"} 0");
	has_line(t, "ringmesh_worker_buffer_resident_bytes{worker=\"0\"} 4096");
	/* request mirroring: each counter in its own series, out-of-range reasons ignored */
	has_line(t, "ringmesh_mirror_requests_total 0");
	stats_mirror_sent(&sw);
	stats_mirror_sent(&sw);
	stats_mirror_answered(&sw);
	stats_mirror_skipped(&sw, RM_MIR_SKIP_LIMIT);
	stats_mirror_skipped(&sw, RM_MIR_SKIP_BODY);
	stats_mirror_skipped(&sw, RM_MIR_SKIP_BODY);
	stats_mirror_skipped(&sw, RM_MIR_SKIP_N);
	stats_mirror_failed(&sw, RM_MIR_FAIL_TIMEOUT);
	stats_mirror_failed(&sw, RM_MIR_FAIL_N);
	stats_mirror_sent(NULL); /* no map: nothing */
	t = render(&v);
	has_line(t, "ringmesh_mirror_requests_total 2");
	has_line(t, "ringmesh_mirror_responses_total 1");
	has_line(t, "ringmesh_mirror_skipped_total{reason=\"limit\"} 1");
	has_line(t, "ringmesh_mirror_skipped_total{reason=\"body\"} 2");
	has_line(t, "ringmesh_mirror_skipped_total{reason=\"overflow\"} 0");
	has_line(t, "ringmesh_mirror_skipped_total{reason=\"resources\"} 0");
	has_line(t, "ringmesh_mirror_skipped_total{reason=\"behind\"} 0");
	has_line(t, "ringmesh_mirror_failed_total{reason=\"timeout\"} 1");
	has_line(t, "ringmesh_mirror_failed_total{reason=\"connect\"} 0");
	assert_int_equal(count_of(t, "# TYPE "), count_of(t, "# HELP "));
	bufpool_fini(&cp);
	bufpool_fini(&up);
}

static void test_quantile(void **state)
{
	uint64_t b[RM_STATS_BUCKETS] = {0};

	assert_true(prom_quantile(b, 0.5) < 0);
	b[3] = 10; /* (5, 10] ms */
	assert_true(prom_quantile(b, 0.5) > 7.49 && prom_quantile(b, 0.5) < 7.51);
	assert_true(prom_quantile(b, 0.99) > 9.94 && prom_quantile(b, 0.99) < 9.96);
	b[RM_STATS_BUCKETS - 1] = 90; /* +Inf answers the largest bound */
	assert_true(prom_quantile(b, 0.99) == 3600000.0);
	{
		char f[64];

		assert_string_equal(prom_flags_str(0, f, sizeof(f)), "-");
		assert_string_equal(
		    prom_flags_str((1u << RM_STATS_F_UO) | (1u << RM_STATS_F_UH), f, sizeof(f)),
		    "UH,UO");
	}
}

/* Writers hammer one slot while a reader copies it: every quiet copy has equal
 * counts in all three histograms and the TCP counter (one update each). */
struct hammer {
	struct rm_stats_slot *sl;
	volatile int stop;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;

	/* new codes now and then: rows are taken from the pool while readers copy */
	for (unsigned n = 0; !h->stop; n++)
		stats_request(&sw, h->sl, 200 + (n >> 12) % 6, 0, 10, 10, 10);
	return NULL;
}

static void test_consistent_copy(void **state)
{
	static struct prom_series cp;
	struct prom_stats ps;
	struct rm_stats_key k;
	struct hammer h = {0};
	pthread_t t[2];
	int quiet = 0;

	memset(mem, 0, sizeof(mem));
	stats_w_attach(&sw, mem, NS, NR, 1);
	stats_key_make(&k, SVC, "v1", NULL, RM_STATS_HTTP);
	h.sl = stats_slot(&sw, &k);
	assert_int_equal(prom_stats_locate(mem, sizeof(mem), &ps), 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, hammer_main, &h);
	for (int i = 0; i < 100000; i++) {
		uint64_t n = 0;

		if (prom_series_copy(&ps, (uint32_t)(h.sl - sw.slots), &cp))
			continue;
		quiet++;
		for (int r = 0; r < RM_STATS_ROWS; r++) {
			uint64_t a = 0, b = 0, c = 0;

			for (int j = 0; j < RM_STATS_BUCKETS; j++) {
				a += cp.rows[r].dur.b[j];
				b += cp.rows[r].req.b[j];
				c += cp.rows[r].resp.b[j];
			}
			assert_true(a == b && b == c);
			assert_true(cp.rows[r].dur.sum == 10 * a && cp.rows[r].req.sum == 10 * a);
			n += a;
		}
		/* every update finished before the copy, none after: all rows agree */
		assert_true(n == cp.sl.wend);
	}
	h.stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_true(quiet > 0);
}

static void test_admin_answers(void **state)
{
	struct admin a = {.pin_dir = "/nonexistent-ringmesh-pin", .tag = "9.9"};
	struct prom_buf b = {0};
	const char *ct;
	int st;

	admin_answer(&a, "GET /healthz/ready HTTP/1.1\r\n\r\n", 31, &st, &ct, &b);
	assert_int_equal(st, 503);
	prom_buf_free(&b);
	admin_set_ready(&a, true);
	admin_answer(&a, "GET /healthz/ready HTTP/1.1\r\n\r\n", 31, &st, &ct, &b);
	assert_int_equal(st, 200);
	prom_buf_free(&b);
	/* no maps pinned: still a valid exposition, with istio_build */
	admin_answer(&a, "GET /stats/prometheus HTTP/1.1\r\n\r\n", 35, &st, &ct, &b);
	assert_int_equal(st, 200);
	assert_string_equal(ct, PROM_CONTENT_TYPE);
	assert_non_null(strstr(b.p, "istio_build{component=\"ringmesh\",tag=\"9.9\"} 1\n"));
	prom_buf_free(&b);
	admin_answer(&a, "GET /metrics?x=1 HTTP/1.1\r\n\r\n", 29, &st, &ct, &b);
	assert_int_equal(st, 200);
	prom_buf_free(&b);
	admin_answer(&a, "GET /metricsx HTTP/1.1\r\n\r\n", 26, &st, &ct, &b);
	assert_int_equal(st, 404);
	prom_buf_free(&b);
	admin_answer(&a, "POST /metrics HTTP/1.1\r\n\r\n", 26, &st, &ct, &b);
	assert_int_equal(st, 405);
	prom_buf_free(&b);
	admin_answer(&a, "garbage", 7, &st, &ct, &b);
	assert_int_equal(st, 400);
	prom_buf_free(&b);
}

/* One request over a real socket to the admin thread; the status line back. */
static void get(uint16_t port, const char *req, char *out, size_t cap)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	size_t len = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (len < cap - 1 && (n = read(fd, out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fd);
}

static void test_admin_thread(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	static struct admin a;
	char err[256], resp[65536];
	uint16_t port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(admin_listen(&a, &sa, "/nonexistent-ringmesh-pin", "t", err, sizeof(err)),
			 0);
	assert_int_equal(getsockname(a.lfd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	/* a second listener on the same port is refused, with the address named */
	{
		static struct admin b;

		assert_true(admin_listen(&b, &sa, "/x", "t", err, sizeof(err)) < 0);
		assert_non_null(strstr(err, "--metrics-listen 127.0.0.1:"));
	}
	assert_int_equal(admin_start(&a, err, sizeof(err)), 0);
	get(port, "GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n", resp, sizeof(resp));
	assert_non_null(strstr(resp, "HTTP/1.1 503 Service Unavailable\r\n"));
	admin_set_ready(&a, true);
	get(port, "GET /healthz/ready HTTP/1.1\r\n\r\n", resp, sizeof(resp));
	assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(resp, "connection: close\r\n"));
	get(port, "GET /stats/prometheus HTTP/1.1\r\n\r\n", resp, sizeof(resp));
	assert_non_null(strstr(resp, "content-type: " PROM_CONTENT_TYPE "\r\n"));
	assert_non_null(strstr(resp, "\r\n\r\n# HELP istio_build "));
	get(port, "HEAD /metrics HTTP/1.1\r\n\r\n", resp, sizeof(resp));
	assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
	assert_null(strstr(resp, "istio_build"));
	admin_stop(&a);
	assert_int_equal(a.lfd, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_istio_requests),  cmocka_unit_test(test_istio_histograms),
	    cmocka_unit_test(test_tcp_and_own),	    cmocka_unit_test(test_tcp_flags),
	    cmocka_unit_test(test_breaker),	    cmocka_unit_test(test_overflow_and_escaping),
	    cmocka_unit_test(test_pool_full),	    cmocka_unit_test(test_quantile),
	    cmocka_unit_test(test_consistent_copy), cmocka_unit_test(test_admin_answers),
	    cmocka_unit_test(test_admin_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
