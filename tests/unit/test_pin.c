/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for common/pin: the table states every map the BPF object declares, with
 * the object's own type, sizes, capacity and flags (read from the skeleton, so a change
 * to bpf/lib/maps*.h without pin.c, or the reverse, fails here, as any user); and, with
 * root and bpffs, pin_open creates, refuses a map of another layout unless only its
 * shape is needed, and says -ENOENT for an absent pin. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/pin.h"
#include "ringmesh/cfg.h"
#include "ringmesh/stats.h"
#include "ringmesh.skel.h"

static char pin_dir[128];

static bool privileged(void)
{
	return geteuid() == 0 && !access("/sys/fs/bpf", W_OK);
}

static void test_table_is_the_bpf_object(void **state)
{
	struct ringmesh *skel = ringmesh__open();
	struct bpf_map *m;
	int seen = 0;

	assert_non_null(skel);
	bpf_object__for_each_map(m, skel->obj)
	{
		const struct pin_def *d;

		if (strchr(bpf_map__name(m), '.'))
			continue; /* .rodata, .bss: not pinned maps */
		d = pin_find(bpf_map__name(m));
		if (!d)
			fail_msg("%s: in the BPF object, not in pin.c", bpf_map__name(m));
		assert_int_equal(bpf_map__type(m), d->type);
		assert_int_equal(bpf_map__key_size(m), d->key_size);
		assert_int_equal(bpf_map__value_size(m), d->value_size);
		assert_int_equal(bpf_map__max_entries(m), d->max_entries);
		assert_int_equal(bpf_map__map_flags(m), d->map_flags);
		assert_int_equal(!!(d->use & PIN_U_MMAP), !!(d->map_flags & BPF_F_MMAPABLE));
		seen++;
	}
	assert_int_equal(seen, PIN_MAX); /* and nothing in pin.c the object lacks */
	ringmesh__destroy(skel);
}

static void test_find_and_lengths(void **state)
{
	const struct pin_def *d = pin_find(RM_MAP_STATS);
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	assert_ptr_equal(d, &pin_defs[PIN_STATS]);
	assert_null(pin_find("rm_nope"));
	/* the halves of the configuration are sized per publish: not in the table */
	assert_null(pin_find(RM_MAP_CFG));
	assert_int_equal(pin_elem_off(d, 1), RM_STATS_PAGE);
	assert_true(pin_mmap_len(d) >= RM_STATS_BYTES(RM_STATS_SLOTS, RM_STATS_POOL_ROWS));
	assert_true(pin_mmap_len(d) < RM_STATS_BYTES(RM_STATS_SLOTS, RM_STATS_POOL_ROWS) + pg);
	assert_int_equal(pin_mmap_len(d) % pg, 0);
	assert_int_equal(pin_mmap_len(&pin_defs[PIN_PROXY]), pg);
}

static void test_open_create_and_refuse(void **state)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_MMAPABLE);
	struct pin_map m;
	char err[512], path[256];
	int fd;

	if (!privileged())
		skip();
	assert_int_equal(mkdir(pin_dir, 0700), 0);
	assert_int_equal(pin_open(&m, PIN_PROXY, pin_dir, 0, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "rm_proxy"));
	assert_int_equal(m.fd, -1);
	pin_close(&m); /* safe on a failed open */

	/* created as the table says, mapped whole, and seen again by a second open */
	assert_int_equal(
	    pin_open(&m, PIN_PROXY, pin_dir, PIN_O_CREATE | PIN_O_MMAP, err, sizeof(err)), 0);
	assert_non_null(m.mem);
	((volatile uint64_t *)m.mem)[0] = 42;
	pin_close(&m);
	assert_int_equal(pin_open(&m, PIN_PROXY, pin_dir, PIN_O_MMAP, err, sizeof(err)), 0);
	assert_int_equal(((volatile uint64_t *)m.mem)[0], 42);
	pin_close(&m);

	/* rm_stats with another capacity: decodable (shape), but never mapped */
	snprintf(path, sizeof(path), "%s/%s", pin_dir, RM_MAP_STATS);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, RM_MAP_STATS, 4, pin_defs[PIN_STATS].value_size, 8,
			    &o);
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_pin(fd, path), 0);
	close(fd);
	assert_int_equal(pin_open(&m, PIN_STATS, pin_dir, PIN_O_RDONLY, err, sizeof(err)), 0);
	pin_close(&m);
	assert_int_equal(pin_open(&m, PIN_STATS, pin_dir, PIN_O_MMAP, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "another layout"));
	assert_null(m.mem);
	/* ... unless asked for that capacity (--stats-keys) */
	assert_int_equal(pin_open_sized(&m, PIN_STATS, pin_dir, PIN_O_MMAP, 8, err, sizeof(err)),
			 0);
	assert_int_equal(m.mem_len, 8 * RM_STATS_PAGE);
	((volatile uint8_t *)m.mem)[RM_STATS_PAGE] = 7;
	pin_close(&m);
	/* ... or by a reader, at the pin's own capacity, mapped read-only */
	assert_int_equal(
	    pin_open_sized(&m, PIN_STATS, pin_dir, PIN_O_MMAP_RO, PIN_CAP_PINNED, err, sizeof(err)),
	    0);
	assert_int_equal(m.mem_len, 8 * RM_STATS_PAGE);
	assert_int_equal(((volatile uint8_t *)m.mem)[RM_STATS_PAGE], 7);
	pin_close(&m);
	/* no capacity to create with */
	assert_int_equal(pin_open_sized(&m, PIN_CFG_CTL, pin_dir, PIN_O_CREATE | PIN_O_MMAP,
					PIN_CAP_PINNED, err, sizeof(err)),
			 -EINVAL);
	/* the old layout (8 rows in every 4688 B slot): refused even for decoding */
	unlink(path);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, RM_MAP_STATS, 4, 4688, 1024, &o);
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_pin(fd, path), 0);
	close(fd);
	assert_int_equal(pin_open(&m, PIN_STATS, pin_dir, PIN_O_RDONLY, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "another layout"));
	/* created at the capacity asked for */
	unlink(path);
	assert_int_equal(pin_open_sized(&m, PIN_STATS, pin_dir, PIN_O_CREATE | PIN_O_MMAP,
					(uint32_t)RM_STATS_PAGES(16, 32), err, sizeof(err)),
			 0);
	assert_int_equal(m.info.max_entries, RM_STATS_PAGES(16, 32));
	pin_close(&m);
	/* another value size: refused even for decoding */
	assert_int_equal(pin_open(&m, PIN_CFG_CTL, pin_dir, 0, err, sizeof(err)), -ENOENT);
	snprintf(path, sizeof(path), "%s/%s", pin_dir, RM_MAP_CFG_CTL);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, RM_MAP_CFG_CTL, 4, 32, 1, &o);
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_pin(fd, path), 0);
	close(fd);
	assert_int_equal(pin_open(&m, PIN_CFG_CTL, pin_dir, PIN_O_RDONLY, err, sizeof(err)),
			 -EPROTO);
}

static int teardown(void **state)
{
	char path[256];

	for (int i = 0; i < PIN_MAX; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, pin_defs[i].name);
		unlink(path);
	}
	rmdir(pin_dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_is_the_bpf_object),
	    cmocka_unit_test(test_find_and_lengths),
	    cmocka_unit_test_teardown(test_open_create_and_refuse, teardown),
	};

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/rm-pin-test-%d", (int)getpid());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
