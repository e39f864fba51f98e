/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Admission (accept.h): original destination, refusals, the sk_msg shortcut, and
 * the L4 / TCP service / L7 choice. A declared TCP service is balanced here with
 * the same balancer and configuration L7 uses, so an L4 connection to it is opened
 * towards an endpoint instead of the VIP, and its metrics slot travels with it.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "policy/cb.h"
#include "policy/lb.h"
#include "policy/route.h"
#include "ringmeshd/accept.h"
#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/l4.h"
#include "ringmeshd/l7.h"
#include "ringmeshd/pick.h"
#include "ringmeshd/ring.h"
#include "ringmeshd/stats_w.h"
#include "common/util.h"

/* From <linux/netfilter_ipv4.h>, which clashes with <netinet/in.h>. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

/* iptables REDIRECT (or a cgroup/getsockopt program) answers SO_ORIGINAL_DST. */
static int orig_from_sockopt(int fd, struct rm_orig *o)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sin, &len))
		return -errno;
	if (len < sizeof(sin) || sin.sin_family != AF_INET)
		return -ENOENT;
	memset(o, 0, sizeof(*o));
	o->addr.a8[10] = 0xff;
	o->addr.a8[11] = 0xff;
	memcpy(&o->addr.a8[12], &sin.sin_addr, 4);
	o->port = sin.sin_port;
	o->family = AF_INET;
	return 0;
}

/* Would dst be ourselves? Conntrack answers SO_ORIGINAL_DST even for a connection
 * that was not NATed, with the listener's own address: forwarding there loops. */
static bool is_self(const struct sockaddr_storage *dst, const struct sockaddr_storage *local)
{
	if (dst->ss_family != local->ss_family)
		return false;
	if (dst->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)dst, *b = (const void *)local;

		return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
	}
	if (dst->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)dst, *b = (const void *)local;

		return a->sin6_port == b->sin6_port &&
		       !memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr));
	}
	return false;
}

/* Close a connection nobody took: with a reset, its original-destination entry
 * forgotten. Not counted as a connection (see refuse). */
static void drop(struct ring_worker *w, const struct conn_admit *a)
{
	const struct ring_hooks *h = &w->cfg.hooks;

	conn_linger0(a->fd);
	if (a->orig_known && h->on_close)
		h->on_close(h->ctx, (const struct sockaddr *)&a->local,
			    (const struct sockaddr *)&a->peer);
	close(a->fd);
}

/* Refuse an accepted connection: counted closed by a reset, as a connection that
 * was opened and aborted at once. */
static void refuse(struct ring_worker *w, const struct conn_admit *a)
{
	drop(w, a);
	RING_STAT_ADD(w, resets, 1);
	RING_STAT_ADD(w, closed, 1);
}

/* The metrics key of a connection of TCP service svc from orig's pod: to endpoint ep,
 * or to none picked (ep >= n_eps: version and workload "unknown") */
static void tcp_key(struct ring_worker *w, struct cfgw_cfg *cfg, int svc, uint32_t ep,
		    const struct rm_orig *orig, struct rm_stats_key *k)
{
	const struct wl_ident *id = wl_get(&w->wl, orig->pod_cgroup_id, mono_ns());
	bool has_ep = ep < cfg->n_eps;

	stats_key_make(k, route_service_host(cfg->t, (uint32_t)svc),
		       has_ep ? cfg->ep_version[ep] : NULL, has_ep ? cfg->ep_workload[ep] : NULL,
		       RM_STATS_TCP);
	stats_key_source(k, id ? &id->rec : NULL);
}

/*
 * A connection to TCP service svc refused before any endpoint was picked, as Envoy's
 * tcp_proxy does on UO (maxConnections) and UH (no healthy host): counted opened and
 * closed at once on a key with that flag, destination version "unknown".
 */
static void tcp_refused(struct ring_worker *w, struct cfgw_cfg *cfg, int svc,
			const struct rm_orig *orig, enum rm_stats_flag f)
{
	struct stats_w *sw = w->cfg.l7->stats;
	struct rm_stats_key k;

	if (!sw)
		return;
	tcp_key(w, cfg, svc, UINT32_MAX, orig, &k);
	k.tcp_flags = 1u << f;
	stats_tcp(stats_slot(sw, &k), 1, 1, 0, 0);
}

/*
 * A declared TCP service (TCP, and TLS or HTTP/2, which we do not parse): an
 * endpoint of its default pool instead of the VIP, and that endpoint's metrics
 * slot (NULL without metrics). 0; -EHOSTUNREACH: no endpoint, or every one ejected
 * (Envoy's UH); -EBUSY: maxConnections reached (UO, counted in the pool's
 * cx_overflow); -EAFNOSUPPORT. On 0, *cbt holds the breaker slots taken (the pool's
 * connection, the host's active count), which l4 gives back at the close.
 */
