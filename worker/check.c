/* Running a phase's check command with a deadline. */
#include "worker/check.h"
#include "common/checklog.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Create <workspace>/.autopack/logs. Returns 0 or -1 with `err`. */
static int check_mkdirs(const char *workspace, char *err, size_t errlen)
{
	char *a = xasprintf("%s/.autopack", workspace);
	char *b = xasprintf("%s/.autopack/logs", workspace);
	int rc = 0;

	if ((mkdir(a, 0755) != 0 && errno != EEXIST) || (mkdir(b, 0755) != 0 && errno != EEXIST)) {
		snprintf(err, errlen, "cannot create %s: %s", b, strerror(errno));
		rc = -1;
	}
	free(a);
	free(b);
	return rc;
}

/* Sleep `ms` milliseconds. */
static void check_nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The process group of the check running now, for check_kill_running. */
static volatile pid_t check_pgid;

void check_kill_running(void)
{
	pid_t pg = check_pgid;

	if (pg > 0)
		kill(-pg, SIGKILL);
}

/* Child side: join a new process group, redirect, exec the shell. Never returns. */
static void check_child(const struct check_spec *spec, int out_fd, int err_fd)
{
	int null_fd = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	/* If the worker dies (even by SIGKILL), so does the check's first process. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The check runs code the model wrote: it gets no provider keys. */
	unsetenv("ANTHROPIC_API_KEY");
	unsetenv("OPENAI_API_KEY");
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (chdir(spec->workspace) != 0) {
		dprintf(err_fd, "autopack: cannot enter workspace %s: %s\n", spec->workspace,
		    strerror(errno));
		_exit(126);
	}
	if (null_fd >= 0)
		dup2(null_fd, 0);
	dup2(out_fd, 1);
	dup2(err_fd, 2);
	execl("/bin/sh", "sh", "-c", spec->command, (char *)NULL);
	dprintf(2, "autopack: cannot run /bin/sh: %s\n", strerror(errno));
	_exit(127);
}

int check_run(const struct check_spec *spec, struct check_result *out, char *err, size_t errlen)
{
	uint64_t start = clock_mono_ms(), last_beat = start, term_at = 0;
	int out_fd = -1, err_fd = -1, status = 0, rc = -1;
	pid_t pid;

	memset(out, 0, sizeof *out);
	out->stdout_path = checklog_path(
	    spec->workspace, spec->run_id, spec->phase_id, spec->attempt, "stdout");
	out->stderr_path = checklog_path(
	    spec->workspace, spec->run_id, spec->phase_id, spec->attempt, "stderr");
	if (check_mkdirs(spec->workspace, err, errlen) < 0)
		goto out;
	out_fd = open(out->stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	err_fd = open(out->stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out_fd < 0 || err_fd < 0) {
		snprintf(err, errlen, "cannot open check logs under %s/.autopack/logs: %s",
		    spec->workspace, strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot start the check command: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		check_child(spec, out_fd, err_fd);
	setpgid(pid, pid);
	check_pgid = pid;
	for (;;) {
		uint64_t now;
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			snprintf(err, errlen, "waiting for the check command: %s", strerror(errno));
			goto out;
		}
		now = clock_mono_ms();
		if (term_at == 0 && now >= spec->deadline_mono_ms) {
			out->timed_out = true;
			term_at = now;
			kill(-pid, SIGTERM);
		} else if (term_at != 0 && now >= term_at + CHECK_GRACE_MS) {
			kill(-pid, SIGKILL);
		}
		if (spec->heartbeat != NULL && now - last_beat >= 500) {
			spec->heartbeat(spec->ctx);
			last_beat = now;
		}
		check_nap(now - start < 200 ? 10 : 50);
	}
	/* Nothing the check started may outlive it. */
	kill(-pid, SIGKILL);
	check_pgid = 0;
	if (WIFEXITED(status)) {
		out->exit_code = WEXITSTATUS(status);
	} else {
		out->exit_code = -1;
		out->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
	out->duration_ms = (int64_t)(clock_mono_ms() - start);
	if (checklog_tail(out->stderr_path, out->excerpt, sizeof out->excerpt) == 0)
		checklog_tail(out->stdout_path, out->excerpt, sizeof out->excerpt);
	rc = 0;
out:
	if (out_fd >= 0)
		close(out_fd);
	if (err_fd >= 0)
		close(err_fd);
	return rc;
}

void check_result_free(struct check_result *r)
{
	free(r->stdout_path);
	free(r->stderr_path);
	r->stdout_path = r->stderr_path = NULL;
}
