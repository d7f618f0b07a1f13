"""autopack-ctl session list / session show against sessions a real supervisor recorded:
every figure is recomputed here from the drain_session_results and attempts rows."""
import json
import math
import re
import sqlite3

import pytest

from conftest import ctl
from supervisor_helpers import Standin, Supervisor, new_db, sql, wait_for

KEY = "sk-test-session"
# The outcomes of an attempt that ended for no fault of its phase (common/vocab.h).
HANDS_BACK = {"worker_crashed", "heartbeat_lost", "scaled_down", "supervisor_stopped",
              "supervisor_restart", "supervisor_lost"}


def show(url, *args):
    r = ctl("--db", url, "session", "show", "--json", *args)
    assert r.rc == 0, r
    return json.loads(r.out)


def listing(url):
    r = ctl("--db", url, "session", "list", "--json")
    assert r.rc == 0, r
    return json.loads(r.out)["sessions"]


def recompute(url, sid):
    """The summary of session `sid`, from the rows, as docs/drain-rules.md defines it."""
    rows = sql(url, "SELECT r.run_id, r.success, a.outcome, r.duration_seconds,"
               " coalesce(r.telemetry_events_collected, 0), r.telemetry_yield_per_minute,"
               " r.reached_llm_boundary, r.failure_fingerprint, r.zero_yield_reason,"
               " r.final_state"
               " FROM drain_session_results r JOIN attempts a USING (attempt_id)"
               " WHERE r.session_id = ? ORDER BY r.attempt_id", sid)
    state = json.loads(sql(url, "SELECT state_json FROM drain_sessions WHERE session_id = ?",
                           sid)[0][0])
    n = len(rows)
    ok = sum(1 for r in rows if r[1])
    timeouts = sum(1 for r in rows if r[2] == "timeout")
    events = sum(r[4] for r in rows)
    minutes = sum(r[3] / 60.0 for r in rows if r[2] != "timeout" and r[3] and r[3] > 0)
    yields = sorted((r[5] if r[5] is not None and r[5] > 0 else 0.0) for r in rows)
    zy, fps, runs = {}, {}, {}
    for r in rows:
        if r[8] is not None:
            zy[r[8]] = zy.get(r[8], 0) + 1
        if r[7] is not None:
            fps[r[7]] = fps.get(r[7], 0) + 1
        run = runs.setdefault(r[0], {"run_id": r[0], "total": 0, "succeeded": 0,
                                     "timeouts": 0, "events": 0})
        run["total"] += 1
        run["succeeded"] += 1 if r[1] else 0
        run["timeouts"] += 1 if r[2] == "timeout" else 0
        run["events"] += r[4]
    stopped = state.get("stopped_runs", [])
    for run in runs.values():
        run["stopped"] = run["run_id"] in stopped
    ranked = lambda d, k: [{k: key, "count": c} for key, c in
                           sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))]
    median = (yields[n // 2] if n % 2 else (yields[n // 2 - 1] + yields[n // 2]) / 2) \
        if n else None
    summary = {
        "total_processed": n, "succeeded": ok, "failed": n - ok, "timeouts": timeouts,
        "success_rate_pct": 100.0 * ok / n if n else 0.0,
        "timeout_rate_pct": 100.0 * timeouts / n if n else 0.0,
        "total_events": events,
        "phases_with_events": sum(1 for r in rows if r[4] > 0),
        "non_timeout_minutes": minutes,
        "overall_yield_per_minute": events / minutes if minutes > 0 else None,
        "zero_yield_breakdown": ranked(zy, "reason"),
        "yield_per_minute": {"median": median,
                             "p90": yields[math.ceil(0.9 * n) - 1] if n else None,
                             "max": yields[-1] if n else None},
        "top_fingerprints": ranked(fps, "fingerprint")[:5],
        "llm_boundary_hits": sum(1 for r in rows if r[6]),
        "unique_fingerprints": len(fps),
        # Of the failed, those whose attempt handed its phase back to the queue.
        "handed_back": sum(1 for r in rows
                           if not r[1] and r[9] == "QUEUED" and r[2] in HANDS_BACK),
    }
    recs = []
    if n:
        tpct, per_phase = 100.0 * timeouts / n, events / n
        if tpct > 30:
            recs.append("timeouts_high")
        elif tpct < 10:
            recs.append("timeouts_low")
        if per_phase < 1:
            recs.append("yield_low")
        elif per_phase > 5:
            recs.append("yield_good")
        if sum(1 for r in runs.values() if r["stopped"]) * 2 > len(runs):
            recs.append("runs_stopped")
    return summary, sorted(runs.values(), key=lambda r: r["run_id"]), state, recs


def assert_same(got, want, path="summary"):
    if isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), path
    elif isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            assert_same(got[k], want[k], "%s.%s" % (path, k))
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, "%s[%d]" % (path, i))
    else:
        assert got == want, path


