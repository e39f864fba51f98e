/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_docs: documents. A source's text split into documents at libyaml's line
 * breaks, each read into a typed IR (the common header here, the kind's spec by its
 * parser via cfg_kinds.c); and the set of applied documents: merge a file into it,
 * remove documents or one rule, and pack it into / unpack it from a rm_cfg_src half
 * (the user's YAML text per document, re-parsed on unpack). Pure. Kept in one file
 * because reading a file checks it against the set and unpacking the set reads
 * documents again. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg_ir.h"

/* --- documents by (kind, namespace, name), and by text ---
 * Open addressing over indices into a cfg_docs (which may grow: indices stay
 * valid). Looking documents up by scanning made merging n documents into n
 * O(n^2). */
static uint64_t fnv64(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return (h ^ 0xff) * 1099511628211ull; /* "a" "bc" and "ab" "c" differ */
}

static uint64_t key_hash(enum cfg_kind kind, const char *ns, const char *name)
{
	return fnv64(fnv64(14695981039346656037ull ^ (uint64_t)kind, ns), name);
}

static uint64_t doc_hash(const struct cfg_doc_index *x, const struct cfg_doc *d)
{
	return x->by_text ? fnv64(14695981039346656037ull, d->text)
			  : key_hash(d->kind, d->ns, d->name);
}

static bool doc_is(const struct cfg_doc_index *x, const struct cfg_doc *d, const struct cfg_doc *k)
{
	if (x->by_text)
		return !strcmp(d->text, k->text);
	return d->kind == k->kind && !strcmp(d->ns, k->ns) && !strcmp(d->name, k->name);
}

void cfg_doc_index_free(struct cfg_doc_index *x)
{
	free(x->slot);
	x->slot = NULL;
	x->cap = x->n = 0;
}

static void put_slot(struct cfg_doc_index *x, const struct cfg_docs *docs, size_t i)
{
	size_t m = x->cap - 1, s = (size_t)doc_hash(x, &docs->v[i]) & m;

	while (x->slot[s] != SIZE_MAX)
		s = (s + 1) & m;
	x->slot[s] = i;
}

int cfg_doc_index_add(struct cfg_doc_index *x, const struct cfg_docs *docs, size_t i)
{
	if (2 * (x->n + 1) > x->cap) {
		struct cfg_doc_index g = {.by_text = x->by_text, .n = x->n};

		g.cap = x->cap ? 2 * x->cap : 64;
		g.slot = malloc(g.cap * sizeof(*g.slot));
		if (!g.slot)
			return -ENOMEM;
		memset(g.slot, 0xff, g.cap * sizeof(*g.slot));
		for (size_t s = 0; s < x->cap; s++)
			if (x->slot[s] != SIZE_MAX)
				put_slot(&g, docs, x->slot[s]);
		free(x->slot);
		*x = g;
	}
	put_slot(x, docs, i);
	x->n++;
	return 0;
}

int cfg_doc_index_build(struct cfg_doc_index *x, const struct cfg_docs *docs, bool by_text)
{
	int r = 0;

	memset(x, 0, sizeof(*x));
	x->by_text = by_text;
	/* sized once: growing rehashes every text */
	x->cap = 64;
	while (x->cap < 2 * (docs->n + 1))
		x->cap *= 2;
	x->slot = malloc(x->cap * sizeof(*x->slot));
	if (!x->slot) {
		x->cap = 0;
		return -ENOMEM;
	}
	memset(x->slot, 0xff, x->cap * sizeof(*x->slot));
	for (size_t i = 0; i < docs->n && !r; i++)
		r = cfg_doc_index_add(x, docs, i);
	if (r)
		cfg_doc_index_free(x);
	return r;
}

size_t cfg_doc_index_find(const struct cfg_doc_index *x, const struct cfg_docs *docs,
			  const struct cfg_doc *k)
{
	size_t m = x->cap - 1, s;

	if (!x->cap)
		return SIZE_MAX;
	for (s = (size_t)doc_hash(x, k) & m; x->slot[s] != SIZE_MAX; s = (s + 1) & m)
		if (doc_is(x, &docs->v[x->slot[s]], k))
			return x->slot[s];
	return SIZE_MAX;
}

/* unique: no two documents of add are the same kind+namespace+name, so only
 * store's own are indexed (and none at all when store is empty) */
static int merge(struct cfg_docs *store, struct cfg_docs *add, bool unique)
{
	struct cfg_doc_index x = {0};
	bool look = !unique || store->n;
	int r = look ? cfg_doc_index_build(&x, store, false) : 0;

	for (size_t i = 0; i < add->n && !r; i++) {
		size_t j = look ? cfg_doc_index_find(&x, store, &add->v[i]) : SIZE_MAX;

		if (j != SIZE_MAX) {
			cfg_doc_clear(&store->v[j]);
			store->v[j] = add->v[i];
			memset(&add->v[i], 0, sizeof(add->v[i]));
		} else if (!(r = cfg_docs_push(store, &add->v[i])) && !unique) {
			r = cfg_doc_index_add(&x, store, store->n - 1);
		}
	}
	cfg_doc_index_free(&x);
	cfg_docs_free(add);
	return r;
}

int cfg_docs_merge(struct cfg_docs *store, struct cfg_docs *add)
{
	return merge(store, add, false);
}

int cfg_docs_merge_unique(struct cfg_docs *store, struct cfg_docs *add)
{
	return merge(store, add, true);
}

static void drop(struct cfg_docs *store, size_t j)
{
	cfg_doc_clear(&store->v[j]);
	memmove(&store->v[j], &store->v[j + 1], (store->n - j - 1) * sizeof(store->v[0]));
	store->n--;
}

void cfg_docs_drop(struct cfg_docs *d, size_t i)
{
	if (i < d->n)
		drop(d, i);
}

void cfg_docs_remove_origin(struct cfg_docs *store, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t j = store->n; j-- > 0;)
		if (store->v[j].origin && !strncmp(store->v[j].origin, prefix, n))
			drop(store, j);
}

