/* Runner for the unit tests: "--list" prints every test name; "NAME" runs that test in a
 * new directory under $TMPDIR (or /tmp), so a test's files never land where it was started. */
#include "tests/unit/test.h"
#include "worker/check_init.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

static struct test_case *tests;

void test_register(struct test_case *tc)
{
	tc->next = tests;
	tests = tc;
}

/* Make a new directory under $TMPDIR (or /tmp) and enter it; exit 2 when that fails. */
static void test_enter_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char dir[PATH_MAX];

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (snprintf(dir, sizeof dir, "%s/autopack-unit-XXXXXX", base) >= (int)sizeof dir ||
	    mkdtemp(dir) == NULL || chdir(dir) != 0) {
		fprintf(stderr, "unit-tests: cannot make a directory under %s: %s\n", base,
		    strerror(errno));
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct test_case *tc;

	/* worker/check.c runs its own binary as the init of a check's namespaces. */
	if (argc > 1 && strcmp(argv[1], CHECK_INIT_FLAG) == 0)
		check_init_main(argc, argv);
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
			test_enter_tmpdir();
			tc->fn();
			return 0;
		}
	}
	fprintf(stderr, "unit-tests: no test named %s\n", argv[1]);
	return 2;
}
