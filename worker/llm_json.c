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

/* Write `s` as a JSON string at `out` (room for 6 bytes per byte of s, plus 2): escaped as
 * jansson's compact dump escapes it, bytes that are not valid UTF-8 replaced by '?'.
 * Returns the end of what was written. */
static char *llm_put_str(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;

	*out++ = '"';
	while (*p != '\0') {
		unsigned char c = *p;
		size_t k;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*out++ = (char)c;
			p++;
			continue;
		}
		if (c >= 0x80) {
			k = llm_utf8_len(p);
			if (k == 0) {
				*out++ = '?';
				p++;
			} else {
				memcpy(out, p, k);
				out += k;
				p += k;
			}
			continue;
		}
		*out++ = '\\';
		switch (c) {
		case '"':
		case '\\': *out++ = (char)c; break;
		case '\b': *out++ = 'b'; break;
		case '\f': *out++ = 'f'; break;
		case '\n': *out++ = 'n'; break;
		case '\r': *out++ = 'r'; break;
		case '\t': *out++ = 't'; break;
		default:
			memcpy(out, "u00", 3);
			out[3] = hex[c >> 4];
			out[4] = hex[c & 15];
			out += 5;
		}
		p++;
	}
	*out++ = '"';
	return out;
}

/* Append a literal. */
static char *llm_put(char *out, const char *lit)
{
	size_t n = strlen(lit);

	memcpy(out, lit, n);
	return out + n;
}

/* The request body, written directly (the same bytes as jansson's compact dump of the
 * object, members in this order): no tree is built for a prompt that is only copied. */
char *llm_body_build(const struct llm_config *cfg, const struct llm_request *req)
{
	size_t cap = 256 +
	    6 *
	        (strlen(cfg->model) + strlen(req->prompt) +
	            (req->system != NULL ? strlen(req->system) : 0));
	char *body = xmalloc(cap), *o = body, num[64];
	int n;

	o = llm_put(o, "{\"model\":");
	o = llm_put_str(o, cfg->model);
	n = snprintf(num, sizeof num, ",\"max_tokens\":%d,\"temperature\":%.17g", req->max_tokens,
	    cfg->temperature);
	memcpy(o, num, (size_t)n);
	o += n;
	/* A real keeps a '.' or an exponent, as jansson writes it. */
	if (strpbrk(strrchr(num, ':'), ".e") == NULL)
		o = llm_put(o, ".0");
	if (cfg->provider == LLM_ANTHROPIC) {
		if (req->system != NULL) {
			o = llm_put(o, ",\"system\":");
			o = llm_put_str(o, req->system);
		}
		o = llm_put(o, ",\"messages\":[");
#ifdef AUTOPACK_MUTANT_anthropic_system_as_message
		o = llm_put(o, "{\"role\":\"system\",\"content\":\"x\"},");
#endif
	} else {
		o = llm_put(o, ",\"messages\":[");
		if (req->system != NULL) {
			o = llm_put(o, "{\"role\":\"system\",\"content\":");
			o = llm_put_str(o, req->system);
			o = llm_put(o, "},");
		}
	}
	o = llm_put(o, "{\"role\":\"user\",\"content\":");
	o = llm_put_str(o, req->prompt);
	o = llm_put(o, "}]}");
	*o = '\0';
	return body;
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
