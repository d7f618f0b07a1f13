/* Finding and rewriting stored values that are not in the original's formats. */
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_values.h"
#include "common/store/store_internal.h"
#include "common/util.h"
#include "common/vocab.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The timestamp columns autopack writes, declared TEXT in its own schema. */
static const struct {
	const char *table, *column;
} values_time_cols[] = {
	{ "meta", "created_at" },
	{ "runs", "created_at" },
	{ "runs", "updated_at" },
	{ "runs", "started_at" },
	{ "runs", "completed_at" },
	{ "tiers", "created_at" },
	{ "tiers", "updated_at" },
	{ "tiers", "started_at" },
	{ "tiers", "completed_at" },
	{ "phases", "last_attempt_timestamp" },
	{ "phases", "created_at" },
	{ "phases", "updated_at" },
	{ "phases", "started_at" },
	{ "phases", "completed_at" },
	{ "drain_sessions", "started_at" },
	{ "drain_sessions", "completed_at" },
	{ "attempts", "started_at" },
	{ "attempts", "ended_at" },
	{ "events", "created_at" },
	{ "llm_usage_events", "created_at" },
	{ "token_estimation_v2_events", "timestamp" },
	{ "token_estimation_v2_events", "created_at" },
	{ "drain_session_results", "timestamp" },
	{ "control_log", "at" },
	{ "estimator_coefficients", "created_at" },
};

/* The state columns; their member names are the vocabulary's (common/vocab.h). */
static const struct {
	const char *table;
	enum store_value_kind kind;
} values_state_cols[] = {
	{ "runs", STORE_VALUE_RUN_STATE },
	{ "tiers", STORE_VALUE_TIER_STATE },
	{ "phases", STORE_VALUE_PHASE_STATE },
};

/* Name a value kind for reports. */
const char *store_value_kind_name(enum store_value_kind kind)
{
	switch (kind) {
	case STORE_VALUE_TIME: return "timestamp";
	case STORE_VALUE_BOOL: return "boolean";
	case STORE_VALUE_RUN_STATE: return "run state";
	case STORE_VALUE_TIER_STATE: return "tier state";
	case STORE_VALUE_PHASE_STATE: return "phase state";
	case STORE_VALUE_ID: return "text id";
	case STORE_VALUE_INT: return "integer";
	}
	return "?";
}

/* Return the boolean `s` spells (0 or 1), or -1. */
static int values_bool_text(const char *s)
{
	static const char *const yes[] = { "1", "true", "t", "yes", "y", "on" };
	static const char *const no[] = { "0", "false", "f", "no", "n", "off" };
	char word[8];
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n >= sizeof word)
		return -1;
	memcpy(word, s, n);
	word[n] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(word, yes[i]) == 0)
			return 1;
		if (strcasecmp(word, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* Write the member name a state value stands for ("PhaseState.queued" -> "QUEUED")
 * into out, or return -1 if it names no state of the kind. */
static int values_state_text(enum store_value_kind kind, const char *s, char out[64])
{
	int n_names = kind == STORE_VALUE_RUN_STATE ? RUN_STATE_COUNT :
	    kind == STORE_VALUE_TIER_STATE          ? TIER_STATE_COUNT :
	                                              PHASE_STATE_COUNT;
	const char *dot = strrchr(s, '.');
	size_t n;

	if (dot != NULL)
		s = dot + 1;
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n >= 64)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)toupper((unsigned char)s[i]);
	out[n] = '\0';
	if (kind == STORE_VALUE_RUN_STATE && strncmp(out, "DONE_FAILED_", 12) == 0 && n > 12)
		return 0;
	for (int i = 1; i < n_names; i++) {
		const char *name = kind == STORE_VALUE_RUN_STATE ?
		    run_state_name((enum run_state)i) :
		    kind == STORE_VALUE_TIER_STATE ? tier_state_name((enum tier_state)i) :
		                                     phase_state_name((enum phase_state)i);

		if (strcmp(name, out) == 0)
			return 0;
	}
	return -1;
}

/* Write text value `text` of `kind` in the original's format into out. */
int store_value_read(enum store_value_kind kind, const char *text, char out[64])
{
	int b;

	switch (kind) {
	case STORE_VALUE_TIME: return time_db_parse(text, out) == 0 ? 0 : -1;
	case STORE_VALUE_BOOL:
		if ((b = values_bool_text(text)) < 0)
			return -1;
		snprintf(out, 64, "%d", b);
		return 0;
	case STORE_VALUE_ID:
	case STORE_VALUE_INT: return -1;
	default: return values_state_text(kind, text, out);
	}
}

