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

/* n ServiceEntries, one endpoint each, as one YAML text. */
static char *many_services(unsigned n)
{
	size_t cap = (size_t)n * 512 + 1, len = 0;
	char *t = malloc(cap);

	assert_non_null(t);
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(
		    t + len, cap - len,
		    "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
		    "metadata:\n  name: svc-%u\n  namespace: grow\nspec:\n"
		    "  hosts: [svc-%u.grow.svc.cluster.local]\n"
		    "  addresses: [10.%u.%u.1]\n"
		    "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
		    "  resolution: STATIC\n"
		    "  endpoints: [{address: 10.200.%u.%u, labels: {app: svc-%u}}]\n",
		    i, i, 1 + i / 250, i % 250, i / 250, 1 + i % 250, i);
	return t;
}

static int apply_text(struct cfg_store *s, const char *dir, enum cfg_op op, const char *text,
		      bool *changed, uint64_t *gen, char *err, size_t errlen)
{
	struct cfg_docs d = {0};
	int r = cfg_docs_parse(&d, "grow.yaml", text, strlen(text), err, errlen);

	if (!r)
		r = cfg_store_update(s, dir, op, &d, changed, gen, err, errlen);
	cfg_docs_free(&d);
	return r;
}

/* A configuration larger than a half's map grows it (a new map, pinned before the
 * flip, the old one unpinned); a writer that died after creating a map and mid-write
 * leaves the live configuration alone, and the next writer removes its map. */
static void test_growth_and_crash(void **state)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_MMAPABLE);
	char dir[160], path[512], err[512] = "";
	struct cfg_store s;
	struct rm_cfg *snap = calloc(1, sizeof(*snap));
	char *small = many_services(2), *big = many_services(2000), *three = many_services(3);
	uint64_t gen, g2, id_small, id_big;
	uint32_t a, h;
	size_t len_small;
	bool changed;
	int fd;

	assert_non_null(snap);
	if (geteuid() != 0 || access("/sys/fs/bpf", W_OK))
		skip();
	snprintf(dir, sizeof(dir), "%s-grow", pin_dir);
	assert_int_equal(cfg_store_open(&s, dir, true, err, sizeof(err)), 0);
	if (apply_text(&s, dir, CFG_OP_APPLY, small, &changed, &gen, err, sizeof(err)))
		fail_msg("small: %s", err);
	a = s.ctl->active;
	id_small = s.ctl->half_id[a];
	len_small = s.half[a].len;
	assert_int_equal(len_small, RM_CFG_CHUNK); /* sized by what was applied */

	/* 2,000 services do not fit the other half's (absent) or the first map: grown */
	if (apply_text(&s, dir, CFG_OP_APPLY, big, &changed, &gen, err, sizeof(err)))
		fail_msg("big: %s", err);
	assert_true(changed);
	assert_int_equal(gen, 2);
	a = s.ctl->active;
	id_big = s.ctl->half_id[a];
	assert_true(id_big > id_small);
	assert_true(s.half[a].len > 16 * len_small);
	assert_int_equal(cfg_store_snapshot(&s, snap, NULL, &g2), 0);
	assert_int_equal(g2, 2);
	assert_int_equal(snap->n_services, 2000);

	/* crash: a writer created and pinned a map for the inactive half and died
	 * mid-write (seq odd), before the flip */
	h = !a;
	snprintf(path, sizeof(path), "%s/%s-%u-%llu", dir, RM_MAP_CFG, h,
		 (unsigned long long)(id_big + 1));
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rm_cfg_crash", 4, RM_CFG_CHUNK, 4, &o);
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_pin(fd, path), 0);
	close(fd);
	s.ctl->seq[h] |= 1;
	assert_int_equal(cfg_store_snapshot(&s, snap, NULL, &g2), 0);
	assert_int_equal(g2, 2); /* the old configuration is live */
	assert_int_equal(snap->n_services, 2000);

	/* the next writer unpins the orphan and publishes; a 4x too big half shrinks */
	if (apply_text(&s, dir, CFG_OP_REPLACE, small, &changed, &gen, err, sizeof(err)))
		fail_msg("replace: %s", err);
	assert_int_equal(gen, 3);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(cfg_store_snapshot(&s, snap, NULL, &g2), 0);
	assert_int_equal(snap->n_services, 2);
	assert_int_equal(s.ctl->seq[0] % 2, 0);
	assert_int_equal(s.ctl->seq[1] % 2, 0);
	if (apply_text(&s, dir, CFG_OP_REPLACE, three, &changed, &gen, err, sizeof(err)))
		fail_msg("shrink: %s", err);
	assert_int_equal(s.half[s.ctl->active].len, RM_CFG_CHUNK);
	cfg_store_close(&s);

	/* only ctl and the two live halves are left pinned */
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		int n = 0;

		assert_non_null(d);
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
				unlink(path);
				n++;
			}
		closedir(d);
		assert_int_equal(n, 3);
	}
	rmdir(dir);
	cfg_free(snap);
	free(snap);
	free(small);
	free(big);
	free(three);
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

/* A ServiceEntry of a cluster whose domain is corp.local, and a VirtualService and
 * DestinationRule naming it by its short name, as users write them. */
