#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `sudo make demo`: a small node you can watch. Builds a node network namespace with
# a client pod and a backend pod (their own namespaces, veths, pod IPs in
# 10.244.0.0/24 that exist only here), starts ringmeshd on the node, sends traffic,
# shows what was intercepted, and removes everything at the end.
set -u
BUILD=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=demo-$$
. "$here/../tests/e2e/lib.sh"
. "$here/../tests/e2e/netns.sh"
need_root
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

NODE=rm-$RUN_ID-node CLI=rm-$RUN_ID-client BACK=rm-$RUN_ID-backend
say "1. A node: netns $NODE, pods 'client' (10.244.0.10) and 'backend' (10.244.0.11, also 10.245.0.11)"
mk_node "$NODE" && mk_pod "$NODE" "$CLI" vc 10.244.0.10 && mk_pod "$NODE" "$BACK" vb 10.244.0.11 10.245.0.11 || exit 1
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd)
echo "pods' cgroup: $PODS"
bg backend in_ns "$BACK" "$BUILD/rm-backend" --mode whoami --name backend --version v1 --listen 0.0.0.0:8080 --ready-file "$TMP/ready"
wait_file "$TMP/ready" 5 || { echo "backend did not start"; exit 1; }
client() { in_cg "$CLIENT_CG" "$CLI" -- "$BUILD/rm-load" whoami --connect "$1"; }

say "2. Without ringmeshd the client reaches the backend directly (same source port both sides)"
run client 10.244.0.11:8080

say "3. Start ringmeshd on the node: intercept 10.244.0.0/24 only"
printf '$ ringmeshd --cgroup %s --include-ip-ranges 10.244.0.0/24 --pod-gateway %s\n' "$PODS" "$POD_GW"
start_ringmeshd "$DCG" "$NODE" --cgroup "$PODS" --include-ip-ranges 10.244.0.0/24 \
	--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 1 || exit 1
run "$BUILD/ringmesh" --pin-dir "$PIN" status
bpftool cgroup tree "$CG"

say "4. In range: the connection now lands in ringmeshd, which connects to the backend itself"
echo "(the backend sees the proxy's address and port, not the client's)"
run client 10.244.0.11:8080

say "5. Out of range (10.245.0.11): left alone, the backend sees the client"
run client 10.245.0.11:8080

say "6. What the data path decided"
run "$BUILD/ringmesh" --pin-dir "$PIN" stats

say "7. kill -9 ringmeshd: the heartbeat goes stale and pods fail open (direct) within a second"
kill -KILL "$RINGMESHD_PID"; wait "$RINGMESHD_PID" 2>/dev/null; RINGMESHD_PID=
sleep 1.2
run client 10.244.0.11:8080

say "8. Restart, then a clean stop: links, pins and processes all go"
start_ringmeshd "$DCG" "$NODE" --cgroup "$PODS" --include-ip-ranges 10.244.0.0/24 \
	--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 1 || exit 1
run client 10.244.0.11:8080
stop_ringmeshd
echo "attached under $CG after stop: $(attached | wc -l) programs; pin dir present: $([ -e "$PIN" ] && echo yes || echo no)"
say "Done; cleaning up the namespaces and cgroups"
