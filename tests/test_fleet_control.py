"""Live control of several supervisors on one PostgreSQL database (docs/postgresql.md,
"Several hosts"): writes that queue work wake every live supervisor, cancel and metrics
go through the database, and the drain rules' decisions of one supervisor (run stops,
fingerprint counts, triage) hold for the others of its session."""
import json
import os

import pytest

from conftest import ctl, preload
from supervisor_helpers import (Supervisor, gate_check, llm_supervisor, make_plan,
                                sql, wait_for)


def new_pg_db(tmp, url, runs, phases, **kw):
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r
    plan = make_plan(os.path.join(str(tmp), "plan.json"), runs, 1, phases, **kw)
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 0, r
    return url


def ids_of(url, sups):
    by_pid = dict(sql(url, "SELECT pid, supervisor_id FROM supervisors"))
    return [by_pid[s.proc.pid] for s in sups]


def attempts_by_run(url, run):
    return sql(url, "SELECT phase_id, outcome, supervisor_id FROM attempts WHERE run_id = ?"
               " ORDER BY attempt_id", run)


def session_state(url):
    [(state,)] = sql(url, "SELECT state_json FROM drain_sessions")
    return json.loads(state)


def test_import_and_retry_wake_every_live_supervisor(tmp, pg_url):
    """run import and retry write in one transaction and wake every live supervisor (named
    in the output), which take the work at once."""
    url = new_pg_db(tmp, pg_url, runs=2, phases=2)
    sql(url, "UPDATE phases SET state = 'FAILED' WHERE run_id = 'run-001'")
    # A long lease: the periodic refresh is far apart, the notification is what wakes them.
    sups = [Supervisor(tmp, url, "--workers", 1, "--dry-run", "--lease-timeout", 600,
                       name="sup%d" % i) for i in range(2)]
    try:
        for s in sups:
            s.wait_ready()
        ids = sorted(ids_of(url, sups))
        wait_for(lambda: len(attempts_by_run(url, "run-000")) == 2, what="run-000 visited")

        path = make_plan(os.path.join(str(tmp), "late.json"), 1, 1, 3)
        with open(path) as f:
            plan = json.load(f)
        plan["runs"][0]["run_id"] = "late"
        with open(path, "w") as f:
            json.dump(plan, f)
        r = ctl("--db", url, "run", "import", path, "--json")
        assert r.rc == 0, r
        out = json.loads(r.out)
        assert out["runs"] == ["late"] and sorted(out["supervisors_woken"]) == ids, out
        wait_for(lambda: len(attempts_by_run(url, "late")) == 3, what="late run visited")

        r = ctl("--db", url, "retry", "--run", "run-001", "--note", "fleet", "--json")
        assert r.rc == 0, r
        out = json.loads(r.out)
        assert out["via"] == "database" and out["count"] == 2, out
        assert sorted(out["supervisors_woken"]) == ids, out
        wait_for(lambda: len(attempts_by_run(url, "run-001")) == 2, what="retried visited")
        assert [p for (p, _, _) in attempts_by_run(url, "run-001")] == ["p0-0", "p0-1"]
        rows = sql(url, "SELECT args, result FROM control_log WHERE command = 'retry'"
                   " ORDER BY id")
        assert [a for a, _ in rows] == ["run-001 p0-0", "run-001 p0-1"]
        assert all("via database" in res and "note: fleet" in res for _, res in rows), rows

        # Text output names the supervisors woken; with none running it says so.
        sql(url, "UPDATE phases SET state = 'FAILED' WHERE run_id = 'late' AND phase_id = 'p0-0'")
        r = ctl("--db", url, "retry", "late", "p0-0")
        assert r.rc == 0 and "woke 2 live supervisor(s) of %s (%d, %d)" % (
            url, ids[0], ids[1]) in r.out, r
        r = ctl("--db", url, "stop")
        assert r.rc == 0, r
        for s in sups:
            assert s.wait(timeout=60) == 0, s.stderr()
        sql(url, "UPDATE phases SET state = 'FAILED' WHERE run_id = 'late' AND phase_id = 'p0-1'")
        r = ctl("--db", url, "retry", "late", "p0-1")
        assert r.rc == 0 and "no autopack-supervisor is running on %s" % url in r.out, r
    finally:
        for s in sups:
            s.kill()


