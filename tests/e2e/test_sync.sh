#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `ringmesh sync` end to end against the Kubernetes API server double
# (tests/k8s/apiserver.py: the real list/watch protocol over HTTPS, a self-signed CA, a
# bearer token read from a tokenFile, every watch event split across chunks). The node
# of netns.sh (ringmeshd in a node netns, a client pod, trans-service v1..v3 as pods
# 10.244.0.11-13); Kubernetes holds the workshop's Service, EndpointSlice and Pods
# (tests/k8s/fixtures), and nothing is configured with `ringmesh apply`: every rule is
# a Kubernetes object, applied to the double as `kubectl apply` would. Shown (issue 11):
#   - the Service + EndpointSlice + Pods make the service and its labelled endpoints;
#     a group not installed (config.istio.io, 404) is skipped and found later;
#   - the workshop's rules, modern (DestinationRule + one VirtualService MODIFIED step
#     by step) and old (RouteRules + DestinationPolicy, config.istio.io CRDs), route as
#     the files do (the canary within chi-square bounds, the 5 s timeout);
#     a MODIFIED event is live within 1 s (under load), DELETED removes the rule;
#   - after a 410 (as an HTTP status, then as an ERROR event) the sync re-lists and later
#     events apply; bookmarks move the resume point; a dropped stream is resumed;
#   - a bad object is skipped and named in `ringmesh sync status`, the rest applies;
#   - sourceLabels/sourceNamespace route two pods in two cgroups named as the kubelet
#     names them (systemd and cgroupfs drivers) differently, and the Istio metrics name
#     each calling workload (source_workload, _namespace, source_app);
#   - the API going away keeps the last rules; its return converges without a restart;
#   - 401 after the token is rotated, then recovery once the token file holds the new one.
# Usage: sudo [BUILD=build] tests/e2e/test_sync.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
. "$here/l4_checks.sh" # nothing_left
. "$here/workshop_checks.sh"
need_root

RULES=$here/rules
FIX=$here/../k8s/fixtures
DBL=$here/../k8s/apiserver.py
VIP=10.96.0.20:8080
HDR='x-dev-user: super-secret'
N=200       # requests per all-to-one-version check
NSPLIT=2000 # requests per weighted-split check
NS=order-system-production
BSTATS_DIR=$TMP

NODE_NS=rm-$RUN_ID-node
CLIENT_NS=rm-$RUN_ID-c
workshop_node sync
workshop_backends sync

# ---- the pods' cgroups, as the kubelet names them, below the sync's --cgroup
KUBEPODS=$(mk_cgroup pods/kubepods)
UID_A=5a1f6b2c-aaaa-4d3e-9f10-00000000000a # web-frontend (fixtures/client-pods.yaml)
UID_B=5a1f6b2c-bbbb-4d3e-9f10-00000000000b # batch-report
POD_A=$(mk_cgroup "pods/kubepods/kubepods-burstable.slice/kubepods-burstable-pod${UID_A//-/_}.slice")
CG_A=$(mk_cgroup "${POD_A#$CG/}/cri-containerd-$(printf 'a%.0s' $(seq 64)).scope")
POD_B=$(mk_cgroup "pods/kubepods/besteffort/pod$UID_B")
CG_B=$(mk_cgroup "${POD_B#$CG/}/$(printf 'b%.0s' $(seq 64))")

# ---- the API server double: HTTPS with a CA of this run, token t1 from a token file
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kube-apiserver \
	-addext subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc \
	-keyout "$TMP/tls.key" -out "$TMP/tls.crt" >"$TMP/openssl.log" 2>&1 ||
	{ fail "openssl: a self-signed API server certificate"; summary sync; exit 1; }
API_PORT=$(free_port)
CTL_PORT=$(free_port)
while [ "$CTL_PORT" = "$API_PORT" ]; do CTL_PORT=$(free_port); done
printf 't1\n' >"$TMP/token"
cat >"$TMP/kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: double
clusters:
- name: double
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $TMP/tls.crt
contexts:
- name: double
  context: {cluster: double, user: ringmesh-sync, namespace: $NS}
