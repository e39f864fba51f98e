#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Self-test of the API server double (apiserver.py): the protocol behaviours the sync's
reflectors rely on, checked on the wire (raw sockets, so chunk boundaries are seen as
sent) against what the Kubernetes API reference says (REFERENCE.md section 6).
Usage: selftest.py API_PORT CONTROL_PORT [--tls CA_FILE]   (a double already running,
started with --token t1 and no objects)."""
import json
import socket
import ssl
import sys
import time
import urllib.parse

API, CTL = int(sys.argv[1]), int(sys.argv[2])
CA = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--tls" else None
TOKEN = "t1"
P = F = 0


def ok(name, cond, detail=""):
    global P, F
    if cond:
        P += 1
        print(f"ok - {name}" + (f": {detail}" if detail else ""))
    else:
        F += 1
        print(f"not ok - {name}" + (f": {detail}" if detail else ""))


def ctl(verb, arg=None):
    s = socket.create_connection(("127.0.0.1", CTL), timeout=10)
    body = b"" if arg is None else json.dumps(arg).encode()
    m = "GET" if arg is None else "POST"
    s.sendall(f"{m} /{verb} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
              f"Connection: close\r\n\r\n".encode() + body)
    data = b""
    while True:
        x = s.recv(65536)
        if not x:
            break
        data += x
    s.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


class Resp:
    """One request on a fresh connection; the body read per chunk."""

    def __init__(self, path, token=TOKEN, accept="application/json", timeout=10):
        raw = socket.create_connection(("127.0.0.1", API), timeout=timeout)
        if CA:
            ctx = ssl.create_default_context(cafile=CA)
            raw = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.s = raw
        h = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{API}\r\nAccept: {accept}\r\n"
        if token:
            h += f"Authorization: Bearer {token}\r\n"
        self.s.sendall((h + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in
                        (ln.split(":", 1) for ln in lines[1:])}
        self.chunks = []
        self.eof_clean = None  # True: terminating chunk seen; False: cut short

    def more(self):
        x = self.s.recv(65536)
        if not x:
            raise EOFError
        self.buf += x

    def body(self):
        if "content-length" in self.headers:
            n = int(self.headers["content-length"])
            while len(self.buf) < n:
                self.more()
            return self.buf[:n]
        return b"".join(self.read_chunks())

    def next_chunk(self):
        """The next chunk's data, None at the terminating chunk; EOFError if cut."""
        while b"\r\n" not in self.buf:
            self.more()
        size, rest = self.buf.split(b"\r\n", 1)
        n = int(size, 16)
        self.buf = rest
        while len(self.buf) < n + 2:
            self.more()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        if n == 0:
            self.eof_clean = True
            return None
        self.chunks.append(data)
        return data

    def read_chunks(self):
        try:
            while self.next_chunk() is not None:
                pass
        except EOFError:
            self.eof_clean = False
        except socket.timeout:
            pass
        return self.chunks

    def events(self, n, timeout=5):
        """Read until n complete event lines (or timeout); returns the parsed events."""
        self.s.settimeout(timeout)
        try:
            while b"".join(self.chunks).count(b"\n") < n:
                if self.next_chunk() is None:
                    break
        except EOFError:
            self.eof_clean = False
        except (socket.timeout, TimeoutError):
            pass
        return self.lines()

    def lines(self):
        return [json.loads(x) for x in b"".join(self.chunks).split(b"\n") if x.strip()]

    def close(self):
        self.s.close()


def get_json(path, **kw):
    r = Resp(path, **kw)
    b = r.body()
    r.close()
    return r, json.loads(b)


def svc(name, ns="shop", port=9080, label=None):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": label or name}},
            "spec": {"clusterIP": "10.96.1.1", "clusterIPs": ["10.96.1.1"], "type": "ClusterIP",
                     "selector": {"app": name},
                     "ports": [{"name": "http", "protocol": "TCP", "port": port,
                                "targetPort": port}]}}


