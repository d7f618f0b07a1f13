#!/usr/bin/python3
"""A database as the Python Autopack project made it (docs/adoption.md), for the tests of
`autopack-ctl db adopt`, and helpers for tests that drain such a database.

The DDL is what SQLAlchemy emits for the original's models on SQLite: `runs.id` a text
primary key, `tiers.id` an integer primary key next to the `tier_id` label, `phases.id` an
integer primary key next to `phase_id` (unique only with `run_id`) and `tier_id` pointing
at `tiers.id`; `llm_usage_events` with nullable token splits; `token_estimation_v2_events`
with its composite foreign key. `build()` fills it like the seeds' legacy backlog: 70 runs,
456 phases (207 FAILED, 107 QUEUED, 141 COMPLETE, 1 left EXECUTING), failure reasons from
every triage bucket, some bare-string scopes, usage events with and without a split, some
v2 events, and a few NULLs the original tolerated.

    /usr/bin/python3 tests/legacy_db.py autopack_legacy.db
"""
import datetime
import json
import os
import random
import sqlite3
import sys

SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                           "autopack-py-sqlite-schema.sql")

LEGACY_DDL = """
CREATE TABLE runs (
    id VARCHAR NOT NULL,
    state VARCHAR(32) NOT NULL DEFAULT 'RUN_CREATED',
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    started_at DATETIME,
    completed_at DATETIME,
    safety_profile VARCHAR DEFAULT 'normal',
    run_scope VARCHAR DEFAULT 'multi_tier',
    token_cap INTEGER DEFAULT 5000000,
    max_phases INTEGER DEFAULT 25,
    max_duration_minutes INTEGER DEFAULT 120,
    max_minor_issues_total INTEGER,
    tokens_used INTEGER DEFAULT 0,
    ci_runs_used INTEGER DEFAULT 0,
    minor_issues_count INTEGER DEFAULT 0,
    major_issues_count INTEGER DEFAULT 0,
    promotion_eligible_to_main VARCHAR DEFAULT 'false',
    debt_status VARCHAR,
    failure_reason TEXT,
    goal_anchor TEXT,
    PRIMARY KEY (id)
);
CREATE INDEX ix_runs_state_created_at ON runs (state, created_at);
CREATE TABLE tiers (
    id INTEGER NOT NULL,
    tier_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    tier_index INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    description TEXT,
    state VARCHAR(11) DEFAULT 'PENDING',
    token_cap INTEGER,
    ci_run_cap INTEGER,
    max_minor_issues_tolerated INTEGER,
    max_major_issues_tolerated INTEGER DEFAULT 0,
    tokens_used INTEGER DEFAULT 0,
    ci_runs_used INTEGER DEFAULT 0,
    minor_issues_count INTEGER DEFAULT 0,
    major_issues_count INTEGER DEFAULT 0,
    cleanliness VARCHAR DEFAULT 'clean',
    created_at DATETIME,
    updated_at DATETIME,
    started_at DATETIME,
    completed_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
CREATE INDEX ix_tiers_run_id ON tiers (run_id);
CREATE TABLE phases (
    id INTEGER NOT NULL,
    phase_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    tier_id INTEGER NOT NULL,
    phase_index INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    description TEXT,
    state VARCHAR(10) DEFAULT 'QUEUED',
    task_category VARCHAR,
    complexity VARCHAR,
    builder_mode VARCHAR,
    phase_type VARCHAR,
    scope JSON,
    deployment_config JSON,
    max_builder_attempts INTEGER,
    max_auditor_attempts INTEGER,
    incident_token_cap INTEGER,
    builder_attempts INTEGER DEFAULT 0,
    auditor_attempts INTEGER DEFAULT 0,
    tokens_used INTEGER DEFAULT 0,
    minor_issues_count INTEGER DEFAULT 0,
    major_issues_count INTEGER DEFAULT 0,
    issue_state VARCHAR DEFAULT 'no_issues',
    quality_level VARCHAR,
    quality_blocked BOOLEAN DEFAULT 0,
    retry_attempt INTEGER DEFAULT 0,
    revision_epoch INTEGER DEFAULT 0,
    escalation_level INTEGER DEFAULT 0,
    last_attempt_timestamp DATETIME,
    last_failure_reason VARCHAR,
    created_at DATETIME,
    updated_at DATETIME,
    started_at DATETIME,
    completed_at DATETIME,
    PRIMARY KEY (id),
    CONSTRAINT uq_phases_run_phase UNIQUE (run_id, phase_id),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE,
    FOREIGN KEY(tier_id) REFERENCES tiers (id)
);
CREATE INDEX ix_phases_run_id_state ON phases (run_id, state);
CREATE INDEX ix_phases_state_started_at ON phases (state, started_at);
CREATE TABLE llm_usage_events (
    id INTEGER NOT NULL,
    provider VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    run_id VARCHAR,
    phase_id VARCHAR,
    role VARCHAR NOT NULL,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    created_at DATETIME,
    client_id VARCHAR,
    is_doctor_call BOOLEAN,
    doctor_model VARCHAR,
    doctor_action VARCHAR,
    phase_type VARCHAR,
    intent VARCHAR,
    PRIMARY KEY (id)
);
CREATE INDEX ix_llm_usage_events_client_created ON llm_usage_events (client_id, created_at);
CREATE TABLE token_estimation_v2_events (
    event_id INTEGER NOT NULL,
    run_id VARCHAR NOT NULL,
    phase_id VARCHAR NOT NULL,
    timestamp DATETIME NOT NULL,
    created_at DATETIME NOT NULL,
    category VARCHAR NOT NULL,
    complexity VARCHAR NOT NULL,
    deliverable_count INTEGER NOT NULL,
    deliverables_json TEXT NOT NULL,
    predicted_output_tokens INTEGER NOT NULL,
    actual_output_tokens INTEGER NOT NULL,
    selected_budget INTEGER NOT NULL,
    actual_max_tokens INTEGER,
    success BOOLEAN NOT NULL,
    truncated BOOLEAN NOT NULL,
    is_truncated_output BOOLEAN NOT NULL,
    stop_reason VARCHAR,
    model VARCHAR NOT NULL,
    smape_percent FLOAT,
    waste_ratio FLOAT,
    underestimated BOOLEAN,
    api_reference_required BOOLEAN,
    examples_required BOOLEAN,
    research_required BOOLEAN,
    usage_guide_required BOOLEAN,
    context_quality VARCHAR,
    is_sot_file BOOLEAN,
    sot_file_name VARCHAR,
    sot_entry_count_hint INTEGER,
    PRIMARY KEY (event_id),
    FOREIGN KEY(run_id, phase_id) REFERENCES phases (run_id, phase_id) ON DELETE CASCADE,
    FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE INDEX ix_v2_events_run_category ON token_estimation_v2_events (run_id, category);
CREATE INDEX ix_v2_events_category_timestamp ON token_estimation_v2_events (category, timestamp);
CREATE TABLE phase_outcome_events (
    id INTEGER NOT NULL,
    run_id VARCHAR NOT NULL,
    phase_id VARCHAR NOT NULL,
    phase_type VARCHAR,
    phase_outcome VARCHAR NOT NULL,
    stop_reason VARCHAR,
    stuck_decision_rationale TEXT,
    tokens_used INTEGER,
    duration_seconds FLOAT,
    model_used VARCHAR,
    timestamp DATETIME NOT NULL,
    context_injected BOOLEAN,
    context_item_count INTEGER,
    PRIMARY KEY (id)
);
CREATE VIEW v_token_estimation_validation AS
SELECT category, complexity, deliverable_count, count(*) AS sample_count,
       avg(smape_percent) AS avg_smape,
       avg(CASE WHEN underestimated THEN 1.0 ELSE 0.0 END) AS underestimation_rate,
       avg(CASE WHEN truncated THEN 1.0 ELSE 0.0 END) AS truncation_rate
FROM token_estimation_v2_events GROUP BY category, complexity, deliverable_count;
"""

