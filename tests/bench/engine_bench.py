#!/usr/bin/python3
"""The engine against its peers, side by side in one run (docs/benchmarks.md):
  - the dry-run drain against beanstalkd (`-f 50` and `-f 0`, Debian's package) drained by
    tests/bench/beanstalk_drain.c with the same job count and worker count;
  - dry-run throughput at 200 x 100, 2,000 x 10 and 20,000 x 1 runs x phases;
  - the real path (worker, prompt, HTTP, deliverables, events) against the C LLM stand-in
    (tests/bench/llm_server.c) answering after 100 ms, at 64 and 256 workers, against the
    ideal (workers / 0.1 s), with the CPU per phase of the supervisor and its workers, both
    between 20 % and 80 % of the phases (the steady state);
  - `run import` of a 100,000-phase plan: time and peak RSS.
Each comparison is repeated (REPEATS) and every figure printed, since the machine is
shared; ratios are taken between measurements made next to each other."""
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from conftest import binpath  # noqa: E402
from supervisor_helpers import Supervisor, make_plan, wait_for  # noqa: E402

REPEATS = int(os.environ.get("AUTOPACK_BENCH_REPEATS", "2"))
PEER_RUNS, PEER_PHASES, PEER_WORKERS = 2000, 10, 8
DELAY_MS = 100


def fresh_db(d, runs, phases, workspace="ws"):
    url = "sqlite:///" + os.path.join(d, "bench.db")
    subprocess.run([binpath("autopack-ctl"), "--db", url, "db", "init"], check=True,
                   capture_output=True)
    if runs:
        plan = make_plan(os.path.join(d, "plan.json"), runs, 1, phases, workspace)
        subprocess.run([binpath("autopack-ctl"), "--db", url, "run", "import", plan],
                       check=True, capture_output=True)
    return url


def drain(d, url, *args, env=None):
    """Run a supervisor to the end; return the seconds it took."""
    t0 = time.monotonic()
    sup = Supervisor(d, url, "--exit-when-drained", *args, env=env)
    rc = sup.wait(timeout=3600)
    dt = time.monotonic() - t0
    if rc != 0:
        raise SystemExit("supervisor failed:\n" + sup.stderr())
    return dt


def dry_rate(runs, phases, workers, *extra):
    with tempfile.TemporaryDirectory() as d:
        url = fresh_db(d, runs, phases)
        dt = drain(d, url, "--workers", workers, "--dry-run", *extra)
        return runs * phases / dt


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def beanstalk_rate(fsync_ms, jobs, workers):
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        bs = subprocess.Popen(["beanstalkd", "-l", "127.0.0.1", "-p", str(port), "-b", d,
                               "-f", str(fsync_ms)], stderr=subprocess.DEVNULL)
        try:
            def up():
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    return True
                except OSError:
                    return False
            wait_for(up, 30, what="beanstalkd")
            out = subprocess.run([binpath("beanstalk-drain"), str(port), str(jobs),
                                  str(workers)], check=True, capture_output=True, text=True)
            return float(out.stdout)
        finally:
            bs.terminate()
            bs.wait()


def fmt(rates):
    return " / ".join("%.0f" % r for r in rates)


def bench_peers(rows):
    jobs = PEER_RUNS * PEER_PHASES
    if shutil.which("beanstalkd") is None:
        rows.append(("beanstalkd", "not installed", "make bench installs it (BENCH_DEBS)"))
        return
    ours, held, f50, f0 = [], [], [], []
    for _ in range(REPEATS):
        ours.append(dry_rate(PEER_RUNS, PEER_PHASES, PEER_WORKERS))
        held.append(dry_rate(PEER_RUNS, PEER_PHASES, PEER_WORKERS, "--worker-jobs", 2))
        f50.append(beanstalk_rate(50, jobs, PEER_WORKERS))
        f0.append(beanstalk_rate(0, jobs, PEER_WORKERS))
    what = "%d jobs, %d workers" % (jobs, PEER_WORKERS)
    drains = (("dry-run drain", ours, ""),
              ("dry-run drain --worker-jobs 2", held, "each worker holding its next job"))
    for name, rates, why in drains:
        rows.append(("%s, %d x %d runs x phases, %d workers, synchronous full" % (
            name, PEER_RUNS, PEER_PHASES, PEER_WORKERS), fmt(rates) + " phases/s",
            why or "%d runs" % REPEATS))
    rows.append(("beanstalkd -f 50, " + what, fmt(f50) + " jobs/s", "fsync every 50 ms"))
    rows.append(("beanstalkd -f 0, " + what, fmt(f0) + " jobs/s", "fsync every write"))
    for name, rates, _ in drains:
        for peer, f, target in (("-f 50", f50, "0.5"), ("-f 0", f0, "5")):
            rows.append(("%s / beanstalkd %s" % (name, peer),
                         " / ".join("%.2f" % (a / b) for a, b in zip(rates, f)),
                         "target >= " + target))


