/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Internal structures of l7, shared by l7.c (slots, upstream connections, pool,
 * timers, dispatch), l7_cb.c (pending requests), and the request life cycle:
 * l7_http.c (client side), l7_fwd.c (route, attempts), l7_resp.c (responses).
 * Not for other modules.
 *
 * Buffers: a client connection borrows one block (input buffer, upstream head,
 * client-bound head, header arrays) from the worker's pool (bufpool.h) when bytes
 * of a request arrive and gives it back when it goes idle (nothing pending, nothing
 * in flight); while it idles, its recv selects a small buffer from the worker's
 * provided-buffer group (l7.c), whose bytes move into a block at once. When no block
 * is left the connection waits in a FIFO, not reading, until one comes back. An
 * upstream connection borrows one input buffer from a second pool for its life.
 * A busy worker allocates nothing.
 *
 * Lifetimes: an object is freed only when none of its io_uring ops is in flight.
 * Sends that a client connection makes on its upstream's socket (request) or from
 * its upstream's buffer (response body) count in the client's inflight and in the
 * upstream's ext, so neither goes away under the kernel.
 */
#ifndef RM_L7_INT_H
#define RM_L7_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>

#include "common/util.h"
#include "ringmesh/abi.h"
#include "ringmesh/breaker.h"
#include "ringmesh/stats.h"
#include "policy/cb.h"
#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/conn.h"
#include "http/http1.h"
#include "ringmeshd/l7.h"
#include "ringmeshd/timer.h"
#include "ringmeshd/pool.h"
#include "ringmeshd/bufpool.h"
#include "ringmeshd/ring.h"
#include "policy/retry.h"
#include "policy/trace.h"
#include "policy/route.h"
#include "ringmeshd/stats_w.h"

#define L7_MAX_HDRS 128
/* Provided buffers for the recv of an idle client connection: the first bytes of
 * its next request land here and move into a block at once. */
#define L7_BGID 1
#define L7_PB_COUNT 256
#define L7_PB_SIZE 4096
#define L7_PB_NONE UINT32_MAX
#define L7_NONE UINT32_MAX
#define L7_FLAG(f) (1u << (f)) /* bit of enum rm_stats_flag in l7_conn.sflags */

enum l7_tkind {
	L7_T_ROUTE = 1, /* route timeout (covers retries) */
	L7_T_TRY,	/* per-try timeout */
	L7_T_DELAY,	/* fault delay */
	L7_T_IDLE,	/* idle upstream connection */
	L7_T_CB,	/* the worker's breaker poll: waiters, idle connections others wait for */
	L7_T_MIRROR,	/* a shadow request's timeout */
};

/* How often a worker looks at capacity freed in other workers (pending requests) or
 * wanted by them (its idle connections of a pool with pending requests elsewhere). */
#define L7_CB_POLL_NS (5ull * 1000000ull)

enum l7c_state {
	L7C_FREE = 0,
	L7C_HEAD,    /* reading a request head */
	L7C_BODY,    /* reading a body that is kept whole (retries) */
	L7C_DELAY,   /* fault delay */
	L7C_FWD,     /* at an upstream */
	L7C_REPLY,   /* sending a local reply */
	L7C_TUNNEL,  /* after 101: bytes both ways */
	L7C_CLOSING, /* waiting for in-flight ops */
};

enum l7_bmode {
	L7_BM_NONE = 0, /* no body */
	L7_BM_KEPT,	/* whole body in cbuf: replayable */
	L7_BM_STREAM,	/* forwarded as it arrives */
};

struct l7_seg {
	const char *p;
	uint32_t len;
};

struct l7_up;
struct zipkin_span;

/*
 * A client connection slot, split by phase. Each part is written by the file that
 * owns its phase, and the parts of one request (rq, fw, rs) are reset together when
 * the next request on a kept-alive connection starts (l7c_next_request, with mt);
 * what must
 * survive across requests is in cl or at the top.
 */

/* The client connection itself: lives as long as the slot (l7.c takes it over from
 * admission; l7_http.c reads, sends and closes). */
