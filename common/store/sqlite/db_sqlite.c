/* The SQLite backend: each call of common/store/db.h is the sqlite3 call of the same
 * name. */
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/db_waited.h"
#include "common/store/sqlite/dialect_sqlite.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* The statements of struct db_sqlite's tx[]. */
enum {
	TX_BEGIN,
	TX_COMMIT,
	TX_VERSION,
	TX_MARK,
	TX_APPID,
	TX_COUNT
};

struct db_sqlite {
	struct db base;
	sqlite3 *h;
	char msg[512];        /* sqlite_errmsg's text with the system's cause */
	uint32_t mark;        /* the application_id each write transaction sets, or 0 */
	bool count;           /* the open transaction is counted at its commit */
	bool counted_any;     /* a counted commit of this connection succeeded */
	uint32_t counted;     /* the highest count such a commit wrote (modulo 2^32) */
	bool went_back;       /* the last COMMIT was refused: the file's count went back */
	int64_t changes_then; /* sqlite3_total_changes64 when it began */
	/* The statements every transaction runs, prepared at their first use (parsing them
	 * at each transaction cost more than running them): BEGIN IMMEDIATE, COMMIT, the
	 * reading of user_version, the writing of application_id (the mark's) and its
	 * reading. */
	sqlite3_stmt *tx[TX_COUNT];
};

struct db_sqlite_stmt {
	struct db_stmt base;
	sqlite3_stmt *q;
};

/* The handle of a connection. */
static sqlite3 *H(struct db *db)
{
	return container_of(db, struct db_sqlite, base)->h;
}

/* The statement of a wrapper. */
static sqlite3_stmt *Q(struct db_stmt *s)
{
	return container_of(s, struct db_sqlite_stmt, base)->q;
}

/* Prepare with sqlite3_prepare_v3. */
static int sqlite_prepare(struct db *db, const char *sql, bool persistent, struct db_stmt **out)
{
	sqlite3_stmt *q = NULL;
	struct db_sqlite_stmt *s;

	*out = NULL;
	if (sqlite3_prepare_v3(H(db), sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &q,
	        NULL) != SQLITE_OK) {
		sqlite3_finalize(q);
		return DB_ERROR;
	}
	s = xcalloc(1, sizeof *s);
	s->base.db = db;
	s->q = q;
	*out = &s->base;
	return DB_OK;
}

/* Step with sqlite3_step; a long step is kept as a wait for the database (db_waited.h). */
static int sqlite_step(struct db_stmt *s)
{
	uint64_t start = db_waited_clock_ms();
	int rc = sqlite3_step(Q(s));

	db_waited_note(start, db_waited_clock_ms(), sqlite3_sql(Q(s)));

	return rc == SQLITE_ROW ? DB_ROW : rc == SQLITE_DONE ? DB_DONE : DB_ERROR;
}

/* Reset with sqlite3_reset. */
static void sqlite_reset(struct db_stmt *s)
{
	sqlite3_reset(Q(s));
}

/* Clear with sqlite3_clear_bindings. */
static void sqlite_clear_bindings(struct db_stmt *s)
{
	sqlite3_clear_bindings(Q(s));
}

/* Finalize with sqlite3_finalize and free the wrapper. */
static void sqlite_finalize(struct db_stmt *s)
{
	sqlite3_finalize(Q(s));
	free(container_of(s, struct db_sqlite_stmt, base));
}

/* Bind with sqlite3_bind_int64. */
static void sqlite_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	sqlite3_bind_int64(Q(s), i, v);
}

/* Bind with sqlite3_bind_double. */
static void sqlite_bind_double(struct db_stmt *s, int i, double v)
{
	sqlite3_bind_double(Q(s), i, v);
}

