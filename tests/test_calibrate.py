"""autopack-ctl calibrate on real SQLite files and the project's real samples: the fitted
model, its conformal budget factor and the held-out evaluation recomputed independently
here (docs/calibration.md), the active set's group figures (docs/telemetry.md), the report
/ proposal / plot, --apply refusing a worse set without --force, --rollback and --list."""
import csv
import fcntl
import glob
import json
import math
import os
import re
import sqlite3
import xml.etree.ElementTree as ET

from conftest import assert_reals_shortest, ctl, json_reals
from supervisor_helpers import full_tmpfs
from telemetry_helpers import SAMPLES, close, imported_db, rows, url

KEYS = {"smape_median", "smape_mean", "truncation_rate", "waste_p50", "waste_p90", "n"}
MASK = (1 << 64) - 1


def samples():
    """The TSV rows: clean ones with exact duplicates (all but the time) dropped, and the
    truncated ones, as dicts."""
    with open(SAMPLES) as f:
        all_rows = list(csv.DictReader(f, delimiter="\t"))
    clean, seen, trunc = [], set(), []
    for r in all_rows:
        s = {"cat": r["category"].strip().lower(), "cplx": r["complexity"],
             "d": int(r["deliverables"]), "a": int(r["actual_output"]),
             "p": int(r["predicted_output"]), "budget": int(r["selected_budget"])}
        if r["truncated"] == "true":
            trunc.append(s)
        elif r["success"] == "true" and s["a"] >= 50:
            key = tuple(v for k, v in r.items() if k != "timestamp")
            if key not in seen:
                seen.add(key)
                clean.append(s)
    return clean, trunc


def solve(a, b):
    n = len(a)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] for i in range(n)]


def fit(train, coverage=0.95, lam=1.0, with_factor=True, cats=None):
    """Ridge of ln(actual) on [1, category, complexity, ln(1 + d)], intercept free; the
    factor from leave-one-out refits. Returns (predict(sample) -> estimate, factor).
    `cats`: the categories given a column (default: every one of the samples)."""
    cats = sorted({s["cat"] for s in train}) if cats is None else cats

    def x(s):
        return ([1.0] + [1.0 if s["cat"] == c else 0.0 for c in cats]
                + [1.0 if s["cplx"] == c else 0.0 for c in ("low", "medium", "high")]
                + [math.log1p(s["d"])])
    xs = [x(s) for s in train]
    p = len(xs[0])
    a = [[sum(r[i] * r[j] for r in xs) + (lam if i == j and i > 0 else 0) for j in range(p)]
         for i in range(p)]
    b = [sum(r[i] * math.log(s["a"]) for r, s in zip(xs, train)) for i in range(p)]
    w = solve(a, b)

    def log_predict(s):
        return sum(wi * xi for wi, xi in zip(w, x(s)))
    factor = None
    if with_factor:
        resid = sorted(math.log(s["a"]) - fit(train[:i] + train[i + 1:], lam=lam,
                                              with_factor=False, cats=cats)[2](s)
                       for i, s in enumerate(train))
        factor = math.exp(resid[min(len(resid), math.ceil((len(resid) + 1) * coverage
                                                          - 1e-9)) - 1])
    return (lambda s: max(1, round(math.exp(log_predict(s))))), factor, log_predict


def score(pool):
    """pool: (sample, estimate, budget, truncated)."""
    sm, waste, trunc = [], [], 0
    for s, e, b, t in pool:
        if t:
            trunc += b <= s["a"]
            continue
        trunc += s["a"] > b
        sm.append(200.0 * abs(e - s["a"]) / (e + s["a"]))
        waste.append(b / s["a"])
    sm.sort()
    waste.sort()

    def median(v):
        n = len(v)
        return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"smape_median": median(sm), "smape_mean": sum(sm) / len(sm),
            "truncation_rate": trunc / len(pool), "waste_p50": median(waste),
            "waste_p90": waste[min(int(0.9 * len(waste)), len(waste) - 1)]}


def budget_of(predict, factor, s):
    e = predict(s)
    return e, min(64000, math.ceil(e * factor - 1e-9))


def reference_loo(clean, trunc):
    pool = []
    for i, s in enumerate(clean):
        predict, factor, _ = fit(clean[:i] + clean[i + 1:])
        for t in [s] + trunc[i::len(clean)]:
            pool.append((t, *budget_of(predict, factor, t), t is not s))
    return score(pool)


