/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cidr: parsing (good and bad input), matching, and the map keys the BPF side
 * must agree with byte for byte. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "common/cidr.h"

static struct rm_addr v4(const char *s)
{
	struct rm_addr a;
	struct in_addr in;

	assert_int_equal(inet_pton(AF_INET, s, &in), 1);
	rm_addr_from_v4(&a, in.s_addr);
	return a;
}

static void test_parse_good(void **state)
{
	struct rm_cidr c;
	char err[128];
	char buf[64];

	assert_int_equal(rm_cidr_parse("10.244.0.0/24", &c, err, sizeof(err)), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.plen, 24);
	assert_string_equal(rm_addr_str(&c.addr, buf, sizeof(buf)), "10.244.0.0");
	/* mapped form: ::ffff:a.b.c.d */
	for (int i = 0; i < 10; i++)
		assert_int_equal(c.addr.a8[i], 0);
	assert_int_equal(c.addr.a8[10], 0xff);
	assert_int_equal(c.addr.a8[11], 0xff);

	assert_int_equal(rm_cidr_parse("10.0.0.1", &c, err, sizeof(err)), 0);
	assert_int_equal(c.plen, 32);
	assert_int_equal(rm_cidr_parse("10.0.0.1/32", &c, err, sizeof(err)), 0);
	assert_int_equal(c.plen, 32);
	assert_int_equal(rm_cidr_parse("0.0.0.0/0", &c, err, sizeof(err)), 0);
	assert_int_equal(c.plen, 0);
	assert_int_equal(rm_cidr_parse("fd00::/8", &c, err, sizeof(err)), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.plen, 8);
	assert_int_equal(rm_cidr_parse("::/0", &c, err, sizeof(err)), 0);
	assert_int_equal(rm_cidr_parse("2001:db8::1", &c, err, sizeof(err)), 0);
	assert_int_equal(c.plen, 128);
}

static void expect_bad(const char *s, const char *want_in_err)
{
	struct rm_cidr c;
	char err[160] = "";

	assert_int_equal(rm_cidr_parse(s, &c, err, sizeof(err)), -EINVAL);
	if (!strstr(err, want_in_err))
		fail_msg("'%s': error '%s' lacks '%s'", s, err, want_in_err);
}

static void test_parse_bad(void **state)
{
	expect_bad("", "empty");
	expect_bad("10.0.0.1/24", "host bits set (did you mean 10.0.0.0/24?)");
	expect_bad("10.0.0.0/33", "prefix length");
	expect_bad("10.0.0.0/", "prefix length");
	expect_bad("10.0.0.0/-1", "prefix length");
	expect_bad("10.0.0.0/08", "prefix length");
	expect_bad("10.0.0.0/8/9", "prefix length");
	expect_bad("10.0.0.0/ 8", "prefix length");
	expect_bad("10.0.0.0/99999999999", "prefix length");
	expect_bad("fd00::/129", "prefix length");
	expect_bad("fd00::1/64", "host bits");
	expect_bad("256.0.0.0/8", "not an IPv4 or IPv6");
	expect_bad("10.0.0/24", "not an IPv4 or IPv6");
	expect_bad("10.0.0.0.0", "not an IPv4 or IPv6");
	expect_bad("banana", "not an IPv4 or IPv6");
	expect_bad(" 10.0.0.0/8", "not an IPv4 or IPv6");
	expect_bad("10.0.0.0/8 ", "prefix length");
	expect_bad("1234567890123456789012345678901234567890123456789012345678901234567890",
		   "too long");
}

