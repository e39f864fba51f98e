/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one ABI between bpf/, user/ and tools/: every key and value stored in a
 * pinned map is declared here, once. Included by BPF programs (clang -target bpf)
 * and by userspace alike, so it includes nothing but <linux/types.h>.
 *
 * Addresses are always 16 bytes: IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), so
 * the same keys, tries and values serve IPv6 later without a layout change.
 * Ports are kept in network byte order everywhere.
 */
#ifndef RINGMESH_ABI_H
#define RINGMESH_ABI_H

#include <linux/types.h>

#define RM_PIN_DIR_DEFAULT "/sys/fs/bpf/ringmesh"

/* Map sizes (overridable at build time). */
#ifndef RM_MAX_RANGES
#define RM_MAX_RANGES 1024 /* entries per include/exclude trie */
#endif
#ifndef RM_MAX_XPORTS
#define RM_MAX_XPORTS 256 /* excluded destination ports */
#endif
#ifndef RM_MAX_CONNS
#define RM_MAX_CONNS 65536 /* intercepted connections tracked at once */
#endif

/* Address families of the family fields below: Linux's AF_INET and AF_INET6, spelled
 * here so that pure modules and BPF programs need no socket header (user/common/cidr.c
 * asserts they match <sys/socket.h>). */
#define RM_AF_INET 2
#define RM_AF_INET6 10

/* Pinned map names (the kernel allows 15 characters). */
#define RM_MAP_INCLUDE "rm_include"
#define RM_MAP_EXCLUDE "rm_exclude"
#define RM_MAP_XPORTS "rm_xports"
#define RM_MAP_ORIG_CK "rm_orig_ck"
#define RM_MAP_ORIG "rm_orig"
#define RM_MAP_SOCKS "rm_socks"
#define RM_MAP_PROXY "rm_proxy"
#define RM_MAP_DPSTATS "rm_dpstats"

/* Pinned link names under the pin dir. */
#define RM_LINK_CONNECT4 "link_connect4"
#define RM_LINK_SOCKOPS "link_sockops"
#define RM_LINK_GETSOCKOPT "link_getsockopt"

/* 16-byte address; IPv4 as ::ffff:a.b.c.d. */
struct rm_addr {
	union {
		__u8 a8[16];
		__u32 a32[4]; /* network byte order words */
	};
};

/* LPM trie key: prefixlen counts bits of the 128-bit (mapped) address,
 * so an IPv4 /24 is stored as prefixlen 96 + 24. */
struct rm_lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/*
 * One direction of a TCP connection, as seen from the socket that owns it:
 * local address/port first. The pod socket's key is (pod, proxy); the proxy's
 * accepted socket has the mirror key (proxy, pod). Pod addresses are unique on a
 * node (Kubernetes guarantees one IP per pod netns; host-network pods share the
 * node netns, where the 4-tuple itself is unique), so no netns cookie is needed in
 * the key, and the daemon, which cannot know the pod's netns, can build it.
 */
struct rm_tuple {
	struct rm_addr laddr;
	struct rm_addr raddr;
	__be16 lport;
	__be16 rport;
	__u16 family; /* AF_INET or AF_INET6 */
	__u16 pad;
};

/* Where an intercepted connection was going, and who opened it. */
struct rm_orig {
	struct rm_addr addr; /* original destination */
	__be16 port;
	__u16 family;
	__u32 tgid;	    /* client process */
	__u64 cgroup_id;    /* the client task's own cgroup (the daemon's self check) */
	__u64 netns_cookie; /* client netns */
	__u32 msg_mode;	    /* sk_msg decision for pod->proxy bytes, RM_MSG_* */
	__u32 pad;
	/* The deepest ancestor of cgroup_id (or cgroup_id itself) with an rm_workload
	 * record: the calling pod, for source matching and metrics; 0 = unknown caller. */
	__u64 pod_cgroup_id;
};

enum rm_msg_mode {
	RM_MSG_UNDECIDED = 0, /* no byte sent yet */
	RM_MSG_REDIRECT = 1,  /* first byte went by the shortcut: all do */
	RM_MSG_TCP = 2,	      /* first byte went by TCP: all do, or order would break */
};

/* rm_proxy[0]: what the programs need to know about the daemon. Written by
 * ringmeshd (mmapped); heartbeat_ns is CLOCK_MONOTONIC == bpf_ktime_get_ns(). */
struct rm_proxy_cfg {
	__u64 heartbeat_ns;	   /* last beat; 0 = no daemon */
	__u64 heartbeat_max_ns;	   /* older than this: fail open */
	__u64 daemon_cgroup_id;	   /* never intercept the daemon's own connections */
	__u64 daemon_netns_cookie; /* pods in this netns reach the proxy on listen_addr */
	__u32 daemon_tgid;
	__u32 flags;		    /* RM_PF_* */
	struct rm_addr listen_addr; /* for clients in the daemon's netns (127.0.0.1) */
	struct rm_addr pod_gw_addr; /* for clients in other netns (link-local on each veth) */
	__be16 listen_port;
	__u16 pad[3];
	/* The daemon that handed over to this one, while it drains (its upstream
	 * connections are not to be intercepted either); 0 when there is none. */
	__u64 prev_cgroup_id;
	__u32 prev_tgid;
	__u32 pad2;
};

#define RM_PF_SOCKMAP (1u << 0) /* sk_msg shortcut enabled */

/* Data-path decision counters (rm_dpstats, per-CPU array). */
enum rm_dp_stat {
	RM_DP_REDIRECTED = 0, /* connect4 rewrote to the proxy */
	RM_DP_NOT_TCP,	      /* UDP etc.: left alone */
	RM_DP_NOT_INCLUDED,   /* destination outside the include ranges */
	RM_DP_EXCLUDED,	      /* destination in an exclude range */
	RM_DP_PORT_EXCLUDED,  /* destination port excluded */
	RM_DP_SELF,	      /* the caller is ringmeshd */
	RM_DP_STALE,	      /* heartbeat stale or no daemon: fail open */
	RM_DP_ORIG_FULL,      /* could not record the original destination: fail open */
	RM_DP_ESTABLISHED,    /* sockops moved cookie -> 4-tuple */
	RM_DP_SOCK_ADDED,     /* socket inserted into rm_socks */
	RM_DP_MSG_REDIRECT,   /* sk_msg redirected a message */
	RM_DP_MSG_PASS,	      /* sk_msg passed a message to TCP */
	RM_DP_GETSOCKOPT,     /* SO_ORIGINAL_DST answered from rm_orig */
	RM_DP_NOT_IPV4,	      /* connect4 on a non-IPv4 path (reserved) */
	RM_DP_STAT_MAX,
};

#ifndef __bpf__
_Static_assert(sizeof(struct rm_addr) == 16, "rm_addr layout");
_Static_assert(sizeof(struct rm_lpm_key) == 20, "rm_lpm_key layout");
_Static_assert(sizeof(struct rm_tuple) == 40, "rm_tuple layout");
_Static_assert(sizeof(struct rm_orig) == 56, "rm_orig layout");
_Static_assert(sizeof(struct rm_proxy_cfg) == 96, "rm_proxy_cfg layout");
#endif

#endif /* RINGMESH_ABI_H */
