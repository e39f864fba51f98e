#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# L7 benchmark (not a test): one run, side by side, in a network namespace of its own:
#   direct    wrk -> rm-backend
#   ringmesh  wrk (in the pods' cgroup, so connect4 intercepts it) -> VIP -> ringmeshd
#             (1 worker) -> 50/50 weighted route (ServiceEntry + DestinationRule +
#             VirtualService, loaded with `ringmesh apply`) -> rm-backend
#   HAProxy   http mode, nbthread 1, keep-alive to the backend, 50/50 roundrobin
#   nginx     worker_processes 1, upstream keepalive, 50/50, access_log off
# Small GETs over HTTP/1.1 keep-alive with wrk (fixed -t/-c, --latency for p50/p99),
# requests/s and latency as ratios to direct. The backend is one rm-backend process
# listening on two addresses (the two "versions" of the route), so every path is served
# by the same backend capacity.
# Usage: sudo tools/bench/l7.sh [BUILD] [SECONDS] [CONNS] [THREADS]
set -u
BUILD=${1:-build}
SECS=${2:-5}
CONNS=${3:-8}
THREADS=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=bench7-$$
. "$here/../../tests/e2e/lib.sh"
. "$here/../../tests/e2e/netns.sh"
. "$here/lib.sh" # wait_listen, stop_cg
need_root
for t in wrk haproxy nginx; do
	command -v $t >/dev/null || { echo "$t missing: make deps"; exit 1; }
done
case "$SECS$CONNS$THREADS" in
*[!0-9]*) echo "usage: $0 [BUILD] [SECONDS] [CONNS] [THREADS]"; exit 2;;
esac
[ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ] && [ "$CONNS" -ge 1 ] && [ "$CONNS" -le 1000 ] &&
	[ "$THREADS" -ge 1 ] && [ "$THREADS" -le "$CONNS" ] ||
	{ echo "SECONDS 1..60, CONNS 1..1000, THREADS 1..CONNS"; exit 2; }

NS=rm-$RUN_ID
mk_netns "$NS" || exit 1
# Every process of the run lives in a cgroup of $CG, so lib.sh's cleanup kills them all
# whatever wrapper started them.
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd)
BACK_CG=$(mk_cgroup servers/backend)
HAP_CG=$(mk_cgroup servers/haproxy)
NGX_CG=$(mk_cgroup servers/nginx)
VIP=127.96.0.20 B1=127.96.0.21 B2=127.96.0.22 HAP=127.96.0.30 NGX=127.96.0.31 PORT=8080
LP=15001

bg backend in_cg "$BACK_CG" "$NS" -- "$BUILD/rm-backend" --mode http --name bench --version v1 \
	--listen $B1:$PORT --listen $B2:$PORT --ready-file "$TMP/b.ready"
wait_file "$TMP/b.ready" 5 || { echo "backend did not start"; cat "$TMP/backend.log"; exit 1; }

# ---- configurations, all paths under $TMP ----
cat >"$TMP/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 4096
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend fe
	bind $HAP:$PORT
	default_backend be
backend be
	balance roundrobin
	server v1 $B1:$PORT weight 50
	server v2 $B2:$PORT weight 50
