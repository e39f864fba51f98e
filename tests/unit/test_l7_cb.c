/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The L7 worker's side of the circuit breaker (l7_cb.c and the upstream connection
 * close paths of l7.c), driven without sockets: real l7 workers on a real io_uring
 * whose SQEs are prepared but never submitted, upstream connections with fd -1, and
 * completions fed to l7_complete() by hand. The breaker map lives in test memory.
 *
 * Counters of the breaker saturate at 0, so every test keeps a baseline of other
 * connections / pending requests counted: a slot given back twice shows as a count
 * below the baseline, a slot never given back as one above it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <cmocka.h>

#include "policy/cb.h"
#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/l7_int.h"
#include "ringmeshd/ring.h"
#include "l7_fx.h"

#define BASE_CONNS 2u /* connections of the pool held by others throughout */
#define NCONN 8

struct fx {
	struct cfgw cw;
	void *map; /* rm_breaker's memory, the default size */
	struct cb cb;
	struct l7_shared sh;
	struct ring_worker *w[2];
	struct l7_worker *lw[2];
	struct rm_cb_pool *p;
	uint32_t slot;
	struct pool_key key;
};

/* rm_breaker's pool slots for the next fixture (0: the default) */
static uint32_t fx_pools;

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint32_t np = fx_pools ? fx_pools : RM_CB_POOLS, nh = 16 * np;
	struct rm_cfg_breaker lim;
	char err[256];

	assert_non_null(f);
	assert_int_equal(cfgw_init(&f->cw, 2, err, sizeof(err)), 0);
	f->map = calloc(1, RM_CB_BYTES(np, nh));
	assert_non_null(f->map);
	assert_int_equal(cb_attach(&f->cb, f->map, RM_CB_BYTES(np, nh), np, nh, 1), 0);
	f->p = cb_pool(&f->cb, "svc.ns.svc.cluster.local", NULL);
	/* a larger table: the pool under test in a slot past the default's */
	for (int i = 0; np > RM_CB_POOLS && f->p && cb_pool_index(&f->cb, f->p) < RM_CB_POOLS;
	     i++) {
		snprintf(err, sizeof(err), "svc-%d.ns.svc.cluster.local", i);
		f->p = cb_pool(&f->cb, err, NULL);
	}
	assert_non_null(f->p);
	cb_limits_default(&lim);
	lim.max_connections = BASE_CONNS + 1;
	lim.max_pending = 100;
	assert_int_equal(cb_pool_configure(f->p, &lim, 1, 1, 0), 0);
	f->slot = cb_pool_index(&f->cb, f->p);
	f->sh.cw = &f->cw;
	assert_int_equal(l7_shared_cb(&f->sh, &f->cb), 0);
	l7_opts_fill(&f->sh.o);
	for (int i = 0; i < 2; i++) {
		struct ring_worker *w = l7fx_worker_new(&f->sh, NCONN, (unsigned int)i, 256);

		if (!w) {
			l7fx_worker_free(f->w[0]);
			free(f->map);
			cfgw_fini(&f->cw);
			free(f);
			skip();	  /* io_uring disabled: nothing here can run */
			return 0; /* skip() does not return */
		}
		f->w[i] = w;
		f->lw[i] = l7w(w);
	}
	for (uint32_t i = 0; i < BASE_CONNS; i++)
		assert_int_equal(cb_conn_try_open(f->p), 0);
	f->key.port = htons(8080);
	f->key.family = 2;
	f->key.addr.a8[15] = 7;
	f->key.group = f->slot + 1;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 2; i++)
		l7fx_worker_free(f->w[i]);
	cfgw_fini(&f->cw);
	l7_shared_cb(&f->sh, NULL);
	free(f->map);
	free(f);
	return 0;
}

static uint32_t conns(struct fx *f)
{
	return __atomic_load_n(&f->p->connections, __ATOMIC_SEQ_CST);
}

