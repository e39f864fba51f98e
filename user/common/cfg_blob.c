/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_blob: a compiled configuration's tables as growable arrays (what the
 * compiler fills), packed into one blob (struct rm_cfg_blob and its tables: what a
 * half's map holds) and viewed again from a copy of it, with every offset and count
 * checked against the blob's length first. Pure: no I/O. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"

#define T(ptr, cnt, type)                                                                          \
	{                                                                                          \
		offsetof(struct rm_cfg, ptr), offsetof(struct rm_cfg, cnt), sizeof(type)           \
	}

static const struct {
	size_t ptr, cnt, size;
} tabs[RM_CFG_T_MAX] = {
    [RM_CFG_T_SERVICES] = T(services, n_services, struct rm_cfg_service),
    [RM_CFG_T_RULES] = T(rules, n_rules, struct rm_cfg_rule),
    [RM_CFG_T_MATCHES] = T(matches, n_matches, struct rm_cfg_match),
    [RM_CFG_T_CONDS] = T(conds, n_conds, struct rm_cfg_cond),
    [RM_CFG_T_TARGETS] = T(targets, n_targets, struct rm_cfg_target),
    [RM_CFG_T_HDROPS] = T(hdrops, n_hdrops, struct rm_cfg_hdrop),
    [RM_CFG_T_SUBSETS] = T(subsets, n_subsets, struct rm_cfg_subset),
    [RM_CFG_T_ENDPOINTS] = T(endpoints, n_endpoints, struct rm_cfg_endpoint),
    [RM_CFG_T_MEMBERS] = T(members, n_members, __u32),
    [RM_CFG_T_LABELS] = T(labels, n_labels, struct rm_cfg_label),
    [RM_CFG_T_STRTAB] = T(strtab, strtab_len, char),
};

static void **tab_ptr(struct rm_cfg *c, int t)
{
	return (void **)((char *)c + tabs[t].ptr);
}

static uint32_t tab_count(const struct rm_cfg *c, int t)
{
	return *(const uint32_t *)((const char *)c + tabs[t].cnt);
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

int cfg_init(struct rm_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->magic = RM_CFG_MAGIC;
	c->abi_version = RM_CFG_ABI_VERSION;
	if (cfg_reserve(c, RM_CFG_T_STRTAB, 1))
		return -ENOMEM;
	c->strtab[0] = '\0';
	c->strtab_len = 1;
	return 0;
}

int cfg_reserve(struct rm_cfg *c, enum rm_cfg_table t, size_t n)
{
	void **p = tab_ptr(c, t);
	size_t cap = c->cap[t];
	void *v;

	if (n <= cap)
		return 0;
	if (c->blob || n > (t == RM_CFG_T_STRTAB ? UINT32_MAX / 2 : RM_CFG_TABLE_LIMIT))
		return -ENOSPC;
	cap = cap ? cap : 16;
	while (cap < n)
		cap *= 2;
	v = realloc(*p, cap * tabs[t].size);
	if (!v)
		return -ENOMEM;
	memset((char *)v + c->cap[t] * tabs[t].size, 0, (cap - c->cap[t]) * tabs[t].size);
	*p = v;
	c->cap[t] = (uint32_t)cap;
	return 0;
}

void cfg_free(struct rm_cfg *c)
{
	if (!c)
		return;
	if (c->blob)
		free(c->blob);
	else
		for (int t = 0; t < RM_CFG_T_MAX; t++)
			free(*tab_ptr(c, t));
	memset(c, 0, sizeof(*c));
}

size_t cfg_blob_size(const struct rm_cfg *c)
{
	size_t n = align8(sizeof(struct rm_cfg_blob));

	for (int t = 0; t < RM_CFG_T_MAX; t++)
		n += align8((size_t)tab_count(c, t) * tabs[t].size);
	return n;
}

void cfg_blob_write(const struct rm_cfg *c, void *buf)
{
	struct rm_cfg_blob *h = buf;
	size_t off = align8(sizeof(*h));

	memset(h, 0, sizeof(*h));
	h->magic = c->magic;
	h->abi_version = c->abi_version;
	h->generation = c->generation;
	h->n_docs = c->n_docs;
	for (int t = 0; t < RM_CFG_T_MAX; t++) {
		size_t len = (size_t)tab_count(c, t) * tabs[t].size;
		const void *src = *tab_ptr((struct rm_cfg *)c, t);

		h->tab[t].off = (uint32_t)off;
		h->tab[t].count = tab_count(c, t);
		if (len)
			memcpy((char *)buf + off, src, len);
		/* zero padding: two blobs of one configuration compare equal */
		memset((char *)buf + off + len, 0, align8(len) - len);
		off += align8(len);
	}
	h->size = (uint32_t)off;
}

int cfg_view(struct rm_cfg *out, void *blob, size_t len, char *err, size_t errlen)
{
	const struct rm_cfg_blob *h = blob;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(*h) || h->magic != RM_CFG_MAGIC) {
		snprintf(err, errlen, "configuration: bad magic");
		return -EBADMSG;
	}
	if (h->abi_version != RM_CFG_ABI_VERSION) {
		snprintf(err, errlen, "configuration: ABI version %u, this build reads %u",
			 h->abi_version, RM_CFG_ABI_VERSION);
		return -EPROTO;
	}
	if (h->size > len) {
		snprintf(err, errlen, "configuration: %u bytes claimed, %zu held", h->size, len);
		return -EBADMSG;
	}
	for (int t = 0; t < RM_CFG_T_MAX; t++) {
		size_t off = h->tab[t].off, n = h->tab[t].count;

		if ((off & 7) || off < sizeof(*h) || off > h->size ||
		    n > (h->size - off) / tabs[t].size) {
			snprintf(err, errlen, "configuration: table %d out of bounds", t);
			return -EBADMSG;
		}
		*tab_ptr(out, t) = n ? (char *)blob + off : NULL;
		*(uint32_t *)((char *)out + tabs[t].cnt) = (uint32_t)n;
		out->cap[t] = (uint32_t)n;
	}
	if (!out->strtab_len || out->strtab[0] || out->strtab[out->strtab_len - 1]) {
		memset(out, 0, sizeof(*out));
		snprintf(err, errlen, "configuration: malformed string table");
		return -EBADMSG;
	}
	out->magic = h->magic;
	out->abi_version = h->abi_version;
	out->generation = h->generation;
	out->n_docs = h->n_docs;
	out->blob = blob;
	return 0;
}

int cfg_src_reserve(struct rm_cfg_src *s, size_t n)
{
	size_t cap = s->cap ? s->cap : 4096;
	char *v;

	if (n <= s->cap)
		return 0;
	if (n > UINT32_MAX / 2)
		return -ENOSPC;
	while (cap < n)
		cap *= 2;
	v = realloc(s->text, cap);
	if (!v)
		return -ENOMEM;
	s->text = v;
	s->cap = cap;
	return 0;
}

void cfg_src_free(struct rm_cfg_src *s)
{
	if (!s)
		return;
	free(s->text);
	memset(s, 0, sizeof(*s));
}

bool cfg_equal(const struct rm_cfg *a, const struct rm_cfg *b)
{
	size_t n = cfg_blob_size(a);
	char *x, *y;
	bool eq = false;

	if (n != cfg_blob_size(b))
		return false;
	x = malloc(n);
	y = malloc(n);
	if (x && y) {
		cfg_blob_write(a, x);
		cfg_blob_write(b, y);
		eq = !memcmp(x, y, n);
	}
	free(x);
	free(y);
	return eq;
}
