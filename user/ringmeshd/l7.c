/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * L7 worker plumbing: slots, buffer free lists, taking over admitted connections,
 * upstream connection objects (connect, keep-alive pool, idle
 * detection and timeout), timers and completion dispatch. The request life cycle
 * itself is in l7_http.c, l7_fwd.c and l7_resp.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <sys/random.h>

#include "policy/cb.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/l7_int.h"

#define L7_MEM_CACHE 256 /* free buffer blocks kept per kind and worker */
#define L7_POOL_BUCKETS 4096

void l7_opts_fill(struct l7_opts *o)
{
	if (!o->buf_size)
		o->buf_size = L7_DEF_BUF;
	if (o->buf_size < 4096)
		o->buf_size = 4096;
	if (!o->lim.max_head)
		o->lim.max_head = L7_DEF_MAX_HEAD;
	if (o->lim.max_head > o->buf_size)
		o->lim.max_head = o->buf_size;
	if (!o->lim.max_uri)
		o->lim.max_uri = HTTP_DEF_MAX_URI;
	if (!o->lim.max_headers || o->lim.max_headers > L7_MAX_HDRS)
		o->lim.max_headers = o->lim.max_headers ? L7_MAX_HDRS : HTTP_DEF_MAX_HEADERS;
	if (!o->lim.max_chunk_line)
		o->lim.max_chunk_line = HTTP_DEF_MAX_CHUNK_LINE;
	if (!o->max_idle)
		o->max_idle = L7_DEF_MAX_IDLE;
	if (!o->idle_timeout_ms)
		o->idle_timeout_ms = L7_DEF_IDLE_MS;
	if (!o->connect_timeout_ms)
		o->connect_timeout_ms = L7_DEF_CONNECT_MS;
	if (!o->retry_buf)
		o->retry_buf = L7_DEF_RETRY_BUF;
	if (o->retry_buf > o->buf_size - o->lim.max_head)
		o->retry_buf = o->buf_size > o->lim.max_head ? o->buf_size - o->lim.max_head : 0;
}

