"""Statements a PostgreSQL database leaves unanswered (docs/postgresql.md, "Waiting for the
database"): another session holds a lock autopack's statement needs (LOCK TABLE phases IN
ACCESS EXCLUSIVE MODE, as a maintenance job might). The supervisor starting and the
offline commands say what they wait for and who holds it, go on waiting, and end
promptly on SIGTERM or SIGINT; a supervisor draining blames the database, not itself,
for the time its loop waited."""
import os
import re
import signal
import subprocess

import pytest

from conftest import binpath, ctl, preload
from pg_cluster import connect
from supervisor_helpers import Supervisor, make_plan, sql, wait_for
from test_fleet import new_pg_db


def lock_phases(url, table="phases"):
    """A session of the test's own holding LOCK TABLE phases (or `table`) IN ACCESS
    EXCLUSIVE MODE until it is rolled back."""
    con = connect(url)
    con.autocommit = False
    con.cursor().execute("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE" % table)
    return con


def lock_waiters(url):
    """The server sessions of the test's database waiting for a lock."""
    return sql(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
               " AND wait_event_type = 'Lock'")[0][0]


def assert_names_the_lock(line, holder, table="phases"):
    assert "AccessShareLock on table %s" % table in line, line
    assert "held by server process %d" % holder in line, line
    assert "SELECT * FROM pg_locks WHERE pid IN (%d)" % holder in line, line
    assert "pg_terminate_backend" in line, line


def start_session(url):
    """The drain session of the test's database: its end and stop reason."""
    return sql(url, "SELECT completed_at IS NOT NULL, stop_reason FROM drain_sessions")


def stop_a_start_behind(tmp, url, con, table="phases"):
    """Start a supervisor on `url` while `con` holds `table`; once it reports its wait,
    check that the report names the lock and its holder, send SIGTERM and check it exits
    0. Returns the report's line and the supervisor's stderr."""
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
    try:
        wait_for(lambda: "has not answered" in sup.stderr(), 60,
                 what="the start's report of its wait")
        line = [x for x in sup.stderr().splitlines() if "has not answered" in x][0]
        assert_names_the_lock(line, con.get_backend_pid(), table)
        sup.signal(signal.SIGTERM)
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    return line, sup.stderr()


def test_a_supervisor_starting_behind_a_lock_says_so_and_stops_on_sigterm(tmp, pg_url):
    """Before, it waited without a word for as long as the lock was held (29 s in one
    try), and a SIGTERM waited with it: it was taken only once the lock was released and
    the queue read."""
    url = new_pg_db(tmp, pg_url, runs=2, phases=2)
    con = lock_phases(url)
    try:
        line, err = stop_a_start_behind(tmp, url, con)
        assert "starting: the database has not answered for 2 s" in line, line
        assert "SIGTERM or SIGINT stops the supervisor" in line, line
        assert "[STOP] received Terminated while starting" in err
        # Its statement was cancelled on the server: nothing waits for the lock still held.
        wait_for(lambda: lock_waiters(url) == 0, 30, what="the statement cancelled")
    finally:
        con.rollback()
        con.close()
    assert sql(url, "SELECT count(*) FROM supervisors") == [(0,)]
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


@pytest.mark.parametrize("table, session", [
    ("drain_sessions", []),
    ("estimator_coefficients", [(True, "received Terminated")])])
def test_a_supervisor_registered_and_stopped_behind_a_lock_leaves_the_fleet(
        tmp, pg_url, table, session):
    """Stopped while it waits for a lock once registered (choosing its session: the test
    holds drain_sessions), it leaves the fleet (its row `stopped`), not `live` for the
    others to declare lost. Stopped once its session is recorded (reading the estimator's
    coefficients), it records the session's end as a stop at the drain's start does;
    before, it left the session open (`session list` showed it interrupted)."""
    url = new_pg_db(tmp, pg_url, runs=2, phases=2)
    con = lock_phases(url, table)
    try:
        stop_a_start_behind(tmp, url, con, table)
    finally:
        con.rollback()
        con.close()
    assert sql(url, "SELECT state FROM supervisors") == [("stopped",)]
    assert start_session(url) == session