static const char domain_docs[] =
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: reviews, namespace: bookinfo}\n"
    "spec:\n  hosts: [reviews.bookinfo.svc.corp.local]\n  addresses: [10.96.7.7]\n"
    "  ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
    "  endpoints:\n  - {address: 10.244.1.1, labels: {version: v1}}\n"
    "  - {address: 10.244.1.2, labels: {version: v2}}\n"
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
    "metadata: {name: reviews, namespace: bookinfo}\n"
    "spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"
    "  - {name: v2, labels: {version: v2}}\n"
    "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
    "metadata: {name: reviews, namespace: bookinfo}\n"
    "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: "
    "v2}\n";

static const char other_doc[] =
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: ratings, namespace: bookinfo}\n"
    "spec:\n  hosts: [ratings.bookinfo.svc.corp.local]\n  addresses: [10.96.7.8]\n"
    "  ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
    "  endpoints:\n  - {address: 10.244.1.3}\n";

/* The cluster domain: short names resolve in the store's; a write parsed in another is
 * refused unless it sets the domain, which re-resolves every stored document. */
static void test_domain(void **state)
{
	char dir[160], err[512] = "", d[RM_CFG_DOMAIN_LEN];
	struct cfg_store s;
	bool changed;
	uint64_t gen = 0, g2;

	/* what a kubelet's --cluster-domain may be */
	assert_int_equal(cfg_domain_check("cluster.local", err, sizeof(err)), 0);
	assert_int_equal(cfg_domain_check("corp.example-1.io", err, sizeof(err)), 0);
	assert_int_equal(cfg_domain_check("local", err, sizeof(err)), 0);
	assert_int_equal(cfg_domain_check("Corp.local", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a DNS name"));
	assert_int_equal(cfg_domain_check("a..b", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg_domain_check("-a.b", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg_domain_check("a-.b", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg_domain_check("a.b.", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg_domain_check("", err, sizeof(err)), -EINVAL);
	assert_int_equal(
	    cfg_domain_check("a123456789012345678901234567890.b12345678901234567890123456789012",
			     err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "1 to 63 characters"));
	assert_int_equal(cfg_set_domain("x_y"), -EINVAL);
	assert_string_equal(cfg_domain(), "cluster.local");

	if (geteuid() != 0 || access("/sys/fs/bpf", W_OK))
		skip();
	snprintf(dir, sizeof(dir), "%s-dom", pin_dir);
	assert_int_equal(cfg_store_open(&s, dir, true, err, sizeof(err)), 0);
	cfg_store_domain(&s, d);
	assert_string_equal(d, "cluster.local");

	/* in cluster.local "reviews" is another service than the entry's host */
	assert_int_equal(
	    apply_text(&s, dir, CFG_OP_APPLY, domain_docs, &changed, &gen, err, sizeof(err)), 0);
	assert_int_equal(cfg_store_snapshot(&s, snap_a, NULL, &g2), 0);
	assert_int_equal(snap_a->n_services, 2);

	/* parsed in corp.local and told to set it: one service, the rule on the entry */
	assert_int_equal(cfg_set_domain("corp.local"), 0);
	s.set_domain = true;
	assert_int_equal(
	    apply_text(&s, dir, CFG_OP_APPLY, other_doc, &changed, &gen, err, sizeof(err)), 0);
	assert_true(changed);
	cfg_store_domain(&s, d);
	assert_string_equal(d, "corp.local");
	assert_int_equal(cfg_store_snapshot(&s, snap_a, NULL, &g2), 0);
	/* the stored VirtualService was resolved again: reviews and ratings, no third */
	assert_int_equal(snap_a->n_services, 2);
	assert_int_equal(cfg_rule_find(snap_a, "reviews", "bookinfo"), 0);
	assert_int_equal(snap_a->n_rules, 1);

	/* a write parsed in another domain, not setting it, is refused: nothing changes */
	s.set_domain = false;
	assert_int_equal(cfg_set_domain(NULL), 0);
	assert_int_equal(
	    apply_text(&s, dir, CFG_OP_APPLY, other_doc, &changed, &gen, err, sizeof(err)),
	    -ESTALE);
	assert_non_null(strstr(err, "resolves short names in corp.local"));
	assert_false(changed);
	assert_int_equal(s.ctl->generation, g2);

	/* parsed in the store's: fine, and unchanged input stays unchanged */
	assert_int_equal(cfg_set_domain("corp.local"), 0);
	assert_int_equal(
	    apply_text(&s, dir, CFG_OP_APPLY, domain_docs, &changed, &gen, err, sizeof(err)), 0);
	assert_false(changed);
	assert_int_equal(gen, g2);

	/* back to cluster.local, set: the short names leave the entries again */
	assert_int_equal(cfg_set_domain(NULL), 0);
	s.set_domain = true;
	assert_int_equal(
	    apply_text(&s, dir, CFG_OP_APPLY, other_doc, &changed, &gen, err, sizeof(err)), 0);
	assert_true(changed);
	assert_int_equal(cfg_store_snapshot(&s, snap_a, NULL, &g2), 0);
	assert_int_equal(snap_a->n_services, 3);
	cfg_store_close(&s);
	cfg_store_unpin_halves(dir);
	snprintf(err, sizeof(err), "%s/%s", dir, RM_MAP_CFG_CTL);
	unlink(err);
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
	    cmocka_unit_test(test_growth_and_crash),
	    cmocka_unit_test(test_layout_mismatch),
	    cmocka_unit_test(test_domain),
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
