/* The PostgreSQL backend: statements rewritten from ?N to $N placeholders, run with
 * PQexecParams (one-off) or PQprepare + PQexecPrepared (persistent, prepared again after a
 * reconnect), parameters and results as text; booleans read as 0/1 and timestamps in the
 * store's one text format, so store code reads the same values from either backend. */
#include "common/store/pg/db_pg.h"
#include "common/store/pg/db_pg_wait.h"
#include "common/store/pg/dialect_pg.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type oids of pg_type.h (not installed with libpq). */
#define PG_OID_BOOL 16
#define PG_OID_INT8 20
#define PG_OID_INT2 21
#define PG_OID_INT4 23
#define PG_OID_TEXT 25
#define PG_OID_OID 26
#define PG_OID_FLOAT4 700
#define PG_OID_FLOAT8 701
#define PG_OID_TIMESTAMP 1114
#define PG_OID_TIMESTAMPTZ 1184
#define PG_OID_NUMERIC 1700

/* The advisory lock an offline command's write transaction holds: one autopack writer
 * of that kind at a time, as SQLite's BEGIN IMMEDIATE gives. */
#define PG_WRITE_LOCK_KEY 0x4150574cLL

struct db_pg {
	struct db base;
	PGconn *c;
	unsigned gen;        /* bumped at each reconnect: server-side statements are gone */
	bool connecting;     /* a connection begun by db_pg_reset_start is being made */
	unsigned next_name;  /* names of server-side statements */
	int64_t changes;     /* rows changed by the last command */
	enum db_fault fault; /* of the last failure */
	char err[1024];      /* message of the last failure */
	char *path;          /* the search_path its first connection was cut to, or NULL */
};

struct db_pg_stmt {
	struct db_stmt base;
	char *sql; /* with $N placeholders */
	int nparams;
	char **vals; /* heap text of each parameter, NULL for NULL */
	Oid *types;  /* 0: inferred by the server; text for a number the SQL skips */
	bool persistent;
	char name[24];    /* server-side name of a persistent statement, "" until prepared */
	unsigned gen;     /* the connection generation it was prepared in */
	PGresult *res;    /* rows of the current run, NULL before it */
	int row;          /* current row of res */
	bool done;        /* the run reached its end: the next step runs it again */
	char (*text)[32]; /* a column's value rewritten into the store's format */
};

/* The connection of the backend. */
static struct db_pg *P(struct db *db)
{
	return container_of(db, struct db_pg, base);
}

/* The statement of the backend. */
static struct db_pg_stmt *S(struct db_stmt *s)
{
	return container_of(s, struct db_pg_stmt, base);
}

/* Discard libpq's notices (NOTICE, WARNING): the store reports only errors. */
static void pg_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Classify a failure by its SQLSTATE and the connection's state. */
static enum db_fault pg_fault_of(PGconn *c, const char *state)
{
	if (PQstatus(c) != CONNECTION_OK)
		return DB_FAULT_LOST;
	if (state == NULL)
		return DB_FAULT_OTHER;
	/* Class 23 (integrity), 22 (data: a value the column cannot hold) and a trigger's
	 * RAISE: the write is at fault. */
	if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0 ||
	    strcmp(state, "P0001") == 0)
		return DB_FAULT_CONSTRAINT;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0)
		return DB_FAULT_BUSY;
	if (strcmp(state, "53100") == 0)
		return DB_FAULT_FULL;
	/* A write in a read-only transaction: default_transaction_read_only, or a standby. */
	if (strcmp(state, "25006") == 0)
		return DB_FAULT_READONLY;
	/* An undefined table, column or object, or no key matching ON CONFLICT's columns. */
	if (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0 ||
	    strcmp(state, "42704") == 0 || strcmp(state, "42P10") == 0)
		return DB_FAULT_SCHEMA;
	if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)
		return DB_FAULT_LOST;
	return DB_FAULT_OTHER;
}

/* Record the failure of `res` (or of the connection when res is NULL): a constraint
 * failure is worded as SQLite words it, naming the table and the column or constraint. */
