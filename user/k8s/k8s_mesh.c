// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Kubernetes objects as the documents the rules compiler already reads: Istio
 * objects are fed as they are (their JSON is YAML), and a Service with its
 * EndpointSlices and their pods' labels becomes the ServiceEntry Istio would
 * derive from it, so both paths share every check and every semantic of a file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "k8s/k8s.h"

static bool prefix_is(const char *name, const char *p)
{
	size_t n = strlen(p);

	return !strncasecmp(name, p, n) && (name[n] == '\0' || name[n] == '-');
}

const char *k8s_port_protocol(const char *name, const char *app_protocol, const char *l4)
{
	static const struct {
		const char *p, *proto;
	} by[] = {{"http", "HTTP"},   {"http2", "HTTP2"}, {"grpc", "GRPC"}, {"grpc-web", "HTTP"},
		  {"https", "HTTPS"}, {"tls", "TLS"},	  {"tcp", "TCP"},   {"h2c", "HTTP2"},
		  {"mongo", "TCP"},   {"mysql", "TCP"},	  {"redis", "TCP"}};
	const char *s;

	if (l4 && *l4 && strcasecmp(l4, "TCP"))
		return NULL; /* UDP and SCTP ports are not proxied */
	if (app_protocol && *app_protocol) {
		s = app_protocol;
		if (!strcmp(s, "kubernetes.io/h2c"))
			return "HTTP2";
		if (!strcmp(s, "kubernetes.io/ws") || !strcmp(s, "kubernetes.io/wss"))
			return "HTTP";
		for (size_t i = 0; i < sizeof(by) / sizeof(by[0]); i++)
			if (!strcasecmp(s, by[i].p))
				return by[i].proto;
		return "TCP";
	}
	if (name && *name) {
		/* longest prefix first: grpc-web before grpc, http2 before http */
		if (prefix_is(name, "grpc-web"))
			return "HTTP";
		for (size_t i = 0; i < sizeof(by) / sizeof(by[0]); i++)
			if (prefix_is(name, by[i].p))
				return by[i].proto;
	}
	return "TCP";
}

static int copy(json_t *dst, json_t *src, const char *key)
{
	json_t *v = json_object_get(src, key);

	return v ? json_object_set(dst, key, v) : 0;
}

