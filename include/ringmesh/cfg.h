/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The compiled traffic configuration: what `ringmesh apply` writes and what
 * ringmeshd's L7 router reads. Shared by bpf/ (rm_cfg_ctl only), user/ and tools/,
 * so it includes nothing but <linux/types.h> and "abi.h".
 *
 * Sized by what is applied (ABI 2): no table has a build-time capacity.
 *
 *   rm_cfg_ctl      pinned, 1 entry struct rm_cfg_ctl: active half, generation,
 *                   per-half seq, and per half the id of the map holding it
 *   rm_cfg-H-ID     one pinned mmapable ARRAY per half H (0/1), created by the
 *                   writer (not the BPF object: no program reads it) with
 *                   RM_CFG_CHUNK-byte values, as many as the half needs; its
 *                   bytes are one struct rm_cfg_half: the compiled blob and the
 *                   applied source documents (YAML text) of that half, so a later
 *                   `apply` can merge with what is loaded and recompile everything.
 *
 * Writer (the CLI, serialised by flock(LOCK_EX) on the pin directory itself: bpffs
 * cannot hold a regular lock file):
 *   h = !ctl.active; when rm_cfg-h-<half_id[h]> is too small (or 4x too big), create
 *   rm_cfg-h-<new id> and pin it; seq[h]++ (odd); write it; half_id[h] = new id;
 *   seq[h]++ (even); ctl.generation++; ctl.active = h (release order); unpin the
 *   old map of h. A writer that dies before the flip leaves the live half alone;
 *   the next writer unpins rm_cfg-* maps ctl does not name.
 * Reader (ringmeshd): a = ctl.active (acquire); s = seq[a]; retry while odd; open
 *   and mmap rm_cfg-a-<half_id[a]> if it is not the map it holds; copy the blob;
 *   (acquire fence) retry if seq[a] != s. Readers only ever look at the active half
 *   and writers only at the inactive one, so a retry needs two flips during one
 *   copy; a map unpinned meanwhile stays valid while the reader holds it.
 *
 * The compiled blob: struct rm_cfg_blob, then its tables, each at an 8-aligned
 * offset from the blob's start with a count of entries (strtab: bytes). Every
 * variable-length thing lives in such a table and is referenced by {first, count}
 * index ranges; strings are offsets into strtab (offset 0 is the empty string).
 * RM_CFG_NONE marks an absent index. Durations are nanoseconds, percentages parts
 * per million (Istio's percentages are fractional), ports are network byte order
 * like everywhere else in the ABI.
 */
#ifndef RINGMESH_CFG_H
#define RINGMESH_CFG_H

#include <linux/types.h>

#include "ringmesh/abi.h"

/* Pinned map names. */
#define RM_MAP_CFG_CTL "rm_cfg_ctl"
#define RM_MAP_CFG "rm_cfg" /* prefix of the halves' pins: rm_cfg-H-ID */

#define RM_CFG_MAGIC 0x52434647u /* "RCFG" */
#define RM_CFG_ABI_VERSION 2u
#define RM_CFG_DOMAIN_LEN 64 /* rm_cfg_ctl.domain, NUL included */
#define RM_CFG_HALVES 2
#define RM_CFG_NONE 0xffffffffu	     /* absent index */
#define RM_CFG_UNLIMITED 0xffffffffu /* breaker limit without a limit */

#define RM_CFG_CHUNK 65536u /* value size of a half's map: its size is n chunks */
/* Entries of any one table: a guard against a runaway input, far above any mesh. */
#define RM_CFG_TABLE_LIMIT (1u << 24)
#define RM_CFG_SVC_ADDRS 4 /* VIPs per service */
#define RM_CFG_SVC_PORTS 8 /* ports per service */

/* rm_cfg_ctl[0] */
struct rm_cfg_ctl {
	__u32 magic;	   /* RM_CFG_MAGIC once initialised */
	__u32 abi_version; /* RM_CFG_ABI_VERSION */
	__u64 generation;  /* bumped by every flip; 0 = never written */
	__u32 active;	   /* half the readers use: 0 or 1 */
	__u32 pad;
	__u64 seq[RM_CFG_HALVES];     /* seqlock per half: odd while being written */
	__u64 updated_ns;	      /* CLOCK_REALTIME of the last flip */
	__u64 half_id[RM_CFG_HALVES]; /* half H lives in pin rm_cfg-H-<half_id[H]>; 0 = none */
	/* The cluster domain short names were resolved in ("name" in a rule of namespace ns
	 * -> name.ns.svc.<domain>), NUL-terminated; "" = cluster.local. Written under the
	 * writer lock (cfg_store), read by writers only: the daemon never parses. */
	char domain[RM_CFG_DOMAIN_LEN];
};

enum rm_cfg_api {
	RM_API_ROUTERULE = 1,	   /* config.istio.io RouteRule (precedence ordered) */
	RM_API_VIRTUALSERVICE = 2, /* networking.istio.io VirtualService (list order) */
	RM_API_DESTPOLICY = 3,	   /* config.istio.io DestinationPolicy */
	RM_API_DESTRULE = 4,	   /* networking.istio.io DestinationRule */
	RM_API_SERVICEENTRY = 5,
	RM_API_WORKLOADENTRY = 6,
	RM_API_IMPLICIT = 7, /* made up by the compiler (subset from route labels) */
};

enum rm_cfg_proto {
	RM_PROTO_HTTP = 1,
	RM_PROTO_TCP = 2,
	RM_PROTO_HTTP2 = 3,
	RM_PROTO_GRPC = 4,
	RM_PROTO_HTTPS = 5, /* TLS passthrough: forwarded at L4 */
	RM_PROTO_TLS = 6,   /* forwarded at L4 */
};

struct rm_cfg_label {
	__u32 key_off;
	__u32 val_off;
};

struct rm_cfg_port {
	__be16 port; /* service port */
	__u8 proto;  /* enum rm_cfg_proto */
	__u8 pad;
	__u32 name_off; /* port name, e.g. "http" */
};

struct rm_cfg_service {
	__u32 host_off; /* FQDN: trans-service.order-system-production.svc.cluster.local */
	__u32 name_off; /* short name (first label of host) */
	__u32 ns_off;	/* namespace (from the FQDN or the document) */
	__u32 flags;	/* RM_SF_* */
	__u32 n_addrs;
	__u32 n_ports;
	__u32 rule_first; /* rules of this service, contiguous, in evaluation order */
	__u32 rule_count;
	__u32 subset_first; /* subsets of this service, contiguous */
	__u32 subset_count;
	__u32 endpoint_first; /* endpoints of this service, contiguous */
	__u32 endpoint_count;
	struct rm_addr addrs[RM_CFG_SVC_ADDRS]; /* VIPs (any port listed in ports) */
	struct rm_cfg_port ports[RM_CFG_SVC_PORTS];
};

#define RM_SF_DECLARED (1u << 0) /* declared by a ServiceEntry (else only named by rules) */

enum rm_cfg_field {
	RM_MF_HEADER = 1, /* name_off = lower-case header name */
	RM_MF_URI = 2,	  /* path; exact ignores the query string */
	RM_MF_METHOD = 3,
	RM_MF_AUTHORITY = 4,
	RM_MF_SCHEME = 5,
};

enum rm_cfg_op {
	RM_OP_EXACT = 1,
	RM_OP_PREFIX = 2,
	RM_OP_REGEX = 3, /* whole-value match; the reader compiles value_off with PCRE2 */
};

struct rm_cfg_cond {
	__u8 field; /* enum rm_cfg_field */
	__u8 op;    /* enum rm_cfg_op */
	__u16 pad;
	__u32 name_off; /* header name (RM_MF_HEADER only) */
	__u32 value_off;
	__u32 pad2;
};

/* One OR alternative: every condition and every source condition must match; a
 * caller the node does not know (no rm_workload record) fails every source one. */
struct rm_cfg_match {
	__u32 cond_first;
	__u32 cond_count;
	__u32 src_label_first; /* labels the calling workload must carry */
	__u32 src_label_count;
	__u32 src_name_off; /* old API match.source.name (service of the caller), or 0 */
	__u32 src_ns_off;   /* sourceNamespace: the caller's namespace, or 0 */
};

struct rm_cfg_target {
	__u32 service; /* index in services */
	__u32 subset;  /* index in subsets, or RM_CFG_NONE = every endpoint of service */
	__u32 weight;  /* old API: percent; modern: relative; 0 = no traffic */
	__be16 port;   /* destination.port.number, 0 = the port the client used */
	__u16 pad;
};

enum rm_cfg_hdrop_kind {
	RM_HDR_SET = 1,
	RM_HDR_ADD = 2, /* appendHeaders / headers.*.add */
	RM_HDR_REMOVE = 3,
};

struct rm_cfg_hdrop {
	__u8 kind;     /* enum rm_cfg_hdrop_kind */
	__u8 response; /* 0 = request headers, 1 = response headers */
	__u16 pad;
	__u32 name_off;
	__u32 value_off; /* 0 for remove */
};

/* retry_on bits */
#define RM_RETRY_5XX (1u << 0)
#define RM_RETRY_GATEWAY_ERROR (1u << 1) /* 502, 503, 504 */
#define RM_RETRY_CONNECT_FAILURE (1u << 2)
#define RM_RETRY_RESET (1u << 3)
#define RM_RETRY_RETRIABLE_4XX (1u << 4) /* 409 */
#define RM_RETRY_REFUSED_STREAM (1u << 5)
#define RM_RETRY_RETRIABLE_CODES (1u << 6)
#define RM_RETRY_UNAVAILABLE (1u << 7) /* gRPC statuses: kept for fidelity */
#define RM_RETRY_CANCELLED (1u << 8)
#define RM_RETRY_DEADLINE_EXCEEDED (1u << 9)
#define RM_RETRY_RESOURCE_EXHAUSTED (1u << 10)
#define RM_RETRY_OLD_API_DEFAULT (RM_RETRY_5XX | RM_RETRY_CONNECT_FAILURE | RM_RETRY_RESET)

/* rule flags */
#define RM_RF_TIMEOUT_DEFAULT (1u << 0) /* timeout_ns is the old API's implicit 15s */
#define RM_RF_WEBSOCKET (1u << 1)	/* websocketUpgrade */
#define RM_RF_REWRITE (1u << 2)
#define RM_RF_REDIRECT (1u << 3)
#define RM_RF_MIRROR (1u << 4)
#define RM_RF_CORS (1u << 5)
#define RM_RF_DELAY (1u << 6)
#define RM_RF_ABORT (1u << 7)
#define RM_RF_RETRIES (1u << 8)

#define RM_CFG_OLD_DEFAULT_TIMEOUT_NS (15ull * 1000000000ull)

struct rm_cfg_rule {
	__u32 service;	   /* index in services */
	__u32 name_off;	   /* metadata.name */
	__u32 ns_off;	   /* metadata.namespace */
	__u32 origin_off;  /* "file:line" the rule came from, for humans */
	__s32 precedence;  /* old API; 0 for VirtualService */
	__u16 api;	   /* enum rm_cfg_api: RouteRule or VirtualService */
	__u16 http_index;  /* position in VirtualService.http[] */
	__u32 flags;	   /* RM_RF_* */
	__u32 match_first; /* match_count == 0: the rule matches every request */
	__u32 match_count;
	__u32 target_first; /* target_count == 0: every endpoint of the service */
	__u32 target_count;
	__u32 hdrop_first;
	__u32 hdrop_count;
	__u32 pad0;
	__u64 timeout_ns; /* 0 = none; covers retries */
	/* retries */
	__u32 retry_attempts;	/* 0 = no retries */
	__u32 retry_on;		/* RM_RETRY_* */
	__u64 retry_per_try_ns; /* 0 = the route timeout */
	/* fault injection, applied independently */
	__u64 delay_ns;
	__u32 delay_ppm; /* share of requests delayed, parts per million */
	__u32 abort_ppm;
	__u16 abort_status;
	/* redirect (answered by the proxy, no upstream) */
	__u16 redirect_code; /* 301/302/...; old API always 302 */
	__u32 redirect_uri_off;
	__u32 redirect_authority_off;
	/* rewrite before forwarding */
	__u32 rewrite_uri_off; /* replaces the matched prefix (or whole path) */
	__u32 rewrite_authority_off;
	/* mirror: fire-and-forget copy */
	__u32 mirror_service; /* RM_CFG_NONE when absent */
	__u32 mirror_subset;  /* RM_CFG_NONE = every endpoint */
	__u32 mirror_ppm;
	/* CORS policy; lists are comma-joined strings */
	__u32 cors_origins_off;
	__u32 cors_methods_off;
	__u32 cors_headers_off;
	__u32 cors_expose_off;
	__u32 cors_max_age_s;
	__u32 cors_credentials; /* 0 unset, 1 false, 2 true */
	/* CORS allowed origins: conditions (RM_MF_HEADER "origin", exact/prefix/regex) in
	 * conds[], outside every match group; an origin is allowed when one matches, and an
	 * exact "*" allows any (Envoy's allow_origin_string_match). cors_origins_off keeps
	 * the list as written, for humans. */
	__u32 cors_origin_first;
	__u32 cors_origin_count;
};

enum rm_cfg_lb {
	RM_LB_ROUND_ROBIN = 0, /* default */
	RM_LB_LEAST_CONN = 1,  /* two random choices, fewer active requests wins */
	RM_LB_RANDOM = 2,
	RM_LB_PASSTHROUGH = 3,
};

/* Breaker limits and outlier detection of one subset (TRAFFIC.md defaults). */
struct rm_cfg_breaker {
	__u32 max_connections; /* RM_CFG_UNLIMITED = no limit */
	__u32 max_pending;
	__u32 max_requests;
	__u32 max_requests_per_conn; /* 0 = unlimited, 1 = no keep-alive */
	__u32 max_retries;
	__u32 consecutive_errors;	  /* 5xx + connect failures + timeouts; 0 = off */
	__u32 consecutive_gateway_errors; /* 502/503/504 only; 0 = off */
	__u32 max_ejection_percent;
	__u64 base_ejection_ns; /* k-th ejection in a row lasts k x this (cap 300s) */
	__u64 interval_ns;	/* sweep period */
	__u32 outlier;		/* 1 = outlier detection configured */
	__u32 pad;
};

/* Old API (DestinationPolicy / no policy): Envoy's defaults. */
#define RM_CB_OLD_MAX_CONNECTIONS 1024u
#define RM_CB_OLD_MAX_PENDING 1024u
#define RM_CB_OLD_MAX_REQUESTS 1024u
#define RM_CB_OLD_MAX_RETRIES 3u
/* Both APIs. */
#define RM_CB_DEFAULT_CONSECUTIVE_ERRORS 5u
#define RM_CB_DEFAULT_BASE_EJECTION_NS (30ull * 1000000000ull)
#define RM_CB_DEFAULT_INTERVAL_NS (10ull * 1000000000ull)
#define RM_CB_DEFAULT_MAX_EJECTION_PERCENT 10u
#define RM_CB_MAX_EJECTION_NS (300ull * 1000000000ull)

struct rm_cfg_subset {
	__u32 service;	   /* index in services */
	__u32 name_off;	   /* DestinationRule subset name, or "k=v,k=v" (sorted) for route labels */
	__u32 label_first; /* label set: endpoints whose labels include all of these */
	__u32 label_count;
	__u32 member_first; /* endpoints of the subset, indices into endpoints */
	__u32 member_count;
	__u16 api;	       /* who declared it: RM_API_DESTRULE, RM_API_IMPLICIT */
	__u16 policy_api;      /* RM_API_DESTPOLICY/RM_API_DESTRULE, 0 = defaults */
	__u32 policy_name_off; /* "namespace/name" of the policy that applied, or 0 */
	__u32 lb;	       /* enum rm_cfg_lb */
	__u32 pad;
	struct rm_cfg_breaker cb;
};

struct rm_cfg_endpoint {
	struct rm_addr addr; /* IPv4 mapped */
	__u32 service;	     /* index in services */
	__u32 name_off;	     /* WorkloadEntry name, or 0 */
	__u32 label_first;
	__u32 label_count;
	__u32 weight; /* 0 = 1 */
	__u16 family; /* AF_INET or AF_INET6 */
	/* target port for each services[service].ports[i]; 0 = same number */
	__be16 ports[RM_CFG_SVC_PORTS];
	__u16 pad;
};

enum rm_cfg_table {
	RM_CFG_T_SERVICES,
	RM_CFG_T_RULES,
	RM_CFG_T_MATCHES,
	RM_CFG_T_CONDS,
	RM_CFG_T_TARGETS,
	RM_CFG_T_HDROPS,
	RM_CFG_T_SUBSETS,
	RM_CFG_T_ENDPOINTS,
	RM_CFG_T_MEMBERS, /* __u32 endpoint indices */
	RM_CFG_T_LABELS,
	RM_CFG_T_STRTAB, /* bytes; strtab[0] = '\0' */
	RM_CFG_T_MAX,
};

struct rm_cfg_tab {
	__u32 off;   /* bytes from the start of the blob, 8-aligned */
	__u32 count; /* entries (strtab: bytes) */
};

/* Header of a compiled blob; its tables follow. */
struct rm_cfg_blob {
	__u32 magic; /* RM_CFG_MAGIC */
	__u32 abi_version;
	__u64 generation; /* ctl.generation this half was published with */
	__u32 size;	  /* bytes of the whole blob, header included */
	__u32 n_docs;	  /* documents in the half's sources */
	__u64 reserved[2];
	struct rm_cfg_tab tab[RM_CFG_T_MAX];
};

/*
 * The applied documents of one half: records packed back to back in text,
 * each a struct rm_cfg_src_doc header followed by origin and YAML text (both
 * NUL-terminated), the record padded to 8 bytes. Kept as the user's own YAML so
 * that error positions on re-compilation still point into it.
 */
struct rm_cfg_src_doc {
	__u32 rec_len;	  /* whole record incl. this header and padding */
	__u32 origin_len; /* bytes of origin incl. NUL: "FILE" the document came from */
	__u32 text_len;	  /* bytes of YAML text incl. NUL */
	__u32 first_line; /* line of the document in FILE (1-based), for errors */
};

/* Header of the sources in a half; used bytes of records follow. */
struct rm_cfg_src_hdr {
	__u32 magic; /* RM_CFG_MAGIC */
	__u32 n_docs;
	__u32 used; /* bytes of records */
	__u32 pad;
	__u64 generation;
	__u64 reserved[4];
};

/* The bytes of a half's map: this header, the blob at cfg_off, the sources at src_off. */
struct rm_cfg_half {
	__u32 magic; /* RM_CFG_MAGIC */
	__u32 abi_version;
	__u64 generation;
	__u64 cfg_off, cfg_len; /* struct rm_cfg_blob and its tables */
	__u64 src_off, src_len; /* struct rm_cfg_src_hdr and its records */
	__u64 reserved[2];
};

#ifndef __bpf__
/*
 * A compiled configuration in a process (not a map layout): the blob's tables as
 * arrays. Built by cfg_compile (arrays of their own, grown as needed), or a view of
 * a blob copy (cfg_store_snapshot, cfg_view): the pointers point into blob. Readers
 * index services[0..n_services) etc. as before; cfg_free releases either kind.
 */
struct rm_cfg {
	__u32 magic; /* RM_CFG_MAGIC */
	__u32 abi_version;
	__u64 generation;
	__u32 n_services;
	__u32 n_rules;
	__u32 n_matches;
	__u32 n_conds;
	__u32 n_targets;
	__u32 n_hdrops;
	__u32 n_subsets;
	__u32 n_endpoints;
	__u32 n_members;
	__u32 n_labels;
	__u32 strtab_len; /* bytes used in strtab (strtab[0] = '\0') */
	__u32 n_docs;	  /* documents in the matching sources */
	struct rm_cfg_service *services;
	struct rm_cfg_rule *rules;
	struct rm_cfg_match *matches;
	struct rm_cfg_cond *conds;
	struct rm_cfg_target *targets;
	struct rm_cfg_hdrop *hdrops;
	struct rm_cfg_subset *subsets;
	struct rm_cfg_endpoint *endpoints;
	__u32 *members;
	struct rm_cfg_label *labels;
	char *strtab;
	__u32 cap[RM_CFG_T_MAX]; /* entries allocated per table (own arrays) */
	void *blob;		 /* a view: the copy the tables point into, else NULL */
};

/* The sources of a half in a process: the header's fields and the records. */
struct rm_cfg_src {
	__u32 magic; /* RM_CFG_MAGIC */
	__u32 n_docs;
	__u32 used; /* bytes of text in use */
	__u32 pad;
	__u64 generation;
	char *text; /* malloc'd, cap bytes */
	__u64 cap;
};
#endif

#ifndef __bpf__
_Static_assert(sizeof(struct rm_cfg_ctl) == 128, "rm_cfg_ctl layout (ABI 1 had 64 bytes)");
_Static_assert(sizeof(struct rm_cfg_blob) == 128, "rm_cfg_blob layout");
_Static_assert(sizeof(struct rm_cfg_half) == 64, "rm_cfg_half layout");
_Static_assert(sizeof(struct rm_cfg_src_hdr) == 56, "rm_cfg_src_hdr layout");
_Static_assert(sizeof(struct rm_cfg_label) == 8, "rm_cfg_label layout");
_Static_assert(sizeof(struct rm_cfg_port) == 8, "rm_cfg_port layout");
_Static_assert(sizeof(struct rm_cfg_service) == 48 + 16 * RM_CFG_SVC_ADDRS + 8 * RM_CFG_SVC_PORTS,
	       "rm_cfg_service layout");
_Static_assert(sizeof(struct rm_cfg_cond) == 16, "rm_cfg_cond layout");
_Static_assert(sizeof(struct rm_cfg_match) == 24, "rm_cfg_match layout");
_Static_assert(sizeof(struct rm_cfg_target) == 16, "rm_cfg_target layout");
_Static_assert(sizeof(struct rm_cfg_hdrop) == 12, "rm_cfg_hdrop layout");
_Static_assert(sizeof(struct rm_cfg_rule) == 160, "rm_cfg_rule layout");
_Static_assert(sizeof(struct rm_cfg_breaker) == 56, "rm_cfg_breaker layout");
_Static_assert(sizeof(struct rm_cfg_subset) == 96, "rm_cfg_subset layout");
_Static_assert(sizeof(struct rm_cfg_endpoint) == 38 + 2 * RM_CFG_SVC_PORTS + 2,
	       "rm_cfg_endpoint layout");
_Static_assert(sizeof(struct rm_cfg_src_doc) == 16, "rm_cfg_src_doc layout");
#endif

#endif /* RINGMESH_CFG_H */
