/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* ringmesh CLI: options, errors, dispatch, tables and pinned-map access (see cli.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ringmesh/abi.h"
#include "ringmesh/cfg.h"
#include "common/cfg.h"
#include "common/pin.h"
#include "cli.h"

struct cli_opts cli = {
    .bin = "ringmesh",
    .pin_dir = RM_PIN_DIR_DEFAULT,
};

void p_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (cli.json) {
		char *msg = NULL;

		if (vasprintf(&msg, fmt, ap) < 0)
			msg = NULL;
		if (cli.jw) {
			/* deferred: cli_json_finish() prints it instead of the partial output */
			if (!cli.err_msg)
				cli.err_msg = msg ? msg : strdup("out of memory");
			else
				free(msg);
		} else {
			struct json_writer *w = json_new(stdout);
			char *full = NULL;

			if (cli.err_where && msg && asprintf(&full, "%s%s", cli.err_where, msg) < 0)
				full = NULL;
			if (w) {
				json_start_object(w);
				json_string_field(w, "error",
						  full	? full
						  : msg ? msg
							: "out of memory");
				json_end_object(w);
				json_destroy(&w);
			}
			free(full);
			free(msg);
		}
	} else {
		fprintf(stderr, "Error: %s", cli.err_where ? cli.err_where : "");
		vfprintf(stderr, fmt, ap);
		fprintf(stderr, "\n");
	}
	va_end(ap);
}

int cli_json_start(void)
{
	cli.json_buf = open_memstream(&cli.json_text, &cli.json_len);
	if (!cli.json_buf)
		return -ENOMEM;
	cli.jw = json_new(cli.json_buf);
	if (!cli.jw) {
		fclose(cli.json_buf);
		free(cli.json_text);
		cli.json_buf = NULL;
		cli.json_text = NULL;
		return -ENOMEM;
	}
	json_pretty(cli.jw, cli.pretty);
	return 0;
}

int cli_json_finish(void)
{
	int failed = cli.err_msg != NULL;

	if (!cli.jw)
		return 0;
	json_destroy(&cli.jw);
	fclose(cli.json_buf);
	cli.json_buf = NULL;
	if (cli.err_msg) {
		/* whatever the command had written is dropped: stdout is the error alone */
		char *msg = cli.err_msg;

		cli.err_msg = NULL;
		p_err("%s", msg);
		free(msg);
	} else if (cli.json_len) {
		fwrite(cli.json_text, 1, cli.json_len, stdout);
	}
	free(cli.json_text);
	cli.json_text = NULL;
	fflush(stdout);
	return failed ? -1 : 0;
}

