"""Python-Autopack databases drained for real against the LLM stand-in.

- The older hand-made backlog (70 runs, 456 phases) with the triage rules: --retry-failed
  over FAILED and QUEUED phases, the stand-in failing every run but the build1* ones; the
  drain's order and decisions are checked against the rules of docs/drain-rules.md
  replayed in Python over the attempt rows.
- The original's real shape (its verbatim schema): adopted, imported into, seeded, drained
  and retried, then read back by the original's own reader (tests/original_reader.py:
  python3-sqlalchemy), its text comparisons, a row it inserts, and the next drain.
- No phase ends COMPLETE without writing its deliverables."""
import json
import os
import sqlite3
import time

import legacy_db
from conftest import ctl
from e2e_helpers import Standin as E2EStandin, drain, import_plan, init_db, phase_spec, rows
from supervisor_helpers import (Standin, Supervisor, db_url, llm_supervisor, new_db, sql,
                                wait_for)


def test_adopted_backlog_drains_with_sample_first_triage_and_fingerprint_stops(tmp):
    path = os.path.join(str(tmp), "autopack_legacy.db")
    legacy_db.build(path)
    url = db_url(path)
    r = ctl("--db", url, "db", "adopt")
    assert r.rc == 0, r
    reasons = {(run, ph): why for run, ph, why in sql(
        url, "SELECT run_id, phase_id, last_failure_reason FROM phases")}
    eligible = {(run, ph) for run, ph in sql(
        url, "SELECT run_id, phase_id FROM phases WHERE state IN ('QUEUED', 'FAILED')")}

    llm = Standin(tmp, script={"markers": {"Run: build1": [{"mode": "normal"}] * 200},
                               "default": {"mode": "status", "status": 500,
                                           "message": "upstream exploded"}})
    try:
        sup = Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                         "--llm-retries", 0, "--workers", 1, "--retry-failed",
                         "--exit-when-drained", "--max-attempts-per-phase", 1,
                         "--max-fingerprint-repeats", 3, "--skip-run-prefix",
                         "research-system", env={"ANTHROPIC_API_KEY": "k"})
        # The drain rules stop and deprioritise runs with phases left: exit status 5.
        assert sup.wait(timeout=300) == 5, sup.stderr()
    finally:
        llm.stop()

    rows = sql(url, "SELECT a.run_id, a.phase_id, a.outcome, a.fingerprint, p.phase_index"
               " FROM attempts a JOIN phases p USING (run_id, phase_id)"
               " ORDER BY a.attempt_id")
    state = json.loads(sql(url, "SELECT state_json FROM drain_sessions")[0][0])
    assert rows and all((r, p) in eligible for r, p, _, _, _ in rows)
    assert not any(r.startswith("research-system") for r, _, _, _, _ in rows)

    # Unsampled runs first: the first attempts are one sample of every drained run...
    runs = {r for r, _, _, _, _ in rows}
    samples = rows[:len(runs)]
    assert len({r for r, _, _, _, _ in samples}) == len(runs)
    # ...taken in failure-reason bucket order, then phase index.
    keys = [(legacy_db.TRIAGE_ORDER.index(legacy_db.triage_bucket(reasons[(r, p)])), i)
            for r, p, _, _, i in samples]
    assert keys == sorted(keys)

    # Replay the rules over the attempts in order.
    seen, counts = set(), {}
    sampled, promising, deprioritized, stopped = [], [], [], []
    for r, p, outcome, fp, _ in rows:
        assert r not in deprioritized and r not in stopped, "%s ran after it was skipped" % r
        if r not in sampled:
            sampled.append(r)
            if outcome == "success" or fp is None or fp not in seen:
                promising.append(r)
            else:
                deprioritized.append(r)
        if fp is not None and outcome != "success":
            seen.add(fp)
            counts[fp] = counts.get(fp, 0) + 1
            if counts[fp] >= 3 and r not in stopped:
                stopped.append(r)
    assert state["sampled_runs"] == sampled
    assert state["promising_runs"] == promising
    assert state["deprioritized_runs"] == deprioritized
    assert state["stopped_runs"] == stopped
    assert state["fingerprint_counts"] == counts
    assert deprioritized and stopped

    # The build1 runs succeed and are drained to the end.
    for r in runs:
        if r.startswith("build1"):
            assert r in promising
            left = sql(url, "SELECT count(*) FROM phases WHERE run_id = ? AND state IN"
                       " ('QUEUED', 'FAILED')", r)[0][0]
            assert left == 0, r
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]


