/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cfg internals: the parsed form of one document (shared by the YAML front ends
 * and the compiler) and the YAML node helpers. Not part of the cfg API.
 * Everything a document's IR points to lives in the document's arena.
 */
#ifndef RM_CFG_IR_H
#define RM_CFG_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "common/cfg.h"

/* --- arena --- */
struct cfg_arena {
	struct cfg_arena_blk *head;
};
void *cfg_arena_alloc(struct cfg_arena *a, size_t size); /* zeroed, NULL on ENOMEM */
char *cfg_arena_strdup(struct cfg_arena *a, const char *s);
void cfg_arena_free(struct cfg_arena *a);

/* --- IR --- */
struct cfg_pos {
	unsigned line, col; /* 1-based, in the origin file */
};

struct cfg_kv {
	const char *k, *v;
};

struct cfg_lset { /* sorted by key */
	struct cfg_kv *v;
	unsigned n;
};

struct cfg_cond_ir {
	uint8_t field, op; /* enum rm_cfg_field, rm_cfg_op */
	const char *name, *value;
};

struct cfg_match_ir {
	struct cfg_cond_ir *c;
	unsigned n;
	struct cfg_lset src;
	const char *src_name;
	const char *src_ns; /* sourceNamespace, or NULL */
};

struct cfg_dest_ir {
	const char *host;	/* FQDN */
	const char *subset;	/* modern: subset name, or NULL */
	struct cfg_lset labels; /* old: route labels */
	uint16_t port;		/* host order, 0 = any */
	uint32_t weight;
	struct cfg_pos pos;
};

struct cfg_hop_ir {
	uint8_t kind, resp;
	const char *name, *value;
};

struct cfg_http_ir { /* one rule */
	struct cfg_pos pos;
	int32_t precedence;
	unsigned http_index;
	uint32_t flags; /* RM_RF_* */
	struct cfg_match_ir *m;
	unsigned nm;
	struct cfg_dest_ir *r;
	unsigned nr;
	uint64_t timeout_ns;
	uint32_t retry_attempts, retry_on;
	uint64_t retry_per_try_ns;
	uint64_t delay_ns;
	uint32_t delay_ppm, abort_ppm;
	uint16_t abort_status, redirect_code;
	const char *redirect_uri, *redirect_auth, *rewrite_uri, *rewrite_auth;
	struct cfg_dest_ir mirror; /* host NULL when absent */
	uint32_t mirror_ppm;
	const char *cors_origins, *cors_methods, *cors_headers, *cors_expose;
	uint32_t cors_max_age_s, cors_credentials;
	struct cfg_cond_ir *cors_orig; /* allowed origins (header "origin" conditions) */
	unsigned n_cors_orig;
	struct cfg_hop_ir *h;
	unsigned nh;
};

struct cfg_policy_ir { /* traffic policy: load balancer + breaker */
	bool set;
	bool has_lb, has_pool, has_outlier;
	uint32_t lb;
	struct rm_cfg_breaker cb;
};

struct cfg_subset_ir {
	const char *name; /* NULL for DestinationPolicy (named by labels) */
	struct cfg_lset labels;
	struct cfg_policy_ir pol;
	struct cfg_pos pos;
};

struct cfg_port_ir {
	uint16_t number;
	uint8_t proto;
	const char *name;
};

struct cfg_ep_ir {
	struct rm_addr addr;
	uint16_t family;
	struct cfg_kv *ports; /* port name -> number as text */
	uint16_t *port_nums;
	unsigned nports;
	struct cfg_lset labels;
	uint32_t weight;
	const char *name; /* WorkloadEntry name */
	const char *ns;
	struct cfg_pos pos;
};

struct cfg_doc_ir {
	enum cfg_kind kind;
	struct cfg_arena arena;
	const char *file;
	struct cfg_pos pos; /* the document's root */
	const char *ns, *name;
	/* RouteRule / VirtualService: rules for every host */
	const char **hosts;
	unsigned nhosts;
	struct cfg_http_ir *http;
	unsigned nhttp;
	/* DestinationPolicy / DestinationRule */
	const char *host;
	struct cfg_policy_ir top;
	struct cfg_subset_ir *subsets;
	unsigned nsubsets;
	/* ServiceEntry */
	struct rm_addr *addrs;
	unsigned naddrs;
	struct cfg_port_ir *ports;
	unsigned nports;
	struct cfg_ep_ir *eps;
	unsigned neps;
	struct cfg_lset selector;
	bool has_selector;
	/* WorkloadEntry */
	struct cfg_ep_ir we;
	/* a document ringmesh does not consume (kind 0): its kind, and whether it
	 * belongs to an Istio API group */
	const char *skip_kind, *skip_note;
	bool skip_istio;
};

/* --- YAML walking --- */
struct cfg_ctx {
	yaml_document_t *doc;
	struct cfg_arena *arena;
	const char *file;
	unsigned line_base; /* added to libyaml's 0-based line */
	char *err;
	size_t errlen;
	const char *ns; /* document namespace, for name resolution */
};

struct cfg_field { /* allowed key of a mapping */
	const char *key;
	yaml_node_t **out; /* set to the value node, or left NULL */
};

struct cfg_pos cfg_node_pos(const struct cfg_ctx *c, const yaml_node_t *n);
/* A plain `~`, `null` or empty scalar is YAML's null. */
bool cfg_is_null(const yaml_node_t *n);
int cfg_errf(const struct cfg_ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Map n's keys onto fields (NULL-terminated list); unknown key -> error at it;
 * n must be a mapping (what names it in errors). Duplicate keys are errors. */
int cfg_fields(const struct cfg_ctx *c, yaml_node_t *n, const char *what,
	       const struct cfg_field *fields);
int cfg_need(const struct cfg_ctx *c, yaml_node_t *parent, yaml_node_t *v, const char *key);
int cfg_str_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, const char **out);
int cfg_int_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, int64_t min, int64_t max,
	       int64_t *out);
