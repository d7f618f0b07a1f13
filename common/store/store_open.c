#include "common/store/sqlite/db_sqlite.h"
#include "common/store/dburl_pg.h"
#include "common/store/pg/store_pg.h"
#include "common/store/schema.sql.h"
#include "common/store/store_checkpoint.h"
#include "common/store/store_internal.h"
#include "common/store/store_lock.h"
#include "common/store/store_wal.h"
#include "common/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define STORE_WAL_HEADER 32 /* the bytes of a write-ahead log's header; its frames follow */

/* Return the directory where the file system holding `path` is mounted (a heap string). */
static char *store_mount_point(const char *path, dev_t dev)
{
	char *dir = xstrdup(path), *slash;
	struct stat sb;

	while ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (stat(dir, &sb) != 0 || sb.st_dev != dev) {
			*slash = '/';
			slash[1] = '\0';
			return dir;
		}
	}
	free(dir);
	return xstrdup("/");
}

/* Refuse a file with more than one name, naming the count and how to fix it. */
static int store_refuse_links(const char *path, const struct stat *sb, struct store_err *err)
{
	char *mnt = store_mount_point(path, sb->st_dev);
	int rc = store_fail(err, STORE_ELINKED,
	    "%s: the file has %lu names (hard links); SQLite keeps a database's write-ahead "
	    "log and locks per name, so two names are two databases writing one file, which "
	    "corrupts it. Keep one name: list them with `find %s -xdev -samefile %s` and "
	    "remove the others (for an independent copy use cp, then autopack-ctl db "
	    "reidentify on the copy); nothing was written",
	    path, (unsigned long)sb->st_nlink, mnt, path);

	free(mnt);
	return rc;
}

/* Check that `path` names a non-empty regular file with one name, filling *sb. */
static int store_stat_file(const char *path, struct stat *sb, struct store_err *err)
{
	if (stat(path, sb) != 0) {
		if (errno == ENOENT)
			return store_fail(err, STORE_ENOENT,
			    "%s: no such database file (nothing was created; make one with "
			    "autopack-ctl --db sqlite:///%s db init)",
			    path, path);
		return store_fail(err, STORE_EIO, "%s: %s", path, strerror(errno));
	}
	if (!S_ISREG(sb->st_mode))
		return store_fail(err, STORE_ENOTDB, "%s: not a regular file", path);
	if (sb->st_size == 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: empty file, not an autopack database; the file was left untouched", path);
#ifdef AUTOPACK_MUTANT_hard_link_accepted
	if (0)
#else
	if (sb->st_nlink > 1)
#endif
		return store_refuse_links(path, sb, err);
	return 0;
}

/* Check that the connection reads an SQLite database at all; a failure in a directory
 * this user cannot write says so (a WAL database is read through a -shm file made
 * there). */
static int store_check_sqlite(struct db *db, const char *path, struct store_err *err)
{
	int64_t v;
	int rc = store_query_int(db, "PRAGMA schema_version", &v, NULL);
	char *dir;
	bool ro;

	if (rc == 0)
		return 0;
	if (db_fault(db) == DB_FAULT_NOTDB)
		return store_fail(err, STORE_ENOTDB,
		    "%s: not an SQLite database; the file was left untouched", path);
	if (db_fault(db) == DB_FAULT_BUSY)
		return store_fail(err, STORE_EBUSY,
		    "%s: cannot read: %s (another program holds the database locked for itself, "
		    "in SQLite's exclusive locking mode or writing it without a write-ahead log, "
		    "and did not let it go within %d s); give the command again once it has",
		    path, db_errmsg(db), STORE_BUSY_TIMEOUT_MS / 1000);
	dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
	ro = access(dir[0] != '\0' ? dir : "/", W_OK) != 0;
	rc = store_fail(err, STORE_EIO, "%s: cannot read: %s%s%s%s", path, db_errmsg(db),
	    ro ? " (the directory " : "", ro ? dir : "",
	    ro ? " is read-only to this user, and SQLite reads a WAL database through a -shm "
	         "file it makes there; copy the database with its -wal, if any, to a writable "
	         "directory, or let this user write the directory)" :
	         "");
	free(dir);
	return rc;
}

/* The attribute of the file `path` that keeps even its owner and root from writing it in
 * place: "immutable (chattr +i)" or "append-only (chattr +a)"; NULL for neither, or when
 * it cannot be told. */
static const char *store_file_flag(const char *path)
{
	struct statx sx;

	if (statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &sx) != 0)
		return NULL;
	if (sx.stx_attributes_mask & sx.stx_attributes & STATX_ATTR_IMMUTABLE)
		return "immutable (chattr +i)";
	if (sx.stx_attributes_mask & sx.stx_attributes & STATX_ATTR_APPEND)
		return "append-only (chattr +a)";
	return NULL;
}

/* Open a database for reading. On a read-only file system, or as a file immutable or
 * append-only, nothing can change it, so it is opened immutable: SQLite then needs no
 * -shm file, which it could not create there, or remove at the end. Not when a write-ahead
 * log beside it holds frames (its writer died, or the file system was remounted read-only
 * under it): immutable reads the database file alone, and would show none of the commits
 * in the log. Then it is read through the log and the -shm left with it; without that
 * -shm the first read fails, naming the directory. */
