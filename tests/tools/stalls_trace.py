# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A synthetic `perf script` text of what PROF=sched records, for tools/bench/stalls.py.

wrk (tid 100) makes 100 requests of 100 us on fd 5 through the proxy (200, ringmeshd-w0),
then one of 30 ms: the proxy, woken 10 us after the write, waits 20 ms for a CPU while
a busy loop (400, sh) holds both, runs 0.9 ms (sleeping 0.1 ms in D on a socket lock
and preempted for 0.1 ms on the way), then wrk waits ~9 ms for a CPU before its read. One sk_psock_backlog item
runs. The backend (300, nginx) sleeps throughout.
Usage: python3 stalls_trace.py OUT.text  (and writes OUT.roles)
"""
import sys

T0 = 1000.0
lines = []


def ev(t, comm, tid, cpu, name, rest):
    lines.append((t, f"{comm:>16s} {tid:5d} [{cpu:03d}] {t:.6f}: {name:>32s}: {rest}"))


def sw(t, cpu, pc, pp, ps, nc, np_, stack=None):
    rest = (f"prev_comm={pc} prev_pid={pp} prev_prio=120 prev_state={ps} ==> "
            f"next_comm={nc} next_pid={np_} next_prio=120")
    ev(t, pc, pp, cpu, "sched:sched_switch", rest)
    if stack:  # perf records a switch into D twice, the second time with its stack
        ev(t, pc, pp, cpu, "sched:sched_switch", rest + "".join(
            f"\n\tffffffff8{i:07x} {f}" for i, f in enumerate(["__schedule", "schedule"] + stack)))


def wake(t, cpu, by, byp, comm, pid):
    ev(t, by, byp, cpu, "sched:sched_wakeup", f"comm={comm} pid={pid} prio=120 target_cpu={cpu:03d}")


def req(t, dur):
    ev(t, "wrk", 100, 0, "syscalls:sys_enter_write", "fd: 0x00000005, buf: 0x7f00, count: 0x00000029")
    ev(t + dur - 2e-6, "wrk", 100, 0, "syscalls:sys_enter_read", "fd: 0x00000005, buf: 0x7f00, count: 0x00002000")
    ev(t + dur, "wrk", 100, 0, "syscalls:sys_exit_read", "0x240")


t = T0
sw(t - 0.001, 0, "swapper/0", 0, "R", "wrk", 100)
sw(t - 0.001, 1, "swapper/1", 0, "R", "ringmeshd-w0", 200)
sw(t - 0.0009, 1, "ringmeshd-w0", 200, "S", "swapper/1", 0)
for i in range(100):
    req(t, 100e-6)
    t += 110e-6
# the slow one: wrk writes and sleeps, the busy loop takes both CPUs
req(t, 30e-3)
sw(t + 5e-6, 0, "wrk", 100, "S", "sh", 400)
sw(t + 6e-6, 1, "swapper/1", 0, "R", "sh", 401)
wake(t + 10e-6, 0, "sh", 400, "ringmeshd-w0", 200)
sw(t + 20.01e-3, 1, "sh", 401, "R", "ringmeshd-w0", 200)
sw(t + 20.5e-3, 1, "ringmeshd-w0", 200, "D", "sh", 401,
   ["__lock_sock", "lock_sock_nested", "tcp_bpf_recvmsg", "sock_recvmsg"])
wake(t + 20.6e-3, 1, "sh", 401, "ringmeshd-w0", 200)
sw(t + 20.6e-3, 1, "sh", 401, "R", "ringmeshd-w0", 200)
sw(t + 20.8e-3, 1, "ringmeshd-w0", 200, "R", "sh", 401)  # preempted for 0.1 ms
sw(t + 20.9e-3, 1, "sh", 401, "R", "ringmeshd-w0", 200)
wake(t + 21.0e-3, 1, "ringmeshd-w0", 200, "wrk", 100)
sw(t + 21.1e-3, 1, "ringmeshd-w0", 200, "S", "sh", 401)
sw(t + 29.9e-3, 0, "sh", 400, "R", "wrk", 100)
ev(t + 25e-3, "kworker/0:2", 50, 0, "workqueue:workqueue_execute_start",
   "work struct 0xffff888100000000: function sk_psock_backlog")
ev(t + 26e-3, "kworker/0:2", 50, 0, "workqueue:workqueue_execute_start",
   "work struct 0xffff888100000040: function vmstat_update")

with open(sys.argv[1], "w") as f:
    for _, l in sorted(lines, key=lambda x: x[0]):
        f.write(l + "\n")
base = sys.argv[1][:-5] if sys.argv[1].endswith(".text") else sys.argv[1]
with open(base + ".roles", "w") as f:
    f.write("proxy 200\nbackend 300\n")
