"""autopack-ctl's database commands as separate processes: URLs and identity, db init,
db check, db migrate, the lock."""
import fcntl
import glob
import json
import os
import re
import sqlite3

import pytest

from conftest import ctl, preload, run


def url(path):
    return "sqlite:///" + str(path)


def init(path):
    r = ctl("--db", url(path), "db", "init")
    assert r.rc == 0, r
    return r


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def sql(path, script):
    con = sqlite3.connect(str(path))
    con.executescript(script)
    con.commit()
    con.close()


def uuid_of(path):
    con = sqlite3.connect(str(path))
    (u,) = con.execute("SELECT db_uuid FROM meta").fetchone()
    con.close()
    return u


COMMANDS = [["db", "init"], ["db", "check"], ["db", "migrate"],
            ["seed", "telemetry-run"], ["run", "import"]]


def test_help_lists_every_command():
    r = ctl("--help")
    assert r.rc == 0
    for words in COMMANDS:
        assert " ".join(words) in r.out


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: "-".join(w))
def test_every_command_has_help(words):
    r = ctl(*words, "--help")
    assert r.rc == 0, r
    assert r.out.startswith("usage: autopack-ctl [--db URL] " + " ".join(words))


def test_unknown_command_or_option_is_a_usage_error(tmp):
    r = ctl("frobnicate")
    assert r.rc == 2 and "unknown command 'frobnicate'" in r.err and "usage:" in r.err
    r = ctl("db", "check", "--frob")
    assert r.rc == 2 and "'--frob'" in r.err and "usage: autopack-ctl" in r.err
    r = ctl("db", "nope")
    assert r.rc == 2 and "db init" in r.err
    r = ctl("db", "--help")
    assert r.rc == 0 and "db check" in r.out
    r = ctl()
    assert r.rc == 2 and "no command" in r.err


def test_no_database_named_is_refused_with_an_example(tmp):
    r = ctl("db", "check")
    assert r.rc == 2
    assert "no database named" in r.err and "sqlite:///autopack.db" in r.err
    assert os.listdir(tmp) == []


@pytest.mark.parametrize("bad,needle", [
    ("postgresql://u@h/db?search_path=x", 'invalid URI query parameter: "search_path"'),
    ("autopack.db", "write sqlite:///autopack.db"),
    ("sqlite:///:memory:", "in-memory"),
    ("sqlite:///x.db?mode=ro", "query strings"),
    ("file:x.db", "unsupported URL scheme 'file'"),
    ("sqlite:x.db", "'sqlite:x.db' is not an sqlite URL: sqlite: is followed by three slashes"),
    ("SQLite:///x.db", "URL scheme 'SQLite' in 'SQLite:///x.db' must be written in lowercase: sqlite"),
    # Another scheme, or PostgreSQL's mistyped, was shown whole: its password with it.
    ("mysql://app:hunter2@db/prod", "unsupported URL scheme 'mysql' in 'mysql://app:***@db/prod'"),
    ("POSTGRESQL://app:hunter2@db/prod", "in 'POSTGRESQL://app:***@db/prod' must be written in "
     "lowercase: postgresql"),
    ("postgresq://app:hunter2@db/prod", "'postgresq://app:***@db/prod'"),
])
def test_malformed_urls_are_refused_naming_the_problem(tmp, bad, needle):
    r = ctl("--db", bad, "db", "init")
    assert r.rc == 2 and needle in r.err, r
    assert "hunter2" not in r.err + r.out, r
    assert os.listdir(tmp) == []


@pytest.mark.parametrize("scheme", ["sqlite+pysqlite", "sqlite+aiosqlite"])
def test_sqlalchemys_spelling_of_an_sqlite_url_names_the_same_file(tmp, scheme):
    """`sqlite+pysqlite:///autopack.db`, SQLAlchemy's spelling that the Python original's
    DATABASE_URL may hold, was refused as an unsupported scheme. Its driver names no other
    file: it is the file sqlite:/// names, and its canonical URL is sqlite:///'s, so that
    it agrees with AUTOPACK_DB_URL naming that file."""
    p = tmp / "a.db"
    init(p)
    for given in ("%s:///a.db" % scheme, "%s:///%s" % (scheme, p)):
        r = ctl("--db", given, "db", "check", "--json", "--allow-empty-db")
        assert r.rc == 0, r
        assert json.loads(r.out)["database"]["url"] == url(p), r
        r = ctl("db", "check", "--allow-empty-db",
                env={"DATABASE_URL": given, "AUTOPACK_DB_URL": url(p)})
        assert r.rc == 0 and "url:            %s\n" % url(p) in r.out, r


