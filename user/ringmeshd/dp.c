/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* dp: loads and wires the node data path (bpf/ringmesh.bpf.c), see dp.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ringmesh/breaker.h"
#include "ringmesh/stats.h"
#include "common/cfg.h"
#include "common/pin.h"
#include "common/util.h"
#include "policy/cb.h"
#include "ringmeshd/dp.h"
#include "ringmesh.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

#define DP_BPFFS "/sys/fs/bpf"
#define DP_HEARTBEAT_MAX_DEFAULT (5ull * 1000 * 1000 * 1000)

/* What a teardown removes. KEEP: nothing shared (a successor serves with all of it);
 * NONE: our links and the heartbeat; OURS: those and the runtime maps; ALL: every pin. */
enum dp_unpin { DP_UNPIN_KEEP, DP_UNPIN_NONE, DP_UNPIN_OURS, DP_UNPIN_ALL };

enum { DP_L_CONNECT4, DP_L_SOCKOPS, DP_L_GETSOCKOPT, DP_L_MAX };

static const char *const dp_link_names[DP_L_MAX] = {
    [DP_L_CONNECT4] = RM_LINK_CONNECT4,
    [DP_L_SOCKOPS] = RM_LINK_SOCKOPS,
    [DP_L_GETSOCKOPT] = RM_LINK_GETSOCKOPT,
};

/*
 * The runtime maps a successor may re-create rather than keep: no BPF program reads
 * them (maps_cfg.h, maps_cb.h), and a fresh start begins them empty anyway.
 */
enum { DP_RT_STATS, DP_RT_BREAKER, DP_RT_MAX };

static const enum pin_id dp_rt_ids[DP_RT_MAX] = {
    [DP_RT_STATS] = PIN_STATS,
    [DP_RT_BREAKER] = PIN_BREAKER,
};

/* The maps this module owns are pin.c's PIN_U_RUNTIME rows: a restart recreates them;
 * the rules/stats maps of maps_cfg.h are not among them so that loaded rules survive a
 * daemon restart. The breaker state is runtime state like the counters: a new daemon
 * starts it empty. */

struct rm_dp {
	struct ringmesh *skel;
	struct bpf_link *links[DP_L_MAX];
	int cg_fd;		  /* pods' cgroup */
	int dcg_fd;		  /* daemon's cgroup, only when getsockopt is attached there */
	struct rm_proxy_cfg *cfg; /* rm_proxy[0], mmapped */
	size_t cfg_len;
	int orig_fd, socks_fd;
	int msg_prog_fd; /* attached to rm_socks when >= 0 */
	bool sockmap;
	struct rm_dp_opts o;	/* for rm_dp_reclaim (its lists are the caller's) */
	__u64 self_cg_id;	/* our cgroup's id, written into rm_proxy */
	int pred_rt[DP_RT_MAX]; /* DP_RT_*: the predecessor's map we pinned a fresh one over */
	char pin_dir[PATH_MAX];
	char note[256];
};

static int path_join(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s/%s", a, b);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool fs_is(const char *path, long magic)
{
	struct statfs st;

	return !statfs(path, &st) && (long)st.f_type == magic;
}

/* The cgroup2 mount sysck picks (/sys/fs/cgroup, /sys/fs/cgroup/unified, else the
 * first in our mount namespace), resolved. */
static int cgroup2_mount(char *out, size_t len)
{
	static const char *const cands[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	struct mntent *m;
	FILE *f;
	int rc = -ENOENT;

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (fs_is(cands[i], CGROUP2_SUPER_MAGIC))
			return realpath(cands[i], out) ? 0 : -errno;
	f = setmntent("/proc/self/mounts", "r");
	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2"))
			continue;
		rc = realpath(m->mnt_dir, out) ? 0 : -errno;
		(void)len;
		break;
	}
	endmntent(f);
	return rc;
}

/* The daemon's own cgroup2 directory, from the "0::" line of /proc/self/cgroup. */
static int self_cgroup(const char *mnt, char *out, size_t len)
{
	char line[PATH_MAX + 8], tmp[PATH_MAX * 2];
	FILE *f = fopen("/proc/self/cgroup", "r");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "0::", 3))
			continue;
		if ((size_t)snprintf(tmp, sizeof(tmp), "%s%s", mnt, line + 3) >= sizeof(tmp)) {
			rc = -ENAMETOOLONG;
			break;
		}
		rc = realpath(tmp, out) ? 0 : -errno;
		break;
	}
	fclose(f);
	(void)len;
	return rc;
}

