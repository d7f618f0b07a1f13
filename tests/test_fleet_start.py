"""A supervisor on PostgreSQL whose start fails once it is registered in the fleet, for a
reason other than a stop signal (a statement given up behind a lock, a control socket
that cannot be opened, the connection lost): it leaves the fleet as it exits, its row
`stopped`, and ends the session it had recorded. Before, its row stayed `live` until the
others declared it lost a lease later (30 s by default). When the connection is lost it
cannot leave, and says so."""
import os

from pg_cluster import connect
from supervisor_helpers import Supervisor, sql, wait_for
from test_fleet import new_pg_db
from test_pg_waits import start_failing_behind


def test_a_start_whose_control_socket_cannot_be_opened_leaves_the_fleet(tmp, pg_url):
    """Refused once its session is recorded: the row is stopped and the session ended with
    the reason, as on SQLite."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     control=os.path.join(str(tmp), "missing", "s.sock"))
    try:
        assert sup.wait(60) == 1, sup.stderr()
    finally:
        sup.kill()
    err = sup.stderr()
    assert sql(url, "SELECT state, ended_at IS NOT NULL FROM supervisors") == \
        [("stopped", True)], err
    assert "the start failed: supervisor 1 left the fleet" in err, err
    assert sql(url, "SELECT completed_at IS NOT NULL, stop_reason FROM drain_sessions") == \
        [(True, "refused to start: the control socket could not be opened")]


def test_a_start_whose_statement_is_given_up_behind_a_lock_leaves_the_fleet(tmp, pg_url):
    """Its statement choosing the session gives the lock up after lock_timeout (a quarter
    of the lease) and the start fails; the session it was choosing is rolled back."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    err, _ = start_failing_behind(tmp, url, "drain_sessions", "--lease-timeout", 8)
    assert "canceling statement due to lock timeout" in err, err
    assert sql(url, "SELECT state FROM supervisors") == [("stopped",)], err
    assert "the start failed: supervisor 1 left the fleet" in err, err
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def end_server_session_of_lock_waiter(sup):
    """Once `sup` reports that its start waits, end its server session (the one waiting
    for a lock), as a server restarted or an administrator would."""
    wait_for(lambda: "has not answered" in sup.stderr(), 60,
             what="the start's report of its wait")
    admin = connect(sup.url)
    admin.autocommit = True
    admin.cursor().execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
        " current_database() AND wait_event_type = 'Lock'")
    admin.close()


def test_a_start_whose_connection_is_lost_says_its_row_stays_live(tmp, pg_url):
    """The server ends its session while the start waits behind a lock: the start fails
    and the row cannot be written; the log says it stays live until declared lost."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    err, _ = start_failing_behind(tmp, url, "estimator_coefficients",
                                  during=end_server_session_of_lock_waiter)
    assert "the start failed and supervisor 1 could not leave the fleet (" in err, err
    assert "its row stays live until the others declare it lost, 30 s after its last" \
        " heartbeat" in err, err
    assert sql(url, "SELECT state FROM supervisors") == [("live",)]
