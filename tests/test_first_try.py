"""The first try of an attempt's first LLM call is on record with its lease: the
transaction that opens the attempt reserves its llm_usage_events row (status 'sent',
max_tokens the cap, seq NULL), the job says so (`ann`), and the worker sends that try
without waiting for its announcement's ack. Whatever happens next, the table holds one row
per try a provider may have seen, and none for a try never made."""
import os
import signal

import pytest

from e2e_helpers import Standin, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import (Supervisor, new_db, rogue_notes, rogue_supervisor, status_when,
                                wait_for)

KEY = {"ANTHROPIC_API_KEY": "sk-ant-first-try"}
CAP = 30000  # --max-tokens-cap: above the worker's own 16384 for these phases
NO_DELIVERABLES = '{"paths": ["out/"], "read_only_context": [], "deliverables": []}'
COLS = "attempt_id, status, try_number, max_tokens, seq, role, provider, model"


@pytest.fixture(params=["sqlite", "pg"])
def url(request, tmp):
    """A fresh database on each backend."""
    pg = request.getfixturevalue("pg_url") if request.param == "pg" else None
    return init_db(str(tmp), url=pg)


def received(path):
    """The requests the stand-in has read, answered or not."""
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return len(f.readlines())


def usage_of(url, att):
    return rows(url, "SELECT %s FROM llm_usage_events WHERE attempt_id = ? ORDER BY id" % COLS,
                att)


def attempts(url):
    return rows(url, "SELECT attempt_id, phase_id, outcome FROM attempts ORDER BY attempt_id")


def test_a_worker_killed_before_its_call_leaves_one_lost_row_with_the_cap(tmp, url):
    """The worker is stopped while idle, given its job, and killed before it could read
    it: the provider saw nothing, the reserved row says the try may have been sent."""
    tmp = str(tmp)
    import_plan(tmp, url, [("r1", os.path.join(tmp, "ws"), [phase_spec("p1", ("out/p1.py",))])])
    got = os.path.join(tmp, "received.log")
    llm = Standin(tmp, None, "--received", got)
    sup = Supervisor(tmp, url, "--workers", 0, "--max-tokens-cap", CAP, *llm_args(llm),
                     env=KEY)
    try:
        sup.wait_ready()
        assert sup.ctl("pause").rc == 0
        assert sup.ctl("scale", "1").rc == 0
        st = status_when(sup, lambda s: [w["state"] for w in s["pool"]["workers"]] == ["idle"],
                         what="one idle worker")
        pid = st["pool"]["workers"][0]["pid"]
        os.kill(pid, signal.SIGSTOP)
        assert sup.ctl("resume").rc == 0
        # The lease is committed with its reserved row before the job is sent.
        row = wait_for(lambda: rows(url, "SELECT %s FROM llm_usage_events" % COLS), 60,
                       what="the reserved row")[0]
        assert (row["status"], row["try_number"], row["max_tokens"], row["seq"]) == \
            ("sent", 1, CAP, None)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: rows(url, "SELECT state FROM phases")[0]["state"] == "COMPLETE", 120,
                 what="the phase done by the next worker")
        assert sup.stop_now() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = attempts(url)
    assert [a["outcome"] for a in att] == ["worker_crashed", "success"]
    assert received(got) == 1  # the second attempt's call only
    assert usage_of(url, att[0]["attempt_id"]) == [{
        "attempt_id": att[0]["attempt_id"], "status": "lost", "try_number": 1,
        "max_tokens": CAP, "seq": None, "role": "builder", "provider": "anthropic",
        "model": row["model"]}]
    ok = usage_of(url, att[1]["attempt_id"])
    assert [(u["status"], u["try_number"], u["max_tokens"]) for u in ok] == [("ok", 1, 16384)]
    assert ok[0]["seq"] is not None


def test_a_phase_that_fails_before_its_call_leaves_no_row(tmp, url):
    """A phase with no deliverables: the worker fails it before the LLM call, and its
    result takes the reserved row back."""
    tmp = str(tmp)
    import_plan(tmp, url, [("r1", os.path.join(tmp, "ws"), [phase_spec("p1", ("out/p1.py",))])])
    if url.startswith("postgresql://"):
        import pg_cluster
        pg_cluster.query(url, "UPDATE phases SET scope = ?", NO_DELIVERABLES)
    else:
        import sqlite3
        con = sqlite3.connect(url[len("sqlite:///"):])
        with con:
            con.execute("UPDATE phases SET scope = ?", (NO_DELIVERABLES,))
        con.close()
    got = os.path.join(tmp, "received.log")
    llm = Standin(tmp, None, "--received", got)
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained",
                     "--max-attempts-per-phase", 2, *llm_args(llm), env=KEY)
    try:
        sup.wait(timeout=120)
    finally:
        sup.kill()
        llm.stop()
    att = attempts(url)
    assert att and all(a["outcome"] == "failed" for a in att), (att, sup.stderr())
    assert received(got) == 0
    assert rows(url, "SELECT count(*) AS n FROM llm_usage_events") == [{"n": 0}]


