/* Reading a phase's scope in every shape the original stores. */
#include "common/store/store_scope.h"
#include "common/jsonload.h"
#include "common/strtab.h"
#include "common/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Double-encoded scopes are decoded at most this many times. */
#define SCOPE_DECODE_MAX 3
/* A bare (non-JSON) text longer than this is not taken for a path. */
#define SCOPE_BARE_PATH_MAX 4096
/* A list of fewer paths is searched path by path; from this many on, through its hash
 * table. */
#define SCOPE_LIST_HASHED 8

/* The slots a list of n paths has room for (its NULL too): a power of two, 4 or more. */
static size_t scope_list_room(size_t n)
{
	size_t room = 4;

	while (room < n + 1)
		room *= 2;
	return room;
}

/* Append `path` (found at `where`) unless the list holds it already: a short list is
 * searched path by path, a longer one through its table. The path and its place are one
 * allocation, the path first. */
static void scope_list_add(struct store_scope_list *l, const char *path, const char *where)
{
	size_t lp = strlen(path), lw = strlen(where);
	bool added;
	char *both;

	if (l->index == NULL)
		for (size_t k = 0; k < l->n; k++)
			if (strcmp(l->items[k], path) == 0)
				return;
	both = xmalloc(lp + lw + 2);
	memcpy(both, path, lp + 1);
	memcpy(both + lp + 1, where, lw + 1);
	if (l->index != NULL) {
		strtab_add(l->index, both, &added);
		if (!added) {
			free(both);
			return;
		}
	}
	if (l->n == 0 || scope_list_room(l->n + 1) > scope_list_room(l->n)) {
		l->items = xrealloc(l->items, scope_list_room(l->n + 1) * sizeof *l->items);
		l->where = xrealloc(l->where, scope_list_room(l->n + 1) * sizeof *l->where);
	}
	l->items[l->n] = both;
	l->where[l->n] = both + lp + 1;
	l->n++;
	l->items[l->n] = NULL;
	l->where[l->n] = NULL;
	if (l->index == NULL && l->n >= SCOPE_LIST_HASHED) {
		l->index = xmalloc(sizeof *l->index);
		strtab_init(l->index, 2 * l->n, false);
		for (size_t k = 0; k < l->n; k++)
			strtab_add(l->index, l->items[k], NULL);
	}
}

/* Free a list. */
static void scope_list_free(struct store_scope_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	free(l->where);
	if (l->index != NULL)
		strtab_free(l->index);
	free(l->index);
	memset(l, 0, sizeof *l);
}

/* Free a parsed scope and clear it. */
void store_scope_free(struct store_scope *sc)
{
	scope_list_free(&sc->paths);
	scope_list_free(&sc->context);
	scope_list_free(&sc->deliverables);
	memset(sc, 0, sizeof *sc);
}

/* Name a scope form for reports. */
const char *store_scope_form_name(enum store_scope_form form)
{
	switch (form) {
	case STORE_SCOPE_NONE: return "none";
	case STORE_SCOPE_OBJECT: return "object";
	case STORE_SCOPE_ENCODED: return "encoded";
	case STORE_SCOPE_PATH: return "path";
	}
	return "?";
}

/* Return true if `s` (len bytes) can be a single path: non-empty, one line, no spaces,
 * none of the characters a JSON document starts with. */
