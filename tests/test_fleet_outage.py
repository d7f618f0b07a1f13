"""One supervisor of a fleet cut off from the PostgreSQL server while the others reach it
(tests/pg_outage_proxy.py between that supervisor and the suite's server): cut for longer
than its lease, it is declared lost, and once back it learns so and exits 3 without
writing, whatever it was doing (docs/postgresql.md, "Several hosts")."""
import time

from pg_outage_proxy import OutageProxy
from supervisor_helpers import rogue_supervisor, sql, wait_for
from test_fleet import attempts, attempts_of, new_pg_db, supervisor_ids


def test_a_supervisor_cut_off_while_idle_past_its_lease_exits_3_and_ends_nothing(
        tmp, pg_cluster):
    """One run of 18 phases held by the first supervisor; the second, with nothing to do,
    is cut off from the server for 12 s (lease 5 s). The first declares it lost, drains
    the run and ends the session. The second, back, has nothing to commit: it must still
    learn that it was declared lost (its leave finds its row no longer live), exit 3, and
    leave the session's end as the first wrote it."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, phases=18)
    proxy = OutageProxy(pg_cluster.port)
    env = {"ROGUE_DELAY": "0.5"}
    first = rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 5,
                             "--exit-when-drained", env=env, name="first")
    cut = None
    try:
        wait_for(lambda: attempts_of(url, first.proc.pid) >= 1, what="the run held")
        cut = rogue_supervisor(tmp, proxy.url(name), "good", "--workers", 2,
                               "--lease-timeout", 5, "--exit-when-drained", env=env,
                               name="cut")
        wait_for(lambda: "waiting for 1 attempt(s) open elsewhere" in cut.stderr(),
                 what="the second supervisor idle")
        proxy.down()
        wait_for(lambda: "[LOST] supervisor" in first.stderr(), timeout=60,
                 what="the cut supervisor declared lost")
        assert first.wait(timeout=60) == 0, first.stderr()
        ended = sql(url, "SELECT stop_reason, completed_at FROM drain_sessions")
        time.sleep(12 - 5)
        proxy.up()
        assert cut.wait(timeout=60) == 3, cut.stderr()
    finally:
        first.kill()
        if cut is not None:
            cut.kill()
        proxy.close()
    err = cut.stderr()
    assert "DECLARED LOST" in err, err
    assert "ended (declared lost by another supervisor)" in err, err
    ids = supervisor_ids(url)
    assert sql(url, "SELECT state, lost_by FROM supervisors WHERE supervisor_id = ?",
               ids[cut.proc.pid]) == [("lost", ids[first.proc.pid])]
    # The session's end is the first supervisor's, untouched.
    assert ended[0][0] == "drained"
    assert sql(url, "SELECT stop_reason, completed_at FROM drain_sessions") == ended
    rows = attempts(url)
    assert len(rows) == 18 and {r[3] for r in rows} == {"success"}
    assert {r[4] for r in rows} == {ids[first.proc.pid]}


def test_a_supervisor_declared_lost_answers_no_command_once_back(tmp, pg_cluster):
    """A command for the second supervisor is sent while it is cut off; it stays cut for
    longer than its lease and is declared lost. Once back, it must learn that before it
    reads anything for the fleet: it exits 3 and the command stays unanswered (before, the
    tick that connected it again read and ran the command, and answered it, about a second
    before its heartbeat found it lost)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, phases=30)
    proxy = OutageProxy(pg_cluster.port)
    env = {"ROGUE_DELAY": "0.5"}
    first = rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 5,
                             "--exit-when-drained", env=env, name="first")
    cut = None
    try:
        wait_for(lambda: attempts_of(url, first.proc.pid) >= 1, what="the run held")
        cut = rogue_supervisor(tmp, proxy.url(name), "good", "--workers", 2,
                               "--lease-timeout", 5, "--exit-when-drained", env=env,
                               name="cut")
        wait_for(lambda: "waiting for 1 attempt(s) open elsewhere" in cut.stderr(),
                 what="the second supervisor idle")
        cut_id = supervisor_ids(url)[cut.proc.pid]
        proxy.down()
        sql(url, "INSERT INTO supervisor_commands (supervisor_id, command, args, created_at,"
            " created_by) VALUES (?, 'pause', '[]', clock_timestamp() AT TIME ZONE 'UTC',"
            " 'test')", cut_id)
        sql(url, "NOTIFY autopack_control")
        wait_for(lambda: "[LOST] supervisor %d " % cut_id in first.stderr(), timeout=60,
                 what="the cut supervisor declared lost")
        proxy.up()
        assert cut.wait(timeout=60) == 3, cut.stderr()
        assert first.wait(timeout=60) == 0, first.stderr()
    finally:
        first.kill()
        if cut is not None:
            cut.kill()
        proxy.close()
    err = cut.stderr()
    assert "DECLARED LOST" in err, err
    assert "from the database" not in err, err
    assert sql(url, "SELECT count(*) FROM supervisor_command_results") == [(0,)]
