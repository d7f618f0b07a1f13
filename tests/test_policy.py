"""Drain policies on crafted backlogs: buckets, sample-first triage, stop and skip rules,
resume after the supervisor is killed. The LLM stand-in fails chosen runs
deterministically; everything else is real."""
import json
import os
import sqlite3

import pytest

from conftest import ctl
from supervisor_helpers import Standin, Supervisor, new_db, sql, wait_for

KEY = "sk-test-policy"


def drain(tmp, url, llm, *args, name="sup", wait=True, rc=0):
    """Drain with one worker; with `wait`, expect exit status `rc` (5: the drain rules left
    work)."""
    sup = Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                     "--llm-retries", 0, "--workers", 1, *args,
                     env={"ANTHROPIC_API_KEY": KEY}, name=name)
    if wait:
        assert sup.wait(timeout=180) == rc, sup.stderr()
    return sup


def state(url):
    rows = sql(url, "SELECT state_json, stop_reason FROM drain_sessions"
               " ORDER BY started_at DESC, rowid DESC LIMIT 1")
    return json.loads(rows[0][0]), rows[0][1]


def fail_runs(tmp, *runs, mode=None):
    """A stand-in that answers 500 to every phase of the given runs."""
    spec = mode or {"mode": "status", "status": 500, "message": "upstream exploded"}
    return Standin(tmp, script={"markers": {"%s_" % r: [spec] * 50 for r in runs}})


def phase_states(url, run):
    return [s for (s,) in sql(url, "SELECT state FROM phases WHERE run_id = ?"
                              " ORDER BY phase_index", run)]


def test_fingerprint_repeats_stop_the_run(tmp):
    url = new_db(tmp, runs=3, phases=3)
    llm = fail_runs(tmp, "run-000")
    try:
        sup = drain(tmp, url, llm, "--exit-when-drained", "--max-attempts-per-phase", 1,
                    "--max-fingerprint-repeats", 2, rc=5)
    finally:
        llm.stop()
    st, reason = state(url)
    assert reason == "drained"
    # What the drain left, and why: the last log line, and the session's record.
    why = ("run stopped: fingerprint seen 2 times (--max-fingerprint-repeats 2): "
           "FAILED|provider_error|server_error after num try:")
    assert st["end"]["left"] == [{"run_id": "run-000", "phases": 1, "cause": "policy",
                                  "why": st["end"]["left"][0]["why"]}]
    assert st["end"]["left"][0]["why"].startswith(why)
    assert st["end"]["left_by"] == {"policy": 1, "operator": 0, "breaker": 0, "other": 0}
    assert (st["end"]["stop_cause"], st["end"]["exit_status"]) == ("drained", 5)
    assert {k: v for k, v in st["end"]["phases"].items() if v} == {"COMPLETE": 6,
                                                                    "FAILED": 2, "QUEUED": 1}
    last = sup.stderr().rstrip("\n").rsplit("\n", 1)[1]
    assert " ended (drained): 8 attempt(s), " in last, last
    assert last.endswith("; phases COMPLETE 6, FAILED 2, QUEUED 1; 1 left by the drain rules;"
                         " exit status 5"), last
    assert "[LEFT] run-000: 1 phase(s) left: " + why in sup.stderr()
    assert st["stopped_runs"] == ["run-000"]
    [fp] = st["stopped_fingerprints"]
    assert fp == ("FAILED|provider_error|server_error after num try:"
                  " http://num.num.num.num:num/v1/messages: http num: upstream exploded"), fp
    assert st["fingerprint_counts"][fp] == 2
    assert phase_states(url, "run-000") == ["FAILED", "FAILED", "QUEUED"]
    assert phase_states(url, "run-001") == ["COMPLETE"] * 3
    assert phase_states(url, "run-002") == ["COMPLETE"] * 3
    assert "[STOP] run run-000: fingerprint seen 2 times" in sup.stderr()