def start_failing_behind(tmp, url, table, *args, during=None):
    """Start a supervisor on `url` with `args` while a session of the test's holds `table`,
    call during(sup) once it runs (when given), and check that its start fails (exit 1);
    the lock is then released. Returns the supervisor's log and the holder's server
    process."""
    con = lock_phases(url, table)
    try:
        holder = con.get_backend_pid()
        sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained", *args)
        try:
            if during is not None:
                during(sup)
            assert sup.wait(60) == 1, sup.stderr()
        finally:
            sup.kill()
    finally:
        con.rollback()
        con.close()
    return sup.stderr(), holder


def test_a_lock_given_up_after_lock_timeout_while_starting_names_its_holder(tmp, pg_url):
    """Once registered, a start's statement waits for a lock at most lock_timeout (a
    quarter of the lease: 4 s here), so that the heartbeat goes on; the start then fails
    (exit 1) naming the lock and its holder, not only `canceling statement due to lock
    timeout`."""
    url = new_pg_db(tmp, pg_url, runs=2, phases=2)
    err, holder = start_failing_behind(tmp, url, "drain_sessions", "--lease-timeout", 16)
    line = [x for x in err.splitlines() if "error:" in x][-1]
    assert "canceling statement due to lock timeout (it waits for" in line, line
    assert_names_the_lock(line, holder, "drain_sessions")


def test_a_supervisor_starting_behind_a_lock_drains_once_it_is_released(tmp, pg_url):
    """It keeps waiting, and once the lock is released drains as any other; the time it
    waited to start is no stall of its loop."""
    url = new_pg_db(tmp, pg_url, runs=2, phases=2)
    con = lock_phases(url)
    try:
        sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
        try:
            wait_for(lambda: "has not answered" in sup.stderr(), 60,
                     what="the start's report of its wait")
            con.rollback()
            assert sup.wait(120) == 0, sup.stderr()
        finally:
            sup.kill()
    finally:
        con.rollback()
        con.close()
    # It waited 2 s or more; a stall of the loop as long as that would be this wait.
    stalls = re.findall(r"stalled for ([0-9.]+) s", sup.stderr())
    assert all(float(x) < 2.0 for x in stalls), sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts") == [(4,)]


def interrupt_a_command(tmp, url, command, before=None, when=None, env=None):
    """Run `autopack-ctl --db url command` (with `env` added to its environment); once it
    reports its wait (or once `when()`, if given, polled every millisecond), call `before`
    (if given), send SIGINT and check it ends by the signal. Returns its stderr."""
    err_path = os.path.join(str(tmp), "ctl.err")
    with open(err_path, "w") as err:
        proc = subprocess.Popen([binpath("autopack-ctl"), "--db", url] + command,
                                stdout=subprocess.DEVNULL, stderr=err,
                                env=dict(os.environ, **(env or {})))
    try:
        if when is not None:
            wait_for(when, 60, step=0.001, what="the command's statement waiting")
        else:
            wait_for(lambda: "has not answered" in open(err_path).read(), 60,
                     what="the command's report of its wait")
        if before is not None:
            before()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == -signal.SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return open(err_path).read()


@pytest.mark.parametrize("command", [["db", "check"], ["failed"], ["run", "import"]])
def test_an_offline_command_behind_a_lock_says_so_and_ends_on_sigint(tmp, pg_url, command):
    """Before, `autopack-ctl` waited without a word; Ctrl-C ended it, and its statement
    stayed queued on the server behind the lock."""
    if command[0] == "run":
        url = pg_url
        assert ctl("--db", url, "db", "init").rc == 0
        command = command + [make_plan(os.path.join(str(tmp), "plan.json"), 1, 1, 2)]
    else:
        url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    runs = sql(url, "SELECT count(*) FROM runs")
    con = lock_phases(url)
    try:
        line = interrupt_a_command(tmp, url, command)
        assert line.startswith("autopack-ctl: the database has not answered for 2 s"), line
        assert_names_the_lock(line, con.get_backend_pid())
        wait_for(lambda: lock_waiters(url) == 0, 30, what="the statement cancelled")
    finally:
        con.rollback()
        con.close()
    assert sql(url, "SELECT count(*) FROM runs") == runs


