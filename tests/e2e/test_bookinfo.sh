#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Istio's bookinfo traffic-management tasks, end to end, with Istio's own sample files
# (tests/samples/istio, unchanged) applied in the order the tasks apply them, and real
# requests through the proxy after each step. The node of netns.sh: a client pod
# (10.244.0.10, standing in for the callers) and one pod per bookinfo version
# (productpage v1 .21, reviews v1/v2/v3 .22-.24, ratings v1 .25, details v1 .26), each an
# rm-backend naming its version; Kubernetes is stood in for by one ServiceEntry per
# service (tests/cfg/bookinfo-serviceentries.yaml, VIPs 10.96.0.31-34:9080, routed
# unreachable in the pods so only interception reaches them). Steps:
#   deploy           bookinfo.yaml (Services, ServiceAccounts, Deployments): skipped,
#                    one line says so, the rules do not move
#   request routing  destination-rule-all.yaml and virtual-service-all-v1.yaml (both end
#                    with an empty `---` document): every service -> v1; then
#                    virtual-service-reviews-test-v2.yaml: end-user: jason -> reviews v2
#   fault injection  virtual-service-ratings-test-delay.yaml: jason waits 7 s for
#                    ratings, others do not; virtual-service-ratings-test-abort.yaml:
#                    jason gets 500 "fault filter abort", the backend sees nothing
#   traffic shifting virtual-service-all-v1.yaml again, virtual-service-reviews-50-v3.yaml
#                    (50/50 v1/v3, chi-square at p = 0.001), then
#                    virtual-service-reviews-v3.yaml applied under load: all v3
# Usage: sudo [BUILD=build] tests/e2e/test_bookinfo.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
. "$here/l4_checks.sh" # nothing_left
. "$here/workshop_checks.sh"
need_root

SAMPLES=$here/../samples/istio/bookinfo
NET=$SAMPLES/networking
SE=$here/../cfg/bookinfo-serviceentries.yaml
JASON='end-user: jason'
N=200       # requests per all-to-one-version check
NSPLIT=2000 # requests of the 50/50 check
# reviews is the service with three versions: workshop_checks.sh's VIP and BSTATS_DIR
VIP=10.96.0.32:9080
BSTATS_DIR=$TMP/reviews

NODE_NS=rm-$RUN_ID-node
CLIENT_NS=rm-$RUN_ID-c
# pod NAME SERVICE VERSION IP
PODS=(
	"pp productpage v1 10.244.0.21"
	"r1 reviews v1 10.244.0.22"
	"r2 reviews v2 10.244.0.23"
	"r3 reviews v3 10.244.0.24"
	"ra ratings v1 10.244.0.25"
	"de details v1 10.244.0.26"
)
declare -A VIPS=([productpage]=10.96.0.31:9080 [reviews]=10.96.0.32:9080
	[ratings]=10.96.0.33:9080 [details]=10.96.0.34:9080)

setup_node() {
	mk_node "$NODE_NS" && mk_pod "$NODE_NS" "$CLIENT_NS" vc 10.244.0.10 || return 1
	local p name
	for p in "${PODS[@]}"; do
		set -- $p
		mk_pod "$NODE_NS" "rm-$RUN_ID-$1" "v$1" "$4" || return 1
	done
}
if ! setup_node; then
	fail "node netns, client pod and six bookinfo pods set up"
	summary bookinfo
	exit 1
fi
ok "node netns, client pod 10.244.0.10 and bookinfo pods 10.244.0.21-26 set up"

PODS_CG=$(mk_cgroup pods)
CLIENT_CG=$(mk_cgroup pods/client)
DAEMON_CG=$(mk_cgroup ringmeshd)
for p in "${PODS[@]}"; do
	set -- $p
	mkdir -p "$TMP/$2"
	bg "back_$1" in_cg "$(mk_cgroup "pods/$1")" "rm-$RUN_ID-$1" -- "$BUILD/rm-backend" \
		--mode http --name "$2" --version "$3" --listen 0.0.0.0:9080 \
		--stats-file "$TMP/$2/$3.stats" --ready-file "$TMP/$1.ready"
