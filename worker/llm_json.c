/* The providers' request and response shapes (jansson). */
#include "worker/llm.h"
#include "common/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t llm_utf8_len(const unsigned char *s)
{
	size_t n, k;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		n = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		n = 3;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		n = 4;
	else
		return 0;
	for (k = 1; k < n; k++)
		if ((s[k] & 0xC0) != 0x80)
			return 0;
	if ((n == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (n == 3 && s[0] == 0xED && s[1] >= 0xA0) ||
	    (n == 4 && s[0] == 0xF0 && s[1] < 0x90) || (n == 4 && s[0] == 0xF4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* A JSON string of `s`, with bytes that are not valid UTF-8 replaced by '?'. */
static json_t *llm_jstr(const char *s)
{
	json_t *j = json_string(s);
	char *copy;
	size_t i = 0;

	if (j != NULL)
		return j;
	copy = xstrdup(s);
	while (copy[i] != '\0') {
		size_t k = llm_utf8_len((const unsigned char *)copy + i);
		if (k == 0) {
			copy[i] = '?';
			k = 1;
		}
		i += k;
	}
	j = json_string(copy);
	free(copy);
	return j;
}

char *llm_body_build(const struct llm_config *cfg, const struct llm_request *req)
{
	json_t *root = json_object(), *msgs = json_array();
	char *out;

	json_object_set_new(root, "model", llm_jstr(cfg->model));
	json_object_set_new(root, "max_tokens", json_integer(req->max_tokens));
	json_object_set_new(root, "temperature", json_real(cfg->temperature));
	if (cfg->provider == LLM_ANTHROPIC) {
		if (req->system != NULL)
			json_object_set_new(root, "system", llm_jstr(req->system));
#ifdef AUTOPACK_MUTANT_anthropic_system_as_message
		json_array_append_new(
		    msgs, json_pack("{s:s, s:s}", "role", "system", "content", "x"));
#endif
	} else if (req->system != NULL) {
		json_array_append_new(msgs,
		    json_pack("{s:s, s:o}", "role", "system", "content", llm_jstr(req->system)));
	}
	json_array_append_new(
	    msgs, json_pack("{s:s, s:o}", "role", "user", "content", llm_jstr(req->prompt)));
	json_object_set_new(root, "messages", msgs);
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (out == NULL)
		abort(); /* allocation failure */
	return out;
}

/* An integer member of `obj`, or -1. */
static int64_t llm_int(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) :
	                                                          -1;
}

/* Fill usage from the provider's usage object. */
static void llm_usage_read(enum llm_provider p, json_t *usage, struct llm_response *out)
{
	out->prompt_tokens = out->completion_tokens = out->total_tokens = -1;
	if (!json_is_object(usage))
		return;
	if (p == LLM_ANTHROPIC) {
		out->prompt_tokens = llm_int(usage, "input_tokens");
		out->completion_tokens = llm_int(usage, "output_tokens");
	} else {
		out->prompt_tokens = llm_int(usage, "prompt_tokens");
		out->completion_tokens = llm_int(usage, "completion_tokens");
#ifdef AUTOPACK_MUTANT_openai_usage_misread
		out->completion_tokens = llm_int(usage, "total_tokens");
#endif
		out->total_tokens = llm_int(usage, "total_tokens");
	}
	if (out->total_tokens < 0 && out->prompt_tokens >= 0 && out->completion_tokens >= 0)
		out->total_tokens = out->prompt_tokens + out->completion_tokens;
}

/* Concatenate the text blocks of an Anthropic message. Returns 0 or -1. */
static int llm_anthropic_text(json_t *root, struct llm_response *out, char *err, size_t errlen)
{
	json_t *content = json_object_get(root, "content"), *block, *stop;
	size_t i, len = 0;

	if (!json_is_array(content)) {
		snprintf(err, errlen, "response has no \"content\" array");
		return -1;
	}
	json_array_foreach(content, i, block)
	{
		json_t *t = json_object_get(block, "text");
		if (json_is_string(t))
			len += json_string_length(t);
	}
	out->text = xmalloc(len + 1);
	len = 0;
	json_array_foreach(content, i, block)
	{
		json_t *t = json_object_get(block, "text");
		if (json_is_string(t)) {
			memcpy(out->text + len, json_string_value(t), json_string_length(t));
			len += json_string_length(t);
		}
	}
	out->text[len] = '\0';
	stop = json_object_get(root, "stop_reason");
	if (json_is_string(stop)) {
		out->stop_reason = xstrdup(json_string_value(stop));
		out->truncated = strcmp(out->stop_reason, "max_tokens") == 0;
	}
	return 0;
}

/* The first choice's message of a chat completion. Returns 0 or -1. */
static int llm_openai_text(json_t *root, struct llm_response *out, char *err, size_t errlen)
{
	json_t *choices = json_object_get(root, "choices"), *choice, *msg, *content, *finish;

	if (!json_is_array(choices) || json_array_size(choices) == 0) {
		snprintf(err, errlen, "response has no \"choices\"");
		return -1;
	}
	choice = json_array_get(choices, 0);
	msg = json_object_get(choice, "message");
	if (!json_is_object(msg)) {
		snprintf(err, errlen, "choices[0] has no \"message\"");
		return -1;
	}
	content = json_object_get(msg, "content");
	if (content != NULL && !json_is_null(content) && !json_is_string(content)) {
		snprintf(err, errlen, "choices[0].message.content is not a string");
		return -1;
	}
	if (json_is_string(content))
		out->text = xstrndup(json_string_value(content), json_string_length(content));
	else
		out->text = xstrdup("");
	finish = json_object_get(choice, "finish_reason");
	if (json_is_string(finish)) {
		out->stop_reason = xstrdup(json_string_value(finish));
		out->truncated = strcmp(out->stop_reason, "length") == 0;
	}
	return 0;
}

int llm_body_parse(enum llm_provider p, const char *body, size_t len, struct llm_response *out,
    char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr);
	int rc;

	if (root == NULL || !json_is_object(root)) {
		snprintf(err, errlen, "response is not a JSON object (%zu bytes): %s", len,
		    root == NULL ? jerr.text : "wrong type");
		json_decref(root);
		return -1;
	}
	llm_usage_read(p, json_object_get(root, "usage"), out);
	rc = p == LLM_ANTHROPIC ? llm_anthropic_text(root, out, err, errlen) :
	                          llm_openai_text(root, out, err, errlen);
	json_decref(root);
	return rc;
}

/* Copy up to n-1 printable bytes of s[0..len) into out, other bytes as spaces. */
static void llm_printable(const char *s, size_t len, char *out, size_t n)
{
	size_t k;

	if (n == 0)
		return;
	if (len > n - 1)
		len = n - 1;
	for (k = 0; k < len; k++)
		out[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? ' ' : s[k];
	out[len] = '\0';
}

void llm_error_text(const char *body, size_t len, char *out, size_t n)
{
	json_error_t jerr;
	json_t *root = len > 0 ? json_loadb(body, len, 0, &jerr) : NULL;
	json_t *e = json_object_get(root, "error"), *m = NULL;

	if (json_is_object(e))
		m = json_object_get(e, "message");
	else if (json_is_string(e))
		m = e;
	if (json_is_string(m))
		llm_printable(json_string_value(m), json_string_length(m), out, n);
	else
		llm_printable(body, len > 200 ? 200 : len, out, n);
	json_decref(root);
}
