"""Settings and objects an operator's database may hold against autopack: timeouts of the
role or the database, a search_path that puts another schema's functions before
pg_catalog's, and a database in SQL_ASCII holding bytes that are not UTF-8
(docs/postgresql.md, "Settings of the role and the database")."""
import json
import os
import subprocess

from conftest import binpath, ctl, preload
from pg_cluster import connect
from supervisor_helpers import make_plan, sql, wait_for
from test_fleet import new_pg_db

# The advisory lock an offline command's write transaction takes (db_pg.c).
WRITE_LOCK_KEY = 0x4150574C


def initialised(url):
    """The empty database at `url` made an autopack database; url."""
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r
    return url


def test_a_lock_timeout_of_the_database_cancels_no_commands_wait(tmp, pg_cluster):
    """The database's lock_timeout made 50 ms, and another writer holding the writers'
    lock: `run import` must wait for it, as long as it is held, and import once it is let
    go. Before, its wait was cancelled after 50 ms, and the command, after sending it again
    a few times, failed (`starting the import: canceling statement due to lock timeout`,
    exit 2)."""
    name = pg_cluster.new_database()
    url = initialised(pg_cluster.url(name))
    pg_cluster.psql("ALTER DATABASE \"%s\" SET lock_timeout = '50ms'" % name)
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 3, 1, 2)
    holder = connect(url)
    holder.autocommit = False
    watch = connect(url)
    proc = None
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        proc = subprocess.Popen([binpath("autopack-ctl"), "--db", url, "run", "import", plan],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def waited():
            """Whether one statement of the import has waited for a lock for 1 s (a
            statement cancelled and sent again starts its wait anew)."""
            with watch.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                            " 'autopack-ctl' AND wait_event_type = 'Lock' AND"
                            " clock_timestamp() - query_start > interval '1 second'")
                return cur.fetchone()[0] > 0

        wait_for(lambda: proc.poll() is not None or waited(), 60,
                 what="run import waiting for the writers' lock")
        holder.rollback()
        out, err = proc.communicate(timeout=120)
    finally:
        holder.close()
        watch.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "lock timeout" not in err, (out, err)
    assert sql(url, "SELECT count(*) FROM runs") == [(3,)]


def test_an_idle_in_transaction_timeout_of_the_database_ends_no_commands_session(
        tmp, pg_cluster):
    """The database's idle_in_transaction_session_timeout made 100 ms, and `run import`
    held 300 ms after each statement it sends (pq-shim.so), as a loaded machine holds it:
    the import must succeed. Before, the server ended its session between two writes of
    its transaction (`terminating connection due to idle-in-transaction timeout`, exit 2),
    as it did on an idle machine with 1 ms."""
    name = pg_cluster.new_database()
    url = initialised(pg_cluster.url(name))
    pg_cluster.psql("ALTER DATABASE \"%s\" SET idle_in_transaction_session_timeout = '100ms'"
                    % name)
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 2, 1, 1)
    r = ctl("--db", url, "run", "import", plan, env=preload("pq-shim.so"))
    assert r.rc == 0 and "idle-in-transaction" not in r.err, r
    assert sql(url, "SELECT count(*) FROM runs") == [(2,)]