users:
- name: ringmesh-sync
  user:
    tokenFile: $TMP/token
EOF
# Split: every watch event of the whole run reaches the sync cut across two or more
# chunks, some chunks carrying the end of one event and the start of the next.
bg double python3 "$DBL" serve --port "$API_PORT" --control-port "$CTL_PORT" \
	--tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key" --token t1 --split \
	--absent config.istio.io --log "$TMP/api.jsonl" --ready-file "$TMP/double.ready" \
	"$FIX/workshop.yaml" "$FIX/client-pods.yaml" "$RULES/destinationrule.yaml"
wait_file "$TMP/double.ready" 10 ||
	{ fail "API double starts"; sed 's/^/    # /' "$TMP/double.log"; summary sync; exit 1; }
ok "API double on https://127.0.0.1:$API_PORT (token t1, split chunks, config.istio.io not installed)"

dctl() { python3 "$DBL" ctl "$CTL_PORT" "$@"; }
kapply() { python3 "$DBL" apply "$CTL_PORT" "$@" >/dev/null; }   # kubectl apply -f
kdelete() { python3 "$DBL" delete "$CTL_PORT" "$@" >/dev/null; } # kubectl delete -f
live_apply_file() { kapply "$1"; }
RM() { "$BUILD/ringmesh" --pin-dir "$PIN" "$@"; }
SSTAT=$TMP/sync-status.json
sync_status() { RM sync status --status-file "$SSTAT"; }
# st PYEXPR: evaluate over the status file's JSON (s; k = {kind: entry})
st() {
	python3 - "$SSTAT" "$1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
k = {x["kind"]: x for x in s["kinds"]}
v = eval("(" + sys.argv[2] + ")")
print(v)
sys.exit(0 if v else 1)
EOF
}
# dlog PYEXPR: the entries of the double's request log (e, its query q) for which it
# holds, one per line as JSON (requests in progress too: "open"); LOGN: the log's
# length at a mark (dlog_mark), LOGT its time (requests ended after it: e['t'] > LOGT;
# n counts requests by their start)
dlog() {
	dctl log | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    q = e.get("query", {})
    if eval(sys.argv[1]):
        print(json.dumps(e))' "$1"
}
dlog_mark() { LOGT=$(date +%s.%N) LOGN=$(dctl log | python3 -c 'import json,sys; l = json.load(sys.stdin); print(l[-1]["n"] if l else 0)'); }
# until_ok SECONDS cmd...: retry every 0.1 s; the last try's output stays
until_ok() {
	local t=$1 i; shift
	for ((i = 0; i < t * 10; i++)); do "$@" >"$TMP/until.out" 2>&1 && { cat "$TMP/until.out"; return 0; }; sleep 0.1; done
	cat "$TMP/until.out"; return 1
}
rules_show() { # PATTERN: rule list has a line matching
	local out; out=$(RM rule list) || return 1
	echo "$out"
	echo "$out" | grep -qE "$1"
}
rules_lack() {
	local out; out=$(RM rule list) || return 1
	echo "$out"
	! echo "$out" | grep -qE "$1"
}
# seen_within MS VERSION [HEADER]: after an apply, a fresh request answered by VERSION
# within MS milliseconds (the time printed); call right after the apply returned
seen_within() {
	local ms=$1 v=$2 t0 t i out h=()
	[ $# -ge 3 ] && h=(--header "$3")
	t0=${APPLIED_NS:-$(now_ns)}
	for ((i = 0; i < 300; i++)); do
		out=$(vip_load --requests 1 --timeout 2s "${h[@]}" 2>&1)
		if [ "$(echo "$out" | kv version.$v)" = 1 ]; then
			t=$((($(now_ns) - t0) / 1000000))
			echo "$v answered ${t} ms after the apply"
			[ $t -le "$ms" ]
			return
		fi
		[ $((($(now_ns) - t0) / 1000000)) -gt $((ms * 10)) ] && break
		sleep 0.02
	done
	echo "never answered by $v"; return 1
}
kapply_t() { kapply "$@" && APPLIED_NS=$(now_ns); }

start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" \
	--include-ip-ranges 10.96.0.0/12,10.244.0.0/24 --listen 127.0.0.1:15001 \
	--pod-gateway $POD_GW --workers 2 ||
	{ fail "ringmeshd starts"; summary sync; exit 1; }
ok "ringmeshd starts (include 10.96.0.0/12,10.244.0.0/24)"

# The sync runs in the machine's netns (the API is on its loopback), as the chart's
# second container does in the host network.
"$BUILD/ringmesh" --pin-dir "$PIN" sync --kubeconfig "$TMP/kubeconfig" --node-name node-1 \
	--cgroup "$KUBEPODS" --status-file "$SSTAT" -v >"$TMP/sync.log" 2>&1 8>&- &
SYNC_PID=$!
PIDS+=($SYNC_PID)
synced() {
	st 's["reachable"] and all(k[x]["listed"] and k[x]["state"] == "watching" for x in
		("Service", "EndpointSlice", "PodMeta", "Pod", "VirtualService", "DestinationRule"))
		and s["generation"] > 0'
}
if until_ok 10 synced >/dev/null; then
	ok "sync: listed and watching Services, EndpointSlices, Pods, VirtualServices, DestinationRules"
