"""autopack-ctl seed telemetry-run: the ten-phase telemetry collection run."""
import json
import os
import sqlite3
import subprocess

from conftest import ctl

RUN = "telemetry-collection-v4"


def url(path):
    return "sqlite:///" + str(path)


def rows(p, query):
    con = sqlite3.connect(str(p))
    out = con.execute(query).fetchall()
    con.close()
    return out


def test_seed_adds_the_ten_phase_run_with_an_absolute_workspace(tmp):
    db = tmp / "seed.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    r = ctl("--db", url(db), "seed", "telemetry-run")
    assert r.rc == 0, r
    ws = os.path.join(os.path.realpath(tmp), "autopack-workspace")
    assert "workspace: %s" % ws in r.out
    assert rows(db, "SELECT id, workspace, token_cap, max_phases FROM runs") == [
        (RUN, ws, 500000, 15)]
    assert rows(db, "SELECT task_category, complexity, count(*) FROM phases "
                    "GROUP BY 1, 2 ORDER BY 1, 2") == [
        ("docs", "low", 1), ("implementation", "low", 2), ("implementation", "medium", 4),
        ("tests", "low", 1), ("tests", "medium", 2)]
    scope = json.loads(rows(db, "SELECT scope FROM phases WHERE phase_id = "
                                "'telemetry-p9-readme'")[0][0])
    assert scope["deliverables"] == ["examples/telemetry_utils/README.md"]
    assert len(scope["read_only_context"]) == 3


def test_seed_check_commands_pass_on_good_deliverables_and_fail_on_missing_ones(tmp):
    db = tmp / "seed.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    assert ctl("--db", url(db), "seed", "telemetry-run", "--workspace", "w").rc == 0
    ws = tmp / "w"
    checks = rows(db, "SELECT check_command, scope FROM phases")
    (ws / "examples" / "telemetry_utils").mkdir(parents=True)
    for cmd, _ in checks:
        assert subprocess.run(cmd, shell=True, cwd=ws, capture_output=True).returncode != 0
    for _, scope in checks:
        for d in json.loads(scope)["deliverables"]:
            (ws / d).write_text("x = 1\n")
    for cmd, _ in checks:
        assert subprocess.run(cmd, shell=True, cwd=ws, capture_output=True).returncode == 0, cmd


def test_seed_twice_is_refused_and_changes_nothing(tmp):
    db = tmp / "seed.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    assert ctl("--db", url(db), "seed", "telemetry-run", "--json").rc == 0
    r = ctl("--db", url(db), "seed", "telemetry-run", "--json")
    assert r.rc == 1
    assert "run %s already exists" % RUN in r.err
    assert json.loads(r.out)["error"] == "EEXIST"
    assert rows(db, "SELECT count(*) FROM phases") == [(10,)]


def test_seed_json_reports_the_run(tmp):
    db = tmp / "seed.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    r = ctl("seed", "telemetry-run", "--workspace", "/srv/ws", "--json",
            env={"AUTOPACK_DB_URL": url(db)})
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert (j["run_id"], j["tiers"], j["phases"], j["workspace"]) == (RUN, 1, 10, "/srv/ws")
