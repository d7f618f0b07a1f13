"""A write-ahead log left beside a file it does not continue: an older copy of the same
database put in place after its supervisor was killed, another database's log whose
frames hold no page of the meta table, and a log left beside a replacement when the
supervisor's salvage checkpoint could not run. Each is refused before SQLite applies it;
the file's own log, after a kill -9, is applied with every commit. Real files, the real
binaries, kill -9 (README, "What can go wrong"; docs/supervisor.md, "No wrong file")."""
import contextlib
import os
import shutil
import sqlite3
import struct
import subprocess
import sys

import pytest
from conftest import ctl, run
from supervisor_helpers import Supervisor, llm_supervisor, new_db, sql, wait_for

PYTHON = "/usr/bin/python3"
# Plans of 20,000 phases: a dry run drains ~400 phases a turn of the log, so a drain
# killed after a few turns is still far from its end however fast it runs.
RUNS, PHASES = 2000, 10


def path_of(url):
    return url[len("sqlite:///"):]


def wal_frames(path, commits=None):
    """The committed frames of a -wal as SQLite validates them, of its first `commits`
    commits (all by default): [(page number, image)]."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 32:
        return []
    magic, _, ps, _, s1, s2, c1, c2 = struct.unpack(">8I", data[:32])
    order = ">" if magic & 1 else "<"

    def cksum(buf, a, b):
        w = struct.unpack(order + "%dI" % (len(buf) // 4), buf)
        for i in range(0, len(w), 2):
            a = (a + w[i] + b) & 0xffffffff
            b = (b + w[i + 1] + a) & 0xffffffff
        return a, b

    a, b = cksum(data[:24], 0, 0)
    if (a, b) != (c1, c2):
        return []
    done, pending, off = [], [], 32
    while off + 24 + ps <= len(data):
        pg, commit, fs1, fs2, fc1, fc2 = struct.unpack(">6I", data[off:off + 24])
        if (fs1, fs2) != (s1, s2):
            break
        a, b = cksum(data[off:off + 8], a, b)
        a, b = cksum(data[off + 24:off + 24 + ps], a, b)
        if (a, b) != (fc1, fc2):
            break
        pending.append((pg, data[off + 24:off + 24 + ps]))
        if commit:
            done, pending = done + pending, []
            if commits is not None:
                commits -= 1
                if commits == 0:
                    break
        off += 24 + ps
    return done


def wal_restarts(path):
    """The checkpoint sequence number of a -wal's header: how often it began again."""
    try:
        with open(path + "-wal", "rb") as f:
            return struct.unpack(">I", f.read(16)[12:16])[0]
    except (OSError, struct.error):
        return 0


def wal_turn_committed(path):
    """Whether the log begun again holds a whole commit (the kill that follows leaves
    committed frames, not only the turn's header and part of a commit)."""
    try:
        return bool(wal_frames(path + "-wal", commits=1))
    except OSError:
        return False


def attempts_ended(url):
    return sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL")[0][0]


def killed_mid_drain(tmp, url, restarts=2):
    """Drain dry until the -wal began again `restarts` times (its first commits are
    checkpointed into the file), then kill -9 the supervisor: its -wal and -shm stay,
    with committed frames (a kill that fell between the header of a turn begun again and
    its first commit is followed by another drain). Returns the attempts seen ended
    before the kill."""
    path = path_of(url)
    for _ in range(3):
        sup = Supervisor(tmp, url, "--dry-run", "--workers", 2)
        wait_for(lambda: wal_restarts(path) >= restarts and wal_turn_committed(path),
                 timeout=180, what="the write-ahead log begun again")
        seen = attempts_ended(url)
        sup.kill()
        assert "DATABASE LOST" not in sup.stderr()
        if wal_frames(path + "-wal"):
            return seen
    raise AssertionError("no kill left committed frames")


def contents(path):
    with open(path, "rb") as f:
        return f.read()


def refused_everywhere(tmp, url, needle):
    """Every command (exit 2) and the supervisor (exit 1) refuse, writing nothing."""
    path = path_of(url)
    before = [contents(path + s) for s in ("", "-wal")]
    for args in (["db", "check"], ["session", "list"], ["failed"], ["retry", "--all-failed"]):
        r = ctl("--db", url, *args)
        assert r.rc == 2 and needle in r.err and "nothing was read or written" in r.err, \
            (args, r)
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained",
            "--control", os.path.join(str(tmp), "again.sock"))
    assert r.rc == 1 and needle in r.err, r
    assert [contents(path + s) for s in ("", "-wal")] == before


