"""Infrastructure failures are not the phase's doing. A worker killed from outside (as the
OOM killer would), a phase's own code killing its worker, a worker that cannot even start:
the attempt is requeued and counts toward that phase's own attempt limit, never toward a
run's fingerprint stop or triage. Repeated failures trip a breaker that pauses dispatch
(resumable), or with --exit-when-drained exits 4; a spawn that fails is retried with
backoff, never an abort."""
import json
import os
import random
import shutil
import signal
import stat

import pytest

from conftest import binpath
from e2e_helpers import Standin, checks_where, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor, status_when, wait_for

KEY = {"ANTHROPIC_API_KEY": "sk-ant-infra"}


def plan(tmp, url, runs, phases, check=None):
    ws = os.path.join(tmp, "ws")
    import_plan(tmp, url, [
        ("run-%02d" % r, ws, [phase_spec("p%d" % p, ("out/r%02d_p%d.py" % (r, p),), check=check)
                              for p in range(phases)])
        for r in range(runs)])


def state_of(url):
    return json.loads(rows(url, "SELECT state_json FROM drain_sessions")[0]["state_json"])


def test_workers_killed_from_outside_stop_no_run_and_every_call_is_recorded(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    plan(tmp, url, 15, 4)
    received = os.path.join(tmp, "received.log")
    # Each call waits at the stand-in until the test lets it go (the file go-N for the
    # Nth call): a kill aimed at a worker in its call finds it there, however slow the
    # machine.
    llm = Standin(tmp, {"default": {"mode": "sleep", "seconds": 100,
                                    "until": os.path.join(tmp, "go-{n}")}},
                  "--received", received)
    let_go = [0]

    def arrived():
        if not os.path.exists(received):
            return 0
        with open(received) as f:
            return len(f.readlines())

    def held():
        """The calls that reached the stand-in and wait there unanswered."""
        return arrived() - len(llm.requests())

    def release():
        """Let the calls held at the stand-in be answered; the next ones are held."""
        n = arrived()
        for k in range(let_go[0] + 1, n + 1):
            open(os.path.join(tmp, "go-%d" % k), "w").close()
        let_go[0] = n
        wait_for(lambda: len(llm.requests()) >= n, 60, what="the held calls answered")

    sup = Supervisor(tmp, url, "--workers", 4, "--exit-when-drained",
                     "--max-attempts-per-phase", 5, *llm_args(llm), env=KEY)
    rng = random.Random(13)
    kills, killed_phase, targeted = 0, {}, []

    def successes():
        return rows(url, "SELECT count(*) AS n FROM attempts WHERE outcome = 'success'")[0]["n"]

    def aims():
        """The busy workers whose call is on record as sent, on a phase not killed twice
        already, once every busy worker's call waits at the stand-in; when none of them
        may be killed, their calls are let go."""
        busy = [w for w in sup.status()["pool"]["workers"] if w["state"] == "busy"]
        if not busy or held() != len(busy):
            return None
        aims = [w for w in busy if killed_phase.get((w["run_id"], w["phase_id"]), 0) < 2
                and rows(url, "SELECT id FROM llm_usage_events WHERE attempt_id = ? AND"
                         " status = 'sent' AND seq IS NOT NULL", w["attempt_id"])]
        if not aims and all(killed_phase.get((w["run_id"], w["phase_id"]), 0) >= 2
                            for w in busy):
            release()
        return aims

    def progressed(done):
        """Whether a phase succeeded since `done` successes; else the calls held are let
        go, for the next to succeed."""
        if successes() > done:
            return True
        if held() > 0:
            release()
        return False

    try:
        sup.wait_ready()
        while kills < 12:
            done = successes()
            w = rng.choice(wait_for(aims, 60, what="a call held at the stand-in"))
            os.kill(w["pid"], signal.SIGKILL)
            targeted.append(w["attempt_id"])
            kills += 1
            key = (w["run_id"], w["phase_id"])
            killed_phase[key] = killed_phase.get(key, 0) + 1
            # Let the pool show it still works before the next kill (five failures in a
            # row with nothing done between them would rightly trip the breaker).
            wait_for(lambda: progressed(done), 60, what="progress after a kill")
        wait_for(lambda: release() or sup.proc.poll() is not None, 300, what="the drain's end")
        assert sup.wait(timeout=300) == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    assert rows(url, "SELECT state, count(*) AS n FROM phases GROUP BY state") == [
        {"state": "COMPLETE", "n": 60}]
    crashed = rows(url, "SELECT attempt_id, fingerprint FROM attempts"
                   " WHERE outcome = 'worker_crashed'")
    # A kill lands on the call it aimed at, unless that call was answered and its attempt
    # committed in the instant between the status read and the signal: then the worker
    # dies idle, or in its next attempt (which is the one that crashed).
    outcome = {r["attempt_id"]: r["outcome"] for r in rows(
        url, "SELECT attempt_id, outcome FROM attempts")}
    missed = sum(outcome[a] == "success" for a in targeted)
    assert all(outcome[a] in ("worker_crashed", "success") for a in targeted), outcome
    assert missed <= 2 and 12 - missed <= len(crashed) <= 12, (missed, crashed)
    # Every request the provider saw is a row (the workers are gone: no more can come): the
    # killed calls as lost. A lost row more than the requests is a call announced, then
    # killed before it left the worker.
    usage = rows(url, "SELECT attempt_id, status, max_tokens FROM llm_usage_events")
    with open(received) as f:
        seen = len(f.readlines())
    n_lost = sum(u["status"] == "lost" for u in usage)
    assert seen <= len(usage) <= seen + n_lost, (seen, len(usage), n_lost)
    # Each kill aimed at a call in flight; one that had just been answered leaves no lost
    # row, so up to 12, and only of killed attempts.
    lost = [u["attempt_id"] for u in usage if u["status"] == "lost"]
    assert 1 <= len(lost) <= 12 and set(lost) <= {c["attempt_id"] for c in crashed}
    # A lost try has the worker's max_tokens, or the cap (64000) when the worker died
    # before its announcement of the attempt's first try was in.
    assert all(u["status"] == "ok" and u["max_tokens"] == 16384 or
               u["status"] == "lost" and u["max_tokens"] in (16384, 64000) for u in usage)
    # No run was stopped or deprioritised, and no crash fingerprint was counted.
    st = state_of(url)
    assert st["stopped_runs"] == [] and st["deprioritized_runs"] == []
    assert not any("WORKER_CRASHED" in fp for fp in st["fingerprint_counts"])
    assert st["end"]["exit_status"] == 0 and st["end"]["left"] == []
    assert "[BREAKER]" not in sup.stderr()


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_phase_that_kills_its_worker_fails_alone_and_one_that_signals_it_is_ignored(tmp, where):
    """Without namespaces, a check's $PPID is its worker; in a PID namespace of its own,
    the namespace's init, which takes no signal from inside it."""
    prefix = checks_where(where)
    tmp = str(tmp)
    url = init_db(tmp)
    ws = os.path.join(tmp, "ws")
    import_plan(tmp, url, [
        ("hostile", ws, [phase_spec("kill", ("out/kill.py",), check="kill -9 $PPID"),
                         phase_spec("after", ("out/after.py",))]),
        ("signaller", ws, [phase_spec("term", ("out/term.py",),
                                      check="kill -TERM $PPID; kill -INT $PPID; sleep 0.5")]),
        ("calm", ws, [phase_spec("c%d" % i, ("out/c%d.py" % i,)) for i in range(3)]),
    ])
    llm = Standin(tmp)
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", *llm_args(llm), env=KEY,
                     prefix=prefix)
    try:
        assert sup.wait(timeout=300) == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    att = rows(url, "SELECT run_id, phase_id, outcome FROM attempts ORDER BY attempt_id")
    if where == "namespaces":
        # The init ignored them all: every phase passed at its first attempt.
        assert sorted(a["outcome"] for a in att) == ["success"] * 6, sup.stderr()
        assert "ignoring a stop signal from pid" not in sup.stderr()
        return
    # The phase killed its worker on each of its three attempts, then FAILED.
    assert [a["outcome"] for a in att if a["phase_id"] == "kill"] == ["worker_crashed"] * 3
    assert rows(url, "SELECT run_id, phase_id, state, last_failure_reason FROM phases"
                " WHERE state != 'COMPLETE'") == [
        {"run_id": "hostile", "phase_id": "kill", "state": "FAILED",
         "last_failure_reason": "WORKER_CRASHED"}]
    # Only that phase paid: its run went on, and its check's signals to the worker of the
    # other run were ignored.
    assert [a["outcome"] for a in att if a["phase_id"] in ("after", "term")] == [
        "success", "success"]
    st = state_of(url)
    assert st["stopped_runs"] == [] and st["deprioritized_runs"] == []
    assert "ignoring a stop signal from pid" in sup.stderr()


