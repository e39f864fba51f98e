# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Tables of tools/bench (a benchmark helper, not a test).

Reads the figures the benchmark scripts write (TSV: phase, path, metric, conns, round,
value; see rec in tools/bench/lib.sh) and prints Markdown: every figure as the median
of its rounds with the range (min-max), and comparisons that rank two results only
when a one-sided Mann-Whitney rank test on their rounds gives p <= 0.05, exact over
every split of the pooled rounds ("within noise" otherwise; with 3 rounds each that
is exactly "the ranges do not overlap", with 5 each at most 4 of the 25 cross pairs
may be in the other order; fewer than 3 rounds are not ranked). Optionally writes the plot's data (--plot-data FILE, one gnuplot block per L7
path) and replaces the part of a README between "<!-- bench:begin -->" and
"<!-- bench:end -->" with the tables (--readme FILE).

Usage: python3 summary.py [--out MD] [--plot-data DAT] [--img PNG] [--readme FILE] TSV...
"""
import argparse
import os
import re
import statistics
import sys


def sockmap_default():
    """ringmeshd's default mode, as opts.h has it (the tables name the default path)"""
    h = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "user",
                     "ringmeshd", "opts.h")
    try:
        m = re.search(r"^#define OPTS_SOCKMAP_DEFAULT ([01])\b", open(h).read(), re.M)
    except OSError:
        return None
    return None if not m else m.group(1) == "1"


SOCKMAP_DEFAULT = sockmap_default()
L7_PATHS = [("direct", "direct"),
            ("ringmesh", "ringmesh --sockmap" + (" (the default)" if SOCKMAP_DEFAULT else "")),
            ("nosockmap", "ringmesh --no-sockmap (plain TCP" +
             (", the default)" if SOCKMAP_DEFAULT is False else ")")),
            ("haproxy", "HAProxy"), ("nginx", "nginx")]
L4_PATHS = [("direct", "direct"), ("sockmap", "ringmesh, sk_msg shortcut"),
            ("nosockmap", "ringmesh, --no-sockmap (plain TCP)"),
            ("iptables", "ringmesh via iptables REDIRECT")]
MIN_RANKED = 3
P_RANKED = 0.05


def load(files):
    fig, meta, errs = {}, {}, {}
    for f in files:
        for line in open(f):
            p = line.rstrip("\n").split("\t")
            if len(p) != 6:
                continue
            phase, path, metric, conns, rnd, val = p
            if phase == "meta":
                meta.setdefault((path, metric), []).append(val)
            elif metric == "err":
                errs.setdefault((phase, path, conns), []).append(f"r{rnd}: {val}")
            else:
                fig.setdefault((phase, path, metric, conns), []).append(val)
    return fig, meta, errs


def num(vals):
    out = []
    for v in vals:
        try:
            out.append(float(v))
        except ValueError:
            pass
    return out


class Stat:
    def __init__(self, vals):
        self.v = sorted(vals)
        self.n = len(self.v)
        self.med = statistics.median(self.v) if self.v else None
        self.lo = self.v[0] if self.v else None
        self.hi = self.v[-1] if self.v else None


def stat(fig, *key):
    s = Stat(num(fig.get(key, [])))
    return s if s.n else None


def f_rate(x):
    return f"{x / 1000:.1f}k" if x >= 10000 else f"{x:.0f}"


def f_lat(x):
    return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.0f} µs"


def f_plain(x):
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def cell(s, f):
    if s is None:
        return "-"
    if s.n == 1:
        return f(s.med)
    return f"{f(s.med)} ({f(s.lo)}–{f(s.hi)})"


def u_stat(a, b):
    """Mann-Whitney U of a over b: pairs with a's value above b's, ties half"""
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)


