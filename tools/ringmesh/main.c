/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ringmesh: the admin CLI. Loads traffic rules into the pinned maps and reads
 * state and metrics back out of them; it never talks to ringmeshd directly.
 * Grammar and conventions follow bpftool: OBJECT COMMAND [ARGS], prefixes,
 * -j/-p everywhere, errors through p_err().
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmesh/abi.h"
#include "cli.h"

static int do_help(int argc, char **argv)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "Usage: %1$s [OPTIONS] OBJECT { COMMAND | help }\n"
		 "       %1$s help\n"
		 "       %1$s version\n"
		 "\n"
		 "       OBJECT := { apply | delete | rule | service | endpoint | map | status |\n"
		 "                   stats | breaker | batch | workload | sync }\n"
		 "       " HELP_SPEC_OPTIONS "\n"
		 "\n"
		 "       %1$s apply -f FILE      load Istio YAML (RouteRule, VirtualService, ...)\n"
		 "       %1$s delete -f FILE     remove the documents FILE names\n"
		 "       %1$s rule { list | show | delete }\n"
		 "       %1$s service list\n"
		 "       %1$s endpoint list\n"
		 "       %1$s map { list | dump }\n"
		 "       %1$s status             is a live ringmeshd attached at the pin dir?\n"
		 "       %1$s stats              data-path and request counters\n"
		 "       %1$s breaker show       circuit breaker and outlier ejection state\n"
		 "       %1$s batch file FILE    one command per line (- for stdin)\n"
		 "       %1$s workload { list | add | delete }  pod identities by cgroup\n"
		 "       %1$s sync [status]      follow the Kubernetes API server\n"
		 "\n"
		 "       Objects and commands may be abbreviated (%1$s ru li). The pin dir\n"
		 "       defaults to " RM_PIN_DIR_DEFAULT ".\n",
		 cli.bin);
	return cli_help_print(text);
}

static int do_version(int argc, char **argv)
{
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "version", RM_CLI_VERSION);
		json_end_object(cli.jw);
	} else {
		printf("%s v%s\n", cli.bin, RM_CLI_VERSION);
	}
	return 0;
}

static const struct cli_cmd objects[] = {
    {"help", do_help},	       {"apply", do_apply},	{"delete", do_delete},
    {"rule", do_rule},	       {"service", do_service}, {"endpoint", do_endpoint},
    {"map", do_map},	       {"status", do_status},	{"stats", do_stats},
    {"breaker", do_breaker},   {"version", do_version}, {"batch", do_batch},
    {"workload", do_workload}, {"sync", do_sync},	{0},
};

static int run_command(int argc, char **argv)
{
	return cli_cmd_select(objects, argc, argv, do_help, "object");
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
	    {"pin-dir", required_argument, NULL, 'P'}, {"json", no_argument, NULL, 'j'},
	    {"pretty", no_argument, NULL, 'p'},	       {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},       {0},
	};
	bool want_help = false, want_version = false;
	const char *slash = strrchr(argv[0], '/');
	int opt, ret;

	cli.bin = slash ? slash + 1 : argv[0];
	cli.run = run_command;
	if (getenv("RINGMESH_PIN_DIR") && *getenv("RINGMESH_PIN_DIR"))
		cli.pin_dir = getenv("RINGMESH_PIN_DIR");
	opterr = 0;
	/* '+': options end at the object, so "apply -f x" keeps its -f */
	while ((opt = getopt_long(argc, argv, "+jphV", long_opts, NULL)) >= 0) {
		switch (opt) {
		case 'P':
			cli.pin_dir = optarg;
			break;
		case 'j':
			cli.json = true;
			break;
		case 'p':
			cli.json = true;
			cli.pretty = true;
			break;
		case 'h':
			want_help = true;
			break;
		case 'V':
			want_version = true;
			break;
		default:
			if (optopt == 'P' ||
			    (optind > 0 && strcmp(argv[optind - 1], "--pin-dir") == 0))
				p_err("option --pin-dir needs a directory");
			else if (optopt)
				p_err("unknown option '-%c'; try '%s help'", optopt, cli.bin);
			else
				p_err("unknown option '%s'; try '%s help'", argv[optind - 1],
				      cli.bin);
			return 255;
		}
	}
	/* Output options may also follow the command, as with bpftool ("breaker show -j"):
	 * they are never a valid argument of any command, so take them out here. */
	{
		int i, n = optind;

		for (i = optind; i < argc; i++) {
			if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")) {
				cli.json = true;
			} else if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--pretty")) {
				cli.json = true;
				cli.pretty = true;
			} else {
				argv[n++] = argv[i];
			}
		}
		argc = n;
	}
	if (cli.json && cli_json_start()) {
		p_err("out of memory");
		return 255;
	}
	if (!*cli.pin_dir) {
		p_err("--pin-dir must not be empty");
		ret = -1;
	} else if (want_version) {
		ret = do_version(0, NULL);
	} else if (want_help) {
		ret = do_help(0, NULL);
	} else {
		argc -= optind;
		argv += optind;
		if (argc < 1) {
			do_help(0, NULL);
			p_err("no OBJECT given");
			ret = -1;
		} else {
			ret = run_command(argc, argv);
		}
	}
	if (cli_json_finish())
		ret = -1;
	return ret ? 255 : 0;
}
