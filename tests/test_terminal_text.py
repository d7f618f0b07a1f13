"""Text from the database or a peer on an operator's terminal: phase ids, failure reasons,
messages and other programs' values may hold escape sequences (ESC [ ... CSI, OSC titles
ended by BEL), other control characters, DEL, the C1 controls and bytes that are not
UTF-8. `failed`, `retry`, the adoption survey and the supervisor's log lines printed them
as they were; they are shown escaped (\\e, \\xNN), valid UTF-8 kept, and --json keeps the
exact text."""
import json
import os
import sqlite3
import subprocess

import legacy_db
from conftest import NO_LLM_KEY, binpath, ctl

# ESC sequences (colour, clear screen, an OSC window title ended by BEL), a C1 CSI
# (U+009B), DEL, a NUL and a byte that is not UTF-8, around valid UTF-8 ("é").
HOSTILE = b"CHECK\x1b[31m red\x1b[2J\x1b]0;owned\x07 \xc2\x9b6n \x7f \x00 \xff caf\xc3\xa9"
SHOWN = b"CHECK\\e[31m red\\e[2J\\e]0;owned\\x07 \\xc2\\x9b6n \\x7f \\x00 \\xff caf\xc3\xa9"
AS_JSON = "CHECK\x1b[31m red\x1b[2J\x1b]0;owned\x07 \x9b6n \x7f \x00 \ufffd caf\u00e9"
PHASE = b"p\x1b[2Jx"  # a phase id another program wrote


def url(path):
    return "sqlite:///" + str(path)


def ctl_raw(*args, env=None, cwd=None):
    """autopack-ctl with stdout and stderr as bytes; (rc, stdout, stderr)."""
    p = subprocess.run([binpath("autopack-ctl")] + list(args), capture_output=True,
                       timeout=60, env=env, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def assert_terminal_safe(out):
    """No control character but the newline, no DEL, no C1 control, and valid UTF-8."""
    text = out.decode("utf-8")
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
    assert bad == [], (bad, out)


def hostile_db(tmp):
    """A seeded database with a FAILED phase whose id and failure reason are hostile."""
    db = tmp / "hostile.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    assert ctl("--db", url(db), "seed", "telemetry-run", "--workspace", "ws").rc == 0
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE phases SET state = 'FAILED', phase_id = CAST(? AS TEXT),"
                    " last_failure_reason = CAST(? AS TEXT) WHERE phase_index = 2",
                    (PHASE, HOSTILE))
    con.close()
    return db


def test_failed_and_retry_show_hostile_text_escaped_and_json_keeps_it(tmp):
    db = hostile_db(tmp)
    rc, out, err = ctl_raw("--db", url(db), "failed")
    assert rc == 0, (out, err)
    assert_terminal_safe(out)
    assert b"  reason " + SHOWN + b", 1 phase, last " in out, out
    assert b"/p\\e[2Jx  FAILED" in out, out

    rc, out, err = ctl_raw("--db", url(db), "retry", "--all-failed", "--dry-run")
    assert rc == 0, (out, err)
    assert_terminal_safe(out)
    assert b"/p\\e[2Jx (FAILED, " + SHOWN + b")\n" in out, out

    rc, out, err = ctl_raw("--db", url(db), "failed", "--json")
    assert rc == 0, (out, err)
    [group] = json.loads(out.decode("utf-8"))["groups"]
    assert group["reason"] == AS_JSON
    assert group["phases"][0]["phase_id"] == PHASE.decode()

    # An error naming the phase quotes it escaped too.
    rc, out, err = ctl_raw("--db", url(db), "retry", "telemetry-collection-v4", "x\x1b[2J")
    assert rc == 1, (out, err)
    assert_terminal_safe(err)
    assert b"x\\e[2J" in err, err


