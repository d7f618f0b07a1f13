"""What a check command (and the code the model wrote, which it runs) shares with the machine
through the kernel rather than through files: terminals, System V and POSIX IPC objects and
keyrings. A check opened the machine's terminals in /dev/pts (read what the operator typed
there, wrote into it) and got no pty of its own; left System V shared memory behind, outside
every limit, for as long as the machine ran; and possessed the session keyring the
supervisor was started with, reading every key in it."""
import ctypes
import json
import os
import pty
import secrets
import shutil
import subprocess
import tempfile
import tty

import pytest

from e2e_helpers import (Standin, another_user, checks_where, drain_until_exit, import_plan,
                         init_db, needs_namespaces, phase_spec, rows)

KEY = "sk-ant-kernel-objects-%s" % secrets.token_hex(8)

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
LIBC.shmget.restype = ctypes.c_int
IPC_CREAT, IPC_EXCL, IPC_RMID = 0o1000, 0o2000, 0
# add_key(2) and keyctl(2), which the C library does not wrap.
SYS_ADD_KEY, SYS_KEYCTL = {"aarch64": (217, 219)}.get(os.uname().machine, (248, 250))
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_SEARCH, KEYCTL_READ = 1, 10, 11
KEY_SPEC_SESSION_KEYRING = -3

# A probe's helpers: attempt(name, fn) records fn's result, or the error it met.
ATTEMPT = r'''
import ctypes, json, os
res = {}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.shmget.restype = ctypes.c_int
def attempt(name, fn):
    try:
        res[name] = fn()
    except OSError as e:
        res[name] = "%s: %s" % (type(e).__name__, e.strerror)
def checked(ret, what):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), what)
    return ret
def made(ret, what):
    checked(ret, what)
    return "made"
'''

# Opens every terminal in /dev/pts, reads what waits there and writes into it; then opens a
# pty of its own and sends a byte through it.
TERMINALS = ATTEMPT + r'''
def machines():
    out = {}
    for name in sorted(os.listdir("/dev/pts")):
        if name == "ptmx":
            continue
        def steal(path="/dev/pts/" + name):
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                os.write(fd, b"written by a check\r\n")
                try:
                    return "read %r" % os.read(fd, 100)
                except BlockingIOError:
                    return "written"
            finally:
                os.close(fd)
        attempt("pts/" + name, steal)
        out[name] = res.pop("pts/" + name)
    return out
attempt("terminals", machines)
def own():
    m, s = os.openpty()
    os.write(s, b"x")
    return os.read(m, 1).decode()
attempt("own_pty", own)
json.dump(res, open("probe.json", "w"))
'''

# Makes a System V segment (touching its pages), semaphore set and message queue under the
# key %(mine)d, and a POSIX message queue; looks for the segment the test made under %(theirs)d.
IPC = r'''
def segment():
    sid = checked(libc.shmget(%(mine)d, 4 << 20, 0o1600), "shmget")
    libc.shmat.restype = ctypes.c_void_p
    at = libc.shmat(sid, None, 0)
    if at in (None, ctypes.c_void_p(-1).value):
        checked(-1, "shmat")
    ctypes.memset(at, 1, 4 << 20)
    return "made"
attempt("segment", segment)
attempt("semaphores", lambda: made(libc.semget(%(mine)d, 4, 0o1600), "semget"))
attempt("queue", lambda: made(libc.msgget(%(mine)d, 0o1600), "msgget"))
rt = ctypes.CDLL("librt.so.1", use_errno=True)
attempt("posix_queue", lambda: made(rt.mq_open(%(posix)r.encode(), os.O_CREAT | os.O_RDWR,
                                               0o600, None), "mq_open"))
attempt("theirs", lambda: made(libc.shmget(%(theirs)d, 0, 0), "shmget"))
json.dump(res, open("probe.json", "w"))
'''

# Looks for the key named %(name)r in its session keyring, and reads it by the serial
# /proc/keys shows it.
KEYRING = r'''
def search():
    k = checked(libc.syscall(%(keyctl)d, %(search)d, %(session)d, b"user", %(name)r.encode(), 0),
                "keyctl_search")
    return read(k)
def read(k):
    buf = ctypes.create_string_buffer(256)
    n = checked(libc.syscall(%(keyctl)d, %(read)d, ctypes.c_long(k), buf, 256), "keyctl_read")
    return buf.raw[:n].decode()
def by_serial():
    for line in open("/proc/keys"):
        if line.split()[-2].rstrip(":") == %(name)r:
            return read(int(line.split()[0], 16))
    return "not listed"
attempt("search", search)
attempt("by_serial", by_serial)
json.dump(res, open("probe.json", "w"))
'''

