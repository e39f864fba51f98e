/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * accept: admission of a connection a worker accepted, in one place. It finds the
 * connection's addresses and original destination (the rm_orig 4-tuple entry, else
 * SO_ORIGINAL_DST as iptables REDIRECT or a cgroup/getsockopt program answers it),
 * refuses a connection that has none (the proxy port is not an open relay) or whose
 * destination is the proxy itself (a loop), offers the socket to the sk_msg
 * shortcut, then decides where it goes:
 *   a declared service's HTTP port           -> l7 (l7_accept)
 *   a declared service's TCP port            -> l4 to an endpoint balanced here (lb)
 *   anything else (or no L7 configured)      -> l4 to the original destination
 * The taker gets a complete connection (struct conn_admit) or refuses it whole; l4
 * and l7 never hand a connection to each other.
 */
#ifndef RM_ACCEPT_H
#define RM_ACCEPT_H

struct ring_worker;

/* A new client socket from accept; owned by admission from here on (worker thread). */
void accept_conn(struct ring_worker *w, int fd);

#endif /* RM_ACCEPT_H */
