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
# A default build holds 128 services (include/ringmesh/cfg.h): --caps builds, per N,
# a CLI whose capacities are raised to hold N services (into BUILD-capsN/, -D flags,
# the daemon and BPF side are not rebuilt: the CLI alone needs no daemon). An N whose
# configuration half cannot be one BPF map value (< 4 MiB) is reported as such.
# --inproc adds a second table: the same three applies in one process without the
# maps (tools/bench/cfgbench.c: parse, merge over the stored sources, compile, pack,
# compare), against a library with raised capacities and the 4 MiB static checks
# compiled out, so sizes the maps cannot hold yet are measured too.
#
# Usage: sudo tools/bench/cfg.sh [--build DIR] [--caps] [--inproc] [--rounds R] [N ...]
#        (defaults: build, 3 rounds, N = 100 1000 10000)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=build CAPS=0 INPROC=0 ROUNDS=3
SIZES=()
while [ $# -gt 0 ]; do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--caps) CAPS=1; shift ;;
	--inproc) INPROC=1; shift ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) SIZES+=("$1"); shift ;;
	esac
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(100 1000 10000)
[ "$(id -u)" = 0 ] || { echo "cfg.sh: needs root (bpffs pin dir)"; exit 1; }

TMP=$(mktemp -d /tmp/rm-cfgbench.XXXXXX)
PIN=""
cleanup() {
	[ -n "$PIN" ] && rm -rf "$PIN"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Capacities for n services of cfggen.py, with headroom; strtab and source text by
# the measured bytes per service (~250 with the rules' origins, ~1,450 with record headers).
caps_flags() {
	local n=$1
	local s=$(( (n + 63) / 64 * 64 )) r=$(( 3 * ((n + 63) / 64 * 64) ))
	local src=$(( ( (1600 * n + 65536) / 8 ) * 8 ))
	echo "-DRM_CFG_MAX_SERVICES=$s -DRM_CFG_MAX_RULES=$r -DRM_CFG_MAX_MATCHES=$((r + 64))" \
		"-DRM_CFG_MAX_CONDS=$((r + 64)) -DRM_CFG_MAX_TARGETS=$((4 * s))" \
		"-DRM_CFG_MAX_SUBSETS=$r -DRM_CFG_MAX_ENDPOINTS=$r -DRM_CFG_MAX_MEMBERS=$((r + 64))" \
		"-DRM_CFG_MAX_LABELS=$((3 * r + 64)) -DRM_CFG_STRTAB_SIZE=$(( (320 * n + 65536) / 8 * 8 ))" \
		"-DRM_CFG_SRC_SIZE=$src"
}

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
echo "| services | rules | documents | first apply | unchanged re-apply | 1 rule changed |"
echo "|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
	cli=$BUILD/ringmesh
	if [ $CAPS = 1 ]; then
		b=$BUILD-caps$n
		# make does not see a change of -D flags: rebuild when they changed
		if [ "$(cat "$root/$b/.caps" 2>/dev/null)" != "$(caps_flags "$n")" ]; then
			rm -rf "${root:?}/$b"
			mkdir -p "$root/$b"
			caps_flags "$n" >"$root/$b/.caps"
		fi
		if ! CFLAGS="-O2 -g $(caps_flags "$n")" make -C "$root" -j2 BUILD="$b" "$b/ringmesh" \
			>"$TMP/make" 2>&1; then
			if grep -q "must stay < 4 MiB\|layout" "$TMP/make"; then
				echo "| $n | $((3 * n)) | $((3 * n)) | does not fit: one half > 4 MiB (one BPF map value) | | |"
			else
				echo "| $n | build with raised caps failed: $(grep -m1 error "$TMP/make") | | | | |"
			fi
			continue
		fi
		cli=$root/$b/ringmesh
	fi
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
		rm -rf "$PIN"
		PIN=""
	done
	if [ -n "$fail" ]; then
		echo "| $n | $((3 * n)) | $((3 * n)) | failed: $(printf '%s' "$fail" | tr '\n|' '  ') | | |"
		continue
	fi
	echo "| $n | $((3 * n)) | $((3 * n)) | $(stat "${first[@]}") | $(stat "${same[@]}") | $(stat "${one[@]}") |"
done

[ $INPROC = 1 ] || exit 0
echo
echo "In process, no maps (cfgbench: parse + merge + compile + pack + compare), ms:"
echo
echo "| services | first apply | unchanged re-apply | 1 rule changed | compiled half | sources |"
echo "|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
	b=$BUILD-inproc$n
	flags=$(caps_flags "$n")
	noassert='-D_Static_assert(c,m)='
	flags_id="$flags $noassert"
	if [ "$(cat "$root/$b/.caps" 2>/dev/null)" != "$flags_id" ]; then
		rm -rf "${root:?}/$b"
		mkdir -p "$root/$b"
		printf '%s\n' "$flags_id" >"$root/$b/.caps"
	fi
	# make hands CFLAGS to the shell: the parentheses need quotes there
	# shellcheck disable=SC2086 # $flags are separate words
	if ! CFLAGS="-O2 -g $flags '$noassert'" make -C "$root" -j2 BUILD="$b" "$b/libringmesh.a" >"$TMP/make" 2>&1 ||
		! cc -O2 -g -std=gnu11 -D_GNU_SOURCE $flags "$noassert" -I"$root/include" -I"$root/user" \
			-I"$root/tools" -I"$root/$b" "$here/cfgbench.c" "$root/$b/libringmesh.a" \
			-lbpf -lelf -lz -luring -lyaml -lpcre2-8 -lpthread -lm -o "$root/$b/cfgbench" \
			>>"$TMP/make" 2>&1; then
		echo "| $n | build failed: $(grep -m1 error "$TMP/make") | | | | |"
		continue
	fi
	python3 "$here/cfggen.py" "$n" --out "$TMP/a.yaml"
	python3 "$here/cfggen.py" "$n" --change $((n / 2)) --out "$TMP/b.yaml"
	first=() same=() one=() half="" srcb="" fail=""
	for ((i = 0; i < ROUNDS; i++)); do
		out=$("$root/$b/cfgbench" "$TMP/a.yaml" "$TMP/b.yaml" 2>&1) || { fail=$out; break; }
		first+=("$(echo "$out" | sed -n 's/.*first=\([0-9]*\).*/\1/p')")
		same+=("$(echo "$out" | sed -n 's/.*unchanged=\([0-9]*\).*/\1/p')")
		one+=("$(echo "$out" | sed -n 's/.*changed=\([0-9]*\) .*/\1/p')")
		half=$(echo "$out" | sed -n 's/.*half_bytes=\([0-9]*\).*/\1/p')
		srcb=$(echo "$out" | sed -n 's/.*src_bytes=\([0-9]*\).*/\1/p')
	done
	if [ -n "$fail" ]; then
		echo "| $n | failed: $(printf '%s' "$fail" | tr '\n|' '  ') | | | | |"
		continue
	fi
	echo "| $n | $(stat "${first[@]}") | $(stat "${same[@]}") | $(stat "${one[@]}") |" \
		"$(awk -v b="$half" 'BEGIN { printf "%.1f MB", b / 1e6 }') |" \
		"$(awk -v b="$srcb" 'BEGIN { printf "%.1f MB", b / 1e6 }') |"
done
