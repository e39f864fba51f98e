/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* json: streaming JSON writer (see json.h). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

struct json_writer {
	FILE *out;
	bool pretty;
	bool after_name; /* a name was written: the next value follows ": " */
	int depth;	 /* open objects/arrays */
	/* per level: has a member/element been written yet (for commas) */
	bool has_item[JSON_MAX_DEPTH + 1];
};

typedef void (*json_emit_fn)(void *ctx, const char *s, size_t len);

/* Length of the valid UTF-8 sequence starting at s (at most len bytes), 0 if invalid.
 * Overlong forms, surrogates and code points above U+10FFFF are invalid (RFC 3629). */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (n > len)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

static void escape_emit(const char *str, size_t len, json_emit_fn emit, void *ctx)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0; /* bytes [i - run, i) pass through unchanged */
	char esc[8];

	while (i < len) {
		unsigned char c = s[i];
		const char *rep = NULL;
		size_t n;

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			i++;
			run++;
			continue;
		}
		if (c >= 0x80) {
			n = utf8_seq_len(s + i, len - i);
			if (n) {
				i += n;
				run += n;
				continue;
			}
			rep = "\\ufffd";
		}
		if (run)
			emit(ctx, str + i - run, run);
		run = 0;
		if (!rep) {
			switch (c) {
			case '"':
				rep = "\\\"";
				break;
			case '\\':
				rep = "\\\\";
				break;
			case '\b':
				rep = "\\b";
				break;
			case '\f':
				rep = "\\f";
				break;
			case '\n':
				rep = "\\n";
				break;
			case '\r':
				rep = "\\r";
				break;
			case '\t':
				rep = "\\t";
				break;
			default:
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				rep = esc;
			}
		}
		emit(ctx, rep, strlen(rep));
		i++;
	}
	if (run)
		emit(ctx, str + i - run, run);
}

struct buf_ctx {
	char *out;
	size_t cap;
	size_t need;
};

static void buf_emit(void *ctx, const char *s, size_t len)
{
	struct buf_ctx *b = ctx;

	if (b->need < b->cap) {
		size_t room = b->cap - 1 - b->need;

		memcpy(b->out + b->need, s, len < room ? len : room);
	}
	b->need += len;
}

size_t json_escape(char *out, size_t outlen, const char *s, size_t len)
{
	struct buf_ctx b = {.out = out, .cap = outlen, .need = 0};

	escape_emit(s, len, buf_emit, &b);
	if (outlen)
		out[b.need < outlen ? b.need : outlen - 1] = '\0';
	return b.need;
}

static void file_emit(void *ctx, const char *s, size_t len)
{
	fwrite(s, 1, len, ctx);
}

struct json_writer *json_new(FILE *out)
{
	struct json_writer *w = calloc(1, sizeof(*w));

	if (w)
		w->out = out;
	return w;
}

void json_destroy(struct json_writer **wp)
{
	struct json_writer *w = wp ? *wp : NULL;

	if (!w)
		return;
	if (w->has_item[0])
		fputc('\n', w->out);
	fflush(w->out);
	free(w);
	*wp = NULL;
}

void json_pretty(struct json_writer *w, bool on)
{
	w->pretty = on;
}

void json_reset(struct json_writer *w)
{
	if (w->depth == 0 && w->has_item[0]) {
		fputc('\n', w->out);
		w->has_item[0] = false;
	}
}

static void indent(struct json_writer *w)
{
	int i;

	fputc('\n', w->out);
	for (i = 0; i < w->depth; i++)
		fputs("    ", w->out);
}

/* Separator before a member name or an array element / top-level value. */
static void sep(struct json_writer *w)
{
	if (w->depth == 0) {
		if (w->has_item[0])
			fputc('\n', w->out); /* several top-level values: one per line */
		w->has_item[0] = true;
		return;
	}
	if (w->has_item[w->depth])
		fputc(',', w->out);
	if (w->pretty)
		indent(w);
	else if (w->has_item[w->depth])
		fputc(' ', w->out);
	w->has_item[w->depth] = true;
}

/* Called before every value: after a name nothing more is needed. */
static void begin_value(struct json_writer *w)
{
	if (w->after_name) {
		w->after_name = false;
		return;
	}
	sep(w);
}

static void put_string(struct json_writer *w, const char *s, size_t len)
{
	fputc('"', w->out);
	escape_emit(s, len, file_emit, w->out);
	fputc('"', w->out);
}

static void open_nest(struct json_writer *w, char c)
{
	begin_value(w);
	fputc(c, w->out);
	if (w->depth < JSON_MAX_DEPTH) {
		w->depth++;
		w->has_item[w->depth] = false;
	}
}

static void close_nest(struct json_writer *w, char c)
{
	bool had = w->has_item[w->depth];

	if (w->depth > 0)
		w->depth--;
	if (had && w->pretty)
		indent(w);
	fputc(c, w->out);
}

void json_start_object(struct json_writer *w)
{
	open_nest(w, '{');
}

void json_end_object(struct json_writer *w)
{
	close_nest(w, '}');
}

void json_start_array(struct json_writer *w)
{
	open_nest(w, '[');
}

void json_end_array(struct json_writer *w)
{
	close_nest(w, ']');
}

void json_name(struct json_writer *w, const char *name)
{
	sep(w);
	put_string(w, name, strlen(name));
	fputs(": ", w->out);
	w->after_name = true;
}

void json_string(struct json_writer *w, const char *s)
{
	if (!s) {
		json_null(w);
		return;
	}
	json_string_len(w, s, strlen(s));
}

void json_string_len(struct json_writer *w, const char *s, size_t len)
{
	begin_value(w);
	put_string(w, s, len);
}

void json_printf(struct json_writer *w, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		json_null(w);
		return;
	}
	json_string_len(w, s, (size_t)n);
	free(s);
}

void json_int(struct json_writer *w, int64_t v)
{
	begin_value(w);
	fprintf(w->out, "%lld", (long long)v);
}

void json_uint(struct json_writer *w, uint64_t v)
{
	begin_value(w);
	fprintf(w->out, "%llu", (unsigned long long)v);
}

void json_float(struct json_writer *w, double v)
{
	char buf[32];

	if (!isfinite(v)) {
		json_null(w); /* JSON has no NaN or infinity */
		return;
	}
	/* shortest of %.15g / %.17g that reads back as the same double */
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	begin_value(w);
	fputs(buf, w->out);
}

void json_bool(struct json_writer *w, bool v)
{
	begin_value(w);
	fputs(v ? "true" : "false", w->out);
}

void json_null(struct json_writer *w)
{
	begin_value(w);
	fputs("null", w->out);
}

void json_string_field(struct json_writer *w, const char *name, const char *s)
{
	json_name(w, name);
	json_string(w, s);
}

void json_int_field(struct json_writer *w, const char *name, int64_t v)
{
	json_name(w, name);
	json_int(w, v);
}

void json_uint_field(struct json_writer *w, const char *name, uint64_t v)
{
	json_name(w, name);
	json_uint(w, v);
}

void json_float_field(struct json_writer *w, const char *name, double v)
{
	json_name(w, name);
	json_float(w, v);
}

void json_bool_field(struct json_writer *w, const char *name, bool v)
{
	json_name(w, name);
	json_bool(w, v);
}

void json_null_field(struct json_writer *w, const char *name)
{
	json_name(w, name);
	json_null(w);
}
