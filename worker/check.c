/* Running a phase's check command with a deadline, in a process group of its own inside
 * the worker's session, with a minimal environment. */
#include "worker/check.h"
#include "worker/capture.h"
#include "common/checklog.h"
#include "common/log.h"
#include "common/procs.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

	if ((mkdir(a, 0700) != 0 && errno != EEXIST) || (mkdir(b, 0700) != 0 && errno != EEXIST)) {
		snprintf(err, errlen, "cannot create %s: %s", b, strerror(errno));
		rc = -1;
	}
	free(a);
	free(b);
	return rc;
}

/* Wait up to `ms` milliseconds for output on the streams still open and capture it. */
static void check_drain(struct capture cap[2], int ms)
{
	struct pollfd pfd[2];
	nfds_t n = 0;
	int i;

	for (i = 0; i < 2; i++)
		if (cap[i].in >= 0)
			pfd[n++] = (struct pollfd){ .fd = cap[i].in, .events = POLLIN };
	if (n == 0) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		return;
	}
	if (poll(pfd, n, ms) <= 0)
		return;
	for (i = 0; i < 2; i++)
		if (cap[i].in >= 0 && capture_read(&cap[i]) < 0)
			log_warn("reading the check command's output: %s", strerror(errno));
}

/* The process group of the check running now, for check_kill_running. */
static volatile pid_t check_pgid;

void check_kill_running(void)
{
	pid_t pg = check_pgid;

	if (pg > 0)
		kill(-pg, SIGKILL);
}

/* The variables a check command gets from the worker's environment; nothing else. */
static const char *const check_env_kept[] = { "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL",
	"LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", NULL };
#define CHECK_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

extern char **environ;

/* Build the check's minimal environment into env (room for `max` entries). */
static void check_env(char **env, size_t max)
{
	size_t n = 0, i, k;
	char **e;

	for (i = 0; check_env_kept[i] != NULL && n + 2 < max; i++) {
		k = strlen(check_env_kept[i]);
		for (e = environ; *e != NULL; e++) {
			if (strncmp(*e, check_env_kept[i], k) == 0 && (*e)[k] == '=') {
				env[n++] = *e;
				break;
			}
		}
		if (*e == NULL && i == 0)
			env[n++] = (char *)"PATH=" CHECK_DEFAULT_PATH;
	}
	env[n] = NULL;
}

/* Child side: a process group of its own in the worker's session (which has no terminal,
 * and which the supervisor takes down whole when it loses the worker), killed with the
 * worker, a minimal environment, stdio to the logs and no other descriptor, then the
 * shell. Reports a failure to start on `status_fd` (close-on-exec) and exits 126/127.
 * Never returns. */
static void check_child(
    const struct check_spec *spec, int out_fd, int err_fd, int status_fd, pid_t worker)
{
	char *env[16];
	int null_fd = open("/dev/null", O_RDONLY);

	if (setpgid(0, 0) != 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != worker) {
		dprintf(status_fd, "cannot detach the check command: %s", strerror(errno));
		_exit(126);
	}
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (chdir(spec->workspace) != 0) {
		dprintf(
		    status_fd, "cannot enter workspace %s: %s", spec->workspace, strerror(errno));
		_exit(126);
	}
	if (null_fd >= 0)
		dup2(null_fd, 0);
	dup2(out_fd, 1);
	dup2(err_fd, 2);
	/* Nothing but stdio reaches the command: not the supervisor's socket (a forged frame
	 * would pass for the worker's), not whatever the worker inherited. */
	procs_cloexec_from(3);
	check_env(env, ARRAY_SIZE(env));
	execve("/bin/sh",
	    (char *const[]){ (char *)"sh", (char *)"-c", (char *)spec->command, NULL }, env);
	dprintf(status_fd, "cannot run /bin/sh: %s", strerror(errno));
	_exit(127);
}

/* Fork the check; wait until it runs the shell (its group made) or failed to start.
 * Returns the pid, or -1 with `err`. */
