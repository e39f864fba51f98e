#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make check`: the structure the layout promises, checked from the code.
#  format  every tracked .c/.h matches the repository's .clang-format
#  layers  user/http and user/policy (pure) reach no liburing, libbpf/BPF, socket or
#          ringmeshd header, directly or through the headers they include, and read no
#          clock; l4.c and l7*.c include neither each other nor each other's headers
#  cycles  no cycle between files of user/ and tools/ but the engine/handler one (ring.c
#          with l4/l7): a file depends on the file defining a symbol it uses (read from
#          the objects in BUILD), since a header such as cli.h names many files' symbols
# Prints "check: N passed, N failed". Usage: tools/check.sh [BUILD]
set -u
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() {
	fail=$((fail + 1)); echo "not ok - $1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | head -30 | sed 's/^/    /'
	return 0
}

# ---- format ----
if command -v clang-format >/dev/null; then
	out=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>&1 | grep -E '^[^ ].*: (error|warning):' | sed 's/:[0-9]*:[0-9]*: .*//' | sort -u)
	if [ -z "$out" ]; then ok "clang-format: $(git ls-files '*.c' '*.h' | wc -l) files clean"
	else bad "clang-format: $(printf '%s\n' "$out" | wc -l) files differ (clang-format -i FILE)" "$out"; fi
else
	bad "clang-format not installed"
fi

# ---- layers ----
out=$(python3 - <<'PY'
import os, re, glob, sys
inc = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
roots = ['include', 'user', 'tools', '.']
def resolve(name, here):
    for d in [here] + roots:
        p = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(p):
            return p
    return None
def includes(path):
    with open(path, errors='replace') as f:
        return inc.findall(f.read())
# What pure code may not reach, by what it is: system headers by name, ours by folder.
banned_sys = [
    (r'liburing(\.h|/)', 'liburing'),
    (r'bpf/', 'libbpf'), (r'linux/bpf\.h$', 'BPF uapi'),
    (r'sys/socket\.h$|netinet/|arpa/|netdb\.h$|sys/un\.h$|linux/(in|in6|tcp)\.h$', 'socket'),
    (r'sys/mman\.h$|sys/epoll\.h$|sys/eventfd\.h$', 'I/O'),
]
problems = []
for path in sorted(glob.glob('user/http/*.[ch]') + glob.glob('user/policy/*.[ch]')):
    seen, stack = set(), [(path, [path])]
    while stack:
        f, chain = stack.pop()
        for kind, name in includes(f):
            via = ' <- '.join(reversed(chain))
            if kind == '<':
                for pat, what in banned_sys:
                    if re.search(pat, name):
                        problems.append(f'{path}: {what} header <{name}> (via {via})')
                continue
            p = resolve(name, os.path.dirname(f))
            if p is None:
                continue
            if p.startswith('user/ringmeshd/') or p.startswith('tools/'):
                problems.append(f'{path}: engine header "{name}" (via {via})')
                continue
            if p not in seen:
                seen.add(p)
                stack.append((p, chain + [p]))
    src = open(path, errors='replace').read()
    src = re.sub(r'/\*.*?\*/', '', src, flags=re.S)
    for fn in ('clock_gettime', 'mono_ns', 'realtime_ns', 'time(', 'gettimeofday'):
        if re.search(r'\b' + re.escape(fn.rstrip('(')) + r'\s*\(', src):
            problems.append(f'{path}: reads a clock ({fn.rstrip("(")}): pure modules take theirs injected')
# l4 and l7 know each other only through the engine: no include of the other's headers,
# own or reached through a header.
def closure(path):
    seen, stack = set(), [path]
    while stack:
        f = stack.pop()
        for kind, name in includes(f):
            if kind != '"':
                continue
            p = resolve(name, os.path.dirname(f))
            if p and p not in seen:
                seen.add(p); stack.append(p)
    return seen
l4h = {'user/ringmeshd/l4.h'}
l7h = set(glob.glob('user/ringmeshd/l7*.h'))
for path in ['user/ringmeshd/l4.c']:
    for h in sorted(closure(path) & l7h):
        problems.append(f'{path}: includes l7 header {h}')
for path in sorted(glob.glob('user/ringmeshd/l7*.c')):
    for h in sorted(closure(path) & l4h):
        problems.append(f'{path}: includes l4 header {h}')
print('\n'.join(problems))
PY
)
if [ -z "$out" ]; then ok "layers: http/ and policy/ pure, l4 and l7 apart"
else bad "layers: $(printf '%s\n' "$out" | wc -l) violations" "$out"; fi

