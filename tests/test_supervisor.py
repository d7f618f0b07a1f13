"""The supervisor, its worker pool and live control, as real processes on real SQLite
files and sockets."""
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys

import msgpack
import pytest

from conftest import ctl
from supervisor_helpers import (KEY, Supervisor, gate_check, hold_write_lock,
                                llm_supervisor, log_times, new_db, release, rogue_notes,
                                rogue_supervisor, sql, status_when, wait_for)


def processes_in(directory):
    """Pids of processes whose working directory is under `directory`."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink("/proc/%s/cwd" % pid).startswith(directory):
                    found.append(int(pid))
            except OSError:
                pass
    return found


def attempts(url):
    return sql(url, "SELECT attempt_id, run_id, phase_id, outcome, dry_run FROM attempts"
               " ORDER BY attempt_id")


def test_dry_run_drains_1000_phases_once_each_in_order(tmp):
    url = new_db(tmp, runs=50, tiers=2, phases=10)
    sup = Supervisor(tmp, url, "--workers", 8, "--dry-run", "--exit-when-drained")
    assert sup.wait(timeout=300) == 0, sup.stderr()
    rows = attempts(url)
    assert len(rows) == 1000
    keys = [(r[1], r[2]) for r in rows]
    assert len(set(keys)) == 1000, "a phase was visited twice"
    assert all(r[3] == "dry_run" and r[4] == 1 for r in rows)
    # Inside each run, attempts follow (tier index, phase index).
    order = {}
    for att, run, phase, _, _ in rows:
        order.setdefault(run, []).append(phase)
    for run, phases in order.items():
        expected = ["p%d-%d" % (t, p) for t in range(2) for p in range(10)]
        assert phases == expected, run
    # A dry run leaves phase states alone.
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("QUEUED", 1000)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    assert sql(url, "SELECT completed_at IS NOT NULL, stop_reason FROM drain_sessions") == \
        [(1, "drained")]


def test_phases_go_by_run_tier_and_index_whatever_order_their_rows_were_written(tmp):
    # Rows written in another order than the drain's (a database another program filled,
    # phases renumbered): the queue still goes by run id, then tier index, phase index.
    url = new_db(tmp, runs=3, tiers=2, phases=4)
    path = url[len("sqlite:///"):]
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE phases SET phase_index = 3 - phase_index")
        con.execute("UPDATE tiers SET tier_index = 1 - tier_index")
        con.execute("UPDATE runs SET id = 'z' || id WHERE id = 'run-000'")
        con.execute("UPDATE phases SET run_id = 'z' || run_id WHERE run_id = 'run-000'")
        con.execute("UPDATE tiers SET run_id = 'z' || run_id WHERE run_id = 'run-000'")
    con.close()
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
    assert sup.wait(timeout=120) == 0, sup.stderr()
    order = {}
    for _, run, phase, _, _ in attempts(url):
        order.setdefault(run, []).append(phase)
    expected = ["p%d-%d" % (t, p) for t in (1, 0) for p in (3, 2, 1, 0)]
    assert order == {"run-001": expected, "run-002": expected, "zrun-000": expected}, order


def test_second_supervisor_is_refused_naming_the_holder(tmp):
    url = new_db(tmp, runs=1)
    first = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--allow-empty-db")
    first.ctl  # noqa
    try:
        st = first.wait_ready()
        second = Supervisor(tmp, url, "--workers", 1, name="second")
        assert second.wait(timeout=30) == 1
        assert "held by autopack-supervisor pid %d" % first.proc.pid in second.stderr()
        assert st["db_uuid"] == sql(url, "SELECT db_uuid FROM meta")[0][0]
    finally:
        first.signal(signal.SIGTERM)
        assert first.wait() == 0


def flock_holder(path, seconds):
    """A process (python3) holding the exclusive flock autopack's writers take on the
    database file for `seconds`, as `autopack-ctl` asking whether a supervisor runs holds
    it for moments; returned once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", """
import fcntl, sys, time
f = open(sys.argv[1], "rb")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
""", path, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_start_waits_out_a_moments_hold_of_the_lock_by_another_program(tmp):
    """`autopack-ctl status` run as a supervisor starts takes the lock for the moment it
    asks whether one runs: the start waits for it (it failed: `held by autopack-supervisor
    pid N`, N being the command's pid)."""
    url = new_db(tmp, runs=1, phases=2)
    holder = flock_holder(os.path.join(str(tmp), "autopack.db"), 0.5)
    try:
        sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
        assert sup.wait(timeout=60) == 0, sup.stderr()
    finally:
        holder.kill()
        holder.wait()
    assert len(attempts(url)) == 2  # a dry run's attempts: the drain ran
    assert "waited" not in sup.stderr()


def test_a_start_refused_after_its_wait_names_the_program_holding_the_lock(tmp):
    url = new_db(tmp, runs=1)
    holder = flock_holder(os.path.join(str(tmp), "autopack.db"), 60)
    try:
        sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
        assert sup.wait(timeout=60) == 1
        assert "is held by python3 pid %d (waited 2.0 s for it); refusing to start a second " \
            "writer" % holder.pid in sup.stderr(), sup.stderr()
    finally:
        holder.kill()
        holder.wait()


def test_status_asked_in_a_loop_never_fails_a_supervisors_start(tmp):
    """An operator's `watch autopack-ctl status` while the service restarts: each start
    drains."""
    url = new_db(tmp, runs=1, phases=1)
    stop = []

    def ask():
        while not stop:
            ctl("--db", url, "status")
    import threading
    asker = threading.Thread(target=ask)
    asker.start()
    try:
        for i in range(6):
            sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                             "--allow-empty-db", name="s%d" % i)
            assert sup.wait(timeout=60) == 0, sup.stderr()
    finally:
        stop.append(True)
        asker.join()


def test_refuses_missing_and_empty_databases(tmp):
    url = "sqlite:///" + os.path.join(str(tmp), "missing.db")
    sup = Supervisor(tmp, url, "--workers", 1)
    assert sup.wait() == 1
    assert "does not exist" in sup.stderr()
    assert not os.path.exists(os.path.join(str(tmp), "missing.db"))
    empty = new_db(tmp, runs=0)
    sup = Supervisor(tmp, empty, "--workers", 1, name="empty")
    assert sup.wait() == 1
    assert "empty" in sup.stderr()


def test_refuses_to_start_without_the_providers_key(tmp):
    """No key would end every attempt NO_API_KEY, using up phases and stopping runs: the
    supervisor refuses to start instead (after the database's own refusals), before it
    opens a session."""
    from conftest import run
    url = new_db(tmp, runs=1, phases=2)
    sock = os.path.join(str(tmp), "sup.sock")
    base = ("--db", url, "--workers", 1, "--exit-when-drained", "--control", sock)
    unset = {"ANTHROPIC_API_KEY": None, "OPENAI_API_KEY": None}
    for env, args, var in [(unset, (), "ANTHROPIC_API_KEY"),
                           ({"ANTHROPIC_API_KEY": ""}, (), "ANTHROPIC_API_KEY"),
                           ({"ANTHROPIC_API_KEY": "sk-ant-x"}, ("--llm-provider", "openai"),
                            "OPENAI_API_KEY")]:
        r = run("autopack-supervisor", *base, *args, env=env, timeout=60)
        assert r.rc == 1, r
        assert var + " is not set (or empty)" in r.err and "--dry-run" in r.err, r.err
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]
    # A dry run calls no LLM and needs no key.
    r = run("autopack-supervisor", *base, "--dry-run", env=unset, timeout=60)
    assert r.rc == 0, r
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("dry_run", 2)]
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY 1") == [("QUEUED", 2)]


