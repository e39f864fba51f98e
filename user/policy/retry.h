/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * retry: the retry policy's predicates (pure). Which failure of an attempt, and
 * which response status, a route's retry_on (RM_RETRY_* bits, Envoy's retryOn
 * names) asks to retry. Whether a retry happens also depends on attempts left, a
 * replayable body and the breaker's retry budget; those are the caller's.
 */
#ifndef RM_RETRY_H
#define RM_RETRY_H

#include <stdbool.h>
#include <stdint.h>

/* How an attempt failed. */
enum retry_fail {
	RETRY_F_CONNECT = 1, /* connect failed or timed out */
	RETRY_F_RESET,	     /* closed/reset before the response head */
	RETRY_F_TRY_TIMEOUT, /* the per-try timeout fired before the response head */
	RETRY_F_STATUS,	     /* a response status retry_status() accepted */
};

/* Does this status fail the attempt under retry_on? */
bool retry_status(int status, uint32_t retry_on);

/* Is a failure of this kind retriable under retry_on? */
bool retry_failure(enum retry_fail f, uint32_t retry_on);

#endif /* RM_RETRY_H */
