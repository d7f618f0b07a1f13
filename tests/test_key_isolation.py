"""No ancestor of a phase's code holds an API key readably. A check command that reads
/proc/$PPID/environ and walks every ancestor, and LLM-written code that does the same,
find the key in no environment and no command line: the supervisor took it out of its own
environment (the block /proc shows included), its workers got it on a pipe sent on a
socket each one made once not dumpable, and the check
runs in a process group of its own with a minimal environment. Nor does any command line
it can read hold the database URL's password."""
import json
import os
import subprocess
import uuid

from conftest import binpath, ctl
from e2e_helpers import Standin, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor, wait_for

# Walk from the shell up to pid 1: each process's environment and command line, raw (by
# the machine's pids: the check may run in a PID namespace of its own). What is refused
# (every environment but its own, to a check in a namespace) fails no step.
WALK = r'''
read -r p _ _ pp _ < /proc/self/stat
while [ "$p" -gt 1 ]; do
  echo "== pid $p"
  echo "-- cmdline"; tr '\0' '\n' < /proc/$p/cmdline
  echo "-- environ"; tr '\0' '\n' < /proc/$p/environ
  p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status)
done
echo "== parent environ"; tr '\0' '\n' < /proc/$pp/environ || true
'''

# The same walk, as code the model wrote: it leaves what it found in the workspace.
HELPER = r'''
import os
found = []
pid = int(os.readlink("/proc/self"))
while pid > 1:
    for part in ("environ", "cmdline"):
        try:
            with open("/proc/%d/%s" % (pid, part), "rb") as f:
                data = f.read().replace(b"\0", b"\n")
        except OSError as e:
            data = str(e).encode()
        found.append(b"== %d %s\n" % (pid, part.encode()) + data)
    with open("/proc/%d/status" % pid) as f:
        pid = int([l.split()[1] for l in f if l.startswith("PPid:")][0])
with open("found.txt", "wb") as f:
    f.write(b"\n".join(found))
'''


def test_no_ancestor_of_a_check_or_of_model_written_code_holds_the_key(tmp):
    tmp = str(tmp)
    key = "sk-ant-%s-SECRET" % uuid.uuid4().hex
    other = "sk-oai-%s-SECRET" % uuid.uuid4().hex
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [
        ("walk", ws, [phase_spec("p-walk", ("out/walk.py",), check=WALK)]),
        ("helper", ws, [phase_spec("p-helper", ("helper.py",), paths=(".",),
                                   check="/usr/bin/python3 helper.py")]),
    ])
    # Calls answered once the processes were looked at, both in flight.
    go = os.path.join(tmp, "go")
    llm = Standin(tmp, {"markers": {"helper.py": [{"mode": "sleep", "seconds": 100,
                                                   "until": go, "content": HELPER}]},
                        "default": {"mode": "sleep", "seconds": 100, "until": go}},
                  "--expect-key", key)
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": key, "OPENAI_API_KEY": other})
    try:
        sup.wait_ready()
        wait_for(lambda: len(rows(url, "SELECT id FROM llm_usage_events WHERE status = 'sent'"))
                 == 2, 60, what="both calls in flight")
        # While it runs: the supervisor's and the workers' own environments and command
        # lines, as any process of the user (or root) reads them.
        pids = [sup.proc.pid] + [w["pid"] for w in sup.status()["pool"]["workers"]]
        for pid in pids:
            for part in ("environ", "cmdline"):
                with open("/proc/%d/%s" % (pid, part), "rb") as f:
                    data = f.read()
                assert key.encode() not in data and other.encode() not in data, (pid, part)
        open(go, "w").close()
        assert sup.wait(timeout=300) == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    # The key reached the provider: the workers held it.
    assert llm.requests() and all(r["key_ok"] for r in llm.requests())
    assert [r["outcome"] for r in rows(url, "SELECT outcome FROM attempts")] == [
        "success", "success"]
    with open(os.path.join(ws, ".autopack", "logs", "walk__p-walk__a1.stdout.txt")) as f:
        walked = f.read()
    with open(os.path.join(ws, "found.txt")) as f:
        found = f.read()
    # The walks went through the worker and the supervisor (so they could have found it).
    for text in (walked, found):
        assert "autopack-worker" in text and "autopack-supervisor" in text
        assert "%d" % sup.proc.pid in text
        assert key not in text and other not in text
        assert "ANTHROPIC_API_KEY=sk" not in text and "OPENAI_API_KEY=sk" not in text
    # The check's own environment is the minimal one.
    lines = walked.splitlines()
    start = lines.index("-- environ") + 1
    mine = lines[start:next(i for i in range(start, len(lines))
                            if lines[i].startswith("== pid "))]
    names = {line.split("=", 1)[0] for line in mine if "=" in line}
    assert names <= {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE",
                     "LC_MESSAGES", "TZ", "TMPDIR", "PWD", "OLDPWD", "SHLVL", "_"}, names
    assert "PATH" in names