@pytest.mark.parametrize("bad,said", [
    ("sqlite+pysqlcipher://:hunter2@/a.db",
     "'sqlite+pysqlcipher://:***@/a.db' names an SQLCipher database, encrypted, which "
     "autopack cannot open: export it to a plain SQLite file (sqlcipher_export) and name "
     "that with sqlite:///"),
    ("sqlite+pysqlit:///a.db", "'sqlite+pysqlit:///a.db': unknown SQLAlchemy driver "
     "'pysqlit' for SQLite; name the file with sqlite:///"),
    ("sqlite+pysqlite:a.db", "'sqlite+pysqlite:a.db' is not an sqlite URL: "
     "sqlite+pysqlite: is followed by three slashes, then the path"),
    ("sqlite+pysqlite:///", "'sqlite+pysqlite:///' names no file"),
    ("sqlite+pysqlite:///a.db?check_same_thread=false", "query strings are not supported"),
    ("mysql+pymysql://app:hunter2@db/prod", "unsupported URL scheme 'mysql+pymysql' in "
     "'mysql+pymysql://app:***@db/prod': autopack keeps its database in SQLite or "
     "PostgreSQL; use sqlite:///autopack.db (relative to the current directory) or "
     "sqlite:////var/lib/autopack/autopack.db (absolute), or "
     "postgresql://user@host:port/dbname"),
])
def test_sqlalchemy_spellings_autopack_cannot_use_are_refused_naming_the_right_one(
        tmp, bad, said):
    r = ctl("--db", bad, "db", "init")
    assert r.rc == 2 and said in r.err, r
    assert "hunter2" not in r.out + r.err, r
    assert os.listdir(str(tmp)) == []


def long_path(tmp, n):
    """A database path of exactly n bytes under tmp, its directories made."""
    d = tmp
    while len(str(d)) + 1 + 200 + 4 < n:
        d = d / ("d" * 200)
    d.mkdir(parents=True, exist_ok=True)
    p = d / ("x" * (n - len(str(d)) - 1 - 3) + ".db")
    assert len(str(p)) == n
    return p


def test_a_database_path_too_long_for_sqlite_is_refused_naming_the_limit(tmp):
    """SQLite opens no file whose path is longer than 512 bytes: a longer path failed with
    a message cut at 1 KiB before its cause (the path twice), naming nothing."""
    ok = long_path(tmp, 470)
    assert ctl("--db", url(ok), "db", "init").rc == 0
    p = long_path(tmp, 471)
    for args in (["db", "init"], ["db", "check"]):
        r = ctl("--db", url(p), *args)
        assert r.rc == 2, r
        assert "the database's path is 471 bytes long; SQLite opens a database by a path " \
            "of at most 470 bytes" in r.err, r
        assert len(r.err) < 1000, r
    r = run("autopack-supervisor", "--db", url(p), "--dry-run")
    assert r.rc == 1 and "the database's path is 471 bytes long" in r.err, r
    assert not p.exists() and sorted(os.listdir(p.parent)) == [ok.name]


def test_relative_url_from_two_directories_names_the_same_database(tmp):
    r = ctl("--db", "sqlite:///one.db", "db", "init")
    assert r.rc == 0, r
    sub = tmp / "sub"
    sub.mkdir()
    a = ctl("--db", "sqlite:///one.db", "db", "check", "--json", "--allow-empty-db",
            cwd=tmp)
    b = ctl("db", "check", "--json", "--allow-empty-db",
            env={"AUTOPACK_DB_URL": "sqlite:///../one.db"}, cwd=sub)
    assert a.rc == 0 and b.rc == 0, (a, b)
    da, db = json.loads(a.out)["database"], json.loads(b.out)["database"]
    assert da["url"] == db["url"] == "sqlite:///" + os.path.realpath(tmp / "one.db")
    assert da["uuid"] == db["uuid"] and da["device_inode"] == db["device_inode"]
    assert not (sub / "one.db").exists()


@pytest.mark.parametrize("args", [["db", "check"], ["db", "migrate"],
                                  ["seed", "telemetry-run"]])
