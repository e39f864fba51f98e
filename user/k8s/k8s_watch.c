// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Reflectors: client-go's list-then-watch loop per resource, all resources on
 * one curl multi handle driven by the caller's thread (k8s_client_step). One
 * thread because the caller's object cache and debounce timer are then plain
 * data, and a node watches a handful of resources: curl multi multiplexes them
 * without a thread each.
 *
 *   LIST ?limit=500[&continue=T]  ... until metadata.continue is empty
 *   WATCH ?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N
 *     ended by the server or a dropped connection -> WATCH again from the last RV
 *     410 (status, or an ERROR event with code 410) -> LIST afresh
 *     404 -> the next version (Istio v1, then v1beta1), none -> absent, probed later
 *     401 -> token file re-read; other errors -> exponential backoff with jitter
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/util.h"
#include "k8s/k8s.h"

#define LIST_MAX (256u << 20) /* one list page's body */
#define LINE_MAX_BYTES (64u << 20)
#define MS 1000000ull

enum phase { PH_LIST, PH_WATCH };

struct refl {
	struct k8s_client *cl;
	const struct k8s_resource *r;
	unsigned idx;
	unsigned vi; /* index in r->versions */
	enum phase ph;
	CURL *h; /* non-NULL while a request runs */
	char rv[128];
	char *cont;  /* continue token of the list in progress */
	bool listed; /* a SYNC_BEGIN was sent for the list in progress */
	struct k8s_stream st;
	char *body;
	size_t blen, bcap;
	bool got_200, abort_410, abort_err, abort_bad;
	unsigned fails;
	uint64_t next_ns;
	struct curl_slist *hdrs;
	char url[2048];
	struct k8s_rstat stat;
};

struct k8s_client {
	struct k8s_conf *conf;
	struct k8s_opts o;
	CURLM *multi;
	struct refl *rf;
	unsigned n;
	k8s_event_fn fn;
	void *arg;
	bool reachable;
	bool delivered;
	uint64_t rnd;
	struct curl_waitfd wake[K8S_WAKE_FDS];
	unsigned nwake;
};

static uint32_t rnd32(struct k8s_client *c)
{
	c->rnd ^= c->rnd << 13;
	c->rnd ^= c->rnd >> 7;
	c->rnd ^= c->rnd << 17;
	return (uint32_t)(c->rnd >> 11);
}

uint64_t k8s_backoff_ns(const struct k8s_opts *o, unsigned n, uint32_t rnd)
{
	uint64_t d = o->backoff_min_ns;

	while (n-- && d < o->backoff_max_ns)
		d *= 2;
	if (d > o->backoff_max_ns)
		d = o->backoff_max_ns;
	/* +-25%: reflectors of many nodes do not retry in step */
	return d - d / 4 + (d / 2) * (uint64_t)rnd / UINT32_MAX;
}

int k8s_path(const struct k8s_resource *r, const char *version, char *buf, size_t len)
{
	int n = r->group[0] ? snprintf(buf, len, "/apis/%s/%s/%s", r->group, version, r->plural)
			    : snprintf(buf, len, "/api/%s/%s", version, r->plural);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int k8s_event_parse(const char *line, size_t len, char *type, size_t typelen, json_t **obj,
		    char *err, size_t errlen)
{
	json_error_t je;
	json_t *ev = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je), *t, *o;

	*obj = NULL;
	if (!ev)
		return errf(err, errlen, -EINVAL, "watch event %d:%d: %s", je.line, je.column,
			    je.text);
	t = json_object_get(ev, "type");
	o = json_object_get(ev, "object");
	if (!json_is_string(t) || !json_is_object(o)) {
		json_decref(ev);
		return errf(err, errlen, -EINVAL, "watch event without type and object");
	}
	snprintf(type, typelen, "%s", json_string_value(t));
	*obj = json_incref(o);
	json_decref(ev);
	return 0;
}

