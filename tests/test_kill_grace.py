"""A worker the supervisor sends SIGTERM (a cancel, a deadline, `scale --force`) has the
kill grace (5 s) to exit, whatever it does meanwhile; one still running then is killed
with SIGKILL, and the log says so. Workers that ignore SIGTERM stand in for a stuck one:
the rogue worker (tests/rogue_worker.py) run by a --worker wrapper that ignores the
signal, and the rogue's own `hang_term` mode."""
import os
import re
import signal
import time

import pytest

from conftest import binpath
from supervisor_helpers import (ROGUE, Supervisor, new_db, rogue_notes, rogue_supervisor,
                                sql, status_when, wait_for)


def ignoring_wrapper(tmp):
    """A --worker wrapper: the rogue worker with SIGTERM ignored (inherited across exec)."""
    path = os.path.join(str(tmp), "ignores-term.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\ntrap '' TERM\nexec /usr/bin/python3 '%s' \"$@\"\n" % ROGUE)
    os.chmod(path, 0o755)
    return path


def killed_line(pid):
    return "(pid %d): still running 5.0 s after SIGTERM; killing it (SIGKILL)" % pid


def test_a_worker_that_ignores_sigterm_after_its_result_was_taken_is_killed(tmp):
    """A cancelled worker sends its result after the cancel (taken, not used) and goes
    on ignoring the SIGTERM that came with the cancel: the supervisor stopped the kill
    grace when the result came and left the worker idle and never used again, holding
    its place in the pool for ever (no replacement, nothing more dispatched). It is now
    killed once the grace ends, a fresh worker takes its place, and the stop ends."""
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--worker", ignoring_wrapper(tmp), "--workers", 1,
                     env={"ROGUE_MODE": "late",
                          "ROGUE_LOG": os.path.join(str(tmp), "sup.rogue.log")})
    try:
        job = wait_for(lambda: rogue_notes(tmp, event="job"), 60, what="the job")[0]
        wait_for(lambda: sql(url, "SELECT count(*) FROM llm_usage_events") == [(1,)], 60,
                 what="the attempt's event")
        assert sup.ctl("cancel", job["run"], job["phase"]).rc == 0
        wait_for(lambda: rogue_notes(tmp, event="result"), 60, what="the late result")
        wait_for(lambda: "(pid %d) exited: status 0, signal 9" % job["pid"] in sup.stderr(),
                 60, what="the worker killed")
        assert killed_line(job["pid"]) in sup.stderr()
        wait_for(lambda: "worker 2 started" in sup.stderr(), 60, what="a fresh worker")
        assert sup.ctl("stop").rc == 0
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    assert sql(url, "SELECT outcome FROM attempts") == [("cancelled",)]
    assert sql(url, "SELECT state FROM phases") == [("SKIPPED",)]


def test_a_worker_a_forced_scale_down_stops_is_killed_if_it_ignores_sigterm(tmp):
    """`scale 0 --force` sends a busy worker SIGTERM and set no grace: one that ignored it
    went on holding its phase, and a graceful stop then waited for its phase's deadline
    (15 minutes by default). It is now killed once the grace ends, its phase requeued, and
    the stop asked meanwhile ends."""
    url = new_db(tmp, runs=1, phases=1)
    sup = rogue_supervisor(tmp, url, "hang_term", "--workers", 1)
    try:
        job = wait_for(lambda: rogue_notes(tmp, event="job"), 60, what="the job")[0]
        assert sup.ctl("scale", "0", "--force").rc == 0
        wait_for(lambda: rogue_notes(tmp, event="term"), 60, what="the SIGTERM ignored")
        assert sup.ctl("stop").rc == 0
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    err = sup.stderr()
    assert killed_line(job["pid"]) in err, err
    assert "(pid %d) exited: status 0, signal 9" % job["pid"] in err, err
    assert sql(url, "SELECT outcome FROM attempts") == [("scaled_down",)]
    assert sql(url, "SELECT state FROM phases") == [("QUEUED",)]


def shutdown_killed_line(pid):
    return ("(pid %d): still running 5.0 s after it was asked to exit (shutdown); killing "
            "it (SIGKILL)" % pid)


def test_a_worker_that_ignores_shutdown_at_the_end_of_a_drain_is_killed(tmp):
    """At a graceful stop an idle worker is sent `shutdown`; one that ignored it (and
    SIGTERM: stuck, or hostile) kept the supervisor waiting for its exit for ever, the
    drain over. It is now killed once the kill grace ends, and the supervisor exits."""
    url = new_db(tmp, runs=1, phases=1)
    sup = rogue_supervisor(tmp, url, "deaf", "--workers", 1, "--exit-when-drained")
    try:
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    err = sup.stderr()
    pid = rogue_notes(tmp, event="job")[0]["pid"]
    assert [n["reason"] for n in rogue_notes(tmp, event="shutdown")] == ["stop"], err
    assert shutdown_killed_line(pid) in err, err
    assert "(pid %d) exited: status 0, signal 9" % pid in err, err
    # Retired, not crashed: no infrastructure failure, no replacement.
    assert "worker 2 started" not in err, err
    assert sql(url, "SELECT outcome FROM attempts") == [("success",)]
    assert sql(url, "SELECT state FROM phases") == [("COMPLETE",)]


