/* The providers' request and response shapes: the request written directly, the answer
 * read in place (worker/jspan.h), an error body through jansson. */
#include "worker/llm.h"
#include "common/jsonload.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "common/utf8.h"
#include "worker/jspan.h"

#include <jansson.h>
#include <stdint.h>
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

/* True for a byte a JSON string holds as it is: 0x20 to 0x7F but '"' (0x22) and '\\'
 * (0x5C), one bit each in two 64-bit masks. */
static inline bool llm_json_plain(unsigned char c)
{
	static const uint64_t mask[2] = { 0xFFFFFFFB00000000ULL, 0xFFFFFFFFEFFFFFFFULL };

	return c < 0x80 && ((mask[c >> 6] >> (c & 63)) & 1) != 0;
}

/* True when each of the eight bytes of w is written as it is (llm_json_plain): none is
 * below 0x20, '"', '\\', or 0x80 and above. A byte below n leaves its top bit set in w
 * less n in each byte, and so does a byte of w with '"' or '\\' cleared (xor) less 1 in
 * each: a borrow only adds false hits in the bytes above a true one. A byte of 0x80 and
 * above leaves its top bit set in w less 0x20 (0xA1 and above) or in w ^ '"' less 1
 * (0x80 to 0xA0, whose bit 5 the xor sets). */
static inline bool llm_json_plain8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, tops = 0x8080808080808080ULL;
	uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');

	return (((w - ones * 0x20) | (q - ones) | (b - ones)) & tops) == 0;
}

char *llm_json_put_str(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);

	*out++ = '"';
	while (*p != '\0') {
		const unsigned char *run = p;
		unsigned char c;
		uint64_t w;
		size_t k;

		/* A run of bytes written as they are, copied at once: looked at eight at a
		 * time, then one at a time from the word that holds another. */
		while (end - p >= 8 && (memcpy(&w, p, 8), llm_json_plain8(w)))
			p += 8;
		while (llm_json_plain(*p))
			p++;
		if (p > run) {
			memcpy(out, run, (size_t)(p - run));
			out += p - run;
		}
		if ((c = *p) == '\0')
			break;
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
	/* The temperature as jansson writes a real (%.17g, keeping a '.' or an exponent),
	 * formatted again only when it changes. */
	static double temp_done;
	static char temp[48];
	char *body = xmalloc(cap), *o = body;
	int n;

	if (temp[0] == '\0' || memcmp(&temp_done, &cfg->temperature, sizeof temp_done) != 0) {
		n = snprintf(temp, sizeof temp - 2, "%.17g", cfg->temperature);
		if (strpbrk(temp, ".e") == NULL)
			memcpy(temp + n, ".0", 3);
		temp_done = cfg->temperature;
	}
	o = llm_put(o, "{\"model\":");
	o = llm_json_put_str(o, cfg->model);
	n = sprintf(o, ",\"max_tokens\":%d,\"temperature\":", req->max_tokens);
	o = llm_put(o + n, temp);
	if (cfg->provider == LLM_ANTHROPIC) {
		if (req->system != NULL) {
			o = llm_put(o, ",\"system\":");
			o = llm_json_put_str(o, req->system);
		}
		o = llm_put(o, ",\"messages\":[");
#ifdef AUTOPACK_MUTANT_anthropic_system_as_message
		o = llm_put(o, "{\"role\":\"system\",\"content\":\"x\"},");
#endif
	} else {
		o = llm_put(o, ",\"messages\":[");
		if (req->system != NULL) {
			o = llm_put(o, "{\"role\":\"system\",\"content\":");
			o = llm_json_put_str(o, req->system);
			o = llm_put(o, "},");
		}
	}
	o = llm_put(o, "{\"role\":\"user\",\"content\":");
	o = llm_json_put_str(o, req->prompt);
	o = llm_put(o, "}]}");
	*o = '\0';
	return body;
}

/* No single call's token count comes near this: a usage count above it is not believed
 * (it would only skew the estimator's samples, and a few such rows overflow the
 * database's 64-bit sums). The bound of `telemetry import` too. */
