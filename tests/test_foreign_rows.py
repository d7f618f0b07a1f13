"""Rows another program wrote: SQLite's TEXT columns hold any bytes, and an operator's
older tools, a hand-run sqlite3 or a half-migrated Python system write what they like.
Every command still answers, and no row goes missing from what it shows."""
import json
import os
import sqlite3

import subprocess

import pytest

from conftest import DATA, NO_LLM_KEY, binpath, ctl

SAMPLES = os.path.join(DATA, "autopack-v2-telemetry-samples.tsv")
BAD = b"a\xffb"  # not UTF-8: shown as "a\ufffdb"


def url(path):
    return "sqlite:///" + str(path)


def seeded(path):
    """A database made at path and seeded with the telemetry run; path."""
    assert ctl("--db", url(path), "db", "init").rc == 0
    assert ctl("--db", url(path), "seed", "telemetry-run", "--workspace", "ws").rc == 0
    return path


def dry_drain(tmp, db):
    """A dry-run drain of db to its end; the finished process."""
    return subprocess.run([binpath("autopack-supervisor"), "--db", url(db), "--dry-run",
                           "--exit-when-drained", "--control", str(tmp / "c.sock")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANTHROPIC_API_KEY=NO_LLM_KEY))


@pytest.fixture
def db(tmp):
    p = seeded(tmp / "foreign.db")
    assert ctl("--db", url(p), "telemetry", "import", SAMPLES).rc == 0
    return p


def write_bad_text(p):
    """A failed phase whose attempt, session and telemetry hold text that is not UTF-8."""
    con = sqlite3.connect(str(p))
    run_id, phase_id = con.execute(
        "SELECT run_id, phase_id FROM phases ORDER BY id LIMIT 1").fetchone()
    con.execute("INSERT INTO drain_sessions (session_id, started_at, completed_at, "
                "supervisor_pid, stop_reason) VALUES ('s1', '2026-12-01 10:00:00', "
                "'2026-12-01 10:05:00', 1, CAST(? AS TEXT))", (BAD,))
    con.execute("INSERT INTO attempts (run_id, phase_id, attempt_number, session_id, "
                "started_at, ended_at, outcome, failure_reason, message) VALUES "
                "(?, ?, 1, 's1', '2026-12-01 10:00:00', '2026-12-01 10:01:00', 'failed', "
                "'CHECK_FAILED', CAST(? AS TEXT))", (run_id, phase_id, BAD))
    con.execute("UPDATE phases SET state = 'FAILED', last_failure_reason = 'CHECK_FAILED' "
                "WHERE run_id = ? AND phase_id = ?", (run_id, phase_id))
    con.execute("UPDATE token_estimation_v2_events SET category = CAST(? AS TEXT) "
                "WHERE event_id = (SELECT min(event_id) FROM token_estimation_v2_events)",
                (BAD,))
    con.execute("UPDATE meta SET created_by = CAST(? AS TEXT)", (BAD,))
    con.commit()
    con.close()
    return run_id, phase_id