static const char *obj_rv(json_t *o)
{
	return json_string_value(
	    json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

static void deliver(struct refl *f, enum k8s_ev ev, json_t *o)
{
	if (o) {
		f->stat.events++;
		f->stat.last_event_ns = realtime_ns();
	}
	f->cl->delivered = true;
	f->cl->fn(f->cl->arg, f->idx, ev, o);
}

static void set_err(struct refl *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct refl *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->stat.last_error, sizeof(f->stat.last_error), fmt, ap);
	va_end(ap);
	f->stat.errors++;
	if (f->cl->o.verbose)
		fprintf(stderr, "sync: %s: %s\n", f->r->name, f->stat.last_error);
}

/* One line of a watch body. Nonzero aborts the transfer. */
static int on_line(void *arg, const char *line, size_t len)
{
	struct refl *f = arg;
	char type[32], err[256];
	json_t *o;
	const char *rv;

	if (k8s_event_parse(line, len, type, sizeof(type), &o, err, sizeof(err))) {
		set_err(f, "%s", err);
		f->abort_bad = true;
		return 1;
	}
	if (!strcmp(type, "ERROR")) {
		json_int_t code = json_integer_value(json_object_get(o, "code"));
		const char *msg = json_string_value(json_object_get(o, "message"));

		if (code == 410)
			f->abort_410 = true;
		else
			f->abort_err = true;
		set_err(f, "watch ERROR %lld: %s", (long long)code, msg ? msg : "");
		json_decref(o);
		return 1;
	}
	rv = obj_rv(o);
	if (rv)
		snprintf(f->rv, sizeof(f->rv), "%s", rv);
	if (!strcmp(type, "ADDED"))
		deliver(f, K8S_EV_ADDED, o);
	else if (!strcmp(type, "MODIFIED"))
		deliver(f, K8S_EV_MODIFIED, o);
	else if (!strcmp(type, "DELETED"))
		deliver(f, K8S_EV_DELETED, o);
	/* BOOKMARK: only the resourceVersion matters, taken above */
	json_decref(o);
	return 0;
}

static size_t on_data(char *p, size_t sz, size_t nm, void *arg)
{
	struct refl *f = arg;
	size_t n = sz * nm;
	long code = 0;

	curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &code);
	if (f->ph == PH_WATCH && code == 200) {
		int r;

		f->got_200 = true;
		f->cl->reachable = true; /* a watch that streams: the API answers again */
		r = k8s_stream_feed(&f->st, p, n, on_line, f);
		if (r < 0) {
			set_err(f, "watch stream: %s", strerror(-r));
			f->abort_bad = true;
		}
		return r ? 0 : n;
	}
	if (f->blen + n > LIST_MAX)
		return 0;
	if (f->blen + n + 1 > f->bcap) {
		size_t cap = f->bcap ? f->bcap : 65536;
		char *b;

		while (cap < f->blen + n + 1)
			cap *= 2;
		b = realloc(f->body, cap);
		if (!b)
			return 0;
		f->body = b;
		f->bcap = cap;
	}
	memcpy(f->body + f->blen, p, n);
	f->blen += n;
	f->body[f->blen] = '\0';
	return n;
}

