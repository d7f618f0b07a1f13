"""A stall of the supervisor's loop on SQLite spent waiting for the database (docs/
supervisor.md, "Its own stalls are not the workers' fault"): another process holds
SQLite's write lock (the sqlite3 shell's BEGIN IMMEDIATE, left open), so the supervisor's
commit waits in SQLite's busy handler, its loop with it. The lag warning names the
database and the statement that waited, as it does on PostgreSQL; before, it blamed `the
supervisor itself` (stopped, starved or blocked)."""
import os
import subprocess

from supervisor_helpers import Standin, gate_check, llm_supervisor, new_db, status_when, \
    wait_for


def test_a_stall_behind_another_process_s_write_lock_names_the_database(tmp):
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=2, phases=1, check=check)
    llm = Standin(tmp)
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--exit-when-drained")
    shell = None
    try:
        status_when(sup, lambda s: s["queue"]["in_flight"] == 2, what="both phases in their checks")
        shell = subprocess.Popen(["sqlite3", os.path.join(str(tmp), "autopack.db")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        shell.stdin.write(".timeout 60000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
        shell.stdin.flush()
        assert shell.stdout.readline() == "locked\n"
        # The checks end; the supervisor's commit of their results waits for the lock. A
        # stall before (a loaded machine's) is not that wait.
        before = len(sup.stderr())
        open(go, "w").close()
        wait_for(lambda: "stalled for" in sup.stderr()[before:], 120,
                 what="the stall reported")
        shell.communicate("ROLLBACK;\n", timeout=30)
        assert shell.returncode == 0
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        if shell is not None and shell.poll() is None:
            shell.kill()
        sup.kill()
        llm.stop()
    stalls = [x for x in sup.stderr()[before:].splitlines() if "stalled for" in x]
    assert "the supervisor itself stalled" not in stalls[0], stalls
    assert "the supervisor's loop stalled for" in stalls[0], stalls
    assert "waiting for the database: its statements waited" in stalls[0], stalls
    assert "in SQLite (the longest: BEGIN IMMEDIATE), for a lock another process held" \
        in stalls[0], stalls
