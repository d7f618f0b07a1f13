"""One supervisor of a fleet cut off from the PostgreSQL server while the others reach it
(tests/pg_outage_proxy.py between that supervisor and the suite's server): cut for longer
than its lease, it is declared lost, and once back it learns so and exits 3 without
writing, whatever it was doing (docs/postgresql.md, "Several hosts")."""
import contextlib
import json
import os
import re
import subprocess
import time

from pg_outage_proxy import OutageProxy
from supervisor_helpers import rogue_supervisor, sql, wait_for
from test_fleet import (assert_each_phase_completed_once, attempts, attempts_of, control_ask,
                        new_pg_db, supervisor_ids)


@contextlib.contextmanager
def holder_and_idle_cut(tmp, pg_cluster, phases):
    """The first supervisor holds the one run (`phases` phases of 0.5 s, each once the
    file `go` exists: the run is not over before the test has cut the second off); the
    second, which reaches the server through an outage proxy, waits idle with nothing to
    do. Yields (url, proxy, first, cut, go); both are killed and the proxy closed
    after."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=1, phases=phases)
    proxy = OutageProxy(pg_cluster.port)
    go = os.path.join(str(tmp), "go")
    env = {"ROGUE_DELAY": "0.5", "ROGUE_GO": go}
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
        yield url, proxy, first, cut, go
    finally:
        open(go, "w").close()
        first.kill()
        if cut is not None:
            cut.kill()
        proxy.close()


def test_a_supervisor_cut_off_while_idle_past_its_lease_exits_3_and_ends_nothing(
        tmp, pg_cluster):
    """One run of 18 phases held by the first supervisor; the second, with nothing to do,
    is cut off from the server for 12 s (lease 5 s). The first declares it lost, drains
    the run and ends the session. The second, back, has nothing to commit: it must still
    learn that it was declared lost (its leave finds its row no longer live), exit 3, and
    leave the session's end as the first wrote it."""
    with holder_and_idle_cut(tmp, pg_cluster, 18) as (url, proxy, first, cut, go):
        proxy.down()
        wait_for(lambda: "[LOST] supervisor" in first.stderr(), timeout=60,
                 what="the cut supervisor declared lost")
        open(go, "w").close()
        assert first.wait(timeout=60) == 0, first.stderr()
        ended = sql(url, "SELECT stop_reason, completed_at FROM drain_sessions")
        time.sleep(12 - 5)
        proxy.up()
        assert cut.wait(timeout=60) == 3, cut.stderr()
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
    with holder_and_idle_cut(tmp, pg_cluster, 30) as (url, proxy, first, cut, go):
        cut_id = supervisor_ids(url)[cut.proc.pid]
        proxy.down()
        sql(url, "INSERT INTO supervisor_commands (supervisor_id, command, args, created_at,"
            " created_by) VALUES (?, 'pause', '[]', clock_timestamp() AT TIME ZONE 'UTC',"
            " 'test')", cut_id)
        sql(url, "NOTIFY autopack_control")
        wait_for(lambda: "[LOST] supervisor %d " % cut_id in first.stderr(), timeout=60,
                 what="the cut supervisor declared lost")
        open(go, "w").close()
        proxy.up()
        assert cut.wait(timeout=60) == 3, cut.stderr()
        assert first.wait(timeout=60) == 0, first.stderr()
    err = cut.stderr()
    assert "DECLARED LOST" in err, err
    assert "from the database" not in err, err
    assert sql(url, "SELECT count(*) FROM supervisor_command_results") == [(0,)]


def two_phases_behind_a_proxy(tmp, pg_cluster):
    """A supervisor of two one-phase runs connected through an outage proxy, a 4 s lease,
    its workers holding their phases until the file `go` exists: (database name, URL,
    proxy, go, supervisor)."""
    name = pg_cluster.new_database()
    url = new_pg_db(tmp, pg_cluster.url(name), runs=2, phases=1)
    proxy = OutageProxy(pg_cluster.port)
    go = os.path.join(str(tmp), "ws", "go")
    sup = rogue_supervisor(tmp, proxy.url(name), "good", "--workers", 2, "--lease-timeout", 4,
                           "--exit-when-drained", env={"ROGUE_GO": go}, name="sup")
    return name, url, proxy, go, sup


