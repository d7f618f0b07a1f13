"""Another program altering the tables of an autopack PostgreSQL database: what autopack's
statements need is checked as the database is opened, and a database without it refused,
naming what is missing (docs/postgresql.md, "Creating the database")."""
import pytest

from conftest import ctl, run
from supervisor_helpers import Supervisor, sql, wait_for
from test_fleet import new_pg_db


def assert_refused_naming(url, want):
    """`db check` exits 2 and the supervisor 1, each naming `want`, the missing index."""
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and "missing 1 unique index" in r.err and want in r.err, r
    r = run("autopack-supervisor", "--db", url, "--workers", 1, "--dry-run",
            "--exit-when-drained", timeout=120)
    assert r.rc == 1 and want in r.err, r


@pytest.mark.parametrize("table,columns", [
    ("events", "attempt_id, seq"),
    ("drain_session_results", "session_id, attempt_id"),
])
def test_a_dropped_primary_key_that_commits_name_is_refused(tmp, pg_url, table, columns):
    """The primary key of events or drain_session_results dropped (ALTER TABLE ... DROP
    CONSTRAINT): the commits' INSERT ... ON CONFLICT (its columns) cannot run without it.
    `db check` (exit 2) and the supervisor (exit 1) must refuse the database naming the
    key, before anything is written. Before, both opened it, and the supervisor's every
    commit failed (`there is no unique or exclusion constraint matching the ON CONFLICT
    specification`) until it gave up on the database, exit 3."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    sql(url, "ALTER TABLE %s DROP CONSTRAINT %s_pkey" % (table, table))
    assert_refused_naming(url, "the primary key of %s (%s)" % (table, columns))
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    # The key made again (any unique index over its two columns): the database opens.
    sql(url, "CREATE UNIQUE INDEX ux_again ON %s (%s)" % (table, columns))
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r


def test_a_dropped_index_of_one_open_attempt_per_run_is_refused(tmp, pg_url):
    """ux_attempts_run_open dropped (DROP INDEX): without it two supervisors claiming
    together could open two attempts of one run. `db check` (exit 2) and the supervisor
    (exit 1) must refuse the database naming the index, as for the other unique indexes,
    before anything is written. Before, both opened it."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    sql(url, "DROP INDEX ux_attempts_run_open")
    assert_refused_naming(url, "ux_attempts_run_open ON attempts(run_id) WHERE ended_at IS NULL")
    assert sql(url, "SELECT count(*) FROM supervisors") == [(0,)]
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    # Made again as autopack's schema declares it: the database opens.
    sql(url, "CREATE UNIQUE INDEX ux_attempts_run_open ON attempts(run_id)"
        " WHERE ended_at IS NULL")
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r


@pytest.mark.parametrize("table,columns", [
    ("events", "attempt_id, seq"),
    ("drain_session_results", "session_id, attempt_id"),
])
def test_a_primary_key_dropped_mid_drain_is_named_in_the_operators_terms(
        tmp, pg_url, table, columns):
    """The primary key a commit's INSERT ... ON CONFLICT needs dropped while a supervisor
    drains: it gives up on the database (exit 3) keeping what was committed, and says which
    key of which table is not there any more, that another program changed the schema,
    and that `autopack-ctl db check` names what is missing. Before, the same exit 3 said
    only the server's `there is no unique or exclusion constraint matching the ON CONFLICT
    specification`, after the first 120 characters of the statement."""
    url = new_pg_db(tmp, pg_url, runs=300, phases=10)
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--exit-when-drained")
    try:
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT"
                             " NULL")[0][0] >= 20, 120, what="20 attempts ended")
        sql(url, "ALTER TABLE %s DROP CONSTRAINT %s_pkey" % (table, table))
        before = sql(url, "SELECT count(*) FROM events")[0][0]
        assert sup.wait(120) == 3, sup.stderr()
    finally:
        sup.kill()
    log = sup.stderr()
    want = ("writing %s failed: the primary key of %s (%s), which a commit's INSERT ..."
            " ON CONFLICT needs, is not there any more: another program changed"
            " autopack's schema while it ran" % (table, table, columns))
    gave_up = [line for line in log.splitlines() if "giving up on the database" in line]
    assert len(gave_up) == 1 and want in gave_up[0], log
    assert "autopack-ctl db check names what is missing" in gave_up[0], log
    assert sql(url, "SELECT count(*) FROM events")[0][0] >= before
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and "the primary key of %s (%s)" % (table, columns) in r.err, r


