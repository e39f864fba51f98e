#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Circuit breaking and outlier ejection for TCP services (ServiceEntry ports with
# protocol TCP), on topology (a) of test_l4_rootns.sh: pods are cgroups in the
# machine's netns, VIPs in 127.96.0.0/16, ringmeshd (2 workers) on 127.0.0.1. The
# backends are rm-backend whoami (they name their own address at once), a "dead"
# endpoint is an address where nothing listens (connect refused). Clients are Python
# sockets (tcp_client.py) in the client pod.
#   - maxConnections 2 (pool-db, 2 live endpoints): two held connections work, a third
#     is closed at once and never reaches a backend (their connection counters), one
#     closed frees the slot: a fourth works; breaker show counts the overflow
#   - eject-db (one live, one dead endpoint, 2 consecutive errors, 2 s): the dead one
#     takes exactly 2 connection attempts, is ejected, every connection after that
#     goes to the live one; breaker show says ejected, then in again after ~2 s, and
#     the returned host is tried again
#   - dead-db (both dead, 1 error, 10 s): every client connection is closed promptly;
#     once both are ejected no upstream connect is tried (errors stay at 2)
#   - plain-db (no DestinationRule): works as before and takes no breaker slot
#   - the breaker metrics of the exporter cover the TCP pools; the istio_tcp_* series
#     carry response_flags: UO for the overflowed connection, UF per failed connect,
#     UH per connection refused with every host ejected (source side only)
# Usage: sudo [BUILD=build] tests/e2e/test_tcp_breaker.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/l4_checks.sh" # rootns_cgroups, nothing_left
need_root

rootns_cgroups
E1=$(free_port) E2=$(free_port) LP=$(free_port)
DEAD_A=127.0.0.33 DEAD_B=127.0.0.34 # nothing listens there
for i in 1 2; do
	port=E$i
	bg b$i "$BUILD/rm-backend" --mode whoami --name b$i --version v$i \
		--listen 127.0.0.3$i:${!port} --stats-file "$TMP/b$i.stats" --ready-file "$TMP/b$i.ready"
done
wait_file "$TMP/b1.ready" 5 && wait_file "$TMP/b2.ready" 5 ||
	{ fail "backends start"; summary tcp-breaker; exit 1; }
ok "backends: whoami b1 on 127.0.0.31:$E1, b2 on 127.0.0.32:$E2; nothing on $DEAD_A, $DEAD_B"

# se NAME VIP ENDPOINT... (ADDR:PORT): a ServiceEntry with one TCP port 5432
se() {
	local name=$1 vip=$2 e; shift 2
	printf -- '---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n'
	printf 'metadata: {name: %s, namespace: db}\nspec:\n' "$name"
	printf '  hosts: [%s.db.svc.cluster.local]\n  addresses: [%s]\n' "$name" "$vip"
	printf '  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n'
	printf '  endpoints:\n'
	for e in "$@"; do printf '  - {address: %s, ports: {tcp: %s}}\n' "${e%:*}" "${e#*:}"; done
}
# dr NAME TRAFFIC-POLICY (flow YAML): a DestinationRule with a top-level policy
dr() {
	printf -- '---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n'
	printf 'metadata: {name: %s, namespace: db}\n' "$1"
	printf 'spec:\n  host: %s.db.svc.cluster.local\n  trafficPolicy: %s\n' "$1" "$2"
}
OD='outlierDetection: {consecutive5xxErrors: %s, interval: 100ms, baseEjectionTime: %s, maxEjectionPercent: 100}'
{
	se pool-db 127.96.0.30 127.0.0.31:$E1 127.0.0.32:$E2
	dr pool-db '{connectionPool: {tcp: {maxConnections: 2}}}'
	se eject-db 127.96.0.31 127.0.0.31:$E1 $DEAD_A:$E1
	dr eject-db "{$(printf "$OD" 2 2s)}"
	se dead-db 127.96.0.32 $DEAD_A:$E1 $DEAD_B:$E1
	dr dead-db "{$(printf "$OD" 1 10s)}"
	se plain-db 127.96.0.33 127.0.0.31:$E1
} >"$TMP/tcp.yaml"

start_ringmeshd "$DAEMON_CG" "" --cgroup "$PODS_CG" --include-ip-ranges 127.96.0.0/16 \
	--listen 127.0.0.1:$LP --workers 2 || { fail "ringmeshd starts"; summary tcp-breaker; exit 1; }
