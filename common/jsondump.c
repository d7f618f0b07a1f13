/* jansson's JSON text, its reals rewritten in their shortest form as they are written. */
#include "common/jsondump.h"
#include "common/strbuf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

size_t json_real_text(double v, char *buf)
{
	size_t n = 0;
	char *e;

	for (int prec = 15; prec <= 17; prec++) {
		n = (size_t)snprintf(buf, JSON_REAL_TEXT_MAX, "%.*g", prec, v);
		if (prec == 17 || strtod(buf, NULL) == v)
			break;
	}
	if (strchr(buf, '.') == NULL && strchr(buf, 'e') == NULL && n + 2 < JSON_REAL_TEXT_MAX) {
		memcpy(buf + n, ".0", 3);
		n += 2;
	}
	if ((e = strchr(buf, 'e')) != NULL) {
		char *from = ++e, *to = e;

		if (*from == '-')
			from++, to++;
		else if (*from == '+')
			from++;
		while (*from == '0' && from[1] != '\0')
			from++;
		memmove(to, from, strlen(from) + 1);
		n = strlen(buf);
	}
	return n;
}

/* Where the text goes, and whether the chunk jansson writes next lies inside a string. */
struct jd_out {
	FILE *f;          /* NULL: into b */
	struct strbuf *b; /* when f is NULL */
	bool in_string;
};

/* jansson's dump callback: write the chunk, a real rewritten by json_real_text. jansson
 * writes a real, an integer, a keyword and each string's opening and closing quote as
 * chunks of their own, and a quote inside a string only escaped (\"), so a chunk that is
 * one '"' opens or closes a string, and a chunk outside strings that starts as a number
 * and holds a '.' or an exponent is a real. Returns -1 on a write error. */
static int jd_chunk(const char *buffer, size_t size, void *data)
{
	struct jd_out *o = data;
	char real[JSON_REAL_TEXT_MAX], copy[JSON_REAL_TEXT_MAX];

	if (size == 1 && buffer[0] == '"') {
		o->in_string = !o->in_string;
	} else if (!o->in_string && size < sizeof copy &&
	    (buffer[0] == '-' || (buffer[0] >= '0' && buffer[0] <= '9')) &&
	    (memchr(buffer, '.', size) != NULL || memchr(buffer, 'e', size) != NULL ||
	        memchr(buffer, 'E', size) != NULL)) {
		memcpy(copy, buffer, size);
		copy[size] = '\0';
		size = json_real_text(strtod(copy, NULL), real);
		buffer = real;
	}
	if (o->f == NULL) {
		strbuf_put(o->b, buffer, size);
		return 0;
	}
	return fwrite(buffer, 1, size, o->f) == size ? 0 : -1;
}

char *json_dumps_short(const json_t *j, size_t flags)
{
	struct strbuf b = { 0 };
	struct jd_out o = { NULL, &b, false };

	if (json_dump_callback(j, jd_chunk, &o, flags) != 0) {
		free(b.s);
		return NULL;
	}
	if (b.s == NULL)
		strbuf_puts(&b, "");
	return b.s;
}

int json_dumpf_short(const json_t *j, FILE *f, size_t flags)
{
	struct jd_out o = { f, NULL, false };

	return json_dump_callback(j, jd_chunk, &o, flags);
}
