/* The store's small SQL helpers, one home each: error messages, statements without
 * rows, single values, row existence, text column copies and text binds. */
#include "common/store/dialect.h"
#include "common/store/pg/store_pg.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Format an error message and return its code. */
int store_fail(struct store_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	assert(code != 0);
	if (err != NULL) {
		va_start(ap, fmt);
		str_velide(err->text, sizeof err->text, fmt, ap);
		va_end(ap);
		err->fault = DB_FAULT_NONE;
	}
	return code;
}

/* Report the database's last error after `what`, with its kind; returns STORE_EIO. */
static int store_fail_db(struct db *db, const char *what, struct store_err *err)
{
	store_fail(err, STORE_EIO, "%s: %s", what, db_errmsg(db));
	if (err != NULL)
		err->fault = db_fault(db);
	return STORE_EIO;
}

/* Run SQL without results; STORE_EIO with the database's message on failure. */
int store_exec(struct db *db, const char *sql, const char *what, struct store_err *err)
{
	return db_exec(db, sql) == DB_OK ? 0 : store_fail_db(db, what, err);
}

/* Begin an offline command's write transaction; STORE_EIO on failure, STORE_EBUSY
 * when another connection held a write transaction past the busy timeout: the message
 * then says so and that nothing was written. */
int store_begin(struct db *db, const char *what, struct store_err *err)
{
	size_t n;

	if (db_begin(db, DB_TX_WRITE) == DB_OK)
		return 0;
	store_fail_db(db, what, err);
	if (db_fault(db) != DB_FAULT_BUSY)
		return STORE_EIO;
	if (err != NULL && (n = strlen(err->text)) < sizeof err->text)
		snprintf(err->text + n, sizeof err->text - n,
		    " (another program holds a write transaction on the database, and it did not "
		    "end within %d s); nothing was written: give the command again once it has "
		    "ended",
		    STORE_BUSY_TIMEOUT_MS / 1000);
	return STORE_EBUSY;
}

/* Commit the open transaction; STORE_EIO on failure. A COMMIT whose connection was lost
 * before its answer came (a server restarted, a network cut, the session ended) may have
 * committed: on PostgreSQL it is settled once connected again (store_pg_commit_settle):
 * committed, it returns 0 and says so on stderr; not committed, the message says nothing
 * was written; else (and on SQLite) the message says the server may have committed it,
 * and that the database is to be looked at before the command is given again. */
int store_commit(struct db *db, const char *what, struct store_err *err)
{
	struct store_pg_doubt m = { .xid = "" };
	enum store_pg_settled settled = STORE_PG_UNKNOWN;
	char why[300] = "";
	size_t n;

	/* A mark that failed leaves the transaction failed, which COMMIT would roll back
	 * without an error: nothing is written, and the command says so. */
	if (db->backend == DB_PG && store_pg_commit_mark(db, &m) != 0) {
		store_fail_db(db, what, err);
		db_rollback(db);
		if (err != NULL && (n = strlen(err->text)) < sizeof err->text)
			snprintf(err->text + n, sizeof err->text - n, "; nothing was written");
		return STORE_EIO;
	}
	if (db_commit(db) == DB_OK)
		return 0;
	store_fail_db(db, what, err);
	if (err == NULL || err->fault != DB_FAULT_LOST)
		return STORE_EIO;
	if (db->backend == DB_PG)
		settled = store_pg_commit_settle(db, &m, why, sizeof why);
	if (settled == STORE_PG_COMMITTED) {
		fprintf(stderr,
		    "autopack: %s: the connection was lost with the COMMIT on its way; connected"
		    " again, %s: it is written, nothing more to do\n",
		    what, why);
		return 0;
	}
	if ((n = strlen(err->text)) >= sizeof err->text)
		return STORE_EIO;
	if (settled == STORE_PG_NOT_COMMITTED)
		snprintf(err->text + n, sizeof err->text - n,
		    "; the connection was lost with the COMMIT on its way; %s%s: nothing of it was"
		    " written, and the command can be given again",
		    m.none ? "" : "connected again, ", why);
	else
		snprintf(err->text + n, sizeof err->text - n,
		    "; the connection was lost with the COMMIT on its way, so the server may have"
		    " committed it or not%s%s%s: look at the database (autopack-ctl db check)"
		    " before giving the command again",
		    why[0] != '\0' ? " (" : "", why, why[0] != '\0' ? ")" : "");
	return STORE_EIO;
}

