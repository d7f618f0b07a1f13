"""autopack-ctl db adopt on the Python original's PostgreSQL database (its tables made by
SQLAlchemy, its rows in the original's formats: tests/pg_original.py): the same survey,
refusals and interoperability as the SQLite adoption (tests/test_adopt.py), in one
transaction, with the pg_dump command printed before anything changes."""
import json
import os
import sqlite3
import subprocess

import legacy_db
import pg_original
from pg_cluster import PG_BIN
from conftest import ctl
from supervisor_helpers import Standin, Supervisor, db_url, llm_supervisor, make_plan, sql

IN_FLIGHT = ("EXECUTING", "GATE", "CI_RUNNING")


def adopt(url, *args, env=None):
    r = ctl("--db", url, "db", "adopt", "--json", *args, env=env)
    return r, (json.loads(r.out) if r.out.strip() else None)


def expected_after_adopt(before, adopted_at):
    """The dump `before` with the documented changes: phases the original left in flight
    are QUEUED, updated at the adoption time."""
    out = json.loads(json.dumps(before))
    cols = out["phases"]["columns"]
    for row in out["phases"]["rows"]:
        if row[cols.index("state")] in IN_FLIGHT:
            row[cols.index("state")] = "QUEUED"
            row[cols.index("updated_at")] = adopted_at
    return out


def test_adopt_the_originals_postgresql_database_check_drain_and_read_back(tmp, pg_url):
    info = pg_original.build_original_on(pg_url, tmp)
    before = pg_original.dump(pg_url)
    in_flight = {(r, p) for r, p, s, _ in info["phases"] if s in IN_FLIGHT}
    assert len(in_flight) == 3

    r, j = adopt(pg_url)
    assert r.rc == 0, r
    assert j["ok"] and j["adopted"] and j["backup"] is None
    assert j["dump_command"].startswith("pg_dump ")

    # The identity: a new uuid, and the server's system identifier and database name.
    adopted_at, uuid, version, by, server = sql(
        pg_url, "SELECT created_at, db_uuid, schema_version, created_by, server_id FROM meta")[0]
    assert uuid == j["uuid"] and version == 5 and "adopted" in by
    live = sql(pg_url, "SELECT CAST(system_identifier AS TEXT) || '/' || current_database()"
               " FROM pg_control_system()")[0][0]
    assert server == live

    # Every original row is still there, with its values, but for the documented changes.
    assert pg_original.dump(pg_url, before) == expected_after_adopt(before, adopted_at)
    assert j["legacy_rows"] == {"runs": len(info["runs"]), "tiers": info["tiers"],
                                "phases": len(info["phases"]), "llm_usage_events": 6,
                                "token_estimation_v2_events": sum(
                                    1 for p in info["phases"] if p[2] == "COMPLETE")}
    assert j["legacy_data"]["executing_requeued"] == 3
    assert j["legacy_data"]["usage_without_split"] == 1
    assert {"meta", "attempts", "supervisors", "drain_sessions"} <= set(j["tables_created"])
    added = {(c["table"], c["column"]) for c in j["columns_added"]}
    assert {("runs", "workspace"), ("phases", "current_attempt_id"),
            ("llm_usage_events", "status"), ("token_estimation_v2_events", "attempt_id")} <= added
    assert j["indexes_skipped"] == []
    assert sql(pg_url, "SELECT DISTINCT status FROM llm_usage_events") == [("ok",)]
    for run_id, ws in sql(pg_url, "SELECT id, workspace FROM runs"):
        assert ws == os.path.join(str(tmp), "autopack-workspace", run_id)
        assert os.path.isdir(ws)

    r = ctl("--db", pg_url, "db", "check", "--json")
    assert r.rc == 0, r
    check = json.loads(r.out)
    assert check["database"]["uuid"] == uuid
    assert check["phases"]["by_state"]["EXECUTING"] == 0

    # The original's ORM adds a phase to the adopted database; a drain takes it too.
    import original_reader
    original_reader.insert_phase(pg_url, "build1-original", "added-1", "src/added.py")
    queued = set(sql(pg_url, "SELECT run_id, phase_id FROM phases WHERE state = 'QUEUED'"))
    assert ("build1-original", "added-1") in queued and in_flight <= queued
    sup = Supervisor(tmp, pg_url, "--workers", 2, "--dry-run", "--exit-when-drained")
    assert sup.wait(timeout=180) == 0, sup.stderr()
    visited = sql(pg_url, "SELECT run_id, phase_id FROM attempts")
    assert len(visited) == len(queued) and set(visited) == queued

    # The original reads every table back with its types, autopack's rows included.
    rows = pg_original.read_everything(pg_url)
    assert len(rows["phases"]) == len(info["phases"]) + 1
    assert len(rows["attempts"]) == len(queued)

    # Adopting again changes nothing: it is an autopack database now.
    dump = pg_original.pg_dump(pg_url)
    r, j2 = adopt(pg_url)
    assert r.rc == 0 and j2["adopted"] is False, r
    assert "already an autopack database (uuid %s" % uuid in r.err
    assert pg_original.pg_dump(pg_url) == dump


