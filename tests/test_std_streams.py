"""The standard streams a parent may leave closed or full: a supervisor started with
stdin, stdout or stderr closed drains and exits as with them open, and `watch` into a
full disk or a closed stdout stops and says so instead of running on unread. Output that
cannot be written (a full disk, a reader gone), `--help`, `--version` and `--json`
results included, fails the command naming the cause."""
import os
import subprocess

import pytest

from conftest import binpath, with_keys
from supervisor_helpers import Supervisor, new_db, sql


@pytest.mark.parametrize("closed", ["<&-", ">&-", "2>&-", "<&- >&- 2>&-"])
def test_a_supervisor_with_standard_descriptors_closed_drains_and_exits_0(tmp, closed):
    # The event loop's descriptors took the free numbers 0-2; closing them at exit
    # aborted (libuv's assertion `fd > STDERR_FILENO`), exit 134, after the drain.
    url = new_db(tmp, runs=2, phases=3)
    env = dict(os.environ, **with_keys("autopack-supervisor", {}))
    p = subprocess.run(
        ["/bin/sh", "-c", 'exec "$0" --db "$1" --dry-run --exit-when-drained --workers 2 '
         + closed, binpath("autopack-supervisor"), url],
        env=env, cwd=str(tmp), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert "Assertion" not in p.stderr
    assert sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'dry_run'") == [(6,)]
    ended = sql(url, "SELECT stop_reason FROM drain_sessions WHERE completed_at IS NOT NULL")
    assert ended == [("drained",)], ended


@pytest.mark.parametrize("out,cause", [("/dev/full", "No space left on device"),
                                       (None, "Bad file descriptor")])
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_watch_whose_output_cannot_be_written_stops_and_says_why(tmp, out, cause, json_flag):
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", "0")
    try:
        sup.wait_ready()
        stdout = open(out, "w") if out else None
        cmd = [binpath("autopack-ctl"), "--db", url] + json_flag + [
            "watch", "--interval", "0.1", "--control", sup.control]
        if out is None:  # stdout closed
            cmd = ["/bin/sh", "-c", 'exec "$@" >&-', "sh"] + cmd
        # It ran until killed, each line refused by the full disk.
        p = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert ("writing standard output failed: %s; the output is incomplete" % cause
                in p.stderr), p.stderr
    finally:
        sup.stop_now()


@pytest.mark.parametrize("command", [["db", "check"], ["session", "list"]])
def test_a_reading_command_whose_reader_went_away_leaves_no_files(tmp, command):
    # `| head -c0`: the reader closed its end before the command wrote. SIGPIPE killed
    # ctl (exit 141) with the database open, and the -wal and -shm files it had made
    # stayed beside a database no process had open.
    url = new_db(tmp, runs=1, phases=1)
    path = url[len("sqlite:///"):]
    r, w = os.pipe()
    os.close(r)
    p = subprocess.run([binpath("autopack-ctl"), "--db", url] + command, stdout=w,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(w)
    assert p.returncode not in (0, -13, 141), (p.returncode, p.stderr)
    assert "writing standard output failed: Broken pipe" in p.stderr, p.stderr
    assert not os.path.exists(path + "-wal") and not os.path.exists(path + "-shm")


def output_to(out, argv):
    """Run argv with stdout on /dev/full ("full") or on a pipe whose reader is gone
    ("gone"); (exit status, stderr)."""
    if out == "full":
        with open("/dev/full", "w") as f:
            p = subprocess.run(argv, stdout=f, stderr=subprocess.PIPE, text=True, timeout=60)
        return p.returncode, p.stderr
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run(argv, stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(w)
    return p.returncode, p.stderr


CAUSE = {"full": "No space left on device", "gone": "Broken pipe"}


@pytest.mark.parametrize("out", ["full", "gone"])
@pytest.mark.parametrize("name,args,status", [
    ("autopack-ctl", ["--help"], 2), ("autopack-ctl", ["--version"], 2),
    ("autopack-ctl", ["db", "--help"], 2), ("autopack-supervisor", ["--help"], 1),
    ("autopack-supervisor", ["--version"], 1), ("autopack-worker", ["--help"], 1),
    ("autopack-worker", ["--version"], 1)])
def test_help_and_version_that_cannot_be_written_fail_and_say_why(out, name, args, status):
    # Each exited 0 without a word, its text lost.
    rc, err = output_to(out, [binpath(name)] + args)
    assert rc == status, (rc, err)
    assert ("%s: writing standard output failed: %s; the output is incomplete"
            % (name, CAUSE[out])) in err, err


@pytest.mark.parametrize("out", ["full", "gone"])
def test_a_json_result_that_cannot_be_written_names_the_cause(tmp, out):
    # The cause was lost with the JSON's flush: "an earlier write was refused".
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", "0")
    try:
        sup.wait_ready()
        for command in (["status"], ["pause"], ["session", "list"], ["failed"]):
            rc, err = output_to(out, [binpath("autopack-ctl"), "--db", url, "--json"]
                                + command + (["--control", sup.control]
                                             if command[0] in ("status", "pause") else []))
            assert rc == 2, (command, rc, err)
            assert ("writing standard output failed: %s; the output is incomplete"
                    % CAUSE[out]) in err, (command, err)
    finally:
        sup.stop_now()