/* A client connection in the middle of an attempt at pool p (as l7.c allocates it). */
static struct l7_conn *conn_new(struct l7_worker *lw, struct rm_cb_pool *p,
				const struct pool_key *k)
{
	static const char head[] = "GET / HTTP/1.1\r\nhost: svc\r\n\r\n";
	struct l7_conn *c = l7c_alloc(lw);

	assert_non_null(c);
	assert_int_equal(l7c_mem_get(lw, c), 0);
	memcpy(c->cl.obuf, head, sizeof(head) - 1);
	c->fw.olen = sizeof(head) - 1;
	c->state = L7C_FWD;
	c->mt.in_req = true;
	c->fw.ep = L7_NONE;
	c->fw.cbp = p;
	if (k)
		c->fw.ukey = *k; /* c->fw.uss stays AF_UNSPEC: a new connection cannot be made */
	return c;
}

/* What attempt() does at maxConnections: count it pending, queue it. */
static void pend(struct l7_worker *lw, struct l7_conn *c)
{
	assert_int_equal(cb_pending_try_enter(c->fw.cbp), 0);
	l7_cb_wait(lw, c);
	assert_true(c->wt.waiting);
}

/* A busy upstream connection counted against p, as l7_up_get leaves a new one once
 * connected (fd -1: nothing ever reaches the kernel). */
static struct l7_up *up_new(struct l7_worker *lw, struct rm_cb_pool *p, const struct pool_key *k)
{
	struct l7_up *up;
	uint32_t gen, i;

	assert_int_equal(cb_conn_try_open(p), 0);
	/* as up_alloc: a freed slot first, else the next never-used one */
	i = conn_slots_take(&lw->us);
	assert_int_not_equal(i, CONN_SLOT_NONE);
	up = &lw->ups[i];
	gen = up->gen + 1;
	memset(up, 0, sizeof(*up));
	up->gen = gen;
	up->fd = -1;
	up->buf = bufpool_get(&lw->upool);
	assert_non_null(up->buf);
	pool_link_init(&up->link);
	l7_tmr_init(&up->t_idle, L7_T_IDLE);
	up->cbp = p;
	up->cb_counted = true;
	up->key = *k;
	up->state = L7U_BUSY;
	return up;
}

static void up_complete(struct fx *f, int wi, struct l7_up *up, enum ring_op op, int32_t res)
{
	struct l7_worker *lw = f->lw[wi];

	l7_complete(f->w[wi], ring_ud(op, 1, (uint32_t)(up - lw->ups), up->gen), res, 0);
}

static void conn_complete(struct fx *f, int wi, struct l7_conn *c, enum ring_op op, int32_t res)
{
	struct l7_worker *lw = f->lw[wi];

	l7_complete(f->w[wi], ring_ud(op, 0, (uint32_t)(c - lw->conns), c->gen), res, 0);
}

/* The queue of pool slot i from head to tail, checking the back links on the way. */
static size_t queue(struct l7_worker *lw, uint32_t i, struct l7_conn **out, size_t max)
{
	struct l7_conn *prev = NULL;
	size_t n = 0;

	for (struct l7_conn *c = lw->wq_head[i]; c; prev = c, c = c->wt.wnext) {
		assert_ptr_equal(c->wt.wprev, prev);
		assert_true(c->wt.waiting);
		assert_true(n < max);
		out[n++] = c;
	}
	assert_ptr_equal(lw->wq_tail[i], prev);
	return n;
}

static uint64_t want(struct fx *f)
{
	return __atomic_load_n(&f->sh.cb_want[f->slot], __ATOMIC_SEQ_CST);
}

/* ---- pure: who gets a freed slot ---- */

static void test_handoff_target(void **state)
{
	assert_int_equal(l7_cb_handoff_target(0, 0), 64);
	assert_int_equal(l7_cb_handoff_target(1ull << 5, 5), 64); /* only me */
	assert_int_equal(l7_cb_handoff_target(1ull << 3 | 1ull << 10, 5), 10);
	assert_int_equal(l7_cb_handoff_target(1ull << 3 | 1ull << 10, 10), 3); /* wraps */
	assert_int_equal(l7_cb_handoff_target(1ull << 3 | 1ull << 10, 3), 10);
	assert_int_equal(l7_cb_handoff_target(1ull << 0 | 1ull << 62, 63), 0);
	assert_int_equal(l7_cb_handoff_target(1ull << 63 | 1ull << 0, 62), 63);
	assert_int_equal(l7_cb_handoff_target(1ull << 63, 0), 63);
	/* round robin among waiters 1, 2, 3: each hands to the next one */
	assert_int_equal(l7_cb_handoff_target(0xe, 1), 2);
	assert_int_equal(l7_cb_handoff_target(0xe, 2), 3);
	assert_int_equal(l7_cb_handoff_target(0xe, 3), 1);
	assert_int_equal(l7_cb_handoff_target(0xe, 0), 1);
}

