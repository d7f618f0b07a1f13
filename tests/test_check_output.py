"""A phase's check command that writes without end costs a bounded amount of disk: each of
its log files keeps the first and the last 512 KiB, with a line naming the bytes dropped
between them, and the attempt is judged on the command's exit status as before."""
import os
import re
import stat
import subprocess

import pytest

from conftest import preload
from e2e_helpers import Standin, checks_where, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor

KEY = {"ANTHROPIC_API_KEY": "sk-ant-check-output"}
KIB = 1024
MIB = 1024 * KIB

# 300 MiB on stdout and 200 MiB on stderr, each between a first and a last line.
FLOOD = ("echo FIRST-OUT; yes 0123456789abcdef | head -c %d; echo; echo LAST-OUT; "
         "echo FIRST-ERR >&2; yes fedcba9876543210 | head -c %d >&2; echo >&2; "
         "echo LAST-ERR >&2; exit %%d" % (300 * MIB, 200 * MIB))


def drain_one(tmp, check, attempts=1, env=None, prefix=(), args=()):
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws, exist_ok=True)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])
    llm = Standin(tmp)
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained",
                     "--max-attempts-per-phase", attempts, *(llm_args(llm) + list(args)),
                     env=dict(KEY, **(env or {})), prefix=prefix)
    try:
        rc = sup.wait(timeout=240)
    finally:
        sup.kill()
        llm.stop()
    logs = os.path.join(ws, ".autopack", "logs")
    return url, rc, sup, logs


def check_capped(path, first, last, total):
    size = os.path.getsize(path)
    assert size <= 1 * MIB + 256, (path, size)
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(first + b"\n"), data[:64]
    assert data.endswith(last + b"\n"), data[-64:]
    m = re.search(rb"\n\[autopack: (\d+) bytes of output dropped here; this log keeps the "
                  rb"first 524288 and the last 524288 bytes of (\d+)\]\n", data)
    assert m is not None, data[512 * KIB - 64:512 * KIB + 256]
    assert int(m.group(2)) == total, m.group(0)
    assert int(m.group(1)) == total - 1 * MIB, m.group(0)
    assert m.start() == 512 * KIB and len(data) - m.end() == 512 * KIB


def test_a_check_writing_hundreds_of_mib_keeps_a_capped_log_and_passes(tmp):
    tmp = str(tmp)
    url, rc, sup, logs = drain_one(tmp, FLOOD % 0)
    assert rc == 0, sup.stderr()[-3000:]
    att = rows(url, "SELECT outcome, failure_reason FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [("success", None)], att
    out_total = len(b"FIRST-OUT\n") + 300 * MIB + len(b"\nLAST-OUT\n")
    err_total = len(b"FIRST-ERR\n") + 200 * MIB + len(b"\nLAST-ERR\n")
    check_capped(os.path.join(logs, "run__p1__a1.stdout.txt"), b"FIRST-OUT", b"LAST-OUT",
                 out_total)
    check_capped(os.path.join(logs, "run__p1__a1.stderr.txt"), b"FIRST-ERR", b"LAST-ERR",
                 err_total)
    assert "exceeded 1024 KiB: its log keeps the first and last 512 KiB" in sup.stderr()
    assert os.path.getsize(url[len("sqlite:///"):]) < 8 * MIB


def test_a_failing_check_that_floods_is_judged_on_its_status_with_the_tail_as_excerpt(tmp):
    tmp = str(tmp)
    url, rc, sup, logs = drain_one(tmp, FLOOD % 3)
    att = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("failed", "CHECK_FAILED")], att
    assert "exited 3" in att[0]["message"] and "LAST-ERR" in att[0]["message"]
    assert len(att[0]["message"]) < 4096
    assert os.path.getsize(os.path.join(logs, "run__p1__a1.stdout.txt")) <= 1 * MIB + 256


def test_short_output_is_kept_whole_without_a_marker(tmp):
    tmp = str(tmp)
    url, rc, sup, logs = drain_one(tmp, "echo hello; echo oops >&2; exit 0")
    assert rc == 0, sup.stderr()[-3000:]
    with open(os.path.join(logs, "run__p1__a1.stdout.txt"), "rb") as f:
        assert f.read() == b"hello\n"
    with open(os.path.join(logs, "run__p1__a1.stderr.txt"), "rb") as f:
        assert f.read() == b"oops\n"


def test_a_check_whose_stderr_is_not_utf8_fails_as_check_failed_not_as_a_crash(tmp):
    # The end of stderr went into the result's message as it was: the worker could not
    # encode its result, exited 1, and the attempt counted as WORKER_CRASHED (an
    # infrastructure failure, toward the breaker).
    tmp = str(tmp)
    url, rc, sup, logs = drain_one(tmp, "printf 'abc\\377\\376\\303' >&2; exit 1")
    att = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("failed", "CHECK_FAILED")], (att, sup.stderr()[-2000:])
    assert att[0]["message"].endswith("abc\ufffd\ufffd\ufffd"), att[0]["message"]
    assert "cannot encode" not in sup.stderr()


