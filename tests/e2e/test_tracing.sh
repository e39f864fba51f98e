#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Zipkin spans end to end: a node netns running ringmeshd with --zipkin-url pointing
# at the validating collector double (zipkin_recv.py, on the node's loopback), a
# client pod and a backend pod that echoes the headers it got. Checks: at 100 %
# one schema-valid span per request whose ids are the B3 headers the backend saw
# (root: no parent, 128-bit trace; continued: parent = the client's span, trace
# kept; x-b3-flags: 1 = debug); at 0 % none but the x-b3-sampled: 1 ones; with
# the collector down and with one that never answers every request still succeeds
# and ringmesh_trace_spans_dropped_total rises; promtool stays clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
need_root

backend_node tracing 1
bg b1 in_ns rm-$RUN_ID-b1 "$BUILD/rm-backend" --mode http --name b1 --version v1 \
	--listen 10.244.0.11:8080 --ready-file "$TMP/b1.ready"
wait_file "$TMP/b1.ready" 5 || { fail "backend starts"; summary tracing; exit 1; }
SVC=trans-service.order-system-production.svc.cluster.local
VIP=http://10.96.0.20:8080
cat >"$TMP/se.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: trans-service, namespace: order-system-production}
spec:
  hosts: [$SVC]
  addresses: [10.96.0.20]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.244.0.11, labels: {app: trans-service, version: v1}}
Y
client() { in_cg "$CLIENT_CG" "$CLIENT_NS" -- "$@"; }
scrape() { in_ns "$NODE_NS" curl -s "http://$METRICS_ADDR/stats/prometheus"; }
metric() { scrape | awk -v m="$1" '$1 == m { print $2 }'; }

# collector MODE: (re)start the double in the node netns; sets ZPORT
collector() {
	[ -n "${PID_zk:-}" ] && { kill "$PID_zk" 2>/dev/null; wait "$PID_zk" 2>/dev/null; }
	rm -f "$TMP/zk.port" "$TMP/spans.jsonl" "$TMP/zk.err"
	: >"$TMP/spans.jsonl"; : >"$TMP/zk.err"
	bg zk in_ns "$NODE_NS" /usr/bin/python3 "$here/zipkin_recv.py" --port-file "$TMP/zk.port" \
		--out "$TMP/spans.jsonl" --errors "$TMP/zk.err" "$@"
	wait_file "$TMP/zk.port" 5 && ZPORT=$(cat "$TMP/zk.port")
}
daemon() { # start ringmeshd with tracing args, apply the service
	stop_ringmeshd
	start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
		--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 2 "$@" &&
		"$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$TMP/se.yaml" && sleep 0.2
}
# N requests with curl, each backend echo (the headers it got) one line in FILE
reqs() { # N FILE [curl args]
	local n=$1 f=$2 i; shift 2; : >"$f"
	for ((i = 0; i < n; i++)); do
		client curl -s -m 5 -A "rm-test/1" "$@" "$VIP/t/$i?q=1" >>"$f" || return 1
		echo >>"$f"
	done
}
wait_spans() { # N: until the collector holds N spans (sender flushes every second)
	local i
	for ((i = 0; i < 40; i++)); do
		[ "$(wc -l <"$TMP/spans.jsonl")" -ge "$1" ] && break
		sleep 0.1
	done
	sleep 1.2 # a later stray span would show up now
	wc -l <"$TMP/spans.jsonl"
}
# the spans against the backend's headers; MODE root|child|debug
match() { # ECHOES MODE
	/usr/bin/python3 - "$1" "$TMP/spans.jsonl" "$2" <<'PY'
import json, sys
echo = [json.loads(l)["headers"] for l in open(sys.argv[1]) if l.strip()]
spans = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
mode = sys.argv[3]
assert len(spans) == len(echo), (len(spans), len(echo))
by_id = {s["id"]: s for s in spans}
assert len(by_id) == len(spans), "span ids not unique"
for h in echo:
    s = by_id[h["x-b3-spanid"]]
    assert s["traceId"] == h["x-b3-traceid"], (s, h)
    assert s["kind"] == "CLIENT" and s["duration"] >= 1, s
    assert s["name"] == "trans-service.order-system-production.svc.cluster.local:8080/*", s
    t = s["tags"]
    assert t["http.method"] == "GET" and t["http.status_code"] == "200" and t["http.protocol"] == "HTTP/1.1", t
    assert t["http.url"].startswith("http://10.96.0.20:8080/t/") and t["http.url"].endswith("?q=1"), t
    assert t["upstream_cluster"] == "outbound|8080||trans-service.order-system-production.svc.cluster.local", t
    assert t["guid:x-request-id"] == h["x-request-id"] and t["component"] == "proxy", t
    assert t["user_agent"] == "rm-test/1" and t["response_flags"] == "-" and "error" not in t, t
    assert s["localEndpoint"] == {"serviceName": "unknown", "ipv4": "10.244.0.10"}, s
    assert s["remoteEndpoint"] == {"ipv4": "10.244.0.11", "port": 8080}, s
    if mode == "root":
        assert "parentId" not in s and "x-b3-parentspanid" not in h and len(s["traceId"]) == 32, s
        assert h["x-b3-sampled"] == "1" and "debug" not in s, h
    else:
        assert s["traceId"] == "463ac35c9f6413ad" and s["parentId"] == "a2fb4a1d1a96d312", s
        assert h["x-b3-parentspanid"] == "a2fb4a1d1a96d312", h
    if mode == "debug":
        assert s.get("debug") is True and h["x-b3-flags"] == "1" and "x-b3-sampled" not in h, (s, h)
print(len(spans), "spans match the backend's B3 headers")
PY
}
B3=(-H 'x-b3-traceid: 463ac35c9f6413ad' -H 'x-b3-spanid: a2fb4a1d1a96d312')

