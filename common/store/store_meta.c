#include "common/store/store_meta.h"
#include "common/store/pg/store_pg.h"
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_internal.h"
#include "common/store/store_wal.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Read the supervisor record of meta; STORE_EIO on failure. */
int store_meta_supervisor(struct store *st, int64_t *pid, char **socket, struct store_err *err)
{
	struct db_stmt *s;
	int rc;

	*pid = 0;
	*socket = NULL;
	if (db_prepare(st->db,
	        "SELECT supervisor_pid, control_socket FROM meta"
	        " WHERE id = 1",
	        &s) != DB_OK)
		goto fail;
	rc = db_step(s);
	if (rc == DB_ROW) {
		const char *t = db_column_text(s, 1);

		*pid = db_column_int64(s, 0);
		if (t != NULL)
			*socket = xstrdup((const char *)t);
	}
	db_finalize(s);
	if (rc == DB_ROW || rc == DB_DONE)
		return 0;
fail:
	snprintf(err->text, sizeof err->text, "%s: reading meta: %s", st->path, db_errmsg(st->db));
	return STORE_EIO;
}

/* Write the new uuid, clear the supervisor record and log the change, in one transaction. */
static int store_meta_reidentify_tx(
    struct store *st, const char *uuid, const char *result, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char now[32];
	int rc = db_prepare(st->db,
	    "UPDATE meta SET db_uuid = ?1, supervisor_pid = NULL, control_socket = NULL"
	    " WHERE id = 1",
	    &q);

	if (rc == DB_OK)
		store_bind_text(q, 1, uuid);
	rc = store_step_done(st->db, q, rc, err, "%s: writing the new uuid", st->path);
	if (rc == 0 && st->backend == DB_PG)
		rc = store_pg_identity_write(st->db, st->url, st->server_id, err);
	if (rc != 0)
		return rc;
	db_now(st->db, now);
	rc = db_prepare(st->db,
	    "INSERT INTO control_log (at, peer_pid, peer_uid, command, args, ok, result)"
	    " VALUES (?1, ?2, ?3, 'db reidentify', ?4, 1, ?5)",
	    &q);
	if (rc == DB_OK) {
		store_bind_text(q, 1, now);
		db_bind_int64(q, 2, (int64_t)getpid());
		db_bind_int64(q, 3, (int64_t)getuid());
		store_bind_text(q, 4, st->uuid);
		store_bind_text(q, 5, result);
	}
	return store_step_done(st->db, q, rc, err, "%s: recording the change", st->path);
}

/* Replace meta.db_uuid with a fresh one (PostgreSQL: and meta.server_id with the
 * connection's), recording the previous ones in control_log. */
int store_meta_reidentify(struct store *st, char previous[37], struct store_err *err)
{
	char uuid[37], result[600], *server = NULL;
	int n, rc = store_uuid_v4(uuid, err);

	if (rc == 0 && st->backend == DB_PG)
		rc = store_pg_identity_read(st->db, st->url, &server, err);
	if (rc != 0)
		return rc;
	n = snprintf(result, sizeof result, "uuid %s replaced %s (the database it was copied from)",
	    uuid, st->uuid);
	if (st->backend == DB_PG && n > 0 && (size_t)n < sizeof result)
		snprintf(result + n, sizeof result - (size_t)n,
		    "; system identifier/database %s replaced %s", st->server_id,
		    server != NULL ? server : "(none recorded)");
	free(server);
	rc = store_begin(st->db, st->path, err);
	if (rc == 0)
		rc = store_meta_reidentify_tx(st, uuid, result, err);
	if (rc == 0 && st->backend == DB_SQLITE)
		db_sqlite_mark(st->db, store_wal_mark(uuid));
	if (rc == 0)
		rc = store_commit(st->db, st->path, err);
	if (rc != 0) {
		db_rollback(st->db);
		return rc;
	}
	memcpy(previous, st->uuid, 37);
	memcpy(st->uuid, uuid, sizeof uuid);
	return 0;
}
