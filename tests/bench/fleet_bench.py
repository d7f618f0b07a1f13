"""Several supervisors on one PostgreSQL database (make bench): a dry-run drain of the same
plan by 1, 2 and 4 supervisors of 8 workers each on a server the benchmark starts itself
(tests/pg_cluster.py), next to one supervisor of 8 workers on SQLite; then the statements
the server ran per phase with 1 and 4 supervisors (from its log, in drains of their own:
a figure the machine's load does not change), and the phases per run lock statement (how
many phases a round claims at once)."""
import os
import re
import subprocess
import tempfile
import time

from conftest import binpath
from supervisor_helpers import Supervisor, make_plan

RUNS, PHASES = 100, 40


def _load(d, url):
    plan = os.path.join(d, "plan.json")
    if not os.path.exists(plan):
        make_plan(plan, RUNS, 1, PHASES)
    for args in (("db", "init"), ("run", "import", plan)):
        subprocess.run([binpath("autopack-ctl"), "--db", url] + list(args), check=True,
                       capture_output=True)


def _drain(d, url, n):
    """Seconds for n supervisors of 8 workers to drain the plan (dry run)."""
    t0 = time.monotonic()
    sups = [Supervisor(d, url, "--workers", 8, "--dry-run", "--exit-when-drained",
                       name="bench%d" % i) for i in range(n)]
    for s in sups:
        if s.wait(timeout=1800) != 0:
            raise SystemExit("supervisor failed:\n" + s.stderr())
    return time.monotonic() - t0


def _log_statements(cluster, value):
    cluster.psql("ALTER SYSTEM SET log_statement = '%s'" % value)
    cluster.psql("SELECT pg_reload_conf()")


def _statements(cluster, d, n):
    """Statements the server ran for n supervisors to drain the plan: every one it logged
    (log_statement = all) while they ran."""
    url = cluster.url(cluster.new_database())
    _load(d, url)
    _log_statements(cluster, "all")
    try:
        start = os.path.getsize(cluster.log)
        _drain(d, url, n)
    finally:
        _log_statements(cluster, "none")
    with open(cluster.log, errors="replace") as f:
        f.seek(start)
        lines = re.findall(r"LOG:  (?:statement|execute [^:]*): (.*)", f.read())
    return len(lines), len([s for s in lines if "FOR UPDATE SKIP LOCKED" in s])


def bench_fleet(rows):
    from pg_cluster import Cluster
    total = RUNS * PHASES
    with tempfile.TemporaryDirectory() as d:
        url = "sqlite:///" + os.path.join(d, "bench.db")
        _load(d, url)
        dt = _drain(d, url, 1)
        rows.append(("dry-run drain, %d phases, SQLite, 1 supervisor x 8 workers" % total,
                     "%.0f phases/s" % (total / dt), "%.2f s" % dt))
        cluster = Cluster()
        try:
            for n in (1, 2, 4):
                url = cluster.url(cluster.new_database())
                _load(d, url)
                dt = _drain(d, url, n)
                rows.append(("dry-run drain, %d phases, PostgreSQL, %d supervisor(s) x 8"
                             " workers" % (total, n), "%.0f phases/s" % (total / dt),
                             "%.2f s (same plan; one server, fsync off, on this host)" % dt))
            for n in (1, 4):
                k, locks = _statements(cluster, d, n)
                rows.append(("statements per phase, PostgreSQL, %d supervisor(s) x 8 workers"
                             % n, "%.2f" % (k / total),
                             "%d statements for %d phases (server log)" % (k, total)))
                rows.append(("phases per claim, PostgreSQL, %d supervisor(s) x 8 workers"
                             % n, "%.2f" % (total / max(locks, 1)),
                             "%d run locks (SKIP LOCKED) for %d phases (server log)"
                             % (locks, total)))
        finally:
            cluster.close()
