#!/usr/bin/python3
"""autopack benchmarks (make bench). Measures, on this machine, in one run:
  1. dry-run drain throughput for 1, 2, 8, 32 workers over 10,000 phases;
  2. events committed per second through the supervisor's writer, against a raw SQLite
     batched insert of the rows it committed (replayed in its order into a copy of its
     database without them: same schema, same SQL with every value bound, same connection
     settings, same durability, 256 per transaction), and against the two earlier raw
     inserts of as many rows of one attempt in sequence (every value bound; literals);
  3. time from a worker's SIGKILL to its attempt being closed and the phase requeued;
  4. time from the supervisor's SIGKILL to its last worker gone, workers in an LLM call;
  5. supervisor RSS with 64 workers;
  6. estimator calibration judged leave-one-out on the real telemetry samples;
  7. the engine against its peers (tests/bench/engine_bench.py): beanstalkd, the run x
     phase shapes, the real path against a C LLM stand-in, a 100,000-phase import;
  8. the drain's end (what is left, per run) on 100,000 queued phases;
  9. several supervisors on one PostgreSQL database (tests/bench/fleet_bench.py): 1, 2
     and 4 supervisors x 8 workers, next to one on SQLite, same plan.
Prints a Markdown table. Figures vary with the machine's load: compare ratios within
one run."""
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from conftest import binpath  # noqa: E402
from supervisor_helpers import (Standin, Supervisor, log_times,  # noqa: E402
                                wait_for)
from bench.calib_bench import bench_calibration  # noqa: E402
from bench.engine_bench import (bench_import, bench_peers, bench_real, bench_shapes,  # noqa: E402
                                drain, fresh_db)
from bench.fleet_bench import bench_fleet  # noqa: E402


def iso(ts):
    return datetime.strptime(ts, "%Y-%m-%d %H:%M:%S.%f").replace(
        tzinfo=timezone.utc).timestamp()


def bench_throughput(rows):
    for w in (1, 2, 8, 32):
        with tempfile.TemporaryDirectory() as d:
            url = fresh_db(d, 100, 100)
            dt = drain(d, url, "--workers", w, "--dry-run")
            rows.append(("dry-run drain, 10,000 phases, %d worker(s)" % w,
                         "%.0f phases/s" % (10000 / dt), "%.2f s" % dt))


