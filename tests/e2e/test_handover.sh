#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrades that drop nothing (issue 12): under load from keep-alive clients (wrk) and
# fresh-connection clients (python http.client, a new connection per request), a
# second ringmeshd started on the same pin dir takes over from the first (two workers
# each): no request fails, no connection skips the mesh (rm_dpstats' stale and
# orig_full counters stand still; the VIP is routed unreachable in the pod, so a
# bypass would fail anyway), the old daemon exits 0, rules and counters are kept (the
# :15090 counter does not reset). The first daemon runs the sk_msg shortcut
# (--sockmap, named though it is the default), its successor plain TCP
# (--no-sockmap), the third the shortcut again:
# rm_dpstats' msg_redirect says which one new connections take. A successor asked for another rm_breaker size
# (--breaker-pools 512) takes over all the same, with a fresh table of its size pinned
# in place of the old one (breaker state is runtime state), and a third one asked for
# another --stats-keys takes over from it the same way (its counters restart), both
# under load with nothing failing. A successor that fails half-way, or finds a
# configuration map (rm_cfg_ctl) of another layout, leaves the first one serving with
# its own maps pinned again. Then a SIGTERM with slow requests in flight: they
# complete, and the clean stop leaves nothing attached, pinned or running. Last, the
# release before the paged rm_breaker (built from git) hands over to this one.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
need_root

backend_node handover 2
ok "node netns with a client and two backend pods"
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
# a ringmeshd (RMD_BIN, default ours) on the same pin dir, outside the pods' cgroup,
# in the node netns
daemon() { # LOG args...
	local log=$1; shift
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$DAEMON_CG" \
		env ASAN_OPTIONS="$RM_ASAN_OPTIONS" UBSAN_OPTIONS="$RM_UBSAN_OPTIONS" \
		nsenter --net=/run/netns/"$NODE_NS" "${RMD_BIN:-$RINGMESHD}" --pin-dir "$PIN" "$@" \
		>>"$log" 2>&1 8>&- &
}
# --accept-balance exact: the hand-overs under load also pass connections between a
# daemon's two workers (its drain waits for those in flight)
DARGS=(--cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 --listen 127.0.0.1:15001
	--pod-gateway $POD_GW --workers 2 --drain-timeout 10 --accept-balance exact)

