/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * prom_src: one scrape of a pin dir. Opens the pinned maps the exposition reads
 * (rm_stats and rm_breaker mmapped read-only, rm_dpstats summed over CPUs,
 * rm_cfg_ctl's generation), renders them with prom_render() and closes them again,
 * so a map a restarted daemon re-created is never read through a stale descriptor.
 * A map that is not pinned only leaves its metrics out. Used by ringmeshd's
 * exporter thread and by `ringmesh stats --prometheus`.
 */
#ifndef RM_PROM_SRC_H
#define RM_PROM_SRC_H

#include "common/pin.h"
#include "common/prom.h"
#include "policy/cb.h"

/* Render the maps of pin_dir into b. 0, or -errno (-ENOMEM; a map of another
 * version: -EPROTO, or -EINVAL when its header disagrees with its size) with err filled. */
int prom_scrape(const char *pin_dir, const char *tag, struct prom_buf *b, char *err, size_t errlen);

/* A read-only mmap of the pinned rm_stats (0 or -errno with err filled). */
struct prom_stats_map {
	struct pin_map pin;  /* pin.mem, pin.mem_len: the read-only mapping */
	struct prom_stats s; /* its regions; s.h NULL while no daemon initialised it */
};
int prom_stats_map_open(struct prom_stats_map *m, const char *pin_dir, char *err, size_t errlen);
void prom_stats_map_close(struct prom_stats_map *m);

/* The same of the pinned rm_breaker: -ENOENT not pinned, -EPROTO or -EINVAL another
 * layout. */
struct prom_cb_map {
	struct pin_map pin; /* pin.mem, pin.mem_len: the read-only mapping */
	struct cb cb;	    /* its regions (cb_locate); cb.h NULL while no daemon initialised it */
};
int prom_cb_map_open(struct prom_cb_map *m, const char *pin_dir, char *err, size_t errlen);
void prom_cb_map_close(struct prom_cb_map *m);

#endif /* RM_PROM_SRC_H */
