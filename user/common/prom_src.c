/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One scrape of the pinned maps of a pin dir (prom_src.h), each opened and checked
 * against pin.c's table. rm_stats and rm_breaker are read through read-only mappings so that the
 * slot copy can follow the writers' wbegin/wend protocol (a syscall lookup copies a value in no
 * defined order).
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

/* A read-only mapping of the pinned page array id, at the capacity the daemon gave it:
 * 0, or -errno with err filled (-ENOENT not pinned, -EPROTO another layout). */
static int map_pages(struct pin_map *m, enum pin_id id, const char *pin_dir, char *err,
		     size_t errlen)
{
	return pin_open_sized(m, id, pin_dir, PIN_O_MMAP_RO, PIN_CAP_PINNED, err, errlen);
}

int prom_stats_map_open(struct prom_stats_map *m, const char *pin_dir, char *err, size_t errlen)
{
	int r;

	memset(m, 0, sizeof(*m));
	r = map_pages(&m->pin, PIN_STATS, pin_dir, err, errlen);
	if (r)
		return r;
	if (prom_stats_locate(m->pin.mem, m->pin.mem_len, &m->s) == -EINVAL) {
		snprintf(err, errlen,
			 "%s/%s: its header describes regions beyond the map: daemon "
			 "and CLI versions differ",
			 pin_dir, RM_MAP_STATS);
		prom_stats_map_close(m);
		return -EINVAL;
	}
	return 0;
}

void prom_stats_map_close(struct prom_stats_map *m)
{
	pin_close(&m->pin);
	memset(&m->s, 0, sizeof(m->s));
}

int prom_cb_map_open(struct prom_cb_map *m, const char *pin_dir, char *err, size_t errlen)
{
	int r;

	memset(m, 0, sizeof(*m));
	r = map_pages(&m->pin, PIN_BREAKER, pin_dir, err, errlen);
	if (r)
		return r;
	r = cb_locate(&m->cb, m->pin.mem, m->pin.mem_len);
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
	pin_close(&m->pin);
	memset(&m->cb, 0, sizeof(m->cb));
	m->cb.fd = -1;
}

/* rm_dpstats summed over CPUs into out; 0, -ENOENT (not pinned) or -errno. */
static int read_dp(const char *pin_dir, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus(), r;
	struct pin_map m;
	char err[PATH_MAX + 128];
	uint64_t *v;

	memset(out, 0, sizeof(*out) * RM_DP_STAT_MAX);
	if (ncpu < 1)
		return -EINVAL;
	r = pin_open(&m, PIN_DPSTATS, pin_dir, PIN_O_RDONLY, err, sizeof(err));
	if (r)
		return r;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v) {
		pin_close(&m);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < RM_DP_STAT_MAX && i < m.info.max_entries; i++) {
		if (bpf_map_lookup_elem(m.fd, &i, v)) {
			r = -errno;
			break;
		}
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
	pin_close(&m);
	return r;
}

static int read_store_gen(const char *pin_dir, uint64_t *gen)
{
	char err[PATH_MAX + 128];
	struct rm_cfg_ctl ctl;
	struct pin_map m;
	uint32_t k = 0;
	int r = pin_open(&m, PIN_CFG_CTL, pin_dir, PIN_O_RDONLY, err, sizeof(err));

	if (r)
		return r;
	if (bpf_map_lookup_elem(m.fd, &k, &ctl))
		r = -errno;
	else if (ctl.magic != RM_CFG_MAGIC)
		r = -ENOENT;
	else
		*gen = ctl.generation;
	pin_close(&m);
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
		v.stats = sm.pin.mem;
		v.stats_len = sm.pin.mem_len;
	}
	if (!read_dp(pin_dir, dp))
		v.dp = dp;
	if (!read_store_gen(pin_dir, &v.store_gen))
		v.has_store_gen = true;
	/* a breaker map of another version only leaves its metrics out */
	if (!prom_cb_map_open(&cm, pin_dir, cerr, sizeof(cerr))) {
		v.cb = cm.pin.mem;
		v.cb_len = cm.pin.mem_len;
	}
	r = prom_render(&v, b);
	if (r)
		snprintf(err, errlen, "rendering metrics: %s", strerror(-r));
	prom_cb_map_close(&cm);
	prom_stats_map_close(&sm);
	return r;
}
