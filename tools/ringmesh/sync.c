/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh sync`: rules, services, endpoints and pod identity straight from the
 * Kubernetes API server, written through the same compile-and-store path as
 * `apply` (user/k8s/k8s_sync.c does the work); `ringmesh sync status` reads the
 * status file the running sync keeps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "k8s/k8s_sync.h"
#include "cli.h"

static int sync_help(int argc, char **argv)
{
	char text[3072];

	snprintf(
	    text, sizeof(text),
	    "Usage: %1$s [--pin-dir DIR] sync [--kubeconfig FILE] [--node-name NODE]\n"
	    "                   [--domain DOMAIN] [--cgroup DIR] [--status-file FILE] [-v]\n"
	    "       %1$s sync status [--status-file FILE]\n"
	    "       %1$s sync help\n"
	    "\n"
	    "       " HELP_SPEC_OPTIONS "\n"
	    "\n"
	    "       Watches the API server (in-cluster service account, or --kubeconfig) for\n"
	    "       Services, EndpointSlices, Pods and Istio's VirtualService, DestinationRule,\n"
	    "       ServiceEntry, WorkloadEntry, RouteRule and DestinationPolicy, and publishes\n"
	    "       them with the applied files' rules, within 100 ms of a change. Runs until\n"
	    "       SIGTERM or SIGINT; API errors are retried, the last rules stay.\n"
	    "\n"
	    "       --node-name NODE  this node ($NODE_NAME): its pods give pod identity\n"
	    "       --cgroup DIR      the pods' parent cgroup (ringmeshd's --cgroup)\n"
	    "       --domain DOMAIN   cluster domain of Service hosts and of the rules'\n"
	    "                         short names (cluster.local)\n"
	    "       --status-file F   default /run/ringmesh/sync-<pin dir>.json\n",
	    cli.bin);
	return cli_help_print(text);
}

static const char *opt_val(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n))
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] || *i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

struct sync_args {
	const char *kubeconfig, *node, *domain, *cgroup, *status;
	bool verbose;
	char status_buf[512];
};

static int parse(int argc, char **argv, struct sync_args *a)
{
	const char *v;

	a->node = getenv("NODE_NAME");
	a->domain = "cluster.local";
	for (int i = 0; i < argc; i++) {
		if ((v = opt_val(argc, argv, &i, "--kubeconfig")))
			a->kubeconfig = v;
		else if ((v = opt_val(argc, argv, &i, "--node-name")))
			a->node = v;
		else if ((v = opt_val(argc, argv, &i, "--domain")))
			a->domain = v;
		else if ((v = opt_val(argc, argv, &i, "--cgroup")))
			a->cgroup = v;
		else if ((v = opt_val(argc, argv, &i, "--status-file")))
			a->status = v;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			a->verbose = true;
		else {
			p_err("'sync': unknown or incomplete argument '%s'; try '%s sync help'",
			      argv[i], cli.bin);
			return -1;
		}
	}
	if (!a->status) {
		k8s_sync_status_path(cli.pin_dir, a->status_buf, sizeof(a->status_buf));
		a->status = a->status_buf;
	}
	return 0;
}

static int sync_status(int argc, char **argv)
{
	struct sync_args a = {0};
	char err[512];
	int r;

	if (parse(argc, argv, &a))
		return -1;
	r = k8s_sync_status_show(a.status, cli.jw, stdout, false, realtime_ns(), err, sizeof(err));
	if (r) {
		p_err("%s", err);
		return -1;
	}
	return 0;
}

static int sync_run(int argc, char **argv)
{
	struct sync_args a = {0};
	struct k8s_sync_opts o = {0};
	struct k8s_sync *s;
	struct k8s_conf *conf;
	char err[1024];
	int r;

	if (parse(argc, argv, &a))
		return -1;
	if (cli.jw) {
		p_err("'sync' runs until stopped: -j applies to 'sync status'");
		return -1;
	}
	if (a.cgroup && !(a.node && *a.node)) {
		p_err("--cgroup needs --node-name (or $NODE_NAME): pod identity is for this "
		      "node's pods");
		return -1;
	}
	conf = k8s_sync_conf_new(a.kubeconfig, err, sizeof(err));
	if (!conf) {
		p_err("%s", err);
		return -1;
	}
	o.pin_dir = cli.pin_dir;
	o.node = a.node;
	o.domain = a.domain;
	o.cgroup_dir = a.cgroup;
	o.status_file = a.status;
	o.verbose = a.verbose;
	s = k8s_sync_new(&o, err, sizeof(err));
	if (!s) {
		k8s_sync_conf_free(conf);
		p_err("%s", err);
		return -1;
	}
	fprintf(stderr, "sync: pin dir %s, node %s, status %s\n", cli.pin_dir,
		a.node && *a.node ? a.node : "(none: no pod identity)", a.status);
	r = k8s_sync_run(s, conf, err, sizeof(err));
	k8s_sync_free(s);
	k8s_sync_conf_free(conf);
	if (r) {
		p_err("%s", err);
		return -1;
	}
	return 0;
}

int do_sync(int argc, char **argv)
{
	if (argc >= 1 && cli_is_prefix(argv[0], "help"))
		return sync_help(argc - 1, argv + 1);
	if (argc >= 1 && cli_is_prefix(argv[0], "status"))
		return sync_status(argc - 1, argv + 1);
	return sync_run(argc, argv);
}
