#!/usr/bin/python3
"""Where the supervisor's syncs are: a dry-run drain of 2,000 runs x 10 phases with 8
workers, `--synchronous full`, the database on disk (made by engine_bench.fresh_db in a
temporary directory), under `strace -f -y -T -e trace=fdatasync,fsync`. Prints, for the
loop (the process's first thread) and the other threads, each file's syncs and the
seconds they took.

usage: tests/bench/loop_syncs.py [TREE]   (TREE: the built tree to use, default this one)
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import engine_bench as eb  # noqa: E402

SYNC = re.compile(r"(\d+)\s+(fdatasync|fsync)\(\d+<([^>]*)>\).*<([\d.]+)>")


def main():
    with tempfile.TemporaryDirectory() as d:
        url = eb.fresh_db(d, 2000, 10)
        trace = os.path.join(d, "strace.out")
        p = subprocess.run(
            ["strace", "-f", "-y", "-T", "-o", trace, "-e", "trace=fdatasync,fsync",
             os.path.join(ROOT, "build/rel/bin/autopack-supervisor"), "--db", url,
             "--control", os.path.join(d, "s.sock"), "--exit-when-drained", "--workers", "8",
             "--dry-run", "--synchronous", "full"],
            cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit("supervisor exited %d: %s" % (p.returncode, p.stderr[-600:]))
        with open(trace) as f:
            lines = f.read().splitlines()
        loop = min(int(line.split()[0]) for line in lines if line.split()[0].isdigit())
        seen = collections.defaultdict(lambda: [0, 0.0])
        for line in lines:
            m = SYNC.match(line)
            if m:
                key = ("loop" if int(m.group(1)) == loop else "thread",
                       os.path.basename(m.group(3)))
                seen[key][0] += 1
                seen[key][1] += float(m.group(4))
        for (who, name), (n, secs) in sorted(seen.items()):
            print("%-6s %-16s %5d syncs %7.3f s" % (who, name, n, secs))


main()
