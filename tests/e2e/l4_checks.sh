# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The L4 interception checks both topologies run. Expects from the caller:
#   CLIENT_CG CLIENT_NS  where the client pod runs (NS empty = machine's netns)
#   SVC_WHOAMI SVC_ECHO  in-range service addresses (ADDR:PORT) of whoami/echo backends
#   OUT_WHOAMI           an out-of-range address of the whoami backend
#   PROXY_ADDR           the proxy listener as a non-pod process reaches it
#   NODE_NS              netns of the daemon ("" = machine's netns)

# Topology (a)'s cgroups, in the machine's netns (CLIENT_NS, NODE_NS empty): the pods'
# (PODS_CG), the client pod's (CLIENT_CG) and the daemon's, outside the pods (DAEMON_CG).
rootns_cgroups() {
	PODS_CG=$(mk_cgroup pods)
	CLIENT_CG=$(mk_cgroup pods/client)
	DAEMON_CG=$(mk_cgroup ringmeshd)
	CLIENT_NS= NODE_NS=
}

client() { in_cg "$CLIENT_CG" "$CLIENT_NS" -- "$BUILD/rm-load" "$@"; }

# whoami_ports ADDR:PORT -> "client_port backend_seen_port backend_seen_ip"
whoami_ports() {
	local out cl peer
	out=$(client whoami --connect "$1" 2>&1) || { echo "whoami failed: $out" >&2; return 1; }
	cl=$(printf '%s\n' "$out" | sed -n 's/.*client_local=[^ ]*:\([0-9]*\).*/\1/p' | head -1)
	peer=$(printf '%s\n' "$out" | sed -n 's/.*peer=\([^ ]*\):\([0-9]*\).*/\2 \1/p' | head -1)
	[ -n "$cl" ] && [ -n "$peer" ] || { echo "unparsable whoami output: $out" >&2; return 1; }
	echo "$cl $peer"
}

via_proxy() { # the backend saw someone else's port: the proxy's upstream connection
	local r; r=$(whoami_ports "$1") || return 1
	set -- $r
	echo "client port $1, backend saw $3:$2"
	[ "$1" != "$2" ]
}
direct() { # the backend saw the client's own port
	local r; r=$(whoami_ports "$1") || return 1
	set -- $r
	echo "client port $1, backend saw $3:$2"
	[ "$1" = "$2" ]
}
dpstat() { # NAME: a data-path decision counter, via the CLI's JSON
	"$BUILD/ringmesh" --pin-dir "$PIN" -j stats |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["datapath"][sys.argv[1]])' "$1"
}
only_clients_redirected() { # N: the proxy's own upstream connections were not intercepted
	local n; n=$(dpstat redirected) || return 1
	echo "redirected=$n, expected $1 (one per client connection; a looped upstream would add more)"
	[ "$n" = "$1" ]
}
bulk_10m() { client bulk --connect "$1" --bytes 10M; }
refused() { # a connection to the proxy port with no original destination gets no bytes
	local out
	if [ -n "$NODE_NS" ]; then
		out=$(nsenter --net=/run/netns/"$NODE_NS" "$BUILD/rm-load" whoami --connect "$PROXY_ADDR" 2>&1)
	else
		out=$("$BUILD/rm-load" whoami --connect "$PROXY_ADDR" 2>&1)
	fi
	local rc=$?
	echo "$out"
	[ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q 'peer='
}
one_of_each() { # exactly one connect4 and one sockops on the pods, at most one getsockopt
	local a; a=$(attached)
	echo "$a"
	[ "$(echo "$a" | grep -c ' cgroup_inet4_connect$')" -eq 1 ] &&
		[ "$(echo "$a" | grep -c ' cgroup_sock_ops$')" -eq 1 ] &&
		[ "$(echo "$a" | grep -c ' cgroup_getsockopt$')" -le 1 ]
}
nothing_left() {
	local a; a=$(attached)
	[ -z "$a" ] || { echo "still attached: $a"; return 1; }
	[ ! -e "$PIN" ] || { echo "pin dir left: $(ls "$PIN")"; return 1; }
	! pgrep -f -- "ringmeshd --pin-dir $PIN" >/dev/null || { echo "ringmeshd still running"; return 1; }
	[ -z "${NODE_NS:-}" ] || ! ip -n "$NODE_NS" link show ringmesh0 >/dev/null 2>&1 ||
		{ echo "gateway interface ringmesh0 left in $NODE_NS"; return 1; }
}
# The pod gateway is on ringmeshd's own interface in the node netns, on no veth.
gateway_on_own_dev() {
	ip -n "$NODE_NS" -4 -o addr show dev ringmesh0 | grep -q " $POD_GW/32 " ||
		{ ip -n "$NODE_NS" -4 -o addr; return 1; }
	[ "$(ip -n "$NODE_NS" -4 -o addr show | grep -c " $POD_GW/")" -eq 1 ] ||
		{ ip -n "$NODE_NS" -4 -o addr; return 1; }
}
fail_open_within_2s() {
	local t0 t1 i
	t0=$(date +%s%N)
	for ((i = 0; i < 40; i++)); do
		if direct "$SVC_WHOAMI" >/dev/null 2>&1; then
			t1=$(date +%s%N)
			echo "direct after $(((t1 - t0) / 1000000)) ms"
			[ $(((t1 - t0) / 1000000)) -le 2000 ]
			return
		fi
		sleep 0.1
	done
	echo "still not direct after 4 s"
	return 1
}

# l4_suite LABEL DAEMON_ARGS...: the whole life cycle with one daemon configuration.
l4_suite() {
	local label=$1; shift
	start_ringmeshd "$DAEMON_CG" "$NODE_NS" "$@" || { fail "$label: ringmeshd starts"; return; }
	ok "$label: ringmeshd starts and status says live"
	[ -z "${NODE_NS:-}" ] ||
		check "$label: $POD_GW on ringmeshd's ringmesh0 only, on no veth" gateway_on_own_dev
	check "$label: in-range connection goes through the proxy" via_proxy "$SVC_WHOAMI"
	check "$label: 10 MiB echo through the proxy is byte-exact" bulk_10m "$SVC_ECHO"
	check "$label: only the 2 client connections were redirected, not the proxy's upstream" \
		only_clients_redirected 2
	check "$label: out-of-range connection is not intercepted" direct "$OUT_WHOAMI"
	check "$label: proxy port without original destination is refused" refused
	check "$label: exactly one connect4 and one sockops attached" one_of_each
	kill -KILL "$RINGMESHD_PID"; wait "$RINGMESHD_PID" 2>/dev/null; RINGMESHD_PID=
	check "$label: after kill -9, connections go direct within 2 s" fail_open_within_2s
	start_ringmeshd "$DAEMON_CG" "$NODE_NS" "$@" || { fail "$label: restart after crash"; return; }
	check "$label: restart after a crash replaces, no duplicate attachments" one_of_each
	check "$label: after restart, in-range goes through the proxy again" via_proxy "$SVC_WHOAMI"
	check "$label: clean stop exits 0" stop_ringmeshd
	check "$label: after clean stop nothing attached, pinned or running" nothing_left
}
