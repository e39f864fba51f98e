/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh rule list|show|delete`: the compiled routing rules as the router will
 * evaluate them, read from the active half of rm_cfg. The list is in evaluation
 * order per service (RouteRule: precedence high to low; VirtualService: list
 * order), so shadowing is visible at a glance; `show` uses the compiler's own
 * description so the CLI and the golden tests can never disagree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmesh/cfg.h"
#include "common/cfg.h"
#include "common/util.h"
#include "cli.h"

static const char *api_name(unsigned int api)
{
	const char *n = cfg_api_name(api);

	return n ? n : api == RM_API_IMPLICIT ? "implicit" : "unknown";
}

static const char *field_name(const struct rm_cfg *cfg, const struct rm_cfg_cond *c)
{
	switch (c->field) {
	case RM_MF_HEADER:
		return cfg_str(cfg, c->name_off);
	case RM_MF_URI:
		return "uri";
	case RM_MF_METHOD:
		return "method";
	case RM_MF_AUTHORITY:
		return "authority";
	case RM_MF_SCHEME:
		return "scheme";
	default:
		return "?";
	}
}

static const char *op_sym(unsigned int op)
{
	switch (op) {
	case RM_OP_EXACT:
		return "=";
	case RM_OP_PREFIX:
		return "^=";
	case RM_OP_REGEX:
		return "~=";
	default:
		return "?";
	}
}

static bool rule_ok(const struct rm_cfg *cfg, const struct rm_cfg_rule *r)
{
	return r->service < cfg->n_services && r->match_first + r->match_count <= cfg->n_matches &&
	       r->target_first + r->target_count <= cfg->n_targets;
}

/* A summary cut short ends in "..." (sbuf_text) rather than failing. */
static void match_summary(const struct rm_cfg *cfg, const struct rm_cfg_rule *r, struct sbuf *b)
{
	char lb[256];
	uint32_t i, j;

	if (!r->match_count) {
		sbuf_printf(b, "*");
		return;
	}
	for (i = 0; i < r->match_count; i++) {
		const struct rm_cfg_match *m = &cfg->matches[r->match_first + i];
		bool first = true;

		if (i)
			sbuf_printf(b, " || ");
		for (j = 0; j < m->cond_count && m->cond_first + j < cfg->n_conds; j++) {
			const struct rm_cfg_cond *c = &cfg->conds[m->cond_first + j];

			sbuf_printf(b, "%s%s%s%s", first ? "" : " && ", field_name(cfg, c),
				    op_sym(c->op), cfg_str(cfg, c->value_off));
			first = false;
		}
		if (m->src_label_count) {
			cfg_fmt_labels(cfg, m->src_label_first, m->src_label_count, lb, sizeof(lb));
			sbuf_printf(b, "%ssource[%s]", first ? "" : " && ", lb);
			first = false;
		}
		if (m->src_name_off) {
			sbuf_printf(b, "%ssource=%s", first ? "" : " && ",
				    cfg_str(cfg, m->src_name_off));
			first = false;
		}
		if (m->src_ns_off) {
			sbuf_printf(b, "%ssourceNamespace=%s", first ? "" : " && ",
				    cfg_str(cfg, m->src_ns_off));
			first = false;
		}
		if (first)
			sbuf_printf(b, "*");
	}
}

static uint64_t weight_total(const struct rm_cfg *cfg, const struct rm_cfg_rule *r)
{
	uint64_t total = 0;
	uint32_t i;

	for (i = 0; i < r->target_count; i++)
		total += cfg->targets[r->target_first + i].weight;
	return total;
}

static const char *target_name(const struct rm_cfg *cfg, const struct rm_cfg_rule *r,
			       const struct rm_cfg_target *t, char *buf, size_t len)
{
	const char *svc =
	    t->service < cfg->n_services ? cfg_str(cfg, cfg->services[t->service].name_off) : "?";
	const char *sub = t->subset == RM_CFG_NONE ? NULL
			  : t->subset < cfg->n_subsets
			      ? cfg_str(cfg, cfg->subsets[t->subset].name_off)
			      : "?";

	if (t->service == r->service)
		snprintf(buf, len, "%s", sub ? sub : svc);
	else
		snprintf(buf, len, "%s%s%s", svc, sub ? "/" : "", sub ? sub : "");
	return buf;
}

/* A summary cut short ends in "..." (sbuf_text) rather than failing. */
static void route_summary(const struct rm_cfg *cfg, const struct rm_cfg_rule *r, struct sbuf *b)
{
	uint64_t total = weight_total(cfg, r);
	char name[256];
	uint32_t i;

	if (r->flags & RM_RF_REDIRECT) {
		sbuf_printf(b, "redirect %u", r->redirect_code);
		return;
	}
	if (!r->target_count) {
		sbuf_printf(b, "all endpoints");
		return;
	}
	for (i = 0; i < r->target_count; i++) {
		const struct rm_cfg_target *t = &cfg->targets[r->target_first + i];

		/* modern weights are relative: show the share they amount to */
		sbuf_printf(
		    b, "%s%s %llu%%", i ? ", " : "", target_name(cfg, r, t, name, sizeof(name)),
		    total ? (unsigned long long)((t->weight * 100 + total / 2) / total) : 0ull);
	}
}

static void rule_json(const struct rm_cfg *cfg, uint32_t idx, uint32_t pos, const char *descr)
{
	const struct rm_cfg_rule *r = &cfg->rules[idx];
	const struct rm_cfg_service *s = &cfg->services[r->service];
	uint64_t total = weight_total(cfg, r);
	char buf[256];
	uint32_t i, j;

	json_start_object(cli.jw);
	json_string_field(cli.jw, "name", cfg_str(cfg, r->name_off));
	json_string_field(cli.jw, "namespace", cfg_str(cfg, r->ns_off));
	json_string_field(cli.jw, "kind", api_name(r->api));
	json_string_field(cli.jw, "service", cfg_str(cfg, s->host_off));
	json_uint_field(cli.jw, "position", pos);
	if (r->api == RM_API_ROUTERULE)
		json_int_field(cli.jw, "precedence", r->precedence);
	else
		json_uint_field(cli.jw, "http_index", r->http_index);
	json_name(cli.jw, "match");
	json_start_array(cli.jw); /* OR of groups; empty = every request */
	for (i = 0; i < r->match_count; i++) {
		const struct rm_cfg_match *m = &cfg->matches[r->match_first + i];

		json_start_object(cli.jw);
		json_name(cli.jw, "conditions");
		json_start_array(cli.jw);
		for (j = 0; j < m->cond_count && m->cond_first + j < cfg->n_conds; j++) {
			const struct rm_cfg_cond *c = &cfg->conds[m->cond_first + j];

			json_start_object(cli.jw);
			json_string_field(cli.jw, "field",
					  c->field == RM_MF_HEADER ? "header" : field_name(cfg, c));
			if (c->field == RM_MF_HEADER)
				json_string_field(cli.jw, "name", cfg_str(cfg, c->name_off));
			json_string_field(cli.jw, "op", cfg_op_name(c->op));
			json_string_field(cli.jw, "value", cfg_str(cfg, c->value_off));
			json_end_object(cli.jw);
		}
		json_end_array(cli.jw);
		if (m->src_label_count)
			json_string_field(cli.jw, "source_labels",
					  cfg_fmt_labels(cfg, m->src_label_first,
							 m->src_label_count, buf, sizeof(buf)));
		if (m->src_name_off)
			json_string_field(cli.jw, "source_name", cfg_str(cfg, m->src_name_off));
		if (m->src_ns_off)
			json_string_field(cli.jw, "source_namespace", cfg_str(cfg, m->src_ns_off));
		json_end_object(cli.jw);
	}
	json_end_array(cli.jw);
	json_name(cli.jw, "routes");
	json_start_array(cli.jw); /* empty = every endpoint of the service */
	for (i = 0; i < r->target_count; i++) {
		const struct rm_cfg_target *t = &cfg->targets[r->target_first + i];

		json_start_object(cli.jw);
		json_string_field(cli.jw, "service",
				  t->service < cfg->n_services
				      ? cfg_str(cfg, cfg->services[t->service].host_off)
				      : NULL);
		if (t->subset != RM_CFG_NONE && t->subset < cfg->n_subsets)
			json_string_field(cli.jw, "subset",
					  cfg_str(cfg, cfg->subsets[t->subset].name_off));
		else
			json_null_field(cli.jw, "subset");
		json_uint_field(cli.jw, "weight", t->weight);
		json_float_field(cli.jw, "share", total ? (double)t->weight / (double)total : 0.0);
		json_end_object(cli.jw);
	}
	json_end_array(cli.jw);
	json_uint_field(cli.jw, "timeout_ns", r->timeout_ns);
	json_uint_field(cli.jw, "retry_attempts", r->retry_attempts);
	json_string_field(cli.jw, "origin", cfg_str(cfg, r->origin_off));
	if (descr)
		json_string_field(cli.jw, "description", descr);
	json_end_object(cli.jw);
}

static int rule_list(int argc, char **argv)
{
	/* ORIGIN: the file and line, or the sync's k8s:KIND/NS/NAME */
	static const char *const hdr[] = {"NAME",  "KIND",   "SERVICE", "ORDER",
					  "MATCH", "ROUTES", "ORIGIN"};
	struct cli_table *t = NULL;
	struct rm_cfg *cfg;
	uint64_t gen;
	uint32_t si, k;
	int ret = 0;

	if (argc) {
		p_err("'rule list' takes no arguments");
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

		for (k = 0; k < s->rule_count && s->rule_first + k < cfg->n_rules; k++) {
			uint32_t idx = s->rule_first + k;
			const struct rm_cfg_rule *r = &cfg->rules[idx];
			char name[256], order[64], match[512], routes[512];
			struct sbuf mb = sbuf_make(match, sizeof(match));
			struct sbuf rb = sbuf_make(routes, sizeof(routes));

			if (!rule_ok(cfg, r))
				continue;
			if (cli.jw) {
				rule_json(cfg, idx, k + 1, NULL);
				continue;
			}
			snprintf(name, sizeof(name), "%s/%s", cfg_str(cfg, r->ns_off),
				 cfg_str(cfg, r->name_off));
			if (r->api == RM_API_ROUTERULE)
				snprintf(order, sizeof(order), "#%u prec %d", k + 1, r->precedence);
			else
				snprintf(order, sizeof(order), "#%u http[%u]", k + 1,
					 r->http_index);
			match_summary(cfg, r, &mb);
			route_summary(cfg, r, &rb);
			sbuf_text(&mb);
			sbuf_text(&rb);
			if (cli_table_rowf(t, name, api_name(r->api), cfg_str(cfg, s->name_off),
					   order, match, routes, cfg_str(cfg, r->origin_off))) {
				p_err("out of memory");
				ret = -1;
				goto out;
			}
		}
	}
	if (cli.jw)
		json_end_array(cli.jw);
	else if (cli_table_nrows(t))
		cli_table_print(t);
	else
		printf("no rules (generation %llu)\n", (unsigned long long)gen);
out:
	cli_table_free(t);
	free(cfg);
	return ret;
}

/* NAME, ns/NAME, or NAME namespace NS. */
static int parse_name(int argc, char **argv, const char *cmd, char *name, size_t nlen, char *ns,
		      size_t nslen, bool *have_ns)
{
	const char *slash;

	*have_ns = false;
	if (argc != 1 && !(argc == 3 && cli_is_prefix(argv[1], "namespace"))) {
		p_err("usage: %s rule %s NAME [namespace NS]", cli.bin, cmd);
		return -1;
	}
	slash = strchr(argv[0], '/');
	if (slash && argc == 1) {
		snprintf(ns, nslen, "%.*s", (int)(slash - argv[0]), argv[0]);
		snprintf(name, nlen, "%s", slash + 1);
		*have_ns = true;
	} else {
		snprintf(name, nlen, "%s", argv[0]);
		if (argc == 3) {
			snprintf(ns, nslen, "%s", argv[2]);
			*have_ns = true;
		}
	}
	if (!*name) {
		p_err("empty rule name");
		return -1;
	}
	return 0;
}

/* A VirtualService compiles to one rule per http[] entry, all with its name: `show`
 * prints every rule of that document, in evaluation order. */
static bool same_doc(const struct rm_cfg *cfg, uint32_t a, uint32_t b)
{
	const struct rm_cfg_rule *x = &cfg->rules[a], *y = &cfg->rules[b];

	return x->api == y->api && x->service == y->service &&
	       !strcmp(cfg_str(cfg, x->name_off), cfg_str(cfg, y->name_off)) &&
	       !strcmp(cfg_str(cfg, x->ns_off), cfg_str(cfg, y->ns_off));
}

static int rule_show(int argc, char **argv)
{
	char name[256], ns[256], *text = NULL;
	struct rm_cfg *cfg;
	uint64_t gen;
	bool have_ns, first = true;
	uint32_t i, first_rule;
	int idx, ret = 0;

	if (parse_name(argc, argv, "show", name, sizeof(name), ns, sizeof(ns), &have_ns))
		return -1;
	if (cli_cfg_load(&cfg, &gen))
		return -1;
	idx = gen ? cfg_rule_find(cfg, name, have_ns ? ns : NULL) : -ENOENT;
	if (idx == -EEXIST) {
		p_err("rule '%s' exists in several namespaces: say which with '%s rule show NS/%s'",
		      name, cli.bin, name);
		free(cfg);
		return -1;
	}
	if (idx < 0 || (uint32_t)idx >= cfg->n_rules || !rule_ok(cfg, &cfg->rules[idx])) {
		p_err("no rule '%s%s%s' at %s", have_ns ? ns : "", have_ns ? "/" : "", name,
		      cli.pin_dir);
		free(cfg);
		return -1;
	}
	first_rule = cfg->services[cfg->rules[idx].service].rule_first;
	if (cli.jw)
		json_start_array(cli.jw);
	for (i = (uint32_t)idx; i < cfg->n_rules && !ret; i++) {
		size_t len = 0;
		FILE *f;

		if (!same_doc(cfg, (uint32_t)idx, i) || !rule_ok(cfg, &cfg->rules[i]))
			continue;
		if (!cli.jw) {
			if (!first)
				printf("\n");
			ret = cfg_rule_describe(cfg, i, stdout);
			first = false;
			continue;
		}
		/* JSON: the structured rule plus the same description as text */
		f = open_memstream(&text, &len);
		ret = f ? cfg_rule_describe(cfg, i, f) : -ENOMEM;
		if (f)
			fclose(f);
		if (!ret)
			rule_json(cfg, i, i - first_rule + 1, text);
		free(text);
		text = NULL;
	}
	if (cli.jw)
		json_end_array(cli.jw);
	free(cfg);
	if (ret) {
		p_err("cannot describe rule '%s': %s", name, strerror(-ret));
		return -1;
	}
	return 0;
}

static int rule_delete(int argc, char **argv)
{
	char name[256], ns[256], err[512] = "";
	struct cfg_store store;
	uint64_t gen = 0;
	bool have_ns, changed = false;
	int ret;

	if (parse_name(argc, argv, "delete", name, sizeof(name), ns, sizeof(ns), &have_ns))
		return -1;
	ret = cfg_store_open(&store, cli.pin_dir, false, err, sizeof(err));
	if (ret == -ENOENT) {
		p_err("no configuration at %s: nothing applied yet", cli.pin_dir);
		return -1;
	}
	if (ret) {
		p_err("cannot open the configuration store at %s: %s", cli.pin_dir,
		      *err ? err : strerror(-ret));
		return -1;
	}
	ret = cfg_store_delete_rule(&store, cli.pin_dir, name, have_ns ? ns : NULL, &changed, &gen,
				    err, sizeof(err));
	cfg_store_close(&store);
	if (ret) {
		p_err("%s", *err ? err : strerror(-ret));
		return -1;
	}
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "deleted", name);
		if (have_ns)
			json_string_field(cli.jw, "namespace", ns);
		json_uint_field(cli.jw, "generation", gen);
		json_end_object(cli.jw);
	} else {
		printf("deleted rule %s%s%s (generation %llu)\n", have_ns ? ns : "",
		       have_ns ? "/" : "", name, (unsigned long long)gen);
	}
	return 0;
}

static int rule_help(int argc, char **argv)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "Usage: %1$s rule { list | help }\n"
		 "       %1$s rule show RULE\n"
		 "       %1$s rule delete RULE\n"
		 "\n"
		 "       RULE := { NAME | NS/NAME | NAME namespace NS }\n"
		 "       " HELP_SPEC_OPTIONS "\n"
		 "\n"
		 "       list shows each service's rules in evaluation order: the first\n"
		 "       whose MATCH holds takes the request.\n",
		 cli.bin);
	return cli_help_print(text);
}

static const struct cli_cmd cmds[] = {
    {"list", rule_list}, {"show", rule_show}, {"delete", rule_delete}, {"help", rule_help}, {0},
};

int do_rule(int argc, char **argv)
{
	return cli_cmd_select(cmds, argc, argv, rule_help, "rule command");
}
