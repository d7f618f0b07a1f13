/* The SQL that differs between the store's two backends: each backend fills one of these
 * (common/store/sqlite/dialect_sqlite.c, common/store/pg/dialect_pg.c) and store code
 * takes its text from the connection's (db->dialect). Statements use ?N placeholders. */
#ifndef AUTOPACK_STORE_DIALECT_H
#define AUTOPACK_STORE_DIALECT_H

#include "common/store/db.h"

struct db_dialect {
	const char *name; /* "SQLite", "PostgreSQL" */
	/* The literal a boolean column of the original's tables is false with. */
	const char *false_literal;
	/* The durability of each commit: every commit on disk before it returns, or a
	 * commit that a power loss may undo while the database stays whole. */
	const char *sync_full;
	const char *sync_normal;
	/* What orders drain sessions started at the same time (newest last). */
	const char *session_order;
	/* A row if ?1 names a table (names compare without case); a view is none. */
	const char *table_exists;
	/* A row if ?1 names a view (names compare without case). */
	const char *view_exists;
	/* The names of the columns of table ?1, one per row. */
	const char *table_columns;
	/* A row if ?1 names a unique index of table ?2. */
	const char *unique_index_exists;
	/* The columns of table ?1, one row each: name, declared type, NOT NULL (1 or 0), the
	 * default as SQL text (or NULL), position in the primary key (0: not in it). */
	const char *column_info;
	/* A row if ?1 names a table, index, view or other relation (names compare without
	 * case). */
	const char *object_exists;
	/* A row if a unique index of table ?1 that is not partial covers exactly columns ?2
	 * and ?3. */
	const char *unique_pair_exists;
	/* One row if ?1 names a table: 1 if the database gives column ?2 a value when an
	 * insert leaves it out (SQLite: the column is the rowid, the INTEGER PRIMARY KEY of a
	 * table with rowids; PostgreSQL: a default, such as SERIAL's, or an identity), else 0;
	 * 1 if the table is WITHOUT ROWID (PostgreSQL: 0); the column's declared type (NULL if
	 * there is no such column). */
	const char *key_assigned;
	/* One row if table ?1 has column ?2: 1 if its values compare as numbers (PostgreSQL:
	 * a type of the numeric category, a domain over one too; SQLite: a declared type
	 * without TEXT affinity, which would store numbers as text), else 0; the declared
	 * type. */
	const char *column_numeric;
	/* Remove run ?1 from the stopped and deprioritised runs of every unfinished drain
	 * session's saved state (a retry of its phases drains it again). */
	const char *release_run;
};

#endif
