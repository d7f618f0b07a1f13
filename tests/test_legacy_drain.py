"""An adopted Python-Autopack backlog (70 runs, 456 phases) drained with the triage rules:
--retry-failed over FAILED and QUEUED phases, the LLM stand-in failing every run but the
build1* ones. The drain's order and decisions are checked against the rules of docs/drain-rules.md
replayed in Python over the attempt rows."""
import json
import os
import sqlite3

import legacy_db
from conftest import ctl
from e2e_helpers import Standin as E2EStandin, drain, import_plan, init_db, phase_spec, rows
from supervisor_helpers import Standin, Supervisor, db_url, sql


def test_adopted_backlog_drains_with_sample_first_triage_and_fingerprint_stops(tmp):
    path = os.path.join(str(tmp), "autopack_legacy.db")
    legacy_db.build(path)
    url = db_url(path)
    r = ctl("--db", url, "db", "adopt")
    assert r.rc == 0, r
    reasons = {(run, ph): why for run, ph, why in sql(
        url, "SELECT run_id, phase_id, last_failure_reason FROM phases")}
    eligible = {(run, ph) for run, ph in sql(
        url, "SELECT run_id, phase_id FROM phases WHERE state IN ('QUEUED', 'FAILED')")}

    llm = Standin(tmp, script={"markers": {"Run: build1": [{"mode": "normal"}] * 200},
                               "default": {"mode": "status", "status": 500,
                                           "message": "upstream exploded"}})
    try:
        sup = Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                         "--llm-retries", 0, "--workers", 1, "--retry-failed",
                         "--exit-when-drained", "--max-attempts-per-phase", 1,
                         "--max-fingerprint-repeats", 3, "--skip-run-prefix",
                         "research-system", env={"ANTHROPIC_API_KEY": "k"})
        # The drain rules stop and deprioritise runs with phases left: exit status 5.
        assert sup.wait(timeout=300) == 5, sup.stderr()
    finally:
        llm.stop()

    rows = sql(url, "SELECT a.run_id, a.phase_id, a.outcome, a.fingerprint, p.phase_index"
               " FROM attempts a JOIN phases p USING (run_id, phase_id)"
               " ORDER BY a.attempt_id")
    state = json.loads(sql(url, "SELECT state_json FROM drain_sessions")[0][0])
    assert rows and all((r, p) in eligible for r, p, _, _, _ in rows)
    assert not any(r.startswith("research-system") for r, _, _, _, _ in rows)

    # Unsampled runs first: the first attempts are one sample of every drained run...
    runs = {r for r, _, _, _, _ in rows}
    samples = rows[:len(runs)]
    assert len({r for r, _, _, _, _ in samples}) == len(runs)
    # ...taken in failure-reason bucket order, then phase index.
    keys = [(legacy_db.TRIAGE_ORDER.index(legacy_db.triage_bucket(reasons[(r, p)])), i)
            for r, p, _, _, i in samples]
    assert keys == sorted(keys)

    # Replay the rules over the attempts in order.
    seen, counts = set(), {}
    sampled, promising, deprioritized, stopped = [], [], [], []
    for r, p, outcome, fp, _ in rows:
        assert r not in deprioritized and r not in stopped, "%s ran after it was skipped" % r
        if r not in sampled:
            sampled.append(r)
            if outcome == "success" or fp is None or fp not in seen:
                promising.append(r)
            else:
                deprioritized.append(r)
        if fp is not None and outcome != "success":
            seen.add(fp)
            counts[fp] = counts.get(fp, 0) + 1
            if counts[fp] >= 3 and r not in stopped:
                stopped.append(r)
    assert state["sampled_runs"] == sampled
    assert state["promising_runs"] == promising
    assert state["deprioritized_runs"] == deprioritized
    assert state["stopped_runs"] == stopped
    assert state["fingerprint_counts"] == counts
    assert deprioritized and stopped

    # The build1 runs succeed and are drained to the end.
    for r in runs:
        if r.startswith("build1"):
            assert r in promising
            left = sql(url, "SELECT count(*) FROM phases WHERE run_id = ? AND state IN"
                       " ('QUEUED', 'FAILED')", r)[0][0]
            assert left == 0, r
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_a_phase_never_ends_complete_without_writing_its_deliverables(tmp):
    """An answer that writes none of the phase's deliverables (though they exist already)
    fails NO_DELIVERABLES_WRITTEN and writes nothing; a phase whose scope names none fails
    NO_DELIVERABLES without an LLM call; the others complete."""
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(os.path.join(ws, "out"))
    with open(os.path.join(ws, "out", "old.py"), "w") as f:
        f.write("# written long ago\n")
    url = init_db(str(tmp))
    import_plan(str(tmp), url, [("r1", ws, [
        phase_spec("p-none-written", deliverables=("out/old.py",)),
        phase_spec("p-fine", deliverables=("out/fine.py",))])])
    # A phase written by another program, whose scope names no deliverables.
    con = sqlite3.connect(url[len("sqlite:///"):])
    con.execute("INSERT INTO phases (phase_id, run_id, tier_id, phase_index, name, state,"
                " scope, created_at, updated_at) SELECT 'p-unscoped', 'r1', id, 5, 'n',"
                " 'QUEUED', '{\"paths\": [\"out/\"]}', created_at, created_at FROM tiers")
    con.commit()
    con.close()
    llm = E2EStandin(str(tmp), {"markers": {"p-none-written": [{"mode": "normal", "files": [
        {"path": "out/other.py", "mode": "create", "new_content": "x = 1\n"}]}]},
        "default": {"mode": "normal"}})
    try:
        drain(str(tmp), url, llm, "--max-attempts-per-phase", 1)
    finally:
        llm.stop()
    got = {r["phase_id"]: (r["state"], r["last_failure_reason"]) for r in rows(
        url, "SELECT phase_id, state, last_failure_reason FROM phases")}
    assert got == {"p-none-written": ("FAILED", "NO_DELIVERABLES_WRITTEN"),
                   "p-fine": ("COMPLETE", None),
                   "p-unscoped": ("FAILED", "NO_DELIVERABLES")}
    assert not os.path.exists(os.path.join(ws, "out", "other.py"))
    with open(os.path.join(ws, "out", "old.py")) as f:
        assert f.read() == "# written long ago\n"
    prompts = [r.get("marker") for r in llm.requests()]
    assert len(prompts) == 2
    assert rows(url, "SELECT count(*) AS n FROM llm_usage_events WHERE phase_id ="
                " 'p-unscoped'") == [{"n": 0}]
    [a] = rows(url, "SELECT message, zero_yield_reason FROM attempts WHERE phase_id ="
               " 'p-unscoped'")
    assert "names no deliverables" in a["message"]
    assert a["zero_yield_reason"] == "failed_before_llm"
