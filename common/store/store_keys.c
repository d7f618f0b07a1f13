/* The keys autopack leaves to the database: the tables it inserts into without naming
 * their key must give that key a value themselves, or every such insert fails. */
#include "common/store/dialect.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <stdlib.h>
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

/* The keys of the tables a supervisor alone writes on PostgreSQL, assigned by the
 * database too (schema_pg.h): checked with store_assigned_keys by store_keys_ahead. */
static const struct {
	const char *table;
	const char *column;
} store_pg_fleet_keys[] = {
	{ "supervisors", "supervisor_id" },
	{ "supervisor_commands", "command_id" },
};

/* The next value the sequence `seq` (as pg_get_serial_sequence names it) gives, into *next:
 * 1 when it was read, 0 when it cannot be (its position unset since a RESTART or a
 * setval(…, false), and the role may not SELECT it), STORE_EIO on error. */
static int store_seq_next(struct db *db, const char *seq, int64_t *next, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *sql;
	int rc = db_prepare(db,
	    "SELECT pg_sequence_last_value(CAST(?1 AS regclass)), s.seqincrement,"
	    " has_sequence_privilege(?1, 'SELECT') FROM pg_sequence s"
	    " WHERE s.seqrelid = CAST(?1 AS regclass)",
	    &q);
	bool known = false, readable = false;
	int64_t last = 0, step = 1;

	if (rc == DB_OK) {
		db_bind_text(q, 1, seq);
		rc = db_step(q);
	}
	if (rc == DB_ROW) {
		known = db_column_type(q, 0) != DB_NULL;
		last = db_column_int64(q, 0);
		step = db_column_int64(q, 1);
		readable = db_column_int64(q, 2) != 0;
	}
	db_finalize(q);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail(
		    err, STORE_EIO, "reading the sequence %s: %s", seq, db_errmsg(db));
	if (rc == DB_DONE || (!known && !readable))
		return 0;
	if (known) {
		*next = last + step;
		return 1;
	}
	/* Called no more since its position was set: the next value is last_value itself. */
	sql = xasprintf("SELECT last_value FROM %s", seq);
	rc = db_prepare(db, sql, &q);
	free(sql);
	if (rc == DB_OK && (rc = db_step(q)) == DB_ROW)
		*next = db_column_int64(q, 0);
	db_finalize(q);
	if (rc != DB_ROW)
		return store_fail(
		    err, STORE_EIO, "reading the sequence %s: %s", seq, db_errmsg(db));
	return 1;
}

/* Check key `column` of `table` (which exists): 0 when no sequence assigns it, the table is
 * empty, or its sequence gives a value above the highest the table holds; else STORE_EIO
 * naming the setval that mends it. */
static int store_key_ahead(
    struct db *db, const char *where, const char *table, const char *column, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *sql = xasprintf("SELECT pg_get_serial_sequence(?1, ?2), max(\"%s\"), current_schema()"
	                      " FROM \"%s\"",
	    column, table);
	char seq[256] = "", *from;
	char schema[128] = "";
	int64_t max = 0, next = 0;
	bool rows = false;
	int rc = db_prepare(db, sql, &q);

	free(sql);
	if (rc == DB_OK) {
		db_bind_text(q, 1, table);
		db_bind_text(q, 2, column);
		rc = db_step(q);
	}
	if (rc == DB_ROW && db_column_text(q, 0) != NULL) {
		strlcpy_ap(seq, db_column_text(q, 0), sizeof seq);
		rows = db_column_type(q, 1) != DB_NULL;
		max = db_column_int64(q, 1);
		strlcpy_ap(schema, db_column_text(q, 2) != NULL ? db_column_text(q, 2) : "",
		    sizeof schema);
	}
	db_finalize(q);
	if (rc != DB_ROW)
		return store_fail(
		    err, STORE_EIO, "reading the key of %s: %s", table, db_errmsg(db));
	if (seq[0] == '\0' || !rows)
		return 0;
	if ((rc = store_seq_next(db, seq, &next, err)) <= 0 || next > max)
		return rc < 0 ? rc : 0;
	from = db_sqlf("SELECT setval(%Q, (SELECT max(\"%w\") FROM \"%w\".\"%w\"))", seq, column,
	    schema, table);
	rc = store_fail(err, STORE_EIO,
	    "%s: the sequence %s, which numbers %s.%s, would give %lld next, but the table holds "
	    "%lld already: its rows were written without the sequence following them (a "
	    "restore or copy of the data alone, logical replication, ALTER SEQUENCE … RESTART), "
	    "and each insert would collide with a row there (duplicate key value violates "
	    "unique constraint); nothing was written: run %s first",
	    where, seq, table, column, (long long)next, (long long)max, from);
	free(from);
	return rc;
}

int store_keys_ahead(struct db *db, const char *where, struct store_err *err)
{
	size_t n = ARRAY_SIZE(store_assigned_keys), m = ARRAY_SIZE(store_pg_fleet_keys);

	if (db->backend != DB_PG)
		return 0;
	for (size_t i = 0; i < n + m; i++) {
		const char *t = i < n ? store_assigned_keys[i].table :
		                        store_pg_fleet_keys[i - n].table;
		const char *c = i < n ? store_assigned_keys[i].column :
		                        store_pg_fleet_keys[i - n].column;
		int rc = store_table_exists(db, t, err);

		if (rc > 0)
			rc = store_key_ahead(db, where, t, c, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}
