/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The RCU-like publication of configurations to workers (cfgwatch.c). Split from
 * test_l7.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "ringmeshd/cfgwatch.h"

static struct rm_cfg *one_service_cfg(uint64_t gen)
{
	struct rm_cfg *c = calloc(1, sizeof(*c));
	static const char st[] = "\0svc.ns.svc.cluster.local\0svc\0ns\0version\0v1";

	assert_int_equal(cfg_init(c), 0);
	for (int t = 0; t <= RM_CFG_T_STRTAB; t++)
		assert_int_equal(cfg_reserve(c, t, 64), 0);
	c->generation = gen;

	memcpy(c->strtab, st, sizeof(st));
	c->strtab_len = sizeof(st);
	c->n_services = 1;
	c->services[0].host_off = 1;
	c->services[0].name_off = 26;
	c->services[0].ns_off = 30;
	c->services[0].flags = RM_SF_DECLARED;
	c->services[0].n_addrs = 1;
	c->services[0].addrs[0].a8[10] = 0xff;
	c->services[0].addrs[0].a8[11] = 0xff;
	c->services[0].addrs[0].a8[12] = 10;
	c->services[0].addrs[0].a8[13] = 96;
	c->services[0].addrs[0].a8[15] = 20;
	c->services[0].n_ports = 1;
	c->services[0].ports[0].port = htons(8080);
	c->services[0].ports[0].proto = RM_PROTO_HTTP;
	c->services[0].endpoint_first = 0;
	c->services[0].endpoint_count = 1;
	c->n_endpoints = 1;
	c->endpoints[0].addr = c->services[0].addrs[0];
	c->endpoints[0].addr.a8[13] = 244;
	c->endpoints[0].family = 2;
	c->endpoints[0].label_first = 0;
	c->endpoints[0].label_count = 1;
	c->n_labels = 1;
	c->labels[0].key_off = 33;
	c->labels[0].val_off = 41;
	return c;
}

static void test_cfgw_publish_reclaim(void **state)
{
	struct cfgw cw;
	struct cfgw_cfg *first, *held, *now;
	struct rm_cfg *snap = one_service_cfg(7), *bad;
	char err[256];
	int svc;

	assert_int_equal(cfgw_init(&cw, 2, err, sizeof(err)), 0);
	first = cfgw_current(&cw);
	assert_int_equal(route_n_services(first->t), 0);
	/* worker 0 starts a request on the empty configuration and keeps it */
	held = cfgw_current(&cw);
	cfgw_hold(held, 0);
	if (cfgw_publish(&cw, snap, err, sizeof(err)))
		fail_msg("publish: %s", err);
	now = cfgw_current(&cw);
	assert_ptr_not_equal(now, first);
	assert_int_equal(now->gen, 7);
	svc = route_find_service(now->t, &snap->services[0].addrs[0], htons(8080));
	assert_int_equal(svc, 0);
	assert_string_equal(now->ep_version[0], "v1");
	/* no worker passed a quiescent point: nothing can be freed */
	assert_int_equal(cfgw_reclaim(&cw), 1);
	cfgw_quiescent(&cw, 0);
	cfgw_quiescent(&cw, 1);
	assert_int_equal(cfgw_reclaim(&cw), 1); /* worker 0 still holds it for a request */
	cfgw_drop(held, 0);
	assert_int_equal(cfgw_reclaim(&cw), 0);
	/* a bad snapshot keeps the current configuration */
	bad = one_service_cfg(8);
	bad->services[0].endpoint_count = 5; /* beyond n_endpoints */
	assert_int_not_equal(cfgw_publish(&cw, bad, err, sizeof(err)), 0);
	assert_true(strlen(err) > 0);
	assert_ptr_equal(cfgw_current(&cw), now);
	assert_int_equal(cw.rejected, 1);
	/* a reader that has not passed a quiescent point since the flip blocks reclaim */
	assert_int_equal(cfgw_publish(&cw, snap, err, sizeof(err)), 0);
	cfgw_quiescent(&cw, 0);
	assert_int_equal(cfgw_reclaim(&cw), 1);
	cfgw_quiescent(&cw, 1);
	assert_int_equal(cfgw_reclaim(&cw), 0);
	cfgw_fini(&cw);
	cfg_free(snap);
	free(snap);
	cfg_free(bad);
	free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cfgw_publish_reclaim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