def test_a_worker_killed_during_its_try_leaves_one_lost_row(tmp, url):
    tmp = str(tmp)
    import_plan(tmp, url, [("r1", os.path.join(tmp, "ws"), [phase_spec("p1", ("out/p1.py",))])])
    got = os.path.join(tmp, "received.log")
    llm = Standin(tmp, {"markers": {"out/p1.py": [{"mode": "sleep", "seconds": 60}]}},
                  "--received", got)
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", "--max-tokens-cap", CAP,
                     "--llm-timeout-seconds", 120, *llm_args(llm), env=KEY)
    try:
        sup.wait_ready()
        wait_for(lambda: received(got) == 1, 60, what="the request at the provider")
        worker = [w for w in sup.status()["pool"]["workers"] if w["state"] == "busy"][0]
        os.kill(worker["pid"], signal.SIGKILL)
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = attempts(url)
    assert [a["outcome"] for a in att] == ["worker_crashed", "success"]
    lost = usage_of(url, att[0]["attempt_id"])
    assert [(u["status"], u["try_number"]) for u in lost] == [("lost", 1)]
    # The worker's own max_tokens once its announcement is in, else the cap: both bound
    # what the provider may bill.
    assert lost[0]["max_tokens"] in (16384, CAP)
    assert [(u["status"], u["max_tokens"]) for u in usage_of(url, att[1]["attempt_id"])] == [
        ("ok", 16384)]


def test_each_try_of_a_drained_phase_is_one_row_with_the_workers_max_tokens(tmp, url):
    """A first try that fails, its retry truncated, and the second call with a larger
    budget: three rows, each completed once; the reserved one is the first."""
    tmp = str(tmp)
    import_plan(tmp, url, [("r1", os.path.join(tmp, "ws"),
                            [phase_spec("p1", ("out/p1.py",)), phase_spec("p2", ("out/p2.py",))])])
    llm = Standin(tmp, {"markers": {"out/p1.py": [
        {"mode": "status", "status": 500, "retry_after": 0}, {"mode": "truncated"}]}})
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--max-tokens-cap", CAP,
                     *llm_args(llm), env=KEY)
    try:
        assert sup.wait(timeout=180) == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = {a["phase_id"]: a for a in attempts(url)}
    assert [a["outcome"] for a in att.values()] == ["success", "success"]
    p1 = usage_of(url, att["p1"]["attempt_id"])
    assert [(u["status"], u["try_number"]) for u in p1] == [("error", 1), ("ok", 2), ("ok", 1)]
    assert [u["max_tokens"] for u in p1[:2]] == [16384, 16384]
    assert 16384 < p1[2]["max_tokens"] <= CAP
    assert all(u["seq"] is not None and u["role"] == "builder" for u in p1)
    p2 = usage_of(url, att["p2"]["attempt_id"])
    assert [(u["status"], u["try_number"], u["max_tokens"]) for u in p2] == [("ok", 1, 16384)]
    assert len(llm.requests()) == 4
    assert rows(url, "SELECT count(*) AS n FROM llm_usage_events") == [{"n": 4}]


def test_a_dry_run_reserves_nothing(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", os.path.join(tmp, "ws"), [phase_spec("p1", ("out/p1.py",))])])
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", "--dry-run", env=KEY)
    try:
        assert sup.wait(timeout=60) == 0, sup.stderr()
    finally:
        sup.kill()
    assert [a["outcome"] for a in attempts(url)] == ["dry_run"]
    assert rows(url, "SELECT count(*) AS n FROM llm_usage_events") == [{"n": 0}]


def test_the_ack_of_the_first_try_is_held_until_the_worker_waits_for_it(tmp):
    """The worker does not wait for the announcement of the try on record with the lease:
    its ack is not written once the announcement is committed (the worker would only read
    it), and it is written at once when the worker says it waits for it."""
    url = new_db(tmp, runs=1, phases=2)
    sup = rogue_supervisor(tmp, url, "announce", "--workers", 1, "--exit-when-drained")
    assert sup.wait(timeout=120) == 0, sup.stderr()
    unasked = rogue_notes(tmp, event="unasked")
    asked = rogue_notes(tmp, event="asked")
    assert len(unasked) == 2 and all(n["t"] == [] for n in unasked), unasked
    assert [n["ack"] for n in asked] == [1, 1], asked
    assert all(n["after"] < 0.5 for n in asked), asked
