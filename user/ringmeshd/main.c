/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ringmeshd: the node proxy. Binds the workers' listeners (or takes them from the
 * daemon serving the same pin dir, handover.h), attaches the kernel side (dp),
 * starts the workers, beats the heartbeat from this thread, and ends in one of two
 * ways:
 *
 * - A hand-over: a successor took the sockets and the links. We stop accepting and
 *   beating, drain (every response closes its connection, idle keep-alive ones get
 *   a FIN), and leave everything shared to the successor: the pinned links (now
 *   with its programs), every map (rules, counters, breaker state, connections in
 *   flight), the heartbeat, the --gateway-dev interface.
 * - A clean stop (SIGTERM/SIGINT, no successor): the heartbeat goes to 0 first, so
 *   new connects go direct (fail open), we drain the same way, then remove what we
 *   made: links detached, every pin under the pin dir (rules and counters too: an
 *   uninstall leaves nothing), the --gateway-dev interface. A successor may still
 *   take over while we drain, and then nothing is removed.
 *
 * A drain lasts until the last connection is closed or --drain-timeout, when what
 * is left is reset. A second SIGTERM/SIGINT ends it at once.
 *
 * Exit status: 0 clean stop or handed over, 1 failure at startup or a worker died,
 * 2 bad command line.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/file.h>
#include <sys/signalfd.h>

#include <bpf/bpf.h>

#include "common/util.h"
#include "ringmesh/abi.h"
#include "policy/cb.h"
#include "ringmeshd/admin.h"
#include "ringmeshd/cb_pin.h"
#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/dp.h"
#include "ringmeshd/gwdev.h"
#include "ringmeshd/handover.h"
#include "ringmeshd/l7.h"
#include "ringmeshd/opts.h"
#include "ringmeshd/spans.h"
#include "ringmeshd/ring.h"
#include "ringmeshd/stats_w.h"
#include "ringmeshd/sysck.h"
#include <time.h>

#ifndef RINGMESH_VERSION
#define RINGMESH_VERSION "0.1.0"
#endif

#define STATS_LOG_EVERY_MS 10000
#define DRAIN_POLL_MS 50
/* A stop with no successor accepts this long after the heartbeat went to 0. */
#define DRAIN_ACCEPT_NS (500ull * 1000000ull)

struct daemon {
	struct rm_dp *dp; /* set before any worker starts */
	struct ring_worker *workers[OPTS_WORKERS_MAX];
	unsigned int n_workers;
	struct ring_group group; /* --accept-balance exact, with more than one worker */
	struct cfgw cw;		 /* published L7 configuration */
	bool cw_ok;
	struct stats_w stats; /* rm_stats writer */
	bool stats_ok;
	struct cb cb; /* rm_breaker, mmapped */
	bool cb_ok;
	struct l7_shared l7;
	struct admin admin; /* --metrics-listen */
	struct spans spans; /* --zipkin-url */
	bool spans_ok;
	bool admin_ok;
	bool cfg_started; /* cfgw_start returned: later publications are applies */
	bool gw_up;	  /* --gateway-dev is up with --pod-gateway on it */
	char cg_mnt[PATH_MAX], pods_cg[PATH_MAX];
	char pin[PATH_MAX]; /* the pin dir, resolved: names the hand-over socket */

	/* hand-over (handover.h) */
	int lock_fd; /* the pin dir's flock while we start fresh or remove it all */
	int ho_lfd;  /* a successor connects here; -1 while one is being served */
	int succ_fd; /* the successor we offered our sockets to */
	int pred_fd; /* the predecessor we took over from, until it exits (EOF) */
	pid_t succ_pid, pred_pid;
	bool handed;		   /* the successor said TAKEN: it owns everything shared */
	bool taken;		   /* we said TAKEN to our predecessor */
	int inh[HO_MAX_FDS];	   /* sockets taken over: proxy listeners, then the admin's */
	int inh_which[HO_MAX_FDS]; /* the address of each proxy one: 0 --listen, 1 the gateway */
	unsigned int n_inh, n_inh_proxy;
	int inh_admin;

	/* drain */
	bool draining;
	bool signalled;			 /* SIGTERM/SIGINT seen: a second one ends the drain */
	uint64_t drain_start, drain_end; /* CLOCK_MONOTONIC ns */
	bool accept_stopped;		 /* workers told RING_DRAIN */
};

static void cfg_log(void *ctx, const char *msg)
{
	fprintf(stderr, "ringmeshd: %s\n", msg);
}

static void cfg_published(void *ctx, uint64_t gen)
{
	struct daemon *d = ctx;

	if (!d->stats_ok)
		return;
	stats_set_generation(&d->stats, gen);
	if (__atomic_load_n(&d->cfg_started, __ATOMIC_ACQUIRE)) {
		/* the CLI's CLOCK_REALTIME at the flip (rm_cfg_ctl): how late we are */
		uint64_t flip = __atomic_load_n(&d->cw.store.ctl->updated_ns, __ATOMIC_RELAXED);
		uint64_t now = realtime_ns();

		stats_cfg_applied(&d->stats, flip && now > flip ? (now - flip) / 1000 : 0);
	}
}

