"""The worker pool's promises, each against real processes: a worker that dies holding a
phase costs the phase an attempt; dead workers are replaced with exponential backoff; a
crash loop stops respawning until `scale`; `scale --force` stops busy workers; `stop
--now` kills and requeues; `workers` shows the real child processes."""
import json
import os
import signal

from supervisor_helpers import (log_times, new_db, rogue_notes, rogue_supervisor, sql,
                                status_when, wait_for)


def ppid_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_crashed_attempts_count_toward_the_attempt_limit_then_failed(tmp):
    url = new_db(tmp, runs=1, phases=2)
    sup = rogue_supervisor(tmp, url, "crash", "--workers", 1, "--exit-when-drained",
                           "--max-attempts-per-phase", 2, "--max-fingerprint-repeats", 100)
    # Four crashes drain it; a fifth would be a crash loop and it would never drain.
    wait_for(lambda: sup.proc.poll() is not None or "crash loop" in sup.stderr(), 120,
             what="the drain to end")
    assert "crash loop" not in sup.stderr()
    assert sup.wait() == 0, sup.stderr()
    # Each phase was leased twice, each lease died with its worker, then the phase FAILED.
    assert sql(url, "SELECT phase_id, attempt_number, outcome, failure_reason FROM attempts"
               " ORDER BY attempt_id") == [
        ("p0-0", 1, "worker_crashed", "WORKER_CRASHED"),
        ("p0-0", 2, "worker_crashed", "WORKER_CRASHED"),
        ("p0-1", 1, "worker_crashed", "WORKER_CRASHED"),
        ("p0-1", 2, "worker_crashed", "WORKER_CRASHED")]
    assert sql(url, "SELECT phase_id, state, last_failure_reason FROM phases"
               " ORDER BY phase_index") == [("p0-0", "FAILED", "WORKER_CRASHED"),
                                            ("p0-1", "FAILED", "WORKER_CRASHED")]
    assert len(rogue_notes(tmp, event="job")) == 4


def test_dead_workers_are_replaced_with_doubling_backoff_until_a_crash_loop(tmp):
    url = new_db(tmp, runs=0)
    sup = rogue_supervisor(tmp, url, "exit", "--workers", 1, "--allow-empty-db")
    try:
        status_when(sup, lambda s: s["pool"]["crash_loop"] and s["pool"]["live"] == 0,
                    what="a crash loop")
        err = sup.stderr()
        starts = log_times(err, " started (pid ")
        assert len(starts) == 5, err
        assert err.count("warn: worker") == err.count(") exited: status 3, signal 0\n") == 5
        # Each replacement waited at least 0.1 s, 0.2 s, 0.4 s, 0.8 s after the death
        # before it (lower bounds only: a loaded machine makes the gaps longer).
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        for gap, least in zip(gaps, (0.1, 0.2, 0.4, 0.8)):
            assert gap >= least - 0.002, (gaps, err)
        assert "[BREAKER] 5 infrastructure failures in a row, the last: worker 5 (pid " in err
        assert "exited: status 3, signal 0; dispatch paused, not respawning (crash loop)" in err
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_crash_loop_stops_respawning_and_scale_clears_it(tmp):
    url = new_db(tmp, runs=1, phases=2)
    crash = os.path.join(str(tmp), "crash")
    open(crash, "w").close()
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--max-attempts-per-phase", 20,
                           "--max-fingerprint-repeats", 100, env={"ROGUE_CRASH_FILE": crash})
    try:
        sup.wait_ready()
        status_when(sup, lambda s: s["pool"]["crash_loop"] and s["pool"]["live"] == 0,
                    what="crash loop with no worker left")
        assert "crash loop" in sup.stderr()
        r = sup.ctl("status")
        assert "CRASH LOOP" in r.out, r
        crashed = sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'worker_crashed'")
        # The cause is gone; scale is what brings the pool back.
        os.unlink(crash)
        r = sup.ctl("scale", "2")
        assert r.rc == 0, r
        st = status_when(sup, lambda s: s["pool"]["live"] == 2 and not s["pool"]["crash_loop"],
                         what="two workers after scale")
        assert st["pool"]["target"] == 2
        wait_for(lambda: sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") ==
                 [("COMPLETE", 2)], what="the run drained by the new workers")
        # The leases the crashing workers held were closed, and nothing else failed.
        assert sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'worker_crashed'") == \
            crashed
        assert "CRASH LOOP" not in sup.ctl("status").out
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_scale_force_stops_a_busy_worker_and_requeues_its_phase(tmp):
    url = new_db(tmp, runs=2, phases=1)
    sup = rogue_supervisor(tmp, url, "hang", "--workers", 2)
    try:
        sup.wait_ready()
        status_when(sup, lambda s: s["queue"]["in_flight"] == 2, what="two in flight")
        r = sup.ctl("scale", "1", "--force")
        assert r.rc == 0, r
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE outcome IS NOT NULL")
                 == [(1,)], what="one attempt ended")
        [(att, run, outcome)] = sql(url, "SELECT attempt_id, run_id, outcome FROM attempts"
                                    " WHERE outcome IS NOT NULL")
        assert outcome == "scaled_down"
        assert sql(url, "SELECT state FROM phases WHERE run_id = ?", run) == [("QUEUED",)]
        # An attempt is in flight until its end is on disk (with its group's fsync).
        st = status_when(sup, lambda s: s["pool"]["live"] == 1 and
                         s["queue"]["in_flight"] == 1, what="one worker left")
        assert st["pool"]["target"] == 1
        # The other lease was not touched.
        assert st["queue"]["in_flight"] == 1
        assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(1,)]
        assert "scaled from 2 to 1 workers (forced)" in sup.stderr()
    finally:
        sup.stop_now()


