/* Whether a file is a Python-Autopack database that can be adopted (reading only). */
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A table of the original and the columns adoption relies on. */
struct adopt_legacy_table {
	const char *name;
	bool core;                  /* must exist */
	const char *const *columns; /* NULL-terminated */
};

static const char *const adopt_runs_cols[] = { "id", "state", NULL };
static const char *const adopt_tiers_cols[] = {
	"id",
	"tier_id",
	"run_id",
	"tier_index",
	"name",
	NULL,
};
static const char *const adopt_phases_cols[] = {
	"id",
	"phase_id",
	"run_id",
	"tier_id",
	"phase_index",
	"name",
	"state",
	NULL,
};
static const char *const adopt_usage_cols[] = {
	"id",
	"provider",
	"model",
	"role",
	"total_tokens",
	NULL,
};
static const char *const adopt_v2_cols[] = {
	"event_id",
	"run_id",
	"phase_id",
	"category",
	"complexity",
	"predicted_output_tokens",
	"actual_output_tokens",
	NULL,
};

static const struct adopt_legacy_table adopt_legacy_tables[] = {
	{ "runs", true, adopt_runs_cols },
	{ "tiers", true, adopt_tiers_cols },
	{ "phases", true, adopt_phases_cols },
	{ "llm_usage_events", false, adopt_usage_cols },
	{ "token_estimation_v2_events", false, adopt_v2_cols },
};

/* Key columns that must hold a value in every row: the scheduler reads them. */
static const struct {
	const char *table;
	const char *column;
} adopt_keys[] = {
	{ "runs", "id" },
	{ "phases", "run_id" },
	{ "phases", "phase_id" },
};

/* Append the required columns of `t` that the table lacks to `missing` (", "-separated);
 * returns how many, or STORE_EIO. */
static int adopt_missing_columns(struct db *db, const struct adopt_legacy_table *t, char *missing,
    size_t cap, struct store_err *err)
{
	struct db_stmt *q = NULL;
	size_t len = 0;
	int n = 0, rc;

	if (db_prepare(db,
	        "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2 "
	        "COLLATE NOCASE",
	        &q) != DB_OK)
		return store_fail(
		    err, STORE_EIO, "reading the columns of %s: %s", t->name, db_errmsg(db));
	missing[0] = '\0';
	for (const char *const *c = t->columns; *c != NULL; c++) {
		db_reset(q);
		db_bind_text(q, 1, t->name);
		db_bind_text(q, 2, *c);
		rc = db_step(q);
		if (rc == DB_ROW)
			continue;
		if (rc != DB_DONE) {
			db_finalize(q);
			return store_fail(err, STORE_EIO, "reading the columns of %s: %s", t->name,
			    db_errmsg(db));
		}
		if (len < cap)
			len += (size_t)snprintf(
			    missing + len, cap - len, "%s%s", n ? ", " : "", *c);
		n++;
	}
	db_finalize(q);
	return n;
}

/* Refuse a file whose tables are not the original's: missing core tables, or tables
 * missing the columns adoption relies on. */
static int adopt_tables_check(struct db *db, const char *path, struct store_err *err)
{
	char absent[128] = "", missing[256];
	size_t len = 0;
	int nabsent = 0, rc;

	for (size_t i = 0; i < ARRAY_SIZE(adopt_legacy_tables); i++) {
		const struct adopt_legacy_table *t = &adopt_legacy_tables[i];

		rc = store_table_exists(db, t->name, err);
		if (rc < 0)
			return rc;
		if (rc == 0 && t->core)
			len += (size_t)snprintf(absent + len, sizeof absent - len, "%s%s",
			    nabsent++ ? ", " : "", t->name);
	}
	if (nabsent > 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: SQLite database but not a Python-Autopack database: it has no %s table%s "
		    "(adoption needs the original's runs, tiers and phases); the file was left "
		    "untouched",
		    path, absent, nabsent == 1 ? "" : "s");
	for (size_t i = 0; i < ARRAY_SIZE(adopt_legacy_tables); i++) {
		const struct adopt_legacy_table *t = &adopt_legacy_tables[i];

		rc = store_table_exists(db, t->name, err);
		if (rc == 1)
			rc = adopt_missing_columns(db, t, missing, sizeof missing, err);
		if (rc < 0)
			return rc;
		if (rc > 0)
			return store_fail(err, STORE_ENOTDB,
			    "%s: not a Python-Autopack database: table %s lacks column%s %s, which "
			    "the original's %s has; the file was left untouched",
			    path, t->name, rc == 1 ? "" : "s", missing, t->name);
	}
	return 0;
}