static void pg_fail(struct db_pg *d, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *prim = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *table = res != NULL ? PQresultErrorField(res, PG_DIAG_TABLE_NAME) : NULL;
	const char *col = res != NULL ? PQresultErrorField(res, PG_DIAG_COLUMN_NAME) : NULL;
	const char *cons = res != NULL ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
	const char *kind = NULL;
	size_t n;

	d->fault = pg_fault_of(d->c, state);
	if (state != NULL && strcmp(state, "23502") == 0)
		kind = "NOT NULL";
	else if (state != NULL && strcmp(state, "23505") == 0)
		kind = "UNIQUE";
	else if (state != NULL && strcmp(state, "23503") == 0)
		kind = "FOREIGN KEY";
	else if (state != NULL && strcmp(state, "23514") == 0)
		kind = "CHECK";
	if (kind != NULL && table != NULL)
		snprintf(d->err, sizeof d->err, "%s constraint failed: %s.%s (%s)", kind, table,
		    col != NULL      ? col :
		        cons != NULL ? cons :
		                       "?",
		    prim != NULL ? prim : "");
	else if (prim != NULL)
		snprintf(d->err, sizeof d->err, "%s", prim);
	else
		snprintf(d->err, sizeof d->err, "%s", PQerrorMessage(d->c));
	n = strlen(d->err);
	while (n > 0 && isspace((unsigned char)d->err[n - 1]))
		d->err[--n] = '\0';
	if (n == 0)
		snprintf(d->err, sizeof d->err, "PostgreSQL error%s%s", state ? " " : "",
		    state ? state : "");
	/* A lock given up after lock_timeout: whose it was, when the wait was reported. */
	n = strlen(d->err);
	if (state != NULL && strcmp(state, "55P03") == 0 && db_pg_wait_reported()[0] != '\0')
		snprintf(d->err + n, sizeof d->err - n, " (%s)", db_pg_wait_reported());
}

/* Whether the connection is not up (being made again, or lost), recording the failure
 * of a statement that cannot run then: nothing is asked of libpq, which on a connection
 * being made would read the server's answers to the connection's start-up, and wait for
 * them. */
static bool pg_down(struct db_pg *d)
{
	if (PQstatus(d->c) == CONNECTION_OK)
		return false;
	d->fault = DB_FAULT_LOST;
	snprintf(d->err, sizeof d->err, "no connection to the server%s",
	    d->connecting ? " (being made again)" : "");
	return true;
}

/* Rewrite ?NNN and ? placeholders to $N outside literals, identifiers and comments; the
 * number of parameters goes to *nparams and the numbers used to `used` (1 << n). */
static char *pg_rewrite(const char *sql, int *nparams, uint64_t *used)
{
	struct strbuf b = { 0 };
	int max = 0;

	*used = 0;
	for (const char *p = sql; *p != '\0';) {
		if (*p == '\'' || *p == '"') {
			const char *q = p + 1;
			while (*q != '\0' && !(*q == *p && q[1] != *p))
				q += *q == *p ? 2 : 1;
			if (*q != '\0')
				q++;
			strbuf_put(&b, p, (size_t)(q - p));
			p = q;
		} else if (p[0] == '-' && p[1] == '-') {
			const char *q = strchr(p, '\n');
			q = q != NULL ? q : p + strlen(p);
			strbuf_put(&b, p, (size_t)(q - p));
			p = q;
		} else if (*p == '?') {
			int n = 0;
			p++;
			if (isdigit((unsigned char)*p))
				while (isdigit((unsigned char)*p))
					n = n * 10 + (*p++ - '0');
			else
				n = max + 1;
			if (n > max)
				max = n;
			if (n < 64)
				*used |= (uint64_t)1 << n;
			strbuf_printf(&b, "$%d", n);
		} else {
			strbuf_put(&b, p++, 1);
		}
	}
	*nparams = max;
	return b.s != NULL ? b.s : xstrdup("");
}

/* Keep the SQL; nothing reaches the server until the first step. */
static int pg_prepare(struct db *db, const char *sql, bool persistent, struct db_stmt **out)
{
	struct db_pg_stmt *s = xcalloc(1, sizeof *s);
	uint64_t used;

	s->base.db = db;
	s->sql = pg_rewrite(sql, &s->nparams, &used);
	s->vals = xcalloc((size_t)s->nparams + 1, sizeof *s->vals);
	s->types = xcalloc((size_t)s->nparams + 1, sizeof *s->types);
	/* A number the SQL skips has no type to infer: give it one (SQLite ignores it). */
	for (int i = 1; i <= s->nparams && i < 64; i++)
		if (!(used & ((uint64_t)1 << i)))
			s->types[i - 1] = PG_OID_TEXT;
	s->persistent = persistent;
	*out = &s->base;
	return DB_OK;
}

