"""Watching a drain: --http's /healthz, /metrics (read by promtool and by the Prometheus
client's parser, and checked against the database), /api/status and the dashboard (in
headless Chromium); `autopack-ctl metrics`, `watch` and `status`; and HTTP clients that
misbehave without disturbing the drain."""
import fcntl
import http.client
import io
import json
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import struct
import subprocess
import termios
import threading
import time
import urllib.parse

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, assert_reals_shortest, binpath, ctl, run
from supervisor_helpers import (Standin, Supervisor, gate_check, hold_write_lock,
                                llm_supervisor, new_db, release, rogue_supervisor, sql,
                                status_when, wait_for)

ARTIFACTS = os.path.join(ROOT, "build", "test-artifacts")
FAMILIES = {
    "autopack_build_info", "autopack_start_time_seconds", "autopack_supervisor_state",
    "autopack_phases", "autopack_queue_eligible_phases", "autopack_queue_in_flight_attempts",
    "autopack_drain_done_phases", "autopack_drain_remaining_phases",
    "autopack_drain_failed_attempts", "autopack_drain_handed_back_attempts",
    "autopack_attempts_handed_back_total",
    "autopack_drain_eta_seconds", "autopack_attempts_dispatched_total",
    "autopack_attempts_total", "autopack_attempt_duration_seconds",
    "autopack_events_committed_total", "autopack_events_duplicate_total",
    "autopack_events_missing_total",
    "autopack_events_rejected_total", "autopack_commits_total",
    "autopack_commit_failures_total", "autopack_commit_duration_seconds",
    "autopack_last_commit_timestamp_seconds", "autopack_writer_queue_writes",
    "autopack_llm_calls_total", "autopack_llm_input_tokens_total",
    "autopack_llm_output_tokens_total", "autopack_workers", "autopack_workers_wanted",
    "autopack_worker_crashes_total", "autopack_worker_timeouts_total", "autopack_crash_loop",
    "autopack_loop_lag_seconds", "autopack_db_wal_bytes", "autopack_db_checkpoints_total",
    "autopack_db_checkpoint_failures_total"}


@pytest.fixture
def llm(tmp):
    s = Standin(tmp, script={"markers": {"OBS_FLAKY": [
        {"mode": "status", "status": 500, "message": "overloaded"}]}})
    yield s
    s.stop()


