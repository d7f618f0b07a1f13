/* The LLM client against the stand-in: both providers, retries, errors, truncation; its
 * request head against the one libcurl writes itself. */
#include "common/estimate/estimator.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "common/utf8.h"
#include "tests/unit/mutate.h"
#include "tests/unit/test.h"
#include "tests/unit/worker_standin.h"
#include "worker/jspan.h"
#include "worker/curl_lib.h"
#include "worker/llm.h"

#include <dlfcn.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY "sk-test-7f3a9c-SECRET"

/* What the hooks saw. */
struct seen {
	int announced; /* tries announced by on_send */
	bool refuse;   /* on_send refuses */
	int tries;
	struct llm_try t[8];
	char errors[8][600];
	int64_t sleeps[8];
	int nsleeps;
	char classes[8][32];
};

/* Each try is announced once, before it is reported. */
static int on_send(void *ctx, int try_number)
{
	struct seen *s = ctx;

	CHECK_EQ_INT(try_number, s->tries + 1);
	CHECK_EQ_INT(s->announced, s->tries);
	s->announced++;
	return s->refuse ? -1 : 0;
}

static void on_try(void *ctx, const struct llm_try *t)
{
	struct seen *s = ctx;

	if (s->tries < 8) {
		s->t[s->tries] = *t;
		snprintf(s->errors[s->tries], sizeof s->errors[0], "%s", t->error ? t->error : "");
		snprintf(s->classes[s->tries], sizeof s->classes[0], "%s",
		    t->error_class ? t->error_class : "");
		s->t[s->tries].error = s->errors[s->tries];
		s->t[s->tries].error_class = s->classes[s->tries];
	}
	s->tries++;
}

static void fake_sleep(void *ctx, int64_t ms)
{
	struct seen *s = ctx;

	if (s->nsleeps < 8)
		s->sleeps[s->nsleeps++] = ms;
}

static double full_jitter(void *ctx)
{
	(void)ctx;
	return 0.999;
}

/* One call with the test hooks. */
static int call(enum llm_provider p, const char *base, int max_retries, int64_t timeout_ms,
    int max_tokens, struct seen *s, struct llm_response *r)
{
	struct llm_config cfg = { .provider = p,
		.base_url = base,
		.model = "test-model",
		.api_key = KEY,
		.timeout_ms = timeout_ms,
		.max_retries = max_retries,
		.temperature = 0.2 };
	struct llm_request req = { "You are a builder.",
		"## Deliverables\n- utils/a.py\n\nWrite it.", max_tokens };
	struct llm_hooks h = { s, on_send, on_try, NULL, fake_sleep, full_jitter };
	bool refuse = s->refuse;

	memset(s, 0, sizeof *s);
	s->refuse = refuse;
	return llm_call(&cfg, &req, &h, r);
}

/* Integer member of log entry i. */
static long long log_int(json_t *log, size_t i, const char *a, const char *b)
{
	json_t *e = json_array_get(log, i), *v = json_object_get(e, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

TEST(worker_llm_anthropic_normal_call_reads_text_usage_and_stop_reason)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;
	json_t *log;

	standin_start(&sd, "[]", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 2, 10000, 4096, &s, &r), 0);
	CHECK(r.ok);
	CHECK(strstr(r.text, "\"utils/a.py\"") != NULL);
	CHECK_EQ_STR(r.stop_reason, "end_turn");
	CHECK(!r.truncated);
	CHECK_EQ_INT(s.tries, 1);
	CHECK_EQ_INT(s.t[0].http_status, 200);
	CHECK_EQ_STR(s.classes[0], "");
	log = standin_log();
	CHECK_EQ_INT(json_array_size(log), 1);
	CHECK_EQ_INT(r.prompt_tokens, log_int(log, 0, "usage", "prompt_tokens"));
	CHECK_EQ_INT(r.completion_tokens, log_int(log, 0, "usage", "completion_tokens"));
	CHECK_EQ_INT(s.t[0].completion_tokens, r.completion_tokens);
	CHECK_EQ_INT(log_int(log, 0, "max_tokens", NULL), 4096);
	CHECK(json_is_true(json_object_get(json_array_get(log, 0), "key_ok")));
	CHECK_EQ_STR(
	    json_string_value(json_object_get(json_array_get(log, 0), "anthropic_version")),
	    "2023-06-01");
	json_decref(log);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_openai_normal_call_reads_choices_and_usage)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;
	json_t *log;

	standin_start(&sd, "[]", KEY);
	CHECK_EQ_INT(call(LLM_OPENAI, sd.base_v1, 2, 10000, 2048, &s, &r), 0);
	CHECK(strstr(r.text, "utils/a.py") != NULL);
	CHECK_EQ_STR(r.stop_reason, "stop");
	log = standin_log();
	CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(log, 0), "path")),
	    "/v1/chat/completions");
	CHECK(json_is_true(json_object_get(json_array_get(log, 0), "key_ok")));
	CHECK_EQ_INT(r.completion_tokens, log_int(log, 0, "usage", "completion_tokens"));
	CHECK_EQ_INT(r.total_tokens, r.prompt_tokens + r.completion_tokens);
	json_decref(log);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_429_then_success_honours_retry_after)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(&sd, "[{\"mode\":\"status\",\"status\":429,\"retry_after\":\"7\"}]", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 3, 10000, 4096, &s, &r), 0);
	CHECK_EQ_INT(s.tries, 2);
	CHECK_EQ_INT(s.t[0].http_status, 429);
	CHECK_EQ_STR(s.classes[0], LLM_E_RATE_LIMITED);
	CHECK_EQ_INT(s.t[0].completion_tokens, -1);
	CHECK_EQ_INT(s.t[1].http_status, 200);
	CHECK_EQ_INT(s.nsleeps, 1);
	CHECK_EQ_INT(s.sleeps[0], 7000);
	CHECK_EQ_INT(r.tries, 2);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_a_retry_after_of_an_interim_answer_is_not_the_final_ones)
{
	/* A 103 Early Hints asking an hour's wait, then a 429 asking none: the wait is the
	 * backoff's (at most 500 ms before the second try), not the interim answer's
	 * (once the cap, 60 s). */
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(&sd,
	    "[{\"mode\":\"status\",\"status\":429,\"interim\":{\"Retry-After\":\"3600\"}}]", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 3, 10000, 4096, &s, &r), 0);
	CHECK_EQ_INT(s.tries, 2);
	CHECK_EQ_INT(s.t[0].http_status, 429);
	CHECK_EQ_INT(s.nsleeps, 1);
	CHECK(s.sleeps[0] >= 250 && s.sleeps[0] <= 500);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_a_redirect_target_is_cut_between_characters)
{
	/* A Location of 290 ASCII bytes and then euro signs: the message quotes its first 300
	 * bytes or fewer, ending before a character the cut would split (a reader of UTF-8
	 * drops a text that ends in part of one). */
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;
	struct strbuf script = { 0 }, loc = { 0 };
	const char *at, *end;

	strbuf_puts(&loc, "http://127.0.0.1/");
	while (loc.len < 290)
		strbuf_puts(&loc, "a");
	for (int i = 0; i < 10; i++)
		strbuf_puts(&loc, "\xe2\x82\xac");
	strbuf_printf(&script, "[{\"mode\":\"status\",\"status\":302,\"location\":\"%s\"}]", loc.s);
	standin_start(&sd, script.s, KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 0, 10000, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_CLIENT);
	at = strstr(r.error, "redirected to ");
	CHECK(at != NULL);
	at += strlen("redirected to ");
	end = strstr(at, ", which is not followed");
	CHECK(end != NULL);
	CHECK_EQ_INT(utf8_check(r.error, strlen(r.error)), strlen(r.error));
	CHECK((size_t)(end - at) <= 300 && (size_t)(end - at) >= 297);
	CHECK_EQ_INT(memcmp(at, loc.s, (size_t)(end - at)), 0);
	llm_response_free(&r);
	standin_stop(&sd);
	free(script.s);
	free(loc.s);
}

