/* The failure-message normaliser and fingerprints (see fingerprint.h for the fixes). */
#include "common/fingerprint/fingerprint.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A word character of Python's \w: ASCII letters, digits, '_', and any non-ASCII byte. */
static bool fp_word(unsigned char c)
{
	return isalnum(c) || c == '_' || c >= 0x80;
}

/* Whether c is an ASCII digit. */
static bool fp_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Number of digits at s (at most max). */
static size_t fp_digits(const char *s, size_t max)
{
	size_t k = 0;

	while (k < max && fp_digit((unsigned char)s[k]))
		k++;
	return k;
}

/* True when position i of s may start a path: the start, or after whitespace, a quote, a
 * parenthesis or '='. */
static bool fp_token_start(const char *s, size_t i)
{
	unsigned char p;

	if (i == 0)
		return true;
	p = (unsigned char)s[i - 1];
	return isspace(p) || strchr("'\"`()[]{}=", p) != NULL;
}

/* Characters of a Unix path after its first '/': [\w/.-]. */
static bool fp_path_char(unsigned char c)
{
	return fp_word(c) || c == '/' || c == '.' || c == '-';
}

/* Length of a match at s of one of the patterns below, 0 for none. */
typedef size_t (*fp_match_fn)(const char *s, size_t i);

/* \d{4}-\d{2}-\d{2} */
static size_t fp_m_date(const char *s, size_t i)
{
	s += i;
	if (fp_digits(s, 4) == 4 && s[4] == '-' && fp_digits(s + 5, 2) == 2 && s[7] == '-' &&
	    fp_digits(s + 8, 2) == 2)
		return 10;
	return 0;
}

/* \d{2}:\d{2}:\d{2} */
static size_t fp_m_time(const char *s, size_t i)
{
	s += i;
	if (fp_digits(s, 2) == 2 && s[2] == ':' && fp_digits(s + 3, 2) == 2 && s[5] == ':' &&
	    fp_digits(s + 6, 2) == 2)
		return 8;
	return 0;
}

/* [a-z]:\\[\w\\./-]* not preceded by a word character. */
static size_t fp_m_winpath(const char *s, size_t i)
{
	size_t k;

	if (i > 0 && fp_word((unsigned char)s[i - 1]))
		return 0;
	if (!(s[i] >= 'a' && s[i] <= 'z') || s[i + 1] != ':' || s[i + 2] != '\\')
		return 0;
	for (k = i + 3; fp_path_char((unsigned char)s[k]) || s[k] == '\\'; k++)
		;
	return k - i;
}

/* /[\w/.-]+ at the start of a token. */
static size_t fp_m_path(const char *s, size_t i)
{
	size_t k;

	if (s[i] != '/' || !fp_token_start(s, i) || !fp_path_char((unsigned char)s[i + 1]))
		return 0;
	for (k = i + 1; fp_path_char((unsigned char)s[k]); k++)
		;
	return k - i;
}

/* 0x[0-9a-f]+ */
static size_t fp_m_addr(const char *s, size_t i)
{
	size_t k;

	if (s[i] != '0' || s[i + 1] != 'x' || !isxdigit((unsigned char)s[i + 2]))
		return 0;
	for (k = i + 2; fp_digit((unsigned char)s[k]) || (s[k] >= 'a' && s[k] <= 'f'); k++)
		;
	return k > i + 2 ? k - i : 0;
}

/* "line " followed by digits. */
static size_t fp_m_line(const char *s, size_t i)
{
	size_t d;

	if (strncmp(s + i, "line ", 5) != 0)
		return 0;
	d = fp_digits(s + i + 5, (size_t)-1);
	return d > 0 ? 5 + d : 0;
}

/* ':' followed by digits. */
static size_t fp_m_colon(const char *s, size_t i)
{
	size_t d;

	if (s[i] != ':')
		return 0;
	d = fp_digits(s + i + 1, (size_t)-1);
	return d > 0 ? 1 + d : 0;
}

static const char *const fp_id_words[] = { "session", "run", "batch", "drain" };

/* (session|run|batch|drain)-\d{8}-\d{6}; the word index goes to *which. */
static size_t fp_m_id(const char *s, size_t i, size_t *which)
{
	size_t w;

	for (w = 0; w < ARRAY_SIZE(fp_id_words); w++) {
		size_t n = strlen(fp_id_words[w]);
		const char *p = s + i + n;
		if (strncmp(s + i, fp_id_words[w], n) == 0 && p[0] == '-' &&
		    fp_digits(p + 1, 8) == 8 && p[9] == '-' && fp_digits(p + 10, 6) == 6) {
			*which = w;
			return n + 16;
		}
	}
	return 0;
}

