"""The database dropped (DROP DATABASE ... WITH (FORCE), which ends its sessions) under a
supervisor, as it starts or as it drains: the supervisor ends at once with DATABASE LOST
naming the database, exit status 3 (docs/postgresql.md, "Several hosts"; README, "Exit
statuses"), never a generic exit 1, nor minutes of retries."""
import time

import pytest

from supervisor_helpers import rogue_supervisor, wait_for
from test_fleet import attempts_of, new_pg_db
from test_pg_waits import lock_phases


def assert_lost(sup, name, t0):
    """The supervisor ended with exit status 3 within 15 s of the drop at t0, its last
    error DATABASE LOST naming database `name` as gone."""
    rc = sup.wait(timeout=60)
    took = time.time() - t0
    err = sup.stderr()
    assert rc == 3, err
    assert took < 15, (took, err)
    lost = [x for x in err.splitlines() if "DATABASE LOST" in x]
    assert lost and "the database %s is gone from the server (dropped, or renamed" % name \
        in lost[0], err
    assert 'database "%s" does not exist' % name in lost[0], err
    return err


@pytest.mark.parametrize("table", ["meta", "supervisors", "drain_sessions", "phases"])
def test_a_database_dropped_while_the_supervisor_starts_is_lost(tmp, pg_cluster, table):
    """The supervisor's start waits behind a lock of the test's on `table` (opening the
    database, registering, choosing its session, reading its queue) when the database is
    dropped: it must exit 3 with DATABASE LOST naming the database, having dispatched
    nothing, without trying to leave the fleet in it. Before, it exited 1 with the
    server's `terminating connection due to administrator command` (or `no connection to
    the server`), which named no cause."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=2, phases=2)
    holder = lock_phases(url, table)
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained")
    try:
        wait_for(lambda: "has not answered" in sup.stderr(), timeout=60,
                 what="the start waiting for the lock")
        t0 = time.time()
        pg_cluster.drop_database(name)
        err = assert_lost(sup, name, t0)
    finally:
        sup.kill()
        holder.close()
    assert "while the supervisor started; nothing was dispatched; exit status 3" in err, err
    assert "could not leave the fleet" not in err, err


def test_a_database_dropped_while_the_supervisor_drains_is_lost(tmp, pg_cluster):
    """The database dropped while the supervisor's workers run their phases: the
    supervisor, connecting again, is refused as the database does not exist, and must end
    at once with DATABASE LOST naming it, exit status 3. Before, it took that refusal for
    a server out of reach, retried every commit with backoff for about 95 s and exited 3
    with `the database refused 50 commits in a row` (`BEGIN: no connection to the
    server`)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=2, phases=2)
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained",
                           env={"ROGUE_DELAY": "2"})
    try:
        wait_for(lambda: attempts_of(url, sup.proc.pid) >= 1, what="a phase leased")
        t0 = time.time()
        pg_cluster.drop_database(name)
        err = assert_lost(sup, name, t0)
    finally:
        sup.kill()
    assert "commits in a row" not in err, err
