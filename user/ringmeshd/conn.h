/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * conn: what l4 and l7 share about a proxied connection, so that neither needs the
 * other: the client socket as admission (accept.c) hands it over, an original
 * destination or an endpoint as a socket address, the linked connect-with-timeout
 * of an upstream socket, and the reset on close. It needs no worker (and includes
 * no engine header), so it sits below l4, l7 and admission without a cycle.
 */
#ifndef RM_CONN_H
#define RM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ringmesh/abi.h"

struct io_uring;
struct __kernel_timespec;

/* An admitted client connection: complete when it reaches l4 or l7. */
struct conn_admit {
	int fd;		 /* the accepted socket; the taker owns it on success */
	bool orig_known; /* found by orig_lookup: call ring_hooks.on_close at the end */
	struct sockaddr_storage local; /* the socket's local address (our listener) */
	struct sockaddr_storage peer;  /* the client */
	struct rm_orig orig;	       /* the original destination (lookup or SO_ORIGINAL_DST) */
};

/* An original destination (or an endpoint in that form) as a socket address.
 * 0 or -EAFNOSUPPORT. */
int conn_orig_to_sockaddr(const struct rm_orig *o, struct sockaddr_storage *ss, socklen_t *len);

/* Queue connect(fd, dst) with a linked timeout ts, both in one submission (a link
 * cannot span two): ud_conn and ud_to tag their completions. dst must stay valid
 * until the next submit. 0, or -EBUSY when the queue has no room for both. */
int conn_prep_connect(struct io_uring *ring, int fd, const struct sockaddr_storage *dst,
		      socklen_t dlen, struct __kernel_timespec *ts, uint64_t ud_conn,
		      uint64_t ud_to);

/* SO_LINGER{1,0}: the final close of fd sends a reset. */
void conn_linger0(int fd);

/*
 * Connection slots (l4's, l7's client and upstream ones): indexes into an array the
 * caller owns. Slots are taken in order on first use ([0, used) were used once, the
 * rest never touched, so their pages are never resident) and a given-back one is
 * taken again first (LIFO, its cache lines warm). The free ones are kept in a stack
 * of their own, not linked through the slots, so that conn_slots_trim can give the
 * pages of free slots back to the kernel wherever they are.
 */
#define CONN_SLOT_NONE UINT32_MAX

struct conn_slots {
	uint32_t *stack; /* free slots, the last given back on top */
	uint32_t n_free; /* entries in stack */
	uint32_t used;	 /* slots [0, used) were taken once */
	uint32_t live;	 /* taken now */
	uint32_t n;	 /* capacity */
	bool given;	 /* a slot was given back since the last trim */
};

/* 0 or -ENOMEM. */
int conn_slots_init(struct conn_slots *s, uint32_t n);
void conn_slots_fini(struct conn_slots *s);
/* A slot to use, or CONN_SLOT_NONE when all n are taken. */
uint32_t conn_slots_take(struct conn_slots *s);
void conn_slots_give(struct conn_slots *s, uint32_t i);

/*
 * When most slots ever used are free: the whole pages of the array base (elements of
 * size sz) that hold only free slots go back to the kernel (MADV_DONTNEED: they read
 * as zeroes afterwards, and a slot taken again starts from zero, its generation
 * included, which is safe because a free slot has nothing in flight). free_slot(e)
 * tells whether element e is free; forget (may be NULL) lets go of what a free slot
 * whose page is dropped points to. Returns the pages dropped.
 */
size_t conn_slots_trim(struct conn_slots *s, void *base, size_t sz,
		       bool (*free_slot)(const void *e), void (*forget)(void *e));

/* Whether conn_slots_trim would scan: a slot was given back since the last scan and
 * most slots ever used are free. */
static inline bool conn_slots_trimmable(const struct conn_slots *s)
{
	return s->given && s->used >= 64 && s->live < s->used / 2;
}

#endif /* RM_CONN_H */
