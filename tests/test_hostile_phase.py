"""Phases whose check commands are hostile: they go after the API key (the drain's
/proc/<pid>/environ, mem, ptrace, process_vm_readv, descriptors, the database's files, the
control socket, a core dump), signal the drain, outlive their deadline (setsid, nohup, a
SIGTERM ignored, a SIGSTOP), exhaust descriptors and processes, write outside their
workspace, garble their output, or leave a tree the worker takes long to walk. Each fails
its own phase with a message naming what happened, and the drain goes on."""
import json
import os
import time

from e2e_helpers import (Standin, drain_until_exit, files_containing, import_plan, init_db,
                         needs_namespaces, phase_spec, rows)

KEY = "sk-ant-hostile-phase-0123456789abcdef"

MANY_DIRS = ("/usr/bin/python3 -c 'import os\n"
             "for i in range(%d):\n os.makedirs(\"t/%%d/%%d\" %% (i // 1000, i))'")


def test_a_check_that_leaves_a_huge_tree_fails_no_worker(tmp):
    """The worker walks the workspace for nested repositories before and after each check;
    it said nothing while it did, and a tree of 200,000 directories a check left made both
    that phase and the next end HEARTBEAT_LOST (the worker killed as hung)."""
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [
        phase_spec("p1", ("out/a.py",), check=MANY_DIRS % 200000),
        phase_spec("p2", ("out/b.py",), check="true")])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               "--heartbeat-timeout-seconds", 2,
                               env={"ANTHROPIC_API_KEY": KEY})
    attempts = rows(url, "SELECT phase_id, outcome, failure_reason, message FROM attempts")
    assert rc == 0, sup.stderr()[-3000:]
    assert [a["outcome"] for a in attempts] == ["success", "success"], attempts


# Reads what a check could reach of the drain's secrets, and writes every byte it got into
# its workspace (dump.bin), with what each try met (probe.json).
SECRETS = r'''
import ctypes, glob, json, os, signal, socket, resource
res, dump = {}, bytearray()
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, fn):
    try:
        got = fn()
        if isinstance(got, bytes):
            dump.extend(got)
            got = len(got)
        res[name] = got
    except OSError as e:
        res[name] = "%s: %s" % (type(e).__name__, e.strerror)
def read(path):
    with open(path, "rb") as f:
        return f.read(1 << 20)
def mem(pid):
    with open("/proc/%d/mem" % pid, "rb") as f:
        f.seek(0x400000)
        return f.read(4096)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
def vm_read(pid):
    buf = ctypes.create_string_buffer(4096)
    local, remote = iovec(ctypes.addressof(buf), 4096), iovec(0x400000, 4096)
    if libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return buf.raw
def ptrace(pid):
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "attached"
def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(path)
    s.sendall(b'{"cmd":"status"}\n')
    return s.recv(65536)
drain = [int(p) for p in filter(str.isdigit, os.listdir("/proc"))
         if os.path.exists("/proc/%s/comm" % p)
         and open("/proc/%s/comm" % p).read().startswith("autopack-")]
res["drain_seen"] = len(drain)
for p in drain:
    attempt("cmdline_%d" % p, lambda: read("/proc/%d/cmdline" % p))
    for what in ("environ", "auxv", "maps", "stack"):
        attempt("%s_%d" % (what, p), lambda: read("/proc/%d/%s" % (p, what)))
    attempt("mem_%d" % p, lambda: mem(p))
    attempt("vm_%d" % p, lambda: vm_read(p))
    attempt("ptrace_%d" % p, lambda: ptrace(p))
    attempt("kill_%d" % p, lambda: os.kill(p, signal.SIGTERM))
    for fd in os.listdir("/proc/%d/fd" % p) if os.access("/proc/%d/fd" % p, os.R_OK) else []:
        attempt("fd_%d_%s" % (p, fd), lambda: read("/proc/%d/fd/%s" % (p, fd)))
res["own_fds"] = sorted(os.listdir("/proc/self/fd"))
for fd in range(3, 1024):
    attempt("inherited_%d" % fd, lambda: os.fstat(fd).st_mode)
res["inherited"] = [k for k, v in res.items() if k.startswith("inherited_") and isinstance(v, int)]
for path in DB_FILES:
    attempt("db_" + os.path.basename(path), lambda: read(path))
for path in glob.glob("/run/autopack/**", recursive=True) + glob.glob(TMP + "/**", recursive=True):
    if path.endswith(".sock"):
        attempt("connect_" + path, lambda: connect(path))
for path in glob.glob(TMP + "/**", recursive=True):
    if os.path.isfile(path) and "/ws-" not in path:
        attempt("file_" + path, lambda: read(path))
# A core of its own, wherever the kernel would write it.
resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
pid = os.fork()
if pid == 0:
    os.abort()
res["core"] = os.waitpid(pid, 0)[1]
open("dump.bin", "wb").write(bytes(dump))
json.dump(res, open("probe.json", "w"))
'''

