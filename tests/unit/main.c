/* Runner for the unit tests: "--list" prints every test name; "NAME" runs that test. */
#include "tests/unit/test.h"

static struct test_case *tests;

void test_register(struct test_case *tc)
{
	tc->next = tests;
	tests = tc;
}

int main(int argc, char **argv)
{
	struct test_case *tc;

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (tc = tests; tc != NULL; tc = tc->next)
			printf("%s\n", tc->name);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: unit-tests --list | unit-tests NAME\n");
		return 2;
	}
	for (tc = tests; tc != NULL; tc = tc->next) {
		if (strcmp(tc->name, argv[1]) == 0) {
			tc->fn();
			return 0;
		}
	}
	fprintf(stderr, "unit-tests: no test named %s\n", argv[1]);
	return 2;
}
