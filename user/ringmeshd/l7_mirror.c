/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Request mirroring (Istio's mirror / mirrorPercentage, Envoy's
 * request_mirror_policies): a request whose route drew a mirror also goes, as a
 * detached shadow copy, to an endpoint of the mirror subset, with its Host suffixed
 * "-shadow". Fire and forget: the shadow's response is read to its end and dropped,
 * and nothing of the shadow exchange reaches the client's request: the copy (head
 * as it went upstream, kept body) is taken before the primary attempt starts, into a
 * block of the worker's own pool, and the shadow has its own upstream connection,
 * timer and breaker counts.
 *
 * A body kept whole goes in the copy. A streamed one (larger than what is kept, or
 * after Expect: 100-continue) follows as the primary sends it: each piece that went
 * to the primary's upstream is appended (l7m_feed) to the block, or while that is
 * full to a backlog of chunks, and sent on, so the shadow streams too, as Envoy's do.
 * The primary never waits for its shadow: one more than L7_MIRROR_BACKLOG behind (its
 * host reads slower than the primary's), or past the worker's L7_MIRROR_WORKER_BACKLOG,
 * is dropped, its connection closed, and so is one whose primary ended before the body
 * did.
 *
 * Bounded: at most max_mirrors shadows in flight per worker (a block each; more are
 * skipped), the route's timeout or L7_MIRROR_TIMEOUT_NS, never a queue: a breaker
 * that would make the shadow wait or overflow skips it. Every skip, drop and failure
 * is counted (ringmesh_mirror_*), and each shadow's outcome counts in the mirror
 * destination's metrics slot, as Envoy counts shadows on the shadow cluster.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/http1.h"
#include "policy/cb.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/l7_int.h"

int l7m_worker_init(struct l7_worker *lw)
{
	uint32_t n = lw->sh->o.max_mirrors;

	/* the upstream head as built (obuf) plus a kept body, then a header array */
	lw->mreq_size = (size_t)lw->obuf_size + lw->sh->o.retry_buf;
	lw->mirs = calloc(n, sizeof(*lw->mirs));
	if (!lw->mirs || conn_slots_init(&lw->ms, n) ||
	    bufpool_init(&lw->mpool, lw->mreq_size + L7_MAX_HDRS * sizeof(struct http_header), n,
			 1))
		return -ENOMEM;
	return 0;
}

void l7m_worker_fini(struct l7_worker *lw)
{
	/* after io_uring_queue_exit (or a failed init): nothing is in flight */
	for (uint32_t i = 0; lw->mirs && i < lw->ms.used; i++)
		if (lw->mirs[i].used && lw->mirs[i].cfg)
			cfgw_drop(lw->mirs[i].cfg, lw->id);
	free(lw->mirs);
	lw->mirs = NULL;
	conn_slots_fini(&lw->ms);
	bufpool_fini(&lw->mpool);
}

/* The primary owes m nothing more (or m ends first): the two let go of each other. */
static void m_unlink(struct l7_mir *m)
{
	if (!m->c)
		return;
	m->c->fw.mir = NULL;
	m->c = NULL;
}

static void m_free(struct l7_worker *lw, struct l7_mir *m)
{
	m_unlink(m);
	while (m->ch) {
		struct l7_mchunk *n = m->ch->next;

		free(m->ch);
		m->ch = n;
	}
	m->ch_tail = NULL;
	lw->mbacklog -= m->backlog;
	m->backlog = 0;
	bufpool_put(&lw->mpool, m->buf);
	m->buf = NULL;
	if (m->cfg)
		cfgw_drop(m->cfg, lw->id);
	m->cfg = NULL;
	m->used = false;
	conn_slots_give(&lw->ms, (uint32_t)(m - lw->mirs));
}

static void m_host_result(struct l7_worker *lw, struct l7_mir *m, enum cb_outcome o)
{
	if (m->cb_reported || !m->cbh)
		return;
	m->cb_reported = true;
	cb_host_result(lw->sh->cb, m->cbh, o, mono_ns());
}

/* The first step of every end (m_end, m_drop): false when m had already ended. */
static bool m_ending(struct l7_worker *lw, struct l7_mir *m)
{
	if (m->over)
		return false;
	m->over = true;
	m_unlink(m);
	l7_tmr_cancel(&lw->th, &m->t);
	return true;
}

/* The mirror pool's request count, given back once. */
static void m_cb_done(struct l7_mir *m)
{
	if (!m->cb_req)
		return;
	m->cb_req = false;
	cb_request_finish(m->cbp, m->cbh);
}

/*
 * The exchange is over: answered (fail < 0) or failed for fail (enum rm_mirror_fail).
 * Counted once, the connection parked (a whole exchange on a connection that allows
 * it) or closed, the breaker counts given back; the slot stays until its send
 * completes.
 */
static void m_end(struct l7_worker *lw, struct l7_mir *m, int fail)
{
	static const uint32_t flag[RM_MIR_FAIL_N] = {L7_FLAG(RM_STATS_F_UF), L7_FLAG(RM_STATS_F_UC),
						     L7_FLAG(RM_STATS_F_UT),
						     L7_FLAG(RM_STATS_F_UPE)};
	/* what the outlier detector hears of each failure, as for a request's attempt */
	static const enum cb_outcome outcome[RM_MIR_FAIL_N] = {CB_CONNECT_FAIL, CB_RESET,
							       CB_TIMEOUT, CB_GATEWAY};
	struct l7_up *up = m->up;

	if (!m_ending(lw, m))
		return;
	if (fail >= 0)
		m_host_result(lw, m, outcome[fail]);
	m_cb_done(m);
	m->up = NULL;
	if (up) {
		if (fail >= 0)
			up->broken = true;
		l7_up_release(lw, up,
			      fail < 0 && m->req_done && m->up_keep && !m->until_close &&
				  cb_conn_keep(up->cbp, up->requests));
	}
	if (fail >= 0) {
		stats_mirror_failed(lw->sh->stats, (enum rm_mirror_fail)fail);
		m->sflags |= flag[fail];
		if (!m->resp_head)
			m->status = 0;
	} else {
		stats_mirror_answered(lw->sh->stats);
	}
	if (m->st)
		stats_request(lw->sh->stats, m->st, m->status, m->sflags,
			      (mono_ns() - m->t0) / 1000, m->req_bytes, m->resp_bytes);
	if (!m->send_busy)
		m_free(lw, m);
}

static void skip(struct l7_worker *lw, struct l7_mir *m, enum rm_mirror_skip why)
{
	stats_mirror_skipped(lw->sh->stats, why);
	if (!m)
		return;
	m_cb_done(m);
	m_free(lw, m);
}

/*
 * A shadow that started is given up on the proxy's side (why: RM_MIR_SKIP_BEHIND or
 * _BODY): its request is incomplete, so its connection is closed; not the host's
 * failure (the outlier detector hears nothing) and no request is counted for it.
 */
static void m_drop(struct l7_worker *lw, struct l7_mir *m, enum rm_mirror_skip why)
{
	struct l7_up *up = m->up;

	if (!m_ending(lw, m))
		return;
	m_cb_done(m);
	m->up = NULL;
	if (up) {
		up->broken = true;
		l7_up_release(lw, up, false);
	}
	stats_mirror_skipped(lw->sh->stats, why);
	if (!m->send_busy)
		m_free(lw, m);
}

int l7m_buf_append(struct l7_mir *m, uint32_t cap, const char *p, uint32_t n)
{
	if (!m->send_busy && m->off) {
		memmove(m->buf, m->buf + m->off, m->len - m->off);
		m->len -= m->off;
		m->off = 0;
	}
	if (m->len > cap || n > cap - m->len)
		return -ENOBUFS;
	memcpy(m->buf + m->len, p, n);
	m->len += n;
	return 0;
}

/*
 * A streamed body's piece: into the block while no backlog waits and it fits, else
 * onto the backlog chunks, in order, while the shadow's and the worker's bounds allow
 * (-ENOBUFS: the shadow is to be dropped).
 */
static int m_append(struct l7_worker *lw, struct l7_mir *m, const char *p, uint32_t n)
{
	if (!m->ch && !l7m_buf_append(m, (uint32_t)lw->mreq_size, p, n))
		return 0;
	while (n) {
		struct l7_mchunk *t = m->ch_tail;
		uint32_t k;

		if (!t || t->len == L7_MCHUNK_BYTES) {
			if (m->backlog + L7_MCHUNK_BYTES > L7_MIRROR_BACKLOG ||
			    lw->mbacklog + L7_MCHUNK_BYTES > L7_MIRROR_WORKER_BACKLOG ||
			    !(t = malloc(sizeof(*t) + L7_MCHUNK_BYTES)))
				return -ENOBUFS;
			t->next = NULL;
			t->len = t->off = 0;
			if (m->ch_tail)
				m->ch_tail->next = t;
			else
				m->ch = t;
			m->ch_tail = t;
			m->backlog += L7_MCHUNK_BYTES;
			lw->mbacklog += L7_MCHUNK_BYTES;
		}
		k = L7_MCHUNK_BYTES - t->len < n ? L7_MCHUNK_BYTES - t->len : n;
		memcpy(t->d + t->len, p, k);
		t->len += k;
		p += k;
		n -= k;
	}
	return 0;
}

/* Request bytes not yet sent: the block's, then the chunks' (a drained one is freed). */
static bool m_unsent(const struct l7_mir *m)
{
	return m->off < m->len || m->ch;
}

/* Send what is left of the request: from the block, then from the first chunk. */
static void m_send_next(struct l7_worker *lw, struct l7_mir *m)
{
	struct io_uring_sqe *sqe;
	const char *p;
	uint32_t n;

	if (m->off < m->len) {
		p = m->buf + m->off;
		n = m->len - m->off;
		m->send_ch = false;
	} else if (m->ch) {
		p = m->ch->d + m->ch->off;
		n = m->ch->len - m->ch->off;
		m->send_ch = true;
	} else {
		return;
	}
	sqe = ring_get_sqe(lw->w);
	if (!sqe) {
		m_end(lw, m, RM_MIR_FAIL_RESET);
		return;
	}
	io_uring_prep_send(sqe, m->up->fd, p, n, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe,
				ring_ud(RING_OP_L7_MSEND, 0, (uint32_t)(m - lw->mirs), m->gen));
	m->send_busy = true;
	m->send_up = m->up;
	m->up->ext++; /* a send on its socket: the connection stays until it completes */
}

void l7m_start(struct l7_worker *lw, struct l7_conn *c)
{
	const struct route_decision *d = &c->fw.d;
	struct cfgw_cfg *cfg = c->fw.cfg;
	uint32_t body = c->rq.bmode == L7_BM_KEPT ? c->rq.req_end - c->rq.head_len : 0;
	bool stream = c->rq.bmode == L7_BM_STREAM;
	uint64_t tmo = d->timeout_ns ? d->timeout_ns : L7_MIRROR_TIMEOUT_NS;
	struct l7_target t;
	struct l7_mir *m;
	uint32_t i, gen;
	ssize_t n;
	int err = 0;

	if (body > lw->mreq_size) {
		skip(lw, NULL, RM_MIR_SKIP_BODY);
		return;
	}
	i = conn_slots_take(&lw->ms);
	if (i == CONN_SLOT_NONE) {
		skip(lw, NULL, RM_MIR_SKIP_LIMIT);
		return;
	}
	m = &lw->mirs[i];
	gen = m->gen + 1;
	memset(m, 0, sizeof(*m));
	m->gen = gen;
	m->used = true;
	l7_tmr_init(&m->t, L7_T_MIRROR);
	m->buf = bufpool_get(&lw->mpool);
	if (!m->buf) {
		skip(lw, m, RM_MIR_SKIP_LIMIT);
		return;
	}
	n = http_shadow_head(m->buf, lw->mreq_size - body, c->cl.obuf, c->fw.olen,
			     route_service_host(cfg->t, d->mirror_service));
	if (n < 0) {
		skip(lw, m, RM_MIR_SKIP_BODY);
		return;
	}
	memcpy(m->buf + n, c->cl.cbuf + c->rq.head_len, body);
	m->len = (uint32_t)n + body;
	m->req_bytes = m->len;
	m->stream = stream;
	m->body_done = !stream;
	m->rhdrs = (struct http_header *)(void *)(m->buf + lw->mreq_size);
	m->method = c->rq.method;
	m->t0 = mono_ns();
	m->cfg = cfg;
	cfgw_hold(cfg, lw->id);
	if (l7_choose(lw, cfg, d->mirror_service, d->mirror_subset, c->cl.port, NULL, &t)) {
		skip(lw, m, RM_MIR_SKIP_NO_HOST);
		return;
	}
	m->cbp = t.cbp;
	m->cbh = t.cbh;
	/* Envoy's shadows pass the shadow cluster's breaker; here they never wait */
	if (cb_request_try_start(m->cbp, m->cbh)) {
		skip(lw, m, RM_MIR_SKIP_OVERFLOW);
		return;
	}
	m->cb_req = true;
	m->st = l7c_stats_slot(lw, c, cfg, d->mirror_service, t.ep);
	if (l7_cb_queue_first(lw, m->cbp) ||
	    !(m->up = l7_up_get(lw, &t.key, &t.ss, t.slen, m->st, m->cbp, &err))) {
		skip(lw, m, err && err != -EAGAIN ? RM_MIR_SKIP_RESOURCES : RM_MIR_SKIP_OVERFLOW);
		return;
	}
	m->up->mir = m;
	if (l7_tmr_arm(&lw->th, &m->t, mono_ns() + tmo)) {
		m_end(lw, m, RM_MIR_FAIL_TIMEOUT);
		return;
	}
	if (stream) { /* the body follows: l7m_feed */
		m->c = c;
		c->fw.mir = m;
	}
	if (m->up->state == L7U_BUSY)
		l7m_on_up_connected(lw, m, 0);
}

void l7m_on_up_connected(struct l7_worker *lw, struct l7_mir *m, int32_t res)
{
	if (res < 0) {
		m_end(lw, m, RM_MIR_FAIL_CONNECT);
		return;
	}
	m->connected = true;
	m->up->requests++;
	l7_up_arm_recv(lw, m->up);
	m_send_next(lw, m);
}

/* Every byte of the request is in buf and went out. */
static void m_req_sent(struct l7_worker *lw, struct l7_mir *m)
{
	m->req_done = true;
	stats_mirror_sent(lw->sh->stats);
	if (m->resp_head && m->sb.done && !m->until_close)
		m_end(lw, m, -1);
}

void l7m_feed(struct l7_worker *lw, struct l7_conn *c, const char *p, uint32_t n, bool done)
{
	struct l7_mir *m = c->fw.mir;

	if (!m)
		return;
	if (m_append(lw, m, p, n)) {
		m_drop(lw, m, RM_MIR_SKIP_BEHIND);
		return;
	}
	m->req_bytes += n;
	if (done) {
		m->body_done = true;
		m_unlink(m);
	}
	if (!m->connected || m->send_busy)
		return; /* the connect's or the send's completion sends it on */
	if (m_unsent(m))
		m_send_next(lw, m);
	else if (m->body_done)
		m_req_sent(lw, m);
}

void l7m_primary_end(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->fw.mir)
		m_drop(lw, c->fw.mir, RM_MIR_SKIP_BODY);
}

