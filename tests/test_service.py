"""The supervisor under a service manager: systemd's notification protocol on a real
NOTIFY_SOCKET datagram socket the test binds (a path, and the abstract namespace):
READY=1 only once the control socket answers and every worker is up, STATUS= lines,
WATCHDOG=1 every half WATCHDOG_USEC and none while commits fail, STOPPING=1 at a stop; the
variables never reach a worker."""
import os
import re
import socket
import sqlite3
import uuid

import pytest

from conftest import ROOT, ctl, preload
from supervisor_helpers import (Supervisor, hold_write_lock, make_plan, new_db, release,
                                rogue_notes, rogue_supervisor, sql, wait_for)


class NotifySocket:
    """A datagram socket playing the service manager's end."""

    def __init__(self, tmp, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "autopack-test-" + uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = os.path.join(str(tmp), "notify.sock")
            self.sock.bind(path)
            self.env = path
        self.got = []  # every datagram, in order, as text

    def read(self, timeout=0.2):
        """Take the datagrams waiting (waiting up to `timeout` for the first)."""
        self.sock.settimeout(timeout)
        new = []
        try:
            while True:
                new.append(self.sock.recv(4096).decode())
                self.sock.settimeout(0)
        except (socket.timeout, BlockingIOError):
            pass
        self.got += new
        return new

    def wait(self, pred, what, timeout=60):
        """Read until a datagram satisfies pred; return it."""
        def seen():
            for d in self.read():
                if pred(d):
                    return d
            return None
        return wait_for(seen, timeout, step=0, what=what)

    def until(self, pred, what, timeout=60):
        """Like wait, but a datagram already read counts too."""
        for d in self.got:
            if pred(d):
                return d
        return self.wait(pred, what, timeout)

    def close(self):
        self.sock.close()


def supervise(tmp, url, notify, *args, watchdog_usec=None):
    env = {"NOTIFY_SOCKET": notify.env}
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    return Supervisor(tmp, url, *args, env=env)


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return [e.decode(errors="replace").split("=", 1)[0] for e in f.read().split(b"\0") if e]


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_status_watchdog_stopping(tmp, abstract):
    url = new_db(tmp, runs=2, phases=2)
    notify = NotifySocket(tmp, abstract)
    sup = supervise(tmp, url, notify, "--workers", 3, "--dry-run", watchdog_usec=200000)
    try:
        notify.wait(lambda d: "READY=1" in d.split("\n"), "READY=1")
        # Ready means: the control socket answers, and every wanted worker said hello.
        st = sup.status()
        assert st["pool"]["live"] == 3
        assert all(w["state"] in ("idle", "busy") for w in st["pool"]["workers"]), st
        assert [d for d in notify.got if d.startswith("STATUS=")], notify.got
        # While draining, the status line is the progress every reader shows; drained,
        # the supervisor is idle (the four dry-run phases may all be done by the time the
        # three workers are up: the line before READY=1 is either).
        first = [d for d in notify.got if d.startswith("STATUS=")][-1]
        assert re.match(r"STATUS=(draining: \d+/\d+ phases \(|idle: waiting for phases; )",
                        first), notify.got
        notify.until(lambda d: d == "STATUS=idle: waiting for phases; 4 done, 0 failed",
                     "the idle status line")
        # The status line precedes readiness, and a watchdog ping follows it.
        assert notify.got.index("READY=1") > 0
        pings = lambda: sum(d == "WATCHDOG=1" for d in notify.got)
        notify.wait(lambda d: d == "WATCHDOG=1", "a watchdog ping")
        n = pings()
        notify.wait(lambda d: d == "WATCHDOG=1" and pings() >= n + 3, "three more pings")
        # The service manager's variables reach no worker.
        for w in st["pool"]["workers"]:
            names = environ_of(w["pid"])
            for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                assert var not in names, (var, w)
        assert sup.ctl("stop").rc == 0
        notify.wait(lambda d: d == "STOPPING=1", "STOPPING=1")
        assert sup.wait() == 0, sup.stderr()
        after = notify.read()
        assert "READY=1" not in after and notify.got.count("READY=1") == 1
        assert notify.got.count("STOPPING=1") == 1
        assert any(d.startswith("STATUS=stopping") for d in notify.got), notify.got
    finally:
        sup.kill()
        notify.close()


def status_shape(line):
    """A pattern matching status lines like `line`: its words, any figures."""
    parts = re.split(r"(ETA [^,]+|\d+(?:\.\d+)?)", line)
    return "".join(re.escape(p) if i % 2 == 0 else
                   r"ETA [0-9a-z]+" if p.startswith("ETA") else r"\d+(?:\.\d+)?"
                   for i, p in enumerate(parts))


def test_documented_status_line_is_the_real_one(tmp):
    """The progress line the README and the man page show for `systemctl status` has the
    form the supervisor sends."""
    url = new_db(tmp, runs=2, phases=2)
    notify = NotifySocket(tmp)
    sup = supervise(tmp, url, notify, "--workers", 1, "--dry-run")
    try:
        real = notify.wait(lambda d: d.startswith("STATUS=draining: "), "a progress line")
        assert sup.stop_now() == 0
    finally:
        sup.kill()
        notify.close()
    shape = status_shape(real[len("STATUS="):])
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = re.findall(r'Status: "([^"]+)"', f.read())
    with open(os.path.join(ROOT, "docs", "man", "autopack-supervisor.1")) as f:
        man = re.findall(r'progress such as\n\.IR "([^"]+)"', f.read())
    assert readme and man
    for doc in readme + man:
        assert re.fullmatch(shape, doc), (doc, real)


def test_the_status_line_says_idle_paused_draining_and_stopping_with_counts(tmp):
    """STATUS= said "draining: 2/2 phases (100.0%) ... ETA done" while the supervisor sat
    idle with nothing queued, waiting for work, and a bare "paused" with no count of
    what was still in flight or queued. Each state now has its own word and counts."""
    url = new_db(tmp, runs=1, phases=2)
    go = os.path.join(str(tmp), "go")
    notify = NotifySocket(tmp)
    sup = rogue_supervisor(tmp, url, "good", "--workers", 1,
                           env={"NOTIFY_SOCKET": notify.env, "ROGUE_GO": go})
    status = lambda text: (lambda d: d == "STATUS=" + text)
    try:
        # The status line comes before READY=1.
        notify.wait(lambda d: re.match(r"STATUS=draining: 0/2 phases \(0\.0%\)", d),
                    "draining, the first phase in flight")
        notify.until(lambda d: d == "READY=1", "READY=1")
        wait_for(lambda: rogue_notes(tmp, event="job"), what="the first job")
        assert sup.ctl("pause").rc == 0
        notify.wait(status("paused: 1 in flight, 1 queued; 0/2 phases done, 0 failed"),
                    "paused with one in flight")
        open(go, "w").close()
        notify.wait(status("paused: 0 in flight, 1 queued; 1/2 phases done, 0 failed"),
                    "paused, the attempt in flight done")
        assert sup.ctl("resume").rc == 0
        notify.wait(status("idle: waiting for phases; 2 done, 0 failed"), "idle")
        # Idle stays idle: no other status while nothing is queued.
        notify.read(timeout=2.5)
        assert notify.got[-1].startswith("STATUS=idle") or notify.got[-1] == "WATCHDOG=1"
        assert not [d for d in notify.got[notify.got.index(
            "STATUS=idle: waiting for phases; 2 done, 0 failed"):]
            if d.startswith("STATUS=draining")], notify.got
        # New work makes it draining again, then idle with the new counts.
        plan = make_plan(os.path.join(str(tmp), "more.json"), 1, phases=1)
        with open(plan) as f:
            text = f.read().replace("run-000", "run-more")
        with open(plan, "w") as f:
            f.write(text)
        r = ctl("--db", url, "run", "import", plan)
        assert r.rc == 0, r
        notify.wait(status("idle: waiting for phases; 3 done, 0 failed"), "idle again")
        assert sup.ctl("stop").rc == 0
        notify.wait(lambda d: re.match(r"STATUS=stopping \(.+\): 0 in flight; 3/3 phases "
                                       r"done, 0 failed$", d), "stopping with counts")
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        notify.close()


def old_database(tmp, fillers):
    """A schema-version-1 database (as test_db.make_v1 makes it) with ten queued phases
    and `fillers` runs of a kilobyte each: the supervisor migrates it as it starts,
    after a backup of the whole file."""
    url = new_db(tmp, runs=1, phases=10)
    con = sqlite3.connect(url[len("sqlite:///"):])
    con.executescript(
        "DROP TABLE estimator_coefficients; UPDATE meta SET schema_version = 1;"
        "ALTER TABLE token_estimation_v2_events DROP COLUMN input_tokens;"
        "ALTER TABLE token_estimation_v2_events DROP COLUMN deliverables_detail_json;"
        "ALTER TABLE llm_usage_events DROP COLUMN max_tokens;")
    con.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)"
                " INSERT INTO runs (id, created_at, updated_at, goal_anchor)"
                " SELECT 'filler-' || i, 'a', 'b', hex(randomblob(500)) FROM c", (fillers,))
    con.commit()
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    return url


