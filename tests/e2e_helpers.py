"""Helpers for the end-to-end tests: the real supervisor and workers against the LLM
stand-in, on real SQLite files, with one-phase plans for the scripted failures, a capture of
the supervisor's frames, and a search for a secret in every byte a drain left behind."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import uuid

import pytest

from conftest import BIN, binpath, ctl
import supervisor_helpers
from supervisor_helpers import Supervisor, db_url

# The end-to-end tests start the one LLM stand-in through this module too.
Standin = supervisor_helpers.Standin

SEED_RUN = "telemetry-collection-v4"
SEED_DIR = "examples/telemetry_utils/"


# The temporary directories: a check whose workspace lies in one is given the machine's
# (it may write there and reach what listens there), not an empty one of its own.
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def dir_outside_temp_dirs(prefix):
    """Yield a new directory `prefix`-<random> outside the temporary directories, where an
    installed binary is: beside the build's binaries, or, for a tree under one of them, in
    the home directory; removed afterwards. Skips the test when there is no such place."""
    temps = [os.path.realpath(t) for t in TEMP_DIRS]
    for where in (os.path.dirname(BIN), os.path.expanduser("~")):
        real = os.path.realpath(where)
        if os.path.isabs(real) and not any(real == t or real.startswith(t + "/")
                                           for t in temps):
            break
    else:
        pytest.skip("the build's binaries and the home directory are in temporary directories")
    top = os.path.join(where, "%s-%s" % (prefix, uuid.uuid4().hex[:12]))
    try:
        os.makedirs(top)
    except OSError as e:
        pytest.skip("no directory outside the temporary directories could be made: %s" % e)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def init_db(tmp, name="autopack.db", url=None):
    """Create a database in tmp, or at `url` (an empty PostgreSQL database); return its
    URL."""
    url = url or db_url(os.path.join(str(tmp), name))
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r
    return url


def seed_db(tmp, workspace, url=None):
    """Create a database in tmp (or at `url`) holding the seeded telemetry run; return its
    URL."""
    url = init_db(tmp, url=url)
    r = ctl("--db", url, "seed", "telemetry-run", "--workspace", workspace)
    assert r.rc == 0, r
    return url


# A check command runs in a PID namespace of its own when the kernel allows it, where $$ and
# $PPID are that namespace's numbers; /proc is the machine's. These lines of shell set
# $hostpid to the shell's pid and $hostpgrp to its process group as the machine (and a
# test) names them.
HOST_PID = "read -r hostpid _ _ _ hostpgrp _ < /proc/self/stat"


def check_namespaces():
    """The namespaces a check command gets on this machine (worker/check.c): "user+pid",
    "pid" (root, when user namespaces are refused) or "" (neither), probed with
    unshare(1) as the worker tries them."""
    def ok(*flags):
        try:
            return subprocess.run(["unshare", *flags, "-f", "true"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
    if ok("-U", "-p"):
        return "user+pid"
    if os.geteuid() == 0 and ok("-p"):
        return "pid"
    return ""


def needs_namespaces(what="user+pid"):
    """Skip the test unless a check command gets namespaces of its own here: `what` "pid"
    (a PID namespace at least) or "user+pid" (a user one too)."""
    have = check_namespaces()
    if what == "pid" and not have:
        pytest.skip("the kernel refuses a PID namespace here (unshare -p -f true fails)")
    if what == "user+pid" and have != "user+pid":
        pytest.skip("the kernel refuses a user namespace here (unshare -U -p -f true fails)")


def refused_namespaces_prefix(pid=False):
    """A Supervisor prefix that runs it in a user namespace of its own (its user mapped to
    root) where a new user namespace, and with `pid` a new PID namespace, is refused (the
    user.max_*_namespaces limits at 0), as in a chroot or under a container's seccomp
    filter. Needs user namespaces (check_namespaces() == "user+pid")."""
    script = "echo 0 > /proc/sys/user/max_user_namespaces"
    if pid:
        script += " && echo 0 > /proc/sys/user/max_pid_namespaces"
    return ("unshare", "-U", "-r", "/bin/sh", "-c", script + ' && exec "$@"', "sh")


def checks_where(where):
    """The Supervisor prefix that runs its checks `where`: "namespaces" (their own, as the
    kernel allows) or "no-namespace" (the kernel refusing them, so that what the worker and
    the supervisor do themselves is what a test sees). Skips the test when that cannot be
    had here."""
    have = check_namespaces()
    if where == "namespaces":
        if not have:
            pytest.skip("the kernel refuses a PID namespace here (unshare -p -f true fails)")
        return ()
    if not have:
        return ()
    if have != "user+pid":
        pytest.skip("no user namespace here in which to refuse the supervisor namespaces")
    return refused_namespaces_prefix(pid=True)


def another_user(tmp):
    """An ordinary user no process of the machine runs as: its uid, the prefix that runs a
    command as it, and a copy of the supervisor in TMP/bin, with the worker beside it as the
    supervisor looks for it, that it may run (the tree may lie where it cannot reach, a
    clone in root's home)."""
    uid = 60000 + os.getpid() % 5000
    bindir = os.path.join(str(tmp), "bin")
    os.mkdir(bindir)
    for b in ("autopack-supervisor", "autopack-worker"):
        shutil.copy(binpath(b), bindir)
    return (uid, ("setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", "--"),
            os.path.join(bindir, "autopack-supervisor"))


def phase_spec(phase_id="p1", deliverables=("out/mod.py",), check=None, paths=("out/",),
               category="implementation", complexity="low", description=None):
    """One phase of a plan."""
    ph = {"phase_id": phase_id, "name": "phase " + phase_id,
          "description": description or "Create %s." % ", ".join(deliverables),
          "task_category": category, "complexity": complexity,
          "scope": {"paths": list(paths), "read_only_context": [],
                    "deliverables": list(deliverables)}}
    if check is not None:
        ph["check_command"] = check
    return ph


def import_plan(tmp, url, runs):
    """Import `runs` ([(run_id, workspace, [phase, ...]), ...]) as one plan."""
    doc = {"runs": [{"run_id": run_id, "workspace": ws, "goal": "end-to-end test",
                     "tiers": [{"tier_id": "T1", "name": "tier", "phases": phases}]}
                    for run_id, ws, phases in runs]}
    path = os.path.join(str(tmp), "plan-%d.json" % len(os.listdir(str(tmp))))
    with open(path, "w") as f:
        json.dump(doc, f)
    r = ctl("--db", url, "run", "import", path)
    assert r.rc == 0, r


def llm_args(llm, provider="anthropic"):
    """Supervisor flags that point the workers at the stand-in."""
    base = llm.url if provider == "anthropic" else llm.url + "/v1"
    return ["--llm-provider", provider, "--llm-base-url", base]


def drain(tmp, url, llm, *args, key="sk-ant-e2e-test-key", provider="anthropic",
          timeout=180, name="sup", prefix=()):
    """Run the supervisor with 4 workers until the database is drained (under the command
    `prefix`, e.g. prlimit); return it."""
    var = "ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"
    sup = Supervisor(tmp, url, "--workers", 4, "--exit-when-drained",
                     *(llm_args(llm, provider) + list(args)), env={var: key}, name=name,
                     prefix=prefix)
    rc = sup.wait(timeout=timeout)
    assert rc == 0, "supervisor exited %d:\n%s" % (rc, sup.stderr())
    return sup


def drain_until_exit(tmp, url, llm, workers, *args, env, prefix=(), control=None,
                     during=None, exe=None):
    """Run the supervisor with `workers` workers calling the stand-in `llm` until the
    database is drained (more flags `args`, environment `env`, run under `prefix`,
    `control` and `exe` as for Supervisor), calling `during(sup)` once it has started;
    however that ends, the supervisor is killed and the stand-in stopped. Returns the
    supervisor and its exit status."""
    sup = Supervisor(tmp, url, "--workers", workers, "--exit-when-drained", *llm_args(llm),
                     *args, env=env, prefix=prefix, control=control, exe=exe)
    try:
        if during is not None:
            during(sup)
        return sup, sup.wait(timeout=300)
    finally:
        sup.kill()
        llm.stop()


def drain_logging_workers(tmp, url, prefix, env):
    """Drain every queued phase with two workers calling a new stand-in, the supervisor
    run under `prefix` with `env`; assert it exits 0 and every attempt succeeded. Returns
    its log and how many workers wrote to it."""
    sup, rc = drain_until_exit(tmp, url, Standin(tmp), 2, env=env, prefix=prefix)
    assert rc == 0, sup.stderr()
    err = sup.stderr()
    outcomes = [a["outcome"] for a in rows(url, "SELECT outcome FROM attempts")]
    assert outcomes and outcomes == ["success"] * len(outcomes), err
    return err, len({line.split("autopack-worker[")[1].split("]")[0]
                     for line in err.splitlines() if "autopack-worker[" in line})


def drain_under_namespace_limit(tmp, limit, env):
    """Drain 2 runs of 2 phases whose checks each write their shell's pid into the
    workspace, the supervisor in a user namespace where /proc/sys/user/`limit` is 0 (as in
    a container that allows user namespaces but no further one of that kind), with `env`;
    assert every
    attempt succeeded and every check still ran in a PID namespace of its own (its shell
    PID 2, after the init). Returns the log and how many workers wrote to it."""
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("run-%d" % r, ws, [phase_spec("p%d" % p, ("out/%d_%d.py" % (r, p),),
                                                         check="echo $$ > pid-%d-%d" % (r, p))
                                               for p in range(2)]) for r in range(2)])
    prefix = ("unshare", "-U", "-r", "/bin/sh", "-c",
              'echo 0 > /proc/sys/user/%s && exec "$@"' % limit, "sh")
    err, workers = drain_logging_workers(tmp, url, prefix, env)
    assert len(rows(url, "SELECT outcome FROM attempts")) == 4
    pids = [name for name in os.listdir(ws) if name.startswith("pid-")]
    assert len(pids) == 4, pids
    for name in pids:
        with open(os.path.join(ws, name)) as f:
            assert f.read().strip() == "2", name
    return err, workers

