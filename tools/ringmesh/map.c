/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `ringmesh map`: list the maps pinned under the pin dir and dump any of them.
 * The maps whose layout include/ringmesh/ declares are decoded (CIDRs, ports,
 * tuples, the proxy record, counters by reason, the config halves, the metric
 * slots); a map we do not know, or one whose key/value sizes no longer match the
 * headers, is dumped as hex like bpftool does, so a layout drift shows instead of
 * being misread.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "ringmesh/abi.h"
#include "ringmesh/cfg.h"
#include "ringmesh/stats.h"
#include "common/cfg.h"
#include "common/util.h"
#include "common/pin.h"
#include "common/prom.h"
#include "common/prom_src.h"
#include "cli.h"

/* ---- per-map entry printers ---- */

typedef void (*entry_fn)(const struct cli_map *m, const void *key, const void *val);

static void print_hex_bytes(const unsigned char *p, size_t n)
{
	size_t i;

	if (cli.jw) {
		json_start_array(cli.jw);
		for (i = 0; i < n; i++)
			json_printf(cli.jw, "0x%02x", p[i]);
		json_end_array(cli.jw);
		return;
	}
	for (i = 0; i < n; i++)
		printf("%s%02x", i ? " " : "", p[i]);
}

static void entry_hex(const struct cli_map *m, const void *key, const void *val)
{
	size_t stride = ((size_t)m->info.value_size + 7) & ~(size_t)7;
	int cpu;

	if (cli.jw) {
		json_start_object(cli.jw);
		json_name(cli.jw, "key");
		print_hex_bytes(key, m->info.key_size);
		if (!val) {
			json_null_field(cli.jw, "value");
		} else if (cli_map_is_percpu(m)) {
			json_name(cli.jw, "values");
			json_start_array(cli.jw);
			for (cpu = 0; cpu < cli_ncpus(); cpu++) {
				json_start_object(cli.jw);
				json_int_field(cli.jw, "cpu", cpu);
				json_name(cli.jw, "value");
				print_hex_bytes((const unsigned char *)val + stride * (size_t)cpu,
						m->info.value_size);
				json_end_object(cli.jw);
			}
			json_end_array(cli.jw);
		} else {
			json_name(cli.jw, "value");
			print_hex_bytes(val, m->info.value_size);
		}
		json_end_object(cli.jw);
		return;
	}
	printf("key: ");
	print_hex_bytes(key, m->info.key_size);
	if (!val) {
		printf("  value: <not readable from userspace>\n");
	} else if (cli_map_is_percpu(m)) {
		printf("\n");
		for (cpu = 0; cpu < cli_ncpus(); cpu++) {
			printf("  value (CPU %02d): ", cpu);
			print_hex_bytes((const unsigned char *)val + stride * (size_t)cpu,
					m->info.value_size);
			printf("\n");
		}
	} else {
		printf("%svalue: ", m->info.key_size + m->info.value_size > 24 ? "\n" : "  ");
		print_hex_bytes(val, m->info.value_size);
		printf("\n");
	}
}

static uint64_t small_uint(const void *p, size_t n)
{
	uint64_t v = 0;

	memcpy(&v, p, n < sizeof(v) ? n : sizeof(v)); /* little endian host */
	return v;
}

static void entry_lpm(const struct cli_map *m, const void *key, const void *val)
{
	const struct rm_lpm_key *k = key;
	static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
	char ab[INET6_ADDRSTRLEN + 1], cidr[64];
	unsigned int plen = k->prefixlen;

	cli_addr_str(k->addr, ab, sizeof(ab));
	/* mapped IPv4 keys carry 96 bits of ::ffff: before the IPv4 prefix */
	if (plen >= 96 && !memcmp(k->addr, mapped, sizeof(mapped)))
		snprintf(cidr, sizeof(cidr), "%s/%u", ab, plen - 96);
	else
		snprintf(cidr, sizeof(cidr), "%s/%u", ab, plen);
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "cidr", cidr);
		json_uint_field(cli.jw, "prefixlen", plen);
		json_uint_field(cli.jw, "value", small_uint(val, m->info.value_size));
		json_end_object(cli.jw);
	} else {
		printf("%s\n", cidr);
	}
}