static int start(struct refl *f)
{
	struct k8s_client *c = f->cl;
	struct k8s_conf *k = c->conf;
	char path[512], auth[8300];
	const char *q = f->r->query;
	int n;

	if (k8s_path(f->r, f->r->versions[f->vi], path, sizeof(path)))
		return -ENAMETOOLONG;
	if (f->ph == PH_LIST) {
		char *esc = f->cont ? curl_easy_escape(NULL, f->cont, 0) : NULL;

		n = snprintf(f->url, sizeof(f->url), "%s%s?limit=500%s%s%s%s", k->server, path,
			     esc ? "&continue=" : "", esc ? esc : "", q ? "&" : "", q ? q : "");
		curl_free(esc);
		f->stat.state = K8S_R_LISTING;
	} else {
		n = snprintf(f->url, sizeof(f->url),
			     "%s%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true&"
			     "timeoutSeconds=%u%s%s",
			     k->server, path, f->rv, c->o.watch_timeout_s, q ? "&" : "",
			     q ? q : "");
		f->stat.state = K8S_R_WATCHING;
	}
	if (n < 0 || (size_t)n >= sizeof(f->url))
		return -ENAMETOOLONG;
	f->h = curl_easy_init();
	if (!f->h)
		return -ENOMEM;
	f->blen = 0;
	f->got_200 = f->abort_410 = f->abort_err = f->abort_bad = false;
	k8s_stream_reset(&f->st);
	curl_slist_free_all(f->hdrs);
	f->hdrs = NULL;
	snprintf(auth, sizeof(auth), "Accept: %s",
		 f->ph == PH_LIST && f->r->accept	   ? f->r->accept
		 : f->ph == PH_WATCH && f->r->accept_watch ? f->r->accept_watch
							   : "application/json");
	f->hdrs = curl_slist_append(f->hdrs, auth);
	if (k->token[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", k->token);
		f->hdrs = curl_slist_append(f->hdrs, auth);
	}
	curl_easy_setopt(f->h, CURLOPT_URL, f->url);
	curl_easy_setopt(f->h, CURLOPT_HTTPHEADER, f->hdrs);
	curl_easy_setopt(f->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(f->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(f->h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(f->h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(f->h, CURLOPT_USERAGENT, "ringmesh-sync/0.1");
	curl_easy_setopt(f->h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(f->h, CURLOPT_TIMEOUT,
			 f->ph == PH_LIST ? 120L : (long)c->o.watch_timeout_s + 30L);
	curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
	if (k->ca_file)
		curl_easy_setopt(f->h, CURLOPT_CAINFO, k->ca_file);
	if (k->ca_pem) {
		struct curl_blob b = {k->ca_pem, strlen(k->ca_pem), CURL_BLOB_COPY};

		curl_easy_setopt(f->h, CURLOPT_CAINFO_BLOB, &b);
	}
	if (k->cert_file)
		curl_easy_setopt(f->h, CURLOPT_SSLCERT, k->cert_file);
	if (k->key_file)
		curl_easy_setopt(f->h, CURLOPT_SSLKEY, k->key_file);
	if (k->cert_pem) {
		struct curl_blob b = {k->cert_pem, strlen(k->cert_pem), CURL_BLOB_COPY};

		curl_easy_setopt(f->h, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (k->key_pem) {
		struct curl_blob b = {k->key_pem, strlen(k->key_pem), CURL_BLOB_COPY};

		curl_easy_setopt(f->h, CURLOPT_SSLKEY_BLOB, &b);
	}
	if (k->insecure) {
		curl_easy_setopt(f->h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(f->h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->o.verbose)
		fprintf(stderr, "sync: GET %s\n", f->url);
	if (curl_multi_add_handle(c->multi, f->h) != CURLM_OK) {
		curl_easy_cleanup(f->h);
		f->h = NULL;
		return -EIO;
	}
	return 0;
}

static void backoff(struct refl *f, uint64_t now)
{
	f->next_ns = now + k8s_backoff_ns(&f->cl->o, f->fails++, rnd32(f->cl));
	f->stat.state = K8S_R_BACKOFF;
}

static void relist(struct refl *f, uint64_t now, uint64_t delay)
{
	f->ph = PH_LIST;
	free(f->cont);
	f->cont = NULL;
	f->listed = false;
	f->next_ns = now + delay;
	f->stat.state = delay ? K8S_R_BACKOFF : K8S_R_IDLE;
}

static const char *status_msg(struct refl *f)
{
	static char msg[200];
	json_t *j = f->blen ? json_loadb(f->body, f->blen, 0, NULL) : NULL;
	const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;

	snprintf(msg, sizeof(msg), "%s", m ? m : "");
	json_decref(j);
	return msg;
}

/* A completed page of a list. */
static int list_page(struct refl *f, uint64_t now)
{
	json_error_t je;
	json_t *j = json_loadb(f->body, f->blen, JSON_REJECT_DUPLICATES, &je), *items, *md, *it;
	const char *rv, *cont;
	size_t i;

	if (!j) {
		set_err(f, "list %d:%d: %s", je.line, je.column, je.text);
		return -EINVAL;
	}
	items = json_object_get(j, "items");
	md = json_object_get(j, "metadata");
	rv = json_string_value(json_object_get(md, "resourceVersion"));
	cont = json_string_value(json_object_get(md, "continue"));
	if (!json_is_array(items) || !rv) {
		set_err(f, "list without items or metadata.resourceVersion");
		json_decref(j);
		return -EINVAL;
	}
	if (!f->listed) {
		deliver(f, K8S_EV_SYNC_BEGIN, NULL);
		f->listed = true;
	}
	json_array_foreach(items, i, it) deliver(f, K8S_EV_ADDED, it);
	free(f->cont);
	f->cont = cont && *cont ? strdup(cont) : NULL;
	if (!f->cont) {
		snprintf(f->rv, sizeof(f->rv), "%s", rv);
		deliver(f, K8S_EV_SYNC_END, NULL);
		f->listed = false;
		f->ph = PH_WATCH;
		f->stat.lists++;
	}
	f->next_ns = now;
	json_decref(j);
	return 0;
}

static void done(struct refl *f, CURLcode res, uint64_t now)
{
	struct k8s_client *c = f->cl;
	long code = 0;
	char err[256];

	curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(c->multi, f->h);
	curl_easy_cleanup(f->h);
	f->h = NULL;
	f->stat.state = K8S_R_IDLE;
	if (f->abort_410) {
		f->stat.relists_410++;
		relist(f, now, 0);
		return;
	}
	if (f->abort_err || f->abort_bad) {
		relist(f, now, 0);
		backoff(f, now);
		return;
	}
	if (res != CURLE_OK && !(f->ph == PH_WATCH && f->got_200)) {
		c->reachable = false;
		set_err(f, "%s: %s", f->ph == PH_LIST ? "list" : "watch", curl_easy_strerror(res));
		backoff(f, now);
		return;
	}
	c->reachable = code != 401 && code != 403;
	f->stat.version = f->r->versions[f->vi];
	switch (code) {
	case 200:
		f->fails = 0;
		if (f->ph == PH_LIST) {
			if (list_page(f, now)) {
				relist(f, now, 0);
				backoff(f, now);
			}
			return;
		}
		/* the watch ended (server timeout or dropped mid-stream): resume from rv */
		if (res != CURLE_OK)
			set_err(f, "watch dropped: %s", curl_easy_strerror(res));
		f->next_ns = now;
		return;
	case 410:
		f->stat.relists_410++;
		set_err(f, "410 Gone: %s", status_msg(f));
		relist(f, now, 0);
		return;
	case 401:
		set_err(f, "401 Unauthorized: re-reading the token");
		if (k8s_conf_reload_token(c->conf, now, err, sizeof(err)) < 0)
			set_err(f, "%s", err);
		relist(f, now, 0);
		backoff(f, now);
		return;
	case 404:
		if (f->vi + 1 < 3 && f->r->versions[f->vi + 1]) {
			f->vi++;
			relist(f, now, 0);
			return;
		}
		f->vi = 0;
		f->stat.version = NULL;
		snprintf(f->stat.last_error, sizeof(f->stat.last_error),
			 "404: not served (group not installed); probed again later");
		relist(f, now, c->o.probe_ns);
		f->stat.state = K8S_R_ABSENT;
		return;
	default:
		set_err(f, "HTTP %ld: %s", code, status_msg(f));
		relist(f, now, 0);
		backoff(f, now);
	}
}

struct k8s_client *k8s_client_new(struct k8s_conf *conf, const struct k8s_opts *opts,
				  const struct k8s_resource *res, unsigned nres, k8s_event_fn fn,
				  void *arg, char *err, size_t errlen)
{
	struct k8s_client *c = calloc(1, sizeof(*c));

	if (!c || curl_global_init(CURL_GLOBAL_DEFAULT)) {
		free(c);
		errf(err, errlen, -ENOMEM, "curl init failed");
		return NULL;
	}
	c->conf = conf;
	c->o = *opts;
	if (!c->o.watch_timeout_s)
		c->o.watch_timeout_s = 300;
	if (!c->o.backoff_min_ns)
		c->o.backoff_min_ns = 200 * MS;
	if (!c->o.backoff_max_ns)
		c->o.backoff_max_ns = 30000 * MS;
	if (!c->o.probe_ns)
		c->o.probe_ns = 60000 * MS;
	if (!c->o.token_ns)
		c->o.token_ns = 60000 * MS;
	c->multi = curl_multi_init();
	c->rf = calloc(nres, sizeof(*c->rf));
	if (!c->multi || !c->rf) {
		k8s_client_free(c);
		errf(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	c->n = nres;
	c->fn = fn;
	c->arg = arg;
	c->rnd = mono_ns() | 1;
	c->reachable = false;
	for (unsigned i = 0; i < nres; i++) {
		c->rf[i].cl = c;
		c->rf[i].r = &res[i];
		c->rf[i].idx = i;
		k8s_stream_init(&c->rf[i].st, LINE_MAX_BYTES);
	}
	return c;
}

int k8s_client_step(struct k8s_client *c, int timeout_ms)
{
	uint64_t now = mono_ns(), until = now + (uint64_t)timeout_ms * MS;
	char err[256];

	c->delivered = false;
	if (now - c->conf->token_read_ns >= c->o.token_ns &&
	    k8s_conf_reload_token(c->conf, now, err, sizeof(err)) < 0)
		fprintf(stderr, "sync: %s\n", err);
	for (;;) {
		uint64_t next = until;
		int running, left, wait;
		CURLMsg *m;

		now = mono_ns();
		for (unsigned i = 0; i < c->n; i++) {
			struct refl *f = &c->rf[i];

			if (!f->h && f->next_ns <= now && start(f))
				backoff(f, now);
			if (!f->h && f->next_ns < next)
				next = f->next_ns;
		}
		curl_multi_perform(c->multi, &running);
		while ((m = curl_multi_info_read(c->multi, &left)))
			if (m->msg == CURLMSG_DONE) {
				struct refl *f;

				curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
				done(f, m->data.result, mono_ns());
			}
		now = mono_ns();
		if (c->delivered || now >= until)
			return 0;
		for (unsigned i = 0; i < c->n; i++)
			if (!c->rf[i].h && c->rf[i].next_ns < next)
				next = c->rf[i].next_ns;
		wait = next > now ? (int)((next - now + MS - 1) / MS) : 0;
		for (unsigned i = 0; i < c->nwake; i++)
			c->wake[i].revents = 0;
		if (wait > 0 &&
		    curl_multi_poll(c->multi, c->wake, c->nwake, wait, NULL) != CURLM_OK)
			return -EIO;
		for (unsigned i = 0; i < c->nwake; i++)
			if (c->wake[i].revents)
				return 0;
	}
}

int k8s_client_wake_fd(struct k8s_client *c, int fd)
{
	if (c->nwake >= K8S_WAKE_FDS)
		return -ENOSPC;
	c->wake[c->nwake].fd = fd;
	c->wake[c->nwake].events = CURL_WAIT_POLLIN;
	c->wake[c->nwake++].revents = 0;
	return 0;
}

const struct k8s_rstat *k8s_client_stat(const struct k8s_client *c, unsigned idx)
{
	return idx < c->n ? &c->rf[idx].stat : NULL;
}

bool k8s_client_reachable(const struct k8s_client *c)
{
	return c->reachable;
}

void k8s_client_free(struct k8s_client *c)
{
	if (!c)
		return;
	for (unsigned i = 0; c->rf && i < c->n; i++) {
		struct refl *f = &c->rf[i];

		if (f->h) {
			curl_multi_remove_handle(c->multi, f->h);
			curl_easy_cleanup(f->h);
		}
		curl_slist_free_all(f->hdrs);
		free(f->cont);
		free(f->body);
		k8s_stream_free(&f->st);
	}
	free(c->rf);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c);
	curl_global_cleanup();
}
