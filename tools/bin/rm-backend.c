/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * rm-backend - test backend for ringmesh tests and benchmarks (in the spirit of fortio's
 * server and httpbin). One process, one epoll loop, many keep-alive connections.
 * Modes: http (JSON echo of the request with delay/status/close/size controls), echo (raw
 * TCP echo), whoami (tells the client which source address it saw, then echoes), sink
 * (counts bytes). It owns the connection/request counters tests use to prove connection
 * limits and keep-alive reuse, exposed at GET /__stats and in --stats-file.
 */
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "tool_common.h"
#include "backend_http.h"

#define MAX_LISTEN 16
#define IN_MAX (256 * 1024)   /* buffered input (pipelined requests) before we stop reading */
#define OUT_MAX (1024 * 1024) /* queued output before we stop producing */
#define DRAIN_NS (5ull * 1000000000ull)
#define STATS_MIN_NS (5ull * 1000000ull)
#define STATS_MAX_NS (100ull * 1000000ull)

enum { K_LISTEN = 1, K_SIGNAL, K_CONN };
enum mode { M_HTTP, M_ECHO, M_WHOAMI, M_SINK };
static const char *const mode_names[] = {"http", "echo", "whoami", "sink"};

enum hstate { H_HEAD, H_BODY, H_DELAY, H_RESP, H_DRAIN };

struct listener {
	int kind;
	int fd;
	char addr[80];
};

struct conn {
	int kind;
	int fd;
	uint64_t id;
	bool dead;
	bool rd_eof;
	bool close_after_flush; /* raw modes: close once output drained */
	uint32_t ev;		/* current epoll interest */
	char peer[80];
	char local[80];
	struct tc_buf in;
	struct tc_buf out;
	uint64_t nreq; /* requests seen on this connection (not admin) */
	uint64_t nadmin;
	bool uncounted; /* only /__stats so far: kept out of the connection counters */
	uint64_t sink_bytes;
	enum hstate hs;
	struct bh_req req;
	bool inflight;		    /* counted in st.inflight_cur */
	uint64_t deadline;	    /* H_DELAY: respond; H_DRAIN: give up */
	struct conn *tprev, *tnext; /* timer list membership */
	struct conn *next_dead;
};

static struct {
	enum mode mode;
	const char *name;
	const char *version;
	uint64_t max_conns;
	const char *stats_file;
	const char *ready_file;
	struct listener ls[MAX_LISTEN];
	int nls;
	int ep;
} cfg;

static struct {
	uint64_t conns_total, conns_cur, conns_max, conns_rejected;
	uint64_t inflight_cur, inflight_max, requests_total, bad_requests;
	uint64_t bytes_in, bytes_out;
	uint64_t rpc_exact[65]; /* requests-per-connection histogram, exact up to 64 */
	uint64_t rpc_pow2[64];	/* then (2^k, 2^(k+1)] */
	uint64_t rpc_max;
	uint64_t seq; /* bumps on every counter change */
	uint64_t written_seq, written_ns;
} st;

static uint64_t next_conn_id = 1;
static struct conn timers; /* sentinel of the timer list */
static struct conn *dead_list;
static bool stopping;

static void changed(void)
{
	st.seq++;
}

static void fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rm-backend: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* ---- stats ---- */

static void rpc_record(uint64_t n)
{
	if (n <= 64)
		st.rpc_exact[n]++;
	else
		st.rpc_pow2[63 - __builtin_clzll(n - 1)]++;
	if (n > st.rpc_max)
		st.rpc_max = n;
}

