/* An LD_PRELOAD shim for the tests of the commit's fsync: fsync and fdatasync of one file
 * (AUTOPACK_SHIM_PATH, a write-ahead log; ending with '/': every file and directory under
 * that directory, and it) are watched, everything else passes through.
 *   AUTOPACK_SHIM_LOG      append "start <ns> 0 <who>" and "end <ns> <rc> <who>" lines
 *                          (CLOCK_MONOTONIC; who: "main" for the process's first thread,
 *                          else "thread")
 *   AUTOPACK_SHIM_DURABLE  at the start of each call, copy the bytes the file holds then
 *                          (what the call makes durable); once the call returns 0, the
 *                          copy becomes <path>.durable: what a power loss would leave
 *   AUTOPACK_SHIM_DELAY_US a call takes this much longer (a slower disk)
 *   AUTOPACK_SHIM_HOLD     while this file exists, a call waits before it syncs
 *   AUTOPACK_SHIM_FAIL     while this file exists, a call fails with EIO
 * Built by the Makefile for the tests only (fsync-shim.so next to the binaries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t shim_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether fd is the watched file. */
static int shim_watched(int fd)
{
	const char *want = getenv("AUTOPACK_SHIM_PATH");
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (want == NULL)
		return 0;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof path - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	if (want[0] != '\0' && want[strlen(want) - 1] == '/')
		return strncmp(path, want, strlen(want) - 1) == 0 &&
		    (path[strlen(want) - 1] == '/' || path[strlen(want) - 1] == '\0');
	return strcmp(path, want) == 0;
}

/* Append one line to the log. */
static void shim_log(const char *what, int rc)
{
	const char *log = getenv("AUTOPACK_SHIM_LOG");
	struct timespec ts;
	char line[96];
	int fd, len;

	if (log == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	len = snprintf(line, sizeof line, "%s %lld %d %s\n", what,
	    (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, rc,
	    syscall(SYS_gettid) == getpid() ? "main" : "thread");
	fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, line, (size_t)len) != len)
			abort();
		close(fd);
	}
}

/* Copy what fd holds now into <path>.syncing, through a static buffer (calls hold
 * shim_lock; the caller's stack may be as small as the 64 KiB the programs need). Returns 0
 * when copied. */
static int shim_copy(int fd, const char *tmp)
{
	static char buf[65536];
	struct stat sb;
	off_t off = 0;
	int out;

	if (fstat(fd, &sb) != 0)
		return -1;
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return -1;
	while (off < sb.st_size) {
		size_t want = (size_t)(sb.st_size - off) < sizeof buf ? (size_t)(sb.st_size - off) :
		                                                        sizeof buf;
		ssize_t n = pread(fd, buf, want, off);

		if (n <= 0 || write(out, buf, (size_t)n) != n)
			break;
		off += n;
	}
	close(out);
	return off == sb.st_size ? 0 : -1;
}

/* The watched call: log, copy, hold, fail or sync, publish the copy. */
static int shim_sync(int fd, int (*real)(int))
{
	const char *path = getenv("AUTOPACK_SHIM_PATH");
	const char *hold = getenv("AUTOPACK_SHIM_HOLD");
	const char *fail = getenv("AUTOPACK_SHIM_FAIL");
	int durable = getenv("AUTOPACK_SHIM_DURABLE") != NULL, copied = -1, rc, err = 0;
	char tmp[PATH_MAX + 16], done[PATH_MAX + 16];

	/* One call at a time: the copies are published in the order they were taken. */
	pthread_mutex_lock(&shim_lock);
	shim_log("start", 0);
	snprintf(tmp, sizeof tmp, "%s.syncing", path);
	snprintf(done, sizeof done, "%s.durable", path);
	if (durable)
		copied = shim_copy(fd, tmp);
	if (getenv("AUTOPACK_SHIM_DELAY_US") != NULL)
		usleep((useconds_t)atoi(getenv("AUTOPACK_SHIM_DELAY_US")));
	while (hold != NULL && access(hold, F_OK) == 0)
		usleep(10000);
	if (fail != NULL && access(fail, F_OK) == 0) {
		err = EIO;
		rc = -1;
	} else {
		rc = real(fd);
		err = rc == 0 ? 0 : errno;
	}
	if (rc == 0 && copied == 0)
		rename(tmp, done);
	shim_log("end", err);
	pthread_mutex_unlock(&shim_lock);
	errno = err;
	return rc;
}

int fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	return shim_watched(fd) ? shim_sync(fd, real) : real(fd);
}

int fsync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

	return shim_watched(fd) ? shim_sync(fd, real) : real(fd);
}