# modes named, not defaulted: --sockmap, then --no-sockmap, then --sockmap (see the top)
start_ringmeshd "$DAEMON_CG" "$NODE_NS" "${DARGS[@]}" --sockmap || { fail "ringmeshd starts"; summary handover; exit 1; }
OLD=$RINGMESHD_PID
DARGS+=(--metrics-listen "$METRICS_ADDR")
check "rules applied" cli apply -f "$TMP/rules.yaml"
cli rule list >"$TMP/rules.before"
v1_ok() { client curl -s -m 3 http://10.96.0.20:8080/ | grep -q '"version":"v1"'; }
check "a request through the mesh reaches v1" v1_ok
# shortcut on|off: a new connection's request through the mesh took the sk_msg
# shortcut (rm_dpstats msg_redirect moves) or plain TCP (it stands still)
shortcut() {
	local m0 m1
	m0=$(dpstat msg_redirect)
	v1_ok || return 1
	m1=$(dpstat msg_redirect)
	echo "    # msg_redirect $m0 -> $m1"
	if [ "$1" = on ]; then [ "$m1" -gt "$m0" ]; else [ "$m1" = "$m0" ]; fi
}
check "the first daemon (--sockmap): a request takes the sk_msg shortcut" shortcut on

map_id() { bpftool -j map show pinned "$PIN/$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
bk_size() { cli -j breaker show | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pools_max"], d["hosts_max"])'; }
stats_slots() { cli -j stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"]["slots_max"] + 1)'; }

# --- a successor that fails half-way: its --metrics-listen port is taken, which it
# finds only after it was handed the sockets; the first daemon takes all back. An
# rm_breaker of another size is pinned over the first daemon's beforehand (what a
# successor killed between its fresh table and TAKEN leaves): the first daemon pins
# its own again when it takes everything back.
BK_ID0=$(map_id rm_breaker)
rm -f "$PIN/rm_breaker"
bpftool map create "$PIN/rm_breaker" type array key 4 value 4096 entries 321 name rm_breaker \
	flags 0x400 || fail "a fresh rm_breaker swapped in"
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
check "its own rm_breaker pinned again (id $BK_ID0 -> $(map_id rm_breaker)), saying so" sh -c \
	"[ '$(map_id rm_breaker)' = '$BK_ID0' ] && grep -qF \"rm_breaker: the successor's fresh map dropped, ours pinned again\" '$TMP/ringmeshd.log'"
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


# --- a successor that finds rm_cfg_ctl (a configuration map, kept across a hand-over)
# of another layout, as a version with another configuration layout would: refused
# with the reason, after it had pinned a fresh rm_breaker for its --breaker-pools 1024;
# that one goes, the first daemon's is pinned again, and it serves on. The first one
# keeps its rm_cfg_ctl through its mapping; its pin is restored by id afterwards.
CTL_ID=$(map_id rm_cfg_ctl)
if [ -n "$CTL_ID" ] && [ -n "$BK_ID0" ] && rm -f "$PIN/rm_cfg_ctl" &&
	bpftool map create "$PIN/rm_cfg_ctl" type array key 4 value 24 entries 1 name rm_cfg_ctl \
		flags 0x400; then
	refused_successor "$TMP/layout.log" "${DARGS[@]}" --breaker-pools 1024
	check "a successor finding rm_cfg_ctl of another layout exits non-zero ($REFUSED_RC)" \
		[ "$REFUSED_RC" != 0 ]
	check "... saying why: no hand-over between these versions" \
		grep -q "maps have another layout; stop it first (no hand-over between these versions)" "$TMP/layout.log"
	check "... after starting a fresh rm_breaker of 1024 pools" \
		grep -qF "rm_breaker: predecessor's table is 256 pools, 4096 hosts, this daemon asks for 1024 pools" "$TMP/layout.log"
	check "... which it took back: the first daemon's rm_breaker pinned again" \
		grep -qF "rm_breaker: the hand-over did not complete: the predecessor's map pinned again" "$TMP/layout.log"
else
	fail "an old-layout rm_cfg_ctl swapped in"
fi
rm -f "$PIN/rm_cfg_ctl"
bpftool map pin id "$CTL_ID" "$PIN/rm_cfg_ctl" || fail "rm_cfg_ctl pinned again (id $CTL_ID)"
sleep 0.3
check "the first daemon serves on (back twice now)" \
	sh -c "kill -0 $OLD && [ \$(grep -c 'went away before taking over: serving on' '$TMP/ringmeshd.log') -ge 2 ]"
check "requests still reach v1 through it" v1_ok
stats_seen() { cli stats | grep -q "$SVC"; }
check "its counters read back" stats_seen
check "its rm_breaker is pinned (id $BK_ID0 -> $(map_id rm_breaker)): 256 pools, 4096 hosts ($(bk_size))" \
	[ "$(map_id rm_breaker)" = "$BK_ID0" -a "$(bk_size)" = "256 4096" ]
check "its rules read back" sh -c "'$BUILD/ringmesh' --pin-dir '$PIN' rule list | cmp -s - '$TMP/rules.before'"

# --- the hand-over under load
cat >"$TMP/fresh.py" <<'PY'
# One new connection per request until the deadline: the clients a hand-over's
# listener switch would hurt first. Prints a JSON summary.
import http.client, json, sys, time
end = time.monotonic() + float(sys.argv[1])
ok = fail = 0
slowest = 0.0
versions, peers, errors = {}, {}, []
while time.monotonic() < end:
    t0 = time.monotonic()
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
    slowest = max(slowest, time.monotonic() - t0)
print(json.dumps({"ok": ok, "fail": fail, "slowest_ms": round(slowest * 1000), "versions": versions,
                  "peers": peers, "errors": errors}))
PY
# Load from both kinds of clients for 6 s (load_start), and what must hold of it once
# it is over, whatever daemon served it (load_check NAME).
load_start() {
	STALE0=$(dpstat stale) FULL0=$(dpstat orig_full) REDIR0=$(dpstat redirected)
	client wrk -t2 -c8 -d6s http://10.96.0.20:8080/ >"$TMP/wrk.out" 2>&1 &
	WRK=$!
	client python3 "$TMP/fresh.py" 6 >"$TMP/fresh.json" 2>&1 &
	FRESH=$!
	sleep 2
}
jf() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$TMP/fresh.json" "$1"; }
load_check() { # NAME
	wait "$WRK"
	wait "$FRESH"
	sed 's/^/    # /' "$TMP/wrk.out"
	echo "    # fresh connections: $(cat "$TMP/fresh.json")"
	WRK_N=$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")
	check "$1: wrk (8 keep-alive connections): ${WRK_N:-no} requests, no socket error, no non-2xx" \
		sh -c "[ '${WRK_N:-0}' -gt 1000 ] && ! grep -qE 'Socket errors|Non-2xx' '$TMP/wrk.out'"
	FRESH_N=$(jf 'd["ok"]')
	check "$1: fresh connections: $FRESH_N requests, none failed" [ "$(jf 'd["fail"]')" = 0 -a "${FRESH_N:-0}" -gt 100 ]
	check "$1: every fresh request answered by v1 (the rule)" [ "$(jf 'd["versions"].get("v1", 0)')" = "$FRESH_N" ]
	check "$1: the backend never saw the client pod's own address (no bypass)" \
		[ "$(jf 'd["peers"].get("10.244.0.10", 0)')" = 0 ]
	check "$1: rm_dpstats: no connection failed open (stale $STALE0 -> $(dpstat stale))" [ "$(dpstat stale)" = "$STALE0" ]
	check "$1: rm_dpstats: no original destination lost (orig_full $FULL0 -> $(dpstat orig_full))" [ "$(dpstat orig_full)" = "$FULL0" ]
	REDIR1=$(dpstat redirected)
	check "$1: rm_dpstats: every fresh connection redirected ($((REDIR1 - REDIR0)) >= $FRESH_N)" [ $((REDIR1 - REDIR0)) -ge "${FRESH_N:-1}" ]
}
# After PRED handed over to SUCC (whose log is LOG): PRED exited 0, having drained.
handed_over() { # NAME PRED SUCC LOG PRED_LOG
	local rc
	for _ in $(seq 100); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
	wait "$2"
	rc=$?
	check "$1: the old daemon exits 0 after the hand-over ($rc)" [ "$rc" = 0 ]
	check "$1: ... having handed over and drained" grep -q "handed over to pid $3, exiting" "$5"
	check "$1: the new daemon took over (no fresh start)" sh -c "kill -0 $3 && grep -q 'taking over from pid $2' '$4'"
	check "$1: the old daemon served some of the requests (accepted > 0 at its exit)" \
		sh -c "grep 'exit: accepted' '$5' | tail -1 | grep -qv 'accepted 0,'"
}

# The successor asks for --breaker-pools 512 (hosts following: 8,192), the running
# daemon has the default 256 pools, 4,096 hosts: a fresh rm_breaker of its size is
# pinned in place of the old one, everything else is kept.
scrape >"$TMP/m.before"
STATS_ID=$(map_id rm_stats)
load_start
daemon "$TMP/new.log" "${DARGS[@]}" --breaker-pools 512 --no-sockmap
NEW=$!
RINGMESHD_PID=$NEW # cleanup stops the new one
handed_over "--breaker-pools 512" "$OLD" "$NEW" "$TMP/new.log" "$TMP/ringmeshd.log"
load_check "--breaker-pools 512"
check "the new daemon says it starts a fresh rm_breaker, and why" grep -qF \
	"rm_breaker: predecessor's table is 256 pools, 4096 hosts, this daemon asks for 512 pools, 8192 hosts (--breaker-pools/--breaker-hosts): starting a fresh table; breaker state restarts" \
	"$TMP/new.log"
check "ringmesh breaker show: 512 pools, 8192 hosts ($(bk_size))" [ "$(bk_size)" = "512 8192" ]
check "ringmesh status: the breaker table's new size" sh -c "'$BUILD/ringmesh' --pin-dir '$PIN' status | grep -q 'of 512 pools, .* of 8192 hosts'"
check "rm_breaker is another map (id $BK_ID0 -> $(map_id rm_breaker)), left pinned by the old daemon's exit" \
	[ -n "$(map_id rm_breaker)" -a "$(map_id rm_breaker)" != "$BK_ID0" ]
check "rm_stats kept (id $STATS_ID -> $(map_id rm_stats))" [ "$(map_id rm_stats)" = "$STATS_ID" ]
cli rule list >"$TMP/rules.after"
check "rules kept" cmp -s "$TMP/rules.before" "$TMP/rules.after"
scrape >"$TMP/m.after"
B=$(counted "$TMP/m.before") A=$(counted "$TMP/m.after")
check ":15090 (now the new daemon's) counts on from the old one's $B: $A >= $B + $WRK_N + $FRESH_N" \
	[ "$A" -ge $((B + ${WRK_N:-0} + ${FRESH_N:-0})) ]
check "ringmesh status: live" cli status
check "/healthz/ready on the shared metrics port: 200 (the new daemon's)" ready
check "a request after the hand-over reaches v1" v1_ok
check "the new daemon (--no-sockmap, plain TCP): a new connection takes no shortcut" shortcut off

# --- a second hand-over, the successor asked for --stats-keys 2048 (the default is
# 1,024) and --sockmap: a fresh rm_stats, the breaker table of the same size kept,
# from plain TCP to the shortcut.
BK_ID1=$(map_id rm_breaker) STATS_ID=$(map_id rm_stats)
load_start
daemon "$TMP/third.log" "${DARGS[@]}" --breaker-pools 512 --stats-keys 2048 --sockmap
THIRD=$!
RINGMESHD_PID=$THIRD
handed_over "--stats-keys 2048" "$NEW" "$THIRD" "$TMP/third.log" "$TMP/new.log"
load_check "--stats-keys 2048"
NEW=$THIRD
check "the third daemon says it starts a fresh rm_stats, and why" grep -qF \
	"rm_stats: predecessor's map is 1024 keys, this daemon asks for 2048 keys (--stats-keys): starting a fresh map; counters restart" \
	"$TMP/third.log"
check "ringmesh stats: 2048 key slots ($(stats_slots))" [ "$(stats_slots)" = 2048 ]
check "rm_stats is another map (id $STATS_ID -> $(map_id rm_stats))" \
	[ -n "$(map_id rm_stats)" -a "$(map_id rm_stats)" != "$STATS_ID" ]
check "rm_breaker kept (id $BK_ID1 -> $(map_id rm_breaker)), 512 pools ($(bk_size))" \
	[ "$(map_id rm_breaker)" = "$BK_ID1" -a "$(bk_size)" = "512 8192" ]
check "requests reach v1 through the third" v1_ok
check "the third daemon (--sockmap again): a new connection takes the shortcut" shortcut on
check "the third daemon's counters see them" stats_seen

# --- a successor killed at its worst moment: handed the sockets, its workers running
# (and beating), fresh rm_breaker and rm_stats of its sizes pinned, but TAKEN not yet
# said. RINGMESHD_TEST_PAUSE_BEFORE_TAKEN_MS holds it there, as a successor hung at that
# point would be; under load, with 10 slow requests in flight, it is killed -9. It never
# accepted (a successor accepts only once it has said TAKEN), so no client connection
# dies with it; the running daemon takes everything back (its own maps pinned again)
# and nothing fails.
BK_ID2=$(map_id rm_breaker) STATS_ID=$(map_id rm_stats)
load_start
RINGMESHD_TEST_PAUSE_BEFORE_TAKEN_MS=60000 daemon "$TMP/killed.log" "${DARGS[@]}" \
	--breaker-pools 1024 --stats-keys 4096
KILLED=$!
for _ in $(seq 100); do grep -q 'taking over from pid' "$TMP/killed.log" && break; sleep 0.05; done
sleep 0.5
BK_K=$(map_id rm_breaker)
check "the successor took the sockets and pinned a fresh rm_breaker ($BK_ID2 -> $BK_K), not yet TAKEN" \
	sh -c "grep -q 'taking over from pid' '$TMP/killed.log' && [ '$BK_K' != '$BK_ID2' ] && ! grep -q 'handed over to pid $KILLED' '$TMP/third.log'"
# requests in flight when it dies: a daemon that accepted them takes them along
for i in $(seq 10); do
	client curl -s -m 10 -o /dev/null -w '%{http_code}' -H 'x-rm-delay: 1500ms' \
		http://10.96.0.20:8080/inflight$i >"$TMP/inflight$i.code" 2>&1 &
	eval "INFL$i=$!"
done
sleep 1
kill -KILL "$KILLED"
wait "$KILLED" 2>/dev/null
for i in $(seq 10); do eval "wait \$INFL$i"; done
INFL=$(cat "$TMP"/inflight*.code | tr -d '\n')
check "10 requests 1.5 s slow, in flight when it was killed, all complete with 200 ($INFL)" \
	[ "$INFL" = 200200200200200200200200200200 ]
for _ in $(seq 50); do grep -q 'went away before taking over' "$TMP/third.log" && break; sleep 0.1; done
load_check "successor killed before TAKEN"
check "successor killed before TAKEN: no fresh connection waited on it (slowest $(jf 'd["slowest_ms"]') ms, it hung 1.5 s)" \
	[ "$(jf 'd["slowest_ms"]')" -lt 1500 ]
sed 's/^/    # /' "$TMP/killed.log" | tail -4
check "the running daemon serves on, saying the successor went away" \
	sh -c "kill -0 $NEW && grep -q 'went away before taking over: serving on' '$TMP/third.log'"
check "its own rm_breaker and rm_stats pinned again (ids $BK_ID2, $STATS_ID -> $(map_id rm_breaker), $(map_id rm_stats))" \
	[ "$(map_id rm_breaker)" = "$BK_ID2" -a "$(map_id rm_stats)" = "$STATS_ID" ]
check "ringmesh status: live" cli status
check "/healthz/ready: 200 (the running daemon's)" ready
check "requests reach v1 after the kill" v1_ok

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
grep -ho 'handed to a worker holding fewer [0-9]*' "$TMP/ringmeshd.log" "$TMP/new.log" \
	"$TMP/third.log" | sed 's/^/    # exit: /'
check "connections went to the worker holding fewer (--accept-balance exact)" \
	grep -q 'handed to a worker holding fewer [1-9]' "$TMP/ringmeshd.log" "$TMP/new.log" \
	"$TMP/third.log"

# --- from the release before, whose rm_breaker is one value (RCBR, before the paged
# table): that ringmeshd, built from git, serves, and ours takes over from it under
# load with a fresh table of the paged layout; then a clean stop leaves nothing.
OLD_REV=347deec # main before the merge of the paged rm_breaker (branch cb-size)
TOP=$(cd "$here/../.." && pwd)
if ! git -C "$TOP" cat-file -e "$OLD_REV^{commit}" 2>/dev/null; then
	skip "hand-over from the release before: no git history with $OLD_REV here"
elif ! { mkdir -p "$TMP/old" && git -C "$TOP" archive "$OLD_REV" | tar -x -C "$TMP/old" &&
	env -u BUILD make -C "$TMP/old" -j2 BUILD=build build/ringmeshd >"$TMP/old-build.log" 2>&1; }; then
	tail -5 "$TMP/old-build.log" | sed 's/^/    # /'
	fail "ringmeshd of $OLD_REV builds"
else
	OLDARGS=() # that release has no --accept-balance
	for a in "${DARGS[@]}"; do
		case $a in --accept-balance | exact) ;; *) OLDARGS+=("$a") ;; esac
	done
	RMD_BIN=$TMP/old/build/ringmeshd daemon "$TMP/xold.log" "${OLDARGS[@]}"
	XOLD=$!
	RINGMESHD_PID=$XOLD
	for _ in $(seq 100); do grep -q 'attached to' "$TMP/xold.log" && break; sleep 0.1; done
	check "the release before ($OLD_REV) starts fresh" grep -q 'attached to' "$TMP/xold.log"
	cli apply -f "$TMP/rules.yaml" >/dev/null
	check "a request through it reaches v1" v1_ok
	check "its rm_breaker is the one-value table (1 entry)" sh -c \
		"bpftool -j map show pinned '$PIN/rm_breaker' | grep -q '\"max_entries\":1,'"
	STATS_ID=$(map_id rm_stats)
	load_start
	daemon "$TMP/xnew.log" "${DARGS[@]}"
	XNEW=$!
	RINGMESHD_PID=$XNEW
	handed_over "from $OLD_REV" "$XOLD" "$XNEW" "$TMP/xnew.log" "$TMP/xold.log"
	load_check "from $OLD_REV"
	check "ours says it starts a fresh rm_breaker in place of the older layout" grep -qF \
		"rm_breaker: predecessor's table is another layout (one value of" "$TMP/xnew.log"
	check "ringmesh breaker show: 256 pools, 4096 hosts ($(bk_size))" [ "$(bk_size)" = "256 4096" ]
	check "rm_stats kept (id $STATS_ID -> $(map_id rm_stats))" [ "$(map_id rm_stats)" = "$STATS_ID" ]
	check "a request after the hand-over reaches v1" v1_ok
	kill -TERM "$XNEW"
	wait_gone "$XNEW" 15
	wait "$XNEW"
	nrc=$?
	RINGMESHD_PID=
	check "its clean stop exits 0 ($nrc)" [ "$nrc" = 0 ]
	check "nothing attached under our cgroups" [ -z "$(attached)" ]
	check "nothing pinned (no $PIN)" [ ! -e "$PIN" ]
	check "no ringmeshd of ours running" none_running
fi

summary handover