void l7m_on_send(struct l7_worker *lw, struct l7_mir *m, int32_t res)
{
	/* the connection the send was made on: m->up, or one m_end let go of (alive
	 * through the reference until now) */
	struct l7_up *up = m->send_up;

	m->send_busy = false;
	m->send_up = NULL;
	if (res > 0)
		up->sent += (uint64_t)res;
	l7_up_ext_put(lw, up);
	if (m->over) {
		m_free(lw, m);
		return;
	}
	if (res <= 0) {
		m_end(lw, m, RM_MIR_FAIL_RESET);
		return;
	}
	if (m->send_ch) {
		struct l7_mchunk *h = m->ch;

		h->off += (uint32_t)res;
		if (h->off == h->len) { /* drained: freed, the next chunk (or the block) goes on */
			m->ch = h->next;
			if (!m->ch)
				m->ch_tail = NULL;
			free(h);
			m->backlog -= L7_MCHUNK_BYTES;
			lw->mbacklog -= L7_MCHUNK_BYTES;
		}
	} else {
		m->off += (uint32_t)res;
		if (m->stream && m->off == m->len)
			m->off = m->len = 0; /* the block is free for the body's next bytes */
	}
	if (m_unsent(m)) {
		m_send_next(lw, m);
		return;
	}
	if (m->body_done)
		m_req_sent(lw, m);
}

