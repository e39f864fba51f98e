#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A Kubernetes API server double for the tests of `ringmesh sync` (python3 stdlib).

No kube-apiserver is installable here, so this speaks the part of the real protocol a
reflector uses, with real-shaped JSON (kubernetes.io api-concepts, REFERENCE.md 6):

  LIST   GET /api/v1/services?limit=N[&continue=T]      (also /api/v1/namespaces/NS/...,
         /apis/GROUP/VERSION/PLURAL) -> a *List with metadata.resourceVersion, items in
         key order, metadata.continue + remainingItemCount while more remain; every page
         of one list is served at the resourceVersion of its first page; an expired
         continue token -> 410 Expired.
  WATCH  ?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=S
         -> 200, Transfer-Encoding: chunked, one {"type":..,"object":..} line per event
         (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR) from RV on; RV older than the
         compaction point -> HTTP 410 (or, in --expire-mode event, an ERROR event with a
         Status code 410 in the stream); the stream ends cleanly after timeoutSeconds.
  fieldSelector (metadata.name, metadata.namespace, spec.nodeName; = == !=) and
  labelSelector (k=v, k!=v, k, !k, k in (a,b)); a selector transition is a DELETED/ADDED
  as the real watch cache sends it. Accept ...;as=PartialObjectMetadataList;g=meta.k8s.io;
  v=v1 (list) / as=PartialObjectMetadata (watch) -> metadata only; protobuf is skipped in
  the Accept list; nothing acceptable -> 406. Bearer tokens: missing or not valid ->
  401 Status. A group not installed -> 404 NotFound Status. CRD versions (Istio v1,
  v1beta1, v1alpha3; config.istio.io v1alpha2, v1beta1) serve the same objects with
  apiVersion set to the version asked, as a CRD without conversion does.

The control interface (plain HTTP on --control-port, always up even while the API is
"down") creates, modifies and deletes objects and injects faults; see CONTROL below.
Every request served on the API port is logged (GET /log on the control port) with its
path, query, token, status and how a watch ended, for the tests to assert on.

Usage:
  apiserver.py serve --port P --control-port C [--tls-cert F --tls-key F] [--token T]...
                     [--ready-file F] [--log FILE] [--generate S,E,P] [--split]
                     [--absent GROUP]... [--expire-mode status|event] [FIXTURE.json|yaml...]
  apiserver.py ctl C VERB [JSON | @FILE]        (POST /VERB to the control port)
  apiserver.py apply C FILE...                  (YAML or JSON documents -> /apply)
  apiserver.py delete C FILE...
  apiserver.py yaml2json FILE                   (the YAML subset below -> JSON array)
