/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_store: the pinned configuration on bpffs. Opens (or creates and pins, with
 * the parameters of common/pin.c's table) rm_cfg_ctl, rm_cfg and rm_cfg_src, mmaps
 * them, publishes a compiled half under its seqlock and flips the active index,
 * and takes consistent snapshots. Writers serialise with flock on the pin dir. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common/cfg.h"
#include "common/pin.h"
#include "common/util.h"

/* Open (or create and pin) one map of the store and map it whole. */
static int open_map(enum pin_id id, const char *pin_dir, bool create, int *fd, void **mem,
		    size_t *len, char *err, size_t errlen)
{
	struct pin_map m;
	int r = pin_open(&m, id, pin_dir, PIN_O_MMAP | (create ? PIN_O_CREATE : 0), err, errlen);

	if (r)
		return r;
	*fd = m.fd;
	*mem = m.mem;
	*len = m.mem_len;
	return 0;
}

int cfg_store_open(struct cfg_store *s, const char *pin_dir, bool create, char *err, size_t errlen)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->ctl_fd = s->cfg_fd = s->src_fd = s->lock_fd = -1;
	if (create && mkdir(pin_dir, 0700) && errno != EEXIST) {
		r = -errno;
		snprintf(err, errlen, "mkdir %s: %s", pin_dir, strerror(errno));
		return r;
	}
	/* Creation races with another CLI or the daemon: hold the lock while creating. */
	if (create && (r = cfg_store_lock(s, pin_dir))) {
		snprintf(err, errlen, "lock %s: %s", pin_dir, strerror(-r));
		return r;
	}
	if ((r = open_map(PIN_CFG_CTL, pin_dir, create, &s->ctl_fd, &s->ctl_map, &s->ctl_map_len,
			  err, errlen)) ||
	    (r = open_map(PIN_CFG, pin_dir, create, &s->cfg_fd, &s->cfg_map, &s->cfg_map_len, err,
			  errlen)) ||
	    (r = open_map(PIN_CFG_SRC, pin_dir, create, &s->src_fd, &s->src_map, &s->src_map_len,
			  err, errlen)))
		goto fail;
	s->ctl = s->ctl_map;
	for (uint32_t h = 0; h < RM_CFG_HALVES; h++) {
		s->half[h] =
		    (struct rm_cfg *)((char *)s->cfg_map + pin_elem_off(&pin_defs[PIN_CFG], h));
		s->src[h] = (struct rm_cfg_src *)((char *)s->src_map +
						  pin_elem_off(&pin_defs[PIN_CFG_SRC], h));
	}
	cfg_store_unlock(s); /* creation done; writers lock per update */
	return 0;
fail:
	cfg_store_close(s);
	return r;
}

void cfg_store_close(struct cfg_store *s)
{
	if (s->ctl_map)
		munmap(s->ctl_map, s->ctl_map_len);
	if (s->cfg_map)
		munmap(s->cfg_map, s->cfg_map_len);
	if (s->src_map)
		munmap(s->src_map, s->src_map_len);
	if (s->ctl_fd >= 0)
		close(s->ctl_fd);
	if (s->cfg_fd >= 0)
		close(s->cfg_fd);
	if (s->src_fd >= 0)
		close(s->src_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* drops the flock */
	memset(s, 0, sizeof(*s));
	s->ctl_fd = s->cfg_fd = s->src_fd = s->lock_fd = -1;
}

int cfg_store_lock(struct cfg_store *s, const char *pin_dir)
{
	if (s->locked)
		return 0;
	s->lock_fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->lock_fd < 0)
		return -errno;
	if (flock(s->lock_fd, LOCK_EX)) {
		int r = -errno;

		close(s->lock_fd);
		s->lock_fd = -1;
		return r;
	}
	s->locked = true;
	return 0;
}

void cfg_store_unlock(struct cfg_store *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* drops the flock */
	s->lock_fd = -1;
	s->locked = false;
}

