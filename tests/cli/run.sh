#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Tests of the `ringmesh` admin CLI without a daemon: grammar, help, prefixes, errors,
# -j output (every command and every error must be one valid JSON value), and, as
# root, apply/list/show/dump/status/stats against a pin dir of our own, with the
# data-path maps a daemon would pin faked by bpftool. Prints "cli: N passed, N failed".
# Usage: tests/cli/run.sh BUILD    (exit 77 when the pinned part cannot run: not root)
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
RM=$(cd "$build" 2>/dev/null && pwd)/ringmesh
if [ ! -x "$RM" ]; then
	echo "cli: $build/ringmesh not built"
	exit 1
fi
pass=0 fail=0
PIN=""
TMP=$(mktemp -d /tmp/rm-cli.XXXXXX)
cleanup() {
	[ -n "$PIN" ] && rm -rf "$PIN" "$PIN-samples" "$PIN-scale" "$PIN-unimpl"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() {
	fail=$((fail + 1)); echo "not ok - $1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | head -20 | sed 's/^/    /'
	return 0
}

# t NAME WANT PATTERN ARGS...: run ringmesh ARGS (stdout+stderr); WANT is 0 or nz (non-zero);
# PATTERN (grep -E, may be empty) must appear in the output.
t() {
	local name=$1 want=$2 pat=$3 out rc
	shift 3
	out=$("$RM" "$@" 2>&1); rc=$?
	if [ "$want" = 0 ] && [ $rc -ne 0 ]; then bad "$name (rc=$rc, want 0)" "$out"; return 1; fi
	if [ "$want" = nz ] && [ $rc -eq 0 ]; then bad "$name (rc=0, want non-zero)" "$out"; return 1; fi
	if [ -n "$pat" ] && ! printf '%s\n' "$out" | grep -Eq -- "$pat"; then
		bad "$name (no /$pat/)" "$out"; return 1
	fi
	ok "$name"
}

# tj NAME WANT ARGS...: ringmesh -j ARGS; stdout must be exactly one JSON value, stderr empty;
# when WANT is nz the value must be {"error": "..."}. Leaves stdout in $J.
tj() {
	local name=$1 want=$2 rc err
	shift 2
	J=$("$RM" -j "$@" 2>"$TMP/stderr"); rc=$?
	err=$(cat "$TMP/stderr")
	if [ "$want" = 0 ] && [ $rc -ne 0 ]; then bad "json: $name (rc=$rc)" "$J$err"; return 1; fi
	if [ "$want" = nz ] && [ $rc -eq 0 ]; then bad "json: $name (rc=0, want error)" "$J"; return 1; fi
	if [ -n "$err" ]; then bad "json: $name (stderr not empty)" "$err"; return 1; fi
	if ! printf '%s' "$J" | python3 -m json.tool >/dev/null 2>&1; then
		bad "json: $name (invalid JSON)" "$J"; return 1
	fi
	if [ "$want" = nz ] && ! printf '%s' "$J" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if isinstance(d,dict) and list(d)==["error"] and d["error"] else 1)'; then
		bad "json: $name (not {\"error\": ...})" "$J"; return 1
	fi
	ok "json: $name"
}

# py EXPR: evaluate a Python expression over the last JSON output (as d); pass if true.
jpy() {
	local name=$1 expr=$2
	if printf '%s' "$J" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($expr) else 1)" 2>/dev/null; then
		ok "$name"
	else
		bad "$name ($expr)" "$J"
	fi
}

echo "# grammar, help and errors (no pinned maps needed)"
t "help" 0 "OBJECT := \{ apply \| delete \| rule" help
t "-h" 0 "Usage: ringmesh" -h
t "no object: help and error" nz "Error: no OBJECT given"
t "version" 0 "^ringmesh v[0-9]" version
t "-V" 0 "^ringmesh v[0-9]" -V
for obj in apply delete rule service endpoint map status stats workload; do
	t "$obj help" 0 "Usage: ringmesh $obj" "$obj" help
done
t "rule help grammar" 0 "RULE := \{ NAME \| NS/NAME" rule help
t "map help grammar" 0 "MAP := \{ rm_include" map help
t "apply help grammar" 0 "FILES := -f" apply help
t "object without command shows help" 0 "Usage: ringmesh rule" rule
t "unknown object" nz "^Error: unknown object 'frobnicate'" frobnicate
t "unknown command" nz "^Error: unknown rule command 'frob'" rule frob
t "ambiguous object" nz "^Error: ambiguous object 'st': could be status, stats" st
t "ambiguous object (one letter)" nz "^Error: ambiguous object 's': could be service, status, stats" s
t "unknown option" nz "^Error: unknown option" --frob rule list
t "--pin-dir without value" nz "^Error: option --pin-dir needs a directory" --pin-dir
t "apply without -f" nz "^Error: 'apply' needs -f" apply
t "apply -f without file" nz "^Error: 'apply': -f needs" apply -f
t "apply stray argument" nz "^Error: 'apply': unexpected argument 'x.yaml'" apply x.yaml
t "apply missing file" nz "^Error: $TMP/missing.yaml: No such file" apply -f "$TMP/missing.yaml"
mkdir -p "$TMP/empty"
t "apply empty dir" nz "^Error: $TMP/empty: no \*.yaml or \*.yml files" apply -f "$TMP/empty"
t "map dump without name" nz "^Error: 'map dump' needs a map name" map dump
t "status takes no args" nz "^Error: 'status' takes no arguments" status extra
t "status on missing dir" nz "^Error: no ringmeshd at $TMP/none: not pinned" --pin-dir "$TMP/none" status
t "stats on missing dir" nz "^Error: no statistics at $TMP/none" --pin-dir "$TMP/none" stats
t "rule list, nothing applied" nz "^Error: no configuration at $TMP/none: nothing applied yet" \
	--pin-dir "$TMP/none" ru li
t "delete, nothing applied" nz "^Error: nothing applied at $TMP/none" --pin-dir "$TMP/none" delete -f "$here/../cfg/routerule-v1.yaml"

tj "help is null" 0 help
jpy "json: help prints null" "d is None"
tj "version" 0 version
jpy "json: version field" "d['version']"
tj "unknown object" nz frobnicate
tj "ambiguous object" nz st
tj "unknown command" nz rule frob
tj "no object" nz
tj "status, not pinned" nz --pin-dir "$TMP/none" status
jpy "json: status error text" "d['error'] == 'no ringmeshd at $TMP/none: not pinned'"
tj "stats, not pinned" nz --pin-dir "$TMP/none" stats
tj "rule list, nothing applied" nz --pin-dir "$TMP/none" rule list
tj "map dump, no map" nz --pin-dir "$TMP/none" map dump rm_proxy
tj "apply missing file" nz apply -f "$TMP/missing.yaml"
tj "pretty error" nz -p frob
J=$("$RM" -j --frob 2>/dev/null)
if printf '%s' "$J" | python3 -m json.tool >/dev/null 2>&1; then ok "json: option error"; else bad "json: option error" "$J"; fi

echo "# batch file (no pinned maps needed)"
t "batch help" 0 "Usage: ringmesh batch file \{ FILE \| - \}" batch help
cat >"$TMP/good.batch" <<'B'
# a comment, then blank and indented lines
version

   ver   # prefixes and trailing comments as on the command line
"version"
B
t "batch: good file runs every line" 0 "^ringmesh v[0-9]" batch file "$TMP/good.batch"
out=$("$RM" batch file "$TMP/good.batch" 2>&1)
[ "$(printf '%s\n' "$out" | grep -c '^ringmesh v')" = 3 ] && ok "batch: three commands, three outputs" ||
	bad "batch: three commands, three outputs" "$out"