def test_a_stall_spent_waiting_for_the_database_names_it(tmp, pg_url):
    """A drain's statement waits for a lock another session holds (up to lock_timeout, a
    quarter of the lease: 2 s here): the loop stalls meanwhile, and the warning says it
    waited for the database and for which statement. Before: `the supervisor itself
    stalled for 2.0 s (stopped, starved or blocked)`."""
    url = new_pg_db(tmp, pg_url, runs=200, phases=10)
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--exit-when-drained",
                     "--lease-timeout", 8)
    try:
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT"
                             " NULL")[0][0] >= 10, 120, what="10 attempts ended")
        con = lock_phases(url)
        try:
            wait_for(lambda: "canceling statement due to lock timeout" in sup.stderr(), 60,
                     what="a statement given up after lock_timeout")
        finally:
            con.rollback()
            con.close()
        wait_for(lambda: "stalled for" in sup.stderr(), 60, what="the stall's warning")
        sup.signal(signal.SIGTERM)
        assert sup.wait(120) == 0, sup.stderr()
    finally:
        sup.kill()
    log = sup.stderr()
    after = log[log.index("canceling statement due to lock timeout"):]
    stalls = [x for x in after.splitlines() if "stalled for" in x]
    assert "the supervisor itself stalled" not in stalls[0], stalls
    assert "the supervisor's loop stalled for" in stalls[0], stalls
    assert "waiting for the database" in stalls[0], stalls
    assert stalls[0].split("(the longest: ")[1].split()[0] in ("SELECT", "UPDATE",
                                                               "INSERT", "WITH"), stalls


class DarkProxy:
    """A TCP proxy in front of the test's server: connections made while it is lit are
    carried through; once dark, new ones are left in its listen queue, connected but never
    answered, as a server behind a partitioned network or an overloaded pooler leaves
    them."""

    def __init__(self, url):
        import socket
        import threading
        import urllib.parse
        parts = urllib.parse.urlsplit(url)
        self.upstream = (parts.hostname, parts.port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.dark = threading.Event()
        self.silent = threading.Event()
        self.deaf = threading.Event()
        self.closed = threading.Event()
        port = self.listener.getsockname()[1]
        netloc = parts.netloc.rsplit(":", 1)[0] + ":%d" % port
        self.url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import struct
        import threading
        while not self.dark.is_set():
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            if self.dark.is_set():
                self.held.append(down)
                return
            if self.deaf.is_set():
                # A cancel request (its length 16 and code 80877102) is taken, never
                # carried and never answered.
                head = down.recv(8, socket.MSG_PEEK | socket.MSG_WAITALL)
                if len(head) == 8 and struct.unpack("!II", head) == (16, 80877102):
                    self.held.append(down)
                    continue
            up = socket.create_connection(self.upstream)
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if self.silent.is_set():
                    self.closed.wait()
                    return
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(2)
            except OSError:
                pass

    def go_dark(self):
        self.dark.set()

    def go_deaf_to_cancels(self):
        """Cancel requests are taken and never answered; everything else is carried, as a
        pooler or proxy that does not pass them on does."""
        self.deaf.set()

    def go_silent(self):
        """The connections carried go silent (nothing more is carried either way) and new
        ones are refused, as when the server's host is cut off and its address
        refuses."""
        import socket
        self.silent.set()
        self.listener.shutdown(socket.SHUT_RDWR)

    def close(self):
        self.closed.set()
        self.listener.close()
        for s in self.held:
            s.close()


def sigterm_a_start_behind_a_lock(tmp, url, table, cut):
    """Start a supervisor of the database at `url` through a DarkProxy while a session of
    the test's own locks `table`; once it reports its wait, `cut(proxy)`, then SIGTERM.
    Returns its stderr once it exited 0 (the lock released and the proxy closed after)."""
    proxy = DarkProxy(url)
    con = lock_phases(url, table)
    try:
        sup = Supervisor(tmp, proxy.url, "--workers", 1, "--dry-run", "--exit-when-drained")
        try:
            wait_for(lambda: "has not answered" in sup.stderr(), 60,
                     what="the start's report of its wait")
            cut(proxy)
            sup.signal(signal.SIGTERM)
            assert sup.wait(60) == 0, sup.stderr()
        finally:
            sup.kill()
        return sup.stderr()
    finally:
        con.rollback()
        con.close()
        proxy.close()


def test_sigint_ends_a_command_whose_cancel_request_is_never_answered(tmp, pg_url):
    """The network to the server goes dark while a command's statement waits behind a
    lock: the cancel request SIGINT sends is connected but never answered. The command
    still ends by the signal, within CTL_CANCEL_WAIT_S. Before, it hung in its signal
    handler for as long as the cancel request went unanswered (forever here), and a second
    Ctrl-C, held back meanwhile, did nothing."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    proxy = DarkProxy(url)
    con = lock_phases(url)
    try:
        interrupt_a_command(tmp, proxy.url, ["failed"], proxy.go_dark)
    finally:
        con.rollback()
        con.close()
        proxy.close()


@pytest.mark.parametrize("cut", ["silent", "dark"])
def test_sigterm_ends_a_start_whose_cancellation_is_never_answered(tmp, pg_url, cut):
    """The server goes out of reach while a starting supervisor's statement waits behind a
    lock: silent, its host refusing the cancel request; or dark, the cancel request taken
    and never answered. SIGTERM still ends the supervisor, 2 s after the stop, with exit
    status 0. Before, it waited for the cancelled statement's answer for as long as the
    server stayed silent, or in PQcancel for as long as the request went unanswered
    (forever here, either way)."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    err = sigterm_a_start_behind_a_lock(
        tmp, url, "phases", DarkProxy.go_silent if cut == "silent" else DarkProxy.go_dark)
    assert "[STOP] received Terminated while starting" in err, err


