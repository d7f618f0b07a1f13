/* Whether a database is a Python-Autopack database that can be adopted (reading only). */
#include "common/store/dialect.h"
#include "common/store/pg/store_pg.h"
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
	struct adopt_cols have;
	size_t len = 0;
	int n = 0, rc = adopt_cols_read(db, t->name, &have, err);

	if (rc != 0)
		return rc;
	missing[0] = '\0';
	for (const char *const *c = t->columns; *c != NULL; c++) {
		if (adopt_cols_find(&have, *c) != NULL)
			continue;
		if (len < cap)
			len += (size_t)snprintf(
			    missing + len, cap - len, "%s%s", n ? ", " : "", *c);
		n++;
	}
	adopt_cols_free(&have);
	return n;
}

/* Refuse a database whose tables are not the original's: missing core tables, or tables
 * missing the columns adoption relies on. */
static int adopt_tables_check(struct db *db, const char *path, struct store_err *err)
{
	char absent[128] = "", missing[256];
	size_t len = 0;
	int nabsent = 0, rc;

	for (size_t i = 0; i < ARRAY_SIZE(adopt_legacy_tables); i++) {
		const struct adopt_legacy_table *t = &adopt_legacy_tables[i];

		rc = store_table_exists(db, t->name, err);
		if (rc == 0 && (rc = store_view_exists(db, t->name, err)) == 1)
			return store_fail(err, STORE_ENOTDB,
			    "%s: %s is a view, where a Python-Autopack database has a table "
			    "(adoption reads and rewrites its rows); drop the view and restore "
			    "the table from a backup, then adopt again; %s",
			    path, t->name, store_untouched(db));
		if (rc < 0)
			return rc;
		if (rc == 0 && t->core)
			len += (size_t)snprintf(absent + len, sizeof absent - len, "%s%s",
			    nabsent++ ? ", " : "", t->name);
	}
	/* A table of another role on which this one has no privilege is not listed to it:
	 * there, but unseen, it is named so (adoption alters the tables: their owner runs
	 * it), not called absent. */
	if (nabsent > 0 && db->backend == DB_PG) {
		char *names = xstrdup(absent);

		for (char *c = names; *c != '\0'; c++)
			if (*c == ' ')
				memmove(c, c + 1, strlen(c));
		rc = store_pg_unseen_tables(db, path, names, "db adopt", err);
		free(names);
		if (rc != 0)
			return rc;
	}
	if (nabsent > 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: %s database but not a Python-Autopack database: it has no %s table%s "
		    "(adoption needs the original's runs, tiers and phases); %s",
		    path, db->dialect->name, absent, nabsent == 1 ? "" : "s", store_untouched(db));
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
			    "the original's %s has; %s",
			    path, t->name, rc == 1 ? "" : "s", missing, t->name,
			    store_untouched(db));
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
			    "or delete those rows first; %s",
			    path, (long long)n, n == 1 ? "" : "s", adopt_keys[i].table,
			    n == 1 ? "has" : "have", adopt_keys[i].column, store_untouched(db));
	}
	rc = store_query_int(db,
	    "SELECT count(*) FROM (SELECT 1 FROM phases GROUP BY run_id, "
	    "phase_id HAVING count(*) > 1) AS dup",
	    &n, err);
	if (rc != 0)
		return rc;
	if (n > 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: %lld (run_id, phase_id) pair%s of phases %s more than one row; autopack "
		    "keys phases by the pair (as the original's unique constraint does). Fix "
		    "those rows first; %s",
		    path, (long long)n, n == 1 ? "" : "s", n == 1 ? "names" : "name",
		    store_untouched(db));
	return 0;
}

/* Check that the connection holds a legacy database that can be adopted. */
int adopt_shape_check(
    const struct adopt_backend *be, struct db *db, const char *where, struct store_err *err)
{
	char uuid[37];
	int64_t v;
	int version, rc;

	if (db->backend == DB_SQLITE &&
	    store_query_int(db, "PRAGMA schema_version", &v, NULL) != 0) {
		if (db_fault(db) == DB_FAULT_NOTDB)
			return store_fail(err, STORE_ENOTDB,
			    "%s: not an SQLite database; the file was left untouched", where);
		return store_fail(err, STORE_EIO, "%s: cannot read: %s", where, db_errmsg(db));
	}
	rc = store_table_exists(db, "meta", err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		rc = store_schema_check(db, where, &version, uuid, err);
		if (rc != 0)
			return rc;
		return store_fail(err, STORE_EEXIST,
		    "%s: already an autopack database (uuid %s, "
		    "schema version %d), nothing changed",
		    where, uuid, version);
	}
	rc = adopt_tables_check(db, where, err);
	if (rc == 0) {
		char then[160];

		snprintf(then, sizeof then,
		    "Recreate the table with the key as the original's schema declares it, then "
		    "adopt again; %s",
		    store_untouched(db));
		rc = store_keys_check(db, where, "", then, STORE_ENOTDB, err);
	}
	if (rc == 0 && be->integrity != NULL)
		rc = be->integrity(db, where, err);
	if (rc == 0)
		rc = adopt_keys_check(db, where, err);
	return rc;
}

/* Check that a file exists, is a regular file and is not empty. */
static int adopt_file_check(const char *path, struct store_err *err)
{
	struct stat sb;

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
	return 0;
}

/* Connect in a read-only session and check the database. */
int store_adopt_check(const char *where, struct store_err *err)
{
	const struct adopt_backend *be = adopt_backend_of(where);
	struct db *db = NULL;
	int rc = be == &adopt_backend_sqlite ? adopt_file_check(where, err) : 0;

	if (rc == 0)
		rc = be->connect(where, false, &db, err);
	if (rc != 0)
		return rc;
	rc = adopt_shape_check(be, db, where, err);
	db_close(db);
	return rc;
}
