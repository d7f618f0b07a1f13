/*
 * The store's database access: one connection, its prepared statements and transactions,
 * the same calls on either backend. SQLite (common/store/sqlite/) opens a file;
 * PostgreSQL (common/store/pg/) connects to a server with libpq. Store code is written
 * once against these calls; the SQL that differs between the two lives in each backend's
 * dialect (struct db_dialect).
 *
 * SQL uses SQLite's placeholders, ?NNN or ?, numbered from 1; the PostgreSQL backend
 * rewrites them to $N. A statement is prepared, bound, stepped through its rows (DB_ROW,
 * then DB_DONE, or DB_ERROR with db_errmsg set) and reset or finalized. Text columns are
 * valid until the next step, reset or finalize of their statement.
 */
#ifndef AUTOPACK_STORE_DB_H
#define AUTOPACK_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_stmt;
struct db_dialect;

enum db_backend {
	DB_SQLITE = 1,
	DB_PG = 2,
};

/* What db_prepare, db_step and db_exec return. */
enum db_rc {
	DB_OK = 0,
	DB_ERROR = 1,
	DB_ROW = 100,
	DB_DONE = 101,
};

/* The type of a column's value in the current row. */
enum db_type {
	DB_NULL = 0,
	DB_INTEGER,
	DB_FLOAT,
	DB_TEXT,
};

/* What kind of failure the last error was, for the callers that act on it. */
enum db_fault {
	DB_FAULT_NONE = 0,
	DB_FAULT_CONSTRAINT, /* the write broke a constraint: the write is at fault */
	DB_FAULT_BUSY,       /* another connection holds a lock for now: a retry may succeed */
	DB_FAULT_NOTDB,      /* the file or server holds no database of this backend */
	DB_FAULT_FULL,       /* no space left */
	DB_FAULT_LOST,       /* the connection to the server is gone */
	DB_FAULT_SCHEMA,     /* a table, column or key the statement names is not there */
	DB_FAULT_READONLY,   /* the server takes no write on this connection (read-only) */
	DB_FAULT_OTHER,
};

/* How a transaction begins. */
enum db_tx {
	DB_TX_WRITE, /* an offline command's write: one autopack writer at a time */
	DB_TX_GROUP, /* a supervisor's group commit: rows are locked as they are written */
};

/* The operations one backend provides; struct db and struct db_stmt start with their
 * backend's table. */
struct db_ops {
	int (*prepare)(struct db *db, const char *sql, bool persistent, struct db_stmt **out);
	int (*step)(struct db_stmt *s);
	void (*reset)(struct db_stmt *s);
	void (*clear_bindings)(struct db_stmt *s);
	void (*finalize)(struct db_stmt *s);
	void (*bind_int64)(struct db_stmt *s, int i, int64_t v);
	void (*bind_double)(struct db_stmt *s, int i, double v);
	void (*bind_text)(struct db_stmt *s, int i, const char *v);
	/* Optional: bind a text without copying it (else bind_text is used). */
	void (*bind_text_kept)(struct db_stmt *s, int i, const char *v);
	void (*bind_null)(struct db_stmt *s, int i);
	int (*bind_count)(struct db_stmt *s);
	int (*column_count)(struct db_stmt *s);
	const char *(*column_name)(struct db_stmt *s, int i);
	enum db_type (*column_type)(struct db_stmt *s, int i);
	int64_t (*column_int64)(struct db_stmt *s, int i);
	double (*column_double)(struct db_stmt *s, int i);
	const char *(*column_text)(struct db_stmt *s, int i);
	/* Optional: the bytes of the text column_text gave last (else its strlen). */
	size_t (*column_bytes)(struct db_stmt *s, int i);
	/* Optional: whether the value column_type calls a text is a BLOB (else never). */
	bool (*column_is_blob)(struct db_stmt *s, int i);
	int (*exec)(struct db *db, const char *sql);
	int (*begin)(struct db *db, enum db_tx tx);
	/* Optional: commit the open transaction (else exec "COMMIT"). */
	int (*commit)(struct db *db);
	bool (*in_transaction)(struct db *db);
	int64_t (*changes)(struct db *db);
	/* Optional: the row id of the last INSERT (a backend without row ids leaves it NULL). */
	int64_t (*last_insert_id)(struct db *db);
	const char *(*errmsg)(struct db *db);
	enum db_fault (*fault)(struct db *db);
	void (*close)(struct db *db);
};

/* A connection: its backend's operations and SQL. */
struct db {
	const struct db_ops *ops;
	const struct db_dialect *dialect;
	enum db_backend backend;
	uint64_t writes_begun; /* DB_TX_WRITE transactions begun (what the drain keeps may
	                        * have changed under it) */
	/* PostgreSQL: the server's clock as last read (epoch microseconds), and this host's
	 * monotonic clock then (db_clock_set); unset on SQLite. The last time db_clock_us
	 * gave, which it never goes back from. */
	bool clock_set;
	int64_t clock_us, clock_mono_us, clock_last_us;
};

/* A prepared statement of connection `db`. */
struct db_stmt {
	struct db *db;
};