static bool path_within(const char *child, const char *parent)
{
	size_t n = strlen(parent);

	return !strncmp(child, parent, n) && (child[n] == '\0' || child[n] == '/');
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

static int ensure_bpffs(void)
{
	if (fs_is(DP_BPFFS, BPF_FS_MAGIC))
		return 0;
	if (mount("bpf", DP_BPFFS, "bpf", 0, "mode=0700"))
		return -errno;
	return 0;
}

/* rm_stats' pages for --stats-keys k (0: the default): k slots, 2 k rows. */
static uint32_t rm_stats_pages(uint32_t k)
{
	if (!k)
		return RM_STATS_MAP_PAGES;
	return (uint32_t)RM_STATS_PAGES(k, 2 * (uint64_t)k);
}

/* Is the counter map pinned at path of another layout than d (another version left
 * it)? Then a fresh start re-creates it, saying so, rather than failing to load. */
static bool counters_stale(const struct pin_def *d, const char *path)
{
	struct bpf_map_info info;
	uint32_t ilen = sizeof(info);
	char why[512];
	bool stale;
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return false;
	memset(&info, 0, sizeof(info));
	stale = !bpf_obj_get_info_by_fd(fd, &info, &ilen) &&
		pin_check(d, &info, PIN_CHECK_ALL, path, why, sizeof(why));
	close(fd);
	if (stale)
		fprintf(stderr, "ringmeshd: %s; re-creating it (its counters restart)\n", why);
	return stale;
}

_Static_assert(RM_STATS_PAGE == RM_CB_PAGE, "one page buffer reads both headers");

/* rm_breaker's pages for --breaker-pools p and --breaker-hosts h (0: the defaults). */
static uint32_t rm_breaker_pages(uint32_t p, uint32_t h)
{
	uint32_t np, nh;

	cb_size(p, h, &np, &nh);
	return cb_pages(np, nh);
}

/* Where repin() pins first: name_next (bpffs takes no dots in names). */
static int next_path(const char *pin_dir, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s_next", pin_dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A name_next a daemon killed inside repin() left: nothing uses it. */
static void unlink_next(const char *pin_dir)
{
	char tmp[PATH_MAX];

	for (int i = 0; i < DP_RT_MAX; i++)
		if (!next_path(pin_dir, pin_defs[dp_rt_ids[i]].name, tmp, sizeof(tmp)))
			unlink(tmp);
}

/* Pin fd at pin_dir/name in place of what is there, in one rename: a reader of the
 * path sees the old map or the new one, never none. 0 or -errno. */
static int repin(const char *pin_dir, const char *name, int fd)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int n;

	if (next_path(pin_dir, name, tmp, sizeof(tmp)) ||
	    path_join(path, sizeof(path), pin_dir, name))
		return -ENAMETOOLONG;
	unlink(tmp);
	if (bpf_obj_pin(fd, tmp))
		return -errno;
	if (rename(tmp, path)) {
		n = -errno;
		unlink(tmp);
		return n;
	}
	return 0;
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info;
	uint32_t ilen = sizeof(info);

	memset(&info, 0, sizeof(info));
	return bpf_obj_get_info_by_fd(fd, &info, &ilen) ? 0 : info.id;
}

/* What the map at fd (of info) holds, in its header's words, for the log; *a and *b
 * the header's counts (keys; pools and hosts), 0 when it has no header of ours. */
static void rt_describe(enum pin_id id, int fd, const struct bpf_map_info *info, char *out,
			size_t len, uint32_t *a, uint32_t *b)
{
	__u8 page[RM_STATS_PAGE]; /* = RM_CB_PAGE: the first page holds either header */
	const struct rm_stats_hdr *sh = (const void *)page;
	const struct rm_cb_hdr *ch = (const void *)page;
	uint32_t key = 0;

	out[0] = '\0';
	*a = *b = 0;
	if (info->value_size != sizeof(page) || bpf_map_lookup_elem(fd, &key, page)) {
		if (info->max_entries == 1)
			snprintf(out, len,
				 "another layout (one value of %u bytes, an older release)",
				 info->value_size);
		else
			snprintf(out, len,
				 "another layout (%u values of %u bytes, an older release)",
				 info->max_entries, info->value_size);
		return;
	}
	if (id == PIN_STATS && sh->magic == RM_STATS_MAGIC) {
		*a = sh->n_slots;
		snprintf(out, len, "%u keys", sh->n_slots);
	} else if (id == PIN_BREAKER && ch->magic == RM_CB_MAGIC) {
		*a = ch->n_pools;
		*b = ch->n_hosts;
		snprintf(out, len, "%u pools, %u hosts", ch->n_pools, ch->n_hosts);
	} else {
		snprintf(out, len, "%u pages", info->max_entries);
	}
}

/*
 * A hand-over keeps the predecessor's maps, but a runtime map of another size or
 * layout than ours (another --stats-keys, --breaker-pools or --breaker-hosts, or an
 * older release's layout) cannot be kept: a fresh one of our size is pinned in its
 * place, before the load reuses it by name. The predecessor keeps writing its own
 * through its mappings while it drains; its map is kept in *pred (an fd) so that a
 * hand-over that does not complete pins it back (dp_pred_maps).
 */
static int fresh_runtime_map(const char *pin_dir, int rt, uint32_t pages, uint32_t want_a,
			     uint32_t want_b, int *pred, char *err, size_t errlen)
{
	enum pin_id id = dp_rt_ids[rt];
	struct pin_def d = pin_defs[id];
	struct bpf_map_info info;
	uint32_t ilen = sizeof(info), a, b;
	char path[PATH_MAX], theirs[128], ours[96], why[512];
	int fd, nfd, rc;

	*pred = -1;
	if (path_join(path, sizeof(path), pin_dir, d.name))
		return errf_sys(err, errlen, -ENAMETOOLONG, "pin dir %s", pin_dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0; /* not there: the load creates it */
	d.max_entries = pages;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen)) {
		rc = errf_sys(err, errlen, -errno, "%s: not a map", path);
		close(fd);
		return rc;
	}
	rt_describe(id, fd, &info, theirs, sizeof(theirs), &a, &b);
	/* the same pages may hold other counts: the header decides too */
	if (!pin_check(&d, &info, PIN_CHECK_ALL, path, why, sizeof(why)) &&
	    (!a || (a == want_a && b == want_b))) {
		close(fd);
		return 0;
	}
	if (id == PIN_STATS)
		snprintf(ours, sizeof(ours), "%u keys (--stats-keys)", want_a);
	else
		snprintf(ours, sizeof(ours), "%u pools, %u hosts (--breaker-pools/--breaker-hosts)",
			 want_a, want_b);
	{
		LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = d.map_flags);

		nfd = bpf_map_create(d.type, d.name, d.key_size, d.value_size, pages, &mo);
	}
	if (nfd < 0) {
		rc =
		    errf_sys(err, errlen, -errno, "creating a fresh %s of %u pages", d.name, pages);
		close(fd);
		return rc;
	}
	rc = repin(pin_dir, d.name, nfd);
	close(nfd); /* the pin holds it; the load opens it by name */
	if (rc) {
		close(fd);
		return errf_sys(err, errlen, rc, "pinning a fresh %s", path);
	}
	fprintf(stderr,
		"ringmeshd: %s: predecessor's %s is %s, this daemon asks for %s: "
		"starting a fresh %s; %s\n",
		d.name, id == PIN_STATS ? "map" : "table", theirs, ours,
		id == PIN_STATS ? "map" : "table",
		id == PIN_STATS ? "counters restart" : "breaker state restarts");
	*pred = fd;
	return 0;
}

