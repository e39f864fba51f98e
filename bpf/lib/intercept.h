/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cgroup/connect4 decision: should this connect() go to ringmeshd, and if so,
 * remember where it was going and rewrite it to the proxy listener. */
#ifndef RM_BPF_INTERCEPT_H
#define RM_BPF_INTERCEPT_H

#include "lib/common.h"
#include "lib/maps_wl.h"

/* Deepest cgroup level looked at for a pod. Kubelet's pod cgroups sit at level 3
 * (kubepods.slice/kubepods-<qos>.slice/...pod<uid>.slice) or 2 on a node's own
 * hierarchy; a node nested in a container (kind) adds a few. Bounded for the verifier. */
#define RM_WL_MAX_LEVEL 24

/* The calling pod: the deepest ancestor of the current task's cgroup (itself
 * included) that has an rm_workload record, 0 when none has. Levels count from the
 * root (0); the helper returns 0 past the task's own level. */
static __always_inline __u64 rm_pod_cgroup(void)
{
	__u64 pod = 0;

	for (int lvl = 1; lvl <= RM_WL_MAX_LEVEL; lvl++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(lvl);

		if (!id)
			break;
		if (bpf_map_lookup_elem(&rm_workload, &id))
			pod = id;
	}
	return pod;
}

static __always_inline int rm_range_hit(void *trie, const struct rm_addr *a)
{
	struct rm_lpm_key k = {.prefixlen = 128};

	__builtin_memcpy(k.addr, a->a8, sizeof(k.addr));
	return bpf_map_lookup_elem(trie, &k) != NULL;
}

/* Heartbeat fresh? hb is written by the daemon from CLOCK_MONOTONIC, the same clock
 * as bpf_ktime_get_ns(); a beat stamped after our read of now counts as fresh. */
static __always_inline int rm_daemon_alive(const struct rm_proxy_cfg *cfg, __u64 now)
{
	__u64 hb = cfg->heartbeat_ns;

	if (!hb)
		return 0;
	if (hb >= now)
		return 1;
	return now - hb < cfg->heartbeat_max_ns;
}

/* Returns the rm_dp_stat reason; RM_DP_REDIRECTED means ctx was rewritten. The
 * checks that say "not ours" run before the liveness check, so RM_DP_STALE counts
 * only connections that a live daemon would have taken. */
static __always_inline __u32 rm_connect4(struct bpf_sock_addr *ctx)
{
	struct rm_proxy_cfg *cfg;
	struct rm_orig o = {};
	__u64 cookie;
	__u16 hport;

	if (ctx->type != RM_SOCK_STREAM)
		return RM_DP_NOT_TCP;
	if (ctx->user_family != RM_AF_INET)
		return RM_DP_NOT_IPV4;

	rm_addr_v4(&o.addr, ctx->user_ip4);
	o.port = (__be16)ctx->user_port;
	if (!rm_range_hit(&rm_include, &o.addr))
		return RM_DP_NOT_INCLUDED;
	if (rm_range_hit(&rm_exclude, &o.addr))
		return RM_DP_EXCLUDED;
	hport = bpf_ntohs(o.port);
	if (bpf_map_lookup_elem(&rm_xports, &hport))
		return RM_DP_PORT_EXCLUDED;

	cfg = rm_proxy_get();
	if (!cfg)
		return RM_DP_STALE;
	o.cgroup_id = bpf_get_current_cgroup_id();
	o.tgid = bpf_get_current_pid_tgid() >> 32;
	if (o.cgroup_id == cfg->daemon_cgroup_id || o.tgid == cfg->daemon_tgid)
		return RM_DP_SELF;
	/* a predecessor still draining its requests during a hand-over */
	if (cfg->prev_tgid && (o.cgroup_id == cfg->prev_cgroup_id || o.tgid == cfg->prev_tgid))
		return RM_DP_SELF;
	if (!rm_daemon_alive(cfg, bpf_ktime_get_ns()))
		return RM_DP_STALE;

	o.family = RM_AF_INET;
	o.pod_cgroup_id = rm_pod_cgroup();
	o.netns_cookie = bpf_get_netns_cookie(ctx);
	o.msg_mode = RM_MSG_UNDECIDED;
	cookie = bpf_get_socket_cookie(ctx);
	/* No record, no rewrite: the daemon refuses connections it cannot route. */
	if (bpf_map_update_elem(&rm_orig_ck, &cookie, &o, BPF_ANY))
		return RM_DP_ORIG_FULL;

	/* Clients in the daemon's netns reach it on loopback; pods route the
	 * link-local gateway address through their eth0 to the node side of the veth. */
	if (o.netns_cookie == cfg->daemon_netns_cookie)
		ctx->user_ip4 = cfg->listen_addr.a32[3];
	else
		ctx->user_ip4 = cfg->pod_gw_addr.a32[3];
	ctx->user_port = (__u32)cfg->listen_port;
	return RM_DP_REDIRECTED;
}

#endif /* RM_BPF_INTERCEPT_H */
