#!/usr/bin/python3
"""A dry-run drain of 2,000 runs x 10 phases with 8 workers, `--synchronous full`, as
`make bench`'s bench_peers row runs it (the database made by tests/bench/engine_bench.py's
fresh_db in the temporary directory, the supervisor's output to files there). Prints
phases/s and, a phase, the CPU of the supervisor and of its workers (user and system),
the supervisor's time split into running, waiting for a CPU and asleep, and the context
switches of each side; then the drain's commits (the database's PRAGMA user_version,
which the supervisor counts its commits in, after the drain less before).

The supervisor is waited for without being reaped (waitid WNOWAIT), so its own figures
are read from /proc once it has exited: its CPU from /proc/PID/schedstat (nanoseconds:
time on a CPU, time runnable and waiting for one), its user/system split from
/proc/PID/stat (clock ticks, scaled to the schedstat total) and its context switches from
/proc/PID/status. The workers' figures are the supervisor's reaped children: the rusage
that wait4 gives (the supervisor and every child it reaped) less the supervisor's own.
Start-up (the queue load) and the end report are included.

usage: [TMPDIR=/dev/shm] tests/bench/dry_cpu.py [TREE [EXTRA SUPERVISOR ARGUMENTS...]]
       (TREE: the built tree whose binaries and tests to use, default this one)
"""
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
EXTRA = sys.argv[2:]
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import engine_bench as eb  # noqa: E402

RUNS, PHASES, WORKERS = 2000, 10, 8


def read(path):
    with open(path) as f:
        return f.read()


def status_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def user_version(url):
    con = sqlite3.connect(url[len("sqlite:///"):])
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


def main():
    with tempfile.TemporaryDirectory() as d:
        url = eb.fresh_db(d, RUNS, PHASES)
        commits = -user_version(url)
        t0 = time.monotonic()
        with open(os.path.join(d, "sup.out"), "w") as out, \
                open(os.path.join(d, "sup.err"), "w") as err:
            p = subprocess.Popen(
                [os.path.join(ROOT, "build", "rel", "bin", "autopack-supervisor"),
                 "--db", url, "--control", os.path.join(d, "sup.sock"),
                 "--exit-when-drained", "--workers", str(WORKERS), "--dry-run",
                 "--synchronous", "full"] + EXTRA,
                stdout=out, stderr=err, cwd=d)
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
        wall = time.monotonic() - t0
        stat = read("/proc/%d/stat" % p.pid).rsplit(")", 1)[1].split()
        run_ns, wait_ns = map(int, read("/proc/%d/schedstat" % p.pid).split()[:2])
        status = read("/proc/%d/status" % p.pid)
        _, rc, ru = os.wait4(p.pid, 0)
        p.returncode = rc
        if rc != 0:
            raise SystemExit("supervisor failed:\n" + read(os.path.join(d, "sup.err")))
        commits += user_version(url)
    n = RUNS * PHASES
    us = 1e6 / n
    tick = os.sysconf("SC_CLK_TCK")
    s_user, s_sys = int(stat[11]) / tick, int(stat[12]) / tick
    s_cpu = run_ns / 1e9
    scale = s_cpu / (s_user + s_sys) if s_user + s_sys > 0 else 0
    s_vol = status_field(status, "voluntary_ctxt_switches")
    s_inv = status_field(status, "nonvoluntary_ctxt_switches")
    w_user, w_sys = ru.ru_utime - s_user * scale, ru.ru_stime - s_sys * scale
    print("%.0f phases/s, CPU %.0f µs a phase (user %.0f, system %.0f)" % (
        n / wall, (ru.ru_utime + ru.ru_stime) * us, ru.ru_utime * us, ru.ru_stime * us))
    print("  supervisor %.1f µs (user %.1f, system %.1f), workers %.1f µs (user %.1f, "
          "system %.1f)" % (s_cpu * us, s_user * scale * us, s_sys * scale * us,
                            (w_user + w_sys) * us, w_user * us, w_sys * us))
    print("  wall %.1f µs a phase: the supervisor on a CPU %.1f, waiting for one %.1f, "
          "asleep %.1f" % (wall * us, s_cpu * us, wait_ns / 1e9 * us,
                           (wall - s_cpu - wait_ns / 1e9) * us))
    print("  context switches a phase: supervisor %.2f voluntary, %.2f involuntary; "
          "workers %.2f, %.2f" % (s_vol / n, s_inv / n, (ru.ru_nvcsw - s_vol) / n,
                                  (ru.ru_nivcsw - s_inv) / n))
    print("  commits %d, %.1f phases a commit" % (commits, n / commits if commits else 0))


if __name__ == "__main__":
    main()
