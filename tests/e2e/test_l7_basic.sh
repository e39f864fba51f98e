#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# L7 routing end to end: a node netns running ringmeshd, a client pod and three
# backend pods (versions v1/v2/v3) behind the VIP 10.96.0.20:8080 declared by a
# ServiceEntry; rules applied with the CLI while the daemon runs. Checks routing,
# Envoy-compatible local replies, timeouts, retries, keep-alive, pipelining,
# tracing headers, a config flip under load and the rm_stats counters.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
need_root

backend_node l7-basic 3 10.244.0.16
ok "node netns with a client and three backend pods"
for v in 1 2 3; do
	bg b$v in_ns rm-$RUN_ID-b$v "$BUILD/rm-backend" --mode http --name b$v --version v$v \
		--listen 10.244.0.1$v:8080 --stats-file "$TMP/b$v.json" --ready-file "$TMP/b$v.ready"
done
# A host that answers every request with 503 (the failing host of the retry checks).
bg bad in_ns rm-$RUN_ID-b3 python3 -c '
import http.server as h
class H(h.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(503); self.send_header("content-length", "4"); self.end_headers()
        self.wfile.write(b"bad\n")
    def log_message(self, *a): pass
h.ThreadingHTTPServer(("10.244.0.16", 8080), H).serve_forever()'
for v in 1 2 3; do wait_file "$TMP/b$v.ready" 5 || { fail "backend v$v starts"; summary l7-basic; exit 1; }; done
ok "backends v1 v2 v3 listening"

apply() { "$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$1"; }
client() { in_cg "$CLIENT_CG" "$CLIENT_NS" -- "$@"; }
load() { client "$BUILD/rm-load" http --connect 10.96.0.20:8080 --json "$@"; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
VIP=http://10.96.0.20:8080
SVC=trans-service.order-system-production.svc.cluster.local

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
  - {address: 10.244.0.12, labels: {app: trans-service, version: v2}}
  - {address: 10.244.0.13, labels: {app: trans-service, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: trans-service, namespace: order-system-production}
spec:
  host: $SVC
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dead, namespace: order-system-production}
spec:
  hosts: [dead.order-system-production.svc.cluster.local]
  addresses: [10.96.0.21]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.244.0.14, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: flaky, namespace: order-system-production}
spec:
  hosts: [flaky.order-system-production.svc.cluster.local]
  addresses: [10.96.0.22]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.244.0.16, labels: {version: bad}}
  - {address: 10.244.0.11, labels: {version: v1}}
Y
vs() { # NAME-OF-FILE then the http: list on stdin
	{ cat <<Y
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: trans, namespace: order-system-production}
spec:
  hosts: [$SVC]
  http:
Y
	  cat; } >"$TMP/$1.yaml"
}

start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
	--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 2 ||
	{ fail "ringmeshd starts"; summary l7-basic; exit 1; }
check "ServiceEntry + DestinationRule applied" apply "$TMP/se.yaml"
sleep 0.2

spread() {
	local out; out=$(load --requests 300 --conns 3 --count-header x-backend-version) || { echo "$out"; return 1; }
	echo "$out"
	[ "$(echo "$out" | jget 'd["errors"]')" = 0 ] &&
		[ "$(echo "$out" | jget 'min(d["versions"].get(v, 0) for v in ("v1", "v2", "v3"))')" -ge 50 ]
}
check "service without rules: requests spread over v1, v2 and v3" spread

only() { # VERSION [extra rm-load args]: every answer from that version
	local v=$1; shift
	local out; out=$(load --requests 100 --conns 2 --count-header x-backend-version "$@") || { echo "$out"; return 1; }
	echo "$out"
	[ "$(echo "$out" | jget "d['versions'].get('$v', 0)")" = 100 ]
}
vs v1 <<Y
  - route: [{destination: {host: $SVC, subset: v1}}]
Y
apply "$TMP/v1.yaml" && sleep 0.15
check "rule to v1 only: all 100 requests answered by v1" only v1

vs hdr <<Y
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: $SVC, subset: v2}}]
  - route: [{destination: {host: $SVC, subset: v1}}]
Y
apply "$TMP/hdr.yaml" && sleep 0.15
check "header match end-user=jason goes to v2" only v2 --header 'end-user: jason'
check "without the header the request goes to v1" only v1

