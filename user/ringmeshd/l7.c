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
#include <sys/mman.h>
#include <sys/random.h>

#include "policy/cb.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/l7_int.h"

#define L7_POOL_BUCKETS 4096
/* How often the buffer pools give the pages of blocks that demand no longer needs
 * back to the kernel, and how many free blocks of each stay resident regardless. */
#define L7_TRIM_NS (1000ull * 1000000ull)
#define L7_MEM_KEEP 8

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
	if (!o->req_bufs)
		o->req_bufs = L7_DEF_REQ_BUFS;
	if (!o->max_mirrors)
		o->max_mirrors = L7_DEF_MAX_MIRRORS;
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
	lw->cbuf_size = sh->o.buf_size;
	lw->obuf_size = (uint32_t)sh->o.lim.max_head + 8192;
	lw->rbuf_size = (uint32_t)sh->o.lim.max_head + 4096;
	lw->cmem_size = (size_t)lw->cbuf_size + lw->obuf_size + lw->rbuf_size +
			2 * L7_MAX_HDRS * sizeof(struct http_header);
	lw->umem_size = sh->o.buf_size;
	/* provided buffers: page-aligned mappings, the kernel maps the ring */
	lw->pbr_bytes = L7_PB_COUNT * sizeof(struct io_uring_buf);
	lw->pbufs_bytes = (size_t)L7_PB_COUNT * L7_PB_SIZE;
	lw->pbr =
	    mmap(NULL, lw->pbr_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lw->pbufs =
	    mmap(NULL, lw->pbufs_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lw->pb_mask = (uint32_t)io_uring_buf_ring_mask(L7_PB_COUNT);
	if (lw->pbr == MAP_FAILED)
		lw->pbr = NULL;
	if (lw->pbufs == MAP_FAILED)
		lw->pbufs = NULL;
	if (!lw->conns || !lw->ups || !lw->pbr || !lw->pbufs || conn_slots_init(&lw->cs, n) ||
	    conn_slots_init(&lw->us, n) ||
	    bufpool_init(&lw->cpool, lw->cmem_size, sh->o.req_bufs < n ? sh->o.req_bufs : n,
			 L7_MEM_KEEP) ||
	    bufpool_init(&lw->upool, lw->umem_size, n, L7_MEM_KEEP) ||
	    l7_theap_init(&lw->th, 4 * n + sh->o.max_mirrors) ||
	    pool_init(&lw->pool, L7_POOL_BUCKETS, sh->o.max_idle) || l7_cb_worker_init(lw) ||
	    l7m_worker_init(lw)) {
		l7_worker_fini(w);
		return -ENOMEM;
	}
	l7_tmr_init(&lw->t_cb, L7_T_CB);
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
	for (uint32_t i = 0; lw->conns && i < lw->cs.used; i++) {
		struct l7_conn *c = &lw->conns[i];

		if (c->state != L7C_FREE && c->cl.fd >= 0)
			close(c->cl.fd);
		if (c->fw.cfg)
			cfgw_drop(c->fw.cfg, lw->id);
		free(c->zk);
	}
	for (uint32_t i = 0; lw->ups && i < lw->us.used; i++)
		if (lw->ups[i].state != L7U_FREE && lw->ups[i].fd >= 0)
			close(lw->ups[i].fd);
	/* the heap's nodes live in the slots: a timer still armed (an idle upstream after
	 * a drain) is touched by the fini */
	l7_theap_fini(&lw->th);
	l7m_worker_fini(lw); /* after the heap: a shadow's timer may still be in it */
	route_thread_exit(); /* this thread's regex match data */
	bufpool_fini(&lw->cpool);
	bufpool_fini(&lw->upool);
	if (lw->pbr)
		munmap(lw->pbr, lw->pbr_bytes);
	if (lw->pbufs)
		munmap(lw->pbufs, lw->pbufs_bytes);
	free(lw->conns);
	free(lw->ups);
	conn_slots_fini(&lw->cs);
	conn_slots_fini(&lw->us);
	pool_fini(&lw->pool);
	l7_cb_worker_fini(lw);
	free(lw);
	w->l7 = NULL;
}

int l7_ring_setup(struct ring_worker *w)
{
	struct l7_worker *lw = l7w(w);
	struct io_uring_buf_reg reg;
	int r;

	r = l7_cb_worker_init(lw); /* the breaker map opened after l7_worker_init */
	if (r)
		return r;
	/* liburing 2.3 has no io_uring_setup_buf_ring: register our own mapping. */
	io_uring_buf_ring_init(lw->pbr);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)lw->pbr;
	reg.ring_entries = L7_PB_COUNT;
	reg.bgid = L7_BGID;
	r = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (r)
		return r;
	lw->pb_held = L7_PB_COUNT;
	for (uint32_t i = 0; i < L7_PB_COUNT; i++)
		l7_pb_recycle(lw, (uint16_t)i);
	return 0;
}

