/* JSON text read with its nesting bounded. jansson's parser, json_decref and json_dumps
 * recurse once per level of nesting (jansson allows 2,048), and so do the walks over a
 * parsed value, so a text nested deep enough exhausts a small stack (`ulimit -s 128`) and
 * kills the process. Every JSON text from a file, a peer, a database row or the LLM is
 * read through here instead of json_loads/json_loadb. */
#ifndef AUTOPACK_COMMON_JSONLOAD_H
#define AUTOPACK_COMMON_JSONLOAD_H

#include <jansson.h>
#include <stddef.h>

/* The deepest nesting of objects and arrays read: a plan nests 6 deep, an LLM answer 4. */
#define JSON_NESTING_MAX 64

/* The offset in text[0..len) of the bracket that opens a level of nesting past `max`
 * (brackets inside strings do not count), or `len` when none does. Reads the text once,
 * without recursion; a text that is not JSON still gets an answer, and the parser then
 * says what is wrong with it. */
size_t json_nesting_past(const char *text, size_t len, int max);

/* json_loadb, except that a text nested deeper than JSON_NESTING_MAX is refused before it
 * is parsed: NULL, with err's text "nesting deeper than 64" and its line, column and
 * position those of the bracket that goes past it. */
json_t *json_loadb_bounded(const char *text, size_t len, size_t flags, json_error_t *err);

/* json_loadb_bounded of the string `text`. */
json_t *json_loads_bounded(const char *text, size_t flags, json_error_t *err);

/* The name of a JSON value's type for messages: object, array, string, integer, number,
 * boolean or null. */
const char *json_kind_name(const json_t *v);

#endif
