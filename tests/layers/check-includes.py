#!/usr/bin/env python3
"""check-includes.py — no file includes a header of a layer above its own.

The layers, lowest first, and what each may include (src/meson.build):

    base    base
    http    base http
    config  base config
    cache   base http config cache
    server  base http config cache server
    cluster base http config cache server cluster
    admin   base http config cache server cluster admin
    main.c  everything
    tools/  base http (proxyctl talks to the daemon over the admin socket)

A file's layer is its folder: src/<layer>/x.c, include/freshcache/<layer>/x.h.

It also refuses import cycles between modules of any layer: module x (x.c
and x.h) depends on module y when either includes y.h; the dependencies
must form no cycle (a cycle is printed as x -> y -> ... -> x).

Prints each violation as FILE:LINE: message and exits 1 if there is any.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALLOWED = {
    "base": {"base"},
    "http": {"base", "http"},
    "config": {"base", "config"},
    "cache": {"base", "http", "config", "cache"},
    "server": {"base", "http", "config", "cache", "server"},
    "cluster": {"base", "http", "config", "cache", "server", "cluster"},
    "admin": {"base", "http", "config", "cache", "server", "cluster", "admin"},
    "tools": {"base", "http"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"freshcache/([a-z0-9_]+)/[^"]+"')
FLAT = re.compile(r'^\s*#\s*include\s+"freshcache/[^/"]+\.h"')


def layer_of(rel):
    parts = rel.split(os.sep)
    if parts[0] == "src" and len(parts) == 3:
        return parts[1]
    if parts[:2] == ["include", "freshcache"] and len(parts) == 4:
        return parts[2]
    if parts[0] == "tools":
        return "tools"
    return None


def find_cycle(deps):
    """A cycle in the module graph, as a list of modules, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {m: WHITE for m in deps}
    stack = []

    def visit(m):
        color[m] = GREY
        stack.append(m)
        for d in sorted(deps.get(m, ())):
            if color.get(d, BLACK) == GREY:
                return stack[stack.index(d):] + [d]
            if color.get(d) == WHITE:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        color[m] = BLACK
        return None

    for m in sorted(deps):
        if color[m] == WHITE:
            found = visit(m)
            if found:
                return found
    return None


def main():
    bad = 0
    checked = 0
    deps = {}
    for top in ("src", "include", "tools"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            for name in sorted(names):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ROOT)
                layer = layer_of(rel)
                if layer is None:
                    continue        # src/main.c: on top of everything
                if layer not in ALLOWED:
                    print("%s:1: unknown layer folder %r" % (rel, layer))
                    bad += 1
                    continue
                checked += 1
                module = "%s/%s" % (layer, os.path.splitext(name)[0])
                deps.setdefault(module, set())
                with open(path, encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        if FLAT.match(line):
                            print("%s:%d: include without a layer folder: %s"
                                  % (rel, n, line.strip()))
                            bad += 1
                            continue
                        m = INCLUDE.match(line)
                        if m:
                            target = re.search(r'"freshcache/([^"]+)\.h"', line).group(1)
                            if target != module:
                                deps[module].add(target)
                        if m and m.group(1) not in ALLOWED[layer]:
                            print("%s:%d: layer %s includes a header of layer %s: %s"
                                  % (rel, n, layer, m.group(1), line.strip()))
                            bad += 1
    cycle = find_cycle({m: {d for d in ds if d in deps} for m, ds in deps.items()})
    if cycle:
        print("include cycle: %s" % " -> ".join(cycle))
        bad += 1
    if checked == 0:
        print("check-includes: no source files found under %s" % ROOT)
        return 1
    print("check-includes: %d files, %d violation%s" % (checked, bad, "" if bad == 1 else "s"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
