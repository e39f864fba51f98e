/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The worker: listeners, io_uring setup (in the worker thread itself, because
 * SINGLE_ISSUER binds the ring to the task that creates it), the provided buffer
 * pool, and the completion loop that hands connection events to l4.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <arpa/inet.h>

#include "common/util.h"
#include "ringmeshd/ring.h"
#include "ringmeshd/accept.h"
#include "ringmeshd/l4.h"
#include "ringmeshd/l7.h"

#define RING_DEF_MAX_CONNS 65536
#define RING_DEF_BUF_COUNT 1024
#define RING_DEF_BUF_SIZE 16384
#define RING_DEF_QD 512
#define RING_DEF_HIGH_WATER 4
#define RING_BGID 0
#define RING_STOP_GRACE_NS (2ull * 1000000000ull) /* resets in flight get this long */
#define RING_ACCEPT_RETRY_MS 100

static int fill_defaults(struct ring_config *c, char *err, size_t errlen)
{
	if (!c->max_conns)
		c->max_conns = RING_DEF_MAX_CONNS;
	if (!c->buf_count)
		c->buf_count = RING_DEF_BUF_COUNT;
	if (!c->buf_size)
		c->buf_size = RING_DEF_BUF_SIZE;
	if (!c->queue_depth)
		c->queue_depth = RING_DEF_QD;
	if (!c->connect_timeout_ms)
		c->connect_timeout_ms = L7_DEF_CONNECT_MS;
	if (!c->high_water)
		c->high_water = RING_DEF_HIGH_WATER;
	if (c->n_listen < 1 || c->n_listen > RING_MAX_LISTEN)
		return errf(err, errlen, -EINVAL, "worker needs 1..%d listeners, got %u",
			    RING_MAX_LISTEN, c->n_listen);
	if (!c->hooks.orig_lookup)
		return errf(err, errlen, -EINVAL, "worker needs an original-destination lookup");
	if (c->sockmap && !c->hooks.sock_add)
		return errf(err, errlen, -EINVAL, "sockmap on but no sock_add hook");
	if (c->buf_count > 32768 || (c->buf_count & (c->buf_count - 1)))
		return errf(err, errlen, -EINVAL, "buffer count %u is not a power of two <= 32768",
			    c->buf_count);
	if (c->max_conns > 0xffffff)
		return errf(err, errlen, -EINVAL, "max_conns %u exceeds the 24-bit slot field",
			    c->max_conns);
	/* Reads pause above high_water; the pool must hold more than one connection's worth. */
	if (c->buf_count < 4 * (c->high_water + 1))
		return errf(err, errlen, -EINVAL,
			    "buffer pool of %u is too small for high water %u", c->buf_count,
			    c->high_water);
	return 0;
}

static int listen_socket(const struct ring_listen *l, char *err, size_t errlen)
{
	char a[INET_ADDRSTRLEN];
	int one = 1, fd, r;

	inet_ntop(AF_INET, &l->addr.sin_addr, a, sizeof(a));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errf(err, errlen, -errno, "socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    (l->freebind && setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(one)))) {
		r = -errno;
		close(fd);
		return errf(err, errlen, r, "listener %s: setsockopt: %s", a, strerror(-r));
	}
	if (bind(fd, (const struct sockaddr *)&l->addr, sizeof(l->addr)) || listen(fd, SOMAXCONN)) {
		r = -errno;
		close(fd);
		return errf(err, errlen, r, "listen on %s:%u: %s", a, ntohs(l->addr.sin_port),
			    strerror(-r));
	}
	return fd;
}

