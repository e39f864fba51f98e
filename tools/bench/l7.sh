#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# L7 benchmark (not a test), in a network namespace of its own, every proxy on one
# worker/thread, all on loopback:
#   direct      wrk -> backend
#   ringmesh    wrk (in the pods' cgroup, so connect4 intercepts it) -> VIP -> ringmeshd
#               (1 worker) -> 50/50 weighted route (ServiceEntry + DestinationRule +
#               VirtualService, loaded with `ringmesh apply`) -> backend; --sockmap
#               (the sk_msg shortcut between wrk and the proxy) whatever the default
#   nosockmap   the same with ringmeshd --no-sockmap (plain TCP between wrk and proxy)
#   haproxy     http mode, nbthread 1, keep-alive to the backend, 50/50 roundrobin
#   nginx       worker_processes 1, upstream keepalive 64, 50/50, access_log off
# The backend is one process listening on the route's two addresses, so every path is
# served by the same backend capacity: nginx answering a fixed "ok" (BACKEND=nginx, the
# default: its responses do not echo the request's headers) or rm-backend's JSON
# description of the request (BACKEND=rm: grows with the headers a proxy adds).
# ROUNDS rounds, interleaved: each round runs every path (in an order rotated per
# round) through every connection count (wrk -t1 --latency, SECONDS each), then, for
# the proxies, a paced load (wrk -c9, each connection 2 ms between requests, ~4.5k
# req/s) for the proxy's CPU per request (its cgroup's usage). Figures go to $BENCH_OUT
# (TSV, tools/bench/summary.py makes the tables); without it, to a file of this run.
# Usage: sudo tools/bench/l7.sh [BUILD] [SECONDS] [CONNS,...] [ROUNDS]
#        (defaults: build 5 1,8,64,256,1024 3)
# OBS_ROUNDS=N: afterwards, N interleaved rounds of ringmesh (c8) with metrics off and no
# tracing against metrics scraped once a second plus Zipkin spans at 1 %, the order
# rotated per round. OBS_MODES="bare met trc obs" adds metrics alone and tracing alone.
# WORKERS=N: every proxy on N workers/threads (ringmeshd --workers N, HAProxy nbthread N,
# nginx worker_processes N) and wrk on N threads; the figures are then phase "l7wN"
# (the backend stays one nginx worker).
# STEAL_PCT=5 STEAL_TRIES=3: a run during which the host's steal exceeded STEAL_PCT % of
# the machine's CPU time is run again, up to STEAL_TRIES attempts, and the attempt with
# the least steal counts (tools/bench/lib.sh steady; figures.tsv "tries").
# BUILD_B=DIR PATHS="ringmesh ringmesh_b ...": an A/B of two builds' ringmeshd, each
# path run like ringmesh, interleaved like every path (BUILD's CLI for both); BUILD_C
# and ringmesh_c for a third build.
# WRK_LUA=FILE: a wrk script for the runs by connection count, e.g. one line
# `wrk.headers["Connection"] = "close"` for a new connection per request.
# PACED=0: no paced phase (e.g. CONNS=1 ROUNDS=10 for the c1 tail alone); PROF then
# applies to the runs by connection count (PATH-cCONNS-rROUND.*).
# CONNS=none: the paced load alone (with PATHS="ringmesh haproxy", the CPU-per-request
# comparison). PROF=perf|stat|strace|trace|ops: during each paced run (SECS - 2 s of
# it, from 1 s in), also profile the proxy (perf record -e cpu-clock -g), count its
# syscalls, context switches and io_uring submissions/completions (perf stat on
# tracepoints: cheap), count them by name (strace -c -f: distorts its timing and
# CPU, so only for counting), summarise them (perf trace -s) or record 2 s of its
# io_uring submissions (ops: `perf script` shows each one's opcode), or record the whole
# machine's scheduling with wrk's request syscalls (sched: system-wide sched_switch and
# sched_wakeup, kernel stacks of switches into D, psock work items, wrk's write/read;
# tools/bench/stalls.py FILE... says where the slowest requests' time went), output in
# $PROF_DIR (default: the run's directory, removed at exit: set it to keep them) as
# PATH-rROUND.{perf,stat,strace,trace,ops,sched} (sched: and a .roles file of the
# proxy's and the backend's thread ids).
set -u
BUILD=${1:-build}
SECS=${2:-5}
CONNS=${3:-1,8,64,256,1024}
ROUNDS=${4:-3}
BACKEND=${BACKEND:-nginx}
PATHS=${PATHS:-direct ringmesh nosockmap haproxy nginx}
WORKERS=${WORKERS:-1}
case $WORKERS in 1) PH=l7 ;; [2-8]) PH=l7w$WORKERS ;; *) echo "WORKERS 1..8"; exit 2 ;; esac
export RM_WORKERS=$WORKERS WRK_THREADS=$WORKERS
[ "$PATHS" = none ] && PATHS= # PATHS=none OBS_ROUNDS=N: the observability rounds alone
here=$(cd "$(dirname "$0")" && pwd)
RUN_ID=bench7-$$
. "$here/../../tests/e2e/lib.sh"
. "$here/../../tests/e2e/netns.sh"
. "$here/lib.sh"
need_root
for t in wrk haproxy nginx; do
	command -v $t >/dev/null || { echo "$t missing: make deps"; exit 1; }
