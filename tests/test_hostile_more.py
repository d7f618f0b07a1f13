"""More of what a hostile operator does to the real binaries: output read by a reader that
goes away, HTTP requests libmicrohttpd answers itself, and the like. Each gets one clear error naming what is wrong and a status that
says it failed."""
import json
import os
import signal
import subprocess

import pytest

from conftest import DATA, binpath, ctl
from telemetry_helpers import imported_db
from supervisor_helpers import Supervisor, sql
from test_hostile_peers import H, answer, exchange, serving
from test_std_streams import output_to


def stdout_gone(argv):
    """Run argv with stdout on a pipe whose reader is gone; (exit status, stderr lines)."""
    rc, err = output_to("gone", argv)
    return rc, [line for line in err.splitlines() if line.startswith("autopack-ctl:")]


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
        "autopack-ctl: writing /dev/full failed: No space left on device (ENOSPC)"], p.stderr


def test_an_http_11_request_without_a_host_gets_one_json_answer(tmp):
    """libmicrohttpd held to the protocol answered an HTTP/1.1 request without a Host with
    two status lines and two header blocks before one HTML body: a client read the second
    block as the body. A request line with two spaces before its version was closed with
    no answer at all."""
    sup, port = serving(tmp)
    try:
        for request in (b"GET /healthz HTTP/1.1\r\n\r\n",
                        b"GET /healthz HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n"):
            raw = exchange(port, request)
            assert raw.count(b"HTTP/1.1 400 ") == 1, raw
            status, headers, body = answer(raw)
            assert status == 400 and headers["content-type"] == "application/json", raw
            assert raw.endswith(body), raw
            assert json.loads(body) == {
                "ok": False, "error": "bad_request",
                "message": "an HTTP/1.1 request must name its Host; this one names none"}
        # HTTP/1.0 needs none.
        status, _, body = answer(exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n"))
        assert status == 200 and json.loads(body)["status"] == "ok", body
        status, _, body = answer(exchange(port, b"GET /healthz  HTTP/1.1\r\n" + H + b"\r\n"))
        assert status == 404 and json.loads(body)["error"] == "not_found", body
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_db_check_counts_a_try_in_flight_as_sent_not_failed(tmp):
    """`db check` during a drain, or after its supervisor was killed, counted each try
    whose answer had not come yet (status 'sent') among the failed calls: a drain whose
    calls had all succeeded so far showed "1 failed calls"."""
    from e2e_helpers import Standin, import_plan, init_db, llm_args, phase_spec, rows
    from supervisor_helpers import Supervisor, wait_for
    tmp = str(tmp)
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", os.path.join(tmp, "ws"), [phase_spec("p1", ("out/p1.py",))])])
    llm = Standin(tmp, {"markers": {"out/p1.py": [{"mode": "sleep", "seconds": 60}]}})
    sup = Supervisor(tmp, url, "--workers", 1, "--llm-timeout-seconds", 120, *llm_args(llm),
                     env={"ANTHROPIC_API_KEY": "sk-ant-in-flight-test"})
    try:
        sup.wait_ready()
        wait_for(lambda: rows(url, "SELECT * FROM llm_usage_events WHERE status = 'sent'"
                                   " AND seq IS NOT NULL"), 60, what="the try announced")
        r = ctl("--db", url, "db", "check")
        assert r.rc == 0, r
        assert ("llm_usage_events: 1 (0 failed calls, 0 lost with their worker, 1 sent"
                " with no outcome yet), 0 tokens") in r.out, r.out
        r = ctl("--db", url, "--json", "db", "check")
        assert r.rc == 0, r
        usage = json.loads(r.out)["telemetry"]["llm_usage"]
        assert (usage["failed"], usage["lost"], usage["sent"]) == (0, 0, 1), usage
        sup.proc.kill()
        sup.proc.wait()
        r = ctl("--db", url, "db", "check")
        assert ("llm_usage_events: 1 (0 failed calls, 0 lost with their worker, 1 sent"
                " with no outcome yet), 0 tokens") in r.out, r.out
    finally:
        sup.kill()
        llm.stop()


def test_telemetry_export_never_empties_another_database(tmp):
    """`telemetry export --out b.db` (two names swapped, or one mistyped) truncated b.db, an
    autopack database of its own, maybe one a supervisor was draining, and wrote NDJSON
    into it; its -wal too (`--log-file` was already refused them)."""
    import hashlib
    a = "sqlite:///" + str(imported_db(tmp, "a.db"))
    b = tmp / "b.db"
    assert ctl("--db", "sqlite:///" + str(b), "db", "init").rc == 0
    before = hashlib.sha256(b.read_bytes()).hexdigest()
    sup = Supervisor(tmp, "sqlite:///" + str(b), "--workers", 0, "--allow-empty-db")
    try:
        sup.wait_ready()
        wal = tmp / "b.db-wal"
        before_wal = hashlib.sha256(wal.read_bytes()).hexdigest()
        # Its -wal and -shm too, while a supervisor holds it, and a -journal not made yet.
        for out in ("b.db", str(b), "b.db-wal", "b.db-shm", "b.db-journal"):
            r = ctl("--db", a, "telemetry", "export", "--out", out)
            assert r.rc == 1, r
            assert ("autopack-ctl: refusing to write %s: it is an SQLite database's file (a "
                    "database, its -wal or its -shm), which writing would destroy; nothing was"
                    " written: name another file\n" % out) in r.err, r.err
            assert hashlib.sha256(b.read_bytes()).hexdigest() == before
            assert hashlib.sha256(wal.read_bytes()).hexdigest() == before_wal
        assert not os.path.exists(str(tmp / "b.db-journal"))
        assert sup.status()["ok"]
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    assert ctl("--db", "sqlite:///" + str(b), "db", "check", "--allow-empty-db").rc == 0
    # A file that is no database is written over as before.
    (tmp / "old.ndjson").write_text("x" * 100000)
    r = ctl("--db", a, "telemetry", "export", "--out", "old.ndjson")
    assert r.rc == 0, r
    assert len((tmp / "old.ndjson").read_text().splitlines()) == 64


def test_a_read_only_mount_shows_the_commits_in_a_write_ahead_log_left_there(tmp):
    """A database whose supervisor died (or whose file system was remounted read-only under
    it) keeps its last commits in its -wal. On a read-only mount the reading commands
    opened the file immutable, which reads the database file alone: `session list` said
    "no drain sessions yet" and `db check` counted none of the logged rows. Without the
    -shm SQLite reads the log through, the read is refused naming the directory."""
    import shutil
    from supervisor_helpers import new_db
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount the directory read-only")
    d = tmp / "ro"
    d.mkdir()
    url = new_db(d, runs=1, phases=1)
    sup = Supervisor(d, url, "--workers", 0)
    sup.wait_ready()
    sup.proc.kill()
    sup.proc.wait()
    os.unlink(str(d / "sup.sock"))
    assert os.path.getsize(str(d / "autopack.db-wal")) > 32
    ctl_bin = binpath("autopack-ctl")

    def on_read_only_mount():
        script = ('mount --make-rprivate / && mount -o bind,ro "$1" "$1" || exit 99; shift; '
                  '"$@" session list; echo "rc=$?"; "$@" db check; echo "rc=$?"')
        p = subprocess.run(["unshare", "-m", "--propagation", "unchanged", "sh", "-c", script,
                            "sh", str(d), ctl_bin, "--db", url], capture_output=True,
                           text=True, timeout=120)
        if p.returncode == 99:
            pytest.skip("mounting read-only is not permitted here: " + p.stderr)
        return p

    # The session the supervisor began is in the log alone.
    p = on_read_only_mount()
    assert p.stdout.count("rc=0") == 2, p
    assert "no drain sessions yet" not in p.stdout and " interrupted " in p.stdout, p
    os.rename(str(d / "autopack.db-shm"), str(tmp / "shm"))
    p = on_read_only_mount()
    assert "rc=0" not in p.stdout, p
    assert ("autopack.db: cannot read: unable to open database file" in p.stderr
            and "copy the database with its -wal, if any, to a writable directory"
            in p.stderr), p


@pytest.mark.parametrize("flag,what", [("i", "immutable"), ("a", "append-only")])
def test_an_immutable_or_append_only_database_is_named_so(tmp, flag, what):
    """`chattr +i` (or `+a`) on the database: a writing command said "cannot write it as
    uid 0: Operation not permitted (mode 0600, owner uid 0)" (immutable), or got as far as
    its first statement, "attempt to write a readonly database" (append-only), naming no
    cause; a reading command left a -wal and a -shm beside the file it had read."""
    import shutil
    from supervisor_helpers import new_db
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("needs root and chattr")
    url = new_db(tmp, runs=1, phases=1)
    path = url[len("sqlite:///"):]
    assert sorted(os.listdir(str(tmp))) == ["autopack.db", "plan.json", "ws"]
    if subprocess.run(["chattr", "+" + flag, path], capture_output=True).returncode != 0:
        pytest.skip("this file system has no chattr +%s" % flag)
    try:
        for command in (["db", "check"], ["session", "list"], ["failed"]):
            r = ctl("--db", url, *command)
            assert r.rc == 0, r
        assert sorted(os.listdir(str(tmp))) == ["autopack.db", "plan.json", "ws"]
        want = ("%s: cannot write it: it is %s (chattr +%s); SQLite writes a database and its"
                " -wal and -shm in place (lsattr %s shows the flag; chattr -%s %s, as root,"
                " clears it)" % (path, what, flag, path, flag, path))
        r = ctl("--db", url, "db", "reidentify")
        assert r.rc == 2 and "autopack-ctl: " + want + "\n" in r.err, r
        p = subprocess.run([binpath("autopack-supervisor"), "--db", url, "--dry-run",
                            "--exit-when-drained"], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, ANTHROPIC_API_KEY="sk-ant-x"))
        assert p.returncode == 1 and want in p.stderr, p
    finally:
        subprocess.run(["chattr", "-" + flag, path], check=True)
    assert sql(url, "SELECT count(*) FROM attempts") == [(0,)]


