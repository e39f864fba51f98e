/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Transparent L4 forwarding. Each direction has one send in flight at most and a
 * queue of received buffers behind it; the reader of the opposite socket is paused
 * (its multishot recv cancelled) when that queue reaches high water and re-armed
 * below half of it, so a slow peer costs a bounded number of pool buffers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <sys/mman.h>

#include "policy/cb.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/l4.h"
#include "ringmeshd/stats_w.h"
#include "common/util.h"

static void abort_conn(struct ring_worker *w, struct l4_conn *c);
static void try_arm(struct ring_worker *w, struct l4_conn *c, unsigned int s);

static inline uint32_t slot_of(const struct ring_worker *w, const struct l4_conn *c)
{
	return (uint32_t)(c - w->conns);
}

static inline uint64_t conn_ud(const struct ring_worker *w, const struct l4_conn *c,
			       enum ring_op op, unsigned int side)
{
	return ring_ud(op, side, slot_of(w, c), c->gen);
}

int l4_init(struct ring_worker *w)
{
	uint32_t n = w->cfg.max_conns;

	/* Slots are taken in order on first use (conn_slots_take): writing every slot
	 * here would make all of them resident. */
	w->conns = calloc(n, sizeof(*w->conns));
	w->starved = calloc((size_t)n * 2, sizeof(*w->starved));
	if (!w->conns || !w->starved || conn_slots_init(&w->slots, n)) {
		free(w->conns);
		free(w->starved);
		w->conns = NULL;
		w->starved = NULL;
		return -ENOMEM;
	}
	w->starved_head = 0;
	w->starved_len = 0;
	return 0;
}

void l4_fini(struct ring_worker *w)
{
	if (!w->conns)
		return;
	/* Only after io_uring_queue_exit: no operation can still use these fds. */
	for (uint32_t i = 0; i < w->slots.used; i++)
		for (int s = 0; s < 2; s++)
			if (w->conns[i].state != L4_FREE && w->conns[i].side[s].fd >= 0)
				close(w->conns[i].side[s].fd);
	free(w->conns);
	free(w->starved);
	conn_slots_fini(&w->slots);
	w->conns = NULL;
	w->starved = NULL;
}

static struct l4_conn *slot_alloc(struct ring_worker *w)
{
	uint32_t i = conn_slots_take(&w->slots), gen;
	struct l4_conn *c;

	if (i == CONN_SLOT_NONE)
		return NULL;
	c = &w->conns[i];
	gen = c->gen + 1;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	for (int s = 0; s < 2; s++) {
		c->side[s].fd = -1;
		c->side[s].q_head = RING_BUF_NONE;
		c->side[s].q_tail = RING_BUF_NONE;
	}
	return c;
}

/* Recycle queued buffers; keep the head when a send of it is in flight. */
static void drop_queue(struct ring_worker *w, struct l4_side *sd)
{
	uint32_t bid = sd->q_head;

	if (bid == RING_BUF_NONE)
		return;
	if (sd->send_busy) {
		uint32_t rest = w->meta[bid].next;

		w->meta[bid].next = RING_BUF_NONE;
		sd->q_tail = bid;
		sd->q_len = 1;
		bid = rest;
	} else {
		sd->q_head = sd->q_tail = RING_BUF_NONE;
		sd->q_len = 0;
	}
	while (bid != RING_BUF_NONE) {
		uint32_t next = w->meta[bid].next;

		ring_buf_recycle(w, bid);
		bid = next;
	}
}

static uint32_t q_pop(struct ring_worker *w, struct l4_side *sd)
{
	uint32_t bid = sd->q_head;

	sd->q_head = w->meta[bid].next;
	if (sd->q_head == RING_BUF_NONE)
		sd->q_tail = RING_BUF_NONE;
	sd->q_len--;
	return bid;
}

static void q_push(struct ring_worker *w, struct l4_side *sd, uint32_t bid)
{
	w->meta[bid].next = RING_BUF_NONE;
	if (sd->q_tail == RING_BUF_NONE)
		sd->q_head = bid;
	else
		w->meta[sd->q_tail].next = bid;
	sd->q_tail = bid;
	sd->q_len++;
}

/* The slot is about to be freed (event for an L7 layer: release its state here). */
static void l4_ev_closed(struct ring_worker *w, struct l4_conn *c)
{
	const struct ring_hooks *h = &w->cfg.hooks;

	if (c->orig_known && h->on_close)
		h->on_close(h->ctx, (const struct sockaddr *)&c->local,
			    (const struct sockaddr *)&c->peer);
}

