"""A control client that asks and does not read is dropped before its replies fill the
supervisor's memory; many clients asking as fast as they can neither stall the drain nor
grow the supervisor's memory; idle connections are closed, and a connection over the cap
closes the longest idle one, so that idle peers never lock `status`, `scale` or `stop` out."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import msgpack
import pytest

from supervisor_helpers import Supervisor, new_db, sql, wait_for
from conftest import binpath
from e2e_helpers import another_user

# Clients that pipeline `status` requests (16 per write) as fast as their sockets take
# them, reading every reply: argv = socket path, number of connections.
HAMMER = r"""
import selectors, socket, struct, sys, msgpack
body = msgpack.packb({"v": 1, "t": "request", "id": 1, "cmd": "status", "args": []})
frame = (struct.pack(">I", len(body)) + body) * 16
sel = selectors.DefaultSelector()
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
print("connected", flush=True)
while sel.get_map():
    for key, ev in sel.select(1):
        s = key.fileobj
        try:
            if ev & selectors.EVENT_READ and not s.recv(65536):
                raise OSError("closed")
            if ev & selectors.EVENT_WRITE:
                s.send(frame)
        except BlockingIOError:
            pass
        except OSError:
            sel.unregister(s)
            s.close()
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l.split()[1] for l in f if l.startswith("VmRSS:")][0])


def test_a_client_that_does_not_read_its_replies_is_dropped_and_logged(tmp):
    url = new_db(tmp, runs=2, phases=2)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        before = rss_kib(sup.proc.pid)
        body = msgpack.packb({"v": 1, "t": "request", "id": 1, "cmd": "status", "args": []})
        frame = struct.pack(">I", len(body)) + body
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sup.control)
        sent = 0
        try:
            # Far more than the 8 MiB the supervisor keeps for a peer: ~1 KiB per reply.
            for _ in range(100000):
                s.sendall(frame * 10)
                sent += 10
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.close()
        assert sent < 100000, "the peer was never dropped"
        wait_for(lambda: "dropped: it does not read its replies" in sup.stderr(), 30,
                 what="the drop logged")
        # The supervisor's memory stayed bounded (a sanitizer's quarantine keeps freed
        # memory, so only a plain build is measured), and it still answers.
        if os.environ.get("AUTOPACK_SANITIZE") != "1":
            assert rss_kib(sup.proc.pid) - before < 32 * 1024, (before, rss_kib(sup.proc.pid))
        assert sup.ctl("status").rc == 0
    finally:
        sup.signal(15)
        assert sup.wait() == 0, sup.stderr()


def test_many_pipelining_clients_neither_stall_the_drain_nor_grow_memory(tmp):
    url = new_db(tmp, runs=40, phases=10)
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run")
    hammer = None
    try:
        sup.wait_ready()
        before = rss_kib(sup.proc.pid)
        hammer = subprocess.Popen([sys.executable, "-c", HAMMER, sup.control, "48"],
                                  stdout=subprocess.PIPE, text=True)
        assert hammer.stdout.readline().strip() == "connected"
        assert sup.ctl("scale", "2").rc == 0
        peak = [before]

        def drained():
            peak[0] = max(peak[0], rss_kib(sup.proc.pid))
            r = sup.ctl("status")
            assert r.rc == 0, r
            return sql(url, "SELECT count(*) FROM attempts")[0][0] == 400

        # The drain goes on committing and status answers while 48 clients ask as fast
        # as they can.
        wait_for(drained, 240, step=0.5, what="the drain to finish under load")
        assert hammer.poll() is None, "the clients were dropped"
        err = sup.stderr()
        assert "does not read its replies" not in err, err[-3000:]
        if os.environ.get("AUTOPACK_SANITIZE") != "1":
            assert peak[0] - before < 64 * 1024, (before, peak[0])
    finally:
        if hammer is not None:
            hammer.kill()
            hammer.wait()
        sup.signal(15)
        assert sup.wait() == 0, sup.stderr()


def request_frame(cmd, *args, rid=1):
    body = msgpack.packb({"v": 1, "t": "request", "id": rid, "cmd": cmd, "args": list(args)})
    return struct.pack(">I", len(body)) + body