static int stats_json(struct tc_buf *b)
{
	bool first = true;

	tc_buf_printf(b, "{\"name\":\"");
	tc_buf_json_str(b, cfg.name, strlen(cfg.name));
	tc_buf_printf(b, "\",\"version\":\"");
	tc_buf_json_str(b, cfg.version, strlen(cfg.version));
	tc_buf_printf(b, "\",\"mode\":\"%s\",\"pid\":%d,\"listen\":[", mode_names[cfg.mode],
		      (int)getpid());
	for (int i = 0; i < cfg.nls; i++)
		tc_buf_printf(b, "%s\"%s\"", i ? "," : "", cfg.ls[i].addr);
	tc_buf_printf(b,
		      "],\"conns_total\":%lu,\"conns_current\":%lu,\"conns_max\":%lu,"
		      "\"conns_rejected\":%lu,\"inflight_current\":%lu,\"inflight_max\":%lu,"
		      "\"requests_total\":%lu,\"bad_requests\":%lu,\"bytes_in\":%lu,"
		      "\"bytes_out\":%lu,\"reqs_per_conn_max\":%lu,\"reqs_per_conn\":{",
		      st.conns_total, st.conns_cur, st.conns_max, st.conns_rejected,
		      st.inflight_cur, st.inflight_max, st.requests_total, st.bad_requests,
		      st.bytes_in, st.bytes_out, st.rpc_max);
	for (int i = 0; i <= 64; i++) {
		if (!st.rpc_exact[i])
			continue;
		tc_buf_printf(b, "%s\"%d\":%lu", first ? "" : ",", i, st.rpc_exact[i]);
		first = false;
	}
	for (int k = 6; k < 64; k++) {
		if (!st.rpc_pow2[k])
			continue;
		tc_buf_printf(b, "%s\"%llu-%llu\":%lu", first ? "" : ",", (1ull << k) + 1,
			      k == 63 ? ~0ull : 1ull << (k + 1), st.rpc_pow2[k]);
		first = false;
	}
	return tc_buf_printf(b, "},\"seq\":%lu}\n", st.seq);
}

static void stats_reset(void)
{
	st.conns_total = 0;
	st.conns_max = st.conns_cur;
	st.conns_rejected = 0;
	st.inflight_max = st.inflight_cur;
	st.requests_total = st.bad_requests = st.bytes_in = st.bytes_out = 0;
	memset(st.rpc_exact, 0, sizeof(st.rpc_exact));
	memset(st.rpc_pow2, 0, sizeof(st.rpc_pow2));
	st.rpc_max = 0;
	changed();
}

/*
 * The stats file is written by a thread of its own, write-then-rename so that a reader
 * never sees a torn file. On a busy ext4 disk an fclose or a rename over the old file
 * blocks for up to most of a second (seen: 877 ms while a test loaded the machine);
 * written from the event loop, that stalled every connection and fired x-rm-delay
 * timers that late, which a test then read as the proxy starving a request. The loop
 * only formats the snapshot and hands it over; the writer always writes the newest
 * one (snapshots that arrive while it writes replace each other).
 */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct tc_buf next; /* newest snapshot not yet written (under mu) */
	bool have, stop, started;
	pthread_t th;
} sw = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void stats_file_write(struct tc_buf *b)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", cfg.stats_file, (int)getpid());
	f = fopen(tmp, "w");
	if (!f || fwrite(tc_buf_data(b), 1, b->len, f) != b->len || fclose(f)) {
		fprintf(stderr, "rm-backend: cannot write %s: %s\n", tmp, strerror(errno));
		if (f)
			unlink(tmp);
	} else if (rename(tmp, cfg.stats_file) < 0) {
		fprintf(stderr, "rm-backend: rename %s: %s\n", tmp, strerror(errno));
		unlink(tmp);
	}
}

static void *stats_writer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&sw.mu);
	for (;;) {
		struct tc_buf b;

		while (!sw.have && !sw.stop)
			pthread_cond_wait(&sw.cv, &sw.mu);
		if (!sw.have)
			break; /* stopping, and the last snapshot is written */
		b = sw.next;
		memset(&sw.next, 0, sizeof(sw.next));
		sw.have = false;
		pthread_mutex_unlock(&sw.mu);
		stats_file_write(&b);
		tc_buf_free(&b);
		pthread_mutex_lock(&sw.mu);
	}
	pthread_mutex_unlock(&sw.mu);
	return NULL;
}

static void stats_write(uint64_t now)
{
	struct tc_buf b = {0};

	stats_json(&b);
	if (!sw.started) {
		/* created from the loop: signals are blocked (signalfd) and stay so in it */
		if (pthread_create(&sw.th, NULL, stats_writer, NULL))
			fatal("stats writer thread: %s", strerror(errno));
		sw.started = true;
	}
	pthread_mutex_lock(&sw.mu);
	tc_buf_free(&sw.next);
	sw.next = b;
	sw.have = true;
	pthread_cond_signal(&sw.cv);
	pthread_mutex_unlock(&sw.mu);
	st.written_seq = st.seq;
	st.written_ns = now;
}

