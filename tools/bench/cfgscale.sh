#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Configuration-scale benchmark (not a test; issue 13's "Scale of configuration"): a
# live ringmeshd (1 worker, L7, in a network namespace of its own, as l7.sh runs it)
# holding N services of tools/bench/cfggen.py (3 documents, 3 rules, 3 subsets and 3
# endpoints each; 1,000 services are 3,000 rules), one of them (the last) real: its VIP
# intercepted for wrk's cgroup, its three endpoints one nginx backend. Per round and N
# (the sizes' order rotated per round), on a fresh pin dir:
#   first      `ringmesh apply` of all N services, wall ms from the CLI (it returns
#              once the daemon serves the new generation), and the daemon's own
#              flip-to-live ms (ringmesh_config_apply_duration_seconds on its metrics
#              endpoint: from the CLI's flip to the router built and swapped in)
#   unchanged  the same file again (nothing published)
#   1 changed  FLIPS applies alternating one service's 70/30 split with 60/40:
#              wall ms and flip-to-live ms each
#   routing    wrk -t1 -c$CONNS for SECONDS on GET /api of the real service (its
#              header rule tried, then the /api prefix's 70/30 split): req/s, p99,
#              and the daemon's CPU µs per request (its cgroup); RSS after it
#   router     the daemon's router alone, in process (tools/bench/cfgbench.c --route):
#              ns per request to that one service, and to every service in turn
# Figures go to $BENCH_OUT for summary.py's "Configuration scale" table.
# PROFILE=DIR: perf record -e cpu-clock -g of the daemon during each wrk run, into
# DIR/perf.N.rROUND.data, and during the applies, DIR/apply.N.rROUND.data (for
# `perf report -i`; a profile costs the figures some CPU).
# Usage: sudo tools/bench/cfgscale.sh [BUILD] [SECONDS] [N,...] [ROUNDS]
#        (defaults: build 4 1,100,1000,10000 3; FLIPS=3 CONNS=8)
set -u
BUILD=${1:-build}
SECS=${2:-4}
SIZES=${3:-1,100,1000,10000}
ROUNDS=${4:-3}
FLIPS=${FLIPS:-3}
CONNS=${CONNS:-8}
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=benchc-$$
. "$here/../../tests/e2e/lib.sh"
. "$here/../../tests/e2e/netns.sh"
. "$here/lib.sh"
need_root
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "wrk, nginx missing: make deps"; exit 1; }
case "$SECS$ROUNDS$FLIPS$CONNS${SIZES//,/}" in
*[!0-9]* | "") echo "usage: $0 [BUILD] [SECONDS] [N,...] [ROUNDS]"; exit 2;;
esac
[ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ] && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] &&
	[ "$FLIPS" -ge 1 ] && [ "$FLIPS" -le 20 ] || { echo "SECONDS 1..60, ROUNDS 1..20, FLIPS 1..20"; exit 2; }
