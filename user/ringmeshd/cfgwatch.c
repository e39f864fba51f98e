/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Configuration watcher and RCU-like publication. Ordering: the pointer swap, the
 * readers' quiescent counters and the per-worker use counts are all sequentially
 * consistent, so a quiescent count read after the swap that has moved past its
 * snapshot proves the reader reloaded the pointer since, and a use count it took
 * before that is visible.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "ringmeshd/cfgwatch.h"

static void cfg_obj_free(struct cfgw_cfg *c)
{
	if (!c)
		return;
	route_free(c->t);
	free(c->lb);
	free(c->ep_version);
	free(c->ep_workload);
	free(c->cbp);
	free(c->cbh);
	free(c);
}

static void label_of(const struct rm_cfg *cfg, const struct rm_cfg_endpoint *e, const char *key,
		     char *out, size_t len)
{
	for (uint32_t i = 0; i < e->label_count; i++) {
		uint32_t li = e->label_first + i;

		if (li >= cfg->n_labels)
			break;
		if (!strcmp(cfg_str(cfg, cfg->labels[li].key_off), key)) {
			snprintf(out, len, "%s", cfg_str(cfg, cfg->labels[li].val_off));
			return;
		}
	}
}

/* Claim the host slots of one pool: members x ports of its service (endpoint port
 * numbers); returns how many found no slot. Written before the pool is published. */
static uint32_t pool_hosts(struct cfgw_cfg *c, uint32_t pool, struct rm_cb_pool *p,
			   const uint32_t *m)
{
	const struct cfgw_cbpool *b = &c->cbp[pool];
	uint32_t none = 0;

	for (uint32_t pi = 0; pi < b->n_ports; pi++) {
		for (uint32_t i = 0; i < b->n; i++) {
			struct route_endpoint e;
			__be16 port = route_endpoint_port(c->t, m[i], b->ports[pi]);
			struct rm_cb_host **h = &c->cbh[b->off + pi * b->n + i];

			if (route_endpoint(c->t, m[i], &e) || !port)
				continue;
			*h = cb_host(c->cb, p, &e.addr, port, e.family);
			if (!*h)
				none++;
		}
	}
	return none;
}

/* Give a pool its slot: limits of this generation, host slots. Nothing is published. */
static struct rm_cb_pool *pool_slot(struct cfgw_cfg *c, uint32_t pool, struct rm_cb_pool *p,
				    bool flip)
{
	const struct cfgw_cbpool *b = &c->cbp[pool];
	const struct rm_cfg_breaker *lim = route_subset_breaker(c->t, b->subset);
	uint32_t idx, lbp, none;
	const uint32_t *m;
	size_t n;

	if (route_pool(c->t, b->svc, b->subset, &idx, &m, &n, &lbp) || idx != pool)
		return CFGW_CB_FULL; /* cannot happen: build found it */
	/*
	 * A request of an older configuration claiming late must not put its limits
	 * over this generation's: the flip installs them unconditionally (a generation
	 * that went back still applies), a first use only over older ones.
	 */
	if (flip || __atomic_load_n(&p->generation, __ATOMIC_RELAXED) <= c->gen)
		cb_pool_configure(p, lim, (uint32_t)n, c->gen, mono_ns());
	none = pool_hosts(c, pool, p, m);
	if (none)
		__atomic_fetch_add(&c->cb_hosts_unslotted, none, __ATOMIC_RELAXED);
	/* the watcher's sweep must follow this pool's interval from now on */
	if (lim && lim->outlier && c->sweep_kick)
		__atomic_store_n(c->sweep_kick, 1, __ATOMIC_RELEASE);
	return p;
}

struct rm_cb_pool *cfgw_cb_claim(struct cfgw_cfg *c, uint32_t pool)
{
	struct cfgw_cbpool *b = &c->cbp[pool];
	struct rm_cb_pool *p = NULL;

