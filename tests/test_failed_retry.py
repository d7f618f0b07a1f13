"""autopack-ctl failed and retry on databases a real drain left failures in: the classes
by fingerprint with their check logs and stderr, newest first; retry by phase, run,
fingerprint, reason or every failed phase, offline under the lock and through a running
supervisor, each retried phase in control_log; --dry-run writes nothing."""
import json
import os

from conftest import ctl
from e2e_helpers import checks_where, drain, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor, wait_for

KEY = "sk-ant-failed-retry-key"
# Two failure classes: the same assertion in two runs, and a bare exit status in a third.
CHECK_A = "echo 'AssertionError: expected 3, got 4' >&2; echo 'at line 12' >&2; exit 1"
CHECK_B = "exit 7"


def failing_db(tmp, llm, url=None):
    """A drained database (in tmp, or at `url`, an empty PostgreSQL database): a1/p1 and
    a2/p1 FAILED with CHECK_A, b1/p1 FAILED with CHECK_B (after a1 and a2, so it is the
    newest class), ok/p1 COMPLETE."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(os.path.join(ws, "out"))
    url = init_db(tmp, url=url)
    import_plan(tmp, url, [
        ("a1", ws, [phase_spec("p1", ("out/a1.py",), check=CHECK_A)]),
        ("a2", ws, [phase_spec("p1", ("out/a2.py",), check=CHECK_A)]),
        ("ok", ws, [phase_spec("p1", ("out/ok.py",), check="true")]),
    ])
    drain(tmp, url, llm, "--max-attempts-per-phase", 1, key=KEY)
    import_plan(tmp, url, [("b1", ws, [phase_spec("p1", ("out/b1.py",), check=CHECK_B)])])
    drain(tmp, url, llm, "--max-attempts-per-phase", 1, key=KEY, name="sup2")
    return url, ws


def failed_json(url, *args):
    r = ctl("--db", url, "failed", "--json", *args)
    assert r.rc == 0, r
    return json.loads(r.out)


def states(url):
    return {(r["run_id"], r["phase_id"]): r["state"]
            for r in rows(url, "SELECT run_id, phase_id, state FROM phases")}


def test_failed_groups_by_fingerprint_newest_first_with_logs_and_stderr(tmp, llm):
    url, ws = failing_db(tmp, llm)
    doc = failed_json(url)
    assert (doc["failed"], doc["stopped"]) == (3, 0)
    groups = doc["groups"]
    assert [g["count"] for g in groups] == [1, 2]          # b1 failed last: its class first
    assert [p["run_id"] for p in groups[0]["phases"]] == ["b1"]
    assert sorted(p["run_id"] for p in groups[1]["phases"]) == ["a1", "a2"]
    # The class is the attempts' own fingerprint, as the database holds it.
    db = {(r["run_id"], r["fingerprint"]) for r in rows(
        url, "SELECT run_id, fingerprint FROM attempts WHERE outcome = 'failed'")}
    for g in groups:
        assert g["reason"] == "CHECK_FAILED"
        assert len(g["id"]) == 12
        for p in g["phases"]:
            assert (p["run_id"], g["fingerprint"]) in db
            assert p["state"] == "FAILED" and p["status"] == "failed"
            assert p["logs"]["stderr"] == os.path.join(
                ws, ".autopack", "logs", "%s__p1__a1.stderr.txt" % p["run_id"])
            assert os.path.exists(p["logs"]["stdout"])
            assert p["message"].startswith("check command exited")
    a = groups[1]["phases"][0]
    assert a["stderr_tail"] == "AssertionError: expected 3, got 4\nat line 12\n"
    assert groups[0]["phases"][0]["stderr_tail"] == ""
    assert groups[0]["last_ended_at"] > groups[1]["last_ended_at"]

    text = ctl("--db", url, "failed")
    assert text.rc == 0, text
    out = text.out
    assert "3 failed, 0 stopped phases in 2 classes" in out
    assert out.index("[%s]" % groups[0]["id"]) < out.index("[%s]" % groups[1]["id"])
    assert "| AssertionError: expected 3, got 4" in out
    assert "retry them: autopack-ctl retry --fingerprint %s" % groups[1]["id"] in out
    assert a["logs"]["stderr"] in out


def test_failed_shows_no_file_a_check_linked_in_place_of_its_log(tmp, llm):
    # The check replaced its stderr log with a symbolic link to a file outside the
    # workspace: `failed` (run by whoever reads other users' files) printed that file's end
    # as the check's stderr. A confined check finds the logs directory read-only
    # (tests/test_check_planted.py): the link is made by one the kernel refused to confine.
    prefix = checks_where("no-namespace")
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    secret = os.path.join(tmp, "secret.txt")
    with open(secret, "w") as f:
        f.write("TOP-SECRET-LINE\n")
    url = init_db(tmp)
    check = ("echo real-error >&2; ln -sf %s .autopack/logs/run__p1__a1.stderr.txt; exit 1"
             % secret)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])
    drain(tmp, url, llm, "--max-attempts-per-phase", 1, key=KEY, prefix=prefix)
    assert os.path.islink(os.path.join(ws, ".autopack", "logs", "run__p1__a1.stderr.txt"))
    [p] = failed_json(url)["groups"][0]["phases"]
    assert p["message"].endswith("real-error\n") and p["stderr_tail"] == "", p
    text = ctl("--db", url, "failed")
    assert text.rc == 0 and "real-error" in text.out, text
    assert "TOP-SECRET" not in text.out


def test_a_class_of_stopped_phases_only_names_no_retry_that_takes_none(tmp, llm):
    """A run stopped by its first failure leaves its phase QUEUED: `failed` lists it as
    stopped and, as `retry --fingerprint` takes FAILED phases only, says what takes it
    instead of printing a retry that would find nothing."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    url = init_db(tmp)
    import_plan(tmp, url, [("s1", ws, [phase_spec("p1", ("out/s1.py",), check=CHECK_A)])])
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained",
                     "--max-fingerprint-repeats", 1, *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": KEY})
    assert sup.wait(timeout=180) == 5, sup.stderr()
    doc = failed_json(url)
    assert (doc["failed"], doc["stopped"]) == (0, 1), doc
    out = ctl("--db", url, "failed").out
    assert "0 failed, 1 stopped phase in 1 class" in out, out
    assert "retry them" not in out, out
    assert "none of them is FAILED: the next drain takes the QUEUED ones" in out, out
    r = ctl("--db", url, "retry", "--fingerprint", doc["groups"][0]["id"])
    assert r.rc == 0 and "nothing to retry" in r.out + r.err, r


