/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_show: a compiled half described the way a person reads it. The output is
 * golden-tested: change it deliberately. Writes only to the FILE it is given. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include "common/cfg.h"
#include "common/util.h"

#define NS_PER_S 1000000000ull

const char *cfg_str(const struct rm_cfg *cfg, uint32_t off)
{
	if (off >= cfg->strtab_len)
		return "";
	return cfg->strtab + off;
}

const char *cfg_fmt_duration(uint64_t ns, char *buf, size_t len)
{
	if (!ns)
		snprintf(buf, len, "none");
	else if (ns % (3600 * NS_PER_S) == 0)
		snprintf(buf, len, "%" PRIu64 "h", (uint64_t)(ns / (3600 * NS_PER_S)));
	else if (ns % (60 * NS_PER_S) == 0)
		snprintf(buf, len, "%" PRIu64 "m", (uint64_t)(ns / (60 * NS_PER_S)));
	else if (ns % NS_PER_S == 0)
		snprintf(buf, len, "%" PRIu64 "s", (uint64_t)(ns / NS_PER_S));
	else if (ns < NS_PER_S && ns % 1000000 == 0)
		snprintf(buf, len, "%" PRIu64 "ms", ns / 1000000);
	else if (ns < 1000000 && ns % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "us", ns / 1000);
	else if (ns < 1000)
		snprintf(buf, len, "%" PRIu64 "ns", ns);
	else {
		char *p;

		snprintf(buf, len, "%" PRIu64 ".%09" PRIu64, (uint64_t)(ns / NS_PER_S),
			 (uint64_t)(ns % NS_PER_S));
		p = buf + strlen(buf) - 1;
		while (*p == '0')
			*p-- = 0;
		strncat(buf, "s", len - strlen(buf) - 1);
	}
	return buf;
}

static const char *fmt_ppm(uint32_t ppm, char *buf, size_t len)
{
	if (ppm % 10000 == 0)
		snprintf(buf, len, "%u%%", ppm / 10000);
	else {
		char *p;

		snprintf(buf, len, "%u.%04u", ppm / 10000, ppm % 10000);
		p = buf + strlen(buf) - 1;
		while (*p == '0')
			*p-- = 0;
		strncat(buf, "%", len - strlen(buf) - 1);
	}
	return buf;
}

const char *cfg_fmt_labels(const struct rm_cfg *cfg, uint32_t first, uint32_t count, char *buf,
			   size_t len)
{
	struct sbuf b = sbuf_make(buf, len);

	for (uint32_t i = 0; i < count && first + i < cfg->n_labels; i++) {
		const struct rm_cfg_label *l = &cfg->labels[first + i];

		sbuf_printf(&b, "%s%s=%s", i ? "," : "", cfg_str(cfg, l->key_off),
			    cfg_str(cfg, l->val_off));
	}
	return sbuf_text(&b);
}

static const char *addr_str(const struct rm_addr *a, char *buf, size_t len)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (!memcmp(a->a8, mapped, 12))
		inet_ntop(AF_INET, &a->a8[12], buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a->a8, buf, (socklen_t)len);
	return buf;
}

const char *cfg_api_name(unsigned api)
{
	switch (api) {
	case RM_API_ROUTERULE:
		return "RouteRule";
	case RM_API_VIRTUALSERVICE:
		return "VirtualService";
	case RM_API_DESTPOLICY:
		return "DestinationPolicy";
	case RM_API_DESTRULE:
		return "DestinationRule";
	case RM_API_SERVICEENTRY:
		return "ServiceEntry";
	case RM_API_WORKLOADENTRY:
		return "WorkloadEntry";
	}
	return NULL;
}

static const char *api_name(unsigned api)
{
	const char *n = cfg_api_name(api);

	return n ? n : api == RM_API_IMPLICIT ? "by labels" : "?";
}

static const char *lb_name(unsigned lb)
{
	static const char *n[] = {"ROUND_ROBIN", "LEAST_CONN", "RANDOM", "PASSTHROUGH"};

	return lb < 4 ? n[lb] : "?";
}

static const char *proto_name(unsigned p)
{
	static const char *n[] = {"?", "HTTP", "TCP", "HTTP2", "GRPC", "HTTPS", "TLS"};

	return p < 7 ? n[p] : "?";
}

