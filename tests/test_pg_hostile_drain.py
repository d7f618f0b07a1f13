"""A supervisor's read of what is left to drain failing (a backend terminated, a server
restarted, a privilege revoked by an operator): the failure is not taken for an empty
queue (docs/postgresql.md, "Several hosts")."""
import os
import signal

from supervisor_helpers import rogue_supervisor, sql, wait_for
from test_fleet import new_pg_db


def held_supervisor(tmp, url, lease):
    """A supervisor of one rogue worker (--exit-when-drained) whose attempts end once the
    file `go` is made; (supervisor, go), once its first attempt is open."""
    go = os.path.join(str(tmp), "go")
    sup = rogue_supervisor(tmp, url, "good", "--workers", 1, "--exit-when-drained",
                           "--lease-timeout", lease, env={"ROGUE_GO": go})
    try:
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL")
                 == [(1,)], 60, what="the first attempt open")
    except BaseException:
        sup.kill()
        raise
    return sup, go


def test_a_failed_read_of_the_queue_is_not_taken_for_a_drained_database(tmp, pg_cluster):
    """run-001's phase made eligible behind the supervisor's back (no notification) while
    its worker holds run-000's only phase, SELECT on tiers.tier_index revoked from its
    role (a non-superuser owning the database) before that phase ends: its read of what is
    left fails (`eligible phases: permission denied for table tiers`), as it would on a
    connection lost at that moment. It must go on once the privilege is granted again,
    and exit 0 with run-001 done. Before, it took the failed read for an empty queue, said
    `[STOP] drained` and exited 0 with run-001 never tried (`1 phase(s) left: not
    dispatched`)."""
    name = pg_cluster.new_database()
    user = "plain_" + name
    pg_cluster.psql('CREATE ROLE "%s" LOGIN' % user)
    pg_cluster.psql('ALTER DATABASE "%s" OWNER TO "%s"' % (name, user))
    url = new_pg_db(tmp, "postgresql://%s@127.0.0.1:%d/%s" % (user, pg_cluster.port, name),
                    runs=2, tiers=1, phases=1)
    sql(url, "UPDATE phases SET state = 'SKIPPED' WHERE run_id = 'run-001'")
    sup, go = held_supervisor(tmp, url, 4)
    try:
        # Revoked first: no read of the queue succeeds from here until the grant.
        cols = [c for (c,) in sql(url, "SELECT column_name FROM information_schema.columns"
                                      " WHERE table_name = 'tiers' AND column_name <>"
                                      " 'tier_index'")]
        sql(url, 'REVOKE SELECT ON tiers FROM "%s"; GRANT SELECT (%s) ON tiers TO "%s"'
            % (user, ", ".join(cols), user))
        sql(url, "UPDATE phases SET state = 'QUEUED' WHERE run_id = 'run-001'")
        open(go, "w").close()
        wait_for(lambda: "eligible phases: permission denied for table tiers"
                 in sup.stderr(), 120, what="the read of the queue failing")
        sql(url, 'GRANT SELECT ON tiers TO "%s"' % user)
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        sup.kill()
    assert sql(url, "SELECT run_id, state FROM phases ORDER BY run_id") == \
        [("run-000", "COMPLETE"), ("run-001", "COMPLETE")], sup.stderr()


def test_a_connection_lost_as_the_drain_ends_is_made_again_to_end_it(tmp, pg_cluster):
    """The network to the server cut (tests/pg_outage_proxy.py) while a supervisor idles
    with its drain done, then SIGTERM: its last writes find the connection lost. It must
    connect again once the network is back, leave the fleet (its row stopped) and end its
    session (`received Terminated`). Before, it wrote nothing (`UPDATE supervisors SET
    state = 'stopped' ...: no connection to the server`) and exited 0, its row live until
    another supervisor declared it lost and its session open for good."""
    from pg_outage_proxy import OutageProxy
    name = pg_cluster.new_database()
    new_pg_db(tmp, pg_cluster.url(name), runs=1, tiers=1, phases=1)
    url = pg_cluster.url(name)
    proxy = OutageProxy(pg_cluster.port)
    sup = rogue_supervisor(tmp, proxy.url(name), "good", "--workers", 1,
                           "--lease-timeout", 60)
    try:
        wait_for(lambda: sql(url, "SELECT count(*) FROM phases WHERE state = 'COMPLETE'")
                 == [(1,)], 60, what="the drain done")
        proxy.down()
        sup.signal(signal.SIGTERM)
        wait_for(lambda: "(retrying)" in sup.stderr().split("[STOP] received Terminated")[-1]
                 or sup.proc.poll() is not None, 60,
                 what="an attempt to connect again after the stop")
        proxy.up()
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        sup.kill()
        proxy.close()
    assert sql(url, "SELECT state FROM supervisors") == [("stopped",)]
    assert sql(url, "SELECT completed_at IS NOT NULL, stop_reason FROM drain_sessions") == \
        [(True, "received Terminated")]


def test_a_phase_end_the_database_refuses_stops_its_run_not_the_drain(tmp, pg_url):
    """A trigger another program put on phases refuses every phase's COMPLETE (RAISE
    EXCEPTION), and raises a NOTICE at every update: each attempt's end is refused and
    recorded as an error, and its run must be stopped for the session (each run tried at
    most twice: once, and once more if its phase was read again before the refusal
    committed), the supervisor ending by itself as for runs the drain rules stopped (exit
    5). Before, the phase, still QUEUED, was read
    again and run again without end: 4 phases ran 958 times in 2 minutes."""
    url = new_pg_db(tmp, pg_url, runs=3, tiers=1, phases=1)
    sql(url, "CREATE FUNCTION refuse_complete() RETURNS trigger LANGUAGE plpgsql AS $$"
             " BEGIN RAISE NOTICE 'phase %%', NEW.phase_id; IF NEW.state = 'COMPLETE' THEN"
             " RAISE EXCEPTION 'phases may not complete today'; END IF; RETURN NEW; END $$;"
             " CREATE TRIGGER refuse BEFORE UPDATE ON phases FOR EACH ROW"
             " EXECUTE FUNCTION refuse_complete()")
    sup = rogue_supervisor(tmp, url, "good", "--workers", 2, "--exit-when-drained")
    try:
        wait_for(lambda: sup.proc.poll() is not None or
                 sql(url, "SELECT count(*) FROM attempts")[0][0] > 6, 120,
                 what="the supervisor ending, or a run tried a third time")
        tried = sql(url, "SELECT count(*) FROM attempts")[0][0]
        assert tried <= 6, (tried, sup.stderr())
        rc = sup.wait(120)
    finally:
        sup.kill()
    err = sup.stderr()
    per_run = dict(sql(url, "SELECT run_id, count(*) FROM attempts GROUP BY run_id"))
    assert sorted(per_run) == ["run-000", "run-001", "run-002"], (per_run, err)
    assert max(per_run.values()) <= 2, (per_run, err)
    for run in per_run:
        assert "[STOP] run %s: the database refused the end of its attempt" % run in err, err
    assert rc == 5 and "3 left by the drain rules; exit status 5" in err, err
    assert sql(url, "SELECT DISTINCT state FROM phases") == [("QUEUED",)]
