# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A node built only of namespaces this run creates: a "node" netns (runs ringmeshd,
# forwards between pods) and one netns per pod joined to it by a veth. Every pod
# reaches the node at the link-local gateway 169.254.7.1, which sits on the node side
# of every pod veth (the address ringmeshd's connect4 rewrite sends other-netns pods
# to). No namespace has a default route; service VIPs are routed unreachable, so a
# missed interception fails fast instead of leaving the machine.
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
	ip -n "$node" addr add $POD_GW/32 dev "$veth"
	ip -n "$node" link set "$veth" up
	ip -n "$pod" link set eth0 up
	for a in "$ip" "$@"; do
		ip -n "$pod" addr add "$a/32" dev eth0
		ip -n "$node" route add "$a/32" dev "$veth"
	done
	ip -n "$pod" route add $POD_GW dev eth0 scope link
	ip -n "$pod" route add 10.244.0.0/16 via $POD_GW dev eth0 onlink
	ip -n "$pod" route add 10.245.0.0/16 via $POD_GW dev eth0 onlink
	ip -n "$pod" route add unreachable 10.96.0.0/12
}

# in_ns NS cmd...: run in a netns keeping /sys (bpffs, cgroups) visible.
in_ns() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" "$@"; }