def test_a_password_in_the_database_url_is_not_in_any_command_line_a_check_reads(tmp, pg_url):
    # /proc/<pid>/cmdline is open to every process of the machine, non-dumpable or not: the
    # supervisor's showed `--db postgresql://autopack:<password>@…` to every check command,
    # and an `autopack-ctl --db … watch` running beside it did the same.
    tmp = str(tmp)
    secret = "pw-%s-SECRET" % uuid.uuid4().hex
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp, url=pg_url)
    with_password = url.replace("autopack@", "autopack:%s@" % secret)
    assert with_password != url
    # The check also reads the command line of a ctl watching the drain (the test writes
    # its pid into the workspace).
    walk = ('i=0; while [ ! -s watch.pid ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1));'
            ' done; ' + WALK + 'echo "== watch"; w=$(cat watch.pid);'
            ' tr "\\0" "\\n" < /proc/$w/cmdline')
    import_plan(tmp, url, [("walk", ws, [phase_spec("p-walk", ("out/walk.py",), check=walk)])])
    llm = Standin(tmp)
    sup = Supervisor(tmp, with_password, "--workers", 1, "--exit-when-drained", *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": "sk-ant-%s" % uuid.uuid4().hex})
    watch = None
    try:
        sup.wait_ready()
        watch = subprocess.Popen([binpath("autopack-ctl"), "--db", with_password, "watch"],
                                 stdout=open(os.path.join(tmp, "watch.out"), "w"),
                                 stderr=subprocess.STDOUT)
        # Its first line comes after it took its flags.
        wait_for(lambda: os.path.getsize(os.path.join(tmp, "watch.out")) > 0, 30,
                 what="the watch's first line")
        os.makedirs(ws, exist_ok=True)
        with open(os.path.join(ws, "watch.pid.new"), "w") as f:
            f.write("%d\n" % watch.pid)
        os.replace(os.path.join(ws, "watch.pid.new"), os.path.join(ws, "watch.pid"))
        for pid in (sup.proc.pid, watch.pid):
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                data = f.read()
            assert secret.encode() not in data, (pid, data)
            assert b"autopack:" in data, data
        assert sup.wait(timeout=300) == 0, sup.stderr()
    finally:
        sup.kill()
        if watch is not None:
            watch.kill()
            watch.wait()
        llm.stop()
    with open(os.path.join(ws, ".autopack", "logs", "walk__p-walk__a1.stdout.txt")) as f:
        walked = f.read()
    assert "autopack-supervisor" in walked and "\nwatch\n" in walked, walked
    assert secret not in walked, walked
    assert [r["outcome"] for r in rows(url, "SELECT outcome FROM attempts")] == ["success"]


def test_two_database_urls_refused_are_named_without_their_passwords(tmp):
    # "--db given twice with different URLs" quoted both with their passwords.
    urls = ("postgresql://autopack:first-SECRET@db.example/a",
            "postgresql://autopack:second-SECRET@db.example/b")
    r = subprocess.run([binpath("autopack-supervisor"), "--db", urls[0], "--db", urls[1]],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--db given twice" in r.stderr, r
    assert "SECRET" not in r.stderr and "autopack:*" in r.stderr, r.stderr
    for args in (["--db", urls[0], "--db=" + urls[1], "status"],
                 ["status", "--db", urls[0], "--db", urls[1]]):
        r = subprocess.run([binpath("autopack-ctl")] + args, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2 and "--db given twice" in r.stderr, r
        assert "SECRET" not in r.stderr and "autopack:*" in r.stderr, r.stderr


def test_the_database_password_from_pgpassword_is_in_no_worker_environment(tmp, monkeypatch):
    # PGPASSWORD stayed in the supervisor's environment and every worker inherited it:
    # each /proc/<pid>/environ held it, where the API keys had been taken out. The
    # supervisor takes it out as it takes the keys, and still gives it to every
    # connection it makes, a connection made again after its session was ended too.
    from pg_cluster import Cluster
    tmp = str(tmp)
    secret = "pw-%s-SECRET" % uuid.uuid4().hex
    cluster = Cluster()
    try:
        # The role "pw" must give its password over TCP (scram-sha-256); the others, the
        # test's own connections among them, are let in as before.
        hba = os.path.join(cluster.data, "pg_hba.conf")
        with open(hba) as f:
            rules = f.read()
        with open(hba, "w") as f:
            f.write("host all pw 127.0.0.1/32 scram-sha-256\n" + rules)
        cluster.psql("CREATE ROLE pw LOGIN PASSWORD '%s'" % secret)
        cluster.psql("SELECT pg_reload_conf()")
        name = cluster.new_database()
        cluster.psql('ALTER DATABASE "%s" OWNER TO pw' % name)
        cluster.psql("ALTER SCHEMA public OWNER TO pw", dbname=name)
        url = "postgresql://pw@127.0.0.1:%d/%s" % (cluster.port, name)
        r = ctl("--db", url, "db", "check", env={"PGPASSWORD": "wrong"})
        assert r.rc == 2 and "password authentication failed" in r.err, r
        # The commands (the test's status requests too) take it from the environment.
        monkeypatch.setenv("PGPASSWORD", secret)
        r = ctl("--db", url, "db", "init")
        assert r.rc == 0, r
        ws = os.path.join(tmp, "ws")
        go = os.path.join(tmp, "go")
        r = ctl("--db", url, "run", "import", "/dev/stdin",
                input=json.dumps({"runs": [{
                    "run_id": "walk", "workspace": ws, "goal": "g", "tiers": [{
                        "tier_id": "T1", "name": "t", "phases": [
                            phase_spec("p-walk", ("out/walk.py",), check=WALK)]}]}]}))
        assert r.rc == 0, r
        llm = Standin(tmp, {"default": {"mode": "sleep", "seconds": 100, "until": go}})
        sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", *llm_args(llm),
                         env={"ANTHROPIC_API_KEY": "sk-ant-%s" % uuid.uuid4().hex})
        try:
            sup.wait_ready()
            wait_for(lambda: len(sup.status()["pool"]["workers"]) == 2, 60,
                     what="both workers")
            pids = [sup.proc.pid] + [w["pid"] for w in sup.status()["pool"]["workers"]]
            assert len(pids) == 3
            for pid in pids:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    data = f.read()
                assert secret.encode() not in data, pid
            # Its sessions ended: the connection made again is given the password too.
            cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE usename = 'pw'")
            open(go, "w").close()
            assert sup.wait(timeout=120) == 0, sup.stderr()
        finally:
            sup.kill()
            llm.stop()
        assert "cannot connect" not in sup.stderr(), sup.stderr()
        with open(os.path.join(ws, ".autopack", "logs", "walk__p-walk__a1.stdout.txt")) as f:
            walked = f.read()
        assert "autopack-worker" in walked and secret not in walked, walked
        assert [r[0] for r in cluster_rows(url, secret)] == ["success"]
    finally:
        cluster.close()


def cluster_rows(url, secret):
    """The attempts' outcomes, read with the password."""
    import psycopg2
    con = psycopg2.connect(url, password=secret)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT outcome FROM attempts")
            return cur.fetchall()
    finally:
        con.close()