def bench_writer(rows):
    n_jobs, per_job = 200, 500
    total = n_jobs * per_job
    raw_rate = {}
    with tempfile.TemporaryDirectory() as d:
        url = fresh_db(d, 20, n_jobs // 20)
        dt = drain(d, url, "--workers", 8, "--worker", binpath("bench-worker"),
                   env={"AUTOPACK_BENCH_EVENTS": str(per_job)})
        path = url[len("sqlite:///"):]
        con = sqlite3.connect(path)
        got = con.execute("SELECT count(*) FROM llm_usage_events").fetchone()[0]
        first, last = con.execute("SELECT min(started_at), max(ended_at) FROM attempts"
                                  ).fetchone()
        con.close()
        assert got == total, got
        span = (iso(last) - iso(first)) or dt
        sup_rate = total / span
        # The rows the supervisor committed, replayed in its order into a copy of the
        # database without them.
        raw_db = os.path.join(d, "raw.db")
        out = subprocess.run([binpath("raw-insert"), "replay", path, raw_db, "256", "full"],
                             check=True, capture_output=True, text=True)
        raw_rate["replay"] = float(out.stdout)
        con = sqlite3.connect(raw_db)
        got = con.execute("SELECT count(*) FROM llm_usage_events").fetchone()[0]
        con.close()
        assert got == total, got
    for mode in ("bound", "literals"):
        with tempfile.TemporaryDirectory() as d:
            url = fresh_db(d, 0, 0)
            out = subprocess.run([binpath("raw-insert"), url[len("sqlite:///"):], str(total),
                                  "256", "full", mode], check=True, capture_output=True,
                                 text=True)
            raw_rate[mode] = float(out.stdout)
    rows.append(("events through the supervisor (8 workers, %d events)" % total,
                 "%.0f events/s" % sup_rate,
                 "first dispatch to last commit; whole run incl. start/exit %.0f/s" % (total / dt)))
    rows.append(("raw SQLite batched insert of the rows the supervisor committed (its 200"
                 " attempts, in its order, every value bound, its SQL),"
                 " 256/txn, synchronous=full", "%.0f rows/s" % raw_rate["replay"], ""))
    rows.append(("writer / raw insert", "%.2f" % (sup_rate / raw_rate["replay"]), ""))
    rows.append(("the earlier raw insert: the same number of rows in one attempt, in sequence,"
                 " every value bound", "%.0f rows/s" % raw_rate["bound"],
                 "writer / it: %.2f" % (sup_rate / raw_rate["bound"])))
    rows.append(("the raw insert before it (one attempt, constant values as literals in its SQL)",
                 "%.0f rows/s" % raw_rate["literals"],
                 "writer / it: %.2f" % (sup_rate / raw_rate["literals"])))


def bench_requeue(rows):
    samples = []
    with tempfile.TemporaryDirectory() as d:
        url = fresh_db(d, 10, 2)
        sup = Supervisor(d, url, "--workers", 4, "--worker", binpath("bench-worker"),
                         "--max-attempts-per-phase", 100,
                         env={"AUTOPACK_BENCH_EVENTS": "1", "AUTOPACK_BENCH_SLEEP_MS": "60000"})
        sup.wait_ready()
        path = url[len("sqlite:///"):]
        for _ in range(5):
            busy = wait_for(lambda: [w for w in sup.status()["pool"]["workers"]
                                     if w["state"] == "busy"], what="a busy worker")
            att = busy[0]["attempt_id"]
            t_kill = time.time()
            os.kill(busy[0]["pid"], signal.SIGKILL)
            con = sqlite3.connect(path)
            while True:
                r = con.execute("SELECT ended_at FROM attempts WHERE attempt_id = ?",
                                (att,)).fetchone()
                if r and r[0]:
                    break
                time.sleep(0.001)
            con.close()
            t_req = time.time()
            samples.append((t_req - t_kill) * 1000)
        sup.stop_now()
    samples.sort()
    rows.append(("worker SIGKILL → attempt closed and phase requeued (5 kills)",
                 "median %.1f ms" % samples[len(samples) // 2],
                 "max %.1f ms (includes the observer's polling)" % samples[-1]))


def gone(pid):
    """True once `pid` has ended (a zombie waiting for its new parent counts)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def bench_orphans(rows):
    samples = []
    with tempfile.TemporaryDirectory() as d:
        llm = Standin(d, {"default": {"mode": "sleep", "seconds": 600}})
        try:
            for i in range(5):
                sub = os.path.join(d, "k%d" % i)
                os.mkdir(sub)
                url = fresh_db(sub, 4, 1)
                sup = Supervisor(sub, url, "--workers", 4, "--llm-base-url", llm.url,
                                 env={"ANTHROPIC_API_KEY": "bench"})
                sup.wait_ready()
                path = url[len("sqlite:///"):]
                wait_for(lambda: sqlite3.connect(path).execute(
                    "SELECT count(*) FROM llm_usage_events WHERE status = 'sent'")
                    .fetchone()[0] == 4, what="four calls in flight")
                pids = [w["pid"] for w in sup.status()["pool"]["workers"]]
                t_kill = time.time()
                sup.proc.kill()
                while not all(gone(p) for p in pids):
                    time.sleep(0.001)
                samples.append((time.time() - t_kill) * 1000)
                sup.proc.wait()
        finally:
            llm.stop()
    samples.sort()
    rows.append(("supervisor SIGKILL → its 4 workers gone, each in an LLM call (5 kills)",
                 "median %.1f ms" % samples[len(samples) // 2],
                 "max %.1f ms (includes the observer's polling)" % samples[-1]))


def bench_rss(rows):
    with tempfile.TemporaryDirectory() as d:
        url = fresh_db(d, 0, 0)
        sup = Supervisor(d, url, "--workers", 64, "--allow-empty-db")
        sup.wait_ready()
        wait_for(lambda: sup.status()["pool"]["live"] == 64, what="64 workers")
        time.sleep(1)
        with open("/proc/%d/status" % sup.proc.pid) as f:
            rss = [l for l in f if l.startswith("VmRSS")][0].split()[1]
        st = sup.status()
        wrss = sorted(w["rss_kib"] for w in st["pool"]["workers"])
        sup.signal(signal.SIGTERM)
        sup.wait()
    rows.append(("supervisor RSS with 64 workers", "%s KiB" % rss,
                 "worker RSS median %d KiB" % wrss[len(wrss) // 2]))


def bench_drain_end(rows):
    with tempfile.TemporaryDirectory() as d:
        url = fresh_db(d, 100, 1000)
        sup = Supervisor(d, url, "--exit-when-drained", "--workers", 1, "--dry-run",
                         "--batch-size", 1)
        if sup.wait(timeout=1800) != 5:
            raise SystemExit("supervisor failed:\n" + sup.stderr())
        err = sup.stderr()
        dt = log_times(err, " ended (")[-1] - log_times(err, "[STOP]")[0]
    rows.append(("the drain's end on 100,000 queued phases in 100 runs (what is left)",
                 "%.0f ms" % (dt * 1000), "from its [STOP] line to its last line"))


def main():
    rows = []
    only = os.environ.get("AUTOPACK_BENCH_ONLY")
    for fn in (bench_peers, bench_shapes, bench_real, bench_import, bench_throughput,
               bench_writer, bench_requeue, bench_orphans, bench_rss, bench_calibration,
               bench_drain_end, bench_fleet):
        if only and fn.__name__ not in only.split(","):
            continue
        # Each row starts with the disk's write-back of the rows before it done, so it
        # does not pay for their writes (the writer's row followed the real path's drains
        # of 256 workers on the disk, and its raw peer did not).
        os.sync()
        fn(rows)
        sys.stderr.write("done: %s\n" % fn.__name__)
    print("| measurement | result | note |")
    print("|---|---|---|")
    for r in rows:
        print("| %s | %s | %s |" % r)


if __name__ == "__main__":
    main()
