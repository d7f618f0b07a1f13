"""autopack-ctl as an operator drives it by hand, and a hostile one: --json wherever it
stands on the command line, values at their limits, files that are no regular file, a
database another process holds or that may not be written."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import binpath, ctl, preload, run as run_bin
from telemetry_helpers import SAMPLES


def commands():
    """Every command autopack-ctl lists in its --help, as lists of words."""
    r = ctl("--help")
    assert r.rc == 0, r
    lines = r.out.split("Commands:\n", 1)[1].splitlines()
    return [line.split("  ")[1].strip().split() for line in lines if line.strip()]


def one_json_error(r):
    """The one JSON object a failed --json command printed on stdout."""
    obj = json.loads(r.out)
    assert isinstance(obj, dict) and obj["ok"] is False, r
    return obj


def test_a_usage_error_ahead_of_json_is_one_json_object_for_every_command(tmp):
    """`autopack-ctl status --bogus --json` printed nothing on stdout: the option parser met
    the unknown option before --json, and a program reading stdout as JSON got nothing to
    parse. --json anywhere on the command line makes every usage error one JSON object."""
    url = "sqlite:///" + str(tmp / "none.db")
    cmds = commands()
    assert ["run", "import"] in cmds and ["status"] in cmds, cmds
    for cmd in cmds:
        for argv in ([*cmd, "--bogus", "--json"], ["--bogus", "--json", *cmd],
                     ["--db", url, "--db", url + "x", *cmd, "--json"],
                     [*cmd, "--db", url, "--db", url + "x", "--json"]):
            r = ctl(*argv)
            assert r.rc == 2, (argv, r)
            obj = one_json_error(r)
            assert obj["error"] == "EINVAL", (argv, r)
            assert "--bogus" in obj["message"] or "--db given twice" in obj["message"], \
                (argv, r)
            assert r.err.startswith("autopack-ctl"), (argv, r)
    for argv in (["nosuch", "--json"], ["db", "nosuch", "--json"], ["--json"],
                 ["run", "import", "a.json", "b.json", "--json"],
                 ["telemetry", "report", "--under-multiplier", "0", "--json"]):
        r = ctl(*argv)
        assert r.rc == 2, (argv, r)
        assert one_json_error(r)["error"] == "EINVAL", (argv, r)


# The statement of telemetry export, at which pq-shim.so's gate holds it.
EXPORT_SQL = "SELECT * FROM token_estimation_v2_events"


def test_an_export_stopped_by_a_signal_leaves_no_temporary_and_the_file_as_it_was(
        tmp, pg_url):
    """`telemetry export --out FILE` writes a temporary beside FILE: SIGTERM or Ctrl-C
    while it runs (here held by pq-shim.so's gate at its query, the temporary made) would
    leave `.FILE.XXXXXX.partial` behind. The stop signal removes it; FILE keeps what it
    held."""
    assert ctl("--db", pg_url, "db", "init").rc == 0
    assert ctl("--db", pg_url, "telemetry", "import", SAMPLES).rc == 0
    out = tmp / "events.ndjson"
    out.write_text("earlier\n")
    gates = tmp / "gates"
    gates.mkdir()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gate = gates / ("gate-%d" % sig)
        p = subprocess.Popen([binpath("autopack-ctl"), "--db", pg_url, "telemetry", "export",
                              "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             env=dict(os.environ, **preload(
                                 "pq-shim.so", AUTOPACK_PQ_SHIM_GATE=str(gate),
                                 AUTOPACK_PQ_SHIM_GATE_MATCH=EXPORT_SQL)))
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(str(gate) + ".held"):
                assert p.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            partial = [n for n in os.listdir(str(tmp)) if n.endswith(".partial")]
            assert len(partial) == 1 and partial[0].startswith(".events.ndjson."), partial
            p.send_signal(sig)
            assert p.wait(30) == -sig
        finally:
            p.kill()
            p.communicate()
        assert sorted(os.listdir(str(tmp))) == ["events.ndjson", "gates"], os.listdir(str(tmp))
        assert out.read_text() == "earlier\n"


def json_lines(r):
    """The objects a --json command printed: one, or one a line (NDJSON)."""
    try:
        return [json.loads(r.out)]
    except ValueError:
        return [json.loads(line) for line in r.out.splitlines()]


# Each command with --json, as an operator gives it: offline against a database, live
# against a supervisor holding it.
OFFLINE = [["db", "check"], ["db", "migrate"], ["db", "reidentify"], ["db", "adopt"],
           ["seed", "telemetry-run", "--workspace", "seeded"], ["run", "import", "plan.json"],
           ["session", "list"], ["failed"], ["retry", "--all-failed"],
           ["telemetry", "report"], ["telemetry", "import", SAMPLES, "--run-id", "more"],
           ["telemetry", "export"], ["calibrate", "--repeats", "1"],
           ["calibrate", "--evaluate", "--repeats", "1"], ["calibrate", "--list"],
           ["calibrate", "--apply", "--force", "--repeats", "1"], ["calibrate", "--rollback"],
           ["completion", "bash"], ["db", "init"]]
LIVE = [["status"], ["workers"], ["pause"], ["resume"], ["scale", "0"], ["metrics"],
        ["watch", "--count", "2", "--interval", "0.1"], ["session", "show"],
        ["cancel", "r1", "p1"], ["stop"]]


def test_every_command_with_json_prints_only_json_on_stdout(tmp):
    """`completion bash --json` printed the bash script: a program that reads every
    command's stdout as JSON (--json is taken by every command) could not parse it. Every
    command's stdout with --json is now JSON, each a line for the NDJSON ones, whether it
    succeeded or not."""
    from supervisor_helpers import Supervisor
    url = "sqlite:///" + str(tmp / "a.db")
    assert ctl("--db", url, "db", "init").rc == 0
    assert ctl("--db", url, "telemetry", "import", SAMPLES).rc == 0
    (tmp / "plan.json").write_text(json.dumps({"runs": [{
        "run_id": "r1", "workspace": "ws", "tiers": [{"tier_id": "T1", "name": "t", "phases": [
            {"phase_id": "p1", "name": "n", "scope": {"deliverables": ["a.py"]}}]}]}]}))
    covered = {tuple(a[:2]) if a[0] in ("db", "seed", "run", "session", "telemetry")
               else (a[0],) for a in OFFLINE + LIVE}
    assert covered == {tuple(c) for c in commands()}, covered ^ {tuple(c) for c in commands()}
    for argv in OFFLINE:
        r = ctl("--db", url, *argv, "--json")
        objs = json_lines(r)
        assert objs and all(isinstance(o, dict) for o in objs), (argv, r)
        assert r.rc == 0 and all(o.get("ok") is not False for o in objs), (argv, r)
    sup = Supervisor(tmp, url, "--workers", 0, "--allow-empty-db")
    try:
        sup.wait_ready()
        for argv in LIVE:
            r = ctl("--db", url, *argv, "--json", timeout=60)
            objs = json_lines(r)
            assert objs and all(isinstance(o, dict) for o in objs), (argv, r)
            assert r.rc == 0 and all(o.get("ok") is not False for o in objs), (argv, r)
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
    r = ctl("--db", url, "completion", "bash", "--json")
    script = json.loads(r.out)
    assert script["ok"] is True and script["shell"] == "bash", r
    assert script["script"] == ctl("completion", "bash").out


def test_a_write_another_program_holds_the_database_for_is_refused_as_busy(tmp):
    """Another program (the sqlite3 shell, a backup, a Python script) holding a write
    transaction: a write command waited 5 s, then said `starting the import: database is
    locked` and exited 2, "unusable", as for a broken file. It is busy, not broken: exit 1,
    EBUSY, the message says who holds it and what to do, and nothing is written."""
    import sqlite3
    path = tmp / "a.db"
    url = "sqlite:///" + str(path)
    assert ctl("--db", url, "db", "init").rc == 0
    (tmp / "plan.json").write_text(json.dumps({"runs": [{
        "run_id": "r1", "workspace": "ws", "tiers": [{"tier_id": "T1", "name": "t", "phases": [
            {"phase_id": "p1", "name": "n", "scope": {"deliverables": ["a.py"]}}]}]}]}))
    uuid = json.loads(ctl("--db", url, "db", "check", "--json", "--allow-empty-db").out)[
        "database"]["uuid"]
    held = sqlite3.connect(str(path), isolation_level=None)
    held.execute("BEGIN IMMEDIATE")
    why = ("database is locked (another program holds a write transaction on the database, "
           "and it did not end within 5 s); nothing was written: give the command again "
           "once it has ended")
    try:
        r = ctl("--db", url, "run", "import", "plan.json")
        assert r.rc == 1, r
        assert r.err.endswith("autopack-ctl: starting the import: %s\n" % why), r.err
        r = ctl("--db", url, "db", "reidentify", "--json")
        assert r.rc == 1, r
        assert json.loads(r.out) == {"ok": False, "error": "EBUSY",
                                     "message": "%s: %s" % (path, why)}, r
    finally:
        held.execute("ROLLBACK")
        held.close()
    r = ctl("--db", url, "db", "check", "--json", "--allow-empty-db")
    assert json.loads(r.out)["database"]["uuid"] == uuid
    assert json.loads(r.out)["runs"]["total"] == 0
    assert ctl("--db", url, "run", "import", "plan.json").rc == 0


def on_read_only_mount(d, *argvs):
    """Run each argv with directory `d` mounted read-only (a private mount namespace);
    the output of each, followed by its "rc=N"."""
    import shutil
    import pytest
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount the directory read-only")
    script = 'mount --make-rprivate / && mount -o bind,ro "$1" "$1" || exit 99; '
    args = []
    for argv in argvs:
        script += '%s; echo "rc=$?"; ' % " ".join('"${%d}"' % (len(args) + k + 2)
                                                 for k in range(len(argv)))
        args += argv
    p = subprocess.run(["unshare", "-m", "--propagation", "unchanged", "sh", "-c", script,
                        "sh", str(d)] + args, capture_output=True, text=True, timeout=120)
    if p.returncode == 99:
        import pytest
        pytest.skip("mounting read-only is not permitted here: " + p.stderr)
    return p


def test_a_python_database_on_a_read_only_mount_is_surveyed_and_its_adoption_refused(tmp):
    """`db adopt` on a read-only mount (a snapshot, a backup mounted to look at) of a
    Python-Autopack database in WAL mode: the survey, which writes nothing, failed
    `cannot read: unable to open database file (No such file or directory)` (SQLite could
    not make the -shm), and the adoption said the same of its first statement. The survey
    reads it as every reading command does; the adoption names the read-only file system
    before it writes anything."""
    import hashlib
    import sqlite3
    import legacy_db
    d = tmp / "ro"
    d.mkdir()
    path = d / "legacy.db"
    legacy_db.build(str(path))
    con = sqlite3.connect(str(path))
    assert con.execute("PRAGMA journal_mode=WAL").fetchall() == [("wal",)]
    con.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    url = "sqlite:///" + str(path)
    ctl_bin = binpath("autopack-ctl")
    p = on_read_only_mount(d, [ctl_bin, "--db", url, "db", "adopt", "--dry-run"],
                           [ctl_bin, "--db", url, "db", "adopt"])
    first, second = p.stdout.split("rc=", 1)[1], p.stdout.split("rc=")[2]
    assert first.startswith("0") and "dry run: nothing was changed" in p.stdout, p
    assert second.startswith("2"), p
    assert ("autopack-ctl: %s: cannot write it as uid %d: Read-only file system"
            % (path, os.geteuid())) in p.stderr, p
    assert "unable to open database file" not in p.stderr, p
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(os.listdir(str(d))) == ["legacy.db"]


def test_a_read_another_program_locks_the_database_against_is_refused_as_busy(tmp):
    """Another program holding the database in SQLite's exclusive locking mode keeps even
    readers out: `db check` said `cannot read: database is locked`, exit 2 (unusable),
    as of a damaged file. It is busy: exit 1, EBUSY, naming the cause."""
    import sqlite3
    path = tmp / "a.db"
    url = "sqlite:///" + str(path)
    assert ctl("--db", url, "db", "init").rc == 0
    held = sqlite3.connect(str(path), isolation_level=None)
    held.execute("PRAGMA locking_mode=EXCLUSIVE")
    held.execute("BEGIN EXCLUSIVE")
    held.execute("UPDATE meta SET id = id")
    try:
        r = ctl("--db", url, "db", "check", "--json")
        assert r.rc == 1, r
        msg = ("%s: cannot read: database is locked (another program holds the database "
               "locked for itself, in SQLite's exclusive locking mode or writing it without "
               "a write-ahead log, and did not let it go within 5 s); give the command "
               "again once it has" % path)
        assert json.loads(r.out) == {"ok": False, "error": "EBUSY", "message": msg}, r
        assert r.err == "autopack-ctl: %s\n" % msg, r
    finally:
        held.execute("ROLLBACK")
        held.close()
    assert ctl("--db", url, "db", "check", "--allow-empty-db").rc == 0


def documented_reply_keys(cmd):
    """The keys README.md's table "keys of its reply" names for control command `cmd`."""
    import re
    readme = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                               "README.md")).read()
    table = readme[readme.index("| command | keys of its reply |"):]
    table = table[:table.index("\n\n")]
    for line in table.splitlines():
        if line.startswith("| `%s` |" % cmd):
            return set(re.findall(r"`([a-z_]+)`", line.split("|")[2]))
    raise AssertionError("README.md names no reply keys of " + cmd)


