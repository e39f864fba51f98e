/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * spans: the Zipkin reporter, off the request path. Each worker owns a bounded
 * single-producer/single-consumer queue of span records (common/zipkin.h): it
 * fills a slot in place and publishes it with one release store, never taking a
 * lock or making a system call. One sender thread drains the queues, batches up
 * to SPANS_BATCH spans or SPANS_FLUSH_MS worth, and POSTs each batch as a JSON
 * ListOfSpans to --zipkin-url with short timeouts (connect SPANS_CONNECT_MS, each
 * read/write SPANS_IO_MS, one connection per batch).
 *
 * A slow or dead collector costs no request anything: while the sender waits the
 * queues fill, and a worker whose queue is full drops the span (counted). A batch
 * the collector did not take (no connection, timeout, non-2xx) is dropped too,
 * counted apart. The counters are exported on the admin listener.
 */
#ifndef RM_SPANS_H
#define RM_SPANS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/zipkin.h"

#define SPANS_QUEUE 512 /* spans per worker queue (power of two) */
#define SPANS_BATCH 100
#define SPANS_FLUSH_MS 1000
#define SPANS_CONNECT_MS 1000
#define SPANS_IO_MS 2000

struct spans_q {
	struct zipkin_span *ring; /* SPANS_QUEUE records */
	/* head: written by the worker only, tail: by the sender only; each on its line */
	uint32_t head __attribute__((aligned(64)));
	uint64_t dropped_full; /* worker-written: spans dropped on a full queue */
	uint32_t tail __attribute__((aligned(64)));
};

struct spans {
	struct zipkin_url url;
	unsigned int n_q;
	struct spans_q *q; /* one per worker */
	pthread_t thread;
	bool running;
	int stop_fd;	       /* eventfd: written by spans_stop */
	uint64_t sent;	       /* spans the collector accepted (sender-written, atomic) */
	uint64_t dropped_send; /* spans of batches it did not (sender-written, atomic) */
	uint64_t posts_failed; /* batches it did not take */
	char last_err[160];    /* why the last post failed (sender thread only) */
};

struct spans_counts {
	uint64_t sent;
	uint64_t dropped_full; /* queue full */
	uint64_t dropped_send; /* collector down, slow or refusing */
};

/* Queues for n_workers; 0 or -errno with err filled. */
int spans_init(struct spans *s, const struct zipkin_url *u, unsigned int n_workers, char *err,
	       size_t errlen);
int spans_start(struct spans *s, char *err, size_t errlen);
/* Stop the sender (a last flush of what is queued, within the timeouts) and free. */
void spans_fini(struct spans *s);

/* The worker's next free record (zeroed), or NULL when its queue is full (the span
 * is counted as dropped). spans_commit() publishes it. Worker thread only. */
struct zipkin_span *spans_slot(struct spans *s, unsigned int worker);
void spans_commit(struct spans *s, unsigned int worker);

/* Any thread: the counters, summed over the queues. */
void spans_get_counts(const struct spans *s, struct spans_counts *c);

/* The sender's POST of one encoded body (also used by the tests): 0 when the
 * collector answered 2xx, else -errno with err filled. */
int spans_post(const struct zipkin_url *u, const char *body, size_t len, char *err, size_t errlen);

#endif /* RM_SPANS_H */
