"""autopack-ctl db adopt on a database built with the Python original's DDL
(tests/legacy_db.py), and on files it must refuse untouched."""
import fcntl
import glob
import json
import os
import re
import sqlite3
import subprocess

import pytest

import legacy_db
from conftest import binpath, ctl
from supervisor_helpers import Supervisor, db_url, new_db, sql

# SQLite's backup API writes the copy's header counters (file change counter, schema
# cookie, version-valid-for) itself; every other byte is the original's.
HEADER_COUNTERS = set(range(24, 28)) | set(range(40, 44)) | set(range(92, 96))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def same_pages(a, b):
    """Byte-identical apart from the header counters SQLite sets in a backup copy."""
    return len(a) == len(b) and all(a[i] == b[i] for i in range(len(a))
                                    if i not in HEADER_COUNTERS)


def adopt(url, *args):
    r = ctl("--db", url, "db", "adopt", "--json", *args)
    return r, (json.loads(r.out) if r.out.strip() else None)


def legacy(tmp, name="autopack_legacy.db"):
    path = os.path.join(str(tmp), name)
    info = legacy_db.build(path)
    return path, db_url(path), info


def test_adopt_keeps_every_legacy_row_backs_up_first_and_drains_the_queued_backlog(tmp):
    path, url, info = legacy(tmp)
    original = read(path)
    before = legacy_db.dump(path)
    assert len(info["runs"]) == 70 and len(info["phases"]) == 456

    r, j = adopt(url)
    assert r.rc == 0, r
    assert j["ok"] and j["adopted"]

    # The backup was taken first, beside the database, and holds the original.
    backup = j["backup"]
    assert os.path.dirname(backup) == str(tmp)
    assert os.path.basename(backup).startswith("autopack_legacy.db.pre-adopt-")
    assert backup.endswith(".bak")
    assert same_pages(original, read(backup))
    assert legacy_db.dump(backup) == before

    # Every original row is still there, with its values, but for the documented changes.
    adopted_at, uuid, version, by = sql(url, "SELECT created_at, db_uuid, schema_version,"
                                        " created_by FROM meta")[0]
    assert uuid == j["uuid"] and version == 5 and "adopted" in by
    assert legacy_db.dump(path, before) == legacy_db.expected_after_adopt(before, adopted_at)

    # What it reports about the legacy data matches the data.
    assert j["legacy_rows"] == {"runs": 70, "tiers": info_tiers(before), "phases": 456,
                                "llm_usage_events": 300, "token_estimation_v2_events": 60}
    ld = j["legacy_data"]
    assert ld["executing_requeued"] == 1
    assert ld["bare_string_scopes"] == info["bare_scopes"] == 9
    assert ld["usage_without_split"] == info["usage_without_split"] == 100
    assert ld["workspaces_set"] == 70
    assert set(j["tables_created"]) == {"meta", "drain_sessions", "attempts", "events",
                                        "drain_session_results", "control_log",
                                        "estimator_coefficients"}
    added = {(c["table"], c["column"]) for c in j["columns_added"]}
    assert {("runs", "workspace"), ("phases", "current_attempt_id"),
            ("phases", "check_command"), ("llm_usage_events", "status"),
            ("token_estimation_v2_events", "attempt_id")} <= added
    assert j["indexes_skipped"] == []

    # The row left EXECUTING is QUEUED and keeps its failure reason.
    assert sql(url, "SELECT state, last_failure_reason FROM phases WHERE run_id = ? AND"
               " phase_id = ?", *executing_key(info)) == [("QUEUED", "CI_FAILED")]
    # NULL splits stayed NULL; nothing invented one.
    assert sql(url, "SELECT count(*) FROM llm_usage_events WHERE prompt_tokens IS NULL"
               " AND completion_tokens IS NULL") == [(100,)]
    assert sql(url, "SELECT DISTINCT status FROM llm_usage_events") == [("ok",)]
    # Workspaces: <db dir>/autopack-workspace/<run id>, created.
    for run_id, ws in sql(url, "SELECT id, workspace FROM runs"):
        assert ws == os.path.join(str(tmp), "autopack-workspace", run_id)
        assert os.path.isdir(ws)

    # The Python side still reads its tables and its view.
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT count(*) FROM phases WHERE state = 'FAILED'").fetchone() \
            == (207,)
        assert con.execute("SELECT sum(sample_count) FROM v_token_estimation_validation") \
            .fetchone() == (60,)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()

    r = ctl("--db", url, "db", "check", "--json")
    assert r.rc == 0, r
    check = json.loads(r.out)
    by_state = check["phases"]["by_state"]
    assert (by_state["QUEUED"], by_state["FAILED"], by_state["COMPLETE"],
            by_state["EXECUTING"]) == (108, 207, 141, 0)
    assert check["database"]["uuid"] == uuid

    # A real drain (dry run) visits every QUEUED phase exactly once.
    queued = set(sql(url, "SELECT run_id, phase_id FROM phases WHERE state = 'QUEUED'"))
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--exit-when-drained")
    assert sup.wait(timeout=180) == 0, sup.stderr()
    visited = sql(url, "SELECT run_id, phase_id, outcome FROM attempts")
    assert len(visited) == 108
    assert {(a, b) for a, b, _ in visited} == queued
    assert {o for _, _, o in visited} == {"dry_run"}
    assert sql(url, "SELECT count(*) FROM drain_session_results") == [(108,)]
    assert legacy_db.dump(path, before) == legacy_db.expected_after_adopt(before, adopted_at)

    # Adopting again changes nothing: it is an autopack database now.
    size = os.path.getsize(path)
    r, j2 = adopt(url)
    assert r.rc == 0 and j2["adopted"] is False, r
    assert "already an autopack database" in r.err
    assert os.path.getsize(path) == size
    assert len(glob.glob(path + ".pre-adopt-*")) == 1