void p_info(const char *fmt, ...)
{
	va_list ap;

	if (cli.json)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

bool cli_is_prefix(const char *arg, const char *word)
{
	size_t n = strlen(arg);

	return n > 0 && strncmp(arg, word, n) == 0;
}

int cli_cmd_select(const struct cli_cmd *cmds, int argc, char **argv,
		   int (*help_fn)(int argc, char **argv), const char *what)
{
	const struct cli_cmd *hit = NULL;
	char names[256] = "";
	int i, nhits = 0;

	if (argc < 1)
		return help_fn ? help_fn(argc, argv) : -1;
	for (i = 0; cmds[i].name; i++) {
		if (strcmp(argv[0], cmds[i].name) == 0) {
			/* an exact name wins even when it also abbreviates a longer one */
			hit = &cmds[i];
			nhits = 1;
			break;
		}
		if (cli_is_prefix(argv[0], cmds[i].name)) {
			if (nhits++)
				strncat(names, ", ", sizeof(names) - strlen(names) - 1);
			strncat(names, cmds[i].name, sizeof(names) - strlen(names) - 1);
			hit = &cmds[i];
		}
	}
	if (nhits == 1)
		return hit->func(argc - 1, argv + 1);
	if (nhits > 1)
		p_err("ambiguous %s '%s': could be %s", what, argv[0], names);
	else
		p_err("unknown %s '%s'; try '%s%s help'", what, argv[0], cli.bin,
		      strcmp(what, "object") == 0 ? "" : " OBJECT");
	return -1;
}

int cli_help_print(const char *text)
{
	if (cli.jw) {
		/* like bpftool: help has no JSON form, but stdout must stay valid JSON */
		json_null(cli.jw);
		return 0;
	}
	fputs(text, stderr);
	return 0;
}

/* ---- tables ---- */

struct cli_table {
	int ncols;
	size_t nrows, cap;
	char **cells; /* (nrows + 1) x ncols, row 0 = headers */
};

struct cli_table *cli_table_new(int ncols, const char *const *headers)
{
	struct cli_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ncols = ncols;
	if (cli_table_row(t, headers)) {
		free(t);
		return NULL;
	}
	t->nrows = 0; /* the header row does not count */
	return t;
}

int cli_table_row(struct cli_table *t, const char *const *cells)
{
	size_t base = (t->cells ? t->nrows + 1 : 0) * (size_t)t->ncols;
	int i;

	if (base + (size_t)t->ncols > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : (size_t)t->ncols * 16;
		char **p = realloc(t->cells, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->cells = p;
		t->cap = cap;
	}
	for (i = 0; i < t->ncols; i++) {
		t->cells[base + i] = strdup(cells[i] ? cells[i] : "-");
		if (!t->cells[base + i]) {
			while (i-- > 0)
				free(t->cells[base + i]);
			return -ENOMEM;
		}
	}
	if (base)
		t->nrows++;
	return 0;
}

/* Cells as separate printf formats would be clumsy: take ncols strings. */
int cli_table_rowf(struct cli_table *t, const char *fmt0, ...)
{
	const char *cells[16];
	va_list ap;
	int i;

	if (t->ncols > 16)
		return -EINVAL;
	cells[0] = fmt0;
	va_start(ap, fmt0);
	for (i = 1; i < t->ncols; i++)
		cells[i] = va_arg(ap, const char *);
	va_end(ap);
	return cli_table_row(t, cells);
}

size_t cli_table_nrows(const struct cli_table *t)
{
	return t->nrows;
}

/* Display width: count UTF-8 lead bytes, not bytes, so labels with accents align. */
static size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void cli_table_print(const struct cli_table *t)
{
	size_t width[16] = {0};
	size_t r;
	int c;

	for (r = 0; r <= t->nrows; r++)
		for (c = 0; c < t->ncols && c < 16; c++) {
			size_t w = text_width(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
	for (r = 0; r <= t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];

			if (c == t->ncols - 1) {
				printf("%s\n", s);
				break;
			}
			printf("%s%*s", s, (int)(width[c] - text_width(s) + 2), "");
		}
	}
}

void cli_table_free(struct cli_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < (t->nrows + 1) * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* ---- pinned maps ---- */

int cli_map_open(const char *name, bool write, struct cli_map *m)
{
	LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = write ? 0 : BPF_F_RDONLY);
	__u32 len = sizeof(m->info);
	int n, err;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (strchr(name, '/'))
		return -EINVAL; /* names only: the pin dir is the only place we look */
	n = snprintf(m->path, sizeof(m->path), "%s/%s", cli.pin_dir, name);
	if (n < 0 || (size_t)n >= sizeof(m->path))
		return -ENAMETOOLONG;
	m->fd = bpf_obj_get_opts(m->path, &opts);
	if (m->fd < 0) {
		err = -errno;
		m->fd = -1;
		return err;
	}
	if (bpf_obj_get_info_by_fd(m->fd, &m->info, &len)) {
		/* a pinned link or program: not ours to dump */
		cli_map_close(m);
		return -EINVAL;
	}
	return 0;
}

int cli_pin_open(int pin_id, struct cli_map *m)
{
	return cli_pin_open_mode(pin_id, false, m);
}

int cli_pin_open_mode(int pin_id, bool write, struct cli_map *m)
{
	const struct pin_def *d = &pin_defs[pin_id];
	int r = cli_map_open(d->name, write, m);

	if (r)
		return r;
	r = pin_check(d, &m->info, PIN_CHECK_SHAPE, m->path, m->why, sizeof(m->why));
	if (r)
		cli_map_close(m);
	return r;
}

void cli_map_close(struct cli_map *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

bool cli_map_is_percpu(const struct cli_map *m)
{
	switch (m->info.type) {
	case BPF_MAP_TYPE_PERCPU_ARRAY:
	case BPF_MAP_TYPE_PERCPU_HASH:
	case BPF_MAP_TYPE_LRU_PERCPU_HASH:
	case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
		return true;
	default:
		return false;
	}
}

int cli_ncpus(void)
{
	static int n;

	if (!n) {
		n = libbpf_num_possible_cpus();
		if (n <= 0)
			n = 1;
	}
	return n;
}

size_t cli_map_value_size(const struct cli_map *m)
{
	if (cli_map_is_percpu(m))
		return (((size_t)m->info.value_size + 7) & ~(size_t)7) * (size_t)cli_ncpus();
	return m->info.value_size;
}

void cli_percpu_sum_u64(const struct cli_map *m, const void *raw, uint64_t *out, size_t n)
{
	size_t stride = ((size_t)m->info.value_size + 7) & ~(size_t)7;
	int cpu;
	size_t i;

	memset(out, 0, n * sizeof(*out));
	for (cpu = 0; cpu < cli_ncpus(); cpu++) {
		const unsigned char *v = (const unsigned char *)raw + stride * (size_t)cpu;

		for (i = 0; i < n && (i + 1) * 8 <= m->info.value_size; i++) {
			uint64_t x;

			memcpy(&x, v + i * 8, 8);
			out[i] += x;
		}
	}
}

const char *cli_map_type_str(uint32_t type)
{
	const char *s = libbpf_bpf_map_type_str(type);

	return s ? s : "unknown";
}

/* ---- the compiled configuration ---- */

int cli_cfg_read(struct rm_cfg **out, uint64_t *generation, char *err, size_t errlen)
{
	struct cfg_store s;
	struct rm_cfg *cfg;
	char buf[256] = "";
	int ret;

	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	ret = cfg_store_open(&s, cli.pin_dir, false, buf, sizeof(buf));
	if (!ret) {
		ret = cfg_store_snapshot(&s, cfg, NULL, generation);
		cfg_store_close(&s);
	}
	if (ret) {
		if (errlen)
			snprintf(err, errlen, "%s", *buf ? buf : strerror(-ret));
		free(cfg);
		return ret;
	}
	*out = cfg;
	return 0;
}

int cli_cfg_load(struct rm_cfg **out, uint64_t *generation)
{
	char err[256];
	int ret = cli_cfg_read(out, generation, err, sizeof(err));

	if (ret == -ENOENT)
		p_err("no configuration at %s: nothing applied yet", cli.pin_dir);
	else if (ret)
		p_err("cannot read the configuration at %s: %s", cli.pin_dir, err);
	return ret ? -1 : 0;
}
