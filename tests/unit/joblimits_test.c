/* The limits a phase must satisfy to travel in a job, and the deliverable path rules. */
#include "common/joblimits.h"
#include "common/relpath.h"
#include "common/util.h"
#include "proto/proto.h"
#include "tests/unit/test.h"

#include <string.h>

/* A phase of one deliverable that fits. */
static struct job_phase_text small_phase(const char *const *dl, size_t ndl)
{
	return (struct job_phase_text){ .run_id = "r1",
		.phase_id = "p1",
		.name = "n",
		.description = "d",
		.deliverables = dl,
		.ndeliverables = ndl };
}

TEST(joblimits_equal_the_wire_limits)
{
	CHECK_EQ_INT(JOB_TEXT_MAX, PROTO_STR_MAX);
	CHECK_EQ_INT(JOB_NAME_MAX, PROTO_NAME_MAX);
	CHECK_EQ_INT(JOB_PATH_MAX, PROTO_PATH_MAX);
	CHECK_EQ_INT(JOB_LIST_MAX, PROTO_LIST_MAX);
	/* The phase's share leaves room for the rest of the job in one frame. */
	CHECK(JOB_PHASE_BYTES_MAX + 4 * JOB_PATH_MAX + 64 * 1024 < PROTO_FRAME_MAX_DEFAULT);
}

TEST(joblimits_refuse_each_limit_naming_it)
{
	static const char *one[] = { "out/a.py" };
	struct job_phase_text t = small_phase(one, 1);
	const char **many = xcalloc(JOB_LIST_MAX + 1, sizeof *many);
	char *big = xmalloc(JOB_TEXT_MAX + 2), *path = xmalloc(JOB_PATH_MAX + 2), why[320];
	const char *context[300];
	size_t i;

	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), 0);
	memset(big, 'x', JOB_TEXT_MAX + 1);
	big[JOB_TEXT_MAX + 1] = '\0';
	t.description = big;
	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), -1);
	CHECK_EQ_STR(why, "description: 1048577 bytes; a job carries at most 1048576");
	t = small_phase(one, 1);
	for (i = 0; i <= JOB_LIST_MAX; i++)
		many[i] = xasprintf("out/a%zu.py", i);
	t.deliverables = many;
	t.ndeliverables = JOB_LIST_MAX + 1;
	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), -1);
	CHECK_EQ_STR(why, "scope.deliverables: 4097 entries; a job carries at most 4096");
	t.ndeliverables = JOB_LIST_MAX;
	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), 0);
	memset(path, 'p', JOB_PATH_MAX + 1);
	path[JOB_PATH_MAX + 1] = '\0';
	t = small_phase((const char *const *)&path, 1);
	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), -1);
	CHECK_EQ_STR(why, "scope.deliverables[0]: 4097 bytes; a path is at most 4096 bytes");
	/* Three texts of 1 MiB each fit one by one, not together. */
	big[JOB_TEXT_MAX] = '\0';
	t = small_phase(one, 1);
	t.name = t.description = big;
	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), 0);
	path[JOB_PATH_MAX] = '\0';
	for (i = 0; i < ARRAY_SIZE(context); i++)
		context[i] = path;
	t.context = context;
	t.ncontext = ARRAY_SIZE(context);
	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), -1);
	CHECK(strstr(why, "the phase's text comes to") != NULL);
	/* The check command is one argument of /bin/sh -c: at most MAX_ARG_STRLEN with its NUL. */
	CHECK_EQ_INT(JOB_CHECK_MAX + 1, 32 * 4096);
	t = small_phase(one, 1);
	big[JOB_CHECK_MAX] = '\0';
	t.check = big;
	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), 0);
	big[JOB_CHECK_MAX] = 'x';
	big[JOB_CHECK_MAX + 1] = '\0';
	CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), -1);
	CHECK_EQ_STR(why,
	    "check_command: 131072 bytes; the kernel passes /bin/sh -c a command of at "
	    "most 131071 bytes (one argument, MAX_ARG_STRLEN): put a longer one in a "
	    "script in the workspace and run that");
	for (i = 0; i <= JOB_LIST_MAX; i++)
		free((char *)many[i]);
	free(many);
	free(big);
	free(path);
}

