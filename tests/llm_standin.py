#!/usr/bin/python3
"""A local stand-in for the LLM providers, for tests.

Serves POST /v1/messages (Anthropic Messages API: needs x-api-key and anthropic-version)
and POST /v1/chat/completions (OpenAI chat completions: needs "Authorization: Bearer ...")
on 127.0.0.1, on a port chosen by the system and written to --port-file (a pipe such as
/dev/fd/3 lets a test block until the server is ready instead of polling).

What each request gets is scripted (--script FILE, JSON):
  [spec, ...]                                  consumed in order, then "normal"
  {"sequence": [spec...], "markers": {"TEXT": [spec...]}, "default": spec}
A marker list is used when TEXT occurs in the prompt (e.g. a phase id). A spec is an
object with "mode" and options:
  normal     files for the requested deliverables ("content", "files", "fence": true,
             "output_tokens", "stop_reason" (Anthropic's stop_reason or OpenAI's
             finish_reason) override the defaults)
  truncated  half the document; stop_reason max_tokens / finish_reason length;
             completion tokens = the request's max_tokens
  status     HTTP "status" (e.g. 429, 500) with "retry_after", "location" (a redirect's
             target) and an error "message"; "interim" (an object of headers) sends a
             103 Early Hints answer with those headers first
  sleep      wait "seconds" (past the client's timeout), then answer normally
  malformed  200 with a body that is not JSON
  nested     HTTP "status" (default 200) with a JSON object whose "content" (an error's
             "message" at 400 and past) is arrays nested "depth" deep (default 2048,
             as deep as jansson reads)
  wrong_shape  200 with a JSON object that is no message (Anthropic's "content" a string,
             OpenAI's "choices" missing) but has a usage object: 7 input, 9 output tokens
  huge       200 with a JSON body of "size_mib" MiB (default 9)
  hostile    files at "paths" (default ../../etc/x and /etc/passwd) plus the deliverables
  missing    every requested deliverable except the last (or those not in "skip")
  echo_key   400 whose message repeats the key the client sent, after "pad" dots
             (default 0); with "raw" true a text body that is no JSON; with a 3xx
             "status" a redirect whose "location" ends with the dots and the key; with
             "content_type" the "status" (e.g. 200) with a body "<html>" and that
             Content-Type, "{key}" in it replaced by the key; with "prefix" N the
             "status" (e.g. 200) with the body {"echo": "<the key's first N bytes>\x01"},
             which is no JSON (a control character in a string)
  echo_key_answer  normal files whose content holds the key the client sent, and a stop
             reason of 50 "x" and the key
  no_usage   normal files but no usage object
A spec with "until" (a path) holds its answer, once the request passed the checks below,
until that file exists, at most "seconds" (default 5 for sleep, 600 for the other modes):
a test lets a call end once it has seen what it needs. "{n}" in the path is the request's
number, counting from 1 in the order they arrived: each call is let go on its own.

Requests are checked as the real APIs check them, and refused with 400 in the real API's
error shape before any script applies:
  Anthropic  the anthropic-version header is a published version (2023-06-01, 2023-01-01);
             Content-Type is application/json; the body is a JSON object with model
             (string), max_tokens (integer >= 1) and messages (non-empty array), and no
             other fields than the Messages API defines; system is a string or a list of
             text blocks (never a message role); each message is {role: user|assistant,
             content: a non-empty string or list of content blocks of a known type}, the
             first one from the user; temperature is within 0..1.
             Error: {"type": "error", "error": {"type": "invalid_request_error",
             "message": ...}, "request_id": ...}, and a request-id header.
  OpenAI     the body is valid against CreateChatCompletionRequest of OpenAI's own OpenAPI
             document (tests/data/openai-chat-completions.yaml) and has no argument it
             does not define. Error: {"error": {"message": ..., "type":
             "invalid_request_error", "param": ..., "code": ...}}.
A refused request is logged with "status": 400 and "refused": the message.

  openapi_random  (OpenAI) a random response that OpenAI's CreateChatCompletionResponse
             schema accepts, from "seed" plus the request's number; with "files": true
             (the default) each choice's message content is, by chance, the files document
             instead of random text. The log entry holds the whole "response".

Token counts are deterministic: prompt tokens = characters of system + user text // 4,
completion tokens = characters of the answer text // 4 (at least 1 each).

--log FILE appends one JSON line per request: path, provider, the client's port
("peer_port": requests over one connection share it; with --keep-alive the server speaks
HTTP/1.1 and keeps connections open), whether a key was present
and whether it matched --expect-key (never the key itself), whether the key also appeared
anywhere else in the request (another header, the path or the body: "key_elsewhere"), the
other headers, model, max_tokens, the marker and spec used, the status sent and the usage
returned. It is written when the answer goes out; --received FILE appends one line per
request ("path") as soon as its body is read, so a test can count the requests a provider
saw even while their answers are still delayed.

Stops on SIGTERM, and by itself after --max-seconds (default 600).
"""
import argparse
import http.server
import itertools
import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openai_schema  # noqa: E402

