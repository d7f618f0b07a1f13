"""A check command (and the code the model wrote, which it runs) writes only its workspace
and the temporary directories: everything else is read-only to it and opens no device, and
it holds no capability with which to undo that. It could replace the worker's binary (or a
library, or, as root, a file under /etc, the kernel's core_pattern), and the next worker
the supervisor started handed the API keys to whatever it had put there."""
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from conftest import binpath
from e2e_helpers import (Standin, another_user, check_namespaces, dir_outside_temp_dirs,
                         drain_under_namespace_limit, drain_until_exit, import_plan, init_db,
                         needs_namespaces, phase_spec, rows)

# Stands in for the worker: takes the keys as a worker does (proto/hand.h) and writes
# them to STOLEN.
FAKE_WORKER = r'''#!/usr/bin/python3
import os, socket, sys
hand = socket.socket(fileno=int(sys.argv[sys.argv.index("--handoff-fd") + 1]))
a, b = socket.socketpair()
socket.send_fds(hand, [b"h"], [b.fileno()])
msg, fds, _, _ = socket.recv_fds(a, 1, 4)
keys = b"".join(os.read(fd, 65536) for fd in fds)
with open(%(stolen)r, "wb") as f:
    f.write(keys or b"(no keys)")
'''

# A probe's record of one try: "ok", or the error it met (the text is %-formatted with
# the probe).
ATTEMPT = r'''
res = {}
def attempt(name, fn):
    try:
        fn()
        res[name] = "ok"
    except OSError as e:
        res[name] = "%%s: %%s" %% (type(e).__name__, e.strerror)
'''

# Puts FAKE_WORKER in place of the worker's binary and has the supervisor start one more
# worker (through its control socket); then tries to open for writing, without writing,
# what a check must not write, and writes where it may. Records what happened.
SWAP = r'''
import json, os, subprocess, time
''' + ATTEMPT + r'''def swap():
    new = %(worker)r + ".new"
    with open(new, "w") as f:
        f.write(%(fake)r)
    os.chmod(new, 0o755)
    os.rename(new, %(worker)r)
def opened(path, flags):
    return lambda: os.close(os.open(path, flags, 0o600))
attempt("swap", swap)
if res["swap"] == "ok":
    subprocess.run([%(ctl)r, "--db", %(url)r, "scale", "2", "--control", %(sock)r],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    for _ in range(200):
        if os.path.exists(%(stolen)r):
            break
        time.sleep(0.05)
attempt("home", opened(os.environ.get("HOME") or "/root", os.O_TMPFILE | os.O_WRONLY))
attempt("etc", opened("/etc/hosts", os.O_WRONLY | os.O_APPEND))
attempt("core_pattern", opened("/proc/sys/kernel/core_pattern", os.O_WRONLY))
attempt("tmp", opened("/tmp", os.O_TMPFILE | os.O_WRONLY))
attempt("shm", opened("/dev/shm", os.O_TMPFILE | os.O_WRONLY))
attempt("null", lambda: open("/dev/null", "w").write("x"))
attempt("workspace", lambda: open("written.txt", "w").write("x"))
with open("probe.json", "w") as f:
    json.dump(res, f)
'''

KEY = "sk-ant-confined-%s" % uuid.uuid4().hex


@pytest.fixture
def worker_copy():
    """A copy of the worker's binary in a directory of its own outside the temporary
    directories, as an installed one is, removed afterwards."""
    for top in dir_outside_temp_dirs("confined"):
        path = os.path.join(top, "autopack-worker")
        shutil.copy2(binpath("autopack-worker"), path)
        yield path


def swap_drain(tmp, worker, then="", refused="OSError: Read-only file system"):
    """Drain one phase with the worker's binary `worker`, whose check runs SWAP against it
    (then the shell text `then`); check that no key was taken and the swap was refused with
    `refused`, and return (probe, supervisor)."""
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    stolen = os.path.join(tmp, "stolen.txt")
    sock = os.path.join(tmp, "sup.sock")
    url = init_db(tmp)
    with open(os.path.join(ws, "swap.py"), "w") as f:
        f.write(SWAP % {"worker": worker, "fake": FAKE_WORKER % {"stolen": stolen},
                        "ctl": binpath("autopack-ctl"), "url": url, "sock": sock,
                        "stolen": stolen})
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="/usr/bin/python3 swap.py" +
                                                   then)])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1, "--worker",
                               worker, env={"ANTHROPIC_API_KEY": KEY}, control=sock)
    with open(os.path.join(ws, "probe.json")) as f:
        probe = json.load(f)
    # No worker took the keys but those the supervisor's binary made.
    assert not os.path.exists(stolen), (probe, open(stolen).read())
    assert probe["swap"] == refused, probe
    assert rc == 0, sup.stderr()
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], sup.stderr()
    return probe, sup


