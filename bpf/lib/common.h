/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers shared by every data-path program: constants the UAPI headers we may
 * include do not carry, counters, mapped addresses and tuple keys. */
#ifndef RM_BPF_COMMON_H
#define RM_BPF_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ringmesh/abi.h"
#include "lib/maps.h"

/* From socket.h/in.h, which do not build for -target bpf. */
#define RM_AF_INET 2
#define RM_SOCK_STREAM 1
#define RM_SOL_IP 0
#define RM_SO_ORIGINAL_DST 80

static __always_inline void rm_stat_inc(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&rm_dpstats, &reason);

	/* Per-CPU slot, and these hooks run with migration disabled. */
	if (v)
		*v += 1;
}

static __always_inline struct rm_proxy_cfg *rm_proxy_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&rm_proxy, &zero);
}

/* ::ffff:a.b.c.d from a network-order IPv4 word. */
static __always_inline void rm_addr_v4(struct rm_addr *a, __u32 be_ip4)
{
	a->a32[0] = 0;
	a->a32[1] = 0;
	a->a32[2] = bpf_htonl(0x0000ffff);
	a->a32[3] = be_ip4;
}

/* Ports reach the programs in three conventions: sock_ops/sk_msg local_port is host
 * order, their remote_port is the network-order half-word shifted into the top of a
 * u32 (so ntohl() yields the host-order port), bpf_sock dst_port is plain __be16. */
static __always_inline __be16 rm_port_from_host(__u32 host_port)
{
	return bpf_htons((__u16)host_port);
}

static __always_inline __be16 rm_port_from_shifted(__u32 remote_port)
{
	return bpf_htons((__u16)bpf_ntohl(remote_port));
}

static __always_inline void rm_tuple_v4(struct rm_tuple *t, __u32 lip, __be16 lport, __u32 rip,
					__be16 rport)
{
	rm_addr_v4(&t->laddr, lip);
	rm_addr_v4(&t->raddr, rip);
	t->lport = lport;
	t->rport = rport;
	t->family = RM_AF_INET;
	t->pad = 0;
}

/* The key of the other end of the same connection. */
static __always_inline void rm_tuple_mirror(struct rm_tuple *out, const struct rm_tuple *in)
{
	out->laddr = in->raddr;
	out->raddr = in->laddr;
	out->lport = in->rport;
	out->rport = in->lport;
	out->family = in->family;
	out->pad = 0;
}

#endif /* RM_BPF_COMMON_H */