@pytest.mark.parametrize("where", ["stderr", "fifo"])
def test_a_log_no_one_reads_does_not_stop_the_drain(tmp, where):
    """`autopack-supervisor ... 2>&1 | less` left paused, a log shipper that stopped
    reading, or a `--log-file` FIFO whose reader did: once the pipe was full, the
    supervisor's next log line blocked its event loop, and the workers' theirs; the drain
    stopped with its phases EXECUTING for ever, and `status` got no answer. Lines the
    stream does not take within a second are now dropped, counted, and the count said once
    it takes lines again."""
    import fcntl
    from supervisor_helpers import new_db, wait_for
    url = new_db(tmp, runs=2, phases=5)
    args = [binpath("autopack-supervisor"), "--db", url, "--workers", "2", "--dry-run",
            "--log-level", "debug", "--control", str(tmp / "sup.sock")]
    if where == "stderr":
        r, w = os.pipe()
        named, reopened = b"standard error", b"SIGHUP: no --log-file to reopen"
    else:
        fifo = str(tmp / "log.fifo")
        os.mkfifo(fifo)
        r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        w = subprocess.DEVNULL
        args += ["--log-file", fifo]
        named, reopened = fifo.encode(), b"SIGHUP: log file reopened"
    fcntl.fcntl(r, 1031, 4096)  # F_SETPIPE_SZ: one page, full after a few lines
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-ant-x")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=w, env=env)
    if where == "stderr":
        os.close(w)
    try:
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'dry_run'")
                 == [(10,)], 60, what="every phase drained")
        st = ctl("--db", url, "status", "--control", str(tmp / "sup.sock"), timeout=60)
        assert st.rc == 0, st
        os.set_blocking(r, False)
        try:
            while os.read(r, 65536):
                pass
        except BlockingIOError:
            pass
        os.set_blocking(r, True)
        fcntl.fcntl(r, 1031, 65536)
        # Emptied, the pipe takes lines again: the next one (SIGHUP's) follows the count.
        p.send_signal(signal.SIGHUP)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
        after = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            after += chunk
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(r)
    assert (b"log line(s) were dropped: %s did not take them within 1000 ms" % named
            in after), after
    assert reopened in after, after


