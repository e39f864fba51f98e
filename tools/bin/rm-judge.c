/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * rm-judge - a strict HTTP/1.1 origin server that is the judge of the request
 * smuggling tests (tests/e2e/test_smuggling.sh). It frames every request it receives
 * by RFC 9112 alone, with its own parser (deliberately not ringmesh's codec, so a
 * codec bug cannot hide by agreeing with itself), logs each request to a file and
 * answers 200. Anything a lenient server could frame differently is flagged, logged
 * and answered 400 + close: duplicate or list Content-Length, a Transfer-Encoding that
 * is not exactly "chunked", Content-Length with Transfer-Encoding, a field name that
 * looks like a framing field without being one ("Transfer_Encoding", " Content-Length"),
 * bare CR or LF, obs-fold, control bytes, a malformed chunk, and bytes that end the
 * connection in the middle of a message.
 *
 * Log lines (one per event, flushed at once; bytes outside printable ASCII as \xNN):
 *   REQ c=CONN n=SEQ probe=X-PROBE method=M target=T framing=[LINE | LINE] body=N notes=...
 *   FLAG c=CONN n=SEQ probe=X-PROBE reasons=R,R head=FIRST-BYTES
 * The 200 answer carries "x-judge: CONN-SEQ" so a client can match answers with log
 * lines: a proxy that forwards one request the judge reads as two (or the reverse)
 * shows up as a count mismatch even when every message parses.
 *
 * usage: rm-judge --listen IP:PORT --log FILE [--ready-file F]
 * One thread per connection: the tests open a few hundred connections, one at a time.
 */
#include <ctype.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "tool_common.h"

#define IN_MAX (8u << 20) /* a message (head + body) larger than this is flagged */
#define STALL_S 10	  /* a connection silent this long mid-message is flagged */

static FILE *logf_;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_conn;

struct jc {
	int fd;
	uint64_t id;
	char buf[IN_MAX];
	size_t len;
	bool eof;
};

/* ---- escaped log output ---- */

static void esc(struct tc_buf *o, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char t[8];

		if (c >= 0x21 && c < 0x7f && c != '\\' && c != '|' && c != ']')
			tc_buf_append(o, &c, 1);
		else {
			snprintf(t, sizeof(t), "\\x%02x", c);
			tc_buf_append(o, t, 4);
		}
	}
}

static void logln(struct tc_buf *o)
{
	pthread_mutex_lock(&log_mu);
	fwrite(tc_buf_data(o), 1, o->len, logf_);
	fputc('\n', logf_);
	fflush(logf_);
	pthread_mutex_unlock(&log_mu);
}

/* ---- reading ---- */

/* Make sure at least need bytes are buffered; false at EOF/error/stall first. */
static bool fill(struct jc *c, size_t need)
{
	while (c->len < need) {
		ssize_t n;

		if (c->eof || c->len == sizeof(c->buf))
			return false;
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n <= 0) {
			c->eof = true;
			return false;
		}
		c->len += (size_t)n;
	}
	return true;
}

static bool tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool ieq(const char *p, size_t n, const char *lower)
{
	return strlen(lower) == n && !strncasecmp(p, lower, n);
}

/* Letters only, lower-cased: "Transfer_Encoding" and "\x01Content-Length" look like
 * the real names to a parser that skips what it does not understand. */
static bool looks_like(const char *p, size_t n, const char *letters)
{
	char t[64];
	size_t k = 0;

	for (size_t i = 0; i < n && k < sizeof(t) - 1; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 'A' && c <= 'Z')
			c += 32;
		if (c >= 'a' && c <= 'z')
			t[k++] = (char)c;
	}
	t[k] = 0;
	return !strcmp(t, letters);
}

struct msg {
	struct tc_buf reasons, framing, notes;
	char method[64], probe[128];
	struct tc_buf target;
	bool head_req, close, chunked, has_cl;
	int vminor;
	uint64_t cl, body;
	size_t n_cl, n_te, n_host;
};

static void reason(struct msg *m, const char *r)
{
	if (m->reasons.len)
		tc_buf_append(&m->reasons, ",", 1);
	tc_buf_append(&m->reasons, r, strlen(r));
}