static int hook_lookup(void *ctx, const struct sockaddr *local, const struct sockaddr *peer,
		       struct rm_orig *out)
{
	return rm_dp_orig_lookup(((struct daemon *)ctx)->dp, local, peer, out);
}

static int hook_sock_add(void *ctx, int fd, const struct sockaddr *local,
			 const struct sockaddr *peer)
{
	return rm_dp_sock_add(((struct daemon *)ctx)->dp, fd, local, peer);
}

static void hook_on_close(void *ctx, const struct sockaddr *local, const struct sockaddr *peer)
{
	rm_dp_orig_forget(((struct daemon *)ctx)->dp, local, peer);
}

static int hook_wl_fetch(void *ctx, uint64_t id, struct rm_workload *out)
{
	return rm_dp_workload_lookup(((struct daemon *)ctx)->dp, id, out);
}

/* Two descriptors per connection: ask for the hard limit rather than fail at 1024. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void sum_stats(const struct daemon *d, struct ring_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned int i = 0; i < d->n_workers; i++) {
		struct ring_stats s;

		ring_worker_stats(d->workers[i], &s);
		ring_stats_add(sum, &s);
	}
}

static void log_stats(const char *what, const struct daemon *d)
{
	struct ring_stats s;

	sum_stats(d, &s);
	fprintf(stderr,
		"ringmeshd: %s: accepted %llu, active %llu, refused %llu (no original "
		"destination %llu, loop %llu, full %llu), upstream connect failed %llu, "
		"resets %llu, bytes client->upstream %llu, upstream->client %llu, handed to a "
		"worker holding fewer %llu\n",
		what, (unsigned long long)s.accepted, (unsigned long long)s.active,
		(unsigned long long)(s.refused_no_orig + s.refused_loop + s.refused_full),
		(unsigned long long)s.refused_no_orig, (unsigned long long)s.refused_loop,
		(unsigned long long)s.refused_full, (unsigned long long)s.upstream_connect_failed,
		(unsigned long long)s.resets, (unsigned long long)s.bytes_c2u,
		(unsigned long long)s.bytes_u2c, (unsigned long long)s.handed_off);
}

static void stop_workers(struct daemon *d)
{
	for (unsigned int i = 0; i < d->n_workers; i++)
		ring_worker_stop(d->workers[i]);
	for (unsigned int i = 0; i < d->n_workers; i++)
		ring_worker_join(d->workers[i]);
}

static void destroy_workers(struct daemon *d)
{
	for (unsigned int i = 0; i < d->n_workers; i++)
		ring_worker_destroy(d->workers[i]);
	d->n_workers = 0;
}

static bool same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
	return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
}

/*
 * Worker i's listeners: on each of our two addresses (--listen, and --pod-gateway
 * on the same port), the sockets handed over whose index is i modulo the worker
 * count, or a new socket when none is left for it (SO_REUSEPORT puts it in the same
 * group). A successor with fewer workers accepts on every socket it was handed:
 * each is a member of the group that the kernel sends connections to.
 */
static int assign_listeners(struct daemon *d, const struct rm_opts *o, unsigned int i,
			    struct ring_config *cfg, char *err, size_t errlen)
{
	struct sockaddr_in want[2];
	unsigned int n = 0;

	memset(want, 0, sizeof(want));
	want[0] = o->listen;
	want[1].sin_family = AF_INET;
	want[1].sin_addr = o->pod_gw;
	want[1].sin_port = o->listen.sin_port;
	memset(cfg->listen, 0, sizeof(cfg->listen));
	for (unsigned int a = 0; a < 2; a++) {
		unsigned int seen = 0, got = 0;

		for (unsigned int k = 0; k < d->n_inh_proxy; k++) {
			if (d->inh_which[k] != (int)a)
				continue;
			if (seen++ % o->workers != i || d->inh[k] < 0)
				continue;
			if (n == RING_MAX_LISTEN)
				return errf(err, errlen, -E2BIG,
					    "too many listeners handed over for %u workers: "
					    "start with more --workers",
					    o->workers);
			cfg->listen[n].addr = want[a];
			cfg->listen[n].fd = d->inh[k];
			cfg->listen[n].inherited = true;
			d->inh[k] = -1; /* the worker's now */
			n++;
			got++;
		}
		if (got)
			continue;
		if (n == RING_MAX_LISTEN)
			return errf(err, errlen, -E2BIG, "too many listeners");
		cfg->listen[n].addr = want[a];
		/* Without --gateway-dev the CNI is to put the address on the pod veths,
		 * maybe after we start. */
		cfg->listen[n].freebind = a == 1;
		n++;
	}
	cfg->n_listen = n;
	return 0;
}

