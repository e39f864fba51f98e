/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cfg_kinds: which documents ringmesh reads. A document is one of three things:
 *  - a kind ringmesh consumes (RouteRule, DestinationPolicy under each apiVersion
 *    Istio ever served them; VirtualService, DestinationRule, ServiceEntry,
 *    WorkloadEntry), handed to its parser;
 *  - skipped and counted: any kind outside the Istio API groups (Kubernetes'
 *    Services, Deployments, ..., other operators' CRDs: users keep them in the
 *    same file as their rules), and the Istio kinds that configure Envoy or the
 *    gateways, which a sidecarless data plane has no counterpart for (ambient's
 *    ztunnel ignores them the same way);
 *  - an error at its kind: an unknown kind of an Istio group (a typo must not be
 *    skipped silently), a kind ringmesh consumes under an apiVersion that never
 *    served it, and the Istio security kinds, which ringmesh cannot enforce:
 *    skipping an AuthorizationPolicy would leave the user believing it holds; the
 *    same for Gateway API routes attached to a Service (mesh routing).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg_ir.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Old API versions: istioctl 0.x chose the schema by kind alone, and its samples
 * use all three (httpbin's circuit breaker is v1alpha1, bookinfo's
 * destination-policy-reviews v1beta1, the rest v1alpha2). */
#define OLD_VERSIONS                                                                               \
	{                                                                                          \
		"config.istio.io/v1alpha2", "config.istio.io/v1alpha1", "config.istio.io/v1beta1"  \
	}
#define MODERN_VERSIONS                                                                            \
	{                                                                                          \
		"networking.istio.io/v1", "networking.istio.io/v1beta1",                           \
		    "networking.istio.io/v1alpha3"                                                 \
	}

static const struct cfg_kind_info kinds[] = {
    {"RouteRule", CFG_K_ROUTERULE, OLD_VERSIONS, cfg_parse_routerule},
    {"DestinationPolicy", CFG_K_DESTPOLICY, OLD_VERSIONS, cfg_parse_destpolicy},
    {"VirtualService", CFG_K_VIRTUALSERVICE, MODERN_VERSIONS, cfg_parse_virtualservice},
    {"DestinationRule", CFG_K_DESTRULE, MODERN_VERSIONS, cfg_parse_destrule},
    {"ServiceEntry", CFG_K_SERVICEENTRY, MODERN_VERSIONS, cfg_parse_serviceentry},
    {"WorkloadEntry", CFG_K_WORKLOADENTRY, MODERN_VERSIONS, cfg_parse_workloadentry},
};

#define REFUSE_SECURITY "ringmesh cannot enforce it, so it is refused rather than skipped"

/* Kinds of the Istio groups that ringmesh does not implement: skipped (why NULL)
 * or refused with why. Everything else in an Istio group is an unknown kind. */
static const struct {
	const char *group, *kind, *why;
} istio_other[] = {
    {"networking.istio.io", "Gateway", NULL},
    {"networking.istio.io", "Sidecar", NULL},
    {"networking.istio.io", "EnvoyFilter", NULL},
    {"networking.istio.io", "WorkloadGroup", NULL},
    {"networking.istio.io", "ProxyConfig", NULL},
    {"telemetry.istio.io", "Telemetry", NULL},
    {"extensions.istio.io", "WasmPlugin", NULL},
    {"install.istio.io", "IstioOperator", NULL},
    {"security.istio.io", "AuthorizationPolicy", REFUSE_SECURITY},
    {"security.istio.io", "PeerAuthentication", REFUSE_SECURITY},
    {"security.istio.io", "RequestAuthentication", REFUSE_SECURITY},
    {"authentication.istio.io", "Policy", REFUSE_SECURITY},
    {"authentication.istio.io", "MeshPolicy", REFUSE_SECURITY},
    {"rbac.istio.io", "ServiceRole", REFUSE_SECURITY},
    {"rbac.istio.io", "ServiceRoleBinding", REFUSE_SECURITY},
    {"rbac.istio.io", "RbacConfig", REFUSE_SECURITY},
    {"rbac.istio.io", "ClusterRbacConfig", REFUSE_SECURITY},
    /* RouteRules to an external host needed it in 0.x: skipping it would leave
     * them pointing at a service nobody declared */
    {"config.istio.io", "EgressRule",
     "declare the external service with a ServiceEntry (networking.istio.io) instead"},
};

const char *cfg_kind_name(enum cfg_kind k)
{
	for (size_t i = 0; i < N_ELEM(kinds); i++)
		if (kinds[i].k == k)
			return kinds[i].kind;
	return "?";
}

/* The group of an apiVersion: "networking.istio.io/v1" -> "networking.istio.io",
 * "v1" (the core group) -> "". */
static size_t group_len(const char *api)
{
	const char *slash = strchr(api, '/');

	if (slash)
		return (size_t)(slash - api);
	/* "networking.istio.io" without a version is still that group, not the core one */
	return strchr(api, '.') ? strlen(api) : 0;
}