def info_tiers(dump):
    return len(dump["tiers"]["rows"])


def executing_key(info):
    [key] = [(r, p) for r, p, s, _ in info["phases"] if s == "EXECUTING"]
    return key


def test_adopt_puts_workspaces_under_the_directory_given(tmp):
    path, url, _ = legacy(tmp)
    r, j = adopt(url, "--workspace", "wsroot")
    assert r.rc == 0, r
    base = os.path.join(str(tmp), "wsroot")
    assert j["workspace_base"] == base
    rows = sql(url, "SELECT id, workspace FROM runs")
    assert all(ws == os.path.join(base, run_id) for run_id, ws in rows)


def test_a_failed_adoption_removes_the_workspaces_it_made(tmp):
    path, url, info = legacy(tmp)
    before = read(path)
    # A rule of the database that refuses one run's workspace, after the runs sorted before
    # it have had theirs made.
    frozen = sorted(info["runs"])[5]
    con = sqlite3.connect(path)
    con.execute("CREATE TRIGGER frozen BEFORE UPDATE ON runs WHEN NEW.id = '%s'"
                " BEGIN SELECT RAISE(ABORT, 'run frozen'); END" % frozen)
    con.commit()
    con.close()
    before = legacy_db.dump(path)
    base = os.path.join(str(tmp), "wsroot")
    r, j = adopt(url, "--workspace", os.path.join(base, "deeper"))
    assert r.rc == 2, r
    assert "setting the workspace of run %s: run frozen" % frozen in r.err, r
    assert "the database is unchanged" in r.err
    assert legacy_db.dump(path) == before
    # Every directory it had made is gone, its parents made for it too.
    assert not os.path.exists(base), os.listdir(base)


def test_adopt_refuses_a_workspace_that_is_a_file_and_shortens_long_run_ids(tmp):
    path, url, info = legacy(tmp)
    base = os.path.join(str(tmp), "wsroot")
    os.mkdir(base)
    taken = sorted(info["runs"])[5]
    with open(os.path.join(base, taken), "w") as f:
        f.write("an operator's file\n")
    before = legacy_db.dump(path)
    r, j = adopt(url, "--workspace", base)
    assert r.rc == 2, r
    assert "cannot create workspace %s for run %s: Not a directory" % (
        os.path.join(base, taken), taken) in r.err, r
    assert legacy_db.dump(path) == before
    assert os.listdir(base) == [taken]
    with open(os.path.join(base, taken)) as f:
        assert f.read() == "an operator's file\n"

    # A run id longer than a file name can be gets a shortened directory of its own.
    os.remove(os.path.join(base, taken))
    long_id = "r" * 300
    con = sqlite3.connect(path)
    con.execute("INSERT INTO runs (id, created_at, updated_at) VALUES (?, ?, ?)",
                (long_id, "2026-01-01 00:00:00.000000", "2026-01-01 00:00:00.000000"))
    con.commit()
    con.close()
    r, j = adopt(url, "--workspace", base)
    assert r.rc == 0, r
    [(ws,)] = sql(url, "SELECT workspace FROM runs WHERE id = ?", long_id)
    assert os.path.dirname(ws) == base and os.path.isdir(ws)
    assert re.fullmatch("run_r{200}-[0-9]+", os.path.basename(ws)), ws


