/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_parse_new: networking.istio.io documents (VirtualService, DestinationRule,
 * ServiceEntry, WorkloadEntry) into the IR, with the modern API's defaults: no
 * timeout, unlimited pool limits, outlier detection only when configured. */
#include <errno.h>
#include <string.h>

#include "common/cfg_ir.h"

static int destination(struct cfg_ctx *c, yaml_node_t *n, const char *what, struct cfg_dest_ir *d)
{
	yaml_node_t *host, *subset, *port, *num;
	const struct cfg_field f[] = {
	    {"host", &host}, {"subset", &subset}, {"port", &port}, {NULL, NULL}};
	const struct cfg_field pf[] = {{"number", &num}, {NULL, NULL}};
	const char *h;
	int64_t v;
	int r;

	d->pos = cfg_node_pos(c, n);
	if ((r = cfg_fields(c, n, what, f)) || (r = cfg_need(c, n, host, "host")) ||
	    (r = cfg_str_of(c, host, "host", &h)))
		return r;
	if (!*h || strchr(h, '*'))
		return cfg_errf(c, host, "%s.host must name one service", what);
	d->host = cfg_fqdn(c, h, NULL, NULL);
	if (!d->host)
		return -ENOMEM;
	if (subset && (r = cfg_str_of(c, subset, "subset", &d->subset)))
		return r;
	if (port) {
		if ((r = cfg_fields(c, port, "port", pf)) ||
		    (r = cfg_need(c, port, num, "number")) ||
		    (r = cfg_int_of(c, num, "port.number", 1, 65535, &v)))
			return r;
		d->port = (uint16_t)v;
	}
	return 0;
}

static int match_entry(struct cfg_ctx *c, yaml_node_t *n, struct cfg_match_ir *m)
{
	yaml_node_t *name, *uri, *scheme, *method, *auth, *hdrs, *port, *sl, *gw, *qp, *iuc, *woh,
	    *sns, *sname;
	const struct cfg_field f[] = {
	    {"name", &name},	       {"uri", &uri},		{"scheme", &scheme},
	    {"method", &method},       {"authority", &auth},	{"headers", &hdrs},
	    {"port", &port},	       {"sourceLabels", &sl},	{"gateways", &gw},
	    {"queryParams", &qp},      {"ignoreUriCase", &iuc}, {"withoutHeaders", &woh},
	    {"sourceNamespace", &sns}, {"statPrefix", &sname},	{NULL, NULL}};
	struct {
		yaml_node_t *n;
		uint8_t field;
		const char *what;
	} fixed[4];
	unsigned nh = 0;
	int r;

	if ((r = cfg_fields(c, n, "match", f)))
		return r;
	if (port || gw || qp || iuc || woh || sname) {
		yaml_node_t *x = port ? port : gw ? gw : qp ? qp : iuc ? iuc : woh ? woh : sname;

		return cfg_errf(c, x, "this match field is not supported by ringmesh");
	}
	if (name && name->type != YAML_SCALAR_NODE)
		return cfg_errf(c, name, "match.name must be a string");
	fixed[0].n = uri, fixed[0].field = RM_MF_URI, fixed[0].what = "uri";
	fixed[1].n = scheme, fixed[1].field = RM_MF_SCHEME, fixed[1].what = "scheme";
	fixed[2].n = method, fixed[2].field = RM_MF_METHOD, fixed[2].what = "method";
	fixed[3].n = auth, fixed[3].field = RM_MF_AUTHORITY, fixed[3].what = "authority";
	if (hdrs) {
		if (hdrs->type != YAML_MAPPING_NODE)
			return cfg_errf(c, hdrs, "match.headers must be a mapping");
		nh = (unsigned)(hdrs->data.mapping.pairs.top - hdrs->data.mapping.pairs.start);
	}
	m->c = cfg_arena_alloc(c->arena, sizeof(*m->c) * (4 + nh));
	if (!m->c)
		return -ENOMEM;
	for (int i = 0; i < 4; i++) {
		struct cfg_cond_ir *cd = &m->c[m->n];

		if (!fixed[i].n)
			continue;
		cd->field = fixed[i].field;
		if ((r = cfg_strmatch_of(c, fixed[i].n, fixed[i].what, &cd->op, &cd->value)))
			return r;
		m->n++;
	}
	for (unsigned i = 0; i < nh; i++) {
		yaml_node_pair_t *p = &hdrs->data.mapping.pairs.start[i];
		yaml_node_t *k = cfg_item(c, p->key), *v = cfg_item(c, p->value);
		struct cfg_cond_ir *cd = &m->c[m->n];

		if ((r = cfg_str_of(c, k, "header name", &cd->name)) ||
		    (r = cfg_header_name(c, k, cd->name)) ||
		    (r = cfg_strmatch_of(c, v, cd->name, &cd->op, &cd->value)))
			return r;
		cd->field = RM_MF_HEADER;
		m->n++;
	}
	if (sl && (r = cfg_labels_of(c, sl, "sourceLabels", &m->src)))
		return r;
	if (sns) {
		if ((r = cfg_str_of(c, sns, "sourceNamespace", &m->src_ns)))
			return r;
		if (!*m->src_ns)
			return cfg_errf(c, sns, "sourceNamespace must not be empty");
	}
	return 0;
}