/* Drop the current run's rows. */
static void pg_stmt_clear(struct db_pg_stmt *s)
{
	PQclear(s->res);
	s->res = NULL;
	free(s->text);
	s->text = NULL;
	s->row = 0;
	s->done = false;
}

/* Run the statement on the server: its result, or NULL with the failure recorded. */
static PGresult *pg_run(struct db_pg *d, struct db_pg_stmt *s)
{
	const char *const *vals = (const char *const *)s->vals;
	PGresult *r;

	db_pg_wait_arm(d->c);
	if (!s->persistent)
		return db_pg_wait(d->c, d->path,
		    PQsendQueryParams(d->c, s->sql, s->nparams, s->types, vals, NULL, NULL, 0),
		    s->sql);
	if (s->name[0] == '\0' || s->gen != d->gen) {
		snprintf(s->name, sizeof s->name, "autopack_%u", ++d->next_name);
		r = db_pg_wait(d->c, d->path,
		    PQsendPrepare(d->c, s->name, s->sql, s->nparams, s->types), s->sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			s->name[0] = '\0';
			return r;
		}
		PQclear(r);
		s->gen = d->gen;
		db_pg_wait_arm(d->c);
	}
	return db_pg_wait(d->c, d->path,
	    PQsendQueryPrepared(d->c, s->name, s->nparams, vals, NULL, NULL, 0), s->sql);
}

/* Whether `res` failed as a prepared statement whose columns' types changed since it was
 * prepared (feature_not_supported: "cached plan must not change result type"): the server
 * refuses every later run of it, and of any other statement prepared before the change
 * that reads such a column, until it is prepared again. */
static bool pg_plan_stale(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state != NULL && strcmp(state, "0A000") == 0;
}

/* Run the statement at its first step, then move through its rows. */
static int pg_step(struct db_stmt *st)
{
	struct db_pg_stmt *s = S(st);
	struct db_pg *d = P(st->db);
	ExecStatusType rs;
	const char *n;

	if (s->done)
		pg_stmt_clear(s);
	if (s->res != NULL) {
		if (++s->row < PQntuples(s->res))
			return DB_ROW;
		s->done = true;
		return DB_DONE;
	}
	if (pg_down(d))
		return DB_ERROR;
	s->res = pg_run(d, s);
	rs = PQresultStatus(s->res);
	if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
		pg_fail(d, s->res);
		if (s->persistent && pg_plan_stale(s->res)) {
			size_t len = strlen(d->err);

			/* Every statement is prepared again at its next run: the failed one's
			 * transaction is retried by its caller, as after any failure. */
			d->gen++;
			snprintf(d->err + len, sizeof d->err - len,
			    " (a column it reads had its type altered, by ALTER TABLE, since the"
			    " statement was prepared: it is prepared again at its next run)");
		}
		pg_stmt_clear(s);
		return DB_ERROR;
	}
	d->fault = DB_FAULT_NONE;
	n = PQcmdTuples(s->res);
	if (n[0] != '\0')
		d->changes = strtoll(n, NULL, 10);
	if (PQntuples(s->res) > 0) {
		s->text = xcalloc((size_t)PQnfields(s->res) + 1, sizeof *s->text);
		return DB_ROW;
	}
	s->done = true;
	return DB_DONE;
}

/* Forget the current run; the bindings stay. */
static void pg_reset(struct db_stmt *s)
{
	pg_stmt_clear(S(s));
}

/* Set every parameter to NULL. */
static void pg_clear_bindings(struct db_stmt *st)
{
	struct db_pg_stmt *s = S(st);

	for (int i = 0; i < s->nparams; i++) {
		free(s->vals[i]);
		s->vals[i] = NULL;
	}
}