/* ---- the pending FIFO ---- */

static void test_fifo_order_and_leave_once(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw[0];
	struct l7_conn *c[4], *q[8];

	for (int i = 0; i < 4; i++)
		c[i] = conn_new(lw, f->p, &f->key);
	assert_int_equal(cb_pending_try_enter(f->p), 0); /* someone else's, all along */
	/* queued in another order than the slots' */
	pend(lw, c[2]);
	pend(lw, c[0]);
	pend(lw, c[3]);
	pend(lw, c[1]);
	assert_int_equal(queue(lw, f->slot, q, 8), 4);
	assert_ptr_equal(q[0], c[2]);
	assert_ptr_equal(q[1], c[0]);
	assert_ptr_equal(q[2], c[3]);
	assert_ptr_equal(q[3], c[1]);
	assert_int_equal(lw->n_waiting, 4);
	assert_int_equal(f->p->pending, 5);
	assert_int_equal(want(f), 1);
	assert_true(l7_tmr_armed(&lw->t_cb)); /* the poll sees capacity freed elsewhere */
	l7_cb_wait(lw, c[0]);		      /* already queued: stays where it is */
	assert_int_equal(queue(lw, f->slot, q, 8), 4);
	assert_ptr_equal(q[1], c[0]);
	/* middle, twice: leaves once */
	l7_cb_wait_leave(lw, c[3]);
	l7_cb_wait_leave(lw, c[3]);
	assert_false(c[3]->wt.waiting);
	assert_int_equal(f->p->pending, 4);
	assert_int_equal(queue(lw, f->slot, q, 8), 3);
	assert_ptr_equal(q[0], c[2]);
	assert_ptr_equal(q[1], c[0]);
	assert_ptr_equal(q[2], c[1]);
	/* head, then tail */
	l7_cb_wait_leave(lw, c[2]);
	assert_int_equal(queue(lw, f->slot, q, 8), 2);
	assert_ptr_equal(q[0], c[0]);
	l7_cb_wait_leave(lw, c[1]);
	assert_int_equal(queue(lw, f->slot, q, 8), 1);
	assert_int_equal(want(f), 1); /* c[0] still waits */
	l7_cb_wait_leave(lw, c[0]);
	assert_int_equal(queue(lw, f->slot, q, 8), 0);
	assert_int_equal(lw->n_waiting, 0);
	assert_int_equal(want(f), 0);
	assert_int_equal(f->p->pending, 1);
	/* re-queued after leaving: at the tail again */
	pend(lw, c[2]);
	pend(lw, c[3]);
	assert_int_equal(queue(lw, f->slot, q, 8), 2);
	assert_ptr_equal(q[0], c[2]);
	/* without a breaker pool there is nothing to wait for */
	c[1]->fw.cbp = NULL;
	l7_cb_wait(lw, c[1]);
	assert_false(c[1]->wt.waiting);
	l7_cb_wait_leave(lw, c[1]);
	assert_int_equal(f->p->pending, 3);
	for (int i = 0; i < 4; i++)
		l7c_abort(lw, c[i]);
	assert_int_equal(f->p->pending, 1);
	assert_int_equal(lw->n_waiting, 0);
}