def test_adopt_accepts_the_database_as_an_argument_and_refuses_two_that_disagree(tmp):
    path, url, _ = legacy(tmp)
    other = new_db(tmp, runs=0)
    r = ctl("--db", other, "db", "adopt", url)
    assert r.rc == 2, r
    assert "two databases named" in r.err
    assert not glob.glob(path + ".pre-adopt-*")
    r = ctl("db", "adopt", url)
    assert r.rc == 0, r
    assert sql(url, "SELECT count(*) FROM meta") == [(1,)]


def assert_refused_untouched(tmp, path, needle, rc=2):
    before = read(path) if os.path.exists(path) else None
    r, j = adopt(db_url(path))
    assert r.rc == rc, r
    assert needle in r.err, r
    assert j["ok"] is False
    if before is None:
        assert not os.path.exists(path)
    else:
        assert read(path) == before
    assert not glob.glob(path + ".pre-adopt-*")
    return r


def test_adopt_refuses_an_sqlite_database_of_another_application_unchanged(tmp):
    path = os.path.join(str(tmp), "shop.db")
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                      "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER,"
                      " total REAL);"
                      "INSERT INTO customers (name) VALUES ('ada'), ('grace');")
    con.commit()
    con.close()
    r = assert_refused_untouched(tmp, path, "not a Python-Autopack database")
    assert "runs, tiers, phases" in r.err


def test_adopt_refuses_tables_without_the_originals_columns_naming_them(tmp):
    path = os.path.join(str(tmp), "odd.db")
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE runs (id TEXT PRIMARY KEY, state TEXT);"
                      "CREATE TABLE tiers (id INTEGER PRIMARY KEY, tier_id TEXT,"
                      " run_id TEXT, tier_index INTEGER, name TEXT);"
                      "CREATE TABLE phases (id INTEGER PRIMARY KEY, run_id TEXT,"
                      " name TEXT, state TEXT);")
    con.close()
    r = assert_refused_untouched(tmp, path, "table phases lacks columns")
    assert "phase_id, tier_id, phase_index" in r.err


def test_adopt_refuses_a_file_that_is_not_sqlite_and_a_missing_file(tmp):
    path = os.path.join(str(tmp), "notes.db")
    with open(path, "wb") as f:
        f.write(b"these are not the pages you are looking for\n" * 200)
    assert_refused_untouched(tmp, path, "not an SQLite database")
    assert_refused_untouched(tmp, os.path.join(str(tmp), "missing.db"),
                             "no such database file")


def test_adopt_leaves_an_autopack_database_alone(tmp):
    url = new_db(tmp, runs=1)
    path = url[len("sqlite:///"):]
    before = read(path)
    r, j = adopt(url)
    assert r.rc == 0, r
    assert j["adopted"] is False
    assert j["database"]["uuid"] == sql(url, "SELECT db_uuid FROM meta")[0][0]
    assert read(path) == before
    assert not glob.glob(path + ".pre-adopt-*")


def test_adopt_refuses_while_the_database_lock_is_held(tmp):
    path, url, _ = legacy(tmp)
    before = read(path)
    with open(path, "rb") as lock:   # the lock is the database file's own flock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r, j = adopt(url)
    assert r.rc == 1, r
    assert "pid %d" % os.getpid() in r.err
    assert read(path) == before
    assert not glob.glob(path + ".pre-adopt-*")


def test_adopt_refuses_phases_whose_run_and_phase_ids_repeat(tmp):
    path = os.path.join(str(tmp), "dups.db")
    con = sqlite3.connect(path)
    ddl = legacy_db.LEGACY_DDL.replace(
        "    CONSTRAINT uq_phases_run_phase UNIQUE (run_id, phase_id),\n", "")
    con.executescript(ddl)
    con.execute("INSERT INTO runs (id, created_at, updated_at) VALUES ('r', 'x', 'x')")
    con.execute("INSERT INTO tiers (id, tier_id, run_id, tier_index, name)"
                " VALUES (1, 'T1', 'r', 0, 't')")
    for _ in range(2):
        con.execute("INSERT INTO phases (phase_id, run_id, tier_id, phase_index, name)"
                    " VALUES ('p', 'r', 1, 0, 'p')")
    con.commit()
    con.close()
    assert_refused_untouched(tmp, path, "(run_id, phase_id) pair")


