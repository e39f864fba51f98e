/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Borrowed buffer blocks (bufpool.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "ringmeshd/bufpool.h"

int bufpool_init(struct bufpool *p, size_t size, uint32_t n, uint32_t keep)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	memset(p, 0, sizeof(*p));
	if (!size || !n || size > (SIZE_MAX - page) / n)
		return -EINVAL;
	p->size = (size + page - 1) & ~(page - 1);
	p->n = n;
	p->keep = keep;
	p->map_len = p->size * n;
	p->base = mmap(NULL, p->map_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	p->stack = calloc(n, sizeof(*p->stack));
	if (p->base == MAP_FAILED || !p->stack) {
		if (p->base != MAP_FAILED)
			munmap(p->base, p->map_len);
		free(p->stack);
		memset(p, 0, sizeof(*p));
		return -ENOMEM;
	}
	return 0;
}

void bufpool_fini(struct bufpool *p)
{
	if (p->base)
		munmap(p->base, p->map_len);
	free(p->stack);
	memset(p, 0, sizeof(*p));
}

void *bufpool_get(struct bufpool *p)
{
	uint32_t i;

	if (p->n_free) {
		i = p->stack[--p->n_free];
		if (p->cold > p->n_free)
			p->cold = p->n_free; /* that one had been dropped */
	} else if (p->fresh < p->n) {
		i = p->fresh++;
	} else {
		p->exhausted++;
		return NULL;
	}
	p->used++;
	if (p->used > p->peak)
		p->peak = p->used;
	p->gets++;
	return p->base + (size_t)i * p->size;
}

void bufpool_put(struct bufpool *p, void *b)
{
	if (!b)
		return;
	p->stack[p->n_free++] = (uint32_t)(((uint8_t *)b - p->base) / p->size);
	p->used--;
}

uint32_t bufpool_trim(struct bufpool *p)
{
	uint32_t want = p->peak > p->used ? p->peak - p->used : 0, dropped = 0;

	if (want < p->keep)
		want = p->keep;
	while (p->n_free - p->cold > want) {
		madvise(p->base + (size_t)p->stack[p->cold] * p->size, p->size, MADV_DONTNEED);
		p->cold++;
		dropped++;
	}
	p->trimmed += dropped;
	p->peak = p->used;
	return dropped;
}
