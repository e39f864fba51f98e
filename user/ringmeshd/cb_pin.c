/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cb_pin: struct cb over the pinned rm_breaker map (see cb_pin.h). */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "common/pin.h"
#include "common/util.h"
#include "ringmeshd/cb_pin.h"

int cb_open(struct cb *cb, const char *pin_dir, uint32_t pools, uint32_t hosts,
	    uint64_t realtime_ns, char *err, size_t errlen)
{
	struct pin_map m;
	uint32_t np, nh;
	int r;

	memset(cb, 0, sizeof(*cb));
	cb->fd = -1;
	cb_size(pools, hosts, &np, &nh);
	r = pin_open_sized(&m, PIN_BREAKER, pin_dir, PIN_O_MMAP, cb_pages(np, nh), err, errlen);
	if (r)
		return r;
	r = cb_attach(cb, m.mem, m.mem_len, np, nh, realtime_ns);
	if (r) {
		const struct rm_cb_hdr *h = m.mem;

		r = errf(err, errlen, r,
			 "%s: pinned map holds %u pools and %u hosts, want %u and %u "
			 "(--breaker-pools, --breaker-hosts): built from other headers?",
			 m.path, h->n_pools, h->n_hosts, np, nh);
		pin_close(&m);
		return r;
	}
	cb->map = m.mem;
	cb->map_len = m.mem_len;
	cb->fd = m.fd;
	return 0;
}

void cb_close(struct cb *cb)
{
	if (cb->map)
		munmap(cb->map, cb->map_len);
	if (cb->fd >= 0)
		close(cb->fd);
	memset(cb, 0, sizeof(*cb));
	cb->fd = -1;
}
