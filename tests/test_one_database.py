"""One writer, one database, one supervisor, also under hard links, copies, a lost WAL, a
uuid that is a path, a dropped column, odd URLs and the files' modes: each case of the
README's "What can go wrong" on real files, with the real binaries as separate
processes. (The full disk and the stall are in test_faults.py.)"""
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import struct
import subprocess
import threading

import msgpack
import pytest

from conftest import binpath, ctl, preload, run
from supervisor_helpers import (Standin, Supervisor, gate_check, llm_supervisor, new_db, sql,
                                wait_for)

def path_of(url):
    return url[len("sqlite:///"):]


def canonical(path):
    return "sqlite:///" + os.path.realpath(path)


def write_sql(path, script):
    """Change a database behind autopack's back, as an operator with sqlite3 would."""
    con = sqlite3.connect(path)
    con.executescript(script)
    con.commit()
    con.close()


def read_sql(path, query):
    """Read a database no process holds (read-write, so a missing -shm is no obstacle)."""
    con = sqlite3.connect(path)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def uuid_of(url):
    return sql(url, "SELECT db_uuid FROM meta")[0][0]


def runtime_dir():
    """Where supervisors of this user keep default sockets and uuid claims: outside /tmp
    whenever possible (README, "Environment and files")."""
    uid = os.getuid()
    run_dir = "/run/autopack"
    if (os.path.isdir(run_dir) and os.stat(run_dir).st_uid == uid) or \
            (uid == 0 and not os.path.exists(run_dir)):
        return run_dir
    for base in (os.environ.get("XDG_RUNTIME_DIR"), "/run/user/%d" % uid):
        if base and base.startswith("/") and os.path.isdir(base) and \
                os.stat(base).st_uid == uid:
            return base + "/autopack"
    return "/tmp/autopack-%d" % uid


# Runs "$@" with a private, empty /tmp (as systemd's PrivateTmp= gives a service), in
# which only the test's directory $1 and the binaries' directory $2 (when under /tmp) are
# mounted back at their own paths.
PRIVATE_TMP = r"""set -e
t=$1; b=$2; shift 2
exec 3<"$t" 4<"$b"
mount --make-rprivate /
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p "$t"
mount --no-canonicalize --bind /proc/self/fd/3 "$t"
case "$b" in /tmp/*) mkdir -p "$b"; mount --no-canonicalize --bind /proc/self/fd/4 "$b";; esac
exec 3<&- 4<&-
exec "$@"
"""


def no_phase_succeeded_twice(path):
    return read_sql(path, "SELECT count(*) FROM (SELECT run_id, phase_id FROM attempts"
                          " WHERE outcome = 'success' GROUP BY 1, 2 HAVING count(*) > 1)") \
        == [(0,)]


# --- 1. hard links ----------------------------------------------------------------------

def test_1_a_second_name_is_refused_and_the_lock_is_the_files_own(tmp, llm):
    # The phases wait at a gate: the supervisor is still draining while it is looked at.
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=2, phases=3, check=check)
    path = path_of(url)
    hard = os.path.join(str(tmp), "hard.db")
    os.link(path, hard)
    for u in (url, "sqlite:///" + hard):
        r = run("autopack-supervisor", "--db", u, "--workers", 1)
        assert r.rc == 1 and "has 2 names (hard links)" in r.err, r
        assert "-samefile" in r.err, r
        r = ctl("--db", u, "db", "check")
        assert r.rc == 2 and "has 2 names" in r.err, r
    os.unlink(hard)
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--exit-when-drained")
    sup.wait_ready()
    # There is no side file whose removal frees the lock, and a name made while the
    # supervisor runs reaches the same locked file.
    assert not os.path.exists(path + ".lock")
    os.link(path, hard)
    for u in (url, "sqlite:///" + hard):
        r = run("autopack-supervisor", "--db", u, "--workers", 1,
                "--control", os.path.join(str(tmp), "second.sock"))
        assert r.rc == 1, r
        assert "held by autopack-supervisor pid %d" % sup.proc.pid in r.err, r
    r = ctl("--db", "sqlite:///" + hard, "seed", "telemetry-run")
    assert r.rc == 2 and "has 2 names" in r.err, r
    os.unlink(hard)
    open(go, "w").close()
    assert sup.wait(timeout=180) == 0, sup.stderr()
    assert read_sql(path, "SELECT state, count(*) FROM phases GROUP BY 1") == [("COMPLETE", 6)]
    assert read_sql(path, "SELECT count(*) FROM attempts") == [(6,)]
    assert no_phase_succeeded_twice(path)
    assert read_sql(path, "PRAGMA integrity_check") == [("ok",)]


# --- 2. copies ------------------------------------------------------------------------

