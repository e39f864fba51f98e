#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Request smuggling end to end (issue 8): hostile input from two public corpora sent
# through ringmeshd to a strict judge backend (rm-judge) behind an HTTP ServiceEntry.
#  - AWS http-desync-guardian's test cases (tests/corpora/desync-guardian/*.yaml):
#    every Severe case is answered 400 (501 for a coding we do not implement) and the
#    connection closed, nothing reaching the judge; no case makes the judge read a
#    message ringmesh did not frame the same way (judge flags, or a count mismatch
#    between requests the judge read and judge answers the client got).
#  - defparam/smuggler's Transfer-Encoding mutations (tests/corpora/smuggler/), each
#    as a CL.TE and a TE.CL probe: every probe answered before its deadline, and the
#    judge never gets an obfuscated Transfer-Encoding line next to a Content-Length.
# Plus the regressions of issue 8 #5 (duplicate Content-Length) and #6 (501).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/netns.sh"
need_root
CORPORA=$(cd "$here/../corpora" && pwd)

NODE_NS=rm-$RUN_ID-node
CLIENT_NS=rm-$RUN_ID-c
JUDGE_NS=rm-$RUN_ID-j
mk_node "$NODE_NS" && mk_pod "$NODE_NS" "$CLIENT_NS" vc 10.244.0.10 &&
	mk_pod "$NODE_NS" "$JUDGE_NS" vj 10.244.0.11 ||
	{ fail "node and pods set up"; summary smuggling; exit 1; }
ok "node netns with a client pod and a judge pod"

PODS_CG=$(mk_cgroup pods)
CLIENT_CG=$(mk_cgroup pods/client)
DAEMON_CG=$(mk_cgroup ringmeshd)
JLOG=$TMP/judge.log
bg judge in_ns "$JUDGE_NS" "$BUILD/rm-judge" --listen 10.244.0.11:8080 --log "$JLOG" \
	--ready-file "$TMP/judge.ready"
wait_file "$TMP/judge.ready" 5 || { fail "judge starts"; summary smuggling; exit 1; }
ok "judge listening"

SVC=judge.smuggling.svc.cluster.local
cat >"$TMP/se.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: judge, namespace: smuggling}
spec:
  hosts: [$SVC]
  addresses: [10.96.0.20]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.244.0.11}
Y
start_ringmeshd "$DAEMON_CG" "$NODE_NS" --cgroup "$PODS_CG" --include-ip-ranges 10.96.0.0/12 \
	--listen 127.0.0.1:15001 --pod-gateway $POD_GW --workers 2 ||
	{ fail "ringmeshd starts"; summary smuggling; exit 1; }
check "ServiceEntry for the judge applied" "$BUILD/ringmesh" --pin-dir "$PIN" apply -f "$TMP/se.yaml"
sleep 0.2

client() { in_cg "$CLIENT_CG" "$CLIENT_NS" -- "$@"; }
raw() { # bytes (printf escapes) -> what the proxy answers until it closes (5 s cap)
	client python3 -c '
import socket, sys
s = socket.create_connection(("10.96.0.20", 8080), timeout=5)
s.sendall(sys.argv[1].encode().decode("unicode_escape").encode("latin-1"))
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except socket.timeout:
    out += b"<TIMEOUT>"
sys.stdout.write(out.decode("latin-1"))' "$1"
}
H="Host: $SVC\\r\\n"

plain() {
	local out; out=$(raw "GET /plain HTTP/1.1\\r\\n${H}X-Probe: plain\\r\\nConnection: close\\r\\n\\r\\n")
	echo "$out" | head -1
	echo "$out" | grep -q '^HTTP/1.1 200' && grep -q '^REQ .*probe=plain ' "$JLOG"
}
check "a plain request reaches the judge" plain