uint64_t l7_rand(struct l7_worker *lw)
{
	/* xorshift64*: the router and balancer need uniform bits, not secrets */
	uint64_t x = lw->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	lw->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

int l7_worker_init(struct ring_worker *w)
{
	struct l7_worker *lw = calloc(1, sizeof(*lw));
	struct l7_shared *sh = w->cfg.l7;
	uint32_t n = w->cfg.max_conns;

	if (!lw)
		return -ENOMEM;
	w->l7 = lw;
	lw->w = w;
	lw->sh = sh;
	lw->id = w->cfg.id;
	lw->n_conns = n;
	lw->n_ups = n;
	lw->conns = calloc(n, sizeof(*lw->conns));
	lw->ups = calloc(n, sizeof(*lw->ups));
	lw->cmem_free = calloc(L7_MEM_CACHE, sizeof(void *));
	lw->umem_free = calloc(L7_MEM_CACHE, sizeof(void *));
	if (!lw->conns || !lw->ups || !lw->cmem_free || !lw->umem_free ||
	    l7_theap_init(&lw->th, 4 * n) ||
	    pool_init(&lw->pool, L7_POOL_BUCKETS, sh->o.max_idle)) {
		l7_worker_fini(w);
		return -ENOMEM;
	}
	/* Slots are taken in order on first use (l7c_alloc, up_alloc), not threaded
	 * onto a free list here: writing every slot would make all of them resident. */
	lw->c_free = lw->u_free = L7_NONE;
	l7_tmr_init(&lw->t_cb, L7_T_CB);
	lw->cbuf_size = sh->o.buf_size;
	lw->obuf_size = (uint32_t)sh->o.lim.max_head + 8192;
	lw->rbuf_size = (uint32_t)sh->o.lim.max_head + 4096;
	lw->cmem_size = (size_t)lw->cbuf_size + lw->obuf_size + lw->rbuf_size +
			2 * L7_MAX_HDRS * sizeof(struct http_header);
	lw->umem_size = sh->o.buf_size;
	lw->connect_ts.tv_sec = sh->o.connect_timeout_ms / 1000;
	lw->connect_ts.tv_nsec = (long long)(sh->o.connect_timeout_ms % 1000) * 1000000;
	if (getrandom(&lw->rng, sizeof(lw->rng), 0) != sizeof(lw->rng) || !lw->rng)
		lw->rng = mono_ns() | 1;
	lw->cur = cfgw_current(sh->cw);
	return 0;
}

void l7_worker_fini(struct ring_worker *w)
{
	struct l7_worker *lw = w->l7;

	if (!lw)
		return;
	/* After io_uring_queue_exit: nothing in flight can use these. */
	for (uint32_t i = 0; lw->conns && i < lw->n_conns; i++) {
		struct l7_conn *c = &lw->conns[i];

		if (c->state != L7C_FREE && c->cl.fd >= 0)
			close(c->cl.fd);
		if (c->fw.cfg)
			cfgw_drop(c->fw.cfg, lw->id);
		free(c->cl.mem);
		free(c->zk);
	}
	for (uint32_t i = 0; lw->ups && i < lw->n_ups; i++) {
		if (lw->ups[i].state != L7U_FREE && lw->ups[i].fd >= 0)
			close(lw->ups[i].fd);
		free(lw->ups[i].buf);
	}
	for (uint32_t i = 0; i < lw->n_cmem_free; i++)
		free(lw->cmem_free[i]);
	for (uint32_t i = 0; i < lw->n_umem_free; i++)
		free(lw->umem_free[i]);
	free(lw->cmem_free);
	free(lw->umem_free);
	/* the heap's nodes live in the slots: a timer still armed (an idle upstream after
	 * a drain) is touched by the fini */
	l7_theap_fini(&lw->th);
	free(lw->conns);
	free(lw->ups);
	pool_fini(&lw->pool);
	free(lw);
	w->l7 = NULL;
}

static void *mem_get(void **cache, uint32_t *n, size_t size)
{
	if (*n)
		return cache[--*n];
	return malloc(size);
}

static void mem_put(void **cache, uint32_t *n, void *p)
{
	if (!p)
		return;
	if (*n < L7_MEM_CACHE)
		cache[(*n)++] = p;
	else
		free(p);
}

uint64_t l7_conn_ud(struct l7_worker *lw, struct l7_conn *c, enum ring_op op)
{
	return ring_ud(op, 0, (uint32_t)(c - lw->conns), c->gen);
}

static uint64_t up_ud(struct l7_worker *lw, struct l7_up *up, enum ring_op op)
{
	return ring_ud(op, 1, (uint32_t)(up - lw->ups), up->gen);
}

/* ---- client connection slots ---- */

struct l7_conn *l7c_alloc(struct l7_worker *lw)
{
	struct l7_conn *c;
	uint32_t gen;
	char *m;

	if (lw->c_free == L7_NONE && lw->c_used >= lw->n_conns)
		return NULL;
	m = mem_get(lw->cmem_free, &lw->n_cmem_free, lw->cmem_size);
	if (!m)
		return NULL;
	if (lw->c_free != L7_NONE) {
		c = &lw->conns[lw->c_free];
		lw->c_free = c->next_free;
	} else {
		c = &lw->conns[lw->c_used++];
	}
	gen = c->gen + 1;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->cl.fd = -1;
	c->cl.mem = m;
	c->cl.cbuf = m;
	c->cl.obuf = m + lw->cbuf_size;
	c->cl.rbuf = c->cl.obuf + lw->obuf_size;
	c->cl.hdrs = (struct http_header *)(void *)(c->cl.rbuf + lw->rbuf_size);
	c->cl.rhdrs = c->cl.hdrs + L7_MAX_HDRS;
	l7_tmr_init(&c->t_route, L7_T_ROUTE);
	l7_tmr_init(&c->t_try, L7_T_TRY);
	l7_tmr_init(&c->t_delay, L7_T_DELAY);
	return c;
}

void l7c_free(struct l7_worker *lw, struct l7_conn *c)
{
	struct ring_worker *w = lw->w;
	const struct ring_hooks *h = &w->cfg.hooks;

	if (c->cl.orig_known && h->on_close)
		h->on_close(h->ctx, (const struct sockaddr *)&c->cl.local,
			    (const struct sockaddr *)&c->cl.peer);
	if (c->cl.fd >= 0)
		close(c->cl.fd);
	c->cl.fd = -1;
	mem_put(lw->cmem_free, &lw->n_cmem_free, c->cl.mem);
	c->cl.mem = NULL;
	c->state = L7C_FREE;
	c->next_free = lw->c_free;
	lw->c_free = (uint32_t)(c - lw->conns);
	RING_STAT_ADD(w, active, -1);
	RING_STAT_ADD(w, closed, 1);
}

/* ---- admission ---- */

struct cfgw_cfg *l7_config(struct ring_worker *w)
{
	return l7w(w)->cur;
}

uint64_t l7_random(struct ring_worker *w)
{
	return l7_rand(l7w(w));
}

int l7_accept(struct ring_worker *w, const struct conn_admit *a, int svc)
{
	struct l7_worker *lw = l7w(w);
	struct l7_conn *c;
	int one = 1;

	c = l7c_alloc(lw);
	if (!c)
		return -ENOMEM;
	RING_STAT_ADD(w, active, 1);
	c->cl.fd = a->fd;
	c->cl.local = a->local;
	c->cl.peer = a->peer;
	c->cl.orig = a->orig;
	c->cl.orig_known = a->orig_known;
	c->cl.port = a->orig.port;
	c->cl.svc = svc;
	setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	l7c_start(lw, c);
	return 0;
}

/* ---- upstream connections ---- */

static void up_finish(struct l7_worker *lw, struct l7_up *up)
{
	l7_tmr_cancel(&lw->th, &up->t_idle);
	pool_remove(&lw->pool, &up->link);
	l7_cb_idle(lw, up, false);
	if (up->cb_counted) {
		/* the socket is closed now: only then may another take its slot, and a
		 * worker whose requests wait gets it before any new request can */
		up->cb_counted = false;
		if (!l7_cb_handoff(lw, up->cbp))
			cb_conn_close(up->cbp);
		l7_cb_kick(lw, up->cbp);
	}
	stats_tcp(up->st, 0, 1, up->sent, up->rcvd);
	if (up->fd >= 0)
		close(up->fd);
	up->fd = -1;
	mem_put(lw->umem_free, &lw->n_umem_free, up->buf);
	up->buf = NULL;
	up->state = L7U_FREE;
	up->next_free = lw->u_free;
	lw->u_free = (uint32_t)(up - lw->ups);
}

static void up_maybe_finish(struct l7_worker *lw, struct l7_up *up)
{
	if (up->state == L7U_CLOSING && !up->inflight && !up->ext)
		up_finish(lw, up);
}

/* Close: shutdown wakes the pending recv, the cancel drops io_uring's file refs. */
static void up_close(struct l7_worker *lw, struct l7_up *up)
{
	struct io_uring_sqe *sqe;

	if (up->state == L7U_CLOSING || up->state == L7U_FREE)
		return;
	up->state = L7U_CLOSING;
	up->owner = NULL;
	l7_tmr_cancel(&lw->th, &up->t_idle);
	pool_remove(&lw->pool, &up->link);
	l7_cb_idle(lw, up, false);
	if (up->fd >= 0) {
		shutdown(up->fd, SHUT_RDWR);
		if ((up->inflight || up->ext) && (sqe = ring_get_sqe(lw->w))) {
			io_uring_prep_cancel_fd(sqe, up->fd, IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_CANCEL, 0, 0, 0));
		}
	}
	up_maybe_finish(lw, up);
}