int cfg_store_snapshot(struct cfg_store *s, struct rm_cfg *out, struct rm_cfg_src *src,
		       uint64_t *generation)
{
	for (int tries = 0; tries < 1000000; tries++) {
		uint32_t a;
		uint64_t s1, s2, gen;

		gen = __atomic_load_n(&s->ctl->generation, __ATOMIC_ACQUIRE);
		a = __atomic_load_n(&s->ctl->active, __ATOMIC_ACQUIRE) & 1;
		if (!gen) {
			/* never published: an empty configuration */
			memset(out, 0, sizeof(*out));
			if (src)
				memset(src, 0, sizeof(*src));
			*generation = 0;
			return 0;
		}
		s1 = __atomic_load_n(&s->ctl->seq[a], __ATOMIC_ACQUIRE);
		if (s1 & 1) {
			sched_yield();
			continue;
		}
		memcpy(out, s->half[a], sizeof(*out));
		if (src)
			memcpy(src, s->src[a], sizeof(*src));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&s->ctl->seq[a], __ATOMIC_RELAXED);
		if (s1 == s2) {
			*generation = out->generation;
			return 0;
		}
	}
	return -EAGAIN;
}

static bool src_equal(const struct rm_cfg_src *a, const struct rm_cfg_src *b)
{
	return a->magic == b->magic && a->n_docs == b->n_docs && a->used == b->used &&
	       a->used <= RM_CFG_SRC_SIZE && !memcmp(a->text, b->text, a->used);
}

