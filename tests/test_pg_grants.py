"""The privileges a role needs on autopack's tables when another role owns them, and the
GRANT statements the refusals suggest (docs/postgresql.md, "Creating the database"): the
statements run as shown whatever the schema's and the role's names hold (a '"' doubled,
as PostgreSQL quotes an identifier), and a writer is asked only for what it uses (DELETE
on the two tables it deletes from)."""
import os
import re
import subprocess
import urllib.parse

from conftest import binpath, ctl
from supervisor_helpers import make_plan, rogue_supervisor, sql

SUPERVISOR_ENV = dict(os.environ, ANTHROPIC_API_KEY="x", OPENAI_API_KEY="x")


def ident(name):
    """`name` quoted as an SQL identifier."""
    return '"%s"' % name.replace('"', '""')


def role_url(pg_cluster, role, name):
    return "postgresql://%s@127.0.0.1:%d/%s" % (urllib.parse.quote(role, safe=""),
                                                pg_cluster.port, name)


def initialised(tmp, url):
    """The empty database at `url` made an autopack database holding one run of two
    phases."""
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r
    r = ctl("--db", url, "run", "import", make_plan(os.path.join(str(tmp), "plan.json"), 1,
                                                    1, 2))
    assert r.rc == 0, r


def schema_db(tmp, pg_cluster, schema):
    """A database whose search_path is `schema`, holding autopack's tables there (made by
    the owner, autopack) with a plan of one run of two phases; its name."""
    name = pg_cluster.new_database()
    pg_cluster.psql("CREATE SCHEMA %s" % ident(schema), dbname=name)
    pg_cluster.psql("ALTER DATABASE %s SET search_path = %s" % (ident(name), ident(schema)))
    url = pg_cluster.url(name)
    initialised(tmp, url)
    assert sql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = ? AND tablename ="
               " 'meta'", schema) == [(1,)]
    return name


def dry_run(url):
    return subprocess.run([binpath("autopack-supervisor"), "--db", url, "--dry-run",
                           "--exit-when-drained", "--workers", "1"],
                          capture_output=True, text=True, timeout=120, env=SUPERVISOR_ENV)


def test_the_grants_suggested_run_whatever_the_names_hold(tmp, pg_cluster):
    """A role and a schema whose names hold a '"' (legal in PostgreSQL): the GRANT each
    refusal suggests (the role's reads, then its writes) must run as psql gets it from the
    message, and give what it says: the role reads, then the supervisor drains. Before,
    the names were put between '"' as they are, and each GRANT failed to parse
    (`syntax error at or near ...`)."""
    schema = 'sch"ema'
    name = schema_db(tmp, pg_cluster, schema)
    role = 'ro"le_' + name
    pg_cluster.psql("CREATE ROLE %s LOGIN" % ident(role))
    pg_cluster.psql("GRANT USAGE ON SCHEMA %s TO %s" % (ident(schema), ident(role)),
                    dbname=name)
    url = role_url(pg_cluster, role, name)

    r = dry_run(url)
    assert r.returncode == 1 and "has no privilege on autopack's tables" in r.stderr, r.stderr
    m = re.search(r"to read: (GRANT SELECT ON ALL TABLES IN SCHEMA [^;]*);", r.stderr)
    assert m and m.group(1) == "GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s" % (
        ident(schema), ident(role)), r.stderr
    pg_cluster.psql(m.group(1), dbname=name)
    r = ctl("--db", url, "session", "list")
    assert r.rc == 0, r

    r = dry_run(url)
    assert r.returncode == 1 and "may not write autopack's tables" in r.stderr, r.stderr
    m = re.search(r"grant what a writer needs \((GRANT .*)\), or connect as autopack",
                  r.stderr)
    assert m, r.stderr
    pg_cluster.psql(m.group(1), dbname=name)
    r = dry_run(url)
    assert r.returncode == 0, r.stderr
    assert sql(pg_cluster.url(name), "SELECT count(*) FROM attempts") == [(2,)]


