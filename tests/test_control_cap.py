"""A control client that asks and does not read is dropped before its replies fill the
supervisor's memory; many clients asking as fast as they can neither stall the drain nor
grow the supervisor's memory; connections over the cap are refused with a reply."""
import os
import socket
import struct
import subprocess
import sys

import msgpack

from supervisor_helpers import Supervisor, new_db, sql, wait_for
from conftest import ctl

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


def test_connections_over_the_cap_are_refused_with_a_reply_and_logged_once(tmp):
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    held = []
    try:
        sup.wait_ready()
        for _ in range(64 + 5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sup.control)
            held.append(s)
        # The 64 first are served (each answers); the others were told why and closed.
        wait_for(lambda: "refused" in sup.stderr(), 30, what="the refusal logged")
        r = sup.ctl("status")
        assert r.rc != 0
        assert "too_many_connections" in r.err and "64 control connections" in r.err, r
        err = sup.stderr()
        assert err.count("refused: the supervisor already serves 64") == 1, err
        for s in held:
            s.close()
        held = []
        wait_for(lambda: sup.ctl("status").rc == 0, 30, what="status served again")
        wait_for(lambda: "were refused meanwhile" in sup.stderr(), 30,
                 what="the burst summed up")
        assert "6 were refused meanwhile" in sup.stderr(), sup.stderr()
    finally:
        for s in held:
            s.close()
        sup.signal(15)
        assert sup.wait() == 0, sup.stderr()