def fake_worker(tmp, flag):
    """A worker binary that exits 1 at once while `flag` exists, else is the real one."""
    path = os.path.join(tmp, "flaky-worker")
    with open(path, "w") as f:
        f.write('#!/bin/sh\n[ -e "%s" ] && exit 1\nexec "%s" "$@"\n' % (
            flag, binpath("autopack-worker")))
    os.chmod(path, 0o755)
    return path


def test_a_worker_that_always_exits_1_trips_the_breaker_and_exits_4(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    plan(tmp, url, 2, 2)
    flag = os.path.join(tmp, "broken")
    open(flag, "w").close()
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--worker",
                     fake_worker(tmp, flag), "--dry-run")
    assert sup.wait(timeout=120) == 4, sup.stderr()
    err = sup.stderr()
    assert "[BREAKER] 5 infrastructure failures in a row, the last: worker " in err
    end = state_of(url)["end"]
    assert (end["stop_cause"], end["exit_status"]) == ("breaker", 4)
    assert end["left_by"]["breaker"] == 4
    reason = rows(url, "SELECT stop_reason FROM drain_sessions")[0]["stop_reason"]
    assert reason.startswith("breaker: 5 infrastructure failures in a row"), reason


def test_the_breaker_pauses_dispatch_until_resume(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    plan(tmp, url, 2, 2)
    flag = os.path.join(tmp, "broken")
    open(flag, "w").close()
    sup = Supervisor(tmp, url, "--workers", 2, "--worker", fake_worker(tmp, flag),
                     "--dry-run")
    try:
        sup.wait_ready()
        st = status_when(sup, lambda s: s["state"] == "breaker" and s["pool"]["live"] == 0,
                         what="the breaker")
        assert st["pool"]["breaker"].startswith("5 infrastructure failures in a row")
        r = sup.ctl("status")
        assert "BREAKER: dispatch paused: 5 infrastructure failures in a row" in r.out, r
        # Fixed, and resumed: the pool comes back and the drain goes on.
        os.unlink(flag)
        r = sup.ctl("resume", "--json")
        assert r.rc == 0, r
        assert json.loads(r.out)["breaker_reset"] is True
        wait_for(lambda: rows(url, "SELECT count(*) AS n FROM attempts WHERE"
                              " outcome = 'dry_run'")[0]["n"] == 4, 60, what="the drain")
        assert sup.status()["state"] == "running"
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_too_few_file_descriptors_for_the_pool_is_logged_and_retried_not_an_abort(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    plan(tmp, url, 10, 2)
    sup = Supervisor(tmp, url, "--workers", 80, "--exit-when-drained", "--dry-run",
                     prefix=["sh", "-c", 'ulimit -n 64 && exec "$@"', "sh"])
    assert sup.wait(timeout=300) == 0, sup.stderr()
    err = sup.stderr()
    assert "cannot start worker" in err and "too many open files" in err.lower(), err
    assert "workers running; trying again in" in err
    assert "Assertion" not in err and "[BREAKER]" not in err
    assert rows(url, "SELECT count(*) AS n FROM attempts WHERE outcome = 'dry_run'") == [
        {"n": 20}]


def test_a_worker_binary_removed_mid_run_is_retried_while_the_others_drain(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    plan(tmp, url, 2, 3)
    worker = os.path.join(tmp, "bin", "autopack-worker")
    os.makedirs(os.path.dirname(worker))
    shutil.copy(binpath("autopack-worker"), worker)
    os.chmod(worker, os.stat(worker).st_mode | stat.S_IXUSR)
    # The calls are answered once a worker was killed: the drain is not over before.
    go = os.path.join(tmp, "go")
    llm = Standin(tmp, {"default": {"mode": "sleep", "seconds": 100, "until": go}})
    sup = Supervisor(tmp, url, "--workers", 2, "--exit-when-drained", "--worker", worker,
                     *llm_args(llm), env=KEY)
    try:
        sup.wait_ready()
        busy = status_when(sup, lambda s: s["queue"]["in_flight"] == 2, what="two busy")
        os.unlink(worker)
        os.kill(busy["pool"]["workers"][0]["pid"], signal.SIGKILL)
        wait_for(lambda: "cannot start worker" in sup.stderr(), 60, what="the failed start")
        open(go, "w").close()
        assert sup.wait(timeout=300) == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    err = sup.stderr()
    assert "cannot start worker %s: no such file or directory (1 of 2 workers running;" \
        " trying again in" % worker in err, err
    assert rows(url, "SELECT state, count(*) AS n FROM phases GROUP BY state") == [
        {"state": "COMPLETE", "n": 6}]