# The original's tables and their columns, in DDL order: what the Python side reads.
ORIGINAL_TABLES = ("runs", "tiers", "phases", "llm_usage_events",
                   "token_estimation_v2_events", "phase_outcome_events")

STATE_COUNTS = {"FAILED": 207, "QUEUED": 107, "COMPLETE": 141, "EXECUTING": 1}
N_RUNS = 70

# last_failure_reason values of the original (docs/adoption.md), with their bucket
# (docs/drain-rules.md).
FAILURE_REASONS = [
    None, "FAILED", "PATCH_FAILED", "CI_FAILED", "DELIVERABLES_VALIDATION_FAILED",
    "TOKEN_ESCALATION", "EXCEPTION: ImportError", "EXCEPTION: TimeoutError",
    "MAX_ATTEMPTS_EXHAUSTED: ValidationError", "DOCTOR_SKIP: blocked",
    "ERROR collecting tests/research/test_gatherers.py - ImportError while importing "
    "test module", "Missing deliverables: src/autopack/research/gatherer.py",
    "no-op patch: the diff changed nothing", "manifest violation: path outside scope",
    "Phase drain timed out after 30 minutes (see logs)",
]

RUN_PREFIXES = ("research-system-v", "build1", "fileorg-country-", "telemetry-collection-v",
                "autopack-onephase-", "lovable-p")
