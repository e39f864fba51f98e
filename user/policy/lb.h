/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * lb: the load balancer of one pool of endpoints (a subset, or a whole service).
 * Owns the runtime balancing state that is not configuration: the round-robin
 * cursor (atomic, so every worker thread may share one lb_state) and the choice
 * among available members for ROUND_ROBIN, LEAST_CONN (power of two choices: the
 * one of two random available members with fewer active requests wins) and RANDOM.
 *
 * Pure: the caller supplies availability (outlier ejection) and active request
 * counts through callbacks, and the random value; same inputs, same choice.
 */
#ifndef RM_LB_H
#define RM_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmesh/cfg.h"

struct lb_state {
	uint32_t policy; /* enum rm_cfg_lb */
	uint32_t pad;
	uint64_t rr; /* round-robin cursor, updated atomically */
};

/* Callbacks get the endpoint index (members[i]) of the pool. */
struct lb_hooks {
	/* false: skip this endpoint (ejected); NULL: every endpoint is available */
	bool (*available)(void *ctx, uint32_t endpoint);
	/* requests in flight to this endpoint; NULL: LEAST_CONN behaves like RANDOM */
	uint32_t (*active)(void *ctx, uint32_t endpoint);
	void *ctx;
};

/* PASSTHROUGH has no pool to balance: lb_pick treats it as ROUND_ROBIN. -EINVAL for an
 * unknown policy. */
int lb_init(struct lb_state *s, uint32_t policy);

/*
 * Choose one of members[0..n): *pos gets the position in members. rnd: a uniformly
 * random 64-bit value (unused by ROUND_ROBIN). Returns 0, or -ENOENT when no member is
 * available (503 "no healthy upstream", UH), -EINVAL for bad arguments.
 */
int lb_pick(struct lb_state *s, const uint32_t *members, size_t n, const struct lb_hooks *h,
	    uint64_t rnd, size_t *pos);

#endif /* RM_LB_H */