EXTEND = "EXTEND_TIMEOUT_USEC=10000000"


def test_a_slow_start_asks_for_more_time_while_it_works(tmp):
    """The start (here the migration's backup of the database, on a disk that takes 5 ms a
    write) sent nothing until READY=1: a start longer than the unit's TimeoutStartSec= (2
    min) was killed, and started again into the same migration. While the start works,
    the supervisor now asks for more time every second (EXTEND_TIMEOUT_USEC=, 10 s each
    time), and stops once ready."""
    url = old_database(tmp, 3000)
    notify = NotifySocket(tmp)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run",
                     env=preload("full-shim.so", NOTIFY_SOCKET=notify.env,
                                 AUTOPACK_FULL_SHIM_SUFFIX=".bak",
                                 AUTOPACK_FULL_SHIM_DELAY_US="5000"))
    try:
        notify.until(lambda d: d == "READY=1", "READY=1")
        before = notify.got[:notify.got.index("READY=1")]
        assert before.count(EXTEND) >= 2, notify.got
        assert set(d for d in before if d.startswith("EXTEND")) == {EXTEND}, notify.got
        m = re.search(r"the start took (\d+\.\d) s: asked the service manager (\d+) time\(s\)"
                      r" for more time \(EXTEND_TIMEOUT_USEC=10000000\) while it worked",
                      sup.stderr())
        assert m and int(m.group(2)) == before.count(EXTEND), sup.stderr()
        assert float(m.group(1)) >= 2.0, sup.stderr()
        # The database was migrated, and the drain goes on as usual.
        assert sql(url, "SELECT schema_version FROM meta") == [(5,)]
        notify.read(timeout=1.5)
        assert EXTEND not in notify.got[notify.got.index("READY=1"):], notify.got
        assert sup.stop_now() == 0, sup.stderr()
    finally:
        sup.kill()
        notify.close()