#define LLM_TOKENS_MAX 1000000000

/* The members of the answer's top object read, found in one pass over it. */
enum {
	LLM_M_USAGE,
	LLM_M_CONTENT,
	LLM_M_STOP,
	LLM_M_CHOICES,
	LLM_M_N
};
static const char *const llm_root_keys[LLM_M_N] = { "usage", "content", "stop_reason", "choices" };

/* Value i of a jspan_members look-up (`got` its result) as a token count from 0 to
 * LLM_TOKENS_MAX, or -1 (absent, not an integer, or out of range: taken as not
 * reported). */
static int64_t llm_tokens(unsigned got, int i, const struct jspan *v)
{
	int64_t n;

	if ((got & (1u << i)) == 0 || !jspan_int(v[i], &n))
		return -1;
	return n >= 0 && n <= LLM_TOKENS_MAX ? n : -1;
}

/* Value i of a jspan_members look-up as a string (heap), or NULL. */
static char *llm_str(unsigned got, int i, const struct jspan *v)
{
	return (got & (1u << i)) != 0 ? jspan_str(v[i], NULL) : NULL;
}

/* Fill usage from the provider's usage object (NULL: the answer has none). */
static void llm_usage_read(enum llm_provider p, const struct jspan *usage, struct llm_response *out)
{
	static const char *const anthropic[] = { "input_tokens", "output_tokens" };
	static const char *const openai[] = { "prompt_tokens", "completion_tokens",
		"total_tokens" };
	struct jspan v[3];
	unsigned got;

	out->prompt_tokens = out->completion_tokens = out->total_tokens = -1;
	if (usage == NULL || !jspan_is_object(*usage))
		return;
	if (p == LLM_ANTHROPIC) {
		got = jspan_members(*usage, anthropic, 2, v);
		out->prompt_tokens = llm_tokens(got, 0, v);
		out->completion_tokens = llm_tokens(got, 1, v);
	} else {
		got = jspan_members(*usage, openai, 3, v);
		out->prompt_tokens = llm_tokens(got, 0, v);
		out->completion_tokens = llm_tokens(got, 1, v);
#ifdef AUTOPACK_MUTANT_openai_usage_misread
		out->completion_tokens = llm_tokens(got, 2, v);
#endif
		out->total_tokens = llm_tokens(got, 2, v);
	}
	if (out->total_tokens < 0 && out->prompt_tokens >= 0 && out->completion_tokens >= 0)
		out->total_tokens = out->prompt_tokens + out->completion_tokens;
}

/* The most block types a message without text is said to hold, and the most bytes of
 * each type's name shown. */
#define LLM_OTHER_BLOCKS_MAX 4
#define LLM_BLOCK_TYPE_SHOWN 40

/* Name the type of `block`, a content block with no text, in `names` (one of `*n` so
 * far): "a tool_use block", ", a thinking block", each type once, at most
 * LLM_OTHER_BLOCKS_MAX of them, then "and more". */
static void llm_other_block(struct strbuf *names, size_t *n, struct jspan block)
{
	struct jspan t;
	char *type = jspan_member(block, "type", &t) ? jspan_str(t, NULL) : NULL;
	char *shown = type != NULL ? utf8_clean(type, LLM_BLOCK_TYPE_SHOWN) : NULL;
	char *item = shown != NULL ? xasprintf("a %s block", shown) :
	                             xstrdup("a block without a type");

	if (names->s == NULL || strstr(names->s, item) == NULL) {
		if (*n < LLM_OTHER_BLOCKS_MAX)
			strbuf_printf(names, "%s%s", *n > 0 ? ", " : "", item);
		else if (*n == LLM_OTHER_BLOCKS_MAX)
			strbuf_puts(names, " and more");
		(*n)++;
	}
	free(item);
	free(shown);
	free(type);
}

/* Concatenate the text blocks of an Anthropic message (`got`, `m`: the top object's
 * members). Returns 0 or -1. */