TEST(worker_llm_500_exhausts_bounded_retries_with_growing_backoff)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(&sd, "{\"default\":{\"mode\":\"status\",\"status\":500}}", KEY);
	CHECK_EQ_INT(call(LLM_OPENAI, sd.base_v1, 2, 10000, 4096, &s, &r), -1);
	CHECK(!r.ok);
	CHECK_EQ_INT(s.tries, 3);
	CHECK_EQ_STR(r.error_class, LLM_E_SERVER);
	CHECK_EQ_INT(r.http_status, 500);
	CHECK_EQ_INT(s.announced, 3);
	CHECK(strstr(r.error, "HTTP 500") != NULL);
	CHECK(strstr(r.error, "scripted 500") != NULL);
	CHECK_EQ_INT(s.nsleeps, 2);
	CHECK(s.sleeps[0] >= 250 && s.sleeps[0] <= 500);
	CHECK(s.sleeps[1] > s.sleeps[0]);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_timeout_is_classed_and_retried)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	/* The stand-in answers only after 30 s: a client that did not give up at its timeout
	 * would get that answer (a success) instead of two timed-out tries. */
	standin_start(&sd, "{\"default\":{\"mode\":\"sleep\",\"seconds\":30}}", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 1, 400, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_TIMEOUT);
	CHECK_EQ_INT(s.tries, 2);
	CHECK_EQ_INT(s.t[0].http_status, 0);
	CHECK_EQ_INT(s.t[1].http_status, 0);
	CHECK(r.text == NULL);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_malformed_json_is_not_retried)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(&sd, "{\"default\":{\"mode\":\"malformed\"}}", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 3, 10000, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_MALFORMED);
	CHECK_EQ_INT(s.tries, 1);
	CHECK(r.text == NULL);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_huge_body_is_refused_at_the_cap)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(&sd, "{\"default\":{\"mode\":\"huge\",\"size_mib\":9}}", KEY);
	CHECK_EQ_INT(call(LLM_OPENAI, sd.base_v1, 3, 20000, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_TOO_LARGE);
	CHECK_EQ_INT(s.tries, 1);
	CHECK(strstr(r.error, "8388608") != NULL);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_connection_refused_is_a_network_error)
{
	struct seen s = { 0 };
	struct llm_response r;
	char *base = xasprintf("http://127.0.0.1:%d", standin_dead_port());

	CHECK_EQ_INT(call(LLM_ANTHROPIC, base, 1, 5000, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_NETWORK);
	CHECK_EQ_INT(s.tries, 2);
	CHECK_EQ_INT(s.nsleeps, 1);
	llm_response_free(&r);
	free(base);
}

TEST(worker_llm_truncation_is_read_from_both_providers)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(
	    &sd, "[{\"mode\":\"truncated\"},{\"mode\":\"normal\"},{\"mode\":\"truncated\"}]", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 0, 10000, 16384, &s, &r), 0);
	CHECK(r.truncated);
	CHECK_EQ_STR(r.stop_reason, "max_tokens");
	CHECK_EQ_INT(r.completion_tokens, 16384);
	llm_response_free(&r);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 0, 10000, 16384, &s, &r), 0);
	CHECK(!r.truncated);
	CHECK_EQ_STR(r.stop_reason, "end_turn");
	llm_response_free(&r);
	/* OpenAI reports the same as finish_reason "length". */
	CHECK_EQ_INT(call(LLM_OPENAI, sd.base_v1, 0, 10000, 60000, &s, &r), 0);
	CHECK(r.truncated);
	CHECK_EQ_STR(r.stop_reason, "length");
	CHECK_EQ_INT(r.completion_tokens, 60000);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_escalation_is_a_quarter_more_capped_at_64000)
{
	struct est_coefs c;

	est_coefs_default(&c);
	CHECK_EQ_INT(est_escalate(&c, 16384, 0), 20480);
	CHECK_EQ_INT(est_escalate(&c, 4096, 0), 5120);
	CHECK_EQ_INT(est_escalate(&c, 60000, 0), 64000);
	CHECK_EQ_INT(est_escalate(&c, 64000, 0), 64000);
	CHECK_EQ_INT(est_escalate(&c, 16384, 18000), 18000);
}

TEST(worker_llm_key_never_appears_in_any_output)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;
	json_t *log;
	int i;

	standin_start(&sd, "{\"default\":{\"mode\":\"echo_key\"}}", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 2, 10000, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_CLIENT);
	CHECK_EQ_INT(s.tries, 1); /* 401 is not retried */
	CHECK(strstr(r.error, "invalid key") != NULL);
	CHECK(strstr(r.error, "[redacted]") != NULL);
	CHECK(strstr(r.error, KEY) == NULL);
	for (i = 0; i < s.tries; i++)
		CHECK(strstr(s.errors[i], KEY) == NULL);
	llm_response_free(&r);
	CHECK_EQ_INT(call(LLM_OPENAI, sd.base_v1, 0, 10000, 4096, &s, &r), -1);
	CHECK(strstr(r.error, KEY) == NULL);
	llm_response_free(&r);
	/* Both requests carried the key in their own header and nowhere else. */
	log = standin_log();
	CHECK_EQ_INT(json_array_size(log), 2);
	for (i = 0; i < 2; i++) {
		json_t *e = json_array_get(log, (size_t)i);
		CHECK(json_is_true(json_object_get(e, "key_present")));
		CHECK(json_is_false(json_object_get(e, "key_elsewhere")));
	}
	json_decref(log);
	standin_stop(&sd);
}

