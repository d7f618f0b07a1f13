"""The loop closed: drain against the LLM stand-in, calibrate, apply the fitted model, drain
again — the new events carry the new coefficient version, the fitted estimate and its
conformal budget with no floors, the call's input tokens and the deliverables' kinds —
then roll back to the original's estimator."""
import json
import math
import os

from conftest import ctl
from supervisor_helpers import Standin, Supervisor, make_plan, new_db, sql

KEY = "sk-test-calibration"
RUNS = 10  # two implementation/low phases each: 20 samples, the fit's minimum


def drain(tmp, url, llm, name, workers=4):
    sup = Supervisor(tmp, url, "--llm-provider", "anthropic", "--llm-base-url", llm.url,
                     "--workers", workers, "--exit-when-drained",
                     env={"ANTHROPIC_API_KEY": KEY}, name=name)
    assert sup.wait(timeout=180) == 0, sup.stderr()


def import_plan(tmp, url, name, runs, category=None):
    """Import `runs` runs of two phases, their ids prefixed with `name`; every phase of task
    category `category` when one is given."""
    d = os.path.join(str(tmp), name)
    os.mkdir(d)
    plan = make_plan(os.path.join(d, "plan.json"), runs, 1, 2)
    with open(plan) as f:
        doc = json.load(f)
    for r in doc["runs"]:
        r["run_id"] = name + "-" + r["run_id"]
        for ph in r["tiers"][0]["phases"] if category is not None else ():
            ph["task_category"] = category
    with open(plan, "w") as f:
        json.dump(doc, f)
    r = ctl("--db", url, "run", "import", plan)
    assert r.rc == 0, r


def events(url, run_prefix):
    return sql(url, "SELECT DISTINCT predicted_output_tokens, selected_budget,"
               " actual_max_tokens, estimator_version FROM token_estimation_v2_events"
               " WHERE run_id LIKE ?", run_prefix + "%")


def expected_fit(actuals, coverage=0.95):
    """Every sample has the same features, so the ridge fit predicts the mean log actual
    and the leave-one-out residuals are y_i minus the mean of the others."""
    y = [math.log(a) for a in actuals]
    n = len(y)
    estimate = round(math.exp(sum(y) / n))
    resid = sorted(y[i] - (sum(y) - y[i]) / (n - 1) for i in range(n))
    factor = math.exp(resid[min(n, math.ceil((n + 1) * coverage - 1e-9)) - 1])
    return estimate, factor, math.ceil(estimate * factor - 1e-9)


def test_drain_calibrate_apply_fitted_model_drain_again_rollback(tmp):
    # Run k's phases answer with 800 + 150 k output tokens; later runs with 1200.
    markers = {"run-%03d" % k: [{"mode": "normal", "output_tokens": 800 + 150 * k}] * 2
               for k in range(RUNS)}
    llm = Standin(tmp, script={"markers": markers,
                               "default": {"mode": "normal", "output_tokens": 1200}})
    try:
        url = new_db(tmp, runs=RUNS, phases=2)
        # One worker: the samples are recorded in the order the phases are dispatched, so
        # the k-fold's folds (fixed seeds over the samples in their recorded order) and
        # the verdict on the proposal below are the same at every run.
        drain(tmp, url, llm, "first", workers=1)
        # implementation/low, one new .py: int((634 + 2000) × 1.3), floors 8192 and 16384.
        assert events(url, "run-") == [(3424, 8192, 16384, 1)]
        actuals = [a for (a,) in sql(url, "SELECT actual_output_tokens FROM"
                                     " token_estimation_v2_events ORDER BY event_id")]
        assert sorted(actuals) == sorted(800 + 150 * k for k in range(RUNS) for _ in (0, 1))
        estimate, factor, budget = expected_fit(actuals)

        out = os.path.join(str(tmp), "calib")
        # The defaults never truncate here (16384 for at most 2150 tokens), so a budget
        # near the actuals truncates more, held out, and --apply refuses it.
        r = ctl("--db", url, "calibrate", "--apply", "--out", out, "--json")
        assert r.rc == 1 and "worse than the active set" in r.err, r
        assert "--force" in json.loads(r.out)["message"]
        assert sql(url, "SELECT count(*) FROM estimator_coefficients") == [(0,)]
        r = ctl("--db", url, "calibrate", "--apply", "--force", "--out", out, "--json")
        assert r.rc == 0, r
        assert "applied anyway (--force)" in r.err
        res = json.loads(r.out)
        assert math.isclose(res["applied"]["factor"], factor, rel_tol=1e-9)
        ev = res["evaluation"]
        # The defaults' max_tokens of 16384 wastes 8x or more; the fit does not.
        assert ev["current"]["kfold"]["waste_p90"] > 8
        assert ev["proposed"]["kfold"]["waste_p90"] < ev["current"]["kfold"]["waste_p90"]
        [(version, active, model_json, provenance)] = sql(
            url, "SELECT version, active, model_json, provenance_json FROM"
            " estimator_coefficients")
        assert version == 2 and active == 1
        model = json.loads(model_json)
        assert model["model"] == "ridge_log" and model["samples"] == 20
        assert math.isclose(model["factor"], factor, rel_tol=1e-9)
        prov = json.loads(provenance)
        assert prov["samples_used"] == 20 and prov["based_on_version"] == 1
        assert prov["coverage"] == 0.95 and prov["forced"]
        assert any(f.endswith(".svg") for f in os.listdir(out))

        import_plan(tmp, url, "second", 2)
        drain(tmp, url, llm, "second")
        # The supervisor sent set 2; the worker estimated with the fitted model and took
        # ⌈estimate × F⌉ as max_tokens, with no floor on top.
        assert events(url, "second-") == [(estimate, budget, budget, 2)]
        assert budget < 8192
        for inp, usage_in, detail in sql(
                url, "SELECT v.input_tokens, u.prompt_tokens, v.deliverables_detail_json"
                " FROM token_estimation_v2_events v JOIN llm_usage_events u"
                " ON u.attempt_id = v.attempt_id WHERE v.run_id LIKE 'second-%'"):
            assert inp == usage_in and inp > 0
            assert json.loads(detail) == [{"kind": "new", "bytes": None}]

        r = ctl("--db", url, "calibrate", "--rollback")
        assert r.rc == 0, r
        assert sql(url, "SELECT count(*) FROM estimator_coefficients WHERE active = 1") == [(0,)]
        import_plan(tmp, url, "third", 1)
        drain(tmp, url, llm, "third")
        assert events(url, "third-") == [(3424, 8192, 16384, 1)]
    finally:
        llm.stop()


