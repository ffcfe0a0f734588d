#!/usr/bin/env python3
"""File-level import cycles in server/src that span more than one top-level folder.

Keeps the layering of README.md's "Code layout": the composition layer (schema.rs, routes.rs,
startup.rs) names the domains, the domains name infrastructure and each other one way only, and
infrastructure names no domain's GraphQL or routes. Cycles inside one folder are fine.
Usage: .ci/module-cycles.py [server/src]  (prints each cycle with its edges).

Nodes are module files; an edge a -> b means a names crate::<path of b>[::item] (or super::/self::
paths that resolve to b). `mod x;` declarations are not edges. Comments and #[cfg(test)] tails are ignored.
Exit code 1 when a cycle spans two or more top-level modules."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else "server/src"
def modpath(path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == 'mod': rel = rel[:-1]
    if rel in (['lib'], ['main']): rel = []
    return tuple(rel)
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f); files[modpath(p)] = p
def strip(src):
    src = re.sub(r'/\*.*?\*/', '', src, flags=re.S)
    src = re.sub(r'//[^\n]*', '', src)
    i = src.find('#[cfg(test)]')
    return src[:i] if i >= 0 else src
def resolve(parts):
    parts = tuple(parts)
    while parts and parts not in files: parts = parts[:-1]
    return parts if parts in files else None
def expand(prefix, body):
    # expand a use-tree body "a::{b, c::d}, e" into paths
    out = []; depth = 0; cur = ''
    items = []
    for ch in body:
        if ch == '{': depth += 1
        if ch == '}': depth -= 1
        if ch == ',' and depth == 0: items.append(cur); cur = ''
        else: cur += ch
    items.append(cur)
    for it in items:
        it = it.strip()
        if not it: continue
        m = re.match(r'^([\w:]*?)(?:::)?\{(.*)\}$', it, re.S)
        if m:
            pre = [x for x in m.group(1).split('::') if x]
            out += expand(prefix + pre, m.group(2))
        else:
            out.append(prefix + [x for x in it.split(' as ')[0].split('::') if x])
    return out
edges = {m: set() for m in files}
for m, p in files.items():
    src = strip(open(p).read())
    paths = []
    for u in re.finditer(r'\buse\s+([^;]+);', src):
        paths += expand([], u.group(1))
    for q in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)', src):
        paths.append(q.group(1).split('::'))
    is_mod_file = p.endswith('mod.rs') or p.endswith('lib.rs')
    for path in paths:
        if not path: continue
        if path[0] == 'crate': tgt = path[1:]
        elif path[0] in ('super', 'self'):
            cur = list(m) if is_mod_file else list(m[:-1])
            i = 0
            if path[0] == 'self': i = 1
            while i < len(path) and path[i] == 'super':
                cur = cur[:-1]; i += 1
            tgt = cur + path[i:]
        else: continue
        r = resolve(tgt)
        if r is not None and r != m and r != ():
            edges[m].add(r)
idx = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
sys.setrecursionlimit(100000)
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
for v in sorted(files):
    if v not in idx: sc(v)
bad = 0
for comp in sccs:
    tops = {x[0] for x in comp if x}
    if len(comp) > 1 and len(tops) > 1:
        bad += 1
        print(f"CYCLE across {sorted(tops)} ({len(comp)} files):")
        for a in sorted(comp):
            print("   ", '::'.join(a), "->", ', '.join(sorted('::'.join(x) for x in edges[a] if x in comp)))
print("cross-folder cycles:", bad)
sys.exit(1 if bad else 0)