def pod(name, node, ns="shop"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "reviews"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.9"}}


VS = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
      "metadata": {"name": "reviews", "namespace": "shop"},
      "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}

# ---- lists
ctl("apply", [svc(f"s{i}") for i in range(7)] + [VS])
r, j = get_json("/api/v1/services?limit=500")
ok("list: 200 application/json ServiceList v1", r.status == 200 and
   r.headers.get("content-type") == "application/json" and j["kind"] == "ServiceList" and
   j["apiVersion"] == "v1", f"{r.status} {j.get('kind')}")
ok("list: metadata.resourceVersion is a string, no continue when complete",
   isinstance(j["metadata"].get("resourceVersion"), str) and "continue" not in j["metadata"])
ok("list: 7 items in key order, typed-list items without kind/apiVersion, each with "
   "metadata.resourceVersion, uid, creationTimestamp",
   [x["metadata"]["name"] for x in j["items"]] == [f"s{i}" for i in range(7)] and
   all("kind" not in x and x["metadata"]["resourceVersion"] and x["metadata"]["uid"] and
       x["metadata"]["creationTimestamp"] for x in j["items"]))
r, v = get_json("/apis/networking.istio.io/v1/virtualservices?limit=500")
ok("list CRD: VirtualServiceList networking.istio.io/v1, items keep kind and apiVersion",
   v["kind"] == "VirtualServiceList" and v["items"][0]["kind"] == "VirtualService" and
   v["items"][0]["apiVersion"] == "networking.istio.io/v1" and
   v["items"][0]["metadata"]["generation"] == 1)
r, v = get_json("/apis/networking.istio.io/v1beta1/virtualservices")
ok("list CRD: the same object served as v1beta1 (a CRD's other served version)",
   v["apiVersion"] == "networking.istio.io/v1beta1" and
   v["items"][0]["apiVersion"] == "networking.istio.io/v1beta1")
r, _ = get_json("/apis/networking.istio.io/v2/virtualservices")
ok("list: a version not served -> 404", r.status == 404)
r, j = get_json("/api/v1/namespaces/other/services")
ok("list: namespaced path /api/v1/namespaces/other/services -> only that namespace",
   r.status == 200 and j["items"] == [])

# paging, consistent at the first page's resourceVersion
r, p1 = get_json("/api/v1/services?limit=3")
c1 = p1["metadata"].get("continue")
ok("list limit=3: 3 items, continue token, remainingItemCount 4",
   len(p1["items"]) == 3 and c1 and p1["metadata"].get("remainingItemCount") == 4,
   json.dumps(p1["metadata"]))
ctl("apply", [svc("s4", port=1234), svc("s5a")])  # changed and added between pages
r, p2 = get_json("/api/v1/services?limit=3&continue=" + urllib.parse.quote(c1))
r, p3 = get_json("/api/v1/services?limit=3&continue=" +
                 urllib.parse.quote(p2["metadata"]["continue"]))
names = [x["metadata"]["name"] for x in p1["items"] + p2["items"] + p3["items"]]
ok("list pages: all 7 once, in order, then no continue", names == [f"s{i}" for i in range(7)]
   and "continue" not in p3["metadata"], str(names))
ok("list pages: served at the first page's resourceVersion (s4 unchanged, s5a absent)",
   p2["metadata"]["resourceVersion"] == p1["metadata"]["resourceVersion"] and
   [x for x in p2["items"] if x["metadata"]["name"] == "s4"][0]["spec"]["ports"][0]["port"]
   == 9080)
ctl("expire", {"mode": "status"})
r, e = get_json("/api/v1/services?limit=3&continue=" + urllib.parse.quote(c1))
ok("list: a continue token from before a compaction -> 410 Expired Status",
   r.status == 410 and e["kind"] == "Status" and e["code"] == 410 and
   e["reason"] == "Expired", f"{r.status} {e.get('reason')}")

# ---- watch
r, j = get_json("/api/v1/services?limit=500")
rv = j["metadata"]["resourceVersion"]
w = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
         "&timeoutSeconds=30")
ok("watch: 200, Transfer-Encoding: chunked, Content-Type: application/json",
   w.status == 200 and w.headers.get("transfer-encoding") == "chunked" and
   w.headers.get("content-type") == "application/json", f"{w.status} {w.headers}")
time.sleep(0.2)
ctl("apply", svc("s1", port=7777))
ctl("apply", svc("new"))
ctl("delete", svc("s2"))
ev = w.events(3)
ok("watch: MODIFIED, ADDED, DELETED in order with increasing resourceVersions",
   [e["type"] for e in ev] == ["MODIFIED", "ADDED", "DELETED"] and
   [e["object"]["metadata"]["name"] for e in ev] == ["s1", "new", "s2"] and
   int(ev[0]["object"]["metadata"]["resourceVersion"]) > int(rv) and
   int(ev[2]["object"]["metadata"]["resourceVersion"]) >
   int(ev[1]["object"]["metadata"]["resourceVersion"]),
   " ".join(f"{e['type']}:{e['object']['metadata']['name']}@"
            f"{e['object']['metadata']['resourceVersion']}" for e in ev))
