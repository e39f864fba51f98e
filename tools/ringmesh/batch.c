/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh batch file FILE`: run many commands from one file, as bpftool's batch does.
 * One command per line (OBJECT COMMAND ARGS, without the program name); `#` starts a
 * comment outside quotes; arguments are split at blanks, and 'single' or "double"
 * quotes (with \" and \\ inside double quotes, \ anywhere else) keep blanks in one.
 * FILE `-` reads stdin. The run stops at the first command that fails or line that
 * does not parse, and its error names FILE:LINE. With -j every command prints its own
 * JSON value (the failing one {"error": "FILE:LINE: ..."}), so the output is one
 * value per command, read as a stream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BATCH_MAX_ARGS 128

/* Split line in place into argv; 0, or -EINVAL with *why set. */
static int split(char *line, char **argv, int *argc, const char **why)
{
	char *r = line, *w = line;
	int n = 0;

	for (;;) {
		char q = 0;
		bool have = false;

		while (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n')
			r++;
		if (!*r || *r == '#')
			break;
		if (n == BATCH_MAX_ARGS) {
			*why = "too many arguments";
			return -EINVAL;
		}
		argv[n] = w;
		while (*r) {
			char c = *r;

			if (q) {
				if (c == q) {
					q = 0;
					r++;
					continue;
				}
				if (q == '"' && c == '\\' && (r[1] == '"' || r[1] == '\\'))
					c = *++r;
			} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				break;
			} else if (c == '#' && !have) {
				break; /* a comment after blanks */
			} else if (c == '\'' || c == '"') {
				q = c;
				have = true;
				r++;
				continue;
			} else if (c == '\\' && r[1]) {
				c = *++r;
			}
			*w++ = c;
			have = true;
			r++;
		}
		if (q) {
			*why = q == '"' ? "unterminated \" quote" : "unterminated ' quote";
			return -EINVAL;
		}
		if (*r)
			r++;
		*w++ = '\0';
		n++;
	}
	argv[n] = NULL;
	*argc = n;
	return 0;
}

static int batch_file(const char *path)
{
	char *argv[BATCH_MAX_ARGS + 1], *line = NULL, where[4200];
	const char *name = strcmp(path, "-") ? path : "stdin", *why = NULL;
	size_t cap = 0;
	int argc, lineno = 0, ncmd = 0, ret = 0;
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;

	if (!f) {
		p_err("%s: %s", path, strerror(errno));
		return -1;
	}
	/* each command gets its own JSON value: end the (empty) one main() opened */
	if (cli.json)
		cli_json_finish();
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d: ", name, lineno);
		if (split(line, argv, &argc, &why)) {
			cli.err_where = where;
			p_err("%s", why);
			ret = -1;
			break;
		}
		if (!argc)
			continue;
		if (cli_is_prefix(argv[0], "batch") && strlen(argv[0]) > 1) {
			cli.err_where = where;
			p_err("'batch' cannot run inside a batch");
			ret = -1;
			break;
		}
		cli.err_where = where;
		if (cli.json && cli_json_start()) {
			p_err("out of memory");
			ret = -1;
			break;
		}
		ret = cli.run(argc, argv);
		if (cli.json && cli_json_finish())
			ret = -1;
		cli.err_where = NULL;
		if (ret)
			break;
		ncmd++;
	}
	if (!ret && ferror(f)) {
		p_err("%s: read error after line %d", name, lineno);
		ret = -1;
	}
	cli.err_where = NULL;
	if (f != stdin)
		fclose(f);
	free(line);
	if (!ret)
		p_info("processed %d command%s", ncmd, ncmd == 1 ? "" : "s");
	else if (!cli.json)
		fprintf(stderr, "processed %d command%s before %s:%d\n", ncmd, ncmd == 1 ? "" : "s",
			name, lineno);
	/* main() finishes a JSON run: give it an empty one */
	if (cli.json && cli_json_start())
		return -1;
	return ret ? -1 : 0;
}

static int batch_help(int argc, char **argv)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "Usage: %1$s " HELP_SPEC_BATCH "\n"
		 "       %1$s batch help\n"
		 "\n"
		 "       " HELP_SPEC_OPTIONS "\n"
		 "\n"
		 "       One command per line (OBJECT COMMAND ARGS); # comments; 'single' or\n"
		 "       \"double\" quotes keep blanks in an argument. Stops at the first error,\n"
		 "       naming the line. With -j each command prints its own JSON value.\n",
		 cli.bin);
	return cli_help_print(text);
}

static int batch_file_cmd(int argc, char **argv)
{
	if (argc != 1) {
		p_err("'batch file' takes one FILE (or - for stdin), %d given", argc);
		return -1;
	}
	return batch_file(argv[0]);
}

static const struct cli_cmd cmds[] = {
    {"file", batch_file_cmd},
    {"help", batch_help},
    {0},
};

int do_batch(int argc, char **argv)
{
	return cli_cmd_select(cmds, argc, argv, batch_help, "batch command");
}