def test_missing_database_is_refused_and_no_file_is_created(tmp, args):
    r = ctl("--db", "sqlite:///missing.db", *args)
    assert r.rc == 2, r
    assert "no such database file" in r.err and "db init" in r.err
    assert os.listdir(tmp) == []


def test_flag_outranks_the_environment_whose_two_variables_must_agree(tmp):
    init(tmp / "a.db")
    init(tmp / "b.db")
    other_app = "postgresql://app:s3cret@dbhost/app"   # set by another program
    r = ctl("--db", "sqlite:///a.db", "db", "check", "--json", "--allow-empty-db",
            env={"AUTOPACK_DB_URL": "sqlite:///b.db", "DATABASE_URL": other_app})
    assert r.rc == 0, r
    assert json.loads(r.out)["database"]["url"] == url(tmp / "a.db")
    r = ctl("db", "check", "--json", "--allow-empty-db",
            env={"AUTOPACK_DB_URL": "sqlite:///b.db"})
    assert r.rc == 0 and json.loads(r.out)["database"]["url"] == url(tmp / "b.db"), r
    r = ctl("db", "check", env={"AUTOPACK_DB_URL": "sqlite:///a.db",
                                "DATABASE_URL": "sqlite:///b.db"})
    assert r.rc == 2 and "DATABASE_URL names" in r.err, r
    r = ctl("db", "check", env={"AUTOPACK_DB_URL": "sqlite:///a.db", "DATABASE_URL": other_app})
    assert r.rc == 2 and "DATABASE_URL names postgresql://" in r.err, r
    assert "s3cret" not in r.err, r


def test_db_flag_given_twice_is_refused_naming_both(tmp):
    init(tmp / "a.db")
    for args in (["--db", "sqlite:///a.db", "--db", "sqlite:///b.db", "db", "check"],
                 ["--db", "sqlite:///a.db", "db", "check", "--db", "sqlite:///b.db"]):
        r = ctl(*args)
        assert r.rc == 2 and "--db given twice" in r.err, (args, r)
    r = run("autopack-supervisor", "--db", "sqlite:///a.db", "--db", "sqlite:///b.db")
    assert r.rc == 2 and "--db given twice" in r.err, r


@pytest.mark.parametrize("bad,needle", [
    ("sqlite:///a.db#x", "fragments"),
    ("sqlite:///a%20b.db", "percent-escapes"),
    ("sqlite:///d.db ", "the database URL ends with a space (position 15 of 15)"),
    (" sqlite:///d.db", "the database URL starts with a space (position 1 of 15)"),
    ("sqlite:///d\n.db", "control character (byte 0x0a at position 12 of 15)"),
    ("sqlite:///d.db\r", "control character (byte 0x0d at position 15 of 15)"),
    ("postgresql://u:pw@h/db\t", "control character (byte 0x09"),
])
def test_fragments_and_percent_escapes_are_refused_and_create_nothing(tmp, bad, needle):
    for args in (["db", "init"], ["db", "check"]):
        r = ctl("--db", bad, *args)
        assert r.rc == 2 and needle in r.err, r
    r = run("autopack-supervisor", "--db", bad)
    assert r.rc == 1 and needle in r.err, r
    assert os.listdir(tmp) == []


def test_flag_and_environment_naming_the_same_file_agree(tmp):
    init(tmp / "a.db")
    r = ctl("--db", "sqlite:///a.db", "db", "check", "--allow-empty-db",
            env={"DATABASE_URL": url(tmp / "a.db")})
    assert r.rc == 0, r


def test_non_sqlite_file_is_refused_and_left_unchanged(tmp):
    p = tmp / "notes.db"
    p.write_text("not a database\n" * 500)
    before = read_bytes(p)
    for args in (["db", "check"], ["db", "init"], ["seed", "telemetry-run"], ["db", "migrate"]):
        r = ctl("--db", url(p), *args)
        assert r.rc == 2, r
        assert "not an SQLite database" in r.err
    assert read_bytes(p) == before
    assert sorted(os.listdir(tmp)) == ["notes.db"]