def test_2_a_claim_removed_while_the_original_is_served_is_taken_again(tmp):
    # A cleaner of the runtime directory removed the claim with the socket: a copy's
    # supervisor started then was not refused, and two supervisors served one uuid.
    orig = new_db(tmp, runs=1, phases=2)
    copy_path = os.path.join(str(tmp), "copy.db")
    shutil.copyfile(path_of(orig), copy_path)
    uuid = uuid_of(orig)
    a = Supervisor(tmp, orig, "--workers", 0, name="orig")
    try:
        a.wait_ready()
        claim = os.path.join(runtime_dir(), uuid + ".claim")
        os.unlink(claim)
        wait_for(lambda: "the uuid claim of %s was removed by another program; took it "
                 "again" % canonical(path_of(orig)) in a.stderr(), 30,
                 what="the claim taken again")
        with open(claim) as f:
            assert f.readline().strip() == str(a.proc.pid)
        r = run("autopack-supervisor", "--db", "sqlite:///" + copy_path, "--workers", 0)
        assert r.rc == 1, r
        assert "uuid %s is already served by autopack-supervisor pid %d" % (
            uuid, a.proc.pid) in r.err, r
        assert a.ctl("stop").rc == 0
        assert a.wait() == 0, a.stderr()
        assert not os.path.exists(claim)
    finally:
        a.kill()


