/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ringmeshd's admin listener (admin.h). Blocking sockets on one thread: scrapes come
 * every few seconds from one or two Prometheus servers and the kubelet's probe, so a
 * loop of poll/accept/read/write is all it takes, and it shares nothing with the
 * io_uring workers but the maps, which it only reads.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "common/prom_src.h"
#include "common/util.h"
#include "ringmeshd/admin.h"
#include "ringmeshd/spans.h"

#define HEAD_MAX 4096

static void admin_init(struct admin *a, const char *pin_dir, const char *tag)
{
	memset(a, 0, sizeof(*a));
	a->lfd = a->stop_fd = -1;
	a->pin_dir = pin_dir;
	a->tag = tag;
}

int admin_adopt(struct admin *a, int fd, const char *pin_dir, const char *tag, char *err,
		size_t errlen)
{
	int r;

	admin_init(a, pin_dir, tag);
	a->lfd = fd;
	a->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (a->stop_fd >= 0)
		return 0;
	r = -errno;
	snprintf(err, errlen, "eventfd: %s", strerror(-r));
	close(fd);
	a->lfd = -1;
	return r;
}

int admin_listen(struct admin *a, const struct sockaddr_in *addr, const char *pin_dir,
		 const char *tag, char *err, size_t errlen)
{
	char as[INET_ADDRSTRLEN];
	int one = 1, r;

	admin_init(a, pin_dir, tag);
	inet_ntop(AF_INET, &addr->sin_addr, as, sizeof(as));
	a->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->lfd < 0)
		goto fail;
	setsockopt(a->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(a->lfd, (const struct sockaddr *)addr, sizeof(*addr)) || listen(a->lfd, 64))
		goto fail;
	a->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (a->stop_fd < 0)
		goto fail;
	return 0;
fail:
	r = -errno;
	snprintf(err, errlen, "--metrics-listen %s:%u: %s", as, ntohs(addr->sin_port),
		 strerror(-r));
	if (a->lfd >= 0)
		close(a->lfd);
	a->lfd = -1;
	return r;
}

void admin_set_ready(struct admin *a, bool ready)
{
	__atomic_store_n(&a->ready, ready, __ATOMIC_RELEASE);
}

static void put_text(struct prom_buf *b, const char *s)
{
	size_t n = strlen(s);
	char *p = malloc(n + 1);

	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	memcpy(p, s, n + 1);
	free(b->p);
	b->p = p;
	b->len = n;
	b->cap = n + 1;
}

/* Append to the scrape; the first failure latches in b->err. */
static void append(struct prom_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	for (int tries = 0; tries < 2; tries++) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = -EINVAL;
			return;
		}
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		char *p = realloc(b->p, b->len + (size_t)n + 4096);

		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = b->len + (size_t)n + 4096;
	}
}

static void spans_metrics(const struct admin *a, struct prom_buf *b)
{
	struct spans_counts c = {0};

	if (a->spans)
		spans_get_counts(a->spans, &c);
	append(b,
	       "# HELP ringmesh_trace_spans_sent_total Zipkin spans the collector accepted.\n"
	       "# TYPE ringmesh_trace_spans_sent_total counter\n"
	       "ringmesh_trace_spans_sent_total %llu\n",
	       (unsigned long long)c.sent);
	append(b,
	       "# HELP ringmesh_trace_spans_dropped_total Zipkin spans not delivered: "
	       "reason=queue_full (the sender was behind), reason=send_failed (the collector "
	       "was down, slow or refused the batch).\n"
	       "# TYPE ringmesh_trace_spans_dropped_total counter\n"
	       "ringmesh_trace_spans_dropped_total{reason=\"queue_full\"} %llu\n"
	       "ringmesh_trace_spans_dropped_total{reason=\"send_failed\"} %llu\n",
	       (unsigned long long)c.dropped_full, (unsigned long long)c.dropped_send);
}

static bool path_is(const char *p, size_t n, const char *want)
{
	size_t w = strlen(want);

	/* a query string is allowed (Prometheus sends none, but people type them) */
	return n >= w && !memcmp(p, want, w) && (n == w || p[w] == '?');
}

void admin_answer(struct admin *a, const char *head, size_t len, int *status, const char **ctype,
		  struct prom_buf *b)
{
	const char *sp1 = memchr(head, ' ', len), *sp2;
	const char *path;
	size_t plen;
	bool get, headm;
	char err[512];