# A prefix that runs the supervisor in a session keyring of its own (as a login's, or a
# systemd service's) holding the user key argv[1] = argv[2] (an operator's, or Kerberos
# tickets kept in a KEYRING ccache) unless argv[1] is empty.
WITH_SESSION_KEY = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
assert libc.syscall(%d, %d, None) >= 0, os.strerror(ctypes.get_errno())
secret = sys.argv[2].encode()
assert not sys.argv[1] or libc.syscall(%d, b"user", sys.argv[1].encode(), secret, len(secret),
                                       %d) >= 0
os.execv(sys.argv[3], sys.argv[3:])
''' % (SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, SYS_ADD_KEY, KEY_SPEC_SESSION_KEYRING)


def probe_drain(tmp, script, prefix=(), owner=None, exe=None, env=None, outcome="success"):
    """Drain one phase whose check runs `script` in its workspace, the supervisor `exe` run
    under `prefix` with `env` added, the directory `tmp` given to the uid `owner` first;
    assert its one attempt ended `outcome` and return what the probe recorded, or, when it
    did not succeed, the attempt's row."""
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    with open(os.path.join(ws, "probe.py"), "w") as f:
        f.write(script)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="/usr/bin/python3 probe.py")])])
    if owner is not None:
        subprocess.run(["chown", "-R", "%d:%d" % (owner, owner), str(tmp)], check=True)
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               env=dict(env or {}, ANTHROPIC_API_KEY=KEY), prefix=prefix,
                               exe=exe)
    attempts = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [a["outcome"] for a in attempts] == [outcome], (attempts, sup.stderr())
    assert rc == 0, sup.stderr()
    if outcome != "success":
        return attempts[0]
    with open(os.path.join(ws, "probe.json")) as f:
        return json.load(f)


def drain_as_another_user(prefix):
    """A new directory in /var/tmp, where an ordinary user may reach, and the arguments of
    probe_drain that drain as that user (another_user) with a runtime directory of its own
    there. Skips the test unless it runs as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the drain as another user")
    tmp = tempfile.mkdtemp(dir="/var/tmp", prefix=prefix)
    os.chmod(tmp, 0o755)
    run_dir = os.path.join(tmp, "run")
    os.mkdir(run_dir, 0o700)
    uid, as_user, exe = another_user(tmp)
    return tmp, {"prefix": as_user, "exe": exe, "owner": uid,
                 "env": {"XDG_RUNTIME_DIR": run_dir}}


def waiting(fd):
    """What can be read from the descriptor `fd` at once."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1000)
    except BlockingIOError:
        return b""


@pytest.mark.parametrize("user", ["this", "another"])
def test_a_check_reaches_no_terminal_of_the_machine_and_has_ptys_of_its_own(tmp, user):
    needs_namespaces()
    as_user = {}
    if user == "another":
        tmp, as_user = drain_as_another_user("check-terminals-")
    # The operator's terminal (the drain's user's), with a line typed and not yet read.
    master, slave = pty.openpty()
    try:
        if user == "another":
            os.chown(os.ttyname(slave), as_user["owner"], -1)
        tty.setraw(slave)
        os.write(master, b"typed by the operator\n")
        probe = probe_drain(tmp, TERMINALS, **as_user)
        shown, unread = waiting(master), waiting(slave)
    finally:
        os.close(master)
        os.close(slave)
        if user == "another":
            shutil.rmtree(tmp, ignore_errors=True)
    assert (shown, unread) == (b"", b"typed by the operator\n"), probe
    # Before, /dev/pts was the machine's: a check read and wrote every terminal of its
    # user, and its /dev/ptmx found no devpts beside it (no pty: No such file or directory).
    assert probe["terminals"] == {}, probe
    assert probe["own_pty"] == "x", probe


def test_the_ipc_objects_a_check_makes_go_with_it(tmp):
    needs_namespaces()
    mine, theirs = (0x61700000 + secrets.randbelow(1 << 16) * 2 + i for i in range(2))
    posix = "/autopack-test-%s" % secrets.token_hex(6)
    ours = LIBC.shmget(theirs, 4096, IPC_CREAT | IPC_EXCL | 0o666)
    assert ours >= 0, os.strerror(ctypes.get_errno())
    left = []
    try:
        probe = probe_drain(tmp, ATTEMPT + IPC % {"mine": mine, "theirs": theirs,
                                                  "posix": posix})
        for what, get, remove in (
                ("segment", LIBC.shmget, lambda i: LIBC.shmctl(i, IPC_RMID, None)),
                ("semaphores", LIBC.semget, lambda i: LIBC.semctl(i, 0, IPC_RMID)),
                ("queue", lambda k, _, f: LIBC.msgget(k, f),
                 lambda i: LIBC.msgctl(i, IPC_RMID, None))):
            ident = get(mine, 0, 0)
            if ident >= 0:
                left.append(what)
                remove(ident)
        rt = ctypes.CDLL("librt.so.1", use_errno=True)
        if rt.mq_unlink(posix.encode()) == 0:
            left.append("posix_queue")
    finally:
        LIBC.shmctl(ours, IPC_RMID, None)
    # The check made each, in an IPC namespace of its own, gone with it; the machine's
    # segment is not there for it. Before, the segment's 4 MiB stayed for as long as the
    # machine ran, with nothing attached.
    assert {k: probe[k] for k in ("segment", "semaphores", "queue", "posix_queue")} == \
        dict.fromkeys(("segment", "semaphores", "queue", "posix_queue"), "made"), probe
    assert left == [], (left, probe)
    assert probe["theirs"] == "FileNotFoundError: No such file or directory", probe


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_check_reads_no_key_of_the_supervisors_session_keyring(tmp, where):
    name, secret = "autopack-test-%s" % secrets.token_hex(6), "ticket-%s" % secrets.token_hex(8)
    prefix = checks_where(where) + ("/usr/bin/python3", "-c", WITH_SESSION_KEY, name, secret)
    probe = probe_drain(tmp, ATTEMPT + KEYRING % {
        "name": name, "keyctl": SYS_KEYCTL, "search": KEYCTL_SEARCH, "read": KEYCTL_READ,
        "session": KEY_SPEC_SESSION_KEYRING}, prefix=prefix)
    # Before, the check possessed the supervisor's session keyring and read the key both
    # ways; now it has one of its own, and the key, which it may see, it may not read.
    assert probe["search"] == "OSError: Required key not available", probe
    assert probe["by_serial"] in ("PermissionError: Permission denied", "not listed"), probe



# Run as the drain's user: joins a session keyring of its own, adds keys to it until the
# kernel refuses one (its user's keys used up: 200 keys or 20000 bytes for an ordinary
# user), says "full" on stdout and holds them until its stdin closes.
HOG_KEYS = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
assert libc.syscall(%d, %d, None) >= 0, os.strerror(ctypes.get_errno())
n = 0
while libc.syscall(%d, b"user", b"hog-%%d" %% n, b"x" * 64, 64, %d) >= 0:
    n += 1
print("full", os.strerror(ctypes.get_errno()), flush=True)
sys.stdin.read()
''' % (SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, SYS_ADD_KEY, KEY_SPEC_SESSION_KEYRING)


