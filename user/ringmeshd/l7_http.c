/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The request life cycle of an L7 client connection: one request at a time
 * (pipelined bytes wait in the input buffer), parse, route, fault, forward with
 * timeouts and retries, stream both bodies, answer locally when Envoy would, then
 * the next request or a close. Every send has one op in flight per direction.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ringmeshd/cb.h"
#include "ringmeshd/l4.h"
#include "ringmeshd/l7_int.h"
#include "ringmeshd/lb.h"
#include "ringmeshd/trace.h"

#define MSG_UF "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
#define MSG_UC "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
#define MSG_UT "upstream request timeout"
#define MSG_UH "no healthy upstream"
#define MSG_UO "upstream connect error or disconnect/reset before headers. reset reason: overflow"
#define MSG_FI "fault filter abort"
#define MAX_EDITS 64

static const char *const trace_names[] = { "x-request-id", "b3", "x-b3-traceid", "x-b3-spanid",
					   "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
					   "traceparent" };

static void c_close(struct l7_worker *lw, struct l7_conn *c);
static void reply(struct l7_worker *lw, struct l7_conn *c, int status, const char *body,
		  const struct http_header *hdrs, size_t n_hdrs, bool close);
static void advance(struct l7_worker *lw, struct l7_conn *c);
static void attempt(struct l7_worker *lw, struct l7_conn *c);
static void attempt_fail(struct l7_worker *lw, struct l7_conn *c, enum l7_fail why);
static void resp_process(struct l7_worker *lw, struct l7_conn *c);
static void stream_push(struct l7_worker *lw, struct l7_conn *c);

#define FLAG(f) (1u << (f))

/* ---- metrics ---- */

static void record(struct l7_worker *lw, struct l7_conn *c)
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

static void drop_cfg(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->cfg)
		cfgw_drop(c->cfg, lw->id);
	c->cfg = NULL;
}

static void timers_off(struct l7_worker *lw, struct l7_conn *c)
{
	l7_tmr_cancel(&lw->th, &c->t_route);
	l7_tmr_cancel(&lw->th, &c->t_try);
	l7_tmr_cancel(&lw->th, &c->t_delay);
}

/* ---- circuit breaker ---- */

/* This attempt's result for outlier detection: once, and only for a chosen host. */
static void host_result(struct l7_worker *lw, struct l7_conn *c, enum cb_outcome o)
{
	if (c->cb_reported || !c->cbh)
		return;
	c->cb_reported = true;
	cb_host_result(lw->sh->cb, c->cbh, o, l7_now_ns());
}

/* The current attempt is over (answered, failed, or given up while pending). */
static void attempt_end(struct l7_worker *lw, struct l7_conn *c)
{
	l7_cb_wait_leave(lw, c);
	if (c->cb_req) {
		c->cb_req = false;
		cb_request_finish(c->cbp, c->cbh);
	}
	if (c->cb_retry) {
		c->cb_retry = false;
		cb_retry_finish(c->cbp);
	}
}

/* The request is over: nothing of it may stay counted. */
static void cb_release(struct l7_worker *lw, struct l7_conn *c)
{
	attempt_end(lw, c);
	if (c->retry_next) {
		c->retry_next = false;
		cb_retry_finish(c->cbp);
	}
}

/* May the request be retried under httpMaxRetries? The slot is the next attempt's. */
static bool retry_admit(struct l7_conn *c)
{
	if (c->retry_next)
		return true;
	if (cb_retry_try_start(c->cbp))
		return false;
	c->retry_next = true;
	return true;
}

static void overflow(struct l7_worker *lw, struct l7_conn *c)
{
	static const struct http_header h = { { "x-envoy-overloaded", 18 }, { "true", 4 } };

	c->sflags |= FLAG(RM_STATS_F_UO);
	reply(lw, c, 503, MSG_UO, &h, 1, false);
}

static void up_drop(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->up) {
		c->up->owner = NULL;
		l7_up_release(lw, c->up, false);
		c->up = NULL;
	}
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
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (c->state == L7C_CLOSING)
		return;
	record(lw, c);
	timers_off(lw, c);
	cb_release(lw, c);
	up_drop(lw, c);
	drop_cfg(lw, c);
	c->state = L7C_CLOSING;
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	shutdown(c->fd, SHUT_RDWR);
	cancel_client_ops(lw, c);
	l7c_maybe_free(lw, c);
}

