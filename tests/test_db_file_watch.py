"""The database file under a running supervisor, as only it should write it: a copy put
over it in place (`cp other.db live.db`, the same inode) of the same size or larger is
seen by its moved mtime and is DATABASE LOST (exit 3), with nothing more written into the
copy; a hard link or a chmod changes only the file's ctime and is not; and a checkpoint
that fails (the file made immutable with chattr +i) is logged, counted in the metrics and
shown in the status, while commits go on into the write-ahead log."""
import fcntl
import os
import re
import signal
import sqlite3
import struct
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ctl
from supervisor_helpers import (Supervisor, llm_supervisor, new_db, sql,
                                status_when, wait_for)


def db_path(url):
    return url[len("sqlite:///"):]


def other_db(tmp, runs, phases):
    """Another database made by the program, in tmp/other; its path."""
    other = os.path.join(str(tmp), "other")
    os.mkdir(other)
    new_db(other, runs=runs, phases=phases)
    return os.path.join(other, "autopack.db")


@pytest.mark.parametrize("how", ["cp-same-size", "cp-larger", "notrunc-same-size"])
def test_a_copy_as_large_put_over_the_database_in_place_is_database_lost(tmp, llm, how):
    url = new_db(tmp, runs=40, phases=10, check="sleep 0.5")
    path = db_path(url)
    copy = other_db(tmp, 40 if how.endswith("same-size") else 120, 10)
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    sup.wait_ready()
    wait_for(lambda: sup.status()["queue"]["in_flight"] >= 1, what="work in flight")
    before = os.stat(path)
    if how.endswith("same-size"):
        assert os.path.getsize(copy) == before.st_size
    else:
        assert os.path.getsize(copy) > before.st_size
    if how.startswith("cp"):
        subprocess.run(["cp", copy, path], check=True)
    else:
        # Written over in place without a truncation first: only the mtime tells.
        subprocess.run(["dd", "if=" + copy, "of=" + path, "conv=notrunc", "status=none"],
                       check=True)
    assert os.stat(path).st_ino == before.st_ino
    assert sup.wait(timeout=30) == 3, sup.stderr()
    err = sup.stderr()
    assert "DATABASE LOST" in err, err[-3000:]
    # cp truncates the file before it writes: a check can fall in between.
    written = "the database file was written by another program after it was opened" in err
    assert written or (how.startswith("cp") and "shrank" in err), err[-3000:]
    if written:
        assert path in err and "overwritten in place (e.g. by cp) or touched" in err
        assert re.search(r"\(modified at \S+Z, %d bytes; as this process last wrote or "
                         r"opened it: \S+Z, %d bytes\)" % (os.path.getsize(copy),
                                                          before.st_size), err), err[-3000:]
    assert "exit status 0" not in err
    # Nothing of the supervisor's reached the copy, not even when it closed the database;
    # its commits are in its write-ahead log, moved aside: it was not made for the copy.
    with open(path, "rb") as a, open(copy, "rb") as b:
        assert a.read() == b.read()
    lost = [f for f in os.listdir(str(tmp)) if f.startswith("autopack.db-wal.lost-")]
    assert len(lost) == 1 and "was moved to %s" % os.path.join(str(tmp), lost[0]) in err, \
        err[-3000:]
    assert os.path.getsize(os.path.join(str(tmp), lost[0])) > 0
    assert not os.path.exists(path + "-wal")
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("how", ["moved", "removed"])
def test_a_database_moved_away_is_named_where_it_now_is(tmp, llm, how):
    # Moved (mv) or removed, it was "removed after it was opened" either way: the
    # operator was not told that the file holding every commit was still there, and where.
    url = new_db(tmp, runs=40, phases=10, check="sleep 0.5")
    path = db_path(url)
    moved = os.path.join(str(tmp), "moved.db")
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    sup.wait_ready()
    wait_for(lambda: sup.status()["queue"]["in_flight"] >= 1, what="work in flight")
    if how == "moved":
        os.rename(path, moved)
    else:
        os.unlink(path)
    assert sup.wait(timeout=30) == 3, sup.stderr()
    err = sup.stderr()
    if how == "moved":
        assert ("DATABASE LOST: %s: the database file was moved after it was opened (it is "
                "now %s); everything committed was checkpointed" % (path, moved)) in err, \
            err[-3000:]
        assert sql("sqlite:///" + moved, "PRAGMA integrity_check") == [("ok",)]
    else:
        assert ("DATABASE LOST: %s: the database file was removed after it was opened;"
                % path) in err, err[-3000:]

