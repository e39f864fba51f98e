/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http1_write: serialisation of forwarded request heads (with route edits) and of
 * locally generated replies. Everything that does not come from the parser (edit
 * names, values, targets, reply headers) is validated here, because a CR or LF slipped
 * in through configuration would let one request turn into two.
 */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "http/http1.h"
#include "http/http1_int.h"

static void put_slice(struct sbuf *w, struct http_slice s)
{
	sbuf_put(w, s.p, s.len);
}

static void put_field(struct sbuf *w, struct http_slice name, struct http_slice value)
{
	put_slice(w, name);
	sbuf_put(w, ": ", 2);
	put_slice(w, value);
	sbuf_put(w, "\r\n", 2);
}

static struct http_slice cstr(const char *s)
{
	return (struct http_slice){s, strlen(s)};
}

static bool is_framing(struct http_slice name)
{
	return http_slice_ieq(name, "content-length") ||
	       http_slice_ieq(name, "transfer-encoding") || http_slice_ieq(name, "host");
}

static bool field_ok(const struct http_header *h)
{
	struct http_slice v = h->value;

	if (!http_token_valid(h->name.p, h->name.len) || !http_value_valid(v.p, v.len))
		return false;
	/* leading/trailing whitespace would not survive a round trip through a parser */
	return !v.len || (!http_is_ows(v.p[0]) && !http_is_ows(v.p[v.len - 1]));
}

static bool slice_ieq_slice(struct http_slice a, struct http_slice b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++) {
		unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b.p[i];

		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return false;
	}
	return true;
}

static int validate_edit(const struct http_edit *ed)
{
	if (ed->target) {
		const struct http_slice *t = ed->target;

		if (!t->len || (t->p[0] != '/' && !(t->len == 1 && t->p[0] == '*')))
			return -EINVAL;
		for (size_t i = 0; i < t->len; i++)
			if (!http_is(t->p[i], HTTP_C_TARGET))
				return -EINVAL;
	}
	if (ed->authority)
		for (size_t i = 0; i < ed->authority->len; i++)
			if (!http_is(ed->authority->p[i], HTTP_C_HOST))
				return -EINVAL;
	for (size_t i = 0; i < ed->n_remove; i++) {
		struct http_slice n = cstr(ed->remove[i]);

		if (!http_token_valid(n.p, n.len) || is_framing(n))
			return -EINVAL;
	}
	for (size_t i = 0; i < ed->n_set; i++)
		if (!field_ok(&ed->set[i]) || is_framing(ed->set[i].name))
			return -EINVAL;
	for (size_t i = 0; i < ed->n_add; i++)
		if (!field_ok(&ed->add[i]) || is_framing(ed->add[i].name))
			return -EINVAL;
	return 0;
}

/* Is name listed in any Connection field of req (so hop-by-hop for this message)? */
static bool named_by_connection(const struct http_request *req, struct http_slice name)
{
	for (int i = http_header_find(req->headers, req->n_headers, "connection", 0); i >= 0;
	     i = http_header_find(req->headers, req->n_headers, "connection", (size_t)i + 1)) {
		struct http_slice list = req->headers[i].value, elem;

		while (http_list_next(&list, &elem))
			if (slice_ieq_slice(elem, name))
				return true;
	}
	return false;
}

static bool dropped(const struct http_request *req, const struct http_edit *ed,
		    struct http_slice name)
{
	static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te",
					  "upgrade"};
	bool keep_upgrade = ed->flags & HTTP_EDIT_KEEP_UPGRADE;

	if (http_slice_ieq(name, "host"))
		return true; /* written first, from the chosen authority */
	for (size_t i = 0; i < ed->n_remove; i++)
		if (slice_ieq_slice(name, cstr(ed->remove[i])))
			return true;
	for (size_t i = 0; i < ed->n_set; i++)
		if (slice_ieq_slice(name, ed->set[i].name))
			return true;
	if (!(ed->flags & HTTP_EDIT_STRIP_HOP))
		return false;
	if (keep_upgrade && http_slice_ieq(name, "upgrade"))
		return false;
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (http_slice_ieq(name, hop[i]))
			return true;
	/* "Connection: content-length" must not strip the framing of a forwarded body */
	return !is_framing(name) && named_by_connection(req, name);
}

