/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http1_resp: the client-bound head of a forwarded response (http1_resp.h):
 * hop-by-hop fields dropped, the route's response edits applied, Connection set
 * for the client side of the proxy.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http1_resp.h"

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

ssize_t http_write_response_head(char *out, size_t cap, const struct http_response *res,
				 const struct http_hdr_op *ops, size_t n_ops, unsigned int flags)
{
	struct wbuf w = {out, cap, 0, false};
	bool upgrade = flags & HTTP_RH_UPGRADE;
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
			if ((ops[k].kind == HTTP_HOP_REMOVE || ops[k].kind == HTTP_HOP_SET) &&
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
		if (ops[k].kind == HTTP_HOP_REMOVE)
			continue;
		w_str(&w, ops[k].name);
		w_put(&w, ": ", 2);
		w_str(&w, ops[k].value);
		w_put(&w, "\r\n", 2);
	}
	if (upgrade)
		w_str(&w, "connection: upgrade\r\n");
	else if (flags & HTTP_RH_CLOSE)
		w_str(&w, "connection: close\r\n");
	else if (flags & HTTP_RH_KEEPALIVE)
		w_str(&w, "connection: keep-alive\r\n");
	w_put(&w, "\r\n", 2);
	return w.over ? -ENOSPC : (ssize_t)w.len;
}
