#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Circuit breaking and outlier ejection, end to end, on the node of netns.sh (a node
# netns running ringmeshd with 2 workers, a client pod, three backend pods behind the
# VIP 10.96.0.20:8080 of trans-service):
#   - the workshop's dest-rule.yaml (DestinationPolicy) applies as is; its pool takes
#     no rm_breaker slot until a request uses it, then its limits show in
#     `ringmesh breaker show -j` (checked in the re-tune scenario)
#   - ejection: subset "pair" = v1 (healthy rm-backend) + v2 (a responder that always
#     answers 500, logging each request's time); 3 consecutive 5xx eject v2 (it saw
#     exactly 3 requests), everything then goes to v1, v2 returns after ~1 s, is
#     ejected again after 3 more and stays out ~2 s (twice as long); breaker show -j
#     shows the ejection
#   - all hosts ejected -> 503 "no healthy upstream"
#   - overflow: subset "slow" (v3, maxConnections 1, pending 1, requests 2) with a
#     300 ms backend and 10 concurrent clients: 503s carrying x-envoy-overloaded: true
#     and Envoy's overflow body, and the backend's own high-water marks: connections
#     <= 1, requests in flight <= 2 (in total over the 2 workers)
#   - maxRequestsPerConnection 2 on subset "perconn" (v1): no upstream connection
#     carries more than 2 requests (backend's reqs_per_conn)
#   - re-tuning (issue 8): the workshop's dest-rule.yaml as is (7 errors, 5m, 2m) on
#     v3, then the same DestinationPolicy re-tuned (3 errors, 2s, 200ms) while the
#     pool's sweep is scheduled 2 min ahead; v3 answering 500 under a steady 100
#     requests/s is ejected at exactly its 3rd error each time, out ~2 s, ~4 s, ~6 s
#     (k x 2 s), after a healthy second ~2 s again (k decays), and breaker show shows
#     it in afterwards, never "due back"
#   - 100 more services (400 pools) configured take no slot; requests to all of them
#     overflow the table: logged and counted in ringmesh_breaker_table_full_total
#   - the same with ringmeshd --breaker-pools 512 (over a leftover rm_breaker of the
#     default size, re-created): more than 256 pools in use, none left unlimited
# Usage: sudo [BUILD=build] [BREAKER_WORKERS=2] tests/e2e/test_breaker.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
. "$here/l4_checks.sh" # nothing_left
. "$here/workshop_checks.sh" # wck, cl_load, cl_curl, kv
need_root

RULES=$here/rules
WORKERS=${BREAKER_WORKERS:-2} # the limits must hold in total over all workers
VIP=10.96.0.20:8080
BSTATS_DIR=$TMP
NODE_NS=rm-$RUN_ID-node
CLIENT_NS=rm-$RUN_ID-c

workshop_node breaker

# v2: every answer is a 500; each request's CLOCK_MONOTONIC time goes to a log, so
# the test counts what the host really received and when.
cat >"$TMP/bad.py" <<'EOF'
import http.server, sys, time
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/__stats"):
            body = b"{}\n"
            self.send_response(200)
        else:
            log.write("%.6f %s\n" % (time.monotonic(), self.path))
            body = b"bad\n"
            self.send_response(500)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-backend-version", "v2")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H)
open(sys.argv[2], "w").write("ready\n")
s.serve_forever()
EOF
: >"$TMP/bad.log"
for i in 1 3; do
	bg back_v$i in_cg "$(mk_cgroup pods/v$i)" "rm-$RUN_ID-v$i" -- "$BUILD/rm-backend" --mode http \
		--name trans-service --version v$i --listen 0.0.0.0:8080 \
		--stats-file "$BSTATS_DIR/v$i.stats" --ready-file "$TMP/v$i.ready"
done
bg back_v2 in_cg "$(mk_cgroup pods/v2)" "rm-$RUN_ID-v2" -- python3 "$TMP/bad.py" "$TMP/bad.log" \
	"$TMP/v2.ready"