/* Consume what the connection's buffer holds: the head, then the body, dropped. */
static void m_process(struct l7_worker *lw, struct l7_mir *m)
{
	struct l7_up *up = m->up;
	struct http_response res;
	ssize_t n;
	int r;

	while (!m->resp_head) {
		r = http_parse_response(up->buf + up->off, up->len - up->off, m->rparsed,
					&lw->sh->o.lim, m->method, &res, m->rhdrs, L7_MAX_HDRS);
		if (r == -2) {
			m->rparsed = up->len - up->off;
			if (up->broken)
				m_end(lw, m, RM_MIR_FAIL_RESET);
			else if (up->len >= lw->umem_size)
				m_end(lw, m, RM_MIR_FAIL_PROTOCOL);
			else
				l7_up_arm_recv(lw, up);
			return;
		}
		m->rparsed = 0;
		if (r < 0) {
			m_end(lw, m, RM_MIR_FAIL_PROTOCOL);
			return;
		}
		up->off += (uint32_t)r;
		if (res.status >= 100 && res.status < 200 && res.status != 101)
			continue; /* interim */
		m->resp_head = true;
		m->status = res.status;
		if (res.status == 101) {
			/* an upgrade would be a tunnel: the shadow ends with its answer */
			up->broken = true;
			m_host_result(lw, m, CB_SUCCESS);
			m_end(lw, m, -1);
			return;
		}
		m->up_keep = res.flags & HTTP_F_KEEP_ALIVE;
		m->until_close = res.body == HTTP_BODY_UNTIL_CLOSE;
		m_host_result(lw, m, cb_outcome_of_status(res.status));
		http_body_init(&m->sb, res.body, res.content_length, &lw->sh->o.lim);
	}
	if (!m->sb.done && up->len > up->off) {
		n = http_body_feed(&m->sb, up->buf + up->off, up->len - up->off);
		if (n < 0) {
			m_end(lw, m, RM_MIR_FAIL_PROTOCOL);
			return;
		}
		up->off += (uint32_t)n;
	}
	if (up->off == up->len)
		up->off = up->len = 0; /* dropped: the buffer never fills with a body */
	if (m->sb.done && !m->until_close) {
		if (m->req_done)
			m_end(lw, m, -1);
		return; /* the rest of the request is still going out */
	}
	if (up->broken) {
		/* EOF: the end of an until-close body, else a cut response */
		m_end(lw, m, m->until_close ? -1 : RM_MIR_FAIL_RESET);
		return;
	}
	l7_up_arm_recv(lw, up);
}

void l7m_on_up_recv(struct l7_worker *lw, struct l7_mir *m, int32_t res)
{
	if (m->over || !m->up)
		return;
	if (res > 0)
		m->resp_bytes += (uint64_t)res;
	if (res <= 0 && !m->resp_head) {
		m_end(lw, m, RM_MIR_FAIL_RESET);
		return;
	}
	m_process(lw, m);
}

void l7m_on_timer(struct l7_worker *lw, struct l7_mir *m)
{
	if (m->used && !m->over)
		m_end(lw, m, RM_MIR_FAIL_TIMEOUT);
}

void l7m_abort_all(struct l7_worker *lw)
{
	for (uint32_t i = 0; i < lw->ms.used; i++)
		if (lw->mirs[i].used && !lw->mirs[i].over)
			m_end(lw, &lw->mirs[i], RM_MIR_FAIL_RESET);
}
