"""Phase code is hostile: a check command (and the code the model wrote, which it runs)
gets stdio and nothing else -- not the worker's socket to its supervisor (where a forged
frame would pass for the worker's), not a descriptor the operator's shell left open --
and nothing it starts outlives its attempt: not when the worker is killed, not when the
supervisor stops, not when it is requeued."""
import json
import os
import signal

import pytest

from e2e_helpers import (HOST_PID, Standin, checks_where, import_plan, init_db, llm_args,
                         phase_spec, rows)
from supervisor_helpers import Supervisor, sql, wait_for

KEY = {"ANTHROPIC_API_KEY": "sk-ant-containment"}

# A result of success and a call of 2e9 tokens, written as the worker's frames to fd 3.
FORGE = r'''
import os, struct, sys
import msgpack
uuid, att = sys.argv[1], int(sys.argv[2])
def frame(m):
    b = msgpack.packb(m)
    return struct.pack(">I", len(b)) + b
usage = {"v": 1, "t": "event", "uuid": uuid, "att": att, "seq": 900, "kind": "llm_usage",
         "body": {"prov": "anthropic", "model": "forged", "role": "builder",
                  "in": 1000000000, "out": 1000000000, "total": 2000000000, "lat": 1,
                  "http": 200, "try": 1}}
result = {"v": 1, "t": "result", "uuid": uuid, "att": att, "seq": 900,
          "outcome": "success", "llm": True, "dur": 1}
try:
    os.write(3, frame(usage) + frame(result))
    print("forged frames written to fd 3")
except OSError as e:
    print("fd 3: %s" % e)
'''


def test_a_check_gets_stdio_and_no_other_descriptor(tmp):
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    forge = os.path.join(tmp, "forge.py")
    with open(forge, "w") as f:
        f.write(FORGE)
    secret = os.path.join(tmp, "secret.env")
    with open(secret, "w") as f:
        f.write("OPERATOR_SECRET=hunter2-containment\n")
    url = init_db(tmp)
    uuid = sql(url, "SELECT db_uuid FROM meta")[0][0]
    # The test lists the worker's descriptors while the check waits for it (a check in a
    # user namespace of its own may not).
    check = ("/usr/bin/python3 %s %s 1; %s; ls -l /proc/$hostpid/fd > fds.txt;"
             " cat > leak.txt 2>&1 <&7; i=0; while [ ! -e listed ] && [ $i -lt 600 ];"
             " do sleep 0.1; i=$((i+1)); done; exit 1" % (forge, uuid, HOST_PID))
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])
    llm = Standin(tmp)
    # The operator's shell hands the supervisor its descriptor 7: `... 7<secret.env`.
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained",
                     "--max-attempts-per-phase", 1, *llm_args(llm), env=KEY,
                     prefix=("/bin/sh", "-c", 'exec "$@" 7<%s' % secret, "sh"))
    try:
        sup.wait_ready()
        wait_for(lambda: os.path.exists(os.path.join(ws, "leak.txt")), 60,
                 what="the check running")
        worker = sup.status()["pool"]["workers"][0]["pid"]
        worker_fds = "".join("%s -> %s\n" % (fd, os.readlink("/proc/%d/fd/%s" % (worker, fd)))
                             for fd in os.listdir("/proc/%d/fd" % worker))
        open(os.path.join(ws, "listed"), "w").close()
        rc = sup.wait(timeout=120)
    finally:
        sup.kill()
        llm.stop()
    att = rows(url, "SELECT attempt_id, outcome, failure_reason FROM attempts")
    assert [(a["attempt_id"], a["outcome"], a["failure_reason"]) for a in att] == [
        (1, "failed", "CHECK_FAILED")], sup.stderr()
    assert rows(url, "SELECT id FROM llm_usage_events WHERE total_tokens >= 1000000000"
                " OR model = 'forged'") == []
    assert rc == 0 or rc == 5, sup.stderr()
    # The shell's own descriptors: stdio (and its saved copy of stdin); no socket.
    with open(os.path.join(ws, "fds.txt")) as f:
        fds = f.read()
    assert " 0 -> " in fds and " 2 -> " in fds, fds
    assert "socket:" not in fds and secret not in fds, fds
    with open(os.path.join(ws, "leak.txt")) as f:
        assert "hunter2" not in f.read()
    # The worker itself never had the operator's descriptor.
    assert "socket:" in worker_fds and secret not in worker_fds, worker_fds