static int create_workers(struct daemon *d, const struct rm_opts *o, char *err, size_t errlen)
{
	struct ring_config cfg;
	int r;

	memset(&cfg, 0, sizeof(cfg));
	cfg.sockmap = o->sockmap;
	cfg.hold_accept = d->pred_pid != 0; /* until TAKEN is said */
	cfg.hooks.ctx = d;
	cfg.hooks.orig_lookup = hook_lookup;
	cfg.hooks.sock_add = hook_sock_add;
	cfg.hooks.on_close = hook_on_close;
	cfg.hooks.wl_fetch = hook_wl_fetch;
	if (o->l7) {
		r = cfgw_init(&d->cw, o->workers, err, errlen);
		if (r)
			return r;
		d->cw_ok = true;
		d->cw.log = cfg_log;
		d->cw.log_ctx = d;
		d->cw.on_publish = cfg_published;
		d->l7.cw = &d->cw;
		d->l7.o.lim.max_head = (size_t)o->max_head_kb * 1024;
		d->l7.o.connect_timeout_ms = o->connect_timeout_ms;
		d->l7.o.idle_timeout_ms = o->upstream_idle_ms;
		d->l7.o.max_idle = o->upstream_max_idle;
		d->l7.o.req_bufs = o->request_buffers;
		d->l7.o.max_mirrors = o->max_mirrors;
		l7_opts_fill(&d->l7.o);
		d->l7.trace_ppm = o->trace_ppm;
		d->l7.spans = d->spans_ok ? &d->spans : NULL;
		cfg.l7 = &d->l7;
	}
	for (unsigned int k = 0; k < d->n_inh_proxy; k++) {
		struct sockaddr_in sin, gw = {.sin_family = AF_INET,
					      .sin_addr = o->pod_gw,
					      .sin_port = o->listen.sin_port};
		socklen_t len = sizeof(sin);

		d->inh_which[k] = -1;
		if (!getsockname(d->inh[k], (struct sockaddr *)&sin, &len))
			d->inh_which[k] = same_addr(&sin, &o->listen) ? 0
					  : same_addr(&sin, &gw)      ? 1
								      : -1;
	}
	_Static_assert(OPTS_WORKERS_MAX <= RING_GROUP_MAX, "a group holds every worker");
	d->group.n = o->workers;
	cfg.group = o->accept_exact && o->workers > 1 ? &d->group : NULL;
	for (unsigned int i = 0; i < o->workers; i++) {
		cfg.id = i;
		r = assign_listeners(d, o, i, &cfg, err, errlen);
		if (!r)
			r = ring_worker_create(&d->workers[i], &cfg, err, errlen);
		if (r)
			return r;
		d->n_workers++;
	}
	/* Sockets of an address we no longer listen on (a changed --listen): what
	 * their queues hold is reset when the predecessor exits. */
	for (unsigned int k = 0; k < d->n_inh_proxy; k++)
		if (d->inh[k] >= 0) {
			fprintf(stderr, "ringmeshd: a listener handed over is not ours any more "
					"(another address), closed\n");
			close(d->inh[k]);
			d->inh[k] = -1;
		}
	return 0;
}

static int start_workers(struct daemon *d, char *err, size_t errlen)
{
	for (unsigned int i = 0; i < d->n_workers; i++) {
		int r = ring_worker_start(d->workers[i], err, errlen);

		if (r)
			return r;
	}
	return 0;
}

static int signals_fd(void)
{
	sigset_t set;

	/* Blocked before any thread exists, so only the signalfd sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC);
}

static void close_inherited(struct daemon *d)
{
	for (unsigned int k = 0; k < d->n_inh; k++)
		if (d->inh[k] >= 0)
			close(d->inh[k]);
	d->n_inh = d->n_inh_proxy = 0;
	if (d->inh_admin >= 0)
		close(d->inh_admin);
	d->inh_admin = -1;
}

/* Our lock, shared: how every live daemon holds the pin dir (handover.h). */
static int lock_shared(struct daemon *d, char *err, size_t errlen)
{
	int r = d->lock_fd >= 0 ? ho_relock(d->lock_fd, LOCK_SH) : 0;

	if (d->lock_fd < 0) {
		d->lock_fd = ho_lock(d->pin, LOCK_SH);
		r = d->lock_fd < 0 ? d->lock_fd : 0;
	}
	return r ? errf(err, errlen, r, "locking %s: %s", d->pin, strerror(-r)) : 0;
}

#define TAKE_OVER_RETRY_MS 100
#define TAKE_OVER_TRIES 600 /* a minute of a predecessor that neither answers nor stops */

/*
 * With the pin dir exclusive nobody who speaks the hand-over is alive, yet a fresh
 * heartbeat in rm_proxy says a daemon serves: one of a release without the hand-over
 * (or one that died within heartbeat_max). Starting fresh would detach it, and its
 * clean stop would later unpin us: wait for its beat to go stale, or refuse.
 */
static int old_daemon_check(struct daemon *d, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", d->pin, RM_MAP_PROXY) >= sizeof(path))
		return 0;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	for (int i = 0; i < 50; i++) {
		union {
			struct rm_proxy_cfg c;
			char raw[256];
		} v;
		struct bpf_map_info info;
		__u32 len = sizeof(info), key = 0;
		uint64_t now = mono_ns();

		memset(&v, 0, sizeof(v));
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.value_size > sizeof(v) ||
		    bpf_map_lookup_elem(fd, &key, &v) || !v.c.heartbeat_ns ||
		    now - v.c.heartbeat_ns >= v.c.heartbeat_max_ns) {
			close(fd);
			return 0;
		}
		usleep(TAKE_OVER_RETRY_MS * 1000);
	}
	close(fd);
	return errf(err, errlen, -EBUSY,
		    "a ringmeshd serves %s but does not hand over (a release before the "
		    "hand-over?): stop it first (for a DaemonSet, update once with maxSurge 0, "
		    "maxUnavailable 1)",
		    d->pin);
}

