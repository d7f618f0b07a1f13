/* What the people watching a drain read: the task categories of the phases still queued,
 * the durations of finished attempts, recent failures, an attempt's run, phase and
 * category, and the tally of a session being resumed. Each is a statement of its own,
 * outside a transaction; none writes. */
#include "common/store/store_drain_internal.h"
#include "common/util.h"

#include <stdlib.h>

/* Call fn for each (run, task category) of the phases in state QUEUED (and FAILED when
 * with_failed), with their count; STORE_EIO on failure. */
int store_drain_each_queued_category(struct store_drain *d, bool with_failed,
    int (*fn)(void *arg, const char *run_id, const char *category, int64_t n), void *arg,
    struct store_err *err)
{
	static const char sql[] = "SELECT run_id, task_category, count(*) FROM phases"
	                          " WHERE state IN (?1, ?2)"
	                          " GROUP BY run_id, task_category ORDER BY run_id";
	struct db_stmt *s;
	int rc;

	if (db_prepare(d->st->db, sql, &s) != DB_OK)
		return drain_fail(d, err, "queued phases by category");
	store_bind_text(s, 1, phase_state_name(PHASE_QUEUED));
	store_bind_text(s, 2, phase_state_name(with_failed ? PHASE_FAILED : PHASE_QUEUED));
	while ((rc = db_step(s)) == DB_ROW) {
		if (fn(arg, db_column_text(s, 0), db_column_text(s, 1), db_column_int64(s, 2)) !=
		    0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	if (rc != DB_DONE)
		return drain_fail(d, err, "queued phases by category");
	return 0;
}

/* Call fn with the task category and duration of the newest `limit` attempts that ran to
 * an end of their own (success, failed, timeout, a crash or a lost heartbeat; dry runs
 * only, when dry_run); STORE_EIO on failure. */
int store_drain_each_duration(struct store_drain *d, bool dry_run, int64_t limit,
    int (*fn)(void *arg, const char *category, int64_t duration_ms), void *arg,
    struct store_err *err)
{
	static const char sql[] =
	    "SELECT p.task_category, a.duration_ms FROM attempts a"
	    " JOIN phases p ON p.run_id = a.run_id AND p.phase_id = a.phase_id"
	    " WHERE a.ended_at IS NOT NULL AND a.duration_ms IS NOT NULL AND a.duration_ms >= 0"
	    " AND a.outcome IN (?1, ?2, ?3, ?4, ?5)"
	    " ORDER BY a.attempt_id DESC LIMIT ?6";
	static const enum outcome ran[] = { OUTCOME_SUCCESS, OUTCOME_FAILED, OUTCOME_TIMEOUT,
		OUTCOME_WORKER_CRASHED, OUTCOME_HEARTBEAT_LOST };
	struct db_stmt *s;

	if (db_prepare(d->st->db, sql, &s) != DB_OK)
		return drain_fail(d, err, "attempt durations");
	for (size_t i = 0; i < ARRAY_SIZE(ran); i++)
		store_bind_text(s, 1 + (int)i, outcome_name(dry_run ? OUTCOME_DRY_RUN : ran[i]));
	db_bind_int64(s, 6, limit);
	return drain_each_text_int(d, s, fn, arg, err, "attempt durations");
}

/* Call fn for the newest `limit` attempts that ended without doing what was asked,
 * newest first, but for those the supervisor ended before any worker had them (a lease
 * opened ahead that a pause or a stop gave back: no worker pid, supervisor_stopped);
 * STORE_EIO on failure. */
int store_drain_each_failure(struct store_drain *d, int64_t limit,
    int (*fn)(void *arg, const struct drain_failure *f), void *arg, struct store_err *err)
{
	static const char sql[] =
	    "SELECT a.attempt_id, a.run_id, a.phase_id, a.attempt_number, a.outcome,"
	    " a.failure_reason, a.message, a.ended_at, COALESCE(r.workspace, '')"
	    " FROM attempts a LEFT JOIN runs r ON r.id = a.run_id"
	    " WHERE a.ended_at IS NOT NULL AND a.outcome NOT IN (?1, ?2)"
	    " AND NOT (a.worker_pid IS NULL AND a.outcome = ?4)"
	    " ORDER BY a.attempt_id DESC LIMIT ?3";
	struct db_stmt *s;
	int rc;

	if (db_prepare(d->st->db, sql, &s) != DB_OK)
		return drain_fail(d, err, "recent failures");
	store_bind_text(s, 1, outcome_name(OUTCOME_SUCCESS));
	store_bind_text(s, 2, outcome_name(OUTCOME_DRY_RUN));
	db_bind_int64(s, 3, limit);
	store_bind_text(s, 4, outcome_name(OUTCOME_SUPERVISOR_STOPPED));
	while ((rc = db_step(s)) == DB_ROW) {
		struct drain_failure f = {
			.attempt_id = (uint64_t)db_column_int64(s, 0),
			.run_id = db_column_text(s, 1),
			.phase_id = db_column_text(s, 2),
			.attempt_number = db_column_int64(s, 3),
			.outcome = outcome_parse(db_column_text(s, 4)),
			.reason = db_column_text(s, 5),
			.message = db_column_text(s, 6),
			.ended_at = db_column_text(s, 7),
			.workspace = db_column_text(s, 8),
		};
		if (fn(arg, &f) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	if (rc != DB_DONE)
		return drain_fail(d, err, "recent failures");
	return 0;
}

/* Count a session's attempts that left their phase for good (*done: the phase is
 * COMPLETE, FAILED or SKIPPED after it, or it was a dry run) and those that did not do
 * what was asked (*failed); STORE_EIO on failure. */
int store_drain_session_tally(struct store_drain *d, const char *session_id, int64_t *done,
    int64_t *failed, int64_t *handed_back, struct store_err *err)
{
	static const char sql[] =
	    "SELECT COALESCE(sum(CASE WHEN r.final_state IN (?2, ?3, ?4) OR a.dry_run <> 0"
	    "   THEN 1 ELSE 0 END), 0),"
	    " COALESCE(sum(CASE WHEN r.success = 0 AND NOT (r.final_state = ?5 AND a.outcome IN"
	    "   (" OUTCOME_HANDS_BACK_SQL ")) THEN 1 ELSE 0 END), 0),"
	    " COALESCE(sum(CASE WHEN r.success = 0 AND r.final_state = ?5 AND a.outcome IN"
	    "   (" OUTCOME_HANDS_BACK_SQL ") THEN 1 ELSE 0 END), 0)"
	    " FROM drain_session_results r JOIN attempts a ON a.attempt_id = r.attempt_id"
	    " WHERE r.session_id = ?1";
	struct db_stmt *s;
	int rc;

	*done = *failed = *handed_back = 0;
	if (db_prepare(d->st->db, sql, &s) != DB_OK)
		return drain_fail(d, err, "session tally");
	store_bind_text(s, 1, session_id);
	store_bind_text(s, 2, phase_state_name(PHASE_COMPLETE));
	store_bind_text(s, 3, phase_state_name(PHASE_FAILED));
	store_bind_text(s, 4, phase_state_name(PHASE_SKIPPED));
	store_bind_text(s, 5, phase_state_name(PHASE_QUEUED));
	rc = db_step(s);
	if (rc == DB_ROW) {
		*done = db_column_int64(s, 0);
		*failed = db_column_int64(s, 1);
		*handed_back = db_column_int64(s, 2);
	}
	db_finalize(s);
	if (rc != DB_ROW)
		return drain_fail(d, err, "session tally");
	return 0;
}
