/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Local pods to their kubelet cgroups, written into rm_workload (k8s_pods.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <bpf/bpf.h>

#include "common/pin.h"
#include "common/util.h"
#include "common/wlrec.h"
#include "k8s/k8s_pods.h"

/* QoS-class cgroups kubelet puts below the pods' parent, one level deep. */
#define MAX_WATCHES 8

struct pod_ent {
	struct rm_workload rec;	  /* from the object; updated_ns 0 */
	unsigned long long cg_id; /* the record's key in the map, 0 while none */
	bool dirty;		  /* rec changed since it was written */
};

struct pod_cg {
	char uid[RM_WL_UID_LEN];
	unsigned long long id;
};

struct k8s_pods {
	char *dir;
	struct pin_map map;
	int ino_fd;
	struct pod_ent *ents;
	size_t n, cap;
	struct pod_cg *cgs; /* the last scan */
	size_t ncg, cgcap;
	bool rescan;
	uint64_t scan_ns; /* mono_ns of the last scan */
	struct k8s_pods_stat st;
};

static void set_error(struct k8s_pods *p, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->st.last_error, sizeof(p->st.last_error), fmt, ap);
	va_end(ap);
	(void)r;
	p->st.errors++;
}

static const char *str_at(json_t *o, const char *k1, const char *k2)
{
	json_t *v = json_object_get(o, k1);

	if (k2)
		v = json_object_get(v, k2);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Record fields are informative beyond their length: a longer name is cut. */
static void set_cut(char *dst, size_t len, const char *s)
{
	if (s && wlrec_set(dst, len, s)) {
		memcpy(dst, s, len - 1);
		dst[len - 1] = '\0';
	}
}

int k8s_pod_record(json_t *pod, struct rm_workload *w, char *err, size_t errlen)
{
	json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
	json_t *labels = json_object_get(meta, "labels"), *owners, *o, *v;
	const char *uid = str_at(meta, "uid", NULL), *ns = str_at(meta, "namespace", NULL);
	const char *name = str_at(meta, "name", NULL), *key, *sa;
	size_t i;

	memset(w, 0, sizeof(*w));
	if (!uid || !*uid || !ns || !*ns) {
		snprintf(err, errlen, "pod %s/%s: no metadata.uid or metadata.namespace",
			 ns ? ns : "?", name ? name : "?");
		return -EINVAL;
	}
	if (wlrec_set(w->uid, sizeof(w->uid), uid)) {
		snprintf(err, errlen, "pod %s/%s: uid '%s' is not a pod UID", ns, name ? name : "?",
			 uid);
		return -EINVAL;
	}
	set_cut(w->ns, sizeof(w->ns), ns);
	set_cut(w->pod, sizeof(w->pod), name);
	sa = str_at(spec, "serviceAccountName", NULL);
	set_cut(w->sa, sizeof(w->sa), sa ? sa : str_at(spec, "serviceAccount", NULL));
	if (json_is_true(json_object_get(spec, "hostNetwork")))
		w->flags |= RM_WL_F_HOSTNET;

	/* The identity labels first, from the object: they hold even when the record's
	 * label list is cut. */
	set_cut(w->app, sizeof(w->app), str_at(labels, "app", NULL));
	if (!*w->app)
		set_cut(w->app, sizeof(w->app), str_at(labels, "app.kubernetes.io/name", NULL));
	set_cut(w->version, sizeof(w->version), str_at(labels, "version", NULL));
	if (!*w->version)
		set_cut(w->version, sizeof(w->version),
			str_at(labels, "app.kubernetes.io/version", NULL));
	set_cut(w->canon_svc, sizeof(w->canon_svc),
		str_at(labels, "service.istio.io/canonical-name", NULL));
	set_cut(w->canon_rev, sizeof(w->canon_rev),
		str_at(labels, "service.istio.io/canonical-revision", NULL));
	json_object_foreach(labels, key, v)
	{
		if (!json_is_string(v))
			continue;
		if (wlrec_add_label(w, key, strlen(key), json_string_value(v)) == -E2BIG)
			w->flags |= RM_WL_F_LABELS_TRUNC;
	}

	owners = json_object_get(meta, "ownerReferences");
	json_array_foreach(owners, i, o)
	{
		const char *kind = str_at(o, "kind", NULL), *oname = str_at(o, "name", NULL);

		if (!json_is_true(json_object_get(o, "controller")) || !kind || !oname)
			continue;
		if (wlrec_workload_name(kind, oname, str_at(labels, "pod-template-hash", NULL),
					w->workload, sizeof(w->workload)))
			set_cut(w->workload, sizeof(w->workload), oname);
		break;
	}
	/* Cut above, so the defaults always fit. */
	wlrec_defaults(w);
	return 0;
}

static struct pod_ent *find(struct k8s_pods *p, const char *uid)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->ents[i].rec.uid, uid))
			return &p->ents[i];
	return NULL;
}