/*
 * Find the daemon serving our pin dir and take its sockets: 1 when we take over
 * (d->pred_fd open, the sockets in d->inh), 0 when there is none (we hold the pin
 * dir exclusive: a fresh start), or -errno with err filled when one is there and
 * does not hand over (we must then not touch anything).
 */
static int take_over(struct daemon *d, char *err, size_t errlen)
{
	for (int tries = 0; tries < TAKE_OVER_TRIES; tries++) {
		struct ho_msg m;
		int fd = ho_connect(d->pin), r;

		if (fd == -ECONNREFUSED || fd == -ENOENT) {
			if (d->lock_fd >= 0) /* exclusive, and still nobody: we are alone */
				return old_daemon_check(d, err, errlen);
			d->lock_fd = ho_lock(d->pin, LOCK_EX | LOCK_NB);
			if (d->lock_fd >= 0)
				continue; /* try the name once more, now that nobody can start */
			if (d->lock_fd != -EWOULDBLOCK)
				return errf(err, errlen, d->lock_fd, "locking %s: %s", d->pin,
					    strerror(-d->lock_fd));
			/* a live daemon between two names (a hand-over): ask again */
			usleep(TAKE_OVER_RETRY_MS * 1000);
			continue;
		}
		if (fd < 0)
			return errf(err, errlen, fd, "hand-over socket: %s", strerror(-fd));
		r = ho_send(fd, HO_HELLO, NULL, 0, 0, 0);
		if (!r)
			r = ho_recv(fd, &m, d->inh, HO_MAX_FDS, HO_TIMEOUT_MS);
		if (r == -EPIPE || r == -ECONNRESET) {
			/* it is stopping, or serving another successor: ask again */
			close(fd);
			usleep(TAKE_OVER_RETRY_MS * 1000);
			continue;
		}
		if (!r && m.type != HO_SOCKETS) {
			for (unsigned int k = 0; k < m.n_fds; k++)
				close(d->inh[k]);
			r = -EPROTO;
		}
		if (r) {
			close(fd);
			return errf(err, errlen, r, "hand-over from the ringmeshd serving %s: %s",
				    d->pin,
				    r == -EPROTO ? "it speaks another hand-over version; stop it "
						   "first"
						 : strerror(-r));
		}
		d->n_inh = m.n_fds;
		d->n_inh_proxy = m.n_proxy <= m.n_fds ? m.n_proxy : m.n_fds;
		d->inh_admin =
		    m.has_admin && m.n_fds > d->n_inh_proxy ? d->inh[d->n_inh_proxy] : -1;
		if (d->inh_admin >= 0)
			d->inh[d->n_inh_proxy] = -1; /* admin's own, see main */
		d->pred_fd = fd;
		d->pred_pid = (pid_t)m.pid;
		r = lock_shared(d, err, errlen);
		return r ? r : 1;
	}
	return errf(err, errlen, -EBUSY, "a ringmeshd holds %s but neither hands over nor stops",
		    d->pin);
}

/* Everything a successor needs to accept where we do: each worker's listeners and
 * the admin listener, sent as they are (the same sockets, not copies). */
static int offer_sockets(struct daemon *d, int fd)
{
	int fds[HO_MAX_FDS];
	unsigned int n = 0;

	for (unsigned int i = 0; i < d->n_workers; i++)
		for (unsigned int j = 0; j < RING_MAX_LISTEN; j++) {
			int l = ring_worker_listen_fd(d->workers[i], j);

			if (l >= 0 && n < HO_MAX_FDS - 1)
				fds[n++] = l;
		}
	if (d->admin_ok && d->admin.lfd >= 0) {
		fds[n] = d->admin.lfd;
		return ho_send(fd, HO_SOCKETS, fds, n + 1, n, 1);
	}
	return ho_send(fd, HO_SOCKETS, fds, n, n, 0);
}

/* A successor knocks: give it the sockets, and nobody else until it answers. */
static void on_successor(struct daemon *d)
{
	struct ho_msg m;
	int fd = ho_accept(d->ho_lfd), r;

	if (fd < 0) {
		if (fd == -EPERM)
			fprintf(stderr, "ringmeshd: hand-over refused: the peer is another user\n");
		return;
	}
	/* Its HELLO comes with the connect; a short wait keeps the heartbeat going. */
	r = ho_recv(fd, &m, NULL, 0, OPTS_HEARTBEAT_INTERVAL_MS / 2);
	if (!r && m.type != HO_HELLO)
		r = -EPROTO;
	if (!r)
		r = offer_sockets(d, fd);
	if (r) {
		fprintf(stderr, "ringmeshd: hand-over to a successor failed: %s\n", strerror(-r));
		close(fd);
		return;
	}
	d->succ_fd = fd;
	d->succ_pid = (pid_t)m.pid;
	close(d->ho_lfd);
	d->ho_lfd = -1;
	/* The successor's readiness probe reaches whichever daemon accepts on the shared
	 * port: until it has taken over, the answer must not be ours. */
	if (d->admin_ok)
		admin_set_ready(&d->admin, false);
	fprintf(stderr, "ringmeshd: hand-over: sockets offered to pid %d\n", (int)m.pid);
}