def test_a_read_only_role_of_a_quoted_name_is_told_a_reset_that_runs(tmp, pg_cluster):
    """default_transaction_read_only set for a role whose name holds a '"': the ALTER ROLE
    the refusal suggests must run as shown, and the supervisor then starts."""
    name = pg_cluster.new_database()
    initialised(tmp, pg_cluster.url(name))
    role = 'wr"iter_' + name
    pg_cluster.psql("CREATE ROLE %s LOGIN" % ident(role))
    pg_cluster.psql("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO"
                    " %s; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %s"
                    % (ident(role), ident(role)), dbname=name)
    pg_cluster.psql("ALTER ROLE %s SET default_transaction_read_only = on" % ident(role))
    role_db = role_url(pg_cluster, role, name)
    r = dry_run(role_db)
    m = re.search(r"to write, connect as a role that may, or run (ALTER ROLE .*"
                  r" RESET default_transaction_read_only)", r.stderr)
    assert r.returncode == 1 and m, r.stderr
    pg_cluster.psql(m.group(1))
    r = dry_run(role_db)
    assert r.returncode == 0, r.stderr


def exact_role(tmp, pg_cluster, prefix, revoke=None):
    """A database made an autopack database by its owner (one run of two phases), and a
    role named `prefix` + its name given what a writer uses of autopack's tables: SELECT,
    INSERT and UPDATE on every table, DELETE on the two it deletes from, USAGE on the
    sequences; less the privilege `revoke` ("DELETE ON llm_usage_events"), if given.
    Returns (database name, the owner's URL, the role, the role's URL)."""
    name = pg_cluster.new_database()
    owner = pg_cluster.url(name)
    initialised(tmp, owner)
    role = prefix + name
    pg_cluster.psql("CREATE ROLE %s LOGIN" % ident(role))
    pg_cluster.psql("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO %s;"
                    " GRANT DELETE ON llm_usage_events, supervisor_commands TO %s;"
                    " GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %s"
                    % (ident(role), ident(role), ident(role)), dbname=name)
    if revoke is not None:
        pg_cluster.psql("REVOKE %s FROM %s" % (revoke, ident(role)), dbname=name)
    return name, owner, role, role_url(pg_cluster, role, name)


def test_a_writer_granted_delete_only_where_it_deletes_drains(tmp, pg_cluster):
    """A role granted SELECT, INSERT and UPDATE on autopack's tables, DELETE on
    llm_usage_events and supervisor_commands alone (the only tables autopack deletes
    from) and USAGE on the sequences: the supervisor must start and drain, and a command
    sent through the database (watch, whose command is deleted once answered) must work.
    Before, every writer refused it (`it lacks DELETE on table attempts`), DELETE being
    asked on every table."""
    _, owner, _, url = exact_role(tmp, pg_cluster, "exact_")
    go = os.path.join(str(tmp), "go")
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained",
                           env={"ROGUE_GO": go})
    try:
        sup.wait_ready(timeout=60)
        [(sid,)] = sql(owner, "SELECT supervisor_id FROM supervisors")
        r = ctl("--db", url, "watch", "--count", 1, "--json", "--supervisor", sid)
        assert r.rc == 0, r
        assert sql(owner, "SELECT count(*) FROM supervisor_commands") == [(0,)]
        open(go, "w").close()
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        open(go, "w").close()
        sup.kill()
    assert sql(owner, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 2)]


def test_a_writer_without_delete_where_it_deletes_is_refused(tmp, pg_cluster):
    """The same role without DELETE on llm_usage_events is refused by the supervisor,
    naming it, before anything is written; the GRANT suggested gives DELETE on the two
    tables alone, and with it made the supervisor drains."""
    name, owner, role, url = exact_role(tmp, pg_cluster, "nodelete_",
                                        "DELETE ON llm_usage_events")
    r = dry_run(url)
    assert r.returncode == 1, r.stderr
    assert "it lacks DELETE on table llm_usage_events; nothing was written" in r.stderr, \
        r.stderr
    grant = ('GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA "public" TO "%s"; GRANT'
             ' DELETE ON TABLE "public"."llm_usage_events", "public"."supervisor_commands"'
             ' TO "%s"; GRANT USAGE ON ALL SEQUENCES IN SCHEMA "public" TO "%s"'
             % (role, role, role))
    assert grant in r.stderr, r.stderr
    assert sql(owner, "SELECT count(*) FROM supervisors") == [(0,)]
    pg_cluster.psql(grant, dbname=name)
    r = dry_run(url)
    assert r.returncode == 0, r.stderr


