"""The commit's fsync off the loop (with --synchronous full on SQLite: while phases are
short by default, always with --fsync-off-loop, never with --fsync-on-loop): an
acknowledgement or a job leaves only once the fsync that makes its commit durable has completed, the loop goes
on while an fsync runs, and a failed fsync stops every write with nothing of it
acknowledged. The write-ahead log's fsyncs go through tests/tools/fsync_shim.c, which can
hold or fail them and keeps a copy of what each one made durable: the workers read that
copy, i.e. what a power loss would have left."""
import os

import pytest

from conftest import ctl, preload
from supervisor_helpers import (Standin, Supervisor, llm_supervisor, new_db, rogue_notes,
                                rogue_supervisor, sql, status_when, wait_for)


def shim_env(tmp, url, **extra):
    """The supervisor's environment with the shim watching the database's -wal."""
    wal = os.path.realpath(url[len("sqlite:///"):]) + "-wal"
    return preload("fsync-shim.so", AUTOPACK_SHIM_PATH=wal,
                   AUTOPACK_SHIM_LOG=os.path.join(str(tmp), "shim.log"),
                   AUTOPACK_SHIM_DURABLE="1", **extra)


def shim_calls(tmp):
    """The shim's log: (started, ended) fsync counts."""
    path = os.path.join(str(tmp), "shim.log")
    if not os.path.exists(path):
        return 0, 0
    with open(path) as f:
        words = [line.split()[0] for line in f if line.strip()]
    return words.count("start"), words.count("end")


@pytest.mark.parametrize("off_loop", [True, False], ids=["off-loop", "on-loop"])
def test_acks_and_jobs_leave_only_once_their_commit_is_durable(tmp, off_loop):
    url = new_db(tmp, runs=3, phases=3)
    sup = rogue_supervisor(tmp, url, "durable", "--workers", 2, "--exit-when-drained",
                           "--synchronous", "full", "--fsync-off-loop" if off_loop else "--fsync-on-loop",
                           env=shim_env(tmp, url))
    assert sup.wait() == 0, sup.stderr()
    assert ("made durable by an fdatasync of" in sup.stderr()) == off_loop
    jobs = rogue_notes(tmp, event="job")
    acks = rogue_notes(tmp, event="ack")
    assert len(jobs) == 9 and len({n["att"] for n in acks}) == 9
    # When a worker got its job, the attempt's row was on disk already; when it got an
    # ack, every event up to it was.
    assert all(n["durable"] for n in jobs), jobs
    for n in acks:
        assert n["rows"][:n["ack"]] == list(range(1, n["ack"] + 1)), n
    started, ended = shim_calls(tmp)
    assert started == ended and started >= 9
    assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(27,)]


def test_the_loop_goes_on_while_an_fsync_runs_and_no_ack_leaves_before_it_ends(tmp):
    url = new_db(tmp, runs=1, phases=1)
    go = os.path.join(str(tmp), "ws", "go")
    hold = os.path.join(str(tmp), "hold")
    sup = rogue_supervisor(tmp, url, "durable", "--workers", 1, "--exit-when-drained",
                           "--fsync-off-loop",
                           env=shim_env(tmp, url, ROGUE_GO=go, AUTOPACK_SHIM_HOLD=hold))
    try:
        # The job is out (its lease's fsync done) and the worker waits for `go`: nothing
        # is written until then.
        wait_for(lambda: rogue_notes(tmp, event="job"), 60, what="the job")
        wait_for(lambda: shim_calls(tmp)[0] == shim_calls(tmp)[1], 60, what="no fsync")
        open(hold, "w").close()
        open(go, "w").close()
        # The events' commit is made; its fsync waits on the hold.
        wait_for(lambda: shim_calls(tmp)[0] > shim_calls(tmp)[1], 60,
                 what="an fsync held")
        try:
            wait_for(lambda: sql(url, "SELECT count(*) FROM llm_usage_events") == [(3,)],
                     60, what="the events' commit")
        except AssertionError as e:
            raise AssertionError("%s; fsyncs started/ended %s; rogue notes %s; status %s\n%s" % (
                e, shim_calls(tmp), rogue_notes(tmp), sup.ctl("status", "--json"), sup.stderr()))
        # The loop answers while the fsync is held, and nothing was acknowledged.
        st = sup.status()
        assert st["queue"]["in_flight"] == 1
        assert shim_calls(tmp)[0] > shim_calls(tmp)[1]
        assert rogue_notes(tmp, event="ack") == []
    finally:
        if os.path.exists(hold):
            os.unlink(hold)
        open(go, "w").close()
    assert sup.wait() == 0, sup.stderr()
    acks = rogue_notes(tmp, event="ack")
    assert acks and acks[-1]["ack"] == 3
    for n in acks:
        assert n["rows"][:n["ack"]] == list(range(1, n["ack"] + 1)), n


