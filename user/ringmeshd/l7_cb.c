/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The L7 worker's side of the circuit breaker: requests pending for a connection
 * (maxConnections reached) wait in a FIFO per breaker pool, are served when a
 * connection of that pool is parked or closed in this worker, and by a poll every
 * L7_CB_POLL_NS, because capacity freed in another worker is otherwise unseen. The
 * same poll closes this worker's idle connections of a pool whose requests are
 * pending elsewhere: an idle connection must not hold the last slot for minutes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/cb.h"
#include "ringmeshd/l7_int.h"

int l7_shared_cb(struct l7_shared *sh, struct cb *cb)
{
	free(sh->cb_want);
	free(sh->cb_handoff);
	sh->cb_want = NULL;
	sh->cb_handoff = NULL;
	sh->cb = NULL;
	if (!cb || !cb->n_pools)
		return 0;
	/* calloc'd: only the pages of pools in use become resident */
	sh->cb_want = calloc(cb->n_pools, sizeof(*sh->cb_want));
	sh->cb_handoff = calloc(cb->n_pools, sizeof(*sh->cb_handoff));
	if (!sh->cb_want || !sh->cb_handoff) {
		l7_shared_cb(sh, NULL);
		return -ENOMEM;
	}
	sh->cb = cb;
	return 0;
}

int l7_cb_worker_init(struct l7_worker *lw)
{
	const struct cb *cb = lw->sh->cb;
	size_t n;

	if (lw->cb_pools || !cb || !cb->n_pools)
		return 0;
	n = cb->n_pools;
	lw->wq_head = calloc(n, sizeof(*lw->wq_head));
	lw->wq_tail = calloc(n, sizeof(*lw->wq_tail));
	lw->idle_by = calloc(n, sizeof(*lw->idle_by));
	lw->act = calloc(n, sizeof(*lw->act));
	lw->act_pos = calloc(n, sizeof(*lw->act_pos));
	lw->kick = calloc(n, sizeof(*lw->kick));
	lw->kicked = calloc(2 * n, sizeof(*lw->kicked));
	if (!lw->wq_head || !lw->wq_tail || !lw->idle_by || !lw->act || !lw->act_pos || !lw->kick ||
	    !lw->kicked) {
		l7_cb_worker_fini(lw);
		return -ENOMEM;
	}
	lw->cb_pools = (uint32_t)n;
	return 0;
}

void l7_cb_worker_fini(struct l7_worker *lw)
{
	free(lw->wq_head);
	free(lw->wq_tail);
	free(lw->idle_by);
	free(lw->act);
	free(lw->act_pos);
	free(lw->kick);
	free(lw->kicked);
	lw->wq_head = lw->wq_tail = NULL;
	lw->idle_by = lw->act = lw->act_pos = lw->kicked = NULL;
	lw->kick = NULL;
	lw->cb_pools = lw->n_act = lw->n_kicked = 0;
}

uint32_t l7_cb_slot(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	const struct cb *cb = lw->sh->cb;
	uint32_t i;

	if (!cb || !p)
		return lw->cb_pools;
	i = cb_pool_index(cb, p);
	return i < lw->cb_pools ? i : lw->cb_pools;
}

/* Pool i is in act while it has waiters or idle connections here. */
static void act_update(struct l7_worker *lw, uint32_t i)
{
	bool want = lw->wq_head[i] || lw->idle_by[i];
	uint32_t at = lw->act_pos[i];

	if (want && !at) {
		lw->act[lw->n_act++] = i;
		lw->act_pos[i] = lw->n_act;
	} else if (!want && at) {
		uint32_t last = lw->act[--lw->n_act];

		lw->act[at - 1] = last;
		lw->act_pos[last] = at;
		lw->act_pos[i] = 0;
	}
}

void l7_cb_arm(struct l7_worker *lw)
{
	if ((lw->n_waiting || lw->n_idle_cb) && !l7_tmr_armed(&lw->t_cb))
		l7_tmr_arm(&lw->th, &lw->t_cb, mono_ns() + L7_CB_POLL_NS);
}

