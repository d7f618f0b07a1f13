"""Several supervisors on one PostgreSQL database (docs/postgresql.md, "Several hosts"):
real supervisors and workers as separate processes, draining a database of the suite's
own PostgreSQL server together; one killed, one stopped past its lease, the server
restarted under them."""
import json
import os
import re
import signal
import socket
import struct
import time

import msgpack
import pytest

from conftest import ctl
from pg_cluster import connect
from supervisor_helpers import (Supervisor, log_times, make_plan, rogue_notes,
                                rogue_supervisor, sql, status_when, wait_for)

# The key of the supervisors' session-choosing lock (a transaction's advisory lock).
SESSION_LOCK_KEY = 1095782995


def new_pg_db(tmp, url, runs, tiers=1, phases=3):
    """Create the schema in the empty database at url and import a plan into it."""
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r
    plan = make_plan(os.path.join(str(tmp), "plan.json"), runs, tiers, phases)
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 0, r
    return url


def attempts(url):
    return sql(url, "SELECT attempt_id, run_id, phase_id, outcome, supervisor_id, started_at,"
               " ended_at FROM attempts ORDER BY attempt_id")


def supervisor_ids(url):
    return dict(sql(url, "SELECT pid, supervisor_id FROM supervisors"))


def assert_one_per_run_in_order(rows, expected_phases):
    """Inside each run the attempts follow the plan's order, and none starts before the
    one before it ended (one phase per run at a time, across every supervisor)."""
    by_run = {}
    for row in rows:
        by_run.setdefault(row[1], []).append(row)
    for run, rs in by_run.items():
        assert [r[2] for r in rs if r[3] != "supervisor_lost"] == expected_phases, run
        for before, after in zip(rs, rs[1:]):
            assert before[6] is not None and before[6] <= after[5], (run, before, after)


def test_three_supervisors_drain_2000_phases_each_once_in_order(tmp, pg_url):
    url = new_pg_db(tmp, pg_url, runs=100, tiers=2, phases=10)
    # The session-choosing lock held until all three wait for it: none starts draining
    # before the others are up, however late one of them starts.
    holder = connect(url)
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SESSION_LOCK_KEY,))
    try:
        sups = [Supervisor(tmp, url, "--workers", 4, "--dry-run", "--exit-when-drained",
                           name="sup%d" % i) for i in range(3)]
        for s in sups:
            wait_for(lambda: "the session-choosing lock is held by" in s.stderr(),
                     timeout=60, what="each supervisor waiting for the lock")
    finally:
        holder.rollback()
        holder.close()
    for s in sups:
        assert s.wait(timeout=600) == 0, s.stderr()
    rows = attempts(url)
    seen = {}
    for r in rows:
        seen.setdefault((r[1], r[2]), []).append(r)
    assert [v for v in seen.values() if len(v) > 1] == []
    assert len(rows) == 2000
    assert len({(r[1], r[2]) for r in rows}) == 2000, "a phase was visited twice"
    assert all(r[3] == "dry_run" for r in rows)
    assert_one_per_run_in_order(
        rows, ["p%d-%d" % (t, p) for t in range(2) for p in range(10)])
    # Every supervisor drained a share, in one shared session that ended drained.
    ids = supervisor_ids(url)
    assert sorted(ids) == sorted(s.proc.pid for s in sups)
    share = {}
    for r in rows:
        share[r[4]] = share.get(r[4], 0) + 1
    assert sorted(share) == sorted(ids.values()), share
    assert sql(url, "SELECT count(*), min(stop_reason) FROM drain_sessions") == [(1, "drained")]
    assert sql(url, "SELECT DISTINCT state FROM supervisors") == [("stopped",)]
    assert sql(url, "SELECT count(*) FROM phases WHERE state <> 'QUEUED'") == [(0,)]


def logged_statements(cluster, start, needle):
    """The statements containing `needle` the server logged since offset `start`."""
    with open(cluster.log, errors="replace") as f:
        f.seek(start)
        return [line for line in f.read().splitlines()
                if re.search(r"LOG:  (?:statement|execute [^:]*): ", line) and needle in line]


def test_a_round_claims_its_phases_in_one_batch_of_two_statements(tmp, pg_cluster):
    """Four idle workers and four runs made ready at once: the round that leases them
    locks the four runs in one statement and opens the four attempts in one more, as the
    server's own log of the database's statements shows."""
    name = pg_cluster.new_database()
    pg_cluster.psql("ALTER DATABASE \"%s\" SET log_statement = 'all'" % name)
    url = pg_cluster.url(name)
    assert ctl("--db", url, "db", "init").rc == 0
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run", "--batch-size", 4,
                     "--allow-empty-db")
    try:
        status_when(sup, lambda st: [w["state"] for w in st["pool"]["workers"]] == ["idle"] * 4,
                    what="four idle workers")
        start = os.path.getsize(pg_cluster.log)
        plan = make_plan(os.path.join(str(tmp), "plan.json"), 4, 1, 2)
        assert ctl("--db", url, "run", "import", plan).rc == 0
        # The batch size leaves phases queued: exit status 5.
        assert sup.wait(timeout=120) == 5, sup.stderr()
        rows = sql(url, "SELECT run_id, phase_id FROM attempts ORDER BY run_id")
    finally:
        sup.kill()
        pg_cluster.drop_database(name)
    assert [r[1] for r in rows] == ["p0-0"] * 4 and len({r[0] for r in rows}) == 4, rows
    locks = logged_statements(pg_cluster, start, "FOR UPDATE SKIP LOCKED")
    claims = logged_statements(pg_cluster, start, "INSERT INTO attempts")
    assert (len(locks), len(claims)) == (1, 1), (locks, claims)


