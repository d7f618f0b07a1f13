"""Token counts no call can record, written by another program or a hand edit: negative,
above the wire's limits, or no integer (a text such as '12abc', a real such as 1.5).
`calibrate` excluded them from its fit; `telemetry report` put them into every figure
(one -7 actual made a sample "under-predicted", one 5e9 prediction the waste p90) and
`db check` summed a total of 1.5 or a prompt of 2e9 into its tokens. Both now leave them
out, count them and name them."""
import json
import sqlite3

from conftest import DATA, ctl

SAMPLES = DATA + "/autopack-v2-telemetry-samples.tsv"


def url(path):
    return "sqlite:///" + str(path)


def imported(tmp):
    db = tmp / "counts.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    assert ctl("--db", url(db), "telemetry", "import", SAMPLES).rc == 0
    return db


def test_telemetry_report_excludes_and_names_events_with_absurd_counts(tmp):
    db = imported(tmp)
    before = json.loads(ctl("--db", url(db), "telemetry", "report", "--json").out)
    con = sqlite3.connect(str(db))
    ids = [r[0] for r in con.execute(
        "SELECT event_id FROM token_estimation_v2_events ORDER BY event_id LIMIT 4")]
    with con:
        con.execute("UPDATE token_estimation_v2_events SET actual_output_tokens = -7"
                    " WHERE event_id = ?", (ids[0],))
        con.execute("UPDATE token_estimation_v2_events SET predicted_output_tokens = 5000000000"
                    " WHERE event_id = ?", (ids[1],))
        con.execute("UPDATE token_estimation_v2_events SET actual_output_tokens = 1.5"
                    " WHERE event_id = ?", (ids[2],))
        con.execute("UPDATE token_estimation_v2_events SET selected_budget = '12abc'"
                    " WHERE event_id = ?", (ids[3],))
    con.close()
    r = ctl("--db", url(db), "telemetry", "report", "--json")
    assert r.rc == 0, r
    doc = json.loads(r.out)
    assert doc["samples_read"] == 64 and doc["implausible_excluded"] == 4, doc
    assert doc["metrics"]["samples"] == before["metrics"]["samples"] - 4, doc["metrics"]
    assert [(e["column"], e["value"], e["text"]) for e in doc["implausible_events"]] == [
        ("actual_output_tokens", -7, None), ("predicted_output_tokens", 5000000000, None),
        ("actual_output_tokens", None, "1.5"), ("selected_budget", None, "12abc")]
    r = ctl("--db", url(db), "telemetry", "report")
    assert r.rc == 0, r
    assert "samples: 60 analysed of 64 read" in r.out, r.out
    assert "excluded: 4 events recording a count no call can" in r.out, r.out
    assert ": actual_output_tokens -7\n" in r.out and ": selected_budget '12abc' (not an " \
        "integer)\n" in r.out, r.out
    # calibrate names those of them it would have fitted on (success or truncated) by the
    # same rule.
    r = ctl("--db", url(db), "calibrate", "--evaluate", "--json")
    assert r.rc == 0, r
    fit = json.loads(r.out)["implausible_events"]
    assert fit and all(e in doc["implausible_events"] for e in fit), (fit, doc)


def test_db_check_leaves_absurd_usage_counts_out_of_its_tokens_and_names_them(tmp):
    db = imported(tmp)
    rows = [(100, 60, 40), (-5, None, None), (3000000000, None, None), (1.5, None, None),
            ("12abc", None, None), (500, 2000000000, None), (700, None, -1), (250, None, None)]
    con = sqlite3.connect(str(db))
    with con:
        for total, prompt, completion in rows:
            con.execute("INSERT INTO llm_usage_events (provider, model, role, total_tokens,"
                        " prompt_tokens, completion_tokens, created_at, is_doctor_call)"
                        " VALUES ('anthropic', 'm', 'builder', ?, ?, ?,"
                        " '2026-12-01 10:00:00.000000', 0)", (total, prompt, completion))
    con.close()
    r = ctl("--db", url(db), "db", "check", "--json")
    assert r.rc == 0, r
    usage = json.loads(r.out)["telemetry"]["llm_usage"]
    assert (usage["total"], usage["tokens"], usage["excluded"]) == (8, 350, 6), usage
    assert [(u["id"], u["total_tokens"], u["prompt_tokens"], u["completion_tokens"])
            for u in usage["excluded_rows"]] == [
        (2, "-5", None, None), (3, "3000000000", None, None), (4, "1.5", None, None),
        (5, "12abc", None, None), (6, "500", "2000000000", None), (7, "700", None, "-1")]
    r = ctl("--db", url(db), "db", "check")
    assert r.rc == 0, r
    assert "llm_usage_events: 8 (0 failed calls, 0 lost with their worker), 350 tokens" \
        in r.out, r.out
    assert "excluded from the tokens: 6 llm_usage_events row(s)" in r.out, r.out
    assert "    id 4: total_tokens 1.5, prompt_tokens NULL, completion_tokens NULL\n" in r.out