def test_a_check_cannot_replace_the_workers_binary_or_write_outside_its_workspace(
        tmp, worker_copy):
    needs_namespaces()
    # A copy under $HOME (a tree in the home directory) is not even there for the check.
    home = os.path.realpath(os.path.expanduser("~"))
    in_home = os.path.realpath(worker_copy).startswith(home + "/")
    probe, sup = swap_drain(str(tmp), worker_copy, refused=(
        "FileNotFoundError: No such file or directory" if in_home else
        "OSError: Read-only file system"))
    # Nothing outside the workspace and the temporary directories is written; no
    # capability opens the kernel's settings to root either.
    for what in ("home", "etc", "core_pattern"):
        assert probe[what] == "OSError: Read-only file system", probe
    for what in ("tmp", "shm", "null", "workspace"):
        assert probe[what] == "ok", probe
    assert "check commands" not in sup.stderr()


def test_a_check_cannot_replace_the_workers_binary_in_the_temporary_directory_it_writes(tmp):
    # A build tree in /tmp, and a workspace there too: the check got the machine's /tmp,
    # writable, to reach its workspace through, and put a program of its own in the
    # worker's place, which the next worker started (at the next drain) ran with the keys.
    # Its /tmp is now its own, with its workspace only: the build tree is not there.
    needs_namespaces()
    tmp = str(tmp)
    bindir = os.path.join(tmp, "build", "bin")
    os.makedirs(bindir)
    worker = os.path.join(bindir, "autopack-worker")
    shutil.copy2(binpath("autopack-worker"), worker)
    probe, _ = swap_drain(tmp, worker, " && (mv %s %s.moved || true) && "
                          "(touch %s/planted || true)" % (bindir, bindir, bindir),
                          refused="FileNotFoundError: No such file or directory")
    # Neither moved nor written; the rest of the temporary directory is the check's.
    assert os.listdir(bindir) == ["autopack-worker"], os.listdir(bindir)
    assert not os.path.exists(bindir + ".moved")
    assert probe["tmp"] == "ok" and probe["workspace"] == "ok", probe


def test_a_check_finds_the_runtime_directory_in_tmp_empty(tmp):
    # A user with no /run/user/<uid> and no XDG_RUNTIME_DIR: the supervisor keeps its
    # control socket and uuid claim in /tmp/autopack-<uid>, and a check whose workspace lies
    # in /tmp was given the machine's /tmp, where it removed them (and could have put a
    # socket of its own in the supervisor's place, which autopack-ctl would have asked).
    needs_namespaces()
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    top = tempfile.mkdtemp(dir="/tmp", prefix="runtime-check-")
    try:
        uid, as_user, exe = another_user(top)
        run = "/tmp/autopack-%d" % uid
        ws = os.path.join(top, "ws")
        url = init_db(top)
        check = "ls -A %s; rm -f %s/*; ls -A %s; true" % (run, run, run)
        import_plan(top, url, [("run", ws, [phase_spec("p1", check=check)])])
        os.chmod(top, 0o755)
        subprocess.run(["chown", "-R", "%d:%d" % (uid, uid), top], check=True)
        env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
        env["ANTHROPIC_API_KEY"] = KEY
        sup, rc = drain_until_exit(top, url, Standin(top), 1, env=env, prefix=as_user,
                                   exe=exe, control=False)
        assert rc == 0, sup.stderr()
        assert "control socket %s/" % run in sup.stderr(), sup.stderr()
        with open(os.path.join(ws, ".autopack", "logs", "run__p1__a1.stdout.txt")) as f:
            assert f.read() == "", "the check saw the supervisor's files"
        assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}]
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_check_can_neither_write_nor_move_the_log_file_in_a_directory_it_writes(tmp):
    # --log-file in /tmp, and a workspace there too: the check wrote lines of its own into
    # the supervisor's log, emptied it, or moved it away and put its own in its place. Its
    # /tmp is now its own, with its workspace only: the log is not there.
    needs_namespaces()
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    log = os.path.join(tmp, "sup.log")
    url = init_db(tmp)
    check = ("(echo '[OK] forged' >> {0}); (true > {0}); mv {0} {0}.moved; "
             "(echo '[OK] forged' > {0}); rm -f {0}; true").format(log)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp), 1, "--log-file", log,
                               env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0
    with open(log) as f:
        text = f.read()
    assert "forged" not in text and " ended (drained)" in text, text
    assert "run/p1 attempt 1: check command passed" in text, text
    assert not os.path.exists(log + ".moved")
    with open(os.path.join(ws, ".autopack", "logs", "run__p1__a1.stderr.txt")) as f:
        err = f.read()
    # What it wrote, moved and removed there was in its own /tmp, and went with it.
    assert err == "", err