def plan_db(tmp, runs, url=None):
    """A database holding `runs`: {run_id: [(phase_id, category, check or None, text)]};
    a new SQLite file in tmp, or `url` initialised."""
    if url is None:
        url = new_db(tmp, runs=0)
    else:
        r = ctl("--db", url, "db", "init")
        assert r.rc == 0, r
    doc = {"runs": []}
    for run_id, phases in runs.items():
        tier = {"tier_id": "T1", "name": "tier", "phases": []}
        for i, (pid, cat, check, text) in enumerate(phases):
            out = "out/%s_%s.py" % (run_id, pid)
            ph = {"phase_id": pid, "name": "phase " + pid, "task_category": cat,
                  "complexity": "low", "description": "Create %s with f. %s" % (out, text),
                  "scope": {"paths": ["out/"], "read_only_context": [], "deliverables": [out]}}
            if check:
                ph["check_command"] = check
            tier["phases"].append(ph)
        doc["runs"].append({"run_id": run_id, "workspace": "ws", "goal": "observe",
                            "tiers": [tier]})
    path = os.path.join(str(tmp), "plan.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    os.makedirs(os.path.join(str(tmp), "ws"), exist_ok=True)
    r = ctl("--db", url, "run", "import", path)
    assert r.rc == 0, r
    return url


def request(base, path, method="GET", headers=None, body=None, timeout=30):
    """(status, headers, text) of one HTTP request to the supervisor."""
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


def http_base(sup):
    st = sup.wait_ready()
    assert st["http_url"].startswith("http://127.0.0.1:"), st["http_url"]
    return st["http_url"]


def samples(text):
    """{(name, ((label, value), ...)): value} of an exposition, read by Prometheus's parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def by(samples_, name, *labels):
    """The samples of one metric keyed by the values of `labels`."""
    return {tuple(dict(k[1])[label] for label in labels): v
            for k, v in samples_.items() if k[0] == name}


def chromium(*args):
    """Run headless Chromium as root in a fresh profile; returns the completed process."""
    profile = os.path.join(os.getcwd(), "chromium-%d" % time.monotonic_ns())
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--user-data-dir=" + profile] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_metrics_are_prometheus_text_and_count_what_the_database_holds(tmp, llm):
    url = plan_db(tmp, {
        "run-a": [("p0", "implementation", None, ""),
                  ("p1", "tests", "echo oops-from-check >&2; exit 3", ""),
                  ("p2", "docs", None, "")],
        "run-b": [("p0", "implementation", None, "OBS_FLAKY"),
                  ("p1", "tests", None, ""),
                  ("p2", "docs", None, "")]})
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--http", "127.0.0.1:0",
                         "--max-attempts-per-phase", 2)
    try:
        base = http_base(sup)
        status_when(sup, lambda s: s["progress"]["remaining"] == 0 and
                    s["queue"]["in_flight"] == 0 and s["writer_queue_writes"] == 0,
                    what="the drain done and committed")
        n_attempts = sql(url, "SELECT count(*) FROM attempts")[0][0]
        assert n_attempts == 8  # 6 phases, one retried after a 500, one failing twice
        # The HTTP snapshot follows within a second; wait for it to hold every attempt.
        text = wait_for(lambda: (lambda t: t if sum(by(samples(t), "autopack_attempts_total",
                                                         "outcome", "reason").values()) ==
                                 n_attempts
                                 else None)(request(base, "/metrics")[2]),
                        what="/metrics counting every attempt")
        status, headers, _ = request(base, "/metrics")
        assert status == 200
        assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        # promtool, Prometheus's own linter: no problem at all.
        lint = subprocess.run(["promtool", "check", "metrics"], input=text,
                              capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0 and lint.stdout + lint.stderr == "", lint
        # Every family has HELP and TYPE, and every family the issue lists is there.
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        assert set(re.findall(r"^# HELP (\S+) \S", text, re.M)) == set(types)
        for name in re.findall(r"^([a-z_]+)[{ ]", text, re.M):
            assert name in types or (re.sub(r"_(bucket|sum|count)$", "", name) in types and
                                     types[re.sub(r"_(bucket|sum|count)$", "", name)] ==
                                     "histogram"), name
        assert FAMILIES <= set(types), FAMILIES - set(types)
        m = samples(text)
        # Against the database.
        want = {}
        for outcome, reason, n in sql(url, "SELECT outcome, failure_reason, count(*)"
                                           " FROM attempts GROUP BY 1, 2"):
            want[(outcome, reason or "none")] = n
        got = {k: v for k, v in by(m, "autopack_attempts_total", "outcome", "reason").items()
               if v > 0}
        assert got == want
        assert ("failed", "PROVIDER_ERROR") in got and ("failed", "CHECK_FAILED") in got
        calls = {(p, mo, str(s) if s else "none"): n for p, mo, s, n in sql(
            url, "SELECT provider, model, http_status, count(*) FROM llm_usage_events"
                 " GROUP BY 1, 2, 3")}
        assert by(m, "autopack_llm_calls_total", "provider", "model", "status") == calls
        assert ("anthropic", "claude-sonnet-4-5", "500") in calls
        for p, mo, tin, tout in sql(url, "SELECT provider, model, sum(prompt_tokens),"
                                         " sum(completion_tokens) FROM llm_usage_events"
                                         " GROUP BY 1, 2"):
            assert by(m, "autopack_llm_input_tokens_total", "provider", "model")[(p, mo)] == tin
            assert by(m, "autopack_llm_output_tokens_total", "provider", "model")[(p, mo)] == tout
            assert tin > 0 and tout > 0
        kinds = dict(sql(url, "SELECT kind, count(*) FROM events GROUP BY kind"))
        committed = by(m, "autopack_events_committed_total", "kind")
        assert {k[0]: v for k, v in committed.items() if v} == kinds
        for cat, n, total_ms in sql(url, "SELECT p.task_category, count(*), sum(a.duration_ms)"
                                         " FROM attempts a JOIN phases p USING (run_id, phase_id)"
                                         " GROUP BY 1"):
            assert by(m, "autopack_attempt_duration_seconds_count", "category")[(cat,)] == n
            assert abs(by(m, "autopack_attempt_duration_seconds_sum", "category")[(cat,)]
                       - total_ms / 1000) < 1e-6
        phases = dict(sql(url, "SELECT state, count(*) FROM phases GROUP BY state"))
        assert {k[0]: v for k, v in by(m, "autopack_phases", "state").items() if v} == phases
        assert phases == {"COMPLETE": 5, "FAILED": 1}
        assert m[("autopack_commit_duration_seconds_count", ())] == \
            m[("autopack_commits_total", ())] > 0
        assert m[("autopack_drain_done_phases", ())] == 6
        assert m[("autopack_drain_remaining_phases", ())] == 0
        assert m[("autopack_workers_wanted", ())] == 2
        version = run("autopack-ctl", "--version").out.split()[-1]
        assert m[("autopack_build_info", (("version", version),))] == 1
        # autopack-ctl metrics: the same exposition on stdout, the banner on stderr.
        r = sup.ctl("metrics")
        assert r.rc == 0, r
        assert "supervisor of" in r.err and "supervisor of" not in r.out
        assert set(samples(r.out)) == set(m)
        # /api/status is the document of status --json.
        _, headers, body = request(base, "/api/status")
        assert headers["content-type"] == "application/json"
        doc, cli = json.loads(body), sup.status()
        assert set(doc) == set(cli) and doc["db_uuid"] == cli["db_uuid"]
        assert doc["session_id"] == cli["session_id"]
        # The failing check left its log, and the dashboard's failures point at it.
        fails = [f for f in doc["failures_recent"] if f["reason"] == "CHECK_FAILED"]
        assert len(fails) == 2 and fails[0]["run_id"] == "run-a"
        assert fails[0]["log_path"].endswith("run-a__p1__a2.stderr.txt")
        with open(fails[0]["log_path"]) as f:
            assert "oops-from-check" in f.read()
        assert doc["tokens"]["input"] == sum(r[2] for r in sql(
            url, "SELECT provider, model, sum(prompt_tokens) FROM llm_usage_events GROUP BY 1, 2"))
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    # Counters live in the process: the next supervisor starts them at 0.
    again = Supervisor(tmp, url, "--workers", 0, "--http", "127.0.0.1:0", name="again")
    try:
        m = samples(request(http_base(again), "/metrics")[2])
        assert sum(by(m, "autopack_attempts_total", "outcome", "reason").values()) == 0
        assert m[("autopack_commits_total", ())] == 0
        assert by(m, "autopack_phases", "state")[("COMPLETE",)] == 5
    finally:
        again.signal(signal.SIGTERM)
        assert again.wait() == 0


def test_healthz_answers_while_the_loop_is_stuck_and_fails_once_the_database_is_moved(tmp):
    url = new_db(tmp, runs=1)
    path = url[len("sqlite:///"):]
    sup = Supervisor(tmp, url, "--workers", 0, "--http", "127.0.0.1:0")
    holder = None
    try:
        base = http_base(sup)
        status, headers, body = request(base, "/healthz")
        h = json.loads(body)
        st = os.stat(path)
        assert status == 200 and headers["content-type"] == "application/json", body
        assert h["status"] == "ok" and h["reasons"] == []
        assert h["db_url"] == "sqlite:///" + os.path.realpath(path)
        assert h["device_inode"] == "%d:%d" % (st.st_dev, st.st_ino)
        assert h["state"] == "running" and h["workers"] == {"live": 0, "wanted": 0}
        assert h["writer_queue_writes"] == 0
        # Paused is healthy, and says so.
        assert sup.ctl("pause").rc == 0
        h = wait_for(lambda: (lambda x: x if x["paused"] else None)(
            json.loads(request(base, "/healthz")[2])), what="paused in /healthz")
        assert h["status"] == "ok" and h["state"] == "paused"
        # Another process holds the write lock: the supervisor's next commit (the control
        # log of `resume`) waits for it inside the event loop, which then publishes
        # nothing. /healthz still answers from its own thread.
        holder = sqlite3.connect(path, isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")
        assert sup.ctl("resume").rc == 0
        wait_for(lambda: json.loads(request(base, "/healthz")[2])["snapshot_age_seconds"] > 1.5,
                 what="the loop stuck on the lock")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.rename(path + suffix, path + ".moved" + suffix)
        status, _, body = request(base, "/healthz")
        h = json.loads(body)
        assert status == 503, body
        assert h["status"] == "unhealthy"
        lost = [r for r in h["reasons"] if r["code"] == "database_lost"]
        assert lost and path in lost[0]["message"], h
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    assert sup.wait(timeout=60) == 3
    assert "DATABASE LOST" in sup.stderr()


def test_healthz_fails_while_commits_keep_failing_and_recovers(tmp):
    url = new_db(tmp, runs=1)
    path = url[len("sqlite:///"):]
    sup = Supervisor(tmp, url, "--workers", 0, "--http", "127.0.0.1:0")
    holder = None
    try:
        base = http_base(sup)
        assert request(base, "/healthz")[0] == 200
        # Another process holds the write lock: each commit of the `pause` logged waits
        # out the busy timeout and fails, and is retried.
        holder = hold_write_lock(path)
        assert sup.ctl("pause").rc == 0
        status, _, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
            request(base, "/healthz")), timeout=120, what="/healthz failing")
        h = json.loads(body)
        assert h["status"] == "unhealthy" and h["writer_queue_writes"] == 1, h
        assert [r["code"] for r in h["reasons"]] == ["commits_failing"], h
        assert re.match(r"the last \d+ group commits failed$", h["reasons"][0]["message"])
        m = samples(request(base, "/metrics")[2])
        assert m[("autopack_commit_failures_total", ())] >= 3
        assert "database is locked" in sup.stderr()
        release(holder)
        holder = None
        status, _, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
            request(base, "/healthz")), what="/healthz ok again")
        h = json.loads(body)
        assert h["reasons"] == [] and h["paused"] and h["writer_queue_writes"] == 0, h
        assert sql(url, "SELECT command FROM control_log") == [("pause",)]
    finally:
        if holder is not None:
            release(holder)
        sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.stderr()


def test_healthz_and_metrics_on_postgresql(tmp, llm, pg_url):
    # No file to watch: the identity is the server's, checked by the loop every second.
    url = plan_db(tmp, {"run-a": [("p0", "implementation", None, ""),
                                  ("p1", "tests", "exit 3", "")]}, url=pg_url)
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--http", "127.0.0.1:0",
                         "--max-attempts-per-phase", 1)
    try:
        base = http_base(sup)
        st = status_when(sup, lambda s: s["progress"]["remaining"] == 0 and
                         s["writer_queue_writes"] == 0, what="the drain done and committed")
        status, _, body = request(base, "/healthz")
        h = json.loads(body)
        assert status == 200 and h["status"] == "ok" and h["reasons"] == [], body
        assert h["db_url"] == st["db_url"] and h["db_uuid"] == st["db_uuid"]
        assert h["device_inode"] is None
        system_id, dbname = h["server_id"].split("/")
        assert system_id.isdigit() and dbname == pg_url.rsplit("/", 1)[1]
        want = {(o, r or "none"): n for o, r, n in sql(
            url, "SELECT outcome, failure_reason, count(*) FROM attempts GROUP BY 1, 2")}
        assert want == {("success", "none"): 1, ("failed", "CHECK_FAILED"): 1}
        m = wait_for(lambda: (lambda m: m if {k: v for k, v in by(
            m, "autopack_attempts_total", "outcome", "reason").items() if v} == want
            else None)(samples(request(base, "/metrics")[2])),
            what="/metrics counting both attempts")
        assert by(m, "autopack_phases", "state")[("COMPLETE",)] == 1
        assert by(m, "autopack_phases", "state")[("FAILED",)] == 1
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_healthz_fails_on_a_crash_loop(tmp):
    url = new_db(tmp, runs=0)
    sup = Supervisor(tmp, url, "--worker", os.path.join(ROOT, "tests", "rogue_worker.py"),
                     "--workers", 1, "--allow-empty-db", "--http", "127.0.0.1:0",
                     env={"ROGUE_MODE": "exit"})
    try:
        base = http_base(sup)
        status_when(sup, lambda s: s["pool"]["crash_loop"], what="a crash loop")
        status, _, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
            request(base, "/healthz")), what="/healthz failing")
        assert [r["code"] for r in json.loads(body)["reasons"]] == ["crash_loop"]
        m = samples(request(base, "/metrics")[2])
        assert m[("autopack_crash_loop", ())] == 1
        assert m[("autopack_worker_crashes_total", ())] == 5
        r = sup.ctl("status")
        assert "health: UNHEALTHY" in r.out and "crash_loop:" in r.out, r
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_dashboard_in_headless_chromium_shows_workers_and_progress(tmp, llm):
    check, go = gate_check(tmp)
    runs = {"run-%d" % r: [("first", "implementation", None, ""),
                           ("second", "tests", check, "")] for r in range(3)}
    runs["run-f"] = [("bad", "docs", "echo dashboard-shows-this >&2; exit 3", "")]
    url = plan_db(tmp, runs)
    sup = llm_supervisor(tmp, url, llm, "--workers", 3, "--http", "127.0.0.1:0",
                         "--max-attempts-per-phase", 1)
    try:
        base = http_base(sup)
        status, headers, page = request(base, "/")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        # One self-contained file: nothing is loaded from anywhere else.
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page), page
        assert "<link" not in page and "@import" not in page
        st = wait_for(lambda: (lambda s: s if s["progress"]["done"] == 4 and
                               s["queue"]["in_flight"] == 3 and
                               s["writer_queue_writes"] == 0 else None)(
            json.loads(request(base, "/api/status")[2])), what="4 done, 3 in flight")
        r = chromium("--virtual-time-budget=5000", "--dump-dom", base)
        assert r.returncode == 0, r.stderr
        dom = r.stdout
        assert 'data-loaded="1"' in dom, dom
        workers = re.findall(r'<tr data-worker-id="(\d+)">(.*?)</tr>', dom)
        assert len(workers) == 3, dom
        for _, row in workers:
            assert "busy" in row and "second" in row, row
            # The phase's age, ticking in the page between polls.
            assert re.search(r'<td class="num">\d+s</td>', row), row
        assert sorted(re.findall(r"<td>(run-\d)</td>", dom)) == ["run-0", "run-1", "run-2"]
        assert re.search(r'id="progress-text">4 / 7<', dom), dom
        assert 'aria-valuenow="57.1"' in dom
        assert re.search(r'id="state" class="badge ok">running<', dom)
        assert re.search(r'id="eta">\d+(s|m\d\ds)<', dom), dom
        # Phases by state, tokens spent, and the failure with its message and log.
        assert re.search(r"<td>COMPLETE</td><td class=\"num\">3</td>", dom), dom
        assert re.search(r"<td>FAILED</td><td class=\"num\">1</td>", dom), dom
        tokens = st["tokens"]
        assert tokens["input"] > 0 and tokens["output"] > 0
        assert 'id="tokens">{:,} / {:,}<'.format(tokens["input"], tokens["output"]) in dom, dom
        assert 'id="calls">{:,}<'.format(tokens["llm_calls"]) in dom, dom
        failures = re.findall(r'<ul class="failures" id="failures">(.*?)</ul>', dom, re.S)[0]
        assert "run-f / bad" in failures and "CHECK_FAILED" in failures, failures
        assert "dashboard-shows-this" in failures, failures
        assert re.search(r"log: \S*/run-f__bad__a1\.stderr\.txt<", failures), failures
        # A picture of it, kept with the build.
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "dashboard.png")
        if os.path.exists(shot):
            os.unlink(shot)
        r = chromium("--virtual-time-budget=5000", "--window-size=1280,900",
                     "--screenshot=" + shot, base)
        assert r.returncode == 0, r.stderr
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(shot) > 20000
        open(go, "w").close()
        status_when(sup, lambda s: s["progress"]["remaining"] == 0, what="the drain done")
    finally:
        open(go, "w").close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_the_page_shows_what_a_503_from_api_status_says(tmp):
    """/api/status answers 503 when the status cannot be read (the supervisor's JSON error,
    {"error": "store_error", "message": ...}), and a proxy before it answers 503 of its
    own: the page called every such answer "unreachable", as if nothing had answered. It
    now says what the answer says, and keeps the figures it showed last. The page is the
    supervisor's own, served here by a stand-in whose /api/status answers the real status
    once, then 503."""
    import http.server
    url = new_db(tmp, runs=1, phases=2)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--http", "127.0.0.1:0")
    try:
        base = http_base(sup)
        page = request(base, "/")[2]
        real = status_when(sup, lambda s: s["progress"]["done"] == 2, what="drained")
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    answers = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            n = answers.setdefault("n", 0)
            answers["n"] = n + 1
            if self.path == "/":
                code, kind, body = 200, "text/html; charset=utf-8", page
            elif n <= 1:
                code, kind, body = 200, "application/json", json.dumps(real)
            else:
                code, kind, body = answers["refusal"]
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stand_in = "http://127.0.0.1:%d/" % server.server_address[1]
        answers["refusal"] = (503, "application/json", json.dumps(
            {"ok": False, "error": "store_error",
             "message": "reading the phase counts: database is locked <b>x</b>"}))
        r = chromium("--virtual-time-budget=7000", "--dump-dom", stand_in)
        assert r.returncode == 0, r.stderr
        dom = r.stdout
        assert re.search(r'id="state" class="badge warn">database unreadable<', dom), dom
        assert "unreachable" not in dom.split("<script")[0], dom
        assert ("the supervisor answered HTTP 503: reading the phase counts: database is "
                "locked &lt;b&gt;x&lt;/b&gt; (figures from ") in dom, dom
        # The figures of the answer before are still shown.
        assert re.search(r'id="progress-text">2 / 2<', dom), dom
        # A proxy's own 503 page: its words, not its markup.
        answers["n"] = 0
        answers["refusal"] = (503, "text/html", "<html><body><h1>503 Service Unavailable"
                              "</h1>\n<p>No server is available.</p></body></html>")
        dom = chromium("--virtual-time-budget=7000", "--dump-dom", stand_in).stdout
        assert re.search(r'id="state" class="badge warn">HTTP 503<', dom), dom
        assert ("the supervisor answered HTTP 503: 503 Service Unavailable No server is "
                "available. (figures from ") in dom, dom
    finally:
        server.shutdown()
        server.server_close()


def slow_client(port, out):
    """Open a request and never finish it; record whether the server hung up."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        out.append(s.recv(1024) == b"")
    except (ConnectionResetError, socket.timeout):
        out.append(True)
    finally:
        s.close()


def test_misbehaving_http_clients_never_disturb_the_drain(tmp, llm):
    check, go = gate_check(tmp)
    url = plan_db(tmp, {"run-%d" % r: [("p%d" % p, "implementation", check, "")
                                       for p in range(3)] for r in range(3)})
    sup = llm_supervisor(tmp, url, llm, "--workers", 3, "--http", "127.0.0.1:0")
    try:
        base = http_base(sup)
        port = urllib.parse.urlsplit(base).port
        status_when(sup, lambda s: s["queue"]["in_flight"] == 3, what="3 in flight")
        # Unknown paths and tricks: a clear 404 in JSON.
        for path in ("/nope", "/../../etc/passwd", "/metrics/x", "/api", "/%00", "/" + "a" * 4000):
            status, headers, body = request(base, path)
            assert status == 404 and json.loads(body)["error"] == "not_found", (path, body)
        # Read-only: every other method is refused, and nothing is written.
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, headers, body = request(base, "/api/status", method, body="x" * 100)
            assert status == 405 and headers["allow"] == "GET, HEAD", body
        # HEAD, as uptime checks send it: the headers of GET, no body.
        for path, want in (("/healthz", 200), ("/metrics", 200), ("/nope", 404)):
            status, headers, body = request(base, path, "HEAD")
            assert (status, body) == (want, "") and int(headers["content-length"]) > 0, path
        # Huge headers are refused.
        try:
            status, _, _ = request(base, "/metrics", headers={"X-Big": "y" * 200000})
            assert status in (413, 431), status
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            pass
        # A query string is ignored; a request line over 32 KiB with it is refused.
        assert request(base, "/metrics?" + "a" * 30000)[0] == 200
        assert request(base, "/metrics?" + "a" * 40000)[0] == 414
        # An HTTP/1.1 request must name its host (RFC 9112, 3.2): 400 without one; an
        # HTTP/1.0 request need not.
        for version, want in ((b"1.1", b"HTTP/1.1 400"), (b"1.0", b"HTTP/1.1 200")):
            g = socket.create_connection(("127.0.0.1", port), timeout=30)
            g.sendall(b"GET /healthz HTTP/" + version + b"\r\nConnection: close\r\n\r\n")
            reply = b""
            while not reply.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in reply:
                chunk = g.recv(4096)
                if not chunk:
                    break
                reply += chunk
            g.close()
            assert reply.startswith(want), (version, reply)
        # Garbage instead of HTTP.
        g = socket.create_connection(("127.0.0.1", port), timeout=30)
        g.sendall(bytes(range(256)) * 16)
        try:
            reply = g.recv(4096)
            assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply
        except ConnectionResetError:
            pass
        g.close()
        # Slow clients, and more connections than the server takes at once.
        hung_up = []
        slow = [threading.Thread(target=slow_client, args=(port, hung_up)) for _ in range(10)]
        for t in slow:
            t.start()
        many = []
        for _ in range(300):
            try:
                many.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        # Meanwhile the drain goes on: the phases finish once let go.
        open(go, "w").close()
        st = status_when(sup, lambda s: s["progress"]["remaining"] == 0 and
                         s["writer_queue_writes"] == 0, timeout=120, what="the drain done")
        assert st["phases"]["COMPLETE"] == 9 and st["progress"]["failed"] == 0
        for s in many:
            s.close()
        for t in slow:
            t.join(timeout=90)
        assert hung_up == [True] * 10  # the server closed every slow client itself
        status, _, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
            request(base, "/healthz")), what="/healthz answering again")
        assert json.loads(body)["status"] == "ok"
        assert sql(url, "SELECT count(*) FROM control_log") == [(0,)]
        assert sql(url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("success", 9)]
        assert sql(url, "SELECT count(*) FROM llm_usage_events")[0][0] == len(llm.requests())
    finally:
        open(go, "w").close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_eta_comes_from_the_median_attempt_duration_per_category(tmp, llm):
    check, go = gate_check(tmp)
    url = plan_db(tmp, {
        "done": [("t%d" % i, "tests", None, "") for i in range(3)] +
                [("d%d" % i, "docs", None, "") for i in range(3)],
        "run-a": [("p%d" % i, "tests", check, "") for i in range(4)],
        "run-b": [("p%d" % i, "docs", check, "") for i in range(3)]})
    # History: the database already ran the "done" run; tests took 90-110 s, docs 5-15 s.
    path = url[len("sqlite:///"):]
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE phases SET state = 'COMPLETE' WHERE run_id = 'done'")
        for i, (pid, ms) in enumerate([("t0", 90000), ("t1", 110000), ("t2", 100000),
                                       ("d0", 5000), ("d1", 15000), ("d2", 10000)]):
            con.execute("INSERT INTO attempts (run_id, phase_id, attempt_number, started_at,"
                        " ended_at, outcome, duration_ms) VALUES ('done', ?, 1,"
                        " '2026-01-01 00:00:00.000000', '2026-01-01 00:02:00.000000',"
                        " 'success', ?)", (pid, ms))
    con.close()
    sup = llm_supervisor(tmp, url, llm, "--workers", 2)
    try:
        st = status_when(sup, lambda s: s["queue"]["in_flight"] == 2 and
                         all(f["seconds"] > 0 for f in s["in_flight"]), what="2 in flight")
        assert st["attempt_median_seconds"] == {"tests": 100.0, "docs": 10.0}
        p = st["progress"]
        assert (p["done"], p["remaining"], p["total"], p["failed"]) == (0, 7, 7, 0)
        assert p["eta_basis"] == "median_duration_per_category"
        # Run a, one phase at a time: 3 queued tests phases and the one in flight.
        age_a = [f["seconds"] for f in st["in_flight"] if f["run_id"] == "run-a"][0]
        assert abs(p["eta_seconds"] - (300 + max(100 - age_a, 0))) < 0.5, (p, age_a)
        # status shows the attempts in flight with their phase's age, and the rates.
        r = sup.ctl("status")
        assert r.rc == 0, r
        assert "progress: 0/7 phases (0.0%), 0.0/min, ETA " in r.out, r.out
        assert "rates: " in r.out and "tokens: " in r.out
        inflight = r.out.split("in flight:\n", 1)[1]
        assert re.search(r"run-a\s+p0\s+\d+s", inflight) and re.search(r"run-b\s+p0\s+\d+s",
                                                                       inflight), r.out
        for w in st["pool"]["workers"]:
            lease = [f for f in st["in_flight"] if f["worker_id"] == w["id"]][0]
            assert abs(w["phase_age_seconds"] - lease["seconds"]) < 0.5
            assert w["phase_age_seconds"] <= w["age_seconds"]
    finally:
        open(go, "w").close()
        sup.stop_now()


