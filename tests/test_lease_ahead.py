"""Leases opened ahead of any worker: when results come fast, a round opens attempts that
wait, durable, for the first worker to send its result, so a short phase's worker does not
wait for a commit between two jobs. Every phase is still run once, every attempt records
its worker, and an attempt no worker took before a pause, a stop or a cancel is closed as
not started, its phase back in the queue."""
import json
import os
import signal
import subprocess
import time

from supervisor_helpers import Supervisor, new_db, sql, wait_for


def ahead_taken(sup):
    return sup.stderr().count("opened ahead, taken by worker")


def test_fast_phases_are_handed_out_ahead_and_each_runs_once(tmp):
    url = new_db(tmp, runs=300, phases=10)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--exit-when-drained",
                     "--log-level", "debug")
    assert sup.wait() == 0, sup.stderr()
    # Most jobs went out the moment their worker's result came.
    assert ahead_taken(sup) > 300, sup.stderr()[-2000:]
    rows = sql(url, "SELECT outcome, count(*), count(worker_pid), count(ended_at)"
                    " FROM attempts GROUP BY outcome")
    assert rows == [("dry_run", 3000, 3000, 3000)], rows
    # Every phase visited once.
    assert sql(url, "SELECT count(DISTINCT run_id || '/' || phase_id) FROM attempts") == [
        (3000,)]


def test_slow_phases_open_nothing_ahead(tmp):
    """Real phases whose LLM call takes 0.2 s, two workers: about ten results a second,
    so no lease is opened before a worker is free (each would wait a phase's length)."""
    from e2e_helpers import Standin, llm_args
    url = new_db(tmp, runs=3, phases=2, workspace=os.path.join(str(tmp), "ws-{run}"))
    llm = Standin(tmp, {"default": {"mode": "sleep", "seconds": 0.2}})
    try:
        sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--log-level",
                         "debug", *llm_args(llm), env={"ANTHROPIC_API_KEY": "sk-ant-slow"})
        assert sup.wait() == 0, sup.stderr()
    finally:
        llm.stop()
    assert sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'") == [(6,)]
    assert ahead_taken(sup) == 0
    assert "not started" not in sup.stderr()


def not_started(url):
    return sql(url, "SELECT outcome, worker_pid, ended_at IS NOT NULL FROM attempts"
                    " WHERE message LIKE 'not started: %'")


def waiting_ahead(st, url):
    """The attempts opened ahead that no worker has taken, by status document `st`: open,
    with no worker yet (a worker's is recorded with the attempt's end), and no worker's
    lease."""
    taken = {w["attempt_id"] for w in st["pool"]["workers"]}
    return [r for r in sql(url, "SELECT run_id, phase_id, attempt_id FROM attempts"
                                " WHERE ended_at IS NULL AND worker_pid IS NULL")
            if r[2] not in taken]


