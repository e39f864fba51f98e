/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The client side of an L7 connection: one request at a time (pipelined bytes wait
 * in the input buffer), reading and parsing the request head and a kept body, local
 * replies (Envoy's texts), sends to the client, the request's metrics, then the next
 * request or a close. Routing and attempts are in l7_fwd.c, responses in l7_resp.c.
 * Every send has one op in flight per direction.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ringmeshd/l7_int.h"

static void advance(struct l7_worker *lw, struct l7_conn *c);

/* ---- metrics ---- */

void l7c_record(struct l7_worker *lw, struct l7_conn *c)
{
	struct cfgw_cfg *cfg = c->cfg ? c->cfg : lw->cur;
	struct rm_stats_key k;
	uint32_t svc = c->d.outcome == ROUTE_FORWARD ? c->d.target_service : (uint32_t)c->svc;
	uint64_t body = c->bmode == L7_BM_KEPT ? c->req_end - c->head_len : c->rb.wire;
	bool ep = c->ep != L7_NONE && c->ep < cfg->n_eps;

	if (!lw->sh->stats || !c->in_req)
		return;
	stats_key_make(&k, route_service_host(cfg->t, svc), ep ? cfg->ep_version[c->ep] : NULL,
		       ep ? cfg->ep_workload[c->ep] : NULL, RM_STATS_HTTP);
	stats_request(c->st && ep ? c->st : stats_slot(lw->sh->stats, &k), c->status, c->sflags,
		      (l7_now_ns() - c->t0) / 1000, c->head_len + body, c->resp_bytes);
	c->in_req = false;
}

void l7c_drop_cfg(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->cfg)
		cfgw_drop(c->cfg, lw->id);
	c->cfg = NULL;
}

void l7c_timers_off(struct l7_worker *lw, struct l7_conn *c)
{
	l7_tmr_cancel(&lw->th, &c->t_route);
	l7_tmr_cancel(&lw->th, &c->t_try);
	l7_tmr_cancel(&lw->th, &c->t_delay);
}

/* ---- closing ---- */

void l7c_maybe_free(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->state == L7C_CLOSING && !c->inflight)
		l7c_free(lw, c);
}

static void cancel_client_ops(struct l7_worker *lw, struct l7_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->inflight && c->fd >= 0 && (sqe = ring_get_sqe(lw->w))) {
		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_CANCEL, 0, 0, 0));
	}
}

void l7c_abort(struct l7_worker *lw, struct l7_conn *c)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	if (c->state == L7C_CLOSING)
		return;
	l7c_record(lw, c);
	l7c_timers_off(lw, c);
	l7c_cb_release(lw, c);
	l7c_up_drop(lw, c);
	l7c_drop_cfg(lw, c);
	c->state = L7C_CLOSING;
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	shutdown(c->fd, SHUT_RDWR);
	cancel_client_ops(lw, c);
	l7c_maybe_free(lw, c);
}

/* Everything for the client is sent: close with a FIN. */
void l7c_close(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->state == L7C_CLOSING)
		return;
	l7c_record(lw, c);
	l7c_timers_off(lw, c);
	l7c_cb_release(lw, c);
	l7c_up_drop(lw, c);
	l7c_drop_cfg(lw, c);
	c->state = L7C_CLOSING;
	shutdown(c->fd, SHUT_WR);
	cancel_client_ops(lw, c);
	l7c_maybe_free(lw, c);
}

/* ---- client I/O ---- */

void l7c_arm_recv(struct l7_worker *lw, struct l7_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->crecv_busy || c->state == L7C_CLOSING || c->clen >= lw->cbuf_size)
		return;
	sqe = ring_get_sqe(lw->w);
	if (!sqe) {
		l7c_abort(lw, c);
		return;
	}
	io_uring_prep_recv(sqe, c->fd, c->cbuf + c->clen, lw->cbuf_size - c->clen, 0);
	io_uring_sqe_set_data64(sqe, l7_conn_ud(lw, c, RING_OP_L7_CRECV));
	c->crecv_busy = true;
	c->inflight++;
}

static void c_sent(struct l7_worker *lw, struct l7_conn *c);

static void c_send_next(struct l7_worker *lw, struct l7_conn *c)
{
	struct io_uring_sqe *sqe;

	while (c->cq_i < c->cq_n && c->cq_off >= c->cq[c->cq_i].len) {
		c->cq_i++;
		c->cq_off = 0;
	}
	if (c->cq_i >= c->cq_n) {
		c_sent(lw, c);
		return;
	}
	sqe = ring_get_sqe(lw->w);
	if (!sqe) {
		l7c_abort(lw, c);
		return;
	}
	io_uring_prep_send(sqe, c->fd, c->cq[c->cq_i].p + c->cq_off, c->cq[c->cq_i].len - c->cq_off,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, l7_conn_ud(lw, c, RING_OP_L7_CSEND));
	c->csend_busy = true;
	c->inflight++;
}