static void start_drain(struct daemon *d, const struct rm_opts *o, bool handed)
{
	uint64_t now = mono_ns();

	if (!d->draining) {
		d->draining = true;
		d->drain_start = now;
		d->drain_end = now + (uint64_t)o->drain_timeout_s * 1000000000ull;
		if (d->admin_ok)
			admin_set_ready(&d->admin, false);
	}
	for (unsigned int i = 0; i < d->n_workers; i++)
		ring_worker_set_mode(d->workers[i], handed ? RING_DRAIN : RING_DRAIN_ACCEPT);
	if (handed)
		d->accept_stopped = true;
}

static void log_active(const char *what, const struct daemon *d, const struct rm_opts *o)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < d->n_workers; i++)
		n += ring_worker_active(d->workers[i]);
	fprintf(stderr, "ringmeshd: %s: %llu connections open, drain timeout %u s\n", what,
		(unsigned long long)n, o->drain_timeout_s);
}

/* The successor's word: TAKEN (we drain and leave it all), or its end before that
 * (ours again, and the name open for the next one). */
static void on_successor_msg(struct daemon *d, const struct rm_opts *o)
{
	char err[256];
	struct ho_msg m;
	int r = ho_recv(d->succ_fd, &m, NULL, 0, 0);

	if (r == -ETIMEDOUT)
		return;
	if (!r && m.type == HO_TAKEN && !d->handed) {
		d->handed = true;
		/* It beats now; our beat would keep a dead successor looking alive. */
		if (d->admin_ok) {
			admin_stop(&d->admin); /* its socket lives on in the successor */
			d->admin_ok = false;
		}
		start_drain(d, o, true);
		log_active("handed over, draining", d, o);
		return;
	}
	if (!r)
		return;
	close(d->succ_fd);
	d->succ_fd = -1;
	if (d->handed)
		return; /* the successor is gone after taking over: nothing of ours left */
	fprintf(stderr, "ringmeshd: successor pid %d went away before taking over: serving on\n",
		(int)d->succ_pid);
	if (rm_dp_reclaim(d->dp, err, sizeof(err)))
		fprintf(stderr, "ringmeshd: taking the data path back: %s\n", err);
	if (d->draining) {
		rm_dp_fail_open(d->dp); /* stopping all the same */
	} else {
		rm_dp_heartbeat(d->dp);
		if (d->admin_ok)
			admin_set_ready(&d->admin, true);
	}
	d->ho_lfd = ho_listen(d->pin);
}

/* All workers returned (drained), or a drain deadline passed: stop what is left. */
static bool drain_done(struct daemon *d, const struct rm_opts *o, uint64_t now)
{
	bool all = true;

	for (unsigned int i = 0; i < d->n_workers; i++)
		all = all && ring_worker_exited(d->workers[i]);
	if (all)
		return true;
	/* With no successor, the sockets are served a moment longer: a connect that read
	 * the heartbeat just before it went to 0 is in a queue, not refused. */
	if (!d->accept_stopped && now - d->drain_start >= DRAIN_ACCEPT_NS) {
		for (unsigned int i = 0; i < d->n_workers; i++)
			ring_worker_set_mode(d->workers[i], RING_DRAIN);
		d->accept_stopped = true;
	}
	if (now >= d->drain_end) {
		log_active("drain timeout, resetting", d, o);
		return true;
	}
	return false;
}

/* Heartbeat, hand-over and drain until the end: 0 (a clean stop or handed over),
 * -1 if a worker died while serving. */
