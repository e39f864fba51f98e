/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * pin: the maps pinned under the pin dir, in one table, and the open/check/mmap of
 * them. Each row states a map's name, type, key and value size, capacity and flags
 * in the terms of include/ringmesh/ (the names, the structs, the capacity constants),
 * so ringmeshd, the CLI and the configuration store agree by construction; the BPF
 * object declares the same maps in bpf/lib/maps*.h, and tests/unit/test_pin.c holds
 * the two side by side so neither can drift alone.
 *
 * A pinned map whose layout is not the table's is refused with -EPROTO rather than
 * read with the wrong sizes: it was created by another build.
 */
#ifndef RM_PIN_H
#define RM_PIN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/bpf.h>

enum pin_id {
	PIN_INCLUDE,
	PIN_EXCLUDE,
	PIN_XPORTS,
	PIN_ORIG_CK,
	PIN_ORIG,
	PIN_SOCKS,
	PIN_PROXY,
	PIN_DPSTATS,
	PIN_CFG_CTL,
	PIN_STATS,
	PIN_BREAKER,
	PIN_WORKLOAD,
	PIN_MAX,
};

/* pin_def.use */
#define PIN_U_MMAP (1u << 0)	 /* an mmapable array its users map whole */
#define PIN_U_RUNTIME (1u << 1)	 /* daemon state: a new ringmeshd starts it empty */
#define PIN_U_NO_VALUE (1u << 2) /* values cannot be read back (sock maps hold fds) */
/* counters only: kept across restarts, but a pin of another layout (left by another
 * version) is re-created by a fresh start: its counters restart as after a reboot */
#define PIN_U_COUNTERS (1u << 3)

struct pin_def {
	const char *name;     /* RM_MAP_* */
	uint32_t type;	      /* enum bpf_map_type */
	uint32_t key_size;    /* bytes */
	uint32_t value_size;  /* bytes, per CPU for per-CPU maps */
	uint32_t max_entries; /* the capacity the BPF object declares */
	uint32_t map_flags;   /* BPF_F_* */
	uint32_t use;	      /* PIN_U_* */
};

extern const struct pin_def pin_defs[PIN_MAX];

/* The row of a map name, or NULL for a name that is not ours. */
const struct pin_def *pin_find(const char *name);

/* pin_check levels */
enum pin_check {
	PIN_CHECK_SHAPE, /* type, key and value size: enough to decode entries */
	PIN_CHECK_ALL,	 /* also capacity and flags: needed to mmap or to create */
};

/* Does info describe d's map? 0, or -EPROTO with err naming the path and the field that
 * differs ("built from other headers?"). */
int pin_check(const struct pin_def *d, const struct bpf_map_info *info, enum pin_check level,
	      const char *path, char *err, size_t errlen);

/* Page-rounded length of the whole mapping of an mmapable array (values 8-byte aligned
 * in the mapping, as the kernel lays them out). */
size_t pin_mmap_len(const struct pin_def *d);
/* Offset of element i in that mapping. */
static inline size_t pin_elem_off(const struct pin_def *d, uint32_t i)
{
	return (((size_t)d->value_size + 7) & ~(size_t)7) * i;
}

struct pin_map {
	const struct pin_def *def;
	int fd;		/* -1 when closed */
	void *mem;	/* the whole mapping (PIN_O_MMAP), or NULL */
	size_t mem_len; /* its length */
	struct bpf_map_info info;
	char path[PATH_MAX]; /* pin_dir/name */
};

/* pin_open flags */
#define PIN_O_RDONLY (1u << 0) /* open the pin read-only (no mmap with it) */
#define PIN_O_CREATE (1u << 1) /* absent: create it as the table says and pin it */
#define PIN_O_MMAP (1u << 2)   /* mmap it whole, read-write (PIN_U_MMAP maps only) */
/* mmap it whole, read-only (the fd is not: this kernel refuses to map a read-only one) */
#define PIN_O_MMAP_RO (1u << 3)

/*
 * Open pin_dir/<name of id>, check it (PIN_CHECK_ALL, or PIN_CHECK_SHAPE when neither
 * mmapped nor created), and map it with PIN_O_MMAP. 0, or -errno with err filled:
 * -ENOENT not pinned, -EINVAL the pin is not a map, -EPROTO another layout.
 * On failure m is closed (fd -1); pin_close is always safe.
 */
int pin_open(struct pin_map *m, enum pin_id id, const char *pin_dir, unsigned int flags, char *err,
	     size_t errlen);
/* The same for a map whose capacity is a run-time choice (rm_stats: --stats-keys;
 * rm_breaker: --breaker-pools, --breaker-hosts):
 * created, checked and mapped with max_entries instead of the table's.
 * PIN_CAP_PINNED: whatever capacity the pin has (a reader of the daemon's map; not with
 * PIN_O_CREATE). */
#define PIN_CAP_PINNED 0u
int pin_open_sized(struct pin_map *m, enum pin_id id, const char *pin_dir, unsigned int flags,
		   uint32_t max_entries, char *err, size_t errlen);
void pin_close(struct pin_map *m);

#endif /* RM_PIN_H */