PROVIDERS = {"claude-sonnet-4-5": "anthropic", "gpt-4o": "openai",
             "gemini-2.5-pro": "google"}
CATEGORIES = ("implementation", "tests", "docs", "refactoring", "configuration", None)
COMPLEXITIES = ("low", "medium", "high", None)


def triage_bucket(reason):
    """The failure-reason bucket (docs/drain-rules.md) of a last_failure_reason."""
    r = (reason or "").lower()
    if not r:
        return "unknown"
    if "collection" in r or "import" in r:
        return "collection"
    if "deliverable" in r or "missing" in r:
        return "deliverable"
    if "patch" in r or "no-op" in r or "manifest" in r:
        return "patch"
    if "timeout" in r or "timed out" in r:
        return "timeout"
    return "other"


TRIAGE_ORDER = ("unknown", "collection", "deliverable", "patch", "other", "timeout")


def _stamp(rng, day=None):
    d = day if day is not None else rng.randint(1, 28)
    return "2025-12-%02d %02d:%02d:%02d.%06d" % (d, rng.randint(0, 23), rng.randint(0, 59),
                                               rng.randint(0, 59), rng.randint(0, 999999))


def _scope(rng, run_n, k, kind):
    if kind == "bare":
        return "src/autopack/research/gatherer_%d_%d.py" % (run_n, k)
    if kind == "json_string":
        return json.dumps("docs/guides/guide_%d_%d.md" % (run_n, k))
    if kind == "null":
        return None
    base = "src/mod%d" % run_n
    return json.dumps({"paths": [base + "/"],
                       "read_only_context": ["README.md"] if rng.random() < 0.3 else [],
                       "deliverables": ["%s/part_%d.py" % (base, k)]})