else
	fail "sync lists and watches"; sed 's/^/    # /' "$TMP/sync.log" | tail -20
	[ -f "$SSTAT" ] && sed 's/^/    # /' "$SSTAT" | head -40
	summary sync; exit 1
fi
check "sync: config.istio.io not installed (404) -> RouteRule/DestinationPolicy absent, not fatal" \
	st 'k["RouteRule"]["state"] == "absent" and k["DestinationPolicy"]["state"] == "absent" and
		"404" in k["RouteRule"]["last_error"]'
got_404() { dlog "e['path'] == '/apis/config.istio.io/v1alpha2/routerules' and e.get('status') == 404" | grep -q .; }
check "double log: the sync asked /apis/config.istio.io/v1alpha2/routerules and got 404" got_404
# The group appears (its CRDs installed) now; the sync probes an absent group again
# within a minute: checked before the old-API steps below, which need it.
dctl group '{"group": "config.istio.io", "installed": true}' >/dev/null
GROUP_T0=$(now_ns)

service_from_k8s() {
	local s e
	s=$(RM service list) && e=$(RM endpoint list) || return 1
	echo "$s"; echo "$e"
	echo "$s" | grep -qE "^trans-service\.$NS\.svc\.cluster\.local +$NS +10\.96\.0\.20 +8080/HTTP " &&
		[ "$(echo "$e" | grep -cE '^10\.244\.0\.1[123]:8080 .*app=trans-service.*version=v[123]')" -eq 3 ]
}
check "Service + EndpointSlice + Pods -> trans-service.$NS.svc.cluster.local 10.96.0.20 8080/HTTP, 3 endpoints labelled from their pods" \
	service_from_k8s
check "pod identity: the two local client pods mapped to their kubelet cgroups" \
	until_ok 5 st 's["pods"]["local"] == 5 and s["pods"]["mapped"] == 2'
workloads_listed() {
	local out; out=$(RM workload list) || return 1
	echo "$out"
	echo "$out" | grep -qE "^$(stat -c %i "$POD_A") +$NS +web-frontend-7c9d5b8f4-x2x7q +web-frontend +web-frontend +v1 " &&
		echo "$out" | grep -qE "^$(stat -c %i "$POD_B") +reporting +batch-report-28391040-q8zlm +batch-report "
}
check "workload list: web-frontend (systemd slice) and batch-report (cgroupfs, CronJob name trimmed)" \
	workloads_listed