def rows(url, query, *args):
    """Rows of a read-only query, as dicts (on either backend)."""
    if url.startswith("postgresql://"):
        import pg_cluster
        return pg_cluster.query_dicts(url, query, *args)
    path = url[len("sqlite:///"):]
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(query, args).fetchall()]
    finally:
        con.close()


def tree(top):
    """Every path under `top` (relative, sorted), symlinks not followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, n), top))
    return sorted(out)


# --- the frames between the supervisor and its workers, as the kernel saw them ---

STRACE = shutil.which("strace") or "/usr/bin/strace"
_STRACE_CALL = re.compile(r"^(?:\d+ +)?(read|write|readv|writev|sendmsg|recvmsg)\((\d+)<UNIX")
_STRACE_STR = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def strace_prefix(out_path):
    """A command prefix that records the traced process's socket I/O, every byte in hex."""
    return [STRACE, "-yy", "-e", "trace=read,write,readv,writev,sendmsg,recvmsg",
            "-s", "1000000", "-xx", "-o", out_path]


def unix_socket_streams(capture_path):
    """The bytes the traced process read from and wrote to each Unix socket, concatenated
    in call order: {(fd, "in" | "out"): bytes}."""
    streams = {}
    with open(capture_path) as f:
        for line in f:
            m = _STRACE_CALL.match(line)
            if m is None:
                continue
            direction = "in" if m.group(1).startswith(("read", "recv")) else "out"
            buf = streams.setdefault((int(m.group(2)), direction), bytearray())
            for s in _STRACE_STR.findall(line):
                buf.extend(bytes.fromhex(s.replace("\\x", "")))
    return {k: bytes(v) for k, v in streams.items()}


