#include "common/store/dialect.h"
#include "common/store/schema.sql.h"
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_internal.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Say what a refusal left as it was: the file, or (on a server) the database. */
const char *store_untouched(const struct db *db)
{
	return db->backend == DB_SQLITE ? "the file was left untouched" : "nothing was changed";
}

/* Read the single meta row: its uuid (as stored, cut to fit `uuid`) and schema version. */
static int store_meta_read(
    struct db *db, const char *path, int *version, char *uuid, size_t len, struct store_err *err)
{
	struct db_stmt *st = NULL;
	int64_t rows = 0, v = 0;
	enum db_type vtype = DB_NULL;
	char shown[48] = "";
	int rc;

	rc = db_prepare(db, "SELECT count(*), max(db_uuid), max(schema_version) FROM meta", &st);
	if (rc != DB_OK) {
		store_fail(err, STORE_ENOTDB,
		    "%s: %s database but not an autopack database (its meta table has "
		    "no db_uuid/schema_version: %s); %s",
		    path, db->dialect->name, db_errmsg(db), store_untouched(db));
		db_finalize(st);
		return STORE_ENOTDB;
	}
	rc = db_step(st);
	if (rc == DB_ROW) {
		const char *u = db_column_text(st, 1);

		rows = db_column_int64(st, 0);
		v = db_column_int64(st, 2);
		vtype = db_column_type(st, 2);
		if (vtype != DB_NULL && vtype != DB_INTEGER)
			utf8_one_line(shown, db_column_text(st, 2), sizeof shown);
		strlcpy_ap(uuid, u != NULL ? u : "", len);
	}
	db_finalize(st);
	if (rc != DB_ROW)
		return store_fail(err, STORE_EIO, "%s: reading meta: %s", path, db_errmsg(db));
	if (rows != 1)
		return store_fail(err, STORE_ENOTDB,
		    "%s: %s database but not a usable autopack database (meta holds %lld "
		    "rows, expected 1); %s",
		    path, db->dialect->name, (long long)rows, store_untouched(db));
	/* A whole number only: 4.5 or '4x' (a hand edit) read as 4 would have db migrate run
	 * the migrations from 4 again on a current database. */
	if (vtype != DB_INTEGER)
		return store_fail(err, STORE_ENOTDB,
		    "%s: meta.schema_version is %s%s%s, not a whole number: not a valid autopack "
		    "version; %s",
		    path,
		    vtype == DB_NULL      ? "NULL" :
		        vtype == DB_FLOAT ? "" :
		                            "the text '",
		    shown, vtype == DB_TEXT ? "'" : "", store_untouched(db));
	/* Compared whole: cut to an int, 4294967298 (another program's, a hand edit) was
	 * version 2, and db migrate ran the migrations from 2 again. */
	if (v > SCHEMA_VERSION)
		return store_fail(err, STORE_EVERSION,
		    "%s: schema version %lld is newer than this program's (%d); use a newer "
		    "autopack",
		    path, (long long)v, SCHEMA_VERSION);
	if (v < 1)
		return store_fail(err, STORE_ENOTDB,
		    "%s: meta.schema_version is %lld, not a valid autopack version", path,
		    (long long)v);
	*version = (int)v;
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

/* Copy the identifier at *p (letters, digits, '_') into buf and move *p past it; 0 if
 * there is none. */
static size_t store_ident(const char **p, char *buf, size_t cap)
{
	size_t n = 0;

	while (**p == ' ')
		(*p)++;
	while ((isalnum((unsigned char)**p) || **p == '_') && n + 1 < cap)
		buf[n++] = *(*p)++;
	buf[n] = '\0';
	return n;
}

/* Whether `s` starts with `word` followed by a space. */
static bool store_word(const char *s, const char *word)
{
	size_t n = strlen(word);

	return strncmp(s, word, n) == 0 && s[n] == ' ';
}

size_t store_schema_columns(int version, struct store_column *cols, size_t cap)
{
	static const char *const constraints[] = { "PRIMARY", "UNIQUE", "FOREIGN", "CHECK",
		"CONSTRAINT" };
	size_t n = 0;

	/* The schema's SQL is autopack's own, one statement or column per line:
	 *   CREATE TABLE t (\n  column TYPE ...,\n  PRIMARY KEY (...)\n);
	 *   ALTER TABLE t ADD COLUMN column TYPE ...; */
	for (int v = 0; v < version && v < (int)ARRAY_SIZE(store_schema_steps); v++) {
		const char *line = store_schema_steps[v];
		char table[64] = "";

		for (; *line != '\0'; line = strchr(line, '\n') + 1) {
			const char *p = line;
			char word[64];

			if (store_word(p, "CREATE TABLE")) {
				p += strlen("CREATE TABLE");
				store_ident(&p, table, sizeof table);
			} else if (strncmp(p, ");", 2) == 0) {
				table[0] = '\0';
			} else if (store_word(p, "ALTER TABLE")) {
				p += strlen("ALTER TABLE");
				store_ident(&p, word, sizeof word);
				if (strncmp(p, " ADD COLUMN ", 12) == 0 && n < cap) {
					p += 12;
					strlcpy_ap(cols[n].table, word, sizeof cols[n].table);
					store_ident(&p, cols[n].column, sizeof cols[n].column);
					n++;
				}
			} else if (table[0] != '\0' && store_ident(&p, word, sizeof word) > 0) {
				bool constraint = false;

				for (size_t i = 0; i < ARRAY_SIZE(constraints); i++)
					constraint = constraint ||
					    strcmp(word, constraints[i]) == 0;
				if (!constraint && n < cap) {
					strlcpy_ap(cols[n].table, table, sizeof cols[n].table);
					strlcpy_ap(cols[n].column, word, sizeof cols[n].column);
					n++;
				}
			}
			if (strchr(line, '\n') == NULL)
				break;
		}
	}
	return n;
}

/* Append "table.column" to `out` (", "-separated) for each of the `n` expected columns
 * of `table` that db's table lacks, counting them in *missing. */
static int store_columns_missing(struct db *db, const char *table, const struct store_column *want,
    size_t n, struct strbuf *out, size_t *missing, struct store_err *err)
{
	char **have = NULL;
	size_t nhave = 0;
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, db->dialect->table_columns, &q);