def test_keys_longer_than_a_worker_takes_are_refused_at_the_start(tmp):
    """The keys are written whole into a pipe before the worker reads it, and a worker
    takes at most 64 KiB of them with their names: longer keys are refused at the start,
    naming each variable and its size (the supervisor waited on that write for ever, its
    loop stopped, at its first worker's start). Keys of exactly 64 KiB are taken (a worker
    refused them as holding over 64 KiB)."""
    from conftest import run
    url = new_db(tmp, runs=1, phases=2)
    base = ("--db", url, "--workers", 1, "--exit-when-drained",
            "--control", os.path.join(str(tmp), "sup.sock"))
    r = run("autopack-supervisor", *base, timeout=60,
            env={"ANTHROPIC_API_KEY": "a" * 40000, "OPENAI_API_KEY": "o" * 30000})
    assert r.rc == 1, r
    assert "the provider keys in the environment are too long (ANTHROPIC_API_KEY holds" \
        " 40000 bytes, OPENAI_API_KEY holds 30000 bytes): workers take at most 65536" \
        " bytes" in r.err, r.err
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]
    # "ANTHROPIC_API_KEY=", the key and its NUL byte: 65536 bytes.
    key = "k" * (65536 - len("ANTHROPIC_API_KEY=") - 1)
    r = run("autopack-supervisor", *base, "--dry-run", timeout=60,
            env={"ANTHROPIC_API_KEY": key, "OPENAI_API_KEY": None})
    assert r.rc == 0, r
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("dry_run", 2)]


def test_keys_a_pipe_cannot_hold_are_refused_not_waited_on(tmp):
    """A user whose pipes hold more pages than /proc/sys/fs/pipe-user-pages-soft gets new
    pipes of two pages (8 KiB), which it may not enlarge (pipe-shim.so gives the supervisor
    such pipes): keys longer than that are refused, naming the pipe's size and the cause,
    and the supervisor goes on answering (it wrote them into the pipe whole, before the
    worker read it, and its loop waited for ever). Keys the small pipe holds are given."""
    from conftest import preload
    url = new_db(tmp, runs=1, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run",
                     env=preload("pipe-shim.so", ANTHROPIC_API_KEY="k" * 20000))
    try:
        wait_for(lambda: "gets no key and no job" in sup.stderr(), 60, what="the refusal")
        assert "gets no key and no job: the keys (20019 bytes with their names) do not" \
            " fit their pipe (8192 bytes), which cannot be enlarged (F_SETPIPE_SZ: Operation" \
            " not permitted): this user's pipes are over /proc/sys/fs/pipe-user-pages-soft," \
            " or /proc/sys/fs/pipe-max-size is lower; killing it" in sup.stderr(), sup.stderr()
        st = status_when(sup, lambda s: s["pool"]["crash_loop"], what="the crash loop")
        assert st["pool"]["live"] == 0, st
        assert sup.stop_now() == 0, sup.stderr()
    finally:
        sup.kill()
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    # "ANTHROPIC_API_KEY=", the key and its NUL byte: 8192 bytes.
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                     name="fits", env=preload("pipe-shim.so", ANTHROPIC_API_KEY="k" * (
                         8192 - len("ANTHROPIC_API_KEY=") - 1)))
    try:
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("dry_run", 2)]


def test_zero_workers_that_must_exit_when_drained_are_refused(tmp):
    from conftest import run
    url = new_db(tmp, runs=1, phases=1)
    r = run("autopack-supervisor", "--db", url, "--workers", 0, "--exit-when-drained",
            "--control", os.path.join(str(tmp), "sup.sock"), env={"ANTHROPIC_API_KEY": "k"},
            timeout=60)
    assert r.rc == 2, r
    assert "--workers: 0 workers never drain: --exit-when-drained needs at least 1" in r.err
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def test_bad_flags_exit_2_naming_the_flag(tmp):
    from conftest import run
    r = run("autopack-supervisor", "--workers", "many")
    assert r.rc == 2 and "--workers" in r.err
    r = run("autopack-supervisor", "--synchronous", "sometimes")
    assert r.rc == 2 and "--synchronous" in r.err
    r = run("autopack-supervisor", "--bogus")
    assert r.rc == 2 and "--bogus" in r.err
    r = run("autopack-supervisor", "--help")
    assert r.rc == 0 and "--workers" in r.out
    for bad, why in (("http://127.0.0.1:", "has an empty port after ':'"),
                     ("http://127.0.0.1:80x", "the port is not a number"),
                     ("http://127.0.0.1:0", "the port is not from 1 to 65535"),
                     ("http://:8080", "names no host"),
                     ("ftp://h", "is not an http:// or https:// URL"),
                     ("http://h/v1 ", "holds a space (byte 0x20 at position 12)"),
                     ("http://h\n/v1", "holds a control character (byte 0x0a")):
        r = run("autopack-supervisor", "--db", "sqlite:///none.db", "--llm-base-url", bad)
        assert r.rc == 2 and "--llm-base-url: " in r.err and why in r.err, (bad, r)
    assert not os.path.exists(os.path.join(str(tmp), "none.db"))


def test_a_credential_or_query_in_the_base_url_is_refused_never_shown(tmp):
    """A key put in --llm-base-url (`https://user:key@host`, `?key=`) was taken: ps showed
    it, every error about a call quoted it, and a phase's code read it there. A query or
    fragment never worked either: the provider's path was appended after it."""
    from conftest import run
    for bad, shown, why in (
            ("https://sk-ant:SECRET1@h/v1", '"https://***@h/v1"', "holds a user or password"),
            ("https://SECRET2@h", '"https://***@h"', "holds a user or password"),
            ("http://h:8080/v1?key=SECRET3", '"http://h:8080/v1..." holds a query (byte 17)',
             "appended to the base URL"),
            ("http://h/#SECRET4", '"http://h/..." holds a fragment (byte 10)',
             "appended to the base URL")):
        r = run("autopack-supervisor", "--db", "sqlite:///none.db", "--llm-base-url", bad)
        assert r.rc == 2 and "--llm-base-url: " + shown in r.err and why in r.err, (bad, r)
        assert "ANTHROPIC_API_KEY" in r.err and "SECRET" not in r.err + r.out, (bad, r)
    r = run("autopack-supervisor", "--db", "sqlite:///none.db", "--llm-base-url",
            "http://h/a@b", "--help")
    assert r.rc == 0, r
    assert not os.path.exists(os.path.join(str(tmp), "none.db"))


