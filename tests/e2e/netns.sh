# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A node built only of namespaces this run creates: a "node" netns (runs ringmeshd,
# forwards between pods) and one netns per pod joined to it by a veth, routed as a
# Calico-like CNI does: no address on any veth, pod subnets on-link in the pod, the
# node's veth answering ARP for them (proxy_arp) and holding a /32 route per pod.
# The pod gateway 169.254.7.1 (where connect4 sends other-netns pods) is only a host
# route in each pod: the node owns the address on ringmeshd's own dummy interface
# (--gateway-dev), so nothing answers it while no ringmeshd runs. No namespace has a
# default route; service VIPs are routed unreachable, so a missed interception fails
# fast instead of leaving the machine.
POD_GW=169.254.7.1

mk_netns() {
	ip netns add "$1" || return 1
	NETNS+=("$1")
	ip -n "$1" link set lo up
}

# mk_node NAME
mk_node() {
	mk_netns "$1" || return 1
	ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
	ip -n "$1" route add unreachable 10.96.0.0/12
}

# mk_pod NODE POD VETH IP [EXTRA_IP...]
mk_pod() {
	local node=$1 pod=$2 veth=$3 ip=$4; shift 4
	mk_netns "$pod" || return 1
	ip -n "$node" link add "$veth" type veth peer name eth0 netns "$pod" || return 1
	ip netns exec "$node" sysctl -qw net.ipv4.conf."$veth".proxy_arp=1 \
		net.ipv4.neigh."$veth".proxy_delay=0
	ip -n "$node" link set "$veth" up
	ip -n "$pod" link set eth0 up
	for a in "$ip" "$@"; do
		ip -n "$pod" addr add "$a/32" dev eth0
		ip -n "$node" route add "$a/32" dev "$veth"
	done
	ip -n "$pod" route add $POD_GW dev eth0 scope link
	ip -n "$pod" route add 10.244.0.0/16 dev eth0 scope link
	ip -n "$pod" route add 10.245.0.0/16 dev eth0 scope link
	ip -n "$pod" route add unreachable 10.96.0.0/12
}

# in_ns NS cmd...: run in a netns keeping /sys (bpffs, cgroups) visible.
in_ns() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" "$@"; }

# The node netns NODE_NS=rm-$RUN_ID-node, the client pod CLIENT_NS=rm-$RUN_ID-c at
# 10.244.0.10 and N backend pods rm-$RUN_ID-b1..bN at 10.244.0.11.. (N <= 9), the last
# with EXTRA_IP addresses too, then the cgroups PODS_CG, CLIENT_CG, DAEMON_CG. SUITE
# names the summary printed when they cannot be built (the suite then exits).
backend_node() { # SUITE N [EXTRA_IP...]
	local suite=$1 n=$2 i
	shift 2
	NODE_NS=rm-$RUN_ID-node CLIENT_NS=rm-$RUN_ID-c
	if mk_node "$NODE_NS" && mk_pod "$NODE_NS" "$CLIENT_NS" vc 10.244.0.10; then
		for ((i = 1; i <= n; i++)); do
			if [ $i -lt "$n" ]; then
				mk_pod "$NODE_NS" "rm-$RUN_ID-b$i" vb$i 10.244.0.1$i || break
			else
				mk_pod "$NODE_NS" "rm-$RUN_ID-b$i" vb$i 10.244.0.1$i "$@" || break
			fi
		done
		if [ "$i" -gt "$n" ]; then
			PODS_CG=$(mk_cgroup pods)
			CLIENT_CG=$(mk_cgroup pods/client)
			DAEMON_CG=$(mk_cgroup ringmeshd)
			return 0
		fi
	fi
	fail "node and pods set up"
	summary "$suite"
	exit 1
}

# The workshop's node, shared by the suites that route trans-service: the node netns
# $NODE_NS, the client pod $CLIENT_NS at 10.244.0.10 and three backend pods
# rm-$RUN_ID-v1..v3 at 10.244.0.11-13, then the cgroups PODS_CG, CLIENT_CG, DAEMON_CG.
# SUITE names the summary printed when the node cannot be built (the suite then exits).
workshop_pods() {
	mk_node "$NODE_NS" && mk_pod "$NODE_NS" "$CLIENT_NS" vc 10.244.0.10 || return 1
	local i
	for i in 1 2 3; do mk_pod "$NODE_NS" "rm-$RUN_ID-v$i" vb$i 10.244.0.1$i || return 1; done
}
workshop_node() {
	if ! workshop_pods; then
		fail "node netns, client pod and three backend pods set up"
		summary "$1"
		exit 1
	fi
	ok "node netns, client pod 10.244.0.10 and backend pods 10.244.0.11/.12/.13 set up"
	PODS_CG=$(mk_cgroup pods)
	CLIENT_CG=$(mk_cgroup pods/client)
	DAEMON_CG=$(mk_cgroup ringmeshd)
}

# trans-service v1..v3 (rm-backend, HTTP on :8080) in the workshop's backend pods, stats
# in $BSTATS_DIR; SUITE as above.
workshop_backends() {
	local i
	for i in 1 2 3; do
		bg back_v$i in_cg "$(mk_cgroup pods/v$i)" "rm-$RUN_ID-v$i" -- "$BUILD/rm-backend" \
			--mode http --name trans-service --version v$i --listen 0.0.0.0:8080 \
			--stats-file "$BSTATS_DIR/v$i.stats" --ready-file "$TMP/v$i.ready"
	done
	for i in 1 2 3; do
		wait_file "$TMP/v$i.ready" 5 && wait_file "$BSTATS_DIR/v$i.stats" 5 || {
			fail "backend v$i starts"
			sed 's/^/    # /' "$TMP/back_v$i.log"
			summary "$1"
			exit 1
		}
	done
	ok "backends trans-service v1, v2, v3 listening on :8080 in their pods"
}