/* At exit: the final snapshot is on disk before the process ends. */
static void stats_write_final(uint64_t now)
{
	stats_write(now);
	pthread_mutex_lock(&sw.mu);
	sw.stop = true;
	pthread_cond_signal(&sw.cv);
	pthread_mutex_unlock(&sw.mu);
	pthread_join(sw.th, NULL);
}

/* ---- connection plumbing ---- */

static void timer_set(struct conn *c, uint64_t deadline)
{
	c->deadline = deadline;
	if (c->tnext)
		return;
	c->tnext = timers.tnext;
	c->tprev = &timers;
	timers.tnext->tprev = c;
	timers.tnext = c;
}

static void timer_clear(struct conn *c)
{
	if (!c->tnext)
		return;
	c->tprev->tnext = c->tnext;
	c->tnext->tprev = c->tprev;
	c->tnext = c->tprev = NULL;
}

static void inflight_end(struct conn *c)
{
	if (!c->inflight)
		return;
	c->inflight = false;
	st.inflight_cur--;
	changed();
}

static void conn_close(struct conn *c, bool reset)
{
	if (c->dead)
		return;
	if (reset) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	epoll_ctl(cfg.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->dead = true;
	timer_clear(c);
	inflight_end(c);
	if (!c->uncounted) {
		if (cfg.mode == M_HTTP)
			rpc_record(c->nreq);
		st.conns_cur--;
	}
	changed();
	c->next_dead = dead_list;
	dead_list = c;
}

static void conn_free_dead(void)
{
	while (dead_list) {
		struct conn *c = dead_list;

		dead_list = c->next_dead;
		tc_buf_free(&c->in);
		tc_buf_free(&c->out);
		bh_req_free(&c->req);
		free(c);
	}
}

static bool want_read(struct conn *c)
{
	if (c->rd_eof || c->close_after_flush)
		return false;
	if (cfg.mode != M_HTTP)
		return cfg.mode == M_SINK || c->out.len < OUT_MAX;
	if (c->hs == H_BODY && c->req.echo)
		return c->out.len < OUT_MAX && c->in.len < IN_MAX;
	return c->in.len < IN_MAX || c->hs == H_DRAIN;
}

static void conn_update_events(struct conn *c)
{
	uint32_t ev = (want_read(c) ? EPOLLIN : 0) | (c->out.len ? EPOLLOUT : 0);
	struct epoll_event e = {.events = ev, .data.ptr = c};

	if (c->dead || ev == c->ev)
		return;
	if (epoll_ctl(cfg.ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->ev = ev;
}

/* returns -1 when the connection died */
static int conn_flush(struct conn *c)
{
	while (c->out.len) {
		ssize_t n = send(c->fd, tc_buf_data(&c->out), c->out.len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_close(c, false);
			return -1;
		}
		st.bytes_out += n;
		tc_buf_consume(&c->out, n);
		changed();
	}
	return 0;
}

/* returns bytes read, 0 at EOF (sets rd_eof), -1 when nothing now or the conn died */
static ssize_t conn_read(struct conn *c, char *dst, size_t cap)
{
	ssize_t n = recv(c->fd, dst, cap, 0);

	if (n > 0) {
		st.bytes_in += n;
		changed();
		return n;
	}
	if (n == 0) {
		c->rd_eof = true;
		return 0;
	}
	if (errno != EAGAIN && errno != EINTR)
		conn_close(c, false);
	return -1;
}

/* ---- HTTP mode ---- */

static void http_queue_simple(struct conn *c, int status, const char *msg)
{
	struct tc_buf body = {0};

	tc_buf_printf(&body, "{\"error\":\"");
	tc_buf_json_str(&body, msg, strlen(msg));
	tc_buf_printf(&body, "\"}\n");
	tc_buf_printf(&c->out,
		      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		      "x-backend-name: %s\r\nx-backend-version: %s\r\nConnection: close\r\n\r\n",
		      status, bh_reason(status), body.len, cfg.name, cfg.version);
	tc_buf_append(&c->out, tc_buf_data(&body), body.len);
	tc_buf_free(&body);
}

static void http_queue_head(struct conn *c, int status, const char *ctype, const char *framing)
{
	struct bh_req *r = &c->req;

	tc_buf_printf(&c->out,
		      "HTTP/1.%d %d %s\r\nContent-Type: %s\r\n%s"
		      "x-backend-name: %s\r\nx-backend-version: %s\r\n%s\r\n",
		      r->http10 ? 0 : 1, status, bh_reason(status), ctype, framing, cfg.name,
		      cfg.version,
		      !r->keepalive ? "Connection: close\r\n"
		      : r->http10   ? "Connection: keep-alive\r\n"
				    : "");
}

static void http_respond(struct conn *c)
{
	struct bh_req *r = &c->req;
	struct tc_buf body = {0};
	char framing[64];
	bool nobody = r->status == 204 || r->status == 304;

	if (r->admin) {
		if (r->admin_reset)
			stats_reset();
		stats_json(&body);
	} else if (r->size >= 0) {
		r->gen_left = nobody || r->head_method ? 0 : (uint64_t)r->size;
		snprintf(framing, sizeof(framing), "Content-Length: %ld\r\n", nobody ? 0 : r->size);
		http_queue_head(c, r->status, "application/octet-stream", nobody ? "" : framing);
		c->hs = H_RESP;
		return;
	} else {
		bh_req_json(r, &body, cfg.name, cfg.version, c->peer, c->local, c->id, c->nreq);
	}
	if (nobody)
		framing[0] = '\0';
	else
		snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", body.len);
	http_queue_head(c, r->status, "application/json", framing);
	if (!nobody && !r->head_method)
		tc_buf_append(&c->out, tc_buf_data(&body), body.len);
	tc_buf_free(&body);
	c->hs = H_RESP;
}

/* the request (and its body) is complete: answer now, later, or not at all */
static void http_dispatch(struct conn *c, uint64_t now)
{
	struct bh_req *r = &c->req;

	if (r->echo) {
		if (r->echo_chunked)
			tc_buf_append(&c->out, "0\r\n\r\n", 5);
		c->hs = H_RESP;
		return;
	}
	if (r->close_mode == BH_CLOSE_EARLY || r->close_mode == BH_CLOSE_RESET) {
		conn_close(c, r->close_mode == BH_CLOSE_RESET);
		return;
	}
	if (r->delay_ns) {
		c->hs = H_DELAY;
		timer_set(c, now + r->delay_ns);
		return;
	}
	http_respond(c);
}

static void http_start_echo(struct conn *c)
{
	struct bh_req *r = &c->req;
	char framing[64] = "Content-Length: 0\r\n";

	if (r->body_kind == BH_BODY_LENGTH) {
		snprintf(framing, sizeof(framing), "Content-Length: %lu\r\n", r->body_left);
	} else if (r->body_kind == BH_BODY_CHUNKED) {
		if (r->http10) {
			/* an HTTP/1.0 client cannot read chunked: delimit by close */
			r->keepalive = false;
			framing[0] = '\0';
		} else {
			r->echo_chunked = true;
			strcpy(framing, "Transfer-Encoding: chunked\r\n");
		}
	}
	http_queue_head(c, r->status, "application/octet-stream", framing);
}

static void http_advance(struct conn *c, uint64_t now)
{
	struct bh_req *r = &c->req;
	char err[128];
	int rc;

	while (!c->dead) {
		switch (c->hs) {
		case H_HEAD:
			if (!c->in.len) {
				if (c->rd_eof)
					conn_close(c, false);
				return;
			}
			rc = bh_parse_head(tc_buf_data(&c->in), c->in.len, r, err, sizeof(err));
			if (rc == 0) {
				if (c->in.len > BH_MAX_HEAD) {
					st.bad_requests++;
					http_queue_simple(c, 431, "request header too large");
					r->keepalive = false;
					c->hs = H_RESP;
					break;
				}
				if (c->rd_eof)
					conn_close(c, false);
				return;
			}
			if (rc < 0) {
				st.bad_requests++;
				changed();
				http_queue_simple(c, rc == -EPROTONOSUPPORT ? 505 : 400, err);
				r->keepalive = false;
				c->hs = H_RESP;
				break;
			}
			tc_buf_consume(&c->in, rc);
			if (r->admin) {
				/*
				 * A connection that only asks for stats must not disturb them, or
				 * a test's own probe would count as one more connection.
				 */
				if (!c->nadmin++ && !c->nreq) {
					c->uncounted = true;
					st.conns_total--;
					st.conns_cur--;
				}
			} else {
				if (c->uncounted) {
					c->uncounted = false;
					st.conns_total++;
					if (++st.conns_cur > st.conns_max)
						st.conns_max = st.conns_cur;
				}
				c->nreq++;
				st.requests_total++;
				c->inflight = true;
				if (++st.inflight_cur > st.inflight_max)
					st.inflight_max = st.inflight_cur;
			}
			changed();
			if (r->expect_continue && r->body_kind != BH_BODY_NONE && !r->http10)
				tc_buf_printf(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
			if (r->echo)
				http_start_echo(c);
			c->hs = H_BODY;
			break;
		case H_BODY: {
			size_t room =
			    r->echo ? (c->out.len < OUT_MAX ? OUT_MAX - c->out.len : 0) : SIZE_MAX;

			rc = bh_body_step(r, &c->in, r->echo ? &c->out : NULL, room);
			if (rc < 0) {
				st.bad_requests++;
				changed();
				conn_close(c, false);
				return;
			}
			if (rc == 0) {
				if (c->rd_eof)
					conn_close(c, false);
				return;
			}
			http_dispatch(c, now);
			break;
		}
		case H_DELAY:
			/*
			 * EOF while we hold the answer is how a proxy cancels a timed-out
			 * request: end it now so in-flight counts show the cancellation.
			 */
			if (c->rd_eof)
				conn_close(c, false);
			return;
		case H_RESP:
			while (r->gen_left && c->out.len < OUT_MAX) {
				size_t n = r->gen_left < 65536 ? r->gen_left : 65536;
				char *t = tc_buf_reserve(&c->out, n);

				if (!t) {
					conn_close(c, true);
					return;
				}
				bh_fill_size_body(t, r->size - r->gen_left, n);
				c->out.len += n;
				r->gen_left -= n;
			}
			if (conn_flush(c) < 0)
				return;
			if (c->out.len || r->gen_left)
				return;
			inflight_end(c);
			if (!r->keepalive) {
				shutdown(c->fd, SHUT_WR);
				c->hs = H_DRAIN;
				timer_set(c, now + DRAIN_NS);
				break;
			}
			bh_req_reset(r);
			c->hs = H_HEAD;
			break;
		case H_DRAIN:
			tc_buf_consume(&c->in, c->in.len);
			if (c->rd_eof)
				conn_close(c, false);
			return;
		}
	}
}

/* ---- raw modes ---- */

static void raw_advance(struct conn *c)
{
	if (conn_flush(c) < 0)
		return;
	if (c->out.len)
		return;
	if (c->close_after_flush || (c->rd_eof && cfg.mode != M_SINK)) {
		/* all echoed: half-close so the client sees EOF after the last byte */
		shutdown(c->fd, SHUT_WR);
		conn_close(c, false);
	}
}

static void conn_readable(struct conn *c, uint64_t now)
{
	int rounds = 16; /* bounded, so one busy connection cannot starve the rest */

	while (!c->dead && want_read(c) && rounds--) {
		ssize_t n;

		if (cfg.mode == M_SINK) {
			char scratch[65536];

			n = conn_read(c, scratch, sizeof(scratch));
			if (n > 0)
				c->sink_bytes += n;
		} else {
			struct tc_buf *b = cfg.mode == M_HTTP ? &c->in : &c->out;
			char *t = tc_buf_reserve(b, 65536);

			if (!t) {
				conn_close(c, true);
				return;
			}
			n = conn_read(c, t, 65536);
			if (n > 0)
				b->len += n;
		}
		if (n < 0)
			break;
		if (n == 0 && cfg.mode == M_SINK) {
			tc_buf_printf(&c->out, "bytes=%lu\n", c->sink_bytes);
			c->close_after_flush = true;
		}
		if (cfg.mode == M_HTTP)
			http_advance(c, now);
		else
			raw_advance(c);
		if (n == 0)
			break;
	}
}

static void conn_writable(struct conn *c, uint64_t now)
{
	if (cfg.mode == M_HTTP) {
		if (conn_flush(c) < 0)
			return;
		http_advance(c, now);
	} else {
		raw_advance(c);
	}
}

static void accept_all(struct listener *l)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int one = 1,
		    fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		struct epoll_event e;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
				fprintf(stderr, "rm-backend: accept: %s\n", strerror(errno));
				usleep(10000);
			}
			return;
		}
		if (cfg.max_conns && st.conns_cur >= cfg.max_conns) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};

			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(fd);
			st.conns_rejected++;
			changed();
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->kind = K_CONN;
		c->fd = fd;
		c->id = next_conn_id++;
		tc_fmt_addr(&ss, c->peer, sizeof(c->peer));
		tc_fmt_sockname(fd, false, c->local, sizeof(c->local));
		bh_req_reset(&c->req);
		c->ev = EPOLLIN;
		e.events = EPOLLIN;
		e.data.ptr = c;
		if (epoll_ctl(cfg.ep, EPOLL_CTL_ADD, fd, &e) < 0) {
			close(fd);
			free(c);
			continue;
		}
		st.conns_total++;
		if (++st.conns_cur > st.conns_max)
			st.conns_max = st.conns_cur;
		changed();
		if (cfg.mode == M_WHOAMI) {
			tc_buf_printf(&c->out, "peer=%s local=%s name=%s\n", c->peer, c->local,
				      cfg.name);
			raw_advance(c);
		}
		conn_update_events(c);
	}
}