def bench_shapes(rows):
    shapes = ((200, 100), (2000, 10), (20000, 1))
    rates = {s: [] for s in shapes}
    for _ in range(REPEATS):
        for s in shapes:
            rates[s].append(dry_rate(s[0], s[1], PEER_WORKERS))
    for s in shapes:
        rows.append(("dry-run drain, %d runs x %d phases, %d workers" % (
            s[0], s[1], PEER_WORKERS), fmt(rates[s]) + " phases/s", ""))
    ratio = [a / b for a, b in zip(rates[(20000, 1)], rates[(200, 100)])]
    rows.append(("20,000 x 1 / 200 x 100", " / ".join("%.2f" % r for r in ratio),
                 "target >= 0.9"))


def llm_server(d):
    port_file = os.path.join(d, "llm.port")
    proc = subprocess.Popen([binpath("llm-server"), "--delay-ms", str(DELAY_MS),
                             "--port-file", port_file], stderr=subprocess.DEVNULL)
    port = int(wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                        30, what="llm-server port"))
    return proc, "http://127.0.0.1:%d" % port


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(p):
    """CPU seconds of process p: /proc/p/schedstat's nanoseconds on a CPU where the kernel
    keeps them, else /proc/p/stat's user and system ticks (1/CLK_TCK s, too coarse for a
    worker's few milliseconds in a window); 0 for a process gone."""
    try:
        with open("/proc/%d/schedstat" % p) as f:
            return int(f.read().split()[0]) / 1e9
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        pass
    try:
        with open("/proc/%d/stat" % p) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def tree_cpu(pid):
    """CPU seconds of a process and of each of its live children (the supervisor, its
    workers): (seconds, {child pid: seconds})."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except FileNotFoundError:
        kids = []
    return proc_cpu(pid), {k: proc_cpu(k) for k in kids}


def cpu_between(lo, hi):
    """The CPU seconds two tree_cpu readings differ by: (the process's, its children's),
    the children counted only where alive at both readings."""
    kids = set(lo[1]) & set(hi[1])
    return hi[0] - lo[0], sum(hi[1][k] - lo[1][k] for k in kids)


def progress(con):
    """Phases ended with success, and how many workers have ended one."""
    return con.execute("SELECT count(*), count(DISTINCT worker_pid) FROM attempts "
                       "WHERE outcome = 'success'").fetchone()


def real_window(d, url, workers, base, total, mark, *extra):
    """Start a real-path supervisor (`workers` workers against the stand-in at `base`, the
    extra options after) and poll its database: mark(sup) once every worker has ended a
    phase and a fifth of the `total` phases are done, and again at four fifths. Returns
    the supervisor (still draining) and the window's ends, each (time, phases done,
    mark's result); an end not reached is None."""
    sup = Supervisor(d, url, "--exit-when-drained", "--workers", workers, "--llm-provider",
                     "anthropic", "--llm-base-url", base, "--llm-retries", 0, *extra,
                     env={"ANTHROPIC_API_KEY": "bench"})
    con = sqlite3.connect("file:%s?mode=ro" % url[len("sqlite:///"):], uri=True)
    lo = hi = None
    try:
        while sup.proc.poll() is None and hi is None:
            try:
                n, pids = progress(con)
            except sqlite3.OperationalError:
                n, pids = 0, 0
            if lo is None and n >= total // 5 and pids >= workers:
                lo = (time.monotonic(), n, mark(sup))
            elif lo is not None and n >= total * 4 // 5:
                hi = (time.monotonic(), n, mark(sup))
            time.sleep(0.02)
    finally:
        con.close()
    return sup, lo, hi


def real_run(workers, wsdir):
    """Drain workers x 20 phases (a workspace per run, in a new directory under wsdir, left
    for the caller to remove) against the stand-in; return (phases/s, CPU µs per phase) in
    the steady state: from the moment every worker has ended a phase (the pool has started:
    a worker's start costs ~8 ms of CPU, mostly the dynamic linker loading libcurl's
    libraries) and 20 % of the phases are done, to 80 % of the phases; and the whole
    drain's phases/s, start-up included."""
    ws = tempfile.mkdtemp(dir=wsdir)
    with tempfile.TemporaryDirectory() as d:
        runs, phases = workers * 2, 10
        total = runs * phases
        url = fresh_db(d, runs, phases, os.path.join(ws, "{run}"))
        proc, base = llm_server(d)
        try:
            t0 = time.monotonic()
            # The CPU is read only at the two ends of the window: reading /proc for
            # every worker at each poll would take the cores being measured.
            sup, lo, hi = real_window(d, url, workers, base, total,
                                      lambda s: tree_cpu(s.proc.pid))
            if sup.wait() != 0:
                raise SystemExit("supervisor failed:\n" + sup.stderr())
            whole = total / (time.monotonic() - t0)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        assert lo is not None and hi is not None and hi[1] > lo[1], (lo, hi)
        n = hi[1] - lo[1]
        sup, kids = cpu_between(lo[2], hi[2])
        return (n / (hi[0] - lo[0]), (sup + kids) / n * 1e6, sup / n * 1e6, whole)