static int header_ops(struct cfg_ctx *c, yaml_node_t *n, struct cfg_http_ir *h)
{
	yaml_node_t *dir[2];
	const struct cfg_field f[] = {{"request", &dir[0]}, {"response", &dir[1]}, {NULL, NULL}};
	unsigned total = 0;
	int r;

	if ((r = cfg_fields(c, n, "headers", f)))
		return r;
	for (int d = 0; d < 2; d++) {
		yaml_node_t *set, *add, *rem;
		const struct cfg_field of[] = {
		    {"set", &set}, {"add", &add}, {"remove", &rem}, {NULL, NULL}};
		yaml_node_t *ops[3];

		if (!dir[d])
			continue;
		if ((r = cfg_fields(c, dir[d], d ? "headers.response" : "headers.request", of)))
			return r;
		ops[0] = set, ops[1] = add, ops[2] = rem;
		for (int o = 0; o < 3; o++) {
			if (!ops[o])
				continue;
			if (o < 2 && ops[o]->type != YAML_MAPPING_NODE)
				return cfg_errf(c, ops[o], "headers %s must be a mapping",
						o ? "add" : "set");
			if (o == 2 && ops[o]->type != YAML_SEQUENCE_NODE)
				return cfg_errf(c, ops[o], "headers remove must be a list");
			total += o < 2 ? (unsigned)(ops[o]->data.mapping.pairs.top -
						    ops[o]->data.mapping.pairs.start)
				       : (unsigned)(ops[o]->data.sequence.items.top -
						    ops[o]->data.sequence.items.start);
		}
		h->h = h->h ? h->h : cfg_arena_alloc(c->arena, sizeof(*h->h) * 256);
		if (!h->h)
			return -ENOMEM;
		if (total > 256)
			return cfg_errf(c, n, "too many header operations (at most 256)");
		for (int o = 0; o < 3; o++) {
			if (!ops[o])
				continue;
			if (o < 2) {
				yaml_node_pair_t *p;

				for (p = ops[o]->data.mapping.pairs.start;
				     p < ops[o]->data.mapping.pairs.top; p++) {
					yaml_node_t *k = cfg_item(c, p->key),
						    *v = cfg_item(c, p->value);
					struct cfg_hop_ir *op = &h->h[h->nh];

					if ((r = cfg_str_of(c, k, "header name", &op->name)) ||
					    (r = cfg_header_name(c, k, op->name)) ||
					    (r = cfg_str_of(c, v, "header value", &op->value)))
						return r;
					op->kind = o ? RM_HDR_ADD : RM_HDR_SET;
					op->resp = (uint8_t)d;
					h->nh++;
				}
			} else {
				yaml_node_item_t *it;

				for (it = ops[o]->data.sequence.items.start;
				     it < ops[o]->data.sequence.items.top; it++) {
					yaml_node_t *k = cfg_item(c, *it);
					struct cfg_hop_ir *op = &h->h[h->nh];

					if ((r = cfg_str_of(c, k, "header name", &op->name)) ||
					    (r = cfg_header_name(c, k, op->name)))
						return r;
					op->kind = RM_HDR_REMOVE;
					op->resp = (uint8_t)d;
					h->nh++;
				}
			}
		}
	}
	return 0;
}

static const struct {
	const char *name;
	uint32_t bit;
} retry_names[] = {
    {"5xx", RM_RETRY_5XX},
    {"gateway-error", RM_RETRY_GATEWAY_ERROR},
    {"connect-failure", RM_RETRY_CONNECT_FAILURE},
    {"reset", RM_RETRY_RESET},
    {"retriable-4xx", RM_RETRY_RETRIABLE_4XX},
    {"refused-stream", RM_RETRY_REFUSED_STREAM},
    {"retriable-status-codes", RM_RETRY_RETRIABLE_CODES},
    {"unavailable", RM_RETRY_UNAVAILABLE},
    {"cancelled", RM_RETRY_CANCELLED},
    {"deadline-exceeded", RM_RETRY_DEADLINE_EXCEEDED},
    {"resource-exhausted", RM_RETRY_RESOURCE_EXHAUSTED},
};

static int retries(struct cfg_ctx *c, yaml_node_t *n, struct cfg_http_ir *h)
{
	yaml_node_t *att, *ptt, *on, *rrl, *rrc;
	const struct cfg_field f[] = {{"attempts", &att},
				      {"perTryTimeout", &ptt},
				      {"retryOn", &on},
				      {"retryRemoteLocalities", &rrl},
				      {"retryOnConnectFailure", &rrc},
				      {NULL, NULL}};
	int64_t v;
	int r;

	if ((r = cfg_fields(c, n, "retries", f)) || (r = cfg_need(c, n, att, "attempts")) ||
	    (r = cfg_int_of(c, att, "attempts", 0, 100, &v)))
		return r;
	if (rrl || rrc)
		return cfg_unsupported(c, rrl ? rrl : rrc, "this retry field");
	h->retry_attempts = (uint32_t)v;
	if (ptt && (r = cfg_dur_of(c, ptt, "perTryTimeout", &h->retry_per_try_ns)))
		return r;
	/* Istio's default retryOn. */
	h->retry_on = RM_RETRY_CONNECT_FAILURE | RM_RETRY_REFUSED_STREAM | RM_RETRY_UNAVAILABLE |
		      RM_RETRY_CANCELLED | RM_RETRY_RETRIABLE_CODES;
	if (on) {
		const char *s, *p;

		if ((r = cfg_str_of(c, on, "retryOn", &s)))
			return r;
		h->retry_on = 0;
		for (p = s; *p;) {
			size_t len = strcspn(p, ","), i;

			for (i = 0; i < sizeof(retry_names) / sizeof(retry_names[0]); i++)
				if (strlen(retry_names[i].name) == len &&
				    !strncmp(retry_names[i].name, p, len))
					break;
			if (i == sizeof(retry_names) / sizeof(retry_names[0]))
				return cfg_errf(c, on, "unknown retryOn policy \"%.*s\"", (int)len,
						p);
			h->retry_on |= retry_names[i].bit;
			p += len;
			if (*p == ',')
				p++;
		}
		if (!h->retry_on)
			return cfg_errf(c, on, "retryOn is empty");
	}
	if (h->retry_attempts)
		h->flags |= RM_RF_RETRIES;
	else
		h->retry_on = 0;
	return 0;
}

