/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The forwarding of an L7 request: route and fault (delay, abort, redirect), the
 * upstream request head, attempts (endpoint choice, breaker admission, a pooled or
 * new connection, or a wait as pending), sends of the head and body to the
 * upstream, retries and the route/per-try timeouts. The breaker counts of an
 * attempt (requests, retries, the outlier result) are taken and given back here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "policy/cb.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/l7_int.h"
#include "ringmeshd/pick.h"
#include "policy/lb.h"
#include "policy/trace.h"

#define MSG_UF                                                                                     \
	"upstream connect error or disconnect/reset before headers. reset reason: connection "     \
	"failure"
#define MSG_UC                                                                                     \
	"upstream connect error or disconnect/reset before headers. reset reason: connection "     \
	"termination"
#define MSG_UT "upstream request timeout"
#define MSG_UH "no healthy upstream"
#define MSG_UO "upstream connect error or disconnect/reset before headers. reset reason: overflow"
#define MSG_FI "fault filter abort"
#define MAX_EDITS 64

static const char *const trace_names[] = {
    "x-request-id",	 "b3",		 "x-b3-traceid", "x-b3-spanid",
    "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",	 "traceparent"};

static void attempt(struct l7_worker *lw, struct l7_conn *c);
static void after_delay(struct l7_worker *lw, struct l7_conn *c);

/* ---- circuit breaker ---- */

/* This attempt's result for outlier detection: once, and only for a chosen host. */
void l7c_host_result(struct l7_worker *lw, struct l7_conn *c, enum cb_outcome o)
{
	if (c->fw.cb_reported || !c->fw.cbh)
		return;
	c->fw.cb_reported = true;
	cb_host_result(lw->sh->cb, c->fw.cbh, o, mono_ns());
}

/* The current attempt is over (answered, failed, or given up while pending). */
static void attempt_end(struct l7_worker *lw, struct l7_conn *c)
{
	l7_cb_wait_leave(lw, c);
	if (c->fw.cb_req) {
		c->fw.cb_req = false;
		cb_request_finish(c->fw.cbp, c->fw.cbh);
	}
	if (c->fw.cb_retry) {
		c->fw.cb_retry = false;
		cb_retry_finish(c->fw.cbp);
	}
}

/* The request is over: nothing of it may stay counted. */
void l7c_cb_release(struct l7_worker *lw, struct l7_conn *c)
{
	attempt_end(lw, c);
	if (c->fw.retry_next) {
		c->fw.retry_next = false;
		cb_retry_finish(c->fw.cbp);
	}
}

/* May the request be retried under httpMaxRetries? The slot is the next attempt's. */
bool l7c_retry_admit(struct l7_conn *c)
{
	if (c->fw.retry_next)
		return true;
	if (cb_retry_try_start(c->fw.cbp))
		return false;
	c->fw.retry_next = true;
	return true;
}

static void overflow(struct l7_worker *lw, struct l7_conn *c)
{
	static const struct http_header h = {{"x-envoy-overloaded", 18}, {"true", 4}};

	c->mt.sflags |= L7_FLAG(RM_STATS_F_UO);
	l7c_reply(lw, c, 503, MSG_UO, &h, 1, false);
}

void l7c_up_drop(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->fw.up) {
		c->fw.up->owner = NULL;
		l7_up_release(lw, c->fw.up, false);
		c->fw.up = NULL;
	}
}

/* A new request on the connection: no route, no attempt yet. */
void l7c_fwd_reset(struct l7_conn *c)
{
	memset(&c->fw, 0, sizeof(c->fw));
	c->fw.ep = L7_NONE;
}

void l7c_drop_cfg(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->fw.cfg)
		cfgw_drop(c->fw.cfg, lw->id);
	c->fw.cfg = NULL;
}

/* ---- upstream sends ---- */

static void u_send_next(struct l7_worker *lw, struct l7_conn *c)
{
	struct io_uring_sqe *sqe;

	while (c->fw.uq_i < c->fw.uq_n && c->fw.uq_off >= c->fw.uq[c->fw.uq_i].len) {
		c->fw.uq_i++;
		c->fw.uq_off = 0;
	}
	if (c->fw.uq_i >= c->fw.uq_n)
		return;
	sqe = ring_get_sqe(lw->w);
	if (!sqe) {
		l7c_abort(lw, c);
		return;
	}
	io_uring_prep_send(sqe, c->fw.uq_up->fd, c->fw.uq[c->fw.uq_i].p + c->fw.uq_off,
			   c->fw.uq[c->fw.uq_i].len - c->fw.uq_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, l7_conn_ud(lw, c, RING_OP_L7_USEND));
	c->fw.usend_busy = true;
	c->inflight++;
}

