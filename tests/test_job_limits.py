"""A phase that could never be sent to a worker is refused where it enters: plan import
(and so seed) and adoption name the phase and the limit or rule it breaks, and nothing is
written. A job that still cannot be encoded at dispatch fails as INVALID_JOB without
touching a worker."""
import json
import os
import sqlite3

import pytest

import legacy_db
from conftest import ctl, run
from supervisor_helpers import db_url, sql

PHASE_PATH = "runs[0].tiers[0].phases[0]"


def plan_with(tmp, **fields):
    """A plan of one run with one phase, `fields` overriding the phase's."""
    phase = {"phase_id": "p-big", "name": "big phase", "description": "d",
             "scope": {"paths": [], "deliverables": ["out/a.py"]}}
    phase.update(fields)
    doc = {"runs": [{"run_id": "r1", "workspace": "ws",
                     "tiers": [{"tier_id": "T1", "name": "t", "phases": [phase]}]}]}
    path = os.path.join(str(tmp), "plan.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


REFUSED = [
    ({"scope": {"deliverables": ["d/f%d.py" % i for i in range(5000)]}},
     "scope.deliverables: 5000 entries; a job carries at most 4096"),
    ({"description": "x" * (20 << 20)},
     "description: 20971520 bytes; a job carries at most 1048576"),
    ({"scope": {"deliverables": ["a/" + "b" * 5000]}},
     "scope.deliverables[0]: 5002 bytes; a path is at most 4096 bytes"),
    ({"scope": {"paths": ["a/" + "b" * 5000 + "/"], "deliverables": ["a/%s/x" % ("b" * 5000)]}},
     "scope.paths[0]: 5003 bytes; a path is at most 4096 bytes"),
    ({"scope": {"deliverables": ["a\\..\\x"]}}, "backslashes are not allowed"),
    ({"scope": {"deliverables": [".git/config"]}}, "the .git directory is reserved"),
    ({"scope": {"deliverables": [".autopack/x"]}}, "the .autopack directory is reserved"),
    ({"scope": {"deliverables": ["src/.GIT/hooks/x"]}}, "the .git directory is reserved"),
    ({"scope": {"deliverables": [".AutoPack/x"]}}, "the .autopack directory is reserved"),
    ({"scope": {"deliverables": ["."]}}, "names the workspace itself, not a file in it"),
    ({"scope": {"deliverables": ["a/"]}},
     'scope.deliverables[0] "a/": ends with "/": it names a directory, not a file'),
    ({"scope": {"deliverables": ["d/" + "n" * 300 + ".py"]}},
     "a component is longer than 255 bytes (the file system's NAME_MAX)"),
    ({"scope": {"deliverables": ["a", "a/b.py"]}},
     'scope.deliverables[0] "a" and scope.deliverables[1] "a/b.py": one would be both a '
     'file and the directory of the other'),
    ({"scope": {"deliverables": [" "]}}, "a component is blank or starts or ends with a space"),
    ({"scope": {"deliverables": ["out/a.py "]}},
     "a component is blank or starts or ends with a space"),
    ({"scope": {"deliverables": ["a.py", "./a.py"]}},
     'scope.deliverables[0] "a.py" and scope.deliverables[1] "./a.py" name the same file'),
    ({"scope": {"deliverables": ["x\u202egnp.py"]}},
     "bidirectional-text controls (U+202A-U+202E, U+2066-U+2069) are not allowed"),
    ({"scope": {"deliverables": ["x\u2066.py"]}}, "bidirectional-text controls"),
    ({"scope": {"deliverables": ["x\u0085.py"]}}, "control characters are not allowed"),
    ({"task_category": "c" * 300}, "task_category: 300 bytes; a job carries at most 256"),
    ({"description": "x" * (1 << 20), "name": "z" * (1 << 20),
      "scope": {"read_only_context": ["c%03d" % i + "c" * 4000 for i in range(300)],
                "deliverables": ["out/a.py"]}},
     "the phase's text comes to"),
    ({"check_command": "true #" + "y" * (128 << 10)},
     "check_command: 131078 bytes; the kernel passes /bin/sh -c a command of at most 131071 "
     "bytes (one argument, MAX_ARG_STRLEN): put a longer one in a script in the workspace "
     "and run that"),
]


@pytest.mark.parametrize("fields,why", REFUSED, ids=[
    "5000-deliverables", "20MiB-description", "5000-byte-deliverable", "5000-byte-scope-path",
    "backslash", "git", "autopack", "git-upper", "autopack-mixed-case", "dot",
    "trailing-slash", "300-byte-name",
    "file-and-directory", "blank", "trailing-space", "duplicate", "bidi-override",
    "bidi-isolate", "c1-control", "long-category", "3MiB-together", "128KiB-check"])
def test_import_refuses_a_phase_no_worker_could_be_sent(tmp, fields, why):
    url = db_url(os.path.join(str(tmp), "a.db"))
    assert ctl("--db", url, "db", "init").rc == 0
    r = ctl("--db", url, "run", "import", plan_with(tmp, **fields))
    assert r.rc == 1, r
    assert "plan.json: %s: phase \"p-big\" cannot be sent to a worker: " % PHASE_PATH in r.err
    assert why in r.err, r.err
    assert "nothing was written" in r.err
    assert sql(url, "SELECT count(*) FROM phases") == [(0,)]
    assert sql(url, "SELECT count(*) FROM runs") == [(0,)]


def test_import_takes_a_phase_at_the_limits(tmp):
    url = db_url(os.path.join(str(tmp), "a.db"))
    assert ctl("--db", url, "db", "init").rc == 0
    r = ctl("--db", url, "run", "import", plan_with(
        tmp, description="x" * (1 << 20),
        scope={"paths": ["."], "deliverables": ["d/f%d.py" % i for i in range(4096)]}))
    assert r.rc == 0, r
    assert sql(url, "SELECT count(*) FROM phases") == [(1,)]


def test_import_takes_paths_it_can_normalise(tmp):
    url = db_url(os.path.join(str(tmp), "a.db"))
    assert ctl("--db", url, "db", "init").rc == 0
    r = ctl("--db", url, "run", "import", plan_with(
        tmp, scope={"paths": [], "deliverables": ["./a.py", "b//c.py", "b/./d.py"]}))
    assert r.rc == 0, r


def test_adoption_survey_names_phases_that_cannot_be_sent(tmp):
    path = os.path.join(str(tmp), "original.db")
    legacy_db.build_original(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE phases SET scope = ? WHERE run_id = 'build1-original'"
                " AND phase_id = 't1-p1'", (json.dumps({"deliverables": [".git/config"]}),))
    con.execute("UPDATE phases SET description = ? WHERE run_id = 'build1-original'"
                " AND phase_id = 't2-p1'", ("x" * (2 << 20),))
    con.commit()
    con.close()
    r = ctl("--db", db_url(path), "db", "adopt", "--dry-run", "--json")
    assert r.rc == 0, r
    got = {(p["run_id"], p["phase_id"]): p["why"]
           for p in json.loads(r.out)["scopes"]["unsendable"]}
    assert got == {
        ("build1-original", "t1-p1"):
            'scope.deliverables[0] ".git/config": the .git directory is reserved',
        ("build1-original", "t2-p1"):
            "description: 2097152 bytes; a job carries at most 1048576"}
    r = ctl("--db", db_url(path), "db", "adopt", "--dry-run")
    assert "phases that cannot be sent to a worker" in r.out
    assert "build1-original/t1-p1 (COMPLETE): scope.deliverables[0]" in r.out


def test_adoption_survey_names_phases_whose_text_is_not_utf8(tmp):
    """SQLite's TEXT holds any bytes; a job only UTF-8. Such a phase is named in the survey
    with its field and byte, as the other phases a drain can only fail as INVALID_JOB, and
    the survey's JSON shows the bytes as U+FFFD (a scope it could not read was left out)."""
    path = os.path.join(str(tmp), "original.db")
    legacy_db.build_original(path)
    con = sqlite3.connect(path)
    at = " WHERE run_id = 'build1-original' AND phase_id = ?"
    con.execute("UPDATE phases SET name = CAST(X'41FF42' AS TEXT)" + at, ("t1-p1",))
    con.execute("UPDATE phases SET scope = CAST(X'61C3' AS TEXT)" + at, ("t2-p1",))
    con.execute("UPDATE phases SET scope = CAST(? || X'C3' || ? AS TEXT)" + at,
                ('{"deliverables": ["a', '"]}', "t2-p2"))
    con.commit()
    con.close()
    r = ctl("--db", db_url(path), "db", "adopt", "--dry-run", "--json")
    assert r.rc == 0, r
    scopes = json.loads(r.out)["scopes"]
    got = {(p["run_id"], p["phase_id"]): p["why"] for p in scopes["unsendable"]}
    assert got == {
        ("build1-original", "t1-p1"): "name: not valid UTF-8 (byte 2)",
        ("build1-original", "t2-p1"): "scope.paths[0]: not valid UTF-8 (byte 2)"}, got
    bad = {(p["run_id"], p["phase_id"]): p["why"] for p in scopes["uninterpretable"]}
    assert "a\ufffd" in bad[("build1-original", "t2-p2")], bad


def test_a_phase_that_still_cannot_be_sent_fails_invalid_job_without_a_worker(tmp):
    from e2e_helpers import import_plan, init_db, phase_spec, rows

    tmp = str(tmp)
    url = init_db(tmp)
    ws = os.path.join(tmp, "ws")
    import_plan(tmp, url, [
        ("r1", ws, [phase_spec("big", ("out/big.py",)), phase_spec("ok", ("out/ok.py",))]),
        ("r2", ws, [phase_spec("git", ("out/git.py",))]),
    ])
    # Written behind the import's back, as an older autopack or another tool could have.
    con = sqlite3.connect(url[len("sqlite:///"):])
    con.execute("UPDATE phases SET scope = ? WHERE phase_id = 'big'", (json.dumps(
        {"deliverables": ["out/f%d.py" % i for i in range(5000)]}),))
    con.execute("UPDATE phases SET scope = ? WHERE phase_id = 'git'", (json.dumps(
        {"deliverables": [".git/config"]}),))
    con.commit()
    con.close()
    llm, sup, att = drain_with_one_worker(tmp, url)
    assert (att["big"]["outcome"], att["big"]["failure_reason"]) == ("failed", "INVALID_JOB")
    assert att["big"]["message"] == ("phase r1/big cannot be sent to a worker: "
                                     "scope.deliverables: 5000 entries; a job carries at"
                                     " most 4096")
    assert att["git"]["failure_reason"] == "INVALID_JOB"
    assert "the .git directory is reserved" in att["git"]["message"]
    assert att["ok"]["outcome"] == "success"
    assert rows(url, "SELECT phase_id, state FROM phases ORDER BY phase_id") == [
        {"phase_id": "big", "state": "FAILED"}, {"phase_id": "git", "state": "FAILED"},
        {"phase_id": "ok", "state": "COMPLETE"}]
    # No worker saw them: one LLM call in all, one worker all along, no crash.
    assert len(llm.requests()) == 1
    assert sup.stderr().count(" started (pid ") == 1
    assert "worker_crashed" not in sup.stderr()


def drain_with_one_worker(tmp, url):
    """Drain url with one worker calling a new stand-in; assert the supervisor exits 0.
    Returns the stand-in, the supervisor and the attempts by phase id."""
    from e2e_helpers import Standin, drain_until_exit, rows

    llm = Standin(tmp)
    sup, rc = drain_until_exit(tmp, url, llm, 1, env={"ANTHROPIC_API_KEY": "sk-ant-limits"})
    assert rc == 0, sup.stderr()
    return llm, sup, {a["phase_id"]: a for a in rows(
        url, "SELECT phase_id, outcome, failure_reason, message FROM attempts")}


def test_a_check_command_the_kernel_cannot_pass_to_the_shell_is_never_paid_for(tmp):
    # The kernel passes no argument of more than 131072 bytes with its NUL (MAX_ARG_STRLEN):
    # a longer check command was imported, and each attempt paid for its LLM call and then
    # failed CHECK_NOT_RUN, "cannot run the check's init (/proc/self/exe): Argument list
    # too long". One at the limit runs.
    from e2e_helpers import import_plan, init_db, phase_spec

    tmp = str(tmp)
    url = init_db(tmp)
    ws = os.path.join(tmp, "ws")
    at_limit = "true #" + "x" * (131071 - len("true #"))
    import_plan(tmp, url, [("r1", ws, [phase_spec("limit", ("out/a.py",), check=at_limit)]),
                           ("r2", ws, [phase_spec("over", ("out/b.py",), check="true")])])
    # Written behind the import's back, as another program could have.
    con = sqlite3.connect(url[len("sqlite:///"):])
    con.execute("UPDATE phases SET check_command = ? WHERE phase_id = 'over'", (at_limit + "x",))
    con.commit()
    con.close()
    llm, sup, att = drain_with_one_worker(tmp, url)
    assert att["limit"]["outcome"] == "success", att
    assert (att["over"]["failure_reason"], att["over"]["message"]) == (
        "INVALID_JOB", "phase r2/over cannot be sent to a worker: check_command: 131072 bytes; "
        "the kernel passes /bin/sh -c a command of at most 131071 bytes (one argument, "
        "MAX_ARG_STRLEN): put a longer one in a script in the workspace and run that"), att
    assert len(llm.requests()) == 1


def test_a_scope_of_many_deliverables_is_read_in_linear_time(tmp):
    """Each deliverable was compared with every one before it (a path is kept once): a
    scope another program stored with 100,000 deliverables took the adoption survey 24 s,
    300,000 about 4 minutes, and every other reading of the phase (the supervisor's, on
    its loop) as long; now well under a second, and the phase is named by the limit it
    breaks."""
    path = os.path.join(str(tmp), "original.db")
    legacy_db.build_original(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE phases SET scope = ? WHERE run_id = 'build1-original'"
                " AND phase_id = 't2-p1'",
                (json.dumps({"deliverables": ["d/%d.py" % i for i in range(300000)]}),))
    con.commit()
    con.close()
    why = "scope.deliverables: 300000 entries; a job carries at most 4096"
    r = ctl("--db", db_url(path), "db", "adopt", "--dry-run", timeout=60)
    assert r.rc == 0 and "build1-original/t2-p1 (QUEUED): " + why in r.out, r
    assert ctl("--db", db_url(path), "db", "adopt", timeout=60).rc == 0
    r = run("autopack-supervisor", "--db", db_url(path), "--workers", 1, "--dry-run",
            "--exit-when-drained", "--run-id", "build1-original", "--control",
            os.path.join(str(tmp), "c.sock"), timeout=60)
    assert r.rc == 0, r
    assert sql(db_url(path), "SELECT outcome, failure_reason FROM attempts WHERE"
                             " phase_id = 't2-p1'") == [("failed", "INVALID_JOB")]
