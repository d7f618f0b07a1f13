"""A worker is dumpable from its exec until its first instructions make it not, and in
those instants any process of its user may open its /proc/<pid>/fd/N, duplicate its
descriptors with pidfd_getfd or attach to it. No secret is within reach then: the worker
inherits none, and it takes its keys only once it is not dumpable, over a socket it
created itself, from a supervisor that checked who created that socket and that nobody
traces it (docs/worker.md, "Keys and phase code")."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid

import pytest

from conftest import BIN, ROOT, binpath
from e2e_helpers import (Standin, another_user, import_plan, init_db, llm_args, phase_spec,
                         rows)
from supervisor_helpers import Supervisor, rogue_notes, rogue_supervisor, wait_for

# A process of the supervisor's user watching for its new children: for each, while it is
# young, it opens its descriptors through /proc and duplicates them with pidfd_getfd,
# keeping what it reads from them (a pipe's bytes taken, a socket's peeked at). It keeps
# how many children of each supervisor it has seen in TARGET.seen ({pid: count}).
THIEF = r'''
import ctypes, json, os, socket, stat, sys, time
libc = ctypes.CDLL(None, use_errno=True)
SYS_pidfd_open, SYS_pidfd_getfd = 434, 438
stop, target, out = sys.argv[1:4]
seen, young = set(), {}
stats = {"children": 0, "opened": 0, "duplicated": 0, "reached": 0}
loot = []


def take(fd, is_socket):
    try:
        if is_socket:
            s = socket.socket(fileno=os.dup(fd))
            try:
                return s.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            finally:
                s.close()
        os.set_blocking(fd, False)
        return os.read(fd, 65536)
    except OSError:
        return b""


def raid(pid):
    hit = False
    for n in (3, 4, 5, 6):
        try:
            fd = os.open("/proc/%d/fd/%d" % (pid, n), os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            pass
        else:
            stats["opened"] += 1
            hit = True
            loot.append([pid, take(fd, False).decode("latin-1")])
            os.close(fd)
    pidfd = libc.syscall(SYS_pidfd_open, pid, 0)
    if pidfd >= 0:
        for n in (3, 4, 5, 6):
            fd = libc.syscall(SYS_pidfd_getfd, pidfd, n, 0)
            if fd >= 0:
                stats["duplicated"] += 1
                hit = True

                is_socket = stat.S_ISSOCK(os.fstat(fd).st_mode)
                loot.append([pid, take(fd, is_socket).decode("latin-1")])
                os.close(fd)
        os.close(pidfd)
    return hit


sup = None
mine = {}
while not os.path.exists(stop):
    try:
        with open(target) as f:
            sup = int(f.read())
        with open("/proc/%d/task/%d/children" % (sup, sup)) as f:
            kids = [int(k) for k in f.read().split()]
    except (OSError, ValueError):
        kids = []
    now = time.monotonic()
    for k in kids:
        if k not in seen:
            seen.add(k)
            young[k] = [now, False]
            stats["children"] += 1
            mine[sup] = mine.get(sup, 0) + 1
            with open(target + ".seen.new", "w") as f:
                json.dump(mine, f)
            os.rename(target + ".seen.new", target + ".seen")
    for pid, state in list(young.items()):
        if now - state[0] > 0.5:
            stats["reached"] += state[1]
            del young[pid]
        elif raid(pid):
            state[1] = True
stats["reached"] += sum(s[1] for s in young.values())
with open(out, "w") as f:
    json.dump({"stats": stats, "loot": [x for x in loot if x[1]]}, f)
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the drain and the thief as"
                    " another user (as root they could read anything)")
def test_a_process_of_the_workers_user_racing_their_start_takes_no_key():
    """Five drains of eight workers each, run as an ordinary user, with a process of that
    user watching the supervisor's new children. It took the key from the keys' pipe
    (/proc/<pid>/fd/4) of every worker it reached in its first instants, 24, 34 and 35 of
    40 in three runs, and those failed NO_API_KEY. It still reaches most of them
    while they are dumpable (32 to 38 of 40), and finds no key there."""
    tmp = tempfile.mkdtemp(dir="/tmp", prefix="key-window-")
    try:
        race(tmp, rounds=5, per=8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def race(tmp, rounds, per):
    """`rounds` drains of `per` one-phase runs with `per` workers, and the thief, all as
    another user than root, in `tmp`."""
    uid, as_user, exe = another_user(tmp)
    key = "sk-ant-%s-WINDOW" % uuid.uuid4().hex
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    stop, target, out = (os.path.join(tmp, n) for n in ("stop", "target", "thief.json"))
    with open(os.path.join(tmp, "thief.py"), "w") as f:
        f.write(THIEF)
    llm = Standin(tmp, {}, "--expect-key", key)
    thief = None
    codes = []
    try:
        os.chmod(tmp, 0o755)
        subprocess.run(["chown", "-R", "%d:%d" % (uid, uid), tmp], check=True)
        thief = subprocess.Popen(list(as_user) + ["/usr/bin/python3", "thief.py", stop,
                                                  target, out], cwd=tmp)
        for r in range(rounds):
            import_plan(tmp, url, [("r%d-%d" % (r, i), ws, [phase_spec(
                "p", ("out/r%d_%d.py" % (r, i),))]) for i in range(per)])
            subprocess.run(["chown", "-R", "%d:%d" % (uid, uid), tmp], check=True)
            sup = Supervisor(tmp, url, "--workers", per, *llm_args(llm),
                             env={"ANTHROPIC_API_KEY": key}, name="sup%d" % r, prefix=as_user,
                             exe=exe)
            try:
                # setpriv execs the supervisor: the pid is its own.
                with open(target + ".new", "w") as f:
                    f.write("%d" % sup.proc.pid)
                os.rename(target + ".new", target)
                # Stopped once each phase has ended an attempt and the thief has seen each
                # of the workers (idle, they live until the stop: a loaded machine's thief,
                # slow to look, still sees them all).
                try:
                    wait_for(lambda: sup.proc.poll() is not None or (
                        thief_saw(target, sup.proc.pid) >= per and
                        rows(url, UNTRIED) == [{"n": 0}]), 120)
                except AssertionError:
                    raise AssertionError("%d phases with no attempt ended, %d workers seen:\n%s"
                                         % (rows(url, UNTRIED)[0]["n"],
                                            thief_saw(target, sup.proc.pid), sup.stderr()))
                sup.signal(signal.SIGTERM)
                codes.append(sup.wait(timeout=120))
                assert codes[-1] == 0, sup.stderr()
            finally:
                sup.kill()
        open(stop, "w").close()
        assert thief.wait(timeout=60) == 0
    finally:
        if thief is not None and thief.poll() is None:
            thief.kill()
            thief.wait()
        llm.stop()
    with open(out) as f:
        found = json.load(f)
    stats = found["stats"]
    print("thief: %s" % json.dumps(stats))
    # It watched every worker start.
    assert stats["children"] >= rounds * per, stats
    # What it read holds no key.
    robbed = {pid for pid, x in found["loot"] if key in x or key[10:30] in x}
    assert not robbed, "the key read from %d of %d workers: %s" % (
        len(robbed), stats["children"], stats)
    # And every worker had it: every call reached the provider with it, every phase passed.
    att = rows(url, "SELECT outcome, failure_reason FROM attempts")
    assert [a["outcome"] for a in att] == ["success"] * (rounds * per), att
    assert llm.requests() and all(q["key_ok"] for q in llm.requests())
    assert codes == [0] * rounds, codes


# The phases with no attempt ended.
UNTRIED = ("SELECT count(*) AS n FROM phases p WHERE NOT EXISTS (SELECT 1 FROM attempts a"
           " WHERE a.run_id = p.run_id AND a.phase_id = p.phase_id AND a.ended_at IS NOT NULL)")


def thief_saw(target, pid):
    """How many children of supervisor `pid` the thief has seen."""
    try:
        with open(target + ".seen") as f:
            return json.load(f).get(str(pid), 0)
    except FileNotFoundError:
        return 0


# A process of the supervisor's user watching for new processes of the program `exe`: it
# reads each one's environment once, as soon as it sees it, and counts those holding
# `marker`. How many it has seen so far is in OUT.seen.
ENV_THIEF = r'''
import json, os, sys
stop, exe, marker, out = sys.argv[1:5]
seen, read, refused = set(), 0, 0
while not os.path.exists(stop):
    for d in os.listdir("/proc"):
        if not d.isdigit() or d in seen:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if f.read().split(b"\0")[0] != exe.encode():
                    continue
        except OSError:
            continue
        seen.add(d)
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                read += marker.encode() in f.read()
        except OSError:
            refused += 1
        with open(out + ".seen.new", "w") as f:
            f.write("%d" % len(seen))
        os.rename(out + ".seen.new", out + ".seen")
with open(out, "w") as f:
    json.dump({"seen": len(seen), "read": read, "refused": refused}, f)
'''


def env_thief_saw(out):
    """How many starts the thief writing `out` has seen."""
    try:
        with open(out + ".seen") as f:
            return int(f.read())
    except FileNotFoundError:
        return 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to install the binaries as root's"
                    " and to run them and the thief as another user")
def test_a_process_of_the_users_racing_an_installed_supervisors_start_reads_no_key():
    """The supervisor holds the keys in its environment from its exec until it takes them
    out, and /proc/<pid>/environ of a process the kernel made dumpable at its exec is open
    to every process of its user: one watching for new supervisors read the key at 30 of 30
    starts. Installed by `make install`, the supervisor and the worker are execute-only,
    and a process started from a file its user may not read is not dumpable from its exec
    on."""
    tmp = tempfile.mkdtemp(dir="/tmp", prefix="key-env-")
    try:
        os.chmod(tmp, 0o755)
        uid = 60000 + os.getpid() % 5000
        as_user = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", "--"]
        dest = os.path.join(tmp, "root")
        cmd = ["make", "-s", "-C", ROOT, "O=" + os.path.dirname(BIN), "install",
               "DESTDIR=" + dest, "PREFIX=/usr/local"]
        if os.environ.get("AUTOPACK_SANITIZE") == "1":
            cmd.append("SANITIZE=1")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        exe = os.path.join(dest, "usr", "local", "bin", "autopack-supervisor")
        work = os.path.join(tmp, "work")
        os.mkdir(work)
        os.chown(work, uid, uid)
        stop, out = os.path.join(work, "stop"), os.path.join(work, "thief.json")
        key = "sk-ant-%s-ENVWINDOW" % uuid.uuid4().hex
        thief = subprocess.Popen(as_user + ["/usr/bin/python3", "-c", ENV_THIEF, stop, exe,
                                            key, out], cwd=work)
        try:
            env = dict(os.environ, ANTHROPIC_API_KEY=key)
            # Each start ends at once (no such database), once it has taken the key. The
            # shell execs it as the user already, as a service manager does (setpriv keeps
            # root's capabilities until its exec, and the file is readable to them). At
            # least 20 starts, and more until the thief has seen 10 (a loaded machine's
            # thief, slow to look, misses some).
            starts = 0
            while starts < 20 or env_thief_saw(out) < 10:
                assert starts < 400, "the thief saw %d of %d starts" % (env_thief_saw(out),
                                                                        starts)
                starts += 1
                p = subprocess.run(as_user + ["/bin/sh", "-c", 'exec "$@"', "sh", exe, "--db",
                                              "sqlite:///%s/none.db" % work, "--workers", "1"],
                                   env=env, cwd=work, capture_output=True, text=True,
                                   timeout=60)
                assert p.returncode == 1 and "does not exist" in p.stderr, p.stderr
            open(stop, "w").close()
            assert thief.wait(timeout=60) == 0
        finally:
            if thief.poll() is None:
                thief.kill()
                thief.wait()
        with open(out) as f:
            found = json.load(f)
        print("thief: %s" % json.dumps(found))
        assert found["seen"] >= 10 and found["read"] == 0, found
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# In place of autopack-worker: a child of this process traces it (PTRACE_SEIZE) from before
# it execs the real worker in its place, continuing it at every stop, as a process of its
# user that attached to a new worker in its first instants would.
TRACED_START = r"""#!/usr/bin/python3
import os, sys
sys.path.insert(0, %r)
from ptrace_child import traced_by_a_child
if not traced_by_a_child():
    sys.exit("cannot trace the worker")