	if (rc == DB_OK)
		db_bind_text(q, 1, table);
	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		have = xrealloc(have, (nhave + 1) * sizeof *have);
		have[nhave++] = xstrdup(db_column_text(q, 0) != NULL ? db_column_text(q, 0) : "");
		rc = DB_OK;
	}
	if (rc != DB_DONE)
		store_fail(err, STORE_EIO, "reading the columns of %s: %s", table, db_errmsg(db));
	db_finalize(q);
	for (size_t i = 0; rc == DB_DONE && i < n; i++) {
		bool found = false;

		if (strcmp(want[i].table, table) != 0)
			continue;
		for (size_t k = 0; k < nhave && !found; k++)
			found = strcasecmp(have[k], want[i].column) == 0;
		if (!found)
			strbuf_printf(
			    out, "%s%s.%s", (*missing)++ ? ", " : "", table, want[i].column);
	}
	for (size_t k = 0; k < nhave; k++)
		free(have[k]);
	free(have);
	return rc == DB_DONE ? 0 : STORE_EIO;
}

/* The unique indexes exactly-once commits rely on: a retried group of events must fail
 * on them rather than be recorded twice; and, on PostgreSQL (`pg_only`), the one that
 * keeps supervisors claiming together from opening two attempts of one run. `dups` finds
 * rows the index would refuse: an adopted legacy database whose rows already broke it
 * never got it (adopt reports "index not created"), and is not refused for that. */
static const struct {
	const char *index, *table, *columns, *dups;
	bool pg_only;
} store_unique_indexes[] = {
	{ "ux_usage_event", "llm_usage_events", "(attempt_id, seq)",
	    "SELECT 1 FROM llm_usage_events WHERE attempt_id IS NOT NULL GROUP BY attempt_id, "
	    "seq HAVING count(*) > 1 LIMIT 1",
	    false },
	{ "ux_v2_event", "token_estimation_v2_events", "(attempt_id, seq)",
	    "SELECT 1 FROM token_estimation_v2_events WHERE attempt_id IS NOT NULL GROUP BY "
	    "attempt_id, seq HAVING count(*) > 1 LIMIT 1",
	    false },
	{ "ux_coef_active", "estimator_coefficients", "(active) WHERE active = 1",
	    "SELECT 1 FROM estimator_coefficients WHERE active = 1 HAVING count(*) > 1", false },
	{ "ux_attempts_run_open", "attempts", "(run_id) WHERE ended_at IS NULL",
	    "SELECT 1 FROM attempts WHERE ended_at IS NULL GROUP BY run_id HAVING count(*) > 1 "
	    "LIMIT 1",
	    true },
};

