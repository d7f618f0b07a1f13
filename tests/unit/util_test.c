#include "common/util.h"
#include "tests/unit/test.h"

TEST(util_time_iso8601)
{
	char buf[32];

	time_iso8601(0, buf);
	CHECK_EQ_STR(buf, "1970-01-01T00:00:00.000Z");
	time_iso8601(1766527572123LL, buf);
	CHECK_EQ_STR(buf, "2025-12-23T22:06:12.123Z");
}

TEST(util_strlcpy_truncates)
{
	char buf[4];

	CHECK_EQ_INT(strlcpy_ap(buf, "abcdef", sizeof buf), 6);
	CHECK_EQ_STR(buf, "abc");
}
