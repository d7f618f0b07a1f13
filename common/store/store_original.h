/*
 * The values the Python original writes into the NOT NULL columns of its tables whose
 * default lives only in its Python models (docs/adoption.md, "What autopack writes").
 * An adopted database has no SQL default for them, so every insert autopack makes into
 * one of those tables names them; autopack's own schema declares the same defaults.
 */
#ifndef AUTOPACK_STORE_ORIGINAL_H
#define AUTOPACK_STORE_ORIGINAL_H

#include "common/store/db.h"

#include <stdbool.h>
#include <stddef.h>

/* One such column and its value as an SQL literal; NULL means the time of the write,
 * which the insert binds itself. A boolean column's value is false: "0" on SQLite, the
 * dialect's false on a backend with a boolean type (store_original_value). */
struct store_original_fill {
	const char *table;
	const char *column;
	const char *value;
	bool boolean;
};

extern const struct store_original_fill store_original_fills[];
extern const size_t store_n_original_fills;

/* Return (heap) "INSERT INTO <table> (<cols>, ...) VALUES (<vals>, ...)" with every
 * column of `table` in store_original_fills that `cols` does not name appended with its
 * value. `cols` must name the time-of-write columns itself. */
char *store_original_insert_sql(
    struct db *db, const char *table, const char *cols, const char *vals);
/* The same for `rows` rows, the values of row k in vals[k]: "... VALUES (<vals[0]>, ...),
 * (<vals[1]>, ...), ...". */
char *store_original_insert_rows_sql(
    struct db *db, const char *table, const char *cols, const char *const *vals, size_t rows);
/* The value of fill `f` as an SQL literal of the connection's dialect (NULL: the time of
 * the write). */
const char *store_original_value(struct db *db, const struct store_original_fill *f);

#endif
