/* A quick reader of the JSON a plan's runs are usually written in (store_plan_json.c), in
 * front of jansson's, which reads everything else and words every error. */
#ifndef AUTOPACK_STORE_PLAN_JSON_H
#define AUTOPACK_STORE_PLAN_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Parse text[0..len) into the value json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)
 * makes of it, when it holds only objects, arrays, strings without escapes, integers of at
 * most 18 digits, true, false and null; NULL when it holds anything else or is not valid
 * JSON, for jansson to read it or say what is wrong. */
json_t *plan_json_parse(const char *text, size_t len);
/* Parse the one value text[0..len) starts with (white space before it skipped) as
 * plan_json_parse does, and the bytes it took in *used; what follows it is not read. NULL
 * as for plan_json_parse (what follows a number or a word ends it only when it cannot
 * continue them). */
json_t *plan_json_parse_prefix(const char *text, size_t len, size_t *used);

#endif
