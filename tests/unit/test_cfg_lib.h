/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers shared by the cfg unit tests: find tests/cfg, read files, parse
 * files into a document set. Header-only so each test binary stays one .c. */
#ifndef RM_TEST_CFG_LIB_H
#define RM_TEST_CFG_LIB_H

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cfg.h"

/* tests/cfg: $RM_TEST_CFG_DIR, ./tests/cfg, or relative to the binary
 * (BUILD/tests/test_x -> ../../tests/cfg). */
static inline const char *cfgt_dir(void)
{
	static char dir[1024];
	char exe[PATH_MAX];
	ssize_t n;

	if (dir[0])
		return dir;
	if (getenv("RM_TEST_CFG_DIR")) {
		snprintf(dir, sizeof(dir), "%.1000s", getenv("RM_TEST_CFG_DIR"));
		return dir;
	}
	if (!access("tests/cfg/routerule-v1.yaml", R_OK)) {
		snprintf(dir, sizeof(dir), "tests/cfg");
		return dir;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		snprintf(dir, sizeof(dir), "%.990s/../../tests/cfg", dirname(exe));
	}
	return dir;
}

/* Whole file, NUL-terminated; NULL if unreadable. */
static inline char *cfgt_read(const char *rel, size_t *len)
{
	char path[2048];
	FILE *f;
	char *buf;
	long n;

	if (strlen(cfgt_dir()) + strlen(rel) + 2 > sizeof(path))
		return NULL;
	snprintf(path, sizeof(path), "%.1000s/%.1000s", cfgt_dir(), rel);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = 0;
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* Parse tests/cfg/<rel> (origin = rel) into docs; 0 or -errno with err. */
static inline int cfgt_parse(struct cfg_docs *docs, const char *rel, char *err, size_t errlen)
{
	size_t len;
	char *text = cfgt_read(rel, &len);
	int r;

	if (!text) {
		snprintf(err, errlen, "cannot read %.200s/%.200s", cfgt_dir(), rel);
		return -ENOENT;
	}
	r = cfg_docs_parse(docs, rel, text, len, err, errlen);
	free(text);
	return r;
}

/* Parse a NULL-terminated list of files and merge them in order. */
static inline int cfgt_load(struct cfg_docs *docs, const char *const *files, char *err,
			    size_t errlen)
{
	for (; *files; files++) {
		struct cfg_docs one = {0};
		int r = cfgt_parse(&one, *files, err, errlen);

		if (r) {
			cfg_docs_free(&one);
			return r;
		}
		if ((r = cfg_docs_merge(docs, &one)))
			return r;
	}
	return 0;
}

#endif /* RM_TEST_CFG_LIB_H */
