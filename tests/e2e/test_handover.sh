#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrades that drop nothing (issue 12): under load from keep-alive clients (wrk) and
# fresh-connection clients (python http.client, a new connection per request), a
# second ringmeshd started on the same pin dir takes over from the first (two workers
# each): no request fails, no connection skips the mesh (rm_dpstats' stale and
# orig_full counters stand still; the VIP is routed unreachable in the pod, so a
# bypass would fail anyway), the old daemon exits 0, rules and counters are kept (the
# :15090 counter does not reset). A successor that fails half-way, or is asked for
# another rm_breaker size, leaves the first one serving; a third daemon takes over from the second in turn. Then a SIGTERM with slow requests in flight: they complete, and the
# clean stop leaves nothing attached, pinned or running.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
need_root

NODE_NS=rm-$RUN_ID-node
CLIENT_NS=rm-$RUN_ID-c
mk_node "$NODE_NS" && mk_pod "$NODE_NS" "$CLIENT_NS" vc 10.244.0.10 &&
	mk_pod "$NODE_NS" rm-$RUN_ID-b1 vb1 10.244.0.11 &&
	mk_pod "$NODE_NS" rm-$RUN_ID-b2 vb2 10.244.0.12 ||
	{ fail "node and pods set up"; summary handover; exit 1; }
ok "node netns with a client and two backend pods"

PODS_CG=$(mk_cgroup pods)
CLIENT_CG=$(mk_cgroup pods/client)
DAEMON_CG=$(mk_cgroup ringmeshd)
for v in 1 2; do
	bg b$v in_ns rm-$RUN_ID-b$v "$BUILD/rm-backend" --mode http --name b$v --version v$v \
		--listen 10.244.0.1$v:8080 --ready-file "$TMP/b$v.ready"
done
for v in 1 2; do wait_file "$TMP/b$v.ready" 5 || { fail "backend v$v starts"; summary handover; exit 1; }; done
ok "backends v1 v2 listening"

SVC=trans-service.order-system-production.svc.cluster.local
cat >"$TMP/rules.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: trans-service, namespace: order-system-production}
spec:
  hosts: [$SVC]
  addresses: [10.96.0.20]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.244.0.11, labels: {version: v1}}
  - {address: 10.244.0.12, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: trans-service, namespace: order-system-production}
spec:
  host: $SVC
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: trans, namespace: order-system-production}
spec:
  hosts: [$SVC]
  http:
  - route: [{destination: {host: $SVC, subset: v1}}]
Y

cli() { "$BUILD/ringmesh" --pin-dir "$PIN" "$@"; }
client() { in_cg "$CLIENT_CG" "$CLIENT_NS" -- "$@"; }
scrape() { in_ns "$NODE_NS" curl -s -m 3 "http://$METRICS_ADDR/stats/prometheus"; }
# requests the mesh counted for the service (the destination reporter's series)
counted() { python3 "$here/prom_text.py" counts "$SVC" "$1" | awk '$1 == "destination" { n += $NF } END { print n + 0 }'; }
dpstat() { cli -j stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["datapath"][sys.argv[1]])' "$1"; }
# a ringmeshd on the same pin dir, outside the pods' cgroup, in the node netns
daemon() { # LOG args...
	local log=$1; shift
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$DAEMON_CG" \
		env ASAN_OPTIONS="$RM_ASAN_OPTIONS" UBSAN_OPTIONS="$RM_UBSAN_OPTIONS" \
		nsenter --net=/run/netns/"$NODE_NS" "$RINGMESHD" --pin-dir "$PIN" "$@" \
		>>"$log" 2>&1 8>&- &
}
DARGS=(--cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 --listen 127.0.0.1:15001
	--pod-gateway $POD_GW --workers 2 --drain-timeout 10)

