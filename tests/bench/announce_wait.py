#!/usr/bin/python3
"""The real path's wait before an LLM call, seen from the worker: the drain of
tests/bench/engine_bench.py's real path (W workers, 2W runs x 10 phases against the C
stand-in answering after 100 ms), with `strace -tt` on three workers once every worker has
ended a phase and a fifth of the phases are done. Prints the drain's phases/s from 20 % to
80 % of the phases, the median time from a phase's lease to its end over those phases, and,
per traced phase, the time from the worker's write that carries its LLM call's announcement
(the last write to the supervisor before the HTTP request) to the HTTP request's first
write.

usage: [TMPDIR=/dev/shm] [W=256] tests/bench/announce_wait.py [TREE]
       (TREE: the built tree whose binaries and tests to use, default this one)
"""
import datetime
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import engine_bench as eb  # noqa: E402

W = int(os.environ.get("W", "256"))
LINE = re.compile(r"^(\d+):(\d+):(\d+\.\d+) (\w+)\((\d+),")


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(k) for k in f.read().split()]


def supervisor_fd(pid):
    """The worker's end of its socket to the supervisor (its --fd)."""
    argv = open("/proc/%d/cmdline" % pid).read().split("\0")
    return int(argv[argv.index("--fd") + 1])


def waits(path, fd):
    """From an strace log: for each HTTP request, the time since the last write to the
    supervisor before it (the announcement)."""
    out, last, sent = [], None, False
    for line in open(path):
        m = LINE.match(line)
        if not m:
            continue
        t = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        f = int(m.group(5))
        if f == fd:
            last, sent = t, False
        elif last is not None and not sent and f > 2:
            out.append(t - last)
            sent = True
    return out


def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as ws:
    total = W * 2 * 10
    url = eb.fresh_db(d, W * 2, 10, os.path.join(ws, "{run}"))
    llm, base = eb.llm_server(d)
    traces = []

    def trace(sup):
        """At the window's start, trace the sends of three workers."""
        if traces:
            return
        for i, w in enumerate(children(sup.proc.pid)[:3]):
            path = os.path.join(d, "strace%d" % i)
            traces.append((path, supervisor_fd(w), subprocess.Popen(
                ["strace", "-tt", "-e", "trace=write,writev,sendto,sendmsg", "-o", path,
                 "-p", str(w)], stderr=subprocess.DEVNULL)))

    sup, lo, hi = eb.real_window(d, url, W, base, total, trace)
    for _, _, st in traces:
        st.terminate()
        st.wait()
    sup.wait()
    llm.terminate()
    llm.wait()
    con = sqlite3.connect(url[len("sqlite:///"):])
    rows = con.execute("SELECT started_at, ended_at FROM attempts WHERE outcome = 'success'"
                       " ORDER BY attempt_id").fetchall()
    con.close()
    rows = rows[len(rows) // 5: len(rows) * 4 // 5]
    phase = sorted(ts(b) - ts(a) for a, b in rows)
    v = sorted(x for path, fd, _ in traces for x in waits(path, fd))
    rate = (hi[1] - lo[1]) / (hi[0] - lo[0])
    print("W=%d %.0f phases/s (%.2f of ideal); lease->end median %.1f ms; announcement->"
          "request (%d phases) median %.2f ms, mean %.2f ms, p90 %.2f ms" % (
              W, rate, rate / (W * 10), phase[len(phase) // 2] * 1e3, len(v),
              v[len(v) // 2] * 1e3, statistics.mean(v) * 1e3, v[len(v) * 9 // 10] * 1e3))
