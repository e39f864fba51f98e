/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The balancer step both proxies share: the pool a request (l7_choose) or a TCP
 * service's connection (accept.c) goes to, its breaker, the pick, and the picked
 * endpoint's address.
 */
#ifndef RM_PICK_H
#define RM_PICK_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/cb.h"
#include "policy/lb.h"
#include "ringmesh/abi.h"
#include "ringmeshd/cfgwatch.h"

/*
 * Service svc's pool for subset (route_pool; RM_CFG_NONE: the service's default, a
 * DestinationRule's top-level policy if it has one), ready for lb_pick: its members,
 * and in a configuration with breaker slots the pool's slot (claimed on first use),
 * its hosts for service port sport, aligned with the members, and the hooks that
 * skip ejected hosts and count requests in flight (LEAST_CONN). hooks points into
 * the struct: it is not to be copied.
 */
struct pick {
	const uint32_t *m; /* endpoint indices */
	size_t n;
	uint32_t pool;			 /* route_pool's index: cfg->lb[pool] */
	struct rm_cb_pool *cbp;		 /* NULL: no breaker for this pool */
	struct rm_cb_host *const *hosts; /* NULL: no host slots */
	const struct lb_hooks *hooks;	 /* &hk, or NULL without host slots */
	struct cb_lb_ctx lbc;
	struct lb_hooks hk;
};

/* subsets_only: only a subset's pool (one of a DestinationRule) has a breaker, not
 * a service's own whole-service pool (TCP services: nothing to pay per connection
 * where no rule asks for limits). 0, or -ENOENT: no such pool, or an empty one. */
int pick_pool(struct cfgw_cfg *cfg, uint32_t svc, uint32_t subset, __be16 sport, bool subsets_only,
	      struct pick *p);

/* lb_pick on the pool: 0 with *pos the member picked, or -ENOENT (every member
 * ejected). */
static inline int pick_one(const struct cfgw_cfg *cfg, const struct pick *p, uint64_t rnd,
			   size_t *pos)
{
	return lb_pick(&cfg->lb[p->pool], p->m, p->n, p->hooks, rnd, pos) ? -ENOENT : 0;
}

/* Member pos's endpoint at the target port of service port sport: o (address,
 * family, port) and its sockaddr. 0; -ENOENT: no such endpoint; -EAFNOSUPPORT: an
 * address we cannot connect to. */
int pick_addr(const struct cfgw_cfg *cfg, const struct pick *p, size_t pos, __be16 sport,
	      struct rm_orig *o, struct sockaddr_storage *ss, socklen_t *len);

#endif /* RM_PICK_H */
