#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Metrics as Istio users see them, with a real Prometheus (Debian's) scraping a real
# ringmeshd every second, on the node of netns.sh (node netns running ringmeshd and
# Prometheus on its loopback, a client pod, trans-service v1/v2/v3 as pods):
#   - /healthz/ready answers 200 once ringmeshd is up; /metrics == /stats/prometheus
#   - the workshop steps (modern API) and a breaker overflow, with the client's own
#     counts kept per version, code and flags: 200s per version, the 504 with UT, the
#     overflow 503s with UO (destination_version unknown: no host was picked, as Envoy)
#   - scrapes taken while load runs are consistent (per series _count == +Inf bucket ==
#     istio_requests_total, nothing decreases); promtool check metrics is clean (but
#     for the unit lint every Envoy exposition gets on Istio's own _milliseconds name)
#   - the final scrape and a PromQL query through Prometheus's HTTP API both give
#     exactly the client's numbers; reporter="destination" holds exactly what an
#     upstream answered (not the UO/UT local replies)
#   - every PromQL expression of Istio's service, workload and mesh dashboards and of
#     ringmesh's own runs against that Prometheus; the panels with data are listed, and
#     the ones that should have data have it
# Usage: sudo [BUILD=build] tests/e2e/test_metrics.sh
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
. "$here/l4_checks.sh" # nothing_left
. "$here/workshop_checks.sh"
need_root

command -v prometheus >/dev/null && command -v promtool >/dev/null ||
	{ echo "skip: Debian's prometheus package is not installed (make deps)"; exit 77; }

RULES=$here/rules
DASH=$root/helm/ringmesh/dashboards
VIP=10.96.0.20:8080
SVC=trans-service.order-system-production.svc.cluster.local
HDR='x-dev-user: super-secret'
N=200
NSPLIT=2000
BSTATS_DIR=$TMP
MPORT=15090 # the default, inside the node netns
PPORT=19090
NODE_NS=rm-$RUN_ID-node
CLIENT_NS=rm-$RUN_ID-c

workshop_node metrics
workshop_backends metrics

node_curl() { in_ns "$NODE_NS" curl -sS --max-time 5 "$@"; }
scrape() { node_curl "http://127.0.0.1:$MPORT/stats/prometheus"; }
papi() { # PromQL -> JSON of /api/v1/query
	node_curl -G "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1"
}
pyj() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" "${@:2}"; }

# An older version's rm_stats left in the pin dir (8 rows in every slot: another
# layout): a fresh start re-creates it instead of failing to load its programs.
mkdir -p "$PIN" && bpftool map create "$PIN/rm_stats" type array key 4 value 4688 entries 1024 \
	name rm_stats flags 0x400 || fail "an old-layout rm_stats pinned"
# Only the VIP range: pod IPs are not services, so every proxied request is counted.
start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
	--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 2 \
	--metrics-listen 0.0.0.0:$MPORT ||
	{ fail "ringmeshd starts"; summary metrics; exit 1; }
ok "ringmeshd starts with --metrics-listen 0.0.0.0:$MPORT (in the node netns)"

