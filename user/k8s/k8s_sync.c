// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The sync's object cache, the documents built from it, the skipping of the
 * objects the compiler rejects, and the command's loop (see k8s_sync.h).
 *
 * The cache holds what k8s_strip keeps of each object, by "ns/name", without
 * metadata.resourceVersion: an event that changes nothing the sync reads (a
 * Pod's status, an annotation) leaves the cache equal and publishes nothing.
 * A re-list fills a second table that replaces the first at its end, so the
 * objects deleted while the watch was down disappear then.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "common/util.h"
#include "k8s/k8s.h"
#include "k8s/k8s_pods.h"
#include "k8s/k8s_sync.h"

#define MS 1000000ull
/* Services are built once their slices and the pods' labels are listed; labels
 * stop being waited for after this long (a forbidden pod list must not keep
 * the services of a restarted sync at their stored state forever) */
#define LABELS_WAIT_NS (30000 * MS)
#define STATUS_EVERY_NS (1000 * MS)
#define RETRY_NS (1000 * MS)
#define PODS_RETRY_NS (5000 * MS)

#define META_LIST                                                                                  \
	"application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
#define META_WATCH "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

static const struct k8s_resource resources[KS_N] = {
    [KS_SERVICE] = {"Service", "", {"v1"}, "services"},
    [KS_SLICE] = {"EndpointSlice", "discovery.k8s.io", {"v1"}, "endpointslices"},
    [KS_POD] = {"Pod", "", {"v1"}, "pods"},
    [KS_PODMETA] = {"PodMeta", "", {"v1"}, "pods", NULL, META_LIST, META_WATCH},
    [KS_VS] = {"VirtualService", "networking.istio.io", {"v1", "v1beta1"}, "virtualservices"},
    [KS_DR] = {"DestinationRule", "networking.istio.io", {"v1", "v1beta1"}, "destinationrules"},
    [KS_SE] = {"ServiceEntry", "networking.istio.io", {"v1", "v1beta1"}, "serviceentries"},
    [KS_WE] = {"WorkloadEntry", "networking.istio.io", {"v1", "v1beta1"}, "workloadentries"},
    [KS_RR] = {"RouteRule", "config.istio.io", {"v1alpha2", "v1beta1", "v1alpha1"}, "routerules"},
    [KS_DP] = {"DestinationPolicy",
	       "config.istio.io",
	       {"v1alpha2", "v1beta1", "v1alpha1"},
	       "destinationpolicies"},
};

struct skip {
	char *kind, *ns, *name, *error;
};

struct k8s_sync {
	struct k8s_sync_opts o;
	struct k8s_resource res[KS_N];
	char pod_query[320];
	json_t *cache[KS_N];
	json_t *pending[KS_N]; /* a list in progress */
	bool synced[KS_N];     /* listed at least once */
	bool dirty;
	struct k8s_debounce db;
	uint64_t start_ns;
	struct skip *skips, *old_skips;
	size_t nskips, nold_skips;
	/* the documents of the last build, parsed once: an object whose text did not
	 * change is not parsed again (prev and prev_idx, origin -> index, during a
	 * build); keys: kind/ns/name of the build's documents, one of each */
	struct cfg_docs built, prev;
	json_t *prev_idx, *keys;
	/* a Service's document text by ns/name (false: not routed), rebuilt only
	 * for the namespaces where a Service, slice or pod changed */
	json_t *svc_text, *ns_dirty;
	bool svc_all_dirty;
	/* the last build's Service documents, built[svc_first..+svc_n), when they
	 * are every routed Service's, in order, none skipped or dropped: while no
	 * Service, slice or pod changes they are moved into the next build as they
	 * are (no per-Service lookup, key or text compare) */
	size_t svc_first, svc_n;
	bool svc_block;
	/* remote pods are kept as their labels alone, one shared object per
	 * distinct label set (a Deployment's pods share theirs) */
	json_t *labels_intern;
	/* objects the last validation dropped for errors only the whole set shows:
	 * while there are, every build is validated before it is published */
	unsigned rejected_with_set;
	/* the loop's */
	struct k8s_client *cl;
	struct k8s_pods *pods;
	uint64_t started_rt, published_rt, generation, publishes;
	size_t ndocs;
	char publish_err[512];
};

const char *k8s_sync_kind(unsigned idx)
{
	return idx < KS_N ? resources[idx].name : "?";
}

struct k8s_sync *k8s_sync_new(const struct k8s_sync_opts *o, char *err, size_t errlen)
{
	struct k8s_sync *s = calloc(1, sizeof(*s));
	unsigned i;

	if (!s) {
		errf(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	s->o = *o;
	if (!s->o.domain || !*s->o.domain)
		s->o.domain = CFG_DEFAULT_DOMAIN;
	/* rules' short names resolve in it too, and the store is told so on publish */
	if (cfg_domain_check(s->o.domain, err, errlen) || cfg_set_domain(s->o.domain)) {
		free(s);
		return NULL;
	}
	memcpy(s->res, resources, sizeof(s->res));
	if (o->node && *o->node) {
		snprintf(s->pod_query, sizeof(s->pod_query), "fieldSelector=spec.nodeName%%3D%s",
			 o->node);
		s->res[KS_POD].query = s->pod_query;
	}
	for (i = 0; i < KS_N; i++)
		if (!(s->cache[i] = json_object())) {
			k8s_sync_free(s);
			errf(err, errlen, -ENOMEM, "out of memory");
			return NULL;
		}
	s->svc_text = json_object();
	s->ns_dirty = json_object();
	s->labels_intern = json_object();
	if (!s->svc_text || !s->ns_dirty || !s->labels_intern) {
		k8s_sync_free(s);
		errf(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	s->svc_all_dirty = true;
	s->start_ns = mono_ns();
	return s;
}

static void skips_free(struct skip *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].kind);
		free(v[i].ns);
		free(v[i].name);
		free(v[i].error);
	}
	free(v);
}

void k8s_sync_free(struct k8s_sync *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < KS_N; i++) {
		json_decref(s->cache[i]);
		json_decref(s->pending[i]);
	}
	skips_free(s->skips, s->nskips);
	skips_free(s->old_skips, s->nold_skips);
	cfg_docs_free(&s->built);
	cfg_docs_free(&s->prev);
	json_decref(s->prev_idx);
	json_decref(s->keys);
	json_decref(s->svc_text);
	json_decref(s->ns_dirty);
	json_decref(s->labels_intern);
	free(s);
}

/* What a Service's document reads changed: in ns, or everywhere (ns NULL). */
static void svc_touch(struct k8s_sync *s, unsigned idx, const char *ns)
{
	if (idx != KS_SERVICE && idx != KS_SLICE && idx != KS_PODMETA && idx != KS_POD)
		return;
	if (!ns || json_object_set_new(s->ns_dirty, ns, json_true()))
		s->svc_all_dirty = true;
}

void k8s_debounce_change(struct k8s_debounce *d, uint64_t now)
{
	if (!d->pending)
		d->first_ns = now;
	d->pending = true;
}

void k8s_debounce_done(struct k8s_debounce *d, uint64_t now)
{
	d->pending = false;
	d->done_ns = now;
}

uint64_t k8s_debounce_due(const struct k8s_debounce *d)
{
	uint64_t gap = d->done_ns ? d->done_ns + K8S_SYNC_DEBOUNCE_MS * MS : 0;

	if (!d->pending)
		return UINT64_MAX;
	return d->first_ns > gap ? d->first_ns : gap;
}

static void mark(struct k8s_sync *s)
{
	k8s_debounce_change(&s->db, mono_ns());
	s->dirty = true;
}

bool k8s_sync_dirty(const struct k8s_sync *s)
{
	return s->dirty;
}

unsigned k8s_sync_count(const struct k8s_sync *s, unsigned idx)
{
	return idx < KS_N ? (unsigned)json_object_size(s->cache[idx]) : 0;
}

static const char *md_str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(json_object_get(o, "metadata"), k));
}

