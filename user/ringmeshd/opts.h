/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * opts: ringmeshd's command line. Pure: turns argv into a struct rm_opts (or a
 * message naming the bad option and value) and owns the usage text; it opens
 * nothing and prints nothing, so every rule is unit-tested.
 */
#ifndef RM_OPTS_H
#define RM_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "ringmesh/abi.h"
#include "common/cidr.h"
#include "common/zipkin.h"

#define OPTS_LISTEN_DEFAULT "127.0.0.1:15001"
#define OPTS_POD_GW_DEFAULT "169.254.7.1"
#define OPTS_METRICS_PORT_DEFAULT 15090 /* Envoy's Prometheus port: scrape configs expect it */
#define OPTS_METRICS_DEFAULT "0.0.0.0:15090"
#define OPTS_GW_DEV_DEFAULT "ringmesh0"
#define OPTS_WORKERS_MAX 64
#define OPTS_HEARTBEAT_INTERVAL_MS 200 /* how often main() beats */
#define OPTS_HEARTBEAT_MAX_DEFAULT_MS 1000
/* The sk_msg shortcut between pod sockets and the proxy's (--sockmap / --no-sockmap):
 * the default follows the benchmark's verdict (README, Benchmark). */
#define OPTS_SOCKMAP_DEFAULT 0
#if OPTS_SOCKMAP_DEFAULT
#define OPTS_SOCKMAP_DEFAULT_WORD "on"
#else
#define OPTS_SOCKMAP_DEFAULT_WORD "off"
#endif
/* Fail-open age must leave room for a late beat or two, or connect4 flaps. */
#define OPTS_HEARTBEAT_MAX_MIN_MS (2 * OPTS_HEARTBEAT_INTERVAL_MS)
#define OPTS_HEARTBEAT_MAX_MAX_MS 60000
/* --drain-timeout: Envoy's --drain-time-s is 600; a DaemonSet's grace period is what
 * bounds ours, and Kubernetes' default of 30 s must cover it. */
#define OPTS_DRAIN_DEFAULT_S 20
#define OPTS_DRAIN_MAX_S 3600

/* What opts_parse() asks the caller to do. */
enum opts_action {
	OPTS_RUN = 0,
	OPTS_HELP = 1,	  /* print opts_usage() to stdout, exit 0 */
	OPTS_VERSION = 2, /* print the version, exit 0 */
};

struct rm_opts {
	const char *cgroup_path;	       /* --cgroup: points into argv; NULL: find it */
	bool allow_root_cgroup;		       /* --allow-root-cgroup */
	const char *gateway_dev;	       /* --gateway-dev; NULL with off */
	const char *pin_dir;		       /* --pin-dir: points into argv or a literal */
	struct rm_cidr include[RM_MAX_RANGES]; /* --include-ip-ranges */
	size_t n_include;
	struct rm_cidr exclude[RM_MAX_RANGES]; /* --exclude-ip-ranges */
	size_t n_exclude;
	uint16_t exclude_ports[RM_MAX_XPORTS]; /* --exclude-ports, host order */
	size_t n_exclude_ports;
	struct sockaddr_in listen;	   /* --listen */
	struct in_addr pod_gw;		   /* --pod-gateway */
	unsigned int workers;		   /* --workers, 1..OPTS_WORKERS_MAX */
	bool accept_exact;		   /* --accept-balance exact (default: reuseport) */
	bool sockmap;			   /* false with --no-sockmap */
	unsigned int heartbeat_max_ms;	   /* --heartbeat-max-ms */
	unsigned int verbose;		   /* count of -v */
	bool l7;			   /* false with --no-l7 */
	unsigned int max_head_kb;	   /* --max-request-headers-kb */
	unsigned int connect_timeout_ms;   /* --connect-timeout-ms */
	unsigned int upstream_idle_ms;	   /* --upstream-idle-timeout-ms */
	unsigned int upstream_max_idle;	   /* --upstream-max-idle */
	unsigned int request_buffers;	   /* --request-buffers */
	unsigned int max_mirrors;	   /* --max-mirrors */
	bool metrics;			   /* false with --metrics-listen off */
	struct sockaddr_in metrics_listen; /* --metrics-listen */
	bool zipkin;			   /* --zipkin-url given: spans are reported */
	struct zipkin_url zipkin_url;	   /* ... where to */
	uint32_t trace_ppm;	      /* --trace-sampling, millionths (TRACE_RATE_ONE = 100 %) */
	unsigned int drain_timeout_s; /* --drain-timeout */
	uint32_t stats_keys;	      /* --stats-keys: rm_stats' key slots (0: the default) */
	uint32_t breaker_pools;	      /* --breaker-pools: rm_breaker's pool slots (0: default) */
	uint32_t breaker_hosts;	      /* --breaker-hosts: its host slots (0: 16 per pool) */
};

/*
 * Parse argv (argv[0] is the program name). ncpus is the number of online CPUs
 * (injected: the default worker count is derived from it, clamped to 1..64).
 * Returns enum opts_action, or -EINVAL with err holding "--option: 'value': why".
 * The struct is large (the range tables); callers keep it static or on the heap.
 */
int opts_parse(struct rm_opts *o, int argc, char *const argv[], long ncpus, char *err,
	       size_t errlen);

/* The --help text, ending in a newline. */
const char *opts_usage(void);

#endif /* RM_OPTS_H */