def read_reply(s):
    """One reply frame from socket s, decoded; None at EOF."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    head = exactly(4)
    if head is None:
        return None
    return msgpack.unpackb(exactly(struct.unpack(">I", head)[0]), raw=False)


def test_idle_connections_over_the_cap_never_lock_out_status_scale_or_stop(tmp):
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    held = []
    try:
        sup.wait_ready()
        # A client that keeps one connection and asks every so often stays served.
        keeper = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        keeper.connect(sup.control)
        keeper.settimeout(10)
        keeper.sendall(request_frame("status"))
        assert read_reply(keeper)["ok"] is True
        # Far more idle connections than the cap, none of which ever sends anything.
        for i in range(64 * 3):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sup.control)
            held.append(s)
            if i % 32 == 0:
                keeper.sendall(request_frame("status"))
                assert read_reply(keeper)["ok"] is True
        # The oldest idle ones were closed to make room, told why.
        held[0].settimeout(10)
        r = read_reply(held[0])
        assert r is not None and r["ok"] is False and r["code"] == "too_many_connections", r
        assert "closed to make room for a new connection" in r["msg"], r
        assert sup.ctl("status").rc == 0
        assert sup.ctl("scale", "1").rc == 0
        keeper.sendall(request_frame("status"))
        assert read_reply(keeper)["ok"] is True
        err = sup.stderr()
        assert err.count("closed to make room for a new connection") == 1, err
        r = sup.ctl("stop")
        assert r.rc == 0, r
        assert sup.wait() == 0, sup.stderr()
    finally:
        for s in held:
            s.close()
        if sup.proc.poll() is None:
            sup.signal(15)
            sup.wait()


def test_a_peer_refused_for_want_of_descriptors_is_not_said_to_be_gone(tmp):
    """With its descriptors used up (ulimit -n), the supervisor could not open the /proc of
    a peer that connected, and refused it saying the peer "was gone before it could be told
    apart from a phase's process (Too many open files)": it was there, waiting. (Started
    under the low limit, the supervisor serves so few connections that they cannot use its
    descriptors up: the limit is lowered once it runs.)"""
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    held = []
    try:
        sup.wait_ready()
        subprocess.run(["prlimit", "--pid", str(sup.proc.pid), "--nofile=48:48"], check=True)
        for _ in range(48):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sup.control)
            held.append(s)
            if "control peer pid" in sup.stderr():
                break
        wait_for(lambda: "control peer pid" in sup.stderr(), 60)
        err = sup.stderr()
        assert "was gone" not in err, err
        assert ("it could not be told apart from a phase's process: reading /proc/" in err and
                "(Too many open files: the supervisor has no descriptor left; raise ulimit -n"
                " or LimitNOFILE=); refused" in err), err
    finally:
        for s in held:
            s.close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()

# Connects argv[2] connections to the socket argv[1], says so, and holds them, sending
# nothing, until its standard input closes.
BACKLOG = r"""
import socket, sys
held = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    held.append(s)
print("connected", flush=True)
sys.stdin.read()
"""


def free_fds_limit(pid, free):
    """The limit of open files under which process `pid` has `free` descriptors left."""
    used = {int(fd) for fd in os.listdir("/proc/%d/fd" % pid)}
    n = left = 0
    while left < free:
        left += n not in used
        n += 1
    return n


def test_a_backlog_of_connections_accepted_in_one_loop_turn_leaves_the_descriptors_theirs(tmp):
    """libuv accepts every connection waiting on the socket in one loop turn. Each one over
    the cap (8 under `ulimit -n 64`) closed another, told why, but that close waited for
    the reply's write to end in the next turn, its descriptor held: a full backlog (17
    connections) held 8 descriptors past the cap, and with few left the peer behind them
    could not be told apart from a phase's process (its /proc could not be opened) and
    was refused, or was closed unaccepted by libuv out of descriptors: `scale` and
    `status` got "the supervisor closed the connection" under a flood on a busy machine.
    A connection closed to make room now gives its descriptor back at once."""
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0, prefix=("prlimit", "--nofile=64:64", "--"))
    flood = None
    try:
        sup.wait_ready()
        assert "at most 8 connection(s) at once" in sup.stderr()
        sup.signal(signal.SIGSTOP)
        # The socket's backlog (16) full while the loop is stopped: 16 connections of one
        # process that send nothing, then a client that asks.
        flood = subprocess.Popen([sys.executable, "-c", BACKLOG, sup.control, "16"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert flood.stdout.readline().strip() == "connected"
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(sup.control)
        client.settimeout(30)
        client.sendall(request_frame("status"))
        # Room for the cap's connections, the one being accepted, a peer's /proc, and 3
        # more: not for 8 more held by closes put off to the next turn.
        limit = free_fds_limit(sup.proc.pid, 8 + 1 + 1 + 3)
        subprocess.run(["prlimit", "--pid", str(sup.proc.pid), "--nofile=%d:%d" % (limit, limit)],
                       check=True)
        sup.signal(signal.SIGCONT)
        r = read_reply(client)
        assert r is not None and r["ok"] is True, (r, sup.stderr()[-3000:])
        client.close()
        err = sup.stderr()
        assert "could not be told apart" not in err and "Too many open files" not in err, err
        assert "closed to make room for a new connection" in err, err
    finally:
        if flood is not None:
            flood.stdin.close()
            flood.wait()
        sup.signal(signal.SIGCONT)
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_a_connection_that_sends_no_whole_request_is_closed(tmp):
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(sup.control)
        partial = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        partial.connect(sup.control)
        partial.sendall(request_frame("status")[:7])
        for s in (idle, partial):
            s.settimeout(60)
            assert s.recv(1) == b"", "an idle connection was never closed"
        wait_for(lambda: "sent no whole request for 5 s after it connected" in sup.stderr(),
                 10, what="the close logged")
        # One that asked once is kept past the first-request limit: past the close of a
        # connection made after its request.
        kept = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        kept.connect(sup.control)
        kept.settimeout(60)
        kept.sendall(request_frame("status"))
        assert read_reply(kept)["ok"] is True
        later = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        later.connect(sup.control)
        later.settimeout(60)
        assert later.recv(1) == b"", "an idle connection was never closed"
        later.close()
        kept.sendall(request_frame("status"))
        assert read_reply(kept)["ok"] is True
        assert sup.ctl("status").rc == 0
    finally:
        sup.signal(15)
        assert sup.wait() == 0, sup.stderr()


def test_a_request_that_cannot_be_encoded_fails_at_once_without_holding_a_connection(tmp):
    # An argument that is not UTF-8 cannot go on the wire: autopack-ctl said so, but
    # only after waiting for a reply to the request it never sent (30 s, or until the
    # supervisor closed the idle connection, 5 s after it connected). Once a connection
    # made after the commands has been closed that way, no close logged as idle may be a
    # command's. (A command gone before the supervisor read its /proc is logged as refused,
    # the first close of the minute, and the later idle close is then only counted.)
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        for args in ([b"scale", b"\xff"], [b"retry", b"r\xfe", b"p"], [b"cancel", b"r", b"\xff"]):
            p = subprocess.run([binpath("autopack-ctl").encode(), b"--db", url.encode()] + args,
                               capture_output=True, timeout=60)
            assert p.returncode == 1, p
            assert b"the request cannot be encoded" in p.stderr and b"invalid UTF-8" in p.stderr, p
            assert b"no reply" not in p.stderr and b"closed the connection" not in p.stderr, p
        later = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        later.connect(sup.control)
        later.settimeout(60)
        assert later.recv(1) == b"", "an idle connection was never closed"
        later.close()
        wait_for(lambda: "control peer pid" in sup.stderr(), 60, what="a close logged")
        closes = [line for line in sup.stderr().splitlines() if "sent no whole request" in line]
        assert all("control peer pid %d closed: " % os.getpid() in c for c in closes), closes
        if not closes:
            assert "it was gone before it could be told apart" in sup.stderr(), sup.stderr()
    finally:
        sup.signal(15)
        assert sup.wait() == 0, sup.stderr()


# Connects as fast as it can and never sends anything, holding up to 500 connections:
# argv = socket path, seconds.
FLOOD = r"""
import socket, sys, time
held, end = [], time.time() + float(sys.argv[2])
print("flooding", flush=True)
while time.time() < end:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sys.argv[1])
        held.append(s)
    except OSError:
        time.sleep(0.001)
    if len(held) > 500:
        for s in held[:250]:
            s.close()
        held = held[250:]
