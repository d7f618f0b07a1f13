"""A drain session's name, `drain-YYYYMMDD-HHMMSS-PID`, is made of the host's clock and
the supervisor's pid, which two hosts can share (containers, whose supervisors have the
same small pids; a clock behind by the time between two starts): a name some other
session already has is taken with a suffix, `-2`, `-3`, ..., and the supervisor says
so (docs/postgresql.md, "Times"). Before, the start failed on the key of drain_sessions
(`duplicate key value violates unique constraint "drain_sessions_pkey"`, exit 1)."""
import datetime
import signal
import sqlite3
import subprocess
import time

import pytest

from pg_cluster import connect
from supervisor_helpers import Supervisor, new_db, sql, wait_for
from test_fleet import new_pg_db

# A shell that stops itself before it becomes the supervisor (exec keeps its pid), so
# that the test knows the pid the supervisor will name its session after.
STOPPED = ["sh", "-c", 'kill -STOP $$; exec "$@"', "sh"]


def stopped(pid):
    """Whether process `pid` is stopped by a signal."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def names_of(pid, seconds=120):
    """The names a supervisor of pid `pid` may give a session it starts within the next
    `seconds` seconds, by this host's clock (UTC), from the second before now."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return ["drain-%s-%d" % ((now + datetime.timedelta(seconds=s)).strftime("%Y%m%d-%H%M%S"),
                             pid) for s in range(-1, seconds)]


def insert_sessions(url, names, suffixes=()):
    """Rows of drain_sessions with these names, each also with these suffixes: another
    host's sessions, ended."""
    rows = [n + s for n in names for s in ("",) + tuple(suffixes)]
    if url.startswith("postgresql://"):
        con = connect(url)
        con.cursor().executemany(
            "INSERT INTO drain_sessions (session_id, started_at, completed_at, supervisor_pid,"
            " stop_reason) VALUES (%s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC',"
            " 1, 'another host')", [(r,) for r in rows])
        con.close()
        return
    con = sqlite3.connect(url[len("sqlite:///"):])
    con.executemany(
        "INSERT INTO drain_sessions (session_id, started_at, completed_at, supervisor_pid,"
        " stop_reason) VALUES (?, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000',"
        " 1, 'another host')", [(r,) for r in rows])
    con.commit()
    con.close()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_url(request, tmp):
    """An autopack database of one run of two phases, on the suite's PostgreSQL server or
    in a SQLite file."""
    if request.param == "sqlite":
        return new_db(tmp, runs=1, phases=2)
    pg_url = request.getfixturevalue("pg_url")
    return new_pg_db(tmp, pg_url, runs=1, phases=2)


def start_named_after_taken(tmp, url, suffixes=()):
    """A supervisor whose every possible session name for the next two minutes (and the
    names with `suffixes`) another session already has; run to its end. Returns it and
    its pid."""
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     prefix=STOPPED)
    pid = sup.proc.pid
    try:
        wait_for(lambda: stopped(pid), 10, what="the wrapper stopped")
        names = names_of(pid)
        insert_sessions(url, names, suffixes)
        sup.proc.send_signal(signal.SIGCONT)
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    return sup, pid, names


def test_a_session_name_another_session_has_is_taken_with_a_suffix(tmp, any_url):
    """The name the supervisor makes is another host's session's already: its session is
    that name with `-2`, its attempts carry it, the other session is untouched, and the
    log says why the name differs."""
    url = any_url
    sup, pid, names = start_named_after_taken(tmp, url)
    mine = sql(url, "SELECT session_id, stop_reason FROM drain_sessions"
               " WHERE stop_reason IS NULL OR stop_reason <> 'another host'")
    assert len(mine) == 1, mine
    name, reason = mine[0]
    assert name.endswith("-%d-2" % pid) and name[:-2] in names, name
    assert sql(url, "SELECT DISTINCT session_id FROM attempts") == [(name,)]
    assert sql(url, "SELECT count(*) FROM drain_sessions WHERE stop_reason = 'another host'"
               " AND completed_at IS NOT NULL") == [(len(names),)]
    err = sup.stderr()
    assert "drain session %s: the name %s is another session's already" % (
        name, name[:-2]) in err, err


def test_suffixes_taken_too_are_passed_over(tmp, pg_url):
    """With `-2` and `-3` taken as well, the session is `-4`."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    sup, pid, names = start_named_after_taken(tmp, url, suffixes=("-2", "-3"))
    [(name,)] = sql(url, "SELECT session_id FROM drain_sessions"
                    " WHERE stop_reason <> 'another host' OR stop_reason IS NULL")
    assert name.endswith("-%d-4" % pid) and name[:-2] in names, name


def test_two_supervisors_of_one_pid_in_one_second_each_start_a_session(tmp, pg_url):
    """Two supervisors of different drain flags, each the pid 1 of a pid namespace of its
    own (`unshare --pid --fork`, as two containers), started in the same second: both
    drain, in two sessions, one named `…-1` and the other `…-1-2`."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--fork",
                            "--mount-proc", "sh", "-c", "echo $$"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0 or probe.stdout.strip() != "1":
        pytest.skip("no user and pid namespaces here: %s" % probe.stderr.strip())
    url = new_pg_db(tmp, pg_url, runs=2, phases=2)
    prefix = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]
    # Started at the start of a second, both within it (each start takes milliseconds).
    time.sleep(1 - time.time() % 1)
    sups = [Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                       "--run-id", "run-%03d" % i, name="s%d" % i, prefix=prefix)
            for i in range(2)]
    try:
        for s in sups:
            assert s.wait(60) == 0, s.stderr()
    finally:
        for s in sups:
            s.kill()
    names = sorted(n for (n,) in sql(url, "SELECT session_id FROM drain_sessions"))
    assert len(names) == 2, names
    if not names[1].startswith(names[0] + "-"):
        pytest.skip("the two starts fell in two seconds: %s" % names)
    assert names[0].endswith("-1") and names[1] == names[0] + "-2", names
    assert sorted(r for (r,) in sql(url, "SELECT DISTINCT run_id FROM attempts")) == \
        ["run-000", "run-001"]
    assert len(set(sql(url, "SELECT run_id, session_id FROM attempts"))) == 2