def test_a_phase_never_ends_complete_without_writing_its_deliverables(tmp):
    """An answer that writes none of the phase's deliverables (though they exist already)
    fails NO_DELIVERABLES_WRITTEN and writes nothing; a phase whose scope names none fails
    NO_DELIVERABLES without an LLM call; the others complete."""
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(os.path.join(ws, "out"))
    with open(os.path.join(ws, "out", "old.py"), "w") as f:
        f.write("# written long ago\n")
    url = init_db(str(tmp))
    import_plan(str(tmp), url, [("r1", ws, [
        phase_spec("p-none-written", deliverables=("out/old.py",)),
        phase_spec("p-fine", deliverables=("out/fine.py",))])])
    # A phase written by another program, whose scope names no deliverables.
    con = sqlite3.connect(url[len("sqlite:///"):])
    con.execute("INSERT INTO phases (phase_id, run_id, tier_id, phase_index, name, state,"
                " scope, created_at, updated_at) SELECT 'p-unscoped', 'r1', id, 5, 'n',"
                " 'QUEUED', '{\"paths\": [\"out/\"]}', created_at, created_at FROM tiers")
    con.commit()
    con.close()
    llm = E2EStandin(str(tmp), {"markers": {"p-none-written": [{"mode": "normal", "files": [
        {"path": "out/other.py", "mode": "create", "new_content": "x = 1\n"}]}]},
        "default": {"mode": "normal"}})
    try:
        drain(str(tmp), url, llm, "--max-attempts-per-phase", 1)
    finally:
        llm.stop()
    got = {r["phase_id"]: (r["state"], r["last_failure_reason"]) for r in rows(
        url, "SELECT phase_id, state, last_failure_reason FROM phases")}
    assert got == {"p-none-written": ("FAILED", "NO_DELIVERABLES_WRITTEN"),
                   "p-fine": ("COMPLETE", None),
                   "p-unscoped": ("FAILED", "NO_DELIVERABLES")}
    assert not os.path.exists(os.path.join(ws, "out", "other.py"))
    with open(os.path.join(ws, "out", "old.py")) as f:
        assert f.read() == "# written long ago\n"
    prompts = [r.get("marker") for r in llm.requests()]
    assert len(prompts) == 2
    assert rows(url, "SELECT count(*) AS n FROM llm_usage_events WHERE phase_id ="
                " 'p-unscoped'") == [{"n": 0}]
    [a] = rows(url, "SELECT message, zero_yield_reason FROM attempts WHERE phase_id ="
               " 'p-unscoped'")
    assert "names no deliverables" in a["message"]
    assert a["zero_yield_reason"] == "failed_before_llm"


def scope_deliverables(text):
    """The deliverables of a stored scope, read independently of autopack (the shapes of
    docs/adoption.md)."""
    if text is None:
        return []
    v = json.loads(text)
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return [] if v.endswith("/") else [v]
        if isinstance(v, str):
            return [] if v.endswith("/") else [v]
    if not isinstance(v, dict):
        return []
    d = v.get("deliverables") or []
    if isinstance(d, dict):
        d = [p for bucket in d.values() for p in bucket]
    return list(dict.fromkeys(d))


def progress(url, run_id):
    """The original's run-progress view: tiers done (COMPLETE or SKIPPED), and the current
    tier: the first other one by tier_index (None when all are done)."""
    tiers = sql(url, "SELECT tier_id, state FROM tiers WHERE run_id = ? ORDER BY tier_index",
                run_id)
    done = [t for t, s in tiers if s in ("COMPLETE", "SKIPPED")]
    rest = [t for t, s in tiers if s not in ("COMPLETE", "SKIPPED")]
    return len(done), (rest[0] if rest else None)