def test_a_writer_without_a_privilege_on_the_fleets_tables_is_refused_first(tmp, pg_cluster):
    """The fleet's tables (supervisors, supervisor_commands, supervisor_command_results,
    which a PostgreSQL database alone holds) are asked about with the others: a role
    granted all but INSERT on supervisors is refused naming it, before anything is
    written. Before, they were not asked about, and the supervisor failed as it registered
    (`registering this supervisor: permission denied for table supervisors`)."""
    _, owner, _, url = exact_role(tmp, pg_cluster, "nofleet_", "INSERT ON supervisors")
    r = dry_run(url)
    assert r.returncode == 1, r.stderr
    assert "it lacks INSERT on table supervisors; nothing was written" in r.stderr, r.stderr
    assert "permission denied" not in r.stderr, r.stderr
    assert sql(owner, "SELECT count(*) FROM drain_sessions") == [(0,)]


def test_the_tables_asked_for_delete_are_those_the_store_deletes_from():
    """The tables a writer is asked DELETE on (store_pg_deleted) are those the store's
    statements delete from: a DELETE added elsewhere would fail for a role granted
    exactly what the check asks."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common", "store")
    deleted = set()
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith((".c", ".h")):
                with open(os.path.join(folder, f)) as src:
                    deleted |= set(re.findall(r'"DELETE FROM (\w+)', src.read()))
    with open(os.path.join(root, "pg", "store_pg_writable.c")) as src:
        asked = re.search(r'store_pg_deleted\[\] = "([^"]*)"', src.read()).group(1)
    assert deleted == set(asked.split(",")) == {"llm_usage_events", "supervisor_commands"}


def test_db_init_by_a_role_without_create_on_the_schema_names_the_grant(tmp, pg_cluster):
    """`db init` by a role that may not create tables in the schema (PostgreSQL 15 gives
    no role but the database's owner CREATE on public; a quoted schema and role here) is
    refused before anything is written, naming the role, the schema, its owner and the
    GRANT that gives it CREATE, which runs as psql gets it from the message; then `db
    init` works. Before, it said only `creating the schema: permission denied for schema
    public`."""
    schema = 'sch"ema'
    name = pg_cluster.new_database()
    pg_cluster.psql("CREATE SCHEMA %s" % ident(schema), dbname=name)
    pg_cluster.psql("ALTER DATABASE %s SET search_path = %s" % (ident(name), ident(schema)))
    role = 'cre"ator_' + name
    pg_cluster.psql("CREATE ROLE %s LOGIN" % ident(role))
    pg_cluster.psql("GRANT USAGE ON SCHEMA %s TO %s" % (ident(schema), ident(role)),
                    dbname=name)
    url = role_url(pg_cluster, role, name)
    r = ctl("--db", url, "db", "init")
    m = re.search(r"role %s may not create tables in schema %s \(owned by role autopack\);"
                  r" nothing was created: run db init as autopack, or grant the role CREATE"
                  r" on the schema \((GRANT CREATE ON SCHEMA [^)]*)\)"
                  % (re.escape(role), re.escape(schema)), r.err)
    assert r.rc == 2 and m, r
    assert m.group(1) == "GRANT CREATE ON SCHEMA %s TO %s" % (ident(schema), ident(role))
    assert sql(pg_cluster.url(name), "SELECT count(*) FROM pg_tables WHERE schemaname = ?",
               schema) == [(0,)]
    pg_cluster.psql(m.group(1), dbname=name)
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r


def creator_of(pg_cluster, name, schema):
    """A role that may use and create in `schema` of database `name` (the database's
    search_path), granted nothing on the tables there; its URL."""
    role = "creator_" + name
    pg_cluster.psql("CREATE ROLE %s LOGIN" % ident(role))
    pg_cluster.psql("GRANT USAGE, CREATE ON SCHEMA %s TO %s" % (ident(schema), ident(role)),
                    dbname=name)
    return role_url(pg_cluster, role, name)


def test_db_init_in_a_schema_whose_tables_the_role_cannot_see_is_refused(tmp, pg_cluster):
    """`db init` by a role in a schema that holds tables of another role on which it has
    no privilege (so that information_schema.tables lists none of them to it) is refused,
    naming them and saying so, and nothing is created. Before, the schema was taken for
    empty: with a table `notes` autopack's tables were created beside it; with a table
    `runs` the init failed on `relation "runs" already exists`."""
    name = pg_cluster.new_database()
    schema = "app"
    pg_cluster.psql("CREATE SCHEMA %s" % schema, dbname=name)
    pg_cluster.psql("ALTER DATABASE %s SET search_path = %s" % (ident(name), schema))
    url = creator_of(pg_cluster, name, schema)
    for table in ("notes", "runs"):
        pg_cluster.psql("CREATE TABLE %s.%s (id int)" % (schema, table), dbname=name)
        r = ctl("--db", url, "db", "init")
        assert r.rc == 2, r
        assert ("schema app already holds 1 table (%s (on which this role has no privilege))"
                " but no autopack meta table; db init needs an empty schema" % table) in r.err, r
        assert sql(pg_cluster.url(name), "SELECT tablename FROM pg_tables WHERE schemaname"
                   " = ?", schema) == [(table,)]
        pg_cluster.psql("DROP TABLE %s.%s" % (schema, table), dbname=name)
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r


def test_db_init_beside_tables_of_other_schemas_creates_its_own(tmp, pg_cluster):
    """Tables of other schemas, the Python original's and another autopack database's
    among them, seen or not by the role, are no reason to refuse: `db init` checks the
    schema it creates the tables in (the search_path's first), and the other schemas are
    left as they were."""
    name = pg_cluster.new_database()
    pg_cluster.psql("CREATE SCHEMA app", dbname=name)
    pg_cluster.psql("CREATE SCHEMA other", dbname=name)
    pg_cluster.psql("CREATE TABLE other.runs (id text); CREATE TABLE other.secret (id int)",
                    dbname=name)
    pg_cluster.psql("GRANT USAGE ON SCHEMA other TO PUBLIC; GRANT SELECT ON other.runs TO"
                    " PUBLIC", dbname=name)
    initialised(tmp, pg_cluster.url(name))
    pg_cluster.psql("ALTER DATABASE %s SET search_path = app" % ident(name))
    url = creator_of(pg_cluster, name, "app")
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r
    tables = sql(pg_cluster.url(name), "SELECT schemaname, count(*) FROM pg_tables"
                 " WHERE schemaname IN ('app', 'other', 'public') GROUP BY schemaname")
    public = dict(tables)["public"]
    assert dict(tables) == {"app": public, "other": 2, "public": public}, tables


def test_db_adopt_of_tables_the_role_cannot_see_names_them_and_their_owner(tmp, pg_cluster):
    """The original's runs, tiers and phases owned by another role that granted nothing:
    `db adopt` (and its survey, `--dry-run`) by this role names them, their owner and
    who may adopt them, and changes nothing. Before, information_schema listed none of
    them to the role, and adoption said the database had no runs, tiers or phases table:
    `not a Python-Autopack database`."""
    name = pg_cluster.new_database()
    pg_cluster.psql("CREATE TABLE runs (id text PRIMARY KEY, state text); CREATE TABLE"
                    " tiers (id serial PRIMARY KEY); CREATE TABLE phases (id serial PRIMARY"
                    " KEY)", dbname=name)
    url = creator_of(pg_cluster, name, "public")
    for args in (("db", "adopt", "--dry-run"), ("db", "adopt")):
        r = ctl("--db", url, *args)
        assert r.rc == 2, r
        assert ("role creator_%s has no privilege on tables phases, runs, tiers in schema"
                " public (owned by role autopack), which db adopt needs; nothing was changed:"
                " run db adopt as autopack" % name) in r.err, r
    assert sql(pg_cluster.url(name), "SELECT tablename FROM pg_tables WHERE schemaname ="
               " 'public' ORDER BY 1") == [("phases",), ("runs",), ("tiers",)]
    r = ctl("--db", pg_cluster.url(name), "db", "adopt", "--dry-run")
    assert "no privilege" not in r.err and "lacks column" in r.err, r