ok("watch: event objects carry kind and apiVersion; DELETED carries the last state",
   all(e["object"]["kind"] == "Service" and e["object"]["apiVersion"] == "v1" for e in ev)
   and ev[2]["object"]["spec"]["ports"][0]["port"] == 9080)
ok("watch: one event per chunk by default (as the apiserver flushes)",
   all(c.count(b"\n") == 1 and c.endswith(b"\n") for c in w.chunks), f"{len(w.chunks)} chunks")
b = ctl("bookmark", {})
ev = w.events(4)
bm = ev[3] if len(ev) > 3 else {}
ok("watch: BOOKMARK with allowWatchBookmarks=true: only metadata.resourceVersion",
   bm.get("type") == "BOOKMARK" and bm["object"]["kind"] == "Service" and
   set(bm["object"]["metadata"]) <= {"resourceVersion", "creationTimestamp"} and
   bm["object"]["metadata"]["resourceVersion"] == str(b["rv"]), json.dumps(bm))
w.close()
w2 = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30")
w2.events(3)
ctl("bookmark", {})
ev = w2.events(4, timeout=1)
ok("watch: no BOOKMARK without allowWatchBookmarks; history replayed from the rv asked",
   [e["type"] for e in ev] == ["MODIFIED", "ADDED", "DELETED"], str([e["type"] for e in ev]))
w2.close()
t0 = time.time()
w3 = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=1")
w3.read_chunks()
dt = time.time() - t0
ok("watch: timeoutSeconds=1 ends the stream cleanly (terminating chunk) after ~1 s",
   w3.eof_clean is True and 0.9 <= dt < 2.5, f"{dt:.2f} s")

# 410 both ways
r, j = get_json("/api/v1/services")
rv = j["metadata"]["resourceVersion"]
w = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30")
time.sleep(0.2)
x = ctl("expire", {"mode": "status"})
w.read_chunks()
ok("expire (status): an open watch is ended cleanly", w.eof_clean is True and x["watchers"] >= 1)
r, e = get_json(f"/api/v1/services?watch=1&resourceVersion={rv}")
ok("expire (status): a watch from the old rv -> HTTP 410 Status Expired, "
   "'too old resource version'", r.status == 410 and e["code"] == 410 and
   e["reason"] == "Expired" and "too old resource version" in e["message"],
   f"{r.status} {e.get('message')}")
r, j = get_json("/api/v1/services")
rv = j["metadata"]["resourceVersion"]
w = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30")
ok("after a relist: a watch from the new list's rv -> 200", w.status == 200)
time.sleep(0.2)
ctl("expire", {"mode": "event"})
ev = w.events(1)
ok("expire (event): the open watch gets an ERROR event, a Status with code 410, then ends",
   len(ev) == 1 and ev[0]["type"] == "ERROR" and ev[0]["object"]["kind"] == "Status" and
   ev[0]["object"]["code"] == 410 and w.events(2, 2) and w.eof_clean is True,
   json.dumps(ev[0]) if ev else "no event")
w = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30")
ev = w.events(1)
ok("expire (event): a watch from the old rv -> 200 then ERROR 410 in the stream",
   w.status == 200 and ev and ev[0]["type"] == "ERROR" and ev[0]["object"]["code"] == 410)
ctl("expire_mode", {"mode": "status"})
w = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30")
ok("expire_mode status again: HTTP 410", w.status == 410)

# other ERROR events
r, j = get_json("/api/v1/services")
rv = j["metadata"]["resourceVersion"]
w = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30")
time.sleep(0.2)
ctl("error", {"code": 500, "plural": "services"})
ev = w.events(1)
ok("error: an ERROR event with a Status code 500", ev and ev[0]["type"] == "ERROR" and
   ev[0]["object"]["code"] == 500)

# split events, drop mid-stream
r, j = get_json("/api/v1/services")
rv = j["metadata"]["resourceVersion"]
w = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30")
time.sleep(0.2)
ctl("split", {"on": True})
ctl("apply", [svc(f"z{i}") for i in range(6)])
ev = w.events(6)
ch = w.chunks
ends = []  # chunk index where each event ends
acc = b""
for i, c in enumerate(ch):
    acc += c
    ends += [i] * c.count(b"\n")
