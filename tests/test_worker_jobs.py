"""A worker holding its next job (--worker-jobs 2): while phases are short, a busy worker
is also sent the job of a durable lease opened ahead, and runs it when its own ends, with
no sleep between the two. A worker killed holding two ends both attempts (the one it ran
as a crash, the one it held as not started, both phases run again elsewhere, neither run
twice); a cancel of the held phase ends it as cancelled; a pause or a stop lets it run,
as the attempt before it; a supervisor killed while workers hold two leaves a database
the next one drains and checks clean; a held job leaves only once its lease is
durable."""
import json
import os
import signal

from conftest import ctl, preload
from supervisor_helpers import (Supervisor, new_db, rogue_notes, rogue_supervisor, sql,
                                wait_for)
from test_lease_ahead import stopped, thaw, unread


def held_drain(tmp, *args):
    """A fast dry-run drain of 20,000 phases, 4 workers holding two jobs each, its
    workers stopped (SIGSTOP) once one of them holds a job queued behind its own and
    everything they sent is handled: (url, supervisor, worker pids, that worker's status
    entry). A stop that finds no worker holding two is undone and tried again."""
    url = new_db(tmp, runs=2000, phases=10)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--worker-jobs", 2,
                     "--log-level", "debug", *args)
    sup.wait_ready()
    wait_for(lambda: sup.stderr().count("queued on worker") > 20, 60, what="jobs queued")
    pids = [w["pid"] for w in sup.status()["pool"]["workers"]]

    def settled():
        if not all(stopped(pid) for pid in pids) or unread(pids) != 0:
            return None
        st = sup.status()
        if st["writer_queue_writes"] != 0:
            return None
        return ([w for w in st["pool"]["workers"] if w["queued_attempt_id"] != 0],)

    for _ in range(40):
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        holding, = wait_for(settled, 30, what="workers stopped, settled")
        if holding:
            return url, sup, pids, holding[0]
        thaw(pids)
        wait_for(lambda: sup.stderr().count("queued on worker") > 0, 10)
    raise AssertionError("no worker held two jobs in 40 stops of the workers")


def attempt(url, att):
    return sql(url, "SELECT run_id, phase_id, outcome, worker_pid, message FROM attempts"
                    " WHERE attempt_id = ?", att)[0]


def each_phase_ran_once(url):
    """Every phase has exactly one dry-run attempt in the last session, and no attempt is
    open."""
    last = "session_id = (SELECT session_id FROM attempts ORDER BY attempt_id DESC LIMIT 1)"
    assert sql(url, "SELECT count(*) FROM (SELECT 1 FROM attempts WHERE outcome = 'dry_run'"
                    " AND " + last + " GROUP BY run_id, phase_id HAVING count(*) != 1)") == [
        (0,)]
    assert sql(url, "SELECT count(DISTINCT run_id || '/' || phase_id) FROM attempts"
                    " WHERE outcome = 'dry_run' AND " + last) == [(20000,)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]


def db_checks_clean(url):
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    assert sql(url, "PRAGMA foreign_key_check") == []


def test_fast_phases_are_held_two_a_worker_and_each_runs_once(tmp):
    url = new_db(tmp, runs=300, phases=10)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--worker-jobs", 2,
                     "--exit-when-drained", "--log-level", "debug")
    assert sup.wait() == 0, sup.stderr()
    assert sup.stderr().count("queued on worker") > 300, sup.stderr()[-2000:]
    assert sql(url, "SELECT outcome, count(*), count(worker_pid) FROM attempts"
                    " GROUP BY outcome") == [("dry_run", 3000, 3000)]
    assert sql(url, "SELECT count(DISTINCT run_id || '/' || phase_id) FROM attempts") == [
        (3000,)]


def test_a_worker_killed_holding_two_jobs_ends_both_and_both_phases_run_again(tmp):
    url, sup, pids, w = held_drain(tmp, "--exit-when-drained")
    cur, queued = w["attempt_id"], w["queued_attempt_id"]
    try:
        os.kill(w["pid"], signal.SIGKILL)
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE attempt_id IN (?, ?)"
                                  " AND ended_at IS NOT NULL", cur, queued) == [(2,)],
                 30, what="both attempts ended")
    finally:
        thaw([pid for pid in pids if pid != w["pid"]])
    assert sup.wait(timeout=300) == 0, sup.stderr()[-3000:]
    run, phase, outcome, pid, _ = attempt(url, cur)
    assert (outcome, pid) == ("worker_crashed", w["pid"])
    qrun, qphase, qoutcome, qpid, qmsg = attempt(url, queued)
    assert (qoutcome, qpid) == ("supervisor_stopped", None)
    assert qmsg.startswith("not started: its worker pid %d ended" % w["pid"]), qmsg
    # Both phases ran again on another worker, once; no phase ran twice.
    for r, p, after in ((run, phase, cur), (qrun, qphase, queued)):
        again = sql(url, "SELECT worker_pid FROM attempts WHERE run_id = ? AND phase_id = ?"
                         " AND attempt_id > ? AND outcome = 'dry_run'", r, p, after)
        assert len(again) == 1 and again[0][0] != w["pid"], again
    each_phase_ran_once(url)
    db_checks_clean(url)


