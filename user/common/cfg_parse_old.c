/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_parse_old: Istio 0.x documents (config.istio.io RouteRule and
 * DestinationPolicy) into the IR, with the old API's defaults: 15s timeout,
 * Envoy's 1024 limits, retries on 5xx/connect-failure/reset. */
#include <errno.h>
#include <string.h>

#include "common/cfg_ir.h"

/* IstioService {name, namespace, domain, service, labels} -> FQDN (+labels). */
static int old_service(struct cfg_ctx *c, yaml_node_t *n, const char *what, const char **host,
		       struct cfg_lset *labels, bool need)
{
	yaml_node_t *name, *ns, *domain, *svc, *lab;
	const struct cfg_field f[] = {{"name", &name},	 {"namespace", &ns}, {"domain", &domain},
				      {"service", &svc}, {"labels", &lab},   {NULL, NULL}};
	const char *sname = NULL, *sns = NULL, *sdom = NULL;
	int r;

	if ((r = cfg_fields(c, n, what, f)))
		return r;
	if (name && svc)
		return cfg_errf(c, svc, "%s: give name or service, not both", what);
	if (!name && !svc && need)
		return cfg_errf(c, n, "%s: missing required field \"name\"", what);
	if ((name && (r = cfg_str_of(c, name, "name", &sname))) ||
	    (svc && (r = cfg_str_of(c, svc, "service", &sname))) ||
	    (ns && (r = cfg_str_of(c, ns, "namespace", &sns))) ||
	    (domain && (r = cfg_str_of(c, domain, "domain", &sdom))))
		return r;
	if (sname && !*sname)
		return cfg_errf(c, name ? name : svc, "%s: empty service name", what);
	*host = sname ? cfg_fqdn(c, sname, sns, sdom) : NULL;
	if (sname && !*host)
		return -ENOMEM;
	if (lab) {
		if (!labels)
			return cfg_errf(c, lab, "%s: labels are not allowed here", what);
		if ((r = cfg_labels_of(c, lab, "labels", labels)))
			return r;
	}
	return 0;
}

static int old_match(struct cfg_ctx *c, yaml_node_t *n, struct cfg_http_ir *h)
{
	yaml_node_t *src, *req, *hdrs, *tcp, *udp;
	const struct cfg_field f[] = {
	    {"source", &src}, {"request", &req}, {"tcp", &tcp}, {"udp", &udp}, {NULL, NULL}};
	const struct cfg_field rf[] = {{"headers", &hdrs}, {NULL, NULL}};
	struct cfg_match_ir *m;
	int r;

	if ((r = cfg_fields(c, n, "match", f)))
		return r;
	if (tcp || udp)
		return cfg_unsupported(c, tcp ? tcp : udp, "L4 match");
	m = h->m = cfg_arena_alloc(c->arena, sizeof(*m));
	if (!m)
		return -ENOMEM;
	h->nm = 1;
	if (src && (r = old_service(c, src, "match.source", &m->src_name, &m->src, false)))
		return r;
	if (!req)
		return 0;
	if ((r = cfg_fields(c, req, "match.request", rf)))
		return r;
	if (!hdrs)
		return 0;
	if (hdrs->type != YAML_MAPPING_NODE)
		return cfg_errf(c, hdrs, "match.request.headers must be a mapping");
	m->c = cfg_arena_alloc(c->arena, sizeof(*m->c) * (hdrs->data.mapping.pairs.top -
							  hdrs->data.mapping.pairs.start));
	if (!m->c)
		return -ENOMEM;
	for (yaml_node_pair_t *p = hdrs->data.mapping.pairs.start; p < hdrs->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = cfg_item(c, p->key), *v = cfg_item(c, p->value);
		struct cfg_cond_ir *cd = &m->c[m->n];
		const char *name;

		if ((r = cfg_str_of(c, k, "header name", &name)) ||
		    (r = cfg_header_name(c, k, name)))
			return r;
		for (unsigned i = 0; i < m->n; i++)
			if (m->c[i].name && !strcmp(m->c[i].name, name))
				return cfg_errf(c, k, "duplicate header \"%s\"", name);
		if (!strcmp(name, "uri"))
			cd->field = RM_MF_URI;
		else if (!strcmp(name, "method"))
			cd->field = RM_MF_METHOD;
		else if (!strcmp(name, "authority"))
			cd->field = RM_MF_AUTHORITY;
		else if (!strcmp(name, "scheme"))
			cd->field = RM_MF_SCHEME;
		else
			cd->field = RM_MF_HEADER;
		cd->name = name;
		if ((r = cfg_strmatch_of(c, v, name, &cd->op, &cd->value)))
			return r;
		if (cd->field != RM_MF_HEADER)
			cd->name = NULL;
		m->n++;
	}
	return 0;
}