static int run(struct daemon *d, int sfd, const struct rm_opts *o)
{
	unsigned int ticks = 0;

	for (;;) {
		struct pollfd pfd[4] = {{.fd = sfd, .events = POLLIN},
					{.fd = d->ho_lfd, .events = POLLIN},
					{.fd = d->succ_fd, .events = POLLIN},
					{.fd = d->pred_fd, .events = POLLIN}};
		int n = poll(pfd, 4, d->draining ? DRAIN_POLL_MS : OPTS_HEARTBEAT_INTERVAL_MS);

		if (n > 0 && pfd[0].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (d->signalled) {
					fprintf(stderr, "ringmeshd: %s again, stopping now\n",
						strsignal((int)si.ssi_signo));
					return 0;
				}
				d->signalled = true;
				/* Handed over already (Kubernetes stops the old pod once the new
				 * one is ready): the drain goes on as it was. */
				fprintf(stderr, "ringmeshd: %s, %s\n", strsignal((int)si.ssi_signo),
					d->handed ? "draining goes on" : "draining, then stopping");
				if (!d->handed) {
					/* A stop, not an upgrade: new connects go direct from now
					 * on. */
					rm_dp_fail_open(d->dp);
					start_drain(d, o, false);
					log_active("draining", d, o);
				}
			}
		}
		if (n > 0 && pfd[1].fd >= 0 && pfd[1].revents)
			on_successor(d);
		if (n > 0 && pfd[2].fd >= 0 && pfd[2].revents)
			on_successor_msg(d, o);
		if (n > 0 && pfd[3].fd >= 0 && pfd[3].revents) {
			/* it never writes after SOCKETS: this is its exit */
			close(d->pred_fd);
			d->pred_fd = -1;
			rm_dp_forget_prev(d->dp);
			fprintf(stderr, "ringmeshd: predecessor pid %d has exited\n",
				(int)d->pred_pid);
		}
		/* After a hand-over the name is free a moment after the predecessor let it
		 * go; after a failed one, it is ours again. */
		if (d->ho_lfd < 0 && d->succ_fd < 0 && !d->handed) {
			d->ho_lfd = ho_listen(d->pin);
			if (d->ho_lfd < 0)
				d->ho_lfd = -1;
		}
		if (d->draining) {
			if (drain_done(d, o, mono_ns()))
				return 0;
			continue;
		}
		for (unsigned int i = 0; i < d->n_workers; i++) {
			/* A dead worker's listener would still queue connections: stop beating
			 * and leave, so connect4 fails open instead. */
			if (ring_worker_exited(d->workers[i])) {
				int rc = ring_worker_join(d->workers[i]);

				fprintf(stderr, "ringmeshd: worker %u died: %s\n", i,
					strerror(-rc));
				return -1;
			}
		}
		rm_dp_heartbeat(d->dp);
		if (d->stats_ok && d->cw_ok)
			stats_cfg_rejected(&d->stats,
					   __atomic_load_n(&d->cw.rejected, __ATOMIC_RELAXED));
		if (o->verbose && ++ticks % (STATS_LOG_EVERY_MS / OPTS_HEARTBEAT_INTERVAL_MS) == 0)
			log_stats("stats", d);
	}
}

/*
 * What our end leaves. Handed over, or a successor that failed to take over: every
 * shared thing is another daemon's. A clean stop removes it all, but only once no
 * other daemon holds the pin dir (a predecessor still draining: wait for it, it
 * ends within its own drain timeout).
 */
static bool may_remove(struct daemon *d, const struct rm_opts *o)
{
	uint64_t until = mono_ns() + ((uint64_t)o->drain_timeout_s + 2) * 1000000000ull;

	if (d->handed || (d->pred_pid && !d->taken))
		return false;
	if (d->ho_lfd >= 0)
		close(d->ho_lfd); /* no successor from here on */
	d->ho_lfd = -1;
	if (d->lock_fd < 0)
		return true; /* failed before the pin dir was ours: nothing pinned yet */
	for (;;) {
		if (!ho_relock(d->lock_fd, LOCK_EX | LOCK_NB))
			return true;
		if (mono_ns() >= until) {
			fprintf(stderr,
				"ringmeshd: another ringmeshd still uses %s: its pins "
				"are left to it\n",
				d->pin);
			return false;
		}
		usleep(100 * 1000);
	}
}

