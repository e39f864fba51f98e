/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The bounds of shadow requests (l7_mirror.c): a request whose route drew a mirror
 * gets a copy only when a mirror slot and a block of the worker's mirror pool are
 * free (--max-mirrors) and the shadow head fits beside a kept body; otherwise it is
 * skipped, counted by reason, and whatever the attempt took (slot, block,
 * configuration hold) is given back at once. A streamed body follows the shadow
 * through its block and a bounded backlog: appended, sent on, and the shadow dropped
 * (backlog, block and slot back, the primary untouched) when it is past its bounds or
 * its primary ends before the body does. Driven as test_l7_mem.c: a real l7
 * worker on a real io_uring whose SQEs are never submitted, and no configuration
 * published (the mirror service has no endpoint: "no_healthy_upstream").
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/l7_int.h"
#include "ringmeshd/ring.h"
#include "ringmeshd/stats_w.h"
#include "l7_fx.h"

#define NCONN 16
#define NMIR 2 /* --max-mirrors */

static _Alignas(64) unsigned char smem[RM_STATS_BYTES(16, 32)];

struct fx {
	struct cfgw cw;
	struct l7_shared sh;
	struct stats_w sw;
	struct ring_worker *w;
	struct l7_worker *lw;
	struct l7_conn *c;
};

static const char head[] = "POST /post HTTP/1.1\r\nHost: httpbin:8000\r\nContent-Length: 4\r\n\r\n";

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ring_worker *w;
	char err[256];

	assert_non_null(f);
	assert_int_equal(cfgw_init(&f->cw, 1, err, sizeof(err)), 0);
	memset(smem, 0, sizeof(smem));
	stats_w_attach(&f->sw, smem, 16, 32, 1);
	f->sh.cw = &f->cw;
	f->sh.stats = &f->sw;
	f->sh.o.max_mirrors = NMIR;
	l7_opts_fill(&f->sh.o);
	w = l7fx_worker_new(&f->sh, NCONN, 0, 64);
	if (!w) {
		cfgw_fini(&f->cw);
		free(f);
		skip();	  /* io_uring disabled: nothing here can run */
		return 0; /* skip() does not return */
	}
	f->w = w;
	f->lw = l7w(w);
	/* a request as l7c_dispatch leaves it: its upstream head built, a kept body */
	f->c = l7c_alloc(f->lw);
	assert_non_null(f->c);
	assert_int_equal(l7c_mem_get(f->lw, f->c), 0);
	memcpy(f->c->cl.obuf, head, sizeof(head) - 1);
	f->c->fw.olen = sizeof(head) - 1;
	memcpy(f->c->cl.cbuf, "abcd", 4);
	f->c->rq.head_len = 0;
	f->c->rq.req_end = 4;
	f->c->rq.bmode = L7_BM_KEPT;
	f->c->fw.cfg = f->lw->cur;
	assert_non_null(f->c->fw.cfg);
	f->c->fw.d.mirror = true;
	f->c->fw.d.mirror_service = 0;
	f->c->fw.d.mirror_subset = RM_CFG_NONE;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	f->c->fw.cfg = NULL;
	l7c_free(f->lw, f->c);
	l7fx_worker_free(f->w);
	cfgw_fini(&f->cw);
	free(f);
	return 0;
}

static uint64_t skipped(struct fx *f, enum rm_mirror_skip why)
{
	return f->sw.h->mirror.skipped[why];
}

/* Nothing of a skipped attempt stays taken. */
static void nothing_held(struct fx *f)
{
	assert_int_equal(f->lw->ms.live, 0);
	assert_int_equal(f->lw->mpool.used, 0);
	assert_int_equal(f->sw.h->mirror.sent, 0);
}

