/* Extending a legacy schema to autopack's: the tables, columns and indexes it lacks,
 * taken from the current schema as the backend declares it (struct adopt_ref). */
#include "common/store/dialect.h"
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Append a heap copy of `s` to a string list. */
void adopt_list_push(char ***items, size_t *n, const char *s)
{
	*items = xrealloc(*items, (*n + 1) * sizeof **items);
	(*items)[(*n)++] = xstrdup(s);
}

/* Free a column list. */
void adopt_cols_free(struct adopt_cols *c)
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

/* Read the columns of `table` in db with the dialect's column query. */
int adopt_cols_read(struct db *db, const char *table, struct adopt_cols *c, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, db->dialect->column_info, &q);

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
		col->pk = (int)db_column_int64(q, 4);
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
const struct adopt_col *adopt_cols_find(const struct adopt_cols *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->items[i].name != NULL && strcasecmp(c->items[i].name, name) == 0)
			return &c->items[i];
	return NULL;
}

/* Return 1 if db's table has the column, 0 if not, STORE_EIO on error. */
int adopt_has_column(struct db *db, const char *table, const char *column, struct store_err *err)
{
	struct adopt_cols have;
	int rc = adopt_cols_read(db, table, &have, err);

	if (rc != 0)
		return rc;
	rc = adopt_cols_find(&have, column) != NULL;
	adopt_cols_free(&have);
	return rc;
}

/* Append a table to the reference, taking over its columns. */
void adopt_ref_add_table(
    struct adopt_ref *ref, const char *name, const char *sql, struct adopt_cols *cols)
{
	struct adopt_ref_table *t;

	ref->tables = xrealloc(ref->tables, (ref->n_tables + 1) * sizeof *ref->tables);
	t = &ref->tables[ref->n_tables++];
	t->name = xstrdup(name);
	t->sql = xstrdup(sql);
	t->cols = *cols;
	cols->items = NULL;
	cols->n = 0;
}

/* Append an index to the reference. */
void adopt_ref_add_index(struct adopt_ref *ref, const char *name, const char *sql)
{
	struct adopt_ref_index *x;

	ref->indexes = xrealloc(ref->indexes, (ref->n_indexes + 1) * sizeof *ref->indexes);
	x = &ref->indexes[ref->n_indexes++];
	x->name = xstrdup(name);
	x->sql = xstrdup(sql);
}

/* Return the reference table named `name`, or NULL. */
const struct adopt_ref_table *adopt_ref_find(const struct adopt_ref *ref, const char *name)
{
	for (size_t i = 0; i < ref->n_tables; i++)
		if (strcasecmp(ref->tables[i].name, name) == 0)
			return &ref->tables[i];
	return NULL;
}

/* Free the reference's tables and indexes. */
void adopt_ref_free(struct adopt_ref *ref)
{
	for (size_t i = 0; i < ref->n_tables; i++) {
		free(ref->tables[i].name);
		free(ref->tables[i].sql);
		adopt_cols_free(&ref->tables[i].cols);
	}
	for (size_t i = 0; i < ref->n_indexes; i++) {
		free(ref->indexes[i].name);
		free(ref->indexes[i].sql);
	}
	free(ref->tables);
	free(ref->indexes);
	memset(ref, 0, sizeof *ref);
}

/* Return 1 if an object (table, index, view, ...) named `name` exists, 0 if not. */
static int adopt_object_exists(struct db *db, const char *name, struct store_err *err)
{
	return store_row_exists(db, err, db->dialect->object_exists,
	    (const char *const[]){ name, NULL }, "reading the schema");
}

/* Add (or, without `apply`, list) the reference's columns that db's table lacks; NOT NULL
 * without a default: nullable. */