int cfg_docs_remove(struct cfg_docs *store, const struct cfg_docs *del, char *err, size_t errlen)
{
	struct cfg_doc_index x;
	bool *gone = calloc(store->n + 1, sizeof(*gone));
	size_t k = 0;
	int r = gone ? cfg_doc_index_build(&x, store, false) : -ENOMEM;

	if (r) {
		free(gone);
		return r;
	}
	for (size_t i = 0; i < del->n; i++) {
		size_t j = cfg_doc_index_find(&x, store, &del->v[i]);

		if (j == SIZE_MAX) {
			snprintf(err, errlen, "%s:%u:1: %s %s/%s is not applied", del->v[i].origin,
				 del->v[i].first_line, cfg_kind_name(del->v[i].kind), del->v[i].ns,
				 del->v[i].name);
			r = -ENOENT;
			goto out;
		}
		gone[j] = true;
	}
	/* one pass keeping the order of the others (dropping one by one moved the
	 * tail for each) */
	for (size_t j = 0; j < store->n; j++) {
		if (gone[j])
			cfg_doc_clear(&store->v[j]);
		else
			store->v[k++] = store->v[j];
	}
	store->n = k;
out:
	cfg_doc_index_free(&x);
	free(gone);
	return r;
}

int cfg_docs_remove_rule(struct cfg_docs *store, const char *name, const char *ns, char *err,
			 size_t errlen)
{
	size_t found = SIZE_MAX;

	for (size_t j = 0; j < store->n; j++) {
		const struct cfg_doc *d = &store->v[j];

		if ((d->kind != CFG_K_ROUTERULE && d->kind != CFG_K_VIRTUALSERVICE) ||
		    strcmp(d->name, name) || (ns && strcmp(d->ns, ns)))
			continue;
		if (found != SIZE_MAX) {
			snprintf(err, errlen,
				 "rule %s exists in namespaces %s and %s: give the "
				 "namespace",
				 name, store->v[found].ns, d->ns);
			return -EEXIST;
		}
		found = j;
	}
	if (found == SIZE_MAX) {
		snprintf(err, errlen, "no rule %s%s%s", name, ns ? " in namespace " : "",
			 ns ? ns : "");
		return -ENOENT;
	}
	drop(store, found);
	return 0;
}