def test_the_originals_database_adopted_imported_seeded_drained_and_retried_reads_back(tmp):
    import original_reader
    path = os.path.join(str(tmp), "original.db")
    info = legacy_db.build_original(path)
    url = db_url(path)
    r = ctl("--db", url, "db", "adopt", "--json")
    assert r.rc == 0, r
    plan = os.path.join(str(tmp), "plan.json")
    with open(plan, "w") as f:
        json.dump({"runs": [{"run_id": "imported", "workspace": "ws-imported", "tiers": [
            {"tier_id": "T1", "name": "t", "phases": [
                {"phase_id": "p1", "name": "n", "scope": {
                    "paths": ["src/"], "deliverables": {"code": ["src/a.py"],
                                                        "tests": ["src/test_a.py"]}}},
                {"phase_id": "p2", "name": "n", "scope": "src/b.py"}]}]}]}, f)
    assert ctl("--db", url, "run", "import", plan).rc == 0
    assert ctl("--db", url, "seed", "telemetry-run").rc == 0
    unscoped = {(r_, p) for r_, p, _, k in info["phases"] if r_ == "unscoped-original"}

    def drain_once(*args):
        llm = Standin(tmp, name="llm%d" % len(args))
        try:
            sup = Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url",
                             llm.url, "--workers", 2, "--exit-when-drained",
                             "--max-attempts-per-phase", 1, "--max-fingerprint-repeats", 100,
                             *args, env={"ANTHROPIC_API_KEY": "k"}, name="sup%d" % len(args))
            assert sup.wait(timeout=300) == 0, sup.stderr()
        finally:
            llm.stop()
        return llm.requests()

    # The first drain: QUEUED phases (and those the original left in flight).
    requests = drain_once()
    states = dict(((r_, p), (s, why)) for r_, p, s, why in sql(
        url, "SELECT run_id, phase_id, state, last_failure_reason FROM phases"))
    for key in unscoped:
        assert states[key] == ("FAILED", "NO_DELIVERABLES"), key
    for r_, p, s, kind in info["phases"]:
        if s in ("QUEUED", "EXECUTING", "GATE", "CI_RUNNING") and (r_, p) not in unscoped:
            assert states[(r_, p)][0] == "COMPLETE", (r_, p, kind)
        if s in ("FAILED", "SKIPPED", "COMPLETE"):
            assert states[(r_, p)][0] == s, (r_, p)
    assert not any("unscoped-original" in json.dumps(q) for q in requests)
    # Tiers and runs follow their phases.
    assert sql(url, "SELECT tier_id, state FROM tiers WHERE run_id = 'build1-original'"
               " ORDER BY tier_index") == [("T1", "COMPLETE"), ("T2", "COMPLETE")]
    assert progress(url, "build1-original") == (2, None)
    assert progress(url, "stalled-original") == (1, None)
    assert progress(url, "unscoped-original") == (0, "T1")
    assert sql(url, "SELECT state FROM tiers WHERE run_id = 'unscoped-original'") == [
        ("FAILED",)]
    for run in ("build1-original", "stalled-original", "imported", "telemetry-collection-v4"):
        assert sql(url, "SELECT state FROM runs WHERE id = ?", run) == [("DONE_SUCCESS",)], run
        assert sql(url, "SELECT DISTINCT state FROM tiers WHERE run_id = ?", run) == [
            ("COMPLETE",)], run
    assert sql(url, "SELECT state FROM runs WHERE id = 'unscoped-original'") == [
        ("PHASE_EXECUTION",)]
    assert progress(url, "research-original") == (0, "T1")
    assert sql(url, "SELECT count(*) FROM llm_usage_events WHERE run_id ="
               " 'unscoped-original'") == [(0,)]
    cutoff = original_reader.utcnow()

    # The second drain retries the FAILED backlog.
    drain_once("--retry-failed")
    states = dict(((r_, p), s) for r_, p, s in sql(
        url, "SELECT run_id, phase_id, state FROM phases"))
    for r_, p, s, kind in info["phases"]:
        if r_ == "research-original" and s == "FAILED":
            assert states[(r_, p)] == "COMPLETE", (r_, p, kind)
    assert {k for k in unscoped if states[k] == "FAILED"} == unscoped
    assert sql(url, "SELECT count(*) FROM phases WHERE state NOT IN ('COMPLETE', 'FAILED',"
               " 'SKIPPED')") == [(0,)]
    assert progress(url, "research-original") == (1, None)
    assert sql(url, "SELECT state FROM runs WHERE id = 'research-original'") == [
        ("DONE_SUCCESS",)]

    # No phase autopack completed lacks a deliverable on disk.
    done = sql(url, "SELECT p.run_id, p.phase_id, p.scope, r.workspace FROM phases p"
               " JOIN runs r ON r.id = p.run_id WHERE p.state = 'COMPLETE' AND EXISTS"
               " (SELECT 1 FROM attempts a WHERE a.run_id = p.run_id AND"
               " a.phase_id = p.phase_id AND a.outcome = 'success')")
    assert len(done) > 20
    for r_, p, scope, ws in done:
        dels = scope_deliverables(scope)
        assert dels, (r_, p, scope)
        for d in dels:
            assert os.path.isfile(os.path.join(ws, d)), (r_, p, d)

    # The original reads every row, and its text comparisons give the right rows.
    original_reader.read_everything(path)
    second = {i for (i,) in sql(
        url, "SELECT u.id FROM llm_usage_events u JOIN attempts a ON a.attempt_id ="
        " u.attempt_id JOIN drain_sessions s ON s.session_id = a.session_id WHERE"
        " s.started_at = (SELECT max(started_at) FROM drain_sessions)")}
    assert second
    assert {row.id for row in original_reader.recent(path, "llm_usage_events", "created_at",
                                                     cutoff)} == second
    # A phase the original adds now is the newest row, and the next drain builds it.
    original_reader.insert_phase(path, "build1-original", "added-by-original",
                                 "src/added.py")
    [newest] = original_reader.newest(path, "phases", 1)
    assert (newest.run_id, newest.phase_id) == ("build1-original", "added-by-original")
    drain_once("--run-id", "build1-original")
    assert sql(url, "SELECT state FROM phases WHERE phase_id = 'added-by-original'") == [
        ("COMPLETE",)]
    assert progress(url, "build1-original") == (3, None)
    assert sql(url, "SELECT state FROM runs WHERE id = 'build1-original'") == [
        ("DONE_SUCCESS",)]
    ws = sql(url, "SELECT workspace FROM runs WHERE id = 'build1-original'")[0][0]
    assert os.path.isfile(os.path.join(ws, "src", "added.py"))
    original_reader.read_everything(path)
    assert sql(url, "PRAGMA integrity_check") == [("ok",)]
    assert sql(url, "PRAGMA foreign_key_check") == []


