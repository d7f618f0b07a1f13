"""Writes the database refuses during a drain: a constraint failure in a group commit is
reported with its table and column, the write is isolated and recorded as an error while
the rest of the group commits; a database that refuses every commit ends the supervisor
with exit 3, its lock released; a trigger or rule of another program's that skips a write
the drain must make (the row left as it was, no error) is taken for a refusal, on both
backends, as is one that writes another state than autopack's; and a signal during a fast
stop is always honoured."""
import fcntl
import os
import re
import signal
import sqlite3

import pytest

from e2e_helpers import Standin, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor, rogue_supervisor, sql, status_when, wait_for
from test_fleet import new_pg_db


def add_not_null_column(url, table, column):
    """Rebuild the empty `table` with one more column, NOT NULL without a default, which
    autopack does not fill (as a legacy schema's column could be)."""
    con = sqlite3.connect(url[len("sqlite:///"):])
    try:
        (ddl,) = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                             (table,)).fetchone()
        indexes = [sql for (sql,) in con.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
            " AND sql IS NOT NULL", (table,))]
        cut = ddl.index("(") + 1
        con.executescript("PRAGMA foreign_keys = OFF; BEGIN; DROP TABLE %s; %s %s TEXT NOT NULL,"
                          "%s; %s; COMMIT;" % (table, ddl[:cut], column, ddl[cut:],
                                               "; ".join(indexes)))
    finally:
        con.close()


def database(tmp, n_phases=3):
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(os.path.join(ws, "out"), exist_ok=True)
    url = init_db(str(tmp))
    import_plan(str(tmp), url, [("r1", ws, [
        phase_spec("p%d" % i, deliverables=("out/m%d.py" % i,)) for i in range(n_phases)])])
    return url


def supervisor(tmp, url, llm, *args):
    return Supervisor(tmp, url, "--workers", 2, "--exit-when-drained",
                      "--max-attempts-per-phase", 1, *(llm_args(llm) + list(args)),
                      env={"ANTHROPIC_API_KEY": "k"})