ok "ringmeshd starts with 2 workers"
rm_cli() { "$BUILD/ringmesh" --pin-dir "$PIN" "$@"; }
check "four TCP ServiceEntries, three DestinationRules applied" rm_cli apply -f "$TMP/tcp.yaml"
sleep 0.2

tcpc() { in_cg "$CLIENT_CG" "" -- python3 "$here/tcp_client.py" "$@"; }
SEQ=
seq_run() { # VIP N: N connections one after another, their lines in SEQ (and shown)
	SEQ=$(tcpc seq "$1:5432" "$2") || return 1
	echo "$SEQ" | tr '\n' ';'; echo
}
closed_n() { echo "$SEQ" | grep -c '^closed'; }
# bk PYTHON: run PYTHON with d = breaker show -j, p(name) its pool, h(addr) a host
bk() {
	rm_cli -j breaker show | python3 -c '
import json, sys
d = json.load(sys.stdin)
def p(n):
    ps = [x for x in d["pools"] if x["service"] == n + ".db.svc.cluster.local"]
    assert len(ps) == 1, "pools of %s: %s" % (n, ps)
    return ps[0]
def h(n, a):
    hs = [x for x in d["hosts"] if x["service"] == n + ".db.svc.cluster.local" and x["host"] == a]
    assert len(hs) == 1, "hosts %s of %s: %s" % (a, n, d["hosts"])
    return hs[0]
'"$1"
}
conns_total() { # the connections both backends accepted
	python3 -c 'import json,sys; print(sum(json.load(open(f))["conns_total"] for f in sys.argv[1:]))' \
		"$TMP/b1.stats" "$TMP/b2.stats"
}
fast() { # LINES MS: every line's time (last field) is below MS
	echo "$1" | awk -v max="$2" '$NF + 0 >= max { bad = 1 } END { exit bad }'
}

# --- maxConnections ---
limit_check() {
	local before out after
	before=$(conns_total)
	out=$(tcpc limit 127.96.0.30:5432) || return 1
	sleep 0.3 # the backends' stats files follow within 100 ms
	after=$(conns_total)
	echo "$out" | tr '\n' ';'; echo " backends accepted $((after - before))"
	[ "$(echo "$out" | sed -n 1p | cut -d' ' -f1)" = ok ] &&
		[ "$(echo "$out" | sed -n 2p | cut -d' ' -f1)" = ok ] &&
		[ "$(echo "$out" | sed -n 3p | cut -d' ' -f1)" = closed ] &&
		fast "$(echo "$out" | sed -n 3p)" 500 &&
		[ "$(echo "$out" | sed -n 4p | cut -d' ' -f1)" = ok ] &&
		[ $((after - before)) -eq 3 ]
}
check "maxConnections 2: two held work, the 3rd is closed at once unseen by the backends, after a close a 4th works" limit_check
pool_after() {
	bk 'q = p("pool-db"); print(q["connections"], q["overflows"])
assert q["connections"]["max"] == 2 and q["connections"]["current"] == 0, q
assert q["limits_source"] == "config", q
assert q["overflows"]["connections"] == 1, q'
}
check "breaker show: pool-db max 2 connections, none left open, 1 overflow" pool_after

# A new configuration (another service) re-installs every used pool's limits at the
# flip: pool-db's own, not the whole-service defaults of the same slot.
reflip() {
	se other-db 127.96.0.34 127.0.0.31:$E1 >"$TMP/other.yaml"
	rm_cli apply -f "$TMP/other.yaml" && sleep 0.3 &&
		bk 'q = p("pool-db"); print(q["connections"]); assert q["connections"]["max"] == 2, q'
}
check "after a configuration flip pool-db still has max 2 connections" reflip

