"""A check command (and the code the model wrote, which it runs) reaches no socket another
process of the machine listens on: it has a network of its own, with only a loopback
interface, and finds /tmp, /var/tmp, /dev/shm and the runtime directories (where the
user's service manager and the supervisor's control socket listen) empty. Through such a
socket it could have the supervisor start workers or have another program run commands
outside its namespaces, and by listening where the workers' LLM calls go it read the API
key of every call."""
import json
import os
import socket
import stat
import uuid

import pytest

from e2e_helpers import (Standin, checks_where, dir_outside_temp_dirs,
                         drain_under_namespace_limit, drain_until_exit, import_plan, init_db,
                         needs_namespaces, phase_spec, rows)
from supervisor_helpers import wait_for

KEY = "sk-ant-sockets-%s" % uuid.uuid4().hex

# Tries to connect to a socket; records what happened in `res` under `name`.
CONNECT = r'''
res = {}
def attempt(name, family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(addr)
        res[name] = "connected"
    except OSError as e:
        res[name] = "%s: %s" % (type(e).__name__, e.strerror)
    finally:
        s.close()
'''

# Waits for targets.json (written by the test), tries to connect to each target, and runs
# a server of its own on 127.0.0.1 that it connects to; records what happened.
PROBE = r'''
import json, os, socket, threading, time
for _ in range(600):
    if os.path.exists("targets.json"):
        break
    time.sleep(0.05)
with open("targets.json") as f:
    targets = json.load(f)
''' + CONNECT + r'''for name, port in targets["tcp"].items():
    attempt(name, socket.AF_INET, ("127.0.0.1", port))
for name, path in targets["unix"].items():
    attempt(name, socket.AF_UNIX, path)
attempt("abstract", socket.AF_UNIX, "\0" + targets["abstract"])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
def serve():
    c, _ = srv.accept()
    c.sendall(c.recv(16).upper())
    c.close()
threading.Thread(target=serve, daemon=True).start()
c = socket.create_connection(srv.getsockname(), timeout=5)
c.sendall(b"ping")
res["own_server"] = c.recv(16).decode()
res["interfaces"] = sorted(n for _, n in socket.if_nameindex())
with open("probe.json", "w") as f:
    json.dump(res, f)
'''


def listener(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(addr)
    s.listen(16)
    s.setblocking(False)
    return s


def accepted(s):
    """How many connections wait on the listener `s`."""
    n = 0
    while True:
        try:
            s.accept()[0].close()
            n += 1
        except BlockingIOError:
            return n


@pytest.fixture
def outside_tmp():
    """A directory outside /tmp, removed afterwards: a workspace there leaves /tmp private
    to its checks."""
    yield from dir_outside_temp_dirs("sockets")


def probe_drain(tmp, ws, *args, prefix=()):
    """Drain one phase whose check runs PROBE in `ws`, with the test listening on a TCP
    port of 127.0.0.1, an abstract socket, a socket in /tmp and one in /run, as a system
    service's (systemd's, Docker's, a PostgreSQL server's), and the supervisor on --http
    and its default control socket; returns (probe results, connections each listener
    took, the supervisor's log)."""
    tmp = str(tmp)
    os.makedirs(ws, exist_ok=True)
    with open(os.path.join(ws, "probe.py"), "w") as f:
        f.write(PROBE)
    name = "autopack-test-%s" % uuid.uuid4().hex[:12]
    path = "/tmp/%s.sock" % name
    run = "/run/%s.sock" % name
    lsn = {"tcp": listener(socket.AF_INET, ("127.0.0.1", 0)),
           "abstract": listener(socket.AF_UNIX, "\0" + name),
           "tmp_socket": listener(socket.AF_UNIX, path),
           "run_socket": listener(socket.AF_UNIX, run)}
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="/usr/bin/python3 probe.py")])])

    def targets(sup):
        # The --http port the supervisor bound (a port chosen before it started could be
        # taken meanwhile).
        http = int(sup.wait_ready()["http_url"].rsplit(":", 1)[1].rstrip("/"))
        control = rows(url, "SELECT control_socket FROM meta")[0]["control_socket"]
        # Whole or not at all: the probe reads it once it exists (it read an empty file
        # being written, and failed its first attempt on the JSON).
        with open(os.path.join(ws, "targets.json.new"), "w") as f:
            json.dump({"tcp": {"tcp": lsn["tcp"].getsockname()[1], "http": http},
                       "unix": {"tmp_socket": path, "control": control,
                                "run_socket": run},
                       "abstract": name}, f)
        os.replace(os.path.join(ws, "targets.json.new"), os.path.join(ws, "targets.json"))

    try:
        sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1, "--http",
                                   "127.0.0.1:0", *args, env={"ANTHROPIC_API_KEY": KEY},
                                   control=False, prefix=prefix, during=targets)
    finally:
        os.unlink(path)
        os.unlink(run)
    assert rc == 0, sup.stderr()
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], sup.stderr()
    with open(os.path.join(ws, "probe.json")) as f:
        probe = json.load(f)
    taken = {k: accepted(s) for k, s in lsn.items()}
    for s in lsn.values():
        s.close()
    return probe, taken, sup.stderr()