def test_control_commands_say_what_they_did_and_json_gives_the_reply(tmp):
    """pause, resume, scale, stop and cancel printed the supervisor's raw JSON reply
    (`ok {"from":0,"to":3}`) in text mode. Text mode says what was done, to what, with the
    counts; --json prints one object: the reply's keys, "ok", "command" and the
    database's identity."""
    from supervisor_helpers import Supervisor, new_db, sql
    url = new_db(tmp, runs=1, phases=2)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        ident = ("db_url", "db_uuid", "db_device_inode")

        def said(*args):
            r = sup.ctl(*args)
            assert r.rc == 0 and "{" not in r.out, (args, r)
            lines = r.out.splitlines()
            assert len(lines) == 2 and lines[0].startswith("supervisor of "), (args, r)
            return lines[1]

        def reply(*args):
            r = sup.ctl(*args, "--json")
            assert r.rc == 0, (args, r)
            obj = json.loads(r.out)
            assert obj["ok"] is True and obj["command"] == args[0], (args, obj)
            assert all(isinstance(obj[k], str) for k in ident), obj
            # Every key of the reply is one the README's table names for the command.
            keys = set(obj) - {"ok", "command", *ident}
            assert keys <= documented_reply_keys(args[0]), (args, obj)
            return obj

        assert said("pause") == ("paused: no new phase is dispatched; 0 attempts in flight"
                                 " (autopack-ctl resume dispatches again)")
        assert said("pause").startswith("paused already: nothing changed")
        obj = reply("pause")
        assert (obj["was_paused"], obj["in_flight"]) == (True, 0), obj
        assert said("scale", "3") == ("scaled the pool from 0 to 3 workers")
        assert said("scale", "3") == "the pool stays at 3 workers: nothing changed"
        obj = reply("scale", "1", "--force")
        assert (obj["from"], obj["to"], obj["force"]) == (3, 1, True), obj
        assert said("scale", "0", "--force") == (
            "scaled the pool from 1 to 0 workers (forced: busy workers stopped, their phases"
            " queued again)")
        assert said("resume") == "resumed: dispatching again"
        assert said("resume") == "not paused: dispatching as before"
        obj = reply("resume")
        assert (obj["was_paused"], obj["breaker_reset"]) == (False, False), obj
        assert said("cancel", "run-000", "p0-0") == "run-000/p0-0: SKIPPED"
        obj = reply("cancel", "run-000", "p0-1")
        assert (obj["run_id"], obj["phase_id"], obj["state"]) == (
            "run-000", "p0-1", "SKIPPED"), obj
        assert said("stop", "--timeout", "7") == (
            "stopping: nothing new is dispatched; 0 attempts in flight, the supervisor exits"
            " (what still runs after 7 s is killed, its phase queued again)")
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    assert sql(url, "SELECT state FROM phases ORDER BY phase_id") == [("SKIPPED",)] * 2


