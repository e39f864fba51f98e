#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Self-tests of the test tools rm-backend and rm-load, on 127.0.0.1 ephemeral ports.
# No BPF, no root. Usage: tests/tools/run.sh BUILD   -> "tools: N passed, N failed".
set -u
build=${1:-build}
B=$build/rm-backend
L=$build/rm-load
for x in "$B" "$L"; do
	[ -x "$x" ] || { echo "tools: missing $x (build first)"; exit 1; }
done
command -v curl >/dev/null || { echo "tools: curl is needed"; exit 1; }

tmp=$(mktemp -d /tmp/rm-tools-test.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

pass=0 fail=0
ok() { pass=$((pass + 1)); printf '  ok    %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf '  FAIL  %s: %s\n' "$1" "$2"; }
# check NAME CONDITION-EXIT-STATUS DETAIL
check() { if [ "$2" -eq 0 ]; then ok "$1"; else bad "$1" "$3"; fi; }

# start NAME MODE [extra args]: starts a backend, sets $addr and $stats
start() {
	local name=$1 mode=$2
	shift 2
	rm -f "$tmp/$name.ready"
	"$B" --listen 127.0.0.1:0 --name "$name" --version v1 --mode "$mode" \
		--ready-file "$tmp/$name.ready" --stats-file "$tmp/$name.stats" "$@" &
	pids+=($!)
	for _ in $(seq 100); do [ -s "$tmp/$name.ready" ] && break; sleep 0.02; done
	addr=$(head -1 "$tmp/$name.ready" 2>/dev/null)
	stats=$tmp/$name.stats
	[ -n "$addr" ] || { echo "tools: backend $name did not start"; exit 1; }
}

# jnum FILE KEY: a top-level numeric field of a stats file
jnum() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"; }
# idle FILE: wait until the backend saw every connection close
idle() {
	for _ in $(seq 200); do
		[ "$(jnum "$1" conns_current)" = 0 ] && [ "$(jnum "$1" inflight_current)" = 0 ] && return 0
		sleep 0.01
	done
	return 1
}
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

echo "tools: $build"

# --- http: JSON body with request headers, response headers
start h1 http
out=$(curl -s -i -H 'X-Test: hello' -H 'x-test: again' "http://$addr/hello/world?a=1")
printf '%s' "$out" | grep -q '^x-backend-name: h1' && printf '%s' "$out" | grep -q '^x-backend-version: v1' &&
	printf '%s' "$out" | grep -q '"path":"/hello/world"' && printf '%s' "$out" | grep -q '"method":"GET"' &&
	printf '%s' "$out" | grep -q '"x-test":"hello, again"' && printf '%s' "$out" | grep -q '"peer":"127.0.0.1:[0-9]*"' &&
	printf '%s' "$out" | grep -q '"name":"h1","version":"v1"'
check "http answers JSON with headers" $? "$out"

# --- keep-alive: N requests over one connection
idle "$stats"
curl -s "http://$addr/__stats?reset=1" >/dev/null
idle "$stats"
r=$("$L" http --connect "$addr" --requests 50 --conns 1); rc=$?
idle "$stats"
[ $rc -eq 0 ] && [ "$(kv "$r" requests)" = 50 ] && [ "$(kv "$r" status.200)" = 50 ] &&
	[ "$(kv "$r" version.v1)" = 50 ] && [ "$(jnum "$stats" conns_total)" = 1 ] &&
	[ "$(jnum "$stats" requests_total)" = 50 ] && grep -q '"reqs_per_conn":{"50":1}' "$stats"
check "keep-alive: 50 requests on 1 connection" $? "$r / $(cat "$stats")"
out=$(curl -s "http://$addr/__stats")
printf '%s' "$out" | grep -q '"conns_total":1,"conns_current":0,"conns_max":1,' &&
	printf '%s' "$out" | grep -q '"requests_total":50,'
check "GET /__stats reports the same and does not count itself" $? "$out"

# --- pipelining via rm-load, and order on the wire
curl -s "http://$addr/__stats?reset=1" >/dev/null
idle "$stats"
r=$("$L" http --connect "$addr" --requests 40 --conns 1 --pipeline 8); rc=$?
idle "$stats"
[ $rc -eq 0 ] && [ "$(kv "$r" status.200)" = 40 ] && [ "$(jnum "$stats" conns_total)" = 1 ] &&
	[ "$(jnum "$stats" requests_total)" = 40 ]
check "pipelining: 40 requests, depth 8, 1 connection" $? "$r / $(cat "$stats")"
exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
printf 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
out=$(timeout 5 cat <&3)
exec 3<&-
order=$(printf '%s' "$out" | grep -o '"path":"/[a-d]"' | tr -d '\n')
[ "$order" = '"path":"/a""path":"/b""path":"/c""path":"/d"' ] &&
	printf '%s' "$out" | grep -q '"path":"/b".*"body_bytes":5' &&
	printf '%s' "$out" | grep -q '"path":"/c".*"body_bytes":3' &&
	[ "$(printf '%s' "$out" | grep -c '^HTTP/1.1 200')" = 4 ]
check "pipelined requests with CL and chunked bodies answered in order" $? "$out"

# --- HTTP/1.0
out=$(curl -s -i --http1.0 "http://$addr/old")
printf '%s' "$out" | head -1 | grep -q '^HTTP/1.0 200' && ! printf '%s' "$out" | grep -qi '^connection: keep-alive'
check "HTTP/1.0 request answered, not kept alive" $? "$out"

# --- delay honoured (query and header forms)
t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "http://$addr/?delay=300ms")
awk -v t="$t" 'BEGIN { split(t, a, " "); exit !(a[1] == 200 && a[2] >= 0.29 && a[2] < 1.5) }'
check "delay=300ms honoured ($t)" $? "$t"
t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H 'x-rm-delay: 200ms' "http://$addr/")
awk -v t="$t" 'BEGIN { split(t, a, " "); exit !(a[1] == 200 && a[2] >= 0.19 && a[2] < 1.5) }'
check "x-rm-delay: 200ms honoured ($t)" $? "$t"

