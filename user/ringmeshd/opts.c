/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ringmeshd command-line parsing. Hand-rolled rather than getopt_long: getopt
 * prints its own messages and keeps global state, and we want every message to
 * name the option and the value, in one buffer, testable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "common/util.h"
#include "policy/trace.h"
#include "ringmesh/breaker.h"
#include "ringmesh/stats.h"
#include "ringmeshd/l7.h" /* L7_DEF_*: the one place of the defaults */
#include "ringmeshd/opts.h"

#define STR_(x) #x
#define STR(x) STR_(x)

enum opt_id {
	O_CGROUP,
	O_INCLUDE,
	O_EXCLUDE,
	O_XPORTS,
	O_LISTEN,
	O_POD_GW,
	O_PIN_DIR,
	O_WORKERS,
	O_BALANCE,
	O_SOCKMAP,
	O_NO_SOCKMAP,
	O_HB_MAX,
	O_NO_L7,
	O_MAX_HEAD,
	O_CONN_TO,
	O_IDLE_MS,
	O_MAX_IDLE,
	O_REQ_BUFS,
	O_MAX_MIRRORS,
	O_STATS_KEYS,
	O_CB_POOLS,
	O_CB_HOSTS,
	O_METRICS,
	O_ZIPKIN,
	O_SAMPLING,
	O_GW_DEV,
	O_DRAIN,
	O_ROOT_CG,
	O_VERBOSE,
	O_HELP,
	O_VERSION,
	O_MAX,
};

struct opt_def {
	const char *name; /* long name without "--" */
	char short_name;  /* 0: none */
	bool has_arg;
};

static const struct opt_def opt_defs[O_MAX] = {
    [O_CGROUP] = {"cgroup", 0, true},
    [O_INCLUDE] = {"include-ip-ranges", 0, true},
    [O_EXCLUDE] = {"exclude-ip-ranges", 0, true},
    [O_XPORTS] = {"exclude-ports", 0, true},
    [O_LISTEN] = {"listen", 0, true},
    [O_POD_GW] = {"pod-gateway", 0, true},
    [O_PIN_DIR] = {"pin-dir", 0, true},
    [O_WORKERS] = {"workers", 0, true},
    [O_BALANCE] = {"accept-balance", 0, true},
    [O_SOCKMAP] = {"sockmap", 0, false},
    [O_NO_SOCKMAP] = {"no-sockmap", 0, false},
    [O_HB_MAX] = {"heartbeat-max-ms", 0, true},
    [O_NO_L7] = {"no-l7", 0, false},
    [O_MAX_HEAD] = {"max-request-headers-kb", 0, true},
    [O_CONN_TO] = {"connect-timeout-ms", 0, true},
    [O_IDLE_MS] = {"upstream-idle-timeout-ms", 0, true},
    [O_MAX_IDLE] = {"upstream-max-idle", 0, true},
    [O_REQ_BUFS] = {"request-buffers", 0, true},
    [O_MAX_MIRRORS] = {"max-mirrors", 0, true},
    [O_STATS_KEYS] = {"stats-keys", 0, true},
    [O_CB_POOLS] = {"breaker-pools", 0, true},
    [O_CB_HOSTS] = {"breaker-hosts", 0, true},
    [O_METRICS] = {"metrics-listen", 0, true},
    [O_ZIPKIN] = {"zipkin-url", 0, true},
    [O_SAMPLING] = {"trace-sampling", 0, true},
    [O_GW_DEV] = {"gateway-dev", 0, true},
    [O_DRAIN] = {"drain-timeout", 0, true},
    [O_ROOT_CG] = {"allow-root-cgroup", 0, false},
    [O_VERBOSE] = {"verbose", 'v', false},
    [O_HELP] = {"help", 'h', false},
    [O_VERSION] = {"version", 0, false},
};

/* The defaults in the text are l7.h's own numbers. */
#define DEF_CONNECT STR(L7_DEF_CONNECT_MS)
#define DEF_IDLE STR(L7_DEF_IDLE_MS)
#define DEF_MAX_IDLE STR(L7_DEF_MAX_IDLE)
#define DEF_REQ_BUFS STR(L7_DEF_REQ_BUFS)
#define DEF_MAX_MIRRORS STR(L7_DEF_MAX_MIRRORS)

