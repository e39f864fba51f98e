/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_yaml: the readers of libyaml nodes every parser uses: the arena, errors with
 * positions, strict mapping walks, and the scalar forms (durations, percents,
 * integers, addresses, labels, regexes). Splitting a file into documents and the
 * common header (apiVersion/kind/metadata) are cfg_docs.c's. */
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

/* The cluster domain this process resolves short names in. */
static char cluster_domain[RM_CFG_DOMAIN_LEN] = CFG_DEFAULT_DOMAIN;

int cfg_domain_check(const char *d, char *err, size_t errlen)
{
	size_t n = strlen(d), label = 0;

	if (!n || n >= RM_CFG_DOMAIN_LEN) {
		snprintf(err, errlen, "cluster domain \"%s\": 1 to %d characters", d,
			 RM_CFG_DOMAIN_LEN - 1);
		return -EINVAL;
	}
	/* DNS-1123 labels (what a kubelet's --cluster-domain may be), dot separated */
	for (size_t i = 0; i <= n; i++) {
		char ch = d[i];

		if (ch == '.' || !ch) {
			if (!label || d[i - 1] == '-')
				goto bad;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			   (ch == '-' && label)) {
			if (++label > 63)
				goto bad;
		} else {
			goto bad;
		}
	}
	return 0;
bad:
	snprintf(err, errlen,
		 "cluster domain \"%s\": not a DNS name (lower-case labels of a-z, 0-9 and "
		 "'-', separated by dots)",
		 d);
	return -EINVAL;
}

int cfg_set_domain(const char *d)
{
	char err[160];

	if (!d || !*d)
		d = CFG_DEFAULT_DOMAIN;
	if (cfg_domain_check(d, err, sizeof(err)))
		return -EINVAL;
	snprintf(cluster_domain, sizeof(cluster_domain), "%s", d);
	return 0;
}

const char *cfg_domain(void)
{
	return cluster_domain;
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
		domain = cluster_domain;
	len = strlen(name) + strlen(ns) + strlen(domain) + 8;
	s = cfg_arena_alloc(c->arena, len);
	if (s)
		snprintf(s, len, "%s.%s.svc.%s", name, ns, domain);
	return s;
}
