"""autopack-ctl telemetry import / report / export on real SQLite files, checked against
the formulas of docs/telemetry.md recomputed here with the statistics module."""
import csv
import fcntl
import json
import os
import sqlite3
import statistics

import pytest

from conftest import assert_reals_shortest, ctl
from supervisor_helpers import full_tmpfs
from telemetry_helpers import SAMPLES, close, imported_db, rows, url

RUN = "imported-autopack-v2-telemetry-samples"


def tsv_samples():
    with open(SAMPLES) as f:
        return [dict(r, predicted=int(r["predicted_output"]), actual=int(r["actual_output"]),
                     success=r["success"] == "true", truncated=r["truncated"] == "true")
                for r in csv.DictReader(f, delimiter="\t")]


def v3_metrics(samples):
    """The v3 analyser's numbers (scripts/analyze_token_telemetry_v3.py), recomputed."""
    waste = [s["predicted"] / s["actual"] for s in samples]
    smape = [200 * abs(s["actual"] - s["predicted"]) / (s["actual"] + s["predicted"])
             for s in samples if not s["truncated"]]
    n = len(samples)
    return {
        "under": 100 * sum(s["actual"] > s["predicted"] for s in samples) / n,
        "trunc": 100 * sum(s["truncated"] for s in samples) / n,
        "success": 100 * sum(s["success"] for s in samples) / n,
        "waste_median": statistics.median(waste),
        "waste_mean": statistics.mean(waste),
        "waste_p90": statistics.quantiles(waste, n=10)[8] if n >= 10 else max(waste),
        "smape_mean": statistics.mean(smape),
        "smape_median": statistics.median(smape),
        "smape_n": len(smape),
    }


def test_import_of_the_real_samples_creates_a_run_with_one_phase_per_group(tmp):
    db = imported_db(tmp)
    assert rows(db, "SELECT id, state FROM runs") == [(RUN, "DONE_SUCCESS")]
    assert rows(db, "SELECT count(*), sum(state = 'COMPLETE') FROM phases") == [(13, 13)]
    assert rows(db, "SELECT count(*), sum(success), sum(truncated), "
                    "count(estimator_version) FROM token_estimation_v2_events") == [
        (64, 55, 7, 0)]
    # The FK to phases holds for every event, and each event's phase is its own pair's.
    assert rows(db, "PRAGMA foreign_key_check") == []
    assert rows(db, "SELECT count(*) FROM token_estimation_v2_events e JOIN phases p"
                    " ON p.phase_id = e.phase_id AND p.run_id = e.run_id"
                    " WHERE p.task_category = e.category AND p.complexity = e.complexity"
            ) == [(64,)]
    # Derived as the supervisor derives them (docs/data-model.md).
    (smape, waste, under), = rows(
        db, "SELECT smape_percent, waste_ratio, underestimated FROM token_estimation_v2_events"
            " WHERE predicted_output_tokens = 5200 AND actual_output_tokens = 1218")
    assert round(smape, 1) == 124.1 and close(waste, 5200 / 1218) and under == 0


def test_import_json_reports_counts_and_the_run(tmp):
    db = tmp / "t.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    r = ctl("--db", url(db), "telemetry", "import", SAMPLES, "--run-id", "dec-2025", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert (j["run_id"], j["samples"], j["clean"], j["phases"]) == ("dec-2025", 64, 55, 13)
    assert "== autopack database ==" in r.err