/* Everything for the client is sent: close with a FIN. */
static void c_close(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->state == L7C_CLOSING)
		return;
	record(lw, c);
	timers_off(lw, c);
	cb_release(lw, c);
	up_drop(lw, c);
	drop_cfg(lw, c);
	c->state = L7C_CLOSING;
	shutdown(c->fd, SHUT_WR);
	cancel_client_ops(lw, c);
	l7c_maybe_free(lw, c);
}

/* ---- client I/O ---- */

static void c_arm_recv(struct l7_worker *lw, struct l7_conn *c)
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
	io_uring_prep_send(sqe, c->fd, c->cq[c->cq_i].p + c->cq_off,
			   c->cq[c->cq_i].len - c->cq_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, l7_conn_ud(lw, c, RING_OP_L7_CSEND));
	c->csend_busy = true;
	c->inflight++;
}

/* Queue segments to the client; seg from up's buffer (up_bytes > 0) pins up. */
static void c_send(struct l7_worker *lw, struct l7_conn *c, const struct l7_seg *segs,
		   unsigned int n, struct l7_up *up, uint32_t up_bytes)
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

/* ---- upstream sends ---- */

static void u_send_next(struct l7_worker *lw, struct l7_conn *c)
{
	struct io_uring_sqe *sqe;

	while (c->uq_i < c->uq_n && c->uq_off >= c->uq[c->uq_i].len) {
		c->uq_i++;
		c->uq_off = 0;
	}
	if (c->uq_i >= c->uq_n)
		return;
	sqe = ring_get_sqe(lw->w);
	if (!sqe) {
		l7c_abort(lw, c);
		return;
	}
	io_uring_prep_send(sqe, c->uq_up->fd, c->uq[c->uq_i].p + c->uq_off,
			   c->uq[c->uq_i].len - c->uq_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, l7_conn_ud(lw, c, RING_OP_L7_USEND));
	c->usend_busy = true;
	c->inflight++;
}

static void u_send(struct l7_worker *lw, struct l7_conn *c, const struct l7_seg *segs,
		   unsigned int n)
{
	memcpy(c->uq, segs, n * sizeof(*segs));
	c->uq_n = (uint8_t)n;
	c->uq_i = 0;
	c->uq_off = 0;
	c->uq_up = c->up;
	c->up->ext++;
	u_send_next(lw, c);
	if (!c->usend_busy) { /* nothing to send */
		c->uq_up = NULL;
		l7_up_ext_put(lw, c->up);
	}
}

static void resp_complete(struct l7_worker *lw, struct l7_conn *c);

/* The queued request bytes are at the upstream. */
static void u_sent(struct l7_worker *lw, struct l7_conn *c)
{
	if (!c->head_sent) {
		c->head_sent = true;
		if (c->bmode != L7_BM_STREAM) {
			c->req_done = true;
			return;
		}
	}
	if (c->bmode == L7_BM_STREAM || c->state == L7C_TUNNEL) {
		uint32_t used = c->sbase + c->sfwd;

		memmove(c->cbuf, c->cbuf + used, c->clen - used);
		c->clen -= used;
		c->sbase = 0;
		c->sfwd = 0;
		if (c->state != L7C_TUNNEL && c->rb.done) {
			c->req_done = true;
			if (c->resp_head && c->sb.done)
				resp_complete(lw, c);
			return;
		}
		c_arm_recv(lw, c);
	}
}

void l7c_on_usend(struct l7_worker *lw, struct l7_conn *c, int32_t res)
{
	struct l7_up *up = c->uq_up;

	c->inflight--;
	c->usend_busy = false;
	if (res > 0 && up)
		up->sent += (uint64_t)res;
	if (c->state == L7C_CLOSING || res <= 0 || up != c->up) {
		c->uq_up = NULL;
		if (up)
			l7_up_ext_put(lw, up);
		if (c->state == L7C_CLOSING) {
			l7c_maybe_free(lw, c);
		} else if (c->retry_wait) {
			c->retry_wait = false;
			attempt_fail(lw, c, c->why);
		} else if (res <= 0 && up == c->up) {
			if (!c->resp_head && c->state == L7C_FWD)
				attempt_fail(lw, c, L7_F_RESET);
			else if (c->state == L7C_TUNNEL || c->resp_head)
				l7c_abort(lw, c);
		}
		return;
	}
	c->uq_off += (uint32_t)res;
	u_send_next(lw, c);
	if (!c->usend_busy) {
		c->uq_up = NULL;
		l7_up_ext_put(lw, up);
		u_sent(lw, c);
	}
}