# ---- modern API: the DestinationRule is in the cluster; one VirtualService, edited
workshop_modern() {
	kapply "$RULES/vs-step1-default.yaml"
	wck "modern/step 1 (VirtualService ADDED): no header -> all v1" until_ok 3 all_to $N v1
	wck "modern/step 1: $HDR -> all v1" all_to $N v1 "$HDR"
	wck "modern/step 2: VirtualService MODIFIED under load with $HDR: live within 1 s, none failed" \
		live_apply "$RULES/vs-step2-featureflag.yaml" v2 v1 "$HDR"
	wck "modern/step 2: $HDR -> all v2" all_to $N v2 "$HDR"
	wck "modern/step 2: no header -> all v1" all_to $N v1
	kapply "$RULES/vs-step3-canary.yaml"
	wck "modern/step 3 (MODIFIED): the canary listed" until_ok 3 rules_show '70%, v2 30%'
	wck "modern/step 3: no header -> 70/30" split $NSPLIT "v1:70 v2:30"
	wck "modern/step 3: $HDR -> 70/30 too (step 2 shadowed)" split $NSPLIT "v1:70 v2:30" "$HDR"
	wck "modern/step 4: MODIFIED under load: live within 1 s" \
		live_apply "$RULES/vs-step4-bulkhead.yaml" v3 "v1 v2"
	wck "modern/step 4: no header -> all v3" all_to $N v3
	wck "modern/step 4: v3 slower (6 s) than the 5 s timeout -> 504" times_out_504 6s 5
}
workshop_modern
kdelete "$RULES/vs-step4-bulkhead.yaml"
wck "modern: VirtualService DELETED -> its rules gone from rule list" \
	until_ok 3 rules_lack 'VirtualService'
no_rule_v3() { # without a rule every version serves: no longer all v3
	run_load 60 || return 1
	local got; got=$(versions_of <"$TMP/last.load")
	echo "$got"
	[ "$got" != "v3=60" ] && case $got in *v1=*) ;; *) false;; esac
}
wck "modern: after DELETED requests are no longer all v3" no_rule_v3

# ---- old API: config.istio.io found again, RouteRules and the DestinationPolicy
group_found() { st 'k["RouteRule"]["state"] == "watching" and k["DestinationPolicy"]["state"] == "watching"'; }
left=$((75 - ($(now_ns) - GROUP_T0) / 1000000000))
[ $left -lt 1 ] && left=1
if until_ok $left group_found >/dev/null; then
	ok "config.istio.io installed later: found by the sync's re-probe ($((($(now_ns) - GROUP_T0) / 1000000000)) s after), without a restart"
else
	fail "config.istio.io installed later: RouteRule still not watched after 75 s"
	sed 's/^/    # /' "$SSTAT" | grep -A8 RouteRule | head -10
fi
kdelete "$RULES/destinationrule.yaml" # the old API's labels need no subsets
kapply "$RULES/dest-rule.yaml"
workshop_old() {
	kapply "$RULES/routerule-v1.yaml"
	wck "old/step 1 (RouteRule ADDED): no header -> all v1" until_ok 3 all_to $N v1
	wck "old/step 2: RouteRule ADDED under load with $HDR: live within 1 s" \
		live_apply "$RULES/routerule-v2.yaml" v2 v1 "$HDR"
	wck "old/step 2: $HDR -> all v2" all_to $N v2 "$HDR"
	wck "old/step 2: no header -> all v1" all_to $N v1
	kapply "$RULES/routerule-v3.yaml"
	wck "old/step 3: precedence-3 canary listed" until_ok 3 rules_show 'RouteRule.*70%'
	wck "old/step 3: no header -> 70/30" split $NSPLIT "v1:70 v2:30"
	wck "old/step 3: $HDR -> 70/30 too" split $NSPLIT "v1:70 v2:30" "$HDR"
	wck "old/step 4: RouteRule ADDED under load: live within 1 s" \
		live_apply "$RULES/routerule-v4.yaml" v3 "v1 v2"
	wck "old/step 4: no header -> all v3" all_to $N v3
	wck "old/step 4: v3 slower (6 s) than the 5 s timeout -> 504" times_out_504 6s 5
	kdelete "$RULES/routerule-v4.yaml"
	wck "old: RouteRule v4 DELETED -> back to the 70/30 canary" \
		until_ok 3 rules_lack 'bulkhead'
	wck "old: after DELETED no header -> 70/30 again" split $NSPLIT "v1:70 v2:30"
}
workshop_old
check "rule list names where each rule came from (k8s:RouteRule/$NS/...)" \
	rules_show "k8s:RouteRule/$NS/trans-service-canary"
