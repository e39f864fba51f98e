/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Real-attachment test of the node data path (bpf/ringmesh.bpf.c + dp.c). As root it
 * creates its own cgroups (/sys/fs/cgroup/.../rm-h1-PID for the "pods",
 * rm-h1-PID-d for the "daemon", which is this process) and pin dir
 * /sys/fs/bpf/rm-h1-PID, and sends traffic only over loopback or in a network
 * namespace of its own. Prints "bpf: N passed, N failed"; exit 0 / 1, 77 when not root.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <bpf/bpf.h>

#include "common/cidr.h"
#include "ringmeshd/dp.h"
#include "ringmesh/workload.h"

#define SO_ORIGINAL_DST_OPT 80
#define VIP "127.96.0.20"
#define VPORT 8080
#define HB_MAX_NS (500ull * 1000 * 1000)

static int n_pass, n_fail;
static char cg_mnt[PATH_MAX], cg_pods[PATH_MAX], cg_d[PATH_MAX], pin_dir[PATH_MAX];
/* pod identity: a pod cgroup below the pods' and a container cgroup below it */
static char cg_pod[PATH_MAX + 16], cg_ctr[PATH_MAX + 32];
static const char *client_cg; /* where clients run; NULL = cg_pods */
static struct rm_dp *g_dp;
static pid_t g_owner;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (cond) {                                                                        \
			n_pass++;                                                                  \
		} else {                                                                           \
			n_fail++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)

/* ---- environment ---------------------------------------------------------------- */

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int move_to(const char *cg, pid_t pid)
{
	char path[PATH_MAX + 20], buf[32];

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	return write_str(path, buf);
}

static void rm_pins(void)
{
	static const char *names[] = {RM_LINK_CONNECT4, RM_LINK_SOCKOPS, RM_LINK_GETSOCKOPT,
				      RM_MAP_INCLUDE,	RM_MAP_EXCLUDE,	 RM_MAP_XPORTS,
				      RM_MAP_ORIG_CK,	RM_MAP_ORIG,	 RM_MAP_SOCKS,
				      RM_MAP_PROXY,	RM_MAP_DPSTATS};
	char path[PATH_MAX * 2];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/%s", pin_dir, names[i]);
		if (i < 3 && (fd = bpf_obj_get(path)) >= 0) {
			bpf_link_detach(fd);
			close(fd);
		}
		unlink(path);
	}
	rmdir(pin_dir);
}

static void cleanup(void)
{
	if (getpid() != g_owner)
		return;
	move_to(cg_mnt, getpid());
	if (g_dp)
		rm_dp_close(g_dp, true);
	g_dp = NULL;
	rm_pins();
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	rmdir(cg_ctr);
	rmdir(cg_pod);
	rmdir(cg_pods);
	rmdir(cg_d);
}

static void on_signal(int sig)
{
	fprintf(stderr, "bpf: killed by signal %d\n", sig);
	exit(1); /* runs cleanup() */
}

static int cg2_mount(char *out, size_t len)
{
	char line[1024], dev[256], dir[PATH_MAX], type[64];
	FILE *f = fopen("/proc/self/mounts", "r");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%255s %4095s %63s", dev, dir, type) == 3 &&
		    !strcmp(type, "cgroup2")) {
			snprintf(out, len, "%s", dir);
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

static int prog_count(const char *cg, enum bpf_attach_type t)
{
	__u32 ids[16], cnt = 16, flags = 0;
	int fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = bpf_prog_query(fd, t, 0, &flags, ids, &cnt);
	close(fd);
	return rc ? rc : (int)cnt;
}

static __u64 ino_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : st.st_ino;
}

static struct sockaddr_in sin_of(const char *ip, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static int listen_on(const char *ip, int port, int *bound_port)
{
	struct sockaddr_in a = sin_of(ip, port);
	socklen_t len = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		close(fd);
		return -1;
	}
	if (bound_port)
		*bound_port = ntohs(a.sin_port);
	return fd;
}

/* accept with a timeout; -1 when nothing came. */
static int accept_within(int lfd, int ms)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};

	if (poll(&p, 1, ms) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* ---- byte streams ---------------------------------------------------------------- */

struct gen {
	uint64_t s;
};

static uint64_t gen_next(struct gen *g)
{
	g->s ^= g->s << 13;
	g->s ^= g->s >> 7;
	g->s ^= g->s << 17;
	return g->s;
}

/* Stream byte i of a seed: position-addressed so sender and checker need no state. */
static uint8_t stream_byte(uint64_t seed, size_t i)
{
	uint64_t x = (seed ^ (i / 8)) * 0x9e3779b97f4a7c15ull;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> (8 * (i % 8)));
}