def test_a_check_whose_users_keys_are_used_up_waits_then_is_not_run(tmp):
    """A check needs a key for its own session keyring: while another program of its user
    holds all the keys the kernel lets that user have, the check is tried again as when its
    namespaces are used up, then not run, never run in the supervisor's keyring."""
    tmp, as_user = drain_as_another_user("check-keys-")
    hog = subprocess.Popen(list(as_user["prefix"]) + ["/usr/bin/python3", "-c", HOG_KEYS],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout.readline() == "full Disk quota exceeded\n"
        # The supervisor in a session keyring, as under a login or a service manager (one
        # without any is let past its user's quota for its first).
        as_user["prefix"] += ("/usr/bin/python3", "-c", WITH_SESSION_KEY, "", "")
        attempt = probe_drain(tmp, "open('probe.json', 'w').write('{}')\n", outcome="failed",
                              **as_user)
    finally:
        hog.stdin.close()
        hog.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    assert attempt["failure_reason"] == "CHECK_NOT_RUN", attempt
    assert ("cannot start the check command: keyctl(KEYCTL_JOIN_SESSION_KEYRING): Disk quota "
            "exceeded: its user's keys are used up (/proc/sys/kernel/keys), by another check "
            "or another program of its user; it is not run in the supervisor's session "
            "keyring; tried 8 time(s) over ") in attempt["message"], attempt
