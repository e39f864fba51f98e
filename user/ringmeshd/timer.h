/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * timer: the per-worker timer heap of the L7 proxy. Owns a binary min-heap of
 * deadlines (CLOCK_MONOTONIC ns) embedded in their owners (struct l7_tmr), so arming,
 * re-arming and cancelling cost O(log n) and no allocation. The worker's ring waits
 * at most until the earliest deadline and then pops the expired ones.
 *
 * Pure: no clock is read here; the caller passes "now".
 */
#ifndef RM_TIMER_H
#define RM_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define L7_TMR_IDLE UINT32_MAX /* idx of a timer that is not in the heap */

struct l7_tmr {
	uint64_t when; /* deadline, ns */
	uint32_t idx;  /* position in the heap, L7_TMR_IDLE when not armed */
	uint32_t kind; /* owner's tag: which of its timers fired */
};

struct l7_theap {
	struct l7_tmr **v; /* heap array, v[0] is the earliest */
	uint32_t n;
	uint32_t cap;
};

static inline void l7_tmr_init(struct l7_tmr *t, uint32_t kind)
{
	t->when = 0;
	t->idx = L7_TMR_IDLE;
	t->kind = kind;
}

static inline bool l7_tmr_armed(const struct l7_tmr *t)
{
	return t->idx != L7_TMR_IDLE;
}

int l7_theap_init(struct l7_theap *h, uint32_t cap); /* 0 or -ENOMEM */
void l7_theap_fini(struct l7_theap *h);

/* Arm (or move) t to fire at when. -ENOSPC when the heap is full. */
int l7_tmr_arm(struct l7_theap *h, struct l7_tmr *t, uint64_t when);
/* Disarm t; no-op when it is not armed. */
void l7_tmr_cancel(struct l7_theap *h, struct l7_tmr *t);

/* Earliest deadline, or UINT64_MAX when nothing is armed. */
uint64_t l7_theap_next(const struct l7_theap *h);

/* Remove and return one timer whose deadline is <= now (earliest first), or NULL. */
struct l7_tmr *l7_theap_pop_expired(struct l7_theap *h, uint64_t now);

#endif /* RM_TIMER_H */
