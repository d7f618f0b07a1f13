"""No API key anywhere: a drain whose provider echoes the key back, whose check command
dumps its environment and whose calls fail and are retried, leaves the key in no log, no
frame between the supervisor and its workers, no file and no database row."""
import os
import subprocess
import uuid

import pytest

from conftest import binpath, ctl
from e2e_helpers import (Standin, drain, files_containing, import_plan, init_db, llm_args,
                         phase_spec, rows, secret_forms, strace_prefix, text_cells_containing,
                         unix_socket_streams)

ENV_CHECK = 'env; echo "keys: ${ANTHROPIC_API_KEY:-unset} ${OPENAI_API_KEY:-unset}"'


def drain_under_strace(tmp, url, llm, provider, env):
    """Drain with 4 workers, the supervisor's socket I/O recorded; return the capture path."""
    capture = os.path.join(tmp, "frames.strace")
    full_env = dict(os.environ)
    full_env.update(env)
    # LeakSanitizer cannot run under ptrace; every other test checks for leaks.
    full_env["ASAN_OPTIONS"] = full_env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    cmd = strace_prefix(capture) + [
        binpath("autopack-supervisor"), "--db", url, "--workers", "4", "--exit-when-drained",
        "--control", os.path.join(tmp, "sup.sock"), "--max-attempts-per-phase", "2",
        "--llm-retries", "1"] + llm_args(llm, provider)
    with open(os.path.join(tmp, "sup.out"), "w") as out, \
            open(os.path.join(tmp, "sup.err"), "w") as err:
        rc = subprocess.run(cmd, stdout=out, stderr=err, env=full_env, cwd=tmp,
                            timeout=300).returncode
    with open(os.path.join(tmp, "sup.err")) as f:
        assert rc == 0, f.read()
    return capture


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_no_key_in_logs_frames_files_or_database_rows(tmp, provider):
    tmp = str(tmp)
    key = "sk-e2e-%s-%s-SECRET" % (provider, uuid.uuid4().hex)
    other = "sk-e2e-other-%s-SECRET" % uuid.uuid4().hex
    env = {"ANTHROPIC_API_KEY": key if provider == "anthropic" else other,
           "OPENAI_API_KEY": key if provider == "openai" else other}
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [
        ("env-probe", ws, [phase_spec("p-env", ("out/env.py",), check=ENV_CHECK)]),
        ("echo-probe", ws, [phase_spec("p-echo", ("out/echo.py",))]),
        ("fail-probe", ws, [phase_spec("p-fail", ("out/fail.py",))]),
    ])
    script = {"markers": {
        "out/echo.py": [{"mode": "echo_key"}],
        "out/fail.py": [{"mode": "status", "status": 500,
                         "message": "upstream failed"}] * 4,
    }}
    llm = Standin(tmp, script, "--expect-key", key)
    try:
        capture = drain_under_strace(tmp, url, llm, provider, env)
    finally:
        llm.stop()
    for args in (["db", "check"], ["db", "check", "--json"]):
        r = ctl("--db", url, *args)
        with open(os.path.join(tmp, "db-check%s.txt" % ("-json" if "--json" in args else "")),
                  "w") as f:
            f.write(r.out + r.err)

    # The drain did what the probes asked: the key reached the provider, the provider
    # echoed it back, the check command saw its environment, failures were recorded.
    sent = llm.requests()
    assert all(q["key_present"] for q in sent)
    assert [q["key_ok"] for q in sent if q["status"] == 200] and \
        all(q["key_ok"] for q in sent if q["status"] == 200)
    assert [q["status"] for q in sent if q["mode"] == "echo_key"] == [400]
    att = {(a["phase_id"], a["attempt_number"]): a for a in rows(
        url, "SELECT phase_id, attempt_number, outcome, failure_reason, message"
        " FROM attempts")}
    echo = att[("p-echo", 1)]
    assert (echo["outcome"], echo["failure_reason"]) == ("failed", "PROVIDER_ERROR")
    assert att[("p-echo", 2)]["outcome"] == "success"
    assert att[("p-fail", 2)]["failure_reason"] == "PROVIDER_ERROR"
    assert att[("p-env", 1)]["outcome"] == "success"
    logs = os.path.join(ws, ".autopack", "logs")
    with open(os.path.join(logs, "env-probe__p-env__a1.stdout.txt")) as f:
        check_out = f.read()
    assert "PATH=" in check_out and "keys: unset unset" in check_out
    assert "ANTHROPIC_API_KEY" not in check_out and "OPENAI_API_KEY" not in check_out

    # The frames, as the supervisor's read and write calls carried them.
    streams = unix_socket_streams(capture)
    uuid_db = rows(url, "SELECT db_uuid FROM meta")[0]["db_uuid"].encode()
    to_workers = b"".join(v for (fd, d), v in streams.items() if d == "out")
    from_workers = b"".join(v for (fd, d), v in streams.items() if d == "in")
    assert to_workers.count(b"\xa3job") >= 5 and uuid_db in to_workers
    assert from_workers.count(b"\xa6result") >= 5 and b"invalid key" in from_workers
    for secret in (key, other):
        for (fd, d), data in streams.items():
            assert not any(form in data for form in secret_forms(secret)), (fd, d)

        # Every file the drain left: supervisor and worker stderr, the banner, the check
        # logs, the database and its WAL, the stand-in's log. (The capture is searched by
        # socket above: it also records the process reading its own environment, as the
        # sanitizer runtime does from /proc/PID/environ.)
        assert files_containing(tmp, secret, exclude=(capture,)) == []
        # Every text column of every table, and the SQL dump of the whole database.
        assert text_cells_containing(url, secret) == []
    # The echoed key was masked where the worker first saw it.
    assert "HTTP 400: invalid key [redacted]" in echo["message"], echo["message"]