static void test_bounds(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	uint32_t s[NMIR];
	void *b[NMIR];

	/* the pool is the cap: NMIR blocks of the upstream head plus a kept body */
	assert_int_equal(lw->mpool.n, NMIR);
	assert_true(lw->mpool.size >= lw->obuf_size + f->sh.o.retry_buf);

	/* a streamed body is no reason to skip (the body follows); here the mirror has
	 * no endpoint, and nothing stays taken or linked to the primary */
	f->c->rq.bmode = L7_BM_STREAM;
	l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_NO_HOST), 1);
	assert_int_equal(skipped(f, RM_MIR_SKIP_BODY), 0);
	assert_null(f->c->fw.mir);
	nothing_held(f);
	f->c->rq.bmode = L7_BM_KEPT;

	/* every slot in flight: over the cap */
	for (int i = 0; i < NMIR; i++)
		assert_int_not_equal(s[i] = conn_slots_take(&lw->ms), CONN_SLOT_NONE);
	l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_LIMIT), 1);
	for (int i = 0; i < NMIR; i++)
		conn_slots_give(&lw->ms, s[i]);
	nothing_held(f);

	/* every block out: over the cap as well, and the slot taken goes back */
	for (int i = 0; i < NMIR; i++)
		assert_non_null(b[i] = bufpool_get(&lw->mpool));
	l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_LIMIT), 2);
	assert_int_equal(lw->ms.live, 0);
	for (int i = 0; i < NMIR; i++)
		bufpool_put(&lw->mpool, b[i]);
	nothing_held(f);

	/* the shadow head must fit beside the body: a full upstream head does not */
	memset(f->c->cl.obuf, 'x', lw->obuf_size);
	memcpy(f->c->cl.obuf, head, sizeof(head) - 5); /* the head up to its last field */
	memcpy(f->c->cl.obuf + lw->obuf_size - 4, "\r\n\r\n", 4);
	f->c->fw.olen = lw->obuf_size;
	f->c->rq.req_end = f->sh.o.retry_buf;
	l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_BODY), 1);
	nothing_held(f);
	memcpy(f->c->cl.obuf, head, sizeof(head) - 1);
	f->c->fw.olen = sizeof(head) - 1;
	f->c->rq.req_end = 4;

	/* slot and block free, but the mirror service has no endpoint */
	l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_NO_HOST), 2);
	nothing_held(f);

	/* over and over: the cap is never used up by skips */
	for (int i = 0; i < 10 * NMIR; i++)
		l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_NO_HOST), 2 + 10 * NMIR);
	assert_int_equal(skipped(f, RM_MIR_SKIP_LIMIT), 2);
	nothing_held(f);
	/* the request itself is untouched */
	assert_memory_equal(f->c->cl.obuf, head, sizeof(head) - 1);
	assert_int_equal(f->c->fw.olen, sizeof(head) - 1);
}

/* The block of a streamed shadow: bytes are appended after the unsent ones; with no
 * send in flight the unsent ones move to the start first; while one is in flight
 * nothing moves (the kernel reads from there), so the block can fill; what does not
 * fit changes nothing. */
static void test_stream_block(void **state)
{
	struct fx *f = *state;
	char blk[64], in[64];
	struct l7_mir m = {.buf = blk};

	(void)f;
	for (int i = 0; i < 64; i++)
		in[i] = (char)('a' + i % 26);
	assert_int_equal(l7m_buf_append(&m, 64, in, 40), 0);
	assert_int_equal(m.len, 40);
	/* 30 of them in a send in flight: pinned, so 30 more do not fit */
	m.send_busy = true;
	m.off = 30;
	assert_int_equal(l7m_buf_append(&m, 64, in + 40, 30), -ENOBUFS);
	assert_int_equal(m.len, 40);
	assert_int_equal(m.off, 30);
	assert_int_equal(l7m_buf_append(&m, 64, in + 40, 24), 0); /* exactly full */
	assert_int_equal(m.len, 64);
	assert_int_equal(l7m_buf_append(&m, 64, in, 1), -ENOBUFS);
	/* the send completed: the 34 unsent bytes move to the start, 30 more fit */
	m.send_busy = false;
	assert_int_equal(l7m_buf_append(&m, 64, in, 30), 0);
	assert_int_equal(m.off, 0);
	assert_int_equal(m.len, 64);
	assert_memory_equal(blk, in + 30, 34);
	assert_memory_equal(blk + 34, in, 30);
	/* a zero-length piece (the body's end alone) always fits */
	m.send_busy = true;
	assert_int_equal(l7m_buf_append(&m, 64, in, 0), 0);
}

/* A shadow streaming its primary's body, before its connection is up (nothing is sent,
 * so every piece stays in the block). */
static struct l7_mir *stream_mir(struct fx *f)
{
	struct l7_worker *lw = f->lw;
	uint32_t i = conn_slots_take(&lw->ms);
	struct l7_mir *m;

	assert_int_not_equal(i, CONN_SLOT_NONE);
	m = &lw->mirs[i];
	memset(m, 0, sizeof(*m));
	m->used = true;
	l7_tmr_init(&m->t, L7_T_MIRROR);
	assert_non_null(m->buf = bufpool_get(&lw->mpool));
	memcpy(m->buf, head, sizeof(head) - 1);
	m->len = sizeof(head) - 1;
	m->req_bytes = m->len;
	m->stream = true;
	m->c = f->c;
	f->c->fw.mir = m;
	return m;
}