/*
 * A dead daemon's links still attach its programs (they are pinned): detach them
 * outright, which also covers a pin someone still holds open, then drop the pins.
 * Its data-path maps go too so the new programs start from empty state, and counter
 * maps another version left with another layout.
 */
static int remove_leftovers(const char *pin_dir, uint32_t stats_pages, char *err, size_t errlen)
{
	char path[PATH_MAX];

	unlink_next(pin_dir);
	for (int i = 0; i < DP_L_MAX; i++) {
		int fd, rc;

		if (path_join(path, sizeof(path), pin_dir, dp_link_names[i]))
			return errf_sys(err, errlen, -ENAMETOOLONG, "pin dir %s", pin_dir);
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			bpf_link_detach(fd);
			close(fd);
		}
		if (unlink(path) && errno != ENOENT) {
			rc = -errno;
			return errf_sys(err, errlen, rc, "removing old link %s", path);
		}
	}
	for (int i = 0; i < PIN_MAX; i++) {
		struct pin_def d = pin_defs[i];

		if (!(d.use & (PIN_U_RUNTIME | PIN_U_COUNTERS)))
			continue;
		if (path_join(path, sizeof(path), pin_dir, d.name))
			return errf_sys(err, errlen, -ENAMETOOLONG, "pin dir %s", pin_dir);
		if (i == PIN_STATS)
			d.max_entries = stats_pages; /* --stats-keys */
		if (!(d.use & PIN_U_RUNTIME) && !counters_stale(&d, path))
			continue;
		if (unlink(path) && errno != ENOENT)
			return errf_sys(err, errlen, -errno, "removing old map %s", path);
	}
	return 0;
}

/*
 * Make the hash or trie fd hold exactly the n keys of want (ksz bytes each): a
 * successor's flags replace its predecessor's in the kept maps, new keys first, so
 * a range both name is never missing.
 */
static int sync_keys(int fd, const void *want, size_t n, size_t ksz, size_t max)
{
	char *have = calloc(max + 1, ksz), key[sizeof(struct rm_lpm_key)];
	size_t nh = 0;
	__u8 one = 1;
	int rc = 0;

	if (!have || ksz > sizeof(key)) {
		free(have);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && !rc; i++)
		if (bpf_map_update_elem(fd, (const char *)want + i * ksz, &one, BPF_ANY))
			rc = -errno;
	while (!rc && nh <= max &&
	       !bpf_map_get_next_key(fd, nh ? have + (nh - 1) * ksz : NULL, have + nh * ksz))
		nh++;
	for (size_t i = 0; i < nh && !rc; i++) {
		bool keep = false;

		memcpy(key, have + i * ksz, ksz);
		for (size_t j = 0; j < n && !keep; j++)
			keep = !memcmp(key, (const char *)want + j * ksz, ksz);
		if (!keep && bpf_map_delete_elem(fd, key) && errno != ENOENT)
			rc = -errno;
	}
	free(have);
	return rc;
}

static int sync_ranges(int fd, const struct rm_cidr *c, size_t n)
{
	struct rm_lpm_key k[RM_MAX_RANGES];

	for (size_t i = 0; i < n; i++) {
		memset(&k[i], 0, sizeof(k[i]));
		rm_cidr_lpm_key(&c[i], &k[i]);
	}
	return sync_keys(fd, k, n, sizeof(k[0]), RM_MAX_RANGES);
}

static int netns_cookie(__u64 *out)
{
	socklen_t len = sizeof(*out);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, out, &len))
		rc = -errno;
	close(fd);
	return rc;
}

static int attach_pinned(struct rm_dp *dp, int slot, struct bpf_program *prog, int cg_fd, char *err,
			 size_t errlen)
{
	char path[PATH_MAX];
	struct bpf_link *l;
	int rc;

	l = bpf_program__attach_cgroup(prog, cg_fd);
	if (!l)
		return errf_sys(err, errlen, -errno, "attaching %s", bpf_program__name(prog));
	dp->links[slot] = l;
	if (path_join(path, sizeof(path), dp->pin_dir, dp_link_names[slot]))
		return errf_sys(err, errlen, -ENAMETOOLONG, "pin dir %s", dp->pin_dir);
	rc = bpf_link__pin(l, path);
	if (rc)
		return errf_sys(err, errlen, rc, "pinning %s", path);
	return 0;
}

