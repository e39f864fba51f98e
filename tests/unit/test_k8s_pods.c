// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Pod identity from Pod objects (user/k8s/k8s_pods.c, user/common/wlrec.c): the
 * record Istio's rules give a pod (workload of its controller, app/version,
 * canonical service/revision), the pod UID in both kubelet cgroup drivers' names,
 * and, as root with cgroup2 and bpffs, the map written from real cgroups named as
 * kubelet names them: a pod known before its cgroup appears is written once it
 * does, a cgroup removed or a pod deleted removes the record, a stale record of a
 * gone pod is pruned and a hand-written one is left alone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <bpf/bpf.h>

#include <cmocka.h>

#include "common/pin.h"
#include "common/wlrec.h"
#include "k8s/k8s_pods.h"

#define UID1 "0f9d8e7c-1111-4a2b-9c3d-5e6f7a8b9c0d"
#define UID2 "aa9d8e7c-2222-4a2b-9c3d-5e6f7a8b9c0d"

static json_t *pod(const char *uid, const char *name, const char *owner_kind, const char *owner,
		   const char *extra_labels)
{
	char buf[4096];
	json_error_t e;
	json_t *j;

	snprintf(buf, sizeof(buf),
		 "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\","
		 "\"namespace\":\"shop\",\"uid\":\"%s\",\"labels\":{\"app\":\"reviews\","
		 "\"version\":\"v2\",\"pod-template-hash\":\"7d9f8c6b5\"%s},"
		 "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"%s\","
		 "\"name\":\"%s\",\"uid\":\"x\",\"controller\":true}]},"
		 "\"spec\":{\"serviceAccountName\":\"bookinfo-reviews\",\"nodeName\":\"n1\"}}",
		 name, uid, extra_labels ? extra_labels : "", owner_kind, owner);
	j = json_loads(buf, 0, &e);
	assert_non_null(j);
	return j;
}

static void test_workload_name(void **state)
{
	char b[64];

	assert_int_equal(
	    wlrec_workload_name("ReplicaSet", "reviews-v2-7d9f8c6b5", "7d9f8c6b5", b, sizeof(b)),
	    0);
	assert_string_equal(b, "reviews-v2");
	/* a ReplicaSet of its own (no matching hash): its name */
	assert_int_equal(wlrec_workload_name("ReplicaSet", "rs-plain", "abc", b, sizeof(b)), 0);
	assert_string_equal(b, "rs-plain");
	assert_int_equal(wlrec_workload_name("Job", "backup-28345670", NULL, b, sizeof(b)), 0);
	assert_string_equal(b, "backup");
	assert_int_equal(wlrec_workload_name("Job", "backup-1234", NULL, b, sizeof(b)), 0);
	assert_string_equal(b, "backup-1234");
	assert_int_equal(wlrec_workload_name("StatefulSet", "db", "x", b, sizeof(b)), 0);
	assert_string_equal(b, "db");
	assert_int_equal(wlrec_workload_name("StatefulSet", "db", NULL, b, 2), -E2BIG);
}

static void test_uid_from_cgroup(void **state)
{
	char u[40];

	assert_true(wlrec_uid_from_cgroup("pod" UID1, u, sizeof(u)));
	assert_string_equal(u, UID1);
	assert_true(wlrec_uid_from_cgroup(
	    "/x/kubepods-burstable-pod0f9d8e7c_1111_4a2b_9c3d_5e6f7a8b9c0d.slice", u, sizeof(u)));
	assert_string_equal(u, UID1);
	assert_true(wlrec_uid_from_cgroup("kubepods-pod0f9d8e7c_1111_4a2b_9c3d_5e6f7a8b9c0d.slice",
					  u, sizeof(u)));
	assert_false(wlrec_uid_from_cgroup("burstable", u, sizeof(u)));
	assert_false(wlrec_uid_from_cgroup("pod1234", u, sizeof(u)));
	assert_false(wlrec_uid_from_cgroup("pod" UID1 ".scope", u, sizeof(u)));
	assert_false(wlrec_uid_from_cgroup("cri-containerd-" UID1 ".scope", u, sizeof(u)));
}