def test_an_older_copy_put_over_the_database_in_place_is_not_given_its_write_ahead_log(
        tmp, llm):
    # A backup taken mid-drain and copied back over the live file (the same inode): the
    # write-ahead log the supervisor kept was made for the file it had, and copied into
    # the older one it mixes two states of the database (malformed pages, rows of neither).
    url = new_db(tmp, runs=40, phases=10, check="sleep 0.2")
    path = db_path(url)
    backup = os.path.join(str(tmp), "backup.db")
    sup = llm_supervisor(tmp, url, llm, "--workers", 4)
    sup.wait_ready()
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts")[0][0] >= 4, timeout=60,
             what="attempts committed")
    src = sqlite3.connect(path)
    dst = sqlite3.connect(backup)
    src.backup(dst)
    dst.close()
    src.close()
    (had,) = sql("sqlite:///" + backup, "SELECT count(*) FROM attempts")[0]
    status_when(sup, lambda s: s["database"]["checkpoints"] >= 1 and
                s["queue"]["started"] >= had + 40, timeout=120,
                what="a checkpoint and more attempts after the backup")
    subprocess.run(["cp", backup, path], check=True)
    assert sup.wait(timeout=30) == 3, sup.stderr()
    err = sup.stderr()
    assert "DATABASE LOST" in err and "the file now holds other content" in err, err[-3000:]
    lost = [f for f in os.listdir(str(tmp)) if f.startswith("autopack.db-wal.lost-")]
    assert len(lost) == 1 and lost[0].endswith(".bak"), os.listdir(str(tmp))
    assert os.path.join(str(tmp), lost[0]) in err
    assert os.path.getsize(os.path.join(str(tmp), lost[0])) > 0
    assert not os.path.exists(path + "-wal")
    # The file reads as the backup it is, for every command and for SQLite.
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    assert sql(url, "SELECT count(*) FROM attempts") == [(had,)]
    with open(path, "rb") as a, open(backup, "rb") as b:
        assert a.read() == b.read()


def test_links_modes_and_its_own_checkpoints_leave_the_database_its_own(tmp):
    # Enough dry-run visits for several checkpoints of the supervisor's own (each moves
    # the file's mtime), while a hard link comes and goes and the mode changes (ctime).
    url = new_db(tmp, runs=60, phases=50)
    path = db_path(url)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run")
    sup.wait_ready()
    link = os.path.join(str(tmp), "hard.db")
    mode = os.stat(path).st_mode & 0o7777
    n = 0

    def churn():
        # A second name lives only between status calls (ctl refuses a file with two).
        nonlocal n
        n += 1
        os.link(path, link)
        os.chmod(path, mode if n % 2 else 0o640)
        os.chown(path, os.getuid(), os.getgid())
        os.unlink(link)
        st = sup.status()
        return st["progress"]["remaining"] == 0 and st["writer_queue_writes"] == 0
    wait_for(churn, timeout=120, step=0.02, what="the dry run done")
    st = sup.status()
    db = st["database"]
    assert db["checkpoints"] >= 2 and db["checkpoint_failures"] == 0, db
    assert not db["checkpoint_failing"] and db["checkpoint_error"] is None, db
    assert db["wal_bytes"] > 0 and st["health"]["reasons"] == [], st
    # A touch moves the mtime: it cannot be told from a write, and is DATABASE LOST. The
    # file and the write-ahead log kept beside it still hold every commit.
    os.utime(path)
    assert sup.wait(timeout=30) == 3, sup.stderr()
    assert "written by another program" in sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts") == [(st["queue"]["started"],)]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def looked_again(sup):
    """Wait until the supervisor has judged the database file's mtime and size once more
    after this call began (its status counts the looks); the status then."""
    n = sup.status()["database"]["file_checks"]
    return status_when(sup, lambda s: s["database"]["file_checks"] > n, timeout=120,
                       what="a look at the database file")


