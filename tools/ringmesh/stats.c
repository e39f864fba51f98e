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
#include <bpf/bpf.h>

#include "ringmesh/abi.h"
#include "ringmesh/stats.h"
#include "common/pin.h"
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
			json_uint_field(cli.jw, cli_dp_stat_name(i), sums[i]);
		json_end_object(cli.jw);
	} else {
		printf("Data path decisions (%s, summed over %d CPUs):\n", RM_MAP_DPSTATS,
		       cli_ncpus());
		for (i = 0; i < RM_DP_STAT_MAX; i++)
			printf("  %-14s %llu\n", cli_dp_stat_name(i), (unsigned long long)sums[i]);
	}
	return 1;
}

static void u64s(char *b, uint64_t v)
{
	snprintf(b, 24, "%llu", (unsigned long long)v);
}

static int show_requests(void)
{
	static const char *const hdr[] = {
	    "SERVICE", "VERSION", "SOURCE",  "REQUESTS",  "2XX",	 "3XX",
	    "4XX",     "5XX",	  "NO_RESP", "CONN_OPEN", "CONN_CLOSED",
	};
	union rm_stats_entry *e;
	struct cli_table *t = NULL;
	struct cli_map m;
	uint32_t i, live = 0;
	int err;

	err = open_counters(PIN_STATS, "requests", "Requests", "no ringmeshd has run here", &m);
	if (err <= 0)
		return err;
	e = malloc(sizeof(*e));
	if (!e) {
		cli_map_close(&m);
		p_err("out of memory");
		return -1;
	}
	i = 0;
	if (bpf_map_lookup_elem(m.fd, &i, e)) {
		err = -errno;
		goto fail;
	}
	if (cli.jw) {
		json_name(cli.jw, "requests");
		json_start_object(cli.jw);
		json_bool_field(cli.jw, "initialised", e->hdr.magic == RM_STATS_MAGIC);
		json_uint_field(cli.jw, "started_ns", e->hdr.started_ns);
		json_uint_field(cli.jw, "dropped", e->hdr.dropped);
		json_uint_field(cli.jw, "generation", e->hdr.generation);
		json_name(cli.jw, "slots");
		json_start_array(cli.jw);
	} else {
		if (e->hdr.magic != RM_STATS_MAGIC)
			printf("Requests (%s): not initialised by a daemon yet\n", RM_MAP_STATS);
		else
			printf("Requests (%s, config generation %llu, %llu samples dropped):\n",
			       RM_MAP_STATS, (unsigned long long)e->hdr.generation,
			       (unsigned long long)e->hdr.dropped);
		t = cli_table_new(11, hdr);
		if (!t) {
			err = -ENOMEM;
			goto fail;
		}
	}
	for (i = 1; i < m.info.max_entries; i++) {
		const struct rm_stats_slot *s = &e->slot;
		char c[8][24], svc[RM_STATS_NAME_LEN + 1], ver[RM_STATS_SHORT_LEN + 1],
		    src[RM_STATS_SHORT_LEN + 1];

		if (bpf_map_lookup_elem(m.fd, &i, e)) {
			err = -errno;
			goto fail;
		}
		if (s->state != RM_STATS_LIVE)
			continue;
		live++;
		if (cli.jw) {
			cli_stats_slot_print(i, s);
			continue;
		}
		snprintf(svc, sizeof(svc), "%.*s", KEYSTR(s->key.dst_service));
		snprintf(ver, sizeof(ver), "%.*s", KEYSTR(s->key.dst_version));
		snprintf(src, sizeof(src), "%.*s", KEYSTR(s->key.src_workload));
		u64s(c[0], s->requests);
		u64s(c[1], s->code_class[2]);
		u64s(c[2], s->code_class[3]);
		u64s(c[3], s->code_class[4]);
		u64s(c[4], s->code_class[5]);
		u64s(c[5], s->code_class[0]);
		u64s(c[6], s->tcp_opened);
		u64s(c[7], s->tcp_closed);
		cli_table_rowf(t, *svc ? svc : "unknown", *ver ? ver : "unknown",
			       *src ? src : "unknown", c[0], c[1], c[2], c[3], c[4], c[5], c[6],
			       c[7]);
	}
	if (cli.jw) {
		json_end_array(cli.jw);
		json_end_object(cli.jw);
	} else if (live) {
		cli_table_print(t);
	} else {
		printf("  no traffic recorded\n");
	}
	cli_table_free(t);
	free(e);
	cli_map_close(&m);
	return 1;
fail:
	cli_table_free(t);
	free(e);
	cli_map_close(&m);
	p_err("reading %s: %s", RM_MAP_STATS, strerror(-err));
	return -1;
}

static int stats_show(int argc, char **argv)
{
	int dp, rq;

	if (argc) {
		p_err("'stats' takes no arguments; try '%s stats help'", cli.bin);
		return -1;
	}
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "pin_dir", cli.pin_dir);
	}
	dp = show_dp();
	if (dp < 0)
		goto err;
	if (!cli.jw)
		printf("\n");
	rq = show_requests();
	if (rq < 0)
		goto err;
	if (cli.jw)
		json_end_object(cli.jw);
	if (!dp && !rq) {
		/* nothing at all to show is a failure: wrong --pin-dir, most likely */
		p_err("no statistics at %s: neither %s nor %s is pinned", cli.pin_dir,
		      RM_MAP_DPSTATS, RM_MAP_STATS);
		return -1;
	}
	return 0;
err:
	return -1;
}

static int stats_help(int argc, char **argv)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "Usage: %1$s stats\n"
		 "       %1$s stats help\n"
		 "\n"
		 "       " HELP_SPEC_OPTIONS "\n"
		 "\n"
		 "       Data-path decisions (%2$s, summed over CPUs) and requests per\n"
		 "       destination service and version (%3$s).\n",
		 cli.bin, RM_MAP_DPSTATS, RM_MAP_STATS);
	return cli_help_print(text);
}

int do_stats(int argc, char **argv)
{
	if (argc >= 1 && cli_is_prefix(argv[0], "help"))
		return stats_help(argc - 1, argv + 1);
	return stats_show(argc, argv);
}
