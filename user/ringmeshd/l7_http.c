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

struct rm_stats_slot *l7c_stats_slot(struct l7_worker *lw, struct l7_conn *c,
				     const struct cfgw_cfg *cfg, uint32_t svc, uint32_t ep)
{
	const struct wl_ident *id;
	struct l7_stc *m;
	struct rm_stats_key k;
	bool has_ep = ep < cfg->n_eps;
	uint32_t h;

	if (!lw->sh->stats)
		return NULL;
	id = wl_get(&lw->w->wl, c->cl.orig.pod_cgroup_id, mono_ns());
	h = svc * 0x9e3779b1u ^ ep * 0x85ebca77u ^ (uint32_t)((uintptr_t)id >> 4);
	m = &lw->stc[(h ^ h >> 16) & (L7_STC_N - 1)];
	if (m->sl && m->cfg_gen == cfg->gen && m->svc == svc && m->ep == ep && m->id == id &&
	    (!id || m->wl_fetched == id->fetched_ns))
		return m->sl;
	stats_key_make(&k, route_service_host(cfg->t, svc), has_ep ? cfg->ep_version[ep] : NULL,
		       has_ep ? cfg->ep_workload[ep] : NULL, RM_STATS_HTTP);
	stats_key_source(&k, id ? &id->rec : NULL);
	*m = (struct l7_stc){.sl = stats_slot(lw->sh->stats, &k),
			     .id = id,
			     .cfg_gen = cfg->gen,
			     .wl_fetched = id ? id->fetched_ns : 0,
			     .svc = svc,
			     .ep = ep};
	return m->sl;
}