def test_checkpoints_reads_and_backups_by_other_programs_are_not_database_lost(tmp):
    # Another program's checkpoint (PASSIVE, RESTART, TRUNCATE; the sqlite3 command line
    # or Python) copies into the file only what the supervisor committed: its trace in the
    # wal-index tells it from a write. Reads, .backup and VACUUM INTO write nothing.
    url = new_db(tmp, runs=400, phases=50)
    path = db_path(url)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run")
    sup.wait_ready()
    status_when(sup, lambda s: s["database"]["checkpoints"] >= 1, timeout=60,
                what="a checkpoint of the supervisor's")
    moved = 0
    for i, how in enumerate(["PASSIVE", "cli", "read", "RESTART", "backup", "TRUNCATE",
                             "vacuum", "PASSIVE", "TRUNCATE", "cli"]):
        before = os.stat(path).st_mtime_ns
        if how == "cli":
            subprocess.run(["sqlite3", path, "PRAGMA wal_checkpoint;"], check=True,
                           stdout=subprocess.DEVNULL)
        elif how in ("read", "backup", "vacuum"):
            c = sqlite3.connect(path)
            c.execute("SELECT count(*) FROM attempts").fetchall()
            if how == "backup":
                d = sqlite3.connect(os.path.join(str(tmp), "b%d.db" % i))
                c.backup(d)
                d.close()
            elif how == "vacuum":
                c.execute("VACUUM INTO ?", (os.path.join(str(tmp), "v%d.db" % i),))
            c.close()
        else:
            c = sqlite3.connect(path, timeout=10)
            c.execute("PRAGMA wal_checkpoint(%s)" % how).fetchone()
            c.close()
        moved += os.stat(path).st_mtime_ns != before
        looked_again(sup)
        assert sup.proc.poll() is None, sup.stderr()[-3000:]
    assert moved > 0, "no checkpoint of another program's wrote the file"
    assert "DATABASE LOST" not in sup.stderr()
    # A write after them is still one. A write that lands during one of the supervisor's
    # own checkpoints passes as part of it, and one before the next look after another
    # program's checkpoint as part of that (both documented): the write comes once the
    # drain is done (no commit, so no checkpoint of the supervisor's, runs after it), the
    # supervisor has looked at the file after the last checkpoint, and it has looked again
    # once a write with no trace of a checkpoint would have been taken for one (2 s later
    # by its own clock).
    status_when(sup, lambda s: s["progress"]["remaining"] == 0 and
                s["writer_queue_writes"] == 0, timeout=120, what="the dry run done")
    first = looked_again(sup)
    status_when(sup, lambda s: s["uptime_seconds"] >= first["uptime_seconds"] + 2.1,
                what="2 s on the supervisor's clock after that look")
    looked_again(sup)
    assert sup.proc.poll() is None and "DATABASE LOST" not in sup.stderr(), \
        sup.stderr()[-3000:]
    os.utime(path)
    assert sup.wait(timeout=30) == 3, sup.stderr()
    assert "written by another program" in sup.stderr()
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_another_databases_content_restored_into_the_file_through_sqlite_is_database_lost(
        tmp):
    """sqlite3's .restore (the backup API copying another database into this one) commits
    through SQLite: the file keeps its device, inode and size, its mtime moves only at a
    checkpoint, and the supervisor went on serving the other database's content as its
    own, its uuid and phases included. Another program's ordinary commit is no such
    change."""
    url = new_db(tmp, runs=2, phases=3)
    path = db_path(url)
    other = other_db(tmp, 1, 2)
    uuid = sql(url, "SELECT db_uuid FROM meta")[0][0]
    other_uuid = sql("sqlite:///" + other, "SELECT db_uuid FROM meta")[0][0]
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run")
    sup.wait_ready()
    c = sqlite3.connect(path, timeout=10)
    c.execute("UPDATE phases SET description = 'edited by hand' WHERE id = 1")
    c.commit()
    looked_again(sup)
    assert sup.proc.poll() is None and "DATABASE LOST" not in sup.stderr(), \
        sup.stderr()[-3000:]
    src = sqlite3.connect(other)
    src.backup(c)
    src.close()
    c.close()
    assert sup.wait(timeout=30) == 3, sup.stderr()[-3000:]
    assert ("DATABASE LOST: %s: another program's commit made meta.db_uuid %s, not %s as the"
            " database was opened: another database's content was written into the file in"
            " place (sqlite3's .restore, say)" % (path, other_uuid, uuid)) in sup.stderr(), \
        sup.stderr()[-3000:]
    assert sql(url, "SELECT db_uuid FROM meta") == [(other_uuid,)]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def restore(backup, path):
    """sqlite3's .restore, through the same backup API, waiting while the supervisor holds
    the write lock (the command line gives up after 3 tries, 300 ms)."""
    src = sqlite3.connect(backup)
    dst = sqlite3.connect(path, timeout=30)
    src.backup(dst)
    src.close()
    dst.close()