def test_2_a_copy_gets_no_control_of_the_original_and_its_own_identity(tmp):
    orig = new_db(tmp, runs=1, phases=2)
    copy_path = os.path.join(str(tmp), "copy.db")
    shutil.copyfile(path_of(orig), copy_path)
    copy = "sqlite:///" + copy_path
    uuid = uuid_of(orig)
    a = Supervisor(tmp, orig, "--workers", 0, name="orig", control=False)
    a.wait_ready()
    sock_a = sql(orig, "SELECT control_socket FROM meta")[0][0]
    st = os.stat(path_of(orig))
    assert sock_a == "%s/%s-%d-%d.sock" % (runtime_dir(), uuid, st.st_dev, st.st_ino)
    # The copy's supervisor is refused while the original is served, naming it and the fix.
    r = run("autopack-supervisor", "--db", copy, "--workers", 0)
    assert r.rc == 1, r
    assert "uuid %s is already served by autopack-supervisor pid %d of %s" % (
        uuid, a.proc.pid, canonical(path_of(orig))) in r.err, r
    assert "db reidentify" in r.err
    # A command about the copy reaches no supervisor: not the original's.
    r = ctl("--db", copy, "stop", "--now")
    assert r.rc == 1 and "no autopack-supervisor is running on %s" % canonical(copy_path) \
        in r.err, r
    # Through the original's socket by name, both ends refuse it.
    r = ctl("--db", copy, "stop", "--now", "--control", sock_a)
    assert r.rc == 1 and "wrong_database" in r.err and "device:inode" in r.err, r
    assert a.proc.poll() is None
    # The copy gets its own identity; the one it came from is recorded.
    r = ctl("--db", copy, "db", "reidentify", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert j["previous_uuid"] == uuid and j["uuid"] != uuid
    assert read_sql(copy_path, "SELECT command, args, ok FROM control_log") == \
        [("db reidentify", uuid, 1)]
    assert read_sql(copy_path, "SELECT supervisor_pid, control_socket FROM meta") == \
        [(None, None)]
    b = Supervisor(tmp, copy, "--workers", 0, name="copy", control=False)
    b.wait_ready()
    assert b.status()["db_url"] == canonical(copy_path)
    r = ctl("--db", orig, "stop", "--now", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert (j["db_url"], j["db_uuid"]) == (canonical(path_of(orig)), uuid)
    assert a.wait() == 0
    assert b.proc.poll() is None
    assert not os.path.exists(sock_a)
    assert ctl("--db", copy, "stop", "--now").rc == 0
    assert b.wait() == 0


def serve_one_reply(path, reply):
    """A control peer that answers one request with `reply` (a rogue supervisor)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    seen = []

    def loop():
        conn, _ = srv.accept()
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            data += conn.recv(65536)
        seen.append(msgpack.unpackb(data[4:], raw=False))
        body = msgpack.packb(reply, use_bin_type=True)
        conn.sendall(struct.pack(">I", len(body)) + body)
        conn.close()
        srv.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t, seen


def test_2_a_copy_is_refused_also_when_its_supervisor_has_a_private_tmp(tmp):
    if os.geteuid() != 0 or shutil.which("unshare") is None or \
            not str(tmp).startswith("/tmp/"):
        pytest.skip("needs root, unshare and a test directory under /tmp to mount a "
                    "private /tmp")
    probe = run_private_tmp(tmp, ["true"])
    if probe.returncode != 0:
        pytest.skip("mounting a private /tmp is not permitted here: " + probe.stderr)
    orig = new_db(tmp, runs=1, phases=2)
    copy_path = os.path.join(str(tmp), "copy.db")
    shutil.copyfile(path_of(orig), copy_path)
    uuid = uuid_of(orig)
    a = Supervisor(tmp, orig, "--workers", 0, name="orig", control=False)
    try:
        a.wait_ready()
        # The copy's supervisor sees a /tmp of its own, as under PrivateTmp=yes: the
        # claim of the original's supervisor is still found, and it is refused.
        b = Supervisor(tmp, "sqlite:///" + copy_path, "--workers", 0, name="copy",
                       control=os.path.join(str(tmp), "copy.sock"),
                       prefix=["unshare", "-m", "sh", "-c", PRIVATE_TMP, "sh", str(tmp),
                               os.path.dirname(binpath("autopack-supervisor"))])
        rc = b.wait(timeout=30)
        assert rc == 1, b.stderr()
        assert "uuid %s is already served by autopack-supervisor pid %d" % (
            uuid, a.proc.pid) in b.stderr(), b.stderr()
        assert not os.path.exists(os.path.join(str(tmp), "copy.sock"))
    finally:
        a.signal(15)
        assert a.wait() == 0, a.stderr()


def run_private_tmp(tmp, argv):
    return subprocess.run(["unshare", "-m", "sh", "-c", PRIVATE_TMP, "sh", str(tmp),
                           os.path.dirname(binpath("autopack-supervisor"))] + argv,
                          capture_output=True, text=True, timeout=60)


def test_2_a_claim_is_removed_when_its_supervisor_exits_or_is_found_stale(tmp):
    url = new_db(tmp, runs=1, phases=1)
    claim = os.path.join(runtime_dir(), uuid_of(url) + ".claim")
    sup = Supervisor(tmp, url, "--workers", 0)
    sup.wait_ready()
    assert os.path.exists(claim)
    with open(claim) as f:
        assert f.readline().strip() == str(sup.proc.pid)
    sup.signal(15)
    assert sup.wait() == 0, sup.stderr()
    assert not os.path.exists(claim), "the claim outlived its supervisor"
    # A supervisor killed leaves its claim; the next one to claim removes every claim
    # nobody holds (and keeps those held).
    sup = Supervisor(tmp, url, "--workers", 0)
    sup.wait_ready()
    sup.kill()
    assert os.path.exists(claim)
    odir = os.path.join(str(tmp), "other")
    os.makedirs(odir)
    other = new_db(odir, runs=1, phases=1)
    held = Supervisor(odir, other, "--workers", 0)
    try:
        held.wait_ready()
        held_claim = os.path.join(runtime_dir(), uuid_of(other) + ".claim")
        assert not os.path.exists(claim), "a stale claim was kept"
        assert os.path.exists(held_claim)
        sup = Supervisor(tmp, url, "--workers", 0, name="again")
        sup.wait_ready()
        assert os.path.exists(held_claim), "a held claim was removed"
        sup.signal(15)
        assert sup.wait() == 0, sup.stderr()
    finally:
        held.signal(15)
        assert held.wait() == 0, held.stderr()
    assert not os.path.exists(held_claim)


def test_2_a_claim_the_disk_has_no_room_for_is_refused_naming_why(tmp):
    """The claim's write fell short on a full disk (full-shim.so leaves it 10 bytes): the
    supervisor refused to start naming a stale errno, `…claim: Resource temporarily
    unavailable` (the flock's), which no operator could act on. The rest is written again,
    and the write that fails names the disk's reason and what was written."""
    url = new_db(tmp, runs=1, phases=1)
    claim = os.path.join(runtime_dir(), uuid_of(url) + ".claim")
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     env=preload("full-shim.so", AUTOPACK_FULL_SHIM_SUFFIX=".claim",
                                 AUTOPACK_FULL_SHIM_BYTES="10"))
    assert sup.wait() == 1, sup.stderr()
    line = "%s: cannot write the claim: 10 of its %d bytes written, then No space left " \
        "on device" % (claim, len("%d\n%s\n" % (sup.proc.pid, canonical(path_of(url))))
                       + len("%d:%d\n" % (os.stat(path_of(url)).st_dev,
                                          os.stat(path_of(url)).st_ino)))
    assert line in sup.stderr(), sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    # With room on the disk the next supervisor claims the database and drains it.
    again = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                       name="again")
    assert again.wait() == 0, again.stderr()
    assert sql(url, "SELECT count(*) FROM attempts") == [(1,)]


def test_2_ctl_refuses_a_reply_about_another_database(tmp):
    url = new_db(tmp, runs=0)
    path = path_of(url)
    st = os.stat(path)
    mine = "%d:%d" % (st.st_dev, st.st_ino)
    for db, dev in (("sqlite:////elsewhere/copy.db", mine), (canonical(path), "1:2")):
        sockp = os.path.join(str(tmp), "rogue.sock")
        t, seen = serve_one_reply(sockp, {
            "v": 1, "t": "reply", "id": 1, "ok": True, "db": db, "uuid": uuid_of(url),
            "dev": dev, "body": '{"in_flight": 0, "mode": "now"}', "more": False})
        r = ctl("--db", url, "stop", "--now", "--control", sockp)
        t.join(10)
        os.unlink(sockp)
        assert r.rc == 1, r
        assert "answered for database %s" % db in r.err and "refused" in r.err, r
        # The request carried the identity the client expects.
        assert (seen[0]["db"], seen[0]["uuid"], seen[0]["dev"]) == \
            (canonical(path), uuid_of(url), mine)


def test_2_a_live_socket_is_never_replaced_and_a_stale_one_is(tmp):
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    url_a = new_db(tmp / "a", runs=0)
    url_b = new_db(tmp / "b", runs=0)
    sockp = os.path.join(str(tmp), "ctl.sock")
    a = Supervisor(tmp, url_a, "--workers", 0, "--allow-empty-db", name="a", control=sockp)
    a.wait_ready()
    r = run("autopack-supervisor", "--db", url_b, "--workers", 0, "--allow-empty-db",
            "--control", sockp)
    assert r.rc == 1 and "answers on it; refusing to replace it" in r.err, r
    assert a.status()["db_url"] == canonical(path_of(url_a))
    assert a.ctl("stop", "--now").rc == 0
    assert a.wait() == 0
    # A socket left by a process that is gone is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sockp)
    stale.close()
    b = Supervisor(tmp, url_b, "--workers", 0, "--allow-empty-db", name="b", control=sockp)
    b.wait_ready()
    assert "left by a process that is gone; replacing it" in b.stderr()
    assert b.ctl("stop", "--now").rc == 0
    assert b.wait() == 0


def test_2_sockets_of_killed_supervisors_are_removed_and_their_sessions_listed_dead(tmp):
    """A SIGKILLed supervisor leaves its control socket in the runtime directory, and so
    did every one before it: a PostgreSQL one's is named by its pid and never taken
    again, a SQLite one's by a file that may never be drained again, so they piled up
    (80 in /run/autopack of a test machine). A supervisor that starts removes those on
    which nobody listens, and leaves a live one and whatever is no socket; `session list`
    says the killed one's session was interrupted, also while it is not yet reaped."""
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    url_a = new_db(tmp / "a", runs=1, phases=1)
    url_b = new_db(tmp / "b", runs=1, phases=1)
    a = Supervisor(tmp, url_a, "--workers", 1, "--dry-run", name="a", control=False)
    a.wait_ready()
    sock_a = sql(url_a, "SELECT control_socket FROM meta")[0][0]
    assert os.path.dirname(sock_a) == runtime_dir()
    a.proc.kill()  # not reaped: a zombie, which kill(2) still finds
    wait_for(lambda: open("/proc/%d/stat" % a.proc.pid).read().rsplit(")", 1)[1][1] == "Z",
             what="the killed supervisor a zombie")
    assert os.path.exists(sock_a)
    [session] = json.loads(ctl("--db", url_a, "session", "list", "--json").out)["sessions"]
    assert session["status"] == "interrupted", session
    r = ctl("--db", url_a, "status")
    assert r.rc == 1 and "no autopack-supervisor is running" in r.err, r
    a.proc.wait()
    # Another dead one (as a killed PostgreSQL supervisor leaves), a live one, and a file
    # with a socket's name that is none.
    tag = os.urandom(6).hex()
    dead = os.path.join(runtime_dir(), "test-%s-pid4194304.sock" % tag)
    live = os.path.join(runtime_dir(), "test-%s-live.sock" % tag)
    plain = os.path.join(runtime_dir(), "test-%s-plain.sock" % tag)
    d = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    d.bind(dead)
    d.close()
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(live)
    listening.listen(1)
    open(plain, "w").close()
    try:
        b = Supervisor(tmp, url_b, "--workers", 1, "--dry-run", name="b", control=False)
        b.wait_ready()
        assert not os.path.exists(sock_a) and not os.path.exists(dead)
        assert os.path.exists(live) and os.path.isfile(plain)
        # Said in one line (unless a supervisor of another test, sharing the directory,
        # removed them first).
        if "control socket(s) in" in b.stderr():
            assert re.search(r"removed \d+ control socket\(s\) in %s on which nobody "
                             r"listened \(left by supervisors that were killed\)"
                             % re.escape(runtime_dir()), b.stderr()), b.stderr()
        # Its own socket answers, and so does a new supervisor of the killed one's database.
        assert b.status()["db_url"] == canonical(path_of(url_b))
        a2 = Supervisor(tmp, url_a, "--workers", 1, "--dry-run", name="a2", control=False)
        assert a2.wait_ready()["db_url"] == canonical(path_of(url_a))
        assert a2.stop_now() == 0 and b.stop_now() == 0
    finally:
        listening.close()
        for p in (live, plain):
            os.unlink(p)


# --- 3. the write-ahead log removed ------------------------------------------------------

@pytest.mark.parametrize("side,crash", [("-wal", True), ("-shm", False)])
def test_3_a_removed_wal_or_shm_is_database_lost_with_every_commit_kept(tmp, llm, side,
                                                                         crash):
    url = new_db(tmp, runs=4, phases=5, check="sleep 0.2")
    path = path_of(url)
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--max-attempts-per-phase", 5)
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'")[0][0]
             >= 3, timeout=120, what="three phases committed")
    done_before = set(sql(url, "SELECT run_id, phase_id FROM phases WHERE state = 'COMPLETE'"))
    os.unlink(path + side)
    wait_for(lambda: "DATABASE LOST" in sup.stderr(), timeout=30, what="DATABASE LOST")
    if crash:
        sup.kill()   # a crash right after the report loses nothing either
    else:
        assert sup.wait(timeout=30) == 3
    err = sup.stderr()
    assert path + side in err and "was removed" in err and "checkpointed" in err, err
    assert read_sql(path, "PRAGMA integrity_check") == [("ok",)]
    done_after = set(read_sql(path, "SELECT run_id, phase_id FROM phases"
                                    " WHERE state = 'COMPLETE'"))
    assert done_before <= done_after
    # The next supervisor recovers what was in flight and finishes; nothing runs twice.
    again = llm_supervisor(tmp, url, llm, "--workers", 2, "--exit-when-drained",
                           "--max-attempts-per-phase", 5, name="again")
    assert again.wait(timeout=180) == 0, again.stderr()
    assert read_sql(path, "SELECT state, count(*) FROM phases GROUP BY 1") == \
        [("COMPLETE", 20)]
    assert no_phase_succeeded_twice(path)
    assert read_sql(path, "PRAGMA integrity_check") == [("ok",)]