# --- a client that gives up during a delay ends its request at once
curl -s "http://$addr/__stats?reset=1" >/dev/null
timeout 0.3 curl -s "http://$addr/?delay=5s" >/dev/null
idle "$stats"
check "client abort during delay=5s ends the in-flight request" $? "$(cat "$stats")"

# --- status
c1=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/?status=500")
c2=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-rm-status: 503' "http://$addr/")
c3=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/?status=99")
[ "$c1" = 500 ] && [ "$c2" = 503 ] && [ "$c3" = 400 ]
check "status=500, x-rm-status: 503, bad status -> 400" $? "$c1 $c2 $c3"

# --- close=early / close=reset
curl -s "http://$addr/?close=early" >/dev/null; e1=$?
curl -s "http://$addr/?close=reset" >/dev/null; e2=$?
[ $e1 -eq 52 ] && [ $e2 -eq 56 ]
check "close=early gives an empty reply, close=reset an RST" $? "curl exits $e1 $e2 (want 52 56)"

# --- size=N and /echo streaming
n=$(curl -s "http://$addr/?size=1000000" | wc -c)
[ "$n" = 1000000 ]
check "size=1000000 returns 1000000 bytes" $? "got $n"
head -c 3000000 /dev/urandom >"$tmp/blob"
m0=$(md5sum <"$tmp/blob")
m1=$(curl -s --data-binary @"$tmp/blob" "http://$addr/echo" | md5sum)
m2=$(curl -s -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/blob" "http://$addr/echo" | md5sum)
[ "$m0" = "$m1" ] && [ "$m0" = "$m2" ]
check "/echo streams 3 MB back (Content-Length and chunked)" $? "$m0 / $m1 / $m2"

# --- malformed request -> 400
exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
printf 'GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n' >&3
out=$(timeout 5 cat <&3)
exec 3<&-
printf '%s' "$out" | head -1 | grep -q '^HTTP/1.1 400'
check "Content-Length with Transfer-Encoding refused with 400" $? "$out"

# --- max concurrent connections and in-flight requests
curl -s "http://$addr/__stats?reset=1" >/dev/null
idle "$stats"
r=$("$L" http --connect "$addr" --requests 20 --conns 20 --path '/?delay=300ms'); rc=$?
idle "$stats"
[ $rc -eq 0 ] && [ "$(jnum "$stats" conns_max)" = 20 ] && [ "$(jnum "$stats" conns_total)" = 20 ] &&
	[ "$(jnum "$stats" inflight_max)" = 20 ] && [ "$(jnum "$stats" requests_total)" = 20 ]
check "20 parallel delayed requests: conns_max=20 inflight_max=20" $? "$r / $(cat "$stats")"

# --- --max-conns rejects the excess
start h2 http --max-conns 5
r=$("$L" http --connect "$addr" --requests 10 --conns 10 --path '/?delay=300ms' --allow-errors 2>"$tmp/err"); rc=$?
idle "$stats"
[ $rc -eq 0 ] && [ "$(kv "$r" status.200)" = 5 ] && [ "$(jnum "$stats" conns_max)" = 5 ] &&
	[ "$(jnum "$stats" conns_rejected)" = 5 ]
check "--max-conns 5: 5 served, 5 reset" $? "$r / $(cat "$stats")"
"$L" http --connect "$addr" --requests 10 --conns 10 --path '/?delay=300ms' >/dev/null 2>&1
check "rm-load http exits non-zero on transfer errors" $((! $?)) "exit 0"

# --- echo mode: byte-exact bulk, rr
start e1 echo
r=$("$L" bulk --connect "$addr" --bytes 10M); rc=$?
[ $rc -eq 0 ] && [ "$(kv "$r" bytes_back)" = 10485760 ]
check "10 MiB echo byte-exact" $? "$r"
r=$("$L" bulk --connect "$addr" --bytes 10M --conns 4 --json); rc=$?
[ $rc -eq 0 ] && printf '%s' "$r" | grep -q '"bytes_back":10485760'
check "10 MiB echo over 4 connections (json)" $? "$r"
r=$("$L" rr --connect "$addr" --requests 2000 --conns 4 --size 512); rc=$?
[ $rc -eq 0 ] && [ "$(kv "$r" requests)" = 2000 ] && [ "$(kv "$r" errors)" = 0 ]
check "rr: 2000 round trips of 512 bytes" $? "$r"
r=$("$L" rr --connect "$addr" --duration 300ms --conns 2); rc=$?
awk -v d="$(kv "$r" duration_s)" 'BEGIN { exit !(d >= 0.29 && d < 2) }' && [ $rc -eq 0 ]
check "rr --duration 300ms stops on time" $? "$r"

# --- whoami
start w1 whoami
out=$("$L" whoami --connect "$addr"); rc=$?
cl=$(printf '%s\n' "$out" | sed -n 's/^client_local=//p')
peer=$(printf '%s\n' "$out" | sed -n 's/^peer=\([^ ]*\) .*/\1/p')
[ $rc -eq 0 ] && [ -n "$cl" ] && [ "$cl" = "$peer" ] && printf '%s' "$out" | grep -q "local=$addr name=w1"
check "whoami: backend saw the client's own source address" $? "$out"

# --- sink
start s1 sink
r=$("$L" bulk --connect "$addr" --bytes 5M --conns 2 --sink); rc=$?
[ $rc -eq 0 ] && [ "$(kv "$r" bytes)" = 5242880 ]
check "sink counts 5 MiB exactly" $? "$r"
# a verifier that cannot fail proves nothing: echo-verify against the sink must fail
"$L" bulk --connect "$addr" --bytes 1M >"$tmp/out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q 'mismatch at offset 0' "$tmp/out"
check "bulk verify reports a mismatch offset" $? "rc=$rc $(cat "$tmp/out")"

# --- refusals and errors
"$L" rr --connect "$addr" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ]
check "unbounded rr refused" $? "rc=$rc"
"$L" rr --connect 127.0.0.1:1 --requests 1 >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ]
check "connect failure exits 1" $? "rc=$rc"