def test_a_check_reaches_no_socket_of_the_machine_but_its_own(tmp, outside_tmp):
    needs_namespaces()
    probe, taken, err = probe_drain(tmp, os.path.join(outside_tmp, "ws"))
    # Nothing on the machine's loopback, not the supervisor's --http port: the check's
    # 127.0.0.1 is its own.
    assert probe["tcp"] == "ConnectionRefusedError: Connection refused", probe
    assert probe["http"] == "ConnectionRefusedError: Connection refused", probe
    # No abstract socket of the machine's network namespace.
    assert probe["abstract"] == "ConnectionRefusedError: Connection refused", probe
    # /tmp and the runtime directory of the control socket are empty to it.
    assert probe["tmp_socket"] == "FileNotFoundError: No such file or directory", probe
    assert probe["control"] == "FileNotFoundError: No such file or directory", probe
    # Nor does the system's /run hold a service for it, though its mount is read-only
    # to the check (which does not keep a process from connecting to a socket there).
    assert probe["run_socket"] == "FileNotFoundError: No such file or directory", probe
    assert taken == {"tcp": 0, "abstract": 0, "tmp_socket": 0, "run_socket": 0}
    # A server the check runs for itself on 127.0.0.1 works.
    assert probe["own_server"] == "PING", probe
    assert probe["interfaces"] == ["lo"], probe
    assert "check commands" not in err


def test_with_check_network_host_a_check_shares_the_machines_network(tmp, outside_tmp):
    needs_namespaces()
    probe, taken, err = probe_drain(tmp, os.path.join(outside_tmp, "ws"), "--check-network",
                                    "host")
    assert probe["tcp"] == "connected" and probe["http"] == "connected", probe
    assert probe["abstract"] == "connected", probe
    # /run too, with the resolver's files some hosts keep there.
    assert probe["run_socket"] == "connected", probe
    assert taken["tcp"] == 1 and taken["abstract"] == 1 and taken["run_socket"] == 1, taken
    # Its directories stay its own.
    assert probe["tmp_socket"] == "FileNotFoundError: No such file or directory", probe
    assert probe["control"] == "FileNotFoundError: No such file or directory", probe
    assert probe["own_server"] == "PING", probe
    assert "check commands" not in err


# Connects to each socket named in argv; records what happened.
SESSIONS = r'''
import json, os, socket, sys
''' + CONNECT + r'''for path in sys.argv[1:]:
    attempt(path, socket.AF_UNIX, path)
    if os.path.dirname(path) == "/tmp":
        try:
            os.unlink(path)
            res["removed " + path] = "removed"
        except OSError as e:
            res["removed " + path] = "%s: %s" % (type(e).__name__, e.strerror)
with open("sessions.json", "w") as f:
    json.dump(res, f)
'''


