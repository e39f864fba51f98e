/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Circuit breaker and outlier ejection over the shared rm_breaker memory.
 *
 * Counters are bounded with CAS loops rather than add-then-undo, so a count never
 * exceeds its limit even for an instant (the CLI and the high-water tests see the
 * true number) and never wraps below zero if a caller releases twice. Ejection goes
 * IN -> EJECTING -> OUT so that a sweeper never sees an ejected host with a stale
 * ejected_until; a pool's ejection quota is reserved before the host is claimed and
 * given back if another thread ejected the host first.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "policy/cb.h"
#include "common/cfg.h"

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)

void cb_size(uint32_t pools, uint32_t hosts, uint32_t *n_pools, uint32_t *n_hosts)
{
	*n_pools = pools ? pools : RM_CB_POOLS;
	*n_hosts = hosts ? hosts : *n_pools * RM_CB_HOSTS_PER_POOL;
}

uint32_t cb_pages(uint32_t n_pools, uint32_t n_hosts)
{
	return (uint32_t)RM_CB_PAGES(n_pools, n_hosts);
}

int cb_locate(struct cb *cb, const void *mem, size_t len)
{
	const struct rm_cb_hdr *h = mem;
	uint64_t np, nh;

	memset(cb, 0, sizeof(*cb));
	cb->fd = -1;
	if (!mem || len < sizeof(*h) || __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != RM_CB_MAGIC)
		return -ENOENT;
	if (h->abi_version != RM_CB_ABI_VERSION)
		return -EPROTO;
	np = h->n_pools;
	nh = h->n_hosts;
	if (!np || !nh || np > RM_CB_POOLS_MAX || nh > RM_CB_HOSTS_MAX ||
	    h->pool_off < sizeof(*h) || h->pool_off % 8 || h->host_off % 8 ||
	    h->pool_off + np * sizeof(struct rm_cb_pool) > h->host_off ||
	    h->host_off + nh * sizeof(struct rm_cb_host) > len)
		return -EINVAL;
	cb->h = (struct rm_cb_hdr *)h;
	cb->pools = (struct rm_cb_pool *)((char *)mem + h->pool_off);
	cb->hosts = (struct rm_cb_host *)((char *)mem + h->host_off);
	cb->n_pools = (uint32_t)np;
	cb->n_hosts = (uint32_t)nh;
	return 0;
}

int cb_attach(struct cb *cb, void *mem, size_t len, uint32_t n_pools, uint32_t n_hosts,
	      uint64_t realtime_ns)
{
	struct rm_cb_hdr *h = mem;
	int r;

	memset(cb, 0, sizeof(*cb));
	cb->fd = -1;
	if (!n_pools || !n_hosts || n_pools > RM_CB_POOLS_MAX || n_hosts > RM_CB_HOSTS_MAX)
		return -EINVAL;
	if (RM_CB_BYTES(n_pools, n_hosts) > len)
		return -ENOSPC;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != RM_CB_MAGIC) {
		h->abi_version = RM_CB_ABI_VERSION;
		h->n_pools = n_pools;
		h->n_hosts = n_hosts;
		h->pool_off = RM_CB_POOL_OFF;
		h->host_off = RM_CB_HOST_OFF(n_pools);
		h->started_ns = realtime_ns;
		__atomic_store_n(&h->magic, RM_CB_MAGIC, __ATOMIC_RELEASE);
	}
	r = cb_locate(cb, mem, len);
	if (r)
		return r == -ENOENT ? -EPROTO : r;
	if (cb->n_pools != n_pools || cb->n_hosts != n_hosts) {
		memset(cb, 0, sizeof(*cb));
		cb->fd = -1;
		return -EPROTO;
	}
	return 0;
}

void cb_limits_default(struct rm_cfg_breaker *lim)
{
	/* one source of truth with the compiler: Envoy's limits, outlier detection off */
	cfg_breaker_old_defaults(lim);
}

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static void put_str(char *dst, size_t cap, const char *src)
{
	size_t n;

	memset(dst, 0, cap);
	if (!src)
		return;
	n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
}

/* Wait out a claimer (a few stores away from LIVE): the key may be ours. */
static uint32_t settle(uint32_t *state, uint32_t st)
{
	while (st == RM_CB_CLAIMING)
		st = __atomic_load_n(state, __ATOMIC_ACQUIRE);
	return st;
}