static void entry_xport(const struct cli_map *m, const void *key, const void *val)
{
	uint16_t port;

	memcpy(&port, key, sizeof(port)); /* host order: see bpf/lib/maps.h */
	if (cli.jw) {
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "port", port);
		json_uint_field(cli.jw, "value", small_uint(val, m->info.value_size));
		json_end_object(cli.jw);
	} else {
		printf("port %u\n", port);
	}
}

static const char *msg_mode_str(uint32_t mode)
{
	switch (mode) {
	case RM_MSG_UNDECIDED:
		return "undecided";
	case RM_MSG_REDIRECT:
		return "redirect";
	case RM_MSG_TCP:
		return "tcp";
	default:
		return "unknown";
	}
}

static void tuple_str(const struct rm_tuple *t, char *l, char *r, size_t len)
{
	cli_endpoint_str(&t->laddr, t->lport, l, len);
	cli_endpoint_str(&t->raddr, t->rport, r, len);
}

static void orig_fields(const struct rm_orig *o)
{
	char dst[80];

	cli_endpoint_str(&o->addr, o->port, dst, sizeof(dst));
	if (cli.jw) {
		json_string_field(cli.jw, "orig_dst", dst);
		json_uint_field(cli.jw, "tgid", o->tgid);
		json_uint_field(cli.jw, "cgroup_id", o->cgroup_id);
		json_uint_field(cli.jw, "netns_cookie", o->netns_cookie);
		json_string_field(cli.jw, "msg_mode", msg_mode_str(o->msg_mode));
	} else {
		printf("orig_dst %s  tgid %u  cgroup %llu  netns %llu  msg %s\n", dst, o->tgid,
		       (unsigned long long)o->cgroup_id, (unsigned long long)o->netns_cookie,
		       msg_mode_str(o->msg_mode));
	}
}

static void entry_orig(const struct cli_map *m, const void *key, const void *val)
{
	char l[80], r[80];

	tuple_str(key, l, r, sizeof(l));
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "local", l);
		json_string_field(cli.jw, "remote", r);
		orig_fields(val);
		json_end_object(cli.jw);
	} else {
		printf("%s -> %s  ", l, r);
		orig_fields(val);
	}
}

static void entry_orig_ck(const struct cli_map *m, const void *key, const void *val)
{
	uint64_t cookie;

	memcpy(&cookie, key, sizeof(cookie));
	if (cli.jw) {
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "cookie", cookie);
		orig_fields(val);
		json_end_object(cli.jw);
	} else {
		printf("cookie %llu  ", (unsigned long long)cookie);
		orig_fields(val);
	}
}

static void entry_sock(const struct cli_map *m, const void *key, const void *val)
{
	char l[80], r[80];

	/* a sockhash value (an fd) cannot be read back: the key is the information */
	tuple_str(key, l, r, sizeof(l));
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "local", l);
		json_string_field(cli.jw, "remote", r);
		json_end_object(cli.jw);
	} else {
		printf("%s -> %s\n", l, r);
	}
}

static void entry_proxy(const struct cli_map *m, const void *key, const void *val)
{
	struct rm_proxy_cfg p;
	uint32_t idx;

	memcpy(&idx, key, sizeof(idx));
	memcpy(&p, val, sizeof(p));
	if (cli.jw) {
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "index", idx);
		cli_proxy_fields(&p, mono_ns());
		json_end_object(cli.jw);
	} else {
		printf("[%u]\n", idx);
		cli_proxy_fields(&p, mono_ns());
	}
}