void l7_pb_recycle(struct l7_worker *lw, uint16_t bid)
{
	io_uring_buf_ring_add(lw->pbr, l7_pb_data(lw, bid), L7_PB_SIZE, bid, (int)lw->pb_mask, 0);
	io_uring_buf_ring_advance(lw->pbr, 1);
	lw->pb_held--;
}

/* The kernel filled provided buffer bid (a CQE with IORING_CQE_F_BUFFER). */
static uint16_t pb_taken(struct l7_worker *lw, uint32_t flags)
{
	lw->pb_held++;
	lw->pb_dirty = true;
	lw->pb_recent = true;
	return (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
}

static bool conn_is_free(const void *e)
{
	return ((const struct l7_conn *)e)->state == L7C_FREE;
}

/* A client slot keeps its span buffer across requests (l7_span.c). */
static void conn_forget(void *e)
{
	struct l7_conn *c = e;

	free(c->zk);
	c->zk = NULL;
}

static bool up_is_free(const void *e)
{
	return ((const struct l7_up *)e)->state == L7U_FREE;
}

/* Every second: pages of buffers and slots that demand no longer needs go back to
 * the kernel. The provided buffers only while no request is under way and only when
 * the kernel fills them in this thread alone (DEFER_TASKRUN), so that no recv copies
 * into a page being dropped; and only after a whole period in which none was filled:
 * under a steady load (one connection between two requests is "no request under
 * way") dropping them every second cost a 1 MiB madvise (~150 us in the loop) and
 * a page fault in each of the next 256 recvs. */
static void mem_trim(struct l7_worker *lw, uint64_t now)
{
	bool pb_recent = lw->pb_recent;

	if (now < lw->next_trim)
		return;
	lw->next_trim = now + L7_TRIM_NS;
	lw->pb_recent = false;
	bufpool_trim(&lw->cpool);
	bufpool_trim(&lw->upool);
	bufpool_trim(&lw->mpool);
	stats_worker_bufs(lw->sh->stats, lw->id, &lw->cpool, &lw->upool, now);
	conn_slots_trim(&lw->cs, lw->conns, sizeof(*lw->conns), conn_is_free, conn_forget);
	conn_slots_trim(&lw->us, lw->ups, sizeof(*lw->ups), up_is_free, NULL);
	if (lw->pb_dirty && !pb_recent && !lw->cpool.used && !lw->pb_held &&
	    (lw->w->ring_flags & IORING_SETUP_DEFER_TASKRUN)) {
		madvise(lw->pbufs, lw->pbufs_bytes, MADV_DONTNEED);
		lw->pb_dirty = false;
	}
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
	uint32_t i = conn_slots_take(&lw->cs), gen;
	struct zipkin_span *zk;
	struct l7_conn *c;

	if (i == CONN_SLOT_NONE)
		return NULL;
	c = &lw->conns[i];
	gen = c->gen + 1;
	zk = c->zk; /* the slot's span buffer outlives its connections */
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->zk = zk;
	c->cl.fd = -1;
	l7_tmr_init(&c->t_route, L7_T_ROUTE);
	l7_tmr_init(&c->t_try, L7_T_TRY);
	l7_tmr_init(&c->t_delay, L7_T_DELAY);
	return c;
}

int l7c_mem_get(struct l7_worker *lw, struct l7_conn *c)
{
	char *m;

	if (c->cl.mem)
		return 0;
	m = bufpool_get(&lw->cpool);
	if (!m)
		return -ENOBUFS;
	c->cl.mem = m;
	c->cl.cbuf = m;
	c->cl.obuf = m + lw->cbuf_size;
	c->cl.rbuf = c->cl.obuf + lw->obuf_size;
	c->cl.hdrs = (struct http_header *)(void *)(c->cl.rbuf + lw->rbuf_size);
	c->cl.rhdrs = c->cl.hdrs + L7_MAX_HDRS;
	return 0;
}

void l7c_mem_put(struct l7_worker *lw, struct l7_conn *c)
{
	if (!c->cl.mem || c->cl.clen || c->cl.crecv_busy || c->cl.csend_busy || c->fw.usend_busy ||
	    c->fw.up || c->cl.cq_up)
		return;
	bufpool_put(&lw->cpool, c->cl.mem);
	c->cl.mem = c->cl.cbuf = c->cl.obuf = c->cl.rbuf = NULL;
	c->cl.hdrs = c->cl.rhdrs = NULL;
}

void l7c_mem_wait(struct l7_worker *lw, struct l7_conn *c)
{
	if (c->cl.mem_wait)
		return;
	c->cl.mem_wait = true;
	c->cl.mw_next = NULL;
	if (lw->mw_tail)
		lw->mw_tail->cl.mw_next = c;
	else
		lw->mw_head = c;
	lw->mw_tail = c;
	RING_STAT_ADD(lw->w, enobufs, 1);
}

/* c leaves the FIFO of waiters (it is closing). */
static void mem_wait_leave(struct l7_worker *lw, struct l7_conn *c)
{
	struct l7_conn **pp = &lw->mw_head, *prev = NULL;

	if (!c->cl.mem_wait)
		return;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->cl.mw_next;
	}
	if (*pp)
		*pp = c->cl.mw_next;
	if (lw->mw_tail == c)
		lw->mw_tail = prev;
	c->cl.mem_wait = false;
	c->cl.mw_next = NULL;
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
	mem_wait_leave(lw, c);
	if (c->cl.pb_held) {
		c->cl.pb_held = false;
		l7_pb_recycle(lw, c->cl.pb);
	}
	bufpool_put(&lw->cpool, c->cl.mem);
	c->cl.mem = NULL;
	c->state = L7C_FREE;
	conn_slots_give(&lw->cs, (uint32_t)(c - lw->conns));
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
	bufpool_put(&lw->upool, up->buf);
	up->buf = NULL;
	up->state = L7U_FREE;
	conn_slots_give(&lw->us, (uint32_t)(up - lw->ups));
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
	up->mir = NULL;
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
	if (up->recv_drained)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data64(sqe, up_ud(lw, up, RING_OP_L7_URECV));
	up->recv_busy = true;
	up->inflight++;
}