def live_processes(pred):
    """Pids of the live (not zombie) processes whose /proc entry satisfies pred(pid, stat
    fields after the command name)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X") and pred(int(name), fields):
            found.append(int(name))
    return found


def in_workspace(ws):
    """The live processes whose working directory is in ws."""
    def pred(pid, fields):
        try:
            return os.readlink("/proc/%d/cwd" % pid).startswith(ws)
        except OSError:
            return False
    return live_processes(pred)


# Records its process group, then leaves a child that writes into the
# workspace long after: a test suite's server, a build daemon.
LINGER = (HOST_PID + "; echo $hostpgrp >> starts; sh -c 'sleep 600; echo late > LATE_MARKER';"
          " true")


def starts(ws):
    path = os.path.join(ws, "starts")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def in_group(pgid):
    """The live processes of process group pgid."""
    return live_processes(lambda p, f: int(f[2]) == pgid)


def lingering_check(tmp):
    """A supervisor with one worker running a LINGER check, its child asleep. Returns the
    database URL, the workspace, the stand-in, the supervisor and the check's group."""
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=LINGER)])])
    llm = Standin(tmp)
    sup = Supervisor(tmp, url, "--workers", 1, *llm_args(llm), env=KEY)
    try:
        sup.wait_ready()
        first = wait_for(lambda: starts(ws), 60, what="the check running")[0]
        wait_for(lambda: len(in_group(first)) >= 3, 30, what="the check's sleep")
    except BaseException:
        sup.kill()
        llm.stop()
        raise
    return url, ws, llm, sup, first


def test_nothing_a_check_started_outlives_a_fast_stop(tmp):
    url, ws, llm, sup, _ = lingering_check(str(tmp))
    try:
        # Two SIGTERMs: the fast stop kills the worker; its check goes with it, all of it.
        assert sup.stop_now() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    assert in_workspace(ws) == [], sup.stderr()
    assert sql(url, "SELECT outcome FROM attempts") == [("supervisor_stopped",)]


def test_a_killed_workers_check_is_gone_before_its_phase_runs_again(tmp):
    url, ws, llm, sup, first = lingering_check(str(tmp))
    try:
        worker = sup.status()["pool"]["workers"][0]["pid"]
        # As the OOM killer would: the worker alone, its check's processes untouched.
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: len(starts(ws)) == 2, 60, what="the second attempt's check")
        # The first attempt's group was gone before the second attempt started.
        assert in_group(first) == []
        assert sup.stop_now() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    assert in_workspace(ws) == []
    assert not os.path.exists(os.path.join(ws, "LATE_MARKER"))
    assert [a for (a,) in sql(url, "SELECT outcome FROM attempts ORDER BY attempt_id")] == [
        "worker_crashed", "supervisor_stopped"]