starts = [0] + [e + (1 if ch[e].endswith(b"\n") else 0) for e in ends[:-1]]
ok("split: 6 events reassembled from the chunks, in order",
   [e["object"]["metadata"]["name"] for e in ev] == [f"z{i}" for i in range(6)])
ok("split: every event spans two or more chunks",
   len(ends) == 6 and all(ends[k] > starts[k] for k in range(6)),
   f"{len(ch)} chunks for 6 events")
ok("split: some chunks carry parts of two events",
   any(b"\n" in c[:-1] or (c.count(b"\n") == 1 and not c.endswith(b"\n")) for c in ch))
ctl("split", {"on": False})
w.close()
w = Resp(f"/api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30")
w.events(6)
ctl("drop", {"plural": "services", "partial": True})
w.read_chunks()
ok("drop: the stream is cut (no terminating chunk) after half an event",
   w.eof_clean is False and not w.chunks[-1].endswith(b"\n"), repr(w.chunks[-1][:40]))

# selectors and metadata-only
ctl("apply", [pod("a1", "node-a"), pod("a2", "node-a"), pod("b1", "node-b")])
r, j = get_json("/api/v1/pods?limit=500&fieldSelector=spec.nodeName%3Dnode-a")
ok("fieldSelector=spec.nodeName=node-a: the local pods only",
   sorted(x["metadata"]["name"] for x in j["items"]) == ["a1", "a2"])
rv = j["metadata"]["resourceVersion"]
w = Resp(f"/api/v1/pods?watch=1&resourceVersion={rv}&fieldSelector=spec.nodeName%3Dnode-a"
         "&timeoutSeconds=30")
time.sleep(0.2)
ctl("apply", [pod("b1", "node-b"), pod("a2", "node-b"), pod("c1", "node-a")])
ev = w.events(2)
ok("fieldSelector watch: a pod leaving the node is DELETED, one arriving ADDED, others unseen",
   [(e["type"], e["object"]["metadata"]["name"]) for e in ev] ==
   [("DELETED", "a2"), ("ADDED", "c1")], str([(e["type"], e["object"]["metadata"]["name"])
                                              for e in ev]))
w.close()
r, f1 = get_json("/api/v1/pods?limit=1&fieldSelector=spec.nodeName%3Dnode-a")
r, f2 = get_json("/api/v1/pods?limit=1&fieldSelector=spec.nodeName%3Dnode-a&continue=" +
                 urllib.parse.quote(f1["metadata"]["continue"]))
ok("fieldSelector list paged: continue without remainingItemCount (as with any selector)",
   [x["metadata"]["name"] for x in f1["items"] + f2["items"]] == ["a1", "c1"] and
   "remainingItemCount" not in f1["metadata"], json.dumps(f1["metadata"])[:80])
w = Resp("/api/v1/pods?watch=1&timeoutSeconds=30&fieldSelector=spec.nodeName%3Dnode-a")
ev = w.events(2)
ok("watch without a resourceVersion: the current state first, as ADDED events",
   sorted((e["type"], e["object"]["metadata"]["name"]) for e in ev) ==
   [("ADDED", "a1"), ("ADDED", "c1")], str([e["object"]["metadata"]["name"] for e in ev]))
w.close()
r, j = get_json("/api/v1/services?labelSelector=" + urllib.parse.quote("app in (s1,s3),app!=s3"))
ok("labelSelector: set and inequality requirements",
   [x["metadata"]["name"] for x in j["items"]] == ["s1"], str([x["metadata"]["name"]
                                                                for x in j["items"]]))
r, _ = get_json("/api/v1/pods?fieldSelector=spec.bogus%3Dx")
ok("fieldSelector on an unknown field -> 400", r.status == 400)
ML = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
MW = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
r, j = get_json("/api/v1/pods?limit=500", accept=ML)
ok("metadata list: PartialObjectMetadataList meta.k8s.io/v1 of PartialObjectMetadata, "
   "no spec or status", j["kind"] == "PartialObjectMetadataList" and
   j["apiVersion"] == "meta.k8s.io/v1" and len(j["items"]) == 4 and
   all(x["kind"] == "PartialObjectMetadata" and set(x) == {"kind", "apiVersion", "metadata"}
       and x["metadata"]["labels"] for x in j["items"]))
rv = j["metadata"]["resourceVersion"]
w = Resp(f"/api/v1/pods?watch=1&resourceVersion={rv}&timeoutSeconds=30", accept=MW)
time.sleep(0.2)
ctl("apply", pod("c1", "node-a") | {"metadata": {"name": "c1", "namespace": "shop",
                                                  "labels": {"app": "x"}}})