kdelete "$RULES/routerule-v3.yaml" "$RULES/routerule-v2.yaml" "$RULES/routerule-v1.yaml" \
	"$RULES/dest-rule.yaml"
check "old: all RouteRules DELETED -> no rules" until_ok 3 rules_lack 'RouteRule'
kapply "$RULES/destinationrule.yaml" "$RULES/vs-step1-default.yaml"
wck "modern again: DestinationRule + step 1 -> all v1" until_ok 3 all_to $N v1

# ---- 410 Gone: as an HTTP status, then as an ERROR event in the stream
relisted_after() { # MARK KIND-PATH: a 410 then a list of that path after the mark
	dlog "e['n'] > $1 and e['path'] == '$2' and e.get('status') == 410" | grep -q . || { echo "no 410 on $2"; return 1; }
	dlog "e['n'] > $1 and e['path'] == '$2' and e.get('kind') == 'list' and e.get('status') == 200" | grep -q . || { echo "no re-list of $2"; return 1; }
	echo "410 then a re-list of $2"
}
dlog_mark
dctl expire '{"mode": "status"}' >/dev/null
relisted_all() {
	relisted_after $LOGN /api/v1/services && relisted_after $LOGN /apis/discovery.k8s.io/v1/endpointslices &&
		relisted_after $LOGN /apis/networking.istio.io/v1/virtualservices
}
check "410 (status): every watch re-listed (services, endpointslices, virtualservices)" \
	until_ok 5 relisted_all
check "410 (status): sync status counts the re-lists" until_ok 3 st 'k["Service"]["relists_410"] >= 1 and k["VirtualService"]["relists_410"] >= 1'
kapply_t "$RULES/vs-step2-featureflag.yaml"
wck "after the 410: a later MODIFIED applies ($HDR -> v2 within 1 s)" seen_within 1000 v2 "$HDR"
wck "after the 410: $HDR -> all v2" all_to $N v2 "$HDR"
dlog_mark
dctl expire '{"mode": "event"}' >/dev/null
events_410() { # the streams ended by an ERROR 410 event (HTTP 200), then re-lists
	local p=/apis/networking.istio.io/v1/virtualservices n
	n=$(dlog "e.get('t', 0) > $LOGT and e.get('end') == 'ERROR 410'" | wc -l)
	echo "$n watch streams ended by an ERROR event with code 410"
	[ "$n" -ge 6 ] || return 1
	dlog "e['n'] > $LOGN and e['path'] == '$p' and e.get('status') == 410" | grep -q . &&
		{ echo "an HTTP 410 on $p: not the case being tested"; return 1; }
	dlog "e['n'] > $LOGN and e['path'] == '$p' and e.get('kind') == 'list' and e.get('status') == 200" | grep -q . ||
		{ echo "no re-list of $p"; return 1; }
	echo "then a re-list of $p"
}
wck "410 (ERROR event in the stream): the sync re-lists" until_ok 5 events_410
kapply_t "$RULES/vs-step4-bulkhead.yaml"
wck "after the ERROR 410: a later MODIFIED applies (all v3 within 1 s)" seen_within 1000 v3
dctl expire_mode '{"mode": "status"}' >/dev/null