os.execv(sys.argv[1], sys.argv[1:])
""" % os.path.dirname(os.path.abspath(__file__))


def test_a_worker_traced_from_its_start_takes_no_key(tmp):
    """A tracer that attached while the worker was dumpable stays attached once it is not,
    and could read anything it is given: the worker sees it (TracerPid) and takes no key;
    nothing reaches the provider."""
    tmp = str(tmp)
    key = "sk-ant-%s-TRACED" % uuid.uuid4().hex
    wrapper = os.path.join(tmp, "traced-start")
    with open(wrapper, "w") as f:
        f.write(TRACED_START)
    os.chmod(wrapper, 0o755)
    # The supervisor runs the wrapper with the worker's arguments after the real path.
    shim = os.path.join(tmp, "worker")
    with open(shim, "w") as f:
        f.write('#!/bin/sh\nexec %s %s "$@"\n' % (wrapper, binpath("autopack-worker")))
    os.chmod(shim, 0o755)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", os.path.join(tmp, "ws"), [phase_spec("p1")])])
    llm = Standin(tmp, {}, "--expect-key", key)
    sup = Supervisor(tmp, url, "--worker", shim, "--workers", 1, "--exit-when-drained",
                     *llm_args(llm), env={"ANTHROPIC_API_KEY": key})
    try:
        rc = sup.wait(timeout=120)
    finally:
        sup.kill()
        llm.stop()
    err = sup.stderr()
    assert llm.requests() == [], err
    assert rc == 4 and "[BREAKER] 5 infrastructure failures in a row" in err, err
    assert err.count("traces this worker and not its supervisor: it could take the keys and"
                     " the frames, so the worker takes none") == 5, err
    assert rows(url, "SELECT count(*) AS n FROM attempts") == [{"n": 0}]


@pytest.mark.parametrize("mode", ["traced", "impostor", "good"])
def test_the_supervisor_answers_only_the_worker_it_started_and_nobody_else_traces(tmp, mode):
    """What the supervisor checks itself, whatever the worker did: the socket handed over
    was made by the process it started (not by a process of the user that duplicated the
    worker's fd 3), and no other process traces that one (a tracer could have made the
    worker skip its own check). Refused, the worker is killed, no key given, and it counts
    toward the breaker."""
    tmp = str(tmp)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", os.path.join(tmp, "ws"), [phase_spec("p1")])])
    sup = rogue_supervisor(tmp, url, mode, "--workers", 1, "--exit-when-drained",
                           env={"ANTHROPIC_API_KEY": "sk-ant-%s" % uuid.uuid4().hex})
    try:
        rc = sup.wait(timeout=120)
    finally:
        sup.kill()
    err = sup.stderr()
    answered = rogue_notes(tmp, event="answered")
    if mode == "good":
        assert rc == 0, err
        assert answered and all(n["keys"] == ["ANTHROPIC_API_KEY"] for n in answered)
        assert "gets no key" not in err
        return
    assert rc == 4 and answered == [], err
    if mode == "traced":
        assert all(n["ok"] for n in rogue_notes(tmp, event="traced")), err
        why = "traces it and not the supervisor; killing it"
    else:
        why = "the socket handed over in its name was made by process "
    refusals = [line for line in err.splitlines() if "gets no key and no job: " in line]
    assert len(refusals) == 5 and all(why in line for line in refusals), err
    assert "[BREAKER] 5 infrastructure failures in a row, the last: worker 5 (pid " in err
