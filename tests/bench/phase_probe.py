#!/usr/bin/python3
"""Where a real-path phase's time goes: the drain of tests/bench/engine_bench.py's real
path (W workers, 2W runs x 10 phases against the C stand-in answering after 100 ms), with
the supervisor's /metrics read when every worker has ended a phase and a fifth of the
phases are done, and again at four fifths. Prints the phases/s and CPU per phase of that
window (the supervisor's part apart), what the commit counters and histogram moved by, and,
from the database afterwards, the median, p90 and mean per phase of: the HTTP latency the
worker measured (from its announcement to the answer), lease commit -> announcement
commit, announcement -> usage event, usage event -> the attempt's end, lease -> end, and a
worker's previous end -> its next lease (negative with leases opened ahead).

usage: [TMPDIR=/dev/shm] [WS=DIR] [W=256] tests/bench/phase_probe.py [TREE]
       (TREE: the built tree whose binaries and tests to use, default this one; WS: where
       the workspaces go; `make bench` builds the stand-in, build/rel/bin/llm-server)
"""
import datetime
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import urllib.request

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import engine_bench as eb  # noqa: E402

W = int(os.environ.get("W", "256"))
WS = os.environ.get("WS") or None


def scrape(port):
    """The commit and event counters of the supervisor's /metrics."""
    out = {}
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#"):
                continue
            key, value = line.rsplit(" ", 1)
            if "commit" in key or "events_committed" in key:
                out[key] = float(value)
    return out


def ts(s):
    return datetime.datetime.fromisoformat(s).timestamp()


def show(name, values):
    v = sorted(values)
    print("  %-24s median %.1f ms  p90 %.1f ms  mean %.1f ms" % (
        name, v[len(v) // 2] * 1e3, v[len(v) * 9 // 10] * 1e3, statistics.mean(v) * 1e3))


def main():
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory(dir=WS) as ws:
        total = W * 2 * 10
        url = eb.fresh_db(d, W * 2, 10, os.path.join(ws, "{run}"))
        llm, base = eb.llm_server(d)
        port = eb.free_port()
        try:
            sup, lo, hi = eb.real_window(
                d, url, W, base, total,
                lambda s: (eb.tree_cpu(s.proc.pid), scrape(port)),
                "--http", "127.0.0.1:%d" % port)
            if sup.wait() != 0:
                raise SystemExit("supervisor failed:\n" + sup.stderr())
        finally:
            llm.send_signal(signal.SIGTERM)
            llm.wait()
        (lo_cpu, lo_m), (hi_cpu, hi_m) = lo[2], hi[2]
        n = hi[1] - lo[1]
        sup_cpu, kids_cpu = eb.cpu_between(lo_cpu, hi_cpu)
        cpu = sup_cpu + kids_cpu
        print("W=%d: %.0f phases/s (%.2f of the ideal), CPU %.0f µs a phase (the supervisor"
              " %.0f µs)" % (W, n / (hi[0] - lo[0]), n / (hi[0] - lo[0]) / (W * 10),
                             cpu / n * 1e6, sup_cpu / n * 1e6))
        for key in sorted(hi_m):
            if hi_m[key] != lo_m.get(key):
                print("  %s  +%g" % (key, hi_m[key] - lo_m.get(key, 0)))
        con = sqlite3.connect(url[len("sqlite:///"):])
        rows = con.execute(
            "SELECT a.started_at, a.ended_at, worker_pid,"
            " (SELECT min(created_at) FROM events e WHERE e.attempt_id = a.attempt_id"
            "   AND kind = 'llm_request'),"
            " (SELECT min(created_at) FROM events e WHERE e.attempt_id = a.attempt_id"
            "   AND kind = 'llm_usage')"
            " FROM attempts a WHERE outcome = 'success' ORDER BY attempt_id").fetchall()
        lat = [r[0] / 1e3 for r in con.execute(
            "SELECT latency_ms FROM llm_usage_events ORDER BY id")]
        con.close()
        rows = rows[len(rows) // 5:len(rows) * 4 // 5]
        lat = lat[len(lat) // 5:len(lat) * 4 // 5]
        last, gap = {}, []
        for r in rows:
            if r[2] in last:
                gap.append(ts(r[0]) - last[r[2]])
            last[r[2]] = ts(r[1])
        print("per phase (commit times; the latency is the worker's):")
        show("http latency (worker)", lat)
        show("lease -> llm_request", [ts(r[3]) - ts(r[0]) for r in rows])
        show("llm_request -> llm_usage", [ts(r[4]) - ts(r[3]) for r in rows])
        show("llm_usage -> end", [ts(r[1]) - ts(r[4]) for r in rows])
        show("lease -> end", [ts(r[1]) - ts(r[0]) for r in rows])
        show("previous end -> lease", gap)


if __name__ == "__main__":
    main()
