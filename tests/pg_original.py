"""The Python original's database on PostgreSQL: its tables made by SQLAlchemy (Debian's
python3-sqlalchemy, as the original makes them) from the schema the original really
creates (tests/data/autopack-py-sqlite-schema.sql, reflected into generic types), filled
with the rows of tests/legacy_db.py in the original's formats, and read back the way the
original reads them."""
import datetime
import os
import sqlite3

import pytest

import legacy_db
import pg_cluster

SCHEMA = os.path.join(os.path.dirname(__file__), "data", "autopack-py-sqlite-schema.sql")


def engine(url):
    pytest.importorskip("sqlalchemy")
    import original_reader
    return original_reader.engine(url)


def original_schema_on(url):
    """Create the original's tables at url the way SQLAlchemy does, from its SQLite
    schema reflected into generic types."""
    sa = pytest.importorskip("sqlalchemy")
    lite = sa.create_engine("sqlite://")
    with lite.begin() as con:
        con.connection.executescript(open(SCHEMA).read())
    md = sa.MetaData()
    md.reflect(bind=lite)
    for table in md.tables.values():
        for col in table.columns:
            col.type = col.type.as_generic()
    pg = engine(url)
    md.create_all(pg)
    pg.dispose()


# The state columns the original declares as Python enums, with each enum's members in
# declaration order. On PostgreSQL SQLAlchemy makes each a native ENUM type named after
# the enum class in lower case; on SQLite (the schema the rows above come from) it makes
# them VARCHAR.
NATIVE_ENUMS = (
    ("runs", "state", "runstate", (
        "QUEUED", "PLAN_BOOTSTRAP", "RUN_CREATED", "PHASE_QUEUEING", "PHASE_EXECUTION",
        "GATE", "CI_RUNNING", "SNAPSHOT_CREATED", "DONE_SUCCESS",
        "DONE_FAILED_BUDGET_EXHAUSTED", "DONE_FAILED_POLICY_VIOLATION",
        "DONE_FAILED_REQUIRES_HUMAN_REVIEW", "DONE_FAILED_ENVIRONMENT")),
    ("tiers", "state", "tierstate", ("PENDING", "IN_PROGRESS", "COMPLETE", "FAILED", "SKIPPED")),
    ("phases", "state", "phasestate", (
        "QUEUED", "EXECUTING", "GATE", "CI_RUNNING", "COMPLETE", "FAILED", "SKIPPED")),
)


def native_enums(url):
    """Make the original's state columns at url the native ENUM types SQLAlchemy makes on
    PostgreSQL, keeping their values."""
    con = pg_cluster.connect(url)
    try:
        with con.cursor() as cur:
            for table, col, name, members in NATIVE_ENUMS:
                cur.execute("CREATE TYPE %s AS ENUM (%s)" % (
                    name, ", ".join("'%s'" % m for m in members)))
                cur.execute('ALTER TABLE "%s" ALTER COLUMN "%s" TYPE %s USING "%s"::%s'
                            % (table, col, name, col, name))
    finally:
        con.close()


def column_types(url):
    """{(table, column): type name} of the original's state columns at url."""
    return {(t, c): pg_cluster.query(
        url, "SELECT udt_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name = ? AND column_name = ?", t, c)[0][0] for t, c, _, _ in NATIVE_ENUMS}


def _types(con):
    with con.cursor() as cur:
        cur.execute("SELECT table_name, column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = 'public'")
        return {(t, c): d for t, c, d in cur.fetchall()}


def copy_rows(sqlite_path, url):
    """Copy every row of the SQLite database into the same tables at url, booleans as
    booleans and text as the server parses it, then move each serial key's sequence past
    the rows copied, as the original's inserts would have left it."""
    lite = sqlite3.connect(sqlite_path)
    con = pg_cluster.connect(url)
    types = _types(con)
    try:
        with con.cursor() as cur:
            for (table,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                         " ORDER BY rowid").fetchall():
                cur_l = lite.execute('SELECT * FROM "%s"' % table)
                cols = [d[0] for d in cur_l.description]
                for row in cur_l.fetchall():
                    vals = [bool(v) if v is not None and types[(table, c)] == "boolean"
                            else v for c, v in zip(cols, row)]
                    cur.execute('INSERT INTO "%s" (%s) VALUES (%s)' % (
                        table, ", ".join('"%s"' % c for c in cols),
                        ", ".join(["%s"] * len(cols))), vals)
            cur.execute("SELECT table_name, column_name FROM information_schema.columns"
                        " WHERE table_schema = 'public' AND column_default LIKE 'nextval%'")
            for table, col in cur.fetchall():
                cur.execute("SELECT setval(pg_get_serial_sequence('\"%s\"', '%s'),"
                            " coalesce(max(\"%s\"), 0) + 1, false) FROM \"%s\""
                            % (table, col, col, table))
    finally:
        con.close()
        lite.close()


def build_original_on(url, tmp):
    """The original's database at url, holding the rows legacy_db.build_original makes;
    returns what build_original returns."""
    path = os.path.join(str(tmp), "original-rows.db")
    info = legacy_db.build_original(path)
    original_schema_on(url)
    copy_rows(path, url)
    os.unlink(path)
    return info


def key_of(table):
    return {"runs": "id", "token_estimation_v2_events": "event_id"}.get(table, "id")


def dump(url, original=None):
    """Every row of the original's tables, original columns only, keyed by table: what the
    Python side reads. `original` (a previous dump's column lists) picks the columns."""
    out = {}
    for t in legacy_db.ORIGINAL_TABLES:
        if original:
            cols = original[t]["columns"]
        else:
            cols = [c for (c,) in pg_cluster.query(
                url, "SELECT column_name FROM information_schema.columns WHERE table_schema"
                " = 'public' AND table_name = ? ORDER BY ordinal_position", t)]
        rows = pg_cluster.query(url, 'SELECT %s FROM "%s" ORDER BY "%s"' % (
            ", ".join('"%s"' % c for c in cols), t, key_of(t)))
        out[t] = {"columns": cols, "rows": [list(r) for r in rows]}
    return out


def read_everything(url):
    """Load every row of every table with SQLAlchemy's reflected types, as the original
    does; return {table: rows}. Checks that every timestamp is a naive datetime and every
    boolean a bool."""
    sa = pytest.importorskip("sqlalchemy")
    eng = engine(url)
    md = sa.MetaData()
    md.reflect(bind=eng)
    out = {}
    with eng.connect() as conn:
        for name, t in md.tables.items():
            rows = conn.execute(sa.select(t)).fetchall()
            for row in rows:
                for c, v in zip(t.columns, row):
                    if v is None:
                        continue
                    if isinstance(c.type, sa.DateTime):
                        assert isinstance(v, datetime.datetime) and v.tzinfo is None, \
                            (name, c.name, v)
                    if isinstance(c.type, sa.Boolean):
                        assert isinstance(v, bool), (name, c.name, v)
            out[name] = rows
    eng.dispose()
    return out


def pg_dump(url):
    """The whole database (schema and rows) as pg_dump prints it, without the random key
    of its \\restrict lines: equal dumps, equal databases."""
    import subprocess
    proc = subprocess.run([os.path.join(pg_cluster.PG_BIN, "pg_dump"), "--no-owner", url],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return "".join(line for line in proc.stdout.splitlines(True)
                   if not line.startswith(("\\restrict ", "\\unrestrict ")))