int store_connect_read(const char *path, struct db **db, struct store_err *err)
{
	struct statvfs vfs;
	struct stat wal;
	char *uri = xasprintf("%s-wal", path);
	bool logged = stat(uri, &wal) == 0 && wal.st_size > STORE_WAL_HEADER;
	int rc;

	free(uri);
	if (logged ||
	    ((statvfs(path, &vfs) != 0 || (vfs.f_flag & ST_RDONLY) == 0) &&
	        store_file_flag(path) == NULL))
		return store_connect(path, SQLITE_OPEN_READONLY, "", db, err);
	/* Canonical paths hold no '?', '#' or '%' (dburl.c refuses them). */
	uri = xasprintf("file:%s?immutable=1", path);
	rc = store_connect(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, "", db, err);
	free(uri);
	return rc;
}

/* Read meta.db_uuid through `db` into uuid; false if it cannot be read or is not a
 * canonical UUID. */
static bool store_uuid_read(struct db *db, char uuid[37])
{
	struct db_stmt *q = NULL;
	const char *u;
	bool ok = false;

	if (db_prepare(db, "SELECT db_uuid FROM meta", &q) == DB_OK && db_step(q) == DB_ROW &&
	    (u = db_column_text(q, 0)) != NULL && store_uuid_valid(u)) {
		memcpy(uuid, u, 37);
		ok = true;
	}
	db_finalize(q);
	return ok;
}

/* Read the uuid the database file at `path` holds by itself (read immutable, which ignores
 * its -wal) into uuid; false if it cannot be read. Nothing is written. */
static bool store_uuid_alone(const char *path, char uuid[37])
{
	char *uri = xasprintf("file:%s?immutable=1", path);
	struct db *a = NULL;
	bool ok = store_connect(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, "", &a, NULL) == 0 &&
	    store_uuid_read(a, uuid);

	db_close(a);
	free(uri);
	return ok;
}

/* Refuse a -wal beside the database that is another database's: the file alone (read
 * immutable, which ignores the log) holds one uuid, and read with the log, another that
 * db reidentify did not give it (its control_log row names the uuid it replaced). With
 * `marked` (the log's commits carry another database's mark than the file), also when
 * both read the same uuid or either cannot be read. SQLite copies a log's pages into the
 * file next to it at the next write, whatever file that is. 0 when they agree or (not
 * `marked`) either cannot be read (a file without meta, a log being written);
 * STORE_ENOTDB naming both otherwise. Nothing is written. */
static int store_check_wal_uuid(
    const char *path, const struct store_wal_facts *marked, struct store_err *err)
{
	char *wal = xasprintf("%s-wal", path), *uri = xasprintf("file:%s?immutable=1", path);
	char alone[37] = "", with[37] = "";
	struct db *a = NULL, *b = NULL;
	bool read = false;
	int rc = 0;

	if (store_connect(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, "", &a, NULL) == 0 &&
	    store_uuid_read(a, alone) &&
	    store_connect(path, SQLITE_OPEN_READONLY, "", &b, NULL) == 0 &&
	    store_uuid_read(b, with))
		read = true;
	if (read && strcmp(alone, with) != 0 &&
	    store_row_exists(b, NULL,
	        "SELECT 1 FROM control_log WHERE command = 'db reidentify' AND args = ?1",
	        (const char *const[]){ alone, NULL }, "reading control_log") == 1)
		goto out;
	if (read && strcmp(alone, with) != 0)
		rc = store_fail(err, STORE_ENOTDB,
		    "%s: this write-ahead log is another database's: the file %s holds database "
		    "%s, and read with the log it reads as database %s (a file put in place of "
		    "one whose supervisor was killed, or a -wal copied from elsewhere). SQLite "
		    "would copy the log's pages into this file at the next write, corrupting it; "
		    "nothing was written. Move %s and %s-shm away (they hold the last commits of "
		    "database %s), then open it again",
		    wal, path, alone, with, wal, path, with);
	else if (marked != NULL) {
		char *file = alone[0] != '\0' ? xasprintf("%s, database %s,", path, alone) :
		                                xstrdup(path);

		rc = store_fail(err, STORE_ENOTDB,
		    "%s: this write-ahead log is another database's: its commits are marked as "
		    "database %08x's, and the file %s as %08x's (a file put in place of one whose "
		    "supervisor was killed, or a -wal copied from elsewhere). SQLite would copy "
		    "the log's pages into this file at the next read, corrupting it; nothing was "
		    "read or written. Move %s and %s-shm away (they hold the last commits of the "
		    "database they were written for), then open it again",
		    wal, marked->log_mark, file, marked->file_mark, wal, path);
		free(file);
	}
out:
	db_close(b);
	db_close(a);
	free(uri);
	free(wal);
	return rc;
}

/* Whether an autopack writer other than this process (a supervisor, an offline command
 * writing) holds the file's lock: the write-ahead log is then its own, being written,
 * and its identity checks watch the file. */