def test_an_http_base_url_to_another_host_is_said_to_send_the_key_unencrypted(tmp):
    """`--llm-base-url http://api.anthropic.com` (a typo of https), or a server elsewhere
    on the network: every call sent the key across the network in clear text, said
    nowhere (a provider redirecting http to https was told so only after the key had
    gone). The start says so; a loopback address, https and a dry run say nothing."""
    url = new_db(tmp, runs=0)
    said = ("every call sends the API key (%s) and the prompt to %s unencrypted (http://, "
            "and %s is not this machine's loopback), where whatever is on the network "
            "between reads them; give an https:// URL")
    for base, provider, host in (
            ("http://api.anthropic.com", "anthropic", "api.anthropic.com"),
            ("http://10.1.2.3:8000/v1", "openai", "10.1.2.3"),
            ("http://[fe80::1]:8000/v1", "openai", "[fe80::1]"),
            ("http://127.0.0.1.example:80", "anthropic", "127.0.0.1.example"),
            ("http://127.0.0.1:8080", "anthropic", None),
            ("http://LOCALHOST./v1", "openai", None),
            ("http://api.localhost:1", "openai", None),
            ("http://[::1]:8080/v1", "openai", None),
            ("http://[::ffff:127.0.0.2]:8080/v1", "openai", None),
            ("https://10.1.2.3:8000/v1", "openai", None)):
        var = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
        for dry in ((), ("--dry-run",)):
            sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", "--allow-empty-db",
                             "--llm-provider", provider, "--llm-base-url", base, *dry,
                             env={var: KEY})
            assert sup.wait() == 0, sup.stderr()
            warned = "warn: --llm-base-url %s: " % base + said % (var, host, host) \
                if host else None
            if host and not dry:
                assert warned in sup.stderr(), (base, sup.stderr())
            else:
                assert "unencrypted" not in sup.stderr(), (base, dry, sup.stderr())
            assert KEY not in sup.stderr()


def test_status_reports_database_durability_and_workers(tmp):
    url = new_db(tmp, runs=1)
    sup = Supervisor(tmp, url, "--workers", 3, "--synchronous", "normal", "--dry-run")
    try:
        st = status_when(sup, lambda s: s["pool"]["live"] == 3, what="3 workers")
        # The canonical form: sqlite:/// and the absolute path, through realpath.
        path = os.path.realpath(url[len("sqlite:///"):])
        assert path.startswith("/")
        assert st["db_url"] == "sqlite:///" + path
        assert st["synchronous"] == "normal"
        assert st["commit_window_ms"] == 5
        assert len(st["pool"]["workers"]) == 3
        r = sup.ctl("status")
        assert r.rc == 0 and st["db_uuid"] in r.out + r.err
        assert "supervisor of sqlite:///%s (uuid %s)" % (path, st["db_uuid"]) in r.out
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_control_peer_sending_garbage_is_dropped_and_others_served(tmp):
    url = new_db(tmp, runs=1)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run")
    try:
        sup.wait_ready()
        for junk in [b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1",        # never-used byte
                     b"\x7f\xff\xff\xff",                          # oversized frame
                     b"\x00\x00\x00\x05\xdd\xff\xff\xff\xff",      # array of 2^32 items
                     b"GET / HTTP/1.0\r\n\r\n"]:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sup.control)
            s.sendall(junk)
            s.settimeout(10)
            got = b""
            try:
                while True:                    # the supervisor says why, then hangs up
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionResetError:
                pass
            s.close()
            n = struct.unpack(">I", got[:4])[0]
            assert len(got) == 4 + n, got
            reply = msgpack.unpackb(got[4:], raw=False)
            assert (reply["t"], reply["ok"], reply["code"]) == ("reply", False, "bad_request")
            assert reply["msg"].startswith("request refused, connection closed: "), reply
        assert sup.status()["db_uuid"]
        assert sup.proc.poll() is None
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_control_commands_refuse_a_different_database(tmp):
    url = new_db(tmp, runs=1)
    other = os.path.join(str(tmp), "other")
    os.mkdir(other)
    other_url = new_db(other, runs=1)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run")
    try:
        sup.wait_ready()
        r = ctl("--db", other_url, "status", "--control", sup.control)
        assert r.rc != 0
        assert "wrong_database" in r.err or "not uuid" in r.err
    finally:
        sup.signal(signal.SIGTERM)
        sup.wait()


def test_events_naming_another_database_or_attempt_are_rejected_and_counted(tmp):
    url = new_db(tmp, runs=1, phases=3)
    sup = rogue_supervisor(tmp, url, "abuse", "--workers", 1, "--exit-when-drained")
    assert sup.wait() == 0, sup.stderr()
    # One valid usage event per attempt; the duplicate, the foreign and the stale ones
    # were never written.
    assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(3,)]
    assert sql(url, "SELECT count(*) FROM events") == [(3,)]
    assert sql(url, "SELECT outcome, events_committed FROM attempts") == [("success", 1)] * 3
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 3)]
    err = sup.stderr()
    assert err.count("REJECTED event") == 3, err
    assert "00000000-0000-4000-8000-000000000000" in err
    assert "ended (drained): 3 attempt(s), 3 event(s) committed, 6 rejected" in err


def test_worker_sending_garbage_is_killed_and_replaced(tmp):
    from conftest import ROOT
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 1,
                     "--worker", os.path.join(ROOT, "tests", "rogue_worker.py"),
                     env={"ROGUE_MODE": "garbage"})
    try:
        sup.wait_ready()
        wait_for(lambda: sup.stderr().count("bad channel") >= 2, 30,
                 what="two garbage workers dropped")
        assert sup.proc.poll() is None
        assert sup.status()["db_uuid"]
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


# --- real phases: the real worker against the LLM stand-in, with a slow check command ---



def test_sigkill_of_busy_workers_loses_no_phase(tmp, llm):
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=6, phases=8, check=check)
    sup = llm_supervisor(tmp, url, llm, "--workers", 4, "--exit-when-drained",
                         "--max-attempts-per-phase", 20, "--max-fingerprint-repeats", 1000)
    rng = random.Random(7)
    # Kill a busy worker four times; each time wait until its attempt is closed as
    # worker_crashed and a replacement holds a lease again.
    for k in range(4):
        st = status_when(sup, lambda s: s["queue"]["in_flight"] == 4 and
                         s["pool"]["live"] == 4, what="four leases")
        victim = rng.choice([w for w in st["pool"]["workers"] if w["state"] == "busy"])
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: sql(url, "SELECT outcome FROM attempts WHERE attempt_id = ?",
                             victim["attempt_id"]) == [("worker_crashed",)],
                 what="the killed lease closed")
    open(go, "w").close()
    assert sup.wait(timeout=180) == 0, sup.stderr()
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 48)]
    # Every attempt is closed, and each phase completed exactly once.
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'") == [(48,)]
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == \
        [("success", 48), ("worker_crashed", 4)]
    assert sql(url, "SELECT count(*) FROM (SELECT run_id, phase_id FROM attempts"
               " WHERE outcome = 'success' GROUP BY 1, 2 HAVING count(*) > 1)") == [(0,)]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_supervisor_sigkill_and_restart_recovers_open_attempts(tmp, llm):
    # The attempts wait at a gate, opened once their supervisor is killed.
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=4, phases=3, check=check)
    sup = llm_supervisor(tmp, url, llm, "--workers", 4, "--max-attempts-per-phase", 5)
    sup.wait_ready()
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL")[0][0]
             >= 2, what="attempts in flight")
    sup.proc.kill()
    sup.proc.wait()
    open_before = sql(url, "SELECT attempt_id FROM attempts WHERE ended_at IS NULL")
    assert open_before
    events_before = sql(url, "SELECT count(*) FROM events")[0][0]
    open(go, "w").close()
    again = llm_supervisor(tmp, url, llm, "--workers", 4, "--exit-when-drained",
                           "--max-attempts-per-phase", 5, name="again")
    assert again.wait(timeout=180) == 0, again.stderr()
    assert "recovered %d attempt(s)" % len(open_before) in again.stderr()
    for (att,) in open_before:
        assert sql(url, "SELECT outcome FROM attempts WHERE attempt_id = ?", att) == \
            [("supervisor_restart",)]
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 12)]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    assert sql(url, "SELECT count(*) FROM (SELECT attempt_id, seq FROM events GROUP BY 1, 2"
               " HAVING count(*) > 1)") == [(0,)]
    assert sql(url, "SELECT count(*) FROM events")[0][0] >= events_before


