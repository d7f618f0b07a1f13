/* Extending a legacy schema to autopack's: the tables, columns and indexes it lacks,
 * taken from the current schema built in a private in-memory database. */
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One column as pragma table_info describes it. */
struct adopt_col {
	char *name;
	char *type;
	char *dflt; /* SQL text of the default, or NULL */
	bool notnull;
	int pk;
};

/* The columns of one table. */
struct adopt_cols {
	struct adopt_col *items;
	size_t n;
};

/* Append a heap copy of `s` to a string list. */
static void adopt_list_push(char ***items, size_t *n, const char *s)
{
	*items = xrealloc(*items, (*n + 1) * sizeof **items);
	(*items)[(*n)++] = xstrdup(s);
}

/* Free a column list. */
static void adopt_cols_free(struct adopt_cols *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->items[i].name);
		free(c->items[i].type);
		free(c->items[i].dflt);
	}
	free(c->items);
	c->items = NULL;
	c->n = 0;
}

/* Read the columns of `table` in db. */
static int adopt_cols_read(
    struct db *db, const char *table, struct adopt_cols *c, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db,
	    "SELECT name, type, \"notnull\", dflt_value, pk "
	    "FROM pragma_table_info(?1)",
	    &q);

	c->items = NULL;
	c->n = 0;
	if (rc == DB_OK)
		db_bind_text(q, 1, table);
	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		struct adopt_col *col;

		c->items = xrealloc(c->items, (c->n + 1) * sizeof *c->items);
		col = &c->items[c->n++];
		col->name = store_col_text(q, 0, NULL);
		col->type = store_col_text(q, 1, "");
		col->notnull = db_column_int64(q, 2) != 0;
		col->dflt = store_col_text(q, 3, NULL);
		col->pk = db_column_int64(q, 4);
		rc = DB_OK;
	}
	db_finalize(q);
	if (rc != DB_DONE) {
		adopt_cols_free(c);
		return store_fail(
		    err, STORE_EIO, "reading the columns of %s: %s", table, db_errmsg(db));
	}
	return 0;
}

/* Return the column of `c` named `name` (case-insensitive), or NULL. */
static const struct adopt_col *adopt_cols_find(const struct adopt_cols *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->items[i].name != NULL && strcasecmp(c->items[i].name, name) == 0)
			return &c->items[i];
	return NULL;
}

/* Return 1 if an object (table, index, view, trigger) named `name` exists, 0 if not. */
static int adopt_object_exists(struct db *db, const char *name, struct store_err *err)
{
	return store_row_exists(db, err,
	    "SELECT 1 FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
	    (const char *const[]){ name, NULL }, "reading the schema");
}

/* Add (or, without `apply`, list) the reference's columns that db's table lacks; NOT NULL
 * without a default: nullable. */
int adopt_columns_add(struct db *db, struct db *ref, const char *table,
    struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	struct adopt_cols want, have;
	int rc = adopt_cols_read(ref, table, &want, err);

	if (rc != 0)
		return rc;
	rc = adopt_cols_read(db, table, &have, err);
	for (size_t i = 0; rc == 0 && i < want.n; i++) {
		const struct adopt_col *c = &want.items[i];
		struct store_adopt_column *added;
		bool relaxed = c->notnull && c->dflt == NULL;
		char *decl, *sql;

		if (adopt_cols_find(&have, c->name) != NULL)
			continue;
		if (c->pk > 0) {
			rc = store_fail(err, STORE_ENOTDB,
			    "table %s has no column %s, its primary "
			    "key in autopack's schema; it cannot be added",
			    table, c->name);
			break;
		}
		decl = c->dflt != NULL ?
		    xasprintf("%s%s DEFAULT %s", c->type, c->notnull ? " NOT NULL" : "", c->dflt) :
		    xstrdup(c->type);
		sql = db_sqlf("ALTER TABLE \"%w\" ADD COLUMN \"%w\" %s", table, c->name, decl);
		if (apply)
			rc = store_exec(db, sql, sql, err);
		free(sql);
		if (rc != 0 || rep == NULL) {
			free(decl);
			continue;
		}
		rep->columns_added = xrealloc(
		    rep->columns_added, (rep->n_columns_added + 1) * sizeof *rep->columns_added);
		added = &rep->columns_added[rep->n_columns_added++];
		added->table = xstrdup(table);
		added->column = xstrdup(c->name);
		added->decl = decl;
		added->relaxed = relaxed;
	}
	adopt_cols_free(&want);
	adopt_cols_free(&have);
	return rc;
}

/* What the per-row steps of adopt_tables and adopt_indexes work on. */
struct adopt_pass {
	struct db *db, *ref;
	struct store_adopt_report *rep;
	bool apply;
	struct store_err *err;
};