struct l7_client {
	int fd;		    /* the client socket, -1 once closed */
	bool crecv_busy;    /* a recv on fd is in flight */
	bool crecv_drained; /* the last recv emptied the socket: the next one polls first */
	bool csend_busy;    /* a send on fd is in flight */
	bool close_after;   /* close the client once the current response is sent */
	bool orig_known;    /* original destination found by lookup: forget it at the end */
	uint64_t idle_ns;   /* when it last waited for a request with nothing sent (drain) */
	struct sockaddr_storage local; /* fd's local address (our listener) */
	struct sockaddr_storage peer;  /* the client */
	struct rm_orig orig;	       /* original destination: the service's VIP and port */
	__be16 port;		       /* original destination port */
	int svc; /* service of orig (admission; refreshed by each routed request) */
	/* memory: a block borrowed while a request is under way (l7c_mem_get), cut into
	 * the buffers below; all NULL while the connection idles */
	char *mem;		   /* the block, to give back */
	bool mem_wait;		   /* in the worker's FIFO of connections waiting for a block */
	bool pb_held;		   /* ... holding the bytes of provided buffer pb */
	uint16_t pb;		   /* that buffer's id */
	uint32_t pb_len;	   /* bytes in it */
	struct l7_conn *mw_next;   /* next in that FIFO */
	char *cbuf;		   /* client bytes [0, clen): the current request first */
	uint32_t clen;		   /* bytes in cbuf */
	char *obuf;		   /* the upstream request head (fw.olen bytes) */
	char *rbuf;		   /* the client-bound head, or a local reply */
	struct http_header *hdrs;  /* the request's parsed fields */
	struct http_header *rhdrs; /* the response's parsed fields */
	/* client send queue: up to three segments (head, body) in flight one at a time */
	struct l7_seg cq[3];  /* segments to send */
	uint8_t cq_n;	      /* number of segments */
	uint8_t cq_i;	      /* the segment being sent */
	uint32_t cq_off;      /* bytes of cq[cq_i] already sent */
	uint32_t cq_up_bytes; /* bytes of up->buf the queue sends (consumed when done) */
	struct l7_up *cq_up;  /* the upstream whose buffer they are in (ext ref), or NULL */
};

/* The current request as the client sent it, its body framing and its metrics
 * (l7_http.c; the fields are cleared for the next request). */
struct l7_req {
	uint32_t cparsed;	 /* bytes of cbuf given to a parser call that returned -2 */
	struct http_request req; /* the parsed head (slices into cbuf) */
	enum http_method method; /* req's method (HEAD: a reply has no body) */
	int vminor;		 /* HTTP/1.<vminor>: 1.0 gets no interim responses */
	bool upgrade;		 /* an Upgrade the Connection field names: may become a tunnel */
	bool req_keep;		 /* the client wants the connection kept after this request */
	uint32_t head_len;	 /* bytes of the head in cbuf */
	uint32_t req_end;	 /* KEPT: end of the body in cbuf; else the end of the head */
	uint8_t bmode;		 /* enum l7_bmode */
	struct http_body rb;	 /* request body framing (STREAM and tunnel) */
	uint32_t sbase;		 /* STREAM/tunnel: offset of unsent client bytes in cbuf */
	uint32_t sfwd;		 /* STREAM/tunnel: bytes at sbase that go upstream, not yet sent */
};

/* The outcome of the current request, for its metrics (l7c_record in l7_http.c).
 * The one part every phase writes: the phase that decides an outcome sets its flag
 * (no route, fault, overflow, upstream failure, ...) and, with a response, status. */
struct l7_rec {
	bool in_req;	     /* a request is under way: record it once when it ends */
	uint64_t t0;	     /* when its head was complete (CLOCK_MONOTONIC ns) */
	uint32_t sflags;     /* bit per enum rm_stats_flag (L7_FLAG) */
	int status;	     /* status sent to the client, 0 none yet */
	uint64_t resp_bytes; /* bytes sent to the client for it */
};

/* Forwarding: the route decision and the current upstream attempt (l7_fwd.c). */
/* Istio's default retry host predicate (Envoy's previous_hosts with
 * host_selection_retry_max_attempts 5): a retry re-picks up to L7_REPICKS times to
 * avoid the endpoints the request already tried; the first L7_TRIED_MAX are kept. */
#define L7_TRIED_MAX 8
#define L7_REPICKS 5

