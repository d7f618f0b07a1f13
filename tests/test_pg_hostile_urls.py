"""Passwords written into a PostgreSQL URL in the forms libpq reads that a reader of the
URL may not expect: a '?', '#' or '/' inside the password, a parameter named
passwor%64, a token libpq quotes back in its message. None may be shown: not in an
error, a log line, a row, or the command line of a running process (docs/postgresql.md,
"URLs and passwords")."""
import json
import os
import subprocess

import pytest

from conftest import NO_LLM_KEY, binpath, ctl
from supervisor_helpers import Supervisor, sql, wait_for
from test_fleet import new_pg_db

# Two halves of every password below: neither may be shown anywhere.
HALVES = ("Zq7", "Wk9")


def assert_hidden(*texts):
    for text in texts:
        for half in HALVES:
            assert half not in text, text


@pytest.mark.parametrize("form,said", [
    ("postgresql://autopack:Zq7%zzWk9@127.0.0.1:{port}/{db}",
     'invalid percent-encoded token: "***"'),
    ("postgresql://autopack:Zq7Wk9@[::1/{db}",
     'matching "]" in IPv6 host address in URI: "postgresql://autopack:***@[::1/'),
    ("postgresql://autopack:Zq7#Wk9@127.0.0.1:{port}/{db}",
     "fragments ('#...') are not supported (a '#' in a password is written %23)"),
    ("postgresql://autopack:Zq7/Wk9@127.0.0.1:{port}/{db}",
     "port '***' is not a port number (a '/' in a password is written %2F)"),
    ("postgresql://autopack@127.0.0.1:{port}/{db}?passwor%64=Zq7Wk9&service=x",
     "?passwor%64=***&service=x': the connection parameter 'service' is not supported"),
    ("postgresql://autopack:Zq7?Wk9@127.0.0.1:{port}/{db}?service=x",
     "postgresql://autopack:***@127.0.0.1"),
])
def test_a_url_refused_never_shows_its_password(tmp, pg_cluster, form, said):
    """Each URL is refused (ctl exit 2, the supervisor 1) naming what is wrong, with its
    password as ***. Before, libpq's message quoted the token or the whole URL holding it,
    and a password holding '#', '/' or '?', or given as ?passwor%64=, was shown as written
    (the URL was cut at the first '/', '?' or '#' to find its user part, and the query
    searched for the exact text password=)."""
    url = form.format(port=pg_cluster.port, db=pg_cluster.new_database())
    r = ctl("--db", url, "db", "check")
    assert r.rc == 2 and said in r.err, r
    assert_hidden(r.out, r.err)
    r = ctl("--db", url, "db", "check", "--json")
    assert r.rc == 2 and json.loads(r.out)["ok"] is False, r
    assert_hidden(r.out, r.err)
    r = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--dry-run"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ANTHROPIC_API_KEY=NO_LLM_KEY,
                                OPENAI_API_KEY=NO_LLM_KEY))
    assert r.returncode == 1 and said in r.stderr, r.stderr
    assert_hidden(r.stdout, r.stderr)


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().replace(b"\0", b" ").decode("utf-8", "replace")


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.parametrize("form", [
    "postgresql://autopack@127.0.0.1:{port}/{db}?passwor%64=Zq7Wk9",
    "postgresql://autopack:Zq7?Wk9@127.0.0.1:{port}/{db}",
])
def test_a_password_libpq_reads_is_hidden_from_every_command_line(tmp, pg_cluster, form):
    """A URL whose password libpq reads (the suite's server trusts the role, so any
    password connects): the supervisor and `autopack-ctl watch` run with it. Their command
    lines (/proc/PID/cmdline, which every process of the machine reads), their workers',
    their output and the fleet's rows must not show it. Before, both forms stayed in the
    command line for as long as each process ran."""
    name = pg_cluster.new_database()
    new_pg_db(tmp, pg_cluster.url(name), runs=2, tiers=1, phases=2)
    url = form.format(port=pg_cluster.port, db=name)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run")
    watch = None
    try:
        sup.wait_ready(timeout=60)
        watch = subprocess.Popen([binpath("autopack-ctl"), "--db", url, "watch",
                                  "--control", sup.control], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        line = watch.stdout.readline()
        assert line, watch.stderr.read()
        shown = [cmdline(sup.proc.pid), cmdline(watch.pid)]
        assert "--db" in shown[0] and "watch" in shown[1], shown
        shown += [cmdline(p) for p in children(sup.proc.pid)]
        assert len(shown) >= 3, shown
        assert_hidden(line, *shown)
        rows = sql(pg_cluster.url(name), "SELECT * FROM supervisors") + \
            sql(pg_cluster.url(name), "SELECT * FROM drain_sessions")
        assert rows
        assert_hidden(repr(rows))
    finally:
        if watch is not None:
            watch.kill()
            watch.wait()
        sup.kill()
    wait_for(lambda: sup.proc.poll() is not None, 30, what="the supervisor ended")
    assert_hidden(sup.stderr(), sup.stdout())


@pytest.mark.parametrize("how", ["PGHOSTADDR", "PGSERVICE"])
def test_an_address_from_the_environment_is_refused_naming_it(tmp, pg_cluster, how):
    """The URL names the host db.invalid, and the environment gives libpq an address to
    connect to instead: PGHOSTADDR, or a service file (PGSERVICEFILE, PGSERVICE) setting
    hostaddr. Every command and the supervisor must refuse the URL naming the address,
    before connecting. Before, each connected to the suite's server while every message,
    banner and row named db.invalid."""
    name = pg_cluster.new_database()
    new_pg_db(tmp, pg_cluster.url(name), runs=1, tiers=1, phases=1)
    if how == "PGHOSTADDR":
        env = {"PGHOSTADDR": "127.0.0.1"}
    else:
        service = os.path.join(str(tmp), "pg_service.conf")
        with open(service, "w") as f:
            f.write("[elsewhere]\nhostaddr=127.0.0.1\n")
        env = {"PGSERVICEFILE": service, "PGSERVICE": "elsewhere"}
    url = "postgresql://autopack@db.invalid:%d/%s" % (pg_cluster.port, name)
    said = ("the environment sets the server's address 127.0.0.1 (PGHOSTADDR, or the "
            "service file PGSERVICE names), which libpq would connect to instead of the host "
            "the URL names")
    r = ctl("--db", url, "db", "check", env=env)
    assert r.rc == 2 and said in r.err, r
    r = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--dry-run"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ANTHROPIC_API_KEY=NO_LLM_KEY,
                                OPENAI_API_KEY=NO_LLM_KEY, **env))
    assert r.returncode == 1 and said in r.stderr, r.stderr
    assert sql(pg_cluster.url(name), "SELECT count(*) FROM supervisors") == [(0,)]


