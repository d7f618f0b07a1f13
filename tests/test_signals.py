"""Signals as a terminal and a service manager send them: Ctrl-C reaches the whole process
group, `systemctl stop` (KillMode=control-group) signals every process of the service. The
supervisor alone takes them: its workers run in sessions of their own and obey a stop
signal only from their supervisor. The first SIGINT/SIGTERM lets the attempts in flight
finish, the second requeues them as supervisor_stopped; SIGHUP reopens --log-file."""
import json
import os
import shutil
import signal

from conftest import ctl
from e2e_helpers import Standin, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor, wait_for

KEY = {"ANTHROPIC_API_KEY": "sk-ant-signals"}


def two_runs(tmp, seconds):
    """Two runs of two phases; every call takes `seconds` to answer, or less once the file
    returned with them exists: (url, stand-in, that file's path)."""
    url = init_db(tmp)
    ws = os.path.join(tmp, "ws")
    import_plan(tmp, url, [
        ("run-a", ws, [phase_spec("a1", ("out/a1.py",)), phase_spec("a2", ("out/a2.py",))]),
        ("run-b", ws, [phase_spec("b1", ("out/b1.py",)), phase_spec("b2", ("out/b2.py",))]),
    ])
    go = os.path.join(tmp, "go")
    llm = Standin(tmp, {"default": {"mode": "sleep", "seconds": seconds, "until": go}})
    return url, llm, go


def two_in_flight(url):
    """Both workers' calls are on record as the workers announced them. The row of each
    attempt's first try is reserved with the attempt, 'sent' with the cap as max_tokens and
    no seq, before its worker has even started the call; the worker's announcement gives
    it its seq and the call's own max_tokens."""
    return len(rows(url, "SELECT id FROM llm_usage_events WHERE status = 'sent'"
                         " AND seq IS NOT NULL")) == 2


def end_of(url):
    return json.loads(rows(url, "SELECT state_json FROM drain_sessions")[0]["state_json"])["end"]


def test_ctrl_c_to_the_process_group_lets_the_attempts_finish(tmp):
    tmp = str(tmp)
    url, llm, go = two_runs(tmp, 100)
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", *llm_args(llm), env=KEY,
                     session=True)
    try:
        sup.wait_ready()
        wait_for(lambda: two_in_flight(url), 60, what="two calls in flight")
        workers = [w["pid"] for w in sup.status()["pool"]["workers"]]
        # Each worker leads a session of its own, outside the supervisor's group.
        assert len(workers) == 2 and all(os.getsid(p) == p for p in workers)
        assert os.getpgid(sup.proc.pid) == sup.proc.pid
        # Ctrl-C: the terminal signals its foreground process group.
        os.killpg(sup.proc.pid, signal.SIGINT)
        # The calls end once the stop is taken: none of their phases' successors starts.
        wait_for(lambda: "[STOP] received Interrupt" in sup.stderr(), 30,
                 what="the stop taken")
        open(go, "w").close()
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = rows(url, "SELECT run_id, phase_id, outcome FROM attempts ORDER BY attempt_id")
    assert sorted((a["phase_id"], a["outcome"]) for a in att) == [("a1", "success"),
                                                                   ("b1", "success")]
    assert rows(url, "SELECT phase_id, state FROM phases ORDER BY phase_id") == [
        {"phase_id": "a1", "state": "COMPLETE"}, {"phase_id": "a2", "state": "QUEUED"},
        {"phase_id": "b1", "state": "COMPLETE"}, {"phase_id": "b2", "state": "QUEUED"}]
    end = end_of(url)
    assert end["left_by"] == {"policy": 0, "operator": 2, "breaker": 0, "other": 0}
    assert (end["stop_cause"], end["exit_status"]) == ("operator", 0)
    assert "[STOP] received Interrupt" in sup.stderr()
    assert "ignoring" not in sup.stderr()  # the workers were not even signalled


