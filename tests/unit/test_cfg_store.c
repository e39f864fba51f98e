/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The pinned store on bpffs: create and pin, apply/merge/delete through the
 * seqlock flip, identical input keeps the generation, bad input leaves the
 * pinned configuration untouched, a second open sees the same state. Needs root
 * and bpffs: skips otherwise. Pins only under /sys/fs/bpf/rm-h3a-test-<pid>. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <sys/stat.h>
#include <bpf/bpf.h>

#include "test_cfg_lib.h"

static char pin_dir[128];
static struct rm_cfg *snap_a, *snap_b;

static void cleanup_pins(void)
{
	char p[512];
	DIR *d;
	struct dirent *e;

	if (!pin_dir[0] || !(d = opendir(pin_dir)))
		return;
	/* rm_cfg_ctl and the halves' rm_cfg-H-ID maps */
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "rm_cfg", 6)) {
			snprintf(p, sizeof(p), "%s/%s", pin_dir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(pin_dir);
}

static int apply_file(struct cfg_store *s, enum cfg_op op, const char *rel, bool *changed,
		      uint64_t *gen, char *err, size_t errlen)
{
	struct cfg_docs d = {0};
	int r = cfgt_parse(&d, rel, err, errlen);

	if (!r)
		r = cfg_store_update(s, pin_dir, op, &d, changed, gen, err, errlen);
	cfg_docs_free(&d);
	return r;
}

static void test_store(void **state)
{
	static const char *const files[] = {"routerule-v1.yaml", "routerule-v2.yaml",
					    "routerule-v3.yaml", "routerule-v4.yaml",
					    "dest-rule.yaml",	 "serviceentry.yaml"};
	struct cfg_store s, s2;
	char err[512] = "";
	bool changed;
	uint64_t gen = 0, g2;
	int r;

	if (geteuid() != 0 || access("/sys/fs/bpf", W_OK))
		skip();
	r = cfg_store_open(&s, pin_dir, true, err, sizeof(err));
	if (r == -EPERM)
		skip();
	if (r)
		fail_msg("open: %s", err);
	assert_int_equal(cfg_store_snapshot(&s, snap_a, NULL, &gen), 0);
	assert_int_equal(gen, 0);
	cfg_store_close(&s); /* drops the creation lock */

	assert_int_equal(cfg_store_open(&s, pin_dir, false, err, sizeof(err)), 0);
	for (size_t i = 0; i < 6; i++) {
		r = apply_file(&s, CFG_OP_APPLY, files[i], &changed, &gen, err, sizeof(err));
		if (r)
			fail_msg("apply %s: %s", files[i], err);
		assert_true(changed);
		assert_int_equal(gen, i + 1);
	}
	assert_int_equal(s.ctl->magic, RM_CFG_MAGIC);
	assert_int_equal(s.ctl->seq[0] % 2, 0);
	assert_int_equal(s.ctl->seq[1] % 2, 0);
	assert_int_equal(cfg_store_snapshot(&s, snap_a, NULL, &g2), 0);
	assert_int_equal(g2, 6);
	assert_int_equal(snap_a->n_rules, 4);
	assert_int_equal(snap_a->n_endpoints, 3);

	/* identical input: no flip */
	assert_int_equal(
	    apply_file(&s, CFG_OP_APPLY, "routerule-v3.yaml", &changed, &gen, err, sizeof(err)), 0);
	assert_false(changed);
	assert_int_equal(gen, 6);
	assert_int_equal(s.ctl->generation, 6);

	/* bad input, caught by the parser and by the compiler: nothing changes */
	assert_int_equal(apply_file(&s, CFG_OP_APPLY, "bad/03-weights-90.yaml", &changed, &gen, err,
				    sizeof(err)),
			 -EINVAL);
	assert_int_equal(apply_file(&s, CFG_OP_APPLY, "bad/17-undefined-subset.yaml", &changed,
				    &gen, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "17-undefined-subset.yaml:10:7: subset \"v9\""));
	assert_false(changed);
	assert_int_equal(s.ctl->generation, 6);
	assert_int_equal(cfg_store_snapshot(&s, snap_b, NULL, &g2), 0);
	assert_int_equal(g2, 6);
	assert_true(cfg_equal(snap_a, snap_b));

	/* a second opener (another CLI invocation) sees the same documents */
	assert_int_equal(cfg_store_open(&s2, pin_dir, false, err, sizeof(err)), 0);
	assert_int_equal(
	    apply_file(&s2, CFG_OP_DELETE, "routerule-v2.yaml", &changed, &gen, err, sizeof(err)),
	    0);
	assert_true(changed);
	assert_int_equal(gen, 7);
	cfg_store_close(&s2);
	assert_int_equal(cfg_store_snapshot(&s, snap_b, NULL, &g2), 0);
	assert_int_equal(snap_b->n_rules, 3);
	assert_int_equal(snap_b->n_docs, 5);
	assert_int_equal(cfg_rule_find(snap_b, "trans-service-featureflag", NULL), -ENOENT);

	/* deleting what is not applied fails and changes nothing */
	assert_int_equal(
	    apply_file(&s, CFG_OP_DELETE, "routerule-v2.yaml", &changed, &gen, err, sizeof(err)),
	    -ENOENT);
	assert_int_equal(s.ctl->generation, 7);

	assert_int_equal(cfg_store_delete_rule(&s, pin_dir, "trans-service-canary", NULL, &changed,
					       &gen, err, sizeof(err)),
			 0);
	assert_int_equal(gen, 8);
	assert_int_equal(cfg_store_snapshot(&s, snap_b, NULL, &g2), 0);
	assert_int_equal(snap_b->n_rules, 2);
	assert_int_equal(snap_b->generation, 8);
	cfg_store_close(&s);
}

/* A pinned map with another layout is refused, not reinterpreted. */
static void test_layout_mismatch(void **state)
{
	char dir[160], path[200], err[512];
	struct cfg_store s;
	int fd;
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_MMAPABLE);

	if (geteuid() != 0 || access("/sys/fs/bpf", W_OK))
		skip();
	snprintf(dir, sizeof(dir), "%s-bad", pin_dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, RM_MAP_CFG_CTL);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, RM_MAP_CFG_CTL, 4, 32, 1, &o);
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_pin(fd, path), 0);
	close(fd);
	assert_int_equal(cfg_store_open(&s, dir, true, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "another layout"));
	unlink(path);
	rmdir(dir);
}

static int setup(void **state)
{
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/rm-h3a-test-%d", (int)getpid());
	snap_a = calloc(1, sizeof(*snap_a));
	snap_b = calloc(1, sizeof(*snap_b));
	return snap_a && snap_b ? 0 : -1;
}

static int teardown(void **state)
{
	cleanup_pins();
	cfg_free(snap_a);
	free(snap_a);
	cfg_free(snap_b);
	free(snap_b);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_store),
	    cmocka_unit_test(test_layout_mismatch),
	};
	int r;

	alarm(120); /* a lock bug must fail the test, not hang the suite */
	r = cmocka_run_group_tests(tests, setup, teardown);

	cleanup_pins();
	if (!r && (geteuid() != 0 || access("/sys/fs/bpf", W_OK))) {
		fprintf(stderr, "test_cfg_store: skipped, needs root and a writable bpffs\n");
		return 77;
	}
	return r;
}
