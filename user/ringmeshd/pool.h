/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * pool: the per-worker index of idle keep-alive upstream connections. Owns the
 * endpoint-keyed buckets (address + port, open addressing, never shrunk: bounded by
 * the endpoints a worker has talked to) and an LRU list per bucket of embedded
 * links. A get returns the most recently parked connection (its socket is the one
 * least likely to have been closed by the server); the idle count per endpoint is
 * bounded, and the bound follows demand: it starts at POOL_START_IDLE and doubles
 * (up to max_idle) when a connection comes back over it after a get found none
 * idle there, that is, when the endpoint needed more connections at once than the
 * pool kept (else each burst would close what the next one opens again). What goes
 * unused is closed by the caller's idle timer. What a link belongs to, and its idle
 * timer, are the caller's business.
 *
 * Pure: no I/O, no allocation after pool_init.
 */
#ifndef RM_POOL_H
#define RM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmesh/abi.h"

struct pool_key {
	struct rm_addr addr;
	__be16 port;
	uint16_t family;
	/* the breaker pool a connection counts against: reused only within it, so each
	 * subset's connection limit counts its own connections (0 when there is none) */
	uint32_t group;
};

struct pool_link {
	struct pool_link *prev, *next; /* in its bucket's idle list */
	uint32_t bucket;	       /* POOL_NONE when not parked */
};
#define POOL_NONE UINT32_MAX

#define POOL_START_IDLE 64u

struct pool_bucket {
	struct pool_key key;
	bool used;
	bool missed;	/* a get found none idle since limit last grew */
	uint32_t limit; /* idle connections kept now (POOL_START_IDLE..max_idle) */
	uint32_t n_idle;
	struct pool_link head; /* sentinel: head.next is the most recent */
};

struct pool {
	struct pool_bucket *b;
	uint32_t n_buckets; /* power of two */
	uint32_t n_used;
	uint32_t max_idle; /* per endpoint, the most the bound grows to */
	uint64_t parked;   /* idle connections now, all endpoints */
};

/* n_buckets is rounded up to a power of two. 0 or -ENOMEM / -EINVAL. */
int pool_init(struct pool *p, uint32_t n_buckets, uint32_t max_idle);
void pool_fini(struct pool *p);

static inline void pool_link_init(struct pool_link *l)
{
	l->prev = l->next = NULL;
	l->bucket = POOL_NONE;
}

/* Park l under key. -ENOSPC when the endpoint already has its bound parked (and
 * it cannot grow) or no bucket is free (the caller closes the connection instead). */
int pool_put(struct pool *p, const struct pool_key *key, struct pool_link *l);

/* Take the most recently parked link for key, or NULL. */
struct pool_link *pool_get(struct pool *p, const struct pool_key *key);

/* Unpark l (its connection closed or timed out while idle); no-op if not parked. */
void pool_remove(struct pool *p, struct pool_link *l);

/* Idle connections parked for key, and the bound they are kept to now. */
uint32_t pool_idle(const struct pool *p, const struct pool_key *key);
uint32_t pool_limit(const struct pool *p, const struct pool_key *key);

#endif /* RM_POOL_H */
