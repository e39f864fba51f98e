/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Buffer blocks of L7 client connections (l7.c, l7_http.c): an idle keep-alive
 * connection holds no block, the first bytes of a request arrive in a provided
 * buffer and move into a borrowed block, the block goes back when the response is
 * out and nothing is pending, a connection finding the pool empty waits without
 * reading (counted) and is served in order when a block comes back, and a client
 * that does not read its response holds one block while the others go on.
 *
 * Driven without traffic, as test_l7_cb.c: a real l7 worker on a real io_uring with
 * its provided-buffer group registered, whose SQEs are prepared but never
 * submitted; the test plays the kernel (writes a request into a provided buffer,
 * completes recvs and sends through l7_complete). No configuration is published, so
 * every request gets the local 404 reply (no route), a whole exchange on its own.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "common/zipkin.h"
#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/l7_int.h"
#include "ringmeshd/ring.h"
#include "l7_fx.h"

#define NCONN 128
#define NBLOCKS 2 /* the pool: fewer blocks than connections */

static const char req[] = "GET / HTTP/1.1\r\nhost: svc\r\n\r\n";

struct fx {
	struct cfgw cw;
	struct l7_shared sh;
	struct ring_worker *w;
	struct l7_worker *lw;
	uint16_t next_pb; /* the provided buffer the "kernel" fills next */
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ring_worker *w;
	char err[256];

	assert_non_null(f);
	assert_int_equal(cfgw_init(&f->cw, 1, err, sizeof(err)), 0);
	f->sh.cw = &f->cw;
	f->sh.o.req_bufs = NBLOCKS;
	l7_opts_fill(&f->sh.o);
	w = l7fx_worker_new(&f->sh, NCONN, 0, 1024);
	if (!w) {
		cfgw_fini(&f->cw);
		free(f);
		skip();	  /* io_uring disabled: nothing here can run */
		return 0; /* skip() does not return */
	}
	if (l7_ring_setup(w)) {
		l7fx_worker_free(w);
		cfgw_fini(&f->cw);
		free(f);
		skip(); /* no provided-buffer rings (kernel < 5.19) */
	}
	f->w = w;
	f->lw = l7w(w);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	l7_abort_all(f->w);
	l7fx_worker_free(f->w);
	cfgw_fini(&f->cw);
	free(f);
	return 0;
}

/* An accepted client connection (the socket: one end of a socket pair), in the slot
 * l7c_alloc chose: a free one, else the next never used. */
static struct l7_conn *conn_open(struct fx *f)
{
	struct l7_worker *lw = f->lw;
	uint32_t slot = lw->cs.n_free ? lw->cs.stack[lw->cs.n_free - 1] : lw->cs.used;
	struct conn_admit a;
	int sv[2];

	memset(&a, 0, sizeof(a));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	a.fd = sv[0];
	assert_int_equal(l7_accept(f->w, &a, -1), 0);
	assert_int_not_equal(lw->conns[slot].state, L7C_FREE);
	return &lw->conns[slot];
}

static void complete(struct fx *f, struct l7_conn *c, enum ring_op op, int32_t res, uint32_t flags)
{
	l7_complete(f->w, ring_ud(op, 0, (uint32_t)(c - f->lw->conns), c->gen), res, flags);
}

/* The kernel: a request's bytes arrive for c's recv, which selects a provided buffer. */
static void request_arrives(struct fx *f, struct l7_conn *c)
{
	uint16_t bid = f->next_pb++ % L7_PB_COUNT;

	assert_true(c->cl.crecv_busy);
	assert_null(c->cl.mem); /* idle: the recv selects, it has no buffer of its own */
	memcpy(l7_pb_data(f->lw, bid), req, sizeof(req) - 1);
	complete(f, c, RING_OP_L7_CRECV, (int32_t)sizeof(req) - 1,
		 IORING_CQE_F_BUFFER | (uint32_t)bid << IORING_CQE_BUFFER_SHIFT);
}

/* The kernel: c's client sends go out whole until its queue is empty. */
static void reply_sent(struct fx *f, struct l7_conn *c)
{
	assert_true(c->cl.csend_busy);
	while (c->cl.csend_busy) {
		uint32_t n = c->cl.cq[c->cl.cq_i].len - c->cl.cq_off;

		complete(f, c, RING_OP_L7_CSEND, (int32_t)n, 0);
	}
}

