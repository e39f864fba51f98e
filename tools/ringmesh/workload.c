/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh workload list|add|delete`: the pod identities of the pinned rm_workload
 * map (include/ringmesh/workload.h), keyed by the cgroup id of a pod's cgroup (the
 * inode number of its cgroup2 directory). `add` is what `ringmesh sync` does for one
 * pod, by hand: for tests, for a node without API access, and to see what the daemon
 * will match `sourceLabels` / `sourceNamespace` against.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "ringmesh/workload.h"
#include "common/pin.h"
#include "common/wlrec.h"
#include "cli.h"

/* The cgroup id of a cgroup2 directory: its inode number, as bpf_get_current_cgroup_id()
 * and bpf_get_current_ancestor_cgroup_id() report it. */
static int wl_cgroup_id(const char *path, __u64 *id)
{
	unsigned long long v;
	int r = wlrec_cgroup_id(path, &v);

	if (r == -EMEDIUMTYPE)
		p_err("%s is not on cgroup2: the key is a cgroup2 directory (a pod's cgroup "
		      "under kubepods)",
		      path);
	else if (r == -ENOTDIR)
		p_err("%s is not a cgroup directory", path);
	else if (r)
		p_err("%s: %s", path, strerror(-r));
	if (r)
		return -1;
	*id = v;
	return 0;
}

static int wl_open(bool write, struct cli_map *m)
{
	int r = cli_pin_open_mode(PIN_WORKLOAD, write, m);

	if (r == -ENOENT) {
		p_err("%s not pinned at %s: no ringmeshd runs with this pin dir (start it, or "
		      "give --pin-dir)",
		      RM_MAP_WORKLOAD, cli.pin_dir);
		return -1;
	}
	if (r == -EPROTO) {
		p_err("%s", m->why);
		return -1;
	}
	if (r) {
		p_err("cannot open %s/%s: %s", cli.pin_dir, RM_MAP_WORKLOAD, strerror(-r));
		return -1;
	}
	return 0;
}

/* Copy s into a field of len bytes; -1 after p_err() when it does not fit. */
static int wl_set(char *dst, size_t len, const char *s, const char *what)
{
	if (wlrec_set(dst, len, s)) {
		p_err("%s '%s' is too long: at most %zu characters", what, s, len - 1);
		return -1;
	}
	return 0;
}

static int wl_add_label(struct rm_workload *w, const char *kv)
{
	const char *eq = strchr(kv, '=');
	int r;

	if (!eq || eq == kv) {
		p_err("bad label '%s': want KEY=VALUE", kv);
		return -1;
	}
	/* the value may be empty, as in Kubernetes */
	r = wlrec_add_label(w, kv, (size_t)(eq - kv), eq + 1);
	if (r == -EEXIST) {
		p_err("label '%.*s' given twice", (int)(eq - kv), kv);
		return -1;
	}
	if (r) {
		p_err("labels do not fit: at most %zu bytes of KEY=VALUE pairs (one NUL each), "
		      "'%s' would need %zu",
		      sizeof(w->labels), kv, (size_t)w->labels_len + strlen(kv) + 1);
		return -1;
	}
	return 0;
}

static int wl_add(int argc, char **argv)
{
	const char *cgroup = NULL, *ns = NULL, *pod = "", *workload = NULL, *app = NULL;
	const char *version = NULL, *sa = "", *service = "", *uid = NULL;
	struct rm_workload w;
	struct timespec ts;
	struct cli_map m;
	__u64 id;
	int i, r;

	memset(&w, 0, sizeof(w));
	for (i = 0; i < argc; i++) {
		const char *opt = argv[i];
		const char **dst = NULL;

		if (!strcmp(opt, "--cgroup"))
			dst = &cgroup;
		else if (!strcmp(opt, "--namespace"))
			dst = &ns;
		else if (!strcmp(opt, "--pod"))
			dst = &pod;
		else if (!strcmp(opt, "--workload"))
			dst = &workload;
		else if (!strcmp(opt, "--app"))
			dst = &app;
		else if (!strcmp(opt, "--version"))
			dst = &version;
		else if (!strcmp(opt, "--service-account"))
			dst = &sa;
		else if (!strcmp(opt, "--service"))
			dst = &service;
		else if (!strcmp(opt, "--uid"))
			dst = &uid;
		else if (strcmp(opt, "--label")) {
			p_err("'workload add': unexpected argument '%s'", opt);
			return -1;
		}
		if (i + 1 >= argc) {
			p_err("'workload add': %s needs a value", opt);
			return -1;
		}
		if (dst)
			*dst = argv[++i];
		else if (wl_add_label(&w, argv[++i]))
			return -1;
	}
	if (!cgroup) {
		p_err("'workload add' needs --cgroup PATH");
		return -1;
	}
	if (!ns || !*ns) {
		p_err("'workload add' needs --namespace NS");
		return -1;
	}
	if (wl_set(w.ns, sizeof(w.ns), ns, "namespace") ||
	    wl_set(w.pod, sizeof(w.pod), pod, "pod") ||
	    (workload && wl_set(w.workload, sizeof(w.workload), workload, "workload")) ||
	    (app && wl_set(w.app, sizeof(w.app), app, "app")) ||
	    (version && wl_set(w.version, sizeof(w.version), version, "version")) ||
	    wl_set(w.sa, sizeof(w.sa), sa, "service account") ||
	    wl_set(w.service, sizeof(w.service), service, "service") ||
	    (uid && wl_set(w.uid, sizeof(w.uid), uid, "uid")))
		return -1;
	/* Istio's defaults for what was not given (wlrec.h); a pod with no owner is its
	 * own workload. */
	if (wlrec_defaults(&w)) {
		p_err("a label's value is too long for the record: at most %zu characters",
		      sizeof(w.app) - 1);
		return -1;
	}
	if (!uid)
		wlrec_uid_from_cgroup(cgroup, w.uid, sizeof(w.uid));
	if (wl_cgroup_id(cgroup, &id))
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	w.updated_ns = (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
	if (wl_open(true, &m))
		return -1;
	r = bpf_map_update_elem(m.fd, &id, &w, BPF_ANY) ? -errno : 0;
	cli_map_close(&m);
	if (r) {
		p_err("cannot write %s/%s: %s%s", cli.pin_dir, RM_MAP_WORKLOAD, strerror(-r),
		      r == -E2BIG ? " (the map is full)" : "");
		return -1;
	}
	if (cli.jw) {
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "cgroup_id", id);
		json_end_object(cli.jw);
	} else {
		printf("workload %s/%s: cgroup id %llu\n", w.ns, *w.pod ? w.pod : "-",
		       (unsigned long long)id);
	}
	return 0;
}

static int wl_delete(int argc, char **argv)
{
	struct cli_map m;
	__u64 id;
	int r;

	if (argc == 2 && !strcmp(argv[0], "--id")) {
		char *end;

		errno = 0;
		id = strtoull(argv[1], &end, 10);
		if (errno || !*argv[1] || *end) {
			p_err("'workload delete': bad cgroup id '%s'", argv[1]);
			return -1;
		}
	} else if (argc == 2 && !strcmp(argv[0], "--cgroup")) {
		if (wl_cgroup_id(argv[1], &id))
			return -1;
	} else {
		p_err("usage: %s workload delete { --cgroup PATH | --id ID }", cli.bin);
		return -1;
	}
	if (wl_open(true, &m))
		return -1;
	r = bpf_map_delete_elem(m.fd, &id) ? -errno : 0;
	cli_map_close(&m);
	if (r == -ENOENT) {
		p_err("no workload with cgroup id %llu at %s", (unsigned long long)id, cli.pin_dir);
		return -1;
	}
	if (r) {
		p_err("cannot delete from %s/%s: %s", cli.pin_dir, RM_MAP_WORKLOAD, strerror(-r));
		return -1;
	}
	if (cli.jw) {
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "deleted", id);
		json_end_object(cli.jw);
	} else {
		printf("deleted workload with cgroup id %llu\n", (unsigned long long)id);
	}
	return 0;
}

/* Force NUL termination of every string of a record read from the map: whoever wrote
 * it, the printers below must not run off the end. */
static void wl_terminate(struct rm_workload *w)
{
	char *f[] = {w->uid,	 w->ns,	       w->pod,	     w->workload, w->app,
		     w->version, w->canon_svc, w->canon_rev, w->sa};
	size_t lens[] = {sizeof(w->uid),       sizeof(w->ns),	     sizeof(w->pod),
			 sizeof(w->workload),  sizeof(w->app),	     sizeof(w->version),
			 sizeof(w->canon_svc), sizeof(w->canon_rev), sizeof(w->sa)};
	size_t i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		f[i][lens[i] - 1] = '\0';
	w->service[sizeof(w->service) - 1] = '\0';
	if (w->labels_len > sizeof(w->labels))
		w->labels_len = sizeof(w->labels);
}

/* The label pairs as JSON members (inside an open object) or "k=v,k=v" in buf. */
static void wl_labels_fmt(const struct rm_workload *w, char *buf, size_t len, bool json)
{
	size_t off = 0;
	__u32 i;

	buf[0] = '\0';
	for (i = 0; i < w->n_labels && off < w->labels_len; i++) {
		const char *kv = &w->labels[off];
		size_t n = strnlen(kv, w->labels_len - off);
		const char *eq = memchr(kv, '=', n);

		if (json && eq) {
			char key[256];
			size_t klen = (size_t)(eq - kv) < sizeof(key) - 1 ? (size_t)(eq - kv)
									  : sizeof(key) - 1;

			memcpy(key, kv, klen);
			key[klen] = '\0';
			json_name(cli.jw, key);
			json_string_len(cli.jw, eq + 1, n - (size_t)(eq + 1 - kv));
		} else if (!json) {
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%.*s", *buf ? "," : "",
				 (int)n, kv);
		}
		off += n + 1;
	}
}

static const char *dash(const char *s)
{
	return *s ? s : "-";
}

static int wl_list(int argc, char **argv)
{
	static const char *const hdr[] = {"CGROUP-ID",	     "NAMESPACE", "POD",
					  "WORKLOAD",	     "APP",	  "VERSION",
					  "SERVICE-ACCOUNT", "SERVICE",	  "LABELS"};
	struct cli_table *t = NULL;
	struct rm_workload w;
	__u64 key, next, *prev = NULL;
	struct cli_map m;
	size_t n = 0;
	int r = 0;

	if (argc) {
		p_err("'workload list' takes no arguments");
		return -1;
	}
	if (wl_open(false, &m))
		return -1;
	if (cli.jw) {
		json_start_array(cli.jw);
	} else if (!(t = cli_table_new(9, hdr))) {
		cli_map_close(&m);
		p_err("out of memory");
		return -1;
	}
	while (!bpf_map_get_next_key(m.fd, prev, &next)) {
		char id[24], labels[RM_WL_LABELS_LEN + 64];

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m.fd, &key, &w))
			continue; /* deleted meanwhile */
		wl_terminate(&w);
		n++;
		if (cli.jw) {
			json_start_object(cli.jw);
			json_uint_field(cli.jw, "cgroup_id", key);
			json_string_field(cli.jw, "namespace", w.ns);
			json_string_field(cli.jw, "pod", w.pod);
			json_string_field(cli.jw, "uid", w.uid);
			json_string_field(cli.jw, "workload", w.workload);
			json_string_field(cli.jw, "app", w.app);
			json_string_field(cli.jw, "version", w.version);
			json_string_field(cli.jw, "canonical_service", w.canon_svc);
			json_string_field(cli.jw, "canonical_revision", w.canon_rev);
			json_string_field(cli.jw, "service_account", w.sa);
			json_string_field(cli.jw, "service", w.service);
			json_name(cli.jw, "labels");
			json_start_object(cli.jw);
			wl_labels_fmt(&w, labels, sizeof(labels), true);
			json_end_object(cli.jw);
			json_bool_field(cli.jw, "labels_truncated", w.flags & RM_WL_F_LABELS_TRUNC);
			json_bool_field(cli.jw, "host_network", w.flags & RM_WL_F_HOSTNET);
			json_uint_field(cli.jw, "updated_ns", w.updated_ns);
			json_end_object(cli.jw);
			continue;
		}
		snprintf(id, sizeof(id), "%llu", (unsigned long long)key);
		wl_labels_fmt(&w, labels, sizeof(labels), false);
		if (w.flags & RM_WL_F_LABELS_TRUNC)
			snprintf(labels + strlen(labels), sizeof(labels) - strlen(labels),
				 "%s(truncated)", *labels ? "," : "");
		r = cli_table_rowf(t, id, dash(w.ns), dash(w.pod), dash(w.workload), dash(w.app),
				   dash(w.version), dash(w.sa), dash(w.service), dash(labels));
		if (r)
			break;
	}
	cli_map_close(&m);
	if (r) {
		cli_table_free(t);
		p_err("out of memory");
		return -1;
	}
	if (cli.jw)
		json_end_array(cli.jw);
	else if (n)
		cli_table_print(t);
	else
		printf("no workloads at %s\n", cli.pin_dir);
	cli_table_free(t);
	return 0;
}

static int wl_help(int argc, char **argv)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "Usage: %1$s workload { list | help }\n"
		 "       %1$s workload add --cgroup PATH --namespace NS [--pod NAME]\n"
		 "               [--workload W] [--app A] [--version V] [--label KEY=VALUE]...\n"
		 "               [--service-account SA] [--service FQDN] [--uid UID]\n"
		 "       %1$s workload delete { --cgroup PATH | --id ID }\n"
		 "\n"
		 "       PATH is the pod's cgroup2 directory (kubepods-<qos>-pod<uid>.slice or\n"
		 "       pod<uid>); every process below it is that pod. app and version default\n"
		 "       to the labels app and version, the workload to the pod.\n"
		 "       " HELP_SPEC_OPTIONS "\n",
		 cli.bin);
	return cli_help_print(text);
}

static const struct cli_cmd cmds[] = {
    {"list", wl_list}, {"add", wl_add}, {"delete", wl_delete}, {"help", wl_help}, {0},
};

int do_workload(int argc, char **argv)
{
	return cli_cmd_select(cmds, argc, argv, wl_help, "workload command");
}
