"""The group-commit writer's promises, seen from a scripted worker and an independent
reader: writes are committed when --commit-max are queued or --commit-window-ms after the
first; an ack comes only after its events are committed (never for a failed commit);
events for another attempt or database are refused and counted in status and metrics."""
import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from supervisor_helpers import (new_db, rogue_notes, rogue_supervisor, sql, status_when,
                                wait_for)


def event_seqs(url):
    return [s for (s,) in sql(url, "SELECT seq FROM events ORDER BY attempt_id, seq")]


def test_commit_max_commits_a_full_queue_and_the_window_holds_the_rest(tmp):
    url = new_db(tmp, runs=1, phases=1)
    go = os.path.join(str(tmp), "ws", "go")
    sup = rogue_supervisor(tmp, url, "batch", "--workers", 1, "--exit-when-drained",
                           "--commit-max", 2, "--commit-window-ms", 10000,
                           env={"ROGUE_GO": go})
    # The worker sent events 1, 2, 3 and then a stale one; once the stale one is counted,
    # the three before it have been queued.
    # A commit is counted once it is on disk (with --synchronous full, after its fsync).
    st = status_when(sup, lambda s: s["counters"]["rejected_stale"] == 1 and
                     s["counters"]["commits"] >= 2, what="the fence event")
    assert st["commit_max"] == 2 and st["commit_window_ms"] == 10000
    # Two writes filled the queue and were committed at once (the lease had a round's
    # commit of its own before); the third waits.
    assert event_seqs(url) == [1, 2]
    assert st["counters"]["commits"] == 2
    assert st["counters"]["events_committed"] == 2
    assert [n["ack"] for n in rogue_notes(tmp, event="ack")] == []
    open(go, "w").close()
    assert sup.wait() == 0, sup.stderr()
    assert event_seqs(url) == [1, 2, 3]
    assert sql(url, "SELECT outcome, events_committed FROM attempts") == [("success", 3)]


def test_commit_window_commits_a_queue_that_never_fills(tmp):
    url = new_db(tmp, runs=1, phases=1)
    go = os.path.join(str(tmp), "ws", "go")
    sup = rogue_supervisor(tmp, url, "batch", "--workers", 1, "--exit-when-drained",
                           "--commit-max", 100000, "--commit-window-ms", 50,
                           env={"ROGUE_GO": go})
    try:
        status_when(sup, lambda s: s["counters"]["rejected_stale"] == 1, what="the fence")
        # Nothing more comes from the worker until `go`: only the window commits these.
        wait_for(lambda: event_seqs(url) == [1, 2, 3], 30, what="the window's commit")
        st = status_when(sup, lambda s: s["counters"]["commits"] >= 2, what="its count")
        # The lease's round, then the window's.
        assert st["counters"]["commits"] == 2
        assert st["queue"]["in_flight"] == 1
    finally:
        open(go, "w").close()
    assert sup.wait() == 0, sup.stderr()


def test_acks_come_only_after_the_commit(tmp):
    url = new_db(tmp, runs=2, phases=2)
    sup = rogue_supervisor(tmp, url, "ackcheck", "--workers", 2, "--exit-when-drained",
                           "--commit-window-ms", 200)
    assert sup.wait() == 0, sup.stderr()
    acks = rogue_notes(tmp, event="ack")
    assert len({n["att"] for n in acks}) == 4
    for n in acks:
        # When the worker read its ack, an independent reader saw every event up to it.
        assert n["rows"][:n["ack"]] == list(range(1, n["ack"] + 1)), n
    assert sql(url, "SELECT count(*) FROM events") == [(12,)]