def open_attempts_of(url, pid):
    return sql(url, "SELECT count(*) FROM attempts a JOIN supervisors s"
               " ON s.supervisor_id = a.supervisor_id WHERE s.pid = ? AND a.ended_at IS NULL",
               pid)[0][0]


def attempts_of(url, pid):
    return sql(url, "SELECT count(*) FROM attempts a JOIN supervisors s"
               " ON s.supervisor_id = a.supervisor_id WHERE s.pid = ?", pid)[0][0]


def assert_each_phase_completed_once(url, rows, n):
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", n)]
    done = [(r[1], r[2]) for r in rows if r[3] == "success"]
    assert len(done) == n and len(set(done)) == n


def test_a_killed_supervisors_phases_are_rescued_after_its_lease(tmp, pg_url):
    """SIGKILL one supervisor while it holds two attempts: another declares it lost once
    its lease has run out, closes them as supervisor_lost, and runs their phases itself;
    nothing is lost and no run ever has two attempts at once."""
    url = new_pg_db(tmp, pg_url, runs=20, phases=3)
    never = os.path.join(str(tmp), "never")
    held = rogue_supervisor(tmp, url, "batch", "--workers", 2, "--lease-timeout", 2,
                            env={"ROGUE_GO": never}, name="held")
    other = None
    try:
        wait_for(lambda: open_attempts_of(url, held.proc.pid) == 2,
                 what="two attempts open by the first supervisor")
        other = rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 2,
                                 "--exit-when-drained", name="other")
        wait_for(lambda: attempts_of(url, other.proc.pid) >= 5,
                 what="the second supervisor draining")
        held.signal(signal.SIGKILL)
        assert other.wait(timeout=120) == 0, other.stderr()
    finally:
        held.kill()
        open(never, "w").close()
        if other is not None:
            other.kill()
    ids = supervisor_ids(url)
    held_id, other_id = ids[held.proc.pid], ids[other.proc.pid]
    rows = attempts(url)
    lost = [r for r in rows if r[3] == "supervisor_lost"]
    assert len(lost) == 2 and all(r[4] == held_id for r in lost), lost
    assert_each_phase_completed_once(url, rows, 60)
    assert all(r[4] == other_id for r in rows if r[3] == "success")
    assert_one_per_run_in_order(rows, ["p0-%d" % p for p in range(3)])
    assert sql(url, "SELECT state, lost_by FROM supervisors WHERE supervisor_id = ?",
               held_id) == [("lost", other_id)]
    err = other.stderr()
    assert "[LOST] supervisor %d (" % held_id in err, err
    assert "closed 2 attempt(s) of lost supervisors" in err, err


