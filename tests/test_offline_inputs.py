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