void l4_cb_release(struct l4_cb *cbt)
{
	cb_conn_close(cbt->p);
	cb_request_finish(NULL, cbt->h);
	cbt->p = NULL;
	cbt->h = NULL;
}

static void finish(struct ring_worker *w, struct l4_conn *c)
{
	l4_ev_closed(w, c);
	if (c->cb.p || c->cb.h)
		l4_cb_release(&c->cb);
	if (c->st) {
		/* a declared TCP service's endpoint: bytes to the upstream are "sent"; one
		 * that ended before its connect did counts as opened here */
		stats_tcp(c->st, !c->st_opened, 1, c->bytes[L4_UPSTREAM], c->bytes[L4_CLIENT]);
		c->st = NULL;
	}
	for (int s = 0; s < 2; s++) {
		drop_queue(w, &c->side[s]);
		if (c->side[s].fd >= 0)
			close(c->side[s].fd);
		c->side[s].fd = -1;
	}
	if (c->reset)
		RING_STAT_ADD(w, resets, 1);
	RING_STAT_ADD(w, active, -1);
	RING_STAT_ADD(w, closed, 1);
	c->state = L4_FREE;
	conn_slots_give(&w->slots, slot_of(w, c));
}

static void maybe_finish(struct ring_worker *w, struct l4_conn *c)
{
	if (c->state == L4_CLOSING && c->inflight == 0)
		finish(w, c);
}

/*
 * Reset both sockets: SO_LINGER{1,0} makes the final close send RST, and the
 * cancels drop io_uring's references so that close is final. Used for a reset or
 * error on either side, a failed upstream connect and a refused connection.
 */
static void abort_conn(struct ring_worker *w, struct l4_conn *c)
{
	if (c->state == L4_CLOSING && c->reset)
		return;
	c->state = L4_CLOSING;
	c->reset = true;
	for (int s = 0; s < 2; s++) {
		struct l4_side *sd = &c->side[s];
		struct io_uring_sqe *sqe;

		if (sd->fd < 0)
			continue;
		conn_linger0(sd->fd);
		drop_queue(w, sd);
		if (c->inflight && (sqe = ring_get_sqe(w)) != NULL) {
			io_uring_prep_cancel_fd(sqe, sd->fd, IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_CANCEL, 0, 0, 0));
		}
	}
	maybe_finish(w, c);
}

static void send_head(struct ring_worker *w, struct l4_conn *c, unsigned int s)
{
	struct l4_side *sd = &c->side[s];
	struct ring_buf_meta *m = &w->meta[sd->q_head];
	struct io_uring_sqe *sqe = ring_get_sqe(w);

	if (!sqe) {
		abort_conn(w, c);
		return;
	}
	io_uring_prep_send(sqe, sd->fd, ring_buf_data(w, sd->q_head) + m->off, m->len - m->off,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, conn_ud(w, c, RING_OP_SEND, s));
	sd->send_busy = true;
	c->inflight++;
}

static void shut_wr(struct ring_worker *w, struct l4_conn *c, unsigned int s)
{
	struct l4_side *sd = &c->side[s];

	if (sd->shut_wr)
		return;
	sd->shut_wr = true;
	if (shutdown(sd->fd, SHUT_WR) && errno != ENOTCONN) {
		abort_conn(w, c);
		return;
	}
	/* Both directions finished and flushed: a clean close. */
	if (c->side[0].shut_wr && c->side[1].shut_wr && !c->side[0].send_busy &&
	    !c->side[1].send_busy) {
		c->state = L4_CLOSING;
		maybe_finish(w, c);
	}
}

/* Bytes arrived on side s (one received buffer). At L4 they go to the other side. */
static void l4_ev_data(struct ring_worker *w, struct l4_conn *c, unsigned int s, uint32_t bid,
		       uint32_t len)
{
	struct l4_side *out = &c->side[s ^ 1];
	struct l4_side *in = &c->side[s];

	w->meta[bid].off = 0;
	w->meta[bid].len = len;
	q_push(w, out, bid);
	if (out->q_len > w->stats.queue_peak)
		__atomic_store_n(&w->stats.queue_peak, out->q_len, __ATOMIC_RELAXED);
	if (!out->send_busy)
		send_head(w, c, s ^ 1);
	if (c->state != L4_OPEN)
		return;
	/* The other side is slow: stop taking pool buffers for it. */
	if (out->q_len >= w->cfg.high_water && in->recv_armed && !in->recv_cancel) {
		struct io_uring_sqe *sqe = ring_get_sqe(w);

		if (!sqe) {
			abort_conn(w, c);
			return;
		}
		io_uring_prep_cancel64(sqe, conn_ud(w, c, RING_OP_RECV, s), 0);
		io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_CANCEL, 0, 0, 0));
		in->recv_cancel = true;
	}
}