static int llm_anthropic_text(
    unsigned got, const struct jspan *m, struct llm_response *out, char *err, size_t errlen)
{
	struct jspan it = { 0 }, block;
	struct strbuf text = { 0 }, others = { 0 };
	size_t nothers = 0;

	if ((got & (1u << LLM_M_CONTENT)) == 0 || !jspan_is_array(m[LLM_M_CONTENT])) {
		snprintf(err, errlen, "response has no \"content\" array");
		return -1;
	}
	while (jspan_next(m[LLM_M_CONTENT], &it, &block)) {
		struct jspan t;
		size_t n;
		char *s;

		if (jspan_member(block, "text", &t) && (s = jspan_str(t, &n)) != NULL) {
			strbuf_put(&text, s, n);
			free(s);
		} else {
			llm_other_block(&others, &nothers, block);
		}
	}
	out->text = text.s != NULL ? text.s : xstrdup("");
	if (out->text[0] == '\0')
		out->no_text = nothers == 0 ?
		    xstrdup("its content holds no block") :
		    xasprintf("its content holds %s and no text", others.s);
	free(others.s);
	out->stop_reason = llm_str(got, LLM_M_STOP, m);
	if (out->stop_reason != NULL) {
		out->at_window = strcmp(out->stop_reason, "model_context_window_exceeded") == 0;
		out->truncated = out->at_window || strcmp(out->stop_reason, "max_tokens") == 0;
	}
	return 0;
}

/* The most bytes of a refusal a message without text is said to hold. */
#define LLM_REFUSAL_SHOWN 200

/* What a chat completion's message with no text holds instead (heap), or NULL: its
 * refusal, its tool calls. */
static char *llm_openai_no_text(struct jspan message)
{
	struct jspan v, it = { 0 }, e;
	char *refusal, *shown, *out;
	size_t n = 0;

	if (jspan_member(message, "refusal", &v) && (refusal = jspan_str(v, NULL)) != NULL) {
		shown = utf8_clean(refusal, LLM_REFUSAL_SHOWN);
		out = xasprintf("the model refused: \"%s%s\"", shown,
		    strlen(refusal) > strlen(shown) ? "…" : "");
		free(shown);
		free(refusal);
		return out;
	}
	if (jspan_member(message, "tool_calls", &v) && jspan_is_array(v)) {
		while (jspan_next(v, &it, &e))
			n++;
		return xasprintf(
		    "its message holds %zu tool call%s and no text", n, n == 1 ? "" : "s");
	}
	return NULL;
}

/* The first choice's message of a chat completion (`got`, `m`: the top object's
 * members). Returns 0 or -1. */
static int llm_openai_text(
    unsigned got, const struct jspan *m, struct llm_response *out, char *err, size_t errlen)
{
	static const char *const keys[] = { "message", "finish_reason" };
	struct jspan it = { 0 }, choice, c[2], content;
	unsigned cgot;
	bool has_content;

	if ((got & (1u << LLM_M_CHOICES)) == 0 || !jspan_next(m[LLM_M_CHOICES], &it, &choice)) {
		snprintf(err, errlen, "response has no \"choices\"");
		return -1;
	}
	cgot = jspan_members(choice, keys, 2, c);
	if ((cgot & 1) == 0 || !jspan_is_object(c[0])) {
		snprintf(err, errlen, "choices[0] has no \"message\"");
		return -1;
	}
	has_content = jspan_member(c[0], "content", &content);
	if (has_content && !jspan_is_null(content) && !jspan_is_string(content)) {
		snprintf(err, errlen, "choices[0].message.content is not a string");
		return -1;
	}
	out->text = has_content && jspan_is_string(content) ? jspan_str(content, NULL) :
	                                                      xstrdup("");
	if (out->text[0] == '\0')
		out->no_text = llm_openai_no_text(c[0]);
	out->stop_reason = llm_str(cgot, 1, c);
	if (out->stop_reason != NULL)
		out->truncated = strcmp(out->stop_reason, "length") == 0;
	return 0;
}

/* Into err: why the answer (len bytes at body), which jspan refused for `e`, is not read.
 * Said in jansson's words, as before (a failure's message is its fingerprint), except
 * for a NUL: jansson names its own flag (JSON_ALLOW_NUL), no word of the operator's. */