static void u_send(struct l7_worker *lw, struct l7_conn *c, const struct l7_seg *segs,
		   unsigned int n)
{
	memcpy(c->fw.uq, segs, n * sizeof(*segs));
	c->fw.uq_n = (uint8_t)n;
	c->fw.uq_i = 0;
	c->fw.uq_off = 0;
	c->fw.uq_up = c->fw.up;
	c->fw.up->ext++;
	u_send_next(lw, c);
	if (!c->fw.usend_busy) { /* nothing to send */
		c->fw.uq_up = NULL;
		l7_up_ext_put(lw, c->fw.up);
	}
}

/* The queued request bytes are at the upstream. */
static void u_sent(struct l7_worker *lw, struct l7_conn *c)
{
	if (!c->fw.head_sent) {
		c->fw.head_sent = true;
		if (c->rq.bmode != L7_BM_STREAM) {
			c->fw.req_done = true;
			return;
		}
	}
	if (c->rq.bmode == L7_BM_STREAM || c->state == L7C_TUNNEL) {
		if (c->fw.mir && c->state != L7C_TUNNEL) /* its shadow streams the same bytes */
			l7m_feed(lw, c, c->cl.cbuf + c->rq.sbase, c->rq.sfwd, c->rq.rb.done);
		l7c_stream_consumed(c);
		if (c->state != L7C_TUNNEL && c->rq.rb.done) {
			c->fw.req_done = true;
			if (c->rs.resp_head && c->rs.sb.done)
				l7c_resp_complete(lw, c);
			return;
		}
		l7c_arm_recv(lw, c);
	}
}

void l7c_on_usend(struct l7_worker *lw, struct l7_conn *c, int32_t res)
{
	struct l7_up *up = c->fw.uq_up;

	c->inflight--;
	c->fw.usend_busy = false;
	if (res > 0 && up)
		up->sent += (uint64_t)res;
	if (c->state == L7C_CLOSING || res <= 0 || up != c->fw.up) {
		c->fw.uq_up = NULL;
		if (up)
			l7_up_ext_put(lw, up);
		if (c->state == L7C_CLOSING) {
			l7c_maybe_free(lw, c);
		} else if (c->fw.retry_wait) {
			c->fw.retry_wait = false;
			l7c_attempt_fail(lw, c, c->fw.why);
		} else if (res <= 0 && up == c->fw.up) {
			if (!c->rs.resp_head && c->state == L7C_FWD)
				l7c_attempt_fail(lw, c, RETRY_F_RESET);
			else if (c->state == L7C_TUNNEL || c->rs.resp_head)
				l7c_abort(lw, c);
		}
		return;
	}
	c->fw.uq_off += (uint32_t)res;
	u_send_next(lw, c);
	if (!c->fw.usend_busy) {
		c->fw.uq_up = NULL;
		l7_up_ext_put(lw, up);
		u_sent(lw, c);
	}
}

/* STREAM / tunnel: send what the client gave us, or read more. */
void l7c_stream_push(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_seg s = {c->cl.cbuf + c->rq.sbase, c->rq.sfwd};

	if (c->fw.usend_busy || !c->fw.up)
		return;
	if (c->rq.sfwd) {
		u_send(lw, c, &s, 1);
		return;
	}
	if (c->state == L7C_TUNNEL || !c->rq.rb.done)
		l7c_arm_recv(lw, c);
}

/* ---- requests ---- */

/* The router's view of request headers: the idx-th field named lname. */
static int hdr_get(const void *ctx, const char *lname, size_t idx, struct route_slice *out)
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

static void mk_rr(struct l7_worker *lw, struct l7_conn *c, struct route_req *rr)
{
	const struct http_request *q = &c->rq.req;

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
	rr->hdr_get = hdr_get;
	rr->hdr_ctx = q;
	wl_fill_req(wl_get(&lw->w->wl, c->cl.orig.pod_cgroup_id, mono_ns()), rr);
}

/* Envoy's CORS filter, before any fault: a preflight from an allowed origin is answered
 * here (200, the policy's headers; "*" for methods or headers echoes what the preflight
 * asks for); a simple request from one has its Origin echoed on the response (resp_head).
 * A preflight from another origin goes upstream (Envoy's forwardNotMatchingPreflights,
 * Istio's unmatchedPreflights FORWARD). True when the request was answered. */
