/* The SQLite backend of the store's database access (common/store/db.h): a connection to
 * one file. Only the store's SQLite-specific files use the raw handle. */
#ifndef AUTOPACK_STORE_DB_SQLITE_H
#define AUTOPACK_STORE_DB_SQLITE_H

#include "common/store/db.h"

#include <sqlite3.h>

/* Configure SQLite for this process (allocation, statistics, VFS), once: to be called
 * before any other SQLite function; db_sqlite_open calls it. */
void db_sqlite_configure(void);
/* Open the existing file at `path` with sqlite3_open_v2 `flags` (never
 * SQLITE_OPEN_CREATE unless `create`) and a busy timeout of `busy_ms`. Returns DB_OK, or
 * DB_ERROR with SQLite's message in msg and *out NULL. */
int db_sqlite_open(
    const char *path, int flags, int busy_ms, struct db **out, char *msg, size_t msglen);
/* Wrap an open SQLite handle (the connection takes it over and closes it). */
struct db *db_sqlite_wrap(sqlite3 *h);
/* The SQLite handle of a connection of this backend. */
sqlite3 *db_sqlite_handle(struct db *db);
/* Give SQLite its allocation functions (common/store/sqlite/sqlite_mem.c): before SQLite
 * is initialised, once. */
void sqlite_mem_use(void);
/* Make SQLite's default VFS the one that writes a commit's WAL frames in one write
 * (common/store/sqlite/sqlite_walbuf.c): after sqlite_mem_use, before any connection. */
void sqlite_walbuf_use(void);
/* The VFS through which a connection opened as "file:NAME?fd=N" (SQLITE_OPEN_URI) reads and
 * writes its main database on the open descriptor N only, never opening NAME, with no
 * journal, WAL or temporary file (common/store/sqlite/sqlite_fdfile.c; journal_mode OFF
 * or MEMORY). */
#define SQLITE_FDFILE_VFS "autopack-fdfile"
/* Register that VFS: after sqlite_mem_use, before any connection. */
void sqlite_fdfile_use(void);
/* From now on, every write transaction of `db` that changes rows counts itself at its
 * commit in the database header (user_version one more) and sets application_id to
 * `mark` (0: none of this). */
void db_sqlite_mark(struct db *db, uint32_t mark);
/* The highest count (modulo 2^32, in serial order) that a counted commit of `db` wrote
 * into user_version, in *count; false when none of its commits was counted yet. */
bool db_sqlite_counted(struct db *db, uint32_t *count);
/* SQLite's primary result code of the last failure (SQLITE_BUSY, ...). */
int db_sqlite_errcode(struct db *db);

#endif