def test_a_supervisor_started_after_one_of_a_shorter_lease_died_rescues_it_after_that_lease(
        tmp, pg_url):
    """A supervisor of a 2 s lease SIGKILLed while it holds an attempt, and one of a 20 s
    lease started once that lease has run out: the newcomer declares it lost, and runs its
    phase, after it has been connected for the dead one's lease (at its first beat then, 5
    s), not for its own 20 s; after an outage the dead one's lease is what it would need
    to renew its heartbeat."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=1)
    never = os.path.join(str(tmp), "never")
    held = rogue_supervisor(tmp, url, "batch", "--workers", 1, "--lease-timeout", 2,
                            env={"ROGUE_GO": never}, name="held")
    late = None
    try:
        wait_for(lambda: open_attempts_of(url, held.proc.pid) == 1,
                 what="the first supervisor's attempt open")
        held.signal(signal.SIGKILL)
        wait_for(lambda: sql(url, "SELECT EXTRACT(EPOCH FROM (clock_timestamp() AT TIME ZONE"
                                  " 'UTC') - heartbeat_at) > 2.5 FROM supervisors") == [(True,)],
                 what="its lease run out")
        started = time.monotonic()
        late = rogue_supervisor(tmp, url, "good", "--workers", 1, "--lease-timeout", 20,
                                "--exit-when-drained", name="late")
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE outcome ="
                                  " 'supervisor_lost'") == [(1,)], 60,
                 what="the dead one's attempt rescued")
        took = time.monotonic() - started
        assert late.wait(timeout=60) == 0, late.stderr()
    finally:
        held.kill()
        open(never, "w").close()
        if late is not None:
            late.kill()
    assert took < 15, took
    assert sql(url, "SELECT outcome FROM attempts ORDER BY attempt_id") == [
        ("supervisor_lost",), ("success",)]


def test_a_supervisor_stopped_past_its_lease_has_its_late_results_refused(tmp, pg_url):
    """SIGSTOP a supervisor holding two attempts until another has rescued them and
    drained the rest, then let its workers finish and SIGCONT it: its late results are
    refused by the fence and counted, and it stops with exit 3 and a clear error."""
    url = new_pg_db(tmp, pg_url, runs=6, phases=2)
    go = os.path.join(str(tmp), "ws", "go")
    paused = rogue_supervisor(tmp, url, "batch", "--workers", 2, "--lease-timeout", 2,
                              env={"ROGUE_GO": go}, name="paused")
    other = None
    try:
        wait_for(lambda: open_attempts_of(url, paused.proc.pid) == 2,
                 what="two attempts open by the first supervisor")
        paused.signal(signal.SIGSTOP)
        other = rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 2,
                                 "--exit-when-drained", name="other")
        assert other.wait(timeout=120) == 0, other.stderr()
        # Its workers finish while it is still stopped: their results wait for it.
        open(go, "w").close()
        wait_for(lambda: len(rogue_notes(tmp, "paused", "result")) == 2,
                 what="both workers' results sent")
        paused.signal(signal.SIGCONT)
        assert paused.wait(timeout=120) == 3, paused.stderr()
    finally:
        paused.signal(signal.SIGCONT)
        paused.kill()
        open(go, "w").close()
        if other is not None:
            other.kill()
    ids = supervisor_ids(url)
    paused_id = ids[paused.proc.pid]
    rows = attempts(url)
    lost = [r for r in rows if r[3] == "supervisor_lost"]
    assert len(lost) == 2 and all(r[4] == paused_id for r in lost), lost
    # The late results changed nothing: each phase completed once, by the other.
    assert_each_phase_completed_once(url, rows, 12)
    assert all(r[4] == ids[other.proc.pid] for r in rows if r[3] == "success")
    assert_one_per_run_in_order(rows, ["p0-0", "p0-1"])
    (state, rejected), = sql(url, "SELECT state, rejected FROM supervisors"
                             " WHERE supervisor_id = ?", paused_id)
    err = paused.stderr()
    assert "DECLARED LOST: another supervisor declared supervisor %d lost" % paused_id in err
    # What its workers sent while it was stopped was read, refused and counted.
    late = int(re.search(r"; (\d+) late write\(s\) refused", err).group(1))
    assert state == "lost" and rejected >= late >= 1, (state, rejected, late)


@pytest.fixture
def own_cluster():
    """A PostgreSQL server of this test alone (it is restarted under the supervisors)."""
    from pg_cluster import Cluster
    c = Cluster()
    yield c
    c.close()


def test_postgresql_restarted_mid_drain_loses_nothing(tmp, own_cluster):
    """Restart the server while two supervisors drain: their commits fail, they connect
    again, commit what waited and finish; every phase completes once with its event."""
    url = new_pg_db(tmp, own_cluster.url(own_cluster.new_database()), runs=40, phases=5)
    # The phases wait for both supervisors to be ready, then take 0.2 s each (the drain
    # some 5 s); those not started when a fifth is done wait for the restart: it comes
    # mid-drain however slow the machine is.
    go = os.path.join(str(tmp), "ws", "go")
    sups = [rogue_supervisor(tmp, url, "good", "--workers", 4, "--lease-timeout", 5,
                             "--exit-when-drained", name="sup%d" % i,
                             env={"ROGUE_GO": go, "ROGUE_DELAY": "0.2"}) for i in range(2)]
    try:
        # Both past their start (a connection lost while a supervisor starts is exit 1,
        # for its service manager to start it again).
        for s in sups:
            s.wait_ready(timeout=120)
        open(go, "w").close()
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL")
                 [0][0] >= 40, what="a fifth of the drain done")
        os.unlink(go)
        own_cluster.restart()
        open(go, "w").close()
        for s in sups:
            assert s.wait(timeout=180) == 0, s.stderr()
    finally:
        for s in sups:
            s.kill()
    rows = attempts(url)
    assert_each_phase_completed_once(url, rows, 200)
    assert [r for r in rows if r[3] != "success"] == []
    assert_one_per_run_in_order(rows, ["p0-%d" % p for p in range(5)])
    assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(200,)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE events_committed = 1") == [(200,)]
    assert any("connected to %s again" % url in s.stderr() for s in sups)


def test_a_server_down_longer_than_the_lease_timeout_loses_no_supervisor(tmp, own_cluster):
    """The server stays down for longer than the lease timeout while each supervisor's
    workers run long phases (nothing to commit but the heartbeat): when it returns, every
    heartbeat on record is older than the lease. Each supervisor connects again in its
    heartbeat, renews it, and declares no other lost before a lease has passed: both
    finish the drain, every phase once."""
    url = new_pg_db(tmp, own_cluster.url(own_cluster.new_database()), runs=4, phases=1)
    go = os.path.join(str(tmp), "ws", "go")
    sups = [rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 5,
                             "--heartbeat-timeout-seconds", 60, "--exit-when-drained",
                             name="sup%d" % i, env={"ROGUE_GO": go, "ROGUE_DELAY": "15"})
            for i in range(2)]
    try:
        for s in sups:
            s.wait_ready(timeout=120)
        open(go, "w").close()
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL")
                 [0][0] == 4, what="every phase running")
        own_cluster.stop()
        for s in sups:
            wait_for(lambda: "the connection to the database is lost" in s.stderr(),
                     timeout=60, what="the lost connection seen")
        time.sleep(6)
        own_cluster.start()
        for s in sups:
            assert s.wait(timeout=180) == 0, s.stderr()
    finally:
        for s in sups:
            s.kill()
    for s in sups:
        assert "[LOST]" not in s.stderr() and "DECLARED LOST" not in s.stderr(), s.stderr()
        # While the server is down only the heartbeat tries it, each beat: the fleet's
        # reads fail once at most, where they found it gone.
        for read in ("reading commands", "reading the session's policy state"):
            assert s.stderr().count(read + ": no connection") <= 1, s.stderr()
    rows = attempts(url)
    assert_each_phase_completed_once(url, rows, 4)
    assert sql(url, "SELECT count(*) FROM supervisors WHERE state = 'lost'") == [(0,)]


def test_one_of_a_longer_lease_is_not_declared_lost_by_one_of_a_shorter_after_an_outage(
        tmp, own_cluster):
    """Two supervisors of different --lease-timeout, 20 s (a beat every 5 s) and 2 s (a
    beat every 0.5 s): the server stays down for longer than 20 s and comes back just
    after the first's attempt to connect again failed. The second connects at once, the
    first at its next beat, some 4 s later. The second judges the first only once it has
    been connected for the first's lease: neither is declared lost. Before, the second
    declared the first lost 2 s after it was back, and the first, connected again, found
    itself lost and exited 3 (DECLARED LOST), though it had missed no beat of its own."""
    url = new_pg_db(tmp, own_cluster.url(own_cluster.new_database()), runs=1, phases=1)
    sups = [Supervisor(tmp, url, "--workers", 0, "--dry-run", "--lease-timeout", lease,
                       name=name) for name, lease in (("long", 20), ("short", 2))]
    long_, short = sups
    try:
        for s in sups:
            s.wait_ready()
        wait_for(lambda: sql(url, "SELECT count(*) FROM supervisors WHERE state = 'live'"
                             " AND session_id IS NOT NULL") == [(2,)], what="both registered")
        own_cluster.stop()
        time.sleep(21)
        tried = long_.stderr().count("cannot connect again")
        wait_for(lambda: long_.stderr().count("cannot connect again") > tried, timeout=30,
                 what="an attempt of the first to connect again")
        own_cluster.start()
        for s in (short, long_):
            wait_for(lambda: "connected to %s again" % url in s.stderr()
                     or s.proc.poll() is not None, timeout=30, what="connected again")
        # Past the second's lease and beats, with both back.
        time.sleep(3)
        assert [s.proc.poll() for s in sups] == [None, None], long_.stderr()
        assert sql(url, "SELECT state FROM supervisors ORDER BY supervisor_id") == [
            ("live",), ("live",)]
        for s in sups:
            s.proc.terminate()
            assert s.wait(timeout=60) == 0, s.stderr()
    finally:
        for s in sups:
            s.kill()
    for s in sups:
        assert "[LOST]" not in s.stderr() and "DECLARED LOST" not in s.stderr(), s.stderr()


def control_ask(path, cmd, *args, timeout=30):
    """One request on a fresh connection to a supervisor's control socket: its reply,
    or None when none came within `timeout` (the connection was not being read; the
    callers ask while the server is down and start it only after the answers)."""
    body = msgpack.packb({"v": 1, "t": "request", "id": 1, "cmd": cmd,
                          "args": [str(a) for a in args]})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        c.connect(path)
        c.sendall(struct.pack(">I", len(body)) + body)
        got = b""
        try:
            while len(got) < 4 or len(got) < 4 + struct.unpack(">I", got[:4])[0]:
                more = c.recv(65536)
                if not more:
                    return None
                got += more
        except socket.timeout:
            return None
    return msgpack.unpackb(got[4:4 + struct.unpack(">I", got[:4])[0]])


def server_outages(url, sups, go, cluster, per_cycle, cycles=3):
    """Let the supervisors' phases start together (the file `go`), then `cycles` times:
    wait for `per_cycle` more phases done and stop the server at once. Yields each cycle's
    number with the server down; the caller starts it again."""
    done = "SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL"
    for s in sups:
        s.wait_ready(timeout=120)
    open(go, "w").close()
    for cycle in range(cycles):
        before = sql(url, done)[0][0]
        wait_for(lambda: sql(url, done)[0][0] >= before + per_cycle, timeout=120,
                 what="%d more phases done" % per_cycle)
        cluster.stop("immediate")
        yield cycle


def test_a_supervisor_dead_before_a_server_restart_is_rescued_a_lease_after_the_return(
        tmp, own_cluster):
    """A supervisor of a 4 s lease SIGKILLed while it holds the only phase, the server
    restarted 2.5 s later (its lease not yet run out): the other, of a 4 s lease too,
    declares it lost only once it has been connected again for the dead one's lease, 4 s
    after its reconnection, not at its first beat past the dead one's lease: every
    heartbeat on record is as old after the restart, a live supervisor's too, which needs
    that lease to connect again and renew it. The rescue then came some 7 s after the
    death and the restart, where without the restart it comes a beat past the lease
    (docs/postgresql.md, "Several hosts", "Rescue")."""
    url = new_pg_db(tmp, own_cluster.url(own_cluster.new_database()), runs=1, phases=1)
    never = os.path.join(str(tmp), "never")
    held = rogue_supervisor(tmp, url, "batch", "--workers", 1, "--lease-timeout", 4,
                            env={"ROGUE_GO": never}, name="held")
    other = None
    try:
        wait_for(lambda: open_attempts_of(url, held.proc.pid) == 1,
                 what="the first supervisor's attempt open")
        other = rogue_supervisor(tmp, url, "good", "--workers", 1, "--lease-timeout", 4,
                                 "--exit-when-drained", name="other")
        other.wait_ready()
        held.signal(signal.SIGKILL)
        held.proc.wait()
        wait_for(lambda: sql(url, "SELECT EXTRACT(EPOCH FROM (clock_timestamp() AT TIME ZONE"
                                  " 'UTC') - heartbeat_at) > 2.5 FROM supervisors WHERE pid"
                                  " = ?", held.proc.pid) == [(True,)],
                 what="2.5 s of its lease gone")
        own_cluster.restart()
        assert other.wait(timeout=120) == 0, other.stderr()
    finally:
        held.kill()
        open(never, "w").close()
        if other is not None:
            other.kill()
    err = other.stderr()
    [lost] = log_times(err, "[LOST] supervisor")
    back = [t for t in log_times(err, "connected to %s again" % url) if t < lost]
    assert back, err
    assert 4 <= lost - back[-1] < 4 + 1 + 2, (lost - back[-1], err)
    assert sql(url, "SELECT outcome FROM attempts ORDER BY attempt_id") == [
        ("supervisor_lost",), ("success",)]


def test_descriptors_opened_while_the_server_is_down_are_served_after_it_returns(
        tmp, own_cluster):
    """The server goes away three times mid-drain. Each time, once the supervisors saw
    their connection drop (libpq closed its socket), control connections are opened and
    more workers started while it is down: descriptors that may take the number of the
    connection's socket. Each is served (the requests answered, the new workers given
    phases), the watch on the next connection disturbs none of them, and the drain ends
    with every phase completed once."""
    url = new_pg_db(tmp, own_cluster.url(own_cluster.new_database()), runs=100, phases=5)
    # The phases wait for both supervisors to be ready, then take 0.05 s each: three
    # outages fit in the drain however slow the machine is.
    go = os.path.join(str(tmp), "ws", "go")
    sups = [rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 5,
                             "--exit-when-drained", name="sup%d" % i,
                             env={"ROGUE_GO": go, "ROGUE_DELAY": "0.05"}) for i in range(2)]
    lost = "the connection to the database is lost"
    try:
        seen = {s: 0 for s in sups}
        for cycle in server_outages(url, sups, go, own_cluster, 20):
            # Each supervisor found its connection gone and failed to make it again: its
            # socket is closed.
            for s in sups:
                wait_for(lambda: s.stderr().count(lost) > seen[s], timeout=120,
                         what="the lost connection seen")
            for s in sups:
                for _ in range(3):
                    assert control_ask(s.control, "status") is not None, s.stderr()
                assert control_ask(s.control, "scale", 3 + cycle) is not None, s.stderr()
            own_cluster.start()
            for s in sups:
                wait_for(lambda: s.stderr().count("connected to %s again" % url) > cycle,
                         timeout=120, what="connected again")
                seen[s] = s.stderr().count(lost)
                for _ in range(3):
                    assert control_ask(s.control, "status") is not None, s.stderr()
        for s in sups:
            assert s.wait(timeout=300) == 0, s.stderr()
    finally:
        for s in sups:
            s.kill()
    rows = attempts(url)
    assert_each_phase_completed_once(url, rows, 500)
    assert [r for r in rows if r[3] != "success"] == []
    assert_one_per_run_in_order(rows, ["p0-%d" % p for p in range(5)])
    assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(500,)]
    # Both supervisors drained, and workers started while the server was down ran
    # phases too (more processes than the four started first took jobs).
    assert len({r[4] for r in rows}) == 2
    assert len({n["pid"] for i in range(2) for n in rogue_notes(tmp, "sup%d" % i, "job")}) > 4


def test_the_cut_proxy_refuses_a_client_while_the_server_is_down():
    """A client connecting to the cut proxy while the server cannot be reached is closed
    at once, and the proxy goes on accepting: the connection error ended its accept
    thread, and every later client waited unanswered."""
    from pg_cut_proxy import CutProxy
    up = socket.socket()
    up.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    up.bind(("127.0.0.1", 0))
    port = up.getsockname()[1]
    up.close()
    proxy = CutProxy(port, "landed", nth=1)
    try:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
                try:
                    assert c.recv(1) == b""
                except ConnectionResetError:
                    pass
        assert proxy.refused == 2
        # The server back: a client passes through to it.
        up = socket.socket()
        up.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        up.bind(("127.0.0.1", port))
        up.listen(1)
        up.settimeout(10)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
            server, _ = up.accept()
            c.sendall(b"ping")
            assert server.recv(4) == b"ping"
            server.close()
        up.close()
    finally:
        proxy.close()


def drained_through_a_cut(tmp, pg_cluster, mode, runs, phases, rogue, workers, **cut):
    """Drain runs x phases with `workers` rogue workers through a proxy that cuts the
    connection once (pg_cut_proxy.CutProxy(mode, **cut)), a 5 s lease; the supervisor
    exited 0 and the cut happened: (database name, URL, proxy, supervisor)."""
    from pg_cut_proxy import CutProxy
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=runs, phases=phases)
    proxy = CutProxy(pg_cluster.port, mode, **cut)
    sup = rogue_supervisor(tmp, proxy.url(name), rogue, "--workers", workers,
                           "--lease-timeout", 5, "--exit-when-drained", name="sup")
    try:
        assert sup.wait(timeout=90) == 0, sup.stderr()
    finally:
        sup.kill()
        proxy.close()
    assert proxy.cut.is_set()
    return name, url, proxy, sup


@pytest.mark.parametrize("mode", ["landed", "lost"])
def test_a_round_whose_commit_answer_was_lost_is_settled_after_reconnecting(
        tmp, pg_cluster, mode):
    """The connection drops while a dispatch round's COMMIT is under way: once connected
    again the supervisor learns whether the round landed (its attempts exist) and either
    hands its leases to their workers or retries it; it never leaves an attempt of its
    own open that nothing runs, and drains and exits 0."""
    name, url, proxy, sup = drained_through_a_cut(tmp, pg_cluster, mode, 12, 4, "good", 4,
                                                  nth=6)
    rows = attempts(url)
    assert_each_phase_completed_once(url, rows, 48)
    assert [r for r in rows if r[3] != "success"] == []
    assert_one_per_run_in_order(rows, ["p0-%d" % p for p in range(4)])
    err = sup.stderr()
    assert "connected to %s again" % proxy.url(name) in err, err
    if mode == "landed":
        assert "had committed" in err, err
    else:
        assert "had not committed" in err, err
    pg_cluster.drop_database(name)


@pytest.mark.parametrize("mode", ["landed", "lost"])
def test_a_group_of_writes_whose_commit_answer_was_lost_loses_and_doubles_nothing(
        tmp, pg_cluster, mode):
    """The connection drops while the COMMIT of a group of writes alone (events, no
    lease) is under way: it committed (`landed`) or not (`lost`). Once connected, the
    supervisor learns which from the version of its row the group's heartbeat wrote, and
    releases the group as committed or writes it again. Every acknowledgement a worker got
    is of events a reader sees committed, each event is there once, and the drain
    ends. One run of 8 phases: while its one phase runs no run is ready, so each phase's
    events commit in a group of their own, whatever the timing (with several runs, a group
    of events also opens the leases ahead its commit tops up, and is not one of them)."""
    name, url, proxy, sup = drained_through_a_cut(tmp, pg_cluster, mode, 1, 8, "ackcheck", 2,
                                                  nth=3, writes=True)
    err = sup.stderr()
    assert "connected to %s again" % proxy.url(name) in err, err
    settled = "had committed" if mode == "landed" else "had not committed"
    assert re.search(settled + r" \(transaction \d+\); its [1-9]\d* writes", err), err
    acks = rogue_notes(tmp, "sup", "ack")
    assert len({n["att"] for n in acks}) == 8
    for n in acks:
        # When the worker read its ack, an independent reader saw every event up to it.
        assert n["rows"][:n["ack"]] == list(range(1, n["ack"] + 1)), n
    rows = attempts(url)
    assert_each_phase_completed_once(url, rows, 8)
    assert [r for r in rows if r[3] != "success"] == []
    assert sql(url, "SELECT count(*), count(DISTINCT (attempt_id, seq)) FROM events") == \
        [(24, 24)]
    assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(24,)]
    pg_cluster.drop_database(name)


def test_a_group_whose_commit_answer_was_lost_merges_and_logs_it_once(tmp, pg_cluster):
    """The connection drops after the server committed a group that merged fingerprint
    counts into the session's saved state and wrote a control_log row, before its answer
    came. Once connected again the supervisor learns that the group committed and writes
    none of it again: each fingerprint is counted once per attempt that failed with it,
    and each command has one control_log row (before, both were written twice)."""
    from pg_cut_proxy import CutProxy
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=8, phases=4)
    proxy = CutProxy(pg_cluster.port, "landed", nth=1,
                     ran=[b"INSERT INTO control_log ", b"UPDATE drain_sessions SET state_json"])
    # A long commit window: a command's row waits for the commit of the next result.
    sup = rogue_supervisor(tmp, proxy.url(name), "fail", "--workers", 4, "--lease-timeout", 5,
                           "--max-attempts-per-phase", 1, "--commit-window-ms", 5000,
                           "--exit-when-drained", env={"ROGUE_DELAY": "0.2"}, name="sup")
    sent = 0
    try:
        sup.wait_ready()
        while not proxy.cut.is_set() and sup.proc.poll() is None:
            r = ctl("--db", url, "scale", "4")
            assert r.rc == 0, r
            sent += 1
        assert proxy.cut.is_set(), sup.stderr()
        assert sup.wait(timeout=90) is not None, sup.stderr()
    finally:
        sup.kill()
        proxy.close()
    err = sup.stderr()
    assert "connected to %s again" % proxy.url(name) in err, err
    failed = dict(sql(url, "SELECT fingerprint, count(*) FROM attempts"
                      " WHERE outcome = 'failed' GROUP BY fingerprint"))
    assert len(failed) == 32 and set(failed.values()) == {1}, failed
    [(state,)] = sql(url, "SELECT state_json FROM drain_sessions")
    counted = json.loads(state)["fingerprint_counts"]
    logged = sql(url, "SELECT command, count(*) FROM control_log GROUP BY command")
    assert ({fp: n for fp, n in counted.items() if n != 1}, logged) == ({}, [("scale", sent)])
    assert counted == failed, state
    pg_cluster.drop_database(name)


@pytest.mark.parametrize("may_end", [True, False], ids=["ends_it", "may_not_end_it"])
def test_a_round_whose_commit_reaches_the_server_late_commits_nothing(
        tmp, pg_cluster, may_end):
    """The network is cut while a dispatch round's COMMIT is on its way: the supervisor's
    side of the connection is gone, the server's session still waits inside the round's
    transaction, and the COMMIT reaches it only after the supervisor connected again and
    settled the round. The supervisor ends that session before it decides; or, when its
    role may not (not a superuser, EXECUTE on pg_terminate_backend revoked), it says so
    and waits, the round neither undone nor handed out, until the server ends the session
    idle in its transaction (half the lease). Either way the round had not committed and
    the late COMMIT finds no session to commit: each phase runs once, no attempt is left
    open that nothing runs, and the drain ends."""
    from pg_cut_proxy import CutProxy
    name = pg_cluster.new_database()
    user = "autopack"
    if not may_end:
        user = "plain_" + name
        pg_cluster.psql('CREATE ROLE "%s" LOGIN' % user)
        pg_cluster.psql('ALTER DATABASE "%s" OWNER TO "%s"' % (name, user))
        pg_cluster.psql("REVOKE EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint)"
                        " FROM PUBLIC", dbname=name)
    url = new_pg_db(tmp, "postgresql://%s@127.0.0.1:%d/%s" % (user, pg_cluster.port, name),
                    runs=12, phases=4)
    proxy = CutProxy(pg_cluster.port, "held", nth=6)
    # With the session ended on request, a long lease: the server would end the waiting
    # session itself only after half of it.
    sup = rogue_supervisor(tmp, proxy.url(name, user), "good", "--workers", 4,
                           "--lease-timeout", 30 if may_end else 5, "--exit-when-drained",
                           name="sup")
    try:
        wait_for(lambda: re.search("had (not )?committed", sup.stderr())
                 or sup.proc.poll() is not None, timeout=120, what="the round in doubt settled")
        proxy.release()
        assert proxy.late_done.wait(timeout=120)
        err = sup.stderr()
        assert proxy.late == "ended", err
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        sup.kill()
        proxy.close()
    err = sup.stderr()
    assert "had not committed" in err, err
    if may_end:
        assert "which was asked to end" in err, err
    else:
        assert "could not be ended (permission denied for function pg_terminate_backend)" \
            in err, err
    rows = attempts(url)
    assert_each_phase_completed_once(url, rows, 48)
    assert [r for r in rows if r[3] != "success"] == []
    assert_one_per_run_in_order(rows, ["p0-%d" % p for p in range(4)])
    pg_cluster.drop_database(name)


def test_a_row_lock_another_transaction_holds_is_not_taken_for_the_group_in_doubt(
        tmp, pg_cluster):
    """The answer of a dispatch round's COMMIT is lost after the server committed it; when
    the supervisor connects again, another transaction holds its row's lock a moment (as
    another supervisor's rescue does). The round's transaction is over, and nothing is
    asked to end: the log said it was "still in progress in server process P, which was
    asked to end". It says whose lock it is, and the round is settled once it is gone."""
    from pg_cut_proxy import CutProxy
    import psycopg2
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=12, phases=4)
    proxy = CutProxy(pg_cluster.port, "landed", nth=6, gate=True)
    sup = rogue_supervisor(tmp, proxy.url(name), "good", "--workers", 4,
                           "--lease-timeout", 30, "--exit-when-drained", name="sup")
    con = psycopg2.connect(pg_cluster.url(name))
    try:
        assert proxy.cut.wait(timeout=60), sup.stderr()
        cur = con.cursor()
        # Waits for the round's COMMIT, which reached the server, to end first.
        cur.execute("SELECT supervisor_id FROM supervisors FOR NO KEY UPDATE")
        proxy.open()
        wait_for(lambda: "is locked by another transaction" in sup.stderr()
                 or sup.proc.poll() is not None, timeout=60, what="the lock seen")
        con.rollback()
        assert sup.wait(timeout=90) == 0, sup.stderr()
    finally:
        con.close()
        sup.kill()
        proxy.close()
    err = sup.stderr()
    assert ("this supervisor's row is locked by another transaction, not the group's"
            " (transaction ") in err, err
    assert "asked to end" not in err, err
    assert "had committed" in err, err
    rows = attempts(url)
    assert_each_phase_completed_once(url, rows, 48)
    assert [r for r in rows if r[3] != "success"] == []
    pg_cluster.drop_database(name)