def test_adopted_backlog_with_retry_failed_visits_every_failed_and_queued_phase_once(tmp):
    path, url, _ = legacy(tmp)
    r, _ = adopt(url)
    assert r.rc == 0, r
    backlog = legacy_db.failed_backlog(path)
    assert len(backlog) == 207
    assert {b[4] for b in backlog} == set(legacy_db.TRIAGE_ORDER)
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--retry-failed",
                     "--exit-when-drained")
    assert sup.wait(timeout=180) == 0, sup.stderr()
    visited = sql(url, "SELECT run_id, phase_id, initial_state FROM attempts")
    assert len(visited) == 207 + 108
    assert len({(a, b) for a, b, _ in visited}) == len(visited)
    assert {(a, b) for a, b, s in visited if s == "FAILED"} == \
        {(b[0], b[1]) for b in backlog}
    # A dry run changes no state.
    assert sql(url, "SELECT count(*) FROM phases WHERE state = 'FAILED'") == [(207,)]


# --- the original's real shape (tests/data/autopack-py-sqlite-schema.sql) ------------------

STAMP_GLOB = ("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
              ".[0-9][0-9][0-9][0-9][0-9][0-9]")


def original(tmp, name="original.db"):
    path = os.path.join(str(tmp), name)
    info = legacy_db.build_original(path)
    return path, db_url(path), info