def test_a_check_whose_workspace_lies_in_tmp_reaches_none_of_the_sockets_there(tmp):
    # A workspace in /tmp gave its check the machine's /tmp, where the user's tmux server,
    # ssh agents and X server listen: through tmux's socket a check typed commands into the
    # operator's shell, which ran them outside every confinement. Its /tmp is now its own,
    # with only its workspace in it: no socket there, directly in it or below, is.
    needs_namespaces()
    if not str(tmp).startswith("/tmp/"):
        pytest.skip("the test's directory is not in /tmp")
    name = "autopack-test-%s" % uuid.uuid4().hex[:12]
    made, lsn = [], []
    paths = {"tmux": "/tmp/tmux-%d/%s" % (os.getuid(), name),
             "ssh": "/tmp/ssh-%s/agent.1" % name,
             "x11": "/tmp/.X11-unix/%s" % name,
             "other": "/tmp/%s.sock" % name,
             "below": "/tmp/%s-dir/s.sock" % name}
    try:
        for d, mode in (("/tmp/tmux-%d" % os.getuid(), 0o700), ("/tmp/ssh-%s" % name, 0o700),
                        ("/tmp/.X11-unix", 0o1777), ("/tmp/%s-dir" % name, 0o700)):
            if not os.path.isdir(d):
                os.mkdir(d)
                os.chmod(d, mode)
                made.append(d)
        for path in paths.values():
            lsn.append(listener(socket.AF_UNIX, path))
        ws = os.path.join(str(tmp), "ws")
        os.makedirs(ws)
        with open(os.path.join(ws, "sessions.py"), "w") as f:
            f.write(SESSIONS)
        url = init_db(str(tmp))
        check = "/usr/bin/python3 sessions.py " + " ".join(paths.values())
        import_plan(str(tmp), url, [("run", ws, [phase_spec("p1", check=check)])])
        sup, rc = drain_until_exit(str(tmp), url, Standin(str(tmp)), 1,
                                   env={"ANTHROPIC_API_KEY": KEY})
        assert rc == 0, sup.stderr()
        with open(os.path.join(ws, "sessions.json")) as f:
            got = json.load(f)
        # Nor a socket directly in /tmp (a PostgreSQL server's /tmp/.s.PGSQL.5432), which it
        # reached, nor one in a directory below (another user's or a service's), which it
        # connected to.
        for what in ("tmux", "ssh", "x11", "other", "below"):
            assert got[paths[what]] == "FileNotFoundError: No such file or directory", got
        assert got["removed " + paths["other"]] == \
            "FileNotFoundError: No such file or directory", got
        assert os.path.exists(paths["other"])
        assert [accepted(s) for s in lsn] == [0] * len(lsn)
    finally:
        for s in lsn:
            s.close()
        for path in paths.values():
            if os.path.exists(path):
                os.unlink(path)
        for d in made:
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)

# Writes a scratch file in /tmp and reads it back, says it started, waits for the test's
# word, then looks for a file and a socket the test put in /tmp meanwhile; records what it
# found.
LATE = r'''
import json, os, socket, sys, time
''' + CONNECT + r'''name = sys.argv[1]
with open("/tmp/%s-scratch" % name, "w") as f:
    f.write("mine")
with open("/tmp/%s-scratch" % name) as f:
    res["scratch"] = f.read()
res["cwd"] = os.getcwd()
open("started", "w").close()
for _ in range(2400):
    if os.path.exists("go"):
        break
    time.sleep(0.05)
res["late_file"] = os.path.exists("/tmp/%s-late.txt" % name)
attempt("late_socket", socket.AF_UNIX, "/tmp/%s-late.sock" % name)
res["listing"] = sorted(n for n in os.listdir("/tmp") if name in n)
with open("late.json", "w") as f:
    json.dump(res, f)
'''


def test_a_check_whose_workspace_lies_in_tmp_gets_a_tmp_of_its_own(tmp):
    # A workspace in /tmp gave its check the machine's /tmp: it read and changed what other
    # programs of its user keep there, reached a socket made after it started, and left
    # its own files behind. Its /tmp is now a tmpfs of its own, its workspace at the same
    # path in it.
    needs_namespaces()
    if not str(tmp).startswith("/tmp/"):
        pytest.skip("the test's directory is not in /tmp")
    tmp = str(tmp)
    name = "autopack-test-%s" % uuid.uuid4().hex[:12]
    late_file, late_sock = "/tmp/%s-late.txt" % name, "/tmp/%s-late.sock" % name
    scratch = "/tmp/%s-scratch" % name
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    with open(os.path.join(ws, "late.py"), "w") as f:
        f.write(LATE)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="/usr/bin/python3 late.py " +
                                                   name)])])
    lsn = []

    def late(sup):
        # Once the check runs: a file and a socket of another program appear in /tmp.
        wait_for(lambda: os.path.exists(os.path.join(ws, "started")), 120,
                 what="the check started")
        with open(late_file, "w") as f:
            f.write("another program's\n")
        lsn.append(listener(socket.AF_UNIX, late_sock))
        open(os.path.join(ws, "go"), "w").close()

    try:
        sup, rc = drain_until_exit(tmp, url, Standin(tmp), 1, env={"ANTHROPIC_API_KEY": KEY},
                                   during=late)
        leaked = os.path.exists(scratch)
        taken = [accepted(s) for s in lsn]
    finally:
        for s in lsn:
            s.close()
        for path in (late_file, late_sock, scratch):
            if os.path.lexists(path):
                os.unlink(path)
    assert rc == 0, sup.stderr()
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], sup.stderr()
    with open(os.path.join(ws, "late.json")) as f:
        got = json.load(f)
    # Its own scratch works, in its workspace at the same path.
    assert got["scratch"] == "mine" and got["cwd"] == os.path.realpath(ws), got
    # Nothing another program puts in /tmp meanwhile is there for it.
    assert got["late_file"] is False, got
    assert got["late_socket"] == "FileNotFoundError: No such file or directory", got
    assert got["listing"] == [name + "-scratch"], got
    assert taken == [0], taken
    # And its scratch went with it.
    assert not leaked


