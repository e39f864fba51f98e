#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# BPF data-path test by real attachment (see dp_test.c). Usage: tests/bpf/run.sh BUILD
# Exit 0 pass, 1 fail, 77 skip (not root). Prints "bpf: N passed, N failed".
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top" || exit 1
if [ "$(id -u)" -ne 0 ]; then
	echo "bpf: 0 passed, 0 failed (skipped: needs root)"
	exit 77
fi
# The BPF object, its skeleton and the library (dp.c unpins the configuration store).
make --no-print-directory -s BUILD="$build" "$build/ringmesh.skel.h" "$build/libringmesh.a" || {
	echo "bpf: 0 passed, 1 failed (BPF object did not build)"; exit 1; }
mkdir -p "$build/tests"
bin=$build/tests/bpf_dp_test
cc -std=gnu11 -O1 -g -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-D_GNU_SOURCE -Iinclude -Iuser -I"$build" \
	tests/bpf/dp_test.c user/ringmeshd/dp.c user/common/cidr.c user/common/pin.c \
	user/common/util.c "$build/libringmesh.a" -lbpf -lelf -lz -luring -lyaml -lpcre2-8 -lpthread -lm \
	-o "$bin" || {
	echo "bpf: 0 passed, 1 failed (test did not build)"; exit 1; }

cgmnt=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
pid=
cleanup() {
	# Normally the test cleans up after itself; this is for a SIGKILLed test.
	[ -n "$pid" ] || return
	local d=/sys/fs/bpf/rm-h1-$pid
	if [ -d "$d" ]; then
		for f in "$d"/*; do [ -e "$f" ] && rm -f "$f"; done
		rmdir "$d" 2>/dev/null
	fi
	for cg in "$cgmnt/rm-h1-$pid" "$cgmnt/rm-h1-$pid-d"; do
		[ -d "$cg" ] || continue
		for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		sleep 0.2
		rmdir "$cg" 2>/dev/null
	done
}
trap 'cleanup' EXIT
trap 'exit 1' INT TERM
"$bin" &
pid=$!
wait "$pid"
rc=$?
exit $rc
