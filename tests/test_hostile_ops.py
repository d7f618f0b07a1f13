"""What a hostile operator does to the real binaries by hand: descriptors that are not
what a flag names, and the like. Each gets a clear error naming what is wrong and a
status that says it failed."""
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest

import legacy_db
from conftest import DATA, binpath, ctl, run
from supervisor_helpers import Supervisor, new_db

SAMPLES = os.path.join(DATA, "autopack-v2-telemetry-samples.tsv")


def worker(args, **kw):
    return subprocess.run([binpath("autopack-worker")] + args, capture_output=True,
                          text=True, timeout=60, **kw)


def test_a_worker_given_a_descriptor_that_is_not_an_open_socket_says_so_and_exits_2(tmp):
    """`--fd N` names the socket the frames travel on: a descriptor that is not open, or
    that is a file, a pipe or /dev/null, read as a supervisor gone away at once, and the
    worker exited 0 saying `supervisor went away (Bad file descriptor)`."""
    (tmp / "afile").write_text("x")
    with open(os.devnull) as null, open(str(tmp / "afile")) as f:
        for flag in ("--fd", "--handoff-fd"):
            r = worker([flag, "99"], stdin=null)
            assert r.returncode == 2, r
            assert "autopack-worker: %s: descriptor 99 is not open" % flag in r.stderr, r
            r = worker([flag, "0"], stdin=null)
            assert r.returncode == 2, r
            assert "%s: descriptor 0 is not a socket (it is a character device)" % flag \
                in r.stderr, r
            r = worker([flag, "0"], stdin=f)
            assert r.returncode == 2, r
            assert "descriptor 0 is not a socket (it is a regular file)" in r.stderr, r
        r = worker(["--fd", "0"], input="")
        assert r.returncode == 2 and "(it is a pipe)" in r.stderr, r
    # A socket whose peer is gone is still a supervisor that went away: exit 0.
    mine, theirs = socket.socketpair()
    mine.close()
    r = worker(["--fd", str(theirs.fileno())], pass_fds=(theirs.fileno(),))
    theirs.close()
    assert r.returncode == 0 and "supervisor went away" in r.stderr, r


@pytest.mark.parametrize("mask", [0o777, 0o277, 0o100], ids=["0777", "0277", "0100"])
def test_a_umask_that_takes_the_owners_permissions_is_refused_before_anything_is_made(tmp,
                                                                                     mask):
    """Under `umask 0777` (or any that takes a permission from the owner) the files and
    directories a program makes are ones it cannot open again: db init made a database of
    mode 0000, and a supervisor's workers could not open the log file it had made, each
    exited 1, and the breaker stopped the drain as a crash loop."""
    db = "sqlite:///" + str(tmp / "a.db")
    log = str(tmp / "sup.log")
    for args in (["autopack-ctl", "--db", db, "db", "init"],
                 ["autopack-supervisor", "--db", db, "--dry-run", "--log-file", log],
                 ["autopack-worker", "--fd", "3", "--log-file", log]):
        p = subprocess.run([binpath(args[0])] + args[1:], capture_output=True, text=True,
                           timeout=60, preexec_fn=lambda: os.umask(mask))
        assert p.returncode == 1, (args, p)
        assert p.stderr == (
            "%s: the umask is %04o: it takes permissions away from the owner of the files and"
            " directories autopack makes (its log, a new database, the control sockets' "
            "directory), which it could then not open again; set a umask that leaves the "
            "owner's (umask 077, UMask=0077) and start again\n" % (args[0], mask)), p
        assert os.listdir(str(tmp)) == [], os.listdir(str(tmp))
    # One that takes only the group's and others' is fine.
    p = subprocess.run([binpath("autopack-ctl"), "--db", db, "db", "init"],
                       capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: os.umask(0o077))
    assert p.returncode == 0, p
    assert stat.S_IMODE(os.stat(str(tmp / "a.db")).st_mode) == 0o600


def test_the_model_files_are_made_under_the_umask_and_keep_the_mode_they_had(tmp):
    """Under the unit's UMask=0077 every file autopack makes is its user's alone, but the
    model's files were made 0644 whatever the umask (a mode set on each after its
    write): readable by every user of the machine in a workspace others may enter. A
    new one is made 0644 less the umask; one that exists keeps its mode."""
    from e2e_helpers import Standin, drain, import_plan, init_db, phase_spec
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(os.path.join(ws, "out"))
    os.chmod(ws, 0o755)
    with open(os.path.join(ws, "out", "old.py"), "w") as f:
        f.write("x = 0\n")
    os.chmod(os.path.join(ws, "out", "old.py"), 0o664)
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", ws, [phase_spec(
        "p1", ("out/new.py", "out/old.py", "out/sub/deep.py"), check="true")])])
    llm = Standin(tmp)
    try:
        drain(tmp, url, llm, prefix=("sh", "-c", 'umask 077 && exec "$@"', "sh"))
    finally:
        llm.stop()
    modes = {p: oct(stat.S_IMODE(os.stat(os.path.join(ws, p)).st_mode))
             for p in ("out/new.py", "out/old.py", "out/sub", "out/sub/deep.py")}
    assert modes == {"out/new.py": "0o600", "out/old.py": "0o664", "out/sub": "0o700",
                     "out/sub/deep.py": "0o600"}, modes