struct l7_fwd {
	struct cfgw_cfg *cfg;	      /* configuration held (cfgw_hold) from dispatch to finish */
	struct route_decision d;      /* what the route said */
	uint32_t olen;		      /* bytes of the upstream head in cl.obuf */
	uint32_t tries_left;	      /* attempts left, the current one excluded */
	struct l7_up *up;	      /* the attempt's upstream connection, or NULL */
	uint32_t ep;		      /* the attempt's endpoint, L7_NONE before one is chosen */
	struct rm_stats_slot *st;     /* metrics slot of that endpoint */
	enum retry_fail why;	      /* how the last attempt failed */
	uint32_t tried[L7_TRIED_MAX]; /* endpoints this request's attempts went to */
	uint32_t n_tried;	      /* entries used in tried */
	bool retry_wait;	      /* a failed attempt waits for its send to complete */
	bool head_sent;		      /* the upstream head went out for this attempt */
	bool req_done;		      /* the whole request is at the upstream */
	bool cors;		      /* an allowed CORS request: its Origin goes on the response */
	uint16_t cors_len;	      /* ... copied, NUL-terminated, after the head in cl.obuf */
	/* circuit breaker of the attempt (pool and host slots may be NULL) */
	struct rm_cb_pool *cbp;	     /* the breaker pool of the chosen subset */
	struct rm_cb_host *cbh;	     /* the chosen host's outlier slot */
	bool cb_req;		     /* counted in requests (and the host's active) */
	bool cb_retry;		     /* this attempt is a retry counted in retries */
	bool retry_next;	     /* a retry slot taken for the next attempt */
	bool cb_reported;	     /* this attempt's result went to the outlier detector */
	struct pool_key ukey;	     /* what the attempt connects to, kept while pending */
	struct sockaddr_storage uss; /* ... its address */
	socklen_t uslen;	     /* ... and that address's length */
	/* upstream send queue: head and body, one send in flight */
	struct l7_seg uq[2]; /* segments to send */
	uint8_t uq_n;	     /* number of segments */
	uint8_t uq_i;	     /* the segment being sent */
	uint32_t uq_off;     /* bytes of uq[uq_i] already sent */
	bool usend_busy;     /* a send to uq_up is in flight */
	struct l7_up *uq_up; /* the upstream the queue writes to (ext ref) */
	/* tracing: the upstream context, and whether a span is owed at the end */
	struct trace_ctx tc; /* what went upstream in the B3 headers */
	bool span;	     /* sampled, reporter on: c->zk holds the span's request part */
	struct l7_mir *mir;  /* the shadow still owed the rest of a streamed body, or NULL */
};

/* The response of the current attempt (l7_resp.c; cleared at each attempt). */
struct l7_resp {
	uint32_t rparsed;      /* bytes of the upstream's buffer given to a -2 parse */
	bool resp_head;	       /* the final response head was accepted */
	bool resp_sent_head;   /* ... and (some of it) sent to the client */
	bool resp_until_close; /* its body ends with the upstream connection */
	bool up_keep;	       /* the response allows reusing the upstream connection */
	struct http_body sb;   /* response body framing */
};

/* Waiting as pending for a connection of fw.cbp (l7_cb.c). */
struct l7_wait {
	bool waiting;	       /* in the worker's FIFO of that breaker pool */
	struct l7_conn *wnext; /* next in it (towards the tail) */
	struct l7_conn *wprev; /* previous in it (towards the head) */
};

/* The metrics slot the connection's last request was counted under, with what it was
 * for: keep-alive requests to the same endpoint from the same caller (the usual case)
 * skip building the ~520-byte key, hashing and comparing it. */
/* The worker's metrics slot cache (l7c_stats_slot): a slot is found by hashing its
 * whole key (names of service, version, workload and source: 520 bytes) and probing the
 * shared table, so a weighted split that alternates endpoints missed a one-entry
 * cache per connection on every other request. L7_STC_N entries, direct-mapped by
 * (service, endpoint, caller). */
#define L7_STC_N 64
struct l7_stc {
	struct rm_stats_slot *sl; /* NULL: nothing cached */
	const struct wl_ident *id;
	uint64_t cfg_gen;
	uint64_t wl_fetched; /* the caller's record as it was read */
	uint32_t svc, ep;
};