# --- outlier ejection ---
eject_check() {
	seq_run 127.96.0.31 12 || return 1
	# the dead host is tried until its 2nd error (within the first 4), then never
	[ "$(closed_n)" -eq 2 ] && [ "$(echo "$SEQ" | sed -n '5,12p' | grep -c "^ok 127.0.0.31:$E1 ")" -eq 8 ]
}
check "eject-db: the dead endpoint takes 2 attempts, is ejected, the next 8 all go to the live one" eject_check
ejected_now() {
	bk "x = h('eject-db', '$DEAD_A:$E1'); print(x)
assert x['ejected'] and x['errors_total'] == 2 and x['total_ejections'] == 1, x
assert h('eject-db', '127.0.0.31:$E1')['ejected'] is False"
}
check "breaker show: $DEAD_A ejected after 2 errors, the live one not" ejected_now
back_in() {
	local i
	for ((i = 0; i < 40; i++)); do
		bk "assert not h('eject-db', '$DEAD_A:$E1')['ejected']" 2>/dev/null &&
			{ echo "back in after $((i * 100)) ms more"; return 0; }
		sleep 0.1
	done
	return 1
}
sleep 1.8
check "the ejected endpoint is back in after its 2 s" back_in
tried_again() {
	seq_run 127.96.0.31 4 || return 1
	[ "$(closed_n)" -ge 1 ] &&
		bk "x = h('eject-db', '$DEAD_A:$E1'); assert x['errors_total'] >= 3, x"
}
check "the returned endpoint is tried again" tried_again

# --- every host dead ---
all_dead() {
	seq_run 127.96.0.32 6 || return 1
	[ "$(closed_n)" -eq 6 ] && fast "$SEQ" 500 &&
		bk "a, b = h('dead-db', '$DEAD_A:$E1'), h('dead-db', '$DEAD_B:$E1')
assert a['ejected'] and b['ejected'], (a, b)
assert a['errors_total'] + b['errors_total'] == 2, (a, b)"
}
check "dead-db: all 6 client connections closed within 500 ms; both ejected after one error each, no connect after" all_dead

# --- no DestinationRule ---
plain() {
	seq_run 127.96.0.33 3 || return 1
	[ "$(echo "$SEQ" | grep -c "^ok 127.0.0.31:$E1 ")" -eq 3 ] &&
		bk "assert not [x for x in d['pools'] if x['service'].startswith('plain-db.')], d['pools']"
}
check "plain-db (no DestinationRule): works, no breaker pool" plain

metrics() {
	local m
	m=$(curl -sf "http://$METRICS_ADDR/stats/prometheus") || return 1
	echo "$m" | grep -E '^ringmesh_breaker_(overflows_total|ejections_total|hosts_ejected)\{[^}]*(pool|eject|dead)-db' | head -8
	echo "$m" | grep -qE '^ringmesh_breaker_overflows_total\{[^}]*pool-db[^}]*limit="connections"[^}]*\} 1$' &&
		echo "$m" | grep -qE '^ringmesh_breaker_hosts_ejected\{[^}]*dead-db[^}]*\} 2$'
}
check "exporter: pool-db's connection overflow and dead-db's 2 ejected hosts" metrics

# tcp_series SERVICE FLAGS [METRIC]: the source-side istio_tcp_* (default: connections
# opened) of SERVICE's connections that ended with response_flags FLAGS, summed
tcp_series() {
	curl -sf "http://$METRICS_ADDR/stats/prometheus" | awk -v m="${3:-istio_tcp_connections_opened_total}" \
		-v svc="destination_service=\"$1.db.svc.cluster.local\"" -v fl="response_flags=\"$2\"" '
		index($0, m "{reporter=\"source\"") == 1 && index($0, svc) && index($0, fl) { n += $NF }
		END { print n + 0 }'
}
tcp_flags() {
	local uo uh ufd ufe ok
	uo=$(tcp_series pool-db UO) uh=$(tcp_series dead-db UH) ufd=$(tcp_series dead-db UF)
	ufe=$(tcp_series eject-db UF)
	ok=$(tcp_series pool-db - istio_tcp_connections_closed_total)
	echo "pool-db UO $uo, closed fine $ok; dead-db UF $ufd, UH $uh; eject-db UF $ufe"
	[ "$uo" = 1 ] && [ "$ok" = 3 ] && [ "$ufd" = 2 ] && [ "$uh" = 4 ] &&
		[ "$(tcp_series pool-db UO istio_tcp_connections_closed_total)" = 1 ] &&
		bk "x = h('eject-db', '$DEAD_A:$E1'); assert x['errors_total'] == $ufe, (x, $ufe)"
}
check "istio_tcp_*: response_flags UO (pool-db's overflow), UF (each failed connect), UH (dead-db once both were ejected)" tcp_flags
no_dst() { ! curl -sf "http://$METRICS_ADDR/stats/prometheus" | grep -E '^istio_tcp_[a-z_]+\{reporter="destination"[^}]*response_flags="U[OHF]"'; }
check "... on the source side only (no destination saw them)" no_dst

check "ringmeshd stops cleanly" stop_ringmeshd
check "nothing left attached or pinned" nothing_left
summary tcp-breaker