int adopt_columns_add(struct db *db, const struct adopt_ref_table *t,
    struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	struct adopt_cols have;
	int rc = adopt_cols_read(db, t->name, &have, err);

	for (size_t i = 0; rc == 0 && i < t->cols.n; i++) {
		const struct adopt_col *c = &t->cols.items[i];
		struct store_adopt_column *added;
		bool relaxed = c->notnull && c->dflt == NULL;
		char *decl, *sql;

		if (adopt_cols_find(&have, c->name) != NULL)
			continue;
		if (c->pk > 0) {
			rc = store_fail(err, STORE_ENOTDB,
			    "table %s has no column %s, its primary "
			    "key in autopack's schema; it cannot be added",
			    t->name, c->name);
			break;
		}
		decl = c->dflt != NULL ?
		    xasprintf("%s%s DEFAULT %s", c->type, c->notnull ? " NOT NULL" : "", c->dflt) :
		    xstrdup(c->type);
		sql = db_sqlf("ALTER TABLE \"%w\" ADD COLUMN \"%w\" %s", t->name, c->name, decl);
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
		added->table = xstrdup(t->name);
		added->column = xstrdup(c->name);
		added->decl = decl;
		added->relaxed = relaxed;
	}
	adopt_cols_free(&have);
	return rc;
}

/* Create the reference table `t` if db lacks it, else extend db's. */
static int adopt_table(struct db *db, const struct adopt_ref_table *t,
    struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	int rc = adopt_object_exists(db, t->name, err);

	if (rc == 1)
		return adopt_columns_add(db, t, rep, apply, err);
	if (rc == 0 && (!apply || (rc = store_exec(db, t->sql, t->name, err)) == 0))
		adopt_list_push(&rep->tables_created, &rep->n_tables_created, t->name);
	return rc;
}

/* Make (run_id, phase_id) unique in phases if nothing does yet: attempts and the
 * estimation events reference that pair. */
static int adopt_phase_key(
    struct db *db, struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	static const char name[] = "ux_phases_run_phase";
	int rc = store_row_exists(db, err, db->dialect->unique_pair_exists,
	    (const char *const[]){ "phases", "run_id", "phase_id", NULL },
	    "reading the indexes of phases");

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

/* Create (without `apply`, list) the reference index `x` if its name is free; one that
 * fails is rolled back alone and reported. */
static int adopt_index(struct db *db, const struct adopt_ref_index *x,
    struct store_adopt_report *rep, bool apply, struct store_err *err)
{
	struct store_adopt_skip *skip;
	struct store_err why;
	int rc = adopt_object_exists(db, x->name, err);

	if (rc != 0 || !apply) {
		if (rc == 0)
			adopt_list_push(&rep->indexes_created, &rep->n_indexes_created, x->name);
		return rc < 0 ? rc : 0;
	}
	rc = store_exec(db, "SAVEPOINT adopt_index", "savepoint", err);
	if (rc != 0)
		return rc;
	if (store_exec(db, x->sql, x->name, &why) == 0) {
		adopt_list_push(&rep->indexes_created, &rep->n_indexes_created, x->name);
	} else {
		rc = store_exec(db, "ROLLBACK TO adopt_index", "rollback to savepoint", err);
		rep->indexes_skipped = xrealloc(rep->indexes_skipped,
		    (rep->n_indexes_skipped + 1) * sizeof *rep->indexes_skipped);
		skip = &rep->indexes_skipped[rep->n_indexes_skipped++];
		skip->name = xstrdup(x->name);
		skip->why = xstrdup(why.text);
	}
	if (rc == 0)
		rc = store_exec(db, "RELEASE adopt_index", "release savepoint", err);
	return rc;
}

/* Extend db's schema to the reference's inside the caller's transaction, or list what
 * that would do: the phase key first (the tables created reference it), then the tables,
 * then the indexes, whose names must be free. */
int adopt_schema_extend(struct db *db, const struct adopt_ref *ref, struct store_adopt_report *rep,
    bool apply, struct store_err *err)
{
	int rc = adopt_phase_key(db, rep, apply, err);

	for (size_t i = 0; rc == 0 && i < ref->n_tables; i++)
		rc = adopt_table(db, &ref->tables[i], rep, apply, err);
	for (size_t i = 0; rc == 0 && i < ref->n_indexes; i++)
		rc = adopt_index(db, &ref->indexes[i], rep, apply, err);
	return rc;
}