int ring_worker_create(struct ring_worker **out, const struct ring_config *cfg, char *err,
		       size_t errlen)
{
	struct ring_worker *w;
	long page = sysconf(_SC_PAGESIZE);
	int r;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w) {
		for (unsigned int i = 0; i < cfg->n_listen && i < RING_MAX_LISTEN; i++)
			if (cfg->listen[i].inherited)
				close(cfg->listen[i].fd);
		return errf(err, errlen, -ENOMEM, "out of memory");
	}
	w->cfg = *cfg;
	for (unsigned int i = 0; i < RING_MAX_LISTEN; i++)
		w->lfd[i] = -1;
	w->wake_fd = -1;
	pthread_mutex_init(&w->init_lock, NULL);
	pthread_cond_init(&w->init_cond, NULL);
	/* Inherited sockets are the worker's from here on, whatever fails next. */
	for (unsigned int i = 0; i < w->cfg.n_listen && i < RING_MAX_LISTEN; i++)
		if (w->cfg.listen[i].inherited)
			w->lfd[i] = w->cfg.listen[i].fd;
	r = fill_defaults(&w->cfg, err, errlen);
	if (r)
		goto fail;

	for (unsigned int i = 0; i < w->cfg.n_listen; i++) {
		if (w->cfg.listen[i].inherited)
			continue;
		r = listen_socket(&w->cfg.listen[i], err, errlen);
		if (r < 0)
			goto fail;
		w->lfd[i] = r;
	}
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		r = errf(err, errlen, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}

	/* Buffer ring and buffers are page-aligned mappings: the kernel maps the ring. */
	w->br_bytes = ((size_t)w->cfg.buf_count * sizeof(struct io_uring_buf) + (size_t)page - 1) &
		      ~((size_t)page - 1);
	w->bufs_bytes = (size_t)w->cfg.buf_count * w->cfg.buf_size;
	w->br = mmap(NULL, w->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w->bufs =
	    mmap(NULL, w->bufs_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w->priv_bytes = (size_t)w->cfg.max_conns * 2 * w->cfg.buf_size;
	w->priv = mmap(NULL, w->priv_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	w->meta = calloc((size_t)w->cfg.buf_count + 2 * (size_t)w->cfg.max_conns, sizeof(*w->meta));
	if (w->br == MAP_FAILED || w->bufs == MAP_FAILED || w->priv == MAP_FAILED || !w->meta) {
		r = errf(err, errlen, -ENOMEM, "cannot allocate %zu bytes of receive buffers",
			 w->bufs_bytes);
		goto fail;
	}
	w->br_mask = (unsigned int)io_uring_buf_ring_mask(w->cfg.buf_count);
	w->connect_ts.tv_sec = w->cfg.connect_timeout_ms / 1000;
	w->connect_ts.tv_nsec = (long long)(w->cfg.connect_timeout_ms % 1000) * 1000000;
	w->accept_retry_ts.tv_nsec = RING_ACCEPT_RETRY_MS * 1000000LL;
	r = l4_init(w);
	if (r) {
		errf(err, errlen, r, "cannot allocate %u connection slots", w->cfg.max_conns);
		goto fail;
	}
	if ((r = wl_cache_init(&w->wl, 128, 0, w->cfg.hooks.wl_fetch, w->cfg.hooks.ctx))) {
		errf(err, errlen, r, "cannot allocate the pod identity cache");
		goto fail;
	}
	if (w->cfg.l7 && (r = l7_worker_init(w))) {
		errf(err, errlen, r, "cannot allocate the L7 state of %u connections",
		     w->cfg.max_conns);
		goto fail;
	}
	*out = w;
	return 0;
fail:
	ring_worker_destroy(w);
	return r;
}

uint16_t ring_worker_port(const struct ring_worker *w, unsigned int listener)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (listener >= w->cfg.n_listen || w->lfd[listener] < 0 ||
	    getsockname(w->lfd[listener], (struct sockaddr *)&sin, &len))
		return 0;
	return ntohs(sin.sin_port);
}

struct io_uring_sqe *ring_get_sqe(struct ring_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

void ring_buf_recycle(struct ring_worker *w, uint32_t bid)
{
	if (bid >= w->cfg.buf_count) {
		l4_priv_released(w, bid);
		return;
	}
	io_uring_buf_ring_add(w->br, ring_buf_data(w, bid), w->cfg.buf_size, (unsigned short)bid,
			      (int)w->br_mask, (int)w->br_pending++);
	w->bufs_free++;
}

static void buf_publish(struct ring_worker *w)
{
	if (w->br_pending) {
		io_uring_buf_ring_advance(w->br, (int)w->br_pending);
		w->br_pending = 0;
	}
}

int ring_prep_recv(struct ring_worker *w, int fd, uint64_t ud, uint32_t total_cap)
{
	struct io_uring_sqe *sqe = ring_get_sqe(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RING_BGID;
	/* sqe->optlen in newer headers; liburing 2.3 names the same union file_index. */
	if (w->mshot_cap)
		sqe->file_index = total_cap;
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

static int arm_accept(struct ring_worker *w, unsigned int i)
{
	struct io_uring_sqe *sqe = ring_get_sqe(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_multishot_accept(sqe, w->lfd[i], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_ACCEPT, 0, i, 0));
	w->accept_armed[i] = true;
	return 0;
}

static int arm_wake(struct ring_worker *w)
{
	struct io_uring_sqe *sqe = ring_get_sqe(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof(w->wake_val), 0);
	io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_WAKE, 0, 0, 0));
	return 0;
}

/*
 * Accept balancing (ring.h, ring_group). A worker's load is the connections it holds
 * plus those handed to it and not yet adopted. Taking `inflight` and then looking at
 * `accepting` again (both sequentially consistent) pairs with the target's clearing
 * `accepting` and then waiting for `inflight` to be zero before it ends: either the
 * source sees the target closed and keeps the connection, or the target waits for it.
 */
static struct ring_group_slot *group_me(const struct ring_worker *w)
{
	return w->cfg.group ? &w->cfg.group->s[w->cfg.id] : NULL;
}

/* Open (or close) this worker to connections handed over by the others. */
static void group_accepting(struct ring_worker *w, bool on)
{
	struct ring_group_slot *s = group_me(w);

	if (!s)
		return;
	if (on) {
		s->ring_fd = w->ring.ring_fd;
		s->active = &w->stats.active;
	}
	__atomic_store_n(&s->accepting, on, __ATOMIC_SEQ_CST);
}

static uint32_t group_inflight(const struct ring_worker *w)
{
	const struct ring_group_slot *s = group_me(w);

	return s ? __atomic_load_n(&s->inflight, __ATOMIC_SEQ_CST) : 0;
}

/* The accepting worker holding fewest if it holds fewer than we do (its inflight
 * then taken), else our own id. */
static unsigned int group_pick(const struct ring_worker *w)
{
	struct ring_group *g = w->cfg.group;
	unsigned int me = w->cfg.id, best = me;
	struct ring_group_slot *s;
	uint64_t low;

	if (!g || g->n < 2)
		return me;
	low = w->stats.active + __atomic_load_n(&g->s[me].inflight, __ATOMIC_RELAXED);
	for (unsigned int j = 0; j < g->n && low; j++) {
		uint64_t l;

		s = &g->s[j];
		if (j == me || !__atomic_load_n(&s->accepting, __ATOMIC_ACQUIRE))
			continue;
		l = __atomic_load_n(s->active, __ATOMIC_RELAXED) +
		    __atomic_load_n(&s->inflight, __ATOMIC_RELAXED);
		if (l < low) {
			low = l;
			best = j;
		}
	}
	if (best == me)
		return me;
	s = &g->s[best];
	__atomic_add_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&s->accepting, __ATOMIC_SEQ_CST)) {
		__atomic_sub_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
		return me;
	}
	return best;
}