EOF
mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
user root;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $TMP/nginx/body;
	proxy_temp_path $TMP/nginx/proxy;
	fastcgi_temp_path $TMP/nginx/fastcgi;
	uwsgi_temp_path $TMP/nginx/uwsgi;
	scgi_temp_path $TMP/nginx/scgi;
	upstream be {
		server $B1:$PORT weight=1;
		server $B2:$PORT weight=1;
		keepalive 64;
	}
	server {
		listen $NGX:$PORT;
		location / {
			proxy_pass http://be;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
cat >"$TMP/rules.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bench
  namespace: bench
spec:
  hosts: [bench.bench.svc.cluster.local]
  addresses: [$VIP]
  ports: [{number: $PORT, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: $B1, ports: {http: $PORT}, labels: {app: bench, version: v1}}
  - {address: $B2, ports: {http: $PORT}, labels: {app: bench, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: bench
  namespace: bench
spec:
  host: bench
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bench
  namespace: bench
spec:
  hosts: [bench]
  http:
  - route:
    - {destination: {host: bench, subset: v1}, weight: 50}
    - {destination: {host: bench, subset: v2}, weight: 50}
EOF


# wrk output -> R[name,rps|p50|p99|err]; latencies in µs
us() { # "123.45us" / "1.23ms" / "1.00s" -> µs
	awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "ms") n *= 1e3; else if (u == "s") n *= 1e6; else if (u == "m") n *= 6e7
		printf "%.1f", n }'
}
declare -A R
measure() { # name URL
	local out
	out=$(in_cg "$CLIENT_CG" "$NS" -- timeout $((SECS + 30)) wrk -t"$THREADS" -c"$CONNS" \
		-d"${SECS}s" --latency "$2" 2>&1)
	echo "$out" >"$TMP/wrk.$1"
	R[$1,rps]=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
	R[$1,p50]=$(us "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
	R[$1,p99]=$(us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
	local non2xx sock
	non2xx=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ { print $NF }')
	sock=$(echo "$out" | sed -n 's/.*Socket errors: //p')
	R[$1,err]=""
	[ -n "$non2xx" ] && R[$1,err]="non-2xx $non2xx"
	[ -n "$sock" ] && R[$1,err]="${R[$1,err]:+${R[$1,err]}, }socket errors: $sock"
	if [ -z "${R[$1,rps]}" ]; then
		R[$1,err]="wrk failed"
		echo "  $1: wrk failed:"; sed 's/^/    /' "$TMP/wrk.$1" | tail -5
		return 1
	fi
	echo "  $1: ${R[$1,rps]} req/s, p50 ${R[$1,p50]} µs, p99 ${R[$1,p99]} µs" \
		"${R[$1,err]:+ (${R[$1,err]})}"
}

echo "ringmesh L7 benchmark: $(uname -r), $(nproc) CPUs," \
	"wrk -t$THREADS -c$CONNS -d${SECS}s, keep-alive GET /"
in_ns "$NS" curl -sf -o /dev/null "http://$B1:$PORT/" || { echo "backend not answering"; exit 1; }
measure direct "http://$B1:$PORT/"

bg haproxy in_cg "$HAP_CG" "$NS" -- haproxy -db -f "$TMP/haproxy.cfg"
if wait_listen $HAP:$PORT; then
	measure haproxy "http://$HAP:$PORT/"
else
	R[haproxy,err]="did not start"; sed 's/^/    /' "$TMP/haproxy.log" | tail -5
fi
stop_cg "$HAP_CG"

bg nginx in_cg "$NGX_CG" "$NS" -- nginx -e "$TMP/nginx/logs/error.log" -p "$TMP/nginx" \
	-c "$TMP/nginx.conf"
if wait_listen $NGX:$PORT; then
	measure nginx "http://$NGX:$PORT/"
else
	R[nginx,err]="did not start"
	sed 's/^/    /' "$TMP/nginx.log" "$TMP/nginx/logs/error.log" | tail -5
fi
stop_cg "$NGX_CG"

if start_ringmeshd "$DCG" "$NS" --cgroup "$PODS" --workers 1 --listen 127.0.0.1:$LP \
	--include-ip-ranges $VIP/32; then
	if "$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$TMP/rules.yaml" >"$TMP/apply.out" 2>&1; then
		measure ringmesh "http://$VIP:$PORT/"
	else
		R[ringmesh,err]="apply failed: $(head -1 "$TMP/apply.out")"
	fi
	stop_ringmeshd
else
	R[ringmesh,err]="ringmeshd did not start"
fi

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "-" }'
}

# OBS_ROUNDS=N: the cost of observability, N interleaved rounds of ringmesh with the
# metrics endpoint off and no tracing ("bare") against metrics on (scraped once a
# second) and Zipkin spans at Istio's 1 % to a receiver ("obs"), medians compared.
OBS_ROUNDS=${OBS_ROUNDS:-0}
# OBS_SPLIT="met trc" adds metrics alone and tracing alone to each round; OBS_PERF=DIR
# records each round's daemon with perf record -g and perf stat into DIR.
OBS_SPLIT=${OBS_SPLIT:-} OBS_PERF=${OBS_PERF:-}
declare -a OBS_BARE OBS_ON OBS_BARE_CPU OBS_ON_CPU OBS_MET OBS_MET_CPU OBS_TRC OBS_TRC_CPU
if [ "$OBS_ROUNDS" -gt 0 ]; then
	ZCG=$(mk_cgroup servers/zipkin)
	bg zipkin in_cg "$ZCG" "$NS" -- /usr/bin/python3 "$here/../../tests/e2e/zipkin_recv.py" \
		--port 0 --port-file "$TMP/zipkin.port" --out "$TMP/spans.jsonl" --errors "$TMP/spans.err"
	wait_file "$TMP/zipkin.port" 5 || { echo "zipkin receiver did not start"; exit 1; }
	ZPORT=$(cat "$TMP/zipkin.port")
	for ((round = 1; round <= OBS_ROUNDS; round++)); do
		for mode in bare obs $OBS_SPLIT; do
			case $mode in
			bare) set -- --metrics-listen off;;
			obs) set -- --metrics-listen 127.0.0.1:15390 \
				--zipkin-url "http://127.0.0.1:$ZPORT/api/v2/spans" --trace-sampling 1;;
			met) set -- --metrics-listen 127.0.0.1:15390;;
			trc) set -- --metrics-listen off \
				--zipkin-url "http://127.0.0.1:$ZPORT/api/v2/spans" --trace-sampling 1;;
			esac
			start_ringmeshd "$DCG" "$NS" --cgroup "$PODS" --workers 1 --listen 127.0.0.1:$LP \
				--include-ip-ranges $VIP/32 "$@" || { echo "ringmeshd ($mode) did not start"; exit 1; }
			"$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$TMP/rules.yaml" >/dev/null || exit 1
			scraper=
			if [ $mode = obs ] || [ $mode = met ]; then
				in_ns "$NS" bash -c 'while :; do curl -s -o /dev/null http://127.0.0.1:15390/stats/prometheus; sleep 1; done' &
				scraper=$!
			fi
			u0=$(awk '$1 == "usage_usec" { print $2 }' "$DCG/cpu.stat")
			perfp=
			if [ -n "$OBS_PERF" ]; then
				perf record -q -g -o "$OBS_PERF/perf.$mode.$round.data" -p "$RINGMESHD_PID" \
					-- sleep $((SECS > 2 ? SECS - 1 : 1)) >/dev/null 2>&1 &
				perfp=$!
				perf stat -e task-clock,context-switches,cpu-migrations,page-faults \
					-o "$OBS_PERF/stat.$mode.$round.txt" -p "$RINGMESHD_PID" \
					-- sleep $((SECS > 2 ? SECS - 1 : 1)) >/dev/null 2>&1 &
				perfp="$perfp $!"
			fi
			measure "obs-$mode-$round" "http://$VIP:$PORT/"
			[ -n "$perfp" ] && wait $perfp
			u1=$(awk '$1 == "usage_usec" { print $2 }' "$DCG/cpu.stat")
			[ -n "$scraper" ] && { kill "$scraper"; wait "$scraper" 2>/dev/null; }
			stop_ringmeshd
			# the daemon's CPU per request (its cgroup's usage), steadier than req/s here
			cpr=$(awk -v u=$((u1 - u0)) -v r="${R[obs-$mode-$round,rps]}" -v s=$SECS \
				'BEGIN { printf "%.2f", u / (r * s) }')
			case $mode in
			bare) OBS_BARE+=("${R[obs-$mode-$round,rps]}") OBS_BARE_CPU+=("$cpr");;
			obs) OBS_ON+=("${R[obs-$mode-$round,rps]}") OBS_ON_CPU+=("$cpr");;
			met) OBS_MET+=("${R[obs-$mode-$round,rps]}") OBS_MET_CPU+=("$cpr");;
			trc) OBS_TRC+=("${R[obs-$mode-$round,rps]}") OBS_TRC_CPU+=("$cpr");;
			esac
		done
	done
	stop_cg "$ZCG"