def test_a_round_in_doubt_whose_id_a_crash_handed_out_again_is_settled_at_once(tmp):
    """The network is cut while a dispatch round's COMMIT is on its way (the server's
    session left inside the round's transaction) and the server then crashes before it
    wrote any of that transaction to its log: restarted, it hands out the round's
    transaction id again, here to a session the test keeps open. The supervisor, connected
    again, learns from its row that the round did not commit, at once, and drains; before,
    the server's word on that id ("in progress", another session's) made it wait a whole
    lease for a transaction that was not its own, and then give up (exit 3)."""
    from pg_cluster import Cluster
    from pg_cut_proxy import CutProxy
    import psycopg2
    # The log is written only at commits: the round's transaction is not in it at the
    # crash.
    cluster = Cluster(options="-c wal_writer_delay=10000 -c autovacuum=off")
    con = None
    try:
        name = cluster.new_database()
        url = new_pg_db(tmp, cluster.url(name), runs=12, phases=4)
        proxy = CutProxy(cluster.port, "held", nth=6, gate=True)
        sup = rogue_supervisor(tmp, proxy.url(name), "good", "--workers", 4,
                               "--lease-timeout", 5, "--exit-when-drained", name="sup")
        try:
            assert proxy.cut.wait(timeout=60), sup.stderr()
            cluster.stop("immediate")
            cluster.start()
            con = psycopg2.connect(cluster.url(name))
            cur = con.cursor()
            cur.execute("SELECT CAST(pg_current_xact_id() AS TEXT)")
            [(reused,)] = cur.fetchall()
            proxy.open()
            assert sup.wait(timeout=90) == 0, sup.stderr()
        finally:
            sup.kill()
            proxy.close()
        err = sup.stderr()
        # Settled by the row its heartbeat wrote, the reused id notwithstanding (a reconnect
        # that lands before the crash may find the old session still open first, and says
        # so; it does not wait for it: the drain ends, exit 0).
        assert "had not committed (transaction %s)" % reused in err, err
        rows = attempts(url)
        assert_each_phase_completed_once(url, rows, 48)
        assert [r for r in rows if r[3] != "success"] == []
    finally:
        if con is not None:
            con.close()
        cluster.close()


