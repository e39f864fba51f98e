#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `sudo make demo`: a small node you can watch. Builds a node network namespace with a
# client pod and three backend pods (trans-service v1, v2, v3; their own namespaces and
# veths, pod IPs that exist only here), starts ringmeshd on the node, shows interception,
# then loads the Istio workshop rules and shows L7 routing; fail-open after kill -9; and
# removes everything at the end.
set -u
BUILD=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
RULES=$here/../tests/e2e/rules
RUN_ID=demo-$$
. "$here/../tests/e2e/lib.sh"
. "$here/../tests/e2e/netns.sh"
need_root
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
rmcli() { printf '\033[2m$ ringmesh %s\033[0m\n' "$*"; "$BUILD/ringmesh" --pin-dir "$PIN" "$@"; }

NODE=rm-$RUN_ID-node CLI=rm-$RUN_ID-client
say "1. A node (netns $NODE): pod 'client' 10.244.0.10, pods trans-service v1/v2/v3 at 10.244.0.11-13"
mk_node "$NODE" && mk_pod "$NODE" "$CLI" vc 10.244.0.10 || exit 1
for v in 1 2 3; do
	ip=10.244.0.1$v; extra=; [ $v = 1 ] && extra=10.245.0.11
	mk_pod "$NODE" "rm-$RUN_ID-v$v" "v$v" $ip $extra || exit 1
	bg "v$v" in_ns "rm-$RUN_ID-v$v" "$BUILD/rm-backend" --mode http --name trans-service \
		--version v$v --listen 0.0.0.0:8080 --ready-file "$TMP/v$v.ready"
done
for v in 1 2 3; do wait_file "$TMP/v$v.ready" 5 || { echo "backend v$v did not start"; exit 1; }; done
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd)
echo "pods' cgroup: $PODS"
# who URL [curl args]: which backend answered, and the client address it saw
who() {
	local out
	out=$(in_cg "$CLIENT_CG" "$CLI" -- curl -s -m 3 "$@") || { echo "  (no answer: curl exit $?)"; return; }
	printf '  answered by %s %s, which saw the client as %s\n' \
		"$(echo "$out" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')" \
		"$(echo "$out" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')" \
		"$(echo "$out" | sed -n 's/.*"peer":"\([^"]*\)".*/\1/p')"
}
split() { # N requests to the VIP [header]: count answers by version
	local h=(); [ $# -gt 1 ] && h=(--header "$2")
	in_cg "$CLIENT_CG" "$CLI" -- "$BUILD/rm-load" http --connect 10.96.0.20:8080 --requests "$1" \
		--conns 4 --count-header x-backend-version "${h[@]}" | tr ' ' '\n' | grep -E '^(version|status)\.' | tr '\n' ' '
	echo
}
start() {
	start_ringmeshd "$DCG" "$NODE" --cgroup "$PODS" --include-ip-ranges 10.96.0.0/12,10.244.0.0/24 \
		--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 1
}

say "2. Without ringmeshd the client reaches a pod directly: it sees the client's own address"
who http://10.244.0.11:8080/

say "3. Start ringmeshd on the node: intercept 10.96.0.0/12 (services) and 10.244.0.0/24 (pods)"
printf '\033[2m$ ringmeshd --cgroup %s --include-ip-ranges 10.96.0.0/12,10.244.0.0/24\033[0m\n' "$PODS"
start || exit 1
rmcli status
bpftool cgroup tree "$CG"

say "4. In range: the connection lands in ringmeshd, which connects to the pod itself"
who http://10.244.0.11:8080/
echo "Out of range (10.245.0.11) is left alone:"
who http://10.245.0.11:8080/

say "5. Declare trans-service (VIP 10.96.0.20:8080, three versions) with a ServiceEntry"
rmcli apply -f "$RULES/serviceentry.yaml"
echo "No rules yet: the VIP is served by all endpoints in turn"
split 30

say "6. The Istio 0.5 workshop rules, as users wrote them"
rmcli apply -f "$RULES/routerule-v1.yaml"
echo "rule 1 (precedence 1): everything to v1"; split 30
rmcli apply -f "$RULES/routerule-v2.yaml"
echo "rule 2 (precedence 2): x-dev-user: super-secret goes to v2"
split 30 "x-dev-user: super-secret"; split 30
rmcli apply -f "$RULES/routerule-v3.yaml"
echo "rule 3 (precedence 3): canary 70/30 for everyone (it shadows rule 2)"; split 1000
rmcli rule list
rmcli rule show trans-service-canary
rmcli apply -f "$RULES/routerule-v4.yaml"
echo "rule 4 (precedence 6): everything to v3, 5 s timeout; v3 taking 6 s gets a 504 at 5 s:"
in_cg "$CLIENT_CG" "$CLI" -- curl -s -m 10 -o /dev/null -w '  HTTP %{http_code} after %{time_total} s\n' \
	-H 'x-rm-delay: 6s' http://10.96.0.20:8080/

say "7. Metrics, read from the pinned maps"
rmcli stats

say "8. kill -9 ringmeshd: the heartbeat goes stale and pods fail open within a second"
kill -KILL "$RINGMESHD_PID"; wait "$RINGMESHD_PID" 2>/dev/null; RINGMESHD_PID=
sleep 1.2
echo "pod to pod goes direct again:"; who http://10.244.0.11:8080/
echo "(the VIP exists only in ringmesh: without it, it is unreachable, as designed)"

say "9. Restart (rules kept in the pinned maps), then a clean stop: links, pins, processes all go"
start || exit 1
split 20
stop_ringmeshd
echo "attached under $CG after stop: $(attached | wc -l) programs; pin dir present: $([ -e "$PIN" ] && echo yes || echo no)"
say "Done; removing the namespaces and cgroups"