# Tries to write, truncate, remove and move the database's files and its directory from
# a check whose workspace holds them; records what happened.
RAID = r'''
import json, os
db = %(db)r
''' + ATTEMPT + r'''attempt("write", lambda: os.close(os.open(db, os.O_WRONLY)))
attempt("truncate", lambda: os.truncate(db, 0))
attempt("remove_wal", lambda: os.unlink(db + "-wal"))
attempt("write_shm", lambda: os.close(os.open(db + "-shm", os.O_WRONLY)))
attempt("rename", lambda: os.rename(db, db + ".moved"))
attempt("link", lambda: os.link(db, "linked.db"))
attempt("rename_dir", lambda: os.rename(os.path.dirname(db), "moved-dir"))
attempt("workspace", lambda: open("written.txt", "w").write("x"))
with open("probe.json", "w") as f:
    json.dump(res, f)
'''


@pytest.mark.parametrize("where", ["workspace", "below"])
def test_a_check_cannot_write_remove_or_move_the_database_its_workspace_holds(tmp, where):
    # The database beside a plan whose workspace is "." (or in a directory under the
    # workspace): a check overwrote it with zeros (the next commit failed "database disk
    # image is malformed", DATABASE LOST, exit 3, the file no longer a database), or
    # removed its -wal or moved it.
    if check_namespaces() != "user+pid":
        pytest.skip("the kernel refuses a user namespace here (unshare -U -p -f true fails)")
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    dbdir = ws if where == "workspace" else os.path.join(ws, "data")
    os.makedirs(dbdir)
    url = init_db(dbdir)
    db = url[len("sqlite:///"):]
    with open(os.path.join(ws, "raid.py"), "w") as f:
        f.write(RAID % {"db": db})
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="/usr/bin/python3 raid.py"),
                                        phase_spec("p2", ("out/b.py",))])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp), 1, env={"ANTHROPIC_API_KEY": KEY})
    with open(os.path.join(ws, "probe.json")) as f:
        probe = json.load(f)
    assert rc == 0, sup.stderr()
    # Each of its files is a device it may not open, and no regular file to truncate.
    for what in ("write", "write_shm"):
        assert probe[what] == "PermissionError: Permission denied", probe
    assert probe["truncate"] == "OSError: Invalid argument", probe
    # A mount point is neither removed nor renamed; a hard link, or the workspace moved
    # into itself, would cross mounts.
    busy, xdev = "OSError: Device or resource busy", "OSError: Invalid cross-device link"
    for what in ("remove_wal", "rename"):
        assert probe[what] == busy, probe
    assert probe["rename_dir"] == (busy if where == "below" else xdev), probe
    assert probe["link"] == xdev, probe
    assert probe["workspace"] == "ok", probe
    assert rows(url, "SELECT outcome FROM attempts ORDER BY attempt_id") == [
        {"outcome": "success"}, {"outcome": "success"}], sup.stderr()
    assert rows(url, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]


def test_a_check_cannot_move_its_workspaces_directories_to_put_a_link_in_its_place(tmp):
    # A workspace under /tmp, which its checks may then write: a check moved the workspace's
    # directory away and put a symbolic link to another directory in its place, where the
    # next attempt's files (written by the worker, as its user, root included) and check
    # then went. Its /tmp is now its own: what it moves there is its own view only.
    if check_namespaces() != "user+pid":
        pytest.skip("the kernel refuses a user namespace here (unshare -U -p -f true fails)")
    tmp = str(tmp)
    parent, target = os.path.join(tmp, "x"), os.path.join(tmp, "target")
    ws = os.path.join(parent, "ws")
    os.makedirs(ws)
    os.makedirs(target)
    swap = ("mv %s %s.old; mkdir -p %s && ln -s %s %s/ws; mv %s %s.old; mkdir -p %s; "
            "touch %s/written" % (parent, parent, parent, target, parent, tmp, tmp, parent,
                                  parent))
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=swap),
                                        phase_spec("p2", ("out/b.py",))])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp), 1, env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    for moved in (parent, tmp):
        assert not os.path.exists(moved + ".old"), moved
    assert not os.path.lexists(os.path.join(parent, "written"))
    assert os.path.isdir(ws) and not os.path.islink(ws)
    assert os.path.isfile(os.path.join(ws, "out", "b.py"))
    assert os.listdir(target) == []
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}] * 2