fi
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "| path | requests/s | p50 µs | p99 µs | errors |"
echo "|---|---|---|---|---|"
for k in direct ringmesh haproxy nginx; do
	case $k in
	direct) n="direct";;
	ringmesh) n="ringmesh (1 worker, 50/50 VirtualService)";;
	haproxy) n="HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }') (nbthread 1)";;
	nginx) n="nginx $(nginx -v 2>&1 | sed 's|.*/||') (1 worker)";;
	esac
	e=${R[$k,err]:-none}
	if [ -z "${R[$k,rps]:-}" ]; then
		echo "| $n | - | - | - | ${R[$k,err]:-not run} |"
	elif [ $k = direct ]; then
		echo "| $n | ${R[$k,rps]} | ${R[$k,p50]} | ${R[$k,p99]} | $e |"
	else
		echo "| $n | ${R[$k,rps]} ($(ratio "${R[$k,rps]}" "${R[direct,rps]}")x) |" \
			"${R[$k,p50]} ($(ratio "${R[$k,p50]}" "${R[direct,p50]}")x) |" \
			"${R[$k,p99]} ($(ratio "${R[$k,p99]}" "${R[direct,p99]}")x) | $e |"
	fi
done
if [ "$OBS_ROUNDS" -gt 0 ]; then
	mb=$(median "${OBS_BARE[@]}") mo=$(median "${OBS_ON[@]}")
	echo
	echo "observability cost, $OBS_ROUNDS interleaved rounds of ${SECS}s, c$CONNS, 1 worker:"
	cb=$(median "${OBS_BARE_CPU[@]}") co=$(median "${OBS_ON_CPU[@]}")
	echo "| ringmesh | requests/s per round | median | daemon CPU µs/request per round | median |"
	echo "|---|---|---|---|---|"
	echo "| metrics off, no tracing | ${OBS_BARE[*]} | $mb | ${OBS_BARE_CPU[*]} | $cb |"
	echo "| metrics on (scraped 1/s), Zipkin 1 % | ${OBS_ON[*]} | $mo ($(ratio "$mo" "$mb")x) |" \
		"${OBS_ON_CPU[*]} | $co ($(ratio "$co" "$cb")x) |"
	for mode in $OBS_SPLIT; do
		case $mode in
		met) n="metrics on (scraped 1/s), no tracing"; v=("${OBS_MET[@]}") vc=("${OBS_MET_CPU[@]}");;
		trc) n="metrics off, Zipkin 1 %"; v=("${OBS_TRC[@]}") vc=("${OBS_TRC_CPU[@]}");;
		*) continue;;
		esac
		m=$(median "${v[@]}") mc=$(median "${vc[@]}")
		echo "| $n | ${v[*]} | $m ($(ratio "$m" "$mb")x) | ${vc[*]} | $mc ($(ratio "$mc" "$cb")x) |"
	done
	echo "spans received: $(wc -l <"$TMP/spans.jsonl" 2>/dev/null || echo 0)"
fi
