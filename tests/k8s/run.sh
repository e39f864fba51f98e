#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Self-test of the Kubernetes API server double (apiserver.py) that the sync's
# end-to-end suite (tests/e2e/test_sync.sh) runs against: the protocol behaviours of
# the API reference checked on the wire (selftest.py), over HTTP and over HTTPS with a
# self-signed certificate made here, plus curl against it and the YAML subset reader
# against the repository's rule files. No privileges needed; loopback only.
# Prints "k8s-double: N passed, N failed".
set -u
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the tree
here=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d /tmp/rm-k8s-double.XXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME ARGS...: a double on fresh ports (API_PORT, CTL_PORT), token t1
start() {
	local name=$1; shift
	API_PORT=$(free_port) CTL_PORT=$(free_port)
	python3 "$here/apiserver.py" serve --port "$API_PORT" --control-port "$CTL_PORT" \
		--token t1 --ready-file "$TMP/$name.ready" "$@" >"$TMP/$name.log" 2>&1 &
	PIDS+=($!)
	local i
	for ((i = 0; i < 50; i++)); do [ -e "$TMP/$name.ready" ] && return 0; sleep 0.1; done
	echo "double $name did not start:"; sed 's/^/    # /' "$TMP/$name.log"
	return 1
}

# suite NAME cmd...: a selftest.py run; its counts join ours
suite() {
	local name=$1 out line; shift
	out=$("$@" 2>&1)
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '^k8s-double[a-z-]*: [0-9]+ passed, [0-9]+ failed' | tail -1)
	if [ -z "$line" ]; then nok "$name: selftest died"; sed 's/^/    # /' "$TMP"/*.log | tail -20; return; fi
	pass=$((pass + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
	fail=$((fail + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
}

if start http; then
	suite http python3 "$here/selftest.py" "$API_PORT" "$CTL_PORT"
	# curl, as a second client: the same shapes and statuses
	code=$(curl -s -o "$TMP/l.json" -w '%{http_code}' -H 'Authorization: Bearer t1' \
		"http://127.0.0.1:$API_PORT/api/v1/services?limit=500")
	if [ "$code" = 200 ] && python3 -c 'import json,sys; j = json.load(open(sys.argv[1])); sys.exit(j["kind"] != "ServiceList")' "$TMP/l.json"; then
		ok "curl: list -> 200 ServiceList"
	else nok "curl: list -> $code"; fi
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/api/v1/services")
	[ "$code" = 401 ] && ok "curl: no token -> 401" || nok "curl: no token -> $code"
	hdr=$(curl -s -D - -o /dev/null -m 2 -H 'Authorization: Bearer t1' \
		"http://127.0.0.1:$API_PORT/api/v1/services?watch=1&timeoutSeconds=1")
	echo "$hdr" | grep -qi '^transfer-encoding: chunked' && ok "curl: watch is chunked" ||
		nok "curl: watch headers: $hdr"
else
	nok "the double starts (http)"
fi

# HTTPS: a self-signed certificate for 127.0.0.1, as a cluster CA would issue one
if openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kube-apiserver \
	-addext subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc \
	-keyout "$TMP/tls.key" -out "$TMP/tls.crt" >"$TMP/openssl.log" 2>&1; then
	if start https --tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key"; then
		suite https python3 "$here/selftest.py" "$API_PORT" "$CTL_PORT" --tls "$TMP/tls.crt"
		code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/tls.crt" \
			-H 'Authorization: Bearer t1' "https://127.0.0.1:$API_PORT/api/v1/pods")
		[ "$code" = 200 ] && ok "curl https with the CA: 200" || nok "curl https with the CA: $code"
		curl -s -o /dev/null "https://127.0.0.1:$API_PORT/api/v1/pods" 2>/dev/null &&
			nok "curl https without the CA must fail verification" ||
			ok "curl https without the CA: certificate not trusted"
	else
		nok "the double starts (https)"
	fi
else
	nok "openssl makes a self-signed certificate"; sed 's/^/    # /' "$TMP/openssl.log"
fi

# The YAML subset reads the repository's rule files (the fixtures the e2e applies) as a
# full YAML parser does; checked where python3-yaml happens to be installed.
yaml_check() {
	python3 - "$here" <<'EOF'
import glob, json, sys
sys.path.insert(0, sys.argv[1])
import apiserver
root = sys.argv[1] + "/.."
files = sorted(glob.glob(root + "/e2e/rules/*.yaml") + glob.glob(root + "/cfg/*.yaml") +
               glob.glob(root + "/cfg/modern/*.yaml") + glob.glob(root + "/k8s/fixtures/*.yaml") +
               glob.glob(root + "/samples/istio/**/*.yaml", recursive=True))
vs = apiserver.yaml_load_all(open(root + "/e2e/rules/vs-step3-canary.yaml").read())[0]
assert vs["spec"]["http"][0]["route"][1]["weight"] == 30, vs
assert vs["metadata"]["namespace"] == "order-system-production"
try:
    import yaml
except ImportError:
    print(f"{len(files)} files; no python3-yaml here to compare with")
    sys.exit(0)
bad = []
for f in files:
    try:
        want = [d for d in yaml.safe_load_all(open(f)) if d is not None]
    except yaml.YAMLError:
        continue
    if json.dumps(want, sort_keys=True, default=str) != json.dumps(
            apiserver.yaml_load_all(open(f).read()), sort_keys=True, default=str):
        bad.append(f)
print(f"{len(files)} files, {len(bad)} read differently: {bad}")
sys.exit(1 if bad else 0)
EOF
}
if out=$(yaml_check 2>&1); then ok "yaml2json: the rule files as a YAML parser reads them ($out)"; else
	nok "yaml2json: $out"; fi

echo "k8s-double: $pass passed, $fail failed"
[ $fail -eq 0 ]
