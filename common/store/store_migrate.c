#include "common/store/schema.sql.h"
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/store/store_values.h"
#include "common/util.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The tables the Python original shares with autopack. */
static const char *const migrate_shared_tables[] = { "runs", "tiers", "phases", "llm_usage_events",
	"token_estimation_v2_events" };

/* Give `n` tables the current schema's columns they lack. */
static int store_migrate_columns(
    struct db *db, const char *const *tables, size_t n, struct store_err *err)
{
	struct adopt_ref ref;
	int rc = adopt_backend_sqlite.ref_load(&ref, err);

	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = adopt_columns_add(db, adopt_ref_find(&ref, tables[i]), NULL, true, err);
	adopt_ref_free(&ref);
	return rc;
}

/* Upgrade version 2 to 3: give the shared tables the columns of the current schema they
 * lack (an adopted database has the original's already, so this adds only what is
 * missing), then rewrite the timestamps earlier versions stored as
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" into the original's format. */
static int store_migrate_v3(struct db *db, struct store_err *err)
{
	struct store_value_cols cols = { 0 };
	int rc = store_migrate_columns(
	    db, migrate_shared_tables, ARRAY_SIZE(migrate_shared_tables), err);

	if (rc == 0)
		rc = store_values_register(db, err);
	if (rc == 0)
		rc = store_values_columns(db, false, &cols, err);
	if (rc == 0)
		rc = store_values_rewrite(db, &cols, err);
	store_value_cols_free(&cols);
	return rc;
}

/* Upgrade version 3 to 4: the columns of the fitted estimator and its telemetry
 * (SCHEMA_V4_SQL), added where missing. */
static int store_migrate_v4(struct db *db, struct store_err *err)
{
	static const char *const tables[] = { "token_estimation_v2_events",
		"estimator_coefficients" };

	return store_migrate_columns(db, tables, ARRAY_SIZE(tables), err);
}

/* Upgrade version 4 to 5: llm_usage_events.max_tokens (SCHEMA_V5_SQL), added where
 * missing. */
static int store_migrate_v5(struct db *db, struct store_err *err)
{
	static const char *const tables[] = { "llm_usage_events" };

	return store_migrate_columns(db, tables, ARRAY_SIZE(tables), err);
}

/* The upgrade steps, in order: step `from` turns version from into from + 1. */
const struct store_migration store_migrations[] = {
	{ 1, SCHEMA_V2_SQL, NULL },
	{ 2, NULL, store_migrate_v3 },
	{ 3, NULL, store_migrate_v4 },
	{ 4, NULL, store_migrate_v5 },
};
const size_t store_n_migrations = ARRAY_SIZE(store_migrations);

/* Name a backup file that does not exist yet. */
char *store_backup_name(const char *path, const char *tag)
{
	time_t now = time(NULL);
	struct tm tm;
	struct stat sb;
	char stamp[32];
	char *name;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	name = xasprintf("%s.%s-%s.bak", path, tag, stamp);
	for (int i = 1; lstat(name, &sb) == 0; i++) {
		free(name);
		name = xasprintf("%s.%s-%s-%d.bak", path, tag, stamp, i);
	}
	return name;
}

/* Whether `path` still names the file open on `fd` (no link or other file put in its place). */
static bool store_backup_is_ours(const char *path, int fd)
{
	struct stat at, ours;

	return lstat(path, &at) == 0 && fstat(fd, &ours) == 0 && at.st_dev == ours.st_dev &&
	    at.st_ino == ours.st_ino;
}

/* Sync the directory that holds `path`, so that a file just made there keeps its name
 * through a power loss. Returns 0, or the errno of an fsync that failed; a directory that
 * cannot be opened (no read permission) or whose file system syncs no directories
 * (EINVAL, EBADF) is left unsynced with 0, as SQLite leaves it for its journals. */
static int store_backup_sync_dir(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int fd, rc = 0;

	if (slash != NULL)
		slash[slash == dir ? 1 : 0] = '\0';
	fd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && fsync(fd) != 0 && errno != EINVAL && errno != EBADF)
		rc = errno;
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

/* Copy the database with the backup API into a new file at `dest`, written through the
 * descriptor that created it (SQLite never opens the name, so a link put at the name is
 * not followed); fail if the name no longer holds that file when the copy is done, or if
 * its directory cannot be synced (its name would not be sure to survive a power loss). A
 * partial copy is removed on failure, when the name still holds it. */
