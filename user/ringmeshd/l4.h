/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * l4: the transparent TCP forwarding state machine of one worker. A connection
 * slot pairs the accepted client socket with an upstream socket to the original
 * destination and moves received buffers across, one send in flight per
 * direction, with half-close and reset propagated and bounded memory.
 *
 * Connections arrive admitted (accept.c: original destination found, refusals
 * done, the destination chosen); l4 knows nothing of L7. Its events (l4.c):
 *   l4_ev_upstream_connected()  upstream connect finished (ok or not)
 *   l4_ev_data()                bytes arrived on a side (a received buffer)
 *   l4_ev_eof()                 a side's reader saw end of stream
 *   l4_ev_closed()              the slot is about to be freed
 *
 * Lifetime rule: a slot is freed only when no operation of it is in flight
 * (inflight == 0), because io_uring keeps a reference on the file of each
 * pending operation: close() alone neither stops them nor sends FIN/RST.
 */
#ifndef RM_L4_H
#define RM_L4_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ringmesh/abi.h"
#include "ringmeshd/conn.h"
#include "ringmeshd/ring.h"

enum l4_side_id {
	L4_CLIENT = 0,	 /* the accepted socket */
	L4_UPSTREAM = 1, /* our socket to the original destination */
};

enum l4_state {
	L4_FREE = 0,
	L4_CONNECTING, /* upstream connect in flight; client not read yet */
	L4_OPEN,       /* forwarding */
	L4_CLOSING,    /* done or aborted: waiting for in-flight ops, then close */
};

/* One socket of a pair and the queue of bytes waiting to be written to it. */
struct rm_stats_slot;
struct stats_w;
struct rm_cb_pool;
struct rm_cb_host;

/* The breaker slots a connection to a TCP service with a DestinationRule holds
 * (accept.c takes them): one of its pool's connections, counted against
 * maxConnections, and its host's active count. l4 reports the upstream connect's
 * outcome to the host (outlier detection) and gives both back when the slot is freed. */
struct l4_cb {
	struct cb *cb; /* the breaker table they are in (NULL: none) */
	struct rm_cb_pool *p;
	struct rm_cb_host *h;
};
/* Give back what l4_cb holds (both may be NULL), and clear it. */
void l4_cb_release(struct l4_cb *cbt);

struct l4_side {
	int fd;			 /* -1 when none */
	bool recv_armed;	 /* a multishot recv is live on fd */
	bool recv_cancel;	 /* its cancel is submitted, final completion pending */
	bool eof;		 /* fd's peer finished sending (recv returned 0) */
	bool starved;		 /* on the worker's starved list (recv ended with -ENOBUFS) */
	bool send_busy;		 /* a send to fd is in flight (always the queue head) */
	bool shut_wr;		 /* shutdown(SHUT_WR) done on fd */
	bool paused;		 /* reader held back because the other side's queue is full */
	bool priv_busy;		 /* the side's private buffer is being read into or is queued */
	uint32_t q_head, q_tail; /* buffers (ids) to write to fd, RING_BUF_NONE if empty */
	uint32_t q_len;		 /* number of queued buffers */
};

struct l4_conn {
	struct l4_side side[2]; /* by enum l4_side_id */
	enum l4_state state;
	uint32_t gen;		       /* bumped on every reuse: stale completions are recognised */
	uint32_t inflight;	       /* ops in flight (a multishot recv counts once) */
	bool reset;		       /* ending by reset: SO_LINGER{1,0} set on both sockets */
	bool orig_known;	       /* lookup succeeded: call hooks.on_close at the end */
	struct sockaddr_storage local; /* client socket's local address (the listener) */
	struct sockaddr_storage peer;  /* the client */
	struct sockaddr_storage dst;   /* upstream address (original destination) */
	struct rm_orig orig;	       /* what the lookup returned (for L7: pod cgroup, etc.) */
	struct rm_stats_slot *st;      /* metrics of a declared TCP service's endpoint, or NULL */
	struct stats_w *sw;	       /* the map st is in */
	bool st_opened;		       /* st counted the connection opened (at its connect) */
	struct l4_cb cb;	       /* breaker slots held (TCP service with a policy) */
	uint64_t bytes[2];	       /* bytes written to each side (by enum l4_side_id) */
};

/* Slot table of a worker: allocate / free (w->cfg.max_conns entries). */
int l4_init(struct ring_worker *w);
void l4_fini(struct ring_worker *w);

/* An admitted connection to forward to dst (the original destination, or an
 * endpoint of a declared TCP service whose metrics slot is st in sw, else NULL; cb:
 * the breaker slots it holds, or NULL). 0: l4 owns a->fd and cb's slots from here on
 * (a failed upstream connect is l4's to report: st's key with UF counts it); -ENOSPC:
 * no free slot, the caller still owns the socket and the slots. */
int l4_accept(struct ring_worker *w, const struct conn_admit *a, const struct sockaddr_storage *dst,
	      socklen_t dlen, struct stats_w *sw, struct rm_stats_slot *st, const struct l4_cb *cb);

/* A completion of an l4 op (RING_OP_RECV, _SEND, _CONNECT, _CONNECT_TIMEOUT). */
void l4_complete(struct ring_worker *w, uint64_t ud, int32_t res, uint32_t flags);

/* Once a second at most (called every loop pass): slots and pool pages that demand
 * no longer needs go back to the kernel. */
#define L4_TRIM_NS (1000ull * 1000000ull)
void l4_trim(struct ring_worker *w, uint64_t now);
/* When l4_trim has pages to give back: its next run (mono ns); else UINT64_MAX. An
 * idle worker waits for it, so its memory follows the load down without traffic. */
uint64_t l4_trim_next(const struct ring_worker *w);

/* A private buffer (id >= buf_count) was sent or dropped: its side may read again. */
void l4_priv_released(struct ring_worker *w, uint32_t bid);

/* After a batch: hand freed buffers to readers that ran out (-ENOBUFS). */
void l4_feed_starved(struct ring_worker *w);

/* Reset every open connection (worker stopping). */
void l4_abort_all(struct ring_worker *w);

#endif /* RM_L4_H */