/* Message sizes from one byte to a few hundred kB, small ones often. */
static size_t chunk_size(struct gen *g)
{
	static const size_t fixed[] = {1, 2, 7, 100, 1448, 4096, 16384, 65536};
	uint64_t r = gen_next(g);

	if (r % 3)
		return fixed[(r >> 8) % 8];
	return 1 + (r >> 16) % 200000;
}

struct pump_res {
	size_t sent, rcvd;
	long mismatch; /* first bad offset, -1 when none */
	int err;
};

/* Send tx_len bytes of stream tx_seed starting at offset tx_off while checking rx_len
 * bytes of stream rx_seed from offset rx_off, both at once (no deadlock on full
 * buffers), for at most timeout_ms. */
static struct pump_res pump(int fd, uint64_t tx_seed, size_t tx_off, size_t tx_len,
			    uint64_t rx_seed, size_t rx_off, size_t rx_len, int timeout_ms)
{
	static uint8_t buf[256 * 1024];
	struct pump_res r = {.mismatch = -1};
	struct gen sizes = {.s = tx_seed * 31 + 7};
	size_t chunk = 0;
	int waited = 0;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (r.sent < tx_len || r.rcvd < rx_len) {
		struct pollfd p = {.fd = fd};
		int n;

		if (r.sent < tx_len)
			p.events |= POLLOUT;
		if (r.rcvd < rx_len)
			p.events |= POLLIN;
		n = poll(&p, 1, 100);
		if (n < 0 && errno != EINTR) {
			r.err = errno;
			break;
		}
		if (n <= 0) {
			waited += 100;
			if (waited >= timeout_ms) {
				r.err = ETIMEDOUT;
				break;
			}
			continue;
		}
		waited = 0;
		if (p.revents & POLLIN) {
			ssize_t got = recv(fd, buf, sizeof(buf), 0);

			if (got == 0) {
				r.err = ECONNRESET;
				break;
			}
			if (got > 0) {
				if ((size_t)got > rx_len - r.rcvd) {
					r.err = E2BIG;
					break;
				}
				for (ssize_t i = 0; i < got && r.mismatch < 0; i++)
					if (buf[i] != stream_byte(rx_seed, rx_off + r.rcvd + i))
						r.mismatch = (long)(rx_off + r.rcvd + i);
				r.rcvd += got;
			}
		}
		if ((p.revents & POLLOUT) && r.sent < tx_len) {
			ssize_t put;

			if (!chunk) {
				chunk = chunk_size(&sizes);
				if (chunk > tx_len - r.sent)
					chunk = tx_len - r.sent;
			}
			if (chunk > sizeof(buf))
				chunk = sizeof(buf);
			for (size_t i = 0; i < chunk; i++)
				buf[i] = stream_byte(tx_seed, tx_off + r.sent + i);
			put = send(fd, buf, chunk, MSG_NOSIGNAL);
			if (put > 0) {
				r.sent += put;
				chunk -= put;
			} else if (put < 0 && errno != EAGAIN) {
				r.err = errno;
				break;
			}
		}
		if (p.revents & (POLLERR | POLLHUP) && !(p.revents & POLLIN)) {
			r.err = EPIPE;
			break;
		}
	}
	return r;
}

/* Wait until at least n bytes are queued for reading, without reading them. */
static int queued_at_least(int fd, size_t n, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		int q = 0;

		if (ioctl(fd, FIONREAD, &q) == 0 && (size_t)q >= n)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/* ---- clients in the pods' cgroup ---------------------------------------------------- */

enum client_kind {
	C_TCP_HELLO,   /* connect, send "hello", expect "ok" */
	C_TCP_CONNECT, /* connect only, report errno */
	C_UDP,	       /* UDP connect */
	C_NETNS,       /* own netns: listener on the pod gateway, connect to the VIP there */
	C_STREAM,      /* the sk_msg test: first_len bytes, wait for go, then pump */
};

struct client_args {
	enum client_kind kind;
	const char *ip;
	int port;
	int gw_port; /* C_NETNS: listener port (the proxy port) */
	size_t first_len, tx_len, rx_len;
	int go_fd; /* C_STREAM: read end of the go pipe */
};

struct client_res {
	int connect_err;
	int ok;
	struct pump_res pr;
	struct sockaddr_in accepted_local; /* C_NETNS */
};

static int lo_up(void)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		rc = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!rc && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static void client_main(const struct client_args *a, struct client_res *r)
{
	struct sockaddr_in dst = sin_of(a->ip, a->port);
	struct timeval tv = {.tv_sec = 3};
	int fd, lfd = -1;
	char buf[8];

	if (a->kind == C_NETNS) {
		if (unshare(CLONE_NEWNET) || lo_up()) {
			r->connect_err = errno;
			return;
		}
		lfd = listen_on("127.0.0.2", a->gw_port, NULL);
		if (lfd < 0) {
			r->connect_err = errno;
			return;
		}
	}
	fd = socket(AF_INET, (a->kind == C_UDP ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst))) {
		r->connect_err = errno;
		return;
	}
	switch (a->kind) {
	case C_TCP_HELLO:
		r->ok = send(fd, "hello", 5, 0) == 5 && recv(fd, buf, 2, MSG_WAITALL) == 2 &&
			!memcmp(buf, "ok", 2);
		break;
	case C_NETNS: {
		socklen_t len = sizeof(r->accepted_local);
		int afd = accept_within(lfd, 2000);

		r->ok = afd >= 0 && !getsockname(afd, (struct sockaddr *)&r->accepted_local, &len);
		break;
	}
	case C_STREAM: {
		struct pump_res p = {.mismatch = -1};

		if (a->first_len)
			p = pump(fd, 0xA11CE, 0, a->first_len, 0, 0, 0, 5000);
		if (read(a->go_fd, buf, 1) != 1)
			p.err = EIO;
		if (!p.err) {
			r->pr = pump(fd, 0xA11CE, a->first_len, a->tx_len - a->first_len, 0xB0B, 0,
				     a->rx_len, 20000);
			r->pr.sent += p.sent;
		} else {
			r->pr = p;
		}
		r->ok = !r->pr.err && r->pr.mismatch < 0;
		/* Let the other side finish reading before the close. */
		shutdown(fd, SHUT_WR);
		recv(fd, buf, 1, 0);
		break;
	}
	default:
		r->ok = 1;
	}
	close(fd);
}