done
[ "$CONNS" = none ] && CONNS=
PACED=${PACED:-1}
PROF=${PROF:-}
case $PROF in "" | ops | perf | sched | stat | strace | trace) ;;
*) echo "PROF ops, perf, sched, stat, strace or trace"; exit 2;; esac
case "$SECS$ROUNDS${CONNS//,/}" in
*[!0-9]* | "") echo "usage: $0 [BUILD] [SECONDS] [CONNS,...] [ROUNDS]"; exit 2;;
esac
[ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ] && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] ||
	{ echo "SECONDS 1..60, ROUNDS 1..20"; exit 2; }
for c in ${CONNS//,/ }; do
	[ "$c" -ge 1 ] && [ "$c" -le 4000 ] || { echo "CONNS 1..4000"; exit 2; }
done
case $BACKEND in nginx | rm) ;; *) echo "BACKEND nginx or rm"; exit 2;; esac
ulimit -n "$(ulimit -Hn)" 2>/dev/null # wrk -c1024, the proxies' two sockets per client
BENCH_OUT=${BENCH_OUT:-$TMP/figures.tsv}
PROF_DIR=${PROF_DIR:-$TMP}
# a profile covers the first attempt of a run only: no second attempts (lib.sh steady)
[ -n "$PROF" ] && export STEAL_TRIES=${STEAL_TRIES:-1}
rec meta steal_rule $PH - - \
	"more than ${STEAL_PCT:-5} % of the CPUs, at most ${STEAL_TRIES:-3} attempts"

NS=rm-$RUN_ID
mk_netns "$NS" || exit 1
# Every process of the run lives in a cgroup of $CG, so lib.sh's cleanup kills them all
# whatever wrapper started them.
PODS=$(mk_cgroup pods) CLIENT_CG=$(mk_cgroup pods/client) DCG=$(mk_cgroup ringmeshd)
BACK_CG=$(mk_cgroup servers/backend)
HAP_CG=$(mk_cgroup servers/haproxy)
NGX_CG=$(mk_cgroup servers/nginx)
VIP=127.96.0.20 B1=127.96.0.21 B2=127.96.0.22 HAP=127.96.0.30 NGX=127.96.0.31 PORT=8080

start_backend "$BACK_CG" $B1,$B2 $PORT || exit 1

THREADS=$WORKERS haproxy_cfg "$TMP/haproxy.cfg" $HAP:$PORT 8192 $B1:$PORT $B2:$PORT
THREADS=$WORKERS nginx_conf "$TMP/nginx" $NGX:$PORT 8192 $B1:$PORT $B2:$PORT
rules_yaml "$TMP/rules.yaml" $VIP $PORT $B1 $B2
# wrk's pacing: every connection waits 2 ms after each response (9 connections: at
# most 4.5k requests/s), the same offered load for every proxy
cat >"$TMP/paced.lua" <<'EOL'
function delay()
	return 2