def test_a_start_that_waits_on_nothing_asks_for_no_more_time(tmp):
    """A start held where it does no work (here an fsync of the migration's backup that
    does not return: a stuck disk or file system) asks for no more time, so that the
    unit's TimeoutStartSec= still ends a start that is stuck."""
    url = old_database(tmp, 10)
    hold = os.path.join(str(tmp), "hold")
    log = os.path.join(str(tmp), "shim.log")
    open(hold, "w").close()
    notify = NotifySocket(tmp)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run",
                     env=preload("fsync-shim.so", NOTIFY_SOCKET=notify.env,
                                 AUTOPACK_SHIM_PATH=str(tmp) + "/", AUTOPACK_SHIM_HOLD=hold,
                                 AUTOPACK_SHIM_LOG=log))
    try:
        wait_for(lambda: os.path.exists(log) and "start" in open(log).read(), 60,
                 what="an fsync held")
        notify.read(timeout=4)
        assert "READY=1" not in notify.got
        # Its polls of the hold file may make a tick of CPU time: once at most.
        assert notify.got.count(EXTEND) <= 1, notify.got
        os.unlink(hold)
        notify.until(lambda d: d == "READY=1", "READY=1 once the fsync returned")
        assert sup.stop_now() == 0, sup.stderr()
    finally:
        if os.path.exists(hold):
            os.unlink(hold)
        sup.kill()
        notify.close()


def test_no_ready_before_workers_are_up(tmp):
    """A worker binary that never says hello: the supervisor runs, the control socket
    answers, but the service manager is never told it is ready."""
    url = new_db(tmp, runs=1, phases=1)
    silent = os.path.join(str(tmp), "silent-worker")
    with open(silent, "w") as f:
        f.write("#!/bin/sh\nexec sleep 600\n")
    os.chmod(silent, 0o755)
    notify = NotifySocket(tmp)
    sup = supervise(tmp, url, notify, "--workers", 2, "--worker", silent,
                    "--heartbeat-timeout-seconds", 3600)
    try:
        sup.wait_ready()
        notify.wait(lambda d: d == "STATUS=starting workers: 0/2 up", "the starting status")
        assert sup.status()["pool"]["live"] == 2
        # Status and control work; readiness waits for the workers' hello.
        assert "READY=1" not in notify.read()
        assert sup.ctl("stop", "--now").rc == 0
        notify.wait(lambda d: d == "STOPPING=1", "STOPPING=1")
        sup.wait()
        assert "READY=1" not in notify.got
    finally:
        sup.kill()
        notify.close()


