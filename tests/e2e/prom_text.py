#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Checks on Prometheus text expositions scraped from ringmeshd (tests/e2e/test_metrics.sh).
#   prom_text.py consistent FILE...   every scrape: per series, histogram _count ==
#                                     +Inf bucket, buckets cumulative, and
#                                     istio_requests_total == the duration histogram's
#                                     count; across scrapes (in order) nothing decreases
#   prom_text.py counts SERVICE FILE  "reporter version code flags count" per series
#                                     of istio_requests_total for that service
#   prom_text.py labels FILE          the label names of istio_requests_total and of
#                                     istio_tcp_sent_bytes_total, in order
import re, sys

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(path):
    out = []
    for ln in open(path):
        ln = ln.rstrip("\n")
        if not ln or ln.startswith("#"):
            continue
        m = LINE.match(ln)
        if not m:
            raise SystemExit("%s: unparsable line: %s" % (path, ln))
        labels = LABEL.findall(m.group(3) or "")
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def key(labels, drop=("le",)):
    return tuple((k, v) for k, v in labels if k not in drop)


def consistent(files):
    bad = 0
    prev = {}
    for f in files:
        s = parse(f)
        req = {}
        hist = {}  # (family, key) -> {"b": [(le, v)], "count": v}
        for name, labels, v in s:
            if name == "istio_requests_total":
                req[key(labels)] = v
            for fam in ("istio_request_duration_milliseconds", "istio_request_bytes",
                        "istio_response_bytes"):
                if name == fam + "_bucket":
                    le = dict(labels)["le"]
                    hist.setdefault((fam, key(labels)), {"b": []})["b"].append(
                        (float("inf") if le == "+Inf" else float(le), v))
                elif name == fam + "_count":
                    hist.setdefault((fam, key(labels)), {"b": []})["count"] = v
        for (fam, k), h in hist.items():
            b = sorted(h["b"])
            if len(b) != 20 or b[-1][0] != float("inf"):
                print("%s: %s: %d buckets" % (f, fam, len(b)))
                bad += 1
                continue
            if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                print("%s: %s %s: buckets not cumulative" % (f, fam, k))
                bad += 1
            if h.get("count") != b[-1][1]:
                print("%s: %s %s: _count %s != +Inf %s" % (f, fam, k, h.get("count"), b[-1][1]))
                bad += 1
            if req.get(k) != b[-1][1]:
                print("%s: %s %s: istio_requests_total %s != +Inf %s" % (f, fam, k, req.get(k), b[-1][1]))
                bad += 1
        for k, v in req.items():
            if v < prev.get(k, 0):
                print("%s: %s went down: %s -> %s" % (f, k, prev[k], v))
                bad += 1
        prev.update(req)
    print("%d scrapes, %s" % (len(files), "consistent" if not bad else "%d problems" % bad))
    return 1 if bad else 0


def counts(service, f):
    agg = {}
    for name, labels, v in parse(f):
        d = dict(labels)
        if name != "istio_requests_total" or d.get("destination_service") != service:
            continue
        k = (d["reporter"], d["destination_version"], d["response_code"], d["response_flags"])
        agg[k] = agg.get(k, 0) + int(v)
    for k in sorted(agg):
        print(" ".join(k), agg[k])
    return 0


def labels(f):
    seen = set()
    for name, lab, v in parse(f):
        if name in ("istio_requests_total", "istio_tcp_sent_bytes_total") and name not in seen:
            seen.add(name)
            print(name, ",".join(k for k, _ in lab))
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "consistent":
        sys.exit(consistent(sys.argv[2:]))
    if cmd == "counts":
        sys.exit(counts(sys.argv[2], sys.argv[3]))
    if cmd == "labels":
        sys.exit(labels(sys.argv[2]))
    raise SystemExit("unknown command " + cmd)
