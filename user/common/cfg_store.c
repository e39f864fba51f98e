/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cfg_store: the pinned configuration on bpffs. Opens (or creates and pins, with
 * the parameters of common/pin.c's table) rm_cfg_ctl and mmaps it; each half lives
 * in a map of its own, rm_cfg-H-ID, created at the size a publish needs (see
 * include/ringmesh/cfg.h). Publishes a half under its seqlock and flips the active
 * index, and takes consistent snapshots. Writers serialise with flock on the pin
 * dir. */
#include <dirent.h>
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

#include <bpf/bpf.h>

#include "common/cfg.h"
#include "common/pin.h"
#include "common/util.h"

/* Path of half h's map with id: pin_dir/rm_cfg-H-ID (bpffs refuses dots in names) */
static int half_path(const struct cfg_store *s, uint32_t h, uint64_t id, char *buf, size_t len)
{
	int n =
	    snprintf(buf, len, "%s/%s-%u-%llu", s->pin_dir, RM_MAP_CFG, h, (unsigned long long)id);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void half_close(struct cfg_store_half *m)
{
	if (m->mem)
		munmap(m->mem, m->len);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

/* mmap a half's map whole after checking it is one of ours. */
static int half_map(struct cfg_store_half *m, int fd, uint64_t id)
{
	struct bpf_map_info info = {0};
	uint32_t ilen = sizeof(info);
	void *mem;
	size_t len;

	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4 ||
	    info.value_size != RM_CFG_CHUNK || !(info.map_flags & BPF_F_MMAPABLE) ||
	    !info.max_entries)
		return -EPROTO;
	len = (size_t)info.max_entries * RM_CFG_CHUNK;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED)
		return -errno;
	m->id = id;
	m->fd = fd;
	m->mem = mem;
	m->len = len;
	return 0;
}

/* Hold the map ctl names for half h (reopened when the id changed). */
static int half_open(struct cfg_store *s, uint32_t h, uint64_t id)
{
	struct cfg_store_half *m = &s->half[h];
	char path[PATH_MAX];
	int fd, r;

	if (m->mem && m->id == id)
		return 0;
	half_close(m);
	if (!id)
		return -ENOENT;
	if ((r = half_path(s, h, id, path, sizeof(path))))
		return r;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if ((r = half_map(m, fd, id)))
		close(fd);
	return r;
}

int cfg_store_open(struct cfg_store *s, const char *pin_dir, bool create, char *err, size_t errlen)
{
	struct pin_map m;
	int r;

	memset(s, 0, sizeof(*s));
	s->ctl_fd = s->lock_fd = s->half[0].fd = s->half[1].fd = -1;
	if (strlen(pin_dir) + 64 >= sizeof(s->pin_dir))
		return errf(err, errlen, -ENAMETOOLONG, "pin dir %s: name too long", pin_dir);
	snprintf(s->pin_dir, sizeof(s->pin_dir), "%s", pin_dir);
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
	r = pin_open(&m, PIN_CFG_CTL, pin_dir, PIN_O_MMAP | (create ? PIN_O_CREATE : 0), err,
		     errlen);
	if (r)
		goto fail;
	s->ctl_fd = m.fd;
	s->ctl_map = m.mem;
	s->ctl_map_len = m.mem_len;
	s->ctl = s->ctl_map;
	if (s->ctl->magic == RM_CFG_MAGIC && s->ctl->abi_version != RM_CFG_ABI_VERSION) {
		r = errf(err, errlen, -EPROTO,
			 "%s/%s: configuration ABI %u, this build has %u: built from other "
			 "headers?",
			 pin_dir, RM_MAP_CFG_CTL, s->ctl->abi_version, RM_CFG_ABI_VERSION);
		goto fail;
	}
	cfg_store_unlock(s); /* creation done; writers lock per update */
	return 0;
fail:
	cfg_store_close(s);
	return r;
}

void cfg_ctl_domain(const struct rm_cfg_ctl *ctl, char *buf)
{
	memcpy(buf, ctl->domain, RM_CFG_DOMAIN_LEN);
	buf[RM_CFG_DOMAIN_LEN - 1] = 0;
	if (!*buf)
		snprintf(buf, RM_CFG_DOMAIN_LEN, "%s", CFG_DEFAULT_DOMAIN);
}

void cfg_store_domain(const struct cfg_store *s, char *buf)
{
	cfg_ctl_domain(s->ctl, buf);
}

void cfg_store_domain_at(const char *pin_dir, char *buf)
{
	struct cfg_store s;
	char err[256];

	snprintf(buf, RM_CFG_DOMAIN_LEN, "%s", CFG_DEFAULT_DOMAIN);
	if (cfg_store_open(&s, pin_dir, false, err, sizeof(err)))
		return;
	cfg_store_domain(&s, buf);
	cfg_store_close(&s);
}

/* Under the lock: the domain this write resolves in. The caller's documents were
 * parsed in cfg_domain(); the stored ones are parsed from here on in the same. */
static int write_domain(struct cfg_store *s, bool *set, char *err, size_t errlen)
{
	char stored[RM_CFG_DOMAIN_LEN];

	cfg_store_domain(s, stored);
	*set = false;
	if (!strcmp(stored, cfg_domain()))
		return 0;
	if (!s->set_domain) {
		snprintf(err, errlen,
			 "the configuration at %s resolves short names in %s, these documents "
			 "were read for %s (it changed meanwhile?): run it again",
			 s->pin_dir, stored, cfg_domain());
		return -ESTALE;
	}
	*set = true;
	return 0;
}

void cfg_store_close(struct cfg_store *s)
{
	if (s->ctl_map)
		munmap(s->ctl_map, s->ctl_map_len);
	if (s->ctl_fd >= 0)
		close(s->ctl_fd);
	for (uint32_t h = 0; h < RM_CFG_HALVES; h++)
		half_close(&s->half[h]);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* drops the flock */
	memset(s, 0, sizeof(*s));
	s->ctl_fd = s->lock_fd = s->half[0].fd = s->half[1].fd = -1;
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

/* The blob and source bytes inside a mapped half, bounds-checked: 0 or -EBADMSG. */
static int half_parts(const struct cfg_store_half *m, const struct rm_cfg_half *hh, size_t *cfg_off,
		      size_t *cfg_len, size_t *src_off, size_t *src_len)
{
	if (hh->magic != RM_CFG_MAGIC || hh->cfg_off > m->len ||
	    hh->cfg_len > m->len - hh->cfg_off || hh->src_off > m->len ||
	    hh->src_len > m->len - hh->src_off || hh->cfg_len < sizeof(struct rm_cfg_blob) ||
	    hh->src_len < sizeof(struct rm_cfg_src_hdr))
		return -EBADMSG;
	*cfg_off = hh->cfg_off;
	*cfg_len = hh->cfg_len;
	*src_off = hh->src_off;
	*src_len = hh->src_len;
	return 0;
}

static int src_from(struct rm_cfg_src *src, const char *p, size_t len)
{
	struct rm_cfg_src_hdr sh;

	memcpy(&sh, p, sizeof(sh));
	if (sh.used > len - sizeof(sh))
		return -EBADMSG;
	memset(src, 0, sizeof(*src));
	if (cfg_src_reserve(src, sh.used ? sh.used : 1))
		return -ENOMEM;
	memcpy(src->text, p + sizeof(sh), sh.used);
	src->magic = sh.magic;
	src->n_docs = sh.n_docs;
	src->used = sh.used;
	src->generation = sh.generation;
	return 0;
}

int cfg_store_snapshot(struct cfg_store *s, struct rm_cfg *out, struct rm_cfg_src *src,
		       uint64_t *generation)
{
	char err[160];

	cfg_free(out);
	for (int tries = 0; tries < 1000000; tries++) {
		uint32_t a;
		uint64_t s1, s2, gen, id;
		size_t co = 0, cl = 0, so = 0, sl = 0;
		struct rm_cfg_half hh;
		void *blob = NULL;
		int r;

		gen = __atomic_load_n(&s->ctl->generation, __ATOMIC_ACQUIRE);
		a = __atomic_load_n(&s->ctl->active, __ATOMIC_ACQUIRE) & 1;
		if (!gen) {
			/* never published: an empty configuration */
			if ((r = cfg_init(out)))
				return r;
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
		id = __atomic_load_n(&s->ctl->half_id[a], __ATOMIC_ACQUIRE);
		r = half_open(s, a, id);
		if (!r) {
			memcpy(&hh, s->half[a].mem, sizeof(hh));
			r = half_parts(&s->half[a], &hh, &co, &cl, &so, &sl);
		}
		if (!r && !(blob = malloc(cl)))
			return -ENOMEM;
		if (!r) {
			memcpy(blob, (char *)s->half[a].mem + co, cl);
			if (src)
				r = src_from(src, (char *)s->half[a].mem + so, sl);
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&s->ctl->seq[a], __ATOMIC_RELAXED);
		if (s1 == s2 && id == __atomic_load_n(&s->ctl->half_id[a], __ATOMIC_RELAXED)) {
			/* consistent: what was read is what was published */
			if (r || (r = cfg_view(out, blob, cl, err, sizeof(err)))) {
				/* published bytes this build cannot read */
				free(blob);
				if (src)
					cfg_src_free(src);
				return r == -ENOMEM ? r : -EBADMSG;
			}
			*generation = out->generation;
			return 0;
		}
		free(blob);
		if (src)
			cfg_src_free(src);
	}
	return -EAGAIN;
}

/* Unpin the halves' maps ctl does not name: left by a writer that died between
 * creating a map and its flip. Under the writer lock. */
static void remove_strays(struct cfg_store *s)
{
	DIR *d = opendir(s->pin_dir);
	struct dirent *e;
	size_t pl = strlen(RM_MAP_CFG);

	if (!d)
		return;
	while ((e = readdir(d))) {
		unsigned int h;
		unsigned long long id;
		char path[PATH_MAX], tail;

		if (strncmp(e->d_name, RM_MAP_CFG "-", pl + 1) ||
		    sscanf(e->d_name + pl, "-%u-%llu%c", &h, &id, &tail) != 2 || h >= RM_CFG_HALVES)
			continue;
		if (id == s->ctl->half_id[h])
			continue;
		if (!half_path(s, h, id, path, sizeof(path)) && !unlink(path))
			s->maps_removed++;
	}
	closedir(d);
}

/* A new map for half h able to hold need bytes (headroom: small growths reuse it),
 * pinned under a fresh id. The caller flips half_id[h] to it. */
static int half_create(struct cfg_store *s, uint32_t h, size_t need, struct cfg_store_half *m,
		       uint64_t *id)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_MMAPABLE);
	uint64_t nid =
	    (s->ctl->half_id[0] > s->ctl->half_id[1] ? s->ctl->half_id[0] : s->ctl->half_id[1]) + 1;
	size_t chunks = (need + need / 4 + RM_CFG_CHUNK - 1) / RM_CFG_CHUNK;
	char path[PATH_MAX], name[16];
	int fd, r;

	if (chunks > UINT32_MAX)
		return -E2BIG;
	if ((r = half_path(s, h, nid, path, sizeof(path))))
		return r;
	snprintf(name, sizeof(name), "rm_cfg_h%u", h);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, 4, RM_CFG_CHUNK, (uint32_t)chunks, &o);
	if (fd < 0)
		return -errno;
	if (bpf_obj_pin(fd, path)) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((r = half_map(m, fd, nid))) {
		unlink(path);
		close(fd);
		return r;
	}
	s->maps_created++;
	*id = nid;
	return 0;
}