def ctl_raw(*args):
    """autopack-ctl, whose text outputs show the bytes as they are; (rc, stdout, stderr)
    as bytes."""
    p = subprocess.run([binpath("autopack-ctl")] + list(args), capture_output=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def json_of(*args):
    rc, out, err = ctl_raw(*args)
    assert rc == 0, (args, out, err)
    return json.loads(out.decode("utf-8"))


def test_text_that_is_not_utf8_is_shown_in_json_and_no_row_is_dropped(db):
    """failed --json dropped the phase (count 0, exit 0) when its message was not UTF-8;
    session list, retry --dry-run and the database identity failed the whole command."""
    run_id, phase_id = write_bad_text(db)

    doc = json_of("--db", url(db), "failed", "--json")
    assert doc["failed"] == 1
    [group] = doc["groups"]
    assert group["count"] == 1, group
    [phase] = group["phases"]
    assert (phase["run_id"], phase["phase_id"]) == (run_id, phase_id)
    assert phase["message"] == "a\ufffdb"
    assert doc["database"]["created_by"] == "a\ufffdb"

    doc = json_of("--db", url(db), "retry", "--all-failed", "--dry-run", "--json")
    assert [(p["run_id"], p["phase_id"]) for p in doc["would_retry"]] == [(run_id, phase_id)]

    doc = json_of("--db", url(db), "session", "list", "--json")
    assert [(s["session_id"], s["stop_reason"]) for s in doc["sessions"]] == \
        [("s1", "a\ufffdb")]
    doc = json_of("--db", url(db), "session", "show", "s1", "--json")
    assert doc["session"]["stop_reason"] == "a\ufffdb"

    json_of("--db", url(db), "db", "check", "--json")
    doc = json_of("--db", url(db), "telemetry", "report", "--stratify", "--json")
    assert "a\ufffdb" in json.dumps(doc, ensure_ascii=False)

    # The text outputs show the same rows.
    rc, out, err = ctl_raw("--db", url(db), "failed")
    assert rc == 0 and ("%s/%s" % (run_id, phase_id)).encode() in out, (out, err)


def test_a_run_whose_id_is_not_utf8_is_kept_in_the_sessions_saved_state(tmp):
    """No job can carry such a run's phases (each fails INVALID_JOB, and the run is
    stopped for the repeated fingerprint); the session's saved state and end report left
    the stopped run out (stopped_runs [], left []) while counting its phases as left."""
    db = seeded(tmp / "run.db")
    con = sqlite3.connect(str(db))
    con.execute("PRAGMA foreign_keys = OFF")
    for table, col in (("runs", "id"), ("tiers", "run_id"), ("phases", "run_id")):
        con.execute("UPDATE %s SET %s = CAST(? AS TEXT) WHERE %s = 'telemetry-collection-v4'"
                    % (table, col, col), (BAD,))
    con.commit()
    con.close()
    p = subprocess.run([binpath("autopack-supervisor"), "--db", url(db), "--workers", "2",
                        "--exit-when-drained", "--control", str(tmp / "c.sock")],
                       capture_output=True, timeout=120,
                       env=dict(os.environ, ANTHROPIC_API_KEY=NO_LLM_KEY))
    assert p.returncode == 5, p.stderr.decode("utf-8", "replace")
    con = sqlite3.connect(str(db))
    con.text_factory = bytes
    [(state,)] = con.execute("SELECT state_json FROM drain_sessions").fetchall()
    con.close()
    state = json.loads(state.decode("utf-8"))
    assert state["stopped_runs"] == ["a\ufffdb"], state
    assert [(e["run_id"], e["phases"], e["cause"]) for e in state["end"]["left"]] == \
        [("a\ufffdb", 7, "policy")], state["end"]
    assert state["end"]["left_by"]["policy"] == 7


def test_an_attempt_id_at_the_top_of_the_range_is_refused_at_start_naming_it(tmp):
    """SQLite numbers each new attempt after the highest id ever used: after a row with
    id 2^63-1 every new attempt failed as "database or disk is full", and the supervisor
    gave up after 8 commits (exit 3), as if the disk were full."""
    db = seeded(tmp / "ids.db")
    con = sqlite3.connect(str(db))
    con.execute("INSERT INTO attempts (attempt_id, run_id, phase_id, attempt_number,"
                " started_at, ended_at, outcome) SELECT 9223372036854775807, run_id,"
                " phase_id, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:01', 'failed'"
                " FROM phases LIMIT 1")
    con.commit()
    con.close()
    p = dry_drain(tmp, db)
    assert p.returncode == 1, p.stderr
    assert "the attempts' ids are used up: an attempt has the id 9223372036854775807" \
        in p.stderr, p.stderr
    assert "database or disk is full" not in p.stderr.split("ids are used up")[0], p.stderr


def test_a_phase_whose_attempt_count_is_at_the_top_of_the_range_is_drained(tmp):
    """phases.builder_attempts at 2^63-1 (another program's row): the attempt after it is
    numbered 2^63-1 as well and the count stays an integer (attempt_number wrapped to
    -2^63, an overflow, the phase failed, and the count became the REAL 9.22e18)."""
    from supervisor_helpers import new_db, rogue_supervisor
    top = 9223372036854775807
    db_url = new_db(tmp, runs=1, phases=1)
    con = sqlite3.connect(db_url[len("sqlite:///"):])
    con.execute("UPDATE phases SET builder_attempts = ?", (top,))
    con.commit()
    con.close()
    sup = rogue_supervisor(tmp, db_url, "good", "--workers", 1, "--exit-when-drained")
    try:
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
    con = sqlite3.connect(db_url[len("sqlite:///"):])
    rows = con.execute("SELECT a.attempt_number, a.outcome, typeof(p.builder_attempts),"
                       " p.builder_attempts, p.state FROM attempts a JOIN phases p"
                       " USING (run_id, phase_id)").fetchall()
    con.close()
    assert rows == [(top, "success", "integer", top, "COMPLETE")], rows


def test_yields_near_the_largest_double_keep_their_median(tmp):
    """Results whose yield per minute another program set near the largest double (1e308):
    the median of an even count is theirs, not their sum halved, which was infinite
    (`session show` printed "median inf", and --json printed no JSON but "a text in it
    ... is not UTF-8", exit 2)."""
    db = seeded(tmp / "yields.db")
    assert dry_drain(tmp, db).returncode == 0
    con = sqlite3.connect(str(db))
    con.execute("UPDATE drain_session_results SET telemetry_yield_per_minute = 1e308")
    assert con.execute("SELECT count(*) FROM drain_session_results").fetchone()[0] % 2 == 0
    con.commit()
    con.close()
    r = ctl("--db", url(db), "session", "show", "--json")
    assert r.rc == 0, r
    yields = json.loads(r.out)["summary"]["yield_per_minute"]
    assert yields == {"median": 1e308, "p90": 1e308, "max": 1e308}, r.out
    r = ctl("--db", url(db), "session", "show")
    assert r.rc == 0 and "median inf" not in r.out, r


def attempt_outcomes(con):
    """Each attempt's (phase index, outcome, failure reason), by phase index."""
    return con.execute("SELECT p.phase_index, a.outcome, a.failure_reason FROM attempts a"
                       " JOIN phases p USING (run_id, phase_id) ORDER BY p.phase_index"
                       ).fetchall()


def test_a_phase_limit_below_one_written_by_another_program_sets_no_limit(tmp):
    """phases.max_builder_attempts below 1 (the original's column is a plain INTEGER) is
    no limit for the drain's budget, and the job carries it as none: the job refused it
    (job.p.maxa: integer -5 out of range) and the phase failed INVALID_JOB, no attempt
    made."""
    db = seeded(tmp / "limit.db")
    con = sqlite3.connect(str(db))
    con.execute("UPDATE phases SET max_builder_attempts = -5 WHERE phase_index = 0")
    con.execute("UPDATE phases SET max_builder_attempts = 0 WHERE phase_index = 1")
    con.commit()
    con.close()
    p = dry_drain(tmp, db)
    assert p.returncode == 0, p.stderr
    con = sqlite3.connect(str(db))
    rows = attempt_outcomes(con)
    con.close()
    assert [r[1:] for r in rows] == [("dry_run", None)] * 10, rows
    assert "maxa" not in p.stderr, p.stderr


def test_a_dry_run_leaves_the_state_of_a_phase_no_worker_can_be_sent(tmp):
    """A dry run leaves phase states as they are, also for a phase that cannot be sent
    to a worker (its scope names more deliverables than a job carries, as another program
    may store): its attempt ends failed INVALID_JOB, and the dry run made the phase FAILED
    for good, its tier and run with it."""
    db = seeded(tmp / "dry.db")
    con = sqlite3.connect(str(db))
    con.execute("UPDATE phases SET scope = ? WHERE phase_index = 1",
                (json.dumps({"deliverables": ["d/%d.py" % i for i in range(5000)]}),))
    con.commit()
    before = con.execute("SELECT (SELECT group_concat(state) FROM phases),"
                         " (SELECT group_concat(state) FROM tiers),"
                         " (SELECT group_concat(state) FROM runs)").fetchone()
    con.close()
    p = dry_drain(tmp, db)
    assert p.returncode == 0, p.stderr
    con = sqlite3.connect(str(db))
    rows = attempt_outcomes(con)
    after = con.execute("SELECT (SELECT group_concat(state) FROM phases),"
                        " (SELECT group_concat(state) FROM tiers),"
                        " (SELECT group_concat(state) FROM runs)").fetchone()
    con.close()
    assert rows[1] == (1, "failed", "INVALID_JOB"), rows
    assert [r[1] for r in rows[:1] + rows[2:]] == ["dry_run"] * 9, rows
    assert after == before, (before, after)


def test_a_drain_says_which_phases_it_left_for_a_missing_run_or_tier(tmp):
    """The original kept no foreign keys: a phase may name a tier or a run no row holds.
    The drain reads its queue through both, so it never dispatches such a phase, and its
    end said only that the phase was left, "not dispatched", every time."""
    db = seeded(tmp / "orphans.db")
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE phases SET tier_id = 999999 WHERE phase_index = 3")
        con.execute("UPDATE phases SET run_id = 'gone' WHERE phase_index = 5")
        (run_id,) = con.execute("SELECT id FROM runs").fetchone()
    con.close()
    p = dry_drain(tmp, db)
    assert p.returncode == 0, p.stderr
    con = sqlite3.connect(str(db))
    (state,) = con.execute("SELECT state_json FROM drain_sessions").fetchone()
    con.close()
    why = ("its tier or its run has no row (phases.tier_id or phases.run_id names none; "
           "another program's rows): no drain dispatches it")
    assert sorted((e["run_id"], e["phases"], e["why"])
                  for e in json.loads(state)["end"]["left"]) == [
        ("gone", 1, why), (run_id, 1, why)], state
    assert "[LEFT] gone: 1 phase(s) left: " + why in p.stderr, p.stderr


def test_a_drain_names_the_phases_it_left_because_an_id_is_not_text(tmp):
    """A phase_id or run_id another program stored as a blob is no text id: the scheduler
    keys phases by their text ids and never dispatches such a phase. The drain's end said
    only "not dispatched" for the first, and "its tier or its run has no row" for the
    second; it names the row, the column, its value and its type."""
    db = seeded(tmp / "blobids.db")
    con = sqlite3.connect(str(db))
    with con:
        (run_id,) = con.execute("SELECT id FROM runs").fetchone()
        (row3,) = con.execute("SELECT id FROM phases WHERE phase_index = 3").fetchone()
        (row5,) = con.execute("SELECT id FROM phases WHERE phase_index = 5").fetchone()
        con.execute("UPDATE phases SET phase_id = X'01' WHERE id = ?", (row3,))
        con.execute("UPDATE phases SET run_id = X'1b5b324a' WHERE id = ?", (row5,))
    con.close()
    p = dry_drain(tmp, db)
    assert p.returncode == 0, p.stderr
    con = sqlite3.connect(str(db))
    (state,) = con.execute("SELECT state_json FROM drain_sessions").fetchone()
    con.close()
    why = "phases.id %d: phases.%s %s is a %s, not a text id (another program's row): no " \
        "drain dispatches it"
    assert sorted((e["run_id"], e["phases"], e["why"])
                  for e in json.loads(state)["end"]["left"]) == sorted([
                      (run_id, 1, why % (row3, "phase_id", "X'01'", "blob")),
                      ("\x1b[2J", 1, why % (row5, "run_id", "X'1B5B324A'", "blob"))]), state
    assert ("[LEFT] %s: 1 phase(s) left: " % run_id + why % (row3, "phase_id", "X'01'", "blob")
            in p.stderr), p.stderr
    assert "\x1b" not in p.stderr and "[LEFT] \\e[2J: 1 phase(s) left: " in p.stderr, p.stderr
    assert "not dispatched" not in p.stderr and "has no row" not in p.stderr, p.stderr


def test_failed_lists_a_failed_phase_whose_run_has_no_row_naming_it(tmp):
    """The original kept no foreign keys: a FAILED phase may name a run no row holds.
    `failed` read the phases through their runs and left it out (0 failed, exit 0)."""
    db = seeded(tmp / "norun.db")
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE phases SET run_id = 'gone', state = 'FAILED',"
                    " last_failure_reason = 'CHECK_FAILED' WHERE phase_index = 5")
        (phase_id,) = con.execute(
            "SELECT phase_id FROM phases WHERE run_id = 'gone'").fetchone()
    con.close()
    doc = json_of("--db", url(db), "failed", "--json")
    assert doc["failed"] == 1, doc
    [group] = doc["groups"]
    [phase] = group["phases"]
    assert (phase["run_id"], phase["phase_id"], phase["state"]) == ("gone", phase_id, "FAILED")
    assert phase["run_missing"] is True and phase["reason"] == "CHECK_FAILED"
    assert json_of("--db", url(db), "failed", "--json", "--run", "gone")["failed"] == 1
    rc, out, err = ctl_raw("--db", url(db), "failed")
    assert rc == 0, (out, err)
    assert ("  gone/%s  FAILED  (run gone: no row of runs has this id)" % phase_id).encode() \
        in out, out
    # A retry leaves it: a drain never dispatches a phase without its run.
    doc = json_of("--db", url(db), "retry", "--all-failed", "--dry-run", "--json")
    assert doc["would_retry"] == [], doc
    rc, out, err = ctl_raw("--db", url(db), "retry", "gone", phase_id)
    assert rc == 1 and (b"phase gone/%s: no row of runs has the id gone" % phase_id.encode())\
        in err, (out, err)


