/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* ringmesh node data path: steer pods' outbound TCP to ringmeshd (connect4), key
 * the original destination by 4-tuple (sockops), shortcut bytes between the pod
 * and the proxy (sk_msg) and answer SO_ORIGINAL_DST (getsockopt). Entry programs
 * only count and turn the helpers' results into verdicts; every one fails open. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ringmesh/abi.h"
#include "lib/maps.h"
#include "lib/maps_cfg.h"
#include "lib/maps_cb.h"
#include "lib/maps_wl.h"
#include "lib/common.h"
#include "lib/intercept.h"
#include "lib/estab.h"
#include "lib/msg.h"
#include "lib/origdst.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/connect4")
int rm_connect4_prog(struct bpf_sock_addr *ctx)
{
	rm_stat_inc(rm_connect4(ctx));
	return 1;
}

SEC("sockops")
int rm_sockops_prog(struct bpf_sock_ops *skops)
{
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		rm_established(skops);
	return 1;
}

SEC("sk_msg")
int rm_msg_prog(struct sk_msg_md *msg)
{
	rm_stat_inc(rm_msg_route(msg) ? RM_DP_MSG_REDIRECT : RM_DP_MSG_PASS);
	return SK_PASS;
}

SEC("cgroup/getsockopt")
int rm_getsockopt_prog(struct bpf_sockopt *ctx)
{
	if (rm_origdst_answer(ctx))
		rm_stat_inc(RM_DP_GETSOCKOPT);
	return 1;
}
