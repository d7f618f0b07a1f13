"""`autopack-ctl cancel` of a phase whose worker is just sending its result: whichever the
supervisor takes first, the cancel or the result, decides the attempt, and the answer to
the cancel says which. Rogue workers (tests/rogue_worker.py, mode `late`) hold each window
open: one sends its result only once the cancel reached it, as a worker whose result was
on its way would have; one sends it while the commit of its end is held back by a held
fsync of the write-ahead log (tests/tools/fsync_shim.c), and the cancel comes then."""
import json
import os

import pytest

from conftest import preload
from supervisor_helpers import new_db, rogue_notes, rogue_supervisor, sql, wait_for


def attempts(url):
    return sql(url, "SELECT attempt_id, outcome, failure_reason, message FROM attempts"
                    " ORDER BY attempt_id")


def fsyncs_held(tmp):
    """The fsyncs of the write-ahead log begun and not ended (fsync-shim.so's log)."""
    path = os.path.join(str(tmp), "fsync.log")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        words = [line.split()[0] for line in f if line.strip()]
    return words.count("start") - words.count("end")


def reply_body(r):
    """The supervisor's reply as `autopack-ctl cancel --json` prints it."""
    return json.loads(r.out)


@pytest.mark.parametrize("outcome", ["success", "failed"])
def test_a_result_that_comes_after_the_cancel_does_not_undo_it(tmp, outcome):
    """The worker's result was in the supervisor's socket while the cancel was answered
    `cancelling`: a success was taken all the same (attempt success, phase COMPLETE,
    control_log `cancel ok`), and a failure put the phase back in the queue, where it ran
    again. The cancel, taken first, now decides: the attempt ends cancelled, its phase
    SKIPPED, and the result is named in its message."""
    url = new_db(tmp, runs=1, phases=1)
    sup = rogue_supervisor(tmp, url, "late", "--workers", 1, "--exit-when-drained",
                           env={"ROGUE_OUTCOME": outcome})
    try:
        job = wait_for(lambda: rogue_notes(tmp, event="job"), 60, what="the job")[0]
        wait_for(lambda: sql(url, "SELECT count(*) FROM llm_usage_events") == [(1,)], 60,
                 what="the attempt's event")
        r = sup.ctl("cancel", job["run"], job["phase"], "--json")
        assert r.rc == 0, r
        assert reply_body(r)["state"] == "cancelling", r
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        sup.kill()
    # The worker did send its result, after the cancel reached it.
    assert [n["att"] for n in rogue_notes(tmp, event="result")] == [job["att"]]
    assert attempts(url) == [(job["att"], "cancelled", "CANCELLED",
                              "cancelled by the operator; worker pid %d sent its result (%s)"
                              " after the cancel was taken: not used"
                              % (rogue_notes(tmp, event="job")[0]["pid"], outcome))]
    assert sql(url, "SELECT state, builder_attempts FROM phases") == [("SKIPPED", 1)]
    assert sql(url, "SELECT command, ok FROM control_log") == [("cancel", 1)]


@pytest.mark.parametrize("outcome", ["success", "failed"])
def test_a_cancel_after_a_result_whose_end_waits_for_its_commit_says_what_it_found(
        tmp, outcome):
    """The worker's result was taken first, but its end not yet committed (the commit
    waits for the fsync of the group before it, held here): the phase was still EXECUTING
    in the database, and the cancel failed saying so (`is EXECUTING, not QUEUED or
    FAILED`), though no attempt of it ran; a failure then put the phase back in the queue
    and it ran again. Now the end decided first stands and the answer names it: a success
    leaves the phase COMPLETE and the cancel fails naming the attempt's end; a failure's
    phase is SKIPPED with that end and never runs again."""
    url = new_db(tmp, runs=1, phases=1)
    wal = os.path.realpath(url[len("sqlite:///"):]) + "-wal"
    hold = os.path.join(str(tmp), "hold")
    go = os.path.join(str(tmp), "go")
    env = preload("fsync-shim.so", AUTOPACK_SHIM_PATH=wal, AUTOPACK_SHIM_HOLD=hold,
                  AUTOPACK_SHIM_LOG=os.path.join(str(tmp), "fsync.log"),
                  ROGUE_OUTCOME=outcome, ROGUE_GO=go)
    sup = rogue_supervisor(tmp, url, "late", "--workers", 1, "--exit-when-drained",
                           "--fsync-off-loop", env=env)
    try:
        job = wait_for(lambda: rogue_notes(tmp, event="job"), 60, what="the job")[0]
        wait_for(lambda: sql(url, "SELECT count(*) FROM llm_usage_events") == [(1,)], 60,
                 what="the attempt's event")
        # The worker's next three events commit, their fsync held; its result follows,
        # taken while that fsync is held: its end waits for the next commit.
        open(hold, "w").close()
        open(go, "w").close()
        wait_for(lambda: "run-000/p0-0 attempt %d: %s" % (job["att"], outcome)
                 in sup.stderr(), 60, what="the result taken")
        assert fsyncs_held(tmp) == 1
        assert sql(url, "SELECT state FROM phases") == [("EXECUTING",)]
        r = sup.ctl("cancel", job["run"], job["phase"], "--json")
        if outcome == "success":
            assert r.rc != 0, r
            assert ("cancel: phase run-000/p0-0 is COMPLETE: its attempt %d ended success "
                    "before the cancel came" % job["att"]) in r.err, r
        else:
            assert r.rc == 0, r
            body = reply_body(r)
            assert (body["state"], body["attempt_id"], body["attempt_outcome"]) == \
                ("SKIPPED", job["att"], "failed"), r
        os.unlink(hold)
        assert sup.wait(60) == 0, sup.stderr()
    finally:
        if os.path.exists(hold):
            os.unlink(hold)
        sup.kill()
    want = "COMPLETE" if outcome == "success" else "SKIPPED"
    assert sql(url, "SELECT state, builder_attempts FROM phases") == [(want, 1)]
    assert [a[1] for a in attempts(url)] == [outcome]
    assert sql(url, "SELECT command, ok FROM control_log") == [
        ("cancel", int(outcome != "success"))]
