/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The Zipkin span of a proxied request, as Envoy's outbound listener reports it
 * (REFERENCE.md section 4): kind CLIENT, id = the x-b3-spanid sent upstream,
 * parentId = the caller's span, name "<host>:<port>/" plus a star, Istio's tags.
 * The request's part is taken when its head goes upstream (the head's bytes may
 * be reused by the end); the outcome's part when it is recorded, then the record
 * is copied into the worker's queue (spans.c). Only sampled requests get here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/zipkin.h"
#include "ringmeshd/l7_int.h"
#include "ringmeshd/spans.h"

/*
 * localEndpoint.serviceName: Istio's "<app>.<namespace>" of the calling pod, from the
 * pod identity connect4 recorded (rm_workload, through the worker's cache): the app
 * label, else the canonical service, else the workload. "unknown" for a caller with
 * no record, which is what Envoy reports without a local cluster name.
 */
static void caller_service(struct l7_worker *lw, const struct l7_conn *c, char *out, size_t cap)
{
	const struct rm_workload *w = l7_src_record(lw, c);
	const char *name = !w		     ? NULL
			   : w->app[0]	     ? w->app
			   : w->canon_svc[0] ? w->canon_svc
			   : w->workload[0]  ? w->workload
					     : NULL;

	if (name && w->ns[0])
		snprintf(out, cap, "%s.%s", name, w->ns);
	else
		snprintf(out, cap, "unknown");
}

static void set_slice(char *f, size_t cap, struct http_slice s)
{
	zipkin_set(f, cap, s.p, s.len);
}

void l7c_span_begin(struct l7_worker *lw, struct l7_conn *c)
{
	struct cfgw_cfg *cfg = c->fw.cfg;
	const struct http_request *rq = &c->rq.req;
	struct zipkin_span *z;
	const char *host = route_service_host(cfg->t, c->fw.d.target_service);
	const char *subset = route_subset_name(cfg->t, c->fw.d.target_subset);
	unsigned int port = ntohs(c->fw.d.target_port ? c->fw.d.target_port : c->cl.port);
	struct http_slice auth = rq->has_host ? rq->host : rq->authority;

	if (!c->zk && !(c->zk = malloc(sizeof(*c->zk))))
		return; /* no memory: no span, the request goes on */
	z = c->zk;
	memset(z, 0, sizeof(*z));
	if (!host)
		host = "unknown";
	snprintf(z->name, sizeof(z->name), "%s:%u/*", host, port);
	snprintf(z->cluster, sizeof(z->cluster), "outbound|%u|%s|%s", port, subset ? subset : "",
		 host);
	caller_service(lw, c, z->service, sizeof(z->service));
	set_slice(z->method, sizeof(z->method), rq->method);
	snprintf(z->protocol, sizeof(z->protocol), "HTTP/1.%d", rq->version_minor);
	/* the full original URI, as Envoy's http.url */
	if (rq->form == HTTP_TF_ABSOLUTE)
		set_slice(z->url, sizeof(z->url), rq->target);
	else
		snprintf(z->url, sizeof(z->url), "http://%.*s%.*s", (int)auth.len, auth.p,
			 (int)rq->target.len, rq->target.p);
	for (size_t i = 0; i < rq->n_headers; i++) {
		const struct http_header *h = &rq->headers[i];

		if (h->name.len == 10 && !strncasecmp(h->name.p, "user-agent", 10)) {
			set_slice(z->user_agent, sizeof(z->user_agent), h->value);
			break;
		}
	}
	snprintf(z->request_id, sizeof(z->request_id), "%s", c->fw.tc.request_id);
	if (c->cl.peer.ss_family == AF_INET)
		z->local_ip = ((const struct sockaddr_in *)&c->cl.peer)->sin_addr.s_addr;
	c->fw.span = true;
}

void l7c_span_end(struct l7_worker *lw, struct l7_conn *c)
{
	const struct trace_ctx *t = &c->fw.tc;
	struct zipkin_span *z = c->zk, *q;
	uint64_t now = mono_ns(), dur = now > c->mt.t0 ? now - c->mt.t0 : 0;

	c->fw.span = false;
	if (!z || !lw->sh->spans)
		return;
	z->trace128 = t->trace128;
	z->trace_hi = t->trace_hi;
	z->trace_lo = t->trace_lo;
	z->id = t->span_id;
	z->parent_id = t->parent_id;
	z->debug = t->debug;
	z->dur_us = dur / 1000 ? dur / 1000 : 1;
	z->ts_us = (realtime_ns() - dur) / 1000;
	if (c->fw.uss.ss_family == AF_INET) {
		const struct sockaddr_in *u = (const struct sockaddr_in *)&c->fw.uss;

		z->remote_ip = u->sin_addr.s_addr;
		z->remote_port = ntohs(u->sin_port);
	}
	z->status = (uint16_t)c->mt.status;
	z->flags = c->mt.sflags;
	z->req_size = c->rq.bmode == L7_BM_KEPT ? c->rq.req_end - c->rq.head_len : c->rq.rb.wire;
	z->resp_size = c->mt.resp_bytes;
	q = spans_slot(lw->sh->spans, lw->id);
	if (!q)
		return; /* queue full: counted, the request is not held up */
	*q = *z;
	spans_commit(lw->sh->spans, lw->id);
}
