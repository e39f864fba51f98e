#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# L4 benchmark (not a test): one run, side by side, in a network namespace of its own:
#   direct            client -> backend
#   ringmesh+sk_msg   connect4 rewrite, sk_msg shortcut client<->proxy
#   ringmesh          connect4 rewrite, plain TCP client<->proxy (--no-sockmap)
#   iptables REDIRECT the same ringmeshd reached through a nat OUTPUT REDIRECT rule
#                     (how Istio's sidecars intercept), original dst from conntrack
# Request/response round trips (64 B, 1 and 8 connections) and bulk throughput, as
# ratios to direct. Usage: sudo tools/bench/l4.sh [BUILD] [SECONDS]
set -u
BUILD=${1:-build}
SECS=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=bench-$$
. "$here/../../tests/e2e/lib.sh"
. "$here/../../tests/e2e/netns.sh"
need_root
command -v iptables >/dev/null || { echo "iptables missing: make deps"; exit 1; }

NS=rm-$RUN_ID
mk_netns "$NS" || exit 1
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd) NONE=$(mk_cgroup none)
LP=15001 EP=9000 SP=9001
bg echo in_ns "$NS" "$BUILD/rm-backend" --mode echo --name b --version v1 --listen 127.96.0.20:$EP --ready-file "$TMP/e"
bg sink in_ns "$NS" "$BUILD/rm-backend" --mode sink --name b --version v1 --listen 127.96.0.20:$SP --ready-file "$TMP/s"
wait_file "$TMP/e" 5 && wait_file "$TMP/s" 5 || { echo "backends did not start"; exit 1; }

load() { in_cg "$CLIENT_CG" "$NS" -- "$BUILD/rm-load" "$@"; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
declare -A R
measure() { # name
	local out
	out=$(load rr --connect 127.96.0.20:$EP --conns 1 --duration ${SECS}s --size 64) || { echo "$1 rr failed: $out"; return 1; }
	R[$1,rps1]=$(echo "$out" | field rps); R[$1,p50]=$(echo "$out" | field p50_us); R[$1,p99]=$(echo "$out" | field p99_us)
	out=$(load rr --connect 127.96.0.20:$EP --conns 8 --duration ${SECS}s --size 64) || { echo "$1 rr8 failed: $out"; return 1; }
	R[$1,rps8]=$(echo "$out" | field rps)
	out=$(load bulk --connect 127.96.0.20:$SP --bytes 2G --sink --max-time 60s) || { echo "$1 bulk failed: $out"; return 1; }
	R[$1,bulk]=$(echo "$out" | field throughput_MBps)
	echo "  $1: rr1 ${R[$1,rps1]}/s p50 ${R[$1,p50]}us p99 ${R[$1,p99]}us, rr8 ${R[$1,rps8]}/s, bulk ${R[$1,bulk]} MB/s"
}
daemon() { start_ringmeshd "$DCG" "$NS" --workers 1 --listen 127.0.0.1:$LP --include-ip-ranges 127.96.0.0/16 "$@"; }

echo "ringmesh L4 benchmark: $(uname -r), $(nproc) CPUs, ${SECS}s per measurement"
measure direct
daemon --cgroup "$PODS" || exit 1; measure sockmap; stop_ringmeshd
daemon --cgroup "$PODS" --no-sockmap || exit 1; measure tcp; stop_ringmeshd
relcg=${CLIENT_CG#"$CGROUP2"}
ip netns exec "$NS" iptables -t nat -A OUTPUT -p tcp -d 127.96.0.0/16 -m cgroup --path "$relcg" \
	-j REDIRECT --to-ports $LP || { echo "iptables REDIRECT rule failed"; exit 1; }
daemon --cgroup "$NONE" --no-sockmap || exit 1; measure iptables; stop_ringmeshd

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "| path | rr 1 conn (req/s) | p50 µs | p99 µs | rr 8 conns (req/s) | bulk (MB/s) |"
echo "|---|---|---|---|---|---|"
for k in direct sockmap tcp iptables; do
	case $k in direct) n="direct";; sockmap) n="ringmesh, sk_msg shortcut";; tcp) n="ringmesh, --no-sockmap";; iptables) n="ringmesh via iptables REDIRECT";; esac
	if [ $k = direct ]; then
		echo "| $n | ${R[$k,rps1]} | ${R[$k,p50]} | ${R[$k,p99]} | ${R[$k,rps8]} | ${R[$k,bulk]} |"
	else
		echo "| $n | ${R[$k,rps1]} ($(ratio ${R[$k,rps1]} ${R[direct,rps1]})x) | ${R[$k,p50]} | ${R[$k,p99]} | ${R[$k,rps8]} ($(ratio ${R[$k,rps8]} ${R[direct,rps8]})x) | ${R[$k,bulk]} ($(ratio ${R[$k,bulk]} ${R[direct,bulk]})x) |"
	fi
done