int cfg_src_pack(const struct cfg_docs *docs, struct rm_cfg_src *out, char *err, size_t errlen)
{
	size_t used = 0;

	out->magic = RM_CFG_MAGIC;
	out->n_docs = 0;
	out->used = 0;
	out->generation = 0;
	/* sized once: 10,000 documents are megabytes, grown by doubling they are
	 * copied again and again */
	for (size_t i = 0; i < docs->n; i++)
		used += (sizeof(struct rm_cfg_src_doc) + strlen(docs->v[i].origin) +
			 strlen(docs->v[i].text) + 2 + 7) &
			~(size_t)7;
	if (used <= UINT32_MAX / 2)
		cfg_src_reserve(out, used); /* else failed below, with a message */
	used = 0;
	for (size_t i = 0; i < docs->n; i++) {
		const struct cfg_doc *d = &docs->v[i];
		size_t ol = strlen(d->origin) + 1, tl = strlen(d->text) + 1;
		size_t rec = (sizeof(struct rm_cfg_src_doc) + ol + tl + 7) & ~(size_t)7;
		struct rm_cfg_src_doc h = {(uint32_t)rec, (uint32_t)ol, (uint32_t)tl,
					   d->first_line};
		int r = cfg_src_reserve(out, used + rec);

		if (r) {
			snprintf(err, errlen, "%s:%u:1: the applied documents exceed %zu bytes",
				 d->origin, d->first_line, used);
			return r;
		}
		memcpy(out->text + used, &h, sizeof(h));
		memcpy(out->text + used + sizeof(h), d->origin, ol);
		memcpy(out->text + used + sizeof(h) + ol, d->text, tl);
		memset(out->text + used + sizeof(h) + ol + tl, 0, rec - sizeof(h) - ol - tl);
		used += rec;
	}
	out->n_docs = (uint32_t)docs->n;
	out->used = (uint32_t)used;
	return 0;
}

/* A stored document whose text some document of known carries is not parsed:
 * the merge replaces it with that one anyway (same text, same kind+namespace+
 * name), so it only holds the key and place, ir NULL. */
/* A document's own copies of its key, origin and text (ir is taken over, may be NULL). */
static int doc_fill(struct cfg_doc *d, enum cfg_kind kind, struct cfg_doc_ir *ir, const char *ns,
		    const char *name, const char *origin, unsigned first_line, const char *text,
		    size_t len)
{
	memset(d, 0, sizeof(*d));
	d->kind = kind;
	d->ir = ir;
	d->first_line = first_line;
	d->ns = strdup(ns);
	d->name = strdup(name);
	d->origin = strdup(origin);
	d->text = strndup(text, len);
	if (!d->ns || !d->name || !d->origin || !d->text) {
		cfg_doc_clear(d);
		return -ENOMEM;
	}
	return 0;
}

static int placeholder(struct cfg_doc *d, const struct cfg_doc *k, const char *origin,
		       unsigned first_line, const char *text, size_t len)
{
	return doc_fill(d, k->kind, NULL, k->ns, k->name, origin, first_line, text, len);
}