def build(path, seed=1):
    """Create the legacy database at `path`; return what it holds (counts and keys)."""
    rng = random.Random(seed)
    con = sqlite3.connect(path)
    con.executescript(LEGACY_DDL)
    states = [s for s, n in STATE_COUNTS.items() for _ in range(n)]
    rng.shuffle(states)
    n_phases = len(states)
    per_run = [n_phases // N_RUNS] * N_RUNS
    for i in range(n_phases - sum(per_run)):
        per_run[i] += 1
    rng.shuffle(per_run)
    scope_kinds = ["bare"] * 6 + ["json_string"] * 3 + ["null"] * 4
    scope_kinds += ["object"] * (n_phases - len(scope_kinds))
    rng.shuffle(scope_kinds)
    info = {"runs": [], "phases": [], "bare_scopes": 9}
    phase_no = 0
    tier_pk = 0
    for r in range(N_RUNS):
        run_id = "%s%02d" % (RUN_PREFIXES[r % len(RUN_PREFIXES)], r)
        created = _stamp(rng)
        con.execute("INSERT INTO runs (id, state, created_at, updated_at, safety_profile,"
                    " run_scope, token_cap, max_phases, max_duration_minutes, tokens_used,"
                    " ci_runs_used, minor_issues_count, major_issues_count,"
                    " promotion_eligible_to_main, goal_anchor)"
                    " VALUES (?, ?, ?, ?, 'normal', 'multi_tier', 5000000, 25, 120, ?, 0, 0,"
                    " 0, 'false', ?)",
                    (run_id, rng.choice(["PHASE_EXECUTION", "DONE_FAILED_REQUIRES_HUMAN_REVIEW",
                                         "RUN_CREATED", "QUEUED", "DONE_SUCCESS"]),
                     created, created, rng.randint(0, 400000), "goal of %s" % run_id))
        info["runs"].append(run_id)
        n_tiers = min(per_run[r], rng.randint(1, 3))
        tier_pks = []
        for t in range(n_tiers):
            tier_pk += 1
            stamp = None if tier_pk % 37 == 0 else created
            con.execute("INSERT INTO tiers (id, tier_id, run_id, tier_index, name, state,"
                        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?)",
                        (tier_pk, "T%d" % (t + 1), run_id, t, "Tier %d" % (t + 1), stamp,
                         stamp))
            tier_pks.append(tier_pk)
        for k in range(per_run[r]):
            state = states[phase_no]
            kind = scope_kinds[phase_no]
            phase_no += 1
            tier = tier_pks[min(k * n_tiers // per_run[r], n_tiers - 1)]
            phase_id = "phase-%d" % (k + 1)
            reason = None
            if state == "FAILED":
                reason = FAILURE_REASONS[phase_no % len(FAILURE_REASONS)]
            elif state == "EXECUTING":
                reason = "CI_FAILED"
            elif state == "QUEUED" and phase_no % 5 == 0:
                reason = "PATCH_FAILED"
            stamp = None if phase_no % 38 == 0 else _stamp(rng)
            attempts = None if phase_no % 150 == 0 else rng.randint(0, 5)
            con.execute("INSERT INTO phases (phase_id, run_id, tier_id, phase_index, name,"
                        " description, state, task_category, complexity, scope,"
                        " max_builder_attempts, builder_attempts, retry_attempt,"
                        " last_failure_reason, created_at, updated_at, started_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (phase_id, run_id, tier, k, "Phase %d of %s" % (k + 1, run_id),
                         "Implement part %d of %s." % (k + 1, run_id), state,
                         rng.choice(CATEGORIES), rng.choice(COMPLEXITIES),
                         _scope(rng, r, k, kind), rng.choice([None, 3, 5]), attempts,
                         rng.randint(0, 2), reason, stamp, stamp,
                         None if state == "QUEUED" else stamp))
            info["phases"].append((run_id, phase_id, state, reason))
    _usage(con, rng, info)
    _v2(con, rng, info)
    con.execute("INSERT INTO phase_outcome_events (run_id, phase_id, phase_type,"
                " phase_outcome, stop_reason, tokens_used, duration_seconds, model_used,"
                " timestamp) VALUES (?, 'phase-1', 'implementation', 'FAILED', 'max_attempts',"
                " 12000, 310.5, 'claude-sonnet-4-5', ?)", (info["runs"][0], _stamp(rng)))
    con.commit()
    con.close()
    return info


def _usage(con, rng, info):
    """Usage rows: builder/auditor/doctor calls, some with no token split, some global."""
    n_split = n_nosplit = 0
    for i in range(300):
        run_id, phase_id, _, _ = rng.choice(info["phases"])
        if i % 25 == 0:
            run_id = phase_id = None
        total = rng.randint(500, 40000)
        if i % 3 == 0:
            prompt = completion = None
            n_nosplit += 1
        else:
            prompt = rng.randint(0, total)
            completion = total - prompt
            n_split += 1
        model = rng.choice(sorted(PROVIDERS))
        provider = PROVIDERS[model]
        con.execute("INSERT INTO llm_usage_events (provider, model, run_id, phase_id, role,"
                    " total_tokens, prompt_tokens, completion_tokens, created_at,"
                    " is_doctor_call) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (provider, model, run_id, phase_id,
                     rng.choice(["builder", "auditor", "doctor", "agent:planner"]), total,
                     prompt, completion, _stamp(rng), 1 if i % 7 == 0 else 0))
    info["usage_events"] = n_split + n_nosplit
    info["usage_without_split"] = n_nosplit