/* Hand an accepted socket to a worker holding fewer: true if it went. */
static bool hand_off(struct ring_worker *w, int fd)
{
	struct io_uring_sqe *sqe;
	unsigned int to;

	if ((unsigned int)fd > 0xffffff || (to = group_pick(w)) == w->cfg.id)
		return false;
	if (!(sqe = ring_get_sqe(w))) {
		__atomic_sub_fetch(&w->cfg.group->s[to].inflight, 1, __ATOMIC_SEQ_CST);
		return false;
	}
	io_uring_prep_msg_ring(sqe, w->cfg.group->s[to].ring_fd, (unsigned int)fd,
			       ring_ud(RING_OP_ADOPT, 0, 0, w->cfg.id), 0);
	io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_HANDOFF, 0, (uint32_t)fd, to));
	RING_STAT_ADD(w, handed_off, 1);
	return true;
}

/* Serve a connection accepted here or handed here. */
static void take_conn(struct ring_worker *w, int fd)
{
	/* Accepted before a drain's cancel took effect: served like any other. */
	if (w->stopping)
		close(fd);
	else
		accept_conn(w, fd);
}

/* The source's completion of a hand-off: on failure (the target's ring is gone, or
 * its completion queue overflowed) the connection is served here after all. */
static void on_handoff(struct ring_worker *w, uint64_t ud, int32_t res)
{
	if (res >= 0)
		return;
	__atomic_sub_fetch(&w->cfg.group->s[ring_ud_gen(ud)].inflight, 1, __ATOMIC_SEQ_CST);
	RING_STAT_ADD(w, handed_off, -1);
	take_conn(w, (int)ring_ud_slot(ud));
}

