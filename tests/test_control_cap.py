"""A control client that asks and does not read is dropped before its replies fill the
supervisor's memory; the supervisor goes on serving everyone else."""
import os
import socket
import struct

import msgpack

from supervisor_helpers import Supervisor, new_db, wait_for


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
