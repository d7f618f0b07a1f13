"""More of what a hostile operator does to the real binaries: output read by a reader that
goes away, and the like. Each gets one clear error naming what is wrong and a status that
says it failed."""
import os
import subprocess

import pytest

from conftest import binpath
from telemetry_helpers import imported_db


def stdout_gone(argv):
    """Run argv with stdout on a pipe whose reader is gone; (exit status, stderr lines)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run(argv, stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(w)
    return p.returncode, [line for line in p.stderr.splitlines()
                          if line.startswith("autopack-ctl:")]


@pytest.mark.parametrize("command,status,before", [
    (["telemetry", "export"], 2, []),
    # The fit is refused after the banner went to the closed pipe.
    (["calibrate", "--run-id", "no-such-run"], 1, ["no clean samples"])])
def test_output_into_a_reader_gone_is_one_line_naming_broken_pipe(tmp, command, status,
                                                                   before):
    """`telemetry export | head` said it twice, the second time with a cause that was not
    it ("writing standard output failed: Broken pipe", then "... Input/output error; the
    output is incomplete"); a calibrate refused after its banner had gone to the closed
    pipe named "Input/output error" too: the banner's flush had dropped the cause."""
    url = "sqlite:///" + str(imported_db(tmp))
    rc, lines = stdout_gone([binpath("autopack-ctl"), "--db", url] + command)
    assert rc == status, (rc, lines)
    assert len(lines) == len(before) + 1, lines
    for line, start in zip(lines, before):
        assert line.startswith("autopack-ctl: " + start), lines
    assert lines[-1] == ("autopack-ctl: writing standard output failed: Broken pipe; the "
                         "output is incomplete"), lines
    # Into a file that cannot take it the file is named, once.
    p = subprocess.run([binpath("autopack-ctl"), "--db", url, "telemetry", "export", "--out",
                        "/dev/full"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p
    assert [line for line in p.stderr.splitlines() if line.startswith("autopack-ctl:")] == [
        "autopack-ctl: writing /dev/full failed: No space left on device"], p.stderr