def test_a_cancel_of_the_held_phase_ends_it_as_cancelled(tmp):
    url, sup, pids, w = held_drain(tmp)
    cur, queued = w["attempt_id"], w["queued_attempt_id"]
    try:
        run, phase = attempt(url, queued)[:2]
        r = sup.ctl("cancel", run, phase, "--json")
        assert r.rc == 0, r
        assert json.loads(r.out)["attempt_id"] == queued
    finally:
        thaw(pids)
    wait_for(lambda: attempt(url, queued)[2] == "cancelled", 30, what="the cancel")
    # The attempt the worker ran ended as it would have; the held one never ran.
    wait_for(lambda: attempt(url, cur)[2] == "dry_run", 30, what="the attempt before it")
    assert sql(url, "SELECT state FROM phases WHERE run_id = ? AND phase_id = ?",
               run, phase) == [("SKIPPED",)]
    assert sql(url, "SELECT attempt_id, outcome FROM attempts WHERE run_id = ? AND"
                    " phase_id = ?", run, phase) == [(queued, "cancelled")]
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]


def test_a_pause_lets_the_held_job_run(tmp):
    url, sup, pids, w = held_drain(tmp)
    try:
        assert sup.ctl("pause").rc == 0
    finally:
        thaw(pids)
    wait_for(lambda: sup.status()["queue"]["in_flight"] == 0, 60, what="nothing in flight")
    # Both jobs the worker held ran on it.
    for att in (w["attempt_id"], w["queued_attempt_id"]):
        assert attempt(url, att)[2:4] == ("dry_run", w["pid"]), attempt(url, att)
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.stderr()


def test_a_stop_lets_the_held_job_run_then_exits(tmp):
    url, sup, pids, w = held_drain(tmp)
    try:
        sup.signal(signal.SIGTERM)
    finally:
        thaw(pids)
    assert sup.wait() == 0, sup.stderr()[-3000:]
    for att in (w["attempt_id"], w["queued_attempt_id"]):
        assert attempt(url, att)[2:4] == ("dry_run", w["pid"]), attempt(url, att)
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]


def test_a_supervisor_killed_while_workers_hold_two_leaves_a_drainable_database(tmp):
    url, sup, pids, w = held_drain(tmp)
    sup.kill()
    thaw(pids)
    # Its workers leave with it; the next supervisor closes what was open and drains.
    wait_for(lambda: not any(os.path.exists("/proc/%d" % p) for p in pids), 30,
             what="the workers gone")
    again = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--worker-jobs", 2,
                       "--exit-when-drained", name="sup2")
    assert again.wait(timeout=300) == 0, again.stderr()[-3000:]
    each_phase_ran_once(url)
    db_checks_clean(url)


def held_durable_drain(tmp):
    """A drain of 1,000 dry phases by two rogue workers that hold their next job, noting
    at each job whether its attempt's row is in what the last completed fsync of the
    write-ahead log made durable (tests/tools/fsync_shim.c), each fsync 20 ms slower;
    returns the supervisor's log and the notes of the jobs."""
    url = new_db(tmp, runs=100, phases=10)
    wal = os.path.realpath(url[len("sqlite:///"):]) + "-wal"
    env = preload("fsync-shim.so", AUTOPACK_SHIM_PATH=wal, AUTOPACK_SHIM_DURABLE="1",
                  AUTOPACK_SHIM_DELAY_US="20000")
    env["ROGUE_LOG"] = os.path.join(str(tmp), "sup.rogue.log")
    sup = rogue_supervisor(tmp, url, "durable_good", "--workers", 2, "--worker-jobs", 2,
                           "--exit-when-drained", "--synchronous", "full",
                           "--fsync-off-loop", "--log-level", "debug", env=env)
    assert sup.wait(timeout=300) == 0, sup.stderr()[-3000:]
    return sup.stderr(), rogue_notes(tmp, event="job")


def test_a_held_job_leaves_only_once_its_lease_is_durable(tmp):
    """Every job, the held ones like the others, leaves only once its lease is durable.
    A job is held only while a worker is busy as a lease opened ahead becomes durable,
    which a loaded machine's supervisor, finding a worker idle at each commit, may never
    see in one drain: up to three drains, each checked, until one held a job."""
    for k in range(3):
        d = os.path.join(str(tmp), "drain%d" % k)
        os.mkdir(d)
        log, jobs = held_durable_drain(d)
        assert len(jobs) == 1000
        assert all(n["durable"] for n in jobs), [n for n in jobs if not n["durable"]][:5]
        if "queued on worker" in log:
            return
    assert False, "no job was held in three drains"
