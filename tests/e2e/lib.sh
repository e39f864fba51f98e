# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Shared harness for the end-to-end tests: a "node" made only of things this run
# creates (a cgroup subtree, a pin dir, network namespaces), TAP-like results, and a
# cleanup that runs on every exit path. Sourced by tests/e2e/test_*.sh.
#
# Safety (DESIGN.md): programs attach only to $CG (created here, never the cgroup2
# root); pins live only under $PIN; pod-like addresses exist only inside namespaces
# created here, none with a default route, VIP ranges routed unreachable.

set -u
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
# The daemon under test: $RINGMESHD overrides the build's own (make test-asan runs the
# suites against build-san's ASan/UBSan daemon while the CLI and test tools stay plain).
RINGMESHD=$(realpath "${RINGMESHD:-$BUILD/ringmeshd}")
# Sanitizer settings for that daemon (no effect on a plain build): leaks checked at
# exit, the first ASan error aborts, UBSan reports with a stack and goes on so the rest
# of the suite still runs; every report lands in ringmeshd.log, which san_check reads.
RM_ASAN_OPTIONS=${RM_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1}
RM_UBSAN_OPTIONS=${RM_UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=0}
RUN_ID=${RUN_ID:-$$}
T_PASS=0 T_FAIL=0 T_SKIP=0
PIDS=()
NETNS=()
CGROUP2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
CG=$CGROUP2/rm-e2e-$RUN_ID
PIN=/sys/fs/bpf/rm-e2e-$RUN_ID
TMP=$(mktemp -d /tmp/rm-e2e-$RUN_ID.XXXX)
RINGMESHD_PID=