def test_a_worker_the_pool_sheds_is_killed_if_it_ignores_shutdown(tmp):
    """`scale 1` sends one of two idle workers `shutdown`; one that ignored it stayed,
    retiring for ever, and a stop then waited for it without end. It is now killed once
    the kill grace ends, not replaced, and the stop ends."""
    url = new_db(tmp, runs=0)
    sup = rogue_supervisor(tmp, url, "deaf", "--workers", 2, "--allow-empty-db")
    try:
        status_when(sup, lambda s: s["pool"]["live"] == 2, what="two workers")
        assert sup.ctl("scale", "1").rc == 0
        shed = wait_for(lambda: rogue_notes(tmp, event="shutdown"), 60,
                        what="the shutdown ignored")[0]
        assert shed["reason"] == "scale"
        wait_for(lambda: "(pid %d) exited: status 0, signal 9" % shed["pid"] in sup.stderr(),
                 60, what="the shed worker killed")
        assert shutdown_killed_line(shed["pid"]) in sup.stderr()
        st = status_when(sup, lambda s: s["pool"]["live"] == 1, what="one worker left")
        assert st["pool"]["crash_loop"] is False
        assert sup.ctl("stop").rc == 0
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    err = sup.stderr()
    assert err.count("after it was asked to exit (shutdown); killing it (SIGKILL)") == 2, err
    assert "worker 3 started" not in err, err


def slow_wrapper(tmp, seconds):
    """A --worker wrapper that sleeps `seconds` (a sleep of its own, told apart by its
    argument) before it runs the real worker."""
    path = os.path.join(str(tmp), "slow-%s.sh" % seconds)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nsleep %s\nexec '%s' \"$@\"\n" % (seconds, binpath("autopack-worker")))
    os.chmod(path, 0o755)
    return path


def running(argv):
    """The pids of the processes whose command line is `argv`, and those of them that are
    zombies."""
    pids, zombies = [], []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if f.read().split(b"\0")[:-1] != [a.encode() for a in argv]:
                    continue
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        pids.append(int(pid))
        if state == "Z":
            zombies.append(int(pid))
    return pids, zombies


@pytest.mark.parametrize("slow", [True, False], ids=["past_the_grace", "within_it"])
def test_a_stop_while_workers_are_still_starting_loses_nothing_and_says_so(tmp, slow):
    """A worker slow to start (a --worker wrapper that sleeps) when the supervisor is told
    to stop has not handed its socket over: it cannot be asked to exit yet, and holds no
    phase. One that starts within the kill grace is asked then and exits; one that does not
    was killed with a line saying it was "asked to exit (shutdown)", which it never was,
    and another blaming "its check command" for the wrapper's sleep. Now the line says it
    was still starting and could not be told; nothing is leased, and nothing of the
    wrapper is left running or unreaped."""
    # This test's own sleep, told apart by its digits from any other test's.
    seconds = "%d.25%06d" % (30 if slow else 2, os.getpid() % 1000000)
    url = new_db(tmp, runs=2, phases=2)
    sup = Supervisor(tmp, url, "--worker", slow_wrapper(tmp, seconds), "--workers", 2,
                     "--dry-run")
    try:
        wait_for(lambda: "worker 2 started" in sup.stderr(), 60, what="the workers started")
        wait_for(lambda: len(running(["sleep", seconds])[0]) == 2, 30, what="both sleeping")
        started = time.monotonic()
        sup.signal(signal.SIGTERM)
        assert sup.wait(60) == 0, sup.stderr()
        took = time.monotonic() - started
    finally:
        sup.kill()
    err = sup.stderr()
    assert running(["sleep", seconds]) == ([], []), running(["sleep", seconds])
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == [("QUEUED", 4)]
    assert "asked to exit (shutdown)" not in err and "check command" not in err, err
    if not slow:
        # Started within the grace: asked to exit then, and it did.
        assert err.count("supervisor asked this worker to stop (stop)") == 2, err
        assert "SIGKILL" not in err and took < 5, (took, err)
    else:
        for n in (1, 2):
            assert re.search(r"worker %d \(pid \d+\): still starting 5\.0 s after it was to "
                             r"exit: it has not handed its socket over, so it could not be "
                             r"told; it holds no phase: killing it \(SIGKILL\)" % n, err), err
        assert "started before its hello (a --worker wrapper's)" in err, err
        assert 5 <= took < 15, took