end
EOL

# HAProxy and nginx run throughout (idle between their turns); ringmeshd is started
# for its turn (two flavours, one pin dir).
start_proxy haproxy "$HAP_CG" haproxy -db -f "$TMP/haproxy.cfg"
wait_listen $HAP:$PORT || { echo "haproxy did not start"; tail -5 "$TMP/haproxy.log"; exit 1; }
start_proxy nginx "$NGX_CG" nginx -e "$TMP/nginx/logs/error.log" -p "$TMP/nginx" \
	-c "$TMP/nginx/nginx.conf"
wait_listen $NGX:$PORT || { echo "nginx did not start"; tail -5 "$TMP/nginx/logs/error.log"; exit 1; }

echo "ringmesh L7 benchmark: $(machine $PH)"
echo "  $ROUNDS interleaved rounds, $WORKERS worker(s), wrk -t$WORKERS -c{$CONNS} -d${SECS}s, keep-alive GET /, backend $BACKEND"
rec meta setup $PH - - "$ROUNDS rounds of ${SECS}s, $WORKERS worker(s) each, wrk -t$WORKERS --latency, backend $BACKEND;\
 $(haproxy -v | awk 'NR == 1 { print "HAProxy " $3 }'), $(nginx -v 2>&1 | sed 's|.*/|nginx |')"

# thread_ms /proc/PID/task/TID: the thread's CPU time (user + system) in ms
thread_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000 / hz }' "$1/stat"
}

# path NAME: its URL and proxy cgroup in P_URL, P_CG; starts ringmeshd for its paths
path_up() {
	P_CG=
	case $1 in
	direct) P_URL=http://$B1:$PORT/ ;;
	haproxy) P_URL=http://$HAP:$PORT/ P_CG=$HAP_CG ;;
	nginx) P_URL=http://$NGX:$PORT/ P_CG=$NGX_CG ;;
	ringmesh) P_URL=http://$VIP:$PORT/ P_CG=$DCG
		start_rm "$DCG" "$PODS" $VIP "$TMP/rules.yaml" --sockmap ;;
	nosockmap) P_URL=http://$VIP:$PORT/ P_CG=$DCG
		start_rm "$DCG" "$PODS" $VIP "$TMP/rules.yaml" --no-sockmap ;;
	ringmesh_b | ringmesh_c) local bv=BUILD_${1#ringmesh_}
		bv=${bv^^}
		[ -n "${!bv:-}" ] || { echo "$1: set $bv"; return 1; }
		P_URL=http://$VIP:$PORT/ P_CG=$DCG
		RINGMESHD=$(realpath "${!bv}/ringmeshd") \
			start_rm "$DCG" "$PODS" $VIP "$TMP/rules.yaml" ;;
	*) echo "unknown path $1"; return 1 ;;
	esac
}
path_down() { case $1 in ringmesh | nosockmap | ringmesh_[bc]) stop_ringmeshd ;; esac; }

