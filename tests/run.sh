#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Every suite `make test` runs, in order, one at a time (they share the machine):
# the structure checks, unit tests under ASan/UBSan, then the tools', CLI, BPF, fuzz and
# end-to-end suites (the API double's self-test before the e2e that uses it).
# Each suite prints "NAME: N passed, N failed[, N skipped]"; this prints the total.
set -u
build=${1:-build}
san=${2:-build-san}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# The pinned-map unit and CLI tests need bpffs at /sys/fs/bpf; a fresh machine may not
# have it mounted (ringmeshd mounts it itself, but the unit suite runs first).
if [ "$(id -u)" -eq 0 ] && [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
	mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf || echo "warning: cannot mount bpffs at /sys/fs/bpf"
fi
pass=0 fail=0 skip=0 bad=()
suite() { # name cmd...
	local name=$1; shift
	echo "### $name"
	local out rc line
	out=$("$@" 2>&1); rc=$?
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '^[a-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' | tail -1)
	if [ $rc -eq 77 ]; then skip=$((skip + 1)); echo "($name skipped)"; return; fi
	if [ -z "$line" ]; then fail=$((fail + 1)); bad+=("$name"); return; fi
	local p f s
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + ${s:-0}))
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); fi
	[ $rc -ne 0 ] && { bad+=("$name"); echo "($name exited $rc)"; }
}
suite check tools/check.sh "$build"
suite unit tests/unit/run.sh "$san"
[ -x tests/tools/run.sh ] && suite tools tests/tools/run.sh "$build"
[ -x tests/cli/run.sh ] && suite cli tests/cli/run.sh "$build"
# The Kubernetes API server double the sync's e2e runs against, checked against the
# API reference's protocol (loopback, no privileges).
suite k8s-double tests/k8s/run.sh
# The Helm chart (lint, golden renderings, schema); exits 77 without a Helm 3.
suite helm tests/helm/run.sh "$build"
[ -x tests/bpf/run.sh ] && suite bpf tests/bpf/run.sh "$build"
# 20 s per fuzzer: a smoke run against regressions; long runs: tests/fuzz/run.sh
suite fuzz tests/fuzz/run.sh --suite 20 "$build" all
suite e2e tests/e2e/run.sh "$build"
[ ${#bad[@]} -gt 0 ] && echo "failing suites: ${bad[*]}"
echo "total: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