def test_3_a_write_ahead_log_of_another_database_beside_the_file_is_refused(tmp):
    # A database put in place of one whose supervisor was killed (its -wal left), or a
    # -wal copied from elsewhere: SQLite lays the log's pages over whatever file is next
    # to it. Every command read the file as the other database (its uuid, its rows) and
    # the first write made that permanent, the file's own rows gone.
    a, b = os.path.join(str(tmp), "a.db"), os.path.join(str(tmp), "b.db")
    for p in (a, b):
        assert ctl("--db", "sqlite:///" + p, "db", "init").rc == 0
    assert ctl("--db", "sqlite:///" + b, "seed", "telemetry-run", "--workspace", "ws").rc == 0
    (uuid_a,) = read_sql(a, "SELECT db_uuid FROM meta")[0]
    (uuid_b,) = read_sql(b, "SELECT db_uuid FROM meta")[0]
    con = sqlite3.connect(b, isolation_level=None)
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("UPDATE meta SET supervisor_pid = 1")
    con.execute("UPDATE phases SET state = 'FAILED'")
    shutil.copyfile(b + "-wal", a + "-wal")
    con.close()
    with open(a, "rb") as f:
        before = f.read()
    for args in (["db", "check"], ["failed"], ["retry", "--all-failed"], ["db", "migrate"]):
        r = ctl("--db", "sqlite:///" + a, *args)
        assert r.rc == 2, (args, r)
        assert ("%s-wal: this write-ahead log is another database's: the file %s holds "
                "database %s, and read with the log it reads as database %s"
                % (a, a, uuid_a, uuid_b)) in r.err, (args, r)
    r = run("autopack-supervisor", "--db", "sqlite:///" + a, "--dry-run", "--allow-empty-db",
            "--exit-when-drained", "--control", os.path.join(str(tmp), "c.sock"))
    assert r.rc == 1 and "this write-ahead log is another database's" in r.err, r
    with open(a, "rb") as f:
        assert f.read() == before
    assert os.path.getsize(a + "-wal") > 0
    # Moved away, the file is its own database again.
    os.rename(a + "-wal", os.path.join(str(tmp), "b-commits.wal"))
    r = ctl("--db", "sqlite:///" + a, "--json", "db", "check", "--allow-empty-db")
    assert r.rc == 0 and json.loads(r.out)["database"]["uuid"] == uuid_a, r