def stopped(pid):
    """Whether process `pid` is stopped by a signal."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def unread(pids):
    """The bytes processes `pids` wrote to their sockets that the other end has not read
    (ss, of iproute2: the send queues of their Unix sockets)."""
    out = subprocess.run(["ss", "-x", "-p", "-H"], capture_output=True, text=True,
                         check=True).stdout
    return sum(int(line.split()[3]) for line in out.splitlines()
               if any("pid=%d," % pid in line for pid in pids))


def freeze(sup, url):
    """Stop every worker (SIGSTOP) while results come fast: the leases the last round
    opened ahead stay waiting. Returns the worker pids and those leases. A stop that
    lands when no lease waits ahead (a slow moment of a loaded machine) is undone and
    tried again."""
    wait_for(lambda: ahead_taken(sup) > 20, 30, what="leases taken ahead")
    pids = [w["pid"] for w in sup.status()["pool"]["workers"]]

    def settled():
        """The leases waiting ahead once everything the workers sent before they stopped
        is handled (a result may hand a waiting lease to its worker, its end and the
        round after it open more): the supervisor has read every byte they sent, has no
        write waiting for its commit, and has no idle worker while a lease waits (one
        opened ahead goes to it once its commit is durable); then the leases waiting in
        the database are as many as status counts (a list in a tuple, the list empty
        when none waits)."""
        if not all(stopped(pid) for pid in pids) or unread(pids) != 0:
            return None
        st = sup.status()
        n = st["queue"]["leases_ahead"]
        if st["writer_queue_writes"] != 0 or (
                n > 0 and any(w["state"] == "idle" for w in st["pool"]["workers"])):
            return None
        ahead = waiting_ahead(st, url)
        return (ahead,) if len(ahead) == n else None

    for _ in range(20):
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        ahead, = wait_for(settled, 30, what="leases waiting ahead, settled")
        if ahead:
            return pids, ahead
        thaw(pids)
        time.sleep(0.05)
    raise AssertionError("no lease waited ahead in 20 stops of the workers")


def thaw(pids):
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def frozen_drain(tmp):
    """A fast dry-run drain of 20,000 phases with 4 workers, frozen with leases waiting
    ahead: (url, supervisor, worker pids, those leases)."""
    url = new_db(tmp, runs=2000, phases=10)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--log-level", "debug")
    sup.wait_ready()
    pids, ahead = freeze(sup, url)
    return url, sup, pids, ahead


def test_a_pause_closes_the_leases_opened_ahead_as_not_started(tmp):
    url, sup, pids, ahead = frozen_drain(tmp)
    try:
        assert sup.ctl("pause").rc == 0
        wait_for(lambda: len(not_started(url)) == len(ahead), 60, what="closed as not started")
    finally:
        thaw(pids)
    # No worker took them: closed, their phases back in the queue.
    assert all(r == ("supervisor_stopped", None, 1) for r in not_started(url))
    assert "not started: dispatch was paused" in sup.stderr()
    assert sup.status()["queue"]["leases_ahead"] == 0
    wait_for(lambda: sup.status()["queue"]["in_flight"] == 0, 30, what="nothing in flight")
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    # Resumed, the drain visits every phase, the not-started ones too.
    assert sup.ctl("resume").rc == 0
    wait_for(lambda: sql(url, "SELECT count(DISTINCT run_id || '/' || phase_id) FROM attempts"
                              " WHERE outcome = 'dry_run'") == [(20000,)],
             120, what="every phase visited")
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0


def test_a_stop_leaves_no_lease_opened_ahead_open(tmp):
    url, sup, pids, ahead = frozen_drain(tmp)
    try:
        sup.signal(signal.SIGTERM)
        wait_for(lambda: len(not_started(url)) == len(ahead), 60, what="closed as not started")
    finally:
        thaw(pids)
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    assert all(r == ("supervisor_stopped", None, 1) for r in not_started(url))
    # Every other attempt ran on a worker and records it.
    assert sql(url, "SELECT count(*) FROM attempts WHERE worker_pid IS NULL"
                    " AND message NOT LIKE 'not started: %'") == [(0,)]
    # A dry run leaves every phase as it was.
    assert sql(url, "SELECT count(*) FROM phases WHERE state = 'QUEUED'") == [(20000,)]


def test_a_cancel_ends_a_lease_opened_ahead_at_once(tmp):
    url, sup, pids, ahead = frozen_drain(tmp)
    try:
        run, phase, att = ahead[0]
        r = sup.ctl("cancel", run, phase, "--json")
        assert r.rc == 0, r
        assert json.loads(r.out)["attempt_id"] == att
        wait_for(lambda: sql(url, "SELECT outcome, message FROM attempts WHERE attempt_id = ?",
                             att) == [("cancelled", "not started: cancelled by the operator")],
                 10, what="the cancel committed")
        # Its workers never saw it; the others still wait for the first free worker.
        assert sql(url, "SELECT state FROM phases WHERE run_id = ? AND phase_id = ?",
                   run, phase) == [("SKIPPED",)]
    finally:
        thaw(pids)
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]


def test_real_phases_opened_ahead_and_never_taken_leave_no_usage_row(tmp):
    """Fast real phases (an LLM stand-in answering at once): a lease opened ahead has its
    first try reserved with it; closed as not started, its reserved row goes (no worker
    ever had its job), while the frozen workers' own attempts keep theirs and complete."""
    from e2e_helpers import Standin, llm_args
    url = new_db(tmp, runs=400, phases=3, workspace=os.path.join(str(tmp), "ws-{run}"))
    llm = Standin(tmp)
    sup = Supervisor(tmp, url, "--workers", 8, "--log-level", "debug", *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": "sk-ant-lease-ahead"})
    try:
        sup.wait_ready()
        pids, ahead = freeze(sup, url)
        try:
            assert sup.ctl("pause").rc == 0
            wait_for(lambda: len(not_started(url)) == len(ahead), 10,
                     what="closed as not started")
            gone = sql(url, "SELECT count(*) FROM llm_usage_events u JOIN attempts a"
                            " ON a.attempt_id = u.attempt_id"
                            " WHERE a.message LIKE 'not started: %'")
            assert gone == [(0,)], gone
        finally:
            thaw(pids)
        wait_for(lambda: sup.status()["queue"]["in_flight"] == 0, 30, what="nothing in flight")
        # Every attempt a worker ran has exactly its tries on record, all completed.
        assert sql(url, "SELECT count(*) FROM llm_usage_events WHERE status != 'ok'") == [(0,)]
        assert sql(url, "SELECT count(*) FROM attempts a WHERE a.outcome = 'success' AND"
                        " (SELECT count(*) FROM llm_usage_events u"
                        "  WHERE u.attempt_id = a.attempt_id) != 1") == [(0,)]
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
        llm.stop()


def test_on_a_slow_disk_short_phases_keep_more_leases_waiting_than_four_per_worker(tmp):
    """Short phases, two workers, every fsync of the write-ahead log 5 ms slower
    (tests/tools/fsync_shim.c): a lease opened ahead goes out only once the fsync after
    its commit has ended, so while phases are short the leases waiting cover 60 ms of
    results, up to 16 per live worker; with four per worker (8 here) the workers would
    wait for the disk between jobs."""
    from conftest import preload
    url = new_db(tmp, runs=600, phases=10)
    env = preload("fsync-shim.so",
                  AUTOPACK_SHIM_PATH=os.path.realpath(url[len("sqlite:///"):]) + "-wal",
                  AUTOPACK_SHIM_DELAY_US="5000")
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--synchronous", "full", env=env)
    try:
        sup.wait_ready()
        most = 0
        deadline = time.monotonic() + 60
        while most <= 8 and time.monotonic() < deadline:
            queue = sup.status()["queue"]
            most = max(most, queue["leases_ahead"])
            if queue["in_flight"] == 0 and queue["phases_queued"] == 0:
                break
        assert most > 8, most
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