def bad_stamps(path):
    """(table, column, value) of every DATETIME value not in the original's format."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        out = []
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for c in con.execute("SELECT name FROM pragma_table_info(?) WHERE"
                                 " upper(type) = 'DATETIME' OR name IN ('created_at',"
                                 " 'updated_at', 'started_at', 'ended_at', 'completed_at')",
                                 (t,)).fetchall():
                out += [(t, c[0], v) for (v,) in con.execute(
                    'SELECT "%s" FROM "%s" WHERE "%s" IS NOT NULL AND "%s" NOT GLOB ?'
                    % (c[0], t, c[0], c[0]), (STAMP_GLOB,))]
        return out
    finally:
        con.close()


def test_dry_run_reports_what_adoption_will_do_and_changes_nothing(tmp):
    path, url, info = original(tmp)
    # Values an earlier writer left in other formats, and one nobody can read.
    sql_rw = sqlite3.connect(path)
    sql_rw.executescript(
        "UPDATE runs SET updated_at = '2026-12-01T19:31:27.480Z' WHERE id = 'build1-original';"
        "UPDATE phases SET state = 'PhaseState.queued' WHERE run_id = 'build1-original'"
        " AND phase_id = 't2-p1';"
        "UPDATE llm_usage_events SET is_doctor_call = 'false' WHERE id = 1;"
        "UPDATE phase_outcome_events SET timestamp = 'yesterday';")
    sql_rw.close()
    before = read(path)
    r = ctl("--db", url, "db", "adopt", "--dry-run", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert read(path) == before
    assert sorted(os.listdir(str(tmp))) == ["original.db"]
    assert j["dry_run"] is True and j["adopted"] is False and j["uuid"] is None

    # Every NOT NULL column without an SQL default that autopack writes, with its value.
    got = {(c["table"], c["column"]): c["value"] for c in j["insert_columns"]}
    assert got == legacy_db.ORIGINAL_PYTHON_VALUES

    # Every value it will rewrite, with an example, and the one it cannot read.
    rewritten = {(v["table"], v["column"]): (v["kind"], v["rows"], v["example"],
                                             v["rewritten_as"])
                 for v in j["values"]["rewritten"]}
    assert rewritten == {
        ("runs", "updated_at"): ("timestamp", 1, "2026-12-01T19:31:27.480Z",
                                 "2026-12-01 19:31:27.480000"),
        ("phases", "state"): ("phase state", 1, "PhaseState.queued", "QUEUED"),
        ("llm_usage_events", "is_doctor_call"): ("boolean", 1, "false", "0")}
    assert [(v["table"], v["column"], v["rows"], v["example"])
            for v in j["values"]["left_unreadable"]] == [
        ("phase_outcome_events", "timestamp", 1, "yesterday")]

    # Scopes: how they are stored, the ones it cannot interpret and those naming nothing.
    sc = j["scopes"]
    kinds = [k for _, _, _, k in info["phases"]]
    assert sc["encoded"] == kinds.count("encoded") + kinds.count("encoded_buckets")
    assert sc["path"] == kinds.count("path") + kinds.count("directory")
    assert sc["none"] == kinds.count("null")
    assert sc["buckets"] == kinds.count("buckets") + kinds.count("encoded_buckets")
    assert [(p["run_id"], p["phase_id"], p["state"]) for p in sc["uninterpretable"]] == [
        ("unscoped-original", "t1-p3", "QUEUED")]
    assert "a JSON array" in sc["uninterpretable"][0]["why"]
    assert [(p["run_id"], p["phase_id"]) for p in sc["no_deliverables"]] == [
        ("unscoped-original", "t1-p1"), ("unscoped-original", "t1-p2"),
        ("unscoped-original", "t1-p4")]
    assert j["legacy_data"]["executing_requeued"] == 3
    assert "unscoped-original/t1-p3 (QUEUED): a JSON array" in r.err
    assert "dry run: nothing was changed" in r.err

    # The adoption then does what the survey said.
    r, j2 = adopt(url)
    assert r.rc == 0, r
    assert j2["adopted"] is True
    assert {(v["table"], v["column"]): v["rows"] for v in j2["values"]["rewritten"]} == {
        k: v[1] for k, v in rewritten.items()}
    assert sql(url, "SELECT updated_at FROM runs WHERE id = 'build1-original'") == [
        ("2026-12-01 19:31:27.480000",)]
    assert sql(url, "SELECT state FROM phases WHERE run_id = 'build1-original'"
               " AND phase_id = 't2-p1'") == [("QUEUED",)]
    assert sql(url, "SELECT is_doctor_call, typeof(is_doctor_call) FROM llm_usage_events"
               " WHERE id = 1") == [(0, "integer")]
    assert sql(url, "SELECT timestamp FROM phase_outcome_events") == [("yesterday",)]
    assert [b for b in bad_stamps(path) if b[0] != "phase_outcome_events"] == []
    assert sql(url, "SELECT count(*) FROM phases WHERE state IN ('EXECUTING', 'GATE',"
               " 'CI_RUNNING')") == [(0,)]


def test_import_and_seed_on_an_adopted_database_of_the_originals_shape(tmp):
    path, url, _ = original(tmp)
    r, _ = adopt(url)
    assert r.rc == 0, r
    plan = os.path.join(str(tmp), "plan.json")
    with open(plan, "w") as f:
        json.dump({"runs": [{"run_id": "imported", "workspace": "ws-imported", "tiers": [
            {"tier_id": "T1", "name": "t", "phases": [
                {"phase_id": "p1", "name": "n", "scope": {
                    "paths": ["src/"], "deliverables": {"code": ["src/a.py"],
                                                        "tests": ["src/test_a.py"]}}},
                {"phase_id": "p2", "name": "n", "scope": json.dumps(
                    {"paths": ["src/"], "deliverables": ["src/b.py"]})}]}]}]}, f)
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 0, r
    r = ctl("--db", url, "seed", "telemetry-run")
    assert r.rc == 0, r
    # Every NOT NULL column holds the original's value, every timestamp its format.
    for run in ("imported", "telemetry-collection-v4"):
        assert sql(url, "SELECT state, safety_profile, run_scope, tokens_used, ci_runs_used,"
                   " minor_issues_count, major_issues_count, promotion_eligible_to_main"
                   " FROM runs WHERE id = ?", run) == [
            ("RUN_CREATED", "normal", "multi_tier", 0, 0, 0, 0, "false")]
        assert sql(url, "SELECT DISTINCT state, max_major_issues_tolerated, tokens_used,"
                   " ci_runs_used, minor_issues_count, major_issues_count, cleanliness"
                   " FROM tiers WHERE run_id = ?", run) == [
            ("PENDING", 0, 0, 0, 0, 0, "clean")]
        assert sql(url, "SELECT DISTINCT state, builder_attempts, auditor_attempts,"
                   " tokens_used, minor_issues_count, major_issues_count, issue_state,"
                   " quality_blocked, retry_attempt, revision_epoch, escalation_level"
                   " FROM phases WHERE run_id = ?", run) == [
            ("QUEUED", 0, 0, 0, 0, 0, "no_issues", 0, 0, 0, 0)]
    assert json.loads(sql(url, "SELECT scope FROM phases WHERE run_id = 'imported'"
                          " AND phase_id = 'p1'")[0][0])["deliverables"] == [
        "src/a.py", "src/test_a.py"]
    assert bad_stamps(path) == []
    assert os.path.isdir(os.path.join(str(tmp), "ws-imported"))


def without_rowid(ddl, table):
    """`ddl` with `table`'s CREATE TABLE statement made WITHOUT ROWID."""
    start = ddl.index("CREATE TABLE %s (" % table)
    end = ddl.index("\n)", start) + 2
    return ddl[:end] + " WITHOUT ROWID" + ddl[end:]