static void test_stream_feed(void **state)
{
	struct fx *f = *state;
	struct l7_worker *lw = f->lw;
	static char piece[4096], big[65000];
	uint32_t room, fed = 0;
	struct l7_mir *m;

	memset(piece, 'p', sizeof(piece));
	/* no shadow: feeding and ending the primary change nothing */
	l7m_feed(lw, f->c, piece, sizeof(piece), false);
	l7m_primary_end(lw, f->c);
	nothing_held(f);

	/* the last piece: the body is whole in the block, the primary is let go */
	m = stream_mir(f);
	l7m_feed(lw, f->c, piece, 100, false);
	l7m_feed(lw, f->c, piece, 10, true);
	assert_true(m->body_done);
	assert_null(f->c->fw.mir);
	assert_null(m->c);
	assert_int_equal(m->len, sizeof(head) - 1 + 110);
	assert_int_equal(m->req_bytes, sizeof(head) - 1 + 110);
	l7m_abort_all(lw); /* the worker stops: counted as reset, everything back */
	assert_int_equal(f->sw.h->mirror.failed[RM_MIR_FAIL_RESET], 1);
	nothing_held(f);

	/* a shadow that cannot keep up: the block fills, then 1 MiB of backlog chunks,
	 * then it is dropped: the primary let go, chunks, block and slot back at once */
	m = stream_mir(f);
	room = (uint32_t)lw->mreq_size - m->len;
	while (fed + sizeof(piece) <= room) {
		l7m_feed(lw, f->c, piece, sizeof(piece), false);
		fed += sizeof(piece);
	}
	assert_null(m->ch);
	for (fed = 0; fed < L7_MIRROR_BACKLOG; fed += sizeof(piece)) {
		l7m_feed(lw, f->c, piece, sizeof(piece), false);
		assert_ptr_equal(f->c->fw.mir, m);
	}
	assert_int_equal(m->backlog, L7_MIRROR_BACKLOG);
	assert_int_equal(lw->mbacklog, L7_MIRROR_BACKLOG);
	assert_int_equal(m->ch_tail->len, L7_MCHUNK_BYTES);
	assert_int_equal(skipped(f, RM_MIR_SKIP_BEHIND), 0);
	l7m_feed(lw, f->c, piece, sizeof(piece), false);
	assert_int_equal(skipped(f, RM_MIR_SKIP_BEHIND), 1);
	assert_null(f->c->fw.mir);
	assert_int_equal(lw->mbacklog, 0);
	nothing_held(f);
	l7m_feed(lw, f->c, piece, sizeof(piece), false); /* later pieces: nothing */
	assert_int_equal(skipped(f, RM_MIR_SKIP_BEHIND), 1);

	/* the worker's bound for all its shadows: with one chunk left of it, a shadow
	 * gets that one and is dropped at the next */
	lw->mbacklog = L7_MIRROR_WORKER_BACKLOG - L7_MCHUNK_BYTES;
	m = stream_mir(f);
	while (!m->ch) /* the block fills; the piece that does not fit starts the backlog */
		l7m_feed(lw, f->c, piece, sizeof(piece), false);
	assert_int_equal(m->backlog, L7_MCHUNK_BYTES);
	for (fed = sizeof(piece); fed < L7_MCHUNK_BYTES; fed += sizeof(piece))
		l7m_feed(lw, f->c, piece, sizeof(piece), false);
	assert_int_equal(m->ch_tail->len, L7_MCHUNK_BYTES);
	assert_int_equal(skipped(f, RM_MIR_SKIP_BEHIND), 1);
	l7m_feed(lw, f->c, piece, sizeof(piece), false);
	assert_int_equal(skipped(f, RM_MIR_SKIP_BEHIND), 2);
	assert_int_equal(lw->mbacklog, L7_MIRROR_WORKER_BACKLOG - L7_MCHUNK_BYTES);
	lw->mbacklog = 0;
	nothing_held(f);

	/* pieces as large as the client buffer while the block's send is in flight: a
	 * 200 KiB body waits in the block and four chunks, nothing dropped */
	m = stream_mir(f);
	m->send_busy = true;
	for (fed = 0; fed < (200u << 10); fed += 65000) {
		l7m_feed(lw, f->c, big, 65000, false);
		assert_ptr_equal(f->c->fw.mir, m);
	}
	assert_int_equal(skipped(f, RM_MIR_SKIP_BEHIND), 2);
	assert_int_equal(m->backlog, 3 * L7_MCHUNK_BYTES);
	m->send_busy = false;
	l7m_primary_end(lw, f->c);
	assert_int_equal(lw->mbacklog, 0);

	/* the primary ends before its body does: the shadow is dropped as "body" */
	m = stream_mir(f);
	l7m_feed(lw, f->c, piece, 100, false);
	l7m_primary_end(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_BODY), 2);
	assert_null(f->c->fw.mir);
	nothing_held(f);
	assert_int_equal(f->sw.h->mirror.failed[RM_MIR_FAIL_RESET], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bounds, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stream_block, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stream_feed, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