for i in 1 2 3; do
	wait_file "$TMP/v$i.ready" 5 ||
		{ fail "backend v$i starts"; sed 's/^/    # /' "$TMP/back_v$i.log"; summary breaker; exit 1; }
done
ok "backends: v1 and v3 rm-backend, v2 always answers 500, all on :8080"

start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
	--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers "$WORKERS" ||
	{ fail "ringmeshd starts"; summary breaker; exit 1; }
ok "ringmeshd starts with $WORKERS workers"

rm_cli() { "$BUILD/ringmesh" --pin-dir "$PIN" "$@"; }
rm_apply() { rm_cli apply -f "$1"; }
rm_delete() { rm_cli delete -f "$1"; }
bk_json() { rm_cli -j breaker show; }
# jq-free JSON reads
pyj() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
bstat() { # VERSION FIELD: a counter of an rm-backend's stats file
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$BSTATS_DIR/$1.stats" "$2"
}
breset() { # VERSION: zero an rm-backend's counters (asked from the node, not counted)
	ip netns exec "$NODE_NS" curl -sf -o /dev/null "http://10.244.0.1${1#v}:8080/__stats?reset=1" &&
		sleep 0.2
}
bad_count() { wc -l <"$TMP/bad.log"; }

check "breaker-serviceentry.yaml applied" rm_apply "$RULES/breaker-serviceentry.yaml"

# --- the workshop's DestinationPolicy, as is ---
dp_limits() {
	local j
	j=$(bk_json) || return 1
	echo "$j" | pyj '
ps = [p for p in d["pools"] if p["service"].startswith("trans-service.") and p["subset"]]
print(ps)
p = [p for p in ps if p["connections"]["max"] == 100]
assert len(p) == 1, "no pool with maxConnections 100"
p = p[0]
assert p["pending"]["max"] == 10 and p["active"]["max"] == 1000, p
assert p["max_requests_per_connection"] == 10, p
o = p["outlier"]
assert o["enabled"] and o["consecutive_errors"] == 7, o
assert o["base_ejection_ms"] == 300000 and o["interval_ms"] == 120000, o
print("pool %s: connections max 100, pending 10, active 1000, 10/conn, 7 errors, 5m, 2m"
      % p["subset"])'
}
check "dest-rule.yaml (workshop DestinationPolicy) applies as is" rm_apply "$RULES/dest-rule.yaml"
# a pool takes its rm_breaker slot at its first request: configured, v3's is not shown
# (its limits are checked once requests used it, in the re-tune scenario below)
sleep 0.2
no_v3_pool() {
	bk_json | pyj '
ps = [p for p in d["pools"] if p["service"].startswith("trans-service.") and p["subset"]]
assert not ps, "pools no request used hold slots: %s" % ps
print("no subset pool of trans-service in rm_breaker before a request used one")'
}
wck "breaker show -j: a configured pool no request used takes no slot" no_v3_pool
check "dest-rule.yaml deleted again" rm_delete "$RULES/dest-rule.yaml"

check "breaker-destinationrule.yaml (pair / slow / perconn) applied" \
	rm_apply "$RULES/breaker-destinationrule.yaml"
check "breaker-virtualservice.yaml applied" rm_apply "$RULES/breaker-virtualservice.yaml"
sleep 0.2

