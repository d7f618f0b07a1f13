#include "common/store/sqlite/db_sqlite.h"
#include "common/store/dburl_pg.h"
#include "common/store/pg/store_pg.h"
#include "common/store/schema.sql.h"
#include "common/store/store_internal.h"
#include "common/store/store_wal.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Write a random (version 4) UUID into out. */
int store_uuid_v4(char out[37], struct store_err *err)
{
	unsigned char b[16];

	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
		return store_fail(err, STORE_EIO, "getrandom: %s", strerror(errno));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
	    b[14], b[15]);
	return 0;
}

/* Describe who creates the database: "user@host autopack <version>". */
char *store_created_by(void)
{
	struct passwd *pw = getpwuid(geteuid());
	char host[256];

	if (gethostname(host, sizeof host) != 0)
		strlcpy_ap(host, "unknown-host", sizeof host);
	host[sizeof host - 1] = '\0';
	if (pw != NULL)
		return xasprintf("%s@%s autopack %s", pw->pw_name, host, AUTOPACK_VERSION);
	return xasprintf("uid%ld@%s autopack %s", (long)geteuid(), host, AUTOPACK_VERSION);
}

/* Insert the meta row. */
int store_meta_insert(struct db *db, const char *uuid, const char *now, const char *by, int version,
    struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db,
	    "INSERT INTO meta (id, db_uuid, created_at, created_by, schema_version) "
	    "VALUES (1, ?1, ?2, ?3, ?4)",
	    &q);

	if (rc == DB_OK) {
		store_bind_text(q, 1, uuid);
		store_bind_text(q, 2, now);
		store_bind_text(q, 3, by);
		db_bind_int64(q, 4, version);
	}
	return store_step_done(db, q, rc, err, "writing meta");
}

/* Remove a half-made database and the files SQLite may have put beside it. */
static void store_unlink_all(const char *path)
{
	static const char *suffix[] = { "", "-journal", "-wal", "-shm" };

	for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
		char *p = xasprintf("%s%s", path, suffix[i]);
		unlink(p);
		free(p);
	}
}

/* Build `sql` and the meta row in the new file `tmp` in one transaction, then switch it
 * to WAL. */
static int store_init_build(
    const char *tmp, const char *sql, int version, const char *id, struct store_err *err)
{
	struct db *db = NULL;
	char now[32], *by = store_created_by();
	int rc;

	time_db_now(now);
	rc = store_connect(tmp, SQLITE_OPEN_READWRITE, "", &db, err);
	if (rc == 0)
		db_sqlite_mark(db, store_wal_mark(id));
	if (rc == 0)
		rc = store_begin(db, "starting the schema transaction", err);
	if (rc == 0)
		rc = store_exec(db, sql, "creating the schema", err);
	if (rc == 0)
		rc = store_meta_insert(db, id, now, by, version, err);
	if (rc == 0)
		rc = store_commit(db, "committing the schema", err);
	if (rc == 0)
		rc = store_exec(db, "PRAGMA journal_mode=WAL", "switching to WAL", err);
	db_close(db);
	free(by);
	return rc;
}

/* Give the finished file `tmp` the name `path` unless something has that name already. */
static int store_init_publish(const char *tmp, const char *path, struct store_err *err)
{
	int rc = link(tmp, path);

	if (rc != 0 && (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS))
		rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
	if (rc == 0)
		return 0;
	if (errno == EEXIST)
		return store_fail(err, STORE_EEXIST, "a file appeared there while initialising");
	return store_fail(err, STORE_EIO, "cannot create: %s", strerror(errno));
}

/* Build the database under a private temporary name beside `path` (mode 0600, less what
 * the umask removes), then give it its name in one step: nobody sees a half-made file, and
 * an existing file is never replaced. */
