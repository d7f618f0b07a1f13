#include "common/jsonload.h"
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

/* A text of n arrays, each inside the one before. */
static char *nested(size_t n)
{
	char *deep = malloc(2 * n + 1);

	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	return deep;
}

TEST(plan_json_reads_up_to_the_nesting_bound_and_gives_up_past_it)
{
	char *deep = nested(JSON_NESTING_MAX);

	check_same(deep, true);
	free(deep);
	deep = nested(JSON_NESTING_MAX + 1);
	check_same(deep, false);
	free(deep);
}

/* An object of `n` keys k0..k<n-1>, with key k<dup> given again last when dup < n. */
static char *keys_object(size_t n, size_t dup)
{
	char *s = malloc(16 * (n + 2) + 2), *p = s;

	*p++ = '{';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s\"k%zu\":%zu", i > 0 ? "," : "", i, i);
	if (dup < n)
		p += sprintf(p, ",\"k%zu\":0", dup);
	*p++ = '}';
	*p = '\0';
	return s;
}

TEST(plan_json_finds_a_duplicate_key_among_many)
{
	/* the first keys are compared as they come, those past them looked up */
	static const size_t sizes[] = { 1, 2, 15, 16, 17, 40 };

	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		size_t n = sizes[i];
		char *s = keys_object(n, n);

		check_same(s, true);
		free(s);
		for (size_t dup = 0; dup < n; dup += dup < 18 ? 1 : 10) {
			s = keys_object(n, dup);
			check_same(s, false);
			free(s);
		}
	}
	check_same("{\"ab\":1,\"a\":2,\"b\":3,\"abc\":4}", true);
	check_same("{\"ab\":1,\"a\":2,\"b\":3,\"ab\":4}", false);
}

/* plan_json_parse_prefix reads the value `text` starts with: its bytes `used`, or NULL. */
static void check_prefix(const char *text, size_t used, bool quick)
{
	size_t n = 0;
	json_t *v = plan_json_parse_prefix(text, strlen(text), &n);

	if ((v != NULL) != quick)
		fprintf(stderr, "text: %s\n", text);
	CHECK_EQ_INT(v != NULL, quick);
	if (v != NULL)
		CHECK_EQ_INT(n, used);
	json_decref(v);
}

TEST(plan_json_reads_the_value_a_text_starts_with)
{
	check_prefix("{\"a\": [1, {}]}, {\"b\": 2}]}", 14, true);
	check_prefix("  [1, 2] ,", 8, true);
	check_prefix("{}}", 2, true);
	check_prefix("{\"a\": 1", 0, false);
	check_prefix("{\"a\": 1.5}, {}", 0, false);
	check_prefix("{\"a\": \"\\n\"}", 0, false);
	check_prefix("{\"a\": 1, \"a\": 2}", 0, false);
}