/* autopack_value(kind, v): v in the original's format, or NULL. */
static void values_sql_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	enum store_value_kind kind = (enum store_value_kind)sqlite3_value_int(argv[0]);
	int type = sqlite3_value_type(argv[1]);
	char out[64];

	(void)argc;
	if (type == SQLITE_NULL)
		return;
	if (kind == STORE_VALUE_ID || kind == STORE_VALUE_INT) {
		if (type == (kind == STORE_VALUE_ID ? SQLITE_TEXT : SQLITE_INTEGER))
			sqlite3_result_value(ctx, argv[1]);
		return;
	}
	if (kind == STORE_VALUE_BOOL && (type == SQLITE_INTEGER || type == SQLITE_FLOAT)) {
		double d = sqlite3_value_double(argv[1]);
		if (d == 0.0 || d == 1.0)
			sqlite3_result_int(ctx, d == 1.0);
		return;
	}
	if (type != SQLITE_TEXT ||
	    store_value_read(kind, (const char *)sqlite3_value_text(argv[1]), out) != 0)
		return;
	if (kind == STORE_VALUE_BOOL)
		sqlite3_result_int(ctx, out[0] == '1');
	else
		sqlite3_result_text(ctx, out, -1, SQLITE_TRANSIENT);
}

/* Register autopack_value() on the connection; STORE_EIO on failure. */
int store_values_register(struct db *db, struct store_err *err)
{
	if (sqlite3_create_function_v2(db_sqlite_handle(db), "autopack_value", 2,
	        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL, values_sql_fn, NULL,
	        NULL, NULL) != SQLITE_OK)
		return store_fail(err, STORE_EIO, "registering autopack_value: %s", db_errmsg(db));
	return 0;
}

/* Return the state kind of `table`'s state column; -1 for a table without one. */
int store_values_state_kind(const char *table)
{
	for (size_t i = 0; i < ARRAY_SIZE(values_state_cols); i++)
		if (strcasecmp(values_state_cols[i].table, table) == 0)
			return (int)values_state_cols[i].kind;
	return -1;
}

/* Append a column unless it is listed. */
void store_value_cols_add(
    struct store_value_cols *out, const char *table, const char *column, enum store_value_kind k)
{
	struct store_value_col *c;

	for (size_t i = 0; i < out->n; i++)
		if (strcasecmp(out->items[i].table, table) == 0 &&
		    strcasecmp(out->items[i].column, column) == 0)
			return;
	out->items = xrealloc(out->items, (out->n + 1) * sizeof *out->items);
	c = &out->items[out->n++];
	memset(c, 0, sizeof *c);
	c->table = xstrdup(table);
	c->column = xstrdup(column);
	c->kind = k;
}

/* Return the declared type of table.column (heap, "" if untyped), or NULL if there is no
 * such column. */
static char *values_column_type(struct db *db, const char *table, const char *column)
{
	struct db_stmt *q = NULL;
	char *type = NULL;

	if (db_prepare(db, "SELECT type FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE",
	        &q) == DB_OK) {
		db_bind_text(q, 1, table);
		db_bind_text(q, 2, column);
		if (db_step(q) == DB_ROW)
			type = xstrdup(db_column_text(q, 0) != NULL ? db_column_text(q, 0) : "");
	}
	db_finalize(q);
	return type;
}

/* Add runs.id and every run_id and phase_id column as ids, then every other column of
 * integer affinity as integers; STORE_EIO on failure (the list freed). */
static int values_id_columns(struct db *db, struct store_value_cols *out, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db,
	    "SELECT m.name, c.name, lower(c.name) IN ('run_id', 'phase_id')"
	    " OR (lower(m.name) = 'runs' AND lower(c.name) = 'id') AS is_id"
	    " FROM sqlite_master m, pragma_table_info(m.name) c"
	    " WHERE m.type = 'table' AND (is_id OR instr(upper(c.type), 'INT') > 0)"
	    " ORDER BY is_id DESC, m.rowid, c.cid",
	    &q);

	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		store_value_cols_add(out, db_column_text(q, 0), db_column_text(q, 1),
		    db_column_int64(q, 2) ? STORE_VALUE_ID : STORE_VALUE_INT);
		rc = DB_OK;
	}
	db_finalize(q);
	if (rc == DB_DONE)
		return 0;
	store_value_cols_free(out);
	return store_fail(err, STORE_EIO, "reading the id and integer columns: %s", db_errmsg(db));
}

/* Collect the columns whose values are checked; STORE_EIO on failure. */
int store_values_columns(
    struct db *db, bool legacy, struct store_value_cols *out, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < ARRAY_SIZE(values_time_cols); i++) {
		char *type = values_column_type(
		    db, values_time_cols[i].table, values_time_cols[i].column);

		if (type != NULL)
			store_value_cols_add(out, values_time_cols[i].table,
			    values_time_cols[i].column, STORE_VALUE_TIME);
		free(type);
	}
	rc = db_prepare(db,
	    "SELECT m.name, c.name, upper(c.type) FROM sqlite_master m,"
	    " pragma_table_info(m.name) c WHERE m.type = 'table'"
	    " AND upper(c.type) IN ('DATETIME', 'TIMESTAMP', 'BOOLEAN') ORDER BY m.rowid, c.cid",
	    &q);
	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		const char *type = db_column_text(q, 2);
		bool is_bool = strcmp(type, "BOOLEAN") == 0;

		if (!is_bool || legacy)
			store_value_cols_add(out, db_column_text(q, 0), db_column_text(q, 1),
			    is_bool ? STORE_VALUE_BOOL : STORE_VALUE_TIME);
		rc = DB_OK;
	}
	db_finalize(q);
	if (rc != DB_DONE) {
		store_value_cols_free(out);
		return store_fail(err, STORE_EIO, "reading the column types: %s", db_errmsg(db));
	}
	for (size_t i = 0; legacy && i < ARRAY_SIZE(values_state_cols); i++) {
		char *type = values_column_type(db, values_state_cols[i].table, "state");

		if (type != NULL)
			store_value_cols_add(
			    out, values_state_cols[i].table, "state", values_state_cols[i].kind);
		free(type);
	}
	return legacy ? values_id_columns(db, out, err) : 0;
}

