"""A long real-path drain that samples, every 15 s, the supervisor's RSS and descriptors,
its workers' largest RSS and the database's size (with its -wal): memory that grows with
the drain rather than with the queue shows here.

Usage: W=64 RUNS=20000 /usr/bin/python3 tests/bench/soak.py [TREE]
       (RUNS runs × 10 phases, W workers, tests/bench/llm_server.c answering after 100 ms;
       build the tree and build/rel/bin/llm-server first)"""
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import engine_bench as eb  # noqa: E402
from conftest import binpath  # noqa: E402

W = int(os.environ.get("W", "64"))
RUNS = int(os.environ.get("RUNS", "20000"))


def rss_kib(pid):
    """VmRSS of pid in KiB; None once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def main():
    with tempfile.TemporaryDirectory() as d:
        url = eb.fresh_db(d, RUNS, 10, os.path.join(d, "ws", "{run}"))
        path = url[len("sqlite:///"):]
        llm, base = eb.llm_server(d)
        err = os.path.join(d, "sup.err")
        sup = subprocess.Popen(
            [binpath("autopack-supervisor"), "--db", url, "--workers", str(W),
             "--exit-when-drained", "--llm-provider", "anthropic", "--llm-base-url", base,
             "--llm-retries", "0", "--log-level", "warn"],
            env=dict(os.environ, ANTHROPIC_API_KEY="sk-soak"),
            stdout=subprocess.DEVNULL, stderr=open(err, "w"))
        t0 = time.monotonic()
        try:
            while sup.poll() is None:
                workers = [r for r in map(rss_kib, children(sup.pid)) if r]
                try:
                    fds = len(os.listdir("/proc/%d/fd" % sup.pid))
                except OSError:
                    fds = -1
                size = sum(os.path.getsize(p) for p in (path, path + "-wal")
                           if os.path.exists(p))
                print("t=%4.0f s  supervisor RSS %s KiB, %d fds; %d workers, largest RSS %s"
                      " KiB; database and -wal %.1f MB" % (
                          time.monotonic() - t0, rss_kib(sup.pid), fds, len(workers),
                          max(workers) if workers else None, size / 1e6), flush=True)
                time.sleep(15)
        finally:
            llm.send_signal(signal.SIGTERM)
            llm.wait()
        print("exit status %d after %.0f s (%d phases)" % (
            sup.returncode, time.monotonic() - t0, RUNS * 10))
        if sup.returncode != 0:
            print(open(err).read()[-4000:])


if __name__ == "__main__":
    main()