int store_init_sql(
    const char *path, const char *sql, int version, char uuid[37], struct store_err *err)
{
	char id[37], *tmp;
	int fd, rc;

	rc = store_uuid_v4(id, err);
	if (rc != 0)
		return rc;
	tmp = xasprintf("%s.init-XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = store_fail(err, STORE_EIO, "%s: cannot create: %s", path, strerror(errno));
		free(tmp);
		return rc;
	}
	close(fd);
	rc = store_init_build(tmp, sql, version, id, err);
	if (rc == 0)
		rc = store_init_publish(tmp, path, err);
	store_unlink_all(tmp);
	free(tmp);
	if (rc != 0) {
		char *msg = xstrdup(err != NULL ? err->text : "");
		store_fail(err, rc, "%s: %s; nothing was created", path, msg);
		free(msg);
		return rc;
	}
	if (uuid != NULL)
		memcpy(uuid, id, sizeof id);
	return 0;
}

/* Report an existing autopack database; see store_internal.h. */
int store_init_exists(struct store *st, const char *where, char uuid[37], struct store_err *err)
{
	if (uuid != NULL)
		memcpy(uuid, st->uuid, sizeof st->uuid);
	store_fail(err, STORE_EEXIST,
	    "%s: already an autopack database (uuid %s, schema version %d), nothing changed", where,
	    st->uuid, st->schema_version);
	store_close(st);
	return STORE_EEXIST;
}

/* Refuse a -wal or -journal with content left beside `path` by a database that was there:
 * SQLite applies it to whatever file is then at the path, and a new one would hold that
 * database's pages. STORE_EINVAL naming it, or 0. */
static int store_init_leftovers(const char *path, struct store_err *err)
{
	static const char *const suffix[] = { "-wal", "-journal" };
	struct stat sb;

	for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
		char *p = xasprintf("%s%s", path, suffix[i]);
		int rc = 0;

		if (lstat(p, &sb) == 0 && sb.st_size > 0)
			rc = store_fail(err, STORE_EINVAL,
			    "%s: refusing to initialise: %s (%lld bytes) is left there by a "
			    "database that was at this path (its last commits), and SQLite would "
			    "apply it to the new file, which would then hold that database's "
			    "pages. Put that database back, or move %s and %s-shm away; nothing "
			    "was created",
			    path, p, (long long)sb.st_size, p, path);
		free(p);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Refuse a new database named like a file SQLite keeps beside the database that is there
 * without the suffix (`d.db-wal` beside `d.db`): that database would take the new file
 * for its own log, index or journal, and empty it. STORE_EINVAL naming both, or 0. */
static int store_init_side_name(const char *path, struct store_err *err)
{
	static const char *const suffix[] = { "-wal", "-shm", "-journal" };
	size_t n = strlen(path);
	struct stat sb;

	for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
		size_t k = strlen(suffix[i]);
		char *base;
		bool taken;

		if (n <= k || strcmp(path + n - k, suffix[i]) != 0)
			continue;
		base = xstrndup(path, n - k);
		taken = lstat(base, &sb) == 0;
		if (taken)
			store_fail(err, STORE_EINVAL,
			    "%s: refusing to initialise: SQLite keeps the %s of the database %s "
			    "under this name, and would take this file for it and empty it; name "
			    "the new database another way; nothing was created",
			    path, suffix[i], base);
		free(base);
		if (taken)
			return STORE_EINVAL;
	}
	return 0;
}

/* Create a new database, or report (STORE_EEXIST) the autopack database already there. */
int store_init(const char *path, char uuid[37], struct store_err *err)
{
	struct store st;
	struct stat sb;
	int rc;

	if (dburl_is_pg(path))
		return store_pg_init(path, uuid, err);
	if (lstat(path, &sb) == 0) {
		rc = store_open(&st, path, path, STORE_READ, err);
		if (rc == 0)
			return store_init_exists(&st, path, uuid, err);
		if (rc != STORE_ENOENT) {
			char *msg = xstrdup(err != NULL ? err->text : "");
			store_fail(
			    err, rc, "refusing to initialise over an existing file: %s", msg);
			free(msg);
			return rc;
		}
	}
	rc = store_init_side_name(path, err);
	if (rc == 0)
		rc = store_init_leftovers(path, err);
	if (rc != 0)
		return rc;
	return store_init_sql(path, SCHEMA_SQL, SCHEMA_VERSION, uuid, err);
}
