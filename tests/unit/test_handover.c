/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The hand-over rendezvous (handover.c): the name, the messages with their sockets,
 * the peer's end, and the pin dir's lock. The whole hand-over runs in e2e's
 * test_handover.sh. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "ringmeshd/handover.h"

/* A pin dir name of this run: abstract names are machine-wide in the netns. */
static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/rm-unit-handover-%d", (int)getpid());
	return 0;
}

static void test_rendezvous(void **state)
{
	int l = ho_listen(dir), c, a;

	assert_true(l >= 0);
	assert_int_equal(ho_listen(dir), -EADDRINUSE); /* one daemon answers per pin dir */
	c = ho_connect(dir);
	assert_true(c >= 0);
	a = ho_accept(l);
	assert_true(a >= 0);
	close(l);
	assert_int_equal(ho_connect(dir), -ECONNREFUSED); /* nobody: a fresh start */
	close(a);
	close(c);
}

static void test_sockets_travel(void **state)
{
	struct ho_msg m;
	int sp[2], fds[3], got[HO_MAX_FDS];
	struct stat a, b;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	for (int i = 0; i < 3; i++)
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(ho_send(sp[0], HO_SOCKETS, fds, 3, 2, 1), 0);
	assert_int_equal(ho_recv(sp[1], &m, got, HO_MAX_FDS, 1000), 0);
	assert_int_equal(m.type, HO_SOCKETS);
	assert_int_equal(m.n_fds, 3);
	assert_int_equal(m.n_proxy, 2);
	assert_int_equal(m.has_admin, 1);
	assert_int_equal(m.pid, getpid());
	for (int i = 0; i < 3; i++) {
		/* the same socket, not a copy: same inode */
		assert_int_equal(fstat(fds[i], &a), 0);
		assert_int_equal(fstat(got[i], &b), 0);
		assert_true(a.st_ino == b.st_ino && got[i] != fds[i]);
		close(got[i]);
		close(fds[i]);
	}
	/* a message with no descriptor, and none waiting */
	assert_int_equal(ho_send(sp[1], HO_TAKEN, NULL, 0, 0, 0), 0);
	assert_int_equal(ho_recv(sp[0], &m, NULL, 0, 1000), 0);
	assert_int_equal(m.type, HO_TAKEN);
	assert_int_equal(m.n_fds, 0);
	assert_int_equal(ho_recv(sp[0], &m, NULL, 0, 0), -ETIMEDOUT);
	/* the peer's end (its exit, or its failure before TAKEN) */
	close(sp[1]);
	assert_int_equal(ho_recv(sp[0], &m, NULL, 0, 1000), -EPIPE);
	close(sp[0]);
}

static void test_foreign_message(void **state)
{
	struct ho_msg m;
	char junk[sizeof(m)];
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(send(sp[0], junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	assert_int_equal(ho_recv(sp[1], &m, NULL, 0, 1000), -EPROTO);
	assert_int_equal(send(sp[0], junk, 3, 0), 3); /* short */
	assert_int_equal(ho_recv(sp[1], &m, NULL, 0, 1000), -EPROTO);
	close(sp[0]);
	close(sp[1]);
}

static void test_lock(void **state)
{
	char sub[300];
	int s1 = ho_lock(dir, LOCK_SH), s2, x;

	/* every live daemon holds it shared; a fresh start needs it exclusive */
	assert_true(s1 >= 0);
	s2 = ho_lock(dir, LOCK_SH);
	assert_true(s2 >= 0);
	assert_int_equal(ho_lock(dir, LOCK_EX | LOCK_NB), -EWOULDBLOCK);
	ho_unlock(s1);
	assert_int_equal(ho_relock(s2, LOCK_EX | LOCK_NB), 0); /* the last one may remove */
	x = ho_lock(dir, LOCK_SH | LOCK_NB);
	assert_int_equal(x, -EWOULDBLOCK);
	/* removed by its holder: a waiter locks a new one, not the dead inode */
	ho_lock_remove(dir);
	snprintf(sub, sizeof(sub), "%s/%s", dir, HO_LOCK_NAME);
	assert_int_equal(access(sub, F_OK), -1);
	x = ho_lock(dir, LOCK_EX | LOCK_NB);
	assert_true(x >= 0);
	assert_int_equal(access(sub, F_OK), 0);
	ho_unlock(s2);
	ho_unlock(x);
	ho_lock_remove(dir);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rendezvous),
	    cmocka_unit_test(test_sockets_travel),
	    cmocka_unit_test(test_foreign_message),
	    cmocka_unit_test(test_lock),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
