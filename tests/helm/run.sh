#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The Helm chart with a real Helm 3 (the one `make deps` installs): helm lint
# --strict, `helm template` compared exactly with golden files for default and
# non-default values, the chart's invariants, the dashboards byte for byte, every
# rendered ringmeshd argument through the real daemon's parser, values the schema or
# the chart must refuse. No cluster needed.
#   tests/helm/run.sh [BUILD]          (BUILD: where ringmeshd is, default build)
#   UPDATE_GOLDEN=1 tests/helm/run.sh  rewrite golden/*.yaml (review the diff!)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
chart=$top/helm/ringmesh
here=$top/tests/helm
helm=${RINGMESH_HELM:-}
if [ -z "$helm" ]; then
	for h in "${RINGMESH_TOOLS:-/usr/local/lib/ringmesh-tools}/helm" "$(command -v helm 2>/dev/null)"; do
		[ -n "$h" ] && [ -x "$h" ] && { helm=$h; break; }
	done
fi
if [ -z "$helm" ] || ! "$helm" version --short 2>/dev/null | grep -q '^v3\.'; then
	echo "skip: no Helm 3 (run 'make deps', which installs one under /usr/local/lib/ringmesh-tools)"
	exit 77
fi
python3 -c 'import yaml' 2>/dev/null || { echo "skip: python3 yaml module missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Helm keeps no state for lint/template, but keep it off the caller's home anyway.
export HELM_CACHE_HOME=$tmp/cache HELM_CONFIG_HOME=$tmp/config HELM_DATA_HOME=$tmp/data

pass=0 failn=0 skipn=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { failn=$((failn + 1)); echo "not ok - $*"; }
render() { # out args...: the one way every test renders the chart
	local out=$1; shift
	"$helm" template ringmesh "$chart" --namespace ringmesh-system --kube-version 1.31.0 "$@" >"$out" 2>"$out.err"
}

echo "# $("$helm" version --short)"

# 1. lint --strict
for v in default custom; do
	vf=(); [ $v = custom ] && vf=(-f "$here/custom-values.yaml")
	if "$helm" lint --strict "$chart" --namespace ringmesh-system --kube-version 1.31.0 "${vf[@]}" >"$tmp/lint.$v" 2>&1; then
		ok "helm lint --strict ($v values)"
	else
		bad "helm lint --strict ($v values)"; sed 's/^/    # /' "$tmp/lint.$v"
	fi
done

# 2. golden files, compared exactly
for v in default custom; do
	vf=(); [ $v = custom ] && vf=(-f "$here/custom-values.yaml")
	if ! render "$tmp/$v.yaml" "${vf[@]}"; then
		bad "helm template ($v values)"; sed 's/^/    # /' "$tmp/$v.yaml.err"; continue
	fi
	# The dashboards' JSON (checked byte for byte below) stands as one placeholder line
	# in the goldens, so regenerating a dashboard does not touch them.
	awk '/^  [A-Za-z0-9._-]+\.json: \|$/ { print; f = $1; sub(/:$/, "", f)
		print "    <the bytes of dashboards/" f ">"; skip = 1; next }
		skip && /^    / { next } { skip = 0; print }' "$tmp/$v.yaml" >"$tmp/$v.golden"
	if [ "${UPDATE_GOLDEN:-}" = 1 ]; then
		cp "$tmp/$v.golden" "$here/golden/$v.yaml"; echo "# wrote golden/$v.yaml"
	fi
	if cmp -s "$tmp/$v.golden" "$here/golden/$v.yaml"; then
		ok "helm template ($v values) matches golden/$v.yaml"
	else
		bad "helm template ($v values) differs from golden/$v.yaml"
		diff -u "$here/golden/$v.yaml" "$tmp/$v.golden" | head -40 | sed 's/^/    # /'
	fi
done

# 3. invariants and dashboards, on both renderings
tally() { # prefix, then the checker's ok/not ok lines
	local line
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "$1: ${line#ok - }" ;;
		"not ok - "*) bad "$1: ${line#not ok - }" ;;
		*) bad "$1: $line" ;;
		esac
	done
}
for v in default custom; do
	[ -s "$tmp/$v.yaml" ] || continue
	tally "$v" < <(python3 "$here/check_rendered.py" "$tmp/$v.yaml" "$chart" invariants 2>&1)
	tally "$v" < <(python3 "$here/check_rendered.py" "$tmp/$v.yaml" "$chart" dashboards 2>&1)
