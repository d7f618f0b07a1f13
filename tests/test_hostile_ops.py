"""What a hostile operator does to the real binaries by hand: descriptors that are not
what a flag names, and the like. Each gets a clear error naming what is wrong and a
status that says it failed."""
import os
import socket
import subprocess

from conftest import binpath


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
