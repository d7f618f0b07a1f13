"""Supervisors choosing their drain session on one PostgreSQL database (docs/postgresql.md,
"Several hosts", "Sessions"): a supervisor stopped while it holds the session-choosing
lock blocks no other for good; one declared lost while it waits for that lock exits 3 at
once."""
import signal

from pg_cluster import connect
from supervisor_helpers import rogue_supervisor, sql, wait_for
from test_fleet import SESSION_LOCK_KEY as LOCK_KEY
from test_fleet import attempts, new_pg_db, supervisor_ids


def lock_held_and_waiting(url):
    """Whether a server process holds the session-choosing lock and waits for another
    lock in its next statement."""
    return sql(url, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
               " WHERE l.locktype = 'advisory' AND l.objid = ? AND l.granted"
               " AND a.wait_event_type = 'Lock'", LOCK_KEY)[0][0]


def test_a_supervisor_stopped_holding_the_session_choosing_lock_blocks_no_other(
        tmp, pg_cluster):
    """The first supervisor takes the session-choosing lock, then waits on drain_sessions
    (the test holds that table) and is SIGSTOPped there; the table is let go. The second
    supervisor, started then, must not fail on the lock (before: `canceling statement due
    to lock timeout`, exit 1 after a quarter lease, for as long as the first stayed
    stopped): the server ends the stopped one's session, whose transaction held the lock,
    after half its lease, and the second starts, says who held the lock, and drains."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=2, phases=2)
    holder = connect(url)
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("LOCK TABLE drain_sessions IN ACCESS EXCLUSIVE MODE")
    first = rogue_supervisor(tmp, url, "good", "--workers", 1, "--lease-timeout", 8,
                             "--exit-when-drained", name="first")
    second = None
    try:
        wait_for(lambda: lock_held_and_waiting(url), timeout=30,
                 step=0.02, what="the first supervisor holding the lock, waiting")
        first.signal(signal.SIGSTOP)
        holder.rollback()
        second = rogue_supervisor(tmp, url, "good", "--workers", 1, "--lease-timeout", 8,
                                  "--exit-when-drained", name="second")
        assert second.wait(timeout=120) == 0, second.stderr()
        first.signal(signal.SIGCONT)
        # The first one's connection was ended while it started: exit 1, as a
        # connection lost while starting always is.
        assert first.wait(timeout=60) == 1, first.stderr()
    finally:
        first.signal(signal.SIGCONT)
        first.kill()
        holder.close()
        if second is not None:
            second.kill()
    err = second.stderr()
    assert "lock timeout" not in err, err
    ids = supervisor_ids(url)
    first_id = ids[first.proc.pid]
    assert "held by supervisor %d (" % first_id in err, err
    rows = attempts(url)
    assert len(rows) == 4 and {r[3] for r in rows} == {"success"}, rows
    assert {r[4] for r in rows} == {ids[second.proc.pid]}


def test_a_supervisor_declared_lost_while_it_waits_for_the_lock_exits_3_at_once(
        tmp, pg_cluster):
    """The test holds the session-choosing lock (inside a transaction); a supervisor
    started then waits for it, renewing its heartbeat every quarter lease, and is declared
    lost meanwhile (its row made `lost`, as another supervisor's rescue makes it). At its
    next renewal it must say so and exit 3, the lock still held and no session written
    (before, it waited on, chose or started its session once the lock was free, and exited
    3 only at its first commit, leaving the session it started open)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, phases=1)
    holder = connect(url)
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    sup = rogue_supervisor(tmp, url, "good", "--workers", 1, "--lease-timeout", 2,
                           "--exit-when-drained", name="sup")
    try:
        wait_for(lambda: "the session-choosing lock is held by" in sup.stderr(), timeout=60,
                 what="the supervisor waiting for the lock")
        sid = supervisor_ids(url)[sup.proc.pid]
        sql(url, "UPDATE supervisors SET state = 'lost', ended_at = clock_timestamp()"
            " AT TIME ZONE 'UTC' WHERE supervisor_id = ?", sid)
        # The lock is held until after the wait: exiting only once it is free never ends.
        assert sup.wait(timeout=60) == 3, sup.stderr()
    finally:
        holder.rollback()
        holder.close()
        sup.kill()
    err = sup.stderr()
    assert "DECLARED LOST" in err and "while it waited for the session-choosing lock" in err, \
        err
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]
    assert sql(url, "SELECT state, session_id FROM supervisors WHERE supervisor_id = ?",
               sid) == [("lost", None)]