static pid_t check_start(
    const struct check_spec *spec, int out_fd, int err_fd, char *err, size_t errlen)
{
	int sp[2], status;
	char msg[256];
	ssize_t n;
	pid_t pid, self = getpid();

	if (pipe2(sp, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "cannot start the check command: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot start the check command: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		close(sp[0]);
		check_child(spec, out_fd, err_fd, sp[1], self);
	}
	close(sp[1]);
	check_pgid = pid;
	while ((n = read(sp[0], msg, sizeof msg - 1)) < 0 && errno == EINTR)
		;
	close(sp[0]);
	if (n <= 0)
		return pid; /* the exec closed the pipe: the shell runs */
	msg[n] = '\0';
	snprintf(err, errlen, "%s", msg);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	check_pgid = 0;
	return -1;
}

int check_run(const struct check_spec *spec, struct check_result *out, char *err, size_t errlen)
{
	uint64_t start = clock_mono_ms(), last_beat = start, term_at = 0, end;
	int log_fd[2] = { -1, -1 }, pipe_fd[2][2] = { { -1, -1 }, { -1, -1 } };
	struct capture cap[2];
	int status = 0, rc = -1, i;
	pid_t pid;

	memset(out, 0, sizeof *out);
	memset(cap, 0, sizeof cap);
	cap[0].in = cap[1].in = -1;
	out->stdout_path = checklog_path(
	    spec->workspace, spec->run_id, spec->phase_id, spec->attempt, "stdout");
	out->stderr_path = checklog_path(
	    spec->workspace, spec->run_id, spec->phase_id, spec->attempt, "stderr");
	if (check_mkdirs(spec->workspace, err, errlen) < 0)
		goto out;
	log_fd[0] = open(out->stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	log_fd[1] = open(out->stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd[0] < 0 || log_fd[1] < 0) {
		snprintf(err, errlen, "cannot open check logs under %s/.autopack/logs: %s",
		    spec->workspace, strerror(errno));
		goto out;
	}
	/* The command writes into pipes that the worker drains into the logs, capped. */
	if (pipe2(pipe_fd[0], O_CLOEXEC) != 0 || pipe2(pipe_fd[1], O_CLOEXEC) != 0) {
		snprintf(err, errlen, "cannot start the check command: %s", strerror(errno));
		goto out;
	}
	pid = check_start(spec, pipe_fd[0][1], pipe_fd[1][1], err, errlen);
	for (i = 0; i < 2; i++) {
		close(pipe_fd[i][1]);
		pipe_fd[i][1] = -1;
		capture_init(&cap[i], pipe_fd[i][0], log_fd[i]);
	}
	if (pid < 0)
		goto out;
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
		check_drain(cap, now - start < 200 ? 10 : 50);
	}
	/* Nothing the check started may outlive it: its group, whatever else of the worker's
	 * session (a process that moved to a group of its own), and every child of the
	 * worker, a child subreaper (a process that left the session and was orphaned). */
	kill(-pid, SIGKILL);
	check_pgid = 0;
	if (getsid(0) == getpid() &&
	    procs_session_kill(getpid(), getpid(), procs_keep_none, NULL, CHECK_GRACE_MS) < 0)
		log_warn("processes the check command started are still alive %d ms after"
		         " SIGKILL",
		    CHECK_GRACE_MS);
	/* What is left in the pipes; a writer that escaped the kill is not waited for long. */
	end = clock_mono_ms() + CHECK_GRACE_MS;
	while ((cap[0].in >= 0 || cap[1].in >= 0) && clock_mono_ms() < end)
		check_drain(cap, 50);
	if (WIFEXITED(status)) {
		out->exit_code = WEXITSTATUS(status);
	} else {
		out->exit_code = -1;
		out->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
	out->duration_ms = (int64_t)(clock_mono_ms() - start);
	rc = 0;
out:
	for (i = 0; i < 2; i++) {
		if (log_fd[i] >= 0 && capture_finish(&cap[i]) > 0)
			log_info(
			    "check output of %s/%s attempt %lld on %s exceeded %u KiB: its log "
			    "keeps the first and last %u KiB",
			    spec->run_id, spec->phase_id, (long long)spec->attempt,
			    i == 0 ? "stdout" : "stderr",
			    (CAPTURE_HEAD_MAX + CAPTURE_TAIL_MAX) >> 10, CAPTURE_HEAD_MAX >> 10);
		if (log_fd[i] >= 0 && cap[i].write_errno != 0)
			log_warn("writing the check log %s: %s",
			    i == 0 ? out->stdout_path : out->stderr_path,
			    strerror(cap[i].write_errno));
		if (pipe_fd[i][0] >= 0)
			close(pipe_fd[i][0]);
		if (pipe_fd[i][1] >= 0)
			close(pipe_fd[i][1]);
		if (log_fd[i] >= 0)
			close(log_fd[i]);
	}
	/* From what the command sent, not from the logs: a log the disk refused holds less, or
	 * nothing, and the excerpt would be the other stream's under stderr's name. */
	if (rc == 0 && capture_last(&cap[1], out->excerpt, sizeof out->excerpt) == 0)
		capture_last(&cap[0], out->excerpt, sizeof out->excerpt);
	if (rc == 0)
		out->stderr_log_errno = cap[1].write_errno;
	return rc;
}

void check_result_free(struct check_result *r)
{
	free(r->stdout_path);
	free(r->stderr_path);
	r->stdout_path = r->stderr_path = NULL;
}