void l7_up_close_idle(struct l7_worker *lw, struct l7_up *up)
{
	if (up->state == L7U_IDLE)
		up_close(lw, up);
}

void l7_up_ext_put(struct l7_worker *lw, struct l7_up *up)
{
	up->ext--;
	up_maybe_finish(lw, up);
}

void l7_up_arm_recv(struct l7_worker *lw, struct l7_up *up)
{
	struct io_uring_sqe *sqe;

	if (up->recv_busy || up->broken || up->state == L7U_CLOSING || up->len >= lw->umem_size)
		return;
	sqe = ring_get_sqe(lw->w);
	if (!sqe) {
		up->broken = true;
		return;
	}
	io_uring_prep_recv(sqe, up->fd, up->buf + up->len, lw->umem_size - up->len, 0);
	io_uring_sqe_set_data64(sqe, up_ud(lw, up, RING_OP_L7_URECV));
	up->recv_busy = true;
	up->inflight++;
}

static struct l7_up *up_alloc(struct l7_worker *lw)
{
	struct l7_up *up;
	uint32_t gen;
	char *b;

	if (lw->u_free == L7_NONE && lw->u_used >= lw->n_ups)
		return NULL;
	b = mem_get(lw->umem_free, &lw->n_umem_free, lw->umem_size);
	if (!b)
		return NULL;
	if (lw->u_free != L7_NONE) {
		up = &lw->ups[lw->u_free];
		lw->u_free = up->next_free;
	} else {
		up = &lw->ups[lw->u_used++];
	}
	gen = up->gen + 1;
	memset(up, 0, sizeof(*up));
	up->gen = gen;
	up->fd = -1;
	up->buf = b;
	pool_link_init(&up->link);
	l7_tmr_init(&up->t_idle, L7_T_IDLE);
	return up;
}

