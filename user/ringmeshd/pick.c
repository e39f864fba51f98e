/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The balancer step of both proxies (pick.h). */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "policy/route.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/pick.h"

int pick_pool(struct cfgw_cfg *cfg, uint32_t svc, uint32_t subset, __be16 sport, bool subsets_only,
	      struct pick *p)
{
	uint32_t lbp;

	memset(p, 0, sizeof(*p));
	if (route_pool(cfg->t, svc, subset, &p->pool, &p->m, &p->n, &lbp) || !p->n ||
	    p->pool >= cfg->n_pools)
		return -ENOENT;
	if (!cfg->cbp || (subsets_only && p->pool >= route_n_subsets(cfg->t)))
		return 0;
	p->cbp = cfgw_cb_pool(cfg, p->pool);
	p->hosts = cfgw_cb_hosts(cfg, p->pool, route_service_port(cfg->t, svc, sport, NULL));
	if (!p->hosts) /* no slot (the table is full): nothing to skip or count */
		return 0;
	p->lbc = (struct cb_lb_ctx){cfg->cb, p->m, p->hosts, p->n, mono_ns()};
	p->hk = (struct lb_hooks){cb_lb_available, cb_lb_active, &p->lbc};
	p->hooks = &p->hk;
	return 0;
}

int pick_addr(const struct cfgw_cfg *cfg, const struct pick *p, size_t pos, __be16 sport,
	      struct rm_orig *o, struct sockaddr_storage *ss, socklen_t *len)
{
	struct route_endpoint e;
	uint32_t ep;

	if (pos >= p->n || route_endpoint(cfg->t, (ep = p->m[pos]), &e))
		return -ENOENT;
	memset(o, 0, sizeof(*o));
	o->addr = e.addr;
	o->family = e.family;
	o->port = route_endpoint_port(cfg->t, ep, sport);
	return conn_orig_to_sockaddr(o, ss, len) ? -EAFNOSUPPORT : 0;
}