# issue 8 #5: two equal Content-Length lines reach the judge as exactly one canonical
# line (the judge flags duplicates, so this fails on a proxy that forwards them)
dup_cl() {
	local out; out=$(raw "POST /dup HTTP/1.1\\r\\n${H}Content-Length: 5\\r\\nX-Probe: dupcl\\r\\ncontent-length: 005\\r\\nConnection: close\\r\\n\\r\\nhello")
	echo "$out" | head -1; grep 'probe=dupcl ' "$JLOG"
	echo "$out" | grep -q '^HTTP/1.1 200' &&
		grep -q '^REQ .*probe=dupcl .*framing=\[Content-Length:\\x205\] body=5 ' "$JLOG"
}
check "duplicate equal Content-Length lines: forwarded as one 'Content-Length: 5'" dup_cl
closes_with() { # status bytes...: the answer is that status and the connection closes
	local want=$1 out; out=$(raw "$2")
	echo "$out" | head -1
	echo "$out" | head -1 | grep -q "^HTTP/1.1 $want " && ! echo "$out" | grep -q '<TIMEOUT>' &&
		echo "$out" | grep -qi '^connection: close'
}
check "Content-Length: 1000,1000 -> 400 + close" closes_with 400 \
	"POST /l HTTP/1.1\\r\\n${H}Content-Length: 5,5\\r\\n\\r\\nhello"
check "differing Content-Length lines -> 400 + close" closes_with 400 \
	"POST /l HTTP/1.1\\r\\n${H}Content-Length: 5\\r\\nContent-Length: 6\\r\\n\\r\\nhello!"
# issue 8 #6
check "Transfer-Encoding: gzip, chunked -> 501 + close" closes_with 501 \
	"POST /g HTTP/1.1\\r\\n${H}Transfer-Encoding: gzip, chunked\\r\\n\\r\\n0\\r\\n\\r\\n"
check "Transfer-Encoding: gzip (not chunked last) -> 400 + close" closes_with 400 \
	"POST /g HTTP/1.1\\r\\n${H}Transfer-Encoding: gzip\\r\\n\\r\\n"
check "Transfer-Encoding: chunked, chunked -> 400 + close" closes_with 400 \
	"POST /g HTTP/1.1\\r\\n${H}Transfer-Encoding: chunked, chunked\\r\\n\\r\\n0\\r\\n\\r\\n"

# the corpora
client python3 "$here/smuggle_probe.py" 10.96.0.20:8080 "$SVC" "$CORPORA" "$JLOG" \
	"$TMP/res.json" >"$TMP/probe.out" 2>&1
rc=$?
jq_() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$TMP/res.json" "$1"; }
if [ $rc -ne 0 ] || [ ! -s "$TMP/res.json" ]; then
	fail "probe client ran (rc=$rc)"; sed 's/^/    # /' "$TMP/probe.out" | tail -20
	summary smuggling; exit 1
fi
corpus_ok() { # src-prefix: no failure for probes of that corpus
	sed 's/^/    /' "$TMP/probe.out" | grep -- "# $1-" | head -20
	[ "$(jq_ "sum(1 for f in d['fails'] if f.startswith('$1-'))")" = 0 ]
}
dg_n=$(jq_ 'sum(t["n"] for t in d["dg"].values())')
dg_sev=$(jq_ 'd["dg"].get("Severe", {"n": 0})["n"]')
check "desync-guardian: $dg_n cases, severe $dg_sev -> 400/501 + close with nothing at the judge, none desyncs the judge" corpus_ok dg
sm_n=$(jq_ 'sum(t["n"] for t in d["sm"].values())')
check "smuggler: $sm_n probes answered in time, no obfuscated TE next to a CL at the judge" corpus_ok sm
check "judge flagged nothing in the whole run" test "$(grep -c '^FLAG' "$JLOG")" = 0
check "ringmeshd exits cleanly" stop_ringmeshd

tiers() { # src -> "tier n (fwd F, refused R), ..."
	jq_ "', '.join('%s %d (%d forwarded)' % (k.lower(), v['n'], v['forwarded']) for k, v in sorted(d['$1'].items()))"
}
T_SUMMARY="desync-guardian $dg_n cases ($(tiers dg); severe -> 400/501+close), smuggler $sm_n probes ($(jq_ "d['sm'].get('clte', {'n': 0})['n']") mutations x CL.TE/TE.CL, $(jq_ "sum(t['forwarded'] for t in d['sm'].values())") forwarded, TE text inside another field's value: $(jq_ "len(d['te_text_in_value'])") probes), judge read $(jq_ 'd["judge_requests"]') requests, $(jq_ 'd["judge_flags"]') flags"
echo "# $T_SUMMARY"
echo "smuggling: $T_PASS passed, $T_FAIL failed, $T_SKIP skipped; $T_SUMMARY"
[ $T_FAIL -eq 0 ]