static bool store_live_writer(const struct stat *sb)
{
	pid_t pid = store_lock_holder(sb->st_dev, sb->st_ino);

	return pid != 0 && pid != getpid();
}

/* Refuse a -wal beside the database that does not continue the file (store_wal_judge):
 * an older or newer state of the same database, or another database's log; where the
 * log holds no commit of the store's, or the file was never marked, the uuids are
 * compared (store_check_wal_uuid). Not judged while another autopack writer holds the
 * file. 0, or STORE_ENOTDB saying what was found and what to do. Nothing is written. */
static int store_check_wal_owner(const char *path, const struct stat *db_sb, struct store_err *err)
{
	char *wal = xasprintf("%s-wal", path), why[320];
	struct store_wal_facts f;
	enum store_wal_verdict v = STORE_WAL_CONTINUES;
	struct stat sb;
	int rc = 0;

	if (stat(wal, &sb) == 0 && sb.st_size > 32 && !store_live_writer(db_sb))
		v = store_wal_judge(path, 0, &f, why, sizeof why);
	/* A file whose application_id another program set still holds it until the first
	 * commit of the store's is checkpointed: a log marked as the database of the file's
	 * own uuid is judged by its counts. */
	if (v == STORE_WAL_MARK_CHANGED) {
		char own[37];
		uint32_t mark;

		if (store_uuid_alone(path, own) && (mark = store_wal_mark(own)) == f.log_mark &&
		    mark != f.file_mark)
			v = store_wal_judge(path, mark, &f, why, sizeof why);
	}
#ifdef AUTOPACK_MUTANT_stale_wal_applied
	v = STORE_WAL_UNTOLD;
#endif
	if (v == STORE_WAL_CONTINUES)
		goto out;
	if (v == STORE_WAL_UNTOLD || v == STORE_WAL_MARK_CHANGED) {
		rc = store_check_wal_uuid(path, v == STORE_WAL_MARK_CHANGED ? &f : NULL, err);
		goto out;
	}
	if (store_live_writer(db_sb)) /* one began meanwhile: the log is being written */
		goto out;
	if (v == STORE_WAL_FOREIGN)
		rc = store_fail(err, STORE_ENOTDB,
		    "%s: this write-ahead log was not written on the file %s: %s (another copy of "
		    "the database, or a -wal copied from elsewhere). SQLite would lay the log's "
		    "pages over this file at the next read, mixing two databases; nothing was read "
		    "or written. Move %s and %s-shm away (they hold the last commits of the file "
		    "they were written on), then open it again",
		    wal, path, why, wal, path);
	else
		rc = store_fail(err, STORE_ENOTDB,
		    "%s: this write-ahead log does not continue the file %s: it was begun on the "
		    "database's commit %u (its commits go on to %u), and the file holds commit %u, "
		    "%s. SQLite would lay the log's pages over this file at the next read, mixing "
		    "two states of the database; nothing was read or written. To go on from the "
		    "file as it is, move %s and %s-shm away (they hold commits %u to %u of the "
		    "file they were written on); to restore a backup in place, use sqlite3's "
		    ".restore, or remove the -wal and -shm before a cp",
		    wal, path, f.log_from, f.log_to, f.file_count,
		    v == STORE_WAL_OLDER ? "an older state (an older copy of the database put in "
		                           "place after a supervisor was killed, its log left)" :
		                           "which the log never reached (a copy of the database "
		                           "that went on without this log)",
		    wal, path, f.log_from + 1, f.log_to);
out:
	free(wal);
	return rc;
}

/* Refuse a rollback journal beside a database in WAL mode (its header's read and write
 * versions 2), which SQLite never leaves there: another program, or a phase's check
 * command in a workspace that holds the database, put it there, and SQLite would take it
 * for a transaction cut short and copy its pages into the file at the next open, over what
 * was committed. A journal SQLite would not take as such (empty, or its first byte 0) is
 * left alone. 0, or STORE_ENOTDB naming it and what to do. Nothing is read or written
 * through SQLite. */
static int store_check_journal(const char *path, struct store_err *err)
{
	char *journal = xasprintf("%s-journal", path);
	unsigned char hdr[20], first = 0;
	struct stat sb;
	int fd, rc = 0;
	bool wal = false;

	if (lstat(journal, &sb) != 0 || sb.st_size == 0)
		goto out;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		wal = pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr && hdr[18] == 2 &&
		    hdr[19] == 2;
		close(fd);
	}
	if (!wal)
		goto out;
	/* What SQLite reads: a journal it cannot open, or whose first byte is not 0, is hot
	 * for it (one it cannot open fails every read). */
	if (S_ISREG(sb.st_mode) &&
	    (fd = open(journal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) >= 0) {
		if (pread(fd, &first, 1, 0) != 1)
			first = 0;
		close(fd);
	} else {
		first = 1;
	}
	if (first != 0)
		rc = store_fail(err, STORE_ENOTDB,
		    "%s: a rollback journal (%lld bytes) beside a database in WAL mode, which "
		    "never makes one: another program, or a phase's check command whose workspace "
		    "holds the database, put it there. SQLite would take it for a transaction cut "
		    "short and copy its pages into %s at the next open, over what was committed; "
		    "nothing was read or written. Move %s away, then open the database again",
		    journal, (long long)sb.st_size, path, journal);
out:
	free(journal);
	return rc;
}

