"""A run whose phases deliver a path and a path under it (`out/a.py` and `out/a.py/x.py`)
is refused by `run import`, naming both phases and both paths: it was queued, and the later
of the two phases failed WRITE_FAILED at its dispatch, the workspace holding a file where
its path needs a directory (or the reverse). So is a phase appended to a run whose phases,
already in the database, deliver such a path. Two phases delivering the same file do not
overlap: the later writes it again."""
import sqlite3

import pytest

from conftest import ctl
from test_plan import counts, phase, plan, run_entry, url, write_plan


@pytest.fixture
def db(tmp):
    p = tmp / "plan.db"
    r = ctl("--db", url(p), "db", "init")
    assert r.rc == 0, r
    return p


def delivering(pid, *paths):
    return phase(pid, scope={"paths": ["."], "deliverables": list(paths)})


def overlap(file_who, file, under_who, under):
    return ("the run's deliverables overlap: %s delivers the file \"%s\", and %s delivers "
            "\"%s\" under it: a path cannot be both a file and a directory, so the later of "
            "the two phases would fail WRITE_FAILED; no phase may deliver a path under a file "
            "another phase of its run delivers" % (file_who, file, under_who, under))


# (the first phase's deliverables, the second's, the JSON path of the deliverable refused,
# which phase delivers the file, the file, the path under it)
CASES = {
    "under_a_file": (["out/a.py"], ["out/a.py/x.py"], "deliverables[0]", 1, "out/a.py",
                     "out/a.py/x.py"),
    "a_file_over_a_path": (["out/d/x.py"], ["out/d"], "deliverables[0]", 2, "out/d",
                           "out/d/x.py"),
    "deeper": (["lib/a.py", "out/a"], ["src/b.py", "out/a/b/c.py"], "deliverables[1]", 1,
               "out/a", "out/a/b/c.py"),
    "spelled_otherwise": (["out/a.py"], ["./out//a.py/x.py"], "deliverables[0]", 1,
                          "out/a.py", "out/a.py/x.py"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_phase_delivering_a_path_under_another_phases_file_is_refused(db, tmp, case):
    first, second, where, file_phase, file, under = CASES[case]
    p = write_plan(tmp, plan(run_entry("r1", delivering("p1", *first), phase("p0"),
                                       delivering("p2", *second))))
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 1, r
    p1 = 'phase "p1" (runs[0].tiers[0].phases[0])'
    p2 = 'phase "p2"'
    assert r.err == "autopack-ctl: %s: runs[0].tiers[0].phases[2].scope.%s: %s; nothing was " \
        "written\n" % (p, where, overlap(p1 if file_phase == 1 else p2, file,
                                         p2 if file_phase == 1 else p1, under)), r
    assert counts(db) == (0, 0, 0)
    assert not (tmp / "ws").exists()


def test_phases_in_two_tiers_overlap_too(db, tmp):
    entry = run_entry("r1", delivering("p1", "docs/api"))
    entry["tiers"].append({"tier_id": "T2", "name": "t2",
                           "phases": [delivering("p9", "docs/api/index.md")]})
    r = ctl("--db", url(db), "run", "import", write_plan(tmp, plan(entry)))
    assert r.rc == 1, r
    assert ('runs[0].tiers[1].phases[0].scope.deliverables[0]: ' + overlap(
        'phase "p1" (runs[0].tiers[0].phases[0])', "docs/api", 'phase "p9"',
        "docs/api/index.md")) in r.err, r
    assert counts(db) == (0, 0, 0)


def test_the_same_file_in_two_phases_and_paths_beside_each_other_are_no_overlap(db, tmp):
    """A later phase delivering a file an earlier one delivered rewrites it (a fix, a
    second pass), as a run's phases run one after the other; names that only begin alike
    (`a.py`, `a.py.bak`, `a.pyc`, `a/x.py`) are different paths."""
    p = write_plan(tmp, plan(
        run_entry("r1", delivering("p1", "out/a.py", "out/b/c.py"),
                  delivering("p2", "out/a.py", "out/a.py.bak", "out/a.pyc"),
                  delivering("p3", "out/a/x.py", "out/b/c.py", "out/b/d.py")),
        run_entry("r2", delivering("q1", "out/a.py/x.py"))))
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 0, r
    assert counts(db) == (2, 2, 4)


def append_doc(*phases):
    return plan({"run_id": "r1", "append": True,
                 "tiers": [{"tier_id": "T2", "name": "more", "phases": list(phases)}]})


@pytest.mark.parametrize("first,second,file_is_old", [
    ("out/a.py", "out/a.py/x.py", True), ("out/d/x.py", "out/d", False)])
def test_a_phase_appended_under_a_file_the_run_has_is_refused(db, tmp, first, second,
                                                              file_is_old):
    r = ctl("--db", url(db), "run", "import",
            write_plan(tmp, plan(run_entry("r1", delivering("p1", first), phase("p2")))))
    assert r.rc == 0, r
    p = write_plan(tmp, append_doc(phase("p3"), delivering("p4", "lib/x.py", second)),
                   name="append.json")
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 1, r
    old = 'phase "p1" (already in run "r1")'
    new = 'phase "p4" (runs[0].tiers[0].phases[1])'
    assert r.err == "autopack-ctl: %s: runs[0]: %s; nothing was written\n" % (
        p, overlap(old if file_is_old else new, first if file_is_old else second,
                   new if file_is_old else old, second if file_is_old else first)), r
    assert counts(db) == (1, 1, 2)


def test_an_append_is_judged_on_its_own_phases_not_on_the_runs_old_overlaps(db, tmp):
    """Phases the run already has that overlap each other (imported before the import
    checked, or adopted) do not keep a phase that overlaps none of them from being
    appended; one that overlaps an appended phase is refused."""
    r = ctl("--db", url(db), "run", "import",
            write_plan(tmp, plan(run_entry("r1", delivering("p1", "out/a.py"),
                                           delivering("p2", "out/b.py")))))
    assert r.rc == 0, r
    con = sqlite3.connect(str(db))
    con.execute("UPDATE phases SET scope = ?, state = 'COMPLETE' WHERE phase_id = 'p2'",
                ('{"paths": ["."], "deliverables": ["out/a.py/old.py"]}',))
    con.commit()
    con.close()
    r = ctl("--db", url(db), "run", "import",
            write_plan(tmp, append_doc(delivering("p3", "out/c.py", "out/b.py")),
                       name="a1.json"))
    assert r.rc == 0, r
    doc = append_doc(delivering("p4", "out/c.py/z.py"))
    doc["runs"][0]["tiers"][0]["tier_id"] = "T3"
    p = write_plan(tmp, doc, name="a2.json")
    r = ctl("--db", url(db), "run", "import", p)
    assert r.rc == 1, r
    assert r.err == "autopack-ctl: %s: runs[0]: %s; nothing was written\n" % (p, overlap(
        'phase "p3" (already in run "r1")', "out/c.py",
        'phase "p4" (runs[0].tiers[0].phases[0])', "out/c.py/z.py")), r
    assert counts(db) == (1, 2, 3)