TEST(worker_llm_a_key_in_a_content_type_is_masked_before_the_cut)
{
	/* A 200 that is no JSON, its Content-Type echoing the key (a gateway echoing the
	 * request's headers) where the 64 bytes shown end inside it: the value was cut first,
	 * and masking found no whole key in what was left, so its first 11 bytes were shown.
	 * Now the key is masked in the whole value, then the value cut. */
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(&sd,
	    "{\"default\":{\"mode\":\"echo_key\",\"status\":200,\"content_type\":"
	    "\"text/html; p=........................................{key}\"}}",
	    KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 0, 10000, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_MALFORMED);
	CHECK(
	    strstr(r.error,
	        "(Content-Type text/html; p=........................................[re") != NULL);
	CHECK(strstr(r.error, "sk-test") == NULL);
	CHECK(strstr(s.errors[0], "sk-test") == NULL);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_part_of_a_key_before_the_byte_a_parse_stops_at_is_not_quoted)
{
	/* A 200 holding the key's first 14 bytes and then a control character in a string:
	 * jansson's message quotes the token where it stopped ("near '\"sk-test-7f3a9c'"),
	 * no whole key that masking finds. The context is left out when it shares 4 bytes in
	 * a row with the key; the reason stays. */
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(
	    &sd, "{\"default\":{\"mode\":\"echo_key\",\"status\":200,\"prefix\":14}}", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 0, 10000, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_MALFORMED);
	CHECK(strstr(r.error, "control character 0x1") != NULL);
	CHECK(strstr(r.error, "7f3a") == NULL);
	CHECK(strstr(s.errors[0], "7f3a") == NULL);
	llm_response_free(&r);
	standin_stop(&sd);
}

/* One call as `key` with the test hooks (no retries). */
static int call_as(enum llm_provider p, const char *base, const char *key, struct llm_response *r)
{
	struct seen s = { 0 };
	struct llm_config cfg = { .provider = p,
		.base_url = base,
		.model = "test-model",
		.api_key = key,
		.timeout_ms = 10000,
		.temperature = 0.2 };
	struct llm_request req = { NULL, "## Deliverables\n- utils/a.py\n\nWrite it.", 4096 };
	struct llm_hooks h = { &s, on_send, on_try, NULL, fake_sleep, full_jitter };

	return llm_call(&cfg, &req, &h, r);
}

TEST(worker_llm_each_call_goes_where_its_own_configuration_says)
{
	/* The URL and headers are kept from call to call: a call naming another key,
	 * provider or base URL than the one before must not go out with the former. */
	static const char other[] = "sk-another-key-0451";
	struct standin sd;
	struct llm_response r;
	char *dead = xasprintf("http://127.0.0.1:%d", standin_dead_port());
	json_t *log;

	standin_start(&sd, "[]", KEY);
	{
		/* Each call in turn: its provider, base URL and key, and the HTTP status it
		 * gets (0: no answer, the base URL is dead). */
		const struct {
			enum llm_provider p;
			const char *base, *key;
			int status;
		} calls[] = {
			{ LLM_ANTHROPIC, sd.base, KEY, 200 },
			{ LLM_ANTHROPIC, sd.base, other, 401 },
			{ LLM_ANTHROPIC, sd.base, KEY, 200 },
			{ LLM_ANTHROPIC, dead, KEY, 0 },
			{ LLM_OPENAI, sd.base_v1, KEY, 200 },
			{ LLM_OPENAI, sd.base_v1, other, 401 },
			{ LLM_ANTHROPIC, sd.base, KEY, 200 },
		};

		for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
			int rc = call_as(calls[i].p, calls[i].base, calls[i].key, &r);

			CHECK_EQ_INT(rc, calls[i].status == 200 ? 0 : -1);
			if (calls[i].status == 401)
				CHECK_EQ_INT(r.http_status, 401);
			if (calls[i].status == 0) {
				CHECK_EQ_STR(r.error_class, LLM_E_NETWORK);
				CHECK(strstr(r.error, dead) != NULL);
			}
			llm_response_free(&r);
		}
	}
	log = standin_log();
	CHECK_EQ_INT(json_array_size(log), 6);
	{
		static const char *const path[6] = { "/v1/messages", "/v1/messages", "/v1/messages",
			"/v1/chat/completions", "/v1/chat/completions", "/v1/messages" };
		static const bool ok[6] = { true, false, true, true, false, true };

		for (size_t i = 0; i < 6; i++) {
			json_t *e = json_array_get(log, i);

			CHECK_EQ_STR(json_string_value(json_object_get(e, "path")), path[i]);
			CHECK(json_is_true(json_object_get(e, "key_present")));
			CHECK_EQ_INT(json_is_true(json_object_get(e, "key_ok")), ok[i]);
			CHECK(json_is_false(json_object_get(e, "key_elsewhere")));
		}
	}
	json_decref(log);
	standin_stop(&sd);
	free(dead);
}

TEST(worker_llm_wrong_key_is_a_client_error)
{
	struct standin sd;
	struct seen s = { 0 };
	struct llm_response r;

	standin_start(&sd, "[]", "sk-some-other-key");
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 2, 10000, 4096, &s, &r), -1);
	CHECK_EQ_STR(r.error_class, LLM_E_CLIENT);
	CHECK_EQ_INT(r.http_status, 401);
	CHECK(strstr(r.error, "invalid or missing API key") != NULL);
	llm_response_free(&r);
	standin_stop(&sd);
}

