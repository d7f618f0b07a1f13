"""Settings of the role or the database set against autopack (ALTER DATABASE … SET, ALTER
ROLE … SET): every connection makes its own where autopack's statements rely on them, and
names what is wrong where it cannot (docs/postgresql.md, "Settings of the role and the
database")."""
import os
import pwd
import re

import pytest

from conftest import ctl, run
from pg_cluster import connect
from supervisor_helpers import ROGUE, Supervisor, rogue_supervisor, sql, wait_for
from test_fleet import SESSION_LOCK_KEY, attempts, new_pg_db


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_supervisors_drain_together_whatever_the_default_isolation(tmp, pg_cluster, level):
    """The database's default isolation made REPEATABLE READ or SERIALIZABLE; three
    supervisors, held at the session-choosing lock until all three wait for it, then drain
    200 phases together. Each must exit 0 in one shared session, every phase visited
    once, and no statement fail for serialization. Before, under SERIALIZABLE the session's
    choice failed (`could not serialize access`, exit 1); under REPEATABLE READ each chose
    from a snapshot taken before it waited for the lock, saw no other's session, started
    its own, and the dry run visited every phase three times (600 attempts)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=20, tiers=1, phases=10)
    pg_cluster.psql("ALTER DATABASE \"%s\" SET default_transaction_isolation = '%s'"
                    % (name, level))
    holder = connect(url)
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SESSION_LOCK_KEY,))
    sups = []
    try:
        sups = [Supervisor(tmp, url, "--workers", 4, "--dry-run", "--exit-when-drained",
                           "--lease-timeout", 5, name="sup%d" % i) for i in range(3)]
        for s in sups:
            wait_for(lambda: "the session-choosing lock is held by" in s.stderr(),
                     timeout=60, what="each supervisor waiting for the lock")
        holder.rollback()
        for s in sups:
            assert s.wait(timeout=300) == 0, s.stderr()
    finally:
        holder.close()
        for s in sups:
            s.kill()
    for s in sups:
        assert "could not serialize" not in s.stderr(), s.stderr()
    rows = attempts(url)
    assert len(rows) == 200
    assert len({(r[1], r[2]) for r in rows}) == 200, "a phase was visited twice"
    assert sql(url, "SELECT count(*), min(stop_reason) FROM drain_sessions") == [(1, "drained")]


def test_a_supervisor_keeps_its_connection_whatever_the_idle_session_timeout(tmp, pg_cluster):
    """The database's idle_session_timeout made 300 ms (PostgreSQL 14 on), and each phase
    takes a second (ROGUE_DELAY), so the supervisor's connection idles longer than that
    between commits. It must drain without ever losing its connection (before, the server
    ended it between beats, and every dispatch round failed first with `BEGIN: no
    connection to the server` before connecting again)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=2, tiers=1, phases=3)
    pg_cluster.psql("ALTER DATABASE \"%s\" SET idle_session_timeout = '300ms'" % name)
    sup = Supervisor(tmp, url, "--worker", ROGUE, "--workers", 2, "--exit-when-drained",
                     "--lease-timeout", 8, env={"ROGUE_MODE": "good", "ROGUE_DELAY": "1"})
    try:
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        sup.kill()
    err = sup.stderr()
    assert "no connection to the server" not in err and "connection to the database is lost" \
        not in err, err
    assert sql(url, "SELECT count(*), min(outcome) FROM attempts") == [(6, "success")]


def attempts_counted(url):
    """The attempts of the database at `url`, counted without its statement_timeout."""
    con = connect(url)
    try:
        with con.cursor() as cur:
            cur.execute("SET statement_timeout = 0")
            cur.execute("SELECT count(*) FROM attempts")
            return cur.fetchone()[0]
    finally:
        con.close()


