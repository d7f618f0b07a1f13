"""The worker links no HTTP library: libcurl is loaded by its first LLM call. A dry run's
workers never map it, which keeps their start-up to their own code; a worker that has
called the model has it mapped, and its calls are answered."""
import json
import signal

from supervisor_helpers import Supervisor, llm_supervisor, new_db, sql, status_when


def worker_pid(sup):
    r = sup.ctl("workers", "--json")
    assert r.rc == 0, r
    pids = [w["pid"] for w in json.loads(r.out)["workers"]]
    assert len(pids) == 1, r.out
    return pids[0]


def maps_libcurl(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "/libcurl" in f.read()


def drained(sup):
    return status_when(sup, lambda s: s["progress"]["remaining"] == 0 and
                       s["queue"]["in_flight"] == 0 and s["writer_queue_writes"] == 0,
                       what="the drain done and committed")


def test_a_dry_run_worker_never_loads_libcurl(tmp):
    url = new_db(tmp, runs=1, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run")
    try:
        drained(sup)
        assert not maps_libcurl(worker_pid(sup))
    finally:
        sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY outcome") == [
        ("dry_run", 2)]


def test_a_worker_loads_libcurl_at_its_first_llm_call(tmp, llm):
    url = new_db(tmp, runs=1, phases=1)
    sup = llm_supervisor(tmp, url, llm, "--workers", 1)
    try:
        drained(sup)
        assert maps_libcurl(worker_pid(sup))
    finally:
        sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.stderr()
    assert sql(url, "SELECT state FROM phases") == [("COMPLETE",)]
    assert len(llm.requests()) >= 1
