# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Helpers the benchmarks share, sourced after tests/e2e/lib.sh (in_ns) with $NS set.

# wait_listen ADDR:PORT: something accepts there (inside the namespace $NS)
wait_listen() {
	local i
	for ((i = 0; i < 50; i++)); do
		in_ns "$NS" ss -Htln "src $1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# stop_cg CG: end the processes this run started in CG (by pid) and wait for them, so
# the next path is measured on an idle machine. bg's pid is only a wrapper shell.
stop_cg() {
	local p i
	for p in $(cat "$1/cgroup.procs"); do kill -TERM "$p" 2>/dev/null; done
	for ((i = 0; i < 30; i++)); do
		[ -z "$(cat "$1/cgroup.procs")" ] && return 0
		sleep 0.1
	done
	for p in $(cat "$1/cgroup.procs"); do kill -KILL "$p" 2>/dev/null; done
}

# cg_usec CG: CPU time (µs) the processes of CG have used so far (cgroup2 cpu.stat)
cg_usec() { awk '$1 == "usage_usec" { print $2 }' "$1/cpu.stat"; }
# cpu_ms COLUMN...: ms of all CPUs since boot in those columns of /proc/stat's "cpu" line
# (USER_HZ ticks), summed
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" -v cols="$*" '$1 == "cpu" {
	n = split(cols, c, " "); t = 0; for (i = 1; i <= n; i++) t += $(c[i]); printf "%.0f", t * 1000 / hz }' /proc/stat; }
# steal_ms: CPU time the hypervisor gave to others while this VM's CPUs wanted it ("steal")
steal_ms() { cpu_ms 9; }
# idle_ms: CPU time no task wanted (idle and iowait): a run that leaves CPU idle is bound
# by its round trips (wakeups), not by CPU
idle_ms() { cpu_ms 5 6; }

# rec PHASE PATH METRIC CONNS ROUND VALUE: one figure, a line of $BENCH_OUT (TSV) for
# tools/bench/summary.py; nothing without BENCH_OUT.
rec() {
	[ -z "${BENCH_OUT:-}" ] || printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_OUT"
	return 0
}

# machine: what a figure was measured on, one line (also as a "machine" record)
machine() {
	local m
	m="$(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)),"
	m="$m kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	rec meta machine "$1" - - "$m"
	echo "$m"
}

# order ROUND NAME...: the names rotated by ROUND (round 1: as given), so that no path
# always runs first or right after the same neighbour.
order() {
	local r=$1; shift
	local n=$# i
	local a=("$@")
	for ((i = 0; i < n; i++)); do echo "${a[(i + r - 1) % n]}"; done
}

