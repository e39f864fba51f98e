/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http1_resp: the head of a forwarded response, as a proxy sends it on to its
 * client (pure, like the rest of the codec). The request-side counterpart is
 * http_write_request in http1.h.
 */
#ifndef RM_HTTP1_RESP_H
#define RM_HTTP1_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/http1.h"

/* A header operation on the response, applied in order (a route's response edits). */
enum http_hdr_op_kind {
	HTTP_HOP_SET = 1,    /* drop the upstream's fields of that name, send this one */
	HTTP_HOP_ADD = 2,    /* send this one besides the upstream's */
	HTTP_HOP_REMOVE = 3, /* drop the upstream's fields of that name */
};

struct http_hdr_op {
	uint8_t kind;	   /* enum http_hdr_op_kind */
	const char *name;  /* field name in lower case (as compiled rules hold it) */
	const char *value; /* "" for REMOVE */
};

#define HTTP_RH_CLOSE (1u << 0)	    /* Connection: close */
#define HTTP_RH_UPGRADE (1u << 1)   /* 101: keep Upgrade, Connection: upgrade */
#define HTTP_RH_KEEPALIVE (1u << 2) /* HTTP/1.0 client kept alive: Connection: keep-alive */

/*
 * The client-bound head of res (as parsed) into out[0..cap): an HTTP/1.1 status
 * line (the upstream's reason, else the standard one), the fields minus hop-by-hop
 * ones and those the response's Connection field names, minus those SET/REMOVE
 * name, then the SET/ADD fields in order, then Connection as flags (HTTP_RH_*) ask.
 * Names and values of ops are sent as given (they come from compiled rules).
 * Returns bytes written or -ENOSPC.
 */
ssize_t http_write_response_head(char *out, size_t cap, const struct http_response *res,
				 const struct http_hdr_op *ops, size_t n_ops, unsigned int flags);

#endif /* RM_HTTP1_RESP_H */
