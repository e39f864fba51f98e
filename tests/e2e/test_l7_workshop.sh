#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The Istio 0.5 traffic-management workshop, end to end, at L7: the node of netns.sh
# (a node netns running ringmeshd, a client pod, the three versions of trans-service as
# pods 10.244.0.11/.12/.13), the workshop's ServiceEntry applied as is (VIP 10.96.0.20,
# routed unreachable in the pods: only interception reaches it), then the four RouteRules
# applied one after another with `ringmesh apply`, each step checked from the client:
#   rule 1 (prec 1)          every request -> v1
#   + rule 2 (prec 2)        x-dev-user: super-secret -> v2, others -> v1
#   + rule 3 (prec 3, 70/30) with and without the header 70/30 (chi-square, p = 0.001):
#                            rule 2 is shadowed
#   + rule 4 (prec 6)        every request -> v3; v3 slower than 5 s -> 504 at 5 s
# Rules 2 and 4 are applied while traffic flows (no failed request, effective within
# 1 s). Then the old rules are deleted and the same four steps are replayed with the
# modern API (one VirtualService edited step by step + a DestinationRule with subsets):
# the same outcomes. Usage: sudo [BUILD=build] tests/e2e/test_l7_workshop.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
. "$here/l4_checks.sh" # nothing_left
. "$here/workshop_checks.sh"
need_root

RULES=$here/rules
VIP=10.96.0.20:8080
HDR='x-dev-user: super-secret'
N=200      # requests per all-to-one-version check
NSPLIT=2000 # requests per weighted-split check
BSTATS_DIR=$TMP

NODE_NS=rm-$RUN_ID-node
CLIENT_NS=rm-$RUN_ID-c
workshop_node l7-workshop
workshop_backends l7-workshop

verbatim() { # the old-API files are the workshop's, byte for byte
	local f
	for f in routerule-v1 routerule-v2 routerule-v3 routerule-v4 dest-rule serviceentry; do
		cmp "/work/shared/examples/$f.yaml" "$RULES/$f.yaml" || return 1
	done
	echo "identical"
}
if [ -d /work/shared/examples ]; then
	check "rules/: workshop files are verbatim copies of the examples" verbatim
else
	skip "rules/: no /work/shared/examples to compare the workshop files with"
fi

pod_answers() { # ADDR:PORT VERSION: a GET by pod IP is answered by that version
	local out
	out=$(cl_load http --connect "$1" --requests 5 --timeout 3s 2>&1) || { echo "$out"; return 1; }
	echo "$out"
	[ "$(echo "$out" | versions_of)" = "$2=5" ] && echo "5/5 answered by $2"
}
vip_unreachable() { # fails, and fast: routed unreachable, nothing leaves the namespaces
	local t0 t1 out rc
	t0=$(now_ns)
	out=$(cl_load http --connect "$VIP" --requests 1 --timeout 2s 2>&1)
	rc=$?
	t1=$(now_ns)
	echo "$out"
	echo "rm-load exit $rc after $(((t1 - t0) / 1000000)) ms"
	[ $rc -ne 0 ] && [ $(((t1 - t0) / 1000000)) -lt 1500 ]
}
for i in 1 2 3; do
	wck "before ringmeshd: pod 10.244.0.1$i answers as v$i" pod_answers 10.244.0.1$i:8080 v$i
done
wck "before ringmeshd: VIP $VIP is unreachable (no interception, fails fast)" vip_unreachable

start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" \
	--include-ip-ranges 10.96.0.0/12,10.244.0.0/24 --listen 127.0.0.1:15001 \
	--pod-gateway $POD_GW --workers 2 ||
	{ fail "ringmeshd starts"; summary l7-workshop; exit 1; }
ok "ringmeshd starts (include 10.96.0.0/12,10.244.0.0/24) and status says live"