def parse_metrics(text):
    from prometheus_client.parser import text_string_to_metric_families
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_cancel_and_metrics_through_the_database(tmp, pg_url, llm):
    """cancel reaches the supervisor running the phase (a queued one: the first live
    supervisor); metrics merges every supervisor's exposition, labelled by supervisor."""
    check, go = gate_check(tmp)
    url = new_pg_db(tmp, pg_url, runs=2, phases=2, check=check)
    sups = [llm_supervisor(tmp, url, llm, "--workers", 1, "--max-attempts-per-phase", 1,
                           name="sup%d" % i) for i in range(2)]
    try:
        for s in sups:
            s.wait_ready()
        ids = ids_of(url, sups)
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL")
                 == [(2,)], what="both supervisors run a phase")
        [(run, phase, holder)] = sql(url, "SELECT run_id, phase_id, supervisor_id FROM attempts"
                                     " WHERE ended_at IS NULL AND supervisor_id = ?", ids[1])
        r = ctl("--db", url, "cancel", run, phase, "--json")
        assert r.rc == 0, r
        answers = json.loads(r.out)["answers"]
        assert [a["supervisor_id"] for a in answers] == [holder] and answers[0]["ok"], answers
        # The reply as an object beside the text it came as.
        assert answers[0]["reply"]["state"] == "cancelling", answers
        assert json.loads(answers[0]["result"]) == answers[0]["reply"], answers
        wait_for(lambda: sql(url, "SELECT state FROM phases WHERE run_id = ? AND phase_id = ?",
                             run, phase) == [("SKIPPED",)], what="cancelled phase SKIPPED")
        assert sql(url, "SELECT outcome FROM attempts WHERE run_id = ? AND phase_id = ?",
                   run, phase) == [("cancelled",)]
        # A queued phase: moved to SKIPPED by the first live supervisor.
        other = "run-001" if run == "run-000" else "run-000"
        r = ctl("--db", url, "cancel", other, "p0-1")
        # Said in a line, not the reply's JSON.
        assert r.rc == 0 and "supervisor %d: %s/p0-1: SKIPPED\n" % (min(ids), other) in r.out, r
        assert sql(url, "SELECT state FROM phases WHERE run_id = ? AND phase_id = 'p0-1'",
                   other) == [("SKIPPED",)]
        r = ctl("--db", url, "cancel", other, "nope")
        assert r.rc == 1 and "nope" in r.out + r.err, r

        r = ctl("--db", url, "metrics")
        assert r.rc == 0, r
        fams = parse_metrics(r.out)
        info = fams["autopack_build_info"].samples
        assert sorted(int(s.labels["supervisor"]) for s in info) == sorted(ids), r.out[:3000]
        for fam in fams.values():
            assert all("supervisor" in s.labels for s in fam.samples), fam
        r = ctl("--db", url, "metrics", "--supervisor", ids[1])
        assert r.rc == 0, r
        info = parse_metrics(r.out)["autopack_build_info"].samples
        assert [int(s.labels["supervisor"]) for s in info] == [ids[1]]

        # watch follows one supervisor through the database; its reads leave no rows.
        r = ctl("--db", url, "watch", "--count", 2, "--interval", "0.2", "--json",
                "--supervisor", ids[1])
        assert r.rc == 0, r
        lines = [json.loads(x) for x in r.out.splitlines()]
        assert len(lines) == 2 and all(x["workers"]["wanted"] == 1 for x in lines), lines
        r = ctl("--db", url, "watch", "--count", 1)
        assert r.rc == 0 and "workers 1/1" in r.out, r
        assert sql(url, "SELECT count(*) FROM supervisor_commands WHERE command = 'status'") \
            == [(0,)]
    finally:
        open(go, "w").close()
        r = ctl("--db", url, "stop", "--now")
        for s in sups:
            s.wait(timeout=60)
            s.kill()
    r = ctl("--db", url, "metrics")
    assert r.rc == 1 and "no autopack-supervisor is running on %s" % url in r.err, r
    r = ctl("--db", url, "cancel", "run-000", "p0-1")
    assert r.rc == 1 and "no autopack-supervisor is running on %s" % url in r.err, r
    r = ctl("--db", url, "watch", "--count", 1)
    assert r.rc == 1 and "no autopack-supervisor is running on %s" % url in r.err, r


