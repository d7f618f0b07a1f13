"""Workers never open the database: real workers draining real phases, watched two ways
-- every file their processes open, traced with strace, and the open files of busy
workers read from /proc."""
import os
import subprocess

from conftest import binpath
from supervisor_helpers import Standin, new_db, sql, wait_for

KEY = "sk-test-isolation"


def database_files(url):
    path = os.path.realpath(url[len("sqlite:///"):])
    return {path, path + "-wal", path + "-shm", path + "-journal", path + ".lock"}


def test_workers_never_open_the_database(tmp):
    go = os.path.join(str(tmp), "ws", "go")
    url = new_db(tmp, runs=3, phases=2,
                 check="while [ ! -e %s ]; do sleep 0.05; done" % go)
    db_files = database_files(url)
    llm = Standin(tmp)
    trace = os.path.join(str(tmp), "trace")
    env = dict(os.environ, ANTHROPIC_API_KEY=KEY,
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0")
    sup = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,creat,execve", "-o", trace,
         binpath("autopack-supervisor"), "--db", url, "--workers", "3",
         "--exit-when-drained", "--control", os.path.join(str(tmp), "sup.sock"),
         "--llm-provider", "anthropic", "--llm-base-url", llm.url, "--llm-retries", "0"],
        env=env, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(str(tmp), "sup.err"), "w"))
    try:
        # Three busy workers: none holds a database file open.
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL")
                 == [(3,)], what="three leases")
        pids = [p for (p,) in sql(url, "SELECT worker_pid FROM attempts"
                                  " WHERE ended_at IS NULL")]
        assert len(set(pids)) == 3
        for pid in pids:
            fds = os.listdir("/proc/%d/fd" % pid)
            targets = set()
            for fd in fds:
                try:
                    targets.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
                except OSError:
                    pass
            assert not targets & db_files, (pid, targets)
        open(go, "w").close()
        assert sup.wait(timeout=120) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        llm.stop()
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == [("COMPLETE", 6)]
    # Every open of a database file in the whole process tree was the supervisor's.
    with open(trace) as f:
        lines = f.read().splitlines()
    supervisor_pid = int(lines[0].split()[0])
    workers = {int(line.split()[0]) for line in lines
               if "execve(" in line and "autopack-worker" in line}
    assert len(workers) >= 3
    opened = {}
    for line in lines:
        pid, rest = line.split(None, 1)
        if rest.startswith(("open", "creat")) and '"' in rest:
            path = rest.split('"')[1]
            opened.setdefault(int(pid), set()).add(os.path.realpath(path))
    assert opened[supervisor_pid] & db_files
    for pid, paths in opened.items():
        if pid != supervisor_pid:
            assert not paths & db_files, (pid, paths & db_files)