/* Release the statement, and its server-side copy when that can be dropped now. */
static void pg_finalize(struct db_stmt *st)
{
	struct db_pg_stmt *s = S(st);
	struct db_pg *d = P(st->db);

	if (s->name[0] != '\0' && s->gen == d->gen && PQstatus(d->c) == CONNECTION_OK &&
	    PQtransactionStatus(d->c) == PQTRANS_IDLE) {
		char *sql = xasprintf("DEALLOCATE %s", s->name);
		PQclear(PQexec(d->c, sql));
		free(sql);
	}
	pg_stmt_clear(s);
	pg_clear_bindings(st);
	free(s->vals);
	free(s->types);
	free(s->sql);
	free(s);
}

/* Store parameter i's text (taking v); an index the statement lacks is ignored. */
static void pg_bind(struct db_stmt *st, int i, char *v)
{
	struct db_pg_stmt *s = S(st);

	if (i < 1 || i > s->nparams) { /* as SQLite: a parameter the SQL lacks is ignored */
		free(v);
		return;
	}
	free(s->vals[i - 1]);
	s->vals[i - 1] = v;
}

/* Bind an integer as its decimal text. */
static void pg_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	pg_bind(s, i, xasprintf("%lld", (long long)v));
}

/* Bind a real as text that reads back to the same value. */
static void pg_bind_double(struct db_stmt *s, int i, double v)
{
	pg_bind(s, i, xasprintf("%.17g", v));
}

/* Bind a copy of a text; NULL binds NULL. */
static void pg_bind_text(struct db_stmt *s, int i, const char *v)
{
	pg_bind(s, i, v != NULL ? xstrdup(v) : NULL);
}

/* Bind NULL. */
static void pg_bind_null(struct db_stmt *s, int i)
{
	pg_bind(s, i, NULL);
}

/* Count the parameters. */
static int pg_bind_count(struct db_stmt *s)
{
	return S(s)->nparams;
}

/* Count the columns of the current run (0 before it). */
static int pg_column_count(struct db_stmt *s)
{
	return S(s)->res != NULL ? PQnfields(S(s)->res) : 0;
}

/* Name a column of the current run. */
static const char *pg_column_name(struct db_stmt *s, int i)
{
	return S(s)->res != NULL ? PQfname(S(s)->res, i) : NULL;
}

/* Whether column i of the current row is NULL (or there is no current row). */
static bool pg_isnull(struct db_pg_stmt *s, int i)
{
	return s->res == NULL || s->done || s->row >= PQntuples(s->res) ||
	    PQgetisnull(s->res, s->row, i);
}

/* Type a column's value by its type oid. */
static enum db_type pg_column_type(struct db_stmt *st, int i)
{
	struct db_pg_stmt *s = S(st);

	if (pg_isnull(s, i))
		return DB_NULL;
	switch (PQftype(s->res, i)) {
	case PG_OID_BOOL:
	case PG_OID_INT2:
	case PG_OID_INT4:
	case PG_OID_INT8:
	case PG_OID_OID: return DB_INTEGER;
	case PG_OID_FLOAT4:
	case PG_OID_FLOAT8:
	case PG_OID_NUMERIC: return DB_FLOAT;
	default: return DB_TEXT;
	}
}

/* Write timestamp text `in` (ISO, 0 to 6 fractional digits, maybe an offset) as
 * "YYYY-MM-DD HH:MM:SS.ffffff" into out; anything else is copied. */
static void pg_timestamp_text(const char *in, char out[32])
{
	size_t n = strspn(in, "0123456789-: ");
	size_t frac = 0;

	if (n != 19) {
		strlcpy_ap(out, in, 32);
		return;
	}
	memcpy(out, in, 19);
	out[19] = '.';
	if (in[19] == '.')
		for (frac = 0; frac < 6 && isdigit((unsigned char)in[20 + frac]); frac++)
			out[20 + frac] = in[20 + frac];
	for (; frac < 6; frac++)
		out[20 + frac] = '0';
	out[26] = '\0';
}

/* Read a column as text: NULL for SQL NULL, a boolean as "1" or "0", a timestamp in the
 * store's format. */
static const char *pg_column_text(struct db_stmt *st, int i)
{
	struct db_pg_stmt *s = S(st);
	const char *v;

	if (pg_isnull(s, i))
		return NULL;
	v = PQgetvalue(s->res, s->row, i);
	switch (PQftype(s->res, i)) {
	case PG_OID_BOOL: return v[0] == 't' ? "1" : "0";
	case PG_OID_TIMESTAMP:
	case PG_OID_TIMESTAMPTZ: pg_timestamp_text(v, s->text[i]); return s->text[i];
	default: return v;
	}
}