def test_a_workspace_that_holds_the_workers_binary_is_refused_before_the_llm_call(
        tmp, worker_copy):
    # A plan whose workspace was the build tree (or /usr, or /): the model's files and the
    # check command were written there, over the worker's binary, which the next worker
    # ran with the keys. The one worker first runs a phase in a workspace of its own, which
    # it then knows to be clean: that does not let the next workspace through.
    tmp = str(tmp)
    ws = os.path.dirname(worker_copy)
    url = init_db(tmp)
    import_plan(tmp, url, [("clean", os.path.join(tmp, "ws"), [phase_spec("p0", check="true")]),
                           ("run", ws, [phase_spec("p1", check="true")])])
    llm = Standin(tmp)
    sup, rc = drain_until_exit(tmp, url, llm, 1, "--worker", worker_copy,
                               env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    first, att = rows(url, "SELECT run_id, outcome, failure_reason, message FROM attempts"
                           " ORDER BY attempt_id")
    assert (first["run_id"], first["outcome"]) == ("clean", "success"), first
    assert (att["outcome"], att["failure_reason"]) == ("failed", "INVALID_JOB"), att
    assert att["message"] == (
        "workspace %s holds %s: the model's files and the check command could replace a "
        "program the workers run with the API keys; give the run a workspace of its own; "
        "not sent to the LLM" % (ws, worker_copy)), att
    assert len(llm.requests()) == 1
    assert sup.stderr().count(" started (pid ") == 1, sup.stderr()
    assert not os.path.exists(os.path.join(ws, "out"))


def test_a_workspace_is_judged_by_the_directory_holding_it_only_when_it_is_that_directorys_own(
        tmp, worker_copy):
    # A worker remembers the directories it found holding no system directory and not its
    # binary, the runs' workspaces and the directories they are in, and lets a workspace
    # through when the directory holding it is one: for a workspace named there by its own
    # name, never one whose path ends in a symbolic link (a ".." is gone from the path by
    # the import). One worker runs the runs in turn: a clean workspace, whose directory it
    # then knows clean; a link in that directory to the one holding the binary, refused; a
    # directory beside the binary, let through though the directory holding it is not
    # clean; another workspace beside the first; and the first workspace and the binary's
    # directory again, by the verdicts kept.
    tmp = str(tmp)
    top = os.path.dirname(worker_copy)
    wsroot = os.path.join(tmp, "wsroot")
    for d in ("a", "b"):
        os.makedirs(os.path.join(wsroot, d))
    os.makedirs(os.path.join(top, "below"))
    os.symlink(top, os.path.join(wsroot, "link"))
    url = init_db(tmp)
    spaces = [("clean", os.path.join(wsroot, "a")), ("link", os.path.join(wsroot, "link")),
              ("beside", os.path.join(top, "below")),
              ("clean2", os.path.join(wsroot, "b")), ("again", os.path.join(wsroot, "a")),
              ("top", top)]
    import_plan(tmp, url, [(run, ws, [phase_spec("p-" + run, check="true")])
                           for run, ws in spaces])
    llm = Standin(tmp)
    sup, rc = drain_until_exit(tmp, url, llm, 1, "--worker", worker_copy,
                               env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    got = {a["run_id"]: (a["outcome"], a["failure_reason"], a["message"])
           for a in rows(url, "SELECT run_id, outcome, failure_reason, message FROM attempts")}
    refused = ("failed", "INVALID_JOB")
    for run, ws in spaces:
        if run in ("link", "top"):
            assert got[run] == refused + (
                "workspace %s holds %s: the model's files and the check command could "
                "replace a program the workers run with the API keys; give the run a "
                "workspace of its own; not sent to the LLM" % (ws, worker_copy),), got[run]
        else:
            assert got[run] == ("success", None, None), (run, got)
    assert len(llm.requests()) == 4
    assert sup.stderr().count(" started (pid ") == 1, sup.stderr()
    assert sorted(os.listdir(top)) == ["autopack-worker", "below"]


def test_a_tmpdir_that_holds_the_workers_binary_is_not_given_to_checks(tmp, worker_copy):
    # TMPDIR=$HOME, or a directory that holds the build tree: it was bound writable into
    # every check's mount namespace, and a check replaced the worker's binary there.
    if check_namespaces() != "user+pid":
        pytest.skip("the kernel refuses a user namespace here (unshare -U -p -f true fails)")
    tmp = str(tmp)
    top = os.path.dirname(worker_copy)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    check = ("echo \"TMPDIR=${TMPDIR-unset}\"; (: > %s/written) && echo WROTE; "
             "mktemp >/dev/null && echo MKTEMP" % top)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])
    llm = Standin(tmp)
    sup, rc = drain_until_exit(tmp, url, llm, 1, "--worker", worker_copy,
                               env={"ANTHROPIC_API_KEY": KEY, "TMPDIR": top})
    assert rc == 0, sup.stderr()
    with open(os.path.join(ws, ".autopack", "logs", "run__p1__a1.stdout.txt")) as f:
        out = f.read()
    assert out == "TMPDIR=unset\nMKTEMP\n", out
    assert not os.path.exists(os.path.join(top, "written"))
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}]
    warning = ("TMPDIR=%s holds %s, which a check command must not write (a program put there "
               "would run with the API keys): check commands get no TMPDIR, and use /tmp"
               % (top, worker_copy))
    assert sup.stderr().count(warning) == 1, sup.stderr()