def splitmix(state):
    state = (state + 0x9e3779b97f4a7c15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK
    return state, z ^ (z >> 31)


def reference_kfold(clean, trunc, folds, repeats):
    pool, n = [], len(clean)
    for q in range(repeats):
        state, perm = q + 1, list(range(n))
        for i in range(n, 1, -1):
            state, r = splitmix(state)
            j = r % i
            perm[i - 1], perm[j] = perm[j], perm[i - 1]
        for k in range(folds):
            held = {perm[i] for i in range(k, n, folds)}
            predict, factor, _ = fit([s for i, s in enumerate(clean) if i not in held])
            for i in sorted(held):
                pool.append((clean[i], *budget_of(predict, factor, clean[i]), False))
            for t in trunc[k::folds]:
                pool.append((t, *budget_of(predict, factor, t), True))
    return score(pool)


def calibrate(db, *args):
    r = ctl("--db", url(db), "calibrate", "--json", *args)
    return r, (json.loads(r.out) if r.out.strip() else None)


def test_fit_and_factor_match_an_independent_ridge_on_the_real_samples(tmp):
    db = imported_db(tmp)
    r, j = calibrate(db, "--evaluate", "--folds", "5", "--repeats", "2")
    assert r.rc == 0, r
    clean, trunc = samples()
    assert (j["samples_read"], j["samples_used"], j["duplicates_dropped"],
            j["truncated_events"]) == (64, 51, 4, 7)
    predict, factor, log_predict = fit(clean)
    m = j["proposed"]
    assert m["model"] == "ridge_log" and m["samples"] == 51 and m["lambda"] == 1
    assert close(m["factor"], factor, 1e-7)
    for s in clean + trunc:
        got = (m["intercept"] + m["categories"].get(s["cat"], 0.0)
               + m["complexity"][s["cplx"]] + m["deliverables"] * math.log1p(s["d"]))
        assert close(got, log_predict(s), 1e-7), s
    assert set(m["categories"]) == {"implementation", "tests", "docs", "refactoring",
                                    "implement_feature", "integration", "configuration"}


def test_evaluate_json_is_leave_one_out_and_k_fold_as_recomputed_here(tmp):
    db = imported_db(tmp)
    r, j = calibrate(db, "--evaluate", "--folds", "5", "--repeats", "3")
    assert r.rc == 0, r
    ev = j["evaluation"]
    assert set(ev) == {"current", "proposed"}
    for side in ev.values():
        assert set(side) == {"loo", "kfold", "lorun"}
        assert side["lorun"] is None     # one imported run
        for method in ("loo", "kfold"):
            assert set(side[method]) == KEYS
            assert side[method]["n"] == 58
    clean, trunc = samples()
    for method, want in (("loo", reference_loo(clean, trunc)),
                         ("kfold", reference_kfold(clean, trunc, 5, 3))):
        for k, v in want.items():
            assert close(ev["proposed"][method][k], v, 1e-7), (method, k)
    # The active set is the original's: recorded predictions, max_tokens with its floors.
    cur = ev["current"]["loo"]
    assert cur["waste_p90"] > 10 and cur["smape_median"] > 90
    assert all(close(cur[k], ev["current"]["kfold"][k]) for k in KEYS)
    assert "leave-one-run-out  not run: needs 3 runs with at least 10 clean samples" in r.err


def test_leave_one_run_out_runs_with_three_runs_of_ten(tmp):
    db = imported_db(tmp, runs=("r1", "r2", "r3"))
    r, j = calibrate(db, "--evaluate", "--repeats", "1")
    assert r.rc == 0, r
    lorun = j["evaluation"]["proposed"]["lorun"]
    assert set(lorun) == KEYS and lorun["n"] == 3 * 58
    # Each run's samples are predicted from the other two, which hold the same calls.
    assert lorun["smape_median"] < j["evaluation"]["proposed"]["loo"]["smape_median"] + 1e-9


def test_calibrate_writes_a_report_a_proposal_and_a_plot_with_the_curves(tmp):
    db = imported_db(tmp)
    r, j = calibrate(db, "--out", "out", "--repeats", "2")
    assert r.rc == 0, r
    files = j["files"]
    md = open(files["report"]).read()
    assert "](%s)" % os.path.basename(files["plot"]) in md
    for section in ("## Proposal: fitted model", "## Held-out evaluation",
                    "## The active set by group", "## Groups short of samples"):
        assert section in md
    assert "**F = %.3f**" % j["proposal"]["model"]["factor"] in md
    proposal = json.load(open(files["proposal"]))
    assert proposal["metadata"]["samples_used"] == 51
    for m in ("loo", "kfold"):
        for k in KEYS:
            assert close(proposal["evaluation"]["proposed"][m][k],
                         j["evaluation"]["proposed"][m][k], 1e-12)
    curves = proposal["curves"]
    assert len(curves["current"]) == len(curves["proposed"]) == 41
    # Along the proposal's curve a larger factor never truncates more or wastes less.
    for a, b in zip(curves["proposed"], curves["proposed"][1:]):
        assert b[0] > a[0] and b[1] <= a[1] and b[2] >= a[2]
    root = ET.parse(files["plot"]).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(".//%spolyline" % ns)) == 2
    texts = [t.text or "" for t in root.iter(ns + "text")]
    assert "truncation against waste, by budget factor" in texts
    assert any(t.startswith("proposal (◆ chosen") for t in texts)
    assert "implementation (30)" in texts and "y = x: exact prediction" in texts
    # The group table is the active set's, on the samples the fit used.
    got = {(g["category"], g["complexity"]): g for g in j["proposal"]["groups"]}
    clean, _ = samples()
    imp = [s for s in clean if (s["cat"], s["cplx"]) == ("implementation", "medium")]
    g = got[("implementation", "medium")]
    assert g["sample_count"] == len(imp) == 17
    assert close(g["median_ratio"], sorted(s["a"] / s["p"] for s in imp)[len(imp) // 2])
    r2, j2 = calibrate(db, "--out", "out", "--repeats", "1")
    assert r2.rc == 0 and j2["files"]["report"] != files["report"]
    assert len(glob.glob(str(tmp / "out" / "*.md"))) == 2


def test_outputs_are_never_written_through_a_name_that_exists(tmp):
    """--out a shared directory (/tmp) where another user put symbolic links under the
    names of the next seconds' proposal and plot: the proposal was written through the
    link, over the file it named (the database, a file of the user's). Each output is
    now a new file, under the next free name."""
    import datetime
    import time
    db = imported_db(tmp)
    out = tmp / "shared"
    out.mkdir()
    victim = tmp / "victim.txt"
    victim.write_text("precious\n")
    now = time.time()
    for d in range(-2, 180):
        stamp = datetime.datetime.fromtimestamp(now + d, datetime.timezone.utc).strftime(
            "%Y%m%d_%H%M%S")
        os.symlink(str(victim), str(out / ("token_estimator_calibration_%s.json" % stamp)))
        os.symlink(str(victim), str(out / ("token_estimator_calibration_%s_2.svg" % stamp)))
    r, j = calibrate(db, "--out", str(out), "--repeats", "1")
    assert r.rc == 0, r
    assert victim.read_text() == "precious\n"
    for f in j["files"].values():
        assert not os.path.islink(f) and f.endswith(("_3.md", "_3.json", "_3.svg")), f
    assert json.load(open(j["files"]["proposal"]))["metadata"]["samples_used"] == 51
    ET.parse(j["files"]["plot"])
    assert len(glob.glob(str(out / "*_2.md"))) == 0  # nothing left of the names given up


def test_a_category_another_program_wrote_is_kept_in_every_output_and_the_plot_stays_xml(tmp):
    """A category that is not UTF-8 and holds a control character (written into the
    database by another program): its samples stay in the fit, the groups, the proposal's
    JSON and the model, as U+FFFD; the plot is still XML and the report UTF-8."""
    db = imported_db(tmp)
    con = sqlite3.connect(str(db))
    con.execute("UPDATE token_estimation_v2_events SET category = CAST(? AS TEXT)"
                " WHERE category = 'implementation'", (b"implementation\xff\x01",))
    con.commit()
    con.close()
    r, j = calibrate(db, "--out", "out", "--repeats", "1")
    assert r.rc == 0, r
    proposal = json.load(open(j["files"]["proposal"], encoding="utf-8"))
    groups = proposal["groups"]
    assert sum(g["sample_count"] for g in groups) == proposal["metadata"]["samples_used"] == 51
    odd = "implementation\ufffd\x01"
    assert sum(g["sample_count"] for g in groups if g["category"] == odd) == 30
    assert odd in proposal["model"]["categories"]
    open(j["files"]["report"], encoding="utf-8").read()
    root = ET.parse(j["files"]["plot"]).getroot()
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "implementation\ufffd\ufffd (30)" in texts, texts


def renamed_samples(tmp, names):
    """The real samples' TSV with the categories of `names` renamed ({old: new})."""
    path = tmp / "renamed.tsv"
    with open(SAMPLES, encoding="utf-8") as f, open(path, "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            cols = line.rstrip("\n").split("\t")
            if i > 0:
                cols[1] = names.get(cols[1], cols[1])
            out.write("\t".join(cols) + "\n")
    return path


def test_a_long_category_is_cut_between_characters_and_kept_in_the_stored_model(tmp):
    """Category names are matched on their first 31 bytes. A Cyrillic name was cut inside
    its 16th character: the fit gave the cut name a column, but the model's JSON could not
    hold a key that is no UTF-8 and dropped it, so the stored set (what the workers
    predict with) lacked a weight the evaluation had used, and the report was no UTF-8.
    An English name cut after a space kept the space, and --apply refused the set as one
    the supervisor would refuse. Both are now cut before the character that does not fit
    whole and trimmed, in the fit and in the workers alike."""
    long_ru = "реализацияфункций"            # 17 characters, 34 bytes
    long_en = "Implementation of the core api x"  # a space at its 31st byte
    tsv = renamed_samples(tmp, {"implementation": long_ru, "tests": long_en})
    db = imported_db(tmp, path=str(tsv))
    r, j = calibrate(db, "--apply", "--force", "--out", "out", "--repeats", "1")
    assert r.rc == 0, r
    cut_ru, cut_en = "реализацияфункц", "implementation of the core api"
    assert len(cut_ru.encode()) == 30 and len(cut_en) == 30
    m = j["proposal"]["model"]
    assert {cut_ru, cut_en} <= set(m["categories"]), m["categories"]
    clean, _ = samples()
    ren = {"implementation": cut_ru, "tests": cut_en}
    for s in clean:
        s["cat"] = ren.get(s["cat"], s["cat"])
    _, factor, log_predict = fit(clean)
    assert close(m["factor"], factor, 1e-7)
    for s in clean:
        got = (m["intercept"] + m["categories"].get(s["cat"], 0.0)
               + m["complexity"][s["cplx"]] + m["deliverables"] * math.log1p(s["d"]))
        assert close(got, log_predict(s), 1e-7), s
    (stored,), = rows(db, "SELECT model_json FROM estimator_coefficients WHERE active = 1")
    assert json.loads(stored)["categories"] == m["categories"]
    for f in j["files"].values():
        open(f, encoding="utf-8").read()
    assert cut_ru in open(j["files"]["report"], encoding="utf-8").read()


def test_a_blank_category_another_program_wrote_gets_no_column_and_the_fit_applies(tmp):
    """An event another program wrote with an empty or blank category gave the fit a
    column named "", which no stored set may hold: --apply, even forced, refused every
    fit of such a database. A blank category now gets no column, as one never seen."""
    db = imported_db(tmp)
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE token_estimation_v2_events SET category = '' WHERE event_id = 2")
        con.execute("UPDATE token_estimation_v2_events SET category = ' \t' WHERE event_id = 4")
    con.close()
    r, j = calibrate(db, "--apply", "--force", "--out", "out", "--repeats", "1")
    assert r.rc == 0, r
    m = j["proposal"]["model"]
    assert "" not in m["categories"] and j["applied"]["version"] == 2
    assert m["samples"] == j["proposal"]["metadata"]["samples_used"]


def test_more_than_64_categories_give_columns_to_the_64_with_the_most_samples(tmp):
    """A database whose clean samples held 65 task categories could not be calibrated at
    all ("more than 64 distinct categories; cannot fit"). The 64 with the most samples
    (ties by name) now get a column, as many as a stored set holds; the others count as
    categories never seen."""
    db = imported_db(tmp)
    con = sqlite3.connect(str(db))
    extra = []
    with con:
        for k in range(60):
            for i in range(2):
                s = {"cat": "extra-%02d" % k, "cplx": "low", "d": 1 + i, "a": 900 + 7 * k + i,
                     "p": 1000}
                extra.append(s)
                con.execute(
                    "INSERT INTO token_estimation_v2_events (run_id, phase_id, timestamp,"
                    " created_at, category, complexity, deliverable_count, deliverables_json,"
                    " predicted_output_tokens, actual_output_tokens, selected_budget,"
                    " success, truncated, stop_reason, model, is_truncated_output)"
                    " SELECT run_id, phase_id, timestamp, created_at, ?, 'low', ?, '[]',"
                    " 1000, ?, 8192, 1, 0, 'end_turn', 'm', 0"
                    " FROM token_estimation_v2_events WHERE event_id = 1",
                    (s["cat"], s["d"], s["a"]))
    con.close()
    clean, _ = samples()
    clean += extra
    counts = {}
    for s in clean:
        counts[s["cat"]] = counts.get(s["cat"], 0) + 1
    assert len(counts) == 67
    cats = sorted(sorted(counts, key=lambda c: (-counts[c], c))[:64])
    r, j = calibrate(db, "--apply", "--force", "--out", "out", "--repeats", "1")
    assert r.rc == 0, r
    m = j["proposal"]["model"]
    assert sorted(m["categories"]) == cats
    assert {"configuration", "integration"} - set(m["categories"]) == {"configuration",
                                                                       "integration"}
    _, factor, log_predict = fit(clean, cats=cats)
    assert close(m["factor"], factor, 1e-7)
    for s in clean:
        got = (m["intercept"] + m["categories"].get(s["cat"], 0.0)
               + m["complexity"][s["cplx"]] + m["deliverables"] * math.log1p(s["d"]))
        assert close(got, log_predict(s), 1e-7), s
    assert j["applied"]["version"] == 2


def test_outputs_a_full_disk_cut_short_are_removed(tmp):
    """On a file system that fills while calibrate writes, the command failed but left
    the proposal's JSON cut after 4 KiB (no JSON) and the plot cut short, under the names
    a later reader takes for a finished calibration. The three files are now removed and
    the message names the one that could not be written."""
    db = imported_db(tmp)
    # Pages of 4 KiB left: none for the report (4 KiB), two for the proposal (16 KiB)
    # and seven for the plot (37 KiB).
    for pages, which in ((0, ".md"), (2, ".json"), (7, ".svg")):
        with full_tmpfs(tmp / ("full%d" % pages), "128k") as d:
            os.truncate(os.path.join(d, "filler"), 131072 - 4096 * pages)
            r, j = calibrate(db, "--out", str(d), "--repeats", "1")
            assert r.rc == 1 and j["ok"] is False, r
            assert re.search(r"writing \S+/token_estimator_calibration_\w+\%s failed: No "
                             r"space left on device; the report, the proposal and the plot "
                             r"were removed$" % which, j["message"]), j["message"]
            assert sorted(os.listdir(d)) == ["filler"]


def test_an_out_directory_named_in_no_utf8_is_shown_with_u_fffd_and_apply_stores(tmp):
    """A directory's name may be any bytes (one in Latin-1: b"r\xe9sultats"). calibrate
    --json wrote its files there and then failed, exit 2 ("the result cannot be written as
    JSON"); --apply failed to store the set at all (its provenance names the files: "NOT
    NULL constraint failed: estimator_coefficients.provenance_json"). The paths are now in
    the JSON with U+FFFD for such a byte, as every --json output shows them."""
    db = imported_db(tmp)
    out = os.path.join(os.fsencode(str(tmp)), b"r\xe9sultats")
    r, j = calibrate(db, "--apply", "--out", os.fsdecode(out), "--repeats", "1")
    assert r.rc == 0, r
    assert j["applied"]["version"] == 2
    shown = str(tmp) + "/r\ufffdsultats/"
    assert all(f.startswith(shown) for f in j["files"].values()), j["files"]
    assert sorted(os.listdir(out)) == sorted(
        os.fsencode(os.path.basename(f)) for f in j["files"].values())
    (prov,), = rows(db, "SELECT provenance_json FROM estimator_coefficients WHERE active = 1")
    assert json.loads(prov)["report"] == j["files"]["report"]


def test_a_category_with_a_pipe_or_a_line_break_stays_in_its_cell_of_the_report(tmp):
    """A category another program wrote with a '|' or a line break was written raw into
    the report's Markdown tables: the '|' split its cell, and a line break ended the row,
    the rest of the name standing as a line (or a forged row) of its own. Such a name is
    now escaped ('\\|') and its line breaks are spaces: every row of every table keeps its
    columns."""
    db = imported_db(tmp)
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE token_estimation_v2_events SET category = ?"
                    " WHERE category = 'implementation'", ("impl|x\n| forged | 1 |",))
    con.close()
    r, j = calibrate(db, "--out", "out", "--repeats", "1")
    assert r.rc == 0, r
    md = open(j["files"]["report"], encoding="utf-8").read()
    assert "forged" in md and "\n| forged" not in md
    assert "impl\\|x \\| forged \\| 1 \\|" in md, md
    for table in re.findall(r"(?:^\|.*\n)+", md, re.M):
        rows_ = table.splitlines()
        cells = {len(re.split(r"(?<!\\)\|", row)) for row in rows_}
        assert len(cells) == 1, table


def test_a_category_with_a_tag_or_a_terminal_escape_is_shown_as_text_in_the_report(tmp):
    """Another program's category holding an HTML tag went raw into the report's Markdown,
    where a viewer renders it as HTML (<img onerror=...>), and one holding ESC or a C1
    control went raw into the file, which a terminal showing it (cat) obeyed; so did an
    excluded event's text. Now a tag's '<', '>' and '&' are entities and every control
    character is written as \\xNN."""
    db = imported_db(tmp)
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE token_estimation_v2_events SET category = ?"
                    " WHERE category = 'implementation'", ("<img src=x onerror=alert(1)>&",))
        con.execute("UPDATE token_estimation_v2_events SET category = ?"
                    " WHERE category = 'tests'", ("t\x1b[2J\u0085\x7f",))
        con.execute("UPDATE token_estimation_v2_events SET actual_output_tokens = ?"
                    " WHERE event_id = (SELECT max(event_id) FROM token_estimation_v2_events)",
                    ("12\n## forged <b>\x1b]0;title\x07",))
    con.close()
    r, j = calibrate(db, "--out", "out", "--repeats", "1")
    assert r.rc == 0, r
    md = open(j["files"]["report"], encoding="utf-8").read()
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;" in md, md
    assert "t\\x1B[2J\\xC2\\x85\\x7F" in md, md
    assert "12 ## forged &lt;b&gt;\\x1B]0;title\\x07" in md, md
    assert "<img" not in md and "<b>" not in md and "\n## forged" not in md
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f]", md), md


