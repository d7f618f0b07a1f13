#!/usr/bin/python3
"""A scripted worker for protocol tests: started by the supervisor in place of
autopack-worker (--worker), it hands the supervisor a socket of its own on fd 3
(--handoff-fd 3, proto/hand.h), speaks the real wire format on it and behaves as
ROGUE_MODE says:

  abuse      for each job: an event naming another database, an event for another
             attempt, a valid event, the same event again, then a success result
  good       for each job: (once ROGUE_GO exists, if set, and after ROGUE_DELAY seconds,
             if set) one valid event, then a success result
  fail       for each job: (once ROGUE_GO exists, if set, and after ROGUE_DELAY seconds,
             if set) one valid event, then a failed result with the fingerprint
             "fp RUN/PHASE" (one fingerprint per phase)
  garbage    sends bytes that are not a frame after its hello
  silent     takes a job and then sends nothing at all
  hang       takes a job and sends heartbeats for it, but never a result
  hang_term  as hang, and ignores SIGTERM (writes "term <pid>" to ROGUE_LOG when one comes)
  gap        for each job: events seq 1 and 3 (not 2), then a success result whose final
             seq is 4
  dup401     for each job: a usage event seq 1 (HTTP 200), the same seq again saying
             HTTP 401, then a success result
  skips      for each job: a usage event seq 1, the same again, a log event seq 2 saying
             ROGUE_SKIP_MSG, a log event seq 1 (another event under a taken key), then a
             success result whose final seq is 2
  key401     for each job: a usage event saying HTTP 401 from the provider named in
             ROGUE_PROVIDER (default anthropic), then a failed result
  models     for each job: usage events of 205 models m0..m204, then 5 more of m0, then a
             success result
  late       for each job: one valid event, then heartbeats (SIGTERM held back) until
             the supervisor's cancel of the attempt comes (or, with ROGUE_GO set, until
             that file exists, then events seq 2..4 in one write, which the supervisor
             reads at once and commits in one group, until the database holds them); then
             a result as ROGUE_OUTCOME says (success, the default, or failed), as a worker
             that ended its attempt just before the cancel reached it would have sent,
             noted {"event": "result"}; a SIGTERM held back then ends it
  exit       exits with status 3 right after its hello
  deaf       as good, but a shutdown does not end it (noted {"event": "shutdown",
             "reason": ...}) and it ignores SIGTERM (noted {"event": "term"}): a worker
             stuck, or hostile, that the supervisor has to kill
  crash      takes a job and dies of SIGKILL while holding it
  batch      for each job: events seq 1..3, then an event for another attempt (a fence
             the test can see in the stale counter), then heartbeats until the file
             ROGUE_GO exists, then a success result, noted {"event": "result"} once sent
  ackcheck   for each job: (once ROGUE_GO exists, if set) events seq 1..3, then waits for acks until seq 3 is acked; at
             each ack it reads the database named in the job (read-only) and writes
             {"ack": seq, "rows": [seqs of the attempt's rows]} to ROGUE_LOG; then a
             success result
  traced     as good, but a child of its own traces it (PTRACE_SEIZE) from before it
             hands its socket over, as a process of its user that attached while it
             started would
  impostor   a child of its own makes the socket pair and hands one end over in its
             name, as a process of its user that duplicated its fd 3 would
  announce   for each job: the announcement of try 1 of its first call (seq 1); once the
             database holds it, what comes within a second ({"event": "unasked", "t":
             [types]}); then a heartbeat waiting for seq 1 and the ack that answers it
             ({"event": "asked", "ack": seq or null after 3 s, "after": seconds}); then a
             success result
  durable    as ackcheck, but what it reads is what a power loss would leave: the
             database file with the copy of its write-ahead log that the last completed
             fsync made durable (<db>-wal.durable, kept by tests/tools/fsync_shim.c); at
             each job it notes whether the attempt's row is there ({"durable": ...})
  thief      for each job: once ROGUE_GO exists, for every attempt id from 1 to its own
             + 3 but its own (another worker's attempt in flight among them): a usage
             event of model "stolen" and a failed result naming it; then its own usage
             event and success result, noted {"event": "result"}; then a usage event of
             model "late" for its own attempt, after its result
  durable_good  as good, noting at each job what durable notes (jobs queued behind
             the one running, with --worker-jobs 2, are read and noted in turn)

If the file ROGUE_CRASH_FILE exists when it starts, it exits with status 3 after its hello
whatever the mode. ROGUE_LOG, when set, receives one JSON line per noteworthy thing.
"""
import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import struct
import sys
import tempfile
import time