def test_a_fifo_named_as_the_database_is_refused_without_waiting_for_a_writer(tmp):
    # Taking the database's lock opened the path for reading: on a FIFO `db reidentify`
    # and the supervisor waited for a writer for ever (the supervisor with SIGTERM held).
    p = tmp / "drain.db"
    os.mkfifo(p)
    for args in (["db", "reidentify"], ["db", "check"], ["db", "migrate"], ["status"]):
        r = ctl("--db", url(p), *args, timeout=20)
        assert r.rc == 2, r
        assert "%s: not a regular file" % p in r.err, r
    r = run("autopack-supervisor", "--db", url(p), "--workers", 0, timeout=20,
            env={"ANTHROPIC_API_KEY": "sk-ant-fifo"})
    assert r.rc == 1, r
    assert "%s is not a regular file" % p in r.err, r
    assert sorted(os.listdir(tmp)) == ["drain.db"]


def test_foreign_sqlite_file_is_refused_and_left_unchanged(tmp):
    p = tmp / "other.db"
    sql(p, "CREATE TABLE phases (id INTEGER); INSERT INTO phases VALUES (1);")
    before = read_bytes(p)
    for args in (["db", "check"], ["db", "init"], ["run", "import", "x.json"]):
        r = ctl("--db", url(p), *args)
        assert r.rc == 2, r
        assert "not an autopack database (no meta table)" in r.err
    assert read_bytes(p) == before
    assert sorted(os.listdir(tmp)) == ["other.db"]


def test_partial_schema_is_refused_listing_the_missing_tables(tmp):
    p = tmp / "a.db"
    init(p)
    sql(p, "DROP TABLE attempts; DROP TABLE control_log;")
    r = ctl("--db", url(p), "db", "check", "--json")
    assert r.rc == 2
    assert "missing 2 tables" in r.err and "attempts, control_log" in r.err
    assert json.loads(r.out)["error"] == "EPARTIAL"


def test_newer_schema_is_refused(tmp):
    p = tmp / "a.db"
    init(p)
    sql(p, "UPDATE meta SET schema_version = 7;")
    r = ctl("--db", url(p), "db", "check")
    assert r.rc == 2 and "schema version 7 is newer" in r.err


@pytest.mark.parametrize("version", [2**32 + 2, 2**32 + 5, 2**63 - 1])
def test_a_schema_version_past_an_int_is_refused_as_it_is(tmp, version):
    """meta.schema_version another program or a hand edit wrote: it was cut to an int, so
    4294967298 was version 2 (db migrate ran the migrations from 2 again on a current
    database, after a backup named v2) and 4294967301 version 5; 2^63-1 was called -1."""
    p = tmp / "a.db"
    init(p)
    sql(p, "UPDATE meta SET schema_version = %d;" % version)
    for args in (["db", "check"], ["db", "migrate"]):
        r = ctl("--db", url(p), *args)
        assert r.rc == 2 and ("schema version %d is newer than this program's" % version) \
            in r.err, r
    assert [n for n in os.listdir(str(tmp)) if ".bak" in n] == []


@pytest.mark.parametrize("value, shown", [("4.5", "4.5"), ("2.5", "2.5"),
                                          ("'4x'", "the text '4x'")])
def test_a_schema_version_that_is_not_a_whole_number_is_refused(tmp, value, shown):
    """A hand edit of meta.schema_version to 4.5 or '4x' was read as version 4 (2.5 as 2):
    db migrate said it migrated a current database from that version, running the
    migrations again on it."""
    p = tmp / "a.db"
    init(p)
    sql(p, "UPDATE meta SET schema_version = %s;" % value)
    before = read_bytes(p)
    for args in (["db", "check"], ["db", "migrate"]):
        r = ctl("--db", url(p), *args)
        assert r.rc == 2, r
        assert ("meta.schema_version is %s, not a whole number: not a valid autopack version;"
                " the file was left untouched" % shown) in r.err, r
    assert read_bytes(p) == before
    assert [n for n in os.listdir(str(tmp)) if ".bak" in n] == []


def test_init_prints_the_banner_and_twice_changes_nothing(tmp):
    p = tmp / "a.db"
    r = init(p)
    assert "url:            sqlite:///%s" % p in r.out
    assert "created autopack database" in r.out
    u = uuid_of(p)
    before = read_bytes(p)
    r = ctl("--db", url(p), "db", "init")
    assert r.rc == 0, r
    assert "already an autopack database (uuid %s), nothing changed" % u in r.out
    assert read_bytes(p) == before
    r = ctl("--db", url(p), "db", "init", "--json")
    assert r.rc == 0 and json.loads(r.out)["created"] is False
    assert "url:" in r.err


