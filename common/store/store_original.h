/*
 * The values the Python original writes into the NOT NULL columns of its tables whose
 * default lives only in its Python models (docs/adoption.md, "What autopack writes").
 * An adopted database has no SQL default for them, so every insert autopack makes into
 * one of those tables names them; autopack's own schema declares the same defaults.
 */
#ifndef AUTOPACK_STORE_ORIGINAL_H
#define AUTOPACK_STORE_ORIGINAL_H

#include <stddef.h>

/* One such column and its value as an SQL literal; NULL means the time of the write,
 * which the insert binds itself. */
struct store_original_fill {
	const char *table;
	const char *column;
	const char *value;
};

extern const struct store_original_fill store_original_fills[];
extern const size_t store_n_original_fills;

/* Return (heap) "INSERT INTO <table> (<cols>, ...) VALUES (<vals>, ...)" with every
 * column of `table` in store_original_fills that `cols` does not name appended with its
 * value. `cols` must name the time-of-write columns itself. */
char *store_original_insert_sql(const char *table, const char *cols, const char *vals);

#endif