def test_a_check_whose_stderr_log_the_full_disk_refused_is_quoted_from_what_it_sent(tmp):
    # The excerpt was read back from the log files: with stderr's refused by a full disk
    # it was stdout's ("out-line"), quoted as the end of stderr, and the error was lost.
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", ws],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        # stdout reaches its log, then the check fills the disk and fails on stderr
        check = ("echo out-line; while [ ! -s .autopack/logs/run__p1__a1.stdout.txt ]; do "
                 "sleep 0.05; done; cat /dev/zero > fill 2>/dev/null; "
                 "echo the-real-error >&2; exit 1")
        url, rc, sup, logs = drain_one(tmp, check)
        att = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
        assert [(a["outcome"], a["failure_reason"]) for a in att] == [
            ("failed", "CHECK_FAILED")], (att, sup.stderr()[-2000:])
        stderr_log = os.path.join(logs, "run__p1__a1.stderr.txt")
        assert os.path.getsize(stderr_log) == 0
        assert att[0]["message"] == (
            "check command exited 1 (stderr: %s, not all written: No space left on device"
            " (ENOSPC); it holds 0 of the 15 bytes sent): the-real-error\n" % stderr_log), \
            att[0]["message"]
        assert "writing the check log %s: No space left on device" % stderr_log in sup.stderr()
    finally:
        subprocess.run(["umount", "-l", ws])


def full_disk_for(suffix, room):
    """The environment in which a worker's writes to the files ending in `suffix` find
    `room` bytes left on the disk, then ENOSPC (tests/tools/full_shim.c)."""
    return preload("full-shim.so", AUTOPACK_FULL_SHIM_SUFFIX=suffix,
                   AUTOPACK_FULL_SHIM_BYTES=str(room))


def test_a_check_whose_stdout_log_the_disk_refused_says_so_and_keeps_its_end(tmp):
    """The stdout log that the disk refused went unsaid: the attempt's message named the
    stderr log alone and quoted the end of stderr, and what stdout sent past the bytes the
    log took was lost. Now the message names both logs, says why one is not whole and how
    much of it it holds, and keeps the end of stdout, from the worker's memory."""
    tmp = str(tmp)
    check = "echo 0123456789abcdef-out; echo err-line >&2; exit 3"
    url, rc, sup, logs = drain_one(tmp, check, env=full_disk_for(".stdout.txt", 10))
    att = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("failed", "CHECK_FAILED")], (att, sup.stderr()[-2000:])
    out_log = os.path.join(logs, "run__p1__a1.stdout.txt")
    err_log = os.path.join(logs, "run__p1__a1.stderr.txt")
    with open(out_log, "rb") as f:
        assert f.read() == b"0123456789"
    assert att[0]["message"] == (
        "check command exited 3 (stderr: %s; stdout: %s, not all written: No space left on "
        "device (ENOSPC); it holds 10 of the 21 bytes sent): err-line\n; stdout ended: "
        "0123456789abcdef-out\n" % (err_log, out_log)), att[0]["message"]
    assert "writing the check log %s: No space left on device" % out_log in sup.stderr()
    assert rc == 0, sup.stderr()[-2000:]


def test_a_passing_check_whose_stderr_log_the_disk_refused_says_so_in_its_attempt(tmp):
    """A check that passed while its log was lost left the attempt's row without a word of
    it (only the worker's log line said it): an operator reading the log found it empty."""
    tmp = str(tmp)
    check = "echo fine; echo warn-line >&2; exit 0"
    url, rc, sup, logs = drain_one(tmp, check, env=full_disk_for(".stderr.txt", 0))
    att = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("success", None)], (att, sup.stderr()[-2000:])
    err_log = os.path.join(logs, "run__p1__a1.stderr.txt")
    assert os.path.getsize(err_log) == 0
    assert re.fullmatch(
        r"check command passed in \d+ ms; its output is not all in its logs \(stderr: %s, "
        r"not all written: No space left on device \(ENOSPC\); it holds 0 of the 10 bytes "
        r"sent\); stderr ended: warn-line\n" % re.escape(err_log), att[0]["message"]), \
        att[0]["message"]
    with open(os.path.join(logs, "run__p1__a1.stdout.txt")) as f:
        assert f.read() == "fine\n"
    assert rc == 0, sup.stderr()[-2000:]


def test_a_check_killed_at_its_deadline_names_the_log_the_disk_refused(tmp):
    tmp = str(tmp)
    check = "echo timed-out-line >&2; sleep 60"
    url, rc, sup, logs = drain_one(tmp, check, env=full_disk_for(".stderr.txt", 4),
                                   args=["--phase-timeout-seconds", 3])
    att = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("timeout", "TIMEOUT")], (att, sup.stderr()[-2000:])
    err_log = os.path.join(logs, "run__p1__a1.stderr.txt")
    assert re.fullmatch(
        r"check command killed at the attempt's deadline after \d+ ms \(see stderr: %s, not "
        r"all written: No space left on device \(ENOSPC\); it holds 4 of the 15 bytes "
        r"sent\)" % re.escape(err_log), att[0]["message"]), att[0]["message"]