static void entry_dpstat(const struct cli_map *m, const void *key, const void *val)
{
	uint32_t idx;
	uint64_t sum;
	const char *name;
	char buf[32];

	memcpy(&idx, key, sizeof(idx));
	cli_percpu_sum_u64(m, val, &sum, 1);
	name = prom_dp_stat_name(idx);
	if (!name) {
		snprintf(buf, sizeof(buf), "reason_%u", idx);
		name = buf;
	}
	if (cli.jw) {
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "index", idx);
		json_string_field(cli.jw, "reason", name);
		json_uint_field(cli.jw, "count", sum);
		json_end_object(cli.jw);
	} else {
		printf("%-14s %llu\n", name, (unsigned long long)sum);
	}
}

static void entry_cfg_ctl(const struct cli_map *m, const void *key, const void *val)
{
	struct rm_cfg_ctl c;
	char domain[RM_CFG_DOMAIN_LEN];

	memcpy(&c, val, sizeof(c));
	cfg_ctl_domain(&c, domain);
	if (cli.jw) {
		json_start_object(cli.jw);
		json_bool_field(cli.jw, "initialised", c.magic == RM_CFG_MAGIC);
		json_uint_field(cli.jw, "abi_version", c.abi_version);
		json_uint_field(cli.jw, "generation", c.generation);
		json_uint_field(cli.jw, "active", c.active);
		json_name(cli.jw, "seq");
		json_start_array(cli.jw);
		json_uint(cli.jw, c.seq[0]);
		json_uint(cli.jw, c.seq[1]);
		json_end_array(cli.jw);
		json_uint_field(cli.jw, "updated_ns", c.updated_ns);
		json_string_field(cli.jw, "domain", domain);
		json_end_object(cli.jw);
	} else {
		printf("magic %s  abi %u  generation %llu  active half %u  seq [%llu, %llu]  "
		       "domain %s\n",
		       c.magic == RM_CFG_MAGIC ? "ok" : "unset", c.abi_version,
		       (unsigned long long)c.generation, c.active, (unsigned long long)c.seq[0],
		       (unsigned long long)c.seq[1], domain);
	}
}

/* rm_stats is a run of pages holding a header, key slots and a row pool (stats.h):
 * decoded whole, as the header and the live slots, not page by page. */
static int dump_stats(const struct cli_map *m)
{
	struct prom_stats_map sm;
	const struct rm_stats_hdr *h;
	struct prom_series *s;
	size_t n = 1;
	char why[256];

	if (prom_stats_map_open(&sm, cli.pin_dir, why, sizeof(why))) {
		p_err("%s", why);
		return -1;
	}
	s = malloc(sizeof(*s));
	if (!s) {
		prom_stats_map_close(&sm);
		p_err("out of memory");
		return -1;
	}
	h = sm.s.h;
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "map", RM_MAP_STATS);
		json_string_field(cli.jw, "type", cli_map_type_str(m->info.type));
		json_uint_field(cli.jw, "id", m->info.id);
		json_bool_field(cli.jw, "decoded", true);
		json_name(cli.jw, "entries");
		json_start_array(cli.jw);
		json_start_object(cli.jw);
		json_uint_field(cli.jw, "index", 0);
		json_uint_field(cli.jw, "slots", h ? h->n_slots : 0);
		cli_stats_hdr_fields(h);
		json_end_object(cli.jw);
	} else if (h) {
		printf(
		    "header: initialised  slots %u  rows %u of %u  dropped %llu  pool_full %llu  "
		    "generation %llu\n",
		    h->n_slots, h->rows_used, h->n_rows, (unsigned long long)h->dropped,
		    (unsigned long long)h->pool_full, (unsigned long long)h->generation);
	} else {
		printf("header: not initialised\n");
	}
	for (uint32_t i = 0; i < sm.s.n_slots; i++) {
		if (__atomic_load_n(&sm.s.slots[i].state, __ATOMIC_ACQUIRE) != RM_STATS_LIVE)
			continue; /* free slots are noise */
		prom_series_copy(&sm.s, i, s);
		cli_stats_slot_print(i, s);
		n++;
	}
	if (cli.jw) {
		json_end_array(cli.jw);
		json_end_object(cli.jw);
	} else {
		printf("Found %zu element%s (the header and the live slots of %u pages)\n", n,
		       n == 1 ? "" : "s", m->info.max_entries);
	}
	free(s);
	prom_stats_map_close(&sm);
	return 0;
}

