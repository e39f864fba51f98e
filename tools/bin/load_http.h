/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * load_http.h - the `rm-load http` client: HTTP/1.1 keep-alive GETs with optional
 * pipelining, a minimal strict response reader (Content-Length, chunked, close-delimited,
 * 1xx skipped), and the status / version histograms L7 tests use for weighted-split
 * statistics. Included once, by rm-load.c, after its shared state and I/O helpers.
 */
#ifndef RINGMESH_LOAD_HTTP_H
#define RINGMESH_LOAD_HTTP_H

#define RESP_MAX_HEAD (64 * 1024)

static void vcount_add(struct result *r, const char *v, uint64_t n)
{
	int i;

	for (i = 0; i < r->nver; i++)
		if (!strcmp(r->ver[i].v, v))
			break;
	if (i == r->nver) {
		if (r->nver == MAX_VERSIONS) {
			i = MAX_VERSIONS;
			snprintf(r->ver[i].v, sizeof(r->ver[i].v), "other");
		} else {
			snprintf(r->ver[i].v, sizeof(r->ver[i].v), "%s", v);
			r->nver++;
		}
	}
	r->ver[i].n += n;
}

struct rd {
	int fd;
	struct tc_buf b;
};

/* read more bytes into the buffer: >0 read, -EPIPE at EOF, -ETIMEDOUT, -errno */
static int rd_more(struct rd *r)
{
	char *t = tc_buf_reserve(&r->b, 65536);
	ssize_t n;

	if (!t)
		return -ENOMEM;
	do
		n = recv(r->fd, t, 65536, 0);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	r->b.len += n;
	return (int)n;
}

/* a whole line at the buffer head; returns its length without EOL, sets *adv */
static int rd_line(struct rd *r, size_t *adv)
{
	for (;;) {
		char *d = tc_buf_data(&r->b), *nl = r->b.len ? memchr(d, '\n', r->b.len) : NULL;
		int rc;

		if (nl) {
			size_t l = nl - d;

			*adv = l + 1;
			return (int)(l && d[l - 1] == '\r' ? l - 1 : l);
		}
		if (r->b.len > RESP_MAX_HEAD)
			return -EMSGSIZE;
		rc = rd_more(r);
		if (rc < 0)
			return rc;
	}
}

static int rd_skip(struct rd *r, uint64_t n)
{
	while (n) {
		int rc;

		if (r->b.len) {
			size_t k = r->b.len < n ? r->b.len : n;

			tc_buf_consume(&r->b, k);
			n -= k;
			continue;
		}
		rc = rd_more(r);
		if (rc < 0)
			return rc;
	}
	return 0;
}

struct resp {
	int status;
	bool close;	  /* the server will close after this response */
	char counted[64]; /* value of o.count_header, "none" when absent */
};

/* 0, or -errno; -EBADMSG for a malformed response */
static int http_read_response(struct rd *r, bool head_req, struct resp *out)
{
	for (;;) {
		size_t adv;
		int l = rd_line(r, &adv), http10;
		char *d;
		bool chunked = false, have_cl = false, ka10 = false;
		uint64_t cl = 0;
		int rc;

		if (l < 0)
			return l;
		d = tc_buf_data(&r->b);
		if (l < 12 || strncmp(d, "HTTP/1.", 7) || (d[7] != '0' && d[7] != '1') ||
		    d[8] != ' ' || !isdigit((unsigned char)d[9]) ||
		    !isdigit((unsigned char)d[10]) || !isdigit((unsigned char)d[11]))
			return -EBADMSG;
		http10 = d[7] == '0';
		out->status = (d[9] - '0') * 100 + (d[10] - '0') * 10 + (d[11] - '0');
		out->close = false;
		snprintf(out->counted, sizeof(out->counted), "none");
		tc_buf_consume(&r->b, adv);
		for (;;) {
			char *colon, *v, *ve;

			l = rd_line(r, &adv);
			if (l < 0)
				return l;
			d = tc_buf_data(&r->b);
			if (l == 0) {
				tc_buf_consume(&r->b, adv);
				break;
			}
			colon = memchr(d, ':', l);
			if (!colon)
				return -EBADMSG;
			v = colon + 1;
			ve = d + l;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (bh_token_eq(d, colon - d, "content-length")) {
				cl = 0;
				for (char *c = v; c < ve; c++) {
					if (!isdigit((unsigned char)*c))
						return -EBADMSG;
					cl = cl * 10 + (uint64_t)(*c - '0');
				}
				have_cl = v < ve;
			} else if (bh_token_eq(d, colon - d, "transfer-encoding")) {
				chunked = bh_list_has(v, ve - v, "chunked");
			} else if (bh_token_eq(d, colon - d, "connection")) {
				if (bh_list_has(v, ve - v, "close"))
					out->close = true;
				if (bh_list_has(v, ve - v, "keep-alive"))
					ka10 = true;
			} else if (bh_token_eq(d, colon - d, o.count_header)) {
				size_t n = ve - v < (long)sizeof(out->counted) - 1
					       ? (size_t)(ve - v)
					       : sizeof(out->counted) - 1;

				memcpy(out->counted, v, n);
				out->counted[n] = '\0';
				for (size_t i = 0; i < n; i++)
					if (out->counted[i] == ' ' || out->counted[i] == '=')
						out->counted[i] = '_';
			}
			tc_buf_consume(&r->b, adv);
		}
		if (http10 && !ka10)
			out->close = true;
		if (out->status >= 100 && out->status < 200)
			continue; /* interim response: the real one follows */
		if (head_req || out->status == 204 || out->status == 304)
			return 0;
		if (chunked) {
			for (;;) {
				uint64_t sz = 0;
				int i;

				l = rd_line(r, &adv);
				if (l < 0)
					return l;
				d = tc_buf_data(&r->b);
				for (i = 0; i < l && isxdigit((unsigned char)d[i]); i++)
					sz = sz * 16 +
					     (uint64_t)(isdigit((unsigned char)d[i])
							    ? d[i] - '0'
							    : tolower((unsigned char)d[i]) - 'a' +
								  10);
				if (!i || sz >> 48)
					return -EBADMSG;
				tc_buf_consume(&r->b, adv);
				if (!sz)
					break;
				rc = rd_skip(r, sz);
				if (rc)
					return rc;
				l = rd_line(r, &adv);
				if (l < 0)
					return l;
				if (l)
					return -EBADMSG;
				tc_buf_consume(&r->b, adv);
			}
			do { /* trailers */
				l = rd_line(r, &adv);
				if (l < 0)
					return l;
				tc_buf_consume(&r->b, adv);
			} while (l);
			return 0;
		}
		if (have_cl)
			return rd_skip(r, cl);
		/* close-delimited body */
		out->close = true;
		for (;;) {
			tc_buf_consume(&r->b, r->b.len);
			rc = rd_more(r);
			if (rc == -EPIPE)
				return 0;
			if (rc < 0)
				return rc;
		}
	}
}