static bool claim(uint32_t *state)
{
	uint32_t exp = RM_CB_FREE;

	return __atomic_compare_exchange_n(state, &exp, RM_CB_CLAIMING, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

/* Find the pool slot of (service, subset); with create, claim a free one on the way. */
static struct rm_cb_pool *pool_lookup(struct cb *cb, const char *service, const char *subset,
				      bool create)
{
	char svc[RM_CB_SERVICE_LEN], sub[RM_CB_SUBSET_LEN];
	uint32_t h;

	if (!cb || !cb->pools)
		return NULL;
	put_str(svc, sizeof(svc), service);
	put_str(sub, sizeof(sub), subset);
	h = fnv(fnv(2166136261u, svc, sizeof(svc)), sub, sizeof(sub));
	for (uint32_t i = 0; i < RM_CB_PROBE && i < cb->n_pools; i++) {
		struct rm_cb_pool *p = &cb->pools[(h + i) % cb->n_pools];
		uint32_t st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);

		if (st == RM_CB_FREE) {
			/* no deletes: the key is never past the first free slot */
			if (!create)
				return NULL;
			if (claim(&p->state)) {
				memcpy(p->service, svc, sizeof(svc));
				memcpy(p->subset, sub, sizeof(sub));
				p->key_hash = h;
				cb_limits_default(&p->lim);
				__atomic_store_n(&p->state, RM_CB_LIVE, __ATOMIC_RELEASE);
				ADD(&cb->h->pools_used, 1);
				return p;
			}
			st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
		}
		st = settle(&p->state, st);
		if (st == RM_CB_LIVE && p->key_hash == h && !memcmp(p->service, svc, sizeof(svc)) &&
		    !memcmp(p->subset, sub, sizeof(sub)))
			return p;
	}
	if (create)
		ADD(&cb->h->pools_dropped, 1);
	return NULL;
}

struct rm_cb_pool *cb_pool(struct cb *cb, const char *service, const char *subset)
{
	return pool_lookup(cb, service, subset, true);
}

struct rm_cb_pool *cb_pool_find(struct cb *cb, const char *service, const char *subset)
{
	return pool_lookup(cb, service, subset, false);
}

uint32_t cb_pool_index(const struct cb *cb, const struct rm_cb_pool *p)
{
	return (uint32_t)(p - cb->pools);
}

/* Bring the pool's next sweep forward to `at` (never back: a sweep already due stays due). */
static void sweep_no_later_than(struct rm_cb_pool *p, uint64_t at)
{
	uint64_t cur = LD(&p->next_sweep_ns);

	while (cur > at && !__atomic_compare_exchange_n(&p->next_sweep_ns, &cur, at, true,
							__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		;
}

int cb_pool_configure(struct rm_cb_pool *p, const struct rm_cfg_breaker *lim, uint32_t n_hosts,
		      uint64_t generation, uint64_t now)
{
	struct rm_cfg_breaker def;

	if (!p)
		return -EINVAL;
	if (!lim) {
		cb_limits_default(&def);
		lim = &def;
	}
	if (lim->outlier && (!lim->base_ejection_ns || !lim->interval_ns))
		return -EINVAL;
	if (lim->max_ejection_percent > 100)
		return -EINVAL;
	ST(&p->lim.max_connections, lim->max_connections);
	ST(&p->lim.max_pending, lim->max_pending);
	ST(&p->lim.max_requests, lim->max_requests);
	ST(&p->lim.max_requests_per_conn, lim->max_requests_per_conn);
	ST(&p->lim.max_retries, lim->max_retries);
	ST(&p->lim.consecutive_errors, lim->consecutive_errors);
	ST(&p->lim.consecutive_gateway_errors, lim->consecutive_gateway_errors);
	ST(&p->lim.max_ejection_percent, lim->max_ejection_percent);
	ST(&p->lim.base_ejection_ns, lim->base_ejection_ns);
	ST(&p->lim.interval_ns, lim->interval_ns);
	ST(&p->lim.outlier, lim->outlier);
	ST(&p->n_hosts, n_hosts);
	ST(&p->generation, generation);
	/*
	 * The schedule was set one old interval ahead by the last sweep. A shorter
	 * interval must take effect now, not after the old one (2 min -> 200 ms would
	 * otherwise leave hosts ejected for 2 min); a longer one takes effect from the
	 * sweep already scheduled. Either way: min(old schedule, now + new interval).
	 */
	if (lim->outlier)
		sweep_no_later_than(
		    p, now > UINT64_MAX - lim->interval_ns ? UINT64_MAX : now + lim->interval_ns);
	return 0;
}

struct rm_cb_host *cb_host(struct cb *cb, const struct rm_cb_pool *p, const struct rm_addr *addr,
			   __be16 port, uint16_t family)
{
	struct rm_cb_host_key k;
	struct rm_cb_pool *pool;
	uint32_t h;

	if (!cb || !cb->hosts || !p || !addr)
		return NULL;
	memset(&k, 0, sizeof(k));
	k.pool = cb_pool_index(cb, p);
	pool = cb_pool_at(cb, k.pool);
	if (!pool)
		return NULL;
	k.family = family;
	k.port = port;
	k.addr = *addr;
	h = fnv(2166136261u, &k, sizeof(k));
	for (uint32_t i = 0; i < RM_CB_PROBE && i < cb->n_hosts; i++) {
		struct rm_cb_host *s = &cb->hosts[(h + i) % cb->n_hosts];
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);

		if (st == RM_CB_FREE) {
			if (claim(&s->state)) {
				uint32_t head = __atomic_load_n(&pool->host_head, __ATOMIC_ACQUIRE);

				s->key = k;
				s->key_hash = h;
				/* on the pool's list (for the sweep) before it is LIVE */
				do
					ST(&s->next, head);
				while (!__atomic_compare_exchange_n(
				    &pool->host_head, &head, (uint32_t)(s - cb->hosts) + 1, true,
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
				__atomic_store_n(&s->state, RM_CB_LIVE, __ATOMIC_RELEASE);
				ADD(&cb->h->hosts_used, 1);
				return s;
			}
			st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		}
		st = settle(&s->state, st);
		if (st == RM_CB_LIVE && s->key_hash == h && !memcmp(&s->key, &k, sizeof(k)))
			return s;
	}
	ADD(&cb->h->hosts_dropped, 1);
	return NULL;
}

/* ---- admission ---- */

/* Count one more in *v unless that would pass max: 0, or -1 at the limit. */
static int inc_below(uint32_t *v, uint32_t max)
{
	uint32_t cur = LD(v);

	do {
		if (max != RM_CFG_UNLIMITED && cur >= max)
			return -1;
	} while (!__atomic_compare_exchange_n(v, &cur, cur + 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return 0;
}

static void dec(uint32_t *v)
{
	uint32_t cur = LD(v);

	do {
		if (!cur)
			return;
	} while (!__atomic_compare_exchange_n(v, &cur, cur - 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
}

int cb_conn_try_open(struct rm_cb_pool *p)
{
	if (!p)
		return 0;
	if (inc_below(&p->connections, LD(&p->lim.max_connections))) {
		ADD(&p->cx_overflow, 1);
		return -EBUSY;
	}
	return 0;
}

void cb_conn_close(struct rm_cb_pool *p)
{
	if (p)
		dec(&p->connections);
}

int cb_pending_try_enter(struct rm_cb_pool *p)
{
	if (!p)
		return 0;
	if (inc_below(&p->pending, LD(&p->lim.max_pending))) {
		ADD(&p->pending_overflow, 1);
		return -EOVERFLOW;
	}
	return 0;
}

void cb_pending_leave(struct rm_cb_pool *p)
{
	if (p)
		dec(&p->pending);
}

int cb_request_try_start(struct rm_cb_pool *p, struct rm_cb_host *h)
{
	if (p && inc_below(&p->requests, LD(&p->lim.max_requests))) {
		ADD(&p->rq_overflow, 1);
		return -EOVERFLOW;
	}
	if (h)
		ADD(&h->active, 1);
	return 0;
}

void cb_request_finish(struct rm_cb_pool *p, struct rm_cb_host *h)
{
	if (p)
		dec(&p->requests);
	if (h)
		dec(&h->active);
}

int cb_retry_try_start(struct rm_cb_pool *p)
{
	if (!p)
		return 0;
	if (inc_below(&p->retries, LD(&p->lim.max_retries))) {
		ADD(&p->retry_overflow, 1);
		return -EOVERFLOW;
	}
	return 0;
}

void cb_retry_finish(struct rm_cb_pool *p)
{
	if (p)
		dec(&p->retries);
}

bool cb_conn_keep(const struct rm_cb_pool *p, uint32_t served)
{
	uint32_t max = p ? LD(&p->lim.max_requests_per_conn) : 0;

	return !max || served < max;
}

/* ---- outlier detection ---- */

enum cb_outcome cb_outcome_of_status(int status)
{
	if (status == 502 || status == 503 || status == 504)
		return CB_GATEWAY;
	if (status >= 500 && status <= 599)
		return CB_5XX;
	return CB_SUCCESS;
}

static uint64_t eject_duration(const struct rm_cfg_breaker *lim, uint32_t k)
{
	uint64_t base = LD(&lim->base_ejection_ns);
	uint64_t cap = base > RM_CB_MAX_EJECTION_NS ? base : RM_CB_MAX_EJECTION_NS;

	if (!k)
		k = 1;
	if (base && k > cap / base)
		return cap;
	return base * k;
}

/* Reserve one ejection in the pool's quota: Envoy's rule, one host may always go. */
static bool quota_take(struct rm_cb_pool *p)
{
	uint32_t pct = LD(&p->lim.max_ejection_percent);
	uint64_t n = LD(&p->n_hosts);
	uint32_t e = LD(&p->ejected);

	do {
		if (e && (uint64_t)(e + 1) * 100 > (uint64_t)pct * n)
			return false;
	} while (!__atomic_compare_exchange_n(&p->ejected, &e, e + 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return true;
}

static int eject(struct rm_cb_pool *p, struct rm_cb_host *h, uint64_t now)
{
	uint32_t exp = RM_CB_IN;
	uint32_t k;

	if (!quota_take(p)) {
		ADD(&h->ejections_denied, 1);
		return 0;
	}
	if (!__atomic_compare_exchange_n(&h->ejected, &exp, RM_CB_EJECTING, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		dec(&p->ejected);
		return 0;
	}
	k = __atomic_add_fetch(&h->eject_k, 1, __ATOMIC_RELAXED);
	ST(&h->ejected_at_ns, now);
	ST(&h->ejected_until_ns, now + eject_duration(&p->lim, k));
	ADD(&h->total_ejections, 1);
	ADD(&p->ejections_total, 1);
	__atomic_store_n(&h->ejected, RM_CB_OUT, __ATOMIC_RELEASE);
	return 1;
}

/* Count one error in *cnt; true for the one caller whose error reached thr (the
 * count restarts, as Envoy resets it after acting, ejected or not). */
static bool bump(uint32_t *cnt, uint32_t thr)
{
	uint32_t c = __atomic_add_fetch(cnt, 1, __ATOMIC_RELAXED);

	return thr && c >= thr &&
	       __atomic_compare_exchange_n(cnt, &c, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

enum cb_phase cb_host_phase(const struct rm_cb_pool *p, const struct rm_cb_host *h, uint64_t now)
{
	uint32_t st;
	uint64_t until, iv;

	if (!h)
		return CB_PHASE_IN;
	st = __atomic_load_n(&h->ejected, __ATOMIC_ACQUIRE);
	if (st == RM_CB_IN)
		return CB_PHASE_IN;
	if (st != RM_CB_OUT || !p)
		return CB_PHASE_OUT; /* EJECTING: ejected_until is being written */
	until = LD(&h->ejected_until_ns);
	if (now < until)
		return CB_PHASE_OUT;
	iv = LD(&p->lim.interval_ns);
	/* a working sweeper returns it within one interval of its time: two mean it is
	 * stuck, or its schedule is wrong; failing open beats keeping it out for ever */
	if (now - until > 2 * iv)
		return CB_PHASE_OVERDUE;
	return CB_PHASE_DUE;
}

/* OUT -> IN, by the sweep or by a result of an overdue host. The counts restart
 * before the host is IN, so no error counted after the return is wiped; false when
 * someone else returned it first. */
static bool uneject(struct rm_cb_pool *p, struct rm_cb_host *h, uint64_t now)
{
	uint32_t exp = RM_CB_OUT;

	ST(&h->consecutive_errors, 0);
	ST(&h->consecutive_gateway, 0);
	ST(&h->unejected_at_ns, now);
	if (!__atomic_compare_exchange_n(&h->ejected, &exp, RM_CB_IN, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return false;
	dec(&p->ejected);
	if (!LD(&p->lim.outlier))
		ST(&h->eject_k, 0);
	return true;
}

int cb_host_result(struct cb *cb, struct rm_cb_host *h, enum cb_outcome o, uint64_t now)
{
	struct rm_cb_pool *p;
	bool hit = false, gateway;

	p = h ? cb_pool_at(cb, h->key.pool) : NULL;
	if (!p)
		return 0;
	if (o == CB_LOCAL_OVERFLOW || o < CB_SUCCESS || o >= CB_OUTCOME_MAX)
		return 0;
	/*
	 * The balancer's view and this one must agree: a host that may be picked has its
	 * results counted, one that may not has none (they come from requests in flight
	 * when it was ejected, and would only re-eject it on return). An overdue host is
	 * picked (fail open), so its first result takes it back in, as the sweep would.
	 */
	switch (cb_host_phase(p, h, now)) {
	case CB_PHASE_IN:
		break;
	case CB_PHASE_OVERDUE:
		uneject(p, h, now); /* lost the race: someone else returned it, it is IN */
		break;
	default:
		return 0;
	}
	if (o == CB_SUCCESS) {
		ADD(&h->successes_total, 1);
		ST(&h->consecutive_errors, 0);
		ST(&h->consecutive_gateway, 0);
		return 0;
	}
	ADD(&h->errors_total, 1);
	ST(&h->last_error_ns, now);
	gateway = o != CB_5XX;
	if (gateway)
		hit = bump(&h->consecutive_gateway, LD(&p->lim.consecutive_gateway_errors));
	else
		ST(&h->consecutive_gateway, 0);
	if (bump(&h->consecutive_errors, LD(&p->lim.consecutive_errors)))
		hit = true;
	if (!hit || !LD(&p->lim.outlier))
		return 0;
	return eject(p, h, now);
}

bool cb_host_available(const struct cb *cb, const struct rm_cb_host *h, uint64_t now)
{
	const struct rm_cb_pool *p = NULL;
	enum cb_phase ph;

	if (!h)
		return true;
	p = cb_pool_at(cb, h->key.pool);
	ph = cb_host_phase(p, h, now);
	return ph == CB_PHASE_IN || ph == CB_PHASE_OVERDUE;
}

uint32_t cb_host_active(const struct rm_cb_host *h)
{
	return h ? LD(&h->active) : 0;
}

/* Claim a due pool for this sweep; false when not due or another sweeper has it. */
static bool pool_due(struct rm_cb_pool *p, uint64_t now, uint64_t *next)
{
	uint64_t iv, nxt;

	if (!LD(&p->lim.outlier))
		return true; /* detection off: return any ejected host at once */
	iv = LD(&p->lim.interval_ns);
	nxt = LD(&p->next_sweep_ns);
	if (now < nxt) {
		if (nxt < *next)
			*next = nxt;
		return false;
	}
	if (*next > now + iv)
		*next = now + iv;
	return __atomic_compare_exchange_n(&p->next_sweep_ns, &nxt, now + iv, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* The sweep of one due pool: its hosts, through its list (at most n_hosts of them,
 * whatever the memory says). */
static size_t sweep_pool(struct cb *cb, uint32_t pi, uint64_t now, struct rm_cb_host **out,
			 size_t max, size_t n)
{
	struct rm_cb_pool *p = &cb->pools[pi];
	bool on = LD(&p->lim.outlier);
	uint32_t at = __atomic_load_n(&p->host_head, __ATOMIC_ACQUIRE);

	for (uint32_t steps = 0; at && at <= cb->n_hosts && steps < cb->n_hosts; steps++) {
		struct rm_cb_host *h = &cb->hosts[at - 1];
		uint64_t back;

		at = LD(&h->next);
		if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != RM_CB_LIVE || h->key.pool != pi)
			continue;
		if (__atomic_load_n(&h->ejected, __ATOMIC_ACQUIRE) == RM_CB_OUT) {
			if (on && now < LD(&h->ejected_until_ns))
				continue;
			if (!uneject(p, h, now))
				continue;
			if (out && n < max)
				out[n] = h;
			n++;
			continue;
		}
		/* Envoy's decay: a host in for a whole interval since its last return loses
		 * one ejection in a row per sweep. Not the sweep that returned it, and not
		 * one less than an interval after an overdue host took itself back in. */
		back = LD(&h->unejected_at_ns);
		if (LD(&h->eject_k) && now >= back && now - back >= LD(&p->lim.interval_ns))
			dec(&h->eject_k);
	}
	return n;
}

size_t cb_sweep(struct cb *cb, uint64_t now, struct rm_cb_host **out, size_t max, uint64_t *next_ns)
{
	uint64_t next = UINT64_MAX;
	size_t n = 0;

	if (!cb || !cb->pools)
		goto done;
	for (uint32_t i = 0; i < cb->n_pools; i++) {
		struct rm_cb_pool *p = &cb->pools[i];

		if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == RM_CB_LIVE &&
		    pool_due(p, now, &next))
			n = sweep_pool(cb, i, now, out, max, n);
	}
	ST(&cb->h->last_sweep_ns, now);
done:
	if (next_ns)
		*next_ns = next;
	return n;
}

/* ---- balancer hooks ---- */

static struct rm_cb_host *lb_host(const struct cb_lb_ctx *c, uint32_t endpoint)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->members[i] == endpoint)
			return c->hosts ? c->hosts[i] : NULL;
	return NULL;
}

bool cb_lb_available(void *ctx, uint32_t endpoint)
{
	const struct cb_lb_ctx *c = ctx;

	return cb_host_available(c->cb, lb_host(c, endpoint), c->now);
}

uint32_t cb_lb_active(void *ctx, uint32_t endpoint)
{
	return cb_host_active(lb_host(ctx, endpoint));
}