/* Queue segments to the client; seg from up's buffer (up_bytes > 0) pins up. */
void l7c_send(struct l7_worker *lw, struct l7_conn *c, const struct l7_seg *segs, unsigned int n,
	      struct l7_up *up, uint32_t up_bytes)
{
	memcpy(c->cq, segs, n * sizeof(*segs));
	c->cq_n = (uint8_t)n;
	c->cq_i = 0;
	c->cq_off = 0;
	c->cq_up = up;
	c->cq_up_bytes = up_bytes;
	if (up)
		up->ext++;
	c_send_next(lw, c);
}

static void release_cq_up(struct l7_worker *lw, struct l7_conn *c, bool consumed)
{
	struct l7_up *up = c->cq_up;

	if (!up)
		return;
	if (consumed && up == c->up)
		up->off += c->cq_up_bytes;
	c->cq_up = NULL;
	c->cq_up_bytes = 0;
	l7_up_ext_put(lw, up);
}

void l7c_on_send(struct l7_worker *lw, struct l7_conn *c, int32_t res)
{
	c->inflight--;
	c->csend_busy = false;
	if (c->state == L7C_CLOSING || res <= 0) {
		release_cq_up(lw, c, false);
		if (c->state == L7C_CLOSING)
			l7c_maybe_free(lw, c);
		else
			l7c_abort(lw, c);
		return;
	}
	c->cq_off += (uint32_t)res;
	c->resp_bytes += (uint64_t)res;
	c_send_next(lw, c);
}

/* ---- requests ---- */

void l7c_start(struct l7_worker *lw, struct l7_conn *c)
{
	c->state = L7C_HEAD;
	c->ep = L7_NONE;
	l7c_arm_recv(lw, c);
}

void l7c_next_request(struct l7_worker *lw, struct l7_conn *c)
{
	uint32_t used = c->bmode == L7_BM_STREAM ? 0 : c->req_end;

	if (used > c->clen)
		used = c->clen;
	memmove(c->cbuf, c->cbuf + used, c->clen - used);
	c->clen -= used;
	c->cparsed = 0;
	c->in_req = false;
	c->bmode = L7_BM_NONE;
	c->sflags = 0;
	c->status = 0;
	c->resp_head = c->resp_sent_head = c->resp_until_close = false;
	c->head_sent = c->req_done = false;
	c->sbase = c->sfwd = 0;
	c->req_end = c->head_len = 0;
	c->resp_bytes = 0;
	c->ep = L7_NONE;
	c->st = NULL;
	c->cbp = NULL;
	c->cbh = NULL;
	memset(&c->d, 0, sizeof(c->d));
	c->state = L7C_HEAD;
	if (c->clen)
		advance(lw, c);
	else
		l7c_arm_recv(lw, c);
}

static void c_sent(struct l7_worker *lw, struct l7_conn *c)
{
	switch (c->state) {
	case L7C_REPLY:
		l7c_record(lw, c);
		l7c_drop_cfg(lw, c);
		if (c->close_after)
			l7c_close(lw, c);
		else
			l7c_next_request(lw, c);
		break;
	case L7C_FWD:
	case L7C_TUNNEL: {
		struct l7_up *up = c->up;

		release_cq_up(lw, c, true);
		if (!up)
			break;
		if (c->state == L7C_FWD && c->resp_head && c->sb.done && !c->resp_until_close) {
			l7c_resp_complete(lw, c);
			break;
		}
		if (up->off == up->len && !up->recv_busy) {
			up->off = up->len = 0;
		} else if (up->off && !up->recv_busy) {
			memmove(up->buf, up->buf + up->off, up->len - up->off);
			up->len -= up->off;
			up->off = 0;
		}
		if (c->status == 101 && c->state == L7C_FWD) {
			/* The 101 went out: from now on bytes flow both ways untouched. */
			c->state = L7C_TUNNEL;
			http_body_init(&c->rb, HTTP_BODY_TUNNEL, 0, NULL);
			c->sbase = c->req_end;
			c->sfwd = c->clen > c->req_end ? c->clen - c->req_end : 0;
			c->bmode = L7_BM_STREAM;
			l7c_stream_push(lw, c);
		}
		if (c->state == L7C_TUNNEL && up->broken && up->off == up->len) {
			l7c_close(lw, c);
			break;
		}
		l7c_resp_process(lw, c);
		break;
	}
	default:
		release_cq_up(lw, c, false);
		break;
	}
}

/* A local reply (Envoy's texts); the client connection survives when framing allows. */
void l7c_reply(struct l7_worker *lw, struct l7_conn *c, int status, const char *body,
	       const struct http_header *hdrs, size_t n_hdrs, bool close)
{
	struct http_reply r;
	ssize_t n;
	struct l7_seg s;

	l7c_cb_release(lw, c);
	if (c->resp_sent_head || c->csend_busy) {
		l7c_abort(lw, c);
		return;
	}
	l7c_timers_off(lw, c);
	l7c_up_drop(lw, c);
	if (close || !c->req_keep || (c->bmode == L7_BM_STREAM && !c->rb.done) ||
	    c->state == L7C_BODY || c->usend_busy)
		c->close_after = true;
	memset(&r, 0, sizeof(r));
	r.status = status;
	r.content_type = "text/plain";
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.headers = hdrs;
	r.n_headers = n_hdrs;
	r.close = c->close_after;
	r.head = c->method == HTTP_M_HEAD;
	n = http_write_response(c->rbuf, lw->rbuf_size, &r);
	if (n < 0) {
		l7c_abort(lw, c);
		return;
	}
	c->status = status;
	c->state = L7C_REPLY;
	s.p = c->rbuf;
	s.len = (uint32_t)n;
	l7c_send(lw, c, &s, 1, NULL, 0);
}