def test_pause_stops_dispatch_and_resume_restarts_it(tmp, llm):
    # The attempts wait at a gate, opened once the pause is taken: the drain is not over.
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=3, phases=4, check=check)
    sup = llm_supervisor(tmp, url, llm, "--workers", 3, "--exit-when-drained")
    sup.wait_ready()
    r = sup.ctl("pause")
    assert r.rc == 0, r
    open(go, "w").close()
    # Once what was in flight ends, nothing new starts.
    wait_for(lambda: sup.status()["queue"]["in_flight"] == 0, what="in-flight attempts end")
    started = sql(url, "SELECT count(*) FROM attempts")[0][0]
    # A new idle worker asks for a dispatch round: while paused it gets nothing.
    assert sup.ctl("scale", "4").rc == 0
    st = status_when(sup, lambda s: [w["state"] for w in s["pool"]["workers"]] == ["idle"] * 4,
                     what="four idle workers")
    assert st["state"] == "paused" and st["queue"]["phases_queued"] > 0
    assert sql(url, "SELECT count(*) FROM attempts")[0][0] == started
    assert sup.ctl("resume").rc == 0
    assert sup.wait(timeout=120) == 0, sup.stderr()
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 12)]
    assert [c for (c,) in sql(url, "SELECT command FROM control_log ORDER BY id")] == \
        ["pause", "scale", "resume"]


def test_scale_2_to_8_to_1_while_draining(tmp, llm):
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=10, phases=3, check=check)
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--exit-when-drained")
    status_when(sup, lambda s: s["pool"]["live"] == 2 and s["queue"]["in_flight"] == 2,
                what="2 workers busy")
    assert sup.ctl("scale", "8").rc == 0
    status_when(sup, lambda s: s["pool"]["live"] == 8 and s["queue"]["in_flight"] == 8,
                what="8 workers busy")
    assert sup.ctl("scale", "1").rc == 0
    # Busy workers retire after their phase: nobody holding a lease is stopped.
    st = sup.status()
    assert st["pool"]["target"] == 1 and st["queue"]["in_flight"] == 8
    assert sorted(w["state"] for w in st["pool"]["workers"]) == ["busy"] + ["retiring"] * 7
    open(go, "w").close()
    st = status_when(sup, lambda s: s["pool"]["live"] == 1, what="1 worker")
    assert st["pool"]["target"] == 1
    assert sup.wait(timeout=180) == 0, sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts WHERE outcome != 'success'") == [(0,)]
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 30)]
    r = sup.ctl("scale", "many")
    assert r.rc != 0


def test_stop_with_timeout_kills_what_is_still_running(tmp, llm):
    url = new_db(tmp, runs=2, phases=2, check="sleep 30")
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    sup.wait_ready()
    wait_for(lambda: sup.status()["queue"]["in_flight"] == 2, what="2 in flight")
    r = sup.ctl("stop", "--timeout", "1")
    assert r.rc == 0, r
    assert sup.wait(timeout=60) == 0
    assert "graceful stop timed out; stopping now" in sup.stderr()
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    assert sql(url, "SELECT DISTINCT outcome FROM attempts") == [("supervisor_stopped",)]
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("QUEUED", 4)]


def test_phase_deadline_terminates_the_attempt_as_timeout(tmp, llm):
    url = new_db(tmp, runs=1, phases=1, check="sleep 30")
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--exit-when-drained",
                         "--phase-timeout-seconds", 1, "--max-attempts-per-phase", 1)
    assert sup.wait(timeout=60) == 0, sup.stderr()
    assert sql(url, "SELECT outcome FROM attempts") == [("timeout",)]
    assert sql(url, "SELECT state, last_failure_reason FROM phases") == [("FAILED", "TIMEOUT")]


def test_database_moved_away_stops_writes_with_an_error(tmp, llm):
    url = new_db(tmp, runs=2, phases=3, check="sleep 0.5")
    path = url[len("sqlite:///"):]
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    sup.wait_ready()
    wait_for(lambda: sup.status()["queue"]["in_flight"] >= 1, what="work in flight")
    # Move the database as an operator would, with its WAL files.
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.rename(path + suffix, path + ".moved" + suffix)
    # Something else appears at the path: the supervisor must not write into it.
    other = os.path.join(str(tmp), "other")
    os.mkdir(other)
    new_db(other, runs=0)
    os.rename(os.path.join(other, "autopack.db"), path)
    size = os.path.getsize(path)
    assert sup.wait(timeout=30) == 3
    assert "DATABASE LOST" in sup.stderr()
    assert os.path.getsize(path) == size
    assert sql("sqlite:///" + path, "SELECT count(*) FROM attempts") == [(0,)]
    # The moved database keeps every committed row.
    assert sql("sqlite:///" + path + ".moved", "PRAGMA integrity_check") == [("ok",)]
    assert sql("sqlite:///" + path + ".moved", "SELECT count(*) FROM attempts")[0][0] >= 1


@pytest.mark.parametrize("how", ["cp", "truncate"])
def test_database_overwritten_in_place_stops_writes_with_an_error(tmp, llm, how):
    # The same file (device and inode) with other content: `cp backup.db drain.db`, or a
    # truncation. The supervisor went on committing into it and exited 0 with the
    # database destroyed; now its file is seen to shrink and it stops (exit 3). (A copy at
    # least as large is seen by its mtime: tests/test_db_file_watch.py.)
    url = new_db(tmp, runs=40, phases=10, check="sleep 0.5")
    path = url[len("sqlite:///"):]
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    sup.wait_ready()
    wait_for(lambda: sup.status()["queue"]["in_flight"] >= 1, what="work in flight")
    ino = os.stat(path).st_ino
    if how == "cp":
        other = os.path.join(str(tmp), "other")
        os.mkdir(other)
        new_db(other, runs=0)
        shutil.copyfile(os.path.join(other, "autopack.db"), path)
    else:
        os.truncate(path, 0)
    assert os.stat(path).st_ino == ino
    assert sup.wait(timeout=30) == 3, sup.stderr()
    err = sup.stderr()
    assert "DATABASE LOST" in err and "the database file shrank from" in err, err[-3000:]
    assert "(truncated, or overwritten in place, e.g. by cp)" in err
    assert "exit status 0" not in err