static unsigned long long cg_of(const struct k8s_pods *p, const char *uid)
{
	for (size_t i = 0; i < p->ncg; i++)
		if (!strcmp(p->cgs[i].uid, uid))
			return p->cgs[i].id;
	return 0;
}

static int map_delete(struct k8s_pods *p, unsigned long long id)
{
	__u64 key = id;

	if (bpf_map_delete_elem(p->map.fd, &key) && errno != ENOENT) {
		int r = -errno;

		set_error(p, r, "deleting cgroup id %llu from %s: %s", id, RM_MAP_WORKLOAD,
			  strerror(-r));
		return r;
	}
	p->st.deletes++;
	return 0;
}

static int map_write(struct k8s_pods *p, struct pod_ent *e, unsigned long long id)
{
	struct rm_workload w = e->rec;
	__u64 key = id;

	w.updated_ns = realtime_ns();
	if (bpf_map_update_elem(p->map.fd, &key, &w, BPF_ANY)) {
		int r = -errno;

		set_error(p, r, "writing %s/%s (cgroup id %llu) to %s: %s%s", w.ns, w.pod, id,
			  RM_MAP_WORKLOAD, strerror(-r), r == -E2BIG ? " (the map is full)" : "");
		return r;
	}
	p->st.writes++;
	return 0;
}

/* Room for one more element in the array *arr of n used, *cap allocated. */
static int grow(void **arr, size_t n, size_t *cap, size_t elem)
{
	size_t c = *cap ? *cap * 2 : 32;
	void *a;

	if (n < *cap)
		return 0;
	if (!(a = reallocarray(*arr, c, elem)))
		return -ENOMEM;
	*arr = a;
	*cap = c;
	return 0;
}

static int add_cg(struct k8s_pods *p, const char *uid, unsigned long long id)
{
	if (grow((void **)&p->cgs, p->ncg, &p->cgcap, sizeof(*p->cgs)))
		return -ENOMEM;
	memcpy(p->cgs[p->ncg].uid, uid, sizeof(p->cgs[p->ncg].uid));
	p->cgs[p->ncg++].id = id;
	return 0;
}

/* The pod cgroups in dir (fd); with depth 0 also those one level below (the QoS
 * cgroups), each of which is watched. */
static void scan_dir(struct k8s_pods *p, int fd, const char *path, int depth)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;

	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char uid[RM_WL_UID_LEN];
		struct stat st;

		if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode))
			continue;
		if (wlrec_uid_from_cgroup(de->d_name, uid, sizeof(uid))) {
			if (add_cg(p, uid, (unsigned long long)st.st_ino))
				set_error(p, -ENOMEM, "out of memory scanning %s", path);
		} else if (depth == 0) {
			char sub[4096];
			int sfd;

			if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) >=
			    sizeof(sub))
				continue;
			if (p->ino_fd >= 0)
				inotify_add_watch(p->ino_fd, sub,
						  IN_CREATE | IN_DELETE | IN_MOVED_FROM |
						      IN_MOVED_TO | IN_ONLYDIR);
			sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sfd >= 0)
				scan_dir(p, sfd, sub, 1);
		}
	}
	closedir(d);
}

static void scan(struct k8s_pods *p)
{
	int fd;

	p->ncg = 0;
	p->scan_ns = mono_ns();
	p->rescan = false;
	p->st.scans++;
	if (p->ino_fd >= 0)
		inotify_add_watch(p->ino_fd, p->dir,
				  IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR);
	fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		/* Not there yet (kubelet not started): looked for again at the next scan. */
		if (errno != ENOENT)
			set_error(p, -errno, "%s: %s", p->dir, strerror(errno));
		p->st.cgroups = 0;
		return;
	}
	scan_dir(p, fd, p->dir, 0);
	p->st.cgroups = (unsigned)p->ncg;
}

