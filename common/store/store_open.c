#include "common/store/sqlite/db_sqlite.h"
#include "common/store/dburl_pg.h"
#include "common/store/pg/store_pg.h"
#include "common/store/schema.sql.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STORE_BUSY_TIMEOUT_MS 5000

/* Check that `path` names a non-empty regular file, filling *sb. */
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
	return 0;
}

/* Check that the connection reads an SQLite database at all. */
static int store_check_sqlite(struct db *db, const char *path, struct store_err *err)
{
	int64_t v;
	int rc = store_query_int(db, "PRAGMA schema_version", &v, NULL);

	if (rc == 0)
		return 0;
	if (db_fault(db) == DB_FAULT_NOTDB)
		return store_fail(err, STORE_ENOTDB,
		    "%s: not an SQLite database; the file was left untouched", path);
	return store_fail(err, STORE_EIO, "%s: cannot read: %s", path, db_errmsg(db));
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
	int flags = mode == STORE_WRITE ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
	struct stat sb;
	struct db *db = NULL;
	int rc;

	if (dburl_is_pg(url))
		return store_pg_open(st, url, mode, err);
	/* Callers resolve the URL first (dburl_resolve): the path is canonical. */
	assert(path != NULL && path[0] == '/' && url != NULL);
	memset(st, 0, sizeof *st);
	rc = store_stat_file(path, &sb, err);
	if (rc != 0)
		return rc;
	rc = store_connect(path, flags, "", &db, err);
	if (rc != 0)
		return rc;
	rc = store_check_sqlite(db, path, err);
	if (rc == 0)
		rc = store_schema_check(db, path, &st->schema_version, st->uuid, err);
	if (rc == 0 && stat(path, &sb) != 0)
		rc = store_fail(err, STORE_EMOVED, "%s: removed while opening", path);
	if (rc == 0)
		rc = store_exec(db, "PRAGMA foreign_keys=ON", path, err);
	if (rc == 0 && mode == STORE_WRITE)
		rc = store_setup_writer(db, path, err);
	if (rc != 0)
		goto fail;
	st->db = db;
	st->backend = DB_SQLITE;
	st->path = xstrdup(path);
	st->url = xstrdup(url);
	st->dev = sb.st_dev;
	st->ino = sb.st_ino;
	st->writable = mode == STORE_WRITE;
	if (mode == STORE_WRITE && st->schema_version < SCHEMA_VERSION) {
		rc = store_migrate(st, err);
		if (rc != 0) {
			store_close(st);
			return rc;
		}
	}
	return 0;
fail:
	db_close(db);
	return rc;
}

/* Close the connection and free the handle; safe on a zeroed handle. */
void store_close(struct store *st)
{
	db_close(st->db);
	free(st->path);
	free(st->url);
	free(st->backup_path);
	free(st->server_id);
	memset(st, 0, sizeof *st);
}

/* Report STORE_EMOVED if the path now names another file, or none. */
int store_identity_changed(struct store *st, struct store_err *err)
{
	struct stat sb;

#ifdef AUTOPACK_MUTANT_moved_database_unnoticed
	return 0;
#endif
	if (st->backend == DB_PG)
		return store_pg_identity_changed(st, err);
	if (stat(st->path, &sb) != 0) {
		if (errno == ENOENT)
			return store_fail(err, STORE_EMOVED,
			    "%s: the database file was removed after it was opened", st->path);
		return store_fail(err, STORE_EIO, "%s: %s", st->path, strerror(errno));
	}
	if (sb.st_dev != st->dev || sb.st_ino != st->ino)
		return store_fail(err, STORE_EMOVED,
		    "%s: the database file was replaced after it was opened (device:inode "
		    "%lu:%lu, opened as %lu:%lu)",
		    st->path, (unsigned long)sb.st_dev, (unsigned long)sb.st_ino,
		    (unsigned long)st->dev, (unsigned long)st->ino);
	return 0;
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
	}
	return "EUNKNOWN";
}