def ext4_without_journal(path):
    """Whether the file system holding path is ext4 mounted without a journal (then a new
    file's inode is never one freed in the last minutes: docs/benchmarks.md)."""
    path = os.path.realpath(path)
    best, dev, fstype = "", None, None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fields = left.split()
            point = fields[4]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, dev, fstype = point, fields[2], right.split()[0]
    if fstype != "ext4":
        return False
    try:
        name = os.path.basename(os.readlink("/sys/dev/block/" + dev))
    except OSError:
        return False
    return not os.path.isdir("/proc/fs/jbd2/%s-8" % name)


def bench_real(rows):
    """The real path at 64 and 256 workers, workspaces on the temporary directory's disk and,
    where there is one, on tmpfs (/dev/shm): the two separate the file system's cost of a new
    inode from autopack's own."""
    places = [("disk", None)] + ([("tmpfs", "/dev/shm")] if os.path.isdir("/dev/shm") else [])
    # Every drain's workspaces are kept until the last drain has ended: on ext4 without a
    # journal, a new inode is never one freed in the last 60 s (6 min while its inode
    # table block is unwritten), and each creation walks past every such inode of its
    # group, so the files of a repeat made after the one before was deleted cost up to
    # twice the CPU (docs/benchmarks.md, "The disk's inodes freed before a drain").
    keep = {place: tempfile.mkdtemp(dir=wsdir, prefix="autopack-bench-ws-")
            for place, wsdir in places}
    try:
        bench_real_rows(rows, places, keep)
    finally:
        for path in keep.values():
            shutil.rmtree(path, ignore_errors=True)


def bench_real_rows(rows, places, keep):
    """bench_real's rows, each drain's workspaces in a new directory under keep[place]."""
    for workers in (64, 256):
        for place, wsdir in places:
            rates, cpus, sups, wholes = [], [], [], []
            for _ in range(REPEATS):
                os.sync()  # the repeat before's workspaces written back, not during this one
                rate, cpu, sup, whole = real_run(workers, keep[place])
                rates.append(rate)
                cpus.append(cpu)
                sups.append(sup)
                wholes.append(whole)
            ideal = workers * 1000.0 / DELAY_MS
            what = "%d workers, workspaces on %s" % (workers, place)
            target = workers == 256
            if wsdir is None and ext4_without_journal(keep[place]):
                what += " (ext4 without a journal)"
            rows.append(("real path, %s, stand-in answering after %d ms" % (what, DELAY_MS),
                         fmt(rates) + " phases/s",
                         "ideal %d/s; steady state: the pool started, 20 %% to 80 %% of the "
                         "phases" % ideal))
            rows.append(("real path, %s / ideal" % what,
                         " / ".join("%.2f" % (r / ideal) for r in rates),
                         "target >= 0.85" if target else ""))
            rows.append(("CPU per phase, supervisor + workers, %s" % what,
                         " / ".join("%.0f" % c for c in cpus) + " µs",
                         "same window; the supervisor's part " +
                         " / ".join("%.0f" % c for c in sups) + " µs" +
                         ("; target <= 300 µs" if target else "")))
            rows.append(("real path, %s, whole drain" % what, fmt(wholes) + " phases/s",
                         "%d phases, the pool's start included" % (workers * 20)))


def timed(argv):
    """Run argv under GNU time; return (seconds, CPU seconds user + system, its peak RSS in
    KiB). Not from this process's wait4: a child forked from it starts with its RSS as its
    high-water mark, which exec keeps (the plan just written makes that over 100 MiB)."""
    with tempfile.NamedTemporaryFile("r") as out:
        t0 = time.monotonic()
        r = subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%U %S %M"] + argv,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        dt = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit("%s failed: %s" % (argv, r.stderr))
        user, system, kib = out.read().split()[-3:]
        return dt, float(user) + float(system), int(kib)


def bench_import(rows):
    """Wall time, CPU time (the figure a shared machine's load does not change) and peak
    RSS of `run import`."""
    secs, cpus, rss = [], [], []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as d:
            url = fresh_db(d, 0, 0)
            plan = make_plan(os.path.join(d, "plan.json"), 10000, 1, 10)
            size = os.path.getsize(plan)
            dt, cpu, kib = timed([binpath("autopack-ctl"), "--db", url, "run", "import", plan])
            secs.append(dt)
            cpus.append(cpu)
            rss.append(kib / 1024.0)
    rows.append(("run import, 100,000 phases in 10,000 runs (%.0f MB plan)" % (size / 1e6),
                 " / ".join("%.2f s" % s for s in secs),
                 "CPU " + " / ".join("%.2f s" % c for c in cpus) + "; peak RSS " +
                 " / ".join("%.0f MiB" % r for r in rss) + "; target <= 2 s, <= 64 MiB"))