/* Records whose UID names no pod cgroup under the directory: pods that went away
 * while no sync ran (or whose cgroup just went). */
static int prune(struct k8s_pods *p)
{
	__u64 key, next, *prev = NULL;
	struct rm_workload w;
	int rc = 0, r;

	while (!bpf_map_get_next_key(p->map.fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(p->map.fd, &key, &w))
			continue;
		w.uid[sizeof(w.uid) - 1] = '\0';
		if (!*w.uid || cg_of(p, w.uid) == key)
			continue;
		if (find(p, w.uid) && find(p, w.uid)->cg_id == key)
			continue; /* ours, handled by sync_map */
		if ((r = map_delete(p, key)))
			rc = r;
	}
	return rc;
}

static int sync_map(struct k8s_pods *p)
{
	unsigned mapped = 0;
	int rc = 0, r;

	for (size_t i = 0; i < p->n; i++) {
		struct pod_ent *e = &p->ents[i];
		unsigned long long id = cg_of(p, e->rec.uid);

		if (e->cg_id && e->cg_id != id) {
			if ((r = map_delete(p, e->cg_id)))
				rc = r;
			e->cg_id = 0;
		}
		if (id && (e->cg_id != id || e->dirty)) {
			if ((r = map_write(p, e, id))) {
				rc = r;
				continue;
			}
			e->cg_id = id;
			e->dirty = false;
		}
		if (e->cg_id)
			mapped++;
	}
	p->st.mapped = mapped;
	return rc;
}

struct k8s_pods *k8s_pods_new(const char *cgroup_dir, const char *pin_dir, char *err, size_t errlen)
{
	struct k8s_pods *p = calloc(1, sizeof(*p));
	int r;

	if (!p || !(p->dir = strdup(cgroup_dir))) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r = pin_open(&p->map, PIN_WORKLOAD, pin_dir, 0, err, errlen);
	if (r) {
		free(p->dir);
		free(p);
		return NULL;
	}
	p->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	p->rescan = true;
	return p;
}

int k8s_pods_update(struct k8s_pods *p, json_t *pod)
{
	struct rm_workload w;
	struct pod_ent *e;
	char why[256];
	int r = k8s_pod_record(pod, &w, why, sizeof(why));

	if (r) {
		set_error(p, r, "%s", why);
		return r;
	}
	e = find(p, w.uid);
	if (!e) {
		if (grow((void **)&p->ents, p->n, &p->cap, sizeof(*p->ents)))
			return -ENOMEM;
		e = &p->ents[p->n++];
		memset(e, 0, sizeof(*e));
		e->dirty = true;
	} else if (memcmp(&e->rec, &w, sizeof(w))) {
		e->dirty = true;
	}
	e->rec = w;
	p->st.pods = (unsigned)p->n;
	return 0;
}

int k8s_pods_delete(struct k8s_pods *p, json_t *pod)
{
	const char *uid = str_at(json_object_get(pod, "metadata"), "uid", NULL);
	struct pod_ent *e = uid ? find(p, uid) : NULL;

	if (!e)
		return -ENOENT;
	if (e->cg_id)
		map_delete(p, e->cg_id);
	*e = p->ents[--p->n];
	p->st.pods = (unsigned)p->n;
	return 0;
}

int k8s_pods_fd(const struct k8s_pods *p)
{
	return p->ino_fd;
}

int k8s_pods_step(struct k8s_pods *p)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int r1, r2;

	if (p->ino_fd >= 0)
		while (read(p->ino_fd, buf, sizeof(buf)) > 0)
			p->rescan = true; /* any change below: rescan the lot, it is small */
	if (p->rescan || mono_ns() - p->scan_ns >= K8S_PODS_RESCAN_MS * 1000000ull) {
		scan(p);
		r1 = sync_map(p);
		r2 = prune(p);
		return r1 ? r1 : r2;
	}
	return sync_map(p);
}

const struct k8s_pods_stat *k8s_pods_stat(const struct k8s_pods *p)
{
	return &p->st;
}

void k8s_pods_free(struct k8s_pods *p)
{
	if (!p)
		return;
	if (p->ino_fd >= 0)
		close(p->ino_fd);
	pin_close(&p->map);
	free(p->ents);
	free(p->cgs);
	free(p->dir);
	free(p);
}