def test_writes_from_ctl_go_through_the_running_supervisor(tmp, llm):
    from supervisor_helpers import make_plan
    url = new_db(tmp, runs=1, phases=1)
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    try:
        sup.wait_ready()
        wait_for(lambda: sql(url, "SELECT state FROM phases") == [("COMPLETE",)],
                 what="the first run to complete")
        os.mkdir(os.path.join(str(tmp), "more"))
        plan = make_plan(os.path.join(str(tmp), "more", "plan.json"), 1, 1, 2)
        # The plan's run id is taken; rename it so the import is new.
        with open(plan) as f:
            doc = json.load(f)
        doc["runs"][0]["run_id"] = "late-run"
        with open(plan, "w") as f:
            json.dump(doc, f)
        r = ctl("--db", url, "run", "import", plan)
        assert r.rc == 0, r
        assert "written by the supervisor (pid %d)" % sup.proc.pid in r.out
        r = ctl("--db", url, "seed", "telemetry-run", "--workspace",
                os.path.join(str(tmp), "seed-ws"))
        assert r.rc == 0, r
        # The new phases are drained without a restart.
        wait_for(lambda: sql(url, "SELECT count(*) FROM phases WHERE run_id = 'late-run'"
                             " AND state = 'COMPLETE'") == [(2,)], 60, what="late run drained")
        assert sql(url, "SELECT count(*) FROM phases WHERE run_id = 'telemetry-collection-v4'")\
            == [(10,)]
        # A bad plan is refused by the supervisor, with its path, and nothing is written.
        bad = os.path.join(str(tmp), "bad.json")
        with open(bad, "w") as f:
            f.write('{"runs": [{"run_id": 5}]}')
        r = ctl("--db", url, "run", "import", bad)
        assert r.rc != 0 and "runs[0]" in r.err, r
        # The control log is written with the supervisor's next group commit.
        wait_for(lambda: [c for (c,) in sql(url, "SELECT command FROM control_log"
                                            " ORDER BY id")] ==
                 ["run import", "seed telemetry-run", "run import"], 60,
                 what="three control_log rows")
        assert sql(url, "SELECT ok FROM control_log ORDER BY id") == [(1,), (1,), (0,)]
    finally:
        sup.stop_now()


def test_retry_cancel_and_watch(tmp, llm):
    url = new_db(tmp, runs=2, phases=2, check="sleep 30")
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--max-attempts-per-phase", 1)
    try:
        sup.wait_ready()
        wait_for(lambda: sup.status()["queue"]["in_flight"] == 1, what="one in flight")
        [w] = [w for w in sup.status()["pool"]["workers"] if w["state"] == "busy"]
        run, phase = w["run_id"], w["phase_id"]
        r = sup.ctl("cancel", run, phase)
        assert r.rc == 0, r
        wait_for(lambda: sql(url, "SELECT state FROM phases WHERE run_id = ? AND phase_id = ?",
                             run, phase) == [("SKIPPED",)], what="cancelled phase SKIPPED")
        assert sql(url, "SELECT outcome FROM attempts WHERE run_id = ? AND phase_id = ?",
                   run, phase) == [("cancelled",)]
        # Cancel a queued phase of the other run, then bring it back.
        other = "run-001" if run == "run-000" else "run-000"
        assert sup.ctl("cancel", other, "p0-1").rc == 0
        assert sql(url, "SELECT state FROM phases WHERE run_id = ? AND phase_id = 'p0-1'",
                   other) == [("SKIPPED",)]
        r = sup.ctl("retry", other, "p0-1")
        assert r.rc == 0, r
        assert sql(url, "SELECT state FROM phases WHERE run_id = ? AND phase_id = 'p0-1'",
                   other) == [("QUEUED",)]
        r = sup.ctl("retry", other, "p0-1")
        assert r.rc != 0 and "is QUEUED" in r.err
        r = sup.ctl("retry", "nope", "nope")
        assert r.rc != 0 and "no phase 'nope'" in r.err
        r = sup.ctl("watch", "--count", "2", "--interval", "0.2")
        assert r.rc == 0 and len(r.out.splitlines()) == 2 and "workers 1/1" in r.out, r
    finally:
        sup.stop_now()
    cmds = [c for (c,) in sql(url, "SELECT command FROM control_log ORDER BY id")]
    assert cmds == ["cancel", "cancel", "retry", "retry", "retry"]


def test_first_signal_lets_in_flight_finish_second_stops_now(tmp, llm):
    url = new_db(tmp, runs=3, phases=3, check="sleep 1")
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    sup.wait_ready()
    wait_for(lambda: sup.status()["queue"]["in_flight"] == 2, what="2 in flight")
    sup.signal(signal.SIGINT)
    assert sup.wait(timeout=60) == 0
    # The attempts in flight when the signal was taken finished; nothing else started.
    # A loaded machine may take the signal after a third attempt started.
    m = re.search(r"stopping: no new dispatch; (\d+) attempt\(s\) in flight finish first",
                  sup.stderr())
    assert m, sup.stderr()
    in_flight = int(m.group(1))
    assert in_flight >= 2
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == \
        [("success", in_flight)]
    assert sql(url, "SELECT stop_reason FROM drain_sessions") == [("received Interrupt",)]

    second = os.path.join(str(tmp), "second")
    os.mkdir(second)
    url2 = new_db(second, runs=2, phases=1, check="sleep 600")
    sup = llm_supervisor(tmp, url2, llm, "--workers", 2, name="second")
    sup.wait_ready()
    wait_for(lambda: sup.status()["queue"]["in_flight"] == 2, what="2 in flight")
    assert sup.stop_now() == 0
    assert "stopping now: killing workers and requeueing their phases" in sup.stderr()
    assert sql(url2, "SELECT DISTINCT outcome FROM attempts") == [("supervisor_stopped",)]
    assert sql(url2, "SELECT DISTINCT state FROM phases") == [("QUEUED",)]


def test_silent_worker_is_killed_at_the_heartbeat_deadline(tmp):
    from conftest import ROOT
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 1, "--heartbeat-timeout-seconds", 1,
                     "--max-attempts-per-phase", 1, "--exit-when-drained",
                     "--worker", os.path.join(ROOT, "tests", "rogue_worker.py"),
                     env={"ROGUE_MODE": "silent"})
    assert sup.wait(timeout=60) == 0, sup.stderr()
    assert sql(url, "SELECT outcome, failure_reason FROM attempts") == \
        [("heartbeat_lost", "HEARTBEAT_LOST")]
    assert sql(url, "SELECT state FROM phases") == [("FAILED",)]
    assert "no frame for 1s" in sup.stderr()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another uid")