def test_sample_first_triage_deprioritises_a_run_repeating_a_known_failure(tmp):
    url = new_db(tmp, runs=3, phases=2)
    llm = fail_runs(tmp, "run-000", "run-001")
    try:
        sup = drain(tmp, url, llm, "--exit-when-drained", "--max-attempts-per-phase", 1,
                    "--max-fingerprint-repeats", 100, rc=5)
    finally:
        llm.stop()
    st, _ = state(url)
    assert [(e["run_id"], e["phases"], e["cause"]) for e in st["end"]["left"]] == [
        ("run-001", 1, "policy")]
    assert st["end"]["left"][0]["why"].startswith(
        "run deprioritised by sample-first triage: its first result repeated fingerprint ")
    # run-000's sample fails first with a new fingerprint: promising. run-001's sample
    # repeats it: deprioritised, and nothing more of it runs. run-002 succeeds.
    assert st["sampled_runs"] == ["run-000", "run-001", "run-002"]
    assert st["promising_runs"] == ["run-000", "run-002"]
    assert st["deprioritized_runs"] == ["run-001"]
    assert phase_states(url, "run-000") == ["FAILED", "FAILED"]
    assert phase_states(url, "run-001") == ["FAILED", "QUEUED"]
    assert phase_states(url, "run-002") == ["COMPLETE", "COMPLETE"]
    # Unsampled runs go first: the three samples are the first three attempts.
    first = [r for (r,) in sql(url, "SELECT run_id FROM attempts ORDER BY attempt_id LIMIT 3")]
    assert first == ["run-000", "run-001", "run-002"]
    assert "[SAMPLE-SKIP] run-001" in sup.stderr()


def test_failed_phases_are_taken_in_bucket_order(tmp):
    url = new_db(tmp, runs=6, phases=1)
    reasons = {"run-000": "Phase drain timed out after 30 minutes",
               "run-001": "CI collection error: ImportError",
               "run-002": None,
               "run-003": "PATCH_FAILED",
               "run-004": "DELIVERABLES_VALIDATION_FAILED",
               "run-005": "EXCEPTION: ValueError"}
    con = sqlite3.connect(url[len("sqlite:///"):])
    for run, why in reasons.items():
        con.execute("UPDATE phases SET state = 'FAILED', last_failure_reason = ?"
                    " WHERE run_id = ?", (why, run))
    con.commit()
    con.close()
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--retry-failed",
                     "--exit-when-drained")
    assert sup.wait() == 0, sup.stderr()
    order = [r for (r,) in sql(url, "SELECT run_id FROM attempts ORDER BY attempt_id")]
    # unknown → collection → deliverable → patch → other → timeout
    assert order == ["run-002", "run-001", "run-004", "run-003", "run-005", "run-000"]
    # A dry run leaves states, and triage, alone.
    assert sql(url, "SELECT DISTINCT state FROM phases") == [("FAILED",)]
    st, _ = state(url)
    assert st == {} or st["sampled_runs"] == []


def test_queued_only_without_retry_failed_and_skip_prefix(tmp):
    url = new_db(tmp, runs=3, phases=2)
    con = sqlite3.connect(url[len("sqlite:///"):])
    con.execute("UPDATE phases SET state = 'FAILED' WHERE run_id = 'run-001'")
    con.commit()
    con.close()
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     "--skip-run-prefix", "run-002")
    assert sup.wait() == 0, sup.stderr()
    assert sorted(set(r for (r,) in sql(url, "SELECT run_id FROM attempts"))) == ["run-000"]


def test_timeouts_per_run_stop_the_run(tmp):
    url = new_db(tmp, runs=2, phases=3, check="sleep 30")
    llm = Standin(tmp)
    try:
        # run-001's checks pass quickly: give it its own check command.
        con = sqlite3.connect(url[len("sqlite:///"):])
        con.execute("UPDATE phases SET check_command = 'true' WHERE run_id = 'run-001'")
        con.commit()
        con.close()
        drain(tmp, url, llm, "--exit-when-drained", "--phase-timeout-seconds", 2,
              "--max-timeouts-per-run", 1, "--max-attempts-per-phase", 1, rc=5)
    finally:
        llm.stop()
    st, _ = state(url)
    assert st["stopped_runs"] == ["run-000"]
    assert phase_states(url, "run-000") == ["FAILED", "QUEUED", "QUEUED"]
    assert sql(url, "SELECT outcome FROM attempts WHERE run_id = 'run-000'") == [("timeout",)]
    assert phase_states(url, "run-001") == ["COMPLETE"] * 3