/* STREAM / tunnel: send what the client gave us, or read more. */
static void stream_push(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_seg s = { c->cbuf + c->sbase, c->sfwd };

	if (c->usend_busy || !c->up)
		return;
	if (c->sfwd) {
		u_send(lw, c, &s, 1);
		return;
	}
	if (c->state == L7C_TUNNEL || !c->rb.done)
		c_arm_recv(lw, c);
}

/* ---- requests ---- */

void l7c_start(struct l7_worker *lw, struct l7_conn *c)
{
	c->state = L7C_HEAD;
	c->ep = L7_NONE;
	c_arm_recv(lw, c);
}

static void mk_rr(struct l7_conn *c, struct route_req *rr)
{
	const struct http_request *q = &c->req;

	memset(rr, 0, sizeof(*rr));
	rr->method.p = q->method.p;
	rr->method.len = q->method.len;
	rr->path.p = q->path.p;
	rr->path.len = q->path.len;
	rr->query.p = q->query.p;
	rr->query.len = q->query.len;
	rr->has_query = q->has_query;
	if (q->form == HTTP_TF_ABSOLUTE && q->authority.len) {
		rr->authority.p = q->authority.p;
		rr->authority.len = q->authority.len;
	} else {
		rr->authority.p = q->host.p;
		rr->authority.len = q->host.len;
	}
	rr->scheme.p = "http";
	rr->scheme.len = 4;
	rr->hdr_get = l7_hdr_get;
	rr->hdr_ctx = q;
}

static void next_request(struct l7_worker *lw, struct l7_conn *c)
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
		c_arm_recv(lw, c);
}

static void c_sent(struct l7_worker *lw, struct l7_conn *c)
{
	switch (c->state) {
	case L7C_REPLY:
		record(lw, c);
		drop_cfg(lw, c);
		if (c->close_after)
			c_close(lw, c);
		else
			next_request(lw, c);
		break;
	case L7C_FWD:
	case L7C_TUNNEL: {
		struct l7_up *up = c->up;

		release_cq_up(lw, c, true);
		if (!up)
			break;
		if (c->state == L7C_FWD && c->resp_head && c->sb.done && !c->resp_until_close) {
			resp_complete(lw, c);
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
			stream_push(lw, c);
		}
		if (c->state == L7C_TUNNEL && up->broken && up->off == up->len) {
			c_close(lw, c);
			break;
		}
		resp_process(lw, c);
		break;
	}
	default:
		release_cq_up(lw, c, false);
		break;
	}
}

/* A local reply (Envoy's texts); the client connection survives when framing allows. */
static void reply(struct l7_worker *lw, struct l7_conn *c, int status, const char *body,
		  const struct http_header *hdrs, size_t n_hdrs, bool close)
{
	struct http_reply r;
	ssize_t n;
	struct l7_seg s;

	cb_release(lw, c);
	if (c->resp_sent_head || c->csend_busy) {
		l7c_abort(lw, c);
		return;
	}
	timers_off(lw, c);
	up_drop(lw, c);
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
	c_send(lw, c, &s, 1, NULL, 0);
}

static void after_delay(struct l7_worker *lw, struct l7_conn *c);

static void dispatch(struct l7_worker *lw, struct l7_conn *c)
{
	struct route_req rr;
	int svc;

	c->cfg = lw->cur;
	cfgw_hold(c->cfg, lw->id);
	svc = route_find_service(c->cfg->t, &c->orig.addr, c->orig.port);
	mk_rr(c, &rr);
	if (svc < 0 || route_decide(c->cfg->t, (uint32_t)svc, &rr, l7_rand(lw), &c->d)) {
		c->sflags |= FLAG(RM_STATS_F_NR);
		reply(lw, c, 404, NULL, NULL, 0, false);
		return;
	}
	c->svc = svc;
	if (c->d.delay_ns) {
		c->sflags |= FLAG(RM_STATS_F_DI);
		c->state = L7C_DELAY;
		if (!l7_tmr_arm(&lw->th, &c->t_delay, l7_now_ns() + c->d.delay_ns))
			return;
	}
	after_delay(lw, c);
}