TEST(worker_llm_backoff_and_retry_after_parsing)
{
	CHECK_EQ_INT(llm_backoff_ms(2, 0.0, -1), 250);
	CHECK_EQ_INT(llm_backoff_ms(3, 0.0, -1), 500);
	CHECK_EQ_INT(llm_backoff_ms(30, 0.0, -1), LLM_BACKOFF_MAX_MS / 2);
	CHECK_EQ_INT(llm_backoff_ms(2, 0.0, 3000), 3000);
	CHECK_EQ_INT(llm_backoff_ms(2, 0.0, 999999), LLM_RETRY_AFTER_MAX_MS);
	CHECK_EQ_INT(llm_parse_retry_after(" 12 "), 12000);
	CHECK_EQ_INT(llm_parse_retry_after("soon"), -1);
	/* A wait of days, or of more seconds than 64 bits hold, is a wait as long as any
	 * (it was taken as unreadable: the next try came after the short backoff). */
	CHECK_EQ_INT(llm_parse_retry_after("100000"), 86400000);
	CHECK_EQ_INT(llm_parse_retry_after("99999999999999999999999"), 86400000);
	CHECK_EQ_INT(
	    llm_backoff_ms(2, 0.0, llm_parse_retry_after("100000")), LLM_RETRY_AFTER_MAX_MS);
	CHECK_EQ_INT(llm_parse_retry_after("12x"), -1);
	CHECK_EQ_INT(llm_parse_retry_after("-5"), -1);
	CHECK_EQ_INT(llm_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
}

/* A provider's error message cut to its buffer is cut between characters: a cut inside
 * one left a byte that is no UTF-8, shown as U+FFFD at the end of the attempt's message. */
TEST(worker_llm_error_text_is_cut_between_characters)
{
	static const char body[] = "{\"error\":{\"message\":\"\u00e9\u00e9\u00e9\u00e9\u00e9\"}}";
	static const char raw[] = "<html>\xc3\xa9\xc3\xa9\xc3\xa9</html>";
	char out[10];

	llm_error_text(body, strlen(body), NULL, out, 6);
	CHECK_EQ_STR(out, "\xc3\xa9\xc3\xa9");
	llm_error_text(body, strlen(body), NULL, out, sizeof out);
	CHECK_EQ_STR(out, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	llm_error_text(raw, strlen(raw), NULL, out, sizeof out);
	CHECK_EQ_STR(out, "<html>\xc3\xa9");
}

TEST(worker_llm_a_try_whose_announcement_is_refused_is_not_sent)
{
	struct standin sd;
	struct seen s = { .refuse = true };
	struct llm_response r;
	json_t *log;

	standin_start(&sd, "[]", KEY);
	CHECK_EQ_INT(call(LLM_ANTHROPIC, sd.base, 2, 10000, 4096, &s, &r), -1);
	CHECK_EQ_INT(s.announced, 1);
	CHECK_EQ_INT(s.tries, 0);
	CHECK(strstr(r.error, "not sent") != NULL);
	log = standin_log();
	CHECK_EQ_INT(json_array_size(log), 0);
	json_decref(log);
	llm_response_free(&r);
	standin_stop(&sd);
}

/* The body as jansson's compact dump writes the same object (invalid UTF-8 replaced by
 * '?' first), the reference the direct writer must match byte for byte. */
static char *body_by_jansson(const struct llm_config *cfg, const struct llm_request *req)
{
	json_t *root = json_object(), *msgs = json_array();
	const char *parts[2] = { req->system, req->prompt };
	json_t *str[2] = { NULL, NULL };
	char *out;

	for (int i = 0; i < 2; i++) {
		char *copy;

		if (parts[i] == NULL)
			continue;
		copy = xstrdup(parts[i]);
		for (size_t k = 0; copy[k] != '\0'; k++) {
			json_t *one;
			size_t n = 1;
			/* Replace a byte where no valid UTF-8 sequence starts, as the worker does. */
			for (n = 4; n >= 1; n--) {
				char save;
				if (strlen(copy + k) < n)
					continue;
				save = copy[k + n];
				copy[k + n] = '\0';
				one = json_string(copy + k);
				copy[k + n] = save;
				if (one != NULL) {
					json_decref(one);
					break;
				}
			}
			if (n == 0)
				copy[k] = '?';
			else
				k += n - 1;
		}
		str[i] = json_string(copy);
		free(copy);
	}
	json_object_set_new(root, "model", json_string(cfg->model));
	json_object_set_new(root, "max_tokens", json_integer(req->max_tokens));
	json_object_set_new(root, "temperature", json_real(cfg->temperature));
	if (cfg->provider == LLM_ANTHROPIC && str[0] != NULL)
		json_object_set_new(root, "system", str[0]);
	else if (str[0] != NULL)
		json_array_append_new(
		    msgs, json_pack("{s:s, s:o}", "role", "system", "content", str[0]));
	json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", "user", "content", str[1]));
	json_object_set_new(root, "messages", msgs);
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return out;
}

TEST(worker_llm_request_body_is_what_jansson_writes)
{
	static const char *const texts[] = {
		"plain text",
		"",
		"quote \" backslash \\ slash / tab \t newline \n return \r bs \b ff \f",
		"controls \x01\x1f\x1b and del \x7f",
		"UTF-8: caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80, line sep \xe2\x80\xa8",
		"invalid: \xff lone \x80 cut \xc3",
		"overlong \xc0\xaf, surrogate \xed\xa0\x80, too high \xf4\x90\x80\x80 end",
		"# Phase: p\n## Deliverables\n- out/a.py\n",
	};
	static const double temps[] = { 0.2, 0.0, 1.0, 0.7 };

	for (int p = 0; p < 2; p++)
		for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
			for (size_t j = 0; j < sizeof texts / sizeof texts[0]; j += 3) {
				struct llm_config cfg = { .provider = p == 0 ? LLM_ANTHROPIC :
					                                       LLM_OPENAI,
					.model = "claude-\"x\"",
					.temperature = temps[(i + j) % 4] };
				struct llm_request req = { j == 0 ? NULL : texts[j], texts[i],
					(int)(i * 1000 + j) };
				char *ours = llm_body_build(&cfg, &req);
				char *ref = body_by_jansson(&cfg, &req);

				CHECK_EQ_STR(ours, ref);
				free(ours);
				free(ref);
			}
}

TEST(worker_llm_request_body_escapes_each_byte_wherever_it_stands_in_a_run)
{
	/* Runs of plain bytes are looked at eight at a time: each byte value, and a
	 * two-byte character, at each place of runs of 1 to 24 bytes, is written as jansson
	 * writes it. */
	struct llm_config cfg = { .provider = LLM_ANTHROPIC, .model = "m", .temperature = 0.2 };
	char text[32];

	for (int v = 1; v <= 256; v++)
		for (size_t len = 1; len <= 24; len++)
			for (size_t k = 0; k + (v == 256) < len; k++) {
				struct llm_request req = { text, text, 16 };
				char *ours, *ref;

				memset(text, 'a', len);
				if (v == 256)
					memcpy(text + k, "\xc3\xa9", 2);
				else
					text[k] = (char)v;
				text[len] = '\0';
				ours = llm_body_build(&cfg, &req);
				ref = body_by_jansson(&cfg, &req);
				CHECK_EQ_STR(ours, ref);
				free(ours);
				free(ref);
			}
}

/* The answer as jansson reads it: the reference the in-place reader must agree with. */
static int parse_by_jansson(
    enum llm_provider p, const char *body, size_t len, struct llm_response *out)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr), *usage, *v;
	const char *keys[3] = { "input_tokens", "output_tokens", NULL };
	int64_t *dst[3] = { &out->prompt_tokens, &out->completion_tokens, &out->total_tokens };

	memset(out, 0, sizeof *out);
	out->prompt_tokens = out->completion_tokens = out->total_tokens = -1;
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return -1;
	}
	if (p == LLM_OPENAI) {
		keys[0] = "prompt_tokens";
		keys[1] = "completion_tokens";
		keys[2] = "total_tokens";
	}
	usage = json_object_get(root, "usage");
	for (int i = 0; i < 3 && json_is_object(usage); i++) {
		v = keys[i] != NULL ? json_object_get(usage, keys[i]) : NULL;
		if (json_is_integer(v) && json_integer_value(v) >= 0)
			*dst[i] = json_integer_value(v);
	}
	if (out->total_tokens < 0 && out->prompt_tokens >= 0 && out->completion_tokens >= 0)
		out->total_tokens = out->prompt_tokens + out->completion_tokens;
	if (p == LLM_ANTHROPIC) {
		json_t *content = json_object_get(root, "content"), *block;
		struct strbuf t = { 0 };
		size_t i;

		if (!json_is_array(content)) {
			json_decref(root);
			return -2;
		}
		json_array_foreach(content, i, block)
		{
			v = json_object_get(block, "text");
			if (json_is_string(v))
				strbuf_put(&t, json_string_value(v), json_string_length(v));
		}
		out->text = t.s != NULL ? t.s : xstrdup("");
		v = json_object_get(root, "stop_reason");
	} else {
		json_t *choices = json_object_get(root, "choices"), *msg, *content;

		if (!json_is_array(choices) || json_array_size(choices) == 0) {
			json_decref(root);
			return -2;
		}
		msg = json_object_get(json_array_get(choices, 0), "message");
		if (!json_is_object(msg)) {
			json_decref(root);
			return -2;
		}
		content = json_object_get(msg, "content");
		if (content != NULL && !json_is_null(content) && !json_is_string(content)) {
			json_decref(root);
			return -2;
		}
		out->text = json_is_string(content) ?
		    xstrndup(json_string_value(content), json_string_length(content)) :
		    xstrdup("");
		v = json_object_get(json_array_get(choices, 0), "finish_reason");
	}
	if (json_is_string(v))
		out->stop_reason = xstrdup(json_string_value(v));
	json_decref(root);
	return 0;
}