/* The keys (a table's primary key, or any unique index over exactly its two columns)
 * that an INSERT ... ON CONFLICT of a commit names: without one the statement fails, and so
 * does every commit that writes the table (another program can drop a PostgreSQL table's
 * primary key, ALTER TABLE ... DROP CONSTRAINT). */
static const struct {
	const char *table, *a, *b;
} store_unique_keys[] = {
	{ "events", "attempt_id", "seq" },
	{ "drain_session_results", "session_id", "attempt_id" },
};

/* Whether `table` is one of the n tables in `names`. */
static bool store_table_listed(const char *const *names, size_t n, const char *table)
{
	for (size_t k = 0; k < n; k++)
		if (strcmp(names[k], table) == 0)
			return true;
	return false;
}

/* Append "key of table (a, b)" to `out` for each key of store_unique_keys of the tables
 * in `names` that db lacks, counting them in *missing. */
static int store_keys_missing(struct db *db, const char *const *names, size_t n, struct strbuf *out,
    size_t *missing, struct store_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(store_unique_keys); i++) {
		int rc;

		if (!store_table_listed(names, n, store_unique_keys[i].table))
			continue;
		rc = store_row_exists(db, err, db->dialect->unique_pair_exists,
		    (const char *const[]){ store_unique_keys[i].table, store_unique_keys[i].a,
		        store_unique_keys[i].b, NULL },
		    "reading the indexes of %s", store_unique_keys[i].table);
		if (rc < 0)
			return rc;
		if (rc == 0)
			strbuf_printf(out, "%sthe primary key of %s (%s, %s)",
			    (*missing)++ ? ", " : "", store_unique_keys[i].table,
			    store_unique_keys[i].a, store_unique_keys[i].b);
	}
	return 0;
}

/* The table a statement writes (INSERT INTO, UPDATE, DELETE FROM), copied to `table`;
 * "" when `sql` is not one. */
static void store_statement_table(const char *sql, char *table, size_t n)
{
	static const char *const verbs[] = { "INSERT INTO ", "UPDATE ", "DELETE FROM " };
	size_t k = 0;

	table[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(verbs) && k == 0; i++) {
		const char *p = strstr(sql, verbs[i]);

		if (p == NULL)
			continue;
		p += strlen(verbs[i]);
		while (k + 1 < n && (isalnum((unsigned char)p[k]) || p[k] == '_')) {
			table[k] = p[k];
			k++;
		}
		table[k] = '\0';
	}
}

bool store_schema_changed(struct db *db, const char *where, const char *sql, struct store_err *err)
{
	char table[64], gone[256];

	if (db_fault(db) != DB_FAULT_SCHEMA)
		return false;
	store_statement_table(sql, table, sizeof table);
	snprintf(gone, sizeof gone, "a table, column or key the statement names");
	for (size_t i = 0; i < ARRAY_SIZE(store_unique_keys); i++)
		if (strcmp(table, store_unique_keys[i].table) == 0 && strstr(sql, "ON CONFLICT"))
			snprintf(gone, sizeof gone,
			    "the primary key of %s (%s, %s), which a commit's INSERT ... ON CONFLICT "
			    "needs,",
			    table, store_unique_keys[i].a, store_unique_keys[i].b);
	store_fail(err, STORE_EIO,
	    "%s: writing %s failed: %s is not there any more: another program changed "
	    "autopack's schema "
	    "while it ran, and nothing more can be committed until that is undone (autopack-ctl "
	    "db check names what is missing; recreate it as autopack's schema declares it, or "
	    "restore the database from a backup); the rows committed before are kept (the "
	    "server said: %s)",
	    where, table[0] != '\0' ? table : "the database", gone, db_errmsg(db));
	if (err != NULL)
		err->fault = DB_FAULT_SCHEMA;
	return true;
}

/* Append "index ON table columns" to `out` for each unique index of the tables in
 * `names` that db lacks (or has without UNIQUE), counting them in *missing. */
