#include "common/store/store_lock.h"
#include "common/log.h"
#include "common/store/dburl_pg.h"
#include "common/store/store.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* Read the pid recorded in the lock file open on `fd`; 0 if there is none. */
static pid_t store_lock_holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	return pid > 0 ? (pid_t)pid : 0;
}

/* Take <db>.lock without blocking; STORE_EBUSY names the holder's pid. */
int store_lock_acquire(const char *db_path, pid_t *holder)
{
	char *lock_path = xasprintf("%s.lock", db_path);
	char buf[32];
	int fd, len, saved;

	*holder = 0;
	if (dburl_is_pg(db_path)) {
		free(lock_path);
		return STORE_LOCK_SERVER;
	}
	assert(db_path != NULL && db_path[0] == '/');
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	saved = errno;
	free(lock_path);
	if (fd < 0) {
		errno = saved;
		return STORE_EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		saved = errno;
		if (saved == EWOULDBLOCK)
			*holder = store_lock_holder(fd);
		close(fd);
		errno = saved;
		return saved == EWOULDBLOCK ? STORE_EBUSY : STORE_EIO;
	}
	len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
		saved = errno;
		close(fd);
		errno = saved;
		return STORE_EIO;
	}
	return fd;
}

/* Clear the recorded pid and drop the lock. */
void store_lock_release(int fd)
{
	if (fd < 0 || fd == STORE_LOCK_SERVER)
		return;
	/* A pid left in an unlocked file would be harmless: the flock is what counts. */
	if (ftruncate(fd, 0) != 0)
		log_debug("clearing the lock file: %s", strerror(errno));
	close(fd);
}