@pytest.mark.parametrize("held", [False, True])
def test_sigint_at_the_start_of_a_command_s_wait_cancels_its_statement(tmp, pg_url, held):
    """A SIGINT in the first 100 ms of a statement sent no cancel request (the request was
    made after one step of the wait): the command ended and its statement stayed queued on
    the server behind the lock until the lock was released. Later, one taken after the
    statement was sent and before its wait began did the same (the request was made ready
    at the start of the wait): `held` makes that window 300 ms long (pq-shim.so)."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    con = lock_phases(url)
    watch = connect(url)
    watch.autocommit = True
    try:
        cur = watch.cursor()

        def waiters():
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname ="
                        " current_database() AND wait_event_type = 'Lock'")
            return cur.fetchone()[0]

        interrupt_a_command(tmp, url, ["failed"], when=lambda: waiters() > 0,
                            env=preload("pq-shim.so") if held else None)
        wait_for(lambda: waiters() == 0, 30, what="the statement cancelled")
    finally:
        watch.close()
        con.rollback()
        con.close()


def test_a_command_killed_while_its_statement_waits_leaves_nothing_queued(tmp, pg_url):
    """SIGKILL leaves no moment to cancel: the server kept the statement of a killed
    `autopack-ctl` queued behind the lock until the lock was released. The server now looks
    every second whether the client is still there while a statement runs."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    con = lock_phases(url)
    try:
        proc = subprocess.Popen([binpath("autopack-ctl"), "--db", url, "failed"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: lock_waiters(url) > 0, 60, what="the command's statement waiting")
            proc.kill()
            assert proc.wait(60) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        wait_for(lambda: lock_waiters(url) == 0, 30, what="the killed command's statement ended")
    finally:
        con.rollback()
        con.close()


def test_a_start_whose_cancellation_is_never_answered_says_what_stays_behind(tmp, pg_url):
    """The server goes silent while a registered supervisor's start waits behind a lock,
    and the statement is given up 2 s after SIGTERM: its connection is busy with it. The
    supervisor then wrote its rollback and its leave of the fleet on that connection,
    which failed (`another command is already in progress`). It now writes nothing more on
    it; its leave on a connection of its own finds the server silent too, and it says that
    its row stays live until the others declare it lost, and its session open."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    err = sigterm_a_start_behind_a_lock(tmp, url, "estimator_coefficients",
                                        DarkProxy.go_silent)
    assert "another command is already in progress" not in err, err
    assert "the database did not answer the cancellation: this supervisor does not" \
        " leave the fleet (its row stays live until the others declare it lost" in err, err
    assert re.search(r"and drain session drain-[0-9-]+, if recorded, stays open", err), err
    assert "cancellation was sent to the server, and left unanswered)" in err, err
    assert sql(url, "SELECT state FROM supervisors") == [("live",)]
    assert start_session(url) == [(False, None)]


def test_a_start_whose_cancellation_is_never_answered_leaves_the_fleet_aside(tmp, pg_url):
    """The cancel request a registered supervisor's SIGTERM sends is taken and never
    answered (a pooler or proxy that does not pass it on), the server itself reachable:
    the statement waiting behind a lock is given up 2 s later and its connection left busy.
    Its fleet row stayed live until the others declared it lost, a lease later; it now
    leaves the fleet on a connection of its own, and says so. The drain session it had
    recorded stayed open (`session list` showed it interrupted, though it was stopped);
    it is ended in the same statement as the leave, as a stop at the drain's start ends
    it."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    err = sigterm_a_start_behind_a_lock(tmp, url, "estimator_coefficients",
                                        DarkProxy.go_deaf_to_cancels)
    assert "cancellation was sent to the server, and left unanswered)" in err, err
    assert re.search(r"the database did not answer the cancellation: supervisor \d+ left the "
                     r"fleet on a connection of its own, and ended drain session "
                     r"drain-[0-9-]+ \(received Terminated\)", err), err
    assert sql(url, "SELECT state FROM supervisors") == [("stopped",)]
    assert start_session(url) == [(True, "received Terminated")]