/*
 * A hand-over: the predecessor's pinned link on the same cgroup gets our program
 * (bpf_link_update: the hook is never empty, and never runs both). A link on another
 * cgroup (a changed --cgroup; getsockopt on the predecessor's own cgroup) is left to
 * its daemon, whose exit detaches it, and ours takes its pin.
 */
static int adopt_link(struct rm_dp *dp, int slot, struct bpf_program *prog, int cg_fd, char *err,
		      size_t errlen)
{
	struct bpf_link_info info;
	__u32 ilen = sizeof(info);
	char path[PATH_MAX];
	struct bpf_link *l;
	struct stat st;
	int rc;

	if (path_join(path, sizeof(path), dp->pin_dir, dp_link_names[slot]))
		return errf_sys(err, errlen, -ENAMETOOLONG, "pin dir %s", dp->pin_dir);
	l = bpf_link__open(path);
	if (!l)
		return attach_pinned(dp, slot, prog, cg_fd, err, errlen);
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(bpf_link__fd(l), &info, &ilen) && !fstat(cg_fd, &st) &&
	    info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == (__u64)st.st_ino) {
		rc = bpf_link__update_program(l, prog);
		if (rc) {
			bpf_link__destroy(l);
			return errf_sys(err, errlen, rc, "replacing the program of %s", path);
		}
		dp->links[slot] = l;
		return 0;
	}
	bpf_link__destroy(l);		     /* our descriptor only: the link stays pinned... */
	if (unlink(path) && errno != ENOENT) /* ...until here; its daemon holds it */
		return errf_sys(err, errlen, -errno, "removing %s", path);
	return attach_pinned(dp, slot, prog, cg_fd, err, errlen);
}

static int link_id(int fd, __u32 *id)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*id = info.id;
	return 0;
}

/* A successor that failed before taking over may have replaced our programs or our
 * pins: ours again, in both. */
static int reclaim_link(struct rm_dp *dp, int slot, struct bpf_program *prog)
{
	struct bpf_link *l = dp->links[slot];
	char path[PATH_MAX];
	__u32 ours = 0, theirs = 0;
	int fd, rc;

	if (!l)
		return 0;
	rc = bpf_link__update_program(l, prog);
	if (rc)
		return rc;
	if (path_join(path, sizeof(path), dp->pin_dir, dp_link_names[slot]) ||
	    link_id(bpf_link__fd(l), &ours))
		return -EINVAL;
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		rc = link_id(fd, &theirs);
		if (!rc && theirs == ours) {
			close(fd);
			return 0;
		}
		bpf_link_detach(fd);
		close(fd);
		unlink(path);
	}
	return bpf_obj_pin(bpf_link__fd(l), path) ? -errno : 0;
}

static int check_opts(const struct rm_dp_opts *o, char *err, size_t errlen)
{
	if (!o || !o->cgroup_path || !*o->cgroup_path)
		return errf_sys(err, errlen, -EINVAL, "no cgroup path for the pods");
	if (!o->pin_dir || o->pin_dir[0] != '/')
		return errf_sys(err, errlen, -EINVAL, "pin dir must be an absolute path");
	if (o->n_include > RM_MAX_RANGES || o->n_exclude > RM_MAX_RANGES)
		return errf_sys(err, errlen, -E2BIG, "at most %d include and %d exclude ranges",
				RM_MAX_RANGES, RM_MAX_RANGES);
	if (o->n_exclude_ports > RM_MAX_XPORTS)
		return errf_sys(err, errlen, -E2BIG, "at most %d excluded ports", RM_MAX_XPORTS);
	if ((o->n_include && !o->include) || (o->n_exclude && !o->exclude) ||
	    (o->n_exclude_ports && !o->exclude_ports))
		return errf_sys(err, errlen, -EINVAL, "range or port count without a list");
	if (o->listen.sin_family != AF_INET || !o->listen.sin_port || !o->listen.sin_addr.s_addr)
		return errf_sys(err, errlen, -EINVAL, "listener must be an IPv4 address and port");
	return 0;
}

/* Refuse anything but a non-root cgroup2 directory: attaching to the root would
 * steer every process on the node, the daemon's upstreams included. */
