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
#include "cli.h"

static const char *const flag_names[RM_STATS_F_MAX] = {
    [RM_STATS_F_UO] = "UO",   [RM_STATS_F_UT] = "UT", [RM_STATS_F_UH] = "UH",
    [RM_STATS_F_UF] = "UF",   [RM_STATS_F_UC] = "UC", [RM_STATS_F_URX] = "URX",
    [RM_STATS_F_UPE] = "UPE", [RM_STATS_F_NR] = "NR", [RM_STATS_F_FI] = "FI",
    [RM_STATS_F_DI] = "DI",
};

/* Fixed-size key fields are NUL-padded but a writer bug must not make us overrun. */
#define KEYSTR(f) ((int)strnlen((f), sizeof(f))), (f)

static void key_field(const char *name, const char *s, size_t len)
{
	size_t n = strnlen(s, len);

	if (n)
		json_string_len(cli.jw, s, n), (void)name;
	else
		json_string(cli.jw, "unknown");
}

void cli_stats_slot_print(uint32_t idx, const struct rm_stats_slot *s)
{
	static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
	const struct rm_stats_key *k = &s->key;
	int i;

	if (!cli.jw) {
		printf("[%u] %.*s version %.*s from %.*s: %llu requests (2xx %llu, 4xx %llu, "
		       "5xx %llu), connections %llu opened %llu closed\n",
		       idx, KEYSTR(k->dst_service), KEYSTR(k->dst_version), KEYSTR(k->src_workload),
		       (unsigned long long)s->requests, (unsigned long long)s->code_class[2],
		       (unsigned long long)s->code_class[4], (unsigned long long)s->code_class[5],
		       (unsigned long long)s->tcp_opened, (unsigned long long)s->tcp_closed);
		return;
	}
	json_start_object(cli.jw);
	json_uint_field(cli.jw, "slot", idx);
	json_name(cli.jw, "destination_service");
	key_field("destination_service", k->dst_service, sizeof(k->dst_service));
	json_name(cli.jw, "destination_version");
	key_field("destination_version", k->dst_version, sizeof(k->dst_version));
	json_name(cli.jw, "destination_workload");
	key_field("destination_workload", k->dst_workload, sizeof(k->dst_workload));
	json_name(cli.jw, "source_workload");
	key_field("source_workload", k->src_workload, sizeof(k->src_workload));
	json_name(cli.jw, "source_version");
	key_field("source_version", k->src_version, sizeof(k->src_version));
	json_string_field(cli.jw, "protocol",
			  k->proto == RM_STATS_HTTP  ? "http"
			  : k->proto == RM_STATS_TCP ? "tcp"
						     : "unknown");
	json_uint_field(cli.jw, "requests", s->requests);
	json_name(cli.jw, "code_class");
	json_start_object(cli.jw);
	for (i = 0; i < 6; i++)
		json_uint_field(cli.jw, cls[i], s->code_class[i]);
	json_end_object(cli.jw);
	json_name(cli.jw, "codes");
	json_start_object(cli.jw);
	for (i = 0; i < RM_STATS_CODES; i++) {
		char code[16];

		if (!s->codes[i].code)
			continue;
		snprintf(code, sizeof(code), "%u", s->codes[i].code);
		json_uint_field(cli.jw, code, s->codes[i].count);
	}
	if (s->codes_other)
		json_uint_field(cli.jw, "other", s->codes_other);
	json_end_object(cli.jw);
	json_name(cli.jw, "response_flags");
	json_start_object(cli.jw);
	for (i = 0; i < RM_STATS_F_MAX; i++)
		json_uint_field(cli.jw, flag_names[i], s->flags[i]);
	json_end_object(cli.jw);
	json_uint_field(cli.jw, "duration_sum_us", s->dur_sum_us);
	json_uint_field(cli.jw, "request_bytes_sum", s->req_bytes_sum);
	json_uint_field(cli.jw, "response_bytes_sum", s->resp_bytes_sum);
	json_name(cli.jw, "tcp");
	json_start_object(cli.jw);
	json_uint_field(cli.jw, "opened", s->tcp_opened);
	json_uint_field(cli.jw, "closed", s->tcp_closed);
	json_uint_field(cli.jw, "sent_bytes", s->tcp_sent_bytes);
	json_uint_field(cli.jw, "received_bytes", s->tcp_received_bytes);
	json_end_object(cli.jw);
	json_end_object(cli.jw);
}

/* Open a pinned counter map: 1 = open, 0 = not pinned (said so, as key null and
 * key_absent in JSON, why in words), -1 = error (p_err'ed). */
static int open_counters(const char *name, const char *key, const char *title, const char *why,
			 struct cli_map *m)
{
	char absent[64], text[128];
	int err = cli_map_open(name, false, m);

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

	err = open_counters(RM_MAP_DPSTATS, "datapath", "Data path", "no data path loaded", &m);
	if (err <= 0)
		return err;
	if (!cli_map_is_percpu(&m) || m.info.key_size != 4 || m.info.value_size != 8) {
		p_err("%s is not a per-CPU array of u64 counters: daemon and CLI versions differ",
		      m.path);
		cli_map_close(&m);
		return -1;
	}
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

	err = open_counters(RM_MAP_STATS, "requests", "Requests", "no ringmeshd has run here", &m);
	if (err <= 0)
		return err;
	if (m.info.key_size != 4 || m.info.value_size != sizeof(*e)) {
		p_err("%s has value size %u, this ringmesh expects %zu: daemon and CLI versions "
		      "differ",
		      m.path, m.info.value_size, sizeof(*e));
		cli_map_close(&m);
		return -1;
	}
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
