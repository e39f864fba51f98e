/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh stats`: the data-path decision counters (rm_dpstats, per-CPU, summed
 * here) and the L7/L4 metric slots ringmeshd keeps in rm_stats (stats.h): per
 * destination service and version, requests by code class and connections. Read
 * straight from the pinned maps; a map that is not pinned is reported as such,
 * because "no counters" and "zero counters" mean different things to an operator.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "common/prom.h"
#include "common/prom_src.h"
#include "ringmesh/abi.h"
#include "ringmesh/stats.h"
#include "common/pin.h"
#include "common/util.h"
#include "cli.h"

/* Fixed-size key fields are NUL-padded but a writer bug must not make us overrun. */
#define KEYSTR(f) ((int)strnlen((f), sizeof(f))), (f)

/* Open a pinned counter map: 1 = open, 0 = not pinned (said so, as key null and
 * key_absent in JSON, why in words), -1 = error (p_err'ed). */
static int open_counters(int id, const char *key, const char *title, const char *why,
			 struct cli_map *m)
{
	const char *name = pin_defs[id].name;
	char absent[64], text[128];
	int err = cli_pin_open(id, m);

	if (err == -ENOENT) {
		if (cli.jw) {
			snprintf(absent, sizeof(absent), "%s_absent", key);
			json_null_field(cli.jw, key);
			snprintf(text, sizeof(text), "%s not pinned: %s", name, why);
			json_string_field(cli.jw, absent, text);
		} else {
			printf("%s: %s not pinned at %s (%s)\n", title, name, cli.pin_dir, why);
		}
		return 0;
	}
	if (err == -EPROTO) {
		p_err("%s", m->why);
		return -1;
	}
	if (err) {
		p_err("cannot open %s/%s: %s", cli.pin_dir, name,
		      err == -EINVAL ? "not a map" : strerror(-err));
		return -1;
	}
	return 1;
}

/* rm_dpstats: 1 = printed, 0 = not pinned (said so), -1 = error (p_err'ed). */
static int show_dp(void)
{
	uint64_t sums[RM_DP_STAT_MAX] = {0};
	struct cli_map m;
	void *raw;
	uint32_t i;
	int err;

	err = open_counters(PIN_DPSTATS, "datapath", "Data path", "no data path loaded", &m);
	if (err <= 0)
		return err;
	raw = malloc(cli_map_value_size(&m));
	if (!raw) {
		cli_map_close(&m);
		p_err("out of memory");
		return -1;
	}
	for (i = 0; i < RM_DP_STAT_MAX && i < m.info.max_entries; i++) {
		if (bpf_map_lookup_elem(m.fd, &i, raw)) {
			err = -errno;
			free(raw);
			cli_map_close(&m);
			p_err("reading %s[%u]: %s", m.path, i, strerror(-err));
			return -1;
		}
		cli_percpu_sum_u64(&m, raw, &sums[i], 1);
	}
	free(raw);
	cli_map_close(&m);
	if (cli.jw) {
		json_name(cli.jw, "datapath");
		json_start_object(cli.jw);
		for (i = 0; i < RM_DP_STAT_MAX; i++)
			json_uint_field(cli.jw, prom_dp_stat_name(i), sums[i]);
		json_end_object(cli.jw);
	} else {
		printf("Data path decisions (%s, summed over %d CPUs):\n", RM_MAP_DPSTATS,
		       cli_ncpus());
		for (i = 0; i < RM_DP_STAT_MAX; i++)
			printf("  %-14s %llu\n", prom_dp_stat_name(i), (unsigned long long)sums[i]);
	}
	return 1;
}

static void u64s(char *b, uint64_t v)
{
	snprintf(b, 24, "%llu", (unsigned long long)v);
}

static void ms_str(char *b, double v)
{
	if (v < 0)
		snprintf(b, 24, "-");
	else
		snprintf(b, 24, "%.3g", v);
}

/* Requests per slot index at the previous --watch round, for rates. */
struct watch_prev {
	uint64_t *req;
	uint32_t n;
	double secs; /* interval; 0 on the first round */
};

/* The workers' buffer pools (hdr.wk): what connections borrow while bytes are in
 * flight, and how often one had to wait for a block. */
static void show_workers(const struct rm_stats_hdr *h)
{
	static const char *const hdr[] = {
	    "WORKER",	       "CLIENT_IN_USE", "CLIENT_BLOCKS",  "CLIENT_WAITS",
	    "UPSTREAM_IN_USE", "UPSTREAM_BUFS", "UPSTREAM_WAITS", "RESIDENT_KIB",
	};
	uint32_t n = h ? __atomic_load_n(&h->n_wk, __ATOMIC_RELAXED) : 0;
	struct cli_table *t = NULL;

	if (n > RM_STATS_WORKERS)
		n = RM_STATS_WORKERS;
	if (cli.jw) {
		json_name(cli.jw, "workers");
		json_start_array(cli.jw);
	} else {
		if (!n)
			return;
		t = cli_table_new(8, hdr);
		if (!t)
			return;
		printf("\nBuffer pools (per worker, refreshed every second):\n");
	}
	for (uint32_t i = 0; i < n; i++) {
		struct rm_stats_wk w;
		char c[8][24];

		memcpy(&w, &h->wk[i], sizeof(w));
		if (cli.jw) {
			json_start_object(cli.jw);
			json_uint_field(cli.jw, "worker", i);
			json_uint_field(cli.jw, "client_in_use", w.bufs_used);
			json_uint_field(cli.jw, "client_blocks", w.bufs);
			json_uint_field(cli.jw, "client_waits", w.buf_waits);
			json_uint_field(cli.jw, "upstream_in_use", w.up_bufs_used);
			json_uint_field(cli.jw, "upstream_bufs", w.up_bufs);
			json_uint_field(cli.jw, "upstream_waits", w.up_buf_waits);
			json_uint_field(cli.jw, "resident_bytes", w.bufs_resident);
			json_end_object(cli.jw);
			continue;
		}
		u64s(c[0], i);
		u64s(c[1], w.bufs_used);
		u64s(c[2], w.bufs);
		u64s(c[3], w.buf_waits);
		u64s(c[4], w.up_bufs_used);
		u64s(c[5], w.up_bufs);
		u64s(c[6], w.up_buf_waits);
		u64s(c[7], w.bufs_resident / 1024);
		cli_table_rowf(t, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
	}
	if (cli.jw) {
		json_end_array(cli.jw);
	} else {
		cli_table_print(t);
		cli_table_free(t);
	}
}

/* Request mirroring (hdr.mirror): shadows sent, answered, skipped and failed by
 * reason; the text only once a route mirrored something. */
static void show_mirror(const struct rm_stats_hdr *h)
{
	struct rm_stats_mirror m;
	uint64_t any;
	const char *sep = "";

	if (!h)
		return;
	memcpy(&m, &h->mirror, sizeof(m));
	any = m.sent;
	for (uint32_t i = 0; i < RM_MIR_SKIP_N; i++)
		any |= m.skipped[i];
	for (uint32_t i = 0; i < RM_MIR_FAIL_N; i++)
		any |= m.failed[i];
	if (cli.jw) {
		json_name(cli.jw, "mirror");
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "sent", m.sent);
		json_uint_field(cli.jw, "answered", m.answered);
		json_name(cli.jw, "skipped");
		json_start_object(cli.jw);
		for (uint32_t i = 0; i < RM_MIR_SKIP_N; i++)
			json_uint_field(cli.jw, prom_mirror_skip_name(i), m.skipped[i]);
		json_end_object(cli.jw);
		json_name(cli.jw, "failed");
		json_start_object(cli.jw);
		for (uint32_t i = 0; i < RM_MIR_FAIL_N; i++)
			json_uint_field(cli.jw, prom_mirror_fail_name(i), m.failed[i]);
		json_end_object(cli.jw);
		json_end_object(cli.jw);
		return;
	}
	if (!any)
		return;
	printf("\nRequest mirroring: %llu sent, %llu answered; skipped:",
	       (unsigned long long)m.sent, (unsigned long long)m.answered);
	for (uint32_t i = 0; i < RM_MIR_SKIP_N; i++, sep = ",")
		printf("%s %s %llu", sep, prom_mirror_skip_name(i),
		       (unsigned long long)m.skipped[i]);
	printf("; failed:");
	sep = "";
	for (uint32_t i = 0; i < RM_MIR_FAIL_N; i++, sep = ",")
		printf("%s %s %llu", sep, prom_mirror_fail_name(i),
		       (unsigned long long)m.failed[i]);
	printf("\n");
}

static int show_requests(struct watch_prev *wp)
{
	static const char *const hdr[] = {
	    "SERVICE", "VERSION",   "SOURCE",	   "REQUESTS", "2XX",	 "3XX",	   "4XX",   "5XX",
	    "NO_RESP", "CONN_OPEN", "CONN_CLOSED", "P50_MS",   "P90_MS", "P99_MS", "REQ/S",
	};
	struct prom_stats_map m;
	struct prom_series *s = NULL;
	struct cli_table *t = NULL;
	const struct rm_stats_hdr *h;
	char why[256];
	uint32_t i, live = 0;
	int err, ncols = wp ? 15 : 14;

	err = prom_stats_map_open(&m, cli.pin_dir, why, sizeof(why));
	if (err == -ENOENT) {
		if (cli.jw) {
			json_null_field(cli.jw, "requests");
			json_string_field(cli.jw, "requests_absent",
					  RM_MAP_STATS " not pinned: no ringmeshd has run here");
		} else {
			printf("Requests: %s not pinned at %s (no ringmeshd has run here)\n",
			       RM_MAP_STATS, cli.pin_dir);
		}
		return 0;
	}
	if (err) {
		p_err("%s", why);
		return -1;
	}
	s = malloc(sizeof(*s));
	if (!s) {
		prom_stats_map_close(&m);
		p_err("out of memory");
		return -1;
	}
	h = m.s.h;
	if (cli.jw) {
		json_name(cli.jw, "requests");
		json_start_object(cli.jw);
		cli_stats_hdr_fields(h);
		json_uint_field(cli.jw, "slots_max", m.s.n_slots ? m.s.n_slots - 1 : 0);
		json_name(cli.jw, "slots");
		json_start_array(cli.jw);
	} else {
		if (!h)
			printf("Requests (%s): not initialised by a daemon yet\n", RM_MAP_STATS);
		else
			printf("Requests (%s, config generation %llu, %llu lookups in the overflow "
			       "slot, %u of %u rows used, %llu requests found none):\n",
			       RM_MAP_STATS, (unsigned long long)h->generation,
			       (unsigned long long)h->dropped, h->rows_used, h->n_rows,
			       (unsigned long long)h->pool_full);
		t = cli_table_new(ncols, hdr);
		if (!t) {
			free(s);
			prom_stats_map_close(&m);
			p_err("out of memory");
			return -1;
		}
	}
	if (wp && wp->n != m.s.n_slots) {
		free(wp->req);
		wp->req = calloc(m.s.n_slots, sizeof(*wp->req));
		wp->n = wp->req ? m.s.n_slots : 0;
		wp->secs = 0;
	}
	for (i = 0; i < m.s.n_slots; i++) {
		struct prom_slot_sum a;
		char c[13][24], svc[RM_STATS_NAME_LEN + 1], ver[RM_STATS_SHORT_LEN + 1],
		    src[RM_STATS_SHORT_LEN + 1];

		if (__atomic_load_n(&m.s.slots[i].state, __ATOMIC_ACQUIRE) != RM_STATS_LIVE)
			continue;
		prom_series_copy(&m.s, i, s);
		live++;
		if (cli.jw) {
			cli_stats_slot_print(i, s);
			continue;
		}
		prom_slot_sum(s, &a);
		snprintf(svc, sizeof(svc), "%.*s", KEYSTR(s->sl.key.dst_service));
		snprintf(ver, sizeof(ver), "%.*s", KEYSTR(s->sl.key.dst_version));
		if (s->sl.key.tcp_flags) {
			/* a TCP series of refused or failed connections: its flags by the
			 * version, as the exporter's response_flags label */
			char fl[64];
			size_t n = strlen(ver);

			snprintf(ver + n, sizeof(ver) - n, " %s",
				 prom_flags_str(s->sl.key.tcp_flags, fl, sizeof(fl)));
		}
		snprintf(src, sizeof(src), "%.*s", KEYSTR(s->sl.key.src_workload));
		u64s(c[0], a.requests);
		u64s(c[1], a.code_class[2]);
		u64s(c[2], a.code_class[3]);
		u64s(c[3], a.code_class[4]);
		u64s(c[4], a.code_class[5]);
		u64s(c[5], a.code_class[0]);
		u64s(c[6], s->sl.tcp_opened);
		u64s(c[7], s->sl.tcp_closed);
		ms_str(c[8], prom_quantile(a.dur, 0.5));
		ms_str(c[9], prom_quantile(a.dur, 0.9));
		ms_str(c[10], prom_quantile(a.dur, 0.99));
		c[11][0] = '\0';
		if (wp && wp->req) {
			if (wp->secs > 0)
				snprintf(c[11], 24, "%.1f",
					 (double)(a.requests - wp->req[i]) / wp->secs);
			else
				snprintf(c[11], 24, "-");
			wp->req[i] = a.requests;
		}
		cli_table_rowf(t, *svc ? svc : "unknown", *ver ? ver : "unknown",
			       *src ? src : "unknown", c[0], c[1], c[2], c[3], c[4], c[5], c[6],
			       c[7], c[8], c[9], c[10], c[11]);
	}
	if (cli.jw) {
		json_end_array(cli.jw);
		show_workers(h);
		show_mirror(h);
		json_end_object(cli.jw);
	} else {
		if (live)
			cli_table_print(t);
		else
			printf("  no traffic recorded\n");
		show_workers(h);
		show_mirror(h);
	}
	cli_table_free(t);
	free(s);
	prom_stats_map_close(&m);
	return 1;
}

static int show_once(struct watch_prev *wp)
{
	int dp, rq;

	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "pin_dir", cli.pin_dir);
	}
	dp = show_dp();
	if (dp < 0)
		return -1;
	if (!cli.jw)
		printf("\n");
	rq = show_requests(wp);
	if (rq < 0)
		return -1;
	if (cli.jw)
		json_end_object(cli.jw);
	if (!dp && !rq) {
		/* nothing at all to show is a failure: wrong --pin-dir, most likely */
		p_err("no statistics at %s: neither %s nor %s is pinned", cli.pin_dir,
		      RM_MAP_DPSTATS, RM_MAP_STATS);
		return -1;
	}
	return 0;
}

static int show_prometheus(void)
{
	struct prom_buf b = {0};
	char err[512];
	int r;

	if (access(cli.pin_dir, F_OK)) {
		p_err("no statistics at %s: %s", cli.pin_dir, strerror(errno));
		return -1;
	}
	r = prom_scrape(cli.pin_dir, RM_CLI_VERSION, &b, err, sizeof(err));
	if (r) {
		prom_buf_free(&b);
		p_err("%s", err);
		return -1;
	}
	fwrite(b.p, 1, b.len, stdout);
	prom_buf_free(&b);
	return 0;
}

/* Strict decimal, 1..max. */
static int count_arg(const char *opt, const char *v, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(v, &end, 10);
	if (!*v || *end || errno || *out < 1 || *out > max || v[0] == '-' || v[0] == '+') {
		p_err("%s '%s': want a number in 1..%lu", opt, v, max);
		return -1;
	}
	return 0;
}

static int stats_show(int argc, char **argv)
{
	unsigned long watch = 0, count = 0;
	bool prom = false;
	struct watch_prev wp = {0};
	uint64_t t0, t1;
	int r = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--prometheus") || !strcmp(argv[i], "prometheus")) {
			prom = true;
		} else if (!strcmp(argv[i], "--watch") || !strcmp(argv[i], "watch")) {
			if (i + 1 >= argc) {
				p_err("--watch needs an interval in seconds");
				return -1;
			}
			if (count_arg("--watch", argv[++i], 3600, &watch))
				return -1;
		} else if (!strcmp(argv[i], "--count") || !strcmp(argv[i], "count")) {
			if (i + 1 >= argc) {
				p_err("--count needs a number of rounds");
				return -1;
			}
			if (count_arg("--count", argv[++i], 1000000, &count))
				return -1;
		} else {
			p_err("'stats': unexpected '%s'; try '%s stats help'", argv[i], cli.bin);
			return -1;
		}
	}
	if (prom && (watch || count || cli.jw)) {
		p_err("--prometheus prints the text exposition once: no --watch, --count or -j");
		return -1;
	}
	if (count && !watch) {
		p_err("--count goes with --watch");
		return -1;
	}
	if (watch && cli.jw) {
		p_err("--watch is for a terminal; for JSON, run 'stats -j' at your own interval");
		return -1;
	}
	if (prom)
		return show_prometheus();
	if (!watch)
		return show_once(NULL);
	t0 = mono_ns();
	for (unsigned long round = 0; !count || round < count; round++) {
		if (round) {
			sleep((unsigned)watch);
			t1 = mono_ns();
			wp.secs = (double)(t1 - t0) / 1e9;
			t0 = t1;
		}
		if (isatty(STDOUT_FILENO))
			fputs("\033[H\033[2J", stdout);
		else if (round)
			putchar('\n');
		r = show_once(&wp);
		fflush(stdout);
		if (r)
			break;
	}
	free(wp.req);
	return r;
}

static int stats_help(int argc, char **argv)
{
	char text[1536];

	snprintf(text, sizeof(text),
		 "Usage: %1$s stats [--watch SECONDS [--count N]]\n"
		 "       %1$s stats --prometheus\n"
		 "       %1$s stats help\n"
		 "\n"
		 "       " HELP_SPEC_OPTIONS "\n"
		 "\n"
		 "       Data-path decisions (%2$s, summed over CPUs) and requests per\n"
		 "       destination service and version (%3$s), with p50/p90/p99 latency\n"
		 "       from the histograms. --watch refreshes every SECONDS with request\n"
		 "       rates (N rounds, default until interrupted). --prometheus prints\n"
		 "       the text exposition ringmeshd serves on /stats/prometheus.\n",
		 cli.bin, RM_MAP_DPSTATS, RM_MAP_STATS);
	return cli_help_print(text);
}

int do_stats(int argc, char **argv)
{
	if (argc >= 1 && cli_is_prefix(argv[0], "help"))
		return stats_help(argc - 1, argv + 1);
	return stats_show(argc, argv);
}
