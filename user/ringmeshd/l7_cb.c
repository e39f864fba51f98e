/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The L7 worker's side of the circuit breaker: requests pending for a connection
 * (maxConnections reached) wait in a FIFO per breaker pool, are served when a
 * connection of that pool is parked or closed in this worker, and by a poll every
 * L7_CB_POLL_NS, because capacity freed in another worker is otherwise unseen. The
 * same poll closes this worker's idle connections of a pool whose requests are
 * pending elsewhere: an idle connection must not hold the last slot for minutes.
 */
#include "policy/cb.h"
#include "ringmeshd/l7_int.h"

uint32_t l7_cb_slot(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	const struct cb *cb = lw->sh->cb;

	return cb && p ? cb_pool_index(cb, p) : RM_CB_POOLS;
}

void l7_cb_arm(struct l7_worker *lw)
{
	if ((lw->n_waiting || lw->n_idle_cb) && !l7_tmr_armed(&lw->t_cb))
		l7_tmr_arm(&lw->th, &lw->t_cb, mono_ns() + L7_CB_POLL_NS);
}

void l7_cb_wait(struct l7_worker *lw, struct l7_conn *c)
{
	uint32_t i = l7_cb_slot(lw, c->fw.cbp);

	if (i >= RM_CB_POOLS || c->wt.waiting)
		return;
	c->wt.waiting = true;
	c->wt.wnext = NULL;
	c->wt.wprev = lw->wq_tail[i];
	if (c->wt.wprev)
		c->wt.wprev->wt.wnext = c;
	else
		lw->wq_head[i] = c;
	lw->wq_tail[i] = c;
	lw->n_waiting++;
	__atomic_fetch_or(&lw->sh->cb_want[i], 1ull << (lw->id % 64), __ATOMIC_RELAXED);
	l7_cb_arm(lw);
}

void l7_cb_wait_leave(struct l7_worker *lw, struct l7_conn *c)
{
	uint32_t i = l7_cb_slot(lw, c->fw.cbp);

	if (!c->wt.waiting || i >= RM_CB_POOLS)
		return;
	if (c->wt.wprev)
		c->wt.wprev->wt.wnext = c->wt.wnext;
	else
		lw->wq_head[i] = c->wt.wnext;
	if (c->wt.wnext)
		c->wt.wnext->wt.wprev = c->wt.wprev;
	else
		lw->wq_tail[i] = c->wt.wprev;
	c->wt.wnext = c->wt.wprev = NULL;
	c->wt.waiting = false;
	lw->n_waiting--;
	if (!lw->wq_head[i]) {
		__atomic_fetch_and(&lw->sh->cb_want[i], ~(1ull << (lw->id % 64)), __ATOMIC_SEQ_CST);
		while (l7_cb_take_handoff(lw, i))
			cb_conn_close(c->fw.cbp); /* nobody here wants them any more */
	}
	cb_pending_leave(c->fw.cbp);
}

