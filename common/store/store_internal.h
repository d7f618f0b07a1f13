/* Helpers shared by the store's files in common/store/; nothing outside the store
 * includes this, except unit tests that need its seams. */
#ifndef AUTOPACK_STORE_INTERNAL_H
#define AUTOPACK_STORE_INTERNAL_H

#include "common/store/store.h"

/* One step of the migration list: what upgrades version `from` to from + 1, the SQL
 * (or NULL) and then the function (or NULL), both inside the migration's transaction. */
struct store_migration {
	int from;
	const char *sql;
	int (*fn)(struct db *db, struct store_err *err);
};

extern const struct store_migration store_migrations[];
extern const size_t store_n_migrations;

/* SQL for SQLite's sum(<condition>) on either backend: the number of rows where the
 * condition holds, NULL when it is NULL on every row (a string literal). */
#define SQL_SUM_IF(cond) "sum(CASE WHEN " cond " THEN 1 WHEN NOT (" cond ") THEN 0 END)"

/* --- common/store/store_sql.c: the SQL helpers every store file uses --- */

/* Format a message into err (if not NULL) and return `code` (non-zero); one longer than
 * err->text keeps its start and its end (str_velide). */
int store_fail(struct store_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Run SQL with no result rows; on failure STORE_EIO with "<what>: <sqlite message>". */
int store_exec(struct db *db, const char *sql, const char *what, struct store_err *err);
/* Begin an offline command's write transaction (db_begin DB_TX_WRITE), or commit the
 * open transaction; on failure STORE_EIO with "<what>: <database message>". */
int store_begin(struct db *db, const char *what, struct store_err *err);
int store_commit(struct db *db, const char *what, struct store_err *err);
/* Run a single-value integer query; returns 0 and *out, or STORE_EIO. */
int store_query_int(struct db *db, const char *sql, int64_t *out, struct store_err *err);
/* Run `sql` with the NULL-terminated text parameters `args` (?1, ?2, ...; args may be
 * NULL); return 1 if it yields a row, 0 if not, or STORE_EIO with the formatted context,
 * ": " and SQLite's message. */
int store_row_exists(struct db *db, struct store_err *err, const char *sql, const char *const *args,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Return 1 if `name` is a table of db (names compare as SQLite compares them, without
 * case), 0 if not, or STORE_EIO. */
int store_table_exists(struct db *db, const char *name, struct store_err *err);
/* Return 1 if `name` is a view of db (PostgreSQL: or a materialized view), 0 if not, or
 * STORE_EIO. */
int store_view_exists(struct db *db, const char *name, struct store_err *err);
/* Step q, prepared when rc is DB_OK (rc is what db_prepare returned), to its
 * end and finalize it; on failure STORE_EIO with the formatted context, ": " and
 * SQLite's message. */
int store_step_done(struct db *db, struct db_stmt *q, int rc, struct store_err *err,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Step q, prepared when rc is DB_OK, which returns one row (INSERT ... RETURNING id):
 * column 0 of that row goes to *id; finalize q. STORE_EIO as for store_step_done. */
int store_step_id(struct db *db, struct db_stmt *q, int rc, int64_t *id, struct store_err *err,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* An array of rows read by store_rows_read: n items of `size` bytes at v (a heap array the
 * caller takes over), each filled from its row by `fill` and released by `item_free`. */
struct store_rows {
	void *v;
	size_t n, size;
	void (*fill)(struct db_stmt *q, void *item);
	void (*item_free)(void *item);
};
/* Append a zeroed item to r and return it. */
void *store_rows_add(struct store_rows *r);
/* Read every row of q, prepared when rc is DB_OK, into r (empty on entry), and
 * finalize q. On failure the items read are released, r is left empty and STORE_EIO
 * returned with the formatted context, ": " and SQLite's message. */
int store_rows_read(struct db *db, struct db_stmt *q, int rc, struct store_rows *r,
    struct store_err *err, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Step q, prepared when rc is DB_OK, through all its rows, calling row(q, arg) for
 * each until one returns non-zero, and finalize it. Returns 0, that non-zero value, or
 * STORE_EIO with the formatted context, ": " and SQLite's message. */
int store_each_row(struct db *db, struct db_stmt *q, int rc,
    int (*row)(struct db_stmt *q, void *arg), void *arg, struct store_err *err, const char *fmt,
    ...) __attribute__((format(printf, 7, 8)));
/* Free an array of n items of `size` bytes, releasing each with item_free first. */
void store_rows_free(void *v, size_t n, size_t size, void (*item_free)(void *item));
/* Prepare `sql` (no parameters) and read its rows into r as store_rows_read does. */
int store_rows_query(struct db *db, const char *sql, struct store_rows *r, struct store_err *err,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Copy text column i of the current row to the heap; a NULL column gives a copy of
 * if_null, or NULL when if_null is NULL. */
char *store_col_text(struct db_stmt *q, int i, const char *if_null);
/* Copy text column i of the current row to the heap whole, NUL bytes and all (NUL
 * terminated after them), its length in *len; NULL (and 0) for a NULL column. */
char *store_col_textn(struct db_stmt *q, int i, size_t *len);
/* Bind text parameter i (SQLite copies it); NULL binds SQL NULL. */
void store_bind_text(struct db_stmt *q, int i, const char *s);

/* --- common/store/store_tier.c --- */

/* Set tier `tier_row`'s state from its phases, as the original's progress view expects:
 * COMPLETE when every phase is COMPLETE or SKIPPED (SKIPPED when all are), FAILED when the
 * others are FAILED, IN_PROGRESS while a phase runs or some have ended and others wait;
 * a tier whose phases are all QUEUED again is PENDING. updated_at, started_at and
 * completed_at move with the state (`now`); a tier that already follows is not written. */
int store_tier_follow(struct db *db, int64_t tier_row, const char *now, struct store_err *err);
/* The statements behind store_tier_follow, for callers that keep them prepared: the
 * tier's row id, state and the state its phases put it in, by tier (?1 its row id) or by
 * phase (?1 run, ?2 phase); and the update store_tier_apply binds. */
extern const char store_tier_state_sql[];
extern const char store_tier_state_of_phase_sql[];
extern const char store_tier_set_sql[];
/* Step `state` (bound by the caller, reset by it too) and, when the tier no longer follows
 * its phases, run `set`. Returns 0 or STORE_EIO. */
int store_tier_apply(struct db *db, struct db_stmt *state, struct db_stmt *set, const char *now,
    struct store_err *err);
/* A tier's phases counted by the classes of state its own state is decided by (the
 * supervisor's drain keeps them for the tiers it touched, so that an attempt's end sets
 * its tier's state without counting the tier's phases again), and its stored state. */
struct tier_count {
	int64_t id;                                /* tiers.id; 0: a free slot */
	int64_t n, skipped, done, running, queued; /* all; SKIPPED; COMPLETE or SKIPPED;
	                                            * EXECUTING, GATE or CI_RUNNING; QUEUED */
	char state[24];                            /* the stored state */
	bool state_null;
};
/* Tier counts by tier id: an open-addressing table. */
struct tier_cache {
	struct tier_count *v;
	size_t cap, n;
};
/* The counts and state of one tier (?1 its row id): state, count, then one column per
 * class in the order of struct tier_count. */
extern const char store_tier_count_sql[];
/* Count a tier's phases with a prepared store_tier_count_sql and keep the counts; *out is
 * NULL when there is no such tier or its state is too long to keep. STORE_EIO on
 * failure. */
int store_tier_load(struct db *db, struct db_stmt *count, struct tier_cache *c, int64_t id,
    struct tier_count **out, struct store_err *err);
/* The counts of tier `id`, or NULL when they are not kept. */
struct tier_count *store_tier_cached(struct tier_cache *c, int64_t id);
/* A phase of the tier moved from stored state `from` to `to`. */
void store_tier_moved(struct tier_count *t, const char *from, const char *to);
/* The tier's state is now `state` as stored (NULL: SQL NULL); at most 23 bytes. */
void store_tier_stored(struct tier_count *t, const char *state);
/* The state the tier's phases put it in (what store_tier_state_sql computes); NULL: it
 * stays as it is. */
const char *store_tier_due(const struct tier_count *t);
/* Write store_tier_due with `set` (store_tier_set_sql) when the tier does not follow its
 * phases yet, as store_tier_apply does. STORE_EIO on failure. */
int store_tier_settle(struct db *db, struct db_stmt *set, struct tier_count *t, const char *now,
    struct store_err *err);
/* Forget every count; release the table. */
void store_tier_forget(struct tier_cache *c);
void store_tier_cache_free(struct tier_cache *c);
/* Do store_tier_follow for the tier of phase (run_id, phase_id); 0 if there is none. */
int store_tier_follow_phase(struct db *db, const char *run_id, const char *phase_id,
    const char *now, struct store_err *err);

/* --- common/store/store_stats.c: labelled counts --- */

/* Append (key, n) to the list. */
void store_counts_add(struct store_counts *c, const char *key, int64_t n);
/* Add n to the entry `key`, appending it if absent. */
void store_counts_bump(struct store_counts *c, const char *key, int64_t n);
/* Free a list's keys and items, leaving it empty. */
void store_counts_free(struct store_counts *c);

/* Open a connection to the existing SQLite file at `path` with sqlite3_open_v2 `flags`
 * (never SQLITE_OPEN_CREATE) and the store's busy timeout. On failure STORE_EIO with
 * "<path>: cannot open<purpose>: <reason>" and *db NULL. */
int store_connect(
    const char *path, int flags, const char *purpose, struct db **db, struct store_err *err);
/* Open the existing SQLite file at `path` to read it, as store_connect does; on a
 * read-only file system, or a file immutable or append-only, opened immutable (no -shm to
 * make), unless a write-ahead log beside it holds frames. */
int store_connect_read(const char *path, struct db **db, struct store_err *err);
/* Check that this user may read the SQLite file at `path` and, with `write`, write it
 * and its -wal and -shm (make them in its directory); 0, or STORE_EIO naming the file, its
 * mode and owner, or the flag (immutable, append-only) that forbids it. */
int store_check_access(const char *path, bool write, struct store_err *err);

/* Check that the open connection holds an autopack database of a version this program
 * knows with every table and column that version has, and a canonical uuid; fills
 * *version and uuid (the stored text, cut to 36 characters, even when it is refused with
 * STORE_EIDENT, which is checked last). Reads only. `path` names the database in
 * messages. */
int store_schema_check(
    struct db *db, const char *path, int *version, char uuid[37], struct store_err *err);
/* When the last failure of db was a statement naming a table, column or key the database
 * lacks (DB_FAULT_SCHEMA: another program changed the schema), fill err (STORE_EIO) with
 * "<where>: writing <table> failed: <what> is gone: another program changed autopack's
 * schema ...", naming the primary key an INSERT ... ON CONFLICT of `sql` needs, what to
 * run (autopack-ctl db check) and the server's message, and return true; else false. */
bool store_schema_changed(struct db *db, const char *where, const char *sql, struct store_err *err);
/* Check that every table autopack inserts into without naming its key (tiers.id,
 * phases.id, attempts.attempt_id, llm_usage_events.id, token_estimation_v2_events.event_id,
 * control_log.id) gives that key a value itself: on SQLite the key is the table's rowid
 * (not WITHOUT ROWID, the INTEGER PRIMARY KEY), on PostgreSQL it has a default or is an
 * identity column. Tables db lacks are skipped. Reads only. Returns 0, `code` with the
 * message "<where>: <what><the table and why>. <then>", or STORE_EIO. */
int store_keys_check(struct db *db, const char *where, const char *what, const char *then,
    enum store_errcode code, struct store_err *err);
/* On PostgreSQL, check that the sequence of each key of store_keys_check (and of the
 * fleet's tables) would give a value above the highest its table holds: rows written
 * without it (a restore of the data alone, logical replication, a RESTART) make each
 * insert collide with one of them. A sequence whose next value the role may not read is
 * passed over; so are tables db lacks. Reads only. Returns 0, or STORE_EIO naming the
 * sequence, the table's highest key and the setval that moves it past; 0 on SQLite. */
int store_keys_ahead(struct db *db, const char *where, struct store_err *err);
/* Say what a refusal left as it was: "the file was left untouched" on SQLite, "nothing
 * was changed" on a server. */
const char *store_untouched(const struct db *db);
/* Build schema `version` (1 up to SCHEMA_VERSION) in a private in-memory SQLite database:
 * the reference the open checks columns against, and that adoption and migration extend
 * tables from. */
int store_schema_ref_open(int version, struct db **ref, struct store_err *err);
/* A column of the schema. */
struct store_column {
	char table[64];
	char column[64];
};
/* More than the columns of any schema version. */
#define STORE_SCHEMA_COLUMNS_MAX 512

/* How long a connection waits for a lock another holds before it fails as busy. */
#define STORE_BUSY_TIMEOUT_MS 5000
/* The columns of schema `version`, read from its SQL (autopack's own, one column per
 * line), into cols (capacity cap); returns how many. */
size_t store_schema_columns(int version, struct store_column *cols, size_t cap);
/* Return true if `s` is a UUID in canonical form (8-4-4-4-12 lowercase hex digits). */
bool store_uuid_valid(const char *s);
/* The tables of schema `version`, NULL-terminated, into names (capacity cap); returns
 * how many. */
size_t store_schema_tables(int version, const char **names, size_t cap);

/* Report that `st`, just opened at `where`, is already an autopack database: copy its
 * uuid into `uuid` (when given), fill err, close st; STORE_EEXIST. */
int store_init_exists(struct store *st, const char *where, char uuid[37], struct store_err *err);
/* Create a database at `path` from `sql`, stamped with `version` (store_init's body; a
 * seam for tests that need an older schema or a failing one). */
int store_init_sql(
    const char *path, const char *sql, int version, char uuid[37], struct store_err *err);

/* Write a random (version 4) UUID into out; STORE_EIO if no randomness is available. */
int store_uuid_v4(char out[37], struct store_err *err);
/* Describe who writes: "user@host autopack <version>" (a heap string). */
char *store_created_by(void);

/* Name a backup file that does not exist yet: "<path>.<tag>-<UTC stamp>.bak", made unique
 * with a counter if needed (a heap string). */
char *store_backup_name(const char *path, const char *tag);
/* Insert meta's one row: uuid, creation time, creator and schema version. */
int store_meta_insert(struct db *db, const char *uuid, const char *now, const char *by, int version,
    struct store_err *err);

#endif
