/* Drain sessions in the drain's store: one drain_sessions row per drain, its policy state
 * saved with every group commit, and how it ended (docs/drain-rules.md, "Sessions"). */
#include "common/store/dialect.h"
#include "common/store/store_drain_internal.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

const struct drain_sql drain_sql_session[] = {
	{ DS_SESSION_STATE, "UPDATE drain_sessions SET state_json = ?2 WHERE session_id = ?1" },
};
const size_t drain_sql_session_n = ARRAY_SIZE(drain_sql_session);

/* Insert a session row with its settings; STORE_EIO on failure. On PostgreSQL its start
 * is the server's time, as every heartbeat is: a supervisor that joins the session later,
 * on another host, takes the time it has run by the server's clock off
 * --max-total-minutes, which this host's clock, were it wrong, would make too long or too
 * short. */
int store_drain_session_open(struct store_drain *d, const char *session_id, int64_t pid,
    const char *settings_json, struct store_err *err)
{
	char now[32], spid[24];

	db_now(d->st->db, now);
	snprintf(spid, sizeof spid, "%lld", (long long)pid);
	if (drain_run(d,
	        d->st->backend == DB_PG ?
	            "INSERT INTO drain_sessions (session_id, started_at, supervisor_pid)"
	            " VALUES (?1, (clock_timestamp() AT TIME ZONE 'UTC'), CAST(?3 AS INTEGER))" :
	            "INSERT INTO drain_sessions (session_id, started_at, supervisor_pid)"
	            " VALUES (?1, ?2, CAST(?3 AS INTEGER))",
	        session_id, now, spid, err) != 0)
		return STORE_EIO;
	return drain_run(d, "UPDATE drain_sessions SET settings_json = ?2 WHERE session_id = ?1",
	    session_id, settings_json, NULL, err);
}

/* Save the policy state inside the group; STORE_EIO on failure. */
int store_drain_session_state(
    struct store_drain *d, const char *session_id, const char *state_json, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_SESSION_STATE);

	assert(db_in_transaction(d->st->db));
	store_bind_text(s, 1, session_id);
	store_bind_text(s, 2, state_json);
	return drain_exec(d, DS_SESSION_STATE, err);
}

/* Find the newest unfinished session; STORE_EIO on failure. */
int store_drain_session_find_open(
    struct store_drain *d, char **session_id, char **state_json, struct store_err *err)
{
	char *sql = xasprintf("SELECT s.session_id, s.state_json FROM drain_sessions s"
	                      " WHERE s.completed_at IS NULL ORDER BY s.started_at DESC, %s DESC"
	                      " LIMIT 1",
	    d->st->db->dialect->session_order);
	struct db_stmt *s;
	int rc;

	*session_id = *state_json = NULL;
	rc = db_prepare(d->st->db, sql, &s);
	free(sql);
	if (rc != DB_OK)
		return drain_fail(d, err, "unfinished session");
	rc = db_step(s);
	if (rc == DB_ROW) {
		*session_id = store_col_text(s, 0, "");
		*state_json = store_col_text(s, 1, NULL);
	}
	rc = rc == DB_ROW || rc == DB_DONE ? 0 : drain_fail(d, err, "unfinished session");
	db_finalize(s);
	return rc;
}

/* Count a session's attempts, its dry runs apart; STORE_EIO on failure. */
int store_drain_session_attempts(
    struct store_drain *d, const char *session_id, int64_t *n, int64_t *dry, struct store_err *err)
{
	struct db_stmt *s;
	int rc;

	*n = *dry = 0;
	if (db_prepare(d->st->db,
	        "SELECT count(*), count(CASE WHEN dry_run <> 0 THEN 1 END) FROM attempts"
	        " WHERE session_id = ?1",
	        &s) != DB_OK)
		return drain_fail(d, err, "session attempts");
	store_bind_text(s, 1, session_id);
	rc = db_step(s);
	if (rc == DB_ROW) {
		*n = db_column_int64(s, 0);
		*dry = db_column_int64(s, 1);
	}
	rc = rc == DB_ROW ? 0 : drain_fail(d, err, "session attempts");
	db_finalize(s);
	return rc;
}

/* Mark a session finished; STORE_EIO on failure. On PostgreSQL its end is the server's
 * time, as its start is (store_drain_session_open). */
int store_drain_session_close(
    struct store_drain *d, const char *session_id, const char *stop_reason, struct store_err *err)
{
	char now[32];

	assert(!db_in_transaction(d->st->db));
	db_now(d->st->db, now);
	return drain_run(d,
	    d->st->backend == DB_PG ?
	        "UPDATE drain_sessions SET completed_at = (clock_timestamp() AT TIME ZONE 'UTC'),"
	        " stop_reason = ?3 WHERE session_id = ?1" :
	        "UPDATE drain_sessions SET completed_at = ?2, stop_reason = ?3 WHERE session_id = ?1",
	    session_id, now, stop_reason, err);
}
