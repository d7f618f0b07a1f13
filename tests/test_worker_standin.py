"""The LLM stand-in as a process: readiness through --port-file, both APIs' auth rules,
marker-keyed scripts, the request log, and how it stops."""
import http.client
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import ROOT

STANDIN = os.path.join(ROOT, "tests", "llm_standin.py")
KEY = "sk-standin-test-key"


class Standin:
    def __init__(self, tmp, script, *extra):
        (tmp / "script.json").write_text(json.dumps(script))
        self.log = tmp / "requests.log"
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", STANDIN, "--port-file", "/dev/fd/%d" % w,
             "--script", str(tmp / "script.json"), "--log", str(self.log),
             "--expect-key", KEY] + list(extra), pass_fds=(w,))
        os.close(w)
        with os.fdopen(r) as f:
            self.port = int(f.readline())

    def post(self, path, body, headers):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", path, json.dumps(body), headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, json.loads(data) if data.startswith(b"{") else data

    def entries(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


def anthropic_headers(key=KEY, version="2023-06-01"):
    h = {"Content-Type": "application/json"}
    if key:
        h["x-api-key"] = key
    if version:
        h["anthropic-version"] = version
    return h


def message(prompt, max_tokens=1000):
    return {"model": "m", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}]}


PROMPT = "Phase id: p7\n\n## Deliverables\n- utils/a.py\n- `docs/b.md`\n\n## Scope\n- utils/\n"


def test_standin_normal_answers_files_for_the_deliverables_with_usage(tmp):
    s = Standin(tmp, [])
    try:
        status, body = s.post("/v1/messages", message(PROMPT), anthropic_headers())
        assert status == 200
        files = json.loads(body["content"][0]["text"])["files"]
        assert [f["path"] for f in files] == ["utils/a.py", "docs/b.md"]
        assert body["stop_reason"] == "end_turn"
        assert body["usage"]["input_tokens"] == len(PROMPT) // 4
        assert body["usage"]["output_tokens"] == len(body["content"][0]["text"]) // 4
        entry = s.entries()[0]
        assert entry["usage"]["completion_tokens"] == body["usage"]["output_tokens"]
        assert entry["key_present"] and entry["key_ok"]
    finally:
        assert s.stop() == 0


def test_standin_requires_key_and_anthropic_version_and_never_logs_the_key(tmp):
    s = Standin(tmp, [])
    try:
        assert s.post("/v1/messages", message(PROMPT), anthropic_headers(key=None))[0] == 401
        assert s.post("/v1/messages", message(PROMPT), anthropic_headers(key="wrong"))[0] == 401
        assert s.post("/v1/messages", message(PROMPT), anthropic_headers(version=None))[0] == 400
        status, _ = s.post("/v1/chat/completions", message(PROMPT),
                           {"Authorization": "Bearer " + KEY})
        assert status == 200
        assert s.post("/v1/chat/completions", message(PROMPT), {})[0] == 401
        log = s.log.read_text()
        assert KEY not in log and "wrong" not in log
        assert [e["key_ok"] for e in s.entries()] == [False, False, True, True, False]
    finally:
        s.stop()


def test_standin_marker_scripts_override_the_sequence(tmp):
    s = Standin(tmp, {"sequence": [{"mode": "status", "status": 500}],
                      "markers": {"p7": [{"mode": "truncated"}]}})
    try:
        status, body = s.post("/v1/chat/completions", message(PROMPT, 321),
                              {"Authorization": "Bearer " + KEY})
        assert status == 200
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 321
        status, _ = s.post("/v1/messages", message("other"), anthropic_headers())
        assert status == 500
        status, _ = s.post("/v1/messages", message("other"), anthropic_headers())
        assert status == 200
        assert [e["marker"] for e in s.entries()] == ["p7", None, None]
    finally:
        s.stop()


def test_standin_hostile_and_missing_modes(tmp):
    s = Standin(tmp, [{"mode": "hostile"}, {"mode": "missing"}])
    try:
        _, body = s.post("/v1/messages", message(PROMPT), anthropic_headers())
        paths = [f["path"] for f in json.loads(body["content"][0]["text"])["files"]]
        assert paths[:2] == ["../../etc/x", "/etc/passwd"]
        _, body = s.post("/v1/messages", message(PROMPT), anthropic_headers())
        paths = [f["path"] for f in json.loads(body["content"][0]["text"])["files"]]
        assert paths == ["utils/a.py"]
    finally:
        s.stop()


def test_standin_exits_by_itself_after_max_seconds(tmp):
    s = Standin(tmp, [], "--max-seconds", "0.5")
    t0 = time.monotonic()
    assert s.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5
