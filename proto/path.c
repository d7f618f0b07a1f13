#include "proto/path.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KEY_SHOWN_MAX 40

/* Start a path at the message's name. */
void proto_path_init(struct proto_path *p, const char *root)
{
	p->len = 0;
	proto_path_push_key(p, root, strlen(root));
}

/* Append a segment; returns the mark to pop back to. */
static size_t push(struct proto_path *p, const void *key, size_t n)
{
	size_t old = p->len;

	if (p->len < PROTO_PATH_SEGS) {
		p->seg[p->len].key = key;
		p->seg[p->len].n = n;
	}
	p->len++;
	return old;
}

/* Append ".key" to the path; returns the mark to pop back to. */
size_t proto_path_push_key(struct proto_path *p, const void *key, size_t n)
{
	return push(p, key, n);
}

/* Append "[k]" to the path; returns the mark to pop back to. */
size_t proto_path_push_index(struct proto_path *p, uint64_t i)
{
	return push(p, NULL, (size_t)i);
}

/* Cut the path back to a mark. */
void proto_path_pop(struct proto_path *p, size_t len)
{
	p->len = len;
}

/* Append the text t to out (size cap, holding *len bytes), cutting it off at the end. */
static void append(char *out, size_t cap, size_t *len, const char *t)
{
	size_t n = strlen(t), room = cap - 1 - *len;

	if (n > room)
		n = room;
	memcpy(out + *len, t, n);
	*len += n;
	out[*len] = '\0';
}

/* Format the path into out (PROTO_PATH_TEXT bytes): ".key" (escaped, shortened if long)
 * and "[i]" segments, cut off at the end of the buffer. */
static void format(const struct proto_path *p, char out[PROTO_PATH_TEXT])
{
	char shown[4 * KEY_SHOWN_MAX + 8];
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < p->len && i < PROTO_PATH_SEGS; i++) {
		if (p->seg[i].key != NULL) {
			if (len > 0)
				append(out, PROTO_PATH_TEXT, &len, ".");
			proto_escape(
			    shown, sizeof shown, p->seg[i].key, p->seg[i].n, KEY_SHOWN_MAX);
		} else {
			snprintf(shown, sizeof shown, "[%llu]", (unsigned long long)p->seg[i].n);
		}
		append(out, PROTO_PATH_TEXT, &len, shown);
	}
}

/* Format an error naming the path; returns -1. */
int proto_errf(struct proto_err *err, const struct proto_path *p, const char *fmt, ...)
{
	char path[PROTO_PATH_TEXT];
	va_list ap;
	int n;

	format(p, path);
	n = snprintf(err->text, sizeof err->text, "%s: ", path);
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