/* Side s's peer finished sending: pass the FIN on once its bytes are flushed. */
static void l4_ev_eof(struct ring_worker *w, struct l4_conn *c, unsigned int s)
{
	struct l4_side *out = &c->side[s ^ 1];

	c->side[s].eof = true;
	if (out->q_len == 0 && !out->send_busy)
		shut_wr(w, c, s ^ 1);
}

/*
 * The connection's metrics at its connect's outcome: opened on its key, or, when the
 * connect failed, on the same key with UF (Istio's response_flags of a TCP series:
 * Envoy's tcp_proxy sets UF when the upstream connect fails). Counted once the
 * outcome is known, as Envoy's stats filter reports a TCP connection once it knows
 * its peer or at its close, so no series counts a connection it then has to give up.
 */
static void count_opened(struct l4_conn *c, bool failed)
{
	if (!c->st || c->st_opened)
		return;
	if (failed && c->sw) {
		struct rm_stats_key k = c->st->key;

		k.tcp_flags |= 1u << RM_STATS_F_UF;
		c->st = stats_slot(c->sw, &k);
	}
	stats_tcp(c->st, 1, 0, 0, 0);
	c->st_opened = true;
}

/* Upstream connect done: start reading both sides. */
static void l4_ev_upstream_connected(struct ring_worker *w, struct l4_conn *c, int32_t res)
{
	/* Envoy without split_external_local_origin_errors: a connect failure or timeout
	 * (-ECANCELED by the linked timeout) counts as the host's gateway error, a
	 * connect as its success */
	if (c->cb.h)
		cb_host_result(c->cb.cb, c->cb.h, res < 0 ? CB_CONNECT_FAIL : CB_SUCCESS,
			       mono_ns());
	count_opened(c, res < 0);
	if (res < 0) {
		RING_STAT_ADD(w, upstream_connect_failed, 1);
		abort_conn(w, c);
		return;
	}
	c->state = L4_OPEN;
	try_arm(w, c, L4_CLIENT);
	try_arm(w, c, L4_UPSTREAM);
}

static void try_arm(struct ring_worker *w, struct l4_conn *c, unsigned int s)
{
	struct l4_side *sd = &c->side[s];
	uint32_t cap;

	if (c->state != L4_OPEN || sd->recv_armed || sd->eof || sd->starved)
		return;
	if (c->side[s ^ 1].q_len > w->cfg.high_water / 2) {
		if (!sd->paused)
			RING_STAT_ADD(w, paused, 1);
		sd->paused = true;
		return;
	}
	sd->paused = false;
	/* Room left before high water, in bytes: the reader stops by itself there. */
	cap = (w->cfg.high_water - c->side[s ^ 1].q_len) * w->cfg.buf_size;
	if (ring_prep_recv(w, sd->fd, conn_ud(w, c, RING_OP_RECV, s), cap)) {
		abort_conn(w, c);
		return;
	}
	sd->recv_armed = true;
	c->inflight++;
}

static inline uint32_t priv_bid(const struct ring_worker *w, const struct l4_conn *c,
				unsigned int s)
{
	return w->cfg.buf_count + slot_of(w, c) * 2 + s;
}

/* The pool is empty: read once into the side's own buffer, so this reader (maybe
 * the one whose progress would free pool buffers) is never stuck behind the pool. */
static void recv_private(struct ring_worker *w, struct l4_conn *c, unsigned int s)
{
	struct l4_side *sd = &c->side[s];
	struct io_uring_sqe *sqe = ring_get_sqe(w);

	if (!sqe) {
		abort_conn(w, c);
		return;
	}
	io_uring_prep_recv(sqe, sd->fd, ring_buf_data(w, priv_bid(w, c, s)), w->cfg.buf_size, 0);
	io_uring_sqe_set_data64(sqe, conn_ud(w, c, RING_OP_RECV1, s));
	sd->priv_busy = true;
	sd->recv_armed = true;
	c->inflight++;
}

void l4_priv_released(struct ring_worker *w, uint32_t bid)
{
	uint32_t i = bid - w->cfg.buf_count;
	struct l4_conn *c = &w->conns[i / 2];
	struct l4_side *sd = &c->side[i % 2];

	sd->priv_busy = false;
	/* used only when the pool ran dry: its pages go back until the next time */
	madvise(ring_buf_data(w, bid), w->cfg.buf_size, MADV_DONTNEED);
	if (c->state == L4_OPEN && sd->starved) {
		sd->starved = false; /* its FIFO entry is skipped */
		try_arm(w, c, i % 2);
	}
}

