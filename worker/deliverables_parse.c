/* Parsing the model's text into deliverable files. */
#include "worker/deliverables.h"
#include "common/util.h"

#include <ctype.h>
#include <stdbool.h>
#include <jansson.h>
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

/* Parse `len` bytes as JSON; NULL unless it is an object holding "files". */
static json_t *dlv_try_json(const char *s, size_t len)
{
	json_error_t jerr;
	json_t *root = json_loadb(s, len, JSON_ALLOW_NUL, &jerr);

	if (root != NULL && (!json_is_object(root) || json_object_get(root, "files") == NULL)) {
		json_decref(root);
		root = NULL;
	}
	return root;
}

/* Find the files document: the whole text, a ```json fence, any fence, or the span from
 * the first '{' to the last '}'. */
static json_t *dlv_find_document(const char *text)
{
	const char *p, *open, *close, *body;
	json_t *root;
	int pass;

	root = dlv_try_json(text, strlen(text));
	if (root != NULL)
		return root;
	for (pass = 0; pass < 2; pass++) {
		for (p = text; (open = strstr(p, "```")) != NULL; p = close + 3) {
			const char *tag = open + 3;
			body = strchr(tag, '\n');
			if (body == NULL)
				return NULL;
			close = strstr(body, "```");
			if (close == NULL)
				close = body + strlen(body);
			if (pass == 1 || strncmp(tag, "json", 4) == 0) {
				root = dlv_try_json(body + 1, (size_t)(close - body - 1));
				if (root != NULL)
					return root;
			}
			if (*close == '\0')
				break;
		}
	}
	open = strchr(text, '{');
	close = strrchr(text, '}');
	if (open != NULL && close != NULL && close > open)
		return dlv_try_json(open, (size_t)(close - open + 1));
	return NULL;
}

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

/* Fill one file from entry `i` of the files array. Returns 0 or -1 with `err`. */
static int dlv_file_parse(json_t *e, size_t i, struct dlv_file *f, char *err, size_t errlen)
{
	json_t *path = json_object_get(e, "path");
	json_t *mode = json_object_get(e, "mode");
	json_t *content = json_object_get(e, "new_content");
	int m = DLV_CREATE;

	if (!json_is_object(e)) {
		snprintf(err, errlen, "files[%zu]: expected an object", i);
		return -1;
	}
	if (!json_is_string(path) || json_string_length(path) == 0) {
		snprintf(err, errlen, "files[%zu].path: missing or not a non-empty string", i);
		return -1;
	}
	if (strlen(json_string_value(path)) != json_string_length(path)) {
		snprintf(err, errlen, "files[%zu].path: contains a NUL character", i);
		return -1;
	}
	if (mode != NULL && !json_is_null(mode)) {
		if (!json_is_string(mode) || (m = dlv_mode_parse(json_string_value(mode))) < 0) {
			snprintf(
			    err, errlen, "files[%zu].mode: expected create, modify or delete", i);
			return -1;
		}
	}
	if (content == NULL)
		content = json_object_get(e, "content");
	if (m != DLV_DELETE && !json_is_string(content)) {
		snprintf(err, errlen, "files[%zu].new_content: missing or not a string (path %s)",
		    i, json_string_value(path));
		return -1;
	}
	f->path = xstrdup(json_string_value(path));
	f->mode = (enum dlv_mode)m;
	if (m != DLV_DELETE) {
		f->content_len = json_string_length(content);
		f->content = xmalloc(f->content_len + 1);
		memcpy(f->content, json_string_value(content), f->content_len);
		f->content[f->content_len] = '\0';
	}
	return 0;
}

int dlv_parse(const char *text, struct dlv_set *out, char *err, size_t errlen)
{
	json_t *root, *files;
	size_t i, j;

	out->files = NULL;
	out->n = 0;
	root = dlv_find_document(text != NULL ? text : "");
	if (root == NULL) {
		snprintf(err, errlen,
		    "no JSON document with \"files\" found in the response (%zu bytes)",
		    text != NULL ? strlen(text) : 0);
		return DLV_EPARSE;
	}
	files = json_object_get(root, "files");
	if (!json_is_array(files)) {
		snprintf(err, errlen, "files: expected an array");
		goto fail;
	}
	if (json_array_size(files) > DLV_FILES_MAX) {
		snprintf(err, errlen, "files: %zu entries exceed the limit of %d",
		    json_array_size(files), DLV_FILES_MAX);
		goto fail;
	}
	out->files = xcalloc(json_array_size(files) + 1, sizeof *out->files);
	for (i = 0; i < json_array_size(files); i++) {
		if (dlv_file_parse(json_array_get(files, i), i, &out->files[i], err, errlen) < 0)
			goto fail;
		out->n++;
		for (j = 0; j < i; j++) {
			if (strcmp(out->files[j].path, out->files[i].path) == 0) {
				snprintf(err, errlen, "files[%zu].path: %s appears twice", i,
				    out->files[i].path);
				goto fail;
			}
		}
	}
	json_decref(root);
	return DLV_OK;
fail:
	json_decref(root);
	dlv_set_free(out);
	return DLV_EPARSE;
}
