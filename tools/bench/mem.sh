#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Memory benchmark (not a test): resident memory of ringmeshd (1 worker, L7) and of
# HAProxy (nbthread 1) while a client holds N idle keep-alive connections, each after
# one small GET, in a network namespace of its own. Reports VmRSS and RssAnon
# (/proc/PID/status) idle, at each step, and 3 s after every connection closed, then
# the cost per idle connection between the first and the last step.
# Usage: sudo tools/bench/mem.sh [BUILD] [STEPS]     (STEPS default 1000,4000,8000: a worker has 8192 slots, HAProxy
# gets maxconn 9500 under the 20000-descriptor hard limit here)
set -u
BUILD=${1:-build}
STEPS=${2:-1000,4000,8000}
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=benchm-$$
. "$here/../../tests/e2e/lib.sh"
. "$here/../../tests/e2e/netns.sh"
. "$here/lib.sh" # wait_listen, stop_cg
need_root
command -v haproxy >/dev/null || { echo "haproxy missing: make deps"; exit 1; }
case "$STEPS" in *[!0-9,]* | "") echo "usage: $0 [BUILD] [N,N,...]"; exit 2;; esac
for n in ${STEPS//,/ }; do
	[ "$n" -ge 1 ] && [ "$n" -le 20000 ] || { echo "steps 1..20000"; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null  # the client holds up to 20000 sockets

NS=rm-$RUN_ID
mk_netns "$NS" || exit 1
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd)
BACK_CG=$(mk_cgroup servers/backend) HAP_CG=$(mk_cgroup servers/haproxy)
VIP=127.96.0.20 B1=127.96.0.21 HAP=127.96.0.30 PORT=8080 LP=15001

bg backend in_cg "$BACK_CG" "$NS" -- "$BUILD/rm-backend" --mode http --name bench --version v1 \
	--listen $B1:$PORT --ready-file "$TMP/b.ready"
wait_file "$TMP/b.ready" 5 || { echo "backend did not start"; cat "$TMP/backend.log"; exit 1; }

cat >"$TMP/haproxy.cfg" <<EOC
global
	nbthread 1
	maxconn 9500
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 120s
	timeout server 120s
	timeout http-keep-alive 120s
frontend fe
	bind $HAP:$PORT
	default_backend be
backend be
	server v1 $B1:$PORT
EOC
cat >"$TMP/rules.yaml" <<EOC
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bench
  namespace: bench
spec:
  hosts: [bench.bench.svc.cluster.local]
  addresses: [$VIP]
  ports: [{number: $PORT, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: $B1, ports: {http: $PORT}, labels: {app: bench, version: v1}}
EOC

kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
rss() { echo "$(kib "$1" VmRSS)/$(kib "$1" RssAnon)"; } # KiB VmRSS/RssAnon

declare -A M
# run NAME PID HOST: idle, each step, after close (VmRSS/RssAnon KiB)
run() {
	local name=$1 pid=$2 host=$3 line
	sleep 1
	M[$name,idle]=$(rss "$pid")
	coproc CL { in_cg "$CLIENT_CG" "$NS" -- timeout 600 python3 "$here/mem_client.py" \
		"$host" $PORT "$STEPS" 2>"$TMP/client.$name.err"; }
	local cpid=$CL_PID
	while read -r line <&"${CL[0]}"; do
		case $line in
		at\ *)
			set -- $line
			sleep 1
			M[$name,$2]=$(rss "$pid")
			M[$name,$2,c]="${3#ok=} ok, ${4#failed=} failed"
			echo "  $name at $2: ${M[$name,$2]} KiB (${M[$name,$2,c]})"
			echo >&"${CL[1]}"
			;;
		closed)
			sleep 3
			M[$name,closed]=$(rss "$pid")
			echo >&"${CL[1]}"
			;;
		esac
	done
	wait "$cpid" 2>/dev/null
	grep -m3 . "$TMP/client.$name.err" | sed 's/^/    client: /'
	echo "  $name smaps_rollup after close:" $(grep -E '^(Rss|Anonymous)' "/proc/$pid/smaps_rollup")
}

echo "memory benchmark: $(uname -r), steps $STEPS, idle keep-alive connections after one GET"
bg haproxy in_cg "$HAP_CG" "$NS" -- haproxy -db -f "$TMP/haproxy.cfg"
if wait_listen $HAP:$PORT; then
	run haproxy "$(head -1 "$HAP_CG/cgroup.procs")" $HAP
else
	echo "haproxy did not start"; tail -5 "$TMP/haproxy.log"
fi
stop_cg "$HAP_CG"

if start_ringmeshd "$DCG" "$NS" --cgroup "$PODS" --workers 1 --listen 127.0.0.1:$LP \
	--include-ip-ranges $VIP/32; then
	if "$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$TMP/rules.yaml" >"$TMP/apply.out" 2>&1; then
		run ringmesh "$RINGMESHD_PID" $VIP
	else
		echo "apply failed: $(head -1 "$TMP/apply.out")"
	fi
	stop_ringmeshd
else
	echo "ringmeshd did not start"
fi

first=${STEPS%%,*} last=${STEPS##*,}
echo
echo "| KiB VmRSS/RssAnon | idle | $(echo "$STEPS" | sed 's/,/ | /g') | after close | per idle conn |"
echo "|---|---|$(echo "$STEPS" | sed 's/[0-9]*/---/g; s/,/|/g')|---|---|"
for k in ringmesh haproxy; do
	[ -n "${M[$k,idle]:-}" ] || continue
	row="| $k | ${M[$k,idle]} |"
	for n in ${STEPS//,/ }; do row="$row ${M[$k,$n]:--} |"; done
	per=-
	if [ "$first" != "$last" ] && [ -n "${M[$k,$last]:-}" ]; then
		per=$(awk -v a="${M[$k,$first]%%/*}" -v b="${M[$k,$last]%%/*}" -v n1="$first" \
			-v n2="$last" 'BEGIN { printf "%.2f KiB", (b - a) / (n2 - n1) }')
	fi
	echo "$row ${M[$k,closed]:--} | $per |"
done
for k in ringmesh haproxy; do
	for n in ${STEPS//,/ }; do [ -n "${M[$k,$n,c]:-}" ] && echo "  $k at $n: ${M[$k,$n,c]}"; done
done