static int tcp_endpoint(struct ring_worker *w, struct cfgw_cfg *cfg, int svc,
			const struct rm_orig *orig, struct sockaddr_storage *dst, socklen_t *dlen,
			struct rm_stats_slot **st, struct l4_cb *cbt)
{
	struct stats_w *sw = w->cfg.l7->stats;
	struct rm_stats_key k;
	struct rm_orig o;
	struct pick p;
	size_t pos;
	int r;

	cbt->cb = w->cfg.l7->cb;
	cbt->p = NULL;
	cbt->h = NULL;
	/* A TCP service's breaker: only a DestinationRule's (its top-level policy is the
	 * service's pool, route_pool); without one, nothing to pay per connection. Envoy's
	 * tcp_proxy: ejected hosts are not picked, and a connection past maxConnections
	 * is refused, not queued. */
	if (pick_pool(cfg, (uint32_t)svc, RM_CFG_NONE, orig->port, true, &p) ||
	    pick_one(cfg, &p, l7_random(w), &pos))
		return -EHOSTUNREACH;
	r = pick_addr(cfg, &p, pos, orig->port, &o, dst, dlen);
	if (r)
		return r == -ENOENT ? -EHOSTUNREACH : r;
	cbt->p = cbt->cb ? p.cbp : NULL;
	if (cb_conn_try_open(cbt->p))
		return -EBUSY;
	cbt->h = p.hosts ? p.hosts[pos] : NULL;
	cb_request_try_start(NULL, cbt->h); /* the host's active count, for LEAST_CONN */
	*st = NULL;
	if (sw) {
		tcp_key(w, cfg, svc, p.m[pos], orig, &k);
		*st = stats_slot(sw, &k);
	}
	return 0;
}

void accept_conn(struct ring_worker *w, int fd)
{
	const struct ring_hooks *h = &w->cfg.hooks;
	struct conn_admit a;
	struct sockaddr_storage dst;
	struct rm_stats_slot *st = NULL;
	struct l4_cb cbt = {NULL, NULL};
	socklen_t llen = sizeof(a.local), plen = sizeof(a.peer), dlen = 0;
	struct cfgw_cfg *cfg;
	uint8_t proto = 0;
	int r, svc = -1;

	memset(&a, 0, sizeof(a));
	a.fd = fd;
	if (getsockname(fd, (struct sockaddr *)&a.local, &llen) ||
	    getpeername(fd, (struct sockaddr *)&a.peer, &plen)) {
		refuse(w, &a); /* the client already reset */
		return;
	}
	r = h->orig_lookup(h->ctx, (const struct sockaddr *)&a.local,
			   (const struct sockaddr *)&a.peer, &a.orig);
	if (r == 0)
		a.orig_known = true;
	else if (r == -ENOENT)
		r = orig_from_sockopt(fd, &a.orig);
	if (r == 0)
		r = conn_orig_to_sockaddr(&a.orig, &dst, &dlen);
	if (r) {
		/* Not intercepted: the proxy port is not an open relay. */
		RING_STAT_ADD(w, refused_no_orig, 1);
		refuse(w, &a);
		return;
	}
	if (is_self(&dst, &a.local)) {
		RING_STAT_ADD(w, refused_loop, 1);
		refuse(w, &a);
		return;
	}
	/* Before any byte goes to the client, so the shortcut sees the whole stream. */
	if (w->cfg.sockmap && h->sock_add(h->ctx, fd, (const struct sockaddr *)&a.local,
					  (const struct sockaddr *)&a.peer) < 0)
		RING_STAT_ADD(w, sock_add_failed, 1);

	/* Declared services: HTTP ports are proxied at L7, TCP ports get an endpoint. */
	cfg = w->l7 ? l7_config(w) : NULL;
	if (cfg)
		svc = route_find_service(cfg->t, &a.orig.addr, a.orig.port);
	if (svc >= 0 && route_service_port(cfg->t, (uint32_t)svc, a.orig.port, &proto) == 0) {
		if (proto == RM_PROTO_HTTP) {
			if (l7_accept(w, &a, svc)) {
				RING_STAT_ADD(w, refused_full, 1);
				drop(w, &a);
			}
			return;
		}
		r = tcp_endpoint(w, cfg, svc, &a.orig, &dst, &dlen, &st, &cbt);
		if (r) {
			/* no usable endpoint, every one ejected, or maxConnections reached
			 * (counted in the pool's cx_overflow) */
			tcp_refused(w, cfg, svc, &a.orig,
				    r == -EBUSY		 ? RM_STATS_F_UO
				    : r == -EHOSTUNREACH ? RM_STATS_F_UH
							 : RM_STATS_F_UF);
			refuse(w, &a);
			return;
		}
	}
	if (l4_accept(w, &a, &dst, dlen, w->cfg.l7 ? w->cfg.l7->stats : NULL, st,
		      cbt.p || cbt.h ? &cbt : NULL)) {
		l4_cb_release(&cbt);
		RING_STAT_ADD(w, refused_full, 1);
		drop(w, &a);
	}
}
