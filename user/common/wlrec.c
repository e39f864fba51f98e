/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Pod identity records, built one way for the CLI and the sync (wlrec.h). */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include "wlrec.h"

int wlrec_set(char *dst, size_t len, const char *s)
{
	if (strlen(s) >= len)
		return -E2BIG;
	strncpy(dst, s, len); /* NUL-padded, as workload.h says */
	return 0;
}

static const char *label_n(const struct rm_workload *w, const char *key, size_t klen)
{
	size_t off = 0;
	__u32 i;

	for (i = 0; i < w->n_labels && off < w->labels_len && off < sizeof(w->labels); i++) {
		const char *kv = &w->labels[off];
		size_t len = strnlen(kv, sizeof(w->labels) - off);

		if (len > klen && !strncmp(kv, key, klen) && kv[klen] == '=')
			return kv + klen + 1;
		off += len + 1;
	}
	return NULL;
}

const char *wlrec_label(const struct rm_workload *w, const char *key)
{
	return label_n(w, key, strlen(key));
}

int wlrec_add_label(struct rm_workload *w, const char *key, size_t klen, const char *value)
{
	size_t vlen = strlen(value), need = klen + 1 + vlen + 1;
	char *p;

	if (label_n(w, key, klen))
		return -EEXIST;
	if (w->labels_len > sizeof(w->labels) || need > sizeof(w->labels) - w->labels_len)
		return -E2BIG;
	p = &w->labels[w->labels_len];
	memcpy(p, key, klen);
	p[klen] = '=';
	memcpy(p + klen + 1, value, vlen + 1);
	w->labels_len += (__u32)need;
	w->n_labels++;
	return 0;
}

/* dst, when empty, takes the first of the candidates that is set. */
static int fill(char *dst, size_t len, const char *a, const char *b, const char *c)
{
	const char *v = a && *a ? a : b && *b ? b : c;

	if (*dst || !v)
		return 0;
	return wlrec_set(dst, len, v);
}

int wlrec_defaults(struct rm_workload *w)
{
	int r;

	if ((r = fill(w->app, sizeof(w->app), wlrec_label(w, "app"),
		      wlrec_label(w, "app.kubernetes.io/name"), NULL)) ||
	    (r = fill(w->version, sizeof(w->version), wlrec_label(w, "version"),
		      wlrec_label(w, "app.kubernetes.io/version"), NULL)) ||
	    (r = fill(w->workload, sizeof(w->workload), w->pod, NULL, NULL)) ||
	    (r = fill(w->canon_svc, sizeof(w->canon_svc),
		      wlrec_label(w, "service.istio.io/canonical-name"), w->app, w->workload)) ||
	    (r = fill(w->canon_rev, sizeof(w->canon_rev),
		      wlrec_label(w, "service.istio.io/canonical-revision"), w->version, "latest")))
		return r;
	return 0;
}

/* name ends in "-" and 8 to 10 digits: the length of what precedes, else 0. */
static size_t cronjob_prefix(const char *name)
{
	size_t n = strlen(name), d = 0;

	while (d < n && isdigit((unsigned char)name[n - 1 - d]))
		d++;
	if (d < 8 || d > 10 || d + 1 >= n || name[n - 1 - d] != '-')
		return 0;
	return n - 1 - d;
}

int wlrec_workload_name(const char *owner_kind, const char *owner_name,
			const char *pod_template_hash, char *buf, size_t len)
{
	size_t n = strlen(owner_name), keep = n;

	if (!strcmp(owner_kind, "ReplicaSet") && pod_template_hash && *pod_template_hash) {
		size_t h = strlen(pod_template_hash);

		if (n > h + 1 && owner_name[n - h - 1] == '-' &&
		    !strcmp(owner_name + n - h, pod_template_hash))
			keep = n - h - 1;
	} else if (!strcmp(owner_kind, "Job")) {
		size_t p = cronjob_prefix(owner_name);

		if (p)
			keep = p;
	}
	if (keep >= len)
		return -E2BIG;
	memcpy(buf, owner_name, keep);
	memset(buf + keep, 0, len - keep);
	return 0;
}

bool wlrec_uid_from_cgroup(const char *name, char *uid, size_t len)
{
	const char *base = strrchr(name, '/'), *p;
	size_t n, i;

	base = base ? base + 1 : name;
	if (!strncmp(base, "pod", 3))
		p = base + 3;
	else if (!strncmp(base, "kubepods", 8) && (p = strstr(base, "-pod")))
		p += 4;
	else
		return false;
	n = strcspn(p, ".");
	if (n != 36 || n >= len)
		return false;
	/* systemd: ".slice" must follow; cgroupfs: nothing */
	if (p[n] && strcmp(p + n, ".slice"))
		return false;
	for (i = 0; i < n; i++) {
		char c = p[i] == '_' ? '-' : p[i];

		if (!isxdigit((unsigned char)c) && c != '-')
			return false;
		uid[i] = c;
	}
	uid[n] = '\0';
	return true;
}

int wlrec_cgroup_id(const char *path, unsigned long long *id)
{
	struct statfs sfs;
	struct stat st;

	if (stat(path, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (statfs(path, &sfs))
		return -errno;
	if (sfs.f_type != CGROUP2_SUPER_MAGIC)
		return -EMEDIUMTYPE;
	*id = st.st_ino;
	return 0;
}