def test_a_run_id_that_is_no_utf8_is_quoted_escaped_not_blamed_on_the_disk(tmp):
    """A --run-id of bytes that are not UTF-8 (besides one that names the samples) made
    the JSON proposal impossible to build: calibrate exited 1 saying "writing ….json failed:
    Input/output error" and removed the files, --evaluate --json said its result was not
    UTF-8, and the report's "Runs" line took the argument's ESC raw. The filter is now
    described with each id as the terminal shows it (\\xff, \\e)."""
    db = imported_db(tmp, runs=("r1",))
    bad = os.fsdecode(b"\xff\x1b[2J")
    r, j = calibrate(db, "--out", "out", "--repeats", "1", "--run-id", "r1", "--run-id", bad)
    assert r.rc == 0, r
    md = open(j["files"]["report"], encoding="utf-8").read()
    assert "- Runs: r1, \\xff\\e[2J\n" in md, md
    proposal = json.load(open(j["files"]["proposal"], encoding="utf-8"))
    assert proposal["metadata"]["runs"] == "r1, \\xff\\e[2J"
    r, j = calibrate(db, "--evaluate", "--repeats", "1", "--run-id", "r1", "--run-id", bad)
    assert r.rc == 0 and j["runs"] == "r1, \\xff\\e[2J", r