static int unpack(const struct rm_cfg_src *src, struct cfg_docs *out, const struct cfg_docs *known,
		  const struct cfg_doc_index *by_text, const char *except, char *err, size_t errlen)
{
	struct cfg_docs tmp = {0};
	size_t off = 0;
	int r = 0;

	if (src->magic != RM_CFG_MAGIC) {
		if (!src->magic && !src->n_docs)
			return 0; /* never written */
		snprintf(err, errlen, "stored documents: bad magic 0x%x", src->magic);
		return -EBADMSG;
	}
	if (src->used > src->cap || (src->used && !src->text)) {
		snprintf(err, errlen, "stored documents: corrupt size %u", src->used);
		return -EBADMSG;
	}
	for (uint32_t i = 0; i < src->n_docs && !r; i++) {
		struct rm_cfg_src_doc h;
		const char *origin, *text;
		struct cfg_doc_ir *ir;
		struct cfg_doc d;

		if (off + sizeof(h) > src->used) {
			r = -EBADMSG;
			break;
		}
		memcpy(&h, src->text + off, sizeof(h));
		if (h.rec_len < sizeof(h) + h.origin_len + h.text_len ||
		    off + h.rec_len > src->used || !h.origin_len || !h.text_len) {
			r = -EBADMSG;
			break;
		}
		origin = src->text + off + sizeof(h);
		text = origin + h.origin_len;
		if (origin[h.origin_len - 1] || text[h.text_len - 1]) {
			r = -EBADMSG;
			break;
		}
		if (except && !strncmp(origin, except, strlen(except))) {
			off += h.rec_len;
			continue;
		}
		if (known) {
			const struct cfg_doc key = {.text = (char *)text};
			size_t k = cfg_doc_index_find(by_text, known, &key);

			if (k != SIZE_MAX) {
				if ((r = placeholder(&d, &known->v[k], origin, h.first_line, text,
						     h.text_len - 1)))
					break;
				goto push;
			}
		}
		r = cfg_doc_parse_text(origin, h.first_line, text, h.text_len - 1, &ir, err,
				       errlen);
		if (r)
			break;
		if ((r = cfg_doc_make(&d, ir, origin, h.first_line, text, h.text_len - 1)))
			break;
	push:
		if ((r = cfg_docs_push(&tmp, &d))) {
			cfg_doc_clear(&d);
			break;
		}
		off += h.rec_len;
	}
	if (r == -EBADMSG)
		snprintf(err, errlen, "stored documents: corrupt record at offset %zu", off);
	if (r) {
		cfg_docs_free(&tmp);
		return r;
	}
	for (size_t i = 0; i < tmp.n && !r; i++)
		r = cfg_docs_push(out, &tmp.v[i]);
	tmp.n = 0;
	cfg_docs_free(&tmp);
	return r;
}

int cfg_src_unpack(const struct rm_cfg_src *src, struct cfg_docs *out, char *err, size_t errlen)
{
	return unpack(src, out, NULL, NULL, NULL, err, errlen);
}

int cfg_src_unpack_except(const struct rm_cfg_src *src, const char *prefix, struct cfg_docs *out,
			  char *err, size_t errlen)
{
	return unpack(src, out, NULL, NULL, prefix, err, errlen);
}

int cfg_src_merge(const struct rm_cfg_src *src, struct cfg_docs *add, struct cfg_docs *out,
		  char *err, size_t errlen)
{
	struct cfg_docs cur = {0};
	struct cfg_doc_index by_text;
	int r = cfg_doc_index_build(&by_text, add, true);

	if (!r)
		r = unpack(src, &cur, add, &by_text, NULL, err, errlen);
	cfg_doc_index_free(&by_text);
	if (!r)
		r = cfg_docs_merge(&cur, add);
	else
		cfg_docs_free(add);
	for (size_t i = 0; !r && i < cur.n; i++)
		if (!cur.v[i].ir) {
			snprintf(err, errlen,
				 "internal: stored %s %s/%s was not replaced by the applied one",
				 cfg_kind_name(cur.v[i].kind), cur.v[i].ns, cur.v[i].name);
			r = -EPROTO;
		}
	for (size_t i = 0; !r && i < cur.n; i++)
		r = cfg_docs_push(out, &cur.v[i]);
	if (!r)
		cur.n = 0;
	cfg_docs_free(&cur);
	return r;
}

/* --- documents --- */
/* DNS-1123 subdomain, as Kubernetes requires of metadata.name/namespace. */
static bool dns1123(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 253 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-' ||
		      *s == '.'))
			return false;
	return true;
}

