/* SQLite's WAL written in one write a commit: SQLite writes each frame of a commit with two
 * pwrite calls (its 24-byte header, then its page), ~8 frames a drained phase. A shim over
 * the default VFS keeps the frames a connection appends to its WAL file in memory and writes
 * them in one call when the commit's last frame is written (the frame whose header carries
 * the database size: docs of the WAL format, "commit frame"), so the commit's frames are in
 * the file before SQLite publishes them in the WAL index, and a failed write fails that
 * frame's write, and the commit, as before. Anything else done to the WAL file (a read, a
 * sync, its size, a truncation, a file control, its close) writes what is held first, and
 * a write that does not extend what is held writes it first. Every other file is the default
 * VFS's own. */
#include "common/store/sqlite/db_sqlite.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Held at most (a write past it writes what is held first): the default VFS writes at most
 * 128 KiB - 1 bytes in one call (a longer write fails as if the disk were full). */
#define WALBUF_MAX (124 * 1024)
#define WAL_FRAME_HDR 24 /* bytes of a frame header */

/* A WAL file: the default VFS's file (`real`, in the same allocation, after this one) and
 * the bytes [off, off + len) held for it. */
struct walbuf_file {
	sqlite3_file base;
	sqlite3_file *real;
	unsigned char *buf;
	size_t len, cap;
	sqlite3_int64 off;
	bool commit; /* the commit frame's header is held: its page ends the commit */
};

static sqlite3_vfs walbuf_vfs;
static sqlite3_vfs *walbuf_real;

/* Write what is held; SQLite's result code of the write (what is held is dropped either
 * way: SQLite rolls the commit back on a failure, and its frames are not published). */
static int walbuf_flush(struct walbuf_file *f)
{
	int rc = SQLITE_OK;

	if (f->len > 0)
		rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
	f->len = 0;
	f->commit = false;
	return rc;
}

/* Hold `n` bytes for offset `at`, which ends what is held (or starts it when nothing is);
 * false when the buffer cannot take them. */
static bool walbuf_hold(struct walbuf_file *f, const void *data, size_t n, sqlite3_int64 at)
{
	if (f->len > 0 && at != f->off + (sqlite3_int64)f->len)
		return false;
	if (f->len + n > WALBUF_MAX)
		return false;
	if (f->len + n > f->cap) {
		size_t cap = f->cap != 0 ? f->cap : 65536;
		unsigned char *b;

		while (cap < f->len + n)
			cap *= 2;
		if ((b = realloc(f->buf, cap)) == NULL)
			return false;
		f->buf = b;
		f->cap = cap;
	}
	if (f->len == 0)
		f->off = at;
	memcpy(f->buf + f->len, data, n);
	f->len += n;
	return true;
}

/* A write: held when it extends what is held (or nothing is), else written after what is
 * held; the commit frame's page writes everything. SQLite's result code. */
static int walbuf_write(sqlite3_file *file, const void *data, int n, sqlite3_int64 at)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	const unsigned char *h = data;
	bool commit_hdr = n == WAL_FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
	bool commit_page = f->commit;
	int rc;

	if (!walbuf_hold(f, data, (size_t)n, at)) {
		if ((rc = walbuf_flush(f)) != SQLITE_OK)
			return rc;
		if (!walbuf_hold(f, data, (size_t)n, at))
			return f->real->pMethods->xWrite(f->real, data, n, at);
	}
	if (commit_hdr) {
		f->commit = true;
		return SQLITE_OK;
	}
	return commit_page ? walbuf_flush(f) : SQLITE_OK;
}

/* Close the file, after writing what is held. */
static int walbuf_close(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f), rc2 = f->real->pMethods->xClose(f->real);

	free(f->buf);
	f->buf = NULL;
	f->cap = 0;
	return rc != SQLITE_OK ? rc : rc2;
}

/* The default VFS's call on the file, after writing what is held (a failed write is the
 * call's result). */
#define WALBUF_AFTER_FLUSH(call)                                                                   \
	do {                                                                                       \
		struct walbuf_file *f = (struct walbuf_file *)file;                                \
		int rc = walbuf_flush(f);                                                          \
		if (rc != SQLITE_OK)                                                               \
			return rc;                                                                 \
		return f->real->pMethods->call;                                                    \
	} while (0)

static int walbuf_read(sqlite3_file *file, void *data, int n, sqlite3_int64 at)
{
	WALBUF_AFTER_FLUSH(xRead(f->real, data, n, at));
}

static int walbuf_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	WALBUF_AFTER_FLUSH(xTruncate(f->real, size));
}

static int walbuf_sync(sqlite3_file *file, int flags)
{
	WALBUF_AFTER_FLUSH(xSync(f->real, flags));
}

static int walbuf_size(sqlite3_file *file, sqlite3_int64 *size)
{
	WALBUF_AFTER_FLUSH(xFileSize(f->real, size));
}

static int walbuf_control(sqlite3_file *file, int op, void *arg)
{
	WALBUF_AFTER_FLUSH(xFileControl(f->real, op, arg));
}

/* The default VFS's own calls, on its file. */
static int walbuf_lock(sqlite3_file *file, int level)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xLock(f->real, level);
}

static int walbuf_unlock(sqlite3_file *file, int level)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xUnlock(f->real, level);
}

static int walbuf_reserved(sqlite3_file *file, int *out)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int walbuf_sector(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int walbuf_device(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* Version 1: SQLite maps no shared memory and no pages of a WAL file. */
static const sqlite3_io_methods walbuf_methods = {
	1,
	walbuf_close,
	walbuf_read,
	walbuf_write,
	walbuf_truncate,
	walbuf_sync,
	walbuf_size,
	walbuf_lock,
	walbuf_unlock,
	walbuf_reserved,
	walbuf_control,
	walbuf_sector,
	walbuf_device,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
	NULL,
};

/* Open a file with the default VFS: a WAL file behind the shim, any other as it is (it
 * takes the start of the larger block SQLite gives). SQLite's result code. */
static int walbuf_open(
    sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc;

	(void)vfs;
	if ((flags & SQLITE_OPEN_WAL) == 0)
		return walbuf_real->xOpen(walbuf_real, name, file, flags, out_flags);
	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)(f + 1);
	rc = walbuf_real->xOpen(walbuf_real, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK)
		return rc;
	f->base.pMethods = &walbuf_methods;
	return SQLITE_OK;
}

/* Make the shim SQLite's default VFS, over the default one; once, before any connection
 * opens. Without a default VFS (SQLite could not initialise) nothing changes. */
void sqlite_walbuf_use(void)
{
	if (walbuf_real != NULL || (walbuf_real = sqlite3_vfs_find(NULL)) == NULL)
		return;
	walbuf_vfs = *walbuf_real;
	walbuf_vfs.pNext = NULL;
	walbuf_vfs.zName = "autopack-walbuf";
	walbuf_vfs.szOsFile = (int)sizeof(struct walbuf_file) + walbuf_real->szOsFile;
	walbuf_vfs.xOpen = walbuf_open;
	sqlite3_vfs_register(&walbuf_vfs, 1);
}
