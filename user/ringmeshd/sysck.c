/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sysck: kernel feature probes and cgroup2 discovery, see sysck.h. */
#include <errno.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <liburing.h>

#include "common/util.h"
#include "ringmeshd/sysck.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define NEEDS "ringmeshd needs Linux " SYSCK_MIN_KERNEL " or later"

int sysck_parse_release(const char *rel, unsigned int *major, unsigned int *minor)
{
	char *end;
	unsigned long a, b;

	errno = 0;
	a = strtoul(rel, &end, 10);
	if (end == rel || *end != '.' || errno)
		return -EINVAL;
	rel = end + 1;
	b = strtoul(rel, &end, 10);
	if (end == rel || errno || a > 1000 || b > 1000)
		return -EINVAL;
	*major = (unsigned int)a;
	*minor = (unsigned int)b;
	return 0;
}

/* Set by sysck_kernel: the release is at least the minimum, so every BPF feature
 * probed here exists and a failed probe is a refusal (libbpf's probes report a load
 * refused for lack of CAP_BPF/NET_ADMIN/PERFMON as "unsupported"). */
static bool release_ok;

/* EPERM is a missing capability or a seccomp/sysctl refusal, not an old kernel. */
static int perm_or_missing(char *err, size_t errlen, int rc, const char *what, const char *since)
{
	if (rc == -EPERM || rc == -EACCES || release_ok)
		return errf(err, errlen, rc,
			    "%s refused by the kernel (permission: needs CAP_BPF, CAP_NET_ADMIN "
			    "and CAP_PERFMON, "
			    "or root; a seccomp profile or kernel.unprivileged_bpf_disabled may "
			    "also refuse it)",
			    what);
	return errf(err, errlen, rc ? rc : -EOPNOTSUPP,
		    "kernel lacks %s (Linux %s); " NEEDS " (io_uring multishot recv)", what, since);
}

static int probe_bpf(char *err, size_t errlen)
{
	static const struct {
		enum bpf_prog_type t;
		const char *what, *since;
	} progs[] = {
	    {BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "BPF cgroup/connect4 programs", "4.17"},
	    {BPF_PROG_TYPE_SOCK_OPS, "BPF sockops programs", "4.13"},
	    {BPF_PROG_TYPE_SK_MSG, "BPF sk_msg programs", "4.17"},
	    {BPF_PROG_TYPE_CGROUP_SOCKOPT, "BPF cgroup/getsockopt programs", "5.3"},
	};
	int rc, fd;

	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		rc = libbpf_probe_bpf_prog_type(progs[i].t, NULL);
		if (rc != 1)
			return perm_or_missing(err, errlen, rc < 0 ? rc : 0, progs[i].what,
					       progs[i].since);
	}
	rc = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, NULL);
	if (rc != 1)
		return perm_or_missing(err, errlen, rc < 0 ? rc : 0, "BPF sockhash maps", "4.18");
	rc = libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie, NULL);
	if (rc != 1)
		return perm_or_missing(err, errlen, rc < 0 ? rc : 0,
				       "bpf_get_netns_cookie in sockops programs", "5.15");
	{
		LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = BPF_F_MMAPABLE);

		fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rm_probe", 4, 8, 1, &mo);
		if (fd < 0)
			return perm_or_missing(err, errlen, -errno,
					       "mmapable BPF arrays (BPF_F_MMAPABLE)", "5.5");
		close(fd);
	}
	return 0;
}

static int probe_uring(char *err, size_t errlen)
{
	struct io_uring ring;
	struct io_uring_probe *p;
	struct io_uring_buf_reg reg;
	void *br;
	int rc;

	rc = io_uring_queue_init(8, &ring, 0);
	if (rc == -EPERM || rc == -ENOSYS)
		return errf(
		    err, errlen, rc,
		    "io_uring is not available (%s): disabled by the kernel.io_uring_disabled "
		    "sysctl or a seccomp profile (a container runtime's default one blocks "
		    "it); ringmeshd's workers need it",
		    strerror(-rc));
	if (rc)
		return errf_sys(err, errlen, rc, "io_uring setup");
	p = io_uring_get_probe_ring(&ring);
	if (!p || !io_uring_opcode_supported(p, IORING_OP_ACCEPT) ||
	    !io_uring_opcode_supported(p, IORING_OP_RECV) ||
	    !io_uring_opcode_supported(p, IORING_OP_LINK_TIMEOUT)) {
		if (p)
			io_uring_free_probe(p);
		io_uring_queue_exit(&ring);
		return errf(err, errlen, -EOPNOTSUPP,
			    "kernel's io_uring lacks accept/recv/link-timeout; " NEEDS);
	}
	io_uring_free_probe(p);
	/* provided buffer rings (5.19): what multishot recv draws from */
	br = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rc = br == MAP_FAILED ? -errno : 0;
	if (!rc) {
		memset(&reg, 0, sizeof(reg));
		reg.ring_addr = (unsigned long)br;
		reg.ring_entries = 8;
		reg.bgid = 1;
		rc = io_uring_register_buf_ring(&ring, &reg, 0);
		munmap(br, 4096);
	}
	io_uring_queue_exit(&ring);
	if (rc)
		return errf(err, errlen, rc,
			    "kernel lacks io_uring provided buffer rings (Linux 5.19): %s; " NEEDS,
			    strerror(-rc));
	return 0;
}