def rank_p(a, b):
    """one-sided p of "a's rounds sit above b's": the share of all splits of the pooled
    rounds into groups of a's and b's sizes whose U is at least the observed one.
    Exact, ties as midranks (U = a's rank sum - n(n+1)/2, so U's order is the rank
    sum's), counted by subset sums over the doubled midranks instead of enumerating
    the C(2n, n) splits (12 rounds each: 2.7 million splits, ~10 s a comparison and
    8 minutes a summary that way; 3 ms a comparison this way)"""
    pool, n = a + b, len(a)
    order = sorted(range(len(pool)), key=lambda i: pool[i])
    r2 = [0] * len(pool)  # 2 x midrank: integers
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and pool[order[j + 1]] == pool[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r2[order[k]] = i + j + 2
        i = j + 1
    top = sum(sorted(r2)[-n:]) if n else 0
    ways = [[0] * (top + 1) for _ in range(n + 1)]  # ways[k][s]: k-subsets summing to s
    ways[0][0] = 1
    for w in r2:
        for k in range(n, 0, -1):
            src, dst = ways[k - 1], ways[k]
            for t in range(top - w, -1, -1):
                if src[t]:
                    dst[t + w] += src[t]
    return sum(ways[n][sum(r2[:n]):]) / sum(ways[n])


def compare(a, b, higher_better):
    """ratio a/b of the medians and a word: ahead, behind, within noise, not ranked"""
    if a is None or b is None or not b.med:
        return None, "-"
    r = a.med / b.med
    if min(a.n, b.n) < MIN_RANKED:
        return r, "not ranked"
    if a.med == b.med:
        return r, "within noise"
    hi, lo = (a, b) if a.med > b.med else (b, a)
    if rank_p(hi.v, lo.v) > P_RANKED:
        return r, "within noise"
    better = a.med > b.med if higher_better else a.med < b.med
    return r, "ahead" if better else "behind"


def cmp_cell(a, b, higher_better):
    r, w = compare(a, b, higher_better)
    return "-" if r is None else f"{r:.2f}x, {w}"


def conns_of(fig, phase):
    return sorted({int(k[3]) for k in fig if k[0] == phase and k[3].isdigit()})


def rounds_of(fig, phase):
    return max((len(v) for k, v in fig.items() if k[0] == phase), default=0)


def l7_tables(fig, errs, out):
    cs = conns_of(fig, "l7")
    if not cs:
        return
    paths = [(k, n) for k, n in L7_PATHS if any(x[0] == "l7" and x[1] == k for x in fig)]
    out.append(f"#### L7: small GET over keep-alive, by client connections "
               f"({rounds_of(fig, 'l7')} rounds)\n")
    for metric, title, f in (("rps", "requests/s", f_rate), ("p50", "p50 latency", f_lat),
                             ("p99", "p99 latency", f_lat),
                             ("cpu", "proxy CPU µs per request", f_plain)):
        out.append(f"| {title} | " + " | ".join(n for _, n in paths) + " |")
        out.append("|---" * (len(paths) + 1) + "|")
        for c in cs:
            row = [cell(stat(fig, "l7", k, metric, str(c)), f) if not
                   (metric == "cpu" and k == "direct") else "-" for k, _ in paths]
            out.append(f"| {c} conns | " + " | ".join(row) + " |")
        out.append("")
    # ringmesh with the shortcut against the rest, then plain TCP (the "nosockmap"
    # path) against the other proxies
    for subj, intro, skip in (
            ("ringmesh", "ringmesh `--sockmap` against the others", ("ringmesh", "direct")),
            ("nosockmap", "ringmesh with plain TCP (`--no-sockmap`) against the other proxies",
             ("ringmesh", "nosockmap", "direct"))):
        others = [(k, n) for k, n in paths if k not in skip]
        if not any(x[0] == "l7" and x[1] == subj for x in fig) or not others:
            continue
        out.append(intro + " (ratio of medians; ahead/behind only when the rank test ranks "
                   "them):\n")
        out.append("| conns | " + " | ".join(f"req/s vs {n}" for _, n in others) + " | " +
                   " | ".join(f"p99 vs {n}" for _, n in others) + " |")
        out.append("|---" * (2 * len(others) + 1) + "|")
        for c in cs:
            rm = [stat(fig, "l7", subj, m, str(c)) for m in ("rps", "p99")]
            row = [cmp_cell(rm[0], stat(fig, "l7", k, "rps", str(c)), True) for k, _ in others]
            row += [cmp_cell(rm[1], stat(fig, "l7", k, "p99", str(c)), False)
                    for k, _ in others]
            out.append(f"| {c} | " + " | ".join(row) + " |")
        out.append("")
    e = [f"{k[1]} c{k[2]}: {'; '.join(v)}" for k, v in sorted(errs.items()) if k[0] == "l7"]
    if e:
        out.append("wrk reported errors: " + " · ".join(e) + "\n")


def workers_tables(fig, errs, out):
    """phase l7wN (l7.sh WORKERS=N): every proxy on N workers/threads; ringmesh's modes
    (the shortcut, and plain TCP) each against the other proxies"""
    for ph in sorted({k[0] for k in fig if re.fullmatch(r"l7w[0-9]+", k[0])}):
        n = ph[3:]
        paths = [(k, nm) for k, nm in L7_PATHS if k != "direct" and stat(
            fig, ph, k, "rps", str(conns_of(fig, ph)[0]))]
        subjects = [(k, nm) for k, nm in paths if k in ("ringmesh", "nosockmap")]
        others = [(k, nm) for k, nm in paths if k not in ("ringmesh", "nosockmap")]
        if not subjects:
            continue
        out.append(f"#### L7 on {n} workers ({rounds_of(fig, ph)} rounds)\n")
        out.append(f"ringmeshd `--workers {n}`, HAProxy `nbthread {n}`, nginx "
                   f"`worker_processes {n}`, wrk `-t{n}`; the same 2 CPUs for all.\n")
        out.append("| conns | " + " | ".join(f"req/s {nm}" for _, nm in paths) + " | " +
                   " | ".join(f"p99 {nm}" for _, nm in paths) + " |")
        out.append("|---" * (2 * len(paths) + 1) + "|")
        for c in conns_of(fig, ph):
            row = [cell(stat(fig, ph, k, "rps", str(c)), f_rate) for k, _ in paths]
            row += [cell(stat(fig, ph, k, "p99", str(c)), f_lat) for k, _ in paths]
            out.append(f"| {c} | " + " | ".join(row) + " |")
        out.append("")
        if others:
            out.append("| conns | ringmesh | " +
                       " | ".join(f"req/s vs {nm}" for _, nm in others) + " | " +
                       " | ".join(f"p99 vs {nm}" for _, nm in others) + " |")
            out.append("|---" * (2 * len(others) + 2) + "|")
            for c in conns_of(fig, ph):
                for k, nm in subjects:
                    a = [stat(fig, ph, k, m, str(c)) for m in ("rps", "p99")]
                    row = [cmp_cell(a[0], stat(fig, ph, o, "rps", str(c)), True)
                           for o, _ in others]
                    row += [cmp_cell(a[1], stat(fig, ph, o, "p99", str(c)), False)
                            for o, _ in others]
                    out.append(f"| {c} | {nm} | " + " | ".join(row) + " |")
            out.append("")
        e = [f"{k[1]} c{k[2]}: {'; '.join(v)}" for k, v in sorted(errs.items()) if k[0] == ph]
        if e:
            out.append("wrk reported errors: " + " · ".join(e) + "\n")


def paced_table(fig, errs, out):
    paths = [(k, n) for k, n in L7_PATHS if stat(fig, "paced", k, "cpu", "9")]
    if not paths:
        return
    out.append(f"#### Proxy CPU per request at a paced load ({rounds_of(fig, 'paced')} rounds)\n")
    out.append("wrk -c9, every connection 2 ms between requests (at most 4.5k req/s); the "
               "proxy's cgroup CPU time over the requests completed.\n")
    hap = stat(fig, "paced", "haproxy", "cpu", "9")
    out.append("| proxy | requests/s | CPU µs per request | against HAProxy |")
    out.append("|---|---|---|---|")
    for k, n in paths:
        c = stat(fig, "paced", k, "cpu", "9")
        vs = "-" if k == "haproxy" else cmp_cell(c, hap, False)
        out.append(f"| {n} | {cell(stat(fig, 'paced', k, 'rps', '9'), f_rate)} | "
                   f"{cell(c, f_plain)} | {vs} |")
    out.append("")


def mem_table(fig, meta, out):
    names = [("ringmesh", "ringmesh (1 worker)"), ("ringmesh2", "ringmesh (2 workers)"),
             ("haproxy", "HAProxy (nbthread 1)"),
             ("nginx", "nginx (1 worker, master + worker)")]
    names = [(k, n) for k, n in names if ("mem", k, "rss", "idle") in fig]
    if not names:
        return
    steps = sorted({int(k[3]) for k in fig if k[0] == "mem" and k[3].isdigit()})
    out.append("#### Resident memory (VmRSS, MiB) holding idle keep-alive connections (one round)\n")
    out.append("| proxy | idle | " + " | ".join(f"{s:,} conns" for s in steps) +
               " | 3 s after all closed | per idle connection |")
    out.append("|---" * (len(steps) + 4) + "|")

    def rss(k, step):
        v = fig.get(("mem", k, "rss", step))
        return float(v[0].split("/")[0]) if v else None

    def ok(k, step):
        v = num(fig.get(("mem", k, "ok", step), []))
        return int(v[0]) if v else None

    for k, n in names:
        row = [f"{rss(k, 'idle') / 1024:.1f}"]
        for s in steps:
            r, o = rss(k, str(s)), ok(k, str(s))
            t = "-" if r is None else f"{r / 1024:.1f}"
            if o is not None and o < s:
                t += f" (only {o:,} held)"
            row.append(t)
        c = rss(k, "closed")
        row.append("-" if c is None else f"{c / 1024:.1f}")
        per = "-"
        if len(steps) >= 2:
            a, b = steps[0], steps[-1]
            ra, rb, oa, ob = rss(k, str(a)), rss(k, str(b)), ok(k, str(a)), ok(k, str(b))
            if None not in (ra, rb, oa, ob) and ob > oa:
                per = f"{(rb - ra) / (ob - oa):.2f} KiB"
        row.append(per)
        out.append(f"| {n} | " + " | ".join(row) + " |")
    out.append("")


L4_COLS = [("rr1", "1", "rr 1 conn (req/s)", f_rate, True),
           ("rr1_p50", "1", "p50", f_lat, False), ("rr1_p99", "1", "p99", f_lat, False),
           ("rr8", "8", "rr 8 conns (req/s)", f_rate, True),
           ("bulk", "1", "bulk (MB/s)", f_plain, True)]


def l4_table(fig, out):
    paths = [(k, n) for k, n in L4_PATHS if stat(fig, "l4", k, "rr1", "1")]
    if not paths:
        return
    out.append(f"#### L4: 64 B round trips and bulk ({rounds_of(fig, 'l4')} rounds)\n")
    out.append("| path | " + " | ".join(c[2] for c in L4_COLS) + " |")
    out.append("|---" * (len(L4_COLS) + 1) + "|")
    for k, n in paths:
        out.append(f"| {n} | " + " | ".join(cell(stat(fig, "l4", k, m, c), f)
                                            for m, c, _, f, _ in L4_COLS) + " |")
    out.append("")


# The sk_msg verdict weighs the figures by what they measure. A group is one measurement
# at every connection count; three rounds rank throughput but almost never a p99 (its
# ranges overlap), so counting every figure as a vote let unrankable latencies outvote
# throughput that was ahead in every round.
SOCKMAP_GROUPS = [("l7_rps", "L7 requests/s"), ("l7_p99", "L7 p99"),
                  ("l4_rr", "L4 round trips"), ("l4_bulk", "L4 bulk")]


def sockmap_rule(rows):
    """rows: (group, word). The shortcut is clearly ahead when at least one group is
    ahead (at least half of its figures ranked ahead) and no figure of any group is
    ranked behind. Returns (verdict, groups ahead, figures behind)."""
    if any(w == "not ranked" for _, w in rows):
        return None, [], 0
    behind = sum(1 for _, w in rows if w == "behind")
    ahead = []
    for g, name in SOCKMAP_GROUPS:
        ws = [w for gg, w in rows if gg == g]
        if ws and 2 * ws.count("ahead") >= len(ws):
            ahead.append(f"{name} ({ws.count('ahead')} of {len(ws)})")
    return bool(ahead) and behind == 0, ahead, behind


def sockmap_verdict(fig, out):
    """sk_msg shortcut against plain TCP, every figure measured for both"""
    rows = []
    for m, c, title, f, hb in L4_COLS:
        a, b = stat(fig, "l4", "sockmap", m, c), stat(fig, "l4", "nosockmap", m, c)
        if a and b:
            rows.append(("l4_bulk" if m == "bulk" else "l4_rr", f"L4 {title}", a, b, f, hb))
    for c in conns_of(fig, "l7"):
        for m, t, f, hb in (("rps", "req/s", f_rate, True), ("p99", "p99", f_lat, False)):
            a = stat(fig, "l7", "ringmesh", m, str(c))
            b = stat(fig, "l7", "nosockmap", m, str(c))
            if a and b:
                rows.append((f"l7_{m}", f"L7 {t} at {c} conns", a, b, f, hb))
    if not rows:
        return None
    out.append("#### sk_msg shortcut against plain TCP (`--no-sockmap`)\n")
    out.append("| figure | sk_msg | plain TCP | sk_msg / TCP |")
    out.append("|---|---|---|---|")
    words = []
    for g, t, a, b, f, hb in rows:
        r, w = compare(a, b, hb)
        words.append((g, w))
        out.append(f"| {t} | {cell(a, f)} | {cell(b, f)} | {r:.2f}x, {w} |")
    ok, ahead, behind = sockmap_rule(words)
    n_ahead = sum(1 for _, w in words if w == "ahead")
    out.append("")
    if ok is None:
        v = "fewer than 3 rounds: not ranked, no recommendation"
    elif ok:
        v = (f"sk_msg clearly ahead (ahead in {', '.join(ahead)}; {n_ahead} of {len(words)} "
             f"figures ahead, none behind): by the rule of issue 13 the default should be the "
             f"shortcut")
    else:
        v = (f"sk_msg not clearly ahead ({n_ahead} of {len(words)} figures ahead, {behind} "
             f"behind, no group ahead in at least half of its figures"
             f"{'' if not ahead else ' without a figure behind'}): by the rule of issue 13 "
             f"the default should be plain TCP")
    out.append("Verdict (a group is one measurement at every connection count: L7 req/s, "
               "L7 p99, L4 round trips, L4 bulk; clearly ahead = at least one group ranked "
               "ahead in at least half of its figures, and no figure ranked behind): "
               f"**{v}**.\n")
    return v


OBS_MODES = [("met", "metrics on (scraped 1/s), no tracing"),
             ("trc", "metrics off, Zipkin 1 %"),
             ("obs", "metrics on (scraped 1/s), Zipkin 1 %")]


def obs_table(fig, out):
    b, bc = stat(fig, "obs", "bare", "rps", "8"), stat(fig, "obs", "bare", "cpu", "8")
    rows = [(m, t, stat(fig, "obs", m, "rps", "8"), stat(fig, "obs", m, "cpu", "8"))
            for m, t in OBS_MODES]
    rows = [r for r in rows if r[2]]
    if not b or not rows:
        return
    out.append(f"#### Observability cost, ringmesh c8 ({b.n} rounds, order rotated)\n")
    out.append("| ringmesh | requests/s | daemon CPU µs/request |")
    out.append("|---|---|---|")
    out.append(f"| metrics off, no tracing | {cell(b, f_rate)} | {cell(bc, f_plain)} |")
    for _, t, o, oc in rows:
        out.append(f"| {t} | {cell(o, f_rate)} ({cmp_cell(o, b, True)}) | "
                   f"{cell(oc, f_plain)} ({cmp_cell(oc, bc, False)}) |")
    out.append("")
    th = [(t, stat(fig, "obs", m, "adm", "8"), stat(fig, "obs", m, "snd", "8")) for m, t in OBS_MODES]
    th = [x for x in th if x[1] or x[2]]
    if th:
        out.append("Of the daemon's CPU, its exporter thread (rm-admin) and span sender (rm-spans) "
                   "used, per round (ms, start included):\n")
        out.append("| ringmesh | rm-admin ms | rm-spans ms |")
        out.append("|---|---|---|")
        for t, a, s in th:
            out.append(f"| {t} | {cell(a, f_plain)} | {cell(s, f_plain)} |")
        out.append("")


CFG_GOALS_N = "1000"  # issue 13: 1,000 services with 3,000 rules


def f_ms(x):
    return f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def f_mib(x):
    return f"{x / 1024:.1f} MiB"


def cfgscale_goals(fig, base, out):
    """issue 13's goals, each against the medians at 1,000 services"""
    n = CFG_GOALS_N
    goals = [("first apply", "first_ms", 1000), ("one rule changed", "one_ms", 300),
             ("live after the flip", "one_live", 100)]
    words = []
    for t, m, lim in goals:
        st = stat(fig, "cfgscale", n, m, "-")
        if st:
            words.append(f"{t} {f_ms(st.med)} (≤ {f_ms(lim)}: "
                         f"{'met' if st.med <= lim else '**not met**'})")
    a = stat(fig, "cfgscale", n, "rps", str(next(iter(conns_of(fig, "cfgscale")), "-")))
    if a and base and base[0] is not a:
        r, w = compare(a, base[0], True)
        ok = "met" if w == "within noise" or w == "ahead" else \
            "fewer than 3 rounds" if w == "not ranked" else "**not met**"
        words.append(f"req/s {r:.2f}x of 1 service, {w} ({ok})")
    r1, rn = stat(fig, "cfgscale", "1", "route_one", "-"), stat(fig, "cfgscale", n, "route_one", "-")
    if r1 and rn:
        words.append(f"the router alone {rn.med:.0f} ns per request against {r1.med:.0f} ns "
                     f"with 1 service ({rn.med / r1.med:.2f}x)")
    if words:
        out.append("Goals of issue 13 at 1,000 services (medians): " + "; ".join(words) + ".\n")


def cfgscale_table(fig, errs, out):
    """tools/bench/cfgscale.sh: apply and flip-to-live, and routing cost, against N"""
    ns = sorted({int(k[1]) for k in fig if k[0] == "cfgscale" and k[1].isdigit()})
    if not ns:
        return
    cs = conns_of(fig, "cfgscale")
    c = str(cs[0]) if cs else "-"
    rounds = max((len(fig.get(("cfgscale", str(n), "first_ms", "-"), [])) for n in ns),
                 default=0)
    out.append(f"#### Configuration scale ({rounds} rounds, the sizes' order rotated)\n")
    out.append("N services of tools/bench/cfggen.py (3 rules, 3 subsets, 3 endpoints each) "
               "applied with `ringmesh apply` to a live ringmeshd (1 worker). Wall time from "
               "the CLI, which returns once the daemon serves the new generation; \"live\": "
               "the daemon's own flip-to-live time (ringmesh_config_apply_duration_seconds, "
               "its 20 ms poll included); \"1 rule changed\": one service's split 70/30 <-> "
               "60/40, several per round.\n")
    out.append("| services | rules | first apply | live | unchanged re-apply | 1 rule changed "
               "| live | daemon RSS |")
    out.append("|---" * 8 + "|")
    for n in ns:
        k = str(n)
        row = [f"{n:,}", f"{3 * n:,}"]
        row += [cell(stat(fig, "cfgscale", k, m, "-"), f_ms)
                for m in ("first_ms", "first_live", "same_ms", "one_ms", "one_live")]
        row.append(cell(stat(fig, "cfgscale", k, "rss_kib", "-"), f_mib))
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append(f"Routing with N services loaded: wrk -t1 -c{c} through the daemon to one of "
               "them (GET /api: its header rule tried, then a prefix with a weighted split), "
               "against 1 service; and the router alone in process (tools/bench/cfgbench.c: "
               "find the service, decide, pick the pool), to that one service and to every "
               "service in turn (the table's size in the caches).\n")
    out.append("| services | req/s | vs 1 service | p99 | daemon CPU µs/req | vs 1 service "
               "| router, 1 service | router, all in turn |")
    out.append("|---" * 8 + "|")
    b = str(ns[0])
    base = (stat(fig, "cfgscale", b, "rps", c), stat(fig, "cfgscale", b, "cpu", c))
    f_ns = lambda x: f"{x:.0f} ns"
    for n in ns:
        k = str(n)
        rps, cpu = stat(fig, "cfgscale", k, "rps", c), stat(fig, "cfgscale", k, "cpu", c)
        row = [f"{n:,}", cell(rps, f_rate), "-" if n == ns[0] else cmp_cell(rps, base[0], True),
               cell(stat(fig, "cfgscale", k, "p99", c), f_lat), cell(cpu, f_plain),
               "-" if n == ns[0] else cmp_cell(cpu, base[1], False),
               cell(stat(fig, "cfgscale", k, "route_one", "-"), f_ns),
               cell(stat(fig, "cfgscale", k, "route_all", "-"), f_ns)]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    if ns[0] == 1:
        cfgscale_goals(fig, base, out)
    e = [f"N={k[1]}: {'; '.join(v)}" for k, v in sorted(errs.items()) if k[0] == "cfgscale"]
    if e:
        out.append("errors: " + " · ".join(e) + "\n")


def plot_data(fig, path):
    with open(path, "w") as f:
        for k, n in L7_PATHS:
            cs = [c for c in conns_of(fig, "l7") if stat(fig, "l7", k, "rps", str(c))]
            if not cs:
                continue
            f.write(f'"{n}"\n')
            for c in cs:
                r, p = stat(fig, "l7", k, "rps", str(c)), stat(fig, "l7", k, "p99", str(c))
                f.write(f"{c} {r.med} {r.lo} {r.hi} {p.med / 1000} {p.lo / 1000} "
                        f"{p.hi / 1000}\n")
            f.write("\n\n")


def steal_line(fig, meta, out):
    """how many wrk runs took more than one attempt for the host's steal (lib.sh steady)"""
    runs = again = 0
    kept = []
    for (phase, path, metric, conns), vals in sorted(fig.items()):
        if metric != "tries":
            continue
        tries = num(vals)
        runs += len(tries)
        again += sum(1 for t in tries if t > 1)
        kept += num(fig.get((phase, path, "steal", conns), []))
    if not runs:
        return
    rule = meta.get(("steal_rule", "l7"), ["more than 5 % of the CPUs, at most 3 attempts"])[0]
    out.append(f"Host steal: {again} of {runs} wrk runs were run again because the "
               f"hypervisor took {rule}; the attempt with the least steal counts (the most "
               f"kept: {max(kept, default=0):.0f} ms).\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--plot-data")
    ap.add_argument("--img")
    ap.add_argument("--readme")
    ap.add_argument("tsv", nargs="+")
    a = ap.parse_args()
    fig, meta, errs = load(a.tsv)
    out = []
    machines = sorted({v for k, vs in meta.items() if k[0] == "machine" for v in vs})
    out.append("Measured on: " + "; ".join(dict.fromkeys(
        re.sub(r", load average.*", "", m) for m in machines)) + ".")
    phases = sorted({k[1] for k in meta if k[0] == "setup"},
                    key=lambda p: (["l7", "l4", "mem", "cfgscale"] + [p]).index(p))
    for ph in phases:
        for s in meta.get(("setup", ph), []):
            loads = [re.sub(r".*load average ", "", m) for m in meta.get(("machine", ph), [])]
            end = meta.get(("load_end", ph), ["?"])
            out.append(f"{ph}: {s}; load average {loads[0] if loads else '?'} at the start, "
                       f"{end[0]} at the end.")
    out.append("Every figure: the median of its rounds, the range (min–max) in brackets; "
               "two results are ranked (ahead/behind) only when a one-sided Mann–Whitney rank "
               "test on their rounds gives p ≤ 0.05 (with 3 rounds each: only when the "
               "ranges do not overlap), \"within noise\" otherwise.\n")
    if a.img:
        out.append(f"![requests/s and p99 against client connections]({a.img})\n")
    l7_tables(fig, errs, out)
    steal_line(fig, meta, out)
    paced_table(fig, errs, out)
    workers_tables(fig, errs, out)
    mem_table(fig, meta, out)
    l4_table(fig, out)
    sockmap_verdict(fig, out)
    obs_table(fig, out)
    cfgscale_table(fig, errs, out)
    md = "\n".join(out).rstrip() + "\n"
    if a.out:
        open(a.out, "w").write(md)
    else:
        sys.stdout.write(md)
    if a.plot_data:
        plot_data(fig, a.plot_data)
    if a.readme:
        t = open(a.readme).read()
        b, e = "<!-- bench:begin -->\n", "<!-- bench:end -->"
        if b not in t or e not in t:
            sys.exit(f"{a.readme}: no {b.strip()} ... {e} markers")
        i, j = t.index(b) + len(b), t.index(e)
        open(a.readme, "w").write(t[:i] + md + t[j:])


if __name__ == "__main__":
    main()
