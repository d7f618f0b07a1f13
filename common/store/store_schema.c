#include "common/store/schema.sql.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* Every table of the schema, with the version that added it. */
static const struct {
	const char *name;
	int since;
} store_tables[] = {
	{ "meta", 1 },
	{ "runs", 1 },
	{ "tiers", 1 },
	{ "phases", 1 },
	{ "drain_sessions", 1 },
	{ "attempts", 1 },
	{ "events", 1 },
	{ "llm_usage_events", 1 },
	{ "token_estimation_v2_events", 1 },
	{ "drain_session_results", 1 },
	{ "control_log", 1 },
	{ "estimator_coefficients", 2 },
};

/* List the tables of a schema version. */
size_t store_schema_tables(int version, const char **names, size_t cap)
{
	size_t n = 0;

	assert(cap >= 1);
	for (size_t i = 0; i < ARRAY_SIZE(store_tables) && n + 1 < cap; i++)
		if (store_tables[i].since <= version)
			names[n++] = store_tables[i].name;
	names[n] = NULL;
	return n;
}

/* Read the single meta row: its uuid and schema version. */
static int store_meta_read(
    struct db *db, const char *path, int *version, char uuid[37], struct store_err *err)
{
	struct db_stmt *st = NULL;
	int64_t rows = 0;
	int rc;

	rc = db_prepare(db, "SELECT count(*), max(db_uuid), max(schema_version) FROM meta", &st);
	if (rc != DB_OK) {
		store_fail(err, STORE_ENOTDB,
		    "%s: SQLite database but not an autopack database (its meta table has "
		    "no db_uuid/schema_version: %s); the file was left untouched",
		    path, db_errmsg(db));
		db_finalize(st);
		return STORE_ENOTDB;
	}
	rc = db_step(st);
	if (rc == DB_ROW) {
		const char *u = db_column_text(st, 1);

		rows = db_column_int64(st, 0);
		*version = db_column_int64(st, 2);
		strlcpy_ap(uuid, u != NULL ? (const char *)u : "", 37);
	}
	db_finalize(st);
	if (rc != DB_ROW)
		return store_fail(err, STORE_EIO, "%s: reading meta: %s", path, db_errmsg(db));
	if (rows != 1)
		return store_fail(err, STORE_ENOTDB,
		    "%s: SQLite database but not a usable autopack database (meta holds %lld "
		    "rows, expected 1); the file was left untouched",
		    path, (long long)rows);
	if (*version > SCHEMA_VERSION)
		return store_fail(err, STORE_EVERSION,
		    "%s: schema version %d is newer than this program's (%d); use a newer "
		    "autopack",
		    path, *version, SCHEMA_VERSION);
	if (*version < 1)
		return store_fail(err, STORE_ENOTDB,
		    "%s: meta.schema_version is %d, not a valid autopack version", path, *version);
	return 0;
}

/* Check meta, version and tables, reading only; ENOTDB, EVERSION or EPARTIAL. */
int store_schema_check(
    struct db *db, const char *path, int *version, char uuid[37], struct store_err *err)
{
	const char *names[ARRAY_SIZE(store_tables) + 1];
	char missing[300] = "";
	size_t n, len = 0, nmissing = 0;
	int rc;

	rc = store_table_exists(db, "meta", err);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: SQLite database but not an autopack database (no meta table); the file "
		    "was left untouched",
		    path);
	rc = store_meta_read(db, path, version, uuid, err);
	if (rc != 0)
		return rc;
	n = store_schema_tables(*version, names, ARRAY_SIZE(names));
	for (size_t i = 0; i < n; i++) {
		rc = store_table_exists(db, names[i], err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			continue;
		if (len < sizeof missing)
			len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%s",
			    nmissing ? ", " : "", names[i]);
		nmissing++;
	}
	if (nmissing > 0)
		return store_fail(err, STORE_EPARTIAL,
		    "%s: autopack database (uuid %s) is missing %zu table%s of schema version "
		    "%d: %s; refusing to use a partial schema",
		    path, uuid, nmissing, nmissing == 1 ? "" : "s", *version, missing);
	return 0;
}