static int doc_from_yaml(struct cfg_ctx *c, struct cfg_doc_ir *ir)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	yaml_node_t *api, *kind, *meta, *spec, *status, *name, *ns, *labels, *ann, *x1, *x2, *x3,
	    *x4;
	const struct cfg_field top[] = {{"apiVersion", &api}, {"kind", &kind},
					{"metadata", &meta},  {"spec", &spec},
					{"status", &status},  {NULL, NULL}};
	const struct cfg_field mf[] = {
	    {"name", &name},	   {"namespace", &ns},	     {"labels", &labels},
	    {"annotations", &ann}, {"resourceVersion", &x1}, {"creationTimestamp", &x2},
	    {"uid", &x3},	   {"generation", &x4},	     {NULL, NULL}};
	const struct cfg_kind_info *info;
	int r;

	ir->pos = cfg_node_pos(c, root);
	/* apiVersion and kind first: a skipped kind's other fields are not ours to judge */
	if ((r = cfg_doc_classify(c, root, &info, ir)))
		return r;
	if ((r = cfg_fields(c, root, "document", top)))
		return r;
	ir->kind = info->k;
	if ((r = cfg_need(c, root, meta, "metadata")) ||
	    (r = cfg_fields(c, meta, "metadata", mf)) || (r = cfg_need(c, meta, name, "name")) ||
	    (r = cfg_str_of(c, name, "metadata.name", &ir->name)))
		return r;
	if (!dns1123(ir->name))
		return cfg_errf(c, name, "metadata.name \"%s\" is not a valid DNS-1123 name",
				ir->name);
	ir->ns = "default";
	if (ns) {
		if ((r = cfg_str_of(c, ns, "metadata.namespace", &ir->ns)))
			return r;
		if (!dns1123(ir->ns) || strchr(ir->ns, '.'))
			return cfg_errf(c, ns,
					"metadata.namespace \"%s\" is not a valid DNS-1123 "
					"label",
					ir->ns);
	}
	if (labels && labels->type != YAML_MAPPING_NODE)
		return cfg_errf(c, labels, "metadata.labels must be a mapping");
	if (ann && ann->type != YAML_MAPPING_NODE)
		return cfg_errf(c, ann, "metadata.annotations must be a mapping");
	c->ns = ir->ns;
	if ((r = cfg_need(c, root, spec, "spec")))
		return r;
	return info->parse(c, spec, ir);
}

static int yaml_problem(const char *file, unsigned base, yaml_parser_t *p, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s:%u:%u: %s%s%s", file, base + (unsigned)p->problem_mark.line + 1,
		 (unsigned)p->problem_mark.column + 1, p->problem ? p->problem : "YAML error",
		 p->context ? " " : "", p->context ? p->context : "");
	return -EINVAL;
}

static struct cfg_doc_ir *ir_new(const char *file)
{
	struct cfg_doc_ir *ir = calloc(1, sizeof(*ir));

	if (ir)
		ir->file = cfg_arena_strdup(&ir->arena, file);
	if (ir && !ir->file) {
		free(ir);
		ir = NULL;
	}
	return ir;
}

void cfg_doc_ir_free(struct cfg_doc_ir *ir)
{
	if (!ir)
		return;
	cfg_arena_free(&ir->arena);
	free(ir);
}

int cfg_doc_parse_text(const char *file, unsigned first_line, const char *text, size_t len,
		       struct cfg_doc_ir **out, char *err, size_t errlen)
{
	yaml_parser_t p;
	yaml_document_t d;
	struct cfg_doc_ir *ir;
	struct cfg_ctx c = {.doc = &d, .file = file, .err = err, .errlen = errlen};
	int r;