def test_an_older_backup_of_the_same_database_restored_in_place_is_database_lost(tmp):
    """`sqlite3 d.db ".restore old.db"` of a backup taken earlier: the same uuid, so the
    supervisor went on over the older content, and the rows it had committed after the
    backup were gone without a word. Its count of commits (user_version) went back; a
    backup restored with nothing committed since is no such change."""
    url = new_db(tmp, runs=200, phases=10)
    path = db_path(url)
    old = os.path.join(str(tmp), "old.db")
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run")
    sup.wait_ready()
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts")[0][0] >= 5, timeout=60,
             what="attempts committed")
    subprocess.run(["sqlite3", path, ".backup '%s'" % old], check=True)
    kept = sql("sqlite:///" + old, "SELECT count(*) FROM attempts")[0][0]
    count = sql("sqlite:///" + old, "PRAGMA user_version")[0][0]
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts")[0][0] >= kept + 20,
             timeout=60, what="attempts committed after the backup")
    restore(old, path)
    assert sup.wait(timeout=30) == 3, sup.stderr()[-3000:]
    err = sup.stderr()
    assert re.search(
        r"DATABASE LOST: %s: after another program's commit the file counts %d commits of"
        r" autopack's \(PRAGMA user_version\), fewer than the (\d+) this supervisor"
        r" reached: an older copy of this database was written into the file in place"
        r" \(sqlite3's \.restore of an earlier backup, say\), and what was committed since"
        r" that copy was taken is not in it; " % (re.escape(path), count), err), err[-3000:]
    # Nothing further was written over the restored content.
    assert sql(url, "SELECT count(*) FROM attempts")[0][0] == kept
    assert sql(url, "PRAGMA user_version")[0][0] == count
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    # A backup restored with nothing committed since it was taken loses nothing.
    sup = Supervisor(tmp, url, "--workers", 0, "--dry-run", name="again")
    sup.wait_ready()
    count = None
    while count != sql(url, "PRAGMA user_version")[0][0]:  # its start committed
        count = sql(url, "PRAGMA user_version")[0][0]
        looked_again(sup)
    subprocess.run(["sqlite3", path, ".backup '%s'" % old], check=True)
    restore(old, path)
    looked_again(sup)
    assert sup.proc.poll() is None and "DATABASE LOST" not in sup.stderr(), \
        sup.stderr()[-3000:]
    assert sup.stop_now() == 0, sup.stderr()[-3000:]


