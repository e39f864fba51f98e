/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * k8s: a small Kubernetes API client for `ringmesh sync`, never linked into
 * ringmeshd (the data plane must not depend on the sync). Owns the connection
 * settings (in-cluster service account or a kubeconfig, k8s_conf.c), the watch
 * stream splitter (k8s_stream.c, pure) and the reflectors (k8s_watch.c): one per
 * resource, each a LIST with limit/continue then a WATCH from the list's
 * resourceVersion, re-watched when it ends, re-listed on 410, backed off with
 * jitter on other errors; all of them driven by one thread through curl multi, so
 * the object cache the caller keeps needs no lock.
 *
 * Objects reach the caller as jansson values (reference-counted: keep with
 * json_incref). Functions return 0 or -errno with a message in a caller's buffer.
 */
#ifndef RM_K8S_H
#define RM_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <string.h>

#include <jansson.h>

/* The CLI's streaming writer (common/json.h) also defines json_string and
 * json_null; in one program the linker binds every call of those names to the
 * writer. Our code calls jansson's other spelling, and never json_null. */
#undef json_string
#define json_string(s) json_stringn((s), strlen(s))
#define json_null() json_null_is_the_cli_writer_s

/* ---- connection (k8s_conf.c) ---- */
struct k8s_conf {
	char server[512];     /* https://host:port, no trailing slash */
	char *ca_file;	      /* certificate-authority file, or NULL */
	char *ca_pem;	      /* certificate-authority-data decoded, or NULL */
	char *cert_file;      /* client-certificate */
	char *key_file;	      /* client-key */
	char *cert_pem;	      /* client-certificate-data decoded */
	char *key_pem;	      /* client-key-data decoded */
	bool insecure;	      /* insecure-skip-tls-verify */
	char token[8192];     /* bearer token ("" = none) */
	char token_file[512]; /* re-read every minute and on 401 ("" = static token) */
	uint64_t token_read_ns;
};

#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* In-cluster: KUBERNETES_SERVICE_HOST/_PORT and the service account's files under
 * sa_dir (K8S_SA_DIR unless a test points elsewhere). */
int k8s_conf_incluster(struct k8s_conf *c, const char *sa_dir, char *err, size_t errlen);
/* A kubeconfig file: the current context's cluster and user. */
int k8s_conf_kubeconfig(struct k8s_conf *c, const char *path, char *err, size_t errlen);
/* Parse kubeconfig text (the pure part, unit-tested); base_dir resolves relative
 * file paths as kubectl does (relative to the kubeconfig's directory). */
int k8s_conf_parse(struct k8s_conf *c, const char *text, size_t len, const char *base_dir,
		   char *err, size_t errlen);
/* Re-read the token file (no-op without one). 1 when the token changed, 0, -errno. */
int k8s_conf_reload_token(struct k8s_conf *c, uint64_t now_ns, char *err, size_t errlen);
void k8s_conf_free(struct k8s_conf *c);

/* ---- watch stream splitter (k8s_stream.c, pure) ---- */
/* A watch body is JSON objects separated by '\n', cut anywhere by the transport.
 * Bytes are appended; each complete line is handed to the callback (without its
 * newline, blank lines skipped). A line longer than max is an error (-E2BIG). */
struct k8s_stream {
	char *buf;
	size_t len, cap, max;
};

typedef int (*k8s_line_fn)(void *arg, const char *line, size_t len);

void k8s_stream_init(struct k8s_stream *s, size_t max);
/* Feed bytes; calls fn per complete line; stops at and returns fn's first nonzero. */
int k8s_stream_feed(struct k8s_stream *s, const char *data, size_t len, k8s_line_fn fn, void *arg);
void k8s_stream_reset(struct k8s_stream *s); /* drop a partial line (new connection) */
void k8s_stream_free(struct k8s_stream *s);

/* ---- reflectors (k8s_watch.c) ---- */
enum k8s_ev {
	K8S_EV_ADDED = 1,
	K8S_EV_MODIFIED,
	K8S_EV_DELETED,
	K8S_EV_SYNC_BEGIN, /* a (re-)list starts: objects not re-announced before END are gone */
	K8S_EV_SYNC_END,
};

/* What the caller watches. */
struct k8s_resource {
	const char *name;	  /* for logs and status: "Service", "VirtualService" */
	const char *group;	  /* "" for the core group */
	const char *versions[3];  /* tried in order on 404 (Istio's v1, then v1beta1) */
	const char *plural;	  /* "services" */
	const char *query;	  /* extra query ("fieldSelector=..."), or NULL */
	const char *accept;	  /* Accept header of a LIST, or NULL for application/json */
	const char *accept_watch; /* of a WATCH (PartialObjectMetadata, not ...List) */
};