# prof_start NAME CG: with PROF, start the profiler on CG's processes for the paced run
# (SECS long, 1 s into it so the connections' setup stays out); its pid in PROF_PID
prof_start() {
	local pids out=$PROF_DIR/$1.$PROF ev
	PROF_PID=
	[ -n "$PROF" ] || return 0
	pids=$(paste -sd, "$2/cgroup.procs")
	ev=raw_syscalls:sys_enter,sched:sched_switch,syscalls:sys_enter_io_uring_enter
	ev=$ev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom
	ev=$ev,io_uring:io_uring_submit_req,io_uring:io_uring_complete,io_uring:io_uring_task_add
	ev=$ev,io_uring:io_uring_local_work_run,page-faults
	case $PROF in
	ops) (sleep 1; exec perf record -q -e io_uring:io_uring_submit_req -p "$pids" -o "$out" \
		-- sleep 2) >/dev/null 2>&1 & ;;
	stat) (sleep 1; exec perf stat -x, -e "$ev" -p "$pids" -o "$out" -- \
		sleep $((SECS > 2 ? SECS - 2 : 1))) >/dev/null 2>&1 & ;;
	perf) (sleep 1; exec perf record -q -e cpu-clock -g -p "$pids" -o "$out" -- \
		sleep $((SECS > 2 ? SECS - 2 : 1))) >/dev/null 2>&1 & ;;
	sched) sched_roles "$2" >"$out.roles"
		(sleep 1; exec perf record -q -a -o "$out" -e "sched:sched_switch/call-graph=no/" \
			-e "sched:sched_wakeup/call-graph=no/" \
			-e "sched:sched_switch/call-graph=fp/" --filter "prev_state == 2" \
			-e "workqueue:workqueue_execute_start/call-graph=no/" \
			-e "syscalls:sys_enter_write/call-graph=no/" --filter 'comm == "wrk"' \
			-e "syscalls:sys_enter_read/call-graph=no/" --filter 'comm == "wrk"' \
			-e "syscalls:sys_exit_read/call-graph=no/" --filter 'comm == "wrk"' \
			-- sleep $((SECS > 2 ? SECS - 2 : 1))) >/dev/null 2>&1 & ;;
	trace) (sleep 1; exec perf trace -s -p "$pids" -o "$out" -- \
		sleep $((SECS > 2 ? SECS - 2 : 1))) >/dev/null 2>&1 & ;;
	# shellcheck disable=SC2086 # one -p per pid
	strace) (sleep 1; exec timeout -s INT $((SECS > 2 ? SECS - 2 : 1)) \
		strace -c -f -o "$out" -p ${pids//,/ -p }) >/dev/null 2>&1 & ;;
	esac
	PROF_PID=$!
}
# sched_roles CG: "proxy TID..." and "backend TID..." for tools/bench/stalls.py
sched_roles() {
	local role cg p t
	for role in proxy backend; do
		cg=$1
		[ $role = backend ] && cg=$BACK_CG
		printf '%s' $role
		while read -r p; do
			for t in /proc/"$p"/task/*; do [ -e "$t" ] && printf ' %s' "${t##*/}"; done
		done <"$cg/cgroup.procs"
		echo
	done
}
prof_wait() { [ -z "${PROF_PID:-}" ] || wait "$PROF_PID" 2>/dev/null; PROF_PID=; }