/* clang-format off */
static const char usage_text[] =
    "Usage: ringmeshd --cgroup PATH --include-ip-ranges CIDR[,CIDR...] [OPTIONS]\n"
    "\n"
    "Node proxy of the ringmesh service mesh: attaches the interception programs to\n"
    "the pods' cgroup and forwards the intercepted TCP connections.\n"
    "\n"
    "Required:\n"
    "  --include-ip-ranges LIST      destinations to intercept, e.g. 10.96.0.0/12\n"
    "Options:\n"
    "  --cgroup PATH                 pods' parent cgroup (cgroup2); a relative PATH is\n"
    "                                taken under the cgroup2 mount (/sys/fs/cgroup or\n"
    "                                /sys/fs/cgroup/unified); default: the kubelet's\n"
    "                                kubepods.slice or kubepods there. Never the root\n"
    "  --allow-root-cgroup           accept the cgroup2 root as --cgroup (every process\n"
    "                                on the node is then intercepted)\n"
    "  --exclude-ip-ranges LIST      destinations never intercepted\n"
    "  --exclude-ports LIST          destination ports never intercepted, e.g. 22,15090\n"
    "  --listen ADDR:PORT            proxy listener (default " OPTS_LISTEN_DEFAULT ")\n"
    "  --pod-gateway ADDR            address pods in other netns reach the proxy on,\n"
    "                                same port as --listen (default " OPTS_POD_GW_DEFAULT ")\n"
    "  --pin-dir DIR                 bpffs directory for maps and links\n"
    "                                (default " RM_PIN_DIR_DEFAULT ")\n"
    "  --workers N                   worker threads, 1..64 (default: online CPUs)\n"
    "  --accept-balance MODE         reuseport: a connection is served by the worker\n"
    "                                the kernel's hash of its addresses picks; exact:\n"
    "                                by the one holding fewest (Envoy's exact_balance;\n"
    "                                a hop between workers for some) (default reuseport)\n"
    "  --sockmap, --no-sockmap       the sk_msg shortcut between pods and the proxy on or\n"
    "                                off (default: " OPTS_SOCKMAP_DEFAULT_WORD ")\n"
    "  --heartbeat-max-ms MS         interception fails open after MS without a beat\n"
    "                                (400..60000, default 1000)\n"
    "  --no-l7                       forward every connection at L4 (no HTTP routing)\n"
    "  --max-request-headers-kb KB   request/response head limit, 1..60 (default 60)\n"
    "  --connect-timeout-ms MS       upstream connect timeout, 10..600000 (default " DEF_CONNECT ")\n"
    "  --upstream-idle-timeout-ms MS idle keep-alive upstream connections are closed\n"
    "                                after MS, 100..3600000 (default " DEF_IDLE ")\n"
    "  --upstream-max-idle N         most idle upstream connections kept per endpoint\n"
    "                                and worker, 1..10000 (default " DEF_MAX_IDLE "); the pool\n"
    "                                keeps 64 and grows towards N with demand\n"
    "  --request-buffers N           HTTP requests under way at once per worker\n"
    "                                (16..1000000, default " DEF_REQ_BUFS "): each borrows a\n"
    "                                buffer block meanwhile, an idle connection\n"
    "                                holds none; more wait, not read\n"
    "  --max-mirrors N               shadow copies of mirrored requests (a route's\n"
    "                                mirror) in flight per worker, 1..65536 (default\n"
    "                                " DEF_MAX_MIRRORS "); more are skipped and counted\n"
    "  --stats-keys N                metric keys (destination x caller) rm_stats holds,\n"
    "                                " STR(RM_STATS_KEYS_MIN) ".." STR(RM_STATS_KEYS_MAX) " (default " STR(RM_STATS_SLOTS) "), with 2 N rows of\n"
    "                                (code, flags) series in a shared pool; more are\n"
    "                                counted in the overflow series. Another N re-creates\n"
    "                                the map at a fresh start; no hand-over across it\n"
    "  --breaker-pools N             balancer pools (service x subset) in use on the node\n"
    "                                that get circuit breaking and outlier ejection,\n"
    "                                " STR(RM_CB_POOLS_MIN) ".." STR(RM_CB_POOLS_MAX) " (default " STR(RM_CB_POOLS) ", ~2.5 KiB each); pools\n"
    "                                past it run without limits (counted in\n"
    "                                ringmesh_breaker_table_full_total)\n"
    "  --breaker-hosts M             their host slots (pool x endpoint port),\n"
    "                                " STR(RM_CB_HOSTS_MIN) ".." STR(RM_CB_HOSTS_MAX) " (default " STR(RM_CB_HOSTS_PER_POOL) " per pool). Other\n"
    "                                sizes re-create rm_breaker at a fresh start; no\n"
    "                                hand-over across them\n"
    "  --metrics-listen ADDR:PORT    Prometheus metrics (/stats/prometheus, /metrics) and\n"
    "                                /healthz/ready; off disables (default " OPTS_METRICS_DEFAULT ")\n"
    "  --zipkin-url URL              report a Zipkin v2 span per sampled request to\n"
    "                                http://HOST[:PORT][/PATH] (path default " ZIPKIN_DEFAULT_PATH ");\n"
    "                                https is not supported (default: off)\n"
    "  --trace-sampling PERCENT      requests that start a trace here and are sampled,\n"
    "                                0..100, decimals allowed (default 1, as Istio)\n"
    "  --gateway-dev NAME            dummy interface that carries --pod-gateway in this\n"
    "                                network namespace; off when the CNI provides the\n"
    "                                address (default " OPTS_GW_DEV_DEFAULT ")\n"
    "  --drain-timeout SECONDS       after a hand-over to a successor or a SIGTERM,\n"
    "                                in-flight requests get this long before the\n"
    "                                rest are reset, 0..3600 (default " STR(OPTS_DRAIN_DEFAULT_S) ")\n"
    "  -v, --verbose                 more log lines (repeat for more)\n"
    "  -h, --help                    this text\n"
    "  --version                     print the version\n";