/* Read a column as an integer: a boolean is 0 or 1, NULL is 0, a real is truncated (a
 * text is read by db_column_int64 itself, whole or not at all). */
static int64_t pg_column_int64(struct db_stmt *st, int i)
{
	struct db_pg_stmt *s = S(st);
	const char *v;

	if (pg_isnull(s, i))
		return 0;
	v = PQgetvalue(s->res, s->row, i);
	if (PQftype(s->res, i) == PG_OID_BOOL)
		return v[0] == 't';
	if (PQftype(s->res, i) == PG_OID_FLOAT4 || PQftype(s->res, i) == PG_OID_FLOAT8 ||
	    PQftype(s->res, i) == PG_OID_NUMERIC)
		return (int64_t)strtod(v, NULL);
	return strtoll(v, NULL, 10);
}

/* Read a column as a real; NULL is 0. */
static double pg_column_double(struct db_stmt *st, int i)
{
	struct db_pg_stmt *s = S(st);
	const char *v;

	if (pg_isnull(s, i))
		return 0;
	v = PQgetvalue(s->res, s->row, i);
	if (PQftype(s->res, i) == PG_OID_BOOL)
		return v[0] == 't';
	return strtod(v, NULL);
}

/* Run SQL without parameters (several statements allowed) with PQexec. */
static int pg_exec(struct db *db, const char *sql)
{
	struct db_pg *d = P(db);
	PGresult *r;
	ExecStatusType rs;
	int rc = DB_OK;

	if (pg_down(d))
		return DB_ERROR;
	db_pg_wait_arm(d->c);
	r = db_pg_wait(d->c, d->path, PQsendQuery(d->c, sql), sql);
	rs = PQresultStatus(r);

	if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
		pg_fail(d, r);
		rc = DB_ERROR;
	} else {
		d->fault = DB_FAULT_NONE;
		if (PQcmdTuples(r)[0] != '\0')
			d->changes = strtoll(PQcmdTuples(r), NULL, 10);
	}
	PQclear(r);
	return rc;
}

/* BEGIN; an offline command's write also takes the writers' advisory lock, waiting for
 * it as SQLite waits for its write lock. */
static int pg_begin(struct db *db, enum db_tx tx)
{
	static char write_sql[64];

	if (tx == DB_TX_GROUP)
		return pg_exec(db, "BEGIN");
	if (write_sql[0] == '\0')
		snprintf(write_sql, sizeof write_sql, "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
		    PG_WRITE_LOCK_KEY);
	return pg_exec(db, write_sql);
}