def restore_under_a_waiting_commit(backup, path, while_held, hold=1.0):
    """What sqlite3's .restore of `backup` does (its tables and its count of commits put in
    the file at `path`), in one transaction that took the write lock first and ran
    `while_held` with it held, then held it `hold` seconds more: a commit the supervisor
    began meanwhile checked the file before the restore and waits for the lock, then finds
    the older copy under it."""
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        con.execute("ATTACH ? AS old", (backup,))
        con.execute("BEGIN IMMEDIATE")
        while_held()
        time.sleep(hold)
        for (t,) in con.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'"
                                " AND name NOT LIKE 'sqlite_%'").fetchall():
            con.execute('DELETE FROM main."%s"' % t)
            con.execute('INSERT INTO main."%s" SELECT * FROM old."%s"' % (t, t))
        count = con.execute("PRAGMA old.user_version").fetchone()[0]
        con.execute("PRAGMA main.user_version = %d" % count)
        con.execute("COMMIT")
    finally:
        con.close()


def test_a_commit_waiting_for_the_lock_as_an_older_backup_is_restored_writes_nothing_over_it(
        tmp):
    """The supervisor checks the file before each commit, and again once a second: a
    commit begun just before another program restored an older backup in place waited for
    the lock, then committed over the older copy, its count of commits one more than the
    backup's. With one commit made between the backup and the restore, that count was the
    one the supervisor had reached: its checks found nothing wrong from then on, what was
    committed after the backup was gone without a word, and commits that needed it failed
    until "the database refused 8 commits in a row". The commit is now refused (the file
    counts fewer commits than the connection reached), and the failed commit checks the
    file's uuid and count at once: DATABASE LOST, nothing written over the copy."""
    url = new_db(tmp, runs=1, phases=1)
    path = db_path(url)
    old = os.path.join(str(tmp), "old.db")
    sup = Supervisor(tmp, url, "--workers", 0)
    sup.wait_ready()
    assert sup.ctl("pause").rc == 0
    looked_again(sup)
    subprocess.run(["sqlite3", path, ".backup '%s'" % old], check=True)
    count = sql("sqlite:///" + old, "PRAGMA user_version")[0][0]
    logged = sql("sqlite:///" + old, "SELECT count(*) FROM control_log")[0][0]
    # One commit after the backup: the count this supervisor reaches is the backup's + 1.
    assert sup.ctl("resume").rc == 0
    wait_for(lambda: sql(url, "PRAGMA user_version")[0][0] == count + 1,
             what="the resume committed")
    late = []

    def pause_waiting():
        t = threading.Thread(target=lambda: late.append(sup.ctl("pause")))
        t.start()
        late.append(t)

    restore_under_a_waiting_commit(old, path, pause_waiting)
    late[0].join()
    assert sup.wait(timeout=30) == 3, sup.stderr()[-3000:]
    err = sup.stderr()
    assert re.search(
        r"DATABASE LOST: %s: after another program's commit the file counts %d commits of"
        r" autopack's \(PRAGMA user_version\), fewer than the %d this supervisor reached: an"
        r" older copy of this database was written into the file in place"
        % (re.escape(path), count, count + 1), err), err[-3000:]
    assert ("COMMIT refused: the file counts %d commits of autopack's (PRAGMA user_version),"
            " fewer than the %d this connection reached" % (count, count + 1)) in err, \
        err[-3000:]
    assert "refused 8 commits" not in err, err[-3000:]
    # Nothing was written over the restored content.
    assert sql(url, "PRAGMA user_version")[0][0] == count
    assert sql(url, "SELECT count(*) FROM control_log")[0][0] == logged
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def set_immutable(path, on):
    """Set or clear the file's immutable attribute (chattr +i / -i); False if the file
    system or the process cannot."""
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0))
        flags = struct.unpack("l", buf)[0]
        flags = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", flags))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def samples(text, name):
    """The value of metric `name` (one sample, no labels), read by Prometheus's parser."""
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                return s.value
    return None