@pytest.mark.parametrize("side", ["-wal", "-journal"])
def test_3_db_init_refuses_a_log_left_by_the_database_that_was_there(tmp, side):
    # `rm d.db` after a supervisor was killed leaves its -wal: the "fresh" database db init
    # made there read as the old one with the log applied (its uuid, 10 phases in no run).
    old = os.path.join(str(tmp), "old.db")
    path = os.path.join(str(tmp), "d.db")
    assert ctl("--db", "sqlite:///" + old, "db", "init").rc == 0
    assert ctl("--db", "sqlite:///" + old, "seed", "telemetry-run", "--workspace", "ws").rc == 0
    if side == "-wal":
        con = sqlite3.connect(old, isolation_level=None)
        con.execute("PRAGMA wal_autocheckpoint = 0")
        con.execute("UPDATE phases SET state = 'FAILED'")
        shutil.copyfile(old + "-wal", path + side)
        con.close()
    else:
        with open(path + side, "wb") as f:
            f.write(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + b"\0" * 504)
    r = ctl("--db", "sqlite:///" + path, "db", "init")
    assert r.rc == 1, r
    assert ("%s: refusing to initialise: %s%s (%d bytes) is left there by a database that "
            "was at this path" % (path, path, side, os.path.getsize(path + side))) in r.err, r
    assert "nothing was created" in r.err and not os.path.exists(path), r
    os.unlink(path + side)
    r = ctl("--db", "sqlite:///" + path, "--json", "db", "init")
    assert r.rc == 0 and json.loads(r.out)["database"]["rows"]["phases"] == 0, r