@pytest.mark.parametrize("stored", ["text", "blob"])
def test_a_failure_reason_holding_a_nul_byte_is_shown_whole(tmp, stored):
    """last_failure_reason another program stored with a NUL byte in it (as text, or as a
    blob): failed and retry showed it cut at the NUL ("CHECK"), and grouped it with any
    other reason that began the same way. It is shown with the NUL as \\x00, the form
    retry --reason takes."""
    db = seeded(tmp / "nul.db")
    reason = b"CHECK\x00FAILED: rm -rf"
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE phases SET state = 'FAILED', last_failure_reason = %s"
                    " WHERE phase_index = 2" % ("CAST(? AS TEXT)" if stored == "text" else "?"),
                    (reason,))
        con.execute("UPDATE phases SET state = 'FAILED', last_failure_reason = 'CHECK'"
                    " WHERE phase_index = 4")
        assert con.execute("SELECT typeof(last_failure_reason), length(CAST("
                           "last_failure_reason AS BLOB)) FROM phases WHERE phase_index = 2"
                           ).fetchone() == (stored, len(reason))
    con.close()
    rc, out, err = ctl_raw("--db", url(db), "failed", "--json")
    assert rc == 0, (out, err)
    assert b'"reason": "CHECK\\u0000FAILED: rm -rf"' in out, out
    doc = json.loads(out.decode("utf-8"))
    assert sorted(g["reason"] for g in doc["groups"]) == ["CHECK", "CHECK\x00FAILED: rm -rf"]
    rc, out, err = ctl_raw("--db", url(db), "failed")
    assert rc == 0 and b"  reason CHECK\\x00FAILED: rm -rf, 1 phase, last " in out, out
    assert b"\x00" not in out
    rc, out, err = ctl_raw("--db", url(db), "retry", "--all-failed", "--dry-run")
    assert rc == 0 and b"(FAILED, CHECK\\x00FAILED: rm -rf)\n" in out, out
    doc = json_of("--db", url(db), "retry", "--all-failed", "--dry-run", "--json")
    assert sorted(p["reason"] for p in doc["would_retry"]) == ["CHECK", "CHECK\x00FAILED: rm -rf"]


