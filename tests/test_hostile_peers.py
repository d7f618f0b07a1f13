"""Hostile peers of a running supervisor: HTTP clients sending what no browser or scraper
sends (a method of bytes that are no UTF-8, two Host lines, HTTP/0.9, NUL bytes, bodies and
100-continue on requests that take none, absolute-form URIs, escaped dots, queries of
thousands of arguments, requests too big to hold, a flood of connections under a low
`ulimit -n`), control clients sending malformed frames (or cut short) or arguments a
command does not take, workers naming attempts that are not theirs, and LLM providers
answering what no real one answers. Each is answered with an error naming what was wrong,
and the supervisor goes on serving and draining."""
import collections
import gzip
import http.client
import io
import json
import os
import re
import signal
import socket
import struct
import threading
import time
import urllib.parse
import zlib

import msgpack
import pytest

from supervisor_helpers import (KEY, ROGUE, Supervisor, new_db, rogue_notes, rogue_supervisor,
                                sql, wait_for)

H = b"Host: 127.0.0.1\r\n"


class RawAnswer:
    """Bytes a server sent, as a socket http.client can read one answer from."""
    def __init__(self, data):
        self.data = data

    def makefile(self, *args, **kw):
        return io.BytesIO(self.data)


def exchange(port, data, shut=False, timeout=30):
    """Send raw bytes to the server (then half-close when `shut`); what it sent back until
    it closed the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return out


def answer(raw):
    """(status, headers, body) of the first answer in raw bytes."""
    r = http.client.HTTPResponse(RawAnswer(raw))
    r.begin()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()


def serving(tmp, *args):
    sup = Supervisor(tmp, new_db(tmp, runs=1), "--workers", 0, "--http", "127.0.0.1:0", *args)
    base = sup.wait_ready()["http_url"]
    return sup, urllib.parse.urlsplit(base).port


def test_every_malformed_http_request_gets_an_answer_naming_what_was_wrong(tmp):
    """A method of bytes that are no UTF-8 had its 405 fail to build (JSON holds UTF-8
    only): the connection was closed with no answer and the log said "Application reported
    internal error". Two Host lines were answered from the first alone (a proxy before the
    server may have judged the request by the other). Each now gets its answer, and every
    other shape below keeps its own."""
    sup, port = serving(tmp)
    try:
        for method in (b"PO\xc3T", b"G\xffT", b"\xe2\x82\xac" * 11 + b"\xe2"):
            status, headers, body = answer(exchange(port, method + b" /healthz HTTP/1.1\r\n"
                                                    + H + b"\r\n"))
            doc = json.loads(body)
            assert status == 405 and doc["error"] == "method_not_allowed", (method, body)
            assert headers["allow"] == "GET, HEAD" and "\ufffd" in doc["message"], doc
        for hosts in ((b"127.0.0.1", b"attacker.example"), (b"attacker.example", b"127.0.0.1"),
                      (b"127.0.0.1", b"127.0.0.1")):
            status, _, body = answer(exchange(port, b"GET /api/status HTTP/1.1\r\n" + b"".join(
                b"Host: " + h + b"\r\n" for h in hosts) + b"\r\n"))
            assert status == 400, (hosts, status, body)
            assert json.loads(body) == {"ok": False, "error": "bad_request", "message":
                                        "the request names its Host 2 times; give it once"}
        cases = [
            # HTTP/0.9 (no version): refused, not served as a bare body.
            (b"GET /healthz\r\n\r\n", 400),
            (b"GET /hea\x00lthz HTTP/1.1\r\n" + H + b"\r\n", 404),
            # The absolute form names a host of its own: nothing is served under it.
            (b"GET http://127.0.0.1/api/status HTTP/1.1\r\n" + H + b"\r\n", 404),
            (b"GET http://attacker.example/metrics HTTP/1.1\r\n" + H + b"\r\n", 404),
            (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 404),
            (b"GET /metrics/../healthz HTTP/1.1\r\n" + H + b"\r\n", 404),
            (b"GET /metrics?" + b"a" * 100000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
            # A query of many arguments, which no path reads: libmicrohttpd took a record
            # for each out of the connection's memory, left no room for an answer, and the
            # connection hung unanswered until its timeout.
            (b"GET /metrics?" + b"a=1&" * 2000 + b" HTTP/1.1\r\n" + H + b"\r\n", 200),
            (b"GET /healthz?" + b"a&" * 10000 + b" HTTP/1.1\r\n" + H + b"\r\n", 200),
            (b"GET /healthz HTTP/1.1\r\n" + H + b"X-Big: " + b"y" * (1 << 20) + b"\r\n\r\n",
             431),
            (b"GET /healthz HTTP/1.1\r\n" + H + b"".join(b"X-%d: a\r\n" % i
                                                          for i in range(10000)) + b"\r\n", 431),
            (b"GET /healthz HTTP/2.0\r\n" + H + b"\r\n", 505),
            # libmicrohttpd's own answers to a Content-Length that is no number or past
            # 2^64, and to a Cookie header it has no room to take apart (16 KiB of it, or a
            # few hundred cookies): the status is right, though libmicrohttpd 0.9.75 sends
            # its status line and headers twice (docs/observe.md).
            (b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
            (b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: 1e3\r\n\r\n", 400),
            (b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: " + b"9" * 30 + b"\r\n\r\n",
             413),
            (b"GET / HTTP/1.1\r\n" + H + b"Cookie: " + b"; ".join(
                b"c%d=%s" % (i, b"v" * 400) for i in range(40)) + b"\r\n\r\n", 431),
            # A body the server never reads, announced or sent, on a request that takes none.
            (b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello", 200),
            (b"GET /healthz HTTP/1.1\r\n" + H + b"Content-Length: 99999999\r\n\r\nx", 200),
            (b"POST /healthz HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n"
             b"Content-Length: 100000000\r\n\r\n", 405),
            (b"POST /healthz HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\nffffffffffffffff\r\n", 405),
            (b"CONNECT attacker.example:443 HTTP/1.1\r\n" + H + b"\r\n", 405),
        ]
        for request, want in cases:
            raw = exchange(port, request)
            assert raw.startswith(b"HTTP/1.1 %d " % want), (request[:60], raw[:200])
            # No interim 100 Continue: the body of a refused request is never asked for.
            assert b"100 Continue" not in raw, raw[:200]
        # A request line whose parts are split by tabs, or that starts with a space, is
        # closed unanswered by libmicrohttpd.
        for request in (b"GET\t/healthz\tHTTP/1.1\r\n" + H + b"\r\n",
                        b" GET /healthz HTTP/1.1\r\n" + H + b"\r\n"):
            assert exchange(port, request) == b"", request
        # Two requests in one write: the first is answered and the connection closed
        # (every answer says Connection: close), the second is not read.
        raw = exchange(port, (b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n") * 2)
        assert raw.count(b"HTTP/1.1 200") == 1 and b"connection: close" in raw.lower(), raw
        # A client that half-closes after its request still gets its answer.
        status, _, body = answer(exchange(port, b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n",
                                          shut=True))
        assert status == 200 and json.loads(body)["status"] == "ok", body
        # Clients that ask for the metrics and never read them hold up nobody.
        deaf = []
        for _ in range(20):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /metrics HTTP/1.1\r\n" + H + b"\r\n")
            deaf.append(s)
        t0 = time.monotonic()
        status, _, body = answer(exchange(port, b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n"))
        assert status == 200 and time.monotonic() - t0 < 10, status
        assert sup.ctl("status", "--json").rc == 0
        for s in deaf:
            s.close()
        assert sup.proc.poll() is None
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    err = sup.stderr()
    assert "Application reported internal error" not in err, err


def frame(obj=None, raw=None):
    body = raw if raw is not None else msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def control_exchange(path, data):
    """Send bytes on a new control connection; the replies read until the supervisor
    closes it (or 5 s pass), decoded."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    out = b""
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        out += b""
    finally:
        s.close()
    replies = []
    while len(out) >= 4:
        n = struct.unpack(">I", out[:4])[0]
        replies.append(msgpack.unpackb(out[4:4 + n], raw=False))
        out = out[4 + n:]
    return replies