def _v2(con, rng, info):
    """v2 events for some COMPLETE phases, as the original recorded them."""
    done = [p for p in info["phases"] if p[2] == "COMPLETE"][:60]
    for run_id, phase_id, _, _ in done:
        pred = rng.randint(800, 12000)
        actual = rng.randint(0, 14000)
        both = actual > 0 and pred > 0
        con.execute("INSERT INTO token_estimation_v2_events (run_id, phase_id, timestamp,"
                    " created_at, category, complexity, deliverable_count, deliverables_json,"
                    " predicted_output_tokens, actual_output_tokens, selected_budget,"
                    " actual_max_tokens, success, truncated, is_truncated_output,"
                    " stop_reason, model, smape_percent, waste_ratio, underestimated)"
                    " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, phase_id, _stamp(rng), _stamp(rng),
                     rng.choice(["implementation", "tests", "docs"]),
                     rng.choice(["low", "medium", "high"]), json.dumps(["src/x.py"]), pred,
                     actual, 8192, rng.choice([None, 16384]), 1, actual > 12000,
                     actual > 12000, "end_turn",
                     "claude-sonnet-4-5",
                     200.0 * abs(actual - pred) / (actual + pred) if both else None,
                     pred / actual if both else None, (actual > pred) if both else None))
    info["v2_events"] = len(done)


def columns(con, table):
    return [r[1] for r in con.execute("PRAGMA table_info(%s)" % table)]


def dump(path, original=None):
    """Every row of the original tables, original columns only, keyed by table: what the
    Python side reads. `original` (a previous dump's column lists) picks the columns."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        out = {}
        for t in ORIGINAL_TABLES:
            cols = original[t]["columns"] if original else columns(con, t)
            rows = con.execute("SELECT %s FROM %s ORDER BY rowid" % (", ".join(cols), t))
            out[t] = {"columns": cols, "rows": [list(r) for r in rows]}
        return out
    finally:
        con.close()


def expected_after_adopt(before, adopted_at):
    """The dump `before` with the documented changes of an adoption applied: phases left
    EXECUTING are QUEUED (updated_at = adoption time), NULL created_at/updated_at in
    runs, tiers and phases are the adoption time, NULL counters their default 0."""
    out = json.loads(json.dumps(before))
    for t in ("runs", "tiers", "phases"):
        cols = out[t]["columns"]
        for row in out[t]["rows"]:
            for c in ("created_at", "updated_at"):
                if c in cols and row[cols.index(c)] is None:
                    row[cols.index(c)] = adopted_at
            if t == "phases":
                for c in ("builder_attempts", "tokens_used", "retry_attempt"):
                    if row[cols.index(c)] is None:
                        row[cols.index(c)] = 0
                if row[cols.index("state")] == "EXECUTING":
                    row[cols.index("state")] = "QUEUED"
                    row[cols.index("updated_at")] = adopted_at
    return out


def failed_backlog(path):
    """The FAILED phases of a (legacy or adopted) database as (run_id, phase_id,
    phase_index, last_failure_reason, bucket), in the original controller's triage order
    within one group: bucket order, then phase_index, then database order."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        rows = con.execute("SELECT run_id, phase_id, phase_index, last_failure_reason"
                           " FROM phases WHERE state = 'FAILED' ORDER BY id").fetchall()
    finally:
        con.close()
    out = [(r, p, i, why, triage_bucket(why)) for r, p, i, why in rows]
    return sorted(out, key=lambda x: (TRIAGE_ORDER.index(x[4]), x[2]))


# --- the original's real shape -------------------------------------------------------------

RUN_STATES = ("QUEUED", "PLAN_BOOTSTRAP", "RUN_CREATED", "PHASE_QUEUEING", "PHASE_EXECUTION",
              "GATE", "CI_RUNNING", "SNAPSHOT_CREATED", "DONE_SUCCESS",
              "DONE_FAILED_BUDGET_EXHAUSTED", "DONE_FAILED_POLICY_VIOLATION",
              "DONE_FAILED_REQUIRES_HUMAN_REVIEW", "DONE_FAILED_ENVIRONMENT")