/* Report whether a transaction is open (or failed and not yet rolled back). */
static bool pg_in_transaction(struct db *db)
{
	PGTransactionStatusType t = PQtransactionStatus(P(db)->c);

	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

/* Count the rows the last command changed. */
static int64_t pg_changes(struct db *db)
{
	return P(db)->changes;
}

/* The last failure's message. */
static const char *pg_errmsg(struct db *db)
{
	return P(db)->err[0] != '\0' ? P(db)->err : "not an error";
}

/* The last failure's kind. */
static enum db_fault pg_fault(struct db *db)
{
	return P(db)->fault;
}

/* Close with PQfinish. */
static void pg_close(struct db *db)
{
	PQfinish(P(db)->c);
	free(P(db)->path);
	free(P(db));
}

static const struct db_ops pg_ops = {
	.prepare = pg_prepare,
	.step = pg_step,
	.reset = pg_reset,
	.clear_bindings = pg_clear_bindings,
	.finalize = pg_finalize,
	.bind_int64 = pg_bind_int64,
	.bind_double = pg_bind_double,
	.bind_text = pg_bind_text,
	.bind_null = pg_bind_null,
	.bind_count = pg_bind_count,
	.column_count = pg_column_count,
	.column_name = pg_column_name,
	.column_type = pg_column_type,
	.column_int64 = pg_column_int64,
	.column_double = pg_column_double,
	.column_text = pg_column_text,
	.exec = pg_exec,
	.begin = pg_begin,
	.in_transaction = pg_in_transaction,
	.changes = pg_changes,
	.errmsg = pg_errmsg,
	.fault = pg_fault,
	.close = pg_close,
};

/* Copy libpq's connection failure into msg without its trailing newline. */
void db_pg_conn_msg(PGconn *c, char *msg, size_t msglen)
{
	size_t n;

	snprintf(msg, msglen, "%s", c != NULL ? PQerrorMessage(c) : "out of memory");
	n = strlen(msg);
	while (n > 0 && isspace((unsigned char)msg[n - 1]))
		msg[--n] = '\0';
}

/* The session settings of every connection: UTC, ISO dates, quiet notices, numbers of
 * floating point read back exact (extra_float_digits below 1 rounds them: -15 gave 0.4
 * for 0.37), READ COMMITTED transactions whatever the role's or the database's default
 * (the claims and the session's choice read what others committed while they waited for
 * a lock, which a REPEATABLE READ or SERIALIZABLE snapshot, taken before the wait, does
 * not show), and no statement_timeout, lock_timeout or
 * idle_in_transaction_session_timeout: a statement that waits for a lock is reported
 * every 30 s and ended by a stop signal (db_pg_wait.c), where a role's or database's
 * timeout cancelled it, and with it the start or the commits (1 ms failed every start
 * on its first statement, 200 ms one waiting for another supervisor's lock; an idle
 * timeout of 1 ms ended `run import`'s session between two of its writes). A supervisor
 * sets its own lock and idle limits once registered (store_fleet.c). Every COMMIT waits
 * for its flush (synchronous_commit on, which --synchronous normal turns off for the
 * supervisor's first connection): a database's synchronous_commit off had a command say
 * "imported" and a supervisor acknowledge events to its workers, which then drop them,
 * before the server had them on disk (a supervisor's connection made again took the
 * database's setting).
 *
 * The search_path is cut to the schema it resolves to (the tables' schema), so that
 * pg_catalog, searched first when the path does not name it, answers for every function,
 * operator and catalog view the statements name: a path naming another schema before
 * pg_catalog ("public, pg_catalog") let a function of that schema stand in for the
 * catalog's (a public.clock_timestamp() returning 2001 made every heartbeat 2001, and no
 * silent supervisor was ever declared lost). A path naming no usable schema is left as
 * it is, for the schema check to name. The first connection resolves it (pg_path_sql);
 * a connection made again, and one made beside it (db_pg_side_exec), is set to the schema
 * the first resolved, whatever the role's or the database's search_path says by then (set
 * to another schema, or a schema made or granted before it while this process ran): the
 * tables are those of the schema opened. */
static const char pg_session_sql[] =
    "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD';"
    " SET client_min_messages = warning;"
    " SET standard_conforming_strings = on; SET extra_float_digits = 3;"
    " SET default_transaction_isolation = 'read committed'; SET synchronous_commit = on";
/* The timeouts turned off first, before any statement that does work: a database's
 * statement_timeout of 1 ms cancelled the search_path's SELECT on a loaded machine. */
static const char pg_timeouts_sql[] =
    "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0";
#define PG_TIMEOUTS_RESULTS 3 /* the results of pg_timeouts_sql */
/* The first connection's search_path cut to the schema it resolves to; its one row, when
 * there is one, is the path set. */
static const char pg_path_sql[] = "SELECT pg_catalog.set_config('search_path',"
                                  " pg_catalog.quote_ident(pg_catalog.current_schema()), false)"
                                  " WHERE pg_catalog.current_schema() IS NOT NULL";

/* Apply the session settings to a connection just made; on servers from PostgreSQL 14 on
 * also turn off idle_session_timeout, which a role or database may set (the server ended a
 * supervisor's connection between two beats, its LISTEN with it, and its next statement
 * failed with "no connection to the server"), in the first message with the other
 * timeouts; and have the server look every second whether
 * the client is still there while a statement runs (client_connection_check_interval): a
 * process killed while its statement waited behind a lock left that statement queued until
 * the lock was released. From 17 on transaction_timeout is turned off too, which would
 * cancel a transaction as statement_timeout does a statement. A database in SQL_ASCII gets
 * its text as stored, as SQLite gives it (the readers show bytes that are not UTF-8 as
 * U+FFFD): converted to UTF-8, one such byte another program wrote failed every statement
 * reading its row ("invalid byte sequence for encoding "UTF8""), and a supervisor could
 * not start. The search_path is set to `path` (a connection made again), or cut to the
 * schema it resolves to (the first: `*resolved` then receives the path set, a heap string,
 * left NULL when none was). Last, the server's clock is read into *server_us (epoch
 * microseconds; db_clock_set). Returns the last statement's result (PGRES_COMMAND_OK when
 * all were made), for the caller to PQclear. */
static PGresult *pg_session_apply(PGconn *c, const char *path, char **resolved, int64_t *server_us)
{
	const char *enc = PQparameterStatus(c, "server_encoding");
	char *lit = path != NULL ? PQescapeLiteral(c, path, strlen(path)) : NULL;
	int version = PQserverVersion(c);
	/* In the first message, with the timeouts: an idle_session_timeout set apart, once the
	 * first message was answered, ended the session of a process held between the two
	 * (a loaded machine) longer than the database's timeout ("server closed the connection
	 * unexpectedly"). */
	const char *idle = version >= 170000 ?
	    "; SET idle_session_timeout = 0; SET client_connection_check_interval = 1000;"
	    " SET transaction_timeout = 0" :
	    version >= 140000 ?
	    "; SET idle_session_timeout = 0; SET client_connection_check_interval = 1000" :
	    "";
	int before = PG_TIMEOUTS_RESULTS + (version >= 170000 ? 3 : version >= 140000 ? 2 : 0);
	char *sql = lit != NULL ?
	    xasprintf("%s%s; SELECT pg_catalog.set_config('search_path', %s, false); %s",
	        pg_timeouts_sql, idle, lit, pg_session_sql) :
	    xasprintf("%s%s; %s; %s", pg_timeouts_sql, idle, pg_path_sql, pg_session_sql);
	PGresult *r = NULL, *next;
	bool resolving = lit == NULL;
	int k = 0;

	PQfreemem(lit);
	if (!PQsendQuery(c, sql)) {
		free(sql);
		return PQmakeEmptyPGresult(c, PGRES_FATAL_ERROR);
	}
	free(sql);
	/* The results one by one (PQexec keeps the last): the path's follows the timeouts';
	 * after an error nothing more ran, and the error is kept. */
	while ((next = PQgetResult(c)) != NULL) {
		if (k++ == before && resolving && resolved != NULL &&
		    PQresultStatus(next) == PGRES_TUPLES_OK && PQntuples(next) == 1)
			*resolved = xstrdup(PQgetvalue(next, 0, 0));
		if (r != NULL && PQresultStatus(r) == PGRES_FATAL_ERROR) {
			PQclear(next);
			continue;
		}
		PQclear(r);
		r = next;
	}

	if (PQresultStatus(r) == PGRES_COMMAND_OK && enc != NULL && strcmp(enc, "SQL_ASCII") == 0) {
		PQclear(r);
		r = PQexec(c, "SET client_encoding = 'SQL_ASCII'");
	}
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		r = PQexec(c, "SELECT " DB_PG_CLOCK_US);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			*server_us = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
			PQclear(r);
			r = PQmakeEmptyPGresult(c, PGRES_COMMAND_OK);
		}
	}
	return r;
}