static void test_queue_first(void **state)
{
	struct fx *f = *state;
	struct l7_conn *c1 = conn_new(f->lw[1], f->p, &f->key);
	struct l7_conn *c0 = conn_new(f->lw[0], f->p, &f->key);

	assert_false(l7_cb_queue_first(f->lw[0], NULL));
	assert_false(l7_cb_queue_first(f->lw[0], f->p)); /* room, nobody waits */
	assert_int_equal(cb_conn_try_open(f->p), 0);	 /* at the limit now */
	assert_false(l7_cb_queue_first(f->lw[0], f->p)); /* at the limit, nobody else waits */
	pend(f->lw[1], c1);
	assert_true(l7_cb_queue_first(f->lw[0], f->p)); /* behind worker 1's waiter */
	assert_true(l7_cb_queue_first(f->lw[1], f->p)); /* behind its own */
	cb_conn_close(f->p); /* below the limit: worker 0 may take a slot itself */
	assert_false(l7_cb_queue_first(f->lw[0], f->p));
	pend(f->lw[0], c0);
	assert_true(l7_cb_queue_first(f->lw[0], f->p)); /* its own waiter first, always */
	l7c_abort(f->lw[0], c0);
	l7c_abort(f->lw[1], c1);
	assert_int_equal(f->p->pending, 0);
	assert_int_equal(want(f), 0);
}

/* ---- wake on release ---- */

static void test_wake_serves_in_order(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw[0];
	struct l7_up *up = up_new(lw, f->p, &f->key); /* the last slot */
	struct l7_conn *c[3], *q[4];

	for (int i = 0; i < 3; i++)
		c[i] = conn_new(lw, f->p, &f->key);
	pend(lw, c[1]);
	pend(lw, c[0]);
	pend(lw, c[2]);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	/* its request done, the connection is parked: that wakes the waiters */
	l7_up_release(lw, up, true);
	assert_int_equal(up->state, L7U_IDLE);
	assert_true(lw->n_kicked > 0);
	l7_cb_run_kicks(lw);
	/* the first waiter has it; the next finds no connection and stays first */
	assert_ptr_equal(c[1]->fw.up, up);
	assert_ptr_equal(up->owner, c[1]);
	assert_int_equal(up->state, L7U_BUSY);
	assert_false(c[1]->wt.waiting);
	assert_true(c[1]->fw.usend_busy); /* its head went to the upstream */
	assert_int_equal(queue(lw, f->slot, q, 4), 2);
	assert_ptr_equal(q[0], c[0]);
	assert_ptr_equal(q[1], c[2]);
	assert_int_equal(f->p->pending, 2);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	/* the client of c[1] goes away: the connection closes once its ops are back */
	l7c_abort(lw, c[1]);
	assert_int_equal(up->state, L7U_CLOSING);
	assert_int_equal(conns(f), BASE_CONNS + 1); /* the socket is not closed yet */
	conn_complete(f, 0, c[1], RING_OP_L7_USEND, -ECANCELED);
	assert_int_equal(c[1]->state, L7C_FREE);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	up_complete(f, 0, up, RING_OP_L7_URECV, -ECANCELED);
	assert_int_equal(up->state, L7U_FREE);
	assert_int_equal(conns(f), BASE_CONNS);
	/* the freed slot wakes the rest, in order; their connections cannot be made
	 * here (no address family), and each failed one gives its slot back once */
	assert_true(lw->n_kicked > 0);
	l7_cb_run_kicks(lw);
	assert_int_equal(queue(lw, f->slot, q, 4), 0);
	for (int i = 0; i < 3; i += 2) {
		assert_int_equal(c[i]->mt.status, 503);
		assert_true(c[i]->mt.sflags & L7_FLAG(RM_STATS_F_UF));
		assert_int_equal(c[i]->state, L7C_REPLY);
	}
	assert_int_equal(f->p->pending, 0);
	assert_int_equal(conns(f), BASE_CONNS);
	assert_int_equal(want(f), 0);
}

/* ---- giving up while pending ---- */