def test_telemetry_export_to_a_fifo_no_one_reads_is_refused_and_one_read_gets_it_all(tmp):
    """`telemetry export --out FIFO` waited for a reader for ever, the database open, when
    none was started; with one reading, the FIFO gets every event."""
    db = "sqlite:///" + str(tmp / "a.db")
    assert ctl("--db", db, "db", "init").rc == 0
    r = ctl("--db", db, "telemetry", "import", SAMPLES)
    assert r.rc == 0, r
    os.mkfifo(str(tmp / "ff"))
    r = ctl("--db", db, "telemetry", "export", "--out", "ff", timeout=10)
    assert r.rc == 1, r
    assert r.err.endswith("autopack-ctl: cannot write ff: it is a FIFO that no process has "
                          "open for reading; start its reader first\n"), r
    got = []
    reader = threading.Thread(target=lambda: got.append(open(str(tmp / "ff"), "rb").read()))
    reader.start()
    r = None
    for _ in range(200):  # until the reader has the FIFO open
        r = ctl("--db", db, "telemetry", "export", "--out", "ff", timeout=30)
        if r.rc == 0:
            break
        time.sleep(0.05)
    reader.join(30)
    assert r.rc == 0, r
    lines = got[0].decode().splitlines()
    assert len(lines) == 64 and all(json.loads(x)["run_id"] for x in lines), got


LISTENER = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.setgid(65534); os.setuid(65534)
s.listen(8)
print("listening", flush=True)
got = b""
while True:
    c, _ = s.accept()
    c.settimeout(2)
    try:
        got += c.recv(100)
    except OSError:
        pass
    print("got %d" % len(got), flush=True)
