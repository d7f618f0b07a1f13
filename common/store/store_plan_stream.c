/* A plan read as a stream: the top-level object is scanned and each element of its "runs"
 * array is handed out on its own, parsed in place in the plan's text (store_plan_json.c,
 * then jansson for what that leaves) into the stream's arena (store_plan_arena.c), so an import holds one parsed run at a time however
 * large the plan (common/store/store_plan.c writes it) and releases it at once. Positions
 * in messages are those of the whole file, counted only when a message needs one. */
#include "common/store/store_plan_stream.h"
#include "common/jsonload.h"
#include "common/store/store_plan_json.h"
#include "common/utf8.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void plan_stream_init(struct plan_stream *ps, const char *text, size_t len, const char *source)
{
	memset(ps, 0, sizeof *ps);
	ps->text = text;
	ps->text_len = len;
	ps->source = source;
}

void plan_stream_free(struct plan_stream *ps)
{
	json_decref(ps->top);
	plan_arena_free(&ps->arena);
	memset(ps, 0, sizeof *ps);
}

/* The next byte without taking it, or -1 at the end. */
static int ps_peek(const struct plan_stream *ps)
{
	return ps->pos < ps->text_len ? (unsigned char)ps->text[ps->pos] : -1;
}

/* Take the next byte; -1 at the end. */
static int ps_take(struct plan_stream *ps)
{
	int c = ps_peek(ps);

	if (c >= 0)
		ps->pos++;
	return c;
}

/* Skip white space; the next byte, or -1. */
static int ps_skip(struct plan_stream *ps)
{
	int c;

	while ((c = ps_peek(ps)) == ' ' || c == '\t' || c == '\n' || c == '\r')
		ps->pos++;
	return c;
}

/* Find the line and column (from 1, in bytes) of byte `pos` of the text. */
static void ps_where(const struct plan_stream *ps, size_t pos, size_t *line, size_t *col)
{
	const char *p = ps->text, *end = ps->text + pos, *nl;

	*line = 1;
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		(*line)++;
		p = nl + 1;
	}
	*col = (size_t)(end - p) + 1;
}

/* jansson's reason for refusing a text, in the words of a plan's author: a \u0000 in a
 * string is refused naming the character, not the parser's flag that would take it. */
static const char *ps_json_why(const char *text)
{
	if (strstr(text, "JSON_ALLOW_NUL") != NULL)
		return "a string holds \\u0000, the NUL character, which no text of a plan may "
		       "hold";
	return text;
}

/* Fail with the position of the next byte in the file. */
static int ps_fail(struct plan_stream *ps, struct store_err *err, const char *what)
{
	size_t line, col;

	ps_where(ps, ps->pos, &line, &col);
	return store_fail(
	    err, STORE_EINVAL, "%s:%zu:%zu: invalid JSON: %s", ps->source, line, col, what);
}

/* Take a string (the opening quote is next), escapes and all. */
static int ps_string(struct plan_stream *ps, struct store_err *err)
{
	const char *t = ps->text;
	size_t i = ps->pos + 1, n = ps->text_len;

	while (i < n && t[i] != '"')
		i += t[i] == '\\' ? 2 : 1;
	if (i >= n) {
		ps->pos = n;
		return ps_fail(ps, err, "unterminated string");
	}
	ps->pos = i + 1;
	return 0;
}

/* Take one value's bytes (jansson checks them): strings and nesting are followed, so the
 * value ends where it ends. */