# --- clean exit on SIGTERM
start t1 http
pid=${pids[-1]}
kill -TERM "$pid"; wait "$pid"; rc=$?
[ $rc -eq 0 ]
check "SIGTERM exits 0" $? "rc=$rc"

# --- the benchmark's sk_msg verdict (tools/bench/summary.py), on synthetic figures
# figs ROUNDS SK_RPS TCP_RPS SK_RR TCP_RR: L7 req/s at 8 and 64 conns, L4 rr at 1 conn;
# round r adds r to every value, so equal inputs overlap and a gap of 100 does not.
figs() {
	local r c
	for r in $(seq "$1"); do
		for c in 8 64; do
			printf 'l7\tringmesh\trps\t%s\t%s\t%s\n' "$c" "$r" $(($2 + r))
			printf 'l7\tnosockmap\trps\t%s\t%s\t%s\n' "$c" "$r" $(($3 + r))
			printf 'l7\tringmesh\tp99\t%s\t%s\t%s\n' "$c" "$r" $((500 + 50 * r))
			printf 'l7\tnosockmap\tp99\t%s\t%s\t%s\n' "$c" "$r" $((520 + 50 * r))
		done
		printf 'l4\tsockmap\trr1\t1\t%s\t%s\n' "$r" $(($4 + r))
		printf 'l4\tnosockmap\trr1\t1\t%s\t%s\n' "$r" $(($5 + r))
	done
}
# vcase NAME PATTERN FIGS-ARGS...: the verdict on figs' figures matches PATTERN
vcase() {
	local name=$1 pat=$2 v
	shift 2
	figs "$@" >"$tmp/verdict.tsv"
	v=$(python3 "$(dirname "$0")/../../tools/bench/summary.py" "$tmp/verdict.tsv" | grep '^Verdict')
	printf '%s' "$v" | grep -q "$pat"
	check "verdict: $name" $? "$v"
}
vcase "L7 req/s ahead, the rest within noise -> keep sk_msg" \
	'sk_msg clearly ahead (ahead in L7 requests/s (2 of 2); 2 of 5' 3 1000 800 500 500
