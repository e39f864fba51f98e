#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Topology (b): pods in their own network namespaces, joined by veth to a node
# namespace that runs ringmeshd; pod addresses 10.244.0.0/24 exist only inside them.
# The client pod's connection to the backend pod is rewritten to the link-local
# gateway on its veth, where ringmeshd listens.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
. "$here/l4_checks.sh"
need_root

NODE_NS=rm-$RUN_ID-node
CLIENT_NS=rm-$RUN_ID-a
BACK_NS=rm-$RUN_ID-b
mk_node "$NODE_NS" && mk_pod "$NODE_NS" "$CLIENT_NS" va 10.244.0.10 &&
	mk_pod "$NODE_NS" "$BACK_NS" vb 10.244.0.11 10.245.0.11 || { fail "node and pods set up"; summary l4-netns; exit 1; }
ok "node netns with two pods set up"

PODS_CG=$(mk_cgroup pods)
CLIENT_CG=$(mk_cgroup pods/client)
DAEMON_CG=$(mk_cgroup ringmeshd)
bg whoami in_ns "$BACK_NS" "$BUILD/rm-backend" --mode whoami --name b --version v1 --listen 0.0.0.0:8080 --ready-file "$TMP/w.ready"
bg echo in_ns "$BACK_NS" "$BUILD/rm-backend" --mode echo --name b --version v1 --listen 0.0.0.0:9000 --ready-file "$TMP/e.ready"
wait_file "$TMP/w.ready" 5 && wait_file "$TMP/e.ready" 5 || { fail "backends start"; summary l4-netns; exit 1; }
SVC_WHOAMI=10.244.0.11:8080 SVC_ECHO=10.244.0.11:9000 OUT_WHOAMI=10.245.0.11:8080
PROXY_ADDR=$POD_GW:15001

check "pod to pod works before any ringmeshd (direct)" direct "$SVC_WHOAMI"
for mode in sockmap no-sockmap; do
	extra=(--$mode) # by name, whichever the default is
	l4_suite "netns/$mode" --cgroup "$PODS_CG" --include-ip-ranges 10.244.0.0/24 \
		--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 2 "${extra[@]}"
done
summary l4-netns
