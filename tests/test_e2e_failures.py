"""Every scripted failure of the LLM stand-in, drained by the real supervisor and workers:
the attempt's outcome, failure reason, exact fingerprint and zero-yield reason, the LLM
tries recorded, and the phase's final state with --max-attempts-per-phase 1."""
import errno
import hashlib
import os
import re
import subprocess

import pytest

from conftest import ctl
from e2e_helpers import Standin, drain, import_plan, init_db, phase_spec, rows, tree

# Fingerprints are "STATE|reason|normalised message": the loopback URL of the stand-in
# normalises to http://num.num.num.num:num/..., so they do not depend on the port.
STANDIN_URL = "http://num.num.num.num:num/v1/messages"


def one_phase(tmp, script, *sup_args, phase=None, prepare=None, max_attempts=1, prefix=()):
    """Drain a database holding one run of one phase (workspace tmp/box/ws) against a
    stand-in playing `script` (the supervisor under the command `prefix`); return what a
    test looks at."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "box", "ws")
    os.makedirs(os.path.join(ws, "out"))
    if prepare is not None:
        prepare(tmp, ws)
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase or phase_spec()])])
    llm = Standin(tmp, script)
    try:
        sup = drain(tmp, url, llm, "--max-attempts-per-phase", max_attempts, *sup_args,
                    prefix=prefix)
    finally:
        llm.stop()
    return {
        "url": url, "ws": ws, "llm": llm, "sup": sup,
        "attempts": rows(url, "SELECT outcome, failure_reason, fingerprint,"
                         " zero_yield_reason, message, ended_at IS NOT NULL AS ended"
                         " FROM attempts ORDER BY attempt_id"),
        "phase": rows(url, "SELECT state, last_failure_reason, builder_attempts"
                      " FROM phases")[0],
        "usage": rows(url, "SELECT try_number, http_status, error_class, status,"
                      " prompt_tokens, completion_tokens FROM llm_usage_events ORDER BY id"),
        "v2": rows(url, "SELECT predicted_output_tokens, selected_budget, actual_max_tokens,"
                   " actual_output_tokens, truncated, success, stop_reason"
                   " FROM token_estimation_v2_events ORDER BY event_id"),
    }


def attempt(r):
    """The one attempt as (outcome, failure_reason, fingerprint, zero_yield_reason)."""
    assert len(r["attempts"]) == 1, r["attempts"]
    a = r["attempts"][0]
    assert a["ended"] == 1
    return (a["outcome"], a["failure_reason"], a["fingerprint"], a["zero_yield_reason"])


def failed_phase(r, reason):
    assert r["phase"] == {"state": "FAILED", "last_failure_reason": reason,
                          "builder_attempts": 1}, r["phase"]


def usage(r):
    return [(u["try_number"], u["http_status"], u["error_class"]) for u in r["usage"]]


# --- the provider misbehaves ---

def test_429_then_success_completes_with_two_usage_rows_the_first_rate_limited(tmp):
    r = one_phase(tmp, [{"mode": "status", "status": 429, "retry_after": "0"}],
                  "--llm-retries", 1)
    assert attempt(r) == ("success", None, None, None)
    assert r["phase"] == {"state": "COMPLETE", "last_failure_reason": None,
                          "builder_attempts": 1}
    assert usage(r) == [(1, 429, "rate_limited"), (2, 200, None)]
    assert [u["status"] for u in r["usage"]] == ["error", "ok"]
    assert r["usage"][0]["completion_tokens"] is None
    assert len(r["v2"]) == 1 and r["v2"][0]["success"] == 1
    assert os.path.isfile(os.path.join(r["ws"], "out", "mod.py"))


def test_408_from_the_server_or_a_proxy_is_retried_as_a_timeout(tmp):
    """A 408 Request Timeout (a proxy in front of the provider giving up on a slow
    request) failed the phase at once as client_error; the providers' own clients retry
    it. It is a timeout now, and retried."""
    r = one_phase(tmp, [{"mode": "status", "status": 408, "message": "request timeout"}],
                  "--llm-retries", 1)
    assert attempt(r) == ("success", None, None, None)
    assert usage(r) == [(1, 408, "timeout"), (2, 200, None)]


def test_500_every_time_fails_the_phase_as_provider_error_after_every_retry(tmp):
    r = one_phase(tmp, {"default": {"mode": "status", "status": 500}}, "--llm-retries", 2)
    assert attempt(r) == (
        "failed", "PROVIDER_ERROR",
        "FAILED|provider_error|server_error after num tries: %s: http num: scripted num"
        % STANDIN_URL, "provider_error")
    failed_phase(r, "PROVIDER_ERROR")
    assert usage(r) == [(1, 500, "server_error"), (2, 500, "server_error"),
                        (3, 500, "server_error")]
    assert [q["status"] for q in r["llm"].requests()] == [500, 500, 500]
    assert r["v2"] == []
    assert "server_error after 3 tries" in r["attempts"][0]["message"]


def test_failed_attempt_is_retried_as_a_new_attempt_when_the_phase_allows_it(tmp):
    r = one_phase(tmp, [{"mode": "status", "status": 500}], "--llm-retries", 0,
                  max_attempts=2)
    assert [(a["outcome"], a["failure_reason"]) for a in r["attempts"]] == \
        [("failed", "PROVIDER_ERROR"), ("success", None)]
    # The phase keeps the reason of its last failure after it completes.
    assert r["phase"] == {"state": "COMPLETE", "last_failure_reason": "PROVIDER_ERROR",
                          "builder_attempts": 2}
    assert usage(r) == [(1, 500, "server_error"), (1, 200, None)]


def test_answer_slower_than_the_http_timeout_is_a_provider_timeout(tmp):
    r = one_phase(tmp, [{"mode": "sleep", "seconds": 4}], "--llm-retries", 0,
                  "--llm-timeout-seconds", 1)
    assert attempt(r) == (
        "failed", "PROVIDER_ERROR",
        "FAILED|provider_error|timeout after num try: %s: operation timed out after num"
        " milliseconds with num bytes received" % STANDIN_URL, "provider_error")
    failed_phase(r, "PROVIDER_ERROR")
    assert usage(r) == [(1, 0, "timeout")]
    assert r["v2"] == []


@pytest.mark.parametrize("status", [200, 500])
def test_an_answer_nested_2048_deep_fails_the_phase_under_a_small_stack(tmp, status):
    """An answer whose JSON nests 2,048 deep (what jansson reads) killed the worker with
    SIGSEGV under a 128 KiB stack (`ulimit -s 128`, inherited from the supervisor): its
    checks recurse once per level. Past 64 levels it is refused unread: a provider error."""
    r = one_phase(tmp, {"default": {"mode": "nested", "status": status}}, "--llm-retries", 0,
                  prefix=("prlimit", "--stack=131072"))
    a = r["attempts"][0]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "PROVIDER_ERROR"), r["attempts"]
    failed_phase(r, "PROVIDER_ERROR")
    assert "crash" not in r["sup"].stderr(), r["sup"].stderr()[-3000:]
    if status == 200:
        assert "response is not a JSON object" in a["message"] and \
            "nesting deeper than 64" in a["message"], a["message"]
        assert usage(r) == [(1, 200, "malformed_response")]
    else:
        assert usage(r) == [(1, 500, "server_error")]


def test_malformed_json_is_a_provider_error_and_not_retried(tmp):
    r = one_phase(tmp, {"default": {"mode": "malformed"}}, "--llm-retries", 2)
    assert attempt(r) == (
        "failed", "PROVIDER_ERROR",
        "FAILED|provider_error|malformed_response after num try: %s: response is not a json"
        " object (num bytes): invalid token near 'this'" % STANDIN_URL, "provider_error")
    failed_phase(r, "PROVIDER_ERROR")
    assert usage(r) == [(1, 200, "malformed_response")]
    assert r["v2"] == []


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_an_answer_of_the_wrong_shape_records_the_tokens_it_reports(tmp, provider):
    """A 200 whose JSON is no message but reports its usage: the provider counted (and
    bills) those tokens, but the try's row recorded none. They are recorded now; the try
    still fails as malformed_response, naming what the answer lacks."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec()])])
    llm = Standin(tmp, {"default": {"mode": "wrong_shape"}})
    try:
        drain(tmp, url, llm, "--max-attempts-per-phase", 1, "--llm-retries", 2,
              provider=provider)
    finally:
        llm.stop()
    lacks = "no \"content\" array" if provider == "anthropic" else "no \"choices\""
    msg = rows(url, "SELECT message FROM attempts")[0]["message"]
    assert msg.startswith("malformed_response after 1 try: ") and \
        msg.endswith(": response has %s" % lacks), msg
    assert rows(url, "SELECT http_status, error_class, status, prompt_tokens,"
                     " completion_tokens, total_tokens FROM llm_usage_events") == [
        {"http_status": 200, "error_class": "malformed_response", "status": "error",
         "prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16}]
    assert rows(url, "SELECT count(*) AS n FROM token_estimation_v2_events") == [{"n": 0}]


def test_body_of_several_mib_is_refused_at_the_cap_and_not_retried(tmp):
    r = one_phase(tmp, {"default": {"mode": "huge", "size_mib": 9}}, "--llm-retries", 2)
    assert attempt(r) == (
        "failed", "PROVIDER_ERROR",
        "FAILED|provider_error|response_too_large after num try: %s: response body over num"
        " bytes" % STANDIN_URL, "provider_error")
    assert "response body over 8388608 bytes" in r["attempts"][0]["message"]
    failed_phase(r, "PROVIDER_ERROR")
    assert usage(r) == [(1, 200, "response_too_large")]
    assert r["v2"] == []


def test_a_redirect_is_not_followed_and_the_message_says_where_it_pointed(tmp):
    """A provider answering 307 to another host: the redirect is not followed (the key
    would go with it), and the attempt's message named only "HTTP 307: {...}". It now says
    where the answer pointed and what to do."""
    other = Standin(tmp, None, name="other")
    target = other.url + "/v1/messages"
    try:
        r = one_phase(tmp, {"default": {"mode": "status", "status": 307, "location": target,
                                        "message": "moved"}}, "--llm-retries", 2)
    finally:
        other.stop()
    assert attempt(r)[:2] == ("failed", "PROVIDER_ERROR")
    msg = r["attempts"][0]["message"]
    assert msg == ("client_error after 1 try: %s/v1/messages: HTTP 307: redirected to %s,"
                   " which is not followed (the key goes to the configured address only):"
                   " point --llm-base-url there" % (r["llm"].url, target)), msg
    assert usage(r) == [(1, 307, "client_error")]
    assert other.requests() == []


# --- the answer tries to write where it must not ---

def snapshot(top):
    """Every path under `top` with a digest of each file's content."""
    out = {}
    for p in tree(top):
        full = os.path.join(top, p)
        if os.path.isfile(full) and not os.path.islink(full):
            with open(full, "rb") as f:
                out[p] = hashlib.sha256(f.read()).hexdigest()
        else:
            out[p] = os.readlink(full) if os.path.islink(full) else "dir"
    return out


def outside_link_dir(tmp, ws):
    os.makedirs(os.path.join(tmp, "outside"))
    os.symlink(os.path.join(tmp, "outside"), os.path.join(ws, "out", "link"))


def outside_link_file(tmp, ws):
    os.makedirs(os.path.join(tmp, "outside"))
    with open(os.path.join(tmp, "outside", "target.py"), "w") as f:
        f.write("# outside the workspace\n")
    os.symlink(os.path.join(tmp, "outside", "target.py"), os.path.join(ws, "out", "mod.py"))


HOSTILE = {
    "dotdot": (["../../etc/x"], None,
               "FAILED|scope_violation|path \"../../etc/x\": '..' components are not allowed"),
    "absolute": (["{tmp}/abs.py"], None,
                 "FAILED|scope_violation|path \"path\": absolute paths are not allowed"),
    "etc_passwd": (["/etc/passwd"], None,
                   "FAILED|scope_violation|path \"path\": absolute paths are not allowed"),
    "symlinked_directory": (["out/link/escape.py"], outside_link_dir,
                            "FAILED|scope_violation|path \"out/link/escape.py\": symlink"
                            " out/link leaves the workspace (-> path)"),
    # A set whose files clash: one would be the directory of the other. Refused as a
    # whole, before the first is written.
    "file_and_directory": (["out/mod.py/x.py"], None,
                           'FAILED|scope_violation|files[num] "out/mod.py/x.py" and files[num]'
                           ' "out/mod.py": one would be both a file and the directory of the'
                           ' other'),
    # A file path ending with "/" names a directory; no file "out/dir" is made.
    "trailing_slash": (["out/dir/"], None,
                       'FAILED|scope_violation|path "out/dir/": ends with "/": it names a'
                       ' directory, not a file'),
}


# What a drain may leave at the top of the test directory besides box/ and outside/.
OWN_FILES = re.compile(r"^(autopack\.db(-wal|-shm|\.lock)?|plan-\d+\.json|llm\..*|sup\..*)$")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_path_is_refused_and_nothing_is_written_outside_the_workspace(tmp, case):
    paths, prepare, fingerprint = HOSTILE[case]
    tmp = str(tmp)
    paths = [p.format(tmp=tmp) for p in paths]
    parent = os.path.dirname(tmp)
    with open("/etc/passwd", "rb") as f:
        passwd = f.read()
    parent_before = sorted(os.listdir(parent))
    before = {}

    def prep(t, ws):
        if prepare is not None:
            prepare(t, ws)
        before.update(snapshot(t))

    spec = {"mode": "hostile", "paths": paths} if paths else {"mode": "normal"}
    r = one_phase(tmp, [spec], "--llm-retries", 0, prepare=prep)
    outcome, reason, fp, zy = attempt(r)
    assert (outcome, reason) == ("failed", "SCOPE_VIOLATION"), r["attempts"]
    assert fp == fingerprint
    # The builder call itself succeeded, so the attempt did yield a clean sample.
    assert zy is None and len(r["v2"]) == 1 and r["v2"][0]["success"] == 1
    failed_phase(r, "SCOPE_VIOLATION")
    # Nothing was written: not the hostile file, not even the in-scope deliverable; only
    # the attempt's check-log directory is new inside the workspace.
    after = snapshot(tmp)
    new = sorted(p for p in set(after) - set(before)
                 if not p.startswith("box/ws/.autopack") and "/" in p)
    assert new == [], new
    assert {p: after.get(p) for p in before} == before
    assert all(OWN_FILES.match(n) for n in os.listdir(tmp)
               if n not in ("box", "outside")), os.listdir(tmp)
    assert sorted(os.listdir(parent)) == parent_before
    assert not os.path.lexists("/etc/x")
    with open("/etc/passwd", "rb") as f:
        assert f.read() == passwd


def test_missing_deliverable_fails_the_phase_naming_it(tmp):
    r = one_phase(tmp, [{"mode": "missing"}], "--llm-retries", 0,
                  phase=phase_spec(deliverables=("out/a.py", "out/b.py")))
    assert attempt(r) == (
        "failed", "DELIVERABLES_MISSING",
        "FAILED|deliverables_missing|num deliverable missing after the builder call:"
        " out/b.py", None)
    failed_phase(r, "DELIVERABLES_MISSING")
    assert len(r["v2"]) == 1 and r["v2"][0]["success"] == 1
    assert os.path.isfile(os.path.join(r["ws"], "out", "a.py"))


def test_failing_check_command_fails_the_phase_with_its_stderr(tmp):
    r = one_phase(tmp, [], "--llm-retries", 0,
                  phase=phase_spec(check="echo 'boom at line 12' >&2; exit 3"))
    assert attempt(r) == (
        "failed", "CHECK_FAILED",
        "FAILED|check_failed|check command exited num (stderr: path): boom at line num",
        None)
    failed_phase(r, "CHECK_FAILED")
    log = os.path.join(r["ws"], ".autopack", "logs", "r1__p1__a1.stderr.txt")
    assert r["attempts"][0]["message"] == \
        "check command exited 3 (stderr: %s): boom at line 12\n" % log
    with open(log) as f:
        assert f.read() == "boom at line 12\n"


# --- truncation and the ×1.25 retry ---

def test_truncated_answer_is_retried_once_with_a_quarter_more_max_tokens(tmp):
    r = one_phase(tmp, [{"mode": "truncated"}], "--llm-retries", 0)
    assert attempt(r) == ("success", None, None, None)
    assert r["phase"]["state"] == "COMPLETE"
    # Two builder calls, two v2 events: 16384 truncated, then int(16384 × 1.25) = 20480.
    assert [(v["predicted_output_tokens"], v["selected_budget"], v["actual_max_tokens"],
             v["truncated"], v["success"], v["stop_reason"]) for v in r["v2"]] == \
        [(3424, 8192, 16384, 1, 0, "max_tokens"), (3424, 8192, 20480, 0, 1, "end_turn")]
    assert [q["max_tokens"] for q in r["llm"].requests()] == [16384, 20480]
    assert r["v2"][0]["actual_output_tokens"] == 16384
    assert usage(r) == [(1, 200, None), (1, 200, None)]


def test_truncated_twice_fails_as_output_truncated_with_no_clean_sample(tmp):
    r = one_phase(tmp, [{"mode": "truncated"}, {"mode": "truncated"}], "--llm-retries", 0)
    assert attempt(r) == (
        "failed", "OUTPUT_TRUNCATED",
        "FAILED|output_truncated|output truncated at max_tokens num (max_tokens): the"
        " answer's json is invalid at byte num of the response (num bytes): it ends inside"
        " the document", "parse_failed")
    failed_phase(r, "OUTPUT_TRUNCATED")
    assert [(v["actual_max_tokens"], v["truncated"]) for v in r["v2"]] == \
        [(16384, 1), (20480, 1)]


# --- the phase deadline ---

DEADLINE = {
    "llm_call": ([{"mode": "sleep", "seconds": 20}], phase_spec()),
    "check_command": ([], phase_spec(check="sleep 30")),
}


@pytest.mark.parametrize("where", sorted(DEADLINE))
def test_phase_deadline_ends_the_attempt_as_timeout_and_fails_the_phase(tmp, where):
    script, phase = DEADLINE[where]
    r = one_phase(tmp, script, "--llm-retries", 0, "--phase-timeout-seconds", 2,
                  phase=phase)
    outcome, reason, _, _ = attempt(r)
    assert (outcome, reason) == ("timeout", "TIMEOUT")
    failed_phase(r, "TIMEOUT")
    # The worker ended the attempt at the deadline itself; the supervisor had no need to
    # kill it.
    assert "passed its deadline" not in r["sup"].stderr()


@pytest.mark.parametrize("where", sorted(DEADLINE))
def test_phase_deadline_attempt_has_a_timeout_fingerprint_and_zero_yield_reason(tmp, where):
    script, phase = DEADLINE[where]
    r = one_phase(tmp, script, "--llm-retries", 0, "--phase-timeout-seconds", 2,
                  phase=phase)
    _, _, fp, zy = attempt(r)
    assert fp is not None and fp.startswith("TIMEOUT|timeout|"), fp
    assert zy == ("timeout" if where == "llm_call" else None)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_stop_reason_of_a_kilobyte_is_cut_and_the_answer_used(tmp, provider):
    """A provider that names its stop reason in 1,200 bytes: the worker could not send the
    call's estimation event (an event's names hold 256 bytes) and died, so the answer it
    had paid for was lost, the attempt ended worker_crashed and the call's tokens were
    recorded as lost. The reason is now kept cut to 64 bytes, at a character boundary,
    and the answer is used."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec()])])
    llm = Standin(tmp, {"default": {"mode": "normal", "stop_reason": "a" + "\u00e9" * 600}})
    try:
        drain(tmp, url, llm, "--max-attempts-per-phase", 1, provider=provider)
    finally:
        llm.stop()
    assert [(a["outcome"], a["message"]) for a in rows(url, "SELECT outcome, message"
                                                              " FROM attempts")] == \
        [("success", None)]
    used = rows(url, "SELECT status, prompt_tokens, completion_tokens FROM llm_usage_events")
    assert len(used) == 1 and used[0]["status"] == "ok", used
    assert used[0]["prompt_tokens"] > 0 and used[0]["completion_tokens"] > 0, used
    v2 = rows(url, "SELECT stop_reason, success FROM token_estimation_v2_events")
    assert v2 == [{"stop_reason": "a" + "\u00e9" * 31, "success": 1}], v2
    assert os.path.isfile(os.path.join(ws, "out", "mod.py"))


def test_token_counts_past_a_billion_are_taken_as_unreported(tmp):
    """A provider (or something in the way) that reports 5e18 output tokens: the count is
    not believed (no call comes near a billion tokens), so it is recorded as unreported,
    no estimation sample is made of it, and the totals stay summable (two such rows made
    `db check` fail for good: integer overflow)."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec("p1", ("out/a.py",)),
                                       phase_spec("p2", ("out/b.py",))])])
    llm = Standin(tmp, {"default": {"mode": "normal", "output_tokens": 5 * 10 ** 18}})
    try:
        drain(tmp, url, llm, "--max-attempts-per-phase", 1)
    finally:
        llm.stop()
    assert [p["state"] for p in rows(url, "SELECT state FROM phases")] == ["COMPLETE"] * 2
    used = rows(url, "SELECT prompt_tokens, completion_tokens, total_tokens"
                     " FROM llm_usage_events ORDER BY id")
    assert len(used) == 2 and all(u["completion_tokens"] is None for u in used), used
    assert all(0 <= u["total_tokens"] < 10 ** 9 for u in used), used
    assert rows(url, "SELECT count(*) AS n FROM token_estimation_v2_events")[0]["n"] == 0
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r


