/* A growable NUL-terminated string. A zeroed strbuf is empty and ready; free `s` when
 * done. Allocation failure aborts (common/util.h). */
#ifndef AUTOPACK_STRBUF_H
#define AUTOPACK_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *s;
	size_t len;
	size_t cap;
};

/* Append n bytes of p. */
void strbuf_put(struct strbuf *b, const char *p, size_t n);
/* Append a C string. */
void strbuf_puts(struct strbuf *b, const char *s);
/* Append formatted text. */
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
