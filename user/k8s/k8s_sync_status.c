// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * `ringmesh sync status` and the sync line of `ringmesh status`: the status file
 * the loop writes (k8s_sync.c), read back as plain text or as a value of the
 * CLI's JSON writer, with what only the reader knows added: whether the writer
 * still runs (its pid alive and the file fresh) and the ages of its times.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The CLI's writer names two functions as jansson does: declare them under other
 * names here (this file calls neither), then take jansson's. */
#define json_string json_writer_string_unused
#define json_null json_writer_null_unused
#include "common/json.h"
#undef json_string
#undef json_null

#include "common/util.h"
#include "k8s/k8s.h"
#include "k8s/k8s_sync.h"

/* The loop rewrites the file every second; older than this, it is not running. */
#define STALE_NS 10000000000ull

static json_int_t num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void emit(struct json_writer *w, json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_start_object(w);
		json_object_foreach(v, k, x)
		{
			if (json_is_null(x)) {
				json_null_field(w, k);
				continue;
			}
			json_name(w, k);
			emit(w, x);
		}
		json_end_object(w);
		break;
	case JSON_ARRAY:
		json_start_array(w);
		json_array_foreach(v, i, x) if (!json_is_null(x)) emit(w, x);
		json_end_array(w);
		break;
	case JSON_STRING:
		json_string_len(w, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		json_int(w, json_integer_value(v));
		break;
	case JSON_REAL:
		json_float(w, json_real_value(v));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		json_bool(w, json_is_true(v));
		break;
	default:
		break;
	}
}

static const char *ago(json_int_t t, uint64_t now, char *buf, size_t len)
{
	if (t <= 0)
		snprintf(buf, len, "never");
	else
		snprintf(buf, len, "%.1f s ago",
			 (double)(now > (uint64_t)t ? now - (uint64_t)t : 0) / 1e9);
	return buf;
}

static void print_full(json_t *j, bool running, uint64_t now, FILE *out)
{
	json_t *kinds = json_object_get(j, "kinds"), *sk = json_object_get(j, "skipped"), *k;
	json_t *pods = json_object_get(j, "pods");
	char b[64];
	size_t i;

	fprintf(out, "sync %s (pid %lld)%s%s, API %s\n", running ? "running" : "not running",
		(long long)num(j, "pid"), *str(j, "node") ? ", node " : "", str(j, "node"),
		json_is_true(json_object_get(j, "reachable")) ? "reachable" : "unreachable");
	fprintf(out, "  status file    written %s\n", ago(num(j, "updated_ns"), now, b, sizeof(b)));
	fprintf(out, "  last event     %s\n", ago(num(j, "last_event_ns"), now, b, sizeof(b)));
	fprintf(out, "  published      generation %lld, %lld document%s from the API, %s\n",
		(long long)num(j, "generation"), (long long)num(j, "documents"),
		num(j, "documents") == 1 ? "" : "s",
		ago(num(j, "published_ns"), now, b, sizeof(b)));
	if (*str(j, "publish_error"))
		fprintf(out, "  publish error  %s\n", str(j, "publish_error"));
	fprintf(out, "  %-18s %-8s %-9s %7s %7s %5s %4s %6s  %s\n", "KIND", "VERSION", "STATE",
		"OBJECTS", "EVENTS", "LISTS", "410", "ERRORS", "LAST ERROR");
	json_array_foreach(kinds, i, k)
	{
		fprintf(out, "  %-18s %-8s %-9s %7lld %7lld %5lld %4lld %6lld  %s\n",
			str(k, "kind"), *str(k, "version") ? str(k, "version") : "-",
			str(k, "state"), (long long)num(k, "objects"), (long long)num(k, "events"),
			(long long)num(k, "lists"), (long long)num(k, "relists_410"),
			(long long)num(k, "errors"),
			*str(k, "last_error") ? str(k, "last_error") : "-");
	}
	fprintf(out, "  skipped        %zu object%s%s\n", json_array_size(sk),
		json_array_size(sk) == 1 ? "" : "s", json_array_size(sk) ? ":" : "");
	json_array_foreach(sk, i, k) fprintf(out, "    %s %s/%s: %s\n", str(k, "kind"),
					     str(k, "namespace"), str(k, "name"), str(k, "error"));
	if (pods)
		fprintf(
		    out,
		    "  pods           %lld local, %lld mapped to cgroups (%lld pod cgroups under "
		    "%s), %lld errors%s%s\n",
		    (long long)num(pods, "local"), (long long)num(pods, "mapped"),
		    (long long)num(pods, "cgroups"), str(pods, "cgroup_dir"),
		    (long long)num(pods, "errors"), *str(pods, "last_error") ? ": " : "",
		    str(pods, "last_error"));
	else
		fprintf(out, "  pods           no pod identity (no --cgroup and --node-name)\n");
}

int k8s_sync_status_show(const char *path, struct json_writer *w, FILE *out, bool brief,
			 uint64_t now_ns, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	json_int_t pid, upd;
	bool running;
	char b[64];

	if (!j) {
		FILE *f = fopen(path, "r");

		if (!f)
			return errf(err, errlen, -ENOENT, "no sync status at %s: %s", path,
				    strerror(errno));
		fclose(f);
		return errf(err, errlen, -EINVAL, "%s:%d: %s", path, je.line, je.text);
	}
	pid = num(j, "pid");
	upd = num(j, "updated_ns");
	running = pid > 0 && (!kill((pid_t)pid, 0) || errno == EPERM) && upd > 0 &&
		  now_ns - (uint64_t)upd < STALE_NS;
	json_object_set_new(j, "running", json_boolean(running));
	if (w) {
		emit(w, j);
	} else if (brief) {
		fprintf(out,
			"  sync           %s, API %s, %lld documents (generation %lld), "
			"last event %s, %zu skipped\n",
			running ? "running" : "not running",
			json_is_true(json_object_get(j, "reachable")) ? "reachable" : "unreachable",
			(long long)num(j, "documents"), (long long)num(j, "generation"),
			ago(num(j, "last_event_ns"), now_ns, b, sizeof(b)),
			json_array_size(json_object_get(j, "skipped")));
	} else {
		print_full(j, running, now_ns, out);
	}
	json_decref(j);
	return 0;
}