def test_run_stops_triage_and_fingerprint_counts_hold_across_supervisors(tmp, pg_url, llm):
    """Supervisor A samples runs X and Y and stops Y when the fingerprint they both fail
    with is seen twice (--max-fingerprint-repeats 2). B, joining A's session, never runs
    Y, does not sample X again, and counts on from A's count: its limit of 3 stops the
    first run it samples. A retry of Y releases it for A again."""
    check, go = gate_check(tmp)
    url = new_pg_db(tmp, pg_url, runs=4, phases=2, check=check + "; exit 1")
    a = llm_supervisor(tmp, url, llm, "--workers", 2, "--max-attempts-per-phase", 1,
                       "--max-fingerprint-repeats", 2, name="supA")
    b = None
    try:
        a.wait_ready()
        [a_id] = ids_of(url, [a])
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL")
                 == [(2,)], what="A runs two phases")
        r = ctl("--db", url, "pause", "--supervisor", a_id)
        assert r.rc == 0, r
        open(go, "w").close()
        wait_for(lambda: len(session_state(url).get("stopped_runs", [])) == 1,
                 what="A stopped a run")
        [first, second] = [run for (run,) in sql(url, "SELECT run_id FROM attempts"
                                                 " ORDER BY ended_at, attempt_id")]
        state = session_state(url)
        assert state["stopped_runs"] == [second] and sorted(state["sampled_runs"]) == \
            sorted([first, second]), state
        [fp] = state["fingerprint_counts"]

        b = llm_supervisor(tmp, url, llm, "--workers", 1, "--max-attempts-per-phase", 1,
                           "--exit-when-drained", name="supB")
        assert b.wait(timeout=120) == 5, b.stderr()
        [b_id] = ids_of(url, [b])
        assert "joining drain session" in b.stderr()
        runs = ["run-%03d" % i for i in range(4)]
        fresh = [run for run in runs if run not in (first, second)]
        # The run A stopped: A's one attempt. The run A sampled: not sampled again by B.
        assert attempts_by_run(url, second) == [("p0-0", "failed", a_id)]
        assert attempts_by_run(url, first) == [("p0-0", "failed", a_id),
                                               ("p0-1", "failed", b_id)]
        assert "[SAMPLE-OK] %s" % first not in b.stderr()
        # B's own samples: the session's count reached B's limit (3) at the first one.
        for run in fresh:
            assert attempts_by_run(url, run) == [("p0-0", "failed", b_id)], run
        state = session_state(url)
        assert state["fingerprint_counts"] == {fp: 5}, state
        assert sorted(state["stopped_runs"]) == runs, state
        assert sorted(state["sampled_runs"]) == runs, state

        # A retry of Y releases it in the session: A, resumed, runs it again.
        r = ctl("--db", url, "retry", "--run", second, "--json")
        assert r.rc == 0, r
        assert json.loads(r.out)["supervisors_woken"] == [a_id], r.out
        assert second not in session_state(url)["stopped_runs"]
        r = ctl("--db", url, "resume", "--supervisor", a_id)
        assert r.rc == 0, r
        wait_for(lambda: len(attempts_by_run(url, second)) == 2, what="Y run again by A")
        assert attempts_by_run(url, second)[1][0::2] == ("p0-0", a_id)
        assert "released by a retry" in a.stderr()
    finally:
        ctl("--db", url, "stop", "--now")
        a.wait(timeout=60)
        a.kill()
        if b is not None:
            b.kill()