	if (__atomic_compare_exchange_n(&b->p, &p, CFGW_CB_CLAIMING, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		p = cb_pool(c->cb, route_service_host(c->t, b->svc),
			    route_subset_name(c->t, b->subset));
		if (p) {
			p = pool_slot(c, pool, p, false);
		} else {
			__atomic_fetch_add(&c->cb_pools_unslotted, 1, __ATOMIC_RELAXED);
			p = CFGW_CB_FULL;
		}
		__atomic_store_n(&b->p, p, __ATOMIC_RELEASE);
		return p;
	}
	/* another worker is claiming it: a few hash probes away */
	while (p == CFGW_CB_CLAIMING)
		p = __atomic_load_n(&b->p, __ATOMIC_ACQUIRE);
	return p;
}

/*
 * Breaker state per pool: where its host slots go, and for pools that already have
 * a slot (used before) that slot with this generation's limits, installed here a
 * moment before the flip (the counts are live state anyway). Pools never used take
 * no slot until their first request (cfgw_cb_claim).
 */
static int build_cb(struct cb *cb, const struct rm_cfg *snap, struct cfgw_cfg *c)
{
	uint32_t n_svc = route_n_services(c->t);
	size_t total = 0;

	c->cb = cb;
	c->cbp = calloc(c->n_pools ? c->n_pools : 1, sizeof(*c->cbp));
	if (!c->cbp)
		return -ENOMEM;
	for (int pass = 0; pass < 2; pass++) {
		if (pass && !(c->cbh = calloc(total ? total : 1, sizeof(*c->cbh))))
			return -ENOMEM;
		for (uint32_t s = 0; s < n_svc && s < snap->n_services; s++) {
			const struct rm_cfg_service *sv = &snap->services[s];
			uint32_t n_ports = sv->n_ports <= RM_CFG_SVC_PORTS ? sv->n_ports : 0;

			/* the service's own subsets (contiguous), then every endpoint: a
			 * walk over all subsets per service was O(services x subsets) */
			for (uint32_t k = 0; k <= sv->subset_count; k++) {
				uint32_t subset =
				    k == sv->subset_count ? RM_CFG_NONE : sv->subset_first + k;
				uint32_t pool, lbp;
				const uint32_t *m;
				size_t n;
				struct cfgw_cbpool *b;
				struct rm_cb_pool *p;

				/* the whole service's traffic may be its top-level
				 * DestinationRule subset's (route_pool), done above */
				if (route_pool(c->t, s, subset, &pool, &m, &n, &lbp) ||
				    pool >= c->n_pools ||
				    (subset == RM_CFG_NONE && pool < route_n_subsets(c->t)))
					continue;
				b = &c->cbp[pool];
				if (!pass) {
					b->off = (uint32_t)total;
					b->n_ports = n_ports;
					b->n = (uint32_t)n;
					b->svc = s;
					b->subset = subset;
					for (uint32_t pi = 0; pi < n_ports; pi++)
						b->ports[pi] = sv->ports[pi].port;
					total += (size_t)n_ports * n;
					continue;
				}
				p = cb_pool_find(cb, route_service_host(c->t, s),
						 route_subset_name(c->t, subset));
				if (p)
					b->p = pool_slot(c, pool, p, true);
			}
		}
	}
	return 0;
}

struct rm_cb_host *const *cfgw_cb_hosts(const struct cfgw_cfg *c, uint32_t pool, int pi)
{
	const struct cfgw_cbpool *b;
	const struct rm_cb_pool *p;