	*out = NULL;
	ir = ir_new(file);
	if (!ir || !yaml_parser_initialize(&p)) {
		cfg_doc_ir_free(ir);
		return -ENOMEM;
	}
	c.arena = &ir->arena;
	c.line_base = first_line ? first_line - 1 : 0;
	/* libyaml would also take UTF-16, whose NULs the stored C strings cut short */
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	if (!yaml_parser_load(&p, &d)) {
		r = yaml_problem(file, c.line_base, &p, err, errlen);
		goto out;
	}
	if (!yaml_document_get_root_node(&d) || cfg_is_null(yaml_document_get_root_node(&d))) {
		r = -ENODATA;
		snprintf(err, errlen, "%s:%u:1: empty document", file, first_line);
	} else {
		r = doc_from_yaml(&c, ir);
		/* only consumed kinds are ever stored */
		if (r == 1)
			r = cfg_errf(&c, yaml_document_get_root_node(&d),
				     "%s is not a kind ringmesh reads", ir->skip_kind);
	}
	yaml_document_delete(&d);
out:
	yaml_parser_delete(&p);
	if (r)
		cfg_doc_ir_free(ir);
	else
		*out = ir;
	return r;
}

/* Where each line of a source starts, found in one pass: a document's text is
 * cut at its first and last line, and rescanning the source from its start for
 * every document made applying n documents O(n^2) (92% of a 1,000-service apply).
 * Lines are counted as libyaml counts them for its marks (CR LF, CR, LF, and in
 * UTF-8 NEL, LS, PS), or a document's text would be cut from the wrong lines: a
 * stray CR shifted every later document, so the stored sources no longer
 * re-parsed into what had been compiled. */
int cfg_lines_index(struct cfg_lines *li, const char *text, size_t len)
{
	const unsigned char *t = (const unsigned char *)text;
	size_t cap = 64, off = 0;

	li->len = len;
	li->n = 1;
	li->start = malloc(cap * sizeof(*li->start));
	if (!li->start)
		return -ENOMEM;
	li->start[0] = 0;
	while (off < len) {
		size_t w = 0;

		if (t[off] == '\r')
			w = off + 1 < len && t[off + 1] == '\n' ? 2 : 1;
		else if (t[off] == '\n')
			w = 1;
		else if (t[off] == 0xc2 && off + 1 < len && t[off + 1] == 0x85)
			w = 2;
		else if (t[off] == 0xe2 && off + 2 < len && t[off + 1] == 0x80 &&
			 (t[off + 2] == 0xa8 || t[off + 2] == 0xa9))
			w = 3;
		off += w ? w : 1;
		if (!w)
			continue;
		if (li->n == cap) {
			size_t *v = realloc(li->start, 2 * cap * sizeof(*v));

			if (!v) {
				cfg_lines_free(li);
				return -ENOMEM;
			}
			li->start = v;
			cap *= 2;
		}
		li->start[li->n++] = off;
	}
	return 0;
}

size_t cfg_lines_off(const struct cfg_lines *li, size_t line)
{
	return line < li->n ? li->start[line] : li->len;
}

void cfg_lines_free(struct cfg_lines *li)
{
	free(li->start);
	memset(li, 0, sizeof(*li));
}

void cfg_doc_clear(struct cfg_doc *d)
{
	free(d->ns);
	free(d->name);
	free(d->origin);
	free(d->text);
	cfg_doc_ir_free(d->ir);
	memset(d, 0, sizeof(*d));
}