int cfg_store_publish(struct cfg_store *s, struct rm_cfg *cfg, struct rm_cfg_src *src,
		      bool *changed, uint64_t *generation)
{
	struct rm_cfg_ctl *ctl = s->ctl;
	uint32_t a = __atomic_load_n(&ctl->active, __ATOMIC_ACQUIRE) & 1, h = !a;
	uint64_t gen = __atomic_load_n(&ctl->generation, __ATOMIC_ACQUIRE);
	uint64_t seq;

	if (!s->locked)
		return -ENOLCK;
	*changed = false;
	if (gen) {
		size_t used = cfg_used_size(cfg);

		cfg->generation = s->half[a]->generation;
		if (used == cfg_used_size(s->half[a]) && !memcmp(cfg, s->half[a], used) &&
		    src_equal(src, s->src[a])) {
			*generation = gen;
			return 0;
		}
	}
	gen++;
	cfg->generation = gen;
	src->generation = gen;
	seq = __atomic_load_n(&ctl->seq[h], __ATOMIC_RELAXED);
	if (seq & 1)
		seq++; /* a writer died mid-write; the lock says nobody is writing now */
	__atomic_store_n(&ctl->seq[h], seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(s->half[h], cfg, sizeof(*cfg));
	memcpy(s->src[h], src, sizeof(*src));
	__atomic_store_n(&ctl->seq[h], seq + 2, __ATOMIC_RELEASE);
	ctl->magic = RM_CFG_MAGIC;
	ctl->abi_version = RM_CFG_ABI_VERSION;
	ctl->updated_ns = realtime_ns();
	__atomic_store_n(&ctl->active, h, __ATOMIC_RELEASE);
	__atomic_store_n(&ctl->generation, gen, __ATOMIC_RELEASE);
	*changed = true;
	*generation = gen;
	return 0;
}

static int load_docs(struct cfg_store *s, struct cfg_docs *docs, struct rm_cfg *scratch,
		     struct rm_cfg_src *src, char *err, size_t errlen)
{
	uint64_t gen;
	int r = cfg_store_snapshot(s, scratch, src, &gen);

	if (r) {
		snprintf(err, errlen, "could not read a consistent configuration");
		return r;
	}
	return gen ? cfg_src_unpack(src, docs, err, errlen) : 0;
}

static int compile_publish(struct cfg_store *s, struct cfg_docs *docs, struct rm_cfg *cfg,
			   struct rm_cfg_src *src, bool *changed, uint64_t *generation, char *err,
			   size_t errlen)
{
	int r = cfg_compile(docs, cfg, err, errlen);

	if (!r)
		r = cfg_src_pack(docs, src, err, errlen);
	if (!r && (r = cfg_store_publish(s, cfg, src, changed, generation)))
		snprintf(err, errlen, "publish: %s", strerror(-r));
	return r;
}

/* What one write does to the stored documents: an apply, delete or replace with
 * docs, or `rule delete` of the rule called name (name set). */
struct store_edit {
	enum cfg_op op;
	struct cfg_docs *docs;
	const char *name, *ns;
	const char *prefix; /* sync: replace the documents of this origin prefix */
};

/* Every write: lock the pin dir, load what is stored (a replace starts empty),
 * edit, compile, publish. */
static int store_write(struct cfg_store *s, const char *pin_dir, const struct store_edit *e,
		       bool *changed, uint64_t *generation, char *err, size_t errlen)
{
	struct cfg_docs cur = {0};
	struct rm_cfg *cfg = malloc(sizeof(*cfg));
	struct rm_cfg_src *src = malloc(sizeof(*src));
	bool held = s->locked;
	int r;

	*changed = false;
	if (!cfg || !src) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = cfg_store_lock(s, pin_dir))) {
		snprintf(err, errlen, "lock %s: %s", pin_dir, strerror(-r));
		goto out;
	}
	if (!e->name && e->op == CFG_OP_APPLY) {
		/* the stored documents the apply carries again are not parsed twice */
		uint64_t gen;

		if ((r = cfg_store_snapshot(s, cfg, src, &gen))) {
			snprintf(err, errlen, "could not read a consistent configuration");
			goto out;
		}
		r = cfg_src_merge(src, e->docs, &cur, err, errlen);
	} else {
		if ((e->name || e->prefix || e->op != CFG_OP_REPLACE) &&
		    (r = load_docs(s, &cur, cfg, src, err, errlen)))
			goto out;
		if (e->prefix) {
			cfg_docs_remove_origin(&cur, e->prefix);
			r = cfg_docs_merge(&cur, e->docs);
		} else if (e->name)
			r = cfg_docs_remove_rule(&cur, e->name, e->ns, err, errlen);
		else if (e->op == CFG_OP_DELETE)
			r = cfg_docs_remove(&cur, e->docs, err, errlen);
		else
			r = cfg_docs_merge(&cur, e->docs);
	}
	if (!r)
		r = compile_publish(s, &cur, cfg, src, changed, generation, err, errlen);
out:
	if (!held)
		cfg_store_unlock(s);
	cfg_docs_free(&cur);
	free(cfg);
	free(src);
	return r;
}

int cfg_store_update(struct cfg_store *s, const char *pin_dir, enum cfg_op op,
		     struct cfg_docs *docs, bool *changed, uint64_t *generation, char *err,
		     size_t errlen)
{
	const struct store_edit e = {.op = op, .docs = docs};

	return store_write(s, pin_dir, &e, changed, generation, err, errlen);
}

int cfg_store_sync(struct cfg_store *s, const char *pin_dir, const char *prefix,
		   struct cfg_docs *docs, bool *changed, uint64_t *generation, char *err,
		   size_t errlen)
{
	const struct store_edit e = {.op = CFG_OP_REPLACE, .docs = docs, .prefix = prefix};

	return store_write(s, pin_dir, &e, changed, generation, err, errlen);
}

int cfg_store_delete_rule(struct cfg_store *s, const char *pin_dir, const char *name,
			  const char *ns, bool *changed, uint64_t *generation, char *err,
			  size_t errlen)
{
	const struct store_edit e = {.name = name, .ns = ns};

	return store_write(s, pin_dir, &e, changed, generation, err, errlen);
}