static int check_cgroup(const char *path, const char *mnt, bool allow_root, char *real, char *err,
			size_t errlen)
{
	char ev[PATH_MAX + 16];
	struct stat a, b;

	if (!realpath(path, real))
		return errf_sys(err, errlen, -errno, "cgroup %s", path);
	if (!fs_is(real, CGROUP2_SUPER_MAGIC) || stat(real, &a) || !S_ISDIR(a.st_mode))
		return errf_sys(err, errlen, -EINVAL, "%s is not a cgroup2 directory", path);
	if (allow_root)
		return 0;
	if (!strcmp(real, mnt) || (!stat(mnt, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino))
		return errf_sys(err, errlen, -EINVAL,
				"%s is the cgroup2 root; give the pods' parent cgroup", path);
	/* The root of the hierarchy may also be reached through a path that is not the
	 * first mount: a bind mount, or a container's hostPath of the host's cgroup2
	 * while its own cgroup namespace makes its /sys/fs/cgroup look like a root. Only
	 * the real root has no cgroup.events, whatever the path. */
	if (snprintf(ev, sizeof(ev), "%s/cgroup.events", real) >= (int)sizeof(ev))
		return errf(err, errlen, -ENAMETOOLONG, "cgroup %s: path too long", path);
	if (access(ev, F_OK) && errno == ENOENT)
		return errf(err, errlen, -EINVAL,
			    "%s is the root of a cgroup2 hierarchy (it has no cgroup.events); "
			    "give the pods' parent cgroup",
			    path);
	return 0;
}

int dp_check_cgroup(const char *path, const char *mnt, char *err, size_t errlen)
{
	char m[PATH_MAX], real[PATH_MAX];
	int rc;

	if (!mnt) {
		rc = cgroup2_mount(m, sizeof(m));
		if (rc)
			return errf_sys(err, errlen, rc, "no cgroup2 mount in /proc/self/mounts");
		mnt = m;
	}
	return check_cgroup(path, mnt, false, real, err, errlen);
}

static int setup_cfg(struct rm_dp *dp, const struct rm_dp_opts *o, const char *self_cg, char *err,
		     size_t errlen)
{
	int fd = bpf_map__fd(dp->skel->maps.rm_proxy), rc;
	struct rm_proxy_cfg *c;
	struct stat st;
	__u64 cookie;
	void *m;

	dp->cfg_len = pin_mmap_len(&pin_defs[PIN_PROXY]);
	m = mmap(NULL, dp->cfg_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return errf_sys(err, errlen, -errno, "mmap of %s", RM_MAP_PROXY);
	dp->cfg = c = m;

	/* bpf_get_current_cgroup_id() is the kernfs id, the inode of the directory. */
	if (stat(self_cg, &st))
		return errf_sys(err, errlen, -errno, "own cgroup %s", self_cg);
	rc = netns_cookie(&cookie);
	if (rc)
		return errf_sys(err, errlen, rc, "netns cookie (SO_NETNS_COOKIE)");

	dp->self_cg_id = st.st_ino;
	if (o->adopt) {
		/* The predecessor's beat stays in place (no instant of fail-open) and its
		 * identity moves to prev_ before ours replaces it: its upstream connections
		 * are never intercepted while it drains. */
		__atomic_store_n(&c->prev_cgroup_id, c->daemon_cgroup_id, __ATOMIC_RELAXED);
		__atomic_store_n(&c->prev_tgid, c->daemon_tgid, __ATOMIC_RELEASE);
	} else {
		memset(c, 0, sizeof(*c));
	}
	c->heartbeat_max_ns = o->heartbeat_max_ns ? o->heartbeat_max_ns : DP_HEARTBEAT_MAX_DEFAULT;
	c->daemon_netns_cookie = cookie;
	c->flags = o->sockmap ? RM_PF_SOCKMAP : 0;
	rm_addr_from_v4(&c->listen_addr, o->listen.sin_addr.s_addr);
	rm_addr_from_v4(&c->pod_gw_addr, o->pod_gw.s_addr);
	c->listen_port = o->listen.sin_port;
	__atomic_store_n(&c->daemon_cgroup_id, dp->self_cg_id, __ATOMIC_RELEASE);
	__atomic_store_n(&c->daemon_tgid, (__u32)getpid(), __ATOMIC_RELEASE);
	return 0;
}

/* On a hand-over the kept maps hold the predecessor's ranges: ours replace them. */
static int fill_maps(struct rm_dp *dp, const struct rm_dp_opts *o, char *err, size_t errlen)
{
	struct ringmesh *s = dp->skel;
	int rc;

	rc = sync_ranges(bpf_map__fd(s->maps.rm_include), o->include, o->n_include);
	if (rc)
		return errf_sys(err, errlen, rc, "filling %s", RM_MAP_INCLUDE);
	rc = sync_ranges(bpf_map__fd(s->maps.rm_exclude), o->exclude, o->n_exclude);
	if (rc)
		return errf_sys(err, errlen, rc, "filling %s", RM_MAP_EXCLUDE);
	rc = sync_keys(bpf_map__fd(s->maps.rm_xports), o->exclude_ports, o->n_exclude_ports,
		       sizeof(__u16), RM_MAX_XPORTS);
	if (rc)
		return errf_sys(err, errlen, rc, "filling %s", RM_MAP_XPORTS);
	return 0;
}

static int attach_all(struct rm_dp *dp, const char *mnt, const char *pods_cg, const char *self_cg,
		      char *err, size_t errlen)
{
	struct ringmesh *s = dp->skel;
	int rc;

	int (*attach)(struct rm_dp *, int, struct bpf_program *, int, char *, size_t) =
	    dp->o.adopt ? adopt_link : attach_pinned;

	rc = attach(dp, DP_L_CONNECT4, s->progs.rm_connect4_prog, dp->cg_fd, err, errlen);
	if (!rc)
		rc = attach(dp, DP_L_SOCKOPS, s->progs.rm_sockops_prog, dp->cg_fd, err, errlen);
	if (rc)
		return rc;

	/* SO_ORIGINAL_DST is asked from the daemon's own cgroup. The root would answer
	 * for every process on the node and the pods' subtree for the pods, so then the
	 * daemon only uses rm_dp_orig_lookup(). */
	if (!strcmp(self_cg, mnt)) {
		snprintf(dp->note, sizeof(dp->note),
			 "SO_ORIGINAL_DST not served: ringmeshd runs in the cgroup2 root");
	} else if (path_within(self_cg, pods_cg)) {
		snprintf(
		    dp->note, sizeof(dp->note),
		    "SO_ORIGINAL_DST not served: ringmeshd runs inside the pods' cgroup %.150s",
		    pods_cg);
	} else {
		dp->dcg_fd = open(self_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dp->dcg_fd < 0)
			return errf_sys(err, errlen, -errno, "opening own cgroup %s", self_cg);
		rc = attach(dp, DP_L_GETSOCKOPT, s->progs.rm_getsockopt_prog, dp->dcg_fd, err,
			    errlen);
		if (rc)
			return rc;
	}

	/* A predecessor's verdict program on rm_socks is replaced in one exchange. */
	rc = bpf_prog_attach(bpf_program__fd(s->progs.rm_msg_prog), dp->socks_fd,
			     BPF_SK_MSG_VERDICT, 0);
	if (rc)
		return errf_sys(err, errlen, rc, "attaching sk_msg to %s", RM_MAP_SOCKS);
	dp->msg_prog_fd = bpf_program__fd(s->progs.rm_msg_prog);
	return 0;
}

static void dp_teardown(struct rm_dp *dp, enum dp_unpin unpin);

int rm_dp_pin_dir(const char *pin_dir, char *err, size_t errlen)
{
	int rc = ensure_bpffs();

	if (rc)
		return errf_sys(err, errlen, rc, "mounting bpffs at %s", DP_BPFFS);
	rc = mkdir_p(pin_dir, 0700);
	if (rc)
		return errf_sys(err, errlen, rc, "creating pin dir %s", pin_dir);
	if (!fs_is(pin_dir, BPF_FS_MAGIC))
		return errf_sys(err, errlen, -EINVAL, "pin dir %s is not on a bpf filesystem",
				pin_dir);
	return 0;
}

int rm_dp_open(struct rm_dp **out, const struct rm_dp_opts *o, char *err, size_t errlen)
{
	char mnt[PATH_MAX], pods_cg[PATH_MAX], self_cg[PATH_MAX];
	struct rm_dp *dp;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	*out = NULL;
	rc = check_opts(o, err, errlen);
	if (rc)
		return rc;
	rc = cgroup2_mount(mnt, sizeof(mnt));
	if (rc)
		return errf_sys(err, errlen, rc, "no cgroup2 mount in /proc/self/mounts");
	rc = check_cgroup(o->cgroup_path, mnt, o->allow_root_cgroup, pods_cg, err, errlen);
	if (rc)
		return rc;
	rc = self_cgroup(mnt, self_cg, sizeof(self_cg));
	if (rc)
		return errf_sys(err, errlen, rc, "own cgroup2 path from /proc/self/cgroup");

	rc = rm_dp_pin_dir(o->pin_dir, err, errlen);
	if (rc)
		return rc;

	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return errf_sys(err, errlen, -ENOMEM, "allocating the data path");
	dp->cg_fd = dp->dcg_fd = dp->msg_prog_fd = -1;
	for (int i = 0; i < DP_RT_MAX; i++)
		dp->pred_rt[i] = -1;
	dp->sockmap = o->sockmap;
	if (!realpath(o->pin_dir, dp->pin_dir)) {
		rc = errf_sys(err, errlen, -errno, "pin dir %s", o->pin_dir);
		goto fail;
	}
	dp->o = *o;
	/* A predecessor that hands over still uses all of it (but for a runtime map of
	 * another size, re-created); a dead one left it. */
	if (o->adopt) {
		uint32_t np, nh, ns = o->stats_keys ? o->stats_keys : RM_STATS_SLOTS;

		cb_size(o->breaker_pools, o->breaker_hosts, &np, &nh);
		rc = fresh_runtime_map(dp->pin_dir, DP_RT_STATS, rm_stats_pages(o->stats_keys), ns,
				       0, &dp->pred_rt[DP_RT_STATS], err, errlen);
		if (!rc)
			rc = fresh_runtime_map(dp->pin_dir, DP_RT_BREAKER, cb_pages(np, nh), np, nh,
					       &dp->pred_rt[DP_RT_BREAKER], err, errlen);
	} else {
		rc = remove_leftovers(dp->pin_dir, rm_stats_pages(o->stats_keys), err, errlen);
	}
	if (rc)
		goto fail;

	dp->cg_fd = open(pods_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dp->cg_fd < 0) {
		rc = errf_sys(err, errlen, -errno, "opening cgroup %s", pods_cg);
		goto fail;
	}

	{
		LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = dp->pin_dir);

		dp->skel = ringmesh__open_opts(&oo);
	}
	if (!dp->skel) {
		rc = errf_sys(err, errlen, -errno, "opening the BPF object");
		goto fail;
	}
	rc = bpf_map__set_max_entries(dp->skel->maps.rm_stats, rm_stats_pages(o->stats_keys));
	if (!rc)
		rc = bpf_map__set_max_entries(dp->skel->maps.rm_breaker,
					      rm_breaker_pages(o->breaker_pools, o->breaker_hosts));
	if (!rc)
		rc = ringmesh__load(dp->skel);
	if (rc) {
		if (o->adopt && rc == -EINVAL)
			rc = errf_sys(err, errlen, rc,
				      "loading the BPF programs over the maps pinned under %s: "
				      "the running ringmeshd's maps have another layout; stop it "
				      "first (no hand-over between these versions)",
				      dp->pin_dir);
		else if (rc == -EPERM || rc == -EACCES)
			rc = errf_sys(err, errlen, rc,
				      "loading the BPF programs (pins under %s; needs CAP_BPF, "
				      "CAP_NET_ADMIN and CAP_PERFMON, or CAP_SYS_ADMIN)",
				      dp->pin_dir);
		else
			rc = errf_sys(err, errlen, rc, "loading the BPF programs (pins under %s)",
				      dp->pin_dir);
		goto fail;
	}
	dp->orig_fd = bpf_map__fd(dp->skel->maps.rm_orig);
	dp->socks_fd = bpf_map__fd(dp->skel->maps.rm_socks);

	rc = setup_cfg(dp, o, self_cg, err, errlen);
	if (!rc)
		rc = fill_maps(dp, o, err, errlen);
	if (!rc)
		rc = attach_all(dp, mnt, pods_cg, self_cg, err, errlen);
	if (rc)
		goto fail;
	/* No heartbeat yet: connect4 keeps failing open until the caller, with its
	 * configuration loaded and its workers accepting, beats for the first time.
	 * Beating here let connections in before the router knew the services. */
	*out = dp;
	return 0;
fail:
	/* Our fresh maps go, but never the rules maps a previous daemon left; on a
	 * hand-over nothing is ours yet: the predecessor takes its programs back. */
	dp_teardown(dp, o->adopt ? DP_UNPIN_KEEP : DP_UNPIN_OURS);
	return rc;
}

void rm_dp_heartbeat(struct rm_dp *dp)
{
	if (dp && dp->cfg)
		__atomic_store_n(&dp->cfg->heartbeat_ns, mono_ns(), __ATOMIC_RELEASE);
}

const char *rm_dp_note(const struct rm_dp *dp)
{
	return dp ? dp->note : "";
}

int rm_dp_orig_lookup(struct rm_dp *dp, const struct sockaddr *local, const struct sockaddr *peer,
		      struct rm_orig *out)
{
	struct rm_tuple own, pod;
	int rc;

	rc = rm_tuple_from_sockaddrs(&own, local, peer);
	if (rc)
		return rc;
	rm_tuple_mirror(&pod, &own);
	return bpf_map_lookup_elem(dp->orig_fd, &pod, out) ? -errno : 0;
}

int rm_dp_workload_lookup(struct rm_dp *dp, uint64_t id, struct rm_workload *out)
{
	__u64 k = id;

	return bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.rm_workload), &k, out) ? -errno : 0;
}