ssize_t http_write_request(char *out, size_t cap, const struct http_request *req,
			   const struct http_edit *ed)
{
	static const struct http_edit none;
	struct sbuf w = sbuf_make(out, cap);
	struct http_slice host;
	int e;

	if (!ed)
		ed = &none;
	e = validate_edit(ed);
	if (e)
		return e;

	put_slice(&w, req->method);
	sbuf_put(&w, " ", 1);
	if (ed->target) {
		put_slice(&w, *ed->target);
	} else if (req->form == HTTP_TF_ABSOLUTE) {
		if (req->path.len)
			put_slice(&w, req->path);
		else
			sbuf_put(&w, "/", 1);
		if (req->has_query) {
			sbuf_put(&w, "?", 1);
			put_slice(&w, req->query);
		}
	} else {
		put_slice(&w, req->target);
	}
	sbuf_str(&w, " HTTP/1.1\r\n");

	/* RFC 9112 3.2.2: an absolute-form authority wins over Host */
	if (ed->authority)
		host = *ed->authority;
	else if (req->form == HTTP_TF_ABSOLUTE || (!req->has_host && req->authority.len))
		host = req->authority;
	else
		host = req->host;
	put_field(&w, cstr("Host"), host);

	/* framing fields in canonical form, once each, where the first one stood */
	bool cl_done = false, te_done = false;

	for (size_t i = 0; i < req->n_headers; i++) {
		struct http_slice name = req->headers[i].name;

		if (http_slice_ieq(name, "content-length")) {
			if (!cl_done) {
				sbuf_str(&w, "Content-Length: ");
				sbuf_u64(&w, req->content_length);
				sbuf_put(&w, "\r\n", 2);
			}
			cl_done = true;
		} else if (http_slice_ieq(name, "transfer-encoding") &&
			   req->body == HTTP_BODY_CHUNKED) {
			if (!te_done)
				sbuf_str(&w, "Transfer-Encoding: chunked\r\n");
			te_done = true;
		} else if (!dropped(req, ed, name)) {
			put_field(&w, name, req->headers[i].value);
		}
	}
	for (size_t i = 0; i < ed->n_set; i++)
		put_field(&w, ed->set[i].name, ed->set[i].value);
	for (size_t i = 0; i < ed->n_add; i++)
		put_field(&w, ed->add[i].name, ed->add[i].value);

	bool up = (ed->flags & HTTP_EDIT_STRIP_HOP) && (ed->flags & HTTP_EDIT_KEEP_UPGRADE) &&
		  (req->flags & HTTP_F_UPGRADE);
	bool close = ed->flags & HTTP_EDIT_CLOSE;

	if (up || close) {
		sbuf_str(&w, "Connection: ");
		if (up)
			sbuf_str(&w, close ? "upgrade, close" : "upgrade");
		else
			sbuf_str(&w, "close");
		sbuf_put(&w, "\r\n", 2);
	}
	sbuf_put(&w, "\r\n", 2);
	return (ssize_t)sbuf_end(&w);
}

const char *http_status_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 417:
		return "Expectation Failed";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Unknown";
}

ssize_t http_write_response(char *out, size_t cap, const struct http_reply *r)
{
	struct sbuf w = sbuf_make(out, cap);
	const char *reason = r->reason ? r->reason : http_status_reason(r->status);
	const char *ctype = r->content_type ? r->content_type : "text/plain";
	bool bodyless = r->status < 200 || r->status == 204 || r->status == 304;

	if (r->status < 100 || r->status > 599 || (bodyless && r->body_len) ||
	    (r->body_len && !r->body) || !http_value_valid(reason, strlen(reason)) ||
	    !http_value_valid(ctype, strlen(ctype)))
		return -EINVAL;
	for (size_t i = 0; i < r->n_headers; i++)
		if (!field_ok(&r->headers[i]) || is_framing(r->headers[i].name))
			return -EINVAL;

	sbuf_str(&w, "HTTP/1.1 ");
	sbuf_u64(&w, (uint64_t)r->status);
	sbuf_put(&w, " ", 1);
	sbuf_str(&w, reason);
	sbuf_put(&w, "\r\n", 2);
	if (!bodyless) {
		/* lower-case names, as Envoy writes them, so clients see the same bytes */
		put_field(&w, cstr("content-type"), cstr(ctype));
		sbuf_str(&w, "content-length: ");
		sbuf_u64(&w, r->body_len);
		sbuf_put(&w, "\r\n", 2);
	}
	for (size_t i = 0; i < r->n_headers; i++)
		put_field(&w, r->headers[i].name, r->headers[i].value);
	if (r->close)
		sbuf_str(&w, "connection: close\r\n");
	sbuf_put(&w, "\r\n", 2);
	if (!r->head && r->body_len)
		sbuf_put(&w, r->body, r->body_len);
	return (ssize_t)sbuf_end(&w);
}

/* Envoy's shadow host: "-shadow" before the port (the last ':', followed by digits
 * alone and, in an IPv6 literal, right after its ']'), else at the end. */
ssize_t http_shadow_authority(char *out, size_t cap, const char *host, size_t len)
{
	const char *colon = len ? memrchr(host, ':', len) : NULL;
	struct sbuf w = sbuf_make(out, cap);
	size_t cut = len;

	if (colon) {
		size_t i = (size_t)(colon - host), j = i + 1;

		while (j < len && host[j] >= '0' && host[j] <= '9')
			j++;
		if (j == len && j > i + 1 && (host[0] != '[' || (i && host[i - 1] == ']')))
			cut = i;
	}
	sbuf_put(&w, host, cut);
	sbuf_str(&w, "-shadow");
	sbuf_put(&w, host + cut, len - cut);
	return w.over ? -ENOSPC : (ssize_t)w.len;
}

ssize_t http_shadow_head(char *out, size_t cap, const char *head, size_t len, const char *fallback)
{
	static const char hf[] = "\r\nHost: ";
	const char *h = memmem(head, len, hf, sizeof(hf) - 1), *v, *e;
	size_t pre;
	ssize_t n;

	if (!h)
		return -EINVAL;
	pre = (size_t)(h - head) + sizeof(hf) - 1;
	v = head + pre;
	e = memmem(v, len - pre, "\r\n", 2);
	if (!e)
		return -EINVAL;
	if (pre > cap)
		return -ENOSPC;
	memcpy(out, head, pre);
	if (e == v && fallback)
		n = http_shadow_authority(out + pre, cap - pre, fallback, strlen(fallback));
	else
		n = http_shadow_authority(out + pre, cap - pre, v, (size_t)(e - v));
	if (n < 0 || (size_t)n + pre + (size_t)(head + len - e) > cap)
		return -ENOSPC;
	memcpy(out + pre + n, e, (size_t)(head + len - e));
	return (ssize_t)(pre + (size_t)n + (size_t)(head + len - e));
}