def test_scale_without_force_lets_busy_workers_finish(tmp):
    url = new_db(tmp, runs=2, phases=1)
    go = os.path.join(str(tmp), "ws", "go")
    sup = rogue_supervisor(tmp, url, "batch", "--workers", 2, "--exit-when-drained",
                           env={"ROGUE_GO": go})
    sup.wait_ready()
    status_when(sup, lambda s: s["counters"]["rejected_stale"] == 2, what="both leases busy")
    r = sup.ctl("scale", "1")
    assert r.rc == 0, r
    st = sup.status()
    states = sorted(w["state"] for w in st["pool"]["workers"])
    assert states == ["busy", "retiring"], st["pool"]
    assert st["queue"]["in_flight"] == 2
    open(go, "w").close()
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("success", 2)]


def test_stop_now_kills_workers_and_requeues_their_phases(tmp):
    url = new_db(tmp, runs=2, phases=2)
    sup = rogue_supervisor(tmp, url, "hang", "--workers", 2)
    sup.wait_ready()
    status_when(sup, lambda s: s["queue"]["in_flight"] == 2, what="two in flight")
    pids = [w["pid"] for w in sup.status()["pool"]["workers"]]
    r = sup.ctl("stop", "--now")
    assert r.rc == 0, r
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == \
        [("supervisor_stopped", 2)]
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == [("QUEUED", 4)]
    [(reason,)] = sql(url, "SELECT stop_reason FROM drain_sessions")
    assert reason.startswith("stop --now by control request"), reason
    assert sql(url, "SELECT command, args FROM control_log") == [("stop", "--now")]
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or \
            open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z"


def test_workers_lists_the_supervisors_real_children(tmp):
    url = new_db(tmp, runs=2, phases=1)
    sup = rogue_supervisor(tmp, url, "hang", "--workers", 3)
    try:
        sup.wait_ready()
        status_when(sup, lambda s: sorted(w["state"] for w in s["pool"]["workers"]) ==
                    ["busy", "busy", "idle"], what="two busy of three, one idle")
        r = sup.ctl("workers", "--json")
        assert r.rc == 0, r
        body = json.loads(r.out)
        workers = body["workers"]
        assert body["target"] == 3 and body["crash_loop"] is False
        assert len(workers) == 3
        for w in workers:
            assert ppid_of(w["pid"]) == sup.proc.pid
            with open("/proc/%d/cmdline" % w["pid"]) as f:
                assert "rogue_worker.py" in f.read()
        busy = sorted((w["attempt_id"], w["run_id"], w["phase_id"]) for w in workers
                      if w["state"] == "busy")
        assert busy == sql(url, "SELECT attempt_id, run_id, phase_id FROM attempts"
                           " WHERE ended_at IS NULL ORDER BY attempt_id")
        assert [w["state"] for w in workers].count("idle") == 1
        text = sup.ctl("workers")
        assert text.rc == 0
        for w in workers:
            assert str(w["pid"]) in text.out
    finally:
        sup.stop_now()


def test_scale_force_after_scale_stops_the_workers_already_retiring(tmp):
    url = new_db(tmp, runs=3, phases=1)
    sup = rogue_supervisor(tmp, url, "hang", "--workers", 3)
    try:
        sup.wait_ready()
        status_when(sup, lambda s: s["queue"]["in_flight"] == 3, what="three in flight")
        assert sup.ctl("scale", "1").rc == 0
        st = sup.status()
        assert sorted(w["state"] for w in st["pool"]["workers"]) == \
            ["busy", "retiring", "retiring"], st["pool"]
        # The same target again, forced: the two retiring workers go now.
        r = sup.ctl("scale", "1", "--force")
        assert r.rc == 0, r
        st = status_when(sup, lambda s: s["pool"]["live"] == 1 and
                         s["queue"]["in_flight"] == 1, what="one worker left")
        assert sql(url, "SELECT outcome, count(*) FROM attempts WHERE ended_at IS NOT NULL"
                   " GROUP BY 1") == [("scaled_down", 2)]
        assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == \
            [("EXECUTING", 1), ("QUEUED", 2)]
    finally:
        sup.stop_now()


