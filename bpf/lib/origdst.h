/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cgroup/getsockopt: answer SO_ORIGINAL_DST for the daemon's accepted sockets from
 * rm_orig, so that a proxy written for iptables REDIRECT works unchanged. */
#ifndef RM_BPF_ORIGDST_H
#define RM_BPF_ORIGDST_H

#include "lib/common.h"

/* struct sockaddr_in, which no header we may include declares. */
struct rm_sockaddr_in {
	__u16 sin_family;
	__be16 sin_port;
	__u32 sin_addr;
	__u8 zero[8];
};

/* 1 when the answer was written, 0 when the kernel's own answer stands. */
static __always_inline int rm_origdst_answer(struct bpf_sockopt *ctx)
{
	struct rm_sockaddr_in *sin;
	struct rm_tuple own, pod;
	struct bpf_sock *sk;
	struct rm_orig *o;

	if (ctx->level != RM_SOL_IP || ctx->optname != RM_SO_ORIGINAL_DST)
		return 0;
	sk = ctx->sk;
	if (!sk || sk->family != RM_AF_INET)
		return 0;
	rm_tuple_v4(&own, sk->src_ip4, rm_port_from_host(sk->src_port), sk->dst_ip4,
		    (__be16)sk->dst_port);
	rm_tuple_mirror(&pod, &own);
	o = bpf_map_lookup_elem(&rm_orig, &pod);
	if (!o)
		return 0;

	sin = ctx->optval;
	if ((void *)(sin + 1) > ctx->optval_end)
		return 0; /* caller's buffer too small: leave the kernel's error */
	sin->sin_family = RM_AF_INET;
	sin->sin_port = o->port;
	sin->sin_addr = o->addr.a32[3];
	__builtin_memset(sin->zero, 0, sizeof(sin->zero));
	/* volatile: clang would merge the two adjacent 32-bit stores into one 64-bit
	 * store, which the verifier rejects for these context fields. */
	*(volatile __s32 *)&ctx->optlen = sizeof(*sin);
	*(volatile __s32 *)&ctx->retval = 0;
	return 1;
}

#endif /* RM_BPF_ORIGDST_H */