/* Refuse a -wal or -shm beside the database that is an SQLite database itself (one made
 * under that name, or copied there): SQLite would take it for the database's log or its
 * index, find nothing in it to apply, and truncate it at the next write, with every row it
 * held. 0, or STORE_ENOTDB naming it and what to do. Nothing is read or written through
 * SQLite. */
static int store_check_side_databases(const char *path, struct store_err *err)
{
	static const char *const suffix[] = { "-wal", "-shm" };
	unsigned char hdr[16];
	struct stat sb;
	int rc = 0;

	for (size_t i = 0; i < ARRAY_SIZE(suffix) && rc == 0; i++) {
		char *side = xasprintf("%s%s", path, suffix[i]);
		int fd = open(side, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

		if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr &&
		    memcmp(hdr, "SQLite format 3", 16) == 0)
			rc = store_fail(err, STORE_ENOTDB,
			    "%s: an SQLite database (%lld bytes), not the %s of %s: SQLite would "
			    "take it for that, find nothing in it to apply, and empty it at the next "
			    "write, with every row it holds; nothing was read or written. Give it "
			    "another name (a database is never named like the -wal or -shm beside "
			    "another), then open %s again",
			    side, (long long)sb.st_size,
			    i == 0 ? "write-ahead log" : "shared-memory index", path, path);
		if (fd >= 0)
			close(fd);
		free(side);
	}
	return rc;
}

/* Apply the connection settings of a write handle: WAL journal. */
static int store_setup_writer(struct db *db, const char *path, struct store_err *err)
{
	struct db_stmt *st = NULL;
	int rc = db_prepare(db, "PRAGMA journal_mode=WAL", &st);
	const char *mode = NULL;

	if (rc == DB_OK && db_step(st) == DB_ROW)
		mode = db_column_text(st, 0);
	rc = mode != NULL && strcmp((const char *)mode, "wal") == 0 ? 0 : STORE_EIO;
	if (rc != 0)
		store_fail(
		    err, rc, "%s: cannot switch to WAL journal mode: %s", path, db_errmsg(db));
	db_finalize(st);
	return rc;
}

/* Whether <path><suffix> exists (or cannot be told not to). */
static bool store_side_exists(const char *path, const char *suffix)
{
	char *p = xasprintf("%s%s", path, suffix);
	struct stat sb;
	bool yes = lstat(p, &sb) == 0 || errno != ENOENT;

	free(p);
	return yes;
}

/* After a read-only connection closed: SQLite made the -wal and -shm files to read a WAL
 * database, and only a writer's close removes them. Open the same file for writing, read,
 * and close, so that SQLite removes them when no other connection uses the database (it
 * takes the database's exclusive lock first; a live writer keeps them). Nothing is written;
 * nothing is done if the file cannot be opened for writing or is no longer the one read,
 * or if the read made neither file (a file read immutable): the open would make them. */
static void store_tidy(const struct store *st)
{
	struct db *db = NULL;
	struct stat sb;
	char msg[256];
	int64_t v;

	if (!store_side_exists(st->path, "-wal") && !store_side_exists(st->path, "-shm"))
		return;
	if (stat(st->path, &sb) != 0 || sb.st_dev != st->dev || sb.st_ino != st->ino ||
	    store_check_journal(st->path, NULL) != 0)
		return;
	if (db_sqlite_open(st->path, SQLITE_OPEN_READWRITE, 0, &db, msg, sizeof msg) != DB_OK)
		return;
	if (stat(st->path, &sb) == 0 && sb.st_dev == st->dev && sb.st_ino == st->ino)
		(void)store_query_int(db, "PRAGMA schema_version", &v, NULL);
	db_close(db);
}

/* Record the device:inode of <path><suffix>; ino 0 if it does not exist. */
static void store_side_stat(const char *path, const char *suffix, dev_t *dev, ino_t *ino)
{
	char *p = xasprintf("%s%s", path, suffix);
	struct stat sb;

	*dev = 0;
	*ino = 0;
	if (stat(p, &sb) == 0) {
		*dev = sb.st_dev;
		*ino = sb.st_ino;
	}
	free(p);
}

/* Check that this user may read the database file and, to write, write it and its -wal
 * and -shm (create them, when missing, in its directory): SQLite says only "unable to
 * open database file" or "attempt to write a readonly database", and a -wal left
 * read-only by an earlier open of a read-only file refuses every write of a file that
 * is writable again. 0, or STORE_EIO naming the file, its mode and its owner. */