static void subset_ref(const struct rm_cfg *cfg, uint32_t svc, uint32_t sub, uint32_t rule_svc,
		       FILE *out)
{
	char lb[512];

	if (svc != rule_svc && svc < cfg->n_services)
		fprintf(out, "service %s ", cfg_str(cfg, cfg->services[svc].host_off));
	if (sub == RM_CFG_NONE || sub >= cfg->n_subsets) {
		fprintf(out, "all endpoints");
		return;
	}
	const struct rm_cfg_subset *s = &cfg->subsets[sub];

	if (s->api == RM_API_IMPLICIT)
		fprintf(out, "subset %s", cfg_str(cfg, s->name_off));
	else
		fprintf(out, "subset %s (%s)", cfg_str(cfg, s->name_off),
			cfg_fmt_labels(cfg, s->label_first, s->label_count, lb, sizeof(lb)));
}

static const char *field_name(unsigned f)
{
	static const char *n[] = {"?", "header", "uri", "method", "authority", "scheme"};

	return f < 6 ? n[f] : "?";
}

const char *cfg_op_name(unsigned op)
{
	static const char *n[] = {"?", "exact", "prefix", "regex"};

	return op < 4 ? n[op] : "?";
}

static void retry_on_str(uint32_t on, char *buf, size_t len)
{
	static const char *n[] = {
	    "5xx",	     "gateway-error",	  "connect-failure",	    "reset",
	    "retriable-4xx", "refused-stream",	  "retriable-status-codes", "unavailable",
	    "cancelled",     "deadline-exceeded", "resource-exhausted"};
	struct sbuf b = sbuf_make(buf, len);

	for (unsigned i = 0; i < sizeof(n) / sizeof(n[0]); i++)
		if (on & (1u << i))
			sbuf_printf(&b, "%s%s", b.len ? "," : "", n[i]);
	sbuf_text(&b);
}