def deaf_then(url, statement, hold=None):
    """A cut for sigterm_a_start_behind_a_lock: cancel requests go unanswered, then
    `statement` runs on a connection of the test's own (committed), and with `hold`, a
    transaction of another connection runs `hold` and stays open (in hold.con)."""
    def cut(proxy):
        proxy.go_deaf_to_cancels()
        if statement is not None:
            sql(url, statement)
        if hold is not None:
            cut.con = connect(url)
            cut.con.autocommit = False
            cut.con.cursor().execute(hold)
    cut.con = None
    return cut


@pytest.mark.parametrize("found,statement", [
    ("its row was already lost", "UPDATE supervisors SET state = 'lost'"),
    ("its row was already stopped", "UPDATE supervisors SET state = 'stopped'"),
    ("no row of supervisors has its id any more",
     "DELETE FROM supervisors"),
])
def test_a_leave_aside_that_finds_no_live_row_says_so(tmp, pg_url, found, statement):
    """The leave on a connection of its own changed no row: the supervisor's row was no
    longer live (another supervisor declared it lost, or it had left) or was gone. It was
    logged as `left the fleet on a connection of its own` all the same."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    err = sigterm_a_start_behind_a_lock(tmp, url, "estimator_coefficients",
                                        deaf_then(url, statement))
    assert "left the fleet on a connection of its own" not in err, err
    assert re.search(r"the database did not answer the cancellation: supervisor \d+ had no "
                     r"(live )?row to leave on a connection of its own \(%s" % found, err), err
    assert "nothing was changed; drain session drain-" in err, err
    want = {"lost": [("lost",)], "stopped": [("stopped",)]}.get(found.split()[-1], [])
    assert sql(url, "SELECT state FROM supervisors") == want


def test_a_leave_aside_left_unanswered_says_the_server_may_still_apply_it(tmp, pg_url):
    """The leave on a connection of its own waits for a lock another transaction holds on
    the supervisor's row, and is given up 2 s later: its connection is closed, but the
    server goes on with the statement and applies it once the lock is released. The log
    said the supervisor did not leave the fleet and its row stayed live until the others
    declared it lost; it now says the server may still apply the leave."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    cut = deaf_then(url, None, hold="SELECT 1 FROM supervisors FOR UPDATE")
    try:
        err = sigterm_a_start_behind_a_lock(tmp, url, "estimator_coefficients", cut)
        assert "this supervisor does not leave the fleet" not in err, err
        assert ("this supervisor's leave of the fleet, sent on a connection of its own, was "
                "not answered (") in err, err
        assert "no answer within 2 s): the server may still apply it (its row then " \
            "stopped), else its row stays live until the others declare it lost" in err, err
        assert sql(url, "SELECT state FROM supervisors") == [("live",)]
    finally:
        if cut.con is not None:
            cut.con.rollback()
            cut.con.close()
    assert re.search(r"; drain session drain-[0-9-]+, if recorded, ends with that leave if "
                     r"the server applies it and no other supervisor is live in it, else "
                     r"stays open \(interrupted\)", err), err
    # The server applies the leave it was sent once the lock is released, and ends the
    # session with it.
    wait_for(lambda: sql(url, "SELECT state FROM supervisors") == [("stopped",)], 30,
             what="the leave applied by the server")
    assert start_session(url) == [(True, "received Terminated")]


