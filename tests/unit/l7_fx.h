/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A real L7 worker on a real io_uring for the tests that drive one without traffic
 * (test_l7_cb.c, test_l7_mem.c, test_l7_mirror.c): the SQEs it prepares are never
 * submitted, the test plays the kernel through l7_complete. Include after cmocka.h.
 */
#ifndef RM_TEST_L7_FX_H
#define RM_TEST_L7_FX_H

#include <stdlib.h>
#include <liburing.h>

#include "ringmeshd/l7_int.h"
#include "ringmeshd/ring.h"

/* A worker of sh (its options filled) with max_conns slots and a ring of entries SQEs;
 * NULL when io_uring is disabled here (the caller skips). */
static inline struct ring_worker *l7fx_worker_new(struct l7_shared *sh, unsigned int max_conns,
						  unsigned int id, unsigned int entries)
{
	struct ring_worker *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->cfg.l7 = sh;
	w->cfg.max_conns = max_conns;
	w->cfg.id = id;
	if (io_uring_queue_init(entries, &w->ring, 0)) {
		free(w);
		return NULL;
	}
	assert_int_equal(l7_worker_init(w), 0);
	return w;
}

static inline void l7fx_worker_free(struct ring_worker *w)
{
	if (!w)
		return;
	l7_worker_fini(w);
	io_uring_queue_exit(&w->ring);
	free(w);
}

#endif /* RM_TEST_L7_FX_H */