@pytest.mark.parametrize("scheme", ["postgresql+psycopg2", "postgresql+psycopg", "postgres",
                                    "postgresql+asyncpg", "postgresql+pg8000"])
def test_sqlalchemys_and_libpqs_other_spellings_reach_the_same_database(tmp, pg_url, scheme):
    """The spellings an operator brings from the Python original's DATABASE_URL
    (SQLAlchemy names the Python driver after a '+'; postgres:// is libpq's and Heroku's)
    name the database postgresql:// names, with the same canonical URL, on every command
    and in the supervisor."""
    assert ctl("--db", pg_url, "db", "init").rc == 0
    canonical = json.loads(ctl("--db", pg_url, "db", "check", "--json",
                               "--allow-empty-db").out)["database"]["url"]
    given = scheme + pg_url[len("postgresql"):]
    r = ctl("--db", given, "db", "check", "--json", "--allow-empty-db")
    assert r.rc == 0, r
    assert json.loads(r.out)["database"]["url"] == canonical, r
    r = ctl("db", "check", "--allow-empty-db",
            env={"DATABASE_URL": given, "AUTOPACK_DB_URL": pg_url})
    assert r.rc == 0, r
    r = subprocess.run([binpath("autopack-supervisor"), "--db", given, "--dry-run",
                        "--exit-when-drained", "--allow-empty-db", "--workers", "1"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ANTHROPIC_API_KEY=NO_LLM_KEY,
                                OPENAI_API_KEY=NO_LLM_KEY))
    assert r.returncode == 0 and "url:            %s\n" % canonical in r.stdout, r