static int obj_key(json_t *o, char *buf, size_t len)
{
	const char *ns = md_str(o, "namespace"), *name = md_str(o, "name");
	int n;

	if (!name)
		return -EINVAL;
	n = snprintf(buf, len, "%s/%s", ns ? ns : "default", name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Pods deleted while the watch was down: in the old table, not in the new. */
static void pods_gone(struct k8s_sync *s, json_t *old, json_t *now)
{
	const char *k;
	json_t *v;

	if (!s->pods)
		return;
	json_object_foreach(old, k, v) if (!json_object_get(now, k)) k8s_pods_delete(s->pods, v);
}

void k8s_sync_absent(struct k8s_sync *s, unsigned idx)
{
	if (idx >= KS_N || (s->synced[idx] && !json_object_size(s->cache[idx])))
		return;
	json_decref(s->pending[idx]);
	s->pending[idx] = NULL;
	if (idx == KS_POD)
		pods_gone(s, s->cache[idx], NULL);
	json_object_clear(s->cache[idx]);
	s->synced[idx] = true;
	svc_touch(s, idx, NULL);
	mark(s);
}

/* The labels of a pod (a new reference), the interned copy of its label set. */
static json_t *pod_labels_of(struct k8s_sync *s, json_t *pod)
{
	json_t *l = json_object_get(json_object_get(pod, "metadata"), "labels"), *in;
	char *text =
	    json_is_object(l) ? json_dumps(l, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");

	if (!text)
		return NULL;
	in = json_object_get(s->labels_intern, text);
	if (!in) {
		in = json_is_object(l) ? json_deep_copy(l) : json_object();
		if (!in || json_object_set_new(s->labels_intern, text, in)) {
			free(text);
			return NULL;
		}
	}
	free(text);
	return json_incref(in);
}

/* Label sets no pod uses any more (held by the table alone). */
static void labels_sweep(struct k8s_sync *s)
{
	const char *k;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(s->labels_intern, tmp, k, v) if (v->refcount == 1)
	    json_object_del(s->labels_intern, k);
}

void k8s_sync_event(struct k8s_sync *s, unsigned idx, int ev, void *object, const char *version)
{
	json_t *obj = object, *old, *st, *md, *tab;
	char key[512], apiv[128];
	const char *g;

	if (idx >= KS_N)
		return;
	if (ev == K8S_EV_SYNC_BEGIN) {
		json_decref(s->pending[idx]);
		s->pending[idx] = json_object();
		return;
	}
	if (ev == K8S_EV_SYNC_END) {
		if (!s->pending[idx])
			return;
		if (idx == KS_POD)
			pods_gone(s, s->cache[idx], s->pending[idx]);
		if (!s->synced[idx] || !json_equal(s->cache[idx], s->pending[idx])) {
			svc_touch(s, idx, NULL);
			mark(s);
		}
		json_decref(s->cache[idx]);
		s->cache[idx] = s->pending[idx];
		s->pending[idx] = NULL;
		s->synced[idx] = true;
		if (idx == KS_PODMETA)
			labels_sweep(s);
		return;
	}
	if (!obj || obj_key(obj, key, sizeof(key)))
		return;
	tab = s->pending[idx] ? s->pending[idx] : s->cache[idx];
	if (ev == K8S_EV_DELETED) {
		if (idx == KS_POD && s->pods)
			k8s_pods_delete(s->pods, obj);
		if (!json_object_del(tab, key) && tab == s->cache[idx]) {
			svc_touch(s, idx,
				  md_str(obj, "namespace") ? md_str(obj, "namespace") : "default");
			mark(s);
		}
		return;
	}
	if (idx == KS_POD && s->pods)
		k8s_pods_update(s->pods, obj);
	if (idx == KS_PODMETA) {
		if (!(st = pod_labels_of(s, obj)))
			return;
		goto store;
	}
	g = s->res[idx].group;
	snprintf(apiv, sizeof(apiv), "%s%s%s", g, *g ? "/" : "", version ? version : "v1");
	st = k8s_strip(s->res[idx].name, apiv, obj);
	if (!st)
		return;
	md = json_object_get(st, "metadata");
	json_object_del(md, "resourceVersion");
	if (!json_object_get(md, "namespace"))
		json_object_set_new(md, "namespace", json_string("default"));
store:
	old = json_object_get(tab, key);
	if (old && (old == st || json_equal(old, st))) {
		json_decref(st);
		return;
	}
	if (tab == s->cache[idx]) {
		svc_touch(s, idx, md_str(obj, "namespace") ? md_str(obj, "namespace") : "default");
		mark(s);
	}
	json_object_set_new(tab, key, st);
}

/* ---- documents ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of a table in order: the same cache gives the same documents. */
static const char **sorted_keys(json_t *tab, size_t *n)
{
	const char **v = malloc((json_object_size(tab) + 1) * sizeof(*v)), *k;
	json_t *x;

	*n = 0;
	if (!v)
		return NULL;
	json_object_foreach(tab, k, x) v[(*n)++] = k;
	qsort(v, *n, sizeof(*v), cmp_str);
	return v;
}

static json_t *pod_labels(void *arg, const char *ns, const char *name)
{
	struct k8s_sync *s = arg;
	char key[512];
	json_t *p;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	p = json_object_get(s->cache[KS_PODMETA], key); /* the labels themselves */
	if (p)
		return p;
	p = json_object_get(s->cache[KS_POD], key);
	return json_object_get(json_object_get(p, "metadata"), "labels");
}

static int skip_add(struct k8s_sync *s, const char *kind, const char *ns, const char *name,
		    const char *error)
{
	struct skip *v = realloc(s->skips, (s->nskips + 1) * sizeof(*v)), *k;

	if (!v)
		return -ENOMEM;
	s->skips = v;
	k = &v[s->nskips];
	k->kind = strdup(kind);
	k->ns = strdup(ns);
	k->name = strdup(name);
	k->error = strdup(error);
	if (!k->kind || !k->ns || !k->name || !k->error) {
		free(k->kind);
		free(k->ns);
		free(k->name);
		free(k->error);
		return -ENOMEM;
	}
	s->nskips++;
	return 0;
}

/* "k8s:KIND/NS/NAME" back to its parts, for a skipped document. */
static void skip_origin(struct k8s_sync *s, const char *origin, const char *error)
{
	char buf[600], *kind = buf, *ns, *name;

	snprintf(buf, sizeof(buf), "%s", origin + strlen(K8S_SYNC_ORIGIN));
	ns = strchr(kind, '/');
	if (ns)
		*ns++ = '\0';
	name = ns ? strchr(ns, '/') : NULL;
	if (name)
		*name++ = '\0';
	skip_add(s, kind, ns ? ns : "", name ? name : "", error);
}

static void doc_key(const struct cfg_doc *d, char *buf, size_t len)
{
	snprintf(buf, len, "%d/%s/%s", d->kind, d->ns, d->name);
}

/* One object's document into out: the last build's when its text is the same,
 * else parsed; a rejected one, or a second of one kind/ns/name, is recorded. */
static int add_text(struct k8s_sync *s, struct cfg_docs *out, const char *kind, const char *key,
		    const char *text)
{
	char origin[600], err[1024], dk[700];
	json_t *j;
	size_t n = out->n;
	int r = 0;
	bool reused = false;

	snprintf(origin, sizeof(origin), K8S_SYNC_ORIGIN "%s/%s", kind, key);
	j = json_object_get(s->prev_idx, origin);
	if (j && (size_t)json_integer_value(j) < s->prev.n) {
		struct cfg_doc *p = &s->prev.v[json_integer_value(j)];

		if (p->text && !strcmp(p->text, text)) {
			r = cfg_docs_push(out, p);
			reused = true;
		}
	}
	if (!reused) {
		r = cfg_docs_parse(out, origin, text, strlen(text), err, sizeof(err));
		if (r == -ENOMEM)
			return r;
		if (r) {
			skip_origin(s, origin, err);
			return 0;
		}
	}
	for (size_t i = n; !r && i < out->n; i++) {
		doc_key(&out->v[i], dk, sizeof(dk));
		if (json_object_get(s->keys, dk)) {
			snprintf(
			    err, sizeof(err),
			    "%s:1:1: another object from the API declares %s %s/%s (a Service's "
			    "ServiceEntry has the Service's name)",
			    origin, cfg_kind_name(out->v[i].kind), out->v[i].ns, out->v[i].name);
			skip_origin(s, origin, err);
			cfg_docs_drop(out, i--);
			continue;
		}
		r = json_object_set_new(s->keys, dk, json_true()) ? -ENOMEM : 0;
	}
	return r;
}

static int add_doc(struct k8s_sync *s, struct cfg_docs *out, const char *kind, const char *key,
		   json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	int r = text ? add_text(s, out, kind, key, text) : -ENOMEM;

	free(text);
	return r;
}

/* The text of one Service's document (a new reference), or json_false() when
 * it is not routed. by_ns: the slices by namespace. */
static json_t *service_text(struct k8s_sync *s, const char *key, json_t *svc, json_t *by_ns,
			    json_t *empty)
{
	json_t *sls = json_object_get(by_ns, md_str(svc, "namespace")), *se, *t;
	char why[256], *text;

	se =
	    k8s_service_entry(svc, sls ? sls : empty, pod_labels, s, s->o.domain, why, sizeof(why));
	if (!se) {
		if (!strcmp(why, "out of memory"))
			return NULL;
		if (s->o.verbose)
			fprintf(stderr, "sync: Service %s: %s\n", key, why);
		return json_false();
	}
	text = json_dumps(se, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(se);
	t = text ? json_string(text) : NULL;
	free(text);
	return t;
}

/* Slices by namespace: each namespace's EndpointSlices (borrowed references). */
static json_t *slices_by_ns(struct k8s_sync *s)
{
	json_t *by_ns = json_object(), *sl;
	const char *k;

	if (!by_ns)
		return NULL;
	json_object_foreach(s->cache[KS_SLICE], k, sl)
	{
		const char *ns = md_str(sl, "namespace");
		json_t *a = json_object_get(by_ns, ns ? ns : "default");

		if (!a && (a = json_array()))
			json_object_set_new(by_ns, ns ? ns : "default", a);
		if (!a || json_array_append(a, sl)) {
			json_decref(by_ns);
			return NULL;
		}
	}
	return by_ns;
}

/*
 * Every Service's document into out. svc_text (a Service's text, or false when it
 * is not routed) is updated in place, only for the Services of the namespaces an
 * event touched since the last build: an edit elsewhere (a VirtualService) reuses
 * all 10,000 texts without rebuilding the table that holds them. A deleted Service
 * touched its namespace, so its text goes when a namespace is dirty.
 */
static int add_services(struct k8s_sync *s, struct cfg_docs *out)
{
	bool dirty = s->svc_all_dirty || json_object_size(s->ns_dirty);
	json_t *by_ns = NULL, *empty = json_array(), *svc, *t;
	const char *k, **keys = NULL;
	size_t n = 0, routed = 0, skips = s->nskips;
	void *tmp;
	int r = empty ? 0 : -ENOMEM;

	s->svc_first = out->n;

	if (!r && !(keys = sorted_keys(s->cache[KS_SERVICE], &n)))
		r = -ENOMEM;
	for (size_t i = 0; !r && i < n; i++) {
		svc = json_object_get(s->cache[KS_SERVICE], keys[i]);
		t = json_object_get(s->svc_text, keys[i]);
		if (!t || s->svc_all_dirty ||
		    (dirty && json_object_get(s->ns_dirty, md_str(svc, "namespace")))) {
			/* the slices by namespace, once per build that needs them */
			if (!by_ns && !(by_ns = slices_by_ns(s)))
				r = -ENOMEM;
			t = r ? NULL : service_text(s, keys[i], svc, by_ns, empty);
			if (!t || json_object_set_new(s->svc_text, keys[i], t)) {
				r = -ENOMEM;
				break;
			}
		}
		if (json_is_string(t)) {
			r = add_text(s, out, "Service", keys[i], json_string_value(t));
			routed++;
		}
	}
	if (!r && dirty) /* the texts of Services gone */
		json_object_foreach_safe(s->svc_text, tmp, k, t)
		{
			if (!json_object_get(s->cache[KS_SERVICE], k))
				json_object_del(s->svc_text, k);
		}
	if (!r) {
		json_object_clear(s->ns_dirty);
		s->svc_all_dirty = false;
	}
	s->svc_n = out->n - s->svc_first;
	s->svc_block = !r && s->svc_n == routed && s->nskips == skips;
	free(keys);
	json_decref(by_ns);
	json_decref(empty);
	return r;
}

/* The last build's Service documents moved into out as they are, when nothing
 * they are built from changed and no object from Istio's APIs in out declares a
 * Service's ServiceEntry (which would push one out): true, else false with out
 * untouched (add_services then). prev: the last build, whose block is valid. */
static bool reuse_services(struct k8s_sync *s, struct cfg_docs *prev, struct cfg_docs *out)
{
	size_t first = out->n;
	char key[600];

	if (s->svc_all_dirty || json_object_size(s->ns_dirty))
		return false;
	for (size_t i = 0; i < out->n; i++) {
		const struct cfg_doc *d = &out->v[i];

		snprintf(key, sizeof(key), "%s/%s", d->ns, d->name);
		if (d->kind == CFG_K_SERVICEENTRY && json_object_get(s->cache[KS_SERVICE], key))
			return false;
	}
	for (size_t i = 0; i < s->svc_n; i++)
		if (cfg_docs_push(out, &prev->v[s->svc_first + i])) {
			/* back where they were: the build goes the long way */
			while (out->n > first) {
				out->n--;
				prev->v[s->svc_first + out->n - first] = out->v[out->n];
			}
			return false;
		}
	s->svc_first = first;
	return true;
}

static int add_istio(struct k8s_sync *s, struct cfg_docs *out, unsigned idx)
{
	size_t n;
	const char **keys = sorted_keys(s->cache[idx], &n);
	int r = keys ? 0 : -ENOMEM;

	for (size_t i = 0; !r && i < n; i++)
		r = add_doc(s, out, s->res[idx].name, keys[i],
			    json_object_get(s->cache[idx], keys[i]));
	free(keys);
	return r;
}

static bool has_prefix(const char *s, const char *p)
{
	return s && !strncmp(s, p, strlen(p));
}

/* Stored documents of the resources not listed yet stay as they are. */
static int carry_over(struct k8s_sync *s, struct cfg_docs *stored, struct cfg_docs *out,
		      bool services)
{
	char p[128], dk[700];
	unsigned idx;
	int r = 0;

	for (size_t i = stored->n; !r && i-- > 0;) {
		const char *o = stored->v[i].origin;

		if (!has_prefix(o, K8S_SYNC_ORIGIN))
			continue;
		for (idx = 0; idx < KS_N; idx++) {
			bool listed = idx == KS_SERVICE ? services : s->synced[idx];

			snprintf(p, sizeof(p), K8S_SYNC_ORIGIN "%s/", s->res[idx].name);
			if (!has_prefix(o, p))
				continue;
			doc_key(&stored->v[i], dk, sizeof(dk));
			/* one of each kind/ns/name: a listed object wins */
			if (!listed && !json_object_get(s->keys, dk)) {
				r = json_object_set_new(s->keys, dk, json_true())
					? -ENOMEM
					: cfg_docs_push(out, &stored->v[i]);
			}
			break;
		}
	}
	/* the moved ones are zeroed (no origin): they go with the others */
	for (size_t i = stored->n; i-- > 0;)
		if (!stored->v[i].origin || has_prefix(stored->v[i].origin, K8S_SYNC_ORIGIN))
			cfg_docs_drop(stored, i);
	return r;
}

/* Compile the files' documents (those a document of the sync does not
 * replace, as cfg_store_sync does) with the first m of out. */
static int try_compile(const struct cfg_docs *base, json_t *keys, const struct cfg_docs *out,
		       size_t m, char *err, size_t errlen)
{
	struct cfg_docs v = {.v = malloc((base->n + m + 1) * sizeof(struct cfg_doc))};
	struct rm_cfg cfg = {0};
	char key[600];
	int r;

	if (!v.v)
		return errf(err, errlen, -ENOMEM, "out of memory");
	for (size_t i = 0; i < base->n; i++) {
		doc_key(&base->v[i], key, sizeof(key));
		if (!json_object_get(keys, key))
			v.v[v.n++] = base->v[i];
	}
	for (size_t i = 0; i < m; i++)
		v.v[v.n++] = out->v[i];
	r = cfg_compile(&v, &cfg, err, errlen);
	cfg_free(&cfg);
	free(v.v);
	return r;
}

static json_t *doc_keys(const struct cfg_docs *out)
{
	json_t *k = json_object();
	char key[600];

	for (size_t i = 0; k && i < out->n; i++) {
		doc_key(&out->v[i], key, sizeof(key));
		json_object_set_new(k, key, json_true());
	}
	return k;
}

/* The document of out an error message starts with ("ORIGIN:LINE:COL: ..."). */
static size_t blamed(const struct cfg_docs *out, const char *err)
{
	for (size_t i = 0; i < out->n; i++) {
		size_t n = strlen(out->v[i].origin);

		if (!strncmp(err, out->v[i].origin, n) && err[n] == ':')
			return i;
	}
	return SIZE_MAX;
}

/* Drop the documents of out the compiler rejects with the others: the one an
 * error names, else the first whose addition breaks the set (bisection over
 * out's order, log2(n) compiles). */
static int drop_rejected(struct k8s_sync *s, const struct cfg_docs *base, struct cfg_docs *out,
			 char *err, size_t errlen)
{
	s->rejected_with_set = 0;
	char e2[1024];
	json_t *keys = NULL;
	int r = 0;

	for (size_t round = 0; round <= out->n + 1; round++) {
		size_t i, lo, hi;

		json_decref(keys);
		if (!(keys = doc_keys(out)))
			return errf(err, errlen, -ENOMEM, "out of memory");
		r = try_compile(base, keys, out, out->n, err, errlen);
		if (!r || r == -ENOMEM)
			break;
		i = blamed(out, err);
		if (i == SIZE_MAX) {
			if (try_compile(base, keys, out, 0, e2, sizeof(e2))) {
				r = errf(err, errlen, -EINVAL,
					 "the applied files do not compile: %s", e2);
				break;
			}
			for (lo = 0, hi = out->n; hi - lo > 1;) {
				size_t mid = lo + (hi - lo) / 2;

				if (try_compile(base, keys, out, mid, e2, sizeof(e2))) {
					hi = mid;
					snprintf(err, errlen, "%s", e2);
				} else {
					lo = mid;
				}
			}
			i = hi - 1;
		}
		skip_origin(s, out->v[i].origin, err);
		cfg_docs_drop(out, i);
		s->rejected_with_set++;
		s->svc_block = false; /* the indexes moved */
	}
	json_decref(keys);
	return r;
}

static void log_new_skips(struct k8s_sync *s, size_t from, FILE *log)
{
	for (size_t i = from; log && i < s->nskips; i++) {
		const struct skip *k = &s->skips[i];
		bool seen = false;

		for (size_t j = 0; !seen && j < s->nold_skips; j++)
			seen = !strcmp(k->kind, s->old_skips[j].kind) &&
			       !strcmp(k->ns, s->old_skips[j].ns) &&
			       !strcmp(k->name, s->old_skips[j].name) &&
			       !strcmp(k->error, s->old_skips[j].error);
		if (!seen)
			fprintf(log, "sync: skipped %s %s/%s: %s\n", k->kind, k->ns, k->name,
				k->error);
	}
}

static bool services_listed(const struct k8s_sync *s)
{
	return s->synced[KS_SERVICE] && s->synced[KS_SLICE] &&
	       (s->synced[KS_PODMETA] || mono_ns() - s->start_ns >= LABELS_WAIT_NS);
}

/* Is every stored document of the sync replaced by what the cache builds? */
static bool all_listed(const struct k8s_sync *s)
{
	for (unsigned idx = KS_VS; idx <= KS_DP; idx++)
		if (!s->synced[idx])
			return false;
	return services_listed(s);
}

static int prev_index(struct k8s_sync *s, size_t i)
{
	return json_object_set_new(s->prev_idx, s->prev.v[i].origin, json_integer((json_int_t)i))
		   ? -ENOMEM
		   : 0;
}

int k8s_sync_docs(struct k8s_sync *s, struct cfg_docs *stored, const struct cfg_docs **docs,
		  bool validate, FILE *log, char *err, size_t errlen)
{
	bool services = services_listed(s), block;
	struct cfg_docs *out = &s->built;
	int r = 0;

	*err = '\0';
	*docs = out;
	s->dirty = false;
	skips_free(s->old_skips, s->nold_skips);
	s->old_skips = s->skips;
	s->nold_skips = s->nskips;
	s->skips = NULL;
	s->nskips = 0;
	/* the last build becomes prev, indexed by origin (but for a Service block
	 * that may move as it is; when it does not, it is indexed below) */
	cfg_docs_free(&s->prev);
	s->prev = s->built;
	memset(&s->built, 0, sizeof(s->built));
	json_decref(s->prev_idx);
	json_decref(s->keys);
	s->prev_idx = json_object();
	s->keys = json_object();
	block = services && all_listed(s) && s->svc_block && s->svc_first + s->svc_n <= s->prev.n;
	s->svc_block = false;
	if (!s->prev_idx || !s->keys)
		return errf(err, errlen, -ENOMEM, "out of memory");
	for (size_t i = 0; !r && i < s->prev.n; i++)
		if (!block || i < s->svc_first || i >= s->svc_first + s->svc_n)
			r = prev_index(s, i);
	/* Istio's objects first: a Service's ServiceEntry does not push out one */
	for (unsigned idx = KS_VS; !r && idx <= KS_DP; idx++)
		if (s->synced[idx])
			r = add_istio(s, out, idx);
	if (!r && block && !(s->svc_block = reuse_services(s, &s->prev, out)))
		for (size_t i = s->svc_first; !r && i < s->svc_first + s->svc_n; i++)
			r = prev_index(s, i);
	if (!r && services && !s->svc_block)
		r = add_services(s, out);
	if (!r)
		r = carry_over(s, stored, out, services);
	cfg_docs_free(&s->prev);
	if (r == -ENOMEM)
		return errf(err, errlen, r, "out of memory");
	if (!r && validate)
		r = drop_rejected(s, stored, out, err, errlen);
	log_new_skips(s, 0, log);
	return r;
}

int k8s_sync_validate(struct k8s_sync *s, const struct cfg_docs *base, FILE *log, char *err,
		      size_t errlen)
{
	size_t from = s->nskips;
	int r = drop_rejected(s, base, &s->built, err, errlen);

	log_new_skips(s, from, log);
	return r;
}

bool k8s_sync_skipped(const struct k8s_sync *s, size_t i, const char **kind, const char **ns,
		      const char **name, const char **error)
{
	if (i >= s->nskips)
		return false;
	*kind = s->skips[i].kind;
	*ns = s->skips[i].ns;
	*name = s->skips[i].name;
	*error = s->skips[i].error;
	return true;
}

/* ---- status ---- */

void k8s_sync_status_path(const char *pin_dir, char *buf, size_t len)
{
	char p[256];
	size_t j = 0;

	for (const char *c = pin_dir; *c && j + 1 < sizeof(p); c++)
		if (*c != '/' || (j && p[j - 1] != '_'))
			p[j++] = *c == '/' ? '_' : *c;
	while (j && p[j - 1] == '_')
		j--;
	p[j] = '\0';
	snprintf(buf, len, "/run/ringmesh/sync-%s.json", p);
}

static const char *state_name(enum k8s_rstate st)
{
	static const char *const n[] = {"idle", "listing", "watching", "backoff", "absent"};

	return (unsigned)st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

char *k8s_sync_status_text(const struct k8s_sync *s, uint64_t now_ns)
{
	json_t *j = json_object(), *kinds = json_array(), *sk = json_array();
	uint64_t last = 0;
	char *text;

	if (!j || !kinds || !sk) {
		json_decref(j);
		json_decref(kinds);
		json_decref(sk);
		return NULL;
	}
	json_object_set_new(j, "pid", json_integer(getpid()));
	json_object_set_new(j, "updated_ns", json_integer((json_int_t)now_ns));
	json_object_set_new(j, "started_ns", json_integer((json_int_t)s->started_rt));
	json_object_set_new(j, "pin_dir", json_string(s->o.pin_dir ? s->o.pin_dir : ""));
	json_object_set_new(j, "node", json_string(s->o.node ? s->o.node : ""));
	json_object_set_new(j, "reachable", json_boolean(s->cl && k8s_client_reachable(s->cl)));
	for (unsigned i = 0; i < KS_N; i++) {
		const struct k8s_rstat *st = s->cl ? k8s_client_stat(s->cl, i) : NULL;
		json_t *k =
		    json_pack("{s:s, s:i, s:b}", "kind", s->res[i].name, "objects",
			      (json_int_t)json_object_size(s->cache[i]), "listed", s->synced[i]);

		if (!k)
			continue;
		if (i == KS_POD && !s->res[i].query) {
			json_decref(k);
			continue; /* no --node-name: not watched */
		}
		if (st) {
			json_object_set_new(k, "version",
					    json_string(st->version ? st->version : ""));
			json_object_set_new(k, "state", json_string(state_name(st->state)));
			json_object_set_new(k, "events", json_integer((json_int_t)st->events));
			json_object_set_new(k, "lists", json_integer((json_int_t)st->lists));
			json_object_set_new(k, "relists_410",
					    json_integer((json_int_t)st->relists_410));
			json_object_set_new(k, "errors", json_integer((json_int_t)st->errors));
			json_object_set_new(k, "last_error", json_string(st->last_error));
			if (st->last_event_ns > last)
				last = st->last_event_ns;
		}
		json_array_append_new(kinds, k);
	}
	json_object_set_new(j, "last_event_ns", json_integer((json_int_t)last));
	json_object_set_new(j, "generation", json_integer((json_int_t)s->generation));
	json_object_set_new(j, "published_ns", json_integer((json_int_t)s->published_rt));
	json_object_set_new(j, "documents", json_integer((json_int_t)s->ndocs));
	json_object_set_new(j, "publish_error", json_string(s->publish_err));
	json_object_set_new(j, "kinds", kinds);
	for (size_t i = 0; i < s->nskips; i++)
		json_array_append_new(sk,
				      json_pack("{s:s, s:s, s:s, s:s}", "kind", s->skips[i].kind,
						"namespace", s->skips[i].ns, "name",
						s->skips[i].name, "error", s->skips[i].error));
	json_object_set_new(j, "skipped", sk);
	if (s->pods) {
		const struct k8s_pods_stat *p = k8s_pods_stat(s->pods);

		json_object_set_new(j, "pods",
				    json_pack("{s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:s}",
					      "cgroup_dir", s->o.cgroup_dir, "local", (int)p->pods,
					      "mapped", (int)p->mapped, "cgroups", (int)p->cgroups,
					      "writes", (json_int_t)p->writes, "deletes",
					      (json_int_t)p->deletes, "errors",
					      (json_int_t)p->errors, "last_error", p->last_error));
	}
	text = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(j);
	return text;
}

static int mkdirs(const char *path)
{
	char d[PATH_MAX], *p;

	snprintf(d, sizeof(d), "%s", path);
	p = strrchr(d, '/');
	if (!p || p == d)
		return 0;
	*p = '\0';
	for (p = d + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(d, 0755);
			*p = '/';
		}
	return mkdir(d, 0755) && errno != EEXIST ? -errno : 0;
}

static int status_write(struct k8s_sync *s)
{
	char tmp[PATH_MAX + 16], *text;
	int fd, r = 0;
	size_t len;

	if (!s->o.status_file || !*s->o.status_file)
		return 0;
	if (!(text = k8s_sync_status_text(s, realtime_ns())))
		return -ENOMEM;
	len = strlen(text);
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->o.status_file);
	mkdirs(s->o.status_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
		r = -errno;
	if (fd >= 0 && close(fd) && !r)
		r = -errno;
	if (!r && rename(tmp, s->o.status_file))
		r = -errno;
	if (r)
		unlink(tmp);
	free(text);
	return r;
}

/* ---- the loop ---- */

struct k8s_conf *k8s_sync_conf_new(const char *kubeconfig, char *err, size_t errlen)
{
	struct k8s_conf *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		errf(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	r = kubeconfig ? k8s_conf_kubeconfig(c, kubeconfig, err, errlen)
		       : k8s_conf_incluster(c, K8S_SA_DIR, err, errlen);
	if (r) {
		k8s_sync_conf_free(c);
		return NULL;
	}
	return c;
}

void k8s_sync_conf_free(struct k8s_conf *c)
{
	if (c)
		k8s_conf_free(c);
	free(c);
}

static void on_event(void *arg, unsigned idx, enum k8s_ev ev, json_t *obj)
{
	struct k8s_sync *s = arg;
	const struct k8s_rstat *st = k8s_client_stat(s->cl, idx);

	k8s_sync_event(s, idx, ev, obj, st ? st->version : NULL);
}

static int publish(struct k8s_sync *s, struct cfg_store *store, bool *open)
{
	struct cfg_docs stored = {0};
	const struct cfg_docs *out = NULL;
	struct rm_cfg cfg = {0};
	struct rm_cfg_src src = {0};
	char err[1024] = "";
	uint64_t gen = 0;
	bool changed = false;
	uint64_t t0 = mono_ns(), t1 = 0, t2 = 0;
	bool validate;
	size_t n;
	int r = 0;

	if (!*open) {
		r = cfg_store_open(store, s->o.pin_dir, true, err, sizeof(err));
		if (r)
			goto out;
		/* the cluster's domain is the store's: files applied by hand are resolved
		 * in it too */
		store->set_domain = true;
		*open = true;
	}
	r = cfg_store_snapshot(store, &cfg, &src, &gen);
	if (r)
		snprintf(err, sizeof(err), "could not read a consistent configuration");
	else if (gen && all_listed(s)) /* the sync's own are not needed: not parsed */
		r = cfg_src_unpack_except(&src, K8S_SYNC_ORIGIN, &stored, err, sizeof(err));
	else if (gen)
		r = cfg_src_unpack(&src, &stored, err, sizeof(err));
	t1 = mono_ns();
	/* the set compiles as a whole as the last one did: published without a
	 * compile of its own first (cfg_store_sync compiles it), validated only
	 * when that fails */
	validate = s->rejected_with_set || !s->publishes;
	if (!r)
		r = k8s_sync_docs(s, &stored, &out, validate, stderr, err, sizeof(err));
	t2 = mono_ns();
	if (!r)
		r = cfg_store_sync(store, s->o.pin_dir, K8S_SYNC_ORIGIN, out, &changed, &gen, err,
				   sizeof(err));
	if (r && out && !validate) {
		r = k8s_sync_validate(s, &stored, stderr, err, sizeof(err));
		if (!r)
			r = cfg_store_sync(store, s->o.pin_dir, K8S_SYNC_ORIGIN, out, &changed,
					   &gen, err, sizeof(err));
	}
	n = out ? out->n : 0;
	if (!r) {
		s->ndocs = n;
		s->generation = gen;
		s->publishes++;
		if (s->o.verbose)
			fprintf(stderr, "sync: read %.1f ms, documents %.1f ms, publish %.1f ms\n",
				(double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6,
				(double)(mono_ns() - t2) / 1e6);
		if (changed) {
			s->published_rt = realtime_ns();
			fprintf(stderr,
				"sync: generation %llu: %zu documents from the API, %zu skipped\n",
				(unsigned long long)gen, n, s->nskips);
		}
	}
out:
	if (r) {
		if (strcmp(err, s->publish_err))
			fprintf(stderr, "sync: publish failed (retrying): %s\n",
				*err ? err : strerror(-r));
	}
	snprintf(s->publish_err, sizeof(s->publish_err), "%s",
		 r ? (*err ? err : strerror(-r)) : "");
	cfg_docs_free(&stored);
	cfg_free(&cfg);
	cfg_src_free(&src);
	return r;
}

static int signal_fd(void)
{
	sigset_t m;

	sigemptyset(&m);
	sigaddset(&m, SIGTERM);
	sigaddset(&m, SIGINT);
	if (sigprocmask(SIG_BLOCK, &m, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
}

static bool signalled(int fd)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			return true;
	return false;
}

static void pods_try(struct k8s_sync *s, uint64_t now, uint64_t *next)
{
	char err[512];

	if (s->pods || !s->o.cgroup_dir || !s->res[KS_POD].query || now < *next)
		return;
	s->pods = k8s_pods_new(s->o.cgroup_dir, s->o.pin_dir, err, sizeof(err));
	if (!s->pods) {
		if (!*next)
			fprintf(stderr, "sync: pod identity waits: %s\n", err);
		*next = now + PODS_RETRY_NS;
		return;
	}
	if (k8s_pods_fd(s->pods) >= 0)
		k8s_client_wake_fd(s->cl, k8s_pods_fd(s->pods));
	/* the pods already listed: their records now */
	{
		const char *k;
		json_t *v;

		json_object_foreach(s->cache[KS_POD], k, v) k8s_pods_update(s->pods, v);
	}
	fprintf(stderr, "sync: pod identity from %s\n", s->o.cgroup_dir);
}

int k8s_sync_run(struct k8s_sync *s, struct k8s_conf *conf, char *err, size_t errlen)
{
	struct k8s_opts ko = {.verbose = s->o.verbose};
	struct cfg_store store = {0};
	uint64_t status_ns = 0, retry_ns = 0, pods_ns = 0, pods_seen = 0;
	bool open = false;
	int sfd = signal_fd(), r = 0;
	/* without a node name there are no local pods to watch (KS_POD is last) */
	unsigned nres = s->res[KS_POD].query ? KS_N : KS_POD;

	if (sfd < 0)
		return errf(err, errlen, sfd, "signalfd: %s", strerror(-sfd));
	/* a publish at 10,000 Services allocates and frees tens of megabytes (the
	 * compiled tables, the packed sources, the blob): kept in the heap for the
	 * next one instead of mmapped and faulted in page by page each time (20% of
	 * a publish); RSS stays at the peak the first publish reached */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 128 << 20);
	s->cl = k8s_client_new(conf, &ko, s->res, nres, on_event, s, err, errlen);
	if (!s->cl) {
		close(sfd);
		return -ENOMEM;
	}
	k8s_client_wake_fd(s->cl, sfd);
	s->started_rt = realtime_ns();
	if (!s->res[KS_POD].query)
		k8s_sync_absent(s, KS_POD);
	for (;;) {
		uint64_t now = mono_ns(), due = k8s_debounce_due(&s->db);
		int wait = 200;

		if (due < retry_ns)
			due = retry_ns;
		if (s->dirty && due < now + 200 * MS)
			wait = due > now ? (int)((due - now + MS - 1) / MS) : 0;
		if ((r = k8s_client_step(s->cl, wait)))
			fprintf(stderr, "sync: %s\n", strerror(-r));
		if (signalled(sfd))
			break;
		now = mono_ns();
		pods_try(s, now, &pods_ns);
		if (s->pods)
			k8s_pods_step(s->pods);
		for (unsigned i = 0; i < KS_N; i++) {
			const struct k8s_rstat *st = k8s_client_stat(s->cl, i);

			if (st && st->state == K8S_R_ABSENT)
				k8s_sync_absent(s, i);
		}
		if (s->dirty && now >= k8s_debounce_due(&s->db) && now >= retry_ns) {
			int p = publish(s, &store, &open);

			/* what arrives from now on waits for the debounce, a failed set
			 * for the retry */
			k8s_debounce_done(&s->db, mono_ns());
			if (p) {
				mark(s);
				retry_ns = now + RETRY_NS;
			}
			status_ns = 0;
		}
		if (s->pods && k8s_pods_stat(s->pods)->writes + k8s_pods_stat(s->pods)->deletes !=
				   pods_seen) { /* a pod's record written: shown at once */
			pods_seen =
			    k8s_pods_stat(s->pods)->writes + k8s_pods_stat(s->pods)->deletes;
			status_ns = 0;
		}
		if (now - status_ns >= STATUS_EVERY_NS) {
			int w = status_write(s);

			if (w && !status_ns)
				fprintf(stderr, "sync: status file %s: %s\n", s->o.status_file,
					strerror(-w));
			status_ns = now;
		}
	}
	fprintf(stderr, "sync: stopping on a signal; the published rules stay\n");
	if (open)
		cfg_store_close(&store);
	if (s->o.status_file && *s->o.status_file)
		status_write(s);
	k8s_client_free(s->cl);
	s->cl = NULL;
	k8s_pods_free(s->pods);
	s->pods = NULL;
	close(sfd);
	return 0;
}