def test_session_show_matches_the_rows_of_a_real_drain_with_failures(tmp):
    url = new_db(tmp, runs=4, phases=3)
    path = url[len("sqlite:///"):]
    con = sqlite3.connect(path)
    # One attempt runs into the phase deadline: a timeout.
    con.execute("UPDATE phases SET check_command = 'sleep 30' WHERE run_id = 'run-003'"
                " AND phase_id = 'p0-2'")
    con.commit()
    con.close()
    llm = Standin(tmp, script={"markers": {
        "run-000_": [{"mode": "status", "status": 500, "message": "upstream exploded"}] * 9,
        "run-001_p0-1": [{"mode": "malformed"}] * 3,
        "run-002_p0-2": [{"mode": "missing"}] * 3,
    }})
    try:
        sup = Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                         "--llm-retries", 0, "--workers", 2, "--exit-when-drained",
                         "--max-attempts-per-phase", 1, "--max-fingerprint-repeats", 2,
                         "--phase-timeout-seconds", 3, env={"ANTHROPIC_API_KEY": KEY})
        # run-000 is stopped with a phase left: exit status 5.
        assert sup.wait(timeout=180) == 5, sup.stderr()
    finally:
        llm.stop()
    [(sid,)] = sql(url, "SELECT session_id FROM drain_sessions")
    j = show(url)
    summary, runs, state, recs = recompute(url, sid)
    assert_same(j["summary"], summary)
    assert_same(j["runs"], runs, "runs")
    assert [r["id"] for r in j["recommendations"]] == recs
    # The drain had what the test scripted.
    s = j["summary"]
    assert s["timeouts"] == 1 and s["failed"] >= 4 and s["succeeded"] >= 6
    assert s["total_events"] > 0 and s["overall_yield_per_minute"] > 0
    assert s["unique_fingerprints"] >= 3
    # Stop conditions come from the session row and its state.
    sc = j["stop_conditions"]
    assert sc["stop_reason"] == "drained"
    assert sc["stopped_runs"] == state["stopped_runs"] == ["run-000"]
    assert sc["stopped_fingerprints"] == state["stopped_fingerprints"]
    assert sc["repeat_limit_hits"] == len(state["stopped_fingerprints"]) == 1
    assert sc["fingerprint_counts"] == state["fingerprint_counts"]
    assert sc["consecutive_zero_yield"] == state["consecutive_zero_yield"]
    assert sc["sampled_runs"] == state["sampled_runs"]
    assert [r["run_id"] for r in j["runs"] if r["stopped"]] == ["run-000"]
    # What the drain left, and why.
    end = j["end"]
    assert end == state["end"]
    left = {e["run_id"]: (e["phases"], e["cause"]) for e in end["left"]}
    queued = sql(url, "SELECT run_id, count(*) FROM phases WHERE state = 'QUEUED'"
                 " GROUP BY 1")
    assert left == {run: (n, "policy") for run, n in queued} and "run-000" in left
    assert end["phases"]["QUEUED"] == sum(n for _, n in queued)
    assert (end["stop_cause"], end["exit_status"]) == ("drained", 5)
    # The session itself, with its settings.
    sess = j["session"]
    assert sess["session_id"] == sid and sess["status"] == "completed"
    assert sess["settings"] == json.loads(sql(url, "SELECT settings_json FROM drain_sessions")
                                          [0][0])
    assert (sess["settings"]["workers"], sess["settings"]["phase_timeout_seconds"]) == (2, 3)
    # The same session by id, and the text report.
    assert show(url, sid)["summary"] == j["summary"]
    r = ctl("--db", url, "session", "show", "--latest")
    assert r.rc == 0, r
    assert "BATCH DRAIN SUMMARY" in r.out
    line = [x for x in runs if x["run_id"] == "run-000"][0]
    assert "  run-000 [STOPPED]: %d/%d succeeded, %d timeouts, %d events" % (
        line["succeeded"], line["total"], line["timeouts"], line["events"]) in r.out
    assert "Total processed:    %d" % summary["total_processed"] in r.out
    assert "What is left\n  phases: COMPLETE %d, FAILED %d, QUEUED %d" % (
        end["phases"]["COMPLETE"], end["phases"]["FAILED"], end["phases"]["QUEUED"]) in r.out
    assert "  run-000: %d phase(s), the drain rules: run stopped: fingerprint seen 2 times" % (
        left["run-000"][0]) in r.out
    assert "  exit status: 5" in r.out
    # session list agrees.
    [row] = listing(url)
    assert row["session_id"] == sid and row["status"] == "completed"
    assert row["attempts"] == sql(url, "SELECT count(*) FROM attempts WHERE session_id = ?",
                                  sid)[0][0]
    assert row["successes"] == summary["succeeded"]
    assert row["events"] == summary["total_events"]


