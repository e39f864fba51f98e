/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for the streaming JSON writer: escaping, UTF-8 handling, nesting,
 * separators in compact and pretty mode, and number formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "common/json.h"

struct cap {
	char *buf;
	size_t len;
	FILE *f;
	struct json_writer *w;
};

static void cap_open(struct cap *c, bool pretty)
{
	memset(c, 0, sizeof(*c));
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
	c->w = json_new(c->f);
	assert_non_null(c->w);
	json_pretty(c->w, pretty);
}

/* Destroys the writer (which adds the final newline) and returns the text. */
static const char *cap_close(struct cap *c)
{
	json_destroy(&c->w);
	assert_null(c->w);
	fclose(c->f);
	return c->buf;
}

static void one_string(const char *in, size_t len, const char *want)
{
	struct cap c;

	cap_open(&c, false);
	json_string_len(c.w, in, len);
	assert_string_equal(cap_close(&c), want);
	free(c.buf);
}

static void test_escape_specials(void **state)
{
	one_string("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"\n");
	one_string("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"\n");
}

static void test_escape_control_chars(void **state)
{
	char in[32];
	char want[32 * 6 + 4];
	size_t i, n = 0;
	struct cap c;

	/* every control character other than the five short forms is \u00XX */
	for (i = 0; i < 32; i++)
		in[i] = (char)i;
	cap_open(&c, false);
	json_string_len(c.w, in, sizeof(in));
	cap_close(&c);
	want[n++] = '"';
	for (i = 0; i < 32; i++) {
		const char *s = NULL;

		switch (i) {
		case '\b':
			s = "\\b";
			break;
		case '\f':
			s = "\\f";
			break;
		case '\n':
			s = "\\n";
			break;
		case '\r':
			s = "\\r";
			break;
		case '\t':
			s = "\\t";
			break;
		}
		if (s)
			n += (size_t)sprintf(want + n, "%s", s);
		else
			n += (size_t)sprintf(want + n, "\\u%04zx", i);
	}
	sprintf(want + n, "\"\n");
	assert_string_equal(c.buf, want);
	assert_non_null(strstr(c.buf, "\\u0000\\u0001"));
	assert_non_null(strstr(c.buf, "\\u001f"));
	free(c.buf);
	one_string("\x7f", 1, "\"\\u007f\"\n");
}

static void test_utf8_passthrough(void **state)
{
	/* 2-, 3- and 4-byte sequences: é, €, 𝄞 */
	const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e";

	one_string(s, strlen(s), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e\"\n");
}

static void test_utf8_invalid_replaced(void **state)
{
	/* lone continuation, truncated sequence, overlong '/', UTF-16 surrogate, > U+10FFFF */
	one_string("a\x80z", 3, "\"a\\ufffdz\"\n");
	one_string("a\xe2\x82", 3, "\"a\\ufffd\\ufffd\"\n");
	one_string("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"\n");
	one_string("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"\n");
	one_string("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"\n");
	one_string("\xff", 1, "\"\\ufffd\"\n");
}

static void test_escape_buffer(void **state)
{
	char out[8];
	size_t need;

	need = json_escape(out, sizeof(out), "a\nb", 3);
	assert_int_equal(need, 4);
	assert_string_equal(out, "a\\nb");
	/* truncation: returns the full length, output cut and terminated */
	need = json_escape(out, sizeof(out), "\"\"\"\"\"\"", 6);
	assert_int_equal(need, 12);
	assert_int_equal(strlen(out), 7);
	assert_string_equal(out, "\\\"\\\"\\\"\\");
	need = json_escape(out, 0, "abc", 3);
	assert_int_equal(need, 3);
	/* embedded NUL; the 8-byte buffer is one short of the 9 needed */
	need = json_escape(out, sizeof(out), "a\0b", 3);
	assert_string_equal(out, "a\\u0000");
	assert_int_equal(need, 8);
}

static void test_nesting_compact(void **state)
{
	struct cap c;

	cap_open(&c, false);
	json_start_object(c.w);
	json_string_field(c.w, "name", "r1");
	json_name(c.w, "list");
	json_start_array(c.w);
	json_int(c.w, 1);
	json_start_object(c.w);
	json_end_object(c.w);
	json_start_array(c.w);
	json_end_array(c.w);
	json_null(c.w);
	json_end_array(c.w);
	json_bool_field(c.w, "ok", true);
	json_name(c.w, "inner");
	json_start_object(c.w);
	json_bool_field(c.w, "no", false);
	json_end_object(c.w);
	json_end_object(c.w);
	assert_string_equal(cap_close(&c), "{\"name\": \"r1\", \"list\": [1, {}, [], null], "
					   "\"ok\": true, \"inner\": {\"no\": false}}\n");
	free(c.buf);
}

static void test_nesting_pretty(void **state)
{
	struct cap c;

	cap_open(&c, true);
	json_start_object(c.w);
	json_int_field(c.w, "a", -1);
	json_name(c.w, "b");
	json_start_array(c.w);
	json_string(c.w, "x");
	json_start_object(c.w);
	json_end_object(c.w);
	json_end_array(c.w);
	json_end_object(c.w);
	assert_string_equal(cap_close(&c), "{\n"
					   "    \"a\": -1,\n"
					   "    \"b\": [\n"
					   "        \"x\",\n"
					   "        {}\n"
					   "    ]\n"
					   "}\n");
	free(c.buf);
}

static void test_names_escaped(void **state)
{
	struct cap c;

	cap_open(&c, false);
	json_start_object(c.w);
	json_uint_field(c.w, "we\"ird\n", 3);
	json_end_object(c.w);
	assert_string_equal(cap_close(&c), "{\"we\\\"ird\\n\": 3}\n");
	free(c.buf);
}

static void test_numbers(void **state)
{
	struct cap c;

	cap_open(&c, false);
	json_start_array(c.w);
	json_int(c.w, INT64_MIN);
	json_int(c.w, INT64_MAX);
	json_uint(c.w, UINT64_MAX);
	json_uint(c.w, 0);
	json_float(c.w, 0.1);
	json_float(c.w, 3.0);
	json_float(c.w, -2.5e-7);
	json_float(c.w, NAN);
	json_float(c.w, INFINITY);
	json_end_array(c.w);
	assert_string_equal(cap_close(&c), "[-9223372036854775808, 9223372036854775807, "
					   "18446744073709551615, 0, 0.1, 3, -2.5e-07, null, "
					   "null]\n");
	free(c.buf);
}

static void test_printf_and_null_string(void **state)
{
	struct cap c;

	cap_open(&c, false);
	json_start_object(c.w);
	json_name(c.w, "addr");
	json_printf(c.w, "%s:%d", "10.0.0.1", 80);
	json_string_field(c.w, "none", NULL);
	json_end_object(c.w);
	assert_string_equal(cap_close(&c), "{\"addr\": \"10.0.0.1:80\", \"none\": null}\n");
	free(c.buf);
}

static void test_top_level_sequence(void **state)
{
	struct cap c;

	/* batch-like output: several documents, one per line */
	cap_open(&c, false);
	json_start_object(c.w);
	json_end_object(c.w);
	json_start_object(c.w);
	json_int_field(c.w, "n", 2);
	json_end_object(c.w);
	json_reset(c.w);
	json_null(c.w);
	assert_string_equal(cap_close(&c), "{}\n{\"n\": 2}\nnull\n");
	free(c.buf);
}

static void test_empty_writer_prints_nothing(void **state)
{
	struct cap c;

	cap_open(&c, true);
	assert_string_equal(cap_close(&c), "");
	free(c.buf);
	json_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_specials),
	    cmocka_unit_test(test_escape_control_chars),
	    cmocka_unit_test(test_utf8_passthrough),
	    cmocka_unit_test(test_utf8_invalid_replaced),
	    cmocka_unit_test(test_escape_buffer),
	    cmocka_unit_test(test_nesting_compact),
	    cmocka_unit_test(test_nesting_pretty),
	    cmocka_unit_test(test_names_escaped),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_printf_and_null_string),
	    cmocka_unit_test(test_top_level_sequence),
	    cmocka_unit_test(test_empty_writer_prints_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