/* \b\d+\b: a whole run of digits between non-word characters. */
static size_t fp_m_int(const char *s, size_t i)
{
	size_t d;

	if (i > 0 && fp_word((unsigned char)s[i - 1]))
		return 0;
	d = fp_digits(s + i, (size_t)-1);
	if (d == 0 || fp_word((unsigned char)s[i + d]))
		return 0;
	return d;
}

/* Replace every non-overlapping match of `m`, scanning left to right, with `rep`. */
static char *fp_replace(char *in, fp_match_fn m, const char *rep)
{
	struct strbuf b = { 0 };
	size_t i = 0, len = strlen(in);

	strbuf_put(&b, "", 0);
	while (i < len) {
		size_t k = m(in, i);
		if (k > 0) {
			strbuf_puts(&b, rep);
			i += k;
		} else {
			strbuf_put(&b, in + i, 1);
			i++;
		}
	}
	free(in);
	return b.s;
}

/* Replace session-like ids with "<word>-id". */
static char *fp_replace_ids(char *in)
{
	struct strbuf b = { 0 };
	size_t i = 0, len = strlen(in), w = 0;

	strbuf_put(&b, "", 0);
	while (i < len) {
		size_t k = fp_m_id(in, i, &w);
		if (k > 0) {
			strbuf_puts(&b, fp_id_words[w]);
			strbuf_puts(&b, "-id");
			i += k;
		} else {
			strbuf_put(&b, in + i, 1);
			i++;
		}
	}
	free(in);
	return b.s;
}

/* Collapse runs of whitespace to one space and trim both ends. */
static char *fp_collapse(char *in)
{
	struct strbuf b = { 0 };
	const char *s = in;

	strbuf_put(&b, "", 0);
	while (*s != '\0') {
		if (isspace((unsigned char)*s)) {
			while (isspace((unsigned char)*s))
				s++;
			if (b.len > 0 && *s != '\0')
				strbuf_put(&b, " ", 1);
			continue;
		}
		strbuf_put(&b, s, 1);
		s++;
	}
	free(in);
	return b.s;
}