static void test_route_timeout_and_abort_leave_once(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw[0];
	struct l7_conn *a = conn_new(lw, f->p, &f->key), *b = conn_new(lw, f->p, &f->key);
	struct l7_conn *q[4];

	pend(lw, a);
	pend(lw, b);
	assert_int_equal(cb_request_try_start(f->p, NULL), 0);
	a->fw.cb_req = true;
	assert_int_equal(l7_tmr_arm(&lw->th, &a->t_route, 1), 0);
	/* the route timeout fires (t_cb is armed on the real clock, far later) */
	l7_tick(f->w[0], 2);
	assert_int_equal(a->mt.status, 504);
	assert_true(a->mt.sflags & L7_FLAG(RM_STATS_F_UT));
	assert_false(a->wt.waiting);
	assert_int_equal(f->p->pending, 1);
	assert_int_equal(f->p->requests, 0);
	assert_int_equal(queue(lw, f->slot, q, 4), 1);
	assert_ptr_equal(q[0], b);
	/* and then the client goes away: nothing is given back twice */
	l7c_abort(lw, a);
	assert_int_equal(f->p->pending, 1);
	assert_int_equal(f->p->requests, 0);
	/* the worker stops with a request still pending */
	l7_abort_all(f->w[0]);
	assert_int_equal(b->state, L7C_FREE);
	assert_int_equal(f->p->pending, 0);
	assert_int_equal(lw->n_waiting, 0);
	assert_int_equal(want(f), 0);
}

/* ---- slots handed across workers ---- */

static void test_handoff_none_and_idle(void **state)
{
	struct fx *f = *state;
	struct l7_worker *w0 = f->lw[0], *w1 = f->lw[1];
	struct l7_up *u0 = up_new(w0, f->p, &f->key);
	struct l7_conn *c = conn_new(w1, f->p, &f->key), *d;
	struct l7_up *u1;

	pend(w1, c);
	assert_int_equal(want(f), 2);
	/* worker 0's connection is done: its slot goes to worker 1, not to the pool */
	l7_up_release(w0, u0, true);
	assert_int_equal(u0->state, L7U_FREE);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 1);
	assert_int_equal(conns(f), BASE_CONNS + 1); /* still counted: worker 1's now */
	assert_true(l7_cb_queue_first(w0, f->p));   /* new requests of worker 0 queue behind */
	/* worker 1's poll: the slot is used; the connection cannot be made (no address
	 * family), so the slot is given back, once */
	l7_cb_on_timer(w1, 0);
	assert_false(c->wt.waiting);
	assert_int_equal(c->mt.status, 503);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 0);
	assert_int_equal(conns(f), BASE_CONNS);
	assert_int_equal(f->p->pending, 0);
	assert_int_equal(want(f), 0);

	/* worker 1 has an idle connection to the host when the handed slot arrives: it
	 * serves the request, and the handed slot is given back */
	u1 = up_new(w1, f->p, &f->key);
	l7_up_release(w1, u1, true);
	assert_int_equal(u1->state, L7U_IDLE);
	d = conn_new(w1, f->p, &f->key);
	pend(w1, d);
	f->p->lim.max_connections = BASE_CONNS + 2;
	u0 = up_new(w0, f->p, &f->key);
	l7_up_release(w0, u0, false);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 1);
	assert_int_equal(conns(f), BASE_CONNS + 2);
	l7_cb_on_timer(w1, 0);
	assert_ptr_equal(d->fw.up, u1);
	assert_int_equal(u1->state, L7U_BUSY);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 0);
	assert_int_equal(conns(f), BASE_CONNS + 1); /* u1 only */
	assert_int_equal(w1->idle_by[f->slot], 0);
	l7c_abort(w1, d);
	conn_complete(f, 1, d, RING_OP_L7_USEND, -ECANCELED);
	up_complete(f, 1, u1, RING_OP_L7_URECV, -ECANCELED);
	assert_int_equal(u1->state, L7U_FREE);
	assert_int_equal(conns(f), BASE_CONNS);
}

static void test_handoff_drained_when_waiters_leave(void **state)
{
	struct fx *f = *state;
	struct l7_worker *w0 = f->lw[0], *w1 = f->lw[1];
	struct l7_conn *a = conn_new(w1, f->p, &f->key), *b = conn_new(w1, f->p, &f->key);
	struct l7_up *u = up_new(w0, f->p, &f->key);

	pend(w1, a);
	pend(w1, b);
	l7_up_release(w0, u, false);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 1);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	l7c_abort(w1, a); /* b still waits: the slot stays handed */
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 1);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	l7c_abort(w1, b); /* nobody wants it: closed, once */
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 0);
	assert_int_equal(conns(f), BASE_CONNS);
	assert_int_equal(want(f), 0);
	assert_int_equal(f->p->pending, 0);
	/* nobody waits elsewhere: a release closes the slot itself */
	u = up_new(w0, f->p, &f->key);
	l7_up_release(w0, u, false);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 0);
	assert_int_equal(conns(f), BASE_CONNS);
}

