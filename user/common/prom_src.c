/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One scrape of the pinned maps of a pin dir (prom_src.h). rm_stats and rm_breaker
 * are read through read-only mappings so that the slot copy can follow the writers'
 * wbegin/wend protocol (a syscall lookup copies a value in no defined order).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/prom_src.h"
#include "ringmesh/cfg.h"

static int open_pinned(const char *pin_dir, const char *name, struct bpf_map_info *info)
{
	uint32_t ilen = sizeof(*info);
	char path[512];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", pin_dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	memset(info, 0, sizeof(*info));
	if (bpf_obj_get_info_by_fd(fd, info, &ilen)) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static size_t page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) & ~(page - 1);
}

/* A read-only mapping of the pinned array of pages pin_dir/name: fd, mem and len of m
 * set, or -errno with err filled (-EINVAL: not pages of that size). */
static int map_pages(const char *pin_dir, const char *name, uint32_t page, int *fd_out, void **mem,
		     size_t *len, char *err, size_t errlen)
{
	struct bpf_map_info info;
	int fd;

	*fd_out = -1;
	*mem = NULL;
	*len = 0;
	fd = open_pinned(pin_dir, name, &info);
	if (fd < 0) {
		snprintf(err, errlen, "%s/%s: %s", pin_dir, name, strerror(-fd));
		return fd;
	}
	if (info.type != BPF_MAP_TYPE_ARRAY || info.value_size != page || info.max_entries < 1 ||
	    !(info.map_flags & BPF_F_MMAPABLE)) {
		snprintf(err, errlen,
			 "%s/%s: value size %u, this ringmesh expects %u: daemon and "
			 "CLI versions differ",
			 pin_dir, name, info.value_size, page);
		close(fd);
		return -EINVAL;
	}
	*len = page_round((size_t)info.max_entries * page);
	*mem = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
	if (*mem == MAP_FAILED) {
		int r = -errno;

		*mem = NULL;
		snprintf(err, errlen, "mmap %s/%s: %s", pin_dir, name, strerror(-r));
		close(fd);
		return r;
	}
	*fd_out = fd;
	return 0;
}

int prom_stats_map_open(struct prom_stats_map *m, const char *pin_dir, char *err, size_t errlen)
{
	int r;

	memset(m, 0, sizeof(*m));
	r = map_pages(pin_dir, RM_MAP_STATS, RM_STATS_PAGE, &m->fd, &m->mem, &m->len, err, errlen);
	if (r)
		return r;
	if (prom_stats_locate(m->mem, m->len, &m->s) == -EINVAL) {
		snprintf(err, errlen,
			 "%s/%s: its header describes regions beyond the map: daemon "
			 "and CLI versions differ",
			 pin_dir, RM_MAP_STATS);
		prom_stats_map_close(m);
		return -EINVAL;
	}
	return 0;
}

/* The other end of map_pages (a NULL mem or fd -1 is not open). */
static void unmap_pages(int *fd, void **mem, size_t *len)
{
	if (*mem)
		munmap(*mem, *len);
	if (*fd >= 0)
		close(*fd);
	*mem = NULL;
	*len = 0;
	*fd = -1;
}

void prom_stats_map_close(struct prom_stats_map *m)
{
	unmap_pages(&m->fd, &m->mem, &m->len);
	memset(&m->s, 0, sizeof(m->s));
}

int prom_cb_map_open(struct prom_cb_map *m, const char *pin_dir, char *err, size_t errlen)
{
	int r;

	memset(m, 0, sizeof(*m));
	r = map_pages(pin_dir, RM_MAP_BREAKER, RM_CB_PAGE, &m->fd, &m->mem, &m->len, err, errlen);
	if (r)
		return r;
	r = cb_locate(&m->cb, m->mem, m->len);
	if (r == -EINVAL || r == -EPROTO) {
		snprintf(err, errlen,
			 "%s/%s: its header describes %s: daemon and CLI versions differ", pin_dir,
			 RM_MAP_BREAKER,
			 r == -EPROTO ? "another layout" : "regions beyond the map");
		prom_cb_map_close(m);
		return -EINVAL;
	}
	return 0;
}

void prom_cb_map_close(struct prom_cb_map *m)
{
	unmap_pages(&m->fd, &m->mem, &m->len);
	memset(&m->cb, 0, sizeof(m->cb));
	m->cb.fd = -1;
}

/* rm_dpstats summed over CPUs into out; 0, -ENOENT (not pinned) or -errno. */
static int read_dp(const char *pin_dir, uint64_t *out)
{
	struct bpf_map_info info;
	int ncpu = libbpf_num_possible_cpus(), fd, r = 0;
	uint64_t *v;

	memset(out, 0, sizeof(*out) * RM_DP_STAT_MAX);
	if (ncpu < 1)
		return -EINVAL;
	fd = open_pinned(pin_dir, RM_MAP_DPSTATS, &info);
	if (fd < 0)
		return fd;
	if (info.type != BPF_MAP_TYPE_PERCPU_ARRAY || info.key_size != 4 || info.value_size != 8) {
		close(fd);
		return -EINVAL;
	}
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v) {
		close(fd);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < RM_DP_STAT_MAX && i < info.max_entries; i++) {
		if (bpf_map_lookup_elem(fd, &i, v)) {
			r = -errno;
			break;
		}
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
	close(fd);
	return r;
}

static int read_store_gen(const char *pin_dir, uint64_t *gen)
{
	struct bpf_map_info info;
	struct rm_cfg_ctl ctl;
	uint32_t k = 0;
	int fd = open_pinned(pin_dir, RM_MAP_CFG_CTL, &info), r = 0;

	if (fd < 0)
		return fd;
	if (info.value_size != sizeof(ctl))
		r = -EINVAL;
	else if (bpf_map_lookup_elem(fd, &k, &ctl))
		r = -errno;
	else if (ctl.magic != RM_CFG_MAGIC)
		r = -ENOENT;
	else
		*gen = ctl.generation;
	close(fd);
	return r;
}

int prom_scrape(const char *pin_dir, const char *tag, struct prom_buf *b, char *err, size_t errlen)
{
	struct prom_view v = {.tag = tag};
	struct prom_stats_map sm;
	struct prom_cb_map cm;
	uint64_t dp[RM_DP_STAT_MAX];
	char cerr[256];
	int r;

	err[0] = '\0';
	r = prom_stats_map_open(&sm, pin_dir, err, errlen);
	if (r && r != -ENOENT)
		return r;
	if (!r) {
		v.stats = sm.mem;
		v.stats_len = sm.len;
	}
	if (!read_dp(pin_dir, dp))
		v.dp = dp;
	if (!read_store_gen(pin_dir, &v.store_gen))
		v.has_store_gen = true;
	/* a breaker map of another version only leaves its metrics out */
	if (!prom_cb_map_open(&cm, pin_dir, cerr, sizeof(cerr))) {
		v.cb = cm.mem;
		v.cb_len = cm.len;
	}
	r = prom_render(&v, b);
	if (r)
		snprintf(err, errlen, "rendering metrics: %s", strerror(-r));
	prom_cb_map_close(&cm);
	prom_stats_map_close(&sm);
	return r;
}