/* clang-format on */

const char *opts_usage(void)
{
	return usage_text;
}

/* A sub-parser's message, prefixed with the option; the value is named once. */
static int sub_fail(char *err, size_t errlen, const char *opt, const char *v, const char *why,
		    int r)
{
	if (!why[0])
		why = strerror(-r);
	if (v[0] && strstr(why, v))
		return errf(err, errlen, -EINVAL, "--%s: %s", opt, why);
	return errf(err, errlen, -EINVAL, "--%s '%s': %s", opt, v, why);
}

/* Strict decimal: digits only, no sign, no spaces, no overflow. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (max - (unsigned long)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return 0;
}

/* A map's capacity (--stats-keys, --breaker-pools, --breaker-hosts) in min..max. */
static int parse_size(const char *name, const char *v, uint32_t min, uint32_t max, uint32_t *out,
		      char *err, size_t errlen)
{
	unsigned long n;

	if (parse_uint(v, 1000000000, &n) || n < min || n > max)
		return errf(err, errlen, -EINVAL, "--%s '%s': must be a number in %u..%u", name, v,
			    min, max);
	*out = (uint32_t)n;
	return 0;
}

/* Has the path a ".." component? The daemon removes things under --pin-dir. */
static bool has_dotdot(const char *p)
{
	const char *c = p;

	while ((c = strstr(c, "..")) != NULL) {
		bool start = c == p || c[-1] == '/';
		bool end = c[2] == '\0' || c[2] == '/';

		if (start && end)
			return true;
		c += 2;
	}
	return false;
}

/* Compare paths ignoring repeated and trailing slashes. */
static bool path_eq(const char *a, const char *b)
{
	for (;;) {
		while (a[0] == '/' && (a[1] == '/' || a[1] == '\0'))
			a++;
		while (b[0] == '/' && (b[1] == '/' || b[1] == '\0'))
			b++;
		if (*a != *b)
			return false;
		if (!*a)
			return true;
		a++;
		b++;
	}
}