int store_check_access(const char *path, bool write, struct store_err *err)
{
	static const char *const side[] = { "", "-wal", "-shm" };
	bool missing = false;
	struct stat sb;

	for (size_t i = 0; i < (write ? ARRAY_SIZE(side) : 1); i++) {
		char *p = xasprintf("%s%s", path, side[i]);
		const char *flag = write ? store_file_flag(p) : NULL;
		int e = 0;

		if (flag != NULL) {
			store_fail(err, STORE_EIO,
			    "%s: cannot write it: it is %s; SQLite writes a database and its -wal "
			    "and -shm in place (lsattr %s shows the flag; chattr -%c %s, as root, "
			    "clears it)",
			    p, flag, p, flag[0] == 'i' ? 'i' : 'a', p);
			free(p);
			return STORE_EIO;
		}
		if (access(p, write ? R_OK | W_OK : R_OK) != 0)
			e = errno;
		if (e == ENOENT && i > 0)
			missing = true;
		if (e != 0 && e != ENOENT && stat(p, &sb) == 0) {
			store_fail(err, STORE_EIO,
			    "%s: cannot %s it as uid %d: %s (mode %04o, owner uid %d)%s", p,
			    write ? "write" : "read", (int)geteuid(), strerror(e),
			    (unsigned)(sb.st_mode & 07777), (int)sb.st_uid,
			    i > 0 ? "; a -wal or -shm is made with the mode the database file had "
			            "when it was opened: give it the database's mode and owner" :
			            "");
			free(p);
			return STORE_EIO;
		}
		free(p);
	}
	if (write && missing) {
		char *dir = xstrdup(path), *slash = strrchr(dir, '/');

		slash[slash == dir ? 1 : 0] = '\0';
		if (access(dir, W_OK | X_OK) != 0) {
			int e = errno;

			store_fail(err, STORE_EIO,
			    "%s: cannot create the database's -wal or -shm in it as uid %d: %s",
			    dir, (int)geteuid(), strerror(e));
			free(dir);
			return STORE_EIO;
		}
		free(dir);
	}
	return 0;
}

/* Open a connection with the store's busy timeout; STORE_EIO naming the file on failure. */
int store_connect(
    const char *path, int flags, const char *purpose, struct db **db, struct store_err *err)
{
	char msg[512];

	assert((flags & SQLITE_OPEN_CREATE) == 0); /* opening never creates a file */
	if (db_sqlite_open(path, flags, STORE_BUSY_TIMEOUT_MS, db, msg, sizeof msg) != DB_OK)
		return store_fail(err, STORE_EIO, "%s: cannot open%s: %s", path, purpose, msg);
	return 0;
}

/* Open and check an existing autopack database; never creates or writes a foreign file. */
int store_open(struct store *st, const char *path, const char *url, enum store_mode mode,
    struct store_err *err)
{
	bool write = mode != STORE_READ;
	int flags = write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
	struct stat sb;
	struct db *db = NULL;
	int rc;

	if (dburl_is_pg(url))
		return store_pg_open(st, url, mode, err);
	/* Callers resolve the URL first (dburl_resolve): the path is canonical. */
	assert(path != NULL && path[0] == '/' && url != NULL);
	memset(st, 0, sizeof *st);
	rc = store_stat_file(path, &sb, err);
	if (rc == 0)
		rc = store_check_access(path, write, err);
	if (rc == 0)
		rc = store_check_wal_owner(path, &sb, err);
	if (rc == 0)
		rc = store_check_journal(path, err);
	if (rc == 0)
		rc = store_check_side_databases(path, err);
	if (rc != 0)
		return rc;
	st->tidy_on_close = !write && !store_side_exists(path, "-wal") &&
	    !store_side_exists(path, "-shm");
	rc = write ? store_connect(path, flags, "", &db, err) : store_connect_read(path, &db, err);
	if (rc != 0)
		return rc;
	rc = store_check_sqlite(db, path, err);
	if (rc == 0)
		rc = store_schema_check(db, path, &st->schema_version, st->uuid, err);
	if (rc == STORE_EIDENT && mode == STORE_WRITE_REIDENTIFY)
		rc = 0;
	if (rc == 0 && stat(path, &sb) != 0)
		rc = store_fail(err, STORE_EMOVED, "%s: removed while opening", path);
	if (rc == 0)
		rc = store_exec(db, "PRAGMA foreign_keys=ON", path, err);
	if (rc == 0 && write)
		rc = store_setup_writer(db, path, err);
	if (rc == 0 && write)
		db_sqlite_mark(db, store_wal_mark(st->uuid));
	if (rc != 0)
		goto fail;
	st->db = db;
	st->backend = DB_SQLITE;
	st->path = xstrdup(path);
	st->url = xstrdup(url);
	st->dev = sb.st_dev;
	st->ino = sb.st_ino;
	st->size_seen = sb.st_size;
	st->writable = write;
	if (write) {
		store_side_stat(path, "-wal", &st->wal_dev, &st->wal_ino);
		store_side_stat(path, "-shm", &st->shm_dev, &st->shm_ino);
		store_ckpt_arm(st);
	}
	if (write && st->schema_version < SCHEMA_VERSION) {
		rc = store_migrate(st, err);
		if (rc != 0) {
			store_close(st);
			return rc;
		}
	}
	return 0;
fail:
	db_close(db);
	if (st->tidy_on_close) {
		const struct store opened = {
			.path = (char *)path, .dev = sb.st_dev, .ino = sb.st_ino
		};

		store_tidy(&opened);
	}
	return rc;
}

