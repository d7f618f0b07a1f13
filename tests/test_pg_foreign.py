"""A PostgreSQL database that is not autopack's: the Python original's tables, made by
SQLAlchemy from the schema the original really creates (tests/data/
autopack-py-sqlite-schema.sql, reflected), with a row in them. Every command refuses it,
naming PostgreSQL, and changes nothing but `db adopt` (tests/test_pg_adopt.py)."""
import os

from conftest import ctl, run
from pg_original import original_schema_on
from supervisor_helpers import make_plan, rogue_supervisor, sql


def original_database_on(url):
    """The original's tables (tests/pg_original.py) with one run in them."""
    original_schema_on(url)
    sql(url, "INSERT INTO runs (id, state, created_at, updated_at, safety_profile, run_scope,"
        " token_cap, max_phases, max_duration_minutes, tokens_used, ci_runs_used,"
        " minor_issues_count, major_issues_count, promotion_eligible_to_main)"
        " VALUES ('legacy-run', 'RUN_CREATED', now(), now(), 'normal', 'multi_tier', 5000000,"
        " 25, 120, 0, 0, 0, 0, 'false')")


def snapshot(url):
    tables = sql(url, "SELECT table_name FROM information_schema.tables"
                 " WHERE table_schema = 'public' ORDER BY 1")
    return tables, sql(url, "SELECT id, state FROM runs")


def test_the_originals_postgresql_database_is_refused_and_left_unchanged(tmp, pg_url):
    original_database_on(pg_url)
    before = snapshot(pg_url)
    assert ("meta",) not in before[0] and ("phases",) in before[0]
    plan = make_plan(os.path.join(str(tmp), "plan.json"), runs=1, phases=1)
    for args in (["db", "check"], ["run", "import", plan], ["status"]):
        r = ctl("--db", pg_url, *args)
        assert r.rc == 2, (args, r)
        assert "PostgreSQL database but not an autopack database (no meta table): it has " \
            "the runs, tiers and phases tables of a Python-Autopack database, which " \
            "autopack-ctl db adopt --dry-run surveys" in r.err, (args, r)
        assert r.err.rstrip().endswith("; nothing was changed"), (args, r)
        assert "SQLite" not in r.err and "file" not in r.err, (args, r)
    r = ctl("--db", pg_url, "db", "init")
    assert r.rc == 2 and "already holds %d tables (ab_test_results" % len(before[0]) in r.err, r
    assert snapshot(pg_url) == before


def test_a_database_in_another_encoding_than_utf8_is_refused_naming_it(tmp, pg_cluster):
    """autopack wrote its UTF-8 text into a LATIN1 database as if it were LATIN1 (the
    client encoding defaulted to the database's): every other client, the original
    among them, read "cafÃ©" for "café", and autopack read the original's "é" as a byte
    that is not UTF-8 (its phase failed INVALID_JOB). Now text travels as UTF-8 and a
    database that cannot hold every character is refused before anything is written."""
    name = "latin1_%d" % os.getpid()
    pg_cluster.psql("CREATE DATABASE %s ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
                    " TEMPLATE template0" % name)
    try:
        url = pg_cluster.url(name)
        r = ctl("--db", url, "db", "init")
        assert r.rc == 2, r
        assert "the database %s has the encoding LATIN1; autopack writes UTF-8 text, which " \
            "it cannot hold in full: make a database with ENCODING 'UTF8'" % name in r.err, r
        assert sql(url, "SELECT count(*) FROM information_schema.tables"
                   " WHERE table_schema = 'public'") == [(0,)]
        r = run("autopack-supervisor", "--db", url, "--dry-run")
        assert r.rc == 1 and "has the encoding LATIN1" in r.err, r
    finally:
        pg_cluster.drop_database(name)


def test_a_phase_whose_attempt_count_is_at_the_top_of_its_type_is_drained(tmp, pg_url):
    """phases.builder_attempts at 2^31-1, the most its INTEGER holds (another program's
    row): the attempt after it is numbered 2^31 and the count stays (counting on was
    "integer out of range", every dispatch round failed, and the supervisor gave up on the
    database after 8 of them, exit 3, dry run or not)."""
    top = 2147483647
    assert ctl("--db", pg_url, "db", "init").rc == 0
    plan = make_plan(os.path.join(str(tmp), "plan.json"), runs=2, phases=1)
    assert ctl("--db", pg_url, "run", "import", plan).rc == 0
    sql(pg_url, "UPDATE phases SET builder_attempts = %d" % top)
    rows = "SELECT a.attempt_number, a.outcome, p.builder_attempts, p.state FROM attempts a" \
        " JOIN phases p USING (run_id, phase_id) ORDER BY a.attempt_id"
    r = run("autopack-supervisor", "--db", pg_url, "--workers", 1, "--dry-run",
            "--exit-when-drained", "--control", os.path.join(str(tmp), "dry.sock"), timeout=120)
    assert r.rc == 0, r
    assert sql(pg_url, rows) == [(top + 1, "dry_run", top, "QUEUED")] * 2
    sql(pg_url, "DELETE FROM attempts")
    sup = rogue_supervisor(tmp, pg_url, "good", "--workers", 1, "--exit-when-drained")
    try:
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
    assert sql(pg_url, rows) == [(top + 1, "success", top, "COMPLETE")] * 2