def test_stop_now_json_names_its_mode_and_timeout(tmp):
    """stop --json: one object with mode, in_flight and timeout_seconds (null without
    --timeout); stop --now in text says the supervisor exits at once."""
    from supervisor_helpers import Supervisor, new_db
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        r = sup.ctl("stop", "--json")
        assert r.rc == 0, r
        obj = json.loads(r.out)
        assert (obj["command"], obj["mode"], obj["in_flight"], obj["timeout_seconds"]) == (
            "stop", "graceful", 0, None), obj
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    sup = Supervisor(tmp, url, "--workers", 0, name="sup2")
    try:
        sup.wait_ready()
        r = sup.ctl("stop", "--now")
        assert r.rc == 0 and r.out.splitlines()[1] == (
            "stopping now: 0 attempts in flight; the supervisor exits"), r
        sup.wait(60)
    finally:
        sup.kill()


def test_help_and_version_under_json_are_json_for_every_command(tmp):
    """`--help --json` and `--version --json` printed text: a program reading stdout as
    JSON got none. Under --json the help of autopack-ctl, of each group and of each
    command is one object built from the command table (the usage line the text shows,
    the options it names), and the version is {"command", "version"}."""
    r = ctl("--version", "--json")
    assert r.rc == 0 and json.loads(r.out) == {
        "command": "autopack-ctl", "version": ctl("--version").out.split()[1]}, r
    for argv in (["--help", "--json"], ["--json", "--help"]):
        r = ctl(*argv)
        assert r.rc == 0, r
        top = json.loads(r.out)
        assert top["command"] == "autopack-ctl" and "--db" in [
            o["name"] for o in top["options"]], top
        assert [c["command"].split() for c in top["commands"]] == commands()
    for words in commands():
        for argv in ([*words, "--help", "--json"], ["--json", *words, "--help"]):
            r = ctl(*argv)
            assert r.rc == 0, (argv, r)
            obj = json.loads(r.out)
            text = ctl(*words, "--help").out
            assert obj["command"] == " ".join(words), obj
            assert text.startswith("usage: " + obj["usage"] + "\n\n" + obj["summary"]), obj
            assert text.endswith(obj["help"]), obj
            names = [o["name"] for o in obj["options"]]
            assert len(names) == len(set(names)) and "--db" in names, obj
            for o in obj["options"]:
                want = o["name"] + (" " + o["value"] if o["value"] else "")
                assert want in obj["usage"], (o, obj["usage"])
        if len(words) == 2:
            for argv in ([words[0], "--help", "--json"], [words[0], "--json", "--help"]):
                r = ctl(*argv)
                assert r.rc == 0, (argv, r)
                group = json.loads(r.out)
                assert group["group"] == words[0] and " ".join(words) in [
                    c["command"] for c in group["commands"]], group
    stop = json.loads(ctl("stop", "--help", "--json").out)
    assert {"name": "--timeout", "value": "S"} in stop["options"], stop
    assert {"name": "--now", "value": None} in stop["options"], stop


