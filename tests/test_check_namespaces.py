"""A check command (and the code the model wrote, which it runs) runs as the supervisor's
user, in a user and a PID namespace of its own when the kernel allows it: it cannot name,
so cannot signal, the supervisor or any worker, and, even run as root, cannot read their
memory, where the API keys are. Where the kernel refuses the namespaces, checks run as
before, with one warning per worker saying what they can do."""
import json
import os
import re
import signal
import socket
import subprocess
import uuid

import pytest

from conftest import binpath
from supervisor_helpers import wait_for
from e2e_helpers import (HOST_PID, Standin, check_namespaces, drain_logging_workers,
                         drain_until_exit, import_plan, init_db, needs_namespaces, phase_spec,
                         refused_namespaces_prefix, rows)

KEY = {"ANTHROPIC_API_KEY": "sk-ant-namespaces"}

# Walks from itself up the machine's process tree to the first process whose argv[0] is
# one of `names` and returns its pid (the machine's, from /proc), or None.
ANCESTOR = r'''
import os
def ancestor(names):
    pid = int(os.readlink("/proc/self"))
    while pid > 1:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv0 = f.read().split(b"\0")[0].decode(errors="replace")
        if os.path.basename(argv0) in names:
            return pid
        with open("/proc/%d/status" % pid) as f:
            pid = int([l.split()[1] for l in f if l.startswith("PPid:")][0])
    return None
'''

# Kills its worker, found by its process tree, with SIGKILL; records what happened.
KILL_WORKER = ANCESTOR + r'''
import json, signal
pid = ancestor(("autopack-worker",))
result = {"pid": pid}
if pid is not None and pid > 1:
    try:
        os.kill(pid, signal.SIGKILL)
        result["error"] = None
    except OSError as e:
        result["error"] = "%s: %s" % (type(e).__name__, e)
with open("kill-worker.json", "w") as f:
    json.dump(result, f)
'''

# Waits for the supervisor's pid (the test writes it), then SIGKILLs it; records kill's
# exit status and what it said.
KILL_SUPERVISOR = ("i=0; while [ ! -s sup.pid ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1));"
                   " done; kill -9 \"$(cat sup.pid)\" 2> kill-sup.err; echo $? > kill-sup.rc")


def workspace_with(tmp, name, text):
    """A new workspace TMP/ws holding the file `name` with `text`; returns its path."""
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    with open(os.path.join(ws, name), "w") as f:
        f.write(text)
    return ws


def test_a_check_cannot_kill_the_supervisor_or_its_worker(tmp):
    needs_namespaces("pid")
    tmp = str(tmp)
    ws = workspace_with(tmp, "kill_worker.py", KILL_WORKER)
    url = init_db(tmp)
    import_plan(tmp, url, [
        ("sup", ws, [phase_spec("kill-sup", ("out/a.py",), check=KILL_SUPERVISOR)]),
        ("worker", ws, [phase_spec("kill-worker", ("out/b.py",),
                                   check="/usr/bin/python3 kill_worker.py")]),
        ("calm", ws, [phase_spec("c%d" % i, ("out/c%d.py" % i,)) for i in range(2)]),
    ])

    def pid_file(sup):
        with open(os.path.join(ws, "sup.pid"), "w") as f:
            f.write("%d\n" % sup.proc.pid)

    sup, rc = drain_until_exit(tmp, url, Standin(tmp), 2, env=KEY, during=pid_file)
    assert rc == 0, sup.stderr()
    # Every phase passed at its first attempt: no worker died, the supervisor drained.
    att = rows(url, "SELECT phase_id, outcome FROM attempts ORDER BY attempt_id")
    assert sorted((a["phase_id"], a["outcome"]) for a in att) == [
        ("c0", "success"), ("c1", "success"), ("kill-sup", "success"),
        ("kill-worker", "success")], sup.stderr()
    # Both kills were tried, on the real pids, and refused: no such process in the
    # check's PID namespace.
    with open(os.path.join(ws, "kill-sup.rc")) as f:
        assert f.read().strip() != "0"
    with open(os.path.join(ws, "kill-sup.err")) as f:
        assert "No such process" in f.read()
    with open(os.path.join(ws, "kill-worker.json")) as f:
        killed = json.load(f)
    assert killed["pid"] is not None and killed["pid"] > 1, killed
    assert killed["error"] == "ProcessLookupError: [Errno 3] No such process", killed
    # A root worker refused the user namespace (a chroot) says so, once a worker.
    if check_namespaces() == "user+pid":
        assert "check commands run in" not in sup.stderr()
    else:
        assert "check commands run in a PID namespace of their own but in no user" \
            " namespace" in sup.stderr()


