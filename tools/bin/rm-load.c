/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * rm-load - bounded client for ringmesh tests and the L4/L7 benchmarks: request/response
 * round trips (rr), byte-exact bulk transfer (bulk), source-address check (whoami) and
 * HTTP/1.1 keep-alive load with status and version histograms (http). One blocking
 * thread per connection keeps each connection's timing honest and the code simple.
 * Every run is bounded in count and in time; unbounded runs are refused.
 */
#include <getopt.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "tool_common.h"
#include "backend_http.h"

#define MAX_CONNS 4096
#define MAX_HEADERS 32
#define MAX_VERSIONS 32
#define MAX_DURATION_NS (600ull * 1000000000ull)
#define MAX_REQUESTS 1000000000ull
#define MAX_BYTES (64ull << 30)

enum cmd { C_RR, C_BULK, C_WHOAMI, C_HTTP };

static struct {
	enum cmd cmd;
	const char *connect_s;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct sockaddr_storage bind;
	socklen_t blen;
	bool have_bind;
	unsigned int conns;
	uint64_t duration_ns;
	uint64_t requests;
	uint64_t size;
	uint64_t bytes;
	bool sink;
	bool json;
	bool allow_errors;
	uint64_t timeout_ns;  /* one connect/read/write */
	uint64_t max_time_ns; /* whole run, when bounded by count */
	const char *headers[MAX_HEADERS];
	int nheaders;
	bool have_host;
	const char *path;
	const char *method;
	unsigned int pipeline;
	const char *count_header;
} o = {
    .conns = 1,
    .size = 64,
    .timeout_ns = 10000000000ull,
    .max_time_ns = 60000000000ull,
    .path = "/",
    .method = "GET",
    .pipeline = 1,
    .count_header = "x-backend-version",
};

struct vcount {
	char v[64];
	uint64_t n;
};

struct result {
	unsigned int idx;
	pthread_t th;
	struct tc_hist *lat;
	uint64_t ok, errors, reconnects, bytes_tx, bytes_rx;
	uint64_t status[600];
	struct vcount ver[MAX_VERSIONS + 1]; /* last slot: "other" */
	int nver;
};

static atomic_ulong claimed;
static atomic_bool stop_all;
static uint64_t t_start, t_deadline;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_err[256];

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&err_lock);
	if (!first_err[0]) {
		va_start(ap, fmt);
		vsnprintf(first_err, sizeof(first_err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&err_lock);
	if (!o.allow_errors)
		atomic_store(&stop_all, true);
}

__attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rm-load: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static bool past_deadline(void)
{
	return atomic_load(&stop_all) || mono_ns() >= t_deadline;
}

/* claim up to `want` requests; 0 when the run is over */
static uint64_t claim(uint64_t want)
{
	if (past_deadline())
		return 0;
	if (!o.requests)
		return want;
	for (;;) {
		unsigned long cur = atomic_load(&claimed), k;

		if (cur >= o.requests)
			return 0;
		k = o.requests - cur < want ? o.requests - cur : want;
		if (atomic_compare_exchange_weak(&claimed, &cur, cur + k))
			return k;
	}
}

static void set_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = o.timeout_ns / 1000000000ull,
			     .tv_usec = (o.timeout_ns % 1000000000ull) / 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* blocking socket with I/O timeouts; -1 with the reason in err */
static int dial(char *err, size_t errlen)
{
	int fd = socket(o.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc;

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (o.have_bind && bind(fd, (struct sockaddr *)&o.bind, o.blen) < 0) {
		snprintf(err, errlen, "bind: %s", strerror(errno));
		close(fd);
		return -1;
	}
	set_timeouts(fd); /* SO_SNDTIMEO bounds a blocking connect too */
	rc = connect(fd, (struct sockaddr *)&o.addr, o.alen);
	if (rc < 0) {
		snprintf(err, errlen, "connect %s: %s", o.connect_s,
			 errno == EINPROGRESS ? "timed out" : strerror(errno));
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		p = (const char *)p + w;
		n -= w;
	}
	return 0;
}

/* 0, -EPIPE on EOF, -ETIMEDOUT, -errno */
static int read_full(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, p, n, 0);

		if (r == 0)
			return -EPIPE;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		p = (char *)p + r;
		n -= r;
	}
	return 0;
}

