/* A JSON document read in place (see jspan.h). */
#include "worker/jspan.h"
#include "common/util.h"
#include "common/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where a check stopped: the first failure found (the innermost value's), kept as the
 * outer values give up in turn. */
struct js_ctx {
	const char *end; /* the text's */
	const char *at;  /* NULL while nothing failed */
	char why[JSPAN_WHY_MAX];
};

/* Record that the text stops being JSON at p because of `fmt` (the first failure only);
 * returns NULL, which the checking functions return on failure. A failure found at the
 * text's end, whatever was expected there, is said one way (JSPAN_WHY_ENDS): a document
 * cut short always reads the same. */
static const char *js_fail(struct js_ctx *c, const char *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *js_fail(struct js_ctx *c, const char *p, const char *fmt, ...)
{
	va_list ap;

	if (c == NULL || c->at != NULL)
		return NULL;
	c->at = p;
	if (p >= c->end) {
		strlcpy_ap(c->why, JSPAN_WHY_ENDS, sizeof c->why);
		return NULL;
	}
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof c->why, fmt, ap);
	va_end(ap);
	return NULL;
}

/* Step over whitespace. */
static const char *js_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* The value of the four hex digits at p (end permitting), or -1. */
static long js_hex4(const char *p, const char *end)
{
	long v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' :
		    c >= 'a' && c <= 'f'     ? c - 'a' + 10 :
		    c >= 'A' && c <= 'F'     ? c - 'A' + 10 :
		                               -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Step over the \u escape at p (at the 'u'): a code point (U+0000 only when `nul`), a
 * high surrogate only when a low one follows. Sets *cp; NULL when it is not one, the
 * reason recorded in c (when not NULL). */
static const char *js_uescape(const char *p, const char *end, bool nul, long *cp, struct js_ctx *c)
{
	long v = js_hex4(p + 1, end), lo;

	if (v < 0 && end - p < 5 && memchr(p, '"', (size_t)(end - p)) == NULL)
		return js_fail(c, end, "cut short"); /* the text ends inside the escape */
	if (v < 0)
		return js_fail(c, p - 1, "a \\u escape without four hex digits");
	if (v == 0 && !nul)
		return js_fail(c, p - 1, "\\u0000 (a NUL character) where none is allowed");
	if (v >= 0xDC00 && v <= 0xDFFF)
		return js_fail(c, p - 1,
		    "a lone surrogate \\u%.4s (a low one with no high one before it)", p + 1);
	p += 5;
	if (v >= 0xD800 && v <= 0xDBFF) {
		if (end - p < 6 && memchr(p, '"', (size_t)(end - p)) == NULL)
			return js_fail(c, end, "cut short"); /* the text ends inside the pair */
		lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? js_hex4(p + 2, end) : -1;
		if (lo < 0xDC00 || lo > 0xDFFF)
			return js_fail(c, p - 6,
			    "a lone surrogate \\u%.4s (a high one with no low one after it)",
			    p - 4);
		v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
		p += 6;
	}
	*cp = v;
	return p;
}

/* Step over the string at p (at its '"'), \u0000 allowed when `nul`; NULL when it is not
 * a valid one, the reason recorded in ctx. */
static const char *js_string(const char *p, const char *end, bool nul, struct js_ctx *ctx)
{
	const char *start = ++p;
	bool wide = false;
	size_t good;
	long cp;

	while (p < end) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			break;
		if (c < 0x20)
			return js_fail(ctx, p, "a control character (byte 0x%02x) in a string", c);
		if (c >= 0x80) {
			wide = true;
			p++;
		} else if (c != '\\') {
			p++;
		} else if (p + 1 < end && strchr("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0') {
			p += 2;
		} else if (p + 1 < end && p[1] == 'u') {
			if ((p = js_uescape(p + 1, end, nul, &cp, ctx)) == NULL)
				return NULL;
		} else {
			return js_fail(ctx, p + 1 < end ? p : end, "an invalid escape in a string");
		}
	}
	if (p >= end)
		return js_fail(ctx, p, "a string that does not end");
	if (wide && (good = utf8_check(start, (size_t)(p - start))) != (size_t)(p - start))
		return js_fail(ctx, start + good, "invalid UTF-8 in a string");
	return p + 1;
}

/* Step over the number at p; NULL when it is not one, or does not fit (an integer past
 * 64 bits, a real past the double's range), the reason recorded in ctx. */
static const char *js_number(const char *p, const char *end, struct js_ctx *ctx)
{
	const char *start = p;
	bool real = false;
	char buf[64], *copy;
	size_t n;
	bool ok;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	else
		return js_fail(ctx, p < end ? start : end,
		    "no value (a string, number, object, array, true, false or null)");
	if (p < end && *p == '.') {
		real = true;
		if (++p >= end || *p < '0' || *p > '9')
			return js_fail(
			    ctx, p < end ? start : end, "a number with no digit after its '.'");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = true;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return js_fail(
			    ctx, p < end ? start : end, "a number with no digit in its exponent");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	n = (size_t)(p - start);
	copy = n < sizeof buf ? buf : xmalloc(n + 1);
	memcpy(copy, start, n);
	copy[n] = '\0';
	errno = 0;
	if (real) {
		double d = strtod(copy, NULL);
		ok = !((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE);
	} else {
		(void)strtoll(copy, NULL, 10);
		ok = errno != ERANGE;
	}
	if (copy != buf)
		free(copy);
	return ok ? p :
	            js_fail(ctx, start, "a number out of range (%s)",
	                real ? "past the range of a double" : "an integer past 64 bits");
}

/* Step over the literal `lit` at p; NULL when it is not there, recorded in ctx. */
static const char *js_literal(const char *p, const char *end, const char *lit, struct js_ctx *ctx)
{
	size_t n = strlen(lit);

	if ((size_t)(end - p) >= n && memcmp(p, lit, n) == 0)
		return p + n;
	if ((size_t)(end - p) < n && memcmp(p, lit, (size_t)(end - p)) == 0)
		return js_fail(ctx, end, "cut short"); /* the text ends inside the literal */
	return js_fail(ctx, p, "no value (a string, number, object, array, true, false or null)");
}

/* Step over the value at p, inside `depth` containers, \u0000 allowed in string values
 * (never in keys) when `nul`; NULL when it is not a valid one, the reason recorded in
 * ctx. */
static const char *js_value(const char *p, const char *end, int depth, bool nul, struct js_ctx *ctx)
{
	char close;

	if (p >= end)
		return js_fail(ctx, p, "the text ends where a value was expected");
	switch (*p) {
	case '"': return js_string(p, end, nul, ctx);
	case 't': return js_literal(p, end, "true", ctx);
	case 'f': return js_literal(p, end, "false", ctx);
	case 'n': return js_literal(p, end, "null", ctx);
	case '{':
	case '[': break;
	default: return js_number(p, end, ctx);
	}
	if (depth + 1 > JSPAN_DEPTH_MAX)
		return js_fail(ctx, p, "nesting deeper than %d", JSPAN_DEPTH_MAX);
	close = *p == '{' ? '}' : ']';
	p = js_ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			if (p >= end || *p != '"')
				return js_fail(ctx, p, "a member name ('\"') expected");
			if ((p = js_string(p, end, false, ctx)) == NULL)
				return NULL;
			p = js_ws(p, end);
			if (p >= end || *p != ':')
				return js_fail(ctx, p, "':' expected after a member name");
			p = js_ws(p + 1, end);
		}
		if ((p = js_value(p, end, depth + 1, nul, ctx)) == NULL)
			return NULL;
		p = js_ws(p, end);
		if (p < end && *p == close)
			return p + 1;
		if (p >= end || *p != ',')
			return js_fail(ctx, p, "',' or '%c' expected", close);
		p = js_ws(p + 1, end);
	}
}

/* Step over the string opening at p, in a text already checked: each '"' found is its
 * end unless an odd run of backslashes escapes it. Returns the byte after it (`end` if a
 * text not checked ends first). */
static const char *js_skip_string(const char *p, const char *end)
{
	for (p++; p < end;) {
		const char *q = memchr(p, '"', (size_t)(end - p)), *b;

		if (q == NULL)
			return end;
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if (((q - b) & 1) == 0)
			return q + 1;
		p = q + 1;
	}
	return end;
}

/* Step over the value at p of a checked document, without checking it again. */
static const char *js_skip(const char *p, const char *end)
{
	int depth = 0;

	do {
		if (*p == '"') {
			p = js_skip_string(p, end);
		} else if (*p == '{' || *p == '[') {
			depth++;
			p++;
		} else if (*p == '}' || *p == ']') {
			depth--;
			p++;
		} else if (depth > 0) {
			p++;
		} else {
			/* A number or literal at the top of the skip: it ends at a delimiter. */
			while (p < end && strchr(",}] \t\n\r", *p) == NULL)
				p++;
		}
	} while (depth > 0);
	return p;
}

int jspan_parse(const char *text, size_t len, struct jspan *root, char *err, size_t errlen)
{
	return jspan_parse_flags(text, len, 0, root, err, errlen);
}

int jspan_parse_flags(
    const char *text, size_t len, int flags, struct jspan *root, char *err, size_t errlen)
{
	struct jspan_err e;

	if (jspan_check(text, len, flags, root, &e) != 0) {
		snprintf(err, errlen, "at byte %zu: %s", e.at, e.why);
		return -1;
	}
	return 0;
}

int jspan_check(const char *text, size_t len, int flags, struct jspan *root, struct jspan_err *e)
{
	const char *end = text + len, *p = js_ws(text, end), *q;
	struct js_ctx c = { .end = end, .at = NULL };

	e->at_start = false;
	if (p >= end || (*p != '{' && *p != '[')) {
		js_fail(&c, p, "'[' or '{' expected");
		e->at_start = true;
	} else if ((q = js_value(p, end, 0, (flags & JSPAN_ALLOW_NUL) != 0, &c)) != NULL &&
	    js_ws(q, end) != end) {
		js_fail(&c, q, "end of the text expected");
	} else if (q != NULL) {
		*root = (struct jspan){ p, q };
		return 0;
	}
	e->at = (size_t)(c.at - text);
	strlcpy_ap(e->why, c.why, sizeof e->why);
	return -1;
}

bool jspan_is_object(struct jspan v)
{
	return v.p != NULL && v.p < v.end && *v.p == '{';
}

bool jspan_is_array(struct jspan v)
{
	return v.p != NULL && v.p < v.end && *v.p == '[';
}

bool jspan_is_string(struct jspan v)
{
	return v.p != NULL && v.p < v.end && *v.p == '"';
}

bool jspan_is_null(struct jspan v)
{
	return v.p != NULL && v.end - v.p == 4 && memcmp(v.p, "null", 4) == 0;
}

/* Append the UTF-8 form of code point cp at o; returns the end. */
static char *js_put_utf8(char *o, long cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/* Decode the checked string at p (at its '"') into `out`, which has room for its bytes;
 * returns the end of what was written. */
static char *js_decode(const char *p, char *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	long cp;

	for (p++; *p != '"';) {
		if (*p != '\\') {
			*out++ = *p++;
		} else if (p[1] == 'u') {
			p = js_uescape(p + 1, p + 12, true, &cp, NULL); /* checked already */
			out = js_put_utf8(out, cp);
		} else {
			*out++ = to[strchr(from, p[1]) - from];
			p += 2;
		}
	}
	return out;
}

unsigned jspan_members(struct jspan obj, const char *const *keys, size_t n, struct jspan *out)
{
	size_t klen[JSPAN_MEMBERS_MAX];
	unsigned found = 0;
	const char *p;

	if (n > JSPAN_MEMBERS_MAX || !jspan_is_object(obj))
		return 0;
	for (size_t i = 0; i < n; i++)
		klen[i] = strlen(keys[i]);
	p = js_ws(obj.p + 1, obj.end);
	while (p < obj.end && *p == '"') {
		const char *kend = js_skip(p, obj.end), *v;
		size_t raw = (size_t)(kend - p), dn = 0;
		unsigned same = 0;
		int decoded = 0; /* 0: not yet, 1: in buf, -1: compared in place only */
		char buf[256];

		/* A key without escapes is compared in place; one with escapes decoded (once,
		 * for every key looked for). */
		for (size_t i = 0; i < n; i++) {
			if (raw == klen[i] + 2 && memcmp(p + 1, keys[i], klen[i]) == 0) {
				same |= 1u << i;
				continue;
			}
			if (decoded == 0) {
				decoded = -1;
				if (raw < sizeof buf && memchr(p, '\\', raw) != NULL) {
					dn = (size_t)(js_decode(p, buf) - buf);
					decoded = 1;
				}
			}
			if (decoded == 1 && dn == klen[i] && memcmp(buf, keys[i], klen[i]) == 0)
				same |= 1u << i;
		}
		v = js_ws(js_ws(kend, obj.end) + 1, obj.end);
		p = js_skip(v, obj.end);
		for (size_t i = 0; i < n; i++)
			if (same & (1u << i))
				out[i] = (struct jspan){ v, p };
		found |= same;
		p = js_ws(p, obj.end);
		if (*p == ',')
			p = js_ws(p + 1, obj.end);
	}
	return found;
}

bool jspan_member(struct jspan obj, const char *key, struct jspan *out)
{
	return jspan_members(obj, &key, 1, out) != 0;
}

bool jspan_next(struct jspan arr, struct jspan *it, struct jspan *out)
{
	const char *p;

	if (!jspan_is_array(arr))
		return false;
	p = it->p == NULL ? js_ws(arr.p + 1, arr.end) : js_ws(it->end, arr.end);
	if (it->p != NULL && *p == ',')
		p = js_ws(p + 1, arr.end);
	if (*p == ']')
		return false;
	*out = (struct jspan){ p, js_skip(p, arr.end) };
	*it = *out;
	return true;
}

bool jspan_int(struct jspan v, int64_t *out)
{
	char buf[32];
	size_t n = (size_t)(v.end - v.p);

	if (v.p == NULL || n == 0 || n >= sizeof buf || (*v.p != '-' && (*v.p < '0' || *v.p > '9')))
		return false;
	if (memchr(v.p, '.', n) != NULL || memchr(v.p, 'e', n) != NULL ||
	    memchr(v.p, 'E', n) != NULL)
		return false;
	memcpy(buf, v.p, n);
	buf[n] = '\0';
	*out = (int64_t)strtoll(buf, NULL, 10);
	return true;
}

char *jspan_str(struct jspan v, size_t *len)
{
	char *s, *end;

	if (!jspan_is_string(v))
		return NULL;
	s = xmalloc((size_t)(v.end - v.p));
	end = js_decode(v.p, s);
	*end = '\0';
	if (len != NULL)
		*len = (size_t)(end - s);
	return s;
}