def lock_is_free(url):
    with open(url[len("sqlite:///"):] + ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def test_a_refused_write_is_isolated_recorded_and_the_rest_commits(tmp):
    url = database(tmp)
    add_not_null_column(url, "llm_usage_events", "tenant")
    llm = Standin(str(tmp))
    try:
        sup = supervisor(tmp, url, llm)
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        llm.stop()
    err = sup.stderr()
    assert "NOT NULL constraint failed: llm_usage_events.tenant" in err
    assert "giving up" not in err
    # Every phase completed; their other telemetry committed.
    assert rows(url, "SELECT DISTINCT state FROM phases") == [{"state": "COMPLETE"}]
    assert len(rows(url, "SELECT 1 FROM token_estimation_v2_events")) == 3
    assert rows(url, "SELECT count(*) AS n FROM llm_usage_events") == [{"n": 0}]
    # The refused usage events are errors under their own keys: acknowledged, not retried.
    refused = rows(url, "SELECT attempt_id, seq, level, message FROM events"
                   " WHERE kind = 'llm_usage' ORDER BY attempt_id, seq")
    assert len(refused) == len(llm.requests()) == 3
    for r in refused:
        assert r["level"] == "error"
        assert r["message"] == ("not stored: NOT NULL constraint failed:"
                                " llm_usage_events.tenant")


def test_a_database_that_refuses_every_commit_ends_the_supervisor_with_exit_3(tmp):
    url = database(tmp)
    add_not_null_column(url, "events", "tenant")
    llm = Standin(str(tmp))
    try:
        sup = supervisor(tmp, url, llm)
        assert sup.wait(timeout=120) == 3, sup.stderr()
    finally:
        llm.stop()
    err = sup.stderr()
    assert "NOT NULL constraint failed: events.tenant" in err
    assert "giving up on the database" in err
    assert lock_is_free(url)
    # The attempts it could not close are recovered by the next supervisor.
    assert rows(url, "SELECT count(*) AS n FROM attempts WHERE ended_at IS NULL")[0]["n"] > 0


def test_a_signal_during_a_fast_stop_that_waits_for_failing_commits_is_honoured(tmp):
    url = database(tmp)
    add_not_null_column(url, "events", "tenant")
    llm = Standin(str(tmp))
    try:
        sup = supervisor(tmp, url, llm)
        # A group commit, or a dispatch round with it (a worker whose first try was on
        # record with its lease did not wait for its announcement's ack, and may be idle).
        wait_for(lambda: "writes failed:" in sup.stderr(), 60, what="a failed commit")
        sup.signal(signal.SIGTERM)
        wait_for(lambda: "stopping:" in sup.stderr(), 30, what="the graceful stop")
        sup.signal(signal.SIGTERM)
        wait_for(lambda: "stopping now" in sup.stderr(), 30, what="the fast stop")
        sup.signal(signal.SIGTERM)
        assert sup.wait(timeout=60) == 3, sup.stderr()
    finally:
        llm.stop()
    assert "exiting without the" in sup.stderr()
    assert lock_is_free(url)


def add_trigger(url, table, when, requeue=False):
    """A trigger of another program's on `table` that skips each UPDATE whose new row
    matches `when` (the row stays as it was, and no error is raised: a BEFORE trigger
    returning NULL on PostgreSQL, RAISE(IGNORE) on SQLite), or with `requeue` writes the
    phase QUEUED instead (on SQLite, an AFTER trigger that updates the row again)."""
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(url[len("sqlite:///"):])
        try:
            con.execute("CREATE TRIGGER t AFTER UPDATE ON %s WHEN %s BEGIN UPDATE %s SET"
                        " state = 'QUEUED' WHERE id = NEW.id; END" % (table, when, table)
                        if requeue else
                        "CREATE TRIGGER t BEFORE UPDATE ON %s WHEN %s"
                        " BEGIN SELECT RAISE(IGNORE); END" % (table, when))
            con.commit()
        finally:
            con.close()
        return
    sql(url, "CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF %s"
             " THEN %s END IF; RETURN NEW; END $$; CREATE TRIGGER t BEFORE UPDATE"
             " ON %s FOR EACH ROW EXECUTE FUNCTION t()"
             % (when, "NEW.state := 'QUEUED';" if requeue else "RETURN NULL;", table))


@pytest.mark.parametrize("requeue, said", [
    (False, "changed 0 rows of table phases, not 1: a trigger or rule on phases that is not"
            " autopack's skipped it"),
    (True, "left the phase QUEUED, not COMPLETE: a trigger on phases that is not autopack's"
           " changed the state written"),
])
def test_a_trigger_that_skips_or_rewrites_a_phases_end_stops_its_run(tmp, backend_url,
                                                                     requeue, said):
    """A trigger that skips every phase's move to COMPLETE, or writes the phase QUEUED
    instead: each attempt's end is refused as a trigger's RAISE would be (the attempt
    closed, its phase back to QUEUED) and its run stopped for the session, the supervisor
    exiting 5. Before, the end was taken as written: a skipped one said `[OK]` and
    `drained`, exit 0, each phase left EXECUTING for good with no attempt open; a
    rewritten one had the phase read again and run again without end (3 phases ran 363
    times in 30 s)."""
    url = new_pg_db(tmp, backend_url, runs=3, tiers=1, phases=1)
    add_trigger(url, "phases", "NEW.state = 'COMPLETE'", requeue)
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained")
    try:
        wait_for(lambda: sup.proc.poll() is not None or
                 sql(url, "SELECT count(*) FROM attempts")[0][0] > 6, 120,
                 what="the supervisor ending, or a run tried a third time")
        rc = sup.wait(120)
    finally:
        sup.kill()
    err = sup.stderr()
    assert rc == 5 and "3 left by the drain rules; exit status 5" in err, err
    assert sql(url, "SELECT count(*) FROM attempts") == [(3,)], err
    for att, run in sql(url, "SELECT attempt_id, run_id FROM attempts"):
        assert ("[STOP] run %s: the database refused the end of its attempt %d (the end of"
                " attempt %d (phase %s/p0-0 to COMPLETE) %s)" % (run, att, att, run, said)
                ) in err, err
    assert sql(url, "SELECT DISTINCT state FROM phases") == [("QUEUED",)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]


@pytest.mark.parametrize("table, when, said", [
    ("phases", "NEW.state = 'EXECUTING'", "the fence of attempt"),
    ("attempts", "NEW.ended_at IS NOT NULL", "the end of attempt"),
])
def test_a_trigger_that_skips_a_lease_or_an_attempts_end_ends_the_drain(tmp, backend_url,
                                                                       table, when, said):
    """A trigger that skips the fence of each phase a claim leases, or each attempt's end:
    the round fails naming the write and the table, every time, and the supervisor gives up
    on the database (exit 3). Before, on PostgreSQL the skipped fence left the attempts
    open with no phase fenced, each end refused as stale (`attempt 1 was already closed`,
    although it was open): the runs could never be claimed again and the supervisor waited
    for good; on SQLite the phases ran with no fence and no count of their attempts; a
    skipped end left each attempt open, its phase COMPLETE, and the drain said `drained`,
    exit 0."""
    url = new_pg_db(tmp, backend_url, runs=3, tiers=1, phases=1)
    add_trigger(url, table, when)
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained")
    try:
        rc = sup.wait(120)
    finally:
        sup.kill()
    err = sup.stderr()
    assert rc == 3 and "giving up on the database" in err, err
    assert re.search(r"giving up on the database: .*: %s \d+ (on phase run-00\d/p0-0 )?changed"
                     r" 0 rows of table %s, not 1: a trigger or rule on %s that is not"
                     r" autopack's skipped it" % (said, table, table), err), err
    assert sql(url, "SELECT count(*) FROM phases WHERE state = 'COMPLETE'") == [(0,)]


@pytest.mark.parametrize("when, said, rc", [
    ("TRUE", "recording its drain session", 1),
    ("NEW.heartbeat_at <> OLD.heartbeat_at AND NEW.state = 'live'"
     " AND NEW.session_id IS NOT DISTINCT FROM OLD.session_id", "renewing the heartbeat", 3),
])
def test_a_trigger_that_skips_a_supervisors_row_is_not_taken_for_its_loss(tmp, pg_url, when,
                                                                          said, rc):
    """A trigger on supervisors (PostgreSQL) that skips every update of its rows, or the
    renewals of a heartbeat alone: the supervisor, alone on the database, names the
    skipped write and the table, and exits 1 as it starts, or gives up on the database
    (exit 3). Before, it took its own live row, left unchanged, for a declaration of its
    loss: `DECLARED LOST: another supervisor declared supervisor 1 lost (no heartbeat for
    longer than its lease timeout …)`, though no other supervisor was there."""
    url = new_pg_db(tmp, pg_url, runs=3, tiers=1, phases=1)
    add_trigger(url, "supervisors", when)
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained",
                           "--lease-timeout", 4)
    try:
        assert sup.wait(120) == rc, sup.stderr()
    finally:
        sup.kill()
    err = sup.stderr()
    assert "DECLARED LOST" not in err, err
    assert ("%s changed no row of table supervisors, though the row of supervisor 1 is there"
            " and live: a trigger or rule on supervisors that is not autopack's skipped it"
            % said) in err, err