/* Bind a copy with sqlite3_bind_text; NULL binds NULL. */
static void sqlite_bind_text(struct db_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(Q(s), i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(Q(s), i);
}

/* Bind without a copy (SQLITE_STATIC: the caller keeps the text); NULL binds NULL. */
static void sqlite_bind_text_kept(struct db_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(Q(s), i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(Q(s), i);
}

/* Bind with sqlite3_bind_null. */
static void sqlite_bind_null(struct db_stmt *s, int i)
{
	sqlite3_bind_null(Q(s), i);
}

/* Count with sqlite3_bind_parameter_count. */
static int sqlite_bind_count(struct db_stmt *s)
{
	return sqlite3_bind_parameter_count(Q(s));
}

/* Count with sqlite3_column_count. */
static int sqlite_column_count(struct db_stmt *s)
{
	return sqlite3_column_count(Q(s));
}

/* Name with sqlite3_column_name. */
static const char *sqlite_column_name(struct db_stmt *s, int i)
{
	return sqlite3_column_name(Q(s), i);
}

/* Type with sqlite3_column_type (a blob counts as text). */
static enum db_type sqlite_column_type(struct db_stmt *s, int i)
{
	switch (sqlite3_column_type(Q(s), i)) {
	case SQLITE_NULL: return DB_NULL;
	case SQLITE_INTEGER: return DB_INTEGER;
	case SQLITE_FLOAT: return DB_FLOAT;
	default: return DB_TEXT;
	}
}

/* Read with sqlite3_column_int64. */
static int64_t sqlite_column_int64(struct db_stmt *s, int i)
{
	return sqlite3_column_int64(Q(s), i);
}

/* Read with sqlite3_column_double. */
static double sqlite_column_double(struct db_stmt *s, int i)
{
	return sqlite3_column_double(Q(s), i);
}

/* Read with sqlite3_column_text. */
static const char *sqlite_column_text(struct db_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(Q(s), i);
}

/* Count with sqlite3_column_bytes (after sqlite3_column_text, the text's bytes). */
static size_t sqlite_column_bytes(struct db_stmt *s, int i)
{
	return (size_t)sqlite3_column_bytes(Q(s), i);
}

/* Type with sqlite3_column_type. */
static bool sqlite_column_is_blob(struct db_stmt *s, int i)
{
	return sqlite3_column_type(Q(s), i) == SQLITE_BLOB;
}

/* Run with sqlite3_exec; a long run is kept as a wait for the database (db_waited.h). */
static int sqlite_exec(struct db *db, const char *sql)
{
	uint64_t start = db_waited_clock_ms();
	int rc = sqlite3_exec(H(db), sql, NULL, NULL, NULL);

	db_waited_note(start, db_waited_clock_ms(), sql);
	return rc == SQLITE_OK ? DB_OK : DB_ERROR;
}

/* Run transaction statement `i` (struct db_sqlite's tx[]), prepared at its first use,
 * and reset it: DB_OK when it ran (TX_VERSION: its row's value in *value), DB_ERROR when
 * it could not be prepared or failed (sqlite3_errmsg then tells why). */
static int sqlite_tx(struct db_sqlite *d, int i, int64_t *value)
{
	sqlite3_stmt *q = d->tx[i];
	uint64_t start;
	char sql[64];
	int rc;

	if (q == NULL) {
		switch (i) {
		case TX_BEGIN: snprintf(sql, sizeof sql, "BEGIN IMMEDIATE"); break;
		case TX_COMMIT: snprintf(sql, sizeof sql, "COMMIT"); break;
		case TX_VERSION: snprintf(sql, sizeof sql, "PRAGMA user_version"); break;
		case TX_APPID: snprintf(sql, sizeof sql, "PRAGMA application_id"); break;
		default: snprintf(sql, sizeof sql, "PRAGMA application_id=%d", (int32_t)d->mark);
		}
		if (sqlite3_prepare_v3(d->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL) !=
		    SQLITE_OK) {
			sqlite3_finalize(q);
			return DB_ERROR;
		}
		d->tx[i] = q;
	}
	start = db_waited_clock_ms();
	rc = sqlite3_step(q);
	db_waited_note(start, db_waited_clock_ms(), sqlite3_sql(q));
	if (rc == SQLITE_ROW && value != NULL)
		*value = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return rc == SQLITE_DONE || (rc == SQLITE_ROW && value != NULL) ? DB_OK : DB_ERROR;
}

/* BEGIN IMMEDIATE: the write lock is taken at once, for either kind of transaction. */
static int sqlite_begin(struct db *db, enum db_tx tx)
{
	struct db_sqlite *d = container_of(db, struct db_sqlite, base);

	(void)tx; /* both kinds write */
	d->went_back = false;
	d->count = d->mark != 0;
	d->changes_then = sqlite3_total_changes64(d->h);
	return sqlite_tx(d, TX_BEGIN, NULL);
}

/* COMMIT. A write transaction of a marked connection (db_sqlite_mark) that changed rows
 * first counts itself in the database header: PRAGMA user_version one more (modulo
 * 2^32), application_id the mark (written only when it holds another value: SQLite
 * prepares a statement that writes the header again at each run, and the page is the
 * same). Page 1 is then in every such commit's frames, so a write-ahead log tells which
 * count of commits it continues and whose it is (store_wal.c). DB_ERROR, nothing
 * committed, if the header cannot be written, or if the file counts fewer commits than
 * this connection already reached: an older copy of the database was written into the
 * file since (sqlite3's .restore of an earlier backup), and a commit over it would
 * hide that (sqlite_errmsg says so; the caller rolls back). */
static int sqlite_commit(struct db *db)
{
	struct db_sqlite *d = container_of(db, struct db_sqlite, base);
	int64_t n = 0, id = 0;
	char sql[64];

	if (d->count && sqlite3_total_changes64(d->h) != d->changes_then) {
		d->count = false;
		if (sqlite_tx(d, TX_VERSION, &n) != DB_OK || sqlite_tx(d, TX_APPID, &id) != DB_OK)
			return DB_ERROR;
		if (d->counted_any && (int32_t)((uint32_t)n - d->counted) < 0) {
			d->went_back = true;
			snprintf(d->msg, sizeof d->msg,
			    "COMMIT refused: the file counts %u commits of autopack's (PRAGMA "
			    "user_version), fewer than the %u this connection reached: an older "
			    "copy of the database was written into the file",
			    (uint32_t)n, d->counted);
			return DB_ERROR;
		}
		/* user_version's value is a literal of the statement: prepared at each commit. */
		snprintf(sql, sizeof sql, "PRAGMA user_version=%d", (int32_t)((uint32_t)n + 1));
		if (sqlite_exec(db, sql) != DB_OK ||
		    ((uint32_t)id != d->mark && sqlite_tx(d, TX_MARK, NULL) != DB_OK))
			return DB_ERROR;
		if (sqlite_tx(d, TX_COMMIT, NULL) != DB_OK)
			return DB_ERROR;
		/* The highest in serial order: a count put back lower is not taken. */
		if (!d->counted_any || (int32_t)((uint32_t)n + 1 - d->counted) > 0)
			d->counted = (uint32_t)n + 1;
		d->counted_any = true;
		return DB_OK;
	}
	d->count = false;
	return sqlite_tx(d, TX_COMMIT, NULL);
}

bool db_sqlite_counted(struct db *db, uint32_t *count)
{
	struct db_sqlite *d = container_of(db, struct db_sqlite, base);

	*count = d->counted;
	return d->counted_any;
}

void db_sqlite_mark(struct db *db, uint32_t mark)
{
	struct db_sqlite *d = container_of(db, struct db_sqlite, base);

	/* The statement that writes the mark is prepared again for the new one. */
	if (d->mark != mark) {
		sqlite3_finalize(d->tx[TX_MARK]);
		d->tx[TX_MARK] = NULL;
	}
	d->mark = mark;
}

/* Report with sqlite3_get_autocommit. */
static bool sqlite_in_transaction(struct db *db)
{
	return !sqlite3_get_autocommit(H(db));
}

/* The row id with sqlite3_last_insert_rowid. */
static int64_t sqlite_last_insert_id(struct db *db)
{
	return sqlite3_last_insert_rowid(H(db));
}

/* Count with sqlite3_changes. */
static int64_t sqlite_changes(struct db *db)
{
	return sqlite3_changes(H(db));
}

/* After a failed write: when the database's file or its -wal has reached the process's
 * file size limit (ulimit -f, LimitFSIZE=), which SQLite reports as an I/O error with no
 * cause, say so into d->msg after `what`, naming the larger of the two near the limit,
 * and return true; false when no limit is set or neither file is near it. */
static bool sqlite_size_limit_note(struct db_sqlite *d, const char *what)
{
	const char *path = sqlite3_db_filename(d->h, "main");
	static const char *const ends[] = { "-wal", "" };
	struct rlimit lim;
	struct stat sb;
	long long size = -1;
	const char *end = NULL;

	if (path == NULL || path[0] == '\0' || getrlimit(RLIMIT_FSIZE, &lim) != 0 ||
	    lim.rlim_cur == RLIM_INFINITY)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(ends); i++) {
		char name[4200];

		snprintf(name, sizeof name, "%s%s", path, ends[i]);
		/* Near enough that a write of a page or a frame more would pass the limit. */
		if (stat(name, &sb) == 0 && (uint64_t)sb.st_size + 65536 >= lim.rlim_cur &&
		    sb.st_size > size) {
			size = sb.st_size;
			end = ends[i];
		}
	}
	if (end == NULL)
		return false;
	snprintf(d->msg, sizeof d->msg,
	    "%s (File too large: %.300s%s is %lld bytes, and this process may write no file "
	    "past %llu bytes, its file size limit: ulimit -f, LimitFSIZE=; raise it)",
	    what, path, end, size, (unsigned long long)lim.rlim_cur);
	return true;
}

/* The message of sqlite3_errmsg; after a failed file operation (an I/O error, a file
 * that cannot be opened, a full disk) followed by the system's reason, which SQLite's own
 * words do not give ("disk I/O error (No space left on device)"), or, for a write past
 * the file size limit, for which SQLite keeps no reason, that limit; after a COMMIT
 * refused for a count of commits gone back (sqlite_commit), that, until the next BEGIN. */
static const char *sqlite_errmsg(struct db *db)
{
	struct db_sqlite *d = container_of(db, struct db_sqlite, base);
	int primary = sqlite3_extended_errcode(d->h) & 0xff, e = sqlite3_system_errno(d->h);

	if (d->went_back)
		return d->msg;
	if (primary == SQLITE_IOERR && (e == 0 || e == EFBIG) &&
	    sqlite_size_limit_note(d, sqlite3_errmsg(d->h)))
		return d->msg;
	if (e == 0 ||
	    (primary != SQLITE_IOERR && primary != SQLITE_CANTOPEN && primary != SQLITE_FULL))
		return sqlite3_errmsg(d->h);
	snprintf(d->msg, sizeof d->msg, "%s (%s)", sqlite3_errmsg(d->h), strerror(e));
	return d->msg;
}

/* Classify sqlite3_extended_errcode. */
static enum db_fault sqlite_fault(struct db *db)
{
	if (container_of(db, struct db_sqlite, base)->went_back)
		return DB_FAULT_OTHER;
	switch (sqlite3_extended_errcode(H(db)) & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE: return DB_FAULT_NONE;
	case SQLITE_CONSTRAINT: return DB_FAULT_CONSTRAINT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return DB_FAULT_BUSY;
	case SQLITE_NOTADB: return DB_FAULT_NOTDB;
	case SQLITE_FULL: return DB_FAULT_FULL;
	default: return DB_FAULT_OTHER;
	}
}

/* Close with sqlite3_close. */
static void sqlite_close(struct db *db)
{
	struct db_sqlite *d = container_of(db, struct db_sqlite, base);

	for (int i = 0; i < TX_COUNT; i++)
		sqlite3_finalize(d->tx[i]);
	sqlite3_close(d->h);
	free(d);
}

static const struct db_ops sqlite_ops = {
	.prepare = sqlite_prepare,
	.step = sqlite_step,
	.reset = sqlite_reset,
	.clear_bindings = sqlite_clear_bindings,
	.finalize = sqlite_finalize,
	.bind_int64 = sqlite_bind_int64,
	.bind_double = sqlite_bind_double,
	.bind_text = sqlite_bind_text,
	.bind_text_kept = sqlite_bind_text_kept,
	.bind_null = sqlite_bind_null,
	.bind_count = sqlite_bind_count,
	.column_count = sqlite_column_count,
	.column_name = sqlite_column_name,
	.column_type = sqlite_column_type,
	.column_int64 = sqlite_column_int64,
	.column_double = sqlite_column_double,
	.column_text = sqlite_column_text,
	.column_bytes = sqlite_column_bytes,
	.column_is_blob = sqlite_column_is_blob,
	.exec = sqlite_exec,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.in_transaction = sqlite_in_transaction,
	.changes = sqlite_changes,
	.last_insert_id = sqlite_last_insert_id,
	.errmsg = sqlite_errmsg,
	.fault = sqlite_fault,
	.close = sqlite_close,
};

/* Wrap an open handle. */
struct db *db_sqlite_wrap(sqlite3 *h)
{
	struct db_sqlite *d = xcalloc(1, sizeof *d);

	d->base.ops = &sqlite_ops;
	d->base.dialect = &dialect_sqlite;
	d->base.backend = DB_SQLITE;
	d->h = h;
	return &d->base;
}

/* A statement's journal (the pages it changed, as they were, to undo the statement alone)
 * stays in memory up to this size; past it SQLite moves it to a temporary file, and every
 * later statement of the transaction writes its journal there, a write per page. SQLite's
 * 64 KiB was passed by a plan import's inserts of up to 16 phases. SQLite takes the memory
 * in one block of this size at a statement's first journaled page and frees it at the
 * statement's end: the block stays under malloc's mmap threshold (128 KiB), or each
 * statement would map and unmap it. */
#define DB_SQLITE_STMT_JOURNAL_MEM (120 << 10)

/* Configure SQLite for this process, once, before anything initialises it: no program of
 * this project uses SQLite from more than one thread (the supervisor's HTTP server thread
 * reads snapshots the loop publishes, never the database), so SQLite keeps no allocation
 * statistics (each allocation took a global mutex), its small blocks are recycled by
 * sqlite_mem.c, its default VFS writes a commit's WAL frames in one write, and a
 * statement's journal stays in memory up to DB_SQLITE_STMT_JOURNAL_MEM. Every
 * function of this project that reaches SQLite first calls this; SQLite refuses the
 * settings once initialised, which would only be a defect of that order (asserted). */
void db_sqlite_configure(void)
{
	static bool configured;
	int rc;

	if (configured)
		return;
	rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	assert(rc == SQLITE_OK);
	rc = sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, DB_SQLITE_STMT_JOURNAL_MEM);
	assert(rc == SQLITE_OK);
	(void)rc;
	sqlite_mem_use();
	sqlite_walbuf_use();
	sqlite_fdfile_use();
	configured = true;
}

/* Open a file with sqlite3_open_v2 and a busy timeout; the connection takes no mutex
 * (db_sqlite_configure). */
int db_sqlite_open(
    const char *path, int flags, int busy_ms, struct db **out, char *msg, size_t msglen)
{
	sqlite3 *h = NULL;

	*out = NULL;
	db_sqlite_configure();
	if (sqlite3_open_v2(path, &h, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(msg, msglen, "%s", h != NULL ? sqlite3_errmsg(h) : "out of memory");
		sqlite3_close(h);
		return DB_ERROR;
	}
	sqlite3_busy_timeout(h, busy_ms);
	*out = db_sqlite_wrap(h);
	return DB_OK;
}

/* The handle of a connection of this backend. */
sqlite3 *db_sqlite_handle(struct db *db)
{
	assert(db->backend == DB_SQLITE);
	return H(db);
}

/* SQLite's primary result code of the last failure. */
int db_sqlite_errcode(struct db *db)
{
	return sqlite3_errcode(db_sqlite_handle(db)) & 0xff;
}
