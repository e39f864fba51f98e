# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Where a benchmark run's slow requests spent their time (a benchmark helper, not a test).

Reads what `PROF=sched tools/bench/l7.sh` records for each run (system-wide sched_switch
and sched_wakeup, the kernel stack of every switch into uninterruptible sleep, workqueue
items, and wrk's write/read syscalls), or a `perf script` text of the same events, and
prints per run:
- the requests seen (wrk's write of a request on a socket -> its first read there that
  returns bytes): p50, p99 and max as measured, how many took more than 10 ms, and the
  p99 wrk itself prints for the same requests. wrk corrects for coordinated omission
  (stats_correct in its wrk.c): every latency n >= 2 x the mean per-connection interval
  adds samples n - i, n - 2i, ... down to i, so a handful of 30-100 ms requests among
  tens of thousands become a p99 of 10-70 ms;
- uninterruptible sleeps (D) of the client, proxy and backend by kernel stack (on the
  sk_msg path: __lock_sock in tcp_bpf_sendmsg_redir / tcp_bpf_recvmsg, a socket lock
  held by the other side of a redirect), and psock work items run (sk_psock_backlog
  would be the psock's deferred delivery; an sk_msg ingress redirect never uses it);
- of the time of all requests over 10 ms: how much had a thread of client, proxy
  (its workers) or backend waiting for a CPU, else in D, else running, else all asleep;
- the N slowest requests: for each thread of the client (comm wrk), the proxy and the
  backend, how long it ran, waited for a CPU (runnable: woken or preempted) and slept,
  and what ran on the CPUs meanwhile.
Roles come from a FILE.roles beside the recording (lines "proxy TID..." and "backend
TID...", written by l7.sh); without it, by name (wrk, ringmeshd-*, haproxy, nginx).

Usage: python3 stalls.py [--slowest N] [--script] FILE...
  FILE: perf.data of PROF=sched (perf script is run on it), or with --script the text of
  `perf script -F comm,tid,cpu,time,event,trace,ip,sym` of it.
"""
import argparse
import bisect
import collections
import math
import os
import re
import subprocess
import sys

SLOW_US = 10000
HDR = re.compile(r"^\s*(.+?)\s+(\d+) \[(\d+)\] (\d+\.\d+):\s+(\S+):\s?(.*)$")
KV = re.compile(r"(\w+)=(\S+)")
SCHED_FRAMES = {"__schedule", "schedule", "schedule_timeout", "io_schedule",
                "schedule_preempt_disabled", "preempt_schedule_common", "__cond_resched"}


def perf_lines(path, text):
    if text:
        return open(path, errors="replace")
    p = subprocess.run(["perf", "script", "-i", path, "-F",
                        "comm,tid,cpu,time,event,trace,ip,sym"],
                       capture_output=True, text=True, errors="replace")
    if p.returncode:
        sys.exit(f"perf script -i {path}: {p.stderr.strip()}")
    return p.stdout.splitlines()


def first_int(s):
    tok = s.strip().split()
    if not tok:
        return None
    try:
        return int(tok[0], 0)
    except ValueError:
        return None


def field(rest, name):
    m = re.search(r"\b" + name + r": (0x[0-9a-f]+|-?\d+)", rest)
    return int(m.group(1), 0) if m else None


class Trace:
    """One recording: task state transitions, CPU occupancy, wrk's requests."""

    def __init__(self):
        self.states = collections.defaultdict(list)  # tid -> [(t, state)]
        self.times = {}  # tid -> the times of its states, for bisect
        self.comm = {}
        self.cpu = collections.defaultdict(list)  # cpu -> [(t, comm, tid)] switch-ins
        self.dsleep_at = []  # (t, tid, stack) of each switch into D with a stack
        self.work = collections.Counter()
        self.reqs = []  # (latency_us, t0, t1, fd)
        self.fds = set()
        self.t_first = self.t_last = None

    def parse(self, lines):
        seen = set()
        pend = {}  # fd -> write time
        rfd = {}  # tid -> fd of the read in progress
        stack, stack_of = None, None
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("\t"):
                if stack is not None:
                    f = line.split()
                    if len(f) >= 2 and f[1] not in SCHED_FRAMES and len(stack) < 4:
                        stack.append(f[1])
                continue
            if stack is not None:
                self.end_stack(stack_of, stack)
                stack = None
            m = HDR.match(line)
            if not m:
                continue
            comm, tid, cpu, t = m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4))
            ev, rest = m.group(5), m.group(6)
            if ev == "sched:sched_switch":
                d = dict(KV.findall(rest))
                # A switch into D is recorded twice, once with its call chain.
                if (tid, t) not in seen:
                    seen.add((tid, t))
                    self.switch(t, cpu, d)
                if d.get("prev_state", "").startswith("D"):
                    stack, stack_of = [], (t, int(d["prev_pid"]), d["prev_comm"])
            elif ev == "sched:sched_wakeup":
                d = dict(KV.findall(rest))
                pid = int(d["pid"])
                self.comm[pid] = d["comm"]
                st = self.states[pid]
                if st and st[-1][1] in ("sleep", "D"):
                    st.append((t, "runnable"))
            elif ev == "workqueue:workqueue_execute_start":
                f = re.search(r"function (\S+)", rest)
                if f and f.group(1).startswith("sk_psock"):
                    self.work[f.group(1)] += 1
            elif comm == "wrk" and ev == "syscalls:sys_enter_write":
                fd = field(rest, "fd")
                if fd is not None and fd > 2:
                    pend[fd] = t
                    self.fds.add(fd)
                    self.t_first = t if self.t_first is None else self.t_first
            elif comm == "wrk" and ev == "syscalls:sys_enter_read":
                rfd[tid] = field(rest, "fd")
            elif comm == "wrk" and ev == "syscalls:sys_exit_read":
                fd, ret = rfd.pop(tid, None), first_int(rest)
                if fd in pend and ret is not None and ret > 0:
                    t0 = pend.pop(fd)
                    self.reqs.append((round((t - t0) * 1e6), t0, t, fd))
                    self.t_last = t
        if stack is not None:
            self.end_stack(stack_of, stack)

    def end_stack(self, of, stack):
        if stack:  # the event without a call chain of the same switch has none
            self.dsleep_at.append((of[0], of[1], " < ".join(stack)))

    def switch(self, t, cpu, d):
        prev, nxt = int(d["prev_pid"]), int(d["next_pid"])
        self.comm[prev], self.comm[nxt] = d["prev_comm"], d["next_comm"]
        ps = d.get("prev_state", "R")
        if prev:
            st = "runnable" if ps.startswith("R") else ("D" if ps.startswith("D") else "sleep")
            self.states[prev].append((t, st))
        if nxt:
            self.states[nxt].append((t, "run"))
        self.cpu[cpu].append((t, d["next_comm"], nxt))

    def spans(self, tid, t0, t1):
        """(from, to, state) of tid between t0 and t1; the state before the first event
        is what that event leaves (e.g. 'run' before a switch-out)."""
        ev = self.states.get(tid, [])
        if tid not in self.times:
            self.times[tid] = [t for t, _ in ev]
        i = bisect.bisect_left(self.times[tid], t0)
        if i:
            cur = ev[i - 1][1]
        elif ev:
            cur = {"run": "runnable", "runnable": "sleep"}.get(ev[0][1], "run")
        else:
            return []
        out, at = [], t0
        for t, st in ev[i:]:
            if t > t1:
                break
            if t > at:
                out.append((at, t, cur))
            cur, at = st, t
        out.append((at, t1, cur))
        return out

    def time_in(self, tid, t0, t1):
        """Seconds in each state between t0 and t1."""
        out = collections.Counter()
        for a, b, st in self.spans(tid, t0, t1):
            out[st] += b - a
        return out

    def on_cpus(self, t0, t1):
        use = collections.Counter()
        for ins in self.cpu.values():
            for j, (t, comm, tid) in enumerate(ins):
                end = ins[j + 1][0] if j + 1 < len(ins) else t1
                a, b = max(t, t0), min(end, t1)
                if b > a and tid:
                    use[comm] += b - a
        return use


def load_roles(path):
    roles = {}
    try:
        for line in open(path):
            f = line.split()
            for tid in f[1:]:
                roles[int(tid)] = f[0]
    except OSError:
        pass
    return roles


def role_of(tid, comm, roles):
    if comm == "wrk":
        return "client"
    if roles:
        return roles.get(tid)
    if comm.startswith("ringmeshd-w") or comm == "haproxy":
        return "proxy"
    if comm == "nginx":
        return "proxy/backend"
    return None


def path_tids(tr, roles):
    """The threads a request passes: the client's, the proxy's workers (ringmeshd-wN;
    all of its threads when none is named so) and the backend's."""
    tids = [t for t in tr.states if role_of(t, tr.comm.get(t, ""), roles)]
    workers = [t for t in tids if role_of(t, tr.comm[t], roles) != "client" and
               re.search(r"-w\d+$", tr.comm[t])]
    return [t for t in tids if role_of(t, tr.comm[t], roles) in ("client", "backend") or
            not workers or t in workers]


PRECEDENCE = ("runnable", "D", "run")  # what an instant counts as, first match


def where(tr, tids, t0, t1):
    """Seconds of [t0, t1] in which some thread of tids waited for a CPU, else slept in
    D, else ran; the rest, all of them asleep."""
    marks = collections.defaultdict(lambda: collections.Counter())
    for tid in tids:
        for a, b, st in tr.spans(tid, t0, t1):
            if st in PRECEDENCE:
                marks[a][st] += 1
                marks[b][st] -= 1
    out, live, prev = collections.Counter(), collections.Counter(), t0
    for t in sorted(marks):
        cls = next((st for st in PRECEDENCE if live[st] > 0), "asleep")
        out[cls] += t - prev
        live.update(marks[t])
        prev = t
    out["asleep"] += t1 - prev
    return out


def wrk_p99(lat, conns, runtime_us):
    """The p99 wrk prints for these latencies: its stats_correct, then its percentile."""
    if not lat:
        return 0
    hist = collections.Counter(lat)
    per_conn = len(lat) // max(conns, 1)
    if per_conn:
        interval = int(runtime_us) // per_conn
        if interval > 0:
            for n in sorted(hist):
                if n < 2 * interval:
                    continue
                count, m = hist[n], n - interval
                while count and m > interval:
                    hist[m] += count
                    m -= interval
    total = sum(hist.values())
    rank = math.floor(0.99 * total + 0.5 + 0.5)  # C's round(p * count + 0.5)
    acc = 0
    for n in sorted(hist):
        acc += hist[n]
        if acc >= rank:
            return n
    return max(hist)


def pct(sorted_lat, p):
    rank = math.floor(p / 100 * len(sorted_lat) + 0.5 + 0.5)  # as wrk ranks
    return sorted_lat[min(len(sorted_lat), max(rank, 1)) - 1]


def ms(us):
    return f"{us / 1000:.2f} ms"


def report(name, tr, roles, slowest):
    print(f"== {name}")
    lat = sorted(r[0] for r in tr.reqs)
    if not lat:
        print("  no wrk requests in the recording (record wrk's write/read syscalls)")
    else:
        runtime = (tr.t_last - tr.t_first) * 1e6
        nslow = sum(1 for x in lat if x > SLOW_US)
        print(f"  {len(lat)} requests on {len(tr.fds)} connection(s) in {runtime / 1e6:.2f} s:"
              f" p50 {ms(pct(lat, 50))}, p99 {ms(pct(lat, 99))}, max {ms(lat[-1])};"
              f" {nslow} over {SLOW_US // 1000} ms; wrk would print p99"
              f" {ms(wrk_p99(lat, len(tr.fds), runtime))}")
    ds = collections.Counter((tr.comm.get(tid, "?"), st) for t, tid, st in tr.dsleep_at
                             if role_of(tid, tr.comm.get(tid, ""), roles))
    slow = [(t0, t1) for us, t0, t1, fd in tr.reqs if us > SLOW_US]
    with_d = sum(1 for t0, t1 in slow if any(
        t0 <= t <= t1 and role_of(tid, tr.comm.get(tid, ""), roles) for t, tid, st in tr.dsleep_at))
    if ds:
        print(f"  uninterruptible sleeps (D) of client, proxy, backend"
              f" (in {with_d} of the {len(slow)} requests over {SLOW_US // 1000} ms):")
        for (comm, st), n in ds.most_common(8):
            print(f"    {n:6d}  {comm:14s} {st}")
    else:
        print("  uninterruptible sleeps (D) of client, proxy, backend: none")
    if slow:
        tids, tot = path_tids(tr, roles), collections.Counter()
        for t0, t1 in slow:
            tot.update(where(tr, tids, t0, t1))
        whole = sum(tot.values()) or 1
        print(f"  the {len(slow)} requests over {SLOW_US // 1000} ms: of their time,"
              f" {100 * tot['runnable'] / whole:.0f} % with a thread of client, proxy or"
              f" backend waiting for a CPU, {100 * tot['D'] / whole:.1f} % else with one in D,"
              f" {100 * tot['run'] / whole:.0f} % else with one running,"
              f" {100 * tot['asleep'] / whole:.0f} % with all asleep")
    work = ", ".join(f"{k} {v}" for k, v in sorted(tr.work.items())) or "none"
    print(f"  psock work items run: {work}")
    for us, t0, t1, fd in sorted(tr.reqs, reverse=True)[:slowest]:
        print(f"  request at {t0:.6f} on fd {fd}: {ms(us)}")
        tids = [t for t in tr.states if role_of(t, tr.comm.get(t, ""), roles)]
        for tid in sorted(tids, key=lambda t: (role_of(t, tr.comm[t], roles), t)):
            spent = tr.time_in(tid, t0, t1)
            if not spent or spent.get("sleep", 0) >= (t1 - t0) * 0.999:
                continue  # not involved (slept throughout)
            parts = ", ".join(f"{s} {v * 1e3:.1f}" for s, v in
                              sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 5e-5)
            print(f"    {role_of(tid, tr.comm[tid], roles):13s} {tr.comm[tid]:14s} ms: {parts}")
        use = tr.on_cpus(t0, t1)
        tot = sum(use.values())
        top = ", ".join(f"{c} {v * 1e3:.1f}" for c, v in use.most_common(6))
        print(f"    on the CPUs ({tot * 1e3:.1f} CPU-ms): {top}")
        for t, tid, st in tr.dsleep_at:
            if t0 <= t <= t1 and role_of(tid, tr.comm.get(tid, ""), roles):
                print(f"    D at +{(t - t0) * 1e3:.2f} ms: {tr.comm[tid]} {st}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slowest", type=int, default=3)
    ap.add_argument("--script", action="store_true", help="FILEs are perf script text")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    for f in a.files:
        tr = Trace()
        tr.parse(perf_lines(f, a.script))
        base = f[:-5] if f.endswith(".text") else f
        report(os.path.basename(base), tr, load_roles(base + ".roles"), a.slowest)


if __name__ == "__main__":
    main()