static int check_path(const char *opt, const char *v, bool relative_ok, char *err, size_t errlen)
{
	if (!*v)
		return errf(err, errlen, -EINVAL, "--%s: empty path", opt);
	if (v[0] != '/' && !relative_ok)
		return errf(err, errlen, -EINVAL, "--%s '%s': must be an absolute path", opt, v);
	if (has_dotdot(v))
		return errf(err, errlen, -EINVAL, "--%s '%s': '..' components are not allowed", opt,
			    v);
	if (strlen(v) >= 4096)
		return errf(err, errlen, -EINVAL, "--%s: path longer than 4095 bytes", opt);
	return 0;
}

static int set_value(struct rm_opts *o, enum opt_id id, const char *v, char *err, size_t errlen)
{
	const char *name = opt_defs[id].name;
	char why[160] = "";
	unsigned long n;
	int r;

	switch (id) {
	case O_CGROUP:
		/* Relative: under the cgroup2 mount, which main() finds. */
		r = check_path(name, v, v[0] != '/', err, errlen);
		if (r)
			return r;
		o->cgroup_path = v;
		return 0;
	case O_GW_DEV:
		if (!strcmp(v, "off")) {
			o->gateway_dev = NULL;
			return 0;
		}
		if (!*v || strlen(v) >= 16 || strchr(v, '/') || strchr(v, ' ') || !strcmp(v, ".") ||
		    !strcmp(v, ".."))
			return errf(err, errlen, -EINVAL,
				    "--gateway-dev '%s': not an interface name (1..15 characters, "
				    "no '/' or space) or off",
				    v);
		o->gateway_dev = v;
		return 0;
	case O_PIN_DIR:
		r = check_path(name, v, false, err, errlen);
		if (r)
			return r;
		if (path_eq(v, "/") || path_eq(v, "/sys/fs/bpf"))
			return errf(
			    err, errlen, -EINVAL,
			    "--pin-dir '%s': must be a directory of its own, not a mount root", v);
		o->pin_dir = v;
		return 0;
	case O_INCLUDE:
	case O_EXCLUDE: {
		struct rm_cidr *tab = id == O_INCLUDE ? o->include : o->exclude;

		r = rm_cidr_parse_list(v, tab, RM_MAX_RANGES, why, sizeof(why));
		if (r < 0)
			return sub_fail(err, errlen, name, v, why, r);
		if (r == 0)
			return errf(err, errlen, -EINVAL, "--%s: empty list", name);
		if (id == O_INCLUDE)
			o->n_include = (size_t)r;
		else
			o->n_exclude = (size_t)r;
		return 0;
	}
	case O_XPORTS:
		r = rm_ports_parse_list(v, o->exclude_ports, RM_MAX_XPORTS, why, sizeof(why));
		if (r < 0)
			return sub_fail(err, errlen, name, v, why, r);
		if (r == 0)
			return errf(err, errlen, -EINVAL, "--%s: empty list", name);
		o->n_exclude_ports = (size_t)r;
		return 0;
	case O_LISTEN:
		r = rm_hostport_parse(v, &o->listen, why, sizeof(why));
		if (r < 0)
			return sub_fail(err, errlen, name, v,
					why[0] ? why : "expected ADDR:PORT, e.g. 127.0.0.1:15001",
					r);
		if (o->listen.sin_port == 0)
			return errf(err, errlen, -EINVAL, "--listen '%s': port must be 1..65535",
				    v);
		if (o->listen.sin_addr.s_addr == htonl(INADDR_ANY))
			return errf(err, errlen, -EINVAL,
				    "--listen '%s': a wildcard address would make the proxy "
				    "reachable from off the node; give a local address",
				    v);
		return 0;
	case O_POD_GW: {
		struct in_addr a;

		if (inet_pton(AF_INET, v, &a) != 1)
			return errf(err, errlen, -EINVAL, "--pod-gateway '%s': not an IPv4 address",
				    v);
		if (a.s_addr == htonl(INADDR_ANY) || a.s_addr == htonl(INADDR_BROADCAST) ||
		    IN_MULTICAST(ntohl(a.s_addr)))
			return errf(err, errlen, -EINVAL,
				    "--pod-gateway '%s': must be a unicast address", v);
		o->pod_gw = a;
		return 0;
	}
	case O_WORKERS:
		if (parse_uint(v, 1000000, &n) || n < 1 || n > OPTS_WORKERS_MAX)
			return errf(err, errlen, -EINVAL,
				    "--workers '%s': must be a number in 1..%d", v,
				    OPTS_WORKERS_MAX);
		o->workers = (unsigned int)n;
		return 0;
	case O_BALANCE:
		if (strcmp(v, "exact") && strcmp(v, "reuseport"))
			return errf(err, errlen, -EINVAL,
				    "--accept-balance '%s': must be exact or reuseport", v);
		o->accept_exact = !strcmp(v, "exact");
		return 0;
	case O_HB_MAX:
		if (parse_uint(v, 1000000000, &n) || n < OPTS_HEARTBEAT_MAX_MIN_MS ||
		    n > OPTS_HEARTBEAT_MAX_MAX_MS)
			return errf(err, errlen, -EINVAL,
				    "--heartbeat-max-ms '%s': must be a number of milliseconds in "
				    "%d..%d (the daemon beats every %d ms)",
				    v, OPTS_HEARTBEAT_MAX_MIN_MS, OPTS_HEARTBEAT_MAX_MAX_MS,
				    OPTS_HEARTBEAT_INTERVAL_MS);
		o->heartbeat_max_ms = (unsigned int)n;
		return 0;
	case O_MAX_HEAD:
		if (parse_uint(v, 1000000, &n) || n < 1 || n > 60)
			return errf(err, errlen, -EINVAL,
				    "--%s '%s': must be a number of KiB in 1..60", name, v);
		o->max_head_kb = (unsigned int)n;
		return 0;
	case O_CONN_TO:
		if (parse_uint(v, 1000000000, &n) || n < 10 || n > 600000)
			return errf(err, errlen, -EINVAL,
				    "--%s '%s': must be a number of milliseconds in 10..600000",
				    name, v);
		o->connect_timeout_ms = (unsigned int)n;
		return 0;
	case O_IDLE_MS:
		if (parse_uint(v, 1000000000, &n) || n < 100 || n > 3600000)
			return errf(err, errlen, -EINVAL,
				    "--%s '%s': must be a number of milliseconds in 100..3600000",
				    name, v);
		o->upstream_idle_ms = (unsigned int)n;
		return 0;
	case O_DRAIN:
		if (parse_uint(v, 1000000, &n) || n > OPTS_DRAIN_MAX_S)
			return errf(err, errlen, -EINVAL,
				    "--%s '%s': must be a number of seconds in 0..%d", name, v,
				    OPTS_DRAIN_MAX_S);
		o->drain_timeout_s = (unsigned int)n;
		return 0;
	case O_MAX_IDLE:
		if (parse_uint(v, 1000000, &n) || n < 1 || n > 10000)
			return errf(err, errlen, -EINVAL, "--%s '%s': must be a number in 1..10000",
				    name, v);
		o->upstream_max_idle = (unsigned int)n;
		return 0;
	case O_REQ_BUFS:
		if (parse_uint(v, 1000000000, &n) || n < 16 || n > 1000000)
			return errf(err, errlen, -EINVAL,
				    "--%s '%s': must be a number in 16..1000000", name, v);
		o->request_buffers = (unsigned int)n;
		return 0;
	case O_MAX_MIRRORS:
		if (parse_uint(v, 1000000000, &n) || n < 1 || n > 65536)
			return errf(err, errlen, -EINVAL, "--%s '%s': must be a number in 1..65536",
				    name, v);
		o->max_mirrors = (unsigned int)n;
		return 0;
	case O_STATS_KEYS:
		return parse_size(name, v, RM_STATS_KEYS_MIN, RM_STATS_KEYS_MAX, &o->stats_keys,
				  err, errlen);
	case O_CB_POOLS:
		return parse_size(name, v, RM_CB_POOLS_MIN, RM_CB_POOLS_MAX, &o->breaker_pools, err,
				  errlen);
	case O_CB_HOSTS:
		return parse_size(name, v, RM_CB_HOSTS_MIN, RM_CB_HOSTS_MAX, &o->breaker_hosts, err,
				  errlen);
	case O_METRICS:
		if (!strcmp(v, "off")) {
			o->metrics = false;
			return 0;
		}
		r = rm_hostport_parse(v, &o->metrics_listen, why, sizeof(why));
		if (r < 0)
			return sub_fail(
			    err, errlen, name, v,
			    why[0] ? why : "expected ADDR:PORT (e.g. 0.0.0.0:15090) or off", r);
		if (o->metrics_listen.sin_port == 0)
			return errf(err, errlen, -EINVAL, "--%s '%s': port must be 1..65535", name,
				    v);
		o->metrics = true;
		return 0;
	case O_ZIPKIN:
		r = zipkin_url_parse(v, &o->zipkin_url, why, sizeof(why));
		if (r < 0)
			return errf(err, errlen, -EINVAL, "--%s %s", name, why);
		o->zipkin = true;
		return 0;
	case O_SAMPLING:
		if (trace_rate_parse(v, &o->trace_ppm))
			return errf(err, errlen, -EINVAL,
				    "--%s '%s': must be a percentage in 0..100 (up to four "
				    "decimals, e.g. 1 or 0.5)",
				    name, v);
		return 0;
	default:
		return errf(err, errlen, -EINVAL, "--%s: internal error", name);
	}
}