static void run_timers(uint64_t now)
{
	struct conn *c = timers.tnext, *next;

	for (; c != &timers; c = next) {
		next = c->tnext;
		if (c->deadline > now)
			continue;
		timer_clear(c);
		if (c->hs == H_DELAY) {
			http_respond(c);
			http_advance(c, now);
			conn_update_events(c);
		} else if (c->hs == H_DRAIN) {
			conn_close(c, false);
		}
	}
}

static int next_timeout_ms(uint64_t now)
{
	uint64_t due = UINT64_MAX;

	for (struct conn *c = timers.tnext; c != &timers; c = c->tnext)
		if (c->deadline < due)
			due = c->deadline;
	if (cfg.stats_file) {
		uint64_t s =
		    st.written_ns + (st.seq != st.written_seq ? STATS_MIN_NS : STATS_MAX_NS);

		if (s < due)
			due = s;
	}
	if (due == UINT64_MAX)
		return -1;
	if (due <= now)
		return 0;
	/* round up: waking early would just spin */
	return (int)((due - now + 999999) / 1000000);
}

/* ---- setup ---- */

static void add_listener(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char err[160];
	int one = 1, fd;
	struct listener *l;

	if (cfg.nls == MAX_LISTEN)
		fatal("too many --listen (max %d)", MAX_LISTEN);
	if (tc_parse_addr(spec, &ss, &len, err, sizeof(err)))
		fatal("--listen: %s", err);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		fatal("bind %s: %s", spec, strerror(errno));
	if (listen(fd, 4096) < 0)
		fatal("listen %s: %s", spec, strerror(errno));
	l = &cfg.ls[cfg.nls++];
	l->kind = K_LISTEN;
	l->fd = fd;
	tc_fmt_sockname(fd, false, l->addr, sizeof(l->addr));
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: rm-backend --listen IP:PORT [--listen ...] --name NAME --version V\n"
		"                  [--mode http|echo|whoami|sink] [--max-conns N]\n"
		"                  [--stats-file F] [--ready-file F]\n"
		"  http    JSON description of each request; controls as query parameters or\n"
		"          x-rm-* headers: delay=250ms status=500 close=early|reset size=N;\n"
		"          /echo streams the request body back; GET /__stats[?reset=1] counters\n"
		"  echo    raw TCP echo (half-close honoured)\n"
		"  whoami  writes 'peer=IP:PORT local=IP:PORT name=NAME' then echoes\n"
		"  sink    discards input; at EOF writes 'bytes=N' and closes\n"
		"  --max-conns N  connections beyond N concurrent are accepted and reset\n"
		"  --stats-file F counters as JSON, replaced atomically on change (<= 5 ms\n"
		"                 late) and every 100 ms; a connection that only asks\n"
		"                 /__stats is left out of the counters\n"
		"  --ready-file F written (bound addresses, one per line) once listening;\n"
		"                 port 0 picks an ephemeral port\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"name", required_argument, NULL, 'n'},
	    {"version", required_argument, NULL, 'v'},
	    {"mode", required_argument, NULL, 'm'},
	    {"max-conns", required_argument, NULL, 'c'},
	    {"stats-file", required_argument, NULL, 's'},
	    {"ready-file", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *listens[MAX_LISTEN];
	int nlisten = 0, opt, sfd;
	sigset_t mask;
	struct epoll_event e;
	struct listener sigl = {.kind = K_SIGNAL};
	char *end;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (nlisten == MAX_LISTEN)
				fatal("too many --listen (max %d)", MAX_LISTEN);
			listens[nlisten++] = optarg;
			break;
		case 'n':
			cfg.name = optarg;
			break;
		case 'v':
			cfg.version = optarg;
			break;
		case 'm': {
			int i;

			for (i = 0; i < 4 && strcmp(optarg, mode_names[i]); i++)
				;
			if (i == 4)
				fatal("--mode: unknown mode '%s' (http, echo, whoami, sink)",
				      optarg);
			cfg.mode = i;
			break;
		}
		case 'c':
			errno = 0;
			cfg.max_conns = strtoull(optarg, &end, 10);
			if (errno || !*optarg || *end || !cfg.max_conns)
				fatal("--max-conns: want a positive integer, got '%s'", optarg);
			break;
		case 's':
			cfg.stats_file = optarg;
			break;
		case 'r':
			cfg.ready_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		fatal("unexpected argument '%s'", argv[optind]);
	if (!nlisten || !cfg.name || !cfg.version) {
		usage(stderr);
		fatal("--listen, --name and --version are required");
	}
	for (const char *p = cfg.name; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f)
			fatal("--name must be printable without spaces or quotes");
	for (const char *p = cfg.version; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f)
			fatal("--version must be printable without spaces or quotes");

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	cfg.ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || cfg.ep < 0)
		fatal("signalfd/epoll: %s", strerror(errno));
	sigl.fd = sfd;
	e.events = EPOLLIN;
	e.data.ptr = &sigl;
	epoll_ctl(cfg.ep, EPOLL_CTL_ADD, sfd, &e);
	timers.tnext = timers.tprev = &timers;

	for (int i = 0; i < nlisten; i++) {
		add_listener(listens[i]);
		e.events = EPOLLIN;
		e.data.ptr = &cfg.ls[i];
		if (epoll_ctl(cfg.ep, EPOLL_CTL_ADD, cfg.ls[i].fd, &e) < 0)
			fatal("epoll_ctl: %s", strerror(errno));
	}
	if (cfg.stats_file)
		stats_write(mono_ns());
	if (cfg.ready_file) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp.%d", cfg.ready_file, (int)getpid());
		f = fopen(tmp, "w");
		if (!f)
			fatal("--ready-file %s: %s", tmp, strerror(errno));
		for (int i = 0; i < cfg.nls; i++)
			fprintf(f, "%s\n", cfg.ls[i].addr);
		if (fclose(f) || rename(tmp, cfg.ready_file) < 0)
			fatal("--ready-file %s: %s", cfg.ready_file, strerror(errno));
	}

	while (!stopping) {
		struct epoll_event evs[256];
		uint64_t now = mono_ns();
		int n = epoll_wait(cfg.ep, evs, 256, next_timeout_ms(now));

		if (n < 0 && errno != EINTR)
			fatal("epoll_wait: %s", strerror(errno));
		now = mono_ns();
		for (int i = 0; i < n; i++) {
			int kind = *(int *)evs[i].data.ptr;

			if (kind == K_SIGNAL) {
				stopping = true;
			} else if (kind == K_LISTEN) {
				accept_all(evs[i].data.ptr);
			} else {
				struct conn *c = evs[i].data.ptr;

				/*
				 * Error, or hang-up after the client's EOF: nobody is left to read
				 * what we would send, and level-triggered HUP would spin otherwise.
				 */
				if ((evs[i].events & EPOLLERR) ||
				    ((evs[i].events & EPOLLHUP) && c->rd_eof && !want_read(c))) {
					conn_close(c, false);
					continue;
				}
				if (!c->dead && (evs[i].events & EPOLLOUT))
					conn_writable(c, now);
				if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
					conn_readable(c, now);
				if (!c->dead)
					conn_update_events(c);
			}
		}
		run_timers(now);
		conn_free_dead();
		if (cfg.stats_file &&
		    ((st.seq != st.written_seq && now - st.written_ns >= STATS_MIN_NS) ||
		     now - st.written_ns >= STATS_MAX_NS))
			stats_write(now);
	}
	if (cfg.stats_file)
		stats_write_final(mono_ns());
	return 0;
}