static void *http_thread(void *arg)
{
	struct result *res = arg;
	struct rd r = {.fd = -1};
	struct tc_buf req = {0}, batch = {0};
	bool head_req = !strcmp(o.method, "HEAD");
	char err[160];
	uint64_t k;

	tc_buf_printf(&req, "%s %s HTTP/1.1\r\n", o.method, o.path);
	if (!o.have_host)
		tc_buf_printf(&req, "Host: %s\r\n", o.connect_s);
	for (int i = 0; i < o.nheaders; i++)
		tc_buf_printf(&req, "%s\r\n", o.headers[i]);
	tc_buf_printf(&req, "User-Agent: rm-load\r\n\r\n");
	for (unsigned int i = 0; i < o.pipeline; i++)
		tc_buf_append(&batch, tc_buf_data(&req), req.len);

	while ((k = claim(o.pipeline))) {
		uint64_t t0, done = 0;
		int rc;

		if (r.fd < 0) {
			r.fd = dial(err, sizeof(err));
			if (r.fd < 0) {
				res->errors += k;
				fail("conn %u: %s", res->idx, err);
				if (!o.allow_errors)
					break;
				usleep(10000); /* don't burn the request budget in a tight loop */
				continue;
			}
			r.b.off = r.b.len = 0;
		}
		t0 = mono_ns();
		rc = write_all(r.fd, tc_buf_data(&batch), req.len * k);
		for (; !rc && done < k; done++) {
			struct resp rp;

			rc = http_read_response(&r, head_req, &rp);
			if (rc)
				break;
			res->ok++;
			res->status[rp.status < 600 ? rp.status : 0]++;
			vcount_add(res, rp.counted, 1);
			tc_hist_add(res->lat, mono_ns() - t0);
			if (rp.close) {
				/* requests pipelined behind a closing response go unanswered */
				done++;
				if (done < k) {
					res->errors += k - done;
					fail("conn %u: server closed with %lu pipelined requests "
					     "unanswered",
					     res->idx, k - done);
				}
				done = k;
				close(r.fd);
				r.fd = -1;
				res->reconnects++;
				break;
			}
		}
		if (rc) {
			res->errors += k - done;
			fail("conn %u: request failed: %s", res->idx,
			     rc == -EBADMSG ? "malformed response" : io_err(rc));
			close(r.fd);
			r.fd = -1;
			res->reconnects++;
			if (!o.allow_errors)
				break;
		}
	}
	if (r.fd >= 0)
		close(r.fd);
	tc_buf_free(&r.b);
	tc_buf_free(&req);
	tc_buf_free(&batch);
	return NULL;
}

static void http_report(struct result *tot)
{
	bool first = true;

	printf(o.json ? ",\"reconnects\":%lu,\"status\":{" : " reconnects=%lu", tot->reconnects);
	for (int s = 0; s < 600; s++) {
		if (!tot->status[s])
			continue;
		printf(o.json ? "%s\"%d\":%lu" : "%sstatus.%d=%lu",
		       !o.json ? " "
		       : first ? ""
			       : ",",
		       s, tot->status[s]);
		first = false;
	}
	first = true;
	printf(o.json ? "},\"versions\":{" : "");
	for (int v = 0; v <= MAX_VERSIONS; v++) {
		if (!tot->ver[v].n)
			continue;
		if (o.json) {
			struct tc_buf b = {0};

			tc_buf_json_str(&b, tot->ver[v].v, strlen(tot->ver[v].v));
			printf("%s\"%.*s\":%lu", first ? "" : ",", (int)b.len, tc_buf_data(&b),
			       tot->ver[v].n);
			tc_buf_free(&b);
		} else {
			printf(" version.%s=%lu", tot->ver[v].v, tot->ver[v].n);
		}
		first = false;
	}
	if (o.json)
		printf("}");
}

#endif /* RINGMESH_LOAD_HTTP_H */