static int http_entry(struct cfg_ctx *c, yaml_node_t *n, struct cfg_http_ir *h)
{
	yaml_node_t *name, *match, *route, *redir, *rew, *tmo, *rty, *flt, *mir, *mirp, *mirpct,
	    *cors, *hdrs, *deleg, *direct, *ws;
	const struct cfg_field f[] = {{"name", &name},
				      {"match", &match},
				      {"route", &route},
				      {"redirect", &redir},
				      {"rewrite", &rew},
				      {"timeout", &tmo},
				      {"retries", &rty},
				      {"fault", &flt},
				      {"mirror", &mir},
				      {"mirrorPercentage", &mirp},
				      {"mirrorPercent", &mirpct},
				      {"corsPolicy", &cors},
				      {"headers", &hdrs},
				      {"delegate", &deleg},
				      {"directResponse", &direct},
				      {"websocketUpgrade", &ws},
				      {NULL, NULL}};
	yaml_node_item_t *it;
	unsigned cnt;
	uint64_t total = 0;
	int r;

	h->pos = cfg_node_pos(c, n);
	if ((r = cfg_fields(c, n, "http route", f)))
		return r;
	if (deleg || direct)
		return cfg_unsupported(c, deleg ? deleg : direct,
				       deleg ? "delegate" : "directResponse");
	if (name && name->type != YAML_SCALAR_NODE)
		return cfg_errf(c, name, "http.name must be a string");
	if (match) {
		if ((r = cfg_seq_of(c, match, "match", &it, &cnt)))
			return r;
		h->m = cfg_arena_alloc(c->arena, sizeof(*h->m) * (cnt ? cnt : 1));
		if (!h->m)
			return -ENOMEM;
		for (unsigned i = 0; i < cnt; i++)
			if ((r = match_entry(c, cfg_item(c, it[i]), &h->m[i])))
				return r;
		h->nm = cnt;
	}
	if (route) {
		if ((r = cfg_seq_of(c, route, "route", &it, &cnt)))
			return r;
		h->r = cfg_arena_alloc(c->arena, sizeof(*h->r) * (cnt ? cnt : 1));
		if (!h->r)
			return -ENOMEM;
		for (unsigned i = 0; i < cnt; i++) {
			yaml_node_t *e = cfg_item(c, it[i]), *dst, *w, *rh;
			const struct cfg_field rf[] = {
			    {"destination", &dst}, {"weight", &w}, {"headers", &rh}, {NULL, NULL}};
			int64_t v;

			if ((r = cfg_fields(c, e, "route entry", rf)) ||
			    (r = cfg_need(c, e, dst, "destination")) ||
			    (r = destination(c, dst, "destination", &h->r[i])))
				return r;
			if (rh)
				return cfg_unsupported(c, rh, "per-destination headers");
			h->r[i].pos = cfg_node_pos(c, e);
			if (w) {
				if ((r = cfg_int_of(c, w, "weight", 0, 1000000, &v)))
					return r;
				h->r[i].weight = (uint32_t)v;
			} else {
				h->r[i].weight = cnt == 1 ? 100 : 0;
			}
			total += h->r[i].weight;
		}
		h->nr = cnt;
		if (cnt && !total)
			return cfg_errf(c, route,
					"route weights are all zero: no traffic could go "
					"anywhere");
	}
	if (!route && !redir)
		return cfg_errf(c, n, "http route needs route or redirect");
	if (route && redir)
		return cfg_errf(c, redir, "http route has either route or redirect, not both");
	if (redir) {
		yaml_node_t *u, *a, *code, *sch, *port, *dpr;
		const struct cfg_field rf[] = {
		    {"uri", &u},      {"authority", &a}, {"redirectCode", &code},
		    {"scheme", &sch}, {"port", &port},	 {"derivePort", &dpr},
		    {NULL, NULL}};
		int64_t v;

		if ((r = cfg_fields(c, redir, "redirect", rf)))
			return r;
		if (sch || port || dpr)
			return cfg_unsupported(c,
					       sch    ? sch
					       : port ? port
						      : dpr,
					       "this redirect field");
		if (!u && !a)
			return cfg_errf(c, redir, "redirect needs uri or authority");
		if ((u && (r = cfg_str_of(c, u, "uri", &h->redirect_uri))) ||
		    (a && (r = cfg_str_of(c, a, "authority", &h->redirect_auth))))
			return r;
		h->redirect_code = 301;
		if (code) {
			if ((r = cfg_int_of(c, code, "redirectCode", 300, 399, &v)))
				return r;
			h->redirect_code = (uint16_t)v;
		}
		h->flags |= RM_RF_REDIRECT;
	}
	if (rew) {
		yaml_node_t *u, *a, *ure;
		const struct cfg_field rf[] = {
		    {"uri", &u}, {"authority", &a}, {"uriRegexRewrite", &ure}, {NULL, NULL}};

		if ((r = cfg_fields(c, rew, "rewrite", rf)))
			return r;
		if (ure)
			return cfg_unsupported(c, ure, "uriRegexRewrite");
		if (!u && !a)
			return cfg_errf(c, rew, "rewrite needs uri or authority");
		if ((u && (r = cfg_str_of(c, u, "uri", &h->rewrite_uri))) ||
		    (a && (r = cfg_str_of(c, a, "authority", &h->rewrite_auth))))
			return r;
		h->flags |= RM_RF_REWRITE;
	}
	if (tmo && (r = cfg_dur_of(c, tmo, "timeout", &h->timeout_ns)))
		return r;
	if (rty && (r = retries(c, rty, h)))
		return r;
	if (flt && (r = cfg_fault_of(c, flt, true, h)))
		return r;
	if (mir) {
		if ((r = destination(c, mir, "mirror", &h->mirror)))
			return r;
		h->mirror_ppm = 1000000;
		h->flags |= RM_RF_MIRROR;
		if (mirp && (r = cfg_percentage_of(c, mirp, &h->mirror_ppm)))
			return r;
		if (mirpct && (r = cfg_pct_of(c, mirpct, "mirrorPercent", &h->mirror_ppm)))
			return r;
	} else if (mirp || mirpct) {
		return cfg_errf(c, mirp ? mirp : mirpct, "mirror percentage without mirror");
	}
	if (cors && (r = cfg_cors_of(c, cors, h, true)))
		return r;
	if (hdrs && (r = header_ops(c, hdrs, h)))
		return r;
	if (ws) {
		bool b;

		if ((r = cfg_bool_of(c, ws, "websocketUpgrade", &b)))
			return r;
		if (b)
			h->flags |= RM_RF_WEBSOCKET;
	}
	return 0;
}

