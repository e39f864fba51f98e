/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * handover: how a new ringmeshd takes over from the one serving the same pin dir
 * (a DaemonSet surge update), without a moment in which pods skip the mesh or a
 * connection is refused.
 *
 * The two meet on an abstract unix socket named after the pin dir. Abstract names
 * live in the network namespace, which the two share (hostNetwork), so no volume
 * has to be shared between the two pods; the peer's uid is checked (SO_PEERCRED).
 *
 *   successor                              predecessor (serving, or draining)
 *   connect, HELLO                ->       accept (closes its own name: one at a time)
 *                                 <-       SOCKETS + its listening sockets (SCM_RIGHTS)
 *   accept on the same sockets, load the programs over the pinned maps, replace
 *   the programs of the pinned links (bpf_link_update), beat the heartbeat
 *   TAKEN                         ->       stop accepting, drain, exit 0
 *   bind the name; keep the connection open: its EOF says the predecessor is gone
 *
 * Why the listening sockets travel and are not bound anew with SO_REUSEPORT: a
 * closed member of a reuseport group resets the connections in its accept queue
 * (unless net.ipv4.tcp_migrate_req, a node-wide sysctl a pod cannot set), so the
 * old daemon could never stop without refusing some. Passing the sockets keeps one
 * accept queue that both daemons serve until TAKEN, and the successor alone after.
 *
 * A successor that dies before TAKEN closes the connection: the predecessor takes
 * its programs and identity back and offers the sockets again to the next one.
 *
 * The flock of the pin dir's HO_LOCK_NAME directory orders what the protocol cannot see. Every live
 * daemon holds it shared. A daemon with nobody answering on the name may start fresh (remove a dead
 * daemon's leftovers) only once it holds it exclusive, which no live daemon allows; it tries the
 * name again while it waits, since a successor that has just taken over binds the name a moment
 * after its predecessor let it go. A clean stop removes the pins only if it gets the lock
 * exclusive, that is, if no other daemon (a successor that took over) uses them.
 */
#ifndef RM_HANDOVER_H
#define RM_HANDOVER_H

#include <stdint.h>
#include <stddef.h>

#define HO_MAX_FDS 160 /* 2 addresses x 64 workers + the admin listener, < SCM_MAX_FD */
#define HO_TIMEOUT_MS 5000

enum ho_type {
	HO_HELLO = 1, /* successor: I am here, give me the sockets */
	HO_SOCKETS,   /* predecessor: the listening sockets (n_proxy, then the admin one) */
	HO_TAKEN,     /* successor: serving; stop accepting and drain */
};

struct ho_msg {
	uint32_t magic;	    /* HO_MAGIC */
	uint16_t version;   /* HO_VERSION: both sides must speak the same */
	uint16_t type;	    /* enum ho_type */
	uint32_t pid;	    /* sender */
	uint32_t n_fds;	    /* descriptors carried (SOCKETS) */
	uint32_t n_proxy;   /* of which proxy listeners, first */
	uint32_t has_admin; /* 1: the last one is the --metrics-listen socket */
};

/* Listen on the name of pin_dir: fd, -EADDRINUSE while another daemon holds it. */
int ho_listen(const char *pin_dir);

/* Connect to the daemon serving pin_dir: fd, or -ECONNREFUSED when there is none. */
int ho_connect(const char *pin_dir);

/* Accept a successor on lfd: fd, -EPERM (another uid, closed), -EAGAIN or -errno. */
int ho_accept(int lfd);

/* One message, with fds (n may be 0). 0 or -errno. */
int ho_send(int fd, enum ho_type type, const int *fds, unsigned int n, unsigned int n_proxy,
	    int has_admin);

/* Wait up to timeout_ms for one message: 0, -ETIMEDOUT, -EPIPE at EOF, -EPROTO for
 * a message that is not ours (another version). Received fds go to fds (up to max,
 * the rest closed) with m->n_fds their number. */
int ho_recv(int fd, struct ho_msg *m, int *fds, unsigned int max, int timeout_ms);

#define HO_LOCK_NAME "rm_daemon" /* bpffs refuses names with a dot */

/* flock(op) of pin_dir/HO_LOCK_NAME (created if needed; LOCK_SH, LOCK_EX, | LOCK_NB):
 * fd, or -EWOULDBLOCK, -errno. One removed by the last holder meanwhile is made anew. */
int ho_lock(const char *pin_dir, int op);
/* Remove it (a clean stop, holding it exclusive, before the pin dir goes). */
void ho_lock_remove(const char *pin_dir);
/* Change the lock held on fd (not atomic: flock(2) drops it first). 0 or -errno. */
int ho_relock(int fd, int op);
void ho_unlock(int fd);

#endif /* RM_HANDOVER_H */
