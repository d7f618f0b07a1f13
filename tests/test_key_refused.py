"""A provider that refuses the API key (HTTP 401, or 403) would refuse every call made with
it: the first refusal trips the supervisor's breaker at once, so a wrong or revoked key
costs the attempts in flight, not one attempt of every phase in turn. With
--exit-when-drained the supervisor stops and exits 4; otherwise dispatch pauses, and
`status` says which provider refused the key and that the key is read at the
supervisor's start."""
import json
import os
import signal
import time

from e2e_helpers import Standin, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import (Supervisor, new_db, rogue_supervisor, sql, status_when,
                                wait_for)


def plan(tmp, url, runs=6, phases=2):
    ws = os.path.join(tmp, "ws")
    import_plan(tmp, url, [
        ("run-%02d" % r, ws, [phase_spec("p%d" % p, ("out/r%02d_p%d.py" % (r, p),))
                              for p in range(phases)])
        for r in range(runs)])


def phase_states(url):
    return {r["state"]: r["n"] for r in rows(
        url, "SELECT state, count(*) AS n FROM phases GROUP BY state")}


def test_a_wrong_key_stops_the_drain_after_the_calls_in_flight_and_exits_4(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    plan(tmp, url)
    llm = Standin(tmp, None, "--expect-key", "sk-ant-the-right-key")
    try:
        sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--llm-retries", 0,
                         *llm_args(llm), env={"ANTHROPIC_API_KEY": "sk-ant-a-wrong-key"})
        assert sup.wait(timeout=120) == 4, sup.stderr()
        sent = llm.requests()
    finally:
        llm.stop()
    err = sup.stderr()
    assert "[BREAKER] the anthropic provider refused the API key (HTTP 401 in attempt " \
        in err, err[-3000:]
    assert "fix it and restart" in err and "resume would try the same key" in err
    assert "resume tries again" not in err
    # The calls in flight when the first refusal arrived, no more: two workers.
    assert 1 <= len(sent) <= 2 and all(q["status"] == 401 for q in sent), sent
    # No phase used up its attempts; the others were never started.
    assert phase_states(url) == {"QUEUED": 12}
    att = rows(url, "SELECT outcome, failure_reason FROM attempts")
    assert len(att) == len(sent)
    assert all((a["outcome"], a["failure_reason"]) == ("failed", "PROVIDER_ERROR")
               for a in att), att
    end = json.loads(rows(url, "SELECT state_json FROM drain_sessions")[0]["state_json"])["end"]
    assert (end["stop_cause"], end["exit_status"]) == ("breaker", 4)
    reason = rows(url, "SELECT stop_reason FROM drain_sessions")[0]["stop_reason"]
    assert reason.startswith("breaker: the anthropic provider refused the API key"), reason
    assert "[SAMPLE-SKIP]" not in err and end["left_by"]["policy"] == 0, end


def test_a_403_pauses_dispatch_and_status_says_why(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    plan(tmp, url)
    key = "sk-ant-a-key-without-access"
    llm = Standin(tmp, {"default": {"mode": "status", "status": 403,
                                    "message": "this key may not use the model"}},
                  "--expect-key", key)
    sup = Supervisor(tmp, url, "--workers", 2, "--llm-retries", 0, *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": key})
    try:
        st = status_when(sup, lambda s: s["state"] == "breaker", what="the breaker")
        assert st["pool"]["breaker"].startswith(
            "the anthropic provider refused the API key (HTTP 403 in attempt "), st["pool"]
        r = sup.ctl("status")
        assert "BREAKER: dispatch paused: the anthropic provider refused the API key" in r.out, r
        # Nothing more is dispatched: the calls made stay those in flight at the trip.
        wait_for(lambda: st_quiet(sup), 30, what="the attempts in flight to end")
        n = len(llm.requests())
        time.sleep(1.0)
        assert len(llm.requests()) == n <= 2, llm.requests()
        assert phase_states(url) == {"QUEUED": 12}
    finally:
        sup.signal(signal.SIGTERM)
        rc = sup.wait()
        llm.stop()
    # The refused attempts are not the phases' doing: no run was deprioritised by them
    # (their failures share a fingerprint), and the stop left the work to the operator.
    err = sup.stderr()
    assert rc == 0 and "[SAMPLE-SKIP]" not in err, err[-3000:]


def st_quiet(sup):
    """True once no worker holds an attempt."""
    return all(w["state"] != "busy" for w in sup.status()["pool"]["workers"])


def test_a_refused_key_never_fails_a_phase_and_the_restart_with_the_fixed_key_drains_it(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    plan(tmp, url, runs=2, phases=1)
    right = "sk-ant-the-right-key"
    llm = Standin(tmp, None, "--expect-key", right)
    try:
        # One attempt a phase: the refused one is its last.
        sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--llm-retries", 0,
                         "--max-attempts-per-phase", 1, *llm_args(llm),
                         env={"ANTHROPIC_API_KEY": "sk-ant-a-wrong-key"})
        assert sup.wait(timeout=120) == 4, sup.stderr()
        assert phase_states(url) == {"QUEUED": 2}
        assert all(a["outcome"] == "failed" for a in rows(url, "SELECT outcome FROM attempts"))
        # Fixed and restarted, as the breaker says: the phases are drained.
        sup2 = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--llm-retries", 0,
                          "--max-attempts-per-phase", 1, *llm_args(llm),
                          env={"ANTHROPIC_API_KEY": right}, name="sup2")
        assert sup2.wait(timeout=120) == 0, sup2.stderr()
    finally:
        llm.stop()
    assert phase_states(url) == {"COMPLETE": 2}


def test_a_duplicate_usage_event_saying_401_trips_nothing(tmp):
    # The database keeps an (attempt, seq) once: a second event of seq 1 is no new call.
    url = new_db(tmp, runs=2, phases=1)
    sup = rogue_supervisor(tmp, url, "dup401", "--workers", 1, "--exit-when-drained")
    assert sup.wait() == 0, sup.stderr()
    assert "BREAKER" not in sup.stderr()
    assert sql(url, "SELECT http_status FROM llm_usage_events") == [(200,), (200,)]
    assert phase_states(url) == {"COMPLETE": 2}
