"""autopack-ctl db adopt on a database built with the Python original's DDL
(tests/legacy_db.py), and on files it must refuse untouched."""
import fcntl
import glob
import json
import os
import sqlite3

import legacy_db
from conftest import ctl
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
    assert uuid == j["uuid"] and version == 3 and "adopted" in by
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
    assert not os.path.exists(path + ".lock")


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
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("%d\n" % os.getpid())
        lock.flush()
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