# Reads the memory of its worker and of the supervisor (root may, through /proc/<pid>/mem,
# non-dumpable or not) and keeps what follows each "sk-ant-" it finds there.
READ_MEMORY = ANCESTOR + r'''
import json
out = {}
for name in ("autopack-worker", "autopack-supervisor"):
    pid = ancestor((name,))
    res = out[name] = {"pid": pid, "hits": []}
    if pid is None:
        continue
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read().splitlines()
        res["maps"] = "read"
    except OSError as e:
        maps = []
        res["maps"] = "%s: %s" % (type(e).__name__, e)
    try:
        mem = open("/proc/%d/mem" % pid, "rb")
        res["mem"] = "opened"
    except OSError as e:
        res["mem"] = "%s: %s" % (type(e).__name__, e)
        continue
    total = 0
    for line in maps:
        addr, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in addr.split("-"))
        if perms[0] != "r" or hi - lo > (64 << 20) or total > (1 << 30):
            continue
        total += hi - lo
        try:
            mem.seek(lo)
            data = mem.read(hi - lo)
        except OSError:
            continue
        at = data.find(b"sk-ant-")
        while at >= 0 and len(res["hits"]) < 50:
            res["hits"].append(data[at:at + 64].decode(errors="replace"))
            at = data.find(b"sk-ant-", at + 1)
with open("memory.json", "w") as f:
    json.dump(out, f)
'''


def test_a_check_run_as_root_cannot_read_the_memory_of_its_worker_or_supervisor(tmp):
    if os.geteuid() != 0:
        pytest.skip("as an ordinary user the worker's memory is closed to its checks anyway"
                    " (not dumpable); the test needs root")
    needs_namespaces()
    tmp = str(tmp)
    key = "sk-ant-%s-MEMSECRET" % uuid.uuid4().hex
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    with open(os.path.join(ws, "read_memory.py"), "w") as f:
        f.write(READ_MEMORY)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="/usr/bin/python3 read_memory.py")])])
    llm = Standin(tmp, {}, "--expect-key", key)
    sup, rc = drain_until_exit(tmp, url, llm, 1, env={"ANTHROPIC_API_KEY": key})
    assert rc == 0, sup.stderr()
    # The worker held the key: the provider got it.
    assert llm.requests() and all(r["key_ok"] for r in llm.requests())
    assert rows(url, "SELECT outcome FROM attempts")[0]["outcome"] == "success", sup.stderr()
    with open(os.path.join(ws, "memory.json")) as f:
        text = f.read()
    found = json.loads(text)
    # It found both processes and was refused their memory (and their maps).
    for name in ("autopack-worker", "autopack-supervisor"):
        res = found[name]
        assert res["pid"] is not None, found
        assert res["mem"].startswith("PermissionError"), found
        assert res["maps"].startswith("PermissionError"), found
    assert key not in text and key[7:] not in text
    assert "check commands run in" not in sup.stderr()