"""


def test_ctl_refuses_a_control_socket_served_by_another_uid_sending_nothing(tmp):
    """A supervisor answers only its own uid: one run by another user closed the connection
    unanswered and autopack-ctl said only `sending to the supervisor: Broken pipe` or `the
    supervisor closed the connection`. A listener of another uid (a supervisor, or another
    user's program put at the path) is named with its pid and uid, and sent nothing."""
    path = str(tmp / "c.sock")
    p = subprocess.Popen([sys.executable, "-c", LISTENER, path], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline() == "listening\n"
        for args in (["status"], ["stop", "--now"], ["scale", "3"]):
            r = ctl(*args, "--control", path, timeout=60)
            assert r.rc == 1, r
            assert r.err == (
                "autopack-ctl: the process serving the control socket %s (pid %d) runs as "
                "uid 65534, not as this user (uid %d): a supervisor answers only its own "
                "user's commands; run autopack-ctl as uid 65534\n" % (path, p.pid,
                                                                       os.getuid())), r
            assert p.stdout.readline() == "got 0\n"
    finally:
        p.kill()
        p.wait()


def test_a_control_socket_in_a_directory_that_does_not_exist_is_named_so(tmp):
    """libuv reports a bind in a missing directory as EACCES: the supervisor said
    `control socket nodir/x.sock.PID.new: permission denied`, naming neither the path given
    nor the cause."""
    from supervisor_helpers import new_db
    url = new_db(tmp, runs=1, phases=1)
    (tmp / "afile").write_text("x")
    # A relative path is taken from the current directory, and named absolute.
    for path, why in (("nodir/x.sock", "its directory %s/nodir: No such file or directory"),
                      ("afile/x.sock", "%s/afile is not a directory")):
        r = run("autopack-supervisor", "--db", url, "--dry-run", "--control", path,
                cwd=str(tmp))
        assert r.rc == 1, r
        assert "error: control socket %s/%s: %s\n" % (tmp, path, why % tmp) in r.err, r
        assert ".new" not in r.err, r
    assert not [n for n in os.listdir(str(tmp)) if "sock" in n], os.listdir(str(tmp))


def test_a_double_dash_ends_the_options_before_the_command_as_getopt_takes_it(tmp):
    """`autopack-ctl -- db check` was refused as an unknown option (exit 2); getopt takes
    `--` as the end of the options, and so do a command's own arguments and the
    supervisor's."""
    db = "sqlite:///" + str(tmp / "a.db")
    r = ctl("--db", db, "--", "db", "init")
    assert r.rc == 0, r
    for args in (["--db", db, "--", "db", "check", "--allow-empty-db"],
                 ["--json", "--db", db, "--", "db", "check", "--allow-empty-db"],
                 ["--db", db, "db", "check", "--allow-empty-db", "--"]):
        r = ctl(*args)
        assert r.rc == 0, (args, r)
        assert "unknown option" not in r.err, (args, r)
    assert json.loads(ctl("--json", "--db", db, "--", "session", "list").out) is not None
    # After it, a word beginning with - is no option: here an unknown command.
    r = ctl("--", "--db", db, "db", "check")
    assert r.rc == 2 and r.err.startswith("autopack-ctl: unknown command '--db'\n"), r
    r = ctl("--db", db, "--")
    assert r.rc == 2 and r.err.startswith("autopack-ctl: no command given\n"), r
    r = run("autopack-supervisor", "--db", db, "--dry-run", "--exit-when-drained",
            "--allow-empty-db", "--control", str(tmp / "c.sock"), "--")
    assert r.rc == 0, r


def test_a_view_standing_in_for_a_table_is_named_a_view(tmp):
    """A table replaced by a view of the same name (the rows moved to another table) was
    reported as missing (`is missing 1 table of schema version 5: phases`) by db check
    and the supervisor, and adoption took a view for no table at all."""
    path = str(tmp / "a.db")
    db = "sqlite:///" + path
    assert ctl("--db", db, "db", "init").rc == 0
    con = sqlite3.connect(path)
    con.executescript("ALTER TABLE phases RENAME TO phases_kept;"
                      " CREATE VIEW phases AS SELECT * FROM phases_kept;")
    con.close()
    uuid = sqlite3.connect(path).execute("SELECT db_uuid FROM meta").fetchone()[0]
    said = ("%s: autopack database (uuid %s): phases is a view, where schema version 5 has a"
            " table: autopack writes into each of its tables, so it refuses to use the"
            " database (drop the view and restore the table from a backup)\n" % (path, uuid))
    r = ctl("--db", db, "db", "check")
    assert r.rc == 2 and r.err == "autopack-ctl: " + said, r
    r = run("autopack-supervisor", "--db", db, "--dry-run", "--exit-when-drained",
            "--control", str(tmp / "c.sock"))
    assert r.rc == 1 and r.err.endswith("error: " + said), r
    # The original's database with its phases as a view: adoption names it.
    legacy = str(tmp / "legacy.db")
    legacy_db.build(legacy)
    con = sqlite3.connect(legacy)
    con.executescript("ALTER TABLE phases RENAME TO phases_kept;"
                      " CREATE VIEW phases AS SELECT * FROM phases_kept;")
    con.close()
    for args in (["--dry-run"], []):
        r = ctl("--db", "sqlite:///" + legacy, "db", "adopt", *args)
        assert r.rc == 2, r
        assert ("%s: phases is a view, where a Python-Autopack database has a table"
                " (adoption reads and rewrites its rows); drop the view and restore the"
                " table from a backup, then adopt again; " % legacy) in r.err, r


def side_files(d):
    return sorted(n for n in os.listdir(str(d)) if n.endswith(("-wal", "-shm")))


def test_a_supervisor_refused_at_start_leaves_no_wal_or_shm_it_made(tmp):
    """A supervisor that opened the database and was then refused (a --run-id the database
    does not hold, its control socket, a copy of a database another supervisor serves)
    exited without closing it: SQLite's -wal and -shm files stayed beside a database no
    one used. So did a reading command refused by the schema."""
    os.mkdir(str(tmp / "a"))
    db = new_db(tmp / "a", runs=1, phases=2)
    path = db[len("sqlite:///"):]
    assert side_files(tmp / "a") == []
    for args in (["--run-id", "nope", "--exit-when-drained"],
                 ["--control", str(tmp / "no" / "such" / "dir.sock")]):
        r = run("autopack-supervisor", "--db", db, "--dry-run", *args,
                *([] if "--control" in args else ["--control", str(tmp / "c.sock")]))
        assert r.rc == 1, (args, r)
        assert side_files(tmp / "a") == [], (args, r)
    # What the refused start committed is in the file.
    con = sqlite3.connect(path)
    assert con.execute("SELECT stop_reason FROM drain_sessions").fetchall() == [
        ("refused to start: the control socket could not be opened",)]
    con.close()
    # A byte copy of a database another supervisor serves.
    os.mkdir(str(tmp / "b"))
    shutil.copyfile(path, str(tmp / "b" / "copy.db"))
    sup = Supervisor(tmp, db, "--workers", 0, "--dry-run")
    try:
        sup.wait_ready()
        r = run("autopack-supervisor", "--db", "sqlite:///" + str(tmp / "b" / "copy.db"),
                "--dry-run", "--control", str(tmp / "d.sock"))
        assert r.rc == 1 and "is already served by autopack-supervisor" in r.err, r
        assert side_files(tmp / "b") == [], r
    finally:
        assert sup.stop_now() == 0
    # A schema refused, to the supervisor and to a reading command.
    con = sqlite3.connect(path)
    con.executescript("ALTER TABLE phases RENAME TO phases_kept;"
                      " CREATE VIEW phases AS SELECT * FROM phases_kept;")
    con.close()
    assert side_files(tmp / "a") == []
    r = run("autopack-supervisor", "--db", db, "--dry-run", "--control", str(tmp / "c.sock"))
    assert r.rc == 1 and "is a view" in r.err, r
    for args in (["db", "check"], ["session", "list"], ["failed"]):
        r = ctl("--db", db, *args)
        assert r.rc == 2 and "is a view" in r.err, (args, r)
        assert side_files(tmp / "a") == [], (args, r)


def as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def test_a_supervisor_of_another_user_is_named_with_the_directory_that_keeps_it(tmp):
    """A supervisor of another user (root, a service's user) keeps its control socket in a
    directory only that user may enter (/run/autopack, mode 0700). autopack-ctl run by
    another user said only `cannot connect to the supervisor at …: Permission denied`,
    and `retry`, taking the supervisor for dead (kill(pid, 0) fails with EPERM for another
    user's process), wrote offline and was told `held by autopack-supervisor pid N …
    send the command through it`. Both name the directory, its owner and what to do."""
    if os.getuid() != 0:
        pytest.skip("needs root, to run autopack-ctl as another user")
    import tempfile
    base = tempfile.mkdtemp(prefix="autopack-other-user-", dir="/tmp")
    try:
        os.chmod(base, 0o777)
        path = os.path.join(base, "d.db")
        db = "sqlite:///" + path
        assert ctl("--db", db, "db", "init").rc == 0
        assert ctl("--db", db, "seed", "telemetry-run", "--workspace",
                   os.path.join(base, "ws")).rc == 0
        os.chmod(path, 0o666)
        priv = os.path.join(base, "priv")
        os.mkdir(priv, 0o700)
        sock = os.path.join(priv, "c.sock")
        sup = Supervisor(base, db, "--workers", 0, "--dry-run", control=sock)
        try:
            sup.wait_ready()
            said = ("autopack-ctl: cannot connect to the supervisor at %s: its directory %s"
                    " (mode 0700, owner uid 0) cannot be entered by this user (uid 65534):"
                    " Permission denied (a supervisor keeps its control socket where only"
                    " its user may reach it, and answers only that user's commands: run"
                    " autopack-ctl as uid 0)\n" % (sock, priv))
            for args in (["status"], ["retry", "--all"], ["stop"]):
                p = subprocess.run([binpath("autopack-ctl"), "--db", db] + args,
                                   capture_output=True, text=True, timeout=60,
                                   preexec_fn=as_nobody)
                assert p.returncode == 1, (args, p)
                assert p.stderr == said, (args, p)
            assert sup.proc.poll() is None
        finally:
            sup.stop_now()
    finally:
        shutil.rmtree(base)


def test_a_relative_control_path_is_recorded_absolute_and_found_from_anywhere(tmp):
    """`--control rel.sock` was recorded in the database as given, relative: autopack-ctl
    run from any other directory read it there and said `cannot connect to the supervisor
    at rel.sock: No such file or directory`, exit 1, as if none ran (and a forwarded
    `run import` or `retry` failed alike)."""
    from supervisor_helpers import Supervisor, new_db, sql
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run", "--control", "rel.sock",
                     control=False)
    want = os.path.join(str(tmp), "rel.sock")
    try:
        assert sup.wait_ready()["state"] == "running"
        assert sql(url, "SELECT control_socket FROM meta") == [(want,)]
        assert "control socket %s\n" % want in sup.stderr()
        for cwd in ("/", str(tmp / "..")):
            r = ctl("--db", url, "status", "--json", cwd=cwd)
            assert r.rc == 0, (cwd, r)
            assert json.loads(r.out)["pid"] == sup.proc.pid
        r = ctl("--db", url, "retry", "--all-failed", cwd="/")
        assert r.rc == 0 and "nothing to retry" in r.out, r
        assert ctl("--db", url, "stop", cwd="/").rc == 0
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
    assert not os.path.exists(want)
