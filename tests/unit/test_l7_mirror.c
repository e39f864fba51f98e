/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The bounds of shadow requests (l7_mirror.c): a request whose route drew a mirror
 * gets a copy only when a mirror slot and a block of the worker's mirror pool are
 * free (--max-mirrors), its body was kept whole and the shadow head fits; otherwise
 * it is skipped, counted by reason, and whatever the attempt took (slot, block,
 * configuration hold) is given back at once. Driven as test_l7_mem.c: a real l7
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

	/* a streamed body: not copied, nothing taken */
	f->c->rq.bmode = L7_BM_STREAM;
	l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_BODY), 1);
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
	assert_int_equal(skipped(f, RM_MIR_SKIP_BODY), 2);
	nothing_held(f);
	memcpy(f->c->cl.obuf, head, sizeof(head) - 1);
	f->c->fw.olen = sizeof(head) - 1;
	f->c->rq.req_end = 4;

	/* slot and block free, but the mirror service has no endpoint */
	l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_NO_HOST), 1);
	nothing_held(f);

	/* over and over: the cap is never used up by skips */
	for (int i = 0; i < 10 * NMIR; i++)
		l7m_start(lw, f->c);
	assert_int_equal(skipped(f, RM_MIR_SKIP_NO_HOST), 1 + 10 * NMIR);
	assert_int_equal(skipped(f, RM_MIR_SKIP_LIMIT), 2);
	nothing_held(f);
	/* the request itself is untouched */
	assert_memory_equal(f->c->cl.obuf, head, sizeof(head) - 1);
	assert_int_equal(f->c->fw.olen, sizeof(head) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bounds, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