static int hosts_of(struct cfg_ctx *c, yaml_node_t *n, struct cfg_doc_ir *ir)
{
	yaml_node_item_t *it;
	unsigned cnt;
	int r;

	if ((r = cfg_seq_of(c, n, "hosts", &it, &cnt)))
		return r;
	if (!cnt)
		return cfg_errf(c, n, "hosts must not be empty");
	ir->hosts = cfg_arena_alloc(c->arena, sizeof(*ir->hosts) * cnt);
	if (!ir->hosts)
		return -ENOMEM;
	for (unsigned i = 0; i < cnt; i++) {
		yaml_node_t *e = cfg_item(c, it[i]);
		const char *h;

		if ((r = cfg_str_of(c, e, "host", &h)))
			return r;
		if (!*h || strchr(h, '*'))
			return cfg_errf(c, e, "host \"%s\": wildcard hosts are not supported", h);
		ir->hosts[i] = cfg_fqdn(c, h, NULL, NULL);
		if (!ir->hosts[i])
			return -ENOMEM;
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(ir->hosts[j], ir->hosts[i]))
				return cfg_errf(c, e, "duplicate host \"%s\"", h);
	}
	ir->nhosts = cnt;
	return 0;
}

int cfg_parse_virtualservice(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir)
{
	yaml_node_t *hosts, *gws, *http, *tcp, *tls, *exp;
	const struct cfg_field f[] = {{"hosts", &hosts}, {"gateways", &gws}, {"http", &http},
				      {"tcp", &tcp},	 {"tls", &tls},	     {"exportTo", &exp},
				      {NULL, NULL}};
	yaml_node_item_t *it;
	unsigned cnt;
	int r;

	if ((r = cfg_fields(c, spec, "VirtualService spec", f)) ||
	    (r = cfg_need(c, spec, hosts, "hosts")) || (r = hosts_of(c, hosts, ir)))
		return r;
	if (tcp || tls)
		return cfg_unsupported(c, tcp ? tcp : tls, "VirtualService tcp/tls routing");
	if (gws) {
		if ((r = cfg_seq_of(c, gws, "gateways", &it, &cnt)))
			return r;
		for (unsigned i = 0; i < cnt; i++) {
			yaml_node_t *g = cfg_item(c, it[i]);

			/* the sidecars' part of a VirtualService also bound to gateways is
			 * ringmesh's; one bound to gateways only was skipped (cfg_kinds.c) */
			if (g->type != YAML_SCALAR_NODE)
				return cfg_errf(c, g, "gateways: items must be gateway names");
		}
	}
	if ((r = cfg_need(c, spec, http, "http")) || (r = cfg_seq_of(c, http, "http", &it, &cnt)))
		return r;
	if (!cnt)
		return cfg_errf(c, http, "http must not be empty");
	ir->http = cfg_arena_alloc(c->arena, sizeof(*ir->http) * cnt);
	if (!ir->http)
		return -ENOMEM;
	for (unsigned i = 0; i < cnt; i++) {
		ir->http[i].http_index = i;
		if ((r = http_entry(c, cfg_item(c, it[i]), &ir->http[i])))
			return r;
	}
	ir->nhttp = cnt;
	return 0;
}

