/* What an adoption does differently on SQLite: a file opened read-only or for writing,
 * autopack's schema built in a private in-memory database, SQLite's own damage check,
 * the values checked by an SQL function, and the copy taken with the backup API. */
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/store/schema.sql.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Open the file to read it (on a read-only file system too, as every reading command
 * does), or for writing. */
static int adopt_sqlite_connect(const char *path, bool write, struct db **db, struct store_err *err)
{
	int rc;

	if (!write)
		return store_connect_read(path, db, err);
	/* SQLite would open a file it may not write read-only, and its first write fail
	 * naming no cause. */
	if ((rc = store_check_access(path, true, err)) != 0)
		return rc;
	return store_connect(path, SQLITE_OPEN_READWRITE, " for writing", db, err);
}

/* Add the table or index of the current row of sqlite_master to the reference. */
static int adopt_sqlite_ref_row(struct db_stmt *q, void *arg)
{
	struct adopt_ref *ref = arg;
	const char *type = db_column_text(q, 0);
	const char *name = db_column_text(q, 1);
	struct adopt_cols cols;
	int rc;

	if (strcmp(type, "index") == 0) {
		adopt_ref_add_index(ref, name, db_column_text(q, 2));
		return 0;
	}
	rc = adopt_cols_read(q->db, name, &cols, NULL);
	if (rc == 0)
		adopt_ref_add_table(ref, name, db_column_text(q, 2), &cols);
	return rc;
}

/* Read the current schema from a private in-memory database built from it. */
static int adopt_sqlite_ref_load(struct adopt_ref *ref, struct store_err *err)
{
	struct db *mem = NULL;
	struct db_stmt *q = NULL;
	int rc = store_schema_ref_open(SCHEMA_VERSION, &mem, err);

	memset(ref, 0, sizeof *ref);
	if (rc != 0)
		return rc;
	/* Tables first (created whole or extended), then indexes, whose names must be free. */
	rc = db_prepare(mem,
	    "SELECT type, name, sql FROM sqlite_master WHERE (type = 'table' AND name NOT LIKE "
	    "'sqlite\\_%' ESCAPE '\\') OR (type = 'index' AND sql IS NOT NULL) "
	    "ORDER BY type = 'index', rowid",
	    &q);
	rc = store_each_row(
	    mem, q, rc, adopt_sqlite_ref_row, ref, err, "reading autopack's schema");
	db_close(mem);
	if (rc != 0)
		adopt_ref_free(ref);
	return rc;
}

/* Refuse a file SQLite's quick_check finds damaged. */
static int adopt_sqlite_integrity(struct db *db, const char *path, struct store_err *err)
{
	struct db_stmt *q = NULL;
	const char *t;
	int rc = db_prepare(db, "PRAGMA quick_check(1)", &q);

	if (rc == DB_OK)
		rc = db_step(q);
	if (rc != DB_ROW) {
		store_fail(err, STORE_EIO, "%s: cannot check: %s", path, db_errmsg(db));
		db_finalize(q);
		return STORE_EIO;
	}
	t = db_column_text(q, 0);
	rc = t != NULL && strcmp((const char *)t, "ok") == 0 ?
	    0 :
	    store_fail(err, STORE_ENOTDB,
	        "%s: SQLite reports damage (%s); refusing to adopt "
	        "it; the file was left untouched",
	        path, t != NULL ? (const char *)t : "?");
	db_finalize(q);
	return rc;
}

/* Find the values to rewrite with the autopack_value() SQL function. */
static int adopt_sqlite_values_find(struct db *db, const struct adopt_ref *ref,
    struct store_value_cols *cols, struct store_err *err)
{
	int rc = store_values_register(db, err);

	(void)ref;
	if (rc == 0)
		rc = store_values_columns(db, true, cols, err);
	if (rc == 0)
		rc = store_values_survey(db, cols, err);
	return rc;
}

/* Copy the committed database to <path>.pre-adopt-<UTC stamp>.bak with the backup API,
 * over a second, read-only connection: the caller's connection holds the write lock, so
 * nothing changes it meanwhile, and what is copied is exactly what the transaction
 * starts from. */
static int adopt_sqlite_backup(
    const char *path, struct store_adopt_report *rep, struct store_err *err)
{
	struct store src = { .path = (char *)path };
	int rc;

	rep->backup_path = store_backup_name(path, "pre-adopt");
#ifdef AUTOPACK_MUTANT_adopt_without_backup
	return 0;
#endif
	rc = store_connect(path, SQLITE_OPEN_READONLY, " for the backup", &src.db, err);
	if (rc == 0) {
		rc = store_backup(&src, rep->backup_path, err);
		db_close(src.db);
	}
	if (rc != 0) {
		free(rep->backup_path);
		rep->backup_path = NULL;
	}
	return rc;
}

const struct adopt_backend adopt_backend_sqlite = {
	.connect = adopt_sqlite_connect,
	.ref_load = adopt_sqlite_ref_load,
	.integrity = adopt_sqlite_integrity,
	.values_find = adopt_sqlite_values_find,
	.values_rewrite = store_values_rewrite,
	.backup = adopt_sqlite_backup,
	.identify = NULL,
};
