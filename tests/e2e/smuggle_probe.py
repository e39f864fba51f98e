# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Raw-socket client of tests/e2e/test_smuggling.sh.

Sends every AWS http-desync-guardian test case and every defparam/smuggler
Transfer-Encoding mutation (as a CL.TE and a TE.CL probe) through ringmeshd to the
judge (tools/bin/rm-judge), one connection per probe, each bounded in time, then
reads the judge's log and checks the rules of issue 8. Writes a JSON result.

usage: smuggle_probe.py ADDR:PORT HOST CORPORA_DIR JUDGE_LOG OUT_JSON
"""
import glob
import json
import os
import socket
import sys
import time

import yaml

DEADLINE = 6.0  # seconds per probe: a probe still open then counts as a hang


def unescape(s):
    """desync-guardian's own unescape_value() (src/request_analyzer.rs tests)."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 >= len(s):
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n == "x":
            out.append(chr(int(s[i + 2:i + 4], 16)))
            i += 4
            continue
        out.append({"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}.get(n, n))
        i += 2
    return "".join(out)


def field(v):
    return unescape(v) if isinstance(v, str) else str(v)


def letters(b):
    return "".join(chr(c).lower() for c in b if chr(c).isalpha() and c < 128)


def read_responses(sock, first_method):
    """Responses until EOF or the deadline: (list of (status, headers), eof, hung)."""
    buf, eof = b"", False
    end = time.monotonic() + DEADLINE
    resps = []
    while True:
        # parse what we have
        while True:
            h = buf.find(b"\r\n\r\n")
            if h < 0:
                break
            lines = buf[:h].split(b"\r\n")
            try:
                status = int(lines[0].split(b" ")[1])
            except (IndexError, ValueError):
                status = -1
            hd = {}
            for l in lines[1:]:
                k, _, v = l.partition(b":")
                hd[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
            rest = buf[h + 4:]
            meth = first_method if not resps else "GET"
            if 100 <= status < 200 or status in (204, 304) or meth == "HEAD":
                blen = 0
            elif "content-length" in hd:
                blen = int(hd["content-length"])
            else:
                blen = None  # until close
            if blen is None or len(rest) < blen:
                if blen is None and eof:
                    resps.append((status, hd))
                    buf = b""
                break
            buf = rest[blen:]
            if not (100 <= status < 200):
                resps.append((status, hd))
        if eof:
            return resps, True, False
        left = end - time.monotonic()
        if left <= 0:
            return resps, False, True
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            d = b""
        if not d:
            eof = True
        buf += d


def send_probe(addr, data, first_method):
    s = socket.create_connection(addr, timeout=DEADLINE)
    try:
        s.sendall(data)
    except OSError:
        pass
    r = read_responses(s, first_method)
    s.close()
    return r


def tail(host, pid):
    smuggled = ("0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: %s\r\nX-Probe: %s-s\r\n\r\n" %
                (host, pid)).encode()
    sentinel = ("GET /end HTTP/1.1\r\nHost: %s\r\nX-Probe: %s-end\r\nConnection: close\r\n\r\n" %
                (host, pid)).encode()
    return smuggled, sentinel


def dg_probes(corpora, host):
    for f in sorted(glob.glob(os.path.join(corpora, "desync-guardian", "*.yaml"))):
        base = os.path.basename(f)[:-5]
        for i, c in enumerate(yaml.safe_load(open(f, encoding="utf-8")) or []):
            pid = "dg-%s-%d" % (base, i)
            hdrs = [(field(h["name"]), field(h["value"])) for h in (c.get("headers") or [])]
            version = field(c.get("version", ""))
            line = "%s %s %s" % (field(c["method"]), field(c["uri"]), version) if version \
                else "%s %s" % (field(c["method"]), field(c["uri"]))
            head = line + "\r\n" + "".join("%s: %s\r\n" % h for h in hdrs)
            if not any(n.lower() == "host" for n, _ in hdrs):
                head += "Host: %s\r\n" % host
            head += "X-Probe: %s\r\n\r\n" % pid
            # a body as long as the largest length any Content-Length-like field names,
            # starting with a chunked terminator and a second request: whatever framing
            # ringmesh picks, the judge must agree with it
            n = 0
            for name, v in hdrs:
                if "contentlength" in letters(name.encode()):
                    digits = "".join(ch for ch in v if ch.isdigit())[:7]
                    n = max(n, int(digits) if digits else 0)
            smuggled, sentinel = tail(host, pid)
            body = smuggled + b"x" * max(0, n - len(smuggled))
            tier = c["expected"]["tier"]
            te_like = any("transferencoding" in letters(nm.encode()) for nm, _ in hdrs)
            yield pid, tier, head.encode("utf-8") + body + sentinel, field(c["method"]), te_like, \
                "%s: %s" % (base, c.get("name"))


def sm_probes(corpora, host):
    ua = ("User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
          "like Gecko) Chrome/78.0.3904.87 Safari/537.36\r\n")
    for l in open(os.path.join(corpora, "smuggler", "default-mutations.tsv")):
        if l.startswith("#") or not l.strip():
            continue
        name, hexg, _ = l.rstrip("\n").split("\t")
        gadget = bytes.fromhex(hexg)
        # smuggler.py _check_clte / _check_tecl, ptype 0 (the attack payloads)
        for kind, cl, body in (("clte", 4, b"1\r\nZ\r\n0\r\n\r\n"), ("tecl", 6, b"0\r\n\r\nX")):
            pid = "sm-%s-%s" % (name, kind)
            head = (b"POST /?cb=%d HTTP/1.1\r\n" % (abs(hash(pid)) % 10**9) + gadget + b"\r\n" +
                    ("Host: %s\r\n" % host).encode() + ua.encode() +
                    b"Content-type: application/x-www-form-urlencoded; charset=UTF-8\r\n" +
                    b"Content-Length: %d\r\n" % cl + ("X-Probe: %s\r\n\r\n" % pid).encode())
            _, sentinel = tail(host, pid)
            yield pid, kind, head + body + sentinel, "POST", True, name


def judge_log(path):
    ents = []
    for l in open(path, encoding="latin-1"):
        kv = {}
        for part in l.split(" ")[1:]:
            k, _, v = part.partition("=")
            kv[k] = v.rstrip("\n")
        kv["kind"] = l.split(" ")[0]
        kv["line"] = l.rstrip("\n")
        ents.append(kv)
    return ents


def probe_of(p):
    for suf in ("-s", "-end"):
        if p.endswith(suf):
            return p[: -len(suf)]
    return p


def main():
    hp, host, corpora, jlog, out = sys.argv[1:6]
    a, p = hp.rsplit(":", 1)
    addr = (a, int(p))
    results = []
    for src, gen in (("dg", dg_probes(corpora, host)), ("sm", sm_probes(corpora, host))):
        for pid, tier, data, meth, te_like, desc in gen:
            resps, eof, hung = send_probe(addr, data, meth)
            results.append(dict(src=src, pid=pid, tier=tier, desc=desc, te_like=te_like,
                                statuses=[s for s, _ in resps], eof=eof, hung=hung,
                                judged=sum(1 for _, h in resps if "x-judge" in h)))
    time.sleep(0.5)
    ents = judge_log(jlog)
    by = {}
    for e in ents:
        by.setdefault(probe_of(e.get("probe", "-")), []).append(e)
    fails = []
    res = {"dg": {}, "sm": {}, "fails": fails}
    for r in results:
        je = by.get(r["pid"], [])
        flags = [e for e in je if e["kind"] == "FLAG"]
        sts = r["statuses"]
        forwarded = len(je) > 0
        why = []
        if r["hung"]:
            why.append("no end before %.0fs (responses %s)" % (DEADLINE, sts))
        if not sts:
            why.append("no answer")
        if flags:
            why.append("judge flagged: " + "; ".join(e["line"][:400] for e in flags))
        if len(je) != r["judged"]:
            why.append("judge read %d requests, client got %d judge answers" %
                       (len(je), r["judged"]))
        if r["src"] == "dg" and r["tier"] == "Severe":
            ok_st = sts and (sts[0] == 400 or (sts[0] == 501 and r["te_like"]))
            if not ok_st or len(sts) != 1 or not r["eof"] or je:
                why.append("severe: want one 400 (501 for a coding) + close and nothing at "
                           "the judge; got %s eof=%s judge=%d" % (sts, r["eof"], len(je)))
        t = res[r["src"]].setdefault(r["tier"], {"n": 0, "forwarded": 0, "refused": 0})
        t["n"] += 1
        t["forwarded" if forwarded else "refused"] += 1
        if why:
            fails.append("%s (%s): %s" % (r["pid"], r["desc"], " | ".join(why)))
    res["te_text_in_value"] = sorted({probe_of(e.get("probe", "-")) for e in ents
                                     if "te-text-in-value" in e.get("notes", "")})
    res["judge_flags"] = sum(1 for e in ents if e["kind"] == "FLAG")
    res["judge_requests"] = len(ents)
    json.dump(res, open(out, "w"), indent=1)
    for f in fails[:40]:
        print("    # " + f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
