/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cfg: the rules compiler. Owns the Istio YAML front end (both API generations),
 * the in-memory set of applied documents, the compiler from that set to one half
 * of the pinned configuration (include/ringmesh/cfg.h), the pinned store itself
 * (bpffs maps, seqlock flip, flock between writers) and the human descriptions.
 *
 * Everything but cfg_store_* is pure: no I/O, errors into a caller's buffer as
 * "FILE:LINE:COL: message" (1-based), functions return 0 or -errno.
 *
 * Persistence: the applied documents are kept, as the user's own YAML text, in
 * the rm_cfg_src half published together with the compiled half, so a later
 * `apply` unpacks them, merges the new file, recompiles everything and publishes
 * both halves again.
 */
#ifndef RM_CFG_H
#define RM_CFG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ringmesh/cfg.h"

enum cfg_kind {
	CFG_K_ROUTERULE = 1,
	CFG_K_DESTPOLICY,
	CFG_K_VIRTUALSERVICE,
	CFG_K_DESTRULE,
	CFG_K_SERVICEENTRY,
	CFG_K_WORKLOADENTRY,
};

struct cfg_doc_ir; /* parsed form, private to the compiler */

/* One applied document. */
struct cfg_doc {
	enum cfg_kind kind;
	char *ns;	     /* metadata.namespace ("default" when absent) */
	char *name;	     /* metadata.name */
	char *origin;	     /* file it came from ("-" for stdin) */
	unsigned first_line; /* line of its first text line in origin (1-based) */
	char *text;	     /* this document's YAML text alone */
	struct cfg_doc_ir *ir;
};

/* An ordered set of documents: the store's content, or one file's. */
struct cfg_docs {
	struct cfg_doc *v;
	size_t n;
	size_t cap;
};

const char *cfg_kind_name(enum cfg_kind k);

/* Documents of a file that ringmesh does not consume, counted by kind in order of
 * first appearance: kinds outside the Istio API groups (Kubernetes objects kept
 * beside the rules), and istio = true for the Istio kinds it does not implement
 * (Gateway, Sidecar, EnvoyFilter, ...). Null documents are not counted. */
struct cfg_skip_kind {
	char kind[64];	  /* as written (a longer one is cut) */
	bool istio;	  /* of an Istio API group */
	const char *note; /* static: why a kind ringmesh reads was skipped, or NULL */
	unsigned count;
};

struct cfg_skipped {
	struct cfg_skip_kind *v;
	size_t n, cap;
	unsigned total; /* documents */
};

int cfg_skipped_add(struct cfg_skipped *s, const char *kind, bool istio, const char *note,
		    unsigned count);
int cfg_skipped_merge(struct cfg_skipped *dst, const struct cfg_skipped *src);
void cfg_skipped_free(struct cfg_skipped *s);
/* "4 Service, 6 Deployment; Istio kinds ringmesh does not implement: 1 Gateway" */
const char *cfg_skipped_fmt(const struct cfg_skipped *s, char *buf, size_t len);

/* Parse one file (several `---` documents): each is fully validated. Appends to
 * out only if the whole text is valid; otherwise out is untouched, -EINVAL and
 * err = "origin:line:col: message". Two documents with the same kind, namespace
 * and name in one text are an error. Null documents (nothing, or only comments,
 * between two `---`, as Istio's samples end) are ignored, as kubectl does;
 * documents of kinds ringmesh does not consume are skipped and, when skipped is
 * not NULL and the file is valid, counted there (see cfg_kinds.c for which). */
int cfg_docs_parse_counted(struct cfg_docs *out, struct cfg_skipped *skipped, const char *origin,
			   const char *text, size_t len, char *err, size_t errlen);
/* The same without the tally. */
int cfg_docs_parse(struct cfg_docs *out, const char *origin, const char *text, size_t len,
		   char *err, size_t errlen);

/* Documents of add replace those of store with the same kind+namespace+name, the
 * others are appended (store order kept). add is emptied (ownership moves). */