struct l7_conn {
	enum l7c_state state; /* the request state machine (every phase moves it) */
	uint32_t gen;	      /* bumped on every reuse: stale completions are recognised */
	uint32_t inflight;    /* ops in flight on the client socket, and sends to upstreams */
	/* timer heap nodes live with the slot; every request cancels its own at its end */
	struct l7_tmr t_route;	/* route timeout (covers retries) */
	struct l7_tmr t_try;	/* per-try timeout */
	struct l7_tmr t_delay;	/* fault delay */
	struct l7_client cl;	/* the client connection */
	struct l7_req rq;	/* the current request */
	struct l7_rec mt;	/* its outcome, for metrics */
	struct l7_fwd fw;	/* its route and current attempt */
	struct l7_resp rs;	/* the attempt's response */
	struct l7_wait wt;	/* breaker wait */
	struct zipkin_span *zk; /* the span being built (l7_span.c), allocated at the slot's
				 * first sampled request and kept with the slot */
};

enum l7u_state {
	L7U_FREE = 0,
	L7U_CONNECTING,
	L7U_BUSY, /* owned by a request */
	L7U_IDLE, /* parked in the pool */
	L7U_CLOSING,
};

struct l7_up {
	enum l7u_state state;
	uint32_t gen;
	uint32_t inflight; /* own ops: recv, connect, link timeout */
	uint32_t ext;	   /* sends of a client connection on fd / from buf */
	int fd;
	bool recv_busy;
	bool recv_drained; /* the last recv emptied the socket: the next one polls first */
	bool broken;	   /* EOF or error seen: never reuse */
	struct pool_link link;
	struct pool_key key;
	struct sockaddr_storage dst;
	socklen_t dlen;
	char *buf;
	uint32_t off, len;
	struct l7_conn *owner;
	struct l7_mir *mir; /* or the shadow request that owns it (l7_mirror.c) */
	struct l7_tmr t_idle;
	uint32_t requests;
	struct rm_stats_slot *st; /* tcp counters of its destination */
	uint64_t sent, rcvd;
	struct rm_cb_pool *cbp; /* breaker pool whose connection count includes it */
	bool cb_counted;	/* cb_conn_close is owed (exactly once, in up_finish) */
	bool cb_idle;		/* counted in the worker's idle_by */
};

/* A streamed body's bytes a shadow has not sent yet and its block has no room for. */
struct l7_mchunk {
	struct l7_mchunk *next;
	uint32_t len, off; /* bytes in d, bytes of them sent */
	char d[];
};
#define L7_MCHUNK_BYTES (64u << 10)
/* How far a shadow may lag its primary's streamed body beyond its block: as much as Envoy's
 * default per-connection buffer limit, 1 MiB, and for all of a worker's shadows 8 MiB. A new
 * connection to the mirror starts with small TCP windows while the primary's pooled one
 * is warm: the block alone (72 KiB) dropped a 200 KiB upload's shadow under load. */
#define L7_MIRROR_BACKLOG (1u << 20)
#define L7_MIRROR_WORKER_BACKLOG (8ull << 20)

/*
 * A shadow request (l7_mirror.c): a detached copy of a request whose route drew a
 * mirror, with a block of the worker's mirror pool (the request bytes, then the
 * response's header array), for a streamed body a backlog of chunks while the block
 * is full, and an upstream connection of its own; no client. Its only op is the send
 * from its block or first chunk (user_data slot = its index, side 0): it stays until
 * that completes, whatever else ended it.
 */
