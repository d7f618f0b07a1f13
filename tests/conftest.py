"""Shared fixtures: where the binaries are, fresh directories, and helpers that run the
real binaries as separate processes."""
import json
import os
import re
import subprocess

import pytest

BIN = os.environ.get("AUTOPACK_BIN") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "build", "rel", "bin"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.path.join(ROOT, "tests", "data")
# Unit tests that start tests/llm_standin.py find the source tree here.
os.environ.setdefault("AUTOPACK_SRCDIR", ROOT)

# Leaks are reported by LeakSanitizer in sanitizer builds; abort on the first report.
os.environ.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
# No test may reach a database it did not name.
for var in ("AUTOPACK_DB_URL", "DATABASE_URL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
    os.environ.pop(var, None)


def binpath(name):
    return os.path.join(BIN, name)


def preload(shim, **env):
    """The environment that loads the LD_PRELOAD shim `shim` (tests/tools/) into a binary,
    with `env` added; in a sanitizer build the shim is loaded before the sanitizer's
    runtime, which must then not insist on coming first."""
    env["LD_PRELOAD"] = binpath(shim)
    if os.environ.get("AUTOPACK_SANITIZE") == "1":
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    return env


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self):
        return "rc=%d\n--- stdout\n%s\n--- stderr\n%s" % (self.rc, self.out, self.err)


KEY_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
NO_LLM_KEY = "sk-test-no-llm-reached"


def with_keys(name, env):
    """`env` for binary `name`: a supervisor refuses to start without its provider's key,
    so one that is given none (a dry run, rogue workers, a refusal under test) gets a
    placeholder; name a key variable (None: unset) to decide yourself."""
    if name != "autopack-supervisor" or set(KEY_VARS) & set(env or {}):
        return env
    return dict(env or {}, **{k: NO_LLM_KEY for k in KEY_VARS})


def run(name, *args, env=None, cwd=None, timeout=120, input=None):
    """Run binary `name` with `args`; return a Result (never raises on exit status)."""
    full_env = dict(os.environ)
    env = with_keys(name, env)
    if env:
        for k, v in env.items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
    proc = subprocess.run([binpath(name)] + [str(a) for a in args], env=full_env,
                          cwd=cwd, timeout=timeout, input=input,
                          capture_output=True, text=True)
    return Result(proc)


def ctl(*args, **kw):
    return run("autopack-ctl", *args, **kw)


def shortest_real(v):
    """The text the programs write for the double v in JSON: %.15g, %.16g or %.17g, the
    first that reads back as v, a ".0" added to an integral one, the exponent without '+'
    or leading zeros."""
    for prec in (15, 16, 17):
        t = "%.*g" % (prec, v)
        if float(t) == v:
            break
    if "." not in t and "e" not in t:
        t += ".0"
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", t)


def json_reals(text):
    """(value, [the text of each real in the JSON `text`]): each real read back as the
    double it names, and its text as written."""
    seen = []
    value = json.loads(text, parse_float=lambda t: seen.append(t) or float(t))
    return value, seen


def assert_reals_shortest(text):
    """Every real of the JSON `text` is written in its shortest form (shortest_real), and
    reads back as the same double."""
    _, seen = json_reals(text)
    long = [t for t in seen if t != shortest_real(float(t))]
    assert not long, long
    return seen


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    """A fresh directory that is also the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def pg_cluster():
    """This test process's PostgreSQL server (tests/pg_cluster.py)."""
    from pg_cluster import Cluster
    c = Cluster()
    yield c
    c.close()


@pytest.fixture
def pg_url(pg_cluster):
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = pg_cluster.new_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture
def llm(tmp):
    """The LLM stand-in (tests/llm_standin.py) answering every request normally."""
    from supervisor_helpers import Standin
    s = Standin(tmp)
    yield s
    s.stop()


@pytest.fixture(params=["sqlite", "pg"])
def backend_url(request, tmp):
    """A database URL on each backend, for `db init`: a file not made yet in tmp, or a
    fresh empty PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite:///" + os.path.join(str(tmp), "autopack.db")
    return request.getfixturevalue("pg_url")


_summary = []


def pytest_terminal_summary(terminalreporter):
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    skipped = len(stats.get("skipped", []))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    xfailed = len(stats.get("xfailed", []))
    if xfailed:
        line += ", %d expected failure%s" % (xfailed, "" if xfailed == 1 else "s")
    _summary.append(line)


def pytest_unconfigure(config):
    """Print the plain closing line after pytest's own summary."""
    if _summary and not hasattr(config, "workerinput"):
        print(_summary[-1], flush=True)
