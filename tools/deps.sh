#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Install the Debian packages ringmesh needs to build, test, demo and benchmark,
# skipping those already installed. Called by `make deps` (and so by make test/demo).
set -euo pipefail
# prometheus: the real scraper (and promtool) of tests/e2e/test_metrics.sh; its own
# service is stopped below, the test runs one of its own on loopback.
# libclang-rt-14-dev: clang's libFuzzer/sanitizer runtimes (tests/fuzz), only recommended
# by clang-14, so --no-install-recommends below would leave it out.
pkgs=(make gcc clang llvm pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev liburing-dev
      libcmocka-dev libyaml-dev libpcre2-dev iproute2 iptables curl wrk haproxy nginx-light
      python3 libclang-rt-14-dev prometheus)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "Error: missing packages: ${missing[*]}; run 'sudo make deps'" >&2
	exit 1
fi
echo "  DEPS     installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx/haproxy/prometheus packages may start system services; benchmark and tests run
# their own.
for s in nginx haproxy prometheus; do
	if command -v service >/dev/null 2>&1; then service "$s" stop >/dev/null 2>&1 || true; fi
done