# The IPC namespace comes with the mount namespace (tests/test_check_kernel_objects.py).
@pytest.mark.parametrize("limit", ["max_mnt_namespaces", "max_ipc_namespaces"])
def test_checks_run_unconfined_with_one_warning_where_the_kernel_refuses_a_mount_namespace(
        tmp, limit):
    needs_namespaces()
    err, workers = drain_under_namespace_limit(str(tmp), limit, {"ANTHROPIC_API_KEY": KEY})
    warning = ("check commands run in a user and a PID namespace of their own but may write "
               "wherever their user may (unshare(CLONE_NEWNS|CLONE_NEWIPC): No space left on "
               "device): they can replace a program or a library the workers load, or a "
               "setting they read, and so reach the API keys")
    assert err.count(warning) == workers and 1 <= workers <= 2, err


# Reads the database's first bytes, and takes a shared lock on the byte of its -shm that a
# writer locks (WAL_WRITE_LOCK, 120) through a descriptor opened read-only; holding it (if
# it could), says "locked" and waits for "done" (the next phase of another run, which the
# supervisor can start only once it has committed the first one's result). Records what
# happened.
LOCKER = r'''
import fcntl, json, os, time
db = %(db)r
''' + ATTEMPT + r'''def head():
    with open(db, "rb") as f:
        res["head_bytes"] = f.read(16).decode("latin-1")
def lock():
    shm = os.open(db + "-shm", os.O_RDONLY)
    fcntl.lockf(shm, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 120)
    res["shm"] = shm
attempt("head", head)
attempt("lock", lock)
open("locked", "w").close()
for _ in range(2400):
    if os.path.exists("done"):
        break
    time.sleep(0.05)
res["done"] = os.path.exists("done")
with open("locker.json", "w") as f:
    json.dump(res, f)
'''


def test_a_check_can_neither_read_nor_lock_the_database(tmp):
    # A shared lock on the -shm's write-lock byte, which any check could take on a database
    # its user may read (wherever it is), refused every commit "database is locked": after
    # 50 of them the supervisor gave up on the database, exit 3, and the drain stopped.
    needs_namespaces()
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    os.makedirs(os.path.join(tmp, "data"))
    url = init_db(os.path.join(tmp, "data"))
    db = url[len("sqlite:///"):]
    with open(os.path.join(ws, "locker.py"), "w") as f:
        f.write(LOCKER % {"db": db})
    wait_locked = ("i=0; while [ ! -e locked ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1));"
                   " done")
    import_plan(tmp, url, [
        ("locker", ws, [phase_spec("lock", ("out/a.py",),
                                   check="/usr/bin/python3 locker.py")]),
        ("calm", ws, [phase_spec("c1", ("out/c1.py",), check=wait_locked),
                      phase_spec("c2", ("out/c2.py",), check="touch done")])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp), 2, env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    with open(os.path.join(ws, "locker.json")) as f:
        probe = json.load(f)
    # Where the database's files are it finds a device it may not open (here, in /tmp
    # beside its workspace, nothing: its /tmp is its own), and the drain goes on while it
    # waits.
    gone = "FileNotFoundError: No such file or directory"
    assert probe["head"] == gone and probe["lock"] == gone, probe
    assert probe["done"] is True, probe
    assert [a["outcome"] for a in rows(url, "SELECT outcome FROM attempts")] == \
        ["success"] * 3, sup.stderr()
