#include "common/store/store_runtime.h"
#include "common/store/store_internal.h"
#include "common/store/store_lock.h"
#include "common/fdio.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Return true if `path` is a directory owned by this process's uid. */
static bool store_runtime_owned(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_uid == getuid();
}

/* Name the runtime directory of this user, the first that applies: /run/autopack when
 * this uid owns it (a service's RuntimeDirectory) or is root; $XDG_RUNTIME_DIR/autopack;
 * /run/user/<uid>/autopack; else /tmp/autopack-<uid>. */
static char *store_runtime_dir_name(void)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *user;

	if (store_runtime_owned(STORE_RUNTIME_RUN) ||
	    (getuid() == 0 && access(STORE_RUNTIME_RUN, F_OK) != 0))
		return xstrdup(STORE_RUNTIME_RUN);
	if (xdg != NULL && xdg[0] == '/' && store_runtime_owned(xdg))
		return xasprintf("%s/autopack", xdg);
	user = xasprintf("/run/user/%d", (int)getuid());
	if (store_runtime_owned(user)) {
		char *dir = xasprintf("%s/autopack", user);

		free(user);
		return dir;
	}
	free(user);
	return xasprintf("/tmp/autopack-%d", (int)getuid());
}

/* Make the runtime directory and check that only its user can enter it. */
char *store_runtime_dir(struct store_err *err)
{
	char *dir = store_runtime_dir_name();
	struct stat sb;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		store_fail(err, STORE_EIO, "cannot create %s: %s", dir, strerror(errno));
		free(dir);
		return NULL;
	}
	if (lstat(dir, &sb) != 0) {
		store_fail(err, STORE_EIO, "%s: %s", dir, strerror(errno));
	} else if (S_ISDIR(sb.st_mode) && sb.st_uid == getuid() && (sb.st_mode & 077) != 0) {
		store_fail(err, STORE_EIO,
		    "%s is not a private directory of uid %d: its mode is %04o, not 0700; "
		    "chmod 700 it",
		    dir, (int)getuid(), (unsigned)(sb.st_mode & 07777));
	} else if (!S_ISDIR(sb.st_mode) || sb.st_uid != getuid()) {
		store_fail(err, STORE_EIO,
		    "%s is not a private directory of uid %d (mode 0700): it is %s of uid %d, "
		    "mode %04o, which another user or program made there; remove it, or set "
		    "XDG_RUNTIME_DIR to a directory of uid %d (supervisors keep their control "
		    "sockets and uuid claims there)",
		    dir, (int)getuid(),
		    S_ISLNK(sb.st_mode)     ? "a symbolic link" :
		        S_ISDIR(sb.st_mode) ? "a directory" :
		        S_ISREG(sb.st_mode) ? "a regular file" :
		                              "a special file",
		    (int)sb.st_uid, (unsigned)(sb.st_mode & 07777), (int)getuid());
	} else {
		return dir;
	}
	free(dir);
	return NULL;
}

/* Name the socket by the uuid and the file (for PostgreSQL, the pid). */
char *store_runtime_socket(const struct store *st)
{
	char *dir = store_runtime_dir_name();
	char *sock = st->backend == DB_PG ?
	    xasprintf("%s/%s-pid%ld.sock", dir, st->uuid, (long)getpid()) :
	    xasprintf("%s/%s-%lu-%lu.sock", dir, st->uuid, (unsigned long)st->dev,
	        (unsigned long)st->ino);

	free(dir);
	return sock;
}

/* Read the pid written in a claim (its first line); 0 if there is none. */
static long store_runtime_claim_pid(int fd)
{
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return strtol(buf, NULL, 10);
}

/* Return true if the claim's writer is gone (or never wrote): a lock seen on it is one
 * being taken or dropped, not a live holder's. */
static bool store_runtime_claim_dead(int fd)
{
	long pid = store_runtime_claim_pid(fd);

	return pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

/* Refuse the claim held by another process, naming it from what it wrote. */
static int store_runtime_claim_busy(int fd, const struct store *st, struct store_err *err)
{
	char buf[4200] = "", *save = NULL, *pid, *url, *devino;
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);

	/* Three lines: pid, URL, device:inode. */
	buf[n > 0 ? n : 0] = '\0';
	pid = strtok_r(buf, "\n", &save);
	url = strtok_r(NULL, "\n", &save);
	devino = strtok_r(NULL, "\n", &save);
	return store_fail(err, STORE_EBUSY,
	    "%s: uuid %s is already served by autopack-supervisor pid %s of %s (device:inode "
	    "%s): one file is a copy of the other. Give the copy its own identity with "
	    "autopack-ctl --db %s db reidentify (while no supervisor holds it)",
	    st->url, st->uuid, pid != NULL ? pid : "?", url != NULL ? url : "?",
	    devino != NULL ? devino : "?", st->url);
}