def test_consecutive_zero_yield_ends_the_session(tmp):
    url = new_db(tmp, runs=2, phases=4)
    llm = fail_runs(tmp, "run-000", "run-001")
    try:
        sup = drain(tmp, url, llm, "--exit-when-drained", "--max-attempts-per-phase", 1,
                    "--max-fingerprint-repeats", 100, "--max-consecutive-zero-yield", 3, rc=5)
    finally:
        llm.stop()
    st, reason = state(url)
    assert "3 consecutive attempts yielded no telemetry" in reason
    assert st["consecutive_zero_yield"] == 3
    assert sql(url, "SELECT count(*) FROM attempts") == [(3,)]
    assert "[STOP] 3 consecutive attempts" in sup.stderr()


def test_batch_size_and_max_attempts_per_phase(tmp):
    url = new_db(tmp, runs=1, phases=3)
    llm = fail_runs(tmp, "run-000")
    try:
        drain(tmp, url, llm, "--exit-when-drained", "--max-attempts-per-phase", 2,
              "--max-fingerprint-repeats", 100)
        # Each phase failed twice in the session, then stayed FAILED.
        assert sql(url, "SELECT phase_id, count(*) FROM attempts GROUP BY 1 ORDER BY 1") == \
            [("p0-0", 2), ("p0-1", 2), ("p0-2", 2)]
        assert phase_states(url, "run-000") == ["FAILED"] * 3
        drain(tmp, url, llm, "--retry-failed", "--batch-size", 2,
              "--max-fingerprint-repeats", 100, name="batch", rc=5)
    finally:
        llm.stop()
    st, reason = state(url)
    assert reason == "batch size 2 reached (--batch-size)"
    # Two phases failed once more and went back to the queue, one was not reached.
    assert st["end"]["left"] == [{"run_id": "run-000", "phases": 3, "cause": "policy",
                                  "why": "batch size 2 reached (--batch-size)"}]
    assert sql(url, "SELECT count(*) FROM attempts") == [(8,)]


def failed(url):
    """Failed attempts per run."""
    return dict(sql(url, "SELECT r.id, count(a.attempt_id) FROM runs r LEFT JOIN"
                    " attempts a ON a.run_id = r.id AND a.outcome = 'failed'"
                    " GROUP BY 1"))