# --- ejection ---
# One client, one request at a time for 4 s: round robin alternates v1 and v2 while
# v2 is in. The bad host's log shows bursts of requests; the gaps between bursts are
# its ejections.
eject_run() {
	local out b0 bj
	b0=$(bad_count)
	cl_load http --connect "$VIP" --conns 1 --duration 4s --allow-errors --timeout 3s \
		--count-header x-backend-version >"$TMP/eject.load" 2>&1 &
	local lp=$!
	sleep 0.5
	bk_json >"$TMP/eject.show" 2>&1
	wait $lp
	out=$(cat "$TMP/eject.load")
	echo "$out"
	echo "breaker show -j at 0.5 s:"; cat "$TMP/eject.show"
	tail -n +$((b0 + 1)) "$TMP/bad.log" >"$TMP/eject.bad"
	python3 - "$TMP/eject.bad" "$TMP/eject.show" >"$TMP/eject.py" <<'EOF'
import json, sys
t = [float(l.split()[0]) for l in open(sys.argv[1])]
bursts = []
for x in t:
    if bursts and x - bursts[-1][-1] < 0.5:
        bursts[-1].append(x)
    else:
        bursts.append([x])
sizes = [len(b) for b in bursts]
gaps = [bursts[i + 1][0] - bursts[i][-1] for i in range(len(bursts) - 1)]
print("bad host requests per burst:", sizes, "gaps (s):", ["%.3f" % g for g in gaps])
ok = True
if len(bursts) < 3 or any(s != 3 for s in sizes[:3]) or any(s > 3 for s in sizes):
    print("want bursts of exactly 3 requests (3 consecutive errors eject)"); ok = False
if len(gaps) < 2 or not (0.95 <= gaps[0] <= 1.35):
    print("first ejection should last ~1 s (sleep window)"); ok = False
elif not (1.95 <= gaps[1] <= 2.4):
    print("second ejection should last ~2 s (twice the first)"); ok = False
d = json.load(open(sys.argv[2]))
h = [h for h in d["hosts"] if h["host"].startswith("10.244.0.12:") and h["subset"] == "pair"]
if not h or not h[0]["ejected"] or h[0]["remaining_ms"] is None or h[0]["total_ejections"] < 1:
    print("breaker show -j at 0.5 s: 10.244.0.12 not shown ejected:", h); ok = False
else:
    print("breaker show at 0.5 s: 10.244.0.12 ejected, %d ms left" % h[0]["remaining_ms"])
if not ok:
    sys.exit(1)
print("3 requests per ejection; out %.2f s, then %.2f s (x%.2f); v2 shown ejected"
      % (gaps[0], gaps[1], gaps[1] / gaps[0]))
EOF
	local prc=$?
	cat "$TMP/eject.py"
	[ $prc -eq 0 ] || return 1
	# everything else went to v1, with 200
	local req s200 s500 v1
	req=$(echo "$out" | kv requests) s200=$(echo "$out" | kv status.200)
	s500=$(echo "$out" | kv status.500) v1=$(echo "$out" | kv version.v1)
	[ "$s500" = "$(wc -l <"$TMP/eject.bad")" ] && [ "$s200" = "$v1" ] &&
		[ $((s200 + s500)) = "$req" ] ||
		{ echo "requests=$req 200=$s200 (v1 $v1) 500=$s500"; return 1; }
	echo "$(tail -1 "$TMP/eject.py"); client: $req requests, $s200 x 200 from v1," \
		"$s500 x 500 from v2 (= its own log)"
}
breset v1
wck "ejection: v2 out after exactly 3 errors, back after ~1 s, then out ~2 s" eject_run

all_ejected() {
	local out code body
	# v1 answers 500 too when asked to: both hosts fail, both are ejected (max 100%)
	cl_load http --connect "$VIP" --conns 1 --requests 12 --allow-errors --timeout 3s \
		--header 'x-rm-status: 500' >"$TMP/all.load" 2>&1
	cat "$TMP/all.load"
	out=$(cl_curl -s -m 3 -w '\n%{http_code}' "http://$VIP/")
	code=$(echo "$out" | tail -1) body=$(echo "$out" | head -n -1)
	echo "curl: $code '$body'"
	[ "$code" = 503 ] && [ "$body" = "no healthy upstream" ] || return 1
	bk_json | pyj '
h = [h for h in d["hosts"] if h["subset"] == "pair"]
print([(x["host"], x["ejected"]) for x in h])
assert len(h) == 2 and all(x["ejected"] for x in h)'
	echo "both hosts of pair ejected: 503 no healthy upstream"
}
wck "all hosts ejected -> 503 no healthy upstream" all_ejected