rm_apply() { "$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$1"; }
rm_delete() { "$BUILD/ringmesh" --pin-dir "$PIN" delete -f "$1"; }
service_declared() {
	local s e
	s=$("$BUILD/ringmesh" --pin-dir "$PIN" service list) || return 1
	e=$("$BUILD/ringmesh" --pin-dir "$PIN" endpoint list) || return 1
	echo "$s"; echo "$e"
	echo "$s" | grep -q '10\.96\.0\.20 .*8080/HTTP' &&
		[ "$(echo "$e" | grep -c '^10\.244\.0\.1[123]:8080 ')" -eq 3 ]
}
no_rules() {
	local out; out=$("$BUILD/ringmesh" --pin-dir "$PIN" rule list) || return 1
	echo "$out"
	echo "$out" | grep -q '^no rules'
}

check "ServiceEntry (serviceentry.yaml, as is) applied" rm_apply "$RULES/serviceentry.yaml"
check "service list: 10.96.0.20 8080/HTTP; endpoint list: the three pods" service_declared

# workshop API STEP1 STEP2 STEP3 STEP4: the four steps and their checks.
workshop() {
	local api=$1 s1=$2 s2=$3 s3=$4 s4=$5
	check "$api/step 1: apply $(basename "$s1")" rm_apply "$s1"
	wck "$api/step 1: no header -> all v1" all_to $N v1
	wck "$api/step 1: $HDR -> all v1 (no header rule yet)" all_to $N v1 "$HDR"

	wck "$api/step 2: apply $(basename "$s2") under load with $HDR" \
		live_apply "$s2" v2 v1 "$HDR"
	wck "$api/step 2: $HDR -> all v2" all_to $N v2 "$HDR"
	wck "$api/step 2: no header -> all v1" all_to $N v1
	wck "$api/step 2: x-dev-user: Super-Secret (values are case-sensitive) -> all v1" \
		all_to $N v1 'x-dev-user: Super-Secret'
	wck "$api/step 2: x-dev-user: super-secret-2 (exact, not prefix) -> all v1" \
		all_to $N v1 'x-dev-user: super-secret-2'

	check "$api/step 3: apply $(basename "$s3")" rm_apply "$s3"
	wck "$api/step 3: no header -> 70/30" split $NSPLIT "v1:70 v2:30"
	wck "$api/step 3: $HDR -> 70/30 too (step 2 shadowed)" split $NSPLIT "v1:70 v2:30" "$HDR"

	wck "$api/step 4: apply $(basename "$s4") under load" live_apply "$s4" v3 "v1 v2"
	wck "$api/step 4: no header -> all v3" all_to $N v3
	wck "$api/step 4: $HDR -> all v3" all_to $N v3 "$HDR"
	wck "$api/step 4: v3 answers after 1 s, inside the 5 s timeout -> 200" slow_but_in_time 1s v3
	wck "$api/step 4: v3 slower (6 s) than the 5 s timeout -> 504" times_out_504 6s 5
	wck "$api/step 4: pod IP 10.244.0.11 (in range, not a VIP) still reaches v1" \
		pod_answers 10.244.0.11:8080 v1
}

# Old API. The DestinationPolicy (circuit breaker on v3) goes in first so that the
# bulkhead step runs under it, as in the workshop.
check "old/dest-rule.yaml (DestinationPolicy, as is) accepted" rm_apply "$RULES/dest-rule.yaml"
workshop old "$RULES/routerule-v1.yaml" "$RULES/routerule-v2.yaml" "$RULES/routerule-v3.yaml" \
	"$RULES/routerule-v4.yaml"

clear_old() {
	local f
	for f in routerule-v4 routerule-v3 routerule-v2 routerule-v1 dest-rule; do
		rm_delete "$RULES/$f.yaml" || return 1
	done
}
check "old: ringmesh delete -f the four RouteRules and the DestinationPolicy" clear_old
check "old: rule list is empty afterwards" no_rules

# Modern API: subsets first (a VirtualService naming an undefined subset is refused).
check "modern/destinationrule.yaml (subsets v1/v2/v3, v3 breaker) applied" \
	rm_apply "$RULES/destinationrule.yaml"
workshop modern "$RULES/vs-step1-default.yaml" "$RULES/vs-step2-featureflag.yaml" \
	"$RULES/vs-step3-canary.yaml" "$RULES/vs-step4-bulkhead.yaml"

check "ringmeshd: clean stop exits 0" stop_ringmeshd
check "after stop: nothing attached, pinned or running" nothing_left
summary l7-workshop
