#include "common/store/store_runtime.h"
#include "common/store/store_internal.h"
#include "common/store/store_lock.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Name the runtime directory of this user. */
static char *store_runtime_dir_name(void)
{
	return xasprintf("/tmp/autopack-%d", (int)getuid());
}

/* Make /tmp/autopack-<uid> and check that only its user can enter it. */
char *store_runtime_dir(struct store_err *err)
{
	char *dir = store_runtime_dir_name();
	struct stat sb;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		store_fail(err, STORE_EIO, "cannot create %s: %s", dir, strerror(errno));
		free(dir);
		return NULL;
	}
	if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != getuid() ||
	    (sb.st_mode & 077) != 0) {
		store_fail(err, STORE_EIO, "%s is not a private directory of uid %d (mode 0700)",
		    dir, (int)getuid());
		free(dir);
		return NULL;
	}
	return dir;
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

/* Lock <dir>/<uuid>.claim and write who holds it. */
int store_runtime_claim(const struct store *st, struct store_err *err)
{
	char *dir, *claim, line[4200];
	struct stat fsb, psb;
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
	claim = xasprintf("%s/%s.claim", dir, st->uuid);
	free(dir);

	/* The file may be replaced between open and flock: retry until the locked file is
	 * the one at the path. */
	for (int tries = 0; tries < 10; tries++) {
		fd = open(claim, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			rc = store_fail(err, STORE_EIO, "%s: %s", claim, strerror(errno));
			goto out;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			rc = errno == EWOULDBLOCK ?
			    store_runtime_claim_busy(fd, st, err) :
			    store_fail(err, STORE_EIO, "%s: %s", claim, strerror(errno));
			goto out;
		}
		if (fstat(fd, &fsb) == 0 && stat(claim, &psb) == 0 && fsb.st_dev == psb.st_dev &&
		    fsb.st_ino == psb.st_ino)
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
	if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len)
		rc = store_fail(err, STORE_EIO, "%s: %s", claim, strerror(errno));
out:
	if (rc != 0 && fd >= 0)
		close(fd);
	free(claim);
	return rc != 0 ? rc : fd;
}
