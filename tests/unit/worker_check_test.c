/* The check runner: exit codes, log files, deadline kill of the whole process group. */
#include "common/util.h"
#include "tests/unit/test.h"
#include "worker/check.h"

#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static int beats;

static void count_beat(void *ctx)
{
	(void)ctx;
	beats++;
}

/* Run `cmd` in ./ws with `ms` to go. */
static void run_check(const char *cmd, int64_t ms, struct check_result *r)
{
	struct check_spec s = { cmd, "ws", "run 1", "p/1", 2, clock_mono_ms() + (uint64_t)ms, NULL,
		count_beat, NULL, NULL };
	char err[256];

	mkdir("ws", 0755);
	CHECK_EQ_INT(check_run(&s, r, err, sizeof err), 0);
}

/* Read a small file into a static buffer. */
static const char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;

	if (f != NULL)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

/* True when `pid` exists and is not a zombie waiting for its new parent to reap it. */
static bool alive(pid_t pid)
{
	char path[64], state = 'X';
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
		state = 'X';
	fclose(f);
	return state != 'Z' && state != 'X';
}

TEST(worker_check_success_runs_in_workspace_with_logs)
{
	struct check_result r;

	run_check("pwd; echo to-stderr >&2", 10000, &r);
	CHECK_EQ_INT(r.exit_code, 0);
	CHECK(!r.timed_out);
	/* "run 1" and "p/1" lose a character each: their hashes follow. */
	CHECK_EQ_STR(
	    r.stdout_path, "ws/.autopack/logs/run_1-d0a4fcbd__p_1-92d196e3__a2.stdout.txt");
	CHECK(strstr(slurp(r.stdout_path), "/ws\n") != NULL);
	CHECK_EQ_STR(slurp(r.stderr_path), "to-stderr\n");
	CHECK(strstr(r.excerpt, "to-stderr") != NULL);
	check_result_free(&r);
}

TEST(worker_check_failure_reports_exit_code_and_excerpt)
{
	struct check_result r;

	run_check("echo 'AssertionError: 1 != 2' >&2; exit 3", 10000, &r);
	CHECK_EQ_INT(r.exit_code, 3);
	CHECK(strstr(r.excerpt, "AssertionError") != NULL);
	check_result_free(&r);
}

TEST(worker_check_has_no_provider_keys)
{
	struct check_result r;

	setenv("ANTHROPIC_API_KEY", "sk-check-secret", 1);
	setenv("OPENAI_API_KEY", "sk-check-secret", 1);
	run_check("env", 10000, &r);
	CHECK_EQ_INT(r.exit_code, 0);
	CHECK(strstr(slurp(r.stdout_path), "sk-check-secret") == NULL);
	CHECK(strstr(slurp(r.stdout_path), "PATH=") != NULL);
	check_result_free(&r);
}

TEST(worker_check_runs_in_its_own_group_with_a_minimal_environment)
{
	struct check_result r;

	setenv("AUTOPACK_CHECK_PROBE", "leaked", 1);
	setenv("LANG", "C.UTF-8", 1);
	/* The check has a process group of its own (field 5 of the shell's stat, as the
	 * machine numbers it), led by the shell, or in a PID namespace by its init, the
	 * shell's parent (field 4), inside the worker's session (field 6), where the worker can
	 * kill what it leaves. */
	run_check("read -r self _ _ ppid pgrp sid _ < /proc/self/stat;"
	          " echo \"pgrp=$pgrp sid=$sid self=$self ppid=$ppid\"; env",
	    10000, &r);
	CHECK_EQ_INT(r.exit_code, 0);
	{
		const char *out = slurp(r.stdout_path);
		int pgrp = -1, sid = -1, self = -1, ppid = -1;

		CHECK(sscanf(strstr(out, "pgrp="), "pgrp=%d sid=%d self=%d ppid=%d", &pgrp, &sid,
		          &self, &ppid) == 4);
		CHECK(pgrp == self || pgrp == ppid);
		CHECK(pgrp != getpgrp());
		CHECK_EQ_INT(sid, (int)getsid(0));
		CHECK(strstr(out, "LANG=C.UTF-8") != NULL && strstr(out, "PATH=") != NULL);
		CHECK(strstr(out, "AUTOPACK_CHECK_PROBE") == NULL);
	}
	check_result_free(&r);
}

TEST(worker_check_deadline_kills_the_process_group)
{
	struct check_result r;
	pid_t bg;
	int i;

	beats = 0;
	/* The shell ignores TERM and leaves a background sleeper (which records its pid as the
	 * machine numbers it): both must die. */
	run_check("trap '' TERM; sh -c 'read -r p _ < /proc/self/stat; echo $p > bg.pid;"
	          " exec sleep 30' & wait; sleep 30",
	    1200, &r);
	CHECK(r.timed_out);
	CHECK_EQ_INT(r.exit_code, -1);
	CHECK_EQ_INT(r.term_signal, SIGKILL);
	CHECK(beats >= 2);
	bg = (pid_t)atoi(slurp("ws/bg.pid"));
	CHECK(bg > 0);
	/* The sleeper got SIGKILL with its group; wait for it to be gone (it sleeps 30 s
	 * otherwise, longer than this loop waits). */
	for (i = 0; i < 400 && alive(bg); i++)
		usleep(50000);
	CHECK(!alive(bg));
	check_result_free(&r);
}