def test_a_failing_checkpoint_is_logged_counted_and_shown(tmp):
    url = new_db(tmp, runs=60, phases=50)
    path = db_path(url)
    probe = os.path.join(str(tmp), "probe")
    open(probe, "w").close()
    if not set_immutable(probe, True):
        pytest.skip("FS_IOC_SETFLAGS (chattr +i) is not supported on %s for this process"
                    % str(tmp))
    set_immutable(probe, False)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run")
    try:
        sup.wait_ready()
        assert set_immutable(path, True)
        st = status_when(sup, lambda s: s["database"]["checkpoint_failures"] >= 1,
                         timeout=120, what="a failed checkpoint")
        db = st["database"]
        assert db["checkpoint_failing"] and "Operation not permitted" in db["checkpoint_error"]
        reasons = [r for r in st["health"]["reasons"] if r["code"] == "checkpoints_failing"]
        assert len(reasons) == 1 and path in reasons[0]["message"], st["health"]
        wait_for(lambda: "checkpointing the write-ahead log into the database file failed"
                 in sup.stderr(), timeout=60, what="the warning")
        err = sup.stderr()
        line = [x for x in err.splitlines() if "checkpointing the write-ahead log" in x][0]
        assert path in line and "Operation not permitted" in line and path + "-wal" in line
        assert re.search(r"which is now \d+ bytes", line), line
        r = sup.ctl("metrics")
        assert r.rc == 0, r
        assert samples(r.out, "autopack_db_checkpoint_failures_total") >= 1
        assert samples(r.out, "autopack_db_wal_bytes") > 0
        # Rate-limited: more failures, still one warning within the minute.
        status_when(sup, lambda s: s["database"]["checkpoint_failures"] >= 2 or
                    s["progress"]["remaining"] == 0, timeout=120, what="the drain")
        assert sup.stderr().count("checkpointing the write-ahead log into the database "
                                  "file failed") == 1
    finally:
        set_immutable(path, False)
    # Writable again: the commits held in the write-ahead log reach the file at the end.
    sup.signal(signal.SIGTERM)
    assert sup.wait(timeout=60) == 0, sup.stderr()
    assert not os.path.exists(path + "-wal"), sup.stderr()[-2000:]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_a_read_transaction_left_open_that_holds_the_log_back_is_named(tmp):
    """A connection of another program inside a read transaction (a sqlite3 shell left
    inside BEGIN, a long-lived session) keeps every checkpoint from copying the log past
    its snapshot: the checkpoints succeed, copy nothing, and the log grows with every
    commit, which nothing said. The supervisor names the reader's pid and says when the
    log starts again."""
    url = new_db(tmp, runs=80, phases=50)
    path = db_path(url)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM phases").fetchone() == (4000,)
    sup = Supervisor(tmp, url, "--workers", 4, "--dry-run")
    try:
        wait_for(lambda: "has not started again" in sup.stderr(), timeout=120,
                 what="the warning of a log held back")
        line = [x for x in sup.stderr().splitlines() if "has not started again" in x][0]
        assert " warn: " in line and path + "-wal" in line, line
        assert "though checkpoints succeed" in line, line
        assert "held by pid %d (" % os.getpid() in line, line
        assert re.search(r"holds (\d+) frames \((\d+) bytes\)", line), line
        reader.execute("COMMIT")
        reader.close()

        def started_again():
            # Each pause and resume is a commit: the first after the reader's end copies
            # the whole log, a later one starts it again.
            assert sup.ctl("pause").rc == 0 and sup.ctl("resume").rc == 0
            return "the write-ahead log started again" in sup.stderr()
        wait_for(started_again, timeout=60, what="the log's restart said")
        assert sup.stderr().count("has not started again") == 1
    finally:
        sup.signal(signal.SIGTERM)
    assert sup.wait(timeout=60) == 0, sup.stderr()
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