def test_a_failed_commit_sends_no_ack_and_is_retried(tmp):
    url = new_db(tmp, runs=1, phases=1)
    path = url[len("sqlite:///"):]
    go = os.path.join(str(tmp), "ws", "go")
    sup = rogue_supervisor(tmp, url, "ackcheck", "--workers", 1, "--exit-when-drained",
                           env={"ROGUE_GO": go})
    status_when(sup, lambda s: s["queue"]["in_flight"] == 1, what="the lease")
    # Another process holds SQLite's write lock until told to let go.
    holder = subprocess.Popen([sys.executable, "-c", """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
""", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        open(go, "w").close()
        wait_for(lambda: "database is locked" in sup.stderr(), 60, what="a failed commit")
        assert rogue_notes(tmp, event="ack") == []
        assert sql(url, "SELECT count(*) FROM events") == [(0,)]
    finally:
        holder.communicate("\n", timeout=30)
    assert sup.wait() == 0, sup.stderr()
    acks = rogue_notes(tmp, event="ack")
    assert acks and acks[-1]["ack"] == 3
    for n in acks:
        assert n["rows"][:n["ack"]] == list(range(1, n["ack"] + 1)), n
    assert event_seqs(url) == [1, 2, 3]


def metrics(sup):
    r = sup.ctl("metrics")
    assert r.rc == 0, r
    out = {}
    for fam in text_string_to_metric_families(r.out):
        for s in fam.samples:
            key = s.name + "".join("{%s=%s}" % kv for kv in sorted(s.labels.items()))
            out[key] = s.value
    return out


def test_stale_and_foreign_events_are_counted_in_status_and_metrics(tmp):
    url = new_db(tmp, runs=1, phases=3)
    sup = rogue_supervisor(tmp, url, "abuse", "--workers", 1)
    try:
        st = status_when(sup, lambda s: s["counters"]["results"] == 3 and
                         s["queue"]["in_flight"] == 0, what="three results committed")
        c = st["counters"]
        # Per attempt: one event naming another database, one for another attempt, one
        # valid event and its repeat.
        assert (c["rejected_wrong_uuid"], c["rejected_stale"]) == (3, 3)
        assert (c["events_committed"], c["events_duplicate"]) == (3, 3)
        assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(3,)]
        text = sup.ctl("status").out
        assert "events: 3 committed, 3 duplicate; rejected: 3 wrong database, 3 stale attempt" \
            in text, text
        m = metrics(sup)
        assert m["autopack_events_rejected_total{reason=wrong_database}"] == 3
        assert m["autopack_events_rejected_total{reason=stale_attempt}"] == 3
        assert sum(v for k, v in m.items()
                   if k.startswith("autopack_events_committed_total{")) == 3
        assert m["autopack_events_duplicate_total"] == 3
        assert sum(v for k, v in m.items() if k.startswith("autopack_attempts_total{")) == 3
        assert m["autopack_attempts_dispatched_total"] == c["dispatched"] == 3
        assert m["autopack_commits_total"] == c["commits"] >= 1
        assert sum(v for k, v in m.items() if k.startswith("autopack_workers{")) == 1
        assert m["autopack_queue_in_flight_attempts"] == 0
        assert m["autopack_queue_eligible_phases"] == 0
        assert m["autopack_worker_crashes_total"] == 0
    finally:
        sup.stop_now()
    err = sup.stderr()
    assert err.count("REJECTED event") == 3, err
    assert "00000000-0000-4000-8000-000000000000" in err


def test_a_result_whose_final_seq_names_events_never_received_is_recorded_as_a_gap(tmp):
    url = new_db(tmp, runs=1, phases=1)
    sup = rogue_supervisor(tmp, url, "gap", "--workers", 1, "--exit-when-drained")
    assert sup.wait() == 0, sup.stderr()
    # Seq 2 never came, nor seq 4 the result names as the last: two events missing. The
    # gap is an error event (seq 0) of the attempt, next to the events that did come.
    assert sql(url, "SELECT seq, kind, level FROM events ORDER BY seq") == [
        (0, "log", "error"), (1, "llm_usage", None), (3, "llm_usage", None)]
    [(msg,)] = sql(url, "SELECT message FROM events WHERE seq = 0")
    assert msg == ("telemetry gap: the result's final seq is 4, events up to seq 3 arrived,"
                   " 2 missing")
    assert "telemetry gap" in sup.stderr()
    assert sql(url, "SELECT outcome FROM attempts") == [("success",)]


def test_events_missing_are_counted_in_status_and_metrics(tmp):
    url = new_db(tmp, runs=1, phases=2)
    sup = rogue_supervisor(tmp, url, "gap", "--workers", 1)
    try:
        st = status_when(sup, lambda s: s["counters"]["results"] == 2 and
                         s["queue"]["in_flight"] == 0, what="two results committed")
        assert st["counters"]["events_missing"] == 4
        assert metrics(sup)["autopack_events_missing_total"] == 4
    finally:
        sup.stop_now()