int cfg_rule_describe(const struct rm_cfg *cfg, uint32_t idx, FILE *out)
{
	const struct rm_cfg_rule *r;
	char b1[64], b2[64], lb[512];
	uint64_t total = 0;

	if (idx >= cfg->n_rules)
		return -ENOENT;
	r = &cfg->rules[idx];
	fprintf(out, "rule %s.%s", cfg_str(cfg, r->name_off), cfg_str(cfg, r->ns_off));
	if (r->api == RM_API_ROUTERULE)
		fprintf(out, "  (RouteRule, precedence %d)\n", r->precedence);
	else
		fprintf(out, "  (VirtualService, http[%u])\n", r->http_index);
	fprintf(out, "  service   %s\n",
		r->service < cfg->n_services ? cfg_str(cfg, cfg->services[r->service].host_off)
					     : "?");
	if (!r->match_count)
		fprintf(out, "  match     any request\n");
	for (uint32_t m = 0; m < r->match_count; m++) {
		const struct rm_cfg_match *mg = &cfg->matches[r->match_first + m];
		bool first = true;

		fprintf(out, "  %-9s", m ? "or" : "match");
		for (uint32_t c = 0; c < mg->cond_count; c++) {
			const struct rm_cfg_cond *cd = &cfg->conds[mg->cond_first + c];

			fprintf(out, "%s%s", first ? " " : " and ", field_name(cd->field));
			if (cd->field == RM_MF_HEADER)
				fprintf(out, " %s", cfg_str(cfg, cd->name_off));
			fprintf(out, " %s \"%s\"", cfg_op_name(cd->op),
				cfg_str(cfg, cd->value_off));
			first = false;
		}
		if (mg->src_name_off) {
			fprintf(out, "%ssource service %s", first ? " " : " and ",
				cfg_str(cfg, mg->src_name_off));
			first = false;
		}
		if (mg->src_ns_off) {
			fprintf(out, "%ssource namespace %s", first ? " " : " and ",
				cfg_str(cfg, mg->src_ns_off));
			first = false;
		}
		if (mg->src_label_count) {
			fprintf(out, "%ssource labels %s", first ? " " : " and ",
				cfg_fmt_labels(cfg, mg->src_label_first, mg->src_label_count, lb,
					       sizeof(lb)));
			first = false;
		}
		if (first)
			fprintf(out, " any request");
		fprintf(out, "\n");
	}
	if (r->flags & RM_RF_REDIRECT) {
		fprintf(out, "  redirect  %u", r->redirect_code);
		if (r->redirect_uri_off)
			fprintf(out, " uri \"%s\"", cfg_str(cfg, r->redirect_uri_off));
		if (r->redirect_authority_off)
			fprintf(out, " authority \"%s\"", cfg_str(cfg, r->redirect_authority_off));
		fprintf(out, "\n");
	} else if (!r->target_count) {
		fprintf(out, "  route     all endpoints\n");
	}
	for (uint32_t t = 0; t < r->target_count; t++)
		total += cfg->targets[r->target_first + t].weight;
	for (uint32_t t = 0; t < r->target_count; t++) {
		const struct rm_cfg_target *tg = &cfg->targets[r->target_first + t];

		if (r->api == RM_API_ROUTERULE)
			fprintf(out, "  %-9s %u%% -> ", t ? "" : "route", tg->weight);
		else
			fprintf(out, "  %-9s weight %u (%s) -> ", t ? "" : "route", tg->weight,
				fmt_ppm(total ? (uint32_t)(tg->weight * 1000000ull / total) : 0, b1,
					sizeof(b1)));
		subset_ref(cfg, tg->service, tg->subset, r->service, out);
		if (tg->port)
			fprintf(out, " port %u", ntohs(tg->port));
		fprintf(out, "\n");
	}
	if (r->flags & RM_RF_REWRITE) {
		fprintf(out, "  rewrite  ");
		if (r->rewrite_uri_off)
			fprintf(out, " uri \"%s\"", cfg_str(cfg, r->rewrite_uri_off));
		if (r->rewrite_authority_off)
			fprintf(out, " authority \"%s\"", cfg_str(cfg, r->rewrite_authority_off));
		fprintf(out, "\n");
	}
	fprintf(out, "  timeout   %s%s\n", cfg_fmt_duration(r->timeout_ns, b1, sizeof(b1)),
		r->flags & RM_RF_TIMEOUT_DEFAULT ? " (default)" : "");
	if (r->flags & RM_RF_RETRIES) {
		retry_on_str(r->retry_on, lb, sizeof(lb));
		fprintf(out, "  retries   %u attempts, per try %s, on %s\n", r->retry_attempts,
			r->retry_per_try_ns ? cfg_fmt_duration(r->retry_per_try_ns, b1, sizeof(b1))
					    : "route timeout",
			lb);
	} else {
		fprintf(out, "  retries   none\n");
	}
	if (r->flags & RM_RF_DELAY)
		fprintf(out, "  fault     delay %s for %s of requests\n",
			cfg_fmt_duration(r->delay_ns, b1, sizeof(b1)),
			fmt_ppm(r->delay_ppm, b2, sizeof(b2)));
	if (r->flags & RM_RF_ABORT)
		fprintf(out, "  fault     abort %u for %s of requests\n", r->abort_status,
			fmt_ppm(r->abort_ppm, b2, sizeof(b2)));
	if (r->flags & RM_RF_MIRROR) {
		fprintf(out, "  mirror    %s of requests -> ",
			fmt_ppm(r->mirror_ppm, b2, sizeof(b2)));
		subset_ref(cfg, r->mirror_service, r->mirror_subset, r->service, out);
		fprintf(out, "\n");
	}
	for (uint32_t h = 0; h < r->hdrop_count; h++) {
		const struct rm_cfg_hdrop *op = &cfg->hdrops[r->hdrop_first + h];
		static const char *kn[] = {"?", "set", "add", "remove"};

		fprintf(out, "  %-9s %s %s %s", h ? "" : "headers",
			op->response ? "response" : "request", op->kind < 4 ? kn[op->kind] : "?",
			cfg_str(cfg, op->name_off));
		if (op->kind != RM_HDR_REMOVE)
			fprintf(out, ": \"%s\"", cfg_str(cfg, op->value_off));
		fprintf(out, "\n");
	}
	if (r->flags & RM_RF_CORS) {
		fprintf(out,
			"  cors      origins \"%s\" methods \"%s\" headers \"%s\" expose \"%s\"",
			cfg_str(cfg, r->cors_origins_off), cfg_str(cfg, r->cors_methods_off),
			cfg_str(cfg, r->cors_headers_off), cfg_str(cfg, r->cors_expose_off));
		if (r->cors_max_age_s)
			fprintf(out, " max-age %us", r->cors_max_age_s);
		if (r->cors_credentials)
			fprintf(out, " credentials %s",
				r->cors_credentials == 2 ? "true" : "false");
		fprintf(out, "\n");
	}
	if (r->flags & RM_RF_WEBSOCKET)
		fprintf(out, "  websocket upgrade allowed\n");
	fprintf(out, "  from      %s\n", cfg_str(cfg, r->origin_off));
	return 0;
}