# ---- bookmarks and dropped streams
BM=$(dctl bookmark '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["rv"])')
sleep 0.5
dlog_mark
dctl close '{}' >/dev/null
rewatch_from_bookmark() {
	local n
	n=$(dlog "e['n'] > $LOGN and e.get('kind') == 'watch' and q.get('resourceVersion') == '$BM'" | wc -l)
	echo "$n watches resumed from the bookmark's resourceVersion $BM"
	[ "$n" -ge 6 ]
}
check "BOOKMARK: the watches resume from the bookmark's resourceVersion" until_ok 5 rewatch_from_bookmark
dlog_mark
dctl drop '{"partial": true}' >/dev/null
kapply_t "$RULES/vs-step1-default.yaml"
wck "watch dropped mid-event, change applied meanwhile: resumed and live (all v1)" seen_within 2000 v1
resumed() {
	local n
	n=$(dlog "e['n'] > $LOGN and e.get('kind') == 'watch' and e.get('status') == 200 and e['path'] == '/apis/networking.istio.io/v1/virtualservices'" | wc -l)
	[ "$n" -ge 1 ] && ! dlog "e['n'] > $LOGN and e.get('kind') == 'list' and e['path'] == '/apis/networking.istio.io/v1/virtualservices'" | grep -q .
}
check "dropped: re-watched from its resourceVersion, no re-list needed" until_ok 3 resumed
split_seen() {
	dctl log | python3 -c '
import json, sys
w = json.load(sys.stdin)
w = [e for e in w if e.get("kind") == "watch" and e.get("events")]
ev = sum(e["events"] for e in w)
ch = sum(e.get("chunks", 0) for e in w)
print(f"{ev} events in {ch} chunks over {len(w)} watches")
sys.exit(not (ev >= 10 and ch >= 2 * ev))'
}
wck "every watch event the sync applied came split across two or more chunks" split_seen

# ---- bad objects are skipped, named, and the rest applies: a weight that is not a
# number (the object alone does not compile) and a subset no DestinationRule defines
# (only the whole set shows it)
cat >"$TMP/bad-vs.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: trans-service-broken, namespace: $NS}
spec:
  hosts: [trans-service-typo]
  http:
  - route:
    - {destination: {host: trans-service, subset: v1}, weight: seventy}
    - {destination: {host: trans-service, subset: v2}, weight: 30}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: trans-service-v9, namespace: $NS}
spec:
  hosts: [trans-service-next]
  http:
  - route:
    - {destination: {host: trans-service, subset: v9}}
EOF
kapply "$TMP/bad-vs.yaml"
kapply_t "$RULES/vs-step2-featureflag.yaml"
wck "bad object in the cluster: the other VirtualService's change still applies" seen_within 1000 v2 "$HDR"
skipped_named() {
	local out; out=$(sync_status) || return 1
	echo "$out"
	echo "$out" | grep -q "VirtualService $NS/trans-service-broken: .*weight" &&
		echo "$out" | grep -q "VirtualService $NS/trans-service-v9: .*v9" &&
		st "len(s['skipped']) == 2 and all(x['namespace'] == '$NS' and x['kind'] == 'VirtualService' and x['error'] for x in s['skipped'])" >/dev/null
}
check "ringmesh sync status names both skipped objects ($NS/trans-service-broken, $NS/trans-service-v9) with the compiler's errors" \
	until_ok 3 skipped_named
grep -m1 "trans-service-broken" "$TMP/sync.log" | sed 's/^/    # log: /'
kdelete "$TMP/bad-vs.yaml"
check "bad object deleted: no longer skipped" until_ok 3 st 'not s["skipped"]'

