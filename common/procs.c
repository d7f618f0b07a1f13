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
#include <sys/prctl.h>
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
	long threads;             /* its number of threads; 0 when not read */
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
	st->threads = 0;
	if (sscanf(p,
	        " %c %d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %ld %*d %llu",
	        &st->state, &ppid, &pgrp, &sid, &st->threads, &st->start) < 4)
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
 * children. Returns the live ones seen and the children reaped (a next pass is wanted
 * while either is not 0), or -1 when /proc cannot be read. */
static int procs_scan_pass(pid_t sid, pid_t self, procs_keep_fn *keep, void *ctx, int *killed)
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
		/* A child that died may have handed its own children to the caller after this
		 * pass read the caller's (or theirs): reaped, it has one more pass look again. */
		if (st.state == 'Z' || st.state == 'X') {
			if (st.ppid == me && waitpid(pid, NULL, WNOHANG) == pid)
				live++;
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

/* A growing list of pids. */
struct procs_list {
	pid_t *v;
	size_t n, cap;
};

static void procs_list_add(struct procs_list *l, pid_t pid)
{
	if (l->n == l->cap) {
		l->cap = l->cap != 0 ? 2 * l->cap : 64;
		l->v = xrealloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = pid;
}

/* Append to `l` the pids /proc/<pid>/task/<tid>/children names: the children of thread
 * tid (those it started, and the orphans handed to it as a reaper). Returns 0, or -1
 * with errno when the file cannot be opened or read (ENOENT: the thread is gone, or the
 * kernel has no such file). */
static int procs_task_children(pid_t pid, pid_t tid, struct procs_list *l)
{
	char path[64], buf[4096];
	long cur = 0;
	bool digits = false;
	ssize_t k;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	/* "pid pid ... ": a number may be split between two reads. */
	while ((k = read(fd, buf, sizeof buf)) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		for (ssize_t i = 0; i < k; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				cur = cur * 10 + (buf[i] - '0');
				digits = true;
			} else if (digits) {
				procs_list_add(l, (pid_t)cur);
				cur = 0;
				digits = false;
			}
		}
	}
	if (digits)
		procs_list_add(l, (pid_t)cur);
	close(fd);
	return 0;
}

/* Append the children of process `pid` to `l`: from its one thread's file when it has
 * one thread (`threads` 1), else from the file of each thread /proc/<pid>/task lists (a
 * thread gone meanwhile is passed over). Returns 0, or -1 with errno when the process's
 * threads, or its own thread's file, cannot be read. */
static int procs_children(pid_t pid, long threads, struct procs_list *l)
{
	char path[48];
	struct dirent *e;
	int rc = 0;
	DIR *d;

	if (threads == 1)
		return procs_task_children(pid, pid, l);
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		pid_t tid = (pid_t)atoi(e->d_name);

		if (tid > 0 && procs_task_children(pid, tid, l) != 0 &&
		    (tid == pid || errno != ENOENT))
			rc = -1;
	}
	closedir(d);
	return rc;
}

/* More processes than this in one walk of the caller's descendants (each at most once
 * but for one reparented during the walk) and it is left to the scan of /proc. */
#define PROCS_WALK_MAX (1 << 22)

/* One pass over the caller's descendants, as procs_scan_pass over /proc, for a caller
 * that is a child subreaper and in whose tree session sid began: every process the session
 * or the orphans could hold then descends from the caller (an orphan goes to the nearest
 * subreaper above it), and none of them from a child the caller keeps (a process enters a
 * session only as its founder's descendant). A process's children are read before it is
 * killed: once it is dead they are another's in the tree, read by the next pass. Returns
 * the live ones seen and the children reaped (as procs_scan_pass), or -2 when the
 * caller's children cannot be read (a kernel without /proc/<pid>/task/<tid>/children) or
 * the walk is past PROCS_WALK_MAX. */
static int procs_walk_pass(pid_t sid, pid_t self, procs_keep_fn *keep, void *ctx, int *killed)
{
	pid_t me = getpid();
	struct procs_list l = { 0 };
	int live = 0;

	if (procs_children(me, 0, &l) != 0) {
		free(l.v);
		return -2;
	}
	for (size_t i = 0; i < l.n; i++) {
		pid_t pid = l.v[i];
		struct procs_stat st;
		bool child;

		if (i >= PROCS_WALK_MAX) {
			live = -2;
			break;
		}
		if (pid <= 0 || pid == self || pid == me || procs_stat_read(pid, &st) != 0)
			continue;
		if (st.ppid == me && keep != NULL && keep(pid, ctx))
			continue;
		child = st.ppid == me && keep != NULL;
#ifdef AUTOPACK_MUTANT_orphans_left
		child = false;
#endif
		/* A child that died may have handed its own children to the caller after this
		 * pass read the caller's (or theirs): reaped, it has one more pass look again. */
		if (st.state == 'Z' || st.state == 'X') {
			if (st.ppid == me && waitpid(pid, NULL, WNOHANG) == pid)
				live++;
			continue;
		}
		(void)procs_children(pid, st.threads, &l);
		if (st.sid != sid && !child)
			continue;
		live++;
		/* A child's pid is the caller's until it reaps it: no reuse to guard against. */
		if (child && st.sid != sid)
			*killed += kill(pid, SIGKILL) == 0;
		else
			*killed += procs_kill_member(pid, sid);
	}
	free(l.v);
	return live;
}

int procs_session_kill(pid_t sid, pid_t self, procs_keep_fn *keep, void *ctx, unsigned wait_ms)
{
	uint64_t until = clock_mono_ms() + wait_ms;
	long nap_us = 500;
	int killed = 0, live, reaper = 0;
	/* Without the subreaper, an orphan may have gone out of the caller's tree. */
	bool walk = prctl(PR_GET_CHILD_SUBREAPER, &reaper) == 0 && reaper != 0;

	if (sid <= 1)
		return 0;
	for (;;) {
		struct timespec ts = { 0, nap_us * 1000 };

		live = walk ? procs_walk_pass(sid, self, keep, ctx, &killed) : -2;
		if (live == -2) {
			walk = false;
			live = procs_scan_pass(sid, self, keep, ctx, &killed);
		}
		if (live <= 0)
			break;
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