def test_a_run_stopped_elsewhere_before_it_was_read_here_is_left_out_of_the_drain(
        tmp, pg_url, llm):
    """Supervisor A joins B's session while B runs the only run's first phase: A's queues
    leave the run out (held elsewhere). B's failure stops the run (--max-fingerprint-repeats
    1) in the commit that closes the attempt, so A reads the stop before it ever reads the
    run's queued phase, then reads that phase too: it is not counted as queued, and A ends
    drained instead of waiting for a phase no supervisor may start."""
    check, go = gate_check(tmp)
    url = new_pg_db(tmp, pg_url, runs=1, phases=2, check=check + "; exit 1")
    b = llm_supervisor(tmp, url, llm, "--workers", 1, "--max-attempts-per-phase", 1,
                       "--max-fingerprint-repeats", 1, "--exit-when-drained", name="supB")
    a = None
    try:
        b.wait_ready()
        [b_id] = ids_of(url, [b])
        wait_for(lambda: sql(url, "SELECT run_id, phase_id FROM attempts"
                             " WHERE ended_at IS NULL") == [("run-000", "p0-0")],
                 what="B runs the first phase")
        a = llm_supervisor(tmp, url, llm, "--workers", 1, "--max-attempts-per-phase", 1,
                           "--exit-when-drained", name="supA")
        a.wait_ready()
        wait_for(lambda: "waiting for 1 attempt(s) open elsewhere" in a.stderr(),
                 what="A waits for B's attempt")
        assert "joining drain session" in a.stderr()
        open(go, "w").close()
        assert b.wait(timeout=60) == 5, b.stderr()
        assert session_state(url)["stopped_runs"] == ["run-000"]
        assert a.wait(timeout=30) == 5, a.stderr()
        assert attempts_by_run(url, "run-000") == [("p0-0", "failed", b_id)]
        assert sql(url, "SELECT phase_id, state FROM phases ORDER BY phase_id") == \
            [("p0-0", "FAILED"), ("p0-1", "QUEUED")]
    finally:
        open(go, "w").close()
        for s in (a, b):
            if s is not None:
                s.kill()


def test_a_supervisor_ending_keeps_what_another_saved_since_it_last_read_the_state(
        tmp, pg_url, llm):
    """Supervisor A has drained its run and idles in the session. Another supervisor of the
    session saves a run stop and a fingerprint count in a group commit (the test's
    transaction, holding the session's row) that A has not read when A is stopped: A's
    end, which saves its report with the session's state, waits for that row and merges
    into what was saved instead of writing its own view over it (which lost the stop: a
    supervisor still draining then took the run as released by a retry and ran it)."""
    import signal

    import pg_cluster
    url = new_pg_db(tmp, pg_url, runs=1, phases=1)
    a = llm_supervisor(tmp, url, llm, "--workers", 1, name="supA")
    other = pg_cluster.connect(url)
    try:
        a.wait_ready()
        wait_for(lambda: session_state(url).get("sampled_runs") == ["run-000"],
                 what="A drains its run")
        cur = other.cursor()
        cur.execute("BEGIN")
        cur.execute("SELECT state_json FROM drain_sessions FOR NO KEY UPDATE")
        [(text,)] = cur.fetchall()
        state = json.loads(text)
        state.update(fingerprint_counts={"fp-elsewhere": 1},
                     stopped_fingerprints=["fp-elsewhere"], stopped_runs=["run-elsewhere"])
        cur.execute("UPDATE drain_sessions SET state_json = %s", (json.dumps(state),))
        a.signal(signal.SIGTERM)
        wait_for(lambda: sql(url, "SELECT count(*) FROM pg_stat_activity"
                             " WHERE datname = current_database()"
                             " AND wait_event_type = 'Lock'") == [(1,)],
                 what="A waits for the session's row")
        cur.execute("COMMIT")
        assert a.wait(timeout=60) == 0, a.stderr()
        state = session_state(url)
        assert state["stopped_runs"] == ["run-elsewhere"], state
        assert state["stopped_fingerprints"] == ["fp-elsewhere"], state
        assert state["fingerprint_counts"] == {"fp-elsewhere": 1}, state
        assert state["sampled_runs"] == ["run-000"], state
        assert state["end"]["exit_status"] == 0, state
    finally:
        other.close()
        a.kill()


