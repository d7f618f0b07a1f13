"""The worker's window of unacknowledged events, seen from a scripted supervisor on the
real autopack-worker's socket: the worker never has more events unacknowledged than its
--event-window; when the window is full it waits, saying so with a heartbeat that names
the seq it waits for; it sends its result right after its events and takes its next job
only once every event is acknowledged (a job sent before the acks is refused); an ack of
an event it never sent is refused."""
import os
import socket
import struct
import subprocess
import time

import msgpack

from conftest import binpath
from supervisor_helpers import Standin, wait_for

UUID = "6f1c2a5e-3b7d-4c1e-9a8f-2d4b6c8e0f12"
ATT = 41


class FakeSupervisor:
    """One end of a socketpair, the worker on the other."""

    def __init__(self, tmp, window, env=None):
        self.sock, theirs = socket.socketpair()
        self.sock.settimeout(60)
        self.err = open(os.path.join(str(tmp), "worker.err"), "w")
        self.proc = subprocess.Popen(
            [binpath("autopack-worker"), "--fd", str(theirs.fileno()), "--event-window",
             str(window)], pass_fds=(theirs.fileno(),), stderr=self.err,
            env=dict(os.environ, **(env or {})))
        theirs.close()
        self.buf = b""

    def send(self, msg):
        body = msgpack.packb(dict(msg, v=1), use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return msgpack.unpackb(body, raw=False)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def close(self):
        self.sock.close()
        rc = self.proc.wait(timeout=60)
        self.err.close()
        return rc


def job(tmp, llm_url, dry=False, att=ATT):
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws, exist_ok=True)
    return {"t": "job", "db": "sqlite:////nowhere/autopack.db", "uuid": UUID, "att": att,
            "run": "run-1", "phase": "p1",
            "p": {"name": "p1", "desc": "Write a.py.", "cat": "implementation",
                  "cplx": "low", "paths": ["a.py"], "ro": [], "dl": ["a.py"], "maxa": 0},
            "n": 1, "deadline": int(time.time() * 1000) + 300000, "cap": 64000,
            "llm": {"prov": "anthropic", "url": llm_url, "model": "m", "tmo": 30000,
                    "retries": 0},
            "est": {"ver": 1, "oh": []}, "ws": ws, "dry": dry}


def drive(sup, ack_when, att=ATT):
    """Play the supervisor for one job: ack the unacknowledged events when
    ack_when(unacked, frame) says so; return every frame, the unacked count each event
    found when it came, and the events still unacknowledged when the result came."""
    frames, seen_unacked, unacked = [], [], []
    while True:
        m = sup.recv()
        assert m is not None, "the worker closed its socket"
        frames.append(m)
        if m["t"] == "event":
            assert m["att"] == att and m["uuid"] == UUID
            seen_unacked.append(len(unacked))
            unacked.append(m["seq"])
        if m["t"] == "result":
            return frames, seen_unacked, unacked
        if unacked and ack_when(unacked, m):
            sup.send({"t": "ack", "att": att, "seq": unacked[-1]})
            unacked.clear()


def test_a_full_window_waits_for_an_ack_before_the_next_event(tmp):
    llm = Standin(tmp)
    sup = FakeSupervisor(tmp, 1, env={"ANTHROPIC_API_KEY": "k"})
    try:
        assert sup.recv()["t"] == "hello"
        sup.send(job(tmp, llm.url))
        # Ack only once the worker says it waits for its last event.
        frames, seen, left = drive(sup, lambda unacked, m: m["t"] == "heartbeat" and
                                   m.get("wait") == unacked[-1])
    finally:
        llm.stop()
    events = [m for m in frames if m["t"] == "event"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) >= 3  # a try, a token-estimation event, a log line
    # With a window of one, every event found the one before it acknowledged.
    assert seen == [0] * len(events)
    # Each event but the last waited for the one before it; the result follows the last
    # event without waiting.
    waits = [m["wait"] for m in frames if m["t"] == "heartbeat" and m.get("wait") is not None]
    assert waits == list(range(1, len(events)))
    assert left == [len(events)]
    result = frames[-1]
    assert result["outcome"] == "success" and result["seq"] == len(events)
    sup.send({"t": "ack", "att": ATT, "seq": len(events)})
    sup.send({"t": "shutdown"})
    assert sup.close() == 0