/* ClientTLSSettings: ringmesh speaks plain text to upstream hosts, which is mode
 * DISABLE (also Istio's default mode); any TLS origination is refused, since
 * skipping it would send in clear what the user asked to encrypt. */
static int tls_settings(struct cfg_ctx *c, yaml_node_t *n)
{
	yaml_node_t *mode, *cert, *key, *ca, *cred, *san, *sni, *skip, *crl;
	const struct cfg_field f[] = {{"mode", &mode},
				      {"clientCertificate", &cert},
				      {"privateKey", &key},
				      {"caCertificates", &ca},
				      {"credentialName", &cred},
				      {"subjectAltNames", &san},
				      {"sni", &sni},
				      {"insecureSkipVerify", &skip},
				      {"caCrl", &crl},
				      {NULL, NULL}};
	const char *m;
	int r;

	if ((r = cfg_fields(c, n, "trafficPolicy.tls", f)))
		return r;
	if (!mode)
		return 0;
	if ((r = cfg_str_of(c, mode, "tls.mode", &m)))
		return r;
	if (!strcmp(m, "DISABLE"))
		return 0;
	if (strcmp(m, "SIMPLE") && strcmp(m, "MUTUAL") && strcmp(m, "ISTIO_MUTUAL"))
		return cfg_errf(
		    c, mode, "unknown tls.mode \"%s\" (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL)", m);
	return cfg_errf(c, mode,
			"tls.mode %s is not supported by ringmesh: it sends plain text to "
			"upstream hosts (mode DISABLE)",
			m);
}

