#include "common/store/dialect.h"
#include "common/store/schema.sql.h"
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_internal.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The SQL that builds each schema version from the one before: version v is the first v
 * entries. */
static const char *const store_schema_steps[] = { SCHEMA_V1_SQL, SCHEMA_V2_SQL, SCHEMA_V3_SQL,
	SCHEMA_V4_SQL, SCHEMA_V5_SQL };
_Static_assert(ARRAY_SIZE(store_schema_steps) == SCHEMA_VERSION,
    "store_schema_steps must hold one entry per schema version");

/* Return true if `s` is a UUID in canonical form: 36 characters, lowercase hex digits in
 * groups of 8-4-4-4-12 separated by hyphens. */
bool store_uuid_valid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' :
		           !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[36] == '\0';
}

/* Read the single meta row: its uuid (as stored, cut to fit `uuid`) and schema version. */
static int store_meta_read(
    struct db *db, const char *path, int *version, char *uuid, size_t len, struct store_err *err)
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
		*version = (int)db_column_int64(st, 2);
		strlcpy_ap(uuid, u != NULL ? u : "", len);
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

/* Build schema `version` in a private in-memory database. */
int store_schema_ref_open(int version, struct db **ref, struct store_err *err)
{
	char msg[256];
	int rc = 0;

	if (db_sqlite_open(":memory:", SQLITE_OPEN_READWRITE, 0, ref, msg, sizeof msg) != DB_OK)
		return store_fail(err, STORE_EIO, "cannot open an in-memory database: %s", msg);
	for (int v = 0; rc == 0 && v < version && v < (int)ARRAY_SIZE(store_schema_steps); v++)
		rc = store_exec(*ref, store_schema_steps[v], "building autopack's schema", err);
	if (rc != 0) {
		db_close(*ref);
		*ref = NULL;
	}
	return rc;
}

/* Append "table.column" to `out` (", "-separated) for every column of ref's `table` that
 * db's table lacks, counting them in *n. */
static int store_columns_missing(struct db *db, struct db *ref, const char *table,
    struct strbuf *out, size_t *n, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(ref, "SELECT name FROM pragma_table_info(?1)", &q);

	if (rc == DB_OK)
		db_bind_text(q, 1, table);
	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		const char *col = db_column_text(q, 0);
		int have = store_row_exists(db, err, db->dialect->column_exists,
		    (const char *const[]){ table, col, NULL }, "reading the columns of %s", table);

		if (have < 0) {
			db_finalize(q);
			return have;
		}
		if (have == 0)
			strbuf_printf(out, "%s%s.%s", (*n)++ ? ", " : "", table, col);
		rc = DB_OK;
	}
	if (rc != DB_DONE)
		store_fail(err, STORE_EIO, "reading autopack's schema: %s", db_errmsg(ref));
	db_finalize(q);
	return rc == DB_DONE ? 0 : STORE_EIO;
}

/* Check meta, version, tables, columns and uuid, reading only; ENOTDB, EVERSION,
 * EPARTIAL or EIDENT. */
int store_schema_check(
    struct db *db, const char *path, int *version, char uuid[37], struct store_err *err)
{
	const char *names[ARRAY_SIZE(store_tables) + 1];
	struct strbuf missing = { 0 };
	char stored[48];
	struct db *ref = NULL;
	size_t n, nmissing = 0;
	int rc;

	rc = store_table_exists(db, "meta", err);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: SQLite database but not an autopack database (no meta table); the file "
		    "was left untouched",
		    path);
	rc = store_meta_read(db, path, version, stored, sizeof stored, err);
	if (rc != 0)
		return rc;
	strlcpy_ap(uuid, stored, 37);
	n = store_schema_tables(*version, names, ARRAY_SIZE(names));
	for (size_t i = 0; i < n; i++) {
		rc = store_table_exists(db, names[i], err);
		if (rc < 0)
			goto out;
		if (rc == 0)
			strbuf_printf(&missing, "%s%s", nmissing++ ? ", " : "", names[i]);
	}
	rc = 0;
	if (nmissing > 0) {
		rc = store_fail(err, STORE_EPARTIAL,
		    "%s: autopack database (uuid %s) is missing %zu table%s of schema version "
		    "%d: %s; refusing to use a partial schema",
		    path, uuid, nmissing, nmissing == 1 ? "" : "s", *version, missing.s);
		goto out;
	}
	rc = store_schema_ref_open(*version, &ref, err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = store_columns_missing(db, ref, names[i], &missing, &nmissing, err);
	if (rc == 0 && nmissing > 0) {
		rc = store_fail(err, STORE_EPARTIAL,
		    "%s: autopack database (uuid %s) is missing %zu column%s of schema version "
		    "%d: %s; autopack reads or writes each of them, so it refuses to use the "
		    "database (restore it from a backup)",
		    path, uuid, nmissing, nmissing == 1 ? "" : "s", *version, missing.s);
		goto out;
	}
	/* The uuid names the database in messages, jobs and the control socket's file name:
	 * anything but the canonical form (a path, a glob, an empty string) is refused. */
	if (rc == 0 && !store_uuid_valid(stored)) {
		for (char *c = stored; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				*c = '?';
		rc = store_fail(err, STORE_EIDENT,
		    "%s: meta.db_uuid \"%s%s\" is not a canonical UUID (36 characters: lowercase "
		    "hex digits in groups of 8-4-4-4-12 joined by '-'), so the database cannot be "
		    "identified; give it a fresh identity with autopack-ctl --db sqlite:///%s db "
		    "reidentify",
		    path, stored, strlen(stored) >= sizeof stored - 1 ? "..." : "", path);
	}
out:
	db_close(ref);
	free(missing.s);
	return rc;
}