/* After a whole exchange: kept alive, idle, no block, the next recv armed. */
static void assert_idle(struct l7_conn *c)
{
	assert_int_equal(c->state, L7C_HEAD);
	assert_null(c->cl.mem);
	assert_false(c->cl.mem_wait);
	assert_int_equal(c->cl.clen, 0);
	assert_true(c->cl.crecv_busy);
}

static void test_idle_holds_no_block(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	struct l7_conn *c = conn_open(f);

	assert_idle(c);
	assert_int_equal(lw->cpool.used, 0);
	for (int i = 0; i < 5; i++) {
		request_arrives(f, c);
		/* the bytes moved into a block, the provided buffer went back at once */
		assert_non_null(c->cl.mem);
		assert_int_equal(lw->cpool.used, 1);
		assert_int_equal(lw->pb_held, 0);
		assert_int_equal(c->state, L7C_REPLY);
		assert_int_equal(c->mt.status, 404);
		reply_sent(f, c);
		assert_idle(c);
		assert_int_equal(lw->cpool.used, 0);
	}
	assert_int_equal(lw->cpool.gets, 5);
	assert_int_equal(f->w->stats.enobufs, 0);
}

static void test_exhaustion_waits_in_order(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	struct l7_conn *c[4];

	for (int i = 0; i < 4; i++)
		c[i] = conn_open(f);
	request_arrives(f, c[0]);
	request_arrives(f, c[1]);
	assert_int_equal(lw->cpool.used, NBLOCKS);
	/* no block left: c2 and c3 keep their bytes in provided buffers and stop reading */
	request_arrives(f, c[2]);
	request_arrives(f, c[3]);
	for (int i = 2; i < 4; i++) {
		assert_true(c[i]->cl.mem_wait);
		assert_true(c[i]->cl.pb_held);
		assert_null(c[i]->cl.mem);
		assert_false(c[i]->cl.crecv_busy);
		assert_int_equal(c[i]->state, L7C_HEAD);
	}
	assert_int_equal(lw->pb_held, 2);
	assert_int_equal(f->w->stats.enobufs, 2);
	assert_int_equal(lw->cpool.exhausted, 2);
	/* nothing comes back yet: a tick serves no one */
	l7_tick(f->w, mono_ns());
	assert_true(c[2]->cl.mem_wait);
	/* c1 finishes: its block goes to the first waiter at the end of the pass */
	reply_sent(f, c[1]);
	assert_idle(c[1]);
	assert_true(c[2]->cl.mem_wait);
	l7_tick(f->w, mono_ns());
	assert_false(c[2]->cl.mem_wait);
	assert_non_null(c[2]->cl.mem);
	assert_int_equal(c[2]->state, L7C_REPLY); /* its held bytes were parsed */
	assert_true(c[3]->cl.mem_wait);		  /* still waiting: FIFO */
	assert_int_equal(lw->pb_held, 1);
	reply_sent(f, c[0]);
	l7_tick(f->w, mono_ns());
	assert_false(c[3]->cl.mem_wait);
	assert_int_equal(c[3]->state, L7C_REPLY);
	assert_int_equal(lw->pb_held, 0);
	reply_sent(f, c[2]);
	reply_sent(f, c[3]);
	for (int i = 0; i < 4; i++)
		assert_idle(c[i]);
	assert_int_equal(lw->cpool.used, 0);
}

/* A recv that found no provided buffer (-ENOBUFS): the bytes stay in the socket, and
 * the connection reads them into a block of its own (or waits for one). */
static void test_no_provided_buffer(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	struct l7_conn *a = conn_open(f), *b = conn_open(f), *c = conn_open(f);

	complete(f, a, RING_OP_L7_CRECV, -ENOBUFS, 0);
	assert_non_null(a->cl.mem);
	assert_true(a->cl.crecv_busy); /* a direct recv into the block */
	memcpy(a->cl.cbuf, req, sizeof(req) - 1);
	complete(f, a, RING_OP_L7_CRECV, (int32_t)sizeof(req) - 1, 0);
	assert_int_equal(a->state, L7C_REPLY);
	request_arrives(f, b);
	/* pool empty now: c's -ENOBUFS makes it wait without a provided buffer */
	complete(f, c, RING_OP_L7_CRECV, -ENOBUFS, 0);
	assert_true(c->cl.mem_wait);
	assert_false(c->cl.pb_held);
	assert_false(c->cl.crecv_busy);
	reply_sent(f, a);
	l7_tick(f->w, mono_ns());
	assert_false(c->cl.mem_wait);
	assert_non_null(c->cl.mem);
	assert_true(c->cl.crecv_busy);
	reply_sent(f, b);
	assert_int_equal(lw->cpool.used, 1); /* c's */
	assert_int_equal(f->w->stats.enobufs, 3);
}