static int store_indexes_missing(struct db *db, const char *const *names, size_t n,
    struct strbuf *out, size_t *missing, struct store_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(store_unique_indexes); i++) {
		struct db_stmt *q = NULL;
		int rc;

		if (!store_table_listed(names, n, store_unique_indexes[i].table) ||
		    (store_unique_indexes[i].pg_only && db->backend != DB_PG))
			continue;
		rc = db_prepare(db, db->dialect->unique_index_exists, &q);
		if (rc == DB_OK) {
			db_bind_text(q, 1, store_unique_indexes[i].index);
			db_bind_text(q, 2, store_unique_indexes[i].table);
			rc = db_step(q);
		}
		db_finalize(q);
		q = NULL;
		if (rc == DB_DONE && db_prepare(db, store_unique_indexes[i].dups, &q) == DB_OK)
			rc = db_step(q) == DB_ROW ? DB_ROW : DB_DONE;
		db_finalize(q);
		if (rc != DB_ROW && rc != DB_DONE)
			return store_fail(err, STORE_EIO, "reading the indexes of %s: %s",
			    store_unique_indexes[i].table, db_errmsg(db));
		if (rc == DB_DONE)
			strbuf_printf(out, "%s%s ON %s%s", (*missing)++ ? ", " : "",
			    store_unique_indexes[i].index, store_unique_indexes[i].table,
			    store_unique_indexes[i].columns);
	}
	return 0;
}

/* The columns a run's phases are ordered by (tiers first, then phases): the queue and the
 * claims compare them, and text would put phase 10 before phase 2. */
static const struct {
	const char *table;
	const char *column;
} store_order_columns[] = {
	{ "tiers", "tier_index" },
	{ "phases", "phase_index" },
};

/* 0 when each of store_order_columns compares as a number, else STORE_EPARTIAL naming the
 * first that does not, its type and how to give it a number's; STORE_EIO on error. */
static int store_order_check(
    struct db *db, const char *path, const char *uuid, struct store_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(store_order_columns); i++) {
		const char *t = store_order_columns[i].table, *c = store_order_columns[i].column;
		struct db_stmt *q = NULL;
		char type[64] = "";
		int rc = db_prepare(db, db->dialect->column_numeric, &q);
		bool numeric = true;

		if (rc == DB_OK) {
			db_bind_text(q, 1, t);
			db_bind_text(q, 2, c);
			rc = db_step(q);
		}
		if (rc == DB_ROW) {
			numeric = db_column_int64(q, 0) != 0;
			strlcpy_ap(type, db_column_text(q, 1) != NULL ? db_column_text(q, 1) : "",
			    sizeof type);
		}
		db_finalize(q);
		if (rc != DB_ROW && rc != DB_DONE)
			return store_fail(err, STORE_EIO, "%s: reading the type of %s.%s: %s", path,
			    t, c, db_errmsg(db));
		if (!numeric) {
			char *fix = db->backend == DB_PG ?
			    db_sqlf(
			        "give the column an integer type again: ALTER TABLE \"%w\" ALTER"
			        " COLUMN \"%w\" TYPE integer USING CAST(\"%w\" AS integer)",
			        t, c, c) :
			    xstrdup("restore it from a backup");

			rc = store_fail(err, STORE_EPARTIAL,
			    "%s: autopack database (uuid %s): %s.%s is of type %s, whose values "
			    "compare as text (10 before 2); autopack runs a run's phases in the order "
			    "of tiers.tier_index and phases.phase_index, so it refuses to use the "
			    "database (%s)",
			    path, uuid, t, c, type[0] != '\0' ? type : "(none declared)", fix);
			free(fix);
			return rc;
		}
	}
	return 0;
}

/* Whether a database without a meta table has the tables runs, tiers and phases, as one
 * the Python original made has (db adopt judges it further); false when that cannot be
 * read. */
static bool store_schema_looks_original(struct db *db)
{
	static const char *const core[] = { "runs", "tiers", "phases" };

	for (size_t i = 0; i < ARRAY_SIZE(core); i++)
		if (store_table_exists(db, core[i], NULL) != 1)
			return false;
	return true;
}

/* Check meta, version, tables, columns, unique indexes, the keys the database assigns
 * (store_keys.c) and uuid, reading only; ENOTDB, EVERSION, EPARTIAL or EIDENT. */
