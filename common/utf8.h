/* UTF-8 checks: every string in a frame and in a JSON log line must be valid UTF-8, so text
 * of unknown origin (LLM output, subprocess output, a database's ids) is checked or
 * cleaned first. */
#ifndef AUTOPACK_COMMON_UTF8_H
#define AUTOPACK_COMMON_UTF8_H

#include <stddef.h>

#include "common/strbuf.h"

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

/* Append the n bytes at s (NUL bytes included) to b as a terminal can show them without
 * obeying them: valid UTF-8 is kept, except that the C0 controls, DEL and the C1 controls
 * (U+0080 to U+009F) become \t, \n, \r, \e or \xNN (one \xNN per byte), and every byte
 * that starts no valid UTF-8 sequence becomes \xNN. A backslash is kept as it is. */
void utf8_escape(struct strbuf *b, const char *s, size_t n);

/* Copy the string s into dst of size n (n >= 1) with each newline written as \\n and each
 * carriage return as \\r, cut after at most n - 1 bytes, never inside an escape nor
 * inside a character (a reader of UTF-8 drops a text that ends in part of one): a value
 * of unknown origin (an id given as an argument, a plan's path) quoted inside a message,
 * whose newline would otherwise start a line of its own and read as another message. What else a terminal must not obey is escaped where the message is
 * shown (utf8_escape). Returns dst. */
char *utf8_one_line(char *dst, const char *s, size_t n);

#endif