static bool cors_preflight(struct l7_worker *lw, struct l7_conn *c, const struct route_req *rr)
{
	const struct route_table *t = c->fw.cfg->t;
	const struct route_cors_policy *p = route_cors_policy(t, c->fw.d.rule);
	struct http_header h[5];
	struct route_slice o, v;
	char age[16];
	size_t n = 0;
	bool pre;

	if (!p || route_cors_check(t, c->fw.d.rule, rr, &o, &pre) != ROUTE_CORS_ALLOWED)
		return false;
	if (!pre) {
		c->fw.cors = true;
		return false;
	}
	h[n++] = (struct http_header){{"access-control-allow-origin", 27}, {o.p, o.len}};
	if (p->credentials)
		h[n++] =
		    (struct http_header){{"access-control-allow-credentials", 32}, {"true", 4}};
	if (*p->methods) {
		v = (struct route_slice){p->methods, strlen(p->methods)};
		if (!strcmp(p->methods, "*"))
			hdr_get(&c->rq.req, "access-control-request-method", 0, &v);
		h[n++] = (struct http_header){{"access-control-allow-methods", 28}, {v.p, v.len}};
	}
	if (*p->headers) {
		v = (struct route_slice){p->headers, strlen(p->headers)};
		if (!strcmp(p->headers, "*") &&
		    hdr_get(&c->rq.req, "access-control-request-headers", 0, &v))
			v.len = 0;
		if (v.len)
			h[n++] = (struct http_header){{"access-control-allow-headers", 28},
						      {v.p, v.len}};
	}
	if (p->max_age_s) {
		int l = snprintf(age, sizeof(age), "%u", p->max_age_s);

		h[n++] = (struct http_header){{"access-control-max-age", 22}, {age, (size_t)l}};
	}
	l7c_reply(lw, c, 200, NULL, h, n, false);
	return true;
}

/* The allowed Origin of a simple CORS request, kept (NUL-terminated) after the upstream
 * head of olen bytes: the request's own bytes may be gone when the response comes. */
static void cors_keep_origin(struct l7_worker *lw, struct l7_conn *c, size_t olen)
{
	struct route_slice o;

	if (hdr_get(&c->rq.req, "origin", 0, &o) || o.len >= UINT16_MAX ||
	    o.len + 1 > lw->obuf_size - olen) {
		c->fw.cors = false;
		return;
	}
	memcpy(c->cl.obuf + olen, o.p, o.len);
	c->cl.obuf[olen + o.len] = 0;
	c->fw.cors_len = (uint16_t)o.len;
}