def test_control_peer_of_another_uid_is_refused(tmp):
    import tempfile
    url = new_db(tmp, runs=1)
    open_dir = tempfile.mkdtemp(dir="/tmp")
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run",
                     control=os.path.join(open_dir, "ctl.sock"))
    try:
        sup.wait_ready()
        st = os.stat(sup.control)
        assert st.st_mode & 0o777 == 0o600
        # Open the way on purpose, so that only the credential check stands.
        os.chmod(open_dir, 0o755)
        os.chmod(sup.control, 0o666)
        child = subprocess.run([sys.executable, "-c", """
import os, socket, struct, sys
import msgpack
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
body = msgpack.packb({"v": 1, "t": "request", "id": 1, "cmd": "status", "args": []})
try:
    s.sendall(struct.pack(">I", len(body)) + body)
    print("closed" if s.recv(100) == b"" else "answered")
except (BrokenPipeError, ConnectionResetError):
    print("closed")
""", sup.control], capture_output=True, text=True, timeout=30)
        assert child.stdout.strip() == "closed", child
        assert "has uid 65534" in sup.stderr()
        assert sup.status()["db_uuid"]
    finally:
        sup.signal(signal.SIGTERM)
        sup.wait()
        shutil.rmtree(open_dir, ignore_errors=True)


def test_phase_timeouts_in_a_row_are_not_a_crash_loop(tmp, llm):
    url = new_db(tmp, runs=6, phases=1, check="sleep 30")
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--exit-when-drained",
                         "--phase-timeout-seconds", 1, "--max-attempts-per-phase", 1,
                         "--max-fingerprint-repeats", 100)
    assert sup.wait(timeout=120) == 0, sup.stderr()
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("timeout", 6)]
    assert "crash loop" not in sup.stderr()
    # A stopped attempt leaves no check process behind.
    mine = {os.getpid(), llm.proc.pid}
    assert wait_for(lambda: not set(processes_in(str(tmp))) - mine, 60,
                    what="check processes gone")


def test_worker_past_its_deadline_is_terminated_then_killed(tmp):
    url = new_db(tmp, runs=1, phases=1)
    sup = rogue_supervisor(tmp, url, "hang_term", "--workers", 1, "--phase-timeout-seconds",
                           1, "--max-attempts-per-phase", 1, "--exit-when-drained")
    assert sup.wait(timeout=40) == 0, sup.stderr()
    # It heartbeats, so only the deadline (plus the grace the worker gets to report its
    # own timeout) ends it; it shrugs off SIGTERM, so SIGKILL follows the kill grace.
    # The supervisor fingerprints the end it saw as the worker would have: outcome, reason,
    # normalised message.
    assert sql(url, "SELECT outcome, failure_reason, fingerprint, zero_yield_reason"
               " FROM attempts") == [("timeout", "TIMEOUT", "TIMEOUT|timeout|worker pid num"
                                      " ended: status num, signal num", "timeout")]
    err = sup.stderr()
    assert "passed its deadline" in err
    [job] = rogue_notes(tmp, event="job")
    assert [n["pid"] for n in rogue_notes(tmp, event="term")] == [job["pid"]]
    assert "(pid %d) exited: status 0, signal 9" % job["pid"] in err
    [term_at] = log_times(err, "passed its deadline")
    [killed_at] = log_times(err, "(pid %d) exited" % job["pid"])
    assert killed_at - term_at >= 5 - 0.002    # the kill grace, a lower bound


def test_busy_database_delays_commits_and_loses_nothing(tmp, llm):
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=2, phases=4, check=check)
    path = url[len("sqlite:///"):]
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--exit-when-drained")
    sup.wait_ready()
    wait_for(lambda: sql(url, "SELECT count(*) FROM attempts")[0][0] >= 2, what="a start")
    # Paused with nothing in flight, the next dispatch round is the only write to come:
    # when it fails, the supervisor must retry it by itself. The attempts wait at a gate
    # until the pause is taken: the drain is not over before it.
    assert sup.ctl("pause").rc == 0
    open(go, "w").close()
    wait_for(lambda: sup.status()["queue"]["in_flight"] == 0, what="nothing in flight")
    # Another process holds SQLite's write lock until the dispatch round has failed.
    holder = hold_write_lock(path)
    assert sup.ctl("resume").rc == 0
    wait_for(lambda: "dispatch: " in sup.stderr(), 60, what="a failed dispatch round")
    release(holder)
    assert sup.wait(timeout=120) == 0, sup.stderr()
    err = sup.stderr()
    assert "database is locked" in err
    # Every phase completed once, every attempt is closed, every event is there once.
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 8)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'") == [(8,)]
    assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(8,)]
    assert sql(url, "SELECT count(*) FROM token_estimation_v2_events") == [(8,)]
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_busy_database_mid_drain_keeps_every_event(tmp, llm):
    check, go = gate_check(tmp)
    url = new_db(tmp, runs=2, phases=4, check=check)
    path = url[len("sqlite:///"):]
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--exit-when-drained")
    sup.wait_ready()
    wait_for(lambda: sup.status()["queue"]["in_flight"] == 2, what="two attempts at the gate")
    # Results and events arrive while another process holds the write lock: the writer's
    # commits fail, are rolled back and retried with nothing dropped.
    holder = hold_write_lock(path)
    open(go, "w").close()
    wait_for(lambda: "writes failed" in sup.stderr(), 60, what="a failed commit")
    release(holder)
    assert sup.wait(timeout=120) == 0, sup.stderr()
    assert "database is locked" in sup.stderr()
    assert sql(url, "SELECT state, count(*) FROM phases GROUP BY state") == [("COMPLETE", 8)]
    assert sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'") == [(8,)]
    assert sql(url, "SELECT count(*) FROM llm_usage_events") == [(8,)]
    assert sql(url, "SELECT count(*) FROM token_estimation_v2_events") == [(8,)]


@pytest.mark.parametrize("value", ["nan", "-5", "1e400", "2.5", "86401"])
def test_stop_with_a_bad_timeout_names_the_value_and_stops_nothing(tmp, value):
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        r = sup.ctl("stop", "--timeout", value)
        assert r.rc == 1, r
        assert ('stop: --timeout needs a whole number of seconds from 0 to 86400, got "%s"'
                % value) in r.err, r
        assert sup.status()["state"] == "running"
    finally:
        sup.kill()


@pytest.mark.parametrize("value", ["nan", "-nan", "inf", "0.05", "3601"])
def test_watch_refuses_an_interval_out_of_range_nan_included(tmp, value):
    """NaN passed both bound checks and made watch redraw without pause."""
    url = new_db(tmp, runs=1, phases=1)
    r = ctl("--db", url, "watch", "--interval", value, "--count", "1")
    assert r.rc == 2, r
    assert '--interval: "%s" is not a number of seconds from 0.1 to 3600' % value in r.err, r