	if (!c->cbp || !c->cbh || pool >= c->n_pools || pi < 0)
		return NULL;
	b = &c->cbp[pool];
	p = __atomic_load_n(&b->p, __ATOMIC_ACQUIRE);
	if (!p || p == CFGW_CB_CLAIMING || p == CFGW_CB_FULL || (uint32_t)pi >= b->n_ports || !b->n)
		return NULL;
	return &c->cbh[b->off + (uint32_t)pi * b->n];
}

static int build(struct cb *cb, int *sweep_kick, const struct rm_cfg *snap, struct cfgw_cfg **out,
		 char *err, size_t errlen)
{
	struct cfgw_cfg *c = calloc(1, sizeof(*c));
	int r;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	r = route_build(snap, &c->t, err, errlen);
	if (r) {
		free(c);
		return r;
	}
	c->gen = route_generation(c->t);
	c->sweep_kick = sweep_kick;
	c->n_pools = route_n_pools(c->t);
	c->n_eps = snap->n_endpoints;
	c->lb = calloc(c->n_pools ? c->n_pools : 1, sizeof(*c->lb));
	c->ep_version = calloc(c->n_eps ? c->n_eps : 1, sizeof(*c->ep_version));
	c->ep_workload = calloc(c->n_eps ? c->n_eps : 1, sizeof(*c->ep_workload));
	if (!c->lb || !c->ep_version || !c->ep_workload) {
		cfg_obj_free(c);
		return -ENOMEM;
	}
	for (uint32_t s = 0; s < route_n_services(c->t) && s < snap->n_services; s++) {
		const struct rm_cfg_service *sv = &snap->services[s];

		for (uint32_t k = 0; k <= sv->subset_count; k++) {
			uint32_t subset =
			    k == sv->subset_count ? RM_CFG_NONE : sv->subset_first + k;
			uint32_t pool, lbp;
			const uint32_t *m;
			size_t n;

			if (!route_pool(c->t, s, subset, &pool, &m, &n, &lbp) && pool < c->n_pools)
				lb_init(&c->lb[pool], lbp);
		}
	}
	for (uint32_t i = 0; i < c->n_eps; i++) {
		const struct rm_cfg_endpoint *e = &snap->endpoints[i];

		label_of(snap, e, "version", c->ep_version[i], RM_STATS_SHORT_LEN);
		if (e->name_off)
			snprintf(c->ep_workload[i], RM_STATS_SHORT_LEN, "%s",
				 cfg_str(snap, e->name_off));
		else
			label_of(snap, e, "app", c->ep_workload[i], RM_STATS_SHORT_LEN);
	}
	if (cb && build_cb(cb, snap, c)) {
		cfg_obj_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

int cfgw_init(struct cfgw *cw, unsigned int n_readers, char *err, size_t errlen)
{
	struct rm_cfg *empty;
	int r;

	memset(cw, 0, sizeof(*cw));
	if (!n_readers || n_readers > CFGW_MAX_READERS) {
		snprintf(err, errlen, "%u readers: 1..%d supported", n_readers, CFGW_MAX_READERS);
		return -EINVAL;
	}
	cw->n_readers = n_readers;
	/* The empty configuration is built like any other, so readers never see NULL. */
	empty = calloc(1, sizeof(*empty));
	if (!empty || cfg_init(empty)) {
		free(empty);
		return -ENOMEM;
	}
	r = build(NULL, NULL, empty, &cw->cur, err, errlen);
	cfg_free(empty);
	free(empty);
	return r;
}

int cfgw_publish(struct cfgw *cw, const struct rm_cfg *snap, char *err, size_t errlen)
{
	struct cfgw_cfg *c, *old;
	int r = build(cw->cb, &cw->sweep_kick, snap, &c, err, errlen);

	if (r) {
		cw->rejected++;
		return r;
	}
	old = __atomic_exchange_n(&cw->cur, c, __ATOMIC_SEQ_CST);
	for (unsigned int i = 0; i < cw->n_readers; i++)
		old->qs_snap[i] = __atomic_load_n(&cw->readers[i].qs, __ATOMIC_SEQ_CST);
	old->next = cw->retired;
	cw->retired = old;
	cw->flips++;
	return 0;
}

static bool reclaimable(struct cfgw *cw, const struct cfgw_cfg *c)
{
	for (unsigned int i = 0; i < cw->n_readers; i++) {
		if (__atomic_load_n(&cw->readers[i].qs, __ATOMIC_SEQ_CST) <= c->qs_snap[i])
			return false;
		if (__atomic_load_n(&c->uses[i], __ATOMIC_SEQ_CST))
			return false;
	}
	return true;
}

unsigned int cfgw_reclaim(struct cfgw *cw)
{
	struct cfgw_cfg **pp = &cw->retired;
	unsigned int left = 0;

	while (*pp) {
		struct cfgw_cfg *c = *pp;

		if (reclaimable(cw, c)) {
			*pp = c->next;
			cfg_obj_free(c);
		} else {
			pp = &c->next;
			left++;
		}
	}
	return left;
}

static void logf_(struct cfgw *cw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logf_(struct cfgw *cw, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!cw->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cw->log(cw->log_ctx, msg);
}

int cfgw_poll(struct cfgw *cw)
{
	char err[512];
	uint64_t gen;
	int r;

	if (!cw->store_open) {
		r = cfg_store_open(&cw->store, cw->pin_dir, false, err, sizeof(err));
		if (r)
			return r; /* not pinned yet: try again next poll */
		cw->store_open = true;
	}
	gen = __atomic_load_n(&cw->store.ctl->generation, __ATOMIC_ACQUIRE);
	if (gen == cw->seen_gen)
		return 0;
	if (!cw->snap && !(cw->snap = calloc(1, sizeof(*cw->snap))))
		return -ENOMEM;
	r = cfg_store_snapshot(&cw->store, cw->snap, NULL, &gen);
	if (r)
		return r;
	cw->seen_gen = gen;
	if (gen == 0)
		return 0;
	r = cfgw_publish(cw, cw->snap, err, sizeof(err));
	if (r) {
		if (cw->bad_gen != gen)
			logf_(cw,
			      "configuration generation %llu rejected, keeping generation %llu: %s",
			      (unsigned long long)gen, (unsigned long long)cfgw_current(cw)->gen,
			      err);
		cw->bad_gen = gen;
		return r;
	}
	if (cw->on_publish)
		cw->on_publish(cw->log_ctx, gen);
	{
		/* updated_ns is the CLI's CLOCK_REALTIME at the flip: how late we are. */
		uint64_t flip = __atomic_load_n(&cw->store.ctl->updated_ns, __ATOMIC_RELAXED);
		uint64_t now = realtime_ns();

		logf_(cw, "configuration generation %llu live, %.1f ms after its flip",
		      (unsigned long long)gen, flip && now > flip ? (now - flip) / 1e6 : 0.0);
	}
	cfgw_log_full(cw);
	return 1;
}

void cfgw_log_full(struct cfgw *cw)
{
	const struct cfgw_cfg *c = cfgw_current(cw);
	uint32_t pools = __atomic_load_n(&c->cb_pools_unslotted, __ATOMIC_RELAXED);
	uint32_t hosts = __atomic_load_n(&c->cb_hosts_unslotted, __ATOMIC_RELAXED);
	uint64_t now = mono_ns();

	if (!pools && !hosts)
		return;
	if (c->gen == cw->full_gen && ((pools == cw->full_pools && hosts == cw->full_hosts) ||
				       now - cw->full_ns < 1000000000ull))
		return;
	logf_(cw,
	      "breaker table full (%u pools, %u hosts): %u balancer pools and %u hosts in use "
	      "in generation %llu run without connection limits or outlier ejection; the "
	      "table bounds the pools in use on this node (ringmesh_breaker_table_full_total; "
	      "ringmeshd --breaker-pools, --breaker-hosts)",
	      c->cb ? c->cb->n_pools : 0, c->cb ? c->cb->n_hosts : 0, pools, hosts,
	      (unsigned long long)c->gen);
	cw->full_gen = c->gen;
	cw->full_pools = pools;
	cw->full_hosts = hosts;
	cw->full_ns = now;
}

uint64_t cfgw_sweep(struct cfgw *cw, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (!cw->cb)
		return now + 1000000000ull;
	/* a pool claimed by a request may bring a short interval: sweep at once */
	if (__atomic_exchange_n(&cw->sweep_kick, 0, __ATOMIC_ACQ_REL))
		cw->next_sweep_ns = 0;
	if (now >= cw->next_sweep_ns) {
		cb_sweep(cw->cb, now, NULL, 0, &next);
		/* a new configuration may bring a short interval: look again within 1 s */
		if (next > now + 1000000000ull)
			next = now + 1000000000ull;
		if (next < now + 1000000ull)
			next = now + 1000000ull;
		cw->next_sweep_ns = next;
	}
	return cw->next_sweep_ns;
}

static void *watch_main(void *arg)
{
	struct cfgw *cw = arg;
	uint64_t next_poll = 0;

	while (!__atomic_load_n(&cw->stop, __ATOMIC_ACQUIRE)) {
		uint64_t now = mono_ns(), wake;
		struct timespec ts;

		if (now >= next_poll) {
			if (cfgw_poll(cw) > 0)
				cw->next_sweep_ns = 0; /* new limits: sweep at once */
			cfgw_log_full(cw);	       /* pools claimed by requests since */
			cfgw_reclaim(cw);
			next_poll = now + CFGW_POLL_MS * 1000000ull;
		}
		/* outlier sweeps at 100 ms intervals must not wait for the 20 ms poll */
		wake = cfgw_sweep(cw, mono_ns());
		if (wake > next_poll)
			wake = next_poll;
		now = mono_ns();
		if (wake <= now)
			continue;
		ts.tv_sec = (time_t)((wake - now) / 1000000000ull);
		ts.tv_nsec = (long)((wake - now) % 1000000000ull);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int cfgw_start(struct cfgw *cw, const char *pin_dir, char *err, size_t errlen)
{
	int r;

	cw->pin_dir = pin_dir;
	cfgw_poll(cw); /* a configuration already applied is live before the first accept */
	r = pthread_create(&cw->thread, NULL, watch_main, cw);
	if (r) {
		snprintf(err, errlen, "config watcher: pthread_create: %s", strerror(r));
		return -r;
	}
	pthread_setname_np(cw->thread, "ringmeshd-cfg");
	cw->running = true;
	return 0;
}

void cfgw_stop(struct cfgw *cw)
{
	if (!cw->running)
		return;
	__atomic_store_n(&cw->stop, 1, __ATOMIC_RELEASE);
	pthread_join(cw->thread, NULL);
	cw->running = false;
}

void cfgw_fini(struct cfgw *cw)
{
	struct cfgw_cfg *c;

	cfgw_stop(cw);
	while ((c = cw->retired)) {
		cw->retired = c->next;
		cfg_obj_free(c);
	}
	cfg_obj_free(cw->cur);
	cw->cur = NULL;
	if (cw->store_open)
		cfg_store_close(&cw->store);
	cfg_free(cw->snap);
	free(cw->snap);
	cw->snap = NULL;
}
