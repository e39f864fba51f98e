/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Unit tests for common/util: errf fills the caller's buffer and returns the code it
 * was given; the bounded writer fills a buffer exactly, fails once and stays failed,
 * cuts text for people short with "...", and never writes past its capacity. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/util.h"

static void test_errf(void **state)
{
	char err[8];

	assert_int_equal(errf(err, sizeof(err), -EINVAL, "bad %d", 42), -EINVAL);
	assert_string_equal(err, "bad 42");
	assert_int_equal(errf(err, sizeof(err), -E2BIG, "%s", "much too long"), -E2BIG);
	assert_string_equal(err, "much to"); /* cut to the buffer, NUL-terminated */
	assert_int_equal(errf(NULL, 0, -ENOENT, "x"), -ENOENT);
}

static void test_errf_sys(void **state)
{
	char err[64];

	assert_int_equal(errf_sys(err, sizeof(err), -ENOENT, "open %s", "/x"), -ENOENT);
	assert_string_equal(err, "open /x: No such file or directory");
	assert_int_equal(errf_sys(err, sizeof(err), 0, "no error"), 0);
	assert_string_equal(err, "no error");
}

static void test_clocks(void **state)
{
	uint64_t a = mono_ns(), b = mono_ns();

	assert_true(b >= a);
	assert_true(realtime_ns() > 1600000000ull * 1000000000ull); /* after 2020 */
}

/* Guard bytes after the capacity: a writer that overruns is caught even without ASan. */
#define CAP 8
static char mem[CAP + 4];

static void test_sbuf_exact_fit(void **state)
{
	struct sbuf b;

	memset(mem, 'G', sizeof(mem));
	b = sbuf_make(mem, CAP);
	sbuf_str(&b, "HTTP");
	sbuf_put(&b, "/1.1", 4);
	assert_int_equal(sbuf_end(&b), 8); /* protocol text may fill the buffer */
	assert_memory_equal(mem, "HTTP/1.1", 8);
	assert_int_equal(sbuf_cstr(&b), -ENOSPC); /* but then there is no room for a NUL */
	assert_memory_equal(mem + CAP, "GGGG", 4);
}

static void test_sbuf_over_sticks(void **state)
{
	struct sbuf b;

	memset(mem, 'G', sizeof(mem));
	b = sbuf_make(mem, CAP);
	sbuf_str(&b, "abcdefghij");
	assert_true(b.over);
	sbuf_str(&b, ""); /* nothing later succeeds, not even an empty append */
	sbuf_u64(&b, 1);
	assert_int_equal(sbuf_end(&b), -ENOSPC);
	assert_memory_equal(mem + CAP, "GGGG", 4);

	b = sbuf_make(mem, CAP);
	sbuf_u64(&b, 1234567);
	assert_int_equal(sbuf_cstr(&b), 7);
	assert_string_equal(mem, "1234567");
	b = sbuf_make(mem, 0);
	assert_int_equal(sbuf_cstr(&b), -ENOSPC);
}

static void test_sbuf_printf_and_text(void **state)
{
	struct sbuf b;

	memset(mem, 'G', sizeof(mem));
	b = sbuf_make(mem, CAP);
	sbuf_printf(&b, "%s=%d", "a", 1);
	sbuf_printf(&b, ",%s", "b");
	assert_string_equal(sbuf_text(&b), "a=1,b");
	/* text that fills the buffer exactly leaves no room for its NUL: over */
	b = sbuf_make(mem, CAP);
	sbuf_printf(&b, "%s", "12345678");
	assert_true(b.over);
	assert_string_equal(sbuf_text(&b), "1234...");
	b = sbuf_make(mem, CAP);
	sbuf_printf(&b, "ab");
	sbuf_put(&b, "cdefghijk", 9);
	assert_string_equal(sbuf_text(&b), "abcd...");
	b = sbuf_make(mem, CAP);
	sbuf_str(&b, "a");
	sbuf_str(&b, "0123456789");
	assert_string_equal(sbuf_text(&b), "a012...");
	assert_memory_equal(mem + CAP, "GGGG", 4);
	b = sbuf_make(mem, 3); /* too small for "...": empty rather than overrun */
	sbuf_str(&b, "abcd");
	assert_string_equal(sbuf_text(&b), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errf),
	    cmocka_unit_test(test_errf_sys),
	    cmocka_unit_test(test_clocks),
	    cmocka_unit_test(test_sbuf_exact_fit),
	    cmocka_unit_test(test_sbuf_over_sticks),
	    cmocka_unit_test(test_sbuf_printf_and_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