def test_list_shows_a_set_another_program_stored_with_a_date_that_is_no_utf8(tmp):
    """A coefficient set whose created_at is not UTF-8 (another program's row) was left out
    of `calibrate --list --json` without a word (its object could not be built), and an
    overhead row whose name is no string printed "(null)". It is listed, the bytes that are
    not UTF-8 as U+FFFD, and the name shown as "?"."""
    db = imported_db(tmp)
    con = sqlite3.connect(str(db))
    with con:
        con.execute("INSERT INTO estimator_coefficients (version, created_at, active,"
                    " parent_version, provenance_json, overhead_json) VALUES (7, ?, 0, 1,"
                    " '{\"changes\": [{\"overhead_row\": [null, 5]}]}', '[]')",
                    (b"2026\xff-01-01",))
    con.close()
    r = ctl("--db", url(db), "--json", "calibrate", "--list")
    assert r.rc == 0, r
    sets = json.loads(r.out)["sets"]
    assert [(s["version"], s["created_at"]) for s in sets] == [(7, "2026\ufffd-01-01")], sets
    r = ctl("--db", url(db), "calibrate", "--list")
    assert r.rc == 0 and "2026\\xff-01-01" in r.out and "?/? 0->0" in r.out, r
    assert "(null)" not in r.out


