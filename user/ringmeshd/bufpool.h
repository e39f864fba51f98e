/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bufpool: a per-worker pool of equal buffer blocks that connections borrow while
 * bytes are in flight and give back when they go idle, so an idle connection holds
 * no buffer memory. The blocks live in one reserved mapping (MAP_NORESERVE): a block
 * never borrowed has no resident pages, and a borrowed one only the pages written.
 *
 * Given-back blocks stack up LIFO, so the next borrower gets the one most recently
 * used (its pages are resident, its cache lines may be warm). bufpool_trim, called
 * periodically, hands the pages of free blocks back to the kernel (MADV_DONTNEED)
 * beyond what the last period's peak demand needed, so memory follows the load down
 * after a burst instead of staying at its high-water mark.
 *
 * The pool is bounded: when every block is out, bufpool_get returns NULL and counts
 * it; the caller stops reading that connection until a block comes back (it is
 * backpressure, not a failure). One connection borrows at most one block of a pool,
 * so a slow reader holds one block, never the pool.
 *
 * Not thread-safe: one worker thread owns a pool.
 */
#ifndef RM_BUFPOOL_H
#define RM_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

struct bufpool {
	uint8_t *base;	 /* n * size bytes, reserved */
	size_t size;	 /* bytes per block (a page multiple) */
	size_t map_len;	 /* the mapping's length */
	uint32_t n;	 /* blocks */
	uint32_t fresh;	 /* blocks [fresh, n) were never borrowed */
	uint32_t *stack; /* free blocks (index), the most recently given back on top */
	uint32_t n_free; /* entries in stack */
	uint32_t cold;	 /* stack[0, cold) have had their pages dropped */
	uint32_t keep;	 /* free blocks a trim always leaves resident */
	uint32_t used;	 /* borrowed now */
	uint32_t peak;	 /* most borrowed at once since the last trim */
	/* counters */
	uint64_t gets;	    /* blocks borrowed */
	uint64_t exhausted; /* bufpool_get found none */
	uint64_t trimmed;   /* blocks whose pages went back to the kernel */
};

/* n blocks of at least size bytes (rounded up to pages); a trim leaves keep free
 * blocks resident. 0 or -EINVAL / -ENOMEM. */
int bufpool_init(struct bufpool *p, size_t size, uint32_t n, uint32_t keep);
void bufpool_fini(struct bufpool *p);

/* A block, or NULL when all n are borrowed (counted in exhausted). */
void *bufpool_get(struct bufpool *p);

/* Give a block back (NULL: no-op). Its contents are undefined at the next get. */
void bufpool_put(struct bufpool *p, void *b);

/* Drop the pages of free blocks beyond what demand since the last trim needed
 * (at least keep stay resident), least recently used first; starts a new period.
 * Returns the blocks dropped. */
uint32_t bufpool_trim(struct bufpool *p);

/* Is a block left to borrow? */
static inline int bufpool_avail(const struct bufpool *p)
{
	return p->n_free || p->fresh < p->n;
}

/* Blocks whose pages may be resident (borrowed, or free and not yet dropped). */
static inline uint32_t bufpool_warm(const struct bufpool *p)
{
	return p->used + p->n_free - p->cold;
}

#endif /* RM_BUFPOOL_H */