def fleet_status(url, *args):
    r = ctl("--db", url, "status", "--json", *args)
    assert r.rc == 0, r
    body = json.loads(r.out)
    assert body["ok"] is True, body
    return {s["supervisor_id"]: s for s in body["supervisors"]}


def test_control_across_hosts_through_the_database(tmp, pg_url):
    """status lists every supervisor with its workers; pause, resume, scale and stop reach
    one supervisor (--supervisor ID) or all through the database; the local socket still
    works."""
    url = new_pg_db(tmp, pg_url, runs=2, phases=2)
    sups = [Supervisor(tmp, url, "--workers", 2, "--dry-run", "--lease-timeout", 2,
                       name="sup%d" % i) for i in range(2)]
    try:
        for s in sups:
            s.wait_ready()
        ids = supervisor_ids(url)
        one, two = ids[sups[0].proc.pid], ids[sups[1].proc.pid]
        wait_for(lambda: [len(s["status"].get("workers", []))
                          for s in fleet_status(url).values()] == [2, 2],
                 what="both report their workers")
        st = fleet_status(url)
        assert sorted(st) == sorted([one, two])
        assert {st[i]["pid"] for i in st} == {s.proc.pid for s in sups}
        assert all(s["state"] == "live" for s in st.values())
        text = ctl("--db", url, "status")
        assert text.rc == 0 and "supervisor %d  live" % one in text.out, text
        assert "worker 1  pid" in text.out, text

        r = ctl("--db", url, "pause", "--supervisor", one, "--json")
        assert r.rc == 0, r
        answers = json.loads(r.out)["answers"]
        assert [a["supervisor_id"] for a in answers] == [one] and answers[0]["ok"]
        wait_for(lambda: fleet_status(url)[one]["status"]["paused"], what="one paused")
        assert not fleet_status(url)[two]["status"]["paused"]
        # The local socket says the same.
        assert sups[0].ctl("status", "--json").rc == 0

        r = ctl("--db", url, "resume", "--json")
        assert r.rc == 0, r
        assert sorted(a["supervisor_id"] for a in json.loads(r.out)["answers"]) == \
            sorted([one, two])
        wait_for(lambda: not fleet_status(url)[one]["status"]["paused"], what="resumed")

        r = ctl("--db", url, "scale", "3", "--supervisor", two)
        assert r.rc == 0, r
        wait_for(lambda: fleet_status(url)[two]["status"]["target"] == 3, what="scaled")
        assert fleet_status(url)[one]["status"]["target"] == 2

        r = ctl("--db", url, "pause", "--supervisor", 999)
        assert r.rc == 1 and "supervisor 999 of %s is not running" % url in r.err, r
        r = ctl("--db", url, "cancel", "run-000", "nope")
        assert r.rc == 1 and "refused: cancel: no phase 'nope' in run 'run-000'" in r.out, r
        r = ctl("--db", url, "pause", "--supervisor", "x")
        assert r.rc == 2 and "--supervisor" in r.err, r

        r = ctl("--db", url, "stop")
        assert r.rc == 0, r
        for s in sups:
            assert s.wait(timeout=60) == 0, s.stderr()
        r = ctl("--db", url, "status")
        assert r.rc == 1 and "no autopack-supervisor is running" in r.err, r
    finally:
        for s in sups:
            s.kill()


