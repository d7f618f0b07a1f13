#!/usr/bin/python3
"""A hostile worker for protocol tests: started by the supervisor in place of
autopack-worker (--worker), it speaks the real wire format on fd 3 and misbehaves as
ROGUE_MODE says:

  abuse    for each job: an event naming another database, an event for another attempt,
           a valid event, the same event again, then a success result
  garbage  sends bytes that are not a frame after its hello
  silent   takes a job and then sends nothing at all
  hang     takes a job and sends heartbeats for it, but never a result
  exit     exits with status 3 right after its hello
"""
import os
import struct
import sys
import time

import msgpack

sock = os.fdopen(3, "r+b", buffering=0)
mode = os.environ.get("ROGUE_MODE", "abuse")


def send(msg):
    body = msgpack.packb(dict(msg, v=1), use_bin_type=True)
    sock.write(struct.pack(">I", len(body)) + body)


def recv():
    hdr = b""
    while len(hdr) < 4:
        chunk = sock.read(4 - len(hdr))
        if not chunk:
            sys.exit(0)
        hdr += chunk
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n:
        chunk = sock.read(n - len(body))
        if not chunk:
            sys.exit(0)
        body += chunk
    return msgpack.unpackb(body, raw=False)


def usage(uuid, att, seq):
    return {"t": "event", "uuid": uuid, "att": att, "seq": seq, "kind": "llm_usage",
            "body": {"prov": "anthropic", "model": "m", "role": "builder", "in": 10,
                     "out": 20, "total": 30, "lat": 5, "http": 200, "try": 1}}


send({"t": "hello", "pid": os.getpid(), "sw": "0.1.0"})
if mode == "exit":
    sys.exit(3)
if mode == "garbage":
    sock.write(b"\x00\x00\x00\x03\xc1\xc1\xc1")
    time.sleep(30)
while True:
    m = recv()
    if m["t"] == "shutdown":
        sys.exit(0)
    if m["t"] != "job":
        continue
    uuid, att = m["uuid"], m["att"]
    if mode == "silent":
        time.sleep(3600)
    while mode == "hang":
        send({"t": "heartbeat", "uuid": uuid, "att": att})
        time.sleep(0.3)
    send(usage("00000000-0000-4000-8000-000000000000", att, 1))
    send(usage(uuid, att + 1000, 1))
    send(usage(uuid, att, 1))
    send(usage(uuid, att, 1))
    send({"t": "result", "uuid": uuid, "att": att, "seq": 1, "outcome": "success",
          "llm": False, "dur": 1})