def test_session_list_shows_running_interrupted_and_completed_newest_first(tmp):
    url = new_db(tmp, runs=2, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run")
    sup.wait_ready()
    wait_for(lambda: sql(url, "SELECT count(*) FROM drain_session_results")[0][0] == 4,
             what="four dry-run results")
    [first] = listing(url)
    assert first["status"] == "running" and first["completed_at"] is None
    assert first["supervisor_pid"] == sup.proc.pid
    sup.proc.kill()
    sup.proc.wait()
    [first] = listing(url)
    assert first["status"] == "interrupted" and first["stop_reason"] is None
    again = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                       name="again")
    assert again.wait() == 0, again.stderr()
    second, first = listing(url)
    assert second["status"] == "completed" and second["stop_reason"] == "drained"
    assert first["status"] == "interrupted"
    assert (second["attempts"], second["successes"], second["events"]) == (4, 4, 0)
    assert show(url)["session"]["session_id"] == second["session_id"]
    r = ctl("--db", url, "session", "list")
    assert r.rc == 0, r
    assert r.out.index(second["session_id"]) < r.out.index(first["session_id"])
    assert "interrupted" in r.out


def test_a_supervisor_pid_past_what_a_pid_holds_is_no_live_supervisor(tmp):
    """drain_sessions.supervisor_pid another program or a hand edit wrote: 4294967297 was
    cut to pid 1 (init, always alive, and /proc/4294967297 does not exist), so the
    session was listed as running for ever."""
    url = new_db(tmp, runs=1, phases=1)
    con = sqlite3.connect(url[len("sqlite:///"):])
    with con:
        con.execute("INSERT INTO drain_sessions (session_id, started_at, supervisor_pid)"
                    " VALUES ('s1', '2026-12-01 10:00:00.000000', 4294967297)")
    con.close()
    [s] = listing(url)
    assert (s["session_id"], s["status"]) == ("s1", "interrupted"), s


def test_session_show_names_a_missing_session_and_refuses_a_bad_call(tmp):
    url = new_db(tmp, runs=1)
    r = ctl("--db", url, "session", "show")
    assert r.rc == 1 and "no drain sessions yet" in r.err, r
    r = ctl("--db", url, "session", "show", "drain-20990101-000000-1")
    assert r.rc == 1 and "drain-20990101-000000-1" in r.err, r
    r = ctl("--db", url, "session", "show", "x", "--latest")
    assert r.rc == 2, r
    r = ctl("--db", url, "session", "list", "--json")
    assert r.rc == 0 and json.loads(r.out)["sessions"] == []
    r = ctl("--db", url, "session", "show", "--help")
    assert r.rc == 0 and "--max-fingerprint-repeats 5" in r.out