done
# sync off: ringmeshd alone, no API token in the pod, the rest as before
if render "$tmp/nosync.yaml" --set sync.enabled=false; then
	tally nosync < <(python3 "$here/check_rendered.py" "$tmp/nosync.yaml" "$chart" invariants 2>&1)
	if ! grep -q '^        - name: sync$' "$tmp/nosync.yaml" &&
		grep -q '^      automountServiceAccountToken: false$' "$tmp/nosync.yaml"; then
		ok "sync.enabled=false: no sync container, no API token"
	else
		bad "sync.enabled=false: no sync container, no API token"
	fi
else
	bad "sync.enabled=false renders"
fi
if [ -s "$tmp/custom.yaml" ] &&
	[ "$(grep -c '^  namespace: monitoring$' "$tmp/custom.yaml")" -eq "$(ls "$chart"/dashboards/*.json | wc -l)" ]; then
	ok "dashboards.namespace puts every dashboard there"
else
	bad "dashboards.namespace puts every dashboard there"
fi

# AppArmor: the field from Kubernetes 1.30, the annotation before (never both)
aa_ann='container.apparmor.security.beta.kubernetes.io/ringmeshd: unconfined'
if render "$tmp/k129.yaml" --kube-version 1.29.0 && grep -q "^        $aa_ann\$" "$tmp/k129.yaml" &&
	! grep -q 'appArmorProfile:' "$tmp/k129.yaml" && [ -s "$tmp/default.yaml" ] &&
	! grep -q 'container.apparmor' "$tmp/default.yaml" &&
	grep -A1 '^            appArmorProfile:' "$tmp/default.yaml" | grep -q 'type: Unconfined'; then
	ok "AppArmor unconfined: the field on Kubernetes 1.31, the annotation on 1.29"
else
	bad "AppArmor unconfined: the field on Kubernetes 1.31, the annotation on 1.29"
fi

# 4. every rendered ringmeshd argument through the real parser: `--help` answers only
# after each option and value has been parsed (an unknown flag or a bad value fails).
if [ -x "$build/ringmeshd" ]; then
	for v in default custom; do
		[ -s "$tmp/$v.yaml" ] || continue
		mapfile -t args < <(python3 "$here/check_rendered.py" "$tmp/$v.yaml" "$chart" args)
		if out=$("$build/ringmeshd" "${args[@]}" --help 2>&1 >/dev/null); then
			ok "ringmeshd parses the $v rendering's ${#args[@]} arguments"
		else
			bad "ringmeshd refuses the $v rendering's arguments: $out"
		fi
	done
	# The schema's list limits are the daemon's: the longest lists it allows render
	# into arguments ringmeshd takes, one more is refused.
	python3 - "$tmp" <<'PY'
