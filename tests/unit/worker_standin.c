/* Running the LLM stand-in as a child of a unit test. */
#include "tests/unit/worker_standin.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t standin_pid;

/* Stop a stand-in left running by a failed CHECK. */
static void standin_atexit(void)
{
	if (standin_pid > 0) {
		kill(standin_pid, SIGKILL);
		waitpid(standin_pid, NULL, 0);
		standin_pid = 0;
	}
}

/* The source tree: $AUTOPACK_SRCDIR, else three levels above the test binary. */
static char *standin_srcdir(void)
{
	const char *env = getenv("AUTOPACK_SRCDIR");
	char exe[PATH_MAX];
	ssize_t n;
	int up;

	if (env != NULL && env[0] != '\0')
		return xstrdup(env);
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	CHECK(n > 0);
	exe[n] = '\0';
	for (up = 0; up < 4; up++)
		*strrchr(exe, '/') = '\0';
	return xstrdup(exe);
}

void standin_start(struct standin *s, const char *script, const char *key)
{
	char *src = standin_srcdir();
	char *path = xasprintf("%s/tests/llm_standin.py", src);
	char buf[32];
	size_t got = 0;
	int fds[2];
	FILE *f;

	f = fopen("script.json", "w");
	CHECK(f != NULL);
	fputs(script, f);
	fclose(f);
	CHECK(pipe(fds) == 0);
	s->pid = fork();
	CHECK(s->pid >= 0);
	if (s->pid == 0) {
		int log = open("standin.err", O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fds[1], 3);
		dup2(log, 1);
		dup2(log, 2);
		execl("/usr/bin/python3", "python3", path, "--port-file", "/dev/fd/3", "--script",
		    "script.json", "--log", "standin.log", "--expect-key", key, "--max-seconds",
		    "120", (char *)NULL);
		_exit(127);
	}
	standin_pid = s->pid;
	atexit(standin_atexit);
	close(fds[1]);
	while (got < sizeof buf - 1) {
		ssize_t r = read(fds[0], buf + got, 1);
		if (r <= 0 || buf[got] == '\n')
			break;
		got++;
	}
	buf[got] = '\0';
	close(fds[0]);
	s->port = atoi(buf);
	if (s->port <= 0)
		fprintf(stderr, "stand-in did not start (%s); see standin.err\n", path);
	CHECK(s->port > 0);
	snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
	snprintf(s->base_v1, sizeof s->base_v1, "http://127.0.0.1:%d/v1", s->port);
	free(path);
	free(src);
}

void standin_stop(struct standin *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
	standin_pid = 0;
}

char *standin_log_raw(void)
{
	FILE *f = fopen("standin.log", "r");
	struct stat st;
	char *buf;
	size_t n;

	if (f == NULL)
		return xstrdup("");
	CHECK(fstat(fileno(f), &st) == 0);
	buf = xmalloc((size_t)st.st_size + 1);
	n = fread(buf, 1, (size_t)st.st_size, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

json_t *standin_log(void)
{
	char *raw = standin_log_raw(), *line = raw, *nl;
	json_t *arr = json_array();

	while ((nl = strchr(line, '\n')) != NULL) {
		json_error_t e;
		json_t *j = json_loadb(line, (size_t)(nl - line), 0, &e);
		CHECK(j != NULL);
		json_array_append_new(arr, j);
		line = nl + 1;
	}
	free(raw);
	return arr;
}

int standin_dead_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}