def test_a_function_put_before_pg_catalogs_stands_in_for_none(tmp, pg_cluster):
    """A public.clock_timestamp() that returns 2001, and the database's search_path
    "public, pg_catalog" (pg_catalog is searched first only when the path does not name
    it). A supervisor's fleet rows must carry the server's clock. Before, its heartbeats,
    start and end were all 2001 (so a silent supervisor was never older than its lease, and
    never declared lost)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, tiers=1, phases=2)
    sql(url, "CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE sql"
             " AS $$ SELECT timestamptz '2001-01-01 00:00:00+00' $$")
    pg_cluster.psql('ALTER DATABASE "%s" SET search_path = public, pg_catalog' % name)
    r = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--workers", "1",
                        "--dry-run", "--exit-when-drained", "--control",
                        os.path.join(str(tmp), "c.sock")], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, ANTHROPIC_API_KEY="x",
                                             OPENAI_API_KEY="x"))
    assert r.returncode == 0, r.stderr
    rows = sql(url, "SELECT started_at > '2020-01-01', heartbeat_at > '2020-01-01',"
                    " ended_at > '2020-01-01' FROM supervisors")
    assert rows == [(True, True, True)], rows


BAD = b"a\xffb"  # not UTF-8: shown as "a\ufffdb"


def test_bytes_that_are_not_utf8_in_an_sql_ascii_database_are_shown_not_fatal(
        tmp, pg_cluster):
    """A database in SQL_ASCII (which autopack accepts: it stores the bytes as they come)
    where another program wrote a byte that is not UTF-8 into a failed phase's reason. As
    on SQLite, `failed --json` must show the phase with U+FFFD for the byte, and a
    supervisor drain the database. Before, the server refused to send the row as UTF-8:
    `failed` exited 2 (`invalid byte sequence for encoding "UTF8": 0xff`) and the
    supervisor could not start (`eligible phases: invalid byte sequence ...`, exit 1)."""
    name = "ascii_%d" % os.getpid()
    pg_cluster.psql("CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
                    " TEMPLATE template0" % name)
    try:
        url = new_pg_db(tmp, pg_cluster.url(name), runs=2, tiers=1, phases=2)
        con = connect(url)
        try:
            with con.cursor() as cur:
                cur.execute("SET client_encoding = 'SQL_ASCII'")
                cur.execute("UPDATE phases SET state = 'FAILED', last_failure_reason ="
                            " convert_from(%s, 'SQL_ASCII'), name = convert_from(%s,"
                            " 'SQL_ASCII') WHERE run_id = 'run-000' AND phase_id = 'p0-0'",
                            (BAD, BAD))
        finally:
            con.close()
        p = subprocess.run([binpath("autopack-ctl"), "--db", url, "failed", "--json"],
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout.decode("utf-8"))
        [group] = doc["groups"]
        [phase] = group["phases"]
        assert (phase["run_id"], phase["phase_id"], phase["reason"]) == \
            ("run-000", "p0-0", "a\ufffdb"), phase
        r = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--workers", "1",
                            "--dry-run", "--exit-when-drained", "--control",
                            os.path.join(str(tmp), "c.sock")], capture_output=True,
                           timeout=120, env=dict(os.environ, ANTHROPIC_API_KEY="x",
                                                 OPENAI_API_KEY="x"))
        assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
        assert sql(url, "SELECT count(*) FROM attempts") == [(3,)]
    finally:
        pg_cluster.drop_database(name)


def test_every_commit_waits_for_its_flush_whatever_synchronous_commit(tmp, pg_cluster):
    """The database's synchronous_commit made off, and a trigger noting the setting of
    each transaction that writes a run or an event. A `run import`, and the events a
    supervisor commits on a connection made again (its server session ended by
    pg_terminate_backend), must be committed with synchronous_commit on. Before, both took
    the database's off: `run import` said "imported", and the supervisor acknowledged
    events to its workers, which drop them, before the server had them on disk."""
    from test_pg_hostile_drain import held_supervisor
    name = pg_cluster.new_database()
    url = initialised(pg_cluster.url(name))
    sql(url, "CREATE TABLE probe (tbl TEXT, setting TEXT);"
             " CREATE FUNCTION note_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
             " INSERT INTO probe VALUES (TG_TABLE_NAME, current_setting('synchronous_commit'));"
             " RETURN NEW; END $$;"
             " CREATE TRIGGER note AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION"
             " note_sync(); CREATE TRIGGER note AFTER INSERT ON runs FOR EACH ROW EXECUTE"
             " FUNCTION note_sync()")
    pg_cluster.psql('ALTER DATABASE "%s" SET synchronous_commit = off' % name)
    r = ctl("--db", url, "run", "import", make_plan(os.path.join(str(tmp), "plan.json"), 1))
    assert r.rc == 0, r
    sup, go = held_supervisor(tmp, url, 8)
    try:
        sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                 " application_name LIKE 'autopack-supervisor%%'")
        wait_for(lambda: "info: connected to %s again" % url in sup.stderr(), 60,
                 what="the connection made again")
        open(go, "w").close()
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        sup.kill()
    assert sorted(set(sql(url, "SELECT tbl, setting FROM probe"))) == \
        [("events", "on"), ("runs", "on")], sup.stderr()


def test_a_role_without_privileges_on_the_tables_is_told_so(tmp, pg_cluster):
    """A role given no privilege on autopack's tables (owned by another role) connects:
    every command and the supervisor must say that this role may not use them, naming the
    owner and the GRANT that fixes it, and `db init` must create nothing. Before, each
    called the database "not an autopack database (no meta table)", and `db init` went on
    to create the tables, failing on the first (`permission denied for schema public`)."""
    name = pg_cluster.new_database()
    initialised(pg_cluster.url(name))
    role = "noprivs_" + name
    pg_cluster.psql('CREATE ROLE "%s" LOGIN' % role)
    url = "postgresql://%s@127.0.0.1:%d/%s" % (role, pg_cluster.port, name)
    said = ("role %s has no privilege on autopack's tables in schema public (owned by role "
            "autopack); nothing was changed: grant it the privileges it needs (to read: GRANT "
            "SELECT ON ALL TABLES IN SCHEMA \"public\" TO \"%s\"" % (role, role))
    for args in (["db", "check"], ["db", "init"], ["session", "list"]):
        r = ctl("--db", url, *args)
        assert r.rc == 2 and said in r.err and "no meta table" not in r.err, (args, r)
    r = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--dry-run"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ANTHROPIC_API_KEY="x", OPENAI_API_KEY="x"))
    assert r.returncode == 1 and said in r.stderr, r.stderr
    pg_cluster.psql('GRANT SELECT ON ALL TABLES IN SCHEMA public TO "%s"' % role, dbname=name)
    r = ctl("--db", url, "session", "list")
    assert r.rc == 0, r


def test_a_role_that_may_only_read_is_told_what_it_lacks_before_anything_is_written(
        tmp, pg_cluster):
    """A role granted SELECT on autopack's tables and nothing more (another role owns
    them): a supervisor and each command that writes must refuse to start, naming the
    privilege and the table it lacks and the GRANT that fixes it, having written nothing;
    reads go on, and with that GRANT made the supervisor drains. Before, the supervisor
    failed as it registered (`registering this supervisor: permission denied for table
    supervisors`), and `run import` with the server's `permission denied` too."""
    name = pg_cluster.new_database()
    owner_url = initialised(pg_cluster.url(name))
    r = ctl("--db", owner_url, "run", "import", make_plan(os.path.join(str(tmp), "plan.json"), 1))
    assert r.rc == 0, r
    other = os.path.join(str(tmp), "other.json")
    with open(os.path.join(str(tmp), "plan.json")) as f:
        doc = json.load(f)
    doc["runs"][0]["run_id"] = "other"
    with open(other, "w") as f:
        json.dump(doc, f)
    role = "reader_" + name
    pg_cluster.psql('CREATE ROLE "%s" LOGIN' % role)
    pg_cluster.psql('GRANT SELECT ON ALL TABLES IN SCHEMA public TO "%s"' % role, dbname=name)
    url = "postgresql://%s@127.0.0.1:%d/%s" % (role, pg_cluster.port, name)
    said = ("role %s may not write autopack's tables in schema public (owned by role"
            " autopack): it lacks INSERT on table " % role)
    grant = ("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA \"public\" TO \"%s\";"
             " GRANT DELETE ON TABLE \"public\".\"llm_usage_events\","
             " \"public\".\"supervisor_commands\" TO \"%s\"; GRANT USAGE ON ALL SEQUENCES IN"
             " SCHEMA \"public\" TO \"%s\"" % (role, role, role))
    supervisor = [binpath("autopack-supervisor"), "--db", url, "--dry-run",
                  "--exit-when-drained", "--workers", "1"]
    env = dict(os.environ, ANTHROPIC_API_KEY="x", OPENAI_API_KEY="x")
    r = subprocess.run(supervisor, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and said in r.stderr and grant in r.stderr, r.stderr
    assert "permission denied" not in r.stderr, r.stderr
    r = ctl("--db", url, "run", "import", other)
    assert r.rc == 2 and said in r.err and grant in r.err, r
    assert sql(owner_url, "SELECT count(*) FROM supervisors") == [(0,)]
    assert sql(owner_url, "SELECT count(*) FROM drain_sessions") == [(0,)]
    assert sql(owner_url, "SELECT id FROM runs") == [("run-000",)]
    r = ctl("--db", url, "session", "list")
    assert r.rc == 0, r
    pg_cluster.psql(grant, dbname=name)
    r = ctl("--db", url, "run", "import", other)
    assert r.rc == 0, r
    r = subprocess.run(supervisor, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr


def test_an_idle_session_timeout_of_the_database_ends_no_connection_as_it_is_set_up(
        tmp, pg_cluster):
    """The database's idle_session_timeout made 100 ms, and each process held 300 ms
    after each statement it sends (pq-shim.so), as a loaded machine holds it: `db check`,
    `run import` and a dry run by a supervisor must work. Before, the timeout was turned
    off by a statement of its own, sent once the connection's first settings were
    answered: the server, idle meanwhile, ended the session (`cannot connect: server
    closed the connection unexpectedly`, exit 2)."""
    name = pg_cluster.new_database()
    url = initialised(pg_cluster.url(name))
    pg_cluster.psql("ALTER DATABASE \"%s\" SET idle_session_timeout = '100ms'" % name)
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 1, 1, 1)
    r = ctl("--db", url, "run", "import", plan, env=preload("pq-shim.so"))
    assert r.rc == 0, r
    r = ctl("--db", url, "db", "check", env=preload("pq-shim.so"))
    assert r.rc == 0, r
    r = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--workers", "1",
                        "--dry-run", "--exit-when-drained", "--control",
                        os.path.join(str(tmp), "c.sock")], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, ANTHROPIC_API_KEY="x",
                                             OPENAI_API_KEY="x", **preload("pq-shim.so")))
    assert r.returncode == 0, r.stderr
    assert sql(url, "SELECT count(*) FROM attempts") == [(1,)]