/* Close the connection and free the handle; safe on a zeroed handle. */
void store_close(struct store *st)
{
	store_ckpt_free(st);
	db_close(st->db);
	if (st->tidy_on_close && st->db != NULL)
		store_tidy(st);
	free(st->path);
	free(st->url);
	free(st->backup_path);
	free(st->server_id);
	free(st->pg_setup);
	memset(st, 0, sizeof *st);
}

/* Format the file's device:inode. */
void store_devino(const struct store *st, char buf[48])
{
	snprintf(buf, 48, "%lu:%lu", (unsigned long)st->dev, (unsigned long)st->ino);
}

/* Describe how <path><suffix> differs from the device:inode recorded at open into buf;
 * "" if it is the same file. */
static void store_side_changed(const char *path, const char *suffix, dev_t dev, ino_t ino,
    const char *what, char *buf, size_t len)
{
	char *p = xasprintf("%s%s", path, suffix);
	struct stat sb;

	buf[0] = '\0';
	if (stat(p, &sb) != 0)
		snprintf(buf, len, "%s: %s was removed after the database was opened%s%s", p, what,
		    errno == ENOENT ? "" : ": ", errno == ENOENT ? "" : strerror(errno));
	else if (sb.st_dev != dev || sb.st_ino != ino)
		snprintf(buf, len,
		    "%s: %s was replaced after the database was opened (device:inode %lu:%lu, "
		    "opened as %lu:%lu)",
		    p, what, (unsigned long)sb.st_dev, (unsigned long)sb.st_ino, (unsigned long)dev,
		    (unsigned long)ino);
	free(p);
}

/* Move the write-ahead log of a lost handle away from the name SQLite looks for it by,
 * to <db>-wal.lost-<UTC stamp>.bak: it was made for the file the handle opened, and the
 * next connection would copy its pages into whatever file is at the path now. Only the
 * log the handle recorded at open is moved. Describes the outcome into buf. */
static void store_wal_set_aside(const struct store *st, char *buf, size_t len)
{
	char *wal = xasprintf("%s-wal", st->path), *name = NULL;
	struct stat sb;

	if (stat(wal, &sb) != 0 ||
	    (st->wal_ino != 0 && (sb.st_dev != st->wal_dev || sb.st_ino != st->wal_ino))) {
		snprintf(
		    buf, len, "; the write-ahead log is kept as it is, nothing more is written");
		free(wal);
		return;
	}
	name = store_backup_name(wal, "lost");
	if (renameat2(AT_FDCWD, wal, AT_FDCWD, name, RENAME_NOREPLACE) == 0)
		snprintf(buf, len,
		    "; the file now holds other content, so the write-ahead log (what was "
		    "committed since the last checkpoint) was moved to %s, where no program "
		    "applies it to that file (which it would corrupt); nothing more is written",
		    name);
	else
		snprintf(buf, len,
		    "; the file now holds other content, and moving its write-ahead log aside "
		    "failed (%s): remove %s before the database is opened again, or it is "
		    "applied to that file and corrupts it; nothing more is written",
		    strerror(errno), wal);
	free(name);
	free(wal);
}

/* Mark the handle lost: from now on closing it deletes no file by name, and what is
 * committed but only in the write-ahead log it has open is copied into the database
 * file it has open when `salvage` (not into a file whose content is no longer its own:
 * the write-ahead log is then left as it is, or moved aside when the file begins
 * otherwise than the handle last left it, and closing the connection checkpoints
 * nothing). Describes the outcome into buf. */
static void store_mark_lost(struct store *st, bool salvage, char *buf, size_t len)
{
	int on = 1, frames = -1, done = -1, rc;
	sqlite3 *h;

	st->lost = true;
	buf[0] = '\0';
	if (st->db == NULL || !st->writable || st->db->backend != DB_SQLITE)
		return;
	store_ckpt_foreground(st);
	h = db_sqlite_handle(st->db);
	sqlite3_file_control(h, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
	if (!salvage) {
		/* Closing the last connection would checkpoint the log into the file. */
		sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
		if (!store_ckpt_file_is_own(st)) {
			store_wal_set_aside(st, buf, len);
			return;
		}
		snprintf(
		    buf, len, "; the write-ahead log is kept as it is, nothing more is written");
		return;
	}
	if (db_in_transaction(st->db)) {
		snprintf(buf, len, "; a transaction was open, nothing more is committed");
		return;
	}
	rc = sqlite3_wal_checkpoint_v2(h, "main", SQLITE_CHECKPOINT_TRUNCATE, &frames, &done);
	if (rc == SQLITE_OK)
		snprintf(buf, len,
		    "; everything committed was checkpointed into the database file opened "
		    "(%d WAL frame(s) copied)",
		    done > 0 ? done : 0);
	else
		snprintf(buf, len,
		    "; checkpointing the committed write-ahead log into the database file "
		    "failed: %s",
		    sqlite3_errmsg(h));
}

/* Find where the file this process holds open as device `dev`, inode `ino` now is, through
 * its descriptors in /proc/self/fd: its path into `where` (`n` bytes) and true when it is
 * still linked under one (moved, renamed), false when it is not (removed) or no
 * descriptor of it is found. */
static bool store_file_now_at(dev_t dev, ino_t ino, char *where, size_t n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	struct stat sb;
	char link[300];
	ssize_t k;
	bool linked = false;

	if (d == NULL)
		return false;
	while (!linked && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || fstat(atoi(e->d_name), &sb) != 0 ||
		    sb.st_dev != dev || sb.st_ino != ino || sb.st_nlink == 0)
			continue;
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		/* Its name unlinked, another hard link kept: not where it is. */
		if ((k = readlink(link, where, n - 1)) > 0) {
			where[k] = '\0';
			linked = k < 10 || strcmp(where + k - 10, " (deleted)") != 0;
		}
	}
	closedir(d);
	return linked;
}

