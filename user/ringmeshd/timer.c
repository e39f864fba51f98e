/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Binary min-heap of embedded timers. Each timer remembers its index so that a
 * cancel or re-arm sifts from where it is instead of searching.
 */
#include <errno.h>
#include <stdlib.h>

#include "ringmeshd/timer.h"

int l7_theap_init(struct l7_theap *h, uint32_t cap)
{
	h->v = calloc(cap ? cap : 1, sizeof(*h->v));
	h->n = 0;
	h->cap = cap;
	return h->v ? 0 : -ENOMEM;
}

void l7_theap_fini(struct l7_theap *h)
{
	for (uint32_t i = 0; i < h->n; i++)
		h->v[i]->idx = L7_TMR_IDLE;
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

static void place(struct l7_theap *h, uint32_t i, struct l7_tmr *t)
{
	h->v[i] = t;
	t->idx = i;
}

static void sift_up(struct l7_theap *h, uint32_t i)
{
	struct l7_tmr *t = h->v[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (h->v[p]->when <= t->when)
			break;
		place(h, i, h->v[p]);
		i = p;
	}
	place(h, i, t);
}

static void sift_down(struct l7_theap *h, uint32_t i)
{
	struct l7_tmr *t = h->v[i];

	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		uint64_t mw = t->when;

		if (l < h->n && h->v[l]->when < mw) {
			m = l;
			mw = h->v[l]->when;
		}
		if (l + 1 < h->n && h->v[l + 1]->when < mw)
			m = l + 1;
		if (m == i)
			break;
		place(h, i, h->v[m]);
		i = m;
	}
	place(h, i, t);
}

static void remove_at(struct l7_theap *h, uint32_t i)
{
	struct l7_tmr *t = h->v[i];
	struct l7_tmr *last = h->v[--h->n];

	t->idx = L7_TMR_IDLE;
	if (i == h->n)
		return;
	place(h, i, last);
	if (i > 0 && h->v[(i - 1) / 2]->when > last->when)
		sift_up(h, i);
	else
		sift_down(h, i);
}

int l7_tmr_arm(struct l7_theap *h, struct l7_tmr *t, uint64_t when)
{
	if (l7_tmr_armed(t)) {
		uint64_t old = t->when;

		t->when = when;
		if (when < old)
			sift_up(h, t->idx);
		else
			sift_down(h, t->idx);
		return 0;
	}
	if (h->n >= h->cap)
		return -ENOSPC;
	t->when = when;
	place(h, h->n++, t);
	sift_up(h, t->idx);
	return 0;
}

void l7_tmr_cancel(struct l7_theap *h, struct l7_tmr *t)
{
	if (l7_tmr_armed(t) && t->idx < h->n && h->v[t->idx] == t)
		remove_at(h, t->idx);
	t->idx = L7_TMR_IDLE;
}

uint64_t l7_theap_next(const struct l7_theap *h)
{
	return h->n ? h->v[0]->when : UINT64_MAX;
}

struct l7_tmr *l7_theap_pop_expired(struct l7_theap *h, uint64_t now)
{
	struct l7_tmr *t;

	if (!h->n || h->v[0]->when > now)
		return NULL;
	t = h->v[0];
	remove_at(h, 0);
	return t;
}
