"""A check command sees the machine's /proc (every process's pid and command line), but
reaches no process outside its namespaces through it: not the files of another process's
root or working directory (/proc/<pid>/root, /proc/<pid>/cwd, which lead into the mount
namespace of that process, where the machine's mounts are writable), not its environment
or memory, and no signal through a descriptor of /proc/<pid> (pidfd_send_signal), even
to a process of its own user that is dumpable; nor does /proc/self/root lead out of its
own read-only view; nor does it leave a device node in its workspace, which would open
outside it. Its user namespace is what refuses them (a process of its user in
the machine's user namespace is not in its reach); its PID namespace, the signal."""
import os
import subprocess
import uuid

import pytest

from e2e_helpers import dir_outside_temp_dirs, needs_namespaces
from test_check_kernel_objects import probe_drain

PROBE = r'''
import json, os, signal
res = {}
def attempt(name, fn):
    try:
        res[name] = fn()
    except OSError as e:
        res[name] = "%%s: %%s" %% (type(e).__name__, e.strerror)
def write(path):
    with open(path, "w") as f:
        f.write("escaped")
    return "ok"
def read(path):
    with open(path, "rb") as f:
        return f.read(64).decode(errors="replace")
def pidfd_kill(pid):
    # Signal 0: the permission is checked, nothing is sent.
    fd = os.open("/proc/%%d" %% pid, os.O_RDONLY | os.O_DIRECTORY)
    try:
        signal.pidfd_send_signal(fd, 0)
    finally:
        os.close(fd)
    return "ok"
def drain_processes():
    """This drain's supervisor (its command line names the test's directory) and its
    workers (its children)."""
    sup, workers = [], []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            if %(tmp)r.encode() in open("/proc/%%s/cmdline" %% p, "rb").read() and \
                    open("/proc/%%s/comm" %% p).read().startswith("autopack-super"):
                sup.append(int(p))
        except OSError:
            pass
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open("/proc/%%s/stat" %% p).read()
            if int(stat.rsplit(")", 1)[1].split()[1]) in sup:
                workers.append(int(p))
        except OSError:
            pass
    return {"autopack-supervisor": sup, "autopack-worker": workers}
pid, target = %(pid)d, %(target)r
attempt("sees_sleeper", lambda: os.path.exists("/proc/%%d" %% pid))
attempt("self_root", lambda: write("/proc/self/root" + target + "/self_root"))
attempt("pid_root", lambda: write("/proc/%%d/root%%s/pid_root" %% (pid, target)))
attempt("pid_cwd", lambda: write("/proc/%%d/cwd/pid_cwd" %% pid))
attempt("pid_environ", lambda: read("/proc/%%d/environ" %% pid))
attempt("pid_mem", lambda: read("/proc/%%d/mem" %% pid))
attempt("pid_kill", lambda: pidfd_kill(pid))
# A device node left in the workspace would open outside the check, whose own mount of
# the workspace opens no device: /dev/mem's, a disk's.
import stat
attempt("mknod_mem", lambda: os.mknod("mem", 0o666 | stat.S_IFCHR, os.makedev(1, 1)))
attempt("mknod_disk", lambda: os.mknod("sda", 0o666 | stat.S_IFBLK, os.makedev(8, 0)))
for comm, pids in drain_processes().items():
    res[comm + "_seen"] = len(pids)
    for i, p in enumerate(pids):
        attempt("%%s_root_%%d" %% (comm, i), lambda: write("/proc/%%d/root%%s/w" %% (p, target)))
        attempt("%%s_kill_%%d" %% (comm, i), lambda: pidfd_kill(p))
        # Its pid names no process of the check's PID namespace, nor its process group.
        attempt("%%s_pid_%%d" %% (comm, i), lambda: os.kill(p, 0))
        attempt("%%s_pgrp_%%d" %% (comm, i), lambda: os.killpg(p, 0))
with open("probe.json", "w") as f:
    json.dump(res, f)
'''


@pytest.fixture
def outside():
    for top in dir_outside_temp_dirs("escape"):
        yield top


def test_a_check_reaches_no_process_outside_its_namespaces_through_proc(tmp, outside):
    needs_namespaces()
    secret = "escape-%s-SECRET" % uuid.uuid4().hex
    # A process of the drain's user, dumpable, its working directory outside the
    # temporary directories and a secret in its environment.
    sleeper = subprocess.Popen(["sleep", "300"], cwd=outside,
                               env=dict(os.environ, ESCAPE_SECRET=secret))
    try:
        probe = probe_drain(tmp, PROBE % {"pid": sleeper.pid, "target": outside,
                                          "tmp": str(tmp)})
        assert sleeper.poll() is None, probe
    finally:
        sleeper.kill()
        sleeper.wait()
    assert probe["sees_sleeper"] is True, probe
    assert probe["self_root"] == "OSError: Read-only file system", probe
    for key in ("pid_root", "pid_cwd", "pid_environ", "pid_mem"):
        assert probe[key] == "PermissionError: Permission denied", (key, probe)
    for key in ("mknod_mem", "mknod_disk"):
        assert probe[key] == "PermissionError: Operation not permitted", (key, probe)
    assert not {"mem", "sda"} & set(os.listdir(os.path.join(str(tmp), "ws")))
    # The sleeper is in no PID namespace the check's descends from.
    assert probe["pid_kill"] == "OSError: Invalid argument", probe
    assert probe["autopack-worker_seen"] >= 1 and probe["autopack-supervisor_seen"] >= 1, probe
    for key, value in probe.items():
        if key.startswith("autopack-") and "_root_" in key:
            assert value == "PermissionError: Permission denied", (key, probe)
        if key.startswith("autopack-") and "_kill_" in key:
            assert value == "OSError: Invalid argument", (key, probe)
        if key.startswith("autopack-") and ("_pid_" in key or "_pgrp_" in key):
            assert value == "ProcessLookupError: No such process", (key, probe)
    assert os.listdir(outside) == [], probe
    assert secret not in str(probe)