collector || { fail "collector starts"; summary tracing; exit 1; }
check "ringmeshd --zipkin-url --trace-sampling 100 starts" \
	daemon --zipkin-url "http://127.0.0.1:$ZPORT/api/v2/spans" --trace-sampling 100
roots() { reqs 20 "$TMP/e1" && [ "$(wait_spans 20)" = 20 ] && match "$TMP/e1" root; }
check "100 %: 20 requests -> 20 valid root spans, ids = the backend's B3 headers" roots
kids() { : >"$TMP/spans.jsonl"; reqs 10 "$TMP/e2" "${B3[@]}" && [ "$(wait_spans 10)" = 10 ] && match "$TMP/e2" child; }
check "client B3: trace id kept, parentId = the client's span id" kids
dbg() { : >"$TMP/spans.jsonl"; reqs 5 "$TMP/e3" "${B3[@]}" -H 'x-b3-flags: 1' && [ "$(wait_spans 5)" = 5 ] && match "$TMP/e3" debug; }
check "x-b3-flags: 1 -> debug: true, Flags (not Sampled) upstream" dbg
many() {
	: >"$TMP/spans.jsonl"
	local out; out=$(client "$BUILD/rm-load" http --connect 10.96.0.20:8080 --json --requests 500 --conns 4) || return 1
	[ "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')" = 0 ] &&
		[ "$(wait_spans 500)" = 500 ]
}
check "500 keep-alive requests -> 500 spans" many
check "collector saw no invalid span or request" test ! -s "$TMP/zk.err"
sent() { [ "$(metric ringmesh_trace_spans_sent_total)" = 535 ]; }
check "ringmesh_trace_spans_sent_total = 535" sent
prom() {
	scrape >"$TMP/m.txt"
	local o; o=$(promtool check metrics <"$TMP/m.txt" 2>&1 | grep -v 'istio_request_duration_milliseconds use base unit')
	echo "$o"; [ -z "$o" ] && grep -q '^# TYPE ringmesh_trace_spans_dropped_total counter' "$TMP/m.txt"
}
command -v promtool >/dev/null && check "promtool check metrics clean with the span counters" prom ||
	skip "promtool not installed"

check "ringmeshd --trace-sampling 0 starts" \
	daemon --zipkin-url "http://127.0.0.1:$ZPORT/api/v2/spans" --trace-sampling 0
zero() {
	: >"$TMP/spans.jsonl"
	reqs 20 "$TMP/e4" && reqs 3 "$TMP/e5" -H 'x-b3-sampled: 1' && [ "$(wait_spans 3)" = 3 ] &&
		grep -c '"x-b3-sampled":"0"' "$TMP/e4" | grep -qx 20
}
check "0 %: no span for 20 requests (x-b3-sampled: 0 upstream), one each for 3 sent with x-b3-sampled: 1" zero

# A collector that is down, then one that never answers: requests unaffected.
fast() { # FILE: 100 requests, all 200, none slower than 1 s
	local out; out=$(client "$BUILD/rm-load" http --connect 10.96.0.20:8080 --json --requests 200 --conns 2) || return 1
	echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print({k: d.get(k) for k in ("errors", "status", "latency_us", "p99_us", "max_us")})
assert d["errors"] == 0 and d["status"].get("200", 0) == 200, d
assert d["max_us"] < 1000000, "a request waited on the collector"'
}
dropped() { local a b; a=$(metric 'ringmesh_trace_spans_dropped_total{reason="send_failed"}'); b=$(metric 'ringmesh_trace_spans_dropped_total{reason="queue_full"}'); echo "send_failed=$a queue_full=$b"; [ $((a + b)) -ge "$1" ]; }
kill "$PID_zk"; wait "$PID_zk" 2>/dev/null; PID_zk=
check "collector down: ringmeshd starts" daemon --zipkin-url "http://127.0.0.1:$ZPORT/api/v2/spans" --trace-sampling 100
check "collector down: 200 requests all answered" fast
sleep 1.5
check "collector down: the 200 spans counted as dropped" dropped 200
collector --slow
check "slow collector: ringmeshd starts" daemon --zipkin-url "http://127.0.0.1:$ZPORT/api/v2/spans" --trace-sampling 100
slow() { local i; for i in 1 2 3 4 5 6; do fast || return 1; done; }
check "slow collector: 1200 requests all answered" slow
sleep 3
# 1200 spans, the queues hold 2 x 512, the hung batch 100: some must drop on a full queue
check "slow collector: spans dropped (queue full or timed out)" dropped 50
nosent() { [ "$(metric ringmesh_trace_spans_sent_total)" = 0 ]; }
check "slow collector: nothing counted as sent" nosent
check "ringmeshd stops cleanly with a collector that never answers" stop_ringmeshd
bad_url() {
	local out rc; out=$("$RINGMESHD" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
		--zipkin-url https://z:9411/api/v2/spans 2>&1); rc=$?
	echo "$out"; [ $rc -ne 0 ] && grep -q 'https is not supported' <<<"$out"
}
check "--zipkin-url https://... refused with a clear error" bad_url
summary tracing
