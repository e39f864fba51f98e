/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * print: how the CLI shows the ABI's structs (include/ringmesh/): addresses and
 * endpoints, the data-path reasons, the proxy record, a metric slot. One place, so
 * `map dump`, `status`, `stats` and `breaker show` print the same struct the same way
 * and none of them reaches into another command's file for it.
 */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include "common/prom.h"
#include "ringmesh/abi.h"
#include "ringmesh/stats.h"
#include "cli.h"

/* ---- addresses ---- */

const char *cli_addr_str(const void *addr16, char *buf, size_t len)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const unsigned char *a = addr16;

	if (memcmp(a, mapped, sizeof(mapped)) == 0) {
		if (!inet_ntop(AF_INET, a + 12, buf, (socklen_t)len))
			snprintf(buf, len, "?");
	} else if (!inet_ntop(AF_INET6, a, buf, (socklen_t)len)) {
		snprintf(buf, len, "?");
	}
	return buf;
}

const char *cli_endpoint_str(const struct rm_addr *a, uint16_t be_port, char *buf, size_t len)
{
	char ab[INET6_ADDRSTRLEN + 1];
	const unsigned char *b = a->a8;
	bool v4 = b[10] == 0xff && b[11] == 0xff && !memcmp(b, "\0\0\0\0\0\0\0\0\0\0", 10);

	cli_addr_str(a, ab, sizeof(ab));
	snprintf(buf, len, v4 ? "%s:%u" : "[%s]:%u", ab, ntohs(be_port));
	return buf;
}

/* ---- the proxy record ---- */

static double ns_to_s(uint64_t ns)
{
	return (double)ns / 1e9;
}

void cli_proxy_fields(const struct rm_proxy_cfg *p, uint64_t now_ns)
{
	char listen[80], gw[80];
	uint64_t age = p->heartbeat_ns && now_ns > p->heartbeat_ns ? now_ns - p->heartbeat_ns : 0;
	bool fresh = p->heartbeat_ns && age < p->heartbeat_max_ns;

	cli_endpoint_str(&p->listen_addr, p->listen_port, listen, sizeof(listen));
	cli_endpoint_str(&p->pod_gw_addr, p->listen_port, gw, sizeof(gw));
	if (cli.jw) {
		json_uint_field(cli.jw, "daemon_pid", p->daemon_tgid);
		json_string_field(cli.jw, "listen", listen);
		json_string_field(cli.jw, "pod_gateway", gw);
		json_name(cli.jw, "flags");
		json_start_array(cli.jw);
		if (p->flags & RM_PF_SOCKMAP)
			json_string(cli.jw, "sockmap");
		if (p->flags & ~RM_PF_SOCKMAP)
			json_printf(cli.jw, "0x%x", p->flags & ~RM_PF_SOCKMAP);
		json_end_array(cli.jw);
		json_uint_field(cli.jw, "heartbeat_ns", p->heartbeat_ns);
		if (p->heartbeat_ns)
			json_float_field(cli.jw, "heartbeat_age_s", ns_to_s(age));
		else
			json_null_field(cli.jw, "heartbeat_age_s");
		json_float_field(cli.jw, "heartbeat_max_s", ns_to_s(p->heartbeat_max_ns));
		json_bool_field(cli.jw, "heartbeat_fresh", fresh);
		json_uint_field(cli.jw, "daemon_cgroup_id", p->daemon_cgroup_id);
		json_uint_field(cli.jw, "daemon_netns_cookie", p->daemon_netns_cookie);
		if (p->prev_tgid)
			json_uint_field(cli.jw, "draining_pid", p->prev_tgid);
		else
			json_null_field(cli.jw, "draining_pid");
		return;
	}
	printf("  daemon pid     %u\n", p->daemon_tgid);
	if (p->prev_tgid)
		printf("  draining pid   %u (handed over to the daemon above)\n", p->prev_tgid);
	printf("  listen         %s (pods in other netns: %s)\n", listen, gw);
	printf("  flags          %s%s\n", p->flags & RM_PF_SOCKMAP ? "sockmap" : "none",
	       p->flags & ~RM_PF_SOCKMAP ? " +unknown" : "");
	if (p->heartbeat_ns)
		printf("  heartbeat      %.1f s ago (stale after %.1f s)%s\n", ns_to_s(age),
		       ns_to_s(p->heartbeat_max_ns), fresh ? "" : ": STALE");
	else
		printf("  heartbeat      never (stale after %.1f s)\n",
		       ns_to_s(p->heartbeat_max_ns));
	printf("  daemon cgroup  %llu  netns cookie %llu\n",
	       (unsigned long long)p->daemon_cgroup_id, (unsigned long long)p->daemon_netns_cookie);
}

/* ---- metric slots ---- */

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

void cli_stats_hdr_fields(const struct rm_stats_hdr *h)
{
	json_bool_field(cli.jw, "initialised", h);
	json_uint_field(cli.jw, "started_ns", h ? h->started_ns : 0);
	json_uint_field(cli.jw, "dropped", h ? h->dropped : 0);
	json_uint_field(cli.jw, "generation", h ? h->generation : 0);
	json_uint_field(cli.jw, "rows", h ? h->rows_used : 0);
	json_uint_field(cli.jw, "rows_max", h ? h->n_rows : 0);
	json_uint_field(cli.jw, "pool_full", h ? h->pool_full : 0);
}