def test_a_phase_the_originals_orm_adds_under_a_running_sqlite_supervisor_is_drained_by_it(
        tmp):
    """On SQLite a running supervisor read its queue when it started, and again only for
    the runs autopack-ctl imported, retried or cancelled through it: a phase the original's
    ORM added meanwhile waited for its next start. It now sees another program's commit
    (PRAGMA data_version) within a second and drains what was queued, without a restart."""
    import original_reader
    url = new_db(tmp, runs=1, phases=1)
    path = url[len("sqlite:///"):]
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run")
    try:
        sup.wait_ready()
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL")
                 == [(1,)], timeout=60, what="the first phase's dry run")
        original_reader.insert_phase(path, "run-000", "p-original", "out/original.py")
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE phase_id = 'p-original'"
                             " AND ended_at IS NOT NULL") == [(1,)], timeout=30,
                 what="the phase the original added drained")
        assert ("another program queued 1 phase(s) in 1 run(s) of the database while this"
                " supervisor ran: they are scheduled") in sup.stderr(), sup.stderr()
        assert sup.ctl("stop").rc == 0
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()


# A tier and a QUEUED phase of a run as the original's ORM writes them
# (original_reader.insert_phase), through the sqlite3 command line.
SQLITE3_PHASE = """
INSERT INTO tiers (tier_id, run_id, tier_index, name, state, max_major_issues_tolerated,
    tokens_used, ci_runs_used, minor_issues_count, major_issues_count, cleanliness,
    created_at, updated_at)
VALUES ('T{tier}', '{run}', {tier}, 'added', 'PENDING', 0, 0, 0, 0, 0, 'clean',
    '{now}', '{now}');
INSERT INTO phases (phase_id, run_id, tier_id, phase_index, name, description, state,
    task_category, complexity, scope, builder_attempts, auditor_attempts, tokens_used,
    minor_issues_count, major_issues_count, issue_state, quality_blocked, retry_attempt,
    revision_epoch, escalation_level, created_at, updated_at)
VALUES ('{phase}', '{run}', last_insert_rowid(), 0, 'added by hand', 'Write {out}.',
    'QUEUED', 'implementation', 'low', '{{"paths": [], "deliverables": ["{out}"]}}', 0, 0,
    0, 0, 0, 'no_issues', 0, 0, 0, 0, '{now}', '{now}');
"""


def sqlite3_phase(path, run, tier, phase):
    """Insert phase `phase` (in a tier of its own, index `tier`) into run `run` of the
    database at `path` with the sqlite3 command line."""
    import subprocess
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    subprocess.run(["sqlite3", "-bail", "-cmd", ".timeout 30000", path,
                    SQLITE3_PHASE.format(now=now, run=run, tier=tier, phase=phase,
                                         out="out/%s.py" % phase)], check=True)