def test_watchdog_withheld_while_commits_fail(tmp):
    url = new_db(tmp, runs=1, phases=1)
    notify = NotifySocket(tmp)
    sup = supervise(tmp, url, notify, "--workers", 1, "--dry-run", watchdog_usec=400000)
    try:
        notify.wait(lambda d: d == "WATCHDOG=1", "a watchdog ping")
        holder = hold_write_lock(url[len("sqlite:///"):])
        # pause is answered at once; its control_log row is a write that cannot commit.
        assert sup.ctl("pause").rc == 0
        wait_for(lambda: "not pinging the service manager's watchdog" in sup.stderr(), 60,
                 what="the watchdog withheld")
        notify.read()
        failures = sup.stderr().count("writes failed")
        wait_for(lambda: sup.stderr().count("writes failed") >= failures + 1, 60,
                 what="another failed commit")
        assert "WATCHDOG=1" not in notify.read(), "pinged while commits were failing"
        release(holder)
        notify.wait(lambda d: d == "WATCHDOG=1", "pings once commits succeed again")
        assert sup.stop_now() == 0
    finally:
        sup.kill()
        notify.close()


@pytest.mark.parametrize("env,what", [
    ({"NOTIFY_SOCKET": "relative/path"}, "NOTIFY_SOCKET"),
    ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "soon"}, "WATCHDOG_USEC"),
    # strtoull took these as 2^64-5 (no ping ever) and as 5: whole values only.
    ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "-5"}, 'WATCHDOG_USEC="-5"'),
    ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": " 5"}, 'WATCHDOG_USEC=" 5"'),
    ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "+5"}, 'WATCHDOG_USEC="+5"'),
])
def test_malformed_service_environment_is_refused(tmp, env, what):
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 1, env=env)
    assert sup.wait() == 1
    assert what in sup.stderr()


@pytest.mark.parametrize("usec", ["1", "999", "1999", "99999"])
def test_a_watchdog_period_under_100_ms_is_refused_naming_the_shortest(tmp, usec):
    """A WATCHDOG_USEC under 1000 made the health check's period 0 ms, so that any write
    queued for the next commit withheld the ping; under 2000 the supervisor pinged every
    millisecond, past a period under one (systemd kills a unit whose ping comes late). It
    is refused, naming the shortest period taken, and nothing is dispatched."""
    url = new_db(tmp, runs=1, phases=1)
    notify = NotifySocket(tmp)
    try:
        sup = supervise(tmp, url, notify, "--workers", 1, "--dry-run", "--exit-when-drained",
                        watchdog_usec=usec)
        assert sup.wait() == 1, sup.stderr()
        assert ("WATCHDOG_USEC=%s is under 100000 (100 ms), the shortest watchdog period "
                "this supervisor keeps" % usec) in sup.stderr(), sup.stderr()
        assert "give the unit WatchdogSec=100ms or more" in sup.stderr(), sup.stderr()
        notify.read()
        assert "WATCHDOG=1" not in notify.got and "READY=1" not in notify.got
        assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    finally:
        notify.close()


def test_empty_notify_socket_is_no_service_manager(tmp):
    """`NOTIFY_SOCKET= autopack-supervisor ...` (how a shell unsets it for one command)
    runs without a service manager instead of refusing to start."""
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     env={"NOTIFY_SOCKET": ""})
    assert sup.wait() == 0, sup.stderr()
    assert "NOTIFY_SOCKET" not in sup.stderr()


