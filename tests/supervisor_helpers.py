"""Helpers for process-level supervisor tests: databases with generated plans, a running
supervisor, control requests, and the LLM stand-in."""
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import ROOT, binpath, ctl, with_keys

PYTHON = "/usr/bin/python3"
ROGUE = os.path.join(ROOT, "tests", "rogue_worker.py")


def db_url(path):
    return "sqlite:///" + os.path.abspath(path)


def make_plan(path, runs, tiers=1, phases=3, workspace="ws", check=None,
              deliverables=True):
    """Write a plan with `runs` runs of `tiers` tiers of `phases` phases each; "{run}" in
    `workspace` becomes each run's id (a workspace per run)."""
    doc = {"runs": []}
    for r in range(runs):
        run = {"run_id": "run-%03d" % r, "goal": "test run",
               "workspace": workspace.replace("{run}", "run-%03d" % r),
               "tiers": []}
        for t in range(tiers):
            tier = {"tier_id": "T%d" % (t + 1), "name": "tier %d" % t, "phases": []}
            for p in range(phases):
                pid = "p%d-%d" % (t, p)
                ph = {"phase_id": pid, "name": "phase %s" % pid,
                      "description": "Create out/%s_%s.py with a function f." % (
                          run["run_id"], pid),
                      "task_category": "implementation", "complexity": "low",
                      "scope": {"paths": ["out/"], "read_only_context": [],
                                "deliverables": ["out/%s_%s.py" % (run["run_id"], pid)]
                                if deliverables else []}}
                if check:
                    ph["check_command"] = check
                tier["phases"].append(ph)
            run["tiers"].append(tier)
        doc["runs"].append(run)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def new_db(tmp, runs=2, tiers=1, phases=3, **kw):
    """Create and seed a database in tmp; return its URL."""
    path = os.path.join(str(tmp), "autopack.db")
    url = db_url(path)
    r = ctl("--db", url, "db", "init")
    assert r.rc == 0, r
    if runs:
        plan = make_plan(os.path.join(str(tmp), "plan.json"), runs, tiers, phases, **kw)
        r = ctl("--db", url, "run", "import", plan)
        assert r.rc == 0, r
    return url


def sql(url, query, *args):
    if url.startswith("postgresql://"):
        import pg_cluster
        return pg_cluster.query(url, query, *args)
    path = url[len("sqlite:///"):]
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return con.execute(query, args).fetchall()
    finally:
        con.close()


class Supervisor:
    """A running autopack-supervisor; output goes to files in its directory."""

    def __init__(self, tmp, url, *args, env=None, name="sup", control=None, prefix=(),
                 session=False, exe=None):
        """control: the --control path (default NAME.sock in tmp); False for none, so the
        supervisor uses its default socket and ctl finds it from the database. `prefix`: a
        command the supervisor runs under (its argv follows); `session`: start it in a
        session (and process group) of its own, as a terminal or a service manager
        would; `exe`: the supervisor binary, default the tree's."""
        self.tmp = str(tmp)
        self.url = url
        self.control = None if control is False else (
            control or os.path.join(self.tmp, name + ".sock"))
        self.out_path = os.path.join(self.tmp, name + ".out")
        self.err_path = os.path.join(self.tmp, name + ".err")
        full_env = dict(os.environ)
        full_env.update(with_keys("autopack-supervisor", env) or {})
        self.proc = subprocess.Popen(
            list(prefix) + [exe or binpath("autopack-supervisor"), "--db", url]
            + (["--control", self.control] if self.control else [])
            + [str(a) for a in args],
            stdout=open(self.out_path, "w"), stderr=open(self.err_path, "w"),
            env=full_env, cwd=self.tmp, start_new_session=session)

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.control is None or os.path.exists(self.control):
                r = self.ctl("status", "--json")
                if r.rc == 0:
                    return json.loads(r.out)
            if self.proc.poll() is not None:
                raise AssertionError("supervisor exited %d:\n%s" % (
                    self.proc.returncode, self.stderr()))
            time.sleep(0.05)
        raise AssertionError("supervisor not ready:\n" + self.stderr())

    def ctl(self, cmd, *args, **kw):
        control = ["--control", self.control] if self.control else []
        return ctl("--db", self.url, cmd, *control, *args, **kw)

    def status(self):
        r = self.ctl("status", "--json")
        assert r.rc == 0, r
        return json.loads(r.out)

    def wait(self, timeout=120):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            evidence = self.evidence()
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("supervisor did not exit (evidence kept in %s):\n%s"
                                 % (evidence, self.stderr()))

    def evidence(self):
        """Keep what shows why a running supervisor is stuck: its status, the stacks of
        its threads (gdb, when installed) and its log, in a directory that outlives the
        test (AUTOPACK_EVIDENCE_DIR, default the system's temporary directory); return
        that directory."""
        import shutil
        import tempfile
        keep = tempfile.mkdtemp(prefix="stuck-%s-" % os.path.basename(self.err_path)[:-4],
                                dir=os.environ.get("AUTOPACK_EVIDENCE_DIR"))
        with open(os.path.join(keep, "status.json"), "w") as f:
            try:
                r = self.ctl("status", "--json", timeout=10)
                f.write("rc %s\n%s\n%s" % (r.rc, r.out, r.err))
            except Exception as e:  # the status is evidence, not a requirement
                f.write("status failed: %r\n" % e)
        gdb = shutil.which("gdb")
        if gdb:
            with open(os.path.join(keep, "stacks.txt"), "w") as f:
                subprocess.run([gdb, "-p", str(self.proc.pid), "-batch", "-ex",
                                "thread apply all bt"], stdout=f, stderr=subprocess.STDOUT,
                               timeout=60, check=False)
        for path in (self.err_path, self.out_path):
            shutil.copy(path, keep)
        return keep

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop_now(self, timeout=60):
        """Two SIGTERMs, the second once the first was handled: a fast stop."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            wait_for(lambda: "stopping" in self.stderr() or self.proc.poll() is not None,
                     30, what="the first SIGTERM handled")
            if self.proc.poll() is None:
                self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stdout(self):
        with open(self.out_path) as f:
            return f.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def rogue_supervisor(tmp, url, mode, *args, env=None, name="sup"):
    """A supervisor whose workers are tests/rogue_worker.py in ROGUE_MODE `mode`; the
    rogue's notes go to <name>.rogue.log (read them with rogue_notes)."""
    full = {"ROGUE_MODE": mode, "ROGUE_LOG": os.path.join(str(tmp), name + ".rogue.log")}
    full.update(env or {})
    return Supervisor(tmp, url, "--worker", ROGUE, *args, env=full, name=name)


