"""Options given more than once. An option that takes one value and is given again with
another is refused naming both (exit 2), by every program, before anything is opened: one
of the two was dropped without a word (`--run-id a --run-id b` drained run b alone). The
same value twice is taken; the options that are lists (--skip-run-prefix, the telemetry
commands' and calibrate's --run-id) stay lists. `stop` and `scale` take --now, --timeout
and --force once each (repeated, they overflowed the list of arguments forwarded to the
supervisor: 40 `--timeout 1` killed autopack-ctl with SIGSEGV)."""
import json
import os
import sqlite3

import pytest

from conftest import ctl, run
from supervisor_helpers import Supervisor, new_db, sql


def test_stop_and_scale_refuse_a_flag_given_again_and_the_supervisor_runs_on(tmp):
    url = new_db(tmp, runs=1)
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run")
    try:
        sup.wait_ready()
        cases = [
            (["stop"] + ["--timeout", "1"] * 40, "stop: --timeout given twice"),
            (["stop"] + ["--now"] * 40, "stop: --now given twice"),
            (["stop", "--now", "--timeout", "5"], "stop: --now and --timeout exclude each other"),
            (["stop", "--timeout", "5", "--now"], "stop: --timeout and --now exclude each other"),
            (["scale", "2"] + ["--force"] * 40, "scale: --force given twice"),
        ]
        for args, says in cases:
            r = sup.ctl(*args)
            assert r.rc == 2 and says in r.err, (args, r)
            r = sup.ctl(args[0], "--json", *args[1:])
            assert r.rc == 2 and json.loads(r.out)["message"] == says, (args, r)
        status = sup.status()
        assert status["state"] == "running", status
        assert sup.ctl("stop", "--timeout", "5").rc == 0
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()


SUPERVISOR_TWICE = [
    (["--run-id", "run-000", "--run-id", "run-001"],
     '--run-id: given twice with different values ("run-000", "run-001"); give it once'),
    (["--workers", "1", "--workers", "2"],
     '--workers: given twice with different values ("1", "2"); give it once'),
    (["--log-file", "a.log", "--log-file", "b.log"],
     '--log-file: given twice with different values ("a.log", "b.log"); give it once'),
    (["--control", "a.sock", "--control", "b.sock"],
     '--control: given twice with different values ("a.sock", "b.sock"); give it once'),
    (["--synchronous", "full", "--synchronous", "normal"],
     '--synchronous: given twice with different values ("full", "normal"); give it once'),
    (["--fsync-off-loop", "--fsync-on-loop"],
     "--fsync-on-loop: --fsync-off-loop and --fsync-on-loop exclude each other: give one"),
]


@pytest.mark.parametrize("args, says", SUPERVISOR_TWICE, ids=[a[0] for a, _ in SUPERVISOR_TWICE])
def test_the_supervisor_refuses_a_flag_given_twice_with_different_values(tmp, args, says):
    url = new_db(tmp, runs=2, phases=1)
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained", *args,
            cwd=str(tmp))
    assert r.rc == 2, r
    assert r.err.splitlines()[0] == "autopack-supervisor: " + says, r
    # Refused before the database was opened: no session, no attempt, no file made.
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    for name in ("a.log", "b.log", "a.sock", "b.sock"):
        assert not os.path.exists(os.path.join(str(tmp), name)), name


def test_the_supervisor_takes_a_value_given_twice_and_its_lists(tmp):
    url = new_db(tmp, runs=3, phases=1)
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained",
            "--workers", "1", "--workers", "1", "--run-id", "run-001", "--run-id", "run-001",
            "--dry-run", "--fsync-on-loop", "--fsync-on-loop")
    assert r.rc == 0, r
    assert sql(url, "SELECT DISTINCT run_id FROM attempts") == [("run-001",)]
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained",
            "--skip-run-prefix", "run-000", "--skip-run-prefix", "run-001")
    assert r.rc == 0, r
    assert sql(url, "SELECT DISTINCT run_id FROM attempts ORDER BY run_id") == [
        ("run-001",), ("run-002",)]


