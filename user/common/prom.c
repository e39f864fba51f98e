/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Prometheus text exposition of the ringmesh maps (prom.h). Families are written
 * one after the other (the format wants a family's samples together), so the live
 * slots are first copied once, consistently, and every family reads the copies: a
 * scrape shows one instant per slot, and a row's istio_requests_total, its
 * histograms' _count and their +Inf buckets are the same number.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/prom.h"
#include "policy/cb.h"

static const uint64_t bounds_milli[RM_STATS_BUCKETS - 1] = RM_STATS_BOUNDS_MILLI;

/* Envoy's order of %RESPONSE_FLAGS% (ResponseFlag enum), restricted to ours. */
static const struct {
	enum rm_stats_flag f;
	const char *name;
} flag_order[] = {
    {RM_STATS_F_UH, "UH"}, {RM_STATS_F_UT, "UT"},   {RM_STATS_F_UF, "UF"},   {RM_STATS_F_UC, "UC"},
    {RM_STATS_F_UO, "UO"}, {RM_STATS_F_NR, "NR"},   {RM_STATS_F_DI, "DI"},   {RM_STATS_F_FI, "FI"},
    {RM_STATS_F_DC, "DC"}, {RM_STATS_F_URX, "URX"}, {RM_STATS_F_UPE, "UPE"},
};

/* Flags of replies the proxy made itself: no upstream (destination) saw the answer. */
#define LOCAL_FLAGS                                                                                \
	((1u << RM_STATS_F_UO) | (1u << RM_STATS_F_UT) | (1u << RM_STATS_F_UH) |                   \
	 (1u << RM_STATS_F_UF) | (1u << RM_STATS_F_UC) | (1u << RM_STATS_F_NR) |                   \
	 (1u << RM_STATS_F_FI) | (1u << RM_STATS_F_UPE))

static const char *const dp_names[RM_DP_STAT_MAX] = {
    [RM_DP_REDIRECTED] = "redirected",
    [RM_DP_NOT_TCP] = "not_tcp",
    [RM_DP_NOT_INCLUDED] = "not_included",
    [RM_DP_EXCLUDED] = "excluded",
    [RM_DP_PORT_EXCLUDED] = "port_excluded",
    [RM_DP_SELF] = "self",
    [RM_DP_STALE] = "stale",
    [RM_DP_ORIG_FULL] = "orig_full",
    [RM_DP_ESTABLISHED] = "established",
    [RM_DP_SOCK_ADDED] = "sock_added",
    [RM_DP_MSG_REDIRECT] = "msg_redirect",
    [RM_DP_MSG_PASS] = "msg_pass",
    [RM_DP_GETSOCKOPT] = "getsockopt",
    [RM_DP_NOT_IPV4] = "not_ipv4",
};

const char *prom_flag_name(uint32_t f)
{
	for (size_t i = 0; i < sizeof(flag_order) / sizeof(flag_order[0]); i++)
		if (flag_order[i].f == f)
			return flag_order[i].name;
	return NULL;
}

const char *prom_dp_stat_name(uint32_t i)
{
	return i < RM_DP_STAT_MAX ? dp_names[i] : NULL;
}

static const char *const mir_skip_names[RM_MIR_SKIP_N] = {
    "limit", "body", "overflow", "no_healthy_upstream", "resources", "behind"};
static const char *const mir_fail_names[RM_MIR_FAIL_N] = {"connect", "reset", "timeout",
							  "protocol"};

const char *prom_mirror_skip_name(uint32_t i)
{
	return i < RM_MIR_SKIP_N ? mir_skip_names[i] : NULL;
}

const char *prom_mirror_fail_name(uint32_t i)
{
	return i < RM_MIR_FAIL_N ? mir_fail_names[i] : NULL;
}

const char *prom_flags_str(uint32_t mask, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(flag_order) / sizeof(flag_order[0]); i++) {
		if (!(mask & (1u << flag_order[i].f)))
			continue;
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "," : "",
				      flag_order[i].name);
	}
	if (!n)
		snprintf(buf, len, "-");
	return buf;
}

/* ---- buffer ---- */

