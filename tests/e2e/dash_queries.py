#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run every PromQL expression of Grafana dashboards against a Prometheus, with the
# dashboards' template variables substituted, and report which panels have data.
#   dash_queries.py --prom http://127.0.0.1:PORT [--var NAME=VALUE ...]
#                   [--rate-interval 5m] [--time UNIX] DASHBOARD.json...
# Variables not given: multi-value ones become ".*" (Grafana's "All" with =~), others
# fail. Prints one line per panel, "data"/"empty" and what it expected, and exits 1
# when a panel expected to have data has none, or a query is refused by Prometheus.
# A panel is expected empty when its every query needs what ringmesh does not have
# yet: mTLS (connection_security_policy="mutual_tls"), source identity (outbound rows
# selecting source_workload), gRPC message counters.
import argparse, json, re, sys, urllib.parse, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--prom", required=True)
ap.add_argument("--var", action="append", default=[])
ap.add_argument("--rate-interval", default="5m")
ap.add_argument("--time")
ap.add_argument("dashboards", nargs="+")
a = ap.parse_args()
given = dict(v.split("=", 1) for v in a.var)


def query(expr):
    q = {"query": expr}
    if a.time:
        q["time"] = a.time
    url = a.prom + "/api/v1/query?" + urllib.parse.urlencode(q)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            d = json.load(r)
    except urllib.error.HTTPError as e:
        return None, e.read().decode()[:300]
    if d.get("status") != "success":
        return None, str(d)[:300]
    res = d["data"]["result"]
    if d["data"]["resultType"] == "scalar":
        return 1, None
    # NaN answers (0/0 ratios) are data points too, as Grafana shows them
    return len(res), None


def query_vector(expr):
    q = {"query": expr}
    if a.time:
        q["time"] = a.time
    url = a.prom + "/api/v1/query?" + urllib.parse.urlencode(q)
    with urllib.request.urlopen(url, timeout=10) as r:
        d = json.load(r)
    return d["data"]["result"] if d.get("status") == "success" else []


def var_options(v, subst):
    """Options Grafana would offer for a query_result() variable: each result as
    '{k="v", ...} value', through the variable's regex."""
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    m = re.match(r"^\s*query_result\((.*)\)\s*$", q or "", re.S)
    if not m:
        return None
    rx = (v.get("regex") or "").strip()
    rx = re.compile(rx[1:-1]) if rx.startswith("/") and rx.endswith("/") else None
    opts = set()
    for r in query_vector(subst(m.group(1))):
        line = "{%s} %s" % (", ".join('%s="%s"' % kv for kv in sorted(r["metric"].items())), r["value"][1])
        if rx:
            mm = rx.match(line)
            if mm and mm.groups():
                opts.add(mm.group(1))
        else:
            opts.add(line)
    return sorted(opts)


def expect_empty(expr):
    # the mTLS-only half of a pair of panels
    if re.search(r'connection_security_policy="mutual_tls"', expr):
        return True
    # outbound: selects the workload as the source (source identity is unknown yet)
    if re.search(r'source_workload=~"\$workload"', expr):
        return True
    if re.search(r"istio_(request|response)_messages_total", expr):
        return True
    return False


bad = 0
have = []
for path in a.dashboards:
    d = json.load(open(path))
    multi = {v["name"] for v in d.get("templating", {}).get("list", []) if v.get("multi")}

    def subst(expr):
        def one(m):
            n = m.group(1) or m.group(2)
            if n == "__rate_interval" or n == "__interval":
                return a.rate_interval
            if n in given:
                return given[n]
            if n in multi:
                return ".*"
            raise KeyError(n)
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)

    def panels(ps):
        # rows either nest their panels (collapsed) or precede them in the flat list
        rowt = ""
        for p in ps:
            if p.get("type") == "row":
                rowt = p.get("title", "")
                for q in p.get("panels", []):
                    yield rowt, q
                continue
            yield rowt, p

    title = d.get("title", path)
    # the drop-downs: the value given for a variable must be one Grafana would offer
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        try:
            opts = var_options(v, subst)
        except KeyError:
            continue
        if opts is None:
            continue
        want = given.get(v["name"])
        verdict = "ok"
        if want is not None and want not in opts:
            verdict = "VALUE NOT OFFERED: %s" % want
            bad += 1
        print("var   %s / $%s: %s %s" % (title, v["name"], opts or "(none)", verdict))
    for rowt, p in panels(d.get("panels", [])):
        exprs = [t["expr"] for t in p.get("targets", []) if t.get("expr")]
        if not exprs:
            continue
        n_series, errs = 0, []
        for e in exprs:
            try:
                q = subst(e)
            except KeyError as k:
                errs.append("no value for $%s" % k.args[0])
                continue
            n, err = query(q)
            if err:
                errs.append("%s: %s" % (q[:120], err))
            else:
                n_series += n
        want_empty = all(expect_empty(e) for e in exprs)
        state = "data" if n_series else "empty"
        name = "%s / %s / %s" % (title, rowt or "-", p.get("title", "?"))
        verdict = "ok"
        if errs:
            verdict = "QUERY ERROR: " + "; ".join(errs)
            bad += 1
        elif not n_series and not want_empty:
            verdict = "MISSING DATA"
            bad += 1
        elif n_series and want_empty:
            verdict = "ok (data where none was expected)"
        print("%-5s %s [%d series; expected %s] %s" % (
            state, name, n_series, "empty" if want_empty else "data", verdict))
        if n_series:
            have.append(name)
print("panels with data: %d" % len(have))
sys.exit(1 if bad else 0)
