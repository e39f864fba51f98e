/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* gwdev: the --pod-gateway dummy interface over rtnetlink, see gwdev.h. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include "common/util.h"
#include "ringmeshd/gwdev.h"

#define GW_BUF 4096

struct nlreq {
	struct nlmsghdr h;
	char body[512];
};

/* Start a request of type and flags with a zeroed fixed header of hdr bytes (the
 * caller's NLMSG_DATA pointer); nl_talk adds the request and ack flags. */
static void nl_req(struct nlreq *r, uint16_t type, uint16_t flags, size_t hdr)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_len = NLMSG_LENGTH(hdr);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = flags;
}

static void *nl_tail(struct nlmsghdr *h)
{
	return (char *)h + NLMSG_ALIGN(h->nlmsg_len);
}

static struct rtattr *nl_attr(struct nlmsghdr *h, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = nl_tail(h);

	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void nl_nest_end(struct nlmsghdr *h, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)((char *)nl_tail(h) - (char *)nest);
}

static int nl_open(void)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

/*
 * Send one request with NLM_F_ACK and read until its answer: the error code of the
 * ack, or for a GET the first reply copied into reply (when given).
 */
static int nl_talk(int fd, struct nlmsghdr *h, void *reply, size_t replen)
{
	static uint32_t seq;
	char buf[GW_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct sockaddr_nl to = {.nl_family = AF_NETLINK};

	h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = ++seq;
	if (sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		int len;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		len = (int)n;
		for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, len);
		     m = NLMSG_NEXT(m, len)) {
			if (m->nlmsg_seq != h->nlmsg_seq)
				continue;
			if (m->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(m);

				return e->error;
			}
			if (reply && m->nlmsg_len <= replen) {
				memcpy(reply, m, m->nlmsg_len);
				reply = NULL; /* the ack follows */
			}
		}
	}
}

/*
 * The kinds we create, in order. A kernel without the dummy driver (CONFIG_DUMMY off,
 * seen on some minimal VM kernels) still has bridges: a bridge without ports is as
 * inert as a dummy (no carrier, nothing forwarded) and carries a local address the
 * same way.
 */
static const char *const gw_kinds[] = {"dummy", "bridge"};

static bool kind_ours(const char *k)
{
	for (size_t i = 0; i < sizeof(gw_kinds) / sizeof(gw_kinds[0]); i++)
		if (!strcmp(k, gw_kinds[i]))
			return true;
	return false;
}