static void limit(FILE *out, const char *what, uint32_t v, bool last)
{
	if (v == RM_CFG_UNLIMITED)
		fprintf(out, "%s unlimited%s", what, last ? "" : ", ");
	else
		fprintf(out, "%s %u%s", what, v, last ? "" : ", ");
}

int cfg_subset_describe(const struct rm_cfg *cfg, uint32_t idx, FILE *out)
{
	const struct rm_cfg_subset *s;
	char lb[512], b1[64], b2[64];

	if (idx >= cfg->n_subsets)
		return -ENOENT;
	s = &cfg->subsets[idx];
	fprintf(out, "subset %s of %s  (%s)\n",
		*cfg_str(cfg, s->name_off) ? cfg_str(cfg, s->name_off) : "(whole service)",
		s->service < cfg->n_services ? cfg_str(cfg, cfg->services[s->service].host_off)
					     : "?",
		api_name(s->api));
	fprintf(out, "  labels    %s\n",
		s->label_count ? cfg_fmt_labels(cfg, s->label_first, s->label_count, lb, sizeof(lb))
			       : "(none)");
	fprintf(out, "  endpoints");
	if (!s->member_count)
		fprintf(out, " none");
	for (uint32_t m = 0; m < s->member_count && s->member_first + m < cfg->n_members; m++) {
		uint32_t e = cfg->members[s->member_first + m];

		if (e < cfg->n_endpoints)
			fprintf(out, " %s", addr_str(&cfg->endpoints[e].addr, b1, sizeof(b1)));
	}
	fprintf(out, "\n  lb        %s\n", lb_name(s->lb));
	if (s->policy_api)
		fprintf(out, "  policy    %s (%s)\n", cfg_str(cfg, s->policy_name_off),
			api_name(s->policy_api));
	else
		fprintf(out, "  policy    none (defaults)\n");
	fprintf(out, "  limits    ");
	limit(out, "connections", s->cb.max_connections, false);
	limit(out, "pending", s->cb.max_pending, false);
	limit(out, "requests", s->cb.max_requests, false);
	if (s->cb.max_requests_per_conn)
		limit(out, "requests/connection", s->cb.max_requests_per_conn, false);
	else
		fprintf(out, "requests/connection unlimited, ");
	limit(out, "retries", s->cb.max_retries, true);
	fprintf(out, "\n");
	if (s->cb.outlier) {
		fprintf(out, "  outlier   eject after %u consecutive errors",
			s->cb.consecutive_errors);
		if (s->cb.consecutive_gateway_errors)
			fprintf(out, " or %u gateway errors", s->cb.consecutive_gateway_errors);
		fprintf(out, ", interval %s, ejection %s, max %u%%\n",
			cfg_fmt_duration(s->cb.interval_ns, b1, sizeof(b1)),
			cfg_fmt_duration(s->cb.base_ejection_ns, b2, sizeof(b2)),
			s->cb.max_ejection_percent);
	} else {
		fprintf(out, "  outlier   off\n");
	}
	return 0;
}

