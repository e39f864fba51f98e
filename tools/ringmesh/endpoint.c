/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh endpoint list`: every endpoint of the active configuration with its
 * address:port per service port, its labels, and the subsets it belongs to. The
 * subsets column is what answers "why does v2 get no traffic?": an endpoint whose
 * labels match no route's subset is never picked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "ringmesh/cfg.h"
#include "common/cfg.h"
#include "cli.h"

/* "a.b.c.d:p1,a.b.c.d:p2": one per service port (endpoint port 0 = service port). */
static void ep_addrs(const struct rm_cfg *cfg, const struct rm_cfg_endpoint *e, char *buf,
		     size_t len, bool json)
{
	const struct rm_cfg_service *s =
	    e->service < cfg->n_services ? &cfg->services[e->service] : NULL;
	uint32_t i, nports = s ? s->n_ports : 0;
	char one[80];

	buf[0] = '\0';
	if (nports > RM_CFG_SVC_PORTS)
		nports = RM_CFG_SVC_PORTS;
	if (!nports) {
		cli_addr_str(&e->addr, buf, len);
		if (json)
			json_string(cli.jw, buf);
		return;
	}
	for (i = 0; i < nports; i++) {
		uint16_t port = e->ports[i] ? e->ports[i] : s->ports[i].port;

		cli_endpoint_str(&e->addr, port, one, sizeof(one));
		if (json)
			json_string(cli.jw, one);
		else
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? "," : "", one);
	}
}

/* Subsets of the endpoint's service whose member list holds idx. */
static void ep_subsets(const struct rm_cfg *cfg, uint32_t idx, char *buf, size_t len, bool json)
{
	const struct rm_cfg_endpoint *e = &cfg->endpoints[idx];
	const struct rm_cfg_service *s;
	uint32_t i, j;

	buf[0] = '\0';
	if (e->service >= cfg->n_services)
		return;
	s = &cfg->services[e->service];
	for (i = 0; i < s->subset_count && s->subset_first + i < cfg->n_subsets; i++) {
		const struct rm_cfg_subset *sub = &cfg->subsets[s->subset_first + i];

		for (j = 0; j < sub->member_count && sub->member_first + j < cfg->n_members; j++) {
			if (cfg->members[sub->member_first + j] != idx)
				continue;
			if (json)
				json_string(cli.jw, cfg_str(cfg, sub->name_off));
			else
				snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
					 *buf ? " " : "", cfg_str(cfg, sub->name_off));
			break;
		}
	}
}

static int ep_list(int argc, char **argv)
{
	static const char *const hdr[] = {"ADDRESS", "SERVICE", "LABELS", "SUBSETS"};
	struct cli_table *t = NULL;
	struct rm_cfg *cfg;
	uint64_t gen;
	uint32_t i;

	if (argc) {
		p_err("'endpoint list' takes no arguments");
		return -1;
	}
	if (cli_cfg_load(&cfg, &gen))
		return -1;
	if (cli.jw) {
		json_start_array(cli.jw);
	} else if (!(t = cli_table_new(4, hdr))) {
		free(cfg);
		p_err("out of memory");
		return -1;
	}
	for (i = 0; gen && i < cfg->n_endpoints; i++) {
		const struct rm_cfg_endpoint *e = &cfg->endpoints[i];
		const char *svc = e->service < cfg->n_services
				      ? cfg_str(cfg, cfg->services[e->service].host_off)
				      : "?";
		char addrs[512], labels[512], subs[512], a[64];

		cfg_fmt_labels(cfg, e->label_first, e->label_count, labels, sizeof(labels));
		if (cli.jw) {
			json_start_object(cli.jw);
			json_string_field(cli.jw, "address", cli_addr_str(&e->addr, a, sizeof(a)));
			json_name(cli.jw, "endpoints");
			json_start_array(cli.jw);
			ep_addrs(cfg, e, addrs, sizeof(addrs), true);
			json_end_array(cli.jw);
			json_string_field(cli.jw, "service", svc);
			if (e->name_off)
				json_string_field(cli.jw, "name", cfg_str(cfg, e->name_off));
			json_string_field(cli.jw, "labels", labels);
			json_uint_field(cli.jw, "weight", e->weight ? e->weight : 1);
			json_name(cli.jw, "subsets");
			json_start_array(cli.jw);
			ep_subsets(cfg, i, subs, sizeof(subs), true);
			json_end_array(cli.jw);
			json_end_object(cli.jw);
			continue;
		}
		ep_addrs(cfg, e, addrs, sizeof(addrs), false);
		ep_subsets(cfg, i, subs, sizeof(subs), false);
		cli_table_rowf(t, addrs, svc, *labels ? labels : "-", *subs ? subs : "-");
	}
	if (cli.jw)
		json_end_array(cli.jw);
	else if (cli_table_nrows(t))
		cli_table_print(t);
	else
		printf("no endpoints (generation %llu)\n", (unsigned long long)gen);
	cli_table_free(t);
	free(cfg);
	return 0;
}

static int ep_help(int argc, char **argv)
{
	char text[512];

	snprintf(text, sizeof(text),
		 "Usage: %1$s endpoint { list | help }\n"
		 "\n"
		 "       " HELP_SPEC_OPTIONS "\n",
		 cli.bin);
	return cli_help_print(text);
}

static const struct cli_cmd cmds[] = {
    {"list", ep_list},
    {"help", ep_help},
    {0},
};

int do_endpoint(int argc, char **argv)
{
	return cli_cmd_select(cmds, argc, argv, ep_help, "endpoint command");
}