static void llm_not_json(
    const char *body, size_t len, const struct jspan_err *e, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loadb_bounded(body, len, 0, &jerr);

	if (j == NULL && strstr(jerr.text, "JSON_ALLOW_NUL") != NULL)
		snprintf(err, errlen,
		    LLM_NOT_JSON
		    " (%zu bytes): the answer held a NUL byte (\\u0000) at offset %zu, "
		    "which the worker refuses in an answer",
		    len, strstr(e->why, "NUL") != NULL ? e->at : (size_t)jerr.position);
	else if (j == NULL)
		snprintf(err, errlen, LLM_NOT_JSON " (%zu bytes): %s", len, jerr.text);
	else
		snprintf(
		    err, errlen, LLM_NOT_JSON " (%zu bytes): at byte %zu: %s", len, e->at, e->why);
	json_decref(j);
}

/* Read the answer in place (worker/jspan.h): only the fields used are decoded, the top
 * object's members found in one pass. */
int llm_body_parse(enum llm_provider p, const char *body, size_t len, struct llm_response *out,
    char *err, size_t errlen)
{
	struct jspan root = { NULL, NULL }, m[LLM_M_N];
	struct jspan_err e;
	unsigned got;

	out->text = out->stop_reason = out->no_text = NULL;
	out->truncated = out->at_window = false;
	out->prompt_tokens = out->completion_tokens = out->total_tokens = -1;
	if (jspan_check(body, len, 0, &root, &e) != 0) {
		llm_not_json(body, len, &e, err, errlen);
		return -1;
	}
	if (!jspan_is_object(root)) {
		snprintf(err, errlen, LLM_NOT_JSON " (%zu bytes): wrong type", len);
		return -1;
	}
	got = jspan_members(root, llm_root_keys, LLM_M_N, m);
	llm_usage_read(p, (got & (1u << LLM_M_USAGE)) != 0 ? &m[LLM_M_USAGE] : NULL, out);
	return p == LLM_ANTHROPIC ? llm_anthropic_text(got, m, out, err, errlen) :
	                            llm_openai_text(got, m, out, err, errlen);
}

/* Copy up to n-1 printable bytes of s[0..len) into out, other bytes as spaces; cut short,
 * at a character's start (a cut inside one would leave a byte that is no UTF-8). */
static void llm_printable(const char *s, size_t len, char *out, size_t n)
{
	size_t k;

	if (n == 0)
		return;
	if (len > n - 1) {
		len = n - 1;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	for (k = 0; k < len; k++)
		out[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? ' ' : s[k];
	out[len] = '\0';
}

/* Into out (n bytes): the first `max` bytes of `s` (len bytes) with `key` masked first, so
 * that no part of it is left where the cut goes through it, printable (llm_printable).
 * Aborts when out of memory. */
static void llm_excerpt(const char *s, size_t len, size_t max, const char *key, char *out, size_t n)
{
	size_t klen = key != NULL ? strlen(key) : 0, k;
	char *copy, *masked;

	/* A key starting before the cut ends before max + klen; nothing past it shows. */
	if (len > max + klen)
		len = max + klen;
	copy = xmalloc(len + 1);
	for (k = 0; k < len; k++)
		copy[k] = s[k] == '\0' ? ' ' : s[k];
	copy[len] = '\0';
	masked = llm_scrubbed(copy, key);
	k = strlen(masked);
	llm_printable(masked, k < max ? k : max, out, n);
	free(masked);
	free(copy);
}

void llm_error_text(const char *body, size_t len, const char *key, char *out, size_t n)
{
	json_error_t jerr;
	json_t *root = len > 0 ? json_loadb_bounded(body, len, 0, &jerr) : NULL;
	json_t *e = json_object_get(root, "error"), *m = NULL;

	if (json_is_object(e))
		m = json_object_get(e, "message");
	else if (json_is_string(e))
		m = e;
	if (json_is_string(m))
		llm_excerpt(json_string_value(m), json_string_length(m), n, key, out, n);
	else
		llm_excerpt(body, len, 200, key, out, n);
	json_decref(root);
}