static ssize_t build_head(struct l7_worker *lw, struct l7_conn *c)
{
	const char *rm[MAX_EDITS];
	struct http_header set[MAX_EDITS], add[MAX_EDITS];
	struct http_slice target, auth;
	struct trace_hdr th[TRACE_MAX_HDRS];
	struct trace_in tin;
	struct trace_ctx tin_ctx, tout;
	struct trace_opts to = { false, false };
	struct trace_rng rng = { (uint64_t(*)(void *))l7_rand, lw };
	struct http_edit ed;
	struct route_req rr;
	size_t n_rm = 0, n_set = 0, n_add = 0;
	char *scratch = c->rbuf; /* free until the response: path and trace values */
	int r;

	memset(&ed, 0, sizeof(ed));
	memset(&tin, 0, sizeof(tin));
	for (size_t i = 0; i < c->req.n_headers; i++)
		trace_in_add(&tin, c->req.headers[i].name.p, c->req.headers[i].name.len,
			     c->req.headers[i].value.p, c->req.headers[i].value.len);
	trace_parse(&tin, &tin_ctx);
	trace_next(&tin_ctx, &to, &rng, &tout);
	r = trace_inject(&tout, th, TRACE_MAX_HDRS, scratch, TRACE_HDR_BUF);
	for (size_t i = 0; i < sizeof(trace_names) / sizeof(trace_names[0]); i++)
		rm[n_rm++] = trace_names[i];
	for (int i = 0; i < r && n_add < MAX_EDITS; i++) {
		add[n_add].name.p = th[i].name;
		add[n_add].name.len = strlen(th[i].name);
		add[n_add].value.p = th[i].value;
		add[n_add].value.len = th[i].vlen;
		n_add++;
	}
	for (size_t i = 0; i < c->d.n_hdrops; i++) {
		const struct route_hdrop *op = &c->d.hdrops[i];
		struct http_header h = { { op->name, strlen(op->name) },
					 { op->value, strlen(op->value) } };

		if (op->response)
			continue;
		if (op->kind == RM_HDR_REMOVE && n_rm < MAX_EDITS)
			rm[n_rm++] = op->name;
		else if (op->kind == RM_HDR_SET && n_set < MAX_EDITS)
			set[n_set++] = h;
		else if (op->kind == RM_HDR_ADD && n_add < MAX_EDITS)
			add[n_add++] = h;
	}
	ed.remove = rm;
	ed.n_remove = n_rm;
	ed.set = set;
	ed.n_set = n_set;
	ed.add = add;
	ed.n_add = n_add;
	ed.flags = HTTP_EDIT_STRIP_HOP | (c->upgrade ? HTTP_EDIT_KEEP_UPGRADE : 0);
	if (c->d.rewrite_uri) {
		mk_rr(c, &rr);
		r = route_rewrite_path(&c->d, &rr, scratch + TRACE_HDR_BUF,
				       lw->rbuf_size - TRACE_HDR_BUF);
		if (r < 0)
			return r;
		target.p = scratch + TRACE_HDR_BUF;
		target.len = (size_t)r;
		ed.target = &target;
	}
	if (c->d.rewrite_authority && c->d.rewrite_authority[0]) {
		auth.p = c->d.rewrite_authority;
		auth.len = strlen(auth.p);
		ed.authority = &auth;
	}
	return http_write_request(c->obuf, lw->obuf_size, &c->req, &ed);
}

static void after_delay(struct l7_worker *lw, struct l7_conn *c)
{
	char loc[2048];
	struct route_req rr;
	ssize_t n;

	switch (c->d.outcome) {
	case ROUTE_NO_ROUTE:
		c->sflags |= FLAG(RM_STATS_F_NR);
		reply(lw, c, 404, NULL, NULL, 0, false);
		return;
	case ROUTE_ABORT:
		c->sflags |= FLAG(RM_STATS_F_FI);
		reply(lw, c, c->d.abort_status, MSG_FI, NULL, 0, false);
		return;
	case ROUTE_REDIRECT: {
		struct http_header h = { { "location", 8 }, { loc, 0 } };
		int r;

		mk_rr(c, &rr);
		r = route_redirect_location(&c->d, &rr, loc, sizeof(loc));
		if (r < 0) {
			reply(lw, c, 500, NULL, NULL, 0, true);
			return;
		}
		h.value.len = (size_t)r;
		reply(lw, c, c->d.redirect_code, NULL, &h, 1, false);
		return;
	}
	case ROUTE_FORWARD:
		break;
	}
	n = build_head(lw, c);
	if (n < 0) {
		reply(lw, c, n == -ENOSPC ? 431 : 400, NULL, NULL, 0, true);
		return;
	}
	c->olen = (uint32_t)n;
	c->tries_left = 1 + (c->bmode == L7_BM_STREAM ? 0 : c->d.retry_attempts);
	c->state = L7C_FWD;
	if (c->d.timeout_ns)
		l7_tmr_arm(&lw->th, &c->t_route, l7_now_ns() + c->d.timeout_ns);
	attempt(lw, c);
}