def test_resume_after_sigkill_keeps_counters_and_triage(tmp):
    # run-000 fails every phase with one fingerprint; the rule stops it at the 4th
    # repeat, counted across the kill. run-001 fails too, but its sample repeats the
    # fingerprint, so triage deprioritises it: it never runs again. run-002 succeeds.
    url = new_db(tmp, runs=3, phases=6, check="sleep 0.2")
    # run-000's call after the three samples is answered only once the supervisor is
    # killed: the kill finds the repeats the samples made, never the rule's stop.
    killed = os.path.join(str(tmp), "killed")
    fail = {"mode": "status", "status": 500, "message": "upstream exploded"}
    llm = Standin(tmp, script={"markers": {"run-000_": [fail, dict(fail, until=killed)]
                                           + [fail] * 48, "run-001_": [fail] * 50}})
    try:
        sup = drain(tmp, url, llm, "--max-attempts-per-phase", 1,
                    "--max-fingerprint-repeats", 4, wait=False)

        def saved_enough():
            if not sql(url, "SELECT count(*) FROM drain_sessions")[0][0]:
                return False
            st = state(url)[0]
            return sum(st.get("fingerprint_counts", {}).values()) >= 2 and \
                len(st.get("sampled_runs", [])) == 3
        wait_for(saved_enough, what="two repeats and three samples saved")
        sup.proc.kill()
        sup.proc.wait()
        open(killed, "w").close()
        saved, reason = state(url)
        assert reason is None
        [fp] = saved["fingerprint_counts"]
        before = saved["fingerprint_counts"][fp]
        assert before < 4, saved
        assert saved["deprioritized_runs"] == ["run-001"]
        [(sid,)] = sql(url, "SELECT session_id FROM drain_sessions")
        failed_before = failed(url)
        again = drain(tmp, url, llm, "--resume", "--exit-when-drained",
                      "--max-attempts-per-phase", 1, "--max-fingerprint-repeats", 4,
                      name="again", rc=5)
        assert "resuming session %s" % sid in again.stderr()
    finally:
        llm.stop()
    st, reason = state(url)
    assert reason == "drained"
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(1,)]
    # The count went on from the saved one: exactly 4 - before more failures of run-000.
    failed_after = failed(url)
    assert st["fingerprint_counts"] == {fp: 4}
    assert failed_after["run-000"] - failed_before["run-000"] == 4 - before, \
        (failed_before, failed_after, saved)
    assert st["stopped_runs"] == ["run-000"]
    # Triage held: run-001 was not sampled again nor drained further.
    assert failed_after["run-001"] == failed_before["run-001"] == 1
    assert st["sampled_runs"] == saved["sampled_runs"]
    assert st["deprioritized_runs"] == ["run-001"]
    assert phase_states(url, "run-002") == ["COMPLETE"] * 6
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_resume_without_an_unfinished_session_is_refused(tmp):
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--resume")
    assert sup.wait() == 1
    assert "no unfinished drain session" in sup.stderr()


def test_a_dry_run_session_is_resumed_only_as_a_dry_run(tmp):
    # A dry run's attempts are no tries of a drain that calls the LLM: resuming its
    # session without --dry-run would count them (with one attempt a phase, nothing
    # would run). Killed while it waits for more work, the session is left unfinished.
    url = new_db(tmp, runs=2, phases=3)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run")
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts")[0][0] == 6,
             what="every phase estimated")
    sup.proc.kill()
    sup.proc.wait()
    [(sid, done)] = sql(url, "SELECT session_id, completed_at FROM drain_sessions")
    assert done is None
    real = Supervisor(tmp, url, "--workers", 1, "--resume", "--exit-when-drained",
                      "--max-attempts-per-phase", 1, "--llm-base-url", "http://127.0.0.1:9/",
                      env={"ANTHROPIC_API_KEY": KEY}, name="real")
    assert real.wait() == 1
    assert ("--resume: session %s made 6 dry-run attempt(s); resume it with --dry-run, or "
            "start a new session (without --resume)" % sid) in real.stderr()
    assert sql(url, "SELECT count(*), sum(dry_run) FROM attempts") == [(6, 6)]
    assert sql(url, "SELECT completed_at FROM drain_sessions") == [(None,)]
    again = Supervisor(tmp, url, "--workers", 1, "--resume", "--dry-run",
                       "--exit-when-drained", name="again")
    assert again.wait() == 0, again.stderr()
    assert "resuming session %s (6 attempt(s) already made)" % sid in again.stderr()