/* Run a one-integer query; STORE_EIO on failure. */
int store_query_int(struct db *db, const char *sql, int64_t *out, struct store_err *err)
{
	struct db_stmt *st = NULL;
	int rc = db_prepare(db, sql, &st);

	assert(out != NULL);
	if (rc == DB_OK) {
		assert(db_bind_count(st) == 0);
		rc = db_step(st);
		if (rc == DB_ROW) {
			assert(db_column_count(st) == 1);
			*out = db_column_int64(st, 0);
			rc = DB_OK;
		}
	}
	if (rc != DB_OK)
		store_fail(err, STORE_EIO, "%s: %s", sql, db_errmsg(db));
	db_finalize(st);
	return rc == DB_OK ? 0 : STORE_EIO;
}

/* Fill err with the formatted context, ": " and SQLite's message; return STORE_EIO. */
static int store_fail_sqlite(struct db *db, struct store_err *err, const char *fmt, va_list ap)
{
	char what[sizeof err->text] = "";

	if (err != NULL)
		vsnprintf(what, sizeof what, fmt, ap);
	return store_fail_db(db, what, err);
}

/* Check a query with text parameters for a row; STORE_EIO on failure. */
int store_row_exists(struct db *db, struct store_err *err, const char *sql, const char *const *args,
    const char *fmt, ...)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, sql, &q);
	va_list ap;

	if (rc == DB_OK) {
		for (int i = 0; args != NULL && args[i] != NULL; i++) {
			assert(i < db_bind_count(q));
			db_bind_text(q, i + 1, args[i]);
		}
		rc = db_step(q);
	}
	if (rc == DB_ROW || rc == DB_DONE) {
		db_finalize(q);
		return rc == DB_ROW;
	}
	va_start(ap, fmt);
	store_fail_sqlite(db, err, fmt, ap);
	va_end(ap);
	db_finalize(q);
	return STORE_EIO;
}

/* Check sqlite_master for a table; STORE_EIO on failure. */
int store_table_exists(struct db *db, const char *name, struct store_err *err)
{
	return store_row_exists(db, err, db->dialect->table_exists,
	    (const char *const[]){ name, NULL }, "reading the table list");
}

/* Look the name up among the views; STORE_EIO on failure. */
int store_view_exists(struct db *db, const char *name, struct store_err *err)
{
	return store_row_exists(db, err, db->dialect->view_exists,
	    (const char *const[]){ name, NULL }, "reading the view list");
}

/* Step a statement to its end and finalize it; STORE_EIO on failure. */
int store_step_done(
    struct db *db, struct db_stmt *q, int rc, struct store_err *err, const char *fmt, ...)
{
	va_list ap;

	assert(rc != DB_OK || q != NULL);
	if (rc == DB_OK)
		rc = db_step(q);
	if (rc != DB_DONE) {
		va_start(ap, fmt);
		store_fail_sqlite(db, err, fmt, ap);
		va_end(ap);
	}
	db_finalize(q);
	return rc == DB_DONE ? 0 : STORE_EIO;
}

/* Step a statement to its one row, read the id in column 0, finalize it; STORE_EIO on
 * failure. */