# --- overflow ---
overflow_run() {
	local out n503 nuo cm im s200 req code i got=0 mx
	breset v3 || return 1
	cl_load http --connect "$VIP" --conns 10 --duration 2s --allow-errors --timeout 5s \
		--header 'x-pool: slow' --header 'x-rm-delay: 300ms' \
		--count-header x-envoy-overloaded >"$TMP/ovf.load" 2>&1 &
	local lp=$!
	sleep 1
	for i in 1 2 3 4 5; do
		cl_curl -s -m 3 -D "$TMP/ovf.h" -o "$TMP/ovf.b" -H 'x-pool: slow' \
			-H 'x-rm-delay: 300ms' "http://$VIP/" >/dev/null
		code=$(head -1 "$TMP/ovf.h" | awk '{print $2}')
		if [ "$code" = 503 ] && grep -qi '^x-envoy-overloaded: true' "$TMP/ovf.h" &&
			[ "$(cat "$TMP/ovf.b")" = "upstream connect error or disconnect/reset before headers. reset reason: overflow" ]; then
			got=1
			break
		fi
	done
	bk_json >"$TMP/ovf.show"
	wait $lp
	out=$(cat "$TMP/ovf.load")
	echo "$out"
	echo "curl under load:"; cat "$TMP/ovf.h" "$TMP/ovf.b"
	[ $got = 1 ] || { echo "no 503 overflow answer with the header and body seen by curl"; return 1; }
	sleep 0.3
	n503=$(echo "$out" | kv status.503) s200=$(echo "$out" | kv status.200)
	nuo=$(echo "$out" | kv version.true) req=$(echo "$out" | kv requests)
	cm=$(bstat v3 conns_max) im=$(bstat v3 inflight_max)
	echo "requests=$req 200=${s200:-0} 503=${n503:-0} overloaded=${nuo:-0}" \
		"backend conns_max=$cm inflight_max=$im"
	[ "${n503:-0}" -gt 0 ] && [ "${nuo:-0}" = "${n503:-0}" ] && [ "${s200:-0}" -gt 0 ] ||
		{ echo "want some 503, all with x-envoy-overloaded: true, and some 200"; return 1; }
	[ "$cm" -le 1 ] && [ "$im" -le 2 ] ||
		{ echo "limits broken at the backend"; return 1; }
	# one request in service and one pending at most: a pending one waits for one
	# 300 ms response, whichever worker it is in (slots are handed over), then takes
	# 300 ms itself: ~605 ms is the slowest seen (12 rounds in a row)
	mx=$(echo "$out" | kv max_us)
	python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 1.0e6 else 1)' "$mx" ||
		{ echo "a request waited ${mx} us: pending requests starve"; return 1; }
	pyj '
p = [p for p in d["pools"] if p["subset"] == "slow"][0]
print("pool slow:", p["connections"], p["pending"], p["active"], p["overflows"])
assert p["connections"]["max"] == 1 and p["pending"]["max"] == 1 and p["active"]["max"] == 2
assert p["overflows"]["pending"] + p["overflows"]["requests"] > 0' <"$TMP/ovf.show" || return 1
	echo "$req requests: ${s200} x 200, ${n503} x 503 UO (all overloaded), slowest" \
		"$((${mx%.*} / 1000)) ms; backend conns_max $cm <= 1, inflight_max $im <= 2"
}
wck "overflow ($WORKERS workers): 503 UO with header and body, backend high-water marks within limits" \
	overflow_run