static void on_adopt(struct ring_worker *w, int32_t fd)
{
	RING_STAT_ADD(w, adopted, 1);
	take_conn(w, fd);
	/* after the connection counts in active: our load never looks lower than it is */
	__atomic_sub_fetch(&group_me(w)->inflight, 1, __ATOMIC_SEQ_CST);
}

static void on_accept(struct ring_worker *w, unsigned int i, int32_t res, uint32_t flags)
{
	if (res >= 0) {
		RING_STAT_ADD(w, accepted, 1);
		if (w->stopping || !hand_off(w, res))
			take_conn(w, res);
	} else if (res != -ECANCELED) {
		RING_STAT_ADD(w, accept_errors, 1);
	}
	if (flags & IORING_CQE_F_MORE)
		return;
	w->accept_armed[i] = false;
	if (w->accept_off)
		return;
	/* Out of descriptors or memory: re-arming at once would spin; wait a little. */
	if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
		struct io_uring_sqe *sqe = ring_get_sqe(w);

		if (sqe) {
			io_uring_prep_timeout(sqe, &w->accept_retry_ts, 0, 0);
			io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_ACCEPT_RETRY, 0, i, 0));
		}
		return;
	}
	arm_accept(w, i);
}

/* Arm every listener's accept, once (ring_setup, or the release of a hold). */
static int accept_start(struct ring_worker *w)
{
	if (w->accept_started || w->accept_off)
		return 0;
	w->accept_started = true;
	for (unsigned int i = 0; i < w->cfg.n_listen; i++) {
		int r = arm_accept(w, i);

		if (r)
			return r;
	}
	group_accepting(w, true);
	return 0;
}

static void accept_stop(struct ring_worker *w)
{
	if (w->accept_off)
		return;
	w->accept_off = true;
	group_accepting(w, false);
	for (unsigned int i = 0; i < w->cfg.n_listen; i++) {
		struct io_uring_sqe *sqe;

		if (!w->accept_armed[i] || !(sqe = ring_get_sqe(w)))
			continue;
		io_uring_prep_cancel_fd(sqe, w->lfd[i], IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, ring_ud(RING_OP_CANCEL, 0, 0, 0));
	}
}

static void start_stop(struct ring_worker *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	w->draining = true;
	accept_stop(w);
	l4_abort_all(w);
	if (w->l7)
		l7_abort_all(w);
}

/* Idle HTTP connections are looked at this often during a drain. */
#define RING_DRAIN_SWEEP_NS 50000000ull

static void drain_sweep(struct ring_worker *w, uint64_t now)
{
	if (!w->draining || w->stopping || now < w->drain_sweep_ns)
		return;
	w->drain_sweep_ns = now + RING_DRAIN_SWEEP_NS;
	if (w->l7)
		l7_drain(w, now);
}

static int arm_wake(struct ring_worker *w);

/* The owner asked for a mode: apply it, and keep listening for the next unless stopped. */
static void on_wake(struct ring_worker *w)
{
	enum ring_mode m = __atomic_load_n(&w->req_mode, __ATOMIC_ACQUIRE);

	if (m >= RING_STOP) {
		start_stop(w);
		return;
	}
	if (m >= RING_DRAIN_ACCEPT && !w->draining) {
		w->draining = true;
		drain_sweep(w, mono_ns());
	}
	if (m >= RING_DRAIN)
		accept_stop(w);
	if (m == RING_RUN && __atomic_load_n(&w->accept_go, __ATOMIC_ACQUIRE) && accept_start(w))
		RING_STAT_ADD(w, accept_errors, 1); /* no SQE: the next wake retries */
	arm_wake(w);
}