/* Optional integer fields read into uint32_t; n points at the node variable that
 * cfg_fields() fills, so a table can be built before the fields are read. */
struct cfg_u32_field {
	yaml_node_t *const *n;
	const char *what;
	int64_t min, max;
	uint32_t *out;
};
int cfg_u32_fields(const struct cfg_ctx *c, const struct cfg_u32_field *f, size_t count);
int cfg_bool_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, bool *out);
int cfg_dur_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, uint64_t *ns);
/* percent 0..100 (fractional allowed) -> parts per million */
int cfg_pct_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, uint32_t *ppm);
int cfg_labels_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, struct cfg_lset *out);
int cfg_seq_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, yaml_node_item_t **b,
	       unsigned *count);
/* "a,b,c" from a sequence of scalars */
int cfg_strlist_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, const char **out);
int cfg_header_name(const struct cfg_ctx *c, yaml_node_t *n, const char *name);
int cfg_regex_check(const struct cfg_ctx *c, yaml_node_t *n, const char *re);
int cfg_addr_of(const struct cfg_ctx *c, yaml_node_t *n, struct rm_addr *a, uint16_t *family,
		bool allow_cidr);
/* Istio name resolution: short name -> name.ns.svc.<domain>; dots: as given. A NULL
 * or empty domain is the process's cluster domain (cfg_set_domain in common/cfg.h). */
const char *cfg_fqdn(const struct cfg_ctx *c, const char *name, const char *ns, const char *domain);
yaml_node_t *cfg_item(const struct cfg_ctx *c, yaml_node_item_t it);

/* cfg_istio.c: readers both front ends share. */
/* "WHAT is not supported by ringmesh" at n; -EINVAL */
int cfg_unsupported(const struct cfg_ctx *c, yaml_node_t *n, const char *what);
/* {value: 0..100} (modern Percent) -> parts per million */
int cfg_percentage_of(const struct cfg_ctx *c, yaml_node_t *n, uint32_t *ppm);
/* StringMatch {exact|prefix|regex} */
int cfg_strmatch_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, uint8_t *op,
		    const char **value);
int cfg_cors_of(struct cfg_ctx *c, yaml_node_t *n, struct cfg_http_ir *h, bool modern);
/* httpFault (old) or fault (modern, which adds percentage): delay and abort */
int cfg_fault_of(struct cfg_ctx *c, yaml_node_t *n, bool modern, struct cfg_http_ir *h);

/* Pure parse of scalar forms (exported for tests). */
int cfg_parse_duration(const char *s, uint64_t *ns);

/* --- cfg_kinds.c: which documents are read --- */
struct cfg_kind_info {
	const char *kind;
	enum cfg_kind k;
	const char *versions[4]; /* apiVersions serving it, the preferred first */
	int (*parse)(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir);
};
/* From root's apiVersion and kind: 0 with *info for a kind ringmesh consumes; 1
 * for one it skips (ir->skip_kind, skip_istio, skip_note set); -EINVAL with the error
 * (unknown kind of an Istio group, wrong apiVersion, refused kind). */
int cfg_doc_classify(struct cfg_ctx *c, yaml_node_t *root, const struct cfg_kind_info **info,
		     struct cfg_doc_ir *ir);

/* --- front ends: fill ir from the document root; metadata already read --- */
int cfg_parse_routerule(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir);
int cfg_parse_destpolicy(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir);
int cfg_parse_virtualservice(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir);
int cfg_parse_destrule(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir);
int cfg_parse_serviceentry(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir);
int cfg_parse_workloadentry(struct cfg_ctx *c, yaml_node_t *spec, struct cfg_doc_ir *ir);

/* Parse one document's text (line_base: its first line in file, 1-based). */
int cfg_doc_parse_text(const char *file, unsigned first_line, const char *text, size_t len,
		       struct cfg_doc_ir **out, char *err, size_t errlen);
void cfg_doc_ir_free(struct cfg_doc_ir *ir);
/* Build a cfg_doc from its IR and text slice (takes ir). */
int cfg_doc_make(struct cfg_doc *d, struct cfg_doc_ir *ir, const char *origin, unsigned first_line,
		 const char *text, size_t len);
void cfg_doc_clear(struct cfg_doc *d);
/* Line starts of a source as libyaml counts lines (CR LF, CR, LF, NEL, LS, PS):
 * start[k] is the byte offset of 0-based line k. */
struct cfg_lines {
	size_t *start;
	size_t n, len;
};
int cfg_lines_index(struct cfg_lines *li, const char *text, size_t len);
/* Offset of 0-based line (len when past the last line break). */
size_t cfg_lines_off(const struct cfg_lines *li, size_t line);
void cfg_lines_free(struct cfg_lines *li);
/* Documents of a cfg_docs by (kind, namespace, name), or by_text by their YAML
 * text: hash slots holding indices (SIZE_MAX = free). */
struct cfg_doc_index {
	size_t *slot;
	size_t cap, n;
	bool by_text;
};
int cfg_doc_index_build(struct cfg_doc_index *x, const struct cfg_docs *docs, bool by_text);
/* Index docs->v[i] too (after a push). */
int cfg_doc_index_add(struct cfg_doc_index *x, const struct cfg_docs *docs, size_t i);
/* Index of the document with k's key (or text), SIZE_MAX when none. */
size_t cfg_doc_index_find(const struct cfg_doc_index *x, const struct cfg_docs *docs,
			  const struct cfg_doc *k);
void cfg_doc_index_free(struct cfg_doc_index *x);

#endif /* RM_CFG_IR_H */
