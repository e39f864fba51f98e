/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh breaker show [SERVICE]`: the live circuit-breaker and outlier state that
 * ringmeshd keeps in rm_breaker (include/ringmesh/breaker.h), one row per pool
 * (service x subset) with its live counts next to the limits of the active
 * configuration, and one row per host with its error run and ejection. The limits
 * come from the configuration when the pool is in it, else from the daemon's own
 * copy (whole-service pools, or pools the configuration dropped), and the output
 * says which.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmesh/breaker.h"
#include "ringmesh/cfg.h"
#include "common/cfg.h"
#include "policy/cb.h"
#include "common/util.h"
#include "common/pin.h"
#include "common/prom_src.h"
#include "cli.h"

/* Fixed-size key fields are NUL-padded; a writer bug must not make us overrun. */
#define KEYSTR(f) ((int)strnlen((f), sizeof(f))), (f)

struct bk_pool_view {
	const struct rm_cb_pool *p;
	struct rm_cfg_breaker lim;
	bool from_cfg;
};

/* The subset of cfg named (service, subset), or NULL. */
static const struct rm_cfg_subset *cfg_subset(const struct rm_cfg *cfg, const struct rm_cb_pool *p)
{
	char svc[RM_CB_SERVICE_LEN + 1], sub[RM_CB_SUBSET_LEN + 1];

	if (!cfg)
		return NULL;
	snprintf(svc, sizeof(svc), "%.*s", KEYSTR(p->service));
	snprintf(sub, sizeof(sub), "%.*s", KEYSTR(p->subset));
	for (uint32_t i = 0; i < cfg->n_subsets; i++) {
		const struct rm_cfg_subset *s = &cfg->subsets[i];

		/* "": the whole service, whose limits are its DestinationRule's top-level
		 * policy if it has one (the daemon's route_pool), else the defaults */
		if (s->service < cfg->n_services &&
		    !strcmp(cfg_str(cfg, cfg->services[s->service].host_off), svc) &&
		    !strcmp(cfg_str(cfg, s->name_off), sub) &&
		    (*sub || (s->api == RM_API_DESTRULE && !s->label_count)))
			return s;
	}
	return NULL;
}

static bool svc_selected(const struct rm_cb_pool *p, const char *want)
{
	size_t n = strlen(want);
	size_t len = strnlen(p->service, sizeof(p->service));

	if (!*want)
		return true;
	/* the FQDN, or its short name (first label) */
	return (len == n && !memcmp(p->service, want, n)) ||
	       (len > n && !memcmp(p->service, want, n) && p->service[n] == '.');
}

static void cur_max(char *buf, size_t len, uint32_t cur, uint32_t max)
{
	if (max == RM_CFG_UNLIMITED)
		snprintf(buf, len, "%u/unlimited", cur);
	else
		snprintf(buf, len, "%u/%u", cur, max);
}

static void json_cur_max(const char *name, uint32_t cur, uint32_t max)
{
	json_name(cli.jw, name);
	json_start_object(cli.jw);
	json_uint_field(cli.jw, "current", cur);
	if (max == RM_CFG_UNLIMITED)
		json_null_field(cli.jw, "max");
	else
		json_uint_field(cli.jw, "max", max);
	json_end_object(cli.jw);
}

static const char *subset_str(const struct rm_cb_pool *p, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s", KEYSTR(p->subset));
	if (!*buf)
		snprintf(buf, len, "(all)");
	return buf;
}

/* "1.5s", "250ms": what an operator reads at a glance. */
static const char *dur_str(uint64_t ns, char *buf, size_t len)
{
	if (ns >= 10ull * 1000000000ull)
		snprintf(buf, len, "%llus", (unsigned long long)(ns / 1000000000ull));
	else if (ns >= 1000000000ull)
		snprintf(buf, len, "%.1fs", (double)ns / 1e9);
	else
		snprintf(buf, len, "%llums", (unsigned long long)(ns / 1000000ull));
	return buf;
}

static int print_pools(const struct cb *m, const struct bk_pool_view *v, size_t nv)
{
	static const char *const hdr[] = {
	    "SERVICE", "SUBSET", "CONNECTIONS", "PENDING",   "ACTIVE",
	    "RETRIES", "HOSTS",	 "EJECTED",	"OVERFLOWS", "LIMITS",
	};
	struct cli_table *t;

	if (cli.jw) {
		json_name(cli.jw, "pools");
		json_start_array(cli.jw);
	}
	t = cli.jw ? NULL : cli_table_new(10, hdr);
	if (!cli.jw && !t)
		return -ENOMEM;
	for (size_t i = 0; i < nv; i++) {
		const struct rm_cb_pool *p = v[i].p;
		const struct rm_cfg_breaker *l = &v[i].lim;
		char svc[RM_CB_SERVICE_LEN + 1], sub[RM_CB_SUBSET_LEN + 1], c[4][40], nh[16],
		    ne[16], ov[96];

		snprintf(svc, sizeof(svc), "%.*s", KEYSTR(p->service));
		subset_str(p, sub, sizeof(sub));
		if (cli.jw) {
			json_start_object(cli.jw);
			json_uint_field(cli.jw, "slot", (uint64_t)(p - m->pools));
			json_string_field(cli.jw, "service", svc);
			json_string_field(cli.jw, "subset", p->subset[0] ? sub : "");
			json_string_field(cli.jw, "limits_source",
					  v[i].from_cfg ? "config" : "daemon");
			json_cur_max("connections", p->connections, l->max_connections);
			json_cur_max("pending", p->pending, l->max_pending);
			json_cur_max("active", p->requests, l->max_requests);
			json_cur_max("retries", p->retries, l->max_retries);
			json_uint_field(cli.jw, "max_requests_per_connection",
					l->max_requests_per_conn);
			json_name(cli.jw, "outlier");
			json_start_object(cli.jw);
			json_bool_field(cli.jw, "enabled", l->outlier);
			json_uint_field(cli.jw, "consecutive_errors", l->consecutive_errors);
			json_uint_field(cli.jw, "consecutive_gateway_errors",
					l->consecutive_gateway_errors);
			json_uint_field(cli.jw, "base_ejection_ms", l->base_ejection_ns / 1000000);
			json_uint_field(cli.jw, "interval_ms", l->interval_ns / 1000000);
			json_uint_field(cli.jw, "max_ejection_percent", l->max_ejection_percent);
			json_end_object(cli.jw);
			json_uint_field(cli.jw, "hosts", p->n_hosts);
			json_uint_field(cli.jw, "ejected", p->ejected);
			json_uint_field(cli.jw, "ejections_total", p->ejections_total);
			json_name(cli.jw, "overflows");
			json_start_object(cli.jw);
			json_uint_field(cli.jw, "connections", p->cx_overflow);
			json_uint_field(cli.jw, "pending", p->pending_overflow);
			json_uint_field(cli.jw, "requests", p->rq_overflow);
			json_uint_field(cli.jw, "retries", p->retry_overflow);
			json_end_object(cli.jw);
			json_uint_field(cli.jw, "generation", p->generation);
			json_end_object(cli.jw);
			continue;
		}
		cur_max(c[0], sizeof(c[0]), p->connections, l->max_connections);
		cur_max(c[1], sizeof(c[1]), p->pending, l->max_pending);
		cur_max(c[2], sizeof(c[2]), p->requests, l->max_requests);
		cur_max(c[3], sizeof(c[3]), p->retries, l->max_retries);
		snprintf(nh, sizeof(nh), "%u", p->n_hosts);
		snprintf(ne, sizeof(ne), "%u", p->ejected);
		snprintf(ov, sizeof(ov), "cx %llu pend %llu rq %llu retry %llu",
			 (unsigned long long)p->cx_overflow,
			 (unsigned long long)p->pending_overflow,
			 (unsigned long long)p->rq_overflow, (unsigned long long)p->retry_overflow);
		cli_table_rowf(t, svc, sub, c[0], c[1], c[2], c[3], nh, ne, ov,
			       v[i].from_cfg ? "config" : "daemon");
	}
	if (cli.jw) {
		json_end_array(cli.jw);
	} else {
		printf("Pools:\n");
		if (nv)
			cli_table_print(t);
		else
			printf("  none yet (no request has reached a pool)\n");
		cli_table_free(t);
	}
	return 0;
}

/* cb_host_phase, as breaker show -j names it */
static const char *phase_name(enum cb_phase ph)
{
	switch (ph) {
	case CB_PHASE_IN:
		return "in";
	case CB_PHASE_OUT:
		return "out";
	case CB_PHASE_DUE:
		return "due";
	case CB_PHASE_OVERDUE:
		return "overdue";
	}
	return "?";
}

static int print_hosts(const struct cb *m, const struct bk_pool_view *v, size_t nv, uint64_t now)
{
	static const char *const hdr[] = {
	    "SERVICE", "SUBSET",   "HOST",	"ERRORS", "GW_ERRORS",
	    "EJECTED", "IN_A_ROW", "EJECTIONS", "ACTIVE", "LAST_ERROR",
	};
	struct cli_table *t;
	size_t rows = 0;

	if (cli.jw) {
		json_name(cli.jw, "hosts");
		json_start_array(cli.jw);
	}
	t = cli.jw ? NULL : cli_table_new(10, hdr);
	if (!cli.jw && !t)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->n_hosts; i++) {
		const struct rm_cb_host *h = &m->hosts[i];
		const struct rm_cb_pool *p;
		char svc[RM_CB_SERVICE_LEN + 1], sub[RM_CB_SUBSET_LEN + 1], addr[80], c[6][48],
		    d[32], ago[40];
		bool out = h->ejected != RM_CB_IN, sel = false;
		uint64_t left = 0, sweep_in = 0;
		enum cb_phase ph;

		p = cb_pool_at(m, h->key.pool);
		if (h->state != RM_CB_LIVE || !p)
			continue;
		for (size_t j = 0; j < nv && !sel; j++)
			sel = v[j].p == p;
		if (!sel)
			continue;
		rows++;
		snprintf(svc, sizeof(svc), "%.*s", KEYSTR(p->service));
		subset_str(p, sub, sizeof(sub));
		cli_endpoint_str(&h->key.addr, h->key.port, addr, sizeof(addr));
		if (out && h->ejected_until_ns > now)
			left = h->ejected_until_ns - now;
		/* the daemon's own rule (its copy of the limits), not the configuration's */
		ph = cb_host_phase(p, h, now);
		if (p->next_sweep_ns > now)
			sweep_in = p->next_sweep_ns - now;
		if (cli.jw) {
			json_start_object(cli.jw);
			json_string_field(cli.jw, "service", svc);
			json_string_field(cli.jw, "subset", p->subset[0] ? sub : "");
			json_string_field(cli.jw, "host", addr);
			json_uint_field(cli.jw, "consecutive_errors", h->consecutive_errors);
			json_uint_field(cli.jw, "consecutive_gateway_errors",
					h->consecutive_gateway);
			json_bool_field(cli.jw, "ejected", out);
			json_string_field(cli.jw, "phase", phase_name(ph));
			if (ph == CB_PHASE_DUE)
				json_uint_field(cli.jw, "back_in_ms", sweep_in / 1000000);
			else
				json_null_field(cli.jw, "back_in_ms");
			if (out)
				json_uint_field(cli.jw, "remaining_ms", left / 1000000);
			else
				json_null_field(cli.jw, "remaining_ms");
			json_uint_field(cli.jw, "ejections_in_a_row", h->eject_k);
			json_uint_field(cli.jw, "total_ejections", h->total_ejections);
			json_uint_field(cli.jw, "ejections_denied", h->ejections_denied);
			json_uint_field(cli.jw, "active", h->active);
			json_uint_field(cli.jw, "errors_total", h->errors_total);
			json_uint_field(cli.jw, "successes_total", h->successes_total);
			if (h->last_error_ns && now >= h->last_error_ns)
				json_uint_field(cli.jw, "last_error_ago_ms",
						(now - h->last_error_ns) / 1000000);
			else
				json_null_field(cli.jw, "last_error_ago_ms");
			json_end_object(cli.jw);
			continue;
		}
		snprintf(c[0], sizeof(c[0]), "%u", h->consecutive_errors);
		snprintf(c[1], sizeof(c[1]), "%u", h->consecutive_gateway);
		if (ph == CB_PHASE_IN)
			snprintf(c[2], sizeof(c[2]), "no");
		else if (ph == CB_PHASE_DUE && sweep_in)
			snprintf(c[2], sizeof(c[2]), "yes (time up, back in %s)",
				 dur_str(sweep_in, d, sizeof(d)));
		else if (ph == CB_PHASE_DUE)
			snprintf(c[2], sizeof(c[2]), "yes (time up, sweep due now)");
		else if (ph == CB_PHASE_OVERDUE)
			snprintf(c[2], sizeof(c[2]), "overdue (sweep late): serving");
		else if (left)
			snprintf(c[2], sizeof(c[2]), "yes (%s left)", dur_str(left, d, sizeof(d)));
		else
			snprintf(c[2], sizeof(c[2]), "yes (ejecting)");
		snprintf(c[3], sizeof(c[3]), "%u", h->eject_k);
		snprintf(c[4], sizeof(c[4]), "%llu", (unsigned long long)h->total_ejections);
		snprintf(c[5], sizeof(c[5]), "%u", h->active);
		if (h->last_error_ns && now >= h->last_error_ns)
			snprintf(ago, sizeof(ago), "%s ago",
				 dur_str(now - h->last_error_ns, d, sizeof(d)));
		else
			snprintf(ago, sizeof(ago), "never");
		cli_table_rowf(t, svc, sub, addr, c[0], c[1], c[2], c[3], c[4], c[5], ago);
	}
	if (cli.jw) {
		json_end_array(cli.jw);
	} else {
		printf("\nHosts:\n");
		if (rows)
			cli_table_print(t);
		else
			printf("  none yet\n");
		cli_table_free(t);
	}
	return 0;
}

/* "Slots: ..." and the tables-full line of the human output. */
static void print_slots(const struct rm_cb_hdr *h)
{
	printf("  slots in use: %u of %u pools, %u of %u hosts (ringmeshd --breaker-pools, "
	       "--breaker-hosts)\n",
	       h->pools_used, h->n_pools, h->hosts_used, h->n_hosts);
	if (h->pools_dropped || h->hosts_dropped)
		printf("  tables full: %llu pool and %llu host lookups went unlimited\n",
		       (unsigned long long)h->pools_dropped, (unsigned long long)h->hosts_dropped);
}

static int breaker_show(int argc, char **argv)
{
	const char *want = "";
	struct bk_pool_view *v = NULL;
	struct rm_cfg *cfg = NULL;
	struct prom_cb_map map;
	struct rm_cb_hdr hdr;
	struct cb m;
	void *copy = NULL;
	uint64_t gen = 0, now;
	size_t nv = 0;
	char err[512];
	bool live;
	int r, ret = -1;

	if (argc > 1) {
		p_err("'breaker show' takes at most one SERVICE; try '%s breaker help'", cli.bin);
		return -1;
	}
	if (argc == 1)
		want = argv[0];
	r = prom_cb_map_open(&map, cli.pin_dir, err, sizeof(err));
	if (r == -ENOENT) {
		p_err("%s not pinned at %s: no ringmeshd runs with this pin dir (start it, or "
		      "give --pin-dir)",
		      RM_MAP_BREAKER, cli.pin_dir);
		return -1;
	}
	if (r) {
		p_err("%s", err);
		return -1;
	}
	/* one copy, read as of one moment rather than while the workers move on */
	copy = malloc(map.pin.mem_len);
	if (!copy) {
		p_err("out of memory");
		goto out;
	}
	memcpy(copy, map.pin.mem, map.pin.mem_len);
	memset(&hdr, 0, sizeof(hdr));
	memcpy(&hdr, copy, sizeof(hdr));
	live = !cb_locate(&m, copy, map.pin.mem_len);
	v = calloc(live ? m.n_pools : 1, sizeof(*v));
	if (!v) {
		p_err("out of memory");
		goto out;
	}
	now = mono_ns();
	/* limits are shown from the config when there is one; absent is not an error */
	if (cli_cfg_read(&cfg, &gen, err, sizeof(err)))
		cfg = NULL;
	for (uint32_t i = 0; live && i < m.n_pools; i++) {
		const struct rm_cb_pool *p = &m.pools[i];
		const struct rm_cfg_subset *s;

		if (p->state != RM_CB_LIVE || !svc_selected(p, want))
			continue;
		v[nv].p = p;
		s = cfg_subset(cfg, p);
		v[nv].from_cfg = s != NULL;
		v[nv].lim = s ? s->cb : p->lim;
		nv++;
	}
	if (*want && !nv && live) {
		p_err("no breaker state for service '%s' (no request has reached it)", want);
		goto out;
	}
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "pin_dir", cli.pin_dir);
		json_bool_field(cli.jw, "initialised", live);
		json_uint_field(cli.jw, "started_ns", live ? hdr.started_ns : 0);
		json_uint_field(cli.jw, "pools_max", live ? hdr.n_pools : 0);
		json_uint_field(cli.jw, "hosts_max", live ? hdr.n_hosts : 0);
		json_uint_field(cli.jw, "pools_used", live ? hdr.pools_used : 0);
		json_uint_field(cli.jw, "hosts_used", live ? hdr.hosts_used : 0);
		json_uint_field(cli.jw, "pools_dropped", live ? hdr.pools_dropped : 0);
		json_uint_field(cli.jw, "hosts_dropped", live ? hdr.hosts_dropped : 0);
		if (cfg)
			json_uint_field(cli.jw, "config_generation", gen);
		else
			json_null_field(cli.jw, "config_generation");
	} else if (!live) {
		printf("Breaker state (%s): not initialised by a daemon yet\n", RM_MAP_BREAKER);
	} else {
		printf("Breaker state (%s; limits from %s", RM_MAP_BREAKER,
		       cfg ? "config generation " : "the daemon: no configuration readable");
		if (cfg)
			printf("%llu, or the daemon's copy for pools not in it",
			       (unsigned long long)gen);
		printf(")\n");
		print_slots(&hdr);
	}
	/* not initialised: m is empty, the tables say "none yet" */
	if (print_pools(&m, v, nv) || print_hosts(&m, v, nv, now)) {
		p_err("out of memory");
		goto out;
	}
	if (cli.jw)
		json_end_object(cli.jw);
	ret = 0;
out:
	free(cfg);
	free(v);
	free(copy);
	prom_cb_map_close(&map);
	return ret;
}

static int breaker_help(int argc, char **argv)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "Usage: %1$s breaker show [SERVICE]\n"
		 "       %1$s breaker help\n"
		 "\n"
		 "       " HELP_SPEC_OPTIONS "\n"
		 "\n"
		 "       Live circuit-breaker counts per pool (service x subset) next to the\n"
		 "       limits of the active configuration, and per host the consecutive\n"
		 "       errors and outlier ejections, read from %2$s. SERVICE is a host\n"
		 "       name or its short name.\n",
		 cli.bin, RM_MAP_BREAKER);
	return cli_help_print(text);
}

static const struct cli_cmd cmds[] = {
    {"show", breaker_show},
    {"help", breaker_help},
    {0},
};

int do_breaker(int argc, char **argv)
{
	return cli_cmd_select(cmds, argc, argv, breaker_help, "breaker command");
}