void l7_cb_wait(struct l7_worker *lw, struct l7_conn *c)
{
	uint32_t i = l7_cb_slot(lw, c->fw.cbp);

	if (i >= lw->cb_pools || c->wt.waiting)
		return;
	c->wt.waiting = true;
	c->wt.wnext = NULL;
	c->wt.wprev = lw->wq_tail[i];
	if (c->wt.wprev)
		c->wt.wprev->wt.wnext = c;
	else
		lw->wq_head[i] = c;
	lw->wq_tail[i] = c;
	act_update(lw, i);
	lw->n_waiting++;
	__atomic_fetch_or(&lw->sh->cb_want[i], 1ull << (lw->id % 64), __ATOMIC_RELAXED);
	l7_cb_arm(lw);
}

void l7_cb_wait_leave(struct l7_worker *lw, struct l7_conn *c)
{
	uint32_t i = l7_cb_slot(lw, c->fw.cbp);

	if (!c->wt.waiting || i >= lw->cb_pools)
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
		act_update(lw, i);
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
	return i < lw->cb_pools && dec_if(&lw->sh->cb_handoff[i][lw->id % 64]);
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

	if (i >= lw->cb_pools)
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

	return i < lw->cb_pools &&
	       (__atomic_load_n(&lw->sh->cb_want[i], __ATOMIC_RELAXED) & ~(1ull << (lw->id % 64)));
}

bool l7_cb_queue_first(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	uint32_t i = l7_cb_slot(lw, p);

	if (i >= lw->cb_pools)
		return false;
	return lw->wq_head[i] || (__atomic_load_n(&p->connections, __ATOMIC_RELAXED) >=
				      __atomic_load_n(&p->lim.max_connections, __ATOMIC_RELAXED) &&
				  l7_cb_others_wait(lw, p));
}

void l7_cb_kick(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	uint32_t i = l7_cb_slot(lw, p);

	if (i < lw->cb_pools && lw->wq_head[i] && !lw->kick[i]) {
		lw->kick[i] = 1;
		lw->kicked[lw->n_kicked++] = i;
	}
}

void l7_cb_idle(struct l7_worker *lw, struct l7_up *up, bool idle)
{
	uint32_t i = l7_cb_slot(lw, up->cbp);

	if (i >= lw->cb_pools || up->cb_idle == idle)
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
	act_update(lw, i);
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
	/* bounded: serving may park or close connections and kick again. A pool kicked
	 * while its turn in this round is still to come is served in it (kick[i] set);
	 * one kicked after its turn goes after the round's, so the list holds at most
	 * the round's n (<= cb_pools) and one entry per pool with kick[i] set */
	for (int round = 0; round < 4 && lw->n_kicked; round++) {
		uint32_t n = lw->n_kicked;

		for (uint32_t k = 0; k < n; k++) {
			uint32_t i = lw->kicked[k];

			lw->kick[i] = 0;
			serve(lw, i);
		}
		lw->n_kicked -= n;
		memmove(lw->kicked, lw->kicked + n, lw->n_kicked * sizeof(*lw->kicked));
	}
}

void l7_cb_free_idle(struct l7_worker *lw, const struct rm_cb_pool *p)
{
	uint32_t i = l7_cb_slot(lw, p);

	if (i >= lw->cb_pools || !lw->idle_by[i])
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
	const struct rm_cb_pool *p = &lw->sh->cb->pools[i];

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
	/* downwards: serving may take pools out of act (the last one moves into the
	 * hole, one already visited) or add some at the end (polled next time) */
	for (uint32_t k = lw->n_act; k-- > 0 && (lw->n_waiting || lw->n_idle_cb);) {
		uint32_t i;

		if (k >= lw->n_act)
			continue;
		i = lw->act[k];
		if (lw->wq_head[i])
			serve(lw, i);
		if (lw->idle_by[i])
			yield_idle(lw, i);
	}
	l7_cb_arm(lw);
}
