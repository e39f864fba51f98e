#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Why ringmeshd hands its listening sockets over (SCM_RIGHTS) instead of letting the
# successor bind its own SO_REUSEPORT member: run as root in a netns of your own,
#   ip netns add m; ip -n m link set lo up
#   ip netns exec m python3 tools/bench/handover_sockets.py reuseport 20   # and fdpass
#   ip netns del m
# Each round: 4 clients connect in a loop, a second listener takes over, the first
# stops accepting and closes. reuseport loses what sat in the closed member's queue.
import socket, threading, time, sys
PORT = 15001
def listener():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", PORT)); s.listen(128); return s
def server(s, stop):
    s.settimeout(0.05)
    while not stop.is_set():
        try:
            c, _ = s.accept()
        except (socket.timeout, OSError):
            continue
        try:
            c.recv(16); c.sendall(b"ok"); c.close()
        except OSError:
            pass
stats = {"ok": 0, "fail": 0}
def client(end):
    while time.monotonic() < end:
        try:
            c = socket.create_connection(("127.0.0.1", PORT), timeout=2)
            c.sendall(b"hi"); d = c.recv(16); c.close()
            stats["ok" if d == b"ok" else "fail"] += 1
        except OSError:
            stats["fail"] += 1
mode = sys.argv[1]
rounds = int(sys.argv[2])
for r in range(rounds):
    a = listener(); sa = threading.Event(); ta = threading.Thread(target=server, args=(a, sa)); ta.start()
    end = time.monotonic() + 0.4
    cs = [threading.Thread(target=client, args=(end,)) for _ in range(4)]
    [t.start() for t in cs]
    time.sleep(0.15)
    if mode == "reuseport":
        b = listener()              # the successor binds its own member of the group
    else:
        b = socket.socket(fileno=socket.dup(a.fileno()))  # the same socket, as SCM_RIGHTS passes it
    sb = threading.Event(); tb = threading.Thread(target=server, args=(b, sb)); tb.start()
    sa.set(); ta.join(); a.close()  # the old one stops accepting and closes its listener
    [t.join() for t in cs]
    sb.set(); tb.join(); b.close()
print(mode, stats)
