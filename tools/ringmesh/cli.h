/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ringmesh CLI: shared state and helpers of the admin tool (bpftool's model).
 * Owns the global options, the command-table dispatcher with prefix matching,
 * the one error printer p_err(), the help fragments, plain-text tables, and
 * opening/reading maps pinned under the pin dir (common.c); the printers of the
 * ABI's structs (print.c); `batch` (batch.c). Each object lives in its own file and
 * exports do_<object>(argc, argv); commands return 0 or -1, and no object's file
 * calls into another's.
 */
#ifndef RM_CLI_MAIN_H
#define RM_CLI_MAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/bpf.h>

#include "common/json.h"

#define RM_CLI_VERSION "0.1.0"

#define HELP_SPEC_OPTIONS "OPTIONS := { --pin-dir DIR | {-j|--json} [{-p|--pretty}] | {-h|--help} }"
#define HELP_SPEC_BATCH "batch file { FILE | - }"
#define HELP_SPEC_FILES "FILES := -f { FILE | DIR | - } [-f ...]"
#define HELP_SPEC_MAP                                                                              \
	"MAP := { rm_include | rm_exclude | rm_xports | rm_orig | rm_orig_ck |\n"                  \
	"                rm_socks | rm_proxy | rm_dpstats | rm_cfg | rm_stats | rm_breaker | "     \
	"NAME }"

/* Global options, set once by main() before any command runs. */
struct cli_opts {
	const char *bin;	/* argv[0] basename, for help */
	const char *pin_dir;	/* --pin-dir or RM_PIN_DIR_DEFAULT */
	bool json;		/* -j: every output and every error as JSON on stdout */
	bool pretty;		/* -p: indented JSON (implies -j) */
	struct json_writer *jw; /* non-NULL iff json, between start and finish */
	/* JSON is buffered so that an error can replace a half-written value: every -j
	 * run prints exactly one JSON value (or one per batch line) */
	FILE *json_buf;
	char *json_text;
	size_t json_len;
	char *err_msg; /* first p_err() message of a -j run */
	/* `batch`: "FILE:LINE: " put before every error of the command on that line */
	const char *err_where;
	/* Run one command line (OBJECT COMMAND ARGS) as main() does: set by main(), so that
	 * batch.c runs commands without depending on main.c (which depends on it). */
	int (*run)(int argc, char **argv);
};

extern struct cli_opts cli;

/* Errors: "Error: ..." on stderr, or {"error": "..."} on stdout with -j. */
void p_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Buffer -j output (0 or -ENOMEM) / print it, or the first error instead. finish
 * returns -1 when an error was printed. */
int cli_json_start(void);
int cli_json_finish(void);
/* Informational line on stderr; silent with -j so stdout stays one JSON value. */
void p_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct cli_cmd {
	const char *name;
	int (*func)(int argc, char **argv);
};

/* Run the command named by argv[0] (exact name or unambiguous prefix) with the
 * remaining arguments; with no argument run help_fn. Returns the command's result,
 * or -1 after p_err() for an unknown or ambiguous name. */
int cli_cmd_select(const struct cli_cmd *cmds, int argc, char **argv,
		   int (*help_fn)(int argc, char **argv), const char *what);
/* Does arg abbreviate word (non-empty prefix)? */
bool cli_is_prefix(const char *arg, const char *word);
/* Print the help text (plain) or null (-j, like bpftool). Always returns 0. */
int cli_help_print(const char *text);

/* Plain-text table: rows of cells printed with aligned columns. */
struct cli_table;
struct cli_table *cli_table_new(int ncols, const char *const *headers);
/* Append a row of ncols cells (copied; NULL prints as "-"). 0 or -ENOMEM. */
int cli_table_row(struct cli_table *t, const char *const *cells);
int cli_table_rowf(struct cli_table *t, const char *fmt0, ...);
size_t cli_table_nrows(const struct cli_table *t);
void cli_table_print(const struct cli_table *t);
void cli_table_free(struct cli_table *t);

/* A map pinned under the pin dir. */
struct cli_map {
	int fd;
	char path[4096];
	struct bpf_map_info info;
	char why[512]; /* cli_pin_open's -EPROTO: what differs from common/pin.c's table */
};

/* Open pin_dir/name read-only (or read-write). 0, -ENOENT when not pinned, -EINVAL when
 * the pin is not a map, or -errno. Never prints: the caller words the error. */
int cli_map_open(const char *name, bool write, struct cli_map *m);
void cli_map_close(struct cli_map *m);
/* Open one of ours (enum pin_id, common/pin.h) read-only, checked against the table's
 * type, key and value size: cli_map_open's results, or -EPROTO with m->why set (the
 * daemon was built from other headers). */
int cli_pin_open(int pin_id, struct cli_map *m);
/* The same, read-write when write is set (commands that change a map). */
int cli_pin_open_mode(int pin_id, bool write, struct cli_map *m);
/* Value size as the kernel exchanges it with userspace (per-CPU maps: one 8-byte aligned
 * slot per possible CPU). */
size_t cli_map_value_size(const struct cli_map *m);
bool cli_map_is_percpu(const struct cli_map *m);
int cli_ncpus(void);
/* Sum a per-CPU value of u64 counters (value_size/8 of them) into out. */
void cli_percpu_sum_u64(const struct cli_map *m, const void *raw, uint64_t *out, size_t n);
const char *cli_map_type_str(uint32_t type);
/* "HTTP", "TCP", ... for enum rm_cfg_proto. */
const char *cli_proto_name(unsigned int proto);

/* ---- printers of the ABI's structs (print.c) ---- */

/* Text for an address in mapped form: "a.b.c.d" or IPv6. buf >= 48. */
const char *cli_addr_str(const void *rm_addr16, char *buf, size_t len);
struct rm_addr;
struct rm_proxy_cfg;
struct prom_series;
/* Name of an rm_dpstats index (enum rm_dp_stat), NULL if unknown. */
/* "a.b.c.d:port" / "[v6]:port" for a mapped address and a network-order port. */
const char *cli_endpoint_str(const struct rm_addr *a, uint16_t be_port, char *buf, size_t len);
/* The fields of rm_proxy[0] as JSON members (inside an open object) or plain lines. */
void cli_proxy_fields(const struct rm_proxy_cfg *p, uint64_t now_ns);
struct rm_stats_hdr;
/* The rm_stats header's members (NULL: not initialised), inside an open JSON object. */
void cli_stats_hdr_fields(const struct rm_stats_hdr *h);
/* One live rm_stats slot as a JSON object or a plain line. */
void cli_stats_slot_print(uint32_t idx, const struct prom_series *s);

struct rm_cfg;
/* Consistent copy of the active configuration half (malloc'ed, free() it) and its
 * generation (0 when nothing was published yet). -1 after p_err() when the store is
 * not pinned or unreadable. */
int cli_cfg_load(struct rm_cfg **out, uint64_t *generation);
/* The same without printing: 0 or -errno with err filled. */
int cli_cfg_read(struct rm_cfg **out, uint64_t *generation, char *err, size_t errlen);

/* Objects. */
int do_apply(int argc, char **argv);
int do_delete(int argc, char **argv);
int do_rule(int argc, char **argv);
int do_service(int argc, char **argv);
int do_endpoint(int argc, char **argv);
int do_map(int argc, char **argv);
int do_status(int argc, char **argv);
int do_stats(int argc, char **argv);
int do_breaker(int argc, char **argv);
int do_batch(int argc, char **argv);
int do_workload(int argc, char **argv);
int do_sync(int argc, char **argv);

#endif /* RM_CLI_MAIN_H */