static bool istio_group(const char *api)
{
	size_t n = group_len(api);
	static const char suffix[] = ".istio.io";

	if (n == sizeof(suffix) - 2 && !strncmp(api, suffix + 1, n))
		return true; /* "istio.io" itself */
	return n > sizeof(suffix) - 1 &&
	       !strncmp(api + n - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1);
}

static yaml_node_t *map_get(const struct cfg_ctx *c, yaml_node_t *n, const char *key)
{
	if (n->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = cfg_item(c, p->key);

		/* an explicit null is an absent field, as cfg_fields() has it */
		if (k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
			return cfg_is_null(cfg_item(c, p->value)) ? NULL : cfg_item(c, p->value);
	}
	return NULL;
}

/* A VirtualService whose spec.gateways does not name "mesh" configures gateways
 * only: Istio applies it to no sidecar, so it has no meaning for ringmesh (the
 * bookinfo ingress sample, with hosts "*"). A malformed gateways list is left
 * for the parser to report. */
static bool gateways_only(const struct cfg_ctx *c, yaml_node_t *root)
{
	yaml_node_t *spec = map_get(c, root, "spec");
	yaml_node_t *gws = spec ? map_get(c, spec, "gateways") : NULL;

	if (!gws || gws->type != YAML_SEQUENCE_NODE ||
	    gws->data.sequence.items.top == gws->data.sequence.items.start)
		return false;
	for (yaml_node_item_t *it = gws->data.sequence.items.start;
	     it < gws->data.sequence.items.top; it++) {
		yaml_node_t *g = cfg_item(c, *it);

		if (g->type != YAML_SCALAR_NODE ||
		    !strcmp((const char *)g->data.scalar.value, "mesh"))
			return false;
	}
	return true;
}

/* A Gateway API route (gateway.networking.k8s.io) whose parentRefs name a Service is
 * mesh routing (Istio reads it so, the GAMMA initiative): skipping it would drop rules
 * the user meant for ringmesh's traffic, so it is refused; one bound to Gateways only
 * configures those and is skipped. Returns the offending parentRef or NULL. */
static yaml_node_t *mesh_route_parent(const struct cfg_ctx *c, yaml_node_t *root, const char *api,
				      const char *kind)
{
	static const char group[] = "gateway.networking.k8s.io";
	yaml_node_t *spec, *refs;

	if (group_len(api) != sizeof(group) - 1 || strncmp(api, group, sizeof(group) - 1) ||
	    !strstr(kind, "Route"))
		return NULL;
	spec = map_get(c, root, "spec");
	refs = spec ? map_get(c, spec, "parentRefs") : NULL;
	if (!refs || refs->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (yaml_node_item_t *it = refs->data.sequence.items.start;
	     it < refs->data.sequence.items.top; it++) {
		yaml_node_t *k = map_get(c, cfg_item(c, *it), "kind");

		if (k && k->type == YAML_SCALAR_NODE &&
		    !strcmp((const char *)k->data.scalar.value, "Service"))
			return cfg_item(c, *it);
	}
	return NULL;
}

/* "RouteRule, DestinationPolicy": what ringmesh reads in the group of api. */
static void kinds_of_group(const char *api, char *buf, size_t len)
{
	size_t n = group_len(api), used = 0;

	buf[0] = 0;
	for (size_t i = 0; i < N_ELEM(kinds) && used < len; i++)
		if (!strncmp(kinds[i].versions[0], api, n) && kinds[i].versions[0][n] == '/')
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
						 kinds[i].kind);
}

/* A List (kubectl get -o yaml) whose items hold Istio objects would hide rules
 * inside one skipped document: refuse it. */
static int check_list(const struct cfg_ctx *c, yaml_node_t *root)
{
	yaml_node_t *items = map_get(c, root, "items");

	if (!items || items->type != YAML_SEQUENCE_NODE)
		return 0;
	for (yaml_node_item_t *it = items->data.sequence.items.start;
	     it < items->data.sequence.items.top; it++) {
		yaml_node_t *api = map_get(c, cfg_item(c, *it), "apiVersion");

		if (api && api->type == YAML_SCALAR_NODE &&
		    istio_group((const char *)api->data.scalar.value))
			return cfg_errf(c, cfg_item(c, *it),
					"a List holding Istio objects is not read by ringmesh: "
					"give each object its own document");
	}
	return 0;
}

int cfg_doc_classify(struct cfg_ctx *c, yaml_node_t *root, const struct cfg_kind_info **info,
		     struct cfg_doc_ir *ir)
{
	yaml_node_t *api, *kind;
	const char *sapi, *skind;
	char list[160];
	size_t i, j;
	int r;

	*info = NULL;
	if (root->type != YAML_MAPPING_NODE)
		return cfg_errf(c, root, "document must be a mapping, not %s",
				root->type == YAML_SCALAR_NODE ? "a scalar" : "a list");
	kind = map_get(c, root, "kind");
	api = map_get(c, root, "apiVersion");
	if ((r = cfg_need(c, root, kind, "kind")) || (r = cfg_need(c, root, api, "apiVersion")) ||
	    (r = cfg_str_of(c, kind, "kind", &skind)) ||
	    (r = cfg_str_of(c, api, "apiVersion", &sapi)))
		return r;
	for (i = 0; i < N_ELEM(kinds); i++)
		if (!strcmp(kinds[i].kind, skind))
			break;
	if (i < N_ELEM(kinds)) {
		for (j = 0; j < N_ELEM(kinds[i].versions) && kinds[i].versions[j]; j++)
			if (!strcmp(kinds[i].versions[j], sapi))
				break;
		if (j == N_ELEM(kinds[i].versions) || !kinds[i].versions[j])
			return cfg_errf(c, api, "apiVersion \"%s\" does not serve kind %s (use %s)",
					sapi, skind, kinds[i].versions[0]);
		if (kinds[i].k == CFG_K_VIRTUALSERVICE && gateways_only(c, root)) {
			ir->skip_kind = kinds[i].kind;
			ir->skip_note = "bound to gateways only";
			ir->skip_istio = true;
			return 1;
		}
		*info = &kinds[i];
		return 0;
	}
	if (!*skind)
		return cfg_errf(c, kind, "empty kind");
	if (!istio_group(sapi)) {
		yaml_node_t *parent = mesh_route_parent(c, root, sapi, skind);

		if (parent)
			return cfg_errf(c, parent,
					"%s with a Service parent is mesh routing (Gateway API for "
					"mesh), which ringmesh does not implement: write it as a "
					"VirtualService",
					skind);
		if (!strcmp(skind, "List") && !group_len(sapi) && (r = check_list(c, root)))
			return r;
		ir->skip_kind = skind;
		return 1;
	}
	for (i = 0; i < N_ELEM(istio_other); i++)
		if (!strcmp(istio_other[i].kind, skind) &&
		    strlen(istio_other[i].group) == group_len(sapi) &&
		    !strncmp(istio_other[i].group, sapi, group_len(sapi)))
			break;
	if (i == N_ELEM(istio_other)) {
		kinds_of_group(sapi, list, sizeof(list));
		return cfg_errf(c, kind, "unknown kind \"%s\" in %.*s%s%s%s", skind,
				(int)group_len(sapi), sapi, *list ? " (ringmesh reads " : "", list,
				*list ? ")" : "");
	}
	if (istio_other[i].why)
		return cfg_errf(c, kind, "%s (%s) is not implemented by ringmesh: %s", skind,
				istio_other[i].group, istio_other[i].why);
	ir->skip_kind = skind;
	ir->skip_istio = true;
	return 1;
}

/* --- the tally of skipped documents --- */
int cfg_skipped_add(struct cfg_skipped *s, const char *kind, bool istio, const char *note,
		    unsigned count)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].istio == istio && s->v[i].note == note &&
		    !strncmp(s->v[i].kind, kind, sizeof(s->v[i].kind) - 1))
			break;
	if (i == s->n) {
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 8;
			struct cfg_skip_kind *v = realloc(s->v, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			s->v = v;
			s->cap = cap;
		}
		memset(&s->v[i], 0, sizeof(s->v[i]));
		snprintf(s->v[i].kind, sizeof(s->v[i].kind), "%s", kind);
		s->v[i].istio = istio;
		s->v[i].note = note;
		s->n++;
	}
	s->v[i].count += count;
	s->total += count;
	return 0;
}

int cfg_skipped_merge(struct cfg_skipped *dst, const struct cfg_skipped *src)
{
	int r;

	for (size_t i = 0; i < src->n; i++)
		if ((r = cfg_skipped_add(dst, src->v[i].kind, src->v[i].istio, src->v[i].note,
					 src->v[i].count)))
			return r;
	return 0;
}

void cfg_skipped_free(struct cfg_skipped *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

const char *cfg_skipped_fmt(const struct cfg_skipped *s, char *buf, size_t len)
{
	size_t used = 0;

	if (!len)
		return buf;
	buf[0] = 0;
	for (int istio = 0; istio < 2; istio++) {
		bool first = true;

		for (size_t i = 0; i < s->n && used < len; i++) {
			const char *sep =
			    !first   ? ", "
			    : !istio ? ""
			    : used   ? "; Istio configuration ringmesh does not implement: "
				     : "Istio configuration ringmesh does not implement: ";

			if (s->v[i].istio != istio)
				continue;
			used += (size_t)snprintf(
			    buf + used, len - used, "%s%u %s%s%s", sep, s->v[i].count, s->v[i].kind,
			    s->v[i].note ? " " : "", s->v[i].note ? s->v[i].note : "");
			first = false;
		}
	}
	return buf;
}
