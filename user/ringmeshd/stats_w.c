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

static const uint64_t dur_bounds[] = RM_STATS_DUR_BOUNDS_US;
static const uint64_t byte_bounds[] = RM_STATS_BYTES_BOUNDS;

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
	put_str(k->src_workload, sizeof(k->src_workload), NULL);
	put_str(k->src_version, sizeof(k->src_version), NULL);
	k->proto = proto;
}

uint32_t stats_key_hash(const struct rm_stats_key *k)
{
	const uint8_t *b = (const uint8_t *)k;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

struct rm_stats_slot *stats_slot(struct stats_w *s, const struct rm_stats_key *k)
{
	uint32_t h, nslots, start;

	if (!s || !s->e || s->n < 2)
		return NULL;
	h = stats_key_hash(k);
	nslots = s->n - 1;
	start = h % nslots;
	for (uint32_t p = 0; p < RM_STATS_PROBE && p < nslots; p++) {
		struct rm_stats_slot *sl = &s->e[1 + (start + p) % nslots].slot;
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
	__atomic_fetch_add(&s->e[0].hdr.dropped, 1, __ATOMIC_RELAXED);
	return NULL;
}

static unsigned bucket(const uint64_t *bounds, unsigned n, uint64_t v)
{
	for (unsigned i = 0; i < n; i++)
		if (v <= bounds[i])
			return i;
	return n;
}

#define ADD(p, v) __atomic_fetch_add((p), (uint64_t)(v), __ATOMIC_RELAXED)

void stats_request(struct rm_stats_slot *sl, int code, uint32_t flags, uint64_t dur_us,
		   uint64_t req_bytes, uint64_t resp_bytes)
{
	unsigned cls = code >= 100 && code <= 599 ? (unsigned)code / 100 : 0;
	bool counted = false;

	if (!sl)
		return;
	ADD(&sl->requests, 1);
	ADD(&sl->code_class[cls], 1);
	for (int i = 0; code && i < RM_STATS_CODES && !counted; i++) {
		uint32_t c = __atomic_load_n(&sl->codes[i].code, __ATOMIC_ACQUIRE);

		if (c == 0) {
			uint32_t exp = 0;

			if (__atomic_compare_exchange_n(&sl->codes[i].code, &exp, (uint32_t)code,
							false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				c = (uint32_t)code;
			else
				c = exp;
		}
		if (c == (uint32_t)code) {
			ADD(&sl->codes[i].count, 1);
			counted = true;
		}
	}
	if (code && !counted)
		ADD(&sl->codes_other, 1);
	for (int f = 0; f < RM_STATS_F_MAX; f++)
		if (flags & (1u << f))
			ADD(&sl->flags[f], 1);
	ADD(&sl->dur_buckets[bucket(dur_bounds, RM_STATS_DUR_BUCKETS - 1, dur_us)], 1);
	ADD(&sl->dur_sum_us, dur_us);
	ADD(&sl->req_bytes_buckets[bucket(byte_bounds, RM_STATS_BYTES_BUCKETS - 1, req_bytes)], 1);
	ADD(&sl->req_bytes_sum, req_bytes);
	ADD(&sl->resp_bytes_buckets[bucket(byte_bounds, RM_STATS_BYTES_BUCKETS - 1, resp_bytes)],
	    1);
	ADD(&sl->resp_bytes_sum, resp_bytes);
}

void stats_tcp(struct rm_stats_slot *sl, uint64_t opened, uint64_t closed, uint64_t sent,
	       uint64_t received)
{
	if (!sl)
		return;
	if (opened)
		ADD(&sl->tcp_opened, opened);
	if (closed)
		ADD(&sl->tcp_closed, closed);
	if (sent)
		ADD(&sl->tcp_sent_bytes, sent);
	if (received)
		ADD(&sl->tcp_received_bytes, received);
}

void stats_set_generation(struct stats_w *s, uint64_t gen)
{
	if (s && s->e)
		__atomic_store_n(&s->e[0].hdr.generation, gen, __ATOMIC_RELAXED);
}
