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
