#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Scale benchmark of `ringmesh sync` (not a test; issue 11's Scale section): a synthetic
# cluster in the API server double (tests/k8s/apiserver.py --generate: S Services,
# E endpoints in EndpointSlices of at most 100, P Pods of which 1 in 100 on this node;
# one namespace per 100 Services), a sync on a pin dir of its own, and:
#   full list      from the sync's first request to the end of its last initial list
#                  page (the double's request log), and to its first publish
#   RSS            the sync's VmRSS and VmHWM once converged
#   apply-to-live  ROUNDS edits of one VirtualService (the double's store written, the
#                  watch event sent) to the sync's publish of the new generation
#                  (the status file's published_ns; the edit checked in rule list),
#                  with the sync's own split of each publish (read, documents, publish)
# The double is plain HTTP here: Python's TLS would dominate the list time. The list
# time includes the double's own JSON encoding (one Python process, 2 CPUs shared).
# Usage: sudo tools/bench/sync_scale.sh [BUILD] [S,E,P] [ROUNDS]
#        (default 10000,50000,100000 and 5 rounds)
set -u
BUILD=${1:-build}
SIZE=${2:-10000,50000,100000}
ROUNDS=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=benchs-$$
. "$here/../../tests/e2e/lib.sh"
. "$here/lib.sh"
need_root
case "$SIZE" in *[!0-9,]* | "") echo "usage: $0 [BUILD] [SERVICES,ENDPOINTS,PODS] [ROUNDS]"; exit 2;; esac
IFS=, read -r NSVC NEP NPOD <<<"$SIZE"
BENCH_OUT=${BENCH_OUT:-$TMP/figures.tsv}
DBL=$here/../../tests/k8s/apiserver.py
export PYTHONDONTWRITEBYTECODE=1

API_PORT=$(free_port) CTL_PORT=$(free_port)
while [ "$CTL_PORT" = "$API_PORT" ]; do CTL_PORT=$(free_port); done
echo "# $(machine sync_scale)"
echo "# generating $NSVC Services, $NEP endpoints, $NPOD Pods in the double..."
bg double python3 "$DBL" serve --port "$API_PORT" --control-port "$CTL_PORT" --token bench \
	--generate "$NSVC,$NEP,$NPOD,node-1" --ready-file "$TMP/double.ready"
wait_file "$TMP/double.ready" 300 || { echo "the double did not start"; cat "$TMP/double.log"; exit 1; }
head -1 "$TMP/double.log"
printf 'bench\n' >"$TMP/token"
cat >"$TMP/kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: bench
clusters: [{name: bench, cluster: {server: "http://127.0.0.1:$API_PORT"}}]
contexts: [{name: bench, context: {cluster: bench, user: sync}}]
users: [{name: sync, user: {tokenFile: "$TMP/token"}}]
EOF
ctl_post() { curl -sf -X POST --data-binary "@$2" "http://127.0.0.1:$CTL_PORT/$1"; }
SSTAT=$TMP/status.json

# one VirtualService on one of the generated Services, edited ROUNDS times
vs() { # HEADER-VALUE
	cat <<EOF
{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
 "metadata": {"name": "bench-vs", "namespace": "ns-5"},
 "spec": {"hosts": ["svc-5"], "http": [
   {"match": [{"headers": {"x-bench": {"exact": "$1"}}}], "route": [{"destination": {"host": "svc-5"}}],
    "timeout": "3s"},
   {"route": [{"destination": {"host": "svc-5"}}]}]}}
EOF
}
vs r0 >"$TMP/vs.json"
ctl_post apply "$TMP/vs.json" >/dev/null || { echo "control apply failed"; exit 1; }

t_start=$(date +%s%N)
"$BUILD/ringmesh" --pin-dir "$PIN" sync --kubeconfig "$TMP/kubeconfig" --node-name node-1 \
	--status-file "$SSTAT" -v >"$TMP/sync.log" 2>&1 8>&- &