static int traffic_policy(struct cfg_ctx *c, yaml_node_t *n, struct cfg_policy_ir *p)
{
	uint64_t ns;
	yaml_node_t *lb, *pool, *od, *tls, *pls, *tun, *pt;
	const struct cfg_field f[] = {{"loadBalancer", &lb},	   {"connectionPool", &pool},
				      {"outlierDetection", &od},   {"tls", &tls},
				      {"portLevelSettings", &pls}, {"tunnel", &tun},
				      {"proxyProtocol", &pt},	   {NULL, NULL}};
	int64_t v;
	int r;

	if ((r = cfg_fields(c, n, "trafficPolicy", f)))
		return r;
	if (tls && (r = tls_settings(c, tls)))
		return r;
	if (pls || tun || pt)
		return cfg_unsupported(c,
				       pls   ? pls
				       : tun ? tun
					     : pt,
				       pls   ? "trafficPolicy.portLevelSettings"
				       : tun ? "trafficPolicy.tunnel"
					     : "trafficPolicy.proxyProtocol");
	p->set = true;
	cfg_breaker_new_defaults(&p->cb);
	if (lb) {
		yaml_node_t *simple, *ch, *lm, *wu;
		const struct cfg_field lf[] = {{"simple", &simple},
					       {"consistentHash", &ch},
					       {"localityLbSetting", &lm},
					       {"warmupDurationSecs", &wu},
					       {NULL, NULL}};
		const char *s;

		if ((r = cfg_fields(c, lb, "loadBalancer", lf)))
			return r;
		if (ch || lm || wu)
			return cfg_unsupported(c,
					       ch   ? ch
					       : lm ? lm
						    : wu,
					       "this load balancer setting");
		if ((r = cfg_need(c, lb, simple, "simple")) ||
		    (r = cfg_str_of(c, simple, "loadBalancer.simple", &s)))
			return r;
		if (!strcmp(s, "ROUND_ROBIN") || !strcmp(s, "UNSPECIFIED"))
			p->lb = RM_LB_ROUND_ROBIN;
		else if (!strcmp(s, "LEAST_CONN") || !strcmp(s, "LEAST_REQUEST"))
			p->lb = RM_LB_LEAST_CONN;
		else if (!strcmp(s, "RANDOM"))
			p->lb = RM_LB_RANDOM;
		else if (!strcmp(s, "PASSTHROUGH"))
			p->lb = RM_LB_PASSTHROUGH;
		else
			return cfg_errf(c, simple, "unknown load balancer \"%s\"", s);
		p->has_lb = true;
	}
	if (pool) {
		yaml_node_t *tcp, *http, *mc, *ct, *ka, *mcd, *idle, *pend, *mreq, *mrpc, *mrt,
		    *idt, *h2u, *ucp, *mcs;
		const struct cfg_field pf[] = {{"tcp", &tcp}, {"http", &http}, {NULL, NULL}};
		const struct cfg_field tf[] = {
		    {"maxConnections", &mc},	     {"connectTimeout", &ct}, {"tcpKeepalive", &ka},
		    {"maxConnectionDuration", &mcd}, {"idleTimeout", &idle},  {NULL, NULL}};
		const struct cfg_field hf[] = {{"http1MaxPendingRequests", &pend},
					       {"http2MaxRequests", &mreq},
					       {"maxRequestsPerConnection", &mrpc},
					       {"maxRetries", &mrt},
					       {"idleTimeout", &idt},
					       {"h2UpgradePolicy", &h2u},
					       {"useClientProtocol", &ucp},
					       {"maxConcurrentStreams", &mcs},
					       {NULL, NULL}};

		if ((r = cfg_fields(c, pool, "connectionPool", pf)))
			return r;
		if (tcp) {
			if ((r = cfg_fields(c, tcp, "connectionPool.tcp", tf)))
				return r;
			if (ct || ka || mcd || idle)
				return cfg_unsupported(c,
						       ct    ? ct
						       : ka  ? ka
						       : mcd ? mcd
							     : idle,
						       "this connectionPool.tcp field");
			if (mc) {
				if ((r = cfg_int_of(c, mc, "maxConnections", 1, UINT32_MAX - 1,
						    &v)))
					return r;
				p->cb.max_connections = (uint32_t)v;
			}
		}
		if (http) {
			const struct cfg_u32_field ints[] = {
			    {&pend, "http1MaxPendingRequests", 1, UINT32_MAX - 1,
			     &p->cb.max_pending},
			    {&mreq, "http2MaxRequests", 1, UINT32_MAX - 1, &p->cb.max_requests},
			    {&mrpc, "maxRequestsPerConnection", 0, UINT32_MAX - 1,
			     &p->cb.max_requests_per_conn},
			    {&mrt, "maxRetries", 0, UINT32_MAX - 1, &p->cb.max_retries},
			};

			if ((r = cfg_fields(c, http, "connectionPool.http", hf)))
				return r;
			if (idt || h2u || ucp || mcs)
				return cfg_unsupported(c,
						       idt   ? idt
						       : h2u ? h2u
						       : ucp ? ucp
							     : mcs,
						       "this connectionPool.http field");
			if ((r = cfg_u32_fields(c, ints, sizeof(ints) / sizeof(ints[0]))))
				return r;
		}
		p->has_pool = true;
	}
	if (od) {
		yaml_node_t *ce, *c5, *cg, *iv, *be, *mep, *mhp, *slf, *clf;
		const struct cfg_field of[] = {{"consecutiveErrors", &ce},
					       {"consecutive5xxErrors", &c5},
					       {"consecutiveGatewayErrors", &cg},
					       {"interval", &iv},
					       {"baseEjectionTime", &be},
					       {"maxEjectionPercent", &mep},
					       {"minHealthPercent", &mhp},
					       {"splitExternalLocalOriginErrors", &slf},
					       {"consecutiveLocalOriginFailures", &clf},
					       {NULL, NULL}};

		if ((r = cfg_fields(c, od, "outlierDetection", of)))
			return r;
		if (mhp || slf || clf)
			return cfg_unsupported(c,
					       mhp   ? mhp
					       : slf ? slf
						     : clf,
					       "this outlierDetection field");
		if (ce && c5)
			return cfg_errf(c, ce,
					"give consecutive5xxErrors or the deprecated "
					"consecutiveErrors, not both");
		if (ce || c5) {
			if ((r = cfg_int_of(c, ce ? ce : c5, "consecutive5xxErrors", 0,
					    UINT32_MAX - 1, &v)))
				return r;
			p->cb.consecutive_errors = (uint32_t)v;
		}
		if (cg) {
			if ((r = cfg_int_of(c, cg, "consecutiveGatewayErrors", 0, UINT32_MAX - 1,
					    &v)))
				return r;
			p->cb.consecutive_gateway_errors = (uint32_t)v;
		}
		if (mep) {
			if ((r = cfg_int_of(c, mep, "maxEjectionPercent", 0, 100, &v)))
				return r;
			p->cb.max_ejection_percent = (uint32_t)v;
		}
		if (iv) {
			if ((r = cfg_dur_of(c, iv, "interval", &ns)))
				return r;
			p->cb.interval_ns = ns;
		}
		if (be) {
			if ((r = cfg_dur_of(c, be, "baseEjectionTime", &ns)))
				return r;
			p->cb.base_ejection_ns = ns;
		}
		if ((iv && !p->cb.interval_ns) || (be && !p->cb.base_ejection_ns))
			return cfg_errf(c, iv && !p->cb.interval_ns ? iv : be,
					"duration must be positive");
		p->cb.outlier = 1;
		p->has_outlier = true;
	}
	return 0;
}