static void set_defaults(struct rm_opts *o, long ncpus)
{
	memset(o, 0, sizeof(*o));
	o->pin_dir = RM_PIN_DIR_DEFAULT;
	o->listen.sin_family = AF_INET;
	o->listen.sin_port = htons(15001);
	o->listen.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	inet_pton(AF_INET, OPTS_POD_GW_DEFAULT, &o->pod_gw);
	if (ncpus < 1)
		ncpus = 1;
	if (ncpus > OPTS_WORKERS_MAX)
		ncpus = OPTS_WORKERS_MAX;
	o->workers = (unsigned int)ncpus;
	o->accept_exact = false;
	o->sockmap = OPTS_SOCKMAP_DEFAULT;
	o->heartbeat_max_ms = OPTS_HEARTBEAT_MAX_DEFAULT_MS;
	o->l7 = true;
	o->max_head_kb = 60;
	o->connect_timeout_ms = L7_DEF_CONNECT_MS;
	o->upstream_idle_ms = L7_DEF_IDLE_MS;
	o->upstream_max_idle = L7_DEF_MAX_IDLE;
	o->request_buffers = L7_DEF_REQ_BUFS;
	o->max_mirrors = L7_DEF_MAX_MIRRORS;
	o->metrics = true;
	o->metrics_listen.sin_family = AF_INET;
	o->metrics_listen.sin_port = htons(OPTS_METRICS_PORT_DEFAULT);
	o->metrics_listen.sin_addr.s_addr = htonl(INADDR_ANY);
	o->trace_ppm = TRACE_RATE_DEFAULT;
	o->gateway_dev = OPTS_GW_DEV_DEFAULT;
	o->drain_timeout_s = OPTS_DRAIN_DEFAULT_S;
}