/* Record `server_us`, the server's clock read just now (epoch microseconds), as the
 * clock db_now reads from, carried forward by this host's monotonic clock. */
void db_clock_set(struct db *db, int64_t server_us);
/* The time to write in a row (epoch microseconds): on PostgreSQL the server's clock, as
 * last read on the connection (as it is made, and at each heartbeat of a supervisor) plus
 * the time this host's monotonic clock has counted since, never less than the last time
 * it gave, so that rows written from several hosts are stamped by one clock, whatever
 * each host's wall clock says; this host's wall clock on SQLite (one host), and before
 * the server's clock was read. */
int64_t db_clock_us(struct db *db);
/* db_clock_us in the database timestamp format (time_db). */
void db_now(struct db *db, char buf[32]);

/* Prepare `sql` (one statement). DB_OK, or DB_ERROR with db_errmsg set and *out NULL. */
int db_prepare(struct db *db, const char *sql, struct db_stmt **out);
/* Prepare a statement that is kept and run many times (the drain's statements). */
int db_prepare_persistent(struct db *db, const char *sql, struct db_stmt **out);
/* Run the statement, or move to its next row: DB_ROW, DB_DONE or DB_ERROR. */
int db_step(struct db_stmt *s);
/* Make the statement ready to run again, keeping its bindings. */
void db_reset(struct db_stmt *s);
/* Set every parameter back to NULL. */
void db_clear_bindings(struct db_stmt *s);
/* Release the statement (NULL is ignored). */
void db_finalize(struct db_stmt *s);
/* Bind parameter i (1-based) to an integer, a real, a text (copied; NULL binds NULL) or
 * NULL. */
void db_bind_int64(struct db_stmt *s, int i, int64_t v);
void db_bind_double(struct db_stmt *s, int i, double v);
void db_bind_text(struct db_stmt *s, int i, const char *v);
void db_bind_null(struct db_stmt *s, int i);
/* Bind parameter i to a text the caller keeps unchanged until the statement is stepped
 * and reset (a backend may read it then instead of copying it now); NULL binds NULL. */
void db_bind_text_kept(struct db_stmt *s, int i, const char *v);
/* The number of parameters of the statement. */
int db_bind_count(struct db_stmt *s);
/* The number of columns, a column's name, and the type of its value in the current row. */
int db_column_count(struct db_stmt *s);
const char *db_column_name(struct db_stmt *s, int i);
enum db_type db_column_type(struct db_stmt *s, int i);
/* Column i (0-based) of the current row as an integer (a boolean is 0 or 1; NULL is 0; a
 * real is truncated; a text only when it is wholly an integer, db_text_int64, else 0:
 * '12abc' another program stored is no 12), a real, or a text (NULL for SQL NULL; a
 * timestamp in the store's one text format). */
int64_t db_column_int64(struct db_stmt *s, int i);
/* Column i as db_column_int64 reads it into *out; false (and 0) when its value is a text
 * that is not wholly an integer. */
bool db_column_int64_ok(struct db_stmt *s, int i, int64_t *out);
/* Read the whole of `t` as a decimal integer: white space around it and a sign allowed,
 * nothing else; false when anything else is in it or it is out of range. */
bool db_text_int64(const char *t, int64_t *out);
double db_column_double(struct db_stmt *s, int i);
const char *db_column_text(struct db_stmt *s, int i);
/* Column i as a text and its length in bytes in *len: a text another program stored may
 * hold a NUL byte (a blob reads as its bytes), which db_column_text's string ends at. */
const char *db_column_textn(struct db_stmt *s, int i, size_t *len);
/* Whether column i's value is a BLOB (which db_column_type calls a text, and
 * db_column_textn reads as its bytes): SQLite stores one in any column another program
 * wrote bytes to; never on PostgreSQL, whose bytea reads as its text form. */
bool db_column_is_blob(struct db_stmt *s, int i);
/* Run SQL that returns no rows (several statements allowed). DB_OK or DB_ERROR. */
int db_exec(struct db *db, const char *sql);
/* Begin, commit or roll back a transaction. db_rollback does nothing outside one. */
int db_begin(struct db *db, enum db_tx tx);
int db_commit(struct db *db);
void db_rollback(struct db *db);
/* Whether a transaction is open. */
bool db_in_transaction(struct db *db);
/* Rows changed by the last INSERT, UPDATE or DELETE. */
int64_t db_changes(struct db *db);
/* The row id of the last INSERT; -1 on a backend without row ids. */
int64_t db_last_insert_id(struct db *db);
/* The last error's message (a constraint failure names its table and column) and kind. */
const char *db_errmsg(struct db *db);
enum db_fault db_fault(struct db *db);
/* Close the connection, finalizing nothing: its statements must be finalized first. */
void db_close(struct db *db);

/* Format SQL like printf with sqlite3_mprintf's two more conversions: %w writes a string
 * with its double quotes doubled, for use between double quotes ("%w"), and %Q writes it
 * as a quoted literal ('it''s', or NULL for a NULL pointer). Supports %s %d %lld %%
 * besides. Returns a heap string. */
char *db_sqlf(const char *fmt, ...);

#endif
