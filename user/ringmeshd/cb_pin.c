/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cb_pin: struct cb over the pinned rm_breaker map (see cb_pin.h). */
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "common/pin.h"
#include "ringmeshd/cb_pin.h"

int cb_open(struct cb *cb, const char *pin_dir, uint64_t realtime_ns, char *err, size_t errlen)
{
	struct pin_map m;
	int r;

	memset(cb, 0, sizeof(*cb));
	cb->fd = -1;
	r = pin_open(&m, PIN_BREAKER, pin_dir, PIN_O_MMAP, err, errlen);
	if (r)
		return r;
	cb_attach(cb, m.mem, realtime_ns);
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
