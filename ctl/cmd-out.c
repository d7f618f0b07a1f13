/* An output file a command writes (telemetry export --out): a regular file is written
 * whole or not at all, through a temporary file beside it renamed over it once complete. */
#include "ctl/cmd.h"
#include "common/dbfiles.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary's name: "." + the file's name (cut to fit NAME_MAX) + CMD_OUT_SUFFIX. */
#define CMD_OUT_SUFFIX ".XXXXXX.partial"
#define CMD_OUT_SUFFIX_FIXED (sizeof ".partial" - 1)

/* The temporary being written, for cmd_out_abandon in a signal handler. */
static char cmd_out_pending[PATH_MAX + 1];
/* Set while cmd_out_pending names a temporary to remove. */
static volatile sig_atomic_t cmd_out_armed;

void cmd_out_abandon(void)
{
	if (cmd_out_armed)
		unlink(cmd_out_pending);
}

bool cmd_out_is_stdout(const char *path)
{
	static const char *const names[] = { "-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(path, names[i]) == 0)
			return true;
	return false;
}

/* The name of `e` ("ENOSPC"), or "errno N" for one glibc does not name. */
const char *cmd_errno_name(int e)
{
	static char buf[32];
	const char *name = strerrorname_np(e);

	if (name != NULL)
		return name;
	snprintf(buf, sizeof buf, "errno %d", e);
	return buf;
}

/* Make the temporary beside `o->target` and open o->f on it; -1 with `err` on failure,
 * o->target freed. */
static int cmd_out_temp(struct cmd_out *o, char *err, size_t errlen)
{
	const char *slash = strrchr(o->target, '/');
	size_t dirlen = slash != NULL ? (size_t)(slash - o->target) + 1 : 0;
	const char *base = o->target + dirlen;
	size_t baselen = strlen(base), room = NAME_MAX - 1 - (sizeof CMD_OUT_SUFFIX - 1);
	int fd, e;

	o->tmp = xasprintf("%.*s.%.*s%s", (int)dirlen, o->target,
	    (int)(baselen < room ? baselen : room), base, CMD_OUT_SUFFIX);
	fd = mkostemps(o->tmp, (int)CMD_OUT_SUFFIX_FIXED, O_CLOEXEC);
	if (fd < 0) {
		char *dir = dirlen > 0 ? xstrndup(o->target, dirlen) : xstrdup("./");

		e = errno;
		errbuf_fail(err, errlen,
		    "cannot write %s: cannot make the temporary file it is written through in its "
		    "directory %s: %s",
		    o->path, dir, strerror(e));
		free(dir);
		free(o->tmp);
		o->tmp = NULL;
		free(o->target);
		o->target = NULL;
		return -1;
	}
	/* Armed once the name is whole: a stop signal meanwhile removes all of it or none. */
	if (strlen(o->tmp) <= PATH_MAX) {
		memcpy(cmd_out_pending, o->tmp, strlen(o->tmp) + 1);
		cmd_out_armed = 1;
	}
	if ((o->f = fdopen(fd, "w")) == NULL) {
		e = errno;
		cmd_out_armed = 0;
		unlink(o->tmp);
		close(fd);
		errbuf_fail(err, errlen, "cannot write %s: %s", o->path, strerror(e));
		free(o->tmp);
		o->tmp = NULL;
		free(o->target);
		o->target = NULL;
		return -1;
	}
	return 0;
}

int cmd_out_open(
    const struct store *st, const char *path, struct cmd_out *o, char *err, size_t errlen)
{
	const char *sfx = NULL;
	char self[64];
	struct stat sb;
	int fd = -1;

	memset(o, 0, sizeof *o);
	o->path = path;
	o->mode = 0666;
	/* By name first: a -wal or -journal not made yet would be made by the open. */
	if (st->backend == DB_SQLITE && (sfx = dbfiles_match(st->path, path, -1)) != NULL)
		goto refuse;
	if (dbfiles_names_database_side(path))
		goto another;
	/* Opened without O_CREAT, to learn what is there and whether this process may write
	 * it; not blocking: a FIFO that no process reads is refused, not waited on for ever. */
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		/* A new file (or a dangling link, replaced): made 0666 less the umask. */
		mode_t mask = umask(0);

		umask(mask);
		o->mode = 0666 & ~mask;
		o->target = xstrdup(path);
		return cmd_out_temp(o, err, errlen);
	}
	if (fd < 0 && errno == ENXIO && (stat(path, &sb) != 0 || !S_ISFIFO(sb.st_mode))) {
		errbuf_fail(err, errlen,
		    "cannot write %s: No such device or address: it is a socket, or a device with "
		    "nothing behind it (/dev/tty without a controlling terminal)",
		    path);
		return -1;
	}
	if (fd < 0 && errno == ENXIO) {
		errbuf_fail(err, errlen,
		    "cannot write %s: it is a FIFO that no process has open for reading; start its "
		    "reader first",
		    path);
		return -1;
	}
	if (fd < 0 || fstat(fd, &sb) != 0)
		goto fail;
	/* Then the file opened, in case the name changed meanwhile. */
	if (st->backend == DB_SQLITE && (sfx = dbfiles_match(st->path, path, fd)) != NULL)
		goto refuse;
	/* Another database (a name mistyped, two arguments swapped) is not replaced. */
	snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
	if (dbfiles_begins_as_database(self))
		goto another;
	if (S_ISREG(sb.st_mode)) {
		/* Replaced by a file of its mode and, where this process may give it, its owner;
		 * through a symbolic link, the file it names is replaced, not the link. */
		close(fd);
		o->mode = sb.st_mode & 07777;
		o->uid = sb.st_uid;
		o->gid = sb.st_gid;
		o->owner = true;
		o->target = realpath(path, NULL);
		if (o->target == NULL)
			o->target = xstrdup(path);
		return cmd_out_temp(o, err, errlen);
	}
	/* A FIFO, a terminal, a device: written in place, as it comes. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
	    (o->f = fdopen(fd, "w")) == NULL)
		goto fail;
	return 0;
fail:
	errbuf_fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
	goto out;
refuse:
	errbuf_fail(err, errlen,
	    "refusing to write %s: that is %s%s, %s; nothing was written: name another file", path,
	    st->path, sfx, dbfiles_what(sfx));
	goto out;
another:
	errbuf_fail(err, errlen,
	    "refusing to write %s: it is an SQLite database's file (a database, its -wal or its "
	    "-shm), which writing would destroy; nothing was written: name another file",
	    path);
out:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Flush and close o->f; 0 or the errno of the first failure. */
static int cmd_out_flush_close(struct cmd_out *o, bool sync)
{
	int cause = 0;

	errno = 0;
	if (fflush(o->f) != 0)
		cause = errno != 0 ? errno : EIO;
	if (cause == 0 && sync && fsync(fileno(o->f)) != 0)
		cause = errno;
	if (cause == 0 && sync && fchmod(fileno(o->f), o->mode) != 0)
		cause = errno;
	/* Its owner given back: kept as this process's when it may not (not root). */
	if (cause == 0 && sync && o->owner && geteuid() == 0 &&
	    fchown(fileno(o->f), o->uid, o->gid) != 0)
		cause = errno;
	errno = 0;
	if (fclose(o->f) != 0 && cause == 0)
		cause = errno != 0 ? errno : EIO;
	o->f = NULL;
	return cause;
}

int cmd_out_close(struct cmd_out *o, bool keep)
{
	int cause;

	if (o->f == NULL)
		return 0;
	cause = cmd_out_flush_close(o, keep && o->tmp != NULL);
	if (o->tmp != NULL) {
		if (keep && cause == 0 && rename(o->tmp, o->target) != 0)
			cause = errno;
		if (!keep || cause != 0)
			unlink(o->tmp);
		cmd_out_armed = 0;
	}
	free(o->tmp);
	free(o->target);
	o->tmp = o->target = NULL;
	return cause;
}
