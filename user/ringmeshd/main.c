/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ringmeshd: the node proxy. Binds the workers' listeners, attaches the kernel
 * side (dp), starts the workers, beats the heartbeat from this thread until
 * SIGTERM/SIGINT, then stops the workers and undoes the kernel side.
 *
 * Exit status: 0 clean stop, 1 failure at startup or a worker died, 2 bad
 * command line.
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
#include <sys/signalfd.h>

#include "common/util.h"
#include "policy/cb.h"
#include "ringmeshd/admin.h"
#include "ringmeshd/cb_pin.h"
#include "ringmeshd/cfgwatch.h"
#include "ringmeshd/dp.h"
#include "ringmeshd/gwdev.h"
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

struct daemon {
	struct rm_dp *dp; /* set before any worker starts */
	struct ring_worker *workers[OPTS_WORKERS_MAX];
	unsigned int n_workers;
	struct cfgw cw; /* published L7 configuration */
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
		"resets %llu, bytes client->upstream %llu, upstream->client %llu\n",
		what, (unsigned long long)s.accepted, (unsigned long long)s.active,
		(unsigned long long)(s.refused_no_orig + s.refused_loop + s.refused_full),
		(unsigned long long)s.refused_no_orig, (unsigned long long)s.refused_loop,
		(unsigned long long)s.refused_full, (unsigned long long)s.upstream_connect_failed,
		(unsigned long long)s.resets, (unsigned long long)s.bytes_c2u,
		(unsigned long long)s.bytes_u2c);
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

static int create_workers(struct daemon *d, const struct rm_opts *o, char *err, size_t errlen)
{
	struct ring_config cfg;
	int r;

	memset(&cfg, 0, sizeof(cfg));
	cfg.listen[0].addr = o->listen;
	cfg.listen[1].addr.sin_family = AF_INET;
	cfg.listen[1].addr.sin_addr = o->pod_gw;
	cfg.listen[1].addr.sin_port = o->listen.sin_port;
	/* Without --gateway-dev the CNI is to put the address on the pod veths, maybe
	 * after we start. */
	cfg.listen[1].freebind = true;
	cfg.n_listen = 2;
	cfg.sockmap = o->sockmap;
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
		l7_opts_fill(&d->l7.o);
		d->l7.trace_ppm = o->trace_ppm;
		d->l7.spans = d->spans_ok ? &d->spans : NULL;
		cfg.l7 = &d->l7;
	}
	for (unsigned int i = 0; i < o->workers; i++) {
		cfg.id = i;
		r = ring_worker_create(&d->workers[i], &cfg, err, errlen);
		if (r)
			return r;
		d->n_workers++;
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

/* Heartbeat until a signal; returns 0 on a signal, -1 if a worker died. */
static int run(struct daemon *d, int sfd, const struct rm_opts *o)
{
	unsigned int ticks = 0;

	for (;;) {
		struct pollfd pfd = {.fd = sfd, .events = POLLIN};
		int n = poll(&pfd, 1, OPTS_HEARTBEAT_INTERVAL_MS);

		if (n > 0) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				fprintf(stderr, "ringmeshd: %s, stopping\n",
					strsignal((int)si.ssi_signo));
				return 0;
			}
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

int main(int argc, char **argv)
{
	static struct rm_opts o; /* large: the range tables */
	static struct daemon d;
	struct rm_dp_opts dpo;
	char err[512], la[INET_ADDRSTRLEN], ga[INET_ADDRSTRLEN];
	bool started = false;
	int r, sfd, status = 1;

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
			      sizeof(d.pods_cg), err, sizeof(err))) {
		fprintf(stderr, "ringmeshd: %s\n", err);
		close(sfd);
		return 1;
	}

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
	if (o.metrics) {
		r = admin_listen(&d.admin, &o.metrics_listen, o.pin_dir, RINGMESH_VERSION, err,
				 sizeof(err));
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
	r = rm_dp_open(&d.dp, &dpo, err, sizeof(err));
	if (r) {
		fprintf(stderr, "ringmeshd: %s\n", err);
		d.dp = NULL;
		goto out;
	}

	if (o.l7) {
		/* The maps are pinned by dp: metrics and rules can be opened now. */
		r = stats_w_open(&d.stats, o.pin_dir, realtime_ns(), err, sizeof(err));
		if (r)
			fprintf(stderr, "ringmeshd: metrics disabled: %s\n", err);
		else
			d.stats_ok = true;
		d.l7.stats = d.stats_ok ? &d.stats : NULL;
		r = cb_open(&d.cb, o.pin_dir, realtime_ns(), err, sizeof(err));
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
	rm_dp_close(d.dp, true);
	destroy_workers(&d);
	if (d.cw_ok)
		cfgw_fini(&d.cw);
	if (d.stats_ok)
		stats_w_close(&d.stats);
	if (d.cb_ok)
		cb_close(&d.cb);
	if (d.admin_ok)
		admin_stop(&d.admin);
	/* after the workers (no more pushes) and the admin thread (no more reads) */
	if (d.spans_ok)
		spans_fini(&d.spans);
	/* A clean stop takes the address away with the listeners (it never carried
	 * anything else); a successor adopts the interface instead. */
	if (d.gw_up && gwdev_down(o.gateway_dev, err, sizeof(err)) && err[0])
		fprintf(stderr, "ringmeshd: %s\n", err);
	close(sfd);
	return status;
}