void rm_dp_orig_forget(struct rm_dp *dp, const struct sockaddr *local, const struct sockaddr *peer)
{
	struct rm_tuple own, pod;

	if (rm_tuple_from_sockaddrs(&own, local, peer))
		return;
	rm_tuple_mirror(&pod, &own);
	bpf_map_delete_elem(dp->orig_fd, &pod);
}

int rm_dp_sock_add(struct rm_dp *dp, int fd, const struct sockaddr *local,
		   const struct sockaddr *peer)
{
	struct rm_tuple own;
	__u32 v = (__u32)fd;
	int rc;

	if (!dp->sockmap)
		return 0;
	rc = rm_tuple_from_sockaddrs(&own, local, peer);
	if (rc)
		return rc;
	return bpf_map_update_elem(dp->socks_fd, &own, &v, BPF_ANY) ? -errno : 0;
}

int rm_dp_stats(struct rm_dp *dp, uint64_t *out)
{
	int fd = bpf_map__fd(dp->skel->maps.rm_dpstats);
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (__u32 k = 0; k < RM_DP_STAT_MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(fd, &k, vals)) {
			int rc = -errno;

			free(vals);
			return rc;
		}
		for (int c = 0; c < ncpu; c++)
			out[k] += vals[c];
	}
	free(vals);
	return 0;
}