static bool scope_is_path(const char *s, size_t len)
{
	if (len == 0 || len > SCOPE_BARE_PATH_MAX || strlen(s) != len)
		return false;
	if (strchr("{[\"", s[0]) != NULL)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

/* Add a string path to `l`, refusing other values and empty strings. */
static int scope_add_string(
    struct store_scope_list *l, const json_t *v, const char *where, char *why, size_t whylen)
{
	if (!json_is_string(v))
		return errbuf_fail(why, whylen, "%s: expected a path string", where);
	if (json_string_length(v) == 0 || strlen(json_string_value(v)) != json_string_length(v))
		return errbuf_fail(why, whylen, "%s: expected a non-empty path", where);
	scope_list_add(l, json_string_value(v), where);
	return 0;
}

/* Write "<where>[<i>]<then>" into out (n bytes), cut to fit: what snprintf would write,
 * without its cost, paid for every path of every phase imported. */
static void scope_label(char *out, size_t n, const char *where, size_t i, const char *then)
{
	char digits[24];
	size_t nd = 0, len = 0;

	do
		digits[nd++] = (char)('0' + i % 10);
	while ((i /= 10) != 0);
	for (const char *p = where; *p != '\0' && len + 1 < n; p++)
		out[len++] = *p;
	if (len + 1 < n)
		out[len++] = '[';
	while (nd > 0 && len + 1 < n)
		out[len++] = digits[--nd];
	if (len + 1 < n)
		out[len++] = ']';
	for (const char *p = then; *p != '\0' && len + 1 < n; p++)
		out[len++] = *p;
	out[len] = '\0';
}

/* Add paths from `v`: a string, or an array of strings (arrays nested in it are
 * flattened). */
static int scope_add_paths(
    struct store_scope_list *l, const json_t *v, const char *where, char *why, size_t whylen)
{
	char sub[256];
	json_t *e;
	size_t i;

	if (!json_is_array(v))
		return scope_add_string(l, v, where, why, whylen);
	json_array_foreach(v, i, e)
	{
		scope_label(sub, sizeof sub, where, i, "");
		if (scope_add_paths(l, e, sub, why, whylen) != 0)
			return -1;
	}
	return 0;
}

/* Read read_only_context: strings, or objects naming a "path". */
static int scope_add_context(struct store_scope_list *l, const json_t *v, char *why, size_t whylen)
{
	char sub[256];
	json_t *e;
	size_t i;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return scope_add_string(l, v, "read_only_context", why, whylen);
	json_array_foreach(v, i, e)
	{
		if (json_is_object(e)) {
			scope_label(sub, sizeof sub, "read_only_context", i, ".path");
			e = json_object_get(e, "path");
		} else {
			scope_label(sub, sizeof sub, "read_only_context", i, "");
		}
		if (scope_add_string(l, e, sub, why, whylen) != 0)
			return -1;
	}
	return 0;
}

/* Read deliverables: a list, or an object of buckets whose lists are joined. */
static int scope_add_deliverables(struct store_scope *sc, const json_t *v, char *why, size_t whylen)
{
	char sub[256];
	const char *key;
	json_t *e;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return scope_add_paths(&sc->deliverables, v, "deliverables", why, whylen);
	sc->buckets = true;
	json_object_foreach((json_t *)v, key, e)
	{
		snprintf(sub, sizeof sub, "deliverables.%.60s", key);
		if (json_is_null(e))
			continue;
		if (scope_add_paths(&sc->deliverables, e, sub, why, whylen) != 0)
			return -1;
	}
	return 0;
}

/* Read a scope object. */
static int scope_parse_object(struct store_scope *sc, const json_t *o, char *why, size_t whylen)
{
	const json_t *paths = json_object_get(o, "paths");

	if (paths != NULL && !json_is_null(paths) &&
	    scope_add_paths(&sc->paths, paths, "paths", why, whylen) != 0)
		return -1;
	if (scope_add_context(&sc->context, json_object_get(o, "read_only_context"), why, whylen) !=
	    0)
		return -1;
	return scope_add_deliverables(sc, json_object_get(o, "deliverables"), why, whylen);
}

/* Read a single path: a file is the scope and the one deliverable, a directory
 * ("dir/") only the scope. */
static void scope_single_path(struct store_scope *sc, const char *path)
{
	size_t n = strlen(path);

	sc->form = STORE_SCOPE_PATH;
	scope_list_add(&sc->paths, path, "scope");
	if (path[n - 1] != '/')
		scope_list_add(&sc->deliverables, path, "scope");
}

/* Read a scope value, decoding JSON strings that hold one. */
static int scope_parse_value(
    struct store_scope *sc, const json_t *v, int depth, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *inner;
	const char *s;
	size_t len;
	int rc;

	if (v == NULL || json_is_null(v)) {
		if (depth > 0)
			return errbuf_fail(why, whylen, "a JSON string holding null");
		sc->form = STORE_SCOPE_NONE;
		return 0;
	}
	if (json_is_object(v)) {
		sc->form = depth > 0 ? STORE_SCOPE_ENCODED : STORE_SCOPE_OBJECT;
		return scope_parse_object(sc, v, why, whylen);
	}
	if (!json_is_string(v))
		return errbuf_fail(why, whylen, "a JSON %s, not a scope object or a path",
		    json_is_array(v)      ? "array" :
		        json_is_number(v) ? "number" :
		                            "boolean");
	s = json_string_value(v);
	len = json_string_length(v);
	inner = json_loadb_bounded(s, len, JSON_DECODE_ANY, &jerr);
	if (inner == NULL || json_is_number(inner)) {
		char shown[61];

		json_decref(inner);
		if (scope_is_path(s, len)) {
			scope_single_path(sc, s);
			return 0;
		}
		return errbuf_fail(why, whylen,
		    "a string that is neither a path nor JSON (\"%s%s\")",
		    utf8_one_line(shown, s, sizeof shown), len > 60 ? "..." : "");
	}
	if (depth + 1 >= SCOPE_DECODE_MAX) {
		json_decref(inner);
		return errbuf_fail(
		    why, whylen, "JSON encoded more than %d times", SCOPE_DECODE_MAX);
	}
	rc = scope_parse_value(sc, inner, depth + 1, why, whylen);
	json_decref(inner);
	return rc;
}

/* Read a scope given as JSON; -1 with `why` when it cannot be interpreted. */
int store_scope_parse_json(const json_t *v, struct store_scope *sc, char *why, size_t whylen)
{
	memset(sc, 0, sizeof *sc);
	if (scope_parse_value(sc, v, 0, why, whylen) == 0)
		return 0;
	store_scope_free(sc);
	return -1;
}

/* Skip JSON whitespace. */
static const char *scope_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* The string at p (after its opening quote) when it is printable ASCII without escapes:
 * its length, and *end after its closing quote; -1 otherwise. */
static long scope_plain_str(const char *p, const char **end)
{
	const char *q = p;

	while (*q >= 0x20 && *q < 0x7f && *q != '"' && *q != '\\')
		q++;
	if (*q != '"')
		return -1;
	*end = q + 1;
	return q - p;
}

/* Write "I]" at `at`, I in decimal, NUL-terminated (at most 22 bytes). */
static void scope_index_put(char *at, size_t i)
{
	char digits[20];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + i % 10);
		i /= 10;
	} while (i > 0);
	while (n > 0)
		*at++ = digits[--n];
	*at++ = ']';
	*at = '\0';
}