def test_a_dry_runs_end_counts_only_the_tries_of_its_own_session(tmp):
    # What a dry run left is every eligible phase its own session did not try: another
    # session's attempts do not count, nor one of its own that a stop ended before it
    # started (supervisor_stopped). Every phase was tried by a first session; a second
    # one, killed before it leased anything (no worker), is given two attempts of its
    # own and resumed with its batch already used up, so it leases nothing more.
    url = new_db(tmp, runs=3, phases=2)
    first = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                       name="first")
    assert first.wait() == 0, first.stderr()
    idle = Supervisor(tmp, url, "--workers", 0, "--dry-run", name="idle")
    wait_for(lambda: "phase(s) eligible" in idle.stderr(), what="the second session opened")
    idle.kill()
    [(sid,)] = sql(url, "SELECT session_id FROM drain_sessions WHERE completed_at IS NULL")
    con = sqlite3.connect(url[len("sqlite:///"):])
    with con:
        con.executemany(
            "INSERT INTO attempts (run_id, phase_id, attempt_number, session_id, dry_run,"
            " started_at, ended_at, outcome) VALUES (?, 'p0-0', 2, ?, 1,"
            " '2026-12-04 19:00:00.000000', '2026-12-04 19:00:00.000000', ?)",
            [("run-000", sid, "dry_run"), ("run-001", sid, "supervisor_stopped")])
    con.close()
    again = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--resume",
                       "--exit-when-drained", "--batch-size", 2, name="again")
    assert again.wait() == 5, again.stderr()
    assert sql(url, "SELECT count(*) FROM attempts WHERE session_id = ?", sid) == [(2,)]
    st, _ = state(url)
    why = "batch size 2 reached (--batch-size)"
    assert st["end"]["left"] == [
        {"run_id": run, "phases": n, "cause": "policy", "why": why}
        for run, n in (("run-000", 1), ("run-001", 2), ("run-002", 2))]
    assert st["end"]["left_by"] == {"policy": 5, "operator": 0, "breaker": 0, "other": 0}
    assert again.stderr().rstrip().endswith(
        "phases COMPLETE 0, FAILED 0, QUEUED 6; 5 left by the drain rules; exit status 5")


def test_a_retried_run_is_no_longer_stopped_live_offline_and_after_resume(tmp):
    # run-000's first two calls fail alike: the rule stops the run; later calls succeed.
    url = new_db(tmp, runs=2, phases=3)
    spec = {"mode": "status", "status": 500, "message": "upstream exploded"}
    llm = Standin(tmp, script={"markers": {"run-000_": [spec] * 2}})
    rules = ("--max-attempts-per-phase", 1, "--max-fingerprint-repeats", 2)
    try:
        # Live: the supervisor drains the retried run and saves it as no longer stopped.
        sup = drain(tmp, url, llm, *rules, wait=False)
        wait_for(lambda: sql(url, "SELECT count(*) FROM drain_sessions")[0][0] and
                 state(url)[0].get("stopped_runs") == ["run-000"] and
                 phase_states(url, "run-001") == ["COMPLETE"] * 3, what="run-000 stopped")
        r = ctl("--db", url, "retry", "--run", "run-000")
        assert r.rc == 0 and "retried 2 phases" in r.out, r
        wait_for(lambda: phase_states(url, "run-000") == ["COMPLETE"] * 3 and
                 state(url)[0].get("stopped_runs") == [], what="run-000 drained, released")
        sup.proc.kill()
        sup.proc.wait()

        # Offline: the run stopped in an unfinished session is released by the retry, so
        # the resumed session drains it.
        off = os.path.join(str(tmp), "offline")
        os.makedirs(off)
        url = new_db(off, runs=2, phases=3)
        llm.stop()
        llm = Standin(off, script={"markers": {"run-000_": [spec] * 2}})
        sup = drain(off, url, llm, *rules, wait=False)
        wait_for(lambda: sql(url, "SELECT count(*) FROM drain_sessions")[0][0] and
                 state(url)[0].get("stopped_runs") == ["run-000"] and
                 phase_states(url, "run-001") == ["COMPLETE"] * 3, what="run-000 stopped")
        sup.proc.kill()
        sup.proc.wait()
        r = ctl("--db", url, "retry", "--run", "run-000")
        assert r.rc == 0 and "retried 2 phases" in r.out, r
        assert state(url)[0]["stopped_runs"] == []
        drain(off, url, llm, "--resume", "--exit-when-drained", *rules, name="again")
    finally:
        llm.stop()
    assert phase_states(url, "run-000") == ["COMPLETE"] * 3
    assert state(url)[0]["end"]["exit_status"] == 0


