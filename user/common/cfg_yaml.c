/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_yaml: libyaml documents -> typed IR: splitting files into documents, the
 * common header (apiVersion/kind/metadata), strict mapping walks with positions,
 * and the scalar forms (durations, percents, integers, addresses, regexes). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/cfg_ir.h"

/* --- arena --- */
struct cfg_arena_blk {
	struct cfg_arena_blk *next;
	max_align_t data[];
};

void *cfg_arena_alloc(struct cfg_arena *a, size_t size)
{
	struct cfg_arena_blk *b = calloc(1, sizeof(*b) + (size ? size : 1));

	if (!b)
		return NULL;
	b->next = a->head;
	a->head = b;
	return b->data;
}

char *cfg_arena_strdup(struct cfg_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = cfg_arena_alloc(a, n);

	if (p)
		memcpy(p, s, n);
	return p;
}

void cfg_arena_free(struct cfg_arena *a)
{
	while (a->head) {
		struct cfg_arena_blk *n = a->head->next;

		free(a->head);
		a->head = n;
	}
}

/* --- positions and errors --- */
struct cfg_pos cfg_node_pos(const struct cfg_ctx *c, const yaml_node_t *n)
{
	struct cfg_pos p = {c->line_base + 1, 1};

	if (n) {
		p.line = c->line_base + (unsigned)n->start_mark.line + 1;
		p.col = (unsigned)n->start_mark.column + 1;
	}
	return p;
}

int cfg_errf(const struct cfg_ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
	struct cfg_pos p = cfg_node_pos(c, n);
	va_list ap;
	int k;

	if (!c->err || !c->errlen)
		return -EINVAL;
	k = snprintf(c->err, c->errlen, "%s:%u:%u: ", c->file, p.line, p.col);
	if (k < 0 || (size_t)k >= c->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(c->err + k, c->errlen - k, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

yaml_node_t *cfg_item(const struct cfg_ctx *c, yaml_node_item_t it)
{
	return yaml_document_get_node(c->doc, it);
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static const char *kind_word(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

bool cfg_is_null(const yaml_node_t *n)
{
	const char *s;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = scalar(n);
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

int cfg_fields(const struct cfg_ctx *c, yaml_node_t *n, const char *what,
	       const struct cfg_field *fields)
{
	yaml_node_pair_t *p;
	const struct cfg_field *f;

	for (f = fields; f->key; f++)
		*f->out = NULL;
	if (n->type != YAML_MAPPING_NODE)
		return cfg_errf(c, n, "%s must be a mapping, not %s", what, kind_word(n));
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = cfg_item(c, p->key), *v = cfg_item(c, p->value);

		if (k->type != YAML_SCALAR_NODE)
			return cfg_errf(c, k, "%s: keys must be scalars", what);
		for (f = fields; f->key; f++)
			if (!strcmp(f->key, scalar(k)))
				break;
		if (!f->key)
			return cfg_errf(c, k, "unknown field \"%s\" in %s", scalar(k), what);
		if (*f->out)
			return cfg_errf(c, k, "duplicate field \"%s\" in %s", scalar(k), what);
		/* An explicit null is the same as an absent field. */
		*f->out = cfg_is_null(v) ? NULL : v;
	}
	return 0;
}

int cfg_need(const struct cfg_ctx *c, yaml_node_t *parent, yaml_node_t *v, const char *key)
{
	if (v)
		return 0;
	return cfg_errf(c, parent, "missing required field \"%s\"", key);
}

int cfg_str_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, const char **out)
{
	if (n->type != YAML_SCALAR_NODE)
		return cfg_errf(c, n, "%s must be a string, not %s", what, kind_word(n));
	*out = cfg_arena_strdup(c->arena, scalar(n));
	return *out ? 0 : -ENOMEM;
}

int cfg_int_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, int64_t min, int64_t max,
	       int64_t *out)
{
	const char *s;
	char *end;
	long long v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return cfg_errf(c, n, "%s must be an integer", what);
	s = scalar(n);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || isspace((unsigned char)*s))
		return cfg_errf(c, n, "%s must be an integer, not \"%s\"", what, s);
	if (v < min || v > max)
		return cfg_errf(c, n, "%s %lld out of range %" PRId64 "..%" PRId64, what, v, min,
				max);
	*out = v;
	return 0;
}

int cfg_u32_fields(const struct cfg_ctx *c, const struct cfg_u32_field *f, size_t count)
{
	int64_t v;
	int r;

	for (size_t i = 0; i < count; i++) {
		if (!*f[i].n)
			continue;
		if ((r = cfg_int_of(c, *f[i].n, f[i].what, f[i].min, f[i].max, &v)))
			return r;
		*f[i].out = (uint32_t)v;
	}
	return 0;
}

int cfg_bool_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, bool *out)
{
	const char *s = n->type == YAML_SCALAR_NODE ? scalar(n) : "";

	if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (!strcmp(s, "true") || !strcmp(s, "True")) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, "false") || !strcmp(s, "False")) {
			*out = false;
			return 0;
		}
	}
	return cfg_errf(c, n, "%s must be true or false", what);
}

