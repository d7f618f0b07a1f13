#include "common/utf8.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <stdlib.h>
#include <string.h>

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

/* Each byte value, at each place of the words a run is read in, is shown in a line of
 * plain text as it is shown alone. */
TEST(utf8_escape_finds_each_byte_wherever_it_sits_in_plain_text)
{
	char in[24], *alone, *out, *want;

	for (int c = 0; c < 256; c++) {
		char byte = (char)c;

		alone = escaped(&byte, 1);
		for (size_t at = 0; at < 16; at++) {
			memset(in, 'a', sizeof in);
			in[at] = byte;
			out = escaped(in, sizeof in);
			want = xasprintf("%.*s%s%.*s", (int)at, in, alone,
			    (int)(sizeof in - at - 1), in + at + 1);
			CHECK_EQ_STR(out, want);
			free(out);
			free(want);
		}
		free(alone);
	}
}

TEST(utf8_one_line_escapes_line_breaks_and_cuts_between_escapes_and_characters)
{
	char out[8];

	CHECK_EQ_STR(utf8_one_line(out, "a\nb\rc", sizeof out), "a\\nb\\rc");
	/* Seven bytes fit: the escape that would be cut in two is left out whole. */
	CHECK_EQ_STR(utf8_one_line(out, "abcdef\nz", sizeof out), "abcdef");
	CHECK_EQ_STR(utf8_one_line(out, "abcdefghij", sizeof out), "abcdefg");
	CHECK_EQ_STR(utf8_one_line(out, "", sizeof out), "");
	/* Nor is a character cut in two: its bytes are left out whole. */
	CHECK_EQ_STR(utf8_one_line(out, "abcde\xc3\xa9z", sizeof out), "abcde\xc3\xa9");
	CHECK_EQ_STR(utf8_one_line(out, "abcdef\xc3\xa9", sizeof out), "abcdef");
	CHECK_EQ_STR(
	    utf8_one_line(out, "ab\xe2\x82\xac\xe2\x82\xac", sizeof out), "ab\xe2\x82\xac");
	/* Other controls are left to utf8_escape, where the message is shown. */
	CHECK_EQ_STR(utf8_one_line(out, "\x1b[2J", sizeof out), "\x1b[2J");
}