def test_apply_stores_the_fitted_set_with_provenance_and_rollback_restores_defaults(tmp):
    db = imported_db(tmp)
    r, j = calibrate(db, "--apply", "--out", "out", "--repeats", "2")
    assert r.rc == 0, r      # 12 % truncation and 11x waste p90 before: better on both
    assert j["applied"]["version"] == 2 and j["applied"]["parent_version"] == 1
    (version, active, parent, prov, overhead, model), = rows(
        db, "SELECT version, active, parent_version, provenance_json, overhead_json,"
            " model_json FROM estimator_coefficients")
    assert (version, active, parent) == (2, 1, 1)
    assert len(json.loads(overhead)) == 30      # the original's table stays, whole
    model = json.loads(model)
    assert model == j["proposal"]["model"]
    assert close(model["factor"], j["applied"]["factor"])
    p = json.loads(prov)
    assert (p["samples_used"], p["samples_read"], p["duplicates_dropped"]) == (51, 64, 4)
    assert p["based_on_version"] == 1 and p["forced"] is False
    assert p["evaluation"]["proposed"]["kfold"]["n"] == 58
    assert p["sample_estimator_versions"] == {"unknown": 51}
    assert os.path.exists(p["report"]) and os.path.exists(p["plot"])
    assert "estimator coefficient set version 2 is now active" in r.err

    r = ctl("--db", url(db), "calibrate", "--list", "--json")
    assert r.rc == 0 and json.loads(r.out)["active_version"] == 2
    assert json.loads(r.out)["sets"][0]["model"]["factor"] == model["factor"]
    r = ctl("--db", url(db), "calibrate", "--list")
    assert "fitted: F %.3f, 51 samples" % model["factor"] in r.out
    # With the fitted set active, it is the current set of the next evaluation.
    r, j = calibrate(db, "--evaluate", "--repeats", "1")
    assert r.rc == 0 and j["current_version"] == 2
    assert "active set: version 2 (fitted model)" in r.err
    r = ctl("--db", url(db), "calibrate", "--rollback")
    assert r.rc == 0, r
    assert "version 1 (the built-in defaults) is active now" in r.out
    assert rows(db, "SELECT count(*) FROM estimator_coefficients WHERE active = 1") == [(0,)]
    r = ctl("--db", url(db), "calibrate", "--rollback", "--json")
    assert r.rc == 1 and "nothing to roll back" in r.err


