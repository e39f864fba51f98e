#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# soak: a long run of ringmeshd under churn, to show what short suites cannot - memory
# or descriptors that creep, requests lost while rules change and backends die.
#
# The node is the e2e suites' (tests/e2e/lib.sh + netns.sh): a node netns running
# ringmeshd (2 workers), a client pod and three rm-backend pods v1/v2/v3 behind the VIP
# 10.96.0.30:8080 of an HTTP ServiceEntry, a DestinationRule with subsets and outlier
# detection, a VirtualService with a weighted split, retries and a timeout. Then, for
# SOAK_MINUTES:
#   - load, bounded in rate (the machine is shared): a keep-alive client and a
#     fresh-connection client (Connection: close, one TCP connection per request), each
#     running rm-load in 1 s rounds of a fixed request count, so the rate is at most
#     SOAK_KA_RATE + SOAK_FRESH_RATE req/s; every round's outcome (answers by status,
#     transport errors, first error text) is logged with its start and end time;
#   - every SOAK_APPLY_EVERY s, `ringmesh apply` of the VirtualService with the weights
#     swapped (generation flips under load);
#   - every SOAK_KILL_EVERY s, one backend (in turn) killed with SIGKILL and restarted
#     SOAK_DOWN s later;
#   - each minute, ringmeshd's RSS (VmRSS) and open descriptors (/proc/PID/fd), and the
#     running request totals.
# At the end: load stops, descriptors are watched until they are back at the baseline
# taken before the load (idle upstream connections expire after the daemon's
# --upstream-idle-timeout-ms), the daemon is stopped (exit 0 wanted), and a verdict is
# printed on three criteria:
#   rss   after warm-up (the first SOAK_WARMUP_MIN minutes), every minute's RSS within
#         +-5% of the RSS at the end of warm-up
#   fds   back to the pre-load baseline within SOAK_FD_WAIT s of the load stopping
#   lost  no request lost: every request answered, only 200 or 503, and every 503 in a
#         round that overlaps a kill window: from the kill until the killed host
#         answers again (the first round after its restart with an answer from its
#         version; outlier ejection keeps it out past the restart), plus SOAK_GRACE s
#         (default 0). A retry stays in its subset, so only the one-host subset
#         "canary" (v3) shows 503s. A transport error is lost; a request with no
#         answer within rm-load's --timeout (SOAK_TIMEOUT) is hung.
#
# It does not take the e2e lock (it would hold the other suites off for the whole run):
# every name is its own instead - netns rm-soak-PID-*, cgroup rm-soak-PID, pin dir
# /sys/fs/bpf/rm-soak-PID, addresses only inside those namespaces.
#
# Usage: sudo tools/soak.sh [BUILD]      (make soak SOAK_MINUTES=30)
# Output: the table and verdict on stdout; logs and round records in SOAK_OUT
# (default BUILD/soak-DATE). Exit 0 when all three criteria hold, 1 otherwise, 77 when
# not root.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-${BUILD:-build}}
RUN_ID=soak-$$
export BUILD RUN_ID
. "$top/tests/e2e/lib.sh"
. "$top/tests/e2e/netns.sh"
# Names of our own, never an e2e suite's (theirs are rm-e2e-<digits>...).
CG=$CGROUP2/rm-soak-$$
PIN=/sys/fs/bpf/rm-soak-$$