/* Go's time.ParseDuration forms, as Istio accepts them: one or more
 * <decimal><unit> with unit ns, us, µs, ms, s, m, h; no sign. */
int cfg_parse_duration(const char *s, uint64_t *ns)
{
	static const struct {
		const char *u;
		double mul;
	} units[] = {{"ns", 1},	 {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6},
		     {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
	double total = 0;

	if (!*s)
		return -EINVAL;
	while (*s) {
		double v = 0, frac = 0.1;
		bool digits = false;
		size_t i, best = 0, bi = 0;

		while (isdigit((unsigned char)*s)) {
			v = v * 10 + (*s++ - '0');
			digits = true;
		}
		if (*s == '.') {
			s++;
			while (isdigit((unsigned char)*s)) {
				v += (*s++ - '0') * frac;
				frac /= 10;
				digits = true;
			}
		}
		if (!digits)
			return -EINVAL;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].u);

			if (!strncmp(s, units[i].u, l) && l > best) {
				best = l;
				bi = i;
			}
		}
		if (!best)
			return -EINVAL;
		s += best;
		total += v * units[bi].mul;
		if (total > 1e18)
			return -ERANGE;
	}
	*ns = (uint64_t)llround(total);
	return 0;
}

int cfg_dur_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, uint64_t *ns)
{
	int r;

	if (n->type != YAML_SCALAR_NODE)
		return cfg_errf(c, n, "%s must be a duration like 5s or 250ms", what);
	r = cfg_parse_duration(scalar(n), ns);
	if (r == -ERANGE)
		return cfg_errf(c, n, "%s \"%s\" is too long", what, scalar(n));
	if (r)
		return cfg_errf(c, n, "%s: invalid duration \"%s\" (use e.g. 5s, 250ms, 1m, 1.5s)",
				what, scalar(n));
	return 0;
}

int cfg_pct_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, uint32_t *ppm)
{
	const char *s;
	char *end;
	double v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return cfg_errf(c, n, "%s must be a number 0..100", what);
	s = scalar(n);
	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || isnan(v) || !isdigit((unsigned char)*s))
		return cfg_errf(c, n, "%s must be a number 0..100, not \"%s\"", what, s);
	if (v < 0 || v > 100)
		return cfg_errf(c, n, "%s %s out of range 0..100", what, s);
	*ppm = (uint32_t)llround(v * 10000.0);
	return 0;
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cfg_kv *)a)->k, ((const struct cfg_kv *)b)->k);
}

int cfg_labels_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, struct cfg_lset *out)
{
	yaml_node_pair_t *p;
	unsigned i = 0;

	out->n = 0;
	out->v = NULL;
	if (n->type != YAML_MAPPING_NODE)
		return cfg_errf(c, n, "%s must be a mapping of labels", what);
	out->v = cfg_arena_alloc(
	    c->arena, sizeof(*out->v) * (n->data.mapping.pairs.top - n->data.mapping.pairs.start));
	if (!out->v)
		return -ENOMEM;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = cfg_item(c, p->key), *v = cfg_item(c, p->value);
		int r;

		if (k->type != YAML_SCALAR_NODE || !*scalar(k))
			return cfg_errf(c, k, "%s: label names must be non-empty strings", what);
		if (v->type != YAML_SCALAR_NODE)
			return cfg_errf(c, v, "%s: value of label \"%s\" must be a string", what,
					scalar(k));
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(out->v[j].k, scalar(k)))
				return cfg_errf(c, k, "%s: duplicate label \"%s\"", what,
						scalar(k));
		r = cfg_str_of(c, k, what, &out->v[i].k);
		if (!r)
			r = cfg_str_of(c, v, what, &out->v[i].v);
		if (r)
			return r;
		i++;
	}
	out->n = i;
	qsort(out->v, i, sizeof(*out->v), kv_cmp);
	return 0;
}

int cfg_seq_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, yaml_node_item_t **b,
	       unsigned *count)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return cfg_errf(c, n, "%s must be a list, not %s", what, kind_word(n));
	*b = n->data.sequence.items.start;
	*count = (unsigned)(n->data.sequence.items.top - n->data.sequence.items.start);
	return 0;
}