/* Refuse rows the scheduler cannot key: NULL ids, and (run_id, phase_id) pairs that are
 * not unique. */
static int adopt_keys_check(struct db *db, const char *path, struct store_err *err)
{
	int64_t n = 0;
	char *sql;
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(adopt_keys); i++) {
		sql = db_sqlf("SELECT count(*) FROM \"%w\" WHERE \"%w\" IS NULL",
		    adopt_keys[i].table, adopt_keys[i].column);
		rc = store_query_int(db, sql, &n, err);
		free(sql);
		if (rc != 0)
			return rc;
		if (n > 0)
			return store_fail(err, STORE_ENOTDB,
			    "%s: %lld row%s of %s %s NULL in %s; autopack keys every row by it. Fix "
			    "or delete those rows first; the file was left untouched",
			    path, (long long)n, n == 1 ? "" : "s", adopt_keys[i].table,
			    n == 1 ? "has" : "have", adopt_keys[i].column);
	}
	rc = store_query_int(db,
	    "SELECT count(*) FROM (SELECT 1 FROM phases GROUP BY run_id, "
	    "phase_id HAVING count(*) > 1)",
	    &n, err);
	if (rc != 0)
		return rc;
	if (n > 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: %lld (run_id, phase_id) pair%s of phases %s more than one row; autopack "
		    "keys phases by the pair (as the original's unique constraint does). Fix "
		    "those rows first; the file was left untouched",
		    path, (long long)n, n == 1 ? "" : "s", n == 1 ? "names" : "name");
	return 0;
}

/* Refuse a file SQLite's quick_check finds damaged. */
static int adopt_integrity_check(struct db *db, const char *path, struct store_err *err)
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

/* Check that the connection holds a legacy database that can be adopted. */
int adopt_shape_check(struct db *db, const char *path, struct store_err *err)
{
	char uuid[37];
	int64_t v;
	int version, rc;

	if (store_query_int(db, "PRAGMA schema_version", &v, NULL) != 0) {
		if (db_fault(db) == DB_FAULT_NOTDB)
			return store_fail(err, STORE_ENOTDB,
			    "%s: not an SQLite database; the file was left untouched", path);
		return store_fail(err, STORE_EIO, "%s: cannot read: %s", path, db_errmsg(db));
	}
	rc = store_table_exists(db, "meta", err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		rc = store_schema_check(db, path, &version, uuid, err);
		if (rc != 0)
			return rc;
		return store_fail(err, STORE_EEXIST,
		    "%s: already an autopack database (uuid %s, "
		    "schema version %d), nothing changed",
		    path, uuid, version);
	}
	rc = adopt_tables_check(db, path, err);
	if (rc == 0)
		rc = adopt_integrity_check(db, path, err);
	if (rc == 0)
		rc = adopt_keys_check(db, path, err);
	return rc;
}

/* Open the file read-only and check it. */
int store_adopt_check(const char *path, struct store_err *err)
{
	struct stat sb;
	struct db *db = NULL;
	int rc;

	if (stat(path, &sb) != 0) {
		if (errno == ENOENT)
			return store_fail(err, STORE_ENOENT, "%s: no such database file", path);
		return store_fail(err, STORE_EIO, "%s: %s", path, strerror(errno));
	}
	if (!S_ISREG(sb.st_mode))
		return store_fail(err, STORE_ENOTDB, "%s: not a regular file", path);
	if (sb.st_size == 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: empty file, not a Python-Autopack "
		    "database; the file was left untouched",
		    path);
	rc = store_connect(path, SQLITE_OPEN_READONLY, "", &db, err);
	if (rc != 0)
		return rc;
	rc = adopt_shape_check(db, path, err);
	db_close(db);
	return rc;
}
