/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers l4 and l7 share (conn.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <liburing.h>

#include "ringmeshd/conn.h"

int conn_orig_to_sockaddr(const struct rm_orig *o, struct sockaddr_storage *ss, socklen_t *len)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(ss, 0, sizeof(*ss));
	if (o->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (memcmp(o->addr.a8, v4mapped, sizeof(v4mapped)))
			return -EAFNOSUPPORT;
		sin->sin_family = AF_INET;
		sin->sin_port = o->port;
		memcpy(&sin->sin_addr, &o->addr.a8[12], 4);
		*len = sizeof(*sin);
		return 0;
	}
	if (o->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = o->port;
		memcpy(&sin6->sin6_addr, o->addr.a8, 16);
		*len = sizeof(*sin6);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int conn_prep_connect(struct io_uring *ring, int fd, const struct sockaddr_storage *dst,
		      socklen_t dlen, struct __kernel_timespec *ts, uint64_t ud_conn,
		      uint64_t ud_to)
{
	struct io_uring_sqe *sqe;

	/* The connect and its timeout must go in one submission to stay linked. */
	if (io_uring_sq_space_left(ring) < 2)
		io_uring_submit(ring);
	if (io_uring_sq_space_left(ring) < 2)
		return -EBUSY;
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_connect(sqe, fd, (const struct sockaddr *)dst, dlen);
	io_uring_sqe_set_data64(sqe, ud_conn);
	sqe->flags |= IOSQE_IO_LINK;
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_link_timeout(sqe, ts, 0);
	io_uring_sqe_set_data64(sqe, ud_to);
	return 0;
}

void conn_linger0(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

int conn_slots_init(struct conn_slots *s, uint32_t n)
{
	memset(s, 0, sizeof(*s));
	s->stack = calloc(n ? n : 1, sizeof(*s->stack));
	if (!s->stack)
		return -ENOMEM;
	s->n = n;
	return 0;
}

void conn_slots_fini(struct conn_slots *s)
{
	free(s->stack);
	memset(s, 0, sizeof(*s));
}

uint32_t conn_slots_take(struct conn_slots *s)
{
	uint32_t i;

	if (s->n_free)
		i = s->stack[--s->n_free];
	else if (s->used < s->n)
		i = s->used++;
	else
		return CONN_SLOT_NONE;
	s->live++;
	return i;
}

void conn_slots_give(struct conn_slots *s, uint32_t i)
{
	s->stack[s->n_free++] = i;
	s->live--;
	s->given = true;
}

size_t conn_slots_trim(struct conn_slots *s, void *base, size_t sz,
		       bool (*free_slot)(const void *e), void (*forget)(void *e))
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	char *p = base;
	size_t dropped = 0;

	/* nothing freed since the last scan: nothing new to drop (and a scan would
	 * fault the dropped pages in again to read their slots) */
	if (!conn_slots_trimmable(s))
		return 0;
	s->given = false;
	for (uint32_t i = 0; i < s->used;) {
		uint32_t j = i;
		uintptr_t a, b;

		while (j < s->used && free_slot(p + j * sz))
			j++;
		if (j == i) {
			i++;
			continue;
		}
		/* [i, j) free: the pages wholly inside go */
		a = ((uintptr_t)p + i * sz + page - 1) & ~(page - 1);
		b = ((uintptr_t)p + j * sz) & ~(page - 1);
		if (b > a) {
			uint32_t k0 = (uint32_t)((a - (uintptr_t)p) / sz);

			for (uint32_t k = k0; forget && k < j && (uintptr_t)p + k * sz < b; k++)
				forget(p + k * sz);
			madvise((void *)a, b - a, MADV_DONTNEED);
			dropped += (b - a) / page;
		}
		i = j;
	}
	return dropped;
}
