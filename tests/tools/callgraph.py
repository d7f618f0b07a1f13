#!/usr/bin/python3
"""The call graph between the object files of one folder, from their symbols: file A calls
file B when A needs (nm: undefined) a symbol that B defines. Prints each file's callees,
then every cycle (a strongly connected group of two or more files), or "no cycles".

    /usr/bin/python3 tests/tools/callgraph.py build/rel/obj/supervisor

Exit status: 0 without cycles, 1 with cycles, 2 on a usage error."""
import glob
import os
import subprocess
import sys


def symbols(obj, flag):
    out = subprocess.run(["nm", flag, obj], check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if flag == "--undefined-only" and len(parts) == 2:
            names.add(parts[1])
        elif flag == "--defined-only" and len(parts) == 3 and parts[1].isupper():
            names.add(parts[2])
    return names


def cycles(graph):
    """Tarjan's strongly connected components with more than one member."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    objs = sorted(glob.glob(os.path.join(argv[1], "*.o")))
    name = {o: os.path.basename(o)[:-2] + ".c" for o in objs}
    defined = {name[o]: symbols(o, "--defined-only") for o in objs}
    graph = {}
    for o in objs:
        need = symbols(o, "--undefined-only")
        graph[name[o]] = {f for f, d in defined.items() if f != name[o] and need & d}
    for f in sorted(graph):
        print("%-16s -> %s" % (f, " ".join(sorted(graph[f])) or "-"))
    found = cycles(graph)
    for group in found:
        print("cycle: " + " ".join(group))
    if not found:
        print("no cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
