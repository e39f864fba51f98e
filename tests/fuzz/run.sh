#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Build the libFuzzer targets (ASan + UBSan, leak detection on) and run each for N seconds.
# usage: tests/fuzz/run.sh [--suite] [--runs N] [SECONDS] [BUILD_DIR] [TARGET...]
#   defaults: 60, build-fuzz, http1.  TARGET: http1 (HTTP/1.x codec, both sides),
#   http1_resp (the response side: 1xx sequences, body decoding, reply writer),
#   cfg (rules compiler), all.  Corpora and crash reproducers go to BUILD_DIR/fuzz/;
#   the committed corpus tests/fuzz/corpus/TARGET/ is always read as extra seeds.
#   --suite: for tests/run.sh: logs to BUILD_DIR/fuzz/TARGET.log, one summary line per
#   target, "fuzz: N passed, N failed"; exit 77 when clang's libFuzzer is unavailable.
#   --runs N (make fuzz-long): run each target to N executions instead of SECONDS,
#   growing tests/fuzz/corpus/TARGET/, then minimise that corpus in place (-merge=1)
#   so what is committed stays small. SECONDS is ignored.
# Reproduce a crash: BUILD_DIR/fuzz/fuzz_TARGET BUILD_DIR/fuzz/artifacts/crash-...
set -euo pipefail
suite=0 runs=0
while [ $# -gt 0 ]; do
	case $1 in
	--suite) suite=1; shift ;;
	--runs) runs=$2; shift 2 ;;
	*) break ;;
	esac
done
secs=${1:-60}
out=${2:-build-fuzz}
shift $(($# < 2 ? $# : 2))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(http1)
[ "${targets[*]}" = all ] && targets=(http1 http1_resp cfg)
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
for t in "${targets[@]}"; do
	case $t in
	http1 | http1_resp | cfg) ;;
	*) echo "Error: unknown fuzz target \"$t\" (http1, http1_resp, cfg, all)" >&2; exit 2 ;;
	esac
done
mkdir -p "$out/fuzz/artifacts"

fuzz_flags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser
	    "-fsanitize=fuzzer,address,undefined" -fno-sanitize-recover=undefined)

# clang without its runtime package (libclang-rt-*-dev) cannot link -fsanitize=fuzzer.
if ! command -v clang >/dev/null ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
	clang -fsanitize=fuzzer,address,undefined -x c - -o "$out/fuzz/probe" 2>/dev/null; then
	echo "fuzz: clang with the libFuzzer runtime is not available (make deps installs it)"
	[ $suite -eq 1 ] && exit 77
	exit 1
fi
rm -f "$out/fuzz/probe"

build_http1() {
	clang "${fuzz_flags[@]}" \
		user/http/http1.c user/http/http1_body.c user/http/http1_write.c user/common/util.c \
		tests/fuzz/fuzz_http1.c -o "$out/fuzz/fuzz_http1" || return 1
	# seed a fresh corpus with a few well-formed streams (byte 0: mode, see fuzz_http1.c)
	local c="$out/fuzz/corpus-http1"
	mkdir -p "$c"
	if [ -z "$(ls -A "$c")" ]; then
		printf '\000GET /a?b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' >"$c/s1"
		printf '\000POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n' >"$c/s2"
		printf '\010PUT http://h:1/x HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc' >"$c/s3"
		printf '\001HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n' >"$c/s4"
		printf '\003HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nxx' >"$c/s5"
		printf '\000CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n' >"$c/s6"
	fi
	opts=(-max_len=4096)
	seeds=$c
	return 0
}

build_http1_resp() {
	clang "${fuzz_flags[@]}" \
		user/http/http1.c user/http/http1_body.c user/http/http1_write.c user/common/util.c \
		tests/fuzz/fuzz_http1_resp.c -o "$out/fuzz/fuzz_http1_resp" || return 1
	# byte 0: the request method and limits, byte 1: a cut point (see fuzz_http1_resp.c)
	local c="$out/fuzz/corpus-http1_resp"
	mkdir -p "$c"
	if [ -z "$(ls -A "$c")" ]; then
		printf '\000\020HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n' >"$c/r1"
		printf '\000\100HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n' >"$c/r2"
		printf '\000\007HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc' >"$c/r3"
		printf '\002\001HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n' >"$c/r4"
		printf '\004\050HTTP/1.1 200 Connection established\r\n\r\ntunnel' >"$c/r5"
		printf '\000\030HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx' >"$c/r6"
		printf '\000\010HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil close' >"$c/r7"
	fi
	opts=(-max_len=4096)
	seeds=$c
	return 0
}