# --- requests per connection ---
perconn_run() {
	local out rp s200 ct
	breset v1 || return 1
	out=$(cl_load http --connect "$VIP" --conns 2 --requests 50 --timeout 3s \
		--header 'x-pool: perconn' 2>&1) || { echo "$out"; return 1; }
	echo "$out"
	sleep 0.3
	s200=$(echo "$out" | kv status.200)
	rp=$(bstat v1 reqs_per_conn_max) ct=$(bstat v1 conns_total)
	python3 -c 'import json,sys; print("reqs_per_conn:", json.load(open(sys.argv[1]))["reqs_per_conn"])' \
		"$BSTATS_DIR/v1.stats"
	[ "$s200" = 50 ] && [ "$rp" -le 2 ] && [ "$ct" -ge 25 ] ||
		{ echo "200=$s200 reqs_per_conn_max=$rp conns_total=$ct"; return 1; }
	echo "50 x 200 over $ct upstream connections, at most $rp requests on one"
}
wck "maxRequestsPerConnection 2: no upstream connection carries more than 2" perconn_run

# --- re-tuning the workshop's policy (issue 8) ---
# The client: one keep-alive connection, a request every 10 ms (x-rm-status: 500 makes
# rm-backend answer 500). Phase A: failing requests until the host has come back 3
# times; B: 1.2 s of healthy requests (k decays to 0); C: failing requests until it
# has come back once more. Logs "phase sent_s recv_s status version body" per request.
cat >"$TMP/steady.py" <<'EOF'
import http.client, sys, time
host, port = sys.argv[1].split(":")
log = open(sys.argv[2], "w", buffering=1)
deadline = time.monotonic() + float(sys.argv[3])
conn = None
def req(fail):
    global conn
    for _ in range(3):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=3)
            conn.request("GET", "/", headers={"x-rm-status": "500"} if fail else {})
            r = conn.getresponse()
            body = r.read().decode(errors="replace").strip().replace(" ", "_")
            ver = r.getheader("x-backend-version") or "-"
            if r.will_close:
                conn.close(); conn = None
            return r.status, ver, body or "-"
        except (OSError, http.client.HTTPException):
            if conn:
                conn.close()
            conn = None
    return 0, "-", "transport_error"
phase, backs, out, nxt, b_end = "A", 0, False, time.monotonic(), 0
while time.monotonic() < deadline:
    now = time.monotonic()
    if now < nxt:
        time.sleep(nxt - now)
    nxt = max(nxt + 0.01, time.monotonic())
    if phase == "B" and time.monotonic() >= b_end:
        phase = "C"
    t0 = time.monotonic()
    st, ver, body = req(phase != "B")
    t1 = time.monotonic()
    log.write("%s %.6f %.6f %d %s %s\n" % (phase, t0, t1, st, ver, body))
    uh = st == 503 and body == "no_healthy_upstream"
    if out and not uh:
        backs += 1
        if phase == "A" and backs == 3:
            phase, b_end = "B", time.monotonic() + 1.2
        elif phase == "C":
            break
    out = uh
EOF

