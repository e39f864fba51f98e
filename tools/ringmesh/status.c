/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh status`: is a live ringmeshd attached at the pin dir? Alive means
 * rm_proxy is pinned and its heartbeat is younger than heartbeat_max_ns by
 * CLOCK_MONOTONIC now: the same test connect4 makes before it redirects, so
 * "alive" here means "pods are being intercepted" and not merely "a process runs".
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "ringmesh/abi.h"
#include "ringmesh/cfg.h"
#include "common/cfg.h"
#include "common/util.h"
#include "common/pin.h"
#include "common/prom_src.h"
#include "k8s/k8s_sync.h"
#include "cli.h"

static double ns_to_s(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* Counts for the status line; absent config is normal (no rules applied yet). */
static void cfg_summary(void)
{
	struct rm_cfg *cfg = NULL;
	uint64_t gen = 0;
	int ret = cli_cfg_read(&cfg, &gen, NULL, 0);
	char domain[RM_CFG_DOMAIN_LEN];

	cfg_store_domain_at(cli.pin_dir, domain);

	if (cli.jw) {
		json_name(cli.jw, "config");
		if (ret) {
			json_null(cli.jw);
		} else {
			json_start_object(cli.jw);
			json_uint_field(cli.jw, "generation", gen);
			json_uint_field(cli.jw, "services", gen ? cfg->n_services : 0);
			json_uint_field(cli.jw, "rules", gen ? cfg->n_rules : 0);
			json_uint_field(cli.jw, "subsets", gen ? cfg->n_subsets : 0);
			json_uint_field(cli.jw, "endpoints", gen ? cfg->n_endpoints : 0);
			json_string_field(cli.jw, "domain", domain);
			json_end_object(cli.jw);
		}
	} else if (ret) {
		printf("  config         none pinned (nothing applied yet)\n");
	} else if (!gen) {
		printf("  config         generation 0 (empty)\n");
	} else {
		printf("  config         generation %llu: %u rule%s, %u service%s, %u endpoint%s; "
		       "short names in %s\n",
		       (unsigned long long)gen, cfg->n_rules, cfg->n_rules == 1 ? "" : "s",
		       cfg->n_services, cfg->n_services == 1 ? "" : "s", cfg->n_endpoints,
		       cfg->n_endpoints == 1 ? "" : "s", domain);
	}
	free(cfg);
}

/* The breaker table's use against its size (--breaker-pools, --breaker-hosts): nothing
 * (null) without one the daemon initialised. */
static void breaker_summary(void)
{
	struct prom_cb_map m;
	const struct rm_cb_hdr *h;
	char err[512];

	if (prom_cb_map_open(&m, cli.pin_dir, err, sizeof(err)) || !m.cb.h) {
		prom_cb_map_close(&m);
		if (cli.jw) {
			json_name(cli.jw, "breaker");
			json_null(cli.jw);
		}
		return;
	}
	h = m.cb.h;
	if (cli.jw) {
		json_name(cli.jw, "breaker");
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "pools_used", h->pools_used);
		json_uint_field(cli.jw, "pools_max", m.cb.n_pools);
		json_uint_field(cli.jw, "hosts_used", h->hosts_used);
		json_uint_field(cli.jw, "hosts_max", m.cb.n_hosts);
		json_uint_field(cli.jw, "pools_dropped", h->pools_dropped);
		json_uint_field(cli.jw, "hosts_dropped", h->hosts_dropped);
		json_end_object(cli.jw);
	} else {
		printf("  breaker        %u of %u pools, %u of %u hosts in use", h->pools_used,
		       m.cb.n_pools, h->hosts_used, m.cb.n_hosts);
		if (h->pools_dropped || h->hosts_dropped)
			printf("; full: %llu pool and %llu host lookups unlimited "
			       "(--breaker-pools, --breaker-hosts)",
			       (unsigned long long)h->pools_dropped,
			       (unsigned long long)h->hosts_dropped);
		printf("\n");
	}
	prom_cb_map_close(&m);
}

/* The line of `ringmesh sync`, when one ran with this pin dir (its default
 * status file): nothing when none did. */
static void sync_summary(void)
{
	char path[512], err[512];

	k8s_sync_status_path(cli.pin_dir, path, sizeof(path));
	if (cli.jw) {
		json_name(cli.jw, "sync");
		if (k8s_sync_status_show(path, cli.jw, NULL, true, realtime_ns(), err, sizeof(err)))
			json_null(cli.jw);
	} else {
		k8s_sync_status_show(path, NULL, stdout, true, realtime_ns(), err, sizeof(err));
	}
}

static int status_show(int argc, char **argv)
{
	struct rm_proxy_cfg p;
	struct cli_map m;
	uint32_t key = 0;
	uint64_t now, age;
	int err;

	if (argc) {
		p_err("'status' takes no arguments; try '%s status help'", cli.bin);
		return -1;
	}
	err = cli_pin_open(PIN_PROXY, &m);
	if (err == -ENOENT) {
		p_err("no ringmeshd at %s: not pinned", cli.pin_dir);
		return -1;
	}
	if (err == -EPROTO) {
		p_err("%s", m.why);
		return -1;
	}
	if (err) {
		p_err("no ringmeshd at %s: cannot open %s: %s", cli.pin_dir, RM_MAP_PROXY,
		      err == -EINVAL ? "not a map" : strerror(-err));
		return -1;
	}
	err = bpf_map_lookup_elem(m.fd, &key, &p) ? -errno : 0;
	cli_map_close(&m);
	if (err) {
		p_err("cannot read %s: %s", m.path, strerror(-err));
		return -1;
	}
	now = mono_ns();
	age = now > p.heartbeat_ns ? now - p.heartbeat_ns : 0;
	if (!p.heartbeat_ns) {
		p_err("no ringmeshd at %s: heartbeat never set (daemon stopped or starting)",
		      cli.pin_dir);
		return -1;
	}
	if (age >= p.heartbeat_max_ns) {
		/* the maps outlive a killed daemon; connect4 already fails open */
		p_err("stale heartbeat (%.1f s old): daemon dead? (limit %.1f s, pid %u%s)",
		      ns_to_s(age), ns_to_s(p.heartbeat_max_ns), p.daemon_tgid,
		      kill((pid_t)p.daemon_tgid, 0) && errno == ESRCH ? " is gone" : "");
		return -1;
	}
	if (cli.jw) {
		json_start_object(cli.jw);
		json_bool_field(cli.jw, "alive", true);
		json_string_field(cli.jw, "pin_dir", cli.pin_dir);
		cli_proxy_fields(&p, now);
		cfg_summary();
		breaker_summary();
		sync_summary();
		json_end_object(cli.jw);
	} else {
		printf("ringmeshd alive at %s\n", cli.pin_dir);
		cli_proxy_fields(&p, now);
		cfg_summary();
		breaker_summary();
		sync_summary();
	}
	return 0;
}

static int status_help(int argc, char **argv)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "Usage: %1$s status\n"
		 "       %1$s status help\n"
		 "\n"
		 "       " HELP_SPEC_OPTIONS "\n"
		 "\n"
		 "       Exits 0 when a ringmeshd with a fresh heartbeat is attached at the pin\n"
		 "       dir (%2$s), non-zero otherwise.\n",
		 cli.bin, cli.pin_dir);
	return cli_help_print(text);
}

int do_status(int argc, char **argv)
{
	/* `status` is a command on its own; "help" is the only word it takes */
	if (argc >= 1 && cli_is_prefix(argv[0], "help"))
		return status_help(argc - 1, argv + 1);
	return status_show(argc, argv);
}