def test_watchdog_for_another_pid_is_ignored(tmp):
    url = new_db(tmp, runs=1, phases=1)
    notify = NotifySocket(tmp)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run",
                     env={"NOTIFY_SOCKET": notify.env, "WATCHDOG_USEC": "100000",
                          "WATCHDOG_PID": "1"})
    try:
        notify.wait(lambda d: d == "READY=1", "READY=1")
        # Two status changes (sent at most once a second) while pings, were they due,
        # would come every 50 ms.
        assert sup.ctl("pause").rc == 0
        notify.wait(lambda d: d.startswith("STATUS=paused: "), "the paused status")
        assert sup.ctl("resume").rc == 0
        notify.wait(lambda d: d.startswith("STATUS=") and not d.startswith("STATUS=paused"),
                    "resumed")
        assert sup.ctl("stop").rc == 0
        notify.wait(lambda d: d == "STOPPING=1", "STOPPING=1")
        assert sup.wait() == 0
        assert "WATCHDOG=1" not in notify.got
    finally:
        sup.kill()
        notify.close()


def test_a_notification_that_cannot_be_sent_is_logged_once_and_again_when_it_can(tmp):
    # Every failed send was ignored: with NOTIFY_SOCKET naming something that is not the
    # manager's socket (a wrong path, a manager gone), READY=1 and the watchdog pings were
    # lost without a word, and systemd timed the unit out or killed it.
    url = new_db(tmp, runs=1, phases=1)
    notify = NotifySocket(tmp)
    sup = supervise(tmp, url, notify, "--workers", 1, "--dry-run", watchdog_usec=200000)
    try:
        notify.wait(lambda d: "READY=1" in d, "READY=1")
        notify.close()
        os.unlink(notify.env)
        wait_for(lambda: "cannot send" in sup.stderr(), what="the failed send logged")
        assert re.search(r"warn: cannot send (WATCHDOG=1|STATUS) to the service manager at "
                         r"NOTIFY_SOCKET=%s: No such file or directory; it will not learn "
                         r"that the supervisor is ready or alive" % re.escape(notify.env),
                         sup.stderr()), sup.stderr()
        back = NotifySocket(tmp)  # the manager again, at the same path
        back.wait(lambda d: "WATCHDOG=1" in d, "a ping after the manager came back")
        wait_for(lambda: "is reachable again" in sup.stderr(), what="recovery logged")
        # once per outage: the pings lost every 0.1 s were not each logged
        assert sup.stderr().count("cannot send") == 1, sup.stderr()
        back.close()
    finally:
        sup.stop_now()
    # A path that is no socket at all: the drain goes on, and says so.
    with open(os.path.join(str(tmp), "not-a-socket"), "w"):
        pass
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     env={"NOTIFY_SOCKET": os.path.join(str(tmp), "not-a-socket")},
                     name="sup2")
    assert sup.wait() == 0, sup.stderr()
    assert "cannot send" in sup.stderr() and "Connection refused" in sup.stderr()


def test_a_status_line_cut_to_its_room_is_cut_between_characters(tmp):
    """STATUS= holds at most 255 bytes: a longer line was cut at the 255th byte, inside a
    character: the datagram was not valid UTF-8, which a service manager may refuse."""
    url = new_db(tmp, runs=1, phases=1)
    notify = NotifySocket(tmp)
    sup = rogue_supervisor(tmp, url, "key401", "--workers", 1, "--exit-when-drained",
                           env={"NOTIFY_SOCKET": notify.env,
                                "ROGUE_PROVIDER": "x" + "\u00e9" * 120})
    try:
        status = notify.wait(lambda d: d.startswith("STATUS=stopping"), "the stopping status")
        assert sup.wait() == 4, sup.stderr()
    finally:
        sup.kill()
        notify.close()
    assert status.startswith("STATUS=stopping (breaker: the x\u00e9\u00e9"), status
    assert status.endswith("\u00e9") and 250 <= len(status.encode()) - len("STATUS=") <= 255


def test_a_status_line_holds_no_other_assignment(tmp):
    """STATUS= is one line of a datagram whose lines are assignments: a newline in a stop
    reason (here in the provider a worker named when the key was refused, which trips the
    breaker and stops the drain) is sent as \\n, so what follows it is no assignment of
    its own (it sent MAINPID=1 to the service manager)."""
    url = new_db(tmp, runs=1, phases=1)
    notify = NotifySocket(tmp)
    sup = rogue_supervisor(tmp, url, "key401", "--workers", 1, "--exit-when-drained",
                           env={"NOTIFY_SOCKET": notify.env,
                                "ROGUE_PROVIDER": "anthropic\nMAINPID=1"})
    try:
        status = notify.wait(lambda d: d.startswith("STATUS=stopping"), "the stopping status")
        assert sup.wait() == 4, sup.stderr()
        notify.read()
    finally:
        sup.kill()
        notify.close()
    assert status.startswith("STATUS=stopping (breaker: the anthropic\\nMAINPID=1 provider"
                             " refused the API key (HTTP 401 in attempt 1)"), status
    lines = [line for d in notify.got for line in d.split("\n")]
    assert not [line for line in lines if line.startswith("MAINPID=")], notify.got