/* A worker stops waiting between the handoff's look at cb_want and its count: the
 * slot must not be stranded in cb_handoff. */
static void test_handoff_to_stopped_waiter(void **state)
{
	struct fx *f = *state;
	struct l7_conn *c = conn_new(f->lw[1], f->p, &f->key);

	assert_int_equal(cb_conn_try_open(f->p), 0);
	/* worker 1 waits: the slot is counted for it and stays open */
	pend(f->lw[1], c);
	l7_cb_handoff_to(&f->sh, f->p, f->slot, 1);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 1);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	/* it stopped waiting (and drained) before the count: the slot is closed */
	l7c_abort(f->lw[1], c);
	assert_int_equal(conns(f), BASE_CONNS);
	assert_int_equal(cb_conn_try_open(f->p), 0);
	l7_cb_handoff_to(&f->sh, f->p, f->slot, 1);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 0);
	assert_int_equal(conns(f), BASE_CONNS);
}

struct race {
	struct fx *f;
	struct l7_conn *c;
	int stop;
	unsigned long taken, handed, bad, rounds;
};

/* Worker 1: waits, sometimes uses a handed slot (then closes it), stops waiting. */
static void *race_waiter(void *arg)
{
	struct race *r = arg;
	struct l7_worker *lw = r->f->lw[1];

	while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
		if (cb_pending_try_enter(r->c->fw.cbp))
			r->bad++; /* no cmocka assertions off the test's thread */
		l7_cb_wait(lw, r->c);
		if (l7_cb_take_handoff(lw, r->f->slot)) {
			r->taken++;
			cb_conn_close(r->f->p);
		}
		l7_cb_wait_leave(lw, r->c);
		__atomic_fetch_add(&r->rounds, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void test_handoff_race(void **state)
{
	struct fx *f = *state;
	struct race r = {f, conn_new(f->lw[1], f->p, &f->key), 0, 0, 0, 0, 0};
	pthread_t t;

	f->p->lim.max_connections = RM_CFG_UNLIMITED;
	assert_int_equal(pthread_create(&t, NULL, race_waiter, &r), 0);
	/* worker 0 opens and closes connections; a closing one goes to worker 1 while
	 * it waits, and back to the pool when it stopped waiting meanwhile */
	while (!want(f) && !__atomic_load_n(&r.rounds, __ATOMIC_SEQ_CST))
		sched_yield();
	for (int i = 0;
	     i < 2000000 && (i < 200000 || __atomic_load_n(&r.rounds, __ATOMIC_SEQ_CST) < 20000);
	     i++) {
		assert_int_equal(cb_conn_try_open(f->p), 0);
		if (l7_cb_handoff(f->lw[0], f->p))
			r.handed++;
		else
			cb_conn_close(f->p);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	print_message("handed %lu, taken by the waiter %lu, waits %lu\n", r.handed, r.taken,
		      r.rounds);
	assert_int_equal(r.bad, 0);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 0);
	assert_int_equal(conns(f), BASE_CONNS);
	assert_int_equal(f->p->pending, 0);
	assert_int_equal(want(f), 0);
}

/* ---- an upstream connection gives its slot back exactly once ---- */

static void test_up_close_paths(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw[0];
	struct sockaddr_storage none;
	struct l7_up *u;
	int err = 0;

	f->p->lim.max_connections = BASE_CONNS + 4;
	/* done, not reusable, nothing in flight */
	u = up_new(lw, f->p, &f->key);
	l7_up_release(lw, u, false);
	assert_int_equal(u->state, L7U_FREE);
	assert_int_equal(conns(f), BASE_CONNS);
	/* a client send from its buffer still in flight: the slot waits for it */
	u = up_new(lw, f->p, &f->key);
	u->ext = 1;
	l7_up_release(lw, u, true);
	assert_int_equal(u->state, L7U_CLOSING);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	l7_up_ext_put(lw, u);
	assert_int_equal(u->state, L7U_FREE);
	assert_int_equal(conns(f), BASE_CONNS);
	/* parked, then the idle timeout (the pending recv comes back cancelled); a late
	 * duplicate completion changes nothing. The timeout is 0 so that the tick pops
	 * it before the breaker poll, which re-arms itself on the real clock. */
	f->sh.o.idle_timeout_ms = 0;
	u = up_new(lw, f->p, &f->key);
	l7_up_release(lw, u, true);
	assert_int_equal(u->state, L7U_IDLE);
	assert_int_equal(lw->idle_by[f->slot], 1);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	l7_tick(f->w[0], mono_ns());
	f->sh.o.idle_timeout_ms = L7_DEF_IDLE_MS;
	assert_int_equal(u->state, L7U_CLOSING);
	assert_int_equal(lw->idle_by[f->slot], 0);
	up_complete(f, 0, u, RING_OP_L7_URECV, -ECANCELED);
	assert_int_equal(u->state, L7U_FREE);
	assert_int_equal(conns(f), BASE_CONNS);
	up_complete(f, 0, u, RING_OP_L7_URECV, -ECANCELED);
	assert_int_equal(conns(f), BASE_CONNS);
	/* parked, then the server closes it */
	u = up_new(lw, f->p, &f->key);
	l7_up_release(lw, u, true);
	up_complete(f, 0, u, RING_OP_L7_URECV, 0);
	assert_int_equal(u->state, L7U_FREE);
	assert_int_equal(conns(f), BASE_CONNS);
	/* parked, then the worker stops */
	u = up_new(lw, f->p, &f->key);
	l7_up_release(lw, u, true);
	l7_abort_all(f->w[0]);
	up_complete(f, 0, u, RING_OP_L7_URECV, -ECANCELED);
	assert_int_equal(u->state, L7U_FREE);
	assert_int_equal(conns(f), BASE_CONNS);
	/* connecting, refused: the link timeout's completion is the last op */
	u = up_new(lw, f->p, &f->key);
	u->state = L7U_CONNECTING;
	u->inflight = 2;
	up_complete(f, 0, u, RING_OP_L7_UCONN, -ECONNREFUSED);
	assert_int_equal(u->state, L7U_CLOSING);
	assert_int_equal(conns(f), BASE_CONNS + 1);
	up_complete(f, 0, u, RING_OP_L7_UCONN_TO, -ECANCELED);
	assert_int_equal(u->state, L7U_FREE);
	assert_int_equal(conns(f), BASE_CONNS);
	/* no socket for the address: admitted, then given back at once */
	memset(&none, 0, sizeof(none));
	assert_null(l7_up_get(lw, &f->key, &none, sizeof(none), NULL, f->p, &err));
	assert_int_equal(err, -EAFNOSUPPORT);
	assert_int_equal(conns(f), BASE_CONNS);
	/* at the limit: not admitted, nothing counted */
	f->p->lim.max_connections = BASE_CONNS;
	err = 0;
	assert_null(l7_up_get(lw, &f->key, &none, sizeof(none), NULL, f->p, &err));
	assert_int_equal(err, -EAGAIN);
	assert_int_equal(conns(f), BASE_CONNS);
}

/* Idle connections of a pool whose requests wait in another worker: one goes per poll,
 * and its slot to the waiting worker. */
static void test_up_idle_yield_hands_over(void **state)
{
	struct fx *f = *state;
	struct l7_worker *w0 = f->lw[0], *w1 = f->lw[1];
	struct l7_up *a = up_new(w0, f->p, &f->key);
	struct l7_up *b;
	struct l7_conn *c = conn_new(w1, f->p, &f->key);

	f->p->lim.max_connections = BASE_CONNS + 2;
	b = up_new(w0, f->p, &f->key);
	l7_up_release(w0, a, true);
	l7_up_release(w0, b, true);
	assert_int_equal(w0->idle_by[f->slot], 2);
	assert_int_equal(conns(f), BASE_CONNS + 2);
	pend(w1, c);
	l7_cb_on_timer(w0, 0);
	assert_int_equal(w0->idle_by[f->slot], 1); /* one per poll */
	assert_int_equal(w0->n_idle_cb, 1);
	up_complete(f, 0, a->state == L7U_CLOSING ? a : b, RING_OP_L7_URECV, -ECANCELED);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 1);
	assert_int_equal(conns(f), BASE_CONNS + 2);
	/* a parked connection asked for by a waiter elsewhere goes the same way */
	l7_cb_free_idle(w0, f->p);
	assert_int_equal(w0->idle_by[f->slot], 0);
	up_complete(f, 0, a->state == L7U_CLOSING ? a : b, RING_OP_L7_URECV, -ECANCELED);
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 2);
	assert_int_equal(conns(f), BASE_CONNS + 2);
	l7c_abort(w1, c); /* the waiter gives up: both handed slots close */
	assert_int_equal(f->sh.cb_handoff[f->slot][1], 0);
	assert_int_equal(conns(f), BASE_CONNS);
	assert_int_equal(a->state, L7U_FREE);
	assert_int_equal(b->state, L7U_FREE);
}