def test_import_json_of_a_file_named_in_no_utf8_shows_u_fffd_and_exits_0(tmp):
    """A file's name may be any bytes (b"d\xe9c.tsv", Latin-1). import --json committed
    the samples, then could not write its JSON and exited 2: a script taking that for a
    failure and importing again was refused, the run existing. The name is now in the
    JSON with U+FFFD for such a byte."""
    db = tmp / "t.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    name = os.path.join(os.fsencode(str(tmp)), b"d\xe9c.tsv")
    with open(SAMPLES, "rb") as f, open(name, "wb") as out:
        out.write(f.read())
    r = ctl("--db", url(db), "telemetry", "import", os.fsdecode(name), "--run-id", "dec",
            "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert j["file"] == str(tmp) + "/d\ufffdc.tsv" and j["samples"] == 64, j


def test_import_refuses_a_malformed_tsv_naming_line_and_column_and_writes_nothing(tmp):
    db = tmp / "t.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    lines = open(SAMPLES).read().splitlines(True)
    bad = lines[:5] + [lines[5].replace("\t780\t", "\t78x\t")] + lines[6:]
    assert bad[5] != lines[5]
    (tmp / "bad.tsv").write_text("".join(bad))
    r = ctl("--db", url(db), "telemetry", "import", "bad.tsv", "--json")
    assert r.rc == 1, r
    assert "bad.tsv:6: column predicted_output: expected a non-negative integer, got '78x'" \
        in r.err
    assert json.loads(r.out)["error"] == "EINVAL"
    assert rows(db, "SELECT count(*) FROM runs") == [(0,)]
    assert rows(db, "SELECT count(*) FROM token_estimation_v2_events") == [(0,)]


@pytest.mark.parametrize("column,old,shown", [
    ("predicted_output", "\t780\t", "expected a non-negative integer, got '%s'"),
    ("timestamp", None, "expected a UTC time like 2025-12-23T22:06:12Z, got '%s'"),
])
def test_import_error_quotes_a_long_field_cut_at_a_character_start(tmp, column, old, shown):
    """A field longer than 40 bytes was quoted cut at its 40th byte, inside the
    two-byte character there: the terminal showed a \\xc3 and the JSON message a
    U+FFFD. The cut is now at the start of that character."""
    db = tmp / "t.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    field = "x" + "\u00e9" * 30
    lines = open(SAMPLES).read().splitlines(True)
    if old is None:
        bad = lines[5].split("\t", 1)
        bad = field + "\t" + bad[1]
    else:
        bad = lines[5].replace(old, "\t%s\t" % field)
    assert bad != lines[5]
    (tmp / "bad.tsv").write_text("".join(lines[:5] + [bad] + lines[6:]), encoding="utf-8")
    r = ctl("--db", url(db), "telemetry", "import", "bad.tsv", "--json")
    assert r.rc == 1, r
    want = "bad.tsv:6: column %s: " % column + shown % ("x" + "\u00e9" * 19)
    assert want in r.err, r
    assert "\\x" not in r.err, r
    assert want in json.loads(r.out)["message"], r.out
    assert "\ufffd" not in r.out, r.out


def test_report_and_export_write_each_real_in_its_shortest_form(tmp):
    """report --json and export wrote each real with 17 significant digits; each is the
    shortest of 15, 16 and 17 digits that reads back as the same double."""
    db = imported_db(tmp)
    r = ctl("--db", url(db), "telemetry", "report", "--json")
    assert r.rc == 0, r
    seen = assert_reals_shortest(r.out)
    r = ctl("--db", url(db), "telemetry", "export")
    assert r.rc == 0, r
    for line in r.out.splitlines():
        seen += assert_reals_shortest(line)
    assert len(seen) > 100 and any(len(t) >= 17 for t in seen), seen


def test_import_reads_a_tsv_named_dash_from_standard_input(tmp):
    """`telemetry import -` looked for a file named `-`, as `run import -` did: samples piped
    from another program could not be imported. `-` is standard input."""
    db = tmp / "t.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    with open(SAMPLES) as f:
        text = f.read()
    r = ctl("--db", url(db), "telemetry", "import", "-", input=text)
    assert r.rc == 0, r
    assert "from standard input into run imported-stdin" in r.out, r
    r = ctl("--db", url(db), "telemetry", "import", "-", "--run-id", "batch-7", "--json",
            input=text)
    assert r.rc == 0 and json.loads(r.out)["run_id"] == "batch-7", r
    r = ctl("--db", url(db), "telemetry", "import", "-", "--run-id", "bad", input="x\ty\n")
    assert r.rc == 1 and "autopack-ctl: standard input:1: unknown column 'x'" in r.err, r
    assert rows(db, "SELECT id FROM runs ORDER BY id") == [("batch-7",), ("imported-stdin",)]


def test_import_twice_is_refused_and_changes_nothing(tmp):
    db = imported_db(tmp)
    r = ctl("--db", url(db), "telemetry", "import", SAMPLES)
    assert r.rc == 1, r
    assert "run %s already exists" % RUN in r.err
    assert rows(db, "SELECT count(*) FROM token_estimation_v2_events") == [(64,)]


def test_import_is_refused_while_another_process_holds_the_database(tmp):
    db = tmp / "t.db"
    assert ctl("--db", url(db), "db", "init").rc == 0
    with open(str(db), "rb") as lock:   # the lock is the database file's own flock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = ctl("--db", url(db), "telemetry", "import", SAMPLES)
        assert r.rc == 1, r
        assert "is held by" in r.err and "pid %d" % os.getpid() in r.err
    assert rows(db, "SELECT count(*) FROM token_estimation_v2_events") == [(0,)]


def test_report_matches_the_v3_analyser_formulas_on_the_real_samples(tmp):
    db = imported_db(tmp)
    r = ctl("--db", url(db), "telemetry", "report", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    m = j["metrics"]
    want = v3_metrics(tsv_samples())
    assert m["samples"] == 64
    assert close(m["underestimation"]["pct"], want["under"])
    assert close(m["truncation"]["pct"], want["trunc"])
    assert close(m["success"]["pct"], want["success"])
    assert close(m["waste"]["median"], want["waste_median"])
    assert close(m["waste"]["mean"], want["waste_mean"])
    assert close(m["waste"]["p90"], want["waste_p90"])
    assert m["smape"]["samples"] == want["smape_n"] == 57
    assert close(m["smape"]["mean"], want["smape_mean"])
    assert close(m["smape"]["median"], want["smape_median"])
    assert m["truncated_lower_bounds"]["samples"] == 7
    assert j["tuning_needed"] is True and m["underestimation"]["above_target"] is True
    assert j["waste_definition"] == "predicted / actual"


def test_report_success_only_and_stratified_by_category_complexity_and_bucket(tmp):
    db = imported_db(tmp)
    r = ctl("--db", url(db), "telemetry", "report", "--success-only", "--stratify", "--json")
    assert r.rc == 0, r
    j = json.loads(r.out)
    clean = [s for s in tsv_samples() if s["success"]]
    want = v3_metrics(clean)
    assert j["metrics"]["samples"] == 55 and j["samples_read"] == 64
    assert close(j["metrics"]["smape"]["mean"], want["smape_mean"])
    cats = {s["key"]: s for s in j["strata"]["category"]}
    impl = [s for s in clean if s["category"] == "implementation"]
    assert cats["implementation"]["samples"] == len(impl) == 32
    assert close(cats["implementation"]["waste"]["p90"], v3_metrics(impl)["waste_p90"])
    assert [s["key"] for s in j["strata"]["deliverables"]] == ["0-1", "2-5"]
    assert [s["key"] for s in j["strata"]["complexity"]] == ["high", "low", "medium"]
    assert [s["key"] for s in j["strata"]["estimator_version"]] == ["unknown"]


def test_report_text_shows_tiers_and_the_tuning_flag(tmp):
    db = imported_db(tmp)
    r = ctl("--db", url(db), "telemetry", "report", "--stratify")
    assert r.rc == 0, r
    assert "Tier 1: risk" in r.out and "Tier 2: over-prediction (predicted ÷ actual" in r.out
    assert "under-predicted   50.0 %" in r.out
    assert "predicted/actual median" in r.out and "waste" not in r.out
    assert "Tuning decision: TUNING NEEDED; under-predicted 50.0 % > 5 %; truncation " \
           "10.9 % > 2 %" in r.out
    assert "By deliverables" in r.out and "By estimator_version" in r.out


def test_report_filters_by_run_and_refuses_when_nothing_matches(tmp):
    db = imported_db(tmp)
    r = ctl("--db", url(db), "telemetry", "report", "--run-id", "other", "--json")
    assert r.rc == 1, r
    assert "no token_estimation_v2 events" in r.err
    r = ctl("--db", url(db), "telemetry", "report", "--run-id", RUN, "--json")
    assert r.rc == 0 and json.loads(r.out)["metrics"]["samples"] == 64
    r = ctl("--db", url(db), "telemetry", "report", "--under-multiplier", "0.5")
    assert r.rc == 2 and "--under-multiplier needs a number from 1" in r.err


def test_report_json_names_every_run_id_it_was_given_even_one_that_is_no_utf8(tmp):
    """A --run-id of bytes that are not UTF-8 was left out of the report's
    filter.run_ids without a word (its JSON string could not be made), so the filter it
    showed was not the one applied. It is there, each such byte as U+FFFD."""
    db = imported_db(tmp)
    r = ctl("--db", url(db), "telemetry", "report", "--run-id", RUN, "--run-id",
            os.fsdecode(b"x\xff\x1b"), "--json")
    assert r.rc == 0, r
    assert json.loads(r.out)["filter"]["run_ids"] == [RUN, "x\ufffd\x1b"]


def test_export_writes_every_event_as_ndjson(tmp):
    db = imported_db(tmp)
    r = ctl("--db", url(db), "telemetry", "export")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert len(lines) == 64
    first = json.loads(lines[0])
    assert first["run_id"] == RUN and first["success"] is False
    assert first["predicted_output_tokens"] == 462 and first["estimator_version"] is None
    assert "exported 64 token_estimation_v2 events" in r.err
    assert "== autopack database ==" in r.err
    r = ctl("--db", url(db), "telemetry", "export", "--run-id", "none", "--out", "e.ndjson")
    assert r.rc == 0 and (tmp / "e.ndjson").read_text() == ""
    # --out - is standard output, as a plan named - is standard input: no file "-".
    r = ctl("--db", url(db), "telemetry", "export", "--out", "-")
    assert r.rc == 0 and len(r.out.splitlines()) == 64, r
    assert not os.path.exists(str(tmp / "-"))
    # /dev/stdout is the standard output it names, as it is open: appended to after >>.
    # It was opened again by its name and emptied (and then replaced), losing the lines
    # that were there.
    import subprocess
    from conftest import binpath
    for name in ("/dev/stdout", "/proc/self/fd/1", "-"):
        (tmp / "all.ndjson").write_text("earlier\n")
        with open(str(tmp / "all.ndjson"), "a") as f:
            p = subprocess.run([binpath("autopack-ctl"), "--db", url(db), "telemetry",
                                "export", "--out", name], stdout=f, stderr=subprocess.PIPE,
                               timeout=60)
        assert p.returncode == 0, p
        lines = (tmp / "all.ndjson").read_text().splitlines()
        assert lines[0] == "earlier" and len(lines) == 65, (name, lines[:2])


def test_export_json_errors_are_one_line_as_every_line_it_writes(tmp):
    """export writes one JSON object a line; with --json its errors came as an indented
    object of five lines, which a reader taking the output line by line could not parse.
    An error is one line now."""
    db = imported_db(tmp)
    (tmp / "adir").mkdir()
    for args, rc in ((("--out", str(tmp / "adir")), 1), (("--out", ""), 2),
                     (("--bogus",), 2)):
        r = ctl("--db", url(db), "telemetry", "export", "--json", *args)
        assert r.rc == rc, r
        lines = r.out.splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["ok"] is False, (args, r.out)


def test_export_writes_an_infinite_value_another_program_stored_as_null(tmp):
    """SQLite holds an infinity in a REAL or INTEGER column (`1e999` in its shell); JSON
    has none, and the export wrote the row without the column: a line with no
    actual_output_tokens, smape_percent or waste_ratio key, exit 0."""
    db = imported_db(tmp)
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE token_estimation_v2_events SET actual_output_tokens = 1e999,"
                    " smape_percent = 1e999, waste_ratio = -1e999 WHERE event_id = 2")
    con.close()
    r = ctl("--db", url(db), "telemetry", "export")
    assert r.rc == 0, r
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert len({tuple(sorted(e)) for e in lines}) == 1, "every line has the same keys"
    second = lines[1]
    assert second["event_id"] == 2, second
    assert (second["actual_output_tokens"], second["smape_percent"],
            second["waste_ratio"]) == (None, None, None), second


def test_export_writes_a_nan_another_program_stored_on_postgresql_as_null(tmp, pg_url):
    """PostgreSQL's FLOAT holds NaN and infinities (SQLite turns a NaN into NULL): the
    export wrote the row without the column, as for an infinity on SQLite."""
    from supervisor_helpers import sql
    assert ctl("--db", pg_url, "db", "init").rc == 0
    assert ctl("--db", pg_url, "telemetry", "import", SAMPLES).rc == 0
    sql(pg_url, "UPDATE token_estimation_v2_events SET smape_percent = 'NaN',"
        " waste_ratio = '-Infinity' WHERE event_id = 2")
    r = ctl("--db", pg_url, "telemetry", "export")
    assert r.rc == 0, r
    lines = {e["event_id"]: e for e in map(json.loads, r.out.splitlines())}
    assert (lines[2]["smape_percent"], lines[2]["waste_ratio"]) == (None, None), lines[2]
    assert lines[1]["smape_percent"] is not None


def test_export_writes_blobs_and_texts_that_are_no_utf8_whole(tmp):
    """A SQLAlchemy app of the Python original writes bytes as a BLOB, which SQLite keeps
    in any column: the export wrote each byte of a BLOB or a text that is not UTF-8
    past 0x7f as "?" and cut it at its first NUL ("feat" of b"feat\\0\\xffure"), and
    the bytes were lost. Such a value is now an object holding its bytes in hex; a text
    that is UTF-8 stays a string, a NUL in it as \\u0000."""
    db = imported_db(tmp)
    con = sqlite3.connect(str(db))
    with con:
        con.execute("UPDATE token_estimation_v2_events SET category = ? WHERE event_id = 1",
                    (b"feat\0\xffure",))
        con.execute("UPDATE token_estimation_v2_events SET model = ? WHERE event_id = 1",
                    (b"claude",))
        con.execute("UPDATE token_estimation_v2_events SET stop_reason = "
                    "CAST(X'656e64ff' AS TEXT) WHERE event_id = 2")
        con.execute("UPDATE token_estimation_v2_events SET complexity = ? WHERE event_id = 3",
                    ("lo\0w",))
        con.execute("UPDATE token_estimation_v2_events SET success = X'01' WHERE event_id = 4")
    con.close()
    r = ctl("--db", url(db), "telemetry", "export")
    assert r.rc == 0, r
    events = {e["event_id"]: e for e in map(json.loads, r.out.splitlines())}
    assert events[1]["category"] == {"blob_hex": b"feat\0\xffure".hex()}, events[1]
    assert events[1]["model"] == {"blob_hex": b"claude".hex()}, events[1]
    assert events[2]["stop_reason"] == {"text_hex": "656e64ff"}, events[2]
    assert events[3]["complexity"] == "lo\0w", events[3]
    assert events[4]["success"] == {"blob_hex": "01"}, events[4]
    assert events[5]["category"] == "integration" and events[5]["success"] is True
    h = ctl("telemetry", "export", "--help")
    assert '{"blob_hex": "<its bytes in hex>"}' in h.out, h


def test_export_on_a_full_disk_leaves_the_file_as_it_was(tmp):
    """`telemetry export --out FILE` truncated FILE and wrote into it: on a full disk it
    exited with FILE cut short, a partial export under the name of a finished one (and an
    earlier export lost). It writes a temporary beside FILE and renames it over FILE once
    complete; on a failure the temporary is removed, FILE keeps what it held, and the error
    names FILE and the errno."""
    db = imported_db(tmp)
    with full_tmpfs(tmp / "disk", "64k") as disk:
        os.unlink(os.path.join(disk, "filler"))
        out = os.path.join(disk, "events.ndjson")
        with open(out, "w") as f:
            f.write("earlier export\n")
        os.chmod(out, 0o640)
        # 24 KiB left: a part of the 57 KiB export fits, then ENOSPC.
        with open(os.path.join(disk, "filler"), "wb") as f:
            f.write(b"\0" * (36 << 10))
        for args in ((), ("--json",)):
            r = ctl("--db", url(db), "telemetry", "export", "--out", out, *args)
            assert r.rc == 2, r
            line = ("writing %s failed: No space left on device (ENOSPC); %s is as it was"
                    % (out, out))
            assert r.err.endswith("autopack-ctl: %s\n" % line), r.err
            if args:
                assert json.loads(r.out) == {"ok": False, "error": "EIO", "message": line}, r
            assert open(out).read() == "earlier export\n"
            assert sorted(os.listdir(disk)) == ["events.ndjson", "filler"], os.listdir(disk)
        # With room, the whole export replaces it, keeping its mode.
        os.unlink(os.path.join(disk, "filler"))
        r = ctl("--db", url(db), "telemetry", "export", "--out", out)
        assert r.rc == 0, r
        assert len(open(out).read().splitlines()) == 64
        assert oct(os.stat(out).st_mode & 0o777) == "0o640"
        assert sorted(os.listdir(disk)) == ["events.ndjson"]


def test_export_replaces_the_file_a_link_names_and_names_a_directory_it_cannot_write(tmp):
    """Through a symbolic link the file it names is replaced (the link stays); a directory
    where the temporary cannot be made is named, with the cause."""
    db = imported_db(tmp)
    (tmp / "real.ndjson").write_text("old\n")
    os.symlink("real.ndjson", str(tmp / "link.ndjson"))
    r = ctl("--db", url(db), "telemetry", "export", "--out", "link.ndjson")
    assert r.rc == 0, r
    assert os.path.islink(str(tmp / "link.ndjson"))
    assert len((tmp / "real.ndjson").read_text().splitlines()) == 64
    r = ctl("--db", url(db), "telemetry", "export", "--out", "nodir/e.ndjson")
    assert r.rc == 1, r
    assert r.err.endswith("autopack-ctl: cannot write nodir/e.ndjson: cannot make the "
                          "temporary file it is written through in its directory nodir/: "
                          "No such file or directory\n"), r
    assert sorted(os.listdir(str(tmp))) == ["link.ndjson", "real.ndjson", "t.db"]


def test_every_telemetry_command_has_help(tmp):
    for cmd in ("report", "import", "export"):
        r = ctl("telemetry", cmd, "--help")
        assert r.rc == 0 and r.out.startswith("usage: autopack-ctl [--db URL] telemetry " + cmd)
