#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Checks on `helm template` output that a golden diff would only show, not explain.

check_rendered.py RENDERED.yaml CHART_DIR MODE
  MODE args:       print the ringmeshd container's args, one per line (for the
                   real daemon's parser)
  MODE invariants: the issue's security and operability requirements, for the
                   values in force; prints "ok - ..." / "not ok - ..." lines
  MODE dashboards: every dashboards/*.json shipped byte for byte, labelled
  MODE caps:       the ringmeshd container's added capabilities, comma-separated
  MODE sync-caps:  the sync container's
  MODE sync-args:  the sync container's args, one per line
  MODE init:       the bpffs init container's shell script
"""
import hashlib
import os
import sys

import yaml


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        sys.exit("expected one %s, got %d" % (kind, len(found)))
    return found[0]


def container(ds, name):
    for c in ds["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    sys.exit("no container " + name)


failed = 0


def check(cond, what):
    global failed
    print(("ok - " if cond else "not ok - ") + what)
    if not cond:
        failed += 1


def invariants(docs):
    ds = one(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    d = container(ds, "ringmeshd")
    sc = d["securityContext"]
    caps = sc["capabilities"]
    check(sc.get("privileged") is False, "ringmeshd not privileged")
    check(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    check(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(caps.get("drop") == ["ALL"], "capabilities dropped to ALL")
    check({"BPF", "NET_ADMIN", "PERFMON"} <= set(caps.get("add", [])), "BPF, NET_ADMIN, PERFMON added")
    check(not {"SYS_ADMIN", "ALL"} & set(caps.get("add", [])), "no SYS_ADMIN/ALL")
    check(pod.get("hostNetwork") is True, "hostNetwork")
    check(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy for hostNetwork")
    check(bool(pod.get("priorityClassName")), "a priorityClassName")
    check(any(t.get("operator") == "Exists" for t in pod.get("tolerations", [])),
          "a toleration with operator Exists")
    vols = {v["name"]: v for v in pod["volumes"]}
    check(vols.get("bpffs", {}).get("hostPath", {}).get("path") == "/sys/fs/bpf", "hostPath /sys/fs/bpf")
    mounts = {m["name"]: m for m in d["volumeMounts"]}
    check(mounts.get("cgroup2", {}).get("readOnly") is True, "cgroup2 root mounted read-only")
    args = d["args"]
    cg = args[args.index("--cgroup") + 1]
    check(cg.startswith("/host/cgroup2/") and len(cg) > len("/host/cgroup2/"),
          "--cgroup is below the mounted cgroup2 root, never the root (%s)" % cg)
    port = int(args[args.index("--metrics-listen") + 1].rsplit(":", 1)[1])
    # hostNetwork turns a container port into a host port, which the scheduler allows
    # once per node: the surge pod of an update would stay Pending.
    check(not d.get("ports"), "no container ports (they would be host ports: no surge pod)")
    for p in ("readinessProbe", "livenessProbe"):
        g = d.get(p, {}).get("httpGet", {})
        check(g.get("path") == "/healthz/ready" and g.get("port") == port, p + " on /healthz/ready")
    ann = ds["spec"]["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(port)
          and ann.get("prometheus.io/path") == "/stats/prometheus", "prometheus.io annotations")
    init = pod.get("initContainers", [])
    for c in init:
        check(c["name"] == "mount-bpffs", "the only init container mounts bpffs")
    names = [c["name"] for c in pod["containers"]]
    check(names in (["ringmeshd"], ["ringmeshd", "sync"]), "containers ringmeshd [and sync] (%s)" % names)
    if "sync" in names:
        s = container(ds, "sync")
        ssc = s["securityContext"]
        sargs = s["args"]
        check(ssc.get("privileged") is False and ssc.get("allowPrivilegeEscalation") is False
              and ssc.get("readOnlyRootFilesystem") is True, "sync: unprivileged, read-only root")
        check(ssc["capabilities"].get("drop") == ["ALL"] and
              not {"SYS_ADMIN", "NET_ADMIN", "ALL"} & set(ssc["capabilities"].get("add", [])),
              "sync: capabilities dropped to ALL, no SYS_ADMIN/NET_ADMIN")
        check("sync" in sargs and sargs[sargs.index("--pin-dir") + 1] == args[args.index("--pin-dir") + 1],
              "sync: writes the daemon's pin dir")
        check(sargs[sargs.index("--cgroup") + 1] == cg, "sync: pods' cgroup is the daemon's")
        env = {e["name"]: e for e in s.get("env", [])}
        check(sargs[sargs.index("--node-name") + 1] == "$(NODE_NAME)" and
              env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
              == "spec.nodeName", "sync: --node-name from the downward API (spec.nodeName)")
        smounts = {m["name"]: m for m in s["volumeMounts"]}
        check(smounts.get("bpffs", {}).get("mountPath") == "/sys/fs/bpf" and
              smounts.get("cgroup2", {}).get("readOnly") is True, "sync: bpffs, cgroup2 read-only")
        # its status file (/run/ringmesh) is read by `ringmesh sync status` in either
        # container, and the root filesystems are read-only
        check(smounts.get("run", {}).get("mountPath") == "/run/ringmesh" and
              mounts.get("run", {}).get("mountPath") == "/run/ringmesh" and
              "emptyDir" in vols.get("run", {}), "sync: /run/ringmesh shared with ringmeshd (emptyDir)")
    check(pod.get("automountServiceAccountToken") is ("sync" in names),
          "API token mounted exactly when the sync container runs")
    for cr in [x for x in docs if x.get("kind") == "ClusterRole"]:
        verbs = {v for r in cr["rules"] for v in r["verbs"]}
        check(verbs == {"get", "list", "watch"}, "ClusterRole is get/list/watch only")
    us = ds["spec"]["updateStrategy"]
    check(us["type"] == "RollingUpdate" or "rollingUpdate" not in us,
          "rollingUpdate only with type RollingUpdate (the API refuses it with OnDelete)")
    if us["type"] == "RollingUpdate":
        ru = us.get("rollingUpdate", {})
        check(ru.get("maxSurge") == 1 and ru.get("maxUnavailable") == 0,
              "RollingUpdate surges (maxSurge 1, maxUnavailable 0): the new daemon takes over")
    drain = int(args[args.index("--drain-timeout") + 1])
    check(pod["terminationGracePeriodSeconds"] >= drain + 5,
          "terminationGracePeriodSeconds %d outlasts --drain-timeout %d"
          % (pod["terminationGracePeriodSeconds"], drain))


# Istio's dashboards as fetched from istio/istio@86c9f01fd735fb01d8192f5bcaf0d424afb7f14c
# manifests/addons/dashboards/ (dashboards/README.md): the chart ships them unchanged.
ISTIO_SHA256 = {
    "istio-mesh-dashboard.gen.json": "d1f8f1f0c61722ffebada80b4ea50a17d99e5dfd62efd658d0f79635437afc74",
    "istio-service-dashboard.json": "d2c3881bd82f44965bd124ef5aade6e81b41e05355758a41c6d4d7465e98d3fc",
    "istio-workload-dashboard.json": "0a9b4c2cec355b85fe941db9215467b0ca0bfd85c44598c99fbfe91eb539a1de",
}


def dashboards(docs, chart):
    ddir = os.path.join(chart, "dashboards")
    files = sorted(f for f in os.listdir(ddir) if f.endswith(".json"))
    cms = {}
    for d in docs:
        if d.get("kind") == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            for k, v in d["data"].items():
                cms[k] = v
    check(sorted(cms) == files, "one labelled ConfigMap key per dashboard (%d)" % len(files))
    for f in files:
        with open(os.path.join(ddir, f), "rb") as fh:
            want = hashlib.sha256(fh.read()).hexdigest()
        got = hashlib.sha256(cms.get(f, "").encode()).hexdigest()
        check(got == want, "%s shipped byte for byte (sha256 %s...)" % (f, want[:8]))
    for f, want in ISTIO_SHA256.items():
        got = hashlib.sha256(cms.get(f, "").encode()).hexdigest()
        check(got == want, "%s is Istio's, unchanged (sha256 %s...)" % (f, want[:8]))
    for d in docs:
        if d.get("kind") == "ConfigMap":
            size = sum(len(v.encode()) for v in d["data"].values())
            check(size < 262144, "%s under 256 KiB (%d)" % (d["metadata"]["name"], size))


def main():
    docs = load(sys.argv[1])
    mode = sys.argv[3]
    if mode == "args":
        for a in container(one(docs, "DaemonSet"), "ringmeshd")["args"]:
            print(a)
        return
    if mode == "init":
        pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
        c = [i for i in pod.get("initContainers", []) if i["name"] == "mount-bpffs"][0]
        print(c["args"][0], end="")
        return
    if mode == "sync-args":
        for a in container(one(docs, "DaemonSet"), "sync")["args"]:
            print(a)
        return
    if mode in ("caps", "sync-caps"):
        name = "ringmeshd" if mode == "caps" else "sync"
        sc = container(one(docs, "DaemonSet"), name)["securityContext"]
        print(",".join(sc["capabilities"]["add"]))
        return
    if mode == "invariants":
        invariants(docs)
    elif mode == "dashboards":
        dashboards(docs, sys.argv[2])
    sys.exit(1 if failed else 0)


main()