static int old_routes(struct cfg_ctx *c, yaml_node_t *n, struct cfg_http_ir *h, const char *host)
{
	yaml_node_item_t *it;
	unsigned cnt, total = 0;
	int r;

	if ((r = cfg_seq_of(c, n, "route", &it, &cnt)))
		return r;
	if (!cnt)
		return 0;
	h->r = cfg_arena_alloc(c->arena, sizeof(*h->r) * cnt);
	if (!h->r)
		return -ENOMEM;
	for (unsigned i = 0; i < cnt; i++) {
		yaml_node_t *e = cfg_item(c, it[i]), *lab, *w, *dst;
		const struct cfg_field f[] = {
		    {"labels", &lab}, {"weight", &w}, {"destination", &dst}, {NULL, NULL}};
		struct cfg_dest_ir *d = &h->r[i];
		int64_t v;

		if ((r = cfg_fields(c, e, "route entry", f)))
			return r;
		d->pos = cfg_node_pos(c, e);
		d->host = host;
		if (dst && (r = old_service(c, dst, "route.destination", &d->host, NULL, true)))
			return r;
		if (lab && (r = cfg_labels_of(c, lab, "route labels", &d->labels)))
			return r;
		if (w) {
			if ((r = cfg_int_of(c, w, "weight", 0, 100, &v)))
				return r;
			d->weight = (uint32_t)v;
		} else {
			d->weight = cnt == 1 ? 100 : 0;
		}
		total += d->weight;
	}
	h->nr = cnt;
	if (total != 100)
		return cfg_errf(c, n, "route weights total %u, must total 100", total);
	return 0;
}

/* {uri, authority} for rewrite and redirect */
static int uri_auth(struct cfg_ctx *c, yaml_node_t *n, const char *what, const char **uri,
		    const char **auth)
{
	yaml_node_t *u, *a;
	const struct cfg_field f[] = {{"uri", &u}, {"authority", &a}, {NULL, NULL}};
	int r;

	if ((r = cfg_fields(c, n, what, f)))
		return r;
	if (!u && !a)
		return cfg_errf(c, n, "%s needs uri or authority", what);
	if ((u && (r = cfg_str_of(c, u, "uri", uri))) ||
	    (a && (r = cfg_str_of(c, a, "authority", auth))))
		return r;
	return 0;
}