def test_retry_takes_a_reason_holding_a_nul_byte_as_failed_shows_it(tmp):
    """No argument can hold a NUL byte, so retry --reason could not select a reason that
    held one, and failed printed no retry command for its class. failed now prints the
    command with the reason as it shows it (\\x00, quoted for the shell), and --reason takes
    that form, in any case; a reason that holds a backslash itself still matches as it
    is."""
    db = seeded(tmp / "nulretry.db")
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE phases SET state = 'FAILED', last_failure_reason = CAST(? AS TEXT)"
                    " WHERE phase_index = 2", (b"CHECK\x00FAILED: it's \x1b[1m",))
        con.execute("UPDATE phases SET state = 'FAILED', last_failure_reason = 'CHECK'"
                    " WHERE phase_index = 4")
        con.execute("UPDATE phases SET state = 'FAILED', last_failure_reason = ?"
                    " WHERE phase_index = 6", ("EXCEPTION: C:\\x00\\tmp",))
    con.close()
    rc, out, err = ctl_raw("--db", url(db), "failed")
    assert rc == 0, (out, err)
    hint = [line for line in out.decode().splitlines() if "retry --reason 'CHECK" in line]
    assert hint == ["  retry them: autopack-ctl retry --reason"
                    " 'CHECK\\x00FAILED: it'\\''s \\e[1m'"], out
    doc = json_of("--db", url(db), "retry", "--reason", "check\\x00failed: it's \\E[1M",
                  "--dry-run", "--json")
    assert [p["reason"] for p in doc["would_retry"]] == ["CHECK\x00FAILED: it's \x1b[1m"], doc
    # The printed command, run by the shell, queues that phase and no other.
    p = subprocess.run(["bash", "-c", hint[0].split(": ", 1)[1]], capture_output=True,
                       timeout=60, env=dict(os.environ, AUTOPACK_DB_URL=url(db),
                                            PATH=os.path.dirname(binpath("autopack-ctl"))
                                            + ":" + os.environ["PATH"]))
    assert p.returncode == 0 and b"retried 1 phase" in p.stdout, p
    con = sqlite3.connect(str(db))
    assert con.execute("SELECT phase_index, state FROM phases WHERE phase_index IN (2, 4, 6)"
                       " ORDER BY phase_index").fetchall() == \
        [(2, "QUEUED"), (4, "FAILED"), (6, "FAILED")]
    con.close()
    doc = json_of("--db", url(db), "retry", "--reason", "EXCEPTION: C:\\x00\\tmp", "--dry-run",
                  "--json")
    assert [p["reason"] for p in doc["would_retry"]] == ["EXCEPTION: C:\\x00\\tmp"], doc