vs miss <<Y
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: $SVC, subset: v2}}]
Y
apply "$TMP/miss.yaml" && sleep 0.15
no_route() {
	local code; code=$(client curl -s -o "$TMP/nr.body" -w '%{http_code}' "$VIP/")
	echo "status $code, body '$(cat "$TMP/nr.body")'"
	[ "$code" = 404 ] && [ ! -s "$TMP/nr.body" ]
}
check "no rule matches: 404 with an empty body" no_route

vs to <<Y
  - route: [{destination: {host: $SVC, subset: v1}}]
    timeout: 300ms
Y
apply "$TMP/to.yaml" && sleep 0.15
timeout_504() {
	local out code t body
	out=$(client curl -s -o "$TMP/to.body" -w '%{http_code} %{time_total}' "$VIP/?delay=2s")
	code=${out% *}; t=${out#* }; body=$(cat "$TMP/to.body")
	echo "status $code after ${t}s, body '$body'"
	[ "$code" = 504 ] && [ "$body" = "upstream request timeout" ] &&
		python3 -c "import sys; t=float(sys.argv[1]); sys.exit(0 if 0.28 <= t <= 0.34 else 1)" "$t"
}
check "route timeout 300ms: 504 'upstream request timeout' at 300 ms (±20 ms)" timeout_504
fast_ok() { local c; c=$(client curl -s -o /dev/null -w '%{http_code}' "$VIP/?delay=100ms"); echo "$c"; [ "$c" = 200 ]; }
check "a 100 ms answer under the 300 ms timeout is 200" fast_ok

cat >"$TMP/flaky.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: order-system-production}
spec:
  hosts: [flaky.order-system-production.svc.cluster.local]
  http:
  - route: [{destination: {host: flaky.order-system-production.svc.cluster.local}}]
    retries: {attempts: 3, retryOn: 5xx}
Y
apply "$TMP/flaky.yaml" && sleep 0.15
retries() {
	local out; out=$(client "$BUILD/rm-load" http --connect 10.96.0.22:8080 --json --requests 60 --count-header x-backend-version --allow-errors) || { echo "$out"; return 1; }
	echo "$out"
	[ "$(echo "$out" | jget 'd["status"].get("200", 0)')" = 60 ]
}
check "retries on 5xx: a failing host (503) never reaches the client, all 60 are 200" retries

uf() {
	local out; out=$(client curl -s -w '\n%{http_code}' http://10.96.0.21:8080/)
	echo "$out"
	[ "$out" = "upstream connect error or disconnect/reset before headers. reset reason: connection failure
503" ]
}
check "connect failure: 503 with Envoy's connection failure text" uf
uc() {
	local out; out=$(client curl -s -w '\n%{http_code}' "$VIP/?close=early")
	echo "$out"
	[ "$out" = "upstream connect error or disconnect/reset before headers. reset reason: connection termination
503" ]
}
check "upstream closes before the response: 503 connection termination" uc

raw() { # bytes to send -> what the proxy answers until it closes (5 s cap)
	client timeout 5 bash -c 'trap "" PIPE; exec 3<>/dev/tcp/10.96.0.20/8080; printf "$1" >&3; cat <&3' _ "$1"
}
malformed() {
	local out; out=$(raw 'GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n'); local rc=$?
	echo "$out"; echo "rc=$rc"
	[ $rc = 0 ] && echo "$out" | head -1 | grep -q '^HTTP/1.1 400' && echo "$out" | grep -qi '^connection: close'
}
check "malformed request: 400, connection: close, and the proxy closes" malformed
clte() {
	local out; out=$(raw 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'); local rc=$?
	echo "$out"; echo "rc=$rc"
	[ $rc = 0 ] && echo "$out" | head -1 | grep -q '^HTTP/1.1 400'
}
check "Content-Length with Transfer-Encoding: 400 and close" clte

vs spread <<Y
  - route: [{destination: {host: $SVC}}]
Y
apply "$TMP/spread.yaml" && sleep 0.15
conns_total() { cat "$TMP"/b[123].json | python3 -c 'import sys,json; print(sum(json.loads(l)["conns_total"] for l in sys.stdin))'; }
reqs_total() { cat "$TMP"/b[123].json | python3 -c 'import sys,json; print(sum(json.loads(l)["requests_total"] for l in sys.stdin))'; }
keepalive() {
	local c0 r0 c1 r1 out
	c0=$(conns_total); r0=$(reqs_total)
	out=$(load --requests 600 --conns 4) || { echo "$out"; return 1; }
	sleep 0.3
	c1=$(conns_total); r1=$(reqs_total)
	echo "backend requests +$((r1 - r0)), backend connections +$((c1 - c0))"
	[ $((r1 - r0)) -ge 600 ] && [ $((c1 - c0)) -le 40 ]
}
check "keep-alive: 600 requests over at most 40 upstream connections" keepalive
pipelined() {
	local out; out=$(load --requests 400 --conns 2 --pipeline 8) || { echo "$out"; return 1; }
	echo "$out"
	[ "$(echo "$out" | jget 'd["errors"]')" = 0 ] && [ "$(echo "$out" | jget 'd["status"].get("200", 0)')" = 400 ]
}
check "pipelining 8 deep: 400 answers in order, no errors" pipelined
tracing() {
	local out; out=$(client curl -s "$VIP/trace")
	echo "$out"
	echo "$out" | python3 -c '
import json, re, sys
h = json.load(sys.stdin)["headers"]
assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", h["x-request-id"]), h
assert re.fullmatch(r"[0-9a-f]{16}|[0-9a-f]{32}", h["x-b3-traceid"]), h
assert re.fullmatch(r"[0-9a-f]{16}", h["x-b3-spanid"]), h
assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", h["traceparent"]), h'
}
check "x-request-id (UUID v4), B3 and traceparent arrive at the backend" tracing
keep_reqid() {
	local out; out=$(client curl -s -H 'x-request-id: abc-123' -H 'x-b3-traceid: 463ac35c9f6413ad' -H 'x-b3-spanid: a2fb4a1d1a96d312' -H 'x-b3-sampled: 1' "$VIP/")
	echo "$out"
	echo "$out" | python3 -c '
import json, sys
h = json.load(sys.stdin)["headers"]
assert h["x-request-id"] == "abc-123" and h["x-b3-traceid"] == "463ac35c9f6413ad", h
assert h["x-b3-parentspanid"] == "a2fb4a1d1a96d312" and h["x-b3-spanid"] != "a2fb4a1d1a96d312", h'
}
check "an incoming x-request-id is kept and the B3 span becomes the parent" keep_reqid

# corsPolicy as Envoy's CORS filter applies it (Istio: lists joined with ",", maxAge in s)
vs cors <<'Y'
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: trans-service.order-system-production.svc.cluster.local, subset: v1}}]
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}, {regex: "https://[a-z]+\\.corp\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user, content-type]
      exposeHeaders: [x-backend-version]
      maxAge: 24h
      allowCredentials: true
  - match: [{uri: {prefix: /broken}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: trans-service.order-system-production.svc.cluster.local, subset: v1}}]
    corsPolicy: {allowOrigins: [{exact: "https://shop.example.com"}], allowCredentials: true}
  - route: [{destination: {host: trans-service.order-system-production.svc.cluster.local, subset: v2}}]
    corsPolicy: {allowOrigin: ["*"], allowMethods: ["*"], allowHeaders: ["*"]}
Y
apply "$TMP/cors.yaml" && sleep 0.15
# hdrs ARGS...: the response head of curl ARGS, lower-cased names, CR stripped
hdrs() { client curl -s -o "$TMP/cors.body" -D - "$@" | tr -d '\r' | sed 's/^\([^:]*\):/\L\1:/'; }
cors_preflight() {
	local out; out=$(hdrs -X OPTIONS -H 'Origin: https://shop.example.com' \
		-H 'Access-Control-Request-Method: POST' "$VIP/api/orders")
	echo "$out"
	echo "$out" | grep -q '^HTTP/1.1 200' &&
		echo "$out" | grep -qx 'access-control-allow-origin: https://shop.example.com' &&
		echo "$out" | grep -qx 'access-control-allow-methods: GET,POST' &&
		echo "$out" | grep -qx 'access-control-allow-headers: x-user,content-type' &&
		echo "$out" | grep -qx 'access-control-max-age: 86400' &&
		echo "$out" | grep -qx 'access-control-allow-credentials: true' &&
		! echo "$out" | grep -q '^x-backend-version:' && [ ! -s "$TMP/cors.body" ]
}
check "CORS preflight from an allowed origin: answered by the proxy (200, the policy's headers)" cors_preflight
cors_denied() {
	local out; out=$(hdrs -X OPTIONS -H 'Origin: https://evil.example' \
		-H 'Access-Control-Request-Method: POST' "$VIP/api/orders")
	echo "$out"
	echo "$out" | grep -qx 'x-backend-version: v1' && ! echo "$out" | grep -q '^access-control-'
}
check "CORS preflight from another origin: forwarded to v1, no CORS headers" cors_denied
cors_simple() {
	local out; out=$(hdrs -H 'Origin: https://eu.corp.example' "$VIP/api/orders")
	echo "$out"
	echo "$out" | grep -q '^HTTP/1.1 200' && echo "$out" | grep -qx 'x-backend-version: v1' &&
		echo "$out" | grep -qx 'access-control-allow-origin: https://eu.corp.example' &&
		echo "$out" | grep -qx 'access-control-allow-credentials: true' &&
		echo "$out" | grep -qx 'access-control-expose-headers: x-backend-version' &&
		! echo "$out" | grep -q '^access-control-allow-methods:'
}
check "CORS simple request from a regex-allowed origin: v1's answer with the origin echoed" cors_simple
cors_none() {
	local a b; a=$(hdrs "$VIP/api/orders"); b=$(hdrs -H 'Origin: https://eu.corp.example.evil' "$VIP/api/x")
	echo "$a"; echo "$b"
	echo "$a" | grep -qx 'x-backend-version: v1' && ! echo "$a$b" | grep -q '^access-control-' &&
		echo "$b" | grep -qx 'x-backend-version: v1'
}
check "CORS: no Origin, or one the regex does not match whole: no CORS headers" cors_none
cors_star() {
	local out; out=$(hdrs -X OPTIONS -H 'Origin: http://localhost:3000' \
		-H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: x-a,x-b' "$VIP/other")
	echo "$out"
	echo "$out" | grep -qx 'access-control-allow-origin: http://localhost:3000' &&
		echo "$out" | grep -qx 'access-control-allow-methods: PUT' &&
		echo "$out" | grep -qx 'access-control-allow-headers: x-a,x-b' &&
		! echo "$out" | grep -q '^access-control-allow-credentials:' &&
		! echo "$out" | grep -q '^access-control-max-age:'
}
check "CORS allowOrigin \"*\", methods and headers \"*\": the preflight's own asks echoed" cors_star
cors_local() { # the proxy's own replies carry them too; a preflight comes before the fault
	local a b p; a=$(hdrs -H 'Origin: https://shop.example.com' "$VIP/broken")
	b=$(hdrs "$VIP/broken"); p=$(hdrs -X OPTIONS -H 'Origin: https://shop.example.com' \
		-H 'Access-Control-Request-Method: GET' "$VIP/broken")
	echo "$a"; echo "$b"; echo "$p"
	echo "$a" | grep -q '^HTTP/1.1 503' &&
		echo "$a" | grep -qx 'access-control-allow-origin: https://shop.example.com' &&
		echo "$a" | grep -qx 'access-control-allow-credentials: true' &&
		echo "$b" | grep -q '^HTTP/1.1 503' && ! echo "$b" | grep -q '^access-control-' &&
		echo "$p" | grep -q '^HTTP/1.1 200' &&
		echo "$p" | grep -qx 'access-control-allow-origin: https://shop.example.com'
}
check "CORS on the proxy's own reply (fault abort 503), and the preflight answered before the fault" cors_local
cors_python() { # a real client library: http.client, a keep-alive preflight then the request
	client python3 - <<'P'
import http.client
c = http.client.HTTPConnection("10.96.0.20", 8080, timeout=5)
c.request("OPTIONS", "/api/a", headers={"Origin": "https://shop.example.com",
                                        "Access-Control-Request-Method": "GET"})
r = c.getresponse(); r.read()
assert r.status == 200 and r.getheader("access-control-allow-origin") == "https://shop.example.com", r.getheaders()
c.request("GET", "/api/a", headers={"Origin": "https://shop.example.com"})
r = c.getresponse(); r.read()
assert r.status == 200 and r.getheader("access-control-allow-origin") == "https://shop.example.com", r.getheaders()
assert r.getheader("x-backend-version") == "v1", r.getheaders()
print("ok", r.getheaders())
P
}
check "CORS with Python's http.client: preflight and request on one keep-alive connection" cors_python

vs flip1 <<Y
  - route: [{destination: {host: $SVC, subset: v1}}]
Y
vs flip3 <<Y
  - route: [{destination: {host: $SVC, subset: v3}}]
Y
flip() {
	apply "$TMP/flip1.yaml" >/dev/null && sleep 0.15
	load --duration 3s --conns 4 --count-header x-backend-version >"$TMP/flip.out" 2>&1 &
	local lp=$!
	sleep 1
	local want; want=$("$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$TMP/flip3.yaml" | sed -n 's/.*(generation \([0-9]*\)[,;)].*/\1/p')
	local ms=-1 i line
	# ringmeshd logs how long after the CLI's flip (rm_cfg_ctl.updated_ns) the new
	# table went live: measured inside the daemon, so client-side load cannot blur it.
	for i in $(seq 50); do
		line=$(grep "configuration generation $want live" "$TMP/ringmeshd.log") && break
		sleep 0.02
	done
	echo "$line"
	ms=$(echo "$line" | sed -n 's/.*live, \([0-9]*\)\.[0-9] ms after.*/\1/p')
	[ -n "$ms" ] || ms=-1
	local after; after=$(client curl -s "$VIP/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
	echo "next request answered by $after"
	wait $lp; local rc=$?
	cat "$TMP/flip.out"
	[ $rc = 0 ] && [ "$after" = v3 ] && [ $ms -ge 0 ] && [ $ms -le 100 ] && [ "$(jget 'd["errors"]' <"$TMP/flip.out")" = 0 ] &&
		[ "$(jget 'd["versions"].get("v1", 0) > 0 and d["versions"].get("v3", 0) > 0' <"$TMP/flip.out")" = True ] &&
		[ "$(jget 'sum(v for k, v in d["status"].items() if k != "200")' <"$TMP/flip.out")" = 0 ]
}
check "config flip under load: zero errors, v1 then v3, new rule live within 100 ms" flip

# A client that gives up before the answer: Envoy's DC (downstream connection
# termination), counted with response code 0, not as an upstream failure.
dc_flags() {
	"$BUILD/ringmesh" --pin-dir "$PIN" -j stats | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(s["response_flags"].get("DC", 0) for s in (d.get("requests") or {}).get("slots", [])
          if s["destination_service"].startswith("trans-service")))'
}
client_leaves() {
	local before after code
	before=$(dc_flags) || return 1
	for _ in 1 2 3; do client curl -s -o /dev/null --max-time 0.3 "$VIP/?delay=2s"; done
	sleep 2.5 # past the backend's answer, had the proxy kept waiting for it
	code=$(client curl -s -o /dev/null -w '%{http_code}' "$VIP/")
	after=$(dc_flags) || return 1
	echo "DC before $before, after 3 abandoned requests $after; next request $code"
	[ $((after - before)) = 3 ] && [ "$code" = 200 ]
}
check "a client leaving mid-request is counted with flag DC; the next request is served" client_leaves

stats() {
	local out; out=$("$BUILD/ringmesh" --pin-dir "$PIN" -j stats) || { echo "$out"; return 1; }
	echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
slots = [s for s in (d.get("requests") or {}).get("slots", []) if s["destination_service"].startswith("trans-service")]
if not slots:
    print(json.dumps(d)[:2000]); sys.exit(1)
req = sum(s["requests"] for s in slots); ok = sum(s["code_class"]["2xx"] for s in slots)
nr = sum(s["response_flags"]["NR"] for s in slots); ut = sum(s["response_flags"]["UT"] for s in slots)
tcp = sum(s["tcp"]["opened"] for s in slots)
vers = sorted(set(s["destination_version"] for s in slots))
print("requests", req, "2xx", ok, "NR", nr, "UT", ut, "tcp opened", tcp, "versions", vers)
sys.exit(0 if req > 1000 and ok > 1000 and nr >= 1 and ut >= 1 and tcp >= 3 and "v1" in vers else 1)'
}
check "rm_stats: requests, 2xx, NR, UT and TCP counters moved per version" stats

check "ringmeshd stops cleanly" stop_ringmeshd
summary l7-basic