struct client {
	pid_t pid;
	int res_fd;
};

static struct client client_start(const struct client_args *a)
{
	struct client c = {.pid = -1, .res_fd = -1};
	int p[2];

	if (pipe2(p, O_CLOEXEC))
		return c;
	c.pid = fork();
	if (c.pid == 0) {
		struct client_res r = {0};

		close(p[0]);
		if (move_to(client_cg ? client_cg : cg_pods, getpid()))
			r.connect_err = -1000;
		else
			client_main(a, &r);
		if (write(p[1], &r, sizeof(r)) != sizeof(r))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	c.res_fd = p[0];
	return c;
}

static struct client_res client_wait(struct client c)
{
	struct client_res r = {.connect_err = -2000};
	struct pollfd p = {.fd = c.res_fd, .events = POLLIN};

	if (c.pid < 0)
		return r;
	if (poll(&p, 1, 30000) != 1 || read(c.res_fd, &r, sizeof(r)) != sizeof(r)) {
		kill(c.pid, SIGKILL);
		r.connect_err = -3000;
	}
	waitpid(c.pid, NULL, 0);
	close(c.res_fd);
	return r;
}

static struct client_res run_client(const struct client_args *a)
{
	return client_wait(client_start(a));
}

/* ---- the tests ---------------------------------------------------------------------- */

static struct rm_cidr inc[1], exc[1];
static uint16_t xports[] = {9999};
static int proxy_port;

static struct rm_dp_opts base_opts(bool sockmap)
{
	struct rm_dp_opts o = {
	    .cgroup_path = cg_pods,
	    .pin_dir = pin_dir,
	    .include = inc,
	    .n_include = 1,
	    .exclude = exc,
	    .n_exclude = 1,
	    .exclude_ports = xports,
	    .n_exclude_ports = 1,
	    .listen = sin_of("127.0.0.1", proxy_port),
	    .sockmap = sockmap,
	    .heartbeat_max_ns = HB_MAX_NS,
	};