def add_insert_trigger(url, table, when):
    """A trigger of another program's on `table` that skips each INSERT whose new row
    matches `when`, without an error (a BEFORE trigger returning NULL on PostgreSQL,
    RAISE(IGNORE) on SQLite)."""
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(url[len("sqlite:///"):])
        try:
            con.execute("CREATE TRIGGER t BEFORE INSERT ON %s WHEN %s"
                        " BEGIN SELECT RAISE(IGNORE); END" % (table, when))
            con.commit()
        finally:
            con.close()
        return
    sql(url, "CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF %s"
             " THEN RETURN NULL; END IF; RETURN NEW; END $$; CREATE TRIGGER t BEFORE INSERT"
             " ON %s FOR EACH ROW EXECUTE FUNCTION t()" % (when, table))


def test_an_event_skipped_is_told_from_a_duplicate(tmp, backend_url):
    """An event the database keeps once under its key (attempt, seq): its repeat (as a
    worker resends it after a reconnection) is a duplicate, counted as one; an event whose
    insert wrote nothing for another reason is refused, named in the log and counted in
    writes_refused, never as a duplicate: one a trigger of another program's skipped (no
    row holds its key: its refusal is recorded as an error row in its place), and one whose
    key holds an event of another kind (not a repeat of it). Before, all three were
    counted as duplicates, and the skipped event left no trace."""
    url = new_pg_db(tmp, backend_url, runs=1, tiers=1, phases=1)
    add_insert_trigger(url, "events", "NEW.message = 'skip me'")
    sup = rogue_supervisor(tmp, url, "skips", "--workers", 1, env={"ROGUE_SKIP_MSG": "skip me"})
    try:
        st = status_when(sup, lambda s: s["counters"]["results"] == 1 and
                         s["queue"]["in_flight"] == 0, what="the result committed")
        c = st["counters"]
        assert (c["events_committed"], c["events_duplicate"], c["writes_refused"]) == (1, 1, 2), c
    finally:
        sup.stop_now()
    err = sup.stderr()
    [(att,)] = sql(url, "SELECT attempt_id FROM attempts")
    skipped = ("the insert of event %d/2 changed 0 rows of table events, and no row holds its"
               " key (attempt_id, seq): a trigger or rule on events that is not autopack's"
               " skipped it" % att)
    taken = ("the key (attempt_id %d, seq 1) of table events holds an event of another kind"
             " than this log event: not a repeat of it, but a row another program wrote" % att)
    assert "the database refused the log event %d/2 of run-000/p0-0: %s" % (att, skipped) \
        in err, err
    assert "the database refused the log event %d/1 of run-000/p0-0: %s" % (att, taken) \
        in err, err
    assert sql(url, "SELECT seq, kind, level, message FROM events ORDER BY seq") == [
        (1, "llm_usage", None, None), (2, "log", "error", "not stored: " + skipped)]