static const char *io_err(int rc)
{
	return rc == -EPIPE	  ? "connection closed by peer"
	       : rc == -ETIMEDOUT ? "timed out"
				  : strerror(-rc);
}

/* ---- rr ---- */

static void *rr_thread(void *arg)
{
	struct result *res = arg;
	unsigned char *tx = malloc(o.size), *rx = malloc(o.size);
	char err[160];
	int fd = -1, rc;
	uint64_t seq = 0;

	if (!tx || !rx) {
		fail("out of memory");
		goto out;
	}
	tc_pattern_fill(0x7272000000000000ull + res->idx, 0, tx, o.size);
	fd = dial(err, sizeof(err));
	if (fd < 0) {
		res->errors++;
		fail("conn %u: %s", res->idx, err);
		goto out;
	}
	while (claim(1)) {
		uint64_t t0, t1;

		/* a sequence number up front catches replies that arrive out of step */
		if (o.size >= 8)
			memcpy(tx, &seq, 8);
		seq++;
		t0 = mono_ns();
		rc = write_all(fd, tx, o.size);
		if (!rc)
			rc = read_full(fd, rx, o.size);
		t1 = mono_ns();
		if (rc) {
			res->errors++;
			fail("conn %u: round trip %lu: %s", res->idx, seq, io_err(rc));
			break;
		}
		if (memcmp(tx, rx, o.size)) {
			size_t i = 0;

			while (tx[i] == rx[i])
				i++;
			res->errors++;
			fail("conn %u: round trip %lu: echo mismatch at byte %zu: expected 0x%02x "
			     "got 0x%02x",
			     res->idx, seq, i, tx[i], rx[i]);
			break;
		}
		res->ok++;
		res->bytes_tx += o.size;
		res->bytes_rx += o.size;
		tc_hist_add(res->lat, t1 - t0);
	}
out:
	if (fd >= 0)
		close(fd);
	free(tx);
	free(rx);
	return NULL;
}

/* ---- bulk ---- */