int cfg_docs_push(struct cfg_docs *docs, struct cfg_doc *d)
{
	if (docs->n == docs->cap) {
		size_t cap = docs->cap ? docs->cap * 2 : 8;
		struct cfg_doc *v = realloc(docs->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		docs->v = v;
		docs->cap = cap;
	}
	docs->v[docs->n++] = *d;
	memset(d, 0, sizeof(*d));
	return 0;
}

int cfg_doc_make(struct cfg_doc *d, struct cfg_doc_ir *ir, const char *origin, unsigned first_line,
		 const char *text, size_t len)
{
	return doc_fill(d, ir->kind, ir, ir->ns, ir->name, origin, first_line, text, len);
}

void cfg_docs_free(struct cfg_docs *docs)
{
	for (size_t i = 0; i < docs->n; i++)
		cfg_doc_clear(&docs->v[i]);
	free(docs->v);
	memset(docs, 0, sizeof(*docs));
}

int cfg_docs_parse(struct cfg_docs *out, const char *origin, const char *text, size_t len,
		   char *err, size_t errlen)
{
	return cfg_docs_parse_counted(out, NULL, origin, text, len, err, errlen);
}

int cfg_docs_parse_counted(struct cfg_docs *out, struct cfg_skipped *skipped, const char *origin,
			   const char *text, size_t len, char *err, size_t errlen)
{
	struct cfg_docs tmp = {0};
	struct cfg_skipped skip = {0};
	struct cfg_lines lines;
	struct cfg_doc_index seen = {0}; /* tmp by key: duplicates */
	yaml_parser_t p;
	int r = 0;

	if ((r = cfg_lines_index(&lines, text, len)))
		return r;
	if (!yaml_parser_initialize(&p)) {
		cfg_lines_free(&lines);
		return -ENOMEM;
	}
	/* libyaml would also take UTF-16, whose NULs the stored C strings cut short */
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		yaml_document_t d;
		struct cfg_doc_ir *ir;
		struct cfg_ctx c = {.doc = &d, .file = origin, .err = err, .errlen = errlen};
		struct cfg_doc doc;
		size_t b, e, sl, el;

		if (!yaml_parser_load(&p, &d)) {
			r = yaml_problem(origin, 0, &p, err, errlen);
			break;
		}
		if (!yaml_document_get_root_node(&d)) {
			yaml_document_delete(&d);
			if (p.stream_end_produced)
				break;
			continue; /* an empty document between two `---` */
		}
		/* A `---` followed by nothing (Istio's samples end so) or by comments
		 * only is a null document: kubectl and istioctl skip it. */
		if (cfg_is_null(yaml_document_get_root_node(&d))) {
			yaml_document_delete(&d);
			continue;
		}
		ir = ir_new(origin);
		if (!ir) {
			yaml_document_delete(&d);
			r = -ENOMEM;
			break;
		}
		c.arena = &ir->arena;
		r = doc_from_yaml(&c, ir);
		sl = d.start_mark.line;
		el = d.end_mark.line + (d.end_mark.column ? 1 : 0);
		yaml_document_delete(&d);
		if (r == 1) {
			r = cfg_skipped_add(&skip, ir->skip_kind, ir->skip_istio, ir->skip_note, 1);
			cfg_doc_ir_free(ir);
			if (r)
				break;
			continue;
		}
		if (r) {
			cfg_doc_ir_free(ir);
			break;
		}
		{
			const struct cfg_doc key = {
			    .kind = ir->kind, .ns = (char *)ir->ns, .name = (char *)ir->name};
			size_t i = cfg_doc_index_find(&seen, &tmp, &key);

			if (i != SIZE_MAX) {
				snprintf(err, errlen,
					 "%s:%u:%u: duplicate %s %s/%s (first at line %u)", origin,
					 ir->pos.line, ir->pos.col, cfg_kind_name(ir->kind), ir->ns,
					 ir->name, tmp.v[i].ir->pos.line);
				r = -EINVAL;
			}
		}
		b = cfg_lines_off(&lines, sl);
		e = cfg_lines_off(&lines, el);
		if (r) {
			cfg_doc_ir_free(ir);
			break;
		}
		if ((r = cfg_doc_make(&doc, ir, origin, (unsigned)sl + 1, text + b, e - b)))
			break; /* ir freed with doc */
		if ((r = cfg_docs_push(&tmp, &doc))) {
			cfg_doc_clear(&doc);
			break;
		}
		if ((r = cfg_doc_index_add(&seen, &tmp, tmp.n - 1)))
			break;
	}
	yaml_parser_delete(&p);
	cfg_lines_free(&lines);
	cfg_doc_index_free(&seen);
	if (!r && skipped)
		r = cfg_skipped_merge(skipped, &skip);
	cfg_skipped_free(&skip);
	if (r) {
		cfg_docs_free(&tmp);
		return r;
	}
	for (size_t i = 0; i < tmp.n; i++)
		if ((r = cfg_docs_push(out, &tmp.v[i])))
			break;
	tmp.n = 0;
	cfg_docs_free(&tmp);
	return r;
}