printf '%s\n' "$out" | grep -q "processed 3 commands" && ok "batch: says how many ran" || bad "batch: says how many ran" "$out"
printf 'version\nversion\nrule frob\nversion\n' >"$TMP/bad.batch"
t "batch: error names the line" nz "^Error: $TMP/bad.batch:3: unknown rule command 'frob'" batch file "$TMP/bad.batch"
out=$("$RM" batch file "$TMP/bad.batch" 2>/dev/null)
[ "$(printf '%s\n' "$out" | grep -c '^ringmesh v')" = 2 ] && ok "batch: stops at the first error" ||
	bad "batch: stops at the first error (2 outputs before line 3, none after)" "$out"
t "batch: stdin" 0 "^ringmesh v" batch file - <"$TMP/good.batch"
printf 'version\nmap dump "rm_cfg\n' >"$TMP/quote.batch"
t "batch: unterminated quote" nz "^Error: $TMP/quote.batch:2: unterminated \" quote" batch file "$TMP/quote.batch"
printf "map dump 'two words'\n" >"$TMP/q2.batch"
t "batch: quotes keep blanks in one argument" nz "no map 'two words' pinned" --pin-dir "$TMP/none" batch file "$TMP/q2.batch"
printf 'batch file x\n' >"$TMP/nest.batch"
t "batch: no batch inside a batch" nz ":1: 'batch' cannot run inside a batch" batch file "$TMP/nest.batch"
t "batch: missing file" nz "^Error: $TMP/missing.batch: No such file" batch file "$TMP/missing.batch"
t "batch file without FILE" nz "^Error: 'batch file' takes one FILE" batch file
# -j: one JSON value per command, the failing one {"error": "FILE:LINE: ..."}, stderr empty
jstream() { # NAME WANT_RC N_VALUES LAST_IS_ERROR ARGS...
	local name=$1 want=$2 n=$3 lasterr=$4 rc
	shift 4
	J=$("$RM" -j "$@" 2>"$TMP/stderr"); rc=$?
	if [ "$want" = 0 ] && [ $rc -ne 0 ] || [ "$want" = nz ] && [ $rc -eq 0 ]; then
		bad "json: $name (rc=$rc)" "$J"; return
	fi
	[ -s "$TMP/stderr" ] && { bad "json: $name (stderr not empty)" "$(cat "$TMP/stderr")"; return; }
	if printf '%s' "$J" | python3 -c '
import json, sys
text, dec, vals, i = sys.stdin.read(), json.JSONDecoder(), [], 0
while True:
    while i < len(text) and text[i].isspace(): i += 1
    if i == len(text): break
    v, i = dec.raw_decode(text, i); vals.append(v)
n, lasterr = int(sys.argv[1]), sys.argv[2] == "1"
ok = len(vals) == n and not any(isinstance(v, dict) and "error" in v for v in vals[:-1])
if lasterr: ok = ok and list(vals[-1]) == ["error"] and ":3: " in vals[-1]["error"]
else: ok = ok and not (isinstance(vals[-1], dict) and "error" in vals[-1])
sys.exit(0 if ok else 1)' "$n" "$lasterr"; then ok "json: $name"; else bad "json: $name" "$J"; fi
}
jstream "batch, good file: 3 values" 0 3 0 batch file "$TMP/good.batch"
jstream "batch, error at line 3: 2 values and the error" nz 3 1 batch file "$TMP/bad.batch"