json_t *k8s_strip(const char *kind, const char *api_version, json_t *obj)
{
	json_t *o = json_object(), *md = json_object(), *m = json_object_get(obj, "metadata");
	json_t *spec = json_object_get(obj, "spec");

	if (!o || !md) {
		json_decref(o);
		json_decref(md);
		return NULL;
	}
	copy(md, m, "name");
	copy(md, m, "namespace");
	copy(md, m, "resourceVersion");
	if (!strcmp(kind, "Pod") || !strcmp(kind, "PodMeta") || !strcmp(kind, "EndpointSlice")) {
		copy(md, m, "labels");
		copy(md, m, "uid");
		copy(md, m, "ownerReferences");
	}
	json_object_set_new(o, "metadata", md);
	if (!strcmp(kind, "EndpointSlice")) {
		json_t *eps = json_array(), *ep;
		size_t i;

		copy(o, obj, "addressType");
		copy(o, obj, "ports");
		/* of an endpoint: its addresses, whether it is ready and which pod it is */
		json_array_foreach(json_object_get(obj, "endpoints"), i, ep)
		{
			json_t *e = json_object(), *tr = json_object_get(ep, "targetRef"), *t;
			json_t *ready = json_object_get(json_object_get(ep, "conditions"), "ready");

			if (!e)
				break;
			copy(e, ep, "addresses");
			if (ready)
				json_object_set_new(e, "conditions",
						    json_pack("{s:O}", "ready", ready));
			if (tr && (t = json_object())) {
				copy(t, tr, "kind");
				copy(t, tr, "namespace");
				copy(t, tr, "name");
				json_object_set_new(e, "targetRef", t);
			}
			json_array_append_new(eps, e);
		}
		json_object_set_new(o, "endpoints", eps);
		return o;
	}
	if (!strcmp(kind, "Pod")) {
		json_t *ps = json_object();

		if (ps) {
			copy(ps, spec, "nodeName");
			copy(ps, spec, "serviceAccountName");
			json_object_set_new(o, "spec", ps);
		}
		return o;
	}
	if (!strcmp(kind, "PodMeta"))
		return o;
	if (strcmp(kind, "Service")) {
		json_object_set_new(o, "apiVersion", json_string(api_version));
		json_object_set_new(o, "kind", json_string(kind));
	}
	if (spec)
		json_object_set(o, "spec", spec);
	return o;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Our name of a Service port: its own, or p<number> for the unnamed single port. */
static void port_name(json_t *p, char *buf, size_t len)
{
	const char *n = str(p, "name");

	if (n && *n)
		snprintf(buf, len, "%s", n);
	else
		snprintf(buf, len, "p%lld",
			 (long long)json_integer_value(json_object_get(p, "port")));
}

static bool ready(json_t *ep)
{
	json_t *c = json_object_get(ep, "conditions"), *r = json_object_get(c, "ready");

	/* nil ready means ready (discovery/v1 API doc) */
	return !r || json_is_true(r);
}

static bool has_addr(json_t *eps, const char *a)
{
	size_t i;
	json_t *e;

	json_array_foreach(eps, i, e) if (!strcmp(str(e, "address"), a)) return true;
	return false;
}

static int add_endpoints(json_t *out, json_t *svc_ports, json_t *slice, k8s_pod_fn pods, void *arg)
{
	json_t *eps = json_object_get(slice, "endpoints"),
	       *sports = json_object_get(slice, "ports");
	const char *at = str(slice, "addressType");
	size_t i, j, k;
	json_t *ep, *a, *sp, *p;

	if (at && strcmp(at, "IPv4") && strcmp(at, "IPv6"))
		return 0; /* FQDN slices: not addresses */
	json_array_foreach(eps, i, ep)
	{
		json_t *tr = json_object_get(ep, "targetRef"), *labels = NULL, *pm;

		if (!ready(ep))
			continue;
		if (tr && (!str(tr, "kind") || !strcmp(str(tr, "kind"), "Pod")) && pods) {
			const char *ns = str(tr, "namespace");

			labels = pods(arg, ns ? ns : "", str(tr, "name") ? str(tr, "name") : "");
		}
		pm = json_object();
		if (!pm)
			return -ENOMEM;
		json_array_foreach(sports, j, sp)
		{
			const char *sn = str(sp, "name") ? str(sp, "name") : "";

			json_array_foreach(svc_ports, k, p)
			{
				const char *pn = str(p, "name") ? str(p, "name") : "";
				char name[128];

				if (strcmp(sn, pn) || !json_object_get(sp, "port"))
					continue;
				port_name(p, name, sizeof(name));
				json_object_set(pm, name, json_object_get(sp, "port"));
			}
		}
		json_array_foreach(json_object_get(ep, "addresses"), j, a)
		{
			json_t *e;

			if (!json_is_string(a) || has_addr(out, json_string_value(a)))
				continue;
			e = json_object();
			if (!e)
				break;
			json_object_set(e, "address", a);
			if (json_object_size(pm))
				json_object_set(e, "ports", pm);
			if (json_object_size(labels))
				json_object_set(e, "labels", labels);
			json_array_append_new(out, e);
		}
		json_decref(pm);
	}
	return 0;
}

json_t *k8s_service_entry(json_t *svc, json_t *slices, k8s_pod_fn pods, void *arg,
			  const char *domain, char *why, size_t whylen)
{
	json_t *md = json_object_get(svc, "metadata"), *spec = json_object_get(svc, "spec");
	const char *name = str(md, "name"), *ns = str(md, "namespace"), *type = str(spec, "type");
	const char *cip = str(spec, "clusterIP");
	json_t *ips = json_object_get(spec, "clusterIPs"), *ports = json_object_get(spec, "ports");
	json_t *se, *s, *addrs, *oports, *eps, *p, *sl;
	char host[512];
	size_t i;

	*why = '\0';
	if (!name || !ns) {
		snprintf(why, whylen, "no metadata.name/namespace");
		return NULL;
	}
	if (type && !strcmp(type, "ExternalName")) {
		snprintf(why, whylen, "ExternalName services are not routed");
		return NULL;
	}
	if (!cip || !*cip || !strcmp(cip, "None")) {
		snprintf(why, whylen, "headless (no cluster IP): not routed");
		return NULL;
	}
	se = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "networking.istio.io/v1", "kind",
		       "ServiceEntry", "metadata", "name", name, "namespace", ns);
	s = json_object();
	addrs = json_array();
	oports = json_array();
	eps = json_array();
	if (!se || !s || !addrs || !oports || !eps)
		goto nomem;
	snprintf(host, sizeof(host), "%s.%s.svc.%s", name, ns, domain);
	json_object_set_new(s, "hosts", json_pack("[s]", host));
	if (json_array_size(ips))
		json_array_extend(addrs, ips);
	else
		json_array_append_new(addrs, json_string(cip));
	json_object_set(s, "addresses", addrs);
	json_array_foreach(ports, i, p)
	{
		const char *proto =
		    k8s_port_protocol(str(p, "name"), str(p, "appProtocol"), str(p, "protocol"));
		char pname[128];

		if (!proto)
			continue;
		port_name(p, pname, sizeof(pname));
		json_array_append_new(oports, json_pack("{s:O, s:s, s:s}", "number",
							json_object_get(p, "port"), "name", pname,
							"protocol", proto));
	}
	if (!json_array_size(oports)) {
		snprintf(why, whylen, "no TCP port");
		goto out;
	}
	json_object_set(s, "ports", oports);
	json_object_set_new(s, "location", json_string("MESH_INTERNAL"));
	json_object_set_new(s, "resolution", json_string("STATIC"));
	json_array_foreach(slices, i, sl)
	{
		json_t *lab = json_object_get(json_object_get(sl, "metadata"), "labels");
		const char *owner = str(lab, "kubernetes.io/service-name");

		if (owner && !strcmp(owner, name) && add_endpoints(eps, ports, sl, pods, arg))
			goto nomem;
	}
	json_object_set(s, "endpoints", eps);
	json_object_set(se, "spec", s);
	json_decref(s);
	json_decref(addrs);
	json_decref(oports);
	json_decref(eps);
	return se;
nomem:
	snprintf(why, whylen, "out of memory");
out:
	json_decref(se);
	json_decref(s);
	json_decref(addrs);
	json_decref(oports);
	json_decref(eps);
	return NULL;
}
