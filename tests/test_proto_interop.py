"""The wire protocol against an independent msgpack implementation (Debian's
python3-msgpack): frames packed there decode here with every value intact, frames packed
here decode there, and malformed frames packed there are refused with the field and the
reason. proto-tool decodes strictly and packs again with the C packer."""
import os
import resource
import struct
import subprocess

import msgpack
import pytest

from conftest import binpath

TOOL = binpath("proto-tool")
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
I64_MIN = -2**63
TOKENS_MAX = 10**9  # PROTO_TOKENS_MAX: the most one token count may say
UUID = "6f1c2a5e-3b7d-4c1e-9a8f-2d4b6c8e0f12"
TEXT = "Ünïcödé ✓ 𝄞 日本語"


def frame(obj):
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def raw_frame(body):
    return struct.pack(">I", len(body)) + body


def unframe(data):
    """Split a byte stream into frames and decode each map with python-msgpack."""
    out, off = [], 0
    while off < len(data):
        (n,) = struct.unpack(">I", data[off:off + 4])
        assert off + 4 + n <= len(data), "frame runs past the end of the stream"
        out.append(msgpack.unpackb(data[off + 4:off + 4 + n], raw=False,
                                   strict_map_key=True))
        off += 4 + n
    return out


def without_none(obj):
    """What the C packer sends back: nullable fields holding nil are omitted."""
    if isinstance(obj, dict):
        return {k: without_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [without_none(v) for v in obj]
    return obj


def recode(data, *extra):
    return subprocess.run([TOOL, "recode", *extra], input=data, capture_output=True,
                          timeout=60)


def job(**over):
    msg = {
        "v": 1, "t": "job", "db": "sqlite:////tmp/a/" + TEXT + ".db", "uuid": UUID,
        "att": U64_MAX, "run": "demo-1", "phase": "p1-strings",
        "p": {"name": "", "desc": "line\nline\t" + TEXT, "cat": None, "cplx": "low",
              "paths": [], "ro": ["docs/a.md"],
              "dl": ["src/m%04d.py" % i for i in range(4096)],
              "check": "python3 -c 'import x'", "maxa": 0},
        "n": I64_MAX, "deadline": 0, "cap": TOKENS_MAX,
        "llm": {"prov": "openai", "url": "http://127.0.0.1:1", "model": TEXT, "tmo": 0,
                "retries": I64_MAX},
        "est": {"ver": U64_MAX, "oh": [["implementation", "low", I64_MIN],
                                       ["implementation", "high", I64_MAX]]},
        "ws": "/tmp/ws", "dry": True,
    }
    msg.update(over)
    return msg


def usage_event(**body):
    b = {"prov": "anthropic", "model": "claude-sonnet-4-5", "role": "builder", "in": None,
         "out": TOKENS_MAX, "total": 2 * TOKENS_MAX, "lat": 0, "http": 999, "err": "timeout", "try": 1}
    b.update(body)
    return {"v": 1, "t": "event", "uuid": UUID, "att": 0, "seq": I64_MAX,
            "kind": "llm_usage", "body": b}


MESSAGES = {
    "hello": {"v": 1, "t": "hello", "pid": 2**31 - 1, "sw": "0.1.0 " + TEXT},
    "job": job(),
    "heartbeat_idle": {"v": 1, "t": "heartbeat", "uuid": "", "att": 0},
    "event_llm_usage": usage_event(),
    "event_token_estimation_v2": {
        "v": 1, "t": "event", "uuid": UUID, "att": 17, "seq": 1,
        "kind": "token_estimation_v2",
        "body": {"cat": "", "cplx": "", "ndl": 0, "dl": "[]", "pred": TOKENS_MAX,
                 "actual": 0, "budget": 1, "maxt": None, "success": False,
                 "truncated": True, "stop": "max_tokens", "model": TEXT, "ver": 0,
                 "doc": 15, "ctxq": None, "sot": "BUILD_HISTORY.md", "sotn": 0}},
    "event_log": {"v": 1, "t": "event", "uuid": UUID, "att": 1, "seq": 2, "kind": "log",
                  "body": {"lvl": "warn", "msg": TEXT * 100}},
    "event_llm_request": {"v": 1, "t": "event", "uuid": UUID, "att": 3, "seq": 4,
                          "kind": "llm_request",
                          "body": {"prov": "openai", "model": TEXT, "role": "builder",
                                   "maxt": TOKENS_MAX, "try": 1}},
    "ack": {"v": 1, "t": "ack", "att": U64_MAX, "seq": 0},
    "result": {"v": 1, "t": "result", "uuid": UUID, "att": 17, "seq": 3,
               "outcome": "failed", "why": "check_failed", "msg": None, "fp": TEXT,
               "zy": None, "llm": True, "dur": I64_MAX},
    "cancel": {"v": 1, "t": "cancel", "att": 0},
    "shutdown": {"v": 1, "t": "shutdown"},
    "request": {"v": 1, "t": "request", "id": U64_MAX, "cmd": "status", "args": [],
                "uuid": None, "db": "sqlite:////x.db", "dev": "65024:10953381"},
    "reply": {"v": 1, "t": "reply", "id": 0, "ok": False, "code": "db_mismatch",
              "msg": TEXT, "db": "sqlite:////x.db", "uuid": UUID, "dev": "65024:10953381",
              "body": '{"a": [1, 2]}', "more": True},
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_python_packed_frame_decodes_in_c_and_c_packed_frame_decodes_in_python(name):
    msg = MESSAGES[name]
    res = recode(frame(msg))
    assert res.returncode == 0, res.stderr.decode()
    assert unframe(res.stdout) == [without_none(msg)]


def test_stream_of_every_message_type_recodes_in_order():
    data = b"".join(frame(MESSAGES[n]) for n in sorted(MESSAGES))
    res = recode(data)
    assert res.returncode == 0, res.stderr.decode()
    assert unframe(res.stdout) == [without_none(MESSAGES[n]) for n in sorted(MESSAGES)]


@pytest.mark.parametrize("variant", ["min", "typical", "max"])
def test_c_samples_decode_in_python_and_come_back_unchanged(variant):
    res = subprocess.run([TOOL, "samples", variant], capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    msgs = unframe(res.stdout)
    assert [m["t"] for m in msgs] == ["hello", "job", "heartbeat", "event", "event",
                                      "event", "ack", "result", "cancel", "shutdown",
                                      "request", "reply", "event"]
    assert all(m["v"] == 1 for m in msgs)
    if variant == "max":
        assert msgs[1]["att"] == U64_MAX and msgs[1]["deadline"] == I64_MAX
        assert len(msgs[1]["p"]["dl"]) == 4096
        assert msgs[1]["est"]["oh"][0][2] == I64_MIN
        assert msgs[1]["run"] == TEXT
    if variant == "min":
        assert "err" not in msgs[3]["body"] and "in" not in msgs[3]["body"]
    back = recode(b"".join(frame(m) for m in msgs))
    assert back.returncode == 0, back.stderr.decode()
    assert unframe(back.stdout) == msgs


def test_unknown_keys_from_a_later_version_are_ignored():
    msg = job(future={"nested": [1, [2, {"x": None}]]})
    msg["p"] = dict(msg["p"], temperature=0.5)
    res = recode(frame(msg))
    assert res.returncode == 0, res.stderr.decode()
    want = without_none(job())
    assert unframe(res.stdout) == [want]


def dl_with_int():
    msg = job()
    msg["p"] = dict(msg["p"], dl=["a.py", "b.py", "c.py", 5])
    return msg


def event_without_seq():
    msg = dict(MESSAGES["event_log"])
    del msg["seq"]
    return msg


MALFORMED = [
    ("unknown_type", frame({"v": 1, "t": "foo"}), 't: unknown message type "foo"'),
    ("wrong_version", frame({"v": 2, "t": "ack", "att": 1, "seq": 1}),
     "v: protocol version 2, expected 1"),
    ("missing_version", frame({"t": "ack", "att": 1, "seq": 1}),
     'frame: missing field "v"'),
    ("missing_field", frame(event_without_seq()), 'event: missing field "seq"'),
    ("mistyped_list_item", frame(dl_with_int()),
     "job.p.dl[3]: expected string, got integer"),
    ("int_for_bool", frame(job(dry=1)), "job.dry: expected boolean, got integer"),
    ("bytes_for_string", frame({"v": 1, "t": "hello", "pid": 1, "sw": b"0.1"}),
     "hello.sw: expected string, got binary"),
    ("float_for_int", frame({"v": 1, "t": "hello", "pid": 1.0, "sw": "x"}),
     "hello.pid: expected integer, got float"),
    ("negative_unsigned", frame({"v": 1, "t": "cancel", "att": -5}),
     "cancel.att: integer -5 out of range [0, 18446744073709551615]"),
    ("out_of_range", frame(usage_event(http=1000)),
     "event.body.http: integer 1000 out of range [0, 999]"),
    ("token_count_past_the_most", frame(usage_event(total=I64_MAX)),
     "event.body.total: integer 9223372036854775807 out of range [0, 2000000000]"),
    ("token_count_past_the_most_u64", frame(usage_event(out=2**64 - 1)),
     "event.body.out: integer 18446744073709551615 out of range [0, 1000000000]"),
    ("string_over_limit", frame(job(uuid="u" * 300)),
     "job.uuid: string of 300 bytes exceeds limit 256"),
    ("list_over_limit", frame({"v": 1, "t": "request", "id": 1, "cmd": "x",
                               "args": ["a"] * 4097}),
     "request.args: array of 4097 elements exceeds limit 4096"),
    ("too_deep", frame({"v": 1, "t": "ack", "att": 1, "seq": 1,
                        "x": [[[[[[0]]]]]]}),
     "frame.x[0][0][0][0][0]: nesting deeper than 6"),
    ("int_key", frame({"v": 1, "t": "ack", 7: 1}),
     "frame: map key must be a string, got integer"),
    ("unknown_kind", frame(dict(MESSAGES["event_log"], kind="metrics")),
     'event.kind: unknown event kind "metrics"'),
    ("huge_declared_array",
     raw_frame(b"\x83\xa1v\x01\xa1t\xa3ack\xa1x\xdd\xff\xff\xff\xff"),
     "frame.x: array declares 4294967295 elements but only 0 bytes remain"),
    ("huge_declared_map", raw_frame(b"\xdf\xff\xff\xff\xff"),
     "frame: map declares 4294967295 entries but only 0 bytes remain"),
    ("huge_declared_string",
     raw_frame(b"\x83\xa1v\x01\xa1t\xa3ack\xa1x\xdb\xff\xff\xff\xff"),
     "frame.x: string declares 4294967295 bytes but only 0 remain"),
    ("oversize_frame", struct.pack(">I", 16 << 20) + b"\x80" * 64,
     "frame: declared length 16777216 exceeds limit 4194304"),
]


@pytest.mark.parametrize("name,data,reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frame_from_python_is_refused_with_field_and_reason(name, data, reason):
    res = recode(frame(MESSAGES["ack"]) + data)
    assert res.returncode == 1, res
    assert res.stderr.decode().strip() == "proto-tool: " + reason
    assert res.stdout == b""


def test_frame_limit_is_configurable():
    data = frame(MESSAGES["job"])
    res = recode(data, "--max", str(len(data) - 5))
    assert res.returncode == 1
    assert "exceeds limit %d" % (len(data) - 5) in res.stderr.decode()
    assert recode(data, "--max", str(len(data) - 4)).returncode == 0


def limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))


@pytest.mark.skipif(os.environ.get("AUTOPACK_SANITIZE") == "1",
                    reason="sanitizers reserve more address space than the limit")
def test_huge_declarations_are_refused_within_a_small_address_space():
    for body in (b"\xdf\xff\xff\xff\xff", b"\x81\xa1x\xdd\xff\xff\xff\xff",
                 b"\x81\xa1x\xdb\xff\xff\xff\xff", b"\x81\xa1x\xc6\xff\xff\xff\xff"):
        res = subprocess.run([TOOL, "recode"], input=raw_frame(body), capture_output=True,
                             timeout=60, preexec_fn=limit_address_space)
        assert res.returncode == 1, res
        assert b"declares" in res.stderr


def test_unfinished_frame_at_end_of_input_is_reported():
    data = frame(MESSAGES["ack"])
    res = recode(data[:-1])
    assert res.returncode == 1
    assert "unfinished frame" in res.stderr.decode()


def test_proto_tool_help_and_usage_errors():
    res = subprocess.run([TOOL, "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "recode" in res.stdout
    res = subprocess.run([TOOL, "bogus"], capture_output=True, text=True)
    assert res.returncode == 2 and "usage:" in res.stderr