static void attempt(struct l7_worker *lw, struct l7_conn *c)
{
	struct cfgw_cfg *cfg = c->cfg;
	const uint32_t *m;
	size_t n, pos;
	uint32_t pool, lbp, ep;
	struct route_endpoint e;
	struct rm_orig o;
	struct pool_key key;
	struct sockaddr_storage ss;
	socklen_t slen;
	struct rm_stats_key k;
	struct rm_cb_host *const *hosts = NULL;
	struct cb_lb_ctx lbc;
	struct lb_hooks hk;
	const struct lb_hooks *hkp = NULL;
	__be16 sport = c->d.target_port ? c->d.target_port : c->port;
	int err = 0;

	c->tries_left--;
	c->head_sent = c->req_done = false;
	c->rparsed = 0;
	c->cb_reported = false;
	c->cb_retry = c->retry_next; /* a retry's slot, taken before it was decided */
	c->retry_next = false;
	if (route_pool(cfg->t, c->d.target_service, c->d.target_subset, &pool, &m, &n, &lbp) ||
	    !n || pool >= cfg->n_pools) {
		c->sflags |= FLAG(RM_STATS_F_UH);
		reply(lw, c, 503, MSG_UH, NULL, 0, false);
		return;
	}
	c->cbh = NULL;
	if (lw->sh->cb && cfg->cbp) {
		c->cbp = cfg->cbp[pool].p;
		hosts = cfgw_cb_hosts(cfg, pool,
				      route_service_port(cfg->t, c->d.target_service, sport, NULL));
		lbc.cb = lw->sh->cb;
		lbc.members = m;
		lbc.hosts = hosts;
		lbc.n = hosts ? n : 0;
		lbc.now = l7_now_ns();
		hk.available = cb_lb_available;
		hk.active = cb_lb_active;
		hk.ctx = &lbc;
		hkp = &hk;
	}
	/* -ENOENT: every member ejected */
	if (lb_pick(&cfg->lb[pool], m, n, hkp, l7_rand(lw), &pos) ||
	    route_endpoint(cfg->t, (ep = m[pos]), &e)) {
		c->sflags |= FLAG(RM_STATS_F_UH);
		reply(lw, c, 503, MSG_UH, NULL, 0, false);
		return;
	}
	c->cbh = hosts ? hosts[pos] : NULL;
	if (cb_request_try_start(c->cbp, c->cbh)) {
		overflow(lw, c);
		return;
	}
	c->cb_req = true;
	memset(&o, 0, sizeof(o));
	o.addr = e.addr;
	o.family = e.family;
	o.port = route_endpoint_port(cfg->t, ep, sport);
	if (l4_orig_to_sockaddr(&o, &ss, &slen)) {
		c->sflags |= FLAG(RM_STATS_F_UH);
		reply(lw, c, 503, MSG_UH, NULL, 0, false);
		return;
	}
	memset(&key, 0, sizeof(key));
	key.addr = o.addr;
	key.port = o.port;
	key.family = o.family;
	key.group = c->cbp ? cb_pool_index(lw->sh->cb, c->cbp) + 1 : 0;
	c->ukey = key;
	c->uss = ss;
	c->uslen = slen;
	c->ep = ep;
	c->st = NULL;
	if (lw->sh->stats) {
		stats_key_make(&k, route_service_host(cfg->t, c->d.target_service),
			       ep < cfg->n_eps ? cfg->ep_version[ep] : NULL,
			       ep < cfg->n_eps ? cfg->ep_workload[ep] : NULL, RM_STATS_HTTP);
		c->st = stats_slot(lw->sh->stats, &k);
	}
	if (c->d.retry_per_try_ns && c->d.retry_attempts)
		l7_tmr_arm(&lw->th, &c->t_try, l7_now_ns() + c->d.retry_per_try_ns);
	/* requests wait here, or (at the limit) in another worker: queue behind them */
	if (c->cbp && (lw->wq_head[l7_cb_slot(lw, c->cbp)] ||
		       (__atomic_load_n(&c->cbp->connections, __ATOMIC_RELAXED) >=
			    __atomic_load_n(&c->cbp->lim.max_connections, __ATOMIC_RELAXED) &&
			l7_cb_others_wait(lw, c->cbp)))) {
		c->up = NULL;
		err = -EAGAIN;
	} else {
		c->up = l7_up_get(lw, &key, &ss, slen, c->st, c->cbp, &err);
	}
	if (!c->up) {
		if (err == -EAGAIN) {
			/* maxConnections reached: wait as pending, if there is room */
			if (cb_pending_try_enter(c->cbp)) {
				overflow(lw, c);
				return;
			}
			l7_cb_wait(lw, c);
			l7_cb_free_idle(lw, c->cbp);
			return;
		}
		attempt_fail(lw, c, L7_F_CONNECT);
		return;
	}
	c->up->owner = c;
	if (c->up->state == L7U_BUSY)
		l7c_on_up_connected(lw, c, 0);
}