def test_the_adoption_survey_shows_hostile_ids_and_values_escaped(tmp):
    path = str(tmp / "original.db")
    legacy_db.build_original(path)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE phases SET phase_id = CAST(? AS TEXT), tier_id = 999999"
                    " WHERE run_id = 'build1-original' AND phase_id = 't2-p1'", (PHASE,))
        con.execute("UPDATE runs SET updated_at = CAST(? AS TEXT)"
                    " WHERE id = 'build1-original'", (b"soon\x1b[31m\xff",))
    con.close()
    rc, out, err = ctl_raw("--db", url(path), "db", "adopt", "--dry-run")
    assert rc == 0, (out, err)
    assert_terminal_safe(out + err)
    survey = out + err
    assert (b"    build1-original/p\\e[2Jx (QUEUED): phases.tier_id 999999: no row of tiers"
            in survey), survey
    assert b'e.g. "soon\\e[31m\\xff"' in survey, survey
    rc, out, err = ctl_raw("--db", url(path), "db", "adopt", "--dry-run", "--json")
    assert rc == 0, (out, err)
    orphans = json.loads(out.decode("utf-8"))["orphans"]
    assert [o["phase_id"] for o in orphans] == [PHASE.decode()], orphans


def test_supervisor_log_lines_show_a_hostile_phase_id_escaped(tmp):
    """A drain's log lines name the phase they are about; the text log (a terminal, the
    journal) shows its id escaped, the JSON log keeps it exactly."""
    db = hostile_db(tmp)
    assert ctl("--db", url(db), "retry", "--all-failed").rc == 0
    for fmt in ("text", "json"):
        p = subprocess.run([binpath("autopack-supervisor"), "--db", url(db), "--dry-run",
                            "--exit-when-drained", "--log-format", fmt,
                            "--control", str(tmp / "c.sock")],
                           capture_output=True, timeout=120,
                           env=dict(os.environ, ANTHROPIC_API_KEY=NO_LLM_KEY))
        assert p.returncode == 0, p
        assert_terminal_safe(p.stderr)
        if fmt == "text":
            assert b"telemetry-collection-v4/p\\e[2Jx attempt " in p.stderr, p.stderr
        else:
            phases = {json.loads(line).get("phase") for line in p.stderr.splitlines()}
            assert PHASE.decode() in phases, p.stderr


def test_the_identity_banner_shows_the_meta_rows_texts_escaped(tmp):
    """Every command prints the database's banner: meta.created_by, a hand edit's or
    another program's text (read up to a NUL byte), went to the terminal as it was."""
    db = hostile_db(tmp)
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE meta SET created_by = CAST(? AS TEXT)",
                    (HOSTILE.replace(b"\x00 ", b""),))
    con.close()
    rc, out, err = ctl_raw("--db", url(db), "db", "check")
    assert rc == 0, (out, err)
    assert_terminal_safe(out + err)
    assert b" by " + SHOWN.replace(b"\\x00 ", b"") + b"\n" in out, out
    rc, out, err = ctl_raw("--db", url(db), "db", "check", "--json")
    assert rc == 0, (out, err)
    assert json.loads(out.decode("utf-8"))["database"]["created_by"] == \
        AS_JSON.replace("\x00 ", "")


def test_the_identity_banner_shows_a_hostile_path_escaped(tmp):
    """A directory's name may hold any byte but '/' and NUL (a URL may not, but a relative
    one is resolved from the current directory): the banner's url, file and -wal lines
    printed the database's path as it was, while every other message showed it escaped."""
    top = os.path.join(str(tmp).encode(), b"dir\x1b]0;owned\x07\nx")
    os.makedirs(top)
    db = os.path.join(top, b"d.db")
    rc, out, err = ctl_raw("--db", "sqlite:///d.db", "db", "init", cwd=top)
    assert rc == 0, (out, err)
    shown = str(tmp).encode() + b"/dir\\e]0;owned\\x07\\nx/d.db"
    for banner in (out, err):
        assert_terminal_safe(banner)
    assert b"  url:            sqlite:///" + shown + b"\n" in out, out
    assert b"  file:           " + shown + b"\n" in out, out
    rc, out, err = ctl_raw("--db", "sqlite:///d.db", "--json", "db", "check",
                           "--allow-empty-db", cwd=top)
    assert rc == 0, (out, err)
    assert_terminal_safe(err)
    assert json.loads(out.decode("utf-8"))["database"]["url"] == \
        "sqlite:///" + db.decode("utf-8")


