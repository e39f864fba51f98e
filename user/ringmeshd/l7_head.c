/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Pure helpers of the L7 proxy: header lookup for the router, the client-bound
 * response head, and the retry policy predicates.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ringmeshd/l7_int.h"

int l7_hdr_get(const void *ctx, const char *lname, size_t idx, struct route_slice *out)
{
	const struct http_request *req = ctx;
	size_t seen = 0;

	for (size_t i = 0; i < req->n_headers; i++) {
		if (!http_slice_ieq(req->headers[i].name, lname))
			continue;
		if (seen++ == idx) {
			out->p = req->headers[i].value.p;
			out->len = req->headers[i].value.len;
			return 0;
		}
	}
	return -ENOENT;
}

struct wbuf {
	char *p;
	size_t cap, len;
	bool over;
};

static void w_put(struct wbuf *w, const char *s, size_t n)
{
	if (w->over || w->len + n > w->cap) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void w_str(struct wbuf *w, const char *s)
{
	w_put(w, s, strlen(s));
}

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

ssize_t l7_write_response_head(char *out, size_t cap, const struct http_response *res,
			       const struct route_hdrop *ops, size_t n_ops, unsigned int flags)
{
	struct wbuf w = {out, cap, 0, false};
	bool upgrade = flags & L7_RH_UPGRADE;
	char line[32];

	snprintf(line, sizeof(line), "HTTP/1.1 %03d ", res->status);
	w_str(&w, line);
	if (res->reason.len)
		w_put(&w, res->reason.p, res->reason.len);
	else
		w_str(&w, http_status_reason(res->status));
	w_put(&w, "\r\n", 2);
	for (size_t i = 0; i < res->n_headers; i++) {
		const struct http_header *h = &res->headers[i];
		bool drop =
		    hop_by_hop(h->name, upgrade) ||
		    (!(upgrade && http_slice_ieq(h->name, "upgrade")) && conn_listed(res, h->name));

		for (size_t k = 0; k < n_ops && !drop; k++)
			if (ops[k].response &&
			    (ops[k].kind == RM_HDR_REMOVE || ops[k].kind == RM_HDR_SET) &&
			    http_slice_ieq(h->name, ops[k].name))
				drop = true;
		if (drop)
			continue;
		w_put(&w, h->name.p, h->name.len);
		w_put(&w, ": ", 2);
		w_put(&w, h->value.p, h->value.len);
		w_put(&w, "\r\n", 2);
	}
	for (size_t k = 0; k < n_ops; k++) {
		if (!ops[k].response || ops[k].kind == RM_HDR_REMOVE)
			continue;
		w_str(&w, ops[k].name);
		w_put(&w, ": ", 2);
		w_str(&w, ops[k].value);
		w_put(&w, "\r\n", 2);
	}
	if (upgrade)
		w_str(&w, "connection: upgrade\r\n");
	else if (flags & L7_RH_CLOSE)
		w_str(&w, "connection: close\r\n");
	else if (flags & L7_RH_KEEPALIVE)
		w_str(&w, "connection: keep-alive\r\n");
	w_put(&w, "\r\n", 2);
	return w.over ? -ENOSPC : (ssize_t)w.len;
}

bool l7_retriable_status(int status, uint32_t retry_on)
{
	if ((retry_on & RM_RETRY_5XX) && status >= 500 && status <= 599)
		return true;
	if ((retry_on & RM_RETRY_GATEWAY_ERROR) && status >= 502 && status <= 504)
		return true;
	if ((retry_on & RM_RETRY_RETRIABLE_4XX) && status == 409)
		return true;
	return false;
}

bool l7_retriable_fail(enum l7_fail f, uint32_t retry_on)
{
	switch (f) {
	case L7_F_CONNECT:
		return retry_on &
		       (RM_RETRY_CONNECT_FAILURE | RM_RETRY_5XX | RM_RETRY_GATEWAY_ERROR);
	case L7_F_RESET:
		return retry_on & (RM_RETRY_RESET | RM_RETRY_5XX | RM_RETRY_GATEWAY_ERROR);
	case L7_F_TRY_TIMEOUT:
		return retry_on & (RM_RETRY_5XX | RM_RETRY_GATEWAY_ERROR | RM_RETRY_RESET);
	case L7_F_STATUS:
		return true;
	}
	return false;
}