int cfg_parse_destrule(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir)
{
	yaml_node_t *host, *tp, *subs, *exp, *ws;
	const struct cfg_field f[] = {{"host", &host},		 {"trafficPolicy", &tp},
				      {"subsets", &subs},	 {"exportTo", &exp},
				      {"workloadSelector", &ws}, {NULL, NULL}};
	yaml_node_item_t *it;
	unsigned cnt;
	const char *h;
	int r;

	if ((r = cfg_fields(c, spec, "DestinationRule spec", f)) ||
	    (r = cfg_need(c, spec, host, "host")) || (r = cfg_str_of(c, host, "host", &h)))
		return r;
	if (ws)
		return cfg_unsupported(c, ws, "workloadSelector in a DestinationRule");
	if (!*h || strchr(h, '*'))
		return cfg_errf(c, host, "host \"%s\" must name one service", h);
	ir->host = cfg_fqdn(c, h, NULL, NULL);
	if (!ir->host)
		return -ENOMEM;
	if (tp && (r = traffic_policy(c, tp, &ir->top)))
		return r;
	if (!subs)
		return 0;
	if ((r = cfg_seq_of(c, subs, "subsets", &it, &cnt)))
		return r;
	ir->subsets = cfg_arena_alloc(c->arena, sizeof(*ir->subsets) * (cnt ? cnt : 1));
	if (!ir->subsets)
		return -ENOMEM;
	for (unsigned i = 0; i < cnt; i++) {
		yaml_node_t *e = cfg_item(c, it[i]), *name, *lab, *stp;
		const struct cfg_field sf[] = {
		    {"name", &name}, {"labels", &lab}, {"trafficPolicy", &stp}, {NULL, NULL}};
		struct cfg_subset_ir *s = &ir->subsets[i];

		s->pos = cfg_node_pos(c, e);
		if ((r = cfg_fields(c, e, "subset", sf)) || (r = cfg_need(c, e, name, "name")) ||
		    (r = cfg_str_of(c, name, "subset name", &s->name)))
			return r;
		if (!*s->name)
			return cfg_errf(c, name, "empty subset name");
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(ir->subsets[j].name, s->name))
				return cfg_errf(c, name, "duplicate subset \"%s\"", s->name);
		if (lab && (r = cfg_labels_of(c, lab, "subset labels", &s->labels)))
			return r;
		if (stp && (r = traffic_policy(c, stp, &s->pol)))
			return r;
	}
	ir->nsubsets = cnt;
	return 0;
}

static const struct {
	const char *name;
	uint8_t proto;
} protos[] = {{"HTTP", RM_PROTO_HTTP}, {"TCP", RM_PROTO_TCP},	  {"HTTP2", RM_PROTO_HTTP2},
	      {"GRPC", RM_PROTO_GRPC}, {"HTTPS", RM_PROTO_HTTPS}, {"TLS", RM_PROTO_TLS}};

/* endpoint / WorkloadEntry body */
static int endpoint(struct cfg_ctx *c, yaml_node_t *n, const char *what, struct cfg_ep_ir *e)
{
	yaml_node_t *addr, *ports, *lab, *net, *loc, *w, *sa;
	const struct cfg_field f[] = {{"address", &addr},      {"ports", &ports},  {"labels", &lab},
				      {"network", &net},       {"locality", &loc}, {"weight", &w},
				      {"serviceAccount", &sa}, {NULL, NULL}};
	int64_t v;
	int r;

	e->pos = cfg_node_pos(c, n);
	if ((r = cfg_fields(c, n, what, f)) || (r = cfg_need(c, n, addr, "address")) ||
	    (r = cfg_addr_of(c, addr, &e->addr, &e->family, false)))
		return r;
	if (lab && (r = cfg_labels_of(c, lab, "labels", &e->labels)))
		return r;
	if (w) {
		if ((r = cfg_int_of(c, w, "weight", 1, UINT32_MAX - 1, &v)))
			return r;
		e->weight = (uint32_t)v;
	}
	(void)net, (void)loc, (void)sa; /* accepted: meaningless on one node */
	if (ports) {
		yaml_node_pair_t *p;
		unsigned i = 0;

		if (ports->type != YAML_MAPPING_NODE)
			return cfg_errf(c, ports, "ports must map port names to numbers");
		e->nports =
		    (unsigned)(ports->data.mapping.pairs.top - ports->data.mapping.pairs.start);
		e->ports = cfg_arena_alloc(c->arena, sizeof(*e->ports) * (e->nports + 1));
		e->port_nums = cfg_arena_alloc(c->arena, sizeof(*e->port_nums) * (e->nports + 1));
		if (!e->ports || !e->port_nums)
			return -ENOMEM;
		for (p = ports->data.mapping.pairs.start; p < ports->data.mapping.pairs.top;
		     p++, i++) {
			yaml_node_t *k = cfg_item(c, p->key), *val = cfg_item(c, p->value);

			if ((r = cfg_str_of(c, k, "port name", &e->ports[i].k)) ||
			    (r = cfg_int_of(c, val, "port", 1, 65535, &v)))
				return r;
			e->port_nums[i] = (uint16_t)v;
		}
	}
	return 0;
}