/* Whether the count of the store's commits in user_version (db_sqlite_mark) is below
 * the highest one this connection committed, in serial order: an older copy of this
 * database written into the file in place, through SQLite or, `past_sqlite`, around it.
 * Describes it into `what`. False when the count could not be read (busy), with *read
 * false. */
static bool store_count_went_back(
    struct store *st, bool past_sqlite, char *what, size_t n, bool *read)
{
	struct db_stmt *q = NULL;
	uint32_t mine, file;
	bool back = false;

	*read = true;
	if (!db_sqlite_counted(st->db, &mine))
		return false;
	*read = db_prepare(st->db, "PRAGMA user_version", &q) == DB_OK && db_step(q) == DB_ROW;
	if (*read) {
		file = (uint32_t)db_column_int64(q, 0);
		back = (int32_t)(file - mine) < 0;
		if (back && past_sqlite)
			snprintf(what, n,
			    "%s: the file counts %u commits of autopack's (PRAGMA user_version), "
			    "fewer than the %u this supervisor reached, with no other program's "
			    "commit: an older copy of this database was written over the file in "
			    "place (cp of an earlier backup, say), and what was committed since "
			    "that copy was taken is not in it",
			    st->path, file, mine);
		else if (back)
			snprintf(what, n,
			    "%s: after another program's commit the file counts %u commits of "
			    "autopack's (PRAGMA user_version), fewer than the %u this supervisor "
			    "reached: an older copy of this database was written into the file in "
			    "place (sqlite3's .restore of an earlier backup, say), and what was "
			    "committed since that copy was taken is not in it",
			    st->path, file, mine);
	}
	db_finalize(q);
	return back;
}

/* Whether another connection's commit replaced what meta.db_uuid holds (another
 * database's content written into the file through SQLite: sqlite3's .restore, a backup
 * API copy into it), keeping the file's device, inode and size, or put back an older
 * state of this database (store_count_went_back): meta and the count are read again when
 * another connection committed since they were last read whole (PRAGMA data_version),
 * and with `always` whatever data_version says. A meta or a count that cannot be read
 * for now (busy) is looked at again next time. Describes it into `what`; *past_sqlite
 * true when no other connection committed since they were last read: the file was then
 * written around SQLite (cp), and the write-ahead log is not its own. */
static bool store_uuid_overwritten(
    struct store *st, bool always, char *what, size_t n, bool *past_sqlite)
{
	struct db_stmt *q = NULL;
	int64_t v = -1;
	const char *u;
	bool read = true;
	int rc;

	if (db_prepare(st->db, "PRAGMA data_version", &q) == DB_OK && db_step(q) == DB_ROW)
		v = db_column_int64(q, 0);
	db_finalize(q);
	q = NULL;
	*past_sqlite = v >= 0 && v == st->data_version_seen;
	if (!always && (v < 0 || v == st->data_version_seen))
		return false;
	rc = db_prepare(st->db, "SELECT db_uuid FROM meta", &q);
	if (rc == DB_OK)
		rc = db_step(q);
	if (rc == DB_ROW) {
		u = db_column_text(q, 0);
		if (u == NULL || strcmp(u, st->uuid) != 0) {
			char shown[48];

			utf8_one_line(shown, u != NULL ? u : "NULL", sizeof shown);
			snprintf(what, n,
			    "%s: another program's commit made meta.db_uuid %s, not %s as the "
			    "database was opened: another database's content was written into the "
			    "file in place (sqlite3's .restore, say)",
			    st->path, shown, st->uuid);
		} else {
			store_count_went_back(st, *past_sqlite, what, n, &read);
		}
	} else if (db_fault(st->db) == DB_FAULT_SCHEMA) {
		snprintf(what, n,
		    "%s: after another program's commit, meta can no longer be read (%s): "
		    "another database's content was written into the file in place (sqlite3's "
		    ".restore, say)",
		    st->path, db_errmsg(st->db));
	}
	if (v >= 0 && ((rc == DB_ROW && read) || db_fault(st->db) == DB_FAULT_SCHEMA))
		st->data_version_seen = v;
	db_finalize(q);
	return what[0] != '\0';
}

