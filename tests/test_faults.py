"""Faults of the supervisor's own making or of its disk: a stalled supervisor is not a hung
worker, and a database that stops taking commits ends the supervisor cleanly. Real
processes on real files; the full disk is a tmpfs the test mounts."""
import os
import signal
import time

import pytest

from conftest import ctl
from supervisor_helpers import Standin, Supervisor, new_db, sql, status_when, wait_for

KEY = "sk-test-faults-key-0123456789"


def llm_supervisor(tmp, url, llm, *args, name="sup"):
    return Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                      "--llm-retries", 0, *args, env={"ANTHROPIC_API_KEY": KEY}, name=name)


@pytest.fixture
def llm(tmp):
    s = Standin(tmp)
    yield s
    s.stop()


# --- 6. a stall of the supervisor itself ----------------------------------------------

def test_6_a_stopped_supervisor_judges_no_worker_by_its_own_gap(tmp, llm):
    go = os.path.join(str(tmp), "go")
    check = "while [ ! -e %s ]; do sleep 0.05; done" % go
    url = new_db(tmp, runs=4, phases=3, check=check)
    hb = 2
    sup = llm_supervisor(tmp, url, llm, "--workers", 3, "--exit-when-drained",
                         "--heartbeat-timeout-seconds", hb)
    status_when(sup, lambda s: s["queue"]["in_flight"] == 3, what="three leases")
    # Stopped for well over the heartbeat timeout: every worker keeps beating meanwhile.
    sup.signal(signal.SIGSTOP)
    time.sleep(hb * 3)
    sup.signal(signal.SIGCONT)
    wait_for(lambda: "stalled for" in sup.stderr(), what="the stall noticed")
    open(go, "w").close()
    assert sup.wait(timeout=180) == 0, sup.stderr()
    err = sup.stderr()
    assert "no frame for" not in err, err
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("success", 12)]
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == [("COMPLETE", 12)]
    assert sql(url, "SELECT count(*) FROM drain_session_results WHERE success = 0") == [(0,)]
    # No run was judged by a kill it did not earn: every one was drained, none stopped.
    assert sql(url, "SELECT stop_reason FROM drain_sessions") == [("drained",)]