static struct l7_up *up_alloc(struct l7_worker *lw)
{
	uint32_t i = conn_slots_take(&lw->us), gen;
	struct l7_up *up;
	char *b;

	if (i == CONN_SLOT_NONE)
		return NULL;
	b = bufpool_get(&lw->upool);
	if (!b) {
		conn_slots_give(&lw->us, i);
		return NULL;
	}
	up = &lw->ups[i];
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
	up->mir = NULL;
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
	else if (up->mir)
		l7m_on_up_recv(lw, up->mir, res);
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
		else if (up->mir)
			l7m_on_up_connected(lw, up->mir, res);
		else
			up_close(lw, up);
		return;
	}
	up->state = L7U_BUSY;
	if (up->owner)
		l7c_on_up_connected(lw, up->owner, 0);
	else if (up->mir)
		l7m_on_up_connected(lw, up->mir, 0);
	else
		up_close(lw, up);
}

/* ---- completions, timers ---- */

/*
 * A recv that returned bytes and left the socket empty (no IORING_CQE_F_SOCK_NONEMPTY):
 * the next bytes are a new request or a new response, which is not there yet, so the
 * next recv on it skips the attempt that would fail with -EAGAIN and waits for
 * readiness at once (IORING_RECVSEND_POLL_FIRST). Two recvs of every request were
 * such attempts: the client's next request and the backend's response.
 */
static bool recv_drained(int32_t res, uint32_t flags)
{
	return res > 0 && !(flags & IORING_CQE_F_SOCK_NONEMPTY);
}