vcase "one figure behind -> plain TCP" \
	'not clearly ahead (2 of 5 figures ahead, 1 behind.*plain TCP' 3 1000 800 400 500
vcase "all within noise -> plain TCP" \
	'not clearly ahead (0 of 5 figures ahead, 0 behind, no group' 3 1000 1000 500 500
vcase "2 rounds are not ranked" 'fewer than 3 rounds' 2 1000 800 500 500

# --- the benchmark's ranking (summary.py compare): a one-sided rank test on the rounds
# rcase NAME PATTERN "RINGMESH RPS..." "HAPROXY RPS...": the c8 req/s comparison
rcase() {
	local name=$1 pat=$2 r v a=($3) b=($4)
	: >"$tmp/rank.tsv"
	for r in "${!a[@]}"; do
		printf 'l7\tringmesh\trps\t8\t%s\t%s\n' $((r + 1)) "${a[$r]}" >>"$tmp/rank.tsv"
	done
	for r in "${!b[@]}"; do
		printf 'l7\thaproxy\trps\t8\t%s\t%s\n' $((r + 1)) "${b[$r]}" >>"$tmp/rank.tsv"
	done
	v=$(python3 "$(dirname "$0")/../../tools/bench/summary.py" "$tmp/rank.tsv" | grep '^| 8 |')
	printf '%s' "$v" | grep -q "$pat"
	check "rank: $name" $? "$v"
}
rcase "3 rounds, disjoint ranges -> ahead" '1.10x, ahead' "110 111 112" "100 101 102"
rcase "3 rounds, touching ranges -> within noise" 'within noise' "102 111 112" "100 101 102"
rcase "5 rounds, one slow round, 4 of 25 pairs reversed (p 0.048) -> ahead" \
	'1.11x, ahead' "106 110 120 130 92" "90 95 99 105 101"
