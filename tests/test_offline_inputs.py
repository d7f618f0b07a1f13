"""The offline commands given what a careless or hostile operator gives them: odd files,
odd plans and TSVs, flags twice. Each gets a clear error naming what is wrong, and
nothing is written; nothing hangs or crashes."""
import datetime
import json
import os
import re
import sqlite3
import subprocess
import threading

import pytest

from conftest import DATA, binpath, ctl
from supervisor_helpers import full_tmpfs

SAMPLES = os.path.join(DATA, "autopack-v2-telemetry-samples.tsv")


def url(path):
    return "sqlite:///" + str(path)


@pytest.fixture
def db(tmp):
    p = tmp / "odd.db"
    r = ctl("--db", url(p), "db", "init")
    assert r.rc == 0, r
    return p


def count(p, table):
    con = sqlite3.connect(str(p))
    n = con.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    con.close()
    return n


def small_plan(run_id="r1", workspace="ws"):
    return {"runs": [{"run_id": run_id, "workspace": workspace, "tiers": [{
        "tier_id": "T1", "name": "t", "phases": [{
            "phase_id": "p1", "name": "n", "scope": {"deliverables": ["a.py"]}}]}]}]}


@pytest.mark.parametrize("how", ["plan", "seed"])
def test_a_workspace_that_is_a_file_is_refused(db, tmp, how):
    (tmp / "afile").write_text("not a directory\n")
    if how == "plan":
        (tmp / "plan.json").write_text(json.dumps(small_plan(workspace="afile")))
        r = ctl("--db", url(db), "run", "import", "plan.json")
    else:
        r = ctl("--db", url(db), "seed", "telemetry-run", "--workspace", "afile")
    assert r.rc == 1, r
    assert "workspace %s" % (tmp / "afile") in r.err and "not a directory" in r.err, r
    assert count(db, "runs") == 0
    assert (tmp / "afile").read_text() == "not a directory\n"


