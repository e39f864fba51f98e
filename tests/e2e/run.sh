#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run every end-to-end test script, one at a time (they share the machine), and
# print the total as "e2e: N passed, N failed, N skipped". RINGMESHD=PATH runs the
# suites against that daemon (make test-asan: build-san/ringmeshd) with the rest of
# BUILD's tools; a sanitizer report in its log fails the suite (lib.sh san_check).
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
[ -n "${RINGMESHD:-}" ] && echo "# daemon under test: $RINGMESHD"
pass=0 fail=0 skip=0
for t in "$here"/test_*.sh; do
	echo "# $(basename "$t")"
	out=$(BUILD=$build RUN_ID=$$-$RANDOM timeout 1200 bash "$t" 2>&1); rc=$?
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '^[a-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' | tail -1)
	if [ $rc -eq 77 ]; then skip=$((skip + 1)); continue; fi
	if [ -z "$line" ]; then fail=$((fail + 1)); echo "not ok - $(basename "$t") died (rc=$rc)"; continue; fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + ${s:-0}))
	[ $rc -ne 0 ] && [ "$f" -eq 0 ] && { fail=$((fail + 1)); echo "not ok - $(basename "$t") exited $rc"; }
done
echo "e2e: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
