"""A workspace on the kernel's file system of terminals (devpts, /dev/pts) or of POSIX
message queues (mqueue, /dev/mqueue), where no file a phase writes can be made, is refused
as one in /proc or /sys is: at import, by its name, through a link, or on such a file system
mounted elsewhere; and by the worker, when its check would run there (a workspace that a
link made after the import leads to). So is one on the other file systems only the kernel
fills (cgroup, cgroup2, debugfs, tracefs, securityfs, configfs, bpf, pstore, efivarfs,
hugetlbfs, fusectl), known by their type wherever they are mounted."""
import os
import shutil
import subprocess

import pytest

from conftest import binpath, ctl
from e2e_helpers import Standin, drain_until_exit, import_plan, init_db, phase_spec, rows
from test_check_kernel_objects import KEY
from test_plan import counts, phase, plan, run_entry, url, write_plan


@pytest.fixture
def db(tmp):
    """A database made by `db init`."""
    p = tmp / "plan.db"
    r = ctl("--db", url(p), "db", "init")
    assert r.rc == 0, r
    return p


@pytest.mark.parametrize("where,kernel", [("/dev/pts", "/dev/pts"),
                                          ("/dev/pts/ws", "/dev/pts"),
                                          ("/dev/mqueue", "/dev/mqueue"),
                                          ("/dev/mqueue/a/ws", "/dev/mqueue"),
                                          ("link", "/dev/pts")])
def test_a_workspace_in_dev_pts_or_dev_mqueue_is_refused_at_import(db, tmp, where, kernel):
    os.symlink("/dev/pts", str(tmp / "link"))
    p = write_plan(tmp, plan(run_entry("r1", phase("p1"), workspace=where)))
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 1, r
    ws = where if where.startswith("/") else str(tmp / where)
    assert r.err == (
        "autopack-ctl: run r1: workspace %s lies in %s, the kernel's file system, where no"
        " file can be written: phase p1 could not write its deliverables there; give the run"
        " a workspace of its own; nothing was written\n" % (ws, kernel)), r
    assert counts(db) == (0, 0, 0)


def can_mount_mqueue(where):
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-Urmi", "sh", "-c", "mount -t mqueue none %s" % where],
        capture_output=True).returncode == 0


def test_a_workspace_on_an_mqueue_mounted_elsewhere_is_refused_at_import(db, tmp):
    """Known by its file system, not its name: a message queue file system mounted under
    the test's directory, in a mount namespace of its own."""
    mq = tmp / "mq"
    mq.mkdir()
    if not can_mount_mqueue(str(mq)):
        pytest.skip("no user, mount and IPC namespace here to mount mqueue in")
    p = write_plan(tmp, plan(run_entry("r1", phase("p1"), workspace=str(mq / "ws"))))
    r = subprocess.run(["unshare", "-Urmi", "sh", "-c", 'mount -t mqueue none "$1" && exec '
                        '"$2" --db "$3" run import "$4"', "sh", str(mq),
                        binpath("autopack-ctl"), url(db), p], capture_output=True, text=True)
    assert r.returncode == 1, r
    assert ("run r1: workspace %s lies in a mqueue file system (%s), the kernel's file "
            "system, where no file can be written" % (mq / "ws", mq)) in r.stderr, r
    assert counts(db) == (0, 0, 0)


def test_a_check_whose_workspace_became_a_link_to_dev_pts_is_not_run_there(tmp):
    ws = tmp / "ws"
    ws.mkdir()
    url_ = init_db(tmp)
    import_plan(tmp, url_, [("run", str(ws), [phase_spec("p1", check="true")])])
    os.rmdir(str(ws))
    os.symlink("/dev/pts", str(ws))
    sup, rc = drain_until_exit(tmp, url_, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               env={"ANTHROPIC_API_KEY": KEY})
    attempts = rows(url_, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in attempts] == [
        ("failed", "INVALID_JOB")], attempts
    assert attempts[0]["message"] == (
        "workspace %s lies in a devpts file system (%s), the kernel's file system, where no "
        "file can be written; give the run a workspace of its own; not sent to the LLM"
        % (ws, ws)), attempts
    assert rc == 0, sup.stderr()


# The file systems only the kernel fills that a workspace may not be on, by their type.
# Not cgroup and cgroup2: mounted anew, each is the machine's hierarchy, where a program that
# took the workspace made a control group of each directory (tests/unit/sysdirs_test.c
# reads the machine's mounts of every kind instead).
KERNEL_FS = ["debugfs", "tracefs", "securityfs", "configfs", "bpf", "pstore", "efivarfs",
             "hugetlbfs", "fusectl"]


def can_mount(kind, where):
    """Whether `kind` can be mounted at `where` in a mount namespace of the test's own (as
    root: these file systems are not mounted in a user namespace)."""
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t %s none %s" % (kind, where)],
        capture_output=True).returncode == 0


@pytest.mark.parametrize("kind", KERNEL_FS)
def test_a_workspace_on_a_file_system_only_the_kernel_fills_is_refused_at_import(db, tmp, kind):
    """Mounted under the test's directory, in a mount namespace of its own: known by its
    type, not its name (a control group file system makes a group of each directory made
    there; a huge pages one takes no write())."""
    mnt = tmp / "mnt"
    mnt.mkdir()
    if not can_mount(kind, str(mnt)):
        pytest.skip("%s cannot be mounted here" % kind)
    p = write_plan(tmp, plan(run_entry("r1", phase("p1"), workspace=str(mnt / "ws"))))
    r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t "$1" none "$2" && exec '
                        '"$3" --db "$4" run import "$5"', "sh", kind, str(mnt),
                        binpath("autopack-ctl"), url(db), p], capture_output=True, text=True)
    assert r.returncode == 1, r
    assert r.stderr == (
        "autopack-ctl: run r1: workspace %s lies in a %s file system (%s), the kernel's file "
        "system, where no file can be written: phase p1 could not write its deliverables "
        "there; give the run a workspace of its own; nothing was written\n"
        % (mnt / "ws", kind, mnt)), r
    assert counts(db) == (0, 0, 0)


def test_a_workspace_a_tracefs_was_mounted_on_after_the_import_is_not_written_to(tmp):
    """The worker's own look, one statfs before the LLM call: the supervisor and its
    workers run in a mount namespace where a tracefs covers the workspace imported."""
    ws = tmp / "ws"
    ws.mkdir()
    if not can_mount("tracefs", str(ws)):
        pytest.skip("tracefs cannot be mounted here")
    url_ = init_db(tmp)
    import_plan(tmp, url_, [("run", str(ws), [phase_spec("p1", check="true")])])
    prefix = ["unshare", "-m", "sh", "-c", 'mount -t tracefs none "$1" && shift && exec "$@"',
              "sh", str(ws)]
    sup, rc = drain_until_exit(tmp, url_, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               env={"ANTHROPIC_API_KEY": KEY}, prefix=prefix)
    attempts = rows(url_, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in attempts] == [
        ("failed", "INVALID_JOB")], (attempts, sup.stderr()[-2000:])
    assert attempts[0]["message"] == (
        "workspace %s lies in a tracefs file system (%s), the kernel's file system, where no "
        "file can be written; give the run a workspace of its own; not sent to the LLM"
        % (ws, ws)), attempts
    assert rc == 0, sup.stderr()
    assert rows(url_, "SELECT id FROM llm_usage_events") == []
