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
             "output_tokens" override the defaults)
  truncated  half the document; stop_reason max_tokens / finish_reason length;
             completion tokens = the request's max_tokens
  status     HTTP "status" (e.g. 429, 500) with "retry_after" and an error "message"
  sleep      wait "seconds" (past the client's timeout), then answer normally
  malformed  200 with a body that is not JSON
  huge       200 with a JSON body of "size_mib" MiB (default 9)
  hostile    files at "paths" (default ../../etc/x and /etc/passwd) plus the deliverables
  missing    every requested deliverable except the last (or those not in "skip")
  echo_key   401 whose message repeats the key the client sent
  no_usage   normal files but no usage object

Token counts are deterministic: prompt tokens = characters of system + user text // 4,
completion tokens = characters of the answer text // 4 (at least 1 each).

--log FILE appends one JSON line per request: path, provider, whether a key was present
and whether it matched --expect-key (never the key itself), the other headers, model,
max_tokens, the marker and spec used, the status sent and the usage returned.

Stops on SIGTERM, and by itself after --max-seconds (default 600).
"""
import argparse
import http.server
import json
import os
import signal
import sys
import threading
import time

KEY_HEADERS = ("x-api-key", "authorization")


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
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "llm-standin/1"

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

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path == "/v1/messages":
                provider = "anthropic"
                key = self.headers.get("x-api-key")
            elif self.path == "/v1/chat/completions":
                provider = "openai"
                auth = self.headers.get("Authorization") or ""
                key = auth[7:] if auth.startswith("Bearer ") else None
            else:
                self.send_json(404, {"error": {"message": "no route %s" % self.path}})
                return
            entry = {
                "path": self.path, "provider": provider,
                "key_present": bool(key),
                "key_ok": bool(key) and (args.expect_key is None or key == args.expect_key),
                "headers": {k.lower(): v for k, v in self.headers.items()
                            if k.lower() not in KEY_HEADERS},
                "anthropic_version": self.headers.get("anthropic-version"),
            }
            try:
                req = json.loads(raw)
            except ValueError:
                req = None
            if not isinstance(req, dict):
                entry.update(status=400, mode="bad_request")
                self.write_log(entry)
                self.send_json(400, {"error": {"message": "request body is not JSON"}})
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
                entry["status"] = 401
                self.write_log(entry)
                self.send_json(401, {"type": "error", "error": {
                    "type": "authentication_error",
                    "message": "invalid key %s" % (key or "")}})
                return
            if not entry["key_ok"]:
                entry["status"] = 401
                self.write_log(entry)
                self.send_json(401, {"type": "error", "error": {
                    "type": "authentication_error", "message": "invalid or missing API key"}})
                return
            if provider == "anthropic" and not entry["anthropic_version"]:
                entry["status"] = 400
                self.write_log(entry)
                self.send_json(400, {"type": "error", "error": {
                    "type": "invalid_request_error",
                    "message": "anthropic-version header is required"}})
                return
            if mode == "status":
                status = int(spec.get("status", 500))
                headers = {}
                if "retry_after" in spec:
                    headers["retry-after"] = spec["retry_after"]
                entry["status"] = status
                self.write_log(entry)
                self.send_json(status, {"type": "error", "error": {
                    "type": "scripted", "message": spec.get("message", "scripted %d" % status)}},
                    headers)
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
            if mode == "sleep":
                time.sleep(float(spec.get("seconds", 5)))

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
                        "stop_reason": "max_tokens" if truncated else "end_turn"}
                if usage:
                    body["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
            else:
                body = {"id": "chatcmpl-standin", "object": "chat.completion",
                        "model": req.get("model"),
                        "choices": [{"index": 0,
                                     "message": {"role": "assistant", "content": text},
                                     "finish_reason": "length" if truncated else "stop"}]}
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
    ap.add_argument("--expect-key", help="the API key requests must carry")
    ap.add_argument("--max-seconds", type=float, default=600)
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