int l7c_resume(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_up *up;
	int err = 0;

	if (l7_cb_take_handoff(lw, l7_cb_slot(lw, c->cbp))) {
		/* a slot another worker gave us: already counted */
		up = l7_up_get(lw, &c->ukey, &c->uss, c->uslen, c->st, NULL, &err);
		if (up && up->state == L7U_CONNECTING)
			up->cbp = c->cbp;
		else
			cb_conn_close(c->cbp); /* an idle one served instead, or none */
	} else {
		up = l7_up_get(lw, &c->ukey, &c->uss, c->uslen, c->st, c->cbp, &err);
	}
	if (!up && err == -EAGAIN) {
		/* an idle connection of this pool to another host holds the slot here */
		l7_cb_free_idle(lw, c->cbp);
		return -EAGAIN;
	}
	l7_cb_wait_leave(lw, c);
	if (!up) {
		attempt_fail(lw, c, L7_F_CONNECT);
		return 0;
	}
	c->up = up;
	up->owner = c;
	if (up->state == L7U_BUSY)
		l7c_on_up_connected(lw, c, 0);
	return 0;
}

void l7c_on_up_connected(struct l7_worker *lw, struct l7_conn *c, int32_t res)
{
	struct l7_seg s[2];
	unsigned int n = 1;

	if (res < 0) {
		attempt_fail(lw, c, L7_F_CONNECT);
		return;
	}
	c->up->requests++;
	s[0].p = c->obuf;
	s[0].len = c->olen;
	if (c->bmode == L7_BM_KEPT) {
		s[1].p = c->cbuf + c->head_len;
		s[1].len = c->req_end - c->head_len;
		n = 2;
	} else if (c->bmode == L7_BM_STREAM) {
		c->sbase = c->head_len;
		s[1].p = c->cbuf + c->sbase;
		s[1].len = c->sfwd;
		n = 2;
	}
	l7_up_arm_recv(lw, c->up);
	u_send(lw, c, s, n);
	if (!c->usend_busy && c->state == L7C_FWD)
		u_sent(lw, c);
}

static void attempt_fail(struct l7_worker *lw, struct l7_conn *c, enum l7_fail why)
{
	if (c->up) { /* the host was reached or tried (not a local failure, not pending) */
		if (why == L7_F_CONNECT)
			host_result(lw, c, CB_CONNECT_FAIL);
		else if (why == L7_F_RESET)
			host_result(lw, c, CB_RESET);
		else if (why == L7_F_TRY_TIMEOUT)
			host_result(lw, c, CB_TIMEOUT);
	}
	attempt_end(lw, c);
	c->why = why;
	l7_tmr_cancel(&lw->th, &c->t_try);
	up_drop(lw, c);
	if (c->usend_busy) {
		c->retry_wait = true; /* its completion comes back here */
		return;
	}
	if (c->csend_busy) {
		l7c_abort(lw, c);
		return;
	}
	if (c->tries_left && c->bmode != L7_BM_STREAM && l7_retriable_fail(why, c->d.retry_on) &&
	    retry_admit(c)) {
		attempt(lw, c);
		return;
	}
	if (c->d.retry_attempts && why != L7_F_STATUS && l7_retriable_fail(why, c->d.retry_on))
		c->sflags |= FLAG(RM_STATS_F_URX);
	switch (why) {
	case L7_F_CONNECT:
		c->sflags |= FLAG(RM_STATS_F_UF);
		reply(lw, c, 503, MSG_UF, NULL, 0, false);
		break;
	case L7_F_TRY_TIMEOUT:
		c->sflags |= FLAG(RM_STATS_F_UT);
		reply(lw, c, 504, MSG_UT, NULL, 0, false);
		break;
	default:
		c->sflags |= FLAG(RM_STATS_F_UC);
		reply(lw, c, 503, MSG_UC, NULL, 0, false);
		break;
	}
}