MINUTES=${SOAK_MINUTES:-30}
WARMUP=${SOAK_WARMUP_MIN:-3}
KA_RATE=${SOAK_KA_RATE:-800}	     # keep-alive requests per second
KA_CONNS=${SOAK_KA_CONNS:-4}
FRESH_RATE=${SOAK_FRESH_RATE:-300} # fresh-connection requests per second
FRESH_CONNS=${SOAK_FRESH_CONNS:-3}
APPLY_EVERY=${SOAK_APPLY_EVERY:-3}
KILL_EVERY=${SOAK_KILL_EVERY:-8}
DOWN=${SOAK_DOWN:-2}
GRACE=${SOAK_GRACE:-0}    # seconds of slack added to every kill window
TIMEOUT=${SOAK_TIMEOUT:-5s}
IDLE_MS=${SOAK_IDLE_MS:-10000}
FD_WAIT=${SOAK_FD_WAIT:-$((IDLE_MS / 1000 + 20))}
OUT=${SOAK_OUT:-$BUILD/soak-$(date -u +%Y%m%dT%H%M%SZ)}
VIP=10.96.0.30
SVC=soak.soak.svc.cluster.local

[ "$(id -u)" -eq 0 ] || { echo "skip: the soak needs root (BPF, cgroups, netns)"; exit 77; }
[ -n "$CGROUP2" ] || { echo "skip: no cgroup2 mount"; exit 77; }
mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf
[ "$MINUTES" -ge 1 ] 2>/dev/null || { echo "SOAK_MINUTES: want a whole number >= 1"; exit 2; }
[ "$WARMUP" -lt "$MINUTES" ] || WARMUP=$((MINUTES - 1))
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)