@pytest.mark.parametrize("flag,bad,choices", [("check-network", "none", ("isolated", "host")),
                                               ("check-home", "shown",
                                                ("hidden", "read-only"))])
def test_check_flags_take_one_of_their_two_values(tmp, flag, bad, choices):
    from conftest import binpath
    import subprocess
    r = subprocess.run([binpath("autopack-supervisor"), "--db", "sqlite:///x.db",
                        "--" + flag, bad], capture_output=True, text=True,
                       cwd=str(tmp), timeout=30)
    assert r.returncode == 2
    assert r.stderr == 'autopack-supervisor: --%s: "%s" is not %s or %s\n' % (
        (flag, bad) + choices)
    assert not os.path.exists(os.path.join(str(tmp), "x.db"))
    r = subprocess.run([binpath("autopack-supervisor"), "--help"], capture_output=True,
                       text=True, timeout=30)
    assert "--%s %s|%s" % ((flag,) + choices) in r.stdout


# Listens on the port of the LLM base URL as soon as it may (in a network of its own at
# once; in the machine's once the stand-in is gone), then keeps what any connection sends
# it for a while.
LISTEN = r'''
import os, socket, time
open("started", "w").close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for _ in range(600):
    try:
        s.bind(("127.0.0.1", %(port)d))
        break
    except OSError:
        time.sleep(0.05)
s.listen(16)
open("listening", "w").close()
s.settimeout(0.2)
got = b""
end = time.time() + 12
while time.time() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.settimeout(2)
    try:
        got += c.recv(65536)
    except OSError:
        pass
    c.close()
with open("caught.txt", "wb") as f:
    f.write(got)
'''


@pytest.mark.parametrize("network", ["isolated", "host"])
def test_a_check_listening_on_the_llm_port_takes_no_call(tmp, outside_tmp, network):
    """The provider (a local server) goes down while a check waits to listen on its port:
    the next call fails on the machine's port, and never reaches the check with the key.
    With --check-network host it does."""
    needs_namespaces()
    tmp = str(tmp)
    ws = os.path.join(outside_tmp, "ws")
    os.makedirs(ws)
    llm = Standin(tmp, {"markers": {"out/b.py": [
        {"mode": "status", "status": 429, "retry_after": 8}]}}, "--expect-key", KEY)
    with open(os.path.join(ws, "listen.py"), "w") as f:
        f.write(LISTEN % {"port": llm.port})
    url = init_db(tmp)
    import_plan(tmp, url, [
        ("run-a", ws, [phase_spec("a", ("out/a.py",), check="/usr/bin/python3 listen.py")]),
        ("run-b", ws, [phase_spec("b", ("out/b.py",))])])

    def provider_down(sup):
        # b's first try was answered 429 (retry in 8 s) and a's check runs: the provider
        # goes down before b tries again.
        wait_for(lambda: os.path.exists(os.path.join(ws, "started")) and
                 any(r.get("status") == 429 for r in llm.requests()),
                 60, what="a's check listening and b's first try answered")
        llm.stop()

    sup, _ = drain_until_exit(tmp, url, llm, 2, "--llm-retries", 1, "--max-attempts-per-phase",
                              1, "--check-network", network, env={"ANTHROPIC_API_KEY": KEY},
                              during=provider_down)
    att = {a["phase_id"]: a for a in rows(url, "SELECT phase_id, outcome, failure_reason"
                                               " FROM attempts")}
    assert att["a"]["outcome"] == "success", (att, sup.stderr())
    with open(os.path.join(ws, "caught.txt"), "rb") as f:
        caught = f.read()
    if network == "host":
        assert KEY.encode() in caught, caught
        return
    # b's second try found nothing on the machine's port: a clean provider error.
    assert att["b"]["failure_reason"] == "PROVIDER_ERROR", (att, sup.stderr())
    classes = [r["error_class"] for r in rows(url, "SELECT error_class FROM llm_usage_events"
                                                   " ORDER BY 1")]
    assert "network" in classes, classes
    assert caught == b"", caught