def original_without_rowid(tmp, table, name="norowid.db"):
    """A database of the original's verbatim schema with `table` WITHOUT ROWID, holding a
    run, a tier and a phase (their ids given: such a table assigns none)."""
    path = os.path.join(str(tmp), name)
    with open(legacy_db.SCHEMA_FILE) as f:
        ddl = without_rowid(f.read(), table)
    at = legacy_db.utcnow()
    con = sqlite3.connect(path)
    con.executescript(ddl)
    legacy_db._insert(con, "runs", legacy_db.original_run("r", "RUN_CREATED", at))
    legacy_db._insert(con, "tiers", dict(legacy_db.original_tier("r", 0, "PENDING", at), id=1))
    legacy_db._insert(con, "phases", dict(legacy_db.original_phase(
        "r", "p1", 1, 0, "QUEUED", json.dumps({"paths": ["src/"],
                                               "deliverables": ["src/a.py"]}), at), id=1))
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("table,key", [("phases", "id"), ("tiers", "id"),
                                       ("llm_usage_events", "id"),
                                       ("token_estimation_v2_events", "event_id")])
def test_adopt_refuses_a_table_without_rowid_whose_key_autopack_leaves_to_sqlite(tmp, table,
                                                                                 key):
    # SQLite assigns a key left out of an insert only as the rowid of a table with rowids:
    # adopted, every run import failed with "NOT NULL constraint failed: phases.id".
    path = original_without_rowid(tmp, table)
    r = assert_refused_untouched(tmp, path, "table %s is WITHOUT ROWID" % table)
    assert "autopack lets SQLite assign %s.%s" % (table, key) in r.err, r
    assert "the file was left untouched" in r.err, r
    before = read(path)
    r, j = adopt(db_url(path), "--dry-run")
    assert r.rc == 2 and "table %s is WITHOUT ROWID" % table in r.err, r
    assert read(path) == before


def test_adopt_refuses_a_key_that_is_not_the_tables_integer_primary_key(tmp):
    path = os.path.join(str(tmp), "bigint.db")
    with open(legacy_db.SCHEMA_FILE) as f:
        ddl = f.read()
    start = ddl.index("CREATE TABLE phases (")
    ddl = ddl[:start] + ddl[start:].replace("id INTEGER NOT NULL,", "id BIGINT NOT NULL,", 1)
    con = sqlite3.connect(path)
    con.executescript(ddl)
    con.close()
    r = assert_refused_untouched(tmp, path, "phases.id (declared BIGINT) is not the table's"
                                 " INTEGER PRIMARY KEY")
    assert "autopack lets SQLite assign phases.id" in r.err, r


def test_an_adopted_database_whose_phases_became_without_rowid_is_refused_by_every_command(tmp):
    path, url, _ = original(tmp)
    r, _ = adopt(url)
    assert r.rc == 0, r
    con = sqlite3.connect(path)
    (ddl,) = con.execute("SELECT sql FROM sqlite_master WHERE name = 'phases'").fetchone()
    indexes = [i for (i,) in con.execute("SELECT sql FROM sqlite_master WHERE type = 'index'"
                                         " AND tbl_name = 'phases' AND sql IS NOT NULL")]
    con.executescript("PRAGMA foreign_keys = OFF; BEGIN;"
                      + ddl.replace("CREATE TABLE phases", "CREATE TABLE phases_new", 1)
                      + " WITHOUT ROWID; INSERT INTO phases_new SELECT * FROM phases;"
                      " DROP TABLE phases; ALTER TABLE phases_new RENAME TO phases;"
                      + ";".join(indexes) + "; COMMIT;")
    con.close()
    before = read(path)
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2, r
    assert "table phases is WITHOUT ROWID: autopack lets SQLite assign phases.id" in r.err, r
    plan = os.path.join(str(tmp), "plan.json")
    with open(plan, "w") as f:
        json.dump({"runs": [{"run_id": "imported", "workspace": "ws-imported", "tiers": [
            {"tier_id": "T1", "name": "t", "phases": [
                {"phase_id": "p1", "name": "n", "scope": {
                    "paths": ["src/"], "deliverables": ["src/a.py"]}}]}]}]}, f)
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 2, r
    assert "table phases is WITHOUT ROWID" in r.err, r
    assert read(path) == before


