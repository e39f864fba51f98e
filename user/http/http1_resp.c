/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http1_resp: the client-bound head of a forwarded response (http1_resp.h):
 * hop-by-hop fields dropped, the route's response edits applied, Connection set
 * for the client side of the proxy.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "http/http1_resp.h"

/* Named by the response's own Connection field: hop-by-hop for this message. */
static bool conn_listed(const struct http_response *res, struct http_slice name)
{
	for (size_t i = 0; i < res->n_headers; i++) {
		struct http_slice list = res->headers[i].value, tok;

		if (!http_slice_ieq(res->headers[i].name, "connection"))
			continue;
		while (http_list_next(&list, &tok))
			if (tok.len == name.len && !strncasecmp(tok.p, name.p, name.len))
				return true;
	}
	return false;
}

static bool hop_by_hop(struct http_slice n, bool upgrade)
{
	return http_slice_ieq(n, "connection") || http_slice_ieq(n, "keep-alive") ||
	       http_slice_ieq(n, "proxy-connection") || (!upgrade && http_slice_ieq(n, "upgrade"));
}

ssize_t http_write_response_head(char *out, size_t cap, const struct http_response *res,
				 const struct http_hdr_op *ops, size_t n_ops, unsigned int flags)
{
	struct sbuf w = sbuf_make(out, cap);
	bool upgrade = flags & HTTP_RH_UPGRADE;
	/* status 100..599 (the parser's): three digits, no printf on every response */
	unsigned int st = (unsigned int)res->status % 1000;
	char line[] = "HTTP/1.1 000 ";
	bool listed = false; /* a Connection field may name others: look them up then */

	for (size_t i = 0; i < res->n_headers && !listed; i++)
		listed = http_slice_ieq(res->headers[i].name, "connection");

	line[9] = (char)('0' + st / 100);
	line[10] = (char)('0' + st / 10 % 10);
	line[11] = (char)('0' + st % 10);
	sbuf_put(&w, line, sizeof(line) - 1);
	if (res->reason.len)
		sbuf_put(&w, res->reason.p, res->reason.len);
	else
		sbuf_str(&w, http_status_reason(res->status));
	sbuf_put(&w, "\r\n", 2);
	for (size_t i = 0; i < res->n_headers; i++) {
		const struct http_header *h = &res->headers[i];
		bool drop = hop_by_hop(h->name, upgrade) ||
			    (listed && !(upgrade && http_slice_ieq(h->name, "upgrade")) &&
			     conn_listed(res, h->name));

		for (size_t k = 0; k < n_ops && !drop; k++)
			if ((ops[k].kind == HTTP_HOP_REMOVE || ops[k].kind == HTTP_HOP_SET) &&
			    http_slice_ieq(h->name, ops[k].name))
				drop = true;
		if (drop)
			continue;
		sbuf_put(&w, h->name.p, h->name.len);
		sbuf_put(&w, ": ", 2);
		sbuf_put(&w, h->value.p, h->value.len);
		sbuf_put(&w, "\r\n", 2);
	}
	for (size_t k = 0; k < n_ops; k++) {
		if (ops[k].kind == HTTP_HOP_REMOVE)
			continue;
		sbuf_str(&w, ops[k].name);
		sbuf_put(&w, ": ", 2);
		sbuf_str(&w, ops[k].value);
		sbuf_put(&w, "\r\n", 2);
	}
	if (upgrade)
		sbuf_str(&w, "connection: upgrade\r\n");
	else if (flags & HTTP_RH_CLOSE)
		sbuf_str(&w, "connection: close\r\n");
	else if (flags & HTTP_RH_KEEPALIVE)
		sbuf_str(&w, "connection: keep-alive\r\n");
	sbuf_put(&w, "\r\n", 2);
	return sbuf_end(&w);
}