"""


def test_status_and_stop_get_through_a_flood_of_idle_connections(tmp):
    # A new connection over the cap closed the oldest one that had sent nothing yet: a
    # client whose request the loop had not read yet counted as such, and under a flood
    # of connections about one `status` in two was closed unanswered.
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    floods = []
    try:
        sup.wait_ready()
        for _ in range(3):
            floods.append(subprocess.Popen([sys.executable, "-c", FLOOD, sup.control, "60"],
                                           stdout=subprocess.PIPE, text=True))
        for f in floods:
            assert f.stdout.readline().strip() == "flooding"
        wait_for(lambda: "closed to make room for a new connection" in sup.stderr(), 50,
                 what="the flood at the cap")
        for _ in range(20):
            r = sup.ctl("status")
            assert r.rc == 0, r
        r = sup.ctl("stop")
        assert r.rc == 0, r
        assert sup.wait(timeout=60) == 0, sup.stderr()
        err = sup.stderr()
        assert "closed to make room for a new connection" in err
        # Logged once a minute for each cause, not once a connection: the first close in
        # full, the rest counted in one line at the stop (room made, and the peers refused
        # when the supervisor's descriptors ran out while it looked at them).
        assert err.count("closed to make room for a new connection") == 1, err[-3000:]
        summaries = re.findall(r"warn: (\d+) more control connection\(s\) closed to make "
                               r"room for new ones in the last \d+\.\d s", err)
        assert len(summaries) <= 1, err[-3000:]
        warns = [l for l in err.splitlines() if " warn: " in l and "stalled for" not in l]
        assert len(warns) <= 6, err[-3000:]
    finally:
        for f in floods:
            f.kill()
            f.wait()
        if sup.proc.poll() is None:
            sup.signal(15)
            sup.wait()


def test_a_command_to_a_stopped_supervisor_with_a_full_backlog_times_out(tmp):
    # A supervisor stopped (SIGSTOP) or stalled while clients keep connecting: once its
    # listen backlog is full, a blocking connect waits for ever, and autopack-ctl hung
    # with it (a systemd ExecStop or a monitoring script with it) instead of giving up
    # after its 30 s like a command whose connection was taken.
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    held = []
    try:
        sup.wait_ready()
        sup.signal(signal.SIGSTOP)
        while len(held) < 1000:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(sup.control)
            except BlockingIOError:
                s.close()
                break
            held.append(s)
        assert len(held) < 1000, "the backlog never filled"
        start = time.monotonic()
        p = subprocess.run([binpath("autopack-ctl"), "--db", url, "status"],
                           capture_output=True, text=True, timeout=90)
        took = time.monotonic() - start
        assert p.returncode == 1, p
        assert "it accepted no connection within 30000 ms (its backlog of connections is " \
            "full" in p.stderr, p.stderr
        assert 29 < took < 60, took
        for s in held:
            s.close()
        sup.signal(signal.SIGCONT)
        r = sup.ctl("status")
        assert r.rc == 0, r
    finally:
        for s in held:
            s.close()
        sup.signal(signal.SIGCONT)
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_a_control_path_that_is_not_a_listening_socket_is_named_for_what_it_is(tmp):
    tmp = str(tmp)
    stale = os.path.join(tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)          # a socket file no process listens on
    s.close()
    plain = os.path.join(tmp, "plain")
    open(plain, "w").close()
    # An empty path is bad usage, exit 2 (test_offline_inputs.py).
    for path, says in ((plain, "at %s: it is a regular file, not a control socket" % plain),
                       (tmp, "at %s: it is a directory, not a control socket" % tmp),
                       (stale, "at %s: no process listens there" % stale)):
        r = subprocess.run([binpath("autopack-ctl"), "status", "--control", path],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and says in r.stderr, (path, r.returncode, r.stderr)


def test_a_control_socket_removed_while_the_supervisor_runs_is_made_again(tmp):
    # `rm` of the socket, or of its directory (a cleaner of /tmp or of the runtime
    # directory), left the supervisor running with no way for `status` or `stop` to reach
    # it (`No such file or directory`) until it was killed.
    url = new_db(tmp, runs=1, phases=1)
    ctl_dir = os.path.join(str(tmp), "ctl")
    os.mkdir(ctl_dir, 0o700)
    path = os.path.join(ctl_dir, "sup.sock")
    sup = Supervisor(tmp, url, "--workers", "0", control=path)
    try:
        sup.wait_ready()
        made = "control socket %s was removed by another program; made it again" % path
        os.unlink(path)
        wait_for(lambda: made in sup.stderr(), 30, what="the socket made again")
        assert sup.ctl("status").rc == 0
        # A name another file took is left alone, and said once.
        open(path + ".other", "w").close()
        os.rename(path + ".other", path)
        wait_for(lambda: "control socket %s: another file took its name" % path
                 in sup.stderr(), 30, what="the other file noticed")
        assert sup.ctl("status").rc == 1
        os.unlink(path)
        wait_for(lambda: sup.stderr().count(made) >= 2, 30, what="the socket made again")
        assert sup.ctl("status").rc == 0
        # Its directory gone: said once, and the socket is made again once it is back.
        os.unlink(path)
        os.rmdir(ctl_dir)
        wait_for(lambda: "control socket %s was removed, and cannot be made again" % path
                 in sup.stderr(), 30, what="the loss said")
        os.mkdir(ctl_dir, 0o700)
        wait_for(lambda: sup.stderr().count(made) >= 3, 30, what="the socket made again")
        assert sup.stderr().count("cannot be made again") == 1, sup.stderr()
        r = sup.ctl("stop")
        assert r.rc == 0, r
        assert sup.wait() == 0, sup.stderr()
        assert not os.path.exists(path)
    finally:
        sup.kill()


def answer_once(path, body):
    """Another program at a control socket: it answers one request ok, with `body`."""
    import threading
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        with c:
            n = struct.unpack(">I", c.recv(4, socket.MSG_WAITALL))[0]
            req = msgpack.unpackb(c.recv(n, socket.MSG_WAITALL))
            reply = msgpack.packb({"v": 1, "t": "reply", "id": req["id"], "ok": True,
                                   "db": "sqlite:////x.db", "uuid": "u", "dev": "1:1",
                                   "body": body, "more": False})
            c.sendall(struct.pack(">I", len(reply)) + reply)
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_a_reply_whose_body_is_no_json_object_is_refused(tmp):
    # It was read as an empty object: `status` showed a supervisor with nothing running
    # (`state: -`, `pid: 0`) and exited 0.
    for body, says in (('{"state": ', "unexpected token near end of file"),
                       ("[" * 5000 + "]" * 5000, "nesting deeper than 64"),
                       ("[1, 2]", "another JSON value")):
        path = os.path.join(str(tmp), "other.sock")
        t = answer_once(path, body)
        r = subprocess.run([binpath("autopack-ctl"), "status", "--control", path],
                           capture_output=True, text=True, timeout=60)
        t.join(30)
        os.unlink(path)
        assert r.returncode == 1, (body[:20], r.returncode, r.stdout, r.stderr)
        assert ("bad reply from the supervisor of sqlite:////x.db: its body is not a JSON "
                "object (%s" % says) in r.stderr, r.stderr
        assert r.stdout == "", r.stdout


@pytest.mark.parametrize("planted,what", [("dir", "a directory of uid 0, mode 0777"),
                                          ("file", "a regular file of uid 0, mode 0644")])
def test_a_runtime_directory_another_user_made_is_named_with_its_owner(planted, what):
    """Another user made /tmp/autopack-<uid> before this user's first supervisor (no
    /run/user/<uid>): it is refused, as the sockets and claims must be private, but the
    message said only that it was not a private directory, not whose it was nor what to
    do."""
    tmp = tempfile.mkdtemp(dir="/tmp", prefix="runtime-planted-")
    uid, as_user, exe = another_user(tmp)
    path = "/tmp/autopack-%d" % uid
    try:
        url = new_db(tmp, runs=1, phases=1)
        os.chmod(tmp, 0o755)
        subprocess.run(["chown", "-R", "%d:%d" % (uid, uid), tmp], check=True)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)  # another test's, as this user: gone with its supervisor
        if planted == "dir":
            os.mkdir(path)
            os.chmod(path, 0o777)
        else:
            with open(path, "w"):
                pass
            os.chmod(path, 0o644)
        env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
        p = subprocess.run(list(as_user) + [exe, "--db", url, "--dry-run", "--workers", "1",
                                            "--exit-when-drained"],
                           env=env, cwd=tmp, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p.stderr
        assert ("%s is not a private directory of uid %d (mode 0700): it is %s, which another"
                " user or program made there; remove it, or set XDG_RUNTIME_DIR to a"
                " directory of uid %d" % (path, uid, what, uid)) in p.stderr, p.stderr
    finally:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
        shutil.rmtree(tmp)


def test_status_shows_a_long_uptime_as_the_eta_reads(tmp):
    """`status` printed a supervisor's uptime in seconds, however long it ran (`uptime:
    266461.2s` three days into a drain); past a minute it reads as the ETA and a phase's
    age do (`3d02h`). The status is a real supervisor's, its uptime made longer."""
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run")
    try:
        sup.wait_ready()
        r = sup.ctl("status", "--json")
        assert r.rc == 0, r
        doc = json.loads(r.out)
        r = sup.ctl("status")
        assert r.rc == 0 and re.search(r"   uptime: \d+\.\ds\n", r.out), r
        assert sup.ctl("stop").rc == 0
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
    for seconds, shown in ((59.94, "59.9s"), (61, "1m01s"), (7384.6, "2h03m"),
                           (266461.2, "3d02h")):
        body = {k: v for k, v in doc.items() if k not in ("ok", "db_url", "db_uuid",
                                                          "db_device_inode")}
        body["uptime_seconds"] = seconds
        path = os.path.join(str(tmp), "other.sock")
        t = answer_once(path, json.dumps(body))
        r = subprocess.run([binpath("autopack-ctl"), "status", "--control", path],
                           capture_output=True, text=True, timeout=60)
        t.join(30)
        os.unlink(path)
        assert r.returncode == 0, (seconds, r.stderr)
        assert "   uptime: %s\n" % shown in r.stdout, (seconds, r.stdout)
