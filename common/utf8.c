#include "common/utf8.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/util.h"

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one (overlong forms,
 * surrogates and values past U+10FFFF are not). */
static size_t seq_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t len, k;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* The length of the run of ASCII bytes at the start of s[0..n), read eight at a time. */
static size_t ascii_run(const uint8_t *s, size_t n)
{
	size_t off = 0;
	uint64_t w;

	while (n - off >= sizeof w) {
		memcpy(&w, s + off, sizeof w);
		if (w & 0x8080808080808080ull)
			break;
		off += sizeof w;
	}
	while (off < n && s[off] < 0x80)
		off++;
	return off;
}

/* Return the offset of the first invalid UTF-8 byte, or n. */
size_t utf8_check(const void *s, size_t n)
{
	const uint8_t *b = s;
	size_t off = ascii_run(b, n), k;

	while (off < n) {
		k = seq_len(b + off, n - off);
		if (k == 0)
			return off;
		off += k;
	}
	return n;
}

long utf8_bad(const char *s)
{
	size_t n = strlen(s), bad = utf8_check(s, n);

	return bad == n ? -1 : (long)bad;
}

/* Replace invalid UTF-8 and NUL bytes so that the text can be sent. */
char *utf8_clean(const char *s, size_t max_bytes)
{
	static const char repl[] = "\xef\xbf\xbd";
	const uint8_t *b = (const uint8_t *)s;
	size_t n = strlen(s), off = 0, o = 0, k;
	/* a replaced byte grows to three */
	size_t cap = n < max_bytes / 3 ? 3 * n : max_bytes;
	char *out = xmalloc(cap + 1);

	/* ASCII needs no replacing: copy the run in front (NUL ends s, so none is in it) */
	off = o = ascii_run(b, n < cap ? n : cap);
	memcpy(out, s, o);

	while (off < n) {
		k = seq_len(b + off, n - off);
		if (k == 0) {
			if (o + 3 > cap)
				break;
			memcpy(out + o, repl, 3);
			o += 3;
			off++;
			continue;
		}
		if (o + k > cap)
			break;
		memcpy(out + o, b + off, k);
		o += k;
		off += k;
	}
	out[o] = '\0';
	return out;
}

/* Whether the ASCII byte c is shown as it is: printable, or a space. */
static bool escape_plain(uint8_t c)
{
	return c >= 0x20 && c != 0x7f;
}

/* The length of the run of bytes shown as they are (escape_plain, and ASCII) at the start
 * of s[0..n), read eight at a time: a word is passed over when none of its bytes has its
 * high bit set, is below 0x20 (the word less 0x20 in each byte borrows into the high bit
 * of such a byte) or is 0x7f (zero once xored with 0x7f in each byte). */
static size_t plain_run(const uint8_t *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	size_t off = 0;
	uint64_t w, del;

	while (n - off >= sizeof w) {
		memcpy(&w, s + off, sizeof w);
		del = w ^ (0x7f * ones);
		if ((w | ((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs)
			break;
		off += sizeof w;
	}
	while (off < n && s[off] < 0x80 && escape_plain(s[off]))
		off++;
	return off;
}

/* Append the escape of one byte. */
static void escape_byte(struct strbuf *b, uint8_t c)
{
	static const char hex[] = "0123456789abcdef";
	char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

	switch (c) {
	case '\t': strbuf_put(b, "\\t", 2); break;
	case '\n': strbuf_put(b, "\\n", 2); break;
	case '\r': strbuf_put(b, "\\r", 2); break;
	case 0x1b: strbuf_put(b, "\\e", 2); break;
	default: strbuf_put(b, e, 4); break;
	}
}

void utf8_escape(struct strbuf *b, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t off = 0, k;

	while (off < n) {
		/* the longest run shown as it is, put at once */
		k = plain_run(p + off, n - off);
		strbuf_put(b, s + off, k);
		off += k;
		if (off == n)
			break;
		if (p[off] < 0x80) {
			escape_byte(b, p[off++]);
			continue;
		}
		k = seq_len(p + off, n - off);
		if (k == 0) {
			escape_byte(b, p[off++]);
		} else if (k == 2 && p[off] == 0xc2 && p[off + 1] < 0xa0) {
			escape_byte(b, p[off]);
			escape_byte(b, p[off + 1]);
			off += 2;
		} else {
			strbuf_put(b, s + off, k);
			off += k;
		}
	}
	if (b->s == NULL)
		strbuf_put(b, "", 0);
}

char *utf8_one_line(char *dst, const char *s, size_t n)
{
	size_t k = 0;

	for (; *s != '\0'; s++) {
		bool esc = *s == '\n' || *s == '\r';

		if (k + (esc ? 2 : 1) > n - 1) {
			/* Not inside a character: the bytes of the one cut go too. */
			if (((unsigned char)*s & 0xc0) == 0x80) {
				while (k > 0 && ((unsigned char)dst[k - 1] & 0xc0) == 0x80)
					k--;
				if (k > 0 && (unsigned char)dst[k - 1] >= 0xc0)
					k--;
			}
			break;
		}
		if (esc) {
			dst[k++] = '\\';
			dst[k++] = *s == '\n' ? 'n' : 'r';
		} else {
			dst[k++] = *s;
		}
	}
	dst[k] = '\0';
	return dst;
}