build_cfg() {
	# every cfg_*.c but cfg_store.c (the bpffs I/O half): the pure compiler
	local srcs=(user/common/util.c) f
	for f in user/common/cfg_*.c; do
		[ "$f" = user/common/cfg_store.c ] || srcs+=("$f")
	done
	clang "${fuzz_flags[@]}" "${srcs[@]}" \
		tests/fuzz/fuzz_cfg.c -lyaml -lpcre2-8 -o "$out/fuzz/fuzz_cfg" || return 1
	# the sample rules, good and bad, as seeds (names cannot clash with libFuzzer's sha1s)
	local c="$out/fuzz/corpus-cfg"
	mkdir -p "$c"
	for f in tests/cfg/*.yaml tests/cfg/modern/*.yaml tests/cfg/bad/*.yaml \
		 tests/samples/istio/bookinfo/*/*.yaml tests/samples/istio/bookinfo/*/*/*.yaml \
		 tests/samples/istio-0.7.1/*/*.yaml tests/samples/istio-0.7.1/*/*/*.yaml \
		 tests/e2e/rules/*.yaml; do
		[ -f "$f" ] && cp "$f" "$c/seed-$(echo "${f#tests/}" | tr / -)"
	done
	# the field names and words the front end knows, so mutations speak its language
	local d="$out/fuzz/cfg.dict"
	{
		grep -ohE '"[A-Za-z][A-Za-z0-9_./-]{1,40}"' "${srcs[@]}"
		printf '"%s"\n' '---' ': ' '- ' '{' '}' '[' ']' '\x0a  ' '\x0a    ' '\x0a- ' \
			'&a ' '*a' '<<: ' '!!str ' '\x22' "'" '|\x0a' '>\x0a' '#'
	} | sort -u >"$d"
	opts=(-max_len=8192 -dict="$d")
	seeds=$c
	return 0
}

# run TARGET: build it and fuzz for $secs seconds (or $runs executions); the fuzzer's
# exit status. build_TARGET sets opts (flags) and seeds (its scratch seed corpus).
run() {
	local t=$1 opts=() seeds keep=tests/fuzz/corpus/$1 dirs limit
	"build_$t" || return 1
	if [ "$runs" -gt 0 ]; then
		# libFuzzer adds what it finds to the first corpus dir: the committed one
		mkdir -p "$keep"
		limit=(-runs="$runs")
		dirs=("$keep" "$seeds")
	else
		limit=(-max_total_time="$secs")
		dirs=("$seeds")
		[ -d "$keep" ] && dirs+=("$keep")
	fi
	"$out/fuzz/fuzz_$t" "${limit[@]}" -timeout=10 -detect_leaks=1 -print_final_stats=1 \
		-artifact_prefix="$out/fuzz/artifacts/$t-" "${opts[@]}" "${dirs[@]}" || return $?
	[ "$runs" -gt 0 ] || return 0
	# keep only the inputs that add coverage, so the committed corpus stays small
	local min="$out/fuzz/min-$t"
	rm -rf "$min" && mkdir -p "$min"
	"$out/fuzz/fuzz_$t" -merge=1 "${opts[@]}" "$min" "$keep" "$seeds" >"$out/fuzz/merge-$t.log" 2>&1 ||
		return $?
	rm -rf "$keep" && mv "$min" "$keep"
	echo "fuzz-long $t: corpus kept in $keep: $(ls "$keep" | wc -l) files," \
		"$(du -sk "$keep" | cut -f1) KiB"
}

if [ $suite -eq 0 ]; then
	rc=0
	for t in "${targets[@]}"; do
		run "$t" || rc=$?
	done
	exit $rc
fi

pass=0 fail=0
for t in "${targets[@]}"; do
	log="$out/fuzz/$t.log"
	if run "$t" >"$log" 2>&1; then
		pass=$((pass + 1))
		nruns=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$log" | tail -1)
		cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
		echo "ok $t: ${nruns:-?} runs in ${secs}s, ${cov:-no coverage line}"
	else
		fail=$((fail + 1))
		echo "FAIL $t (log: $log)"
		grep -E '^(==[0-9]+== ?ERROR|SUMMARY|fuzz_cfg:)|runtime error' "$log" |
			head -20 | sed 's/^/    /'
		crash=$(sed -nE 's/.*Test unit written to ([^ ]+).*/\1/p' "$log" | tail -1)
		[ -n "$crash" ] && echo "    reproduce: $out/fuzz/fuzz_$t $crash"
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ]