int store_schema_check(
    struct db *db, const char *path, int *version, char uuid[37], struct store_err *err)
{
	const char *names[ARRAY_SIZE(store_tables) + 1];
	struct strbuf missing = { 0 };
	char stored[48];
	/* On the heap: 64 KiB, the whole stack under a small `ulimit -s`. */
	struct store_column *cols = NULL;
	size_t n, ncols, nmissing = 0;
	int rc;

	rc = store_table_exists(db, "meta", err);
	if (rc == 0 && (rc = store_view_exists(db, "meta", err)) == 1)
		return store_fail(err, STORE_ENOTDB,
		    "%s: %s database whose meta is a view, where an autopack database has a "
		    "table; refusing to use it as one (drop the view and restore the table from "
		    "a backup); %s",
		    path, db->dialect->name, store_untouched(db));
	if (rc < 0)
		return rc;
	if (rc == 0 && store_schema_looks_original(db))
		return store_fail(err, STORE_ENOTDB,
		    "%s: %s database but not an autopack database (no meta table): it has the "
		    "runs, tiers and phases tables of a Python-Autopack database, which "
		    "autopack-ctl db adopt --dry-run surveys and autopack-ctl db adopt makes an "
		    "autopack database in place (docs/adoption.md); %s",
		    path, db->dialect->name, store_untouched(db));
	if (rc == 0)
		return store_fail(err, STORE_ENOTDB,
		    "%s: %s database but not an autopack database (no meta table); %s", path,
		    db->dialect->name, store_untouched(db));
	rc = store_meta_read(db, path, version, stored, sizeof stored, err);
	if (rc != 0)
		return rc;
	strlcpy_ap(uuid, stored, 37);
	n = store_schema_tables(*version, names, ARRAY_SIZE(names));
	for (size_t i = 0; i < n; i++) {
		rc = store_table_exists(db, names[i], err);
		if (rc == 0 && (rc = store_view_exists(db, names[i], err)) == 1) {
			rc = store_fail(err, STORE_EPARTIAL,
			    "%s: autopack database (uuid %s): %s is a view, where schema version %d "
			    "has a table: autopack writes into each of its tables, so it refuses to "
			    "use the database (drop the view and restore the table from a backup)",
			    path, uuid, names[i], *version);
			goto out;
		}
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
	cols = xcalloc(STORE_SCHEMA_COLUMNS_MAX, sizeof *cols);
	ncols = store_schema_columns(*version, cols, STORE_SCHEMA_COLUMNS_MAX);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = store_columns_missing(db, names[i], cols, ncols, &missing, &nmissing, err);
#ifdef AUTOPACK_MUTANT_columns_not_checked
	nmissing = 0;
#endif
	if (rc == 0 && nmissing > 0) {
		rc = store_fail(err, STORE_EPARTIAL,
		    "%s: autopack database (uuid %s) is missing %zu column%s of schema version "
		    "%d: %s; autopack reads or writes each of them, so it refuses to use the "
		    "database (restore it from a backup)",
		    path, uuid, nmissing, nmissing == 1 ? "" : "s", *version, missing.s);
		goto out;
	}
	if (rc == 0)
		rc = store_indexes_missing(db, names, n, &missing, &nmissing, err);
	if (rc == 0)
		rc = store_keys_missing(db, names, n, &missing, &nmissing, err);
	if (rc == 0 && nmissing > 0) {
		rc = store_fail(err, STORE_EPARTIAL,
		    "%s: autopack database (uuid %s) is missing %zu unique index%s of schema "
		    "version %d: %s; commits are recorded exactly once, and a run has one open "
		    "attempt at a time, only with them, so it refuses to use the database (restore it from a backup, or recreate each "
		    "with CREATE UNIQUE INDEX ... once no duplicates are left)",
		    path, uuid, nmissing, nmissing == 1 ? "" : "es", *version, missing.s);
		goto out;
	}
	if (rc == 0) {
		char what[96];

		snprintf(what, sizeof what, "autopack database (uuid %s): ", uuid);
		rc = store_keys_check(db, path, what,
		    "autopack refuses to use the database (recreate the table with the key as "
		    "autopack's schema declares it, or restore it from a backup)",
		    STORE_EPARTIAL, err);
	}
	if (rc == 0)
		rc = store_order_check(db, path, uuid, err);
#ifdef AUTOPACK_MUTANT_uuid_not_checked
	strlcpy_ap(stored, "00000000-0000-4000-8000-000000000000", sizeof stored);
#endif
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
	free(cols);
	free(missing.s);
	return rc;
}
