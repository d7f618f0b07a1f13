#include "common/numarg.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <limits.h>

TEST(numarg_ll_takes_the_whole_text_as_the_number)
{
	static const char *const refused[] = { "", " 8", "\t8", "\n8", "8 ", "+8", "- 8", "--8",
		"0x10", "8x", "x8", "1e3", "9223372036854775808", "-9223372036854775809", "٣" };
	long long v = 42;

	CHECK_EQ_INT(numarg_ll("8", &v), 0);
	CHECK(v == 8);
	CHECK_EQ_INT(numarg_ll("-5", &v), 0);
	CHECK(v == -5);
	CHECK_EQ_INT(numarg_ll("007", &v), 0);
	CHECK(v == 7);
	CHECK_EQ_INT(numarg_ll("9223372036854775807", &v), 0);
	CHECK(v == LLONG_MAX);
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		v = 42;
		CHECK_EQ_INT(numarg_ll(refused[i], &v), -1);
		CHECK(v == 42); /* left unchanged */
	}
}

TEST(numarg_double_takes_the_whole_text_as_the_number)
{
	static const char *const refused[] = { "", " 1", "\t0.5", "1 ", "+1", ".", "-", "e3", "1e",
		"1e+", "0x1p3", "inf", "-inf", "nan", "1e400", "-1e400", "1,5", "1..2" };
	double v = 42;

	CHECK_EQ_INT(numarg_double("0.5", &v), 0);
	CHECK(v == 0.5);
	CHECK_EQ_INT(numarg_double(".5", &v), 0);
	CHECK(v == 0.5);
	CHECK_EQ_INT(numarg_double("2.", &v), 0);
	CHECK(v == 2.0);
	CHECK_EQ_INT(numarg_double("-1.5e2", &v), 0);
	CHECK(v == -150.0);
	CHECK_EQ_INT(numarg_double("1E-3", &v), 0);
	CHECK(v == 0.001);
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		v = 42;
		CHECK_EQ_INT(numarg_double(refused[i], &v), -1);
		CHECK(v == 42);
	}
}
