/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Balancing over the available members only: the k-th available member is found
 * by counting, so an ejected host does not hand its share to its neighbour (which
 * a "skip to the next one" scan would do, doubling that neighbour's load).
 */
#include <errno.h>

#include "policy/lb.h"

int lb_init(struct lb_state *s, uint32_t policy)
{
	if (!s || policy > RM_LB_PASSTHROUGH)
		return -EINVAL;
	s->policy = policy;
	s->pad = 0;
	__atomic_store_n(&s->rr, 0, __ATOMIC_RELAXED);
	return 0;
}

static bool avail(const struct lb_hooks *h, uint32_t ep)
{
	return !h || !h->available || h->available(h->ctx, ep);
}

static uint64_t below(uint64_t r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

static uint64_t remix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Positions of the ka-th and kb-th available members. Availability may change
 * while we look (another thread ejects a host): then the last available member
 * seen stands in, and -ENOENT only if none is left at all.
 */
static int nth2(const uint32_t *m, size_t n, const struct lb_hooks *h, size_t ka, size_t kb,
		size_t *pa, size_t *pb)
{
	size_t seen = 0, last = n;
	bool fa = false, fb = false;

	if (!h || !h->available) {
		*pa = ka;
		*pb = kb;
		return 0;
	}
	for (size_t i = 0; i < n && !(fa && fb); i++) {
		if (!h->available(h->ctx, m[i]))
			continue;
		if (seen == ka) {
			*pa = i;
			fa = true;
		}
		if (seen == kb) {
			*pb = i;
			fb = true;
		}
		last = i;
		seen++;
	}
	if (last == n)
		return -ENOENT;
	if (!fa)
		*pa = last;
	if (!fb)
		*pb = last;
	return 0;
}

int lb_pick(struct lb_state *s, const uint32_t *members, size_t n, const struct lb_hooks *h,
	    uint64_t rnd, size_t *pos)
{
	size_t n_av = 0, ka, kb, pa = 0, pb = 0;
	int ret;

	if (!s || !pos || (n && !members))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		n_av += avail(h, members[i]);
	if (!n_av)
		return -ENOENT;
	switch (s->policy) {
	case RM_LB_RANDOM:
		ka = below(rnd, n_av);
		kb = ka;
		break;
	case RM_LB_LEAST_CONN:
		ka = below(rnd, n_av);
		kb = ka;
		/* two distinct candidates whenever there are two */
		if (n_av > 1)
			kb = (ka + 1 + below(remix(rnd), n_av - 1)) % n_av;
		break;
	case RM_LB_ROUND_ROBIN:
	case RM_LB_PASSTHROUGH:
		ka = __atomic_fetch_add(&s->rr, 1, __ATOMIC_RELAXED) % n_av;
		kb = ka;
		break;
	default:
		return -EINVAL;
	}
	ret = nth2(members, n, h, ka, kb, &pa, &pb);
	if (ret)
		return ret;
	if (pa != pb && h && h->active &&
	    h->active(h->ctx, members[pb]) < h->active(h->ctx, members[pa]))
		pa = pb;
	*pos = pa;
	return 0;
}
