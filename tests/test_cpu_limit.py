"""A CPU time limit (ulimit -t, systemd's LimitCPU=) on the supervisor: when its soft limit
is used up the kernel sends SIGXCPU, whose default action killed the supervisor mid-drain
without a word and without recording its session's end. The supervisor now stops
gracefully, as a time budget would: the attempts in flight end, the session records the
stop and why, and the exit status is 5 (eligible phases left)."""
import os
import shutil

import pytest

from conftest import binpath
from e2e_helpers import Standin, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor, new_db, sql

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None,
                                reason="prlimit (util-linux) missing")


def limited_drain(tmp, runs, cpu):
    """A dry run of RUNS x 30 phases under `prlimit --cpu=CPU`, which takes the supervisor
    well over a second of CPU; returns (url, its stderr) once it exited 5."""
    url = new_db(tmp, runs=runs, phases=30)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--exit-when-drained",
                     prefix=("prlimit", "--cpu=" + cpu))
    rc = sup.wait(timeout=600)
    err = sup.stderr()
    assert rc == 5, (rc, err[-3000:])
    [(reason,)] = sql(url, "SELECT stop_reason FROM drain_sessions")
    assert "the CPU time limit was reached" in reason, reason
    # Nothing left open.
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    return url, err


def test_a_cpu_time_limit_stops_the_drain_gracefully_and_says_so(tmp):
    url, err = limited_drain(tmp, 3000, "1:600")
    assert "the CPU time limit was reached" in err and "LimitCPU=; the hard limit 600 s" in err, \
        err[-3000:]
    # The limit cut the drain short.
    [(visited,)] = sql(url, "SELECT count(DISTINCT run_id || '/' || phase_id) FROM attempts")
    assert 0 < visited < 90000, visited


def test_a_hard_cpu_limit_close_behind_the_soft_one_stops_at_once_before_the_kill(tmp):
    """With the hard limit (SIGKILL) two seconds behind the soft one, a graceful stop could
    be killed before it records the session's end: the supervisor stops at once instead
    (the hard limit is within three seconds), and the two seconds are left for that end
    (the report of the phases left too)."""
    _, err = limited_drain(tmp, 2000, "1:3")
    assert "the hard limit (3 s), which kills, is" in err, err[-3000:]
    assert "stopping now" in err, err[-3000:]


@pytest.mark.parametrize("name", [None, "w) R 1 2 3 (x"], ids=["worker", "comm-parens"])
def test_a_worker_that_uses_up_its_cpu_time_limit_is_replaced_not_counted_a_crash(tmp, name):
    """A worker inherits the CPU time limit (here set for the workers alone, through a
    --worker wrapper). One that used up its soft limit died of SIGXCPU mid-attempt,
    counted a crash (WORKER_CRASHED, an infrastructure failure toward the breaker). A
    worker now goes on (the kernel lets it, up to the hard limit), and the supervisor
    replaces it after its attempt with a fresh one, naming the limit. Each attempt reads a
    7.5 MiB answer, some of a worker's CPU, and fails as a malformed one. Run from a file
    whose `name` holds ") (" and fields of its own, the worker's command name in
    /proc/PID/stat does too: its CPU time is still read after the name's last ')'."""
    tmp = str(tmp)
    exe = binpath("autopack-worker")
    if name is not None:
        os.symlink(exe, os.path.join(tmp, name))
        exe = os.path.join(tmp, name)
    wrapper = os.path.join(tmp, "worker.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec prlimit --cpu=1:600 '%s' \"$@\"\n" % exe)
    os.chmod(wrapper, 0o755)
    url = init_db(tmp)
    ws = os.path.join(tmp, "ws")
    import_plan(tmp, url, [("r%d" % i, ws, [phase_spec()]) for i in range(200)])
    llm = Standin(tmp, {"default": {"mode": "huge", "size_mib": 7.5}})
    try:
        sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", "--llm-retries", 0,
                         "--max-attempts-per-phase", 1, "--worker", wrapper,
                         *llm_args(llm), env={"ANTHROPIC_API_KEY": "sk-ant-cpu-limit"})
        rc = sup.wait(timeout=600)
    finally:
        llm.stop()
    err = sup.stderr()
    assert rc == 0, (rc, err[-3000:])
    assert "its CPU time limit (ulimit -t, LimitCPU=) is 1 s (the hard limit, which kills," \
        " 600 s); replacing it with a fresh one" in err, err[-3000:]
    assert rows(url, "SELECT outcome, count(*) AS n FROM attempts GROUP BY outcome") == \
        [{"outcome": "failed", "n": 200}], err[-3000:]