def test_checks_share_the_network_with_one_warning_where_the_kernel_refuses_it(tmp):
    needs_namespaces()
    err, workers = drain_under_namespace_limit(str(tmp), "max_net_namespaces",
                                               {"ANTHROPIC_API_KEY": KEY})
    warning = ("check commands share the machine's network (unshare(CLONE_NEWNET): No space "
               "left on device): they can reach the ports and abstract sockets of the "
               "machine's processes, the supervisor's --http port included, and listen on a "
               "free port where the workers' LLM calls go, and so read the API keys")
    assert err.count(warning) == workers and 1 <= workers <= 2, err
    assert "check commands run in" not in err


@pytest.mark.parametrize("where", ["inside", "is", "holds"])
def test_a_workspace_at_a_runtime_directory_fails_before_the_llm_call(tmp, where):
    # A runtime directory that holds the workspace cannot be emptied for the check: it saw
    # every supervisor's control socket there (and the uuid claims), and could connect to
    # each one, stop it or scale it.
    tmp = str(tmp)
    run_dir = os.path.join(tmp, "xdg")
    os.mkdir(run_dir, 0o700)
    ws = {"inside": os.path.join(run_dir, "autopack", "ws"), "is": run_dir,
          "holds": tmp}[where]
    os.makedirs(ws, exist_ok=True)
    os.mkdir(os.path.join(tmp, "db"))
    url = init_db(tmp, name="db/autopack.db")
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="ls ..")])])
    llm = Standin(tmp, {}, "--expect-key", KEY)
    sup, rc = drain_until_exit(tmp, url, llm, 1, env={"ANTHROPIC_API_KEY": KEY,
                                                      "XDG_RUNTIME_DIR": run_dir})
    assert rc == 0, sup.stderr()
    att = rows(url, "SELECT failure_reason, message FROM attempts")
    relation = {"inside": "is inside", "is": "is", "holds": "holds"}[where]
    assert att and all(a["failure_reason"] == "INVALID_JOB" for a in att), att
    assert att[0]["message"] == (
        "workspace %s %s %s, where supervisors keep their control sockets: a check "
        "command there could connect to any of them and stop or steer it; give the run a "
        "workspace of its own; not sent to the LLM" % (ws, relation, run_dir)), att
    assert llm.requests() == []


# Connects to the control socket in its workspace and asks to scale the pool to 7 and to
# stop; records what came back.
STEER = r'''
import json, os, socket, struct
try:
    import msgpack
except ImportError:
    msgpack = None
out = {}
for cmd, args in (("scale", ["7"]), ("stop", ["--now"])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect("ctl.sock")
        body = msgpack.packb({"v": 1, "t": "request", "id": 1, "cmd": cmd, "args": args})
        s.sendall(struct.pack(">I", len(body)) + body)
        out[cmd] = "answered" if s.recv(65536) else "closed"
    except OSError as e:
        out[cmd] = "%s: %s" % (type(e).__name__, e.strerror)
    s.close()
    with open("steer.json.new", "w") as f:
        json.dump(out, f)
    os.replace("steer.json.new", "steer.json")
'''


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_check_that_reaches_the_control_socket_cannot_steer_the_supervisor(tmp, where):
    """A --control socket where a check can reach it (here its workspace; any place
    outside /tmp, /var/tmp, /dev/shm and the runtime directories): the check scaled the
    pool up to 7 workers and could have stopped the supervisor. In a mount namespace of its
    own the check finds /dev/null in its place, and connects to nothing; without one, a
    peer that descends from the supervisor is refused, and logged. The operator is served
    as before."""
    prefix = checks_where(where)
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    with open(os.path.join(ws, "steer.py"), "w") as f:
        f.write(STEER)
    url = init_db(tmp)
    check = "while [ ! -e go ]; do sleep 0.05; done; /usr/bin/python3 steer.py"
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])

    def operator(sup):
        # The operator's status is answered; then the check may go on.
        sup.wait_ready()
        open(os.path.join(ws, "go"), "w").close()

    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1,
                               env={"ANTHROPIC_API_KEY": KEY}, prefix=prefix,
                               control=os.path.join(ws, "ctl.sock"), during=operator)
    err = sup.stderr()
    assert rc == 0, err
    with open(os.path.join(ws, "steer.json")) as f:
        steer = json.load(f)
    assert "scaled from" not in err and "stop by control request" not in err, err
    refused = ("closed: it is a process of worker 1's phase (a check command or what it"
               " started); phase code may not control the supervisor: refused")
    if where == "namespaces":
        assert steer == {"scale": "ConnectionRefusedError: Connection refused",
                         "stop": "ConnectionRefusedError: Connection refused"}, steer
        assert refused not in err, err
    else:
        assert set(steer.values()) <= {"closed", "BrokenPipeError: Broken pipe",
                                       "ConnectionResetError: Connection reset by peer"}, steer
        assert refused in err, err
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], err
    assert rows(url, "SELECT count(*) AS n FROM control_log") == [{"n": 0}], err


