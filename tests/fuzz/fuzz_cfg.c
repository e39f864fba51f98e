/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libFuzzer target for the rules compiler. The input is one YAML file as `apply -f`
 * reads it. Besides memory safety and leaks (ASan/LSan, on error paths too) it checks
 * the compiler's promises: every error is "FILE:LINE:COL: message"; a failed parse
 * leaves the caller's set untouched; a compiled half is self-consistent (indices in
 * range, the lookups find what was compiled) and describable; and the sources kept in
 * a rm_cfg_src half re-parse into documents that compile to the very same bytes, since
 * every later `apply` recompiles from them.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_cfg: check failed at line %d: %s\n", __LINE__, #c);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define ORIGIN "fuzz.yaml"

/* "ORIGIN:LINE:COL: message" with LINE, COL >= 1 and a non-empty message. */
static void check_err(int r, const char *err)
{
	const char *p = err;
	char *end;
	unsigned long v;

	CHECK(r < 0);
	if (r == -ENOMEM)
		return;
	if (strncmp(p, ORIGIN ":", sizeof(ORIGIN))) {
		fprintf(stderr, "fuzz_cfg: error without position: \"%s\"\n", err);
		abort();
	}
	p += sizeof(ORIGIN);
	for (int i = 0; i < 2; i++) {
		v = strtoul(p, &end, 10);
		if (end == p || *end != ':' || v < 1) {
			fprintf(stderr, "fuzz_cfg: bad position in \"%s\"\n", err);
			abort();
		}
		p = end + 1;
	}
	if (*p != ' ' || !p[1]) {
		fprintf(stderr, "fuzz_cfg: empty message in \"%s\"\n", err);
		abort();
	}
}

static void check_half(const struct rm_cfg *c, FILE *null)
{
	CHECK(c->magic == RM_CFG_MAGIC && c->abi_version == RM_CFG_ABI_VERSION);
	CHECK(c->n_services <= c->cap[RM_CFG_T_SERVICES] && c->n_rules <= c->cap[RM_CFG_T_RULES]);
	CHECK(c->n_subsets <= c->cap[RM_CFG_T_SUBSETS] &&
	      c->n_endpoints <= c->cap[RM_CFG_T_ENDPOINTS]);
	CHECK(c->strtab_len >= 1 && c->strtab_len <= c->cap[RM_CFG_T_STRTAB] && !c->strtab[0]);
	CHECK(!c->strtab[c->strtab_len - 1]);
	for (uint32_t i = 0; i < c->n_services; i++) {
		const struct rm_cfg_service *s = &c->services[i];

		CHECK(cfg_service_find(c, cfg_str(c, s->host_off)) == (int)i);
		CHECK(s->rule_first + s->rule_count <= c->n_rules);
		for (uint32_t k = 0; k < s->rule_count; k++)
			CHECK(c->rules[s->rule_first + k].service == i);
		CHECK(s->subset_first + s->subset_count <= c->n_subsets);
		CHECK(s->endpoint_first + s->endpoint_count <= c->n_endpoints);
		CHECK(cfg_service_describe(c, i, null) == 0);
	}
	for (uint32_t i = 0; i < c->n_rules; i++) {
		const struct rm_cfg_rule *r = &c->rules[i];

		CHECK(r->service < c->n_services);
		CHECK(cfg_rule_find(c, cfg_str(c, r->name_off), cfg_str(c, r->ns_off)) >= 0);
		CHECK(cfg_rule_describe(c, i, null) == 0);
	}
	for (uint32_t i = 0; i < c->n_subsets; i++)
		CHECK(cfg_subset_describe(c, i, null) == 0);
	for (uint32_t i = 0; i < c->n_endpoints; i++)
		CHECK(cfg_endpoint_describe(c, i, null) == 0);
	CHECK(cfg_rule_describe(c, c->n_rules, null) == -ENOENT);
	CHECK(cfg_service_describe(c, c->n_services, null) == -ENOENT);
	CHECK(cfg_subset_describe(c, c->n_subsets, null) == -ENOENT);
	CHECK(cfg_endpoint_describe(c, c->n_endpoints, null) == -ENOENT);
	CHECK(cfg_describe_all(c, null) == 0);
}