def test_the_next_job_may_come_before_the_acknowledgements_of_the_last(tmp):
    sup = FakeSupervisor(tmp, 64)
    assert sup.recv()["t"] == "hello"
    sup.send(job(tmp, "http://127.0.0.1:9", dry=True))
    # The window does not fill: the event goes out, and the result right after it.
    frames, seen, left = drive(sup, lambda unacked, m: False)
    kinds = [m["t"] for m in frames if m["t"] != "heartbeat" or m.get("wait") is not None]
    assert kinds == ["event", "result"]
    assert frames[-1]["outcome"] == "dry_run" and frames[-1]["seq"] == 1 and left == [1]
    # The ack and the next job in one write, as the supervisor sends them after a commit.
    sup.send({"t": "ack", "att": ATT, "seq": 1})
    sup.send(job(tmp, "http://127.0.0.1:9", dry=True, att=ATT + 1))
    frames, seen, left = drive(sup, lambda unacked, m: False, att=ATT + 1)
    assert frames[-1]["t"] == "result" and frames[-1]["att"] == ATT + 1 and left == [1]
    # A job opened ahead comes before that ack: the worker runs it at once, its events
    # numbered from 1 again; the late ack of the previous attempt is ignored.
    sup.send(job(tmp, "http://127.0.0.1:9", dry=True, att=ATT + 2))
    frames, seen, left = drive(sup, lambda unacked, m: False, att=ATT + 2)
    events = [m for m in frames if m["t"] == "event"]
    assert events and all(e["att"] == ATT + 2 for e in events) and events[0]["seq"] == 1
    assert frames[-1]["t"] == "result" and frames[-1]["att"] == ATT + 2
    sup.send({"t": "ack", "att": ATT + 1, "seq": 1})
    sup.send({"t": "ack", "att": ATT + 2, "seq": frames[-1]["seq"]})
    sup.send({"t": "shutdown"})
    assert sup.close() == 0


def test_an_ack_of_an_event_never_sent_is_refused(tmp):
    sup = FakeSupervisor(tmp, 64)
    assert sup.recv()["t"] == "hello"
    sup.send(job(tmp, "http://127.0.0.1:9", dry=True))
    while True:
        m = sup.recv()
        if m["t"] == "event":
            break
    sup.send({"t": "ack", "att": ATT, "seq": 5})
    while sup.recv() is not None:
        pass
    assert sup.close() == 1
    with open(os.path.join(str(tmp), "worker.err")) as f:
        assert "acknowledged event 5 of attempt 41, which was never sent" in f.read()


def test_a_worker_writes_no_deliverable_once_its_supervisor_cannot_be_told(tmp):
    # The supervisor stops reading its socket (shutdown for reading: the worker's reads
    # still wait as before, each of its writes fails) while the LLM call is under way. The
    # worker finds out at its next write (a heartbeat during the call, or the call's
    # events, which leave before the deliverables are written) and ends without writing
    # them: the supervisor could record nothing of them.
    received = os.path.join(str(tmp), "received")
    llm = Standin(tmp, [{"mode": "sleep", "seconds": 3}], "--received", received)
    sup = FakeSupervisor(tmp, 64, env={"ANTHROPIC_API_KEY": "k"})
    try:
        assert sup.recv()["t"] == "hello"
        sup.send(dict(job(tmp, llm.url), ann=1))
        while True:
            m = sup.recv()
            assert m is not None and m["t"] != "result", m
            if m["t"] == "event" and m["kind"] == "llm_request":
                break
        sup.sock.shutdown(socket.SHUT_RD)
        assert sup.proc.wait(timeout=60) == 0
    finally:
        llm.stop()
    wait_for(lambda: os.path.exists(received) and open(received).read().count("\n") == 1,
             30, what="the call's arrival at the stand-in")
    assert not os.path.exists(os.path.join(str(tmp), "ws", "a.py"))
    with open(os.path.join(str(tmp), "worker.err")) as f:
        assert "supervisor went away (Broken pipe); exiting" in f.read()
    sup.close()