struct l7_mir {
	bool used;			/* taken */
	bool over;			/* the exchange ended: free once the send completes */
	bool send_busy;			/* a send from buf is in flight */
	bool req_done;			/* every request byte went out */
	bool resp_head;			/* the final response head was read */
	bool up_keep;			/* ... and allows reusing the connection */
	bool until_close;		/* ... its body ends with the connection */
	bool cb_req;			/* counted in the mirror pool's requests */
	bool cb_reported;		/* the host's result went to the outlier detector */
	bool connected;			/* its upstream connection is up: bytes may go out */
	bool stream;			/* the body follows as the primary streams it ... */
	bool body_done;			/* ... and all of it is in buf (always, for a kept one) */
	struct l7_conn *c;		/* the primary while it still owes body bytes, or NULL */
	uint32_t gen;			/* bumped on every reuse */
	char *buf;			/* the block: request bytes [0, len), then rhdrs */
	uint32_t len, off;		/* request bytes in buf, bytes of them sent */
	struct l7_mchunk *ch, *ch_tail; /* then these, in order (a streamed body only) */
	uint32_t backlog;		/* bytes in them */
	bool send_ch;			/* the send in flight is from ch, not buf */
	uint64_t req_bytes;		/* the request's size: head and the body so far */
	struct http_header *rhdrs;	/* the response's parsed fields (not kept) */
	enum http_method method;	/* the request's (HEAD: a response without body) */
	uint32_t rparsed;		/* bytes of up->buf given to a -2 parse */
	struct http_body sb;		/* the response body's framing */
	struct cfgw_cfg *cfg;		/* held while the pointers below may be used */
	struct l7_up *up;		/* its upstream connection, or NULL */
	struct l7_up *send_up;		/* the connection the send in flight is on (ext ref) */
	struct rm_cb_pool *cbp;		/* the mirror subset's breaker pool */
	struct rm_cb_host *cbh;		/* the chosen host's outlier slot */
	struct rm_stats_slot *st;	/* metrics slot of the mirror destination */
	int status;			/* the response's status, 0 none */
	uint32_t sflags;		/* bit per enum rm_stats_flag */
	uint64_t t0;			/* start (mono ns) */
	uint64_t resp_bytes;		/* response bytes read */
	struct l7_tmr t;		/* its timeout */
};

/* A shadow request's timeout without a route timeout: Envoy's default route timeout. */
#define L7_MIRROR_TIMEOUT_NS (15000ull * 1000000ull)

/* What l7_choose picked for a request to a service's subset. */
struct l7_target {
	uint32_t ep;		    /* the endpoint */
	struct rm_cb_pool *cbp;	    /* the subset's breaker pool, NULL without a breaker */
	struct rm_cb_host *cbh;	    /* the endpoint's outlier slot, or NULL */
	struct pool_key key;	    /* its connection pool key */
	struct sockaddr_storage ss; /* its address */
	socklen_t slen;		    /* ... and that address's length */
};

struct l7_worker {
	struct ring_worker *w;
	struct l7_shared *sh;
	unsigned int id;
	struct l7_conn *conns;
	uint32_t n_conns;
	struct l7_up *ups;
	uint32_t n_ups;
	/* slots of conns and ups, taken in order on first use (conn.h): the arrays are
	 * zeroed mappings, so the pages of slots never used are never resident */
	struct conn_slots cs, us;
	struct l7_theap th;
	struct pool pool;
	struct cfgw_cfg *cur; /* refreshed every loop iteration */
	uint64_t rng;
	struct bufpool cpool; /* client blocks (cmem_size each) */
	struct bufpool upool; /* upstream input buffers (umem_size each) */
	size_t cmem_size, umem_size;
	/* client connections waiting for a block (FIFO through l7_client.mw_next) */
	struct l7_conn *mw_head, *mw_tail;
	uint64_t next_trim; /* when the pools give unused pages back next (mono ns) */
	/* provided buffers (group L7_BGID) for the recv of a connection without a block */
	struct io_uring_buf_ring *pbr;
	size_t pbr_bytes;
	uint8_t *pbufs;
	size_t pbufs_bytes;
	uint32_t pb_mask;
	uint32_t pb_held; /* buffers not in the kernel's ring (filled, not yet given back) */
	bool pb_dirty;	  /* some were filled since their pages were last dropped */
	bool pb_recent;	  /* some were filled since the last trim */
	uint32_t cbuf_size, obuf_size, rbuf_size;
	struct __kernel_timespec connect_ts;
	/* breaker, per pool slot (cb_pools of them: the map's, l7_cb_worker_init):
	 * pending requests (FIFO) and idle connections; the pools that have either
	 * (act, so that the poll walks those alone; act_pos[i] is 1 + the position of i
	 * in act, 0 when not there); the pools to serve at the next tick (kicked, each
	 * once while kick[i] is set; room for 2 x cb_pools, see l7_cb_run_kicks); and
	 * the poll timer */
	uint32_t cb_pools;
	struct l7_conn **wq_head, **wq_tail;
	uint32_t *idle_by;
	uint32_t *act, *act_pos, n_act;
	uint8_t *kick;
	uint32_t *kicked, n_kicked;
	uint32_t n_waiting;
	uint32_t n_idle_cb;
	struct l7_tmr t_cb;
	/* shadow requests: at most sh->o.max_mirrors in flight, each with a block of
	 * mpool (request head and kept body, then a header array) */
	struct l7_mir *mirs;
	struct conn_slots ms;
	struct bufpool mpool;
	size_t mreq_size;  /* request bytes a block holds (its header array follows) */
	uint64_t mbacklog; /* bytes of every shadow's backlog chunks (L7_MIRROR_WORKER_BACKLOG) */
	struct l7_stc stc[L7_STC_N];
};