static int ps_value(struct plan_stream *ps, struct store_err *err)
{
	size_t depth = 0, start;
	int c, rc;

	ps_skip(ps);
	start = ps->pos;
	do {
		c = ps_peek(ps);
		if (c < 0 && depth == 0 && ps->pos > start)
			return 0;
		if (c < 0)
			return ps_fail(ps, err, "unexpected end of the plan");
		if (c == '"') {
			if ((rc = ps_string(ps, err)) != 0)
				return rc;
			if (depth == 0)
				return 0;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return 0;
			depth--;
		} else if (depth == 0 &&
		    (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
			return 0;
		}
		ps->pos++;
	} while (depth > 0 || (c != '}' && c != ']'));
	return 0;
}

/* Take one value and parse it in place (into the arena when `run`); a syntax error is
 * placed in the file. */
static json_t *ps_read_value(struct plan_stream *ps, bool run, struct store_err *err)
{
	json_error_t jerr;
	size_t start, line, col, used;
	bool bracket;
	json_t *v = NULL;

	ps_skip(ps);
	start = ps->pos;
	bracket = ps_peek(ps) == '{' || ps_peek(ps) == '[';
	if (run)
		plan_arena_use(&ps->arena);
	/* An object or an array ends at its closing bracket, where the scan of its bytes
	 * (ps_value) would end it: the quick reader finds it in its own pass. */
	if (bracket)
		v = plan_json_parse_prefix(ps->text + start, ps->text_len - start, &used);
	if (v != NULL) {
		ps->pos = start + used;
	} else if (ps_value(ps, err) != 0) {
		if (run)
			plan_arena_use(NULL);
		return NULL;
	} else {
		if (!bracket)
			v = plan_json_parse(ps->text + start, ps->pos - start);
		if (v == NULL)
			v = json_loadb_bounded(ps->text + start, ps->pos - start,
			    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	}
	if (run)
		plan_arena_use(NULL);
	if (v == NULL) {
		ps_where(ps, start, &line, &col);
		store_fail(err, STORE_EINVAL, "%s:%zu:%zu: invalid JSON: %s", ps->source,
		    line + (size_t)jerr.line - 1,
		    jerr.line == 1 ? col + (size_t)jerr.column - 1 : (size_t)jerr.column,
		    ps_json_why(jerr.text));
	}
	return v;
}

/* Read the top level up to the first run, or to its end: members other than "runs" go
 * into ps->top. Returns 0 with ps->in_runs set when a run may follow, or an error. */
static int ps_members(struct plan_stream *ps, struct store_err *err)
{
	for (;;) {
		json_t *key, *v;
		int c = ps_skip(ps);

		if (c == '}' && !ps->had_member) {
			ps_take(ps);
			break;
		}
		if (ps->had_member) {
			if (c == '}') {
				ps_take(ps);
				break;
			}
			if (c != ',')
				return ps_fail(ps, err, "',' or '}' expected");
			ps_take(ps);
			c = ps_skip(ps);
		}
		if (c != '"')
			return ps_fail(ps, err, "string or '}' expected");
		if ((key = ps_read_value(ps, false, err)) == NULL)
			return STORE_EINVAL;
		if (ps_skip(ps) != ':') {
			json_decref(key);
			return ps_fail(ps, err, "':' expected");
		}
		ps_take(ps);
		ps->had_member = true;
		if (json_object_get(ps->top, json_string_value(key)) != NULL ||
		    (ps->saw_runs && strcmp(json_string_value(key), "runs") == 0)) {
			char what[160], shown[101];

			snprintf(what, sizeof what, "duplicate object key \"%s\"",
			    utf8_one_line(shown, json_string_value(key), sizeof shown));
			json_decref(key);
			return ps_fail(ps, err, what);
		}
		if (strcmp(json_string_value(key), "runs") == 0 && ps_skip(ps) == '[') {
			json_decref(key);
			ps_take(ps);
			ps->saw_runs = true;
			ps->in_runs = true;
			ps->first_run = true;
			return 0;
		}
		v = ps_read_value(ps, false, err);
		if (v == NULL) {
			json_decref(key);
			return STORE_EINVAL;
		}
		json_object_set_new(ps->top, json_string_value(key), v);
		json_decref(key);
	}
	if (ps_skip(ps) >= 0)
		return ps_fail(ps, err, "end of file expected");
	ps->done = true;
	return 0;
}

int plan_stream_next(struct plan_stream *ps, json_t **run, struct store_err *err)
{
	int c, rc;

	*run = NULL;
	if (ps->top == NULL) {
		ps->top = json_object();
		if (ps_skip(ps) != '{') {
			/* Not an object: jansson says what it is, the checks what is wrong. */
			json_decref(ps->top);
			if ((ps->top = ps_read_value(ps, false, err)) == NULL)
				return STORE_EINVAL;
			if (ps_skip(ps) >= 0)
				return ps_fail(ps, err, "end of file expected");
			ps->done = true;
			return 0;
		}
		ps_take(ps);
		if ((rc = ps_members(ps, err)) != 0)
			return rc;
	}
	while (!ps->done) {
		if (!ps->in_runs) {
			if ((rc = ps_members(ps, err)) != 0)
				return rc;
			continue;
		}
		c = ps_skip(ps);
		if (c == ']') {
			ps_take(ps);
			ps->in_runs = false;
			/* The checks see the array's size, not its runs. */
			json_object_set_new(ps->top, "runs", json_array());
			if (ps->nruns > 0)
				json_array_append_new(
				    json_object_get(ps->top, "runs"), json_null());
			continue;
		}
		if (!ps->first_run) {
			if (c != ',')
				return ps_fail(ps, err, "',' or ']' expected");
			ps_take(ps);
		}
		ps->first_run = false;
		plan_arena_rewind(&ps->arena);
		if ((*run = ps_read_value(ps, true, err)) == NULL)
			return STORE_EINVAL;
		ps->nruns++;
		return 0;
	}
	return 0;
}