int cfg_parse_routerule(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir)
{
	yaml_node_t *dst, *prec, *match, *route, *redir, *rew, *ws, *tmo, *rty, *fault, *l4f,
	    *mirror, *cors, *app;
	const struct cfg_field f[] = {
	    {"destination", &dst},     {"precedence", &prec},	 {"match", &match},
	    {"route", &route},	       {"redirect", &redir},	 {"rewrite", &rew},
	    {"websocketUpgrade", &ws}, {"httpReqTimeout", &tmo}, {"httpReqRetries", &rty},
	    {"httpFault", &fault},     {"l4Fault", &l4f},	 {"mirror", &mirror},
	    {"corsPolicy", &cors},     {"appendHeaders", &app},	 {NULL, NULL}};
	struct cfg_http_ir *h;
	struct cfg_lset dl = {0};
	int64_t v;
	int r;

	if ((r = cfg_fields(c, spec, "RouteRule spec", f)))
		return r;
	if ((r = cfg_need(c, spec, dst, "destination")))
		return r;
	ir->hosts = cfg_arena_alloc(c->arena, sizeof(*ir->hosts));
	h = ir->http = cfg_arena_alloc(c->arena, sizeof(*h));
	if (!ir->hosts || !h)
		return -ENOMEM;
	ir->nhosts = ir->nhttp = 1;
	if ((r = old_service(c, dst, "destination", &ir->hosts[0], &dl, true)))
		return r;
	if (dl.n)
		return cfg_errf(c, dst,
				"destination.labels must be empty in a RouteRule (route "
				"labels select versions)");
	h->pos = ir->pos;
	if (prec) {
		if ((r = cfg_int_of(c, prec, "precedence", INT32_MIN, INT32_MAX, &v)))
			return r;
		h->precedence = (int32_t)v;
	}
	if (match && (r = old_match(c, match, h)))
		return r;
	if (route && (r = old_routes(c, route, h, ir->hosts[0])))
		return r;
	if (redir && route)
		return cfg_errf(c, redir, "a RouteRule has either route or redirect, not both");
	if (redir) {
		if ((r = uri_auth(c, redir, "redirect", &h->redirect_uri, &h->redirect_auth)))
			return r;
		h->redirect_code = 302;
		h->flags |= RM_RF_REDIRECT;
	}
	if (rew) {
		if ((r = uri_auth(c, rew, "rewrite", &h->rewrite_uri, &h->rewrite_auth)))
			return r;
		h->flags |= RM_RF_REWRITE;
	}
	if (ws) {
		bool b;

		if ((r = cfg_bool_of(c, ws, "websocketUpgrade", &b)))
			return r;
		if (b)
			h->flags |= RM_RF_WEBSOCKET;
	}
	h->timeout_ns = RM_CFG_OLD_DEFAULT_TIMEOUT_NS;
	h->flags |= RM_RF_TIMEOUT_DEFAULT;
	if (tmo) {
		yaml_node_t *st, *t, *ovr;
		const struct cfg_field tf[] = {{"simpleTimeout", &st}, {NULL, NULL}};
		const struct cfg_field sf[] = {
		    {"timeout", &t}, {"overrideHeaderName", &ovr}, {NULL, NULL}};

		if ((r = cfg_fields(c, tmo, "httpReqTimeout", tf)) ||
		    (r = cfg_need(c, tmo, st, "simpleTimeout")) ||
		    (r = cfg_fields(c, st, "simpleTimeout", sf)))
			return r;
		if (ovr)
			return cfg_unsupported(c, ovr, "overrideHeaderName");
		if (t) {
			if ((r = cfg_dur_of(c, t, "timeout", &h->timeout_ns)))
				return r;
			h->flags &= ~RM_RF_TIMEOUT_DEFAULT;
		}
	}
	if (rty) {
		yaml_node_t *sr, *att, *ptt, *ovr;
		const struct cfg_field tf[] = {{"simpleRetry", &sr}, {NULL, NULL}};
		const struct cfg_field sf[] = {{"attempts", &att},
					       {"perTryTimeout", &ptt},
					       {"overrideHeaderName", &ovr},
					       {NULL, NULL}};

		if ((r = cfg_fields(c, rty, "httpReqRetries", tf)) ||
		    (r = cfg_need(c, rty, sr, "simpleRetry")) ||
		    (r = cfg_fields(c, sr, "simpleRetry", sf)) ||
		    (r = cfg_need(c, sr, att, "attempts")) ||
		    (r = cfg_int_of(c, att, "attempts", 0, 100, &v)))
			return r;
		if (ovr)
			return cfg_unsupported(c, ovr, "overrideHeaderName");
		h->retry_attempts = (uint32_t)v;
		if (ptt && (r = cfg_dur_of(c, ptt, "perTryTimeout", &h->retry_per_try_ns)))
			return r;
		if (h->retry_attempts) {
			h->retry_on = RM_RETRY_OLD_API_DEFAULT;
			h->flags |= RM_RF_RETRIES;
		}
	}
	if (fault && (r = cfg_fault_of(c, fault, false, h)))
		return r;
	if (l4f)
		return cfg_unsupported(c, l4f, "l4Fault");
	if (mirror) {
		if ((r = old_service(c, mirror, "mirror", &h->mirror.host, &h->mirror.labels,
				     true)))
			return r;
		h->mirror.pos = cfg_node_pos(c, mirror);
		h->mirror_ppm = 1000000;
		h->flags |= RM_RF_MIRROR;
	}
	if (cors && (r = cfg_cors_of(c, cors, h, false)))
		return r;
	if (app) {
		yaml_node_pair_t *p;

		if (app->type != YAML_MAPPING_NODE)
			return cfg_errf(c, app, "appendHeaders must be a mapping");
		h->h = cfg_arena_alloc(c->arena, sizeof(*h->h) * (app->data.mapping.pairs.top -
								  app->data.mapping.pairs.start));
		if (!h->h)
			return -ENOMEM;
		for (p = app->data.mapping.pairs.start; p < app->data.mapping.pairs.top; p++) {
			yaml_node_t *k = cfg_item(c, p->key), *val = cfg_item(c, p->value);
			struct cfg_hop_ir *o = &h->h[h->nh];

			if ((r = cfg_str_of(c, k, "header name", &o->name)) ||
			    (r = cfg_header_name(c, k, o->name)) ||
			    (r = cfg_str_of(c, val, "header value", &o->value)))
				return r;
			o->kind = RM_HDR_ADD;
			h->nh++;
		}
	}
	return 0;
}