@pytest.mark.parametrize("history_ms, timeout_s, expect", [
    ([100, 200, 300, 600000], 900, 600),  # the median of the longer attempts: 600 s
    ([100, 200, 300], 1000, None)],       # longer than any: as long again as its age
    ids=["longer-attempts", "older-than-all"])
def test_eta_of_an_attempt_older_than_its_median_is_not_zero(tmp, llm, history_ms, timeout_s,
                                                             expect):
    check, go = gate_check(tmp)
    url = plan_db(tmp, {"done": [("t%d" % i, "tests", None, "") for i in range(len(history_ms))],
                        "run-a": [("p0", "tests", check, "")]})
    con = sqlite3.connect(url[len("sqlite:///"):])
    with con:
        con.execute("UPDATE phases SET state = 'COMPLETE' WHERE run_id = 'done'")
        for i, ms in enumerate(history_ms):
            con.execute("INSERT INTO attempts (run_id, phase_id, attempt_number, started_at,"
                        " ended_at, outcome, duration_ms) VALUES ('done', ?, 1,"
                        " '2026-01-01 00:00:00.000000', '2026-01-01 00:02:00.000000',"
                        " 'success', ?)", ("t%d" % i, ms))
    con.close()
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--phase-timeout-seconds", timeout_s)
    try:
        # The attempt has run longer than the median (0.2 or 0.25 s): it still needs time.
        st = status_when(sup, lambda s: s["queue"]["in_flight"] == 1 and
                         s["in_flight"][0]["seconds"] > 1, what="an attempt past its median")
        p, age = st["progress"], st["in_flight"][0]["seconds"]
        assert p["remaining"] == 1 and p["eta_basis"] == "median_duration_per_category", p
        assert abs(p["eta_seconds"] - (expect - age if expect else age)) < 0.5, (p, age)
    finally:
        open(go, "w").close()
        sup.stop_now()


