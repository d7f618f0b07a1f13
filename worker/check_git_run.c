/* Git run by the worker on a workspace's repository, with every setting that runs a
 * program turned off. */
#include "worker/check_git_run.h"
#include "common/procs.h"
#include "common/sysdirs.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *const check_git_run_settings[] = {
	"core.hooksPath=/dev/null", /* no hook, .husky's included */
	"core.fsmonitor=false",     /* no fsmonitor hook on reading the index */
	"core.untrackedCache=false",
	"core.sshCommand=false",
	"core.gitProxy=",
	"core.askPass=",
	"core.pager=cat",
	"core.editor=false",
	"core.alternateRefsCommand=",
	"credential.helper=",
	"diff.external=",
	"protocol.allow=never", /* no transport: nothing fetched, no helper run */
	"uploadpack.packObjectsHook=",
	"safe.directory=*", /* the worker's own run: nothing of the repository's runs anyway */
	"gc.auto=0",        /* no background gc */
	"maintenance.auto=false",
	"submodule.recurse=false",
	"user.name=autopack",
	"user.email=autopack@localhost",
	NULL,
};

/* Find an executable `git` in the worker's PATH: absolute directories only, none that
 * `worktree` (NULL for none) holds. Fills `path`; false when there is none. */
static bool check_git_find(const char *worktree, char *path, size_t n)
{
	const char *env = getenv("PATH");
	char dirs[4096], *tok, *save, real[PATH_MAX], ws[PATH_MAX] = "";
	struct stat sb;

	snprintf(dirs, sizeof dirs, "%s", env != NULL && env[0] != '\0' ? env : "/usr/bin:/bin");
	if (worktree != NULL && realpath(worktree, ws) == NULL)
		ws[0] = '\0';
	for (tok = strtok_r(dirs, ":", &save); tok != NULL; tok = strtok_r(NULL, ":", &save)) {
		if (tok[0] != '/' || realpath(tok, real) == NULL ||
		    (ws[0] != '\0' && path_holds(ws, real)))
			continue;
		snprintf(path, n, "%s/git", real);
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0)
			return true;
	}
	return false;
}

/* Run `git` (a path) with `argv` on `gitdir`, as check_git_run does. */
static int check_git_exec(const char *git, const char *const *argv, const char *gitdir,
    const char *worktree, char *out, size_t outlen, void (*heartbeat)(void *ctx), void *ctx);

/* Fill `set` (CHECK_GIT_FILTER_MAX names of CHECK_GIT_FILTER_LEN bytes) with the names of
 * the filters the repository's settings define (filter.<name>.*, includes followed), as
 * `git config` lists them. Returns how many, or -1 when there are more, or a name too
 * long, or git cannot list them. */
#define CHECK_GIT_FILTER_MAX 16
#define CHECK_GIT_FILTER_LEN 256
static int check_git_filters(const char *git, const char *gitdir, char set[][CHECK_GIT_FILTER_LEN],
    void (*heartbeat)(void *ctx), void *ctx)
{
	const char *argv[] = { "git", "config", "--name-only", "--get-regexp", "^filter\\.", NULL };
	char out[8192], *line, *save, *dot;
	int n = 0, rc;

	rc = check_git_exec(git, argv, gitdir, NULL, out, sizeof out, heartbeat, ctx);
	if (rc == 1)
		return 0; /* none */
	if (rc != 0 || strlen(out) + 1 >= sizeof out)
		return -1;
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		bool seen = false;

		/* filter.<name>.<key>: the name may hold dots, the key does not. */
		if (strncmp(line, "filter.", 7) != 0 || (dot = strrchr(line + 7, '.')) == NULL)
			continue;
		*dot = '\0';
		if (strlen(line + 7) + 1 > CHECK_GIT_FILTER_LEN - 16)
			return -1;
		for (int i = 0; i < n && !seen; i++)
			seen = strcmp(set[i], line + 7) == 0;
		if (seen)
			continue;
		if (n == CHECK_GIT_FILTER_MAX)
			return -1;
		snprintf(set[n++], CHECK_GIT_FILTER_LEN, "%s", line + 7);
	}
	return n;
}