# Connects to each socket named in targets.json, writes a scratch file in $TMPDIR and tries
# to write in $HOME, and lists both; records what happened.
HOME_PROBE = r'''
import json, os, socket
''' + CONNECT + r'''with open("targets.json") as f:
    targets = json.load(f)
for name, path in targets.items():
    attempt(name, socket.AF_UNIX, path)
home, tmpdir = os.environ["HOME"], os.environ["TMPDIR"]
with open(os.path.join(tmpdir, "scratch"), "w") as f:
    f.write("mine")
try:
    open(os.path.join(home, "written"), "w").close()
    res["home_write"] = "ok"
except OSError as e:
    res["home_write"] = "%s: %s" % (type(e).__name__, e.strerror)
res["home"] = sorted(os.listdir(home))
res["tmpdir"] = sorted(os.listdir(tmpdir))
with open("home.json", "w") as f:
    json.dump(res, f)
'''


@pytest.fixture
def home_and_tmpdir():
    """A $HOME and a $TMPDIR outside the temporary directories, removed afterwards."""
    for home in dir_outside_temp_dirs("home"):
        for tmpdir in dir_outside_temp_dirs("tmpdir"):
            yield home, tmpdir


@pytest.mark.parametrize("where", ["elsewhere", "home", "tmpdir", "tmpdir_in_home"])
def test_a_check_reaches_no_socket_in_home_or_tmpdir(tmp, outside_tmp, home_and_tmpdir,
                                                      where):
    # gpg-agent's fallback socket and Docker's are under $HOME, which a check could read and
    # connect through (a read-only mount does not stop a connect), and so could it a
    # socket in a $TMPDIR outside /tmp, /var/tmp and /dev/shm, bound writable from the
    # machine's. Its $HOME is now empty and read-only, and its $TMPDIR empty and its own;
    # its workspace, and $TMPDIR, lying in either is there at the same path.
    needs_namespaces()
    tmp = str(tmp)
    home, tmpdir = home_and_tmpdir
    if where == "tmpdir_in_home":
        tmpdir = os.path.join(home, "tmp")
        os.mkdir(tmpdir)
    ws = {"elsewhere": os.path.join(outside_tmp, "ws"), "home": os.path.join(home, "proj", "ws"),
          "tmpdir": os.path.join(tmpdir, "ws"), "tmpdir_in_home": os.path.join(tmpdir, "ws")
          }[where]
    os.makedirs(ws)
    socks = {"gpg": os.path.join(home, ".gnupg", "S.gpg-agent"),
             "docker": os.path.join(home, ".docker", "run", "docker.sock"),
             "tmpdir_socket": os.path.join(tmpdir, "s.sock"),
             "tmpdir_below": os.path.join(tmpdir, "below", "s.sock")}
    if max(len(p.encode()) for p in socks.values()) > 100:
        pytest.skip("the tree lies too deep for a Unix socket's path (108 bytes) there")
    lsn = []
    for path in socks.values():
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        lsn.append(listener(socket.AF_UNIX, path))
    with open(os.path.join(ws, "targets.json"), "w") as f:
        json.dump(socks, f)
    with open(os.path.join(ws, "home.py"), "w") as f:
        f.write(HOME_PROBE)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="/usr/bin/python3 home.py")])])
    try:
        sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1,
                                   env={"ANTHROPIC_API_KEY": KEY, "HOME": home,
                                        "TMPDIR": tmpdir})
        taken = [accepted(s) for s in lsn]
    finally:
        for s in lsn:
            s.close()
    assert rc == 0, sup.stderr()
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], sup.stderr()
    with open(os.path.join(ws, "home.json")) as f:
        got = json.load(f)
    for name in socks:
        assert got[name] == "FileNotFoundError: No such file or directory", got
    assert taken == [0] * len(lsn), taken
    # Of $HOME, only the way to its workspace, or its $TMPDIR, is there; it writes nothing
    # there.
    assert got["home_write"] == "OSError: Read-only file system", got
    assert got["home"] == {"elsewhere": [], "home": ["proj"], "tmpdir": [],
                           "tmpdir_in_home": ["tmp"]}[where], got
    # Its $TMPDIR is its own: its scratch there, and its workspace when that lies in it;
    # the scratch went with it.
    assert got["tmpdir"] == (["scratch", "ws"] if where.startswith("tmpdir") else ["scratch"]), \
        got
    assert not os.path.exists(os.path.join(tmpdir, "scratch"))
    assert not os.path.exists(os.path.join(home, "written"))
    # The phase's files went into the workspace, on the machine.
    assert os.path.isfile(os.path.join(ws, "out", "mod.py"))