def test_a_paused_drain_has_no_eta_and_the_leases_it_gave_back_are_no_failures(tmp):
    """A paused drain showed an ETA (48 s, growing) it would never meet, and the leases
    opened ahead that the pause gave back, ended "not started: dispatch was paused",
    filled the ten recent failures of status and the dashboard, pushing out the real
    ones. While paused the ETA is unknown (null, ?; no autopack_drain_eta_seconds); the
    recent failures leave out attempts no worker had; resumed, the ETA comes back."""
    url = new_db(tmp, runs=200, phases=50)
    con = sqlite3.connect(url[len("sqlite:///"):])
    with con:
        con.execute("INSERT INTO attempts (run_id, phase_id, attempt_number, worker_pid,"
                    " started_at, ended_at, outcome, failure_reason, message, duration_ms)"
                    " VALUES ('run-000', 'p0-0', 1, 4242, '2026-01-01 00:00:00.000000',"
                    " '2026-01-01 00:00:01.000000', 'failed', 'CHECK_FAILED',"
                    " 'the real failure', 1000)")
    con.close()
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", "--http", "127.0.0.1:0")
    try:
        base = http_base(sup)
        given_back = 0
        for _ in range(20):  # until a pause found leases opened ahead to give back
            status_when(sup, lambda s: s["state"] == "running" and s["progress"]["done"] > 50
                        and s["progress"]["eta_seconds"] is not None, what="draining")
            assert sup.ctl("pause").rc == 0
            given_back = sql(url, "SELECT count(*) FROM attempts WHERE worker_pid IS NULL"
                                  " AND outcome = 'supervisor_stopped'")[0][0]
            if given_back:
                break
            assert sup.ctl("resume").rc == 0
        assert given_back > 0
        st = status_when(sup, lambda s: s["state"] == "paused" and
                         s["queue"]["in_flight"] == 0, what="paused")
        p = st["progress"]
        assert p["remaining"] > 0 and (p["eta_seconds"], p["eta_basis"]) == (None, "none"), p
        assert [f["message"] for f in st["failures_recent"]] == ["the real failure"], st
        assert "ETA ?" in sup.ctl("status").out
        text = wait_for(lambda: (lambda t: t if "autopack_supervisor_state{state=\"paused\"} 1"
                                 in t else None)(request(base, "/metrics")[2]),
                        what="/metrics paused")
        assert not any(k[0] == "autopack_drain_eta_seconds" for k in samples(text)), text
        assert sup.ctl("resume").rc == 0
        status_when(sup, lambda s: s["progress"]["remaining"] == 0 or
                    s["progress"]["eta_basis"] != "none", what="an ETA again")
    finally:
        assert sup.stop_now() == 0, sup.stderr()