def test_read_only_commands_leave_no_wal_or_shm_behind_and_a_user_s_alone(tmp):
    """SQLite makes a WAL database's -wal and -shm files to read it, and only a writer's
    close removes them: the read-only commands remove what they made, but not while
    another connection uses the database."""
    p = tmp / "a.db"
    init(p)
    assert sorted(os.listdir(tmp)) == ["a.db"]
    reads = (["db", "check", "--allow-empty-db"], ["db", "check", "--json", "--allow-empty-db"],
             ["session", "list"], ["failed"], ["telemetry", "report"])
    for cmd in reads:
        r = ctl("--db", url(p), *cmd)
        # An empty database has no telemetry to report: exit status 1.
        assert r.rc in (0, 1) and "/a.db" in r.out + r.err, r
        assert sorted(os.listdir(tmp)) == ["a.db"], cmd
    con = sqlite3.connect(str(p))
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    sides = {s: os.stat(str(p) + s).st_ino for s in ("-wal", "-shm")}
    for cmd in reads:
        assert ctl("--db", url(p), *cmd).rc in (0, 1), cmd
    assert {s: os.stat(str(p) + s).st_ino for s in sides} == sides
    con.execute("INSERT INTO runs (id, state, created_at, updated_at) VALUES"
                " ('r1', 'QUEUED', '2026-12-02 00:00:00.000000', '2026-12-02 00:00:00.000000')")
    con.commit()
    r = ctl("--db", url(p), "db", "check", "--json")
    assert r.rc == 0 and json.loads(r.out)["runs"]["total"] == 1, r
    con.close()
    assert sorted(os.listdir(tmp)) == ["a.db"]


def test_db_check_of_an_empty_database_warns_and_exits_1_unless_allowed(tmp):
    p = tmp / "a.db"
    init(p)
    r = ctl("--db", url(p), "db", "check")
    assert r.rc == 1
    assert "is empty: no runs and no phases" in r.err and "Likely causes" in r.err
    r = ctl("--db", url(p), "db", "check", "--allow-empty-db")
    assert r.rc == 0 and "Continuing because of --allow-empty-db" in r.err
    r = ctl("--db", url(p), "db", "check", "--json")
    assert r.rc == 1
    j = json.loads(r.out)
    assert j["empty"] is True and j["status"] == "empty"
    # The refusal names itself as every other failure does: "ok" false had no "error".
    assert j["ok"] is False and j["error"] == "EEMPTY", j
    assert j["message"] == ("sqlite:///%s is empty: no runs and no phases; pass "
                            "--allow-empty-db to accept an empty database" % p), j
    r = ctl("--db", url(p), "db", "check", "--json", "--allow-empty-db")
    j = json.loads(r.out)
    assert r.rc == 0 and j["ok"] is True and "error" not in j and "message" not in j, r


def test_db_check_reports_states_runs_and_telemetry(tmp):
    p = tmp / "a.db"
    init(p)
    assert ctl("--db", url(p), "seed", "telemetry-run").rc == 0
    rows = []
    for i, (ok, trunc, cat, cplx) in enumerate([(1, 0, "implementation", "low"),
                                                 (1, 0, "implementation", "medium"),
                                                 (1, 1, "tests", "medium"),
                                                 (0, 0, "docs", "low")]):
        rows.append("INSERT INTO token_estimation_v2_events (run_id, phase_id, timestamp, "
                    "created_at, category, complexity, deliverable_count, deliverables_json, "
                    "predicted_output_tokens, actual_output_tokens, selected_budget, success, "
                    "truncated, is_truncated_output, model) VALUES ('telemetry-collection-v4', "
                    "'telemetry-p1-string-util', 't', 't', '%s', '%s', 1, '[]', 100, 120, 200, "
                    "%d, %d, %d, 'm');" % (cat, cplx, ok, trunc, trunc))
    sql(p, "UPDATE phases SET state = 'COMPLETE' WHERE phase_index < 3;"
           "UPDATE phases SET state = 'FAILED' WHERE phase_index = 3;" + "".join(rows))
    r = ctl("--db", url(p), "db", "check")
    assert r.rc == 0, r
    for state, n in (("QUEUED", 6), ("COMPLETE", 3), ("FAILED", 1), ("TOTAL", 10)):
        assert re.search(r"^  %s +%d$" % (state, n), r.out, re.M), state
    assert "telemetry-collection-v4 [RUN_CREATED]: 10 phases (6 queued, 0 executing, " \
           "3 complete, 1 failed)" in r.out
    assert "token_estimation_v2_events: 4 (success 3, 75.0%; truncated 1, 25.0%)" in r.out
    assert "by category: implementation 2, tests 1" in r.out
    assert "by complexity: medium 2, low 1" in r.out
    j = json.loads(ctl("--db", url(p), "db", "check", "--json").out)
    assert j["status"] == "healthy" and j["ok"] is True
    assert j["phases"]["by_state"]["COMPLETE"] == 3 and j["phases"]["total"] == 10
    assert j["telemetry"]["token_estimation_v2"]["success_pct"] == 75.0
    assert j["database"]["rows"]["token_estimation_v2_events"] == 4
    assert j["runs"]["per_run"][0]["failed"] == 1