def test_a_fifo_or_a_symlink_left_at_the_next_attempts_log_is_replaced_not_opened(tmp):
    # The check of attempt 1 leaves a FIFO at attempt 2's stdout log and a symbolic link to
    # a file outside the workspace at its stderr log. The worker opened the FIFO and waited
    # for a reader until the supervisor killed it (HEARTBEAT_LOST), and wrote the check's
    # output through the link, as root into a file the check itself may not write. A
    # confined check finds the logs directory read-only (tests/test_check_planted.py): the
    # worker's own care is tried here with checks the kernel refused to confine.
    prefix = checks_where("no-namespace")
    tmp = str(tmp)
    victim = os.path.join(tmp, "victim.txt")
    with open(victim, "w") as f:
        f.write("precious\n")
    check = ("echo to-stdout; echo to-stderr >&2; [ -e .autopack/logs/run__p1__a2.stdout.txt ]"
             " || { mkfifo .autopack/logs/run__p1__a2.stdout.txt;"
             " ln -s %s .autopack/logs/run__p1__a2.stderr.txt; exit 1; }" % victim)
    url, rc, sup, logs = drain_one(tmp, check, attempts=2, prefix=prefix)
    att = rows(url, "SELECT outcome, failure_reason FROM attempts ORDER BY attempt_id")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("failed", "CHECK_FAILED"), ("success", None)], (att, sup.stderr()[-2000:])
    with open(victim) as f:
        assert f.read() == "precious\n"
    for stream in ("stdout", "stderr"):
        path = os.path.join(logs, "run__p1__a2.%s.txt" % stream)
        assert not os.path.islink(path) and stat.S_ISREG(os.stat(path).st_mode), path
        with open(path) as f:
            assert f.read() == "to-%s\n" % stream


def test_a_logs_directory_a_check_replaced_with_a_symlink_is_not_followed(tmp):
    # The check of attempt 1 puts a symbolic link to a directory outside the workspace in
    # place of .autopack/logs: attempt 2's logs were created there. A confined check can
    # move neither (tests/test_check_planted.py): the worker's own care is tried here with
    # checks the kernel refused to confine.
    prefix = checks_where("no-namespace")
    tmp = str(tmp)
    outside = os.path.join(tmp, "outside")
    os.makedirs(outside)
    check = ("[ -L .autopack/logs ] || { mv .autopack/logs .autopack/old;"
             " ln -s %s .autopack/logs; exit 1; }" % outside)
    url, rc, sup, logs = drain_one(tmp, check, attempts=2, prefix=prefix)
    att = rows(url, "SELECT outcome, failure_reason, message FROM attempts"
                    " ORDER BY attempt_id")
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("failed", "CHECK_FAILED"), ("failed", "CHECK_NOT_RUN")], (att, sup.stderr()[-2000:])
    assert att[1]["message"] == (
        "cannot open %s/.autopack/logs: not a directory (a symbolic link or another file that"
        " a check or another program put there)" % os.path.join(tmp, "ws")), att[1]["message"]
    assert os.listdir(outside) == []


def test_a_deliverable_a_check_linked_to_proc_kmsg_is_not_read_by_the_next_attempt(tmp):
    # The check of attempt 1 puts a symbolic link to /proc/kmsg in place of the deliverable.
    # Attempt 2's estimate read the existing file to weigh it: as root, /proc/kmsg (size 0,
    # a regular file by its mode) gave away the kernel's pending messages and then blocked
    # for ever, until the supervisor killed the worker (HEARTBEAT_LOST).
    if os.geteuid() != 0 or not os.access("/proc/kmsg", os.R_OK):
        pytest.skip("/proc/kmsg is read by root only")
    tmp = str(tmp)
    check = "[ -L out/mod.py ] || { ln -sf /proc/kmsg out/mod.py; exit 1; }"
    url, rc, sup, logs = drain_one(tmp, check, attempts=2)
    att = rows(url, "SELECT outcome, failure_reason, message FROM attempts"
                    " ORDER BY attempt_id")
    # The deliverable is refused before the call: the link there leaves the workspace.
    assert [(a["outcome"], a["failure_reason"]) for a in att] == [
        ("failed", "CHECK_FAILED"), ("failed", "WRITE_FAILED")], (att, sup.stderr()[-2000:])
    assert "leaves the workspace (-> /proc/kmsg)" in att[1]["message"], att[1]


def test_a_supervisor_started_with_an_empty_path_gives_its_checks_the_default_one(tmp):
    """`Environment=PATH=` or `env PATH= autopack-supervisor …`: the checks got the empty
    PATH, their shell found no program by name, and every phase whose check runs one
    failed CHECK_FAILED (`sh: 1: python3: not found`). An empty PATH is taken as unset, as
    the checks' default."""
    url, rc, sup, logs = drain_one(tmp, "python3 -c 'print(40 + 2)'", env={"PATH": ""})
    assert rc == 0, sup.stderr()
    assert rows(url, "SELECT outcome FROM attempts") == [{"outcome": "success"}], sup.stderr()
    with open(os.path.join(logs, "run__p1__a1.stdout.txt")) as f:
        assert f.read() == "42\n"