def test_migration_rewrites_what_an_earlier_autopack_wrote_into_an_adopted_database(tmp):
    """An adopted database an earlier version (schema 2) drained: its rows carry
    "YYYY-MM-DDTHH:MM:SS.mmmZ" stamps; migrating to version 3 rewrites every one."""
    path, url, _ = original(tmp)
    r, _ = adopt(url)
    assert r.rc == 0, r
    early = "2026-11-30T08:00:00.001Z"
    con = sqlite3.connect(path)
    con.executescript(
        "UPDATE meta SET schema_version = 2, created_at = '%(t)s';"
        "UPDATE phases SET updated_at = '%(t)s', last_attempt_timestamp = '%(t)s'"
        " WHERE run_id = 'build1-original';"
        "UPDATE runs SET updated_at = '%(t)s', started_at = '%(t)s';"
        "INSERT INTO drain_sessions (session_id, started_at, completed_at)"
        " VALUES ('s', '%(t)s', '%(t)s');"
        "INSERT INTO attempts (run_id, phase_id, attempt_number, session_id, started_at,"
        " ended_at) VALUES ('build1-original', 't1-p1', 1, 's', '%(t)s', '%(t)s');"
        "INSERT INTO events (attempt_id, seq, kind, created_at) VALUES (1, 1, 'log', '%(t)s');"
        "INSERT INTO llm_usage_events (provider, model, role, total_tokens, created_at,"
        " is_doctor_call, attempt_id, seq) VALUES ('anthropic', 'm', 'builder', 5, '%(t)s', 0,"
        " 1, 2);" % {"t": early})
    con.close()
    assert bad_stamps(path)
    r = ctl("--db", url, "db", "migrate", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert j["from"] == 2 and j["to"] >= 3
    assert bad_stamps(path) == []
    assert sql(url, "SELECT DISTINCT updated_at FROM phases WHERE run_id = 'build1-original'"
               ) == [("2026-11-30 08:00:00.001000",)]
    assert sql(url, "SELECT created_at FROM meta") == [("2026-11-30 08:00:00.001000",)]
    import original_reader
    original_reader.read_everything(path)


def test_the_survey_names_phases_whose_run_or_tier_has_no_row(tmp):
    """The original kept no foreign keys: a phase may name a tier or a run no row holds.
    A drain reads its queue through both and never dispatches such a phase; every drain
    ended with it "left: not dispatched", and nothing said which row was at fault."""
    path, url, _ = original(tmp)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE phases SET tier_id = 999999 WHERE run_id = 'build1-original'"
                    " AND phase_id = 't2-p1'")
        con.execute("UPDATE phases SET run_id = 'gone-original' WHERE"
                    " run_id = 'research-original' AND phase_id = 't1-p1'")
    con.close()
    r = ctl("--db", url, "db", "adopt", "--dry-run", "--json")
    assert r.rc == 0, r
    assert json.loads(r.out)["orphans"] == [
        {"run_id": "build1-original", "phase_id": "t2-p1", "state": "QUEUED",
         "why": "phases.tier_id 999999: no row of tiers has this id"},
        {"run_id": "gone-original", "phase_id": "t1-p1", "state": "FAILED",
         "why": "phases.run_id: no row of runs has this id"}]
    assert ("phases whose run or tier has no row (the original kept no foreign keys; a "
            "drain never dispatches them): 2\n"
            "    build1-original/t2-p1 (QUEUED): phases.tier_id 999999: no row of tiers has "
            "this id\n") in r.err, r.err
    r, j = adopt(url)
    assert r.rc == 0 and len(j["orphans"]) == 2, r


def test_the_survey_names_run_and_phase_ids_that_are_not_text(tmp):
    """An id another program stored as a blob (X'01') is no text id: the scheduler keys
    phases by their text ids, and a drain left the phase "not dispatched". An integer
    stored as the text '12abc' was read as 12. The survey listed timestamps, booleans and
    states of the wrong type, and said nothing of either."""
    path, url, _ = original(tmp)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE phases SET phase_id = X'01' WHERE run_id = 'build1-original'"
                    " AND phase_id = 't2-p1'")
        con.execute("UPDATE phases SET run_id = X'0203' WHERE"
                    " run_id = 'research-original' AND phase_id = 't1-p1'")
        # An integer column holding a text that is no integer, as SQLite keeps it.
        con.execute("UPDATE phases SET max_builder_attempts = '12abc' WHERE"
                    " run_id = 'build1-original'")
    con.close()
    r = ctl("--db", url, "db", "adopt", "--dry-run", "--json")
    assert r.rc == 0, r
    bad = {(v["table"], v["column"]): (v["kind"], v["rows"], v["example"])
           for v in json.loads(r.out)["values"]["left_unreadable"]}
    n = sql(url, "SELECT count(*) FROM phases WHERE max_builder_attempts = '12abc'")[0][0]
    assert n > 0
    assert bad == {("phases", "phase_id"): ("text id", 1, "X'01'"),
                   ("phases", "run_id"): ("text id", 1, "X'0203'"),
                   ("phases", "max_builder_attempts"): ("integer", n, "12abc")}, bad
    assert "phases.phase_id: 1 value(s) that are not a text id, e.g. \"X'01'\"" in r.err, r.err
    assert ("phases.max_builder_attempts: %d value(s) that are not an integer, e.g. \"12abc\""
            % n) in r.err, r.err
    r, j = adopt(url)
    assert r.rc == 0, r
    assert ("phases", "phase_id") in {(v["table"], v["column"])
                                      for v in j["values"]["left_unreadable"]}
    assert sql(url, "SELECT count(*) FROM phases WHERE typeof(phase_id) = 'blob'") == [(1,)]