static void *bulk_thread(void *arg)
{
	struct result *res = arg;
	uint64_t seed = 0xb01c000000000000ull + res->idx;
	uint64_t total = o.bytes / o.conns + (res->idx < o.bytes % o.conns ? 1 : 0);
	uint64_t sent = 0, got = 0;
	size_t cap = 256 * 1024;
	unsigned char *tx = malloc(cap), *rx = malloc(cap), *exp = malloc(cap);
	char err[160], line[128];
	size_t linelen = 0;
	bool wr_shut = false, eof = false;
	int fd;

	fd = dial(err, sizeof(err));
	if (fd < 0 || !tx || !rx || !exp) {
		res->errors++;
		fail("conn %u: %s", res->idx, fd < 0 ? err : "out of memory");
		goto out;
	}
	while (!eof) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = mono_ns();
		int wait_ms, rc;

		if (atomic_load(&stop_all))
			goto out;
		if (now >= t_deadline) {
			res->errors++;
			fail("conn %u: run time limit hit after %lu of %lu bytes sent, %lu back",
			     res->idx, sent, total, got);
			goto out;
		}
		if (sent == total && !wr_shut) {
			shutdown(fd, SHUT_WR);
			wr_shut = true;
		}
		if (!wr_shut)
			p.events |= POLLOUT;
		wait_ms = (int)((t_deadline - now) / 1000000 + 1);
		if (wait_ms > (int)(o.timeout_ns / 1000000))
			wait_ms = (int)(o.timeout_ns / 1000000);
		rc = poll(&p, 1, wait_ms);
		if (rc == 0) {
			res->errors++;
			fail("conn %u: no progress for %lu ms (sent %lu, back %lu)", res->idx,
			     o.timeout_ns / 1000000, sent, got);
			goto out;
		}
		if (rc < 0)
			continue;
		if ((p.revents & POLLOUT) && !wr_shut) {
			size_t n = total - sent < cap ? total - sent : cap;
			ssize_t w;

			tc_pattern_fill(seed, sent, tx, n);
			w = send(fd, tx, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				res->errors++;
				fail("conn %u: send after %lu bytes: %s", res->idx, sent,
				     strerror(errno));
				goto out;
			}
			if (w > 0)
				sent += w;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(fd, rx, cap, MSG_DONTWAIT);

			if (r < 0 && errno != EAGAIN && errno != EINTR) {
				res->errors++;
				fail("conn %u: recv after %lu bytes back: %s", res->idx, got,
				     strerror(errno));
				goto out;
			}
			if (r == 0) {
				eof = true;
			} else if (r > 0 && o.sink) {
				if (linelen + r >= sizeof(line)) {
					res->errors++;
					fail("conn %u: sink reply too long", res->idx);
					goto out;
				}
				memcpy(line + linelen, rx, r);
				linelen += r;
			} else if (r > 0) {
				if (got + r > total) {
					res->errors++;
					fail("conn %u: echo returned more than sent (%lu > %lu)",
					     res->idx, got + r, total);
					goto out;
				}
				tc_pattern_fill(seed, got, exp, r);
				if (memcmp(exp, rx, r)) {
					ssize_t i = 0;

					while (exp[i] == rx[i])
						i++;
					res->errors++;
					fail("conn %u: echo mismatch at offset %lu: expected "
					     "0x%02x got 0x%02x",
					     res->idx, got + i, exp[i], rx[i]);
					goto out;
				}
				got += r;
			}
		}
	}
	if (o.sink) {
		unsigned long long n;

		line[linelen] = '\0';
		if (sscanf(line, "bytes=%llu", &n) != 1 || n != total) {
			res->errors++;
			fail("conn %u: sink reported '%.*s', sent %lu", res->idx,
			     (int)strcspn(line, "\n"), line, total);
			goto out;
		}
	} else if (got != total) {
		res->errors++;
		fail("conn %u: short echo: %lu of %lu bytes came back before EOF", res->idx, got,
		     total);
		goto out;
	}
	res->ok++;
	res->bytes_tx = sent;
	res->bytes_rx = got;
out:
	if (fd >= 0)
		close(fd);
	free(tx);
	free(rx);
	free(exp);
	return NULL;
}

#include "load_http.h"

/* ---- whoami ---- */

static int do_whoami(void)
{
	char err[160], local[80], line[512];
	size_t n = 0;
	int fd = dial(err, sizeof(err));

	if (fd < 0) {
		fprintf(stderr, "rm-load: %s\n", err);
		return 1;
	}
	tc_fmt_sockname(fd, false, local, sizeof(local));
	while (n < sizeof(line) - 1 && (n == 0 || line[n - 1] != '\n')) {
		ssize_t r = recv(fd, line + n, sizeof(line) - 1 - n, 0);

		if (r <= 0) {
			fprintf(stderr, "rm-load: whoami: %s before the backend's line\n",
				r == 0		  ? "connection closed"
				: errno == EAGAIN ? "timed out"
						  : strerror(errno));
			close(fd);
			return 1;
		}
		n += r;
	}
	close(fd);
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (strncmp(line, "peer=", 5)) {
		fprintf(stderr, "rm-load: whoami: unexpected line '%s'\n", line);
		return 1;
	}
	if (o.json) {
		char peer[80] = "", blocal[80] = "", name[128] = "";

		sscanf(line, "peer=%79s local=%79s name=%127s", peer, blocal, name);
		printf("{\"client_local\":\"%s\",\"peer\":\"%s\",\"local\":\"%s\",\"name\":\"%s\","
		       "\"same\":%s}\n",
		       local, peer, blocal, name, strcmp(local, peer) ? "false" : "true");
	} else {
		printf("client_local=%s\n%s\n", local, line);
	}
	return 0;
}