/* Entry printers of the maps common/pin.c knows; the layout comes from its table. */
static const struct decoder {
	const char *name;
	entry_fn fn;
} decoders[] = {
    {RM_MAP_INCLUDE, entry_lpm}, {RM_MAP_EXCLUDE, entry_lpm},	  {RM_MAP_XPORTS, entry_xport},
    {RM_MAP_ORIG, entry_orig},	 {RM_MAP_ORIG_CK, entry_orig_ck}, {RM_MAP_SOCKS, entry_sock},
    {RM_MAP_PROXY, entry_proxy}, {RM_MAP_DPSTATS, entry_dpstat},  {RM_MAP_CFG_CTL, entry_cfg_ctl},
};

static entry_fn decoder_for(const char *name, const struct cli_map *m, bool *no_value)
{
	const struct pin_def *d = pin_find(name);

	*no_value = d && (d->use & PIN_U_NO_VALUE);
	/* the layout drifted: show raw bytes, not a misreading */
	if (!d || pin_check(d, &m->info, PIN_CHECK_SHAPE, m->path, NULL, 0))
		return NULL;
	for (size_t i = 0; i < sizeof(decoders) / sizeof(decoders[0]); i++)
		if (!strcmp(decoders[i].name, name))
			return decoders[i].fn;
	return NULL; /* ours, but no printer (rm_breaker: see `breaker show`) */
}

static int map_dump_one(const char *name)
{
	entry_fn d;
	bool no_value;
	struct cli_map m;
	void *key = NULL, *next = NULL, *val = NULL;
	size_t n = 0, limit;
	int err;

	err = cli_map_open(name, false, &m);
	if (err == -ENOENT) {
		p_err("no map '%s' pinned at %s", name, cli.pin_dir);
		return -1;
	}
	if (err == -EINVAL) {
		p_err("%s/%s is not a map", cli.pin_dir, name);
		return -1;
	}
	if (err) {
		p_err("cannot open %s/%s: %s", cli.pin_dir, name, strerror(-err));
		return -1;
	}
	d = decoder_for(name, &m, &no_value);
	if (!strcmp(name, RM_MAP_STATS) &&
	    !pin_check(pin_find(name), &m.info, PIN_CHECK_SHAPE, m.path, NULL, 0)) {
		err = dump_stats(&m);
		cli_map_close(&m);
		return err;
	}
	key = calloc(1, m.info.key_size ? m.info.key_size : 1);
	next = calloc(1, m.info.key_size ? m.info.key_size : 1);
	val = calloc(1, cli_map_value_size(&m) ? cli_map_value_size(&m) : 1);
	if (!key || !next || !val) {
		p_err("out of memory for %s (value %zu bytes)", name, cli_map_value_size(&m));
		err = -1;
		goto out;
	}
	if (cli.jw) {
		json_start_object(cli.jw);
		json_string_field(cli.jw, "map", name);
		json_string_field(cli.jw, "type", cli_map_type_str(m.info.type));
		json_uint_field(cli.jw, "id", m.info.id);
		json_bool_field(cli.jw, "decoded", d != NULL);
		json_name(cli.jw, "entries");
		json_start_array(cli.jw);
	}
	/* hash maps restart from the top when the current key vanishes under us: bound it */
	limit = (size_t)m.info.max_entries * 2 + 16;
	err = bpf_map_get_next_key(m.fd, NULL, next);
	while (!err && limit--) {
		bool have_val = !no_value;

		if (have_val && bpf_map_lookup_elem(m.fd, next, val)) {
			if (errno != ENOENT && errno != ENOSPC && errno != EOPNOTSUPP) {
				err = -errno;
				break;
			}
			/* deleted meanwhile (ENOENT) or not readable (sock maps): key only */
			have_val = false;
			if (errno == ENOENT)
				goto advance;
		}
		if (d)
			d(&m, next, have_val ? val : NULL);
		else
			entry_hex(&m, next, have_val ? val : NULL);
		n++;
	advance:
		memcpy(key, next, m.info.key_size);
		err = bpf_map_get_next_key(m.fd, key, next);
	}
	if (err && errno != ENOENT) {
		err = -errno;
		p_err("reading %s: %s", name, strerror(-err));
		err = -1;
		goto out;
	}
	err = 0;
	if (cli.jw) {
		json_end_array(cli.jw);
		json_end_object(cli.jw);
	} else {
		printf("Found %zu element%s\n", n, n == 1 ? "" : "s");
	}
out:
	free(key);
	free(next);
	free(val);
	cli_map_close(&m);
	return err;
}