# Keep the daemon's log and the records when lib.sh's cleanup removes $TMP.
save_out() { cp -f "$TMP"/*.log "$TMP"/rounds.tsv "$TMP"/events.tsv "$OUT"/ 2>/dev/null; }
trap 'rc=$?; save_out; (exit $rc); cleanup' EXIT

die() { echo "soak: $*"; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
event() { echo "$(now_ms) $*" >>"$TMP/events.tsv"; }

NODE_NS=rm-soak-$$-node
CLIENT_NS=rm-soak-$$-c
mk_node "$NODE_NS" && mk_pod "$NODE_NS" "$CLIENT_NS" vc 10.244.0.10 || die "node netns set up"
for i in 1 2 3; do mk_pod "$NODE_NS" "rm-soak-$$-b$i" vb$i 10.244.0.1$i || die "pod b$i set up"; done
PODS_CG=$(mk_cgroup pods)
CLIENT_CG=$(mk_cgroup pods/client)
DAEMON_CG=$(mk_cgroup ringmeshd)
BACK_CG=$(mk_cgroup backends)

# start_backend I: rm-backend vI in its pod, pid in $TMP/bI.pid once it listens.
start_backend() {
	local i=$1
	rm -f "$TMP/b$i.ready"
	# sh execs nsenter execs rm-backend: $! is the backend itself (a kill reaches it).
	# Started from a subshell, so it is no job of ours and its SIGKILL is not reported.
	(sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$BACK_CG" \
		nsenter --net=/run/netns/"rm-soak-$$-b$i" "$BUILD/rm-backend" --mode http \
		--name b$i --version v$i --listen 10.244.0.1$i:8080 --ready-file "$TMP/b$i.ready" \
		>>"$TMP/b$i.log" 2>&1 8>&- &
	 echo $! >"$TMP/b$i.pid")
	wait_file "$TMP/b$i.ready" 5
}
for i in 1 2 3; do start_backend $i || die "backend v$i starts"; done

cat >"$TMP/base.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: soak, namespace: soak}
spec:
  hosts: [$SVC]
  addresses: [$VIP]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.244.0.11, labels: {app: soak, version: v1, track: stable}}
  - {address: 10.244.0.12, labels: {app: soak, version: v2, track: stable}}
  - {address: 10.244.0.13, labels: {app: soak, version: v3, track: canary}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: soak, namespace: soak}
spec:
  host: $SVC
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 50}
  subsets:
  - {name: stable, labels: {track: stable}}
  - {name: canary, labels: {track: canary}}
  - {name: all, labels: {app: soak}}
Y
# vs NAME STABLE ALL CANARY: the weighted split the applier alternates between. A retry
# stays in its subset: in stable and all it reaches a live host, in canary (one host)
# a killed v3 means 503 - both outcomes the soak must see.
vs() {
	cat >"$TMP/$1.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: soak, namespace: soak}
spec:
  hosts: [$SVC]
  http:
  - route:
    - {destination: {host: $SVC, subset: stable}, weight: $2}
    - {destination: {host: $SVC, subset: all}, weight: $3}
    - {destination: {host: $SVC, subset: canary}, weight: $4}
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset,connect-failure"}
Y
}
vs vs-a 70 25 5
vs vs-b 20 75 5
rm_cli() { "$BUILD/ringmesh" --pin-dir "$PIN" "$@"; }

start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
	--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 2 \
	--upstream-idle-timeout-ms "$IDLE_MS" || die "ringmeshd starts"
rm_cli apply -f "$TMP/base.yaml" >/dev/null && rm_cli apply -f "$TMP/vs-a.yaml" >/dev/null ||
	die "rules apply"
DPID=$RINGMESHD_PID
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null; }
nfds() { ls "/proc/$DPID/fd" 2>/dev/null | wc -l; }

# Check the path once before measuring anything: a VIP request answered by a backend.
probe=$(in_cg "$CLIENT_CG" "$CLIENT_NS" -- "$BUILD/rm-load" http --connect $VIP:8080 \
	--requests 30 --json 2>&1) || die "probe through the mesh: $probe"
# The baseline once the probe's pooled upstream connections have timed out: what the
# daemon holds with no traffic at all.
sleep $((IDLE_MS / 1000 + 2))
FD0=$(nfds) RSS0=$(rss_kb)
echo "soak: $MINUTES min, warm-up $WARMUP min, load <= $((KA_RATE + FRESH_RATE)) req/s" \
	"(keep-alive $KA_RATE over $KA_CONNS conns, fresh-connection $FRESH_RATE over" \
	"$FRESH_CONNS conns), apply every ${APPLY_EVERY}s, kill every ${KILL_EVERY}s" \
	"(down ${DOWN}s); ringmeshd pid $DPID ($RINGMESHD); output in $OUT"
echo "baseline before load: rss ${RSS0} kB, fds $FD0"

: >"$TMP/rounds.tsv"
: >"$TMP/events.tsv"
STOP=$TMP/stop

# load_loop KIND RATE CONNS [rm-load args]: 1 s rounds of RATE requests until $STOP.
# One line per round: kind, start ms, end ms, requests wanted, rm-load's exit code, its
# JSON, its first error (tabs and newlines flattened).
load_loop() {
	local kind=$1 rate=$2 conns=$3 t0 t1 out err rc left
	shift 3
	while [ ! -e "$STOP" ]; do
		t0=$(now_ms)
		out=$(in_cg "$CLIENT_CG" "$CLIENT_NS" -- nice -n 5 "$BUILD/rm-load" http \
			--connect $VIP:8080 --json --allow-errors --requests "$rate" --conns "$conns" \
			--timeout "$TIMEOUT" --max-time 30s "$@" 2>"$TMP/$kind.err")
		rc=$?
		t1=$(now_ms)
		err=$(tr '\t\n' '  ' <"$TMP/$kind.err")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$t0" "$t1" "$rate" "$rc" \
			"${out:-null}" "$err" >>"$TMP/rounds.tsv"
		left=$((1000 - (t1 - t0)))
		[ $left -gt 0 ] && sleep "$((left / 1000)).$(printf %03d $((left % 1000)))"
	done
}
apply_loop() {
	local n=0 f out
	while [ ! -e "$STOP" ]; do
		sleep "$APPLY_EVERY"
		[ -e "$STOP" ] && break
		n=$((n + 1))
		f=vs-a
		[ $((n % 2)) -eq 1 ] && f=vs-b
		if out=$(rm_cli apply -f "$TMP/$f.yaml" 2>&1); then
			event apply "$f" ok
		else
			event apply "$f" failed "$(echo "$out" | tr '\n' ' ')"
		fi
	done
}
kill_loop() {
	local n=0 i
	while [ ! -e "$STOP" ]; do
		sleep "$KILL_EVERY"
		[ -e "$STOP" ] && break
		i=$((n % 3 + 1))
		n=$((n + 1))
		kill -KILL "$(cat "$TMP/b$i.pid")" 2>/dev/null
		event kill "b$i"
		sleep "$DOWN"
		if start_backend "$i"; then event up "b$i"; else event up "b$i" failed; fi
	done
}

# tally FILE: running totals of the round records, as "requests ok errors s503 other".
tally() {
	python3 - "$1" <<'PY'
import json, sys
req = ok = err = s503 = other = 0
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 7:
        continue
    req += int(f[3])
    d = json.loads(f[5]) if f[5] != "null" else None
    if not d:
        continue
    st = {int(k): v for k, v in d.get("status", {}).items()}
    ok += st.get(200, 0)
    s503 += st.get(503, 0)
    other += sum(v for k, v in st.items() if k not in (200, 503))
    err += d.get("errors", 0)
print(req, ok, err, s503, other)
PY
}

load_loop ka "$KA_RATE" "$KA_CONNS" &
PIDS+=($!)
load_loop fresh "$FRESH_RATE" "$FRESH_CONNS" --header "Connection: close" &
PIDS+=($!)
apply_loop &
PIDS+=($!)
kill_loop &
PIDS+=($!)

T0=$(now_ms)
printf '%6s %10s %6s %10s %10s %8s %8s %8s %7s %7s\n' minute rss_kB fds requests ok_200 503 other errors applies kills
printf '%6s %10s %6s %10s %10s %8s %8s %8s %7s %7s\n' 0 "$RSS0" "$FD0" 0 0 0 0 0 0 0
echo "0 $RSS0 $FD0" >"$TMP/minutes.txt"
for ((m = 1; m <= MINUTES; m++)); do
	while [ $(($(now_ms) - T0)) -lt $((m * 60000)) ]; do
		kill -0 "$DPID" 2>/dev/null || break 2
		sleep 1
	done
	r=$(rss_kb) f=$(nfds)
	read -r req ok err s503 other < <(tally "$TMP/rounds.tsv")
	na=$(grep -c ' apply ' "$TMP/events.tsv") nk=$(grep -c ' kill ' "$TMP/events.tsv")
	printf '%6s %10s %6s %10s %10s %8s %8s %8s %7s %7s\n' "$m" "$r" "$f" "$req" "$ok" "$s503" \
		"$other" "$err" "$na" "$nk"
	echo "$m $r $f" >>"$TMP/minutes.txt"
done
DEAD=
kill -0 "$DPID" 2>/dev/null || DEAD=1
touch "$STOP"
# The loops end after their current round (a kill waits out its restart).
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
PIDS=()
for i in 1 2 3; do kill -0 "$(cat "$TMP/b$i.pid")" 2>/dev/null || start_backend $i; done
T_STOP=$(now_ms)

# Descriptors after the load: idle upstream connections close after IDLE_MS.
FD_END='' FD_AT=''
if [ -z "$DEAD" ]; then
	for ((s = 0; s <= FD_WAIT; s++)); do
		FD_END=$(nfds)
		[ "$FD_END" -le "$FD0" ] && { FD_AT=$s; break; }
		sleep 1
	done
	RSS_END=$(rss_kb)
	echo "after load: fds $FD_END $([ -n "$FD_AT" ] && echo "(baseline $FD0 reached after ${FD_AT}s)" ||
		echo "(baseline $FD0 not reached within ${FD_WAIT}s)"), rss ${RSS_END} kB"
	echo "daemon's own view (ringmesh stats, per destination version):"
	rm_cli -j stats >"$TMP/stats.json" 2>&1
	python3 - "$TMP/stats.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("  (stats unreadable: %s)" % e); sys.exit(0)
def walk(x):
    if isinstance(x, dict):
        if "destination_version" in x and "codes" in x:
            yield x
        for v in x.values():
            yield from walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from walk(v)
for s in walk(d):
    if s.get("protocol") != "http" or not s.get("requests"):
        continue
    flags = {k: v for k, v in s.get("response_flags", {}).items() if v}
    print("  %-8s requests %-9d codes %s flags %s" % (s["destination_version"], s["requests"],
          json.dumps(s["codes"], sort_keys=True), json.dumps(flags, sort_keys=True) if flags else "-"))
PY
	stop_ringmeshd
	DRC=$?
else
	echo "ringmeshd died during the soak:"
	tail -30 "$TMP/ringmeshd.log" | sed 's/^/    # /'
	DRC=died
fi

# The verdict, from the round records, the kill events and the minute samples.
python3 - "$TMP/rounds.tsv" "$TMP/events.tsv" "$TMP/minutes.txt" "$WARMUP" "$GRACE" \
	"$FD0" "${FD_END:-}" "${FD_AT:-}" "$DRC" "$T0" "$T_STOP" <<'PY' | tee "$TMP/verdict.txt"
import json, sys
rounds, events, minutes = sys.argv[1:4]
warm, grace = int(sys.argv[4]), int(sys.argv[5]) * 1000
fd0, fd_end, fd_at, drc = sys.argv[6], sys.argv[7], sys.argv[8], sys.argv[9]
t0, t_stop = int(sys.argv[10]), int(sys.argv[11])

recs = []
for line in open(rounds):
    f = line.rstrip("\n").split("\t")
    if len(f) >= 7:
        recs.append(f)
# A kill's window: from the kill until the killed host serves again, i.e. the end of the
# first round after its restart that got an answer from its version. Ejection makes
# that later than the restart by a varying amount (a host that returns from ejection
# before its restart fails again and stays out twice as long), so no fixed grace fits.
def back_at(b, up):
    v = "v" + b[1:]
    for f in recs:
        if int(f[1]) >= up and f[5] != "null" and json.loads(f[5]).get("versions", {}).get(v):
            return int(f[2])
    return t_stop
windows, down = [], {}
for line in open(events):
    f = line.split()
    if f[1] == "kill":
        down[f[2]] = int(f[0])
    elif f[1] == "up" and f[2] in down and len(f) == 3:  # "up bN failed": still down
        windows.append((down.pop(f[2]), back_at(f[2], int(f[0])) + grace))
for b, t in down.items():
    windows.append((t, t_stop + grace))
applies = sum(1 for l in open(events) if " apply " in l)
apply_fail = sum(1 for l in open(events) if " apply " in l and " failed" in l)

tot = {"requests": 0, "answered": 0, "errors": 0, "hung": 0, "unanswered": 0}
status, kinds, first_errs = {}, {}, []
s503_in = s503_out = 0
for f in recs:
    kind, a, b, want, rc = f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4])
    k = kinds.setdefault(kind, {"rounds": 0, "requests": 0, "answered": 0, "errors": 0, "reconnects": 0})
    k["rounds"] += 1
    k["requests"] += want
    tot["requests"] += want
    d = json.loads(f[5]) if f[5] != "null" else None
    if not d:
        tot["unanswered"] += want
        first_errs.append("%s round at +%.1fs: rm-load rc %d: %s" % (kind, (a - t0) / 1e3, rc, f[6]))
        continue
    st = {int(s): n for s, n in d.get("status", {}).items()}
    answered = sum(st.values())
    errs = d.get("errors", 0)
    for s, n in st.items():
        status[s] = status.get(s, 0) + n
    tot["answered"] += answered
    k["answered"] += answered
    k["errors"] += errs
    k["reconnects"] += d.get("reconnects", 0)
    # rm-load reports the first error's text only: a round whose first error is a
    # timeout counts all its errors as hung.
    if errs:
        if "timed out" in f[6]:
            tot["hung"] += errs
        else:
            tot["errors"] += errs
        first_errs.append("%s round at +%.1fs: %d errors: %s" % (kind, (a - t0) / 1e3, errs, f[6]))
    tot["unanswered"] += max(0, want - answered - errs)
    n503 = st.get(503, 0)
    if n503:
        if any(a <= w1 and b >= w0 for w0, w1 in windows):
            s503_in += n503
        else:
            s503_out += n503
            first_errs.append("%s round at +%.1fs: %d x 503 outside any kill window" % (kind, (a - t0) / 1e3, n503))

other = sum(n for s, n in status.items() if s not in (200, 503))
print("requests: %d sent, %d answered (%s), %d transport errors, %d hung, %d unanswered" % (
    tot["requests"], tot["answered"],
    ", ".join("%d: %d" % (s, status[s]) for s in sorted(status)) or "none",
    tot["errors"], tot["hung"], tot["unanswered"]))
for kind, k in sorted(kinds.items()):
    print("  %-6s %d rounds, %d requests, %d answered, %d errors, %d reconnects" % (
        kind, k["rounds"], k["requests"], k["answered"], k["errors"], k["reconnects"]))
print("503s: %d within a kill window, %d outside; %d kills, %d applies (%d failed)" % (
    s503_in, s503_out, len(windows), applies, apply_fail))
for e in first_errs[:10]:
    print("  " + e)
if len(first_errs) > 10:
    print("  ... %d more" % (len(first_errs) - 10))

ms = [tuple(int(x) for x in l.split()) for l in open(minutes)]
ok_all = True
# rss: after warm-up, every minute within +-5% of the RSS at the end of warm-up
ref = [r for m, r, f in ms if m == warm]
after = [(m, r) for m, r, f in ms if m > warm]
if ref and after:
    ref = ref[0]
    dev = max(abs(r - ref) * 100.0 / ref for m, r in after)
    lo, hi = min(r for m, r in after), max(r for m, r in after)
    good = dev <= 5.0
    print("rss: %s - first %d kB (minute 0), warm-up end %d kB (minute %d), last %d kB (minute %d); "
          "after warm-up %d..%d kB, max deviation %.1f%% (limit 5%%)" % (
              "PASS" if good else "FAIL", ms[0][1], ref, warm, ms[-1][1], ms[-1][0], lo, hi, dev))
else:
    good = False
    print("rss: FAIL - no samples after warm-up (the daemon died?)")
ok_all &= good
good = bool(fd_end) and int(fd_end) <= int(fd0)
print("fds: %s - baseline %s before load, %s after (%s)" % (
    "PASS" if good else "FAIL", fd0, fd_end or "?",
    ("back after %ss" % fd_at) if fd_at else "not back at baseline"))
ok_all &= good
lost = tot["errors"] + tot["hung"] + tot["unanswered"] + other + s503_out
good = lost == 0 and tot["answered"] > 0
print("lost: %s - %d lost (transport errors %d, hung %d, unanswered %d, status other than "
      "200/503 %d, 503 outside kill windows %d)" % (
          "PASS" if good else "FAIL", lost, tot["errors"], tot["hung"], tot["unanswered"], other, s503_out))
ok_all &= good
good = drc == "0"
print("daemon: %s - %s" % ("PASS" if good else "FAIL",
      "clean stop, exit 0" if good else ("died during the soak" if drc == "died" else "stop exited %s" % drc)))
ok_all &= good
print("soak: %s" % ("PASS" if ok_all else "FAIL"))
sys.exit(0 if ok_all else 1)
PY
rc=${PIPESTATUS[0]}
san_check
cp -f "$TMP/minutes.txt" "$TMP/verdict.txt" "$TMP/stats.json" "$OUT"/ 2>/dev/null
[ $T_FAIL -eq 0 ] && exit $rc
exit 1