def test_apply_refuses_a_set_that_scores_worse_unless_forced(tmp):
    db = imported_db(tmp)
    assert calibrate(db, "--apply", "--coverage", "0.99", "--out", "o",
                     "--repeats", "2")[0].rc == 0
    # A lower coverage gives smaller budgets: more truncations than the active set.
    r, j = calibrate(db, "--apply", "--coverage", "0.5", "--out", "o", "--repeats", "2")
    assert r.rc == 1 and j["ok"] is False, r
    assert "worse than the active set on held-out samples (kfold): truncation" in r.err
    assert rows(db, "SELECT version FROM estimator_coefficients") == [(2,)]
    r, j = calibrate(db, "--apply", "--force", "--coverage", "0.5", "--out", "o",
                     "--repeats", "2")
    assert r.rc == 0 and j["applied"]["version"] == 3, r
    assert "applied anyway (--force)" in r.err
    (prov,), = rows(db, "SELECT provenance_json FROM estimator_coefficients WHERE version = 3")
    assert json.loads(prov)["forced"] is True
    r = ctl("--db", url(db), "calibrate", "--rollback", "--json")
    assert r.rc == 0 and json.loads(r.out)["active_version"] == 2


def test_apply_after_a_set_of_the_highest_version_is_refused_naming_it(tmp):
    """A set another program numbered 2^63-1: --apply computed the next version in SQL,
    which SQLite turned into a real, read back as 2^63-1 again, and the command failed
    'UNIQUE constraint failed: estimator_coefficients.version' without naming why."""
    db = imported_db(tmp)
    assert calibrate(db, "--apply", "--out", "o", "--repeats", "2")[0].rc == 0
    top = 2**63 - 1
    with sqlite3.connect(db) as c:
        c.execute("UPDATE estimator_coefficients SET version = ?", (top,))
    c.close()
    before = rows(db, "SELECT * FROM estimator_coefficients")
    r, j = calibrate(db, "--apply", "--force", "--out", "o2", "--repeats", "2")
    assert r.rc == 1 and j["ok"] is False, r
    assert ("coefficient set %d holds the highest version there is (another program wrote "
            "it), and no set can follow it; renumber or delete it; nothing was applied" % top
            ) in r.err, r.err
    assert "UNIQUE" not in r.err
    assert rows(db, "SELECT * FROM estimator_coefficients") == before


def test_apply_refuses_a_fit_the_supervisor_would_refuse_even_forced(tmp):
    """Three clean events another program wrote with 2^63-1 output tokens made the fit's
    budget factor about 2e15: --apply --force stored it, and every supervisor then refused
    to start ("factor" is not a number from 0.001 to 1000) until a rollback. Such events
    are excluded now; 10^9 output tokens, the most a call records, still make F too large."""
    db = imported_db(tmp)
    add_events(db, 10**9, 3)
    r, j = calibrate(db, "--apply", "--force", "--out", "o", "--repeats", "2")
    assert r.rc == 1 and j["ok"] is False, r
    assert ('the proposal cannot be applied: fitted model: "factor" is not a number from '
            "0.001 to 1000, and the supervisor would refuse to start with it; nothing was "
            "applied") in r.err, r.err
    assert rows(db, "SELECT count(*) FROM estimator_coefficients") == [(0,)]


def add_events(db, actual, n):
    """Copy the first n events as clean ones another program wrote with `actual` output
    tokens."""
    con = sqlite3.connect(str(db))
    with con:
        con.execute("INSERT INTO token_estimation_v2_events (run_id, phase_id, timestamp,"
                    " created_at, category, complexity, deliverable_count, deliverables_json,"
                    " predicted_output_tokens, actual_output_tokens, selected_budget,"
                    " success, truncated, stop_reason, model, is_truncated_output)"
                    " SELECT run_id, phase_id, timestamp, created_at, category, complexity,"
                    " deliverable_count, '[]', predicted_output_tokens, ?,"
                    " selected_budget, 1, 0, 'end_turn', 'm', 0"
                    " FROM token_estimation_v2_events ORDER BY event_id LIMIT ?", (actual, n))
    con.close()