def test_the_originals_enum_state_columns_drain_with_two_supervisors_and_read_back(tmp,
                                                                                  pg_url):
    """On PostgreSQL the original's state columns are native ENUM types. Its adopted
    database drains on the real path with two supervisors (a run finishing DONE_SUCCESS,
    its tiers COMPLETE), a retry queues its failures again, the types stay, and the
    original reads every row back."""
    pg_original.build_original_on(pg_url, tmp)
    pg_original.native_enums(pg_url)
    enums = pg_original.column_types(pg_url)
    assert set(enums.values()) == {"runstate", "tierstate", "phasestate"}
    r, _ = adopt(pg_url)
    assert r.rc == 0, r
    plan = make_plan(os.path.join(str(tmp), "plan.json"), 4, tiers=2, phases=2,
                     workspace=os.path.join(str(tmp), "ws", "{run}"))
    r = ctl("--db", pg_url, "run", "import", plan)
    assert r.rc == 0, r

    llm = Standin(tmp)
    try:
        sups = [llm_supervisor(tmp, pg_url, llm, "--workers", 2, "--exit-when-drained",
                               "--max-attempts-per-phase", 1, name="sup%d" % i)
                for i in range(2)]
        # The original's phases without deliverables fail until the drain rules stop
        # their run: exit status 5, phases left.
        assert sorted(s.wait(timeout=180) for s in sups) in ([0, 5], [5, 5]), \
            sups[0].stderr() + sups[1].stderr()
    finally:
        llm.stop()
    for s in sups:
        assert " error: " not in s.stderr(), s.stderr()
    runs = dict(sql(pg_url, "SELECT id, state FROM runs WHERE id LIKE ?", "run-%"))
    assert runs == {"run-%03d" % i: "DONE_SUCCESS" for i in range(4)}, runs
    assert sql(pg_url, "SELECT DISTINCT state FROM tiers WHERE run_id LIKE ?", "run-%") \
        == [("COMPLETE",)]
    assert sql(pg_url, "SELECT DISTINCT state FROM phases WHERE run_id LIKE ?", "run-%") \
        == [("COMPLETE",)]
    failed = sql(pg_url, "SELECT run_id, phase_id FROM phases WHERE state = 'FAILED'"
                 " AND last_failure_reason LIKE ?", "NO_DELIVERABLES%")
    assert failed, "no phase of the original failed for want of deliverables"

    r = ctl("--db", pg_url, "retry", "--all")
    assert r.rc == 0, r
    states = dict(((run, ph), st) for run, ph, st in sql(
        pg_url, "SELECT run_id, phase_id, state FROM phases"))
    assert {states[k] for k in failed} == {"QUEUED"}
    r = ctl("--db", pg_url, "db", "check", "--json")
    assert r.rc == 0, r

    assert pg_original.column_types(pg_url) == enums
    rows = pg_original.read_everything(pg_url)
    assert {r.state for r in rows["runs"] if r.id.startswith("run-")} == {"DONE_SUCCESS"}


