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
