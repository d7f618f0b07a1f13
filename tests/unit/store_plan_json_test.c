#include "common/store/store_plan_json.h"
#include "tests/unit/test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Serialise a value whole, keys in their order, for comparing two parses. */
static char *dump(const json_t *v)
{
	return json_dumps(v, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | JSON_COMPACT);
}

/* plan_json_parse must give what jansson gives, or NULL (jansson then reads the text);
 * `quick` says whether the quick reader is expected to read it itself. */
static void check_same(const char *text, bool quick)
{
	json_error_t jerr;
	json_t *mine = plan_json_parse(text, strlen(text));
	json_t *theirs = json_loadb(
	    text, strlen(text), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);

	if ((mine != NULL) != quick)
		fprintf(stderr, "text: %s\n", text);
	CHECK_EQ_INT(mine != NULL, quick);
	if (mine != NULL) {
		char *a = dump(mine), *b = theirs != NULL ? dump(theirs) : NULL;

		CHECK(b != NULL);
		if (b != NULL)
			CHECK_EQ_STR(a, b);
		CHECK_EQ_INT(json_typeof(mine), json_typeof(theirs));
		free(a);
		free(b);
	}
	json_decref(mine);
	json_decref(theirs);
}

TEST(plan_json_reads_the_common_forms_as_jansson_does)
{
	check_same("{}", true);
	check_same(" [ ] ", true);
	check_same("{\"a\": [1, -2, 0, -0, 123456789012345678], \"b\": {\"c\": null}, "
	           "\"d\": true, \"e\": false, \"f\": \"x y/z\", \"g\": \"\"}",
	    true);
	check_same("{\"k\":\"\xc3\xa9\xe4\xb8\xad\xf0\x9d\x84\x9e\"}", true);
	check_same("\"top\"", true);
	check_same("42", true);
	check_same("{\"a\":1,\"b\":2,\"c\":3}", true);
}

TEST(plan_json_leaves_everything_else_to_jansson)
{
	/* valid, but not the quick reader's */
	check_same("{\"a\": \"with \\\"escape\\\"\"}", false);
	check_same("{\"a\": 1.5}", false);
	check_same("{\"a\": 1e3}", false);
	check_same("[1234567890123456789]", false);
	/* invalid: jansson words the error */
	check_same("{\"a\": 1, \"a\": 2}", false);
	check_same("{\"a\": 01}", false);
	check_same("{\"a\": -}", false);
	check_same("{\"a\": tru}", false);
	check_same("{\"a\": truex}", false);
	check_same("{\"a\": [1, 2,]}", false);
	check_same("{\"a\": 1,}", false);
	check_same("{\"a\" 1}", false);
	check_same("{\"a\": \"tab\there\"}", false);
	check_same("{\"a\": \"\xc3\"}", false);
	check_same("{\"a\": \"\xed\xa0\x80\"}", false);
	check_same("{\"a\": \"\xc0\xaf\"}", false);
	check_same("{\"a\": \"unterminated}", false);
	check_same("[1] [2]", false);
	check_same("", false);
	check_same("{'a': 1}", false);
	check_same("+1", false);
}

TEST(plan_json_gives_up_past_janssons_depth)
{
	size_t n = JSON_PARSER_MAX_DEPTH + 1;
	char *deep = malloc(2 * n + 1);

	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	check_same(deep, false);
	free(deep);
}