def test_failed_filters_by_run_and_since(tmp, llm):
    url, _ = failing_db(tmp, llm)
    assert [p["run_id"] for g in failed_json(url, "--run", "a2")["groups"]
            for p in g["phases"]] == ["a2"]
    assert failed_json(url, "--since", "2h")["failed"] == 3
    assert failed_json(url, "--since", "2099-01-01T00:00:00Z")["groups"] == []
    b1_end = rows(url, "SELECT ended_at FROM attempts WHERE run_id = 'b1'")[0]["ended_at"]
    only_b = failed_json(url, "--since", b1_end)
    assert [p["run_id"] for g in only_b["groups"] for p in g["phases"]] == ["b1"]
    for bad in ("yesterday", "5x", "-3h"):
        r = ctl("--db", url, "failed", "--since", bad)
        assert r.rc == 2 and "--since" in r.err, r


def test_retry_dry_run_lists_and_writes_nothing(tmp, llm):
    url, _ = failing_db(tmp, llm)
    before = (states(url), rows(url, "SELECT count(*) AS n FROM control_log"))
    r = ctl("--db", url, "retry", "--all-failed", "--dry-run", "--json")
    assert r.rc == 0, r
    doc = json.loads(r.out)
    assert doc["dry_run"] is True and doc["count"] == 3
    assert sorted(p["run_id"] for p in doc["would_retry"]) == ["a1", "a2", "b1"]
    assert (states(url), rows(url, "SELECT count(*) AS n FROM control_log")) == before


