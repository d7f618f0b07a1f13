/* Descriptors closed at exec and a session's processes taken down. */
#include "common/procs.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Set FD_CLOEXEC on fd. */
static void procs_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl >= 0 && (fl & FD_CLOEXEC) == 0)
		fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

void procs_stdio_open(void)
{
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		int got;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* the lowest free number is `fd`: those below it are open */
		if ((got = open("/dev/null", O_RDONLY)) >= 0 && got != fd)
			close(got);
	}
}

void procs_cloexec_from(int first)
{
	struct rlimit rl;
	struct dirent *e;
	DIR *d;

	if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((e = readdir(d)) != NULL) {
			int fd = atoi(e->d_name);

			if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd >= first &&
			    fd != dirfd(d))
				procs_cloexec(fd);
		}
		closedir(d);
		return;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = 65536;
	for (int fd = first; (rlim_t)fd < rl.rlim_cur; fd++)
		procs_cloexec(fd);
}

/* What /proc/<pid>/stat says of a process. */
struct procs_stat {
	char state;
	pid_t ppid;
	pid_t sid;
	unsigned long long start; /* clock ticks after boot; 0 when not read */
};

const char *procs_stat_text(pid_t pid, char *buf, size_t n)
{
	char path[32], *p;
	size_t got = 0;
	ssize_t k;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (n < 2 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	while (got < n - 1) {
		k = read(fd, buf + got, n - 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	buf[got] = '\0';
	/* "pid (comm) state ppid ...": comm may hold anything but ends at the last ')'. */
	if (got == 0 || (p = strrchr(buf, ')')) == NULL)
		return NULL;
	return p + 1;
}

bool procs_comm(pid_t pid, char *buf, size_t n)
{
	char path[32];
	FILE *f;
	bool ok;

	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	if (n == 0)
		return false;
	buf[0] = '\0';
	if ((f = fopen(path, "re")) == NULL)
		return false;
	ok = fgets(buf, (int)n, f) != NULL;
	fclose(f);
	if (!ok)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

/* Read /proc/<pid>/stat. Returns 0, or -1 with errno when the process is gone (or its
 * file cannot be read). */
static int procs_stat_read(pid_t pid, struct procs_stat *st)
{
	char buf[512];
	const char *p;
	int ppid, pgrp, sid;

	errno = 0;
	p = procs_stat_text(pid, buf, sizeof buf);
	if (p == NULL) {
		if (errno == 0)
			errno = ESRCH;
		return -1;
	}
	st->start = 0;
	if (sscanf(p,
	        " %c %d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
	        &st->state, &ppid, &pgrp, &sid, &st->start) < 4)
		return -1;
	st->ppid = ppid;
	st->sid = sid;
	return 0;
}

/* Kill pid if it is still in session sid: through a pidfd, so that a pid reused after the
 * check is never signalled. Returns whether it was signalled. */
static bool procs_kill_member(pid_t pid, pid_t sid)
{
	struct procs_stat st;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool done = false;

	if (pfd < 0) {
		if (errno == ENOSYS)
			return kill(pid, SIGKILL) == 0;
		return false;
	}
	if (procs_stat_read(pid, &st) == 0 && st.sid == sid)
		done = syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) == 0;
	close(pfd);
	return done;
}

bool procs_keep_none(pid_t pid, void *ctx)
{
	(void)pid;
	(void)ctx;
	return false;
}

/* One pass over /proc: kill the live members of session sid (not self) and, with `keep`,
 * the caller's children it does not keep; reap the dead ones that are the caller's
 * children. Returns the live ones seen, or -1 when /proc cannot be read. */
static int procs_session_pass(pid_t sid, pid_t self, procs_keep_fn *keep, void *ctx, int *killed)
{
	pid_t me = getpid();
	struct procs_stat st;
	struct dirent *e;
	int live = 0;
	DIR *d = opendir("/proc");

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(e->d_name);
		bool child;

		if (pid <= 0 || pid == self || procs_stat_read(pid, &st) != 0)
			continue;
		child = st.ppid == me && keep != NULL && !keep(pid, ctx);
#ifdef AUTOPACK_MUTANT_orphans_left
		child = false;
#endif
		if (st.sid != sid && !child)
			continue;
		if (st.state == 'Z' || st.state == 'X') {
			if (st.ppid == me)
				waitpid(pid, NULL, WNOHANG);
			continue;
		}
		live++;
		/* A child's pid is the caller's until it reaps it: no reuse to guard against. */
		if (child && st.sid != sid)
			*killed += kill(pid, SIGKILL) == 0;
		else
			*killed += procs_kill_member(pid, sid);
	}
	closedir(d);
	return live;
}

int procs_session_kill(pid_t sid, pid_t self, procs_keep_fn *keep, void *ctx, unsigned wait_ms)
{
	uint64_t until = clock_mono_ms() + wait_ms;
	long nap_us = 500;
	int killed = 0, live;

	if (sid <= 1)
		return 0;
	while ((live = procs_session_pass(sid, self, keep, ctx, &killed)) > 0) {
		struct timespec ts = { 0, nap_us * 1000 };

		if (clock_mono_ms() >= until)
			return -1;
		nanosleep(&ts, NULL);
		if (nap_us < 20000)
			nap_us *= 2;
	}
	return live < 0 ? -1 : killed;
}

int procs_descends_from(pid_t pid, pid_t ancestor, pid_t *child)
{
	struct procs_stat st, anc;

	if (procs_stat_read(pid, &st) != 0)
		return -1;
	if (procs_stat_read(ancestor, &anc) != 0)
		anc.start = 0;
	/* A chain of parents is at most as long as the processes are many: the bound only
	 * ends a walk that met pids reused meanwhile in a loop. One that reaches a process
	 * started before the ancestor ends there: none above it descends from it. */
	for (int depth = 0; depth < 1 << 16; depth++) {
		pid_t parent = st.ppid;

		if (parent == ancestor) {
			*child = pid;
			return 1;
		}
		if (parent <= 1 || procs_stat_read(parent, &st) != 0 ||
		    (st.start != 0 && st.start < anc.start))
			return 0;
		pid = parent;
	}
	return 0;
}

pid_t procs_tracer(pid_t pid)
{
	char path[64], line[256];
	long tracer = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "TracerPid: %ld", &tracer) == 1)
			break;
	fclose(f);
	return tracer >= 0 ? (pid_t)tracer : -1;
}
