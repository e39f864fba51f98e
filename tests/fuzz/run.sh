#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Build the HTTP/1.x codec fuzzer (libFuzzer + ASan + UBSan) and run it for N seconds.
# usage: tests/fuzz/run.sh [SECONDS] [BUILD_DIR]   (defaults: 60, build-fuzz)
# Seeds come from tests/fuzz/corpus/http1 if present; new inputs go to BUILD_DIR.
set -euo pipefail
secs=${1:-60}
out=${2:-build-fuzz}
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
mkdir -p "$out/fuzz/corpus-http1" "$out/fuzz/artifacts"
clang -g -O1 -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	user/ringmeshd/http1.c user/ringmeshd/http1_body.c user/ringmeshd/http1_write.c \
	tests/fuzz/fuzz_http1.c -o "$out/fuzz/fuzz_http1"
# seed a fresh corpus with a few well-formed streams (byte 0: mode, see fuzz_http1.c)
c="$out/fuzz/corpus-http1"
if [ -z "$(ls -A "$c")" ]; then
	printf '\000GET /a?b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' >"$c/s1"
	printf '\000POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n' >"$c/s2"
	printf '\010PUT http://h:1/x HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc' >"$c/s3"
	printf '\001HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n' >"$c/s4"
	printf '\003HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nxx' >"$c/s5"
	printf '\000CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n' >"$c/s6"
fi
seeds=()
[ -d tests/fuzz/corpus/http1 ] && seeds+=(tests/fuzz/corpus/http1)
exec "$out/fuzz/fuzz_http1" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
	-artifact_prefix="$out/fuzz/artifacts/" "$c" ${seeds[@]+"${seeds[@]}"}