/* ---- responses ---- */

static void resp_complete(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_up *up = c->up;

	timers_off(lw, c);
	cb_release(lw, c);
	c->up = NULL;
	if (up) {
		up->owner = NULL;
		l7_up_release(lw, up,
			      c->req_done && c->up_keep && !c->resp_until_close &&
				  cb_conn_keep(up->cbp, up->requests));
	}
	if (!c->req_done)
		c->close_after = true;
	record(lw, c);
	drop_cfg(lw, c);
	if (c->close_after)
		c_close(lw, c);
	else
		next_request(lw, c);
}

static void resp_head(struct l7_worker *lw, struct l7_conn *c, struct http_response *res, int r)
{
	struct l7_up *up = c->up;
	unsigned int fl = 0;
	struct l7_seg s[2];
	ssize_t h, n;

	host_result(lw, c, cb_outcome_of_status(res->status));
	if (c->tries_left && c->bmode != L7_BM_STREAM &&
	    l7_retriable_status(res->status, c->d.retry_on) && retry_admit(c)) {
		attempt_fail(lw, c, L7_F_STATUS);
		return;
	}
	if (c->d.retry_attempts && l7_retriable_status(res->status, c->d.retry_on))
		c->sflags |= FLAG(RM_STATS_F_URX);
	l7_tmr_cancel(&lw->th, &c->t_try);
	c->resp_head = true;
	c->status = res->status;
	c->up_keep = res->flags & HTTP_F_KEEP_ALIVE;
	c->resp_until_close = res->body == HTTP_BODY_UNTIL_CLOSE;
	if (!c->req_keep || c->resp_until_close || !c->req_done)
		c->close_after = true;
	if (res->status == 101)
		fl |= L7_RH_UPGRADE;
	else if (c->close_after)
		fl |= L7_RH_CLOSE;
	else if (c->vminor == 0)
		fl |= L7_RH_KEEPALIVE;
	h = l7_write_response_head(c->rbuf, lw->rbuf_size, res, c->d.hdrops, c->d.n_hdrops, fl);
	if (h < 0) {
		c->sflags |= FLAG(RM_STATS_F_UPE);
		up->broken = true;
		reply(lw, c, 502, NULL, NULL, 0, false);
		return;
	}
	up->off += (uint32_t)r;
	http_body_init(&c->sb, res->body, res->content_length, &lw->sh->o.lim);
	n = c->sb.done ? 0 : http_body_feed(&c->sb, up->buf + up->off, up->len - up->off);
	if (n < 0) {
		up->broken = true;
		n = 0;
	}
	c->resp_sent_head = true;
	s[0].p = c->rbuf;
	s[0].len = (uint32_t)h;
	s[1].p = up->buf + up->off;
	s[1].len = (uint32_t)n;
	c_send(lw, c, s, n ? 2 : 1, up, (uint32_t)n);
}

