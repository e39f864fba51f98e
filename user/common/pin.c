/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* pin: the table of pinned maps and their open/check/mmap (see pin.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>

#include "ringmesh/abi.h"
#include "ringmesh/breaker.h"
#include "ringmesh/cfg.h"
#include "ringmesh/stats.h"
#include "ringmesh/workload.h"
#include "common/pin.h"
#include "common/util.h"

#define ARRAY(id, nm, value, n, use_)                                                              \
	[id] = {.name = nm,                                                                        \
		.type = BPF_MAP_TYPE_ARRAY,                                                        \
		.key_size = sizeof(__u32),                                                         \
		.value_size = sizeof(value),                                                       \
		.max_entries = n,                                                                  \
		.map_flags = BPF_F_MMAPABLE,                                                       \
		.use = PIN_U_MMAP | (use_)}

/* Order and rows follow bpf/lib/maps.h, maps_cfg.h, maps_cb.h and maps_wl.h. */
const struct pin_def pin_defs[PIN_MAX] = {
    [PIN_INCLUDE] = {RM_MAP_INCLUDE, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct rm_lpm_key), sizeof(__u8),
		     RM_MAX_RANGES, BPF_F_NO_PREALLOC, PIN_U_RUNTIME},
    [PIN_EXCLUDE] = {RM_MAP_EXCLUDE, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct rm_lpm_key), sizeof(__u8),
		     RM_MAX_RANGES, BPF_F_NO_PREALLOC, PIN_U_RUNTIME},
    [PIN_XPORTS] = {RM_MAP_XPORTS, BPF_MAP_TYPE_HASH, sizeof(__u16), sizeof(__u8), RM_MAX_XPORTS, 0,
		    PIN_U_RUNTIME},
    [PIN_ORIG_CK] = {RM_MAP_ORIG_CK, BPF_MAP_TYPE_LRU_HASH, sizeof(__u64), sizeof(struct rm_orig),
		     RM_MAX_CONNS, 0, PIN_U_RUNTIME},
    [PIN_ORIG] = {RM_MAP_ORIG, BPF_MAP_TYPE_LRU_HASH, sizeof(struct rm_tuple),
		  sizeof(struct rm_orig), RM_MAX_CONNS, 0, PIN_U_RUNTIME},
    /* both ends of every intercepted connection */
    [PIN_SOCKS] = {RM_MAP_SOCKS, BPF_MAP_TYPE_SOCKHASH, sizeof(struct rm_tuple), sizeof(__u32),
		   RM_MAX_CONNS * 2, 0, PIN_U_RUNTIME | PIN_U_NO_VALUE},
    ARRAY(PIN_PROXY, RM_MAP_PROXY, struct rm_proxy_cfg, 1, PIN_U_RUNTIME),
    [PIN_DPSTATS] = {RM_MAP_DPSTATS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(__u64),
		     RM_DP_STAT_MAX, 0, PIN_U_RUNTIME},
    /* rules survive a daemon restart: not PIN_U_RUNTIME */
    ARRAY(PIN_CFG_CTL, RM_MAP_CFG_CTL, struct rm_cfg_ctl, 1, 0),
    ARRAY(PIN_STATS, RM_MAP_STATS, struct rm_stats_page, RM_STATS_MAP_PAGES, PIN_U_COUNTERS),
    ARRAY(PIN_BREAKER, RM_MAP_BREAKER, struct rm_cb_page, RM_CB_MAP_PAGES, PIN_U_RUNTIME),
    /* written by `ringmesh sync`, which may start first: not PIN_U_RUNTIME */
    [PIN_WORKLOAD] = {RM_MAP_WORKLOAD, BPF_MAP_TYPE_HASH, sizeof(__u64), sizeof(struct rm_workload),
		      RM_MAX_WORKLOADS, BPF_F_NO_PREALLOC, 0},
};

const struct pin_def *pin_find(const char *name)
{
	for (int i = 0; i < PIN_MAX; i++)
		if (!strcmp(pin_defs[i].name, name))
			return &pin_defs[i];
	return NULL;
}

int pin_check(const struct pin_def *d, const struct bpf_map_info *info, enum pin_check level,
	      const char *path, char *err, size_t errlen)
{
	if (info->type != d->type)
		return errf(err, errlen, -EPROTO,
			    "%s: pinned map has another layout (type %u, want %u): built from "
			    "other headers?",
			    path, info->type, d->type);
	if (info->key_size != d->key_size || info->value_size != d->value_size)
		return errf(err, errlen, -EPROTO,
			    "%s: pinned map has another layout (key %u, value %u bytes, want %u, "
			    "%u): built from other headers?",
			    path, info->key_size, info->value_size, d->key_size, d->value_size);
	if (level == PIN_CHECK_ALL && (info->max_entries != d->max_entries ||
				       (info->map_flags & d->map_flags) != d->map_flags))
		return errf(err, errlen, -EPROTO,
			    "%s: pinned map has another layout (value %u bytes x %u, flags 0x%x, "
			    "want %u x %u, flags 0x%x): built from other headers?",
			    path, info->value_size, info->max_entries, info->map_flags,
			    d->value_size, d->max_entries, d->map_flags);
	return 0;
}