@pytest.mark.parametrize("prog", ["autopack-supervisor", "autopack-worker"])
def test_supervisor_and_worker_help_and_version_under_json_are_json(tmp, prog):
    """`autopack-supervisor --help --json` printed the text, and `--json --help` was an
    unknown option (exit 2); the worker's the same. Both print the JSON autopack-ctl
    prints, from the same code and their own --help text; --json alone is refused saying
    what it goes with."""
    text = run_bin(prog, "--help").out
    version = run_bin(prog, "--version").out.split()[1]
    for argv in (["--version", "--json"], ["--json", "--version"]):
        r = run_bin(prog, *argv)
        assert r.rc == 0 and json.loads(r.out) == {"command": prog, "version": version}, r
    for argv in (["--help", "--json"], ["--json", "--help"], ["-h", "--json"]):
        r = run_bin(prog, *argv)
        assert r.rc == 0, (argv, r)
        obj = json.loads(r.out)
        assert obj["command"] == prog and text == obj["usage"] + "\n" + obj["help"], obj
        assert obj["usage"].startswith("usage: %s " % prog), obj
        names = [o["name"] for o in obj["options"]]
        # Each option of the usage lines and of the option lines, and nothing else, once.
        lines = re.findall(r"^ {1,4}(?:-h, )?(--[a-z][a-z0-9-]*)", text, re.M)
        lines += re.findall(r"--[a-z][a-z0-9-]*", obj["usage"])
        assert len(names) == len(set(names)) and set(names) == set(lines), (names, lines)
        for o in obj["options"]:
            want = o["name"] + (" " + o["value"] if o["value"] else "")
            assert want in text, o
    options = {o["name"]: o["value"] for o in obj["options"]}
    assert options["--log-level"] == "L" and options["--check-network"] == "isolated|host"
    assert options["--json"] is None and options["--help"] is None
    r = run_bin(prog, "--json")
    assert r.rc == 2 and r.out == "", r
    assert "--json" in r.err and "goes only with --help or --version" in r.err, r


