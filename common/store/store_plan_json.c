/* A quick reader of the JSON a plan's runs are usually written in. jansson reads a byte at
 * a time through a callback and copies every string a byte at a time; this reader takes
 * the common forms straight from the text and gives up on anything else (escapes, real
 * numbers, long integers, duplicate keys, nesting past JSON_NESTING_MAX, errors), which
 * jansson then reads (json_loadb_bounded), so values and
 * messages are jansson's either way. */
#include "common/store/store_plan_json.h"
#include "common/jsonload.h"
#include "common/utf8.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The reader's position in the text. */
struct pj {
	const char *p, *end;
	int depth;
};

static json_t *pj_value(struct pj *j);

/* Skip white space. */
static void pj_space(struct pj *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

/* The bytes that stop the walk over a string's text: the quote, the backslash, control
 * characters, and bytes past ASCII (which are checked as UTF-8). */
static const bool pj_stop[256] = {
	[0 ... 0x1f] = true,
	['"'] = true,
	['\\'] = true,
	[0x80 ... 0xff] = true,
};

/* Take a string without escapes (the quote is next): its bytes in *s, *n; false when it
 * has an escape, a control character or invalid UTF-8, or does not end. */
static bool pj_string(struct pj *j, const char **s, size_t *n)
{
	const char *q = j->p + 1;
	bool high = false;

	for (;;) {
		while (q < j->end && !pj_stop[(unsigned char)*q])
			q++;
		if (q >= j->end)
			return false;
		if (*q == '"')
			break;
		if ((unsigned char)*q < 0x80)
			return false;
		high = true;
		q++;
	}
	*s = j->p + 1;
	*n = (size_t)(q - *s);
	if (high && utf8_check(*s, *n) != *n)
		return false;
	j->p = q + 1;
	return true;
}

/* The keys an object's first members have, checked for a duplicate by comparing them
 * (jansson's look-up hashes the key); past these, jansson looks each key up. */
#define PJ_KEYS_SEEN 16

/* Whether the key key[0..n) is among the object's keys already taken (`seen`, `nseen` of
 * them, the first in `keys`). */
static bool pj_key_taken(const json_t *o, const char *key, size_t n, const char *const *keys,
    const size_t *lens, size_t nseen)
{
	if (nseen > PJ_KEYS_SEEN)
		return json_object_getn(o, key, n) != NULL;
	for (size_t i = 0; i < nseen; i++)
		if (lens[i] == n && memcmp(keys[i], key, n) == 0)
			return true;
	return false;
}

/* Take an object (the brace is next). */
static json_t *pj_object(struct pj *j)
{
	json_t *o = json_object(), *v;
	const char *key, *keys[PJ_KEYS_SEEN];
	size_t n, lens[PJ_KEYS_SEEN], nseen = 0;

	j->p++;
	pj_space(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return o;
	}
	for (;;) {
		if (j->p >= j->end || *j->p != '"' || !pj_string(j, &key, &n) ||
		    pj_key_taken(o, key, n, keys, lens, nseen))
			break;
		if (nseen < PJ_KEYS_SEEN) {
			keys[nseen] = key;
			lens[nseen] = n;
		}
		nseen++;
		pj_space(j);
		if (j->p >= j->end || *j->p != ':')
			break;
		j->p++;
		if ((v = pj_value(j)) == NULL || json_object_setn_new_nocheck(o, key, n, v) != 0)
			break;
		pj_space(j);
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return o;
		}
		if (j->p >= j->end || *j->p != ',')
			break;
		j->p++;
		pj_space(j);
	}
	json_decref(o);
	return NULL;
}

/* Take an array (the bracket is next). */
static json_t *pj_array(struct pj *j)
{
	json_t *a = json_array(), *v;

	j->p++;
	pj_space(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return a;
	}
	for (;;) {
		if ((v = pj_value(j)) == NULL || json_array_append_new(a, v) != 0)
			break;
		pj_space(j);
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return a;
		}
		if (j->p >= j->end || *j->p != ',')
			break;
		j->p++;
	}
	json_decref(a);
	return NULL;
}

/* Take an integer of at most 18 digits, without a fraction or an exponent (a longer one is
 * the full parser's: a 19th digit is not added, as it could overflow). */
static json_t *pj_integer(struct pj *j)
{
	const char *q = j->p;
	bool neg = q < j->end && *q == '-';
	int64_t v = 0;
	size_t digits = 0;

	q += neg;
	while (q < j->end && *q >= '0' && *q <= '9' && digits < 18) {
		v = v * 10 + (*q - '0');
		q++;
		digits++;
	}
	if (digits == 0 || (digits > 1 && q[-(ptrdiff_t)digits] == '0'))
		return NULL;
	if (q < j->end && (*q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9')))
		return NULL;
	j->p = q;
	return json_integer(neg ? -v : v);
}

/* Take `word` (true, false, null), not followed by more of a word. */
static bool pj_word(struct pj *j, const char *word, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return false;
	if (j->p + n < j->end &&
	    ((j->p[n] >= 'a' && j->p[n] <= 'z') || (j->p[n] >= 'A' && j->p[n] <= 'Z') ||
	        (j->p[n] >= '0' && j->p[n] <= '9') || j->p[n] == '_'))
		return false;
	j->p += n;
	return true;
}

/* Take one value. */
static json_t *pj_value(struct pj *j)
{
	const char *s;
	json_t *v = NULL;
	size_t n;

	pj_space(j);
	if (j->p >= j->end || ++j->depth > JSON_NESTING_MAX)
		return NULL;
	switch (*j->p) {
	case '{': v = pj_object(j); break;
	case '[': v = pj_array(j); break;
	case '"':
		if (pj_string(j, &s, &n))
			v = json_stringn_nocheck(s, n);
		break;
	case 't': v = pj_word(j, "true", 4) ? json_true() : NULL; break;
	case 'f': v = pj_word(j, "false", 5) ? json_false() : NULL; break;
	case 'n': v = pj_word(j, "null", 4) ? json_null() : NULL; break;
	default: v = pj_integer(j); break;
	}
	j->depth--;
	return v;
}

json_t *plan_json_parse_prefix(const char *text, size_t len, size_t *used)
{
	struct pj j = { text, text + len, 0 };
	json_t *v = pj_value(&j);

	*used = (size_t)(j.p - text);
	return v;
}

json_t *plan_json_parse(const char *text, size_t len)
{
	struct pj j = { text, text + len, 0 };
	json_t *v = pj_value(&j);

	pj_space(&j);
	if (v != NULL && j.p != j.end) {
		json_decref(v);
		v = NULL;
	}
	return v;
}