start_ringmeshd "$DAEMON_CG" "$NODE_NS" "${DARGS[@]}" || { fail "ringmeshd starts"; summary handover; exit 1; }
OLD=$RINGMESHD_PID
DARGS+=(--metrics-listen "$METRICS_ADDR")
check "rules applied" cli apply -f "$TMP/rules.yaml"
cli rule list >"$TMP/rules.before"
v1_ok() { client curl -s -m 3 http://10.96.0.20:8080/ | grep -q '"version":"v1"'; }
check "a request through the mesh reaches v1" v1_ok

# --- a successor that fails half-way: its --metrics-listen port is taken, which it
# finds only after it was handed the sockets; the first daemon takes all back.
TAKEN_PORT=$(free_port)
bg hold in_ns "$NODE_NS" python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(60)' "$TAKEN_PORT"
sleep 0.3
daemon "$TMP/failed.log" "${DARGS[@]/$METRICS_ADDR/127.0.0.1:$TAKEN_PORT}"
FAILED=$!
wait "$FAILED"
frc=$?
sed 's/^/    # /' "$TMP/failed.log"
check "a successor that cannot bind its metrics port exits 1 ($frc)" [ "$frc" = 1 ]
check "... after it was handed the sockets" grep -q 'taking over from pid' "$TMP/failed.log"
sleep 0.3
check "the first daemon serves on" sh -c "kill -0 $OLD && grep -q 'went away before taking over: serving on' '$TMP/ringmeshd.log'"
check "requests still reach v1 through it" v1_ok
check "ringmesh status: live" cli status
ready() { [ "$(in_ns "$NODE_NS" curl -s -o /dev/null -w '%{http_code}' -m 2 "http://$METRICS_ADDR/healthz/ready")" = 200 ]; }
check "/healthz/ready: 200 again (503 only while a successor was being served)" ready
kill "$PID_hold" 2>/dev/null

# A successor that should be refused: started, given 10 s to exit (then stopped),
# its exit status in REFUSED_RC and its log shown.
refused_successor() { # LOG args...
	local log=$1 pid; shift
	daemon "$log" "$@"
	pid=$!
	RINGMESHD_PID=$pid # should it take over after all, cleanup stops it
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
	wait "$pid"
	REFUSED_RC=$?
	RINGMESHD_PID=$OLD
	sed 's/^/    # /' "$log"
}

# --- a successor that finds rm_stats of another layout (what a version with another
# metrics layout meets): refused with the reason, and the first daemon serves on. The
# first one keeps its map through its mapping; its pin is restored by id afterwards.
STATS_ID=$(bpftool -j map show pinned "$PIN/rm_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
if [ -n "$STATS_ID" ] && rm -f "$PIN/rm_stats" &&
	bpftool map create "$PIN/rm_stats" type array key 4 value 4688 entries 1024 name rm_stats \
		flags 0x400; then
	refused_successor "$TMP/layout.log" "${DARGS[@]}"
	check "a successor finding rm_stats of another layout exits non-zero ($REFUSED_RC)" \
		[ "$REFUSED_RC" != 0 ]
	check "... saying why: no hand-over between these versions" \
		grep -q "maps have another layout; stop it first (no hand-over between these versions)" "$TMP/layout.log"
else
	fail "an old-layout rm_stats swapped in"
fi
rm -f "$PIN/rm_stats"
bpftool map pin id "$STATS_ID" "$PIN/rm_stats" || fail "rm_stats pinned again (id $STATS_ID)"
sleep 0.3
check "the first daemon serves on (back twice now)" \
	sh -c "kill -0 $OLD && [ \$(grep -c 'went away before taking over: serving on' '$TMP/ringmeshd.log') -ge 2 ]"
check "requests still reach v1 through it" v1_ok
stats_seen() { cli stats | grep -q "$SVC"; }
check "its counters read back (its rm_stats pinned again)" stats_seen

# --- a successor asked for another rm_breaker size (--breaker-pools 512, hosts
# following) than the running daemon's default (256 pools, 4,096 hosts): refused
# before it touches anything, naming both sizes, and the first daemon serves on.
refused_successor "$TMP/size.log" "${DARGS[@]}" --breaker-pools 512
check "a successor asked for --breaker-pools 512 exits non-zero ($REFUSED_RC)" [ "$REFUSED_RC" != 0 ]
check "... saying which sizes differ" grep -qF \
	"rm_breaker: the running ringmeshd's map has 161 pages (256 pools, 4096 hosts), this one asks for 321 (--breaker-pools 512 --breaker-hosts 8192): stop it first (no hand-over across a change of size)" \
	"$TMP/size.log"
sleep 0.3
check "the first daemon serves on (back three times now)" \
	sh -c "kill -0 $OLD && [ \$(grep -c 'went away before taking over: serving on' '$TMP/ringmeshd.log') -ge 3 ]"
check "requests still reach v1 through it" v1_ok
bk_default() { [ "$(cli -j breaker show | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pools_max"], d["hosts_max"])')" = "256 4096" ]; }
check "its rm_breaker is the one it had: 256 pools, 4096 hosts" bk_default

# --- the hand-over under load
cat >"$TMP/fresh.py" <<'PY'
# One new connection per request until the deadline: the clients a hand-over's
# listener switch would hurt first. Prints a JSON summary.
import http.client, json, sys, time
end = time.monotonic() + float(sys.argv[1])
ok = fail = 0
versions, peers, errors = {}, {}, []
while time.monotonic() < end:
    try:
        c = http.client.HTTPConnection("10.96.0.20", 8080, timeout=5)
        c.request("GET", "/fresh")
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        if r.status != 200:
            raise RuntimeError("status %d" % r.status)
        versions[body["version"]] = versions.get(body["version"], 0) + 1
        peer = body["peer"].rsplit(":", 1)[0]
        peers[peer] = peers.get(peer, 0) + 1
        ok += 1
    except Exception as e:
        fail += 1
        if len(errors) < 5:
            errors.append(repr(e))
print(json.dumps({"ok": ok, "fail": fail, "versions": versions, "peers": peers, "errors": errors}))
PY
scrape >"$TMP/m.before"
STALE0=$(dpstat stale) FULL0=$(dpstat orig_full) REDIR0=$(dpstat redirected)
client wrk -t2 -c8 -d6s http://10.96.0.20:8080/ >"$TMP/wrk.out" 2>&1 &
WRK=$!
client python3 "$TMP/fresh.py" 6 >"$TMP/fresh.json" 2>&1 &
FRESH=$!
sleep 2
daemon "$TMP/new.log" "${DARGS[@]}"
NEW=$!
RINGMESHD_PID=$NEW # cleanup stops the new one
for _ in $(seq 100); do kill -0 "$OLD" 2>/dev/null || break; sleep 0.1; done
wait "$OLD"
orc=$?
check "the old daemon exits 0 after the hand-over ($orc)" [ "$orc" = 0 ]
check "... having handed over and drained" grep -q "handed over to pid $NEW, exiting" "$TMP/ringmeshd.log"
check "the new daemon took over (no fresh start)" sh -c "kill -0 $NEW && grep -q 'taking over from pid $OLD' '$TMP/new.log'"
wait "$WRK"
wait "$FRESH"
sed 's/^/    # /' "$TMP/wrk.out"
echo "    # fresh connections: $(cat "$TMP/fresh.json")"
WRK_N=$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")
check "wrk (8 keep-alive connections): ${WRK_N:-no} requests, no socket error, no non-2xx" \
	sh -c "[ '${WRK_N:-0}' -gt 1000 ] && ! grep -qE 'Socket errors|Non-2xx' '$TMP/wrk.out'"
jf() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$TMP/fresh.json" "$1"; }
FRESH_N=$(jf 'd["ok"]')
check "fresh connections: $FRESH_N requests, none failed" [ "$(jf 'd["fail"]')" = 0 -a "${FRESH_N:-0}" -gt 100 ]
check "every fresh request answered by v1 (the rule)" [ "$(jf 'd["versions"].get("v1", 0)')" = "$FRESH_N" ]
check "the backend never saw the client pod's own address (no bypass)" \
	[ "$(jf 'd["peers"].get("10.244.0.10", 0)')" = 0 ]
check "rm_dpstats: no connection failed open (stale $STALE0 -> $(dpstat stale))" [ "$(dpstat stale)" = "$STALE0" ]
check "rm_dpstats: no original destination lost (orig_full $FULL0 -> $(dpstat orig_full))" [ "$(dpstat orig_full)" = "$FULL0" ]
REDIR1=$(dpstat redirected)
check "rm_dpstats: every fresh connection redirected ($((REDIR1 - REDIR0)) >= $FRESH_N)" [ $((REDIR1 - REDIR0)) -ge "${FRESH_N:-1}" ]
check "the old daemon served some of them (accepted > 0 at its exit)" \
	sh -c "grep 'exit: accepted' '$TMP/ringmeshd.log' | grep -qv 'accepted 0,'"
cli rule list >"$TMP/rules.after"
check "rules kept" cmp -s "$TMP/rules.before" "$TMP/rules.after"
scrape >"$TMP/m.after"
B=$(counted "$TMP/m.before") A=$(counted "$TMP/m.after")
check ":15090 (now the new daemon's) counts on from the old one's $B: $A >= $B + $WRK_N + $FRESH_N" \
	[ "$A" -ge $((B + ${WRK_N:-0} + ${FRESH_N:-0})) ]
check "ringmesh status: live" cli status
check "/healthz/ready on the shared metrics port: 200 (the new daemon's)" ready
check "a request after the hand-over reaches v1" v1_ok

# --- a second hand-over: the new daemon answers on the name in turn
daemon "$TMP/third.log" "${DARGS[@]}"
THIRD=$!
for _ in $(seq 100); do kill -0 "$NEW" 2>/dev/null || break; sleep 0.1; done
wait "$NEW"
brc=$?
check "a third daemon takes over from the second, which exits 0 ($brc)" \
	sh -c "[ $brc = 0 ] && grep -q 'taking over from pid $NEW' '$TMP/third.log'"
NEW=$THIRD
RINGMESHD_PID=$NEW
check "requests reach v1 through the third" v1_ok

# --- SIGTERM with slow requests in flight: they complete, then nothing is left
for i in 1 2 3; do
	client curl -s -m 10 -o "$TMP/slow$i.body" -w '%{http_code}' -H 'x-rm-delay: 2s' \
		http://10.96.0.20:8080/slow$i >"$TMP/slow$i.code" 2>&1 &
	eval "SLOW$i=$!"
done
sleep 0.5
kill -TERM "$NEW"
for i in 1 2 3; do eval "wait \$SLOW$i"; done
check "3 requests 2 s slow, in flight at SIGTERM, complete with 200" \
	sh -c "[ \"\$(cat '$TMP'/slow[123].code)\" = '200200200' ] && grep -q '\"version\":\"v1\"' '$TMP/slow1.body'"
wait_gone "$NEW" 15
wait "$NEW"
nrc=$?
RINGMESHD_PID=
sed 's/^/    # /' "$TMP/third.log" | tail -6
check "the last daemon's clean stop exits 0 ($nrc)" [ "$nrc" = 0 ]
check "nothing attached under our cgroups" [ -z "$(attached)" ]
check "nothing pinned (no $PIN)" [ ! -e "$PIN" ]
none_running() { ! pgrep -f -- "ringmeshd --pin-dir $PIN" || { ps -f -p "$(pgrep -d, -f -- "ringmeshd --pin-dir $PIN")"; return 1; }; }
check "no ringmeshd of ours running" none_running
check "the pod gateway interface is gone" sh -c "! ip -n '$NODE_NS' link show ringmesh0 >/dev/null 2>&1"

summary handover