int sysck_kernel(char *err, size_t errlen)
{
	struct utsname u;
	unsigned int maj, min;
	int rc;

	/* Multishot recv has no cheap probe (it needs a connected socket and data): the
	 * release decides, and it is the binding requirement. */
	release_ok = false;
	if (!uname(&u) && !sysck_parse_release(u.release, &maj, &min)) {
		release_ok = maj >= 6;
		if (!release_ok)
			return errf(
			    err, errlen, -EOPNOTSUPP,
			    "kernel %s is too old: " NEEDS
			    " (io_uring multishot recv, 6.0; provided buffer rings, 5.19; "
			    "sockops bpf_get_netns_cookie, 5.15; bpf_link cgroup attach, 5.7)",
			    u.release);
	}
	rc = probe_uring(err, errlen);
	if (!rc)
		rc = probe_bpf(err, errlen);
	return rc;
}

static bool is_cgroup2(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && (long)st.f_type == CGROUP2_SUPER_MAGIC;
}

int sysck_cgroup2_mount(char *out, size_t len, char *err, size_t errlen)
{
	static const char *const cands[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	struct mntent *m;
	FILE *f;
	int rc = -ENOENT;

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (is_cgroup2(cands[i]) && strlen(cands[i]) < len) {
			strcpy(out, cands[i]);
			return 0;
		}
	f = setmntent("/proc/self/mounts", "r");
	if (!f)
		return errf_sys(err, errlen, -errno, "/proc/self/mounts");
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2") || strlen(m->mnt_dir) >= len)
			continue;
		strcpy(out, m->mnt_dir);
		rc = 0;
		break;
	}
	endmntent(f);
	if (rc)
		return errf(
		    err, errlen, rc,
		    "no cgroup2 filesystem at /sys/fs/cgroup, /sys/fs/cgroup/unified or in "
		    "/proc/self/mounts: ringmeshd attaches to cgroup2 only (a cgroup v1-only "
		    "host needs systemd.unified_cgroup_hierarchy=1 or a hybrid setup)");
	return 0;
}

int sysck_pods_cgroup(const char *arg, const char *mnt, bool allow_root, char *out, size_t len,
		      char *err, size_t errlen)
{
	static const char *const kubelet[] = {"kubepods.slice", "kubepods"};
	char path[PATH_MAX], real[PATH_MAX], ev[PATH_MAX + 16];
	struct stat a, b;

	if (!arg) {
		size_t i;

		for (i = 0; i < sizeof(kubelet) / sizeof(kubelet[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", mnt, kubelet[i]);
			if (!access(path, F_OK))
				break;
		}
		if (i == sizeof(kubelet) / sizeof(kubelet[0]))
			return errf(
			    err, errlen, -ENOENT,
			    "no --cgroup given and no kubelet pods cgroup (%s/kubepods.slice "
			    "or %s/kubepods): give the pods' parent cgroup",
			    mnt, mnt);
	} else if (arg[0] != '/') {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", mnt, arg) >= sizeof(path))
			return errf(err, errlen, -ENAMETOOLONG, "--cgroup %s: path too long", arg);
	} else if (strlen(arg) >= sizeof(path)) {
		return errf(err, errlen, -ENAMETOOLONG, "--cgroup: path too long");
	} else {
		strcpy(path, arg);
	}
	if (!realpath(path, real))
		return errf_sys(err, errlen, -errno, "--cgroup %s", path);
	if (!is_cgroup2(real) || stat(real, &a) || !S_ISDIR(a.st_mode))
		return errf(err, errlen, -EINVAL,
			    "--cgroup %s: not a directory on a cgroup2 filesystem (cgroup2 is at "
			    "%s)",
			    path, mnt);
	if (!allow_root) {
		bool root = !stat(mnt, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;

		/* any path to a hierarchy root: only a root has no cgroup.events */
		snprintf(ev, sizeof(ev), "%s/cgroup.events", real);
		if (root || (access(ev, F_OK) && errno == ENOENT))
			return errf(
			    err, errlen, -EINVAL,
			    "--cgroup %s: is the cgroup2 root; give the pods' parent cgroup "
			    "(or --allow-root-cgroup to intercept every process on the node)",
			    path);
	}
	if (strlen(real) >= len)
		return errf(err, errlen, -ENAMETOOLONG, "--cgroup: path too long");
	strcpy(out, real);
	return 0;
}
