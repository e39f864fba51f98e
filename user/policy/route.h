/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * route: the L7 router of ringmeshd. Owns the immutable runtime routing table built
 * from one snapshot of a compiled configuration half (include/ringmesh/cfg.h): the
 * (VIP, port) -> service index, the compiled PCRE2 regexes, and the per-request
 * decision: which rule matches, which weighted target, fault, redirect, rewrite,
 * header operations, timeout and retries.
 *
 * Pure: no I/O, randomness injected (one 64-bit value per decision). A table is
 * never modified after route_build(), so any number of worker threads may share it;
 * a new configuration means a new table (the old one is freed once no request uses
 * it, which is the caller's business).
 *
 * Regexes are matched against the whole value (RE2 semantics of Istio's `regex`)
 * with a match limit, a depth limit and a heap limit, so a hostile header cannot
 * burn CPU: a match that hits a limit counts as "no match".
 */
#ifndef RM_ROUTE_H
#define RM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmesh/cfg.h"

/* PCRE2 resource limits per regex evaluation. */
#define ROUTE_RE_MATCH_LIMIT 100000u  /* backtracking steps */
#define ROUTE_RE_DEPTH_LIMIT 10000u   /* nested backtracking frames (interpreter only) */
#define ROUTE_RE_HEAP_LIMIT_KIB 4096u /* heap for backtracking frames */

#define ROUTE_RULE_NONE (-1) /* decision.rule when the service has no rules */

/* A byte range owned by the caller (or by the table); not NUL-terminated. */
struct route_slice {
	const char *p;
	size_t len;
};

/* One header as received; the name is compared case-insensitively. */
struct route_hdr {
	struct route_slice name;
	struct route_slice value;
};

struct route_label {
	struct route_slice key;
	struct route_slice val;
};

/*
 * Value of the idx-th (0-based) field line named lname (lower-case, NUL-terminated)
 * in *out: 0, or -ENOENT when there are fewer than idx + 1 such lines.
 */
typedef int (*route_hdr_get_fn)(const void *ctx, const char *lname, size_t idx,
				struct route_slice *out);

/* A route_hdr_get_fn over an array of struct route_hdr (ctx = struct route_hdrs *). */
struct route_hdrs {
	const struct route_hdr *v;
	size_t n;
};
int route_hdrs_get(const void *ctx, const char *lname, size_t idx, struct route_slice *out);

struct route_req {
	struct route_slice method;    /* "GET" */
	struct route_slice path;      /* without the query: "/a/b" */
	struct route_slice query;     /* after '?', without it */
	bool has_query;		      /* a '?' was present */
	struct route_slice authority; /* Host / absolute-form authority, as received */
	struct route_slice scheme;    /* "http" */
	route_hdr_get_fn hdr_get;     /* NULL: the request has no headers */
	const void *hdr_ctx;
	/* the calling workload; n_src_labels may be 0 */
	const struct route_label *src_labels;
	size_t n_src_labels;
	struct route_slice src_service;	  /* caller's service host or name, may be empty */
	struct route_slice src_namespace; /* caller's namespace, empty when unknown */
};

enum route_outcome {
	ROUTE_FORWARD = 1, /* send upstream to target_service/target_subset */
	ROUTE_REDIRECT,	   /* answer redirect_code with a Location (route_redirect_location) */
	ROUTE_ABORT,	   /* fault injection: answer abort_status, "fault filter abort" (FI) */
	ROUTE_NO_ROUTE,	   /* rules exist, none matches: 404, empty body (NR) */
};

/* A header operation of the matched rule; strings are NUL-terminated, table-owned. */
struct route_hdrop {
	uint8_t kind;	  /* enum rm_cfg_hdrop_kind */
	uint8_t response; /* 0 = request headers, 1 = response headers */
	const char *name;
	const char *value; /* "" for remove */
};

struct route_decision {
	enum route_outcome outcome;
	int rule;	       /* index in the table's rules (== cfg rules), or ROUTE_RULE_NONE */
	int match;	       /* index of the OR alternative that matched, -1 when none/implicit */
	const char *rule_name; /* "namespace/name" of the rule, "" when none */
	/* FORWARD */
	uint32_t target_service;   /* service index (a rule may route to another service) */
	uint32_t target_subset;	   /* subset index, or RM_CFG_NONE = every endpoint */
	__be16 target_port;	   /* 0 = the port the client used */
	uint64_t timeout_ns;	   /* 0 = none; covers retries */
	uint32_t retry_attempts;   /* 0 = none */
	uint32_t retry_on;	   /* RM_RETRY_* */
	uint64_t retry_per_try_ns; /* 0 = the route timeout */
	/* fault, decided independently; a delay applies before an abort or forward */
	uint64_t delay_ns;     /* 0 = no delay for this request */
	uint16_t abort_status; /* set when outcome == ROUTE_ABORT */
	/* REDIRECT */
	uint16_t redirect_code;
	const char *redirect_uri;	/* "" = keep the path */
	const char *redirect_authority; /* "" = keep the authority */
	/* rewrite before forwarding (NULL when none) */
	const char *rewrite_uri; /* replaces path[0..rewrite_strip) */
	size_t rewrite_strip;
	const char *rewrite_authority; /* NULL or "" when none */
	/* mirror: a copy goes to mirror_service/mirror_subset when mirror is true */
	bool mirror;
	uint32_t mirror_service;
	uint32_t mirror_subset;
	/* header operations of the rule, in order */
	const struct route_hdrop *hdrops;
	size_t n_hdrops;
	uint32_t rule_flags; /* RM_RF_* (websocket, cors, ...) */
};

struct route_table;

/* A rule's corsPolicy as Envoy gets it from Istio (lists joined with ","; "" = not set). */
struct route_cors_policy {
	const char *methods, *headers, *expose;
	uint32_t max_age_s; /* 0 = not set */
	bool credentials;
};

enum route_cors_verdict {
	ROUTE_CORS_NONE = 0, /* the rule has no corsPolicy, or the request no Origin */
	ROUTE_CORS_DENIED,   /* a CORS request from an origin the policy does not allow */
	ROUTE_CORS_ALLOWED,
};

/* Endpoint as the proxy needs it. */
struct route_endpoint {
	struct rm_addr addr;
	uint16_t family; /* AF_INET or AF_INET6 */
	uint32_t service;
	uint32_t weight;  /* >= 1 */
	const char *name; /* WorkloadEntry name or "" */
};

/*
 * Build a table from one consistent snapshot (cfg is not referenced afterwards).
 * Every index and string offset is validated; bad input -> -EINVAL with a message
 * in err ("rule 3 (ns/name): ..."). -ENOMEM on allocation failure.
 */
int route_build(const struct rm_cfg *cfg, struct route_table **out, char *err, size_t errlen);
void route_free(struct route_table *t);

/* Configuration generation the table was built from. */
uint64_t route_generation(const struct route_table *t);

/* Service whose VIP and port are dst:port (port in network order): index or -ENOENT. */
int route_find_service(const struct route_table *t, const struct rm_addr *dst, __be16 port);

/*
 * Decide for one request to service svc. rnd is a uniformly random 64-bit value;
 * the weighted choice, the delay fault, the abort fault and the mirror draw each use
 * an independent derivation of it. Returns 0 (outcome in *out) or -EINVAL for a bad
 * service index.
 */
int route_decide(const struct route_table *t, uint32_t svc, const struct route_req *req,
		 uint64_t rnd, struct route_decision *out);

/* The corsPolicy of the decided rule (route_decision.rule), NULL when it has none. */
const struct route_cors_policy *route_cors_policy(const struct route_table *t, int rule);

/*
 * CORS on a request the rule matched (Envoy's filter): NONE without a policy or an
 * Origin; else the Origin in *origin (the request's bytes), whether the request is a
 * preflight (OPTIONS with an Access-Control-Request-Method) in *preflight, and
 * whether an allowed-origin matcher matches it (or the literal "*").
 */
enum route_cors_verdict route_cors_check(const struct route_table *t, int rule,
					 const struct route_req *req, struct route_slice *origin,
					 bool *preflight);

/*
 * The path to send upstream after a rewrite (query kept): writes a NUL-terminated
 * string into buf and returns its length, or -ENOSPC. Without a rewrite it is the
 * request's own path?query.
 */
int route_rewrite_path(const struct route_decision *d, const struct route_req *req, char *buf,
		       size_t len);

/* Location header value of a REDIRECT: scheme://authority/path[?query]. Returns the
 * length or -ENOSPC. */
int route_redirect_location(const struct route_decision *d, const struct route_req *req, char *buf,
			    size_t len);

/* --- read access for the proxy, the balancer and stats --- */
uint32_t route_n_services(const struct route_table *t);
uint32_t route_n_subsets(const struct route_table *t);
const char *route_service_host(const struct route_table *t, uint32_t svc); /* NULL if bad */
/* Protocol (enum rm_cfg_proto) and index in the service's ports of svc:port, or -ENOENT. */
int route_service_port(const struct route_table *t, uint32_t svc, __be16 port, uint8_t *proto);

/*
 * Balancer pools: one per subset and one per service (RM_CFG_NONE = all endpoints).
 * route_pool() gives the flat index (0..route_n_pools()-1) the caller uses for its
 * per-pool state (lb_state, breakers), the pool's members (endpoint indices) and its
 * load-balancing policy (enum rm_cfg_lb). -EINVAL for bad indices. RM_CFG_NONE of a
 * service with a DestinationRule's top-level trafficPolicy is that policy's subset
 * (every endpoint; *pool < route_n_subsets()), so whole-service traffic follows it;
 * a service without one gets its own pool (*pool >= route_n_subsets(): defaults).
 */
uint32_t route_n_pools(const struct route_table *t);
int route_pool(const struct route_table *t, uint32_t svc, uint32_t subset, uint32_t *pool,
	       const uint32_t **members, size_t *n_members, uint32_t *lb);
/* Breaker settings of a subset (NULL for RM_CFG_NONE or a bad index). */
const struct rm_cfg_breaker *route_subset_breaker(const struct route_table *t, uint32_t subset);
/* Name of a subset ("" for RM_CFG_NONE or a bad index): the breaker keys pools by it. */
const char *route_subset_name(const struct route_table *t, uint32_t subset);

int route_endpoint(const struct route_table *t, uint32_t ep, struct route_endpoint *out);
/* Port to connect to on endpoint ep for service port svc_port (network order): the
 * endpoint's mapping for that port, else the same number. 0 when ep/port are bad. */
__be16 route_endpoint_port(const struct route_table *t, uint32_t ep, __be16 svc_port);

/* Free the calling thread's PCRE2 match data (call before a worker thread exits). */
void route_thread_exit(void);

#endif /* RM_ROUTE_H */
