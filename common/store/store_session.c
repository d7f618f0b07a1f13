/* Reading drain sessions and their results. */
#include "common/store/dialect.h"
#include "common/store/store_internal.h"
#include "common/store/store_session.h"
#include "common/vocab.h"
#include "common/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A result's telemetry_events_collected, 0 when it is none an attempt can have (negative,
 * or past 10^9, which no attempt comes near; another program's, or a hand edit): summed
 * as it is, two such rows overflowed and every session command failed on it for good. */
#define SESSION_EVENTS                                                                             \
	"CASE WHEN r.telemetry_events_collected BETWEEN 0 AND 1000000000"                          \
	" THEN r.telemetry_events_collected ELSE 0 END"

#define SESSION_SELECT                                                                              \
	"SELECT s.session_id, s.started_at, s.completed_at, s.stop_reason,"                         \
	" coalesce(s.supervisor_pid, 0), coalesce(s.settings_json, '{}'),"                          \
	" coalesce(s.state_json, '{}'),"                                                            \
	" (SELECT count(*) FROM attempts a WHERE a.session_id = s.session_id),"                     \
	" (SELECT count(*) FROM attempts a WHERE a.session_id = s.session_id"                       \
	"   AND a.ended_at IS NULL),"                                                               \
	" (SELECT count(*) FROM drain_session_results r WHERE r.session_id = s.session_id),"        \
	" (SELECT coalesce(" SQL_SUM_IF(                                                            \
	    "r.success != 0") ", 0) FROM drain_session_results r"                                   \
	                      "   WHERE r.session_id = s.session_id),"                              \
	                      " (SELECT coalesce(sum(" SESSION_EVENTS "), 0)"                       \
	                      "   FROM drain_session_results r WHERE r.session_id = s.session_id)," \
	                      " (SELECT count(*) FROM drain_session_results r JOIN attempts a"      \
	                      "   ON a.attempt_id = r.attempt_id WHERE r.session_id = s.session_id" \
	                      "   AND r.success = 0 AND r.final_state = 'QUEUED' AND a.outcome IN"  \
	                      "   (" OUTCOME_HANDS_BACK_SQL "))"                                    \
	                      " FROM drain_sessions s"

/* Free one session of a store_rows. */
static void session_item_free(void *s)
{
	store_session_free(s);
}

/* Fill `s` from the current row of a SESSION_SELECT query. */
static void session_from_row(struct db_stmt *q, void *item)
{
	struct store_session *s = item;

	s->session_id = store_col_text(q, 0, "");
	s->started_at = store_col_text(q, 1, "");
	s->completed_at = store_col_text(q, 2, NULL);
	s->stop_reason = store_col_text(q, 3, NULL);
	s->supervisor_pid = db_column_int64(q, 4);
	s->settings_json = store_col_text(q, 5, NULL);
	s->state_json = store_col_text(q, 6, NULL);
	s->attempts = db_column_int64(q, 7);
	s->open_attempts = db_column_int64(q, 8);
	s->results = db_column_int64(q, 9);
	s->successes = db_column_int64(q, 10);
	s->events = db_column_int64(q, 11);
	s->handed_back = db_column_int64(q, 12);
}

/* List every session, newest first. */
int store_session_list(
    struct store *st, struct store_session **out, size_t *n, struct store_err *err)
{
	struct store_rows l = {
		.size = sizeof **out, .fill = session_from_row, .item_free = session_item_free
	};
	char *sql = xasprintf("%s ORDER BY s.started_at DESC, %s DESC", SESSION_SELECT,
	    st->db->dialect->session_order);
	int rc = store_rows_query(st->db, sql, &l, err, "%s: reading drain sessions", st->path);

	free(sql);
	*out = l.v;
	*n = l.n;
	return rc;
}