def test_an_older_copy_put_in_place_after_a_kill_is_refused_and_the_log_kept(tmp):
    # A byte copy taken with no supervisor running, put back with cp after one was
    # killed: the -wal was begun on a later state of the same database (same uuid), and
    # SQLite laid its pages over the older file (rows of neither state, or `database
    # disk image is malformed`).
    url = new_db(tmp, runs=RUNS, phases=PHASES)
    path = path_of(url)
    shutil.copyfile(path, path + ".old")
    seen = killed_mid_drain(tmp, url)
    shutil.copyfile(path, path + ".killed")
    shutil.copyfile(path + ".old", path)
    refused_everywhere(tmp, url, "this write-ahead log does not continue the file %s" % path)
    r = ctl("--db", url, "db", "check")
    assert "an older state" in r.err and path + "-wal and " + path + "-shm away" in r.err, r
    # The file it was written on, put back: every commit is there.
    shutil.copyfile(path + ".killed", path)
    r = ctl("--db", url, "--json", "db", "check")
    assert r.rc == 0, r
    assert attempts_ended(url) >= seen
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    # The older copy with its -wal and -shm removed opens as what it is.
    os.unlink(path + "-wal")
    os.unlink(path + "-shm")
    shutil.copyfile(path + ".old", path)
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0 and attempts_ended(url) == 0, r


def test_a_vacuum_into_copy_put_in_place_after_a_kill_is_refused(tmp, llm):
    # VACUUM INTO with no supervisor running, then a supervisor killed before its log
    # began again: the copy counts the commits the log was begun on and has the
    # database's mark, but its pages are laid out anew, and the log's pages (numbered for
    # the file it was written on) were laid over them.
    url = new_db(tmp, runs=4, phases=5, check="sleep 0.2")
    path = path_of(url)
    copy = os.path.join(str(tmp), "vacuumed.db")
    r = subprocess.run(["sqlite3", path, "VACUUM INTO '%s'" % copy], capture_output=True,
                       text=True)
    assert r.returncode == 0, r
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--max-attempts-per-phase", 5)
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'")[0][0]
             >= 3, timeout=120, what="three phases committed")
    sup.kill()
    assert wal_restarts(path) == 0 and wal_frames(path + "-wal")
    shutil.copyfile(copy, path)
    refused_everywhere(tmp, url, "this write-ahead log was not written on the file %s" % path)
    r = ctl("--db", url, "db", "check")
    assert "a copy made by VACUUM INTO" in r.err, r


def test_another_databases_log_without_its_meta_page_is_refused(tmp):
    # `mv other.db d.db` after d.db's supervisor was killed: the log's frames held no page
    # of the meta table, so the file read with the log still had the other uuid, and
    # the log's pages were laid over the other database.
    url = new_db(tmp, runs=RUNS, phases=PHASES)
    path = path_of(url)
    killed_mid_drain(tmp, url)
    other_dir = os.path.join(str(tmp), "other")
    os.mkdir(other_dir)
    other = path_of(new_db(other_dir, runs=2, phases=3))
    (root,) = sqlite3.connect(other).execute(
        "SELECT rootpage FROM sqlite_schema WHERE name = 'meta'").fetchone()
    assert root not in [pg for pg, _ in wal_frames(path + "-wal")], "meta in the log"
    os.rename(other, path)
    refused_everywhere(tmp, url, "this write-ahead log is another database's")
    r = ctl("--db", url, "db", "check")
    assert "its commits are marked as database" in r.err, r
    # Moved away, the file is the other database again, as it was.
    os.rename(path + "-wal", path + "-wal.d")
    os.unlink(path + "-shm")
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0 and sql(url, "SELECT count(*) FROM phases") == [(6,)], r


