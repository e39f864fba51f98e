/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_istio: what both Istio API generations share: the breaker defaults of each
 * generation (the old one is the modern one with Envoy's 1024 limits), the
 * StringMatch reader ({exact|prefix|regex}), corsPolicy, fault injection (httpFault
 * of RouteRule, fault of VirtualService) and the "not supported" error, so that
 * cfg_parse_old.c and cfg_parse_new.c each hold only the documents they own. */
#include <errno.h>
#include <string.h>

#include "common/cfg_ir.h"

void cfg_breaker_new_defaults(struct rm_cfg_breaker *cb)
{
	memset(cb, 0, sizeof(*cb));
	cb->max_connections = RM_CFG_UNLIMITED;
	cb->max_pending = RM_CFG_UNLIMITED;
	cb->max_requests = RM_CFG_UNLIMITED;
	cb->max_retries = RM_CFG_UNLIMITED;
	cb->consecutive_errors = RM_CB_DEFAULT_CONSECUTIVE_ERRORS;
	cb->base_ejection_ns = RM_CB_DEFAULT_BASE_EJECTION_NS;
	cb->interval_ns = RM_CB_DEFAULT_INTERVAL_NS;
	cb->max_ejection_percent = RM_CB_DEFAULT_MAX_EJECTION_PERCENT;
}

/* The old API's Envoy limits; the outlier defaults are the modern ones. */
void cfg_breaker_old_defaults(struct rm_cfg_breaker *cb)
{
	cfg_breaker_new_defaults(cb);
	cb->max_connections = RM_CB_OLD_MAX_CONNECTIONS;
	cb->max_pending = RM_CB_OLD_MAX_PENDING;
	cb->max_requests = RM_CB_OLD_MAX_REQUESTS;
	cb->max_retries = RM_CB_OLD_MAX_RETRIES;
}

int cfg_unsupported(const struct cfg_ctx *c, yaml_node_t *n, const char *what)
{
	return cfg_errf(c, n, "%s is not supported by ringmesh", what);
}

/* {value: 0..100} */
int cfg_percentage_of(const struct cfg_ctx *c, yaml_node_t *n, uint32_t *ppm)
{
	yaml_node_t *v;
	const struct cfg_field f[] = {{"value", &v}, {NULL, NULL}};
	int r;

	if ((r = cfg_fields(c, n, "percentage", f)))
		return r;
	*ppm = 0;
	return v ? cfg_pct_of(c, v, "percentage.value", ppm) : 0;
}

int cfg_strmatch_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, uint8_t *op,
		    const char **value)
{
	yaml_node_t *ex, *pre, *re;
	const struct cfg_field f[] = {
	    {"exact", &ex}, {"prefix", &pre}, {"regex", &re}, {NULL, NULL}};
	yaml_node_t *v;
	int r;

	if ((r = cfg_fields(c, n, what, f)))
		return r;
	if (!!ex + !!pre + !!re != 1)
		return cfg_errf(c, n, "%s needs exactly one of exact, prefix, regex", what);
	v = ex ? ex : pre ? pre : re;
	*op = ex ? RM_OP_EXACT : pre ? RM_OP_PREFIX : RM_OP_REGEX;
	if ((r = cfg_str_of(c, v, what, value)))
		return r;
	if (re)
		return cfg_regex_check(c, v, *value);
	return 0;
}

/* corsPolicy of both APIs, as Istio gives it to Envoy: allowOrigins (StringMatch) or
 * the older allowOrigin (strings, each an exact match; allowOrigins wins when both are
 * there), the lists joined with ",", maxAge in whole seconds. unmatchedPreflights
 * FORWARD is Envoy's default; IGNORE (answer them without CORS headers) is not done. */