def make_v1(p):
    """A hand-made version-1 database: the current schema less what versions 2, 4 and 5
    added."""
    init(p)
    sql(p, "DROP TABLE estimator_coefficients; UPDATE meta SET schema_version = 1;"
           "ALTER TABLE token_estimation_v2_events DROP COLUMN input_tokens;"
           "ALTER TABLE token_estimation_v2_events DROP COLUMN deliverables_detail_json;"
           "ALTER TABLE llm_usage_events DROP COLUMN max_tokens;"
           "INSERT INTO runs (id, created_at, updated_at) VALUES ('old-run', 'a', 'b');"
           "PRAGMA journal_mode=DELETE;")


def test_db_check_reports_an_older_schema_without_changing_it(tmp):
    p = tmp / "old.db"
    make_v1(p)
    before = read_bytes(p)
    r = ctl("--db", url(p), "db", "check")
    assert r.rc == 0, r
    assert "schema version 1 is older" in r.out and "autopack-ctl db migrate" in r.out
    assert read_bytes(p) == before
    assert glob.glob(str(tmp / "*.bak")) == []
    j = json.loads(ctl("--db", url(p), "db", "check", "--json").out)
    assert j["schema"] == {"version": 1, "current": 5, "migration_needed": True}


def test_db_migrate_backs_up_then_upgrades_an_older_schema(tmp):
    p = tmp / "old.db"
    make_v1(p)
    u = uuid_of(p)
    r = ctl("--db", url(p), "db", "migrate", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert j["migrated"] is True and j["from"] == 1 and j["to"] == 5
    backups = glob.glob(str(tmp / "old.db.v1-*.bak"))
    assert backups == [j["backup"]]
    con = sqlite3.connect(backups[0])
    assert con.execute("SELECT schema_version, db_uuid FROM meta").fetchone() == (1, u)
    assert con.execute("SELECT id FROM runs").fetchall() == [("old-run",)]
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                       "'estimator_coefficients'").fetchone() == (0,)
    con.close()
    con = sqlite3.connect(str(p))
    assert con.execute("SELECT schema_version, db_uuid FROM meta").fetchone() == (5, u)
    assert con.execute("SELECT count(*) FROM estimator_coefficients").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM pragma_table_info('token_estimation_v2_events')"
                       " WHERE name IN ('input_tokens', 'deliverables_detail_json')"
                       ).fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM pragma_table_info('estimator_coefficients')"
                       " WHERE name = 'model_json'").fetchone() == (1,)
    assert con.execute("SELECT id FROM runs").fetchall() == [("old-run",)]
    con.close()
    r = ctl("--db", url(p), "db", "migrate")
    assert r.rc == 0 and "is current; nothing changed" in r.out


def test_db_migrate_writes_its_backup_file_not_a_link_planted_at_its_name(tmp):
    """The backup is created only as a new file; a link put at its name right after the
    create (tests/tools/plant_shim.c does it at that moment) is not followed: another
    database it points at is left as it was, and the migration is refused, naming why."""
    p = tmp / "old.db"
    make_v1(p)
    victim = tmp / "other.db"
    con = sqlite3.connect(str(victim))
    con.execute("CREATE TABLE precious (x)")
    con.execute("INSERT INTO precious VALUES ('kept')")
    con.commit()
    con.close()
    before = read_bytes(victim)
    log = tmp / "plant.log"
    r = ctl("--db", url(p), "db", "migrate",
            env=preload("plant-shim.so", AUTOPACK_PLANT_SUFFIX=".bak",
                        AUTOPACK_PLANT_TARGET=str(victim), AUTOPACK_PLANT_LOG=str(log)))
    assert open(str(log)).read().startswith("planted %s.v1-" % p), r
    assert read_bytes(victim) == before, r
    assert r.rc == 2, r
    assert "was removed or replaced while it was written" in r.err, r
    [link] = glob.glob(str(tmp / "old.db.v1-*.bak"))
    assert os.readlink(link) == str(victim)
    con = sqlite3.connect(str(p))
    assert con.execute("SELECT schema_version FROM meta").fetchone() == (1,)
    con.close()