static void note(struct msg *m, const char *r)
{
	if (m->notes.len)
		tc_buf_append(&m->notes, ",", 1);
	tc_buf_append(&m->notes, r, strlen(r));
}

/* Find the end of the line at off (index of its LF); bare CR/LF are reasons. */
static bool line_end(struct jc *c, size_t off, size_t *lf, struct msg *m)
{
	for (size_t i = off;; i++) {
		if (!fill(c, i + 1))
			return false;
		if (c->buf[i] == '\n') {
			if (i == off || c->buf[i - 1] != '\r')
				reason(m, "bare-lf");
			*lf = i;
			return true;
		}
		if (i > off && c->buf[i - 1] == '\r' && c->buf[i] != '\n')
			reason(m, "bare-cr");
	}
}

static void field(struct msg *m, const char *p, size_t n, bool trailer)
{
	const char *colon = memchr(p, ':', n);
	size_t nl = colon ? (size_t)(colon - p) : n;
	bool tok = nl > 0;

	if (n && (p[0] == ' ' || p[0] == '\t'))
		reason(m, "obs-fold");
	for (size_t i = 0; i < nl; i++)
		tok = tok && tchar((unsigned char)p[i]);
	if (!colon || !tok)
		reason(m, "bad-field-name");
	const char *v = colon ? colon + 1 : p + n;
	size_t vl = (size_t)(p + n - v);

	for (size_t i = 0; i < vl; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
			reason(m, "control-in-value");
			break;
		}
	}
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;

	bool is_cl = tok && ieq(p, nl, "content-length");
	bool is_te = tok && ieq(p, nl, "transfer-encoding");
	bool like_cl = looks_like(p, nl, "contentlength");
	bool like_te = looks_like(p, nl, "transferencoding");

	if (like_cl || like_te || is_cl || is_te) {
		if (m->framing.len)
			tc_buf_append(&m->framing, " | ", 3);
		esc(&m->framing, p, n);
	}
	if ((like_cl && !is_cl) || (like_te && !is_te))
		reason(m, like_te ? "obfuscated-transfer-encoding" : "obfuscated-content-length");
	if (memmem(v, vl, "ransfer-", 8) || memmem(v, vl, "RANSFER-", 8))
		note(m, "te-text-in-value");
	if (trailer) {
		if (is_cl || is_te)
			reason(m, "framing-field-in-trailer");
		return;
	}
	if (is_cl) {
		uint64_t x = 0;
		bool digits = vl > 0 && vl <= 18;

		for (size_t i = 0; i < vl && digits; i++) {
			digits = v[i] >= '0' && v[i] <= '9';
			x = x * 10 + (uint64_t)(v[i] - '0');
		}
		if (!digits)
			reason(m,
			       memchr(v, ',', vl) ? "content-length-list" : "bad-content-length");
		if (m->n_cl++)
			reason(m, "duplicate-content-length");
		m->has_cl = true;
		m->cl = x;
	} else if (is_te) {
		if (m->n_te++)
			reason(m, "duplicate-transfer-encoding");
		if (!ieq(v, vl, "chunked"))
			reason(m, "transfer-encoding-not-exactly-chunked");
		m->chunked = true;
	} else if (tok && ieq(p, nl, "host")) {
		m->n_host++;
	} else if (tok && ieq(p, nl, "connection")) {
		if (memmem(v, vl, "close", 5) || memmem(v, vl, "Close", 5))
			m->close = true;
	} else if (tok && ieq(p, nl, "x-probe")) {
		snprintf(m->probe, sizeof(m->probe), "%.*s", (int)(vl < 120 ? vl : 120), v);
	}
}

/* Field lines from off up to the empty line; returns the offset after it, 0 on EOF. */
static size_t fields(struct jc *c, size_t off, struct msg *m, bool trailer)
{
	for (;;) {
		size_t lf;

		if (!line_end(c, off, &lf, m))
			return 0;
		size_t n = lf - off - (lf > off && c->buf[lf - 1] == '\r');

		if (n == 0)
			return lf + 1;
		field(m, c->buf + off, n, trailer);
		off = lf + 1;
	}
}