def test_a_failed_fsync_stops_writing_acknowledges_nothing_of_it_and_exits_3(tmp):
    url = new_db(tmp, runs=1, phases=1)
    wal = os.path.realpath(url[len("sqlite:///"):]) + "-wal"
    go = os.path.join(str(tmp), "ws", "go")
    fail = os.path.join(str(tmp), "fail")
    sup = rogue_supervisor(tmp, url, "durable", "--workers", 1, "--exit-when-drained",
                           "--fsync-off-loop",
                           env=shim_env(tmp, url, ROGUE_GO=go, AUTOPACK_SHIM_FAIL=fail))
    try:
        wait_for(lambda: rogue_notes(tmp, event="job"), 60, what="the job")
        wait_for(lambda: shim_calls(tmp)[0] == shim_calls(tmp)[1], 60, what="no fsync")
        open(fail, "w").close()
        open(go, "w").close()
        assert sup.wait() == 3, sup.stderr()
    finally:
        if os.path.exists(fail):
            os.unlink(fail)
    err = sup.stderr()
    assert ("writes failed: fdatasync of the write-ahead log %s failed: Input/output error"
            " (errno 5)" % wal) in err, err
    assert "none of them is acknowledged" in err
    assert rogue_notes(tmp, event="ack") == []
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    # The next supervisor recovers the attempt left open and drains the phase.
    sup2 = rogue_supervisor(tmp, url, "good", "--workers", 1, "--exit-when-drained",
                            name="sup2")
    assert sup2.wait() == 0, sup2.stderr()
    assert "recovered 1 attempt(s)" in sup2.stderr()
    assert sql(url, "SELECT state FROM phases") == [("COMPLETE",)]


def drained(st):
    return st["queue"]["phases_queued"] == 0 and st["queue"]["in_flight"] == 0


@pytest.mark.parametrize("where", ["auto", "on-loop"])
def test_by_default_the_fsync_leaves_the_loop_while_phases_are_short(tmp, where):
    # A dry run's phases take well under 20 ms a worker: by default its commits are made
    # durable off the loop; with --fsync-on-loop none is.
    url = new_db(tmp, runs=300, phases=10)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--synchronous", "full",
                     *(["--fsync-on-loop"] if where == "on-loop" else []))
    try:
        st = status_when(sup, drained, 120, what="the drain's end")
        assert st["fsync"] == ("auto" if where == "auto" else "on_loop")
        off = st["counters"]["commits_synced_off_loop"]
        if where == "auto":
            assert 0 < off <= st["counters"]["commits"], st["counters"]
            assert "while phases are short, commits are made durable off the loop" in sup.stderr()
        else:
            assert off == 0, st["counters"]
    finally:
        assert sup.stop_now() == 0, sup.stderr()
    assert sql(url, "SELECT count(*), count(ended_at) FROM attempts") == [(3000, 3000)]


def test_slow_phases_keep_the_fsync_in_the_commit(tmp):
    # Phases of 150 ms (the stand-in's delay) with two workers: each worker ends one every
    # 150 ms, far from short, so every commit syncs in SQLite's COMMIT.
    url = new_db(tmp, runs=2, phases=4)
    stand = Standin(tmp, {"sequence": [], "default": {"mode": "sleep", "seconds": 0.15}})
    sup = llm_supervisor(tmp, url, stand, "--workers", 2, "--synchronous", "full")
    try:
        st = status_when(sup, drained, 120, what="the drain's end")
        assert st["fsync"] == "auto"
        assert st["counters"]["commits"] > 0
        assert st["counters"]["commits_synced_off_loop"] == 0, st["counters"]
    finally:
        assert sup.stop_now() == 0, sup.stderr()
        stand.stop()
    assert sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'") == [(8,)]


