/* The steps of an adoption (common/store/store_adopt*.c) and what each backend supplies to
 * them (common/store/store_adopt_sqlite.c, common/store/pg/store_pg_adopt.c); nothing
 * outside them includes this, except unit tests. */
#ifndef AUTOPACK_STORE_ADOPT_INTERNAL_H
#define AUTOPACK_STORE_ADOPT_INTERNAL_H

#include "common/store/store_adopt.h"

/* One column of a table: its declared type, its default as SQL text (or NULL), whether it
 * is NOT NULL and its position in the primary key (0: not in it). */
struct adopt_col {
	char *name;
	char *type;
	char *dflt;
	bool notnull;
	int pk;
};

/* The columns of one table. */
struct adopt_cols {
	struct adopt_col *items;
	size_t n;
};

/* A table of autopack's schema: the statement that creates it, and its columns. */
struct adopt_ref_table {
	char *name;
	char *sql;
	struct adopt_cols cols;
};

/* An index of autopack's schema and the statement that creates it. */
struct adopt_ref_index {
	char *name;
	char *sql;
};

/* autopack's current schema as one backend declares it, tables and indexes in the order
 * they are created. */
struct adopt_ref {
	struct adopt_ref_table *tables;
	size_t n_tables;
	struct adopt_ref_index *indexes;
	size_t n_indexes;
};

/* What differs between the backends in an adoption. */
struct adopt_backend {
	/* Connect to the database at `where`: for writing, or in a read-only session. */
	int (*connect)(const char *where, bool write, struct db **db, struct store_err *err);
	/* Read autopack's current schema of this backend into `ref`. */
	int (*ref_load)(struct adopt_ref *ref, struct store_err *err);
	/* Refuse a database the backend finds damaged (NULL: the server keeps it whole). */
	int (*integrity)(struct db *db, const char *where, struct store_err *err);
	/* Reading only: the values not in the original's formats (store_values.h). */
	int (*values_find)(struct db *db, const struct adopt_ref *ref,
	    struct store_value_cols *cols, struct store_err *err);
	/* In the caller's transaction: rewrite them; `rewrite` becomes the rows changed. */
	int (*values_rewrite)(struct db *db, struct store_value_cols *cols, struct store_err *err);
	/* In the adoption's transaction, before any change: the copy taken first, named in
	 * rep->backup_path (NULL: the operator takes it; rep->dump_command says how). */
	int (*backup)(const char *where, struct store_adopt_report *rep, struct store_err *err);
	/* In the adoption's transaction, after the meta row: record what else identifies the
	 * database (NULL: nothing). */
	int (*identify)(struct db *db, const char *where, struct store_err *err);
};

extern const struct adopt_backend adopt_backend_sqlite;
extern const struct adopt_backend adopt_backend_pg;

/* Return the backend of `where` (a canonical SQLite path or PostgreSQL URL). */
const struct adopt_backend *adopt_backend_of(const char *where);

/* Read the columns of `table` in db (none if there is no such table). */
int adopt_cols_read(struct db *db, const char *table, struct adopt_cols *c, struct store_err *err);
/* Free a column list. */
void adopt_cols_free(struct adopt_cols *c);
/* Append a heap copy of `s` to a string list. */
void adopt_list_push(char ***items, size_t *n, const char *s);
/* Return the column of `c` named `name` (case-insensitive), or NULL. */
const struct adopt_col *adopt_cols_find(const struct adopt_cols *c, const char *name);
/* Return 1 if db's table has the column, 0 if not, STORE_EIO on error. */
int adopt_has_column(struct db *db, const char *table, const char *column, struct store_err *err);

/* Append a table (its statement and columns, taken over) or an index to `ref`. */
void adopt_ref_add_table(
    struct adopt_ref *ref, const char *name, const char *sql, struct adopt_cols *cols);
void adopt_ref_add_index(struct adopt_ref *ref, const char *name, const char *sql);
/* Return the table of `ref` named `name`, or NULL. */
const struct adopt_ref_table *adopt_ref_find(const struct adopt_ref *ref, const char *name);
/* Free what `ref` holds. */
void adopt_ref_free(struct adopt_ref *ref);

/* Check the open connection's schema and keys, reading only: STORE_EEXIST for an
 * autopack database (uuid in the message), STORE_ENOTDB naming what does not match the
 * original's shape, 0 if it can be adopted. `where` names the database in messages. */
int adopt_shape_check(
    const struct adopt_backend *be, struct db *db, const char *where, struct store_err *err);

/* Add the columns of reference table `t` that db's table lacks, recording them in `rep`
 * (if not NULL). A NOT NULL column without a default cannot be added to a table with
 * rows: it is added nullable. */
int adopt_columns_add(struct db *db, const struct adopt_ref_table *t,
    struct store_adopt_report *rep, bool apply, struct store_err *err);

/* Inside the caller's transaction: make (run_id, phase_id) unique in phases, create the
 * tables of reference `ref` that db lacks, add the missing columns, and create the
 * reference's indexes that can be created. Records what it did in `rep`; without
 * `apply`, changes nothing and records what it would do. */
int adopt_schema_extend(struct db *db, const struct adopt_ref *ref, struct store_adopt_report *rep,
    bool apply, struct store_err *err);

/* Inside the caller's transaction: count the legacy rows; in runs, tiers and phases fill
 * NULLs in columns the reference declares NOT NULL (created_at/updated_at with `now`,
 * others with their default); put EXECUTING phases without an open attempt back to
 * QUEUED; give runs without a workspace one under `ws_base` (directories are created).
 * Records what it did in `rep`; without `apply`, changes nothing and counts what it
 * would do. */
int adopt_repair(struct db *db, const struct adopt_ref *ref, const char *ws_base, const char *now,
    struct store_adopt_report *rep, bool apply, struct store_err *err);

/* Reading only: find the NOT NULL columns without an SQL default autopack fills on every
 * insert, the values not in the original's formats, and the scopes of every phase. */
int adopt_survey(const struct adopt_backend *be, struct db *db, const struct adopt_ref *ref,
    struct store_adopt_report *rep, struct store_err *err);

#endif
