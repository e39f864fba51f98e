/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * zipkin: the Zipkin v2 span ringmeshd reports per proxied request (what Envoy's
 * outbound listener reports: one CLIENT span, Istio's tags), its JSON encoding
 * (a ListOfSpans array for POST /api/v2/spans, every string through the json
 * writer's escaping) and the --zipkin-url parser. No sockets and no clock: the
 * daemon fills the record, the sender (ringmeshd/spans.c) encodes and posts it.
 *
 * The record is fixed-size so a worker copies it into its queue without
 * allocating; strings longer than their field are cut (on a byte, the writer makes
 * a cut UTF-8 sequence U+FFFD, so the JSON stays valid).
 */
#ifndef RM_ZIPKIN_H
#define RM_ZIPKIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ZIPKIN_DEFAULT_PATH "/api/v2/spans"
#define ZIPKIN_HOST_MAX 253
#define ZIPKIN_PATH_MAX 512

struct zipkin_span {
	uint64_t trace_hi, trace_lo; /* trace_hi only with trace128 */
	bool trace128;
	bool debug;	      /* x-b3-flags: 1 / b3 "d" */
	uint64_t id;	      /* the span id sent upstream as x-b3-spanid */
	uint64_t parent_id;   /* the caller's span id, 0 on a root */
	uint64_t ts_us;	      /* request start, epoch microseconds */
	uint64_t dur_us;      /* >= 1 when encoded */
	uint32_t local_ip;    /* the client's IPv4 address, network order (0: left out) */
	uint32_t remote_ip;   /* upstream IPv4, network order (0: no remoteEndpoint) */
	uint16_t remote_port; /* host order */
	uint16_t status;      /* HTTP status sent to the client, 0 = none */
	uint32_t flags;	      /* response flags, bit per enum rm_stats_flag */
	uint64_t req_size, resp_size;
	char name[ZIPKIN_HOST_MAX + 16]; /* "<host>:<port>/" and a star */
	char service[128];		 /* localEndpoint.serviceName: "<app>.<namespace>" */
	char method[16];
	char protocol[12]; /* "HTTP/1.1" */
	char url[768];	   /* http.url: http://<authority><path> */
	char cluster[320]; /* outbound|<port>|<subset>|<host> */
	char request_id[129];
	char user_agent[256]; /* "-" when absent */
};

/* Copy s into a field of size cap, cut to fit (always NUL-terminated). */
void zipkin_set(char *field, size_t cap, const char *s, size_t len);

/* Write n spans as one JSON array (ListOfSpans). 0, or -EIO when out failed. */
int zipkin_encode(FILE *out, const struct zipkin_span *s, size_t n);

struct zipkin_url {
	char host[ZIPKIN_HOST_MAX + 1]; /* name or IPv4 literal */
	uint16_t port;			/* 80 when the URL has none */
	char path[ZIPKIN_PATH_MAX + 1]; /* "/api/v2/spans" when the URL has none */
};

/* Parse "http://host[:port][/path]". https and other schemes are refused (0 or
 * -EINVAL with err saying why). */
int zipkin_url_parse(const char *url, struct zipkin_url *u, char *err, size_t errlen);

#endif /* RM_ZIPKIN_H */
