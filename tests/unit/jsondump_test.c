#include "common/jsondump.h"
#include "tests/unit/test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The text json_real_text writes for v. */
static const char *real_text(double v)
{
	static char buf[JSON_REAL_TEXT_MAX];

	json_real_text(v, buf);
	return buf;
}

TEST(json_real_text_writes_the_shortest_of_15_16_17_digits_in_janssons_form)
{
	CHECK_EQ_STR(real_text(0.95), "0.95");
	CHECK_EQ_STR(real_text(0.1 + 0.2), "0.30000000000000004");
	CHECK_EQ_STR(real_text(2.978995942675111), "2.978995942675111");
	CHECK_EQ_STR(real_text(3.0), "3.0");
	CHECK_EQ_STR(real_text(-0.0), "-0.0");
	CHECK_EQ_STR(real_text(1e-5), "1e-5");
	CHECK_EQ_STR(real_text(1e22), "1e22");
	CHECK_EQ_STR(real_text(-1.5e300), "-1.5e300");
	CHECK_EQ_STR(real_text(1e16), "1e16");
	CHECK_EQ_STR(real_text(123456789012345.0), "123456789012345.0");
	CHECK_EQ_STR(real_text(1.7976931348623157e308), "1.7976931348623157e308");
	CHECK_EQ_STR(real_text(4.9406564584124654e-324), "4.94065645841247e-324");
}

/* Over random bit patterns: the text reads back as the same double (by strtod and by
 * jansson, as a real), and one digit fewer would not. */
TEST(json_real_text_reads_back_as_the_same_double_and_is_the_shortest)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (int i = 0; i < 200000; i++) {
		char buf[JSON_REAL_TEXT_MAX], fewer[400];
		json_error_t jerr;
		json_t *back;
		double v;
		int digits = 0;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(&v, &x, sizeof v);
		if (!isfinite(v))
			continue;
		CHECK_EQ_INT(json_real_text(v, buf), strlen(buf));
		CHECK(strtod(buf, NULL) == v);
		back = json_loads(buf, JSON_DECODE_ANY, &jerr);
		CHECK(json_is_real(back) && json_real_value(back) == v);
		json_decref(back);
		/* Significant digits: those from the first that is not 0 to the exponent. */
		for (const char *p = buf + strspn(buf, "-0."); *p != '\0' && *p != 'e'; p++)
			digits += *p >= '0' && *p <= '9';
		/* A ".0" ending is no digit of %g's: it makes an integral value read as a real. */
		if (strlen(buf) > 2 && strcmp(buf + strlen(buf) - 2, ".0") == 0)
			digits--;
		if (digits > 15) {
			snprintf(fewer, sizeof fewer, "%.*g", digits - 1, v);
			CHECK(strtod(fewer, NULL) != v);
		}
	}
}

TEST(json_dumps_short_rewrites_reals_only)
{
	json_t *j = json_pack("{s:f, s:s, s:[f, i, s, s, b, n, f], s:s, s:{}}", "a\"b", 0.95, "1.5",
	    "2.5e3", "x", 1e-5, (json_int_t)3, "\"", "0.94999999999999996", 1, -0.0, "", "7.0",
	    "o");
	char *s = json_dumps_short(j, JSON_COMPACT | JSON_PRESERVE_ORDER), *t;
	FILE *f;
	size_t len = 0;

	CHECK_EQ_STR(s,
	    "{\"a\\\"b\":0.95,\"1.5\":\"2.5e3\",\"x\":[1e-5,3,\"\\\"\",\"0.94999999999999996\","
	    "true,null,-0.0],\"\":\"7.0\",\"o\":{}}");
	free(s);
	s = json_dumps_short(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	t = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	CHECK_EQ_STR(s, t);
	free(t);
	f = open_memstream(&t, &len);
	CHECK_EQ_INT(json_dumpf_short(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
	fclose(f);
	CHECK_EQ_STR(s, t);
	free(s);
	free(t);
	json_decref(j);
}