	/* A loopback gateway so the other-netns client can listen on it itself. */
	inet_pton(AF_INET, "127.0.0.2", &o.pod_gw);
	return o;
}

static void get_stats(struct rm_dp *dp, uint64_t *s)
{
	int rc = rm_dp_stats(dp, s);

	CHECK(rc == 0, "rm_dp_stats: %d", rc);
}

static void check_attached(int want_c4, int want_so, int want_gso, const char *when)
{
	int c4 = prog_count(cg_pods, BPF_CGROUP_INET4_CONNECT);
	int so = prog_count(cg_pods, BPF_CGROUP_SOCK_OPS);
	int gso = prog_count(cg_d, BPF_CGROUP_GETSOCKOPT);

	CHECK(c4 == want_c4 && so == want_so && gso == want_gso,
	      "%s: connect4 %d sockops %d getsockopt %d, want %d %d %d", when, c4, so, gso, want_c4,
	      want_so, want_gso);
}

static void test_refusals(void)
{
	struct rm_dp_opts o = base_opts(false);
	struct rm_dp *dp = NULL;
	char err[256];
	int rc;

	o.cgroup_path = cg_mnt;
	rc = rm_dp_open(&dp, &o, err, sizeof(err));
	CHECK(rc == -EINVAL && strstr(err, "root") && !dp, "root cgroup: rc %d '%s'", rc, err);
	o.cgroup_path = "/tmp";
	rc = rm_dp_open(&dp, &o, err, sizeof(err));
	CHECK(rc == -EINVAL && strstr(err, "not a cgroup2") && !dp, "/tmp: rc %d '%s'", rc, err);
	/* a container in its own cgroup namespace sees a non-root cgroup as its mount
	 * and may be handed the host's real root by a hostPath: still the root */
	rc = dp_check_cgroup(cg_mnt, cg_pods, err, sizeof(err));
	CHECK(rc == -EINVAL && strstr(err, "root of a cgroup2 hierarchy"),
	      "real root behind another mount: rc %d '%s'", rc, err);
	rc = dp_check_cgroup(cg_pods, NULL, err, sizeof(err));
	CHECK(rc == 0, "pods cgroup: rc %d '%s'", rc, err);
	o.cgroup_path = cg_pods;
	o.pin_dir = "relative/pins";
	rc = rm_dp_open(&dp, &o, err, sizeof(err));
	CHECK(rc == -EINVAL && !dp, "relative pin dir: rc %d '%s'", rc, err);
	check_attached(0, 0, 0, "after refused opens");
}

/* Intercepted connect from a pod: lands on the proxy, original destination known
 * both by lookup and by SO_ORIGINAL_DST. */
static void test_intercept(struct rm_dp *dp, int lfd, bool want_sockopt, bool sockmap)
{
	struct client_args a = {.kind = C_TCP_HELLO, .ip = VIP, .port = VPORT};
	struct sockaddr_in local, peer, od;
	socklen_t len = sizeof(local), plen = sizeof(peer), olen = sizeof(od);
	struct client c;
	struct rm_orig o;
	char buf[8];
	int afd, rc;

	rm_dp_heartbeat(dp);
	c = client_start(&a);
	afd = accept_within(lfd, 3000);
	CHECK(afd >= 0, "intercepted connection did not reach the proxy listener");
	if (afd >= 0) {
		getsockname(afd, (struct sockaddr *)&local, &len);
		getpeername(afd, (struct sockaddr *)&peer, &plen);
		rc = rm_dp_orig_lookup(dp, (struct sockaddr *)&local, (struct sockaddr *)&peer, &o);
		CHECK(rc == 0, "orig lookup: %d", rc);
		if (!rc) {
			char ip[64];

			rm_addr_str(&o.addr, ip, sizeof(ip));
			CHECK(!strcmp(ip, VIP) && ntohs(o.port) == VPORT && o.family == AF_INET,
			      "orig %s:%d", ip, ntohs(o.port));
			CHECK(o.tgid == (uint32_t)c.pid, "tgid %u, client %d", o.tgid, c.pid);
			CHECK(o.cgroup_id == ino_of(cg_pods), "cgroup id %llu",
			      (unsigned long long)o.cgroup_id);
			/* With the shortcut on, "hello" may already have gone by TCP
			 * (we never added our socket): never REDIRECT here. */
			CHECK(o.msg_mode == RM_MSG_UNDECIDED ||
				  (sockmap && o.msg_mode == RM_MSG_TCP),
			      "msg_mode %u", o.msg_mode);
		}
		rc = getsockopt(afd, SOL_IP, SO_ORIGINAL_DST_OPT, &od, &olen);
		if (want_sockopt)
			CHECK(rc == 0 && olen == sizeof(od) && od.sin_family == AF_INET &&
				  od.sin_addr.s_addr == sin_of(VIP, 0).sin_addr.s_addr &&
				  ntohs(od.sin_port) == VPORT,
			      "SO_ORIGINAL_DST rc %d errno %d len %u port %d", rc, errno, olen,
			      ntohs(od.sin_port));
		CHECK(recv(afd, buf, 5, MSG_WAITALL) == 5 && !memcmp(buf, "hello", 5),
		      "proxy did not read the client's bytes");
		CHECK(send(afd, "ok", 2, 0) == 2, "send ok");
		rm_dp_orig_forget(dp, (struct sockaddr *)&local, (struct sockaddr *)&peer);
		CHECK(rm_dp_orig_lookup(dp, (struct sockaddr *)&local, (struct sockaddr *)&peer,
					&o) == -ENOENT,
		      "entry still there after forget");
		close(afd);
	}
	{
		struct client_res r = client_wait(c);

		CHECK(r.connect_err == 0 && r.ok, "client: connect_err %d ok %d", r.connect_err,
		      r.ok);
	}
}

/* One intercepted connect from a client in cgroup cg: the rm_orig entry the proxy
 * finds (pod_cgroup_id and cgroup_id in *o), 0 or -errno. */
static int orig_of_client(struct rm_dp *dp, int lfd, const char *cg, struct rm_orig *o)
{
	struct client_args a = {.kind = C_TCP_HELLO, .ip = VIP, .port = VPORT};
	struct sockaddr_in local, peer;
	socklen_t len = sizeof(local), plen = sizeof(peer);
	struct client c;
	char buf[8];
	int afd, rc = -ETIMEDOUT;

	rm_dp_heartbeat(dp);
	client_cg = cg;
	c = client_start(&a);
	client_cg = NULL;
	afd = accept_within(lfd, 3000);
	if (afd >= 0) {
		getsockname(afd, (struct sockaddr *)&local, &len);
		getpeername(afd, (struct sockaddr *)&peer, &plen);
		rc = rm_dp_orig_lookup(dp, (struct sockaddr *)&local, (struct sockaddr *)&peer, o);
		if (recv(afd, buf, 5, MSG_WAITALL) != 5 || send(afd, "ok", 2, 0) != 2)
			rc = rc ? rc : -EIO;
		rm_dp_orig_forget(dp, (struct sockaddr *)&local, (struct sockaddr *)&peer);
		close(afd);
	}
	if (client_wait(c).connect_err)
		rc = rc ? rc : -ECONNREFUSED;
	return rc;
}

/* "A process in any cgroup below the pod's is that pod": connect4 records the
 * deepest ancestor with an rm_workload record, else 0; cgroup_id stays the task's. */
static void test_pod_identity(struct rm_dp *dp, int lfd)
{
	struct rm_workload w = {0};
	struct rm_orig o;
	char path[PATH_MAX * 2];
	__u64 pods = ino_of(cg_pods), pod, ctr;
	int fd, rc;

	snprintf(cg_pod, sizeof(cg_pod), "%s/pod-1", cg_pods);
	snprintf(cg_ctr, sizeof(cg_ctr), "%s/ctr-1", cg_pod);
	snprintf(path, sizeof(path), "%s/%s", pin_dir, RM_MAP_WORKLOAD);
	fd = bpf_obj_get(path);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	if (fd < 0 || mkdir(cg_pod, 0755) || mkdir(cg_ctr, 0755)) {
		CHECK(0, "pod cgroups: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	pod = ino_of(cg_pod);
	ctr = ino_of(cg_ctr);

	rc = orig_of_client(dp, lfd, cg_ctr, &o);
	CHECK(rc == 0 && o.pod_cgroup_id == 0 && o.cgroup_id == ctr,
	      "no record: rc %d pod %llu cgroup %llu", rc, (unsigned long long)o.pod_cgroup_id,
	      (unsigned long long)o.cgroup_id);

	snprintf(w.ns, sizeof(w.ns), "ns-a");
	rc = bpf_map_update_elem(fd, &pod, &w, BPF_ANY);
	rc |= bpf_map_update_elem(fd, &pods, &w, BPF_ANY);
	CHECK(rc == 0, "write records: %s", strerror(errno));
	rc = orig_of_client(dp, lfd, cg_ctr, &o);
	CHECK(rc == 0 && o.pod_cgroup_id == pod && o.cgroup_id == ctr,
	      "container below the pod: rc %d pod %llu (want %llu) cgroup %llu (want %llu)", rc,
	      (unsigned long long)o.pod_cgroup_id, (unsigned long long)pod,
	      (unsigned long long)o.cgroup_id, (unsigned long long)ctr);
	rc = orig_of_client(dp, lfd, cg_pod, &o);
	CHECK(rc == 0 && o.pod_cgroup_id == pod, "in the pod's own cgroup: rc %d pod %llu", rc,
	      (unsigned long long)o.pod_cgroup_id);

	bpf_map_delete_elem(fd, &pod);
	rc = orig_of_client(dp, lfd, cg_ctr, &o);
	CHECK(rc == 0 && o.pod_cgroup_id == pods,
	      "record only two levels up: rc %d pod %llu (want %llu)", rc,
	      (unsigned long long)o.pod_cgroup_id, (unsigned long long)pods);
	bpf_map_delete_elem(fd, &pods);
	rc = orig_of_client(dp, lfd, cg_ctr, &o);
	CHECK(rc == 0 && o.pod_cgroup_id == 0, "records deleted: rc %d pod %llu", rc,
	      (unsigned long long)o.pod_cgroup_id);
	close(fd);
	rmdir(cg_ctr);
	rmdir(cg_pod);
}

static void expect_refused(struct rm_dp *dp, enum client_kind kind, const char *ip, int port,
			   const char *what)
{
	struct client_args a = {.kind = kind, .ip = ip, .port = port};
	struct client_res r;

	rm_dp_heartbeat(dp);
	r = run_client(&a);
	CHECK(r.connect_err == ECONNREFUSED, "%s: connect errno %d, want ECONNREFUSED", what,
	      r.connect_err);
}

static void phase_basic(int lfd)
{
	struct rm_dp_opts o = base_opts(false);
	uint64_t s0[RM_DP_STAT_MAX], s1[RM_DP_STAT_MAX];
	struct rm_dp *dp = NULL;
	char err[256];
	int rc, bfd, bport;

	rc = rm_dp_open(&dp, &o, err, sizeof(err));
	CHECK(rc == 0, "rm_dp_open: %d %s", rc, err);
	if (rc)
		return;
	g_dp = dp;
	rm_dp_heartbeat(dp); /* open leaves interception off until the first beat */
	CHECK(!strcmp(rm_dp_note(dp), ""), "note '%s'", rm_dp_note(dp));
	check_attached(1, 1, 1, "after open");
	get_stats(dp, s0);

	test_intercept(dp, lfd, true, false);

	/* Outside the include range: direct, and nothing recorded. */
	bfd = listen_on("127.0.0.1", 0, &bport);
	{
		struct client_args a = {.kind = C_TCP_CONNECT, .ip = "127.0.0.1", .port = bport};
		struct client c = client_start(&a);
		int afd = accept_within(bfd, 3000);
		struct sockaddr_in local, peer, od;
		socklen_t len = sizeof(local), plen = sizeof(peer), olen = sizeof(od);
		struct rm_orig orig;

		CHECK(afd >= 0, "direct connection did not arrive");
		if (afd >= 0) {
			getsockname(afd, (struct sockaddr *)&local, &len);
			getpeername(afd, (struct sockaddr *)&peer, &plen);
			rc = rm_dp_orig_lookup(dp, (struct sockaddr *)&local,
					       (struct sockaddr *)&peer, &orig);
			CHECK(rc == -ENOENT, "lookup of a direct connection: %d", rc);
			rc = getsockopt(afd, SOL_IP, SO_ORIGINAL_DST_OPT, &od, &olen);
			CHECK(rc < 0, "SO_ORIGINAL_DST answered for a direct connection");
			close(afd);
		}
		CHECK(client_wait(c).connect_err == 0, "direct connect failed");
	}
	close(bfd);

	expect_refused(dp, C_TCP_CONNECT, "127.96.0.200", VPORT, "excluded range");
	expect_refused(dp, C_TCP_CONNECT, VIP, 9999, "excluded port");
	{
		struct client_args a = {.kind = C_UDP, .ip = VIP, .port = VPORT};

		CHECK(run_client(&a).connect_err == 0, "udp connect");
	}

	/* The daemon itself inside the pods' cgroup: its tgid keeps it direct. */
	if (!move_to(cg_pods, getpid())) {
		struct sockaddr_in dst = sin_of(VIP, VPORT);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		rm_dp_heartbeat(dp);
		rc = connect(fd, (struct sockaddr *)&dst, sizeof(dst));
		CHECK(rc < 0 && errno == ECONNREFUSED, "daemon's own connect was intercepted");
		close(fd);
		move_to(cg_d, getpid());
	}

	/* Stale heartbeat: fail open. */
	usleep(HB_MAX_NS / 1000 + 200000);
	{
		struct client_args a = {.kind = C_TCP_CONNECT, .ip = VIP, .port = VPORT};

		CHECK(run_client(&a).connect_err == ECONNREFUSED, "intercepted with a stale beat");
		CHECK(accept_within(lfd, 0) < 0, "stale: proxy got a connection");
	}
	test_intercept(dp, lfd, true, false); /* beats again: intercepts again */

	/* A client in another netns is sent to the pod gateway address. */
	{
		struct client_args a = {
		    .kind = C_NETNS, .ip = VIP, .port = VPORT, .gw_port = proxy_port};
		struct client_res r;

		rm_dp_heartbeat(dp);
		r = run_client(&a);
		CHECK(r.connect_err == 0 && r.ok &&
			  r.accepted_local.sin_addr.s_addr ==
			      sin_of("127.0.0.2", 0).sin_addr.s_addr &&
			  ntohs(r.accepted_local.sin_port) == proxy_port,
		      "other netns: err %d ok %d local %s:%d", r.connect_err, r.ok,
		      inet_ntoa(r.accepted_local.sin_addr), ntohs(r.accepted_local.sin_port));
	}

	get_stats(dp, s1);
#define D(k) (s1[k] - s0[k])
	CHECK(D(RM_DP_REDIRECTED) == 3 && D(RM_DP_ESTABLISHED) == 3 && D(RM_DP_NOT_INCLUDED) == 1 &&
		  D(RM_DP_EXCLUDED) == 1 && D(RM_DP_PORT_EXCLUDED) == 1 && D(RM_DP_NOT_TCP) == 1 &&
		  D(RM_DP_SELF) == 1 && D(RM_DP_STALE) == 1 && D(RM_DP_GETSOCKOPT) == 2 &&
		  D(RM_DP_SOCK_ADDED) == 0,
	      "stats: redir %llu estab %llu notinc %llu exc %llu xport %llu nottcp %llu self %llu "
	      "stale %llu gso %llu added %llu",
	      (unsigned long long)D(RM_DP_REDIRECTED), (unsigned long long)D(RM_DP_ESTABLISHED),
	      (unsigned long long)D(RM_DP_NOT_INCLUDED), (unsigned long long)D(RM_DP_EXCLUDED),
	      (unsigned long long)D(RM_DP_PORT_EXCLUDED), (unsigned long long)D(RM_DP_NOT_TCP),
	      (unsigned long long)D(RM_DP_SELF), (unsigned long long)D(RM_DP_STALE),
	      (unsigned long long)D(RM_DP_GETSOCKOPT), (unsigned long long)D(RM_DP_SOCK_ADDED));
#undef D
	printf("  basic: redirected/established %llu, stale %llu, getsockopt %llu\n",
	       (unsigned long long)(s1[RM_DP_REDIRECTED] - s0[RM_DP_REDIRECTED]),
	       (unsigned long long)(s1[RM_DP_STALE] - s0[RM_DP_STALE]),
	       (unsigned long long)(s1[RM_DP_GETSOCKOPT] - s0[RM_DP_GETSOCKOPT]));

	rm_dp_close(dp, true);
	g_dp = NULL;
	check_attached(0, 0, 0, "after close(unpin)");
	CHECK(access(pin_dir, F_OK) && errno == ENOENT, "pin dir still there after unpin");
}

/* A daemon that dies without closing leaves pinned links; the next one replaces them. */
static struct rm_dp *phase_crash_reopen(void)
{
	struct rm_dp_opts o = base_opts(true);
	struct rm_dp *dp = NULL;
	char err[256], path[PATH_MAX * 2];
	int status = -1, rc;
	pid_t pid = fork();

	if (pid == 0) {
		struct rm_dp *cdp;

		_exit(rm_dp_open(&cdp, &o, err, sizeof(err)) ? 3 : 0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "crashing daemon's open failed");
	check_attached(1, 1, 1, "after a daemon died without closing");
	snprintf(path, sizeof(path), "%s/%s", pin_dir, RM_LINK_CONNECT4);
	CHECK(access(path, F_OK) == 0, "dead daemon's link pin missing");

	rc = rm_dp_open(&dp, &o, err, sizeof(err));
	CHECK(rc == 0, "reopen over leftovers: %d %s", rc, err);
	if (rc)
		return NULL;
	g_dp = dp;
	rm_dp_heartbeat(dp); /* open leaves interception off until the first beat */
	check_attached(1, 1, 1, "after reopen over leftovers");
	return dp;
}

/* sk_msg shortcut: bytes both ways, byte-exact, in both first-message modes. */
static void stream_case(struct rm_dp *dp, int lfd, size_t first_len, uint32_t want_mode,
			const char *name)
{
	const size_t up = 4u << 20, down = 3u << 20;
	uint64_t s0[RM_DP_STAT_MAX], s1[RM_DP_STAT_MAX];
	int go[2];
	struct client_args a = {.kind = C_STREAM,
				.ip = VIP,
				.port = VPORT,
				.first_len = first_len,
				.tx_len = up,
				.rx_len = down};
	struct sockaddr_in local, peer;
	socklen_t len = sizeof(local), plen = sizeof(peer);
	struct pump_res pr = {.mismatch = -1}, first = {.mismatch = -1};
	struct client_res r;
	struct client c;
	struct rm_orig o = {0};
	int afd, rc;

	if (pipe2(go, O_CLOEXEC))
		return;
	a.go_fd = go[0];
	get_stats(dp, s0);
	rm_dp_heartbeat(dp);
	c = client_start(&a);
	afd = accept_within(lfd, 3000);
	CHECK(afd >= 0, "%s: no connection at the proxy", name);
	if (afd >= 0) {
		getsockname(afd, (struct sockaddr *)&local, &len);
		getpeername(afd, (struct sockaddr *)&peer, &plen);
		/* TCP-first: the pod's first bytes sit unread in our TCP receive queue
		 * when our socket joins rm_socks; were later ones redirected, they would
		 * be read before these (psock queue first) and the check would fail. */
		if (first_len && queued_at_least(afd, first_len, 5000))
			first.err = ETIMEDOUT;
		rc = rm_dp_sock_add(dp, afd, (struct sockaddr *)&local, (struct sockaddr *)&peer);
		CHECK(rc == 0, "%s: rm_dp_sock_add %d", name, rc);
		CHECK(write(go[1], "g", 1) == 1, "go");
		pr = pump(afd, 0xB0B, 0, down, 0xA11CE, 0, up, 20000);
		rc = rm_dp_orig_lookup(dp, (struct sockaddr *)&local, (struct sockaddr *)&peer, &o);
		CHECK(rc == 0 && o.msg_mode == want_mode, "%s: lookup %d msg_mode %u want %u", name,
		      rc, o.msg_mode, want_mode);
	} else {
		CHECK(write(go[1], "g", 1) == 1, "go");
	}
	r = client_wait(c);
	if (afd >= 0)
		close(afd);
	close(go[0]);
	close(go[1]);
	get_stats(dp, s1);

	CHECK(!first.err && first.mismatch < 0 && !pr.err && pr.mismatch < 0 && pr.rcvd == up &&
		  pr.sent == down,
	      "%s: proxy side err %d/%d mismatch %ld/%ld rcvd %zu sent %zu", name, first.err,
	      pr.err, first.mismatch, pr.mismatch, pr.rcvd, pr.sent);
	CHECK(r.connect_err == 0 && r.ok && r.pr.rcvd == down && r.pr.sent == up,
	      "%s: pod side connect %d err %d mismatch %ld rcvd %zu sent %zu", name, r.connect_err,
	      r.pr.err, r.pr.mismatch, r.pr.rcvd, r.pr.sent);
	CHECK(s1[RM_DP_SOCK_ADDED] - s0[RM_DP_SOCK_ADDED] == 1, "%s: pod socket not in rm_socks",
	      name);
	CHECK(s1[RM_DP_MSG_REDIRECT] > s0[RM_DP_MSG_REDIRECT], "%s: nothing redirected", name);
	if (want_mode == RM_MSG_REDIRECT)
		CHECK(s1[RM_DP_MSG_PASS] == s0[RM_DP_MSG_PASS], "%s: %llu messages went by TCP",
		      name, (unsigned long long)(s1[RM_DP_MSG_PASS] - s0[RM_DP_MSG_PASS]));
	else
		CHECK(s1[RM_DP_MSG_PASS] > s0[RM_DP_MSG_PASS], "%s: nothing went by TCP", name);
	printf("  %s: %zu bytes up, %zu down, messages redirected %llu, passed %llu\n", name,
	       pr.rcvd, r.pr.rcvd,
	       (unsigned long long)(s1[RM_DP_MSG_REDIRECT] - s0[RM_DP_MSG_REDIRECT]),
	       (unsigned long long)(s1[RM_DP_MSG_PASS] - s0[RM_DP_MSG_PASS]));
}

int main(void)
{
	char err[256];
	int lfd, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("bpf: 0 passed, 0 failed (skipped: needs root)\n");
		return 77;
	}
	if (cg2_mount(cg_mnt, sizeof(cg_mnt))) {
		printf("bpf: 0 passed, 0 failed (skipped: no cgroup2 mount)\n");
		return 77;
	}
	g_owner = getpid();
	snprintf(cg_pods, sizeof(cg_pods), "%.3000s/rm-h1-%d", cg_mnt, (int)getpid());
	snprintf(cg_d, sizeof(cg_d), "%.3000s/rm-h1-%d-d", cg_mnt, (int)getpid());
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/rm-h1-%d", (int)getpid());
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGALRM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	alarm(120);

	if (mkdir(cg_pods, 0755) || mkdir(cg_d, 0755) || move_to(cg_d, getpid())) {
		fprintf(stderr, "bpf: cannot set up cgroups under %s: %s\n", cg_mnt,
			strerror(errno));
		printf("bpf: 0 passed, 1 failed\n");
		return 1;
	}
	rc = rm_cidr_parse("127.96.0.0/16", &inc[0], err, sizeof(err));
	rc |= rm_cidr_parse("127.96.0.128/25", &exc[0], err, sizeof(err));
	lfd = listen_on("127.0.0.1", 0, &proxy_port);
	CHECK(rc == 0 && lfd >= 0, "setup: %s", err);

	test_refusals();
	phase_basic(lfd);
	{
		struct rm_dp *dp = phase_crash_reopen();

		if (dp) {
			test_intercept(dp, lfd, true, true);
			test_pod_identity(dp, lfd);
			stream_case(dp, lfd, 0, RM_MSG_REDIRECT, "sockmap redirect-first");
			stream_case(dp, lfd, 1000, RM_MSG_TCP, "sockmap tcp-first");
			rm_dp_close(dp, true);
			g_dp = NULL;
			check_attached(0, 0, 0, "after final close(unpin)");
			CHECK(access(pin_dir, F_OK) && errno == ENOENT, "pin dir left behind");
		}
	}
	close(lfd);
	printf("bpf: %d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
