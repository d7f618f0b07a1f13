"""The loop closed: drain against the LLM stand-in, calibrate, apply, drain again — the
new events carry the new coefficient version and their predictions moved exactly as
proposed — then roll back."""
import json
import os

from conftest import ctl
from supervisor_helpers import Standin, Supervisor, make_plan, new_db, sql

KEY = "sk-test-calibration"


def drain(tmp, url, llm, name):
    sup = Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                     "--workers", 4, "--exit-when-drained", env={"ANTHROPIC_API_KEY": KEY},
                     name=name)
    assert sup.wait(timeout=180) == 0, sup.stderr()


def import_plan(tmp, url, name, runs):
    d = os.path.join(str(tmp), name)
    os.mkdir(d)
    plan = make_plan(os.path.join(d, "plan.json"), runs, 1, 2)
    with open(plan) as f:
        doc = json.load(f)
    for r in doc["runs"]:
        r["run_id"] = name + "-" + r["run_id"]
    with open(plan, "w") as f:
        json.dump(doc, f)
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 0, r


def predictions(url, run_prefix):
    return sql(url, "SELECT DISTINCT predicted_output_tokens, estimator_version"
               " FROM token_estimation_v2_events WHERE run_id LIKE ?", run_prefix + "%")


def test_drain_calibrate_apply_drain_again_rollback(tmp):
    # The model answers with 1200 output tokens: a third of the default prediction.
    llm = Standin(tmp, script={"default": {"mode": "normal", "output_tokens": 1200}})
    try:
        url = new_db(tmp, runs=4, phases=2)        # 8 implementation/low phases
        drain(tmp, url, llm, "first")
        # implementation/low, one new .py: int((634 + 2000) × 1.3) with the defaults.
        assert predictions(url, "run-") == [(3424, 1)]
        out = os.path.join(str(tmp), "calib")
        r = ctl("--db", url, "calibrate", "--apply", "--min-samples", 5,
                "--confidence-threshold", 0.5, "--out", out, "--json")
        assert r.rc == 0, r
        res = json.loads(r.out)
        [(version, active, overhead_json, provenance)] = sql(
            url, "SELECT version, active, overhead_json, provenance_json FROM"
            " estimator_coefficients")
        assert version == 2 and active == 1
        rows = {(c, x): n for c, x, n in json.loads(overhead_json)}
        new_oh = rows[("implementation", "low")]
        # sqrt damping of the median ratio 1200 / 3424 (docs/telemetry.md).
        assert new_oh == round(634 * (1200 / 3424) ** 0.5)
        prov = json.loads(provenance)
        assert prov["samples_used"] == 8 and prov["damping"] == "sqrt"
        assert prov["confidence_threshold"] == 0.5 and prov["based_on_version"] == 1
        assert any(f.endswith(".svg") for f in os.listdir(out))

        import_plan(tmp, url, "second", 2)
        drain(tmp, url, llm, "second")
        # The supervisor sent set 2; the worker estimated with it.
        assert predictions(url, "second-") == [(int((new_oh + 2000) * 1.3), 2)]

        r = ctl("--db", url, "calibrate", "--rollback")
        assert r.rc == 0, r
        assert sql(url, "SELECT count(*) FROM estimator_coefficients WHERE active = 1") == [(0,)]
        import_plan(tmp, url, "third", 1)
        drain(tmp, url, llm, "third")
        assert predictions(url, "third-") == [(3424, 1)]
    finally:
        llm.stop()
