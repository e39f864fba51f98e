/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* handover: the rendezvous of two ringmeshd on one pin dir (see handover.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ringmeshd/handover.h"

#define HO_MAGIC 0x4f484d52u /* "RMHO" */
#define HO_VERSION 1
#define HO_PREFIX "ringmeshd-handover:"

/* "\0ringmeshd-handover:<pin dir>", or a hash of a pin dir too long for sun_path. */
static socklen_t ho_name(const char *pin_dir, struct sockaddr_un *sa)
{
	size_t cap = sizeof(sa->sun_path) - 1, n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = (size_t)snprintf(sa->sun_path + 1, cap, HO_PREFIX "%s", pin_dir);
	if (n >= cap) {
		uint64_t h = 14695981039346656037ull;

		for (const char *p = pin_dir; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		n = (size_t)snprintf(sa->sun_path + 1, cap, HO_PREFIX "#%016llx",
				     (unsigned long long)h);
	}
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

int ho_listen(const char *pin_dir)
{
	struct sockaddr_un sa;
	socklen_t len = ho_name(pin_dir, &sa);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, len) || listen(fd, 4)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int ho_connect(const char *pin_dir)
{
	struct sockaddr_un sa;
	socklen_t len = ho_name(pin_dir, &sa);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, len)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int ho_accept(int lfd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return -errno;
	/* Abstract names are open to anyone in the netns: only our own uid may take
	 * the listeners (root in a pod, as we are). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) || cr.uid != geteuid()) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

int ho_send(int fd, enum ho_type type, const int *fds, unsigned int n, unsigned int n_proxy,
	    int has_admin)
{
	struct ho_msg m = {
	    .magic = HO_MAGIC,
	    .version = HO_VERSION,
	    .type = (uint16_t)type,
	    .pid = (uint32_t)getpid(),
	    .n_fds = n,
	    .n_proxy = n_proxy,
	    .has_admin = has_admin ? 1 : 0,
	};
	union {
		char buf[CMSG_SPACE(sizeof(int) * HO_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (n > HO_MAX_FDS)
		return -E2BIG;
	if (n) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	for (;;) {
		if (sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(m))
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int ho_recv(int fd, struct ho_msg *m, int *fds, unsigned int max, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * HO_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct pollfd p = {.fd = fd, .events = POLLIN};
	unsigned int got = 0;
	ssize_t r;

	for (;;) {
		int n = poll(&p, 1, timeout_ms);

		if (n > 0)
			break;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
	do
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int x;

			memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < max)
				fds[got++] = x;
			else
				close(x);
		}
	}
	if (r == 0)
		return -EPIPE;
	if (r != (ssize_t)sizeof(*m) || m->magic != HO_MAGIC || m->version != HO_VERSION ||
	    (mh.msg_flags & MSG_CTRUNC)) {
		for (unsigned int i = 0; i < got; i++)
			close(fds[i]);
		return -EPROTO;
	}
	m->n_fds = got;
	return 0;
}

/* The lock's directory: not the pin dir itself, whose flock serialises the CLI's
 * configuration writers (cfg_store); `ringmesh map list` skips it (not a map). */
static int lock_path(const char *pin_dir, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/" HO_LOCK_NAME, pin_dir);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int ho_lock(const char *pin_dir, int op)
{
	char path[PATH_MAX];
	int rc = lock_path(pin_dir, path, sizeof(path));

	if (rc)
		return rc;
	for (;;) {
		struct stat a, b;
		int fd;

		if ((mkdir(pin_dir, 0700) && errno != EEXIST) ||
		    (mkdir(path, 0700) && errno != EEXIST))
			return -errno;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		while ((rc = flock(fd, op)) && errno == EINTR)
			;
		if (rc) {
			rc = -errno;
			close(fd);
			return rc;
		}
		/* The holder may have removed it (a clean stop): lock the new one. */
		if (!fstat(fd, &a) && !stat(path, &b) && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			return fd;
		close(fd);
	}
}

void ho_lock_remove(const char *pin_dir)
{
	char path[PATH_MAX];

	if (!lock_path(pin_dir, path, sizeof(path)))
		rmdir(path);
}

int ho_relock(int fd, int op)
{
	int rc;

	while ((rc = flock(fd, op)) && errno == EINTR)
		;
	return rc ? -errno : 0;
}

void ho_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}