import msgpack

from ptrace_child import traced_by_a_child

mode = os.environ.get("ROGUE_MODE", "abuse")
log_path = os.environ.get("ROGUE_LOG")
FOREIGN_UUID = "00000000-0000-4000-8000-000000000000"


def note(obj):
    if log_path:
        with open(log_path, "a") as f:
            f.write(json.dumps(dict(obj, pid=os.getpid())) + "\n")


def handoff(hand_fd):
    """Hand the supervisor a socket pair's end on hand_fd; take its answer (the keys'
    pipe, read and closed); return the other end as the frames' stream."""
    hand = socket.socket(fileno=hand_fd)
    if mode == "impostor":
        if os.fork() == 0:
            a, b = socket.socketpair()
            socket.send_fds(hand, [b"h"], [b.fileno()])
            os._exit(0)
        os.wait()
        time.sleep(30)
        sys.exit(0)
    if mode == "traced":
        note({"event": "traced", "ok": traced_by_a_child()})
    a, b = socket.socketpair()
    socket.send_fds(hand, [b"h"], [b.fileno()])
    b.close()
    hand.close()
    msg, fds, _, _ = socket.recv_fds(a, 1, 4)
    if not msg:
        note({"event": "refused"})
        sys.exit(1)
    keys = b""
    for fd in fds:
        keys += os.read(fd, 65536)
        os.close(fd)
    note({"event": "answered", "fds": len(fds), "keys": sorted(
        e.split(b"=")[0].decode() for e in keys.split(b"\0") if e)})
    return os.fdopen(a.detach(), "r+b", buffering=0)


if "--handoff-fd" in sys.argv:
    sock = handoff(int(sys.argv[sys.argv.index("--handoff-fd") + 1]))
else:
    sock = os.fdopen(3, "r+b", buffering=0)