/* The calling pod's record (NULL: unknown caller), through the worker's cache. */
static inline const struct rm_workload *l7_src_record(struct l7_worker *lw, const struct l7_conn *c)
{
	const struct wl_ident *id = wl_get(&lw->w->wl, c->cl.orig.pod_cgroup_id, mono_ns());

	return id ? &id->rec : NULL;
}

static inline struct l7_worker *l7w(struct ring_worker *w)
{
	return (struct l7_worker *)w->l7;
}

uint64_t l7_rand(struct l7_worker *lw);

/* l7.c: upstream connections */
/* An idle connection for key, else a new one when the breaker pool cbp admits it:
 * NULL with *err = -EAGAIN when cbp has max_connections open (wait as pending). */
struct l7_up *l7_up_get(struct l7_worker *lw, const struct pool_key *key,
			const struct sockaddr_storage *dst, socklen_t dlen,
			struct rm_stats_slot *st, struct rm_cb_pool *cbp, int *err);
void l7_up_release(struct l7_worker *lw, struct l7_up *up, bool reuse);
void l7_up_arm_recv(struct l7_worker *lw, struct l7_up *up);
void l7_up_ext_put(struct l7_worker *lw, struct l7_up *up);
uint64_t l7_conn_ud(struct l7_worker *lw, struct l7_conn *c, enum ring_op op);

void l7_up_close_idle(struct l7_worker *lw, struct l7_up *up);

/* l7_cb.c: pending requests and the breaker poll */
/* The per-pool arrays for the breaker map of lw->sh (none without one): 0 or -ENOMEM.
 * Called at init and again once the worker runs (the map opens after the workers
 * are created); does nothing the second time. */
int l7_cb_worker_init(struct l7_worker *lw);
void l7_cb_worker_fini(struct l7_worker *lw);
/* The pool slot of p, or lw->cb_pools when there is none (no breaker). */
uint32_t l7_cb_slot(struct l7_worker *lw, const struct rm_cb_pool *p);
void l7_cb_wait(struct l7_worker *lw, struct l7_conn *c);
void l7_cb_wait_leave(struct l7_worker *lw, struct l7_conn *c);
/* A connection of p was parked or closed in this worker: serve its waiters soon. */
void l7_cb_kick(struct l7_worker *lw, const struct rm_cb_pool *p);
void l7_cb_idle(struct l7_worker *lw, struct l7_up *up, bool idle);
/* Do requests of p wait for a connection in another worker? Then this one neither
 * keeps connections of p nor opens new ones for requests that did not wait. */
bool l7_cb_others_wait(struct l7_worker *lw, const struct rm_cb_pool *p);
/* Must a new request for p queue behind requests already waiting (here, or at the
 * limit in another worker) instead of taking a connection itself? NULL p: never. */
bool l7_cb_queue_first(struct l7_worker *lw, const struct rm_cb_pool *p);
/* The worker (bit in want, a cb_want word) that a freed slot of worker me goes to:
 * the next waiting one after me, round robin; 64 when no other worker waits. */
uint32_t l7_cb_handoff_target(uint64_t want, uint32_t me);
/* Give a connection slot of p (a connection closing) to a worker whose requests wait:
 * true when handed over (the caller must not cb_conn_close it). */
bool l7_cb_handoff(struct l7_worker *lw, const struct rm_cb_pool *p);
/* The second half of a handoff (pool p in slot i, to worker t, whose want bit was
 * seen set): counted for t, or closed when t stopped waiting meanwhile and did not
 * take it. */
void l7_cb_handoff_to(struct l7_shared *sh, const struct rm_cb_pool *p, uint32_t i, uint32_t t);
/* A slot handed to this worker for pool slot i: true when one was taken. */
bool l7_cb_take_handoff(struct l7_worker *lw, uint32_t i);
/* Close one idle connection of p in this worker (its slot is wanted). */
void l7_cb_free_idle(struct l7_worker *lw, const struct rm_cb_pool *p);
void l7_cb_arm(struct l7_worker *lw);
void l7_cb_on_timer(struct l7_worker *lw, uint64_t now);
void l7_cb_run_kicks(struct l7_worker *lw);