KEY_HEADERS = ("x-api-key", "authorization")
ANTHROPIC_VERSIONS = ("2023-06-01", "2023-01-01")
# The Messages API's request fields.
ANTHROPIC_FIELDS = {"model", "max_tokens", "messages", "system", "temperature", "top_p",
                    "top_k", "stop_sequences", "stream", "metadata", "tools", "tool_choice",
                    "thinking", "service_tier", "container", "mcp_servers"}
ANTHROPIC_BLOCKS = {"text", "image", "document", "search_result", "tool_use", "tool_result",
                    "thinking", "redacted_thinking", "server_tool_use",
                    "web_search_tool_result", "container_upload"}
request_numbers = itertools.count()
random_numbers = itertools.count()


def anthropic_block_error(where, block):
    if not isinstance(block, dict):
        return "%s: Input should be a valid dictionary" % where
    kind = block.get("type")
    if kind not in ANTHROPIC_BLOCKS:
        return "%s.type: Input tag '%s' found using 'type' does not match any of the " \
            "expected tags" % (where, kind)
    if kind == "text":
        if not isinstance(block.get("text"), str):
            return "%s.text: Field required" % where
        if not block["text"]:
            return "%s: text content blocks must be non-empty" % where
    return None


def anthropic_request_error(headers, req):
    """Why the Messages API would refuse this request, or None."""
    version = headers.get("anthropic-version")
    if not version:
        return "anthropic-version: header is required"
    if version not in ANTHROPIC_VERSIONS:
        return "anthropic-version: unknown version '%s'" % version
    ctype = (headers.get("content-type") or "").split(";")[0].strip()
    if ctype != "application/json":
        return "content-type: expected application/json, got '%s'" % ctype
    if not isinstance(req, dict):
        return "The request body is not valid JSON"
    for k in req:
        if k not in ANTHROPIC_FIELDS:
            return "%s: Extra inputs are not permitted" % k
    if not isinstance(req.get("model"), str):
        return "model: Field required" if "model" not in req else \
            "model: Input should be a valid string"
    mt = req.get("max_tokens")
    if mt is None:
        return "max_tokens: Field required"
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        return "max_tokens: Input should be a valid integer greater than or equal to 1"
    if "temperature" in req:
        t = req["temperature"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= 1:
            return "temperature: Input should be less than or equal to 1"
    if "system" in req:
        system = req["system"]
        if isinstance(system, list):
            for i, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    return "system.%d: Input should be a text block" % i
                err = anthropic_block_error("system.%d" % i, block)
                if err:
                    return err
        elif not isinstance(system, str):
            return "system: Input should be a valid string or a list of text blocks"
    msgs = req.get("messages")
    if not isinstance(msgs, list):
        return "messages: Field required" if msgs is None else \
            "messages: Input should be a valid list"
    if not msgs:
        return "messages: at least one message is required"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return "messages.%d: Input should be a valid dictionary" % i
        for k in m:
            if k not in ("role", "content"):
                return "messages.%d.%s: Extra inputs are not permitted" % (i, k)
        role = m.get("role")
        if role == "system":
            return ('messages: Unexpected role "system". The Messages API accepts a '
                    'top-level `system` parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            return "messages.%d.role: Input should be 'user' or 'assistant'" % i
        content = m.get("content")
        if isinstance(content, str):
            if not content and not (role == "assistant" and i == len(msgs) - 1):
                return "messages.%d: all messages must have non-empty content except for " \
                    "the optional final assistant message" % i
        elif isinstance(content, list):
            if not content:
                return "messages.%d: all messages must have non-empty content" % i
            for j, block in enumerate(content):
                err = anthropic_block_error("messages.%d.content.%d" % (i, j), block)
                if err:
                    return err
        else:
            return "messages.%d.content: Field required" % i
    if msgs[0]["role"] != "user":
        return "messages: first message must use the \"user\" role"
    return None


def key_elsewhere(key, path, headers, raw, key_header):
    """Whether the key shows anywhere but its own header."""
    if not key:
        return False
    if key in path or key.encode() in raw:
        return True
    return any(key in v for k, v in headers.items() if k.lower() != key_header)


class Script:
    """The scripted responses, consumed under a lock."""

    def __init__(self, data):
        self.lock = threading.Lock()
        if isinstance(data, list):
            data = {"sequence": data}
        self.sequence = list(data.get("sequence", []))
        self.markers = {k: list(v) for k, v in data.get("markers", {}).items()}
        self.default = data.get("default", {"mode": "normal"})

    def next(self, prompt):
        with self.lock:
            for marker, specs in self.markers.items():
                if marker in prompt and specs:
                    return marker, specs.pop(0)
            if self.sequence:
                return None, self.sequence.pop(0)
            return None, dict(self.default)


def hold(spec, number):
    """Wait as `spec` says before answering request `number`: until the file at its "until"
    ("{n}" replaced by the number) exists, at most its "seconds" (5 for a sleep, 600 for
    another mode); a sleep without "until" waits them all."""
    wake = time.time() + float(spec.get("seconds", 5 if spec.get("mode") == "sleep" else 600))
    until = spec.get("until", "").replace("{n}", str(number))
    while not (until and os.path.exists(until)):
        left = wake - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.05) if until else left)