def edit_values(execute):
    """Values in other spellings (read and rewritten) and one nobody can read (left); the
    state columns are VARCHAR(10) and VARCHAR(11) on PostgreSQL."""
    execute("UPDATE phases SET state = 'queued' WHERE run_id = 'build1-original'"
            " AND phase_id = 't2-p1'")
    execute("UPDATE tiers SET state = 'in_progress' WHERE run_id = 'stalled-original'")
    execute("UPDATE phases SET state = 'HALTED' WHERE run_id = 'research-original'"
            " AND phase_id = 't1-p4'")


def test_the_survey_reports_what_the_sqlite_adoption_reports_and_changes_nothing(tmp, pg_url):
    path = os.path.join(str(tmp), "original.db")
    legacy_db.build_original(path)
    con = sqlite3.connect(path)
    edit_values(con.execute)
    con.commit()
    con.close()
    pg_original.build_original_on(pg_url, tmp)
    edit_values(lambda q: sql(pg_url, q))
    dump = pg_original.pg_dump(pg_url)

    r_lite = ctl("--db", db_url(path), "db", "adopt", "--dry-run", "--json")
    r_pg = ctl("--db", pg_url, "db", "adopt", "--dry-run", "--json")
    assert r_lite.rc == 0 and r_pg.rc == 0, (r_lite, r_pg)
    lite, pg = json.loads(r_lite.out), json.loads(r_pg.out)
    assert pg_original.pg_dump(pg_url) == dump
    assert pg["dry_run"] is True and pg["adopted"] is False and pg["uuid"] is None
    assert "dry run: nothing was changed" in r_pg.err

    for key in ("legacy_rows", "legacy_data", "scopes", "values", "workspace_base",
                "indexes_skipped"):
        assert pg[key] == lite[key], key
    assert {(v["table"], v["column"]) for v in pg["values"]["rewritten"]} == {
        ("phases", "state"), ("tiers", "state")}
    assert [(v["table"], v["column"], v["example"]) for v in pg["values"]["left_unreadable"]] \
        == [("phases", "state", "HALTED")]
    # The same columns autopack fills on every insert, a boolean's false in PostgreSQL's
    # spelling.
    got = {(c["table"], c["column"]): c["value"] for c in pg["insert_columns"]}
    booleans = {("phases", "quality_blocked"), ("llm_usage_events", "is_doctor_call"),
                ("token_estimation_v2_events", "truncated"),
                ("token_estimation_v2_events", "is_truncated_output")}
    assert got == {k: ("FALSE" if k in booleans else v) for k, v in
                   legacy_db.ORIGINAL_PYTHON_VALUES.items()}
    assert {(c["table"], c["column"]) for c in pg["columns_added"]} == {
        (c["table"], c["column"]) for c in lite["columns_added"]}
    assert set(pg["tables_created"]) == set(lite["tables_created"]) | {
        "supervisors", "supervisor_commands", "supervisor_command_results"}

    # Both adoptions then do what their surveys said, with the same result.
    for url in (db_url(path), pg_url):
        r, j = adopt(url)
        assert r.rc == 0, r
        assert {(v["table"], v["column"]): v["rows"] for v in j["values"]["rewritten"]} == {
            (v["table"], v["column"]): v["rows"] for v in pg["values"]["rewritten"]}
        assert sql(url, "SELECT state FROM phases WHERE run_id = 'build1-original' AND"
                   " phase_id = 't2-p1'") == [("QUEUED",)]
        assert sql(url, "SELECT DISTINCT state FROM tiers WHERE run_id ="
                   " 'stalled-original'") == [("IN_PROGRESS",)]
        assert sql(url, "SELECT state FROM phases WHERE run_id = 'research-original' AND"
                   " phase_id = 't1-p4'") == [("HALTED",)]