ready_200() {
	local i code
	for ((i = 0; i < 30; i++)); do
		code=$(node_curl -o "$TMP/ready.body" -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz/ready")
		[ "$code" = 200 ] && { echo "200 $(cat "$TMP/ready.body")"; return 0; }
		sleep 0.1
	done
	echo "last answer $code"
	return 1
}
check "/healthz/ready: 200 once configuration is loaded and workers accept" ready_200
check "the old-layout rm_stats was re-created, said so" \
	grep -q "rm_stats: pinned map has another layout.*re-creating it" "$TMP/ringmeshd.log"
new_layout() { bpftool -j map show pinned "$PIN/rm_stats" | pyj 'print(d["bytes_value"], d["max_entries"]); sys.exit(d["bytes_value"] != 4096)'; }
check "rm_stats now has the new layout (pages: header, keys, row pool)" new_layout
same_body() {
	local a b
	a=$(node_curl "http://127.0.0.1:$MPORT/metrics" | grep -v '^ringmesh_datapath') || return 1
	b=$(scrape | grep -v '^ringmesh_datapath') || return 1
	node_curl -sI "http://127.0.0.1:$MPORT/metrics" | grep -i '^content-type: text/plain; version=0.0.4' || return 1
	[ "$a" = "$b" ] && echo "same body ($(echo "$a" | wc -l) lines)"
}
check "/metrics and /stats/prometheus: the same text, content type 0.0.4" same_body

# --- Prometheus on the node's loopback, 1 s scrapes, storage of its own ---
mkdir -p "$TMP/prom"
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: ringmesh
  metrics_path: /stats/prometheus
  static_configs:
  - targets: ['127.0.0.1:$MPORT']
EOF
bg prometheus in_ns "$NODE_NS" prometheus --config.file="$TMP/prometheus.yml" \
	--storage.tsdb.path="$TMP/prom" --web.listen-address=127.0.0.1:$PPORT \
	--storage.tsdb.retention.time=1h --log.level=warn
PROM_PID=$PID_prometheus
prom_up() {
	local i
	for ((i = 0; i < 100; i++)); do
		papi 'up{job="ringmesh"}' 2>/dev/null |
			pyj 'sys.exit(0 if d["data"]["result"] and d["data"]["result"][0]["value"][1] == "1" else 1)' \
			2>/dev/null && { echo "up{job=\"ringmesh\"} == 1"; return 0; }
		sleep 0.2
	done
	sed 's/^/# /' "$TMP/prometheus.log" | tail -20
	return 1
}
check "prometheus (pid $PROM_PID) on 127.0.0.1:$PPORT scrapes ringmeshd every 1 s: up == 1" prom_up

# --- traffic, with the client's own counts ---
declare -A EXP # "version code flags" -> requests
# mw: wck that also returns whether the check passed (to count only what passed)
mw() { local f=$T_FAIL; wck "$@"; [ "$T_FAIL" -eq "$f" ]; }
exp_add() { EXP["$1 $2 $3"]=$((${EXP["$1 $2 $3"]:-0} + $4)); }
rm_apply() { "$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$1"; }

check "ServiceEntry and DestinationRule (subsets v1/v2/v3) applied" \
	sh -c "'$BUILD/ringmesh' --pin-dir '$PIN' apply -f '$RULES/serviceentry.yaml' && '$BUILD/ringmesh' --pin-dir '$PIN' apply -f '$RULES/destinationrule.yaml'"

check "step 1: apply vs-step1-default.yaml" rm_apply "$RULES/vs-step1-default.yaml"
mw "step 1: no header -> all v1" all_to $N v1 && exp_add v1 200 - $N
check "step 2: apply vs-step2-featureflag.yaml" rm_apply "$RULES/vs-step2-featureflag.yaml"
mw "step 2: $HDR -> all v2" all_to $N v2 "$HDR" && exp_add v2 200 - $N
mw "step 2: no header -> all v1" all_to $N v1 && exp_add v1 200 - $N
check "step 3: apply vs-step3-canary.yaml" rm_apply "$RULES/vs-step3-canary.yaml"

# scrapes every 50 ms while the split runs
scrape_loop() { # PREFIX: scrapes into $TMP/PREFIX.NNNN until $TMP/PREFIX.stop
	local i=0
	while [ ! -e "$TMP/$1.stop" ] && [ $i -lt 400 ]; do
		scrape >"$TMP/$1.$(printf %04d $i)" 2>/dev/null
		i=$((i + 1))
		sleep 0.05
	done
}
scrape_loop scrape &
SL=$!
PIDS+=($SL)
mw "step 3: no header -> 70/30 (scraped every 50 ms meanwhile)" split $NSPLIT "v1:70 v2:30" &&
	exp_add v1 200 - "$(kv version.v1 <"$TMP/last.load")" &&
	exp_add v2 200 - "$(kv version.v2 <"$TMP/last.load")"
touch "$TMP/scrape.stop"
wait $SL
during_load() { # PREFIX
	local n; n=$(ls "$TMP"/$1.[0-9]* | wc -l)
	[ "$n" -ge 5 ] || { echo "only $n scrapes"; return 1; }
	python3 "$here/prom_text.py" consistent "$TMP"/$1.[0-9]*
}
wck "scrapes under load: _count == +Inf == istio_requests_total per series, monotonic" during_load scrape

check "step 4: apply vs-step4-bulkhead.yaml" rm_apply "$RULES/vs-step4-bulkhead.yaml"
mw "step 4: no header -> all v3" all_to $N v3 && exp_add v3 200 - $N
mw "step 4: v3 answers after 1 s, inside the 5 s timeout -> 200" slow_but_in_time 1s v3 &&
	exp_add v3 200 - 1
mw "step 4: v3 slower (6 s) than the 5 s timeout -> 504" times_out_504 6s 5 && exp_add v3 504 UT 1

# --- overflow: subset slow (v3, 1 connection, 1 pending, 2 requests) under 10 clients ---
breaker_rules() {
	{ cat "$RULES/breaker-destinationrule.yaml"; echo "---"; cat "$RULES/breaker-virtualservice.yaml"; } \
		>"$TMP/breaker.yaml" && rm_apply "$TMP/breaker.yaml"
}
check "breaker DestinationRule (slow: 1 connection, 1 pending, 2 requests) + VirtualService" breaker_rules
overflow() {
	local out n503 nuo s200 req sl
	scrape_loop ovfscrape &
	sl=$!
	PIDS+=($sl)
	cl_load http --connect "$VIP" --conns 10 --duration 2s --allow-errors --timeout 5s \
		--header 'x-pool: slow' --header 'x-rm-delay: 300ms' \
		--count-header x-envoy-overloaded >"$TMP/ovf.load" 2>&1
	touch "$TMP/ovfscrape.stop"
	wait $sl
	out=$(cat "$TMP/ovf.load")
	echo "$out"
	n503=$(echo "$out" | kv status.503) s200=$(echo "$out" | kv status.200)
	nuo=$(echo "$out" | kv version.true) req=$(echo "$out" | kv requests)
	[ "${n503:-0}" -gt 0 ] && [ "${nuo:-0}" = "${n503:-0}" ] &&
		[ $((${s200:-0} + ${n503:-0})) = "$req" ] ||
		{ echo "want 200s and 503s (all overloaded) only"; return 1; }
	echo "$s200 $n503" >"$TMP/ovf.counts"
	echo "$req requests: $s200 x 200 (v3), $n503 x 503 UO"
}
if mw "overflow: 503 UO (x-envoy-overloaded) and 200 from v3" overflow; then
	read -r s200 n503 <"$TMP/ovf.counts"
	exp_add v3 200 - "$s200"
fi
wck "scrapes under the overflow flood: consistent, monotonic" during_load ovfscrape

sleep 2.5 # two scrapes after the last request
scrape >"$TMP/final.txt"
expected() {
	local k
	for k in "${!EXP[@]}"; do echo "source $k ${EXP[$k]}"; done | sort
}
expected >"$TMP/expected.txt"

# same_counts GOT: GOT (lines "source VERSION CODE FLAGS N") against the client's counts.
# The overflow 503s count in total: destination_version is "unknown" when the request
# limit refused them before a host was picked, the host's ("v3") when its connection
# pool's pending limit did, as in Envoy.
same_counts() {
	local n503 uo bad=0
	read -r _ n503 <"$TMP/ovf.counts" 2>/dev/null || n503=0
	echo "client counted:"; cat "$TMP/expected.txt"; echo "  and $n503 x 503 UO"
	echo "metrics:"; cat "$1"
	grep -v ' 503 UO ' "$1" | diff "$TMP/expected.txt" - || bad=1
	uo=$(awk '$3 == 503 && $4 == "UO" { n += $5 } END { print n + 0 }' "$1")
	[ "$uo" = "$n503" ] || { echo "503 UO: metrics $uo, client $n503"; bad=1; }
	awk '$3 == 503 && $4 == "UO" && $2 != "unknown" && $2 != "v3" { exit 1 }' "$1" ||
		{ echo "503 UO attributed to a version other than unknown/v3"; bad=1; }
	[ $bad = 0 ] && echo "$(awk '{ n += $5 } END { print n }' "$1") requests, exactly the client's"
}
exact_scrape() {
	python3 "$here/prom_text.py" counts "$SVC" "$TMP/final.txt" | grep '^source ' | sort >"$TMP/got.txt"
	same_counts "$TMP/got.txt"
}
wck "final scrape: istio_requests_total per version, code, flags == the client's counts" exact_scrape

destination_view() {
	local want got
	python3 "$here/prom_text.py" counts "$SVC" "$TMP/final.txt" | grep '^destination ' >"$TMP/dst.txt"
	cat "$TMP/dst.txt"
	# what an upstream answered: every series but the local replies, flags dropped
	want=$(grep -v -e ' UT ' "$TMP/expected.txt" | awk '{ n += $5 } END { print n }')
	got=$(awk '{ n += $5 } END { print n }' "$TMP/dst.txt")
	grep -q -e ' 503 ' -e ' 504 ' "$TMP/dst.txt" && { echo "a local reply reported by the destination"; return 1; }
	[ "$want" = "$got" ] || { echo "want $want, got $got"; return 1; }
	echo "reporter=destination: $got requests (no UO/UT local replies), as a server sidecar would report"
}
wck "reporter=destination: exactly the requests an upstream answered" destination_view

labels_order() {
	python3 "$here/prom_text.py" labels "$TMP/final.txt" | tee "$TMP/labels.txt"
	grep -qx 'istio_requests_total reporter,source_workload,source_workload_namespace,source_principal,source_app,source_version,source_canonical_service,source_canonical_revision,source_cluster,destination_workload,destination_workload_namespace,destination_principal,destination_app,destination_version,destination_service,destination_service_name,destination_service_namespace,destination_canonical_service,destination_canonical_revision,destination_cluster,request_protocol,response_code,grpc_response_status,response_flags,connection_security_policy' "$TMP/labels.txt" &&
		grep -qx 'istio_tcp_sent_bytes_total reporter,source_workload,source_workload_namespace,source_principal,source_app,source_version,source_canonical_service,source_canonical_revision,source_cluster,destination_workload,destination_workload_namespace,destination_principal,destination_app,destination_version,destination_service,destination_service_name,destination_service_namespace,destination_canonical_service,destination_canonical_revision,destination_cluster,request_protocol,response_flags,connection_security_policy' "$TMP/labels.txt" &&
		echo "25 HTTP labels, 23 TCP labels, Istio's names in the Envoy filter's order"
}
wck "labels: Istio's 25 (HTTP) and 23 (TCP), in order" labels_order

buckets() {
	local le
	le=$(grep '^istio_request_duration_milliseconds_bucket{reporter="source"' "$TMP/final.txt" |
		head -20 | sed 's/.*le="\([^"]*\)".*/\1/' | tr '\n' ' ')
	echo "le: $le"
	[ "$le" = "0.5 1 5 10 25 50 100 250 500 1000 2500 5000 10000 30000 60000 300000 600000 1800000 3600000 +Inf " ] &&
		python3 "$here/prom_text.py" consistent "$TMP/final.txt"
}
wck "histograms: Envoy's 19 bounds + Inf; _count == +Inf == requests" buckets

promtool_clean() {
	local out other
	out=$(promtool check metrics <"$TMP/final.txt" 2>&1)
	echo "$out"
	other=$(echo "$out" | grep -v '^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$' | grep .)
	[ -z "$other" ] && echo "promtool: clean but for Istio's mandated istio_request_duration_milliseconds name"
}
wck "promtool check metrics" promtool_clean

promql_exact() {
	local q='sum by (destination_version, response_code, response_flags) (istio_requests_total{reporter="source",destination_service="'$SVC'"})'
	papi "$q" >"$TMP/q.json" || return 1
	pyj '
for r in sorted(d["data"]["result"], key=lambda r: (r["metric"]["destination_version"], r["metric"]["response_code"], r["metric"]["response_flags"])):
    m = r["metric"]
    print("source", m["destination_version"], m["response_code"], m["response_flags"], r["value"][1])' \
		<"$TMP/q.json" | sort >"$TMP/promql.txt"
	echo "PromQL: $q"
	same_counts "$TMP/promql.txt" || return 1
	papi 'sum(istio_request_duration_milliseconds_bucket{le="+Inf"}) - sum(istio_requests_total)' |
		pyj 'v = d["data"]["result"][0]["value"][1]; print("sum(+Inf buckets) - sum(requests) =", v); sys.exit(v != "0")' ||
		return 1
	echo "Prometheus's HTTP API gives the client's numbers, series by series"
}
wck "PromQL through Prometheus's HTTP API: the same numbers" promql_exact

breaker_metrics() {
	local n503; read -r _ n503 <"$TMP/ovf.counts" || return 1
	papi 'sum(ringmesh_breaker_overflows_total{subset="slow",limit=~"pending|requests"})' |
		pyj 'v = d["data"]["result"][0]["value"][1]; print("overflows (pending+requests) on slow:", v); sys.exit(v != sys.argv[1])' "$n503" ||
		return 1
	papi 'ringmesh_config_generation == ringmesh_config_store_generation' |
		pyj 'r = d["data"]["result"]; print("live generation == written generation:", r and r[0]["value"][1]); sys.exit(not r)' ||
		return 1
	papi 'ringmesh_config_applies_total' |
		pyj 'v = int(d["data"]["result"][0]["value"][1]); print("applies:", v); sys.exit(v < 5)' || return 1
	papi 'ringmesh_datapath_decisions_total{decision="redirected"}' |
		pyj 'v = int(d["data"]["result"][0]["value"][1]); print("redirected:", v); sys.exit(v < 1)' || return 1
	echo "breaker overflows == $n503 (the 503 UO), config generation live, data-path redirects counted"
}
wck "ringmesh_*: breaker overflows == the UO 503s, config generation, data path" breaker_metrics

# rm_stats' row pool: one row per source series (each row counted at least one
# request), plus the overflow slot's reserved row; the workers' buffer pools
stats_pool() {
	python3 - "$TMP/final.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def val(name):
    m = re.search("^" + re.escape(name) + r" (\d+)$", t, re.M)
    return int(m.group(1)) if m else None
rows, rmax, pool = val("ringmesh_stats_rows"), val("ringmesh_stats_rows_max"), val('ringmesh_stats_overflow_total{kind="pool"}')
series = len(re.findall(r'^istio_requests_total\{reporter="source"', t, re.M))
wk = {(int(w), p): int(v) for w, p, v in re.findall(r'^ringmesh_worker_buffers\{worker="(\d+)",pool="(\w+)"\} (\d+)$', t, re.M)}
used = {(int(w), p): int(v) for w, p, v in re.findall(r'^ringmesh_worker_buffers_in_use\{worker="(\d+)",pool="(\w+)"\} (\d+)$', t, re.M)}
print("rows", rows, "of", rmax, "for", series, "source series; pool overflows", pool, "; buffers", wk, "in use", used)
ok = rows == series + 1 and rmax == 2048 and pool == 0
ok = ok and sorted(wk) == [(0, "client"), (0, "upstream"), (1, "client"), (1, "upstream")]
ok = ok and all(v > 0 for v in wk.values()) and all(used[k] <= wk[k] for k in wk)
sys.exit(not ok)
PY
}
wck "rm_stats rows: one per source series (+ the reserved one); both workers' buffer pools exported" stats_pool

dashboards() {
	in_ns "$NODE_NS" python3 "$here/dash_queries.py" --prom "http://127.0.0.1:$PPORT" \
		--var "service=$SVC" --var qrep=destination --var workload=trans-service \
		--var namespace=order-system-production --rate-interval 5m \
		"$DASH/istio-service-dashboard.json" "$DASH/istio-workload-dashboard.json" \
		"$DASH/istio-mesh-dashboard.gen.json" "$DASH/ringmesh-dashboard.json" >"$TMP/dash.out" 2>&1
	local rc=$?
	cat "$TMP/dash.out"
	return $rc
}
if dashboards >"$TMP/dash.all"; then
	ok "dashboards: every expression ran; every panel that should have data has it: $(tail -1 "$TMP/dash.all")"
else
	fail "dashboards: every expression ran; every panel that should have data has it"
fi
echo "# panels (Istio service, workload, mesh dashboards and ringmesh's):"
sed 's/^/#   /' "$TMP/dash.all"

stop_prom() {
	kill -TERM "$PROM_PID" && wait_gone "$PROM_PID" 10 && echo "prometheus stopped"
}
check "prometheus stops" stop_prom
check "ringmeshd: clean stop exits 0" stop_ringmeshd
check "after stop: nothing attached, pinned or running" nothing_left

# --stats-keys: rm_stats follows the capacity asked for (64 keys, 128 rows: 27 pages),
# and an rm_stats of the default size left pinned is re-created, not refused
mkdir -p "$PIN" && bpftool map create "$PIN/rm_stats" type array key 4 value 4096 entries 413 \
	name rm_stats flags 0x400 || fail "a default-size rm_stats pinned"
if start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
	--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 1 --stats-keys 64; then
	sized() {
		local m
		bpftool -j map show pinned "$PIN/rm_stats" | pyj 'print("rm_stats pages:", d["max_entries"]); sys.exit(d["max_entries"] != 27)' || return 1
		m=$("$BUILD/ringmesh" --pin-dir "$PIN" stats --prometheus) || return 1
		grep -x 'ringmesh_stats_keys_max 63' <<<"$m" && grep -x 'ringmesh_stats_rows_max 128' <<<"$m"
	}
	check "--stats-keys 64: a map of 27 pages, 63 keys and 128 rows exported" sized
	check "... the default-size map it found re-created" grep -q "rm_stats: pinned map has another layout.*x 413.*re-creating it" "$TMP/ringmeshd.log"
	check "ringmeshd --stats-keys 64: clean stop exits 0" stop_ringmeshd
else
	fail "ringmeshd --stats-keys 64 starts"
fi
summary metrics