def deliverables_of(prompt):
    """The paths listed under "## Deliverables" in the prompt."""
    out, inside = [], False
    for line in prompt.splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Deliverables"
            continue
        if inside and line.startswith("- "):
            out.append(line[2:].strip().strip("`"))
    return out


def default_content(path):
    if path.endswith(".py"):
        return "# %s, written by the LLM stand-in\nVALUE = 1\n" % path
    return "%s, written by the LLM stand-in\n" % path


def files_document(spec, deliverables):
    mode = spec.get("mode", "normal")
    if "files" in spec:
        files = spec["files"]
    else:
        paths = list(deliverables)
        if mode == "missing":
            skip = spec.get("skip")
            paths = [p for p in paths if p not in skip] if skip else paths[:-1]
        files = [{"path": p, "mode": "create",
                  "new_content": spec.get("content", default_content(p))} for p in paths]
        if mode == "hostile":
            hostile = spec.get("paths", ["../../etc/x", "/etc/passwd"])
            files = [{"path": p, "mode": "create", "new_content": "owned\n"}
                     for p in hostile] + files
    text = json.dumps({"files": files}, indent=1)
    if spec.get("fence"):
        text = "Here are the files.\n\n```json\n%s\n```\n" % text
    return text


def make_handler(args, script, log_lock):
    arrivals = itertools.count(1)

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "llm-standin/1"
        # HTTP/1.1 keeps a connection open for the client's next request.
        protocol_version = "HTTP/1.1" if args.keep_alive else "HTTP/1.0"

        def log_message(self, fmt, *a):
            pass

        def write_log(self, entry):
            if not args.log:
                return
            with log_lock, open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")

        def send_json(self, status, obj, headers=None):
            body = json.dumps(obj).encode()
            self.send_raw(status, body, headers)

        def send_raw(self, status, body, headers=None):
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def send_random(self, entry, provider, spec, deliverables):
            """A random schema-valid chat completion (see openapi_random)."""
            if provider != "openai":
                entry["status"] = 500
                self.write_log(entry)
                self.send_json(500, {"error": {"message": "openapi_random is for OpenAI"}})
                return
            seed = int(spec.get("seed", 0)) * 1000003 + next(random_numbers)
            body = openai_schema.random_response(seed)
            rng = random.Random(seed)
            for choice in body.get("choices", []):
                if spec.get("files", True) and rng.random() < 0.5:
                    choice["message"]["content"] = files_document({}, deliverables)
            entry.update(status=200, response=body, seed=seed, deliverables=deliverables)
            self.write_log(entry)
            self.send_json(200, body)

        def refuse(self, entry, provider, message):
            """Answer 400 as the provider does, and log why."""
            entry.update(status=400, refused=message)
            self.write_log(entry)
            if provider == "anthropic":
                rid = "req_standin%06d" % next(request_numbers)
                self.send_json(400, {"type": "error", "error": {
                    "type": "invalid_request_error", "message": message},
                    "request_id": rid}, {"request-id": rid})
            else:
                self.send_json(400, {"error": {
                    "message": message, "type": "invalid_request_error",
                    "param": None, "code": None}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with log_lock:
                number = next(arrivals)
                if args.received:
                    with open(args.received, "a") as f:
                        f.write(json.dumps({"path": self.path}) + "\n")
            if self.path == "/v1/messages":
                provider = "anthropic"
                key = self.headers.get("x-api-key")
                key_header = "x-api-key"
            elif self.path == "/v1/chat/completions":
                provider = "openai"
                auth = self.headers.get("Authorization") or ""
                key = auth[7:] if auth.startswith("Bearer ") else None
                key_header = "authorization"
            else:
                self.send_json(404, {"error": {"message": "no route %s" % self.path}})
                return
            entry = {
                "path": self.path, "provider": provider,
                "peer_port": self.client_address[1],
                "key_present": bool(key),
                "key_ok": bool(key) and (args.expect_key is None or key == args.expect_key),
                "key_elsewhere": key_elsewhere(key, self.path, self.headers, raw, key_header),
                "headers": {k.lower(): v for k, v in self.headers.items()
                            if k.lower() not in KEY_HEADERS},
                "anthropic_version": self.headers.get("anthropic-version"),
            }
            try:
                req = json.loads(raw)
            except ValueError:
                req = None
            if not isinstance(req, dict):
                self.refuse(entry, provider, "The request body is not a JSON object")
                return
            system = req.get("system") or ""
            prompt_parts = [system] if isinstance(system, str) else []
            for m in req.get("messages") or []:
                if isinstance(m, dict) and isinstance(m.get("content"), str):
                    prompt_parts.append(m["content"])
            prompt = "\n".join(prompt_parts)
            marker, spec = script.next(prompt)
            mode = spec.get("mode", "normal")
            entry.update(model=req.get("model"), max_tokens=req.get("max_tokens"),
                         temperature=req.get("temperature"), marker=marker, mode=mode,
                         spec=spec, usage=None)

            if mode == "echo_key":
                status = int(spec.get("status", 400))
                text = "." * int(spec.get("pad", 0)) + "invalid key %s" % (key or "")
                entry["status"] = status
                self.write_log(entry)
                if "prefix" in spec:
                    self.send_raw(status, b'{"echo": "' + (key or "").encode()[
                        :int(spec["prefix"])] + b'\x01"}')
                elif "content_type" in spec:
                    try:
                        self.send_response(status)
                        self.send_header("Content-Type",
                                         spec["content_type"].replace("{key}", key or ""))
                        self.send_header("Content-Length", "6")
                        self.end_headers()
                        self.wfile.write(b"<html>")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                elif 300 <= status < 400:
                    self.send_json(status, {}, {"location": spec["location"] + "." * int(spec.get("pad", 0)) + (key or "")})
                elif spec.get("raw"):
                    self.send_raw(status, text.encode())
                else:
                    self.send_json(status, {"type": "error", "error": {
                        "type": "invalid_request_error", "message": text}})
                return
            if not entry["key_ok"]:
                entry["status"] = 401
                self.write_log(entry)
                self.send_json(401, {"type": "error", "error": {
                    "type": "authentication_error", "message": "invalid or missing API key"}})
                return
            if provider == "anthropic":
                refused = anthropic_request_error(self.headers, req)
            else:
                refused = "; ".join(openai_schema.request_errors(req)[:5]) or None
            if refused:
                self.refuse(entry, provider, refused)
                return
            if mode == "sleep" or "until" in spec:
                hold(spec, number)
            if mode == "status":
                status = int(spec.get("status", 500))
                headers = {}
                if "retry_after" in spec:
                    headers["retry-after"] = spec["retry_after"]
                if "location" in spec:
                    # Sent as its UTF-8 bytes (http.server writes a header as Latin-1).
                    headers["location"] = spec["location"].encode().decode("latin-1")
                entry["status"] = status
                self.write_log(entry)
                if "interim" in spec:
                    self.wfile.write(("HTTP/1.1 103 Early Hints\r\n" + "".join(
                        "%s: %s\r\n" % kv for kv in spec["interim"].items())
                        + "\r\n").encode())
                self.send_json(status, {"type": "error", "error": {
                    "type": "scripted", "message": spec.get("message", "scripted %d" % status)}},
                    headers)
                return
            if mode == "wrong_shape":
                entry["status"] = 200
                self.write_log(entry)
                if provider == "anthropic":
                    self.send_json(200, {"type": "message", "content": "no blocks",
                                         "usage": {"input_tokens": 7, "output_tokens": 9}})
                else:
                    self.send_json(200, {"object": "chat.completion", "usage": {
                        "prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16}})
                return
            if mode == "nested":
                status = int(spec.get("status", 200))
                depth = int(spec.get("depth", 2048))
                deep = "[" * depth + "]" * depth
                entry["status"] = status
                self.write_log(entry)
                if status >= 400:
                    body = '{"type": "error", "error": {"message": %s}}' % deep
                else:
                    body = '{"type": "message", "content": %s}' % deep
                self.send_raw(status, body.encode())
                return
            if mode == "malformed":
                entry["status"] = 200
                self.write_log(entry)
                self.send_raw(200, b'{"content": [ this is not json')
                return
            if mode == "huge":
                size = int(float(spec.get("size_mib", 9)) * (1 << 20))
                entry["status"] = 200
                self.write_log(entry)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    head = b'{"pad": "'
                    self.wfile.write(head)
                    left = size - len(head) - 2
                    chunk = b"x" * 65536
                    while left > 0:
                        n = min(left, len(chunk))
                        self.wfile.write(chunk[:n])
                        left -= n
                    self.wfile.write(b'"}')
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
            if mode == "echo_key_answer":
                spec = dict(spec, content="KEY = %r\n" % key, stop_reason="x" * 50 + key)
            if mode == "openapi_random":
                self.send_random(entry, provider, spec, deliverables_of(prompt))
                return

            deliverables = deliverables_of(prompt)
            text = files_document(spec, deliverables)
            prompt_tokens = max(1, len(prompt) // 4)
            completion = max(1, len(text) // 4)
            truncated = mode == "truncated"
            if truncated:
                text = text[:len(text) // 2]
                completion = int(req.get("max_tokens") or completion)
            if "output_tokens" in spec:
                completion = int(spec["output_tokens"])
            usage = None if mode == "no_usage" else (prompt_tokens, completion)
            if provider == "anthropic":
                body = {"id": "msg_standin", "type": "message", "role": "assistant",
                        "model": req.get("model"),
                        "content": [{"type": "text", "text": text}],
                        "stop_reason": spec.get("stop_reason",
                                                "max_tokens" if truncated else "end_turn")}
                if usage:
                    body["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
            else:
                body = {"id": "chatcmpl-standin", "object": "chat.completion",
                        "model": req.get("model"),
                        "choices": [{"index": 0,
                                     "message": {"role": "assistant", "content": text},
                                     "finish_reason": spec.get(
                                         "stop_reason", "length" if truncated else "stop")}]}
                if usage:
                    body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                     "total_tokens": usage[0] + usage[1]}
            entry["status"] = 200
            entry["deliverables"] = deliverables
            if usage:
                entry["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
            self.write_log(entry)
            self.send_json(200, body)

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port-file", help="write the chosen port here")
    ap.add_argument("--script", help="JSON script of responses")
    ap.add_argument("--log", help="append one JSON line per request here")
    ap.add_argument("--received", help="append one line per request here as it arrives")
    ap.add_argument("--expect-key", help="the API key requests must carry")
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--keep-alive", action="store_true",
                    help="speak HTTP/1.1: a connection stays open for the next request")
    args = ap.parse_args()

    data = []
    if args.script:
        with open(args.script) as f:
            data = json.load(f)
    script = Script(data)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             make_handler(args, script, threading.Lock()))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    timer = threading.Timer(args.max_seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write("%d\n" % port)
    else:
        print(port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