def test_retry_offline_by_fingerprint_id_records_who_and_why(tmp, llm):
    url, _ = failing_db(tmp, llm)
    cls = failed_json(url)["groups"][1]
    r = ctl("--db", url, "retry", "--fingerprint", cls["id"][:8], "--note", "flaky fixture fixed")
    assert r.rc == 0, r
    assert "retried 2 phases" in r.out
    s = states(url)
    assert (s[("a1", "p1")], s[("a2", "p1")], s[("b1", "p1")]) == ("QUEUED", "QUEUED", "FAILED")
    # Their tiers follow them: no longer FAILED, waiting again.
    tiers = {r["run_id"]: r["state"] for r in rows(url, "SELECT run_id, state FROM tiers")}
    assert (tiers["a1"], tiers["a2"], tiers["b1"]) == ("PENDING", "PENDING", "FAILED"), tiers
    log = rows(url, "SELECT peer_pid, peer_uid, command, args, ok, result FROM control_log"
                    " ORDER BY id")
    assert sorted(x["args"] for x in log) == ["a1 p1", "a2 p1"]
    for x in log:
        assert x["command"] == "retry" and x["ok"] == 1
        assert x["peer_uid"] == os.getuid() and x["peer_pid"] > 0
        assert x["result"] == ("FAILED -> QUEUED; selected by: --fingerprint %s;"
                               " note: flaky fixture fixed; via offline" % cls["id"][:8])
    # Retried phases wait for a drain: neither failed nor stopped.
    doc = failed_json(url)
    assert (doc["failed"], doc["stopped"]) == (1, 0)
    # The whole fingerprint text selects the same way.
    r = ctl("--db", url, "retry", "--fingerprint", doc["groups"][0]["fingerprint"])
    assert r.rc == 0 and states(url)[("b1", "p1")] == "QUEUED", r


def test_a_fingerprint_id_typed_in_upper_case_selects_the_same_phases(tmp, llm):
    """An id copied from a report in capitals matched nothing: 'retried 0 phases', exit 0."""
    url, _ = failing_db(tmp, llm)
    fid = failed_json(url)["groups"][1]["id"]

    def selected(name):
        r = ctl("--db", url, "retry", "--fingerprint", name, "--dry-run", "--json")
        assert r.rc == 0, r
        return sorted((p["run_id"], p["phase_id"]) for p in json.loads(r.out)["would_retry"])
    assert selected(fid) == [("a1", "p1"), ("a2", "p1")]
    assert selected(fid.upper()) == selected(fid[:8].upper()) == selected(fid)


def test_retry_selectors_and_errors(tmp, llm):
    url, _ = failing_db(tmp, llm)
    r = ctl("--db", url, "retry", "--run", "a2")
    assert r.rc == 0 and states(url)[("a2", "p1")] == "QUEUED", r
    assert states(url)[("a1", "p1")] == "FAILED"
    r = ctl("--db", url, "retry", "--reason", "check_failed", "--run", "b1")
    assert r.rc == 0 and states(url)[("b1", "p1")] == "QUEUED", r
    r = ctl("--db", url, "retry", "a1", "p1")
    assert r.rc == 0 and states(url)[("a1", "p1")] == "QUEUED", r
    r = ctl("--db", url, "retry", "--all-failed", "--json")
    assert r.rc == 0 and json.loads(r.out)["count"] == 0, r
    r = ctl("--db", url, "retry", "ok", "p1")
    assert r.rc == 1 and "phase ok/p1 is COMPLETE, not FAILED or SKIPPED" in r.err, r
    r = ctl("--db", url, "retry", "ok", "nope")
    assert r.rc == 1 and "no phase 'nope' in run 'ok'" in r.err, r
    # Empty ids are named as such (the message said "no phase  in run ").
    r = ctl("--db", url, "retry", "", "")
    assert r.rc == 1 and "no phase '' in run ''" in r.err, r
    # A run the database does not hold is a mistake, not "nothing failed".
    for args in (["retry", "--run", "a3"], ["retry", "--run", "a3", "--dry-run"],
                 ["failed", "--run", "a3"], ["retry", "--run", "a3", "--reason", "x"]):
        r = ctl("--db", url, *args)
        assert r.rc == 1 and "no run 'a3' in the database" in r.err, (args, r)
    r = ctl("--db", url, "failed", "--run", "ok", "--json")
    assert r.rc == 0 and json.loads(r.out)["groups"] == [], r
    for args, what in ((["retry"], "say what to retry"),
                       (["retry", "a1"], "give RUN and PHASE"),
                       (["retry", "--all-failed", "--run", "a1"], "--all-failed"),
                       (["retry", "a1", "p1", "--reason", "X"], "RUN PHASE names one phase"),
                       (["retry", "--bogus"], "unknown option")):
        r = ctl("--db", url, *args)
        assert r.rc == 2 and what in r.err, (args, r)
    assert len(rows(url, "SELECT * FROM control_log")) == 3  # refusals write nothing


