"""The Python original's view of a database, through an independent reader: Debian's
python3-sqlalchemy (1.4, the version the original's schema was made with) reflecting the
tables and loading every row with its DateTime and Boolean types, and writing rows the way
the original's ORM writes them (every Python-side value, timestamps as datetimes)."""
import datetime
import json
import sqlite3
import warnings

import sqlalchemy as sa

# The original's DECIMAL columns (learned_rules, cleanup_candidates) make SQLAlchemy warn
# about SQLite's floats; those tables are read like the others (the filter is set where
# they are read: pytest resets filters set at import for each test).
DECIMAL_WARNING = ".*Decimal objects natively.*"

# autopack's own timestamp and boolean columns, declared TEXT / INTEGER in its schema: read
# with the types the original would give them.
TIME_COLUMNS = {"created_at", "updated_at", "started_at", "completed_at", "ended_at",
                "timestamp", "at", "last_attempt_timestamp"}
BOOL_COLUMNS = {"dry_run", "reached_llm_boundary", "success", "ok", "active",
                "is_doctor_call", "truncated", "is_truncated_output", "underestimated",
                "quality_blocked"}


def engine(path):
    """An engine on the SQLite file at `path`, or on the PostgreSQL database of a
    postgresql:// URL (through psycopg2, as the original connects)."""
    if path.startswith("postgresql://"):
        return sa.create_engine(path.replace("postgresql://", "postgresql+psycopg2://"))
    return sa.create_engine("sqlite:///" + path)


def reflect(eng):
    """Every table, with DATETIME/BOOLEAN columns (and autopack's own timestamp and
    boolean columns) typed as the original types them."""
    md = sa.MetaData()
    md.reflect(bind=eng)
    for t in md.tables.values():
        for c in t.columns:
            declared = str(c.type).upper()
            if declared in ("DATETIME", "TIMESTAMP") or c.name in TIME_COLUMNS:
                c.type = sa.DateTime()
            elif declared == "BOOLEAN" or c.name in BOOL_COLUMNS:
                c.type = sa.Boolean()
    return md


def read_everything(path):
    """Load every row of every table with the original's types; return {table: rows}.
    Raises where the original could not read a value; also checks that every datetime is
    naive (as the original's are) and every boolean cell holds 0 or 1."""
    eng = engine(path)
    md = reflect(eng)
    out = {}
    with eng.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=sa.exc.SAWarning, message=DECIMAL_WARNING)
        for name, t in md.tables.items():
            rows = conn.execute(sa.select(t)).fetchall()
            for row in rows:
                for c, v in zip(t.columns, row):
                    if isinstance(c.type, sa.DateTime) and v is not None:
                        assert isinstance(v, datetime.datetime), (name, c.name, v)
                        assert v.tzinfo is None, (name, c.name, v)
            out[name] = rows
    eng.dispose()
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        for name, t in md.tables.items():
            for c in t.columns:
                if isinstance(c.type, sa.Boolean):
                    bad = con.execute('SELECT count(*) FROM "%s" WHERE "%s" IS NOT NULL'
                                      ' AND "%s" NOT IN (0, 1)' % (name, c.name, c.name))
                    assert bad.fetchone()[0] == 0, (name, c.name)
    finally:
        con.close()
    return out


def utcnow():
    """Now, as the original's models take it: naive UTC."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def insert_phase(path, run_id, phase_id, deliverable):
    """Add a tier and a QUEUED phase to run `run_id` as the original's ORM would (`path`
    as for engine())."""
    eng = engine(path)
    md = reflect(eng)
    tiers, phases = md.tables["tiers"], md.tables["phases"]
    now = utcnow()
    with eng.begin() as conn:
        index = conn.execute(sa.select(sa.func.coalesce(sa.func.max(tiers.c.tier_index) + 1, 0))
                             .where(tiers.c.run_id == run_id)).scalar()
        tier_pk = conn.execute(tiers.insert().values(
            tier_id="T%d" % (index + 1), run_id=run_id, tier_index=index, name="added",
            state="PENDING", max_major_issues_tolerated=0, tokens_used=0, ci_runs_used=0,
            minor_issues_count=0, major_issues_count=0, cleanliness="clean", created_at=now,
            updated_at=now)).inserted_primary_key[0]
        conn.execute(phases.insert().values(
            phase_id=phase_id, run_id=run_id, tier_id=tier_pk, phase_index=0,
            name="added by the original", description="Write %s." % deliverable,
            state="QUEUED", task_category="implementation", complexity="low",
            scope=json.dumps({"paths": [], "deliverables": [deliverable]}),
            builder_attempts=0, auditor_attempts=0, tokens_used=0, minor_issues_count=0,
            major_issues_count=0, issue_state="no_issues", quality_blocked=False,
            retry_attempt=0, revision_epoch=0, escalation_level=0, created_at=now,
            updated_at=now))
    eng.dispose()
    return now


def recent(path, table, column, cutoff):
    """The original's text comparison: rows with column >= cutoff (a datetime bound as the
    original binds it), as lists."""
    eng = engine(path)
    md = reflect(eng)
    t = md.tables[table]
    with eng.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c[column] >= cutoff)).fetchall()
    eng.dispose()
    return rows


def newest(path, table, n):
    """The original's ORDER BY updated_at DESC, first n rows."""
    eng = engine(path)
    md = reflect(eng)
    t = md.tables[table]
    with eng.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.updated_at.desc()).limit(n)).fetchall()
    eng.dispose()
    return rows