int cfg_docs_merge(struct cfg_docs *store, struct cfg_docs *add);
/* The same when no two documents of add are the same kind+namespace+name (the
 * sync's): only store's are indexed, none when store is empty. */
int cfg_docs_merge_unique(struct cfg_docs *store, struct cfg_docs *add);

/* Remove from store each document of del (same kind+namespace+name). Every one
 * must be present: otherwise -ENOENT, err names the first missing, store intact. */
int cfg_docs_remove(struct cfg_docs *store, const struct cfg_docs *del, char *err, size_t errlen);

/* `rule delete NAME`: remove the RouteRule or VirtualService called name (in ns,
 * or in any namespace when ns is NULL; ambiguous -> -EEXIST). */
int cfg_docs_remove_rule(struct cfg_docs *store, const char *name, const char *ns, char *err,
			 size_t errlen);

/* Remove every document whose origin starts with prefix (the sync's "k8s:"). */
void cfg_docs_remove_origin(struct cfg_docs *store, const char *prefix);

/* Append d to docs, taking it (d is zeroed). 0 or -ENOMEM. */
int cfg_docs_push(struct cfg_docs *docs, struct cfg_doc *d);

/* Remove (and free) document i, keeping the others' order. */
void cfg_docs_drop(struct cfg_docs *d, size_t i);

void cfg_docs_free(struct cfg_docs *d);

/* Compile a set of documents into one configuration (out: zeroed, or a previous
 * result, which is freed first; release with cfg_free; magic,
 * abi_version set, generation 0). Cross-document checks (duplicate hosts,
 * unknown subsets, capacities) report the offending document's position. */
int cfg_compile(const struct cfg_docs *docs, struct rm_cfg *out, char *err, size_t errlen);

/* Source texts in and out of a rm_cfg_src half. */
int cfg_src_pack(const struct cfg_docs *docs, struct rm_cfg_src *out, char *err, size_t errlen);
int cfg_src_unpack(const struct rm_cfg_src *src, struct cfg_docs *out, char *err, size_t errlen);
/* The same without the documents whose origin starts with prefix (not parsed). */
int cfg_src_unpack_except(const struct rm_cfg_src *src, const char *prefix, struct cfg_docs *out,
			  char *err, size_t errlen);
/* cfg_src_unpack then cfg_docs_merge of add (consumed) into out, the same result,
 * without parsing the stored documents whose text a document of add carries
 * (they are replaced by it): re-applying n unchanged documents parses n, not 2n. */
int cfg_src_merge(const struct rm_cfg_src *src, struct cfg_docs *add, struct cfg_docs *out,
		  char *err, size_t errlen);

/* --- a compiled configuration in memory (cfg_blob.c) --- */
/* An empty configuration with arrays of its own (magic, ABI, strtab "\0"). */
int cfg_init(struct rm_cfg *c);
/* Room for n entries of table t (own arrays only; grows by doubling, zeroed).
 * -ENOSPC beyond RM_CFG_TABLE_LIMIT or on a view. */
int cfg_reserve(struct rm_cfg *c, enum rm_cfg_table t, size_t n);
/* Frees the arrays or the viewed blob; c is zeroed. NULL and zeroed c are fine. */
void cfg_free(struct rm_cfg *c);
/* Bytes of c packed as a blob, and the packing (buf holds cfg_blob_size bytes).
 * Two packings of one configuration are byte-identical. */
size_t cfg_blob_size(const struct rm_cfg *c);
void cfg_blob_write(const struct rm_cfg *c, void *buf);
/* The same configuration, byte for byte once packed (generation included). */
bool cfg_equal(const struct rm_cfg *a, const struct rm_cfg *b);
/* out becomes a view of blob (malloc'd, len bytes), which it owns from then on
 * (cfg_free); every table checked to lie within it. -EBADMSG/-EPROTO with err
 * filled (blob not taken). */
int cfg_view(struct rm_cfg *out, void *blob, size_t len, char *err, size_t errlen);
/* Room for n bytes of source records; cfg_src_free releases them (zeroed src). */
int cfg_src_reserve(struct rm_cfg_src *s, size_t n);
void cfg_src_free(struct rm_cfg_src *s);