SYNC=$!
PIDS+=($SYNC)
converged() {
	python3 - "$SSTAT" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(1)
sys.exit(not (s["generation"] > 0 and all(k["listed"] for k in s["kinds"])))
EOF
}
for ((i = 0; i < 3000; i++)); do converged && break; kill -0 $SYNC 2>/dev/null || break; sleep 0.1; done
converged || { echo "the sync did not converge"; tail -20 "$TMP/sync.log"; exit 1; }
sleep 2 # settle: RSS after the first publish's transients
read -r rss hwm < <(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { print r, h }' /proc/$SYNC/status)
read -r drss < <(awk '/^VmRSS/ { print $2 }' /proc/$PID_double/status)

# full list from the double's log: first request of the sync to the end of its last list
curl -sf "http://127.0.0.1:$CTL_PORT/log" >"$TMP/log.json"
python3 - "$TMP/log.json" "$SSTAT" "$t_start" >"$TMP/list.txt" <<'EOF'
import json, sys
log = [e for e in json.load(open(sys.argv[1])) if "ringmesh" in e.get("ua", "")]
s = json.load(open(sys.argv[2]))
t_start = int(sys.argv[3]) / 1e9
lists = [e for e in log if e.get("kind") == "list" and e.get("status") == 200]
first_watch = min((e["t0"] for e in log if e.get("kind") == "watch"), default=None)
t0 = min(e["t0"] for e in log)
t1 = max(e["t"] for e in lists)
pages = len(lists)
size = sum(e.get("bytes", 0) for e in lists)
items = sum(e.get("items", 0) for e in lists)
print(f"{t1 - t0:.2f} {s['published_ns'] / 1e9 - t_start:.2f} {pages} {items} {size / 1e6:.1f} {s['documents']}")
EOF
read -r list_s pub_s pages items mbytes docs <"$TMP/list.txt"

# apply-to-live
lat=()
for ((r = 1; r <= ROUNDS; r++)); do
	vs "r$r" >"$TMP/vs.json"
	gen0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["generation"])' "$SSTAT")
	t_a=$(date +%s%N)
	ctl_post apply "$TMP/vs.json" >/dev/null
	# one poller that sleeps between its reads (a python3 started every 10 ms took
	# CPU from the sync it measures, on 2 CPUs); up to 10 s
	ms=$(python3 - "$SSTAT" "$gen0" "$t_a" <<'EOF'
import json, sys, time
for _ in range(2000):
    try:
        s = json.load(open(sys.argv[1]))
    except (OSError, ValueError):
        s = None
    if s and s["generation"] > int(sys.argv[2]):
        print(f"{(s['published_ns'] - int(sys.argv[3])) / 1e6:.0f}")
        break
    time.sleep(0.005)
EOF
	)
	[ -n "$ms" ] || { echo "round $r: the edit never went live"; exit 1; }
	"$BUILD/ringmesh" --pin-dir "$PIN" rule list | grep -q "x-bench=r$r" ||
		{ echo "round $r: published, but rule list does not show x-bench=r$r"; exit 1; }
	lat+=("$ms")
	rec sync_scale apply_to_live ms "$NSVC" "$r" "$ms"
	sleep 0.5
done
sorted=$(printf '%s\n' "${lat[@]}" | sort -n | tr '\n' ' ')
med=$(printf '%s\n' "${lat[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
rec sync_scale rss KiB "$NSVC" 1 "$rss"
rec sync_scale hwm KiB "$NSVC" 1 "$hwm"
rec sync_scale full_list s "$NSVC" 1 "$list_s"
rec sync_scale first_publish s "$NSVC" 1 "$pub_s"

kill -TERM $SYNC
wait_gone $SYNC 10
cat <<EOF

ringmesh sync against $NSVC Services / $NEP endpoints / $NPOD Pods (1 in 100 on this node)
  full list          $list_s s  ($pages pages, $items objects, $mbytes MB of JSON from the double)
  first publish      $pub_s s after the sync started ($docs documents)
  sync RSS           $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB)   [the double: $((drss / 1024)) MiB]
  apply-to-live      median $med ms over $ROUNDS edits of one VirtualService: $sorted(ms)
  the sync's own account of its last publishes (-v):
$(grep '^sync: read ' "$TMP/sync.log" | tail -$((ROUNDS + 1)) | sed 's/^/    /')
EOF
