/* Parsing the model's text into deliverable files. */
#include "worker/deliverables.h"
#include "common/util.h"
#include "worker/jspan.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dlv_set_free(struct dlv_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->files[i].path);
		free(s->files[i].content);
	}
	free(s->files);
	s->files = NULL;
	s->n = 0;
}

/* Copy a relative path without "./" components, repeated slashes or a trailing slash. */
static char *dlv_path_plain(const char *path)
{
	char *out = xmalloc(strlen(path) + 1);
	size_t len = 0;

	for (const char *p = path; *p != '\0';) {
		size_t n = strcspn(p, "/");

		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (len > 0)
				out[len++] = '/';
			memcpy(out + len, p, n);
			len += n;
		}
		p += n;
		p += strspn(p, "/");
	}
	out[len] = '\0';
	return out;
}

size_t dlv_count_written(const struct dlv_set *set, char *const *deliverables, size_t n)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		char *want = dlv_path_plain(deliverables[i]);

		for (size_t j = 0; j < set->n; j++) {
			char *got;
			bool same;

			if (set->files[j].mode == DLV_DELETE)
				continue;
			got = dlv_path_plain(set->files[j].path);
			same = strcmp(got, want) == 0;
			free(got);
			if (same) {
				count++;
				break;
			}
		}
		free(want);
	}
	return count;
}

/* Why the answer holds no files document, when a candidate meant to be one is not JSON:
 * the first candidate that starts as JSON and names "files" but stops being JSON. */
struct dlv_bad_json {
	bool found;
	size_t at; /* offset in the whole answer */
	char why[JSPAN_WHY_MAX];
};

/* Check `len` bytes at s, part of the answer `text`, as a JSON document (json_loadb's
 * rules with JSON_ALLOW_NUL, see worker/jspan.h); true with *root set when it is an
 * object holding "files". When it is not JSON, though it starts as JSON and names
 * "files", the first such failure is kept in *bad. */
static bool dlv_try_json(
    const char *text, const char *s, size_t len, struct jspan *root, struct dlv_bad_json *bad)
{
	static const char name[] = "\"files\"";
	struct jspan files;
	struct jspan_err e;

	if (jspan_check(s, len, JSPAN_ALLOW_NUL, root, &e) != 0) {
		if (!bad->found && !e.at_start && memmem(s, len, name, sizeof name - 1) != NULL) {
			bad->found = true;
			bad->at = (size_t)(s - text) + e.at;
			strlcpy_ap(bad->why, e.why, sizeof bad->why);
		}
		return false;
	}
	return jspan_is_object(*root) && jspan_member(*root, "files", &files);
}

/* Find the files document: the whole text, a ```json fence, any fence, or the span from
 * the first '{' to the last '}'. Returns false when none is one (*bad then says why, when
 * one meant to be is not JSON). */
static bool dlv_find_document(const char *text, struct jspan *root, struct dlv_bad_json *bad)
{
	const char *p, *open, *close, *body;
	int pass;

	if (dlv_try_json(text, text, strlen(text), root, bad))
		return true;
	for (pass = 0; pass < 2; pass++) {
		for (p = text; (open = strstr(p, "```")) != NULL; p = close + 3) {
			const char *tag = open + 3;
			body = strchr(tag, '\n');
			if (body == NULL)
				return false;
			close = strstr(body, "```");
			if (close == NULL)
				close = body + strlen(body);
			if (pass == 1 || strncmp(tag, "json", 4) == 0) {
				if (dlv_try_json(
				        text, body + 1, (size_t)(close - body - 1), root, bad))
					return true;
			}
			if (*close == '\0')
				break;
		}
	}
	open = strchr(text, '{');
	close = strrchr(text, '}');
	return open != NULL && close != NULL && close > open &&
	    dlv_try_json(text, open, (size_t)(close - open + 1), root, bad);
}

/* The most of a path a message quotes: its start and end, the middle left out, so that
 * what is wrong with it still fits the caller's message. */
#define DLV_PARSE_PATH_SHOWN 160

/* Parse a mode name; -1 when unknown. */
static int dlv_mode_parse(const char *s)
{
	if (strcmp(s, "create") == 0)
		return DLV_CREATE;
	if (strcmp(s, "modify") == 0 || strcmp(s, "update") == 0 || strcmp(s, "replace") == 0)
		return DLV_MODIFY;
	if (strcmp(s, "delete") == 0)
		return DLV_DELETE;
	return -1;
}

