"""Shared by the telemetry and calibration tests: the real samples imported into a fresh
database, and plain SQLite reads."""
import os
import sqlite3

from conftest import DATA, ctl

SAMPLES = os.path.join(DATA, "autopack-v2-telemetry-samples.tsv")


def url(path):
    return "sqlite:///" + str(path)


def rows(p, query):
    con = sqlite3.connect(str(p))
    out = con.execute(query).fetchall()
    con.close()
    return out


def imported_db(tmp, name="t.db", runs=(None,), path=SAMPLES):
    """A new database holding the samples of `path` once per run id of `runs` (None: the
    import's own run id)."""
    db = tmp / name
    assert ctl("--db", url(db), "db", "init").rc == 0
    for run in runs:
        r = ctl("--db", url(db), "telemetry", "import", path,
                *(("--run-id", run) if run else ()))
        assert r.rc == 0, r
    return db


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol * max(1.0, abs(b))
