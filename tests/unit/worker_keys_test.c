/* Provider keys: read from the supervisor's descriptor, taken out of the environment. */
#include "common/envsecret.h"
#include "common/util.h"
#include "tests/unit/test.h"
#include "worker/keys.h"

#include <unistd.h>

/* A pipe holding `n` bytes of `data`, its write end closed; returns the read end. */
static int keys_pipe(const char *data, size_t n)
{
	int p[2];

	CHECK(pipe(p) == 0);
	CHECK(write(p[1], data, n) == (ssize_t)n);
	close(p[1]);
	return p[0];
}

TEST(worker_keys_come_from_the_descriptor_and_leave_the_environment)
{
	static const char data[] = "ANTHROPIC_API_KEY=sk-ant-fd\0OPENAI_API_KEY=sk-oai-fd\0";
	char err[160];
	const char *before;
	int fd = keys_pipe(data, sizeof data - 1);

	setenv("ANTHROPIC_API_KEY", "sk-ant-env", 1);
	before = getenv("ANTHROPIC_API_KEY");
	CHECK_EQ_STR(keys_get("ANTHROPIC_API_KEY"), "sk-ant-env"); /* not loaded yet */
	CHECK_EQ_INT(keys_load(fd, err, sizeof err), 0);
	CHECK_EQ_STR(keys_get("ANTHROPIC_API_KEY"), "sk-ant-fd");
	CHECK_EQ_STR(keys_get("OPENAI_API_KEY"), "sk-oai-fd");
	CHECK(keys_get("HOME") == NULL);
	CHECK(getenv("ANTHROPIC_API_KEY") == NULL);
	CHECK_EQ_INT(before[0], '\0'); /* the bytes the environment held are wiped */
	CHECK(close(fd) != 0);         /* the descriptor was closed */
}

TEST(worker_keys_refuse_a_descriptor_holding_something_else)
{
	static const struct {
		const char *data;
		size_t n;
	} bad[] = {
		{ "PATH=/bin\0", 10 },
		{ "ANTHROPIC_API_KEY=unterminated", 30 },
		{ "novalue\0", 8 },
	};
	char err[160];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_EQ_INT(keys_load(keys_pipe(bad[i].data, bad[i].n), err, sizeof err), -1);
		CHECK(strstr(err, "NAME=value") != NULL);
	}
}

TEST(env_secret_take_wipes_every_copy)
{
	char *v;

	setenv("AUTOPACK_TEST_SECRET", "s3cret", 1);
	v = env_secret_take("AUTOPACK_TEST_SECRET");
	CHECK_EQ_STR(v, "s3cret");
	CHECK(getenv("AUTOPACK_TEST_SECRET") == NULL);
	CHECK(env_secret_take("AUTOPACK_TEST_SECRET") == NULL);
	free(v);
}