TIER_STATES = ("PENDING", "IN_PROGRESS", "COMPLETE", "FAILED", "SKIPPED")
PHASE_STATES = ("QUEUED", "EXECUTING", "GATE", "CI_RUNNING", "COMPLETE", "FAILED", "SKIPPED")


def stamp(dt):
    """A datetime as the original stores it: UTC, a space, six fractional digits."""
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def original_scope(kind, base, n):
    """A scope of shape `kind` for a phase writing under `base`."""
    one = "%s/part_%d.py" % (base, n)
    if kind == "object":
        return json.dumps({"paths": [base + "/"],
                           "read_only_context": ["README.md",
                                                 {"path": "docs/style.md",
                                                  "reason": "house style"}],
                           "deliverables": [one]})
    if kind == "buckets":
        return json.dumps({"paths": [base + "/", "tests/"],
                           "deliverables": {"code": [one],
                                            "tests": ["tests/test_part_%d.py" % n],
                                            "docs": []}})
    if kind == "no_deliverables":
        return json.dumps({"paths": [base + "/"]})
    if kind == "encoded":
        return json.dumps(json.dumps({"paths": [base + "/"], "deliverables": [one]}))
    if kind == "encoded_buckets":
        return json.dumps(json.dumps({"paths": [base + "/"],
                                      "deliverables": {"code": [one]}}))
    if kind == "path":
        return json.dumps("docs/%s_%d.md" % (base.replace("/", "_"), n))
    if kind == "directory":
        return json.dumps("docs/")
    if kind == "uninterpretable":
        return json.dumps([one])
    if kind == "null":
        return None
    raise ValueError(kind)


# (run id, run state, [(tier state, [(phase state, scope kind, last_failure_reason)])])
ORIGINAL_RUNS = [
    ("build1-original", "PHASE_EXECUTION", [
        ("COMPLETE", [("COMPLETE", "object", None), ("COMPLETE", "buckets", None)]),
        ("IN_PROGRESS", [("QUEUED", "object", None), ("QUEUED", "encoded", None),
                         ("QUEUED", "path", None), ("QUEUED", "buckets", None)]),
    ]),
    ("research-original", "DONE_FAILED_REQUIRES_HUMAN_REVIEW", [
        ("FAILED", [("FAILED", "object", "PATCH_FAILED"),
                    ("FAILED", "encoded_buckets", "CI_FAILED"),
                    ("FAILED", "path", "EXCEPTION: ImportError"),
                    ("SKIPPED", "object", None)]),
    ]),
    ("stalled-original", "GATE", [
        ("IN_PROGRESS", [("EXECUTING", "object", None), ("GATE", "buckets", None),
                         ("CI_RUNNING", "encoded", "CI_FAILED")]),
    ]),
    ("unscoped-original", "RUN_CREATED", [
        ("PENDING", [("QUEUED", "no_deliverables", None), ("QUEUED", "null", None),
                     ("QUEUED", "uninterpretable", None), ("QUEUED", "directory", None)]),
    ]),
]
for _i, _state in enumerate(s for s in RUN_STATES
                            if s not in ("PHASE_EXECUTION", "DONE_FAILED_REQUIRES_HUMAN_REVIEW",
                                         "GATE", "RUN_CREATED")):
    ORIGINAL_RUNS.append(("state-%s" % _state.lower().replace("_", "-"), _state, [
        (TIER_STATES[_i % len(TIER_STATES)],
         [("COMPLETE" if _i % 2 else "SKIPPED", "object", None)])]))


def _insert(con, table, row):
    cols = ", ".join('"%s"' % c for c in row)
    con.execute("INSERT INTO %s (%s) VALUES (%s)" % (table, cols, ", ".join("?" * len(row))),
                list(row.values()))