/* What an answer without text holds instead, for its PARSE_FAILED message. */
static char *no_text_of(enum llm_provider p, const char *body)
{
	struct llm_response r = { 0 };
	char err[256], *got;

	CHECK_EQ_INT(llm_body_parse(p, body, strlen(body), &r, err, sizeof err), 0);
	got = r.no_text != NULL ? xstrdup(r.no_text) : NULL;
	llm_response_free(&r);
	return got;
}

TEST(worker_llm_an_answer_without_text_says_what_it_holds_instead)
{
	char *s;

	s = no_text_of(LLM_ANTHROPIC,
	    "{\"content\":[{\"type\":\"tool_use\"},{\"type\":\"tool_use\"},{\"x\":1},"
	    "{\"type\":\"a\"},{\"type\":\"b\"},{\"type\":\"c\"}],\"stop_reason\":\"tool_use\"}");
	CHECK_EQ_STR(s,
	    "its content holds a tool_use block, a block without a type, a a block, "
	    "a b block and more and no text");
	free(s);
	s = no_text_of(LLM_ANTHROPIC, "{\"content\":[]}");
	CHECK_EQ_STR(s, "its content holds no block");
	free(s);
	/* Text present: nothing to say. */
	CHECK(no_text_of(LLM_ANTHROPIC,
	          "{\"content\":[{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"tool_use\"}]}") ==
	    NULL);
	s = no_text_of(
	    LLM_OPENAI, "{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"no\"}}]}");
	CHECK_EQ_STR(s, "the model refused: \"no\"");
	free(s);
	s = no_text_of(
	    LLM_OPENAI, "{\"choices\":[{\"message\":{\"content\":\"\",\"tool_calls\":[{}]}}]}");
	CHECK_EQ_STR(s, "its message holds 1 tool call and no text");
	free(s);
	CHECK(no_text_of(LLM_OPENAI, "{\"choices\":[{\"message\":{\"content\":null}}]}") == NULL);
}

/* A NUL in an answer is refused naming the byte and where it stands, never jansson's flag
 * (JSON_ALLOW_NUL) that would have taken it; other refusals keep jansson's words. */
TEST(worker_llm_an_answer_holding_a_nul_says_so_and_where)
{
	static const char body[] = "{\"content\":[{\"text\":\"nul \\u0000\"}]}";
	struct llm_response r = { 0 };
	char err[256];

	CHECK_EQ_INT(llm_body_parse(LLM_ANTHROPIC, body, sizeof body - 1, &r, err, sizeof err), -1);
	CHECK_EQ_STR(err,
	    "response is not a JSON object (35 bytes): the answer held a NUL byte (\\u0000) at "
	    "offset 25, which the worker refuses in an answer");
	CHECK(strstr(err, "JSON_ALLOW_NUL") == NULL);
	CHECK_EQ_INT(llm_body_parse(LLM_OPENAI, "{\"a\":1,}", 8, &r, err, sizeof err), -1);
	CHECK_EQ_STR(
	    err, "response is not a JSON object (8 bytes): string or '}' expected near '}'");
}

/* Compare the in-place reader with jansson on one body, given in a buffer of exactly its
 * length (no NUL after it: a read past the end is caught under the sanitizers). */
static void parse_agrees(enum llm_provider p, const char *text, size_t len)
{
	char *body = memcpy(xmalloc(len + (len == 0)), text, len);
	struct llm_response a = { 0 }, b = { 0 };
	char err[256];
	int ra = llm_body_parse(p, body, len, &a, err, sizeof err);
	int rb = parse_by_jansson(p, body, len, &b);

	/* -1: not JSON (or no object), -2: JSON without the answer's shape. */
	if (ra != 0)
		ra = strstr(err, "is not a JSON object") != NULL ? -1 : -2;
	if (ra != rb) {
		fprintf(stderr, "disagree (ours %d, jansson %d) on %zu bytes: %.*s\n", ra, rb, len,
		    (int)len, body);
		CHECK(false);
	}
	if (ra == 0) {
		CHECK_EQ_STR(a.text, b.text);
		CHECK(a.stop_reason == NULL ?
		        b.stop_reason == NULL :
		        b.stop_reason != NULL && strcmp(a.stop_reason, b.stop_reason) == 0);
		CHECK_EQ_INT(a.prompt_tokens, b.prompt_tokens);
		CHECK_EQ_INT(a.completion_tokens, b.completion_tokens);
		CHECK_EQ_INT(a.total_tokens, b.total_tokens);
	}
	llm_response_free(&a);
	llm_response_free(&b);
	free(body);
}

