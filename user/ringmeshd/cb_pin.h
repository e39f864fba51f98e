/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cb_pin: the engine's side of the circuit breaker. Maps the pinned rm_breaker map
 * (common/pin.h) and attaches the pure breaker (policy/cb.h) to it, so that cb.c
 * itself does no I/O and is tested on plain memory.
 */
#ifndef RM_CB_PIN_H
#define RM_CB_PIN_H

#include <stddef.h>
#include <stdint.h>

#include "policy/cb.h"

/* Open pin_dir/rm_breaker sized for --breaker-pools pools and --breaker-hosts hosts
 * (0: the defaults, cb_size), mmap it, and initialise it when it has no magic
 * (started_ns = realtime_ns). 0 or -errno with err filled: -EPROTO for a map of
 * another size or layout. */
int cb_open(struct cb *cb, const char *pin_dir, uint32_t pools, uint32_t hosts,
	    uint64_t realtime_ns, char *err, size_t errlen);
/* Unmap and close what cb_open opened (NULL-safe on a closed or attached cb). */
void cb_close(struct cb *cb);

#endif /* RM_CB_PIN_H */