# cfgbench_build ROOT BUILD OUT LOG: tools/bench/cfgbench.c against BUILD's
# libringmesh.a (made first) as OUT; the compiler's output in LOG
cfgbench_build() {
	local root=$1 b=$2 mb
	case $b in /*) ;; *) b=$root/$b ;; esac
	# make sees BUILD as the tree's own builds spell it (build, not /abs/build): objects
	# made under another spelling get dependency files whose targets never match, and
	# a later `make` would not rebuild them when a header changes
	mb=$(realpath -m --relative-to="$root" "$b")
	case $mb in ../*) mb=$b ;; esac
	make -C "$root" -j2 BUILD="$mb" "$mb/libringmesh.a" >"$4" 2>&1 &&
		cc -O2 -g -std=gnu11 -D_GNU_SOURCE -I"$root/include" -I"$root/user" \
			-I"$root/tools" -I"$b" "$root/tools/bench/cfgbench.c" "$b/libringmesh.a" \
			-lbpf -lelf -lz -luring -lyaml -lpcre2-8 -lpthread -lm -o "$3" >>"$4" 2>&1
}

# ---- the L7 proxies' configurations (l7.sh, mem.sh), written at run time ----

# haproxy_cfg FILE BIND MAXCONN SERVER...: http mode, nbthread $THREADS (default 1),
# keep-alive both sides, round robin over the servers (equal weights)
haproxy_cfg() {
	local f=$1 bind=$2 maxconn=$3 s i=0; shift 3
	cat >"$f" <<EOC
global
	nbthread ${THREADS:-1}
	maxconn $maxconn
	ulimit-n $(ulimit -Hn)
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 120s
	timeout server 120s
	timeout http-keep-alive 120s
frontend fe
	bind $bind
	default_backend be
backend be
	balance roundrobin
EOC
	for s in "$@"; do i=$((i + 1)); echo "	server v$i $s weight 50" >>"$f"; done
}

# nginx_conf DIR LISTEN CONNS [UPSTREAM...]: worker_processes $THREADS (default 1), access_log off, every
# path under DIR; a proxy with upstream keepalive 64 over the UPSTREAMs, or without
# any a static server answering "ok" on each LISTEN (comma-separated): the benchmark's
# backend, whose responses do not grow with the request's headers (rm-backend's JSON
# echoes them, tracing headers a proxy adds included). No limit on requests per
# keep-alive connection (nginx closes after 1,000 by default; HAProxy and ringmesh do not).
nginx_conf() {
	local d=$1 listen=$2 conns=$3 s l; shift 3
	mkdir -p "$d/logs"
	{
		cat <<EOC
worker_processes ${THREADS:-1};
worker_rlimit_nofile $(ulimit -Hn);
daemon off;
user root;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections $conns; }
http {
	access_log off;
	keepalive_requests 1000000000;
	keepalive_timeout 120s;
	client_body_temp_path $d/body;
	proxy_temp_path $d/proxy;
	fastcgi_temp_path $d/fastcgi;
	uwsgi_temp_path $d/uwsgi;
	scgi_temp_path $d/scgi;
EOC
		if [ $# -gt 0 ]; then
			echo "	upstream be {"
			for s in "$@"; do echo "		server $s weight=1;"; done
			echo "		keepalive 64;"
			echo "		keepalive_requests 1000000000;"
			echo "	}"
		fi
		echo "	server {"
		for l in ${listen//,/ }; do echo "		listen $l backlog=4096;"; done
		if [ $# -gt 0 ]; then
			echo "		location / {"
			echo "			proxy_pass http://be;"
			echo "			proxy_http_version 1.1;"
			echo '			proxy_set_header Connection "";'
			echo "		}"
		else
			echo '		location / { default_type text/plain; return 200 "ok\n"; }'
		fi
		echo "	}"
		echo "}"
	} >"$d/nginx.conf"
}

# rules_yaml FILE VIP PORT EP...: ServiceEntry "bench" at VIP:PORT over the endpoints
# (labels version v1, v2, ...), and with two or more of them a DestinationRule and a
# VirtualService splitting evenly between the versions.
rules_yaml() {
	local f=$1 vip=$2 port=$3 e i=0 n; shift 3
	n=$#
	cat >"$f" <<EOC
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bench
  namespace: bench
spec:
  hosts: [bench.bench.svc.cluster.local]
  addresses: [$vip]
  ports: [{number: $port, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
EOC
	for e in "$@"; do
		i=$((i + 1))
		echo "  - {address: $e, ports: {http: $port}, labels: {app: bench, version: v$i}}" >>"$f"
	done
	[ "$n" -ge 2 ] || return 0
	cat >>"$f" <<EOC
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: bench
  namespace: bench
spec:
  host: bench
  subsets:
EOC
	for ((i = 1; i <= n; i++)); do
		echo "  - {name: v$i, labels: {version: v$i}}" >>"$f"
	done
	cat >>"$f" <<EOC
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
EOC
	for ((i = 1; i <= n; i++)); do
		echo "    - {destination: {host: bench, subset: v$i}, weight: $((100 / n + (i == 1 ? 100 % n : 0)))}" >>"$f"
	done
}

# start_backend CG ADDRS PORT: the benchmark's backend ($BACKEND: nginx, the default,
# answering a fixed "ok", or rm for rm-backend's JSON echo of the request) as background
# "backend" in CG, listening on every ADDR (comma-separated) at PORT; waits until it answers.
start_backend() {
	local cg=$1 addrs=$2 port=$3 a l=() r=()
	for a in ${addrs//,/ }; do l+=("$a:$port"); r+=(--listen "$a:$port"); done
	if [ "${BACKEND:-nginx}" = nginx ]; then
		nginx_conf "$TMP/backend" "$(IFS=,; echo "${l[*]}")" 8192
		start_proxy backend "$cg" nginx -e "$TMP/backend/logs/error.log" -p "$TMP/backend" \
			-c "$TMP/backend/nginx.conf"
		for a in "${l[@]}"; do wait_listen "$a" || { a=; break; }; done
		[ -n "$a" ]
	else
		start_proxy backend "$cg" "$BUILD/rm-backend" --mode http --name bench --version v1 \
			"${r[@]}" --ready-file "$TMP/b.ready"
		wait_file "$TMP/b.ready" 5
	fi || { echo "backend did not start"; tail -5 "$TMP/backend.log"; return 1; }
	in_ns "$NS" curl -sf -o /dev/null "http://${l[0]}/" || { echo "backend not answering"; return 1; }
}

# start_proxy NAME CG CMD...: start CMD in CG (inside $NS) as background NAME; the
# caller waits for its listener.
start_proxy() {
	local name=$1 cg=$2; shift 2
	bg "$name" in_cg "$cg" "$NS" -- "$@"
}

# start_rm DCG PODS VIP RULES [ringmeshd args...]: ringmeshd, $RM_WORKERS workers
# (default 1), intercepting VIP/32 for the processes under PODS, with RULES applied
# (RULES "": none, the caller applies its own)
start_rm() {
	local dcg=$1 pods=$2 vip=$3 rules=$4; shift 4
	start_ringmeshd "$dcg" "$NS" --cgroup "$pods" --workers "${RM_WORKERS:-1}" \
		--listen 127.0.0.1:15001 \
		--include-ip-ranges "$vip/32" "$@" || return 1
	[ -n "$rules" ] || return 0
	"$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$rules" >"$TMP/apply.out" 2>&1 && return 0
	echo "apply failed: $(head -1 "$TMP/apply.out")"
	stop_ringmeshd
	return 1
}

# us "123.45us" / "1.23ms" / "1.00s": wrk's latency in µs
us() {
	awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "ms") n *= 1e3; else if (u == "s") n *= 1e6; else if (u == "m") n *= 6e7
		printf "%.1f", n }'
}

# steady TRIES LIMIT_MS CMD...: run CMD (a wrk_once: it sets the W_* figures, W_steal
# among them) again while the host's steal during it was above LIMIT_MS, up to TRIES
# attempts in all, 1 s apart (a host's busy spell lasts seconds), and keep the W_*
# figures of the attempt with the least steal. On a VM a run the hypervisor took 20 %
# of the CPUs from measures the host, and which path it hits is chance: every path
# gets the same rule, and W_tries says how many attempts a run took (figures.tsv
# "tries", not a figure). Fails only when every attempt failed (the last one's W_err).
steady() {
	local tries=$1 limit=$2 i best= kept=
	shift 2
	for ((i = 1; i <= tries; i++)); do
		[ "$i" -gt 1 ] && sleep "${STEADY_PAUSE:-1}"
		if "$@"; then
			if [ -z "$best" ] || [ "$W_steal" -lt "$best" ]; then
				best=$W_steal
				kept="$W_rps|$W_p50|$W_p99|$W_cpu|$W_steal|$W_idle|$W_err"
			fi
			[ "$W_steal" -le "$limit" ] && break
			[ "$i" -lt "$tries" ] && echo "    steal $W_steal ms > $limit ms: once more"
		fi
	done
	W_tries=$((i > tries ? tries : i))
	[ -n "$kept" ] || return 1
	IFS='|' read -r W_rps W_p50 W_p99 W_cpu W_steal W_idle W_err <<<"$kept"
	return 0
}

# wrk_run NAME CLIENT_CG URL CONNS SECS [PROXY_CG [LUA]]: wrk_once, tried again while the
# host's steal during it exceeded STEAL_PCT % (default 5) of the machine's CPU time,
# up to STEAL_TRIES attempts (default 3; 1: every run as it came), see steady.
wrk_run() {
	local limit=$(($(nproc) * $5 * 10 * ${STEAL_PCT:-5}))
	steady "${STEAL_TRIES:-3}" "$limit" wrk_once "$@"
}

# wrk_once NAME CLIENT_CG URL CONNS SECS [PROXY_CG [LUA]]: one wrk run ($WRK_THREADS threads, default 1,
# keep-alive, --latency), its output in $TMP/wrk.NAME. Sets W_rps, W_p50, W_p99 (µs),
# W_err ("" when none), W_cpu, the CPU µs PROXY_CG used per completed request ("-"
# without PROXY_CG), and W_steal, the ms of CPU the hypervisor took meanwhile (a round's
# tail on a VM can be its host's), and W_idle, the ms of CPU left idle meanwhile. Returns
# 1 when wrk gave no figures.
wrk_once() {
	local name=$1 cg=$2 url=$3 c=$4 s=$5 pcg=${6:-} lua=${7:-} out u0 u1 n2 se reqs st0 id0
	local args=(-t"${WRK_THREADS:-1}" -c"$c" -d"${s}s" --latency)
	[ -n "$lua" ] && args+=(-s "$lua")
	[ -n "$pcg" ] && u0=$(cg_usec "$pcg")
	st0=$(steal_ms) id0=$(idle_ms)
	out=$(in_cg "$cg" "$NS" -- timeout $((s + 30)) wrk "${args[@]}" "$url" 2>&1)
	W_steal=$(($(steal_ms) - st0)) W_idle=$(($(idle_ms) - id0))
	[ -n "$pcg" ] && u1=$(cg_usec "$pcg")
	echo "$out" >"$TMP/wrk.$name"
	W_rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
	W_p50=$(us "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
	W_p99=$(us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
	reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
	n2=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ { print $NF }')
	se=$(echo "$out" | sed -n 's/.*Socket errors: //p')
	W_err=
	[ -n "$n2" ] && W_err="non-2xx $n2"
	[ -n "$se" ] && W_err="${W_err:+$W_err, }socket errors: $se"
	W_cpu=-
	if [ -n "$pcg" ] && [ -n "$reqs" ] && [ "$reqs" -gt 0 ]; then
		W_cpu=$(awk -v u=$((u1 - u0)) -v r="$reqs" 'BEGIN { printf "%.2f", u / r }')
	fi
	if [ -z "$W_rps" ]; then
		W_err="wrk failed"
		echo "  $name: wrk failed:"; sed 's/^/    /' "$TMP/wrk.$name" | tail -5
		return 1
	fi
	echo "  $name: $W_rps req/s, p50 $W_p50 µs, p99 $W_p99 µs, proxy CPU $W_cpu µs/req," \
		"steal $W_steal ms, idle $W_idle ms${W_err:+ ($W_err)}"
}