# --- where a secret could hide ---

def secret_forms(secret):
    """The byte strings whose presence means `secret` leaked: itself, its hex escapes
    (as strace or a repr would print it), and its second half alone."""
    raw = secret.encode()
    return [raw, "".join("\\x%02x" % b for b in raw).encode(), raw[len(raw) // 2:]]


def files_containing(top, secret, exclude=()):
    """Files under `top` (recursively), except those in `exclude`, holding any form of
    `secret`."""
    forms = secret_forms(secret)
    hits = []
    for dirpath, _, filenames in os.walk(top):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if p in exclude or os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                data = f.read()
            if any(form in data for form in forms):
                hits.append(p)
    return hits


def text_cells_containing(url, secret):
    """(table, column, value) of every text cell in the database that holds `secret`."""
    path = url[len("sqlite:///"):]
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    hits = []
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for t in tables:
            cols = [r[1] for r in con.execute('PRAGMA table_info("%s")' % t)]
            for row in con.execute('SELECT * FROM "%s"' % t):
                for c, v in zip(cols, row):
                    if isinstance(v, (str, bytes)):
                        b = v.encode() if isinstance(v, str) else v
                        if any(form in b for form in secret_forms(secret)):
                            hits.append((t, c, v))
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    if secret in dump:
        hits.append(("iterdump", "", "the dump holds the secret"))
    return hits