def test_the_surveys_json_keeps_a_value_that_is_not_utf8(tmp):
    """A value the survey cannot read whose bytes are not UTF-8 (SQLite's TEXT holds any
    bytes another program wrote) was dropped from the JSON survey, which listed nothing
    left unreadable; it is shown with U+FFFD for the bad byte, as the text survey names it."""
    path, url, _ = original(tmp)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE runs SET updated_at = CAST(? AS TEXT) WHERE id = 'build1-original'",
                    (b"soon\xff",))
        con.execute("UPDATE phases SET max_builder_attempts = CAST(? AS TEXT) WHERE"
                    " run_id = 'research-original' AND phase_id = 't1-p1'", (b"1\xfe",))
    con.close()
    # The text survey on stderr shows the bytes as they are: read both as bytes.
    p = subprocess.run([binpath("autopack-ctl"), "--db", url, "db", "adopt", "--dry-run",
                        "--json"], capture_output=True, timeout=60)
    assert p.returncode == 0, p
    bad = {(v["table"], v["column"]): (v["kind"], v["rows"], v["example"])
           for v in json.loads(p.stdout.decode("utf-8"))["values"]["left_unreadable"]}
    assert bad == {("runs", "updated_at"): ("timestamp", 1, "soon\ufffd"),
                   ("phases", "max_builder_attempts"): ("integer", 1, "1\ufffd")}, bad


def test_the_originals_database_used_as_it_is_is_refused_naming_db_adopt(tmp):
    """The Python original's database given to autopack as it is (its DATABASE_URL, the
    file its operator has) was refused as 'not an autopack database (no meta table)', the
    same as any other program's file, never saying that `db adopt` makes it one. Another
    SQLite file is refused as before."""
    path = str(tmp / "legacy.db")
    legacy_db.build(path)
    before = read(path)
    url = db_url(path)
    plan = os.path.join(str(tmp), "plan.json")
    with open(plan, "w") as f:
        json.dump({"runs": [{"run_id": "r1", "workspace": "ws", "tiers": [{
            "tier_id": "T1", "name": "t", "phases": [{
                "phase_id": "p1", "name": "p", "scope": {"deliverables": ["a.py"]}}]}]}]}, f)
    hint = ("%s: SQLite database but not an autopack database (no meta table): it has the "
            "runs, tiers and phases tables of a Python-Autopack database, which autopack-ctl "
            "db adopt --dry-run surveys and autopack-ctl db adopt makes an autopack database "
            "in place (docs/adoption.md); the file was left untouched" % path)
    for args in (["db", "check"], ["run", "import", plan], ["session", "list"], ["status"]):
        r = ctl("--db", url, *args)
        assert r.rc == 2 and r.err.splitlines()[-1] == "autopack-ctl: " + hint, (args, r)
    r = ctl("--db", url, "--json", "db", "check")
    assert r.rc == 2 and json.loads(r.out)["message"] == hint, r
    sup = Supervisor(tmp, url, "--dry-run", "--exit-when-drained", control=False)
    assert sup.wait() == 1
    assert "error: " + hint in sup.stderr(), sup.stderr()
    assert read(path) == before
    assert sorted(os.listdir(str(tmp))) == ["legacy.db", "plan.json", "sup.err", "sup.out"]
    other = str(tmp / "other.db")
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE runs (id TEXT)")
    con.close()
    r = ctl("--db", db_url(other), "db", "check")
    assert r.rc == 2 and r.err.rstrip().endswith(
        "not an autopack database (no meta table); the file was left untouched"), r
    assert "db adopt" not in r.err
