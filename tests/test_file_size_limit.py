"""A file size limit (`ulimit -f`, systemd's LimitFSIZE=) that the database or a
deliverable reaches: the write fails with EFBIG and the error names the limit. The kernel's
default for it, SIGXFSZ, killed the supervisor mid-drain without a word (exit -25), a worker (its attempt `WORKER_CRASHED`, an infrastructure failure)
and autopack-ctl mid-import."""
import os
import subprocess

from conftest import binpath, ctl
from supervisor_helpers import KEY, Standin, Supervisor, make_plan, new_db, sql


def limited(size):
    """A prefix that runs a command with its file size limit at `size` bytes."""
    return ["prlimit", "--fsize=%d:%d" % (size, size)]


def test_a_supervisor_whose_log_reaches_the_limit_gives_up_naming_it(tmp):
    # The -wal grows to the limit within the first hundred dry-run attempts.
    url = new_db(tmp, runs=2, tiers=2, phases=200)
    limit = 2 << 20
    assert os.path.getsize(str(tmp / "autopack.db")) < limit // 2
    sup = Supervisor(tmp, url, "--dry-run", "--workers", 2, "--exit-when-drained",
                     prefix=limited(limit))
    rc = sup.wait()
    err = sup.stderr()
    assert rc == 3, (rc, err[-3000:])
    assert "giving up on the database" in err, err[-3000:]
    assert ("autopack.db-wal is %d bytes, and this process may write no file past %d "
            "bytes, its file size limit" % (limit, limit)) in err, err[-3000:]
    committed = sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'dry_run'")[0][0]
    assert committed > 0
    # Without the limit the next supervisor closes what was open and drains the rest;
    # nothing committed is lost.
    again = Supervisor(tmp, url, "--dry-run", "--workers", 2, "--exit-when-drained",
                       name="again")
    assert again.wait() == 0, again.stderr()
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'dry_run'")[0][0] \
        >= committed + 800
    assert ctl("--db", url, "db", "check").rc == 0


def test_a_deliverable_past_the_limit_fails_its_attempt_write_failed(tmp):
    url = new_db(tmp, runs=1, phases=1, check="true")
    llm = Standin(tmp, {"default": {"mode": "normal", "content": "x" * (3 << 20)}})
    try:
        sup = Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                         "--llm-retries", 0, "--exit-when-drained", "--workers", 1,
                         env={"ANTHROPIC_API_KEY": KEY}, prefix=limited(2 << 20))
        assert sup.wait() == 0, sup.stderr()
    finally:
        llm.stop()
    rows = sql(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert rows and all(r[:2] == ("failed", "WRITE_FAILED") for r in rows), rows
    assert all(r[2] == 'path "out/run-000_p0-0.py": cannot write: File too large'
               for r in rows), rows


def test_an_import_past_the_limit_is_refused_naming_it(tmp):
    url = new_db(tmp, runs=0)
    plan = make_plan(str(tmp / "plan.json"), 2, 2, 200)
    limit = os.path.getsize(str(tmp / "autopack.db")) + (64 << 10)
    p = subprocess.run(limited(limit) + [binpath("autopack-ctl"), "--db", url, "run",
                                         "import", plan],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert ("committing the import: disk I/O error (File too large: %s-wal is %d bytes, and "
            "this process may write no file past %d bytes" % (url[len("sqlite:///"):],
                                                               limit, limit)) in p.stderr, \
        p.stderr
    assert sql(url, "SELECT count(*) FROM phases") == [(0,)]
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 0, r