def test_a_group_slow_to_commit_shows_a_heartbeat_as_fresh_as_its_commit(tmp, pg_url):
    """A group's heartbeat, its first statement, is stamped again as the group commits. The
    test holds the row of the one attempt open while its result comes, so the group waits
    between its heartbeat and its COMMIT until the test lets it go: the heartbeat the
    others then see is no older than that moment (before, it was the group's start, as old
    as the wait; past a short lease on a loaded machine, a supervisor alive and committing
    was declared lost)."""
    from pg_cluster import connect
    url = new_pg_db(tmp, pg_url, runs=1, phases=1)
    go = os.path.join(str(tmp), "ws", "go")
    # A long lease: no beat of the heartbeat alone comes between the group and the reads.
    sup = rogue_supervisor(tmp, url, "good", "--workers", 1, "--lease-timeout", 40,
                           "--exit-when-drained", env={"ROGUE_GO": go}, name="sup")
    con = connect(url)
    try:
        wait_for(lambda: open_attempts_of(url, sup.proc.pid) == 1, what="the attempt open")
        cur = con.cursor()
        cur.execute("BEGIN")
        cur.execute("SELECT attempt_id FROM attempts FOR UPDATE")
        open(go, "w").close()
        wait_for(lambda: sql(url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type"
                             " = 'Lock' AND starts_with(application_name, 'autopack-supervisor ')")
                 == [(1,)], what="the group waiting for the attempt's row")
        cur.execute("SELECT CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TEXT)")
        [(released,)] = cur.fetchall()
        cur.execute("COMMIT")
        assert sup.wait(timeout=60) == 0, sup.stderr()
    finally:
        con.close()
        sup.kill()
    [(state, outcome)] = sql(url, "SELECT s.state, a.outcome FROM attempts a JOIN supervisors s"
                             " USING (supervisor_id)")
    assert (state, outcome) == ("stopped", "success")
    [(fresh, stamp)] = sql(url, "SELECT heartbeat_at >= CAST(? AS TIMESTAMP), heartbeat_at"
                           " FROM supervisors", released)
    assert fresh, "heartbeat %s; the group was let go at %s" % (stamp, released)