/* Create the reference table of the current row if db lacks it, else extend db's. */
static int adopt_table_row(struct db_stmt *q, void *arg)
{
	struct adopt_pass *a = arg;
	const char *name = db_column_text(q, 0);
	const char *sql = db_column_text(q, 1);
	int rc = adopt_object_exists(a->db, name, a->err);

	if (rc == 1)
		return adopt_columns_add(a->db, a->ref, name, a->rep, a->apply, a->err);
	if (rc == 0 && (!a->apply || (rc = store_exec(a->db, sql, name, a->err)) == 0))
		adopt_list_push(&a->rep->tables_created, &a->rep->n_tables_created, name);
	return rc;
}

/* Return 1 if a unique index of `table` covers exactly columns a and b, else 0. */
static int adopt_has_unique_pair(
    struct db *db, const char *table, const char *a, const char *b, struct store_err *err)
{
	return store_row_exists(db, err,
	    "SELECT 1 FROM pragma_index_list(?1) il WHERE il.\"unique\" = 1 AND il.partial = 0 "
	    "AND (SELECT count(*) FROM pragma_index_info(il.name)) = 2 "
	    "AND (SELECT count(*) FROM pragma_index_info(il.name) ii "
	    "     WHERE ii.name IN (?2, ?3)) = 2",
	    (const char *const[]){ table, a, b, NULL }, "reading the indexes of %s", table);
}

/* Make (run_id, phase_id) unique in phases if nothing does yet: attempts and the
 * estimation events reference that pair. */
static int adopt_phase_key(
    struct db *db, struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	static const char name[] = "ux_phases_run_phase";
	int rc = adopt_has_unique_pair(db, "phases", "run_id", "phase_id", err);

	if (rc != 0)
		return rc < 0 ? rc : 0;
	if (apply)
		rc = store_exec(db,
		    "CREATE UNIQUE INDEX ux_phases_run_phase ON phases(run_id, phase_id)",
		    "making (run_id, phase_id) unique in phases", err);
	if (rc == 0)
		adopt_list_push(&rep->indexes_created, &rep->n_indexes_created, name);
	return rc;
}

/* Create (without `apply`, list) the reference index of the current row if its name is
 * free; one that fails is rolled back alone and reported. */
static int adopt_index_row(struct db_stmt *q, void *arg)
{
	struct adopt_pass *a = arg;
	struct store_adopt_report *rep = a->rep;
	const char *name = db_column_text(q, 0);
	const char *sql = db_column_text(q, 1);
	struct store_adopt_skip *skip;
	struct store_err why;
	int rc = adopt_object_exists(a->db, name, a->err);

	if (rc != 0 || !a->apply) {
		if (rc == 0)
			adopt_list_push(&rep->indexes_created, &rep->n_indexes_created, name);
		return rc < 0 ? rc : 0;
	}
	rc = store_exec(a->db, "SAVEPOINT adopt_index", "savepoint", a->err);
	if (rc != 0)
		return rc;
	if (store_exec(a->db, sql, name, &why) == 0) {
		adopt_list_push(&rep->indexes_created, &rep->n_indexes_created, name);
	} else {
		rc = store_exec(a->db, "ROLLBACK TO adopt_index", "rollback to savepoint", a->err);
		rep->indexes_skipped = xrealloc(rep->indexes_skipped,
		    (rep->n_indexes_skipped + 1) * sizeof *rep->indexes_skipped);
		skip = &rep->indexes_skipped[rep->n_indexes_skipped++];
		skip->name = xstrdup(name);
		skip->why = xstrdup(why.text);
	}
	if (rc == 0)
		rc = store_exec(a->db, "RELEASE adopt_index", "release savepoint", a->err);
	return rc;
}

/* Extend db's schema to the reference's inside the caller's transaction, or list what
 * that would do. */
int adopt_schema_extend(struct db *db, struct db *ref, struct store_adopt_report *rep, bool apply,
    struct store_err *err)
{
	/* Tables first (created whole or extended), then indexes, whose names must be free. */
	static const struct {
		const char *sql;
		int (*row)(struct db_stmt *q, void *arg);
	} passes[] = {
		{ "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
		  "'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
		    adopt_table_row },
		{ "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
		  "ORDER BY rowid",
		    adopt_index_row },
	};
	struct adopt_pass a = { db, ref, rep, apply, err };
	int rc = 0;

	for (size_t i = 0; i < ARRAY_SIZE(passes) && rc == 0; i++) {
		struct db_stmt *q = NULL;

		rc = db_prepare(ref, passes[i].sql, &q);
		rc = store_each_row(
		    ref, q, rc, passes[i].row, &a, err, "reading autopack's schema");
		/* Before the indexes: (run_id, phase_id) unique in phases if nothing makes it so. */
		if (rc == 0 && i == 0)
			rc = adopt_phase_key(db, rep, apply, err);
	}
	return rc;
}