void l7c_dispatch(struct l7_worker *lw, struct l7_conn *c)
{
	struct route_req rr;
	int svc;

	c->fw.cfg = lw->cur;
	cfgw_hold(c->fw.cfg, lw->id);
	svc = route_find_service(c->fw.cfg->t, &c->cl.orig.addr, c->cl.orig.port);
	mk_rr(lw, c, &rr);
	if (svc < 0 || route_decide(c->fw.cfg->t, (uint32_t)svc, &rr, l7_rand(lw), &c->fw.d)) {
		c->mt.sflags |= L7_FLAG(RM_STATS_F_NR);
		l7c_reply(lw, c, 404, NULL, NULL, 0, false);
		return;
	}
	c->cl.svc = svc;
	if ((c->fw.d.rule_flags & RM_RF_CORS) && cors_preflight(lw, c, &rr))
		return;
	if (c->fw.d.delay_ns) {
		c->mt.sflags |= L7_FLAG(RM_STATS_F_DI);
		c->state = L7C_DELAY;
		if (!l7_tmr_arm(&lw->th, &c->t_delay, mono_ns() + c->fw.d.delay_ns))
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
	struct trace_opts to = {.trace128 = true}; /* Istio's trace_id_128bit */
	struct trace_rng rng = {(uint64_t(*)(void *))l7_rand, lw};
	struct http_edit ed;
	struct route_req rr;
	size_t n_rm = 0, n_set = 0, n_add = 0;
	char *scratch = c->cl.rbuf; /* free until the response: path and trace values */
	int r;

	memset(&ed, 0, sizeof(ed));
	memset(&tin, 0, sizeof(tin));
	for (size_t i = 0; i < c->rq.req.n_headers; i++)
		trace_in_add(&tin, c->rq.req.headers[i].name.p, c->rq.req.headers[i].name.len,
			     c->rq.req.headers[i].value.p, c->rq.req.headers[i].value.len);
	trace_parse(&tin, &tin_ctx);
	to.sample = trace_sample(lw->sh->trace_ppm, l7_rand(lw));
	trace_next(&tin_ctx, &to, &rng, &tout);
	c->fw.tc = tout;
	if (lw->sh->spans && tout.sampling == TRACE_SAMPLED)
		l7c_span_begin(lw, c);
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
	for (size_t i = 0; i < c->fw.d.n_hdrops; i++) {
		const struct route_hdrop *op = &c->fw.d.hdrops[i];
		struct http_header h = {{op->name, strlen(op->name)},
					{op->value, strlen(op->value)}};

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
	ed.flags = HTTP_EDIT_STRIP_HOP | (c->rq.upgrade ? HTTP_EDIT_KEEP_UPGRADE : 0);
	if (c->fw.d.rewrite_uri) {
		mk_rr(lw, c, &rr);
		r = route_rewrite_path(&c->fw.d, &rr, scratch + TRACE_HDR_BUF,
				       lw->rbuf_size - TRACE_HDR_BUF);
		if (r < 0)
			return r;
		target.p = scratch + TRACE_HDR_BUF;
		target.len = (size_t)r;
		ed.target = &target;
	}
	if (c->fw.d.rewrite_authority && c->fw.d.rewrite_authority[0]) {
		auth.p = c->fw.d.rewrite_authority;
		auth.len = strlen(auth.p);
		ed.authority = &auth;
	}
	return http_write_request(c->cl.obuf, lw->obuf_size, &c->rq.req, &ed);
}

static void after_delay(struct l7_worker *lw, struct l7_conn *c)
{
	char loc[2048];
	struct route_req rr;
	ssize_t n;

	switch (c->fw.d.outcome) {
	case ROUTE_NO_ROUTE:
		c->mt.sflags |= L7_FLAG(RM_STATS_F_NR);
		l7c_reply(lw, c, 404, NULL, NULL, 0, false);
		return;
	case ROUTE_ABORT:
		c->mt.sflags |= L7_FLAG(RM_STATS_F_FI);
		l7c_reply(lw, c, c->fw.d.abort_status, MSG_FI, NULL, 0, false);
		return;
	case ROUTE_REDIRECT: {
		struct http_header h = {{"location", 8}, {loc, 0}};
		int r;

		mk_rr(lw, c, &rr);
		r = route_redirect_location(&c->fw.d, &rr, loc, sizeof(loc));
		if (r < 0) {
			l7c_reply(lw, c, 500, NULL, NULL, 0, true);
			return;
		}
		h.value.len = (size_t)r;
		l7c_reply(lw, c, c->fw.d.redirect_code, NULL, &h, 1, false);
		return;
	}
	case ROUTE_FORWARD:
		break;
	}
	n = build_head(lw, c);
	if (n < 0) {
		l7c_reply(lw, c, n == -ENOSPC ? 431 : 400, NULL, NULL, 0, true);
		return;
	}
	c->fw.olen = (uint32_t)n;
	if (c->fw.cors)
		cors_keep_origin(lw, c, (size_t)n);
	if (c->fw.d.mirror)
		l7m_start(lw, c); /* the copy is taken now: the attempt may end the request */
	c->fw.tries_left = 1 + (c->rq.bmode == L7_BM_STREAM ? 0 : c->fw.d.retry_attempts);
	c->fw.n_tried = 0;
	c->state = L7C_FWD;
	if (c->fw.d.timeout_ns)
		l7_tmr_arm(&lw->th, &c->t_route, mono_ns() + c->fw.d.timeout_ns);
	attempt(lw, c);
}

static bool tried_before(const struct l7_conn *c, uint32_t ep)
{
	for (uint32_t i = 0; i < c->fw.n_tried; i++)
		if (c->fw.tried[i] == ep)
			return true;
	return false;
}

/* The balancer's pick, re-drawn (up to L7_REPICKS times) while it is an endpoint an
 * earlier attempt of this request went to, as Istio's retries do; the endpoint picked
 * is remembered for the next attempt (c NULL: no memory, a mirror). 0, or lb_pick's
 * error. */
static int pick_host(struct l7_worker *lw, struct l7_conn *c, struct lb_state *lb,
		     const uint32_t *m, size_t n, const struct lb_hooks *hk, size_t *pos)
{
	int r;

	for (int i = 0;; i++) {
		r = lb_pick(lb, m, n, hk, l7_rand(lw), pos);
		if (r || !c || n < 2 || i == L7_REPICKS || !tried_before(c, m[*pos]))
			break;
	}
	if (!r && c && c->fw.n_tried < L7_TRIED_MAX && !tried_before(c, m[*pos]))
		c->fw.tried[c->fw.n_tried++] = m[*pos];
	return r;
}

int l7_choose(struct l7_worker *lw, struct cfgw_cfg *cfg, uint32_t svc, uint32_t subset,
	      __be16 sport, struct l7_conn *c, struct l7_target *t)
{
	struct pick p;
	struct rm_orig o;
	size_t pos;

	t->cbp = NULL; /* the rest is set on success: the callers read t only then */
	t->cbh = NULL;
	if (pick_pool(cfg, svc, subset, sport, false, &p))
		return -ENOENT;
	t->cbp = lw->sh->cb ? p.cbp : NULL;
	/* -ENOENT: every member ejected */
	if (pick_host(lw, c, &cfg->lb[p.pool], p.m, p.n, p.hooks, &pos) ||
	    pick_addr(cfg, &p, pos, sport, &o, &t->ss, &t->slen))
		return -ENOENT;
	t->ep = p.m[pos];
	t->cbh = p.hosts ? p.hosts[pos] : NULL;
	t->key.addr = o.addr;
	t->key.port = o.port;
	t->key.family = o.family;
	t->key.group = t->cbp ? cb_pool_index(lw->sh->cb, t->cbp) + 1 : 0;
	return 0;
}

static void attempt(struct l7_worker *lw, struct l7_conn *c)
{
	struct cfgw_cfg *cfg = c->fw.cfg;
	struct l7_target t;
	__be16 sport = c->fw.d.target_port ? c->fw.d.target_port : c->cl.port;
	int err = 0;

	c->fw.tries_left--;
	c->fw.head_sent = c->fw.req_done = false;
	l7c_resp_reset(c);
	c->fw.cb_reported = false;
	c->fw.cb_retry = c->fw.retry_next; /* a retry's slot, taken before it was decided */
	c->fw.retry_next = false;
	c->fw.cbh = NULL;
	if (l7_choose(lw, cfg, c->fw.d.target_service, c->fw.d.target_subset, sport, c, &t)) {
		c->mt.sflags |= L7_FLAG(RM_STATS_F_UH);
		l7c_reply(lw, c, 503, MSG_UH, NULL, 0, false);
		return;
	}
	if (lw->sh->cb && cfg->cbp)
		c->fw.cbp = t.cbp;
	c->fw.cbh = t.cbh;
	if (cb_request_try_start(c->fw.cbp, c->fw.cbh)) {
		overflow(lw, c);
		return;
	}
	c->fw.cb_req = true;
	c->fw.ukey = t.key;
	c->fw.uss = t.ss;
	c->fw.uslen = t.slen;
	c->fw.ep = t.ep;
	c->fw.st = l7c_stats_slot(lw, c, cfg, c->fw.d.target_service, t.ep);
	if (c->fw.d.retry_per_try_ns && c->fw.d.retry_attempts)
		l7_tmr_arm(&lw->th, &c->t_try, mono_ns() + c->fw.d.retry_per_try_ns);
	/* requests wait here, or (at the limit) in another worker: queue behind them */
	if (l7_cb_queue_first(lw, c->fw.cbp)) {
		c->fw.up = NULL;
		err = -EAGAIN;
	} else {
		c->fw.up = l7_up_get(lw, &t.key, &t.ss, t.slen, c->fw.st, c->fw.cbp, &err);
	}
	if (!c->fw.up) {
		if (err == -EAGAIN) {
			/* maxConnections reached: wait as pending, if there is room */
			if (cb_pending_try_enter(c->fw.cbp)) {
				overflow(lw, c);
				return;
			}
			l7_cb_wait(lw, c);
			l7_cb_free_idle(lw, c->fw.cbp);
			return;
		}
		l7c_attempt_fail(lw, c, RETRY_F_CONNECT);
		return;
	}
	c->fw.up->owner = c;
	if (c->fw.up->state == L7U_BUSY)
		l7c_on_up_connected(lw, c, 0);
}

int l7c_resume(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_up *up;
	int err = 0;

	if (l7_cb_take_handoff(lw, l7_cb_slot(lw, c->fw.cbp))) {
		/* a slot another worker gave us: already counted */
		up = l7_up_get(lw, &c->fw.ukey, &c->fw.uss, c->fw.uslen, c->fw.st, NULL, &err);
		if (up && up->state == L7U_CONNECTING)
			up->cbp = c->fw.cbp;
		else
			cb_conn_close(c->fw.cbp); /* an idle one served instead, or none */
	} else {
		up = l7_up_get(lw, &c->fw.ukey, &c->fw.uss, c->fw.uslen, c->fw.st, c->fw.cbp, &err);
	}
	if (!up && err == -EAGAIN) {
		/* an idle connection of this pool to another host holds the slot here */
		l7_cb_free_idle(lw, c->fw.cbp);
		return -EAGAIN;
	}
	l7_cb_wait_leave(lw, c);
	if (!up) {
		l7c_attempt_fail(lw, c, RETRY_F_CONNECT);
		return 0;
	}
	c->fw.up = up;
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
		l7c_attempt_fail(lw, c, RETRY_F_CONNECT);
		return;
	}
	c->fw.up->requests++;
	s[0].p = c->cl.obuf;
	s[0].len = c->fw.olen;
	if (c->rq.bmode == L7_BM_KEPT) {
		s[1].p = c->cl.cbuf + c->rq.head_len;
		s[1].len = c->rq.req_end - c->rq.head_len;
		n = 2;
	} else if (c->rq.bmode == L7_BM_STREAM) {
		c->rq.sbase = c->rq.head_len;
		s[1].p = c->cl.cbuf + c->rq.sbase;
		s[1].len = c->rq.sfwd;
		n = 2;
	}
	l7_up_arm_recv(lw, c->fw.up);
	u_send(lw, c, s, n);
	if (!c->fw.usend_busy && c->state == L7C_FWD)
		u_sent(lw, c);
}

void l7c_attempt_fail(struct l7_worker *lw, struct l7_conn *c, enum retry_fail why)
{
	if (c->fw.up) { /* the host was reached or tried (not a local failure, not pending) */
		if (why == RETRY_F_CONNECT)
			l7c_host_result(lw, c, CB_CONNECT_FAIL);
		else if (why == RETRY_F_RESET)
			l7c_host_result(lw, c, CB_RESET);
		else if (why == RETRY_F_TRY_TIMEOUT)
			l7c_host_result(lw, c, CB_TIMEOUT);
	}
	attempt_end(lw, c);
	c->fw.why = why;
	l7_tmr_cancel(&lw->th, &c->t_try);
	l7c_up_drop(lw, c);
	if (c->fw.usend_busy) {
		c->fw.retry_wait = true; /* its completion comes back here */
		return;
	}
	if (c->cl.csend_busy) {
		l7c_abort(lw, c);
		return;
	}
	if (c->fw.tries_left && c->rq.bmode != L7_BM_STREAM &&
	    retry_failure(why, c->fw.d.retry_on) && l7c_retry_admit(c)) {
		attempt(lw, c);
		return;
	}
	if (c->fw.d.retry_attempts && why != RETRY_F_STATUS && retry_failure(why, c->fw.d.retry_on))
		c->mt.sflags |= L7_FLAG(RM_STATS_F_URX);
	switch (why) {
	case RETRY_F_CONNECT:
		c->mt.sflags |= L7_FLAG(RM_STATS_F_UF);
		l7c_reply(lw, c, 503, MSG_UF, NULL, 0, false);
		break;
	case RETRY_F_TRY_TIMEOUT:
		c->mt.sflags |= L7_FLAG(RM_STATS_F_UT);
		l7c_reply(lw, c, 504, MSG_UT, NULL, 0, false);
		break;
	default:
		c->mt.sflags |= L7_FLAG(RM_STATS_F_UC);
		l7c_reply(lw, c, 503, MSG_UC, NULL, 0, false);
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
		c->mt.sflags |= L7_FLAG(RM_STATS_F_UT);
		if (c->fw.up && !c->rs.resp_head)
			l7c_host_result(lw, c, CB_TIMEOUT);
		if (c->rs.resp_sent_head) {
			l7c_abort(lw, c);
			break;
		}
		if (c->fw.up)
			c->fw.up->broken = true;
		if (c->fw.usend_busy || c->cl.csend_busy)
			c->cl.close_after = true;
		l7c_reply(lw, c, 504, MSG_UT, NULL, 0, false);
		break;
	case L7_T_TRY:
		if (c->state == L7C_FWD && !c->rs.resp_head)
			l7c_attempt_fail(lw, c, RETRY_F_TRY_TIMEOUT);
		break;
	default:
		break;
	}
}