done
# reviews has three versions, the others one: workshop_checks.sh's run_load compares
# v1..v3 counters, so the single-version services get checks of their own below
for p in "${PODS[@]}"; do
	set -- $p
	wait_file "$TMP/$1.ready" 5 && wait_file "$TMP/$2/$3.stats" 5 ||
		{ fail "backend $2 $3 starts"; sed 's/^/    # /' "$TMP/back_$1.log"; summary bookinfo; exit 1; }
done
ok "backends productpage v1, reviews v1/v2/v3, ratings v1, details v1 listening on :9080"

start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" \
	--include-ip-ranges 10.96.0.0/12,10.244.0.0/24 --listen 127.0.0.1:15001 \
	--pod-gateway $POD_GW --workers 2 ||
	{ fail "ringmeshd starts"; summary bookinfo; exit 1; }
ok "ringmeshd starts (include 10.96.0.0/12,10.244.0.0/24) and status says live"

rm_apply() { "$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$1"; }
rules_now() { "$BUILD/ringmesh" --pin-dir "$PIN" -j rule list; }

# stat_of SERVICE VERSION: requests_total of that backend
stat_of() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests_total"])' \
		"$TMP/$1/$2.stats"
}

# only SERVICE VERSION N [HEADER]: N GETs to the service's VIP, every one a 200 from
# VERSION, and that backend's own counter moved by N (the header is not trusted).
only() {
	local svc=$1 ver=$2 n=$3 h=() out b0 b1
	[ $# -ge 4 ] && h=(--header "$4")
	b0=$(stat_of "$svc" "$ver") || return 1
	out=$(cl_load http --connect "${VIPS[$svc]}" --count-header x-backend-version \
		--requests "$n" --conns 4 --timeout 3s --max-time 60s "${h[@]}" 2>&1) ||
		{ echo "$out"; return 1; }
	echo "$out"
	sleep 0.25 # stats files are rewritten within 5 ms of a change, and every 100 ms
	b1=$(stat_of "$svc" "$ver") || return 1
	[ "$(echo "$out" | kv errors)" = 0 ] && [ "$(echo "$out" | kv status.200)" = "$n" ] &&
		[ "$(echo "$out" | versions_of)" = "$ver=$n" ] && [ $((b1 - b0)) = "$n" ] ||
		{ echo "want $n x 200 from $svc $ver; backend counted $((b1 - b0))"; return 1; }
	echo "$n/$n to $svc $ver"
}

# ratings_get HEADER...: one GET to ratings; prints "CODE SECONDS", body in $TMP/body
ratings_get() {
	local h=() x
	for x in "$@"; do h+=(-H "$x"); done
	cl_curl -sS -o "$TMP/body" -w '%{http_code} %{time_total}\n' --max-time 15 "${h[@]}" \
		"http://${VIPS[ratings]}/ratings/0"
}

# delayed MIN MAX HEADER...: ratings answers 200 from v1 after MIN..MAX seconds
delayed() {
	local lo=$1 hi=$2 r code t; shift 2
	r=$(ratings_get "$@") || { echo "curl failed: $r"; return 1; }
	read -r code t <<<"$r"
	echo "status $code after ${t}s, body: $(head -c 200 "$TMP/body")"
	[ "$code" = 200 ] && grep -q '"v1"' "$TMP/body" || { echo "want 200 from v1"; return 1; }
	awk -v t="$t" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(t >= lo && t <= hi) }' ||
		{ echo "want ${lo}..${hi} s"; return 1; }
	echo "200 from ratings v1 after ${t}s"
}

# aborted HEADER: 20 GETs to ratings each get 500 "fault filter abort" from the proxy;
# the ratings backend serves none of them
aborted() {
	local b0 b1 i r code
	b0=$(stat_of ratings v1) || return 1
	for ((i = 0; i < 20; i++)); do
		r=$(ratings_get "$1") || { echo "curl failed: $r"; return 1; }
		code=${r%% *}
		[ "$code" = 500 ] && grep -q 'fault filter abort' "$TMP/body" ||
			{ echo "request $i: status $code, body $(head -c 200 "$TMP/body")"; return 1; }
	done
	sleep 0.25
	b1=$(stat_of ratings v1) || return 1
	[ "$b1" = "$b0" ] || { echo "the ratings backend served $((b1 - b0)) of them"; return 1; }
	echo "20/20 500 fault filter abort, ratings v1 served none"
}

