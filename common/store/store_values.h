/*
 * Values in the Python original's formats (docs/adoption.md, "Value formats"):
 * timestamps "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), booleans 0 or 1, states by member name.
 * Finds the stored values that are not in that format and rewrites the ones that can be
 * read; adoption reports and rewrites them, and the migration to schema version 3
 * rewrites the timestamps earlier autopack versions wrote.
 */
#ifndef AUTOPACK_STORE_VALUES_H
#define AUTOPACK_STORE_VALUES_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store/store.h"

enum store_value_kind {
	STORE_VALUE_TIME,
	STORE_VALUE_BOOL,
	STORE_VALUE_RUN_STATE,
	STORE_VALUE_TIER_STATE,
	STORE_VALUE_PHASE_STATE,
	STORE_VALUE_ID,  /* a run or phase id: text, as it is; SQLite only (a blob is none) */
	STORE_VALUE_INT, /* an integer, as it is; SQLite only ('12abc' or 1.5 is none) */
};

/* One column whose values are held to a format. */
struct store_value_col {
	char *table;
	char *column;
	enum store_value_kind kind;
	int64_t rewrite;    /* rows whose value is (to be) rewritten */
	int64_t unreadable; /* rows left as they are: not a value of that kind */
	char *from, *to;    /* one rewritten value, before and after */
	char *bad;          /* one unreadable value */
};

struct store_value_cols {
	struct store_value_col *items;
	size_t n;
};

/* Register the SQL function autopack_value(kind, v) on db: v in the original's format
 * for kind, or NULL when v is not such a value. */
int store_values_register(struct db *db, struct store_err *err);
/* Collect the columns of db to check: autopack's own timestamp columns and every column
 * declared DATETIME; with `legacy` also every column declared BOOLEAN, the state
 * columns of runs, tiers and phases, the ids (runs.id and every run_id and phase_id
 * column: a value stored as anything but text, such as a blob, is unreadable) and every
 * column of integer affinity (its type names INT: a value stored as anything but an
 * integer, such as the text '12abc', is unreadable). Ids and integers are never
 * rewritten. */
int store_values_columns(
    struct db *db, bool legacy, struct store_value_cols *out, struct store_err *err);
/* Count, reading only, the values of each column that would be rewritten and those that
 * cannot be read, with an example of each (a blob as X'hex'); columns with neither are
 * dropped. */
int store_values_survey(struct db *db, struct store_value_cols *cols, struct store_err *err);
/* Rewrite the readable values in the caller's transaction; `rewrite` becomes the rows
 * changed. */
int store_values_rewrite(struct db *db, struct store_value_cols *cols, struct store_err *err);
/* Write `text`, a stored value of `kind`, in the original's format into out ("0"/"1"
 * for a boolean): 0, or -1 when it is not such a value. An id is judged by its SQLite
 * type alone, not by its text: -1 for STORE_VALUE_ID and STORE_VALUE_INT. */
int store_value_read(enum store_value_kind kind, const char *text, char out[64]);
/* The kind of the state column of `table` (runs, tiers, phases), or -1. */
int store_values_state_kind(const char *table);
/* Append table.column to the list unless it is there already. */
void store_value_cols_add(
    struct store_value_cols *out, const char *table, const char *column, enum store_value_kind k);
/* Free a column list. */
void store_value_cols_free(struct store_value_cols *cols);
/* Name a kind for reports: "timestamp", "boolean", "run state", ... */
const char *store_value_kind_name(enum store_value_kind kind);

#endif