# Saved states a supervisor refuses to resume, and what it says is wrong with each.
BAD_STATES = [
    ({"consecutive_zero_yield": 2**63 - 1},
     "consecutive_zero_yield: 9223372036854775807 is not a count from 0 to 1000000000"),
    ({"fingerprint_counts": {"FAILED|x": -1}},
     'fingerprint_counts["FAILED|x"]: -1 is not a count from 0 to 1000000000'),
    ({"fingerprint_counts": {"FAILED|x": "3"}},
     'fingerprint_counts["FAILED|x"]: "3" is not a count from 0 to 1000000000'),
    ([], "a JSON array, not an object"),
    ({"stopped_runs": {"run-000": True}}, "stopped_runs: a JSON object, not a list of names"),
    ({"deprioritized_runs": ["run-000", 7]}, "deprioritized_runs[1]: a JSON integer, not a name"),
    ({"fingerprint_counts": [["FAILED|x", 3]]},
     "fingerprint_counts: a JSON array, not an object of counts"),
    ('{"stopped_runs": ["run-000"', "not JSON: ']' expected near end of file (line 1, column 27)"),
    ('{"stopped_runs": ["run\\u0000"]}', "not JSON: \\u0000 is not allowed"),
    ('{"stopped_runs": %s"run-000"%s}' % ("[" * 65, "]" * 65),
     "not JSON: nesting deeper than 64 (line 1, column 81)"),
    # Two values for one key: which one a reader takes is its own choice.
    ('{"stopped_runs": ["run-000"], "stopped_runs": []}',
     "not JSON: duplicate object key near '\"stopped_runs\"' (line 1, column 44)"),
]


def session_with_state(url, saved):
    """Add session s1 whose state_json is `saved` (a text as it is, else as JSON)."""
    con = sqlite3.connect(url[len("sqlite:///"):])
    with con:
        con.execute("INSERT INTO drain_sessions (session_id, started_at, supervisor_pid,"
                    " settings_json, state_json) VALUES ('s1', '2026-12-01 10:00:00.000000',"
                    " 1, '{}', ?)", (saved if isinstance(saved, str) else json.dumps(saved),))
    con.close()


@pytest.mark.parametrize("saved,why", BAD_STATES)
def test_a_saved_state_holding_a_count_that_is_none_is_not_resumed(tmp, saved, why):
    """A session's saved state another program or a hand edit wrote: a count of 2^63-1
    overflowed at the next attempt counted on it (UBSan: signed integer overflow; in a
    release build the zero-yield streak wrapped to -2^63 and its rule never fired again),
    and a negative or text count was taken as it came (a string as 0). A list of runs or
    fingerprints that is no list of names was dropped without a word (a stopped run was
    drained again), and a text that is no JSON (cut short, nested past 64, a \\u0000) was
    called "not a JSON object". The refusal names the session, the column and the key, or
    the parser's reason."""
    url = new_db(tmp, runs=1, phases=1)
    session_with_state(url, saved)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--resume", "--exit-when-drained")
    assert sup.wait() == 1, sup.stderr()
    assert ("session s1: drain_sessions.state_json (the saved state of its drain rules): "
            "%s" % why) in sup.stderr(), sup.stderr()
    assert "; not resuming it" in sup.stderr(), sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]


@pytest.mark.parametrize("saved,why", BAD_STATES)
def test_session_show_names_a_saved_state_it_cannot_read(tmp, saved, why):
    """session show summarised a session whose saved state the supervisor refuses to
    resume as if its state were empty, exit 0: no stopped runs, no counts, and no word.
    It says what the supervisor says (the key, or the parser's reason with its line and
    column), on stderr after the rest and as state_error in --json, and exits 1."""
    url = new_db(tmp, runs=1, phases=1)
    session_with_state(url, saved)
    said = "session s1: drain_sessions.state_json (the saved state of its drain rules): "
    r = ctl("--db", url, "session", "show", "s1")
    assert r.rc == 1, r
    assert "== drain session s1 ==" in r.out, r
    [line] = [x for x in r.err.splitlines() if x.startswith("autopack-ctl: ")]
    assert line.startswith("autopack-ctl: " + said + why), r
    r = ctl("--db", url, "session", "show", "s1", "--json")
    assert r.rc == 1, r
    j = json.loads(r.out)
    assert j["ok"] is False and j["error"] == "EINVAL", j
    assert j["state_error"].startswith(why), j
    assert j["message"].startswith(said + j["state_error"] + "; "), j
    assert j["session"]["session_id"] == "s1", j