for n in ${SIZES//,/ }; do
	[ "$n" -ge 1 ] && [ "$n" -le 50000 ] || { echo "N 1..50000"; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null
BENCH_OUT=${BENCH_OUT:-$TMP/figures.tsv}

NS=rm-$RUN_ID
mk_netns "$NS" || exit 1
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd)
BACK_CG=$(mk_cgroup servers/backend)
VIP=127.96.0.40 E1=127.96.0.41 E2=127.96.0.42 E3=127.96.0.43 PORT=8080
start_backend "$BACK_CG" $E1,$E2,$E3 $PORT || exit 1

cfgbench_build "$here/../.." "$BUILD" "$TMP/cfgbench" "$TMP/cfgbench.log" ||
	{ echo "cfgbench did not build:"; tail -5 "$TMP/cfgbench.log"; exit 1; }
for n in ${SIZES//,/ }; do
	python3 "$here/cfggen.py" "$n" --live "$((n - 1))=$VIP,$E1,$E2,$E3" --out "$TMP/a.$n.yaml" &&
		python3 "$here/cfggen.py" "$n" --live "$((n - 1))=$VIP,$E1,$E2,$E3" \
			--change $((n / 2)) --out "$TMP/b.$n.yaml" || exit 1
done

echo "ringmesh configuration scale: $(machine cfgscale)"
echo "  $ROUNDS interleaved rounds of N = $SIZES services: apply, $FLIPS one-rule flips," \
	"wrk -t1 -c$CONNS -d${SECS}s GET /api"
rec meta setup cfgscale - - "$ROUNDS rounds; per N: first apply, unchanged re-apply, $FLIPS\
 one-rule changes, wrk -t1 -c$CONNS ${SECS}s on one service's /api (1 worker)"

# apply_sum: the daemon's flip-to-live histogram, "SUM_US COUNT" (its metrics endpoint)
apply_sum() {
	in_ns "$NS" curl -sf "http://$METRICS_ADDR/stats/prometheus" | awk '
		$1 == "ringmesh_config_apply_duration_seconds_sum" { s = $2 * 1e6 }
		$1 == "ringmesh_config_apply_duration_seconds_count" { c = $2 }
		END { printf "%.0f %d\n", s, c }'
}

# apply_ms FILE WANT: one `ringmesh apply`; A_wall (ms, from the CLI), A_live (the
# daemon's flip-to-live ms, "" when nothing was published). WANT: changed or unchanged.
# Returns 1 (with A_err) when the apply failed or did not do what WANT says.
apply_ms() {
	local s0 c0 s1 c1 t0 t1
	read -r s0 c0 < <(apply_sum)
	t0=$(date +%s%N)
	"$BUILD/ringmesh" --json --pin-dir "$PIN" apply -f "$1" >"$TMP/apply.out" 2>&1 ||
		{ A_err="apply failed: $(head -c 200 "$TMP/apply.out")"; return 1; }
	t1=$(date +%s%N)
	A_wall=$(((t1 - t0) / 1000000)) A_live=
	if [ "$2" = unchanged ]; then
		grep -q '"changed": *false' "$TMP/apply.out" && return 0
		A_err="re-apply changed something: $(head -c 200 "$TMP/apply.out")"
		return 1
	fi
	grep -q '"live_ms": *[0-9]' "$TMP/apply.out" ||
		{ A_err="not live: $(head -c 200 "$TMP/apply.out")"; return 1; }
	read -r s1 c1 < <(apply_sum)
	[ "$c1" = $((c0 + 1)) ] || { A_err="the daemon counted $((c1 - c0)) applies, not 1"; return 1; }
	A_live=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
}

# one N in one round
measure() {
	local n=$1 r=$2 k f line
	rm -rf "$PIN"
	start_rm "$DCG" "$PODS" $VIP "" || { rec cfgscale "$n" err - "$r" "ringmeshd did not start"; return 1; }
	line="  N=$n:"
	prof=
	if [ -n "${PROFILE:-}" ]; then
		mkdir -p "$PROFILE"
		perf record -q -e cpu-clock -g -p "$RINGMESHD_PID" -o "$PROFILE/apply.$n.r$r.data" \
			>/dev/null 2>&1 8>&- &
		prof=$!
		sleep 0.5 # attached before the first apply
	fi
	if apply_ms "$TMP/a.$n.yaml" changed; then
		rec cfgscale "$n" first_ms - "$r" "$A_wall"
		rec cfgscale "$n" first_live - "$r" "$A_live"
		line="$line first $A_wall ms (live $A_live ms after the flip)"
	else
		echo "$line $A_err"; rec cfgscale "$n" err - "$r" "first: $A_err"
		stop_ringmeshd; return 1
	fi
	if apply_ms "$TMP/a.$n.yaml" unchanged; then
		rec cfgscale "$n" same_ms - "$r" "$A_wall"
		line="$line, unchanged $A_wall ms"
	else
		rec cfgscale "$n" err - "$r" "unchanged: $A_err"
	fi
	for ((k = 1; k <= FLIPS; k++)); do
		f=b
		[ $((k % 2)) = 1 ] || f=a
		if apply_ms "$TMP/$f.$n.yaml" changed; then
			rec cfgscale "$n" one_ms - "$r.$k" "$A_wall"
			rec cfgscale "$n" one_live - "$r.$k" "$A_live"
			line="$line, 1 changed $A_wall ms (live $A_live)"
		else
			rec cfgscale "$n" err - "$r" "1 changed: $A_err"
		fi
	done
	echo "$line"
	[ -z "$prof" ] || { kill -INT "$prof"; wait "$prof"; }
	# routed by the daemon, to the service the file names (not merely accepted)
	prof=
	if ! in_cg "$CLIENT_CG" "$NS" -- curl -sf -o /dev/null "http://$VIP:$PORT/api"; then
		rec cfgscale "$n" err - "$r" "GET /api through ringmeshd failed"
	else
		if [ -n "${PROFILE:-}" ]; then
			mkdir -p "$PROFILE"
			perf record -q -e cpu-clock -g -p "$RINGMESHD_PID" -o "$PROFILE/perf.$n.r$r.data" \
				-- sleep "$SECS" >/dev/null 2>&1 8>&- &
			prof=$!
		fi
		if wrk_run "cfgscale-$n-r$r" "$CLIENT_CG" "http://$VIP:$PORT/api" "$CONNS" "$SECS" "$DCG"; then
			rec cfgscale "$n" rps "$CONNS" "$r" "$W_rps"
			rec cfgscale "$n" p99 "$CONNS" "$r" "$W_p99"
			rec cfgscale "$n" cpu "$CONNS" "$r" "$W_cpu"
			in_ns "$NS" curl -sf "http://$METRICS_ADDR/stats/prometheus" >"$TMP/prom.$n"
			[ "$(requests_sum "$TMP/prom.$n" "destination_service_name=\"svc-$((n - 1))\"")" -gt 0 ] ||
				rec cfgscale "$n" err - "$r" "no request counted for svc-$((n - 1))"
		fi
		[ -z "$W_err" ] || rec cfgscale "$n" err "$CONNS" "$r" "$W_err"
	fi
	[ -z "$prof" ] || wait "$prof"
	rec cfgscale "$n" rss_kib - "$r" "$(awk '/^VmRSS/ { print $2 }' /proc/$RINGMESHD_PID/status)"
	stop_ringmeshd
	if line=$("$TMP/cfgbench" --route "$TMP/a.$n.yaml" 2>&1); then
		rec cfgscale "$n" route_one - "$r" "$(echo "$line" | sed -n 's/.*route_one_ns=\([0-9.]*\).*/\1/p')"
		rec cfgscale "$n" route_all - "$r" "$(echo "$line" | sed -n 's/.*route_all_ns=\([0-9.]*\).*/\1/p')"
		echo "  router: $line"
	else
		rec cfgscale "$n" err - "$r" "cfgbench: $line"
	fi
}

for ((round = 1; round <= ROUNDS; round++)); do
	echo "round $round/$ROUNDS (load average $(cut -d' ' -f1 /proc/loadavg))"
	for n in $(order $round ${SIZES//,/ }); do
		measure "$n" "$round"
	done
done
rm -rf "$PIN"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rec meta load_end cfgscale - - "$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$BENCH_OUT" != "$TMP/figures.tsv" ] || python3 "$here/summary.py" "$BENCH_OUT"
exit 0