def test_failed_and_retry_while_a_supervisor_runs(tmp, llm):
    url, _ = failing_db(tmp, llm)
    sup = Supervisor(tmp, url, "--workers", 2, "--max-attempts-per-phase", 1, *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": KEY}, name="live")
    try:
        sup.wait_ready()
        # Reads need no lock: the same answer while the supervisor holds the database.
        assert failed_json(url)["failed"] == 3
        cls = failed_json(url)["groups"][1]
        r = ctl("--db", url, "retry", "--fingerprint", cls["id"], "--note", "live")
        assert r.rc == 0, r
        assert "through the supervisor (pid %d)" % sup.proc.pid in r.out
        # The supervisor drains them at once; the check still fails, so they fail again.
        wait_for(lambda: rows(url, "SELECT count(*) AS n FROM attempts WHERE run_id IN"
                                   " ('a1', 'a2') AND ended_at IS NOT NULL")[0]["n"] == 4,
                 60, what="the retried phases' second attempts")
        wait_for(lambda: states(url)[("a1", "p1")] == states(url)[("a2", "p1")] == "FAILED",
                 60, what="the retried phases FAILED again")
        log = rows(url, "SELECT peer_pid, args, result FROM control_log ORDER BY id")
        assert sorted(x["args"] for x in log) == ["a1 p1", "a2 p1"]
        # The supervisor's log says who asked and why, too.
        said = [l for l in sup.stderr().splitlines() if "retry by control request" in l]
        assert len(said) == 1 and ("uid %d, --fingerprint %s; note: live): 2 phase(s)"
                                   % (os.getuid(), cls["id"])) in said[0], said
        for x in log:
            assert x["result"].endswith("note: live; via supervisor pid %d" % sup.proc.pid)
            assert x["peer_pid"] != sup.proc.pid
        r = ctl("--db", url, "retry", "--all-failed", "--dry-run")
        assert r.rc == 0 and "would retry" in r.out, r
        r = ctl("--db", url, "retry", "--run", "a3")
        assert r.rc == 1 and "no run 'a3' in the database" in r.err, r
        # A refusal is recorded too, through the supervisor's writer.
        r = ctl("--db", url, "retry", "ok", "p1")
        assert r.rc == 1 and "phase ok/p1 is COMPLETE, not FAILED or SKIPPED" in r.err, r
        wait_for(lambda: rows(url, "SELECT ok, result FROM control_log WHERE args = 'ok p1'"),
                 30, what="the refusal's control_log row")
        assert rows(url, "SELECT ok FROM control_log WHERE args = 'ok p1'") == [{"ok": 0}]
    finally:
        sup.stop_now()


def test_failed_and_retry_on_postgresql(tmp, llm, pg_url):
    """The same commands on a PostgreSQL database: the classes, --since with a timestamp,
    an offline retry with its control_log rows, and a retry while a supervisor drains."""
    url, ws = failing_db(tmp, llm, url=pg_url)
    doc = failed_json(url)
    assert (doc["failed"], doc["stopped"]) == (3, 0)
    assert [g["count"] for g in doc["groups"]] == [1, 2]
    a = doc["groups"][1]["phases"][0]
    assert a["stderr_tail"] == "AssertionError: expected 3, got 4\nat line 12\n"
    assert a["logs"]["stderr"].startswith(os.path.join(ws, ".autopack", "logs"))
    assert failed_json(url, "--since", "2099-01-01T00:00:00Z")["groups"] == []
    assert failed_json(url, "--since", "2h")["failed"] == 3
    r = ctl("--db", url, "failed", "--run", "a3")
    assert r.rc == 1 and "no run 'a3' in the database" in r.err, r

    r = ctl("--db", url, "retry", "--fingerprint", doc["groups"][1]["id"], "--note", "pg")
    assert r.rc == 0 and "retried 2 phases" in r.out, r
    assert (states(url)[("a1", "p1")], states(url)[("b1", "p1")]) == ("QUEUED", "FAILED")
    log = rows(url, "SELECT args, result FROM control_log ORDER BY id")
    assert sorted(x["args"] for x in log) == ["a1 p1", "a2 p1"]
    assert all(x["result"].endswith("note: pg; via database") for x in log), log

    sup = Supervisor(tmp, url, "--workers", 1, "--max-attempts-per-phase", 1,
                     *llm_args(llm), env={"ANTHROPIC_API_KEY": KEY}, name="pglive")
    try:
        sup.wait_ready()
        wait_for(lambda: states(url)[("a1", "p1")] == states(url)[("a2", "p1")] == "FAILED",
                 60, what="the retried phases drained and FAILED again")
        assert failed_json(url)["failed"] == 3
        # Several supervisors may share a PostgreSQL database; whichever path the retry
        # takes, the running drain takes the phase and control_log names who and why.
        r = ctl("--db", url, "retry", "--reason", "check_failed", "--run", "b1")
        assert r.rc == 0 and "b1/p1" in r.out, r
        wait_for(lambda: rows(url, "SELECT count(*) AS n FROM attempts WHERE run_id = 'b1'"
                                   " AND ended_at IS NOT NULL")[0]["n"] == 2,
                 60, what="b1's second attempt")
        log = rows(url, "SELECT peer_uid, result FROM control_log WHERE args = 'b1 p1'")
        assert len(log) == 1 and log[0]["peer_uid"] == os.getuid(), log
        assert log[0]["result"].startswith(
            "FAILED -> QUEUED; selected by: --reason check_failed --run b1; via "), log
    finally:
        sup.stop_now()


def test_retry_an_unknown_reason_is_a_usage_error_listing_the_known_ones(tmp, llm):
    """`retry --reason CHEK_FAILED` said only "nothing to retry": a misspelt reason read as
    a class with nothing in it. A reason that is neither in the vocabulary nor recorded by
    a phase is a usage error (exit 2) naming it and listing the known reasons, offline and
    through a running supervisor; a known reason with nothing to retry keeps its message."""
    url, _ = failing_db(tmp, llm)
    for extra in ([], ["--dry-run"], ["--json"]):
        r = ctl("--db", url, "retry", "--reason", "CHEK_FAILED", *extra)
        assert r.rc == 2, (extra, r)
        assert "--reason CHEK_FAILED: unknown failure reason" in r.err, r
        assert "the known reasons are INVALID_JOB, " in r.err and "CHECK_FAILED" in r.err, r
        if extra == ["--json"]:
            assert "unknown failure reason" in json.loads(r.out)["message"], r
    r = ctl("--db", url, "retry", "--reason", "timeout")
    assert r.rc == 0 and r.out.strip().endswith("nothing to retry: no FAILED phase matches"), r
    sup = Supervisor(tmp, url, "--workers", 0, name="live")
    try:
        sup.wait_ready()
        r = ctl("--db", url, "retry", "--reason", "chek_failed")
        assert r.rc == 2 and "unknown failure reason" in r.err, r
        r = ctl("--db", url, "retry", "--reason", "TIMEOUT")
        assert r.rc == 0 and "nothing to retry: no FAILED phase matches" in r.out, r
        # The supervisor refuses one too when asked directly.
        r = sup.ctl("retry", "--reason", "chek_failed")
        assert r.rc == 2, r
    finally:
        sup.stop_now()
    assert states(url)[("a1", "p1")] == "FAILED"
    assert rows(url, "SELECT * FROM control_log WHERE command = 'retry' AND ok = 1") == []


def test_retry_stopped_puts_a_stopped_run_back_in_a_running_drain(tmp, llm):
    """A run the drain rules stopped leaves its phase QUEUED, and `retry` takes FAILED
    phases only: a running supervisor could not be told to drain it again. `retry
    --stopped` (alone or with --run, --fingerprint, --reason) puts the stopped QUEUED phases
    back: the running drain takes them at once, each recorded in control_log; --dry-run
    lists them; offline the phase is no longer listed as stopped."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    url = init_db(tmp)
    import_plan(tmp, url, [("s1", ws, [phase_spec("p1", ("out/s1.py",), check=CHECK_A)]),
                           ("s2", ws, [phase_spec("p1", ("out/s2.py",), check=CHECK_A)])])
    sup = Supervisor(tmp, url, "--workers", 1, "--max-fingerprint-repeats", 1,
                     "--max-attempts-per-phase", 3, *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": KEY}, name="live")
    try:
        sup.wait_ready()
        # The first failure stops its run (and, its fingerprint stopped, the other's).
        wait_for(lambda: failed_json(url)["stopped"] >= 1, 120, what="a stopped phase")
        stopped = {(p["run_id"], p["phase_id"]) for g in failed_json(url)["groups"]
                   for p in g["phases"] if p["state"] == "QUEUED"}
        assert ("s1", "p1") in stopped or ("s2", "p1") in stopped, stopped
        run = sorted(stopped)[0][0]
        n = len(rows(url, "SELECT attempt_id FROM attempts WHERE run_id = ?", run))
        # A plain retry finds nothing FAILED.
        r = ctl("--db", url, "retry", "--run", run)
        assert r.rc == 0 and "nothing to retry: no FAILED phase matches" in r.out, r
        r = ctl("--db", url, "retry", "--stopped", "--run", run, "--dry-run")
        assert r.rc == 0 and "would put back 1 stopped phase (nothing written)" in r.out, r
        assert "%s/p1 (QUEUED" % run in r.out, r
        r = ctl("--db", url, "retry", "--stopped", "--run", run, "--note", "fixed")
        assert r.rc == 0, r
        assert "put back 1 stopped phase through the supervisor" in r.out, r
        wait_for(lambda: len(rows(url, "SELECT attempt_id FROM attempts WHERE run_id = ?"
                                       " AND ended_at IS NOT NULL", run)) == n + 1,
                 120, what="the stopped phase drained again")
        log = rows(url, "SELECT args, result FROM control_log WHERE command = 'retry'")
        assert [x["args"] for x in log] == ["%s p1" % run], log
        assert log[0]["result"].startswith(
            "QUEUED (stopped) -> back in the drain; selected by: --stopped --run %s;"
            " note: fixed; via supervisor pid %d" % (run, sup.proc.pid)), log
        for bad, what in ((["--stopped", "--all-failed"], "drop --all-failed"),
                          (["--stopped", "s1", "p1"], "drop RUN PHASE")):
            r = ctl("--db", url, "retry", *bad)
            assert r.rc == 2 and what in r.err, (bad, r)
    finally:
        sup.stop_now()
    # Offline: whatever is stopped now is put back under the lock, and no longer listed
    # as stopped.
    left = failed_json(url)["stopped"]
    r = ctl("--db", url, "retry", "--stopped", "--json")
    assert r.rc == 0, r
    doc = json.loads(r.out)
    assert (doc["stopped"], doc["via"], doc["count"]) == (True, "offline", left), doc
    assert all(p["from"] == "QUEUED" for p in doc["retried"]), doc
    assert failed_json(url)["stopped"] == 0
    r = ctl("--db", url, "retry", "--stopped")
    assert r.rc == 0 and "nothing to retry: no stopped QUEUED phase matches" in r.out, r
