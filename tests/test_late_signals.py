"""Signals that arrive while a stopped supervisor is already closing down: the stop it
decided is the one that ends it (exit 0), never the signal's default action."""
import os
import signal
import time

from supervisor_helpers import Supervisor, new_db


def test_signals_during_the_shutdown_do_not_kill_the_supervisor(tmp):
    url = new_db(tmp, runs=1, phases=1)
    for i in range(5):
        sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", name="s%d" % i)
        sup.wait_ready()
        # A graceful stop with nothing in flight ends at once; the same signal keeps
        # coming while the supervisor closes its handles and exits.
        while sup.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                try:
                    os.kill(sup.proc.pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(0.0005)
        assert sup.wait() in (0, 3), (i, sup.proc.returncode, sup.stderr())


def test_no_thread_but_the_loops_takes_a_stop_signal(tmp):
    """A signal sent to the process goes to any thread that does not block it. At the end
    the supervisor closes its signal watchers, which gives the signals their default
    action back for a moment: a SIGTERM taken then by a thread of libuv's pool (which
    syncs the commits) or the checkpoints' thread ended the supervisor by the signal
    after it had stopped cleanly (exit -15 for `stop_now`'s second SIGTERM). Every thread
    but the loop's blocks the stop signals."""
    url = new_db(tmp, runs=200, phases=10)
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--synchronous", "full")
    try:
        sup.wait_ready()
        tasks = "/proc/%d/task" % sup.proc.pid
        others = [t for t in os.listdir(tasks) if int(t) != sup.proc.pid]
        assert len(others) >= 2, others  # the checkpoints' thread and the pool's
        for t in others:
            with open(os.path.join(tasks, t, "status")) as f:
                blocked = int(next(line for line in f if line.startswith("SigBlk:")).split()[1],
                              16)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                assert blocked & (1 << (sig - 1)), (t, hex(blocked), sig)
    finally:
        sup.kill()
