# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# TCP client for test_tcp_breaker.sh, against rm-backend --mode whoami (it writes
# "peer=IP:PORT local=IP:PORT name=NAME" at once). One line per connection:
#   ok LOCAL MS       the backend answered; LOCAL is the endpoint it listens on
#   closed MS         closed or reset before any byte (MS from the connect)
#   timeout MS        nothing within 3 s
# Usage: tcp_client.py seq ADDR:PORT N     N connections one after another
#        tcp_client.py limit ADDR:PORT     two held, a third, one closed, a fourth
import socket
import sys
import time


def conn(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(3)
    t0 = time.monotonic()
    try:
        # the proxy's reset may beat the handshake's end: the connect sees it
        s.connect((host, int(port)))
        d = s.recv(200)
    except (ConnectionResetError, ConnectionRefusedError):
        d = b""
    except socket.timeout:
        d = None
    ms = (time.monotonic() - t0) * 1000
    if d is None:
        print("timeout %.0f" % ms, flush=True)
    elif not d:
        print("closed %.0f" % ms, flush=True)
    else:
        local = [w[6:] for w in d.decode().split() if w.startswith("local=")]
        print("ok %s %.0f" % (local[0] if local else "?", ms), flush=True)
    return s


def main():
    cmd, addr = sys.argv[1], sys.argv[2]
    if cmd == "seq":
        for _ in range(int(sys.argv[3])):
            conn(addr).close()
    elif cmd == "limit":
        c1, c2 = conn(addr), conn(addr)
        conn(addr).close()
        c1.close()
        time.sleep(0.3)  # the proxy sees the FIN and frees the slot
        c4 = conn(addr)
        for s in (c2, c4):
            s.close()


main()