/* Strict chunked body from off; the offset after it, 0 on EOF or error. */
static size_t chunked_body(struct jc *c, size_t off, struct msg *m)
{
	for (;;) {
		size_t lf, i = off;
		uint64_t sz = 0;

		if (!line_end(c, off, &lf, m))
			return 0;
		while (i < lf && isxdigit((unsigned char)c->buf[i]) && i - off < 16) {
			char ch = c->buf[i++];

			sz = sz * 16 + (uint64_t)(ch <= '9' ? ch - '0' : (ch | 32) - 'a' + 10);
		}
		if (i == off || (c->buf[i] != ';' && c->buf[i] != '\r')) {
			reason(m, "bad-chunk-size");
			return 0;
		}
		off = lf + 1;
		if (sz == 0)
			return fields(c, off, m, true);
		if (sz > IN_MAX || !fill(c, off + sz + 2)) {
			reason(m, sz > IN_MAX ? "chunk-too-large" : "truncated-chunk");
			return 0;
		}
		m->body += sz;
		off += sz;
		if (c->buf[off] != '\r' || c->buf[off + 1] != '\n') {
			reason(m, "chunk-data-not-followed-by-crlf");
			return 0;
		}
		off += 2;
	}
}

static void respond(struct jc *c, uint64_t seq, struct msg *m, int status)
{
	char body[256], head[512];
	int bl = snprintf(body, sizeof(body), "judge c=%llu n=%llu probe=%s body=%llu\n",
			  (unsigned long long)c->id, (unsigned long long)seq, m->probe,
			  (unsigned long long)m->body);
	int hl =
	    snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
		     "x-judge: %llu-%llu\r\n%s\r\n",
		     status, status == 200 ? "OK" : "Bad Request", bl, (unsigned long long)c->id,
		     (unsigned long long)seq, m->close ? "connection: close\r\n" : "");

	(void)!send(c->fd, head, (size_t)hl, MSG_NOSIGNAL);
	if (!m->head_req)
		(void)!send(c->fd, body, (size_t)bl, MSG_NOSIGNAL);
}

/* One request; false when the connection is done. */
static bool one(struct jc *c, uint64_t seq)
{
	struct msg m = {0};
	size_t lf, off = 0, end = 0;
	struct tc_buf o = {0};
	bool ok = false;

	strcpy(m.probe, "-");
	if (!fill(c, 1))
		return false; /* clean close between messages */
	if (!line_end(c, 0, &lf, &m)) {
		reason(&m, "truncated-head");
		goto out;
	}
	{ /* request-line: method SP target SP HTTP/1.x */
		const char *p = c->buf, *e = c->buf + lf - (lf > 0 && c->buf[lf - 1] == '\r');
		const char *sp1 = memchr(p, ' ', (size_t)(e - p));
		const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(e - sp1 - 1)) : NULL;
		bool good = sp1 && sp2 && sp1 > p && sp2 > sp1 + 1 && e - sp2 == 9 &&
			    !memcmp(sp2 + 1, "HTTP/1.", 7) && (sp2[8] == '0' || sp2[8] == '1');

		for (const char *q = p; good && q < sp1; q++)
			good = tchar((unsigned char)*q);
		for (const char *q = sp1 + 1; good && q < sp2; q++)
			good = *q > 0x20 && *q < 0x7f;
		if (!good)
			reason(&m, "bad-request-line");
		if (sp1)
			snprintf(m.method, sizeof(m.method), "%.*s",
				 (int)(sp1 - p < 60 ? sp1 - p : 60), p);
		if (sp1 && sp2)
			esc(&m.target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
		m.vminor = good ? sp2[8] - '0' : 1;
		m.head_req = !strcmp(m.method, "HEAD");
		if (m.vminor == 0)
			m.close = true;
	}
	off = fields(c, lf + 1, &m, false);
	if (!off) {
		reason(&m, "truncated-head");
		goto out;
	}
	if (m.has_cl && m.chunked)
		reason(&m, "content-length-and-transfer-encoding");
	if (m.vminor == 1 && m.n_host != 1)
		reason(&m, m.n_host ? "duplicate-host" : "missing-host");
	if (m.reasons.len)
		goto out; /* do not guess a body for an ambiguous head */
	if (m.chunked) {
		end = chunked_body(c, off, &m);
		if (!end && !m.reasons.len)
			reason(&m, "truncated-chunked-body");
	} else if (m.has_cl) {
		if (m.cl > IN_MAX - off || !fill(c, off + m.cl))
			reason(&m, m.cl > IN_MAX - off ? "body-too-large" : "truncated-body");
		m.body = m.cl;
		end = off + m.cl;
	} else {
		end = off;
	}
	ok = !m.reasons.len;
out:
	if (ok) {
		tc_buf_append(&o, "REQ c=", 6);
	} else {
		tc_buf_append(&o, "FLAG c=", 7);
	}
	{
		char t[64];
		int n = snprintf(t, sizeof(t), "%llu n=%llu probe=", (unsigned long long)c->id,
				 (unsigned long long)seq);

		tc_buf_append(&o, t, (size_t)n);
		esc(&o, m.probe, strlen(m.probe));
		tc_buf_append(&o, " method=", 8);
		esc(&o, m.method, strlen(m.method));
		tc_buf_append(&o, " target=", 8);
		if (m.target.len)
			tc_buf_append(&o, tc_buf_data(&m.target), m.target.len);
		tc_buf_append(&o, " framing=[", 10);
		if (m.framing.len)
			tc_buf_append(&o, tc_buf_data(&m.framing), m.framing.len);
		n = snprintf(t, sizeof(t), "] body=%llu notes=", (unsigned long long)m.body);
		tc_buf_append(&o, t, (size_t)n);
		if (m.notes.len)
			tc_buf_append(&o, tc_buf_data(&m.notes), m.notes.len);
		else
			tc_buf_append(&o, "-", 1);
		if (!ok) {
			tc_buf_append(&o, " reasons=", 9);
			tc_buf_append(&o, tc_buf_data(&m.reasons), m.reasons.len);
			tc_buf_append(&o, " head=", 6);
			esc(&o, c->buf, c->len < 300 ? c->len : 300);
		}
	}
	logln(&o);
	if (ok) {
		respond(c, seq, &m, 200);
		memmove(c->buf, c->buf + end, c->len - end);
		c->len -= end;
	} else {
		m.close = true;
		respond(c, seq, &m, 400);
	}
	tc_buf_free(&o);
	tc_buf_free(&m.reasons);
	tc_buf_free(&m.framing);
	tc_buf_free(&m.notes);
	tc_buf_free(&m.target);
	return ok && !m.close;
}

