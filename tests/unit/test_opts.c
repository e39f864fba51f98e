/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* ringmeshd command line: defaults, every option, and a clear error for each bad value. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "ringmeshd/opts.h"

static struct rm_opts o;
static char err[512];

#define PARSE(ncpus, ...)                                                                          \
	({                                                                                         \
		char *argv_[] = {"ringmeshd", __VA_ARGS__};                                        \
		memset(err, 0, sizeof(err));                                                       \
		opts_parse(&o, (int)(sizeof(argv_) / sizeof(argv_[0])), argv_, ncpus, err,         \
			   sizeof(err));                                                           \
	})

#define REQ "--cgroup", "/sys/fs/cgroup/unified/pods", "--include-ip-ranges", "10.96.0.0/12"

/* A rejected line: -EINVAL and a message that names every given fragment. */
static void expect_err(int rc, const char *frag1, const char *frag2)
{
	assert_int_equal(rc, -EINVAL);
	if (!strstr(err, frag1) || (frag2 && !strstr(err, frag2)))
		fail_msg("message '%s' lacks '%s'%s%s", err, frag1, frag2 ? " or " : "",
			 frag2 ? frag2 : "");
}

static void test_defaults(void **state)
{
	assert_int_equal(PARSE(8, REQ), OPTS_RUN);
	assert_string_equal(o.cgroup_path, "/sys/fs/cgroup/unified/pods");
	assert_int_equal(o.n_include, 1);
	assert_int_equal(o.include[0].plen, 12);
	assert_int_equal(o.n_exclude, 0);
	assert_int_equal(o.n_exclude_ports, 0);
	assert_int_equal(o.listen.sin_family, AF_INET);
	assert_int_equal(ntohs(o.listen.sin_port), 15001);
	assert_int_equal(o.listen.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(o.pod_gw.s_addr, inet_addr("169.254.7.1"));
	assert_string_equal(o.pin_dir, "/sys/fs/bpf/ringmesh");
	assert_int_equal(o.workers, 8);
	assert_false(o.accept_exact);
	assert_int_equal(o.sockmap, OPTS_SOCKMAP_DEFAULT);
	assert_int_equal(o.heartbeat_max_ms, 1000);
	assert_int_equal(o.verbose, 0);
	assert_true(o.metrics);
	assert_int_equal(ntohs(o.metrics_listen.sin_port), 15090);
	assert_int_equal(o.metrics_listen.sin_addr.s_addr, htonl(INADDR_ANY));
	assert_string_equal(o.gateway_dev, "ringmesh0");
	assert_false(o.allow_root_cgroup);
	assert_int_equal(o.upstream_max_idle, 1024);
	assert_int_equal(o.request_buffers, 4096);
	assert_int_equal(o.max_mirrors, 128);
	assert_int_equal(o.stats_keys, 0);    /* rm_stats' compiled-in capacity */
	assert_int_equal(o.breaker_pools, 0); /* rm_breaker's: 256 pools, 16 hosts each */
	assert_int_equal(o.breaker_hosts, 0);
}

static void test_gateway_dev(void **state)
{
	assert_int_equal(PARSE(1, REQ, "--gateway-dev", "rm-gw0"), OPTS_RUN);
	assert_string_equal(o.gateway_dev, "rm-gw0");
	assert_int_equal(PARSE(1, REQ, "--gateway-dev", "off"), OPTS_RUN);
	assert_null(o.gateway_dev);
	expect_err(PARSE(1, REQ, "--gateway-dev", "a-name-too-long-x"), "--gateway-dev",
		   "interface name");
	expect_err(PARSE(1, REQ, "--gateway-dev", "a/b"), "'a/b'", "interface name");
	expect_err(PARSE(1, REQ, "--gateway-dev", ""), "--gateway-dev", NULL);
}

static void test_metrics_listen(void **state)
{
	assert_int_equal(PARSE(1, REQ, "--metrics-listen", "127.0.0.1:19090"), OPTS_RUN);
	assert_true(o.metrics);
	assert_int_equal(ntohs(o.metrics_listen.sin_port), 19090);
	assert_int_equal(o.metrics_listen.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(PARSE(1, REQ, "--metrics-listen=off"), OPTS_RUN);
	assert_false(o.metrics);
	expect_err(PARSE(1, REQ, "--metrics-listen", "15090"), "--metrics-listen", "15090");
	expect_err(PARSE(1, REQ, "--metrics-listen", "0.0.0.0:0"), "--metrics-listen", "1..65535");
	expect_err(PARSE(1, REQ, "--metrics-listen", "on"), "--metrics-listen", "'on'");
	expect_err(PARSE(1, REQ, "--metrics-listen", "0.0.0.0:15001"), "--metrics-listen",
		   "proxy listener");
	expect_err(PARSE(1, REQ, "--metrics-listen", "off", "--metrics-listen", "off"),
		   "--metrics-listen", "twice");
	/* the same port on another address than the proxy's is fine */
	assert_int_equal(PARSE(1, REQ, "--metrics-listen", "127.0.0.2:15001"), OPTS_RUN);
	assert_non_null(strstr(opts_usage(), "--metrics-listen ADDR:PORT"));
}

static void test_tracing(void **state)
{
	assert_int_equal(PARSE(1, REQ), OPTS_RUN);
	assert_false(o.zipkin);
	assert_int_equal(o.trace_ppm, 10000); /* 1 % */
	assert_int_equal(PARSE(1, REQ, "--zipkin-url", "http://127.0.0.1:9411/api/v2/spans",
			       "--trace-sampling", "0.5"),
			 OPTS_RUN);
	assert_true(o.zipkin);
	assert_string_equal(o.zipkin_url.host, "127.0.0.1");
	assert_int_equal(o.zipkin_url.port, 9411);
	assert_string_equal(o.zipkin_url.path, "/api/v2/spans");
	assert_int_equal(o.trace_ppm, 5000);
	assert_int_equal(PARSE(1, REQ, "--trace-sampling=100"), OPTS_RUN);
	assert_int_equal(o.trace_ppm, 1000000);
	assert_int_equal(PARSE(1, REQ, "--trace-sampling=0"), OPTS_RUN);
	assert_int_equal(o.trace_ppm, 0);
	expect_err(PARSE(1, REQ, "--zipkin-url", "https://zipkin:9411/api/v2/spans"),
		   "--zipkin-url", "https is not supported");
	expect_err(PARSE(1, REQ, "--zipkin-url", "zipkin:9411"), "--zipkin-url", "http://");
	expect_err(PARSE(1, REQ, "--zipkin-url", "http://z:99999/"), "--zipkin-url", "1..65535");
	expect_err(PARSE(1, REQ, "--trace-sampling", "101"), "--trace-sampling", "'101'");
	expect_err(PARSE(1, REQ, "--trace-sampling", "-1"), "--trace-sampling", "0..100");
	expect_err(PARSE(1, REQ, "--trace-sampling", "1%"), "--trace-sampling", "0..100");
	expect_err(PARSE(1, REQ, "--trace-sampling", "1", "--trace-sampling", "2"),
		   "--trace-sampling", "twice");
	assert_non_null(strstr(opts_usage(), "--zipkin-url URL"));
	assert_non_null(strstr(opts_usage(), "--trace-sampling PERCENT"));
}

static void test_workers_default_clamped(void **state)
{
	assert_int_equal(PARSE(0, REQ), OPTS_RUN);
	assert_int_equal(o.workers, 1);
	assert_int_equal(PARSE(-1, REQ), OPTS_RUN);
	assert_int_equal(o.workers, 1);
	assert_int_equal(PARSE(200, REQ), OPTS_RUN);
	assert_int_equal(o.workers, 64);
}

static void test_all_options(void **state)
{
	int rc = PARSE(4, "--cgroup=/sys/fs/cgroup/pods", "--include-ip-ranges",
		       "10.96.0.0/12,10.244.0.0/16", "--exclude-ip-ranges=10.96.0.1/32",
		       "--exclude-ports", "22,15090", "--listen", "127.0.0.2:15006",
		       "--pod-gateway", "169.254.9.9", "--pin-dir", "/sys/fs/bpf/rm-test",
		       "--workers", "3", "--no-sockmap", "--heartbeat-max-ms", "2500", "-vv", "-v");

	assert_int_equal(rc, OPTS_RUN);
	assert_string_equal(o.cgroup_path, "/sys/fs/cgroup/pods");
	assert_int_equal(o.n_include, 2);
	assert_int_equal(o.include[1].plen, 16);
	assert_int_equal(o.n_exclude, 1);
	assert_int_equal(o.exclude[0].plen, 32);
	assert_int_equal(o.n_exclude_ports, 2);
	assert_int_equal(o.exclude_ports[0], 22);
	assert_int_equal(o.exclude_ports[1], 15090);
	assert_int_equal(ntohs(o.listen.sin_port), 15006);
	assert_int_equal(o.listen.sin_addr.s_addr, inet_addr("127.0.0.2"));
	assert_int_equal(o.pod_gw.s_addr, inet_addr("169.254.9.9"));
	assert_string_equal(o.pin_dir, "/sys/fs/bpf/rm-test");
	assert_int_equal(o.workers, 3);
	assert_false(o.sockmap);
	assert_int_equal(o.heartbeat_max_ms, 2500);
	assert_int_equal(o.verbose, 3);
	/* either way explicitly, the last one given winning */
	assert_int_equal(PARSE(4, REQ, "--sockmap"), OPTS_RUN);
	assert_true(o.sockmap);
	assert_int_equal(PARSE(4, REQ, "--sockmap", "--no-sockmap"), OPTS_RUN);
	assert_false(o.sockmap);
	assert_int_equal(PARSE(4, REQ, "--no-sockmap", "--sockmap"), OPTS_RUN);
	assert_true(o.sockmap);
}

static void test_help_version(void **state)
{
	/* Answered even without the required options, and help wins over version. */
	assert_int_equal(PARSE(1, "--help"), OPTS_HELP);
	assert_int_equal(PARSE(1, "-h"), OPTS_HELP);
	assert_int_equal(PARSE(1, "--version"), OPTS_VERSION);
	assert_int_equal(PARSE(1, "--version", "--help"), OPTS_HELP);
	assert_int_equal(PARSE(1, "--cgroup", "/x", "--help"), OPTS_HELP);
	assert_non_null(strstr(opts_usage(), "--include-ip-ranges"));
	assert_non_null(strstr(opts_usage(), "--no-sockmap"));
	assert_non_null(strstr(opts_usage(), "(default: " OPTS_SOCKMAP_DEFAULT_WORD ")"));
	assert_int_equal(opts_usage()[strlen(opts_usage()) - 1], '\n');
	/* A bad option is still an error, even next to --help. */
	expect_err(PARSE(1, "--help", "--frobnicate"), "--frobnicate", NULL);
}

static void test_required(void **state)
{
	/* No --cgroup: main() looks for the kubelet's pods cgroup under the cgroup2 mount. */
	assert_int_equal(PARSE(1, "--include-ip-ranges", "10.0.0.0/8"), OPTS_RUN);
	assert_null(o.cgroup_path);
	expect_err(PARSE(1, "--cgroup", "/sys/fs/cgroup/unified/pods"),
		   "--include-ip-ranges is required", NULL);
	{
		char *argv[] = {"ringmeshd", NULL};

		expect_err(opts_parse(&o, 1, argv, 1, err, sizeof(err)),
			   "--include-ip-ranges is required", NULL);
	}
}

static void test_syntax_errors(void **state)
{
	expect_err(PARSE(1, REQ, "--frobnicate"), "unknown option '--frobnicate'", NULL);
	expect_err(PARSE(1, REQ, "--listen=1.2.3.4:5", "--bogus=1"), "'--bogus'", NULL);
	expect_err(PARSE(1, REQ, "-x"), "unknown option '-x'", NULL);
	expect_err(PARSE(1, REQ, "stray"), "unexpected argument 'stray'", NULL);
	expect_err(PARSE(1, REQ, "--workers"), "--workers: missing value", NULL);
	expect_err(PARSE(1, "--cgroup", "--include-ip-ranges", "10.0.0.0/8"),
		   "--cgroup: missing value", "--include-ip-ranges");
	expect_err(PARSE(1, REQ, "--no-sockmap=yes"), "--no-sockmap takes no value", NULL);
	expect_err(PARSE(1, REQ, "--cgroup", "/sys/fs/cgroup/unified/other"), "--cgroup",
		   "given twice");
	expect_err(PARSE(1, REQ, "--listen", "127.0.0.1:1", "--listen=127.0.0.1:2"), "--listen",
		   "given twice");
}

static void test_bad_paths(void **state)
{
	/* relative: under the cgroup2 mount */
	assert_int_equal(
	    PARSE(1, "--cgroup", "kubepods.slice", "--include-ip-ranges", "10.0.0.0/8"), OPTS_RUN);
	assert_string_equal(o.cgroup_path, "kubepods.slice");
	expect_err(PARSE(1, "--cgroup", "a/../..", "--include-ip-ranges", "10.0.0.0/8"), "--cgroup",
		   "'..'");
	/* the root only with the explicit override */
	expect_err(PARSE(1, "--cgroup", "/sys/fs/cgroup", "--include-ip-ranges", "10.0.0.0/8"),
		   "--cgroup", "--allow-root-cgroup");
	assert_int_equal(PARSE(1, "--cgroup", "/sys/fs/cgroup", "--allow-root-cgroup",
			       "--include-ip-ranges", "10.0.0.0/8"),
			 OPTS_RUN);
	assert_true(o.allow_root_cgroup);
	expect_err(PARSE(1, "--cgroup", "", "--include-ip-ranges", "10.0.0.0/8"), "--cgroup",
		   "empty");
	expect_err(
	    PARSE(1, "--cgroup", "/sys/fs/cgroup/unified/", "--include-ip-ranges", "10.0.0.0/8"),
	    "'/sys/fs/cgroup/unified/'", "root");
	expect_err(PARSE(1, "--cgroup", "/sys/fs/cgroup", "--include-ip-ranges", "10.0.0.0/8"),
		   "--cgroup", "root");
	expect_err(PARSE(1, "--cgroup", "/sys/fs/cgroup/unified/pods/../..", "--include-ip-ranges",
			 "10.0.0.0/8"),
		   "--cgroup", "'..'");
	expect_err(PARSE(1, REQ, "--pin-dir", "/sys/fs/bpf"), "--pin-dir '/sys/fs/bpf'", NULL);
	expect_err(PARSE(1, REQ, "--pin-dir", "/sys/fs/bpf//"), "--pin-dir", "of its own");
	expect_err(PARSE(1, REQ, "--pin-dir", "rm"), "--pin-dir 'rm'", "absolute");
	expect_err(PARSE(1, REQ, "--pin-dir", "/sys/fs/bpf/x/../.."), "--pin-dir", "'..'");
	/* ".." inside a name is just a name. */
	assert_int_equal(PARSE(1, REQ, "--pin-dir", "/sys/fs/bpf/a..b"), OPTS_RUN);
	assert_string_equal(o.pin_dir, "/sys/fs/bpf/a..b");
}

static void test_bad_ranges_and_ports(void **state)
{
	expect_err(PARSE(1, "--cgroup", "/c/p", "--include-ip-ranges", "10.0.0.1/8"),
		   "--include-ip-ranges", "10.0.0.1/8");
	expect_err(PARSE(1, "--cgroup", "/c/p", "--include-ip-ranges", "10.0.0.0/8,nope"),
		   "--include-ip-ranges", "nope");
	expect_err(PARSE(1, "--cgroup", "/c/p", "--include-ip-ranges", ""), "--include-ip-ranges",
		   NULL);
	expect_err(PARSE(1, REQ, "--exclude-ip-ranges", "300.0.0.0/8"), "--exclude-ip-ranges",
		   "300.0.0.0/8");
	expect_err(PARSE(1, REQ, "--exclude-ports", "22,0"), "--exclude-ports", "0");
	expect_err(PARSE(1, REQ, "--exclude-ports", "65536"), "--exclude-ports", "65536");
	expect_err(PARSE(1, REQ, "--exclude-ports", "ssh"), "--exclude-ports", "ssh");
}

static void test_bad_addresses(void **state)
{
	expect_err(PARSE(1, REQ, "--listen", "127.0.0.1"), "--listen", "127.0.0.1");
	expect_err(PARSE(1, REQ, "--listen", "127.0.0.1:0"), "--listen", "127.0.0.1:0");
	expect_err(PARSE(1, REQ, "--listen", "127.0.0.1:65536"), "--listen", "65536");
	expect_err(PARSE(1, REQ, "--listen", "0.0.0.0:15001"), "--listen '0.0.0.0:15001'",
		   "wildcard");
	expect_err(PARSE(1, REQ, "--pod-gateway", "169.254.7"), "--pod-gateway '169.254.7'",
		   "IPv4");
	expect_err(PARSE(1, REQ, "--pod-gateway", "0.0.0.0"), "--pod-gateway", "unicast");
	expect_err(PARSE(1, REQ, "--pod-gateway", "224.0.0.1"), "--pod-gateway", "unicast");
	expect_err(PARSE(1, REQ, "--pod-gateway", "127.0.0.1"), "--pod-gateway '127.0.0.1'",
		   "differ");
}

static void test_bad_numbers(void **state)
{
	expect_err(PARSE(1, REQ, "--workers", "0"), "--workers '0'", "1..64");
	expect_err(PARSE(1, REQ, "--workers", "65"), "--workers '65'", NULL);
	expect_err(PARSE(1, REQ, "--workers", "-1"), "--workers", NULL);
	expect_err(PARSE(1, REQ, "--workers", "2x"), "--workers '2x'", NULL);
	expect_err(PARSE(1, REQ, "--workers", " 2"), "--workers", NULL);
	expect_err(PARSE(1, REQ, "--workers", "99999999999999999999999"), "--workers", NULL);
	assert_int_equal(PARSE(1, REQ, "--workers", "64"), OPTS_RUN);
	assert_int_equal(o.workers, 64);
	assert_int_equal(PARSE(1, REQ, "--accept-balance=exact"), OPTS_RUN);
	assert_true(o.accept_exact);
	assert_int_equal(PARSE(1, REQ, "--accept-balance", "reuseport"), OPTS_RUN);
	assert_false(o.accept_exact);
	expect_err(PARSE(1, REQ, "--accept-balance", "least"), "--accept-balance 'least'",
		   "exact or reuseport");
	expect_err(PARSE(1, REQ, "--accept-balance"), "--accept-balance: missing value", NULL);
	expect_err(PARSE(1, REQ, "--heartbeat-max-ms", "399"), "--heartbeat-max-ms '399'",
		   "400..60000");
	expect_err(PARSE(1, REQ, "--heartbeat-max-ms", "60001"), "--heartbeat-max-ms", NULL);
	expect_err(PARSE(1, REQ, "--heartbeat-max-ms", ""), "--heartbeat-max-ms", NULL);
	assert_int_equal(PARSE(1, REQ, "--heartbeat-max-ms", "400"), OPTS_RUN);
	assert_int_equal(o.heartbeat_max_ms, 400);
	assert_int_equal(PARSE(1, REQ, "--heartbeat-max-ms", "60000"), OPTS_RUN);
	assert_int_equal(o.heartbeat_max_ms, 60000);
	expect_err(PARSE(1, REQ, "--request-buffers", "15"), "--request-buffers '15'",
		   "16..1000000");
	expect_err(PARSE(1, REQ, "--request-buffers", "1000001"), "--request-buffers", NULL);
	assert_int_equal(PARSE(1, REQ, "--request-buffers", "64"), OPTS_RUN);
	assert_int_equal(o.request_buffers, 64);
	expect_err(PARSE(1, REQ, "--max-mirrors", "0"), "--max-mirrors '0'", "1..65536");
	expect_err(PARSE(1, REQ, "--max-mirrors", "65537"), "--max-mirrors", NULL);
	assert_int_equal(PARSE(1, REQ, "--max-mirrors", "4"), OPTS_RUN);
	assert_int_equal(o.max_mirrors, 4);
	expect_err(PARSE(1, REQ, "--stats-keys", "15"), "--stats-keys '15'", "16..65536");
	expect_err(PARSE(1, REQ, "--stats-keys", "65537"), "--stats-keys", NULL);
	assert_int_equal(PARSE(1, REQ, "--stats-keys", "4096"), OPTS_RUN);
	assert_int_equal(o.stats_keys, 4096);
	expect_err(PARSE(1, REQ, "--breaker-pools", "15"), "--breaker-pools '15'", "16..65536");
	expect_err(PARSE(1, REQ, "--breaker-pools", "65537"), "--breaker-pools", NULL);
	expect_err(PARSE(1, REQ, "--breaker-pools", "-1"), "--breaker-pools", NULL);
	assert_int_equal(PARSE(1, REQ, "--breaker-pools", "512"), OPTS_RUN);
	assert_int_equal(o.breaker_pools, 512);
	assert_int_equal(o.breaker_hosts, 0); /* follows: 16 per pool */
	expect_err(PARSE(1, REQ, "--breaker-hosts", "15"), "--breaker-hosts '15'", "16..1048576");
	expect_err(PARSE(1, REQ, "--breaker-hosts", "1048577"), "--breaker-hosts", NULL);
	assert_int_equal(PARSE(1, REQ, "--breaker-hosts", "100000"), OPTS_RUN);
	assert_int_equal(o.breaker_hosts, 100000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_metrics_listen),
	    cmocka_unit_test(test_workers_default_clamped),
	    cmocka_unit_test(test_all_options),
	    cmocka_unit_test(test_help_version),
	    cmocka_unit_test(test_required),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_gateway_dev),
	    cmocka_unit_test(test_bad_paths),
	    cmocka_unit_test(test_bad_ranges_and_ports),
	    cmocka_unit_test(test_bad_addresses),
	    cmocka_unit_test(test_bad_numbers),
	    cmocka_unit_test(test_tracing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