static int map_dump(int argc, char **argv)
{
	if (argc < 1) {
		p_err("'map dump' needs a map name; try '%s map list'", cli.bin);
		return -1;
	}
	if (argc > 1) {
		p_err("'map dump' takes one map name, %d given", argc);
		return -1;
	}
	return map_dump_one(argv[0]);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int map_list(int argc, char **argv)
{
	struct cli_table *t = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	if (argc) {
		p_err("'map list' takes no arguments");
		return -1;
	}
	dir = opendir(cli.pin_dir);
	if (!dir) {
		p_err("cannot list %s: %s", cli.pin_dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? cap * 2 : 32) * sizeof(*p));

			if (!p)
				break;
			names = p;
		}
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	closedir(dir);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	if (cli.jw) {
		json_start_array(cli.jw);
	} else {
		static const char *const hdr[] = {"NAME", "TYPE", "KEY", "VALUE", "MAX", "ID"};

		t = cli_table_new(6, hdr);
		if (!t) {
			p_err("out of memory");
			ret = -1;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		struct cli_map m;
		char ks[16], vs[16], me[16], id[16];

		if (cli_map_open(names[i], false, &m))
			continue; /* links, lock files: not maps */
		if (cli.jw) {
			json_start_object(cli.jw);
			json_string_field(cli.jw, "name", names[i]);
			json_string_field(cli.jw, "type", cli_map_type_str(m.info.type));
			json_uint_field(cli.jw, "key_size", m.info.key_size);
			json_uint_field(cli.jw, "value_size", m.info.value_size);
			json_uint_field(cli.jw, "max_entries", m.info.max_entries);
			json_uint_field(cli.jw, "id", m.info.id);
			json_end_object(cli.jw);
		} else {
			snprintf(ks, sizeof(ks), "%u", m.info.key_size);
			snprintf(vs, sizeof(vs), "%u", m.info.value_size);
			snprintf(me, sizeof(me), "%u", m.info.max_entries);
			snprintf(id, sizeof(id), "%u", m.info.id);
			cli_table_rowf(t, names[i], cli_map_type_str(m.info.type), ks, vs, me, id);
		}
		cli_map_close(&m);
	}
	if (cli.jw)
		json_end_array(cli.jw);
	else if (cli_table_nrows(t))
		cli_table_print(t);
	else
		printf("no maps pinned at %s\n", cli.pin_dir);
out:
	cli_table_free(t);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

static int map_help(int argc, char **argv)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "Usage: %1$s map { list | help }\n"
		 "       %1$s map dump MAP\n"
		 "\n"
		 "       " HELP_SPEC_MAP "\n"
		 "       " HELP_SPEC_OPTIONS "\n"
		 "\n"
		 "       Maps are looked up by name under the pin dir (%2$s).\n"
		 "       Known layouts are decoded; others are shown as hex.\n",
		 cli.bin, cli.pin_dir);
	return cli_help_print(text);
}

static const struct cli_cmd cmds[] = {
    {"list", map_list},
    {"dump", map_dump},
    {"help", map_help},
    {0},
};

int do_map(int argc, char **argv)
{
	return cli_cmd_select(cmds, argc, argv, map_help, "map command");
}