def test_a_connection_the_network_leaves_unanswered_blocks_nothing(tmp, pg_cluster):
    """The network to the server drops every packet (the proxy leaves new connections
    unanswered) while the supervisor's workers run its two phases: its attempts to
    connect again wait in the loop, not in libpq, so its control socket answers
    meanwhile, with metrics that say an attempt is under way (before, the loop waited in
    libpq's connect for up to its connect_timeout, 10 s: longer than a lease, and could
    answer only between attempts), and each attempt is given up after half the lease
    (2 s) and made again. Once the network is back it connects again and drains."""
    name, url, proxy, go, sup = two_phases_behind_a_proxy(tmp, pg_cluster)
    try:
        sup.wait_ready(timeout=120)
        wait_for(lambda: attempts_of(url, sup.proc.pid) == 2, what="both phases leased")
        proxy.down(silent=True)
        wait_for(lambda: "writes failed" in sup.stderr(), timeout=30,
                 what="the connection found lost")
        answered = []

        def answered_while_connecting():
            reply = control_ask(sup.control, "metrics")
            assert reply is not None and reply["ok"], (reply, sup.stderr())
            text = json.loads(reply["body"])["text"]
            answered.append("\nautopack_db_reconnecting 1\n" in text)
            return answered.count(True) >= 3

        wait_for(answered_while_connecting, timeout=60,
                 what="metrics answered while connecting again, three times")
        wait_for(lambda: "cannot connect again: no answer within 2.0 s" in sup.stderr(),
                 timeout=30, what="an attempt given up")
        proxy.up()
        wait_for(lambda: "connected to %s again" % proxy.url(name) in sup.stderr(),
                 timeout=30, what="connected again")
        open(go, "w").close()
        assert sup.wait(timeout=60) == 0, sup.stderr()
    finally:
        sup.kill()
        proxy.close()
    assert_each_phase_completed_once(url, attempts(url), 2)


def test_a_connection_made_again_to_another_database_is_database_lost(tmp, pg_cluster):
    """While the supervisor is cut off, its database is renamed and another autopack
    database made under its name: the connection made again from the loop reaches that
    one, which is DATABASE LOST (exit 3), and nothing is written there."""
    name, url, proxy, go, sup = two_phases_behind_a_proxy(tmp, pg_cluster)
    try:
        sup.wait_ready(timeout=120)
        wait_for(lambda: attempts_of(url, sup.proc.pid) == 2, what="both phases leased")
        proxy.down()
        wait_for(lambda: "writes failed" in sup.stderr(), timeout=30,
                 what="the connection found lost")
        pg_cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = '%s'" % name)
        pg_cluster.psql('ALTER DATABASE "%s" RENAME TO "%s_old"' % (name, name))
        pg_cluster.psql('CREATE DATABASE "%s"' % name)
        new_pg_db(tmp, pg_cluster.url(name), runs=1, phases=1)
        proxy.up()
        assert sup.wait(timeout=60) == 3, sup.stderr()
    finally:
        sup.kill()
        proxy.close()
    err = sup.stderr()
    assert "DATABASE LOST" in err and "uuid changed" in err, err
    assert sql(pg_cluster.url(name), "SELECT count(*) FROM attempts") == [(0,)]
    assert sql(pg_cluster.url(name), "SELECT count(*) FROM supervisors") == [(0,)]
    pg_cluster.drop_database(name)
    pg_cluster.drop_database(name + "_old")


def test_a_connection_made_again_to_a_copy_on_another_server_is_database_lost(tmp, pg_cluster):
    """While the supervisor is cut off, its address comes to reach a second server (on
    another port behind it) holding a copy of its database under the same name, with the
    same uuid (pg_dump restored there): the connection made again is refused by the
    server's system identifier, DATABASE LOST (exit 3), and nothing is written to the
    copy."""
    from pg_cluster import PG_BIN, Cluster
    name, url, proxy, go, sup = two_phases_behind_a_proxy(tmp, pg_cluster)
    other = Cluster()
    try:
        sup.wait_ready(timeout=120)
        wait_for(lambda: attempts_of(url, sup.proc.pid) == 2, what="both phases leased")
        other.psql('CREATE DATABASE "%s"' % name)
        dump = subprocess.run([os.path.join(PG_BIN, "pg_dump"), "--no-owner", url],
                              capture_output=True, check=True).stdout
        subprocess.run([os.path.join(PG_BIN, "psql"), "-q", "-v", "ON_ERROR_STOP=1",
                        other.url(name)], input=dump, capture_output=True, check=True)
        copy = other.url(name)
        before = sql(copy, "SELECT (SELECT count(*) FROM attempts WHERE ended_at IS NULL),"
                           " (SELECT max(heartbeat_at) FROM supervisors),"
                           " (SELECT count(*) FROM events), (SELECT db_uuid FROM meta)")
        assert before[0][3] == sql(url, "SELECT db_uuid FROM meta")[0][0]
        proxy.down()
        wait_for(lambda: "writes failed" in sup.stderr(), timeout=30,
                 what="the connection found lost")
        proxy.upstream = other.port
        open(go, "w").close()
        proxy.up()
        assert sup.wait(timeout=60) == 3, sup.stderr()
        assert sql(copy, "SELECT (SELECT count(*) FROM attempts WHERE ended_at IS NULL),"
                         " (SELECT max(heartbeat_at) FROM supervisors),"
                         " (SELECT count(*) FROM events), (SELECT db_uuid FROM meta)") == before
    finally:
        sup.kill()
        proxy.close()
        other.close()
    err = sup.stderr()
    assert re.search(r"DATABASE LOST: .*: the connection now reaches another database"
                     r" \(server/database (\d+)/%s, opened as (?!\1)\d+/%s\)" % (name, name),
                     err), err
