/* The database access calls, dispatched to the connection's backend, and the SQL
 * formatter both backends share. */
#include "common/store/db.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Microseconds of this host's monotonic clock. */
static int64_t db_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void db_clock_set(struct db *db, int64_t server_us)
{
	db->clock_us = server_us;
	db->clock_mono_us = db_mono_us();
	db->clock_set = true;
}

int64_t db_clock_us(struct db *db)
{
	int64_t us;

	if (db == NULL || !db->clock_set)
		return clock_wall_us();
	/* Never back: a reading whose answer came back sooner than the last one's would put
	 * the times after it before those written already (an attempt ending before it
	 * began). */
	us = db->clock_us + (db_mono_us() - db->clock_mono_us);
	if (us < db->clock_last_us)
		us = db->clock_last_us;
	db->clock_last_us = us;
	return us;
}

void db_now(struct db *db, char buf[32])
{
	time_db(db_clock_us(db), buf);
}

/* Prepare a one-off statement. */
int db_prepare(struct db *db, const char *sql, struct db_stmt **out)
{
	return db->ops->prepare(db, sql, false, out);
}

/* Prepare a statement that is kept. */
int db_prepare_persistent(struct db *db, const char *sql, struct db_stmt **out)
{
	return db->ops->prepare(db, sql, true, out);
}

/* Run the statement or move to its next row. */
int db_step(struct db_stmt *s)
{
	return s->db->ops->step(s);
}

/* Make the statement ready to run again. */
void db_reset(struct db_stmt *s)
{
	if (s != NULL)
		s->db->ops->reset(s);
}

/* Set every parameter to NULL. */
void db_clear_bindings(struct db_stmt *s)
{
	s->db->ops->clear_bindings(s);
}

/* Release a statement; NULL is ignored. */
void db_finalize(struct db_stmt *s)
{
	if (s != NULL)
		s->db->ops->finalize(s);
}

/* Bind an integer. */
void db_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	assert(i >= 1);
	s->db->ops->bind_int64(s, i, v);
}

/* Bind a real. */
void db_bind_double(struct db_stmt *s, int i, double v)
{
	assert(i >= 1);
	s->db->ops->bind_double(s, i, v);
}

/* Bind a text (copied), or NULL. */
void db_bind_text(struct db_stmt *s, int i, const char *v)
{
	assert(i >= 1);
	s->db->ops->bind_text(s, i, v);
}

/* Bind a text the caller keeps until the step, or NULL. */
void db_bind_text_kept(struct db_stmt *s, int i, const char *v)
{
	assert(i >= 1);
	if (s->db->ops->bind_text_kept != NULL)
		s->db->ops->bind_text_kept(s, i, v);
	else
		s->db->ops->bind_text(s, i, v);
}

/* Bind NULL. */
void db_bind_null(struct db_stmt *s, int i)
{
	assert(i >= 1);
	s->db->ops->bind_null(s, i);
}

/* Count the parameters. */
int db_bind_count(struct db_stmt *s)
{
	return s->db->ops->bind_count(s);
}

/* Count the columns. */
int db_column_count(struct db_stmt *s)
{
	return s->db->ops->column_count(s);
}

/* Name a column. */
const char *db_column_name(struct db_stmt *s, int i)
{
	return s->db->ops->column_name(s, i);
}

/* Type a column's current value. */
enum db_type db_column_type(struct db_stmt *s, int i)
{
	return s->db->ops->column_type(s, i);
}

/* Read the whole of `t` as a decimal integer (white space around it and a sign allowed,
 * as SQLite's own integer literals); false when anything else is in it or it is out of
 * range. */