rcase "5 rounds, 5 of 25 pairs reversed (p 0.075) -> within noise" \
	'within noise' "106 110 120 130 89" "90 95 99 105 101"
rcase "5 rounds, slower in every round -> behind" '0.90x, behind' \
	"90 91 92 93 94" "100 101 102 103 104"
rcase "5 against 3 rounds, disjoint (p 0.018) -> ahead" 'ahead' \
	"110 111 112 113 114" "100 101 102"
rcase "5 rounds, three tied at the bottom counted as midranks (p 0.048) -> ahead" \
	'1.05x, ahead' "105 106 107 108 100" "100 100 101 102 103"
rcase "12 rounds, shifted by one (p 0.27) -> within noise" 'within noise' \
	"$(seq -s ' ' 100 111)" "$(seq -s ' ' 99 110)"
rcase "12 rounds, disjoint -> ahead" '1.11x, ahead' "$(seq -s ' ' 112 123)" "$(seq -s ' ' 100 111)"
# --- where slow requests went (tools/bench/stalls.py), on a synthetic scheduler trace:
# one request of 30 ms among 100 of 100 us, its proxy waiting 20 ms for a CPU
python3 "$(dirname "$0")/stalls_trace.py" "$tmp/stalls.text"
st=$(python3 "$(dirname "$0")/../../tools/bench/stalls.py" --script --slowest 1 "$tmp/stalls.text" 2>&1)
sline() { printf '%s\n' "$st" | grep -E -- "$1"; }
sline '^  101 requests on 1 connection\(s\) .*p50 0\.10 ms, p99 0\.10 ms, max 30\.00 ms; 1 over 10 ms;' >/dev/null
check "stalls: latencies as measured (101 requests, p99 0.1 ms, max 30 ms)" $? "$st"
# wrk's coordinated-omission correction: interval 41000 us / 101 = 405 us, the 30 ms
# sample adds 73 more (29595 ... 435 us), so its p99 is the largest added one
sline 'wrk would print p99 29\.59 ms$' >/dev/null
check "stalls: the p99 wrk prints after its correction (29.59 ms)" $? "$st"
sline '^  uninterruptible sleeps \(D\) of client, proxy, backend \(in 1 of the 1 requests over 10 ms\):$' >/dev/null &&
	sline '^ +1  ringmeshd-w0 +__lock_sock < lock_sock_nested < tcp_bpf_recvmsg < sock_recvmsg$' >/dev/null
check "stalls: the proxy's D sleep on the socket lock, with its stack" $? "$st"
# 29.0 of the 30 ms someone runnable, 0.1 ms the proxy in D, 0.9 ms only running
sline '^  the 1 requests over 10 ms: of their time, 97 % with a thread of client, proxy or backend waiting for a CPU, 0\.3 % else with one in D, 3 % else with one running, 0 % with all asleep$' >/dev/null
check "stalls: the slow requests' time split (waiting for a CPU, D, running, asleep)" $? "$st"
sline '^  psock work items run: sk_psock_backlog 1$' >/dev/null
check "stalls: psock work items counted, others not" $? "$st"
sline '^    client +wrk +ms: sleep 21\.0, runnable 8\.9, run 0\.1$' >/dev/null &&
	sline '^    proxy +ringmeshd-w0 +ms: runnable 20\.1, sleep 8\.9, run 0\.9, D 0\.1$' >/dev/null &&
	sline '^    on the CPUs \(60\.0 CPU-ms\): sh 59\.0, ringmeshd-w0 0\.9, wrk 0\.1$' >/dev/null &&
	! sline 'nginx' >/dev/null