static bool same_as(const struct cfg_store *s, uint32_t a, const void *blob, size_t cl,
		    const struct rm_cfg_src *src)
{
	const struct cfg_store_half *m = &s->half[a];
	struct rm_cfg_half hh;
	size_t co, l, so, sl;
	struct rm_cfg_src_hdr sh;

	memcpy(&hh, m->mem, sizeof(hh));
	if (half_parts(m, &hh, &co, &l, &so, &sl) || l != cl ||
	    memcmp((char *)m->mem + co, blob, cl))
		return false;
	memcpy(&sh, (char *)m->mem + so, sizeof(sh));
	return sh.magic == src->magic && sh.n_docs == src->n_docs && sh.used == src->used &&
	       sl >= sizeof(sh) + src->used &&
	       !memcmp((char *)m->mem + so + sizeof(sh), src->text, src->used);
}

int cfg_store_publish(struct cfg_store *s, struct rm_cfg *cfg, struct rm_cfg_src *src,
		      bool *changed, uint64_t *generation)
{
	struct rm_cfg_ctl *ctl = s->ctl;
	uint32_t a = __atomic_load_n(&ctl->active, __ATOMIC_ACQUIRE) & 1, h = !a;
	uint64_t gen = __atomic_load_n(&ctl->generation, __ATOMIC_ACQUIRE);
	size_t cl = cfg_blob_size(cfg), so = sizeof(struct rm_cfg_half) + cl;
	size_t sl = sizeof(struct rm_cfg_src_hdr) + src->used, need = so + sl;
	struct cfg_store_half fresh = {.fd = -1}, *m;
	struct rm_cfg_src_hdr sh = {0};
	struct rm_cfg_half hh = {0};
	uint64_t seq, nid = 0;
	char *blob;
	int r;

	if (!s->locked)
		return -ENOLCK;
	*changed = false;
	remove_strays(s);
	if (!(blob = malloc(cl)))
		return -ENOMEM;
	cfg->generation = 0;
	if (gen && !half_open(s, a, ctl->half_id[a])) {
		struct rm_cfg_blob *bh = (struct rm_cfg_blob *)blob;

		cfg->generation =
		    ((struct rm_cfg_blob *)((char *)s->half[a].mem + sizeof(struct rm_cfg_half)))
			->generation;
		cfg_blob_write(cfg, blob);
		bh->generation = cfg->generation;
		if (same_as(s, a, blob, cl, src)) {
			*generation = gen;
			free(blob);
			return 0;
		}
	}
	gen++;
	cfg->generation = gen;
	src->generation = gen;
	cfg_blob_write(cfg, blob);
	/* the inactive half's map, or a new one when it is too small or 4x too big */
	m = &s->half[h];
	if (half_open(s, h, ctl->half_id[h]) || m->len < need ||
	    (m->len > 4 * need && m->len > 16 * (size_t)RM_CFG_CHUNK)) {
		if ((r = half_create(s, h, need, &fresh, &nid))) {
			free(blob);
			return r;
		}
		m = &fresh;
	}
	seq = __atomic_load_n(&ctl->seq[h], __ATOMIC_RELAXED);
	if (seq & 1)
		seq++; /* a writer died mid-write; the lock says nobody is writing now */
	__atomic_store_n(&ctl->seq[h], seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	hh.magic = RM_CFG_MAGIC;
	hh.abi_version = RM_CFG_ABI_VERSION;
	hh.generation = gen;
	hh.cfg_off = sizeof(hh);
	hh.cfg_len = cl;
	hh.src_off = so;
	hh.src_len = sl;
	memcpy(m->mem, &hh, sizeof(hh));
	memcpy((char *)m->mem + hh.cfg_off, blob, cl);
	sh.magic = src->magic;
	sh.n_docs = src->n_docs;
	sh.used = src->used;
	sh.generation = gen;
	memcpy((char *)m->mem + so, &sh, sizeof(sh));
	if (src->used)
		memcpy((char *)m->mem + so + sizeof(sh), src->text, src->used);
	free(blob);
	if (m == &fresh) {
		uint64_t old = ctl->half_id[h];
		char path[PATH_MAX];

		__atomic_store_n(&ctl->half_id[h], nid, __ATOMIC_RELEASE);
		half_close(&s->half[h]);
		s->half[h] = fresh;
		if (old && !half_path(s, h, old, path, sizeof(path)) && !unlink(path))
			s->maps_removed++;
	}
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

/* Under the writer lock the active half cannot change: its sources are read in
 * place (view: text points into the mapping, not to be freed), without copying
 * them or the compiled half. 0 with view set (zeroed when nothing was
 * published), or -errno for the caller's copy (cfg_store_snapshot). */
static int locked_src(struct cfg_store *s, struct rm_cfg_src *view)
{
	uint32_t a = __atomic_load_n(&s->ctl->active, __ATOMIC_ACQUIRE) & 1;
	size_t co, cl, so, sl;
	struct rm_cfg_src_hdr sh;
	struct rm_cfg_half hh;
	int r;

	memset(view, 0, sizeof(*view));
	if (!s->locked)
		return -ENOLCK;
	if (!__atomic_load_n(&s->ctl->generation, __ATOMIC_ACQUIRE))
		return 0;
	if ((r = half_open(s, a, s->ctl->half_id[a])))
		return r;
	memcpy(&hh, s->half[a].mem, sizeof(hh));
	if ((r = half_parts(&s->half[a], &hh, &co, &cl, &so, &sl)))
		return r;
	memcpy(&sh, (char *)s->half[a].mem + so, sizeof(sh));
	if (sh.used > sl - sizeof(sh))
		return -EBADMSG;
	view->magic = sh.magic;
	view->n_docs = sh.n_docs;
	view->used = sh.used;
	view->generation = sh.generation;
	view->text = (char *)s->half[a].mem + so + sizeof(sh);
	view->cap = sh.used;
	return 0;
}

/* The stored documents, but those of origin except (replaced: not parsed). */
static int load_docs(struct cfg_store *s, struct cfg_docs *docs, struct rm_cfg *scratch,
		     struct rm_cfg_src *src, const char *except, char *err, size_t errlen)
{
	struct rm_cfg_src view;
	uint64_t gen;
	int r;

	if (!locked_src(s, &view))
		return cfg_src_unpack_except(&view, except, docs, err, errlen);
	if ((r = cfg_store_snapshot(s, scratch, src, &gen))) {
		snprintf(err, errlen, "could not read a consistent configuration");
		return r;
	}
	return gen ? cfg_src_unpack_except(src, except, docs, err, errlen) : 0;
}

static int compile_publish(struct cfg_store *s, struct cfg_docs *docs, struct rm_cfg *cfg,
			   struct rm_cfg_src *src, bool *changed, uint64_t *generation, char *err,
			   size_t errlen)
{
	int r;

	cfg_free(cfg); /* the snapshot the edit started from */
	r = cfg_compile(docs, cfg, err, errlen);
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
	const char *prefix;		 /* sync: replace the documents of this origin prefix */
	const struct cfg_docs *borrowed; /* sync: ... with these (left to the caller) */
};

/* Every write: lock the pin dir, load what is stored (a replace starts empty),
 * edit, compile, publish. */
static int store_write(struct cfg_store *s, const char *pin_dir, const struct store_edit *e,
		       bool *changed, uint64_t *generation, char *err, size_t errlen)
{
	struct cfg_docs cur = {0};
	struct rm_cfg *cfg = calloc(1, sizeof(*cfg));
	struct rm_cfg_src *src = calloc(1, sizeof(*src));
	bool held = s->locked, new_domain = false;
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
	if ((r = write_domain(s, &new_domain, err, errlen)))
		goto out;
	if (!e->name && e->op == CFG_OP_APPLY) {
		/* the stored documents the apply carries again are not parsed twice */
		struct rm_cfg_src view;
		uint64_t gen;

		if (!locked_src(s, &view)) {
			r = cfg_src_merge(&view, e->docs, &cur, err, errlen);
		} else if ((r = cfg_store_snapshot(s, cfg, src, &gen))) {
			snprintf(err, errlen, "could not read a consistent configuration");
			goto out;
		} else {
			r = cfg_src_merge(src, e->docs, &cur, err, errlen);
		}
	} else {
		if ((e->name || e->prefix || e->op != CFG_OP_REPLACE) &&
		    (r = load_docs(s, &cur, cfg, src, e->prefix, err, errlen)))
			goto out;
		if (e->prefix) {
			struct cfg_docs view = {.v =
						    malloc((e->borrowed->n + 1) * sizeof(*view.v))};

			/* shallow copies, merged; taken back out of cur below */
			for (size_t i = 0; view.v && i < e->borrowed->n; i++)
				view.v[view.n++] = e->borrowed->v[i];
			view.cap = view.n;
			/* unique by cfg_store_sync's contract: the files' few indexed */
			r = view.v ? cfg_docs_merge_unique(&cur, &view) : -ENOMEM;
		} else if (e->name)
			r = cfg_docs_remove_rule(&cur, e->name, e->ns, err, errlen);
		else if (e->op == CFG_OP_DELETE)
			r = cfg_docs_remove(&cur, e->docs, err, errlen);
		else
			r = cfg_docs_merge(&cur, e->docs);
	}
	if (!r)
		r = compile_publish(s, &cur, cfg, src, changed, generation, err, errlen);
	if (!r && new_domain) {
		/* the stored documents were resolved in it: from now on the store's */
		memset(s->ctl->domain, 0, sizeof(s->ctl->domain));
		memcpy(s->ctl->domain, cfg_domain(), strlen(cfg_domain()));
	}
	for (size_t i = 0; e->prefix && i < cur.n; i++)
		if (cur.v[i].origin && !strncmp(cur.v[i].origin, e->prefix, strlen(e->prefix)))
			memset(&cur.v[i], 0, sizeof(cur.v[i]));
out:
	if (!held)
		cfg_store_unlock(s);
	cfg_docs_free(&cur);
	cfg_free(cfg);
	cfg_src_free(src);
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
		   const struct cfg_docs *docs, bool *changed, uint64_t *generation, char *err,
		   size_t errlen)
{
	const struct store_edit e = {.op = CFG_OP_REPLACE, .prefix = prefix, .borrowed = docs};

	return store_write(s, pin_dir, &e, changed, generation, err, errlen);
}

int cfg_store_delete_rule(struct cfg_store *s, const char *pin_dir, const char *name,
			  const char *ns, bool *changed, uint64_t *generation, char *err,
			  size_t errlen)
{
	const struct store_edit e = {.name = name, .ns = ns};

	return store_write(s, pin_dir, &e, changed, generation, err, errlen);
}

void cfg_store_unpin_halves(const char *pin_dir)
{
	DIR *d = opendir(pin_dir);
	struct dirent *e;
	char path[PATH_MAX];
	int n;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, RM_MAP_CFG "-", strlen(RM_MAP_CFG) + 1))
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", pin_dir, e->d_name);
		if (n > 0 && (size_t)n < sizeof(path))
			unlink(path);
	}
	closedir(d);
}