# Values a command or a plan quotes in its error, each holding a newline: shown printed
# it as it was, and the rest of the value stood on a line of its own, as if it were another
# message ("no phase 'p' in run 'a" then "b'").
QUOTED_ERRORS = [
    (("retry", "telemetry-collection-v4\n[OK] retried", "p\x1b[2J"),
     b"no phase 'p\\e[2J' in run 'telemetry-collection-v4\\n[OK] retried'"),
    (("cancel", "r\nx", "p\ny"), None),
    (("retry", "--run", "r\nx"), b"no run 'r\\nx' in the database"),
    (("failed", "--run", "r\nx"), b"no run 'r\\nx' in the database"),
]
QUOTED_PLANS = [
    ({"runs": [{"run_id": "a\nb"}]}, b'"a\\nb" is not a valid id'),
    ({"runs": [{"run_id": "r", "workspace": "ws", "tiers": [{"tier_id": "t", "name": "t", "phases": [
        {"phase_id": "p", "name": "n", "description": "d", "check_command": "true",
         "task_category": "implementation", "complexity": "low\nhigh",
         "scope": {"paths": ["out/"], "deliverables": ["out/a.py"]}}]}]}]},
     b'"low\\nhigh" is not one of'),
    ({"runs": [{"run_id": "r", "workspace": "ws", "tiers": [{"tier_id": "t", "name": "t", "phases": [
        {"phase_id": "p", "name": "n", "description": "d", "check_command": "true",
         "task_category": "implementation", "complexity": "low",
         "scope": {"paths": ["out/"], "deliverables": ["out/a\nb.py"]}}]}]}]},
     b'"out/a\\nb.py": control characters are not allowed'),
    ({"runs": [{"run_id": "r", "workspace": "ws", "tiers": [{"tier_id": "t", "name": "t", "phases": [
        {"phase_id": "p", "name": "n", "description": "d", "check_command": "true",
         "task_category": "implementation", "complexity": "low",
         "scope": {"paths": ["/etc\n"], "deliverables": ["out/a.py"]}}]}]}]},
     b'"/etc\\n" is absolute'),
]


def test_an_error_quoting_a_value_with_a_newline_shows_it_escaped_on_one_line(tmp):
    db = hostile_db(tmp)
    cases = [(args, want) for args, want in QUOTED_ERRORS]
    for i, (plan, want) in enumerate(QUOTED_PLANS):
        path = tmp / ("plan%d.json" % i)
        path.write_text(json.dumps(plan))
        cases.append((("run", "import", str(path)), want))
    for args, want in cases:
        rc, out, err = ctl_raw("--db", url(db), *args)
        assert rc != 0, (args, out, err)
        assert_terminal_safe(err)
        # The error is one line, and no line of it is an argument's or a plan's rest.
        lines = [line for line in err.splitlines() if not line.startswith(b"usage: ")]
        assert len(lines) == 1 and lines[0].startswith(b"autopack-ctl"), (args, err)
        if want is not None:
            assert want in err, (args, err)


# Ids as a user may type them or another program may store them: a newline, a carriage
# return, an escape sequence and a tab.
BROKEN_IDS = [b"a\nb", b"a\rb", b"a\x1b[31mb", b"a\tb"]
BROKEN_SHOWN = [b"a\\nb", b"a\\rb", b"a\\e[31mb", b"a\\tb"]


def test_an_error_quoting_an_id_is_one_line_with_the_ids_controls_escaped(tmp):
    """An error line quoted a run, phase or session id, an argument or a command as it
    was: a newline in it split the error over two lines (`no phase 'x' in run 'a` then
    `b'`), which a log or a script reading one line per failure takes for two."""
    db = hostile_db(tmp)
    for raw, shown in zip(BROKEN_IDS, BROKEN_SHOWN):
        cases = [
            (["retry", raw, b"x"], 1, 1, b"no phase 'x' in run '" + shown + b"'"),
            (["retry", b"telemetry-collection-v4", raw], 1, 1,
             b"no phase '" + shown + b"' in run 'telemetry-collection-v4'"),
            (["session", "show", raw], 1, 1, b'no drain session "' + shown + b'"'),
            (["failed", raw], 2, 2, b"unexpected argument '" + shown + b"'"),
            ([raw], 2, None, b"unknown command '" + shown + b"'"),
            (["session", raw], 2, None, b"unknown session command " + shown + b";"),
        ]
        for args, want_rc, lines, text in cases:
            rc, out, err = ctl_raw("--db", url(db), *args)
            assert rc == want_rc, (args, out, err)
            assert_terminal_safe(err)
            first = err.split(b"\n")[0]
            assert first.startswith(b"autopack-ctl") and text in first, (args, err)
            if lines is not None:
                assert err.count(b"\n") == lines, (args, err)


