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
    sqlite3 *db, const char *path, int *version, char uuid[37], struct store_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t rows = 0;
	int rc;

	rc = sqlite3_prepare_v2(
	    db, "SELECT count(*), max(db_uuid), max(schema_version) FROM meta", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		store_fail(err, STORE_ENOTDB,
		    "%s: SQLite database but not an autopack database (its meta table has "
		    "no db_uuid/schema_version: %s); the file was left untouched",
		    path, sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return STORE_ENOTDB;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *u = sqlite3_column_text(st, 1);

		rows = sqlite3_column_int64(st, 0);
		*version = sqlite3_column_int(st, 2);
		strlcpy_ap(uuid, u != NULL ? (const char *)u : "", 37);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return store_fail(err, STORE_EIO, "%s: reading meta: %s", path, sqlite3_errstr(rc));
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
    sqlite3 *db, const char *path, int *version, char uuid[37], struct store_err *err)
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