def test_a_second_signal_requeues_the_attempts_as_supervisor_stopped(tmp):
    tmp = str(tmp)
    url, llm, _ = two_runs(tmp, 100)
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", *llm_args(llm), env=KEY,
                     session=True)
    try:
        sup.wait_ready()
        wait_for(lambda: two_in_flight(url), 60, what="two calls in flight")
        os.killpg(sup.proc.pid, signal.SIGINT)
        wait_for(lambda: "stopping: no new dispatch" in sup.stderr(), 30,
                 what="the graceful stop")
        os.killpg(sup.proc.pid, signal.SIGINT)
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = rows(url, "SELECT phase_id, outcome, failure_reason FROM attempts")
    assert sorted((a["phase_id"], a["outcome"], a["failure_reason"]) for a in att) == [
        ("a1", "supervisor_stopped", "SUPERVISOR_STOPPED"),
        ("b1", "supervisor_stopped", "SUPERVISOR_STOPPED")]
    assert {r["state"] for r in rows(url, "SELECT state FROM phases")} == {"QUEUED"}
    # A stop is not the phases' doing: no fingerprint counted, no run judged.
    state = json.loads(rows(url, "SELECT state_json FROM drain_sessions")[0]["state_json"])
    assert state["fingerprint_counts"] == {} and state["sampled_runs"] == []
    # Their calls were in flight: on record as lost, with their max_tokens.
    assert sorted((u["status"], u["max_tokens"]) for u in rows(
        url, "SELECT status, max_tokens FROM llm_usage_events")) == [("lost", 16384)] * 2


def test_a_service_manager_signalling_every_process_stops_only_the_supervisor(tmp):
    tmp = str(tmp)
    # The calls are in flight when the signals come, and end once every process took
    # its signal.
    url, llm, go = two_runs(tmp, 100)
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", *llm_args(llm), env=KEY,
                     session=True)
    try:
        sup.wait_ready()
        wait_for(lambda: two_in_flight(url), 60, what="two calls in flight")
        workers = [w["pid"] for w in sup.status()["pool"]["workers"]]
        # KillMode=control-group: SIGTERM to every process of the service, workers too.
        for pid in [sup.proc.pid] + workers:
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: "[STOP] received Terminated" in sup.stderr() and sup.stderr().count(
            "autopack-worker: ignoring a stop signal") == 2, 30, what="the signals taken")
        open(go, "w").close()
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    assert sorted(a["outcome"] for a in rows(url, "SELECT outcome FROM attempts")) == [
        "success", "success"]
    err = sup.stderr()
    assert err.count("autopack-worker: ignoring a stop signal from pid %d" % os.getpid()) == 2
    assert "[STOP] received Terminated" in err


def logging_with_a_call_in_flight(tmp):
    """A supervisor logging to tmp/drain.log whose one worker's call waits until the file
    `go` is made: (url, log, go, standin, supervisor), the call in flight."""
    url = init_db(tmp)
    import_plan(tmp, url, [("run-a", os.path.join(tmp, "ws"),
                            [phase_spec("a1", ("out/a1.py",))])])
    log = os.path.join(tmp, "drain.log")
    go = os.path.join(tmp, "go")
    llm = Standin(tmp, {"default": {"mode": "sleep", "seconds": 120, "until": go}})
    sup = Supervisor(tmp, url, "--workers", 1, "--log-file", log, *llm_args(llm), env=KEY)
    try:
        sup.wait_ready()
        wait_for(lambda: rows(url, "SELECT id FROM llm_usage_events WHERE status = 'sent'"),
                 60, what="a call in flight")
    except BaseException:
        sup.kill()
        llm.stop()
        raise
    return url, log, go, llm, sup