int main(int argc, char **argv)
{
	static struct rm_opts o; /* large: the range tables */
	static struct daemon d;
	struct rm_dp_opts dpo;
	char err[512], la[INET_ADDRSTRLEN], ga[INET_ADDRSTRLEN];
	bool started = false, remove;
	int r, sfd, status = 1;

	d.lock_fd = d.ho_lfd = d.succ_fd = d.pred_fd = d.inh_admin = -1;
	r = opts_parse(&o, argc, argv, sysconf(_SC_NPROCESSORS_ONLN), err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "ringmeshd: %s\nTry 'ringmeshd --help'.\n", err);
		return 2;
	}
	if (r == OPTS_HELP) {
		fputs(opts_usage(), stdout);
		return 0;
	}
	if (r == OPTS_VERSION) {
		printf("ringmeshd %s\n", RINGMESH_VERSION);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	sfd = signals_fd();
	if (sfd < 0) {
		fprintf(stderr, "ringmeshd: signalfd: %s\n", strerror(errno));
		return 1;
	}
	raise_nofile();
	inet_ntop(AF_INET, &o.listen.sin_addr, la, sizeof(la));
	inet_ntop(AF_INET, &o.pod_gw, ga, sizeof(ga));

	/* Refuse a node that cannot work before touching it: a missing feature named
	 * here beats a verifier dump or an io_uring EINVAL halfway through. */
	if (sysck_kernel(err, sizeof(err)) ||
	    sysck_cgroup2_mount(d.cg_mnt, sizeof(d.cg_mnt), err, sizeof(err)) ||
	    sysck_pods_cgroup(o.cgroup_path, d.cg_mnt, o.allow_root_cgroup, d.pods_cg,
			      sizeof(d.pods_cg), err, sizeof(err)) ||
	    rm_dp_pin_dir(o.pin_dir, err, sizeof(err))) {
		fprintf(stderr, "ringmeshd: %s\n", err);
		close(sfd);
		return 1;
	}
	if (!realpath(o.pin_dir, d.pin)) {
		fprintf(stderr, "ringmeshd: pin dir %s: %s\n", o.pin_dir, strerror(errno));
		close(sfd);
		return 1;
	}

	/* Before anything is bound: a predecessor's sockets are ours or nothing is. */
	r = take_over(&d, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "ringmeshd: %s\n", err);
		goto out;
	}
	if (r > 0)
		fprintf(stderr,
			"ringmeshd: taking over from pid %d (%u listening sockets handed over)\n",
			(int)d.pred_pid, d.n_inh);

	/* The span reporter before the admin listener, which exports its counters, and
	 * before the workers, which push into its queues. */
	if (o.zipkin) {
		r = spans_init(&d.spans, &o.zipkin_url, o.workers, err, sizeof(err));
		if (!r) {
			r = spans_start(&d.spans, err, sizeof(err));
			if (r)
				spans_fini(&d.spans);
		}
		if (r) {
			fprintf(stderr, "ringmeshd: %s\n", err);
			goto out;
		}
		d.spans_ok = true;
		fprintf(stderr,
			"ringmeshd: tracing: spans to http://%s:%u%s, sampling %u.%04u %%\n",
			o.zipkin_url.host, o.zipkin_url.port, o.zipkin_url.path,
			o.trace_ppm / 10000, o.trace_ppm % 10000);
	}

	/* The admin listener first: probes get 503 (not a refused connection) while we
	 * start, and a taken port is a start-up error, as with Envoy. */
	if (d.inh_admin >= 0 && !o.metrics) {
		close(d.inh_admin); /* the predecessor's scrapes end with it */
		d.inh_admin = -1;
	}
	if (o.metrics) {
		struct sockaddr_in sin;
		socklen_t len = sizeof(sin);

		if (d.inh_admin >= 0 && (getsockname(d.inh_admin, (struct sockaddr *)&sin, &len) ||
					 !same_addr(&sin, &o.metrics_listen))) {
			close(d.inh_admin); /* another --metrics-listen: ours is bound anew */
			d.inh_admin = -1;
		}
		if (d.inh_admin >= 0) {
			r = admin_adopt(&d.admin, d.inh_admin, o.pin_dir, RINGMESH_VERSION, err,
					sizeof(err));
			d.inh_admin = -1;
		} else {
			r = admin_listen(&d.admin, &o.metrics_listen, o.pin_dir, RINGMESH_VERSION,
					 err, sizeof(err));
		}
		if (!r) {
			d.admin_ok = true;
			d.admin.spans = d.spans_ok ? &d.spans : NULL;
			r = admin_start(&d.admin, err, sizeof(err));
		}
		if (r) {
			fprintf(stderr, "ringmeshd: %s\n", err);
			goto out;
		}
	}

	/* The pod gateway address before the listeners: pods in other netns reach it
	 * through their default route once the node owns it on any interface. */
	if (o.gateway_dev) {
		bool created;

		r = gwdev_up(o.gateway_dev, o.pod_gw, &created, err, sizeof(err));
		if (r) {
			fprintf(stderr, "ringmeshd: %s\n", err);
			goto out;
		}
		d.gw_up = true;
		fprintf(stderr, "ringmeshd: pod gateway %s on %s (%s)\n", ga, o.gateway_dev,
			created ? "created" : "adopted");
	}

	/* Listeners first: once connect4 is attached, pods are sent to them. */
	r = create_workers(&d, &o, err, sizeof(err));
	if (r) {
		fprintf(stderr, "ringmeshd: %s\n", err);
		goto out;
	}

	memset(&dpo, 0, sizeof(dpo));
	dpo.cgroup_path = d.pods_cg;
	dpo.allow_root_cgroup = o.allow_root_cgroup;
	dpo.pin_dir = o.pin_dir;
	dpo.include = o.include;
	dpo.n_include = o.n_include;
	dpo.exclude = o.exclude;
	dpo.n_exclude = o.n_exclude;
	dpo.exclude_ports = o.exclude_ports;
	dpo.n_exclude_ports = o.n_exclude_ports;
	dpo.listen = o.listen;
	dpo.pod_gw = o.pod_gw;
	dpo.sockmap = o.sockmap;
	dpo.heartbeat_max_ns = (uint64_t)o.heartbeat_max_ms * 1000000ull;
	dpo.stats_keys = o.stats_keys;
	dpo.breaker_pools = o.breaker_pools;
	dpo.breaker_hosts = o.breaker_hosts;
	dpo.adopt = d.pred_pid != 0;
	r = rm_dp_open(&d.dp, &dpo, err, sizeof(err));
	if (r) {
		fprintf(stderr, "ringmeshd: %s\n", err);
		d.dp = NULL;
		goto out;
	}

	if (o.l7) {
		/* The maps are pinned by dp: metrics and rules can be opened now. */
		r = stats_w_open(&d.stats, o.pin_dir, o.stats_keys, realtime_ns(), err,
				 sizeof(err));
		if (r)
			fprintf(stderr, "ringmeshd: metrics disabled: %s\n", err);
		else
			d.stats_ok = true;
		d.l7.stats = d.stats_ok ? &d.stats : NULL;
		r = cb_open(&d.cb, o.pin_dir, o.breaker_pools, o.breaker_hosts, realtime_ns(), err,
			    sizeof(err));
		if (!r) {
			r = l7_shared_cb(&d.l7, &d.cb);
			if (r) {
				snprintf(err, sizeof(err), "%u pools: %s", d.cb.n_pools,
					 strerror(-r));
				cb_close(&d.cb);
			}
		}
		if (r) {
			/* no limits and no ejection rather than no proxy: fail open */
			fprintf(stderr, "ringmeshd: circuit breaking disabled: %s\n", err);
		} else {
			d.cb_ok = true;
			d.l7.cb = &d.cb;
			d.cw.cb = &d.cb;
		}
		r = cfgw_start(&d.cw, o.pin_dir, err, sizeof(err));
		if (r) {
			fprintf(stderr, "ringmeshd: %s\n", err);
			goto out;
		}
		if (d.stats_ok)
			stats_set_generation(&d.stats, cfgw_current(&d.cw)->gen);
		__atomic_store_n(&d.cfg_started, true, __ATOMIC_RELEASE);
	}
	r = start_workers(&d, err, sizeof(err));
	if (r) {
		fprintf(stderr, "ringmeshd: %s\n", err);
		goto out;
	}
	started = true;
	rm_dp_heartbeat(d.dp);
	if (d.pred_pid) {
		/* Tests only (test_handover.sh): wait here MS, workers running but not yet
		 * the owner, as a successor that hangs or is killed at its worst moment. */
		const char *fp = getenv("RINGMESHD_TEST_PAUSE_BEFORE_TAKEN_MS");

		if (fp)
			usleep((useconds_t)strtoul(fp, NULL, 10) * 1000);
		/* Ready to serve: the predecessor may stop accepting. Should it not hear
		 * this, it takes everything back when our end of the connection closes. */
		r = ho_send(d.pred_fd, HO_TAKEN, NULL, 0, 0, 0);
		if (r) {
			fprintf(stderr, "ringmeshd: hand-over: telling pid %d: %s\n",
				(int)d.pred_pid, strerror(-r));
			goto out;
		}
		d.taken = true;
		rm_dp_taken(d.dp); /* a fresh runtime map of ours stays pinned from now on */
		/* Accepting only now: the predecessor accepted until this moment, and what
		 * arrives in between waits in the listeners' queues. */
		for (unsigned int i = 0; i < d.n_workers; i++)
			ring_worker_accept(d.workers[i]);
	}
	/* Free once the predecessor took its name back or let it go (run retries). */
	d.ho_lfd = ho_listen(d.pin);
	if (d.ho_lfd < 0)
		d.ho_lfd = -1;
	/* Every live daemon holds the pin dir shared (handover.h). */
	if (lock_shared(&d, err, sizeof(err)))
		fprintf(stderr, "ringmeshd: %s\n", err);
	/* the heartbeat's condition: configuration loaded, workers accepting */
	if (d.admin_ok)
		admin_set_ready(&d.admin, true);
	if (rm_dp_note(d.dp)[0])
		fprintf(stderr, "ringmeshd: note: %s\n", rm_dp_note(d.dp));
	fprintf(stderr,
		"ringmeshd: attached to %s, listening on %s:%u and %s:%u, %u workers, "
		"sockmap %s\n",
		d.pods_cg, la, ntohs(o.listen.sin_port), ga, ntohs(o.listen.sin_port), d.n_workers,
		o.sockmap ? "on" : "off");

	status = run(&d, sfd, &o) ? 1 : 0;
