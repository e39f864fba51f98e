/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The response of an L7 request: the upstream head parsed (interim 1xx passed on to
 * HTTP/1.1 clients, a retriable status turned into a retry), rewritten for the
 * client (the body read with it copied behind it: one send), the rest of the body
 * streamed from the upstream's buffer without copies, and the end
 * of the exchange: the connection parked or closed, the client's next request.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "http/http1_resp.h"
#include "policy/cb.h"
#include "ringmeshd/l7_int.h"

/* Header operations per rule are at most 256 (the compiler's limit). */
#define MAX_RESP_OPS 256

_Static_assert((int)HTTP_HOP_SET == (int)RM_HDR_SET && (int)HTTP_HOP_ADD == (int)RM_HDR_ADD &&
		   (int)HTTP_HOP_REMOVE == (int)RM_HDR_REMOVE,
	       "http1_resp op kinds are the compiled rules' kinds");

/* The route's response edits, in order, for the head writer, then CORS's (Envoy's
 * filter sets its headers after the route's); -ENOSPC past the cap. */
static ssize_t resp_ops(const struct l7_conn *c, struct http_hdr_op *ops)
{
	const struct route_decision *d = &c->fw.d;
	size_t n = 0;

	for (size_t i = 0; i < d->n_hdrops; i++) {
		if (!d->hdrops[i].response)
			continue;
		if (n == MAX_RESP_OPS)
			return -ENOSPC;
		ops[n].kind = d->hdrops[i].kind;
		ops[n].name = d->hdrops[i].name;
		ops[n].value = d->hdrops[i].value;
		n++;
	}
	if (c->fw.cors_len) { /* after the upstream head: NUL-terminated values */
		struct http_header f[3];
		size_t k = l7c_cors_fields(c, f);

		if (n + k > MAX_RESP_OPS)
			return -ENOSPC;
		for (size_t i = 0; i < k; i++)
			ops[n++] = (struct http_hdr_op){HTTP_HOP_SET, f[i].name.p, f[i].value.p};
	}
	return (ssize_t)n;
}

/* An attempt (or a request) starts: no response yet. */
void l7c_resp_reset(struct l7_conn *c)
{
	memset(&c->rs, 0, sizeof(c->rs));
}

void l7c_resp_complete(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_up *up = c->fw.up;

	l7c_timers_off(lw, c);
	l7c_cb_release(lw, c);
	c->fw.up = NULL;
	if (up) {
		up->owner = NULL;
		l7_up_release(lw, up,
			      c->fw.req_done && c->rs.up_keep && !c->rs.resp_until_close &&
				  cb_conn_keep(up->cbp, up->requests));
	}
	if (!c->fw.req_done)
		c->cl.close_after = true;
	l7c_record(lw, c);
	l7c_drop_cfg(lw, c);
	if (c->cl.close_after)
		l7c_close(lw, c);
	else
		l7c_next_request(lw, c);
}

/* An answer slower than this is checked for a client that gave up meanwhile. */
#define L7_DC_PROBE_NS (10ull * 1000000ull)

/*
 * Did the client go away (EOF or reset) while its request was upstream? Nothing
 * reads the client socket then, and a send to a closed peer succeeds (only a later
 * one fails, once its reset is back), so the response head would go out as a
 * success. One peek, and only for slow answers: a client gives up after a timeout of
 * its own, and a syscall on every fast response would cost more than it finds.
 */
