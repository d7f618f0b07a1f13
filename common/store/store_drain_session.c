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

/* The most suffixes tried after a name another session has: past them the names are taken
 * by some other cause (a trigger or rule that skips the insert) than sessions of the same
 * name, which two hosts make in one second only. */
#define SESSION_NAME_TRIES 100

/* Insert a session row named `name` with its settings, or, when another session has that
 * name already (a supervisor of the same pid on another host, or in another pid namespace,
 * started one in the same second by its clock), `name` followed by the first of -2, -3,
 * ... that none has; *session_id is the name given, a heap string (NULL on failure). A
 * name taken is never written to: the row is inserted only where no row has it, and a
 * concurrent insert of the same name (the key of drain_sessions) leaves it to the other.
 * STORE_EIO on failure, and when SESSION_NAME_TRIES names were all taken. On PostgreSQL
 * its start is the server's time, as every heartbeat is: a supervisor that joins the
 * session later, on another host, takes the time it has run by the server's clock off
 * --max-total-minutes, which this host's clock, were it wrong, would make too long or too
 * short. */
int store_drain_session_open(struct store_drain *d, const char *name, int64_t pid,
    const char *settings_json, char **session_id, struct store_err *err)
{
	char now[32], spid[24];
	char *id = NULL;
	int i;

	*session_id = NULL;
	db_now(d->st->db, now);
	snprintf(spid, sizeof spid, "%lld", (long long)pid);
	for (i = 1; i <= SESSION_NAME_TRIES; i++) {
		free(id);
		id = i == 1 ? xstrdup(name) : xasprintf("%s-%d", name, i);
		if (drain_run(d,
		        d->st->backend == DB_PG ?
		            "INSERT INTO drain_sessions (session_id, started_at, supervisor_pid)"
		            " SELECT ?1, (clock_timestamp() AT TIME ZONE 'UTC'), CAST(?3 AS INTEGER)"
		            " WHERE NOT EXISTS (SELECT 1 FROM drain_sessions WHERE session_id = ?1)"
		            " ON CONFLICT DO NOTHING" :
		            "INSERT INTO drain_sessions (session_id, started_at, supervisor_pid)"
		            " SELECT ?1, ?2, CAST(?3 AS INTEGER) WHERE NOT EXISTS (SELECT 1 FROM"
		            " drain_sessions WHERE session_id = ?1) ON CONFLICT DO NOTHING",
		        id, now, spid, err) != 0) {
			free(id);
			return STORE_EIO;
		}
		if (db_changes(d->st->db) == 1)
			break;
	}
	if (i > SESSION_NAME_TRIES) {
		free(id);
		return store_fail(err, STORE_EIO,
		    "%s: recording drain session %s: it and the names %s-2 to %s-%d are all "
		    "taken (or a trigger or rule on drain_sessions that is not autopack's skips "
		    "the insert)",
		    d->st->path, name, name, name, SESSION_NAME_TRIES);
	}
	if (drain_run(d, "UPDATE drain_sessions SET settings_json = ?2 WHERE session_id = ?1", id,
	        settings_json, NULL, err) != 0) {
		free(id);
		return STORE_EIO;
	}
	*session_id = id;
	return 0;
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
