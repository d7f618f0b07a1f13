"""Every connection a supervisor makes to the server uses the schema its first connection
opened (docs/postgresql.md, "Settings of the role and the database"): one made again after
the connection was lost, and one made beside it (the leave of the fleet on a connection of
its own, the report of what a statement waits for), whatever the role's or the database's
search_path says by then. The database here holds two autopack databases, one in public
and one in another schema (s2, or a name holding a '"', a space and a backslash), which
the supervisor opens: nothing may be read from public or written there."""
import os
import time

import pytest

from conftest import ctl
from supervisor_helpers import make_plan, rogue_supervisor, sql, wait_for
from test_pg_waits import deaf_then, sigterm_a_start_behind_a_lock

S2 = {"PGOPTIONS": "-c search_path=s2"}
SCHEMAS = ["s2", 'an "odd" s\\2']


def ident(name):
    """`name` quoted as an SQL identifier."""
    return '"%s"' % name.replace('"', '""')


def two_schemas(tmp, pg_cluster, select, schema="s2"):
    """A database holding an autopack database in public (one run of one phase, and a live
    supervisor's row of id 1, as the first of `schema` gets) and another in `schema` (two
    runs of one phase each), which `select` makes the connections' schema: "database"
    (ALTER DATABASE ... SET search_path) or "PGOPTIONS" (S2, in the environment of each
    program; `schema` s2). Returns (database name, URL)."""
    name = pg_cluster.new_database()
    url = pg_cluster.url(name)
    for where, runs in (("public", 1), (schema, 2)):
        env = None
        if where == schema:
            pg_cluster.psql("CREATE SCHEMA %s" % ident(schema), dbname=name)
            if select == "database":
                pg_cluster.psql('ALTER DATABASE "%s" SET search_path = %s'
                                % (name, ident(schema)))
            else:
                env = S2
        plan = make_plan(os.path.join(str(tmp), "%d.json" % runs), runs, 1, 1)
        for args in (["db", "init"], ["run", "import", plan]):
            r = ctl("--db", url, *args, env=env)
            assert r.rc == 0, r
    sql(url, "INSERT INTO public.supervisors (supervisor_id, host, pid, started_at,"
             " heartbeat_at, lease_timeout_ms) VALUES (1, 'elsewhere', 1, now(), now(),"
             " 3600000)")
    assert sql(url, "SELECT count(*) FROM %s.phases" % ident(schema)) == [(2,)]
    return name, url


def public_touches(url):
    """How often the tables of public were read (scans) and rows of them written, as the
    server counts them once the sessions that did it have ended."""
    time.sleep(0.5)
    return sql(url, "SELECT sum(seq_scan + coalesce(idx_scan, 0)), sum(n_tup_ins + n_tup_upd"
                    " + n_tup_del) FROM pg_stat_user_tables WHERE schemaname = 'public'")[0]


def assert_public_untouched(url, before):
    assert public_touches(url) == before
    assert sql(url, "SELECT supervisor_id, state FROM public.supervisors") == [(1, "live")]
    assert sql(url, "SELECT count(*) FROM public.attempts") == [(0,)]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_leave_on_a_connection_of_its_own_stays_in_the_schema_opened(tmp, pg_cluster,
                                                                         schema):
    """A supervisor of s2, stopped by SIGTERM while it starts behind a lock, whose
    cancellation goes unanswered, leaves the fleet on a connection of its own: after the
    database's search_path was set back to public (by then) it must leave in s2. Before,
    that connection took the database's search_path as it was made: the leave stopped
    public's supervisor 1 and left s2's row live."""
    name, url = two_schemas(tmp, pg_cluster, "database", schema)
    before = public_touches(url)
    err = sigterm_a_start_behind_a_lock(
        tmp, url, "estimator_coefficients",
        deaf_then(url, 'ALTER DATABASE "%s" RESET search_path' % name))
    assert "left the fleet on a connection of its own" in err, err
    assert sql(url, "SELECT state FROM %s.supervisors" % ident(schema)) == [("stopped",)]
    assert_public_untouched(url, before)


@pytest.mark.parametrize("select,schema", [("database", SCHEMAS[0]),
                                           ("database", SCHEMAS[1]), ("PGOPTIONS", "s2")])
def test_a_connection_made_again_stays_in_the_schema_opened(tmp, pg_cluster, select, schema,
                                                            monkeypatch):
    """A supervisor of s2 whose connection the server ends mid-drain connects again: it
    must drain s2 to its end, reading and writing nothing in public, whether s2 was
    selected by the database's search_path (set back to public meanwhile) or by PGOPTIONS.
    Before, the connection made again took the database's search_path as it was then,
    public: the supervisor read public's meta, found another uuid and exited 3 (DATABASE
    LOST) with s2's phases unfinished."""
    name, url = two_schemas(tmp, pg_cluster, select, schema)
    if select == "PGOPTIONS":
        monkeypatch.setenv("PGOPTIONS", S2["PGOPTIONS"])
    go = os.path.join(str(tmp), "go")
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained",
                           env={"ROGUE_GO": go})
    try:
        sup.wait_ready(timeout=60)
        wait_for(lambda: sql(url, "SELECT count(*) FROM %s.attempts" % ident(schema))
                 == [(2,)], what="both phases leased")
        if select == "database":
            pg_cluster.psql('ALTER DATABASE "%s" RESET search_path' % name)
        before = public_touches(url)
        sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                 " current_database() AND application_name LIKE 'autopack-supervisor%%'")
        wait_for(lambda: "connected to %s again" % url in sup.stderr()
                 or sup.proc.poll() is not None, what="the connection made again")
        open(go, "w").close()
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        open(go, "w").close()
        sup.kill()
    assert sql(url, "SELECT state, count(*) FROM %s.phases GROUP BY state" % ident(schema)) \
        == [("COMPLETE", 2)]
    assert sql(url, "SELECT state FROM %s.supervisors" % ident(schema)) == [("stopped",)]
    assert_public_untouched(url, before)


def test_the_report_of_a_wait_reads_no_schema_before_pg_catalog(tmp, pg_cluster):
    """The connection that reads what a statement waits for uses the schema opened too,
    so that pg_catalog answers for the catalog views it reads: a view public.pg_locks,
    which a search_path "public, pg_catalog" set for the role would put first, must not
    answer for it."""
    name, url = two_schemas(tmp, pg_cluster, "database")
    pg_cluster.psql("CREATE VIEW public.pg_locks AS SELECT * FROM pg_catalog.pg_locks"
                    " WHERE false", dbname=name)
    pg_cluster.psql('ALTER ROLE autopack IN DATABASE "%s" SET search_path = s2, public,'
                    ' pg_catalog' % name)
    try:
        err = sigterm_a_start_behind_a_lock(tmp, url, "phases", lambda proxy: None)
    finally:
        pg_cluster.psql('ALTER ROLE autopack IN DATABASE "%s" RESET search_path' % name)
    line = [x for x in err.splitlines() if "has not answered" in x][0]
    assert "it waits for AccessShareLock on table phases" in line, line
