/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockops at ACTIVE_ESTABLISHED: now that the pod socket has a 4-tuple, re-key its
 * original destination by that tuple (which the daemon can rebuild after accept)
 * and, with the shortcut on, put the socket into rm_socks. */
#ifndef RM_BPF_ESTAB_H
#define RM_BPF_ESTAB_H

#include "lib/common.h"

static __always_inline void rm_sockops_tuple(struct rm_tuple *t, const struct bpf_sock_ops *s)
{
	rm_tuple_v4(t, s->local_ip4, rm_port_from_host(s->local_port), s->remote_ip4,
		    rm_port_from_shifted(s->remote_port));
}

/* Returns 0, -ENOENT when the socket was not intercepted, or another -errno. */
static __always_inline int rm_established(struct bpf_sock_ops *skops)
{
	struct rm_proxy_cfg *cfg;
	struct rm_orig *po, o;
	struct rm_tuple key;
	__u64 cookie;

	if (skops->family != RM_AF_INET)
		return -2; /* -ENOENT */
	cookie = bpf_get_socket_cookie(skops);
	po = bpf_map_lookup_elem(&rm_orig_ck, &cookie);
	if (!po)
		return -2;
	o = *po;
	rm_sockops_tuple(&key, skops);
	if (bpf_map_update_elem(&rm_orig, &key, &o, BPF_ANY)) {
		bpf_map_delete_elem(&rm_orig_ck, &cookie);
		rm_stat_inc(RM_DP_ORIG_FULL);
		return -12; /* -ENOMEM */
	}
	bpf_map_delete_elem(&rm_orig_ck, &cookie);
	rm_stat_inc(RM_DP_ESTABLISHED);

	cfg = rm_proxy_get();
	if (cfg && (cfg->flags & RM_PF_SOCKMAP) &&
	    !bpf_sock_hash_update(skops, &rm_socks, &key, BPF_ANY))
		rm_stat_inc(RM_DP_SOCK_ADDED);
	return 0;
}

#endif /* RM_BPF_ESTAB_H */