int store_step_id(struct db *db, struct db_stmt *q, int rc, int64_t *id, struct store_err *err,
    const char *fmt, ...)
{
	va_list ap;

	assert(rc != DB_OK || q != NULL);
	if (rc == DB_OK)
		rc = db_step(q);
	if (rc == DB_ROW) {
		*id = db_column_int64(q, 0);
		rc = db_step(q);
	}
	if (rc != DB_DONE) {
		va_start(ap, fmt);
		store_fail_sqlite(db, err, fmt, ap);
		va_end(ap);
	}
	db_finalize(q);
	return rc == DB_DONE ? 0 : STORE_EIO;
}

/* Step a statement through its rows, handing each to `row`; STORE_EIO on failure. */
int store_each_row(struct db *db, struct db_stmt *q, int rc,
    int (*row)(struct db_stmt *q, void *arg), void *arg, struct store_err *err, const char *fmt,
    ...)
{
	int ret = 0;
	va_list ap;

	assert(row != NULL);
	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		ret = row(q, arg);
		rc = DB_OK;
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != DB_DONE) {
		va_start(ap, fmt);
		ret = store_fail_sqlite(db, err, fmt, ap);
		va_end(ap);
	}
	db_finalize(q);
	return ret;
}

/* Append a zeroed row to a row array; the array grows as needed. */
void *store_rows_add(struct store_rows *r)
{
	char *item;

	assert(r->size > 0);
	r->v = xrealloc(r->v, (r->n + 1) * r->size);
	item = (char *)r->v + r->n++ * r->size;
	memset(item, 0, r->size);
	return item;
}

/* The store_each_row callback of store_rows_read. */
static int store_rows_row(struct db_stmt *q, void *arg)
{
	struct store_rows *r = arg;

	r->fill(q, store_rows_add(r));
	return 0;
}

/* Read every row into a row array; on failure it is emptied and STORE_EIO returned. */
int store_rows_read(struct db *db, struct db_stmt *q, int rc, struct store_rows *r,
    struct store_err *err, const char *fmt, ...)
{
	char what[sizeof err->text];
	va_list ap;

	assert(r->fill != NULL && r->item_free != NULL && r->n == 0);
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	rc = store_each_row(db, q, rc, store_rows_row, r, err, "%s", what);
	if (rc != 0) {
		store_rows_free(r->v, r->n, r->size, r->item_free);
		r->v = NULL;
		r->n = 0;
	}
	return rc;
}

/* Free an array of n items of `size` bytes, each released with item_free first. */
void store_rows_free(void *v, size_t n, size_t size, void (*item_free)(void *item))
{
	for (size_t i = 0; i < n; i++)
		item_free((char *)v + i * size);
	free(v);
}

/* Run a query without parameters and read every row into a row array. */
int store_rows_query(struct db *db, const char *sql, struct store_rows *r, struct store_err *err,
    const char *fmt, ...)
{
	char what[sizeof err->text];
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, sql, &q);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return store_rows_read(db, q, rc, r, err, "%s", what);
}

/* Copy a text column to the heap; a NULL column gives a copy of if_null, or NULL. */
char *store_col_text(struct db_stmt *q, int i, const char *if_null)
{
	const char *t;

	assert(i >= 0 && i < db_column_count(q));
	t = db_column_text(q, i);
	if (t == NULL)
		return if_null != NULL ? xstrdup(if_null) : NULL;
	return xstrdup(t);
}

/* Copy a text column whole, with its length. */
char *store_col_textn(struct db_stmt *q, int i, size_t *len)
{
	const char *t;
	char *c;

	assert(i >= 0 && i < db_column_count(q));
	t = db_column_textn(q, i, len);
	if (t == NULL)
		return NULL;
	c = xmalloc(*len + 1);
	memcpy(c, t, *len);
	c[*len] = '\0';
	return c;
}

/* Bind a text parameter (copied); NULL binds SQL NULL. */
void store_bind_text(struct db_stmt *q, int i, const char *s)
{
	assert(q != NULL && i >= 1);
	if (s != NULL)
		db_bind_text(q, i, s);
	else
		db_bind_null(q, i);
}
