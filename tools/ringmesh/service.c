/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh service list|show`: the services of the active configuration, with
 * their VIPs, ports and how many rules, subsets and endpoints hang off each. A
 * service only named by rules (no ServiceEntry) is listed too and marked, since
 * traffic to it cannot be intercepted until something declares its address.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "ringmesh/cfg.h"
#include "common/cfg.h"
#include "cli.h"

const char *cli_proto_name(unsigned int proto)
{
	switch (proto) {
	case RM_PROTO_HTTP:
		return "HTTP";
	case RM_PROTO_TCP:
		return "TCP";
	case RM_PROTO_HTTP2:
		return "HTTP2";
	case RM_PROTO_GRPC:
		return "GRPC";
	case RM_PROTO_HTTPS:
		return "HTTPS";
	case RM_PROTO_TLS:
		return "TLS";
	default:
		return "?";
	}
}

static void svc_json(const struct rm_cfg *cfg, const struct rm_cfg_service *s, const char *descr)
{
	char buf[64];
	uint32_t i;

	json_start_object(cli.jw);
	json_string_field(cli.jw, "host", cfg_str(cfg, s->host_off));
	json_string_field(cli.jw, "name", cfg_str(cfg, s->name_off));
	json_string_field(cli.jw, "namespace", cfg_str(cfg, s->ns_off));
	json_bool_field(cli.jw, "declared", s->flags & RM_SF_DECLARED);
	json_name(cli.jw, "addresses");
	json_start_array(cli.jw);
	for (i = 0; i < s->n_addrs && i < RM_CFG_SVC_ADDRS; i++)
		json_string(cli.jw, cli_addr_str(&s->addrs[i], buf, sizeof(buf)));
	json_end_array(cli.jw);
	json_name(cli.jw, "ports");
	json_start_array(cli.jw);
	for (i = 0; i < s->n_ports && i < RM_CFG_SVC_PORTS; i++) {
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "number", ntohs(s->ports[i].port));
		json_string_field(cli.jw, "name", cfg_str(cfg, s->ports[i].name_off));
		json_string_field(cli.jw, "protocol", cli_proto_name(s->ports[i].proto));
		json_end_object(cli.jw);
	}
	json_end_array(cli.jw);
	json_uint_field(cli.jw, "rules", s->rule_count);
	json_name(cli.jw, "subsets");
	json_start_array(cli.jw);
	for (i = 0; i < s->subset_count && s->subset_first + i < cfg->n_subsets; i++)
		json_string(cli.jw, cfg_str(cfg, cfg->subsets[s->subset_first + i].name_off));
	json_end_array(cli.jw);
	json_uint_field(cli.jw, "endpoints", s->endpoint_count);
	if (descr)
		json_string_field(cli.jw, "description", descr);
	json_end_object(cli.jw);
}

static int svc_list(int argc, char **argv)
{
	static const char *const hdr[] = {"SERVICE", "NAMESPACE", "ADDRESSES", "PORTS",
					  "RULES",   "SUBSETS",	  "ENDPOINTS"};
	struct cli_table *t = NULL;
	struct rm_cfg *cfg;
	uint64_t gen;
	uint32_t si, i;

	if (argc) {
		p_err("'service list' takes no arguments");
		return -1;
	}
	if (cli_cfg_load(&cfg, &gen))
		return -1;
	if (cli.jw) {
		json_start_array(cli.jw);
	} else if (!(t = cli_table_new(7, hdr))) {
		free(cfg);
		p_err("out of memory");
		return -1;
	}
	for (si = 0; gen && si < cfg->n_services; si++) {
		const struct rm_cfg_service *s = &cfg->services[si];
		char addrs[256] = "", ports[256] = "", rules[16], subs[16], eps[16], a[64];

		if (cli.jw) {
			svc_json(cfg, s, NULL);
			continue;
		}
		for (i = 0; i < s->n_addrs && i < RM_CFG_SVC_ADDRS; i++)
			snprintf(addrs + strlen(addrs), sizeof(addrs) - strlen(addrs), "%s%s",
				 i ? "," : "", cli_addr_str(&s->addrs[i], a, sizeof(a)));
		for (i = 0; i < s->n_ports && i < RM_CFG_SVC_PORTS; i++)
			snprintf(ports + strlen(ports), sizeof(ports) - strlen(ports), "%s%u/%s",
				 i ? "," : "", ntohs(s->ports[i].port),
				 cli_proto_name(s->ports[i].proto));
		if (!(s->flags & RM_SF_DECLARED))
			snprintf(addrs, sizeof(addrs), "(not declared)");
		snprintf(rules, sizeof(rules), "%u", s->rule_count);
		snprintf(subs, sizeof(subs), "%u", s->subset_count);
		snprintf(eps, sizeof(eps), "%u", s->endpoint_count);
		cli_table_rowf(t, cfg_str(cfg, s->host_off), cfg_str(cfg, s->ns_off),
			       *addrs ? addrs : "-", *ports ? ports : "-", rules, subs, eps);
	}
	if (cli.jw)
		json_end_array(cli.jw);
	else if (cli_table_nrows(t))
		cli_table_print(t);
	else
		printf("no services (generation %llu)\n", (unsigned long long)gen);
	cli_table_free(t);
	free(cfg);
	return 0;
}

/* FQDN first; else the short name, or "name.namespace", when it names one service. */
static int svc_find(const struct rm_cfg *cfg, const char *name)
{
	int idx = cfg_service_find(cfg, name), hit = -ENOENT;
	uint32_t i;

	if (idx >= 0)
		return idx;
	for (i = 0; i < cfg->n_services; i++) {
		const struct rm_cfg_service *s = &cfg->services[i];
		char both[512];

		snprintf(both, sizeof(both), "%s.%s", cfg_str(cfg, s->name_off),
			 cfg_str(cfg, s->ns_off));
		if (strcmp(name, cfg_str(cfg, s->name_off)) && strcmp(name, both))
			continue;
		if (hit >= 0)
			return -EEXIST;
		hit = (int)i;
	}
	return hit;
}

static int svc_show(int argc, char **argv)
{
	struct rm_cfg *cfg;
	char *text = NULL;
	size_t len = 0;
	uint64_t gen;
	int idx, ret;
	FILE *f;

	if (argc != 1) {
		p_err("usage: %s service show HOST", cli.bin);
		return -1;
	}
	if (cli_cfg_load(&cfg, &gen))
		return -1;
	idx = gen ? svc_find(cfg, argv[0]) : -ENOENT;
	if (idx == -EEXIST) {
		p_err("service name '%s' is ambiguous: give the full host name", argv[0]);
		free(cfg);
		return -1;
	}
	if (idx < 0 || (uint32_t)idx >= cfg->n_services) {
		p_err("no service '%s' at %s", argv[0], cli.pin_dir);
		free(cfg);
		return -1;
	}
	f = cli.jw ? open_memstream(&text, &len) : stdout;
	ret = f ? cfg_service_describe(cfg, (uint32_t)idx, f) : -ENOMEM;
	if (f && f != stdout)
		fclose(f);
	if (!ret && cli.jw)
		svc_json(cfg, &cfg->services[idx], text);
	free(text);
	free(cfg);
	if (ret) {
		p_err("cannot describe service '%s': %s", argv[0], strerror(-ret));
		return -1;
	}
	return 0;
}

static int svc_help(int argc, char **argv)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "Usage: %1$s service { list | help }\n"
		 "       %1$s service show HOST\n"
		 "\n"
		 "       HOST := { FQDN | NAME.NAMESPACE | NAME }\n"
		 "       " HELP_SPEC_OPTIONS "\n",
		 cli.bin);
	return cli_help_print(text);
}

static const struct cli_cmd cmds[] = {
    {"list", svc_list},
    {"show", svc_show},
    {"help", svc_help},
    {0},
};

int do_service(int argc, char **argv)
{
	return cli_cmd_select(cmds, argc, argv, svc_help, "service command");
}