/* ---- reporting ---- */

static void report(struct result *rs)
{
	struct tc_hist *h = calloc(1, sizeof(*h));
	struct result tot = {0};
	double secs = (double)(mono_ns() - t_start) / 1e9;
	const char *names[] = {"rr", "bulk", "whoami", "http"};

	if (!h)
		die("out of memory");
	for (unsigned int i = 0; i < o.conns; i++) {
		struct result *r = &rs[i];

		tc_hist_merge(h, r->lat);
		tot.ok += r->ok;
		tot.errors += r->errors;
		tot.reconnects += r->reconnects;
		tot.bytes_tx += r->bytes_tx;
		tot.bytes_rx += r->bytes_rx;
		for (int s = 0; s < 600; s++)
			tot.status[s] += r->status[s];
		for (int v = 0; v <= MAX_VERSIONS; v++)
			if (r->ver[v].n)
				vcount_add(&tot, r->ver[v].v, r->ver[v].n);
	}
	if (o.json) {
		printf("{\"mode\":\"%s\",\"conns\":%u,\"errors\":%lu,\"duration_s\":%.3f",
		       names[o.cmd], o.conns, tot.errors, secs);
	} else {
		printf("mode=%s conns=%u errors=%lu duration_s=%.3f", names[o.cmd], o.conns,
		       tot.errors, secs);
	}
	if (o.cmd == C_BULK) {
		double mbps = (double)tot.bytes_tx / secs / 1e6;

		printf(o.json ? ",\"bytes\":%lu,\"bytes_back\":%lu,\"throughput_MBps\":%.1f,\"gbit_"
				"s\":%.3f"
			      : " bytes=%lu bytes_back=%lu throughput_MBps=%.1f gbit_s=%.3f",
		       tot.bytes_tx, tot.bytes_rx, mbps, mbps * 8 / 1000);
	} else {
		printf(o.json ? ",\"requests\":%lu,\"rps\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
				"\"p99_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f"
			      : " requests=%lu rps=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
				"max_us=%.1f mean_us=%.1f",
		       tot.ok, (double)tot.ok / secs, tc_hist_pct(h, 50) / 1e3,
		       tc_hist_pct(h, 90) / 1e3, tc_hist_pct(h, 99) / 1e3, h->max / 1e3,
		       h->count ? (double)h->sum / h->count / 1e3 : 0.0);
	}
	if (o.cmd == C_HTTP)
		http_report(&tot);
	printf(o.json ? "}\n" : "\n");
	fflush(stdout);
	free(h);
	if (tot.errors && first_err[0])
		fprintf(stderr, "rm-load: %s%s\n", first_err,
			tot.errors > 1 ? " (first of several errors)" : "");
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: rm-load rr     --connect IP:PORT (--duration D | --requests N) [--conns C] "
	    "[--size B]\n"
	    "       rm-load bulk   --connect IP:PORT --bytes B [--conns C] [--sink]\n"
	    "       rm-load whoami --connect IP:PORT\n"
	    "       rm-load http   --connect IP:PORT (--requests N | --duration D) [--conns C]\n"
	    "                      [--path /x] [--method M] [--header 'k: v']... [--pipeline K]\n"
	    "                      [--count-header NAME] [--allow-errors]\n"
	    "Common: [--json] [--bind IP:PORT] [--timeout T (one I/O step, default 10s)]\n"
	    "        [--max-time T (whole run when bounded by count, default 60s)]\n"
	    "Limits: conns <= %d, duration <= 10m, requests <= 1e9, bytes <= 64G.\n"
	    "Exit: 0 ok, 1 a transfer error (connect, mismatch, timeout), 2 usage.\n",
	    MAX_CONNS);
}