/* The answer is read in place (worker/jspan.h) exactly as jansson reads it: the same
 * documents accepted and refused, the same text, stop reason and usage, over hand-picked
 * edge cases and thousands of random mutations of both providers' answers. */
TEST(worker_llm_answer_is_read_as_jansson_reads_it)
{
	static const char *const seeds[] = {
		"{\"content\":[{\"type\":\"text\",\"text\":\"a\\nb \\\"q\\\" \\u00e9\\ud83d\\ude00 "
		"\\/\\\\\\b\\f\\r\\t\"},{\"type\":\"image\"},{\"text\":\"caf\xc3\xa9\"}],"
		"\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}",
		"{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"x\\u0041y\"},"
		"\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,"
		"\"completion_tokens\":7,\"total_tokens\":12}}",
		" {\"content\": [ ], \"usage\": {\"input_tokens\": 1.0, \"output_tokens\": -3, "
		"\"input_tokens\": 9}, \"stop_reason\": null} \n",
		"{\"choices\":[{\"message\":{\"content\":null}}],\"usage\":{\"prompt_tokens\":"
		"9223372036854775807,\"completion_tokens\":1e400}}",
		"{\"choices\":[],\"x\":[1,2.5e-3,-0,true,false,null,{\"a\":[[]]}]}",
		"{\"c\\u006fntent\":[{\"te\\u0078t\":\"escaped keys\"}],\"content\":[{\"text\":\"last\"}]}",
		"[{\"content\":[]}]",
		/* Values skipped on the way to a member end in runs of escaped backslashes. */
		"{\"x\":\"a\\\\\",\"content\":[{\"text\":\"q\\\\\\\"\\\\\"}],\"y\":\"\\\\\\\\\","
		"\"stop_reason\":\"s\\\"\"}",
		"{\"content\":[{\"text\":\"lone \\ud800 surrogate\"}]}",
		"{\"content\":[{\"text\":\"nul \\u0000\"}]}",
		"{\"content\":[{\"text\":\"bad \xff byte\"}]}",
		"{\"content\":[{\"text\":\"raw \x01 control\"}]}",
		"{\"usage\":{\"input_tokens\":99999999999999999999}}",
		"{\"content\":[],\"usage\":{\"input_tokens\":-9223372036854775809}}",
		"{\"content\":[],\"usage\":{\"input_tokens\":-9223372036854775808}}",
		"{\"content\":[],\"usage\":{\"input_tokens\":1e-400,\"x\":1E+2}}",
		"{\"content\":[]} x",
		"",
		"01",
		"{\"a\":01}",
		"{\"a\":1.}",
		"{\"a\":.5}",
		"{\"a\":-}",
		"{\"a\":tru}",
		"{\"a\" 1}",
		"{\"a\":1,}",
		"{,}",
		"{\"content\":[1,]}",
	};
	static const char alphabet[] = "{}[]\":,\\u0123456789abcdefnrtx-+.eE \n\x7f\xc3\xa9\xed";
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		for (int p = 0; p < 2; p++)
			parse_agrees(
			    p == 0 ? LLM_ANTHROPIC : LLM_OPENAI, seeds[i], strlen(seeds[i]));
	for (int round = 0; round < 20000; round++) {
		char buf[512];
		size_t n = test_mutate(buf, sizeof buf, seeds[round % 2], alphabet, &seed);

		parse_agrees(round % 4 < 2 ? LLM_ANTHROPIC : LLM_OPENAI, buf, n);
	}
}

/* Several members found in one pass give what a look-up of each gives: the last value of
 * a key named twice (here once through an escape), keys with escapes decoded, a key
 * that is not there left out of the result. */
TEST(worker_jspan_members_agree_with_one_lookup_each)
{
	static const char doc[] = "{\"a\":1,\"b\":[2,\"x\\\"y\"],\"\\u0061\":3,\"c\\\\d\":4,"
	                          "\"e\":\"5\"}";
	static const char *const keys[] = { "a", "b", "zz", "c\\d", "e" };
	struct jspan root, v[5], one;
	char err[128];
	unsigned got;
	int64_t n;

	CHECK_EQ_INT(jspan_parse(doc, strlen(doc), &root, err, sizeof err), 0);
	got = jspan_members(root, keys, 5, v);
	CHECK_EQ_INT((int)got, 1 | 2 | 8 | 16);
	for (int i = 0; i < 5; i++) {
		bool has = jspan_member(root, keys[i], &one);

		CHECK(has == ((got >> i) & 1));
		if (has)
			CHECK(one.p == v[i].p && one.end == v[i].end);
	}
	CHECK(jspan_int(v[0], &n) && n == 3);
	CHECK(jspan_int(v[3], &n) && n == 4);
	CHECK(jspan_is_array(v[1]));
	CHECK_EQ_INT((int)jspan_members(v[1], keys, 5, v), 0);
}

TEST(worker_llm_a_base_url_libcurl_refuses_fails_its_call_and_no_other)
{
	/* The target's URL is parsed once and kept; one that libcurl refuses is handed to it
	 * as text, and its call fails as libcurl says, while the calls before and after it,
	 * to a URL it takes, go where they say. */
	static const char *const bad[] = { "http://127.0.0.1:99999", "http://exa mple.com",
		"gopher://127.0.0.1:70" };
	static const char *const why[] = { "URL using bad/illegal format or missing URL",
		"URL using bad/illegal format or missing URL",
		"Protocol \"gopher\" not supported or disabled in libcurl" };
	char want[256];
	struct standin sd;
	struct llm_response r;
	json_t *log;

	standin_start(&sd, "[]", KEY);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ_INT(call_as(LLM_ANTHROPIC, sd.base, KEY, &r), 0);
		llm_response_free(&r);
		CHECK_EQ_INT(call_as(LLM_ANTHROPIC, bad[i], KEY, &r), -1);
		snprintf(want, sizeof want, "%s/v1/messages: %s", bad[i], why[i]);
		CHECK_EQ_STR(r.error_class, LLM_E_NETWORK);
		CHECK_EQ_STR(r.error, want);
		llm_response_free(&r);
	}
	CHECK_EQ_INT(call_as(LLM_ANTHROPIC, sd.base, KEY, &r), 0);
	llm_response_free(&r);
	log = standin_log();
	CHECK_EQ_INT(json_array_size(log), 4);
	json_decref(log);
	standin_stop(&sd);
}