def test_a_plan_with_a_byte_order_mark_imports(db, tmp):
    (tmp / "plan.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(small_plan()).encode())
    r = ctl("--db", url(db), "run", "import", "plan.json")
    assert r.rc == 0, r
    assert count(db, "phases") == 1


def test_an_empty_plan_file_is_named_as_empty(db, tmp):
    (tmp / "plan.json").write_bytes(b"")
    r = ctl("--db", url(db), "run", "import", "plan.json")
    assert r.rc == 1, r
    assert "plan.json: empty file, expected a JSON plan" in r.err, r


def test_a_plan_from_standard_input_resolves_its_workspace_in_the_current_directory(db, tmp):
    r = ctl("--db", url(db), "run", "import", "/dev/stdin", input=json.dumps(small_plan()))
    assert r.rc == 0, r
    con = sqlite3.connect(str(db))
    assert con.execute("SELECT workspace FROM runs").fetchall() == [(str(tmp / "ws"),)]
    con.close()


def test_a_plan_over_the_size_limit_is_refused(db, tmp):
    # A sparse file: the limit is what stops /dev/zero or an endless pipe too, read the
    # same way, without a test that would eat the machine's memory if it failed.
    with open(tmp / "big.json", "wb") as f:
        f.truncate(300 << 20)
    r = ctl("--db", url(db), "run", "import", "big.json")
    assert r.rc == 1, r
    assert "big.json: the plan is larger than 256 MiB" in r.err, r
    assert count(db, "runs") == 0


def wchan(pid):
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return f.read()
    except OSError:
        return ""


def test_a_plan_on_a_fifo_is_read_before_the_database_is_locked(db, tmp):
    """run import --wait of a FIFO waits for its writer with the database free."""
    fifo = tmp / "plan.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([binpath("autopack-ctl"), "--db", url(db), "run", "import",
                             str(fifo), "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        # Wait until the import waits for a writer on the FIFO.
        for _ in range(2000):
            if wchan(proc.pid) == "wait_for_partner" or proc.poll() is not None:
                break
            threading.Event().wait(0.005)
        assert wchan(proc.pid) == "wait_for_partner", proc.poll()
        # Meanwhile the database is free for another writer.
        r = ctl("--db", url(db), "seed", "telemetry-run")
        assert r.rc == 0, r
        with open(fifo, "w") as f:
            f.write(json.dumps(small_plan()))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert count(db, "runs") == 2


def sample_lines():
    with open(SAMPLES, "rb") as f:
        return f.read().split(b"\n")


def samples_with(tmp, column, value):
    """The samples as bad.tsv in tmp, with `column` of the file's third line set to
    `value` (bytes)."""
    lines = sample_lines()
    fields = lines[2].split(b"\t")
    fields[column] = value
    lines[2] = b"\t".join(fields)
    (tmp / "bad.tsv").write_bytes(b"\n".join(lines))


def test_a_sample_tsv_with_a_byte_order_mark_imports(db, tmp):
    with open(SAMPLES, "rb") as f:
        (tmp / "bom.tsv").write_bytes(b"\xef\xbb\xbf" + f.read())
    r = ctl("--db", url(db), "telemetry", "import", "bom.tsv")
    assert r.rc == 0, r
    assert count(db, "token_estimation_v2_events") == 64


@pytest.mark.parametrize("bad", [b"med\xffium", b"med\xc3ium", b"\xed\xa0\x80"])
def test_a_sample_tsv_with_invalid_utf8_is_refused_with_its_line_and_column(db, tmp, bad):
    samples_with(tmp, 2, bad)
    r = ctl("--db", url(db), "telemetry", "import", "bad.tsv")
    assert r.rc == 1, r
    assert "bad.tsv:3: column complexity: not valid UTF-8" in r.err, r
    assert count(db, "token_estimation_v2_events") == 0


def test_a_sample_tsv_that_is_a_directory_says_so(db, tmp):
    (tmp / "dir.tsv").mkdir()
    r = ctl("--db", url(db), "telemetry", "import", "dir.tsv")
    assert r.rc == 1, r
    assert "dir.tsv: cannot read: Is a directory" in r.err, r


def test_telemetry_import_refuses_two_run_ids(db, tmp):
    r = ctl("--db", url(db), "telemetry", "import", SAMPLES, "--run-id", "a", "--run-id", "b")
    assert r.rc == 2, r
    assert "--run-id given twice" in r.err, r
    assert count(db, "runs") == 0


@pytest.mark.parametrize("args", [
    ["--db", "sqlite:///a.db", "--db", "sqlite:///b.db", "db", "check"],
    ["--db=sqlite:///a.db", "db", "check", "--db", "sqlite:///b.db"],
    ["db", "check", "--db", "sqlite:///a.db", "--db=sqlite:///b.db"],
])
def test_two_different_db_flags_are_refused(tmp, args):
    for name in ("a.db", "b.db"):
        assert ctl("--db", url(name), "db", "init").rc == 0
    r = ctl(*args)
    assert r.rc == 2, r
    assert "--db given twice with different URLs" in r.err, r
    assert "== autopack database ==" not in r.out


def test_the_same_db_flag_twice_is_fine(db):
    r = ctl("--db", url(db), "db", "check", "--db", url(db), "--allow-empty-db")
    assert r.rc == 0, r


def test_db_init_through_a_dangling_symlink_names_the_symlink(tmp):
    os.symlink("elsewhere/missing.db", tmp / "link.db")
    r = ctl("--db", url("link.db"), "db", "init")
    assert r.rc == 2, r
    assert "%s is a symbolic link to elsewhere/missing.db, which does not exist" % (
        tmp / "link.db") in r.err, r
    assert "db init)" not in r.err, r
    assert os.path.islink(tmp / "link.db") and not (tmp / "elsewhere").exists()


def test_db_init_through_a_loop_of_symlinks_names_the_loop(tmp):
    """A link to a link back to it was said to lead to a file that does not exist."""
    os.symlink("b.db", tmp / "a.db")
    os.symlink("a.db", tmp / "b.db")
    r = ctl("--db", url("a.db"), "db", "init")
    assert r.rc == 2, r
    assert "%s is a symbolic link to b.db, which leads back to itself (a loop of symbolic" \
        " links)" % (tmp / "a.db") in r.err, r
    assert os.path.islink(tmp / "a.db") and os.path.islink(tmp / "b.db")


@pytest.mark.parametrize("stamp", [b"2025-13-45T99:99:99Z", b"2025-02-30T10:00:00Z",
                                   b"2025-12-23T24:00:00Z", b"2025-12-23T22:06:12+25:00"])
def test_a_sample_tsv_with_a_time_that_does_not_exist_is_refused(db, tmp, stamp):
    """The right shape is not enough: a month 13 or a 30 February would be stored as it
    is, in a column every other row holds as a real time."""
    samples_with(tmp, 0, stamp)
    r = ctl("--db", url(db), "telemetry", "import", "bad.tsv")
    assert r.rc == 1, r
    assert "bad.tsv:3: column timestamp: '%s' is not a time that exists" % stamp.decode() \
        in r.err, r
    assert count(db, "token_estimation_v2_events") == 0


@pytest.mark.parametrize("stamp,stored", [
    (b"0999-03-01T01:02:03Z", "0999-03-01 01:02:03.000000"),
    (b"0001-01-01T00:30:00+00:15", "0001-01-01 00:15:00.000000"),
    (b"9999-12-31T23:59:59.5Z", "9999-12-31 23:59:59.500000"),
])
def test_a_sample_tsv_with_a_year_before_1000_is_stored_with_four_digits(db, tmp, stamp,
                                                                         stored):
    """A year before 1000 was written in fewer digits and the hour moved
    ("999-03-01  1:02:03.000000"), in a column read and compared as text."""
    samples_with(tmp, 0, stamp)
    r = ctl("--db", url(db), "telemetry", "import", "bad.tsv")
    assert r.rc == 0, r
    con = sqlite3.connect(str(db))
    got = [t for (t,) in con.execute("SELECT timestamp FROM token_estimation_v2_events")]
    con.close()
    assert stored in got, got
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", t) for t in got), got
    # Four digits keep the text order the time order (the original compares these columns
    # as text); the original's reader (SQLAlchemy's DateTime on SQLite) reads it back.
    import original_reader
    rows = original_reader.read_everything(str(db))["token_estimation_v2_events"]
    assert datetime.datetime.fromisoformat(stored) in \
        [r._mapping["timestamp"] for r in rows], rows


@pytest.mark.parametrize("stamp", [b"0000-06-01T00:00:00Z", b"0001-01-01T00:30:00+01:00",
                                   b"9999-12-31T23:00:00-05:00"])
def test_a_sample_tsv_with_a_time_outside_years_1_to_9999_in_utc_is_refused(db, tmp, stamp):
    """Year 0, or a time whose offset takes it there or past 9999, was stored as "0-06-01
    00 00:00.000000" or "10000-01-0  04:00:00.000000": no timestamp the original's
    readers (Python's datetime, years 1 to 9999) parse."""
    samples_with(tmp, 0, stamp)
    r = ctl("--db", url(db), "telemetry", "import", "bad.tsv")
    assert r.rc == 1, r
    assert ("bad.tsv:3: column timestamp: '%s' is not a time that exists in the years 0001 to"
            " 9999 (UTC)" % stamp.decode()) in r.err, r
    assert count(db, "token_estimation_v2_events") == 0


def ctl_bytes(*args, cwd=None):
    """autopack-ctl with byte arguments; (rc, stdout, stderr) as bytes."""
    p = subprocess.run([binpath("autopack-ctl")] + list(args), capture_output=True, cwd=cwd,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


NOT_UTF8 = b"d\xff"
SHOWN = b"d\\xff"  # how an error message shows it on a terminal


def test_json_errors_naming_text_that_is_not_utf8_are_json(db, tmp):
    """An argument or a file name that is not UTF-8 ends up in the error message: --json
    still prints the error as JSON, the bad bytes as U+FFFD."""
    lines = sample_lines()
    (tmp / os.fsdecode(NOT_UTF8 + b".tsv")).write_bytes(b"\n".join(lines[:1] + [b"x"]))
    for args in ([b"telemetry", b"import", b"--json", NOT_UTF8 + b".tsv"],
                 [b"failed", b"--json", b"--run", NOT_UTF8],
                 [b"session", b"show", b"--json", NOT_UTF8]):
        rc, out, err = ctl_bytes(b"--db", url(db).encode(), *args)
        assert rc in (1, 2), (args, out, err)
        doc = json.loads(out.decode("utf-8"))
        assert doc["ok"] is False and "d\ufffd" in doc["message"], (args, doc)
        assert b"out of memory" not in err, err


def test_a_json_error_keeps_the_whole_message_after_bytes_that_are_not_utf8(db, tmp):
    """Each bad byte grows to three as U+FFFD: the message is kept whole, not cut at the
    length it had."""
    for args, ends in (([b"calibrate", b"--json", b"\xff\xfe"],
                        "unexpected argument '\ufffd\ufffd'"),
                       ([b"telemetry", b"import", b"--json", b"\xff\xfe.tsv"],
                        "\ufffd\ufffd.tsv: cannot read: No such file or directory; "
                        "nothing was imported")):
        rc, out, err = ctl_bytes(b"--db", url(db).encode(), *args)
        assert rc in (1, 2), (args, out, err)
        doc = json.loads(out.decode("utf-8"))
        assert doc["message"].endswith(ends), (args, doc)


def test_a_database_whose_path_is_not_utf8_is_refused_by_name(tmp):
    """Its URL goes in every job and control frame, which hold only UTF-8: without the
    refusal every phase would fail at dispatch (invalid_job) and the JSON outputs break."""
    os.mkdir(os.fsdecode(NOT_UTF8))
    db = b"sqlite:///" + NOT_UTF8 + b"/a.db"
    rc, out, err = ctl_bytes(b"--db", db, b"db", b"init")
    assert rc == 2, (out, err)
    assert b"the database's path %s/%s/a.db is not valid UTF-8 (byte %d)" % (
        bytes(tmp), SHOWN, len(bytes(tmp)) + 3) in err, err
    assert os.listdir(os.fsdecode(NOT_UTF8)) == []
    # The same file reached from a directory whose own name is fine.
    rc, out, err = ctl_bytes(b"--db", b"sqlite:///a.db", b"db", b"init",
                             cwd=os.fsdecode(NOT_UTF8))
    assert rc == 2 and b"is not valid UTF-8" in err, (out, err)


def test_a_workspace_whose_path_is_not_utf8_is_refused_at_import(db, tmp):
    """A relative workspace is resolved against the plan's directory, whose name may not be
    UTF-8; a job could never carry it, so the phases are not queued to fail at dispatch."""
    d = tmp / os.fsdecode(NOT_UTF8)
    d.mkdir()
    (d / "plan.json").write_text(json.dumps(small_plan()))
    rc, out, err = ctl_bytes(b"--db", url(db).encode(), b"run", b"import",
                             NOT_UTF8 + b"/plan.json")
    assert rc == 1, (out, err)
    assert b"run r1: workspace %s/%s/ws is not valid UTF-8" % (bytes(tmp), SHOWN) in err
    assert count(db, "runs") == 0 and os.listdir(str(d)) == ["plan.json"]
    rc, out, err = ctl_bytes(b"--db", url(db).encode(), b"seed", b"telemetry-run",
                             b"--workspace", NOT_UTF8)
    assert rc == 1, (out, err)
    assert b"seed workspace %s/%s is not valid UTF-8" % (bytes(tmp), SHOWN) in err, err
    assert count(db, "runs") == 0


def test_a_json_result_naming_a_path_that_is_not_utf8_shows_it_with_u_fffd(db, tmp):
    """calibrate --json names its output files: in a directory whose name is not UTF-8
    the message said "out of memory", then the result could not be JSON (exit 2, the
    files written). The path is now in the JSON with U+FFFD for such a byte."""
    assert ctl("--db", url(db), "telemetry", "import", SAMPLES).rc == 0
    rc, out, err = ctl_bytes(b"--db", url(db).encode(), b"calibrate", b"--json", b"--out",
                             NOT_UTF8, cwd=str(tmp))
    assert rc == 0, (out, err)
    assert b"out of memory" not in err
    files = json.loads(out)["files"]
    assert all(f.startswith("d\ufffd/token_estimator_calibration_") for f in files.values())


@pytest.mark.parametrize("args", [["db", "check"], ["db", "check", "--json"],
                                  ["session", "list"], ["failed", "--json"]])
def test_output_that_cannot_be_written_fails_the_command(db, args):
    """stdout on a full disk (/dev/full): the command said nothing and exited 0 with its
    output lost; now it names the failure and exits 2."""
    assert ctl("--db", url(db), "seed", "telemetry-run").rc == 0
    with open("/dev/full", "w") as full:
        p = subprocess.run([binpath("autopack-ctl"), "--db", url(db)] + args, stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "autopack-ctl: writing standard output failed: " in p.stderr, p.stderr
    assert "; the output is incomplete" in p.stderr, p.stderr


def test_calibration_outputs_on_a_full_disk_name_the_cause(db, tmp):
    assert ctl("--db", url(db), "telemetry", "import", SAMPLES).rc == 0
    with full_tmpfs(tmp / "full", "4k") as full:
        r = ctl("--db", url(db), "calibrate", "--out", str(full))
        assert r.rc == 1, r
        assert re.search(r"writing %s/token_estimator_calibration_\w+\.md failed: No space "
                         r"left on device; the report, the proposal and the plot were removed"
                         % re.escape(str(full)), r.err), r
        assert sorted(os.listdir(full)) == ["filler"]


@pytest.mark.parametrize("args,named", [
    (["status", "--control", ""], "--control"),
    (["stop", "--control", ""], "--control"),
    (["watch", "--control", ""], "--control"),
    (["retry", "--all-failed", "--control", ""], "--control"),
    (["run", "import", ""], "the plan file's name"),
    (["telemetry", "import", ""], "the TSV file's name"),
    (["telemetry", "export", "--out", ""], "--out"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_an_empty_path_is_a_usage_error_naming_it(db, args, named):
    """An empty --control was refused as if no supervisor answered (exit 1); an empty plan
    or TSV name, or --out, got the error of opening "" (`: cannot read the plan: No such
    file or directory`), which names nothing."""
    r = ctl("--db", url(db), "--json", *args)
    assert r.rc == 2, r
    doc = json.loads(r.out)
    assert doc["ok"] is False and doc["error"] == "EINVAL", doc
    assert "%s is empty: give a path" % named in doc["message"], doc
    assert count(db, "runs") == 0 and count(db, "token_estimation_v2_events") == 0


NO_DB = {"AUTOPACK_DB_URL": None, "DATABASE_URL": None}


@pytest.mark.parametrize("db_args,env", [
    ([], NO_DB),
    (["--db", "sqlite:///odd.db?mode=ro"], NO_DB),
    ([], {"AUTOPACK_DB_URL": "sqlite:///a.db", "DATABASE_URL": "sqlite:///b.db"}),
], ids=["none named", "query string", "two variables disagree"])
@pytest.mark.parametrize("args", [
    ["status"], ["workers"], ["metrics"], ["pause"], ["resume"], ["scale", "2"], ["stop"],
    ["cancel", "r1", "p1"], ["watch", "--count", "1"], ["seed", "telemetry-run"],
    ["retry", "--all-failed"], ["run", "import", "plan.json"], ["db", "check"],
    ["session", "list"], ["failed"],
], ids=lambda a: " ".join(a))
def test_a_database_url_that_cannot_be_used_is_one_error_and_with_json_one_document(
        tmp, db_args, env, args):
    """The live commands, and the writes that go through a running supervisor, first
    looked the URL up to choose their way and reported its error there, then again on
    the way they took: the message twice on stderr and, with --json, two objects on
    stdout, which no JSON reader takes; `watch --json` gave none at all."""
    with open(tmp / "plan.json", "w") as f:
        json.dump(small_plan(), f)
    text = ctl(*db_args, *args, env=env)
    assert text.rc == 2, text
    assert text.out == "" and text.err.count("autopack-ctl: ") == 1, text
    r = ctl(*db_args, "--json", *args, env=env)
    assert r.rc == 2, r
    doc = json.loads(r.out)
    assert doc["ok"] is False and doc["message"] in r.err, doc
    assert r.err.count("autopack-ctl: ") == 1, r


@pytest.mark.parametrize("args", [
    ["scale"], ["retry"], ["failed", "--since", "x"], ["db", "check", "extra"],
    ["completion", "zsh"], ["nosuch"], ["db", "nosuch"], ["--bogus", "db", "check"], [],
    ["--db=sqlite:///other.db", "db", "check"],
], ids=lambda a: " ".join(a) or "no-command")
def test_usage_errors_with_json_are_a_json_error(db, args):
    """A bad argument, option or command printed its message on stderr only: --json gave
    an empty standard output, which no JSON reader takes."""
    r = ctl("--db", url(db), "--json", *args)
    assert r.rc == 2, r
    doc = json.loads(r.out)
    assert doc["ok"] is False and doc["error"] == "EINVAL", doc
    assert doc["message"] in r.err, r


# A path of two 1,500-byte names: within PATH_MAX, but each name over the 255 bytes a
# file name may hold.
LONG = "/" + "d" * 1500 + "/" + "f" * 1500


@pytest.mark.parametrize("args,cause", [
    (["run", "import", LONG + ".json"], "cannot read the plan: File name too long"),
    (["telemetry", "import", LONG + ".tsv"], "cannot read: File name too long"),
    (["telemetry", "export", "--out", LONG], "File name too long"),
], ids=lambda a: a[0] + " " + a[1] if isinstance(a, list) else None)
def test_a_message_naming_a_long_path_keeps_its_cause(db, args, cause):
    """The message was cut at 512 or 1,024 bytes, inside the path: what went wrong was
    lost. Now its middle is left out, marked, and its end kept."""
    r = ctl("--db", url(db), *args)
    assert r.rc != 0, r
    assert cause in r.err and "bytes left out ...]" in r.err, r.err[-300:]


def test_a_postgresql_url_too_long_to_show_whole_keeps_the_cause_of_its_failure(tmp):
    """A URL with long parameters (certificate paths): the connection's failure came after
    it, and was cut off with it."""
    pg = ("postgresql://u@127.0.0.1:1/db?sslrootcert=/%s&sslcert=/%s"
          % ("r" * 3000, "c" * 3000))
    r = ctl("--db", pg, "db", "check")
    assert r.rc == 2, r
    assert "Connection refused" in r.err, r.err[-300:]