def test_a_refused_apply_shows_figures_that_differ(tmp):
    """Samples of 10^9 output tokens each (another program's) give waste p90 far below
    0.01x for both sets: `calibrate --apply` refused the proposal as worse, naming "waste
    p90 0.00x against 0.00x" and "truncation 100.0 % against 100.0 %", the same figures."""
    import re
    head = open(os.path.join(DATA, "autopack-v2-telemetry-samples.tsv")).readline()
    lines = [head] + ["2025-12-23T22:%02d:12Z\tconfiguration\tlow\t%d\t462\t%d\t8192\ttrue\t"
                      "false\tend_turn\tm\n" % (i, i % 3, 1000000000 - i) for i in range(30)]
    (tmp / "huge.tsv").write_text("".join(lines))
    url = "sqlite:///" + str(tmp / "t.db")
    assert ctl("--db", url, "db", "init").rc == 0
    assert ctl("--db", url, "telemetry", "import", "huge.tsv").rc == 0
    r = ctl("--db", url, "calibrate", "--apply")
    assert r.rc == 1, r
    m = re.search(r"worse than the active set on held-out samples \(kfold\): truncation "
                  r"(\S+) % against (\S+) %, waste p90 (\S+)x against (\S+)x;", r.err)
    assert m, r.err
    assert m.group(3) != m.group(4), r.err