def test_a_view_standing_in_for_a_table_is_named_a_view(tmp, pg_url):
    """phases renamed and a view of it put in its place: PostgreSQL lists a view among the
    tables (information_schema.tables), so it was taken for the table. `db check` (exit
    2) and the supervisor (exit 1) name it a view, before anything is written."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    sql(url, "ALTER TABLE phases RENAME TO phases_kept")
    sql(url, "CREATE VIEW phases AS SELECT * FROM phases_kept")
    want = "phases is a view, where schema version 5 has a table"
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and want in r.err, r
    r = run("autopack-supervisor", "--db", url, "--workers", 1, "--dry-run",
            "--exit-when-drained", timeout=120)
    assert r.rc == 1 and want in r.err, r
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


@pytest.mark.parametrize("alter", [
    "ALTER TABLE phases ALTER COLUMN phase_index TYPE bigint",
    "ALTER TABLE phases ALTER COLUMN builder_attempts TYPE numeric",
])
def test_a_columns_type_altered_mid_drain_loses_no_supervisor(tmp, pg_url, alter):
    """A column the supervisor's prepared statements read given another type while it
    drains (an INTEGER widened to BIGINT): the server refuses each such statement as
    `cached plan must not change result type`; the supervisor prepares its statements
    again, retries the transaction, and drains to the end, each phase visited once. Before,
    the refusal came at every retry, and it gave up on the database within 9 s (exit 3,
    `giving up on the database: 8 transactions failed in a row …: cached plan must not
    change result type`)."""
    url = new_pg_db(tmp, pg_url, runs=100, phases=10)
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--exit-when-drained")
    try:
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT"
                             " NULL")[0][0] >= 20, 120, what="20 attempts ended")
        sql(url, alter)
        assert sup.wait(300) == 0, sup.stderr()
    finally:
        sup.kill()
    log = sup.stderr()
    assert "giving up" not in log, log
    assert sql(url, "SELECT count(*), count(DISTINCT (run_id, phase_id)) FROM attempts") == \
        [(1000, 1000)], log


def test_a_phase_index_of_text_is_refused_naming_the_alter_that_fixes_it(tmp, pg_url):
    """phases.phase_index given a text type (ALTER TABLE … TYPE text): the database is
    refused by every command, naming the column, its type, and the ALTER TABLE that gives
    it an integer type again; once that runs, a drain takes the run's phases in their
    order. Before, it was opened as any other and the phases ran in the order of their
    index as text: p0-10 and p0-11 before p0-2."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=12)
    sql(url, "ALTER TABLE phases ALTER COLUMN phase_index TYPE text")
    fix = ('ALTER TABLE "phases" ALTER COLUMN "phase_index" TYPE integer USING'
           ' CAST("phase_index" AS integer)')
    said = ("phases.phase_index is of type text, whose values compare as text (10 before"
            " 2); autopack runs a run's phases in the order of tiers.tier_index and"
            " phases.phase_index, so it refuses to use the database (give the column an"
            " integer type again: %s)" % fix)
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and said in r.err, r
    r = run("autopack-supervisor", "--db", url, "--workers", 1, "--dry-run",
            "--exit-when-drained", timeout=120)
    assert r.rc == 1 and said in r.err, r
    sql(url, fix)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
    try:
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        sup.kill()
    assert [p for (p,) in sql(url, "SELECT phase_id FROM attempts ORDER BY attempt_id")] == \
        ["p0-%d" % i for i in range(12)]


@pytest.mark.parametrize("behind", [
    "SELECT setval(pg_get_serial_sequence('attempts', 'attempt_id'), 2)",
    "ALTER TABLE attempts ALTER COLUMN attempt_id RESTART",
])
def test_a_sequence_behind_its_table_is_refused_naming_the_setval_that_fixes_it(
        tmp, pg_url, behind):
    """The sequence that numbers attempts put behind the highest attempt_id (rows copied
    without it: a restore of the data alone, logical replication; or a RESTART): every
    writer refuses to start, naming the sequence, the table's highest key and the setval
    that moves it past, which makes the next drain work; readers go on. Before, the
    supervisor started, each claim collided with an attempt there (`duplicate key value
    violates unique constraint "attempts_pkey"`), and it gave up on the database, exit 3."""
    url = new_pg_db(tmp, pg_url, runs=2, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
    try:
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        sup.kill()
    sql(url, behind)
    fix = ("SELECT setval('public.attempts_attempt_id_seq', (SELECT max(\"attempt_id\") FROM"
           " \"public\".\"attempts\"))")
    said = ("the sequence public.attempts_attempt_id_seq, which numbers attempts.attempt_id,"
            " would give %d next, but the table holds 4 already" % (3 if "setval" in behind
                                                                    else 1))
    r = run("autopack-supervisor", "--db", url, "--workers", 1, "--dry-run",
            "--exit-when-drained", timeout=120)
    assert r.rc == 1 and said in r.err and "nothing was written: run %s first" % fix \
        in r.err, r
    assert ctl("--db", url, "db", "check").rc == 0
    sql(url, fix)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     name="again")
    try:
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        sup.kill()
    assert sql(url, "SELECT count(*), max(attempt_id) FROM attempts") == [(8, 8)]


def test_an_unlogged_table_is_refused_by_every_writer_naming_what_makes_it_logged(
        tmp, pg_url):
    """Tables of autopack's made UNLOGGED (ALTER TABLE … SET UNLOGGED, a speed-up an
    operator may be told of): the server writes their rows to no write-ahead log and
    empties them after a crash or an immediate stop, losing what autopack committed and
    acknowledged. Every writer refuses to start, naming them and the ALTER TABLE … SET
    LOGGED that makes each crash-safe again; readers go on; once it ran, the drain works.
    Before, they were written as any other, and an immediate restart of the server emptied
    them."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    sql(url, "ALTER TABLE llm_usage_events SET UNLOGGED; ALTER TABLE events SET UNLOGGED")
    fix = ('ALTER TABLE "public"."events" SET LOGGED; ALTER TABLE "public"."llm_usage_events"'
           ' SET LOGGED')
    said = ("tables events, llm_usage_events are UNLOGGED: the server writes none of their"
            " rows to its write-ahead log and empties them after a crash or an immediate"
            " stop, so that what autopack commits there, and tells its workers is on disk,"
            " would be lost; nothing was written: run %s" % fix)
    r = run("autopack-supervisor", "--db", url, "--workers", 1, "--dry-run",
            "--exit-when-drained", timeout=120)
    assert r.rc == 1 and said in r.err, r
    r = ctl("--db", url, "seed", "telemetry-run", "--workspace", str(tmp))
    assert r.rc == 2 and said in r.err, r
    assert ctl("--db", url, "db", "check").rc == 0
    sql(url, fix)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
    try:
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        sup.kill()