def test_a_checkpoint_leaves_the_loop_free(tmp):
    # Every sync of the database file (a checkpoint's, once it has copied the log into the
    # file) is held: the drain goes on, commits and answers meanwhile, and ends once the
    # hold is gone with every attempt in the file.
    url = new_db(tmp, runs=300, phases=10)
    hold = os.path.join(str(tmp), "hold")
    open(hold, "w").close()
    env = shim_env(tmp, url, AUTOPACK_SHIM_HOLD=hold)
    env["AUTOPACK_SHIM_PATH"] = os.path.realpath(url[len("sqlite:///"):])
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--synchronous", "full", env=env)
    try:
        wait_for(lambda: shim_calls(tmp)[0] > 0, 120, what="a checkpoint's sync held")
        st = status_when(sup, drained, 120, what="the drain's end while a sync is held")
        assert st["counters"]["results"] == 3000, st["counters"]
        assert shim_calls(tmp)[0] > shim_calls(tmp)[1]
    finally:
        if os.path.exists(hold):
            os.unlink(hold)
    wait_for(lambda: shim_calls(tmp)[0] == shim_calls(tmp)[1], 60, what="the held sync's end")
    assert sup.stop_now() == 0, sup.stderr()
    assert sql(url, "SELECT count(*), count(ended_at) FROM attempts") == [(3000, 3000)]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_the_database_file_is_synced_off_the_loop(tmp):
    # Every checkpoint of a drain's log, the catch-up that lets the log start again
    # included, copies and syncs on the checkpoints' thread while commits wait: the loop
    # syncs the database file only once the thread is stopped, at the end (the session's
    # last commits, and the store's close).
    url = new_db(tmp, runs=300, phases=10)
    env = shim_env(tmp, url)
    del env["AUTOPACK_SHIM_DURABLE"]
    env["AUTOPACK_SHIM_PATH"] = os.path.realpath(url[len("sqlite:///"):])
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--synchronous", "full",
                     "--exit-when-drained", env=env)
    assert sup.wait(timeout=300) == 0, sup.stderr()
    with open(os.path.join(str(tmp), "shim.log")) as f:
        who = [line.split()[3] for line in f if line.startswith("start ")]
    assert who.count("thread") >= 2, who
    assert who.count("main") <= 3, who
    assert sql(url, "SELECT count(*), count(ended_at) FROM attempts") == [(3000, 3000)]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.skipif(os.environ.get("AUTOPACK_SANITIZE") == "1",
                    reason="a sanitizer's runtime reserves more address space than the limit")
def test_a_pool_that_cannot_start_its_threads_leaves_the_fsync_in_the_commit(tmp):
    # libuv starts its pool's threads (UV_THREADPOOL_SIZE of them, 8 MiB of stack each) at
    # the first fsync off the loop, and aborts the process when one cannot start: under an
    # address space limit the supervisor died at its first commit (SIGABRT, not a word).
    url = new_db(tmp, runs=3, phases=10)
    limit = 1 << 30
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--exit-when-drained",
                     env={"UV_THREADPOOL_SIZE": "1024"},
                     prefix=["prlimit", "--as=%d:%d" % (limit, limit)])
    assert sup.wait() == 0, sup.stderr()
    assert ("commits are synced by SQLite on the loop (slower): the threads of the pool "
            "that would sync them cannot be started (") in sup.stderr()
    assert ("the address space limit, ulimit -v or LimitAS=, is %d bytes)" % limit
            in sup.stderr())
    assert sql(url, "SELECT count(*), count(ended_at) FROM attempts") == [(30, 30)]


def test_the_shim_keeps_its_copies_under_the_minimum_stack_limit(tmp):
    """The shim's copy of what an fsync makes durable needs little stack: a supervisor
    under the programs' minimum stack limit (64 KiB, also its threads') drains through it,
    the copies kept."""
    if os.environ.get("AUTOPACK_SANITIZE") == "1":
        pytest.skip("the stack limit is the release build's")
    url = new_db(tmp, runs=2, phases=2)
    sup = Supervisor(tmp, url, "--dry-run", "--exit-when-drained", "--synchronous", "full",
                     "--fsync-off-loop", env=shim_env(tmp, url),
                     prefix=["prlimit", "--stack=%d" % (64 * 1024), "--"])
    assert sup.wait() == 0, sup.stderr()
    started, ended = shim_calls(tmp)
    assert started == ended and started >= 1
    assert os.path.exists(os.path.realpath(url[len("sqlite:///"):]) + "-wal.durable")


def test_short_phases_with_a_lease_waiting_for_each_worker_commit_in_the_window(tmp):
    # While a dry run's results come fast and a durable lease opened ahead waits for each
    # worker, no job waits for a commit: a round leaves its results to the window (a
    # second here), --commit-max (not reached) or the leases running short (up to 16 a
    # worker wait ahead). 3,000 phases with 8 workers: a commit for every 40 phases or
    # more (about 55 here), where a commit for each round the fsync did not hold gave one
    # for every 20 to 25.
    url = new_db(tmp, runs=300, phases=10)
    sup = Supervisor(tmp, url, "--workers", 8, "--dry-run", "--synchronous", "full",
                     "--commit-window-ms", 1000, "--commit-max", 100000)
    try:
        st = status_when(sup, drained, 120, what="the drain's end")
        commits = st["counters"]["commits"]
        assert 0 < commits <= 3000 // 40, st["counters"]
    finally:
        assert sup.stop_now() == 0, sup.stderr()
    assert sql(url, "SELECT count(*), count(ended_at), count(DISTINCT run_id || phase_id)"
                    " FROM attempts") == [(3000, 3000, 3000)]