def test_a_long_non_ascii_category_drains_and_its_fitted_weight_reaches_the_workers(tmp):
    """A task category is kept on its first 31 bytes. One of 17 Cyrillic characters (34
    bytes) was cut inside its 16th: the worker could not encode its event ("event.body.cat:
    invalid UTF-8 at byte 30") and exited, every attempt of such a phase ended
    WORKER_CRASHED and the phase FAILED (five in a row trip the breaker). It is cut before
    the character now: the phases drain, their events record the cut name, calibrate fits
    it, and the workers predict those phases with its weight."""
    long_cat = "реализацияфункций"
    cut = "реализацияфункц"
    markers = {"run-%03d" % k: [{"mode": "normal", "output_tokens": 700 + 90 * k}] * 2
               for k in range(RUNS)}
    llm = Standin(tmp, script={"markers": markers,
                               "default": {"mode": "normal", "output_tokens": 1000}})
    try:
        url = new_db(tmp, runs=0)
        d = os.path.join(str(tmp), "first")
        os.mkdir(d)
        plan = make_plan(os.path.join(d, "plan.json"), RUNS, 1, 2)
        with open(plan) as f:
            doc = json.load(f)
        for k, r in enumerate(doc["runs"]):
            for ph in r["tiers"][0]["phases"]:
                ph["task_category"] = long_cat if k % 2 else "implementation"
        with open(plan, "w") as f:
            json.dump(doc, f)
        assert ctl("--db", url, "run", "import", plan).rc == 0
        drain(tmp, url, llm, "first", workers=1)
        assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [
            ("success", 2 * RUNS)]
        assert sorted(set(sql(url, "SELECT category FROM token_estimation_v2_events"))) == [
            ("implementation",), (cut,)]
        r = ctl("--db", url, "calibrate", "--apply", "--force", "--out",
                os.path.join(str(tmp), "calib"), "--json")
        assert r.rc == 0, r
        model = json.loads(sql(url, "SELECT model_json FROM estimator_coefficients"
                               " WHERE active = 1")[0][0])
        assert set(model["categories"]) == {"implementation", cut}, model
        import_plan(tmp, url, "second", 1, long_cat)
        drain(tmp, url, llm, "second")
        want = round(math.exp(model["intercept"] + model["categories"][cut]
                              + model["complexity"]["low"]
                              + model["deliverables"] * math.log1p(1)))
        assert events(url, "second-") == [
            (want, math.ceil(want * model["factor"] - 1e-9),
             math.ceil(want * model["factor"] - 1e-9), 2)]
    finally:
        llm.stop()
