/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * rm_stats writer. Slots are claimed FREE -> CLAIMING by CAS, filled, then made
 * LIVE with a release store; a thread that meets a CLAIMING slot waits for it (the
 * claimer is a few stores away from LIVE) because the key may be its own. A slot's
 * row positions are claimed the same way, each filled with a row of the shared
 * pool (stats.h, "Series").
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "common/pin.h"
#include "common/util.h"
#include "ringmeshd/bufpool.h"
#include "ringmeshd/stats_w.h"

static const uint64_t bounds_milli[RM_STATS_BUCKETS - 1] = RM_STATS_BOUNDS_MILLI;

/* Point s at the regions of mem, laid out for n_slots and n_rows; the header is
 * written when mem has no magic yet (a fresh map is all zeros). */
static void init_map(struct stats_w *s, void *mem, uint32_t n_slots, uint32_t n_rows,
		     uint64_t realtime_ns)
{
	struct rm_stats_hdr *h = mem;

	s->h = h;
	s->slots = (struct rm_stats_slot *)((char *)mem + RM_STATS_SLOT_OFF);
	s->rows = (struct rm_stats_row *)((char *)mem + RM_STATS_ROW_OFF(n_slots));
	s->n_slots = n_slots;
	s->n_rows = n_rows;
	s->pid = (uint32_t)getpid();
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != RM_STATS_MAGIC) {
		h->n_slots = n_slots;
		h->n_rows = n_rows;
		h->slot_off = RM_STATS_SLOT_OFF;
		h->row_off = RM_STATS_ROW_OFF(n_slots);
		h->started_ns = realtime_ns;
		h->dropped = 0;
		/* pool row 0: the overflow slot's overflow row, the last resort */
		s->rows[0].id = RM_STATS_ROW_OVERFLOW;
		s->slots[RM_STATS_OVERFLOW_SLOT].rows[RM_STATS_ROWS - 1] = 1;
		h->rows_used = 1;
		__atomic_store_n(&h->magic, RM_STATS_MAGIC, __ATOMIC_RELEASE);
	}
	/* the worker entries are ours now (a predecessor stops writing them) */
	__atomic_store_n(&h->wk_pid, s->pid, __ATOMIC_RELAXED);
	__atomic_store_n(&h->n_wk, 0, __ATOMIC_RELAXED);
	memset(h->wk, 0, sizeof(h->wk));
}

void stats_w_attach(struct stats_w *s, void *mem, uint32_t n_slots, uint32_t n_rows,
		    uint64_t realtime_ns)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	init_map(s, mem, n_slots, n_rows, realtime_ns);
}

int stats_w_open(struct stats_w *s, const char *pin_dir, uint32_t keys, uint64_t realtime_ns,
		 char *err, size_t errlen)
{
	uint32_t ns = keys ? keys : RM_STATS_SLOTS, nr = keys ? 2 * keys : RM_STATS_POOL_ROWS;
	const struct rm_stats_hdr *h;
	struct pin_map m;
	int r;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	r = pin_open_sized(&m, PIN_STATS, pin_dir, PIN_O_MMAP, (uint32_t)RM_STATS_PAGES(ns, nr),
			   err, errlen);
	if (r)
		return r;
	h = m.mem;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == RM_STATS_MAGIC &&
	    (h->n_slots != ns || h->n_rows != nr || h->slot_off != RM_STATS_SLOT_OFF ||
	     h->row_off != RM_STATS_ROW_OFF(ns))) {
		r = errf(err, errlen, -EPROTO,
			 "%s: pinned map has another layout (%u keys, %u rows; want %u, %u): "
			 "built from other headers?",
			 m.path, h->n_slots, h->n_rows, ns, nr);
		pin_close(&m);
		return r;
	}
	s->fd = m.fd;
	s->map = m.mem;
	s->map_len = m.mem_len;
	init_map(s, s->map, ns, nr, realtime_ns);
	return 0;
}