"""
import base64
import bisect
import copy
import json
import os
import random
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---------------------------------------------------------------------------------------
# Resources served: (group, plural) -> description. builtin: list items carry no
# kind/apiVersion (typed lists), CRD list items do (unstructured).
ISTIO_NET = ["v1", "v1beta1", "v1alpha3"]
ISTIO_CFG = ["v1alpha2", "v1beta1"]
RESOURCES = [
    # group, versions, plural, kind, namespaced, builtin
    ("", ["v1"], "services", "Service", True, True),
    ("", ["v1"], "pods", "Pod", True, True),
    ("", ["v1"], "endpoints", "Endpoints", True, True),
    ("", ["v1"], "namespaces", "Namespace", False, True),
    ("", ["v1"], "nodes", "Node", False, True),
    ("discovery.k8s.io", ["v1"], "endpointslices", "EndpointSlice", True, True),
    ("networking.istio.io", ISTIO_NET, "virtualservices", "VirtualService", True, False),
    ("networking.istio.io", ISTIO_NET, "destinationrules", "DestinationRule", True, False),
    ("networking.istio.io", ISTIO_NET, "serviceentries", "ServiceEntry", True, False),
    ("networking.istio.io", ISTIO_NET, "workloadentries", "WorkloadEntry", True, False),
    ("networking.istio.io", ISTIO_NET, "gateways", "Gateway", True, False),
    ("networking.istio.io", ISTIO_NET, "sidecars", "Sidecar", True, False),
    ("config.istio.io", ISTIO_CFG, "routerules", "RouteRule", True, False),
    ("config.istio.io", ISTIO_CFG, "destinationpolicies", "DestinationPolicy", True, False),
]


class Res:
    def __init__(self, group, versions, plural, kind, namespaced, builtin):
        self.group, self.versions, self.plural, self.kind = group, versions, plural, kind
        self.namespaced, self.builtin = namespaced, builtin
        self.key = (group, plural)
        self.objs = {}  # "ns/name" -> object (never mutated once stored)

    def api_version(self, version):
        return f"{self.group}/{version}" if self.group else version


def status(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details is not None:
        s["details"] = details
    return s


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------------------------------
# Selectors


def parse_field_selector(s):
    """[(field, op, value)], op '=' or '!='; ValueError when malformed."""
    out = []
    for term in filter(None, (t.strip() for t in s.split(","))):
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==|!=|=)\s*(.*)", term)
        if not m:
            raise ValueError(f"invalid selector: '{s}'; can't understand '{term}'")
        f, op, v = m.group(1), m.group(2), m.group(3)
        out.append((f, "!=" if op == "!=" else "=", v))
    return out


FIELDS = {
    "metadata.name": lambda o: o["metadata"].get("name", ""),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
}


def field_match(sel, o):
    for f, op, v in sel:
        got = FIELDS[f](o) if f in FIELDS else None
        if got is None:
            return False
        if (got == v) != (op == "="):
            return False
    return True


def parse_label_selector(s):
    out = []
    for term in re.findall(r"[^,(]+(?:\([^)]*\))?", s or ""):
        term = term.strip().strip(",").strip()
        if not term:
            continue
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if m:
            vals = {x.strip() for x in m.group(3).split(",") if x.strip()}
            out.append((m.group(1), m.group(2), vals))
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|!=|=)\s*([\w.-]*)", term)
        if m:
            out.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", term)
        if m:
            out.append((m.group(2), "!" if m.group(1) else "exists", None))
            continue
        raise ValueError(f"unable to parse requirement: {term}")
    return out


def label_match(sel, o):
    labels = o["metadata"].get("labels") or {}
    for k, op, v in sel:
        has, val = k in labels, labels.get(k)
        ok = {"=": has and val == v, "!=": val != v, "in": has and val in (v or ()),
              "notin": val not in (v or ()), "exists": has, "!": not has}[op]
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------------------------
# The store: objects per resource, one resourceVersion counter (etcd's revision), a
# bounded history of events for watches, a compaction point.


class Store:
    def __init__(self, history=200000):
        self.lock = threading.Condition()
        self.res = {}
        self.by_kind = {}
        for r in RESOURCES:
            x = Res(*r)
            self.res[x.key] = x
            self.by_kind[(x.group, x.kind)] = x
        self.rv = 1000
        self.compacted = 0
        self.hist = []  # (rv, reskey, type, obj, old)
        self.hist_rv = []
        self.hist_max = history
        self.absent = set()  # groups "not installed"
        self.snapshots = {}  # (reskey, rv) -> sorted [(key, obj)] for continue tokens

    def find(self, api_version, kind):
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        return self.by_kind.get((group, kind))

    def _event(self, r, typ, obj, old):
        self.hist.append((self.rv, r.key, typ, obj, old))
        self.hist_rv.append(self.rv)
        if len(self.hist) > self.hist_max:
            drop = len(self.hist) - self.hist_max
            self.compacted = self.hist_rv[drop - 1] + 1
            del self.hist[:drop]
            del self.hist_rv[:drop]
        self.lock.notify_all()

    def apply(self, doc):
        """Create or replace one object; returns (type, key, rv)."""
        av, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        r = self.find(av, kind)
        if not r:
            raise ValueError(f"no resource for apiVersion {av} kind {kind}")
        md = dict(doc.get("metadata") or {})
        if not md.get("name"):
            raise ValueError(f"{kind}: metadata.name missing")
        if r.namespaced:
            md.setdefault("namespace", "default")
        else:
            md.pop("namespace", None)
        key = f"{md.get('namespace', '')}/{md['name']}"
        with self.lock:
            old = r.objs.get(key)
            self.rv += 1
            o = copy.deepcopy(doc)
            o.pop("apiVersion", None)
            o.pop("kind", None)
            omd = old["metadata"] if old else {}
            md["uid"] = md.get("uid") or omd.get("uid") or str(uuid.uuid4())
            md["creationTimestamp"] = omd.get("creationTimestamp") or md.get(
                "creationTimestamp") or now_rfc3339()
            md["resourceVersion"] = str(self.rv)
            if not r.builtin:  # custom resources count spec changes
                gen = omd.get("generation", 0)
                md["generation"] = gen + 1 if not old or old.get("spec") != o.get("spec") \
                    else gen
            o["metadata"] = md
            typ = "MODIFIED" if old else "ADDED"
            r.objs[key] = o
            self._event(r, typ, o, old)
            return typ, f"{r.kind} {key}", self.rv

    def delete(self, doc):
        r = self.find(doc.get("apiVersion", ""), doc.get("kind", ""))
        if not r:
            raise ValueError(f"no resource for {doc.get('apiVersion')} {doc.get('kind')}")
        md = doc.get("metadata") or {}
        key = f"{md.get('namespace', 'default') if r.namespaced else ''}/{md.get('name')}"
        with self.lock:
            old = r.objs.pop(key, None)
            if old is None:
                return "NOTFOUND", f"{r.kind} {key}", self.rv
            self.rv += 1
            o = copy.deepcopy(old)
            o["metadata"]["resourceVersion"] = str(self.rv)
            self._event(r, "DELETED", o, old)
            return "DELETED", f"{r.kind} {key}", self.rv

    def expire(self):
        """Compact everything before now: every watch from an older resourceVersion and
        every continue token taken before gets 410."""
        with self.lock:
            self.rv += 1
            self.compacted = self.rv
            self.hist.clear()
            self.hist_rv.clear()
            self.snapshots.clear()
            self.lock.notify_all()
            return self.rv

    def snapshot(self, r):
        """(rv, (keys, [(key, obj)])) of resource r now, kept for its continue tokens."""
        with self.lock:
            k = (r.key, self.rv)
            snap = self.snapshots.get(k)
            if snap is None:
                items = sorted(r.objs.items())
                snap = ([k for k, _ in items], items)
                # a few lists in flight at a time; older tokens expire (410), as etcd's
                # compaction expires them after ~5 minutes
                if len(self.snapshots) > 64:
                    self.snapshots.pop(next(iter(self.snapshots)))
                self.snapshots[k] = snap
            return self.rv, snap

    def events_after(self, rv):
        """History entries with rv > given (caller holds the lock)."""
        i = bisect.bisect_right(self.hist_rv, rv)
        return self.hist[i:]


def encode_continue(rv, start):
    t = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start + "\x00"},
                   separators=(",", ":"))
    return base64.urlsafe_b64encode(t.encode()).decode().rstrip("=")


def decode_continue(t):
    t += "=" * (-len(t) % 4)
    d = json.loads(base64.urlsafe_b64decode(t.encode()))
    if d.get("v") != "meta.k8s.io/v1":
        raise ValueError("continue key is not valid: incorrect encoded start resourceVersion")
    return int(d["rv"]), d["start"].rstrip("\x00")


# ---------------------------------------------------------------------------------------
# The double: the store, the faults, the log, the API listener that can go away.


class Double:
    def __init__(self, args):
        self.a = args
        self.store = Store(args.history)
        self.tokens = set(args.token)  # empty: no authentication
        self.split = False
        self.expire_mode = "status"
        self.hung = threading.Event()
        self.log = []
        self.log_lock = threading.Lock()
        self.logf = open(args.log, "a", buffering=1) if args.log else None
        self.watchers = set()
        self.conns = set()
        self.fails = []  # [path substring, code, count, message]
        self.bookmark_every = args.bookmark_every
        self.api = None
        self.api_thread = None
        self.ssl = None
        if args.tls_cert:
            self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl.load_cert_chain(args.tls_cert, args.tls_key)

    # the log: an entry is listed from the request's start (a watch in progress shows,
    # "open": true) and written to the log file when it is done
    def record_start(self, e):
        with self.log_lock:
            e["n"] = len(self.log) + 1
            e["open"] = True
            self.log.append(e)

    def record_end(self, e):
        e["t"] = round(time.time(), 3)
        e.pop("open", None)
        if self.logf:
            with self.log_lock:
                self.logf.write(json.dumps(e) + "\n")

    # the API listener
    def up(self):
        if self.api:
            return False
        srv = ApiServer(("127.0.0.1", self.a.port), ApiHandler)
        srv.double = self
        if self.ssl:
            srv.socket = self.ssl.wrap_socket(srv.socket, server_side=True,
                                              do_handshake_on_connect=False)
        self.api = srv
        self.api_thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
        self.api_thread.start()
        return True

    def down(self):
        """Go away: stop listening (connections are refused) and cut every open one."""
        srv = self.api
        if not srv:
            return False
        self.api = None
        srv.shutdown()
        srv.server_close()
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.store.lock:
            for w in self.watchers:
                w.faults.append(("gone",))
            self.store.lock.notify_all()
        return True

    def to_watchers(self, fault, plural=None):
        with self.store.lock:
            n = 0
            for w in self.watchers:
                if plural is None or w.res.plural == plural:
                    w.faults.append(fault)
                    n += 1
            self.store.lock.notify_all()
            return n

    def take_fail(self, path):
        with self.store.lock:
            for f in self.fails:
                if f[0] in path and f[2] > 0:
                    f[2] -= 1
                    return f[1], f[3]
        return None


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # a client gone mid-stream is normal here


class Watcher:
    def __init__(self, res):
        self.res = res
        self.faults = []


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-double/1.30"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        d = self.server.double
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                pass
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        d.conns.add(self.connection)

    def finish(self):
        self.server.double.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    # ---- replies
    def send_json(self, code, obj, entry):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        entry["status"] = code
        entry["bytes"] = len(body)

    def do_GET(self):
        d = self.server.double
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        entry = {"t0": round(time.time(), 3), "method": "GET", "path": u.path, "query": q,
                 "token": tok,
                 "accept": self.headers.get("Accept", ""),
                 "ua": self.headers.get("User-Agent", "")}
        d.record_start(entry)
        try:
            self.serve(d, u.path, q, tok, entry)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            entry.setdefault("end", f"client gone: {type(e).__name__}")
            self.close_connection = True
        finally:
            d.record_end(entry)

    def serve(self, d, path, q, tok, entry):
        while d.hung.is_set():  # stop answering (connection held open)
            if d.api is None:
                raise ConnectionResetError("down")
            time.sleep(0.05)
        if d.tokens and tok not in d.tokens:
            return self.send_json(401, status(401, "Unauthorized", "Unauthorized"), entry)
        f = d.take_fail(path)
        if f:
            reason = {403: "Forbidden", 500: "InternalError", 503: "ServiceUnavailable",
                      429: "TooManyRequests"}.get(f[0], "Unknown")
            return self.send_json(f[0], status(f[0], reason, f[1] or reason), entry)
        if path in ("/api", "/apis", "/version", "/healthz", "/readyz"):
            return self.discovery(d, path, entry)
        m = re.fullmatch(r"/api/(v1)(?:/namespaces/([^/]+))?/([a-z]+)", path) or \
            re.fullmatch(r"/apis/([^/]+/[^/]+)(?:/namespaces/([^/]+))?/([a-z]+)", path)
        if not m:
            return self.not_found(entry)
        gv, ns, plural = m.groups()
        group, version = gv.split("/") if "/" in gv else ("", gv)
        r = d.store.res.get((group, plural))
        if not r or version not in r.versions or group in d.store.absent or \
                (ns and not r.namespaced):
            return self.not_found(entry)
        entry["resource"] = plural
        try:
            fsel = parse_field_selector(q.get("fieldSelector", ""))
            for f, _, _ in fsel:
                if f not in FIELDS:
                    raise ValueError(f'"{f}" is not a known field selector: only '
                                     f'"metadata.name", "metadata.namespace"')
            lsel = parse_label_selector(q.get("labelSelector", ""))
        except ValueError as e:
            return self.send_json(400, status(400, "BadRequest", str(e)), entry)
        watch = q.get("watch") in ("1", "true")
        meta = self.negotiate(watch)
        if meta is None:
            return self.send_json(406, status(
                406, "NotAcceptable",
                "only the following media types are accepted: application/json, "
                "application/yaml, application/vnd.kubernetes.protobuf"), entry)
        entry["meta"] = meta

        def sel(o):
            return (not ns or o["metadata"].get("namespace") == ns) and \
                field_match(fsel, o) and label_match(lsel, o)

        if watch:
            return self.watch(d, r, version, q, sel, meta, entry)
        return self.list(d, r, version, q, sel, meta, entry, bool(ns or fsel or lsel))

    def not_found(self, entry):
        self.send_json(404, status(404, "NotFound",
                                   "the server could not find the requested resource",
                                   {}), entry)

    def discovery(self, d, path, entry):
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "30", "gitVersion":
                                        "v1.30.0-double", "platform": "linux/amd64"}, entry)
        if path in ("/healthz", "/readyz"):
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(body)
            entry["status"] = 200
            return
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": []}, entry)
        groups = {}
        for r in d.store.res.values():
            if r.group and r.group not in d.store.absent:
                groups.setdefault(r.group, r.versions)
        return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
             "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
            for g, vs in sorted(groups.items())]}, entry)

    def negotiate(self, watch):
        """False: full objects, True: metadata only, None: nothing acceptable."""
        acc = self.headers.get("Accept") or "application/json"
        for mt in acc.split(","):
            parts = [p.strip() for p in mt.split(";")]
            typ = parts[0].lower()
            params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            if typ not in ("application/json", "application/*", "*/*"):
                continue  # protobuf, yaml, cbor: not served by the double
            want = params.get("as")
            if not want:
                return False
            if params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
                continue
            if want == ("PartialObjectMetadata" if watch else "PartialObjectMetadataList"):
                return True
        return None

    def shape(self, r, version, o, meta, in_list):
        """An object as served: metadata only, or with apiVersion/kind (typed list items
        omit them, unstructured ones keep them)."""
        if meta:
            return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"]}
        out = {}
        if not (in_list and r.builtin):
            out["kind"] = r.kind
            out["apiVersion"] = r.api_version(version)
        out.update(o)
        return out

    def list(self, d, r, version, q, sel, meta, entry, filtered):
        limit = int(q.get("limit") or 0)
        cont = q.get("continue")
        st = d.store
        if cont:
            try:
                rv, start = decode_continue(cont)
            except (ValueError, KeyError, json.JSONDecodeError) as e:
                return self.send_json(400, status(400, "BadRequest", str(e)), entry)
            with st.lock:
                snap = st.snapshots.get((r.key, rv))
            if snap is None or rv < st.compacted:
                return self.send_json(410, status(
                    410, "Expired",
                    "The provided continue parameter is too old to display a consistent "
                    "list result. You can start a new list without the continue parameter, "
                    "or use the continue token in this response to retrieve the remainder "
                    "of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted "
                    "between the time the first chunk was returned and now may show up in "
                    "the list."), entry)
            keys, snap = snap
            i = bisect.bisect_right(keys, start)
        else:
            rv, (keys, snap) = st.snapshot(r)
            i = 0
        items = []
        j = i
        while j < len(snap) and (not limit or len(items) < limit):
            if sel(snap[j][1]):
                items.append(self.shape(r, version, snap[j][1], meta, True))
            j += 1
        md = {"resourceVersion": str(rv)}
        if j < len(snap):  # stopped at the limit: more keys follow (matching or not)
            md["continue"] = encode_continue(rv, snap[j - 1][0])
            if not filtered:  # the apiserver gives no count with a selector
                md["remainingItemCount"] = len(snap) - j
        body = {"kind": "PartialObjectMetadataList" if meta else r.kind + "List",
                "apiVersion": "meta.k8s.io/v1" if meta else r.api_version(version),
                "metadata": md, "items": items}
        entry["kind"] = "list"
        entry["items"] = len(items)
        entry["rv"] = str(rv)
        self.send_json(200, body, entry)

    # ---- watch
    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def send_events(self, d, lines, w):
        """Write event lines as chunks: one chunk per event, or (split mode) every event
        cut in two or more chunks, with chunks carrying the end of one event and the start
        of the next whenever several are pending."""
        if not d.split:
            for ln in lines:
                self.chunk(ln)
            return
        buf = b"".join(lines)
        cuts = set()
        pos = 0
        for ln in lines:  # a cut strictly inside every event
            a = pos + random.randint(1, max(1, len(ln) - 2))
            cuts.add(a)
            if len(ln) > 40:
                cuts.add(pos + random.randint(1, len(ln) - 1))
            pos += len(ln)
        cuts = sorted(c for c in cuts if 0 < c < len(buf))
        prev = 0
        for c in cuts + [len(buf)]:
            if c > prev:
                self.chunk(buf[prev:c])
                w.chunks += 1
                time.sleep(0.002)  # separate TCP segments: the client sees the cuts
            prev = c

    def watch(self, d, r, version, q, sel, meta, entry):
        st = d.store
        entry["kind"] = "watch"
        rvq = q.get("resourceVersion", "")
        try:
            rv = int(rvq) if rvq not in ("", "0") else None
        except ValueError:
            return self.send_json(400, status(400, "BadRequest",
                                              f"invalid resource version: {rvq}"), entry)
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        too_old = None
        with st.lock:
            if rv is not None and rv < st.compacted:
                too_old = f"too old resource version: {rv} ({st.compacted})"
        if too_old and d.expire_mode == "status":
            entry["end"] = "410"
            return self.send_json(410, status(410, "Expired", too_old), entry)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        entry["status"] = 200
        self.close_connection = True  # a watch is the connection's last request
        w = Watcher(r)
        w.chunks = 0
        sent = 0
        kinds = {}

        def line(typ, o):
            kinds[typ] = kinds.get(typ, 0) + 1
            return (json.dumps({"type": typ, "object": o}, separators=(",", ":")) +
                    "\n").encode()

        def err_line(code, reason, msg):
            return line("ERROR", status(code, reason, msg))

        if too_old:  # --expire-mode event: the stream says it
            self.send_events(d, [err_line(410, "Expired", too_old)], w)
            entry["end"] = "ERROR 410"
            return self.watch_end(entry, kinds, w)
        pending = []
        with st.lock:
            if rv is None:  # from "now", with the current state as ADDED first
                pos_rv = st.rv
                pending = [line("ADDED", self.shape(r, version, o, meta, False))
                           for _, o in sorted(r.objs.items()) if sel(o)]
            else:
                pos_rv = rv
            d.watchers.add(w)
        deadline = time.monotonic() + timeout
        last_bm = time.monotonic()
        end = "timeout"
        try:
            while True:
                faults = []
                with st.lock:
                    if not pending and not w.faults:
                        evs = st.events_after(pos_rv)
                        if not evs:
                            st.lock.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                            evs = st.events_after(pos_rv)
                    else:
                        evs = st.events_after(pos_rv)
                    for erv, key, typ, o, old in evs:
                        pos_rv = erv
                        if key != r.key:
                            continue
                        now_in = sel(o) if typ != "DELETED" else False
                        was_in = old is not None and sel(old)
                        if typ == "DELETED":
                            if was_in:
                                pending.append(line("DELETED", self.shape(r, version, o, meta,
                                                                          False)))
                        elif now_in and not was_in:
                            pending.append(line("ADDED", self.shape(r, version, o, meta, False)))
                        elif now_in:
                            pending.append(line("MODIFIED", self.shape(r, version, o, meta,
                                                                       False)))
                        elif was_in:  # left the selector: gone for this watch
                            pending.append(line("DELETED", self.shape(r, version, o, meta,
                                                                      False)))
                    faults, w.faults = w.faults, []
                    cur_rv = st.rv
                while d.hung.is_set() and d.api is not None:
                    time.sleep(0.05)  # stop answering: nothing more on open streams
                if pending:
                    self.send_events(d, pending, w)
                    sent += len(pending)
                    pending = []
                for f in faults:
                    if f[0] == "bookmark" and bookmarks:
                        bm_rv = max(pos_rv, cur_rv)
                        pos_rv = bm_rv
                        self.send_events(d, [line("BOOKMARK", {
                            "kind": "PartialObjectMetadata" if meta else r.kind,
                            "apiVersion": "meta.k8s.io/v1" if meta else r.api_version(version),
                            "metadata": {"resourceVersion": str(bm_rv),
                                         "creationTimestamp": None}})], w)
                    elif f[0] == "error":
                        self.send_events(d, [err_line(f[1], f[2], f[3])], w)
                        end = f"ERROR {f[1]}"
                        raise StopIteration
                    elif f[0] == "drop":
                        # half an event, then the connection cut without the last chunk
                        if f[1]:
                            self.chunk(b'{"type":"MODIFIED","object":{"kind":"' +
                                       r.kind.encode() + b'","metadata":{"na')
                        end = "dropped"
                        self.connection.shutdown(socket.SHUT_RDWR)
                        raise StopIteration
                    elif f[0] == "gone":
                        end = "down"
                        raise StopIteration
                    elif f[0] == "close":
                        end = "closed"
                        raise StopIteration
                now = time.monotonic()
                if bookmarks and d.bookmark_every and now - last_bm >= d.bookmark_every:
                    last_bm = now
                    with st.lock:
                        w.faults.append(("bookmark",))
                if now >= deadline:
                    break
        except StopIteration:
            pass
        finally:
            with st.lock:
                d.watchers.discard(w)
        entry["events"] = sent
        entry["end"] = end
        if end in ("dropped", "down"):
            entry["kinds"] = kinds
            entry["chunks"] = w.chunks
            self.close_connection = True
            return
        self.watch_end(entry, kinds, w)

    def watch_end(self, entry, kinds, w):
        entry["kinds"] = kinds
        entry["chunks"] = w.chunks
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


# ---------------------------------------------------------------------------------------
# CONTROL (POST JSON to http://127.0.0.1:CONTROL/VERB; GET /log, /state, /objects)
#   apply    a document, a list of them, or {"items": [...]}: ADDED or MODIFIED each
#   delete   the same: DELETED each (only apiVersion, kind, metadata.name/namespace read)
#   expire   {"mode": "status"|"event"}: compact history now; open watches end; every
#            watch from an older resourceVersion gets 410 (HTTP status or ERROR event);
#            continue tokens expire
#   expire_mode {"mode": ...}: only the mode, for later expiries (history overflow)
#   error    {"code": 500, "plural": P?}: an ERROR event with that Status in open watches
#   drop     {"plural": P?, "partial": true}: open watches cut mid-stream (half an event)
#   close    {"plural": P?}: open watches ended cleanly (as a server timeout does)
#   bookmark {"plural": P?}: a BOOKMARK now in open watches that allow them
#   bookmark_every {"seconds": S}
#   split    {"on": true}: every event of a watch cut across two or more chunks
#   token    {"tokens": ["t2"]}: only these bearer tokens are valid now ([] = no auth)
#   group    {"group": "config.istio.io", "installed": false}: 404 for the whole group
#   fail     {"path": "/api/v1/pods", "code": 403, "count": 1, "message": "..."}
#   down / up / hang / unhang: stop listening and cut connections / listen again on the
#            same port / accept but answer nothing (open watches go silent) / answer again
#   reset_log


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj):
        body = (json.dumps(obj, indent=None) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        d = self.server.double
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/log":
            since = int(q.get("since", 0))
            with d.log_lock:
                out = [dict(e) for e in d.log[since:]]
            return self.reply(200, out)
        if u.path == "/state":
            st = d.store
            with st.lock:
                return self.reply(200, {
                    "rv": st.rv, "compacted": st.compacted, "up": d.api is not None,
                    "hung": d.hung.is_set(), "split": d.split, "tokens": sorted(d.tokens),
                    "absent": sorted(st.absent),
                    "watchers": sorted(w.res.plural for w in d.watchers),
                    "objects": {r.plural: len(r.objs) for r in st.res.values()}})
        if u.path == "/objects":
            st = d.store
            with st.lock:
                out = []
                for r in st.res.values():
                    if q.get("kind") in (None, r.kind):
                        for o in r.objs.values():
                            x = {"kind": r.kind, "apiVersion": r.api_version(r.versions[0])}
                            x.update(o)
                            out.append(x)
            return self.reply(200, out)
        self.reply(404, {"error": "unknown"})

    def do_POST(self):
        d = self.server.double
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            arg = json.loads(raw) if raw.strip() else {}
            out = self.verb(d, self.path.strip("/"), arg)
            self.reply(200, out)
        except (ValueError, KeyError, TypeError) as e:
            self.reply(400, {"error": str(e)})

    def verb(self, d, v, a):
        st = d.store
        if v in ("apply", "delete"):
            docs = docs_of(a)
            f = st.apply if v == "apply" else st.delete
            return [dict(zip(("type", "object", "rv"), f(x))) for x in docs if x]
        if v == "expire":
            if "mode" in a:
                d.expire_mode = a["mode"]
            rv = st.expire()
            n = d.to_watchers(("error", 410, "Expired",
                               f"too old resource version: 0 ({rv})")
                              if d.expire_mode == "event" else ("close",))
            return {"compacted": rv, "watchers": n, "mode": d.expire_mode}
        if v == "expire_mode":
            d.expire_mode = a["mode"]
            return {"mode": d.expire_mode}
        if v == "error":
            code = int(a.get("code", 500))
            return {"watchers": d.to_watchers(("error", code, a.get("reason", "InternalError"),
                                               a.get("message", "internal error")),
                                              a.get("plural"))}
        if v == "drop":
            return {"watchers": d.to_watchers(("drop", a.get("partial", True)), a.get("plural"))}
        if v == "close":
            return {"watchers": d.to_watchers(("close",), a.get("plural"))}
        if v == "bookmark":
            return {"watchers": d.to_watchers(("bookmark",), a.get("plural")), "rv": st.rv}
        if v == "bookmark_every":
            d.bookmark_every = float(a.get("seconds", 0))
            return {"seconds": d.bookmark_every}
        if v == "split":
            d.split = bool(a.get("on", True))
            return {"split": d.split}
        if v == "token":
            d.tokens = set(a.get("tokens", []))
            return {"tokens": sorted(d.tokens)}
        if v == "group":
            g = a["group"]
            with st.lock:
                if a.get("installed", False):
                    st.absent.discard(g)
                else:
                    st.absent.add(g)
            if not a.get("installed", False):
                for r in st.res.values():
                    if r.group == g:
                        d.to_watchers(("close",), r.plural)
            return {"absent": sorted(st.absent)}
        if v == "fail":
            with st.lock:
                d.fails.append([a.get("path", "/"), int(a.get("code", 500)),
                                int(a.get("count", 1)), a.get("message", "")])
            return {"fails": len(d.fails)}
        if v == "down":
            return {"was_up": d.down()}
        if v == "up":
            d.hung.clear()
            return {"was_down": d.up()}
        if v == "hang":
            d.hung.set()
            return {"hung": True}
        if v == "unhang":
            d.hung.clear()
            return {"hung": False}
        if v == "reset_log":
            with d.log_lock:
                n = len(d.log)
            return {"last": n}
        if v == "generate":
            return generate(st, int(a.get("services", 0)), int(a.get("endpoints", 0)),
                            int(a.get("pods", 0)), a.get("node", "node-0"))
        raise ValueError(f"unknown verb {v}")


# ---------------------------------------------------------------------------------------
# Generator: a synthetic cluster of S Services, E endpoints (spread over the Services'
# EndpointSlices, at most 100 per slice, each a Pod), P Pods (the E backing pods, the
# rest unrelated), 1 in 100 of them on node N. Objects go straight into the store
# (one resourceVersion each, no history: lists see them, watches start after).


def generate(st, nsvc, nep, npods, node):
    t0 = time.time()
    nns = max(1, nsvc // 100)
    nep = max(nep, 0)
    npods = max(npods, nep)
    per = max(1, nep // max(1, nsvc))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def md(name, ns, labels=None, extra=None):
        st.rv += 1
        m = {"name": name, "namespace": ns, "uid": str(uuid.UUID(int=st.rv)),
             "resourceVersion": str(st.rv), "creationTimestamp": created}
        if labels:
            m["labels"] = labels
        if extra:
            m.update(extra)
        return m

    with st.lock:
        svcs, slices, pods = (st.res[("", "services")].objs,
                              st.res[("discovery.k8s.io", "endpointslices")].objs,
                              st.res[("", "pods")].objs)
        p = 0
        for i in range(nsvc):
            ns, name = f"ns-{i % nns}", f"svc-{i}"
            a, b = divmod(i, 250)
            svcs[f"{ns}/{name}"] = {
                "metadata": md(name, ns, {"app": name}),
                "spec": {"clusterIP": f"10.{96 + a // 256}.{a % 256}.{b + 1}",
                         "clusterIPs": [f"10.{96 + a // 256}.{a % 256}.{b + 1}"],
                         "type": "ClusterIP", "sessionAffinity": "None",
                         "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                         "internalTrafficPolicy": "Cluster", "selector": {"app": name},
                         "ports": [{"name": "http", "protocol": "TCP", "port": 9080,
                                    "targetPort": 9080}]},
                "status": {"loadBalancer": {}}}
            eps = []
            for k in range(per if i < nsvc - 1 else nep - per * (nsvc - 1)):
                pn = f"{name}-v{k % 3 + 1}-{p:x}-pod"
                c, e = divmod(p, 65000)
                ip = f"10.{128 + c}.{e // 250}.{e % 250 + 1}"
                pnode = node if p % 100 == 0 else f"node-{p % 1000 + 1}"
                pods[f"{ns}/{pn}"] = pod_obj(md(pn, ns, {"app": name, "version": f"v{k % 3 + 1}",
                                                          "pod-template-hash": "5d8f9c"}),
                                             pnode, ip, name)
                eps.append({"addresses": [ip], "conditions": {"ready": True, "serving": True,
                                                               "terminating": False},
                            "nodeName": pnode,
                            "targetRef": {"kind": "Pod", "namespace": ns, "name": pn,
                                          "uid": pods[f"{ns}/{pn}"]["metadata"]["uid"]}})
                p += 1
            for s in range(0, max(1, len(eps)), 100):
                sn = f"{name}-{s // 100:05x}"
                slices[f"{ns}/{sn}"] = {
                    "metadata": md(sn, ns, {"kubernetes.io/service-name": name,
                                            "endpointslice.kubernetes.io/managed-by":
                                            "endpointslice-controller.k8s.io"},
                                   {"generateName": name + "-", "ownerReferences": [
                                       {"apiVersion": "v1", "kind": "Service", "name": name,
                                        "uid": svcs[f"{ns}/{name}"]["metadata"]["uid"],
                                        "controller": True, "blockOwnerDeletion": True}]}),
                    "addressType": "IPv4", "endpoints": eps[s:s + 100],
                    "ports": [{"name": "http", "protocol": "TCP", "port": 9080}]}
        while p < npods:
            ns, pn = f"ns-{p % nns}", f"batch-{p:x}-pod"
            c, e = divmod(p, 65000)
            pods[f"{ns}/{pn}"] = pod_obj(md(pn, ns, {"app": "batch"}),
                                         node if p % 100 == 0 else f"node-{p % 1000 + 1}",
                                         f"10.{128 + c}.{e // 250}.{e % 250 + 1}", "batch")
            p += 1
        st.compacted = st.rv  # no history for these: a watch from before is too old
        st.snapshots.clear()
        st.lock.notify_all()
    return {"services": len(svcs), "endpointslices": len(slices), "pods": len(pods),
            "rv": st.rv, "seconds": round(time.time() - t0, 2)}


def pod_obj(m, node, ip, app):
    m["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": app + "-5d8f9c", "uid": str(uuid.uuid4()),
                             "controller": True, "blockOwnerDeletion": True}]
    m["generateName"] = app + "-5d8f9c-"
    return {"metadata": m,
            "spec": {"nodeName": node, "serviceAccountName": app, "restartPolicy": "Always",
                     "containers": [{"name": app, "image": "docker.io/istio/examples:1.20",
                                     "ports": [{"containerPort": 9080, "protocol": "TCP"}],
                                     "resources": {}}]},
            "status": {"phase": "Running", "qosClass": "BestEffort", "podIP": ip,
                       "podIPs": [{"ip": ip}], "hostIP": "192.168.0.10",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


# ---------------------------------------------------------------------------------------
# A YAML subset, enough for Kubernetes manifests and Istio rules: block mappings and
# sequences, flow [..] and {..} of scalars, plain/single/double-quoted scalars, | and >
# block scalars, comments, documents separated by ---. Scalars resolve as YAML 1.2's
# core schema (int, float, true/false, null, else string).


def _scalar(s):
    s = s.strip()
    if not s:
        return None
    if s[0] == '"':
        return json.loads(s)
    if s[0] == "'":
        return s[1:-1].replace("''", "'")
    if s in ("null", "Null", "NULL", "~"):
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?[0-9]+", s):
        return int(s)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", s):
        return float(s)
    return s


def _strip_comment(line):
    out, q = [], None
    for i, c in enumerate(line):
        if q:
            if c == q:
                q = None
        elif c in "\"'" and (i == 0 or line[i - 1] in " [{,:"):
            q = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(c)
    return "".join(out).rstrip()


def _flow(s):
    """A flow collection or scalar (one line)."""
    pos = [0]

    def ws():
        while pos[0] < len(s) and s[pos[0]] in " \t":
            pos[0] += 1

    def value(stop):
        ws()
        c = s[pos[0]] if pos[0] < len(s) else ""
        if c == "[":
            pos[0] += 1
            out = []
            while True:
                ws()
                if s[pos[0]] == "]":
                    pos[0] += 1
                    return out
                out.append(value(",]"))
                ws()
                if s[pos[0]] == ",":
                    pos[0] += 1
        if c == "{":
            pos[0] += 1
            out = {}
            while True:
                ws()
                if s[pos[0]] == "}":
                    pos[0] += 1
                    return out
                k = value(":,}")
                ws()
                v = None
                if s[pos[0]] == ":":
                    pos[0] += 1
                    v = value(",}")
                out[k] = v
                ws()
                if s[pos[0]] == ",":
                    pos[0] += 1
        if c in "\"'":
            j = pos[0] + 1
            while j < len(s) and (s[j] != c or (c == '"' and s[j - 1] == "\\")):
                j += 1
            tok = s[pos[0]:j + 1]
            pos[0] = j + 1
            return _scalar(tok)
        j = pos[0]
        while j < len(s) and s[j] not in stop:
            if s[j] == ":" and ":" in stop and j + 1 < len(s) and s[j + 1] not in " ,}]":
                j += 1
                continue
            j += 1
        tok = s[pos[0]:j]
        pos[0] = j
        return _scalar(tok)

    return value("")


def _split_key(text):
    """'key: rest' -> (key, rest) or None."""
    if text[0] in "\"'":
        q = text[0]
        j = text.index(q, 1)
        if text[j + 1:j + 2] == ":" and (len(text) == j + 2 or text[j + 2] == " "):
            return _scalar(text[:j + 1]), text[j + 2:].strip()
        return None
    m = re.match(r"([^\s\[\]{},#'\"][^#]*?):(?:\s+|$)(.*)", text)
    if m and not text.startswith("- "):
        return _scalar(m.group(1)), m.group(2)
    return None


def yaml_load_all(text):
    docs, cur = [], []
    for raw in text.split("\n"):
        if re.match(r"^---(\s|$)", raw) or raw.startswith("..."):
            docs.append(cur)
            cur = []
            if raw[3:].strip() and not raw[3:].strip().startswith("#"):
                cur.append(raw[3:].strip())
            continue
        cur.append(raw)
    docs.append(cur)
    out = []
    for d in docs:
        lines = d
        v = _Parser(lines).parse()
        if v is not None:
            out.append(v)
    return out


class _Parser:
    def __init__(self, lines):
        self.raw = lines
        self.lines = []  # (indent, text, rawindex)
        for i, ln in enumerate(lines):
            t = _strip_comment(ln)
            if t.strip():
                self.lines.append((len(t) - len(t.lstrip(" ")), t.strip(), i))
        self.i = 0

    def parse(self):
        if not self.lines:
            return None
        return self.block(self.lines[0][0])

    def block(self, ind):
        if self.i >= len(self.lines):
            return None
        li, text, _ = self.lines[self.i]
        if text.startswith("- ") or text == "-":
            return self.seq(li)
        if _split_key(text):
            return self.map(li)
        self.i += 1
        return _flow(text)

    def value_after(self, rest, ind, raw_i):
        """The value of 'key: rest' or '- rest' at indent ind."""
        if rest in ("|", ">", "|-", ">-", "|+", ">+"):
            return self.block_scalar(rest, ind, raw_i)
        if rest:
            return _flow(rest)
        if self.i < len(self.lines) and (self.lines[self.i][0] > ind or (
                self.lines[self.i][0] == ind and self.lines[self.i][1].startswith("- "))):
            return self.block(self.lines[self.i][0])
        return None

    def block_scalar(self, style, ind, raw_i):
        out = []
        bi = None
        j = raw_i + 1
        while j < len(self.raw):
            ln = self.raw[j]
            if ln.strip():
                n = len(ln) - len(ln.lstrip(" "))
                if n <= ind:
                    break
                bi = n if bi is None else bi
                out.append(ln[bi:])
            else:
                out.append("")
            j += 1
        while self.i < len(self.lines) and self.lines[self.i][2] < j:
            self.i += 1
        while out and not out[-1]:
            out.pop()
        s = "\n".join(out) if style[0] == "|" else " ".join(out)
        return s if style.endswith("-") else s + "\n"

    def map(self, ind):
        out = {}
        while self.i < len(self.lines):
            li, text, ri = self.lines[self.i]
            if li != ind or text.startswith("- "):
                break
            kv = _split_key(text)
            if not kv:
                raise ValueError(f"yaml line {ri + 1}: expected 'key: value': {text}")
            self.i += 1
            out[kv[0]] = self.value_after(kv[1], ind, ri)
        return out

    def seq(self, ind):
        out = []
        while self.i < len(self.lines):
            li, text, ri = self.lines[self.i]
            if li != ind or not (text.startswith("- ") or text == "-"):
                break
            rest = text[1:].strip()
            if not rest:
                self.i += 1
                out.append(self.value_after("", ind, ri))
                continue
            # "- key: v" opens a mapping whose keys sit at the column after "- "
            col = ind + (len(text) - len(rest))
            if _split_key(rest) and not rest.startswith(("[", "{")):
                self.lines[self.i] = (col, rest, ri)
                out.append(self.map(col))
            else:
                self.i += 1
                out.append(self.value_after(rest, ind, ri))
        return out


def load_docs(path):
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        return docs_of(json.loads(text))
    return yaml_load_all(text)


def docs_of(v):
    """The documents of a JSON value: an array, a *List, or one object."""
    if isinstance(v, list):
        return v
    if v.get("kind", "").endswith("List") or ("items" in v and "kind" not in v):
        return v.get("items") or []
    return [v]


# ---------------------------------------------------------------------------------------


def ctl(port, verb, arg=None):
    data = None if arg is None else json.dumps(arg).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{verb}", data=data,
                                 method="GET" if data is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        sys.exit(f"apiserver ctl {verb}: {e.code} {e.read().decode().strip()}")


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--control-port", type=int, required=True)
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.add_argument("--token", action="append", default=[])
    s.add_argument("--ready-file")
    s.add_argument("--log")
    s.add_argument("--history", type=int, default=200000)
    s.add_argument("--bookmark-every", type=float, default=0)
    s.add_argument("--generate", help="SERVICES,ENDPOINTS,PODS[,NODE]")
    s.add_argument("--split", action="store_true", help="start in split-chunks mode")
    s.add_argument("--absent", action="append", default=[], help="a group not installed")
    s.add_argument("--expire-mode", choices=("status", "event"), default="status")
    s.add_argument("fixtures", nargs="*")
    c = sub.add_parser("ctl")
    c.add_argument("port", type=int)
    c.add_argument("verb")
    c.add_argument("arg", nargs="?")
    for name in ("apply", "delete"):
        x = sub.add_parser(name)
        x.add_argument("port", type=int)
        x.add_argument("files", nargs="+")
    y = sub.add_parser("yaml2json")
    y.add_argument("file")
    a = ap.parse_args()

    if a.cmd == "yaml2json":
        json.dump(load_docs(a.file), sys.stdout, indent=1)
        print()
        return
    if a.cmd in ("apply", "delete"):
        docs = [x for f in a.files for x in load_docs(f)]
        print(json.dumps(ctl(a.port, a.cmd, docs)))
        return
    if a.cmd == "ctl":
        arg = None
        if a.arg is not None:
            arg = json.load(open(a.arg[1:])) if a.arg.startswith("@") else json.loads(a.arg)
        elif a.verb not in ("log", "state", "objects"):
            arg = {}
        print(json.dumps(ctl(a.port, a.verb, arg)))
        return

    d = Double(a)
    d.split = a.split
    d.expire_mode = a.expire_mode
    d.store.absent.update(a.absent)
    for f in a.fixtures:
        for x in load_docs(f):
            d.store.apply(x)
    if a.generate:
        g = a.generate.split(",")
        print(json.dumps(generate(d.store, int(g[0]), int(g[1]), int(g[2]),
                                  g[3] if len(g) > 3 else "node-0")), flush=True)
    cs = ThreadingHTTPServer(("127.0.0.1", a.control_port), ControlHandler)
    cs.daemon_threads = True
    cs.double = d
    d.up()
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(f"{a.port} {a.control_port}\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    print(f"apiserver double: API {'https' if d.ssl else 'http'}://127.0.0.1:{a.port}, "
          f"control http://127.0.0.1:{a.control_port}", flush=True)
    try:
        cs.serve_forever(0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