def test_events_with_counts_no_call_records_are_excluded_and_named(tmp):
    """Two clean events another program wrote with 5·10^9 output tokens (no call records
    more than 10^9, the wire's limit) were fitted on: the leave-one-out waste p90 went from
    4.87x to 43.9x. They are excluded, counted and named in the text and the JSON."""
    db = imported_db(tmp)
    r0, j0 = calibrate(db, "--evaluate", "--repeats", "1")
    assert r0.rc == 0, r0
    add_events(db, 5 * 10**9, 2)
    r, j = calibrate(db, "--evaluate", "--repeats", "1")
    assert r.rc == 0, r
    assert j["evaluation"] == j0["evaluation"]
    assert close(j["evaluation"]["proposed"]["loo"]["waste_p90"], 4.87, 1e-3)
    assert j["samples_read"] == 66 and j["samples_used"] == 51
    assert j["implausible_excluded"] == 2
    assert [(e["phase_id"], e["column"], e["value"]) for e in j["implausible_events"]] == [
        ("p01-configuration-low", "actual_output_tokens", 5 * 10**9),
        ("p02-implementation-medium", "actual_output_tokens", 5 * 10**9)]
    assert ("excluded: 2 events recording a count no call can (a token or deliverable count"
            " that is not an integer, below 0 or above 1000000000, written by another"
            " program)") in r.err, r.err
    assert ("phase p01-configuration-low, at 2025-12-23 22:06:12.000000: actual_output_tokens"
            " 5000000000") in r.err
    r, j = calibrate(db, "--out", "out", "--repeats", "1")
    assert r.rc == 0, r
    meta = json.load(open(j["files"]["proposal"]))["metadata"]
    assert meta["implausible_excluded"] == 2 and len(meta["implausible_events"]) == 2
    md = open(j["files"]["report"]).read()
    assert "- Excluded: 2 events recording a count no call can" in md
    assert "  - run imported-autopack-v2-telemetry-samples, phase p02-implementation-medium" in md


def test_a_count_stored_as_text_that_is_no_integer_is_excluded_and_named(tmp):
    """Output tokens '5000abc' another program stored (SQLite keeps such a text as text
    in an INTEGER column) were read as 5000, and the event fitted on as a clean sample."""
    db = imported_db(tmp)
    r0, j0 = calibrate(db, "--evaluate", "--repeats", "1")
    add_events(db, "5000abc", 1)
    assert rows(db, "SELECT count(*) FROM token_estimation_v2_events"
                    " WHERE typeof(actual_output_tokens) = 'text'") == [(1,)]
    r, j = calibrate(db, "--evaluate", "--repeats", "1")
    assert r.rc == 0, r
    assert j["samples_used"] == j0["samples_used"] == 51
    assert j["evaluation"] == j0["evaluation"]
    assert j["implausible_excluded"] == 1
    [e] = j["implausible_events"]
    assert (e["phase_id"], e["column"], e["value"], e["text"]) == (
        "p01-configuration-low", "actual_output_tokens", None, "5000abc")
    assert ("phase p01-configuration-low, at 2025-12-23 22:06:12.000000: actual_output_tokens"
            " '5000abc' (not an integer)") in r.err, r.err


def test_apply_is_refused_while_another_process_holds_the_database(tmp):
    db = imported_db(tmp)
    with open(str(db), "rb") as lock:   # the lock is the database file's own flock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = ctl("--db", url(db), "calibrate", "--apply", "--out", "out")
        assert r.rc == 1 and "pid %d" % os.getpid() in r.err, r
        r = ctl("--db", url(db), "calibrate", "--rollback")
        assert r.rc == 1 and "pid %d" % os.getpid() in r.err, r
        assert ctl("--db", url(db), "calibrate", "--out", "out", "--repeats", "1").rc == 0
    assert rows(db, "SELECT count(*) FROM estimator_coefficients") == [(0,)]


def test_calibrate_refuses_too_few_samples(tmp):
    db = tmp / "e.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    for mode in ((), ("--evaluate",), ("--apply",)):
        r = ctl("--db", url(db), "calibrate", *mode)
        assert r.rc == 1 and "no clean samples" in r.err, r
    few = tmp / "few.tsv"
    with open(SAMPLES) as f:
        few.write_text("".join(f.readlines()[:25]))        # 19 clean, 2 duplicates
    db = imported_db(tmp, "f.db", path=str(few))
    r = ctl("--db", url(db), "calibrate", "--evaluate", "--json")
    assert r.rc == 1 and "the fit needs at least 20" in r.err, r
    assert json.loads(r.out)["error"] == "EINVAL"
    db = imported_db(tmp, "i.db")
    r = ctl("--db", url(db), "calibrate", "--run-id", "another-run", "--json")
    assert r.rc == 1 and "for the given --run-id" in r.err


def test_calibrate_usage_errors_and_help(tmp):
    r = ctl("calibrate", "--help")
    assert r.rc == 0 and "--rollback" in r.out and "conformal" in r.out
    assert "evaluation.<current|proposed>.<loo|kfold|lorun>" in r.out
    # A database that calibrates: each bad value alone makes the exit 2, naming the flag,
    # and the same flag with a good value calibrates (exit 0).
    db = imported_db(tmp)
    for bad, msg, good in [(("--apply", "--rollback"), "exclude one another", ("--evaluate",)),
                           (("--coverage", "1"), "--coverage needs", ("--coverage", "0.9")),
                           (("--coverage", "x"), "--coverage needs", ("--coverage", "0.5")),
                           (("--folds", "1"), "--folds needs", ("--folds", "3")),
                           (("--repeats", "0"), "--repeats needs", ("--repeats", "2")),
                           (("--force",), "--force goes with --apply", ("--apply", "--force")),
                           (("--damping", "sqrt"), "unknown option", ()),
                           (("--min-samples", "0"), "--min-samples needs",
                            ("--min-samples", "1"))]:
        r = ctl("--db", url(db), "calibrate", *bad, "--out", "o")
        assert r.rc == 2 and msg in r.err, (bad, r)
        r = ctl("--db", url(db), "calibrate", *good,
                *(() if "--evaluate" in good else ("--out", "o")),
                *(() if "--repeats" in good else ("--repeats", "1")))
        assert r.rc == 0, (good, r)