/* l7_http.c: the client side of the request life cycle */
void l7c_start(struct l7_worker *lw, struct l7_conn *c);
/* A client recv completed; pb: the provided buffer it filled, or L7_PB_NONE. */
void l7c_on_recv(struct l7_worker *lw, struct l7_conn *c, int32_t res, uint32_t pb);
/* Blocks came back: give them to the connections waiting, in order. */
void l7c_mem_serve(struct l7_worker *lw);
void l7c_on_send(struct l7_worker *lw, struct l7_conn *c, int32_t res);
void l7c_abort(struct l7_worker *lw, struct l7_conn *c);
void l7c_maybe_free(struct l7_worker *lw, struct l7_conn *c);
/* A client connection slot with its buffers (NULL when none is free), and back. */
struct l7_conn *l7c_alloc(struct l7_worker *lw);
void l7c_free(struct l7_worker *lw, struct l7_conn *c);
/* Borrow a block for c (0), or -ENOBUFS when none is left. */
int l7c_mem_get(struct l7_worker *lw, struct l7_conn *c);
/* c went idle: give its block back (only with nothing in flight that uses it). */
void l7c_mem_put(struct l7_worker *lw, struct l7_conn *c);
/* c waits for a block (holding a provided buffer's bytes when pb_held). */
void l7c_mem_wait(struct l7_worker *lw, struct l7_conn *c);
/* A provided buffer (its id in a CQE's flags) back to the kernel. */
void l7_pb_recycle(struct l7_worker *lw, uint16_t bid);
static inline uint8_t *l7_pb_data(struct l7_worker *lw, uint16_t bid)
{
	return lw->pbufs + (size_t)bid * L7_PB_SIZE;
}
/* Everything for the client is sent: close with a FIN. */
void l7c_close(struct l7_worker *lw, struct l7_conn *c);
void l7c_arm_recv(struct l7_worker *lw, struct l7_conn *c);
/* Queue segments to the client; segments from up's buffer (up_bytes > 0) pin up. */
void l7c_send(struct l7_worker *lw, struct l7_conn *c, const struct l7_seg *segs, unsigned int n,
	      struct l7_up *up, uint32_t up_bytes);
/* A local reply (Envoy's texts); the client connection survives when framing allows. */
/* The CORS response fields of an allowed CORS request (0 to 3; l7_http.c). */
size_t l7c_cors_fields(const struct l7_conn *c, struct http_header f[3]);
void l7c_reply(struct l7_worker *lw, struct l7_conn *c, int status, const char *body,
	       const struct http_header *hdrs, size_t n_hdrs, bool close);
void l7c_next_request(struct l7_worker *lw, struct l7_conn *c);
/* STREAM / tunnel: the client bytes at sbase went upstream; drop them from cbuf. */
void l7c_stream_consumed(struct l7_conn *c);
void l7c_record(struct l7_worker *lw, struct l7_conn *c);
/* The metrics slot of a request to service svc, endpoint ep (L7_NONE or out of range:
 * none chosen) from this connection's caller; NULL without a stats map. */
struct rm_stats_slot *l7c_stats_slot(struct l7_worker *lw, struct l7_conn *c,
				     const struct cfgw_cfg *cfg, uint32_t svc, uint32_t ep);
void l7c_timers_off(struct l7_worker *lw, struct l7_conn *c);

