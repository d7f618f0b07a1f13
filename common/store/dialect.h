/* The SQL that differs between the store's two backends: each backend fills one of these
 * (common/store/sqlite/dialect_sqlite.c, common/store/pg/dialect_pg.c) and store code
 * takes its text from the connection's (db->dialect). Statements use ?N placeholders. */
#ifndef AUTOPACK_STORE_DIALECT_H
#define AUTOPACK_STORE_DIALECT_H

#include "common/store/db.h"

struct db_dialect {
	const char *name; /* "SQLite", "PostgreSQL" */
	/* A row if ?1 names a table (names compare without case). */
	const char *table_exists;
	/* The names of the columns of table ?1, one per row. */
	const char *table_columns;
};

#endif