@pytest.mark.parametrize("flag, value, why", [
    ("--model", b"m\xff", b"--model: not valid UTF-8 (byte 2 of 2)"),
    ("--model", b"m" * 300, b"--model: a model name is 1 to 256 bytes, not 300"),
    ("--model", b"", b"--model: a model name is 1 to 256 bytes, not 0"),
    ("--model", b"a\tb", b'--model: "a\\tb" holds a control character (byte 2)'),
    ("--run-id", b"r\xff", b"--run-id: not valid UTF-8 (byte 2 of 2)"),
    ("--skip-run-prefix", b"\xc3", b"--skip-run-prefix: not valid UTF-8 (byte 1 of 1)"),
])
def test_flag_values_no_job_or_record_can_hold_are_refused(tmp, flag, value, why):
    """A --model over the wire's 256 bytes failed every phase it reached as INVALID_JOB
    (until the drain rules stopped the run); one that is not UTF-8, or such a --run-id,
    ended the start on an SQL error about the session's settings."""
    from conftest import binpath
    url = new_db(tmp, runs=1, phases=3)
    p = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--workers", "1",
                        "--dry-run", "--exit-when-drained", flag.encode(), value],
                       capture_output=True, timeout=60, env=dict(os.environ,
                                                                 ANTHROPIC_API_KEY="k"))
    assert p.returncode == 2, p.stderr
    assert b"autopack-supervisor: " + why in p.stderr, p.stderr
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def test_a_base_url_longer_than_a_job_holds_is_refused_and_one_as_long_drains(tmp):
    """A --llm-base-url over the job's 4096 bytes was taken: every phase it reached failed
    INVALID_JOB (`job.llm.url: string of 4097 bytes exceeds limit 4096`) until the drain
    rules stopped the run, exit 5. One of 4096 bytes still fits."""
    from conftest import run as run_binary
    url = new_db(tmp, runs=1, phases=3)
    args = ["--db", url, "--workers", "1", "--dry-run", "--exit-when-drained",
            "--llm-base-url"]
    r = run_binary("autopack-supervisor", *args, "http://" + "h" * 4090)
    assert r.rc == 2, r.err[-300:]
    assert ("autopack-supervisor: --llm-base-url: 4097 bytes long; a base URL travels in"
            " every job, which holds at most 4096") in r.err, r.err[-300:]
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]
    r = run_binary("autopack-supervisor", *args, "http://" + "h" * 4089)
    assert r.rc == 0, r.err[-300:]
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("dry_run", 3)]


@pytest.mark.parametrize("flag", ["--run-id", "--control", "--log-file", "--worker"])
def test_an_empty_path_or_run_id_is_a_bad_flag(tmp, flag):
    """--run-id= drained nothing and exited 0; --control= and --log-file= were refused
    only after the database was opened and a session begun; --worker= once the database
    was opened, as `worker binary : No such file or directory`, exit 1."""
    from conftest import binpath
    url = new_db(tmp, runs=1, phases=3)
    p = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--workers", "1",
                        "--dry-run", "--exit-when-drained", flag + "="],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ANTHROPIC_API_KEY="k"))
    assert p.returncode == 2, p.stderr
    assert "autopack-supervisor: %s: empty value" % flag in p.stderr, p.stderr
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def test_a_run_id_the_database_does_not_hold_is_refused_with_exit_when_drained(tmp):
    """A mistyped --run-id drained nothing and exited 0 ("drained"), as if the run were
    done; without --exit-when-drained the supervisor waits for the run, saying so."""
    from conftest import binpath
    url = new_db(tmp, runs=1, phases=3)
    p = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--workers", "1",
                        "--dry-run", "--exit-when-drained", "--run-id", "run-00"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ANTHROPIC_API_KEY="k"))
    assert p.returncode == 1, p.stderr
    assert "--run-id run-00: database %s holds no such run; with --exit-when-drained the " \
        "drain would end at once having run nothing" % url in p.stderr, p.stderr
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--run-id", "late")
    try:
        sup.wait_ready()
        assert "--run-id late: database %s holds no such run yet; nothing is dispatched " \
            "until one is imported" % sup.status()["db_url"] in sup.stderr()
    finally:
        sup.kill()
    p = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--workers", "1",
                        "--dry-run", "--exit-when-drained", "--run-id", "run-000"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ANTHROPIC_API_KEY="k"))
    assert p.returncode == 0, p.stderr
    assert sql(url, "SELECT count(*) FROM attempts") == [(3,)]


@pytest.mark.parametrize("files", [5, 8])
def test_too_low_a_limit_of_open_files_is_refused_by_name(tmp, files):
    """Under `ulimit -n 8` libuv found no descriptor for its event loop and aborted the
    supervisor (SIGABRT, no message) after it had opened a session."""
    import resource
    from conftest import binpath
    url = new_db(tmp, runs=1, phases=1)

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    p = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--workers", "1",
                        "--dry-run", "--exit-when-drained"], capture_output=True, text=True,
                       timeout=60, preexec_fn=limit,
                       env=dict(os.environ, ANTHROPIC_API_KEY="k"))
    assert p.returncode == 1, p.stderr
    assert "the limit of open files is %d (ulimit -n); the supervisor needs at least 24 to " \
        "start its first worker" % files in p.stderr, p.stderr
    assert sql(url, "SELECT count(*) FROM drain_sessions") == [(0,)]


def control_request(path, cmd, args, timeout=10):
    """One raw `request` frame to a control socket, as a peer other than autopack-ctl
    could send it; the reply as a dict."""
    import msgpack
    body = msgpack.packb({"v": 1, "t": "request", "id": 1, "cmd": cmd, "args": args})
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(struct.pack(">I", len(body)) + body)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "the supervisor hung up"
            data += chunk
        return msgpack.unpackb(data[4:], raw=False)
    finally:
        s.close()


def test_run_import_of_a_fifo_sent_to_the_supervisor_is_refused_without_waiting(tmp):
    """autopack-ctl reads a plan on a pipe itself, but a peer may name a FIFO in its
    request: opening it waited for a writer inside the supervisor's loop, and the whole
    drain hung (no status, no commits, no stop)."""
    url = new_db(tmp, runs=1, phases=1)
    fifo = os.path.join(str(tmp), "plan.fifo")
    os.mkfifo(fifo)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        m = control_request(sup.control, "run import", [fifo])
        assert m["ok"] is False and m["code"] == "invalid_plan", m
        assert "%s: not a regular file; a running supervisor reads a plan only from a file" \
            % fifo in m["msg"], m
        assert sup.status()["state"] == "running"
    finally:
        sup.kill()


# A worker that reports its call with a token count past the most the wire takes.
BIG_COUNTS_WORKER = r"""#!/usr/bin/python3
import os, socket, struct, sys
import msgpack
# The socket it hands over on fd 3 (proto/hand.h) carries the frames.
hand = socket.socket(fileno=3)
mine, theirs = socket.socketpair()
socket.send_fds(hand, [b"h"], [theirs.fileno()])
theirs.close()
hand.close()
for fd in socket.recv_fds(mine, 1, 1)[1]:
    os.close(fd)
sock = os.fdopen(mine.detach(), "r+b", buffering=0)
def send(msg):
    body = msgpack.packb(dict(msg, v=1), use_bin_type=True)
    sock.write(struct.pack(">I", len(body)) + body)
def exactly(n):
    d = b""
    while len(d) < n:
        c = sock.read(n - len(d))
        if not c:
            sys.exit(0)
        d += c
    return d
send({"t": "hello", "pid": os.getpid(), "sw": "0.1.0"})
BIG = int(os.environ["BIG"])
while True:
    m = msgpack.unpackb(exactly(struct.unpack(">I", exactly(4))[0]), raw=False)
    if m.get("t") != "job":
        continue
    send({"t": "event", "uuid": m["uuid"], "att": m["att"], "seq": 1,
          "kind": "llm_usage", "body": {"prov": "anthropic", "model": "m",
          "role": "builder", "in": 10, "out": 20, "total": BIG, "lat": 1,
          "http": 200, "try": 1}})
    send({"t": "result", "uuid": m["uuid"], "att": m["att"], "seq": 1,
          "outcome": "success", "llm": True, "dur": 1})
"""


