"""The session budgets of several supervisors on one PostgreSQL database
(docs/drain-rules.md, "Several supervisors"): --batch-size counts the attempts the whole
session started, whichever supervisor started them, and --max-total-minutes runs from the
session's start; a supervisor started with other budgets than its session's is refused."""
import json
import os

from conftest import ctl, preload
from supervisor_helpers import Supervisor, gate_check, llm_supervisor, make_plan, sql, wait_for


def new_pg_db(tmp, url, runs, phases, check):
    assert ctl("--db", url, "db", "init").rc == 0
    plan = make_plan(os.path.join(str(tmp), "plan.json"), runs, 1, phases, check=check)
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 0, r
    return url


def joined(url, n):
    """Whether n live supervisors drain in one session."""
    rows = sql(url, "SELECT count(*), count(DISTINCT session_id) FROM supervisors"
               " WHERE state = 'live' AND session_id IS NOT NULL")
    return rows == [(n, 1)]


def open_attempts(url):
    return sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL")[0][0]


def started_of(sup):
    """The attempts started as the supervisor's status shows them, or None."""
    r = sup.ctl("status", "--json")
    return json.loads(r.out)["queue"]["started"] if r.rc == 0 else None


BATCH = "batch size 10 reached (--batch-size)"


def test_batch_size_holds_for_the_session_of_three_supervisors(tmp, pg_url, llm):
    """Three supervisors of four workers, --batch-size 10, 45 phases: twelve idle workers
    race for work, ten attempts are started in the whole session, each once, and every
    supervisor ends with the batch size's reason and exit status 5."""
    check, go = gate_check(tmp)
    url = new_pg_db(tmp, pg_url, runs=15, phases=3, check=check)
    flags = ("--workers", 4, "--batch-size", 10)
    sups = [llm_supervisor(tmp, url, llm, *flags, name="sup%d" % i) for i in range(3)]
    try:
        # The session lasts while its attempts wait at the gate: all three join it.
        wait_for(lambda: joined(url, 3) or any(s.proc.poll() is not None for s in sups),
                 timeout=120, what="three supervisors in one session")
        wait_for(lambda: open_attempts(url) >= 10, timeout=120, what="ten attempts open")
        # Each running supervisor's status shows the session's figure (a supervisor
        # with no attempt of its own has stopped already).
        wait_for(lambda: all(s.proc.poll() is not None or started_of(s) == 10
                             for s in sups), what="the session's 10 in every status")
        open(go, "w").close()
        codes = [s.wait(timeout=180) for s in sups]
    finally:
        open(go, "w").close()
        for s in sups:
            s.kill()
    logs = [s.stderr() for s in sups]
    assert codes == [5, 5, 5], logs
    for log in logs:
        assert "[STOP] " + BATCH in log, log
        assert "exit status 5" in log.splitlines()[-1], log
    rows = sql(url, "SELECT run_id, phase_id, outcome FROM attempts")
    assert len(rows) == 10, rows
    assert len({(r[0], r[1]) for r in rows}) == 10, rows
    assert {r[2] for r in rows} == {"success"}, rows
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state ORDER BY state") == \
        [("COMPLETE", 10), ("QUEUED", 35)]
    assert sql(url, "SELECT count(*), min(stop_reason) FROM drain_sessions") == [(1, BATCH)]


def test_a_supervisor_with_other_budgets_than_its_session_is_refused(tmp, pg_url, llm):
    """While a session lasts, a supervisor that would join it with another --batch-size
    or --max-total-minutes exits 1 naming the session's, and starts nothing."""
    check, go = gate_check(tmp)
    url = new_pg_db(tmp, pg_url, runs=3, phases=2, check=check)
    first = llm_supervisor(tmp, url, llm, "--workers", 1, "--batch-size", 4,
                           "--max-total-minutes", 60, name="first")
    try:
        wait_for(lambda: open_attempts(url) == 1, timeout=120, what="an attempt open")
        for i, flags in enumerate([("--batch-size", 5, "--max-total-minutes", 60),
                                   ("--max-total-minutes", 60),
                                   ("--batch-size", 4, "--max-total-minutes", 30),
                                   ("--batch-size", 4)]):
            other = llm_supervisor(tmp, url, llm, "--workers", 1, *flags,
                                   name="other%d" % i)
            try:
                assert other.wait(timeout=60) == 1, other.stderr()
            finally:
                other.kill()
            err = other.stderr()
            assert "--batch-size 4 and --max-total-minutes 60" in err, err
        assert sql(url, "SELECT count(*) FROM attempts") == [(1,)]
    finally:
        open(go, "w").close()
        first.kill()