/* Report STORE_EMOVED if the path, or a write handle's -wal or -shm, now names another
 * file, or none, or (a write handle) the file is smaller than it was once seen, or was
 * written (a moved mtime or another size) since the handle's last checkpoint, or
 * (a write handle) another connection's commit changed meta.db_uuid or put the count of
 * commits back: read when data_version moved, or with `always`. */
static int store_identity_check(struct store *st, bool always, struct store_err *err)
{
	char what[700] = "", salvage[600], now_at[PATH_MAX];
	bool foreign = false, past_sqlite = false;
	struct stat sb;

#ifdef AUTOPACK_MUTANT_moved_database_unnoticed
	return 0;
#endif
	if (st->backend == DB_PG)
		return store_pg_identity_changed(st, err);
	if (stat(st->path, &sb) != 0) {
		if (errno != ENOENT)
			return store_fail(err, STORE_EIO, "%s: %s", st->path, strerror(errno));
		if (store_file_now_at(st->dev, st->ino, now_at, sizeof now_at))
			snprintf(what, sizeof what,
			    "%s: the database file was moved after it was opened (it is now %.300s)",
			    st->path, now_at);
		else
			snprintf(what, sizeof what,
			    "%s: the database file was removed after it was opened", st->path);
	} else if (sb.st_dev != st->dev || sb.st_ino != st->ino) {
		snprintf(what, sizeof what,
		    "%s: the database file was replaced after it was opened (device:inode "
		    "%lu:%lu, opened as %lu:%lu)",
		    st->path, (unsigned long)sb.st_dev, (unsigned long)sb.st_ino,
		    (unsigned long)st->dev, (unsigned long)st->ino);
	} else if (st->writable && sb.st_size < st->size_seen) {
		/* The file of a database held open never shrinks (no vacuum runs): it was
		 * truncated, or another file was copied over it in place. */
		snprintf(what, sizeof what,
		    "%s: the database file shrank from %lld to %lld bytes after it was opened "
		    "(truncated, or overwritten in place, e.g. by cp): it no longer holds what "
		    "was committed",
		    st->path, (long long)st->size_seen, (long long)sb.st_size);
		foreign = true;
	} else if (st->writable && store_ckpt_foreign_write(st, &sb, what, sizeof what)) {
		/* Only this handle writes the file, and only when it checkpoints: its mtime
		 * or size moved since the last checkpoint, so another program wrote it. */
		foreign = true;
	} else if (sb.st_size > st->size_seen) {
		st->size_seen = sb.st_size;
	}
#ifdef AUTOPACK_MUTANT_wal_loss_unnoticed
	st->wal_ino = st->shm_ino = 0;
#endif
	if (what[0] == '\0' && st->wal_ino != 0)
		store_side_changed(st->path, "-wal", st->wal_dev, st->wal_ino,
		    "its write-ahead log", what, sizeof what);
	if (what[0] == '\0' && st->shm_ino != 0)
		store_side_changed(st->path, "-shm", st->shm_dev, st->shm_ino,
		    "its shared-memory index", what, sizeof what);
	if (what[0] == '\0' && st->writable && st->db != NULL &&
	    store_uuid_overwritten(st, always, what, sizeof what, &past_sqlite))
		foreign = past_sqlite;
	if (what[0] == '\0')
		return 0;
	store_mark_lost(st, !foreign, salvage, sizeof salvage);
	return store_fail(err, STORE_EMOVED, "%s%s", what, salvage);
}

int store_identity_changed(struct store *st, struct store_err *err)
{
	return store_identity_check(st, false, err);
}

int store_identity_recheck(struct store *st, struct store_err *err)
{
	return store_identity_check(st, true, err);
}

int64_t store_data_version(struct store *st)
{
	struct db_stmt *q = NULL;
	int64_t v = -1;

	if (st->backend != DB_SQLITE || st->db == NULL)
		return -1;
	if (db_prepare(st->db, "PRAGMA data_version", &q) == DB_OK && db_step(q) == DB_ROW)
		v = db_column_int64(q, 0);
	db_finalize(q);
	return v;
}

/* Tell a busy or locked database from other failures. */
bool store_err_busy(const struct store_err *err)
{
	return err->fault == DB_FAULT_BUSY;
}

/* Name a STORE_E* code. */
const char *store_strerror(int code)
{
	switch (code) {
	case STORE_OK: return "OK";
	case STORE_ENOENT: return "ENOENT";
	case STORE_ENOTDB: return "ENOTDB";
	case STORE_EPARTIAL: return "EPARTIAL";
	case STORE_EVERSION: return "EVERSION";
	case STORE_EIO: return "EIO";
	case STORE_EINVAL: return "EINVAL";
	case STORE_EEXIST: return "EEXIST";
	case STORE_EBUSY: return "EBUSY";
	case STORE_EMOVED: return "EMOVED";
	case STORE_ELINKED: return "ELINKED";
	case STORE_EIDENT: return "EIDENT";
	case STORE_ESPENT: return "ESPENT";
	}
	return "EUNKNOWN";
}
