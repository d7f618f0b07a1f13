"""The main job end to end: the seeded telemetry run drained by the real supervisor and four
real workers against the LLM stand-in, checked row by row against the estimator's rules and
the stand-in's own request log."""
import json
import os

import pytest

from conftest import ctl
from e2e_helpers import SEED_DIR, SEED_RUN, Standin, drain, rows, seed_db, tree

# What the estimator must predict for each seed phase (docs/estimator.md; every
# deliverable is new when its phase runs, confidence 0.8, so the buffer is 1.2):
#   implementation/low,    1 new .py : int((634 + 2000) × 1.3)        = 3424, floor 8192
#   implementation/medium, 1 new .py : int((1176 + 2000) × 1.3)       = 4128, floor 12288
#   tests/medium, test_*.py + conftest.py (a plain .py), testing row:
#                                      int((2500 + 1400 + 2000) × 1.3) = 7670, 7670 × 1.2 = 9204
#   tests/low,     1 new test        : int((915 + 1400) × 1.3)        = 3009, floor 6144
#   tests/medium,  1 new test        : int((2500 + 1400) × 1.3)       = 5070, floor 8192
#   docs/low README.md (examples, no research: not synthesis):
#                                      int((1500 + 500) × 1.3)        = 2600, floor 4096
# max_tokens is raised to 16384 for every whole-file call except docs-like categories.
EXPECTED = {
    # phase_id: (category, complexity, deliverables, predicted, budget, max_tokens)
    "telemetry-p1-string-util": ("implementation", "low", 1, 3424, 8192, 16384),
    "telemetry-p2-number-util": ("implementation", "low", 1, 3424, 8192, 16384),
    "telemetry-p3-list-util": ("implementation", "medium", 1, 4128, 12288, 16384),
    "telemetry-p4-date-util": ("implementation", "medium", 1, 4128, 12288, 16384),
    "telemetry-p5-dict-util": ("implementation", "medium", 1, 4128, 12288, 16384),
    "telemetry-p6-string-tests": ("tests", "medium", 2, 7670, 9204, 16384),
    "telemetry-p7-number-tests": ("tests", "low", 1, 3009, 6144, 16384),
    "telemetry-p8-list-tests": ("tests", "medium", 1, 5070, 8192, 16384),
    "telemetry-p9-readme": ("docs", "low", 1, 2600, 4096, 4096),
    "telemetry-p10-file-util": ("implementation", "medium", 1, 4128, 12288, 16384),
}

FILES = ["string_helper.py", "number_helper.py", "list_helper.py", "date_helper.py",
         "dict_helper.py", "test_string_helper.py", "conftest.py", "test_number_helper.py",
         "test_list_helper.py", "README.md", "file_helper.py"]


@pytest.fixture(scope="module", params=[("anthropic", "sqlite"), ("openai", "sqlite"),
                                        ("anthropic", "pg")], ids=lambda p: "-".join(p))
def drained(request, tmp_path_factory):
    """The seed run drained against the stand-in speaking one provider's API, on one
    backend."""
    provider, backend = request.param
    tmp = tmp_path_factory.mktemp("seed-%s-%s" % (provider, backend))
    key = "sk-e2e-seed-%s-key" % provider
    ws = os.path.join(str(tmp), "workspace")
    pg_url = None
    if backend == "pg":
        cluster = request.getfixturevalue("pg_cluster")
        pg_url = cluster.url(cluster.new_database("seed"))
    url = seed_db(tmp, ws, url=pg_url)
    llm = Standin(tmp, None, "--expect-key", key)
    try:
        sup = drain(tmp, url, llm, "--model", "model-under-test", key=key,
                    provider=provider)
    finally:
        llm.stop()
    return {"url": url, "ws": ws, "llm": llm, "sup": sup, "provider": provider}


def requests_by_phase(url, llm):
    """The stand-in's logged requests, keyed by the phase whose deliverables they asked for."""
    by_deliverables = {json.dumps(json.loads(r["scope"])["deliverables"]): r["phase_id"]
                       for r in rows(url, "SELECT phase_id, scope FROM phases")}
    out = {}
    for r in llm.requests():
        out.setdefault(by_deliverables[json.dumps(r["deliverables"])], []).append(r)
    return out