def test_db_migrate_refuses_when_its_backups_directory_cannot_be_synced(tmp):
    """The backup's name is made durable (its directory synced) before the database is
    changed: when that sync fails (tests/tools/fsync_shim.c fails the directory's), the
    migration is refused naming it, the database left at version 1 and no backup left."""
    p = tmp / "old.db"
    make_v1(p)
    fail = tmp / "fail"
    fail.write_text("")
    r = ctl("--db", url(p), "db", "migrate",
            env=preload("fsync-shim.so", AUTOPACK_SHIM_PATH=os.path.realpath(str(tmp)),
                        AUTOPACK_SHIM_LOG=str(tmp / "shim.log"), AUTOPACK_SHIM_FAIL=str(fail)))
    assert r.rc == 2, r
    assert "failed: syncing its directory: Input/output error" in r.err, r
    assert glob.glob(str(tmp / "old.db.v1-*.bak")) == []
    con = sqlite3.connect(str(p))
    assert con.execute("SELECT schema_version FROM meta").fetchone() == (1,)
    con.close()


def test_offline_write_commands_migrate_first_and_say_so(tmp):
    p = tmp / "old.db"
    make_v1(p)
    r = ctl("--db", url(p), "seed", "telemetry-run")
    assert r.rc == 0, r
    assert "migrated the schema from version 1 to 5" in r.out
    assert len(glob.glob(str(tmp / "old.db.v1-*.bak"))) == 1


def test_writes_are_refused_while_another_process_holds_the_lock(tmp):
    p = tmp / "a.db"
    init(p)
    with open(str(p), "rb") as lock:   # the lock is the database file's own flock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = ctl("--db", url(p), "seed", "telemetry-run")
        assert r.rc == 1, r
        assert "is held by" in r.err and "pid %d" % os.getpid() in r.err
        r = ctl("--db", url(p), "db", "check", "--allow-empty-db")
        assert r.rc == 0, r
    con = sqlite3.connect(str(p))
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    con.close()
    assert ctl("--db", url(p), "seed", "telemetry-run").rc == 0


