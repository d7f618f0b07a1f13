"""The offline commands given what a careless or hostile operator gives them: odd files,
odd plans and TSVs, flags twice. Each gets a clear error naming what is wrong, and
nothing is written; nothing hangs or crashes."""
import json
import os
import shutil
import sqlite3
import subprocess
import threading

import pytest

from conftest import DATA, binpath, ctl

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
    fifo = tmp / "plan.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([binpath("autopack-ctl"), "--db", url(db), "run", "import",
                             str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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


def test_a_sample_tsv_with_a_byte_order_mark_imports(db, tmp):
    with open(SAMPLES, "rb") as f:
        (tmp / "bom.tsv").write_bytes(b"\xef\xbb\xbf" + f.read())
    r = ctl("--db", url(db), "telemetry", "import", "bom.tsv")
    assert r.rc == 0, r
    assert count(db, "token_estimation_v2_events") == 64


@pytest.mark.parametrize("bad", [b"med\xffium", b"med\xc3ium", b"\xed\xa0\x80"])
def test_a_sample_tsv_with_invalid_utf8_is_refused_with_its_line_and_column(db, tmp, bad):
    lines = sample_lines()
    fields = lines[2].split(b"\t")
    fields[2] = bad
    lines[2] = b"\t".join(fields)
    (tmp / "bad.tsv").write_bytes(b"\n".join(lines))
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