/* A hand-over that did not complete: the predecessor's runtime maps pinned again
 * where we had pinned fresh ones (restore), or, once it did, only our fds closed. */
static void dp_pred_maps(struct rm_dp *dp, bool restore)
{
	for (int i = 0; i < DP_RT_MAX; i++) {
		const char *name = pin_defs[dp_rt_ids[i]].name;
		int rc;

		if (dp->pred_rt[i] < 0)
			continue;
		if (restore) {
			rc = repin(dp->pin_dir, name, dp->pred_rt[i]);
			fprintf(stderr, "ringmeshd: %s: the hand-over did not complete: %s\n", name,
				rc ? strerror(-rc) : "the predecessor's map pinned again");
		}
		close(dp->pred_rt[i]);
		dp->pred_rt[i] = -1;
	}
}

static void dp_teardown(struct rm_dp *dp, enum dp_unpin unpin)
{
	struct bpf_map *m;
	char path[PATH_MAX];

	dp_pred_maps(dp, unpin == DP_UNPIN_KEEP);

	/* Fail open first: connects that race with the detach go direct. */
	if (dp->cfg && unpin != DP_UNPIN_KEEP)
		__atomic_store_n(&dp->cfg->heartbeat_ns, 0, __ATOMIC_RELEASE);
	for (int i = 0; i < DP_L_MAX; i++) {
		if (!dp->links[i])
			continue;
		/* KEEP: closing our descriptor of a pinned link leaves it attached */
		if (unpin != DP_UNPIN_KEEP)
			bpf_link__unpin(dp->links[i]);
		bpf_link__destroy(dp->links[i]);
	}
	if (dp->msg_prog_fd >= 0 && unpin != DP_UNPIN_KEEP)
		bpf_prog_detach2(dp->msg_prog_fd, dp->socks_fd, BPF_SK_MSG_VERDICT);
	if (dp->cfg)
		munmap(dp->cfg, dp->cfg_len);
	if (dp->skel) {
		if (unpin == DP_UNPIN_ALL) {
			bpf_object__for_each_map(m, dp->skel->obj) if (bpf_map__is_pinned(m))
			    bpf_map__unpin(m, NULL);
			/* the configuration's halves are the store's maps, not the object's */
			if (dp->pin_dir[0])
				cfg_store_unpin_halves(dp->pin_dir);
		}
		ringmesh__destroy(dp->skel);
	}
	if (unpin == DP_UNPIN_OURS && dp->pin_dir[0])
		for (int i = 0; i < PIN_MAX; i++)
			if ((pin_defs[i].use & PIN_U_RUNTIME) &&
			    !path_join(path, sizeof(path), dp->pin_dir, pin_defs[i].name))
				unlink(path);
	/* Someone else's files may share the dir: then it stays. */
	if ((unpin == DP_UNPIN_OURS || unpin == DP_UNPIN_ALL) && dp->pin_dir[0]) {
		unlink_next(dp->pin_dir);
		rmdir(dp->pin_dir);
	}
	if (dp->cg_fd >= 0)
		close(dp->cg_fd);
	if (dp->dcg_fd >= 0)
		close(dp->dcg_fd);
	free(dp);
}

