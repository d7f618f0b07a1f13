"""The README's backups, done while a supervisor drains: the sqlite3 CLI's .backup and VACUUM
INTO give consistent copies that autopack opens as the same database, and the drain goes
on committing meanwhile."""
import os
import shutil
import subprocess

import pytest

from conftest import ctl
from supervisor_helpers import (gate_check, llm_supervisor, new_db, sql,
                                status_when, wait_for)


def sqlite3_cli(*args):
    exe = shutil.which("sqlite3")
    if exe is None:
        pytest.skip("the sqlite3 command-line shell is not installed (make deps installs it)")
    return subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=120)


def test_backup_and_vacuum_into_while_the_supervisor_drains(tmp, llm):
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=3, phases=2, check=check)
    path = url[len("sqlite:///"):]
    sup = llm_supervisor(tmp, url, llm, "--workers", 3, "--exit-when-drained")
    try:
        # Three attempts hold their phases in flight, with their events committed.
        status_when(sup, lambda s: s["queue"]["in_flight"] == 3, what="three leases")
        wait_for(lambda: sql(url, "SELECT count(*) FROM llm_usage_events")[0][0] == 3, 60,
                 what="the first calls committed")
        copies = [os.path.join(str(tmp), "backup.db"), os.path.join(str(tmp), "vacuum.db")]
        r = sqlite3_cli(path, ".backup %s" % copies[0])
        assert r.returncode == 0 and r.stderr == "", r
        r = sqlite3_cli(path, "VACUUM INTO '%s'" % copies[1])
        assert r.returncode == 0 and r.stderr == "", r
        # The drain goes on: the phases finish and commit after the copies.
        open(go, "w").close()
        assert sup.wait(timeout=180) == 0, sup.stderr()
    finally:
        sup.kill()
    uuid = sql(url, "SELECT db_uuid FROM meta")[0][0]
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 6)]
    for copy in copies:
        curl = "sqlite:///" + copy
        assert sql(curl, "PRAGMA integrity_check") == [("ok",)]
        # A consistent snapshot: three attempts open, their calls recorded, nothing later.
        assert sql(curl, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(3,)]
        assert sql(curl, "SELECT state, count(*) FROM phases GROUP BY state") == \
            [("EXECUTING", 3), ("QUEUED", 3)]
        r = ctl("--db", curl, "db", "check", "--json")
        assert r.rc == 0, r
        assert sql(curl, "SELECT db_uuid FROM meta")[0][0] == uuid