def test_with_check_home_read_only_a_check_sees_the_machines_home(tmp, outside_tmp,
                                                                   home_and_tmpdir):
    # An operator whose checks run programs installed under $HOME (pyenv's shims,
    # ~/.cargo/bin) shows them $HOME again, read-only, and with it the sockets kept there;
    # $TMPDIR stays the check's own.
    needs_namespaces()
    tmp = str(tmp)
    home, tmpdir = home_and_tmpdir
    ws = os.path.join(outside_tmp, "ws")
    os.makedirs(ws)
    os.makedirs(os.path.join(home, ".local", "bin"))
    tool = os.path.join(home, ".local", "bin", "tool")
    with open(tool, "w") as f:
        f.write("#!/bin/sh\necho from-home\n")
    os.chmod(tool, 0o755)
    with open(os.path.join(ws, "targets.json"), "w") as f:
        json.dump({}, f)
    with open(os.path.join(ws, "home.py"), "w") as f:
        f.write(HOME_PROBE)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec(
        "p1", check="/usr/bin/python3 home.py && %s > tool.out" % tool)])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1,
                               "--check-home", "read-only",
                               env={"ANTHROPIC_API_KEY": KEY, "HOME": home, "TMPDIR": tmpdir})
    assert rc == 0, sup.stderr()
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], sup.stderr()
    with open(os.path.join(ws, "home.json")) as f:
        got = json.load(f)
    assert got["home"] == [".local"], got
    assert got["home_write"] == "OSError: Read-only file system", got
    assert got["tmpdir"] == ["scratch"], got
    with open(os.path.join(ws, "tool.out")) as f:
        assert f.read() == "from-home\n"


# Tries to remove the control socket, to rename it and the directory holding it, and to
# connect to it; records what happened.
REMOVE = r'''
import json, os, socket
''' + CONNECT + r'''def tried(name, call, *args):
    try:
        call(*args)
        res[name] = "ok"
    except OSError as e:
        res[name] = "%s: %s" % (type(e).__name__, e.strerror)
tried("unlink", os.unlink, "run/ctl.sock")
tried("rename", os.rename, "run/ctl.sock", "run/other.sock")
tried("rename_dir", os.rename, "run", "run.moved")
attempt("connect", socket.AF_UNIX, "run/ctl.sock")
with open("remove.json", "w") as f:
    json.dump(res, f)
'''


def test_a_check_cannot_remove_the_control_socket_in_a_directory_it_writes(tmp):
    # A --control socket in a directory a check may write (its workspace, $TMPDIR): the
    # check removed it, or moved its directory away, and live commands could not reach the
    # supervisor until it made the socket again; meanwhile the check could have put one of
    # its own there. /dev/null is now bound over it in the check's mount namespace, and each
    # directory between it and the workspace onto itself.
    needs_namespaces()
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(os.path.join(ws, "run"))
    with open(os.path.join(ws, "remove.py"), "w") as f:
        f.write(REMOVE)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check="/usr/bin/python3 remove.py")])])
    sock = os.path.join(ws, "run", "ctl.sock")
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1,
                               env={"ANTHROPIC_API_KEY": KEY}, control=sock)
    err = sup.stderr()
    assert rc == 0, err
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], err
    with open(os.path.join(ws, "remove.json")) as f:
        got = json.load(f)
    busy = "OSError: Device or resource busy"
    assert got == {"unlink": busy, "rename": busy, "rename_dir": busy,
                   "connect": "ConnectionRefusedError: Connection refused"}, got
    assert "was removed by another program" not in err, err
    assert not os.path.exists(os.path.join(ws, "run.moved"))


def socket_inodes(pid):
    """The inodes of the sockets process `pid` holds open."""
    found = set()
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return found
    for fd in fds:
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


def descendants(pid):
    """`pid` and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def unix_names():
    """The Unix sockets of this network namespace: inode -> name ("" for none, "@..." for
    an abstract one, as /proc/net/unix writes it)."""
    names = {}
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            cols = line.split(None, 7)
            names[int(cols[6])] = cols[7].rstrip("\n") if len(cols) > 7 else ""
    return names


def tcp_listening():
    """The listening TCP sockets of this network namespace: inode -> port."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":
                    ports[int(cols[9])] = int(cols[1].rsplit(":", 1)[1], 16)
    return ports