def test_a_builder_output_naming_the_database_in_the_workspace_is_refused(tmp):
    """The run's workspace holds the database and the scope is the whole workspace: a model
    answer writing autopack.db (or its -wal) replaced the database, and everything
    committed was lost (the supervisor exited 3, DATABASE LOST). Its files are never
    written; the attempt fails as a scope violation and the database stays whole."""
    tmp = str(tmp)
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", tmp, [phase_spec("p1", ("a.py",), paths=(".",))])])
    files = [{"path": p, "mode": "create", "new_content": "garbage\n"}
             for p in ("a.py", "autopack.db", "autopack.db-wal")]
    llm = Standin(tmp, {"default": {"mode": "normal", "files": files}})
    try:
        drain(tmp, url, llm, "--max-attempts-per-phase", 1, "--llm-retries", 0)
    finally:
        llm.stop()
    got = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in got] == [
        ("failed", "SCOPE_VIOLATION")], got
    assert 'path "autopack.db": is the database %s/autopack.db or one of its files' % tmp \
        in got[0]["message"], got
    assert not os.path.exists(os.path.join(tmp, "a.py"))
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0 and "phases 1" in r.out, r


@pytest.mark.parametrize("mode", ["create", "delete"])
def test_a_builder_output_naming_the_log_file_in_the_workspace_is_refused(tmp, mode):
    """The supervisor's --log-file lies in the run's workspace, whose whole is the scope:
    an answer writing it put its own text in place of every line logged so far (the
    supervisor went on writing to the file taken away), and one deleting it removed them.
    The log file is never written or deleted; the attempt fails as a scope violation and
    the log keeps its lines."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    log = os.path.join(ws, "sup.log")
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec("p1", ("a.py",), paths=(".",))])])
    files = [{"path": "a.py", "mode": "create", "new_content": "x = 1\n"},
             {"path": "./sup.log", "mode": mode, "new_content": "all went well\n"}]
    llm = Standin(tmp, {"default": {"mode": "normal", "files": files}})
    try:
        drain(tmp, url, llm, "--max-attempts-per-phase", 1, "--llm-retries", 0,
              "--log-file", log)
    finally:
        llm.stop()
    got = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"], a["message"]) for a in got] == [
        ("failed", "SCOPE_VIOLATION", 'path "./sup.log": is the log file %s of the '
         'supervisor and its workers (--log-file)' % log)], got
    assert not os.path.exists(os.path.join(ws, "a.py"))
    with open(log) as f:
        text = f.read()
    assert text.startswith("20") and "1 phase(s) eligible" in text, text[:2000]


@pytest.mark.parametrize("path,rule", [
    ("out/" + "a" * 5000 + ".py", "a component is longer than 255 bytes"),
    ("out/" + "a/" * 3000 + "x.py", "path too long"),
], ids=["long_component", "deep"])
def test_a_refused_path_of_kilobytes_is_named_with_its_rule_within_the_message(tmp, path, rule):
    # The message holds at most 1000 bytes: a long path filled it and the rule it broke
    # was cut off. Now its start and end are kept, the middle left out and counted.
    r = one_phase(tmp, [{"mode": "hostile", "paths": [path]}], "--llm-retries", 0)
    a = r["attempts"][0]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "SCOPE_VIOLATION"), a
    assert len(a["message"]) <= 1000, len(a["message"])
    assert a["message"].startswith('path "out/') and a["message"].endswith('": ' + rule) or \
        a["message"].endswith(rule + " (the file system's NAME_MAX)"), a["message"]
    assert "bytes left out ...]" in a["message"], a["message"]


def test_a_deliverable_named_with_255_bytes_is_written(tmp):
    # Its temporary file was named after it with a suffix, past NAME_MAX: WRITE_FAILED
    # "File name too long" for a name the plan's rules accept.
    name = "out/" + "b" * 252 + ".py"
    r = one_phase(tmp, [], "--llm-retries", 0, phase=phase_spec(deliverables=(name,)))
    assert attempt(r)[:2] == ("success", None), r["attempts"]
    assert os.path.isfile(os.path.join(r["ws"], name))


def test_a_directory_the_disk_has_no_room_for_fails_write_failed(tmp):
    # A deliverable's directory the file system could not make (no inode left here) failed
    # SCOPE_VIOLATION, whose advice is to widen the phase's scope; the file itself, on the
    # same full disk, fails WRITE_FAILED. Now both do.
    mounted = []

    def prepare(tmp, ws):
        out = os.path.join(ws, "out")
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=8", "tmpfs",
                            out], capture_output=True, text=True)
        if m.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (%s); needs root" % m.stderr.strip())
        mounted.append(out)
        with pytest.raises(OSError) as e:
            for i in range(100):
                open(os.path.join(out, "f%d" % i), "w").close()
        assert e.value.errno == errno.ENOSPC, e.value

    try:
        r = one_phase(tmp, [], "--llm-retries", 0, prepare=prepare,
                      phase=phase_spec(deliverables=("out/new/mod.py",)))
    finally:
        for m in mounted:
            subprocess.run(["umount", "-l", m], capture_output=True)
    a = r["attempts"][0]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "WRITE_FAILED"), a
    assert a["message"] == 'path "out/new/mod.py": cannot create directory out/new: No space' \
        " left on device", a["message"]


# The supervisor and its workers as root without the capabilities that pass over a
# file's permissions, as a unit with CapabilityBoundingSet= without them runs (setpriv).
NO_DAC_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("deep", [False, True], ids=["open", "search"])
def test_a_deliverable_directory_the_worker_may_not_enter_fails_write_failed(tmp, deep):
    """An existing directory of a deliverable, in the phase's scope, whose mode keeps the
    worker out (another user's, 0700): the attempt failed SCOPE_VIOLATION, whose advice is
    to widen the scope, which is right. It fails WRITE_FAILED naming the directory, its mode
    and owner and the worker's user; the same for a directory under one the worker may
    read but not search (0604). Each is known before the LLM call, which was paid for at
    every attempt: it is not made."""
    if os.geteuid() != 0:
        pytest.skip("the directory is given to another user: needs root")
    locked = []

    def prepare(tmp, ws):
        d = os.path.join(ws, "out", "locked")
        os.makedirs(os.path.join(d, "in"))
        os.chown(d, 65534, 65534)
        os.chmod(d, 0o604 if deep else 0o700)
        locked.append(d)

    name = "out/locked/in/mod.py" if deep else "out/locked/mod.py"
    try:
        r = one_phase(tmp, [], "--llm-retries", 0, prepare=prepare, prefix=NO_DAC_OVERRIDE,
                      phase=phase_spec(deliverables=(name,)))
    finally:
        for d in locked:
            os.chmod(d, 0o700)
    a = r["attempts"][0]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "WRITE_FAILED"), a
    if deep:
        assert a["message"] == ('path "%s": out/locked/in: Permission denied; not sent to '
                                'the LLM' % name), a
    else:
        assert a["message"] == ('path "%s": cannot open directory out/locked: Permission '
                                'denied (its mode 0700, owner uid 65534 gid 65534; this '
                                'worker runs as uid 0 gid 0); not sent to the LLM' % name), a
    assert not os.path.exists(os.path.join(r["ws"], name))
    # Known before the call: none is paid for an answer that could not be written.
    assert r["llm"].requests() == [], r["llm"].requests()


def outside_link_out(tmp, ws):
    os.makedirs(os.path.join(tmp, "outside"))
    os.rmdir(os.path.join(ws, "out"))
    os.symlink(os.path.join(tmp, "outside"), os.path.join(ws, "out"))


@pytest.mark.parametrize("case", ["file", "directory"])
def test_a_deliverable_through_a_symlink_leaving_the_workspace_fails_before_the_call(
        tmp, case):
    """The deliverable out/mod.py a symbolic link to a file outside the workspace (or out/
    one to a directory outside): no answer could write it, and the attempt failed
    SCOPE_VIOLATION once the answer had been paid for. It fails WRITE_FAILED before the
    call, naming the link, and nothing is written where it leads."""
    prepare = outside_link_file if case == "file" else outside_link_out
    link = "out/mod.py" if case == "file" else "out"
    target = os.path.join(str(tmp), "outside", "target.py" if case == "file" else "")
    r = one_phase(tmp, [], "--llm-retries", 0, prepare=prepare)
    a = r["attempts"][0]
    assert (a["outcome"], a["failure_reason"], a["zero_yield_reason"]) == (
        "failed", "WRITE_FAILED", "failed_before_llm"), a
    assert a["message"] == 'path "out/mod.py": symlink %s leaves the workspace (-> %s); not ' \
        'sent to the LLM' % (link, target.rstrip("/")), a
    assert r["llm"].requests() == [], r["llm"].requests()
    assert os.listdir(os.path.join(str(tmp), "outside")) == (
        ["target.py"] if case == "file" else [])
    if case == "file":
        with open(os.path.join(str(tmp), "outside", "target.py")) as f:
            assert f.read() == "# outside the workspace\n"


def test_a_workspace_the_worker_may_not_open_fails_write_failed_before_the_call(tmp):
    """A workspace whose mode keeps the worker out (another user's, 0700) failed
    WRITE_FAILED only once the answer had been paid for, at every attempt. It fails before
    the call, naming the workspace and the cause."""
    if os.geteuid() != 0:
        pytest.skip("the workspace is given to another user: needs root")
    where = []

    def prepare(tmp, ws):
        os.chown(ws, 65534, 65534)
        os.chmod(ws, 0o700)
        where.append(ws)

    try:
        r = one_phase(tmp, [], "--llm-retries", 0, prepare=prepare, prefix=NO_DAC_OVERRIDE)
    finally:
        for ws in where:
            os.chmod(ws, 0o777)
    a = r["attempts"][0]
    assert (a["outcome"], a["failure_reason"], a["message"]) == (
        "failed", "WRITE_FAILED",
        "workspace %s: Permission denied; not sent to the LLM" % r["ws"]), a
    assert r["llm"].requests() == [], r["llm"].requests()


@pytest.mark.parametrize("n,limit", [(40, 32), (256, 256)], ids=["40_under_32", "256_under_256"])
def test_an_answer_in_many_directories_is_written_under_a_low_descriptor_limit(tmp, n, limit):
    # The check of an answer kept up to 32 of its directories open for the writes, and the
    # writes kept open each one they walked again: under `ulimit -n 32` (the supervisor
    # starts with 24) 40 files in 40 directories failed SCOPE_VIOLATION ('cannot open
    # out/d24: Too many open files'), and so did 256, the most an answer holds, under 256.
    def prepare(tmp, ws):
        for i in range(n):
            os.makedirs(os.path.join(ws, "out", "d%d" % i))

    r = one_phase(tmp, [], "--llm-retries", 0, prepare=prepare,
                  prefix=("prlimit", "--nofile=%d" % limit, "--"),
                  phase=phase_spec(deliverables=tuple("out/d%d/m.py" % i for i in range(n))))
    assert attempt(r)[:2] == ("success", None), r["attempts"]
    assert all(os.path.isfile(os.path.join(r["ws"], "out", "d%d" % i, "m.py"))
               for i in range(n))


def test_a_check_of_ids_as_long_as_a_plan_takes_runs_and_keeps_its_log(tmp):
    # A run and a phase id of 128 bytes each (the most an import takes) named a log past
    # NAME_MAX: the log could not be made and every attempt failed CHECK_NOT_RUN ('cannot
    # open check logs under ...: File name too long'), however good the answer.
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    run_id, phase_id = "r" * 128, "p" * 128
    import_plan(tmp, url, [(run_id, ws, [phase_spec(phase_id, check="echo boom >&2; exit 1")])])
    llm = Standin(tmp)
    try:
        drain(tmp, url, llm, "--max-attempts-per-phase", 1)
    finally:
        llm.stop()
    [a] = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert (a["outcome"], a["failure_reason"]) == ("failed", "CHECK_FAILED"), a
    log = re.search(r"\(stderr: (\S+)\)", a["message"]).group(1)
    assert len(os.path.basename(log)) <= 255, log
    with open(log) as f:
        assert f.read() == "boom\n"
    r = ctl("--db", url, "failed")
    assert r.rc == 0 and "boom" in r.out, r


def test_a_long_path_named_twice_is_refused_saying_so(tmp):
    # The parser's message was cut at 256 bytes, inside the path: "appears twice" was lost.
    path = "out/" + "c" * 3000 + ".py"
    files = [{"path": path, "mode": "create", "new_content": "1"},
             {"path": path, "mode": "create", "new_content": "2"}]
    r = one_phase(tmp, [{"files": files}], "--llm-retries", 0)
    a = r["attempts"][0]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "PARSE_FAILED"), a
    assert a["message"].startswith("files[1].path: out/ccc"), a["message"]
    assert a["message"].endswith("ccc.py appears twice"), a["message"]
    assert "bytes left out ...]" in a["message"]


def test_an_answer_of_many_files_written_on_a_slow_disk_is_not_taken_for_a_hung_worker(tmp):
    # Each file is synced, and its directory: 40 files on a disk taking 60 ms a sync (the
    # shim) kept the worker silent for about 5 s, and the supervisor, hearing nothing for
    # its heartbeat timeout (2 s here, 10 s by default: 256 files at 20 ms a sync), killed
    # it mid-write (HEARTBEAT_LOST, an infrastructure failure).
    from conftest import preload
    from e2e_helpers import llm_args
    from supervisor_helpers import Supervisor
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    files = ["out/f%02d.py" % i for i in range(40)]
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec("p1", files)])])
    llm = Standin(tmp)
    env = preload("fsync-shim.so", ANTHROPIC_API_KEY="sk-ant-slow-disk",
                  AUTOPACK_SHIM_PATH=os.path.realpath(ws) + "/", AUTOPACK_SHIM_DELAY_US="60000",
                  AUTOPACK_SHIM_LOG=os.path.join(tmp, "shim.log"))
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", "--max-attempts-per-phase",
                     1, "--heartbeat-timeout-seconds", 2, *llm_args(llm), env=env)
    try:
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = rows(url, "SELECT outcome, failure_reason FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [("success", None)], (
        att, sup.stderr()[-2000:])
    with open(os.path.join(tmp, "shim.log")) as f:
        assert sum(line.startswith("end ") for line in f) >= 2 * len(files)
    assert sorted(os.listdir(os.path.join(ws, "out"))) == sorted(os.path.basename(p)
                                                                  for p in files)


# A phase whose deliverables overlap a path an earlier phase delivered into the same
# workspace: (the earlier phase's deliverable, the later phase's, the answer's other paths,
# whether the LLM is called, the message). `run import` refuses such phases of one run
# (tests/test_plan_overlap.py); runs sharing a workspace, or a run imported before the
# import checked, still meet them.
OVERLAPS = {
    "file_then_under_it": (
        "out/a.py", "out/a.py/x.py", [], False,
        'path "out/a.py/x.py": out/a.py is a file in the workspace, and this path '
        "needs it as a directory (an earlier phase of the run, or another program, made it "
        "so: the run's deliverables overlap); not sent to the LLM"),
    "directory_then_file": (
        "out/d/x.py", "out/d", [], False,
        'path "out/d": out/d is a directory in the workspace, and this path names '
        "it as a file (an earlier phase of the run, or another program, made it so: the "
        "run's deliverables overlap); not sent to the LLM"),
    # The deliverable is free; the answer writes under the earlier phase's file too.
    "answer_under_a_file": (
        "out/a.py", "out/b.py", ["out/a.py/y.py"], True,
        'path "out/a.py/y.py": out/a.py is a file in the workspace, and this path needs it '
        "as a directory (an earlier phase of the run, or another program, made it so: the "
        "run's deliverables overlap); nothing was written"),
}


@pytest.mark.parametrize("case", sorted(OVERLAPS))
def test_a_phase_delivering_a_path_an_earlier_phase_overlaps_fails_naming_both(tmp, case):
    """A phase whose deliverable lies under a file an earlier phase delivered into its
    workspace (or names as a file a directory one delivered; here a run sharing the
    workspace) was sent to the LLM and then failed SCOPE_VIOLATION (`out/a.py is not a
    directory`), as if the phase's scope were wrong. It now fails WRITE_FAILED before any
    LLM call, naming both paths; an answer that writes under such a file fails
    WRITE_FAILED naming them too, and in either case the workspace is left as the earlier
    phase wrote it."""
    first, second, extra, called, message = OVERLAPS[case]
    tmp = str(tmp)
    ws = os.path.join(tmp, "box", "ws")
    os.makedirs(os.path.join(ws, "out"))
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec(deliverables=(first,))])])
    llm = Standin(tmp, [])
    try:
        drain(tmp, url, llm, "--max-attempts-per-phase", 1)
        before = snapshot(ws)
        import_plan(tmp, url, [("r2", ws, [phase_spec("p2", deliverables=(second,))])])
        if extra:
            llm.stop()
            llm = Standin(tmp, [{"mode": "hostile", "paths": extra}], name="llm2")
        drain(tmp, url, llm, "--max-attempts-per-phase", 1, name="sup2")
    finally:
        llm.stop()
    got = rows(url, "SELECT phase_id, outcome, failure_reason, message, zero_yield_reason,"
               " fingerprint"
               " FROM attempts ORDER BY attempt_id")
    assert [(g["phase_id"], g["outcome"], g["failure_reason"]) for g in got] == [
        ("p1", "success", None), ("p2", "failed", "WRITE_FAILED")], got
    assert got[1]["message"] == message, got[1]["message"]
    assert got[1]["fingerprint"].startswith("FAILED|write_failed|" + message[:40]), got[1]
    assert got[1]["zero_yield_reason"] == (None if called else "failed_before_llm")
    assert len(rows(url, "SELECT id FROM llm_usage_events")) == 1 + called
    after = snapshot(ws)
    assert {p: h for p, h in after.items() if not p.startswith(".autopack")} == {
        p: h for p, h in before.items() if not p.startswith(".autopack")}
