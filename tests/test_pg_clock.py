"""On PostgreSQL the times autopack writes are the server's clock, whatever each host's
wall clock says (docs/postgresql.md, "Several hosts", "Times"): supervisors on hosts whose
clocks are 10 minutes behind and ahead (tests/tools/clock_shim.c) drain one database
together, and every attempt, event, usage row, phase, tier and run they wrote lies within
the server's time of the drain, each run's attempts in order; `run import` and `failed
--since` on such a host count by the server's clock too."""
import datetime
import json
import os

from conftest import ctl, preload
from supervisor_helpers import make_plan, rogue_supervisor, sql, wait_for
from test_fleet import new_pg_db

# The server's time now, as the columns hold it (UTC, without a zone).
SERVER_NOW = "SELECT clock_timestamp() AT TIME ZONE 'UTC'"


def shifted(seconds):
    """The environment of a process on a host whose clock is `seconds` off."""
    return preload("clock-shim.so", AUTOPACK_CLOCK_SHIM_OFFSET=str(seconds))


# Every time column the drain writes, as (table, column).
DRAIN_TIMES = [("attempts", "started_at"), ("attempts", "ended_at"),
               ("events", "created_at"), ("llm_usage_events", "created_at"),
               ("phases", "started_at"), ("phases", "completed_at"),
               ("phases", "updated_at"), ("phases", "last_attempt_timestamp"),
               ("tiers", "started_at"), ("tiers", "completed_at"), ("tiers", "updated_at"),
               ("runs", "started_at"), ("runs", "completed_at"), ("runs", "updated_at"),
               ("drain_session_results", "timestamp"),
               ("drain_sessions", "started_at"), ("drain_sessions", "completed_at")]


def test_a_drain_by_hosts_whose_clocks_are_off_is_stamped_by_the_servers_clock(tmp, pg_url):
    """Two supervisors, one on a host 10 minutes behind and one 10 minutes ahead, drain 6
    runs of 4 phases: every time they wrote lies between the server's time before the
    drain and after it, and in each run every attempt starts after the one before it
    ended, whichever host ran either. Before, each row had its host's clock: the
    attempts of one host 10 minutes before the drain began, and a run's next phase,
    run on the other, 20 minutes before the phase it follows ended."""
    url = new_pg_db(tmp, pg_url, runs=6, tiers=1, phases=4)
    [(before,)] = sql(url, SERVER_NOW)
    go = os.path.join(str(tmp), "go")
    sups = [rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained",
                             name=name, env=dict(shifted(offset), ROGUE_GO=go))
            for name, offset in (("behind", -600), ("ahead", 600))]
    try:
        # Both hosts hold attempts before any ends: the runs go on on either.
        wait_for(lambda: sql(url, "SELECT count(DISTINCT supervisor_id) FROM attempts"
                             " WHERE ended_at IS NULL") == [(2,)], 60,
                 what="both supervisors running phases")
        open(go, "w").close()
        for s in sups:
            assert s.wait(timeout=120) == 0, s.stderr()
    finally:
        for s in sups:
            s.kill()
    [(after,)] = sql(url, SERVER_NOW)
    assert len(set(sql(url, "SELECT supervisor_id FROM attempts"))) == 2
    for table, column in DRAIN_TIMES:
        rows = sql(url, "SELECT min(%s), max(%s), count(%s) FROM %s"
                   % (column, column, column, table))
        [(lo, hi, n)] = rows
        assert n > 0, (table, column)
        assert before <= lo and hi <= after, (table, column, before, lo, hi, after)
    previous = {}
    for run, start, end in sql(url, "SELECT a.run_id, a.started_at, a.ended_at FROM attempts a"
                               " JOIN phases p ON p.run_id = a.run_id AND p.phase_id = a.phase_id"
                               " ORDER BY a.run_id, p.phase_index"):
        assert start <= end
        # Each host stamps by the server's clock as last read: to within the time an
        # answer takes to come back, far below the 20 minutes the hosts' clocks differ.
        gap = (datetime.datetime.fromisoformat(previous[run])
               - datetime.datetime.fromisoformat(start)) if run in previous else None
        assert gap is None or gap < datetime.timedelta(seconds=1), (run, previous[run], start)
        previous[run] = end


def test_ctl_on_a_host_whose_clock_is_off_counts_by_the_servers_clock(tmp, pg_url):
    """`run import` on a host 10 minutes ahead stamps its runs by the server's clock, and
    `failed --since 5m` on a host 10 minutes behind leaves out a failure that ended 8
    minutes ago by the server's clock (the age was counted back from the host's clock,
    which took it in)."""
    url = new_pg_db(tmp, pg_url, runs=1, tiers=1, phases=1)
    plan = make_plan(os.path.join(str(tmp), "late.json"), 1, 1, 1)
    with open(plan) as f:
        doc = json.load(f)
    doc["runs"][0]["run_id"] = "late"
    with open(plan, "w") as f:
        json.dump(doc, f)
    [(before,)] = sql(url, SERVER_NOW)
    r = ctl("--db", url, "run", "import", plan, env=shifted(600))
    assert r.rc == 0, r
    [(after,)] = sql(url, SERVER_NOW)
    for column in ("created_at", "updated_at"):
        [(t,)] = sql(url, "SELECT %s FROM runs WHERE id = 'late'" % column)
        assert before <= t <= after, (column, before, t, after)

    sql(url, "INSERT INTO attempts (run_id, phase_id, attempt_number, started_at, ended_at,"
             " outcome, failure_reason, dry_run, initial_state)"
             " SELECT run_id, phase_id, 1, (clock_timestamp() AT TIME ZONE 'UTC')"
             " - interval '9 minutes', (clock_timestamp() AT TIME ZONE 'UTC')"
             " - interval '8 minutes', 'failed', 'CHECK_FAILED', 0, 'QUEUED' FROM phases"
             " WHERE run_id = 'run-000'")
    sql(url, "UPDATE phases SET state = 'FAILED', last_failure_reason = 'CHECK_FAILED'"
             " WHERE run_id = 'run-000'")
    for since, listed in (("5m", 0), ("10m", 1)):
        r = ctl("--db", url, "failed", "--since", since, "--json", env=shifted(-600))
        assert r.rc == 0, r
        assert json.loads(r.out)["failed"] == listed, (since, r.out)