int cfg_cors_of(struct cfg_ctx *c, yaml_node_t *n, struct cfg_http_ir *h, bool modern)
{
	yaml_node_t *orig, *meth, *hdr, *exp, *age, *cred, *origs, *unm;
	const struct cfg_field f[] = {
	    {"allowOrigin", &orig},	 {"allowOrigins", &origs},	{"allowMethods", &meth},
	    {"allowHeaders", &hdr},	 {"exposeHeaders", &exp},	{"maxAge", &age},
	    {"allowCredentials", &cred}, {"unmatchedPreflights", &unm}, {NULL, NULL}};
	yaml_node_item_t *it = NULL;
	unsigned cnt = 0;
	uint64_t ns;
	bool b;
	int r;

	if ((r = cfg_fields(c, n, "corsPolicy", f)))
		return r;
	if (unm) {
		const char *v;

		if ((r = cfg_str_of(c, unm, "unmatchedPreflights", &v)))
			return r;
		if (!strcmp(v, "IGNORE"))
			return cfg_unsupported(c, unm, "unmatchedPreflights: IGNORE");
		if (strcmp(v, "FORWARD") && strcmp(v, "UNSPECIFIED"))
			return cfg_errf(c, unm,
					"unmatchedPreflights: \"%s\" is not FORWARD or IGNORE", v);
	}
	if ((orig && (r = cfg_strlist_of(c, orig, "allowOrigin", &h->cors_origins))) ||
	    (meth && (r = cfg_strlist_of(c, meth, "allowMethods", &h->cors_methods))) ||
	    (hdr && (r = cfg_strlist_of(c, hdr, "allowHeaders", &h->cors_headers))) ||
	    (exp && (r = cfg_strlist_of(c, exp, "exposeHeaders", &h->cors_expose))))
		return r;
	if (origs) {
		size_t len = 1;
		char *s;

		if (cfg_seq_of(c, origs, "allowOrigins", &it, &cnt))
			return -EINVAL;
		h->cors_orig = cfg_arena_alloc(c->arena, (cnt ? cnt : 1) * sizeof(*h->cors_orig));
		if (!h->cors_orig)
			return -ENOMEM;
		for (unsigned i = 0; i < cnt; i++) {
			struct cfg_cond_ir *cd = &h->cors_orig[i];

			cd->field = RM_MF_HEADER;
			cd->name = "origin";
			if ((r = cfg_strmatch_of(c, cfg_item(c, it[i]), "allowOrigins", &cd->op,
						 &cd->value)))
				return r;
			len += strlen(cd->value) + 8;
		}
		h->n_cors_orig = cnt;
		/* as written, for `rule show`: "exact:https://a prefix:https://b." */
		s = cfg_arena_alloc(c->arena, len);
		if (!s)
			return -ENOMEM;
		*s = 0;
		for (unsigned i = 0; i < cnt; i++) {
			static const char *opn[] = {"?", "exact", "prefix", "regex"};
			const struct cfg_cond_ir *cd = &h->cors_orig[i];

			if (i)
				strcat(s, " ");
			strcat(s, opn[cd->op <= RM_OP_REGEX ? cd->op : 0]);
			strcat(s, ":");
			strcat(s, cd->value);
		}
		h->cors_origins = s;
	} else if (h->cors_origins) {
		const char *p = h->cors_origins;

		cnt = 1;
		for (const char *q = p; *q; q++)
			cnt += *q == ',';
		h->cors_orig = cfg_arena_alloc(c->arena, cnt * sizeof(*h->cors_orig));
		if (!h->cors_orig)
			return -ENOMEM;
		for (unsigned i = 0; i < cnt; i++) {
			const char *e = strchr(p, ',');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			char *v = cfg_arena_alloc(c->arena, l + 1);

			if (!v)
				return -ENOMEM;
			memcpy(v, p, l);
			v[l] = 0;
			h->cors_orig[i] = (struct cfg_cond_ir){
			    .field = RM_MF_HEADER, .op = RM_OP_EXACT, .name = "origin", .value = v};
			p += l + (e ? 1 : 0);
		}
		h->n_cors_orig = cnt;
	}
	if (age) {
		if ((r = cfg_dur_of(c, age, "maxAge", &ns)))
			return r;
		h->cors_max_age_s = (uint32_t)(ns / 1000000000ull);
	}
	if (cred) {
		if ((r = cfg_bool_of(c, cred, "allowCredentials", &b)))
			return r;
		h->cors_credentials = b ? 2 : 1;
	}
	h->flags |= RM_RF_CORS;
	(void)modern;
	return 0;
}

int cfg_fault_of(struct cfg_ctx *c, yaml_node_t *n, bool modern, struct cfg_http_ir *h)
{
	yaml_node_t *delay, *abort, *pct, *pcts = NULL, *fixed, *expo, *status, *grpc, *h2;
	/* The old API has no percentage: its lists end before that key, so it stays unknown. */
	const char *pk = modern ? "percentage" : NULL;
	const struct cfg_field f[] = {{"delay", &delay}, {"abort", &abort}, {NULL, NULL}};
	const struct cfg_field df[] = {{"fixedDelay", &fixed},
				       {"exponentialDelay", &expo},
				       {"percent", &pct},
				       {pk, &pcts},
				       {NULL, NULL}};
	const struct cfg_field af[] = {
	    {"httpStatus", &status}, {"grpcStatus", &grpc}, {"http2Error", &h2},
	    {"percent", &pct},	     {pk, &pcts},	    {NULL, NULL}};
	int64_t v;
	int r;

	if ((r = cfg_fields(c, n, modern ? "fault" : "httpFault", f)))
		return r;
	if (delay) {
		if ((r = cfg_fields(c, delay, modern ? "fault.delay" : "httpFault.delay", df)))
			return r;
		if (expo)
			return cfg_unsupported(c, expo, "exponentialDelay");
		if ((r = cfg_need(c, delay, fixed, "fixedDelay")) ||
		    (r = cfg_dur_of(c, fixed, "fixedDelay", &h->delay_ns)))
			return r;
		h->delay_ppm = 1000000;
		if (pct && (r = cfg_pct_of(c, pct, "percent", &h->delay_ppm)))
			return r;
		if (pcts && (r = cfg_percentage_of(c, pcts, &h->delay_ppm)))
			return r;
		h->flags |= RM_RF_DELAY;
	}
	if (abort) {
		if ((r = cfg_fields(c, abort, modern ? "fault.abort" : "httpFault.abort", af)))
			return r;
		if (grpc || h2)
			return cfg_errf(c, grpc ? grpc : h2, "%s",
					modern ? "a non-HTTP abort is not supported by ringmesh"
					       : "only httpStatus aborts are supported");
		if ((r = cfg_need(c, abort, status, "httpStatus")) ||
		    (r = cfg_int_of(c, status, "httpStatus", 200, 599, &v)))
			return r;
		h->abort_status = (uint16_t)v;
		h->abort_ppm = 1000000;
		if (pct && (r = cfg_pct_of(c, pct, "percent", &h->abort_ppm)))
			return r;
		if (pcts && (r = cfg_percentage_of(c, pcts, &h->abort_ppm)))
			return r;
		h->flags |= RM_RF_ABORT;
	}
	return 0;
}