/* The interface's index and whether its link kind is one we create; -ENODEV if absent. */
static int link_get(int fd, const char *name, int *ifindex, bool *dummy)
{
	char rep[GW_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlreq r;
	struct ifinfomsg *ifi;
	struct nlmsghdr *m = (struct nlmsghdr *)rep;
	struct rtattr *a;
	int rc, len;

	memset(rep, 0, sizeof(rep));
	nl_req(&r, RTM_GETLINK, 0, sizeof(*ifi));
	nl_attr(&r.h, IFLA_IFNAME, name, strlen(name) + 1);
	rc = nl_talk(fd, &r.h, rep, sizeof(rep));
	if (rc)
		return rc;
	if (m->nlmsg_type != RTM_NEWLINK)
		return -EPROTO;
	ifi = NLMSG_DATA(m);
	*ifindex = ifi->ifi_index;
	*dummy = false;
	len = (int)IFLA_PAYLOAD(m);
	for (a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		struct rtattr *b;
		int blen = (int)RTA_PAYLOAD(a);

		if (a->rta_type != IFLA_LINKINFO)
			continue;
		for (b = RTA_DATA(a); RTA_OK(b, blen); b = RTA_NEXT(b, blen))
			if (b->rta_type == IFLA_INFO_KIND && kind_ours(RTA_DATA(b)))
				*dummy = true;
	}
	return 0;
}

static int link_new(int fd, const char *name, const char *kind)
{
	struct nlreq r;
	struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
	struct rtattr *li;

	nl_req(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	nl_attr(&r.h, IFLA_IFNAME, name, strlen(name) + 1);
	li = nl_attr(&r.h, IFLA_LINKINFO, NULL, 0);
	nl_attr(&r.h, IFLA_INFO_KIND, kind, strlen(kind) + 1);
	nl_nest_end(&r.h, li);
	return nl_talk(fd, &r.h, NULL, 0);
}

static int link_up(int fd, int ifindex)
{
	struct nlreq r;
	struct ifinfomsg *ifi = NLMSG_DATA(&r.h);

	nl_req(&r, RTM_NEWLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	return nl_talk(fd, &r.h, NULL, 0);
}

static int addr_add(int fd, int ifindex, struct in_addr a)
{
	struct nlreq r;
	struct ifaddrmsg *ifa = NLMSG_DATA(&r.h);

	/* REPLACE: an adopted interface may carry the address already. */
	nl_req(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = 32;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned int)ifindex;
	nl_attr(&r.h, IFA_LOCAL, &a, sizeof(a));
	nl_attr(&r.h, IFA_ADDRESS, &a, sizeof(a));
	return nl_talk(fd, &r.h, NULL, 0);
}

static int link_del(int fd, int ifindex)
{
	struct nlreq r;
	struct ifinfomsg *ifi = NLMSG_DATA(&r.h);

	nl_req(&r, RTM_DELLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	return nl_talk(fd, &r.h, NULL, 0);
}

static int perm_hint(char *err, size_t errlen, int rc, const char *what, const char *name)
{
	if (rc == -EPERM || rc == -EACCES)
		return errf(err, errlen, rc,
			    "%s %s: permission denied (needs CAP_NET_ADMIN in the node's network "
			    "namespace; or --gateway-dev off when the CNI puts the pod gateway "
			    "address on the pod veths)",
			    what, name);
	return errf_sys(err, errlen, rc, "%s %s", what, name);
}

int gwdev_up(const char *name, struct in_addr addr, bool *created, char *err, size_t errlen)
{
	int fd, rc, ifindex = 0;
	bool dummy = false;

	*created = false;
	if (!name || !*name || strlen(name) >= IFNAMSIZ)
		return errf(err, errlen, -EINVAL, "--gateway-dev: bad interface name");
	fd = nl_open();
	if (fd < 0)
		return errf_sys(err, errlen, fd, "rtnetlink socket");
	rc = link_get(fd, name, &ifindex, &dummy);
	if (rc == -ENODEV) {
		for (size_t i = 0; i < sizeof(gw_kinds) / sizeof(gw_kinds[0]); i++) {
			rc = link_new(fd, name, gw_kinds[i]);
			if (rc != -EOPNOTSUPP) /* "Unknown device type": the next kind */
				break;
		}
		if (rc) {
			rc = perm_hint(err, errlen, rc, "creating dummy interface", name);
			goto out;
		}
		*created = true;
		rc = link_get(fd, name, &ifindex, &dummy);
	}
	if (rc) {
		rc = errf_sys(err, errlen, rc, "interface %s", name);
		goto out;
	}
	if (!dummy) {
		rc = errf(err, errlen, -EEXIST,
			  "interface %s exists and is not a dummy (or portless bridge) interface: "
			  "not taking it over "
			  "(pick another --gateway-dev)",
			  name);
		goto out;
	}
	rc = addr_add(fd, ifindex, addr);
	if (rc) {
		rc = perm_hint(err, errlen, rc, "adding the pod gateway address to", name);
		goto undo;
	}
	rc = link_up(fd, ifindex);
	if (rc) {
		rc = perm_hint(err, errlen, rc, "setting up", name);
		goto undo;
	}
	goto out;
undo:
	if (*created)
		link_del(fd, ifindex);
	*created = false;
out:
	close(fd);
	return rc;
}

int gwdev_down(const char *name, char *err, size_t errlen)
{
	int fd, rc, ifindex = 0;
	bool dummy = false;

	fd = nl_open();
	if (fd < 0)
		return errf_sys(err, errlen, fd, "rtnetlink socket");
	rc = link_get(fd, name, &ifindex, &dummy);
	if (!rc && !dummy)
		rc = errf(err, errlen, -EEXIST,
			  "interface %s is not ours (not a dummy): left alone", name);
	else if (!rc) {
		rc = link_del(fd, ifindex);
		if (rc)
			rc = errf_sys(err, errlen, rc, "deleting interface %s", name);
	}
	close(fd);
	return rc;
}
