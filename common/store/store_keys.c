/* The keys autopack leaves to the database: the tables it inserts into without naming
 * their key must give that key a value themselves, or every such insert fails. */
#include "common/store/dialect.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <string.h>

/* The key of each table autopack inserts rows into without naming it (run import, seed,
 * telemetry import, attempts, usage and estimation events, the control log). */
static const struct {
	const char *table;
	const char *column;
} store_assigned_keys[] = {
	{ "tiers", "id" },
	{ "phases", "id" },
	{ "attempts", "attempt_id" },
	{ "llm_usage_events", "id" },
	{ "token_estimation_v2_events", "event_id" },
	{ "control_log", "id" },
};

/* Read how db's `table` assigns `column`: *assigned and *without_rowid (1 or 0) and its
 * declared type into `type` ("" if there is no such column). Returns 1 if the table
 * exists, 0 if not, STORE_EIO on error. */
static int store_key_read(struct db *db, const char *table, const char *column, int *assigned,
    int *without_rowid, char *type, size_t cap, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, db->dialect->key_assigned, &q);

	if (rc == DB_OK) {
		db_bind_text(q, 1, table);
		db_bind_text(q, 2, column);
		rc = db_step(q);
	}
	if (rc == DB_ROW) {
		const char *t = db_column_text(q, 2);

		*assigned = db_column_int64(q, 0) != 0;
		*without_rowid = db_column_int64(q, 1) != 0;
		strlcpy_ap(type, t != NULL ? t : "", cap);
	}
	db_finalize(q);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail(
		    err, STORE_EIO, "reading the key of %s: %s", table, db_errmsg(db));
	return rc == DB_ROW;
}

int store_keys_check(struct db *db, const char *where, const char *what, const char *then,
    enum store_errcode code, struct store_err *err)
{
	bool sqlite = db->backend == DB_SQLITE;

	for (size_t i = 0; i < ARRAY_SIZE(store_assigned_keys); i++) {
		const char *t = store_assigned_keys[i].table, *c = store_assigned_keys[i].column;
		char type[64], why[256];
		int assigned = 0, without_rowid = 0;
		int rc = store_key_read(
		    db, t, c, &assigned, &without_rowid, type, sizeof type, err);

#ifdef AUTOPACK_MUTANT_keys_not_checked
		assigned = 1;
#endif
		if (rc < 0)
			return rc;
		if (rc == 0 || assigned)
			continue;
		if (without_rowid)
			snprintf(why, sizeof why, "table %s is WITHOUT ROWID", t);
		else if (type[0] == '\0')
			snprintf(why, sizeof why, "table %s has no column %s", t, c);
		else if (sqlite)
			snprintf(why, sizeof why,
			    "%s.%s (declared %s) is not the table's INTEGER PRIMARY KEY", t, c,
			    type);
		else
			snprintf(why, sizeof why,
			    "%s.%s (declared %s) has no default and is not an identity column", t,
			    c, type);
		return store_fail(err, code,
		    "%s: %s%s: autopack lets %s assign %s.%s when it inserts a row, which %s; "
		    "every such insert would fail (NOT NULL constraint failed: %s.%s). %s",
		    where, what, why, db->dialect->name, t, c,
		    sqlite ? "SQLite does only for the INTEGER PRIMARY KEY of a table with rowids" :
		             "PostgreSQL does only for a column with a default (SERIAL) or an "
		             "identity column",
		    t, c, then);
	}
	return 0;
}