bool db_text_int64(const char *t, int64_t *out)
{
	uint64_t v = 0, limit = (uint64_t)INT64_MAX;
	bool neg = false, digits = false;

	while (*t == ' ' || (*t >= '\t' && *t <= '\r'))
		t++;
	if (*t == '+' || *t == '-')
		neg = *t++ == '-';
	if (neg)
		limit++;
	for (; *t >= '0' && *t <= '9'; t++, digits = true) {
		if (v > (limit - (uint64_t)(*t - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*t - '0');
	}
	while (*t == ' ' || (*t >= '\t' && *t <= '\r'))
		t++;
	if (!digits || *t != '\0')
		return false;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

/* Read an integer column: a text only when it is wholly an integer, else 0. */
int64_t db_column_int64(struct db_stmt *s, int i)
{
	int64_t v;

	return db_column_int64_ok(s, i, &v) ? v : 0;
}

/* Read an integer column, telling a text that is no integer apart. */
bool db_column_int64_ok(struct db_stmt *s, int i, int64_t *out)
{
	const char *t;

	if (s->db->ops->column_type(s, i) != DB_TEXT) {
		*out = s->db->ops->column_int64(s, i);
		return true;
	}
	t = s->db->ops->column_text(s, i);
	if (t != NULL && db_text_int64(t, out))
		return true;
	*out = 0;
	return false;
}

/* Read a real column. */
double db_column_double(struct db_stmt *s, int i)
{
	return s->db->ops->column_double(s, i);
}

/* Read a text column; NULL for SQL NULL. */
const char *db_column_text(struct db_stmt *s, int i)
{
	return s->db->ops->column_text(s, i);
}

/* Read a text column with its length. */
const char *db_column_textn(struct db_stmt *s, int i, size_t *len)
{
	const char *t = s->db->ops->column_text(s, i);

	*len = t == NULL                     ? 0 :
	    s->db->ops->column_bytes != NULL ? s->db->ops->column_bytes(s, i) :
	                                       strlen(t);
	return t;
}

/* Ask the backend, when it can tell. */
bool db_column_is_blob(struct db_stmt *s, int i)
{
	return s->db->ops->column_is_blob != NULL && s->db->ops->column_is_blob(s, i);
}

/* Run SQL without rows. */
int db_exec(struct db *db, const char *sql)
{
	return db->ops->exec(db, sql);
}

/* Begin a transaction. */
int db_begin(struct db *db, enum db_tx tx)
{
	assert(!db->ops->in_transaction(db));
	if (tx == DB_TX_WRITE)
		db->writes_begun++;
	return db->ops->begin(db, tx);
}

/* Commit the open transaction. */
int db_commit(struct db *db)
{
	if (db->ops->commit != NULL)
		return db->ops->commit(db);
	return db->ops->exec(db, "COMMIT");
}

/* Roll back the open transaction, if any. */
void db_rollback(struct db *db)
{
	if (db->ops->in_transaction(db))
		db->ops->exec(db, "ROLLBACK");
}

/* Report whether a transaction is open. */
bool db_in_transaction(struct db *db)
{
	return db->ops->in_transaction(db);
}

/* Count the rows the last write changed. */
int64_t db_changes(struct db *db)
{
	return db->ops->changes(db);
}

/* The row id the last INSERT gave its row, or -1. */
int64_t db_last_insert_id(struct db *db)
{
	return db->ops->last_insert_id != NULL ? db->ops->last_insert_id(db) : -1;
}

/* The last error's message. */
const char *db_errmsg(struct db *db)
{
	return db->ops->errmsg(db);
}

/* The last error's kind. */
enum db_fault db_fault(struct db *db)
{
	return db->ops->fault(db);
}

/* Close a connection; NULL is ignored. */
void db_close(struct db *db)
{
	if (db != NULL)
		db->ops->close(db);
}

/* Append s, doubling each `q` inside it. */
static void db_sqlf_escape(struct strbuf *b, const char *s, char q)
{
	for (; *s != '\0'; s++) {
		if (*s == q)
			strbuf_put(b, &q, 1);
		strbuf_put(b, s, 1);
	}
}

/* Format SQL with %w (inside an identifier's quotes) and %Q (a quoted literal) besides
 * %s %d %lld %%. */
char *db_sqlf(const char *fmt, ...)
{
	struct strbuf b = { 0 };
	const char *s;
	va_list ap;

	va_start(ap, fmt);
	for (const char *p = fmt; *p != '\0'; p++) {
		if (*p != '%') {
			strbuf_put(&b, p, 1);
			continue;
		}
		p++;
		switch (*p) {
		case '%': strbuf_puts(&b, "%"); break;
		case 's': strbuf_puts(&b, va_arg(ap, const char *)); break;
		case 'd': strbuf_printf(&b, "%d", va_arg(ap, int)); break;
		case 'w': db_sqlf_escape(&b, va_arg(ap, const char *), '"'); break;
		case 'Q':
			s = va_arg(ap, const char *);
			if (s == NULL)
				strbuf_puts(&b, "NULL");
			else {
				strbuf_puts(&b, "'");
				db_sqlf_escape(&b, s, '\'');
				strbuf_puts(&b, "'");
			}
			break;
		case 'l':
			assert(p[1] == 'l' && p[2] == 'd');
			p += 2;
			strbuf_printf(&b, "%lld", va_arg(ap, long long));
			break;
		default: assert(!"db_sqlf: unsupported conversion");
		}
	}
	va_end(ap);
	return b.s != NULL ? b.s : xstrdup("");
}
