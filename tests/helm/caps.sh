#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The chart's capability set, on a real kernel: ringmeshd started with the arguments
# the chart renders (cgroup, pin dir and ports swapped for this run's own) and with
# only the capabilities the chart's securityContext adds (uid 0, every other one out
# of the bounding set, no_new_privs, as the container runtime does) must attach and
# get ready and proxy a pod's connections (and the CLI, as `kubectl exec` runs it,
# must read its maps); without any one of them it must fail. So the set is both
# sufficient and minimal. Uses the end-to-end harness (own cgroup subtree and pin dir, the e2e lock,
# cleanup on every exit).
#   tests/helm/caps.sh RENDERED.yaml [BUILD]
set -u
rendered=$1
BUILD=${2:-build}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../e2e/lib.sh"
. "$here/../e2e/l4_checks.sh"
need_root
command -v setpriv >/dev/null || { echo "skip: no setpriv (util-linux)"; exit 77; }

PODS_CG=$(mk_cgroup pods)
CLIENT_CG=$(mk_cgroup pods/client)
DAEMON_CG=$(mk_cgroup ringmeshd)
CLIENT_NS= NODE_NS=
P1=$(free_port) P2=$(free_port)
bg whoami "$BUILD/rm-backend" --mode whoami --name b1 --version v1 --listen 127.96.0.20:$P1 --ready-file "$TMP/w.ready"
bg echo "$BUILD/rm-backend" --mode echo --name b1 --version v1 --listen 127.96.0.21:$P2 --ready-file "$TMP/e.ready"
wait_file "$TMP/w.ready" 5 && wait_file "$TMP/e.ready" 5 || { fail "backends start"; summary caps; exit 1; }
SVC_WHOAMI=127.96.0.20:$P1 SVC_ECHO=127.96.0.21:$P2
caps=$(python3 "$here/check_rendered.py" "$rendered" - caps) || exit 1
mapfile -t chart_args < <(python3 "$here/check_rendered.py" "$rendered" - args)
# The rendered line with this run's node: the flags the chart points at the host's
# cgroup2, bpffs and ports are replaced, every other one kept.
args=()
for ((i = 0; i < ${#chart_args[@]}; i++)); do
	case ${chart_args[i]} in
	--cgroup | --pin-dir | --metrics-listen | --pod-gateway | --listen | --include-ip-ranges | --gateway-dev) i=$((i + 1)) ;;
	*) args+=("${chart_args[i]}") ;;
	esac
done
PORT=$(free_port)
MPORT=$(free_port)
args+=(--cgroup "$PODS_CG" --include-ip-ranges 127.96.0.0/16 --listen "127.0.0.1:$PORT" --pod-gateway 127.0.0.7
	--metrics-listen "127.0.0.1:$MPORT" --gateway-dev off) # no interface in the machine's netns

run_with() { # caps ("+bpf,+net_admin"): start, wait for ready or exit; 0 if ready
	: >"$TMP/ringmeshd.log"
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$DAEMON_CG" \
		setpriv --no-new-privs --inh-caps=-all --bounding-set="-all,$1" \
		"$BUILD/ringmeshd" --pin-dir "$PIN" "${args[@]}" >>"$TMP/ringmeshd.log" 2>&1 8>&- &
	RINGMESHD_PID=$!
	local i
	for ((i = 0; i < 50; i++)); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz/ready")" = 200 ] && return 0
		kill -0 "$RINGMESHD_PID" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
has_attach() { attached | grep -qx "$1 $2"; }
lower() { echo "$1" | tr 'A-Z' 'a-z'; }
setpriv_caps() { # BPF,NET_ADMIN -> +bpf,+net_admin
	local c out=
	for c in ${1//,/ }; do out+=",+$(lower "$c")"; done
	echo "${out#,}"
}

# The sync container's set: `ringmesh sync` with the rendered flags (pin dir, cgroup and
# node swapped for this run's) and only its capabilities, against the API double over
# plain HTTP, must publish the API's 3,000 Services into the daemon's maps (more than the
# configuration map the daemon starts with holds: the sync must create a bigger one,
# which is what CAP_BPF is for; opening and writing existing pins needs none on kernels
# from 6.5 on); without any one of them it must not.
scaps=$(python3 "$here/check_rendered.py" "$rendered" - sync-caps 2>/dev/null)
mapfile -t sync_args < <(python3 "$here/check_rendered.py" "$rendered" - sync-args 2>/dev/null)
sargs=()
for ((i = 0; i < ${#sync_args[@]}; i++)); do
	case ${sync_args[i]} in
	--pin-dir | --cgroup | --node-name) i=$((i + 1)) ;;
	sync) ;;
	*) sargs+=("${sync_args[i]}") ;;
	esac
done
sync_with() { # setpriv caps: run the sync up to 5 s; 0 when the API's Service reached the maps
	local ok=1 i
	setpriv --no-new-privs --inh-caps=-all --bounding-set="-all${1:+,$1}" \
		"$BUILD/ringmesh" --pin-dir "$PIN" sync "${sargs[@]}" --kubeconfig "$TMP/kubeconfig" \
		--node-name node-1 --cgroup "$PODS_CG" --status-file "$TMP/sync.json" \
		>"$TMP/sync.log" 2>&1 8>&- &
	local pid=$!
	for ((i = 0; i < 50; i++)); do
		if "$BUILD/ringmesh" --pin-dir "$PIN" service list 2>/dev/null |
			grep -q "svc-2999.ns-29.svc"; then
			ok=0; break
		fi
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
	return $ok
}
sync_caps_check() {
	[ -n "$scaps" ] || { echo "# no sync container rendered"; return 0; }
	local api ctl drop rest
	api=$(free_port) ctl=$(free_port)
	printf 'apiVersion: v1\nkind: Config\ncurrent-context: d\nclusters:\n- name: d\n  cluster: {server: "http://127.0.0.1:%s"}\ncontexts:\n- name: d\n  context: {cluster: d, user: u}\nusers:\n- name: u\n  user: {token: t1}\n' \
		"$api" >"$TMP/kubeconfig"
	bg double python3 "$here/../k8s/apiserver.py" serve --port "$api" --control-port "$ctl" \
		--token t1 --ready-file "$TMP/double.ready" --generate 3000,6000,3000
	wait_file "$TMP/double.ready" 10 || { fail "API double starts"; return; }
	# the refusals first: the maps still hold nothing of the API
	for drop in ${scaps//,/ }; do
		rest=$(echo ",$scaps," | sed "s/,$drop,/,/; s/^,//; s/,$//")
		if sync_with "$(setpriv_caps "$rest")"; then
			fail "without $drop the sync still publishes: the chart need not add it"
		else
			ok "without $drop the sync cannot publish ($(grep -m1 -i 'error\|denied\|permitted' "$TMP/sync.log" | cut -c1-120))"
		fi
	done
	if sync_with "$(setpriv_caps "$scaps")"; then
		ok "sync with only its capabilities ($scaps) publishes the API's 3,000 Services"
	else
		fail "sync with only its capabilities ($scaps) publishes the API's 3,000 Services"
		sed 's/^/    # /' "$TMP/sync.log" | tail -5
	fi
}

echo "# chart adds: $caps; args: ${args[*]}"
if run_with "$(setpriv_caps "$caps")"; then
	ok "ready with only the chart's capabilities ($caps)"
	eff=$(awk '/^CapEff:/ { print $2 }' /proc/"$RINGMESHD_PID"/status)
	want=$(setpriv --bounding-set="-all,$(setpriv_caps "$caps")" awk '/^CapBnd:/ { print $2 }' /proc/self/status)
	check "effective capabilities are the chart's ($eff)" [ "$eff" = "$want" ]
	check "connect4 attached to the pods' cgroup" has_attach "$PODS_CG" cgroup_inet4_connect
	check "sockops attached to the pods' cgroup" has_attach "$PODS_CG" cgroup_sock_ops
	# What runs after the load needs nothing more: proxying, and the CLI as
	# `kubectl exec` runs it in the container (same capabilities).
	check "a pod's connection goes through the proxy" via_proxy "$SVC_WHOAMI"
	check "10 MiB echo through the proxy is byte-exact" bulk_10m "$SVC_ECHO"
	check "ringmesh status, with the same capabilities, says live" \
		setpriv --no-new-privs --inh-caps=-all --bounding-set="-all,$(setpriv_caps "$caps")" \
		"$BUILD/ringmesh" --pin-dir "$PIN" status
	check "ringmesh stats, with the same capabilities, counts the redirects" \
		sh -c 'setpriv --no-new-privs --inh-caps=-all --bounding-set="$1" "$2" --pin-dir "$3" -j stats |
			python3 -c "import json,sys; n = json.load(sys.stdin)[\"datapath\"][\"redirected\"]; print(\"redirected\", n); sys.exit(n < 2)"' \
		sh "-all,$(setpriv_caps "$caps")" "$BUILD/ringmesh" "$PIN"
	sync_caps_check
	stop_ringmeshd
	check "a clean stop exits 0" [ $? -eq 0 ]
	check "and leaves nothing attached" [ -z "$(attached)" ]
	check "nor pinned" [ ! -e "$PIN" ]
else
	fail "ready with only the chart's capabilities ($caps)"
	sed 's/^/    # /' "$TMP/ringmeshd.log" | tail -10
	stop_ringmeshd
fi
for drop in ${caps//,/ }; do
	rest=$(echo ",$caps," | sed "s/,$drop,/,/; s/^,//; s/,$//")
	if run_with "$(setpriv_caps "$rest")"; then
		fail "without $drop ringmeshd still starts: the chart need not add it"
	else
		why=$(grep -m1 -E 'ringmeshd: ' "$TMP/ringmeshd.log" | cut -c1-150)
		ok "without $drop it refuses to start (${why:-no message})"
	fi
	stop_ringmeshd >/dev/null 2>&1
	rm -rf "$PIN"
done
check "nothing attached after the refused starts" [ -z "$(attached)" ]
summary caps