/* The same with --breaker-pools 1024: every array the workers keep per pool slot
 * follows the map's size. */
static int fx_setup_sized(void **state)
{
	int r;

	fx_pools = 1024;
	r = fx_setup(state);
	fx_pools = 0;
	assert_true(((struct fx *)*state)->slot >= RM_CB_POOLS);
	assert_int_equal(((struct fx *)*state)->lw[0]->cb_pools, 1024);
	return r;
}

/* The poll walks the pools with waiters or idle connections (act), no others. */
static void test_poll_walks_active_pools(void **state)
{
	struct fx *f = *state;
	struct l7_worker *w0 = f->lw[0], *w1 = f->lw[1];
	struct l7_up *a = up_new(w0, f->p, &f->key);
	struct l7_conn *c = conn_new(w1, f->p, &f->key);

	assert_int_equal(w0->n_act, 0);
	l7_up_release(w0, a, true);
	assert_int_equal(w0->n_act, 1);
	assert_int_equal(w0->act[0], f->slot);
	assert_int_equal(w0->act_pos[f->slot], 1);
	assert_int_equal(w1->n_act, 0);
	pend(w1, c);
	assert_int_equal(w1->n_act, 1);
	assert_int_equal(w1->act[0], f->slot);
	/* the poll finds the idle one while a request waits elsewhere, and it goes */
	l7_cb_on_timer(w0, 0);
	assert_int_equal(w0->idle_by[f->slot], 0);
	assert_int_equal(w0->n_act, 0);
	assert_int_equal(w0->act_pos[f->slot], 0);
	up_complete(f, 0, a, RING_OP_L7_URECV, -ECANCELED);
	l7c_abort(w1, c);
	assert_int_equal(w1->n_act, 0);
	assert_int_equal(w1->act_pos[f->slot], 0);
	assert_int_equal(conns(f), BASE_CONNS);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
#define B(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_sized, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handoff_target),
	    T(test_fifo_order_and_leave_once),
	    T(test_queue_first),
	    T(test_wake_serves_in_order),
	    T(test_route_timeout_and_abort_leave_once),
	    T(test_handoff_none_and_idle),
	    T(test_handoff_drained_when_waiters_leave),
	    T(test_handoff_to_stopped_waiter),
	    T(test_handoff_race),
	    T(test_up_close_paths),
	    T(test_up_idle_yield_hands_over),
	    T(test_poll_walks_active_pools),
	    B(test_fifo_order_and_leave_once),
	    B(test_queue_first),
	    B(test_wake_serves_in_order),
	    B(test_route_timeout_and_abort_leave_once),
	    B(test_handoff_none_and_idle),
	    B(test_handoff_drained_when_waiters_leave),
	    B(test_handoff_to_stopped_waiter),
	    B(test_handoff_race),
	    B(test_up_close_paths),
	    B(test_up_idle_yield_hands_over),
	    B(test_poll_walks_active_pools),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
