"""The LLM stand-in as a process: readiness through --port-file, both APIs' auth rules,
marker-keyed scripts, the request log, and how it stops."""
import http.client
import json
import os
import signal
import subprocess

import openai_schema
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
    assert s.proc.wait(timeout=30) == 0


def bad_anthropic_requests():
    """(what, body, headers, the start of the API's message) the Messages API refuses."""
    ok = message(PROMPT)
    h = anthropic_headers()
    return [
        ("version", ok, anthropic_headers(version=None), "anthropic-version: header is"),
        ("version value", ok, anthropic_headers(version="2024-13-01"),
         "anthropic-version: unknown version"),
        ("content type", ok, dict(h, **{"Content-Type": "text/plain"}), "content-type:"),
        ("no model", {k: v for k, v in ok.items() if k != "model"}, h, "model: Field"),
        ("no max_tokens", {k: v for k, v in ok.items() if k != "max_tokens"}, h,
         "max_tokens: Field required"),
        ("max_tokens 0", dict(ok, max_tokens=0), h, "max_tokens: Input should be"),
        ("max_tokens text", dict(ok, max_tokens="100"), h, "max_tokens: Input should be"),
        ("no messages", {k: v for k, v in ok.items() if k != "messages"}, h,
         "messages: Field required"),
        ("empty messages", dict(ok, messages=[]), h, "messages: at least one message"),
        ("system as a role", dict(ok, messages=[{"role": "system", "content": "be good"},
                                                {"role": "user", "content": PROMPT}]), h,
         'messages: Unexpected role "system"'),
        ("unknown role", dict(ok, messages=[{"role": "developer", "content": PROMPT}]), h,
         "messages.0.role: Input should be 'user' or 'assistant'"),
        ("assistant first", dict(ok, messages=[{"role": "assistant", "content": "hi"},
                                               {"role": "user", "content": PROMPT}]), h,
         'messages: first message must use the "user" role'),
        ("unknown block", dict(ok, messages=[{"role": "user", "content": [
            {"type": "input_text", "text": PROMPT}]}]), h, "messages.0.content.0.type"),
        ("empty text block", dict(ok, messages=[{"role": "user", "content": [
            {"type": "text", "text": ""}]}]), h, "messages.0.content.0: text content"),
        ("empty content", dict(ok, messages=[{"role": "user", "content": ""}]), h,
         "messages.0: all messages must have non-empty content"),
        ("extra message field", dict(ok, messages=[{"role": "user", "content": PROMPT,
                                                    "name": "x"}]), h,
         "messages.0.name: Extra inputs are not permitted"),
        ("system object", dict(ok, system={"text": "x"}), h, "system: Input should be"),
        ("system block type", dict(ok, system=[{"type": "image", "text": "x"}]), h,
         "system.0: Input should be a text block"),
        ("OpenAI field", dict(ok, max_completion_tokens=100), h,
         "max_completion_tokens: Extra inputs are not permitted"),
        ("temperature", dict(ok, temperature=1.5), h, "temperature: Input should be"),
    ]


def test_standin_refuses_what_the_messages_api_refuses_in_its_error_shape(tmp):
    s = Standin(tmp, [])
    try:
        cases = bad_anthropic_requests()
        for what, body, headers, msg in cases:
            status, reply = s.post("/v1/messages", body, headers)
            assert status == 400, (what, reply)
            assert set(reply) == {"type", "error", "request_id"}, (what, reply)
            assert reply["type"] == "error"
            assert reply["error"]["type"] == "invalid_request_error"
            assert reply["error"]["message"].startswith(msg), (what, reply)
        # What the API accepts: system as text blocks, content as blocks, a prefill.
        for body in [dict(message(PROMPT), system=[{"type": "text", "text": "be good"}]),
                     dict(message(PROMPT), messages=[{"role": "user", "content": [
                         {"type": "text", "text": PROMPT}]}]),
                     dict(message(PROMPT), temperature=0, system="be good",
                          messages=[{"role": "user", "content": PROMPT},
                                    {"role": "assistant", "content": "{"}])]:
            status, reply = s.post("/v1/messages", body, anthropic_headers())
            assert status == 200, (body, reply)
        refused = [e for e in s.entries() if e["status"] == 400]
        assert len(refused) == len(cases)
        assert all(e["refused"] for e in refused)
    finally:
        s.stop()


def openai_request(**kw):
    body = {"model": "m", "max_tokens": 100, "temperature": 0.2,
            "messages": [{"role": "system", "content": "be good"},
                         {"role": "user", "content": PROMPT}]}
    body.update(kw)
    return body


def test_standin_checks_openai_requests_against_openais_schema(tmp):
    s = Standin(tmp, [])
    bearer = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
    try:
        status, reply = s.post("/v1/chat/completions", openai_request(), bearer)
        assert status == 200, reply
        for what, body, msg in [
                ("no messages", {"model": "m"}, "'messages' is a required property"),
                ("no model", {"messages": [{"role": "user", "content": "x"}]},
                 "'model' is a required property"),
                ("bad role", openai_request(messages=[{"role": "robot", "content": "x"}]),
                 "messages.0:"),
                ("Anthropic content block", openai_request(messages=[
                    {"role": "user", "content": [{"type": "input_text", "text": "x"}]}]),
                 "messages.0:"),
                ("max_tokens text", openai_request(max_tokens="100"),
                 "max_tokens: '100' is not of type 'integer'"),
                ("temperature", openai_request(temperature=3), "temperature:"),
                ("Anthropic system field", openai_request(system="be good"),
                 "Unrecognized request argument supplied: system")]:
            status, reply = s.post("/v1/chat/completions", body, bearer)
            assert status == 400, (what, reply)
            assert set(reply) == {"error"}
            assert set(reply["error"]) == {"message", "type", "param", "code"}
            assert reply["error"]["type"] == "invalid_request_error"
            assert msg in reply["error"]["message"], (what, reply)
    finally:
        s.stop()


def test_standin_openapi_random_answers_valid_responses(tmp):
    s = Standin(tmp, {"default": {"mode": "openapi_random", "seed": 3}})
    bearer = {"Authorization": "Bearer " + KEY}
    check = openai_schema.validator(openai_schema.RESPONSE)
    try:
        bodies = []
        for _ in range(20):
            status, body = s.post("/v1/chat/completions", openai_request(), bearer)
            assert status == 200
            errors = list(check.iter_errors(body))
            assert not errors, errors[0].message
            bodies.append(body)
        assert [e["response"] for e in s.entries()] == bodies
        contents = [c["message"].get("content") for b in bodies for c in b["choices"]]
        assert any(isinstance(c, str) and '"files"' in c for c in contents)
        assert any(c is None or '"files"' not in c for c in contents)
    finally:
        s.stop()


def test_standin_logs_a_key_sent_anywhere_but_its_header(tmp):
    s = Standin(tmp, [])
    try:
        s.post("/v1/messages", message(PROMPT), anthropic_headers())
        s.post("/v1/messages", message("key " + KEY), anthropic_headers())
        s.post("/v1/messages", message(PROMPT), dict(anthropic_headers(),
                                                     Authorization="Bearer " + KEY))
        assert [e["key_elsewhere"] for e in s.entries()] == [False, True, True]
        assert KEY not in s.log.read_text()
    finally:
        s.stop()