static void test_pod_record(void **state)
{
	json_t *j = pod(UID1, "reviews-v2-7d9f8c6b5-x2kq9", "ReplicaSet", "reviews-v2-7d9f8c6b5",
			",\"service.istio.io/canonical-revision\":\"r7\"");
	struct rm_workload w;
	char err[256];

	assert_int_equal(k8s_pod_record(j, &w, err, sizeof(err)), 0);
	assert_string_equal(w.uid, UID1);
	assert_string_equal(w.ns, "shop");
	assert_string_equal(w.pod, "reviews-v2-7d9f8c6b5-x2kq9");
	assert_string_equal(w.workload, "reviews-v2");
	assert_string_equal(w.app, "reviews");
	assert_string_equal(w.version, "v2");
	assert_string_equal(w.canon_svc, "reviews");
	assert_string_equal(w.canon_rev, "r7");
	assert_string_equal(w.sa, "bookinfo-reviews");
	assert_int_equal(w.n_labels, 4);
	assert_string_equal(wlrec_label(&w, "version"), "v2");
	assert_int_equal(w.flags, 0);
	json_decref(j);

	j = json_loads("{\"metadata\":{\"name\":\"a\"}}", 0, NULL);
	assert_int_equal(k8s_pod_record(j, &w, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no metadata.uid"));
	json_decref(j);
}

/* ---- real cgroups and a real map ---- */

static char cg[256], pin[256];

static int cg_setup(void **state)
{
	const char *roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
	struct statfs sfs;
	struct pin_map m;
	char err[256];

	if (geteuid() || statfs("/sys/fs/bpf", &sfs) || sfs.f_type != BPF_FS_MAGIC)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		if (statfs(roots[i], &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC)
			continue;
		snprintf(cg, sizeof(cg), "%s/ringmesh-ut-pods-%d", roots[i], (int)getpid());
		break;
	}
	if (!*cg || mkdir(cg, 0755))
		return -1;
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/ringmesh-ut-pods-%d", (int)getpid());
	if (mkdir(pin, 0700) || pin_open(&m, PIN_WORKLOAD, pin, PIN_O_CREATE, err, sizeof(err))) {
		rmdir(cg);
		return -1;
	}
	pin_close(&m);
	return 0;
}

static void rmdir_f(const char *fmt, const char *a)
{
	char p[512];

	snprintf(p, sizeof(p), fmt, cg, a);
	rmdir(p);
}

static int cg_teardown(void **state)
{
	char p[512];

	rmdir_f("%s/kubepods-burstable.slice/kubepods-burstable-pod%s.slice",
		"aa9d8e7c_2222_4a2b_9c3d_5e6f7a8b9c0d");
	rmdir_f("%s/kubepods-burstable.slice%s", "");
	rmdir_f("%s/pod%s", UID1);
	rmdir_f("%s/stale-%s", "x");
	rmdir(cg);
	snprintf(p, sizeof(p), "%s/%s", pin, RM_MAP_WORKLOAD);
	unlink(p);
	rmdir(pin);
	return 0;
}

static unsigned long long ino(const char *fmt, const char *a)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), fmt, cg, a);
	if (mkdir(p, 0755) && errno != EEXIST)
		fail_msg("mkdir %s: %s", p, strerror(errno));
	assert_int_equal(stat(p, &st), 0);
	return (unsigned long long)st.st_ino;
}

static bool in_map(int fd, unsigned long long id, struct rm_workload *w)
{
	__u64 k = id;

	return !bpf_map_lookup_elem(fd, &k, w);
}

