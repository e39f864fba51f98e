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
#include "common/util.h"
#include "cli.h"

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
		return;
	}
	printf("  daemon pid     %u\n", p->daemon_tgid);
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

/* Counts for the status line; absent config is normal (no rules applied yet). */
static void cfg_summary(void)
{
	struct rm_cfg *cfg = NULL;
	uint64_t gen = 0;
	int ret = cli_cfg_read(&cfg, &gen, NULL, 0);

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
			json_end_object(cli.jw);
		}
	} else if (ret) {
		printf("  config         none pinned (nothing applied yet)\n");
	} else if (!gen) {
		printf("  config         generation 0 (empty)\n");
	} else {
		printf("  config         generation %llu: %u rule%s, %u service%s, %u endpoint%s\n",
		       (unsigned long long)gen, cfg->n_rules, cfg->n_rules == 1 ? "" : "s",
		       cfg->n_services, cfg->n_services == 1 ? "" : "s", cfg->n_endpoints,
		       cfg->n_endpoints == 1 ? "" : "s");
	}
	free(cfg);
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
	err = cli_map_open(RM_MAP_PROXY, false, &m);
	if (err == -ENOENT) {
		p_err("no ringmeshd at %s: not pinned", cli.pin_dir);
		return -1;
	}
	if (err) {
		p_err("no ringmeshd at %s: cannot open %s: %s", cli.pin_dir, RM_MAP_PROXY,
		      err == -EINVAL ? "not a map" : strerror(-err));
		return -1;
	}
	if (m.info.value_size != sizeof(p) || m.info.key_size != sizeof(key)) {
		p_err("%s has value size %u, this ringmesh expects %zu: daemon and CLI versions "
		      "differ",
		      m.path, m.info.value_size, sizeof(p));
		cli_map_close(&m);
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
		json_end_object(cli.jw);
	} else {
		printf("ringmeshd alive at %s\n", cli.pin_dir);
		cli_proxy_fields(&p, now);
		cfg_summary();
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