def hot_journal(path, pgno):
    """A rollback journal beside the database `path` as SQLite writes one for a transaction
    cut short (its header, then one record holding page `pgno` as zeros, checksummed), which
    SQLite would copy into the file at the next open."""
    with open(path, "rb") as f:
        hdr = f.read(100)
    size = struct.unpack(">H", hdr[16:18])[0]
    size = 65536 if size == 1 else size
    pages, nonce = os.path.getsize(path) // size, 0x12345678
    head = bytes.fromhex("d9d505f920a163d7") + struct.pack(">IIIII", 1, nonce, pages, 512, size)
    page = bytes(size)
    cksum = (nonce + sum(page[i] for i in range(size - 200, 0, -200))) & 0xffffffff
    with open(path + "-journal", "wb") as f:
        f.write(head.ljust(512, b"\0") + struct.pack(">I", pgno) + page + struct.pack(">I", cksum))


def test_3_a_rollback_journal_beside_the_database_is_refused_before_sqlite_applies_it(tmp):
    # A WAL database never has one; one that another program (or a check command whose
    # workspace holds the database) put there was rolled back into the file by the next
    # open: the supervisor's overwrote the runs table's root page, and it failed
    # "database disk image is malformed".
    url = new_db(tmp, runs=1, phases=2)
    path = path_of(url)
    root = read_sql(path, "SELECT rootpage FROM sqlite_master WHERE name = 'runs'")[0][0]
    hot_journal(path, root)
    with open(path, "rb") as f:
        before = f.read()
    journal = path + "-journal"
    said = ("%s: a rollback journal (%d bytes) beside a database in WAL mode, which never "
            "makes one" % (journal, os.path.getsize(journal)))
    for cmd in (("db", "check"), ("failed",), ("run", "import", "plan.json")):
        r = ctl("--db", url, *cmd, cwd=str(tmp))
        assert r.rc == 2 and said in r.err and "nothing was read or written" in r.err, (cmd, r)
    r = ctl("--db", url, "--json", "db", "check")
    assert r.rc == 2 and json.loads(r.out)["error"] == "ENOTDB", r
    r = run("autopack-supervisor", "--db", url, "--workers", 1, "--exit-when-drained",
            "--dry-run")
    assert r.rc == 1 and said in r.err, r
    with open(path, "rb") as f:
        assert f.read() == before
    # Moved away, nothing of it reached the file; a journal SQLite would not apply (its
    # first byte 0, as journal_mode=PERSIST leaves one) is no obstacle.
    os.rename(journal, os.path.join(str(tmp), "journal.bak"))
    with open(journal, "wb") as f:
        f.write(bytes(512))
    r = ctl("--db", url, "--json", "db", "check")
    assert r.rc == 0 and json.loads(r.out)["database"]["rows"]["runs"] == 1, r
    assert read_sql(path, "PRAGMA integrity_check") == [("ok",)]


# --- 5. a uuid that is a path ------------------------------------------------------------