/* A client that never reads its response pins its own block, never the pool: the
 * others keep being served through the remaining one. */
static void test_slow_reader_does_not_pin(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	struct l7_conn *slow = conn_open(f), *o[3];

	for (int i = 0; i < 3; i++)
		o[i] = conn_open(f);
	request_arrives(f, slow);
	assert_true(slow->cl.csend_busy); /* its reply is stuck in the send */
	for (int round = 0; round < 30; round++) {
		struct l7_conn *c = o[round % 3];

		request_arrives(f, c);
		assert_int_equal(lw->cpool.used, 2);
		assert_int_equal(c->state, L7C_REPLY);
		reply_sent(f, c);
		assert_idle(c);
		assert_int_equal(lw->cpool.used, 1);
	}
	assert_int_equal(f->w->stats.enobufs, 0);
	assert_non_null(slow->cl.mem);
	/* it leaves (its send fails): the block comes back */
	complete(f, slow, RING_OP_L7_CSEND, -EPIPE, 0);
	assert_int_equal(lw->cpool.used, 0);
	assert_int_equal(slow->state, L7C_FREE);
}

/* A closing connection's buffers go back: a block, a held provided buffer, its
 * place in the FIFO, and a provided buffer a stale completion carries. */
static void test_close_gives_back(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	struct l7_conn *c[3];
	uint32_t slot, gen;

	for (int i = 0; i < 3; i++)
		c[i] = conn_open(f);
	request_arrives(f, c[0]);
	request_arrives(f, c[1]);
	request_arrives(f, c[2]);
	assert_true(c[2]->cl.mem_wait);
	assert_int_equal(lw->pb_held, 1);
	l7c_abort(lw, c[2]);
	assert_int_equal(c[2]->state, L7C_FREE);
	assert_int_equal(lw->pb_held, 0);
	assert_null(lw->mw_head);
	l7c_abort(lw, c[0]);
	complete(f, c[0], RING_OP_L7_CSEND, -ECANCELED, 0);
	assert_int_equal(c[0]->state, L7C_FREE);
	assert_int_equal(lw->cpool.used, 1);
	/* the closed slot's recv completes late with a buffer: given back */
	slot = (uint32_t)(c[0] - lw->conns);
	gen = c[0]->gen;
	l7_complete(f->w, ring_ud(RING_OP_L7_CRECV, 0, slot, gen), 10,
		    IORING_CQE_F_BUFFER | 3u << IORING_CQE_BUFFER_SHIFT);
	assert_int_equal(lw->pb_held, 0);
}

/* A slot's span buffer (l7_span.c: allocated at its first sampled request) is kept
 * for the slot's next connections, not dropped (and leaked) when the slot is taken
 * again; the worker's fini frees it. */
static void test_span_buffer_kept_with_slot(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	struct l7_conn *c = conn_open(f);
	struct zipkin_span *zk = malloc(sizeof(*zk));
	uint32_t slot = (uint32_t)(c - lw->conns);

	assert_non_null(zk);
	c->zk = zk; /* as l7c_span_begin leaves it */
	l7c_abort(lw, c);
	complete(f, c, RING_OP_L7_CRECV, -ECANCELED, 0); /* its armed recv ends */
	assert_int_equal(c->state, L7C_FREE);
	c = conn_open(f);
	assert_int_equal((uint32_t)(c - lw->conns), slot);
	assert_ptr_equal(c->zk, zk);
}

/* Resident pages among the whole pages of conns[from, to). */
static size_t conns_resident(struct l7_worker *lw, uint32_t from, uint32_t to)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)&lw->conns[from] + page - 1) & ~(page - 1);
	uintptr_t b = (uintptr_t)&lw->conns[to] & ~(page - 1);
	unsigned char v[256];
	size_t r = 0;

	assert_true(b > a && (b - a) / page <= sizeof(v));
	assert_int_equal(mincore((void *)a, b - a, v), 0);
	for (size_t i = 0; i < (b - a) / page; i++)
		r += v[i] & 1;
	return r;
}