for ((round = 1; round <= ROUNDS; round++)); do
	echo "round $round/$ROUNDS (load average $(cut -d' ' -f1 /proc/loadavg))"
	for p in $(order $round $PATHS); do
		if ! path_up "$p"; then
			rec $PH "$p" err - $round "did not start"
			continue
		fi
		for c in ${CONNS//,/ }; do
			[ -n "$P_CG" ] && [ "$PACED" = 0 ] && prof_start "$p-c$c-r$round" "$P_CG"
			if wrk_run "$p-c$c-r$round" "$CLIENT_CG" "$P_URL" "$c" "$SECS" "$P_CG" \
				"${WRK_LUA:-}"; then
				rec $PH "$p" rps "$c" $round "$W_rps"
				rec $PH "$p" p50 "$c" $round "$W_p50"
				rec $PH "$p" p99 "$c" $round "$W_p99"
				rec $PH "$p" cpu "$c" $round "$W_cpu"
				rec $PH "$p" steal "$c" $round "$W_steal" # the host's, not a figure
				rec $PH "$p" idle "$c" $round "$W_idle"   # nor this: CPU left unused
				rec $PH "$p" tries "$c" $round "$W_tries" # attempts (steal, lib.sh)
			fi
			[ -z "$W_err" ] || rec $PH "$p" err "$c" $round "$W_err"
			prof_wait
		done
		[ -n "$P_CG" ] && [ "$PACED" = 1 ] && [ $WORKERS = 1 ] && prof_start "$p-r$round" "$P_CG"
		if [ -n "$P_CG" ] && [ "$PACED" = 1 ] && [ $WORKERS = 1 ] &&
			wrk_run "$p-paced-r$round" "$CLIENT_CG" "$P_URL" 9 "$SECS" \
			"$P_CG" "$TMP/paced.lua"; then
			rec paced "$p" rps 9 $round "$W_rps"
			rec paced "$p" cpu 9 $round "$W_cpu"
			rec paced "$p" steal 9 $round "$W_steal"
			rec paced "$p" tries 9 $round "$W_tries"
			[ -z "$W_err" ] || rec paced "$p" err 9 $round "$W_err"
		fi
		prof_wait
		path_down "$p"
	done
done

# OBS_ROUNDS=N: the cost of observability, N interleaved rounds of ringmesh with the
# metrics endpoint off and no tracing ("bare") against metrics on (scraped once a
# second) and Zipkin spans at Istio's 1 % to a collector ("obs"), medians compared.
OBS_ROUNDS=${OBS_ROUNDS:-0}
OBS_MODES=${OBS_MODES:-bare obs}
if [ "$OBS_ROUNDS" -gt 0 ]; then
	# The collector stands for one on another machine: an nginx that takes the POSTs
	# and discards them (the e2e's zipkin_recv.py validates every span, which costs
	# this machine's shared CPUs more than the daemon's sending does). Its access log
	# counts the batches.
	ZCG=$(mk_cgroup servers/zipkin) ZPORT=9411
	nginx_conf "$TMP/zipkin" 127.0.0.1:$ZPORT 64
	sed -i "s|access_log off;|access_log $TMP/zipkin/logs/access.log;|" "$TMP/zipkin/nginx.conf"
	start_proxy zipkin "$ZCG" nginx -e "$TMP/zipkin/logs/error.log" -p "$TMP/zipkin" \
		-c "$TMP/zipkin/nginx.conf"
	wait_listen 127.0.0.1:$ZPORT || { echo "collector did not start"; exit 1; }
	for ((round = 1; round <= OBS_ROUNDS; round++)); do
		for mode in $(order $round $OBS_MODES); do
			case $mode in
			bare) set -- --metrics-listen off ;;
			met) set -- --metrics-listen 127.0.0.1:15390 ;;
			trc) set -- --metrics-listen off \
				--zipkin-url "http://127.0.0.1:$ZPORT/api/v2/spans" --trace-sampling 1 ;;
			obs) set -- --metrics-listen 127.0.0.1:15390 \
				--zipkin-url "http://127.0.0.1:$ZPORT/api/v2/spans" --trace-sampling 1 ;;
			*) echo "OBS_MODES: bare, met, trc, obs"; exit 2 ;;
			esac
			start_rm "$DCG" "$PODS" $VIP "$TMP/rules.yaml" "$@" ||
				{ echo "ringmeshd ($mode) did not start"; exit 1; }
			# one scraper process for the run, as a Prometheus elsewhere would be (a
			# curl started every second costs this machine more than the scrape)
			scraper=
			if [ $mode = obs ] || [ $mode = met ]; then
				in_ns "$NS" curl -s -o /dev/null --rate 1/s \
					"http://127.0.0.1:15390/stats/prometheus?[1-100000]" &
				scraper=$!
			fi
			wrk_run "obs-$mode-$round" "$CLIENT_CG" "http://$VIP:$PORT/" 8 "$SECS" "$DCG" &&
				rec obs "$mode" rps 8 $round "$W_rps" && rec obs "$mode" cpu 8 $round "$W_cpu"
			[ -n "$scraper" ] && { kill "$scraper"; wait "$scraper" 2>/dev/null; }
			# what the exporter and the span sender threads used (ms, since start)
			for t in /proc/$RINGMESHD_PID/task/*; do
				case $(cat "$t/comm" 2>/dev/null) in
				rm-admin) rec obs "$mode" adm 8 $round "$(thread_ms "$t")" ;;
				rm-spans) rec obs "$mode" snd 8 $round "$(thread_ms "$t")" ;;
				esac
			done
			stop_ringmeshd
		done
	done
	stop_cg "$ZCG"
	echo "span batches posted: $(grep -c 'POST /api/v2/spans' "$TMP/zipkin/logs/access.log" 2>/dev/null || echo 0)"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rec meta load_end $PH - - "$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$BENCH_OUT" != "$TMP/figures.tsv" ] || python3 "$here/summary.py" "$BENCH_OUT"
exit 0