/* Fill one file from entry `i` of the files array, its members found in one pass.
 * Returns 0 or -1 with `err`. */
static int dlv_file_parse(struct jspan e, size_t i, struct dlv_file *f, char *err, size_t errlen)
{
	static const char *const keys[] = { "path", "mode", "new_content", "content" };
	struct jspan v[4], path, mode, content;
	bool has_mode, has_content;
	unsigned got;
	char *path_s = NULL, shown[DLV_PARSE_PATH_SHOWN];
	size_t path_len = 0;
	int m = DLV_CREATE;

	if (!jspan_is_object(e)) {
		snprintf(err, errlen, "files[%zu]: expected an object", i);
		return -1;
	}
	got = jspan_members(e, keys, 4, v);
	path = v[0];
	mode = v[1];
	if ((got & 1) != 0)
		path_s = jspan_str(path, &path_len);
	if (path_s == NULL || path_len == 0) {
		snprintf(err, errlen, "files[%zu].path: missing or not a non-empty string", i);
		free(path_s);
		return -1;
	}
	if (strlen(path_s) != path_len) {
		snprintf(err, errlen, "files[%zu].path: contains a NUL character", i);
		free(path_s);
		return -1;
	}
	has_mode = (got & 2) != 0;
	if (has_mode && !jspan_is_null(mode)) {
		char *mode_s = jspan_str(mode, NULL);

		m = mode_s != NULL ? dlv_mode_parse(mode_s) : -1;
		free(mode_s);
		if (m < 0) {
			snprintf(
			    err, errlen, "files[%zu].mode: expected create, modify or delete", i);
			free(path_s);
			return -1;
		}
	}
	/* new_content, else content */
	has_content = (got & (4 | 8)) != 0;
	if (has_content)
		content = (got & 4) != 0 ? v[2] : v[3];
	if (m != DLV_DELETE && !(has_content && jspan_is_string(content))) {
		snprintf(err, errlen, "files[%zu].new_content: missing or not a string (path %s)",
		    i, str_elide(shown, path_s, sizeof shown));
		free(path_s);
		return -1;
	}
	f->path = path_s;
	f->mode = (enum dlv_mode)m;
	if (m != DLV_DELETE)
		f->content = jspan_str(content, &f->content_len);
	return 0;
}

int dlv_parse(const char *text, struct dlv_set *out, char *err, size_t errlen)
{
	char shown[DLV_PARSE_PATH_SHOWN];
	struct jspan root, files, it = { 0 }, e;
	struct dlv_bad_json bad = { .found = false };
	size_t i, j, n = 0;

	out->files = NULL;
	out->n = 0;
	if (!dlv_find_document(text != NULL ? text : "", &root, &bad)) {
		if (bad.found) {
			snprintf(err, errlen,
			    "the answer's JSON is invalid at byte %zu of the response (%zu bytes): %s",
			    bad.at, strlen(text), bad.why);
			return DLV_EPARSE;
		}
		snprintf(err, errlen,
		    "no JSON document with \"files\" found in the response (%zu bytes)",
		    text != NULL ? strlen(text) : 0);
		return DLV_EPARSE;
	}
	jspan_member(root, "files", &files);
	if (!jspan_is_array(files)) {
		snprintf(err, errlen, "files: expected an array");
		return DLV_EPARSE;
	}
	while (jspan_next(files, &it, &e))
		n++;
	if (n > DLV_FILES_MAX) {
		snprintf(
		    err, errlen, "files: %zu entries exceed the limit of %d", n, DLV_FILES_MAX);
		return DLV_EPARSE;
	}
	out->files = xcalloc(n + 1, sizeof *out->files);
	memset(&it, 0, sizeof it);
	for (i = 0; jspan_next(files, &it, &e); i++) {
		if (dlv_file_parse(e, i, &out->files[i], err, errlen) < 0)
			goto fail;
		out->n++;
		for (j = 0; j < i; j++) {
			if (strcmp(out->files[j].path, out->files[i].path) == 0) {
				snprintf(err, errlen, "files[%zu].path: %s appears twice", i,
				    str_elide(shown, out->files[i].path, sizeof shown));
				goto fail;
			}
		}
	}
	return DLV_OK;
fail:
	dlv_set_free(out);
	return DLV_EPARSE;
}
