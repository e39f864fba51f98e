/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cidr: parsing of addresses, CIDR lists, port lists and host:port pairs, and the
 * LPM/tuple key builders shared by ringmeshd and the CLI. Pure, no I/O. */
#ifndef RM_CIDR_H
#define RM_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "ringmesh/abi.h"

struct rm_cidr {
	uint16_t family;     /* AF_INET or AF_INET6 */
	uint8_t plen;	     /* prefix length within the family (0..32 or 0..128) */
	struct rm_addr addr; /* masked, IPv4 mapped */
};

/* "10.244.0.0/24" or "10.0.0.1" (=/32); host bits must be zero ("10.0.0.1/24" is an
 * error, as in Istio). 0 or -EINVAL with err filled. */
int rm_cidr_parse(const char *s, struct rm_cidr *out, char *err, size_t errlen);

/* Comma-separated list; empty items rejected; at most max. Returns count or -errno. */
int rm_cidr_parse_list(const char *s, struct rm_cidr *out, size_t max, char *err, size_t errlen);

/* Comma-separated port list, each 1..65535, host order. Returns count or -errno. */
int rm_ports_parse_list(const char *s, uint16_t *out, size_t max, char *err, size_t errlen);

/* "127.0.0.1:15001" -> sockaddr_in. 0 or -EINVAL. */
int rm_hostport_parse(const char *s, struct sockaddr_in *out, char *err, size_t errlen);

/* Does addr lie in c? (addresses in mapped form) */
int rm_cidr_contains(const struct rm_cidr *c, const struct rm_addr *addr);

/* LPM key for a CIDR (prefixlen over the 128-bit mapped address). */
void rm_cidr_lpm_key(const struct rm_cidr *c, struct rm_lpm_key *key);

/* IPv4 (network order) -> mapped rm_addr, and back (0 or -EAFNOSUPPORT). */
void rm_addr_from_v4(struct rm_addr *a, uint32_t be_addr);
int rm_addr_to_v4(const struct rm_addr *a, uint32_t *be_addr);

/* sockaddr_in/in6 pair -> rm_tuple seen from the socket that owns local. */
int rm_tuple_from_sockaddrs(struct rm_tuple *t, const struct sockaddr *local,
			    const struct sockaddr *peer);

/* The same connection's key as seen from its other end (swap local and remote). */
void rm_tuple_mirror(struct rm_tuple *out, const struct rm_tuple *in);

/* Format "a.b.c.d" or IPv6 text for a mapped address into buf (>= 46 bytes). */
const char *rm_addr_str(const struct rm_addr *a, char *buf, size_t len);

#endif /* RM_CIDR_H */