READER = r"""
import sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, isolation_level=None)
con.execute("BEGIN")
con.execute("SELECT count(*) FROM attempts").fetchall()
print("reading", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def snapshot_held(path):
    """Another program reads the database in one transaction until the block ends, then
    is killed -9. A checkpoint copies no commit made after its snapshot into the file:
    taken before a supervisor's first commit, it keeps every one of them in the log."""
    reader = subprocess.Popen([PYTHON, "-c", READER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline() == "reading\n"
        yield
    finally:
        reader.kill()
        reader.wait()


def killed_before_a_checkpoint(tmp, url, commits=5):
    """Drain dry while another program holds a snapshot of the file as it is, kill -9
    the supervisor after `commits` attempts ended: the file is as it was, every commit
    in the log. Returns the attempts ended."""
    with snapshot_held(path_of(url)):
        sup = Supervisor(tmp, url, "--dry-run", "--workers", 2)
        wait_for(lambda: attempts_ended(url) >= commits, timeout=120, what="commits")
        sup.kill()
    assert "DATABASE LOST" not in sup.stderr()
    return attempts_ended(url)


def test_a_log_left_beside_a_replacement_when_the_salvage_cannot_run_is_refused(tmp):
    # The file replaced (an older copy moved over it) while a supervisor drains and a
    # reader holds a snapshot: DATABASE LOST, but its checkpoint of the log into the file
    # it had open cannot run past the reader, so the log stays beside the replacement.
    url = new_db(tmp, runs=RUNS, phases=PHASES)
    path = path_of(url)
    shutil.copyfile(path, path + ".old")
    sup = Supervisor(tmp, url, "--dry-run", "--workers", 2)
    wait_for(lambda: wal_restarts(path) >= 2, timeout=180, what="the log begun again")
    with snapshot_held(path):
        n = attempts_ended(url)
        wait_for(lambda: attempts_ended(url) >= n + 50, timeout=60,
                 what="commits after the reader's snapshot")
        os.rename(path + ".old", path)
        assert sup.wait(timeout=120) == 3
        err = sup.stderr()
        assert "DATABASE LOST" in err and "was replaced" in err, err
        assert "checkpointing the committed write-ahead log" in err and "failed" in err, err
    assert wal_frames(path + "-wal"), "the log stayed"
    refused_everywhere(tmp, url, "this write-ahead log does not continue the file %s" % path)


def test_the_files_own_log_after_a_kill_is_applied_with_every_commit(tmp):
    # kill -9, then every kind of next open: a reading command, a .backup of the
    # database, and a supervisor that goes on draining. Nothing refused, nothing lost.
    url = new_db(tmp, runs=RUNS, phases=PHASES)
    path = path_of(url)
    seen = killed_mid_drain(tmp, url)
    r = ctl("--db", url, "session", "list")
    assert r.rc == 0, r
    n = attempts_ended(url)
    assert n >= seen
    copy = os.path.join(str(tmp), "copy.db")
    r = subprocess.run(["sqlite3", path, ".backup '%s'" % copy], capture_output=True,
                       text=True)
    assert r.returncode == 0, r
    assert sql("sqlite:///" + copy, "SELECT count(*) FROM attempts"
                                    " WHERE ended_at IS NOT NULL") == [(n,)]
    seen = killed_mid_drain(tmp, url, restarts=wal_restarts(path) + 2)
    # Counted after the kill: the killed supervisor's commits went on after `seen`.
    before = attempts_ended(url)
    sup = Supervisor(tmp, url, "--dry-run", "--workers", 2, name="again")
    wait_for(lambda: attempts_ended(url) >= before + 100, timeout=120, what="more attempts")
    assert sup.stop_now() == 0, sup.stderr()
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    # A copy restored with sqlite3's .restore, through the database's own log.
    sup2 = killed_mid_drain(tmp, url, restarts=wal_restarts(path) + 2)
    assert sup2 >= seen
    r = subprocess.run(["sqlite3", path, ".restore '%s'" % copy], capture_output=True,
                       text=True)
    assert r.returncode == 0, r
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    assert attempts_ended(url) == n


def test_a_second_name_is_still_refused_with_a_log_beside_it(tmp):
    url = new_db(tmp, runs=RUNS, phases=PHASES)
    path = path_of(url)
    killed_mid_drain(tmp, url)
    os.link(path, path + ".link")
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and "hard links" in r.err, r
    os.unlink(path + ".link")
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r


def test_the_files_own_log_is_applied_when_another_program_had_set_its_marks(tmp):
    # application_id and user_version set by another program (sqlite3) before a
    # supervisor's first commits: the file keeps that application_id until a checkpoint,
    # and its log, after a kill -9, carries the database's own mark. It was refused as
    # another database's, and moving it away as told lost every commit in it.
    for i, (app, uv) in enumerate(((12345, -7), (-1, 2147483647))):
        sub = os.path.join(str(tmp), "d%d" % i)
        os.mkdir(sub)
        url = new_db(sub, runs=RUNS, phases=PHASES)
        path = path_of(url)
        r = subprocess.run(["sqlite3", path, "PRAGMA application_id=%d;"
                            " PRAGMA user_version=%d" % (app, uv)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r
        n = killed_before_a_checkpoint(sub, url)
        with open(path, "rb") as f:
            assert struct.unpack(">i", f.read(72)[68:72])[0] == app, "not checkpointed"
        assert wal_frames(path + "-wal")
        r = ctl("--db", url, "db", "check")
        assert r.rc == 0, r
        assert attempts_ended(url) == n
        assert sql(url, "PRAGMA integrity_check") == [("ok",)]


FROZEN = r"""
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
for stmt in sys.argv[2:]:
    con.execute(stmt)
os._exit(0)
"""


def frozen_commits(path, *stmts):
    """Another program commits each statement and dies without closing the database, as
    under kill -9: its frames stay in the -wal."""
    r = subprocess.run([PYTHON, "-c", FROZEN, path] + list(stmts), capture_output=True,
                       text=True)
    assert r.returncode == 0, r


def header_i32(path, offset):
    """A 4-byte field of the database header as SQLite's pragmas read it (signed)."""
    with open(path, "rb") as f:
        return struct.unpack(">i", f.read(100)[offset:offset + 4])[0]


@pytest.mark.parametrize("stmt", ["PRAGMA user_version=0", "PRAGMA application_id=12345",
                                  "PRAGMA user_version=-5"])
def test_the_files_own_log_is_applied_when_another_programs_commit_changed_its_counts(
        tmp, stmt):
    # Another program's PRAGMA user_version or application_id, the first commit of the
    # log to write page 1 (the log begun again, or begun by it), and a kill -9 before the
    # log was checkpointed: the file holds the state the log was begun on. It was refused
    # (begun on another count; marked as another database's), and moving the log away
    # as told lost that commit, and every commit of the store's after it.
    url = new_db(tmp, runs=RUNS, phases=PHASES)
    path = path_of(url)
    shutil.copyfile(path, path + ".old")
    sup = Supervisor(tmp, url, "--dry-run", "--workers", 2, name="first")
    wait_for(lambda: attempts_ended(url) >= 5, timeout=120, what="commits")
    assert sup.stop_now() == 0, sup.stderr()
    count, mark = header_i32(path, 60), header_i32(path, 68)
    frozen_commits(path, stmt)
    assert [pg for pg, _ in wal_frames(path + "-wal")] == [1]
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    value = int(stmt.split("=")[1])
    want = (count, value) if "application_id" in stmt else (value, mark)
    assert (sql(url, "PRAGMA user_version")[0][0],
            sql(url, "PRAGMA application_id")[0][0]) == want
    # A supervisor goes on from it and is killed: the store's commits follow the other
    # program's in the log.
    n = killed_before_a_checkpoint(tmp, url, commits=attempts_ended(url) + 5)
    frames = wal_frames(path + "-wal")
    assert frames[0][0] == 1 and len(frames) > 1
    assert header_i32(path, 60) == count, "checkpointed"
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    assert attempts_ended(url) == n
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    # The store's commits marked the file as the database's again.
    assert sql(url, "PRAGMA application_id")[0][0] == mark
    # An older copy, from before the first supervisor, put back beside this log: refused.
    shutil.copyfile(path + ".old", path)
    refused_everywhere(tmp, url, "this write-ahead log")



@pytest.mark.parametrize("stmt", ["PRAGMA user_version=0", "PRAGMA application_id=12345"])
def test_another_databases_log_begun_by_another_programs_pragma_is_refused(tmp, stmt):
    # Two databases of the same plan have the same page 1 but for the mark. The log of
    # one, begun by another program's PRAGMA, its supervisor's commits after it, is not
    # the other's: a PRAGMA on a file changes one of the counts, and the store's commits
    # after a changed mark carry the file's.
    url = new_db(tmp, runs=RUNS, phases=PHASES)
    path = path_of(url)
    twin_dir = os.path.join(str(tmp), "twin")
    os.mkdir(twin_dir)
    twin = path_of(new_db(twin_dir, runs=RUNS, phases=PHASES))
    frozen_commits(path, stmt)
    sup = Supervisor(tmp, url, "--dry-run", "--workers", 2)
    wait_for(lambda: attempts_ended(url) >= 5, timeout=120, what="commits")
    sup.kill()
    assert wal_frames(path + "-wal")[0][0] == 1
    os.rename(twin, path)
    before = [contents(path + s) for s in ("", "-wal")]
    for args in (["db", "check"], ["session", "list"]):
        r = ctl("--db", url, *args)
        assert r.rc == 2 and "this write-ahead log is another database's" in r.err, (args, r)
    r = run("autopack-supervisor", "--db", url, "--dry-run", "--exit-when-drained",
            "--control", os.path.join(str(tmp), "again.sock"))
    assert r.rc == 1 and "this write-ahead log is another database's" in r.err, r
    assert [contents(path + s) for s in ("", "-wal")] == before

def test_an_older_copy_put_in_place_after_an_in_place_vacuum_is_refused(tmp, llm):
    # A byte copy taken with no supervisor running, then `sqlite3 d.db VACUUM` (the
    # pages laid out anew in place, the counts and mark kept), a supervisor killed
    # before its log began again, and the copy put back: it counts the commits the log
    # was begun on and has the database's mark and the same header fields, but the
    # log's pages are numbered for the vacuumed file.
    url = new_db(tmp, runs=4, phases=5, check="sleep 0.2")
    path = path_of(url)
    shutil.copyfile(path, path + ".old")
    r = subprocess.run(["sqlite3", path, "VACUUM"], capture_output=True, text=True)
    assert r.returncode == 0, r
    ps = struct.unpack(">H", contents(path)[16:18])[0]
    assert contents(path)[ps:] != contents(path + ".old")[ps:], "the pages laid out anew"
    assert [header_i32(path, o) for o in (60, 68)] == \
        [header_i32(path + ".old", o) for o in (60, 68)]
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--max-attempts-per-phase", 5)
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'")[0][0]
             >= 3, timeout=120, what="three phases committed")
    sup.kill()
    assert wal_restarts(path) == 0 and wal_frames(path + "-wal")
    shutil.copyfile(path, path + ".vacuumed")
    shutil.copyfile(path + ".old", path)
    refused_everywhere(tmp, url, "this write-ahead log was not written on the file %s" % path)
    r = ctl("--db", url, "db", "check")
    assert "change counter" in r.err, r
    shutil.copyfile(path + ".vacuumed", path)
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_the_count_of_commits_wraps_at_2_32(tmp):
    # user_version is a signed 32-bit value to SQLite's pragma and 4 bytes in the header:
    # set to -3 (2^32 - 3), the store's commits count on through 2^32 - 1 to 0, 1, ... The
    # file's own log across the wrap is applied; an older copy from before it is refused
    # as older.
    url = new_db(tmp, runs=RUNS, phases=PHASES)
    path = path_of(url)
    r = subprocess.run(["sqlite3", path, "PRAGMA user_version=-3"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r
    shutil.copyfile(path, path + ".old")
    # Killed before the log was checkpointed: the file at 2^32 - 3, the log from there.
    n = killed_before_a_checkpoint(tmp, url)
    assert header_i32(path, 60) == -3, "checkpointed"
    assert [struct.unpack(">i", pg[60:64])[0] for p, pg in wal_frames(path + "-wal")
            if p == 1][:4] == [-2, -1, 0, 1]
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0 and attempts_ended(url) == n, r
    # Killed after the log began again twice: the file past the wrap, the older copy
    # before it.
    seen = killed_mid_drain(tmp, url, restarts=wal_restarts(path) + 2)
    assert 0 < header_i32(path, 60) < 100000
    shutil.copyfile(path, path + ".killed")
    shutil.copyfile(path + ".old", path)
    refused_everywhere(tmp, url, "this write-ahead log does not continue the file %s" % path)
    r = ctl("--db", url, "db", "check")
    assert "and the file holds commit 4294967293, an older state" in r.err, r
    shutil.copyfile(path + ".killed", path)
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0 and attempts_ended(url) >= seen, r


if __name__ == "__main__":
    sys.exit("run with pytest")
