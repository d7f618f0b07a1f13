#include "common/checklog.h"
#include "common/fingerprint/fingerprint.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <stdlib.h>
#include <string.h>

/* checklog_path's name for (run, phase) and attempt, stderr, without the directory. */
static char *name_of(const char *run, const char *phase, int64_t attempt)
{
	char *p = checklog_path("ws", run, phase, attempt, "stderr");
	char *n = xstrdup(p + strlen("ws/.autopack/logs/"));

	free(p);
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

TEST(checklog_names_keep_plain_ids_as_they_are)
{
	char *n = name_of("billing-api", "phase_01.v2", 4);

	CHECK_EQ_STR(n, "billing-api__phase_01.v2__a4.stderr.txt");
	free(n);
}

TEST(checklog_names_mark_ids_that_could_share_a_name)
{
	static const char *const ids[] = { "a_", "_b", "x y", "x__y", "x/y", ".hidden", "",
		"r\xc3\xa9" };

	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		char *n = name_of(ids[i], "p", 1);
		char *dash = strstr(n, "__p__a1.stderr.txt");

		/* The id's safe form, "-", 8 hex digits. */
		CHECK(dash != NULL && dash - n >= 9 && dash[-9] == '-');
		for (int k = 8; dash != NULL && k >= 1; k--)
			CHECK(strchr("0123456789abcdef", dash[-k]) != NULL);
		free(n);
	}
}

/* Every (run, phase) pair of ids up to three bytes over 'a', '_', '.', '/' and ' ' gets a
 * name of its own. */
TEST(checklog_names_differ_for_every_pair_of_ids)
{
	static const char alphabet[] = "a_./ ";
	char ids[160][4];
	size_t nids = 0, n = 0;
	char **names;

	for (size_t len = 1; len <= 3; len++) {
		size_t count = 1;

		for (size_t k = 0; k < len; k++)
			count *= 5;
		for (size_t v = 0; v < count; v++) {
			size_t x = v;

			for (size_t k = 0; k < len; k++, x /= 5)
				ids[nids][k] = alphabet[x % 5];
			ids[nids][len] = '\0';
			nids++;
		}
	}
	names = xcalloc(nids * nids, sizeof *names);
	for (size_t r = 0; r < nids; r++)
		for (size_t p = 0; p < nids; p++)
			names[n++] = name_of(ids[r], ids[p], 1);
	qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 1; i < n; i++)
		CHECK(strcmp(names[i - 1], names[i]) != 0);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Ids as long as a plan may give (128 bytes each) made a name past NAME_MAX: the check's
 * log could not be created and every attempt failed CHECK_NOT_RUN. Two such ids now
 * keep their first 101 bytes and a hash each; ids that fit keep their names. */
TEST(checklog_names_of_long_ids_fit_a_file_name)
{
	char run[300], phase[300], other[300], *n, *m;

	memset(run, 'r', 128);
	run[128] = '\0';
	memset(phase, 'p', 128);
	phase[128] = '\0';
	n = name_of(run, phase, INT64_MAX);
	CHECK(strlen(n) <= 255);
	CHECK(strncmp(n, run, 101) == 0 && n[101] == '-');
	CHECK(strstr(n, "__pppp") != NULL && strstr(n, "__a9223372036854775807.stderr.txt"));
	/* Another phase with the same first 101 bytes gets a name of its own. */
	memcpy(other, phase, 129);
	other[127] = 'q';
	m = name_of(run, other, INT64_MAX);
	CHECK(strcmp(n, m) != 0);
	free(m);
	free(n);
	/* One long id beside a short one fits as it is. */
	n = name_of(run, "p", 1);
	CHECK(strncmp(n, run, 128) == 0 && strcmp(n + 128, "__p__a1.stderr.txt") == 0);
	free(n);
}

/* A failure naming its log has one fingerprint whatever the attempt: the names stay
 * within what the fingerprint takes as a path. */
TEST(checklog_names_leave_the_failure_fingerprint_alone)
{
	static const char *const runs[] = { "plain", "a_", "x y", "r\xc3\xa9" };

	for (size_t i = 0; i < ARRAY_SIZE(runs); i++) {
		char fp[2][512];

		for (int a = 0; a < 2; a++) {
			char *log = checklog_path("/srv/ws", runs[i], "p", a + 1, "stderr");
			char *msg = xasprintf("check command exited 1 (stderr: %s): boom", log);

			fp_normalise(msg, fp[a], sizeof fp[a]);
			free(msg);
			free(log);
		}
		CHECK_EQ_STR(fp[0], fp[1]);
	}
}