void l7_complete(struct ring_worker *w, uint64_t ud, int32_t res, uint32_t flags)
{
	struct l7_worker *lw = l7w(w);
	uint32_t slot = ring_ud_slot(ud);
	enum ring_op op = ring_ud_op(ud);

	if (flags & IORING_CQE_F_BUFFER) {
		/* only a client recv selects buffers: if it is stale, give the buffer back */
		uint16_t bid = pb_taken(lw, flags);

		if (op != RING_OP_L7_CRECV || slot >= lw->n_conns ||
		    lw->conns[slot].gen != ring_ud_gen(ud) || lw->conns[slot].state == L7C_FREE) {
			l7_pb_recycle(lw, bid);
			return;
		}
		lw->conns[slot].cl.crecv_drained = recv_drained(res, flags);
		l7c_on_recv(lw, &lw->conns[slot], res, bid);
		return;
	}
	if (op == RING_OP_L7_URECV || op == RING_OP_L7_UCONN || op == RING_OP_L7_UCONN_TO) {
		struct l7_up *up;

		if (slot >= lw->n_ups || lw->ups[slot].gen != ring_ud_gen(ud) ||
		    lw->ups[slot].state == L7U_FREE)
			return;
		up = &lw->ups[slot];
		if (op == RING_OP_L7_URECV) {
			up->recv_drained = recv_drained(res, flags);
			up_on_recv(lw, up, res);
		} else if (op == RING_OP_L7_UCONN)
			up_on_connect(lw, up, res);
		else {
			up->inflight--;
			up_maybe_finish(lw, up);
		}
		return;
	}
	if (op == RING_OP_L7_MSEND) {
		if (slot < lw->sh->o.max_mirrors && lw->mirs[slot].used &&
		    lw->mirs[slot].gen == ring_ud_gen(ud))
			l7m_on_send(lw, &lw->mirs[slot], res);
		return;
	}
	if (slot >= lw->n_conns || lw->conns[slot].gen != ring_ud_gen(ud) ||
	    lw->conns[slot].state == L7C_FREE)
		return;
	switch (op) {
	case RING_OP_L7_CRECV:
		lw->conns[slot].cl.crecv_drained = recv_drained(res, flags);
		l7c_on_recv(lw, &lw->conns[slot], res, L7_PB_NONE);
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
		} else if (t->kind == L7_T_MIRROR) {
			l7m_on_timer(lw, (struct l7_mir *)((char *)t - offsetof(struct l7_mir, t)));
		} else {
			size_t off = t->kind == L7_T_ROUTE ? offsetof(struct l7_conn, t_route)
				     : t->kind == L7_T_TRY ? offsetof(struct l7_conn, t_try)
							   : offsetof(struct l7_conn, t_delay);
			struct l7_conn *c = (struct l7_conn *)((char *)t - off);

			if (c->state != L7C_FREE)
				l7c_on_timer(lw, c, t);
		}
	}
	if (lw->n_kicked)
		l7_cb_run_kicks(lw);
	if (lw->mw_head)
		l7c_mem_serve(lw);
	mem_trim(lw, now);
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

	for (uint32_t i = 0; i < lw->cs.used; i++)
		if (lw->conns[i].state != L7C_FREE && lw->conns[i].state != L7C_CLOSING)
			l7c_abort(lw, &lw->conns[i]);
	l7m_abort_all(lw);
	for (uint32_t i = 0; i < lw->us.used; i++)
		if (lw->ups[i].state == L7U_IDLE)
			up_close(lw, &lw->ups[i]);
}

void l7_drain(struct ring_worker *w, uint64_t now)
{
	struct l7_worker *lw = l7w(w);

	for (uint32_t i = 0; i < lw->cs.used; i++) {
		struct l7_conn *c = &lw->conns[i];

		if (c->state == L7C_FREE || c->state == L7C_CLOSING)
			continue;
		c->rq.req_keep = false; /* a request in flight: its response closes */
		if (c->state == L7C_HEAD && !c->cl.clen && !c->cl.csend_busy && !c->mt.in_req &&
		    now - c->cl.idle_ns >= (uint64_t)L7_DRAIN_IDLE_MS * 1000000ull)
			l7c_close(lw, c);
	}
}
