#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Topology (a): pods are cgroups in the machine's netns; service addresses live in
# 127.0.0.0/8 (never off the machine). Daemon in a sibling cgroup, listening on
# 127.0.0.1; L4 proxying to the original destination.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/l4_checks.sh"
need_root

rootns_cgroups
P1=$(free_port) P2=$(free_port) LP=$(free_port)
bg whoami "$BUILD/rm-backend" --mode whoami --name b1 --version v1 --listen 127.96.0.20:$P1 --listen 127.0.0.7:$P1 --ready-file "$TMP/w.ready"
bg echo "$BUILD/rm-backend" --mode echo --name b1 --version v1 --listen 127.96.0.21:$P2 --ready-file "$TMP/e.ready"
wait_file "$TMP/w.ready" 5 && wait_file "$TMP/e.ready" 5 || { fail "backends start"; summary l4-rootns; exit 1; }
SVC_WHOAMI=127.96.0.20:$P1 SVC_ECHO=127.96.0.21:$P2 OUT_WHOAMI=127.0.0.7:$P1 PROXY_ADDR=127.0.0.1:$LP

for mode in sockmap no-sockmap; do
	extra=(--$mode) # by name, whichever the default is
	l4_suite "rootns/$mode" --cgroup "$PODS_CG" --include-ip-ranges 127.96.0.0/16 \
		--listen "$PROXY_ADDR" --workers 2 "${extra[@]}"
done
summary l4-rootns