static void dispatch(struct ring_worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);

	switch (ring_ud_op(ud)) {
	case RING_OP_ACCEPT:
		on_accept(w, ring_ud_slot(ud), cqe->res, cqe->flags);
		break;
	case RING_OP_ACCEPT_RETRY:
		if (!w->accept_off)
			arm_accept(w, ring_ud_slot(ud));
		break;
	case RING_OP_WAKE:
		on_wake(w);
		break;
	case RING_OP_CANCEL:
		break;
	case RING_OP_HANDOFF:
		on_handoff(w, ud, cqe->res);
		break;
	case RING_OP_ADOPT:
		if (group_me(w)) /* only a group's workers hand sockets over */
			on_adopt(w, cqe->res);
		break;
	case RING_OP_RECV:
	case RING_OP_RECV1:
	case RING_OP_SEND:
	case RING_OP_CONNECT:
	case RING_OP_CONNECT_TIMEOUT:
		l4_complete(w, ud, cqe->res, cqe->flags);
		break;
	case RING_OP_L7_CRECV:
	case RING_OP_L7_CSEND:
	case RING_OP_L7_USEND:
	case RING_OP_L7_URECV:
	case RING_OP_L7_UCONN:
	case RING_OP_L7_UCONN_TO:
	case RING_OP_L7_MSEND:
		if (w->l7) {
			l7_complete(w, ud, cqe->res, cqe->flags);
			break;
		}
		/* fall through */
	default:
		/* Unknown op: never submitted by us; still, never leak a buffer. */
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			w->bufs_free--;
			ring_buf_recycle(w, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		}
		break;
	}
}

static int ring_setup(struct ring_worker *w, char *err, size_t errlen)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	int r;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = w->cfg.queue_depth * 4;
	r = io_uring_queue_init_params(w->cfg.queue_depth, &w->ring, &p);
	if (r == -EINVAL) {
		/* Older kernel: no SINGLE_ISSUER/DEFER_TASKRUN; same semantics, more wakeups. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = w->cfg.queue_depth * 4;
		r = io_uring_queue_init_params(w->cfg.queue_depth, &w->ring, &p);
	}
	if (r)
		return errf(err, errlen, r, "io_uring setup: %s", strerror(-r));
	w->ring_ok = true;
	w->ring_flags = p.flags;
	/* every io_uring_enter then names the ring by its registered index: no fd lookup
	 * per call (this worker is the ring's only user). Older kernels: the plain fd. */
	(void)io_uring_register_ring_fd(&w->ring);
	w->mshot_cap = true;

	/* liburing 2.3 has no io_uring_setup_buf_ring: register our own mapping. */
	io_uring_buf_ring_init(w->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)w->br;
	reg.ring_entries = w->cfg.buf_count;
	reg.bgid = RING_BGID;
	r = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (r)
		return errf(err, errlen, r, "io_uring buffer ring: %s", strerror(-r));
	w->br_registered = true;
	for (uint32_t i = 0; i < w->cfg.buf_count; i++)
		ring_buf_recycle(w, i);
	buf_publish(w);
	if (w->l7 && (r = l7_ring_setup(w)))
		return errf(err, errlen, r, "io_uring buffer ring of L7 reads: %s", strerror(-r));

	if (!w->cfg.hold_accept && (r = accept_start(w)))
		return errf(err, errlen, r, "arming accept: %s", strerror(-r));
	r = arm_wake(w);
	if (r)
		return errf(err, errlen, r, "arming the stop event: %s", strerror(-r));
	r = io_uring_submit(&w->ring);
	if (r < 0)
		return errf(err, errlen, r, "io_uring submit: %s", strerror(-r));
	return 0;
}

static void init_report(struct ring_worker *w, int rc)
{
	pthread_mutex_lock(&w->init_lock);
	w->init_rc = rc;
	w->init_done = true;
	pthread_cond_signal(&w->init_cond);
	pthread_mutex_unlock(&w->init_lock);
}

/* Longest wait without a timer: bounds how late a worker passes a quiescent point
 * (configuration reclamation) when it is idle. */
#define RING_MAX_WAIT_NS 100000000ull

/* A drain is over: no connection left, and no accept that could still complete
 * (an accept's last completion comes with its cancel; one in the queue unread
 * would be a connection lost). */