ev = w.events(1)
ok("metadata watch: events carry PartialObjectMetadata objects",
   ev and ev[0]["object"]["kind"] == "PartialObjectMetadata" and
   "spec" not in ev[0]["object"] and ev[0]["object"]["metadata"]["labels"] == {"app": "x"})
w.close()
r, _ = get_json(f"/api/v1/pods?watch=1&resourceVersion={rv}",
                accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
ok("metadata: a watch asking for a ...List only -> 406 NotAcceptable", r.status == 406)
r, j = get_json("/api/v1/pods",
                accept="application/vnd.kubernetes.protobuf,application/json")
ok("Accept: protobuf first then json -> json", r.status == 200 and j["kind"] == "PodList")

# groups, tokens
ctl("group", {"group": "config.istio.io", "installed": False})
r, e = get_json("/apis/config.istio.io/v1alpha2/routerules?limit=500")
ok("group not installed -> 404 NotFound Status", r.status == 404 and e["reason"] == "NotFound")
r, g = get_json("/apis")
ok("group not installed: absent from /apis", "config.istio.io" not in
   [x["name"] for x in g["groups"]] and "networking.istio.io" in [x["name"] for x in g["groups"]])
ctl("group", {"group": "config.istio.io", "installed": True})
r, e = get_json("/apis/config.istio.io/v1alpha2/routerules")
ok("group installed again -> 200 RouteRuleList", r.status == 200 and e["kind"] == "RouteRuleList")
r, e = get_json("/api/v1/services", token="wrong")
ok("a bad bearer token -> 401 Unauthorized Status", r.status == 401 and e["code"] == 401 and
   e["reason"] == "Unauthorized")
r, e = get_json("/api/v1/services", token=None)
ok("no token -> 401", r.status == 401)
ctl("token", {"tokens": ["t2"]})
r1, _ = get_json("/api/v1/services")
r2, _ = get_json("/api/v1/services", token="t2")
ok("rotated: the old token -> 401, the new one -> 200", r1.status == 401 and r2.status == 200)
ctl("token", {"tokens": ["t1"]})
ctl("fail", {"path": "/api/v1/pods", "code": 403, "count": 1,
             "message": 'pods is forbidden: User "system:serviceaccount:x:y" cannot list'})
r1, e = get_json("/api/v1/pods")
r2, _ = get_json("/api/v1/pods")
ok("fail: the next request -> 403 Forbidden Status, then 200",
   r1.status == 403 and e["reason"] == "Forbidden" and r2.status == 200)

# going away, coming back, hanging
r, j = get_json("/api/v1/services")
w = Resp(f"/api/v1/services?watch=1&resourceVersion={j['metadata']['resourceVersion']}"
         "&timeoutSeconds=30")
time.sleep(0.2)
ctl("down", {})
w.read_chunks()
try:
    socket.create_connection(("127.0.0.1", API), timeout=2).close()
    refused = False
except ConnectionRefusedError:
    refused = True
ok("down: open watches cut, new connections refused", w.eof_clean is False and refused)
ctl("up", {})
r, j = get_json("/api/v1/services")
ok("up: the same port answers again, the store intact",
   r.status == 200 and len(j["items"]) >= 7)
ctl("hang", {})
try:
    Resp("/api/v1/services", timeout=1)
    hung = False
except (socket.timeout, TimeoutError):
    hung = True
ctl("unhang", {})
r, _ = get_json("/api/v1/services")
ok("hang: a request accepted but unanswered; unhang: answered", hung and r.status == 200)

# the log
log = ctl("log")
lw = [e for e in log if e.get("kind") == "watch" and e.get("status") == 200]
ok("log: every request with path, query, token, status; watches with their end",
   len(log) > 30 and all("path" in e and "query" in e and "token" in e for e in log) and
   {"timeout", "dropped", "closed", "ERROR 410", "ERROR 500", "down"} <=
   {e.get("end") for e in lw}, str(sorted({str(e.get("end")) for e in lw})))
ok("log: 410s and 401s recorded", any(e.get("status") == 410 for e in log) and
   any(e.get("status") == 401 and e.get("token") == "wrong" for e in log))
print(f"k8s-double{'-tls' if CA else ''}: {P} passed, {F} failed")
sys.exit(1 if F else 0)