void cli_stats_slot_print(uint32_t idx, const struct prom_series *s)
{
	static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
	const struct rm_stats_key *k = &s->sl.key;
	struct prom_slot_sum a;
	int i;

	prom_slot_sum(s, &a);
	if (!cli.jw) {
		char fl[64];

		printf("[%u] %.*s version %.*s from %.*s: %llu requests (2xx %llu, 4xx %llu, "
		       "5xx %llu), connections %llu opened %llu closed%s%s\n",
		       idx, KEYSTR(k->dst_service), KEYSTR(k->dst_version), KEYSTR(k->src_workload),
		       (unsigned long long)a.requests, (unsigned long long)a.code_class[2],
		       (unsigned long long)a.code_class[4], (unsigned long long)a.code_class[5],
		       (unsigned long long)s->sl.tcp_opened, (unsigned long long)s->sl.tcp_closed,
		       k->tcp_flags ? ", flags " : "",
		       k->tcp_flags ? prom_flags_str(k->tcp_flags, fl, sizeof(fl)) : "");
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
	json_name(cli.jw, "source_workload_namespace");
	key_field("source_workload_namespace", k->src_namespace, sizeof(k->src_namespace));
	json_name(cli.jw, "source_app");
	key_field("source_app", k->src_app, sizeof(k->src_app));
	json_name(cli.jw, "source_canonical_service");
	key_field("source_canonical_service", k->src_canon_svc, sizeof(k->src_canon_svc));
	json_name(cli.jw, "source_canonical_revision");
	key_field("source_canonical_revision", k->src_canon_rev, sizeof(k->src_canon_rev));
	json_string_field(cli.jw, "protocol",
			  k->proto == RM_STATS_HTTP  ? "http"
			  : k->proto == RM_STATS_TCP ? "tcp"
						     : "unknown");
	json_uint_field(cli.jw, "requests", a.requests);
	json_name(cli.jw, "code_class");
	json_start_object(cli.jw);
	for (i = 0; i < 6; i++)
		json_uint_field(cli.jw, cls[i], a.code_class[i]);
	json_end_object(cli.jw);
	/* one entry per (code, flags) row, as the Prometheus series are */
	json_name(cli.jw, "series");
	json_start_array(cli.jw);
	for (i = 0; i < RM_STATS_ROWS; i++) {
		const struct rm_stats_row *r = &s->rows[i];
		uint64_t n = prom_row_count(r);
		char fl[64];

		if (!n)
			continue;
		json_start_object(cli.jw);
		if (i == RM_STATS_ROWS - 1) {
			json_null_field(cli.jw, "code");
			json_string_field(cli.jw, "response_flags", "overflow");
		} else {
			json_uint_field(cli.jw, "code", RM_STATS_ROW_CODE(r->id));
			json_string_field(
			    cli.jw, "response_flags",
			    prom_flags_str(RM_STATS_ROW_FLAGS(r->id), fl, sizeof(fl)));
		}
		json_uint_field(cli.jw, "requests", n);
		json_end_object(cli.jw);
	}
	json_end_array(cli.jw);
	json_name(cli.jw, "response_flags");
	json_start_object(cli.jw);
	for (i = 0; i < RM_STATS_F_MAX; i++)
		if (prom_flag_name(i))
			json_uint_field(cli.jw, prom_flag_name(i), a.flags[i]);
	json_end_object(cli.jw);
	json_uint_field(cli.jw, "overflow", a.overflow);
	json_name(cli.jw, "duration_ms");
	json_start_object(cli.jw);
	{
		static const double qs[3] = {0.5, 0.9, 0.99};
		static const char *const qn[3] = {"p50", "p90", "p99"};

		for (i = 0; i < 3; i++) {
			double q = prom_quantile(a.dur, qs[i]);

			json_name(cli.jw, qn[i]);
			if (q < 0)
				json_null(cli.jw);
			else
				json_float(cli.jw, q);
		}
	}
	json_end_object(cli.jw);
	json_uint_field(cli.jw, "duration_sum_us", a.dur_sum_us);
	json_uint_field(cli.jw, "request_bytes_sum", a.req_bytes_sum);
	json_uint_field(cli.jw, "response_bytes_sum", a.resp_bytes_sum);
	json_name(cli.jw, "tcp");
	json_start_object(cli.jw);
	json_uint_field(cli.jw, "opened", s->sl.tcp_opened);
	json_uint_field(cli.jw, "closed", s->sl.tcp_closed);
	json_uint_field(cli.jw, "sent_bytes", s->sl.tcp_sent_bytes);
	json_uint_field(cli.jw, "received_bytes", s->sl.tcp_received_bytes);
	{
		char fl[64];

		json_string_field(cli.jw, "response_flags",
				  prom_flags_str(k->tcp_flags, fl, sizeof(fl)));
	}
	json_end_object(cli.jw);
	json_end_object(cli.jw);
}