def test_scale_up_keeps_busy_workers_a_scale_down_was_retiring(tmp):
    url = new_db(tmp, runs=2, phases=1)
    sup = rogue_supervisor(tmp, url, "hang", "--workers", 2)
    try:
        sup.wait_ready()
        status_when(sup, lambda s: s["queue"]["in_flight"] == 2, what="two in flight")
        pids = sorted(w["pid"] for w in sup.status()["pool"]["workers"])
        assert sup.ctl("scale", "1").rc == 0
        assert sup.ctl("scale", "2").rc == 0
        st = sup.status()
        assert sorted(w["state"] for w in st["pool"]["workers"]) == ["busy", "busy"]
        assert sorted(w["pid"] for w in st["pool"]["workers"]) == pids
        # Nothing is left to retire: a forced scale to the same size stops nobody.
        assert sup.ctl("scale", "2", "--force").rc == 0
        assert sup.status()["queue"]["in_flight"] == 2
        assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL") == [(0,)]
    finally:
        sup.stop_now()


def test_a_phase_keeps_no_fence_on_an_attempt_that_ended(tmp):
    """phases.current_attempt_id names the attempt in flight, and nothing once it ended:
    requeued (a stop, a crash), FAILED, or left open by a killed supervisor."""
    stale = ("SELECT p.run_id, p.phase_id, p.state, a.outcome FROM phases p"
             " JOIN attempts a ON a.attempt_id = p.current_attempt_id"
             " WHERE a.ended_at IS NOT NULL")
    url = new_db(tmp, runs=2, phases=1)
    sup = rogue_supervisor(tmp, url, "hang", "--workers", 2)
    sup.wait_ready()
    status_when(sup, lambda s: s["queue"]["in_flight"] == 2, what="two in flight")
    assert sql(url, "SELECT count(*) FROM phases WHERE current_attempt_id IS NOT NULL") == \
        [(2,)]
    assert sup.stop_now() == 0, sup.stderr()
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == [("QUEUED", 2)]
    assert sql(url, stale) == []
    assert sql(url, "SELECT count(*) FROM phases WHERE current_attempt_id IS NOT NULL") == \
        [(0,)]

    # Crashes: requeued, then FAILED.
    sup = rogue_supervisor(tmp, url, "crash", "--workers", 1, "--exit-when-drained",
                           "--max-attempts-per-phase", 2, name="crash")
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == [("FAILED", 2)]
    assert sql(url, stale) == []

    # A dry run's attempt left open by a SIGKILLed supervisor, closed by the next one.
    assert sql(url, "SELECT count(*) FROM attempts WHERE dry_run = 1") == [(0,)]
    sup = rogue_supervisor(tmp, url, "hang", "--workers", 1, "--dry-run", "--retry-failed",
                           name="dry")
    status_when(sup, lambda s: s["queue"]["in_flight"] == 1, what="a dry run in flight")
    # Its fence is its open attempt row: the phase's row is not written.
    assert sql(url, "SELECT count(*) FROM phases WHERE current_attempt_id IS NOT NULL") == \
        [(0,)]
    sup.kill()
    sup = rogue_supervisor(tmp, url, "good", "--workers", 1, "--exit-when-drained",
                           "--dry-run", "--retry-failed", name="after")
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT outcome FROM attempts WHERE dry_run = 1 ORDER BY attempt_id")[0] \
        == ("supervisor_restart",)
    assert sql(url, stale) == []


def test_every_live_command_answers_json_with_ok_true(tmp):
    """Each live command's --json result is one object with "ok": true and the database's
    identity, as every offline command's is (on SQLite they had no "ok")."""
    url = new_db(tmp, runs=1, phases=1)
    sup = rogue_supervisor(tmp, url, "hang", "--workers", 1)
    try:
        st = sup.wait_ready()
        for cmd in (["status"], ["workers"], ["pause"], ["resume"], ["scale", "2"],
                    ["metrics"]):
            r = sup.ctl(*cmd, "--json")
            assert r.rc == 0, (cmd, r)
            body = json.loads(r.out)
            assert body["ok"] is True, (cmd, body)
            assert (body["db_url"], body["db_uuid"]) == (st["db_url"], st["db_uuid"]), cmd
    finally:
        sup.stop_now()