int store_backup(struct store *st, const char *dest, struct store_err *err)
{
	sqlite3 *out = NULL;
	sqlite3_backup *bk;
	char uri[64];
	int fd, rc, dir_err;

	assert(st->db != NULL && dest != NULL && strcmp(dest, st->path) != 0);
	/* The copy holds what the database holds: created 0600 (less what the umask removes),
	 * and never over an existing file or through a link. */
	fd = open(dest, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return store_fail(
		    err, STORE_EIO, "%s: backup to %s failed: %s", st->path, dest, strerror(errno));
	snprintf(uri, sizeof uri, "file:backup?fd=%d", fd);
	rc = sqlite3_open_v2(uri, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, SQLITE_FDFILE_VFS);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(out, "PRAGMA journal_mode=OFF", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		bk = sqlite3_backup_init(out, "main", db_sqlite_handle(st->db), "main");
		if (bk == NULL) {
			rc = sqlite3_errcode(out);
		} else {
			rc = sqlite3_backup_step(bk, -1);
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
			if (sqlite3_backup_finish(bk) != SQLITE_OK && rc == SQLITE_OK)
				rc = sqlite3_errcode(out);
		}
	}
	if (rc != SQLITE_OK)
		store_fail(err, STORE_EIO, "%s: backup to %s failed: %s", st->path, dest,
		    out != NULL ? sqlite3_errmsg(out) : sqlite3_errstr(rc));
	if (out != NULL && sqlite3_close(out) != SQLITE_OK && rc == SQLITE_OK)
		rc = store_fail(
		    err, STORE_EIO, "%s: closing backup: %s", dest, sqlite3_errmsg(out));
	if (rc == SQLITE_OK && !store_backup_is_ours(dest, fd)) {
		close(fd);
		return store_fail(err, STORE_EIO,
		    "%s: backup to %s failed: the file was removed or replaced while it was "
		    "written (by another process, e.g. with a link); it is left as it is",
		    st->path, dest);
	}
	if (rc == SQLITE_OK && (dir_err = store_backup_sync_dir(dest)) != 0)
		rc = store_fail(err, STORE_EIO,
		    "%s: backup to %s failed: syncing its directory: %s", st->path, dest,
		    strerror(dir_err));
	if (rc != SQLITE_OK && store_backup_is_ours(dest, fd))
		unlink(dest);
	close(fd);
	return rc != SQLITE_OK ? STORE_EIO : 0;
}

/* Apply every step from `from` up, and stamp the new version, in the open transaction. */
static int store_migrate_steps(struct store *st, int from, struct store_err *err)
{
	char what[64];
	char *sql;
	int rc = 0, v = from;

	for (size_t i = 0; i < store_n_migrations && rc == 0; i++) {
		if (store_migrations[i].from != v)
			continue;
		snprintf(what, sizeof what, "migration step %d to %d", v, v + 1);
		if (store_migrations[i].sql != NULL)
			rc = store_exec(st->db, store_migrations[i].sql, what, err);
		if (rc == 0 && store_migrations[i].fn != NULL)
			rc = store_migrations[i].fn(st->db, err);
		v++;
	}
	if (rc == 0 && v != SCHEMA_VERSION)
		return store_fail(err, STORE_EVERSION,
		    "no migration path from schema version %d to %d", v, SCHEMA_VERSION);
	if (rc != 0)
		return rc;
	sql = xasprintf("UPDATE meta SET schema_version = %d WHERE id = 1", SCHEMA_VERSION);
	rc = store_exec(st->db, sql, "stamping the new schema version", err);
	free(sql);
	return rc;
}

/* Back up, then upgrade to SCHEMA_VERSION in one transaction; nothing changes on failure. */
int store_migrate(struct store *st, struct store_err *err)
{
	int64_t v = 0;
	char tag[16];
	char *backup;
	int rc;

	if (st->schema_version >= SCHEMA_VERSION)
		return 0;
	if (!st->writable)
		return store_fail(
		    err, STORE_EINVAL, "%s: opened read-only; cannot migrate", st->path);
	snprintf(tag, sizeof tag, "v%d", st->schema_version);
	backup = store_backup_name(st->path, tag);
	rc = store_backup(st, backup, err);
	if (rc != 0) {
		free(backup);
		return rc;
	}
	rc = store_begin(st->db, "starting the migration", err);
	if (rc == 0)
		rc = store_query_int(st->db, "SELECT schema_version FROM meta", &v, err);
	if (rc == 0)
		rc = store_migrate_steps(st, (int)v, err);
	if (rc == 0)
		rc = store_commit(st->db, "committing the migration", err);
	if (rc != 0) {
		char *msg = xstrdup(err != NULL ? err->text : "");
		db_rollback(st->db);
		store_fail(err, rc,
		    "%s: migrating from schema version %d failed: %s; the "
		    "database is unchanged, a copy is at %s",
		    st->path, st->schema_version, msg, backup);
		free(msg);
		free(backup);
		return rc;
	}
	st->migrated_from = st->schema_version;
	st->schema_version = SCHEMA_VERSION;
	st->backup_path = backup;
	return store_schema_check(st->db, st->path, &st->schema_version, st->uuid, err);
}