retune_run() {
	local r0 r1 pidl
	rm_delete "$RULES/breaker-virtualservice.yaml" >/dev/null &&
		rm_delete "$RULES/breaker-destinationrule.yaml" >/dev/null || return 1
	rm_apply "$RULES/breaker-routerule-v3.yaml" && rm_apply "$RULES/dest-rule.yaml" || return 1
	sleep 0.2
	# healthy traffic through the workshop policy: its first request claims the pool
	# with the policy's limits, so the pool's sweep is now 2 min ahead
	cl_load http --connect "$VIP" --conns 1 --requests 20 --timeout 3s \
		--count-header x-backend-version >"$TMP/retune0.load" 2>&1
	grep -q 'version.v3=20' "$TMP/retune0.load" || { cat "$TMP/retune0.load"; return 1; }
	dp_limits | tail -1 || return 1
	rm_apply "$RULES/dest-rule-tuned.yaml" || return 1
	sleep 0.2
	bk_json | pyj '
p = [p for p in d["pools"] if p["service"].startswith("trans-service.") and "version=v3" in p["subset"]]
assert len(p) == 1, p
o = p[0]["outlier"]
assert o["consecutive_errors"] == 3 and o["base_ejection_ms"] == 2000 and o["interval_ms"] == 200, o
print("re-tuned: 3 errors, 2 s, 200 ms on", p[0]["subset"])' || return 1
	sleep 0.2 # rm-backend rewrites its stats file within 100 ms
	r0=$(bstat v3 requests_total) || return 1
	# breaker show, as an operator would watch it, every 0.3 s while the load runs
	(while :; do
		echo "@ $(date +%s.%N)"
		rm_cli breaker show trans-service 2>&1 | grep '10\.244\.0\.13' | grep 'version=v3'
		sleep 0.3
	done) >"$TMP/retune.show" 2>&1 8>&- &
	pidl=$!
	in_cg "$CLIENT_CG" "$CLIENT_NS" -- python3 "$TMP/steady.py" "$VIP" "$TMP/retune.log" 30
	kill "$pidl" 2>/dev/null
	wait "$pidl" 2>/dev/null
	sleep 0.6 # past the last return by 2 intervals: k has decayed, nothing is "due"
	rm_cli breaker show trans-service | grep '10\.244\.0\.13' | grep 'version=v3' >"$TMP/retune.final"
	bk_json >"$TMP/retune.json" || return 1
	sleep 0.3
	r1=$(bstat v3 requests_total) || return 1
	echo "breaker show samples ($(grep -c '^@' "$TMP/retune.show")), the first of them:"
	grep -v '^@' "$TMP/retune.show" | head -8
	echo "breaker show after the run:"; cat "$TMP/retune.final"
	python3 - "$TMP/retune.log" "$TMP/retune.json" "$TMP/retune.final" "$TMP/retune.show" \
		$((r1 - r0)) <<'EOF'
import json, sys
rows = [l.split() for l in open(sys.argv[1])]
ev = [(p, float(a), float(b), int(s), v, body) for p, a, b, s, v, body in rows]
ok = True
def bad(msg):
    global ok
    print(msg); ok = False
hit = lambda e: e[3] == 500 and e[4] == "v3"
uh = lambda e: e[3] == 503 and e[5] == "no_healthy_upstream"
other = [e for e in ev if not (hit(e) or uh(e) or (e[0] == "B" and e[3] == 200 and e[4] == "v3"))]
if other:
    bad("unexpected answers: %s" % other[:5])
# runs of answers from the host and the gaps between them: from the answer that
# ejected it (received) to the first request it answered again (sent)
def runs(es):
    out, cur, last = [], [], None
    for e in es:
        if hit(e):
            if not cur and last is not None:
                out.append(("gap", e[1] - last))
            cur.append(e)
        elif uh(e) and cur:
            out.append(("burst", len(cur))); last = cur[-1][2]; cur = []
    if cur:
        out.append(("burst", len(cur)))
    return out
A = runs([e for e in ev if e[0] == "A"])
C = runs([e for e in ev if e[0] == "C"])
print("phase A:", A); print("phase C:", C)
sizes = [n for k, n in A if k == "burst"]
gaps = [g for k, g in A if k == "gap"]
if sizes[:3] != [3, 3, 3] or len(sizes) < 4:
    bad("phase A: want runs of exactly 3 errors, 3 ejections and a 4th return: %s" % sizes)
for i, w in enumerate([2.0, 4.0, 6.0]):
    g = gaps[i] if i < len(gaps) else None
    if g is None or not (w - 0.1 <= g <= w + 0.5):
        bad("ejection %d: want %.1f s (-0.1/+0.5), got %s" % (i + 1, w, g))
B = [e for e in ev if e[0] == "B"]
if len(B) < 50 or any(e[3] != 200 for e in B):
    bad("phase B: want >= 50 healthy answers, got %d %s" % (len(B), set((e[3], e[5]) for e in B)))
cs = [n for k, n in C if k == "burst"]
cg = [g for k, g in C if k == "gap"]
if not cs or cs[0] != 3 or len(cg) != 1 or not (1.9 <= cg[0] <= 2.5):
    bad("phase C (k decayed to 0 while healthy): want 3 errors, then out ~2 s: %s" % C)
n = sum(1 for e in ev if hit(e) or e[3] == 200)
if n != int(sys.argv[5]):
    bad("client saw %d answers from v3, v3 counted %s requests" % (n, sys.argv[5]))
d = json.load(open(sys.argv[2]))
h = [h for h in d["hosts"] if h["host"].startswith("10.244.0.13:") and "version=v3" in h["subset"]]
if len(h) != 1 or h[0]["ejected"] or h[0]["phase"] != "in" or h[0]["total_ejections"] != 4:
    bad("breaker show -j after the run: want 10.244.0.13 in, 4 ejections: %s" % h)
final = open(sys.argv[3]).read().split()
if len(final) < 6 or final[5] != "no":
    bad("breaker show after the run: want EJECTED no: %s" % final)
shows = open(sys.argv[4]).read()
if "left)" not in shows:
    bad("breaker show never showed the ejection with its time left")
if "overdue" in shows or "due back" in shows:
    bad("breaker show had the host overdue / due back")
if not ok:
    sys.exit(1)
print("out %.2f s, %.2f s, %.2f s (k x 2 s), each at the 3rd error; after 1.2 s healthy "
      "%.2f s again; %d answers = v3's count; shown in afterwards"
      % (gaps[0], gaps[1], gaps[2], cg[0], n))
EOF
}
wck "re-tuned workshop policy: eject at the 3rd error, back, out 2 s/4 s/6 s" retune_run

