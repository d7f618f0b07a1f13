/* JSON text written by jansson with every real in the shortest form that reads back as the
 * same double: jansson writes each with 17 significant digits (0.95 as
 * 0.94999999999999996), which is exact but not what a reader of the output expects.
 * Everything else (strings, integers, layout, key order) is jansson's own text. */
#ifndef AUTOPACK_COMMON_JSONDUMP_H
#define AUTOPACK_COMMON_JSONDUMP_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* Bytes a real's text needs at most, its NUL included. */
#define JSON_REAL_TEXT_MAX 32

/* Write the finite double v into buf (JSON_REAL_TEXT_MAX bytes) as %.15g, or %.16g, or
 * %.17g: the first that strtod reads back as v, in jansson's form (a ".0" added when
 * there is neither a '.' nor an exponent, so that it reads back as a real; an exponent
 * without '+' or leading zeros). Returns the text's length. */
size_t json_real_text(double v, char *buf);

/* json_dumps with every real written by json_real_text; NULL where json_dumps gives NULL
 * (a text that is not UTF-8, a real that is not finite). The caller frees it. */
char *json_dumps_short(const json_t *j, size_t flags);

/* json_dumpf with every real written by json_real_text; -1 on a write error (errno says
 * which) or where json_dumpf fails, having written part of the text. */
int json_dumpf_short(const json_t *j, FILE *f, size_t flags);

#endif
