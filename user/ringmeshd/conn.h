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
 * Connection slot arrays (l4's, l7's client and upstream ones): elements of size sz
 * whose state (an enum, 0 when free) sits at offset st and whose free-list link (a
 * uint32_t, CONN_SLOT_NONE at the end) at offset nx; [0, *used) were used once, live
 * are in use now. When most of those are free, the slots above the highest in use are
 * forgotten (taken fresh again later, their generation restarting: a free slot has
 * nothing in flight) and their whole pages go back to the kernel; the free list is
 * rebuilt lowest first, so that new connections fill the bottom and the next trim
 * finds the top free. forget (may be NULL) lets go of what a forgotten slot points to.
 */
#define CONN_SLOT_NONE UINT32_MAX
void conn_slots_trim(void *base, size_t sz, size_t st, size_t nx, uint32_t live, uint32_t *used,
		     uint32_t *free_head, void (*forget)(void *slot));

#endif /* RM_CONN_H */