def test_sighup_reopens_the_log_file_and_changes_nothing_else(tmp):
    url, log, go, llm, sup = logging_with_a_call_in_flight(str(tmp))
    try:
        before = sup.status()
        os.rename(log, log + ".1")
        sup.signal(signal.SIGHUP)
        # The call ends only once the log is reopened: its end is logged in the new file.
        wait_for(lambda: os.path.exists(log) and "SIGHUP: log file reopened" in open(log).read(),
                 30, what="the log reopened")
        # Nothing else changed: the same process and session, the attempt in flight ends
        # as it would have.
        after = sup.status()
        assert (after["pid"], after["session_id"]) == (before["pid"], before["session_id"])
        assert after["state"] == "running"
        open(go, "w").close()
        wait_for(lambda: rows(url, "SELECT outcome FROM attempts WHERE outcome IS NOT NULL"),
                 60, what="the attempt's end")
        assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}]
        assert "[OK] run-a/a1 attempt" in open(log).read()
        # The worker follows the rotation too: what it logs now lands in the new file.
        r = sup.ctl("scale", "0")
        assert r.rc == 0, r
        wait_for(lambda: "asked this worker to stop (scale)" in open(log).read(), 30,
                 what="the worker's line in the new log")
        assert "asked this worker to stop" not in open(log + ".1").read()
    finally:
        sup.stop_now()
        llm.stop()
    assert rows(url, "SELECT stop_reason FROM drain_sessions")[0]["stop_reason"] == \
        "received Terminated"


def test_a_signal_after_the_drain_rules_stopped_a_run_exits_5_naming_both(tmp):
    """The operator's stop leaves its own phases without blame (exit 0 alone), but work the
    drain rules had already left still makes the exit status 5."""
    tmp = str(tmp)
    url = init_db(tmp)
    ws = os.path.join(tmp, "ws")
    import_plan(tmp, url, [
        ("failing", ws, [phase_spec("f%d" % i, ("out/fail_%d.py" % i,)) for i in range(3)]),
        ("slow", ws, [phase_spec("s%d" % i, ("out/slow_%d.py" % i,)) for i in range(2)]),
    ])
    llm = Standin(tmp, {"markers": {
        "fail_": [{"mode": "status", "status": 500, "message": "upstream exploded"}] * 50,
        "slow_": [{"mode": "sleep", "seconds": 300}] * 50}})
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--llm-retries", 0,
                     "--max-attempts-per-phase", 1, "--max-fingerprint-repeats", 2,
                     *llm_args(llm), env=KEY)
    try:
        sup.wait_ready()
        wait_for(lambda: "[STOP] run failing: fingerprint seen 2 times" in sup.stderr(), 120,
                 what="the drain rules stopping run failing")
        wait_for(lambda: rows(url, "SELECT id FROM llm_usage_events WHERE status = 'sent'"
                              " AND phase_id = 's0'"), 60, what="run slow's call in flight")
        assert sup.stop_now() == 5, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    end = end_of(url)
    assert end["left_by"] == {"policy": 1, "operator": 2, "breaker": 0, "other": 0}, end
    assert [(e["run_id"], e["phases"], e["cause"]) for e in end["left"]] == [
        ("failing", 1, "policy"), ("slow", 2, "operator")]
    assert (end["stop_cause"], end["exit_status"]) == ("operator", 5)
    last = sup.stderr().rstrip("\n").rsplit("\n", 1)[1]
    assert last.endswith("; phases COMPLETE 0, FAILED 2, QUEUED 3; 2 left by the operator's"
                         " stop; 1 left by the drain rules; exit status 5"), last