CTL_TWICE = [
    (["failed", "--run", "run-000", "--run", "run-001"], "failed", "--run",
     "'run-000', 'run-001'"),
    (["failed", "--since", "1h", "--since", "2d"], "failed", "--since", "'1h', '2d'"),
    (["telemetry", "export", "--out", "a.ndjson", "--out", "b.ndjson"], "telemetry export",
     "--out", "'a.ndjson', 'b.ndjson'"),
    (["watch", "--interval", "1", "--interval", "5"], "watch", "--interval", "'1', '5'"),
    (["seed", "telemetry-run", "--workspace", "w1", "--workspace", "w2"],
     "seed telemetry-run", "--workspace", "'w1', 'w2'"),
    (["retry", "--run", "run-000", "--run", "run-001"], "retry", "--run",
     "'run-000', 'run-001'"),
]


@pytest.mark.parametrize("args, cmd, flag, values", CTL_TWICE, ids=[c[1] + " " + c[2]
                                                                     for c in CTL_TWICE])
def test_ctl_refuses_an_option_given_twice_with_different_values(tmp, args, cmd, flag,
                                                                 values):
    url = new_db(tmp, runs=2, phases=1)
    says = "%s given twice with different values (%s); give it once" % (flag, values)
    r = ctl("--db", url, *args)
    assert r.rc == 2, r
    assert r.err.splitlines()[0] == "autopack-ctl %s: %s" % (cmd, says), r
    r = ctl("--db", url, "--json", *args)
    assert r.rc == 2 and json.loads(r.out) == {"ok": False, "error": "EINVAL",
                                               "message": cmd + ": " + says}, r
    for name in ("a.ndjson", "b.ndjson", "w1", "w2"):
        assert not os.path.exists(os.path.join(str(tmp), name)), name
    assert sql(url, "SELECT count(*) FROM runs") == [(2,)]


def test_ctl_takes_a_value_given_twice_and_run_id_lists(tmp):
    url = new_db(tmp, runs=2, phases=1)
    r = ctl("--db", url, "failed", "--run", "run-000", "--run", "run-000")
    assert r.rc == 0, r
    r = ctl("--db", url, "telemetry", "export", "--run-id", "run-000", "--run-id", "run-001",
            "--out", "e.ndjson", "--out", "e.ndjson")
    assert r.rc == 0, r
    assert os.path.exists(os.path.join(str(tmp), "e.ndjson"))


def test_retry_takes_a_selector_given_twice_with_the_same_value(tmp):
    """`retry --run R --run R` was refused ('--run given twice', exit 2), offline and by a
    running supervisor, where every other option takes the same value twice."""
    url = new_db(tmp, runs=2, phases=2)
    path = url[len("sqlite:///"):]
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE phases SET state = 'FAILED', last_failure_reason = 'CHECK_FAILED'")
    con.close()
    twice = ["--run", "run-000", "--run", "run-000", "--reason", "CHECK_FAILED", "--reason",
             "CHECK_FAILED", "--note", "again", "--note", "again"]
    r = ctl("--db", url, "retry", "--dry-run", *twice)
    assert r.rc == 0 and "would retry 2 phases" in r.out, r
    r = ctl("--db", url, "retry", *twice[:4])
    assert r.rc == 0 and "retried 2 phases" in r.out, r
    assert sql(url, "SELECT run_id, state FROM phases ORDER BY run_id, phase_index") == [
        ("run-000", "QUEUED"), ("run-000", "QUEUED"), ("run-001", "FAILED"),
        ("run-001", "FAILED")]
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run")
    try:
        sup.wait_ready()
        r = sup.ctl("retry", "--json", *(twice[:2] + ["--run", "run-001"] * 2 + twice[4:]))
        assert r.rc == 2 and "--run given twice with different values" in r.err, r
        r = sup.ctl("retry", "--json", "--run", "run-001", "--run", "run-001", *twice[4:])
        assert r.rc == 0, r
        assert json.loads(r.out)["count"] == 2, r
        assert sup.ctl("stop").rc == 0
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
    assert sql(url, "SELECT count(*) FROM phases WHERE state = 'QUEUED'") == [(4,)]
