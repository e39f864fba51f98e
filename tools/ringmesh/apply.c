/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh apply -f ...` and `ringmesh delete -f ...`: read the named files
 * (a directory means its *.yaml and *.yml files in name order, "-" means stdin),
 * parse all of them first, and only then hand the documents to the config store,
 * which merges, compiles and flips halves under its lock. Any parse or compile
 * error stops before the store is touched, so the running configuration stays.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <bpf/bpf.h>

#include "ringmesh/abi.h"
#include "ringmesh/cfg.h"
#include "ringmesh/stats.h"
#include "common/cfg.h"
#include "common/cfg_ir.h"
#include "common/util.h"
#include "common/pin.h"
#include "cli.h"

/* Bigger than the store can hold anyway (RM_CFG_SRC_SIZE): only a guard against
 * `apply -f /dev/zero` reading forever. */
#define APPLY_MAX_FILE (16u << 20)

struct file_list {
	char **v;
	size_t n, cap;
};

static int list_add(struct file_list *l, const char *path)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **p = realloc(l->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n] = strdup(path);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static void list_free(struct file_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static bool yaml_name(const char *n)
{
	size_t len = strlen(n);

	if (n[0] == '.')
		return false; /* editor swap files, .#locks */
	return (len > 5 && !strcmp(n + len - 5, ".yaml")) ||
	       (len > 4 && !strcmp(n + len - 4, ".yml"));
}

static int yaml_filter(const struct dirent *de)
{
	return yaml_name(de->d_name);
}

/* Expand one -f argument into files. */
static int expand_arg(struct file_list *l, const char *arg)
{
	struct dirent **ents = NULL;
	struct stat st;
	int n, i, added = 0, ret = 0;

	if (!strcmp(arg, "-"))
		return list_add(l, "-") ? (p_err("out of memory"), -1) : 0;
	if (stat(arg, &st)) {
		p_err("%s: %s", arg, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return list_add(l, arg) ? (p_err("out of memory"), -1) : 0;
	n = scandir(arg, &ents, yaml_filter, alphasort);
	if (n < 0) {
		p_err("%s: %s", arg, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		char path[4096];

		if (!ret) {
			snprintf(path, sizeof(path), "%s%s%s", arg,
				 arg[strlen(arg) - 1] == '/' ? "" : "/", ents[i]->d_name);
			/* subdirectories named x.yaml are not files: skip, do not recurse */
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				if (list_add(l, path)) {
					p_err("out of memory");
					ret = -1;
				}
				added++;
			}
		}
		free(ents[i]);
	}
	free(ents);
	if (!ret && !added) {
		p_err("%s: no *.yaml or *.yml files in this directory", arg);
		ret = -1;
	}
	return ret;
}

static int read_all(const char *path, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = NULL;
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	int ret = 0;

	if (fd < 0) {
		p_err("%s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(cap + 1);
	while (buf) {
		ssize_t r;

		if (n == cap) {
			char *p;

			if (cap >= APPLY_MAX_FILE) {
				p_err("%s: larger than %u MiB", path, APPLY_MAX_FILE >> 20);
				ret = -1;
				break;
			}
			cap *= 2;
			p = realloc(buf, cap + 1);
			if (!p) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			p_err("%s: %s", path, strerror(errno));
			ret = -1;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (!buf) {
		p_err("%s: out of memory", path);
		return -1;
	}
	if (ret) {
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Parse the -f arguments of argv into docs, counting the documents of kinds
 * ringmesh does not consume in skipped. The first invalid file stops us: its
 * error is what the user has to fix, and nothing has been written yet. */
/* --domain given: the store takes it (else its own is checked again under the lock) */
static bool set_domain;

/* The cluster domain to resolve short names in before anything is parsed: --domain,
 * else the one the stored configuration was resolved in. */
static int domain_for_parse(const char *want)
{
	char err[256] = "", stored[RM_CFG_DOMAIN_LEN];

	set_domain = want != NULL;
	if (want) {
		if (cfg_domain_check(want, err, sizeof(err))) {
			p_err("%s", err);
			return -1;
		}
		return cfg_set_domain(want);
	}
	/* nothing stored (or it fails again where it matters): cluster.local */
	cfg_store_domain_at(cli.pin_dir, stored);
	return cfg_set_domain(stored);
}

static int parse_files(int argc, char **argv, const char *cmd, struct cfg_docs *docs,
		       struct cfg_skipped *skipped)
{
	struct file_list files = {0};
	const char *domain = NULL;
	bool any_file = false;
	size_t i;
	int ret = 0;

	if (argc < 1) {
		p_err("'%s' needs -f FILE|DIR|-; try '%s %s help'", cmd, cli.bin, cmd);
		return -1;
	}
	while (argc > 0 && !ret) {
		if (!strcmp(argv[0], "--domain")) {
			if (argc < 2) {
				p_err("'%s': --domain needs a cluster domain", cmd);
				ret = -1;
				break;
			}
			domain = argv[1];
			argc -= 2;
			argv += 2;
		} else if (strcmp(argv[0], "-f") && strcmp(argv[0], "--filename") &&
			   strcmp(argv[0], "--file")) {
			p_err("'%s': unexpected argument '%s'; expected -f FILE|DIR|-", cmd,
			      argv[0]);
			ret = -1;
		} else if (argc < 2) {
			p_err("'%s': -f needs a file, a directory or -", cmd);
			ret = -1;
		} else {
			ret = expand_arg(&files, argv[1]);
			any_file = true;
			argc -= 2;
			argv += 2;
		}
	}
	if (!ret && !any_file) {
		p_err("'%s' needs -f FILE|DIR|-; try '%s %s help'", cmd, cli.bin, cmd);
		ret = -1;
	}
	if (!ret)
		ret = domain_for_parse(domain);
	for (i = 0; i < files.n && !ret; i++) {
		char err[512] = "";
		char *text;
		size_t len;

		if (read_all(files.v[i], &text, &len)) {
			ret = -1;
			break;
		}
		if (cfg_docs_parse_counted(docs, skipped, files.v[i], text, len, err,
					   sizeof(err))) {
			/* err is "FILE:LINE:COL: message" */
			p_err("%s", *err ? err : "invalid configuration");
			ret = -1;
		}
		free(text);
	}
	list_free(&files);
	return ret;
}

static void count_kinds(const struct cfg_docs *docs, size_t counts[CFG_K_WORKLOADENTRY + 1])
{
	size_t i;

	memset(counts, 0, sizeof(size_t) * (CFG_K_WORKLOADENTRY + 1));
	for (i = 0; i < docs->n; i++)
		if (docs->v[i].kind >= CFG_K_ROUTERULE && docs->v[i].kind <= CFG_K_WORKLOADENTRY)
			counts[docs->v[i].kind]++;
}

static const char *plural(size_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

#define LIVE_WAIT_NS (2000ull * 1000000ull)

/*
 * An apply is done when the data plane runs it, not when the maps hold it: with a
 * live ringmeshd at the pin dir, wait until it reports (rm_stats header) that it
 * serves generation gen, so a script's next request already sees the new rules.
 * 1 live (*ms set), 0 no live daemon here (it loads the config when it starts),
 * -ETIMEDOUT when the daemon did not take it (its log says why).
 */
static int wait_live(uint64_t gen, double *ms)
{
	struct cli_map pm, sm;
	struct rm_proxy_cfg p;
	struct rm_stats_hdr *hdr;
	uint32_t key = 0;
	uint64_t t0 = mono_ns(), now;
	void *buf;
	int r = 0;

	if (cli_pin_open(PIN_PROXY, &pm))
		return 0;
	if (bpf_map_lookup_elem(pm.fd, &key, &p))
		p.heartbeat_ns = 0;
	cli_map_close(&pm);
	if (!p.heartbeat_ns || t0 <= p.heartbeat_ns || t0 - p.heartbeat_ns >= p.heartbeat_max_ns)
		return 0;
	if (cli_pin_open(PIN_STATS, &sm))
		return 0;
	buf = calloc(1, cli_map_value_size(&sm) > sizeof(*hdr) ? cli_map_value_size(&sm)
							       : sizeof(*hdr));
	if (!buf) {
		cli_map_close(&sm);
		return 0;
	}
	hdr = buf;
	for (;;) {
		if (!bpf_map_lookup_elem(sm.fd, &key, buf) && hdr->magic == RM_STATS_MAGIC &&
		    hdr->generation >= gen) {
			*ms = (mono_ns() - t0) / 1e6;
			r = 1;
			break;
		}
		now = mono_ns();
		if (now - t0 > LIVE_WAIT_NS) {
			r = -ETIMEDOUT;
			break;
		}
		usleep(2000);
	}
	free(buf);
	cli_map_close(&sm);
	return r;
}

/* "skipped": {"documents": N, "kinds": [{"kind", "istio", "note"?, "count"}, ...]} */
static void json_skipped(const struct cfg_skipped *sk)
{
	json_name(cli.jw, "skipped");
	json_start_object(cli.jw);
	json_uint_field(cli.jw, "documents", sk->total);
	json_name(cli.jw, "kinds");
	json_start_array(cli.jw);
	for (size_t i = 0; i < sk->n; i++) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "kind", sk->v[i].kind);
		json_bool_field(cli.jw, "istio", sk->v[i].istio);
		if (sk->v[i].note)
			json_string_field(cli.jw, "note", sk->v[i].note);
		json_uint_field(cli.jw, "count", sk->v[i].count);
		json_end_object(cli.jw);
	}
	json_end_array(cli.jw);
	json_end_object(cli.jw);
}

/* One line, so a mixed file (Services, Deployments and rules) says what it left:
 * "skipped 9 documents of kinds ringmesh does not consume: 4 Service, 5 Deployment" */
static void print_skipped(const struct cfg_skipped *sk)
{
	char buf[1024];

	if (!sk->total || cli.jw)
		return;
	printf("skipped %u %s of kinds ringmesh does not consume: %s\n", sk->total,
	       plural(sk->total, "document", "documents"), cfg_skipped_fmt(sk, buf, sizeof(buf)));
}

static void print_result(const char *verb, size_t ndocs, const size_t *kinds,
			 const struct cfg_skipped *sk, bool changed, uint64_t gen, int live,
			 double live_ms)
{
	struct rm_cfg *cfg = NULL;
	uint64_t g2 = 0;
	int k;

	/* totals of the configuration now live, for the summary; the update is done,
	 * so failing to read them back only shortens the line */
	if (cli_cfg_read(&cfg, &g2, NULL, 0))
		cfg = NULL;
	if (cli.jw) {
		json_start_object(cli.jw);
		json_uint_field(cli.jw, verb, ndocs);
		json_name(cli.jw, "kinds");
		json_start_object(cli.jw);
		for (k = CFG_K_ROUTERULE; k <= CFG_K_WORKLOADENTRY; k++)
			if (kinds[k])
				json_uint_field(cli.jw, cfg_kind_name(k), kinds[k]);
		json_end_object(cli.jw);
		json_skipped(sk);
		json_bool_field(cli.jw, "changed", changed);
		json_uint_field(cli.jw, "generation", gen);
		if (live > 0)
			json_float_field(cli.jw, "live_ms", live_ms);
		else
			json_null_field(cli.jw, "live_ms");
		if (cfg) {
			json_uint_field(cli.jw, "rules", cfg->n_rules);
			json_uint_field(cli.jw, "services", cfg->n_services);
			json_uint_field(cli.jw, "subsets", cfg->n_subsets);
			json_uint_field(cli.jw, "endpoints", cfg->n_endpoints);
		}
		json_end_object(cli.jw);
		free(cfg);
		return;
	}
	print_skipped(sk);
	if (!changed) {
		printf("unchanged (generation %llu)\n", (unsigned long long)gen);
		free(cfg);
		return;
	}
	printf("%s %zu %s", verb, ndocs, plural(ndocs, "document", "documents"));
	if (cfg)
		printf(": %u %s, %u %s, %u %s", cfg->n_rules, plural(cfg->n_rules, "rule", "rules"),
		       cfg->n_services, plural(cfg->n_services, "service", "services"),
		       cfg->n_endpoints, plural(cfg->n_endpoints, "endpoint", "endpoints"));
	printf(" (generation %llu", (unsigned long long)gen);
	if (live > 0)
		printf(", live in %.0f ms", live_ms);
	else
		printf("; no live ringmeshd at %s: it loads this when it starts", cli.pin_dir);
	printf(")\n");
	free(cfg);
}

/* The parsed documents to the store (docs is consumed), and the summary. */
static int update(enum cfg_op op, const char *cmd, struct cfg_docs *docs,
		  const struct cfg_skipped *skipped)
{
	struct cfg_store store;
	size_t kinds[CFG_K_WORKLOADENTRY + 1], ndocs;
	char err[512] = "";
	uint64_t gen = 0;
	bool changed = false;
	double live_ms = 0;
	int ret, live = 0;

	count_kinds(docs, kinds);
	ndocs = docs->n;
	if (!docs->n && skipped->total) {
		/* only Kubernetes objects (or the like): nothing of ours, which is no error
		 * for a directory applied wholesale; the store is not touched */
		if (cli.jw) {
			json_start_object(cli.jw);
			json_uint_field(cli.jw, op == CFG_OP_DELETE ? "deleted" : "applied", 0);
			json_name(cli.jw, "kinds");
			json_start_object(cli.jw);
			json_end_object(cli.jw);
			json_skipped(skipped);
			json_bool_field(cli.jw, "changed", false);
			json_null_field(cli.jw, "generation");
			json_null_field(cli.jw, "live_ms");
			json_end_object(cli.jw);
		} else {
			print_skipped(skipped);
			printf("nothing to %s: no document of a kind ringmesh reads\n", cmd);
		}
		return 0;
	}
	if (!docs->n) {
		p_err("'%s': the files hold no documents", cmd);
		return -1;
	}
	/* apply creates the maps when no daemon ran yet; delete needs something to delete */
	ret = cfg_store_open(&store, cli.pin_dir, op == CFG_OP_APPLY, err, sizeof(err));
	if (ret == -ENOENT) {
		p_err("nothing applied at %s: no configuration to delete from", cli.pin_dir);
		return -1;
	}
	if (ret) {
		p_err("cannot open the configuration store at %s: %s", cli.pin_dir,
		      *err ? err : strerror(-ret));
		return -1;
	}
	store.set_domain = set_domain;
	ret = cfg_store_update(&store, cli.pin_dir, op, docs, &changed, &gen, err, sizeof(err));
	cfg_store_close(&store);
	cfg_docs_free(docs);
	if (ret) {
		p_err("%s", *err ? err : strerror(-ret));
		return -1;
	}
	if (changed) {
		live = wait_live(gen, &live_ms);
		if (live == -ETIMEDOUT) {
			p_err(
			    "generation %llu is stored at %s, but ringmeshd has not loaded it "
			    "after "
			    "2 s: see its log (a configuration its router rejects is logged there)",
			    (unsigned long long)gen, cli.pin_dir);
			return -1;
		}
	}
	print_result(op == CFG_OP_DELETE ? "deleted" : "applied", ndocs, kinds, skipped, changed,
		     gen, live, live_ms);
	return 0;
}

static int run_update(enum cfg_op op, int argc, char **argv, const char *cmd)
{
	struct cfg_docs docs = {0};
	struct cfg_skipped skipped = {0};
	int ret;

	if (argc >= 1 && cli_is_prefix(argv[0], "help") && strcmp(argv[0], "-")) {
		char text[2048];

		snprintf(
		    text, sizeof(text),
		    "Usage: %1$s %2$s FILES [--domain DOMAIN]\n"
		    "       %1$s %3$s FILES [--domain DOMAIN]\n"
		    "\n"
		    "       " HELP_SPEC_FILES "\n"
		    "       " HELP_SPEC_OPTIONS "\n"
		    "\n"
		    "       apply merges the documents into the applied set (same kind, namespace\n"
		    "       and name replaces), recompiles and publishes it; delete removes them.\n"
		    "       A directory means its *.yaml and *.yml files in name order; - is "
		    "stdin.\n"
		    "       Any error leaves the running configuration untouched. With a live\n"
		    "       ringmeshd at the pin dir, waits (up to 2 s) until it serves the new\n"
		    "       generation, so the next request already sees the new rules.\n"
		    "       Documents of kinds ringmesh does not consume (Kubernetes objects kept\n"
		    "       beside the rules, Istio's Gateway, Sidecar, EnvoyFilter, ...) are\n"
		    "       skipped and counted on one line; empty documents are ignored.\n"
		    "       A short host (reviews in a rule of namespace ns) means\n"
		    "       reviews.ns.svc.DOMAIN: the cluster domain the configuration was\n"
		    "       resolved in (cluster.local until one is given); --domain changes it\n"
		    "       and resolves every applied document in the new one.\n",
		    cli.bin, cmd, op == CFG_OP_DELETE ? "apply" : "delete");
		return cli_help_print(text);
	}
	ret = parse_files(argc, argv, cmd, &docs, &skipped);
	if (!ret)
		ret = update(op, cmd, &docs, &skipped);
	cfg_docs_free(&docs);
	cfg_skipped_free(&skipped);
	return ret;
}

int do_apply(int argc, char **argv)
{
	return run_update(CFG_OP_APPLY, argc, argv, "apply");
}

int do_delete(int argc, char **argv)
{
	return run_update(CFG_OP_DELETE, argc, argv, "delete");
}