struct l7_up *l7_up_get(struct l7_worker *lw, const struct pool_key *key,
			const struct sockaddr_storage *dst, socklen_t dlen,
			struct rm_stats_slot *st, struct rm_cb_pool *cbp, int *err)
{
	struct pool_link *l;
	struct l7_up *up;
	int one = 1;

	while ((l = pool_get(&lw->pool, key))) {
		up = (struct l7_up *)((char *)l - offsetof(struct l7_up, link));
		l7_tmr_cancel(&lw->th, &up->t_idle);
		l7_cb_idle(lw, up, false);
		if (up->broken || up->len) {
			up_close(lw, up);
			continue;
		}
		up->state = L7U_BUSY;
		return up;
	}
	/* an idle connection is already counted; a new one must be admitted */
	if (cb_conn_try_open(cbp)) {
		*err = -EAGAIN;
		return NULL;
	}
	up = up_alloc(lw);
	if (!up) {
		cb_conn_close(cbp);
		*err = -ENOMEM;
		return NULL;
	}
	up->cbp = cbp;
	up->cb_counted = true;
	up->key = *key;
	up->dst = *dst;
	up->dlen = dlen;
	up->st = st;
	up->fd = socket(dst->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (up->fd < 0) {
		*err = -errno;
		up->state = L7U_CLOSING;
		up_finish(lw, up);
		return NULL;
	}
	setsockopt(up->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*err =
	    conn_prep_connect(&lw->w->ring, up->fd, &up->dst, up->dlen, &lw->connect_ts,
			      up_ud(lw, up, RING_OP_L7_UCONN), up_ud(lw, up, RING_OP_L7_UCONN_TO));
	if (*err) {
		up->state = L7U_CLOSING;
		up_finish(lw, up);
		return NULL;
	}
	up->inflight += 2;
	up->state = L7U_CONNECTING;
	stats_tcp(st, 1, 0, 0, 0);
	return up;
}

/* Done with a request: park the connection (its recv stays armed to notice a close
 * by the server) or close it. */
void l7_up_release(struct l7_worker *lw, struct l7_up *up, bool reuse)
{
	up->owner = NULL;
	if (up->cb_counted && up->cbp && l7_cb_handoff(lw, up->cbp)) {
		/* its slot now belongs to a worker whose requests wait */
		up->cb_counted = false;
		up_close(lw, up);
		return;
	}
	if (!reuse || up->broken || up->len != up->off || up->state != L7U_BUSY || up->ext) {
		up_close(lw, up);
		return;
	}
	up->off = up->len = 0;
	if (pool_put(&lw->pool, &up->key, &up->link)) {
		up_close(lw, up);
		return;
	}
	up->state = L7U_IDLE;
	l7_cb_idle(lw, up, true);
	l7_cb_kick(lw, up->cbp);
	l7_up_arm_recv(lw, up);
	if (up->broken ||
	    l7_tmr_arm(&lw->th, &up->t_idle,
		       mono_ns() + (uint64_t)lw->sh->o.idle_timeout_ms * 1000000ull)) {
		up_close(lw, up);
	}
}

static void up_on_recv(struct l7_worker *lw, struct l7_up *up, int32_t res)
{
	up->inflight--;
	up->recv_busy = false;
	if (res > 0) {
		up->len += (uint32_t)res;
		up->rcvd += (uint64_t)res;
	} else if (res != -ECANCELED || up->state != L7U_BUSY) {
		up->broken = true;
	}
	if (up->state == L7U_CLOSING) {
		up_maybe_finish(lw, up);
		return;
	}
	if (up->state == L7U_IDLE) {
		/* The server closed (or spoke out of turn): the connection is unusable. */
		up_close(lw, up);
		return;
	}
	if (up->owner)
		l7c_on_up_recv(lw, up->owner, res);
	else
		up_close(lw, up);
}

static void up_on_connect(struct l7_worker *lw, struct l7_up *up, int32_t res)
{
	up->inflight--;
	if (up->state != L7U_CONNECTING) {
		up_maybe_finish(lw, up);
		return;
	}
	if (res < 0) {
		up->broken = true;
		if (up->owner)
			l7c_on_up_connected(lw, up->owner, res);
		else
			up_close(lw, up);
		return;
	}
	up->state = L7U_BUSY;
	if (up->owner)
		l7c_on_up_connected(lw, up->owner, 0);
	else
		up_close(lw, up);
}

/* ---- completions, timers ---- */

void l7_complete(struct ring_worker *w, uint64_t ud, int32_t res, uint32_t flags)
{
	struct l7_worker *lw = l7w(w);
	uint32_t slot = ring_ud_slot(ud);
	enum ring_op op = ring_ud_op(ud);

	if (op == RING_OP_L7_URECV || op == RING_OP_L7_UCONN || op == RING_OP_L7_UCONN_TO) {
		struct l7_up *up;

		if (slot >= lw->n_ups || lw->ups[slot].gen != ring_ud_gen(ud) ||
		    lw->ups[slot].state == L7U_FREE)
			return;
		up = &lw->ups[slot];
		if (op == RING_OP_L7_URECV)
			up_on_recv(lw, up, res);
		else if (op == RING_OP_L7_UCONN)
			up_on_connect(lw, up, res);
		else {
			up->inflight--;
			up_maybe_finish(lw, up);
		}
		return;
	}
	if (slot >= lw->n_conns || lw->conns[slot].gen != ring_ud_gen(ud) ||
	    lw->conns[slot].state == L7C_FREE)
		return;
	switch (op) {
	case RING_OP_L7_CRECV:
		l7c_on_recv(lw, &lw->conns[slot], res);
		break;
	case RING_OP_L7_CSEND:
		l7c_on_send(lw, &lw->conns[slot], res);
		break;
	case RING_OP_L7_USEND:
		l7c_on_usend(lw, &lw->conns[slot], res);
		break;
	default:
		break;
	}
	(void)flags;
}

uint64_t l7_tick(struct ring_worker *w, uint64_t now)
{
	struct l7_worker *lw = l7w(w);
	struct cfgw *cw = lw->sh->cw;
	struct l7_tmr *t;

	while ((t = l7_theap_pop_expired(&lw->th, now))) {
		if (t == &lw->t_cb) {
			l7_cb_on_timer(lw, now);
		} else if (t->kind == L7_T_IDLE) {
			struct l7_up *up =
			    (struct l7_up *)((char *)t - offsetof(struct l7_up, t_idle));

			up_close(lw, up);
		} else {
			size_t off = t->kind == L7_T_ROUTE ? offsetof(struct l7_conn, t_route)
				     : t->kind == L7_T_TRY ? offsetof(struct l7_conn, t_try)
							   : offsetof(struct l7_conn, t_delay);
			struct l7_conn *c = (struct l7_conn *)((char *)t - off);

			if (c->state != L7C_FREE)
				l7c_on_timer(lw, c, t);
		}
	}
	if (lw->any_kick)
		l7_cb_run_kicks(lw);
	cfgw_quiescent(cw, lw->id);
	lw->cur = cfgw_current(cw);
	return l7_theap_next(&lw->th);
}

void l7_pass_begin(struct ring_worker *w)
{
	struct l7_worker *lw = l7w(w);

	lw->cur = cfgw_current(lw->sh->cw);
}

void l7_abort_all(struct ring_worker *w)
{
	struct l7_worker *lw = l7w(w);

	for (uint32_t i = 0; i < lw->n_conns; i++)
		if (lw->conns[i].state != L7C_FREE && lw->conns[i].state != L7C_CLOSING)
			l7c_abort(lw, &lw->conns[i]);
	for (uint32_t i = 0; i < lw->n_ups; i++)
		if (lw->ups[i].state == L7U_IDLE)
			up_close(lw, &lw->ups[i]);
}

void l7_drain(struct ring_worker *w, uint64_t now)
{
	struct l7_worker *lw = l7w(w);

	for (uint32_t i = 0; i < lw->n_conns; i++) {
		struct l7_conn *c = &lw->conns[i];

		if (c->state == L7C_FREE || c->state == L7C_CLOSING)
			continue;
		c->rq.req_keep = false; /* a request in flight: its response closes */
		if (c->state == L7C_HEAD && !c->cl.clen && !c->cl.csend_busy && !c->mt.in_req &&
		    now - c->cl.idle_ns >= (uint64_t)L7_DRAIN_IDLE_MS * 1000000ull)
			l7c_close(lw, c);
	}
}