static uint64_t num_arg(const char *name, const char *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (!*v || *end || errno || *v == '-')
		die("%s: want a non-negative integer, got '%s'", name, v);
	return x;
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"connect", required_argument, NULL, 'c'},
	    {"conns", required_argument, NULL, 'C'},
	    {"duration", required_argument, NULL, 'd'},
	    {"requests", required_argument, NULL, 'n'},
	    {"size", required_argument, NULL, 's'},
	    {"bytes", required_argument, NULL, 'b'},
	    {"sink", no_argument, NULL, 'S'},
	    {"json", no_argument, NULL, 'j'},
	    {"bind", required_argument, NULL, 'B'},
	    {"timeout", required_argument, NULL, 't'},
	    {"max-time", required_argument, NULL, 'T'},
	    {"header", required_argument, NULL, 'H'},
	    {"path", required_argument, NULL, 'p'},
	    {"method", required_argument, NULL, 'm'},
	    {"pipeline", required_argument, NULL, 'P'},
	    {"count-header", required_argument, NULL, 'k'},
	    {"allow-errors", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	char err[160];
	int opt;
	uint64_t v;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		exit(argc < 2 ? 2 : 0);
	}
	if (!strcmp(argv[1], "rr"))
		o.cmd = C_RR;
	else if (!strcmp(argv[1], "bulk"))
		o.cmd = C_BULK;
	else if (!strcmp(argv[1], "whoami"))
		o.cmd = C_WHOAMI;
	else if (!strcmp(argv[1], "http"))
		o.cmd = C_HTTP;
	else
		die("unknown command '%s' (rr, bulk, whoami, http)", argv[1]);
	optind = 2;
	while ((opt = getopt_long(argc, argv, "hj", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o.connect_s = optarg;
			if (tc_parse_addr(optarg, &o.addr, &o.alen, err, sizeof(err)))
				die("--connect: %s", err);
			break;
		case 'B':
			if (tc_parse_addr(optarg, &o.bind, &o.blen, err, sizeof(err)))
				die("--bind: %s", err);
			o.have_bind = true;
			break;
		case 'C':
			v = num_arg("--conns", optarg);
			if (!v || v > MAX_CONNS)
				die("--conns: want 1..%d, got %s", MAX_CONNS, optarg);
			o.conns = (unsigned int)v;
			break;
		case 'd':
			if (tc_parse_duration_ns(optarg, &o.duration_ns, err, sizeof(err)))
				die("--duration: %s", err);
			if (!o.duration_ns || o.duration_ns > MAX_DURATION_NS)
				die("--duration: want more than 0 and at most 10m, got %s", optarg);
			break;
		case 'n':
			o.requests = num_arg("--requests", optarg);
			if (!o.requests || o.requests > MAX_REQUESTS)
				die("--requests: want 1..%llu, got %s", MAX_REQUESTS, optarg);
			break;
		case 's':
			if (tc_parse_size(optarg, &o.size, err, sizeof(err)))
				die("--size: %s", err);
			/* write-all-then-read: larger would deadlock on full socket buffers */
			if (!o.size || o.size > (64u << 10))
				die("--size: want 1..64K (bulk moves more), got %s", optarg);
			break;
		case 'b':
			if (tc_parse_size(optarg, &o.bytes, err, sizeof(err)))
				die("--bytes: %s", err);
			if (!o.bytes || o.bytes > MAX_BYTES)
				die("--bytes: want 1..64G, got %s", optarg);
			break;
		case 'S':
			o.sink = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
		case 'T':
			if (tc_parse_duration_ns(optarg,
						 opt == 't' ? &o.timeout_ns : &o.max_time_ns, err,
						 sizeof(err)))
				die("%s: %s", opt == 't' ? "--timeout" : "--max-time", err);
			v = opt == 't' ? o.timeout_ns : o.max_time_ns;
			if (v < 1000000 || v > 3600000000000ull)
				die("%s: want 1ms..1h, got %s",
				    opt == 't' ? "--timeout" : "--max-time", optarg);
			break;
		case 'H':
			if (o.nheaders == MAX_HEADERS)
				die("--header: at most %d", MAX_HEADERS);
			if (!strchr(optarg, ':') || strchr(optarg, '\r') || strchr(optarg, '\n') ||
			    optarg[0] == ':')
				die("--header: want 'name: value', got '%s'", optarg);
			if (!strncasecmp(optarg, "host:", 5))
				o.have_host = true;
			o.headers[o.nheaders++] = optarg;
			break;
		case 'p':
			if (optarg[0] != '/' || strpbrk(optarg, " \r\n"))
				die("--path: want an absolute path without spaces, got '%s'",
				    optarg);
			o.path = optarg;
			break;
		case 'm':
			for (const char *c = optarg; *c; c++)
				if (*c < 'A' || *c > 'Z')
					die("--method: want an upper-case token, got '%s'", optarg);
			o.method = optarg;
			break;
		case 'P':
			v = num_arg("--pipeline", optarg);
			if (!v || v > 1024)
				die("--pipeline: want 1..1024, got %s", optarg);
			o.pipeline = (unsigned int)v;
			break;
		case 'k':
			o.count_header = optarg;
			break;
		case 'a':
			o.allow_errors = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s'", argv[optind]);
	if (!o.connect_s)
		die("--connect IP:PORT is required");
	if ((o.cmd == C_RR || o.cmd == C_HTTP) && !o.duration_ns && !o.requests)
		die("%s needs --duration or --requests: unbounded runs are refused", argv[1]);
	if (o.cmd == C_BULK && !o.bytes)
		die("bulk needs --bytes");
	if (o.cmd == C_BULK && o.bytes < o.conns)
		die("bulk: --bytes must be at least --conns");
	if (o.allow_errors && o.cmd != C_HTTP)
		die("--allow-errors applies to http only");
	if (o.sink && o.cmd != C_BULK)
		die("--sink applies to bulk only");
	if (o.cmd == C_WHOAMI && o.conns != 1)
		die("whoami uses one connection");
}

int main(int argc, char **argv)
{
	struct result *rs;
	void *(*fn)(void *);
	pthread_attr_t attr;
	int failed = 0;
	bool timed_out = false;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (o.cmd == C_WHOAMI)
		return do_whoami();

	rs = calloc(o.conns, sizeof(*rs));
	if (!rs)
		die("out of memory");
	fn = o.cmd == C_RR ? rr_thread : o.cmd == C_BULK ? bulk_thread : http_thread;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	t_start = mono_ns();
	/* by time: the duration; by count: the count, and --max-time as the time bound */
	t_deadline = t_start + (o.duration_ns ? o.duration_ns : o.max_time_ns);
	for (unsigned int i = 0; i < o.conns; i++) {
		rs[i].idx = i;
		rs[i].lat = calloc(1, sizeof(*rs[i].lat));
		if (!rs[i].lat)
			die("out of memory");
		if (pthread_create(&rs[i].th, &attr, fn, &rs[i]))
			die("cannot start thread %u: %s", i, strerror(errno));
	}
	for (unsigned int i = 0; i < o.conns; i++)
		pthread_join(rs[i].th, NULL);
	if (o.requests && o.cmd != C_BULK && atomic_load(&claimed) < o.requests &&
	    mono_ns() >= t_deadline) {
		timed_out = true;
		fail("run time limit (--max-time %.1fs) hit after %lu of %lu requests",
		     o.max_time_ns / 1e9, (unsigned long)atomic_load(&claimed), o.requests);
	}
	report(rs);
	for (unsigned int i = 0; i < o.conns; i++) {
		if (rs[i].errors)
			failed = 1;
		free(rs[i].lat);
	}
	if (first_err[0])
		failed = 1;
	/* --allow-errors (http only) forgives transfer errors, never an overrun run */
	if (o.allow_errors && !timed_out)
		failed = 0;
	free(rs);
	return failed;
}