struct k8s_client;

/* Called for every object event (obj is borrowed: json_incref to keep) and for
 * SYNC_BEGIN/END (obj NULL). idx is the resource's index in the array. */
typedef void (*k8s_event_fn)(void *arg, unsigned idx, enum k8s_ev ev, json_t *obj);

/* Per-resource state, for status. */
enum k8s_rstate {
	K8S_R_IDLE = 0,
	K8S_R_LISTING,
	K8S_R_WATCHING,
	K8S_R_BACKOFF,
	K8S_R_ABSENT, /* 404 for every version: probed again later */
};

struct k8s_rstat {
	enum k8s_rstate state;
	const char *version;  /* the one served, once found */
	uint64_t events;      /* object events seen */
	uint64_t lists;	      /* completed lists */
	uint64_t relists_410; /* lists caused by 410 Gone */
	uint64_t errors;
	uint64_t last_event_ns; /* realtime */
	char last_error[256];
};

struct k8s_opts {
	unsigned watch_timeout_s; /* timeoutSeconds of each watch (default 300) */
	uint64_t backoff_min_ns;  /* first retry delay (default 200 ms) */
	uint64_t backoff_max_ns;  /* cap (default 30 s) */
	uint64_t probe_ns;	  /* re-probe of an absent group (default 60 s) */
	uint64_t token_ns;	  /* token file re-read period (default 60 s) */
	bool verbose;		  /* log every request to stderr */
};

struct k8s_client *k8s_client_new(struct k8s_conf *conf, const struct k8s_opts *opts,
				  const struct k8s_resource *res, unsigned nres, k8s_event_fn fn,
				  void *arg, char *err, size_t errlen);
/* Run transfers and timers for at most timeout_ms; returns after any event was
 * delivered, a wake descriptor became readable, or the time is up. 0 or -errno. */
int k8s_client_step(struct k8s_client *c, int timeout_ms);
/* Also wait for POLLIN on fd in k8s_client_step (the caller's inotify descriptor
 * or signalfd), up to K8S_WAKE_FDS of them. 0 or -ENOSPC. */
#define K8S_WAKE_FDS 4
int k8s_client_wake_fd(struct k8s_client *c, int fd);
const struct k8s_rstat *k8s_client_stat(const struct k8s_client *c, unsigned idx);
/* The API answered the last request (any HTTP status but a transport failure, 401, 403). */
bool k8s_client_reachable(const struct k8s_client *c);
void k8s_client_free(struct k8s_client *c);

/* Pure helpers (unit-tested). */
/* The event of one watch line: type and object (new reference); -EINVAL with err. */
int k8s_event_parse(const char *line, size_t len, char *type, size_t typelen, json_t **obj,
		    char *err, size_t errlen);
/* Delay before retry n (0-based) with +-25% jitter from rnd (0..UINT32_MAX). */
uint64_t k8s_backoff_ns(const struct k8s_opts *o, unsigned n, uint32_t rnd);
/* "/apis/GROUP/VERSION/PLURAL" or "/api/v1/PLURAL". */
int k8s_path(const struct k8s_resource *r, const char *version, char *buf, size_t len);

/* ---- Kubernetes objects to Istio documents (k8s_mesh.c, pure) ---- */
/* The protocol Istio gives a Service port: appProtocol, else the port name's
 * prefix (http, http-*, http2, grpc*, https, tls, tcp...), else TCP; NULL for a
 * port Istio does not proxy (UDP, SCTP). */
const char *k8s_port_protocol(const char *name, const char *app_protocol, const char *l4);
/* Only what the sync needs of an object of kind (resource name), as a new
 * reference; for Istio kinds apiVersion/kind are set from the served group and
 * version, since list items may omit them. NULL when out of memory. */
json_t *k8s_strip(const char *kind, const char *api_version, json_t *obj);

/* Pod labels by namespace/name, for the endpoints of a Service. */
typedef json_t *(*k8s_pod_fn)(void *arg, const char *ns, const char *name);

/* The ServiceEntry (as a JSON document) that declares a Kubernetes Service: host
 * NAME.NS.svc.DOMAIN, its cluster IPs, its ports with Istio's protocol, and the
 * ready addresses of its EndpointSlices (slices: array of stripped slices of
 * that namespace, any service) with the labels of their pods. NULL with a
 * reason in why when the Service is not one ringmesh routes (headless,
 * ExternalName, no TCP port). */
json_t *k8s_service_entry(json_t *svc, json_t *slices, k8s_pod_fn pods, void *arg,
			  const char *domain, char *why, size_t whylen);

#endif /* RM_K8S_H */
