#include "common/utf8.h"
#include "tests/unit/test.h"

#include <stdlib.h>

/* The n bytes at s as utf8_escape shows them (heap). */
static char *escaped(const char *s, size_t n)
{
	struct strbuf b = { 0 };

	utf8_escape(&b, s, n);
	return b.s;
}

TEST(utf8_escape_shows_controls_and_bad_bytes_keeps_utf8)
{
	static const char in[] = "a\x1b[31m\t\n\r\x07\x7f\xc2\x9b\xc2\xa0\xff\xc3\xa9\\x00";
	char *out = escaped(in, sizeof in); /* the final NUL too */

	CHECK_EQ_STR(out, "a\\e[31m\\t\\n\\r\\x07\\x7f\\xc2\\x9b\xc2\xa0\\xff\xc3\xa9\\x00\\x00");
	free(out);
	/* Plain text comes back as it is; nothing gives an empty string. */
	out = escaped("CHECK_FAILED: x", 15);
	CHECK_EQ_STR(out, "CHECK_FAILED: x");
	free(out);
	out = escaped("", 0);
	CHECK_EQ_STR(out, "");
	free(out);
	/* A sequence cut short, an overlong form and a surrogate are bytes that are not UTF-8. */
	out = escaped("\xe2\x82 \xc0\xaf \xed\xa0\x80", 9);
	CHECK_EQ_STR(out, "\\xe2\\x82 \\xc0\\xaf \\xed\\xa0\\x80");
	free(out);
}