@pytest.mark.parametrize("big", [2**63 - 1, 2 * 10**9 + 1])
def test_a_token_count_past_the_most_a_call_reports_is_a_protocol_error(tmp, big):
    """A worker reporting 2^63-1 tokens was believed and its count stored (two such rows
    made `db check` fail for good on integer overflow). A count past the documented
    maximum (10^9 tokens, 2 * 10^9 for a call's total) makes the frame malformed: refused
    naming the field and the value, the worker killed, its attempt ended as a worker
    crash, nothing of it stored."""
    url = new_db(tmp, runs=1, phases=1)
    worker = os.path.join(str(tmp), "big_counts_worker.py")
    with open(worker, "w") as f:
        f.write(BIG_COUNTS_WORKER)
    os.chmod(worker, 0o755)
    sup = Supervisor(tmp, url, "--worker", worker, "--workers", 1, "--exit-when-drained",
                     "--max-attempts-per-phase", 2, env={"BIG": str(big)})
    sup.wait(timeout=60)
    err = sup.stderr()
    assert ("bad channel: event.body.total: integer %d out of range [0, 2000000000]" % big) \
        in err, err
    # Only the supervisor's own rows of calls announced and never reported.
    assert sql(url, "SELECT status, count(*), max(total_tokens) FROM llm_usage_events"
                    " GROUP BY 1") == [("lost", 2, 0)]
    why = ("bad channel: event.body.total: integer %d out of range [0, 2000000000]" % big)
    att = sql(url, "SELECT outcome, failure_reason, message FROM attempts ORDER BY attempt_number")
    assert [(o, r) for o, r, _ in att] == [("worker_crashed", "WORKER_CRASHED")] * 2, att
    assert all(m.startswith("worker pid ") and m.endswith(" killed: " + why)
               for _, _, m in att), att
    assert sql(url, "SELECT state FROM phases") == [("FAILED",)]
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r


@pytest.mark.parametrize("big", [2**63 - 1, -2**63])
def test_db_check_survives_token_counts_that_would_overflow_its_sum(tmp, big):
    # Two rows of 2^63-1 tokens made `db check` fail for good: "integer overflow". The
    # wire refuses such counts now; a database written before may still hold them. Two
    # rows of -2^63 (another program's, or a hand edit) did the same: a negative count is
    # no count either.
    url = new_db(tmp, runs=1, phases=1)
    con = sqlite3.connect(url[len("sqlite:///"):])
    with con:
        for seq in (1, 2):
            con.execute(
                "INSERT INTO llm_usage_events (provider, model, run_id, phase_id, role,"
                " prompt_tokens, completion_tokens, total_tokens, created_at, attempt_id,"
                " seq, status) VALUES ('anthropic', 'm', 'run-000', 'p0-0', 'builder', ?, ?,"
                " ?, '2026-12-01 10:00:00.000000', 1, ?, 'ok')",
                (big, big, big, seq))
    con.close()
    assert sql(url, "SELECT count(*) FROM llm_usage_events WHERE total_tokens = ?",
               big) == [(2,)]
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    assert "llm_usage_events: 2 (0 failed calls, 0 lost with their worker), 0 tokens" in r.out


@pytest.mark.parametrize("what", ["control", "http"])
def test_a_supervisor_refused_at_its_socket_ends_the_session_it_began(tmp, what):
    # The session was begun before the control socket and the --http address were
    # opened; refused there (exit 1), the supervisor left it open, listed as interrupted
    # ("the supervisor did not end this session itself") and taken up by --resume.
    url = new_db(tmp, runs=1, phases=1)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        if what == "control":
            args = ["--control", os.path.join(str(tmp), "c" * 120 + ".sock")]
            why = "refused to start: the control socket could not be opened"
        else:
            args = ["--http", "127.0.0.1:%d" % busy.getsockname()[1]]
            why = "refused to start: --http could not be served"
        sup = Supervisor(tmp, url, "--workers", 0, "--dry-run", *args, control=False)
        assert sup.wait() == 1, sup.stderr()
    finally:
        busy.close()
    sessions = sql(url, "SELECT session_id, completed_at IS NOT NULL, stop_reason"
                        " FROM drain_sessions")
    assert [(c, r) for _, c, r in sessions] == [(1, why)], sessions
    assert "session %s ended (%s) before any dispatch" % (sessions[0][0], why) \
        in sup.stderr()
    r = ctl("--db", url, "session", "show")
    assert r.rc == 0 and "stop reason: %s" % why in r.out, r
    assert "not recorded: the session ended before its supervisor dispatched anything" \
        in r.out, r.out
    r = ctl("--db", url, "session", "list")
    assert r.rc == 0 and "interrupted" not in r.out, r


def test_a_dry_run_visits_each_phase_once_in_its_session(tmp):
    """A dry run leaves every phase QUEUED: when the queue of a run was read again (a
    cancel, a retry or an import through the supervisor) or the session was resumed, the
    phases it had already dry-run were read as eligible and dry-run again, the same
    estimates twice in one session. Each phase is visited once in its session."""
    url = new_db(tmp, runs=2, phases=3)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", control=False)
    try:
        sup.wait_ready()
        wait_for(lambda: len(attempts(url)) == 6, what="six visits")
        # A cancel reads its run's queue again.
        r = ctl("--db", url, "cancel", "run-000", "p0-2")
        assert r.rc == 0, r
        # So does an import, of its own runs.
        plan = os.path.join(str(tmp), "late.json")
        with open(os.path.join(str(tmp), "plan.json")) as f:
            doc = json.load(f)
        doc["runs"] = doc["runs"][:1]
        doc["runs"][0]["run_id"] = "late"
        with open(plan, "w") as f:
            json.dump(doc, f)
        r = ctl("--db", url, "run", "import", plan)
        assert r.rc == 0, r
        wait_for(lambda: len(attempts(url)) == 9, what="the late run's visits")
        status_when(sup, lambda st: st["queue"]["in_flight"] == 0 and
                    st["queue"]["phases_queued"] == 0, what="nothing queued")
        sup.proc.kill()  # the session left unfinished
        sup.proc.wait()
    finally:
        sup.kill()
    again = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--resume", "--exit-when-drained",
                       name="again", control=False)
    assert again.wait() == 0, again.stderr()
    assert "0 phase(s) eligible" in again.stderr(), again.stderr()
    visits = [(r, p) for _, r, p, _, _ in attempts(url)]
    assert len(visits) == len(set(visits)) == 9, visits
