# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Helpers the benchmarks share, sourced after tests/e2e/lib.sh (in_ns) with $NS set.

# wait_listen ADDR:PORT: something accepts there (inside the namespace $NS)
wait_listen() {
	local i
	for ((i = 0; i < 50; i++)); do
		in_ns "$NS" ss -Htln "src $1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# stop_cg CG: end the processes this run started in CG (by pid) and wait for them, so
# the next path is measured on an idle machine. bg's pid is only a wrapper shell.
stop_cg() {
	local p i
	for p in $(cat "$1/cgroup.procs"); do kill -TERM "$p" 2>/dev/null; done
	for ((i = 0; i < 30; i++)); do
		[ -z "$(cat "$1/cgroup.procs")" ] && return 0
		sleep 0.1
	done
	for p in $(cat "$1/cgroup.procs"); do kill -KILL "$p" 2>/dev/null; done
}
