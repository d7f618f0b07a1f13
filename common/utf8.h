/* UTF-8 checks: every string in a frame and in a JSON log line must be valid UTF-8, so text
 * of unknown origin (LLM output, subprocess output, a database's ids) is checked or
 * cleaned first. */
#ifndef AUTOPACK_COMMON_UTF8_H
#define AUTOPACK_COMMON_UTF8_H

#include <stddef.h>

/* Offset of the first byte of s[0..n) that does not start a valid UTF-8 sequence, or n if
 * the whole of it is valid. Overlong forms, surrogates and code points past U+10FFFF are
 * invalid. */
size_t utf8_check(const void *s, size_t n);

/* Offset of the first byte of the string s that does not start a valid UTF-8 sequence,
 * or -1 when the whole of it is valid. */
long utf8_bad(const char *s);

/* A heap copy of s of at most max_bytes bytes (plus the NUL), cut at a character boundary,
 * with every invalid byte replaced by U+FFFD. Never fails (aborts on out of memory). */
char *utf8_clean(const char *s, size_t max_bytes);

#endif
