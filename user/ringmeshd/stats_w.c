/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * rm_stats writer. Slots are claimed FREE -> CLAIMING by CAS, filled, then made
 * LIVE with a release store; a thread that meets a CLAIMING slot waits for it (the
 * claimer is a few stores away from LIVE) because the key may be its own.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "common/pin.h"
#include "ringmeshd/stats_w.h"

static const uint64_t bounds_milli[RM_STATS_BUCKETS - 1] = RM_STATS_BOUNDS_MILLI;

static void init_hdr(struct stats_w *s, uint64_t realtime_ns)
{
	struct rm_stats_hdr *h = &s->e[0].hdr;

	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == RM_STATS_MAGIC)
		return;
	h->n_slots = s->n;
	h->started_ns = realtime_ns;
	h->dropped = 0;
	__atomic_store_n(&h->magic, RM_STATS_MAGIC, __ATOMIC_RELEASE);
}

void stats_w_attach(struct stats_w *s, union rm_stats_entry *mem, uint32_t n, uint64_t realtime_ns)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->e = mem;
	s->n = n;
	init_hdr(s, realtime_ns);
}

int stats_w_open(struct stats_w *s, const char *pin_dir, uint64_t realtime_ns, char *err,
		 size_t errlen)
{
	struct pin_map m;
	int r;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	r = pin_open(&m, PIN_STATS, pin_dir, PIN_O_MMAP, err, errlen);
	if (r)
		return r;
	s->fd = m.fd;
	s->map = m.mem;
	s->map_len = m.mem_len;
	s->n = m.info.max_entries;
	s->e = s->map;
	init_hdr(s, realtime_ns);
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

/* Entries 0 (header) and RM_STATS_OVERFLOW_SLOT are never probed. */
#define FIRST_PROBED (RM_STATS_OVERFLOW_SLOT + 1)

static struct rm_stats_slot *overflow_slot(struct stats_w *s)
{
	struct rm_stats_slot *sl = &s->e[RM_STATS_OVERFLOW_SLOT].slot;
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
	while (st == RM_STATS_CLAIMING)
		st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
	return sl;
}

struct rm_stats_slot *stats_slot(struct stats_w *s, const struct rm_stats_key *k)
{
	uint32_t h, nslots, start;

	if (!s || !s->e || s->n <= FIRST_PROBED)
		return NULL;
	h = stats_key_hash(k);
	nslots = s->n - FIRST_PROBED;
	start = h % nslots;
	for (uint32_t p = 0; p < RM_STATS_PROBE && p < nslots; p++) {
		struct rm_stats_slot *sl = &s->e[FIRST_PROBED + (start + p) % nslots].slot;
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
		while (st == RM_STATS_CLAIMING)
			st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
		if (st == RM_STATS_LIVE && sl->key_hash == h && !memcmp(&sl->key, k, sizeof(*k)))
			return sl;
	}
	/* counted, not lost: the sample goes to the overflow slot */
	__atomic_fetch_add(&s->e[0].hdr.dropped, 1, __ATOMIC_RELAXED);
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

/* The row of (code, flags): found, claimed, or the overflow row. */
static struct rm_stats_row *row_of(struct rm_stats_slot *sl, uint64_t id)
{
	for (int i = 0; i < RM_STATS_ROWS - 1; i++) {
		uint64_t cur = __atomic_load_n(&sl->rows[i].id, __ATOMIC_ACQUIRE);

		if (cur == 0) {
			uint64_t exp = 0;

			if (__atomic_compare_exchange_n(&sl->rows[i].id, &exp, id, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				return &sl->rows[i];
			cur = exp;
		}
		if (cur == id)
			return &sl->rows[i];
	}
	return &sl->rows[RM_STATS_ROWS - 1];
}

static void hist_add(struct rm_stats_hist *h, uint64_t v, uint64_t v_milli)
{
	ADD(&h->b[bucket(v_milli)], 1);
	ADD(&h->sum, v);
}

void stats_request(struct rm_stats_slot *sl, int code, uint32_t flags, uint64_t dur_us,
		   uint64_t req_bytes, uint64_t resp_bytes)
{
	struct rm_stats_row *r;

	if (!sl)
		return;
	if (code < 0 || code > 999)
		code = 0;
	flags &= (1u << RM_STATS_F_MAX) - 1;
	r = row_of(sl, RM_STATS_ROW_ID((unsigned)code, flags));
	wbegin(sl);
	hist_add(&r->dur, dur_us, dur_us); /* us are thousandths of the ms bounds */
	hist_add(&r->req, req_bytes, req_bytes * 1000);
	hist_add(&r->resp, resp_bytes, resp_bytes * 1000);
	wend(sl);
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
	if (s && s->e)
		__atomic_store_n(&s->e[0].hdr.generation, gen, __ATOMIC_RELAXED);
}

void stats_cfg_applied(struct stats_w *s, uint64_t latency_us)
{
	struct rm_stats_hdr *h;

	if (!s || !s->e)
		return;
	h = &s->e[0].hdr;
	__atomic_store_n(&h->cfg_apply_last_us, latency_us, __ATOMIC_RELAXED);
	hist_add(&h->cfg_apply, latency_us, latency_us);
	ADD(&h->cfg_applies, 1);
}

void stats_cfg_rejected(struct stats_w *s, uint64_t rejected)
{
	if (s && s->e)
		__atomic_store_n(&s->e[0].hdr.cfg_rejected, rejected, __ATOMIC_RELAXED);
}