def test_supervisor_log_lines_show_a_newline_in_an_id_escaped(tmp):
    """A text log line showed a newline or a carriage return in the phase id it named as
    a space: phase 'p\\nx' read as a phase 'p x' another run may hold."""
    db = tmp / "ids.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    assert ctl("--db", url(db), "seed", "telemetry-run", "--workspace", "ws").rc == 0
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE phases SET phase_id = CAST(? AS TEXT) WHERE phase_index = 2",
                    (b"p\nx\ry",))
    con.close()
    p = subprocess.run([binpath("autopack-supervisor"), "--db", url(db), "--dry-run",
                        "--exit-when-drained", "--log-format", "text",
                        "--control", str(tmp / "c.sock")],
                       capture_output=True, timeout=120,
                       env=dict(os.environ, ANTHROPIC_API_KEY=NO_LLM_KEY))
    assert p.returncode == 0, p
    assert_terminal_safe(p.stderr)
    assert b"telemetry-collection-v4/p\\nx\\ry attempt " in p.stderr, p.stderr
    assert b"/p x y " not in p.stderr, p.stderr


# A flag's value as a user may paste it: a colour, an OSC window title ended by BEL, a
# newline, a C1 CSI and DEL, around valid UTF-8 (the supervisor refuses a value that is not
# UTF-8 without quoting it).
ARG = b"8\x1b[31m red\x1b]0;owned\x07\nX \xc2\x9b6n \x7f caf\xc3\xa9"
ARG_SHOWN = b"8\\e[31m red\\e]0;owned\\x07\\nX \\xc2\\x9b6n \\x7f caf\xc3\xa9"

USAGE_ERRORS = [
    ("autopack-supervisor", [b"--workers", ARG],
     b'autopack-supervisor: --workers: "' + ARG_SHOWN + b'" is not a whole number'),
    ("autopack-supervisor", [b"--log-level", ARG],
     b'autopack-supervisor: --log-level: "' + ARG_SHOWN + b'" is not error, warn'),
    ("autopack-supervisor", [b"--lease-timeout", ARG],
     b'autopack-supervisor: --lease-timeout: "' + ARG_SHOWN + b'" is not a number'),
    ("autopack-supervisor", [b"--" + ARG],
     b'autopack-supervisor: unknown or incomplete option "--' + ARG_SHOWN + b'"'),
    ("autopack-supervisor", [b"--db", b"sqlite:///x.db", ARG],
     b'autopack-supervisor: unexpected argument "' + ARG_SHOWN + b'"'),
    ("autopack-supervisor", [b"--db", b"sqlite:///x.db", b"--db", ARG],
     b"autopack-supervisor: --db given twice with different URLs ('sqlite:///x.db', '"
     + ARG_SHOWN + b"')"),
    ("autopack-worker", [b"--fd", ARG],
     b'autopack-worker: --fd: "' + ARG_SHOWN + b'" is not a descriptor number'),
    ("autopack-worker", [b"--event-window", ARG],
     b'autopack-worker: --event-window: "' + ARG_SHOWN + b'" is not a whole number'),
    ("autopack-worker", [ARG + b"\xff"],
     b'autopack-worker: unexpected argument "' + ARG_SHOWN + b'\\xff"'),
]


def test_a_bad_flag_of_the_supervisor_or_the_worker_is_shown_escaped_on_one_line(tmp):
    """autopack-supervisor and autopack-worker printed a bad flag's value as it was: its
    escape sequences reached the terminal (a colour, a window title) and its newline split
    the error over two lines, the second starting with the value's rest."""
    for prog, args, want in USAGE_ERRORS:
        p = subprocess.run([binpath(prog)] + args, capture_output=True, timeout=60,
                           env=dict(os.environ, ANTHROPIC_API_KEY=NO_LLM_KEY))
        assert p.returncode == 2, (prog, args, p)
        assert_terminal_safe(p.stderr)
        first = p.stderr.split(b"\n")[0]
        assert first.startswith(want), (prog, args, p.stderr)
        # What follows the error line is the program's own help, not the value's rest.
        rest = p.stderr.split(b"\n", 1)[1]
        assert b"X " not in rest and b"caf" not in rest, (prog, args, p.stderr)
