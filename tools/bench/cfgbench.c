/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * In-process timing of what `ringmesh apply` does besides touching the maps:
 * parse the file, merge over the stored sources (cfg_src_merge), compile, pack
 * the sources, compare with the previous half: the CPU part of an apply without
 * the maps. Built by tools/bench/cfg.sh --inproc.
 * Prints "first=MS unchanged=MS changed=MS" (CPU-bound wall ms, one run each).
 * Usage: cfgbench FILE CHANGED_FILE
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cfg.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = 0;
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* One apply of path over *src (updated); *cfg holds the previous half. */
static int apply(const char *path, struct rm_cfg *cfg, struct rm_cfg *prev, struct rm_cfg_src *src,
		 struct rm_cfg_src *nsrc, double *ms, bool *changed)
{
	struct cfg_docs add = {0}, cur = {0};
	char err[512] = "";
	size_t len = 0;
	char *text = slurp(path, &len);
	double t0 = now_ms();
	int r;

	if (!text)
		return -errno;
	r = cfg_docs_parse(&add, path, text, len, err, sizeof(err));
	if (!r)
		r = cfg_src_merge(src, &add, &cur, err, sizeof(err));
	if (!r)
		r = cfg_compile(&cur, cfg, err, sizeof(err));
	if (!r)
		r = cfg_src_pack(&cur, nsrc, err, sizeof(err));
	if (!r) {
		struct rm_cfg t;
		struct rm_cfg_src ts;

		*changed = !cfg_equal(cfg, prev) || nsrc->used != src->used ||
			   memcmp(nsrc->text, src->text, nsrc->used);
		/* the new one becomes the previous one: swap, nothing leaks */
		t = *prev;
		*prev = *cfg;
		*cfg = t;
		ts = *src;
		*src = *nsrc;
		*nsrc = ts;
	}
	*ms = now_ms() - t0;
	if (r)
		fprintf(stderr, "cfgbench: %s\n", err);
	cfg_docs_free(&add);
	cfg_docs_free(&cur);
	free(text);
	return r;
}

int main(int argc, char **argv)
{
	struct rm_cfg *cfg = calloc(1, sizeof(*cfg)), *prev = calloc(1, sizeof(*prev));
	struct rm_cfg_src *src = calloc(1, sizeof(*src)), *nsrc = calloc(1, sizeof(*nsrc));
	double a, b, c;
	bool ca, cb, cc;

	if (argc != 3) {
		fprintf(stderr, "usage: cfgbench FILE CHANGED_FILE\n");
		return 2;
	}
	if (!cfg || !prev || !src || !nsrc)
		return 1;
	if (apply(argv[1], cfg, prev, src, nsrc, &a, &ca) ||
	    apply(argv[1], cfg, prev, src, nsrc, &b, &cb) ||
	    apply(argv[2], cfg, prev, src, nsrc, &c, &cc))
		return 1;
	if (!ca || cb || !cc) {
		fprintf(stderr, "cfgbench: changed flags %d %d %d, want 1 0 1\n", ca, cb, cc);
		return 1;
	}
	printf("first=%.0f unchanged=%.0f changed=%.0f services=%u rules=%u endpoints=%u "
	       "half_bytes=%zu src_bytes=%u\n",
	       a, b, c, prev->n_services, prev->n_rules, prev->n_endpoints, cfg_blob_size(prev),
	       src->used);
	cfg_free(cfg);
	cfg_free(prev);
	cfg_src_free(src);
	cfg_src_free(nsrc);
	free(cfg);
	free(prev);
	free(src);
	free(nsrc);
	return 0;
}