@pytest.mark.parametrize("refused", ["user", "user+pid"])
def test_checks_run_where_the_kernel_refuses_the_namespaces_with_one_warning(tmp, refused):
    needs_namespaces()
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    check = HOST_PID + "; echo $$ $hostpid > pids-$(date +%s%N).txt"
    import_plan(tmp, url, [("run-%d" % r, ws, [phase_spec("p%d" % p, ("out/%d_%d.py" % (r, p),),
                                                         check=check) for p in range(2)])
                           for r in range(2)])
    err, workers = drain_logging_workers(tmp, url, refused_namespaces_prefix(
        pid=refused == "user+pid"), KEY)
    assert len(rows(url, "SELECT outcome FROM attempts")) == 4
    refusal = "clone(CLONE_NEWUSER|CLONE_NEWPID): No space left on device"
    if refused == "user":
        warning = ("check commands run in a PID namespace of their own but in no user "
                   "namespace (%s): they cannot signal the supervisor or the workers, but as "
                   "root they can read any process's memory, the API keys included" % refusal)
    else:
        warning = ("check commands run in no namespace of their own (%s; clone(CLONE_NEWPID): "
                   "No space left on device): they can signal the supervisor and the workers, "
                   "and as root read any process's memory, the API keys included" % refusal)
    # One warning per worker that ran a check, at its first.
    assert err.count(warning) == workers and 1 <= workers <= 2, err
    pids = []
    for name in os.listdir(ws):
        if name.startswith("pids-"):
            with open(os.path.join(ws, name)) as f:
                pids.append(f.read().split())
    assert len(pids) == 4
    # In a PID namespace of its own, the shell's $$ is not the machine's pid; without one,
    # it is.
    assert all((ns_pid == host_pid) == (refused == "user+pid") for ns_pid, host_pid in pids)


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_how_a_check_ends_reaches_its_attempt_the_same_in_a_namespace_or_not(tmp, where):
    """Its exit status, the signal that killed it, and at the deadline the worker's SIGTERM,
    which reaches the command itself (its trap runs), not only the namespace's init."""
    needs_namespaces()
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    checks = {"exit3": "echo to stderr >&2; exit 3",
              "segv": "kill -SEGV $$",
              "deadline": "trap 'echo trapped TERM >&2; exit 7' TERM; touch started;"
                          " sleep 60 & wait"}
    import_plan(tmp, url, [("run-" + name, ws, [phase_spec(name, ("out/%s.py" % name,),
                                                          check=check)])
                           for name, check in checks.items()])
    prefix = refused_namespaces_prefix(pid=True) if where == "no-namespace" else ()
    sup, _ = drain_until_exit(tmp, url, Standin(tmp), 3, "--max-attempts-per-phase", 1,
                              "--phase-timeout-seconds", 4, env=KEY, prefix=prefix)
    att = {a["phase_id"]: a for a in rows(url, "SELECT phase_id, outcome, failure_reason,"
                                               " message FROM attempts")}
    assert att["exit3"]["failure_reason"] == "CHECK_FAILED", att
    assert att["exit3"]["message"].startswith("check command exited 3 (stderr: "), att
    assert att["exit3"]["message"].rstrip().endswith("): to stderr"), att
    assert att["segv"]["message"].startswith("check command killed by signal 11 "), att
    assert att["deadline"]["outcome"] == "timeout", att
    assert att["deadline"]["message"].startswith(
        "check command killed at the attempt's deadline after "), att
    with open(os.path.join(ws, ".autopack", "logs", "run-deadline__deadline__a1.stderr.txt")) as f:
        assert "trapped TERM" in f.read()
    assert ("check commands run in no namespace" in sup.stderr()) == (where == "no-namespace")


# Makes user namespaces, each held by a child, until the kernel refuses one (at most 40);
# says "full" and holds them until the probe has run, or been tried twice (its second
# attempt's log made), for up to a minute.
FILL_NAMESPACES = r'''
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
made, err = 0, None
while made < 40:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        ok = libc.unshare(0x10000000) == 0  # CLONE_NEWUSER
        os.write(w, b"y" if ok else os.strerror(ctypes.get_errno()).encode())
        if ok:
            time.sleep(120)
        os._exit(0)
    os.close(w)
    said = os.read(r, 200).decode()
    os.close(r)
    if said != "y":
        err = said
        break
    made += 1
with open("full", "w") as f:
    f.write("%d %s" % (made, err))
for _ in range(1200):
    if os.path.exists("probe-ns") or \
            os.path.exists(".autopack/logs/b-probe__probe__a2.stdout.txt"):
        break
    time.sleep(0.05)
'''