# rm_breaker holds the pools in use on the node, not the pools configured, 256 by
# default (--breaker-pools): 100 more services (400 balancer pools) take no slot until
# used. Requests to all of them (/ -> v1, x-canary -> v3, /api -> v1 or v2: ~280 pools
# in use with the node's own) overflow it; the pools left out run without limits, as
# the daemon says in its log and in ringmesh_breaker_table_full_total.
npools() { bk_json | pyj 'print(len(d["pools"]))'; }
full_pools() { rm_cli stats --prometheus | sed -n 's/^ringmesh_breaker_table_full_total{table="pools"} //p'; }
# one curl per service of many.yaml (7 requests), 100 at once; their endpoints do not exist
hit_many() {
	in_cg "$CLIENT_CG" "$CLIENT_NS" -- sh -c 'while read -r v; do
		u=http://$v:8080
		curl -s -m 1 -o /dev/null $u/ --next -s -m 1 -o /dev/null -H "x-canary: yes" $u/ \
			--next -s -m 1 -o /dev/null $u/api --next -s -m 1 -o /dev/null $u/api \
			--next -s -m 1 -o /dev/null $u/api --next -s -m 1 -o /dev/null $u/api \
			--next -s -m 1 -o /dev/null $u/api &
	done <"$1"; wait' sh "$TMP/many.vips"
}
table_full() {
	local n=0 full before after
	before=$(npools) || return 1
	python3 "$here/../../tools/bench/cfggen.py" 100 --out "$TMP/many.yaml" &&
		rm_apply "$TMP/many.yaml" >/dev/null || return 1
	sleep 0.3
	after=$(npools) || return 1
	echo "pools in rm_breaker: $before before, $after after 100 services (400 pools) configured"
	[ "$after" -eq "$before" ] || return 1
	if grep -q "breaker table full" "$TMP/ringmeshd.log"; then
		echo "logged full before any request to them"; return 1
	fi
	full=$(full_pools)
	[ "${full:-1}" -eq 0 ] || { echo "table_full_total $full before any request to them"; return 1; }
	rm_cli stats --prometheus | grep -x 'ringmesh_breaker_pools_max 256' || return 1
	rm_cli stats --prometheus | grep -x 'ringmesh_breaker_hosts_max 4096' || return 1
	sed -n 's/^  addresses: \[\(.*\)\]$/\1/p' "$TMP/many.yaml" >"$TMP/many.vips"
	[ "$(wc -l <"$TMP/many.vips")" -eq 100 ] || { echo "VIPs: $(wc -l <"$TMP/many.vips")"; return 1; }
	hit_many
	while [ $n -lt 50 ] && ! grep -q "breaker table full" "$TMP/ringmeshd.log"; do
		sleep 0.1; n=$((n + 1))
	done
	after=$(npools) || return 1
	echo "pools in rm_breaker after the requests: $after"
	grep "breaker table full" "$TMP/ringmeshd.log" | tail -1
	grep -Eq "breaker table full \([0-9]+ pools, [0-9]+ hosts\): [1-9][0-9]* balancer pools and [0-9]+ hosts in use" \
		"$TMP/ringmeshd.log" || return 1
	full=$(full_pools)
	echo "ringmesh_breaker_table_full_total{table=\"pools\"} $full"
	[ "${full:-0}" -gt 0 ] && [ "$after" -gt "$before" ] || return 1
	echo "$before pools in use, still $before after 100 services configured, $after after" \
		"requests to all; table_full_total{pools} $full"
}
wck "100 more services take no slot until used; pools in use past the table: logged and counted" table_full