/* --- reading a compiled half --- */
const char *cfg_str(const struct rm_cfg *cfg, uint32_t off); /* "" when out of range */
/* index of rule name (in ns, or any when ns NULL), or -ENOENT / -EEXIST if ambiguous */
int cfg_rule_find(const struct rm_cfg *cfg, const char *name, const char *ns);
int cfg_service_find(const struct rm_cfg *cfg, const char *host);
/* "12.5s", "250ms", "5m", "none" for 0 */
const char *cfg_fmt_duration(uint64_t ns, char *buf, size_t len);

/* Breaker limits a subset gets without a policy: the old API's (Envoy's limits,
 * outlier detection off) and the modern API's (unlimited pools). The daemon uses
 * the old ones for pools it has no configuration for. */
void cfg_breaker_old_defaults(struct rm_cfg_breaker *cb);
void cfg_breaker_new_defaults(struct rm_cfg_breaker *cb);
/* "app=trans-service,version=v1" */
const char *cfg_fmt_labels(const struct rm_cfg *cfg, uint32_t first, uint32_t count, char *buf,
			   size_t len);

/* The document kind an RM_API_* value names; NULL for RM_API_IMPLICIT and unknown
 * values, which each reader words its own way. */
const char *cfg_api_name(unsigned api);
/* "exact", "prefix", "regex" for RM_OP_*, "?" otherwise */
const char *cfg_op_name(unsigned op);

/* Human descriptions (stable: golden-tested). Return 0 or -ENOENT. */
int cfg_rule_describe(const struct rm_cfg *cfg, uint32_t idx, FILE *out);
int cfg_service_describe(const struct rm_cfg *cfg, uint32_t idx, FILE *out);
int cfg_subset_describe(const struct rm_cfg *cfg, uint32_t idx, FILE *out);
int cfg_endpoint_describe(const struct rm_cfg *cfg, uint32_t idx, FILE *out);
/* Everything: services, then their rules, subsets and endpoints. */
int cfg_describe_all(const struct rm_cfg *cfg, FILE *out);

/* --- the cluster domain (cfg_yaml.c) --- */
/* Istio resolves a short host ("reviews" in a rule of namespace ns) to
 * reviews.ns.svc.<cluster domain>. The parser uses this process's domain, which
 * starts as cluster.local; the store records the one its documents were resolved in
 * (rm_cfg_ctl.domain) and refuses documents resolved in another (see cfg_store). */
#define CFG_DEFAULT_DOMAIN "cluster.local"
/* 0, or -EINVAL with the reason in err: DNS-1123 labels, under RM_CFG_DOMAIN_LEN. */
int cfg_domain_check(const char *d, char *err, size_t errlen);
/* Set the domain later parses resolve in (NULL/"" = cluster.local): 0 or -EINVAL. */
int cfg_set_domain(const char *d);
const char *cfg_domain(void);

/* --- the pinned store (I/O) --- */
/* One half's map as this process holds it. */
struct cfg_store_half {
	uint64_t id; /* ctl.half_id it was opened for; 0 = none */
	int fd;
	void *mem; /* the whole mapping: struct rm_cfg_half ... */
	size_t len;
};

struct cfg_store {
	int ctl_fd, lock_fd;
	struct rm_cfg_ctl *ctl; /* mmapped rm_cfg_ctl[0] */
	void *ctl_map;		/* whole mapping, for munmap */
	size_t ctl_map_len;
	struct cfg_store_half half[RM_CFG_HALVES];
	bool locked;
	/* Every write resolves the stored documents in the store's domain and needs the
	 * caller's documents parsed in it too (cfg_domain() at the call): a mismatch is
	 * -ESTALE. With set_domain the caller's domain becomes the store's instead (and
	 * every stored document is resolved in it): `apply --domain`, `sync --domain`. */
	bool set_domain;
	char pin_dir[PATH_MAX];
	/* maps of the halves this store created and unpinned (tests) */
	unsigned int maps_created, maps_removed;
};