int cfg_strlist_of(const struct cfg_ctx *c, yaml_node_t *n, const char *what, const char **out)
{
	yaml_node_item_t *it = NULL;
	unsigned cnt = 0, i;
	size_t len = 1;
	char *s;

	if (cfg_seq_of(c, n, what, &it, &cnt))
		return -EINVAL;
	for (i = 0; i < cnt; i++) {
		yaml_node_t *e = cfg_item(c, it[i]);

		if (e->type != YAML_SCALAR_NODE || !*scalar(e) || strchr(scalar(e), ','))
			return cfg_errf(c, e, "%s: items must be non-empty strings without ','",
					what);
		len += strlen(scalar(e)) + 1;
	}
	s = cfg_arena_alloc(c->arena, len);
	if (!s)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, scalar(cfg_item(c, it[i])));
	}
	*out = s;
	return 0;
}

int cfg_header_name(const struct cfg_ctx *c, yaml_node_t *n, const char *name)
{
	const char *p;

	if (!*name)
		return cfg_errf(c, n, "empty header name");
	for (p = name; *p; p++) {
		if (isupper((unsigned char)*p))
			return cfg_errf(c, n, "header name \"%s\" must be lower case", name);
		/* RFC 7230 tchar */
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return cfg_errf(c, n, "header name \"%s\" has invalid character '%c'", name,
					*p);
	}
	return 0;
}

int cfg_regex_check(const struct cfg_ctx *c, yaml_node_t *n, const char *re)
{
	int ec;
	PCRE2_SIZE off;
	pcre2_code *code =
	    pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &off, NULL);
	PCRE2_UCHAR msg[160];

	if (code) {
		pcre2_code_free(code);
		return 0;
	}
	pcre2_get_error_message(ec, msg, sizeof(msg));
	return cfg_errf(c, n, "invalid regex \"%s\": %s at offset %zu", re, (char *)msg,
			(size_t)off);
}

int cfg_addr_of(const struct cfg_ctx *c, yaml_node_t *n, struct rm_addr *a, uint16_t *family,
		bool allow_cidr)
{
	char buf[64];
	const char *s;
	char *slash;
	struct in_addr v4;
	struct in6_addr v6;
	int plen = -1, maxp;

	if (n->type != YAML_SCALAR_NODE)
		return cfg_errf(c, n, "address must be a string");
	s = scalar(n);
	if (strlen(s) >= sizeof(buf))
		return cfg_errf(c, n, "invalid address \"%.40s...\"", s);
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash) {
		char *end;

		if (!allow_cidr)
			return cfg_errf(c, n, "\"%s\": expected an address, not a range", s);
		*slash++ = 0;
		errno = 0;
		plen = (int)strtol(slash, &end, 10);
		if (!*slash || *end || errno || plen < 0)
			return cfg_errf(c, n, "invalid prefix length in \"%s\"", s);
	}
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, buf, &v4) == 1) {
		a->a8[10] = a->a8[11] = 0xff;
		memcpy(&a->a8[12], &v4, 4);
		*family = AF_INET;
		maxp = 32;
	} else if (inet_pton(AF_INET6, buf, &v6) == 1) {
		memcpy(a->a8, &v6, 16);
		*family = AF_INET6;
		maxp = 128;
	} else {
		return cfg_errf(c, n, "invalid IP address \"%s\"", s);
	}
	if (plen > maxp)
		return cfg_errf(c, n, "prefix length %d too long in \"%s\"", plen, s);
	if (plen >= 0 && plen != maxp)
		return cfg_errf(c, n,
				"\"%s\": ranges are not supported as service addresses; "
				"give each VIP",
				s);
	return 0;
}

const char *cfg_fqdn(const struct cfg_ctx *c, const char *name, const char *ns, const char *domain)
{
	char *s;
	size_t len;

	if (strchr(name, '.') || !strcmp(name, "*"))
		return cfg_arena_strdup(c->arena, name);
	if (!ns || !*ns)
		ns = c->ns;
	if (!domain || !*domain)
		domain = "cluster.local";
	len = strlen(name) + strlen(ns) + strlen(domain) + 8;
	s = cfg_arena_alloc(c->arena, len);
	if (s)
		snprintf(s, len, "%s.%s.svc.%s", name, ns, domain);
	return s;
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
	memset(d, 0, sizeof(*d));
	d->kind = ir->kind;
	d->ir = ir;
	d->first_line = first_line;
	d->ns = strdup(ir->ns);
	d->name = strdup(ir->name);
	d->origin = strdup(origin);
	d->text = strndup(text, len);
	if (!d->ns || !d->name || !d->origin || !d->text) {
		cfg_doc_clear(d);
		return -ENOMEM;
	}
	return 0;
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