/* Return true if descriptor `fd` is the file at `path`. */
static bool store_runtime_same(int fd, const char *path)
{
	struct stat fsb, psb;

	return fstat(fd, &fsb) == 0 && stat(path, &psb) == 0 && fsb.st_dev == psb.st_dev &&
	    fsb.st_ino == psb.st_ino;
}

/* Remove the claims in `dir` that nobody holds: those of supervisors that were killed.
 * Each is removed while locked, so a claim being taken is never removed. */
static void store_runtime_sweep(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char *path;
		int fd;

		if (len < 7 || strcmp(e->d_name + len - 6, ".claim") != 0)
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		/* An empty claim is one being written: left alone. */
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    store_runtime_claim_pid(fd) > 0 && store_runtime_same(fd, path))
			unlink(path);
		if (fd >= 0)
			close(fd);
		free(path);
	}
	closedir(d);
}

/* Write the claim's `n` bytes at the start of the file, the rest again after a short
 * write. Returns 0, or STORE_EIO with `err` naming the claim, how much of it was written
 * and why the rest was not (the file system's reason for the write that failed: no
 * space, a file size limit). */
static int store_runtime_claim_write(
    int fd, const char *claim, const char *line, size_t n, struct store_err *err)
{
	int e;
	size_t done = fd_pwrite_all(fd, line, n, 0, &e);

	if (done < n)
		return store_fail(err, STORE_EIO,
		    "%s: cannot write the claim: %zu of its %zu bytes written, then %s", claim,
		    done, n, e != 0 ? strerror(e) : "a write that wrote nothing");
	return 0;
}

/* Lock <dir>/<uuid>.claim and write who holds it. */
int store_runtime_claim(const struct store *st, struct store_err *err)
{
	char *dir, *claim, line[4200];
	int fd = -1, rc = 0, len;

	if (st->backend == DB_PG)
		return STORE_LOCK_SERVER;
	dir = store_runtime_dir(err);

#ifdef AUTOPACK_MUTANT_uuid_served_twice
	free(dir);
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
#endif
	if (dir == NULL)
		return STORE_EIO;
	store_runtime_sweep(dir);
	claim = xasprintf("%s/%s.claim", dir, st->uuid);
	free(dir);

	/* The file may be replaced or removed between open and flock (a sweep, a holder
	 * that exits): retry until the locked file is the one at the path. */
	for (int tries = 0; tries < 50; tries++) {
		fd = open(claim, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			rc = store_fail(err, STORE_EIO, "%s: %s", claim, strerror(errno));
			goto out;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			if (errno != EWOULDBLOCK) {
				rc = store_fail(err, STORE_EIO, "%s: %s", claim, strerror(errno));
				goto out;
			}
			if (!store_runtime_claim_dead(fd) || tries == 49) {
				rc = store_runtime_claim_busy(fd, st, err);
				goto out;
			}
			/* Held for a moment by a sweep or a new holder: look again. */
			close(fd);
			fd = -1;
			usleep(10000);
			continue;
		}
		if (store_runtime_same(fd, claim))
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		rc = store_fail(err, STORE_EIO, "%s keeps being replaced", claim);
		goto out;
	}
	len = snprintf(line, sizeof line, "%ld\n%s\n%lu:%lu\n", (long)getpid(), st->url,
	    (unsigned long)st->dev, (unsigned long)st->ino);
	if (len >= (int)sizeof line)
		len = (int)sizeof line - 1;
	if (ftruncate(fd, 0) != 0)
		rc = store_fail(err, STORE_EIO, "%s: %s", claim, strerror(errno));
	else
		rc = store_runtime_claim_write(fd, claim, line, (size_t)len, err);
out:
	if (rc != 0 && fd >= 0)
		close(fd);
	free(claim);
	return rc != 0 ? rc : fd;
}

int store_runtime_claim_keep(int *fd, const struct store *st, struct store_err *err)
{
	char *dir, *claim;
	bool same;
	int again;

	if (*fd < 0 || *fd == STORE_LOCK_SERVER)
		return 0;
	dir = store_runtime_dir_name();
	claim = xasprintf("%s/%s.claim", dir, st->uuid);
	same = store_runtime_same(*fd, claim);
	free(claim);
	free(dir);
	if (same)
		return 0;
	if ((again = store_runtime_claim(st, err)) < 0)
		return again;
	close(*fd);
	*fd = again;
	return 1;
}

/* Remove the claim while still holding it, then drop it. */
void store_runtime_release(int fd, const struct store *st)
{
	char *dir, *claim;

	if (fd < 0 || fd == STORE_LOCK_SERVER)
		return;
	dir = store_runtime_dir_name();
	claim = xasprintf("%s/%s.claim", dir, st->uuid);
	if (store_runtime_same(fd, claim))
		unlink(claim);
	close(fd);
	free(claim);
	free(dir);
}