/* An answer of the Messages API, and the same gzipped (gzip.compress(..., mtime=0)). */
static const char answer[] = "{\"content\":[{\"type\":\"text\",\"text\":\"gzipped answer\"}],"
                             "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":3,"
                             "\"output_tokens\":2}}";
static const char answer_gz[] =
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x4d\x8c\x4b\x0a\x42\x31\x10\x04\xaf\x22\xbd\xce"
    "\x4a\x77\xb9\x8a\x48\x08\xbe\xe1\xf1\x10\x66\x86\x4c\x07\x3f\x21\x77\x37\xe0\xc6\x55\x43"
    "\x51\xd5\x03\x77\x53\x8a\x12\xf9\x3a\xc0\xb7\x0b\x32\x28\x2f\x22\xfd\x26\x63\xff\x1c\xee"
    "\xb2\x9d\xaa\xc6\x53\x1a\xe6\x2d\x21\x68\x5e\x9a\xd4\x30\x5d\x82\xe8\x56\xd8\x9b\xae\xa4"
    "\x47\xdd\xd7\xc3\xc0\xa1\xde\x59\x68\x0f\xd1\x40\xbe\x24\x58\xe7\x3f\x39\xcf\xf9\x05\xbb"
    "\x2f\xb6\x04\x7b\x00\x00\x00";

/* A server of one request at a time on 127.0.0.1: each request's head (without its
 * body) kept in head[i]. A CONNECT is refused with 403; a request whose head accepts
 * gzip gets the gzipped answer, any other the answer as it is. */
struct raw {
	int fd, port;
};