/* Name the first differing byte's place, to make a mismatch quick to diagnose. */
static void report_diff(const struct rm_cfg *a, const struct rm_cfg *b)
{
	static const struct {
		const char *name;
		size_t off, size;
	} part[] = {
#define P(f) {#f, offsetof(struct rm_cfg, f), sizeof(((struct rm_cfg *)0)->f[0])}
	    P(services), P(rules),     P(matches), P(conds),  P(targets), P(hdrops),
	    P(subsets),	 P(endpoints), P(members), P(labels), P(strtab),
#undef P
	};
	const unsigned char *x = (const void *)a, *y = (const void *)b;
	size_t i = 0, k = 0;

	while (x[i] == y[i])
		i++;
	while (k < sizeof(part) / sizeof(part[0]) && part[k].off <= i)
		k++;
	if (!k) {
		fprintf(stderr,
			"fuzz_cfg: recompiling the stored sources differs in the header "
			"at byte %zu\n",
			i);
		return;
	}
	k--;
	fprintf(stderr, "fuzz_cfg: recompiling the stored sources differs in %s[%zu] byte %zu",
		part[k].name, (i - part[k].off) / part[k].size, (i - part[k].off) % part[k].size);
	if (part[k].size == 1)
		fprintf(stderr, ": \"%s\" vs \"%s\"", &a->strtab[i - part[k].off],
			&b->strtab[i - part[k].off]);
	fprintf(stderr, "\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* each is ~1 MiB: allocated once, fully overwritten by every compile/pack */
	static struct rm_cfg *a, *b;
	static struct rm_cfg_src *src;
	static FILE *null;
	struct cfg_docs docs = {0}, back = {0}, again = {0};
	char err[512];
	char *text;
	int r;

	if (!a) {
		a = calloc(1, sizeof(*a)); /* cfg_compile frees what it is given */
		b = calloc(1, sizeof(*b));
		src = calloc(1, sizeof(*src));
		null = fopen("/dev/null", "w");
		CHECK(a && b && src && null);
	}
	/* a private copy of the exact length, so ASan sees any read past the end */
	text = malloc(size ? size : 1);
	CHECK(text);
	memcpy(text, data, size);

	err[0] = '\0';
	r = cfg_docs_parse(&docs, ORIGIN, text, size, err, sizeof(err));
	if (r) {
		check_err(r, err);
		CHECK(docs.n == 0 && docs.v == NULL);
		goto out;
	}
	err[0] = '\0';
	r = cfg_compile(&docs, a, err, sizeof(err));
	if (r) {
		check_err(r, err);
		goto out;
	}
	check_half(a, null);

	/* the stored sources must give back the same configuration */
	err[0] = '\0';
	r = cfg_src_pack(&docs, src, err, sizeof(err));
	if (r) {
		check_err(r, err);
		goto out;
	}
	CHECK(src->n_docs == docs.n);
	err[0] = '\0';
	r = cfg_src_unpack(src, &back, err, sizeof(err));
	if (r) {
		fprintf(stderr, "fuzz_cfg: stored sources do not re-parse: %s\n", err);
		abort();
	}
	CHECK(back.n == docs.n);
	for (size_t i = 0; i < docs.n; i++)
		CHECK(back.v[i].kind == docs.v[i].kind && !strcmp(back.v[i].ns, docs.v[i].ns) &&
		      !strcmp(back.v[i].name, docs.v[i].name) &&
		      back.v[i].first_line == docs.v[i].first_line);
	err[0] = '\0';
	r = cfg_compile(&back, b, err, sizeof(err));
	if (r) {
		fprintf(stderr, "fuzz_cfg: stored sources do not recompile: %s\n", err);
		abort();
	}
	CHECK(cfg_blob_size(a) == cfg_blob_size(b));
	if (!cfg_equal(a, b)) {
		report_diff(a, b);
		abort();
	}
	/* re-applying the same input over the store (stored documents it carries
	 * again are not re-parsed) gives the same documents and configuration */
	cfg_docs_free(&back);
	CHECK(cfg_docs_parse(&again, ORIGIN, text, size, err, sizeof(err)) == 0);
	err[0] = '\0';
	r = cfg_src_merge(src, &again, &back, err, sizeof(err));
	if (r) {
		fprintf(stderr, "fuzz_cfg: re-apply over the store failed: %s\n", err);
		abort();
	}
	CHECK(back.n == docs.n);
	for (size_t i = 0; i < docs.n; i++)
		CHECK(back.v[i].ir && back.v[i].kind == docs.v[i].kind &&
		      !strcmp(back.v[i].ns, docs.v[i].ns) &&
		      !strcmp(back.v[i].name, docs.v[i].name));
	CHECK(cfg_compile(&back, b, err, sizeof(err)) == 0);
	CHECK(cfg_equal(a, b));
out:
	cfg_docs_free(&docs);
	cfg_docs_free(&again);
	cfg_docs_free(&back);
	free(text);
	return 0;
}