def test_attempts_handed_back_are_counted_apart_from_failures(tmp):
    """A worker killed under its attempt, and `scale 0 --force`, end the attempt and send
    its phase back to the queue: no failure of the phase (the drain rules judge neither),
    yet status, watch, the dashboard, the metrics and STATUS= counted both as "failed".
    They are counted as handed back, live and in a --resume of the session."""
    from test_service import NotifySocket
    url = new_db(tmp, runs=1, phases=1)
    go = os.path.join(str(tmp), "go")
    notify = NotifySocket(tmp)
    sup = rogue_supervisor(tmp, url, "good", "--workers", 1, "--http", "127.0.0.1:0",
                           env={"ROGUE_GO": go, "NOTIFY_SOCKET": notify.env})
    try:
        base = http_base(sup)
        st = status_when(sup, lambda s: s["queue"]["in_flight"] == 1, what="in flight")
        os.kill(st["pool"]["workers"][0]["pid"], signal.SIGKILL)
        st = status_when(sup, lambda s: s["progress"]["handed_back"] == 1 and
                         s["queue"]["in_flight"] == 1, what="the phase again, in flight")
        assert sup.ctl("scale", "0", "--force").rc == 0
        st = status_when(sup, lambda s: s["progress"]["handed_back"] == 2, what="scaled down")
        p = st["progress"]
        assert (p["failed"], p["handed_back"], p["done"], p["remaining"]) == (0, 2, 0, 1), p
        assert sql(url, "SELECT outcome FROM attempts ORDER BY attempt_id") == [
            ("worker_crashed",), ("scaled_down",)]
        assert "0 failed, 2 handed back" in sup.ctl("status").out
        # /metrics serves the snapshot the loop publishes every second.
        metric = lambda: {k[0]: v for k, v in samples(request(base, "/metrics")[2]).items()
                          if not k[1]}
        got = wait_for(lambda: (lambda g: g if g["autopack_drain_handed_back_attempts"] == 2
                                else None)(metric()), what="/metrics")
        text = request(base, "/metrics")[2]
        assert got["autopack_drain_failed_attempts"] == 0, text
        assert got["autopack_drain_handed_back_attempts"] == 2, text
        assert got["autopack_attempts_handed_back_total"] == 2, text
        notify.wait(lambda d: d.startswith("STATUS=") and d.endswith("0 failed, 2 handed back"),
                    "the status line")
    finally:
        sup.kill()  # the session left unfinished, for --resume
        notify.close()
    # The session's record says the same.
    [ses] = json.loads(ctl("--db", url, "session", "list", "--json").out)["sessions"]
    assert (ses["results"], ses["successes"], ses["handed_back"]) == (2, 0, 2), ses
    # Resumed, the session's figures are the same.
    again = Supervisor(tmp, url, "--workers", 0, "--resume", name="again")
    try:
        p = again.wait_ready()["progress"]
        assert (p["failed"], p["handed_back"]) == (0, 2), p
    finally:
        assert again.stop_now() == 0, again.stderr()