int check_git_run(const char *gitdir, const char *worktree, const char *const *args, char *out,
    size_t outlen, void (*heartbeat)(void *ctx), void *ctx)
{
	static const char *const keys[] = { "clean=", "smudge=", "process=", "required=false" };
	char names[CHECK_GIT_FILTER_MAX][CHECK_GIT_FILTER_LEN];
	char off[CHECK_GIT_FILTER_MAX * ARRAY_SIZE(keys)][CHECK_GIT_FILTER_LEN + 32];
	const char *argv[64 + 2 * ARRAY_SIZE(off)];
	char git[PATH_MAX + 8];
	size_t a = 0, o = 0;
	int nf;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (!check_git_find(worktree, git, sizeof git))
		return -1;
	/* A filter's commands cannot be turned off for every name at once: each one the
	 * settings define is, by its name; with more than can be named, git is not run. */
	if ((nf = check_git_filters(git, gitdir, names, heartbeat, ctx)) < 0)
		return -1;
	argv[a++] = "git";
	argv[a++] = "--no-pager";
	for (size_t i = 0; check_git_run_settings[i] != NULL; i++) {
		argv[a++] = "-c";
		argv[a++] = check_git_run_settings[i];
	}
	for (int f = 0; f < nf; f++)
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
			snprintf(off[o], sizeof off[o], "filter.%.240s.%s", names[f], keys[i]);
			argv[a++] = "-c";
			argv[a++] = off[o++];
		}
	for (size_t i = 0; args[i] != NULL && a + 1 < ARRAY_SIZE(argv); i++)
		argv[a++] = args[i];
	argv[a] = NULL;
	return check_git_exec(git, argv, gitdir, worktree, out, outlen, heartbeat, ctx);
}

static int check_git_exec(const char *git, const char *const *argv, const char *gitdir,
    const char *worktree, char *out, size_t outlen, void (*heartbeat)(void *ctx), void *ctx)
{
	char env_dir[PATH_MAX + 16], env_wt[PATH_MAX + 24];
	char *env[24];
	size_t e = 0, got = 0;
	int pfd[2], status = 0, null_fd;
	uint64_t start = clock_mono_ms(), beat = start;
	bool killed = false;
	pid_t pid, w;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	snprintf(env_dir, sizeof env_dir, "GIT_DIR=%s", gitdir);
	env[e++] = env_dir;
	if (worktree != NULL) {
		snprintf(env_wt, sizeof env_wt, "GIT_WORK_TREE=%s", worktree);
		env[e++] = env_wt;
	}
	env[e++] = (char *)"PATH=/usr/bin:/bin";
	env[e++] = (char *)"HOME=/nonexistent";
	env[e++] = (char *)"LC_ALL=C";
	env[e++] = (char *)"GIT_CONFIG_NOSYSTEM=1";
	env[e++] = (char *)"GIT_CONFIG_GLOBAL=/dev/null";
	env[e++] = (char *)"GIT_ATTR_NOSYSTEM=1";
	env[e++] = (char *)"GIT_NO_REPLACE_OBJECTS=1";
	env[e++] = (char *)"GIT_TERMINAL_PROMPT=0";
	env[e++] = (char *)"GIT_OPTIONAL_LOCKS=0";
	env[e++] = (char *)"GIT_PROTOCOL_FROM_USER=0";
	env[e++] = (char *)"GIT_ALLOW_PROTOCOL=";
	env[e++] = (char *)"GIT_COMMITTER_NAME=autopack";
	env[e++] = (char *)"GIT_COMMITTER_EMAIL=autopack@localhost";
	env[e] = NULL;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		null_fd = open("/dev/null", O_RDWR);
		if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(pfd[1], 1) < 0 ||
		    dup2(null_fd, 2) < 0)
			_exit(127);
		procs_cloexec_from(3);
		signal(SIGPIPE, SIG_DFL);
		execve(git, (char *const *)argv, env);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		uint64_t now = clock_mono_ms();
		char buf[4096];
		ssize_t n;

		if (heartbeat != NULL && now - beat >= 500) {
			heartbeat(ctx);
			beat = now;
		}
		if (now - start >= CHECK_GIT_RUN_MS) {
			kill(pid, SIGKILL);
			killed = true;
			break;
		}
		if (poll(&p, 1, 250) <= 0)
			continue;
		n = read(pfd[0], buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out != NULL && got + 1 < outlen) {
			size_t take = (size_t)n < outlen - 1 - got ? (size_t)n : outlen - 1 - got;

			memcpy(out + got, buf, take);
			got += take;
			out[got] = '\0';
		}
	}
	close(pfd[0]);
	/* Its stdout closed: it ends at once (or was killed). */
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (w != pid || killed || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}