static bool client_gone(struct l7_conn *c)
{
	char b;
	ssize_t n;

	if (mono_ns() - c->mt.t0 < L7_DC_PROBE_NS)
		return false;
	n = recv(c->cl.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void resp_head(struct l7_worker *lw, struct l7_conn *c, struct http_response *res, int r)
{
	struct l7_up *up = c->fw.up;
	struct http_hdr_op ops[MAX_RESP_OPS];
	unsigned int fl = 0;
	struct l7_seg s[2];
	ssize_t h, n, n_ops;

	l7c_host_result(lw, c, cb_outcome_of_status(res->status));
	if (c->fw.tries_left && c->rq.bmode != L7_BM_STREAM &&
	    retry_status(res->status, c->fw.d.retry_on) && l7c_retry_admit(c)) {
		l7c_attempt_fail(lw, c, RETRY_F_STATUS);
		return;
	}
	if (c->fw.d.retry_attempts && retry_status(res->status, c->fw.d.retry_on))
		c->mt.sflags |= L7_FLAG(RM_STATS_F_URX);
	l7_tmr_cancel(&lw->th, &c->t_try);
	c->rs.resp_head = true;
	c->mt.status = res->status;
	c->rs.up_keep = res->flags & HTTP_F_KEEP_ALIVE;
	c->rs.resp_until_close = res->body == HTTP_BODY_UNTIL_CLOSE;
	if (!c->rq.req_keep || c->rs.resp_until_close || !c->fw.req_done)
		c->cl.close_after = true;
	if (res->status == 101)
		fl |= HTTP_RH_UPGRADE;
	else if (c->cl.close_after)
		fl |= HTTP_RH_CLOSE;
	else if (c->rq.vminor == 0)
		fl |= HTTP_RH_KEEPALIVE;
	n_ops = resp_ops(c, ops);
	h = n_ops < 0
		? n_ops
		: http_write_response_head(c->cl.rbuf, lw->rbuf_size, res, ops, (size_t)n_ops, fl);
	if (h < 0) {
		c->mt.sflags |= L7_FLAG(RM_STATS_F_UPE);
		up->broken = true;
		l7c_reply(lw, c, 502, NULL, NULL, 0, false);
		return;
	}
	up->off += (uint32_t)r;
	http_body_init(&c->rs.sb, res->body, res->content_length, &lw->sh->o.lim);
	n = c->rs.sb.done ? 0 : http_body_feed(&c->rs.sb, up->buf + up->off, up->len - up->off);
	if (n < 0) {
		up->broken = true;
		n = 0;
	}
	if (client_gone(c)) {
		/* Envoy's DC, with response code 0: nothing of the answer went out */
		c->mt.status = 0;
		c->mt.sflags |= L7_FLAG(RM_STATS_F_DC);
		l7c_abort(lw, c);
		return;
	}
	c->rs.resp_sent_head = true;
	s[0].p = c->cl.rbuf;
	s[0].len = (uint32_t)h;
	s[1].p = up->buf + up->off;
	s[1].len = (uint32_t)n;
	if (n && (size_t)n <= lw->rbuf_size - (size_t)h) {
		/* The body read with the head follows it in one send: one SQE, one
		 * completion and one segment to the client instead of two of each (the
		 * copy costs less than the second send). up stays pinned for its n bytes,
		 * consumed when the send completes, as with two segments. */
		memcpy(c->cl.rbuf + h, s[1].p, (size_t)n);
		s[0].len += (uint32_t)n;
		l7c_send(lw, c, s, 1, up, (uint32_t)n);
		return;
	}
	l7c_send(lw, c, s, n ? 2 : 1, up, (uint32_t)n);
}

void l7c_resp_process(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_up *up = c->fw.up;
	struct http_response res;
	struct l7_seg s;
	ssize_t n;
	int r;

	if (!up || c->cl.csend_busy || c->state == L7C_CLOSING)
		return;
	while (!c->rs.resp_head) {
		r = http_parse_response(up->buf + up->off, up->len - up->off, c->rs.rparsed,
					&lw->sh->o.lim, c->rq.method, &res, c->cl.rhdrs,
					L7_MAX_HDRS);
		if (r == -2) {
			c->rs.rparsed = up->len - up->off;
			if (up->broken) {
				l7c_attempt_fail(lw, c, RETRY_F_RESET);
			} else if (up->len >= lw->umem_size) {
				l7c_host_result(lw, c, CB_GATEWAY);
				c->mt.sflags |= L7_FLAG(RM_STATS_F_UPE);
				l7c_reply(lw, c, 502, NULL, NULL, 0, false);
			} else {
				l7_up_arm_recv(lw, up);
			}
			return;
		}
		c->rs.rparsed = 0;
		if (r < 0) {
			l7c_host_result(lw, c, CB_GATEWAY);
			c->mt.sflags |= L7_FLAG(RM_STATS_F_UPE);
			up->broken = true;
			l7c_reply(lw, c, 502, NULL, NULL, 0, false);
			return;
		}
		if (res.status >= 100 && res.status < 200 && res.status != 101) {
			/* Interim (100 Continue): an HTTP/1.1 client gets it, 1.0 never. */
			if (c->rq.vminor >= 1) {
				s.p = up->buf + up->off;
				s.len = (uint32_t)r;
				l7c_send(lw, c, &s, 1, up, (uint32_t)r);
				return;
			}
			up->off += (uint32_t)r;
			continue;
		}
		resp_head(lw, c, &res, r);
		return;
	}
	if (c->rs.sb.done && !c->rs.resp_until_close) {
		l7c_resp_complete(lw, c);
		return;
	}
	if (up->len > up->off) {
		n = http_body_feed(&c->rs.sb, up->buf + up->off, up->len - up->off);
		if (n < 0) {
			l7c_abort(lw, c);
			return;
		}
		if (n > 0) {
			s.p = up->buf + up->off;
			s.len = (uint32_t)n;
			l7c_send(lw, c, &s, 1, up, (uint32_t)n);
			return;
		}
		if (c->rs.sb.done) {
			l7c_resp_complete(lw, c);
			return;
		}
	}
	if (up->broken) {
		/* EOF: the end of an until-close body or of a tunnel, else a cut response. */
		if (c->rs.resp_until_close || c->state == L7C_TUNNEL)
			l7c_close(lw, c);
		else
			l7c_abort(lw, c);
		return;
	}
	l7_up_arm_recv(lw, up);
}

void l7c_on_up_recv(struct l7_worker *lw, struct l7_conn *c, int32_t res)
{
	if (c->state == L7C_CLOSING)
		return;
	if (res <= 0 && !c->rs.resp_head && c->state == L7C_FWD) {
		l7c_attempt_fail(lw, c, RETRY_F_RESET);
		return;
	}
	l7c_resp_process(lw, c);
}