/* Run a query with one row of (count, example value[, its rewrite]) into the column. */
static int values_count(
    struct db *db, const char *sql, int64_t *n, char **from, char **to, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, sql, &q);

	if (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		*n = db_column_int64(q, 0);
		if (*n > 0) {
			*from = xstrdup(db_column_text(q, 1));
			if (to != NULL)
				*to = xstrdup(db_column_text(q, 2));
		}
		rc = DB_OK;
	}
	if (rc != DB_OK)
		store_fail(err, STORE_EIO, "checking stored values: %s", db_errmsg(db));
	db_finalize(q);
	return rc == DB_OK ? 0 : STORE_EIO;
}

/* The condition "this value is read, and differs from its rewrite". */
#define VALUES_REWRITE_WHERE                                                                       \
	"\"%w\" IS NOT NULL AND autopack_value(%d, \"%w\") IS NOT NULL"                            \
	" AND autopack_value(%d, \"%w\") IS NOT \"%w\""

/* Count one column's values to rewrite and unreadable ones, with an example of each. */
static int values_survey_col(struct db *db, struct store_value_col *c, struct store_err *err)
{
	char *sql;
	int rc;

	sql = db_sqlf("SELECT count(*), min(CAST(\"%w\" AS TEXT)),"
	              " autopack_value(%d, min(\"%w\")) FROM \"%w\" WHERE " VALUES_REWRITE_WHERE,
	    c->column, c->kind, c->column, c->table, c->column, c->kind, c->column, c->kind,
	    c->column, c->column);
	rc = values_count(db, sql, &c->rewrite, &c->from, &c->to, err);
	free(sql);
	if (rc != 0)
		return rc;
	sql = db_sqlf("SELECT count(*), min(CASE typeof(\"%w\") WHEN 'blob' THEN"
	              " 'X''' || hex(\"%w\") || '''' ELSE CAST(\"%w\" AS TEXT) END) FROM \"%w\""
	              " WHERE \"%w\" IS NOT NULL AND autopack_value(%d, \"%w\") IS NULL",
	    c->column, c->column, c->column, c->table, c->column, c->kind, c->column);
	rc = values_count(db, sql, &c->unreadable, &c->bad, NULL, err);
	free(sql);
	return rc;
}

/* Count the values to rewrite and those unreadable, reading only; STORE_EIO on failure. */
int store_values_survey(struct db *db, struct store_value_cols *cols, struct store_err *err)
{
	struct store_value_cols kept = { 0 };
	int rc = 0;

	for (size_t i = 0; i < cols->n; i++) {
		struct store_value_col *c = &cols->items[i];

		if (rc == 0)
			rc = values_survey_col(db, c, err);
		if (rc == 0 && (c->rewrite > 0 || c->unreadable > 0)) {
			kept.items = xrealloc(kept.items, (kept.n + 1) * sizeof *kept.items);
			kept.items[kept.n++] = *c;
			continue;
		}
		free(c->table);
		free(c->column);
		free(c->from);
		free(c->to);
		free(c->bad);
	}
	free(cols->items);
	*cols = kept;
	return rc;
}

/* Rewrite the readable values of each column; STORE_EIO on failure. */
int store_values_rewrite(struct db *db, struct store_value_cols *cols, struct store_err *err)
{
	for (size_t i = 0; i < cols->n; i++) {
		struct store_value_col *c = &cols->items[i];
		char *sql = db_sqlf("UPDATE \"%w\" SET \"%w\" = autopack_value(%d, \"%w\")"
		                    " WHERE " VALUES_REWRITE_WHERE,
		    c->table, c->column, c->kind, c->column, c->column, c->kind, c->column, c->kind,
		    c->column, c->column);
		struct store_err why;
		int rc = store_exec(db, sql, "SQLite", &why);

		free(sql);
		if (rc != 0)
			return store_fail(
			    err, rc, "rewriting %s.%s: %s", c->table, c->column, why.text);
		c->rewrite = db_changes(db);
	}
	return 0;
}

/* Free a column list. */
void store_value_cols_free(struct store_value_cols *cols)
{
	for (size_t i = 0; i < cols->n; i++) {
		free(cols->items[i].table);
		free(cols->items[i].column);
		free(cols->items[i].from);
		free(cols->items[i].to);
		free(cols->items[i].bad);
	}
	free(cols->items);
	memset(cols, 0, sizeof *cols);
}