def test_a_stop_signal_before_the_loop_runs_is_taken_by_it(tmp):
    """A SIGTERM that comes while the supervisor opens the database is a graceful stop like
    any other, and one blocked by whoever started it still reaches it: the wrapper blocks
    SIGTERM, sends it to itself and execs the supervisor with it pending."""
    from supervisor_helpers import ROGUE, new_db, sql
    tmp = str(tmp)
    url = new_db(tmp, runs=2, phases=1)
    wrapper = os.path.join(tmp, "pending-term")
    with open(wrapper, "w") as f:
        f.write("import os, signal, sys\n"
                "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
                "os.kill(os.getpid(), signal.SIGTERM)\n"
                "os.execv(sys.argv[1], sys.argv[1:])\n")
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", "--worker", ROGUE,
                     env={"ROGUE_MODE": "good"}, prefix=("/usr/bin/python3", wrapper))
    try:
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
    assert "[STOP] received Terminated" in sup.stderr()
    assert sql(url, "SELECT stop_reason FROM drain_sessions") == [("received Terminated",)]
    assert " ended (received Terminated): " in sup.stderr().rstrip("\n").rsplit("\n", 1)[1]


def test_sighup_with_the_log_path_made_a_link_to_the_database_keeps_the_old_log(tmp):
    """A rotation that leaves a link to the database at the log's path: the supervisor's
    reopen and each worker's next line appended their lines into the database file; the
    file watch took them for another program's writes (DATABASE LOST, exit 3), and the
    message saying so went into the database too, where the next checkpoint overwrote
    it. The reopen is refused, naming why, and the drain goes on in the old file."""
    url, log, go, llm, sup = logging_with_a_call_in_flight(str(tmp))
    db = url[len("sqlite:///"):]
    try:
        os.rename(log, log + ".1")
        os.symlink(db, log)
        sup.signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: cannot reopen the log file %s: it is an SQLite database's "
                         "file (the database, its -wal or its -shm), which a log is never "
                         "written into; logging goes on to the old one" % log
                 in open(log + ".1").read(), 30, what="the reopen refused")
        open(go, "w").close()
        wait_for(lambda: rows(url, "SELECT outcome FROM attempts WHERE outcome IS NOT NULL"),
                 60, what="the attempt's end")
        assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}]
        # The worker, which follows the path at each line, stays in the old file too.
        assert sup.ctl("scale", "0").rc == 0
        wait_for(lambda: "asked this worker to stop (scale)" in open(log + ".1").read(), 30,
                 what="the worker's line in the old log")
        assert sup.status()["state"] == "running"
    finally:
        rc = sup.stop_now()
        llm.stop()
    assert rc == 0, open(log + ".1").read()[-3000:]
    with open(db, "rb") as f:
        assert b"autopack-" not in f.read()
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r


def test_sighup_with_the_log_directory_removed_goes_on_on_stderr(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    import_plan(tmp, url, [("run-a", os.path.join(tmp, "ws"),
                            [phase_spec("a1", ("out/a1.py",))])])
    logdir = os.path.join(tmp, "logs")
    os.makedirs(logdir)
    log = os.path.join(logdir, "drain.log")
    sup = Supervisor(tmp, url, "--workers", 0, "--log-file", log, env=KEY)
    try:
        sup.wait_ready()
        shutil.rmtree(logdir)
        sup.signal(signal.SIGHUP)
        # The old file went with its directory: the error, and every later line, reach
        # stderr instead of a file nobody can open.
        wait_for(lambda: "SIGHUP: cannot reopen the log file %s" % log in sup.stderr(), 30,
                 what="the failed reopen reported")
        assert "the old one was removed too: logging goes on to standard error" in \
            sup.stderr()
        assert sup.ctl("pause").rc == 0
        wait_for(lambda: "pause" in sup.stderr().split("SIGHUP:", 1)[1], 30,
                 what="a later line on stderr")
    finally:
        sup.stop_now()
    assert "[STOP] received Terminated" in sup.stderr()
    assert not os.path.exists(logdir)


def test_a_log_file_that_is_a_fifo_no_one_reads_is_refused_and_never_waited_for(tmp):
    """The open of a FIFO for writing waits for a reader: at start, with the stop signals
    held back until the loop runs, the supervisor hung for ever and SIGTERM (Ctrl-C,
    `timeout`, systemd's stop) did nothing; on SIGHUP the loop hung with every worker."""
    tmp = str(tmp)
    url = init_db(tmp)
    import_plan(tmp, url, [("run-a", os.path.join(tmp, "ws"),
                            [phase_spec("a1", ("out/a1.py",))])])
    fifo = os.path.join(tmp, "log.fifo")
    os.mkfifo(fifo)
    sup = Supervisor(tmp, url, "--workers", 0, "--log-file", fifo, env=KEY, control=False)
    try:
        assert sup.wait(timeout=30) == 1, sup.stderr()
    finally:
        sup.kill()
    assert "cannot open log file %s: a FIFO that no process has open for reading" % fifo \
        in sup.stderr(), sup.stderr()
    # Rotated into a FIFO while it runs: SIGHUP keeps the old file, and the loop goes on.
    log = os.path.join(tmp, "drain.log")
    sup = Supervisor(tmp, url, "--workers", 0, "--log-file", log, env=KEY, name="s2")
    try:
        sup.wait_ready()
        os.rename(log, log + ".1")
        os.mkfifo(log)
        sup.signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: cannot reopen the log file %s: a FIFO that no process has "
                 "open for reading; logging goes on to the old one" % log
                 in open(log + ".1").read(), 30, what="the failed reopen reported")
        assert sup.ctl("pause").rc == 0
    finally:
        sup.stop_now()
    assert "[STOP] received Terminated" in open(log + ".1").read()