def original_run(run_id, state, at):
    """A runs row with every value the original's model supplies."""
    return {"id": run_id, "state": state, "created_at": stamp(at), "updated_at": stamp(at),
            "started_at": None if state in ("QUEUED", "RUN_CREATED") else stamp(at),
            "safety_profile": "normal", "run_scope": "multi_tier", "token_cap": 5000000,
            "max_phases": 25, "max_duration_minutes": 120, "tokens_used": 0,
            "ci_runs_used": 0, "minor_issues_count": 0, "major_issues_count": 0,
            "promotion_eligible_to_main": "false", "goal_anchor": "goal of " + run_id}


def original_tier(run_id, index, state, at):
    """A tiers row with every value the original's model supplies."""
    return {"tier_id": "T%d" % (index + 1), "run_id": run_id, "tier_index": index,
            "name": "Tier %d" % (index + 1), "description": None, "state": state,
            "max_major_issues_tolerated": 0, "tokens_used": 0, "ci_runs_used": 0,
            "minor_issues_count": 0, "major_issues_count": 0, "cleanliness": "clean",
            "created_at": stamp(at), "updated_at": stamp(at)}


def original_phase(run_id, phase_id, tier_pk, index, state, scope, at, reason=None):
    """A phases row with every value the original's model supplies."""
    return {"phase_id": phase_id, "run_id": run_id, "tier_id": tier_pk, "phase_index": index,
            "name": "%s of %s" % (phase_id, run_id),
            "description": "Implement %s of %s." % (phase_id, run_id), "state": state,
            "task_category": "implementation", "complexity": "low", "scope": scope,
            "builder_attempts": 0 if state == "QUEUED" else 1, "auditor_attempts": 0,
            "tokens_used": 0, "minor_issues_count": 0, "major_issues_count": 0,
            "issue_state": "no_issues", "quality_blocked": 0, "retry_attempt": 0,
            "revision_epoch": 0, "escalation_level": 0, "last_failure_reason": reason,
            "created_at": stamp(at), "updated_at": stamp(at),
            "started_at": None if state == "QUEUED" else stamp(at),
            "completed_at": stamp(at) if state in ("COMPLETE", "FAILED") else None}


# The NOT NULL columns without an SQL default in the original's schema that autopack writes
# into, with the values the original's Python models write (docs/adoption.md).
ORIGINAL_PYTHON_VALUES = {
    ("runs", "state"): "'RUN_CREATED'", ("runs", "created_at"): None,
    ("runs", "updated_at"): None, ("runs", "safety_profile"): "'normal'",
    ("runs", "run_scope"): "'multi_tier'", ("runs", "token_cap"): "5000000",
    ("runs", "max_phases"): "25", ("runs", "max_duration_minutes"): "120",
    ("runs", "tokens_used"): "0", ("runs", "ci_runs_used"): "0",
    ("runs", "minor_issues_count"): "0", ("runs", "major_issues_count"): "0",
    ("runs", "promotion_eligible_to_main"): "'false'",
    ("tiers", "state"): "'PENDING'", ("tiers", "max_major_issues_tolerated"): "0",
    ("tiers", "tokens_used"): "0", ("tiers", "ci_runs_used"): "0",
    ("tiers", "minor_issues_count"): "0", ("tiers", "major_issues_count"): "0",
    ("tiers", "cleanliness"): "'clean'", ("tiers", "created_at"): None,
    ("tiers", "updated_at"): None,
    ("phases", "state"): "'QUEUED'", ("phases", "builder_attempts"): "0",
    ("phases", "auditor_attempts"): "0", ("phases", "tokens_used"): "0",
    ("phases", "minor_issues_count"): "0", ("phases", "major_issues_count"): "0",
    ("phases", "issue_state"): "'no_issues'", ("phases", "quality_blocked"): "0",
    ("phases", "retry_attempt"): "0", ("phases", "revision_epoch"): "0",
    ("phases", "escalation_level"): "0", ("phases", "created_at"): None,
    ("phases", "updated_at"): None,
    ("llm_usage_events", "total_tokens"): "0", ("llm_usage_events", "is_doctor_call"): "0",
    ("llm_usage_events", "created_at"): None,
    ("token_estimation_v2_events", "truncated"): "0",
    ("token_estimation_v2_events", "is_truncated_output"): "0",
    ("token_estimation_v2_events", "deliverables_json"): "'[]'",
    ("token_estimation_v2_events", "timestamp"): None,
    ("token_estimation_v2_events", "created_at"): None,
}