def refused_unchanged(url, needle, rc=2):
    """Both the survey and the adoption refuse the database with `needle`, changing
    nothing."""
    before = pg_original.pg_dump(url)
    for args in ((), ("--dry-run",)):
        r, j = adopt(url, *args)
        assert r.rc == rc, (args, r)
        assert needle in r.err, (args, r)
        assert j["ok"] is False
        assert "nothing was changed" in r.err, r
    assert pg_original.pg_dump(url) == before
    return r


def test_adopt_refuses_what_the_sqlite_adoption_refuses_leaving_the_database_unchanged(
        tmp, pg_url, pg_cluster):
    # Another application's database.
    sql(pg_url, "CREATE TABLE customers (id SERIAL PRIMARY KEY, name TEXT)")
    sql(pg_url, "INSERT INTO customers (name) VALUES ('ada'), ('grace')")
    r = refused_unchanged(pg_url, "PostgreSQL database but not a Python-Autopack database")
    assert "runs, tiers, phases" in r.err

    # Tables without the original's columns, named.
    sql(pg_url, "CREATE TABLE runs (id TEXT PRIMARY KEY, state TEXT)")
    sql(pg_url, "CREATE TABLE tiers (id SERIAL PRIMARY KEY, tier_id TEXT, run_id TEXT,"
        " tier_index INTEGER, name TEXT)")
    sql(pg_url, "CREATE TABLE phases (id SERIAL PRIMARY KEY, run_id TEXT, name TEXT,"
        " state TEXT)")
    r = refused_unchanged(pg_url, "table phases lacks columns")
    assert "phase_id, tier_id, phase_index" in r.err

    # The original's database whose (run_id, phase_id) pairs repeat.
    other = pg_cluster.url(pg_cluster.new_database())
    pg_original.build_original_on(other, tmp)
    [(constraint,)] = sql(other, "SELECT conname FROM pg_constraint WHERE contype = 'u' AND"
                          " conrelid = CAST('phases' AS regclass)")
    sql(other, 'ALTER TABLE phases DROP CONSTRAINT "%s" CASCADE' % constraint)
    sql(other, "INSERT INTO phases (phase_id, run_id, tier_id, phase_index, name, state,"
        " builder_attempts, auditor_attempts, tokens_used, minor_issues_count,"
        " major_issues_count, issue_state, quality_blocked, retry_attempt, revision_epoch,"
        " escalation_level, created_at, updated_at) SELECT phase_id, run_id, tier_id,"
        " phase_index, name, state, 0, 0, 0, 0, 0, 'no_issues', FALSE, 0, 0, 0, created_at,"
        " updated_at FROM phases WHERE run_id = 'build1-original' AND phase_id = 't1-p1'")
    refused_unchanged(other, "1 (run_id, phase_id) pair of phases names more than one row")

    # A database that does not exist is not created.
    missing = pg_cluster.url("no_such_database")
    r, j = adopt(missing)
    assert r.rc == 2 and "autopack never creates a database" in r.err, r


def test_adopt_refuses_a_key_the_server_would_not_assign_as_sqlite_refuses_one(tmp, pg_url):
    # The PostgreSQL form of a WITHOUT ROWID phases table on SQLite (tests/test_adopt.py):
    # phases.id without its SERIAL default, which every run import leaves to the server.
    pg_original.build_original_on(pg_url, tmp)
    sql(pg_url, "ALTER TABLE phases ALTER COLUMN id DROP DEFAULT")
    r = refused_unchanged(pg_url, "phases.id (declared integer) has no default and is not an"
                          " identity column: autopack lets PostgreSQL assign phases.id")
    assert "SERIAL" in r.err, r


