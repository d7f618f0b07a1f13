/*
 * The LLM client (libcurl): one llm_call() per builder call, with retries inside.
 *
 * Providers: "anthropic" (Messages API: POST <base>/v1/messages, x-api-key,
 * anthropic-version) and "openai" (chat completions: POST <base>/chat/completions, Bearer
 * key; base usually ends in /v1), the second serving any compatible server (OpenAI, vLLM,
 * llama.cpp server, Ollama).
 *
 * Retried, with exponential backoff and jitter (or the server's retry-after when longer):
 * 429, 5xx, connection errors and timeouts (a 408 too), up to max_retries extra tries and never past
 * the deadline. Every try is announced through on_send before it is sent and reported
 * through on_try after. The API key is sent in its header and
 * nowhere else: every message this module produces has the key scrubbed out.
 */
#ifndef AUTOPACK_LLM_H
#define AUTOPACK_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LLM_BODY_MAX_DEFAULT (8u << 20)
#define LLM_RETRIES_MAX 10 /* retries after the first try, whatever the job asks */
#define LLM_BACKOFF_BASE_MS 500
#define LLM_BACKOFF_MAX_MS 30000
#define LLM_RETRY_AFTER_MAX_MS 60000
/* Bytes of a stop reason kept: the names providers use are short ("end_turn", "length");
 * a longer one is cut (it travels in a frame, whose names hold PROTO_NAME_MAX bytes). */
#define LLM_STOP_REASON_MAX 64
/* How llm_body_parse's refusal of a body that is no JSON object starts: the try's
 * message adds the answer's Content-Type after it. */
#define LLM_NOT_JSON "response is not a JSON object"

enum llm_provider {
	LLM_ANTHROPIC,
	LLM_OPENAI
};

/* Error classes (NULL when a try succeeded). */
#define LLM_E_RATE_LIMITED "rate_limited"
#define LLM_E_SERVER "server_error"
#define LLM_E_CLIENT "client_error"
#define LLM_E_TIMEOUT "timeout"
#define LLM_E_NETWORK "network"
#define LLM_E_MALFORMED "malformed_response"
#define LLM_E_TOO_LARGE "response_too_large"

struct llm_config {
	enum llm_provider provider;
	const char *base_url; /* without the endpoint path */
	const char *model;
	const char *api_key;       /* from the environment */
	int64_t timeout_ms;        /* per try; bounded by the deadline */
	int max_retries;           /* tries after the first, at most LLM_RETRIES_MAX */
	size_t max_body;           /* 0: LLM_BODY_MAX_DEFAULT */
	uint64_t deadline_mono_ms; /* clock_mono_ms() value nothing may pass; 0: none */
	double temperature;
};

struct llm_request {
	const char *system; /* nullable */
	const char *prompt;
	int max_tokens;
};

/* One HTTP try, reported as it ends. */
struct llm_try {
	int try_number;            /* 1-based */
	long http_status;          /* 0: no response */
	int64_t prompt_tokens;     /* -1: unknown */
	int64_t completion_tokens; /* -1: unknown */
	int64_t total_tokens;      /* -1: unknown */
	int64_t latency_ms;
	const char *error_class; /* NULL: success */
	const char *error;       /* NULL on success: what went wrong, key scrubbed */
};

struct llm_hooks {
	void *ctx;
	/* Nullable: called before try `try_number` is sent; a nonzero return sends nothing
	 * and ends the call. */
	int (*on_send)(void *ctx, int try_number);
	void (*on_try)(void *ctx, const struct llm_try *t); /* nullable */
	void (*heartbeat)(void *ctx);                       /* nullable: at least every second */
	void (*sleep_ms)(void *ctx, int64_t ms);            /* nullable: backoff waits */
	double (*jitter)(void *ctx);                        /* nullable: a value in [0, 1) */
};

struct llm_response {
	bool ok;
	char *text;                /* heap: the model's text when ok */
	int64_t prompt_tokens;     /* -1: unknown */
	int64_t completion_tokens; /* -1: unknown */
	int64_t total_tokens;      /* -1: unknown */
	char *stop_reason;       /* heap, nullable: end_turn, max_tokens, stop, length, ...; at most
	                    * LLM_STOP_REASON_MAX bytes */
	bool truncated;          /* stop_reason max_tokens or model_context_window_exceeded
	                          * (anthropic), or length (openai) */
	bool at_window;          /* truncated at the model's context window, not at max_tokens
	                          * (model_context_window_exceeded): a larger max_tokens
	                          * gives no more */
	char *no_text;           /* heap, nullable: when the text is empty, what the message
	                          * holds instead (a refusal, tool calls, other blocks), key
	                          * masked (a refusal cut to its first 200 bytes) */
	long http_status;        /* of the last try */
	const char *error_class; /* of the last try when !ok */
	char error[512];         /* when !ok: key scrubbed */
	int tries;
};

/* Parse a provider name; -1 when unknown. */
int llm_provider_parse(const char *name);
const char *llm_provider_name(enum llm_provider p);
/* The environment variable holding a provider's key. */
const char *llm_key_variable(enum llm_provider p);

/* Make one builder call. Returns 0 with out->ok set when the provider answered with a
 * usable message, or -1 with out->error_class and out->error set. Free with
 * llm_response_free either way. */
int llm_call(const struct llm_config *cfg, const struct llm_request *req,
    const struct llm_hooks *hooks, struct llm_response *out);
void llm_response_free(struct llm_response *r);

/* Internal to the client, shared with its tests. */
/* Write `s` as a JSON string at `out` (room for 6 bytes per byte of s, plus 2): escaped as
 * jansson's compact dump escapes it, bytes that are not valid UTF-8 replaced by '?'.
 * Returns the end of what was written. */
char *llm_json_put_str(char *out, const char *s);
/* The JSON request body of a call (heap). */
char *llm_body_build(const struct llm_config *cfg, const struct llm_request *req);
/* Read a 2xx response body into out (text, usage, stop reason; each NULL or -1 when the
 * body has none). Returns 0, or -1 with `err` saying why the body is not a usable
 * message. */
int llm_body_parse(enum llm_provider p, const char *body, size_t len, struct llm_response *out,
    char *err, size_t errlen);
/* The provider's error message from an error body, else its printable start (200 bytes),
 * cut to fit `out` (n bytes), with `key` (NULL: none) masked before the cut. */
void llm_error_text(const char *body, size_t len, const char *key, char *out, size_t n);

/* Keys shorter than this are not masked in text: a placeholder ("dummy", "k") is no
 * secret, and masking it would mangle ordinary words. */
#define LLM_KEY_SCRUB_MIN 8

/* A copy of s (heap) with every occurrence of `key` replaced by "[redacted]" (none when
 * the key is shorter than LLM_KEY_SCRUB_MIN or NULL). */
char *llm_scrubbed(const char *s, const char *key);
/* The same in place, in the buffer s of `cap` bytes (the end is cut if it no longer
 * fits). */
void llm_scrub(char *s, size_t cap, const char *key);

/* Wait for a backoff before try `try_number` (>= 2): exponential from LLM_BACKOFF_BASE_MS,
 * capped, with jitter in [50%, 100%]; at least `retry_after_ms` when given (>= 0). */
int64_t llm_backoff_ms(int try_number, double jitter, int64_t retry_after_ms);

/* Parse a retry-after header value (seconds, or an HTTP date) into milliseconds from now
 * (a number of seconds over a day, however large, as a day); -1 when it cannot be
 * parsed (a date, when libcurl, which parses it, cannot be loaded). */
int64_t llm_parse_retry_after(const char *value);

#endif