/* ---- client input ---- */

static void advance(struct l7_worker *lw, struct l7_conn *c)
{
	const struct http_limits *lim = &lw->sh->o.lim;
	int r;

	if (c->state == L7C_BODY) {
		if (c->clen >= c->req_end)
			l7c_dispatch(lw, c);
		else
			l7c_arm_recv(lw, c);
		return;
	}
	r = http_parse_request(c->cbuf, c->clen, c->cparsed, lim, &c->req, c->hdrs, L7_MAX_HDRS);
	if (r == -2) {
		c->cparsed = c->clen;
		if (c->clen >= lim->max_head || c->clen >= lw->cbuf_size) {
			c->in_req = true;
			c->t0 = l7_now_ns();
			l7c_reply(lw, c, 431, NULL, NULL, 0, true);
		} else {
			l7c_arm_recv(lw, c);
		}
		return;
	}
	c->cparsed = 0;
	c->in_req = true;
	c->t0 = l7_now_ns();
	c->ep = L7_NONE;
	if (r < 0) {
		c->method = HTTP_M_OTHER;
		c->head_len = c->clen;
		l7c_reply(lw, c, http_err_status(c->req.err), NULL, NULL, 0, true);
		return;
	}
	c->head_len = (uint32_t)r;
	c->method = c->req.method_id;
	c->vminor = c->req.version_minor;
	c->req_keep = c->req.flags & HTTP_F_KEEP_ALIVE;
	c->upgrade = (c->req.flags & HTTP_F_UPGRADE) && (c->req.flags & HTTP_F_CONN_UPGRADE);
	c->req_end = c->head_len;
	http_body_init(&c->rb, c->req.body, c->req.content_length, lim);
	if (c->req.body == HTTP_BODY_NONE) {
		c->bmode = L7_BM_NONE;
	} else if (c->req.body == HTTP_BODY_LENGTH && !(c->req.flags & HTTP_F_EXPECT_CONTINUE) &&
		   c->req.content_length <= lw->sh->o.retry_buf &&
		   c->head_len + c->req.content_length <= lw->cbuf_size) {
		c->bmode = L7_BM_KEPT;
		c->req_end = c->head_len + (uint32_t)c->req.content_length;
		c->rb.wire = c->req.content_length;
		if (c->clen < c->req_end) {
			c->state = L7C_BODY;
			l7c_arm_recv(lw, c);
			return;
		}
	} else {
		ssize_t n = http_body_feed(&c->rb, c->cbuf + c->head_len, c->clen - c->head_len);

		if (n < 0) {
			l7c_reply(lw, c, http_err_status(c->rb.err), NULL, NULL, 0, true);
			return;
		}
		if (c->rb.done && !(c->req.flags & HTTP_F_EXPECT_CONTINUE) &&
		    (uint64_t)n <= lw->sh->o.retry_buf) {
			c->bmode = L7_BM_KEPT; /* a whole chunked body already here */
			c->req_end = c->head_len + (uint32_t)n;
		} else {
			c->bmode = L7_BM_STREAM;
			c->sbase = c->head_len;
			c->sfwd = (uint32_t)n;
		}
	}
	l7c_dispatch(lw, c);
}

void l7c_on_recv(struct l7_worker *lw, struct l7_conn *c, int32_t res)
{
	uint32_t old = c->clen;

	c->inflight--;
	c->crecv_busy = false;
	if (c->state == L7C_CLOSING) {
		l7c_maybe_free(lw, c);
		return;
	}
	if (res <= 0) {
		if (c->state == L7C_HEAD && c->clen == 0 && !c->csend_busy)
			l7c_close(lw, c); /* idle keep-alive connection closed by the client */
		else if (c->state == L7C_TUNNEL && c->up && !c->csend_busy)
			l7c_close(lw, c);
		else
			l7c_abort(lw, c);
		return;
	}
	c->clen += (uint32_t)res;
	switch (c->state) {
	case L7C_HEAD:
	case L7C_BODY:
		advance(lw, c);
		break;
	case L7C_FWD:
	case L7C_TUNNEL:
		if (c->bmode == L7_BM_STREAM && !c->rb.done) {
			ssize_t n = http_body_feed(&c->rb, c->cbuf + old, c->clen - old);

			if (n < 0) {
				l7c_abort(lw, c);
				return;
			}
			c->sfwd += (uint32_t)n;
		}
		l7c_stream_push(lw, c);
		break;
	default:
		break;
	}
}