def test_a_start_whose_wait_cannot_be_described_still_stops_on_sigterm(tmp, pg_url):
    """The statement that describes a wait (on a connection of its own) is itself left
    unanswered: another session holds pg_locks, which it reads. The report says the wait
    could not be read, 2 s later, and SIGTERM still ends the start. Before, the report
    waited for its answer without a limit, and the start with it: no report came, and a
    SIGTERM was never taken."""
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    con = lock_phases(url)
    con.cursor().execute("LOCK TABLE pg_catalog.pg_locks IN ACCESS EXCLUSIVE MODE")
    try:
        sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
        try:
            wait_for(lambda: "has not answered" in sup.stderr(), 60,
                     what="the start's report of its wait")
            assert "could not be read (no answer within 2 s)" in sup.stderr(), sup.stderr()
            sup.signal(signal.SIGTERM)
            assert sup.wait(60) == 0, sup.stderr()
        finally:
            sup.kill()
    finally:
        con.rollback()
        con.close()


def test_a_leave_aside_that_reaches_another_server_writes_nothing_there(tmp, pg_url):
    """As above, and the address of the database then reaches a second server (another
    port behind the proxy) holding an autopack database of the same name, whose live
    supervisor 1 has this one's id: the leave on a connection of its own finds there
    another uuid and server, writes nothing, and says so; this supervisor's row stays
    live until the others declare it lost. Before, the leave stopped the other fleet's
    supervisor 1 (which its next heartbeat would then take for its loss)."""
    from pg_cluster import Cluster
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    name = url.rsplit("/", 1)[1]
    other = Cluster()
    try:
        other.psql('CREATE DATABASE "%s"' % name)
        elsewhere = other.url(name)
        assert ctl("--db", elsewhere, "db", "init").rc == 0
        sql(elsewhere, "INSERT INTO supervisors (host, pid, started_at, heartbeat_at,"
                       " lease_timeout_ms) VALUES ('elsewhere', 4242, clock_timestamp(),"
                       " clock_timestamp(), 30000)")

        def cut(proxy):
            proxy.go_deaf_to_cancels()
            proxy.upstream = ("127.0.0.1", other.port)

        err = sigterm_a_start_behind_a_lock(tmp, url, "estimator_coefficients", cut)
        assert sql(elsewhere, "SELECT supervisor_id, state FROM supervisors") == [(1, "live")]
    finally:
        other.close()
    assert re.search(r"the database did not answer the cancellation: this supervisor does not"
                     r" leave the fleet \(its row stays live until the others declare it lost,"
                     r" \d+ s after its last heartbeat; .*: the connection of its own reaches"
                     r" another database \(uuid [0-9a-f-]+, server/database \d+/%s; opened as"
                     r" uuid [0-9a-f-]+, \d+/%s\): nothing was written there\)" % (name, name),
                     err), err
    assert sql(url, "SELECT state FROM supervisors") == [("live",)]


def test_a_wait_report_that_reaches_another_server_reports_nothing_of_it(tmp, pg_url):
    """A supervisor starting waits behind a lock; before its wait is first reported, the
    address of the database comes to reach a second server (another port behind the
    proxy) holding a database of the same name. The report, read on a connection made
    anew, reaches that server, where no session of the number is this supervisor's: it
    says the wait could not be read and why, and SIGTERM still ends the start. Before,
    it said of the other server's process of that number (none here) that `the server is
    running it`, a statement that waited behind a lock."""
    from pg_cluster import Cluster
    url = new_pg_db(tmp, pg_url, runs=1, phases=2)
    name = url.rsplit("/", 1)[1]
    other = Cluster()
    proxy = DarkProxy(url)
    con = lock_phases(url)
    try:
        other.psql('CREATE DATABASE "%s"' % name)
        sup = Supervisor(tmp, proxy.url, "--workers", 1, "--dry-run", "--exit-when-drained")
        try:
            wait_for(lambda: lock_waiters(url) > 0, 60, step=0.01, what="the start waiting")
            proxy.upstream = ("127.0.0.1", other.port)
            wait_for(lambda: "has not answered" in sup.stderr(), 60,
                     what="the start's report of its wait")
            line = [x for x in sup.stderr().splitlines() if "has not answered" in x][0]
            assert "the server is running it" not in line, line
            assert re.search(r"what server process \d+ waits for could not be read \(the"
                             r" connection made to read it reaches no session \d+ of database"
                             r" %s, user autopack and application autopack-supervisor( \d+)?:"
                             r" another server answers at the address, or another database"
                             r" under the name\)" % name, line), line
            sup.signal(signal.SIGTERM)
            assert sup.wait(60) == 0, sup.stderr()
        finally:
            sup.kill()
    finally:
        con.rollback()
        con.close()
        proxy.close()
        other.close()