def test_an_empty_autopack_db_url_is_an_error_naming_it(tmp):
    """AUTOPACK_DB_URL= (set, empty) counted as unset: the command fell back to
    DATABASE_URL, or said no database was named. Every binary that reads it now refuses
    it by name (exit 2); --db, which outranks the environment, still works, and an empty
    DATABASE_URL, which other programs set, still counts as unset."""
    from supervisor_helpers import new_db
    url = new_db(tmp, runs=1)
    env = {"AUTOPACK_DB_URL": "", "DATABASE_URL": url}
    for argv in (["db", "check"], ["status"], ["session", "list"], ["retry", "--all-failed"]):
        r = ctl(*argv, env=env)
        assert r.rc == 2 and "AUTOPACK_DB_URL is set but empty" in r.err, (argv, r)
    r = ctl("db", "check", "--json", env=env)
    assert r.rc == 2 and "AUTOPACK_DB_URL is set but empty" in one_json_error(r)["message"], r
    # The supervisor exits as for any database it cannot use (its own exit status).
    unset = run_bin("autopack-supervisor", "--workers", "0",
                    env={"AUTOPACK_DB_URL": None, "DATABASE_URL": None})
    r = run_bin("autopack-supervisor", "--workers", "0", env=env)
    assert r.rc == unset.rc != 0 and "AUTOPACK_DB_URL is set but empty" in r.err, r
    r = ctl("--db", url, "db", "check", env=env)
    assert r.rc == 0, r
    r = ctl("db", "check", env={"AUTOPACK_DB_URL": url, "DATABASE_URL": ""})
    assert r.rc == 0, r