# ---- pinned part: root and bpffs ----
if [ "$(id -u)" -ne 0 ] || [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
	echo "cli: skipping the pinned-map tests: they need root and bpffs at /sys/fs/bpf"
	echo "cli: $pass passed, $fail failed"
	[ $fail -eq 0 ] && exit 77
	exit 1
fi
command -v bpftool >/dev/null || { echo "cli: bpftool missing"; exit 1; }

PIN=/sys/fs/bpf/rm-h3b-$$
rm -rf "$PIN"
mkdir -p "$PIN"
R() { "$RM" --pin-dir "$PIN" "$@"; }
P=(--pin-dir "$PIN")

# The six workshop examples, from the compiler's test data (tests/cfg also holds other
# documents, so the six are copied into a directory of their own for `apply -f DIR`).
EX="$TMP/examples"
mkdir -p "$EX"
for f in dest-rule routerule-v1 routerule-v2 routerule-v3 routerule-v4 serviceentry; do
	cp "$here/../cfg/$f.yaml" "$EX/" || { bad "examples in tests/cfg"; echo "cli: $pass passed, $fail failed"; exit 1; }
done

echo "# empty pin dir"
t "status, empty pin dir" nz "^Error: no ringmeshd at $PIN: not pinned" "${P[@]}" status
t "map list, empty pin dir" 0 "no maps pinned at $PIN" "${P[@]}" map list
tj "map list, empty pin dir" 0 "${P[@]}" map list
jpy "json: map list empty" "d == []"
t "map dump, not pinned" nz "^Error: no map 'rm_proxy' pinned at $PIN" "${P[@]}" map dump rm_proxy
t "map dump, no path tricks" nz "^Error:" "${P[@]}" map dump ../rm_proxy

echo "# apply"
t "apply examples dir" 0 "^applied 6 documents: 4 rules, 1 service, 3 endpoints \(generation [0-9]+[;)]" \
	"${P[@]}" apply -f "$EX"
gen() { R -j map dump rm_cfg_ctl | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"][0]["generation"])' 2>/dev/null; }
gen1=$(gen)
[ -n "$gen1" ] && [ "$gen1" -ge 1 ] && ok "generation published ($gen1)" || bad "generation published" "$gen1"
t "apply again: unchanged" 0 "^unchanged \(generation $gen1\)" "${P[@]}" apply -f "$EX"
args=()
for f in "$EX"/*.yaml; do args+=(-f "$f"); done
t "apply many -f: unchanged" 0 "^unchanged" "${P[@]}" apply "${args[@]}"
# the store keeps each document's origin, so stdin re-registers v3 once, then is idempotent
t "apply from stdin" 0 "^applied 1 document: 4 rules" "${P[@]}" apply -f - <"$EX/routerule-v3.yaml"
t "apply from stdin again: unchanged" 0 "^unchanged" "${P[@]}" apply -f - <"$EX/routerule-v3.yaml"
t "apply dir restores origins" 0 "^applied 6 documents" "${P[@]}" apply -f "$EX"
gen1=$(gen)
tj "apply unchanged" 0 "${P[@]}" apply -f "$EX"
jpy "json: apply fields" "d['changed'] is False and d['generation'] == $gen1 and d['rules'] == 4 and d['kinds']['RouteRule'] == 4"

echo "# views"
t "rule list" 0 "trans-service-bulkhead" "${P[@]}" rule list
out=$(R rule list 2>&1)
order=$(printf '%s\n' "$out" | awk 'NR>1 {print $1}' | tr '\n' ' ')
want="order-system-production/trans-service-bulkhead order-system-production/trans-service-canary order-system-production/trans-service-featureflag order-system-production/trans-service-default "
[ "$order" = "$want" ] && ok "rule list: precedence order 6,3,2,1" || bad "rule list order" "$out"
printf '%s\n' "$out" | grep -q "x-dev-user=super-secret" && ok "rule list: match summary" || bad "rule list: match summary" "$out"
printf '%s\n' "$out" | grep -Eq "canary .*70%.*30%" && ok "rule list: weighted routes" || bad "rule list: weighted routes" "$out"
[ "$(R ru li 2>&1)" = "$out" ] && ok "abbreviation 'ru li' = 'rule list'" || bad "abbreviation 'ru li'"
tj "rule list" 0 "${P[@]}" rule list
jpy "json: rule list" "[r['name'] for r in d] == ['trans-service-bulkhead','trans-service-canary','trans-service-featureflag','trans-service-default'] and d[0]['precedence'] == 6 and d[0]['timeout_ns'] == 5000000000"
jpy "json: rule match structure" "d[2]['match'][0]['conditions'][0] == {'field':'header','name':'x-dev-user','op':'exact','value':'super-secret'}"
jpy "json: rule weights" "[t['weight'] for t in d[1]['routes']] == [70, 30]"
t "rule show" 0 "trans-service-canary" "${P[@]}" rule show trans-service-canary
t "rule show ns/name" 0 "trans-service-canary" "${P[@]}" rule show order-system-production/trans-service-canary
t "rule show NAME namespace NS" 0 "trans-service-canary" "${P[@]}" rule show trans-service-canary namespace order-system-production
t "rule show unknown" nz "^Error: no rule 'nope'" "${P[@]}" rule show nope
tj "rule show" 0 "${P[@]}" rule show trans-service-canary
jpy "json: rule show has description" "len(d) == 1 and d[0]['name'] == 'trans-service-canary' and len(d[0]['description']) > 0"
tj "rule show unknown" nz "${P[@]}" rule show nope
t "service list" 0 "trans-service.order-system-production.svc.cluster.local +order-system-production +10.96.0.20 +8080/HTTP +4 " \
	"${P[@]}" service list
tj "service list" 0 "${P[@]}" service list
jpy "json: service list" "d[0]['addresses'] == ['10.96.0.20'] and d[0]['ports'][0]['number'] == 8080 and d[0]['rules'] == 4 and d[0]['endpoints'] == 3"
t "service show" 0 "trans-service" "${P[@]}" service show trans-service.order-system-production.svc.cluster.local
t "service show short name" 0 "10.96.0.20" "${P[@]}" service show trans-service
t "service show unknown" nz "^Error: no service 'nope'" "${P[@]}" service show nope
tj "service show" 0 "${P[@]}" service show trans-service.order-system-production.svc.cluster.local
t "endpoint list" 0 "10.244.0.11:8080 .*app=trans-service,version=v1" "${P[@]}" endpoint list
tj "endpoint list" 0 "${P[@]}" endpoint list
jpy "json: endpoint list" "sorted(e['endpoints'][0] for e in d) == ['10.244.0.11:8080','10.244.0.12:8080','10.244.0.13:8080']"
t "map dump rm_cfg_ctl" 0 "Found [0-9]+ element" "${P[@]}" map dump rm_cfg_ctl
tj "map dump rm_cfg_ctl" 0 "${P[@]}" map dump rm_cfg_ctl
tj "map list" 0 "${P[@]}" map list
# the halves are maps of their own, rm_cfg-H-ID, sized by what was applied
jpy "json: map list has the cfg maps" "'rm_cfg_ctl' in {m['name'] for m in d} and any(m['name'].startswith('rm_cfg-') for m in d)"

cat >"$TMP/vs.yaml" <<'EOF'
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: {end-user: {exact: jason}}
    - uri: {prefix: /beta}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 3
    - destination: {host: reviews, subset: v3}
      weight: 1
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
EOF
t "apply VirtualService" 0 "^applied 2 documents: 6 rules, 2 services" "${P[@]}" apply -f "$TMP/vs.yaml"
t "rule list: OR of match groups" 0 "#1 http\[0\] +end-user=jason \|\| uri\^=/beta +v2 100%" "${P[@]}" rule list
t "rule list: relative weights as shares" 0 "#2 http\[1\] +\* +v1 75%, v3 25%" "${P[@]}" rule list
tj "rule show VirtualService: every http route" 0 "${P[@]}" rule show default/reviews
jpy "json: both http routes" "[r['http_index'] for r in d] == [0, 1]"
t "delete VirtualService" 0 "^deleted 2 documents: 4 rules" "${P[@]}" delete -f "$TMP/vs.yaml"
gen1=$(gen)

echo "# a bad file leaves the running configuration alone"
before=$(R -j rule list)
printf 'apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: broken\nspec:\n  destination:\n    name: trans-service\n  precedence: [1\n' >"$TMP/bad-syntax.yaml"
t "malformed YAML" nz "^Error: $TMP/bad-syntax.yaml:[0-9]+:[0-9]+: " "${P[@]}" apply -f "$TMP/bad-syntax.yaml"
printf 'apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: broken\nspec:\n  destination:\n    name: trans-service\n  precedenc: 9\n' >"$TMP/bad-field.yaml"
t "unknown field" nz "^Error: $TMP/bad-field.yaml:8:[0-9]+: " "${P[@]}" apply -f "$TMP/bad-field.yaml"
tj "malformed YAML" nz "${P[@]}" apply -f "$TMP/bad-syntax.yaml"
jpy "json: error carries file:line:col" "d['error'].startswith('$TMP/bad-syntax.yaml:')"
# a good file and a bad one together: all or nothing
t "good + bad file: rejected" nz "^Error: $TMP/bad-field.yaml:" "${P[@]}" apply -f "$EX/routerule-v1.yaml" -f "$TMP/bad-field.yaml"
[ "$(R -j rule list)" = "$before" ] && ok "rules intact after rejected applies" || bad "rules changed by a rejected apply"
t "generation unchanged" 0 "generation $gen1 " "${P[@]}" map dump rm_cfg_ctl

echo "# delete"
t "rule delete" 0 "^deleted rule trans-service-bulkhead \(generation $((gen1 + 1))\)" "${P[@]}" rule delete trans-service-bulkhead
t "rule delete again" nz "^Error:" "${P[@]}" rule delete trans-service-bulkhead
out=$(R rule list 2>&1)
printf '%s\n' "$out" | grep -q bulkhead && bad "bulkhead still listed" "$out" || ok "deleted rule gone from the list"
tj "delete -f" 0 "${P[@]}" delete -f "$EX/routerule-v3.yaml"
jpy "json: delete result" "d['deleted'] == 1 and d['changed'] and d['rules'] == 2"
t "delete -f missing document" nz "^Error:" "${P[@]}" delete -f "$EX/routerule-v3.yaml"
t "re-apply restores" 0 "^applied 6 documents: 4 rules" "${P[@]}" apply -f "$EX"

echo "# Istio's own samples (tests/samples): null documents, mixed files, typos"
S=$here/../samples/istio/bookinfo
PIN2=$PIN-samples
P2=(--pin-dir "$PIN2")
SKIP_K8S='4 Service, 4 ServiceAccount, 6 Deployment'
t "bookinfo.yaml alone: every kind skipped, nothing to apply" 0 \
	"^skipped 14 documents of kinds ringmesh does not consume: $SKIP_K8S\$" \
	"${P2[@]}" apply -f "$S/platform/kube/bookinfo.yaml"
[ -e "$PIN2" ] && bad "bookinfo.yaml alone created a store" || ok "bookinfo.yaml alone: no store created"
t "ServiceEntries + destination-rule-all.yaml (ends with ---)" 0 "^applied 8 documents: 0 rules, 4 services, 6 endpoints" \
	"${P2[@]}" apply -f "$here/../cfg/bookinfo-serviceentries.yaml" -f "$S/networking/destination-rule-all.yaml"
cat "$S/platform/kube/bookinfo.yaml" >"$TMP/mixed.yaml"
for f in virtual-service-all-v1 bookinfo-gateway; do
	echo --- >>"$TMP/mixed.yaml"
	cat "$S/networking/$f.yaml" >>"$TMP/mixed.yaml"
done
out=$("$RM" "${P2[@]}" apply -f "$TMP/mixed.yaml" 2>&1)
want="skipped 16 documents of kinds ringmesh does not consume: $SKIP_K8S; Istio configuration ringmesh does not implement: 1 Gateway, 1 VirtualService bound to gateways only"
[ "$(printf '%s\n' "$out" | head -1)" = "$want" ] && ok "mixed file: one line names the skipped kinds" ||
	bad "mixed file: one line names the skipped kinds" "$out"
printf '%s\n' "$out" | sed -n 2p | grep -q '^applied 4 documents: 4 rules, 4 services, 6 endpoints' &&
	ok "mixed file: its 4 VirtualServices applied" || bad "mixed file: its 4 VirtualServices applied" "$out"
tj "mixed file" 0 "${P2[@]}" apply -f "$TMP/mixed.yaml"
jpy "json: skipped kinds in order, with counts and the note" \
	"d['changed'] is False and d['kinds'] == {'VirtualService': 4} and d['skipped']['documents'] == 16 and [(k['kind'], k['istio'], k['count']) for k in d['skipped']['kinds']] == [('Service', False, 4), ('ServiceAccount', False, 4), ('Deployment', False, 6), ('Gateway', True, 1), ('VirtualService', True, 1)] and d['skipped']['kinds'][4]['note'] == 'bound to gateways only'"
before=$("$RM" "${P2[@]}" -j rule list)
{ cat "$S/platform/kube/bookinfo.yaml"; printf -- '---\napiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata:\n  name: reviews\nspec: {}\n'; } >"$TMP/typo.yaml"
typo_line=$(($(wc -l <"$S/platform/kube/bookinfo.yaml") + 3))
t "typo of an Istio kind is an error at its line" nz \
	"^Error: $TMP/typo.yaml:$typo_line:7: unknown kind \"VirtualServce\" in networking.istio.io \(ringmesh reads VirtualService," \
	"${P2[@]}" apply -f "$TMP/typo.yaml"
tj "typo of an Istio kind" nz "${P2[@]}" apply -f "$TMP/typo.yaml"
printf 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny\nspec: {}\n' >"$TMP/authz.yaml"
t "AuthorizationPolicy refused, not skipped" nz \
	"^Error: $TMP/authz.yaml:2:7: AuthorizationPolicy \(security.istio.io\) is not implemented by ringmesh" \
	"${P2[@]}" apply -f "$TMP/authz.yaml"
[ "$("$RM" "${P2[@]}" -j rule list)" = "$before" ] && ok "rules intact after the refused files" ||
	bad "rules changed by a refused file"
O=$here/../samples/istio-0.7.1/httpbin
t "Istio 0.7.1 httpbin: v1alpha1 RouteRule and DestinationPolicy" 0 "^applied 2 documents: 5 rules" \
	"${P2[@]}" apply -f "$O/routerules/httpbin-v1.yaml" -f "$O/destinationpolicies/httpbin-circuit-breaker.yaml"
out=$("$RM" "${P2[@]}" delete -f "$TMP/mixed.yaml" 2>&1)
printf '%s\n' "$out" | head -1 | grep -q "^skipped 16 documents" &&
	printf '%s\n' "$out" | sed -n 2p | grep -q "^deleted 4 documents: 1 rule" &&
	ok "delete -f the mixed file: skips the same kinds, deletes its VirtualServices" ||
	bad "delete -f the mixed file" "$out"
rm -rf "$PIN2"

echo "# the cluster domain: Istio's bookinfo rules (short hosts) in a cluster of corp.local"
PIN2=$PIN-domain
sed 's/svc\.cluster\.local/svc.corp.local/' "$here/../cfg/bookinfo-serviceentries.yaml" >"$TMP/se-corp.yaml"
BI=(-f "$TMP/se-corp.yaml" -f "$S/networking/destination-rule-all.yaml"
	-f "$S/networking/virtual-service-all-v1.yaml")
t "cluster.local: the short hosts are services of their own" 0 \
	"^applied 12 documents: 4 rules, 8 services" "${P2[@]}" apply "${BI[@]}"
t "--domain corp.local: the rules land on the entries" 0 \
	"^applied 12 documents: 4 rules, 4 services, 6 endpoints" "${P2[@]}" apply --domain corp.local "${BI[@]}"
t "rule list: reviews routed on reviews.default.svc.corp.local" 0 "^default/reviews +VirtualService +reviews " \
	"${P2[@]}" rule list
tj "service show" 0 "${P2[@]}" service list
jpy "json: every service is an entry's corp.local host" \
	"sorted(s['host'] for s in d) == sorted(h + '.default.svc.corp.local' for h in ('details', 'productpage', 'ratings', 'reviews'))"
t "apply without --domain: the stored domain, unchanged" 0 "^unchanged" "${P2[@]}" apply "${BI[@]}"
t "--domain not a DNS name" nz "^Error: cluster domain \"Corp_Local\": not a DNS name" \
	"${P2[@]}" apply --domain Corp_Local "${BI[@]}"
t "--domain without a value" nz "^Error: 'apply': --domain needs a cluster domain" "${P2[@]}" apply -f "$TMP/se-corp.yaml" --domain
t "--domain alone" nz "^Error: 'apply' needs -f" "${P2[@]}" apply --domain corp.local
t "--domain cluster.local again: 8 services" 0 "^applied 12 documents: 4 rules, 8 services" \
	"${P2[@]}" apply --domain cluster.local "${BI[@]}"
rm -rf "$PIN2"

echo "# mirror is implemented: apply names nothing as not implemented"
PIN2=$PIN-unimpl
PU=(--pin-dir "$PIN2")
# Istio's mirroring task (istio.io, "Mirroring"): v1 serves, a copy goes to v2
cat >"$TMP/mirror.yaml" <<'Y'
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  addresses: [10.96.0.30]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.244.0.11, labels: {app: httpbin, version: v1}}
  - {address: 10.244.0.12, labels: {app: httpbin, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
    - httpbin
  http:
  - route:
    - destination:
        host: httpbin
        subset: v1
      weight: 100
    mirror:
      host: httpbin
      subset: v2
    mirrorPercentage:
      value: 100.0
Y
cat >"$TMP/cors.yaml" <<'Y'
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: httpbin.default.svc.cluster.local, subset: v1}}]
    corsPolicy: {allowOrigin: [https://example.com], allowMethods: [GET], maxAge: 24h}
  - route: [{destination: {host: httpbin.default.svc.cluster.local, subset: v1}}]
    corsPolicy: {allowOrigin: ["*"]}
Y
out=$("$RM" "${PU[@]}" apply -f "$TMP/mirror.yaml" 2>&1)
case $out in *"not implemented"*) bad "mirror: applied, not named as not implemented" "$out" ;;
"applied 3 documents"*) ok "mirror: applied, not named as not implemented" ;;
*) bad "mirror: applied, not named as not implemented" "$out" ;; esac
t "mirror: rule show has the mirror to v2, 100%" 0 "mirror +100(\.0+)?% of requests -> .*v2" \
	"${PU[@]}" rule show httpbin
t "mirror: re-applied unchanged" 0 "^unchanged" "${PU[@]}" apply -f "$TMP/mirror.yaml"
t "mirror: the route to v1 is there" 0 "^default/httpbin +VirtualService +httpbin" "${PU[@]}" rule list
out=$("$RM" "${PU[@]}" apply -f "$TMP/mirror.yaml" -f "$TMP/cors.yaml" 2>&1)
case $out in *"not implemented"*) bad "mirror and corsPolicy: nothing named as not implemented" "$out" ;;
*) ok "mirror and corsPolicy: nothing named as not implemented" ;; esac
tj "json of an apply with mirror and corsPolicy" 0 "${PU[@]}" apply -f "$TMP/mirror.yaml" -f "$TMP/cors.yaml"
jpy "json: no not_implemented key, unchanged" \
	"'not_implemented' not in d and d['changed'] is False"
t "rule show: the corsPolicy's origins as written" 0 \
	'cors +origins "https://example.com" methods "GET" headers "" expose "" max-age 86400s' \
	"${PU[@]}" rule show ratings namespace shop
# corsPolicy forms: allowOrigins (StringMatch), unmatchedPreflights, errors with a line
corsvs() { # FILE then the corsPolicy's YAML (one flow map) as $2
	printf '%s\n' "apiVersion: networking.istio.io/v1" "kind: VirtualService" \
		"metadata: {name: c2, namespace: shop}" "spec:" \
		"  hosts: [httpbin.default.svc.cluster.local]" "  http:" \
		"  - route: [{destination: {host: httpbin.default.svc.cluster.local}}]" \
		"    corsPolicy: $2" >"$TMP/$1"
}
corsvs c-ok.yaml '{allowOrigins: [{exact: "https://a.example"}, {prefix: "http://localhost:"}, {regex: "https://.*[.]corp"}], unmatchedPreflights: FORWARD, exposeHeaders: [x-a, x-b]}'
t "corsPolicy allowOrigins exact/prefix/regex, unmatchedPreflights FORWARD" 0 "^applied 1 document" \
	"${PU[@]}" apply -f "$TMP/c-ok.yaml"
t "rule show: allowOrigins as written" 0 \
	'cors +origins "exact:https://a.example prefix:http://localhost: regex:https://[.][*][[][.][]]corp" methods "" headers "" expose "x-a,x-b"' \
	"${PU[@]}" rule show c2 namespace shop
corsvs c-ign.yaml '{allowOrigins: [{exact: "https://a.example"}], unmatchedPreflights: IGNORE}'
t "unmatchedPreflights IGNORE: refused with its line" nz "c-ign.yaml:8:.*unmatchedPreflights: IGNORE" \
	"${PU[@]}" apply -f "$TMP/c-ign.yaml"
corsvs c-bad.yaml '{allowOrigins: [{exakt: "https://a.example"}]}'
t "allowOrigins with an unknown match kind: refused" nz "c-bad.yaml:8:.*exakt" "${PU[@]}" apply -f "$TMP/c-bad.yaml"
corsvs c-re.yaml '{allowOrigins: [{regex: "https://(a"}]}'
t "allowOrigins with a bad regex: refused" nz "c-re.yaml:8:.*regex" "${PU[@]}" apply -f "$TMP/c-re.yaml"
out=$("$RM" "${PU[@]}" apply -f "$S/networking/virtual-service-all-v1.yaml" 2>&1)
case $out in *"not implemented"*) bad "bookinfo's rules: no not-implemented line" "$out" ;;
*) ok "bookinfo's rules: no not-implemented line" ;; esac
rm -rf "$PIN2"

echo "# data-path maps as a daemon pins them (faked with bpftool)"
bpftool map create "$PIN/rm_proxy" type array key 4 value 96 entries 1 name rm_proxy flags 0x400 &&
bpftool map create "$PIN/rm_dpstats" type percpu_array key 4 value 8 entries 14 name rm_dpstats &&
bpftool map create "$PIN/rm_include" type lpm_trie key 20 value 1 entries 16 name rm_include flags 1 &&
bpftool map create "$PIN/rm_xports" type hash key 2 value 1 entries 16 name rm_xports &&
bpftool map create "$PIN/rm_orig" type lru_hash key 40 value 56 entries 16 name rm_orig &&
bpftool map create "$PIN/rm_socks" type sockhash key 40 value 4 entries 16 name rm_socks &&
# rm_stats (stats.h): pages of 4096 B holding the header, 1024 key slots and 2048 rows
bpftool map create "$PIN/rm_stats" type array key 4 value 4096 entries 413 name rm_stats flags 0x400 &&
# rm_breaker (breaker.h) of a daemon run with --breaker-pools 512 --breaker-hosts 100:
# the header page, 512 x 384 B pools, 100 x 136 B hosts
bpftool map create "$PIN/rm_breaker" type array key 4 value 4096 entries 53 name rm_breaker flags 0x400 &&
bpftool map create "$PIN/odd_map" type hash key 3 value 5 entries 4 name odd_map ||
	{ bad "bpftool map create"; echo "cli: $pass passed, $fail failed"; exit 1; }

# fill.py AGE_S [HB_ZERO]: write the proxy record with a heartbeat AGE_S old, and samples.
fill() {
	python3 - "$PIN" "$@" <<'EOF'
import socket, struct, subprocess, sys, time
pin, age = sys.argv[1], float(sys.argv[2])
def upd(m, k, v):
    subprocess.check_call(["bpftool", "map", "update", "pinned", f"{pin}/{m}", "key", "hex"]
                          + ["%02x" % x for x in k] + ["value", "hex"] + ["%02x" % x for x in v])
def mapped(ip): return b"\0" * 10 + b"\xff\xff" + socket.inet_aton(ip)
hb = 0 if age < 0 else time.monotonic_ns() - int(age * 1e9)
proxy = (struct.pack("<QQQQII", hb, 3_000_000_000, 1234, 5678, 4242, 1) + mapped("127.0.0.1")
         + mapped("169.254.7.1") + struct.pack(">H", 15001) + b"\0" * 6
         + struct.pack("<QII", 0, 0, 0))  # prev_cgroup_id, prev_tgid: no hand-over
upd("rm_proxy", struct.pack("<I", 0), proxy)
upd("rm_include", struct.pack("<I", 96 + 24) + mapped("10.244.0.0"), b"\x01")
upd("rm_xports", struct.pack("<H", 15090), b"\x01")
tup = mapped("10.244.0.5") + mapped("10.96.0.20") + struct.pack(">HH", 40000, 8080) + struct.pack("<HH", 2, 0)
orig = mapped("10.96.0.20") + struct.pack(">H", 8080) + struct.pack("<HIQQIIQ", 2, 777, 11, 22, 1, 0, 0)
upd("rm_orig", tup, orig)
upd("rm_dpstats", struct.pack("<I", 0), struct.pack("<Q", 7))
upd("odd_map", b"abc", b"\x00\x01\x02\"\xff")
# rm_stats: the header (magic "RST2", 1024 slots, started 1, dropped 0, generation 3; then
# 2048 rows of which 3 used, the regions' offsets; worker 0's buffer pools), slot 5
# naming pool rows 1 and 2 (row 0 is the overflow slot's reserved row)
NS, NR, SLOT, ROW, PAGE = 1024, 2048, 624, 512, 4096
slot_off = PAGE
row_off = (slot_off + NS * SLOT + 63) & ~63
m = bytearray(413 * PAGE)
assert row_off + NR * ROW <= len(m) < row_off + NR * ROW + PAGE
struct.pack_into("<IIQQQ", m, 0, 0x52535432, NS, 1, 0, 3)
struct.pack_into("<IIQQQ", m, 224, NR, 3, slot_off, row_off, 0)
struct.pack_into("<II", m, 256, 4242, 1)
struct.pack_into("<QQIIIIQ", m, 296, 5, 0, 2, 4096, 1, 8192, 12345)
def s(txt, n): return txt.encode().ljust(n, b"\0")
key = (s("trans-service.order-system-production.svc.cluster.local", 128) + s("v1", 48)
       + s("trans-service-v1", 48) + s("curl", 48) + s("unknown", 48)
       + s("shop", 48) + s("curl", 48) + s("curl", 48) + s("latest", 48) + bytes([1]) + b"\0" * 7)
# rows (stats.h): id = used | code << 32 | flags; duration/request/response histograms of
# 20 buckets + sum. 9 x 200 in 1..5 ms, 1 x 503 UO (flag bit 0) under 0.5 ms.
def hist(b, n, total): return struct.pack("<20Q", *[n if i == b else 0 for i in range(20)]) + struct.pack("<Q", total)
def row(code, flags, n, dbucket, dsum):
    return struct.pack("<Q", (1 << 63) | (code << 32) | flags) + hist(dbucket, n, dsum) + hist(6, n, 90 * n) + hist(9, n, 900 * n)
slot = (struct.pack("<II", 2, 0) + key + struct.pack("<QQ", 0, 0) + struct.pack("<4Q", 3, 2, 100, 200)
        + b"\0" * 16 + struct.pack("<8I", 2, 3, 0, 0, 0, 0, 0, 0))
assert len(slot) == SLOT, len(slot)
m[slot_off + 5 * SLOT:slot_off + 6 * SLOT] = slot
m[row_off:row_off + ROW] = struct.pack("<Q", 3 << 62).ljust(ROW, b"\0")
m[row_off + ROW:row_off + 3 * ROW] = row(200, 0, 9, 2, 9 * 3000) + row(503, 1, 1, 0, 100)
for pg in sorted({0, (slot_off + 5 * SLOT) // PAGE, (slot_off + 6 * SLOT - 1) // PAGE,
                  row_off // PAGE, (row_off + 3 * ROW - 1) // PAGE}):
    upd("rm_stats", struct.pack("<I", pg), m[pg * PAGE:(pg + 1) * PAGE])
# rm_breaker: header ("RCB2", ABI 2, 512 pools, 100 hosts, started 1, 4 pool lookups
# dropped, 0 host ones, last sweep 0, the regions' offsets, 1 pool and 1 host used);
# pool slot 300 (past the default table's 256) live with 2 connections open, host slot
# 50 of it live, 3 errors in a row
NP, NH, POOL, HOST = 512, 100, 384, 136
pool_off, host_off = PAGE, (PAGE + NP * POOL + 63) & ~63
b = bytearray(53 * PAGE)
assert host_off + NH * HOST <= len(b) < host_off + NH * HOST + PAGE
struct.pack_into("<IIIIQQQQQQII", b, 0, 0x52434232, 2, NP, NH, 1, 4, 0, 0, pool_off, host_off, 1, 1)
p = pool_off + 300 * POOL
struct.pack_into("<II", b, p, 2, 0)
b[p + 8:p + 8 + 128] = s("reviews.default.svc.cluster.local", 128)
b[p + 136:p + 136 + 96] = s("v2", 96)
struct.pack_into("<QIII", b, p + 288, 3, 4, 2, 0)  # generation, n_hosts, connections, pending
h = host_off + 50 * HOST
struct.pack_into("<II", b, h, 2, 0)
b[h + 8:h + 32] = struct.pack("<IH", 300, 2) + struct.pack(">H", 9080) + mapped("10.244.0.11")
struct.pack_into("<I", b, h + 32, 3)
for pg in sorted({0, p // PAGE, (p + POOL - 1) // PAGE, h // PAGE, (h + HOST - 1) // PAGE}):
    upd("rm_breaker", struct.pack("<I", pg), b[pg * PAGE:(pg + 1) * PAGE])
EOF
}
fill 0.2 || bad "fill fake maps"

t "status: live daemon" 0 "^ringmeshd alive at $PIN" "${P[@]}" status
out=$(R status 2>&1)
for pat in "daemon pid +4242" "listen +127.0.0.1:15001" "flags +sockmap" "heartbeat +0\.[0-9] s ago" \
	"config +generation [0-9]+: 4 rules, 1 service, 3 endpoints" \
	"breaker +1 of 512 pools, 1 of 100 hosts in use; full: 4 pool and 0 host lookups unlimited"; do
	printf '%s\n' "$out" | grep -Eq "$pat" && ok "status shows /$pat/" || bad "status shows /$pat/" "$out"
done
tj "status live" 0 "${P[@]}" status
jpy "json: status live" "d['alive'] and d['daemon_pid'] == 4242 and d['flags'] == ['sockmap'] and d['heartbeat_fresh'] and d['config']['rules'] == 4 and d['config']['domain'] == 'cluster.local'"
jpy "json: status breaker sizes and use" "d['breaker'] == {'pools_used': 1, 'pools_max': 512, 'hosts_used': 1, 'hosts_max': 100, 'pools_dropped': 4, 'hosts_dropped': 0}"
# breaker show reads the regions where the header puts them (not the default sizes')
t "breaker show: the pool in slot 300" 0 "^reviews\.default\.svc\.cluster\.local +v2 +2/0 " "${P[@]}" breaker show
t "breaker show: its host, 3 errors in a row" 0 "^reviews\.default\.svc\.cluster\.local +v2 +10\.244\.0\.11:9080 +3 " "${P[@]}" breaker show
t "breaker show: slots in use of the table's" 0 "^  slots in use: 1 of 512 pools, 1 of 100 hosts" "${P[@]}" breaker show
tj "breaker show" 0 "${P[@]}" breaker show reviews
jpy "json: breaker show sizes, the pool and its host" "d['pools_max'] == 512 and d['hosts_max'] == 100 and d['pools_dropped'] == 4 and [p['slot'] for p in d['pools']] == [300] and d['pools'][0]['connections']['current'] == 2 and [h['host'] for h in d['hosts']] == ['10.244.0.11:9080'] and d['hosts'][0]['consecutive_errors'] == 3"
fill 3.5
t "status: stale heartbeat" nz "^Error: stale heartbeat \(3\.[5-9] s old\): daemon dead\?" "${P[@]}" status
tj "status stale" nz "${P[@]}" status
fill -1
t "status: heartbeat never set" nz "^Error: no ringmeshd at $PIN: heartbeat never set" "${P[@]}" status

t "map dump rm_include" 0 "^10\.244\.0\.0/24$" "${P[@]}" map dump rm_include
t "map dump rm_xports" 0 "^port 15090$" "${P[@]}" map dump rm_xports
t "map dump rm_orig" 0 "^10\.244\.0\.5:40000 -> 10\.96\.0\.20:8080 +orig_dst 10\.96\.0\.20:8080 +tgid 777 .*msg redirect" \
	"${P[@]}" map dump rm_orig
t "map dump rm_proxy" 0 "listen +127\.0\.0\.1:15001" "${P[@]}" map dump rm_proxy
t "map dump rm_dpstats" 0 "^redirected +[0-9]+$" "${P[@]}" map dump rm_dpstats
t "map dump rm_socks (empty)" 0 "^Found 0 elements" "${P[@]}" map dump rm_socks
t "map dump unknown map as hex" 0 "^key: 61 62 63  value: 00 01 02 22 ff$" "${P[@]}" map dump odd_map
t "map dump rm_stats" 0 "trans-service.* 10 requests" "${P[@]}" map dump rm_stats
t "abbreviation 'ma d'" 0 "^port 15090$" "${P[@]}" ma d rm_xports
for m in rm_proxy rm_dpstats rm_include rm_xports rm_orig rm_socks rm_stats odd_map; do
	tj "map dump $m" 0 "${P[@]}" map dump "$m"
done
jpy "json: hex dump" "d['decoded'] is False and d['entries'][0] == {'key':['0x61','0x62','0x63'],'value':['0x00','0x01','0x02','0x22','0xff']}"
tj "map dump rm_orig" 0 "${P[@]}" map dump rm_orig
jpy "json: rm_orig decoded" "d['entries'][0]['orig_dst'] == '10.96.0.20:8080' and d['entries'][0]['local'] == '10.244.0.5:40000'"
tj "map dump rm_dpstats" 0 "${P[@]}" map dump rm_dpstats
jpy "json: per-CPU counter summed over CPUs" "d['entries'][0]['reason'] == 'redirected' and d['entries'][0]['count'] > 0 and d['entries'][0]['count'] % 7 == 0"
t "map list" 0 "^rm_proxy +array +4 +96 +1 " "${P[@]}" map list

t "stats" 0 "redirected +[0-9]+" "${P[@]}" stats
t "stats: request table" 0 "trans-service.order-system-production.svc.cluster.local +v1 +curl +10 +9 +0 +0 +1 +0 +3 +2" "${P[@]}" stats
tj "stats" 0 "${P[@]}" stats
jpy "json: stats" "d['datapath']['redirected'] % 7 == 0 and d['datapath']['redirected'] > 0 and d['requests']['slots'][0]['requests'] == 10 and d['requests']['slots'][0]['code_class']['5xx'] == 1 and d['requests']['slots'][0]['tcp']['opened'] == 3"
t "stats: p50/p90/p99 from the histograms" 0 "trans-service.order-system-production.svc.cluster.local +v1 +curl +10 .* +3 +2 +2\.78 +4\.56 +4\.96 *$" "${P[@]}" stats
jpy "json: stats quantiles and series" "d['requests']['slots'][0]['duration_ms']['p50'] > 1 and d['requests']['slots'][0]['series'] == [{'code': 200, 'response_flags': '-', 'requests': 9}, {'code': 503, 'response_flags': 'UO', 'requests': 1}]"
t "stats: buffer pools per worker" 0 "^ *0 +2 +4096 +5 +1 +8192 +0 +12 *$" "${P[@]}" stats
t "stats: rows of the pool" 0 "^Requests \(rm_stats, config generation 3, 0 lookups in the overflow slot, 3 of 2048 rows used" "${P[@]}" stats
tj "stats" 0 "${P[@]}" stats
jpy "json: stats workers and rows" "d['requests']['workers'] == [{'worker': 0, 'client_in_use': 2, 'client_blocks': 4096, 'client_waits': 5, 'upstream_in_use': 1, 'upstream_bufs': 8192, 'upstream_waits': 0, 'resident_bytes': 12345}] and d['requests']['rows'] == 3 and d['requests']['rows_max'] == 2048"
t "stats --prometheus: buffer waits" 0 '^ringmesh_worker_buffer_waits_total\{worker="0",pool="client"\} 5$' "${P[@]}" stats --prometheus
t "stats --prometheus: rows" 0 '^ringmesh_stats_rows 3$' "${P[@]}" stats --prometheus
t "stats --watch 1 --count 2: two rounds with a rate column" 0 "REQ/S" "${P[@]}" stats --watch 1 --count 2
n=$(R stats --watch 1 --count 2 2>&1 | grep -c '^Requests (rm_stats')
[ "$n" = 2 ] && ok "stats --watch 1 --count 2 prints 2 rounds" || bad "stats --watch 1 --count 2 prints 2 rounds" "$n"
t "stats --count without --watch" nz "^Error: --count goes with --watch" "${P[@]}" stats --count 2
t "stats --watch 0" nz "^Error: --watch '0'" "${P[@]}" stats --watch 0
t "stats --prometheus: istio_requests_total, Istio's labels" 0 '^istio_requests_total\{reporter="source",.*destination_version="v1",destination_service="trans-service.order-system-production.svc.cluster.local",.*response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="unknown"\} 9$' "${P[@]}" stats --prometheus
t "stats --prometheus: the UO 503 is source-only" 0 'response_code="503",grpc_response_status="",response_flags="UO",connection_security_policy="unknown"\} 1$' "${P[@]}" stats --prometheus
out=$(R stats --prometheus 2>&1)
if printf '%s\n' "$out" | grep -q 'reporter="destination".*response_code="503"'; then
	bad "stats --prometheus: no destination copy of a local reply" "$out"
else
	ok "stats --prometheus: no destination copy of a local reply"
fi
printf '%s\n' "$out" | grep -q '^istio_request_duration_milliseconds_bucket{reporter="destination",.*response_code="200".*le="5"} 9$' &&
	ok "stats --prometheus: destination histogram, Envoy's le=\"5\" bucket" ||
	bad "stats --prometheus: destination histogram, Envoy's le=\"5\" bucket" "$out"
printf '%s\n' "$out" | grep -q '^ringmesh_datapath_decisions_total{decision="redirected"} [1-9]' &&
	ok "stats --prometheus: ringmesh_datapath_decisions_total" ||
	bad "stats --prometheus: ringmesh_datapath_decisions_total" "$out"
if command -v promtool >/dev/null; then
	# promtool's only remark may be the unit lint on Istio's own name (Envoy's output
	# gets it too): anything else, or a parse error, fails
	chk=$(printf '%s\n' "$out" | promtool check metrics 2>&1)
	other=$(printf '%s\n' "$chk" | grep -v '^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$' | grep .)
	if [ -z "$other" ]; then
		ok "stats --prometheus: promtool check metrics clean (Istio's milliseconds name aside)"
	else
		bad "stats --prometheus: promtool check metrics clean" "$chk"
	fi
else
	echo "skip - promtool not installed (make deps)"
fi
t "stats --prometheus -j refused" nz "error.*--prometheus prints" "${P[@]}" stats --prometheus -j
rm -f "$PIN/rm_stats"
t "stats: absent map said clearly" 0 "Requests: rm_stats not pinned at $PIN" "${P[@]}" stats
tj "stats without rm_stats" 0 "${P[@]}" stats
jpy "json: stats absent map" "d['requests'] is None and 'not pinned' in d['requests_absent']"

echo "# workload: pod identities in rm_workload"
CGROUP2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
t "workload help" 0 "Usage: ringmesh workload" workload help
t "workload list, not pinned" nz "^Error: rm_workload not pinned at $TMP/none" --pin-dir "$TMP/none" workload list
t "workload add, not pinned" nz "^Error: rm_workload not pinned at $TMP/none" --pin-dir "$TMP/none" \
	workload add --cgroup "$CGROUP2" --namespace a
tj "workload list, not pinned" nz --pin-dir "$TMP/none" workload list
if [ -z "$CGROUP2" ]; then
	echo "skip - workload: no cgroup2 mount"
else
	WCG=$CGROUP2/rm-cli-$$
	WPOD=$WCG/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_1111_2222_3333_444455556666.slice
	mkdir -p "$WPOD" "$WCG/kubepods/besteffort/pod9f8e7d6c-1111-2222-3333-444455556666"
	WPOD2=$WCG/kubepods/besteffort/pod9f8e7d6c-1111-2222-3333-444455556666
	trap 'find "$WCG" -depth -type d -exec rmdir {} \; 2>/dev/null; cleanup' EXIT
	bpftool map create "$PIN/rm_workload" type hash key 8 value 1728 entries 4096 name rm_workload flags 1 ||
		bad "bpftool map create rm_workload"
	t "workload list, empty" 0 "^no workloads at $PIN" "${P[@]}" workload list
	t "workload add" 0 "^workload shop/reviews-v2-abc: cgroup id $(stat -c %i "$WPOD")\$" "${P[@]}" workload add \
		--cgroup "$WPOD" --namespace shop --pod reviews-v2-abc --workload reviews-v2 \
		--label app=reviews --label version=v2 --label empty= --service-account bookinfo-reviews \
		--service reviews.shop.svc.cluster.local
	t "workload add (cgroupfs path, abbreviated)" 0 "cgroup id" "${P[@]}" w a --cgroup "$WPOD2" \
		--namespace other --label app.kubernetes.io/name=ratings --label service.istio.io/canonical-revision=r7
	t "workload list" 0 "$(stat -c %i "$WPOD") +shop +reviews-v2-abc +reviews-v2 +reviews +v2 +bookinfo-reviews +reviews.shop.svc.cluster.local +app=reviews,version=v2,empty=" \
		"${P[@]}" workload list
	tj "workload list" 0 "${P[@]}" workload list
	jpy "json: workload list, two records" "len(d) == 2"
	jpy "json: workload fields" "[w for w in d if w['pod'] == 'reviews-v2-abc' and w['cgroup_id'] == $(stat -c %i "$WPOD") and w['namespace'] == 'shop' and w['workload'] == 'reviews-v2' and w['app'] == 'reviews' and w['version'] == 'v2' and w['canonical_service'] == 'reviews' and w['canonical_revision'] == 'v2' and w['service_account'] == 'bookinfo-reviews' and w['service'] == 'reviews.shop.svc.cluster.local' and w['labels'] == {'app': 'reviews', 'version': 'v2', 'empty': ''} and w['uid'] == '0a1b2c3d-1111-2222-3333-444455556666']"
	jpy "json: defaults (app from app.kubernetes.io/name, canonical revision label, uid from pod<uid>)" \
		"[w for w in d if w['namespace'] == 'other' and w['app'] == 'ratings' and w['version'] == '' and w['canonical_service'] == 'ratings' and w['canonical_revision'] == 'r7' and w['pod'] == '' and w['uid'] == '9f8e7d6c-1111-2222-3333-444455556666']"
	t "workload add without --namespace" nz "^Error: 'workload add' needs --namespace NS" "${P[@]}" workload add --cgroup "$WPOD"
	t "workload add without --cgroup" nz "^Error: 'workload add' needs --cgroup PATH" "${P[@]}" workload add --namespace a
	t "workload add, bad label" nz "^Error: bad label 'novalue': want KEY=VALUE" "${P[@]}" workload add \
		--cgroup "$WPOD" --namespace a --label novalue
	t "workload add, label twice" nz "^Error: label 'a' given twice" "${P[@]}" workload add \
		--cgroup "$WPOD" --namespace a --label a=1 --label a=2
	many=()
	for i in $(seq 1 40); do many+=(--label "key$i=$(printf 'v%.0s' $(seq 1 30))"); done
	t "workload add, labels do not fit" nz "^Error: labels do not fit: at most 1024 bytes" "${P[@]}" workload add \
		--cgroup "$WPOD" --namespace a "${many[@]}"
	t "workload add, name too long" nz "^Error: namespace '.*' is too long: at most 63" "${P[@]}" workload add \
		--cgroup "$WPOD" --namespace "$(printf 'n%.0s' $(seq 1 64))"
	t "workload add, not cgroup2" nz "^Error: $TMP is not on cgroup2" "${P[@]}" workload add --cgroup "$TMP" --namespace a
	t "workload add, missing cgroup" nz "^Error: $WCG/nope: No such file" "${P[@]}" workload add --cgroup "$WCG/nope" --namespace a
	t "workload add, option without value" nz "^Error: 'workload add': --pod needs a value" "${P[@]}" workload add --pod
	t "workload add, stray argument" nz "^Error: 'workload add': unexpected argument 'x'" "${P[@]}" workload add x
	tj "workload add, bad label" nz "${P[@]}" workload add --cgroup "$WPOD" --namespace a --label =x
	tj "workload list still two after bad input" 0 "${P[@]}" workload list
	jpy "json: bad input lost nothing" "len(d) == 2 and [w for w in d if w['pod'] == 'reviews-v2-abc' and w['version'] == 'v2']"
	tj "workload add again replaces the record" 0 "${P[@]}" workload add --cgroup "$WPOD" --namespace shop \
		--pod reviews-v3-def --label app=reviews --label version=v3
	jpy "json: add prints the cgroup id" "d == {'cgroup_id': $(stat -c %i "$WPOD")}"
	tj "workload list after replace" 0 "${P[@]}" workload list
	jpy "json: replaced in place" "len(d) == 2 and [w for w in d if w['pod'] == 'reviews-v3-def' and w['version'] == 'v3' and w['workload'] == 'reviews-v3-def' and w['service'] == '']"
	t "workload delete" 0 "^deleted workload with cgroup id $(stat -c %i "$WPOD")" "${P[@]}" workload delete --cgroup "$WPOD"
	t "workload delete again" nz "^Error: no workload with cgroup id $(stat -c %i "$WPOD")" "${P[@]}" workload delete --cgroup "$WPOD"
	t "workload delete, not cgroup2" nz "^Error: $TMP is not on cgroup2" "${P[@]}" workload delete --cgroup "$TMP"
	t "workload delete, no argument" nz "^Error: usage: ringmesh workload delete" "${P[@]}" workload delete
	tj "workload delete --id" 0 "${P[@]}" workload delete --id "$(stat -c %i "$WPOD2")"
	jpy "json: deleted id" "d == {'deleted': $(stat -c %i "$WPOD2")}"
	t "workload list, empty again" 0 "^no workloads at $PIN" "${P[@]}" workload list
	rm -f "$PIN/rm_workload"
	find "$WCG" -depth -type d -exec rmdir {} \;
fi

# sync: grammar and the status file (the command against an API: tests/e2e/test_sync.sh)
echo "# sync"
t "sync help" 0 "sync status \[--status-file FILE\]" sync help
t "sync: unknown argument" nz "^Error: 'sync': unknown or incomplete argument '--frob'" sync --frob
t "sync: --cgroup needs a node" nz "^Error: --cgroup needs --node-name" \
	sync --node-name "" --cgroup /sys/fs/cgroup/none
t "sync: missing kubeconfig" nz "^Error: .*$TMP/none.kubeconfig" sync --kubeconfig "$TMP/none.kubeconfig"
tj "sync runs until stopped" nz sync --kubeconfig "$TMP/none.kubeconfig"
t "sync status, no sync ran" nz "^Error: no sync status at $TMP/nosync.json" \
	sync status --status-file "$TMP/nosync.json"
tj "sync status, no sync ran" nz sync status --status-file "$TMP/nosync.json"
cat >"$TMP/sync.json" <<'EOS'
{"pid": 999999999, "updated_ns": 1, "started_ns": 1, "pin_dir": "/x", "node": "n1",
 "reachable": false, "last_event_ns": 0, "generation": 4, "published_ns": 1, "documents": 3,
 "publish_error": "", "kinds": [{"kind": "VirtualService", "objects": 2, "listed": true,
 "version": "v1", "state": "backoff", "events": 5, "lists": 1, "relists_410": 1, "errors": 2,
 "last_error": "list: Couldn't connect to server"}],
 "skipped": [{"kind": "VirtualService", "namespace": "shop", "name": "bad",
 "error": "k8s:VirtualService/shop/bad:1:9: subset \"v9\" of reviews is not defined"}]}
EOS
t "sync status: not running" 0 "^sync not running \(pid 999999999\), node n1, API unreachable" \
	sync status --status-file "$TMP/sync.json"
t "sync status: kinds" 0 "VirtualService +v1 +backoff +2 +5 +1 +1 +2  list: Couldn't connect" \
	sync st --status-file "$TMP/sync.json"
t "sync status: skipped objects" 0 "^    VirtualService shop/bad: k8s:VirtualService/shop/bad:1:9: subset" \
	sync status --status-file "$TMP/sync.json"
tj "sync status" 0 sync status --status-file "$TMP/sync.json"
jpy "json: sync status fields" "d['running'] is False and d['generation'] == 4 and d['skipped'][0]['name'] == 'bad' and d['kinds'][0]['relists_410'] == 1"

# A default build holds what is applied (no build-time capacity): 2,000 services,
# 6,000 rules into a pin dir of its own; the halves' maps grow to fit.
PIN2=$PIN-scale
rm -rf "$PIN2"
python3 "$(dirname "$0")/../../tools/bench/cfggen.py" 2000 --out "$TMP/scale.yaml"
t "apply 2,000 services (default build)" 0 "generation 1" --pin-dir "$PIN2" apply -f "$TMP/scale.yaml"
tj "service list, 2,000 services" 0 --pin-dir "$PIN2" service list
jpy "json: 2,000 services listed" "len(d) == 2000"
t "re-apply 2,000 services unchanged" 0 "unchanged" --pin-dir "$PIN2" apply -f "$TMP/scale.yaml"
rm -rf "$PIN2"

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
