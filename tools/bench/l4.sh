#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# L4 benchmark (not a test), in a network namespace of its own:
#   direct     client -> backend
#   sockmap    connect4 rewrite, sk_msg shortcut client<->proxy (--sockmap)
#   nosockmap  connect4 rewrite, plain TCP client<->proxy (--no-sockmap)
#   iptables   the same ringmeshd (--no-sockmap) reached through a nat OUTPUT REDIRECT
#              rule (how Istio's sidecars intercept), original dst from conntrack
# Request/response round trips (64 B, rm-load `rr`, 1 and 8 connections) and bulk
# throughput (BULK bytes into a sink), ROUNDS rounds interleaved (every path once per
# round, the order rotated per round). Figures go to $BENCH_OUT (TSV for
# tools/bench/summary.py); without it the summary of this run is printed.
# Usage: sudo tools/bench/l4.sh [BUILD] [SECONDS] [ROUNDS] [BULK]  (defaults: build 5 3 2G)
set -u
BUILD=${1:-build}
SECS=${2:-5}
ROUNDS=${3:-3}
BULK=${4:-2G}
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=bench-$$
. "$here/../../tests/e2e/lib.sh"
. "$here/../../tests/e2e/netns.sh"
. "$here/lib.sh"
need_root
command -v iptables >/dev/null || { echo "iptables missing: make deps"; exit 1; }
case "$SECS$ROUNDS" in *[!0-9]* | "") echo "usage: $0 [BUILD] [SECONDS] [ROUNDS] [BULK]"; exit 2;; esac
[ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ] && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] ||
	{ echo "SECONDS 1..60, ROUNDS 1..20"; exit 2; }
BENCH_OUT=${BENCH_OUT:-$TMP/figures.tsv}

NS=rm-$RUN_ID
mk_netns "$NS" || exit 1
# The REDIRECT rule matches only IPT_CG's client, which no daemon's cgroup holds; the
# other paths' client sits under PODS (intercepted by connect4 when a daemon runs).
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd)
NONE=$(mk_cgroup none) IPT_CG=$(mk_cgroup ipt-client)
LP=15001 EP=9000 SP=9001
bg echo in_ns "$NS" "$BUILD/rm-backend" --mode echo --name b --version v1 --listen 127.96.0.20:$EP --ready-file "$TMP/e"
bg sink in_ns "$NS" "$BUILD/rm-backend" --mode sink --name b --version v1 --listen 127.96.0.20:$SP --ready-file "$TMP/s"
wait_file "$TMP/e" 5 && wait_file "$TMP/s" 5 || { echo "backends did not start"; exit 1; }
relcg=${IPT_CG#"$CGROUP2"}
ip netns exec "$NS" iptables -t nat -A OUTPUT -p tcp -d 127.96.0.0/16 -m cgroup --path "$relcg" \
	-j REDIRECT --to-ports $LP || { echo "iptables REDIRECT rule failed"; exit 1; }

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
measure() { # path round client-cgroup
	local p=$1 r=$2 out rps1 p50 p99 rps8 bulk st0
	st0=$(steal_ms)
	out=$(in_cg "$3" "$NS" -- "$BUILD/rm-load" rr --connect 127.96.0.20:$EP --conns 1 \
		--duration ${SECS}s --size 64) || { echo "  $p rr failed: $out"; rec l4 "$p" err 1 "$r" "rr failed"; return 1; }
	rps1=$(echo "$out" | field rps) p50=$(echo "$out" | field p50_us) p99=$(echo "$out" | field p99_us)
	out=$(in_cg "$3" "$NS" -- "$BUILD/rm-load" rr --connect 127.96.0.20:$EP --conns 8 \
		--duration ${SECS}s --size 64) || { echo "  $p rr8 failed: $out"; rec l4 "$p" err 8 "$r" "rr8 failed"; return 1; }
	rps8=$(echo "$out" | field rps)
	out=$(in_cg "$3" "$NS" -- "$BUILD/rm-load" bulk --connect 127.96.0.20:$SP --bytes "$BULK" \
		--sink --max-time 60s) || { echo "  $p bulk failed: $out"; rec l4 "$p" err 1 "$r" "bulk failed"; return 1; }
	bulk=$(echo "$out" | field throughput_MBps)
	rec l4 "$p" rr1 1 "$r" "$rps1"; rec l4 "$p" rr1_p50 1 "$r" "$p50"; rec l4 "$p" rr1_p99 1 "$r" "$p99"
	rec l4 "$p" rr8 8 "$r" "$rps8"; rec l4 "$p" bulk 1 "$r" "$bulk"
	rec l4 "$p" steal 1 "$r" $(($(steal_ms) - st0)) # the host's during the three, not a figure
	echo "  $p: rr1 $rps1/s p50 ${p50}us p99 ${p99}us, rr8 $rps8/s, bulk $bulk MB/s"
}
daemon() { start_ringmeshd "$DCG" "$NS" --workers 1 --listen 127.0.0.1:$LP --include-ip-ranges 127.96.0.0/16 "$@"; }

echo "ringmesh L4 benchmark: $(machine l4)"
echo "  $ROUNDS interleaved rounds, ${SECS}s per round trip measurement, bulk $BULK"
rec meta setup l4 - - "$ROUNDS rounds, rm-load rr ${SECS}s (64 B), bulk $BULK"
for ((round = 1; round <= ROUNDS; round++)); do
	echo "round $round/$ROUNDS (load average $(cut -d' ' -f1 /proc/loadavg))"
	for p in $(order $round direct sockmap nosockmap iptables); do
		case $p in
		direct) measure direct $round "$CLIENT_CG" ;;
		sockmap) daemon --cgroup "$PODS" --sockmap && measure $p $round "$CLIENT_CG"; stop_ringmeshd ;;
		nosockmap) daemon --cgroup "$PODS" --no-sockmap && measure $p $round "$CLIENT_CG"; stop_ringmeshd ;;
		iptables) daemon --cgroup "$NONE" --no-sockmap && measure $p $round "$IPT_CG"; stop_ringmeshd ;;
		esac
	done
done
rec meta load_end l4 - - "$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$BENCH_OUT" != "$TMP/figures.tsv" ] || python3 "$here/summary.py" "$BENCH_OUT"
exit 0