int cfg_endpoint_describe(const struct rm_cfg *cfg, uint32_t idx, FILE *out)
{
	const struct rm_cfg_endpoint *e;
	const struct rm_cfg_service *s;
	char ab[64], lb[512];

	if (idx >= cfg->n_endpoints)
		return -ENOENT;
	e = &cfg->endpoints[idx];
	s = e->service < cfg->n_services ? &cfg->services[e->service] : NULL;
	fprintf(out, "endpoint %s", addr_str(&e->addr, ab, sizeof(ab)));
	if (e->name_off)
		fprintf(out, " (%s)", cfg_str(cfg, e->name_off));
	fprintf(out, "  service %s  labels %s", s ? cfg_str(cfg, s->host_off) : "?",
		e->label_count ? cfg_fmt_labels(cfg, e->label_first, e->label_count, lb, sizeof(lb))
			       : "(none)");
	for (uint32_t p = 0; s && p < s->n_ports && p < RM_CFG_SVC_PORTS; p++)
		fprintf(out, "%s%u->%u", p ? "," : "  ports ", ntohs(s->ports[p].port),
			e->ports[p] ? ntohs(e->ports[p]) : ntohs(s->ports[p].port));
	if (e->weight)
		fprintf(out, "  weight %u", e->weight);
	fprintf(out, "\n");
	return 0;
}

int cfg_service_describe(const struct rm_cfg *cfg, uint32_t idx, FILE *out)
{
	const struct rm_cfg_service *s;
	char ab[64];

	if (idx >= cfg->n_services)
		return -ENOENT;
	s = &cfg->services[idx];
	fprintf(out, "service %s  (%s)\n", cfg_str(cfg, s->host_off),
		s->flags & RM_SF_DECLARED ? "ServiceEntry" : "named by rules only");
	fprintf(out, "  addresses");
	if (!s->n_addrs)
		fprintf(out, " none");
	for (uint32_t i = 0; i < s->n_addrs && i < RM_CFG_SVC_ADDRS; i++)
		fprintf(out, " %s", addr_str(&s->addrs[i], ab, sizeof(ab)));
	fprintf(out, "\n  ports    ");
	if (!s->n_ports)
		fprintf(out, " none");
	for (uint32_t i = 0; i < s->n_ports && i < RM_CFG_SVC_PORTS; i++) {
		const char *n = cfg_str(cfg, s->ports[i].name_off);

		fprintf(out, " %u%s%s %s", ntohs(s->ports[i].port), *n ? "/" : "", n,
			proto_name(s->ports[i].proto));
	}
	fprintf(out, "\n  rules     %u\n  subsets   %u\n  endpoints %u\n", s->rule_count,
		s->subset_count, s->endpoint_count);
	return 0;
}

int cfg_describe_all(const struct rm_cfg *cfg, FILE *out)
{
	for (uint32_t i = 0; i < cfg->n_services; i++) {
		const struct rm_cfg_service *s = &cfg->services[i];

		if (i)
			fprintf(out, "\n");
		cfg_service_describe(cfg, i, out);
		for (uint32_t r = 0; r < s->rule_count; r++) {
			fprintf(out, "\n");
			cfg_rule_describe(cfg, s->rule_first + r, out);
		}
		for (uint32_t k = 0; k < s->subset_count; k++) {
			fprintf(out, "\n");
			cfg_subset_describe(cfg, s->subset_first + k, out);
		}
		if (s->endpoint_count)
			fprintf(out, "\n");
		for (uint32_t e = 0; e < s->endpoint_count; e++)
			cfg_endpoint_describe(cfg, s->endpoint_first + e, out);
	}
	return 0;
}

int cfg_rule_find(const struct rm_cfg *cfg, const char *name, const char *ns)
{
	int found = -ENOENT;

	for (uint32_t i = 0; i < cfg->n_rules; i++) {
		const struct rm_cfg_rule *r = &cfg->rules[i];

		if (strcmp(cfg_str(cfg, r->name_off), name) ||
		    (ns && strcmp(cfg_str(cfg, r->ns_off), ns)))
			continue;
		if (found >= 0 &&
		    strcmp(cfg_str(cfg, cfg->rules[found].ns_off), cfg_str(cfg, r->ns_off)))
			return -EEXIST;
		if (found < 0)
			found = (int)i;
	}
	return found;
}

int cfg_service_find(const struct rm_cfg *cfg, const char *host)
{
	for (uint32_t i = 0; i < cfg->n_services; i++)
		if (!strcmp(cfg_str(cfg, cfg->services[i].host_off), host))
			return (int)i;
	return -ENOENT;
}
