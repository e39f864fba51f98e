/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * admin: ringmeshd's admin listener (--metrics-listen, default 0.0.0.0:15090), on a
 * thread of its own, off the request path: a scrape reads the pinned maps with
 * prom_scrape() (the same text `ringmesh stats --prometheus` prints) and never takes
 * anything a worker holds, so it can neither stall nor slow a request.
 *
 *   GET /stats/prometheus, GET /metrics   text exposition 0.0.4
 * The scrape also carries the process's own counters the maps do not hold (the span
 * reporter's sent and dropped spans).
 *
 *   GET /healthz/ready                    200 once admin_set_ready(true), else 503
 *
 * One connection at a time, HTTP/1.1 answered with Connection: close; a client that
 * sends no complete request head within ADMIN_READ_TIMEOUT_MS is dropped.
 */
#ifndef RM_ADMIN_H
#define RM_ADMIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>

#define ADMIN_READ_TIMEOUT_MS 2000

struct admin {
	int lfd;     /* listening socket */
	int stop_fd; /* eventfd: written by admin_stop */
	pthread_t thread;
	bool running;
	bool ready; /* atomic */
	const char *pin_dir;
	const char *tag;	   /* istio_build tag */
	unsigned long served;	   /* requests answered (atomic, for logs) */
	const struct spans *spans; /* Zipkin reporter, its counters exported; NULL: zeros */
};

/* Bind and listen (so a taken port fails the daemon's start, as Envoy's does). 0 or
 * -errno with err filled. */
int admin_listen(struct admin *a, const struct sockaddr_in *addr, const char *pin_dir,
		 const char *tag, char *err, size_t errlen);
/* The same with a listening socket handed over by a predecessor (handover.h), owned
 * from here on. */
int admin_adopt(struct admin *a, int fd, const char *pin_dir, const char *tag, char *err,
		size_t errlen);
/* Start serving (readiness 503 until admin_set_ready). */
int admin_start(struct admin *a, char *err, size_t errlen);
void admin_set_ready(struct admin *a, bool ready);
/* Stop the thread and close the sockets; safe on a never-started admin. */
void admin_stop(struct admin *a);

/* The answer to one request head (pure: used by the thread and the tests). Fills
 * *status, *ctype and the body into b (via prom_scrape for the metrics paths). */
struct prom_buf;
struct spans;
void admin_answer(struct admin *a, const char *head, size_t len, int *status, const char **ctype,
		  struct prom_buf *b);

#endif /* RM_ADMIN_H */
