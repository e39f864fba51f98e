#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Pod identity end to end (topology (a): pods are cgroups in the machine's netns, the
# service VIP in 127.96.0.0/16): two client "pods" in cgroups named as the kubelet
# names them (systemd driver and cgroupfs driver), their records written with
# `ringmesh workload add` on the pod-level cgroups, the callers (curl) in the
# container-level child cgroups. A VirtualService routes by `sourceLabels` (pod A ->
# v2) and `sourceNamespace` (pod B -> v3), v1 otherwise: each pod lands on its version,
# a caller without a record gets v1, pod A gets v1 once its record is deleted, and the
# Istio metrics name each caller (source_workload, _namespace, source_app).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
need_root

N=12
PODS_CG=$(mk_cgroup pods)
DAEMON_CG=$(mk_cgroup ringmeshd)
UID_A=1f2e3d4c-aaaa-4bbb-8ccc-000000000001
UID_B=1f2e3d4c-aaaa-4bbb-8ccc-000000000002
UID_C=1f2e3d4c-aaaa-4bbb-8ccc-000000000003
CTR_A=$(printf 'a%.0s' $(seq 1 64))
CTR_B=$(printf 'b%.0s' $(seq 1 64))
CTR_C=$(printf 'c%.0s' $(seq 1 64))
# systemd driver: the pod's uid with '_' for '-'; containers are .scope units
POD_A=$(mk_cgroup "pods/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_A//-/_}.slice")
CG_A=$(mk_cgroup "${POD_A#$CG/}/cri-containerd-$CTR_A.scope")
# cgroupfs driver: pod<uid>/<container id>
POD_B=$(mk_cgroup "pods/kubepods/besteffort/pod$UID_B")
CG_B=$(mk_cgroup "${POD_B#$CG/}/$CTR_B")
POD_C=$(mk_cgroup "pods/kubepods/besteffort/pod$UID_C")
CG_C=$(mk_cgroup "${POD_C#$CG/}/$CTR_C")

P=$(free_port) LP=$(free_port)
for v in 1 2 3; do
	bg b$v "$BUILD/rm-backend" --mode http --name b$v --version v$v --listen 127.97.0.1$v:$P \
		--ready-file "$TMP/b$v.ready"
done
for v in 1 2 3; do wait_file "$TMP/b$v.ready" 5 || { fail "backend v$v starts"; summary source; exit 1; }; done
ok "backends v1 v2 v3 listening on 127.97.0.1{1,2,3}:$P"

RM() { "$BUILD/ringmesh" --pin-dir "$PIN" "$@"; }
SVC=reviews.shop.svc.cluster.local
cat >"$TMP/cfg.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [$SVC]
  addresses: [127.96.0.30]
  ports: [{number: $P, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.97.0.11, labels: {app: reviews, version: v1}}
  - {address: 127.97.0.12, labels: {app: reviews, version: v2}}
  - {address: 127.97.0.13, labels: {app: reviews, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: $SVC
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [$SVC]
  http:
  - match: [{sourceLabels: {app: client-a, track: canary}}]
    route: [{destination: {host: $SVC, subset: v2}}]
  - match: [{sourceNamespace: team-b}]
    route: [{destination: {host: $SVC, subset: v3}}]
  - route: [{destination: {host: $SVC, subset: v1}}]
Y

start_ringmeshd "$DAEMON_CG" "" --cgroup "$PODS_CG" --include-ip-ranges 127.96.0.0/16 \
	--listen 127.0.0.1:$LP --workers 2 || { fail "ringmeshd starts"; summary source; exit 1; }
check "configuration applied" RM apply -f "$TMP/cfg.yaml"
check "workload add: pod A (systemd driver cgroup)" RM workload add --cgroup "$POD_A" \
	--namespace team-a --pod client-a-7d9f-x2x --workload client-a --label app=client-a \
	--label track=canary --label version=v1 --service-account client-a
check "workload add: pod B (cgroupfs driver cgroup)" RM workload add --cgroup "$POD_B" \
	--namespace team-b --pod client-b-55c-q8 --workload client-b --label app=client-b
check "workload list shows both pods" sh -c "'$BUILD/ringmesh' --pin-dir '$PIN' workload list |
	grep -E '^$(stat -c %i "$POD_A") +team-a +client-a-7d9f-x2x +client-a +client-a +v1 ' &&
	'$BUILD/ringmesh' --pin-dir '$PIN' workload list | grep -E '^$(stat -c %i "$POD_B") +team-b '"

# versions CGROUP: N requests from a curl in that cgroup, the backend versions that
# answered as "v1=n v2=n v3=n" (failures count as "err").
versions() {
	in_cg "$1" "" -- sh -c 'for i in $(seq 1 '"$N"'); do
		curl -s -m 5 -o /dev/null -w "%header{x-backend-version}\n" http://127.96.0.30:'"$P"'/ || echo err
	done' | sort | uniq -c | awk '{ printf "%s%s=%s", sep, ($2 == "" ? "none" : $2), $1; sep = " " }'
}
want() { # NAME CGROUP WANT
	local got; got=$(versions "$2")
	if [ "$got" = "$3" ]; then ok "$1: $got"; else fail "$1: got '$got', want '$3'"; fi
}
want "pod A (sourceLabels app=client-a,track=canary) -> v2" "$CG_A" "v2=$N"
want "pod B (sourceNamespace team-b) -> v3" "$CG_B" "v3=$N"
want "caller without a record -> v1" "$CG_C" "v1=$N"
want "pod A's own pod cgroup, not only its container's -> v2" "$POD_A" "v2=$N"

check "workload delete pod A" RM workload delete --cgroup "$POD_A"
sleep 1.5 # the workers cache identities for 1 s
want "pod A after its record is deleted -> v1" "$CG_A" "v1=$N"
want "pod B unchanged -> v3" "$CG_B" "v3=$N"

# The Istio metrics: requests summed by source, from the daemon's metrics port.
curl -s -m 5 "http://$METRICS_ADDR/stats/prometheus" >"$TMP/metrics.txt"
msum() { requests_sum "$TMP/metrics.txt" "$@"; }
# Both reporters count each request once (this node is the caller's and the
# destination's): check the source side, and that the destination side agrees.
mwant() { # NAME WANT MATCHERS...
	local name=$1 w=$2 got gotd; shift 2
	got=$(msum 'reporter="source"' "$@")
	gotd=$(msum 'reporter="destination"' "$@")
	[ "$gotd" = "$got" ] || got="$got (reporter=destination: $gotd)"
	if [ "$got" = "$w" ]; then ok "metrics: $name ($got)"; else
		fail "metrics: $name: got $got, want $w"
		grep '^istio_requests_total{reporter="source"' "$TMP/metrics.txt" | head -8 | sed 's/^/    # /'
	fi
}
# Pod A: N (v2) + N (pod cgroup) while known, then N as unknown.
mwant "pod A named" $((2 * N)) 'source_workload="client-a"' 'source_workload_namespace="team-a"' \
	'source_app="client-a"' 'destination_version="v2"'
mwant "pod A: no other version while known" $((2 * N)) 'source_workload="client-a"'
mwant "pod B named" $((2 * N)) 'source_workload="client-b"' 'source_workload_namespace="team-b"' \
	'source_app="client-b"' 'destination_version="v3"'
mwant "unknown callers: C, then A after delete" $((2 * N)) 'source_workload="unknown"' \
	'destination_version="v1"'

stop_ringmeshd || fail "ringmeshd stops cleanly"
summary source