static bool drained(const struct ring_worker *w)
{
	if (!w->accept_off || w->stats.active || group_inflight(w))
		return false;
	for (unsigned int i = 0; i < w->cfg.n_listen; i++)
		if (w->accept_armed[i])
			return false;
	return true;
}

/* Stopping: once nothing is open or the grace is over. Draining: once drained. */
static bool loop_done(struct ring_worker *w, uint64_t now, uint64_t *deadline)
{
	if (!w->stopping)
		return drained(w);
	if (!*deadline)
		*deadline = now + RING_STOP_GRACE_NS;
	return (!w->stats.active && !group_inflight(w)) || now > *deadline;
}

/* Submit, then wait for a completion until mono time `until` at the latest. */
static int submit_wait_until(struct ring_worker *w, uint64_t now, uint64_t until)
{
	uint64_t wait = until > now ? until - now : 0;
	struct __kernel_timespec ts = {.tv_sec = (long long)(wait / 1000000000ull),
				       .tv_nsec = (long long)(wait % 1000000000ull)};
	struct io_uring_cqe *cqe;

	return io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
}

/*
 * The first completions of a pass submit what they queued at once instead of at the
 * pass's end. Submitting only at the end kept the 8 requests of an 8-connection load
 * in a convoy: the backend got the pass's first request only after the proxy had
 * handled all of them, the proxy then waited for all the answers, and one of the two
 * CPUs sat idle (1.1 s of 6 s in a 3 s wrk run; HAProxy, which sends as it goes,
 * 0.5-0.8 s). Eager for the first 8 of a pass: idle 0.87 s, req/s +5% at 8
 * connections; a pass of hundreds (256 connections) takes 8 syscalls more, and
 * req/s there did not drop (8 interleaved rounds each). Only while more completions
 * wait: the last one's sends go out with the wait at the loop's top, as before, so a
 * lightly loaded worker (one completion a pass) makes no extra syscall.
 */
#define RING_EAGER_SUBMITS 8

static int run_loop(struct ring_worker *w)
{
	uint64_t deadline = 0, next = UINT64_MAX;
	int rc = 0;

	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;
		uint64_t now;
		int r;

		if (w->l7) {
			now = mono_ns();
			if (loop_done(w, now, &deadline))
				break;
			if (next > now + RING_MAX_WAIT_NS)
				next = now + RING_MAX_WAIT_NS;
			r = submit_wait_until(w, now, next);
		} else if (w->stopping || w->draining) {
			now = mono_ns();
			if (loop_done(w, now, &deadline))
				break;
			r = submit_wait_until(w, now, now + 50000000ull);
		} else if ((next = l4_trim_next(w)) != UINT64_MAX) {
			/* pages to give back: the trim runs on time even if no event comes */
			r = submit_wait_until(w, mono_ns(), next);
		} else {
			r = io_uring_submit_and_wait(&w->ring, 1);
		}
		if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY && r != -EAGAIN) {
			rc = r;
			break;
		}
		if (w->l7)
			l7_pass_begin(w);
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			dispatch(w, cqe);
			n++;
			if (n <= RING_EAGER_SUBMITS && io_uring_sq_ready(&w->ring) &&
			    io_uring_cq_ready(&w->ring) > n)
				io_uring_submit(&w->ring);
		}
		io_uring_cq_advance(&w->ring, n);
		buf_publish(w);
		l4_feed_starved(w);
		now = mono_ns(); /* one clock read for the pass's housekeeping */
		l4_trim(w, now);
		if (w->l7)
			next = l7_tick(w, now);
		if (w->draining)
			drain_sweep(w, now);
	}
	return rc;
}

static void *worker_main(void *arg)
{
	struct ring_worker *w = arg;
	char name[16];
	int rc;

	snprintf(name, sizeof(name), "ringmeshd-w%u", w->cfg.id);
	pthread_setname_np(pthread_self(), name);
	rc = ring_setup(w, w->init_err, sizeof(w->init_err));
	init_report(w, rc);
	if (!rc)
		rc = run_loop(w);
	group_accepting(w, false); /* a fatal error: hand nothing more to a ring going away */
	if (w->ring_ok) {
		/* Cancels what is still pending (the stop grace ran out), then we close fds. */
		io_uring_queue_exit(&w->ring);
		w->ring_ok = false;
	}
	l4_fini(w);
	l7_worker_fini(w);
	__atomic_store_n(&w->exited, 1, __ATOMIC_RELEASE);
	return (void *)(intptr_t)rc;
}

