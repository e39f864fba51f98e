#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Configuration-scale benchmark (not a test): wall time of `ringmesh apply` from the
# CLI, against a pin dir of its own (no daemon: the store is created by the first
# apply), for N services of tools/bench/cfggen.py (3 documents, 3 rules, 3 subsets,
# 3 endpoints each). Per N and round, on a fresh pin dir:
#   first      apply of all N services into an empty store
#   unchanged  the same file again (nothing to publish)
#   1 changed  the same file with one service's 70/30 split changed to 60/40
# and the median (min..max) over the rounds.
#
# A default build holds whatever is applied (include/ringmesh/cfg.h: each half is a
# map of its own, sized at publish time); "pinned" is the two halves' maps after
# the last apply (bpftool's memlock, i.e. what the kernel allocated).
# --inproc adds a second table: the same three applies in one process without the
# maps (tools/bench/cfgbench.c: parse, merge over the stored sources, compile, pack,
# compare), and the router's cost per request (find the service, decide, pick the
# pool) to one service and to every service in turn.
#
# Usage: sudo tools/bench/cfg.sh [--build DIR] [--inproc] [--rounds R] [N ...]
#        (defaults: build, 3 rounds, N = 100 1000 10000)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=build INPROC=0 ROUNDS=3
SIZES=()
while [ $# -gt 0 ]; do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--inproc) INPROC=1; shift ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) SIZES+=("$1"); shift ;;
	esac
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(100 1000 10000)
[ "$(id -u)" = 0 ] || { echo "cfg.sh: needs root (bpffs pin dir)"; exit 1; }
. "$here/lib.sh" # cfgbench_build

TMP=$(mktemp -d /tmp/rm-cfgbench.XXXXXX)
PIN=""
cleanup() {
	[ -n "$PIN" ] && rm -rf "$PIN"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ms since the epoch, as a float
now_ms() { date +%s.%N | awk '{ printf "%.3f", $1 * 1000 }'; }

# run_ms CLI FILE: wall ms of one apply; the output goes to $TMP/out
run_ms() {
	local t0 t1
	t0=$(now_ms)
	"$1" --pin-dir "$PIN" apply -f "$2" >"$TMP/out" 2>&1 || return 1
	t1=$(now_ms)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }'
}

# median (min..max) of the numbers given
stat() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
	if (!NR) { print "-"; exit }
	printf "%d (%d..%d)", v[int((NR + 1) / 2)], v[1], v[NR] }'; }

echo "ringmesh apply, wall ms from the CLI: $(uname -r), $(nproc) CPUs, $ROUNDS rounds," \
	"median (min..max); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
echo
echo "| services | rules | documents | first apply | unchanged re-apply | 1 rule changed | pinned (2 halves) |"
echo "|---|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
	cli=$BUILD/ringmesh
	[ -x "$cli" ] || { echo "cfg.sh: $cli not built"; exit 1; }
	python3 "$here/cfggen.py" "$n" --out "$TMP/a.yaml"
	python3 "$here/cfggen.py" "$n" --change $((n / 2)) --out "$TMP/b.yaml"
	first=() same=() one=() fail=""
	for ((i = 0; i < ROUNDS; i++)); do
		PIN=/sys/fs/bpf/rm-cfgbench-$$-$n-$i
		if ! ms=$(run_ms "$cli" "$TMP/a.yaml"); then fail=$(tail -c 200 "$TMP/out"); rm -rf "$PIN"; break; fi
		first+=("$ms")
		ms=$(run_ms "$cli" "$TMP/a.yaml") || { fail=$(tail -c 200 "$TMP/out"); rm -rf "$PIN"; break; }
		grep -q unchanged "$TMP/out" || { fail="re-apply was not 'unchanged': $(cat "$TMP/out")"; rm -rf "$PIN"; break; }
		same+=("$ms")
		ms=$(run_ms "$cli" "$TMP/b.yaml") || { fail=$(tail -c 200 "$TMP/out"); rm -rf "$PIN"; break; }
		grep -q "generation 2" "$TMP/out" || { fail="changed apply did not publish: $(cat "$TMP/out")"; rm -rf "$PIN"; break; }
		one+=("$ms")
		pinned=$(for f in "$PIN"/rm_cfg-*; do bpftool map show pinned "$f"; done |
			sed -n 's/.*memlock \([0-9]*\)B.*/\1/p' | awk '{ s += $1 } END { printf "%.1f MiB", s / 1048576 }')
		rm -rf "$PIN"
		PIN=""
	done
	if [ -n "$fail" ]; then
		echo "| $n | $((3 * n)) | $((3 * n)) | failed: $(printf '%s' "$fail" | tr '\n|' '  ') | | |"
		continue
	fi
	echo "| $n | $((3 * n)) | $((3 * n)) | $(stat "${first[@]}") | $(stat "${same[@]}") | $(stat "${one[@]}") | $pinned |"
done

[ $INPROC = 1 ] || exit 0
echo
echo "In process, no maps (cfgbench: parse + merge + compile + pack + compare), ms:"
echo
echo "| services | first apply | unchanged re-apply | 1 rule changed | compiled half | sources | route 1 service | route all services |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
	if ! cfgbench_build "$root" "$BUILD" "$TMP/cfgbench" "$TMP/make"; then
		echo "| $n | build failed: $(grep -m1 error "$TMP/make") | | | | |"
		continue
	fi
	python3 "$here/cfggen.py" "$n" --out "$TMP/a.yaml"
	python3 "$here/cfggen.py" "$n" --change $((n / 2)) --out "$TMP/b.yaml"
	first=() same=() one=() r1=() ra=() half="" srcb="" fail=""
	for ((i = 0; i < ROUNDS; i++)); do
		out=$("$TMP/cfgbench" "$TMP/a.yaml" "$TMP/b.yaml" 2>&1) || { fail=$out; break; }
		first+=("$(echo "$out" | sed -n 's/.*first=\([0-9]*\).*/\1/p')")
		same+=("$(echo "$out" | sed -n 's/.*unchanged=\([0-9]*\).*/\1/p')")
		one+=("$(echo "$out" | sed -n 's/.*changed=\([0-9]*\) .*/\1/p')")
		half=$(echo "$out" | sed -n 's/.*half_bytes=\([0-9]*\).*/\1/p')
		srcb=$(echo "$out" | sed -n 's/.*src_bytes=\([0-9]*\).*/\1/p')
		r1+=("$(echo "$out" | sed -n 's/.*route_one_ns=\([0-9]*\).*/\1/p')")
		ra+=("$(echo "$out" | sed -n 's/.*route_all_ns=\([0-9]*\).*/\1/p')")
	done
	if [ -n "$fail" ]; then
		echo "| $n | failed: $(printf '%s' "$fail" | tr '\n|' '  ') | | | | |"
		continue
	fi
	echo "| $n | $(stat "${first[@]}") | $(stat "${same[@]}") | $(stat "${one[@]}") |" \
		"$(awk -v b="$half" 'BEGIN { printf "%.1f MB", b / 1e6 }') |" \
		"$(awk -v b="$srcb" 'BEGIN { printf "%.1f MB", b / 1e6 }') |" \
		"$(stat "${r1[@]}") ns | $(stat "${ra[@]}") ns |"
done
