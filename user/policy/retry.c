/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Retry predicates (retry.h), after Envoy's x-envoy-retry-on semantics. */
#include "policy/retry.h"
#include "ringmesh/cfg.h"

bool retry_status(int status, uint32_t retry_on)
{
	if ((retry_on & RM_RETRY_5XX) && status >= 500 && status <= 599)
		return true;
	if ((retry_on & RM_RETRY_GATEWAY_ERROR) && status >= 502 && status <= 504)
		return true;
	if ((retry_on & RM_RETRY_RETRIABLE_4XX) && status == 409)
		return true;
	return false;
}

bool retry_failure(enum retry_fail f, uint32_t retry_on)
{
	switch (f) {
	case RETRY_F_CONNECT:
		return retry_on &
		       (RM_RETRY_CONNECT_FAILURE | RM_RETRY_5XX | RM_RETRY_GATEWAY_ERROR);
	case RETRY_F_RESET:
		return retry_on & (RM_RETRY_RESET | RM_RETRY_5XX | RM_RETRY_GATEWAY_ERROR);
	case RETRY_F_TRY_TIMEOUT:
		return retry_on & (RM_RETRY_5XX | RM_RETRY_GATEWAY_ERROR | RM_RETRY_RESET);
	case RETRY_F_STATUS:
		return true;
	}
	return false;
}
