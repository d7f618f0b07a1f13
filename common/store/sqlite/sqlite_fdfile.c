/* A database SQLite reaches through a file descriptor the caller opened, never by its name:
 * the VFS "autopack-fdfile" gives the main database of a connection opened as
 * "file:NAME?fd=N" the descriptor N, and refuses every other file (a journal, a WAL, a
 * temporary file). A file made with O_EXCL and written this way is the file made, whatever
 * is put at its name meanwhile (a link planted there after a close and before a reopen by
 * name would have been followed). The descriptor stays the caller's: closing the database
 * does not close it. No locks are taken: the file is the caller's alone. */
#include "common/store/sqlite/db_sqlite.h"
#include "common/fdio.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The main database: the caller's descriptor. */
struct fdfile {
	sqlite3_file base;
	int fd;
};

static sqlite3_vfs fdfile_vfs;

static int fdfile_close(sqlite3_file *file)
{
	(void)file;
	return SQLITE_OK;
}

/* Read amt bytes at off; a read past the end fills the rest with zeros, as SQLite asks. */
static int fdfile_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
	struct fdfile *f = (struct fdfile *)file;
	int e;
	size_t done = fd_pread_all(f->fd, buf, (size_t)amt, (off_t)off, &e);

	if (done == (size_t)amt)
		return SQLITE_OK;
	if (e != 0)
		return SQLITE_IOERR_READ;
	memset((char *)buf + done, 0, (size_t)amt - done);
	return SQLITE_IOERR_SHORT_READ;
}

static int fdfile_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	struct fdfile *f = (struct fdfile *)file;
	int e;

	if (fd_pwrite_all(f->fd, buf, (size_t)amt, (off_t)off, &e) == (size_t)amt)
		return SQLITE_OK;
	return e == ENOSPC || e == EDQUOT ? SQLITE_FULL : SQLITE_IOERR_WRITE;
}

static int fdfile_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct fdfile *f = (struct fdfile *)file;

	return ftruncate(f->fd, (off_t)size) == 0 ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
}

static int fdfile_sync(sqlite3_file *file, int flags)
{
	struct fdfile *f = (struct fdfile *)file;

	(void)flags;
	return fsync(f->fd) == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}

static int fdfile_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct fdfile *f = (struct fdfile *)file;
	struct stat sb;

	if (fstat(f->fd, &sb) != 0)
		return SQLITE_IOERR_FSTAT;
	*size = (sqlite3_int64)sb.st_size;
	return SQLITE_OK;
}

/* Taking or dropping a lock: nothing to do. */
static int fdfile_lock(sqlite3_file *file, int level)
{
	(void)file;
	(void)level;
	return SQLITE_OK;
}

static int fdfile_reserved(sqlite3_file *file, int *out)
{
	(void)file;
	*out = 0;
	return SQLITE_OK;
}

static int fdfile_control(sqlite3_file *file, int op, void *arg)
{
	(void)file;
	(void)op;
	(void)arg;
	return SQLITE_NOTFOUND;
}

static int fdfile_sector(sqlite3_file *file)
{
	(void)file;
	return 4096;
}

static int fdfile_device(sqlite3_file *file)
{
	(void)file;
	return 0;
}

/* Version 1: no shared memory, so no WAL. */
static const sqlite3_io_methods fdfile_methods = {
	.iVersion = 1,
	.xClose = fdfile_close,
	.xRead = fdfile_read,
	.xWrite = fdfile_write,
	.xTruncate = fdfile_truncate,
	.xSync = fdfile_sync,
	.xFileSize = fdfile_size,
	.xLock = fdfile_lock,
	.xUnlock = fdfile_lock,
	.xCheckReservedLock = fdfile_reserved,
	.xFileControl = fdfile_control,
	.xSectorSize = fdfile_sector,
	.xDeviceCharacteristics = fdfile_device,
};

/* Open the main database of a name carrying ?fd=N on descriptor N; any other file, or a
 * name without a descriptor, is SQLITE_CANTOPEN. */
static int fdfile_open(
    sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags)
{
	struct fdfile *f = (struct fdfile *)file;
	sqlite3_int64 fd;

	(void)vfs;
	file->pMethods = NULL;
	if (name == NULL || (flags & SQLITE_OPEN_MAIN_DB) == 0)
		return SQLITE_CANTOPEN;
	fd = sqlite3_uri_int64(name, "fd", -1);
	if (fd < 0 || fd > INT_MAX)
		return SQLITE_CANTOPEN;
	f->fd = (int)fd;
	f->base.pMethods = &fdfile_methods;
	if (out_flags != NULL)
		*out_flags = flags;
	return SQLITE_OK;
}

/* No file of this VFS is ever deleted by name. */
static int fdfile_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	(void)name;
	(void)sync_dir;
	return SQLITE_IOERR_DELETE;
}

/* No other file exists for SQLite (no hot journal, no WAL beside the database). */
static int fdfile_access(sqlite3_vfs *vfs, const char *name, int what, int *out)
{
	(void)vfs;
	(void)name;
	(void)what;
	*out = 0;
	return SQLITE_OK;
}

/* The name as given: it is never opened. */
static int fdfile_full_path(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	if ((int)strlen(name) >= n)
		return SQLITE_CANTOPEN;
	memcpy(out, name, strlen(name) + 1);
	return SQLITE_OK;
}

/* Register the VFS (not as the default), over the default one for the rest (randomness,
 * time, sleep); once, before any connection opens. */
void sqlite_fdfile_use(void)
{
	sqlite3_vfs *real = sqlite3_vfs_find(NULL);

	if (fdfile_vfs.zName != NULL || real == NULL)
		return;
	fdfile_vfs = *real;
	fdfile_vfs.iVersion = 2;
	fdfile_vfs.pNext = NULL;
	fdfile_vfs.zName = SQLITE_FDFILE_VFS;
	fdfile_vfs.szOsFile = (int)sizeof(struct fdfile);
	fdfile_vfs.pAppData = NULL;
	fdfile_vfs.xOpen = fdfile_open;
	fdfile_vfs.xDelete = fdfile_delete;
	fdfile_vfs.xAccess = fdfile_access;
	fdfile_vfs.xFullPathname = fdfile_full_path;
	sqlite3_vfs_register(&fdfile_vfs, 0);
}