# skipped_deploy: bookinfo.yaml is Kubernetes only: one skipped line, rules unchanged
skipped_deploy() {
	local before out
	before=$(rules_now) || return 1
	out=$(rm_apply "$SAMPLES/platform/kube/bookinfo.yaml" 2>&1) || { echo "$out"; return 1; }
	echo "$out"
	[ "$(rules_now)" = "$before" ] || { echo "rules changed"; return 1; }
	[ "$(echo "$out" | head -1)" = "skipped 14 documents of kinds ringmesh does not consume: 4 Service, 4 ServiceAccount, 6 Deployment" ] &&
		echo "$(echo "$out" | head -1)"
}

all_v1() { # every service -> v1, with and without jason
	local s
	for s in productpage ratings details; do
		only "$s" v1 50 || return 1
		only "$s" v1 50 "$JASON" || return 1
	done
	all_to $N v1 || return 1
	all_to $N v1 "$JASON" || return 1
	echo "productpage, ratings, details: 100/100 to v1; reviews: $N/$N to v1, with and without jason"
}

check "ServiceEntries for the four services applied" rm_apply "$SE"
wck "deploy: bookinfo.yaml (Kubernetes objects) skipped, rules unchanged" skipped_deploy

echo "# request routing"
check "apply destination-rule-all.yaml (ends with an empty document)" rm_apply "$NET/destination-rule-all.yaml"
check "apply virtual-service-all-v1.yaml (ends with an empty document)" rm_apply "$NET/virtual-service-all-v1.yaml"
wck "all-v1: every service -> v1" all_v1
check "apply virtual-service-reviews-test-v2.yaml" rm_apply "$NET/virtual-service-reviews-test-v2.yaml"
wck "reviews-test-v2: $JASON -> reviews v2" all_to $N v2 "$JASON"
wck "reviews-test-v2: no header -> reviews v1" all_to $N v1
wck "reviews-test-v2: end-user: Jason (exact, case-sensitive) -> reviews v1" all_to $N v1 'end-user: Jason'

echo "# fault injection"
check "apply virtual-service-ratings-test-delay.yaml" rm_apply "$NET/virtual-service-ratings-test-delay.yaml"
wck "ratings-test-delay: $JASON -> ratings after 7 s" delayed 6.9 8.0 "$JASON"
wck "ratings-test-delay: no header -> ratings at once" delayed 0 1 
wck "ratings-test-delay: reviews for jason still v2" all_to 50 v2 "$JASON"
check "apply virtual-service-ratings-test-abort.yaml" rm_apply "$NET/virtual-service-ratings-test-abort.yaml"
wck "ratings-test-abort: $JASON -> 500 fault filter abort" aborted "$JASON"
wck "ratings-test-abort: no header -> ratings v1" only ratings v1 50

echo "# traffic shifting"
check "apply virtual-service-all-v1.yaml again" rm_apply "$NET/virtual-service-all-v1.yaml"
wck "all-v1 again: every service -> v1 (the delay, abort and jason rules are gone)" all_v1
check "apply virtual-service-reviews-50-v3.yaml" rm_apply "$NET/virtual-service-reviews-50-v3.yaml"
wck "reviews-50-v3: 50/50 v1/v3, no v2" split $NSPLIT "v1:50 v3:50"
wck "reviews-v3: apply virtual-service-reviews-v3.yaml under load" \
	live_apply "$NET/virtual-service-reviews-v3.yaml" v3 "v1 v2"
wck "reviews-v3: no header -> all v3" all_to $N v3
wck "reviews-v3: $JASON -> all v3" all_to $N v3 "$JASON"

check "ringmeshd: clean stop exits 0" stop_ringmeshd
check "after stop: nothing attached, pinned or running" nothing_left
summary bookinfo
