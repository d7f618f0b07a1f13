/* A drain session's budgets when several supervisors share it (docs/postgresql.md,
 * "Sessions"): the lock that puts the session's claims within its --batch-size one after
 * the other, the budgets a supervisor joining the session must have, and the attempts the
 * session started so far. */
#include "common/store/pg/store_fleet_budget.h"
#include "common/jsonload.h"
#include "common/store/store_fleet.h"
#include "common/util.h"

#include <assert.h>
#include <jansson.h>

/* The server's time now (not the transaction's start), as a UTC TIMESTAMP. */
#define PG_NOW "(clock_timestamp() AT TIME ZONE 'UTC')"

int fleet_budget_lock(struct store_drain *d, const char *session_id, struct store_err *err)
{
	int rc;

	assert(db_in_transaction(d->st->db));
	if (d->budget_lock == NULL &&
	    db_prepare_persistent(d->st->db,
	        "SELECT 1 FROM drain_sessions WHERE session_id = ?1 FOR NO KEY UPDATE",
	        &d->budget_lock) != DB_OK)
		return drain_fail(d, err, "locking the session's row");
	db_reset(d->budget_lock);
	db_clear_bindings(d->budget_lock);
	store_bind_text(d->budget_lock, 1, session_id);
	while ((rc = db_step(d->budget_lock)) == DB_ROW)
		;
	db_reset(d->budget_lock);
	return rc == DB_DONE ? 0 : drain_fail(d, err, "locking the session's row");
}

/* The integer `key` of settings object j, 0 when it has none. */
static int64_t budget_setting(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

int store_fleet_session_budget(
    struct store_drain *d, const char *session_id, struct fleet_budget *b, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    "SELECT s.settings_json,"
	    " CAST(EXTRACT(EPOCH FROM (" PG_NOW " - s.started_at)) * 1000 AS BIGINT),"
	    " " FLEET_STARTED_OF "s.session_id" FLEET_STARTED_WHERE " FROM drain_sessions s"
	    " WHERE s.session_id = ?1",
	    &q);
	json_t *j = NULL;

	*b = (struct fleet_budget){ 0 };
	if (rc == DB_OK) {
		store_bind_text(q, 1, session_id);
		rc = db_step(q);
	}
	if (rc == DB_ROW) {
		const char *text = db_column_text(q, 0);

		j = json_loads_bounded(text != NULL ? text : "{}", 0, NULL);
		b->batch_size = budget_setting(j, "batch_size");
		b->max_total_minutes = budget_setting(j, "max_total_minutes");
		b->elapsed_ms = db_column_int64(q, 1);
		b->started = db_column_int64(q, 2);
		json_decref(j);
	}
	db_finalize(q);
	if (rc == DB_DONE)
		return store_fail(
		    err, STORE_EINVAL, "%s: no drain session %s", d->st->url, session_id);
	if (rc != DB_ROW)
		return store_fail(err, STORE_EIO, "%s: reading the budgets of session %s: %s",
		    d->st->url, session_id, db_errmsg(d->st->db));
	return 0;
}

int store_fleet_session_started(
    struct store_drain *d, const char *session_id, int64_t *n, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db, "SELECT " FLEET_STARTED_OF "?1" FLEET_STARTED_WHERE, &q);

	*n = 0;
	if (rc == DB_OK) {
		store_bind_text(q, 1, session_id);
		rc = db_step(q);
	}
	if (rc == DB_ROW)
		*n = db_column_int64(q, 0);
	db_finalize(q);
	if (rc != DB_ROW)
		return store_fail(err, STORE_EIO, "%s: counting the attempts of session %s: %s",
		    d->st->url, session_id, db_errmsg(d->st->db));
	return 0;
}