# ---- pod identity: sourceLabels and sourceNamespace, and the metrics
cat >"$TMP/source-vs.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: trans-service, namespace: $NS}
spec:
  hosts: [trans-service]
  http:
  - match: [{sourceLabels: {app: web-frontend, track: canary}}]
    route: [{destination: {host: trans-service, subset: v2}}]
  - match: [{sourceNamespace: reporting}]
    route: [{destination: {host: trans-service, subset: v3}}]
  - route: [{destination: {host: trans-service, subset: v1}}]
EOF
kapply "$TMP/source-vs.yaml"
until_ok 3 rules_show 'v3 100%' >/dev/null
NS_REQ=40
from_cg() { # CGROUP WANT: NS_REQ requests from a caller in that cgroup (client netns)
	local out got
	out=$(in_cg "$1" "$CLIENT_NS" -- "$BUILD/rm-load" http --connect "$VIP" --count-header x-backend-version \
		--requests $NS_REQ --conns 2 --timeout 3s 2>&1) || { echo "$out"; return 1; }
	got=$(echo "$out" | versions_of)
	echo "$got"
	[ "$got" = "$2=$NS_REQ" ]
}
sleep 1.2 # the workers cache a caller's identity for 1 s
wck "sourceLabels: web-frontend (kubepods-burstable-pod<uid>.slice/…scope) -> v2" from_cg "$CG_A" v2
wck "sourceNamespace: batch-report in reporting (besteffort/pod<uid>/…) -> v3" from_cg "$CG_B" v3
wck "a caller in no pod's cgroup -> v1" from_cg "$CLIENT_CG" v1
in_ns "$NODE_NS" curl -s -m 5 "http://$METRICS_ADDR/stats/prometheus" >"$TMP/metrics.txt"
mwant() { # NAME WANT MATCHERS...
	local name=$1 w=$2 got; shift 2
	got=$(requests_sum "$TMP/metrics.txt" 'reporter="source"' "$@")
	if [ "$got" = "$w" ]; then ok "metrics: $name ($got)"; else
		fail "metrics: $name: got $got, want $w"
		grep '^istio_requests_total{reporter="source"' "$TMP/metrics.txt" | grep -v unknown | head -6 | sed 's/^/    # /'
	fi
}
mwant "source_* name web-frontend's requests" $NS_REQ 'source_workload="web-frontend"' \
	"source_workload_namespace=\"$NS\"" 'source_app="web-frontend"' 'source_version="v1"' \
	'destination_version="v2"'
mwant "source_* name batch-report's requests (CronJob's Job -> workload batch-report)" $NS_REQ \
	'source_workload="batch-report"' 'source_workload_namespace="reporting"' \
	'source_app="batch-report"' 'destination_version="v3"'
kdelete "$FIX/client-pods.yaml"
check "client pods DELETED: their records leave the workload map" \
	until_ok 5 st 's["pods"]["mapped"] == 0'
sleep 1.2
wck "web-frontend's cgroup after its pod is deleted -> v1 (no identity)" from_cg "$CG_A" v1
kapply "$FIX/client-pods.yaml"

# ---- the API goes away: the last rules stay; it comes back: converges, no restart
kapply "$RULES/vs-step4-bulkhead.yaml"
until_ok 3 all_to 20 v3 >/dev/null
dctl down '{}' >/dev/null
unreachable() { until_ok 10 st 'not s["reachable"]' && kill -0 $SYNC_PID; }
check "API down: the sync notices (status: not reachable) and keeps running" unreachable
wck "API down: the last rules stay in force (all v3)" all_to $N v3
check "API down: rule list unchanged" rules_show 'bulkhead|v3 100%'
kapply "$RULES/vs-step1-default.yaml" # changed in the cluster while the node cannot see it
sleep 3
wck "API down: a change made meanwhile is not seen (still all v3)" all_to 40 v3
dctl up '{}' >/dev/null
APPLIED_NS=$(now_ns)
wck "API back: the sync converges without a restart (all v1)" seen_within 35000 v1
back() { kill -0 $SYNC_PID && until_ok 35 st 's["reachable"] and all(x["state"] == "watching" for x in s["kinds"])'; }
check "API back: same sync process, every resource watched again" back

