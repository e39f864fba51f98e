/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sk_msg verdict on rm_socks: hand each message straight to the other end's
 * receive side when that end is in rm_socks, without breaking byte order.
 *
 * The receiver reads its psock ingress queue before its TCP receive queue, so one
 * direction of a connection must use one path from its first byte to its last.
 * Pod->proxy: the daemon adds its accepted socket some time after accept, maybe
 * after the pod already sent by TCP; the path is fixed at the first message and
 * kept in the pod tuple's rm_orig entry. Proxy->pod: the daemon adds its socket
 * before it sends anything and the pod socket is in the map from ESTABLISHED, so
 * the first message already finds the peer and every message is redirected. */
#ifndef RM_BPF_MSG_H
#define RM_BPF_MSG_H

#include "lib/common.h"

static __always_inline void rm_msg_tuple(struct rm_tuple *t, const struct sk_msg_md *m)
{
	rm_tuple_v4(t, m->local_ip4, rm_port_from_host(m->local_port), m->remote_ip4,
		    rm_port_from_shifted(m->remote_port));
}

/* 1 when the message was redirected, 0 when it goes by TCP. */
static __always_inline int rm_msg_route(struct sk_msg_md *msg)
{
	struct rm_tuple own, peer;
	struct rm_orig *o;

	if (msg->family != RM_AF_INET)
		return 0;
	rm_msg_tuple(&own, msg);
	rm_tuple_mirror(&peer, &own);

	o = bpf_map_lookup_elem(&rm_orig, &own);
	if (!o) /* the daemon's end */
		return bpf_msg_redirect_hash(msg, &rm_socks, &peer, BPF_F_INGRESS) == SK_PASS;

	/* The pod's end. The socket lock serialises messages on it, so the
	 * first-message decision cannot race with itself. */
	if (o->msg_mode == RM_MSG_TCP)
		return 0;
	if (bpf_msg_redirect_hash(msg, &rm_socks, &peer, BPF_F_INGRESS) == SK_PASS) {
		o->msg_mode = RM_MSG_REDIRECT;
		return 1;
	}
	/* REDIRECT but the peer left rm_socks: it is closing, TCP will reset. */
	if (o->msg_mode == RM_MSG_UNDECIDED)
		o->msg_mode = RM_MSG_TCP;
	return 0;
}

#endif /* RM_BPF_MSG_H */