static void raw_start(struct raw *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;

	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(r->fd >= 0);
	CHECK(bind(r->fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(listen(r->fd, 4) == 0);
	CHECK(getsockname(r->fd, (struct sockaddr *)&a, &len) == 0);
	r->port = ntohs(a.sin_port);
}

/* Serve one connection's one request in a child while `fn` runs here; returns the
 * request's head (free it). */
static char *raw_serve(struct raw *r, void (*fn)(void *), void *arg)
{
	int pipefd[2];
	pid_t pid;
	struct strbuf got = { 0 };
	char buf[4096];
	ssize_t n;
	int status;

	CHECK(pipe(pipefd) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct strbuf in = { 0 };
		char *end = NULL, *cl, head[512];
		size_t body = 0;
		int c;

		alarm(20); /* a request that never comes ends the child, and the test */
		c = accept(r->fd, NULL, NULL);
		close(pipefd[0]);
		if (c < 0)
			_exit(1);
		while (end == NULL || in.len < (size_t)(end + 4 - in.s) + body) {
			if ((n = read(c, buf, sizeof buf)) <= 0)
				_exit(1);
			strbuf_put(&in, buf, (size_t)n);
			if (end == NULL && (end = strstr(in.s, "\r\n\r\n")) != NULL) {
				*end = '\0';
				cl = strcasestr(in.s, "\r\nContent-Length:");
				body = cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
			}
		}
		if (write(pipefd[1], in.s, strlen(in.s)) < 0)
			_exit(1);
		if (strncmp(in.s, "CONNECT ", 8) == 0) {
			snprintf(head, sizeof head,
			    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
			if (write(c, head, strlen(head)) < 0)
				_exit(1);
		} else {
			bool gz = strcasestr(in.s, "\r\nAccept-Encoding:") != NULL &&
			    strstr(strcasestr(in.s, "\r\nAccept-Encoding:"), "gzip") != NULL;
			size_t blen = gz ? sizeof answer_gz - 1 : sizeof answer - 1;

			snprintf(head, sizeof head,
			    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: "
			    "%zu\r\nConnection: close\r\n\r\n",
			    gz ? "Content-Encoding: gzip\r\n" : "", blen);
			if (write(c, head, strlen(head)) < 0 ||
			    write(c, gz ? answer_gz : answer, blen) < 0)
				_exit(1);
		}
		shutdown(c, SHUT_WR);
		while (read(c, buf, sizeof buf) > 0)
			;
		_exit(0);
	}
	close(pipefd[1]);
	fn(arg);
	while ((n = read(pipefd[0], buf, sizeof buf)) > 0)
		strbuf_put(&got, buf, (size_t)n);
	close(pipefd[0]);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(got.s != NULL);
	return got.s;
}

/* The lines of a head, sorted, as one text. */
static char *sorted_lines(const char *head)
{
	char *copy = xstrdup(head), *lines[64], *save = NULL, *l;
	size_t n = 0;
	struct strbuf out = { 0 };

	for (l = strtok_r(copy, "\r\n", &save); l != NULL && n < 64;
	     l = strtok_r(NULL, "\r\n", &save))
		lines[n++] = l;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
			char *t = lines[j];
			lines[j] = lines[j - 1];
			lines[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		strbuf_puts(&out, lines[i]);
		strbuf_puts(&out, "\n");
	}
	free(copy);
	return out.s;
}

/* How many times `needle` occurs in `s`. */
static int count(const char *s, const char *needle)
{
	int k = 0;

	for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		k++;
	return k;
}

struct call_arg {
	enum llm_provider provider;
	const char *base, *body; /* body: for libcurl's own, the worker's captured body */
	int rc;
	struct llm_response r;
};

/* The worker's call. */
static void worker_call(void *p)
{
	struct call_arg *a = p;
	struct llm_config cfg = { .provider = a->provider,
		.base_url = a->base,
		.model = "test-model",
		.api_key = KEY,
		.timeout_ms = 10000,
		.temperature = 0.2 };
	struct llm_request req = { "You are a builder.", "Write it.", 4096 };

	a->rc = llm_call(&cfg, &req, NULL, &a->r);
}

/* A write callback that takes the answer and keeps nothing. */
static size_t discard(char *data, size_t size, size_t nmemb, void *userp)
{
	(void)data;
	(void)userp;
	return size * nmemb;
}

/* The same request made by libcurl alone, with the options a client of libcurl sets for
 * these headers (CURLOPT_USERAGENT, CURLOPT_ACCEPT_ENCODING ""). */
static void libcurl_call(void *p)
{
	struct call_arg *a = p;
	char err[256];
	const struct curl_lib *cu = curl_lib(err, sizeof err);
	void *h = dlopen(CURL_LIB_SONAME, RTLD_NOW | RTLD_LOCAL);
	CURLcode (*perform)(CURL *);
	void (*cleanup)(CURL *);
	struct curl_slist *hd = NULL;
	char *url, *key;
	CURL *easy;

	CHECK(cu != NULL && h != NULL);
	*(void **)&perform = dlsym(h, "curl_easy_perform");
	*(void **)&cleanup = dlsym(h, "curl_easy_cleanup");
	CHECK(perform != NULL && cleanup != NULL);
	url = xasprintf(
	    "%s%s", a->base, a->provider == LLM_ANTHROPIC ? "/v1/messages" : "/chat/completions");
	key = xasprintf(
	    "%s%s", a->provider == LLM_ANTHROPIC ? "x-api-key: " : "Authorization: Bearer ", KEY);
	hd = cu->slist_append(hd, "Content-Type: application/json");
	hd = cu->slist_append(hd, "Expect:");
	if (a->provider == LLM_ANTHROPIC)
		hd = cu->slist_append(hd, "anthropic-version: 2023-06-01");
	hd = cu->slist_append(hd, key);
	CHECK((easy = cu->easy_init()) != NULL);
	cu->easy_setopt(easy, CURLOPT_URL, url);
	cu->easy_setopt(easy, CURLOPT_POST, 1L);
	cu->easy_setopt(easy, CURLOPT_POSTFIELDS, a->body);
	cu->easy_setopt(easy, CURLOPT_USERAGENT, "autopack-worker/" AUTOPACK_VERSION);
	cu->easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	cu->easy_setopt(easy, CURLOPT_HTTPHEADER, hd);
	cu->easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
	a->rc = (int)perform(easy);
	cleanup(easy);
	cu->slist_free_all(hd);
	free(url);
	free(key);
	dlclose(h);
}

/* The worker's call to `base` (NULL: the server's own address) with `suffix`, and
 * libcurl's own, hold
 * the same lines in their heads, the User-Agent line once and the key only in its header;
 * returns the worker's call, its answer to be freed. */
static struct call_arg heads_agree(
    enum llm_provider p, const char *base, const char *suffix, const char *proxy_var)
{
	struct llm_config cfg = { .provider = p, .model = "test-model", .temperature = 0.2 };
	struct llm_request req = { "You are a builder.", "Write it.", 4096 };
	struct call_arg w = { .provider = p }, c = { .provider = p };
	struct raw srv;
	char *url, *proxy = NULL, *wh, *ch, *ws, *cs, *body;

	raw_start(&srv);
	if (base != NULL)
		url = xasprintf("%s%s", base, suffix);
	else
		url = xasprintf("http://127.0.0.1:%d%s", srv.port, suffix);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	if (proxy_var != NULL) {
		proxy = xasprintf("http://127.0.0.1:%d", srv.port);
		CHECK(setenv(proxy_var, proxy, 1) == 0);
	}
	w.base = c.base = cfg.base_url = url;
	body = llm_body_build(&cfg, &req);
	c.body = body;
	wh = raw_serve(&srv, worker_call, &w);
	ch = raw_serve(&srv, libcurl_call, &c);
	ws = sorted_lines(wh);
	cs = sorted_lines(ch);
	CHECK_EQ_STR(ws, cs);
	CHECK_EQ_INT(count(wh, "User-Agent: autopack-worker/" AUTOPACK_VERSION), 1);
	CHECK_EQ_INT(count(wh, KEY), strncmp(wh, "CONNECT ", 8) == 0 ? 0 : 1);
	if (proxy_var != NULL)
		unsetenv(proxy_var);
	free(wh);
	free(ch);
	free(ws);
	free(cs);
	free(body);
	free(url);
	free(proxy);
	close(srv.fd);
	return w;
}

TEST(worker_llm_request_head_holds_the_lines_libcurl_writes)
{
	/* The User-Agent and Accept-Encoding lines are the worker's own headers; the head
	 * holds what libcurl writes for CURLOPT_USERAGENT and CURLOPT_ACCEPT_ENCODING "",
	 * and a gzipped answer is still decoded. */
	struct call_arg w = heads_agree(LLM_ANTHROPIC, NULL, "", NULL);

	CHECK_EQ_INT(w.rc, 0);
	CHECK_EQ_STR(w.r.text, "gzipped answer");
	llm_response_free(&w.r);
	w = heads_agree(LLM_OPENAI, NULL, "/v1", NULL);
	llm_response_free(&w.r);
}

TEST(worker_llm_request_head_to_a_proxy_holds_the_lines_libcurl_writes)
{
	/* Sent to an HTTP proxy as it is, the request carries its User-Agent line once; a
	 * CONNECT carries it too, and no key. */
	struct call_arg w = heads_agree(LLM_ANTHROPIC, "http://llm.invalid", "", "http_proxy");

	CHECK_EQ_INT(w.rc, 0);
	llm_response_free(&w.r);
	w = heads_agree(LLM_ANTHROPIC, "https://llm.invalid", "", "https_proxy");
	CHECK_EQ_INT(w.rc, -1);
	CHECK_EQ_STR(w.r.error_class, LLM_E_NETWORK);
	llm_response_free(&w.r);
	w = heads_agree(LLM_OPENAI, "https://llm.invalid", "/v1", "https_proxy");
	llm_response_free(&w.r);
}

TEST(worker_llm_proxy_variables_are_read_when_the_first_call_makes_its_handle)
{
	/* A worker's environment is the one it started with: where no proxy variable is set
	 * when the first call makes the HTTP handle, the calls go to the server itself, one
	 * set later too. (Set then, they go through the proxy: the test above.) */
	struct call_arg w = heads_agree(LLM_ANTHROPIC, NULL, "", NULL);
	struct raw srv;
	char *proxy, *head;

	CHECK_EQ_INT(w.rc, 0);
	llm_response_free(&w.r);
	raw_start(&srv);
	proxy = xasprintf("http://127.0.0.1:%d", standin_dead_port());
	CHECK(setenv("http_proxy", proxy, 1) == 0);
	w.base = xasprintf("http://127.0.0.1:%d", srv.port);
	head = raw_serve(&srv, worker_call, &w);
	CHECK_EQ_INT(w.rc, 0);
	CHECK(strncmp(head, "POST /v1/messages HTTP/1.1\r\n", 28) == 0);
	llm_response_free(&w.r);
	free((char *)w.base);
	free(head);
	free(proxy);
	close(srv.fd);
}