ok() { T_PASS=$((T_PASS + 1)); echo "ok - $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "not ok - $*"; }
skip() { T_SKIP=$((T_SKIP + 1)); echo "skip - $*"; }
check() { # check "description" command...
	local d=$1; shift
	if "$@" >"$TMP/check.out" 2>&1; then ok "$d"; else fail "$d"; sed 's/^/    # /' "$TMP/check.out" | head -20; fi
}
summary() {
	san_check
	echo "$1: $T_PASS passed, $T_FAIL failed, $T_SKIP skipped"
	[ $T_FAIL -eq 0 ]
}

# A sanitizer report in the daemon's log is a failure of the suite even when every
# check passed (a leak shows only at exit, a UBSan report never changes behaviour).
# Called by summary and again at cleanup, after the daemon has stopped; each report is
# failed (and shown) once.
SAN_SEEN=0
SAN_RE='ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|WARNING: AddressSanitizer'
san_check() {
	local log=$TMP/ringmeshd.log n
	[ -f "$log" ] || return 0
	n=$(grep -cE "$SAN_RE" "$log")
	[ "$n" -gt "$SAN_SEEN" ] || return 0
	fail "ringmeshd log: $((n - SAN_SEEN)) sanitizer report(s) ($(basename "$RINGMESHD") from $(basename "$(dirname "$RINGMESHD")"))"
	# From the first new report on: the report and its stack, enough to act on.
	grep -nE "$SAN_RE" "$log" | sed -n "$((SAN_SEEN + 1)),\$p" | head -1 | cut -d: -f1 |
		{ read -r from; sed -n "${from},\$p" "$log"; } | head -80 | sed 's/^/    # /'
	SAN_SEEN=$n
}

need_root() {
	if [ "$(id -u)" -ne 0 ]; then echo "skip: end-to-end tests need root (BPF, cgroups, netns)"; exit 77; fi
	[ -n "$CGROUP2" ] || { echo "skip: no cgroup2 mount"; exit 77; }
	mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf
	# One end-to-end suite at a time on this machine: they measure timings (fail-open
	# within 2 s, timeouts) that a concurrent suite's load would distort.
	# fd 8 is closed in every child we start (8>&-), so an orphan cannot keep the lock.
	exec 8>/tmp/ringmesh-e2e.lock
	flock -w 900 8 || { echo "another end-to-end suite held the lock for 15 min"; exit 1; }
}

cleanup() {
	local rc=$?
	set +e
	[ -n "$RINGMESHD_PID" ] && kill -TERM "$RINGMESHD_PID" 2>/dev/null && wait_gone "$RINGMESHD_PID" 3
	for p in "${PIDS[@]}" ${RINGMESHD_PID:-}; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	# A report written after summary (a leak found when the daemon stopped here) still
	# fails the run: through the exit status, which run.sh counts.
	local seen=$SAN_SEEN
	san_check
	[ "$SAN_SEEN" -gt "$seen" ] && [ $rc -eq 0 ] && rc=1
	# Pinned links hold the attachment: removing the pins detaches. "$PIN"-NAME: a
	# suite's further pin dirs (a second configuration store).
	[ -d "$PIN" ] && rm -rf "$PIN"
	for d in "$PIN"-*; do [ -d "$d" ] && rm -rf "$d"; done
	# Anything still running inside our namespaces (a namespace outlives its deletion
	# while a process holds it) is ours: kill it first.
	for ns in "${NETNS[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	if [ -d "$CG" ]; then
		find "$CG" -depth -type d | while read -r d; do
			for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
			rmdir "$d" 2>/dev/null
		done
	fi
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_gone() { # pid seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}
wait_file() { # file seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done
	return 1
}

mk_cgroup() { mkdir -p "$CG/$1"; echo "$CG/$1"; }

# in_cg CGROUP [NETNS] -- cmd...: run cmd as a process of that cgroup (and netns).
in_cg() {
	local cg=$1 ns=$2; shift 2
	[ "$1" = "--" ] && shift
	if [ -n "$ns" ]; then
		sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" nsenter --net=/run/netns/"$ns" "$@" 8>&-
	else
		sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@" 8>&-
	fi
}

# bg NAME cmd...: start a background process, remember it for cleanup. The pid
# remembered is the program's own (in_ns is expanded here so no wrapper shell sits
# between them and a kill would miss the program).
bg() {
	local name=$1; shift
	if [ "$1" = in_ns ]; then
		set -- nsenter --net=/run/netns/"$2" "${@:3}"
	fi
	"$@" >"$TMP/$name.log" 2>&1 8>&- &
	PIDS+=($!)
	eval "PID_$name=$!"
}

# start_ringmeshd CGROUP NETNS args...: run the daemon (in its own cgroup, outside the
# pods' subtree) and wait until `ringmesh status` says it is live.
# Unless the caller picks one, the metrics listener goes to a free loopback port
# (METRICS_ADDR), not the default 0.0.0.0:15090 of the machine.
start_ringmeshd() {
	local dcg=$1 ns=$2 a; shift 2
	METRICS_ADDR=
	local gw=
	local drain=
	for a in "$@"; do case $a in --metrics-listen*) METRICS_ADDR=given;; --gateway-dev*) gw=given;; --drain-timeout*) drain=given;; esac; done
	# A stop drains: a connection a check left open would hold it for the default 20 s,
	# past stop_ringmeshd's 5 s. Suites about the drain give their own.
	[ -n "$drain" ] || set -- "$@" --drain-timeout 3
	# No interface of ours in the machine's own namespace (safety rules); in a node
	# netns of the test the default ringmesh0 carries the pod gateway.
	[ -n "$gw" ] || [ -n "$ns" ] || set -- "$@" --gateway-dev off
	if [ -z "$METRICS_ADDR" ]; then
		METRICS_ADDR=127.0.0.1:$(free_port)
		set -- "$@" --metrics-listen "$METRICS_ADDR"
	fi
	local san=(env ASAN_OPTIONS="$RM_ASAN_OPTIONS" UBSAN_OPTIONS="$RM_UBSAN_OPTIONS")
	if [ -n "$ns" ]; then
		sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$dcg" "${san[@]}" \
			nsenter --net=/run/netns/"$ns" \
			"$RINGMESHD" --pin-dir "$PIN" "$@" >>"$TMP/ringmeshd.log" 2>&1 8>&- &
	else
		sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$dcg" "${san[@]}" \
			"$RINGMESHD" --pin-dir "$PIN" "$@" >>"$TMP/ringmeshd.log" 2>&1 8>&- &
	fi
	RINGMESHD_PID=$!
	local i
	for ((i = 0; i < 50; i++)); do
		"$BUILD/ringmesh" --pin-dir "$PIN" status >/dev/null 2>&1 && return 0
		kill -0 "$RINGMESHD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "ringmeshd did not come up:"; sed 's/^/    # /' "$TMP/ringmeshd.log" | tail -20
	return 1
}

stop_ringmeshd() {
	[ -n "$RINGMESHD_PID" ] || return 0
	kill -TERM "$RINGMESHD_PID" 2>/dev/null
	wait_gone "$RINGMESHD_PID" 5 || { kill -KILL "$RINGMESHD_PID"; return 1; }
	wait "$RINGMESHD_PID" 2>/dev/null
	local rc=$?
	RINGMESHD_PID=
	return $rc
}

# Programs attached anywhere under our cgroup subtree, one per line ("<path> <type>").
attached() {
	bpftool cgroup tree "$CG" 2>/dev/null | awk '/^\// { path = $1; next } NF >= 3 && $1 ~ /^[0-9]+$/ { print path, $2 }'
}

# requests_sum FILE LABEL-MATCHERS...: the sum of istio_requests_total over the lines of
# a Prometheus scrape (FILE) that have all of the matchers ('source_app="x"')
requests_sum() {
	local f=$1; shift
	awk -v m="$*" 'BEGIN { n = split(m, want, " ") }
		/^istio_requests_total\{/ { for (i = 1; i <= n; i++) if (index($0, want[i]) == 0) next; s += $NF }
		END { print s + 0 }' "$f"
}

free_port() { # a TCP port free on 127.0.0.1 now
	local p
	while :; do
		p=$((20000 + RANDOM % 10000))
		ss -Htln "sport = :$p" | grep -q . || { echo $p; return; }
	done
}