def test_an_option_the_mode_would_ignore_is_refused_naming_it(tmp):
    """`calibrate --list --out DIR` listed the sets and ignored --out (an operator who
    expected a file there found none, and no word said so); --rollback and --evaluate
    did the same, and --list and --rollback also ignored --run-id, --coverage and the
    other options that shape a proposal. Each is refused naming the option and the mode,
    exit 2, with nothing changed; without it the mode runs."""
    db = imported_db(tmp)
    before = os.listdir(str(tmp))
    for mode in ("--list", "--rollback", "--evaluate"):
        r = ctl("--db", url(db), "calibrate", mode, "--out", "reports")
        assert r.rc == 2, (mode, r)
        assert ("calibrate: --out does not go with %s, which writes no file: --out names "
                "the directory of a proposal's report (calibrate, calibrate --apply)\n"
                % mode) in r.err, r
        r = ctl("--db", url(db), "calibrate", "--out", "reports", mode, "--json")
        assert r.rc == 2 and json.loads(r.out)["error"] == "EINVAL", (mode, r)
    for mode in ("--list", "--rollback"):
        for opt in (("--run-id", "r"), ("--coverage", "0.9"), ("--folds", "3"),
                    ("--repeats", "2"), ("--min-samples", "3"),
                    ("--confidence-threshold", "0.5")):
            r = ctl("--db", url(db), "calibrate", *opt, mode)
            assert r.rc == 2, (mode, opt, r)
            assert ("%s does not go with %s, which reads no telemetry sample" %
                    (opt[0], mode)) in r.err, r
    assert os.listdir(str(tmp)) == before
    r, j = calibrate(db, "--list")
    assert r.rc == 0 and j["ok"] is True, r
    r, j = calibrate(db, "--evaluate", "--repeats", "1", "--run-id", "imported-autopack-v2-telemetry-samples")
    assert r.rc == 0, r


def test_the_plot_colours_ten_categories_and_counts_the_rest_in_grey(tmp):
    """Past the palette's ten colours categories shared them over again, and the legend
    listed every category, one line each, far below the picture (100,000 categories
    made a legend 2.4 million pixels long). The ten with the most samples keep a colour
    and a line; the others are drawn grey and counted on one line."""
    head = open(SAMPLES, encoding="utf-8").readline()
    path = tmp / "many.tsv"
    with open(path, "w", encoding="utf-8") as out:
        out.write(head)
        for c in range(14):  # category k has 20 - k samples
            for i in range(20 - c):
                out.write("2025-12-23T22:%02d:00Z\tcat%02d\tlow\t%d\t400\t%d\t8192\ttrue\t"
                          "false\tend_turn\tm\n" % (i, c, 1 + i % 5, 300 + 37 * i + c))
    db = imported_db(tmp, path=str(path))
    r, j = calibrate(db, "--out", "out", "--repeats", "1")
    assert r.rc == 0, r
    root = ET.parse(j["files"]["plot"]).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text or "" for t in root.iter(ns + "text")]
    for c in range(10):
        assert "cat%02d (%d)" % (c, 20 - c) in texts, texts
    assert not any(t.startswith(("cat10", "cat13")) for t in texts)
    assert "4 other categories (%d)" % sum(20 - c for c in range(10, 14)) in texts
    fills = {}
    for circle in root.iter(ns + "circle"):
        title = circle.find(ns + "title")
        if title is not None and title.text.startswith("cat"):
            fills.setdefault(title.text[:5], set()).add(
                circle.get("stroke") if circle.get("fill") == "white" else circle.get("fill"))
    assert all(fills["cat%02d" % c] == {"#9a9a9a"} for c in range(10, 14)), fills
    own = [fills["cat%02d" % c] for c in range(10)]
    assert all(len(f) == 1 for f in own) and len(set.union(*own)) == 10, own


def test_reals_are_written_in_the_shortest_form_that_reads_back_the_same(tmp):
    """calibrate --json wrote each real with 17 significant digits ("coverage":
    0.94999999999999996 for --coverage 0.95), and the proposal's file with 15, which does
    not read back as the same double (8.0219008922728 for 8.021900892272797). Both write
    the shortest of 15, 16 and 17 digits that reads back the same: the file's figures are
    the output's, to the bit."""
    db = imported_db(tmp)
    r = ctl("--db", url(db), "calibrate", "--json", "--out", "o", "--repeats", "2")
    assert r.rc == 0, r
    assert '"coverage": 0.95,' in r.out and "0.9499999" not in r.out, r.out
    seen = assert_reals_shortest(r.out)
    assert len(seen) > 50 and any(len(t.strip("-").replace(".", "")) >= 16 for t in seen)
    j, _ = json_reals(r.out)
    assert j["proposal"]["metadata"]["coverage"] == 0.95 == j["proposal"]["model"]["coverage"]
    with open(j["files"]["proposal"]) as f:
        text = f.read()
    assert_reals_shortest(text)
    model = json.loads(text)["model"]
    assert model == j["proposal"]["model"], (model, j["proposal"]["model"])