/* Read one session, or the newest. */
int store_session_get(
    struct store *st, const char *id, struct store_session *out, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *sql = id != NULL ? xstrdup(SESSION_SELECT " WHERE s.session_id = ?1") :
	                         xasprintf("%s ORDER BY s.started_at DESC, %s DESC LIMIT 1",
	                             SESSION_SELECT, st->db->dialect->session_order);
	int rc = db_prepare(st->db, sql, &q);

	free(sql);
	memset(out, 0, sizeof *out);
	if (rc == DB_OK) {
		if (id != NULL)
			db_bind_text(q, 1, id);
		rc = db_step(q);
	}
	if (rc == DB_ROW)
		session_from_row(q, out);
	else if (rc == DB_DONE && id != NULL)
		store_fail(err, STORE_EINVAL,
		    "%s: no drain session \"%s\" (autopack-ctl session "
		    "list shows them)",
		    st->path, id);
	else if (rc == DB_DONE)
		store_fail(err, STORE_EINVAL,
		    "%s: no drain sessions yet (a supervisor run "
		    "records one)",
		    st->path);
	else
		store_fail(
		    err, STORE_EIO, "%s: reading drain sessions: %s", st->path, db_errmsg(st->db));
	db_finalize(q);
	if (rc == DB_ROW)
		return 0;
	return rc == DB_DONE ? STORE_EINVAL : STORE_EIO;
}

/* Fill a result from the current row (a store_rows fill). */
static void session_result_row(struct db_stmt *q, void *item)
{
	struct store_session_result *r = item;

	r->run_id = store_col_text(q, 0, "");
	r->phase_id = store_col_text(q, 1, "");
	r->outcome = store_col_text(q, 2, NULL);
	r->success = db_column_int64(q, 3) != 0;
	r->timeout = outcome_parse(r->outcome) == OUTCOME_TIMEOUT;
	/* A duration or a yield that is not a finite number (SQLite holds infinities: 1e999
	 * typed into its shell) is unknown, as NULL: JSON cannot hold it. */
	r->duration_s = db_column_type(q, 4) == DB_NULL ? -1 : db_column_double(q, 4);
	r->duration_s = isfinite(r->duration_s) ? r->duration_s : -1;
	r->events = db_column_int64(q, 5);
	r->yield_per_min = db_column_type(q, 6) == DB_NULL ? -1 : db_column_double(q, 6);
	r->yield_per_min = isfinite(r->yield_per_min) ? r->yield_per_min : -1;
	r->boundary = db_column_int64(q, 7) != 0;
	r->fingerprint = store_col_text(q, 8, NULL);
	r->zero_yield_reason = store_col_text(q, 9, NULL);
}

/* Free one result's strings. */
static void session_result_free(void *item)
{
	struct store_session_result *r = item;

	free(r->run_id);
	free(r->phase_id);
	free(r->outcome);
	free(r->fingerprint);
	free(r->zero_yield_reason);
}

/* Read the results of a session in attempt order. */
int store_session_results(struct store *st, const char *id, struct store_session_result **out,
    size_t *n, struct store_err *err)
{
	struct store_rows l = {
		.size = sizeof **out, .fill = session_result_row, .item_free = session_result_free
	};
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db,
	    "SELECT r.run_id, r.phase_id, a.outcome, r.success, r.duration_seconds,"
	    " " SESSION_EVENTS ", r.telemetry_yield_per_minute,"
	    " r.reached_llm_boundary, r.failure_fingerprint, r.zero_yield_reason"
	    " FROM drain_session_results r LEFT JOIN attempts a ON a.attempt_id = r.attempt_id"
	    " WHERE r.session_id = ?1 ORDER BY r.attempt_id",
	    &q);

	if (rc == DB_OK)
		store_bind_text(q, 1, id);
	rc = store_rows_read(
	    st->db, q, rc, &l, err, "%s: reading the results of session %s", st->path, id);
	*out = l.v;
	*n = l.n;
	return rc;
}

/* Free one session's strings. */
void store_session_free(struct store_session *s)
{
	free(s->session_id);
	free(s->started_at);
	free(s->completed_at);
	free(s->stop_reason);
	free(s->settings_json);
	free(s->state_json);
	memset(s, 0, sizeof *s);
}

/* Free a session list. */
void store_session_list_free(struct store_session *list, size_t n)
{
	store_rows_free(list, n, sizeof *list, session_item_free);
}

/* Free a result list. */
void store_session_results_free(struct store_session_result *r, size_t n)
{
	store_rows_free(r, n, sizeof *r, session_result_free);
}