def test_a_statement_timeout_of_the_database_cancels_none_of_autopacks_statements(
        tmp, pg_cluster):
    """The database's statement_timeout made 1 ms: `db check` and a dry run must work as
    without it (before, each failed on its first statement, `canceling statement due to
    statement timeout`, exit 2 and 1). Then 200 ms, and a supervisor's start waits for the
    session-choosing lock another session holds for longer: it must wait, say so, and
    drain once the lock is let go (before, the wait was cancelled after 200 ms, exit 1)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=2, tiers=1, phases=3)
    pg_cluster.psql("ALTER DATABASE \"%s\" SET statement_timeout = '1ms'" % name)
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    r = run("autopack-supervisor", "--db", url, "--workers", "2", "--dry-run",
            "--exit-when-drained")
    assert r.rc == 0, r.err
    assert attempts_counted(url) == 6
    pg_cluster.psql("ALTER DATABASE \"%s\" SET statement_timeout = '200ms'" % name)
    holder = connect(url)
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SESSION_LOCK_KEY,))
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--exit-when-drained")
    try:
        wait_for(lambda: "the session-choosing lock is held by" in sup.stderr() or
                 sup.proc.poll() is not None, timeout=60, what="the start waiting for the lock")
        holder.rollback()
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        holder.close()
        sup.kill()
    assert "statement timeout" not in sup.stderr(), sup.stderr()
    assert attempts_counted(url) == 12


def test_a_search_path_away_from_autopacks_tables_is_named(tmp, pg_cluster):
    """The database's search_path set to a schema that does not exist, then to a schema
    holding a look-alike `phases` table ahead of public. Every command and the supervisor
    must refuse the database, saying where they looked and that public holds autopack's
    meta table (before: only `PostgreSQL database but not an autopack database (no meta
    table)`, about a database that is one); reset, it opens as before."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, tiers=1, phases=1)
    sql(url, "CREATE SCHEMA lookalike; CREATE TABLE lookalike.phases (id INTEGER)")
    for path, where in [
            ("nowhere", 'the search_path "nowhere" names no schema this role can use'),
            ("lookalike, public",
             'none in schema lookalike, the first of the search_path "lookalike, public"')]:
        pg_cluster.psql('ALTER DATABASE "%s" SET search_path = %s' % (name, path))
        r = ctl("--db", url, "db", "check")
        assert r.rc == 2 and where in r.err and \
            "schema public holds one: set the search_path to it" in r.err, r
        r = run("autopack-supervisor", "--db", url, "--dry-run", timeout=60)
        assert r.rc == 1 and where in r.err, r
    pg_cluster.psql('ALTER DATABASE "%s" RESET search_path' % name)
    assert ctl("--db", url, "db", "check").rc == 0
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def write_refusals(url):
    """The refusals of a write to the database at `url`: those of `seed telemetry-run`,
    `db reidentify` and a supervisor's start, as (exit status, stderr)."""
    out = []
    for args in (["seed", "telemetry-run"], ["db", "reidentify"]):
        r = ctl("--db", url, *args)
        out.append((r.rc, r.err))
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained", timeout=60)
    out.append((r.rc, r.err))
    return out


