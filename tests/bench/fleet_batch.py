#!/usr/bin/python3
"""What --batch-size costs several supervisors on one PostgreSQL database: a dry-run
drain of RUNS x PHASES phases by N supervisors of 8 workers each, on a server the script
starts itself (tests/pg_cluster.py), without --batch-size and with one the drain never
reaches (every claim then locks the session's row and counts its attempts), alternated
REPEATS times. Prints the seconds of each drain and the attempts it made.

usage: tests/bench/fleet_batch.py [TREE [N [RUNS [PHASES [REPEATS]]]]]
       (TREE: the built tree whose binaries and tests to use, default this one; N 3,
       RUNS 200, PHASES 20, REPEATS 2)
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
N, RUNS, PHASES, REPEATS = [int(a) for a in sys.argv[2:6]] + [3, 200, 20, 2][len(sys.argv[2:6]):]
sys.path.insert(0, os.path.join(ROOT, "tests"))

from conftest import binpath  # noqa: E402
from pg_cluster import Cluster, query  # noqa: E402
from supervisor_helpers import Supervisor, make_plan  # noqa: E402


def drain(cluster, d, flags):
    """Seconds for N supervisors to drain a fresh database of the plan, and its attempts."""
    url = cluster.url(cluster.new_database())
    plan = os.path.join(d, "plan.json")
    if not os.path.exists(plan):
        make_plan(plan, RUNS, 1, PHASES)
    for args in (("db", "init"), ("run", "import", plan)):
        subprocess.run([binpath("autopack-ctl"), "--db", url] + list(args), check=True,
                       capture_output=True)
    t0 = time.monotonic()
    sups = [Supervisor(d, url, "--workers", 8, "--dry-run", "--exit-when-drained", *flags,
                       name="batch%d" % i) for i in range(N)]
    for s in sups:
        if s.wait(timeout=1800) != 0:
            raise SystemExit("supervisor failed:\n" + s.stderr())
    took = time.monotonic() - t0
    return took, query(url, "SELECT count(*) FROM attempts")[0][0]


def main():
    cluster = Cluster()
    try:
        with tempfile.TemporaryDirectory() as d:
            for _ in range(REPEATS):
                for flags in ((), ("--batch-size", 1000000)):
                    took, n = drain(cluster, d, flags)
                    print("%d supervisor(s), %-22s %6.2f s, %d attempts"
                          % (N, " ".join(str(f) for f in flags) or "no --batch-size", took, n),
                          flush=True)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