static void test_cgroups_to_map(void **state)
{
	char err[256], sys2[96];
	struct rm_workload w, hand;
	struct k8s_pods *p;
	struct pin_map m;
	unsigned long long id1, id2, stale_id, hand_id;
	json_t *p1, *p2;
	__u64 k;

	if (!*cg) {
		skip();
		return;
	}
	assert_int_equal(pin_open(&m, PIN_WORKLOAD, pin, 0, err, sizeof(err)), 0);
	/* a stale record (a gone pod's UID) and one written by hand (no UID) */
	memset(&w, 0, sizeof(w));
	strcpy(w.uid, "dead8e7c-1111-4a2b-9c3d-5e6f7a8b9c0d");
	stale_id = ino("%s/stale-%s", "x");
	k = stale_id;
	assert_int_equal(bpf_map_update_elem(m.fd, &k, &w, BPF_ANY), 0);
	memset(&hand, 0, sizeof(hand));
	strcpy(hand.ns, "by-hand");
	k = hand_id = 424242;
	assert_int_equal(bpf_map_update_elem(m.fd, &k, &hand, BPF_ANY), 0);

	p = k8s_pods_new(cg, pin, err, sizeof(err));
	assert_non_null(p);
	assert_true(k8s_pods_fd(p) >= 0);

	/* cgroupfs driver name, cgroup first */
	id1 = ino("%s/pod%s", UID1);
	p1 = pod(UID1, "reviews-v2-7d9f8c6b5-x2kq9", "ReplicaSet", "reviews-v2-7d9f8c6b5", NULL);
	assert_int_equal(k8s_pods_update(p, p1), 0);
	assert_int_equal(k8s_pods_step(p), 0);
	assert_true(in_map(m.fd, id1, &w));
	assert_string_equal(w.workload, "reviews-v2");
	assert_false(in_map(m.fd, stale_id, &w)); /* pruned */
	assert_true(in_map(m.fd, hand_id, &w));	  /* left alone */

	/* systemd driver name below a QoS cgroup, pod first: the cgroup appearing is
	 * seen through inotify, not the periodic rescan */
	p2 = pod(UID2, "ratings-v1-abc", "StatefulSet", "ratings-v1", NULL);
	assert_int_equal(k8s_pods_update(p, p2), 0);
	assert_int_equal(k8s_pods_step(p), 0);
	assert_int_equal(k8s_pods_stat(p)->mapped, 1);
	ino("%s/kubepods-burstable.slice%s", "");
	assert_int_equal(k8s_pods_step(p), 0);
	snprintf(sys2, sizeof(sys2), "kubepods-burstable-pod%s.slice",
		 "aa9d8e7c_2222_4a2b_9c3d_5e6f7a8b9c0d");
	id2 = ino("%s/kubepods-burstable.slice/%s", sys2);
	usleep(20000);
	assert_int_equal(k8s_pods_step(p), 0);
	assert_true(in_map(m.fd, id2, &w));
	assert_string_equal(w.workload, "ratings-v1");
	assert_string_equal(w.ns, "shop");
	assert_int_equal(k8s_pods_stat(p)->mapped, 2);

	/* a changed label is rewritten; a deleted pod and a removed cgroup are gone */
	json_decref(p1);
	p1 = pod(UID1, "reviews-v2-7d9f8c6b5-x2kq9", "ReplicaSet", "reviews-v2-7d9f8c6b5",
		 ",\"tier\":\"gold\"");
	assert_int_equal(k8s_pods_update(p, p1), 0);
	assert_int_equal(k8s_pods_step(p), 0);
	assert_true(in_map(m.fd, id1, &w));
	assert_string_equal(wlrec_label(&w, "tier"), "gold");
	assert_int_equal(k8s_pods_delete(p, p1), 0);
	assert_false(in_map(m.fd, id1, &w));
	rmdir_f("%s/kubepods-burstable.slice/%s", sys2);
	usleep(20000);
	assert_int_equal(k8s_pods_step(p), 0);
	assert_false(in_map(m.fd, id2, &w));
	assert_int_equal(k8s_pods_stat(p)->mapped, 0);
	assert_true(in_map(m.fd, hand_id, &w));
	assert_int_equal(k8s_pods_stat(p)->errors, 0);

	k8s_pods_free(p);
	json_decref(p1);
	json_decref(p2);
	pin_close(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_workload_name),
	    cmocka_unit_test(test_uid_from_cgroup),
	    cmocka_unit_test(test_pod_record),
	    cmocka_unit_test(test_cgroups_to_map),
	};
	int r;

	if (cg_setup(NULL))
		*cg = '\0'; /* the map test skips: not root, or no cgroup2/bpffs */
	r = cmocka_run_group_tests(tests, NULL, NULL);
	if (*cg)
		cg_teardown(NULL);
	return r;
}
