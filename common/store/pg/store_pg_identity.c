/* The server identity a PostgreSQL database records in meta.server_id: the system
 * identifier of the server and the name of the database it was made in, compared with
 * the ones the connection reaches on every open. */
#include "common/store/pg/store_pg.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Read meta.server_id into *stored (heap; NULL when the column is missing or NULL). */
int store_pg_identity_read(struct db *db, const char *url, char **stored, struct store_err *err)
{
	static const char *const args[] = { "meta", "server_id", NULL };
	struct db_stmt *q = NULL;
	int rc = store_row_exists(db, err,
	    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
	    " AND table_name = ?1 AND column_name = ?2",
	    args, "%s: reading the columns of meta", url);

	*stored = NULL;
	if (rc <= 0)
		return rc;
	rc = db_prepare(db, "SELECT server_id FROM meta WHERE id = 1", &q);
	if (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		*stored = store_col_text(q, 0, NULL);
		rc = DB_OK;
	} else if (rc == DB_DONE) {
		rc = DB_OK;
	}
	if (rc != DB_OK)
		rc = store_fail(
		    err, STORE_EIO, "%s: reading meta.server_id: %s", url, db_errmsg(db));
	db_finalize(q);
	return rc;
}

/* Write `id` into meta.server_id in the open transaction. */
int store_pg_identity_write(struct db *db, const char *url, const char *id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, "UPDATE meta SET server_id = ?1 WHERE id = 1", &q);

	if (rc == DB_OK)
		store_bind_text(q, 1, id);
	return store_step_done(db, q, rc, err, "%s: writing meta.server_id", url);
}

/* Give meta the server_id column if it lacks it and record `id` where none is recorded,
 * in one transaction. */
static int store_pg_identity_record(
    struct db *db, const char *url, const char *id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = store_begin(db, url, err);

	if (rc == 0)
		rc = store_exec(db, "ALTER TABLE meta ADD COLUMN IF NOT EXISTS server_id TEXT",
		    "adding meta.server_id", err);
	if (rc == 0) {
		rc = db_prepare(
		    db, "UPDATE meta SET server_id = ?1 WHERE id = 1 AND server_id IS NULL", &q);
		if (rc == DB_OK)
			store_bind_text(q, 1, id);
		rc = store_step_done(db, q, rc, err, "%s: recording meta.server_id", url);
	}
	if (rc == 0)
		rc = store_commit(db, url, err);
	if (rc != 0)
		db_rollback(db);
	return rc;
}

/* Compare the recorded server identity with `live`, recording it first where a write
 * open finds none. */
int store_pg_identity_check(struct db *db, const char *url, enum store_mode mode, const char *uuid,
    const char *live, struct store_err *err)
{
	char *stored = NULL;
	int rc = store_pg_identity_read(db, url, &stored, err);

	if (rc == 0 && stored == NULL && mode != STORE_READ) {
		rc = store_pg_identity_record(db, url, live, err);
		if (rc == 0)
			rc = store_pg_identity_read(db, url, &stored, err);
	}
#ifdef AUTOPACK_MUTANT_pg_restore_unnoticed
	free(stored);
	stored = NULL;
#endif
	if (rc == 0 && stored != NULL && strcmp(stored, live) != 0 &&
	    mode != STORE_WRITE_REIDENTIFY)
		rc = store_fail(err, STORE_EIDENT,
		    "%s: database uuid %s was made as system identifier/database %s, but this "
		    "connection reaches %s: a dump restored into another database or onto another "
		    "server is a different database. If this one is to be used on its own, give it "
		    "an identity of its own with autopack-ctl --db %s db reidentify; nothing was "
		    "written",
		    url, uuid, stored, live, url);
	free(stored);
	return rc;
}
