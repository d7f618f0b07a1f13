#include "common/util.h"

#include <stdint.h>
#include <string.h>
#include "tests/unit/test.h"

TEST(util_time_iso8601)
{
	char buf[32];

	time_iso8601(0, buf);
	CHECK_EQ_STR(buf, "1970-01-01T00:00:00.000Z");
	time_iso8601(1766527572123LL, buf);
	CHECK_EQ_STR(buf, "2025-12-23T22:06:12.123Z");
	/* The same second again, then the next one: the cached seconds follow. */
	time_iso8601(1766527572009LL, buf);
	CHECK_EQ_STR(buf, "2025-12-23T22:06:12.009Z");
	time_iso8601(1766527573000LL, buf);
	CHECK_EQ_STR(buf, "2025-12-23T22:06:13.000Z");
	time_iso8601(1766527572999LL, buf);
	CHECK_EQ_STR(buf, "2025-12-23T22:06:12.999Z");
}

TEST(util_strlcpy_truncates)
{
	char buf[4];

	CHECK_EQ_INT(strlcpy_ap(buf, "abcdef", sizeof buf), 6);
	CHECK_EQ_STR(buf, "abc");
}

TEST(util_time_db_is_the_originals_format)
{
	char buf[32];

	time_db(0, buf);
	CHECK_EQ_STR(buf, "1970-01-01 00:00:00.000000");
	time_db(1766527572123456LL, buf);
	CHECK_EQ_STR(buf, "2025-12-23 22:06:12.123456");
	CHECK_EQ_INT(strlen(buf), TIME_DB_LEN);
	time_db_now(buf);
	CHECK_EQ_INT(strlen(buf), TIME_DB_LEN);
	CHECK(buf[10] == ' ' && buf[19] == '.');
}

/* A time past the four-digit years is written as the nearest second within them, in no
 * more than the caller's 32 bytes. */
TEST(util_time_outside_the_four_digit_years_fits_its_buffer)
{
	char buf[64];

	memset(buf, 'x', sizeof buf);
	time_db(INT64_MAX, buf);
	CHECK_EQ_STR(buf, "9999-12-31 23:59:59.775807");
	CHECK(buf[32] == 'x');
	memset(buf, 'x', sizeof buf);
	time_db(INT64_MIN, buf);
	CHECK_EQ_STR(buf, "0001-01-01 00:00:00.224192");
	CHECK(buf[32] == 'x');
	memset(buf, 'x', sizeof buf);
	time_iso8601(INT64_MIN, buf);
	CHECK_EQ_STR(buf, "0001-01-01T00:00:00.192Z");
	CHECK(buf[32] == 'x');
	time_iso8601(INT64_MAX, buf);
	CHECK_EQ_STR(buf, "9999-12-31T23:59:59.807Z");
	time_db(253402300799999999LL, buf);
	CHECK_EQ_STR(buf, "9999-12-31 23:59:59.999999");
	time_db(-62135596800000000LL, buf);
	CHECK_EQ_STR(buf, "0001-01-01 00:00:00.000000");
}

/* The first timestamp a thread formats may be in the second before 1970 (second -1). */
TEST(util_time_db_first_of_a_thread_in_the_second_before_1970)
{
	char buf[32];

	CHECK_EQ_INT(time_db_parse("1969-12-31 23:59:59.25", buf), 0);
	CHECK_EQ_STR(buf, "1969-12-31 23:59:59.250000");
	time_db(-1, buf);
	CHECK_EQ_STR(buf, "1969-12-31 23:59:59.999999");
}

TEST(util_time_iso8601_first_of_a_thread_in_the_second_before_1970)
{
	char buf[32];

	time_iso8601(-500, buf);
	CHECK_EQ_STR(buf, "1969-12-31T23:59:59.500Z");
}

TEST(util_time_db_parse_rewrites_what_earlier_writers_stored)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "2026-12-01T19:31:27.480Z", "2026-12-01 19:31:27.480000" },
		{ "2026-12-01 19:31:27.480000", "2026-12-01 19:31:27.480000" },
		{ "2025-12-29T19:04:18Z", "2025-12-29 19:04:18.000000" },
		{ "2025-12-29T19:04:18.1234567Z", "2025-12-29 19:04:18.123456" },
		{ "2025-12-29 19:04", "2025-12-29 19:04:00.000000" },
		{ "2025-12-29", "2025-12-29 00:00:00.000000" },
		{ "2025-12-31T23:30:00+01:00", "2025-12-31 22:30:00.000000" },
		{ "2025-12-31T23:30:00.5-0130", "2026-01-01 01:00:00.500000" },
		{ "0999-03-01T01:02:03Z", "0999-03-01 01:02:03.000000" },
		{ "0001-01-01T00:30:00+00:30", "0001-01-01 00:00:00.000000" },
	};
	static const char *const bad[] = { "", "yesterday", "2025-13-01 00:00:00",
		"2025-02-30 10:00:00", "2025-12-29T19:04:18Q", "2025-12-29T19:04:18.", "20251229",
		"2025-12-29T25:00:00", "0000-06-01", "0001-01-01T00:30:00+01:00",
		"9999-12-31T23:00:00-05:00" };
	char buf[32];

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		CHECK_EQ_INT(time_db_parse(ok[i].in, buf), 0);
		CHECK_EQ_STR(buf, ok[i].out);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_EQ_INT(time_db_parse(bad[i], buf), -1);
}

TEST(util_str_elide_keeps_both_ends)
{
	char buf[64], src[300];

	CHECK_EQ_STR(str_elide(buf, "short enough", sizeof buf), "short enough");
	memset(src, 'a', sizeof src - 1);
	src[sizeof src - 1] = '\0';
	memcpy(src, "start", 5);
	memcpy(src + sizeof src - 4, "end", 3);
	str_elide(buf, src, sizeof buf);
	CHECK(strlen(buf) < sizeof buf);
	CHECK(strncmp(buf, "start", 5) == 0);
	CHECK(strcmp(buf + strlen(buf) - 3, "end") == 0);
	CHECK(strstr(buf, " bytes left out ...] ") != NULL);
	/* A cut never splits a UTF-8 character: a string of 2-byte characters stays valid. */
	for (size_t i = 0; i + 2 < sizeof src; i += 2)
		memcpy(src + i, "\xc3\xa9", 2);
	src[sizeof src - 2] = '\0';
	str_elide(buf, src, sizeof buf);
	CHECK(strstr(buf, "\xc3\xa9 [...") != NULL && strstr(buf, "...] \xc3\xa9") != NULL);
}