/* Connect with libpq to the database of a connection URI. */
int db_pg_connect(const char *uri, const char *password, const char *app, struct db **out,
    enum db_fault *fault, char *msg, size_t msglen)
{
	/* Text goes both ways as UTF-8, whatever the database's encoding, which the server
	 * converts it to and from. */
	const char *keys[] = { "dbname", "password", "application_name", "connect_timeout",
		"keepalives_idle", "keepalives_interval", "keepalives_count", "client_encoding",
		NULL };
	const char *vals[] = { uri, password, app, "10", "10", "5", "3", "UTF8", NULL };
	struct db_pg *d;
	const char *enc;
	PGconn *c;
	PGresult *r;
	char *path = NULL;
	int64_t server_us = 0;

	*out = NULL;
	*fault = DB_FAULT_NONE;
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		db_pg_conn_msg(c, msg, msglen);
		*fault = DB_FAULT_LOST;
		if (c != NULL && strstr(PQerrorMessage(c), "does not exist") != NULL)
			*fault = DB_FAULT_NOTDB;
		PQfinish(c);
		return DB_ERROR;
	}
	/* A database in another encoding than UTF-8 cannot hold every character autopack
	 * writes (an LLM's message, a check's output): one it lacks would fail its commit.
	 * SQL_ASCII converts nothing and holds any bytes. */
	enc = PQparameterStatus(c, "server_encoding");
	if (enc != NULL && strcmp(enc, "UTF8") != 0 && strcmp(enc, "SQL_ASCII") != 0) {
		snprintf(msg, msglen,
		    "the database %s has the encoding %s; autopack writes UTF-8 text, which it "
		    "cannot hold in full: make a database with ENCODING 'UTF8' (CREATE DATABASE "
		    "... ENCODING 'UTF8' TEMPLATE template0) and copy this one into it (pg_dump, "
		    "then psql or pg_restore)",
		    PQdb(c), enc);
		*fault = DB_FAULT_OTHER;
		PQfinish(c);
		return DB_ERROR;
	}
	PQsetNoticeProcessor(c, pg_notice, NULL);
	r = pg_session_apply(c, NULL, &path, &server_us);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		db_pg_conn_msg(c, msg, msglen);
		*fault = DB_FAULT_OTHER;
		PQclear(r);
		PQfinish(c);
		free(path);
		return DB_ERROR;
	}
	PQclear(r);
	d = xcalloc(1, sizeof *d);
	d->base.ops = &pg_ops;
	d->base.dialect = &dialect_pg;
	d->base.backend = DB_PG;
	d->c = c;
	d->path = path;
	db_clock_set(&d->base, server_us);
	*out = &d->base;
	return DB_OK;
}