	*ctype = "text/plain; charset=utf-8";
	if (!sp1 || !(sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - head)))) {
		*status = 400;
		put_text(b, "bad request\n");
		return;
	}
	get = sp1 - head == 3 && !memcmp(head, "GET", 3);
	headm = sp1 - head == 4 && !memcmp(head, "HEAD", 4);
	path = sp1 + 1;
	plen = (size_t)(sp2 - path);
	if (!get && !headm) {
		*status = 405;
		put_text(b, "only GET\n");
		return;
	}
	if (path_is(path, plen, "/stats/prometheus") || path_is(path, plen, "/metrics")) {
		if (prom_scrape(a->pin_dir, a->tag, b, err, sizeof(err))) {
			*status = 500;
			strncat(err, "\n", sizeof(err) - strlen(err) - 1);
			put_text(b, err);
			return;
		}
		spans_metrics(a, b);
		if (b->err) {
			*status = 500;
			put_text(b, "out of memory\n");
			return;
		}
		*status = 200;
		*ctype = PROM_CONTENT_TYPE;
		return;
	}
	if (path_is(path, plen, "/healthz/ready")) {
		bool ok = __atomic_load_n(&a->ready, __ATOMIC_ACQUIRE);

		*status = ok ? 200 : 503;
		put_text(b, ok ? "ready\n" : "not ready\n");
		return;
	}
	*status = 404;
	put_text(b, "not found: /stats/prometheus, /metrics, /healthz/ready\n");
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read a request head ("\r\n\r\n") within the deadline; its length, or -1. */
static ssize_t read_head(struct admin *a, int fd, char *buf, size_t cap)
{
	uint64_t deadline = (mono_ns() / 1000000) + ADMIN_READ_TIMEOUT_MS;
	size_t len = 0;

	while (len < cap - 1) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = a->stop_fd, .events = POLLIN}};
		uint64_t now = (mono_ns() / 1000000);
		ssize_t n;

		if (now >= deadline || poll(p, 2, (int)(deadline - now)) <= 0 || p[1].revents)
			return -1;
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return (ssize_t)len;
	}
	return -1;
}

static void serve_one(struct admin *a, int fd)
{
	char head[HEAD_MAX], hdr[256];
	struct prom_buf b = {0};
	const char *ctype;
	ssize_t n = read_head(a, fd, head, sizeof(head));
	int status, hl;

	if (n < 0)
		return;
	admin_answer(a, head, (size_t)n, &status, &ctype, &b);
	if (b.err) {
		status = 500;
		prom_buf_free(&b);
		put_text(&b, "out of memory\n");
	}
	hl = snprintf(hdr, sizeof(hdr),
		      "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
		      "connection: close\r\n\r\n",
		      status, reason(status), ctype, b.len);
	if (!write_all(fd, hdr, (size_t)hl) && strncmp(head, "HEAD ", 5))
		write_all(fd, b.p ? b.p : "", b.len);
	prom_buf_free(&b);
	__atomic_fetch_add(&a->served, 1, __ATOMIC_RELAXED);
}

static void *admin_main(void *arg)
{
	struct admin *a = arg;
	struct timeval tv = {.tv_sec = ADMIN_READ_TIMEOUT_MS / 1000};

	for (;;) {
		struct pollfd p[2] = {{.fd = a->lfd, .events = POLLIN},
				      {.fd = a->stop_fd, .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* a client that stops reading cannot hold the thread forever */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		serve_one(a, fd);
		close(fd);
	}
	return NULL;
}

int admin_start(struct admin *a, char *err, size_t errlen)
{
	sigset_t all, old;
	int r;

	/* signals stay with main's signalfd */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&a->thread, NULL, admin_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		snprintf(err, errlen, "admin thread: %s", strerror(r));
		return -r;
	}
	pthread_setname_np(a->thread, "rm-admin");
	a->running = true;
	return 0;
}

void admin_stop(struct admin *a)
{
	uint64_t one = 1;

	if (a->running) {
		if (write(a->stop_fd, &one, sizeof(one)) != sizeof(one))
			pthread_cancel(a->thread);
		pthread_join(a->thread, NULL);
		a->running = false;
	}
	if (a->lfd >= 0)
		close(a->lfd);
	if (a->stop_fd >= 0)
		close(a->stop_fd);
	a->lfd = a->stop_fd = -1;
}