def test_seed_run_drains_to_ten_complete_phases_with_files_in_the_workspace(drained):
    url, ws = drained["url"], drained["ws"]
    assert rows(url, "SELECT state, count(*) AS n FROM phases GROUP BY state") == \
        [{"state": "COMPLETE", "n": 10}]
    att = rows(url, "SELECT phase_id, attempt_number, outcome, failure_reason, fingerprint,"
               " zero_yield_reason, ended_at IS NOT NULL AS ended, events_committed"
               " FROM attempts ORDER BY attempt_id")
    assert [a["phase_id"] for a in att] == list(EXPECTED), "one attempt per phase, in order"
    for a in att:
        assert (a["attempt_number"], a["outcome"], a["failure_reason"], a["fingerprint"],
                a["zero_yield_reason"], a["ended"]) == (1, "success", None, None, None, 1), a
        # the call announced, its usage, v2 estimate, "wrote 1 file", "check command passed"
        assert a["events_committed"] == 5, a
    assert rows(url, "SELECT stop_reason FROM drain_sessions") == [{"stop_reason": "drained"}]
    # Every deliverable was written, with the stand-in's content, and nothing else but the
    # check logs.
    for name in FILES:
        with open(os.path.join(ws, SEED_DIR, name)) as f:
            assert "written by the LLM stand-in" in f.read(), name
    written = [p for p in tree(ws) if not p.startswith(".autopack")]
    assert written == sorted(["examples", "examples/telemetry_utils"] +
                             [SEED_DIR + n for n in FILES])
    logs = tree(os.path.join(ws, ".autopack", "logs"))
    assert len(logs) == 20 and all(p.startswith(SEED_RUN + "__") for p in logs)
    r = ctl("--db", url, "db", "check")
    assert r.rc == 0, r
    assert "COMPLETE           10" in r.out
    assert "token_estimation_v2_events: 10 (success 10, 100.0%; truncated 0, 0.0%)" in r.out


def test_seed_run_records_one_v2_event_per_builder_call_with_the_estimators_figures(drained):
    url = drained["url"]
    ev = rows(url, "SELECT v.*, a.attempt_id AS att FROM token_estimation_v2_events v"
              " JOIN attempts a USING (attempt_id) ORDER BY v.event_id")
    assert len(ev) == 10, "one builder call per phase"
    assert [e["phase_id"] for e in ev] == list(EXPECTED)
    sent = requests_by_phase(url, drained["llm"])
    for e in ev:
        cat, cplx, ndl, pred, budget, maxt = EXPECTED[e["phase_id"]]
        got = (e["category"], e["complexity"], e["deliverable_count"],
               e["predicted_output_tokens"], e["selected_budget"], e["actual_max_tokens"])
        assert got == (cat, cplx, ndl, pred, budget, maxt), e["phase_id"]
        assert e["run_id"] == SEED_RUN
        assert e["estimator_version"] == 1
        assert (e["success"], e["truncated"], e["is_truncated_output"]) == (1, 0, 0)
        assert e["stop_reason"] == ("end_turn" if drained["provider"] == "anthropic"
                                    else "stop")
        assert e["model"] == "model-under-test"
        # The actual output tokens are the stand-in's, and the derived figures follow.
        assert len(sent[e["phase_id"]]) == 1
        call = sent[e["phase_id"]][0]
        a, p = call["usage"]["completion_tokens"], pred
        assert e["actual_output_tokens"] == a
        assert call["max_tokens"] == maxt
        assert e["smape_percent"] == pytest.approx(200.0 * abs(a - p) / (a + p))
        assert e["underestimated"] == (1 if a > p else 0)
        assert e["seq"] >= 1 and e["attempt_id"] == e["att"]
        assert json.loads(e["deliverables_json"]) == call["deliverables"]


def test_seed_run_usage_events_match_the_standins_request_log_exactly(drained):
    url, llm = drained["url"], drained["llm"]
    sent = llm.requests()
    assert len(sent) == 10
    assert all(r["key_present"] and r["key_ok"] for r in sent), "every call carried the key"
    assert all(r["provider"] == drained["provider"] and r["model"] == "model-under-test"
               for r in sent)
    phase_of = {json.dumps(json.loads(r["scope"])["deliverables"]): r["phase_id"]
                for r in rows(url, "SELECT phase_id, scope FROM phases")}
    usage = rows(url, "SELECT * FROM llm_usage_events ORDER BY id")
    assert len(usage) == len(sent)
    # The phases of one run go one at a time, so the log and the rows are in the same order.
    for u, r in zip(usage, sent):
        want = (phase_of[json.dumps(r["deliverables"])], drained["provider"],
                "model-under-test", SEED_RUN, "builder", 200, None, 1, "ok",
                r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"],
                r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"], r["max_tokens"])
        got = (u["phase_id"], u["provider"], u["model"], u["run_id"], u["role"],
               u["http_status"], u["error_class"], u["try_number"], u["status"],
               u["prompt_tokens"], u["completion_tokens"], u["total_tokens"],
               u["max_tokens"])
        assert got == want, (u, r)