# A line of 3 MB, terminal escapes, a NUL and invalid UTF-8 on stderr.
GARBLED = ("printf '\\033]0;pwned\\007\\033[2J\\000\\377\\376 bad\\n' >&2; "
           "head -c 3000000 /dev/zero | tr '\\0' a >&2; "
           "printf '\\033[31mEND \\303\\n\\000' >&2; exit 1")

CHECKS = {
    # name: (check command, outcome, failure reason, words of the message)
    "secrets": (None, "success", None, None),
    "killpg": ("kill -TERM 0; sleep 3", "failed", "CHECK_FAILED", "killed by signal 15"),
    "killall": ("kill -KILL -1; exit 3", "failed", "CHECK_FAILED", "exited 3"),
    "daemon": ("setsid sh -c 'trap \"\" TERM HUP; sleep 4; echo escaped > late' "
               "</dev/null >/dev/null 2>&1 & "
               "(nohup sh -c 'sleep 4; echo escaped > late2' >/dev/null 2>&1 &); "
               "(trap '' TERM; sleep 4; echo escaped > late3) & exit 0",
               "success", None, None),
    "holdpipe": ("(trap '' TERM HUP; sleep 30; echo escaped > late) & exit 0",
                 "success", None, None),
    "sigstop": ("kill -STOP $$", "timeout", "TIMEOUT", "deadline"),
    "noterm": ("trap '' TERM INT HUP; while :; do sleep 1; done", "timeout", "TIMEOUT",
               "deadline"),
    "fds": ("/usr/bin/python3 -c 'import os\nn = 0\ntry:\n while True: os.open(\"/dev/null\", 0); n += 1\n"
            "except OSError as e: print(n, e)'", "success", None, None),
    "forkbomb": ("(b() { b | b & }; b) 2>/dev/null & exec sleep 2", "success", None, None),
    "garbled": (GARBLED, "failed", "CHECK_FAILED", "exited 1"),
    "outside": ("rm -rf out; ln -s /etc out; ln /etc/hostname hard 2> hard.err; "
                "echo escaped > ../escaped-outside 2> dotdot.err; exit 0",
                "success", None, None),
}