out:
	if (d.admin_ok)
		admin_set_ready(&d.admin, false);
	stop_workers(&d);
	if (started)
		log_stats("exit", &d);
	/* Workers are joined: no lookup can race the unmapping of the maps. */
	if (d.cw_ok)
		cfgw_stop(&d.cw);
	remove = may_remove(&d, &o);
	if (remove && d.lock_fd >= 0)
		ho_lock_remove(d.pin); /* the pin dir goes with it */
	if (remove)
		rm_dp_close(d.dp, true);
	else
		rm_dp_release(d.dp);
	destroy_workers(&d);
	close_inherited(&d);
	if (d.cw_ok)
		cfgw_fini(&d.cw);
	if (d.stats_ok)
		stats_w_close(&d.stats);
	if (d.cb_ok)
		cb_close(&d.cb);
	l7_shared_cb(&d.l7, NULL);
	if (d.admin_ok)
		admin_stop(&d.admin);
	/* after the workers (no more pushes) and the admin thread (no more reads) */
	if (d.spans_ok)
		spans_fini(&d.spans);
	/* A clean stop takes the address away with the listeners (it never carried
	 * anything else); a successor adopts the interface instead. */
	if (remove && d.gw_up && gwdev_down(o.gateway_dev, err, sizeof(err)) && err[0])
		fprintf(stderr, "ringmeshd: %s\n", err);
	if (d.handed)
		fprintf(stderr, "ringmeshd: handed over to pid %d, exiting\n", (int)d.succ_pid);
	if (d.succ_fd >= 0)
		close(d.succ_fd);
	if (d.pred_fd >= 0)
		close(d.pred_fd);
	ho_unlock(d.lock_fd);
	close(sfd);
	return status;
}
