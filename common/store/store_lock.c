#include "common/store/store_lock.h"
#include "common/store/dburl_pg.h"
#include "common/store/store_internal.h"
#include "common/procs.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* One read of /proc/locks: the pid of an exclusive flock on device:inode; 0 if none. */
static pid_t store_lock_scan(dev_t dev, ino_t ino)
{
	FILE *f = fopen("/proc/locks", "re");
	char line[256];
	pid_t pid = 0;

	if (f == NULL)
		return 0;
	/* "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF" (major:minor in hex) */
	while (pid == 0 && fgets(line, sizeof line, f) != NULL) {
		char kind[16], mode[16], access[16];
		unsigned maj, min;
		unsigned long long inode;
		long p;

		if (sscanf(line, "%*[^:]: %15s %15s %15s %ld %x:%x:%llu", kind, mode, access, &p,
		        &maj, &min, &inode) != 7)
			continue;
		if (strcmp(kind, "FLOCK") == 0 && strcmp(access, "WRITE") == 0 &&
		    maj == major(dev) && min == minor(dev) && inode == (unsigned long long)ino)
			pid = (pid_t)p;
	}
	fclose(f);
	return pid;
}

/* Find the pid of an exclusive flock on device:inode in /proc/locks; 0 if there is none.
 * The file is read a page at a time, and locks taken or dropped meanwhile (SQLite's, of
 * every database on the machine) can shift a line past the reader: up to three reads. */
pid_t store_lock_holder(dev_t dev, ino_t ino)
{
	pid_t pid = 0;

	for (int i = 0; i < 3 && pid == 0; i++)
		pid = store_lock_scan(dev, ino);
	return pid;
}

/* The bytes of the -shm that SQLite's WAL_READ_LOCK(0) to (4) lock: WALINDEX_LOCK_OFFSET
 * (120) plus 3 to 7. */
#define SHM_READ_MARK_FIRST 123
#define SHM_READ_MARK_LAST 127

int store_lock_wal_readers(const char *db_path, pid_t *pids, int max)
{
	char *shm = xasprintf("%s-shm", db_path);
	struct stat sb;
	char line[256];
	int n = 0;
	FILE *f;

	if (stat(shm, &sb) != 0 || (f = fopen("/proc/locks", "re")) == NULL) {
		free(shm);
		return 0;
	}
	free(shm);
	/* "5: POSIX  ADVISORY  READ 14623 fe:00:10961238 123 123" (major:minor in hex; a
	 * lock a process waits for has "->" before its kind, and is not held) */
	while (n < max && fgets(line, sizeof line, f) != NULL) {
		char kind[16], mode[16], access[16], end[24];
		unsigned maj, min;
		unsigned long long inode, first;
		long p;
		bool seen = false;

		if (sscanf(line, "%*[^:]: %15s %15s %15s %ld %x:%x:%llu %llu %23s", kind, mode,
		        access, &p, &maj, &min, &inode, &first, end) != 9 ||
		    strcmp(kind, "POSIX") != 0 || maj != major(sb.st_dev) ||
		    min != minor(sb.st_dev) || inode != (unsigned long long)sb.st_ino || p <= 0 ||
		    p == (long)getpid() || first > SHM_READ_MARK_LAST ||
		    (strcmp(end, "EOF") != 0 && strtoull(end, NULL, 10) < SHM_READ_MARK_FIRST))
			continue;
		for (int i = 0; i < n && !seen; i++)
			seen = pids[i] == (pid_t)p;
		if (!seen)
			pids[n++] = (pid_t)p;
	}
	fclose(f);
	return n;
}

/* Lock the database file's own inode without blocking. */
int store_lock_acquire(const char *db_path, pid_t *holder)
{
	struct stat sb;
	int fd, saved;

	*holder = 0;
	if (dburl_is_pg(db_path))
		return STORE_LOCK_SERVER;
	assert(db_path != NULL && db_path[0] == '/');
	/* Non-blocking: opening a FIFO would wait for its writer. */
	fd = open(db_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? STORE_ENOENT : STORE_EIO;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return STORE_ENOTDB;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	saved = errno;
	if (saved == EWOULDBLOCK && fstat(fd, &sb) == 0)
		*holder = store_lock_holder(sb.st_dev, sb.st_ino);
	close(fd);
	errno = saved;
	return saved == EWOULDBLOCK ? STORE_EBUSY : STORE_EIO;
}

void store_lock_holder_name(pid_t pid, char *buf, size_t n, const char *unknown)
{
	if (pid <= 0 || !procs_comm(pid, buf, n))
		strlcpy_ap(buf, unknown, n);
	else if (strncmp(buf, "autopack-superv", 15) == 0)
		strlcpy_ap(buf, "autopack-supervisor", n);
}

bool store_lock_holder_is_supervisor(pid_t pid)
{
	char name[32];

	store_lock_holder_name(pid, name, sizeof name, "");
	return strcmp(name, "autopack-supervisor") == 0;
}

int store_lock_acquire_wait(const char *db_path, pid_t *holder, int wait_ms)
{
	const struct timespec step = { 0, 20 * 1000000L };
	int fd, waited;

	for (waited = 0;; waited += 20) {
		fd = store_lock_acquire(db_path, holder);
		if (fd != STORE_EBUSY || waited >= wait_ms ||
		    store_lock_holder_is_supervisor(*holder))
			return fd;
		nanosleep(&step, NULL);
	}
}

/* Drop the lock. */
void store_lock_release(int fd)
{
	if (fd >= 0 && fd != STORE_LOCK_SERVER)
		close(fd);
}

/* Compare the locked file with the open one. */
int store_lock_check(int fd, const struct store *st, struct store_err *err)
{
	struct stat sb;

	if (fd == STORE_LOCK_SERVER)
		return 0;
	if (fstat(fd, &sb) != 0)
		return store_fail(
		    err, STORE_EIO, "%s: checking the lock: %s", st->path, strerror(errno));
	if (sb.st_dev != st->dev || sb.st_ino != st->ino)
		return store_fail(err, STORE_EMOVED,
		    "%s: the file was replaced while it was being opened (locked device:inode "
		    "%lu:%lu, opened %lu:%lu); nothing was written",
		    st->path, (unsigned long)sb.st_dev, (unsigned long)sb.st_ino,
		    (unsigned long)st->dev, (unsigned long)st->ino);
	return 0;
}