static bool dec_if(uint32_t *v)
{
	uint32_t cur = __atomic_load_n(v, __ATOMIC_SEQ_CST);

	while (cur)
		if (__atomic_compare_exchange_n(v, &cur, cur - 1, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			return true;
	return false;
}

bool l7_cb_take_handoff(struct l7_worker *lw, uint32_t i)
{
	return i < RM_CB_POOLS && dec_if(&lw->sh->cb_handoff[i][lw->id % 64]);
}

uint32_t l7_cb_handoff_target(uint64_t want, uint32_t me)
{
	uint32_t from = (me + 1) % 64;

	want &= ~(1ull << me);
	if (!want)
		return 64;
	/* the next waiting worker after this one, so that all get their turn */
	if (from)
		want = (want >> from) | (want << (64 - from));
	return (from + (uint32_t)__builtin_ctzll(want)) % 64;
}

bool l7_cb_handoff(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	uint32_t i = l7_cb_slot(lw, p), t;

	if (i >= RM_CB_POOLS)
		return false;
	t = l7_cb_handoff_target(__atomic_load_n(&lw->sh->cb_want[i], __ATOMIC_SEQ_CST),
				 lw->id % 64);
	if (t >= 64)
		return false;
	l7_cb_handoff_to(lw->sh, p, i, t);
	return true;
}

void l7_cb_handoff_to(struct l7_shared *sh, const struct rm_cb_pool *p, uint32_t i, uint32_t t)
{
	__atomic_fetch_add(&sh->cb_handoff[i][t], 1, __ATOMIC_SEQ_CST);
	/* it stopped waiting meanwhile: whoever decrements first frees the slot */
	if (!(__atomic_load_n(&sh->cb_want[i], __ATOMIC_SEQ_CST) & (1ull << t)) &&
	    dec_if(&sh->cb_handoff[i][t]))
		cb_conn_close((struct rm_cb_pool *)p);
}

bool l7_cb_others_wait(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	uint32_t i = l7_cb_slot(lw, p);

	return i < RM_CB_POOLS &&
	       (__atomic_load_n(&lw->sh->cb_want[i], __ATOMIC_RELAXED) & ~(1ull << (lw->id % 64)));
}

bool l7_cb_queue_first(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	uint32_t i = l7_cb_slot(lw, p);

	if (i >= RM_CB_POOLS)
		return false;
	return lw->wq_head[i] || (__atomic_load_n(&p->connections, __ATOMIC_RELAXED) >=
				      __atomic_load_n(&p->lim.max_connections, __ATOMIC_RELAXED) &&
				  l7_cb_others_wait(lw, p));
}

void l7_cb_kick(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	uint32_t i = l7_cb_slot(lw, p);

	if (i < RM_CB_POOLS && lw->wq_head[i]) {
		lw->kick[i] = 1;
		lw->any_kick = true;
	}
}

void l7_cb_idle(struct l7_worker *lw, struct l7_up *up, bool idle)
{
	uint32_t i = l7_cb_slot(lw, up->cbp);

	if (i >= RM_CB_POOLS || up->cb_idle == idle)
		return;
	/* an unlimited pool never makes a request wait: no need to watch its idle ones */
	if (idle &&
	    __atomic_load_n(&up->cbp->lim.max_connections, __ATOMIC_RELAXED) == RM_CFG_UNLIMITED)
		return;
	up->cb_idle = idle;
	if (idle) {
		lw->idle_by[i]++;
		lw->n_idle_cb++;
		l7_cb_arm(lw);
	} else {
		lw->idle_by[i]--;
		lw->n_idle_cb--;
	}
}

/* Serve pool i's waiters in order until one finds no connection. */
static void serve(struct l7_worker *lw, uint32_t i)
{
	struct l7_conn *c;

	while ((c = lw->wq_head[i]))
		if (l7c_resume(lw, c))
			break;
}

void l7_cb_run_kicks(struct l7_worker *lw)
{
	/* bounded: serving may park or close connections and kick again */
	for (int round = 0; round < 4 && lw->any_kick; round++) {
		lw->any_kick = false;
		for (uint32_t i = 0; i < RM_CB_POOLS; i++) {
			if (!lw->kick[i])
				continue;
			lw->kick[i] = 0;
			serve(lw, i);
		}
	}
}

void l7_cb_free_idle(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	uint32_t i = l7_cb_slot(lw, p);

	if (i >= RM_CB_POOLS || !lw->idle_by[i])
		return;
	for (uint32_t u = 0; u < lw->us.used; u++) {
		struct l7_up *up = &lw->ups[u];

		if (up->state == L7U_IDLE && up->cb_idle && up->cbp == p) {
			l7_up_close_idle(lw, up);
			return;
		}
	}
}

/* Idle connections of pool i while its requests wait (here, for another host, or in
 * other workers): give one slot back per poll (a pending request needs only one). */
static void yield_idle(struct l7_worker *lw, uint32_t i)
{
	const struct rm_cb_pool *p = &lw->sh->cb->m->pools[i];

	if (!__atomic_load_n(&p->pending, __ATOMIC_RELAXED))
		return;
	for (uint32_t u = 0; u < lw->us.used; u++) {
		struct l7_up *up = &lw->ups[u];

		if (up->state == L7U_IDLE && up->cb_idle && up->cbp == p) {
			l7_up_close_idle(lw, up);
			return;
		}
	}
}

void l7_cb_on_timer(struct l7_worker *lw, uint64_t now)
{
	(void)now;
	for (uint32_t i = 0; i < RM_CB_POOLS && (lw->n_waiting || lw->n_idle_cb); i++) {
		if (lw->wq_head[i])
			serve(lw, i);
		if (lw->idle_by[i])
			yield_idle(lw, i);
	}
	l7_cb_arm(lw);
}
