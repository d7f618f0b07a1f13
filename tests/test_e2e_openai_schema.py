"""The real worker against responses OpenAI's own schema allows: the stand-in answers each
call with a random CreateChatCompletionResponse (random ids, choices or none, null or
random content, any finish_reason, usage or none, logprobs, tool calls, annotations...),
the content sometimes a valid files document; every request the worker sends is checked
against CreateChatCompletionRequest. Whatever comes back, the attempt ends cleanly and what
is recorded is exactly what the response said (a token count above a billion is taken as
unreported, docs/worker.md)."""
import pytest

from supervisor_helpers import Standin, Supervisor, new_db, sql

KEY = "sk-test-openai-schema"


@pytest.mark.parametrize("seed", [11, 29])
def test_random_schema_valid_responses_through_the_real_worker(tmp, seed):
    url = new_db(tmp, runs=1, phases=40)
    llm = Standin(tmp, script={"default": {"mode": "openapi_random", "seed": seed}})
    try:
        sup = Supervisor(tmp, url, "--workers", 1, "--exit-when-drained",
                         "--llm-provider", "openai", "--llm-base-url", llm.url + "/v1",
                         "--model", "gpt-test", "--llm-retries", 0,
                         "--max-attempts-per-phase", 1, "--max-fingerprint-repeats", 1000,
                         env={"OPENAI_API_KEY": KEY})
        assert sup.wait(timeout=300) == 0, sup.stderr()
        log = llm.requests()
    finally:
        llm.stop()
    # The worker's every request was one the API accepts.
    assert [e for e in log if e["status"] != 200] == []
    assert all(e["key_ok"] and not e["key_elsewhere"] for e in log)
    # Every attempt ended as a success or a named failure; none crashed or hung.
    outcomes = sql(url, "SELECT outcome, failure_reason FROM attempts ORDER BY attempt_id")
    assert len(outcomes) == 40
    assert {o for o, _ in outcomes} <= {"success", "failed"}, outcomes
    assert {r for o, r in outcomes if o == "failed"} <= \
        {"PROVIDER_ERROR", "PARSE_FAILED", "OUTPUT_TRUNCATED"}, outcomes
    assert sql(url, "SELECT count(*) FROM attempts WHERE ended_at IS NULL") == [(0,)]
    # One usage row per response, in order, with the response's own token counts.
    usage = sql(url, "SELECT http_status, prompt_tokens, completion_tokens, error_class"
                " FROM llm_usage_events ORDER BY id")
    assert len(usage) == len(log)
    v2 = sql(url, "SELECT actual_output_tokens, truncated, stop_reason"
             " FROM token_estimation_v2_events ORDER BY event_id")
    want_v2 = []

    def believed(u, key):
        """A count as the worker records it: one above a billion is taken as unreported."""
        n = u[key] if u else None
        return n if n is not None and 0 <= n <= 10 ** 9 else None

    for entry, (status, prompt, completion, error_class) in zip(log, usage):
        body = entry["response"]
        u = body.get("usage")
        choices = body["choices"]
        assert status == 200
        # The counts the answer reports, also when it has no choice to use.
        assert prompt == believed(u, "prompt_tokens"), (body, prompt)
        assert completion == believed(u, "completion_tokens"), (body, completion)
        if not choices:
            assert error_class == "malformed_response", (body, error_class)
            continue
        assert error_class is None, (body, error_class)
        if believed(u, "completion_tokens") is not None:
            finish = choices[0]["finish_reason"]
            want_v2.append((u["completion_tokens"], int(finish == "length"), finish))
    assert v2 == want_v2
    # A phase succeeded exactly when its last answer's first choice held the files.
    by_phase = {}
    for entry in log:
        by_phase.setdefault(entry["deliverables"][0] if entry.get("deliverables") else None,
                            []).append(entry["response"])
    succeeded = sql(url, "SELECT count(*) FROM attempts WHERE outcome = 'success'")[0][0]
    files = 0
    for responses in by_phase.values():
        last = responses[-1]["choices"]
        content = last[0]["message"].get("content") if last else None
        files += isinstance(content, str) and content.lstrip().startswith('{\n "files"')
    assert succeeded == files
    assert 0 < succeeded < 40