def test_the_supervisor_and_its_workers_name_no_socket_but_the_control_socket(tmp):
    """Which of the project's own sockets a check could reach by a name: the supervisor's
    and its workers' (a check running), in the machine's network namespace. The control
    socket is the one Unix socket with a name, a file; no socket of theirs is abstract
    (which a check sharing the machine's network could reach whatever its mounts), the
    workers' channels are socket pairs, with no name; and --http is the one port they
    listen on."""
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    url = init_db(tmp)
    check = "touch started; while [ ! -e go ]; do sleep 0.05; done"
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])
    control = os.path.join(tmp, "ctl.sock")
    seen = {}

    def inventory(sup):
        http = int(sup.wait_ready()["http_url"].rsplit(":", 1)[1].rstrip("/"))
        wait_for(lambda: os.path.exists(os.path.join(ws, "started")), 120,
                 what="the check running")
        procs = descendants(sup.proc.pid)
        mine = set()
        for pid in procs:
            mine |= socket_inodes(pid)
        unix, tcp = unix_names(), tcp_listening()
        seen.update(procs=procs, http=http,
                    named=sorted(unix[i] for i in mine if unix.get(i)),
                    unnamed=sum(1 for i in mine if unix.get(i) == ""),
                    ports=sorted(tcp[i] for i in mine if i in tcp),
                    control_is_socket=stat.S_ISSOCK(os.lstat(control).st_mode),
                    new_left=os.path.exists("%s.%d.new" % (control, sup.proc.pid)))
        open(os.path.join(ws, "go"), "w").close()

    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 2, "--http",
                               "127.0.0.1:0", env={"ANTHROPIC_API_KEY": KEY},
                               control=control, during=inventory)
    assert rc == 0, sup.stderr()
    # The supervisor, two workers, and the check's init and shell at least.
    assert len(seen["procs"]) >= 4, seen
    # The control socket, by the private name it was bound to before it was linked into
    # place (supervisor/control.c): a file's, not an abstract one (a connection it accepted
    # and still serves bears the same name).
    assert sorted(set(seen["named"])) == ["%s.%d.new" % (control, sup.proc.pid)], seen
    assert seen["control_is_socket"] and not seen["new_left"], seen
    # Each worker's channel, both ends (the socket its hand-over came on is closed).
    assert seen["unnamed"] >= 4, seen
    assert seen["ports"] == [seen["http"]], seen


@pytest.mark.parametrize("network", ["isolated", "host"])
@pytest.mark.parametrize("where", ["workspace", "run"])
def test_a_check_reaches_the_control_socket_under_no_check_network(tmp, network, where):
    """The control socket where a check could see it: its workspace, or the system's /run,
    which a check sharing the machine's network keeps. Under either --check-network value
    the check finds /dev/null in its place or nothing at all, and connects to neither;
    the control socket is a file, never abstract, so sharing the network opens no way to
    it."""
    needs_namespaces()
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    if where == "run":
        run_dir = "/run/autopack-test-%s" % uuid.uuid4().hex[:12]
        try:
            os.mkdir(run_dir, 0o700)
        except OSError as e:
            pytest.skip("cannot make a directory in /run: %s" % e)
        control = os.path.join(run_dir, "ctl.sock")
    else:
        run_dir, control = None, os.path.join(ws, "ctl.sock")
    with open(os.path.join(ws, "reach.py"), "w") as f:
        f.write("import json, socket, sys\n" + CONNECT +
                "attempt('control', socket.AF_UNIX, sys.argv[1])\n"
                "json.dump(res, open('reach.json', 'w'))\n")
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec(
        "p1", check="/usr/bin/python3 reach.py %s" % control)])])
    try:
        sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1,
                                   "--check-network", network,
                                   env={"ANTHROPIC_API_KEY": KEY}, control=control)
    finally:
        if run_dir is not None:
            for name in os.listdir(run_dir):
                os.unlink(os.path.join(run_dir, name))
            os.rmdir(run_dir)
    err = sup.stderr()
    assert rc == 0, err
    with open(os.path.join(ws, "reach.json")) as f:
        got = json.load(f)["control"]
    # /dev/null bound over it, a device none may open: refused. In /run, which a network
    # of its own empties, it is not there at all.
    if where == "run" and network == "isolated":
        assert got == "FileNotFoundError: No such file or directory", got
    else:
        assert got == "ConnectionRefusedError: Connection refused", got
    assert "phase code may not control the supervisor" not in err, err
