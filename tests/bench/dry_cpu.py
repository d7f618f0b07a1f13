#!/usr/bin/python3
"""A dry-run drain of 2,000 runs x 10 phases with 8 workers (the database made by
tests/bench/engine_bench.py's fresh_db, in the temporary directory), the supervisor under
GNU time: prints phases/s and the CPU per phase of the supervisor and its workers, user
and system.

usage: [TMPDIR=/dev/shm] tests/bench/dry_cpu.py [TREE]
       (TREE: the built tree whose binaries and tests to use, default this one)
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import engine_bench as eb  # noqa: E402

RUNS, PHASES, WORKERS = 2000, 10, 8


def main():
    with tempfile.TemporaryDirectory() as d:
        url = eb.fresh_db(d, RUNS, PHASES)
        t0 = time.monotonic()
        r = subprocess.run(["/usr/bin/time", "-f", "%U %S",
                            os.path.join(ROOT, "build", "rel", "bin", "autopack-supervisor"),
                            "--db", url, "--exit-when-drained", "--workers", str(WORKERS),
                            "--dry-run"], capture_output=True, text=True)
        dt = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit("supervisor failed:\n" + r.stderr)
        user, system = map(float, r.stderr.strip().splitlines()[-1].split())
        n = RUNS * PHASES
        print("%.0f phases/s, CPU %.0f µs a phase (user %.0f, system %.0f)" % (
            n / dt, (user + system) / n * 1e6, user / n * 1e6, system / n * 1e6))


if __name__ == "__main__":
    main()