import sys
t = sys.argv[1]
def lists(n_ranges, n_ports, f):
    with open(f, "w") as o:
        o.write("includeIPRanges:\n" + "".join("  - 10.%d.%d.0/24\n" % (i // 256, i % 256) for i in range(n_ranges)))
        o.write("excludePorts: [%s]\n" % ",".join(str(1 + i) for i in range(n_ports)))
lists(1024, 256, t + "/max.yaml")
lists(1024, 257, t + "/over-ports.yaml")
lists(1025, 1, t + "/over-ranges.yaml")
PY
	if render "$tmp/max.yaml.out" -f "$tmp/max.yaml" &&
		mapfile -t margs < <(python3 "$here/check_rendered.py" "$tmp/max.yaml.out" "$chart" args) &&
		"$build/ringmeshd" "${margs[@]}" --help >/dev/null 2>"$tmp/max.err"; then
		ok "1024 include ranges and 256 excluded ports: allowed, and ringmeshd takes them"
	else
		bad "1024 include ranges and 256 excluded ports: $(cat "$tmp/max.yaml.out.err" "$tmp/max.err" 2>/dev/null | head -c 300)"
	fi
	over_ranges=$(python3 -c 'print(",".join("10.%d.%d.0/24" % (i // 256, i % 256) for i in range(1025)))')
	over_ports=$(python3 -c 'print(",".join(str(1 + i) for i in range(257)))')
	for o in over-ports over-ranges; do
		if [ $o = over-ports ]; then d=(--exclude-ports "$over_ports"); else d=(--include-ip-ranges "$over_ranges"); fi
		if render "$tmp/$o.out" -f "$tmp/$o.yaml"; then
			bad "schema allows $o"
		elif "$build/ringmeshd" "${d[@]}" --help >/dev/null 2>&1; then
			bad "schema refuses $o, but ringmeshd takes it: the limits drifted"
		else
			ok "schema refuses $o, and so does ringmeshd"
		fi
	done
	v=$("$build/ringmeshd" --version | awk '{ print $2 }')
	if grep -qx "appVersion: \"$v\"" "$chart/Chart.yaml" && grep -qx "version: $v" "$chart/Chart.yaml"; then
		ok "the chart's version and appVersion are ringmeshd's ($v): the default image tag exists"
	else
		bad "the chart's version/appVersion are not ringmeshd's $v"
	fi
	# The check can fail: a flag this daemon does not have, and a bad value.
	if ! "$build/ringmeshd" "${args[@]}" --no-such-flag --help >/dev/null 2>&1 &&
		! "$build/ringmeshd" --workers two --help >/dev/null 2>&1; then
		ok "the parser check refuses an unknown flag and a bad value"
	else
		bad "the parser check refuses an unknown flag and a bad value"
	fi
else
	bad "no $build/ringmeshd to check the rendered arguments with (make all)"
fi

# 5. values the schema refuses (each names the value)
refuse() { # key what --set...
	local key=$1 what=$2; shift 2
	if render "$tmp/r.yaml" "$@"; then
		bad "refused: $what (rendered)"
	elif grep -q "$key" "$tmp/r.yaml.err"; then
		ok "refused: $what"
	else
		bad "refused: $what, but the message does not name $key: $(head -c 300 "$tmp/r.yaml.err")"
	fi
}
refuse workers 'workers: "two"' --set-string workers=two
refuse workers 'workers: 0' --set workers=0
refuse workers 'workers: 65 (ringmeshd allows 1..64)' --set workers=65
refuse statsKeys 'statsKeys: 15 (ringmeshd allows 16..65536)' --set statsKeys=15
refuse statsKeys 'statsKeys: 65537' --set statsKeys=65537
refuse breakerPools 'breakerPools: 15 (ringmeshd allows 16..65536)' --set breakerPools=15
refuse breakerPools 'breakerPools: 65537' --set breakerPools=65537
refuse breakerPools 'breakerPools: "many"' --set-string breakerPools=many
refuse breakerHosts 'breakerHosts: 15 (ringmeshd allows 16..1048576)' --set breakerHosts=15
refuse breakerHosts 'breakerHosts: 1048577' --set breakerHosts=1048577
refuse maxMirrors 'maxMirrors: 0 (ringmeshd allows 1..65536)' --set maxMirrors=0
refuse maxMirrors 'maxMirrors: 65537' --set maxMirrors=65537
refuse podsCgroup 'podsCgroup: "" (the cgroup2 root)' --set-string podsCgroup=
refuse podsCgroup 'podsCgroup: "/" (the cgroup2 root)' --set-string podsCgroup=/
refuse podsCgroup 'podsCgroup: "." (the cgroup2 root)' --set-string podsCgroup=.
refuse podsCgroup 'podsCgroup: "kubepods/."' --set-string podsCgroup=kubepods/.
refuse podsCgroup 'podsCgroup: "../x"' --set-string podsCgroup=../x
refuse podsCgroup 'podsCgroup: "kubepods/../.."' --set-string podsCgroup=kubepods/../..
refuse cgroupRoot 'cgroupRoot: relative' --set-string cgroupRoot=sys/fs/cgroup
refuse includeIPRanges 'includeIPRanges: []' --set 'includeIPRanges=null'
refuse includeIPRanges 'includeIPRanges: [10.0.0.0/33]' --set 'includeIPRanges={10.0.0.0/33}'
refuse excludeIPRanges 'excludeIPRanges: [10.0.0.300/32]' --set 'excludeIPRanges={10.0.0.300/32}'
refuse excludePorts 'excludePorts: [0]' --set 'excludePorts={0}'
refuse podGateway 'podGateway: "gateway"' --set-string podGateway=gateway
refuse port 'metrics.port: 70000' --set metrics.port=70000
refuse pullPolicy 'image.pullPolicy: Sometimes' --set image.pullPolicy=Sometimes
refuse wrokers 'a misspelt top-level value (wrokers)' --set wrokers=2
# values this release cannot honour: the chart fails with the reason
refuse zipkinURL 'tracing.zipkinURL: https (ringmeshd posts plain HTTP)' --set tracing.zipkinURL=https://zipkin:9411/api/v2/spans
refuse sampling 'tracing.sampling: 101' --set tracing.sampling=101
refuse clusterDomain 'sync.clusterDomain: "Cluster Local"' --set-string 'sync.clusterDomain=Cluster Local'
refuse "proxy's listener" 'metrics.port: 15001 (the proxy port)' --set metrics.port=15001
refuse terminationGracePeriodSeconds 'terminationGracePeriodSeconds under drainTimeout + 5' \
	--set drainTimeout=30 --set terminationGracePeriodSeconds=30
refuse drainTimeout 'drainTimeout: 3601 (ringmeshd allows 0..3600)' --set drainTimeout=3601

# 6. NOTES.txt (helm template does not render it: a copy of the chart renders it with
# tpl into a ConfigMap)
cp -r "$chart" "$tmp/chart"
mv "$tmp/chart/templates/NOTES.txt" "$tmp/chart/NOTES.txt"
cat >"$tmp/chart/templates/notes-test.yaml" <<'TPL'
apiVersion: v1
kind: ConfigMap
metadata: {name: notes}
data:
  notes: |
{{ tpl (.Files.Get "NOTES.txt") . | indent 4 }}
TPL
if "$helm" template ringmesh "$tmp/chart" --namespace ringmesh-system \
	--show-only templates/notes-test.yaml >"$tmp/notes" 2>&1 &&
	grep -q 'rollout status daemonset/ringmesh' "$tmp/notes" &&
	grep -q '/healthz/ready' "$tmp/notes" && grep -q 'ringmesh status' "$tmp/notes" &&
	grep -q 'grafana_dashboard=1' "$tmp/notes"; then
	ok "NOTES.txt renders and says how to check the install"
else
	bad "NOTES.txt renders and says how to check the install"; sed 's/^/    # /' "$tmp/notes" | head
fi

# 7. the bpffs init container's script, run for real in a private mount namespace (the
# node's /sys/fs/bpf hidden under a tmpfs there, nothing propagates out): it mounts
# bpffs when there is none, and leaves an existing one alone (mounting over it would
# hide every pin).
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && [ -s "$tmp/default.yaml" ]; then
	python3 "$here/check_rendered.py" "$tmp/default.yaml" "$chart" init >"$tmp/init.sh"
	# shellcheck disable=SC2016
	if out=$(unshare -m --propagation private sh -ec '
		mount -t tmpfs tmpfs /sys/fs/bpf
		sh -ec "$(cat "$1")"
		stat -f -c %T /sys/fs/bpf
		n1=$(grep -c " /sys/fs/bpf " /proc/self/mounts)
		mkdir /sys/fs/bpf/pin-stand-in
		sh -ec "$(cat "$1")"
		n2=$(grep -c " /sys/fs/bpf " /proc/self/mounts)
		[ -d /sys/fs/bpf/pin-stand-in ] && echo "pin kept"
		[ "$n1" = "$n2" ] && echo "no second mount"' sh "$tmp/init.sh" 2>&1) &&
		[ "$(printf '%s\n' "$out" | tr '\n' '|')" = "mounted bpffs at /sys/fs/bpf|bpf_fs|bpffs already mounted at /sys/fs/bpf|pin kept|no second mount|" ]; then
		ok "init container: mounts bpffs where there is none, keeps an existing one"
	else
		bad "init container: mounts bpffs where there is none, keeps an existing one"
		printf '%s\n' "$out" | sed 's/^/    # /'
	fi
else
	skipn=$((skipn + 1)); echo "skip - init container script (needs root and unshare)"
fi

# 8. the chart's capabilities on this kernel (root, BPF, cgroup2: else skipped)
if [ -s "$tmp/default.yaml" ]; then
	"$here/caps.sh" "$tmp/default.yaml" "$build" >"$tmp/caps.out" 2>&1
	rc=$?
	if [ $rc -eq 77 ]; then
		skipn=$((skipn + 1)); echo "skip - capabilities: $(head -1 "$tmp/caps.out")"
	else
		grep '^#' "$tmp/caps.out"
		tally caps < <(grep -E '^(not )?ok - ' "$tmp/caps.out")
		grep -q '^caps: ' "$tmp/caps.out" || { bad "caps.sh exited $rc"; tail -5 "$tmp/caps.out" | sed 's/^/    # /'; }
		grep '^    #' "$tmp/caps.out"
	fi
fi

echo "helm: $pass passed, $failn failed, $skipn skipped"
[ $failn -eq 0 ]