def test_a_lock_held_from_another_pid_namespace_is_refused_without_a_pid(tmp):
    """A container sharing the database's directory sees the lock, not its holder: the
    holder's pid reads 0 in its /proc/locks. Writers are refused and say so."""
    import shutil
    import subprocess
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a pid namespace")
    probe = subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        # A chroot whose root is not a mount point cannot mount a /proc of its own.
        pytest.skip("no pid namespace with its own /proc here: " + probe.stderr.strip())
    p = tmp / "a.db"
    init(p)
    bindir = os.environ.get("AUTOPACK_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "build", "rel", "bin")
    with open(str(p), "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for argv in ([os.path.join(bindir, "autopack-ctl"), "--db", url(p), "seed",
                      "telemetry-run"],
                     [os.path.join(bindir, "autopack-supervisor"), "--db", url(p),
                      "--dry-run", "--allow-empty-db", "--exit-when-drained"]):
            r = subprocess.run(["unshare", "-p", "-f", "--mount-proc"] + argv,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 1, (argv, r.stderr)
            assert "is held by another process (its pid is not in /proc/locks)" in r.stderr, \
                r.stderr
            assert "pid 0" not in r.stderr
    assert ctl("--db", url(p), "seed", "telemetry-run").rc == 0


def test_read_only_commands_read_a_database_on_a_read_only_mount(tmp):
    import shutil
    import subprocess
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount the directory read-only")
    init(tmp / "d.db")
    # Closed cleanly: no -wal or -shm is left, as after a supervisor's end.
    con = sqlite3.connect(str(tmp / "d.db"))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert sorted(os.listdir(tmp)) == ["d.db"]
    before = open(tmp / "d.db", "rb").read()
    ctl_bin = os.path.join(os.environ.get("AUTOPACK_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "build", "rel", "bin"), "autopack-ctl")
    script = ('mount --make-rprivate / && mount -o bind,ro "$1" "$1" || exit 99; shift; '
              'for cmd in "db check --allow-empty-db" "session list" "failed"; do '
              '"$@" $cmd || echo "COMMAND-FAILED: $cmd"; done')
    p = subprocess.run(["unshare", "-m", "--propagation", "unchanged", "sh", "-c", script,
                        "sh", str(tmp), ctl_bin,
                        "--db", url(tmp / "d.db")], capture_output=True, text=True,
                       timeout=120)
    if p.returncode == 99:
        pytest.skip("mounting read-only is not permitted here: " + p.stderr)
    assert "COMMAND-FAILED" not in p.stdout and "unable to open" not in p.stderr, p
    assert "schema version" in p.stdout, p
    assert sorted(os.listdir(tmp)) == ["d.db"]
    assert open(tmp / "d.db", "rb").read() == before


def test_a_database_this_user_cannot_read_or_write_is_named_with_its_mode_and_owner(tmp):
    # SQLite says only "unable to open database file" or "attempt to write a readonly
    # database"; a -wal left read-only refused every write of a database made writable
    # again, naming neither the file nor why.
    import shutil
    import subprocess
    import tempfile
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    d = tempfile.mkdtemp(prefix="autopack-access-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        db = os.path.join(d, "n.db")
        init(db)
        os.chown(d, 65534, 65534)
        os.chown(db, 65534, 65534)
        as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        env = dict(os.environ, ANTHROPIC_API_KEY="sk-ant-access")

        def as_user(name, *args):
            return subprocess.run(as_nobody + [os.path.join(os.path.dirname(
                ctl_path()), name)] + [str(a) for a in args], capture_output=True,
                text=True, timeout=60, env=env)

        os.chmod(db, 0)
        r = as_user("autopack-ctl", "--db", url(db), "db", "check")
        assert r.returncode == 2, r
        assert "%s: cannot read it as uid 65534: Permission denied (mode 0000, owner uid " \
            "65534)" % db in r.stderr, r
        os.chmod(db, 0o600)
        for side in ("-wal", "-shm"):
            with open(db + side, "wb"):
                pass
            os.chown(db + side, 65534, 65534)
            os.chmod(db + side, 0o400)
        r = as_user("autopack-supervisor", "--db", url(db), "--workers", 0,
                    "--allow-empty-db")
        assert r.returncode == 1, r
        assert "%s-wal: cannot write it as uid 65534: Permission denied (mode 0400" % db \
            in r.stderr, r
        for side in ("-wal", "-shm"):
            os.remove(db + side)
        os.chmod(d, 0o500)
        r = as_user("autopack-supervisor", "--db", url(db), "--workers", 0,
                    "--allow-empty-db")
        assert r.returncode == 1, r
        assert "%s: cannot create the database's -wal or -shm in it as uid 65534: " \
            "Permission denied" % d in r.stderr, r
    finally:
        os.chmod(d, 0o755)
        shutil.rmtree(d)


def ctl_path():
    return os.path.join(os.environ.get("AUTOPACK_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "build", "rel", "bin"), "autopack-ctl")


def test_a_phase_index_declared_text_is_refused_naming_it(tmp):
    """phases.phase_index declared TEXT (the table made again by another program): SQLite
    would store each index as text, and a run's phases would be taken in the order of
    their index as text (10 before 2). Every command refuses the database, naming the
    column and its type. Before, it was opened as any other."""
    p = tmp / "a.db"
    init(p)
    sql(p, "PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = replace(sql,"
           " 'phase_index INTEGER NOT NULL', 'phase_index TEXT NOT NULL')"
           " WHERE name = 'phases'; PRAGMA writable_schema = OFF;")
    r = ctl("--db", url(p), "db", "check", "--json")
    assert r.rc == 2 and json.loads(r.out)["error"] == "EPARTIAL", r
    assert ("phases.phase_index is of type TEXT, whose values compare as text (10 before 2);"
            " autopack runs a run's phases in the order of tiers.tier_index and"
            " phases.phase_index, so it refuses to use the database (restore it from a"
            " backup)") in r.err, r