def test_a_short_placeholder_key_is_not_masked_in_text_and_a_real_one_fully_is(tmp):
    """`ANTHROPIC_API_KEY=k` (or "dummy", as for the stand-in) is no secret: masking it
    would turn every "k" of every message into garbage. A key of 8 characters or more is
    replaced by the whole marker "[redacted]", even where the key is shorter than it."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("short-key", ws, [phase_spec("p-k", ("out/k.py",))])])
    llm = Standin(tmp, None, "--expect-key", "k")
    try:
        sup = drain(tmp, url, llm, "--llm-retries", "0", key="k")
    finally:
        llm.stop()
    messages = [r["message"] for r in rows(url, "SELECT message FROM events")
                if r["message"]]
    text = "\n".join(messages) + sup.stderr()
    # Words with a "k" in them survive as they are, in the events and the log.
    assert "wrote 1 file into the workspace" in "\n".join(messages), messages
    assert "into the workspace" in sup.stderr(), sup.stderr()[-3000:]
    assert "wor[space" not in text and "[redacted]" not in text, text[-3000:]

    url2 = init_db(tmp, name="second.db")
    # 8 characters, shorter than the marker; no half of it is a number a pid, a port or a
    # time in the logs could spell by chance.
    key = "kkkkQzXj"
    import_plan(tmp, url2, [("echo", os.path.join(tmp, "ws2"),
                             [phase_spec("p-echo", ("out/echo.py",))])])
    llm = Standin(tmp, {"markers": {"out/echo.py": [{"mode": "echo_key"}]}},
                  "--expect-key", key, name="llm2")
    try:
        drain(tmp, url2, llm, "--max-attempts-per-phase", "2", "--llm-retries", "0",
              key=key, name="sup2")
    finally:
        llm.stop()
    msg = rows(url2, "SELECT message FROM attempts WHERE attempt_number = 1")[0]["message"]
    assert "HTTP 400: invalid key [redacted]" in msg, msg
    assert files_containing(tmp, key) == [] and text_cells_containing(url2, key) == []


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_key_the_provider_puts_in_its_answer_reaches_no_file_and_no_row(tmp, provider):
    """A provider (or something in the way) that echoes the key inside a good answer: the
    key was written into the deliverable, where the phase's check command and the code it
    runs read it, and into the database as the call's stop reason. The worker now masks
    it in the answer before using it, and cuts the stop reason only after masking, so no
    part of the key is left at the cut."""
    tmp = str(tmp)
    key = "sk-e2e-%s-%s-SECRET" % (provider, uuid.uuid4().hex)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    check = "cat out/echo.py"
    import_plan(tmp, url, [("echo", ws, [phase_spec("p-echo", ("out/echo.py",),
                                                    check=check)])])
    llm = Standin(tmp, {"default": {"mode": "echo_key_answer"}}, "--expect-key", key)
    try:
        drain(tmp, url, llm, "--max-attempts-per-phase", 1, key=key, provider=provider)
    finally:
        llm.stop()
    assert [q["status"] for q in llm.requests()] == [200]
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}]
    with open(os.path.join(ws, "out", "echo.py")) as f:
        assert f.read() == "KEY = '[redacted]'\n"
    assert rows(url, "SELECT stop_reason FROM token_estimation_v2_events") == \
        [{"stop_reason": "x" * 50 + "[redacted]"}]
    assert files_containing(tmp, key) == []
    assert text_cells_containing(url, key) == []


@pytest.mark.parametrize("where", ["message", "raw", "redirect"])
def test_a_key_the_provider_echoes_at_the_cut_of_an_error_leaves_no_part_of_it(tmp, where):
    """An error answer that repeats the key (a gateway that echoes the request's headers)
    is quoted in the attempt's message and the call's usage row, cut to a few hundred
    bytes: its JSON message, the start of a body that is no JSON, where a redirect points.
    The key was masked only after the cut, so a key that the cut went through was left in
    part, the part before the cut: in the database, the log and `autopack-ctl` output,
    which the phase's code of a later attempt reads. It is masked before any cut now."""
    tmp = str(tmp)
    key = "sk-e2e-cut-%s%s-SECRET" % (uuid.uuid4().hex, uuid.uuid4().hex)
    spec = {"message": {"mode": "echo_key", "pad": 340},
            "raw": {"mode": "echo_key", "pad": 150, "raw": True},
            "redirect": {"mode": "echo_key", "pad": 220, "status": 302,
                         "location": "http://elsewhere.invalid/"}}[where]
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("echo", ws, [phase_spec("p-echo", ("out/echo.py",))])])
    llm = Standin(tmp, {"default": spec}, "--expect-key", key)
    try:
        sup = drain(tmp, url, llm, "--max-attempts-per-phase", "1", "--llm-retries", "0",
                    key=key)
    finally:
        llm.stop()
    assert [q["status"] for q in llm.requests()] == [spec.get("status", 400)]
    msg = rows(url, "SELECT message FROM attempts")[0]["message"]
    assert ("redirected to" if where == "redirect" else "HTTP 400") in msg, msg
    show = ctl("--db", url, "failed", "--json")
    # Twelve characters of the key's random part, right after its prefix: the part a cut
    # leaves first.
    part = key[11:23]
    assert part not in msg and part not in sup.stderr() and part not in show.out, msg
    assert files_containing(tmp, part) == [] and text_cells_containing(url, part) == []