static void test_contains(void **state)
{
	struct rm_cidr c;
	struct rm_addr a;
	char err[128];

	assert_int_equal(rm_cidr_parse("10.96.0.0/12", &c, err, sizeof(err)), 0);
	a = v4("10.96.0.20");
	assert_true(rm_cidr_contains(&c, &a));
	a = v4("10.111.255.255");
	assert_true(rm_cidr_contains(&c, &a));
	a = v4("10.112.0.0");
	assert_false(rm_cidr_contains(&c, &a));
	a = v4("10.95.255.255");
	assert_false(rm_cidr_contains(&c, &a));

	assert_int_equal(rm_cidr_parse("0.0.0.0/0", &c, err, sizeof(err)), 0);
	a = v4("203.0.113.9");
	assert_true(rm_cidr_contains(&c, &a));
	/* an IPv4 /0 covers IPv4 only, not native IPv6 */
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", a.a8), 1);
	assert_false(rm_cidr_contains(&c, &a));

	assert_int_equal(rm_cidr_parse("10.0.0.7/32", &c, err, sizeof(err)), 0);
	a = v4("10.0.0.7");
	assert_true(rm_cidr_contains(&c, &a));
	a = v4("10.0.0.6");
	assert_false(rm_cidr_contains(&c, &a));

	assert_int_equal(rm_cidr_parse("10.0.0.0/31", &c, err, sizeof(err)), 0);
	a = v4("10.0.0.1");
	assert_true(rm_cidr_contains(&c, &a));
	a = v4("10.0.0.2");
	assert_false(rm_cidr_contains(&c, &a));
}

static void test_lpm_key(void **state)
{
	struct rm_lpm_key k;
	struct rm_cidr c;
	struct rm_addr a = v4("10.244.1.0");
	char err[128];

	assert_int_equal(rm_cidr_parse("10.244.1.0/24", &c, err, sizeof(err)), 0);
	rm_cidr_lpm_key(&c, &k);
	assert_int_equal(k.prefixlen, 96 + 24);
	assert_memory_equal(k.addr, a.a8, 16);
	assert_int_equal(rm_cidr_parse("0.0.0.0/0", &c, err, sizeof(err)), 0);
	rm_cidr_lpm_key(&c, &k);
	assert_int_equal(k.prefixlen, 96);
	assert_int_equal(rm_cidr_parse("fd00::/8", &c, err, sizeof(err)), 0);
	rm_cidr_lpm_key(&c, &k);
	assert_int_equal(k.prefixlen, 8);
	assert_int_equal(k.addr[0], 0xfd);
}