void l7c_record(struct l7_worker *lw, struct l7_conn *c)
{
	struct cfgw_cfg *cfg = c->fw.cfg ? c->fw.cfg : lw->cur;
	uint32_t svc =
	    c->fw.d.outcome == ROUTE_FORWARD ? c->fw.d.target_service : (uint32_t)c->cl.svc;
	uint64_t body = c->rq.bmode == L7_BM_KEPT ? c->rq.req_end - c->rq.head_len : c->rq.rb.wire;
	bool ep = c->fw.ep != L7_NONE && c->fw.ep < cfg->n_eps;
	struct rm_stats_slot *sl;

	l7m_primary_end(lw, c); /* a shadow still owed body bytes gets none */
	if (!c->mt.in_req)
		return;
	if (c->fw.span)
		l7c_span_end(lw, c);
	c->mt.in_req = false;
	sl = c->fw.st && ep ? c->fw.st : l7c_stats_slot(lw, c, cfg, svc, ep ? c->fw.ep : L7_NONE);
	if (sl)
		stats_request(lw->sh->stats, sl, c->mt.status, c->mt.sflags,
			      (mono_ns() - c->mt.t0) / 1000, c->rq.head_len + body,
			      c->mt.resp_bytes);
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

	if (c->inflight && c->cl.fd >= 0 && (sqe = ring_get_sqe(lw->w))) {
		io_uring_prep_cancel_fd(sqe, c->cl.fd, IORING_ASYNC_CANCEL_ALL);
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
	setsockopt(c->cl.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	shutdown(c->cl.fd, SHUT_RDWR);
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
	shutdown(c->cl.fd, SHUT_WR);
	cancel_client_ops(lw, c);
	l7c_maybe_free(lw, c);
}

/* ---- client I/O ---- */

void l7c_arm_recv(struct l7_worker *lw, struct l7_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->cl.crecv_busy || c->cl.mem_wait || c->state == L7C_CLOSING ||
	    c->cl.clen >= lw->cbuf_size)
		return;
	sqe = ring_get_sqe(lw->w);
	if (!sqe) {
		l7c_abort(lw, c);
		return;
	}
	if (c->cl.mem) {
		io_uring_prep_recv(sqe, c->cl.fd, c->cl.cbuf + c->cl.clen,
				   lw->cbuf_size - c->cl.clen, 0);
	} else {
		/* idle, no block: the kernel picks a provided buffer when bytes arrive */
		io_uring_prep_recv(sqe, c->cl.fd, NULL, L7_PB_SIZE, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = L7_BGID;
	}
	if (c->cl.crecv_drained)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data64(sqe, l7_conn_ud(lw, c, RING_OP_L7_CRECV));
	c->cl.crecv_busy = true;
	c->inflight++;
}

static void c_sent(struct l7_worker *lw, struct l7_conn *c);

static void c_send_next(struct l7_worker *lw, struct l7_conn *c)
{
	struct io_uring_sqe *sqe;

	while (c->cl.cq_i < c->cl.cq_n && c->cl.cq_off >= c->cl.cq[c->cl.cq_i].len) {
		c->cl.cq_i++;
		c->cl.cq_off = 0;
	}
	if (c->cl.cq_i >= c->cl.cq_n) {
		c_sent(lw, c);
		return;
	}
	sqe = ring_get_sqe(lw->w);
	if (!sqe) {
		l7c_abort(lw, c);
		return;
	}
	io_uring_prep_send(sqe, c->cl.fd, c->cl.cq[c->cl.cq_i].p + c->cl.cq_off,
			   c->cl.cq[c->cl.cq_i].len - c->cl.cq_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, l7_conn_ud(lw, c, RING_OP_L7_CSEND));
	c->cl.csend_busy = true;
	c->inflight++;
}

/* Queue segments to the client; seg from up's buffer (up_bytes > 0) pins up. */
void l7c_send(struct l7_worker *lw, struct l7_conn *c, const struct l7_seg *segs, unsigned int n,
	      struct l7_up *up, uint32_t up_bytes)
{
	memcpy(c->cl.cq, segs, n * sizeof(*segs));
	c->cl.cq_n = (uint8_t)n;
	c->cl.cq_i = 0;
	c->cl.cq_off = 0;
	c->cl.cq_up = up;
	c->cl.cq_up_bytes = up_bytes;
	if (up)
		up->ext++;
	c_send_next(lw, c);
}

static void release_cq_up(struct l7_worker *lw, struct l7_conn *c, bool consumed)
{
	struct l7_up *up = c->cl.cq_up;

	if (!up)
		return;
	if (consumed && up == c->fw.up)
		up->off += c->cl.cq_up_bytes;
	c->cl.cq_up = NULL;
	c->cl.cq_up_bytes = 0;
	l7_up_ext_put(lw, up);
}

void l7c_on_send(struct l7_worker *lw, struct l7_conn *c, int32_t res)
{
	c->inflight--;
	c->cl.csend_busy = false;
	if (c->state == L7C_CLOSING || res <= 0) {
		release_cq_up(lw, c, false);
		if (c->state == L7C_CLOSING) {
			l7c_maybe_free(lw, c);
		} else {
			c->mt.sflags |= L7_FLAG(RM_STATS_F_DC); /* the client went away */
			l7c_abort(lw, c);
		}
		return;
	}
	c->cl.cq_off += (uint32_t)res;
	c->mt.resp_bytes += (uint64_t)res;
	c_send_next(lw, c);
}

/* STREAM / tunnel: the client bytes at sbase went upstream; drop them from cbuf. */
void l7c_stream_consumed(struct l7_conn *c)
{
	uint32_t used = c->rq.sbase + c->rq.sfwd;

	memmove(c->cl.cbuf, c->cl.cbuf + used, c->cl.clen - used);
	c->cl.clen -= used;
	c->rq.sbase = 0;
	c->rq.sfwd = 0;
}

/* ---- requests ---- */

void l7c_start(struct l7_worker *lw, struct l7_conn *c)
{
	c->state = L7C_HEAD;
	c->cl.idle_ns = mono_ns();
	l7c_fwd_reset(c);
	l7c_arm_recv(lw, c);
}

void l7c_next_request(struct l7_worker *lw, struct l7_conn *c)
{
	uint32_t used = c->rq.bmode == L7_BM_STREAM ? 0 : c->rq.req_end;

	if (used > c->cl.clen)
		used = c->cl.clen;
	memmove(c->cl.cbuf, c->cl.cbuf + used, c->cl.clen - used);
	c->cl.clen -= used;
	/* The last request left nothing behind in these parts: its configuration is
	 * dropped, breaker counts released, timers cancelled, upstream given back and
	 * upstream sends completed (l7c_resp_complete, or c_sent after a reply). */
	memset(&c->rq, 0, sizeof(c->rq));
	memset(&c->mt, 0, sizeof(c->mt));
	l7c_fwd_reset(c);
	l7c_resp_reset(c);
	c->state = L7C_HEAD;
	c->cl.idle_ns = mono_ns();
	if (c->cl.clen) {
		advance(lw, c);
	} else {
		l7c_mem_put(lw, c); /* idle: the block goes back to the pool */
		l7c_arm_recv(lw, c);
	}
}

static void c_sent(struct l7_worker *lw, struct l7_conn *c)
{
	switch (c->state) {
	case L7C_REPLY:
		l7c_record(lw, c);
		l7c_drop_cfg(lw, c);
		if (c->cl.close_after)
			l7c_close(lw, c);
		else
			l7c_next_request(lw, c);
		break;
	case L7C_FWD:
	case L7C_TUNNEL: {
		struct l7_up *up = c->fw.up;

		release_cq_up(lw, c, true);
		if (!up)
			break;
		if (c->state == L7C_FWD && c->rs.resp_head && c->rs.sb.done &&
		    !c->rs.resp_until_close) {
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
		if (c->mt.status == 101 && c->state == L7C_FWD) {
			/* The 101 went out: from now on bytes flow both ways untouched. */
			c->state = L7C_TUNNEL;
			http_body_init(&c->rq.rb, HTTP_BODY_TUNNEL, 0, NULL);
			c->rq.sbase = c->rq.req_end;
			c->rq.sfwd = c->cl.clen > c->rq.req_end ? c->cl.clen - c->rq.req_end : 0;
			c->rq.bmode = L7_BM_STREAM;
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

/* The CORS response fields of an allowed CORS request (fw.cors), as Envoy's filter
 * sets them on every response it encodes (the upstream's and the proxy's own):
 * allow-origin, allow-credentials, expose-headers. The origin is the copy kept after the
 * upstream head once that was built (fw.cors_len; every value is then NUL-terminated),
 * else the request's own. Returns how many (0 to 3). */
size_t l7c_cors_fields(const struct l7_conn *c, struct http_header f[3])
{
	const struct route_cors_policy *p;
	struct http_slice o;
	size_t n = 0;
	int i;

	if (!c->fw.cors || !c->fw.cfg || !(p = route_cors_policy(c->fw.cfg->t, c->fw.d.rule)))
		return 0;
	if (c->fw.cors_len)
		o = (struct http_slice){c->cl.obuf + c->fw.olen, c->fw.cors_len};
	else if ((i = http_header_find(c->rq.req.headers, c->rq.req.n_headers, "origin", 0)) >= 0)
		o = c->rq.req.headers[i].value;
	else
		return 0;
	f[n++] = (struct http_header){{"access-control-allow-origin", 27}, o};
	if (p->credentials)
		f[n++] =
		    (struct http_header){{"access-control-allow-credentials", 32}, {"true", 4}};
	if (*p->expose)
		f[n++] = (struct http_header){{"access-control-expose-headers", 29},
					      {p->expose, strlen(p->expose)}};
	return n;
}

/* A local reply (Envoy's texts); the client connection survives when framing allows. */
void l7c_reply(struct l7_worker *lw, struct l7_conn *c, int status, const char *body,
	       const struct http_header *hdrs, size_t n_hdrs, bool close)
{
	struct http_header all[8];
	struct http_reply r;
	ssize_t n;
	struct l7_seg s;

	l7c_cb_release(lw, c);
	if (c->rs.resp_sent_head || c->cl.csend_busy) {
		l7c_abort(lw, c);
		return;
	}
	l7c_timers_off(lw, c);
	l7c_up_drop(lw, c);
	if (close || !c->rq.req_keep || (c->rq.bmode == L7_BM_STREAM && !c->rq.rb.done) ||
	    c->state == L7C_BODY || c->fw.usend_busy)
		c->cl.close_after = true;
	memset(&r, 0, sizeof(r));
	r.status = status;
	r.content_type = "text/plain";
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.headers = hdrs;
	r.n_headers = n_hdrs;
	if (c->fw.cors && n_hdrs + 3 <= sizeof(all) / sizeof(all[0])) {
		if (n_hdrs)
			memcpy(all, hdrs, n_hdrs * sizeof(*hdrs));
		r.headers = all;
		r.n_headers = n_hdrs + l7c_cors_fields(c, all + n_hdrs);
	}
	r.close = c->cl.close_after;
	r.head = c->rq.method == HTTP_M_HEAD;
	n = http_write_response(c->cl.rbuf, lw->rbuf_size, &r);
	if (n < 0) {
		l7c_abort(lw, c);
		return;
	}
	c->mt.status = status;
	c->state = L7C_REPLY;
	s.p = c->cl.rbuf;
	s.len = (uint32_t)n;
	l7c_send(lw, c, &s, 1, NULL, 0);
}

/* ---- client input ---- */

static void advance(struct l7_worker *lw, struct l7_conn *c)
{
	const struct http_limits *lim = &lw->sh->o.lim;
	int r;

	if (c->state == L7C_BODY) {
		if (c->cl.clen >= c->rq.req_end)
			l7c_dispatch(lw, c);
		else
			l7c_arm_recv(lw, c);
		return;
	}
	r = http_parse_request(c->cl.cbuf, c->cl.clen, c->rq.cparsed, lim, &c->rq.req, c->cl.hdrs,
			       L7_MAX_HDRS);
	if (r == -2) {
		c->rq.cparsed = c->cl.clen;
		if (c->cl.clen >= lim->max_head || c->cl.clen >= lw->cbuf_size) {
			c->mt.in_req = true;
			c->mt.t0 = mono_ns();
			l7c_reply(lw, c, 431, NULL, NULL, 0, true);
		} else {
			l7c_arm_recv(lw, c);
		}
		return;
	}
	c->rq.cparsed = 0;
	c->mt.in_req = true;
	c->mt.t0 = mono_ns();
	if (r < 0) {
		c->rq.method = HTTP_M_OTHER;
		c->rq.head_len = c->cl.clen;
		l7c_reply(lw, c, http_err_status(c->rq.req.err), NULL, NULL, 0, true);
		return;
	}
	c->rq.head_len = (uint32_t)r;
	c->rq.method = c->rq.req.method_id;
	c->rq.vminor = c->rq.req.version_minor;
	/* a draining worker answers with Connection: close (ring_mode) */
	c->rq.req_keep = (c->rq.req.flags & HTTP_F_KEEP_ALIVE) && !lw->w->draining;
	c->rq.upgrade =
	    (c->rq.req.flags & HTTP_F_UPGRADE) && (c->rq.req.flags & HTTP_F_CONN_UPGRADE);
	c->rq.req_end = c->rq.head_len;
	http_body_init(&c->rq.rb, c->rq.req.body, c->rq.req.content_length, lim);
	if (c->rq.req.body == HTTP_BODY_NONE) {
		c->rq.bmode = L7_BM_NONE;
	} else if (c->rq.req.body == HTTP_BODY_LENGTH &&
		   !(c->rq.req.flags & HTTP_F_EXPECT_CONTINUE) &&
		   c->rq.req.content_length <= lw->sh->o.retry_buf &&
		   c->rq.head_len + c->rq.req.content_length <= lw->cbuf_size) {
		c->rq.bmode = L7_BM_KEPT;
		c->rq.req_end = c->rq.head_len + (uint32_t)c->rq.req.content_length;
		c->rq.rb.wire = c->rq.req.content_length;
		if (c->cl.clen < c->rq.req_end) {
			c->state = L7C_BODY;
			l7c_arm_recv(lw, c);
			return;
		}
	} else {
		ssize_t n = http_body_feed(&c->rq.rb, c->cl.cbuf + c->rq.head_len,
					   c->cl.clen - c->rq.head_len);

		if (n < 0) {
			l7c_reply(lw, c, http_err_status(c->rq.rb.err), NULL, NULL, 0, true);
			return;
		}
		if (c->rq.rb.done && !(c->rq.req.flags & HTTP_F_EXPECT_CONTINUE) &&
		    (uint64_t)n <= lw->sh->o.retry_buf) {
			c->rq.bmode = L7_BM_KEPT; /* a whole chunked body already here */
			c->rq.req_end = c->rq.head_len + (uint32_t)n;
		} else {
			c->rq.bmode = L7_BM_STREAM;
			c->rq.sbase = c->rq.head_len;
			c->rq.sfwd = (uint32_t)n;
		}
	}
	l7c_dispatch(lw, c);
}

/* The recv of a connection without a block: move what the provided buffer pb got
 * into a block, or wait for one (holding pb, not reading). false: c waits. */
static bool take_block(struct l7_worker *lw, struct l7_conn *c, int32_t res, uint32_t pb)
{
	if (l7c_mem_get(lw, c)) {
		if (pb != L7_PB_NONE) {
			c->cl.pb_held = true;
			c->cl.pb = (uint16_t)pb;
			c->cl.pb_len = (uint32_t)res;
		}
		l7c_mem_wait(lw, c);
		return false;
	}
	if (pb != L7_PB_NONE) {
		memcpy(c->cl.cbuf + c->cl.clen, l7_pb_data(lw, (uint16_t)pb), (size_t)res);
		l7_pb_recycle(lw, (uint16_t)pb);
	}
	return true;
}

void l7c_mem_serve(struct l7_worker *lw)
{
	struct l7_conn *c;

	while ((c = lw->mw_head) && bufpool_avail(&lw->cpool)) {
		lw->mw_head = c->cl.mw_next;
		if (!lw->mw_head)
			lw->mw_tail = NULL;
		c->cl.mem_wait = false;
		c->cl.mw_next = NULL;
		if (c->state == L7C_CLOSING)
			continue; /* l7c_free gives its buffer back */
		if (!c->cl.pb_held) {
			/* its recv found no provided buffer: read into a block directly */
			l7c_mem_get(lw, c);
			l7c_arm_recv(lw, c);
			continue;
		}
		c->cl.pb_held = false;
		take_block(lw, c, (int32_t)c->cl.pb_len, c->cl.pb);
		c->cl.clen += c->cl.pb_len;
		advance(lw, c);
	}
}

void l7c_on_recv(struct l7_worker *lw, struct l7_conn *c, int32_t res, uint32_t pb)
{
	uint32_t old = c->cl.clen;

	c->inflight--;
	c->cl.crecv_busy = false;
	if (pb != L7_PB_NONE && (c->state == L7C_CLOSING || res <= 0)) {
		l7_pb_recycle(lw, (uint16_t)pb);
		pb = L7_PB_NONE;
	}
	if (c->state == L7C_CLOSING) {
		l7c_maybe_free(lw, c);
		return;
	}
	if (res == -ENOBUFS && !c->cl.mem) {
		/* no provided buffer left: the bytes wait in the socket for a block */
		RING_STAT_ADD(lw->w, enobufs, 1);
		if (take_block(lw, c, 0, L7_PB_NONE))
			l7c_arm_recv(lw, c);
		return;
	}
	if (res > 0 && pb != L7_PB_NONE && !take_block(lw, c, res, pb))
		return;
	if (res <= 0) {
		if (c->state == L7C_HEAD && c->cl.clen == 0 && !c->cl.csend_busy)
			l7c_close(lw, c); /* idle keep-alive connection closed by the client */
		else if (c->state == L7C_TUNNEL && c->fw.up && !c->cl.csend_busy)
			l7c_close(lw, c);
		else {
			/* mid-request or before the response was all sent: Envoy's DC */
			c->mt.sflags |= L7_FLAG(RM_STATS_F_DC);
			l7c_abort(lw, c);
		}
		return;
	}
	c->cl.clen += (uint32_t)res;
	switch (c->state) {
	case L7C_HEAD:
	case L7C_BODY:
		advance(lw, c);
		break;
	case L7C_FWD:
	case L7C_TUNNEL:
		if (c->rq.bmode == L7_BM_STREAM && !c->rq.rb.done) {
			ssize_t n = http_body_feed(&c->rq.rb, c->cl.cbuf + old, c->cl.clen - old);

			if (n < 0) {
				l7c_abort(lw, c);
				return;
			}
			c->rq.sfwd += (uint32_t)n;
		}
		l7c_stream_push(lw, c);
		break;
	default:
		break;
	}
}