/* Open the pinned maps under pin_dir; with create, create and pin missing ones
 * with the exact parameters of bpf/lib/maps_cfg.h (common/pin.c's table, so
 * ringmeshd's libbpf reuses them). -ENOENT when absent and !create. */
int cfg_store_open(struct cfg_store *s, const char *pin_dir, bool create, char *err, size_t errlen);
void cfg_store_close(struct cfg_store *s); /* also unlocks */
/* The domain the stored documents were resolved in (cluster.local when none was
 * recorded), copied to buf (RM_CFG_DOMAIN_LEN). Read without the lock: a parse that
 * starts from it is checked again under the lock. */
void cfg_store_domain(const struct cfg_store *s, char *buf);
/* The same from a control block's bytes (a map dump), and from pin_dir's store
 * (opened and closed; cluster.local when there is none). */
void cfg_ctl_domain(const struct rm_cfg_ctl *ctl, char *buf);
void cfg_store_domain_at(const char *pin_dir, char *buf);

/* Exclusive writer lock: flock(LOCK_EX) on the pin directory (bpffs cannot hold a
 * regular lock file). cfg_store_update/delete_rule take and release it
 * themselves unless the caller already holds it (to group several updates). */
int cfg_store_lock(struct cfg_store *s, const char *pin_dir);
void cfg_store_unlock(struct cfg_store *s);

/* Consistent copy of the active half (and its sources when src != NULL): out
 * becomes a view of its own blob copy (out: zeroed or a previous result, freed
 * first; release with cfg_free), src's text is malloc'd (cfg_src_free). Generation 0 with
 * an empty configuration when nothing was ever published. */
int cfg_store_snapshot(struct cfg_store *s, struct rm_cfg *out, struct rm_cfg_src *src,
		       uint64_t *generation);

/* Write cfg/src into the inactive half under its seqlock and flip. When both are
 * byte-identical to the active half nothing happens and *changed = false. A half
 * whose map is too small (or more than 4x too big) gets a new map first. The
 * caller must hold the lock. */
int cfg_store_publish(struct cfg_store *s, struct rm_cfg *cfg, struct rm_cfg_src *src,
		      bool *changed, uint64_t *generation);

/* Unpin every half's map under pin_dir (rm_cfg-H-ID): with rm_cfg_ctl gone, what
 * `ringmeshd` unpinning all its maps on a stop removes too. */
void cfg_store_unpin_halves(const char *pin_dir);

enum cfg_op {
	CFG_OP_APPLY = 1,   /* merge docs into the store */
	CFG_OP_DELETE = 2,  /* remove docs from the store */
	CFG_OP_REPLACE = 3, /* the store becomes docs */
};

/* The whole `apply`/`delete -f`: lock, unpack the active sources, merge/remove,
 * compile, publish, unlock. docs is consumed for APPLY/REPLACE. On any error the
 * pinned configuration is untouched. */
int cfg_store_update(struct cfg_store *s, const char *pin_dir, enum cfg_op op,
		     struct cfg_docs *docs, bool *changed, uint64_t *generation, char *err,
		     size_t errlen);

/* `ringmesh sync`: the documents of origin prefix become docs, the others
 * (applied from files) stay; the same lock, compile and publish. docs is
 * borrowed (left as it is, so the sync keeps its parsed documents from one
 * generation to the next): every one of them has an origin starting with
 * prefix, no two the same kind, namespace and name. The stored documents of
 * prefix are not parsed. */
int cfg_store_sync(struct cfg_store *s, const char *pin_dir, const char *prefix,
		   const struct cfg_docs *docs, bool *changed, uint64_t *generation, char *err,
		   size_t errlen);

/* `rule delete NAME [namespace NS]` through the same path. */
int cfg_store_delete_rule(struct cfg_store *s, const char *pin_dir, const char *name,
			  const char *ns, bool *changed, uint64_t *generation, char *err,
			  size_t errlen);

#endif /* RM_CFG_H */