/* l7_fwd.c: route, attempts, upstream sends, the breaker counts of an attempt */
/* A new request: clear the forwarding part (l7c_next_request). */
void l7c_fwd_reset(struct l7_conn *c);
/* The request is over: give its configuration back. */
void l7c_drop_cfg(struct l7_worker *lw, struct l7_conn *c);
/* A parsed request (and its kept body): route it. */
void l7c_dispatch(struct l7_worker *lw, struct l7_conn *c);
/* A pending request's turn: take a connection or stay queued (0 / -EAGAIN). */
int l7c_resume(struct l7_worker *lw, struct l7_conn *c);
void l7c_on_up_connected(struct l7_worker *lw, struct l7_conn *c, int32_t res);
void l7c_on_usend(struct l7_worker *lw, struct l7_conn *c, int32_t res);
void l7c_on_timer(struct l7_worker *lw, struct l7_conn *c, struct l7_tmr *t);
void l7c_attempt_fail(struct l7_worker *lw, struct l7_conn *c, enum retry_fail why);
/* STREAM / tunnel: send what the client gave us, or read more. */
void l7c_stream_push(struct l7_worker *lw, struct l7_conn *c);
/* This attempt's result for outlier detection: once, and only for a chosen host. */
void l7c_host_result(struct l7_worker *lw, struct l7_conn *c, enum cb_outcome o);
/* May the request be retried under httpMaxRetries? The slot is the next attempt's. */
bool l7c_retry_admit(struct l7_conn *c);
/* The request is over: nothing of it may stay counted. */
void l7c_cb_release(struct l7_worker *lw, struct l7_conn *c);
/* Give the attempt's upstream connection back, never for reuse. */
void l7c_up_drop(struct l7_worker *lw, struct l7_conn *c);

/* The balancer's endpoint among svc/subset's members for service port sport, skipping
 * ejected hosts and (c not NULL) those c's earlier attempts went to: 0, or -ENOENT
 * (no member, every one ejected, no address). Takes no breaker count. */
int l7_choose(struct l7_worker *lw, struct cfgw_cfg *cfg, uint32_t svc, uint32_t subset,
	      __be16 sport, struct l7_conn *c, struct l7_target *t);

/* l7_mirror.c: shadow requests */
/* The worker's mirror slots and pool (0 or -ENOMEM), and back. */
int l7m_worker_init(struct l7_worker *lw);
void l7m_worker_fini(struct l7_worker *lw);
/* c's route drew a mirror and its upstream head is in cl.obuf: send a copy, or count
 * why not. A streamed body follows through l7m_feed (c->fw.mir set); nothing else of
 * c changes. */
void l7m_start(struct l7_worker *lw, struct l7_conn *c);
/* n more bytes of c's streamed body (raw, as framed) went to its upstream; done: the
 * body ends with them. The shadow copies them, or is dropped when its block and
 * backlog cannot hold them (RM_MIR_SKIP_BEHIND). */
void l7m_feed(struct l7_worker *lw, struct l7_conn *c, const char *p, uint32_t n, bool done);
/* c's request ends: a shadow still owed body bytes is dropped (RM_MIR_SKIP_BODY). */
void l7m_primary_end(struct l7_worker *lw, struct l7_conn *c);
/* Append n bytes to m's block of cap bytes, moving the unsent ones to its start when
 * no send is in flight: 0, or -ENOBUFS (they do not fit; nothing changed). */
int l7m_buf_append(struct l7_mir *m, uint32_t cap, const char *p, uint32_t n);
/* Completions and the timeout of shadow request m (l7.c dispatches them). */
void l7m_on_up_connected(struct l7_worker *lw, struct l7_mir *m, int32_t res);
void l7m_on_up_recv(struct l7_worker *lw, struct l7_mir *m, int32_t res);
void l7m_on_send(struct l7_worker *lw, struct l7_mir *m, int32_t res);
void l7m_on_timer(struct l7_worker *lw, struct l7_mir *m);
/* The worker stops: every shadow in flight ends (counted as reset). */
void l7m_abort_all(struct l7_worker *lw);

/* l7_span.c: the Zipkin span of a request */
/* The request's head is about to go upstream with context tc: take what the span
 * needs from the request while its head is still in cbuf. */
void l7c_span_begin(struct l7_worker *lw, struct l7_conn *c);
/* The request is over (l7c_record): finish the span and queue it for the sender. */
void l7c_span_end(struct l7_worker *lw, struct l7_conn *c);

/* l7_resp.c: the response */
/* A new attempt or request: clear the response part. */
void l7c_resp_reset(struct l7_conn *c);
void l7c_on_up_recv(struct l7_worker *lw, struct l7_conn *c, int32_t res);
void l7c_resp_process(struct l7_worker *lw, struct l7_conn *c);
/* The exchange is over: park or close the upstream, then the next request or a close. */
void l7c_resp_complete(struct l7_worker *lw, struct l7_conn *c);

#endif /* RM_L7_INT_H */
