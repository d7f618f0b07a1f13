"""A CPU time limit (ulimit -t, systemd's LimitCPU=) on the supervisor: when its soft limit
is used up the kernel sends SIGXCPU, whose default action killed the supervisor mid-drain
without a word and without recording its session's end. The supervisor now stops
gracefully, as a time budget would: the attempts in flight end, the session records the
stop and why, and the exit status is 5 (eligible phases left)."""
import shutil

import pytest

from supervisor_helpers import Supervisor, new_db, sql


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) missing")
def test_a_cpu_time_limit_stops_the_drain_gracefully_and_says_so(tmp):
    # 90,000 dry-run phases take the supervisor well over a second of CPU.
    url = new_db(tmp, runs=3000, phases=30)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--exit-when-drained",
                     prefix=("prlimit", "--cpu=1:600"))
    rc = sup.wait(timeout=600)
    err = sup.stderr()
    assert rc == 5, (rc, err[-3000:])
    assert "the CPU time limit was reached" in err and "LimitCPU=; the hard limit 600 s" in err, \
        err[-3000:]
    [(reason,)] = sql(url, "SELECT stop_reason FROM drain_sessions")
    assert "the CPU time limit was reached" in reason, reason
    # Nothing left open, and the limit cut the drain short.
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    [(visited,)] = sql(url, "SELECT count(DISTINCT run_id || '/' || phase_id) FROM attempts")
    assert 0 < visited < 90000, visited


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) missing")
def test_a_hard_cpu_limit_close_behind_the_soft_one_stops_at_once_before_the_kill(tmp):
    """With the hard limit (SIGKILL) two seconds behind the soft one, a graceful stop could
    be killed before it records the session's end: the supervisor stops at once instead
    (the hard limit is within three seconds), and the two seconds are left for that end
    (the report of the phases left too)."""
    url = new_db(tmp, runs=2000, phases=30)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--exit-when-drained",
                     prefix=("prlimit", "--cpu=1:3"))
    rc = sup.wait(timeout=600)
    err = sup.stderr()
    assert rc == 5, (rc, err[-3000:])
    assert "the hard limit (3 s), which kills, is" in err, err[-3000:]
    assert "stopping now" in err, err[-3000:]
    [(reason,)] = sql(url, "SELECT stop_reason FROM drain_sessions")
    assert "the CPU time limit was reached" in reason, reason
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