/* Read the array of plain strings at p into `l`, each found at "key[i]", as
 * scope_add_paths would; NULL (nothing added for sure) when it is not one. */
static const char *scope_fast_list(struct store_scope_list *l, const char *key, const char *p)
{
	char where[64], path[SCOPE_BARE_PATH_MAX + 1];
	size_t i = 0, klen = strlen(key);

	/* "key[" once; each item puts its index after it. */
	assert(klen + 1 + 22 <= sizeof where);
	memcpy(where, key, klen);
	where[klen] = '[';
	if (*p != '[')
		return NULL;
	p = scope_ws(p + 1);
	if (*p == ']')
		return p + 1;
	for (;; i++) {
		const char *end;
		long n;

		if (*p != '"' || (n = scope_plain_str(p + 1, &end)) <= 0 || n > SCOPE_BARE_PATH_MAX)
			return NULL;
		memcpy(path, p + 1, (size_t)n);
		path[n] = '\0';
		scope_index_put(where + klen + 1, i);
		scope_list_add(l, path, where);
		p = scope_ws(end);
		if (*p == ']')
			return p + 1;
		if (*p != ',')
			return NULL;
		p = scope_ws(p + 1);
	}
}

/* Read the common shape without a JSON tree: an object of "paths", "read_only_context"
 * and "deliverables", each at most once and each an array of non-empty printable-ASCII
 * strings without escapes, read as the full reader would. Returns 0, or 1 (sc cleared)
 * for any other text, which the full reader takes. */
static int scope_fast(const char *text, struct store_scope *sc)
{
	static const char *const keys[] = { "paths", "read_only_context", "deliverables" };
	struct store_scope_list *lists[] = { &sc->paths, &sc->context, &sc->deliverables };
	const char *p = scope_ws(text), *end;
	bool seen[3] = { false, false, false };

	if (*p != '{')
		return 1;
	p = scope_ws(p + 1);
	while (*p != '}') {
		long n;
		int k;

		if (*p != '"' || (n = scope_plain_str(p + 1, &end)) < 0)
			goto other;
		for (k = 0; k < 3; k++)
			if ((size_t)n == strlen(keys[k]) && memcmp(p + 1, keys[k], (size_t)n) == 0)
				break;
		if (k == 3 || seen[k])
			goto other;
		seen[k] = true;
		p = scope_ws(end);
		if (*p != ':')
			goto other;
		p = scope_fast_list(lists[k], keys[k], scope_ws(p + 1));
		if (p == NULL)
			goto other;
		p = scope_ws(p);
		if (*p == ',') {
			p = scope_ws(p + 1);
			if (*p != '"')
				goto other;
		} else if (*p != '}') {
			goto other;
		}
	}
	if (*scope_ws(p + 1) != '\0')
		goto other;
	sc->form = STORE_SCOPE_OBJECT;
	return 0;
other:
	store_scope_free(sc);
	return 1;
}

/* Read the stored text of phases.scope; -1 with `why` when it cannot be interpreted. */
int store_scope_parse_text(const char *text, struct store_scope *sc, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *v;
	int rc;

	memset(sc, 0, sizeof *sc);
	if (text == NULL || scope_fast(text, sc) == 0)
		return 0;
	v = json_loads_bounded(text, JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		char shown[61];

		if (scope_is_path(text, strlen(text))) {
			scope_single_path(sc, text);
			return 0;
		}
		return errbuf_fail(why, whylen, "not JSON and not a path (\"%s%s\")",
		    utf8_one_line(shown, text, sizeof shown), strlen(text) > 60 ? "..." : "");
	}
	rc = store_scope_parse_json(v, sc, why, whylen);
	json_decref(v);
	return rc;
}
