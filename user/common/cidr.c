/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cidr: text -> ranges, ports, listener addresses, and the map keys built from
 * them. Every address is kept IPv4-mapped so the keys match what the BPF side
 * builds (see include/ringmesh/abi.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/cidr.h"
#include "common/util.h"

_Static_assert(RM_AF_INET == AF_INET && RM_AF_INET6 == AF_INET6, "ringmesh/abi.h families");

#define CIDR_MAX_TEXT 64 /* longest IPv6 text + "/128", with room to spare */

void rm_addr_from_v4(struct rm_addr *a, uint32_t be_addr)
{
	memset(a, 0, sizeof(*a));
	a->a8[10] = 0xff;
	a->a8[11] = 0xff;
	memcpy(&a->a8[12], &be_addr, 4);
}

static bool addr_is_v4(const struct rm_addr *a)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return memcmp(a->a8, pfx, sizeof(pfx)) == 0;
}

int rm_addr_to_v4(const struct rm_addr *a, uint32_t *be_addr)
{
	if (!addr_is_v4(a))
		return -EAFNOSUPPORT;
	memcpy(be_addr, &a->a8[12], 4);
	return 0;
}

/* Bits of the 128-bit mapped address covered by the prefix. */
static unsigned int cidr_bits(const struct rm_cidr *c)
{
	return c->family == AF_INET ? 96u + c->plen : c->plen;
}

/* Do the first bits of a and b agree? */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned int bits)
{
	unsigned int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full))
		return false;
	if (!rest)
		return true;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* Strict decimal 0..max: digits only, no sign, no spaces, no leading zeros. */