void prom_buf_free(struct prom_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void put(struct prom_buf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct prom_buf *b, const char *s)
{
	put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct prom_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A label value, escaped as the format says (backslash, quote, newline). */
static void put_value(struct prom_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\')
			puts_(b, "\\\\");
		else if (s[i] == '"')
			puts_(b, "\\\"");
		else if (s[i] == '\n')
			puts_(b, "\\n");
		else
			put(b, &s[i], 1);
	}
}

static void label(struct prom_buf *b, bool *first, const char *name, const char *v, size_t n)
{
	puts_(b, *first ? "" : ",");
	*first = false;
	puts_(b, name);
	puts_(b, "=\"");
	put_value(b, v, n);
	puts_(b, "\"");
}

static void labelz(struct prom_buf *b, bool *first, const char *name, const char *v)
{
	label(b, first, name, v, strlen(v));
}

/* A key field: NUL-padded, possibly full; empty means unknown. */
static void labelk(struct prom_buf *b, bool *first, const char *name, const char *f, size_t cap)
{
	size_t n = strnlen(f, cap);

	if (n)
		label(b, first, name, f, n);
	else
		labelz(b, first, name, "unknown");
}

static void family(struct prom_buf *b, const char *name, const char *type, const char *help)
{
	putf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define LD(p, f) ((unsigned long long)__atomic_load_n(&(p)->f, __ATOMIC_RELAXED))

/* ---- slots ---- */

int prom_stats_locate(const void *mem, size_t len, struct prom_stats *ps)
{
	const struct rm_stats_hdr *h = mem;
	uint64_t slots_end, rows_end;

	memset(ps, 0, sizeof(*ps));
	if (!mem || len < sizeof(*h) ||
	    __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != RM_STATS_MAGIC)
		return -ENOENT;
	slots_end = h->slot_off + (uint64_t)h->n_slots * sizeof(struct rm_stats_slot);
	rows_end = h->row_off + (uint64_t)h->n_rows * sizeof(struct rm_stats_row);
	if (h->n_slots < 1 || h->n_rows < 1 || h->slot_off < sizeof(*h) || h->slot_off % 8 ||
	    h->row_off % 8 || h->row_off < slots_end || slots_end > len || rows_end > len)
		return -EINVAL;
	ps->h = h;
	ps->slots = (const struct rm_stats_slot *)((const char *)mem + h->slot_off);
	ps->rows = (const struct rm_stats_row *)((const char *)mem + h->row_off);
	ps->n_slots = h->n_slots;
	ps->n_rows = h->n_rows;
	return 0;
}

int prom_series_copy(const struct prom_stats *ps, uint32_t slot, struct prom_series *out)
{
	const struct rm_stats_slot *live = &ps->slots[slot];

	for (int tries = 0; tries < 1000; tries++) {
		uint64_t e = __atomic_load_n(&live->wend, __ATOMIC_ACQUIRE), bgn;

		memcpy(&out->sl, live, sizeof(out->sl));
		for (int i = 0; i < RM_STATS_ROWS; i++) {
			/* acquire: the row's id was written before its index */
			uint32_t ix = __atomic_load_n(&live->rows[i], __ATOMIC_ACQUIRE);

			if (!ix || ix > ps->n_rows) {
				out->sl.rows[i] = 0; /* none, or still being taken */
				memset(&out->rows[i], 0, sizeof(out->rows[i]));
				continue;
			}
			out->sl.rows[i] = ix;
			memcpy(&out->rows[i], &ps->rows[ix - 1], sizeof(out->rows[i]));
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		bgn = __atomic_load_n(&live->wbegin, __ATOMIC_RELAXED);
		if (bgn == e)
			return 0;
	}
	return -EAGAIN;
}

uint64_t prom_row_count(const struct rm_stats_row *r)
{
	uint64_t n = 0;

	for (int i = 0; i < RM_STATS_BUCKETS; i++)
		n += r->dur.b[i];
	return n;
}

void prom_slot_sum(const struct prom_series *s, struct prom_slot_sum *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < RM_STATS_ROWS; i++) {
		const struct rm_stats_row *r = &s->rows[i];
		uint64_t n = prom_row_count(r);
		unsigned code = RM_STATS_ROW_CODE(r->id);
		uint32_t fl = RM_STATS_ROW_FLAGS(r->id);

		if (!n)
			continue;
		out->requests += n;
		if (i == RM_STATS_ROWS - 1) {
			out->overflow += n; /* code and flags unknown */
		} else {
			out->code_class[code >= 100 && code <= 599 ? code / 100 : 0] += n;
			for (int f = 0; f < RM_STATS_F_MAX; f++)
				if (fl & (1u << f))
					out->flags[f] += n;
		}
		for (int k = 0; k < RM_STATS_BUCKETS; k++)
			out->dur[k] += r->dur.b[k];
		out->dur_sum_us += r->dur.sum;
		out->req_bytes_sum += r->req.sum;
		out->resp_bytes_sum += r->resp.sum;
	}
}

double prom_quantile(const uint64_t *buckets, double q)
{
	uint64_t total = 0, cum = 0;
	double rank;

	for (int i = 0; i < RM_STATS_BUCKETS; i++)
		total += buckets[i];
	if (!total)
		return -1;
	rank = q * (double)total;
	for (int i = 0; i < RM_STATS_BUCKETS; i++) {
		uint64_t prev = cum;
		double lo, hi;

		cum += buckets[i];
		if ((double)cum < rank || !buckets[i])
			continue;
		if (i == RM_STATS_BUCKETS - 1)
			return (double)bounds_milli[RM_STATS_BUCKETS - 2] / 1000.0;
		lo = i ? (double)bounds_milli[i - 1] / 1000.0 : 0.0;
		hi = (double)bounds_milli[i] / 1000.0;
		return lo + (hi - lo) * (rank - (double)prev) / (double)buckets[i];
	}
	return (double)bounds_milli[RM_STATS_BUCKETS - 2] / 1000.0;
}

/* ---- Istio metrics ---- */

enum reporter { REP_SOURCE, REP_DESTINATION };

struct ctx {
	struct prom_buf *b;
	struct prom_series *s; /* consistent copies of the live slots */
	uint32_t n;
	bool *is_overflow_slot;
};

/* "name.namespace.svc.<domain>" -> name, namespace; otherwise the host and unknown. */
static void split_fqdn(const char *svc, size_t cap, size_t *name_len, const char **ns,
		       size_t *ns_len)
{
	size_t n = strnlen(svc, cap);
	const char *d1 = memchr(svc, '.', n), *d2, *end = svc + n;

	*name_len = n;
	*ns = "unknown";
	*ns_len = 7;
	if (!d1)
		return;
	d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
	if (!d2 || (size_t)(end - d2) < 4 || memcmp(d2, ".svc", 4) ||
	    (d2 + 4 != end && d2[4] != '.'))
		return;
	*name_len = (size_t)(d1 - svc);
	*ns = d1 + 1;
	*ns_len = (size_t)(d2 - d1 - 1);
}

/* The labels of a series, in the Envoy filter's order; code < 0: the TCP set (no
 * response_code, no grpc_response_status). */
static void istio_labels(struct prom_buf *b, enum reporter rep, const struct prom_series *s,
			 bool http, int code, bool overflow_row, uint32_t flags)
{
	const struct rm_stats_key *k = &s->sl.key;
	const char *ns;
	size_t name_len, ns_len;
	char fl[64], cs[16];
	bool first = true;

	split_fqdn(k->dst_service, sizeof(k->dst_service), &name_len, &ns, &ns_len);
	labelz(b, &first, "reporter", rep == REP_SOURCE ? "source" : "destination");
	labelk(b, &first, "source_workload", k->src_workload, sizeof(k->src_workload));
	labelk(b, &first, "source_workload_namespace", k->src_namespace, sizeof(k->src_namespace));
	/* Istio sets it from the peer's certificate: no mTLS here, so "unknown" as Istio
	 * reports it for plain-text callers (the service account is in `workload list`) */
	labelz(b, &first, "source_principal", "unknown");
	labelk(b, &first, "source_app", k->src_app, sizeof(k->src_app));
	labelk(b, &first, "source_version", k->src_version, sizeof(k->src_version));
	labelk(b, &first, "source_canonical_service", k->src_canon_svc, sizeof(k->src_canon_svc));
	labelk(b, &first, "source_canonical_revision", k->src_canon_rev, sizeof(k->src_canon_rev));
	labelz(b, &first, "source_cluster", "unknown");
	labelk(b, &first, "destination_workload", k->dst_workload, sizeof(k->dst_workload));
	label(b, &first, "destination_workload_namespace", ns, ns_len);
	labelz(b, &first, "destination_principal", "unknown");
	labelz(b, &first, "destination_app", "unknown");
	labelk(b, &first, "destination_version", k->dst_version, sizeof(k->dst_version));
	labelk(b, &first, "destination_service", k->dst_service, sizeof(k->dst_service));
	if (name_len)
		label(b, &first, "destination_service_name", k->dst_service, name_len);
	else
		labelz(b, &first, "destination_service_name", "unknown");
	label(b, &first, "destination_service_namespace", ns, ns_len);
	labelk(b, &first, "destination_canonical_service", k->dst_workload,
	       sizeof(k->dst_workload));
	labelk(b, &first, "destination_canonical_revision", k->dst_version, sizeof(k->dst_version));
	labelz(b, &first, "destination_cluster", "unknown");
	labelz(b, &first, "request_protocol", http ? "http" : "tcp");
	if (code >= 0) {
		snprintf(cs, sizeof(cs), "%d", code);
		labelz(b, &first, "response_code", overflow_row ? RM_STATS_OVERFLOW_NAME : cs);
		labelz(b, &first, "grpc_response_status", "");
	}
	labelz(b, &first, "response_flags",
	       overflow_row ? "-" : prom_flags_str(rep == REP_SOURCE ? flags : 0, fl, sizeof(fl)));
	labelz(b, &first, "connection_security_policy", rep == REP_SOURCE ? "unknown" : "none");
}

static bool row_reported(const struct rm_stats_row *r, int idx, enum reporter rep)
{
	unsigned code = RM_STATS_ROW_CODE(r->id);

	if (!prom_row_count(r))
		return false;
	if (rep == REP_SOURCE)
		return true;
	/* the overflow row has no code to judge by: it stays on the source side */
	return idx != RM_STATS_ROWS - 1 && code && !(RM_STATS_ROW_FLAGS(r->id) & LOCAL_FLAGS);
}

static bool slot_http(const struct prom_series *s)
{
	for (int i = 0; i < RM_STATS_ROWS; i++)
		if (prom_row_count(&s->rows[i]))
			return true;
	return false;
}

/* The row series i of slot s reports for rep, or NULL. On the destination side the
 * caller's proxy flags are gone, so rows that differ only by them are one series:
 * the first such row answers their sum (into tmp), the others NULL. */
static const struct rm_stats_row *series_row(enum reporter rep, const struct prom_series *s, int i,
					     struct rm_stats_row *tmp)
{
	const struct rm_stats_row *r = &s->rows[i];
	unsigned code = RM_STATS_ROW_CODE(r->id);

	if (!row_reported(r, i, rep))
		return NULL;
	if (rep == REP_SOURCE)
		return r;
	for (int j = 0; j < i; j++)
		if (row_reported(&s->rows[j], j, rep) && RM_STATS_ROW_CODE(s->rows[j].id) == code)
			return NULL;
	*tmp = *r;
	for (int j = i + 1; j < RM_STATS_ROWS; j++) {
		const struct rm_stats_row *o = &s->rows[j];

		if (!row_reported(o, j, rep) || RM_STATS_ROW_CODE(o->id) != code)
			continue;
		for (int k = 0; k < RM_STATS_BUCKETS; k++) {
			tmp->dur.b[k] += o->dur.b[k];
			tmp->req.b[k] += o->req.b[k];
			tmp->resp.b[k] += o->resp.b[k];
		}
		tmp->dur.sum += o->dur.sum;
		tmp->req.sum += o->req.sum;
		tmp->resp.sum += o->resp.sum;
	}
	return tmp;
}

#define FOR_SERIES(c, rep, s, r, i)                                                                \
	for (int rep = REP_SOURCE; rep <= REP_DESTINATION; rep++)                                  \
		for (uint32_t si_ = 0; si_ < (c)->n; si_++)                                        \
			for (int i = 0; i < RM_STATS_ROWS; i++)                                    \
				if ((s = &(c)->s[si_]),                                            \
				    (r = series_row((enum reporter)rep, s, i, &tmp_)))

static void requests_total(struct ctx *c)
{
	const struct prom_series *s;
	const struct rm_stats_row *r;
	struct rm_stats_row tmp_;

	family(c->b, "istio_requests_total", "counter", "Requests, at stream end.");
	FOR_SERIES(c, rep, s, r, i)
	{
		puts_(c->b, "istio_requests_total{");
		istio_labels(c->b, (enum reporter)rep, s, true, (int)RM_STATS_ROW_CODE(r->id),
			     i == RM_STATS_ROWS - 1, RM_STATS_ROW_FLAGS(r->id));
		putf(c->b, "} %llu\n", (unsigned long long)prom_row_count(r));
	}
}

/* us -> "ms.fff" exactly; bytes stay integers. */
static void put_sum(struct prom_buf *b, uint64_t v, bool micro)
{
	if (micro)
		putf(b, "%llu.%03llu", (unsigned long long)(v / 1000),
		     (unsigned long long)(v % 1000));
	else
		putf(b, "%llu", (unsigned long long)v);
}

/* v / 10^digits in exact decimal, trailing zeros trimmed ("0.5", "1", "0.0005"):
 * binary floating point would print 0.0050000000000000001. */
static void put_scaled(struct prom_buf *b, uint64_t v, int digits)
{
	uint64_t p = 1;
	char frac[24];
	int n;

	for (int i = 0; i < digits; i++)
		p *= 10;
	n = snprintf(frac, sizeof(frac), "%0*llu", digits, (unsigned long long)(v % p));
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	putf(b, "%llu%s%s", (unsigned long long)(v / p), n ? "." : "", frac);
}

/* Bucket i's le in ms (digits 3) or s (digits 6). */
static void put_le(struct prom_buf *b, int i, int digits)
{
	if (i == RM_STATS_BUCKETS - 1)
		puts_(b, "+Inf");
	else
		put_scaled(b, bounds_milli[i], digits);
}

static void hist_family(struct ctx *c, const char *name, const char *help, size_t off, bool micro)
{
	const struct prom_series *s;
	const struct rm_stats_row *r;
	struct rm_stats_row tmp_;

	family(c->b, name, "histogram", help);
	FOR_SERIES(c, rep, s, r, i)
	{
		const struct rm_stats_hist *h =
		    (const struct rm_stats_hist *)((const char *)r + off);
		uint64_t cum = 0;

		for (int k = 0; k < RM_STATS_BUCKETS; k++) {
			cum += h->b[k];
			putf(c->b, "%s_bucket{", name);
			istio_labels(c->b, (enum reporter)rep, s, true,
				     (int)RM_STATS_ROW_CODE(r->id), i == RM_STATS_ROWS - 1,
				     RM_STATS_ROW_FLAGS(r->id));
			puts_(c->b, ",le=\"");
			put_le(c->b, k, 3);
			putf(c->b, "\"} %llu\n", (unsigned long long)cum);
		}
		putf(c->b, "%s_sum{", name);
		istio_labels(c->b, (enum reporter)rep, s, true, (int)RM_STATS_ROW_CODE(r->id),
			     i == RM_STATS_ROWS - 1, RM_STATS_ROW_FLAGS(r->id));
		puts_(c->b, "} ");
		put_sum(c->b, h->sum, micro);
		putf(c->b, "\n%s_count{", name);
		istio_labels(c->b, (enum reporter)rep, s, true, (int)RM_STATS_ROW_CODE(r->id),
			     i == RM_STATS_ROWS - 1, RM_STATS_ROW_FLAGS(r->id));
		putf(c->b, "} %llu\n", (unsigned long long)cum);
	}
}

static void tcp_family(struct ctx *c, const char *name, const char *help, size_t off)
{
	family(c->b, name, "counter", help);
	for (int rep = REP_SOURCE; rep <= REP_DESTINATION; rep++) {
		for (uint32_t i = 0; i < c->n; i++) {
			const struct prom_series *s = &c->s[i];
			uint64_t v = *(const uint64_t *)((const char *)&s->sl + off);

			uint32_t fl = s->sl.key.tcp_flags;

			if (!s->sl.tcp_opened && !s->sl.tcp_closed)
				continue;
			/* refused or failed here (UO, UH, UF): no destination saw them */
			if (rep == REP_DESTINATION && (fl & LOCAL_FLAGS))
				continue;
			putf(c->b, "%s{", name);
			istio_labels(c->b, (enum reporter)rep, s,
				     s->sl.key.proto == RM_STATS_HTTP || slot_http(s), -1, false,
				     fl);
			putf(c->b, "} %llu\n", (unsigned long long)v);
		}
	}
}

/* ---- ringmesh's own ---- */

static void own_workers(struct prom_buf *b, const struct rm_stats_hdr *h)
{
	/* per family: the client pool's field and the upstream pool's (u32 or u64) */
	static const struct {
		const char *name, *type, *help;
		size_t off[2];
		bool u32;
	} f[] = {
	    {"ringmesh_worker_buffer_waits_total",
	     "counter",
	     "Times a connection found its worker's buffer pool empty and waited for a block "
	     "(pool=client: request/response blocks, pool=upstream: upstream input buffers).",
	     {offsetof(struct rm_stats_wk, buf_waits), offsetof(struct rm_stats_wk, up_buf_waits)},
	     false},
	    {"ringmesh_worker_buffers_in_use",
	     "gauge",
	     "Blocks of the worker's buffer pool borrowed by connections with bytes in flight.",
	     {offsetof(struct rm_stats_wk, bufs_used), offsetof(struct rm_stats_wk, up_bufs_used)},
	     true},
	    {"ringmesh_worker_buffers",
	     "gauge",
	     "Blocks in the worker's buffer pool.",
	     {offsetof(struct rm_stats_wk, bufs), offsetof(struct rm_stats_wk, up_bufs)},
	     true},
	};
	static const char *const pool[2] = {"client", "upstream"};
	uint32_t n = __atomic_load_n(&h->n_wk, __ATOMIC_RELAXED);

	if (n > RM_STATS_WORKERS)
		n = RM_STATS_WORKERS;
	for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
		family(b, f[k].name, f[k].type, f[k].help);
		for (uint32_t i = 0; i < n; i++)
			for (int p = 0; p < 2; p++) {
				const char *v = (const char *)&h->wk[i] + f[k].off[p];

				putf(b, "%s{worker=\"%u\",pool=\"%s\"} %llu\n", f[k].name, i,
				     pool[p],
				     f[k].u32 ? (unsigned long long)__atomic_load_n(
						    (const uint32_t *)v, __ATOMIC_RELAXED)
					      : (unsigned long long)__atomic_load_n(
						    (const uint64_t *)v, __ATOMIC_RELAXED));
			}
	}
	family(b, "ringmesh_worker_buffer_resident_bytes", "gauge",
	       "Bytes of the worker's buffer blocks whose pages may be resident (borrowed, or "
	       "given back and not yet trimmed).");
	for (uint32_t i = 0; i < n; i++)
		putf(b, "ringmesh_worker_buffer_resident_bytes{worker=\"%u\"} %llu\n", i,
		     LD(&h->wk[i], bufs_resident));
}

/* Request mirroring (Envoy's shadow requests); their responses count in
 * istio_requests_total of the mirror destination. */
static void own_mirror(struct prom_buf *b, const struct rm_stats_hdr *h)
{
	family(b, "ringmesh_mirror_requests_total", "counter",
	       "Shadow copies of requests whose route mirrors them, sent whole to the mirror "
	       "destination.");
	putf(b, "ringmesh_mirror_requests_total %llu\n", LD(&h->mirror, sent));
	family(b, "ringmesh_mirror_responses_total", "counter",
	       "Shadow requests whose response was read to its end and discarded.");
	putf(b, "ringmesh_mirror_responses_total %llu\n", LD(&h->mirror, answered));
	family(b, "ringmesh_mirror_skipped_total", "counter",
	       "Requests drawn for mirroring that were not copied: limit (--max-mirrors in "
	       "flight), body (streamed, larger than kept bodies), overflow (circuit breaker), "
	       "no_healthy_upstream, resources.");
	for (int i = 0; i < RM_MIR_SKIP_N; i++)
		putf(b, "ringmesh_mirror_skipped_total{reason=\"%s\"} %llu\n", mir_skip_names[i],
		     LD(&h->mirror, skipped[i]));
	family(b, "ringmesh_mirror_failed_total", "counter",
	       "Shadow requests that failed (the client's response is never affected).");
	for (int i = 0; i < RM_MIR_FAIL_N; i++)
		putf(b, "ringmesh_mirror_failed_total{reason=\"%s\"} %llu\n", mir_fail_names[i],
		     LD(&h->mirror, failed[i]));
}

static void own_stats(struct ctx *c, const struct rm_stats_hdr *h)
{
	uint64_t ovf_rows = 0;
	uint64_t cum = 0;

	for (uint32_t i = 0; i < c->n; i++)
		ovf_rows += prom_row_count(&c->s[i].rows[RM_STATS_ROWS - 1]);
	family(c->b, "ringmesh_stats_keys", "gauge",
	       "Destination keys (service, version, workload, protocol) with a slot in rm_stats.");
	putf(c->b, "ringmesh_stats_keys %u\n", c->n);
	family(c->b, "ringmesh_stats_keys_max", "gauge",
	       "Keys rm_stats can hold; more go to the overflow series.");
	putf(c->b, "ringmesh_stats_keys_max %u\n", h->n_slots > 1 ? h->n_slots - 1 : 0);
	family(c->b, "ringmesh_stats_rows", "gauge",
	       "Rows (one per key and response code and flags) taken from the rm_stats row pool.");
	putf(c->b, "ringmesh_stats_rows %llu\n", LD(h, rows_used));
	family(c->b, "ringmesh_stats_rows_max", "gauge",
	       "Rows the pool holds; past them a key's new codes go to its overflow series.");
	putf(c->b, "ringmesh_stats_rows_max %u\n", h->n_rows);
	family(
	    c->b, "ringmesh_stats_overflow_total", "counter",
	    "Samples counted in an overflow series: kind=key in destination_service=\"overflow\", "
	    "kind=code in response_code=\"overflow\" (all keys), kind=pool those of kind=code "
	    "that found the row pool empty and went to destination_service=\"overflow\".");
	putf(c->b, "ringmesh_stats_overflow_total{kind=\"key\"} %llu\n",
	     (unsigned long long)h->dropped);
	putf(c->b, "ringmesh_stats_overflow_total{kind=\"code\"} %llu\n",
	     (unsigned long long)ovf_rows);
	putf(c->b, "ringmesh_stats_overflow_total{kind=\"pool\"} %llu\n", LD(h, pool_full));
	family(c->b, "ringmesh_config_generation", "gauge",
	       "Configuration generation live in ringmeshd.");
	putf(c->b, "ringmesh_config_generation %llu\n", (unsigned long long)h->generation);
	family(c->b, "ringmesh_config_applies_total", "counter",
	       "Configurations ringmeshd made live.");
	putf(c->b, "ringmesh_config_applies_total %llu\n", (unsigned long long)h->cfg_applies);
	family(c->b, "ringmesh_config_rejected_total", "counter",
	       "Configurations ringmeshd refused (the previous one stayed live).");
	putf(c->b, "ringmesh_config_rejected_total %llu\n", (unsigned long long)h->cfg_rejected);
	/* seconds, Prometheus's base unit (Istio's names are the only exception we make) */
	family(c->b, "ringmesh_config_apply_duration_seconds", "histogram",
	       "From the CLI's flip of a configuration to ringmeshd serving it.");
	for (int k = 0; k < RM_STATS_BUCKETS; k++) {
		cum += h->cfg_apply.b[k];
		puts_(c->b, "ringmesh_config_apply_duration_seconds_bucket{le=\"");
		put_le(c->b, k, 6);
		putf(c->b, "\"} %llu\n", (unsigned long long)cum);
	}
	putf(c->b, "ringmesh_config_apply_duration_seconds_sum %llu.%06llu\n",
	     (unsigned long long)(h->cfg_apply.sum / 1000000),
	     (unsigned long long)(h->cfg_apply.sum % 1000000));
	putf(c->b, "ringmesh_config_apply_duration_seconds_count %llu\n", (unsigned long long)cum);
	own_workers(c->b, h);
	own_mirror(c->b, h);
}

static void own_dp(struct prom_buf *b, const uint64_t *dp)
{
	family(b, "ringmesh_datapath_decisions_total", "counter",
	       "Decisions of the kernel programs (rm_dpstats): redirected to the proxy, left "
	       "alone (and why), failed open.");
	for (uint32_t i = 0; i < RM_DP_STAT_MAX; i++)
		putf(b, "ringmesh_datapath_decisions_total{decision=\"%s\"} %llu\n", dp_names[i],
		     (unsigned long long)dp[i]);
}

static void pool_labels(struct prom_buf *b, const struct rm_cb_pool *p)
{
	bool first = true;

	labelk(b, &first, "destination_service", p->service, sizeof(p->service));
	label(b, &first, "subset", p->subset, strnlen(p->subset, sizeof(p->subset)));
}

static void own_cb(struct prom_buf *b, const void *mem, size_t len)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
		bool u32;
	} g[] = {
	    {"ringmesh_breaker_connections", "gauge", "Upstream connections open or opening.",
	     offsetof(struct rm_cb_pool, connections), true},
	    {"ringmesh_breaker_pending", "gauge", "Requests waiting for an upstream connection.",
	     offsetof(struct rm_cb_pool, pending), true},
	    {"ringmesh_breaker_requests_active", "gauge", "Requests in flight.",
	     offsetof(struct rm_cb_pool, requests), true},
	    {"ringmesh_breaker_retries_active", "gauge", "Retries in flight.",
	     offsetof(struct rm_cb_pool, retries), true},
	    {"ringmesh_breaker_hosts", "gauge", "Members of the pool.",
	     offsetof(struct rm_cb_pool, n_hosts), true},
	    {"ringmesh_breaker_hosts_ejected", "gauge", "Members currently ejected.",
	     offsetof(struct rm_cb_pool, ejected), true},
	    {"ringmesh_breaker_ejections_total", "counter",
	     "Outlier ejections of the pool's hosts.", offsetof(struct rm_cb_pool, ejections_total),
	     false},
	};
	static const struct {
		const char *limit;
		size_t off;
	} ovf[] = {
	    {"connections", offsetof(struct rm_cb_pool, cx_overflow)},
	    {"pending", offsetof(struct rm_cb_pool, pending_overflow)},
	    {"requests", offsetof(struct rm_cb_pool, rq_overflow)},
	    {"retries", offsetof(struct rm_cb_pool, retry_overflow)},
	};

	struct cb m;

	if (cb_locate(&m, mem, len))
		return;
	for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
		family(b, g[k].name, g[k].type, g[k].help);
		for (uint32_t i = 0; i < m.n_pools; i++) {
			const struct rm_cb_pool *p = &m.pools[i];
			const char *f = (const char *)p + g[k].off;
			unsigned long long v;

			if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != RM_CB_LIVE)
				continue;
			v = g[k].u32 ? __atomic_load_n((const uint32_t *)f, __ATOMIC_RELAXED)
				     : __atomic_load_n((const uint64_t *)f, __ATOMIC_RELAXED);
			putf(b, "%s{", g[k].name);
			pool_labels(b, p);
			putf(b, "} %llu\n", v);
		}
	}
	family(b, "ringmesh_breaker_overflows_total", "counter",
	       "Limits reached: connections (the request waited), pending and requests (503 UO), "
	       "retries (not made).");
	for (uint32_t i = 0; i < m.n_pools; i++) {
		const struct rm_cb_pool *p = &m.pools[i];

		if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != RM_CB_LIVE)
			continue;
		for (size_t k = 0; k < sizeof(ovf) / sizeof(ovf[0]); k++) {
			puts_(b, "ringmesh_breaker_overflows_total{");
			pool_labels(b, p);
			putf(b, ",limit=\"%s\"} %llu\n", ovf[k].limit,
			     (unsigned long long)__atomic_load_n(
				 (const uint64_t *)((const char *)p + ovf[k].off),
				 __ATOMIC_RELAXED));
		}
	}
	family(b, "ringmesh_breaker_table_full_total", "counter",
	       "Pool or host lookups that found no slot in rm_breaker (failed open: no limit).");
	putf(b, "ringmesh_breaker_table_full_total{table=\"pools\"} %llu\n",
	     LD(m.h, pools_dropped));
	putf(b, "ringmesh_breaker_table_full_total{table=\"hosts\"} %llu\n",
	     LD(m.h, hosts_dropped));
	family(b, "ringmesh_breaker_slots", "gauge",
	       "Slots of rm_breaker in use: pools (service x subset) and hosts (pool x endpoint "
	       "port) that have had a request.");
	putf(b, "ringmesh_breaker_slots{table=\"pools\"} %llu\n", LD(m.h, pools_used));
	putf(b, "ringmesh_breaker_slots{table=\"hosts\"} %llu\n", LD(m.h, hosts_used));
	family(b, "ringmesh_breaker_pools_max", "gauge",
	       "Pool slots of rm_breaker (ringmeshd --breaker-pools): pools in use past them run "
	       "without limits.");
	putf(b, "ringmesh_breaker_pools_max %u\n", m.n_pools);
	family(b, "ringmesh_breaker_hosts_max", "gauge",
	       "Host slots of rm_breaker (ringmeshd --breaker-hosts).");
	putf(b, "ringmesh_breaker_hosts_max %u\n", m.n_hosts);
}