static void test_list(void **state)
{
	struct rm_cidr c[4];
	char err[160];

	assert_int_equal(
	    rm_cidr_parse_list("10.0.0.0/8, 172.16.0.0/12,192.168.0.0/16", c, 4, err, sizeof(err)),
	    3);
	assert_int_equal(c[1].plen, 12);
	assert_int_equal(rm_cidr_parse_list("", c, 4, err, sizeof(err)), 0);
	assert_int_equal(rm_cidr_parse_list("*", c, 4, err, sizeof(err)), 1);
	assert_int_equal(c[0].plen, 0);
	assert_int_equal(c[0].family, AF_INET);

	assert_int_equal(rm_cidr_parse_list("10.0.0.0/8,,10.1.0.0/16", c, 4, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "col 12: empty item"));
	assert_int_equal(rm_cidr_parse_list("10.0.0.0/8,", c, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_cidr_parse_list("10.0.0.0/8,10.1.0.1/16", c, 4, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "col 12: '10.1.0.1/16': host bits set"));
	assert_int_equal(
	    rm_cidr_parse_list("1.0.0.0/8,2.0.0.0/8,3.0.0.0/8", c, 2, err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "more than 2"));
}

static void test_ports(void **state)
{
	uint16_t p[4];
	char err[128];

	assert_int_equal(rm_ports_parse_list("80, 443,15001", p, 4, err, sizeof(err)), 3);
	assert_int_equal(p[0], 80);
	assert_int_equal(p[1], 443);
	assert_int_equal(p[2], 15001);
	assert_int_equal(rm_ports_parse_list("", p, 4, err, sizeof(err)), 0);
	assert_int_equal(rm_ports_parse_list("65535,1", p, 4, err, sizeof(err)), 2);
	assert_int_equal(rm_ports_parse_list("80,80", p, 4, err, sizeof(err)), 1);

	assert_int_equal(rm_ports_parse_list("0", p, 4, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'0' is not a port"));
	assert_int_equal(rm_ports_parse_list("65536", p, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_ports_parse_list("80,http", p, 4, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "col 4"));
	assert_int_equal(rm_ports_parse_list("8000-8010", p, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_ports_parse_list("-1", p, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_ports_parse_list("80,,81", p, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_ports_parse_list("1,2,3", p, 2, err, sizeof(err)), -E2BIG);
}

static void test_hostport(void **state)
{
	struct sockaddr_in a;
	char err[128];

	assert_int_equal(rm_hostport_parse("127.0.0.1:15001", &a, err, sizeof(err)), 0);
	assert_int_equal(a.sin_family, AF_INET);
	assert_int_equal(ntohs(a.sin_port), 15001);
	assert_int_equal(a.sin_addr.s_addr, htonl(0x7f000001));

	assert_int_equal(rm_hostport_parse("127.0.0.1", &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "missing ':port'"));
	assert_int_equal(rm_hostport_parse("127.0.0.1:0", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_hostport_parse("127.0.0.1:70000", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_hostport_parse("127.0.0.1:", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_hostport_parse(":15001", &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(rm_hostport_parse("localhost:80", &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not an IPv4 address"));
	assert_int_equal(rm_hostport_parse("", &a, err, sizeof(err)), -EINVAL);
}

static void test_v4_roundtrip(void **state)
{
	struct rm_addr a;
	uint32_t be;

	rm_addr_from_v4(&a, htonl(0x0a600014));
	assert_int_equal(rm_addr_to_v4(&a, &be), 0);
	assert_int_equal(be, htonl(0x0a600014));
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", a.a8), 1);
	assert_int_equal(rm_addr_to_v4(&a, &be), -EAFNOSUPPORT);
}

static void test_tuple(void **state)
{
	struct sockaddr_in pod = {.sin_family = AF_INET, .sin_port = htons(40000)};
	struct sockaddr_in proxy = {.sin_family = AF_INET, .sin_port = htons(15001)};
	struct rm_tuple t, m, back;
	struct rm_addr pa, xa;

	inet_pton(AF_INET, "10.244.1.5", &pod.sin_addr);
	inet_pton(AF_INET, "169.254.7.1", &proxy.sin_addr);
	pa = v4("10.244.1.5");
	xa = v4("169.254.7.1");

	/* the pod's own key: local = pod */
	assert_int_equal(
	    rm_tuple_from_sockaddrs(&t, (struct sockaddr *)&pod, (struct sockaddr *)&proxy), 0);
	assert_memory_equal(&t.laddr, &pa, 16);
	assert_memory_equal(&t.raddr, &xa, 16);
	assert_int_equal(t.lport, htons(40000));
	assert_int_equal(t.rport, htons(15001));
	assert_int_equal(t.family, AF_INET);
	assert_int_equal(t.pad, 0);

	/* the daemon's key mirrored is the pod's key, byte for byte */
	assert_int_equal(
	    rm_tuple_from_sockaddrs(&m, (struct sockaddr *)&proxy, (struct sockaddr *)&pod), 0);
	rm_tuple_mirror(&back, &m);
	assert_memory_equal(&back, &t, sizeof(t));
	rm_tuple_mirror(&back, &back);
	assert_memory_equal(&back, &m, sizeof(m));

	/* v4-mapped IPv6 sockets key like IPv4 ones */
	{
		struct sockaddr_in6 p6 = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
		struct sockaddr_in6 x6 = {.sin6_family = AF_INET6, .sin6_port = htons(15001)};
		struct rm_tuple t6;

		inet_pton(AF_INET6, "::ffff:10.244.1.5", &p6.sin6_addr);
		inet_pton(AF_INET6, "::ffff:169.254.7.1", &x6.sin6_addr);
		assert_int_equal(
		    rm_tuple_from_sockaddrs(&t6, (struct sockaddr *)&p6, (struct sockaddr *)&x6),
		    0);
		assert_memory_equal(&t6, &t, sizeof(t));
	}
	/* mixed or unknown families are refused */
	{
		struct sockaddr_in6 x6 = {.sin6_family = AF_INET6};
		struct sockaddr un = {.sa_family = AF_UNIX};

		assert_int_equal(
		    rm_tuple_from_sockaddrs(&t, (struct sockaddr *)&pod, (struct sockaddr *)&x6),
		    -EINVAL);
		assert_int_equal(rm_tuple_from_sockaddrs(&t, &un, &un), -EAFNOSUPPORT);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good), cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_contains),   cmocka_unit_test(test_lpm_key),
	    cmocka_unit_test(test_list),       cmocka_unit_test(test_ports),
	    cmocka_unit_test(test_hostport),   cmocka_unit_test(test_v4_roundtrip),
	    cmocka_unit_test(test_tuple),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