def test_a_command_that_becomes_visible_after_a_later_one_is_still_run(tmp, pg_url):
    """Two commands sent at once from two hosts: the first's INSERT took the lower id but
    became visible only after the second's (its commit was slow). The supervisor, which
    ran the second already, still runs the first when it appears and answers it."""
    import pg_cluster
    url = new_pg_db(tmp, pg_url, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--lease-timeout", 5)
    slow = pg_cluster.connect(url)
    try:
        sup.wait_ready()
        [sid] = ids_of(url, [sup])
        cur = slow.cursor()
        cur.execute("BEGIN")
        cur.execute("INSERT INTO supervisor_commands (command, args, created_at, created_by)"
                    " VALUES ('pause', '[]', clock_timestamp() AT TIME ZONE 'UTC', 'slow')"
                    " RETURNING command_id")
        [(first,)] = cur.fetchall()
        r = ctl("--db", url, "metrics")
        assert r.rc == 0 and "supervisor=\"%d\"" % sid in r.out, r
        cur.execute("COMMIT")
        cur.execute("NOTIFY autopack_control")
        wait_for(lambda: sql(url, "SELECT ok FROM supervisor_command_results"
                             " WHERE command_id = ? AND supervisor_id = ?", first, sid)
                 == [(1,)], timeout=60, what="the first command answered")
        assert sup.status()["paused"] is True
    finally:
        slow.close()
        sup.kill()


def rename_run(url, old, new):
    """Give run `old` the id `new` as another program would (the checks of the keys
    that name it are the server's triggers: off for this session)."""
    import pg_cluster
    con = pg_cluster.connect(url)
    try:
        cur = con.cursor()
        cur.execute("BEGIN")
        cur.execute("SET LOCAL session_replication_role = replica")
        for sql_text in ("UPDATE runs SET id = %s WHERE id = %s",
                         "UPDATE tiers SET run_id = %s WHERE run_id = %s",
                         "UPDATE phases SET run_id = %s WHERE run_id = %s"):
            cur.execute(sql_text, (new, old))
        cur.execute("COMMIT")
    finally:
        con.close()


# A run id another program wrote, with characters JSON writes escaped.
ESCAPED_RUN = 'run "0" \\ of the original'


def test_a_run_another_supervisor_stopped_is_not_claimed_whatever_its_id(tmp, pg_url, llm):
    """A run whose id JSON writes escaped (a '"', a '\\'), which another supervisor stops
    in the session's saved state while this one runs its first phase: its next phase is
    not started here. The stop is read in the group commit that closes the first phase,
    and the claim, which checks the saved state too, finds the id as JSON writes it
    ("run \\"0\\" \\\\ …") in the saved state's text."""
    check, go = gate_check(tmp)
    url = new_pg_db(tmp, pg_url, runs=1, phases=2, check=check)
    rename_run(url, "run-000", ESCAPED_RUN)
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--lease-timeout", 60,
                         "--exit-when-drained")
    try:
        sup.wait_ready()
        wait_for(lambda: attempts_by_run(url, ESCAPED_RUN) == [("p0-0", None, ids_of(
            url, [sup])[0])], what="its first phase running")
        state = session_state(url)
        state["stopped_runs"] = [ESCAPED_RUN]
        sql(url, "UPDATE drain_sessions SET state_json = ?", json.dumps(state))
        open(go, "w").close()
        assert sup.wait(timeout=120) == 5, sup.stderr()
    finally:
        open(go, "w").close()
        sup.kill()
    assert [a[:2] for a in attempts_by_run(url, ESCAPED_RUN)] == [("p0-0", "success")]
    assert sql(url, "SELECT state FROM phases WHERE phase_id = 'p0-1'") == [("QUEUED",)]


