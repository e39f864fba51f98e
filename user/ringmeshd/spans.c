/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The Zipkin reporter (see spans.h). The sender wakes every SPANS_POLL_MS, moves
 * what the queues hold into its batch and posts when the batch is full or the
 * oldest span in it waited SPANS_FLUSH_MS. Names are resolved per post, so a
 * collector that moves (a Service's new address) is followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "common/util.h"
#include "ringmeshd/spans.h"

#define SPANS_POLL_MS 100

int spans_init(struct spans *s, const struct zipkin_url *u, unsigned int n_workers, char *err,
	       size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->stop_fd = -1;
	s->url = *u;
	s->q = calloc(n_workers, sizeof(*s->q));
	if (!s->q)
		return errf(err, errlen, -ENOMEM, "span queues: out of memory");
	s->n_q = n_workers;
	for (unsigned int i = 0; i < n_workers; i++) {
		s->q[i].ring = calloc(SPANS_QUEUE, sizeof(struct zipkin_span));
		if (!s->q[i].ring) {
			spans_fini(s);
			return errf(err, errlen, -ENOMEM, "span queues: out of memory");
		}
	}
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_fd < 0) {
		int r = -errno;

		spans_fini(s);
		return errf(err, errlen, r, "span sender: eventfd: %s", strerror(-r));
	}
	return 0;
}

struct zipkin_span *spans_slot(struct spans *s, unsigned int worker)
{
	struct spans_q *q = &s->q[worker];
	uint32_t tail = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
	struct zipkin_span *sp;

	if (q->head - tail >= SPANS_QUEUE) {
		__atomic_store_n(&q->dropped_full, q->dropped_full + 1, __ATOMIC_RELAXED);
		return NULL;
	}
	sp = &q->ring[q->head & (SPANS_QUEUE - 1)];
	memset(sp, 0, sizeof(*sp));
	return sp;
}

void spans_commit(struct spans *s, unsigned int worker)
{
	struct spans_q *q = &s->q[worker];

	__atomic_store_n(&q->head, q->head + 1, __ATOMIC_RELEASE);
}

void spans_get_counts(const struct spans *s, struct spans_counts *c)
{
	memset(c, 0, sizeof(*c));
	for (unsigned int i = 0; i < s->n_q; i++)
		c->dropped_full += __atomic_load_n(&s->q[i].dropped_full, __ATOMIC_RELAXED);
	c->sent = __atomic_load_n(&s->sent, __ATOMIC_RELAXED);
	c->dropped_send = __atomic_load_n(&s->dropped_send, __ATOMIC_RELAXED);
}

/* ---- HTTP ---- */

static int connect_to(const struct zipkin_url *u, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	struct timeval tv = {SPANS_IO_MS / 1000, (SPANS_IO_MS % 1000) * 1000};
	char port[8];
	int fd, r, soerr = 0, one = 1;
	socklen_t sl = sizeof(soerr);
	struct pollfd p;

	snprintf(port, sizeof(port), "%u", u->port);
	r = getaddrinfo(u->host, port, &hints, &ai);
	if (r)
		return errf(err, errlen, -EHOSTUNREACH, "resolve %s: %s", u->host, gai_strerror(r));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		freeaddrinfo(ai);
		return errf(err, errlen, r, "socket: %s", strerror(-r));
	}
	r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (r && errno != EINPROGRESS) {
		r = -errno;
		goto fail;
	}
	if (r) {
		p.fd = fd;
		p.events = POLLOUT;
		r = poll(&p, 1, SPANS_CONNECT_MS);
		if (r == 0) {
			r = -ETIMEDOUT;
			goto fail;
		}
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
			r = soerr ? -soerr : -errno;
			goto fail;
		}
	}
	/* blocking from here, each read and write bounded by SPANS_IO_MS */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return errf(err, errlen, r, "connect %s:%u: %s", u->host, u->port, strerror(-r));
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT
			       : w < 0						  ? -errno
										  : -EPIPE;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int spans_post(const struct zipkin_url *u, const char *body, size_t len, char *err, size_t errlen)
{
	char head[1024], resp[256];
	size_t got = 0;
	int fd, r, hl, status;

	hl = snprintf(head, sizeof(head),
		      "POST %s HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n"
		      "Content-Length: %zu\r\nConnection: close\r\nUser-Agent: ringmeshd\r\n\r\n",
		      u->path, u->host, u->port, len);
	if (hl < 0 || (size_t)hl >= sizeof(head))
		return errf(err, errlen, -ENAMETOOLONG, "request head too long");
	fd = connect_to(u, err, errlen);
	if (fd < 0)
		return fd;
	r = send_all(fd, head, (size_t)hl);
	if (!r)
		r = send_all(fd, body, len);
	if (r) {
		close(fd);
		return errf(err, errlen, r, "send to %s:%u: %s", u->host, u->port, strerror(-r));
	}
	/* the status line is all we need */
	while (got < sizeof(resp) - 1 && !memchr(resp, '\n', got)) {
		ssize_t n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT
			    : n < 0					       ? -errno
									       : -ECONNRESET;
			close(fd);
			return errf(err, errlen, r, "no answer from %s:%u: %s", u->host, u->port,
				    strerror(-r));
		}
		got += (size_t)n;
	}
	close(fd);
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
		return errf(err, errlen, -EPROTO, "%s:%u: not an HTTP response", u->host, u->port);
	if (status < 200 || status > 299)
		return errf(err, errlen, -EREMOTEIO, "%s:%u%s answered %d", u->host, u->port,
			    u->path, status);
	return 0;
}

