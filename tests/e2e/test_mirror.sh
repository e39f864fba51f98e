#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Request mirroring end to end (Istio's "Mirroring" task): httpbin v1 gets every
# request, a copy goes to v2 with its Host suffixed -shadow. A node netns runs
# ringmeshd (one worker, --max-mirrors 4), a client pod and four backend pods: v1
# (rm-backend), v2 (records what it gets), slow (answers after 4 s) and dead (nothing
# listens). Checks: the client only ever sees v1; v2 gets the copies (Host, method,
# path, body); mirrorPercentage 50 mirrors about half; a dead or slow mirror changes
# nothing for the client; the cap and the timeouts hold; the counters move.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
need_root

backend_node mirror 7
ok "node netns with a client and seven backend pods"
bg b1 in_ns rm-$RUN_ID-b1 "$BUILD/rm-backend" --mode http --name b1 --version v1 \
	--listen 10.244.0.11:8000 --ready-file "$TMP/b1.ready"
# The mirror's backends: every request they get is one JSON line (method, path, Host,
# body: Content-Length or chunked) in their file; "slow" answers after 4 s; "flaky"
# (delay -1) answers 500 and resets the connection in turns; "stall" (delay -2) never
# reads a body (its line has the head only); "trickle" (delay -3) reads a Content-Length
# body 8 KiB every 2 ms through a 16 KiB receive buffer. Threaded, so slow ones overlap.
cat >"$TMP/rec.py" <<'PY'
import http.server as h, json, socket, struct, sys, time
addr, out, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
turn = [0]
f = open(out, "a", buffering=1)
class H(h.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def body(self):
        if "chunked" not in (self.headers.get("transfer-encoding") or "").lower():
            n = int(self.headers.get("content-length") or 0)
            if delay != -3:
                return self.rfile.read(n) if n else b""
            out = b""
            while len(out) < n:
                piece = self.rfile.read1(min(8192, n - len(out)))
                if not piece:
                    break
                out += piece
                time.sleep(0.002)
            return out
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return out
            out += self.rfile.read(size)
            self.rfile.readline()
    def handle_one(self):
        if delay == -2:
            f.write(json.dumps({"method": self.command, "host": self.headers.get("host"),
                                "stalled": True}) + "\n")
            time.sleep(20)
            self.close_connection = True
            return
        body = self.body()
        f.write(json.dumps({"method": self.command, "path": self.path,
                            "host": self.headers.get("host"),
                            "body": body.decode("latin-1")}) + "\n")
        if delay < 0:
            turn[0] += 1
            if turn[0] % 2:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(500); self.send_header("content-length", "4")
            self.end_headers(); self.wfile.write(b"bad\n")
            return
        time.sleep(delay)
        self.send_response(200); self.send_header("content-length", "3")
        self.send_header("x-backend-version", "mirror"); self.end_headers()
        self.wfile.write(b"ok\n")
    do_GET = do_POST = do_PUT = handle_one
    def log_message(self, *a): pass
h.ThreadingHTTPServer.request_queue_size = 1024  # a burst of shadow connections
class S(h.ThreadingHTTPServer):
    def server_bind(self):
        if delay == -3:  # accepted sockets inherit it: the sender's bytes wait at its end
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        super().server_bind()
s = S((addr, 8000), H)
s.daemon_threads = True
open(out + ".ready", "w").close()
s.serve_forever()
PY
bg b2 in_ns rm-$RUN_ID-b2 python3 "$TMP/rec.py" 10.244.0.12 "$TMP/v2.jsonl" 0
bg b3 in_ns rm-$RUN_ID-b3 python3 "$TMP/rec.py" 10.244.0.13 "$TMP/slow.jsonl" 4
bg b5 in_ns rm-$RUN_ID-b5 python3 "$TMP/rec.py" 10.244.0.15 "$TMP/flaky.jsonl" -1
bg b6 in_ns rm-$RUN_ID-b6 python3 "$TMP/rec.py" 10.244.0.16 "$TMP/stall.jsonl" -2
bg b7 in_ns rm-$RUN_ID-b7 python3 "$TMP/rec.py" 10.244.0.17 "$TMP/trickle.jsonl" -3
wait_file "$TMP/b1.ready" 5 && wait_file "$TMP/v2.jsonl.ready" 5 && wait_file "$TMP/slow.jsonl.ready" 5 &&
	wait_file "$TMP/flaky.jsonl.ready" 5 && wait_file "$TMP/stall.jsonl.ready" 5 &&
	wait_file "$TMP/trickle.jsonl.ready" 5 ||
	{ fail "backends start"; summary mirror; exit 1; }
ok "backends v1, v2 (recording), slow, flaky, stall and trickle listening; dead has no listener"

apply() { "$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$1"; }
client() { in_cg "$CLIENT_CG" "$CLIENT_NS" -- "$@"; }
scrape() { in_ns "$NODE_NS" curl -s -m 3 "http://$METRICS_ADDR/stats/prometheus"; }
# metric NAME{LABELS}: its value in a fresh scrape (0 when absent)
metric() { scrape | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
SVC=httpbin.default.svc.cluster.local

cat >"$TMP/se.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [$SVC]
  addresses: [10.96.0.30]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.244.0.11, labels: {app: httpbin, version: v1}}
  - {address: 10.244.0.12, labels: {app: httpbin, version: v2}}
  - {address: 10.244.0.13, labels: {app: httpbin, version: slow}}
  - {address: 10.244.0.14, labels: {app: httpbin, version: dead}}
  - {address: 10.244.0.15, labels: {app: httpbin, version: flaky}}
  - {address: 10.244.0.16, labels: {app: httpbin, version: stall}}
  - {address: 10.244.0.17, labels: {app: httpbin, version: trickle}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: slow, labels: {version: slow}}
  - {name: dead, labels: {version: dead}}
  - {name: flaky, labels: {version: flaky}}
  - {name: stall, labels: {version: stall}}
  - {name: trickle, labels: {version: trickle}}
Y
vs() { # FILE MIRROR-SUBSET PERCENT [extra lines of the http entry]
	cat >"$TMP/$1.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - route:
    - destination: {host: httpbin, subset: v1}
      weight: 100
    mirror: {host: httpbin, subset: $2}
    mirrorPercentage: {value: $3}
${4:-}
Y
}

# The client: N requests on one keep-alive connection with Python's http.client
# (Host httpbin:8000, as in Istio's task), every POST_EVERY-th a POST with a body;
# prints JSON: versions seen, errors, the slowest request in seconds.
cat >"$TMP/cl.py" <<'PY'
import http.client, json, sys, time
n, post_every, patience = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
vers, errors, slowest = {}, 0, 0.0
c = None
for i in range(n):
    t = time.monotonic()
    try:
        if c is None:
            c = http.client.HTTPConnection("10.96.0.30", 8000, timeout=patience)
        if post_every and i % post_every == 0:
            c.request("POST", "/post?i=%d" % i, body=("body-%d-" % i) * 20,
                      headers={"Host": "httpbin:8000", "content-type": "text/plain"})
        else:
            c.request("GET", "/get?i=%d" % i, headers={"Host": "httpbin:8000"})
        r = c.getresponse(); r.read()
        v = r.getheader("x-backend-version") if r.status == 200 else "status-%d" % r.status
        vers[v] = vers.get(v, 0) + 1
    except Exception as e:
        errors += 1; c = None
        vers[type(e).__name__] = vers.get(type(e).__name__, 0) + 1
    slowest = max(slowest, time.monotonic() - t)
print(json.dumps({"versions": vers, "errors": errors, "slowest": round(slowest, 3)}))
PY
# all_v1 N POST_EVERY: every one of N requests answered 200 by v1, none slower than 1 s
# (the client's patience is 2 s; a primary held up by its mirror would show here)
all_v1() {
	local out; out=$(client python3 "$TMP/cl.py" "$1" "$2" 2) || { echo "$out"; return 1; }
	echo "$out"
	echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); n=int(sys.argv[1])
sys.exit(0 if d["versions"] == {"v1": n} and d["errors"] == 0 and d["slowest"] < 1.0 else 1)' "$1"
}
# wait_lines FILE N: the file reaches N lines within 3 s
wait_lines() {
	local i
	for ((i = 0; i < 30; i++)); do [ "$(lines "$1")" -ge "$2" ] && return 0; sleep 0.1; done
	return 1
}