REQ = {"v": 1, "t": "request", "id": 7, "cmd": "status", "args": []}


def test_a_malformed_control_frame_is_answered_with_what_was_wrong_before_the_close(tmp):
    """A control client whose frame was malformed, or no request, was disconnected without
    a word: the reason was in the supervisor's log only. It is now told, in a reply of
    code bad_request naming the field and the fault, and then disconnected; a command given
    arguments it does not take (`pause x`, `status a b`) or two worker counts (`scale 1 2
    3`, which scaled to 3) is refused naming them, the connection kept."""
    sup, _ = serving(tmp)
    path = sup.control
    try:
        bad = [
            (frame(dict(REQ, id="x")), "request.id: expected integer, got string"),
            (frame(dict(REQ, id=-1)), "request.id: integer -1 out of range"),
            (frame(dict(REQ, cmd=5)), "request.cmd: expected string, got integer"),
            (frame(dict(REQ, args="x")), "request.args: expected array, got string"),
            (frame(dict(REQ, args=[1])), "request.args[0]: expected string, got integer"),
            (frame(dict(REQ, v=2)), "v: protocol version 2, expected 1"),
            (frame(dict(REQ, x=json.loads("[" * 40 + "]" * 40))), "nesting deeper than"),
            (frame(raw=b"\x91" * 100000), "frame: expected a map, got array"),
            (frame(raw=b"\x81\xa1a" * 50000 + b"\xc0"), "nesting deeper than"),
            (struct.pack(">I", 0xffffffff) + b"\x80",
             "frame: declared length 4294967295 exceeds limit 1048576"),
            (struct.pack(">I", 0), "frame: empty, expected a map"),
            (frame({"v": 1, "t": "heartbeat", "uuid": "", "att": 0}),
             "it sent a heartbeat message, not a request"),
            # A good request, then a bad one: the first answered, then the refusal.
            (frame(REQ) + frame(dict(REQ, cmd=5)), "request.cmd: expected string"),
        ]
        for data, why in bad:
            replies = control_exchange(path, data)
            assert replies and replies[-1]["ok"] is False, (why, replies)
            assert replies[-1]["code"] == "bad_request", replies
            assert replies[-1]["msg"].startswith("request refused, connection closed: "), replies
            assert why in replies[-1]["msg"], (why, replies[-1]["msg"])
            assert replies[-1]["uuid"] == sup.status()["db_uuid"]
            assert len(replies) == 1 + (data.startswith(frame(REQ))), replies
        # Arguments a command does not take: refused on a connection that stays open.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(path)
        try:
            for cmd, args, msg in (
                    ("pause", ["x\ny"], 'pause takes no argument, not "x\\ny"'),
                    ("resume", ["now"], 'resume takes no argument, not "now"'),
                    ("status", ["a", "b"], 'status takes no argument, not "a" and more'),
                    ("workers", ["--all"], 'workers takes no argument, not "--all"'),
                    ("metrics", [""], 'metrics takes no argument, not ""'),
                    ("scale", ["1", "2", "3"], 'scale: give one worker count, not 1 and "2"'),
                    ("scale", ["0", "--force", "0"],
                     'scale: give one worker count, not 0 and "0"')):
                s.sendall(frame(dict(REQ, cmd=cmd, args=args)))
                n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
                r = msgpack.unpackb(s.recv(n, socket.MSG_WAITALL), raw=False)
                assert (r["ok"], r["code"], r["msg"]) == (False, "bad_argument", msg), r
        finally:
            s.close()
        st = sup.status()
        assert st["paused"] is False and st["pool"]["target"] == 0, st
        # The peer's drops are logged (the first in full, the next ones within its second
        # counted), and the supervisor serves on.
        assert "dropped: request.id: expected integer, got string" in sup.stderr()
        assert sup.ctl("scale", "0").rc == 0
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_a_control_frame_cut_short_by_a_half_close_is_answered_with_how_much_came(tmp):
    """A control client that wrote part of a frame (some bytes of its length, or a length
    and part of the map) and then half-closed its socket, still reading, was closed without
    a word, and nothing was logged: a script that got its length prefix wrong waited for
    an answer that never came. It is now told, in a reply of code bad_request naming how
    much of the frame came, as any malformed frame is, and the drop is logged; a whole
    request followed by a half-close is still answered."""
    sup, _ = serving(tmp)
    path = sup.control
    whole = frame(REQ)
    try:
        for data, why in (
                (b"\x00", "1 of the 4 bytes of its length came"),
                (whole[:3], "3 of the 4 bytes of its length came"),
                (whole[:4], "0 of its %d bytes came" % (len(whole) - 4)),
                (whole[:-3], "%d of its %d bytes came" % (len(whole) - 7, len(whole) - 4)),
                (whole + whole[:6], "2 of its %d bytes came" % (len(whole) - 4))):
            replies = control_exchange_shut(path, data)
            assert len(replies) == 1 + (data.startswith(whole)), (data, replies)
            if data.startswith(whole):
                assert replies[0]["ok"] is True, replies
            r = replies[-1]
            assert (r["ok"], r["code"]) == (False, "bad_request"), (data, r)
            assert r["msg"] == ("request refused, connection closed: frame: cut short by "
                                "the end of the stream: " + why), r
            assert r["uuid"] == sup.status()["db_uuid"]
        # A whole request and a half-close: answered, and nothing refused.
        replies = control_exchange_shut(path, whole)
        assert [r["ok"] for r in replies] == [True], replies
        assert "dropped: frame: cut short by the end of the stream: 1 of the 4 bytes" in \
            sup.stderr()
        assert sup.ctl("status", "--json").rc == 0
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def control_exchange_shut(path, data):
    """Send bytes on a new control connection and half-close it; the replies read until
    the supervisor closes it, decoded."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    out = b""
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    replies = []
    while len(out) >= 4:
        n = struct.unpack(">I", out[:4])[0]
        replies.append(msgpack.unpackb(out[4:4 + n], raw=False))
        out = out[4 + n:]
    return replies


def test_a_worker_naming_another_workers_attempt_or_writing_after_its_result_changes_nothing(
        tmp):
    """Two workers each hold an attempt; each then sends, for every other attempt id (the
    other's, in flight, among them), a usage event and a failed result, and after its own
    result a usage event more. None of these is taken: every attempt ends with its own
    worker's result, and the database holds each worker's own event only."""
    url = new_db(tmp, runs=2, phases=2)
    go = os.path.join(str(tmp), "go")
    sup = rogue_supervisor(tmp, url, "thief", "--workers", 2, env={"ROGUE_GO": go})
    try:
        wait_for(lambda: len(rogue_notes(tmp, event="job")) == 2, what="both workers leased")
        open(go, "w").close()
        st = wait_for(lambda: (lambda s: s if s["phases"].get("COMPLETE") == 4 and
                               s["writer_queue_writes"] == 0 else None)(sup.status()),
                      what="the four phases complete")
        wait_for(lambda: sup.status()["counters"]["rejected_stale"] >= 4 * 7,
                 what="every stolen and late message rejected")
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("success", 4)]
    rows = sql(url, "SELECT a.attempt_id, u.model, u.seq FROM attempts a JOIN"
               " llm_usage_events u ON u.attempt_id = a.attempt_id ORDER BY 1")
    assert [r[1:] for r in rows] == [("m", 1)] * 4, rows
    assert sql(url, "SELECT count(*) FROM phases WHERE state != 'COMPLETE'") == [(0,)]
    assert "is not its current attempt" in sup.stderr(), st


def test_a_flood_of_http_connections_under_a_low_file_limit_leaves_control_and_workers_theirs(
        tmp):
    """Under `ulimit -n 64`, a client opening connections as fast as it can had the HTTP
    server take every descriptor the supervisor could open (128 connections allowed, two
    descriptors each): `autopack-ctl status` got "the supervisor closed the connection",
    `scale 3` a broken pipe and no worker more, and /healthz no answer. The server now
    takes at most a quarter of the descriptors (8 connections here, said in the log), and
    a new connection closes one that sent nothing: status, scale and /healthz are served
    throughout, and the drain completes."""
    url = new_db(tmp, runs=4, phases=2)
    go = os.path.join(str(tmp), "go")
    sup = Supervisor(tmp, url, "--workers", 1, "--worker", ROGUE, "--http", "127.0.0.1:0",
                     env={"ROGUE_MODE": "good", "ROGUE_GO": go},
                     prefix=("prlimit", "--nofile=64:64", "--"))
    stop = threading.Event()
    made = [0]

    def flood(port):
        held = collections.deque()
        end = time.monotonic() + 120
        i = 0
        while not stop.is_set() and time.monotonic() < end:
            s = socket.socket()
            s.settimeout(2)
            try:
                s.bind(("127.0.%d.%d" % (1 + i // 250 % 200, 2 + i % 250), 0))
                s.connect(("127.0.0.1", port))
                held.append(s)
                made[0] += 1
            except OSError:
                s.close()
            i += 1
            while len(held) > 300:
                held.popleft().close()
        for s in held:
            s.close()

    try:
        port = urllib.parse.urlsplit(sup.wait_ready()["http_url"]).port
        t = threading.Thread(target=flood, args=(port,))
        t.start()
        try:
            wait_for(lambda: made[0] >= 1000, what="a thousand connections made")
            r = sup.ctl("status", "--json")
            assert r.rc == 0, r
            assert sup.ctl("scale", "3").rc == 0
            wait_for(lambda: sup.status()["pool"]["live"] == 3, what="three workers live")
            status, _, body = answer(exchange(port, b"GET /healthz HTTP/1.1\r\n" + H +
                                              b"\r\n"))
            assert status == 200 and json.loads(body)["status"] == "ok", body
        finally:
            stop.set()
            t.join()
        open(go, "w").close()
        wait_for(lambda: sup.status()["phases"].get("COMPLETE") == 8, 120,
                 what="the drain complete")
    finally:
        stop.set()
        open(go, "w").close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    assert ("http: at most 8 connection(s) at once, not 128: each takes 2 of the 64 open "
            "files this process may have (ulimit -n)") in sup.stderr()
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("success", 8)]


def gzip_of_zeros(mib):
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(co.compress(b"\0" * (1 << 20)) for _ in range(mib)) + co.flush()


ANSWER = json.dumps({"id": "m", "type": "message", "role": "assistant", "model": "m",
                     "content": [{"type": "text", "text": "{\"files\": []}"}],
                     "stop_reason": "end_turn",
                     "usage": {"input_tokens": 5, "output_tokens": 7}}).encode()
PROVIDER_ANSWERS = {
    # A header line of 1 MiB: libcurl says "Out of memory", which alone sent the operator
    # looking at the worker's memory.
    "header_line_of_a_mib": (b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * (1 << 20) + b"\r\n\r\n",
                             "Out of memory (or a response header line over libcurl's "
                             "100 KiB)"),
    "headers_of_a_mib": (b"HTTP/1.1 200 OK\r\n" + b"X-A: a\r\n" * 150000 + b"\r\n",
                         "Too large response headers"),
    "endless_100_continue": (b"HTTP/1.1 100 Continue\r\n\r\n" * 40000,
                             "Too large response headers"),
    "content_length_longer_than_the_body": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
        b"Connection: close\r\n\r\n" + ANSWER[:40],
        "transfer closed with 99960 bytes remaining to read"),
    "chunked_answer_cut_mid_json": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n3c\r\n" + ANSWER[:60] + b"\r\n",
        "transfer closed with outstanding read data remaining"),
    "gzip_bomb": (None, "response body over 8388608 bytes"),
    "gzip_that_is_not": (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10"
                         b"\r\n\r\n0123456789",
                         "Error while processing content unencoding"),
    "gzip_ten_times": (None, "Reject response due to more than 5 content encodings"),
    "http_0_9": (ANSWER, "Received HTTP/0.9 when not allowed"),
    # A proxy's error with no body: the message ended "HTTP 502: ", naming nothing after.
    "bad_gateway_with_an_empty_body": (
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "/v1/messages: HTTP 502, with an empty body"),
    "error_object_with_200": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        + json.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                  "message": "Overloaded"}}).encode(),
        'response has no "content" array'),
}


def provider_bytes(case):
    if case == "gzip_bomb":
        body = gzip_of_zeros(64)
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip"
                b"\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    if case == "gzip_ten_times":
        body = ANSWER
        for _ in range(10):
            body = gzip.compress(body)
        return (b"HTTP/1.1 200 OK\r\nContent-Encoding: " + b", ".join([b"gzip"] * 10) +
                b"\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    return PROVIDER_ANSWERS[case][0]


class RawProvider:
    """A server on a loopback port answering every request with the same bytes, then
    closing the connection."""
    def __init__(self, data):
        self.data = data
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        while not self.done.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            c.settimeout(10)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                c.sendall(self.data)
            except OSError:
                pass
            finally:
                c.close()

    def stop(self):
        self.done.set()
        self.thread.join()
        self.sock.close()


def drain_answered_by(tmp, data, provider_name="anthropic"):
    """Drain one phase whose every call a RawProvider answers with `data` (an Anthropic or
    an OpenAI-compatible base URL), one try; return (url, the supervisor, the attempt's
    (outcome, failure_reason, message) rows). Nothing of the key may be logged or stored."""
    url = new_db(tmp, runs=1, phases=1)
    provider = RawProvider(data)
    base = "http://127.0.0.1:%d" % provider.port + ("/v1" if provider_name == "openai" else "")
    var = "OPENAI_API_KEY" if provider_name == "openai" else "ANTHROPIC_API_KEY"
    sup = Supervisor(tmp, url, "--workers", 1, "--llm-provider", provider_name,
                     "--llm-base-url", base, "--llm-retries", 0, "--max-attempts-per-phase", 1,
                     "--exit-when-drained", env={var: KEY})
    try:
        assert sup.wait() in (0, 5), sup.stderr()
    finally:
        provider.stop()
    rows = sql(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert KEY not in sup.stderr() + sup.stdout() + repr(rows)
    return url, sup, rows


@pytest.mark.parametrize("case", sorted(PROVIDER_ANSWERS))
def test_a_provider_answer_no_real_provider_sends_fails_the_call_naming_what_was_wrong(tmp, case):
    """Answers a broken or hostile provider (or what stands between) could send: each
    fails its call with libcurl's or the parser's words for what was wrong, the worker's
    memory bounded (a gzip bomb of 64 MiB stops at the 8 MiB cap), nothing of the key in
    a log or a row."""
    url, sup, rows = drain_answered_by(tmp, provider_bytes(case))
    assert len(rows) == 1 and rows[0][:2] == ("failed", "PROVIDER_ERROR"), rows
    assert PROVIDER_ANSWERS[case][1] in rows[0][2], rows
    assert sql(url, "SELECT status FROM llm_usage_events") == [("error",)]


def http_json(doc):
    body = json.dumps(doc).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body)) + body


def chat_answer(message, finish):
    return http_json({"id": "c", "object": "chat.completion", "choices": [
        {"index": 0, "message": dict(role="assistant", **message), "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})


def message_answer(content, stop):
    return http_json({"id": "m", "type": "message", "role": "assistant", "model": "m",
                      "content": content, "stop_reason": stop,
                      "usage": {"input_tokens": 5, "output_tokens": 7}})


TEXTLESS_ANSWERS = {
    "openai_refusal": ("openai", chat_answer(
        {"content": None, "refusal": "I can't help with that, " + KEY}, "stop"),
        'the answer holds no text (finish_reason "stop"): the model refused: "I can\'t help '
        'with that, [redacted]"'),
    "openai_tool_calls": ("openai", chat_answer(
        {"content": None, "tool_calls": [{"id": "t", "type": "function", "function": {
            "name": "write_file", "arguments": "{}"}}] * 2}, "tool_calls"),
        'the answer holds no text (finish_reason "tool_calls"): its message holds 2 tool '
        'calls and no text'),
    "openai_content_filter": ("openai", chat_answer({"content": ""}, "content_filter"),
                              'the answer holds no text (finish_reason "content_filter")'),
    "anthropic_refusal": ("anthropic", message_answer([], "refusal"),
                          'the answer holds no text (stop_reason "refusal"): its content '
                          'holds no block'),
    "anthropic_tool_use": ("anthropic", message_answer(
        [{"type": "thinking", "thinking": "…", "signature": "s"},
         {"type": "tool_use", "id": "t", "name": "write_file", "input": {}},
         {"type": "tool_use", "id": "u", "name": "write_file", "input": {}}], "tool_use"),
        'the answer holds no text (stop_reason "tool_use"): its content holds a thinking '
        'block, a tool_use block and no text'),
}


@pytest.mark.parametrize("case", sorted(TEXTLESS_ANSWERS))
def test_an_answer_without_text_fails_naming_what_it_holds_instead(tmp, case):
    """A refusal, tool calls or a content filter's empty answer failed PARSE_FAILED as `no
    JSON document with "files" found in the response (0 bytes)`, naming neither the stop
    reason nor the refusal. The message says the answer holds no text, its stop reason,
    and what it holds instead (the refusal with the key masked, the tool calls, the
    blocks' types); the tokens the provider counted are recorded."""
    provider_name, data, message = TEXTLESS_ANSWERS[case]
    url, sup, rows = drain_answered_by(tmp, data, provider_name)
    assert rows == [("failed", "PARSE_FAILED", message)], rows
    assert sql(url, "SELECT status, total_tokens FROM llm_usage_events") == [("ok", 12)]


def test_an_answer_cut_at_the_models_context_window_is_truncated_and_not_called_again(tmp):
    """An answer Anthropic cut at the model's context window (stop_reason
    model_context_window_exceeded, the prompt and the answer filling it) was taken as
    whole: PARSE_FAILED, whose advice is to retry, and its telemetry said it was not
    truncated. It is OUTPUT_TRUNCATED (split the phase), recorded as truncated, and no
    second call with a larger max_tokens, which gives no more, is paid for."""
    cut = '{"files": [{"path": "out/run-000_p0-0.py", "mode": "create", "new_content": "x'
    url, sup, rows = drain_answered_by(tmp, message_answer([{"type": "text", "text": cut}],
                                                           "model_context_window_exceeded"))
    assert len(rows) == 1 and rows[0][:2] == ("failed", "OUTPUT_TRUNCATED"), rows
    assert re.fullmatch(
        r"output truncated at the model's context window \(model_context_window_exceeded; "
        r"max_tokens \d+\): the answer's JSON is invalid at byte \d+ of the response "
        r"\(\d+ bytes\): it ends inside the document", rows[0][2]), rows
    assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(1,)]
    assert sql(url, "SELECT success, truncated, stop_reason FROM token_estimation_v2_events") \
        == [(0, 1, "model_context_window_exceeded")]


NOT_JSON_ANSWERS = {
    "html_page": (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                  b"Content-Length: 40\r\nConnection: close\r\n\r\n"
                  b"<html><body>Login required</body></html>",
                  "response is not a JSON object (40 bytes): '[' or '{' expected near '<' "
                  "(Content-Type text/html; charset=utf-8)"),
    "event_stream": (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Content-Length: 36\r\nConnection: close\r\n\r\n"
                     b'event: ping\ndata: {"type": "ping"}\n\n',
                     "response is not a JSON object (36 bytes): '[' or '{' expected near "
                     "'event' (Content-Type text/event-stream)"),
    # After a 100 Continue, the last answer's type; one that echoes the key, masked.
    "echoing_type": (b"HTTP/1.1 100 Continue\r\nContent-Type: text/x-first\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; k=" + KEY.encode() +
                     b"\x01\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
                     "response is not a JSON object (2 bytes): '[' or '{' expected near 'no' "
                     "(Content-Type text/plain; k=[redacted]?)"),
    # JSON of another type: its body is what is wrong, not its label.
    "json_labelled_text": (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                           'response has no "content" array'),
}


@pytest.mark.parametrize("case", sorted(NOT_JSON_ANSWERS))
def test_an_answer_that_is_no_json_names_its_content_type(tmp, case):
    """A base URL pointing at a web server (a model's web interface, a proxy's login
    page) or a server streaming events unasked answered 200 with a body that is no JSON:
    the message said only `'[' or '{' expected near '<'`. It names the answer's
    Content-Type too, masked and cut as any text the provider sends."""
    data, message = NOT_JSON_ANSWERS[case]
    url, sup, rows = drain_answered_by(tmp, data)
    assert len(rows) == 1 and rows[0][:2] == ("failed", "PROVIDER_ERROR"), rows
    assert rows[0][2].endswith("/v1/messages: " + message), rows


def test_a_flood_of_control_connections_under_a_low_file_limit_leaves_status_and_scale_theirs(
        tmp):
    """Under `ulimit -n 64`, a process of the user opening control connections as fast as
    it can (up to 200 held) used every descriptor the supervisor could open, 64 being
    allowed: `autopack-ctl scale 3` got "the supervisor closed the connection" (it could
    not read the peer's /proc) and `status` a broken pipe. The connections now take at most
    an eighth of the descriptors (8 here, said in the log), and every command gets
    through."""
    url = new_db(tmp, runs=4, phases=2)
    go = os.path.join(str(tmp), "go")
    sup = Supervisor(tmp, url, "--workers", 1, "--worker", ROGUE,
                     env={"ROGUE_MODE": "good", "ROGUE_GO": go},
                     prefix=("prlimit", "--nofile=64:64", "--"))
    stop = threading.Event()
    made = [0]

    def flood():
        held = collections.deque()
        end = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < end:
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            try:
                s.connect(sup.control)
                held.append(s)
                made[0] += 1
            except OSError:
                s.close()
                time.sleep(0.001)
            while len(held) > 200:
                held.popleft().close()
        for s in held:
            s.close()

    try:
        sup.wait_ready()
        t = threading.Thread(target=flood)
        t.start()
        try:
            wait_for(lambda: made[0] >= 1000, what="a thousand connections made")
            for _ in range(3):
                r = sup.ctl("scale", "3")
                assert r.rc == 0, r
                r = sup.ctl("status", "--json")
                assert r.rc == 0, r
            wait_for(lambda: sup.status()["pool"]["live"] == 3, what="three workers live")
        finally:
            stop.set()
            t.join()
        open(go, "w").close()
        wait_for(lambda: sup.status()["phases"].get("COMPLETE") == 8, 120,
                 what="the drain complete")
    finally:
        stop.set()
        open(go, "w").close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    assert ("control socket: at most 8 connection(s) at once, not 64: the connections take "
            "an eighth of the open files this process may have (ulimit -n)") in sup.stderr()
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("success", 8)]


def drop_lines(err, detail, summary):
    """(lines logged, drops counted) for one cause in a supervisor's log: its lines in full
    (containing `detail`) and its summaries ("N more <summary> in the last X s")."""
    lines = [l for l in err.splitlines() if detail in l]
    sums = [int(m.group(1)) for m in re.finditer(
        r"warn: (\d+) more " + re.escape(summary) + r" in the last \d+\.\d s", err)]
    return len(lines) + len(sums), len(lines) + sum(sums)


def test_a_flood_of_dropped_connections_logs_a_line_a_second_per_cause_and_counts_every_one(
        tmp):
    """Each control connection dropped for a malformed frame, and each message of the HTTP
    server about a bad request, was logged in a line of its own (control: a flood of
    connections flooded the log and the journal) or, past 10 a minute, dropped without a
    count (HTTP: the rest of the minute was never told). Each cause now logs at most one
    line a second, the first drop in full and then "N more ... in the last X s", and the
    lines count every drop, also those of the last second before the stop."""
    sup, port = serving(tmp)
    n = 0
    try:
        start = time.monotonic()
        # Over three seconds, so that each cause logs in several seconds.
        while n < 300 or time.monotonic() - start < 3.5:
            replies = control_exchange(sup.control, frame(dict(REQ, cmd=5)))
            assert replies and replies[-1]["code"] == "bad_request", replies
            raw = exchange(port, b"GET /healthz HTTP/1.1\r\n" + H + b"Foo\r\n\r\n")
            assert answer(raw)[0] == 400, raw
            n += 1
        took = time.monotonic() - start
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    err = sup.stderr()
    # libmicrohttpd says one thing of each request: the 400 it sent for a header line
    # without a colon.
    for detail, summary, each in (
            ("dropped: request.cmd: expected string, got integer",
             "control connection(s) dropped for a malformed frame", 1),
            ("] warn: http: ", "message(s) from the HTTP server", 1)):
        lines, drops = drop_lines(err, detail, summary)
        assert drops == n * each, (detail, lines, drops, n, err[-3000:])
        assert 3 <= lines <= took + 2, (detail, lines, took, err[-3000:])