# ---- cycles ----
if [ ! -d "$build/obj/user" ]; then
	bad "cycles: no objects in $build/obj (make all first)"
else
	out=$(python3 - "$build" <<'PY'
import os, subprocess, sys, glob
build = sys.argv[1]
objs = sorted(glob.glob(f'{build}/obj/user/*/*.o') + glob.glob(f'{build}/obj/tools/*/*.o'))
defs, uses = {}, {}
def unit(o):
    # the source file an object was built from, as a path of the tree
    return os.path.relpath(o, f'{build}/obj')[:-2] + '.c'
for o in objs:
    u = unit(o)
    if u.startswith('tools/bin/'):
        continue  # separate test programs, each its own main
    out = subprocess.run(['nm', '--defined-only', '-g', o], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            defs.setdefault(parts[2], u)
    out = subprocess.run(['nm', '-u', o], capture_output=True, text=True).stdout
    uses[u] = {l.split()[-1] for l in out.splitlines() if l.strip()}
graph = {u: set() for u in uses}
why = {}
for u, syms in uses.items():
    for s in sorted(syms):
        d = defs.get(s)
        if d and d != u:
            graph[u].add(d)
            why.setdefault((u, d), s)
# Files of one module that share a private header (*_int.h) are one unit: their
# calls to each other are the module's inside.
import re
def private_header(u):
    try:
        src = open(u, errors='replace').read()
    except OSError:
        return None
    m = re.search(r'#\s*include\s*"([^"]*_int\.h)"', src)
    return m.group(1) if m else None
group = {}
for u in graph:
    h = private_header(u)
    # "ringmeshd/l7_int.h" (relative to -Iuser) -> the unit "user/ringmeshd/l7*.c"
    group[u] = f'user/{h[:-6]}*.c' if h else u
G = {}
for u, ds in graph.items():
    for d in ds:
        a, b = group[u], group[d]
        if a != b:
            G.setdefault(a, set()).add(b)
            why.setdefault((a, b), why[(u, d)] + f' ({u} -> {d})')
    G.setdefault(group[u], set())
# The engine/handler pair: ring.c calls the handlers, the handlers submit to ring.c.
ENGINE = 'user/ringmeshd/ring.c'
HANDLERS = {'user/ringmeshd/l4.c', 'user/ringmeshd/l7*.c', 'user/ringmeshd/accept.c'}
def sccs(G):
    idx, low, on, st, res, n = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
        for w in G.get(v, ()):
            if w not in idx:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            c = []
            while True:
                w = st.pop(); on.discard(w); c.append(w)
                if w == v: break
            if len(c) > 1: res.append(sorted(c))
    for v in sorted(G):
        if v not in idx: visit(v)
    return res
problems = []
for c in sccs(G):
    if ENGINE in c and set(c) - {ENGINE} <= HANDLERS:
        continue  # checked below without the engine
    edges = [f'{a} -> {b} ({why[(a, b)]})' for a in c for b in sorted(G[a]) if b in c]
    problems.append('cycle: ' + ', '.join(c) + '\n      ' + '\n      '.join(edges))
# Without the engine the handlers must not depend on each other in a cycle either.
H = {a: {b for b in bs if b != ENGINE} for a, bs in G.items() if a != ENGINE}
for c in sccs(H):
    if set(c) <= HANDLERS:
        edges = [f'{a} -> {b} ({why[(a, b)]})' for a in c for b in sorted(H[a]) if b in c]
        problems.append('handler cycle not through ring.c: ' + ', '.join(c) + '\n      ' + '\n      '.join(edges))
print(f'{len(G)} units')
print('\n'.join(problems))
PY
)
	units=$(printf '%s\n' "$out" | head -1)
	rest=$(printf '%s\n' "$out" | tail -n +2)
	if [ -z "$rest" ]; then ok "cycles: none between $units of user/ and tools/ but ring.c with its handlers"
	else bad "cycles: $(printf '%s\n' "$rest" | grep -c 'cycle') between $units" "$rest"; fi
fi

echo "check: $pass passed, $fail failed"
[ $fail -eq 0 ]
