"""Faults of the supervisor's own making or of its disk: a stalled supervisor is not a hung
worker, and a database that stops taking commits ends the supervisor cleanly. Real
processes on real files; the full disk is a tmpfs the test mounts."""
import errno
import fcntl
import os
import signal
import subprocess
import time

import pytest

from conftest import ctl
from supervisor_helpers import (Supervisor, llm_supervisor, new_db, sql, status_when,
                                wait_for)

# --- 6. a stall of the supervisor itself ----------------------------------------------

def test_6_a_stopped_supervisor_judges_no_worker_by_its_own_gap(tmp, llm):
    go = os.path.join(str(tmp), "ws", "go")
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



# --- 4. a full disk ---------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp):
    """An 8 MiB tmpfs mounted for the test: the database lives there and can fill it."""
    mnt = tmp / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s); the full-disk case needs root"
                    % r.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(directory):
    """Write a file until the file system is full; return its path, or None when the
    database's own writes had filled it already."""
    path = os.path.join(str(directory), "filler")
    try:
        f = open(path, "wb", buffering=0)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
        return None
    with f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return path


def lock_is_free(path):
    with open(path, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


def test_4_a_disk_that_fills_mid_drain_ends_the_supervisor_with_exit_3(tmp, llm, small_disk):
    go = os.path.join(str(tmp), "ws", "go")
    check = "while [ ! -e %s ]; do sleep 0.05; done" % go
    url = new_db(small_disk, runs=3, phases=4, check=check, workspace=str(tmp / "ws"))
    path = url[len("sqlite:///"):]
    sup = llm_supervisor(tmp, url, llm, "--workers", 3)
    st = status_when(sup, lambda s: s["queue"]["in_flight"] == 3, what="three leases")
    workers = [w["pid"] for w in st["pool"]["workers"]]
    filler = fill(small_disk)
    open(go, "w").close()   # the attempts end: their ends cannot be committed
    assert sup.wait(timeout=120) == 3, sup.stderr()
    err = sup.stderr()
    assert "giving up on the database" in err and "full" in err, err
    # Its workers are gone and its lock is released.
    assert not [p for p in workers if os.path.exists("/proc/%d" % p)
                and "zombie" not in open("/proc/%d/status" % p).read().lower()]
    assert lock_is_free(path)
    if filler is not None:
        os.unlink(filler)
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    again = llm_supervisor(tmp, url, llm, "--workers", 3, "--exit-when-drained", name="again")
    assert again.wait(timeout=180) == 0, again.stderr()
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == [("COMPLETE", 12)]
    assert sql(url, "SELECT count(*) FROM (SELECT run_id, phase_id FROM attempts WHERE"
               " outcome = 'success' GROUP BY 1, 2 HAVING count(*) > 1)") == [(0,)]


def test_4_a_full_disk_before_the_first_dispatch_backs_off_and_gives_up(tmp, small_disk):
    url = new_db(small_disk, runs=2, phases=2, workspace=str(tmp / "ws"))
    path = url[len("sqlite:///"):]
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run")
    sup.wait_ready()
    fill(small_disk)
    sup.ctl("scale", 2)   # now the dispatch rounds fail
    assert sup.wait(timeout=120) == 3, sup.stderr()
    err = sup.stderr()
    assert "giving up on the database" in err and "full" in err, err
    assert lock_is_free(path)


def test_4_reading_a_database_on_a_full_disk_names_the_full_disk(tmp, small_disk):
    """SQLite reads a WAL database through a -shm file it must grow; on a full disk that
    fails as a bare "disk I/O error". The message says why."""
    url = new_db(small_disk, runs=1, phases=2, workspace=str(tmp / "ws"))
    fill(small_disk)
    r = ctl("--db", url, "db", "check")
    assert r.rc != 0, r
    assert "disk I/O error (No space left on device)" in r.err, r
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run")
    assert sup.wait(timeout=60) == 1, sup.stderr()
    assert "(No space left on device)" in sup.stderr(), sup.stderr()
