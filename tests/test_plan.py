"""autopack-ctl run import: plan files validated whole, written all or nothing."""
import json
import os
import re
import shutil
import sqlite3
import subprocess

import pytest

from conftest import DATA, binpath, ctl
from supervisor_helpers import Supervisor


def url(path):
    return "sqlite:///" + str(path)


@pytest.fixture
def db(tmp):
    p = tmp / "plan.db"
    r = ctl("--db", url(p), "db", "init")
    assert r.rc == 0, r
    return p


def rows(p, query):
    con = sqlite3.connect(str(p))
    out = con.execute(query).fetchall()
    con.close()
    return out


def counts(p):
    return rows(p, "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM tiers), "
                   "(SELECT count(*) FROM phases)")[0]


def phase(pid, **extra):
    d = {"phase_id": pid, "name": "n", "scope": {"paths": ["src/"],
                                                 "deliverables": ["src/%s.py" % pid]}}
    d.update(extra)
    return d


def plan(*runs):
    return {"runs": list(runs)}


def run_entry(rid, *phases, **extra):
    d = {"run_id": rid, "workspace": "ws", "tiers": [{"tier_id": "T1", "name": "t",
                                                      "phases": list(phases)}]}
    d.update(extra)
    return d


def write_plan(dirpath, doc, name="plan.json"):
    p = dirpath / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_example_plan_imports_with_workspace_relative_to_the_plan_file(db, tmp):
    plans = tmp / "plans"
    plans.mkdir()
    shutil.copy(os.path.join(DATA, "plan-demo.json"), plans / "plan-demo.json")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    r = ctl("--db", url(db), "run", "import", plans / "plan-demo.json", cwd=elsewhere)
    assert r.rc == 0, r
    assert r.out.startswith("== autopack database ==")
    assert "1 run (demo-1), 2 tiers, 2 phases" in r.out
    assert rows(db, "SELECT id, workspace, goal_anchor FROM runs") == [
        ("demo-1", str(plans / "demo-workspace"), "Small string utilities with tests")]
    assert rows(db, "SELECT t.tier_id, t.tier_index, p.phase_id, p.phase_index, p.state "
                    "FROM phases p JOIN tiers t ON p.tier_id = t.id ORDER BY t.tier_index") == [
        ("T1", 0, "p1-strings", 0, "QUEUED"), ("T2", 1, "p2-string-tests", 0, "QUEUED")]
    scope = json.loads(rows(db, "SELECT scope FROM phases WHERE phase_id = 'p1-strings'")[0][0])
    assert scope == {"paths": ["utils/"], "read_only_context": [],
                     "deliverables": ["utils/string_helper.py"]}


