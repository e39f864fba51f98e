#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Memory benchmark (not a test): resident memory of ringmeshd (1 worker, L7), HAProxy
# (nbthread 1) and nginx (1 worker; master + worker summed) while a client holds N idle
# keep-alive connections, each after one small GET, in a network namespace of its own.
# VmRSS and RssAnon (/proc/PID/status) idle, at each step, and 3 s after every
# connection closed; the summary gives the cost per idle connection between the first
# and the last step (by connections actually held). ringmeshd is measured with one
# worker and again with two (the cost of a worker). One round: RSS does not vary with
# the machine's load the way throughput does.
# Usage: sudo tools/bench/mem.sh [BUILD] [STEPS]   (STEPS default 1000,10000; HAProxy
# needs two descriptors per connection: the limit is raised where that is allowed,
# else its maxconn is what fits and the table says how many it held)
set -u
BUILD=${1:-build}
STEPS=${2:-1000,10000}
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=benchm-$$
. "$here/../../tests/e2e/lib.sh"
. "$here/../../tests/e2e/netns.sh"
. "$here/lib.sh"
need_root
command -v haproxy >/dev/null || { echo "haproxy missing: make deps"; exit 1; }
case "$STEPS" in *[!0-9,]* | "") echo "usage: $0 [BUILD] [N,N,...]"; exit 2;; esac
for n in ${STEPS//,/ }; do
	[ "$n" -ge 1 ] && [ "$n" -le 20000 ] || { echo "steps 1..20000"; exit 2; }
done
BENCH_OUT=${BENCH_OUT:-$TMP/figures.tsv}
last=${STEPS##*,}
# HAProxy refuses to start below 2 descriptors per connection (client and server side):
# raise the limit where we may (CAP_SYS_RESOURCE), else HAProxy holds what fits
need=$((2 * last + 1000))
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge $need ] || ulimit -Hn $need 2>/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null
hap_max=$((last + 100)) lim=$(ulimit -n)
[ "$lim" = unlimited ] || [ $((2 * hap_max + 100)) -le "$lim" ] || hap_max=$(((lim - 100) / 2))

NS=rm-$RUN_ID
mk_netns "$NS" || exit 1
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd)
BACK_CG=$(mk_cgroup servers/backend) HAP_CG=$(mk_cgroup servers/haproxy)
NGX_CG=$(mk_cgroup servers/nginx)
VIP=127.96.0.20 B1=127.96.0.21 HAP=127.96.0.30 NGX=127.96.0.31 PORT=8080

bg backend in_cg "$BACK_CG" "$NS" -- "$BUILD/rm-backend" --mode http --name bench --version v1 \
	--listen $B1:$PORT --ready-file "$TMP/b.ready"
wait_file "$TMP/b.ready" 5 || { echo "backend did not start"; cat "$TMP/backend.log"; exit 1; }

haproxy_cfg "$TMP/haproxy.cfg" $HAP:$PORT $hap_max $B1:$PORT
nginx_conf "$TMP/nginx" $NGX:$PORT $((last + 100)) $B1:$PORT
rules_yaml "$TMP/rules.yaml" $VIP $PORT $B1

# rss CG: KiB VmRSS/RssAnon summed over the processes of CG
rss() {
	local p
	for p in $(cat "$1/cgroup.procs"); do cat "/proc/$p/status"; done |
		awk '$1 == "VmRSS:" { r += $2 } $1 == "RssAnon:" { a += $2 } END { print r "/" a }'
}

# run NAME CG HOST: idle, each step, after close (VmRSS/RssAnon KiB), as records
run() {
	local name=$1 cg=$2 host=$3 line m
	sleep 1
	m=$(rss "$cg"); rec mem "$name" rss idle 1 "$m"
	echo "  $name idle: $m KiB"
	coproc CL { in_cg "$CLIENT_CG" "$NS" -- timeout 600 python3 "$here/mem_client.py" \
		"$host" $PORT "$STEPS" 2>"$TMP/client.$name.err"; }
	local cpid=$CL_PID
	while read -r line <&"${CL[0]}"; do
		case $line in
		at\ *)
			set -- $line
			sleep 1
			m=$(rss "$cg")
			rec mem "$name" rss "$2" 1 "$m"; rec mem "$name" ok "$2" 1 "${3#ok=}"
			echo "  $name at $2: $m KiB (${3#ok=} ok, ${4#failed=} failed)"
			echo >&"${CL[1]}"
			;;
		closed)
			sleep 3
			m=$(rss "$cg"); rec mem "$name" rss closed 1 "$m"
			echo "  $name after close: $m KiB"
			echo >&"${CL[1]}"
			;;
		esac
	done
	wait "$cpid" 2>/dev/null
	grep -m3 . "$TMP/client.$name.err" | sed 's/^/    client: /'
}

echo "memory benchmark: $(machine mem)"
echo "  steps $STEPS, idle keep-alive connections after one GET"
rec meta setup mem - - "steps $STEPS, idle keep-alive connections after one GET, one round"
start_proxy haproxy "$HAP_CG" haproxy -db -f "$TMP/haproxy.cfg"
if wait_listen $HAP:$PORT; then
	run haproxy "$HAP_CG" $HAP
else
	echo "haproxy did not start"; tail -5 "$TMP/haproxy.log"
fi
stop_cg "$HAP_CG"

start_proxy nginx "$NGX_CG" nginx -e "$TMP/nginx/logs/error.log" -p "$TMP/nginx" \
	-c "$TMP/nginx/nginx.conf"
if wait_listen $NGX:$PORT; then
	run nginx "$NGX_CG" $NGX
else
	echo "nginx did not start"; tail -5 "$TMP/nginx/logs/error.log"
fi
stop_cg "$NGX_CG"

for w in 1 2; do
	name=ringmesh; [ $w -eq 1 ] || name=ringmesh$w
	if RM_WORKERS=$w start_rm "$DCG" "$PODS" $VIP "$TMP/rules.yaml"; then
		run $name "$DCG" $VIP
		stop_ringmeshd
	else
		echo "ringmeshd ($w workers) did not start"
	fi
done
rec meta load_end mem - - "$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$BENCH_OUT" != "$TMP/figures.tsv" ] || python3 "$here/summary.py" "$BENCH_OUT"
exit 0
