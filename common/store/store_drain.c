/* The drain's store: its statements, group-commit transactions, the supervisor's entry in
 * meta and the durability setting (see store_drain.h). */
#include "common/store/dialect.h"
#include "common/store/store_drain_internal.h"
#include "common/store/store_estimation.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

/* The page cache of the drain's SQLite connection, in KiB. */
#define DRAIN_CACHE_KIB "65536"

const struct drain_sql drain_sql_main[] = {
	{ DS_META_SUP, "UPDATE meta SET supervisor_pid = ?1, control_socket = ?2 WHERE id = 1" },
};
const size_t drain_sql_main_n = ARRAY_SIZE(drain_sql_main);

/* Name the failed step and SQLite's message. */
int drain_fail(struct store_drain *d, struct store_err *err, const char *what)
{
	if (store_schema_changed(d->st->db, d->st->path, what, err))
		return STORE_EIO;
	store_fail(err, STORE_EIO, "%s: %.120s: %s", d->st->path, what, db_errmsg(d->st->db));
	if (err != NULL)
		err->fault = db_fault(d->st->db);
	return STORE_EIO;
}

/* Call fn on each row's text and integer; see store_drain_internal.h. */
int drain_each_text_int(struct store_drain *d, struct db_stmt *s,
    int (*fn)(void *arg, const char *text, int64_t n), void *arg, struct store_err *err,
    const char *what)
{
	int rc;

	while ((rc = db_step(s)) == DB_ROW) {
		if (fn(arg, db_column_text(s, 0), db_column_int64(s, 1)) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	if (rc != DB_DONE)
		return drain_fail(d, err, what);
	return 0;
}

/* Reset and unbind a prepared statement. */
struct db_stmt *drain_stmt(struct store_drain *d, enum drain_stmt i)
{
	struct db_stmt *s = d->stmt[i];

	assert(i < DS_COUNT && s != NULL);
	db_reset(s);
	db_clear_bindings(s);
	return s;
}

/* Reset a prepared statement whose every parameter its caller binds. */
struct db_stmt *drain_stmt_bound(struct store_drain *d, enum drain_stmt i)
{
	struct db_stmt *s = d->stmt[i];

	assert(i < DS_COUNT && s != NULL);
	db_reset(s);
	return s;
}

/* Step a statement without rows; STORE_EIO on failure. */
int drain_exec(struct store_drain *d, enum drain_stmt i, struct store_err *err)
{
	int rc = db_step(d->stmt[i]);

	db_reset(d->stmt[i]);
	if (rc != DB_DONE)
		return drain_fail(d, err, d->sql[i]);
	return 0;
}

int drain_exec_one(struct store_drain *d, enum drain_stmt i, const char *table, const char *what,
    struct store_err *err)
{
	int64_t n;
	int rc = drain_exec(d, i, err);

	if (rc != 0 || (n = db_changes(d->st->db)) == 1)
		return rc;
	snprintf(d->skipped, sizeof d->skipped,
	    "%.80s changed %lld rows of table %s, not 1: a trigger or rule on %s that is not"
	    " autopack's skipped it",
	    what, (long long)n, table, table);
	return store_fail(err, STORE_EIO, "%s: %s", d->st->path, d->skipped);
}

/* Prepare, bind, step and finalize one statement; STORE_EIO on failure. */
int drain_run(struct store_drain *d, const char *sql, const char *a, const char *b, const char *c,
    struct store_err *err)
{
	struct db_stmt *s = NULL;
	int rc = db_prepare(d->st->db, sql, &s);

	if (rc == DB_OK) {
		store_bind_text(s, 1, a);
		store_bind_text(s, 2, b);
		store_bind_text(s, 3, c);
	}
	return store_step_done(d->st->db, s, rc, err, "%s: %.120s", d->st->path, sql);
}

/* Report whether the last error was a constraint violation, with SQLite's message. */
bool store_drain_constraint_failed(struct store_drain *d, char *why, size_t whylen)
{
	if (d->skipped[0] != '\0') {
		snprintf(why, whylen, "%s", d->skipped);
		d->skipped[0] = '\0';
		return true;
	}
	if (db_fault(d->st->db) != DB_FAULT_CONSTRAINT)
		return false;
	snprintf(why, whylen, "%s", db_errmsg(d->st->db));
	return true;
}

/* Whether statement `id` is prepared on SQLite alone: the live attempts' (which the
 * drain keeps only there); on PostgreSQL it is left NULL. */
static bool drain_sqlite_only(enum drain_stmt id)
{
	return id == DS_ATT_END_COUNTED || id == DS_RESULT_ROW_COUNTED;
}

/* Prepare one file's statements. */
static int drain_prepare(
    struct store_drain *d, const struct drain_sql *sql, size_t n, struct store_err *err)
{
	for (size_t i = 0; i < n; i++) {
		enum drain_stmt id = sql[i].id;

		assert(id < DS_COUNT && d->stmt[id] == NULL);
		if (drain_sqlite_only(id) && d->st->backend != DB_SQLITE)
			continue;
		d->sql[id] = sql[i].sql;
		if (d->st->backend == DB_PG && store_fleet_drain_sql(id) != NULL)
			d->sql[id] = store_fleet_drain_sql(id);
		if (db_prepare_persistent(d->st->db, d->sql[id], &d->stmt[id]) != DB_OK)
			return drain_fail(d, err, d->sql[id]);
	}
	return 0;
}

/* Prepare every statement; STORE_EIO on failure, with nothing left open. */
int store_drain_open(struct store *st, struct store_drain **out, struct store_err *err)
{
	struct store_drain *d = xcalloc(1, sizeof *d);
	int rc;

	d->st = st;
	d->claimed_started = -1;
	rc = drain_prepare(d, drain_sql_main, drain_sql_main_n, err);
	if (rc == 0)
		rc = drain_prepare(d, drain_sql_attempt, drain_sql_attempt_n, err);
	if (rc == 0)
		rc = drain_prepare(d, drain_sql_event, drain_sql_event_n, err);
	if (rc == 0)
		rc = drain_prepare(d, drain_sql_session, drain_sql_session_n, err);
	if (rc == 0)
		rc = store_estimation_prepare(st, &d->estimation, err);
	if (rc == 0 && st->backend == DB_SQLITE &&
	    db_prepare_persistent(st->db, "PRAGMA data_version", &d->data_version) != DB_OK)
		rc = drain_fail(d, err, "PRAGMA data_version");
	/* The drain reads and rewrites phase, run and tier rows all over the file: with
	 * SQLite's default cache (2 MB) a backlog of some thousands of phases no longer fits,
	 * and each commit's pages were read back from the file. Pages are taken as read. */
	if (rc == 0 && st->backend == DB_SQLITE)
		rc = drain_run(d, "PRAGMA cache_size = -" DRAIN_CACHE_KIB, NULL, NULL, NULL, err);
	if (rc != 0) {
		store_drain_close(d);
		return rc;
	}
	for (int i = 0; i < DS_COUNT; i++)
		assert(d->stmt[i] != NULL || drain_sqlite_only(i));
	*out = d;
	return 0;
}

/* Finalize every statement. */
void store_drain_close(struct store_drain *d)
{
	if (d == NULL)
		return;
	for (int i = 0; i < DS_COUNT; i++)
		db_finalize(d->stmt[i]);
	for (int i = 0; i <= DRAIN_ROWS_MAX; i++)
		db_finalize(d->att_rows[i]);
	db_finalize(d->estimation);
	db_finalize(d->data_version);
	db_finalize(d->budget_lock);
	store_tier_cache_free(&d->tiers);
	drain_lives_forget(&d->lives, true);
	free(d->announced.v);
	free(d->closing.v);
	free(d);
}

/* Forget the tier counts and the live attempts. */
void drain_tiers_forget(struct store_drain *d)
{
	store_tier_forget(&d->tiers);
	drain_lives_forget(&d->lives, false);
}

/* Forget the tier counts when the database may have changed under them: another
 * connection committed, or this one began a write outside the drain. */
static void drain_tiers_check(struct store_drain *d)
{
	int64_t v = -1;

	if (d->data_version == NULL)
		return;
	db_reset(d->data_version);
	if (db_step(d->data_version) == DB_ROW)
		v = db_column_int64(d->data_version, 0);
	db_reset(d->data_version);
	if (v < 0 || v != d->seen_version || d->st->db->writes_begun != d->seen_writes)
		drain_tiers_forget(d);
	d->seen_version = v;
	d->seen_writes = d->st->db->writes_begun;
}

/* The tier counts, when the drain keeps them. */
struct tier_cache *drain_tiers(struct store_drain *d)
{
	return d->data_version != NULL && d->supervisor_id == 0 ? &d->tiers : NULL;
}

/* Forget what the event statements' parameters hold: the events of a group are
 * released after it ends. */
static void drain_keep_forget(struct store_drain *d)
{
	bind_keep_forget(&d->keep_key);
	bind_keep_forget(&d->keep_usage);
}

/* Begin a group commit's transaction; STORE_EIO on failure. */
int store_drain_begin(struct store_drain *d, struct store_err *err)
{
	assert(!db_in_transaction(d->st->db));
	drain_keep_forget(d);
	d->skipped[0] = '\0';
	if (db_begin(d->st->db, DB_TX_GROUP) != DB_OK)
		return drain_fail(d, err, "BEGIN");
	/* Under the write lock: no other connection commits before this transaction ends. */
	drain_tiers_check(d);
	return 0;
}

/* COMMIT; STORE_EIO on failure. */
int store_drain_commit(struct store_drain *d, struct store_err *err)
{
	return drain_commit_after(d, NULL, err);
}

/* Run `sql` (statements of the open transaction; NULL for none), then COMMIT, in one
 * round trip; STORE_EIO on failure (a failed statement leaves the transaction to be
 * rolled back, and COMMIT is not run). */
int drain_commit_after(struct store_drain *d, const char *sql, struct store_err *err)
{
	char *text = sql != NULL ? xasprintf("%s; COMMIT", sql) : NULL;
	int rc;

	drain_keep_forget(d);
	rc = text != NULL ? db_exec(d->st->db, text) : db_commit(d->st->db);
	free(text);
	if (rc != DB_OK)
		return drain_fail(d, err, "COMMIT");
	drain_announced_end(d, true);
	return 0;
}

/* ROLLBACK when a transaction is open. */
void store_drain_rollback(struct store_drain *d)
{
	drain_keep_forget(d);
	db_rollback(d->st->db);
	drain_announced_end(d, false);
	/* The counts may hold what the transaction wrote. */
	drain_tiers_forget(d);
}

/* Set PRAGMA synchronous; STORE_EIO on failure. */
int store_drain_set_synchronous(struct store_drain *d, bool full, struct store_err *err)
{
	assert(!db_in_transaction(d->st->db));
	return drain_run(d, full ? d->st->db->dialect->sync_full : d->st->db->dialect->sync_normal,
	    NULL, NULL, NULL, err);
}

/* Write or clear the supervisor's pid and socket in meta; STORE_EIO on failure. */
int store_drain_set_supervisor(
    struct store_drain *d, int64_t pid, const char *socket_path, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_META_SUP);

	assert(!db_in_transaction(d->st->db));
	if (pid > 0)
		db_bind_int64(s, 1, pid);
	store_bind_text(s, 2, pid > 0 ? socket_path : NULL);
	return drain_exec(d, DS_META_SUP, err);
}
