# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Idle keep-alive client for tools/bench/mem.sh (a benchmark helper, not a test).

Opens connections to HOST:PORT, one GET each (the whole response read), and keeps
them open. At every checkpoint in STEPS it prints "at N ok=.. failed=.." and waits
for a line on stdin; after the last one it closes everything and prints "closed".
"""
import socket
import sys


def one(host, port):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise OSError("closed before the head")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            raise OSError("closed in the body")
        body += d
    return s


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    steps = [int(x) for x in sys.argv[3].split(",")]
    socks, failed = [], 0
    for target in steps:
        while len(socks) + failed < target:
            try:
                socks.append(one(host, port))
            except OSError as e:
                failed += 1
                if failed <= 3:
                    print("error:", e, file=sys.stderr, flush=True)
        print(f"at {target} ok={len(socks)} failed={failed}", flush=True)
        sys.stdin.readline()
    for s in socks:
        s.close()
    print("closed", flush=True)
    sys.stdin.readline()


main()
