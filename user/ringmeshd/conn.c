/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers l4 and l7 share (conn.h). */
#include <errno.h>
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

void conn_slots_trim(void *base, size_t sz, size_t st, size_t nx, uint32_t live, uint32_t *used,
		     uint32_t *free_head, void (*forget)(void *slot))
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a, b;
	uint32_t old = *used, top = old;
	char *p = base;

	if (old < 64 || live >= old / 2)
		return;
	while (top && !*(const int *)(void *)(p + (top - 1) * sz + st))
		top--;
	*free_head = CONN_SLOT_NONE;
	for (uint32_t i = top; i-- > 0;) {
		if (!*(const int *)(void *)(p + i * sz + st)) {
			*(uint32_t *)(void *)(p + i * sz + nx) = *free_head;
			*free_head = i;
		}
	}
	for (uint32_t i = top; forget && i < old; i++)
		forget(p + i * sz);
	a = ((uintptr_t)p + top * sz + page - 1) & ~(page - 1);
	b = ((uintptr_t)p + old * sz) & ~(page - 1);
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
	*used = top;
}