static int parse_uint(const char *s, size_t n, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!n || n > 5 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int rm_cidr_parse(const char *s, struct rm_cidr *out, char *err, size_t errlen)
{
	char buf[CIDR_MAX_TEXT], shown[INET6_ADDRSTRLEN];
	struct rm_cidr c = {0};
	unsigned long plen;
	const char *slash;
	size_t len, alen;
	uint8_t raw[16];

	if (!s || !*s)
		return errf(err, errlen, -EINVAL, "empty address range");
	len = strlen(s);
	if (len >= sizeof(buf))
		return errf(err, errlen, -EINVAL, "'%.20s...': too long for an address range", s);
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : len;
	memcpy(buf, s, alen);
	buf[alen] = '\0';

	if (inet_pton(AF_INET, buf, raw) == 1) {
		uint32_t v4;

		memcpy(&v4, raw, sizeof(v4));
		c.family = AF_INET;
		rm_addr_from_v4(&c.addr, v4);
	} else if (inet_pton(AF_INET6, buf, raw) == 1) {
		c.family = AF_INET6;
		memcpy(c.addr.a8, raw, 16);
	} else {
		return errf(err, errlen, -EINVAL, "'%s': '%s' is not an IPv4 or IPv6 address", s,
			    buf);
	}

	if (slash) {
		unsigned long max = c.family == AF_INET ? 32 : 128;

		if (parse_uint(slash + 1, strlen(slash + 1), max, &plen))
			return errf(err, errlen, -EINVAL,
				    "'%s': prefix length must be a number 0..%lu", s, max);
	} else {
		plen = c.family == AF_INET ? 32 : 128;
	}
	c.plen = (uint8_t)plen;

	/* Host bits set usually means a typo in the range; refuse rather than guess. */
	{
		struct rm_addr masked = {0};
		unsigned int bits = cidr_bits(&c);

		memcpy(masked.a8, c.addr.a8, bits / 8);
		if (bits % 8)
			masked.a8[bits / 8] =
			    c.addr.a8[bits / 8] & (uint8_t)(0xff << (8 - bits % 8));
		if (memcmp(&masked, &c.addr, sizeof(masked))) {
			rm_addr_str(&masked, shown, sizeof(shown));
			return errf(err, errlen, -EINVAL,
				    "'%s': host bits set (did you mean %s/%u?)", s, shown, c.plen);
		}
	}
	*out = c;
	return 0;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Calls item(ctx, text, len, col) for each comma-separated item with surrounding
 * blanks trimmed; empty items are errors. "" is an empty list. */
static int split_list(const char *s, const char *what, char *err, size_t errlen,
		      int (*item)(void *ctx, const char *p, size_t n, size_t col), void *ctx)
{
	const char *p = s;
	int n = 0;

	if (!s)
		return errf(err, errlen, -EINVAL, "no %s list", what);
	while (*p && is_blank(*p))
		p++;
	if (!*p)
		return 0;
	p = s;
	for (;;) {
		const char *end = strchr(p, ',');
		const char *a = p, *b = end ? end : p + strlen(p);
		int rc;

		while (a < b && is_blank(*a))
			a++;
		while (b > a && is_blank(b[-1]))
			b--;
		if (a == b)
			return errf(err, errlen, -EINVAL, "col %zu: empty item in %s list",
				    (size_t)(a - s) + 1, what);
		rc = item(ctx, a, (size_t)(b - a), (size_t)(a - s) + 1);
		if (rc < 0)
			return rc;
		n++;
		if (!end)
			return n;
		p = end + 1;
	}
}

struct cidr_list_ctx {
	struct rm_cidr *out;
	size_t max, n;
	char *err;
	size_t errlen;
};

static int cidr_item(void *vctx, const char *p, size_t n, size_t col)
{
	struct cidr_list_ctx *c = vctx;
	char buf[CIDR_MAX_TEXT], why[160];

	if (c->n >= c->max) {
		errf(c->err, c->errlen, -EINVAL, "col %zu: more than %zu ranges", col, c->max);
		return -E2BIG;
	}
	if (n >= sizeof(buf))
		return errf(c->err, c->errlen, -EINVAL,
			    "col %zu: '%.20s...': too long for an address range", col, p);
	memcpy(buf, p, n);
	buf[n] = '\0';
	/* Istio's includeIPRanges="*": every IPv4 destination. */
	if (!strcmp(buf, "*"))
		strcpy(buf, "0.0.0.0/0");
	if (rm_cidr_parse(buf, &c->out[c->n], why, sizeof(why)))
		return errf(c->err, c->errlen, -EINVAL, "col %zu: %s", col, why);
	c->n++;
	return 0;
}

int rm_cidr_parse_list(const char *s, struct rm_cidr *out, size_t max, char *err, size_t errlen)
{
	struct cidr_list_ctx c = {.out = out, .max = max, .err = err, .errlen = errlen};

	return split_list(s, "address range", err, errlen, cidr_item, &c);
}

struct port_list_ctx {
	uint16_t *out;
	size_t max, n;
	char *err;
	size_t errlen;
};

static int parse_port(const char *p, size_t n, uint16_t *out)
{
	unsigned long v;

	if (parse_uint(p, n, 65535, &v) || v == 0)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

static int port_item(void *vctx, const char *p, size_t n, size_t col)
{
	struct port_list_ctx *c = vctx;
	uint16_t port;

	if (parse_port(p, n, &port))
		return errf(c->err, c->errlen, -EINVAL, "col %zu: '%.*s' is not a port (1..65535)",
			    col, (int)(n > 20 ? 20 : n), p);
	for (size_t i = 0; i < c->n; i++)
		if (c->out[i] == port)
			return 0; /* listed twice: harmless, keep one */
	if (c->n >= c->max) {
		errf(c->err, c->errlen, -EINVAL, "col %zu: more than %zu ports", col, c->max);
		return -E2BIG;
	}
	c->out[c->n++] = port;
	return 0;
}

int rm_ports_parse_list(const char *s, uint16_t *out, size_t max, char *err, size_t errlen)
{
	struct port_list_ctx c = {.out = out, .max = max, .err = err, .errlen = errlen};
	int rc = split_list(s, "port", err, errlen, port_item, &c);

	return rc < 0 ? rc : (int)c.n;
}

int rm_hostport_parse(const char *s, struct sockaddr_in *out, char *err, size_t errlen)
{
	char host[INET_ADDRSTRLEN];
	const char *colon;
	struct in_addr a;
	uint16_t port;

	if (!s || !*s)
		return errf(err, errlen, -EINVAL,
			    "empty address (want IPv4:port, e.g. 127.0.0.1:15001)");
	colon = strrchr(s, ':');
	if (!colon)
		return errf(err, errlen, -EINVAL, "'%s': missing ':port' (want IPv4:port)", s);
	if ((size_t)(colon - s) >= sizeof(host) || colon == s)
		return errf(err, errlen, -EINVAL, "'%.40s': bad host part (want IPv4:port)", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (inet_pton(AF_INET, host, &a) != 1)
		return errf(err, errlen, -EINVAL, "'%.40s': '%s' is not an IPv4 address", s, host);
	if (parse_port(colon + 1, strlen(colon + 1), &port))
		return errf(err, errlen, -EINVAL, "'%.40s': port must be a number 1..65535", s);
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_addr = a;
	out->sin_port = htons(port);
	return 0;
}

int rm_cidr_contains(const struct rm_cidr *c, const struct rm_addr *addr)
{
	return prefix_eq(c->addr.a8, addr->a8, cidr_bits(c));
}

void rm_cidr_lpm_key(const struct rm_cidr *c, struct rm_lpm_key *key)
{
	key->prefixlen = cidr_bits(c);
	memcpy(key->addr, c->addr.a8, sizeof(key->addr));
}

static int addr_from_sockaddr(const struct sockaddr *sa, struct rm_addr *a, __be16 *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		rm_addr_from_v4(a, in->sin_addr.s_addr);
		*port = in->sin_port;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		memcpy(a->a8, &in6->sin6_addr, 16);
		*port = in6->sin6_port;
		return 0;
	}
	return -EAFNOSUPPORT;
}

int rm_tuple_from_sockaddrs(struct rm_tuple *t, const struct sockaddr *local,
			    const struct sockaddr *peer)
{
	struct rm_tuple k;

	if (!local || !peer || local->sa_family != peer->sa_family)
		return -EINVAL;
	memset(&k, 0, sizeof(k));
	if (addr_from_sockaddr(local, &k.laddr, &k.lport) ||
	    addr_from_sockaddr(peer, &k.raddr, &k.rport))
		return -EAFNOSUPPORT;
	k.family = local->sa_family;
	/* An AF_INET6 socket talking to a mapped IPv4 peer is an IPv4 connection to
	 * the BPF side, which keys it as AF_INET. */
	if (k.family == AF_INET6 && addr_is_v4(&k.laddr) && addr_is_v4(&k.raddr))
		k.family = AF_INET;
	*t = k;
	return 0;
}

void rm_tuple_mirror(struct rm_tuple *out, const struct rm_tuple *in)
{
	struct rm_tuple m;

	memset(&m, 0, sizeof(m));
	m.laddr = in->raddr;
	m.raddr = in->laddr;
	m.lport = in->rport;
	m.rport = in->lport;
	m.family = in->family;
	*out = m;
}

const char *rm_addr_str(const struct rm_addr *a, char *buf, size_t len)
{
	uint32_t v4;

	if (!rm_addr_to_v4(a, &v4)) {
		if (!inet_ntop(AF_INET, &v4, buf, (socklen_t)len))
			snprintf(buf, len, "?");
	} else if (!inet_ntop(AF_INET6, a->a8, buf, (socklen_t)len)) {
		snprintf(buf, len, "?");
	}
	return buf;
}
