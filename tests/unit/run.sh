#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run every cmocka unit-test binary in BUILD/tests; print "unit: N passed, N failed".
# A binary exiting 77 is a skip (needs a privilege or kernel feature we lack).
set -u
build=${1:-build}
pass=0 fail=0 skip=0 failed=()
for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	out=$("$t" 2>&1); rc=$?
	n_ok=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
	n_bad=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
	n_skip=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | tail -1)
	pass=$((pass + ${n_ok:-0})); skip=$((skip + ${n_skip:-0}))
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		fail=$((fail + ${n_bad:-1})); failed+=("$(basename "$t")")
		printf '%s\n' "$out" | grep -E '^\[  (FAILED|ERROR) |error|Error|ERROR|Sanitizer' | head -20
	fi
	printf '  %-28s rc=%d passed=%s failed=%s\n' "$(basename "$t")" $rc "${n_ok:-0}" "${n_bad:-0}"
done
[ ${#failed[@]} -gt 0 ] && echo "failed binaries: ${failed[*]}"
echo "unit: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