def test_a_retry_releases_a_stopped_run_whatever_its_id(tmp, pg_url):
    """A retry of a run whose id JSON writes escaped removes it from the stopped and
    deprioritised runs of the unfinished session, as it does any other (the release
    looked for the id as it is in the saved state's text, did not find it, and left the
    run stopped for the session)."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=1)
    rename_run(url, "run-000", ESCAPED_RUN)
    sql(url, "UPDATE phases SET state = 'FAILED', last_failure_reason = 'CHECK_FAILED'")
    sql(url, "INSERT INTO drain_sessions (session_id, started_at, state_json)"
             " VALUES ('s1', clock_timestamp() AT TIME ZONE 'UTC', ?)",
        json.dumps({"stopped_runs": [ESCAPED_RUN, "other"],
                    "deprioritized_runs": [ESCAPED_RUN]}))
    r = ctl("--db", url, "retry", "--run", ESCAPED_RUN)
    assert r.rc == 0, r
    assert sql(url, "SELECT state FROM phases") == [("QUEUED",)]
    state = session_state(url)
    assert state["stopped_runs"] == ["other"] and state["deprioritized_runs"] == [], state


# A part of the text of a claim's statement (common/store/pg/store_fleet.c), which no other
# statement holds.
CLAIM_STATEMENT = "AS w(i INTEGER, run_id TEXT, phase_id TEXT, pid BIGINT)"


@pytest.mark.parametrize("run", [ESCAPED_RUN, "run-000"])
def test_a_claim_finds_a_run_stopped_after_its_supervisor_read_the_state(tmp, pg_url, llm,
                                                                        run):
    """The claim itself checks the session's saved state: a run another supervisor stops
    after this one read the state and chose the run, and before its claim statement runs,
    is not started. The supervisor is held at its claim statement (pq-shim.so's gate)
    while the test stops the run; let go, its claim opens no attempt, and with nothing
    else to drain it ends drained (exit 5). An id JSON writes escaped (a '"', a '\\') is
    found in the saved state too, as the plain one is."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=1)
    if run != "run-000":
        rename_run(url, "run-000", run)
    gate = os.path.join(str(tmp), "gate")
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--lease-timeout", 60,
                         "--exit-when-drained",
                         env=preload("pq-shim.so", AUTOPACK_PQ_SHIM_GATE=gate,
                                     AUTOPACK_PQ_SHIM_GATE_MATCH=CLAIM_STATEMENT))
    try:
        wait_for(lambda: os.path.exists(gate + ".held") or sup.proc.poll() is not None,
                 60, what="the supervisor held at its claim")
        assert sup.proc.poll() is None, sup.stderr()
        [(state,)] = sql(url, "SELECT state_json FROM drain_sessions")
        state = json.loads(state) if state else {}
        state["stopped_runs"] = [run]
        sql(url, "UPDATE drain_sessions SET state_json = ?", json.dumps(state))
        open(gate, "w").close()
        assert sup.wait(timeout=60) == 5, sup.stderr()
    finally:
        open(gate, "w").close()
        sup.kill()
    assert attempts_by_run(url, run) == []
    assert sql(url, "SELECT state FROM phases") == [("QUEUED",)]


def test_a_dry_run_claim_visits_a_run_the_saved_state_stopped(tmp, pg_url):
    """A dry run judges nothing and reads no saved state: a run the session's saved state
    names stopped (written while the supervisor is held at its claim) is visited all the
    same, and the drain ends (exit 0). Before, the claim passed over the run as held back,
    the supervisor, which never reads why, tried it again and again (four commits a
    second) and never ended."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=1)
    gate = os.path.join(str(tmp), "gate")
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     env=preload("pq-shim.so", AUTOPACK_PQ_SHIM_GATE=gate,
                                 AUTOPACK_PQ_SHIM_GATE_MATCH=CLAIM_STATEMENT))
    try:
        wait_for(lambda: os.path.exists(gate + ".held") or sup.proc.poll() is not None,
                 60, what="the supervisor held at its claim")
        assert sup.proc.poll() is None, sup.stderr()
        sql(url, "UPDATE drain_sessions SET state_json = ?",
            json.dumps({"stopped_runs": ["run-000"]}))
        open(gate, "w").close()
        assert sup.wait(timeout=60) == 0, sup.stderr()
    finally:
        open(gate, "w").close()
        sup.kill()
    assert sql(url, "SELECT phase_id, outcome FROM attempts") == [("p0-0", "dry_run")]
