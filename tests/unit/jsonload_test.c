#include "common/jsonload.h"
#include "tests/unit/test.h"

#include <stdlib.h>
#include <string.h>

/* A text of n arrays, each inside the one before, around `inner`. */
static char *nested(size_t n, const char *inner)
{
	size_t k = strlen(inner);
	char *s = malloc(2 * n + k + 1);

	memset(s, '[', n);
	memcpy(s + n, inner, k);
	memset(s + n + k, ']', n);
	s[2 * n + k] = '\0';
	return s;
}

TEST(json_nesting_past_finds_the_bracket_past_the_bound_outside_strings)
{
	char *s = nested(5, "");

	CHECK_EQ_INT(json_nesting_past(s, strlen(s), 5), strlen(s));
	CHECK_EQ_INT(json_nesting_past(s, strlen(s), 4), 4);
	free(s);
	/* Brackets and escaped quotes inside strings are no nesting. */
	s = nested(2, "\"[[[\\\"{{{\"");
	CHECK_EQ_INT(json_nesting_past(s, strlen(s), 2), strlen(s));
	free(s);
	CHECK_EQ_INT(json_nesting_past("{\"a\":{\"b\":[1]}}", 15, 2), 10);
}

TEST(json_loadb_bounded_reads_up_to_the_bound_and_names_the_nesting_past_it)
{
	json_error_t jerr;
	char *s = nested(JSON_NESTING_MAX, "1");
	json_t *v = json_loads_bounded(s, 0, &jerr);

	CHECK(json_is_array(v));
	json_decref(v);
	free(s);
	/* 2,048 levels: what jansson itself accepts, and what a small stack cannot hold. */
	s = nested(2048, "1");
	s[JSON_NESTING_MAX - 1] = '\n';
	CHECK(json_loadb_bounded(s, strlen(s), 0, &jerr) == NULL);
	CHECK_EQ_STR(jerr.text, "nesting deeper than 64");
	CHECK_EQ_INT(jerr.line, 2);
	CHECK_EQ_INT(jerr.column, 2);
	CHECK_EQ_INT(jerr.position, JSON_NESTING_MAX + 2);
	CHECK(json_loadb_bounded(s, strlen(s), 0, NULL) == NULL);
	free(s);
	/* Other errors are jansson's own. */
	CHECK(json_loads_bounded("[1,", 0, &jerr) == NULL);
	CHECK(strstr(jerr.text, "nesting") == NULL);
}
