/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ring: one ringmeshd worker thread. It owns an io_uring, its listening sockets
 * (SO_REUSEPORT, so the kernel spreads connections over workers; a worker group
 * evens out what the kernel's hash does not, ring_group below), a pool of
 * provided receive buffers, the user_data encoding, the completion loop and the
 * per-worker counters. What happens on a connection is admission's (accept.h),
 * then l4's or l7's business; ring only accepts, dispatches completions and lends
 * buffers.
 *
 * Threading: ring_worker_create/start/stop/join/destroy are called from the
 * owning (main) thread; ring_worker_stats may be called from any thread while
 * the worker runs. Everything else is the worker thread's alone.
 */
#ifndef RM_RING_H
#define RM_RING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <liburing.h>

#include "ringmesh/abi.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/wl.h"

/* Two addresses, each with up to 8 sockets: a successor with fewer workers than its
 * predecessor accepts on all the sockets it was handed (handover.h). */
#define RING_MAX_LISTEN 16

/* Callbacks into the daemon (the kernel side). ctx is passed back untouched. */
struct ring_hooks {
	void *ctx;
	/* Original destination of an accepted connection: 0 and *out filled, -ENOENT when
	 * the connection was not intercepted, or -errno. Required. */
	int (*orig_lookup)(void *ctx, const struct sockaddr *local, const struct sockaddr *peer,
			   struct rm_orig *out);
	/* Offer the accepted socket to the sk_msg shortcut; called before any byte is sent
	 * to the client. Only with ring_config.sockmap; a failure is counted, not fatal. */
	int (*sock_add)(void *ctx, int fd, const struct sockaddr *local,
			const struct sockaddr *peer);
	/* A connection whose lookup succeeded is closed (forget its rm_orig entry). May be NULL. */
	void (*on_close)(void *ctx, const struct sockaddr *local, const struct sockaddr *peer);
	/* The rm_workload record of a pod cgroup id: 0, -ENOENT, -errno. May be NULL
	 * (every caller unknown). Read through the worker's cache (wl.h). */
	int (*wl_fetch)(void *ctx, uint64_t id, struct rm_workload *out);
};

struct ring_listen {
	struct sockaddr_in addr; /* port 0: ephemeral (tests; read it with ring_worker_port) */
	bool freebind;		 /* IP_FREEBIND: bind before any interface carries the address */
	int fd;			 /* >= 0 with inherited: a listening socket handed over, owned
				  * by the worker from create on (addr is then not bound) */
	bool inherited;
};

/*
 * What the owner asks of a worker (ring_worker_set_mode); modes only go forward.
 * A drain closes each HTTP connection after its current response (Connection: close)
 * and idle keep-alive ones with a FIN; L4 connections run until they end.
 */
enum ring_mode {
	RING_RUN = 0,
	RING_DRAIN_ACCEPT, /* drain, still accepting: a stop with no successor, whose queues
			    * still get the connects that raced with the heartbeat's end */
	RING_DRAIN,	   /* drain, not accepting (a successor serves the same sockets);
			    * the thread returns once its last connection is closed */
	RING_STOP,	   /* reset what is open and return (a drain's deadline) */
};

/*
 * Accept balancing: the workers of one daemon share a ring_group, and a connection
 * that a worker accepts while another accepting worker holds fewer is served by that
 * one instead (IORING_OP_MSG_RING carries the descriptor to its ring), so that every
 * worker holds as many connections as the others, give or take one: Envoy's
 * exact_balance, HAProxy's per-thread accept queues. SO_REUSEPORT alone hashes the
 * 4-tuple, so 8 connections on 2 workers split 4/4 only 27% of the time and 6/2 or
 * worse 29%, and a worker with 6 long-lived connections stays the busier one.
 */
#define RING_GROUP_MAX 64
struct ring_group_slot {
	_Alignas(64) uint32_t inflight; /* atomic: handed to this worker, not yet adopted */
	bool accepting;			/* atomic: its accepts are armed; may be handed more */
	int ring_fd;			/* its io_uring's descriptor, while accepting */
	const uint64_t *active;		/* its stats.active */
};
struct ring_group {
	unsigned int n; /* workers, ids 0..n-1, set before the first starts */
	struct ring_group_slot s[RING_GROUP_MAX];
};

/* Zero means "default" for every number. */
struct ring_config {
	struct ring_listen listen[RING_MAX_LISTEN];
	unsigned int n_listen;
	unsigned int max_conns;	  /* connection slots (default 65536, used on demand) */
	unsigned int buf_count;	  /* provided buffers, power of two <= 32768 (default 1024) */
	unsigned int buf_size;	  /* bytes per buffer (default 16384) */
	unsigned int queue_depth; /* SQ entries (default 512); CQ gets 4x */
	unsigned int connect_timeout_ms; /* upstream connect (default 5000) */
	/* Buffers queued towards one side before its opposite reader pauses (default 4):
	 * the per-connection memory bound is about 2 * (high_water + 1) * buf_size. */
	unsigned int high_water;
	bool sockmap; /* call hooks.sock_add on accept */
	/* No accepts until ring_worker_accept(): a successor serves nothing before it has
	 * told its predecessor TAKEN, so that one hung or killed before that takes no
	 * connection from the listeners the predecessor still serves. */
	bool hold_accept;
	struct ring_hooks hooks;
	struct l7_shared *l7;	  /* HTTP proxying (l7.h); NULL: every connection is L4 */
	unsigned int id;	  /* worker number, for thread names and messages */
	struct ring_group *group; /* accept balancing with the others (id < n); NULL: the
				   * kernel's SO_REUSEPORT hash alone */
};

/* Per-worker counters; written by the worker only, read with relaxed atomics. */
struct ring_stats {
	uint64_t accepted;		  /* connections accepted */
	uint64_t refused_no_orig;	  /* closed: no original destination (not an open relay) */
	uint64_t refused_loop;		  /* closed: original destination is the proxy itself */
	uint64_t refused_full;		  /* closed: no free connection slot */
	uint64_t upstream_connect_failed; /* connect refused, unreachable or timed out */
	uint64_t bytes_c2u;		  /* bytes delivered client -> upstream */
	uint64_t bytes_u2c;		  /* bytes delivered upstream -> client */
	uint64_t active;		  /* connections open now */
	uint64_t closed;		  /* connections finished, any way */
	uint64_t resets;	  /* connections ended by a reset (either side) or an error */
	uint64_t sock_add_failed; /* sk_msg shortcut refused a socket */
	uint64_t enobufs;	  /* a reader waited for the buffer pool */
	uint64_t paused;	  /* a reader paused because the other side was slow */
	uint64_t queue_peak;	  /* most buffers ever queued towards one side (memory bound) */
	uint64_t accept_errors;	  /* accept completions with an error */
	uint64_t handed_off;	  /* accepted here, served by a worker holding fewer */
	uint64_t adopted;	  /* handed here by another worker */
};

/* user_data: op (7 bits) | side (1) | slot (24) | generation (32). For listener
 * ops the slot is the listener index. */
enum ring_op {
	RING_OP_NONE = 0,
	RING_OP_ACCEPT,		 /* multishot accept on a listener */
	RING_OP_ACCEPT_RETRY,	 /* timer before re-arming accept after EMFILE and friends */
	RING_OP_WAKE,		 /* read on the stop eventfd */
	RING_OP_CANCEL,		 /* async cancel; result ignored */
	RING_OP_RECV,		 /* multishot recv on one side of a connection */
	RING_OP_RECV1,		 /* single recv into the side's private buffer (pool ran dry) */
	RING_OP_SEND,		 /* send of the head buffer queued towards one side */
	RING_OP_CONNECT,	 /* upstream connect */
	RING_OP_CONNECT_TIMEOUT, /* linked timeout of RING_OP_CONNECT */
	/* L7 (l7.h): slot = L7 client connection for C*, USEND; upstream object for U* */
	RING_OP_L7_CRECV,    /* recv on an L7 client socket */
	RING_OP_L7_CSEND,    /* send to an L7 client socket */
	RING_OP_L7_USEND,    /* send of a request to its upstream socket */
	RING_OP_L7_URECV,    /* recv on an upstream socket (busy or idle in the pool) */
	RING_OP_L7_UCONN,    /* upstream connect */
	RING_OP_L7_UCONN_TO, /* linked timeout of RING_OP_L7_UCONN */
	RING_OP_L7_MSEND,    /* send of a shadow request (slot = its mirror slot) */
	RING_OP_HANDOFF,     /* MSG_RING of an accepted socket to a worker holding fewer
			      * (slot = the descriptor, gen = that worker's id) */
	RING_OP_ADOPT,	     /* its arrival there (res = the descriptor) */
	RING_OP_MAX,
};

static inline uint64_t ring_ud(enum ring_op op, unsigned int side, uint32_t slot, uint32_t gen)
{
	return (uint64_t)op | (uint64_t)(side & 1) << 7 | (uint64_t)(slot & 0xffffff) << 8 |
	       (uint64_t)gen << 32;
}

static inline enum ring_op ring_ud_op(uint64_t ud)
{
	return (enum ring_op)(ud & 0x7f);
}

static inline unsigned int ring_ud_side(uint64_t ud)
{
	return (ud >> 7) & 1;
}

static inline uint32_t ring_ud_slot(uint64_t ud)
{
	return (ud >> 8) & 0xffffff;
}

static inline uint32_t ring_ud_gen(uint64_t ud)
{
	return (uint32_t)(ud >> 32);
}

/* Per-buffer bookkeeping: a buffer is either in the kernel's ring or queued on
 * exactly one connection side, linked through next. */
struct ring_buf_meta {
	uint32_t off;  /* bytes of it already sent */
	uint32_t len;  /* bytes received into it */
	uint32_t next; /* next queued buffer, or RING_BUF_NONE */
};
#define RING_BUF_NONE UINT32_MAX

/* A starved reader (its recv ended with -ENOBUFS) waiting for buffers. */
struct ring_starved {
	uint32_t slot;
	uint32_t gen;
	uint32_t side;
};

struct l4_conn;
struct l7_shared;

struct ring_worker {
	struct ring_config cfg; /* copy, defaults filled */
	struct io_uring ring;
	bool ring_ok;				  /* ring initialised (needs queue_exit) */
	unsigned int ring_flags;		  /* setup flags that the kernel accepted */
	int lfd[RING_MAX_LISTEN];		  /* listening sockets, -1 when closed */
	bool accept_armed[RING_MAX_LISTEN];	  /* a multishot accept is live */
	bool accept_started;			  /* accepts were armed (held until then) */
	bool accept_go;				  /* atomic: ring_worker_accept() was called */
	struct __kernel_timespec accept_retry_ts; /* for RING_OP_ACCEPT_RETRY */
	int wake_fd;				  /* eventfd: stop request from the owning thread */
	uint64_t wake_val;			  /* read target for RING_OP_WAKE */
	bool stopping;				  /* RING_STOP: resetting, then return */
	bool draining;		 /* RING_DRAIN_ACCEPT or later: no keep-alive (l7 reads it) */
	bool accept_off;	 /* accepts cancelled (RING_DRAIN, RING_STOP) */
	enum ring_mode req_mode; /* atomic: what the owner asked (ring_worker_set_mode) */
	uint64_t drain_sweep_ns; /* next look for idle connections to close */
	/* The kernel honours a multishot recv's total byte cap. Without it one task-work
	 * pass can drain a whole socket buffer into the pool before a pause takes effect;
	 * cleared at the first -EINVAL (older kernels reject the field). */
	bool mshot_cap;

	/* Provided buffer pool, group 0. */
	struct io_uring_buf_ring *br; /* shared ring of free buffers (mmapped) */
	size_t br_bytes;
	uint8_t *bufs; /* buf_count * buf_size bytes (mmapped) */
	size_t bufs_bytes;
	/* One private buffer per connection side (ids buf_count + 2 * slot + side), used
	 * when the pool is empty: without it, buffers queued behind blocked peers can hold
	 * the whole pool while the reader that would unblock them waits for a buffer.
	 * Lazily touched anonymous memory. */
	uint8_t *priv;
	size_t priv_bytes;
	struct ring_buf_meta *meta; /* per buffer id, pool then private */
	unsigned int br_mask;
	unsigned int br_pending; /* buffers added to br but not yet published */
	unsigned int bufs_free;	 /* buffers the kernel may fill now */
	bool br_registered;

	/* Connection slots (l4). */
	struct l4_conn *conns;	      /* cfg.max_conns entries */
	struct conn_slots slots;      /* which of them are taken (conn.h) */
	uint64_t next_trim;	      /* l4_trim's next run (mono ns) */
	bool bufs_dirty;	      /* pool buffers were filled since their pages were dropped */
	struct ring_starved *starved; /* FIFO, 2 * max_conns entries */
	uint32_t starved_head, starved_len;

	struct ring_stats stats;
	struct __kernel_timespec connect_ts; /* cfg.connect_timeout_ms */
	void *l7;			     /* struct l7_worker, when cfg.l7 */
	struct wl_cache wl;		     /* pod identities of callers (cfg.hooks.wl_fetch) */

	pthread_t thread;
	bool thread_started;
	int init_rc; /* worker's io_uring setup result, for ring_worker_start */
	char init_err[160];
	pthread_mutex_t init_lock;
	pthread_cond_t init_cond;
	bool init_done;
	int exited; /* set (atomic) when the thread has returned */
};

/* Counters: only the worker writes, so a plain add published by a relaxed store. */
#define RING_STAT_ADD(w, field, n)                                                                 \
	__atomic_store_n(&(w)->stats.field, (w)->stats.field + (uint64_t)(n), __ATOMIC_RELAXED)

/* Allocate a worker and bind its listeners (so a bad address fails here, in the
 * caller, before any kernel hook points at us). 0 or -errno with err filled. */
int ring_worker_create(struct ring_worker **out, const struct ring_config *cfg, char *err,
		       size_t errlen);

/* Port (host order) a listener is bound to; useful with port 0. */
uint16_t ring_worker_port(const struct ring_worker *w, unsigned int listener);

/* Start the thread; it sets up its io_uring (which must be its own: SINGLE_ISSUER)
 * and this waits for that. 0 or -errno with err filled (the thread has exited). */
int ring_worker_start(struct ring_worker *w, char *err, size_t errlen);

/* Ask the worker to stop: it stops accepting, resets what is open and returns. */
void ring_worker_stop(struct ring_worker *w);

/* Ask for a mode (enum ring_mode) from the owning thread; an earlier one is ignored. */
void ring_worker_set_mode(struct ring_worker *w, enum ring_mode m);

/* Start accepting (a worker created with hold_accept), from the owning thread; a
 * worker already draining or stopping does not. */
void ring_worker_accept(struct ring_worker *w);

/* The listening socket of listener i (-1 if none), for a hand-over: still the worker's. */
int ring_worker_listen_fd(const struct ring_worker *w, unsigned int i);

/* Connections open now (any thread). */
uint64_t ring_worker_active(const struct ring_worker *w);

/* Wait for the thread after ring_worker_stop. Returns its exit status (0 or -errno). */
int ring_worker_join(struct ring_worker *w);

/* Free everything (stops and joins first if needed). NULL-safe. */
void ring_worker_destroy(struct ring_worker *w);

/* Has the thread returned (on its own: a fatal io_uring error, or after stop)? */
bool ring_worker_exited(const struct ring_worker *w);

/* Snapshot of the counters, from any thread. */
void ring_worker_stats(const struct ring_worker *w, struct ring_stats *out);
void ring_stats_add(struct ring_stats *sum, const struct ring_stats *s);

/* For l4 (worker thread only). */

/* An SQE, submitting what is queued when the SQ is full; NULL only if the kernel
 * refuses the submit (the caller treats that as fatal for its connection). */
struct io_uring_sqe *ring_get_sqe(struct ring_worker *w);

static inline uint8_t *ring_buf_data(struct ring_worker *w, uint32_t bid)
{
	if (bid >= w->cfg.buf_count)
		return w->priv + (size_t)(bid - w->cfg.buf_count) * w->cfg.buf_size;
	return w->bufs + (size_t)bid * w->cfg.buf_size;
}

/* Give a buffer back: a pool buffer to the kernel (published at the end of the
 * completion batch), a private one to its connection side. */
void ring_buf_recycle(struct ring_worker *w, uint32_t bid);

/* Queue a multishot recv on fd selecting from the pool. total_cap > 0 ends it after
 * that many bytes (kernel 6.17+, IORING_RECV_MSHOT_LIM; see mshot_cap). */
int ring_prep_recv(struct ring_worker *w, int fd, uint64_t ud, uint32_t total_cap);

#endif /* RM_RING_H */