DARGS=(--cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 --listen 127.0.0.1:15001
	--pod-gateway $POD_GW --workers 1)
start_ringmeshd "$DAEMON_CG" "$NODE_NS" "${DARGS[@]}" ||
	{ fail "ringmeshd starts"; summary mirror; exit 1; }
check "ServiceEntry + DestinationRule applied" apply "$TMP/se.yaml"

# ---- Istio's task: 100% to v1, mirror to v2 at 100% ----
vs m100 v2 100
out=$(apply "$TMP/m100.yaml" 2>&1)
case $out in *"not implemented"*) fail "apply of a mirror: not named as not implemented"; echo "$out" | sed 's/^/    # /' ;;
*) ok "apply of a mirror: not named as not implemented" ;; esac
sleep 0.15
check "mirror 100%: 40 requests (every 4th a POST), all answered by v1, none slow" all_v1 40 4
copies() {
	wait_lines "$TMP/v2.jsonl" 40 || true
	python3 - "$TMP/v2.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
print(len(rs), "copies; first", rs[:2])
bad = [r for r in rs if r["host"] != "httpbin-shadow:8000"]
posts = [r for r in rs if r["method"] == "POST"]
gets = [r for r in rs if r["method"] == "GET"]
want = {"/post?i=%d" % i: ("body-%d-" % i) * 20 for i in range(0, 40, 4)}
got = {r["path"]: r["body"] for r in posts}
ok = len(rs) == 40 and not bad and len(posts) == 10 and got == want and \
     sorted(r["path"] for r in gets) == sorted("/get?i=%d" % i for i in range(40) if i % 4)
if bad: print("wrong hosts:", bad[:3])
if got != want: print("bodies differ:", list(got.items())[:2])
sys.exit(0 if ok else 1)
PY
}
check "v2 got all 40 copies with Host httpbin-shadow:8000, paths and POST bodies intact" copies
curl_copy() {
	local before code; before=$(lines "$TMP/v2.jsonl")
	code=$(client curl -s -o /dev/null -w '%{http_code}' -H 'Host: httpbin' http://10.96.0.30:8000/headers)
	wait_lines "$TMP/v2.jsonl" $((before + 1)) || { echo "no copy (status $code)"; return 1; }
	tail -1 "$TMP/v2.jsonl"
	[ "$code" = 200 ] && tail -1 "$TMP/v2.jsonl" | grep -q '"host": "httpbin-shadow"'
}
check "curl with Host httpbin (no port): the copy's Host is httpbin-shadow" curl_copy
counters_v2() {
	local sent ans v2 s
	sleep 0.3
	s=$(scrape)
	sent=$(echo "$s" | awk '$1 == "ringmesh_mirror_requests_total" { print $2 }')
	ans=$(echo "$s" | awk '$1 == "ringmesh_mirror_responses_total" { print $2 }')
	echo "$s" >"$TMP/scrape1"
	v2=$(requests_sum "$TMP/scrape1" 'destination_version="v2"' 'response_code="200"' 'reporter="source"')
	echo "mirror requests $sent responses $ans; istio_requests_total v2 200 $v2"
	grep -E '^ringmesh_mirror_.* [1-9]' "$TMP/scrape1"
	[ "${sent:-0}" = 41 ] && [ "${ans:-0}" = 41 ] && [ "$v2" = 41 ]
}
check "counters: 41 shadows sent and answered; istio_requests_total of v2 counts them" counters_v2
cli_counters() {
	local out; out=$("$BUILD/ringmesh" --pin-dir "$PIN" stats --prometheus) || return 1
	echo "$out" | grep -E '^ringmesh_mirror_(requests|responses)_total '
	[ "$(echo "$out" | grep -cxE 'ringmesh_mirror_(requests|responses)_total 41')" = 2 ]
}
check "ringmesh stats --prometheus: the same mirror counters (read from the pinned map)" cli_counters
cli_stats() {
	local out; out=$("$BUILD/ringmesh" --pin-dir "$PIN" stats) || return 1
	echo "$out" | grep '^Request mirroring' || return 1
	echo "$out" | grep -q '^Request mirroring: 41 sent, 41 answered; skipped: limit 0,' || return 1
	"$BUILD/ringmesh" --pin-dir "$PIN" -j stats | python3 -c 'import json,sys
m = json.load(sys.stdin)["requests"]["mirror"]; print(m)
sys.exit(0 if m["sent"] == 41 and m["answered"] == 41 and m["skipped"]["limit"] == 0 and m["failed"]["timeout"] == 0 else 1)'
}
check "ringmesh stats (text and -j): the mirror line and object" cli_stats

# ---- bodies: a kept one (4000 B with a Content-Length: under 64 KiB less the 60 KiB
# head limit) is copied with the head; a streamed one (200 KiB, Content-Length or
# chunked) follows the primary's body through the shadow's block ----
head -c 4000 /dev/zero | tr '\0' k >"$TMP/kept.bin"
seq -w 1 40000 | head -c 204800 >"$TMP/big.bin" # numbered lines: order shows
post() { # FILE [curl args]: the status curl got for a POST of it (no Expect: 100-continue)
	local f=$1
	shift
	client curl -s -o /dev/null -w '%{http_code}' -H 'Host: httpbin:8000' -H 'Expect:' "$@" \
		--data-binary @"$f" http://10.96.0.30:8000/post
}
# copied FILE [curl args]: a POST of FILE answered 200, and the mirror's newest line
# ($MLOG, v2's by default) is its copy: FILE's bytes in order, Host httpbin-shadow:8000
MLOG=$TMP/v2.jsonl
copied() {
	local f=$1 n before code
	shift
	n=$(stat -c %s "$f")
	before=$(lines "$MLOG")
	code=$(post "$f" "$@")
	[ "$code" = 200 ] || { echo "POST of $n B: status $code"; return 1; }
	wait_lines "$MLOG" $((before + 1)) || { echo "no copy of the $n B POST"; scrape | grep -E "^ringmesh_mirror.* [1-9]"; return 1; }
	tail -1 "$MLOG" | python3 -c 'import json,sys; r=json.load(sys.stdin)
print(" ", r["method"], r["path"], r["host"], len(r["body"]), "B")
sys.exit(0 if r["body"] == open(sys.argv[1], encoding="latin-1").read() and r["host"] == "httpbin-shadow:8000" else 1)' "$f" ||
		{ scrape | grep -E "^ringmesh_mirror.* [1-9]"; return 1; }
}
bodies() {
	local s0 b0 s b
	s0=$(metric 'ringmesh_mirror_requests_total'); b0=$(metric 'ringmesh_mirror_skipped_total{reason="body"}')
	copied "$TMP/kept.bin" || return 1
	copied "$TMP/big.bin" || return 1
	copied "$TMP/big.bin" -H 'Transfer-Encoding: chunked' || return 1
	sleep 0.2
	s=$(metric 'ringmesh_mirror_requests_total'); b=$(metric 'ringmesh_mirror_skipped_total{reason="body"}')
	echo "mirror requests +$((s - s0)), skipped body +$((b - b0))"
	[ $((s - s0)) = 3 ] && [ $((b - b0)) = 0 ]
}
check "bodies copied whole: 4000 B kept, 200 KiB streamed with a Content-Length and chunked" bodies

# ---- a shadow that reads slower than the primary: its lag waits in ringmeshd (block,
# then backlog chunks up to 1 MiB) ----
vs mtrickle trickle 100
apply "$TMP/mtrickle.yaml" >/dev/null && sleep 0.15
seq -w 1 130000 | head -c 786432 >"$TMP/768k.bin"
trickle() {
	local t0 ms k0 k
	k0=$(metric 'ringmesh_mirror_skipped_total{reason="behind"}')
	t0=$(date +%s%N)
	MLOG=$TMP/trickle.jsonl copied "$TMP/768k.bin" || return 1
	ms=$((($(date +%s%N) - t0) / 1000000))
	k=$(metric 'ringmesh_mirror_skipped_total{reason="behind"}')
	echo "768 KiB to a host reading 8 KiB / 2 ms: copied whole and in order (POST to copy: $ms ms); skipped behind +$((k - k0))"
	[ $((k - k0)) = 0 ]
}
check "a slow-reading shadow gets a 768 KiB body whole and in order, not dropped" trickle

# ---- a shadow that cannot keep up: its host never reads the body ----
# 32 MiB: more than the kernel's socket buffers on both sides hold, so the shadow falls
# a whole block behind and is dropped; the primary must not wait for it (the stall
# backend holds the connection 20 s, curl's limit)
vs mstall stall 100
apply "$TMP/mstall.yaml" >/dev/null && sleep 0.15
head -c $((32 << 20)) /dev/zero >"$TMP/huge.bin"
stall() {
	local k0 l0 k t0 ms out
	k0=$(metric 'ringmesh_mirror_skipped_total{reason="behind"}')
	l0=$(lines "$TMP/stall.jsonl")
	t0=$(date +%s%N)
	out=$(client curl -s -m 20 -H 'Host: httpbin:8000' -H 'Expect:' \
		--data-binary @"$TMP/huge.bin" http://10.96.0.30:8000/post) || { echo "curl failed"; return 1; }
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "$out" | grep -q "\"body_bytes\":$((32 << 20))" || { echo "v1 answered: ${out:0:300}"; return 1; }
	sleep 0.2
	k=$(metric 'ringmesh_mirror_skipped_total{reason="behind"}')
	echo "32 MiB POST: v1 got every byte, answered in $ms ms; the stall host got $(($(lines "$TMP/stall.jsonl") - l0)) head(s); skipped behind +$((k - k0))"
	[ $((k - k0)) = 1 ] && [ "$(lines "$TMP/stall.jsonl")" = $((l0 + 1)) ] && [ $ms -lt 5000 ]
}
check "a shadow that never reads: dropped as behind, the 32 MiB primary not held" stall

# ---- mirrorPercentage 50 over 200 requests ----
vs m50 v2 50
apply "$TMP/m50.yaml" >/dev/null && sleep 0.15
half() {
	local before after n; before=$(lines "$TMP/v2.jsonl")
	all_v1 200 0 || return 1
	sleep 1
	after=$(lines "$TMP/v2.jsonl"); n=$((after - before))
	echo "v2 got $n of 200 (binomial 200 x 0.5: mean 100, sd 7)"
	[ $n -ge 65 ] && [ $n -le 135 ]
}
check "mirrorPercentage 50: 200 requests all from v1, v2 got 65..135 copies" half

# ---- a burst on 8 connections (rm-load), every request mirrored: nothing lost ----
mirror_sum() { # sent + every skip + every failure, and answered, from one scrape
	scrape | awk '$1 == "ringmesh_mirror_requests_total" { s += $2 }
		$1 ~ /^ringmesh_mirror_skipped_total/ { k += $2 } $1 ~ /^ringmesh_mirror_failed_total/ { f += $2 }
		$1 == "ringmesh_mirror_responses_total" { a = $2 }
		END { print s + 0, k + 0, f + 0, a + 0 }'
}
apply "$TMP/m100.yaml" >/dev/null && sleep 0.15
burst() {
	local out s0 k0 f0 a0 s k f a i
	read -r s0 k0 f0 a0 < <(mirror_sum)
	out=$(client "$BUILD/rm-load" http --connect 10.96.0.30:8000 --json --requests 2000 --conns 8 \
		--count-header x-backend-version) || { echo "$out"; return 1; }
	echo "$out" | head -c 300; echo
	for ((i = 0; i < 50; i++)); do # until every shadow sent is answered or failed
		read -r s k f a < <(mirror_sum)
		[ $((a - a0 + f - f0)) -ge $((s - s0)) ] && break
		sleep 0.1
	done
	echo "sent +$((s - s0)) skipped +$((k - k0)) failed +$((f - f0)) answered +$((a - a0))"
	echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)
sys.exit(0 if d["errors"] == 0 and d["versions"] == {"v1": 2000} else 1)' &&
		[ $((s - s0 + k - k0)) = 2000 ] && [ $((f - f0)) = 0 ] && [ $((a - a0)) = $((s - s0)) ] &&
		[ $((s - s0)) -ge 100 ]
}
check "burst: 2000 requests on 8 connections all from v1; every one mirrored or skipped, none failed" burst

# ---- a dead mirror: nothing listens ----
vs mdead dead 100
apply "$TMP/mdead.yaml" >/dev/null && sleep 0.15
f0=$(metric 'ringmesh_mirror_failed_total{reason="connect"}')
n0=$(metric 'ringmesh_mirror_skipped_total{reason="no_healthy_upstream"}')
check "dead mirror: 50 requests all answered by v1, none slow" all_v1 50 5
dead_counted() {
	local f n
	sleep 0.3
	f=$(metric 'ringmesh_mirror_failed_total{reason="connect"}')
	n=$(metric 'ringmesh_mirror_skipped_total{reason="no_healthy_upstream"}')
	echo "failed connect +$((f - f0)), skipped no_healthy_upstream +$((n - n0)) (ejected after 5)"
	[ $((f - f0)) -ge 5 ] && [ $((f - f0 + n - n0)) = 50 ]
}
check "dead mirror: connect failures counted until ejected, the rest skipped: 50 in all" dead_counted

# ---- a mirror that answers 500 and resets in turns ----
vs mflaky flaky 100
apply "$TMP/mflaky.yaml" >/dev/null && sleep 0.15
r0=$(metric 'ringmesh_mirror_failed_total{reason="reset"}')
check "500/resetting mirror: 4 requests all answered by v1, none slow" all_v1 4 2
flaky_counted() {
	local r
	sleep 0.3
	r=$(metric 'ringmesh_mirror_failed_total{reason="reset"}')
	scrape >"$TMP/scrape2"
	local e; e=$(requests_sum "$TMP/scrape2" 'destination_version="flaky"' 'response_code="500"' 'reporter="source"')
	echo "failed reset +$((r - r0)); istio_requests_total flaky 500: $e"
	[ $((r - r0)) = 2 ] && [ "$e" = 2 ]
}
check "500/resetting mirror: 2 resets counted as failed, 2 answers of 500 in istio_requests_total" flaky_counted

# ---- the old API: a RouteRule's mirror ----
rr_mirror() {
	local before
	"$BUILD/ringmesh" --pin-dir "$PIN" delete -f "$TMP/mflaky.yaml" >/dev/null || return 1
	cat >"$TMP/rr.yaml" <<Y
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata: {name: httpbin-mirror, namespace: default}
spec:
  destination: {name: httpbin}
  precedence: 1
  route:
  - labels: {version: v1}
    weight: 100
  mirror:
    name: httpbin
    labels: {version: v2}
Y
	apply "$TMP/rr.yaml" >/dev/null || return 1
	sleep 0.15
	before=$(lines "$TMP/v2.jsonl")
	all_v1 10 0 || return 1
	wait_lines "$TMP/v2.jsonl" $((before + 10)) || { echo "v2 got $(($(lines "$TMP/v2.jsonl") - before))"; return 1; }
	[ "$(tail -10 "$TMP/v2.jsonl" | grep -c '"host": "httpbin-shadow:8000"')" = 10 ]
}
check "RouteRule mirror (old API): 10 requests from v1, 10 copies at v2 with Host -shadow" rr_mirror

# ---- a slow mirror: 4 s per answer, route timeout 2 s, at most 4 in flight ----
# (a daemon of its own with --max-mirrors 4: the cap is per worker, and one worker)
check "ringmeshd stops cleanly" stop_ringmeshd
start_ringmeshd "$DAEMON_CG" "$NODE_NS" "${DARGS[@]}" --max-mirrors 4 ||
	{ fail "ringmeshd --max-mirrors 4 starts"; summary mirror; exit 1; }
vs mslow slow 100 "    timeout: 2s"
apply "$TMP/se.yaml" >/dev/null && apply "$TMP/mslow.yaml" >/dev/null && sleep 0.15
s0=$(metric 'ringmesh_mirror_requests_total')
l0=$(metric 'ringmesh_mirror_skipped_total{reason="limit"}')
t0=$(metric 'ringmesh_mirror_failed_total{reason="timeout"}')
check "slow mirror: 20 requests all answered by v1, none slow" all_v1 20 2
slow_counted() {
	local s l t
	s=$(metric 'ringmesh_mirror_requests_total')
	l=$(metric 'ringmesh_mirror_skipped_total{reason="limit"}')
	echo "sent +$((s - s0)), skipped limit +$((l - l0)) (--max-mirrors 4, one worker)"
	[ $((s - s0)) = 4 ] && [ $((l - l0)) = 16 ] || return 1
	sleep 2.5
	t=$(metric 'ringmesh_mirror_failed_total{reason="timeout"}')
	echo "after the route timeout: failed timeout +$((t - t0))"
	[ $((t - t0)) = 4 ]
}
check "slow mirror: 4 in flight (the cap), 16 skipped as limit, the 4 time out at 2 s" slow_counted
check "slow mirror: after the timeouts the cap is free again, requests still from v1" all_v1 3 0
check "the slow backend got the copies that were sent (7)" wait_lines "$TMP/slow.jsonl" 7

check "ringmeshd stops cleanly" stop_ringmeshd
summary mirror