def rogue_notes(tmp, name="sup", event=None):
    """The rogue workers' notes so far, optionally only those of one event."""
    path = os.path.join(str(tmp), name + ".rogue.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        notes = [json.loads(line) for line in f if line.strip()]
    return [n for n in notes if event is None or n["event"] == event]


def status_when(sup, pred, timeout=60, what="status"):
    """Poll status until pred(status) holds; return that status."""
    sup.wait_ready()
    return wait_for(lambda: (lambda s: s if pred(s) else None)(sup.status()), timeout,
                    what=what)


def log_times(text, needle):
    """Monotonic-enough seconds (from the log's UTC stamps) of the lines containing needle."""
    import datetime
    out = []
    for line in text.splitlines():
        if needle in line:
            stamp = line.split(" ", 1)[0]
            t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
            out.append(t.timestamp())
    return out


def wait_for(pred, timeout=60, step=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


KEY = "sk-test-supervisor-key-0123456789"


def llm_supervisor(tmp, url, llm, *args, name="sup", control=None, env=None):
    """A supervisor whose real workers call the stand-in `llm` (Anthropic API, no retries);
    `control` as for Supervisor, `env` added to its environment."""
    return Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                      "--llm-retries", 0, *args, env=dict(env or {}, ANTHROPIC_API_KEY=KEY),
                      name=name, control=control)


def gate_check(tmp):
    """A check command that waits until the file `go` exists in the workspace tmp/ws (a
    check whose workspace lies in /tmp sees nothing else of it): phases stay in flight
    until the test lets them finish. Returns (check command, go path)."""
    go = os.path.join(str(tmp), "ws", "go")
    return "while [ ! -e %s ]; do sleep 0.05; done" % go, go


class Standin:
    """tests/llm_standin.py on a free loopback port: `script` (a JSON document) written
    for its --script, `extra` flags passed as they are."""

    def __init__(self, tmp, script=None, *extra, name="llm"):
        self.port_file = os.path.join(str(tmp), name + ".port")
        self.log = os.path.join(str(tmp), name + ".log")
        args = [PYTHON, os.path.join(ROOT, "tests", "llm_standin.py"),
                "--port-file", self.port_file, "--log", self.log, "--max-seconds", "600"]
        if script is not None:
            spath = os.path.join(str(tmp), name + ".script.json")
            with open(spath, "w") as f:
                json.dump(script, f)
            args += ["--script", spath]
        err = os.path.join(str(tmp), name + ".err")
        self.proc = subprocess.Popen(args + list(extra), stderr=open(err, "w"))

        def port():
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text:
                    return text
            if self.proc.poll() is not None:
                raise AssertionError("the stand-in ended (status %s) before it wrote its port"
                                     % self.proc.returncode)
            return None

        try:
            self.port = int(wait_for(port, 90, what="stand-in port"))
        except AssertionError as e:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError("%s; its stderr: %r" % (e, open(err).read()[-2000:]))
        self.url = "http://127.0.0.1:%d" % self.port

    def requests(self):
        """The requests received so far, oldest first."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def hold_write_lock(path):
    """Another process that takes SQLite's write lock on path and holds it until release."""
    holder = subprocess.Popen([sys.executable, "-c", """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
""", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def release(holder):
    """Let a hold_write_lock holder roll back and exit."""
    holder.communicate("\n", timeout=30)
    assert holder.returncode == 0


@contextlib.contextmanager
def full_tmpfs(path, size):
    """A tmpfs of `size` ("64k") mounted at directory `path`, made here, and filled: its
    file "filler" takes every free byte. Unmounted on leaving; the test is skipped where
    mounting needs root."""
    os.mkdir(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s); needs root" % r.stderr.strip())
    try:
        with open(os.path.join(path, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