void stats_w_close(struct stats_w *s)
{
	if (s->map)
		munmap(s->map, s->map_len);
	if (s->fd >= 0)
		close(s->fd);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static void put_str(char *dst, size_t cap, const char *src)
{
	size_t n;

	if (!src || !*src)
		src = "unknown";
	n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
}

void stats_key_make(struct rm_stats_key *k, const char *service, const char *version,
		    const char *workload, uint8_t proto)
{
	memset(k, 0, sizeof(*k));
	put_str(k->dst_service, sizeof(k->dst_service), service);
	put_str(k->dst_version, sizeof(k->dst_version), version);
	put_str(k->dst_workload, sizeof(k->dst_workload), workload);
	stats_key_source(k, NULL);
	k->proto = proto;
}

/* A record's string field: NUL-terminated within its array, or "" */
#define WL_STR(f) (src && memchr(src->f, 0, sizeof(src->f)) ? src->f : "")

void stats_key_source(struct rm_stats_key *k, const struct rm_workload *src)
{
	const char *wl = WL_STR(workload), *app = WL_STR(app), *ver = WL_STR(version);
	const char *cs = WL_STR(canon_svc), *cr = WL_STR(canon_rev);

	memset(k->src_workload, 0, sizeof(k->src_workload));
	memset(k->src_version, 0, sizeof(k->src_version));
	memset(k->src_namespace, 0, sizeof(k->src_namespace));
	memset(k->src_app, 0, sizeof(k->src_app));
	memset(k->src_canon_svc, 0, sizeof(k->src_canon_svc));
	memset(k->src_canon_rev, 0, sizeof(k->src_canon_rev));
	put_str(k->src_workload, sizeof(k->src_workload), wl);
	put_str(k->src_version, sizeof(k->src_version), ver);
	put_str(k->src_namespace, sizeof(k->src_namespace), WL_STR(ns));
	put_str(k->src_app, sizeof(k->src_app), app);
	put_str(k->src_canon_svc, sizeof(k->src_canon_svc), *cs ? cs : *app ? app : wl);
	put_str(k->src_canon_rev, sizeof(k->src_canon_rev),
		*cr    ? cr
		: *ver ? ver
		: src  ? "latest"
		       : NULL);
}
#undef WL_STR

uint32_t stats_key_hash(const struct rm_stats_key *k)
{
	const uint8_t *b = (const uint8_t *)k;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* Slot RM_STATS_OVERFLOW_SLOT is never probed. */
#define FIRST_PROBED (RM_STATS_OVERFLOW_SLOT + 1)

/* Wait out a claimer between its CAS and its release store (a few stores). */
static uint32_t wait_claimed(const uint32_t *p, uint32_t v, uint32_t claiming)
{
	while (v == claiming)
		v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
	return v;
}

static struct rm_stats_slot *overflow_slot(struct stats_w *s)
{
	struct rm_stats_slot *sl = &s->slots[RM_STATS_OVERFLOW_SLOT];
	uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);

	if (st == RM_STATS_FREE) {
		uint32_t exp = RM_STATS_FREE;

		if (__atomic_compare_exchange_n(&sl->state, &exp, RM_STATS_CLAIMING, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			memset(&sl->key, 0, sizeof(sl->key));
			strcpy(sl->key.dst_service, RM_STATS_OVERFLOW_NAME);
			__atomic_store_n(&sl->state, RM_STATS_LIVE, __ATOMIC_RELEASE);
			return sl;
		}
		st = exp;
	}
	wait_claimed(&sl->state, st, RM_STATS_CLAIMING);
	return sl;
}

struct rm_stats_slot *stats_slot(struct stats_w *s, const struct rm_stats_key *k)
{
	uint32_t h, nslots, start;

	if (!s || !s->h || s->n_slots <= FIRST_PROBED)
		return NULL;
	h = stats_key_hash(k);
	nslots = s->n_slots - FIRST_PROBED;
	start = h % nslots;
	for (uint32_t p = 0; p < RM_STATS_PROBE && p < nslots; p++) {
		struct rm_stats_slot *sl = &s->slots[FIRST_PROBED + (start + p) % nslots];
		uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);

		if (st == RM_STATS_FREE) {
			uint32_t exp = RM_STATS_FREE;

			if (__atomic_compare_exchange_n(&sl->state, &exp, RM_STATS_CLAIMING, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				sl->key = *k;
				sl->key_hash = h;
				__atomic_store_n(&sl->state, RM_STATS_LIVE, __ATOMIC_RELEASE);
				return sl;
			}
			st = exp;
		}
		st = wait_claimed(&sl->state, st, RM_STATS_CLAIMING);
		if (st == RM_STATS_LIVE && sl->key_hash == h && !memcmp(&sl->key, k, sizeof(*k)))
			return sl;
	}
	/* counted, not lost: the sample goes to the overflow slot */
	__atomic_fetch_add(&s->h->dropped, 1, __ATOMIC_RELAXED);
	return overflow_slot(s);
}

static unsigned bucket(uint64_t v_milli)
{
	for (unsigned i = 0; i < RM_STATS_BUCKETS - 1; i++)
		if (v_milli <= bounds_milli[i])
			return i;
	return RM_STATS_BUCKETS - 1;
}

#define ADD(p, v) __atomic_fetch_add((p), (uint64_t)(v), __ATOMIC_RELAXED)

/* Bracket an update for readers (stats.h, "Consistent reads"): the acquire RMW keeps
 * the counter adds after wbegin, the release RMW keeps them before wend. */
static void wbegin(struct rm_stats_slot *sl)
{
	__atomic_fetch_add(&sl->wbegin, 1, __ATOMIC_ACQ_REL);
}

static void wend(struct rm_stats_slot *sl)
{
	__atomic_fetch_add(&sl->wend, 1, __ATOMIC_RELEASE);
}

/* A row of the pool for id: 1 + its index, or 0 when the pool is empty. The bump
 * never passes n_rows, so rows_used is exact. */
static uint32_t pool_take(struct stats_w *s, uint64_t id)
{
	uint32_t n = __atomic_load_n(&s->h->rows_used, __ATOMIC_RELAXED);

	while (n < s->n_rows)
		if (__atomic_compare_exchange_n(&s->h->rows_used, &n, n + 1, true, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED)) {
			/* published by the release store of its index */
			__atomic_store_n(&s->rows[n].id, id, __ATOMIC_RELAXED);
			return n + 1;
		}
	return 0;
}

/* The row at position i of sl: the one there, or (free position) one taken from
 * the pool for id. 1 + pool index, or 0: free and the pool is empty. */
static uint32_t row_at(struct stats_w *s, struct rm_stats_slot *sl, int i, uint64_t id)
{
	uint32_t *p = &sl->rows[i], exp = 0, ix;

	ix = wait_claimed(p, __atomic_load_n(p, __ATOMIC_ACQUIRE), RM_STATS_ROW_CLAIMING);
	if (ix)
		return ix;
	if (!__atomic_compare_exchange_n(p, &exp, RM_STATS_ROW_CLAIMING, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return wait_claimed(p, exp, RM_STATS_ROW_CLAIMING);
	ix = pool_take(s, id);
	__atomic_store_n(p, ix, __ATOMIC_RELEASE); /* 0: the position stays free */
	return ix;
}

/* The row of (code, flags) in sl: found, claimed, the key's overflow row, or (the
 * pool is empty) the overflow slot's reserved one; *owner is the slot whose
 * wbegin/wend bracket its update. */
static struct rm_stats_row *row_of(struct stats_w *s, struct rm_stats_slot *sl, uint64_t id,
				   struct rm_stats_slot **owner)
{
	uint32_t ix;

	*owner = sl;
	for (int i = 0; i < RM_STATS_ROWS - 1; i++) {
		ix = row_at(s, sl, i, id);
		if (!ix || ix > s->n_rows)
			break;
		if (__atomic_load_n(&s->rows[ix - 1].id, __ATOMIC_RELAXED) == id)
			return &s->rows[ix - 1];
	}
	ix = row_at(s, sl, RM_STATS_ROWS - 1, RM_STATS_ROW_OVERFLOW);
	if (ix && ix <= s->n_rows)
		return &s->rows[ix - 1];
	__atomic_fetch_add(&s->h->pool_full, 1, __ATOMIC_RELAXED);
	*owner = overflow_slot(s);
	return &s->rows[0];
}

static void hist_add(struct rm_stats_hist *h, uint64_t v, uint64_t v_milli)
{
	ADD(&h->b[bucket(v_milli)], 1);
	ADD(&h->sum, v);
}

void stats_request(struct stats_w *s, struct rm_stats_slot *sl, int code, uint32_t flags,
		   uint64_t dur_us, uint64_t req_bytes, uint64_t resp_bytes)
{
	struct rm_stats_slot *owner;
	struct rm_stats_row *r;

	if (!s || !s->h || !sl)
		return;
	if (code < 0 || code > 999)
		code = 0;
	flags &= (1u << RM_STATS_F_MAX) - 1;
	r = row_of(s, sl, RM_STATS_ROW_ID((unsigned)code, flags), &owner);
	wbegin(owner);
	hist_add(&r->dur, dur_us, dur_us); /* us are thousandths of the ms bounds */
	hist_add(&r->req, req_bytes, req_bytes * 1000);
	hist_add(&r->resp, resp_bytes, resp_bytes * 1000);
	wend(owner);
}

void stats_tcp(struct rm_stats_slot *sl, uint64_t opened, uint64_t closed, uint64_t sent,
	       uint64_t received)
{
	if (!sl)
		return;
	wbegin(sl);
	if (opened)
		ADD(&sl->tcp_opened, opened);
	if (closed)
		ADD(&sl->tcp_closed, closed);
	if (sent)
		ADD(&sl->tcp_sent_bytes, sent);
	if (received)
		ADD(&sl->tcp_received_bytes, received);
	wend(sl);
}

void stats_set_generation(struct stats_w *s, uint64_t gen)
{
	if (s && s->h)
		__atomic_store_n(&s->h->generation, gen, __ATOMIC_RELAXED);
}

void stats_cfg_applied(struct stats_w *s, uint64_t latency_us)
{
	struct rm_stats_hdr *h;

	if (!s || !s->h)
		return;
	h = s->h;
	__atomic_store_n(&h->cfg_apply_last_us, latency_us, __ATOMIC_RELAXED);
	hist_add(&h->cfg_apply, latency_us, latency_us);
	ADD(&h->cfg_applies, 1);
}

void stats_cfg_rejected(struct stats_w *s, uint64_t rejected)
{
	if (s && s->h)
		__atomic_store_n(&s->h->cfg_rejected, rejected, __ATOMIC_RELAXED);
}

#define PUT(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

void stats_worker_bufs(struct stats_w *s, unsigned int worker, const struct bufpool *cp,
		       const struct bufpool *up, uint64_t now_ns)
{
	struct rm_stats_wk *w;
	uint32_t n;

	if (!s || !s->h || worker >= RM_STATS_WORKERS)
		return;
	n = __atomic_load_n(&s->h->wk_pid, __ATOMIC_RELAXED);
	if (n != s->pid) {
		uint64_t last = __atomic_load_n(&s->h->wk_ns, __ATOMIC_RELAXED);

		/* another daemon's, unless it stopped writing: then ours again */
		if (now_ns < last + RM_STATS_WK_STALE_NS ||
		    !__atomic_compare_exchange_n(&s->h->wk_pid, &n, s->pid, false, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
			return;
		__atomic_store_n(&s->h->n_wk, 0, __ATOMIC_RELAXED);
	}
	w = &s->h->wk[worker];
	PUT(&w->buf_waits, cp->exhausted);
	PUT(&w->up_buf_waits, up->exhausted);
	PUT(&w->bufs_used, cp->used);
	PUT(&w->bufs, cp->n);
	PUT(&w->up_bufs_used, up->used);
	PUT(&w->up_bufs, up->n);
	PUT(&w->bufs_resident,
	    (uint64_t)bufpool_warm(cp) * cp->size + (uint64_t)bufpool_warm(up) * up->size);
	PUT(&s->h->wk_ns, now_ns);
	n = __atomic_load_n(&s->h->n_wk, __ATOMIC_RELAXED);
	while (n <= worker && !__atomic_compare_exchange_n(&s->h->n_wk, &n, worker + 1, true,
							   __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* ---- request mirroring ---- */

void stats_mirror_sent(struct stats_w *s)
{
	if (s && s->h)
		ADD(&s->h->mirror.sent, 1);
}

void stats_mirror_answered(struct stats_w *s)
{
	if (s && s->h)
		ADD(&s->h->mirror.answered, 1);
}

void stats_mirror_skipped(struct stats_w *s, enum rm_mirror_skip why)
{
	if (s && s->h && why < RM_MIR_SKIP_N)
		ADD(&s->h->mirror.skipped[why], 1);
}

void stats_mirror_failed(struct stats_w *s, enum rm_mirror_fail why)
{
	if (s && s->h && why < RM_MIR_FAIL_N)
		ADD(&s->h->mirror.failed[why], 1);
}