# --breaker-pools 512 (hosts follow: 8,192): the same pools in use all get a slot. The
# daemon stops (its clean stop removes the pin dir, rules included) and a default-size
# rm_breaker is left pinned, as a daemon killed before would leave it: the fresh start
# re-creates it at its own size (321 pages), and the 100 services are applied again.
table_sized() {
	local n=0 pages after full logged m
	stop_ringmeshd || { echo "clean stop"; return 1; }
	mkdir -p "$PIN" && bpftool map create "$PIN/rm_breaker" type array key 4 value 4096 \
		entries 161 name rm_breaker flags 0x400 || return 1
	logged=$(grep -c "breaker table full" "$TMP/ringmeshd.log")
	start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
		--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers "$WORKERS" \
		--breaker-pools 512 || { echo "ringmeshd --breaker-pools 512 starts"; return 1; }
	pages=$(bpftool -j map show pinned "$PIN/rm_breaker" | pyj 'print(d["max_entries"])')
	echo "rm_breaker: $pages pages"
	[ "$pages" = 321 ] || return 1
	rm_apply "$TMP/many.yaml" >/dev/null || return 1
	m=$(rm_cli stats --prometheus)
	grep -x 'ringmesh_breaker_pools_max 512' <<<"$m" && grep -x 'ringmesh_breaker_hosts_max 8192' <<<"$m" ||
		return 1
	hit_many
	# the requests' pools are claimed by now; wait for the curls' 1 s timeouts to pass
	while [ $n -lt 20 ] && [ "$(npools)" -lt 257 ]; do sleep 0.1; n=$((n + 1)); done
	after=$(npools) || return 1
	full=$(full_pools)
	m=$(rm_cli stats --prometheus)
	grep '^ringmesh_breaker_slots' <<<"$m"
	echo "pools in rm_breaker after the requests: $after; table_full_total{pools} $full"
	[ "$after" -gt 256 ] && [ "$after" -le 512 ] && [ "${full:-1}" -eq 0 ] || return 1
	grep -x "ringmesh_breaker_slots{table=\"pools\"} $after" <<<"$m" || return 1
	rm_cli breaker show | grep -x "  slots in use: $after of 512 pools, [0-9]* of 8192 hosts (ringmeshd --breaker-pools, --breaker-hosts)" ||
		{ rm_cli breaker show | head -3; return 1; }
	[ "$(grep -c "breaker table full" "$TMP/ringmeshd.log")" -eq "$logged" ] ||
		{ echo "logged full again:"; grep "breaker table full" "$TMP/ringmeshd.log" | tail -1; return 1; }
	echo "rm_breaker re-created at $pages pages; $after pools in use of 512, table_full_total{pools} 0"
}
wck "--breaker-pools 512: a leftover map of the default size re-created; >256 pools in use, none unlimited" table_sized

check "ringmeshd: clean stop exits 0" stop_ringmeshd
check "after stop: nothing attached, pinned or running" nothing_left
summary breaker