def test_5_a_uuid_that_is_not_canonical_is_refused_everywhere_until_reidentified(tmp):
    url = new_db(tmp, runs=1, phases=1)
    path = path_of(url)
    write_sql(path, "UPDATE meta SET db_uuid = '../rt/c5/victim'")
    before = set(os.listdir(runtime_dir())) if os.path.isdir(runtime_dir()) else set()
    r = run("autopack-supervisor", "--db", url, "--workers", 0)
    assert r.rc == 1 and 'meta.db_uuid "../rt/c5/victim" is not a canonical UUID' in r.err, r
    assert "db reidentify" in r.err
    assert not os.path.exists("/tmp/rt/c5/victim.sock")
    after = set(os.listdir(runtime_dir())) if os.path.isdir(runtime_dir()) else set()
    assert not [n for n in after - before if "victim" in n]
    for args in (["db", "check"], ["status"], ["seed", "telemetry-run"]):
        r = ctl("--db", url, *args)
        assert r.rc == 2 and "not a canonical UUID" in r.err, (args, r)
    r = ctl("--db", url, "db", "check", "--json")
    assert json.loads(r.out)["error"] == "EIDENT"
    r = ctl("--db", url, "db", "reidentify", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert j["previous_uuid"] == "../rt/c5/victim"
    assert ctl("--db", url, "db", "check").rc == 0


# --- 7. a dropped column -------------------------------------------------------------------

def test_7_a_dropped_column_is_refused_naming_it(tmp):
    url = new_db(tmp, runs=1, phases=1)
    write_sql(path_of(url), "ALTER TABLE attempts DROP COLUMN fingerprint")
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and "missing 1 column" in r.err and "attempts.fingerprint" in r.err, r
    r = ctl("--db", url, "db", "check", "--json")
    assert json.loads(r.out)["error"] == "EPARTIAL"
    r = run("autopack-supervisor", "--db", url, "--workers", 0)
    assert r.rc == 1 and "attempts.fingerprint" in r.err, r
    assert read_sql(path_of(url), "SELECT count(*) FROM drain_sessions") == [(0,)]


@pytest.mark.parametrize("index,table", [
    ("ux_usage_event", "llm_usage_events"),
    ("ux_v2_event", "token_estimation_v2_events"),
    ("ux_coef_active", "estimator_coefficients"),
])
def test_7_a_dropped_unique_index_is_refused_naming_it(tmp, index, table):
    url = new_db(tmp, runs=1, phases=1)
    write_sql(path_of(url), "DROP INDEX %s" % index)
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and "missing 1 unique index" in r.err and \
        "%s ON %s" % (index, table) in r.err, r
    r = run("autopack-supervisor", "--db", url, "--workers", 0)
    assert r.rc == 1 and index in r.err, r
    # An index of that name that is no longer unique is no better.
    write_sql(path_of(url), "CREATE INDEX %s ON %s(%s)" % (
        index, table, "active" if index == "ux_coef_active" else "attempt_id, seq"))
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and index in r.err, r
    assert read_sql(path_of(url), "SELECT count(*) FROM drain_sessions") == [(0,)]


# --- 8. URLs --------------------------------------------------------------------------------

def test_8_the_supervisor_takes_db_over_the_environment(tmp):
    url = new_db(tmp, runs=0)
    env = {"DATABASE_URL": "postgresql://app:s3cret@dbhost/app",
           "AUTOPACK_DB_URL": "sqlite:///other.db"}
    sup = Supervisor(tmp, url, "--workers", 0, "--allow-empty-db", env=env)
    assert sup.wait_ready()["db_url"] == canonical(path_of(url))
    assert sup.ctl("stop", "--now").rc == 0
    assert sup.wait() == 0
    r = run("autopack-supervisor", "--workers", 0, env={
        "AUTOPACK_DB_URL": url, "DATABASE_URL": "postgresql://app:s3cret@dbhost/app"})
    assert r.rc == 1 and "DATABASE_URL names postgresql://" in r.err, r
    assert "s3cret" not in r.err, r


# --- 9. file modes -----------------------------------------------------------------------------

def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_9_database_wal_shm_and_log_are_created_0600(tmp, umask):
    old = os.umask(umask)
    try:
        url = new_db(tmp, runs=1, phases=2)
        path = path_of(url)
        log = os.path.join(str(tmp), "sup.log")
        sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--log-file", log)
        sup.wait_ready()
        for p in (path, path + "-wal", path + "-shm", log):
            assert mode(p) == 0o600, (p, oct(mode(p)))
        assert sup.ctl("stop", "--now").rc == 0
        assert sup.wait() == 0
    finally:
        os.umask(old)


def test_9_check_logs_are_created_0600_in_a_private_directory(tmp):
    old = os.umask(0o022)
    llm = Standin(tmp)
    try:
        url = new_db(tmp, runs=1, phases=1, check="echo checked")
        sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--exit-when-drained")
        assert sup.wait() == 0, sup.stderr()
    finally:
        os.umask(old)
        llm.stop()
    logs = os.path.join(str(tmp), "ws", ".autopack", "logs")
    names = sorted(os.listdir(logs))
    assert [n for n in names if n.endswith(".stdout.txt")], names
    assert mode(os.path.join(str(tmp), "ws", ".autopack")) == 0o700
    assert mode(logs) == 0o700
    for n in names:
        assert mode(os.path.join(logs, n)) == 0o600, (n, oct(mode(os.path.join(logs, n))))


def _db_files_digest(path):
    """The database's bytes and which of its side files exist."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return digest, sorted(n for n in os.listdir(os.path.dirname(path))
                          if n.startswith(os.path.basename(path)))


@pytest.mark.parametrize("name,sfx,what", [
    ("autopack.db", "", "the database itself"),
    ("link.db", "", "the database itself"),
    ("autopack.db-wal", "-wal", "one of the database's files"),
    ("sub/../autopack.db-journal", "-journal", "one of the database's files")])
def test_10_telemetry_export_never_writes_over_the_database(tmp, name, sfx, what):
    # --out opened its file with "w": `--out autopack.db` truncated the database it was
    # reading to 0 bytes, every row gone.
    url = new_db(tmp, runs=1, phases=1)
    db = path_of(url)
    os.symlink("autopack.db", os.path.join(str(tmp), "link.db"))
    os.mkdir(os.path.join(str(tmp), "sub"))
    before = _db_files_digest(db)
    r = ctl("--db", url, "telemetry", "export", "--out", name)
    assert r.rc == 1, r
    assert ("refusing to write %s: that is %s%s, %s; nothing was written: name another file"
            % (name, db, sfx, what)) in r.err, r.err
    assert _db_files_digest(db) == before
    assert ctl("--db", url, "db", "check").rc == 0
    r = ctl("--db", url, "telemetry", "export", "--out", "events.ndjson")
    assert r.rc == 0 and os.path.exists(os.path.join(str(tmp), "events.ndjson")), r


@pytest.mark.parametrize("name,sfx,what", [
    ("autopack.db", "", "the database itself"),
    ("link.db", "", "the database itself"),
    ("autopack.db-wal", "-wal", "one of the database's files"),
    ("autopack.db-shm", "-shm", "one of the database's files")])
def test_10_a_log_file_naming_the_database_is_refused(tmp, name, sfx, what):
    # The log was appended into the database file; the file watch then took the
    # supervisor's own lines for another program's writes: DATABASE LOST, exit 3. Into a
    # -wal it was lost with the log SQLite removed.
    url = new_db(tmp, runs=1, phases=1)
    db = path_of(url)
    os.symlink("autopack.db", os.path.join(str(tmp), "link.db"))
    before = _db_files_digest(db)
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained",
            "--log-file", name, cwd=str(tmp))
    assert r.rc == 2, r
    assert ("--log-file %s: that is %s%s, %s; the log would be written into it: name another"
            " file" % (name, db, sfx, what)) in r.err, r.err
    assert _db_files_digest(db) == before
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained",
            "--log-file", "sup.log", cwd=str(tmp))
    assert r.rc == 0, r


@pytest.mark.parametrize("name", ["other.db", "other.db-wal", "other.db-shm"])
def test_10_a_log_file_naming_another_database_is_refused(tmp, name):
    """Another database's files, as a log file: the supervisor and its workers appended
    their lines into it (exit 0), to be overwritten as that database grew."""
    url = new_db(tmp, runs=1, phases=1)
    other = os.path.join(str(tmp), "other.db")
    assert ctl("--db", "sqlite:///" + other, "db", "init").rc == 0
    holder = sqlite3.connect(other)  # keeps the other's -wal and -shm in place, as they are
    holder.execute("PRAGMA journal_mode").fetchall()
    holder.execute("BEGIN")
    holder.execute("SELECT count(*) FROM meta").fetchall()
    try:
        def files():
            out = {}
            for sfx in ("", "-wal", "-shm"):
                with open(other + sfx, "rb") as f:
                    out[sfx] = hashlib.sha256(f.read()).hexdigest()
            return out

        before = files()
        r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained",
                "--log-file", name, cwd=str(tmp))
        assert r.rc == 1, r
        assert ("cannot open log file %s: it is an SQLite database's file (the database, its"
                " -wal or its -shm), which a log is never written into" % name) in r.err, r
        assert files() == before
    finally:
        holder.close()
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def test_a_log_file_named_as_a_databases_missing_journal_is_refused_and_not_made(tmp):
    """A log named <database>-journal (a file SQLite makes and removes): refused by its name
    before it is created, so no empty journal is left beside the database."""
    url = new_db(tmp, runs=1, phases=1)
    other = os.path.join(str(tmp), "other.db")
    assert ctl("--db", "sqlite:///" + other, "db", "init").rc == 0
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained",
            "--log-file", "other.db-journal", cwd=str(tmp))
    assert r.rc == 1, r
    assert "cannot open log file other.db-journal: it is an SQLite database's file" in r.err, r
    assert not os.path.exists(other + "-journal")


@pytest.mark.parametrize("side", ["-wal", "-shm"])
def test_a_database_named_like_the_wal_or_shm_of_another_is_never_emptied(tmp, side):
    """`db init` of d.db-wal (or d.db-shm) beside d.db made a database there; the next
    supervisor of d.db took it for its log (or its index), found nothing to apply, and
    removed it with every row it held, without a word. It is refused now; one copied there
    keeps d.db from being opened, naming it, and is left as it was."""
    url = new_db(tmp, runs=1, phases=1)
    path = url[len("sqlite:///"):]
    r = ctl("--db", url + side, "db", "init")
    assert r.rc == 1, r
    assert ("%s%s: refusing to initialise: SQLite keeps the %s of the database %s under this"
            " name" % (path, side, side, path)) in r.err, r
    assert not os.path.exists(path + side)
    other = os.path.join(str(tmp), "other")
    os.mkdir(other)
    shutil.copy(new_db(other, runs=2, phases=2)[len("sqlite:///"):], path + side)
    with open(path + side, "rb") as f:
        before = f.read()
    r = run("autopack-supervisor", "--db", url, "--workers", "1", "--dry-run",
            "--exit-when-drained")
    assert r.rc == 1, r.err
    assert "%s%s: an SQLite database (%d bytes), not the " % (path, side, len(before)) \
        in r.err, r.err
    assert ctl("--db", url, "db", "check").rc == 2
    with open(path + side, "rb") as f:
        assert f.read() == before