def unit_restarts_after(status):
    """Whether the shipped unit's Restart= policy starts the service again after its
    supervisor exited with `status` on its own (systemd's rule for on-failure: any status
    but 0 and those of SuccessExitStatus=, unless RestartPreventExitStatus= names it)."""
    text = open(os.path.join(ROOT, "contrib", "autopack-supervisor@.service")).read()
    setting = lambda key: " ".join(re.findall(r"^%s=(.*)$" % key, text, re.M)).split()
    assert setting("Restart") == ["on-failure"], text
    if status == 0 or str(status) in setting("SuccessExitStatus"):
        return False
    return str(status) not in setting("RestartPreventExitStatus")


def test_the_unit_does_not_restart_a_supervisor_whose_budget_ended_the_drain(tmp):
    """--batch-size (as --max-total-minutes, --max-consecutive-zero-yield and LimitCPU=)
    ends the session and the supervisor on its own, --exit-when-drained or not, exit 5:
    the shipped unit restarted it 10 s later into a new session with fresh budgets, and
    again after each, without end (an `autopack-ctl stop` of a drain whose rules had
    stopped a run, exit 5 too, came back the same way)."""
    url = new_db(tmp, runs=1, phases=3)
    notify = NotifySocket(tmp)
    sup = supervise(tmp, url, notify, "--workers", 1, "--dry-run", "--batch-size", 1)
    try:
        notify.wait(lambda d: d == "STOPPING=1", "STOPPING=1")
        status = sup.wait()
    finally:
        sup.kill()
        notify.close()
    assert status == 5, sup.stderr()
    assert "batch size 1 reached (--batch-size)" in sup.stderr()
    assert not unit_restarts_after(status)
    # What the unit is meant to restart still is: a crash (a signal, or any other status).
    assert unit_restarts_after(6) and not unit_restarts_after(0)
    for refused in (1, 2, 3):
        assert not unit_restarts_after(refused)


def unit_settings(section):
    """The shipped unit's settings of one section, as {key: [values]}."""
    text = open(os.path.join(ROOT, "contrib", "autopack-supervisor@.service")).read()
    body = re.search(r"^\[%s\]\n(.*?)(?=^\[|\Z)" % section, text, re.M | re.S).group(1)
    out = {}
    for key, value in re.findall(r"^(\w+)=(.*)$", body, re.M):
        out.setdefault(key, []).append(value)
    return out


def test_the_unit_does_not_restart_a_supervisor_whose_breaker_tripped(tmp):
    """The breaker ends a drain (exit 4, with --exit-when-drained) when the provider or the
    workers failed again and again: the shipped unit started it again after RestartSec
    (10 s), for ever, each start repeating the calls the provider refused. It is now
    failed instead; a supervisor that keeps crashing is restarted a bounded number of
    times."""
    url = new_db(tmp, runs=1, phases=1)
    notify = NotifySocket(tmp)
    sup = rogue_supervisor(tmp, url, "key401", "--workers", 1, "--exit-when-drained",
                           env={"NOTIFY_SOCKET": notify.env})
    try:
        notify.wait(lambda d: d.startswith("STATUS=stopping (breaker"), "the breaker's stop")
        status = sup.wait()
    finally:
        sup.kill()
        notify.close()
    assert status == 4, sup.stderr()
    assert not unit_restarts_after(status)
    unit = unit_settings("Unit")
    # Crashes are restarted at most StartLimitBurst times within StartLimitIntervalSec.
    assert int(unit["StartLimitBurst"][0]) <= 10, unit
    assert re.fullmatch(r"\d+min", unit["StartLimitIntervalSec"][0]), unit
    assert int(unit["StartLimitIntervalSec"][0][:-3]) * 60 >= \
        int(unit["StartLimitBurst"][0]) * int(unit_settings("Service")["RestartSec"][0][:-1])
    # The unit's comments name every exit status and what the unit does after it.
    text = open(os.path.join(ROOT, "contrib", "autopack-supervisor@.service")).read()
    for code in ("0", "1", "2", "3", "4", "5"):
        assert re.search(r"^#\s+%s\s" % code, text, re.M), code