def test_adopt_leaves_an_autopack_database_on_postgresql_alone(pg_url):
    assert ctl("--db", pg_url, "db", "init").rc == 0
    before = pg_original.pg_dump(pg_url)
    r, j = adopt(pg_url)
    assert r.rc == 0, r
    assert j["adopted"] is False
    assert j["database"]["uuid"] == sql(pg_url, "SELECT db_uuid FROM meta")[0][0]
    assert "already an autopack database" in r.err
    assert pg_original.pg_dump(pg_url) == before


def test_a_failure_midway_rolls_the_whole_adoption_back(tmp, pg_url):
    pg_original.build_original_on(pg_url, tmp)
    # A rule of the database that a late step breaks: the phases left in flight are put
    # back to QUEUED after every table, column and index has been added.
    sql(pg_url, "CREATE FUNCTION phases_frozen() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'phases are frozen'; END $$")
    sql(pg_url, "CREATE TRIGGER frozen BEFORE UPDATE ON phases FOR EACH ROW EXECUTE FUNCTION"
        " phases_frozen()")
    before = pg_original.pg_dump(pg_url)
    r, j = adopt(pg_url)
    assert r.rc != 0, r
    assert "phases are frozen" in r.err and "rolled back" in r.err, r
    assert "database is unchanged" in r.err
    assert pg_original.pg_dump(pg_url) == before

    # The workspaces are made last of all; one that cannot be made rolls it all back too.
    sql(pg_url, "DROP TRIGGER frozen ON phases")
    before = pg_original.pg_dump(pg_url)
    with open(os.path.join(str(tmp), "a-file"), "w") as f:
        f.write("not a directory\n")
    r, j = adopt(pg_url, "--workspace", "a-file")
    assert r.rc != 0, r
    assert "cannot create workspace" in r.err and "rolled back" in r.err, r
    assert pg_original.pg_dump(pg_url) == before
    assert sql(pg_url, "SELECT count(*) FROM information_schema.tables WHERE table_name ="
               " 'meta'") == [(0,)]


def test_the_pg_dump_command_comes_first_works_and_never_holds_the_password(
        tmp, pg_url, pg_cluster):
    pg_original.build_original_on(pg_url, tmp)
    secret = "s3cret-in-url"
    with_password = pg_url.replace("autopack@", "autopack:%s@" % secret)
    env = {"PGPASSWORD": "s3cret-in-env"}

    r, j = adopt(with_password, "--dry-run", env=env)
    assert r.rc == 0, r
    command = j["dump_command"]
    assert command.startswith("pg_dump --format=custom --file=")
    assert command.endswith(" '%s'" % pg_url)
    name = pg_url.rsplit("/", 1)[1]
    assert "'%s.pre-adopt-" % name in command

    # The operator runs it, and has the original's database in the file.
    proc = subprocess.run(["bash", "-c", command], cwd=str(tmp), capture_output=True,
                          text=True, env=dict(os.environ, PATH=PG_BIN + ":" + os.environ["PATH"]))
    assert proc.returncode == 0, proc.stderr
    [dump] = [f for f in os.listdir(str(tmp)) if f.startswith(name + ".pre-adopt-")]
    copy = pg_cluster.url(pg_cluster.new_database())
    proc = subprocess.run([os.path.join(PG_BIN, "pg_restore"), "--no-owner", "--dbname", copy,
                           os.path.join(str(tmp), dump)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert pg_original.dump(copy) == pg_original.dump(pg_url)

    # The adoption prints it before it changes anything.
    r, j = adopt(with_password, env=env)
    assert r.rc == 0, r
    assert r.err.index("copy the database first") < r.err.index("adopted ")
    assert "pg_dump --format=custom" in r.err.split("tables to create")[0]
    for text in (r.out, r.err, pg_original.pg_dump(pg_url)):
        assert secret not in text and "s3cret-in-env" not in text
    assert sql(pg_url, "SELECT count(*) FROM meta") == [(1,)]