def fill_then_probe(tmp, until_attempt, then=None):
    """Drain a run whose check uses up its user's namespaces (6: its own and 5 more) and
    holds them until the check of attempt `until_attempt` of a second run's probe has
    started, on a second worker started once they are used up (then `then(sup, ws)` is
    called, if given). Returns the supervisor's stderr, the attempts, the probe check's
    user namespace and the supervisor's."""
    needs_namespaces()
    tmp = str(tmp)
    fill = FILL_NAMESPACES.replace("__a2.", "__a%d." % until_attempt)
    ws = workspace_with(tmp, "fill.py", fill)
    url = init_db(tmp)
    probe = "readlink /proc/self/ns/user > probe-ns"
    import_plan(tmp, url, [
        ("a-fill", ws, [phase_spec("fill", ("out/a.py",),
                                   check="/usr/bin/python3 fill.py")]),
        ("b-probe", ws, [phase_spec("probe", ("out/b.py",), check=probe)])])
    prefix = ("unshare", "-U", "-r", "/bin/sh", "-c",
              'echo 6 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh")

    sup_ns = []

    def second_worker(sup):
        wait_for(lambda: os.path.exists(os.path.join(ws, "full")), 120, what="full")
        sup_ns.append(os.readlink("/proc/%d/ns/user" % sup.proc.pid))
        assert sup.ctl("scale", "2").rc == 0
        if then is not None:
            then(sup, ws)

    sup, rc = drain_until_exit(tmp, url, Standin(tmp), 1, "--max-attempts-per-phase", 1000,
                               "--max-fingerprint-repeats", 1000, env=KEY, prefix=prefix,
                               during=second_worker)
    assert rc == 0, sup.stderr()
    with open(os.path.join(ws, "full")) as f:
        assert f.read() == "5 No space left on device"
    with open(os.path.join(ws, "probe-ns")) as f:
        probe_ns = f.read().strip()
    att = rows(url, "SELECT phase_id, outcome, failure_reason, message FROM attempts"
                    " ORDER BY attempt_id")
    assert [a["outcome"] for a in att if a["phase_id"] == "fill"] == ["success"], att
    return sup.stderr(), [a for a in att if a["phase_id"] == "probe"], probe_ns, sup_ns[0]


def test_a_check_that_uses_up_the_namespaces_leaves_no_worker_running_checks_outside_them(
        tmp):
    # A new worker's first check met the namespaces a check had used up (ENOSPC, as where
    # user.max_user_namespaces is 0): it took that for the kernel's refusal, and ran its
    # checks in no user namespace for its whole life.
    err, probes, probe_ns, sup_ns = fill_then_probe(tmp, 2)
    # The second worker's first check met the namespaces used up and was not run, after
    # CHECK_NS_TRIES tries; once the fill was over, its check ran in a user namespace of
    # its own.
    assert probe_ns != sup_ns
    assert "check commands run in" not in err
    refused = probes[:-1]
    assert probes[-1]["outcome"] == "success" and len(refused) == 1 and all(
        a["failure_reason"] == "CHECK_NOT_RUN" and
        "its user's namespaces are used up (user.max_user_namespaces is 6)" in a["message"]
        and "; tried 8 time(s) over " in a["message"]
        for a in refused), probes


def test_a_check_waits_for_namespaces_used_up_for_a_moment_instead_of_failing_at_once(tmp):
    """Namespaces used up by another check failed the attempt CHECK_NOT_RUN within
    milliseconds, after its LLM call, and the phase was tried again as fast, each try an
    attempt and a call. The check is now tried again within the attempt, after a pause
    that doubles: the fill ends once the probe's check has been tried, and the probe's
    first attempt runs its check."""
    err, probes, probe_ns, sup_ns = fill_then_probe(tmp, 1)
    assert probe_ns != sup_ns
    assert [(a["outcome"], a["failure_reason"]) for a in probes] == [("success", None)], probes


def test_a_stop_signal_from_outside_while_a_check_waits_for_namespaces_is_a_stop(tmp):
    """A stop signal from outside (a service manager signalling every process: SIGHUP here)
    that came while the check waited for its user's namespaces ended the attempt
    CHECK_NOT_RUN, `tried 1 time(s)`, the phase's failure; it now ends it as a stop taken
    while the check runs: the worker leaves the phase to the supervisor."""
    def hang_up_the_second_worker(sup, ws):
        log = os.path.join(ws, ".autopack/logs/b-probe__probe__a1.stdout.txt")
        wait_for(lambda: os.path.exists(log), 60, what="the probe's check started")
        with open("/proc/%d/task/%d/children" % (sup.proc.pid, sup.proc.pid)) as f:
            worker = max(int(p) for p in f.read().split())
        # Again until the worker leaves: one that came before the check began is not its.
        def hung_up():
            try:
                os.kill(worker, signal.SIGHUP)
            except ProcessLookupError:
                return True
            return False
        wait_for(hung_up, 60, what="the second worker gone")

    err, probes, probe_ns, sup_ns = fill_then_probe(tmp, 2, hang_up_the_second_worker)
    assert re.search(r"stopped by a signal from outside while it waited: tried [0-9] time",
                     err), err
    assert "leaving the phase to the supervisor" in err, err
    assert probes[-1]["outcome"] == "success", probes
    assert all(a["failure_reason"] != "CHECK_NOT_RUN" for a in probes), probes


CHECK_INIT_REFUSALS = [
    ([], "expected FD DATA COMMAND [WSFD WORKSPACE TMPDIR READONLY], got 0 argument(s)", 2),
    (["SOCK", "0"], "expected FD DATA COMMAND [WSFD WORKSPACE TMPDIR READONLY], got 2 argument(s)", 2),
    (["x", "0", "true"], 'FD "x" is not a descriptor number of 3 or more', 2),
    (["2", "0", "true"], 'FD "2" is not a descriptor number of 3 or more', 2),
    ([" SOCK", "0", "true"], 'FD " SOCK" is not a descriptor number of 3 or more', 2),
    (["999", "0", "true"], "FD 999 is not an open descriptor: Bad file descriptor", 2),
    (["SOCK", "-1", "true"], 'DATA "-1" is not a number of bytes (0 for no limit)', 2),
    (["SOCK", "1k", "true"], 'DATA "1k" is not a number of bytes (0 for no limit)', 2),
    (["SOCK", "0", "true", "x", "/w", "", ""],
     'WSFD "x" is not a descriptor number (-1 with no WORKSPACE, "/w")', 2),
    (["SOCK", "0", "true", "-1", "/w", "", ""],
     'WSFD "-1" is not a descriptor number (-1 with no WORKSPACE, "/w")', 2),
    (["SOCK", "0", "true"], "the worker closed descriptor SOCK before the namespace was ready",
     126),
]


@pytest.mark.parametrize("args, message, status", CHECK_INIT_REFUSALS,
                         ids=[" ".join(a) or "none" for a, _, _ in CHECK_INIT_REFUSALS])
def test_the_check_init_names_what_is_wrong_with_its_command_line(args, message, status):
    """`autopack-worker --check-init` (the init of a check's namespaces, an internal mode)
    exited 2 or 126 without a word when started wrongly; each failure is named now. SOCK
    stands for a socket whose other end is closed (a worker gone)."""
    ours, theirs = socket.socketpair()
    ours.close()
    fd = str(theirs.fileno())
    try:
        proc = subprocess.run(
            [binpath("autopack-worker"), "--check-init"] + [a.replace("SOCK", fd) for a in args],
            pass_fds=(theirs.fileno(),), capture_output=True, text=True, timeout=60)
    finally:
        theirs.close()
    assert proc.returncode == status, proc
    assert proc.stderr.startswith("autopack-worker --check-init: ") and \
        proc.stderr.endswith(message.replace("SOCK", fd) + "\n") and \
        proc.stderr.count("\n") == 1, proc