@pytest.mark.parametrize("where", ["database", "role in database"])
def test_a_read_only_database_is_refused_naming_the_setting(tmp, pg_cluster, where):
    """default_transaction_read_only set on for the database, or for the role in it: every
    write was refused with only the server's `cannot execute INSERT in a read-only
    transaction`. Now each writer refuses it before writing, naming the setting, where it
    was set and how to undo it (ctl exit 2, the supervisor exit 1); reads go on."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, tiers=1, phases=1)
    if where == "database":
        pg_cluster.psql('ALTER DATABASE "%s" SET default_transaction_read_only = on' % name)
        said = ('the database is read-only: default_transaction_read_only is on, set for '
                'database %s (ALTER DATABASE … SET); to write, run ALTER DATABASE "%s" RESET '
                'default_transaction_read_only; nothing was written' % (name, name))
    else:
        pg_cluster.psql('ALTER ROLE autopack IN DATABASE "%s" SET '
                        'default_transaction_read_only = on' % name)
        said = ('the database is read-only: default_transaction_read_only is on, set for '
                'role autopack in database %s (ALTER ROLE … IN DATABASE … SET); to write, run '
                'ALTER ROLE "autopack" IN DATABASE "%s" RESET default_transaction_read_only'
                % (name, name))
    for (rc, err), want in zip(write_refusals(url), (2, 2, 1)):
        assert rc == want and said in err, (rc, err)
    assert ctl("--db", url, "db", "check").rc == 0
    assert sql(url, "SELECT count(*) FROM runs") == [(1,)]
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def test_a_database_made_read_only_while_a_supervisor_drains_is_named_as_it_gives_up(
        tmp, pg_cluster):
    """default_transaction_read_only set on for the database while a supervisor drains,
    its connection then ended: the connection made again is read-only, each commit is
    refused, and the supervisor gives up on the database (exit 3) naming the setting,
    where it was set and the RESET that undoes it; once that ran, another supervisor
    drains the rest. Before, it gave up saying only the server's `cannot execute UPDATE in
    a read-only transaction`."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=4, tiers=1, phases=3)
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 4,
                           "--exit-when-drained", env={"ROGUE_DELAY": "0.3"})
    try:
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL")
                 [0][0] >= 1, 60, what="an attempt ended")
        pg_cluster.psql('ALTER DATABASE "%s" SET default_transaction_read_only = on' % name)
        pg_cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                        " datname = '%s' AND application_name LIKE 'autopack-supervisor%%'"
                        % name)
        assert sup.wait(120) == 3, sup.stderr()
    finally:
        sup.kill()
    gave_up = [line for line in sup.stderr().splitlines()
               if "giving up on the database" in line]
    assert len(gave_up) == 1 and (
        'cannot execute UPDATE in a read-only transaction (the database is read-only:'
        ' default_transaction_read_only is on, set for database %s (ALTER DATABASE … SET);'
        ' to write, run ALTER DATABASE "%s" RESET default_transaction_read_only)'
        % (name, name)) in gave_up[0], sup.stderr()
    pg_cluster.psql('ALTER DATABASE "%s" RESET default_transaction_read_only' % name)
    again = rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 4,
                             "--exit-when-drained", name="again")
    try:
        assert again.wait(120) == 0, again.stderr()
    finally:
        again.kill()
    assert sql(url, "SELECT DISTINCT state FROM phases") == [("COMPLETE",)]


def test_a_pg_settings_without_the_read_only_row_hides_nothing(tmp, pg_cluster):
    """pg_settings as the search_path finds it holds no row default_transaction_read_only
    (a view of that name in public, which the database's search_path puts before
    pg_catalog), and the database is read-only: the writers must refuse it naming the
    setting, read from pg_catalog. Before, they refused it with `reading whether the
    server takes writes: ` and nothing after it; later, naming what the view answered
    (`pg_settings has no row default_transaction_read_only`)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, tiers=1, phases=1)
    sql(url, "CREATE VIEW public.pg_settings AS SELECT * FROM pg_catalog.pg_settings"
             " WHERE name <> 'default_transaction_read_only'")
    pg_cluster.psql('ALTER DATABASE "%s" SET search_path = public, pg_catalog' % name)
    pg_cluster.psql('ALTER DATABASE "%s" SET default_transaction_read_only = on' % name)
    said = ("the database is read-only: default_transaction_read_only is on, set for "
            "database %s (ALTER DATABASE … SET)" % name)
    for (rc, err), want in zip(write_refusals(url), (2, 2, 1)):
        assert rc == want and said in err, (rc, err)
        assert "has no row" not in err, err
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def test_a_standby_is_refused_naming_it(tmp):
    """The server in recovery (a hot standby: standby.signal): every write was refused with
    only the server's message. Now each writer refuses it as a standby before writing."""
    from pg_cluster import Cluster
    c = Cluster()
    try:
        url = new_pg_db(tmp, c.url(c.new_database()), runs=1, tiers=1, phases=1)
        c.stop()
        signal = os.path.join(c.data, "standby.signal")
        open(signal, "w").close()
        if c.as_root:
            nobody = pwd.getpwnam("nobody")
            os.chown(signal, nobody.pw_uid, nobody.pw_gid)
        c.start()
        assert c.psql("SELECT pg_is_in_recovery()").strip() == "t"
        said = ("the server is a standby (in recovery: hot standby takes no writes); autopack "
                "writes to the database: connect to the primary; nothing was written")
        for (rc, err), want in zip(write_refusals(url), (2, 2, 1)):
            assert rc == want and said in err, (rc, err)
        assert ctl("--db", url, "db", "check").rc == 0
    finally:
        c.close()


def test_numbers_read_back_exact_whatever_extra_float_digits(tmp, pg_cluster):
    """A drained session whose results record durations and yields of several digits;
    the database's extra_float_digits then made -15 (numbers of floating point sent
    rounded to one digit). `session show --json` must show the same figures as before
    (before: 0.4 for a yield of 0.37, 5.0 non-timeout minutes for 6.27)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, tiers=1, phases=3)
    sup = Supervisor(tmp, url, "--worker", ROGUE, "--workers", 1, "--exit-when-drained",
                     env={"ROGUE_MODE": "good"})
    try:
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        sup.kill()
    sql(url, "UPDATE drain_session_results SET duration_seconds = 123.456 + attempt_id,"
        " telemetry_yield_per_minute = 0.37")
    r = ctl("--db", url, "session", "show", "--json")
    assert r.rc == 0 and '"median": 0.37' in r.out, r
    pg_cluster.psql('ALTER DATABASE "%s" SET extra_float_digits = -15' % name)
    again = ctl("--db", url, "session", "show", "--json")
    # The database's size in bytes moves with the server's own writes (statistics,
    # autovacuum) between the two readings.
    sized = re.compile(r'"size": \d+')
    assert again.rc == 0 and sized.sub('"size": N', again.out) == sized.sub(
        '"size": N', r.out), (r.out, again.out)


def test_the_connections_made_beside_the_stores_take_none_of_the_databases_timeouts(
        tmp, pg_cluster):
    """The database's statement_timeout and lock_timeout made 1 ms while a supervisor's
    start waits behind a lock: its report of the wait, read on a connection of its own,
    names the lock and its holder, and once its cancellation goes unanswered (a pooler
    that drops cancel requests) it leaves the fleet on another. Each such connection took
    the database's settings, and the report said only `what server process N waits for
    could not be read (ERROR: canceling statement due to statement timeout)`."""
    import signal
    from test_pg_waits import DarkProxy, assert_names_the_lock, lock_phases
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, tiers=1, phases=2)
    proxy = DarkProxy(url)
    con = lock_phases(url, "estimator_coefficients")
    try:
        for setting in ("statement_timeout", "lock_timeout"):
            pg_cluster.psql("ALTER DATABASE \"%s\" SET %s = '1ms'" % (name, setting))
        sup = Supervisor(tmp, proxy.url, "--workers", 1, "--dry-run", "--exit-when-drained")
        try:
            wait_for(lambda: "has not answered" in sup.stderr(), 60,
                     what="the start's report of its wait")
            line = [x for x in sup.stderr().splitlines() if "has not answered" in x][0]
            assert_names_the_lock(line, con.get_backend_pid(), "estimator_coefficients")
            proxy.go_deaf_to_cancels()
            sup.signal(signal.SIGTERM)
            assert sup.wait(60) == 0, sup.stderr()
        finally:
            sup.kill()
    finally:
        con.rollback()
        con.close()
        proxy.close()
        for setting in ("statement_timeout", "lock_timeout"):
            pg_cluster.psql("ALTER DATABASE \"%s\" RESET %s" % (name, setting))
    err = sup.stderr()
    assert "statement timeout" not in err and "lock timeout" not in err, err
    assert re.search(r"the database did not answer the cancellation: supervisor \d+ left the "
                     r"fleet on a connection of its own", err), err
    assert sql(url, "SELECT state FROM supervisors") == [("stopped",)]