/* simpleCb with the old API's defaults (TRAFFIC.md). */
static int simple_cb(struct cfg_ctx *c, yaml_node_t *n, struct rm_cfg_breaker *cb)
{
	yaml_node_t *mc, *mp, *mr, *sw, *ce, *di, *rpc, *mep, *mrt;
	const struct cfg_field f[] = {{"maxConnections", &mc},
				      {"httpMaxPendingRequests", &mp},
				      {"httpMaxRequests", &mr},
				      {"sleepWindow", &sw},
				      {"httpConsecutiveErrors", &ce},
				      {"httpDetectionInterval", &di},
				      {"httpMaxRequestsPerConnection", &rpc},
				      {"httpMaxEjectionPercent", &mep},
				      {"httpMaxRetries", &mrt},
				      {NULL, NULL}};
	const struct cfg_u32_field ints[] = {
	    {&mc, "maxConnections", 1, UINT32_MAX - 1, &cb->max_connections},
	    {&mp, "httpMaxPendingRequests", 1, UINT32_MAX - 1, &cb->max_pending},
	    {&mr, "httpMaxRequests", 1, UINT32_MAX - 1, &cb->max_requests},
	    {&ce, "httpConsecutiveErrors", 0, UINT32_MAX - 1, &cb->consecutive_errors},
	    {&rpc, "httpMaxRequestsPerConnection", 0, UINT32_MAX - 1, &cb->max_requests_per_conn},
	    {&mep, "httpMaxEjectionPercent", 0, 100, &cb->max_ejection_percent},
	    {&mrt, "httpMaxRetries", 0, UINT32_MAX - 1, &cb->max_retries},
	};
	uint64_t ns;
	int r;

	if ((r = cfg_fields(c, n, "simpleCb", f)) ||
	    (r = cfg_u32_fields(c, ints, sizeof(ints) / sizeof(ints[0]))))
		return r;
	if (sw) {
		if ((r = cfg_dur_of(c, sw, "sleepWindow", &ns)))
			return r;
		cb->base_ejection_ns = ns;
	}
	if (di) {
		if ((r = cfg_dur_of(c, di, "httpDetectionInterval", &ns)))
			return r;
		cb->interval_ns = ns;
	}
	if (sw && !cb->base_ejection_ns)
		return cfg_errf(c, sw, "sleepWindow must be positive");
	if (di && !cb->interval_ns)
		return cfg_errf(c, di, "httpDetectionInterval must be positive");
	cb->outlier = 1;
	return 0;
}

int cfg_parse_destpolicy(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir)
{
	yaml_node_t *dst, *src, *lb, *cb, *lname, *scb, *custom;
	const struct cfg_field f[] = {{"destination", &dst},  {"source", &src},
				      {"loadBalancing", &lb}, {"circuitBreaker", &cb},
				      {"custom", &custom},    {NULL, NULL}};
	const struct cfg_field lf[] = {{"name", &lname}, {NULL, NULL}};
	const struct cfg_field cf[] = {{"simpleCb", &scb}, {NULL, NULL}};
	struct cfg_subset_ir *s;
	int r;

	if ((r = cfg_fields(c, spec, "DestinationPolicy spec", f)))
		return r;
	if ((r = cfg_need(c, spec, dst, "destination")))
		return r;
	if (src)
		return cfg_errf(c, src, "source-specific policies are not supported by ringmesh");
	if (custom)
		return cfg_errf(c, custom, "custom policies are not supported by ringmesh");
	s = ir->subsets = cfg_arena_alloc(c->arena, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ir->nsubsets = 1;
	s->pos = ir->pos;
	if ((r = old_service(c, dst, "destination", &ir->host, &s->labels, true)))
		return r;
	s->pol.set = true;
	cfg_breaker_old_defaults(&s->pol.cb);
	s->pol.cb.outlier = 0;
	s->pol.lb = RM_LB_ROUND_ROBIN;
	if (lb) {
		const char *n;

		if ((r = cfg_fields(c, lb, "loadBalancing", lf)) ||
		    (r = cfg_need(c, lb, lname, "name")) || (r = cfg_str_of(c, lname, "name", &n)))
			return r;
		if (!strcmp(n, "ROUND_ROBIN"))
			s->pol.lb = RM_LB_ROUND_ROBIN;
		else if (!strcmp(n, "LEAST_CONN"))
			s->pol.lb = RM_LB_LEAST_CONN;
		else if (!strcmp(n, "RANDOM"))
			s->pol.lb = RM_LB_RANDOM;
		else
			return cfg_errf(c, lname,
					"unknown load balancer \"%s\" (ROUND_ROBIN, "
					"LEAST_CONN, RANDOM)",
					n);
		s->pol.has_lb = true;
	}
	if (cb) {
		if ((r = cfg_fields(c, cb, "circuitBreaker", cf)) ||
		    (r = cfg_need(c, cb, scb, "simpleCb")) || (r = simple_cb(c, scb, &s->pol.cb)))
			return r;
		s->pol.has_pool = s->pol.has_outlier = true;
	}
	return 0;
}