void rm_dp_close(struct rm_dp *dp, bool unpin)
{
	if (dp)
		dp_teardown(dp, unpin ? DP_UNPIN_ALL : DP_UNPIN_NONE);
}

void rm_dp_release(struct rm_dp *dp)
{
	if (dp)
		dp_teardown(dp, DP_UNPIN_KEEP);
}

void rm_dp_taken(struct rm_dp *dp)
{
	if (dp)
		dp_pred_maps(dp, false);
}

void rm_dp_fail_open(struct rm_dp *dp)
{
	if (dp && dp->cfg)
		__atomic_store_n(&dp->cfg->heartbeat_ns, 0, __ATOMIC_RELEASE);
}

void rm_dp_forget_prev(struct rm_dp *dp)
{
	if (!dp || !dp->cfg)
		return;
	__atomic_store_n(&dp->cfg->prev_tgid, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&dp->cfg->prev_cgroup_id, 0, __ATOMIC_RELEASE);
}

/* A successor of another size pinned fresh runtime maps over ours: ours again. */
static int reclaim_runtime_maps(struct rm_dp *dp)
{
	struct bpf_map *maps[DP_RT_MAX] = {
	    [DP_RT_STATS] = dp->skel->maps.rm_stats,
	    [DP_RT_BREAKER] = dp->skel->maps.rm_breaker,
	};

	for (int i = 0; i < DP_RT_MAX; i++) {
		const char *name = pin_defs[dp_rt_ids[i]].name;
		char path[PATH_MAX];
		int ours = bpf_map__fd(maps[i]), fd, rc;
		bool same;

		if (path_join(path, sizeof(path), dp->pin_dir, name))
			return -ENAMETOOLONG;
		fd = bpf_obj_get(path);
		same = fd >= 0 && map_id(fd) == map_id(ours);
		if (fd >= 0)
			close(fd);
		if (same)
			continue;
		rc = repin(dp->pin_dir, name, ours);
		if (rc)
			return rc;
		fprintf(stderr,
			"ringmeshd: %s: the successor's fresh map dropped, ours pinned again\n",
			name);
	}
	return 0;
}

int rm_dp_reclaim(struct rm_dp *dp, char *err, size_t errlen)
{
	struct ringmesh *s = dp->skel;
	struct rm_proxy_cfg *c = dp->cfg;
	struct rm_dp_opts o = dp->o;
	int rc;

	__atomic_store_n(&c->daemon_cgroup_id, dp->self_cg_id, __ATOMIC_RELEASE);
	__atomic_store_n(&c->daemon_tgid, (__u32)getpid(), __ATOMIC_RELEASE);
	rm_dp_forget_prev(dp);
	c->heartbeat_max_ns = o.heartbeat_max_ns ? o.heartbeat_max_ns : DP_HEARTBEAT_MAX_DEFAULT;
	c->flags = o.sockmap ? RM_PF_SOCKMAP : 0;
	rm_addr_from_v4(&c->listen_addr, o.listen.sin_addr.s_addr);
	rm_addr_from_v4(&c->pod_gw_addr, o.pod_gw.s_addr);
	c->listen_port = o.listen.sin_port;
	rc = fill_maps(dp, &o, err, errlen); /* the successor's ranges, replaced by ours */
	if (rc)
		return rc;
	rc = reclaim_runtime_maps(dp);
	if (rc)
		return errf_sys(err, errlen, rc, "pinning our runtime maps again");
	if ((rc = reclaim_link(dp, DP_L_CONNECT4, s->progs.rm_connect4_prog)) ||
	    (rc = reclaim_link(dp, DP_L_SOCKOPS, s->progs.rm_sockops_prog)) ||
	    (rc = reclaim_link(dp, DP_L_GETSOCKOPT, s->progs.rm_getsockopt_prog)))
		return errf_sys(err, errlen, rc, "taking the links back");
	if (dp->msg_prog_fd >= 0 &&
	    (rc = bpf_prog_attach(dp->msg_prog_fd, dp->socks_fd, BPF_SK_MSG_VERDICT, 0)))
		return errf_sys(err, errlen, rc, "attaching sk_msg to %s", RM_MAP_SOCKS);
	return 0;
}