/* After a crowd of connections closes, the pages that hold only free slots go back
 * to the kernel, wherever they are (a connection still open at a high slot does not
 * keep the ones below it); a slot whose page was dropped works again when taken. */
static void test_closed_slots_trimmed(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	struct l7_conn *c[100], *n;
	uint64_t now = mono_ns();

	for (int i = 0; i < 100; i++) {
		c[i] = conn_open(f);
		request_arrives(f, c[i]); /* each took a block for a moment */
		reply_sent(f, c[i]);
	}
	assert_int_equal(lw->cs.used, 100);
	assert_true(conns_resident(lw, 2, 49) > 0);
	assert_true(conns_resident(lw, 52, 99) > 0);
	l7_tick(f->w, now);
	assert_true(conns_resident(lw, 52, 99) > 0); /* all open: nothing to trim */
	for (int i = 0; i < 99; i++) {
		if (i == 0 || i == 50)
			continue;
		l7c_abort(lw, c[i]);
		complete(f, c[i], RING_OP_L7_CRECV, -ECANCELED, 0); /* the cancelled recv */
		assert_int_equal(c[i]->state, L7C_FREE);
	}
	now += 2000ull * 1000000ull;
	l7_tick(f->w, now);
	assert_int_equal(lw->cs.live, 3);
	assert_int_equal(conns_resident(lw, 2, 49), 0);
	assert_int_equal(conns_resident(lw, 52, 98), 0);
	for (int i = 0; i < 100; i += 50) {
		assert_int_equal(c[i]->state, L7C_HEAD); /* the open ones are untouched */
		assert_true(c[i]->cl.crecv_busy);
	}
	assert_int_equal(c[99]->state, L7C_HEAD);
	/* the last freed first (LIFO); a slot deep in a dropped run starts over from zero
	 * (its generation too) and works */
	n = conn_open(f);
	assert_ptr_equal(n, c[98]);
	while (n != c[20])
		n = conn_open(f);
	assert_int_equal(n->gen, 1);
	request_arrives(f, n);
	reply_sent(f, n);
	assert_idle(n);
	/* the pools follow their demand down as well (at least the kept blocks stay) */
	now += 2000ull * 1000000ull;
	l7_tick(f->w, now);
	assert_true(bufpool_warm(&lw->cpool) <= NBLOCKS);
}

/* Resident pages of the provided buffers. */
static size_t pbufs_resident(struct l7_worker *lw)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = lw->pbufs_bytes / page, r = 0;
	unsigned char *v = calloc(n, 1);

	assert_non_null(v);
	assert_int_equal(mincore(lw->pbufs, n * page, v), 0);
	for (size_t i = 0; i < n; i++)
		r += v[i] & 1;
	free(v);
	return r;
}

/* The provided buffers' pages go back once a whole trim period passed without a
 * request filling one, not at every trim that finds no request under way (a single
 * connection between two requests): a steady load keeps them resident. */
static void test_provided_buffers_trimmed_when_idle(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	struct l7_conn *c = conn_open(f);
	uint64_t now = mono_ns();

	f->w->ring_flags |= IORING_SETUP_DEFER_TASKRUN; /* filled by this thread alone */
	for (int period = 0; period < 3; period++) {
		/* a request in every period, none under way at the trim */
		request_arrives(f, c);
		reply_sent(f, c);
		assert_idle(c);
		now += 1100ull * 1000000ull;
		l7_tick(f->w, now);
		assert_int_equal(lw->pb_held, 0);
		assert_true(pbufs_resident(lw) >= (size_t)period + 1);
	}
	/* a period without requests: the next trim drops them */
	now += 1100ull * 1000000ull;
	l7_tick(f->w, now);
	assert_int_equal(pbufs_resident(lw), 0);
	assert_false(lw->pb_dirty);
	/* and a buffer whose page was dropped serves the next request */
	request_arrives(f, c);
	reply_sent(f, c);
	assert_idle(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_idle_holds_no_block, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_exhaustion_waits_in_order, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_no_provided_buffer, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_slow_reader_does_not_pin, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_close_gives_back, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_span_buffer_kept_with_slot, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_closed_slots_trimmed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_provided_buffers_trimmed_when_idle, fx_setup,
					    fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