static void on_recv1(struct ring_worker *w, struct l4_conn *c, unsigned int s, int32_t res)
{
	struct l4_side *sd = &c->side[s];

	c->inflight--;
	sd->recv_armed = false;
	if (c->state != L4_OPEN || res <= 0)
		sd->priv_busy = false;
	if (c->state != L4_OPEN) {
		maybe_finish(w, c);
		return;
	}
	if (res > 0) {
		l4_ev_data(w, c, s, priv_bid(w, c, s), (uint32_t)res);
		try_arm(w, c, s);
	} else if (res == 0) {
		l4_ev_eof(w, c, s);
	} else {
		abort_conn(w, c);
	}
}

static void starve(struct ring_worker *w, struct l4_conn *c, unsigned int s)
{
	uint32_t cap = w->cfg.max_conns * 2;
	struct ring_starved *e;

	/* Each side is queued at most once (starved flag), so the FIFO cannot overflow. */
	c->side[s].starved = true;
	e = &w->starved[(w->starved_head + w->starved_len) % cap];
	e->slot = slot_of(w, c);
	e->gen = c->gen;
	e->side = s;
	w->starved_len++;
}

void l4_feed_starved(struct ring_worker *w)
{
	uint32_t cap = w->cfg.max_conns * 2;
	unsigned int budget = w->bufs_free;

	while (w->starved_len && budget) {
		struct ring_starved e = w->starved[w->starved_head];
		struct l4_conn *c = &w->conns[e.slot];

		w->starved_head = (w->starved_head + 1) % cap;
		w->starved_len--;
		if (c->gen != e.gen || c->state == L4_FREE || !c->side[e.side].starved)
			continue;
		c->side[e.side].starved = false;
		try_arm(w, c, e.side);
		budget--;
	}
}

static void on_recv(struct ring_worker *w, struct l4_conn *c, unsigned int s, int32_t res,
		    uint32_t flags)
{
	struct l4_side *sd = &c->side[s];
	bool has_buf = flags & IORING_CQE_F_BUFFER;
	uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;

	if (has_buf)
		w->bufs_free--;
	if (!(flags & IORING_CQE_F_MORE)) {
		sd->recv_armed = false;
		sd->recv_cancel = false;
		c->inflight--;
	}
	if (c->state != L4_OPEN) {
		if (has_buf)
			ring_buf_recycle(w, bid);
		maybe_finish(w, c);
		return;
	}
	if (res > 0 && has_buf) {
		l4_ev_data(w, c, s, bid, (uint32_t)res);
		try_arm(w, c, s);
		return;
	}
	if (has_buf)
		ring_buf_recycle(w, bid);
	if (res == 0) {
		l4_ev_eof(w, c, s);
	} else if (res == -ENOBUFS) {
		RING_STAT_ADD(w, enobufs, 1);
		if (!sd->priv_busy)
			recv_private(w, c, s);
		else
			starve(w, c, s);
	} else if (res == -EINVAL && w->mshot_cap) {
		w->mshot_cap = false; /* kernel without the multishot byte cap */
		try_arm(w, c, s);
	} else if (res == -ECANCELED) {
		try_arm(w, c, s); /* paused: the queue may have drained meanwhile */
	} else {
		abort_conn(w, c); /* ECONNRESET and friends: pass the reset on */
	}
}

static void on_send(struct ring_worker *w, struct l4_conn *c, unsigned int s, int32_t res)
{
	struct l4_side *sd = &c->side[s];
	struct ring_buf_meta *m;

	c->inflight--;
	sd->send_busy = false;
	if (c->state == L4_CLOSING) {
		if (sd->q_len)
			ring_buf_recycle(w, q_pop(w, sd));
		maybe_finish(w, c);
		return;
	}
	if (res <= 0) {
		abort_conn(w, c); /* EPIPE/ECONNRESET: the peer is gone, reset the other */
		return;
	}
	m = &w->meta[sd->q_head];
	m->off += (uint32_t)res;
	c->bytes[s] += (uint64_t)res;
	if (s == L4_UPSTREAM)
		RING_STAT_ADD(w, bytes_c2u, res);
	else
		RING_STAT_ADD(w, bytes_u2c, res);
	if (m->off < m->len) {
		send_head(w, c, s); /* short send */
		return;
	}
	ring_buf_recycle(w, q_pop(w, sd));
	if (sd->q_len)
		send_head(w, c, s);
	try_arm(w, c, s ^ 1);
	if (!sd->q_len && !sd->send_busy && c->side[s ^ 1].eof)
		shut_wr(w, c, s);
}