def test_an_ipv4_mapped_http_address_is_refused_naming_the_ipv4_one(tmp):
    """`--http [::ffff:127.0.0.1]:9464` (what `ss` shows a dual-stack listener as) passed
    the check, then stopped the supervisor at its start with libmicrohttpd's bare cause:
    `cannot listen there: Invalid argument`."""
    from conftest import run
    for given, v4 in (("[::ffff:127.0.0.1]:9464", "127.0.0.1:9464"),
                      ("[::ffff:7f00:1]:0", "127.0.0.1:0")):
        r = run("autopack-supervisor", "--http", given)
        assert r.rc == 2, r
        assert ("autopack-supervisor: --http: \"%s\": %s is an IPv4 address written as IPv6,"
                " which the server cannot listen on; write it as IPv4: %s\n"
                % (given, given.rsplit(":", 1)[0], v4)) in r.err, r.err


def test_an_output_that_opens_to_no_device_is_not_called_a_fifo(tmp):
    """A socket, or /dev/tty in a process without a controlling terminal (a service, a
    cron job), fails to open with ENXIO, as a FIFO no process reads does: `--log-file` and
    `telemetry export --out` said "a FIFO that no process has open for reading; start its
    reader first" of them."""
    import socket
    url = "sqlite:///" + str(imported_db(tmp))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp / "a.sock"))
    cause = ("No such device or address: it is a socket, or a device with nothing behind it "
             "(/dev/tty without a controlling terminal)")
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-ant-x")
    try:
        for path in (str(tmp / "a.sock"), "/dev/tty"):
            for argv, want in (
                    ([binpath("autopack-ctl"), "--db", url, "telemetry", "export", "--out",
                      path], "autopack-ctl: cannot write %s: %s\n" % (path, cause)),
                    ([binpath("autopack-supervisor"), "--db", url, "--dry-run", "--log-file",
                      path], "cannot open log file %s: %s\n" % (path, cause))):
                p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                   env=env, start_new_session=True,
                                   stdin=subprocess.DEVNULL)
                assert p.returncode == 1 and want in p.stderr, (argv, p)
                assert "FIFO" not in p.stderr, p.stderr
    finally:
        sock.close()