/* ---- sender ---- */

static bool post_batch(struct spans *s, const struct zipkin_span *b, size_t n)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f;
	int r = -ENOMEM;

	if (!n)
		return true;
	f = open_memstream(&body, &len);
	if (f) {
		r = zipkin_encode(f, b, n);
		if (fclose(f))
			r = -ENOMEM;
	}
	if (!r)
		r = spans_post(&s->url, body, len, s->last_err, sizeof(s->last_err));
	free(body);
	if (r) {
		__atomic_fetch_add(&s->dropped_send, n, __ATOMIC_RELAXED);
		__atomic_fetch_add(&s->posts_failed, 1, __ATOMIC_RELAXED);
		return false;
	}
	__atomic_fetch_add(&s->sent, n, __ATOMIC_RELAXED);
	return true;
}

/* Move queued spans into the batch (up to SPANS_BATCH); how many it holds now. */
static size_t drain(struct spans *s, struct zipkin_span *b, size_t n)
{
	for (unsigned int i = 0; i < s->n_q && n < SPANS_BATCH; i++) {
		struct spans_q *q = &s->q[i];
		uint32_t head = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);

		while (q->tail != head && n < SPANS_BATCH) {
			b[n++] = q->ring[q->tail & (SPANS_QUEUE - 1)];
			__atomic_store_n(&q->tail, q->tail + 1, __ATOMIC_RELEASE);
		}
	}
	return n;
}

static void *sender_main(void *arg)
{
	struct spans *s = arg;
	struct zipkin_span *b = calloc(SPANS_BATCH, sizeof(*b));
	uint64_t first = 0; /* when the batch's oldest span was taken */
	size_t n = 0;
	bool stop = false;
	/* at stop: one last post, only to a collector whose last post went through, so a
	 * dead or hung one delays the exit by at most the post under way */
	int last_posts = 1;
	bool ok = true;

	if (!b)
		return NULL;
	while (!stop) {
		struct pollfd p = {.fd = s->stop_fd, .events = POLLIN};

		if (poll(&p, 1, SPANS_POLL_MS) > 0)
			stop = true;
		for (;;) {
			size_t before = n;

			n = drain(s, b, n);
			if (n && !before)
				first = mono_ns();
			if (n < SPANS_BATCH &&
			    !(n && (stop || mono_ns() - first >= SPANS_FLUSH_MS * 1000000ull)))
				break;
			/* a backlog of full batches is posted back to back: look for a stop
			 * between them, or a hung collector would hold the exit */
			if (!stop) {
				struct pollfd p2 = {.fd = s->stop_fd, .events = POLLIN};

				stop = poll(&p2, 1, 0) > 0;
			}
			if (stop && (!ok || !last_posts--))
				__atomic_fetch_add(&s->dropped_send, n, __ATOMIC_RELAXED);
			else
				ok = post_batch(s, b, n);
			n = 0;
		}
	}
	free(b);
	return NULL;
}

int spans_start(struct spans *s, char *err, size_t errlen)
{
	int r = pthread_create(&s->thread, NULL, sender_main, s);

	if (r)
		return errf(err, errlen, -r, "span sender: %s", strerror(r));
	pthread_setname_np(s->thread, "rm-spans");
	s->running = true;
	return 0;
}

void spans_fini(struct spans *s)
{
	uint64_t one = 1;

	if (s->running) {
		if (write(s->stop_fd, &one, sizeof(one)) != sizeof(one))
			pthread_cancel(s->thread);
		pthread_join(s->thread, NULL);
		s->running = false;
	}
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	s->stop_fd = -1;
	for (unsigned int i = 0; s->q && i < s->n_q; i++)
		free(s->q[i].ring);
	free(s->q);
	s->q = NULL;
	s->n_q = 0;
}
