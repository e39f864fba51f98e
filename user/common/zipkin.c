/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Zipkin v2 spans in JSON (see zipkin.h). Field order follows zipkin2-api.yaml's
 * Span definition; tags are Envoy's names, values always strings (the API's tags
 * are a string->string map, so sizes and the status code are quoted).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/prom.h"
#include "common/util.h"
#include "common/zipkin.h"

void zipkin_set(char *field, size_t cap, const char *s, size_t len)
{
	if (!cap)
		return;
	if (len >= cap)
		len = cap - 1;
	if (len)
		memcpy(field, s, len);
	field[len] = '\0';
}

static void hex64(char *out, uint64_t v)
{
	static const char hx[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = hx[v & 15];
}

static void ipv4(struct json_writer *w, const char *name, uint32_t be)
{
	const uint8_t *b = (const uint8_t *)&be;
	char buf[16];

	snprintf(buf, sizeof(buf), "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
	json_string_field(w, name, buf);
}

static void tag_u64(struct json_writer *w, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	json_string_field(w, name, buf);
}

static void one(struct json_writer *w, const struct zipkin_span *s)
{
	char id[33], flags[64];

	json_start_object(w);
	if (s->trace128) {
		hex64(id, s->trace_hi);
		hex64(id + 16, s->trace_lo);
		id[32] = '\0';
	} else {
		hex64(id, s->trace_lo);
		id[16] = '\0';
	}
	json_string_field(w, "traceId", id);
	if (s->parent_id) {
		hex64(id, s->parent_id);
		id[16] = '\0';
		json_string_field(w, "parentId", id);
	}
	hex64(id, s->id);
	id[16] = '\0';
	json_string_field(w, "id", id);
	json_string_field(w, "kind", "CLIENT");
	json_string_field(w, "name", s->name);
	json_uint_field(w, "timestamp", s->ts_us);
	json_uint_field(w, "duration", s->dur_us ? s->dur_us : 1);
	if (s->debug)
		json_bool_field(w, "debug", true);
	json_name(w, "localEndpoint");
	json_start_object(w);
	json_string_field(w, "serviceName", s->service[0] ? s->service : "unknown");
	if (s->local_ip)
		ipv4(w, "ipv4", s->local_ip);
	json_end_object(w);
	if (s->remote_ip) {
		json_name(w, "remoteEndpoint");
		json_start_object(w);
		ipv4(w, "ipv4", s->remote_ip);
		if (s->remote_port)
			json_uint_field(w, "port", s->remote_port);
		json_end_object(w);
	}
	json_name(w, "tags");
	json_start_object(w);
	json_string_field(w, "component", "proxy");
	json_string_field(w, "guid:x-request-id", s->request_id);
	json_string_field(w, "http.method", s->method);
	json_string_field(w, "http.protocol", s->protocol);
	json_string_field(w, "http.url", s->url);
	tag_u64(w, "http.status_code", s->status);
	json_string_field(w, "response_flags", prom_flags_str(s->flags, flags, sizeof(flags)));
	json_string_field(w, "upstream_cluster", s->cluster);
	json_string_field(w, "upstream_cluster.name", s->cluster);
	json_string_field(w, "downstream_cluster", "-");
	tag_u64(w, "request_size", s->req_size);
	tag_u64(w, "response_size", s->resp_size);
	json_string_field(w, "user_agent", s->user_agent[0] ? s->user_agent : "-");
	if (s->local_ip)
		ipv4(w, "peer.address", s->local_ip);
	/* Envoy: no response code at all, or a 5xx, is an error */
	if (s->status == 0 || s->status >= 500)
		json_string_field(w, "error", "true");
	json_end_object(w);
	json_end_object(w);
}

int zipkin_encode(FILE *out, const struct zipkin_span *s, size_t n)
{
	struct json_writer *w = json_new(out);

	if (!w)
		return -ENOMEM;
	json_start_array(w);
	for (size_t i = 0; i < n; i++)
		one(w, &s[i]);
	json_end_array(w);
	json_destroy(&w);
	return ferror(out) ? -EIO : 0;
}

int zipkin_url_parse(const char *url, struct zipkin_url *u, char *err, size_t errlen)
{
	const char *p, *h, *colon, *slash;
	size_t hlen;
	unsigned long port = 80;

	memset(u, 0, sizeof(*u));
	if (!strncmp(url, "https://", 8))
		return errf(err, errlen, -EINVAL,
			    "'%s': https is not supported (ringmeshd posts spans in plain HTTP, "
			    "as Istio's Zipkin collector on :9411 takes them); give http://",
			    url);
	if (strncmp(url, "http://", 7))
		return errf(err, errlen, -EINVAL,
			    "'%s': expected http://HOST[:PORT][/PATH], e.g. "
			    "http://zipkin.istio-system:9411/api/v2/spans",
			    url);
	h = url + 7;
	slash = strchr(h, '/');
	p = slash ? slash : h + strlen(h);
	colon = memchr(h, ':', (size_t)(p - h));
	hlen = (size_t)((colon ? colon : p) - h);
	if (!hlen)
		return errf(err, errlen, -EINVAL, "'%s': no host", url);
	if (hlen > ZIPKIN_HOST_MAX)
		return errf(err, errlen, -EINVAL, "'%s': host longer than %d bytes", url,
			    ZIPKIN_HOST_MAX);
	for (size_t i = 0; i < hlen; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return errf(err, errlen, -EINVAL,
				    "'%s': bad host (a name or IPv4 address; no user info, "
				    "no IPv6)",
				    url);
	}
	if (colon) {
		port = 0;
		if (colon + 1 == p)
			return errf(err, errlen, -EINVAL, "'%s': empty port", url);
		for (const char *c = colon + 1; c < p; c++) {
			if (*c < '0' || *c > '9' ||
			    (port = port * 10 + (unsigned long)(*c - '0')) > 65535)
				return errf(err, errlen, -EINVAL, "'%s': port must be 1..65535",
					    url);
		}
		if (!port)
			return errf(err, errlen, -EINVAL, "'%s': port must be 1..65535", url);
	}
	if (slash && strlen(slash) > ZIPKIN_PATH_MAX)
		return errf(err, errlen, -EINVAL, "'%s': path longer than %d bytes", url,
			    ZIPKIN_PATH_MAX);
	for (const char *c = slash; c && *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '#')
			return errf(err, errlen, -EINVAL,
				    "'%s': the path holds a space, control, '#' or non-ASCII "
				    "byte",
				    url);
	memcpy(u->host, h, hlen);
	u->port = (uint16_t)port;
	snprintf(u->path, sizeof(u->path), "%s", slash && slash[1] ? slash : ZIPKIN_DEFAULT_PATH);
	return 0;
}