def test_import_json_output_goes_to_stdout_and_the_banner_to_stderr(db, tmp):
    p = write_plan(tmp, plan(run_entry("r1", phase("p1"))))
    r = ctl("--db", url(db), "run", "import", p, "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert j["ok"] is True and j["runs"] == ["r1"] and j["phases"] == 1
    assert j["database"]["url"] == url(os.path.realpath(db))
    assert "== autopack database ==" in r.err


@pytest.mark.parametrize("doc,message", [
    ('{"runs": [ {"run_id": "x",', "plan.json:1:"),
    (plan(run_entry("r1", phase("p1", max_builder_attempts="3"))),
     "runs[0].tiers[0].phases[0].max_builder_attempts: expected a positive integer, got string"),
    (plan(run_entry("r1", {"phase_id": "p1", "name": "n",
                           "scope": {"deliverables": ["a.py", 7]}})),
     "runs[0].tiers[0].phases[0].scope.deliverables[1]: expected string, got integer"),
    (plan(run_entry("r1", phase("p1"), phase("p2"), phase("p1"))),
     'runs[0].tiers[0].phases[2].phase_id: duplicate phase_id "p1" in run "r1" '
     "(also at runs[0].tiers[0].phases[0].phase_id)"),
    (plan(run_entry("r1", phase("p1")),
          {"run_id": "nope", "append": True,
           "tiers": [{"tier_id": "T2", "name": "t", "phases": [phase("p1")]}]}),
     'runs[1].run_id: unknown run "nope"'),
    (plan(run_entry("r1", phase("p1", scope={"deliverables": ["../escape.py"]}))),
     "runs[0].tiers[0].phases[0].scope.deliverables[0]: \"../escape.py\" leaves the workspace"),
], ids=["bad-json", "wrong-type", "wrong-type-in-list", "duplicate-phase", "unknown-run",
        "path-escape"])
def test_malformed_plans_are_refused_with_a_path_and_nothing_written(db, tmp, doc, message):
    before = counts(db)
    p = write_plan(tmp, doc)
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 1, r
    assert message in r.err, r.err
    assert "nothing was written" in r.err
    assert counts(db) == before == (0, 0, 0)


def test_a_run_that_exists_is_refused_and_the_rest_of_the_plan_not_written(db, tmp):
    assert ctl("--db", url(db), "run", "import",
               write_plan(tmp, plan(run_entry("r1", phase("p1"))))).rc == 0
    r = ctl("--db", url(db), "run", "import",
            write_plan(tmp, plan(run_entry("r2", phase("p1")), run_entry("r1", phase("p5"))),
                       "second.json"))
    assert r.rc == 1
    assert 'runs[1].run_id: run "r1" already exists' in r.err
    assert counts(db) == (1, 1, 1)


def test_append_adds_tiers_to_an_existing_run(db, tmp):
    assert ctl("--db", url(db), "run", "import",
               write_plan(tmp, plan(run_entry("r1", phase("p1"))))).rc == 0
    more = {"run_id": "r1", "append": True,
            "tiers": [{"tier_id": "T2", "name": "more", "phases": [phase("p2")]}]}
    r = ctl("--db", url(db), "run", "import", write_plan(tmp, plan(more), "more.json"))
    assert r.rc == 0, r
    assert rows(db, "SELECT tier_id, tier_index FROM tiers ORDER BY tier_index") == [
        ("T1", 0), ("T2", 1)]


def test_append_of_a_tier_id_the_run_has_is_refused(db, tmp):
    """Tier ids within a run are distinct, appended ones too: a second T1 was appended,
    and the run held two tiers of one id."""
    assert ctl("--db", url(db), "run", "import",
               write_plan(tmp, plan(run_entry("r1", phase("p1"))))).rc == 0
    again = {"run_id": "r1", "append": True,
             "tiers": [{"tier_id": "T2", "name": "new", "phases": [phase("p2")]},
                       {"tier_id": "T1", "name": "again", "phases": [phase("p3")]}]}
    r = ctl("--db", url(db), "run", "import", write_plan(tmp, plan(again), "again.json"))
    assert r.rc == 1, r
    assert r.err.strip().endswith('again.json: runs[0].tiers[1].tier_id: tier "T1" already '
                                  'exists in run "r1"; nothing was written'), r
    assert counts(db) == (1, 1, 1)


@pytest.mark.parametrize("index,shown", [
    ("9223372036854775807", "9223372036854775807"), ("2147483647", "2147483647"),
    ("'x'", "x"), ("1e300", "1.0e+300"), ("2.5", "2.5")])
def test_append_after_a_tier_index_no_tier_can_follow_is_refused_naming_it(db, tmp, index,
                                                                           shown):
    """Another program's tier_index (the original kept plain INTEGER columns, which SQLite
    lets hold anything): the appended tiers were numbered max(tier_index) + 1, which sorted
    them before a text or real index, gave 2^63-1 twice (the sum overflowed into a real),
    and with two tiers overflowed in C (UBSan). Their phases then ran out of order."""
    assert ctl("--db", url(db), "run", "import", write_plan(
        tmp, plan(run_entry("r1", phase("p1"))), "first.json")).rc == 0
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE tiers SET tier_index = %s" % index)
    con.close()
    before = counts(db)
    doc = plan({"run_id": "r1", "append": True,
                "tiers": [{"tier_id": "T2", "name": "t", "phases": [phase("p2")]},
                          {"tier_id": "T3", "name": "t", "phases": [phase("p3")]}]})
    r = ctl("--db", url(db), "run", "import", write_plan(tmp, doc))
    assert r.rc == 1, r
    assert ('run "r1": its tier T1 (tiers.id 1) has tier_index %s, which the appended tiers '
            "cannot follow (they need an integer index below 2147483646 after it); nothing "
            "was written" % shown) in r.err, r.err
    assert counts(db) == before


def test_missing_plan_file_and_missing_argument(db, tmp):
    r = ctl("--db", url(db), "run", "import", tmp / "nope.json")
    assert r.rc == 1 and "cannot read the plan" in r.err
    r = ctl("--db", url(db), "run", "import")
    assert r.rc == 2 and "missing the plan file" in r.err and "usage:" in r.err


def scope_of(db, pid):
    return json.loads(rows(db, "SELECT scope FROM phases WHERE phase_id = '%s'" % pid)[0][0])


def test_scopes_in_every_shape_the_original_stores_import_as_the_usual_object(db, tmp):
    inner = {"paths": ["src/auth/"], "deliverables": ["src/auth/session.py"]}
    doc = plan(run_entry(
        "r1",
        phase("p-buckets", scope={"paths": ["src/", "tests/"],
                                  "deliverables": {"code": ["src/a.py"],
                                                   "tests": ["tests/test_a.py", "src/a.py"],
                                                   "docs": []}}),
        phase("p-encoded", scope=json.dumps(inner)),
        phase("p-path", scope="docs/auth.md"),
        phase("p-context", scope={"paths": ["src/"], "deliverables": ["src/b.py"],
                                  "read_only_context": ["README.md",
                                                        {"path": "docs/x.md",
                                                         "reason": "style guide"}]})))
    r = ctl("--db", url(db), "run", "import", write_plan(tmp, doc))
    assert r.rc == 0, r
    assert scope_of(db, "p-buckets") == {"paths": ["src/", "tests/"], "read_only_context": [],
                                         "deliverables": ["src/a.py", "tests/test_a.py"]}
    assert scope_of(db, "p-encoded") == dict(inner, read_only_context=[])
    assert scope_of(db, "p-path") == {"paths": ["docs/auth.md"], "read_only_context": [],
                                      "deliverables": ["docs/auth.md"]}
    assert scope_of(db, "p-context")["read_only_context"] == [
        "README.md", {"path": "docs/x.md", "reason": "style guide"}]


@pytest.mark.parametrize("scope,message", [
    ({"paths": ["src/"]},
     "scope.deliverables: missing (required: a phase must name at least one deliverable)"),
    ({"paths": ["src/"], "deliverables": {"code": [], "tests": []}},
     "scope.deliverables: expected a non-empty array"),
    ("docs/", 'scope: "docs/" names a directory: a phase must name at least one deliverable'),
    (json.dumps({"paths": ["src/"]}), "scope.deliverables: missing (required"),
    ({"deliverables": {"code": ["src/a.py", 3]}},
     "scope.deliverables.code[1]: expected string, got integer"),
    ({"deliverables": {"code": ["../a.py"]}},
     'scope.deliverables.code[0]: "../a.py" leaves the workspace'),
    ({"paths": ["src/"], "deliverables": {"tests": ["tests/t.py"]}},
     'scope.deliverables.tests[0]: "tests/t.py" is outside scope.paths'),
    ({"read_only_context": [{"reason": "r"}], "deliverables": ["a.py"]},
     "scope.read_only_context[0].path: missing (required)"),
    (["a.py"], "scope: expected an object (or a string holding one, or one path), got array"),
], ids=["no-deliverables-key", "empty-buckets", "directory-path", "encoded-no-deliverables",
        "bucket-wrong-type", "bucket-escape", "bucket-outside-scope", "context-object",
        "array"])
def test_a_phase_without_deliverables_or_with_a_bad_scope_is_refused(db, tmp, scope, message):
    p = write_plan(tmp, plan(run_entry("r1", phase("p1", scope=scope))))
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 1, r
    assert "runs[0].tiers[0].phases[0]." + message in r.err, r.err
    assert counts(db) == (0, 0, 0)
    assert not (tmp / "ws").exists()


@pytest.mark.parametrize("where,held", [("/", "/usr"), ("/etc", "/etc"), ("link", "/usr")])
def test_a_workspace_that_is_or_holds_a_system_directory_is_refused_at_import(db, tmp, where,
                                                                               held):
    """A workspace of / or /etc (or a link to /usr) was imported and queued, and each of
    its phases then failed INVALID_JOB at its dispatch, using up its attempts: a phase
    that could only fail there. The import refuses it, naming the run, the workspace and
    the system directory it holds, and writes nothing."""
    os.symlink("/usr", tmp / "link")
    p = write_plan(tmp, plan(run_entry("r1", phase("p1"), workspace=where)))
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 1, r
    ws = where if where.startswith("/") else str(tmp / where)
    assert ("run r1: workspace %s holds %s: the model's files and the check command could "
            "replace a program the workers run with the API keys; give the run a workspace "
            "of its own" % (ws, os.path.realpath(held))) in r.err, r
    assert counts(db) == (0, 0, 0)


@pytest.mark.parametrize("where,kernel", [("/proc/self", "/proc"), ("/sys/kernel", "/sys"),
                                          ("/sys/no/such/ws", "/sys"), ("link", "/proc")])
def test_a_workspace_in_proc_or_sys_is_refused_at_import_naming_the_run_and_phase(
        db, tmp, where, kernel):
    """A workspace in /proc or /sys (or a link into one) was imported and queued, by
    `run import` and `seed telemetry-run`, and each of its phases then failed at its
    dispatch: no file can be made there. The import refuses it, naming the run, a phase,
    the workspace and the file system, and writes nothing."""
    os.symlink("/proc/self", str(tmp / "link"))
    p = write_plan(tmp, plan(run_entry("r1", phase("p1"), phase("p2"), workspace=where)))
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 1, r
    ws = where if where.startswith("/") else str(tmp / where)
    assert r.err == (
        "autopack-ctl: run r1: workspace %s lies in %s, the kernel's file system, where no"
        " file can be written: phase p1 (and 1 more) could not write its deliverables"
        " there; give the run a workspace of its own; nothing was written\n" % (ws, kernel)), r
    r = ctl("--db", url(db), "seed", "telemetry-run", "--workspace", where)
    assert r.rc == 1, r
    assert ("run telemetry-collection-v4: workspace %s lies in %s, the kernel's file system,"
            " where no file can be written: phase telemetry-p1-string-util (and 9 more)"
            " could not write its deliverables there" % (ws, kernel)) in r.err, r
    assert counts(db) == (0, 0, 0)


def test_an_import_that_fails_in_the_database_leaves_no_workspace_behind(db, tmp):
    con = sqlite3.connect(str(db))
    con.execute("CREATE TRIGGER refuse BEFORE INSERT ON phases"
                " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    con.commit()
    con.close()
    doc = plan(run_entry("r1", phase("p1"), workspace="deep/er/ws"))
    r = ctl("--db", url(db), "run", "import", write_plan(tmp, doc))
    assert r.rc != 0 and "refused by a trigger" in r.err, r
    assert counts(db) == (0, 0, 0)
    assert not (tmp / "deep").exists()


@pytest.mark.parametrize("target,cause", [("nowhere", "No such file or directory"),
                                          ("ws", "Too many levels of symbolic links")])
def test_a_workspace_that_is_a_broken_symbolic_link_is_refused_naming_it(db, tmp, target,
                                                                           cause):
    # A link to nothing, or to itself, was reported as "exists and is not a directory".
    os.symlink(target, str(tmp / "ws"))
    r = ctl("--db", url(db), "run", "import",
            write_plan(tmp, plan(run_entry("r1", phase("p1"), workspace="ws"))))
    assert r.rc == 1, r
    assert ("workspace %s for run r1 is a symbolic link to %s, which cannot be followed: %s;"
            " nothing was written" % (tmp / "ws", target, cause)) in r.err, r.err
    assert counts(db) == (0, 0, 0)


@pytest.mark.parametrize("value,message", [
    ("9223372036854775807", None),
    ("-9223372036854775808", "runs[0].tiers[0].token_cap: expected a positive integer, got a "
                             "number below 1"),
    ("1000000000000000000", None),
    ("-9999999999999999999", "invalid JSON: too big negative integer"),
])
def test_an_integer_of_nineteen_digits_is_read_exactly(db, tmp, value, message):
    """The plan reader took a 19th digit into its 64-bit sum before it gave such a number
    to the full parser: 922337203685477580 * 10 + 8 overflowed (UBSan: signed integer
    overflow, in the SANITIZE build the import aborted)."""
    doc = json.dumps(plan(run_entry("r1", phase("p1")))).replace(
        '"name": "t"', '"name": "t", "token_cap": %s' % value)
    r = ctl("--db", url(db), "run", "import", write_plan(tmp, doc))
    if message is None:
        assert r.rc == 0, r
        assert rows(db, "SELECT token_cap FROM tiers") == [(int(value),)]
    else:
        assert r.rc == 1 and message in r.err, r
        assert counts(db) == (0, 0, 0)


# A stack limit of 128 KiB (`ulimit -s 128`), which jansson's parser needs more than for
# the 2,048 levels of nesting it reads.
SMALL_STACK = ("prlimit", "--stack=131072")


def deep_plans(tmp):
    """Plans nested 2,048 deep: at the top level, in a phase's scope, in a scope given as
    a JSON string; (name, path, the columns of the deep brackets, or None)."""
    deep = "[" * 2048 + "]" * 2048
    top = '{"x": %s, "runs": []}' % deep
    inner = json.dumps(plan(run_entry("r1", phase("p1"))))
    in_run = inner.replace('"paths": ["src/"]', '"paths": ["src/"], "x": %s' % deep)
    in_string = inner.replace('{"paths": ["src/"], "deliverables": ["src/p1.py"]}',
                              json.dumps("[" * 2048 + "]" * 2048))
    out = []
    for name, text in (("run", in_run), ("string", in_string), ("top", top)):
        path = write_plan(tmp, text, name + ".json")
        at = text.index("[" * 65) if name != "string" else None
        out.append((name, path, None if at is None else range(at + 1, at + 2049)))
    return out


def test_a_plan_nested_2048_deep_is_refused_under_a_small_stack_naming_file_and_depth(db, tmp):
    """jansson reads 2,048 levels of nesting, recursing once per level, and under a 128 KiB
    stack autopack-ctl died of SIGSEGV importing such a plan. Nesting past 64 levels is
    refused now, placed in the file; nothing is written."""
    for name, path, col in deep_plans(tmp):
        proc = subprocess.run(list(SMALL_STACK) + [binpath("autopack-ctl"), "--db", url(db),
                                                   "run", "import", str(path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, (name, proc)
        if col is not None:
            m = re.search(r"/%s\.json:1:(\d+): invalid JSON: nesting deeper than 64; "
                          "nothing was written$" % name, proc.stderr.strip())
            assert m and int(m.group(1)) in col, (name, proc.stderr)
        else:
            assert "string.json: " in proc.stderr and "nothing was written" in proc.stderr, \
                proc.stderr
    assert counts(db) == (0, 0, 0)


def test_a_running_supervisor_under_a_small_stack_refuses_a_plan_nested_2048_deep(db, tmp):
    """The supervisor reads a plan from its file itself when one is running: it died of
    SIGSEGV as autopack-ctl did, with every worker's attempt in flight."""
    sup = Supervisor(tmp, url(db), "--workers", 1, "--dry-run", "--allow-empty-db",
                     control=False, prefix=SMALL_STACK)
    try:
        sup.wait_ready()
        for name, path, col in deep_plans(tmp):
            r = ctl("--db", url(db), "run", "import", str(path))
            assert r.rc == 1 and "supervisor" in r.err, (name, r)
            if col is not None:
                assert "nesting deeper than 64" in r.err, (name, r)
        assert sup.proc.poll() is None, sup.stderr()[-3000:]
        assert sup.ctl("status").rc == 0
    finally:
        sup.stop_now()
    assert counts(db) == (0, 0, 0)


def one_phase_plan(run_id):
    return json.dumps({"runs": [{"run_id": run_id, "workspace": "ws", "tiers": [{
        "tier_id": "T1", "name": "t", "phases": [{"phase_id": "p1", "name": "n", "scope": {
            "deliverables": ["a.py"]}}]}]}]})


def test_a_running_supervisor_with_a_directory_of_its_own_imports_only_the_file_ctl_read(
        db, tmp):
    """A supervisor whose view of a directory is its own (the shipped unit's PrivateTmp=, a
    container) is sent the plan's path: it imported the file it found under that name, a
    plan the operator never gave, and said that a plan the operator could read did not
    exist. autopack-ctl sends the file's device:inode with the path, and the supervisor
    refuses any other file, naming both."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespace for the supervisor (unshare -m needs root)")
    own = tmp / "own"
    own.mkdir()
    (own / "plan.json").write_text(one_phase_plan("given"))
    (own / "only-here.json").write_text(one_phase_plan("only-here"))
    # The supervisor's own `own`: a tmpfs holding another plan under the same name.
    prefix = ("unshare", "-m", "sh", "-c",
              "mount -t tmpfs tmpfs %s && printf '%%s' '%s' > %s/plan.json && exec \"$@\""
              % (own, one_phase_plan("impostor"), own), "sh")
    sup = Supervisor(tmp, url(db), "--workers", 0, "--allow-empty-db", control=False,
                     prefix=prefix)
    try:
        sup.wait_ready()
        r = ctl("--db", url(db), "run", "import", str(own / "plan.json"))
        assert r.rc == 1, r
        assert re.search(r"invalid_plan: %s/plan\.json: the file this supervisor \(pid %d\) "
                         r"finds there \(device:inode \d+:\d+\) is not the one autopack-ctl "
                         r"read \(%d:%d\): it runs with a /tmp or a file system of its own "
                         r"\(systemd's PrivateTmp=, a container\)" % (
                             own, sup.proc.pid, os.stat(own / "plan.json").st_dev,
                             os.stat(own / "plan.json").st_ino), r.err), r
        assert "nothing was written" in r.err, r
        r = ctl("--db", url(db), "run", "import", str(own / "only-here.json"))
        assert r.rc == 1, r
        assert ("%s/only-here.json: this supervisor (pid %d) cannot open the plan "
                "autopack-ctl read there (No such file or directory)" % (own, sup.proc.pid)
                in r.err), r
        assert counts(db) == (0, 0, 0)
        # A plan both see is imported through the supervisor, as before.
        (tmp / "both.json").write_text(one_phase_plan("both"))
        r = ctl("--db", url(db), "run", "import", str(tmp / "both.json"))
        assert r.rc == 0 and "written by the supervisor" in r.out, r
        assert sup.proc.poll() is None, sup.stderr()[-3000:]
    finally:
        sup.stop_now()
    assert rows(db, "SELECT id FROM runs") == [("both",)]


def test_a_piped_plan_with_a_supervisor_running_is_refused_in_one_line(db, tmp):
    """A plan on a pipe cannot be sent to a running supervisor, which reads a plan from its
    file: the refusal was two lines, the lock's (`stop it first, or, for a supervisor,
    send the command through it`, which it had just been) and then what to do. One line
    says both; with --json, one error object."""
    sup = Supervisor(tmp, url(db), "--workers", 0, "--allow-empty-db", control=False)
    try:
        sup.wait_ready()
        for args in ([], ["--json"]):
            p = subprocess.run([binpath("autopack-ctl"), "--db", url(db), *args, "run",
                                "import", "/dev/stdin"], input=one_phase_plan("piped"),
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 1, p
            assert p.stderr == (
                "autopack-ctl: database %s is held by autopack-supervisor pid %d; nothing "
                "was written (the plan is no regular file (a pipe, standard input), and a "
                "running supervisor reads a plan from its file: write the plan to a file "
                "and import that)\n" % (db, sup.proc.pid)), p
            if args:
                assert json.loads(p.stdout)["ok"] is False, p
    finally:
        sup.stop_now()
    assert counts(db) == (0, 0, 0)


def test_a_running_supervisor_imports_a_plan_named_through_stdin_or_a_link_and_dotdot(db, tmp):
    """autopack-ctl sent the supervisor the path as given, made absolute by its text alone:
    /dev/stdin named the supervisor's own standard input, and `link/../plan.json` (the
    kernel follows the link first) another file, and the supervisor refused both as a
    plan it found `with a /tmp or a file system of its own`. The path is resolved first;
    the workspaces are resolved against the plan's real directory, as without it."""
    (tmp / "stdin.json").write_text(one_phase_plan("from-stdin"))
    (tmp / "real" / "inner").mkdir(parents=True)
    os.symlink("real/inner", str(tmp / "link"))
    (tmp / "real" / "plan.json").write_text(one_phase_plan("through-link"))
    sup = Supervisor(tmp, url(db), "--workers", 0, "--allow-empty-db", control=False)
    try:
        sup.wait_ready()
        with open(str(tmp / "stdin.json")) as f:
            p = subprocess.run([binpath("autopack-ctl"), "--db", url(db), "run", "import",
                                "/dev/stdin"], stdin=f, capture_output=True, text=True,
                               timeout=60)
        assert p.returncode == 0 and "written by the supervisor" in p.stdout, p
        r = ctl("--db", url(db), "run", "import", "link/../plan.json")
        assert r.rc == 0 and "written by the supervisor" in r.out, r
    finally:
        sup.stop_now()
    assert rows(db, "SELECT id, workspace FROM runs ORDER BY id") == [
        ("from-stdin", str(tmp / "ws")), ("through-link", str(tmp / "real" / "ws"))]


def test_a_plan_named_dash_is_read_from_standard_input(db, tmp):
    """`run import -` opened a file named `-` (`-: cannot read the plan: No such file or
    directory`): a plan piped from another program could not be imported. `-` is standard
    input, read as a pipe is (its workspaces against the current directory); an invalid
    one is named `standard input` and nothing is written."""
    sub = tmp / "sub"
    sub.mkdir()
    r = ctl("--db", url(db), "run", "import", "-", input=one_phase_plan("piped"), cwd=sub)
    assert r.rc == 0, r
    assert "imported standard input: 1 run (piped), 1 tier, 1 phase, all QUEUED" in r.out, r
    assert rows(db, "SELECT id, workspace FROM runs") == [("piped", str(sub / "ws"))]
    r = ctl("--db", url(db), "--json", "run", "import", "-", input=one_phase_plan("js"))
    assert r.rc == 0 and json.loads(r.out)["runs"] == ["js"], r
    r = ctl("--db", url(db), "run", "import", "-", input='{"runs": [}')
    assert r.rc == 1 and r.err.startswith("autopack-ctl: standard input:1:10: invalid JSON"), r
    assert r.err.endswith("nothing was written\n"), r
    r = ctl("--db", url(db), "run", "import", "-", input="")
    assert r.rc == 1, r
    assert "standard input: empty file, expected a JSON plan; nothing was written" in r.err, r
    d = os.open(str(tmp), os.O_RDONLY | os.O_DIRECTORY)
    try:
        p = subprocess.run([binpath("autopack-ctl"), "--db", url(db), "run", "import", "-"],
                           stdin=d, capture_output=True, text=True, timeout=60)
    finally:
        os.close(d)
    assert p.returncode == 1, p
    assert "standard input: cannot read the plan: Is a directory; nothing was written" in \
        p.stderr, p
    assert counts(db) == (2, 2, 2)
    # A file named - is still reachable as ./-.
    (tmp / "-").write_text(one_phase_plan("dashfile"))
    r = ctl("--db", url(db), "run", "import", "./-")
    assert r.rc == 0 and "imported ./-: 1 run (dashfile)" in r.out, r
    h = ctl("run", "import", "--help")
    assert h.rc == 0 and "A plan named - is read from standard input" in h.out, h


def test_a_piped_plan_over_the_size_limit_is_refused_and_nothing_is_written(db, tmp):
    """Standard input is read up to the same 256 MiB as a plan file, not without end (a
    sparse file on standard input, as test_offline_inputs gives a file)."""
    with open(str(tmp / "big.json"), "wb") as f:
        f.truncate(300 << 20)
    with open(str(tmp / "big.json"), "rb") as f:
        p = subprocess.run([binpath("autopack-ctl"), "--db", url(db), "run", "import", "-"],
                           stdin=f, capture_output=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert b"standard input: the plan is larger than 256 MiB; nothing was written" in \
        p.stderr, p.stderr
    assert counts(db) == (0, 0, 0)


def test_a_plan_file_name_that_is_not_utf8_is_escaped_in_the_result_line(db, tmp):
    """`imported <name>:` printed the plan's name as its raw bytes: a newline in it made
    two lines of one, and bytes of another encoding reached the terminal as they were.
    It is escaped as every other name autopack-ctl prints is."""
    name = os.fsencode(str(tmp)) + b"/p\xff\nx.json"
    with open(name, "w") as f:
        f.write(one_phase_plan("latin"))
    p = subprocess.run([binpath("autopack-ctl"), "--db", url(db), "run", "import", name],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p
    last = p.stdout.decode().splitlines()[-1]
    assert last == "imported %s/p\\xff\\nx.json: 1 run (latin), 1 tier, 1 phase, all QUEUED" \
        % tmp, p.stdout


def test_a_nul_escaped_in_a_plan_is_refused_in_the_authors_words(db, tmp):
    """A plan whose string holds \\u0000 was refused with jansson's own words, `\\u0000 is
    not allowed without JSON_ALLOW_NUL`, naming a flag of the parser no plan's author can
    give. The message names the character; the position is kept."""
    doc = one_phase_plan("r").replace('"name": "n"', '"name": "a\\u0000b"')
    write_plan(tmp, doc)
    r = ctl("--db", url(db), "run", "import", "plan.json")
    assert r.rc == 1, r
    assert re.fullmatch(r"autopack-ctl: plan\.json:1:\d+: invalid JSON: a string holds "
                        r"\\u0000, the NUL character, which no text of a plan may hold; "
                        r"nothing was written\n", r.err), r.err
    assert "JSON_ALLOW_NUL" not in r.err
    assert counts(db) == (0, 0, 0)


def test_a_plan_typed_at_a_terminal_is_read_to_ctrl_d_saying_so(db, tmp):
    """`run import -` at a terminal waits for the plan to be typed: it says so on stderr,
    and how to end it, rather than seem to hang."""
    import pty
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([binpath("autopack-ctl"), "--db", url(db), "run", "import", "-"],
                             stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        os.write(master, one_phase_plan("typed").encode() + b"\n\x04")
        out, err = p.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 0, (out, err)
    assert err == ("autopack-ctl run import: reading the plan from the terminal; end it "
                   "with Ctrl-D\n"), err
    assert "imported standard input: 1 run (typed)" in out, out
