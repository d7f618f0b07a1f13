"""Numbers given as option values: the whole value is the number. A value with white
space before it (' 8', which strtol would read as 8) is refused like any other malformed
number of that option, with the same message."""
import os

import pytest

from conftest import ctl, run
from supervisor_helpers import Supervisor, new_db

# The same bad value with and without what strtol would skip or let through.
PADDED = (" 8", "\t8", "\n8", "+8")


def shown(name, value):
    """A value as `name` quotes it in a message: every program shows a tab and a newline
    escaped (each message is one line)."""
    return value.replace("\t", "\\t").replace("\n", "\\n")


def refusal(name, args, value, tmp):
    """Run binary `name` with `args` (VALUE stands for the value); the Result."""
    argv = [value if a == "VALUE" else a.replace("VALUE", value) for a in args]
    if name == "autopack-ctl":
        return ctl("--db", "sqlite:///%s/none.db" % tmp, *argv)
    return run(name, *argv)


CASES = [
    ("autopack-supervisor", ["--workers", "VALUE"]),
    ("autopack-supervisor", ["--batch-size", "VALUE"]),
    ("autopack-supervisor", ["--commit-max", "VALUE"]),
    ("autopack-supervisor", ["--llm-retries", "VALUE"]),
    ("autopack-supervisor", ["--lease-timeout", "VALUE"]),
    ("autopack-supervisor", ["--http", "127.0.0.1:VALUE"]),
    ("autopack-worker", ["--event-window", "VALUE"]),
    ("autopack-worker", ["--fd", "VALUE"]),
    ("autopack-ctl", ["watch", "--count", "VALUE"]),
    ("autopack-ctl", ["watch", "--interval", "VALUE"]),
    ("autopack-ctl", ["watch", "--supervisor", "VALUE"]),
    ("autopack-ctl", ["status", "--supervisor", "VALUE"]),
    ("autopack-ctl", ["calibrate", "--folds", "VALUE"]),
    ("autopack-ctl", ["calibrate", "--repeats", "VALUE"]),
    ("autopack-ctl", ["calibrate", "--min-samples", "VALUE"]),
    ("autopack-ctl", ["calibrate", "--coverage", "VALUE"]),
    ("autopack-ctl", ["calibrate", "--confidence-threshold", "VALUE"]),
    ("autopack-ctl", ["telemetry", "report", "--under-multiplier", "VALUE"]),
    ("autopack-ctl", ["failed", "--since", "VALUEm"]),
]


@pytest.mark.parametrize("name, args", CASES, ids=[" ".join(a) for _, a in CASES])
def test_a_number_with_space_before_it_is_refused_like_any_malformed_one(tmp, name, args):
    bad = refusal(name, args, "x8", tmp)
    assert bad.rc == 2 and "x8" in bad.err, bad
    for value in PADDED:
        r = refusal(name, args, value, tmp)
        assert r.rc == 2, (value, r)
        assert r.err == bad.err.replace("x8", shown(name, value)), (value, r)
    assert not os.path.exists(os.path.join(str(tmp), "none.db"))


def test_scale_and_stop_refuse_a_count_with_space_before_it(tmp):
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        for value in PADDED:
            r = sup.ctl("scale", value)
            assert r.rc == 1 and 'scale: "%s" is not a worker count from 0 to 1024' % \
                shown("autopack-ctl", value) in r.err, (value, r)
            r = sup.ctl("stop", "--timeout", value)
            assert r.rc == 1 and ('stop: --timeout needs a whole number of seconds from 0 to'
                                  ' 86400, got "%s"' % shown("autopack-ctl", value)) \
                in r.err, (value, r)
        assert sup.status()["state"] == "running"
    finally:
        sup.kill()
