"""No spend is invisible, and nothing outlives its supervisor: each LLM try is recorded
(status 'sent', with its max_tokens) before it leaves the worker; a try whose worker dies
is recorded as 'lost'; workers, their calls and their check commands die with the
supervisor, and a deliverable is never written after it is gone."""
import os
import signal

from conftest import ctl
from e2e_helpers import HOST_PID, Standin, import_plan, init_db, llm_args, phase_spec, rows
from supervisor_helpers import Supervisor, wait_for

KEY = {"ANTHROPIC_API_KEY": "sk-ant-spend-test"}


def alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def sent_rows(url):
    return rows(url, "SELECT * FROM llm_usage_events WHERE status = 'sent'")


def test_a_try_whose_worker_dies_is_recorded_lost_with_its_max_tokens(tmp):
    tmp = str(tmp)
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", os.path.join(tmp, "ws"), [phase_spec("p1", ("out/p1.py",))])])
    llm = Standin(tmp, {"markers": {"out/p1.py": [{"mode": "sleep", "seconds": 60}]}})
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", "--llm-timeout-seconds",
                     120, *llm_args(llm), env=KEY)
    try:
        sup.wait_ready()
        # The try is on record before the request leaves the worker: reserved with the
        # lease (max_tokens the cap), then confirmed by the worker's announcement.
        row = wait_for(lambda: [r for r in sent_rows(url) if r["seq"] is not None], 60,
                       what="the try announced")[0]
        assert (row["max_tokens"], row["try_number"], row["phase_id"]) == (16384, 1, "p1")
        worker = [w for w in sup.status()["pool"]["workers"] if w["state"] == "busy"][0]
        os.kill(worker["pid"], signal.SIGKILL)
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    usage = rows(url, "SELECT attempt_id, status, max_tokens, try_number, prompt_tokens,"
                 " completion_tokens, total_tokens FROM llm_usage_events ORDER BY id")
    att = rows(url, "SELECT attempt_id, outcome FROM attempts ORDER BY attempt_id")
    assert [a["outcome"] for a in att] == ["worker_crashed", "success"]
    assert usage[0] == {"attempt_id": att[0]["attempt_id"], "status": "lost",
                        "max_tokens": 16384, "try_number": 1, "prompt_tokens": None,
                        "completion_tokens": None, "total_tokens": 0}
    assert [(u["attempt_id"], u["status"], u["max_tokens"]) for u in usage[1:]] == [
        (att[1]["attempt_id"], "ok", 16384)]
    r = ctl("--db", url, "db", "check")
    assert "llm_usage_events: 2 (1 failed calls, 1 lost with their worker)" in r.out, r


def test_workers_their_calls_and_checks_die_with_the_supervisor(tmp):
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    # In the workspace: a check whose workspace lies in /tmp sees nothing else of it.
    pid_file = os.path.join(ws, "check.pid")
    import_plan(tmp, url, [
        ("r-call", ws, [phase_spec("p-call", ("out/call.py",))]),
        ("r-check", ws, [phase_spec("p-check", ("out/check.py",),
                                    check="%s; echo $hostpid > %s; sleep 120" % (HOST_PID, pid_file))]),
    ])
    # The call answers a few seconds after the supervisor is gone: a worker still alive
    # then would write its deliverable.
    llm = Standin(tmp, {"markers": {"out/call.py": [{"mode": "sleep", "seconds": 6}]}})
    sup = Supervisor(tmp, url, "--workers", 2, "--llm-timeout-seconds", 120, *llm_args(llm),
                     env=KEY)
    try:
        sup.wait_ready()
        wait_for(lambda: os.path.exists(pid_file) and open(pid_file).read().strip() and
                 any(r["phase_id"] == "p-call" for r in sent_rows(url)), 60,
                 what="a call in flight and a check running")
        workers = [w["pid"] for w in sup.status()["pool"]["workers"]]
        check = int(open(pid_file).read())
        assert len(workers) == 2 and all(alive(p) for p in workers + [check])
        sup.proc.kill()
        sup.proc.wait()
        wait_for(lambda: not any(alive(p) for p in workers + [check]), 30,
                 what="the workers and the check gone")
        # The stand-in answered the call to nobody; nothing was written for it.
        wait_for(lambda: any(q.get("phase_id") == "p-call" or
                             "out/call.py" in q.get("deliverables", [])
                             for q in llm.requests()), 60, what="the call answered")
        assert not os.path.exists(os.path.join(ws, "out", "call.py"))
    finally:
        sup.kill()
        llm.stop()
    # The next supervisor closes the attempts and records the unreported call as lost.
    again = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained",
                       *llm_args(llm), env=KEY, name="sup2")
    assert again.wait() == 0, again.stderr()
    lost = rows(url, "SELECT phase_id, status, max_tokens FROM llm_usage_events"
                " WHERE phase_id = 'p-call'")
    assert lost == [{"phase_id": "p-call", "status": "lost", "max_tokens": 16384}]
    assert rows(url, "SELECT count(*) AS n FROM llm_usage_events WHERE status = 'sent'") == \
        [{"n": 0}]


def test_a_worker_keeps_its_provider_connection_from_one_call_to_the_next(tmp):
    """Every call of a worker goes over the connection its first call opened (and, against
    a real provider, reuses its TLS session) while the server keeps it open."""
    tmp = str(tmp)
    url = init_db(tmp)
    import_plan(tmp, url, [("r1", os.path.join(tmp, "ws"),
                            [phase_spec("p%d" % i, ("out/p%d.py" % i,)) for i in range(3)])])
    llm = Standin(tmp, None, "--keep-alive")
    sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained", *llm_args(llm),
                     env=KEY)
    try:
        assert sup.wait() == 0, sup.stderr()
    finally:
        sup.kill()
        llm.stop()
    calls = llm.requests()
    assert [c["status"] for c in calls] == [200, 200, 200]
    assert len({c["peer_port"] for c in calls}) == 1, calls