@pytest.mark.parametrize("overhead,model,why", [
    ('[["implementation", "low", 0]]', None,
     "estimator row 0 (implementation/low): overhead 0 outside 1..1000000"),
    ('[["implementation", "low", 9223372036854775807]]', None,
     "estimator row 0 (implementation/low): overhead 9223372036854775807 outside 1..1000000"),
    ('[["", "low", 800]]', None, "estimator row 0: empty category or complexity"),
    ("[]", '{"model": "ridge_log", "factor": 0}', "fitted model:"),
])
def test_an_active_coefficient_set_a_worker_would_refuse_is_refused_at_start(
        tmp, overhead, model, why):
    """An active coefficient set another program wrote whose overhead table holds a value
    a worker refuses (an overhead of 0 or 2^63-1, an empty category): the supervisor
    started, sent it with every job, and each phase failed INVALID_JOB until its attempts
    were used up (exit 5). It is refused at the start, naming the set and the row, as a
    fitted model that does not parse is; no attempt is made."""
    db = seeded(tmp / "coefs.db")
    con = sqlite3.connect(str(db))
    con.execute("INSERT INTO estimator_coefficients (version, created_at, active,"
                " parent_version, overhead_json, model_json) VALUES (2,"
                " '2026-12-01 00:00:00.000000', 1, 1, ?, ?)", (overhead, model))
    con.commit()
    con.close()
    p = dry_drain(tmp, db)
    assert p.returncode == 1, p.stderr
    assert "estimator coefficient set 2: %s" % why in p.stderr, p.stderr
    assert "roll it back with autopack-ctl calibrate --rollback" in p.stderr, p.stderr
    con = sqlite3.connect(str(db))
    assert con.execute("SELECT count(*) FROM attempts").fetchone() == (0,)
    con.close()
