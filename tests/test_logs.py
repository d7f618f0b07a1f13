"""The supervisor's log: --log-level, --log-format json (every line one object, with run,
phase, attempt, session and worker where they apply), failures at warn with their message
and check log, worker log events in the supervisor's log as well as the database, and the
journald form (no time, "<N>" priorities) when stderr is the journal's stream."""
import json
import os
import re
import subprocess

import pytest

from conftest import binpath, run
from e2e_helpers import drain, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor, full_tmpfs, new_db

CHECK_FAIL = "echo 'ValueError: bad widget' >&2; exit 4"


def one_failure_db(tmp):
    """A database with run r1: p1 fails its check, p2 succeeds."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(os.path.join(ws, "out"))
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec("p1", ("out/a.py",), check=CHECK_FAIL),
                                       phase_spec("p2", ("out/b.py",), check="true")])])
    return url, ws


def test_json_lines_carry_fields_failures_warn_and_worker_events(tmp, llm):
    url, ws = one_failure_db(tmp)
    sup = drain(tmp, url, llm, "--max-attempts-per-phase", 1, "--log-format", "json")
    lines = [json.loads(l) for l in sup.stderr().splitlines()]
    assert len(lines) > 5
    for l in lines:
        assert l["level"] in ("debug", "info", "warn", "error")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", l["ts"]), l
        assert l["program"] in ("autopack-supervisor", "autopack-worker") and l["pid"] > 0
        assert isinstance(l["msg"], str)
    session = rows(url, "SELECT session_id FROM drain_sessions")[0]["session_id"]
    att = {r["phase_id"]: r for r in rows(
        url, "SELECT attempt_id, phase_id, message FROM attempts")}

    fail = [l for l in lines if l["msg"].startswith("[FAIL] r1/p1")]
    assert len(fail) == 1, lines
    fail = fail[0]
    assert fail["level"] == "warn"
    assert (fail["session"], fail["run"], fail["phase"], fail["attempt"]) == (
        session, "r1", "p1", att["p1"]["attempt_id"])
    assert fail["worker"] >= 1
    # The failure's own message, which names the check's stderr log, is in the line.
    assert att["p1"]["message"].rstrip() in fail["msg"]
    assert os.path.join(ws, ".autopack/logs/r1__p1__a1.stderr.txt") in fail["msg"]
    assert "ValueError: bad widget" in fail["msg"]

    ok = [l for l in lines if l["msg"].startswith("[OK] r1/p2")]
    assert len(ok) == 1 and ok[0]["level"] == "info" and ok[0]["phase"] == "p2"

    # Lines about a worker carry it; lines about the session carry the session.
    started = [l for l in lines if re.match(r"worker \d+ started \(pid \d+\)$", l["msg"])]
    assert len(started) == 4, lines
    for l in started:
        assert l["worker"] == int(l["msg"].split()[1]) and l["session"] == session, l
    for msg in ("session %s: " % session, "[STOP] drained", "session %s ended " % session):
        said = [l for l in lines if l["msg"].startswith(msg)]
        assert len(said) == 1 and said[0]["session"] == session, (msg, lines)

    # Every log event a worker sent is in the database and in the supervisor's log, with
    # its attempt.
    events = rows(url, "SELECT e.attempt_id, e.level, e.message, a.phase_id FROM events e"
                       " JOIN attempts a USING (attempt_id) WHERE e.kind = 'log'")
    assert events
    for e in events:
        match = [l for l in lines if l.get("attempt") == e["attempt_id"]
                 and l["msg"].endswith(e["message"]) and l["program"] == "autopack-supervisor"]
        assert len(match) == 1, (e, lines)
        assert match[0]["phase"] == e["phase_id"]
        assert match[0]["level"] == {"warn": "warn", "error": "error"}.get(e["level"], "info")


def test_log_level_warn_keeps_failures_only(tmp, llm):
    url, _ = one_failure_db(tmp)
    sup = drain(tmp, url, llm, "--max-attempts-per-phase", 1, "--log-level", "warn")
    err = sup.stderr()
    assert " warn: [FAIL] r1/p1 attempt " in err
    assert " info: " not in err and "[OK]" not in err


def test_log_level_warn_shows_runs_the_drain_rules_stopped(tmp, llm):
    """A run stopped by a repeating fingerprint, and the phases it left, need an operator:
    they are warnings, so `journalctl -p warning` says why the drain left work."""
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(os.path.join(ws, "out"))
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec("p%d" % i, ("out/m%d.py" % i,),
                                                  check=CHECK_FAIL) for i in (1, 2, 3)])])
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained",
                     "--max-attempts-per-phase", 1, "--max-fingerprint-repeats", 2,
                     "--log-level", "warn", "--log-format", "json", *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": "sk-ant-warn-key"})
    assert sup.wait(timeout=180) == 5, sup.stderr()
    lines = [json.loads(l) for l in sup.stderr().splitlines()]
    assert {l["level"] for l in lines} == {"warn"}, lines
    assert [l for l in lines if l["msg"].startswith("[FAIL] r1/")], lines
    stop = [l for l in lines if l["msg"].startswith("[STOP] run r1: fingerprint seen 2 times")]
    assert len(stop) == 1 and stop[0]["run"] == "r1", lines
    left = [l for l in lines if l["msg"].startswith("[LEFT] r1: 1 phase(s) left: run stopped:")]
    assert len(left) == 1 and left[0]["run"] == "r1" and left[0]["session"], lines


def test_log_level_error_hides_failures_of_phases(tmp, llm):
    url, _ = one_failure_db(tmp)
    sup = drain(tmp, url, llm, "--max-attempts-per-phase", 1, "--log-level", "error")
    assert sup.stderr() == ""


def test_text_lines_and_debug(tmp, llm):
    url, _ = one_failure_db(tmp)
    sup = drain(tmp, url, llm, "--max-attempts-per-phase", 1, "--log-level", "debug")
    err = sup.stderr()
    for line in err.splitlines():
        assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z autopack-(supervisor|worker)\[\d+\] "
                        r"(debug|info|warn|error): \S", line), line
    fail = [l for l in err.splitlines() if "[FAIL] r1/p1" in l]
    # One line, even though the message holds the check's multi-line stderr.
    assert len(fail) == 1 and "ValueError: bad widget" in fail[0]
    # Debug adds each dispatch: the attempt's id, its worker, and its number within the
    # phase (the number in the check's log file names).
    for a in rows(url, "SELECT attempt_id, phase_id, attempt_number FROM attempts"):
        sent = [l for l in err.splitlines() if " debug: r1/%s attempt %d: sent to worker "
                % (a["phase_id"], a["attempt_id"]) in l]
        assert len(sent) == 1, (a, err)
        assert sent[0].endswith(" as the phase's attempt %d" % a["attempt_number"]), sent


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_journal_stream_gets_priorities_and_no_time(tmp, llm, fmt):
    url, _ = one_failure_db(tmp)
    # stderr is the file the Supervisor helper writes: tell the binaries it is the
    # journal's stream, as systemd does with JOURNAL_STREAM=device:inode.
    err_path = os.path.join(str(tmp), "journal.err")
    open(err_path, "w").close()
    st = os.stat(err_path)
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--max-attempts-per-phase",
                     1, "--log-format", fmt, *llm_args(llm), name="journal",
                     env={"ANTHROPIC_API_KEY": "sk-ant-journal-key",
                          "JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
    assert sup.wait() == 0, sup.stderr()
    lines = sup.stderr().splitlines()
    assert lines
    for line in lines:
        m = re.match(r"<([3467])>(.*)$", line)
        assert m, line
        body = m.group(2)
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", body.split(" ")[0]), line
        if fmt == "json":
            doc = json.loads(body)
            assert "ts" not in doc
            assert {"3": "error", "4": "warn", "6": "info", "7": "debug"}[m.group(1)] == \
                doc["level"]
    fail = [l for l in lines if "[FAIL] r1/p1" in l]
    assert len(fail) == 1 and fail[0].startswith("<4>")


def test_journal_stream_of_another_file_is_not_the_journal(tmp, llm):
    url, _ = one_failure_db(tmp)
    other = os.stat(str(tmp))
    # One attempt per phase: p1's failure stops nothing, and the drain ends clean (exit 0).
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained",
                     "--max-attempts-per-phase", 1, *llm_args(llm),
                     name="notjournal", env={"ANTHROPIC_API_KEY": "sk-ant-x-key",
                                             "JOURNAL_STREAM": "%d:%d" % (other.st_dev,
                                                                          other.st_ino)})
    assert sup.wait() == 0
    lines = sup.stderr().splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT", l) for l in lines), lines


@pytest.mark.parametrize("flag,value", [("--log-level", "verbose"), ("--log-format", "xml")])
def test_bad_log_flags_exit_2(tmp, flag, value):
    r = run("autopack-supervisor", flag, value)
    assert r.rc == 2 and flag in r.err and value in r.err, r


def test_two_phases_whose_ids_join_the_same_way_keep_their_own_check_logs(tmp, llm):
    # Run "a_" phase "b" and run "a" phase "_b" in one workspace: both logs were named
    # a___b__a1.*, the second overwriting the first.
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(os.path.join(ws, "out"))
    url = init_db(tmp)
    import_plan(tmp, url, [
        ("a_", ws, [phase_spec("b", ("out/x.py",), check="echo FROM-RUN-A_ >&2; exit 1")]),
        ("a", ws, [phase_spec("_b", ("out/y.py",), check="echo FROM-RUN-A >&2; exit 1")])])
    drain(tmp, url, llm, "--max-attempts-per-phase", 1)
    logs = sorted(n for n in os.listdir(os.path.join(ws, ".autopack", "logs"))
                  if n.endswith(".stderr.txt"))
    assert len(logs) == 2, logs
    r = run("autopack-ctl", "--db", url, "failed", "--json")
    assert r.rc == 0, r
    tails = {p["run_id"]: (p["stderr_tail"], p["logs"]["stderr"])
             for g in json.loads(r.out)["groups"] for p in g["phases"]}
    assert tails["a_"][0] == "FROM-RUN-A_\n" and tails["a"][0] == "FROM-RUN-A\n", tails
    assert tails["a_"][1] != tails["a"][1]


def test_json_lines_stay_valid_utf8_when_an_id_in_the_database_is_not(tmp):
    # A run id with a byte that is not UTF-8 (SQLite's TEXT takes any bytes: a database
    # written by another program): its phases fail as jobs that cannot be encoded, and
    # every JSON line naming it is still valid UTF-8 and JSON, the byte shown as U+FFFD.
    import sqlite3
    from supervisor_helpers import new_db
    url = new_db(tmp, runs=1, phases=2)
    con = sqlite3.connect(url[len("sqlite:///"):])
    con.execute("PRAGMA foreign_keys=OFF")
    rid = con.execute("SELECT id FROM runs").fetchone()[0]
    for table, col in (("runs", "id"), ("tiers", "run_id"), ("phases", "run_id")):
        con.execute("UPDATE %s SET %s = CAST(X'72756e2dff' AS TEXT) WHERE %s = ?"
                    % (table, col, col), (rid,))
    con.commit()
    con.close()
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     "--log-format", "json")
    assert sup.wait() == 0
    with open(sup.err_path, "rb") as f:
        raw = f.read()
    lines = [json.loads(line.decode("utf-8")) for line in raw.splitlines()]
    failed = [x for x in lines if "cannot be encoded" in x["msg"] and x.get("run")]
    assert failed and all(x["run"] == "run-\ufffd" for x in failed), lines


def test_a_log_file_that_cannot_be_written_says_so_and_its_lines_go_to_stderr(tmp):
    # --log-file on a full disk: every line was lost without a word, the supervisor's and
    # its workers', and the drain ran on with nothing to show for it anywhere.
    url = new_db(tmp, runs=1, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     "--log-file", "/dev/full", name="full")
    assert sup.wait() == 0, sup.stderr()
    err = sup.stderr()
    said = [l for l in err.splitlines() if "error: cannot write the log file /dev/full: No "
            "space left on device; until it can be written again, its lines go to" in l]
    assert said and "autopack-supervisor[" in said[0], err
    assert "ended (drained)" in err and "worker 1 started" in err, err


def test_a_log_file_written_again_after_a_full_disk_gets_the_lines_again(tmp):
    url = new_db(tmp, runs=1, phases=1)
    with full_tmpfs(tmp / "logs", "64k") as disk:
        log = disk / "sup.log"
        sup = Supervisor(tmp, url, "--workers", 0, "--dry-run", "--log-file", str(log))
        try:
            sup.wait_ready()
            assert "cannot write the log file %s: No space left on device" % log \
                in sup.stderr(), sup.stderr()
            os.unlink(disk / "filler")
            assert sup.ctl("pause").rc == 0
        finally:
            sup.proc.terminate()
            assert sup.wait() == 0, sup.stderr()
        assert "warn: the log file %s is written again" % log in sup.stderr(), sup.stderr()
        with open(log) as f:
            text = f.read()
        assert "paused by control request" in text and "ended (received Terminated)" in text
        assert "paused by control request" not in sup.stderr()


@pytest.mark.parametrize("journal", [False, True], ids=["stream", "journal"])
def test_json_logs_share_their_stream_with_stdout_as_json_only(tmp, journal):
    """Under systemd stdout and stderr are one stream into the journal (StandardOutput=
    journal, StandardError=inherit): with --log-format json every line of it is one JSON
    object (behind its "<N>" priority in the journal), the database's identity one of
    them, not the nine lines of the text banner the supervisor printed on stdout, which
    `journalctl -o cat` handed a JSON reader first."""
    url = new_db(tmp, runs=1, phases=2)
    path = os.path.join(str(tmp), "stream")
    env = dict(os.environ)
    with open(path, "w") as out:
        if journal:
            st = os.fstat(out.fileno())
            env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        p = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--dry-run",
                            "--workers", "1", "--exit-when-drained", "--control",
                            os.path.join(str(tmp), "c.sock"), "--log-format", "json"],
                           stdout=out, stderr=subprocess.STDOUT, env=env, timeout=120)
    with open(path) as f:
        lines = f.read().splitlines()
    assert p.returncode == 0, lines
    docs = []
    for line in lines:
        if journal:
            m = re.match(r"<[3467]>(\{.*)$", line)
            assert m, line
            line = m.group(1)
        docs.append(json.loads(line))
    ident = [d for d in docs if d["msg"].startswith("database %s: file " % url)]
    assert len(ident) == 1 and ident[0]["level"] == "info", docs
    assert re.search(r", uuid [0-9a-f-]{36}, schema version \d+, created .* by .*; rows: "
                     r"runs 1, tiers 1, phases 2, attempts \d+, llm_usage_events 0, "
                     r"token_estimation_v2_events 0$", ident[0]["msg"]), ident
    assert docs.index(ident[0]) < [i for i, d in enumerate(docs)
                                   if d["msg"].startswith("session drain-")][0]