int cfg_parse_serviceentry(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir)
{
	yaml_node_t *hosts, *addrs, *ports, *loc, *res, *eps, *wsel, *exp, *san;
	const struct cfg_field f[] = {{"hosts", &hosts},	   {"addresses", &addrs},
				      {"ports", &ports},	   {"location", &loc},
				      {"resolution", &res},	   {"endpoints", &eps},
				      {"workloadSelector", &wsel}, {"exportTo", &exp},
				      {"subjectAltNames", &san},   {NULL, NULL}};
	yaml_node_item_t *it;
	unsigned cnt;
	const char *s;
	int64_t v;
	int r;

	if ((r = cfg_fields(c, spec, "ServiceEntry spec", f)) ||
	    (r = cfg_need(c, spec, hosts, "hosts")) || (r = hosts_of(c, hosts, ir)))
		return r;
	if (res) {
		if ((r = cfg_str_of(c, res, "resolution", &s)))
			return r;
		if (strcmp(s, "STATIC") && strcmp(s, "NONE"))
			return cfg_errf(c, res, "resolution %s is not supported (STATIC, NONE)", s);
	}
	if (loc) {
		if ((r = cfg_str_of(c, loc, "location", &s)))
			return r;
		if (strcmp(s, "MESH_INTERNAL") && strcmp(s, "MESH_EXTERNAL"))
			return cfg_errf(c, loc, "unknown location \"%s\"", s);
	}
	if (addrs) {
		if ((r = cfg_seq_of(c, addrs, "addresses", &it, &cnt)))
			return r;
		if (cnt > RM_CFG_SVC_ADDRS)
			return cfg_errf(c, addrs, "at most %d addresses per service",
					RM_CFG_SVC_ADDRS);
		ir->addrs = cfg_arena_alloc(c->arena, sizeof(*ir->addrs) * (cnt + 1));
		if (!ir->addrs)
			return -ENOMEM;
		for (unsigned i = 0; i < cnt; i++) {
			uint16_t fam;

			if ((r = cfg_addr_of(c, cfg_item(c, it[i]), &ir->addrs[i], &fam, true)))
				return r;
		}
		ir->naddrs = cnt;
	}
	if ((r = cfg_need(c, spec, ports, "ports")) ||
	    (r = cfg_seq_of(c, ports, "ports", &it, &cnt)))
		return r;
	if (!cnt || cnt > RM_CFG_SVC_PORTS)
		return cfg_errf(c, ports, "a service needs 1..%d ports", RM_CFG_SVC_PORTS);
	ir->ports = cfg_arena_alloc(c->arena, sizeof(*ir->ports) * cnt);
	if (!ir->ports)
		return -ENOMEM;
	for (unsigned i = 0; i < cnt; i++) {
		yaml_node_t *e = cfg_item(c, it[i]), *num, *name, *proto, *tp;
		const struct cfg_field pf[] = {{"number", &num},
					       {"name", &name},
					       {"protocol", &proto},
					       {"targetPort", &tp},
					       {NULL, NULL}};
		struct cfg_port_ir *p = &ir->ports[i];
		size_t k;

		if ((r = cfg_fields(c, e, "port", pf)) || (r = cfg_need(c, e, num, "number")) ||
		    (r = cfg_int_of(c, num, "port number", 1, 65535, &v)))
			return r;
		if (tp)
			return cfg_unsupported(c, tp, "targetPort");
		p->number = (uint16_t)v;
		p->name = "";
		if (name && (r = cfg_str_of(c, name, "port name", &p->name)))
			return r;
		p->proto = RM_PROTO_TCP;
		if (proto) {
			if ((r = cfg_str_of(c, proto, "protocol", &s)))
				return r;
			for (k = 0; k < sizeof(protos) / sizeof(protos[0]); k++)
				if (!strcmp(protos[k].name, s))
					break;
			if (k == sizeof(protos) / sizeof(protos[0]))
				return cfg_errf(c, proto,
						"unknown protocol \"%s\" (HTTP, HTTP2, "
						"GRPC, TCP, HTTPS, TLS)",
						s);
			p->proto = protos[k].proto;
		}
		for (unsigned j = 0; j < i; j++) {
			if (ir->ports[j].number == p->number)
				return cfg_errf(c, num, "duplicate port %u", p->number);
			if (*p->name && !strcmp(ir->ports[j].name, p->name))
				return cfg_errf(c, name, "duplicate port name \"%s\"", p->name);
		}
	}
	ir->nports = cnt;
	if (eps && wsel)
		return cfg_errf(c, wsel, "give endpoints or workloadSelector, not both");
	if (wsel) {
		yaml_node_t *lab;
		const struct cfg_field wf[] = {{"labels", &lab}, {NULL, NULL}};

		if ((r = cfg_fields(c, wsel, "workloadSelector", wf)) ||
		    (r = cfg_need(c, wsel, lab, "labels")) ||
		    (r = cfg_labels_of(c, lab, "workloadSelector.labels", &ir->selector)))
			return r;
		ir->has_selector = true;
	}
	if (eps) {
		if ((r = cfg_seq_of(c, eps, "endpoints", &it, &cnt)))
			return r;
		ir->eps = cfg_arena_alloc(c->arena, sizeof(*ir->eps) * (cnt + 1));
		if (!ir->eps)
			return -ENOMEM;
		for (unsigned i = 0; i < cnt; i++) {
			struct cfg_ep_ir *e = &ir->eps[i];

			if ((r = endpoint(c, cfg_item(c, it[i]), "endpoint", e)))
				return r;
			for (unsigned k = 0; k < e->nports; k++) {
				unsigned j;

				for (j = 0; j < ir->nports; j++)
					if (!strcmp(ir->ports[j].name, e->ports[k].k))
						break;
				if (j == ir->nports)
					return cfg_errf(
					    c, cfg_item(c, it[i]),
					    "endpoint port \"%s\" is not a port name of "
					    "the service",
					    e->ports[k].k);
			}
		}
		ir->neps = cnt;
	}
	return 0;
}

int cfg_parse_workloadentry(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir)
{
	int r = endpoint(c, spec, "WorkloadEntry spec", &ir->we);

	ir->we.name = ir->name;
	ir->we.ns = ir->ns;
	return r;
}