def test_a_stop_signal_to_every_process_requeues_the_checks_it_killed(tmp):
    """KillMode=control-group: SIGTERM to the supervisor, its workers and their checks.
    A check killed by a signal its worker did not send says nothing about its phase: the
    attempt is requeued as stopped, no fingerprint counted, no run judged."""
    tmp = str(tmp)
    url = init_db(tmp)
    spaces = [os.path.join(tmp, "ws-%s" % r) for r in "abc"]
    import_plan(tmp, url, [("run-%s" % r, ws, [phase_spec("p-%s" % r,
                                                          check="touch started; sleep 600")])
                           for r, ws in zip("abc", spaces)])
    llm = Standin(tmp)
    sup = Supervisor(tmp, url, "--workers", 3, "--exit-when-drained", *llm_args(llm),
                     env=KEY, session=True)
    try:
        sup.wait_ready()
        wait_for(lambda: all(os.path.exists(os.path.join(ws, "started")) for ws in spaces),
                 60, what="three checks running")
        workers = [w["pid"] for w in sup.status()["pool"]["workers"]]
        sup.signal(signal.SIGTERM)
        wait_for(lambda: "stopping: no new dispatch" in sup.stderr(), 30,
                 what="the graceful stop")
        # The rest of the service: the workers and everything in their sessions.
        for pid in live_processes(lambda p, f: int(f[3]) in workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # ended between the listing and the signal
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = rows(url, "SELECT outcome, failure_reason FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("supervisor_stopped", "SUPERVISOR_STOPPED")] * 3, sup.stderr()
    assert {r["state"] for r in rows(url, "SELECT state FROM phases")} == {"QUEUED"}
    state = json.loads(rows(url, "SELECT state_json FROM drain_sessions")[0]["state_json"])
    assert state["fingerprint_counts"] == {} and state["sampled_runs"] == []
    assert sup.stderr().count("which the worker did not send") == 3


def test_a_check_that_stops_itself_with_a_stop_signal_fails_its_phase(tmp):
    """In a PID namespace a check cannot signal its worker: one that ends by a stop signal
    while no stop signal reached the worker sent it itself, and fails like any check killed
    by a signal. It ended WORKER_CRASHED ("killed by a stop signal from outside"), an
    infrastructure failure: a few such phases tripped the breaker and stopped the drain."""
    prefix = checks_where("namespaces")
    tmp = str(tmp)
    url = init_db(tmp)
    ws = os.path.join(tmp, "ws")
    bad = [("TERM", 15), ("INT", 2), ("HUP", 1), ("TERM", 15), ("TERM", 15)]
    import_plan(tmp, url, [("bad-%d" % i, ws, [phase_spec("p", ("out/b%d.py" % i,),
                                                          check="kill -%s $$" % name)])
                           for i, (name, _) in enumerate(bad)]
                + [("good", ws, [phase_spec("g%d" % i, ("out/g%d.py" % i,))
                                 for i in range(2)])])
    llm = Standin(tmp)
    sup = Supervisor(tmp, url, "--workers", 3, "--exit-when-drained",
                     "--max-attempts-per-phase", 1, *llm_args(llm), env=KEY, prefix=prefix)
    try:
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = rows(url, "SELECT run_id, outcome, failure_reason, message FROM attempts"
                    " WHERE run_id LIKE 'bad-%' ORDER BY run_id")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("failed", "CHECK_FAILED")] * len(bad), sup.stderr()
    for a, (name, num) in zip(att, bad):
        assert a["message"].startswith("check command killed by signal %d (stderr: " % num), a
    assert {r["state"] for r in rows(url, "SELECT state FROM phases WHERE run_id = 'good'")} \
        == {"COMPLETE"}
    assert "BREAKER" not in sup.stderr() and "did not send" not in sup.stderr()


# Leaves a process in a session of its own (setsid), which records its pid and sleeps; the
# check goes on only once it runs there.
ESCAPE = ("setsid sh -c '%s; echo $hostpid > escaped; exec sleep 600' & " % HOST_PID +
          "while [ ! -s escaped ]; do sleep 0.05; done; ")


def escaped(ws):
    """The pid the process that left the session recorded, or None."""
    try:
        with open(os.path.join(ws, "escaped")) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def alive(pid):
    return pid in live_processes(lambda p, f: True)


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_process_that_left_the_session_does_not_outlive_its_check(tmp, where):
    """The worker is a child subreaper: what the check orphaned, even in a session of its
    own, becomes the worker's child, and the worker kills its children when the check
    ends (in a PID namespace, the namespace's end kills it first)."""
    prefix = checks_where(where)
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=ESCAPE + "true")])])
    llm = Standin(tmp)
    try:
        sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", *llm_args(llm),
                         env=KEY, prefix=prefix)
        assert sup.wait() == 0, sup.stderr()
    finally:
        llm.stop()
    pid = escaped(ws)
    assert pid is not None and not alive(pid), sup.stderr()
    assert in_workspace(ws) == []
    assert sql(url, "SELECT outcome FROM attempts") == [("success",)]


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_killed_workers_process_that_left_the_session_is_gone_before_its_phase_runs_again(
        tmp, where):
    """The worker killed while its check runs: the process the check put in a session of
    its own is orphaned to the supervisor (a child subreaper), which kills it with the
    rest of the worker's session (in a PID namespace, the namespace's end kills it
    first)."""
    prefix = checks_where(where)
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=ESCAPE + LINGER)])])
    llm = Standin(tmp)
    sup = Supervisor(tmp, url, "--workers", 1, *llm_args(llm), env=KEY, prefix=prefix)
    try:
        sup.wait_ready()
        wait_for(lambda: starts(ws), 60, what="the check running")
        first = escaped(ws)
        assert alive(first)
        os.unlink(os.path.join(ws, "escaped"))
        os.kill(sup.status()["pool"]["workers"][0]["pid"], signal.SIGKILL)
        wait_for(lambda: len(starts(ws)) == 2, 60, what="the second attempt's check")
        assert not alive(first), sup.stderr()
        assert sup.stop_now() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    assert in_workspace(ws) == []
