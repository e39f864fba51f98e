/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sysck: the kernel release parser and the refusals of --cgroup, with their reasons. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <cmocka.h>

#include "ringmeshd/sysck.h"

static char err[512], out[PATH_MAX];

static void test_release(void **state)
{
	unsigned int a, b;

	assert_int_equal(sysck_parse_release("6.18.44-fc-v1045", &a, &b), 0);
	assert_int_equal(a, 6);
	assert_int_equal(b, 18);
	assert_int_equal(sysck_parse_release("5.15.0-91-generic", &a, &b), 0);
	assert_int_equal(a, 5);
	assert_int_equal(b, 15);
	assert_int_equal(sysck_parse_release("6", &a, &b), -EINVAL);
	assert_int_equal(sysck_parse_release("x.y", &a, &b), -EINVAL);
	assert_int_equal(sysck_parse_release("", &a, &b), -EINVAL);
}

static void test_cgroup(void **state)
{
	char mnt[PATH_MAX];
	int rc;

	rc = sysck_cgroup2_mount(mnt, sizeof(mnt), err, sizeof(err));
	if (rc)
		skip(); /* no cgroup2 on this host: the refusal itself is the message */
	/* not cgroup2 */
	rc = sysck_pods_cgroup("/tmp", mnt, false, out, sizeof(out), err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err, "not a directory on a cgroup2 filesystem"));
	/* the root, by its path, by a relative "." and by a trailing slash */
	rc = sysck_pods_cgroup(mnt, mnt, false, out, sizeof(out), err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err, "is the cgroup2 root"));
	assert_non_null(strstr(err, "--allow-root-cgroup"));
	rc = sysck_pods_cgroup(".", mnt, false, out, sizeof(out), err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err, "is the cgroup2 root"));
	/* the override accepts it */
	rc = sysck_pods_cgroup(".", mnt, true, out, sizeof(out), err, sizeof(err));
	assert_int_equal(rc, 0);
	/* missing */
	rc = sysck_pods_cgroup("rm-no-such-cgroup-x", mnt, false, out, sizeof(out), err,
			       sizeof(err));
	assert_int_equal(rc, -ENOENT);
	assert_non_null(strstr(err, "rm-no-such-cgroup-x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_release),
	    cmocka_unit_test(test_cgroup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