static int find_long(const char *name, size_t len)
{
	for (int i = 0; i < O_MAX; i++)
		if (strlen(opt_defs[i].name) == len && !strncmp(opt_defs[i].name, name, len))
			return i;
	return -1;
}

static int find_short(char c)
{
	for (int i = 0; i < O_MAX; i++)
		if (opt_defs[i].short_name && opt_defs[i].short_name == c)
			return i;
	return -1;
}

int opts_parse(struct rm_opts *o, int argc, char *const argv[], long ncpus, char *err,
	       size_t errlen)
{
	bool seen[O_MAX] = {false};
	int action = OPTS_RUN;

	if (err && errlen)
		err[0] = '\0';
	set_defaults(o, ncpus);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		int id;

		if (a[0] == '-' && a[1] == '-' && a[2]) {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);

			id = find_long(a + 2, len);
			if (id < 0)
				return errf(err, errlen, -EINVAL,
					    "unknown option '%.*s' (see --help)", (int)(len + 2),
					    a);
			if (eq) {
				if (!opt_defs[id].has_arg)
					return errf(err, errlen, -EINVAL,
						    "--%s takes no value (got '%s')",
						    opt_defs[id].name, eq + 1);
				val = eq + 1;
			}
		} else if (a[0] == '-' && a[1] && a[1] != '-') {
			/* Short flags only, so "-vv" is "-v -v". */
			for (const char *c = a + 1; *c; c++) {
				id = find_short(*c);
				if (id < 0)
					return errf(err, errlen, -EINVAL,
						    "unknown option '-%c' (see --help)", *c);
				if (id == O_VERBOSE)
					o->verbose++;
				else if (id == O_HELP)
					action = OPTS_HELP;
			}
			continue;
		} else {
			return errf(err, errlen, -EINVAL, "unexpected argument '%s' (see --help)",
				    a);
		}

		if (opt_defs[id].has_arg && !val) {
			if (i + 1 >= argc)
				return errf(err, errlen, -EINVAL, "--%s: missing value",
					    opt_defs[id].name);
			val = argv[++i];
			/* "--cgroup --listen x" is a forgotten value, not a path. */
			if (val[0] == '-' && val[1] == '-')
				return errf(err, errlen, -EINVAL,
					    "--%s: missing value (got option '%s')",
					    opt_defs[id].name, val);
		}
		if (opt_defs[id].has_arg && seen[id])
			return errf(err, errlen, -EINVAL, "--%s: given twice", opt_defs[id].name);
		seen[id] = true;

		switch (id) {
		case O_VERBOSE:
			o->verbose++;
			break;
		case O_HELP:
			action = OPTS_HELP;
			break;
		case O_VERSION:
			if (action == OPTS_RUN)
				action = OPTS_VERSION;
			break;
		case O_SOCKMAP:
		case O_NO_SOCKMAP:
			o->sockmap = id == O_SOCKMAP; /* the last one given wins */
			break;
		case O_NO_L7:
			o->l7 = false;
			break;
		case O_ROOT_CG:
			o->allow_root_cgroup = true;
			break;
		default: {
			int r = set_value(o, (enum opt_id)id, val, err, errlen);

			if (r)
				return r;
		}
		}
	}

	/* --help and --version answer even when the rest of the line is incomplete. */
	if (action != OPTS_RUN)
		return action;
	/* A cheap early guard; dp checks the real root whatever the path. */
	if (o->cgroup_path && !o->allow_root_cgroup &&
	    (path_eq(o->cgroup_path, "/sys/fs/cgroup") ||
	     path_eq(o->cgroup_path, "/sys/fs/cgroup/unified") || path_eq(o->cgroup_path, "/")))
		return errf(err, errlen, -EINVAL,
			    "--cgroup '%s': is a cgroup2 root; give the pods' parent cgroup "
			    "(or --allow-root-cgroup to intercept every process on the node)",
			    o->cgroup_path);
	if (!seen[O_INCLUDE])
		return errf(err, errlen, -EINVAL,
			    "--include-ip-ranges is required (the destinations to intercept)");
	if (o->metrics && o->metrics_listen.sin_port == o->listen.sin_port &&
	    (o->metrics_listen.sin_addr.s_addr == o->listen.sin_addr.s_addr ||
	     o->metrics_listen.sin_addr.s_addr == htonl(INADDR_ANY)))
		return errf(err, errlen, -EINVAL,
			    "--metrics-listen: port %u is the proxy listener's",
			    ntohs(o->listen.sin_port));
	if (o->pod_gw.s_addr == o->listen.sin_addr.s_addr) {
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &o->pod_gw, a, sizeof(a));
		return errf(err, errlen, -EINVAL,
			    "--pod-gateway '%s': must differ from the --listen address", a);
	}
	return OPTS_RUN;
}