size_t pin_mmap_len(const struct pin_def *d)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = pin_elem_off(d, d->max_entries);

	return (len + pg - 1) & ~(pg - 1);
}

/* Create the map as d says and pin it: the fd, or -errno with err filled. */
static int create_pinned(struct pin_map *m, const struct pin_def *d,
			 const struct bpf_obj_get_opts *go, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = d->map_flags);
	int fd, r;

	fd = bpf_map_create(d->type, d->name, d->key_size, d->value_size, d->max_entries, &o);
	if (fd < 0)
		return errf_sys(err, errlen, -errno, "create map %s", d->name);
	if (!bpf_obj_pin(fd, m->path))
		return fd;
	r = -errno;
	close(fd);
	if (r != -EEXIST)
		return errf_sys(err, errlen, r, "pin %s", m->path);
	/* another writer pinned it first: use theirs */
	fd = bpf_obj_get_opts(m->path, go);
	return fd >= 0 ? fd : errf_sys(err, errlen, -errno, "open %s", m->path);
}

int pin_open(struct pin_map *m, enum pin_id id, const char *pin_dir, unsigned int flags, char *err,
	     size_t errlen)
{
	if ((int)id < 0 || id >= PIN_MAX) {
		memset(m, 0, sizeof(*m));
		m->fd = -1;
		return errf(err, errlen, -EINVAL, "no pinned map %d", (int)id);
	}
	return pin_open_sized(m, id, pin_dir, flags, pin_defs[id].max_entries, err, errlen);
}

int pin_open_sized(struct pin_map *m, enum pin_id id, const char *pin_dir, unsigned int flags,
		   uint32_t max_entries, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_obj_get_opts, go, .file_flags = (flags & PIN_O_RDONLY) ? BPF_F_RDONLY : 0);
	uint32_t ilen = sizeof(m->info);
	struct pin_def d;
	int n, r;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if ((int)id < 0 || id >= PIN_MAX)
		return errf(err, errlen, -EINVAL, "no pinned map %d", (int)id);
	if (max_entries == PIN_CAP_PINNED && (flags & PIN_O_CREATE))
		return errf(err, errlen, -EINVAL, "no capacity to create %s with",
			    pin_defs[id].name);
	m->def = &pin_defs[id];
	d = *m->def;
	d.max_entries = max_entries;
	n = snprintf(m->path, sizeof(m->path), "%s/%s", pin_dir, m->def->name);
	if (n < 0 || (size_t)n >= sizeof(m->path))
		return errf(err, errlen, -ENAMETOOLONG, "pin dir %s: name too long", pin_dir);
	r = bpf_obj_get_opts(m->path, &go);
	if (r < 0) {
		r = -errno;
		if (r == -ENOENT && (flags & PIN_O_CREATE))
			r = create_pinned(m, &d, &go, err, errlen);
		else
			errf_sys(err, errlen, r, "open %s", m->path);
		if (r < 0)
			return r;
	}
	m->fd = r;
	if (bpf_obj_get_info_by_fd(m->fd, &m->info, &ilen)) {
		r = errf_sys(err, errlen, -errno, "%s: not a map", m->path);
		goto fail;
	}
	if (max_entries == PIN_CAP_PINNED)
		d.max_entries = m->info.max_entries;
	r = pin_check(&d, &m->info,
		      (flags & (PIN_O_MMAP | PIN_O_MMAP_RO | PIN_O_CREATE)) ? PIN_CHECK_ALL
									    : PIN_CHECK_SHAPE,
		      m->path, err, errlen);
	if (r)
		goto fail;
	if (flags & (PIN_O_MMAP | PIN_O_MMAP_RO)) {
		if (!(m->def->use & PIN_U_MMAP) || (flags & PIN_O_RDONLY) || !d.max_entries) {
			r = errf(err, errlen, -EINVAL, "%s: not mapped", m->path);
			goto fail;
		}
		m->mem_len = pin_mmap_len(&d);
		m->mem = mmap(NULL, m->mem_len,
			      (flags & PIN_O_MMAP) ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
			      m->fd, 0);
		if (m->mem == MAP_FAILED) {
			m->mem = NULL;
			r = errf_sys(err, errlen, -errno, "mmap %s", m->path);
			goto fail;
		}
	}
	return 0;
fail:
	pin_close(m);
	return r;
}

void pin_close(struct pin_map *m)
{
	if (m->mem)
		munmap(m->mem, m->mem_len);
	if (m->fd >= 0)
		close(m->fd);
	m->mem = NULL;
	m->mem_len = 0;
	m->fd = -1;
}