def test_signals_the_supervisor_does_not_use_are_logged_and_ignored(tmp):
    # SIGUSR1, SIGUSR2 and SIGALRM end a process by default: sent to the whole group in
    # the middle of a drain (`pkill -USR1`, a log rotator), they ended the supervisor at
    # once, without a word and without the end of its session.
    tmp = str(tmp)
    url, llm, go = two_runs(tmp, 100)
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", *llm_args(llm), env=KEY,
                     session=True)
    try:
        sup.wait_ready()
        wait_for(lambda: two_in_flight(url), 60, what="two calls in flight")
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
            os.killpg(sup.proc.pid, sig)
            wait_for(lambda: "(signal %d): ignored" % sig in sup.stderr(), 30,
                     what="%s logged" % sig.name)
        # The calls were in flight for every signal; now the drain may end.
        open(go, "w").close()
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    assert [r["state"] for r in rows(url, "SELECT state FROM phases")] == ["COMPLETE"] * 4
    end = end_of(url)
    assert (end["stop_cause"], end["exit_status"]) == ("drained", 0)


def stopped(pid):
    """Whether the process is in the stopped state (T) as /proc/<pid>/stat shows it."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def test_a_command_to_a_stopped_supervisor_says_it_is_stopped_and_how_to_continue_it(tmp):
    """A supervisor stopped by SIGSTOP (Ctrl-Z in its terminal) answers nothing: a command
    waited out its 30 s and said only `no reply from the supervisor within 30000 ms`. It
    names the supervisor's pid, that it is stopped and how to let it go on; once it is,
    the supervisor answers again."""
    url = init_db(tmp)
    sup = Supervisor(tmp, url, "--workers", 0, "--allow-empty-db", "--dry-run")
    sup.wait_ready()
    pid = sup.proc.pid
    try:
        sup.signal(signal.SIGSTOP)
        wait_for(lambda: stopped(pid), 30, what="the supervisor stopped")
        r = sup.ctl("status")
        assert r.rc == 1, r
        assert ("no reply from the supervisor (pid %d) within 30000 ms: it is stopped "
                "(SIGSTOP, or Ctrl-Z in its terminal); kill -CONT %d lets it go on"
                % (pid, pid)) in r.err, r
    finally:
        sup.signal(signal.SIGCONT)
    assert sup.ctl("status").rc == 0
    assert sup.stop_now() == 0, sup.stderr()
