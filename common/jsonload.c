/* JSON text read with its nesting bounded (see jsonload.h). */
#include "common/jsonload.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

size_t json_nesting_past(const char *text, size_t len, int max)
{
	int depth = 0;

	for (size_t i = 0; i < len; i++) {
		switch (text[i]) {
		case '"':
			/* Skip the string: a backslash takes the byte after it. */
			for (i++; i < len && text[i] != '"'; i++)
				if (text[i] == '\\')
					i++;
			break;
		case '{':
		case '[':
			if (++depth > max)
				return i;
			break;
		case '}':
		case ']': depth--; break;
		default: break;
		}
	}
	return len;
}

json_t *json_loadb_bounded(const char *text, size_t len, size_t flags, json_error_t *err)
{
	size_t at = json_nesting_past(text, len, JSON_NESTING_MAX), line = 1, col = 1;
	json_error_t ignored;

	if (at == len)
		return json_loadb(text, len, flags, err);
	if (err == NULL)
		err = &ignored;
	for (size_t i = 0; i < at; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	memset(err, 0, sizeof *err);
	err->line = (int)(line < (size_t)INT32_MAX ? line : INT32_MAX);
	err->column = (int)(col < (size_t)INT32_MAX ? col : INT32_MAX);
	err->position = (int)(at + 1 < (size_t)INT32_MAX ? at + 1 : INT32_MAX);
	strlcpy_ap(err->source, "<buffer>", sizeof err->source);
	snprintf(err->text, sizeof err->text, "nesting deeper than %d", JSON_NESTING_MAX);
	return NULL;
}

json_t *json_loads_bounded(const char *text, size_t flags, json_error_t *err)
{
	return json_loadb_bounded(text, strlen(text), flags, err);
}

const char *json_kind_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "value";
}