# ---- the API stops answering (connections held, nothing sent): rules stay; answering
# again, the open watches deliver what changed meanwhile
dctl hang '{}' >/dev/null
kapply "$RULES/vs-step4-bulkhead.yaml"
sleep 2
wck "API hung: the last rules stay, the change made meanwhile not seen (all v1)" all_to 40 v1
dctl unhang '{}' >/dev/null
APPLIED_NS=$(now_ns)
wck "API answering again: the held watch delivers the change (all v3)" seen_within 2000 v3
kapply "$RULES/vs-step1-default.yaml"
wck "and the next change applies as usual (all v1)" until_ok 3 all_to 20 v1

# ---- 401: the token rotates; the sync re-reads its token file
dlog_mark
dctl token '{"tokens": ["t2"]}' >/dev/null
dctl close '{}' >/dev/null
saw_401() { dlog "e['n'] > $LOGN and e.get('status') == 401 and e.get('token') == 't1'" | grep -q .; }
check "token rotated: the old token gets 401" until_ok 5 saw_401
check "401: the sync reports not reachable, keeps running" unreachable
wck "401: the last rules stay (all v1)" all_to 40 v1
printf 't2\n' >"$TMP/token.new" && mv "$TMP/token.new" "$TMP/token" # as kubelet rewrites it
kapply_t "$RULES/vs-step4-bulkhead.yaml"
wck "new token in the token file: recovered without a restart, the change applies (all v3)" \
	seen_within 35000 v3
new_token_used() { dlog "e['n'] > $LOGN and e.get('token') == 't2' and e.get('status') == 200" | grep -q .; }
check "double log: requests with the new token t2 answered 200 after the 401s" new_token_used

# ---- stop
stop_sync() {
	kill -TERM $SYNC_PID
	wait_gone $SYNC_PID 5 || return 1
	wait $SYNC_PID
}
check "sync: SIGTERM -> exits 0" stop_sync
wck "after the sync stops: the published rules stay (all v3)" all_to 40 v3

# ---- a cluster whose domain is corp.local: a second sync of the same API into a pin dir
# of its own (no daemon: the store is created by the sync). The Service is
# trans-service.NS.svc.corp.local, and the VirtualService's short host resolves there too,
# so its rules are the Service's (with cluster.local they would make a service of their own).
PIN_CORP=$PIN-corp
corp_sync() {
	local pid out rules
	"$BUILD/ringmesh" --pin-dir "$PIN_CORP" sync --kubeconfig "$TMP/kubeconfig" \
		--node-name node-1 --domain corp.local --status-file "$TMP/sync-corp.json" \
		>"$TMP/sync-corp.log" 2>&1 8>&- &
	pid=$!
	PIDS+=($pid)
	SSTAT=$TMP/sync-corp.json until_ok 10 st 's["generation"] > 0 and k["VirtualService"]["listed"]' >/dev/null
	out=$("$BUILD/ringmesh" --pin-dir "$PIN_CORP" service list 2>&1)
	rules=$("$BUILD/ringmesh" --pin-dir "$PIN_CORP" rule list 2>&1)
	kill -TERM $pid; wait_gone $pid 5; wait $pid
	echo "$out"; echo "$rules"
	echo "$out" | grep -qE "^trans-service\.$NS\.svc\.corp\.local +$NS +10\.96\.0\.20 " &&
		! echo "$out" | grep -q "cluster\.local" &&
		echo "$rules" | grep -qE "^$NS/trans-service +VirtualService +trans-service .* k8s:VirtualService/$NS/trans-service"
}
check "sync --domain corp.local: trans-service.$NS.svc.corp.local, and the VirtualService's short host on it" corp_sync
rm -rf "$PIN_CORP"
check "ringmeshd: clean stop exits 0" stop_ringmeshd
check "after stop: nothing attached, pinned or running" nothing_left
summary sync