static void resp_process(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_up *up = c->up;
	struct http_response res;
	struct l7_seg s;
	ssize_t n;
	int r;

	if (!up || c->csend_busy || c->state == L7C_CLOSING)
		return;
	while (!c->resp_head) {
		r = http_parse_response(up->buf + up->off, up->len - up->off, c->rparsed,
					&lw->sh->o.lim, c->method, &res, c->rhdrs, L7_MAX_HDRS);
		if (r == -2) {
			c->rparsed = up->len - up->off;
			if (up->broken) {
				attempt_fail(lw, c, L7_F_RESET);
			} else if (up->len >= lw->umem_size) {
				host_result(lw, c, CB_GATEWAY);
				c->sflags |= FLAG(RM_STATS_F_UPE);
				reply(lw, c, 502, NULL, NULL, 0, false);
			} else {
				l7_up_arm_recv(lw, up);
			}
			return;
		}
		c->rparsed = 0;
		if (r < 0) {
			host_result(lw, c, CB_GATEWAY);
			c->sflags |= FLAG(RM_STATS_F_UPE);
			up->broken = true;
			reply(lw, c, 502, NULL, NULL, 0, false);
			return;
		}
		if (res.status >= 100 && res.status < 200 && res.status != 101) {
			/* Interim (100 Continue): an HTTP/1.1 client gets it, 1.0 never. */
			if (c->vminor >= 1) {
				s.p = up->buf + up->off;
				s.len = (uint32_t)r;
				c_send(lw, c, &s, 1, up, (uint32_t)r);
				return;
			}
			up->off += (uint32_t)r;
			continue;
		}
		resp_head(lw, c, &res, r);
		return;
	}
	if (c->sb.done && !c->resp_until_close) {
		resp_complete(lw, c);
		return;
	}
	if (up->len > up->off) {
		n = http_body_feed(&c->sb, up->buf + up->off, up->len - up->off);
		if (n < 0) {
			l7c_abort(lw, c);
			return;
		}
		if (n > 0) {
			s.p = up->buf + up->off;
			s.len = (uint32_t)n;
			c_send(lw, c, &s, 1, up, (uint32_t)n);
			return;
		}
		if (c->sb.done) {
			resp_complete(lw, c);
			return;
		}
	}
	if (up->broken) {
		/* EOF: the end of an until-close body or of a tunnel, else a cut response. */
		if (c->resp_until_close || c->state == L7C_TUNNEL)
			c_close(lw, c);
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
	if (res <= 0 && !c->resp_head && c->state == L7C_FWD) {
		attempt_fail(lw, c, L7_F_RESET);
		return;
	}
	resp_process(lw, c);
}

/* ---- client input ---- */

static void advance(struct l7_worker *lw, struct l7_conn *c)
{
	const struct http_limits *lim = &lw->sh->o.lim;
	int r;

	if (c->state == L7C_BODY) {
		if (c->clen >= c->req_end)
			dispatch(lw, c);
		else
			c_arm_recv(lw, c);
		return;
	}
	r = http_parse_request(c->cbuf, c->clen, c->cparsed, lim, &c->req, c->hdrs,
			       L7_MAX_HDRS);
	if (r == -2) {
		c->cparsed = c->clen;
		if (c->clen >= lim->max_head || c->clen >= lw->cbuf_size) {
			c->in_req = true;
			c->t0 = l7_now_ns();
			reply(lw, c, 431, NULL, NULL, 0, true);
		} else {
			c_arm_recv(lw, c);
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
		reply(lw, c, http_err_status(c->req.err), NULL, NULL, 0, true);
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
			c_arm_recv(lw, c);
			return;
		}
	} else {
		ssize_t n = http_body_feed(&c->rb, c->cbuf + c->head_len, c->clen - c->head_len);

		if (n < 0) {
			reply(lw, c, http_err_status(c->rb.err), NULL, NULL, 0, true);
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
	dispatch(lw, c);
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
			c_close(lw, c); /* idle keep-alive connection closed by the client */
		else if (c->state == L7C_TUNNEL && c->up && !c->csend_busy)
			c_close(lw, c);
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
		stream_push(lw, c);
		break;
	default:
		break;
	}
}

void l7c_on_timer(struct l7_worker *lw, struct l7_conn *c, struct l7_tmr *t)
{
	switch (t->kind) {
	case L7_T_DELAY:
		if (c->state == L7C_DELAY)
			after_delay(lw, c);
		break;
	case L7_T_ROUTE:
		if (c->state != L7C_FWD)
			break;
		c->sflags |= FLAG(RM_STATS_F_UT);
		if (c->up && !c->resp_head)
			host_result(lw, c, CB_TIMEOUT);
		if (c->resp_sent_head) {
			l7c_abort(lw, c);
			break;
		}
		if (c->up)
			c->up->broken = true;
		if (c->usend_busy || c->csend_busy)
			c->close_after = true;
		reply(lw, c, 504, MSG_UT, NULL, 0, false);
		break;
	case L7_T_TRY:
		if (c->state == L7C_FWD && !c->resp_head)
			attempt_fail(lw, c, L7_F_TRY_TIMEOUT);
		break;
	default:
		break;
	}
}