check "stalls: the slow request's time per thread (running, runnable, asleep) and the CPUs' use" $? "$st"

# --- the benchmark's steal rule (tools/bench/lib.sh steady), on a fake wrk_once whose
# attempts take the host steals of $FAKE_STEAL in turn (empty: the attempt fails)
steal_case() {
	local name=$1 want=$2 got
	shift 2
	got=$(
		# shellcheck source=/dev/null
		. "$(dirname "$0")/../../tools/bench/lib.sh"
		n=0
		fake_once() {
			local s
			n=$((n + 1))
			s=$(echo "$FAKE_STEAL" | cut -d' ' -f$n)
			W_rps=$((1000 + n)) W_p50=$n W_p99=$n W_cpu=$n W_idle=$n W_steal=$s
			W_err=
			[ -n "$s" ] || { W_err="wrk failed"; return 1; }
		}
		STEADY_PAUSE=0
		if steady 3 300 fake_once >/dev/null; then
			echo "ok rps $W_rps steal $W_steal tries $W_tries err '$W_err'"
		else
			echo "failed tries $W_tries err '$W_err'"
		fi
	)
	[ "$got" = "$want" ]
	check "steal: $name" $? "got: $got, want: $want"
}
FAKE_STEAL="100 900 900" steal_case "a quiet first attempt is the only one" \
	"ok rps 1001 steal 100 tries 1 err ''"
FAKE_STEAL="900 200 900" steal_case "a busy attempt is run again, the quiet one counts" \
	"ok rps 1002 steal 200 tries 2 err ''"
FAKE_STEAL="900 700 800" steal_case "3 busy attempts: the least steal counts" \
	"ok rps 1002 steal 700 tries 3 err ''"
FAKE_STEAL="300 900 900" steal_case "at the limit is quiet enough" \
	"ok rps 1001 steal 300 tries 1 err ''"
FAKE_STEAL="900" steal_case "a failed attempt after a busy one: the busy one counts" \
	"ok rps 1001 steal 900 tries 3 err ''"
FAKE_STEAL="" steal_case "every attempt failed -> fails" "failed tries 3 err 'wrk failed'"
# wrk_run's limit: 5 % of the machine's CPU time (2 CPUs x 3 s -> 300 ms)
lim=$(
	. "$(dirname "$0")/../../tools/bench/lib.sh"
	nproc() { echo 2; }
	steady() { echo "$2"; }
	wrk_run name cg url 8 3
)
[ "$lim" = 300 ]
check "steal: wrk_run's limit is 5 % of the CPUs' time (2 CPUs, 3 s: 300 ms)" $? "$lim"
printf 'l7\tringmesh\trps\t8\t1\t100\nl7\tringmesh\tsteal\t8\t1\t700\nl7\tringmesh\ttries\t8\t1\t3\n' \
	>"$tmp/tries.tsv"
printf 'l7\thaproxy\trps\t8\t1\t100\nl7\thaproxy\tsteal\t8\t1\t50\nl7\thaproxy\ttries\t8\t1\t1\n' \
	>>"$tmp/tries.tsv"
v=$(python3 "$(dirname "$0")/../../tools/bench/summary.py" "$tmp/tries.tsv" | grep '^Host steal')
printf '%s' "$v" | grep -q '^Host steal: 1 of 2 wrk runs were run again .*the most kept: 700 ms'
check "steal: the tables say how many runs were run again" $? "$v"

echo "tools: $pass passed, $fail failed"
[ $fail -eq 0 ]