int prom_render(const struct prom_view *v, struct prom_buf *b)
{
	struct ctx c = {.b = b};
	const struct rm_stats_hdr *h = NULL;
	struct prom_stats ps;
	bool first = true;

	if (!prom_stats_locate(v->stats, v->stats_len, &ps)) {
		h = ps.h;
		c.s = malloc(sizeof(*c.s) * ps.n_slots);
		if (!c.s)
			return -ENOMEM;
		for (uint32_t i = 0; i < ps.n_slots; i++) {
			if (__atomic_load_n(&ps.slots[i].state, __ATOMIC_ACQUIRE) != RM_STATS_LIVE)
				continue;
			prom_series_copy(&ps, i, &c.s[c.n++]);
		}
	}
	if (h) {
		requests_total(&c);
		hist_family(&c, "istio_request_duration_milliseconds",
			    "Duration of requests, first byte in to last byte out.",
			    offsetof(struct rm_stats_row, dur), true);
		hist_family(&c, "istio_request_bytes", "Request sizes: head and body, as received.",
			    offsetof(struct rm_stats_row, req), false);
		hist_family(&c, "istio_response_bytes", "Response sizes: head and body, as sent.",
			    offsetof(struct rm_stats_row, resp), false);
		/* Istio's orientation: received = from the caller (request), sent = to it */
		tcp_family(&c, "istio_tcp_sent_bytes_total",
			   "Bytes sent to the caller (responses).",
			   offsetof(struct rm_stats_slot, tcp_received_bytes));
		tcp_family(&c, "istio_tcp_received_bytes_total",
			   "Bytes received from the caller (requests).",
			   offsetof(struct rm_stats_slot, tcp_sent_bytes));
		tcp_family(&c, "istio_tcp_connections_opened_total", "Upstream connections opened.",
			   offsetof(struct rm_stats_slot, tcp_opened));
		tcp_family(&c, "istio_tcp_connections_closed_total", "Upstream connections closed.",
			   offsetof(struct rm_stats_slot, tcp_closed));
	}
	family(b, "istio_build", "gauge", "Istio component build info.");
	puts_(b, "istio_build{");
	labelz(b, &first, "component", "ringmesh");
	labelz(b, &first, "tag", v->tag && *v->tag ? v->tag : "unknown");
	puts_(b, "} 1\n");
	if (h)
		own_stats(&c, h);
	if (v->has_store_gen) {
		family(b, "ringmesh_config_store_generation", "gauge",
		       "Configuration generation the CLI last flipped (rm_cfg_ctl); ahead of "
		       "ringmesh_config_generation while an apply is pending or was refused.");
		putf(b, "ringmesh_config_store_generation %llu\n",
		     (unsigned long long)v->store_gen);
	}
	if (v->dp)
		own_dp(b, v->dp);
	if (v->cb)
		own_cb(b, v->cb, v->cb_len);
	free(c.s);
	return b->err;
}