def build_original(path, at=None):
    """Create a database at `path` from the original's verbatim schema, filled as its ORM
    fills it; return {"runs": [...], "phases": [(run, phase, state, scope kind)], ...}.
    Timestamps are a few minutes before `at` (default now), all on its day where possible."""
    at = at or utcnow()
    with open(SCHEMA_FILE) as f:
        ddl = f.read()
    con = sqlite3.connect(path)
    con.executescript(ddl)
    info = {"runs": [], "phases": [], "tiers": 0}
    minute = 0

    def when():
        nonlocal minute
        minute += 1
        return max(at - datetime.timedelta(seconds=600 - minute),
                   at.replace(hour=0, minute=0, second=0, microsecond=0))

    for run_id, run_state, tiers in ORIGINAL_RUNS:
        _insert(con, "runs", original_run(run_id, run_state, when()))
        info["runs"].append(run_id)
        for t, (tier_state, phases) in enumerate(tiers):
            _insert(con, "tiers", original_tier(run_id, t, tier_state, when()))
            tier_pk = con.execute("SELECT last_insert_rowid()").fetchone()[0]
            info["tiers"] += 1
            for k, (state, kind, reason) in enumerate(phases):
                phase_id = "t%d-p%d" % (t + 1, k + 1)
                _insert(con, "phases", original_phase(
                    run_id, phase_id, tier_pk, k, state,
                    original_scope(kind, "src/%s" % run_id.split("-")[0],
                                   len(info["phases"])),
                    when(), reason))
                info["phases"].append((run_id, phase_id, state, kind))
    for i, (run_id, phase_id, _, _) in enumerate(info["phases"][:6]):
        _insert(con, "llm_usage_events", {
            "provider": "anthropic", "model": "claude-sonnet-4-5", "run_id": run_id,
            "phase_id": phase_id, "role": "doctor" if i == 5 else "builder",
            "total_tokens": 1000 + i, "prompt_tokens": None if i == 4 else 700,
            "completion_tokens": None if i == 4 else 300 + i, "created_at": stamp(when()),
            "is_doctor_call": 1 if i == 5 else 0,
            "doctor_model": "cheap" if i == 5 else None})
    for run_id, phase_id, state, _ in info["phases"]:
        if state != "COMPLETE":
            continue
        _insert(con, "token_estimation_v2_events", {
            "run_id": run_id, "phase_id": phase_id, "timestamp": stamp(when()),
            "category": "implementation", "complexity": "low", "deliverable_count": 1,
            "deliverables_json": json.dumps(["src/x.py"]), "predicted_output_tokens": 3424,
            "actual_output_tokens": 2000, "selected_budget": 8192, "actual_max_tokens": 16384,
            "success": 1, "truncated": 0, "stop_reason": "end_turn",
            "model": "claude-sonnet-4-5", "smape_percent": 52.5, "waste_ratio": 1.712,
            "underestimated": 0, "is_truncated_output": 0, "created_at": stamp(when())})
    _insert(con, "phase_outcome_events", {
        "run_id": info["runs"][1], "phase_id": "t1-p1", "phase_type": "implementation",
        "phase_outcome": "FAILED", "stop_reason": "max_attempts", "tokens_used": 12000,
        "duration_seconds": 310.5, "model_used": "claude-sonnet-4-5",
        "timestamp": stamp(when()), "context_injected": 0, "context_item_count": 0})
    con.commit()
    con.close()
    return info


if __name__ == "__main__":
    if len(sys.argv) != 2 or os.path.exists(sys.argv[1]):
        sys.exit("usage: legacy_db.py NEW.db  (writes a Python-Autopack legacy database)")
    got = build(sys.argv[1])
    print("%s: %d runs, %d phases, %d usage events (%d without a split), %d v2 events" % (
        sys.argv[1], len(got["runs"]), len(got["phases"]), got["usage_events"],
        got["usage_without_split"], got["v2_events"]))