static void *conn_main(void *arg)
{
	struct jc *c = arg;
	struct timeval tv = {STALL_S, 0};
	uint64_t seq = 0;

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (one(c, ++seq))
		;
	close(c->fd);
	free(c);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: rm-judge --listen IP:PORT --log FILE [--ready-file F]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"listen", required_argument, NULL, 'l'},
					   {"log", required_argument, NULL, 'o'},
					   {"ready-file", required_argument, NULL, 'r'},
					   {NULL, 0, NULL, 0}};
	const char *listen_s = NULL, *log_s = NULL, *ready = NULL;
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[256];
	int o, lfd, one_ = 1;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (o == 'l')
			listen_s = optarg;
		else if (o == 'o')
			log_s = optarg;
		else if (o == 'r')
			ready = optarg;
		else
			usage();
	}
	if (!listen_s || !log_s)
		usage();
	if (tc_parse_addr(listen_s, &ss, &sl, err, sizeof(err))) {
		fprintf(stderr, "rm-judge: --listen: %s\n", err);
		return 2;
	}
	logf_ = fopen(log_s, "a");
	if (!logf_) {
		fprintf(stderr, "rm-judge: %s: %s\n", log_s, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one_, sizeof(one_));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, sl) < 0 || listen(lfd, 128) < 0) {
		fprintf(stderr, "rm-judge: %s: %s\n", listen_s, strerror(errno));
		return 1;
	}
	if (ready) {
		FILE *f = fopen(ready, "w");

		if (!f || fprintf(f, "%s\n", listen_s) < 0 || fclose(f)) {
			fprintf(stderr, "rm-judge: %s: %s\n", ready, strerror(errno));
			return 1;
		}
	}
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pthread_t th;
		struct jc *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			fprintf(stderr, "rm-judge: accept: %s\n", strerror(errno));
			return 1;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->id = ++next_conn;
		if (pthread_create(&th, NULL, conn_main, c)) {
			close(fd);
			free(c);
			continue;
		}
		pthread_detach(th);
	}
}
