/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Idle upstream connections by endpoint. Buckets are found by linear probing on a
 * hash of the key; a bucket, once used, keeps its key for the worker's life, so
 * probing never needs tombstones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringmeshd/pool.h"

int pool_init(struct pool *p, uint32_t n_buckets, uint32_t max_idle)
{
	uint32_t n = 1;

	memset(p, 0, sizeof(*p));
	if (!n_buckets || n_buckets > (1u << 24))
		return -EINVAL;
	while (n < n_buckets)
		n <<= 1;
	p->b = calloc(n, sizeof(*p->b));
	if (!p->b)
		return -ENOMEM;
	p->n_buckets = n;
	p->max_idle = max_idle;
	/* a bucket's list head is set when the bucket is claimed: writing all of them
	 * here would make every page of the table resident */
	return 0;
}

void pool_fini(struct pool *p)
{
	free(p->b);
	memset(p, 0, sizeof(*p));
}

static uint32_t key_hash(const struct pool_key *k)
{
	uint32_t h = 2166136261u;
	const uint8_t *b = k->addr.a8;

	for (int i = 0; i < 16; i++)
		h = (h ^ b[i]) * 16777619u;
	h = (h ^ (k->port & 0xff)) * 16777619u;
	h = (h ^ (k->port >> 8)) * 16777619u;
	h = (h ^ k->group) * 16777619u;
	return h ^ (h >> 16);
}

static bool key_eq(const struct pool_key *a, const struct pool_key *b)
{
	return a->port == b->port && a->family == b->family && a->group == b->group &&
	       !memcmp(a->addr.a8, b->addr.a8, sizeof(a->addr.a8));
}

/* Bucket of key; with create, claim a free one. POOL_NONE when absent / full. */
static uint32_t find(struct pool *p, const struct pool_key *key, bool create)
{
	uint32_t mask = p->n_buckets - 1, i = key_hash(key) & mask;

	for (uint32_t n = 0; n < p->n_buckets; n++, i = (i + 1) & mask) {
		struct pool_bucket *b = &p->b[i];

		if (!b->used) {
			if (!create)
				return POOL_NONE;
			b->used = true;
			b->key = *key;
			b->head.prev = b->head.next = &b->head;
			b->limit = p->max_idle < POOL_START_IDLE ? p->max_idle : POOL_START_IDLE;
			p->n_used++;
			return i;
		}
		if (key_eq(&b->key, key))
			return i;
	}
	return POOL_NONE;
}

int pool_put(struct pool *p, const struct pool_key *key, struct pool_link *l)
{
	uint32_t i = find(p, key, true);
	struct pool_bucket *b;

	if (i == POOL_NONE)
		return -ENOSPC;
	b = &p->b[i];
	if (b->n_idle >= b->limit) {
		if (!b->missed || b->limit >= p->max_idle)
			return -ENOSPC;
		/* demand outgrew the bound: keep this one and the next as many */
		b->limit = b->limit > p->max_idle / 2 ? p->max_idle : 2 * b->limit;
		b->missed = false;
	}
	l->bucket = i;
	l->prev = &b->head;
	l->next = b->head.next;
	b->head.next->prev = l;
	b->head.next = l;
	b->n_idle++;
	p->parked++;
	return 0;
}

void pool_remove(struct pool *p, struct pool_link *l)
{
	if (l->bucket == POOL_NONE || l->bucket >= p->n_buckets)
		return;
	l->prev->next = l->next;
	l->next->prev = l->prev;
	p->b[l->bucket].n_idle--;
	p->parked--;
	pool_link_init(l);
}

struct pool_link *pool_get(struct pool *p, const struct pool_key *key)
{
	uint32_t i = find(p, key, true); /* a miss is remembered in the key's bucket */
	struct pool_link *l;

	if (i == POOL_NONE)
		return NULL;
	if (!p->b[i].n_idle) {
		p->b[i].missed = true;
		return NULL;
	}
	l = p->b[i].head.next;
	pool_remove(p, l);
	return l;
}

uint32_t pool_idle(const struct pool *p, const struct pool_key *key)
{
	uint32_t i = find((struct pool *)p, key, false);

	return i == POOL_NONE ? 0 : p->b[i].n_idle;
}

uint32_t pool_limit(const struct pool *p, const struct pool_key *key)
{
	uint32_t i = find((struct pool *)p, key, false);

	return i == POOL_NONE ? 0 : p->b[i].limit;
}