def test_a_fast_drain_shows_its_rate_and_an_eta_of_seconds(tmp):
    # 20,000 dry-run phases: more finish in the rate's window than any fixed list of finish
    # times would hold, and each takes the workers a millisecond or two, less than the
    # supervisor takes to hand it out. The rate counts every phase finished since the
    # start; the ETA is what is left at the drain's pace, never an attempt's deadline.
    url = new_db(tmp, runs=2000, phases=10)
    began = time.monotonic()
    sup = Supervisor(tmp, url, "--workers", 8, "--dry-run")
    try:
        sup.wait_ready()
        etas = []
        while True:
            st = sup.status()
            p = st["progress"]
            if p["remaining"] == 0:
                break
            if p["done"] > 500 and p["eta_seconds"] is not None:
                etas.append((p["eta_seconds"], p["remaining"]))
            time.sleep(0.2)
        assert etas and all(eta < 300 for eta, _ in etas), etas
        p = sup.status()["progress"]
        elapsed = time.monotonic() - began
        assert p["done"] == 20000, p
        # The window is the supervisor's life, which is within elapsed, or a second when
        # the drain took less.
        assert p["phases_per_minute"] >= 20000 * 60 / max(elapsed, 1.0) * 0.999, (p, elapsed)
    finally:
        assert sup.stop_now() == 0, sup.stderr()


def test_the_supervisors_json_writes_each_real_in_its_shortest_form(tmp):
    """/api/status, /healthz and the reply status --json prints wrote each real with 17
    significant digits (a lag of 0.123 s as 0.12299999999999999). Each is the shortest of
    15, 16 and 17 digits that reads back as the same double."""
    url = new_db(tmp, runs=2, phases=3)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--http", "127.0.0.1:0")
    try:
        base = http_base(sup)
        wait_for(lambda: sup.status()["progress"]["remaining"] == 0, what="the drain")
        seen = []
        for path in ("/api/status", "/healthz"):
            status, headers, body = request(base, path)
            assert status == 200 and headers["content-type"] == "application/json", body
            seen += assert_reals_shortest(body)
        r = sup.ctl("status", "--json")
        assert r.rc == 0, r
        seen += assert_reals_shortest(r.out)
        assert len(seen) >= 6, seen
    finally:
        assert sup.stop_now() == 0, sup.stderr()


def read_watch(proc, until, timeout=60):
    """Read watch's stdout until `until(text so far)` holds; return the text."""
    text, deadline = "", time.time() + timeout
    while time.time() < deadline and not until(text):
        line = proc.stdout.readline()
        if not line:
            break
        text += line
    return text