TEST(joblimits_apply_the_workers_deliverable_rules)
{
	static const char *bad[][2] = {
		{ "a\\..\\x", "backslashes are not allowed" },
		{ ".git/config", "the .git directory is reserved" },
		{ "src/.git/hooks/x", "the .git directory is reserved" },
		{ ".autopack/x", "the .autopack directory is reserved" },
		{ ".GIT/hooks/post-checkout", "the .git directory is reserved" },
		{ "src/.Git/config", "the .git directory is reserved" },
		{ ".AutoPack/logs/x", "the .autopack directory is reserved" },
		{ ".", "names the workspace itself, not a file in it" },
		{ "a/../../x", "'..' components are not allowed" },
		{ "/etc/passwd", "absolute paths are not allowed" },
		{ "a\tb", "control characters are not allowed" },
		{ "a\x7f"
		  "b",
		    "control characters are not allowed" },
		{ "a\xc2\x85"
		  "b",
		    "control characters are not allowed" },
		{ "x\xe2\x80\xaegnp.py",
		    "bidirectional-text controls (U+202A-U+202E, U+2066-U+2069) are not allowed" },
		{ "x\xe2\x81\xa9.py",
		    "bidirectional-text controls (U+202A-U+202E, U+2066-U+2069) are not allowed" },
		{ "a/ b.py", "a component is blank or starts or ends with a space" },
		{ "  ", "a component is blank or starts or ends with a space" },
	};
	char why[320], norm[64];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *dl[] = { bad[i][0] };
		struct job_phase_text t = small_phase(dl, 1);

		CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), -1);
		CHECK(strstr(why, bad[i][1]) != NULL);
		CHECK_EQ_STR(relpath_norm(bad[i][0], norm, sizeof norm), bad[i][1]);
	}
	/* A .autopack below the top, and "." as a scope path, are allowed. */
	{
		const char *dl[] = { "docs/.autopack/x" }, *paths[] = { "." };
		struct job_phase_text t = small_phase(dl, 1);

		t.paths = paths;
		t.npaths = 1;
		CHECK_EQ_INT(job_limits_check(&t, why, sizeof why), 0);
	}
	CHECK(relpath_norm("./a//b/./c", norm, sizeof norm) == NULL);
	CHECK_EQ_STR(norm, "a/b/c");
	CHECK(relpath_under("a/b/c", "a/b"));
	CHECK(!relpath_under("a/bc", "a/b"));
}

TEST(relpath_files_check_finds_clashes_wherever_they_sort)
{
	static const char *dir_apart[] = { "a", "a-x.py", "a.py", "a/b.py" };
	static const char *same[] = { "b/c.py", "x.py", "b//c.py" };
	static const char *fine[] = { "a-x/b.py", "a/b.py", "a.py", "ab/c.py" };
	static const char *slash[] = { "ok.py", "dir/" };
	char why[512];

	CHECK_EQ_INT(relpath_files_check("d", dir_apart, 4, why, sizeof why), -1);
	CHECK(strstr(why, "d[0] \"a\" and d[3] \"a/b.py\": one would be both a file") != NULL);
	CHECK_EQ_INT(relpath_files_check("d", same, 3, why, sizeof why), -1);
	CHECK(strstr(why, "d[0] \"b/c.py\" and d[2] \"b//c.py\" name the same file") != NULL);
	CHECK_EQ_INT(relpath_files_check("d", fine, 4, why, sizeof why), 0);
	CHECK_EQ_INT(relpath_files_check("d", slash, 2, why, sizeof why), -1);
	CHECK(strstr(why, "d[1] \"dir/\": ends with \"/\"") != NULL);
	CHECK_EQ_INT(relpath_files_check("d", NULL, 0, why, sizeof why), 0);
}