int ring_worker_start(struct ring_worker *w, char *err, size_t errlen)
{
	int r;

	r = pthread_create(&w->thread, NULL, worker_main, w);
	if (r)
		return errf(err, errlen, -r, "worker %u: pthread_create: %s", w->cfg.id,
			    strerror(r));
	w->thread_started = true;
	pthread_mutex_lock(&w->init_lock);
	while (!w->init_done)
		pthread_cond_wait(&w->init_cond, &w->init_lock);
	r = w->init_rc;
	pthread_mutex_unlock(&w->init_lock);
	if (r) {
		errf(err, errlen, r, "worker %u: %s", w->cfg.id, w->init_err);
		ring_worker_join(w);
	}
	return r;
}

/* Wake the worker's loop to read what the owner asked (on_wake). */
static void wake(struct ring_worker *w)
{
	uint64_t one = 1;

	if (w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof(one)) < 0) {
		/* An eventfd write fails only at a counter overflow: a wake is pending anyway. */
	}
}

void ring_worker_set_mode(struct ring_worker *w, enum ring_mode m)
{
	if (!w || m <= __atomic_load_n(&w->req_mode, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&w->req_mode, m, __ATOMIC_RELEASE);
	wake(w);
}

void ring_worker_accept(struct ring_worker *w)
{
	if (!w)
		return;
	__atomic_store_n(&w->accept_go, true, __ATOMIC_RELEASE);
	wake(w);
}

void ring_worker_stop(struct ring_worker *w)
{
	ring_worker_set_mode(w, RING_STOP);
}

int ring_worker_listen_fd(const struct ring_worker *w, unsigned int i)
{
	return i < w->cfg.n_listen ? w->lfd[i] : -1;
}

uint64_t ring_worker_active(const struct ring_worker *w)
{
	return __atomic_load_n(&w->stats.active, __ATOMIC_RELAXED);
}

int ring_worker_join(struct ring_worker *w)
{
	void *ret = NULL;

	if (!w->thread_started)
		return 0;
	pthread_join(w->thread, &ret);
	w->thread_started = false;
	return (int)(intptr_t)ret;
}

void ring_worker_destroy(struct ring_worker *w)
{
	if (!w)
		return;
	if (w->thread_started) {
		ring_worker_stop(w);
		ring_worker_join(w);
	}
	l4_fini(w);
	l7_worker_fini(w);
	wl_cache_fini(&w->wl);
	for (unsigned int i = 0; i < RING_MAX_LISTEN; i++)
		if (w->lfd[i] >= 0)
			close(w->lfd[i]);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	if (w->br && w->br != MAP_FAILED)
		munmap(w->br, w->br_bytes);
	if (w->bufs && w->bufs != MAP_FAILED)
		munmap(w->bufs, w->bufs_bytes);
	if (w->priv && w->priv != MAP_FAILED)
		munmap(w->priv, w->priv_bytes);
	free(w->meta);
	pthread_mutex_destroy(&w->init_lock);
	pthread_cond_destroy(&w->init_cond);
	free(w);
}

bool ring_worker_exited(const struct ring_worker *w)
{
	return __atomic_load_n(&w->exited, __ATOMIC_ACQUIRE);
}

void ring_worker_stats(const struct ring_worker *w, struct ring_stats *out)
{
	const uint64_t *src = (const uint64_t *)&w->stats;
	uint64_t *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void ring_stats_add(struct ring_stats *sum, const struct ring_stats *s)
{
	uint64_t *d = (uint64_t *)sum;
	const uint64_t *a = (const uint64_t *)s;

	uint64_t peak = sum->queue_peak > s->queue_peak ? sum->queue_peak : s->queue_peak;

	for (size_t i = 0; i < sizeof(*sum) / sizeof(uint64_t); i++)
		d[i] += a[i];
	sum->queue_peak = peak; /* a peak, not a count */
}
