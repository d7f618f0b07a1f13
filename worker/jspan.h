/*
 * A JSON document read in place: checked once as a whole, then its values are found as
 * spans of the text and only the ones wanted are decoded. The provider's answer is read
 * this way, with no tree built for it.
 *
 * What is accepted is what jansson's json_loadb(text, len, 0) accepts: an object or an
 * array at the top, whitespace around it and nothing else; strings of valid UTF-8 without
 * raw control characters, with the JSON escapes, \u escapes paired into valid surrogates
 * and never \u0000; integers that fit 64 bits, reals that do not overflow; nesting at most
 * JSPAN_DEPTH_MAX deep (json_loadb_bounded's bound: the check recurses once per level, so a
 * small stack must hold it). A member named twice counts with its last value, as in
 * jansson.
 */
#ifndef AUTOPACK_JSPAN_H
#define AUTOPACK_JSPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jsonload.h"

#define JSPAN_DEPTH_MAX JSON_NESTING_MAX

/* One value: the text from its first byte to just after its last. */
struct jspan {
	const char *p, *end;
};

/* Check the `len` bytes at `text` as a JSON document and set *root to its top value.
 * Returns 0, or -1 with `err` saying where it stops being JSON. */
int jspan_parse(const char *text, size_t len, struct jspan *root, char *err, size_t errlen);

/* The same with `flags`: JSPAN_ALLOW_NUL accepts \u0000 in string values (not in keys),
 * as json_loadb's JSON_ALLOW_NUL does; jspan_str then gives its NUL bytes. `err` says
 * at which byte and why: "at byte 41: a lone surrogate \udc80 (…)". */
#define JSPAN_ALLOW_NUL 1
int jspan_parse_flags(
    const char *text, size_t len, int flags, struct jspan *root, char *err, size_t errlen);

/* Where and why a text stops being JSON. A text that ends inside its document (cut
 * short) is said one way, whatever was expected next. */
#define JSPAN_WHY_MAX 112
#define JSPAN_WHY_ENDS "it ends inside the document"
struct jspan_err {
	size_t at;     /* the offset of the first byte that is wrong */
	bool at_start; /* the text does not start with '[' or '{' (after white space) */
	char why[JSPAN_WHY_MAX];
};

/* jspan_parse_flags with the failure given as *e: 0, or -1 with *e set. */
int jspan_check(const char *text, size_t len, int flags, struct jspan *root, struct jspan_err *e);

/* Whether the value is an object, an array, a string, null. */
bool jspan_is_object(struct jspan v);
bool jspan_is_array(struct jspan v);
bool jspan_is_string(struct jspan v);
bool jspan_is_null(struct jspan v);

/* The value of the member `key` of object `obj` (its last, when named twice). Returns
 * false when `obj` is no object or has no such member. */
bool jspan_member(struct jspan obj, const char *key, struct jspan *out);

/* The values of the members `keys[0..n)` of object `obj`, found in one pass over it (each
 * its last, when named twice): bit i of the result set and out[i] its value when keys[i]
 * is there; 0 when `obj` is no object or n exceeds JSPAN_MEMBERS_MAX. */
#define JSPAN_MEMBERS_MAX 8
unsigned jspan_members(struct jspan obj, const char *const *keys, size_t n, struct jspan *out);

/* Step through an array: *it starts zeroed; each call sets *out to the next element and
 * returns true, or returns false at the end (or when `arr` is no array). */
bool jspan_next(struct jspan arr, struct jspan *it, struct jspan *out);

/* The value as an integer when it is one (no fraction, no exponent), else false. */
bool jspan_int(struct jspan v, int64_t *out);

/* The decoded string (heap, NUL-terminated; *len its length without the NUL when len is
 * not NULL), or NULL when the value is no string. */
char *jspan_str(struct jspan v, size_t *len);

#endif
