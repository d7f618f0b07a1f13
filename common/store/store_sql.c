/* The store's small SQL helpers, one home each: error messages, statements without
 * rows, single values, row existence, text column copies and text binds. */
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
		vsnprintf(err->text, sizeof err->text, fmt, ap);
		va_end(ap);
		err->sqlite_code = 0;
	}
	return code;
}

/* Run SQL without results; STORE_EIO with the SQLite message on failure. */
int store_exec(sqlite3 *db, const char *sql, const char *what, struct store_err *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		store_fail(err, STORE_EIO, "%s: %s", what, msg != NULL ? msg : sqlite3_errstr(rc));
		if (err != NULL)
			err->sqlite_code = rc & 0xff;
		sqlite3_free(msg);
		return STORE_EIO;
	}
	return 0;
}

/* Run a one-integer query; STORE_EIO on failure. */
int store_query_int(sqlite3 *db, const char *sql, int64_t *out, struct store_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	assert(out != NULL);
	if (rc == SQLITE_OK) {
		assert(sqlite3_column_count(st) == 1 && sqlite3_bind_parameter_count(st) == 0);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		store_fail(err, STORE_EIO, "%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : STORE_EIO;
}

/* Fill err with the formatted context, ": " and SQLite's message; return STORE_EIO. */
static int store_fail_sqlite(sqlite3 *db, struct store_err *err, const char *fmt, va_list ap)
{
	char what[sizeof err->text];

	if (err != NULL) {
		vsnprintf(what, sizeof what, fmt, ap);
		store_fail(err, STORE_EIO, "%s: %s", what, sqlite3_errmsg(db));
		err->sqlite_code = sqlite3_errcode(db) & 0xff;
	}
	return STORE_EIO;
}

/* Check a query with text parameters for a row; STORE_EIO on failure. */
int store_row_exists(sqlite3 *db, struct store_err *err, const char *sql, const char *const *args,
    const char *fmt, ...)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
	va_list ap;

	if (rc == SQLITE_OK) {
		for (int i = 0; args != NULL && args[i] != NULL; i++) {
			assert(i < sqlite3_bind_parameter_count(q));
			sqlite3_bind_text(q, i + 1, args[i], -1, SQLITE_STATIC);
		}
		rc = sqlite3_step(q);
	}
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		sqlite3_finalize(q);
		return rc == SQLITE_ROW;
	}
	va_start(ap, fmt);
	store_fail_sqlite(db, err, fmt, ap);
	va_end(ap);
	sqlite3_finalize(q);
	return STORE_EIO;
}

/* Check sqlite_master for a table; STORE_EIO on failure. */
int store_table_exists(sqlite3 *db, const char *name, struct store_err *err)
{
	return store_row_exists(db, err,
	    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
	    (const char *const[]){ name, NULL }, "reading the table list");
}

/* Step a statement to its end and finalize it; STORE_EIO on failure. */
int store_step_done(
    sqlite3 *db, sqlite3_stmt *q, int rc, struct store_err *err, const char *fmt, ...)
{
	va_list ap;

	assert(rc != SQLITE_OK || q != NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(q);
	if (rc != SQLITE_DONE) {
		va_start(ap, fmt);
		store_fail_sqlite(db, err, fmt, ap);
		va_end(ap);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : STORE_EIO;
}

/* Step a statement through its rows, handing each to `row`; STORE_EIO on failure. */
int store_each_row(sqlite3 *db, sqlite3_stmt *q, int rc, int (*row)(sqlite3_stmt *q, void *arg),
    void *arg, struct store_err *err, const char *fmt, ...)
{
	int ret = 0;
	va_list ap;

	assert(row != NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		ret = row(q, arg);
		rc = SQLITE_OK;
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		va_start(ap, fmt);
		ret = store_fail_sqlite(db, err, fmt, ap);
		va_end(ap);
	}
	sqlite3_finalize(q);
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
static int store_rows_row(sqlite3_stmt *q, void *arg)
{
	struct store_rows *r = arg;

	r->fill(q, store_rows_add(r));
	return 0;
}

/* Read every row into a row array; on failure it is emptied and STORE_EIO returned. */
int store_rows_read(sqlite3 *db, sqlite3_stmt *q, int rc, struct store_rows *r,
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
int store_rows_query(
    sqlite3 *db, const char *sql, struct store_rows *r, struct store_err *err, const char *fmt, ...)
{
	char what[sizeof err->text];
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return store_rows_read(db, q, rc, r, err, "%s", what);
}

/* Copy a text column to the heap; a NULL column gives a copy of if_null, or NULL. */
char *store_col_text(sqlite3_stmt *q, int i, const char *if_null)
{
	const unsigned char *t;

	assert(i >= 0 && i < sqlite3_column_count(q));
	t = sqlite3_column_text(q, i);
	if (t == NULL)
		return if_null != NULL ? xstrdup(if_null) : NULL;
	return xstrndup((const char *)t, (size_t)sqlite3_column_bytes(q, i));
}

/* Bind a text parameter (copied); NULL binds SQL NULL. */
void store_bind_text(sqlite3_stmt *q, int i, const char *s)
{
	assert(q != NULL && i >= 1);
	if (s != NULL)
		sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(q, i);
}