def test_results_another_program_wrote_with_absurd_figures_are_read_as_unknown(tmp):
    """drain_session_results rows holding an event count of 2^63-1 or -2^63 (summed, they
    overflowed: session list and show failed for good, exit 2, "integer overflow") and a
    duration or a yield of +-infinity (SQLite holds it; `1e999` in its shell): session
    show --json failed, exit 2, saying "a text in it ... is not UTF-8", and the text
    output said "over inf s". Such figures count as unknown: no event, no duration."""
    url = new_db(tmp, runs=2, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
    assert sup.wait() == 0, sup.stderr()
    [sid] = [s["session_id"] for s in listing(url)]
    con = sqlite3.connect(url[len("sqlite:///"):])
    with con:
        con.execute("UPDATE drain_session_results SET telemetry_events_collected = NULL,"
                    " duration_seconds = NULL, telemetry_yield_per_minute = NULL")
    want = show(url)
    with con:
        ids = [a for (a,) in con.execute("SELECT attempt_id FROM drain_session_results"
                                         " ORDER BY attempt_id")]
        for a, events in zip(ids, (2**63 - 1, 2**63 - 1, -2**63, -2**63)):
            con.execute("UPDATE drain_session_results SET telemetry_events_collected = ?,"
                        " duration_seconds = 1e999, telemetry_yield_per_minute = -1e999"
                        " WHERE attempt_id = ?", (events, a))
    con.close()
    [listed] = listing(url)
    assert (listed["session_id"], listed["events"]) == (sid, 0), listed
    got = show(url)
    assert got["summary"] == want["summary"], (got["summary"], want["summary"])
    r = ctl("--db", url, "session", "show")
    assert r.rc == 0 and "inf" not in r.out, r


def test_session_list_columns_line_up_whatever_the_widths(tmp):
    """The table's columns line up under their heads: a start and an end in the database's
    format (26 characters, against columns of 24 made for an earlier one), a longer id or
    time another program wrote, a long stop reason (last, so that it pushes nothing)."""
    url = new_db(tmp, runs=1, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
    assert sup.wait() == 0, sup.stderr()
    con = sqlite3.connect(url[len("sqlite:///"):])
    with con:
        con.execute("INSERT INTO drain_sessions (session_id, started_at, completed_at,"
                    " stop_reason, supervisor_pid) VALUES ('s1-imported-from-elsewhere-0123456'"
                    " || 'x', '2026-12-01T10:00:00.123456+00:00', '2026-12-01 10:00:05',"
                    " 'stop by control request (pid 123): ' || '\u00e9' || 'and so on', 1)")
    con.close()
    r = ctl("--db", url, "session", "list")
    assert r.rc == 0, r
    lines = r.out.strip("\n").split("\n")
    at = [i for i, line in enumerate(lines) if line.startswith("SESSION ")]
    assert len(at) == 1, r.out
    head, rows = lines[at[0]], lines[at[0] + 1:]
    assert head.split() == ["SESSION", "STARTED", "COMPLETED", "ATTEMPTS", "SUCCESSES",
                            "EVENTS", "STOP", "REASON"], head
    assert len(rows) == 2, r.out
    starts = {w: head.index(w) for w in ("STARTED", "COMPLETED", "STOP REASON")}
    ends = {w: head.index(w) + len(w) for w in ("ATTEMPTS", "SUCCESSES", "EVENTS")}
    for row, sid, started, completed, reason in zip(
            rows, [s["session_id"] for s in listing(url)],
            [None, "2026-12-01T10:00:00.123456+00:00"], [None, "2026-12-01 10:00:05"],
            ["drained", "stop by control request (pid 123): \u00e9and so on"]):
        assert row.startswith(sid + " "), (row, sid)
        assert row[starts["STARTED"] - 1] == " " and row[starts["STARTED"]] == "2", row
        if started is not None:
            assert row[starts["STARTED"]:].startswith(started + " "), row
            assert row[starts["COMPLETED"]:].startswith(completed + " "), row
        else:
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ",
                            row[starts["COMPLETED"]:]), row
        for w in ("ATTEMPTS", "SUCCESSES", "EVENTS"):
            assert row[ends[w] - 1].isdigit() and row[ends[w]] == " ", (w, row)
        assert row[starts["STOP REASON"]:] == reason, row


def test_session_show_says_the_handed_back_attempts_apart(tmp, llm):
    """`session show` counted attempts a stop handed back to the queue as failed, as the
    original's summary does, and said nothing more: a drain stopped by the operator read
    as one whose phases failed. Failed keeps the original's count; the handed back are a
    count of their own, in the text and in --json (summary.handed_back)."""
    from supervisor_helpers import gate_check, llm_supervisor
    check, _ = gate_check(tmp)
    url = new_db(tmp, runs=2, phases=1, check=check)
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    try:
        sup.wait_ready()
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL")
                 == [(2,)], 60, what="two attempts at the gate")
        assert sup.ctl("stop", "--now").rc == 0
        sup.wait(60)
    finally:
        sup.kill()
    assert sql(url, "SELECT outcome FROM attempts") == [("supervisor_stopped",)] * 2
    doc = show(url)
    assert (doc["summary"]["failed"], doc["summary"]["handed_back"]) == (2, 2), doc["summary"]
    assert doc["session"]["handed_back"] == 2
    r = ctl("--db", url, "session", "show")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    at = lines.index("  Failed:             2")
    assert lines[at + 1].startswith("  Handed back:        2 (of the failed"), r.out