/* The libpq connection. */
PGconn *db_pg_conn(struct db *db)
{
	assert(db->backend == DB_PG);
	return P(db)->c;
}

/* The search_path the first connection was cut to. */
const char *db_pg_path(struct db *db)
{
	assert(db->backend == DB_PG);
	return P(db)->path;
}

/* Begin connecting again with PQresetStart. */
int db_pg_reset_start(struct db *db, int *fd)
{
	struct db_pg *d = P(db);

	d->gen++;
	d->connecting = PQresetStart(d->c) == 1;
	*fd = d->connecting ? PQsocket(d->c) : -1;
	if (!d->connecting) {
		pg_fail(d, NULL);
		return DB_ERROR;
	}
	return DB_OK;
}

/* Drive the connection with PQresetPoll; once made, apply the session settings. */
enum db_pg_poll db_pg_reset_poll(struct db *db, int *fd)
{
	struct db_pg *d = P(db);
	PostgresPollingStatusType ps;
	PGresult *r;
	int64_t server_us = 0;

	*fd = -1;
	if (!d->connecting) {
		pg_down(d);
		return DB_PG_POLL_FAILED;
	}
	ps = PQresetPoll(d->c);
	if (ps == PGRES_POLLING_READING || ps == PGRES_POLLING_WRITING) {
		*fd = PQsocket(d->c);
		return ps == PGRES_POLLING_READING ? DB_PG_POLL_READ : DB_PG_POLL_WRITE;
	}
	d->connecting = false;
	if (ps != PGRES_POLLING_OK || PQstatus(d->c) != CONNECTION_OK) {
		pg_fail(d, NULL);
		/* Refused as the database does not exist: it was dropped or renamed. */
		if (db_pg_refused_missing(d->c))
			d->fault = DB_FAULT_NOTDB;
		return DB_PG_POLL_FAILED;
	}
	r = pg_session_apply(d->c, d->path, NULL, &server_us);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		pg_fail(d, r);
		PQclear(r);
		return DB_PG_POLL_FAILED;
	}
	PQclear(r);
	db_clock_set(db, server_us);
	return DB_PG_POLL_OK;
}

/* Give up the connection being made: it stays down, its socket open until the next
 * db_pg_reset_start closes it. */
void db_pg_reset_abandon(struct db *db)
{
	P(db)->connecting = false;
}

/* Whether the connection is up. */
bool db_pg_connected(struct db *db)
{
	return PQstatus(P(db)->c) == CONNECTION_OK;
}
