#include "proto/path.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KEY_SHOWN_MAX 40

/* Start a path at the message's name. */
void proto_path_init(struct proto_path *p, const char *root)
{
	p->len = 0;
	p->text[0] = '\0';
	proto_path_push_key(p, root, strlen(root));
}

/* Append the text t, cutting it off at the end of the buffer. */
static void append(struct proto_path *p, const char *t)
{
	size_t n = strlen(t), room = sizeof p->text - 1 - p->len;

	if (n > room)
		n = room;
	memcpy(p->text + p->len, t, n);
	p->len += n;
	p->text[p->len] = '\0';
}

/* Append ".key" to the path; returns the mark to pop back to. */
size_t proto_path_push_key(struct proto_path *p, const void *key, size_t n)
{
	size_t old = p->len;
	char shown[4 * KEY_SHOWN_MAX + 8];

	if (p->len > 0)
		append(p, ".");
	proto_escape(shown, sizeof shown, key, n, KEY_SHOWN_MAX);
	append(p, shown);
	return old;
}

/* Append "[k]" to the path; returns the mark to pop back to. */
size_t proto_path_push_index(struct proto_path *p, uint64_t i)
{
	size_t old = p->len;
	char shown[32];

	snprintf(shown, sizeof shown, "[%llu]", (unsigned long long)i);
	append(p, shown);
	return old;
}

/* Cut the path back to a mark. */
void proto_path_pop(struct proto_path *p, size_t len)
{
	p->len = len;
	p->text[len] = '\0';
}

/* Format an error naming the path; returns -1. */
int proto_errf(struct proto_err *err, const struct proto_path *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err->text, sizeof err->text, "%s: ", p->text);
	if (n < 0 || (size_t)n >= sizeof err->text)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err->text + n, sizeof err->text - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Copy bytes for an error message, escaping what is not printable. */
void proto_escape(char *out, size_t outsz, const void *s, size_t n, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *b = s;
	size_t o = 0, k;

	for (k = 0; k < n && k < max; k++) {
		uint8_t c = b[k];

		if (o + 5 >= outsz)
			break;
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (k < n && o + 4 <= outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}