def test_hostile_checks_fail_their_phase_and_the_drain_goes_on(tmp):
    """A check that ignored SIGTERM or stopped itself was still running when the supervisor
    killed its worker at the deadline's grace: the attempt read `worker pid N ended: status
    0, signal 15`, naming neither the check nor the deadline. Everything else held."""
    needs_namespaces()
    tmp = str(tmp)
    url = init_db(tmp)
    db = url[len("sqlite:///"):]
    runs = []
    for name, (check, _, _, _) in CHECKS.items():
        ws = os.path.join(tmp, "ws-" + name)
        os.makedirs(ws)
        if check is None:
            with open(os.path.join(ws, "probe.py"), "w") as f:
                f.write("DB_FILES, TMP = %r, %r\n" % ([db, db + "-wal", db + "-shm"], tmp) + SECRETS)
            check = "/usr/bin/python3 probe.py"
        phases = [phase_spec("p1", ("out/mod.py",), check=check)]
        if name == "outside":
            phases.append(phase_spec("p2", ("out/two.py",), check="true"))
        runs.append(("r-" + name, ws, phases))
    import_plan(tmp, url, runs)
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}), 2, "--max-attempts-per-phase", 1,
                               "--phase-timeout-seconds", 8, "--check-max-processes", 64,
                               env={"ANTHROPIC_API_KEY": KEY})
    err = sup.stderr()
    attempts = {(a["run_id"], a["phase_id"]): a for a in rows(
        url, "SELECT run_id, phase_id, outcome, failure_reason, message FROM attempts")}
    for k, a in sorted(attempts.items()):
        print(k, a["outcome"], a["failure_reason"], repr(a["message"])[:400])
    assert rc == 0, err[-5000:]
    for name, (_, outcome, reason, words) in CHECKS.items():
        a = attempts[("r-" + name, "p1")]
        assert a["outcome"] == outcome, (name, a)
        if reason is not None:
            assert a["failure_reason"] == reason and words in a["message"], (name, a)
    # What the check left in the way fails the next phase before its call.
    two = attempts[("r-outside", "p2")]
    assert two["failure_reason"] == "WRITE_FAILED", two
    assert "symlink out leaves the workspace" in two["message"], two
    ws = os.path.join(tmp, "ws-outside")
    assert not os.path.exists(os.path.join(ws, "hard")), open(os.path.join(ws, "hard.err")).read()
    assert not os.path.exists(os.path.join(tmp, "escaped-outside"))
    # Its message is one line of text.
    msg = attempts[("r-garbled", "p1")]["message"]
    assert not any(c in msg for c in "\x1b\x00\x07"), repr(msg[-300:])
    assert "\x1b" not in err and "\x00" not in err
    # No secret reached a check.
    with open(os.path.join(tmp, "ws-secrets", "probe.json")) as f:
        probe = json.load(f)
    assert probe["drain_seen"] >= 3, probe
    assert probe["inherited"] == [], probe
    for key, value in probe.items():
        if key.split("_")[0] in ("environ", "mem", "vm", "ptrace", "db", "connect", "auxv",
                                 "stack", "maps"):
            # Refused; or nothing read (a process that was exiting: its memory gone).
            assert isinstance(value, str) or value == 0, (key, value)
        if key.startswith("kill_"):
            assert value == "ProcessLookupError: No such process", (key, value)
    assert files_containing(tmp, KEY, exclude=(os.path.join(tmp, "plan-0.json"),)) == [], probe
    # Nothing a check started outlived it.
    time.sleep(5)
    for name in ("daemon", "holdpipe"):
        left = [n for n in os.listdir(os.path.join(tmp, "ws-" + name)) if n.startswith("late")]
        assert left == [], (name, left)
    # Every phase ended, every attempt was recorded once.
    states = rows(url, "SELECT state, count(*) AS n FROM phases GROUP BY state")
    assert sum(s["n"] for s in states) == len(CHECKS) + 1, states
    assert not [s for s in states if s["state"] not in ("COMPLETE", "FAILED")], states
    assert len(attempts) == len(CHECKS) + 1, attempts


MANY_GIT = ("/usr/bin/python3 -c 'import os\n"
            "for i in range(%d):\n os.makedirs(\"made/%%d/%%d/.git\" %% (i // 1000, i))'")


def test_many_nested_repositories_fail_no_worker(tmp):
    """The repositories a check made were moved away without a word to the supervisor: a
    check that made 60,000 `.git` directories ended HEARTBEAT_LOST, and so did the next
    check of that workspace, which compared the 40,000 left (plus the vendored ones) each
    with every one found before it (n² string comparisons, now a binary search)."""
    ws = os.path.join(str(tmp), "ws")
    for i in range(2000):
        os.makedirs(os.path.join(ws, "vendor", str(i // 1000), str(i), ".git"))
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [
        phase_spec("p1", ("out/a.py",), check=MANY_GIT % 60000),
        phase_spec("p2", ("out/b.py",), check="true")])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               "--heartbeat-timeout-seconds", 2,
                               env={"ANTHROPIC_API_KEY": KEY})
    attempts = rows(url, "SELECT phase_id, outcome, failure_reason, message FROM attempts")
    assert rc == 0, sup.stderr()[-3000:]
    assert [(a["outcome"], a["failure_reason"]) for a in attempts] == [
        ("failed", "SCOPE_VIOLATION"), ("success", None)], attempts
    assert attempts[0]["message"].startswith(
        "the check command made a repository at made/0/0/.git in the workspace, moved to "
        ".autopack/quarantine/run__p1__a1.nested-1; "), attempts[0]["message"][:300]
    assert len(os.listdir(os.path.join(ws, ".autopack", "quarantine"))) == 60000
    assert len(os.listdir(os.path.join(ws, "vendor", "1"))) == 1000