def test_short_server_outages_with_a_two_second_lease_lose_no_supervisor(tmp, own_cluster):
    """--lease-timeout 2: the server is stopped three times for about a lease (2.5 s)
    while one supervisor drains short phases (its writes queue and its writer's retries
    back off, 0.2 s doubling to 2 s) and the other's workers run long ones (its heartbeat
    alone commits, every beat). Each outage is the same for both: neither may be declared
    lost (before, the one whose writer was waiting out its backoff connected again up to
    2 s after the server was back, and wrote its heartbeat only at its next retry, later
    than a lease after the other had connected again)."""
    url = new_pg_db(tmp, own_cluster.url(own_cluster.new_database()), runs=60, phases=5)
    go = os.path.join(str(tmp), "ws", "go")
    sups = [rogue_supervisor(tmp, url, "good", "--workers", 2, "--lease-timeout", 2,
                             "--heartbeat-timeout-seconds", 60, "--exit-when-drained",
                             name="sup%d" % i, env={"ROGUE_GO": go, "ROGUE_DELAY": delay})
            for i, delay in enumerate(("0.05", "8"))]
    try:
        for cycle in server_outages(url, sups, go, own_cluster, 10):
            time.sleep(2.5)
            own_cluster.start()
            for s in sups:
                wait_for(lambda: s.stderr().count("connected to %s again" % url) > cycle
                         or s.proc.poll() is not None, timeout=60, what="connected again")
        for s in sups:
            assert s.wait(timeout=300) == 0, s.stderr()
    finally:
        for s in sups:
            s.kill()
    for s in sups:
        assert "[LOST]" not in s.stderr() and "DECLARED LOST" not in s.stderr(), s.stderr()
    rows = attempts(url)
    assert_each_phase_completed_once(url, rows, 300)
    assert sql(url, "SELECT count(*) FROM supervisors WHERE state = 'lost'") == [(0,)]