def test_a_phase_the_sqlite3_command_line_queues_under_a_supervisor_in_service_is_drained(
        tmp):
    """A supervisor in service (no --exit-when-drained), its queue drained and idle: a
    phase row the sqlite3 command line inserts in the original's shape is dispatched
    within seconds, and the supervisor goes on serving."""
    url = new_db(tmp, runs=1, phases=1)
    path = url[len("sqlite:///"):]
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run")
    try:
        sup.wait_ready()
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL")
                 == [(1,)], timeout=60, what="the queue drained")
        sqlite3_phase(path, "run-000", 9, "p-by-hand")
        wait_for(lambda: sql(url, "SELECT count(*) FROM attempts WHERE phase_id = 'p-by-hand'"
                             " AND ended_at IS NOT NULL") == [(1,)], timeout=30,
                 what="the phase inserted by hand drained")
        assert sup.proc.poll() is None, sup.stderr()
        assert "another program queued 1 phase(s) in 1 run(s)" in sup.stderr(), sup.stderr()
        assert sup.ctl("stop").rc == 0
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()


def test_phases_the_sqlite3_command_line_queues_while_a_supervisor_drains_run_once_each(
        tmp, llm):
    """Phases inserted by hand while a supervisor drains a backlog (its writer committing
    all the while) are scheduled while it drains and dispatched, once each, and no phase
    of the backlog twice: the queues gain what the database holds beyond them and lose
    nothing. Phase ids repeat across runs: one added to a run under the id of another
    run's queued phase is dispatched too."""
    runs, phases = 20, 5
    url = new_db(tmp, runs=runs, phases=phases, check="sleep 0.2")
    total = runs * phases + 3
    path = url[len("sqlite:///"):]
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    ended = ("SELECT count(*) FROM (SELECT DISTINCT run_id, phase_id FROM attempts"
             " WHERE ended_at IS NOT NULL)")
    try:
        sup.wait_ready()
        wait_for(lambda: sql(url, ended)[0][0] >= 4, timeout=60, what="the drain under way")
        sqlite3_phase(path, "run-%03d" % (runs - 1), 90, "p-hand")
        wait_for(lambda: "another program queued 1 phase(s) in 1 run(s)" in sup.stderr(),
                 timeout=30, what="the first phase inserted by hand scheduled")
        sqlite3_phase(path, "run-000", 90, "p-hand")
        sqlite3_phase(path, "run-001", 90, "p-hand-1")
        wait_for(lambda: "another program queued 2 phase(s) in 2 run(s)" in sup.stderr(),
                 timeout=30, what="the next phases inserted by hand scheduled")
        # Scheduled while the backlog drains, not once it is done.
        assert sql(url, ended)[0][0] < runs * phases
        wait_for(lambda: sql(url, ended)[0][0] == total, timeout=120,
                 what="the backlog and the phases inserted by hand drained")
        assert sql(url, "SELECT run_id, phase_id, count(*) FROM attempts GROUP BY 1, 2"
                   " HAVING count(*) > 1") == []
        assert sup.ctl("stop").rc == 0
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()


def test_a_phase_queued_by_hand_while_the_last_phase_runs_is_drained_before_the_exit(
        tmp, llm):
    """With --exit-when-drained, a phase the sqlite3 command line inserts while the drain's
    last phase runs is run before the supervisor exits: once its queues are drained, the
    supervisor looks at the database once more (PRAGMA data_version, then the phases QUEUED
    that it does not hold) instead of leaving what it finds for its next start, however
    short of the once-a-second look the phase came."""
    ws = os.path.join(str(tmp), "ws")
    started, go = os.path.join(ws, "started"), os.path.join(ws, "go")
    url = new_db(tmp, runs=1, phases=1, check="touch %s; while [ ! -e %s ]; do sleep 0.01;"
                 " done" % (started, go))
    path = url[len("sqlite:///"):]
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--exit-when-drained")
    try:
        wait_for(lambda: os.path.exists(started), timeout=60, what="the last phase's check")
        sqlite3_phase(path, "run-000", 9, "p-last")
        open(go, "w").close()
        assert sup.wait(timeout=120) == 0, sup.stderr()
    finally:
        sup.kill()
    assert "another program queued 1 phase(s) in 1 run(s)" in sup.stderr(), sup.stderr()
    outcomes = sql(url, "SELECT phase_id, outcome FROM attempts ORDER BY attempt_id")
    assert [o for _, o in outcomes] == ["success", "success"], outcomes
    assert outcomes[1][0] == "p-last", outcomes
    assert sql(url, "SELECT state FROM phases WHERE phase_id = 'p-last'") == [("COMPLETE",)]