def test_max_total_minutes_runs_from_the_sessions_start(tmp, pg_url, llm):
    """A supervisor that joins a session whose --max-total-minutes have passed since it
    started starts nothing: it stops at once for the time budget, exit status 5."""
    check, go = gate_check(tmp)
    url = new_pg_db(tmp, pg_url, runs=3, phases=2, check=check)
    first = llm_supervisor(tmp, url, llm, "--workers", 1, "--max-total-minutes", 1,
                           "--exit-when-drained", name="first")
    try:
        wait_for(lambda: open_attempts(url) == 1, timeout=120, what="an attempt open")
        # The session began two minutes ago, as far as the database knows.
        sql(url, "UPDATE drain_sessions SET started_at = started_at - INTERVAL '2 minutes'")
        late = llm_supervisor(tmp, url, llm, "--workers", 1, "--max-total-minutes", 1,
                              name="late")
        try:
            assert late.wait(timeout=60) == 5, late.stderr()
        finally:
            late.kill()
        err = late.stderr()
        assert "joining drain session" in err, err
        assert "[STOP] 1 minutes elapsed (--max-total-minutes)" in err, err
        assert sql(url, "SELECT count(*) FROM attempts") == [(1,)]
        open(go, "w").close()
        assert first.wait(timeout=120) == 0, first.stderr()
    finally:
        open(go, "w").close()
        first.kill()


def test_max_total_minutes_of_a_session_begun_on_a_host_whose_clock_is_behind(tmp, pg_url):
    """A session begun by a supervisor on a host whose clock is 10 minutes behind the
    server's (tests/tools/clock_shim.c): one that joins it from a host with the right clock
    has what is left of --max-total-minutes by the server's clock, and drains; the session
    ends after it began. The start was written by the first host's clock and the time run
    read by the server's: the second took the session for 10 minutes old and stopped at
    once, exit 5, starting nothing."""
    url = new_pg_db(tmp, pg_url, runs=2, phases=1, check=None)
    first = Supervisor(tmp, url, "--workers", 0, "--dry-run", "--max-total-minutes", 5,
                       name="first",
                       env=preload("clock-shim.so", AUTOPACK_CLOCK_SHIM_OFFSET="-600"))
    try:
        first.wait_ready()
        wait_for(lambda: joined(url, 1), timeout=60, what="the first in its session")
        [(age,)] = sql(url, "SELECT EXTRACT(EPOCH FROM (clock_timestamp() AT TIME ZONE 'UTC')"
                            " - started_at) FROM drain_sessions")
        assert 0 <= age < 60, age
        late = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--max-total-minutes", 5,
                          "--exit-when-drained", name="late")
        try:
            assert late.wait(timeout=60) == 0, late.stderr()
        finally:
            late.kill()
        err = late.stderr()
        assert "joining drain session" in err, err
        assert "minutes elapsed" not in err, err
        assert sql(url, "SELECT count(*) FROM attempts") == [(2,)]
        first.proc.terminate()
        assert first.wait(timeout=60) == 0, first.stderr()
    finally:
        first.kill()
    # The first, the last to leave, ended the session by the server's clock too: not
    # 10 minutes before it began.
    [(ran,)] = sql(url, "SELECT EXTRACT(EPOCH FROM completed_at - started_at)"
                        " FROM drain_sessions")
    assert 0 <= ran < 120, ran
