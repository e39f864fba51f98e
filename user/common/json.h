/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * json: a streaming JSON writer in the manner of bpftool's json_writer. It owns
 * the separators, indentation and string escaping, so callers only say what comes
 * next (object, array, name, value) and never build JSON text by hand.
 *
 * Strings are written as UTF-8: valid sequences pass through, control characters,
 * quotes and backslashes are escaped, and bytes that are not valid UTF-8 become
 * U+FFFD so the output is always parseable. Non-finite doubles become null.
 * Misuse (a value where a name is due, unbalanced ends) is not checked at run
 * time beyond the nesting depth; the writer trusts its caller like bpftool's does.
 */
#ifndef RM_JSON_H
#define RM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 64

struct json_writer;

/* New writer on out (not owned). NULL on allocation failure. */
struct json_writer *json_new(FILE *out);
/* Flush and free; writes a final newline if anything was written. NULL-safe. */
void json_destroy(struct json_writer **w);
/* Indent nested values by four spaces, one member per line. */
void json_pretty(struct json_writer *w, bool on);
/* Clear the "a value was written at this level" state of the top level so that a
 * second top-level value starts without a comma (batch mode writes one per line). */
void json_reset(struct json_writer *w);

void json_start_object(struct json_writer *w);
void json_end_object(struct json_writer *w);
void json_start_array(struct json_writer *w);
void json_end_array(struct json_writer *w);

/* Member name inside an object; the next call writes its value. */
void json_name(struct json_writer *w, const char *name);

void json_string(struct json_writer *w, const char *s);
/* len bytes of s, which may hold NUL (written as \u0000). */
void json_string_len(struct json_writer *w, const char *s, size_t len);
void json_printf(struct json_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void json_int(struct json_writer *w, int64_t v);
void json_uint(struct json_writer *w, uint64_t v);
void json_float(struct json_writer *w, double v);
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);

/* name + value in one call. */
void json_string_field(struct json_writer *w, const char *name, const char *s);
void json_int_field(struct json_writer *w, const char *name, int64_t v);
void json_uint_field(struct json_writer *w, const char *name, uint64_t v);
void json_float_field(struct json_writer *w, const char *name, double v);
void json_bool_field(struct json_writer *w, const char *name, bool v);
void json_null_field(struct json_writer *w, const char *name);

/* Escape s (len bytes) as the inside of a JSON string (no quotes) into out.
 * Always NUL-terminates when outlen > 0. Returns the length the full escape
 * needs, like snprintf, so a caller can detect truncation. Pure; the writer uses it. */
size_t json_escape(char *out, size_t outlen, const char *s, size_t len);

#endif /* RM_JSON_H */