void l4_complete(struct ring_worker *w, uint64_t ud, int32_t res, uint32_t flags)
{
	uint32_t slot = ring_ud_slot(ud);
	unsigned int s = ring_ud_side(ud);
	struct l4_conn *c;

	if (flags & IORING_CQE_F_BUFFER)
		w->bufs_dirty = true;
	if (slot >= w->cfg.max_conns || w->conns[slot].gen != ring_ud_gen(ud) ||
	    w->conns[slot].state == L4_FREE) {
		/* Cannot happen while slots outlive their ops; never leak a buffer though. */
		if (flags & IORING_CQE_F_BUFFER) {
			w->bufs_free--;
			ring_buf_recycle(w, flags >> IORING_CQE_BUFFER_SHIFT);
		}
		return;
	}
	c = &w->conns[slot];
	switch (ring_ud_op(ud)) {
	case RING_OP_RECV:
		on_recv(w, c, s, res, flags);
		break;
	case RING_OP_RECV1:
		on_recv1(w, c, s, res);
		break;
	case RING_OP_SEND:
		on_send(w, c, s, res);
		break;
	case RING_OP_CONNECT:
		c->inflight--;
		if (c->state == L4_CONNECTING)
			l4_ev_upstream_connected(w, c, res);
		else
			maybe_finish(w, c);
		break;
	case RING_OP_CONNECT_TIMEOUT:
		c->inflight--;
		maybe_finish(w, c);
		break;
	default:
		break;
	}
}

static int start_connect(struct ring_worker *w, struct l4_conn *c, socklen_t dlen)
{
	int fd, r;

	fd = socket(c->dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	c->side[L4_UPSTREAM].fd = fd;
	r = conn_prep_connect(&w->ring, fd, &c->dst, dlen, &w->connect_ts,
			      conn_ud(w, c, RING_OP_CONNECT, L4_UPSTREAM),
			      conn_ud(w, c, RING_OP_CONNECT_TIMEOUT, L4_UPSTREAM));
	if (r)
		return r;
	c->inflight += 2;
	return 0;
}

int l4_accept(struct ring_worker *w, const struct conn_admit *a, const struct sockaddr_storage *dst,
	      socklen_t dlen, struct stats_w *sw, struct rm_stats_slot *st, const struct l4_cb *cb)
{
	struct l4_conn *c = slot_alloc(w);

	if (!c)
		return -ENOSPC;
	RING_STAT_ADD(w, active, 1);
	c->state = L4_CONNECTING;
	c->side[L4_CLIENT].fd = a->fd;
	c->local = a->local;
	c->peer = a->peer;
	c->orig = a->orig;
	c->orig_known = a->orig_known;
	c->dst = *dst;
	c->st = st;
	c->sw = sw;
	c->st_opened = false;
	if (cb)
		c->cb = *cb;
	if (start_connect(w, c, dlen)) {
		RING_STAT_ADD(w, upstream_connect_failed, 1);
		count_opened(c, true);
		abort_conn(w, c);
	}
	return 0;
}

void l4_abort_all(struct ring_worker *w)
{
	for (uint32_t i = 0; i < w->slots.used; i++)
		if (w->conns[i].state != L4_FREE)
			abort_conn(w, &w->conns[i]);
}

static bool slot_is_free(const void *e)
{
	return ((const struct l4_conn *)e)->state == L4_FREE;
}

/* The pool's pages can go: every buffer is back and the kernel fills them in this
 * thread alone (DEFER_TASKRUN), so that no recv copies into a page being dropped. */
static bool bufs_trimmable(const struct ring_worker *w)
{
	return w->bufs_dirty && w->bufs_free == w->cfg.buf_count &&
	       (w->ring_flags & IORING_SETUP_DEFER_TASKRUN);
}

void l4_trim(struct ring_worker *w, uint64_t now)
{
	if (now < w->next_trim)
		return;
	w->next_trim = now + L4_TRIM_NS;
	conn_slots_trim(&w->slots, w->conns, sizeof(*w->conns), slot_is_free, NULL);
	if (bufs_trimmable(w)) {
		madvise(w->bufs, w->bufs_bytes, MADV_DONTNEED);
		w->bufs_dirty = false;
	}
}

uint64_t l4_trim_next(const struct ring_worker *w)
{
	return conn_slots_trimmable(&w->slots) || bufs_trimmable(w) ? w->next_trim : UINT64_MAX;
}
