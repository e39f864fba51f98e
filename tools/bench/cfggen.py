#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Synthetic configuration for the apply benchmark (tools/bench/cfg.sh).

Per service i (svc-<i> in namespace bench-<i // 1000>): a ServiceEntry with one
VIP (10.<100 + i / 65536>.x.y, port 8080) and three endpoints labelled version
v1/v2/v3, a DestinationRule with the three subsets, and a VirtualService with
three http rules: a header match (x-canary: yes -> v3), a 70/30 split of /api
between v1 and v2, and a default route to v1. That is 3 documents, 3 rules,
3 subsets and 3 endpoints per service: 1,000 services give 3,000 rules.

--change K rewrites the split of service K (70/30 -> 60/40): one changed rule
among all the others, for the "one rule changed" figure.

--live K=VIP,EP1,EP2,EP3 gives service K that VIP and those endpoints instead of
the synthetic ones: the one service a benchmark sends requests to
(tools/bench/cfgscale.sh), with the same rules as every other.

Usage: cfggen.py N [--change K] [--live K=VIP,EP1,EP2,EP3] [--out FILE]
       (default: stdout)
"""
import argparse
import sys

SE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: {ns}
spec:
  hosts: [{name}.{ns}.svc.cluster.local]
  addresses: [{vip}]
  ports:
  - {{number: 8080, name: http, protocol: HTTP}}
  resolution: STATIC
  endpoints:
  - address: {ep0}
    ports: {{http: 8080}}
    labels: {{app: {name}, version: v1}}
  - address: {ep1}
    ports: {{http: 8080}}
    labels: {{app: {name}, version: v2}}
  - address: {ep2}
    ports: {{http: 8080}}
    labels: {{app: {name}, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
  namespace: {ns}
spec:
  host: {name}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
  - name: v3
    labels: {{version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {ns}
spec:
  hosts: [{name}]
  http:
  - match:
    - headers:
        x-canary:
          exact: "yes"
    route:
    - destination: {{host: {name}, subset: v3}}
  - match:
    - uri: {{prefix: /api}}
    route:
    - destination: {{host: {name}, subset: v1}}
      weight: {w1}
    - destination: {{host: {name}, subset: v2}}
      weight: {w2}
  - route:
    - destination: {{host: {name}, subset: v1}}
---
"""


def ip(net, n):
    """10.net.(n >> 8).(n & 255), n < 65536."""
    return "10.%d.%d.%d" % (net, (n >> 8) & 255, n & 255)


def service(i, change, live):
    # VIPs from 10.100.0.0/14 upwards, endpoints from 10.200.0.0 upwards:
    # 65,536 addresses per /16, three endpoints per service.
    e = 3 * i
    addrs = [ip(100 + i // 65536, i % 65536)]
    addrs += [ip(200 + (e + k) // 65536, (e + k) % 65536) for k in range(3)]
    if live and live[0] == i:
        addrs = live[1]
    w1, w2 = (60, 40) if i == change else (70, 30)
    return SE.format(
        name="svc-%d" % i,
        ns="bench-%d" % (i // 1000),
        vip=addrs[0],
        ep0=addrs[1],
        ep1=addrs[2],
        ep2=addrs[3],
        w1=w1,
        w2=w2,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of services")
    ap.add_argument("--change", type=int, default=-1, help="service whose split changes")
    ap.add_argument("--live", help="K=VIP,EP1,EP2,EP3: service K's real addresses")
    ap.add_argument("--out", help="output file (default stdout)")
    a = ap.parse_args()
    if a.n < 1 or a.n > 50 * 65536 // 3:
        ap.error("n out of range")
    live = None
    if a.live:
        k, _, addrs = a.live.partition("=")
        live = (int(k), addrs.split(","))
        if len(live[1]) != 4 or not 0 <= live[0] < a.n:
            ap.error("--live K=VIP,EP1,EP2,EP3 with 0 <= K < N")
    out = open(a.out, "w") if a.out else sys.stdout
    for i in range(a.n):
        out.write(service(i, a.change, live))
    if a.out:
        out.close()


if __name__ == "__main__":
    main()