def test_run_import_of_a_fifo_without_a_writer_is_refused_at_once(tmp):
    """`run import FIFO` with no process writing to the FIFO waited for one for ever. It
    is opened without waiting now: no writer is refused at once (exit 1) naming the FIFO
    and --wait; a FIFO whose writer is there is read whole, the bytes read to learn it
    included; --wait waits for a writer as before."""
    import threading
    from supervisor_helpers import make_plan, new_db, sql
    url = new_db(tmp, runs=0)
    plan = open(make_plan(str(tmp / "plan.json"), 2, phases=2)).read()
    fifo = str(tmp / "plan.fifo")
    os.mkfifo(fifo)
    for extra in ([], ["--json"]):
        r = ctl("--db", url, "run", "import", fifo, *extra, timeout=20)
        assert r.rc == 1, r
        assert ("%s: a FIFO that no process has open for writing: there is no plan to read"
                " (start the program that writes it first, or pass --wait" % fifo) in r.err, r
        if extra:
            assert one_json_error(r)["error"] == "EINVAL", r
    assert sql(url, "SELECT count(*) FROM runs") == [(0,)]

    # A writer that holds the FIFO open and writes only after the import has it open:
    # the probe finds it there with nothing to read yet.
    opened = threading.Event()

    def writer(text, pause):
        with open(fifo, "w") as f:
            opened.set()
            if pause:
                time.sleep(0.3)
            f.write(text)

    for run_ids, pause in ((["a"], True), (["b"], False)):
        doc = json.loads(plan)
        for i, run in enumerate(doc["runs"]):
            run["run_id"] = "%s%d" % (run_ids[0], i)
        # A plan larger than the probe's first read.
        doc["runs"][0]["tiers"][0]["phases"][0]["description"] = "g" * 20000
        opened.clear()
        t = threading.Thread(target=writer, args=(json.dumps(doc), pause))
        t.start()
        # The writer's open waits for a reader: ask until the import finds it there.
        r = None
        for _ in range(200):
            r = ctl("--db", url, "run", "import", fifo, timeout=30)
            if r.rc == 0:
                break
            time.sleep(0.05)
        t.join(30)
        assert r.rc == 0 and "imported %s: 2 runs" % fifo in r.out, r
    assert sql(url, "SELECT count(*) FROM runs") == [(4,)]
    assert sql(url, "SELECT length(description) FROM phases WHERE run_id = 'a0'"
               " AND phase_id = 'p0-0'") == [(20000,)]

    proc = subprocess.Popen([binpath("autopack-ctl"), "--db", url, "run", "import", fifo,
                             "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()
        doc = json.loads(plan)
        for i, run in enumerate(doc["runs"]):
            run["run_id"] = "w%d" % i
        with open(fifo, "w") as f:
            f.write(json.dumps(doc))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert sql(url, "SELECT count(*) FROM runs") == [(6,)]


def test_an_import_sent_to_the_supervisor_names_its_runs_as_text(tmp):
    """`run import` sent to a running supervisor printed its runs as a JSON array
    (`runs ["a","b"]`) in text mode; they are named as the offline import names them, and
    --json gives the whole reply."""
    from supervisor_helpers import Supervisor, make_plan, new_db
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--workers", 0)
    try:
        sup.wait_ready()
        doc = json.load(open(make_plan(str(tmp / "more.json"), 12, phases=2)))
        for i, run in enumerate(doc["runs"]):
            run["run_id"] = "more-%02d" % i
        with open(str(tmp / "more.json"), "w") as f:
            json.dump(doc, f)
        r = ctl("--db", url, "run", "import", str(tmp / "more.json"))
        assert r.rc == 0, r
        assert ("written by the supervisor (pid %d), the database's only writer: 12 runs "
                "(more-00, more-01, more-02, more-03, more-04, more-05, more-06, more-07, "
                "more-08, more-09 and 2 more), 12 tiers, 24 phases, all QUEUED and now "
                "eligible\n" % sup.proc.pid) in r.out, r
        assert "[" not in r.out, r
        for i, run in enumerate(doc["runs"]):
            run["run_id"] = "json-%02d" % i
        with open(str(tmp / "more.json"), "w") as f:
            json.dump(doc, f)
        r = ctl("--db", url, "run", "import", str(tmp / "more.json"), "--json")
        assert r.rc == 0, r
        assert json.loads(r.out)["runs"] == ["json-%02d" % i for i in range(12)], r
    finally:
        sup.kill()