/* Copy at most n-1 bytes of s into out, backing off to a UTF-8 character boundary. */
static size_t fp_copy_utf8(const char *s, char *out, size_t n)
{
	size_t len = strlen(s);

	if (n == 0)
		return 0;
	if (len >= n) {
		len = n - 1;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(out, s, len);
	out[len] = '\0';
	return len;
}

/* Normalise an error message into out; returns its length. */
size_t fp_normalise(const char *in, char *out, size_t n)
{
	char *s = xstrdup(in != NULL ? in : "");
	size_t k, len;

	for (k = 0; s[k] != '\0'; k++)
		s[k] = (char)tolower((unsigned char)s[k]);
	s = fp_replace(s, fp_m_date, "date");
	s = fp_replace(s, fp_m_time, "time");
	s = fp_replace(s, fp_m_winpath, "path");
	s = fp_replace(s, fp_m_path, "path");
	s = fp_replace(s, fp_m_addr, "addr");
	s = fp_replace(s, fp_m_line, "line num");
	s = fp_replace(s, fp_m_colon, ":num");
	s = fp_replace_ids(s);
	s = fp_replace(s, fp_m_int, "num");
	s = fp_collapse(s);
	len = fp_copy_utf8(s, out, n);
	free(s);
	return len;
}

/* Name the rc bucket of an exit status. */
void fp_rc_bucket(int rc, char *out, size_t n)
{
	if (rc == -1)
		snprintf(out, n, "timeout");
	else if (rc == 143)
		snprintf(out, n, "timeout143");
	else
		snprintf(out, n, "rc%d", rc);
}

/* Join the parts that are present into a fingerprint; returns its length. */
size_t fp_fingerprint(
    const char *final_state, const char *bucket, const char *error, char *out, size_t n)
{
	struct strbuf b = { 0 };
	size_t len;

	strbuf_put(&b, "", 0);
	if (final_state != NULL && final_state[0] != '\0')
		strbuf_puts(&b, final_state);
	if (bucket != NULL && bucket[0] != '\0') {
		if (b.len > 0)
			strbuf_put(&b, "|", 1);
		strbuf_puts(&b, bucket);
	}
	if (error != NULL && error[0] != '\0') {
		char norm[FP_MESSAGE_MAX + 1];
		fp_normalise(error, norm, sizeof norm);
		if (b.len > 0)
			strbuf_put(&b, "|", 1);
		strbuf_puts(&b, norm);
	}
	len = fp_copy_utf8(b.s, out, n);
	free(b.s);
	return len;
}

/* Fingerprint an attempt's end from its outcome, reason and message. */
size_t fp_attempt(enum outcome o, enum reason r, const char *message, char *out, size_t n)
{
	const char *name = reason_name(r);
	char bucket[64];
	size_t i = 0;

	if (outcome_ok(o) || o == OUTCOME_NONE) {
		if (n > 0)
			out[0] = '\0';
		return 0;
	}
	for (; name != NULL && name[i] != '\0' && i + 1 < sizeof bucket; i++)
		bucket[i] = (char)tolower((unsigned char)name[i]);
	bucket[i] = '\0';
	return fp_fingerprint(outcome_label(o), bucket, message, out, n);
}

/* Whether the lowercased text contains one of the n lowercase marks (false for NULL). */
static bool fp_has_mark(const char *text, const char *const *marks, size_t n)
{
	char *low;
	size_t i;
	bool hit = false;

	if (text == NULL)
		return false;
	low = xstrdup(text);
	for (i = 0; low[i] != '\0'; i++)
		low[i] = (char)tolower((unsigned char)low[i]);
	for (i = 0; i < n && !hit; i++)
		hit = strstr(low, marks[i]) != NULL;
	free(low);
	return hit;
}

/* Whether the text shows a context or turn limit. */
bool fp_llm_boundary(const char *text)
{
	static const char *const marks[] = {
		"max_turns",
		"message limit",
		"context_length_exceeded",
		"maximum context",
		"token limit exceeded",
		"max tokens",
		"context window exceeded",
		"conversation too long",
		"exceeded maximum",
	};

	return fp_has_mark(text, marks, ARRAY_SIZE(marks));
}

/* True when the lowercased output shows a failure before any LLM call. */
static bool fp_before_llm_text(const char *text)
{
	static const char *const marks[] = {
		"validation error",
		"schema error",
		"missing required field",
		"invalid phase",
		"phase not found",
		"run not found",
		"database error",
		"connection error",
		"permission denied",
	};

	return fp_has_mark(text, marks, ARRAY_SIZE(marks));
}

/* Say why an attempt yielded no clean sample (ZERO_YIELD_NONE if it did). */
enum zero_yield fp_zero_yield_reason(const struct fp_yield *y)
{
	if (y->dry_run || y->samples > 0)
		return ZERO_YIELD_NONE;
	if (y->success)
		return ZERO_YIELD_SUCCESS_NO_LLM_CALLS;
	if (y->timed_out || (y->has_rc && (y->rc == -1 || y->rc == 143)))
		return ZERO_YIELD_TIMEOUT;
	if (y->boundary)
		return ZERO_YIELD_LLM_BOUNDARY_HIT;
	switch (y->stage) {
	case FP_STAGE_BEFORE_LLM: return ZERO_YIELD_FAILED_BEFORE_LLM;
	case FP_STAGE_PROVIDER: return ZERO_YIELD_PROVIDER_ERROR;
	case FP_STAGE_PARSE: return ZERO_YIELD_PARSE_FAILED;
	case FP_STAGE_APPLY: return ZERO_YIELD_DELIVERABLES_FAILED;
	case FP_STAGE_CHECK: return ZERO_YIELD_CHECK_FAILED;
	case FP_STAGE_DONE: return ZERO_YIELD_SUCCESS_NO_LLM_CALLS;
	case FP_STAGE_UNKNOWN: break;
	}
	if (fp_before_llm_text(y->output))
		return ZERO_YIELD_FAILED_BEFORE_LLM;
	if (y->has_rc && y->rc != 0)
		return ZERO_YIELD_EXECUTION_ERROR;
	return ZERO_YIELD_UNKNOWN;
}

/* Name a fingerprint by the hex digits of its hash. */
void fp_id(const char *fingerprint, char out[FP_ID_LEN + 1])
{
	snprintf(out, FP_ID_LEN + 1, "%012llx", (unsigned long long)(str_hash(fingerprint) >> 16));
}

/* Whether `name` is the fingerprint or a prefix of its id. */
bool fp_id_matches(const char *fingerprint, const char *name)
{
	char id[FP_ID_LEN + 1];
	size_t n = strlen(name);

	if (strcmp(fingerprint, name) == 0)
		return true;
	if (n < 6 || n > FP_ID_LEN || strspn(name, "0123456789abcdefABCDEF") != n)
		return false;
	fp_id(fingerprint, id);
	return strncasecmp(id, name, n) == 0;
}