def test_watch_shows_progress_and_the_final_counts(tmp, llm):
    check, go = gate_check(tmp)
    url = plan_db(tmp, {"run-%d" % r: [("p0", "implementation", check, ""),
                                       ("p1", "tests", None, "")] for r in range(2)})
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--exit-when-drained")
    sup.wait_ready()
    w = subprocess.Popen([binpath("autopack-ctl"),
                          "--db", url, "watch", "--interval", "0.2", "--control", sup.control],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        text = read_watch(w, lambda t: "in flight 2" in t)
        line = text.splitlines()[-1]
        assert re.search(r" running +0/4 phases \(0\.0%\), 0\.0/min, ETA \?, 0 failed"
                         r"  workers 2/2  in flight 2$", line), line
        # --json: one object a line, with the same figures.
        r = ctl("--db", url, "watch", "--json", "--count", "1", "--control", sup.control)
        assert r.rc == 0, r
        j = json.loads(r.out)
        assert j["state"] == "running" and j["in_flight"] == 2 and j["workers"]["live"] == 2
        assert (j["progress"]["done"], j["progress"]["total"]) == (0, 4)
        open(go, "w").close()
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert sup.wait() == 0
        last = out.splitlines()[-1]
        assert re.match(r"supervisor pid %d exited; session drain-\S+ ended \(drained\):"
                        r" 4 attempt\(s\), 4 succeeded, 0 failed; exit status 0$" %
                        sup.proc.pid, last), out
        # One line per interval in a pipe.
        assert all(re.match(r"\d{4}-\d\d-\d\dT", ln) for ln in (text + out).splitlines()[:-1])
    finally:
        open(go, "w").close()
        w.kill()
        sup.kill()


def test_watch_json_errors_are_one_line_as_every_line_it_writes(tmp):
    """watch --json writes one JSON object a line; its errors (no supervisor running, a
    bad value) came as an indented object of five lines, which a reader taking the
    output line by line could not parse. An error is one line now, and a whole document
    of another command is indented as before."""
    url = new_db(tmp, runs=1)
    for args, rc in ((("--count", "1"), 1), (("--interval", "0"), 2),
                     (("--control", os.path.join(str(tmp), "no.sock")), 1)):
        r = ctl("--db", url, "watch", "--json", *args)
        assert r.rc == rc, r
        lines = r.out.splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["ok"] is False, (args, r.out)
    r = ctl("--db", url, "status", "--json")
    assert r.rc == 1 and r.out.startswith("{\n  \"ok\": false,"), r


def test_watch_exits_with_the_status_the_supervisor_recorded(tmp, llm):
    # --batch-size leaves eligible work: the supervisor exits 5, and so does watch.
    check, go = gate_check(tmp)
    url = plan_db(tmp, {"run-%d" % r: [("p0", "implementation", check, "")] for r in range(3)})
    sup = llm_supervisor(tmp, url, llm, "--workers", 1, "--batch-size", 1, "--exit-when-drained")
    sup.wait_ready()
    w = subprocess.Popen([binpath("autopack-ctl"), "--db", url, "watch", "--json",
                          "--interval", "0.2", "--control", sup.control],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_watch(w, lambda t: '"in_flight":1' in t)
        open(go, "w").close()
        out, err = w.communicate(timeout=120)
        assert sup.wait() == 5, sup.stderr()
        assert w.returncode == 5, (out, err)
        final = json.loads(out.splitlines()[-1])
        assert final["final"] and final["completed"] and final["exit_status"] == 5, final
        assert final["stop_reason"] == "drained", final
        assert (final["attempts"], final["succeeded"], final["failed"]) == (1, 1, 0)
        assert err == ""
    finally:
        open(go, "w").close()
        w.kill()
        sup.kill()


def test_watch_redraws_one_line_on_a_terminal_and_fails_when_the_session_did_not_end(tmp, llm):
    check, go = gate_check(tmp)
    url = plan_db(tmp, {"run-0": [("p0", "implementation", check, "")]})
    sup = llm_supervisor(tmp, url, llm, "--workers", 1)
    sup.wait_ready()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
    w = subprocess.Popen([binpath("autopack-ctl"),
                          "--db", url, "watch", "--interval", "0.2"],
                         stdout=slave, stderr=subprocess.PIPE, text=True)
    os.close(slave)
    seen = b""
    try:
        while seen.count(b"\r") < 3:
            r, _, _ = select.select([master], [], [], 60)
            assert r, seen
            seen += os.read(master, 4096)
        # Redrawn in place: carriage return, the line, clear to the end of the line.
        assert b"\n" not in seen and b"\x1b[K" in seen, seen
        assert b"in flight 1" in seen
        sup.proc.kill()  # SIGKILL: the session cannot record its end
        sup.proc.wait()
        assert w.wait(timeout=60) == 1
        tail = b""
        while True:
            r, _, _ = select.select([master], [], [], 5)
            try:
                chunk = os.read(master, 4096) if r else b""
            except OSError:
                chunk = b""
            if not chunk:
                break
            tail += chunk
        assert b"did not record its end" in tail, tail
        assert "without recording the end of session" in w.stderr.read()
    finally:
        open(go, "w").close()
        os.close(master)
        w.kill()
        sup.kill()


def test_http_flag_is_checked_and_a_public_address_warned_about(tmp):
    for bad in ("9464", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", "example.org:80",
                "[::1:80"):
        r = run("autopack-supervisor", "--http", bad)
        assert r.rc == 2 and "--http" in r.err and bad in r.err, (bad, r)
    url = new_db(tmp, runs=1)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        sup = Supervisor(tmp, url, "--workers", 0, "--http",
                         "127.0.0.1:%d" % busy.getsockname()[1], name="busy")
        assert sup.wait() == 1
        # libmicrohttpd's own line said "Failed to bind to port 0", the port it was
        # given apart from the address, and the error named no cause.
        assert "--http 127.0.0.1:%d: cannot listen there: Address already in use" \
            % busy.getsockname()[1] in sup.stderr(), sup.stderr()
        assert "port 0" not in sup.stderr(), sup.stderr()
    finally:
        busy.close()
    sup = Supervisor(tmp, url, "--workers", 0, "--http", "0.0.0.0:0", name="public")
    try:
        st = sup.wait_ready()
        assert st["http_url"].startswith("http://0.0.0.0:")
        assert "is not a loopback address" in sup.stderr()
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_the_documented_prometheus_config_and_rules_are_valid(tmp):
    docs = os.path.join(ROOT, "docs", "prometheus")
    r = subprocess.run(["promtool", "check", "config", os.path.join(docs, "prometheus.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "6 rules found" in r.stdout + r.stderr, r
    # The README's excerpts are valid too.
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    section = readme.split("### Monitoring", 1)[1].split("\n### ", 1)[0]
    scrape, rules = re.findall(r"```yaml\n(.*?)```", section, re.S)
    path = os.path.join(str(tmp), "rules.yml")
    with open(path, "w") as f:
        f.write(rules)
    r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "3 rules found" in r.stdout + r.stderr, r
    # The excerpt's alerts are the file's, word for word.
    with open(os.path.join(docs, "autopack-rules.yml")) as f:
        whole = {a["alert"]: a for a in yaml.safe_load(f)["groups"][0]["rules"]}
    for a in yaml.safe_load(rules)["groups"][0]["rules"]:
        assert (a["expr"], a["for"]) == (whole[a["alert"]]["expr"], whole[a["alert"]]["for"]), a
    # The alerts fire when they should, and not otherwise (promtool's rule unit tests).
    r = subprocess.run(["promtool", "test", "rules", "autopack-rules.test.yml"], cwd=docs,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r
    with open(os.path.join(str(tmp), "prometheus.yml"), "w") as f:
        f.write(scrape)
    r = subprocess.run(["promtool", "check", "config", os.path.join(str(tmp), "prometheus.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r


def test_the_service_managers_status_line_carries_the_progress(tmp):
    from test_service import NotifySocket
    url = new_db(tmp, runs=2, phases=2)
    notify = NotifySocket(tmp)
    sup = Supervisor(tmp, url, "--workers", 2, "--dry-run", env={"NOTIFY_SOCKET": notify.env})
    try:
        # Drained, the supervisor waits for work: idle, with the drain's counts.
        notify.wait(lambda d: d == "STATUS=idle: waiting for phases; 4 done, 0 failed",
                    "the progress of the whole drain in STATUS=")
        # The same figures as status and watch.
        p = sup.status()["progress"]
        assert (p["done"], p["total"], p["failed"], p["eta_basis"]) == (4, 4, 0, "finished")
    finally:
        notify.close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0


def test_hostile_categories_come_out_as_labels_both_readers_read_back(tmp, llm):
    """Task categories are the plan's own text: quotes, backslashes, line breaks, a line
    that would start a family of its own, U+2028, DEL, 250 bytes. /metrics stays clean to
    promtool, and the Prometheus parser reads each one back as it was (a long one cut to
    its first 128 bytes)."""
    cats = ['a\\b', 'q"x', 'nl\nx', 'cr\rx', 'tab\tx', '} 1\n# TYPE autopack_x counter',
            '\u00e9\u2713\u2028', ' ', '\x7f', 'c' * 250]
    url = plan_db(tmp, {"run-%d" % i: [("p0", c, None, "")] for i, c in enumerate(cats)})
    sup = llm_supervisor(tmp, url, llm, "--workers", 2, "--http", "127.0.0.1:0")
    try:
        base = http_base(sup)
        text = wait_for(lambda: (lambda t: t if sum(by(samples(t),
                                                       "autopack_attempts_total", "outcome",
                                                       "reason").values()) == len(cats)
                                 else None)(request(base, "/metrics")[2]),
                        what="/metrics counting every attempt")
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0 and lint.stdout + lint.stderr == "", lint
    got = by(samples(text), "autopack_attempt_duration_seconds_count", "category")
    assert got == {(c[:128],): 1 for c in cats}, got
    assert "autopack_x" not in {f.name for f in text_string_to_metric_families(text)}


def test_past_the_series_cap_the_series_already_shown_keep_counting(tmp):
    # 205 models: the 200 first have their series, the rest share "other"; m0 seen again
    # after the cap is still counted as m0.
    url = new_db(tmp, runs=1, phases=1)
    sup = Supervisor(tmp, url, "--worker", os.path.join(ROOT, "tests", "rogue_worker.py"),
                     "--workers", 1, "--http", "127.0.0.1:0", env={"ROGUE_MODE": "models"})
    try:
        base = http_base(sup)

        def counted():
            x = samples(request(base, "/metrics")[2])
            n = sum(by(x, "autopack_llm_calls_total", "provider", "model", "status").values())
            return x if n == 210 else None

        m = wait_for(counted, what="/metrics counting the 210 calls")
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0
    calls = by(m, "autopack_llm_calls_total", "provider", "model")
    assert calls[("anthropic", "m0")] == 6 and calls[("anthropic", "m199")] == 1, calls
    assert calls[("other", "other")] == 5 and ("anthropic", "m200") not in calls, calls


def idle_connections(port, source, n):
    """Open up to n connections to the server from address `source` and send nothing;
    the sockets (the server may close some at once)."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            break
        held.append(s)
    return held


def closed_by_server(s, timeout):
    """Whether the server closes socket s within `timeout` seconds."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def still_open(s):
    """Whether socket s is open, nothing received on it: looked at without waiting."""
    s.setblocking(False)
    try:
        s.recv(1, socket.MSG_PEEK)
        return False
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False


def connection_kept(port, source):
    """A new connection from `source` that the server keeps open: it may close the first
    ones while it still counts the address's connections just closed (its count falls
    after the client sees the close)."""
    def kept():
        s = idle_connections(port, source, 1)
        if s and not closed_by_server(s[0], 0.5):
            return s[0]
        for x in s:
            x.close()
        return None

    return wait_for(kept, 60, what="a connection from %s kept open" % source)


def serving(tmp):
    """A supervisor of a new database, with no workers, serving HTTP on 127.0.0.1: it,
    its base URL and its port."""
    sup = Supervisor(tmp, new_db(tmp, runs=1), "--workers", 0, "--http", "127.0.0.1:0")
    base = http_base(sup)
    return sup, base, urllib.parse.urlsplit(base).port


class RawAnswer:
    """The bytes a server sent, as a socket http.client can read an answer from."""
    def __init__(self, data):
        self.data = data

    def makefile(self, *args, **kw):
        return io.BytesIO(self.data)


def test_one_client_holding_idle_connections_locks_nobody_out(tmp):
    """A client that opens connections and sends nothing took every one of the server's
    128 for 10 s: /metrics and the dashboard answered nobody. Now one address holds 16 at
    most (a new one closes the oldest that sent nothing), and an idle connection is closed
    after 5 s."""
    sup, base, port = serving(tmp)
    held = []
    try:
        # From another loopback address, as from another host: 200 idle connections.
        held = idle_connections(port, "127.0.0.2", 200)
        assert len(held) >= 16
        # All but the 16 newest were closed at once, each by a newer one: before any of
        # the 16, which are closed only once silent for 5 s.
        made_room = [s for s in held[:-16] if closed_by_server(s, 60)]
        assert len(made_room) == len(held) - 16, (len(made_room), len(held))
        assert all(still_open(s) for s in held[-16:])
        # Every page is served meanwhile (a server whose every place they held refused
        # these connections at once).
        for path in ("/metrics", "/", "/api/status", "/healthz"):
            status, _, body = request(base, path, timeout=60)
            assert status == 200 and body, (path, status)
        assert "autopack_" in request(base, "/metrics")[2]
        # The 16 idle ones are closed.
        assert all(closed_by_server(s, 60) for s in held[-16:])
        # And the address may connect again.
        held.append(connection_kept(port, "127.0.0.2"))
    finally:
        for s in held:
            s.close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_idle_connections_from_many_loopback_addresses_lock_nobody_out(tmp):
    """Every 127.x address reaches a server on 127.0.0.1, and each could hold 16 idle
    connections: eight of them held all 128, and a scraper, from 127.0.0.1 or any other
    address, was refused until they were closed for their silence (5 s, or 10 s for a
    client sending a byte at a time, again and again). Sixteen idle ones from 127.0.0.1
    itself refused every other client of that address. A new connection now closes the
    oldest one that sent nothing, of its address past 16, of any address past 120, and is
    served."""
    sup, base, port = serving(tmp)
    held = []
    try:
        for a in range(2, 10):
            held += idle_connections(port, "127.0.0.%d" % a, 16)
        assert len(held) == 128
        # Served while the newest of them are still held (a server whose every place
        # they held served it only once they were closed for their silence).
        for path in ("/metrics", "/healthz", "/api/status"):
            status, _, body = request(base, path, timeout=60)
            assert status == 200 and body, (path, status)
        assert still_open(held[-1])
        assert closed_by_server(held[0], 60)
        # Sixteen from 127.0.0.1 itself: its next connection is served too.
        own = idle_connections(port, "127.0.0.1", 16)
        held += own
        status, _, body = request(base, "/metrics", timeout=60)
        assert status == 200 and "autopack_" in body, status
        assert still_open(own[-1])
        assert closed_by_server(own[0], 60)
        wait_for(lambda: "connection(s) that had sent no request closed to make room for "
                 "new ones (16 at most from one address, 120 in all)" in sup.stderr(), 60,
                 what="the log line")
    finally:
        for s in held:
            s.close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_a_page_of_another_site_resolving_to_loopback_reads_nothing(tmp):
    """A page of another site whose name it makes resolve to 127.0.0.1 (DNS rebinding)
    asks with its own name as Host, and the browser lets it read the answer: it read the
    status (the database's path, phase ids, failure messages) and the metrics. A server on
    a loopback address now answers only a Host that is an address or localhost."""
    url = new_db(tmp, runs=1)
    sup = Supervisor(tmp, url, "--workers", 0, "--http", "127.0.0.1:0")
    try:
        base = http_base(sup)
        port = urllib.parse.urlsplit(base).port
        for host in ("attacker.example:%d" % port, "attacker.example",
                     "127.0.0.1.attacker.example", "[attacker]:%d" % port):
            for path in ("/", "/api/status", "/metrics", "/healthz"):
                status, _, body = request(base, path, headers={"Host": host})
                assert status == 421, (host, path, status, body)
                assert json.loads(body)["error"] == "misdirected_request", body
                assert "autopack_" not in body and url not in body, body
        for host in ("127.0.0.1:%d" % port, "localhost:%d" % port, "LocalHost", "127.0.0.1",
                     "[::1]:%d" % port):
            status, _, body = request(base, "/api/status", headers={"Host": host})
            assert status == 200 and json.loads(body)["db_url"] == url, (host, body)
    finally:
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()


def test_a_request_sent_a_byte_at_a_time_gets_408_and_frees_its_place(tmp):
    """Sixteen connections sending their request a byte every 2 s (never silent for 5 s)
    held one address's every place for as long as the headers could grow (32 KiB: a day
    and a half): a scraper from that address was refused all the while. A request line and
    headers must now arrive within 10 s: the slow ones are answered 408 and closed, the
    address is served again, and a scraper asking every second, and the dashboard's every
    2 s, are served throughout."""
    url = new_db(tmp, runs=1)
    sup = Supervisor(tmp, url, "--workers", 0, "--http", "127.0.0.1:0")
    slow = []
    try:
        base = http_base(sup)
        port = urllib.parse.urlsplit(base).port
        slow = idle_connections(port, "127.0.0.2", 16)
        assert len(slow) == 16
        scrape = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        page = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
        got = [b""] * len(slow)
        ended = set()
        sent = [0]
        done = threading.Event()

        def trickle():
            """A byte on each slow connection every second, on a thread of its own so
            that a slow answer to the scraper never leaves them silent; what the server
            sends back is kept, until it closes each."""
            while not done.is_set() and len(ended) < len(slow):
                for k, s in enumerate(slow):
                    if k in ended:
                        continue
                    try:
                        s.send(req[sent[0]:sent[0] + 1])
                    except OSError:
                        pass
                    s.setblocking(False)
                    try:
                        while True:
                            chunk = s.recv(4096)
                            if not chunk:
                                ended.add(k)
                                break
                            got[k] += chunk
                    except BlockingIOError:
                        pass
                    except OSError:
                        ended.add(k)
                sent[0] += 1
                done.wait(1)

        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            # Served throughout, until every slow connection was answered and closed.
            i = 0
            deadline = time.monotonic() + 120
            while len(ended) < len(slow) and time.monotonic() < deadline:
                i += 1
                for c, path in ((scrape, "/metrics"), (page, "/api/status")):
                    if c is page and i % 2:
                        continue
                    c.request("GET", path)
                    r = c.getresponse()
                    assert r.status == 200 and r.read(), path
                time.sleep(1)
        finally:
            done.set()
            sender.join()
        assert len(ended) == len(slow), "slow connections never closed: %d of %d" % (
            len(slow) - len(ended), len(slow))
        i = sent[0]
        # Each is a whole answer to Python's HTTP client: status, headers, a body of the
        # length it announces, JSON.
        for d in got:
            r = http.client.HTTPResponse(RawAnswer(d))
            r.begin()
            body = r.read()
            assert r.status == 408 and r.getheader("Connection") == "close", d
            assert len(body) == int(r.getheader("Content-Length")), d
            assert json.loads(body)["error"] == "request_timeout", d
        assert i < len(req) - 4  # they never finished
        status, _, body = request(base, "/metrics", timeout=60)
        assert status == 200 and "autopack_" in body
        slow.append(connection_kept(port, "127.0.0.2"))
        assert "connection(s) answered 408 and closed: the request line and headers took " \
               "over 10 s" in sup.stderr()
    finally:
        for s in slow:
            s.close()
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.stderr()