def frame(msg):
    body = msgpack.packb(dict(msg, v=1), use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def send(msg):
    sock.write(frame(msg))


def read_exactly(n, beat):
    """n bytes from the supervisor, heartbeating `beat` (uuid, attempt) while waiting."""
    data = b""
    while len(data) < n:
        if not select.select([sock], [], [], 0.5)[0]:
            send({"t": "heartbeat", "uuid": beat[0], "att": beat[1]})
            continue
        chunk = sock.read(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def recv(beat=("", 0)):
    n = struct.unpack(">I", read_exactly(4, beat))[0]
    return msgpack.unpackb(read_exactly(n, beat), raw=False)


def usage(uuid, att, seq):
    return {"t": "event", "uuid": uuid, "att": att, "seq": seq, "kind": "llm_usage",
            "body": {"prov": "anthropic", "model": "m", "role": "builder", "in": 10,
                     "out": 20, "total": 30, "lat": 5, "http": 200, "try": 1}}


def result(uuid, att, seq):
    send({"t": "result", "uuid": uuid, "att": att, "seq": seq, "outcome": "success",
          "llm": False, "dur": 1})


def failed(uuid, att, seq, fp):
    send({"t": "result", "uuid": uuid, "att": att, "seq": seq, "outcome": "failed",
          "why": "CHECK_FAILED", "msg": "the check failed", "fp": fp, "llm": False,
          "dur": 1})


def rows_of(db_url, att):
    if db_url.startswith("postgresql://"):
        import psycopg2
        con = psycopg2.connect(db_url)
        try:
            cur = con.cursor()
            cur.execute("SELECT seq FROM llm_usage_events WHERE attempt_id = %s ORDER BY seq",
                        (att,))
            return [s for (s,) in cur.fetchall()]
        finally:
            con.close()
    path = db_url[len("sqlite:///"):]
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return [s for (s,) in con.execute("SELECT seq FROM llm_usage_events"
                                          " WHERE attempt_id = ? ORDER BY seq", (att,))]
    finally:
        con.close()


def durable_query(db_url, query, args):
    """Run query on what the last completed fsync left on disk: a copy of the database
    file and of <db>-wal.durable, in a fresh directory."""
    path = db_url[len("sqlite:///"):]
    d = tempfile.mkdtemp(dir=os.path.dirname(path))
    try:
        shutil.copyfile(path, os.path.join(d, "x.db"))
        if os.path.exists(path + "-wal.durable"):
            shutil.copyfile(path + "-wal.durable", os.path.join(d, "x.db-wal"))
        con = sqlite3.connect(os.path.join(d, "x.db"), timeout=30)
        try:
            return con.execute(query, args).fetchall()
        finally:
            con.close()
    finally:
        shutil.rmtree(d)


def wait_go(uuid, att):
    """Heartbeat until the file ROGUE_GO exists (at once when it is not set)."""
    go = os.environ.get("ROGUE_GO")
    while go and not os.path.exists(go):
        send({"t": "heartbeat", "uuid": uuid, "att": att})
        time.sleep(0.05)


def on_term(sig, frame):
    note({"event": "term"})


send({"t": "hello", "pid": os.getpid(), "sw": "0.1.0"})
crash_file = os.environ.get("ROGUE_CRASH_FILE")
if mode == "exit" or (crash_file and os.path.exists(crash_file)):
    sys.exit(3)
if mode == "garbage":
    sock.write(b"\x00\x00\x00\x03\xc1\xc1\xc1")
    time.sleep(30)
if mode in ("hang_term", "deaf"):
    signal.signal(signal.SIGTERM, on_term)
while True:
    m = recv()
    if m["t"] == "shutdown" and mode == "deaf":
        note({"event": "shutdown", "reason": m.get("why")})
        continue
    if m["t"] == "shutdown":
        sys.exit(0)
    if m["t"] != "job":
        continue
    uuid, att = m["uuid"], m["att"]
    if mode in ("durable", "durable_good"):
        note({"event": "job", "att": att, "run": m["run"], "phase": m["phase"],
              "durable": durable_query(m["db"], "SELECT count(*) FROM attempts"
                                       " WHERE attempt_id = ?", (att,))[0][0] == 1})
    else:
        note({"event": "job", "att": att, "run": m["run"], "phase": m["phase"]})
    if mode == "silent":
        time.sleep(3600)
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    while mode in ("hang", "hang_term"):
        send({"t": "heartbeat", "uuid": uuid, "att": att})
        time.sleep(0.3)
    if mode in ("good", "traced", "durable_good", "deaf"):
        wait_go(uuid, att)
        time.sleep(float(os.environ.get("ROGUE_DELAY", "0")))
        send(usage(uuid, att, 1))
        result(uuid, att, 1)
    elif mode == "fail":
        wait_go(uuid, att)
        time.sleep(float(os.environ.get("ROGUE_DELAY", "0")))
        send(usage(uuid, att, 1))
        failed(uuid, att, 1, "fp %s/%s" % (m["run"], m["phase"]))
    elif mode == "dup401":
        send(usage(uuid, att, 1))
        send(dict(usage(uuid, att, 1), body=dict(usage(uuid, att, 1)["body"], http=401)))
        result(uuid, att, 1)
    elif mode == "skips":
        # A usage event and its repeat (as resent after a reconnection), a log event that
        # ROGUE_SKIP_MSG names (which the test has a trigger skip), and a log event under
        # the usage event's seq: another event under a key already taken.
        send(usage(uuid, att, 1))
        send(usage(uuid, att, 1))
        send({"t": "event", "uuid": uuid, "att": att, "seq": 2, "kind": "log",
              "body": {"lvl": "info", "msg": os.environ.get("ROGUE_SKIP_MSG", "skip")}})
        send({"t": "event", "uuid": uuid, "att": att, "seq": 1, "kind": "log",
              "body": {"lvl": "info", "msg": "another event under seq 1"}})
        result(uuid, att, 2)
    elif mode == "key401":
        u = usage(uuid, att, 1)
        send(dict(u, body=dict(u["body"], http=401,
                               prov=os.environ.get("ROGUE_PROVIDER", "anthropic"))))
        failed(uuid, att, 2, "refused")
    elif mode == "models":
        models = ["m%d" % i for i in range(205)] + ["m0"] * 5
        for seq, model in enumerate(models, 1):
            u = usage(uuid, att, seq)
            send(dict(u, body=dict(u["body"], model=model)))
        result(uuid, att, len(models))
    elif mode == "late":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        send(usage(uuid, att, 1))
        final = 1
        if os.environ.get("ROGUE_GO"):
            wait_go(uuid, att)
            final = 4
            sock.write(b"".join(frame(usage(uuid, att, seq)) for seq in (2, 3, 4)))
            while rows_of(m["db"], att) != [1, 2, 3, 4]:
                send({"t": "heartbeat", "uuid": uuid, "att": att})
                time.sleep(0.02)
        else:
            while True:
                c = recv((uuid, att))
                if c["t"] == "cancel" and c["att"] == att:
                    break
        if os.environ.get("ROGUE_OUTCOME") == "failed":
            failed(uuid, att, final, "fp %s/%s" % (m["run"], m["phase"]))
        else:
            result(uuid, att, final)
        note({"event": "result", "att": att})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    elif mode == "thief":
        wait_go(uuid, att)
        for other in range(1, att + 4):
            if other != att:
                u = usage(uuid, other, 1)
                send(dict(u, body=dict(u["body"], model="stolen")))
                failed(uuid, other, 1, "stolen")
        send(usage(uuid, att, 1))
        result(uuid, att, 1)
        note({"event": "result", "att": att})
        u = usage(uuid, att, 2)
        send(dict(u, body=dict(u["body"], model="late")))
    elif mode == "gap":
        send(usage(uuid, att, 1))
        send(usage(uuid, att, 3))
        result(uuid, att, 4)
    elif mode == "batch":
        for seq in (1, 2, 3):
            send(usage(uuid, att, seq))
        send(usage(uuid, att + 1000, 1))
        wait_go(uuid, att)
        result(uuid, att, 3)
        note({"event": "result", "att": att})
    elif mode == "announce":
        send({"t": "event", "uuid": uuid, "att": att, "seq": 1, "kind": "llm_request",
              "body": {"prov": "anthropic", "model": "m", "role": "builder", "maxt": 100,
                       "try": 1}})
        while rows_of(m["db"], att) != [1]:
            time.sleep(0.02)
        got = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if select.select([sock], [], [], end - time.monotonic())[0]:
                got.append(recv((uuid, att))["t"])
        note({"event": "unasked", "att": att, "t": got})
        t0 = time.monotonic()
        send({"t": "heartbeat", "uuid": uuid, "att": att, "wait": 1})
        acked = None
        while acked is None and time.monotonic() < t0 + 3:
            if select.select([sock], [], [], 0.1)[0]:
                a = recv((uuid, att))
                acked = a["seq"] if a["t"] == "ack" else None
        note({"event": "asked", "att": att, "ack": acked, "after": time.monotonic() - t0})
        result(uuid, att, 1)
    elif mode in ("durable", "ackcheck"):
        # Each ack noted with the rows the database holds: in "durable", what the last
        # completed fsync left on disk; in "ackcheck", what a reader sees now.
        wait_go(uuid, att)
        for seq in (1, 2, 3):
            send(usage(uuid, att, seq))
        acked = 0
        while acked < 3:
            a = recv((uuid, att))
            if a["t"] != "ack":
                continue
            acked = a["seq"]
            rows = ([s for (s,) in durable_query(
                m["db"], "SELECT seq FROM llm_usage_events WHERE attempt_id = ?"
                " ORDER BY seq", (att,))] if mode == "durable" else rows_of(m["db"], att))
            note({"event": "ack", "att": a["att"], "ack": acked, "rows": rows})
        result(uuid, att, 3)
    else:
        send(usage(FOREIGN_UUID, att, 1))
        send(usage(uuid, att + 1000, 1))
        send(usage(uuid, att, 1))
        send(usage(uuid, att, 1))
        result(uuid, att, 1)
