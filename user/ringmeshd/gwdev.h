/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * gwdev: the dummy interface that carries --pod-gateway in the daemon's network
 * namespace (the node's, with hostNetwork), as NodeLocal DNSCache does with
 * 169.254.20.10. A pod's packets to an address the node owns on any interface are
 * delivered locally, so no CNI has to put the address on every pod veth. Owns the
 * rtnetlink requests (RTM_NEWLINK kind dummy, RTM_NEWADDR /32, RTM_DELLINK). On a
 * kernel without the dummy driver the interface is a bridge without ports.
 */
#ifndef RM_GWDEV_H
#define RM_GWDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>

/*
 * Create the dummy interface NAME (or adopt an existing dummy of that name: a
 * predecessor's on a hand-over, or our own after a crash), put ADDR/32 on it and set
 * it up. *created tells whether this call made the interface. Refuses an existing
 * interface of another kind. 0 or -errno with err filled.
 */
int gwdev_up(const char *name, struct in_addr addr, bool *created, char *err, size_t errlen);
/* Delete the interface NAME if it is a dummy (its address goes with it). 0, -ENODEV
 * when it is gone already, or -errno with err filled. */
int gwdev_down(const char *name, char *err, size_t errlen);

#endif /* RM_GWDEV_H */
