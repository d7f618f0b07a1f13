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
	                          " WHERE state = ?1 OR (?2 AND state = ?3)"
	                          " GROUP BY run_id, task_category";
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(d->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "queued phases by category");
	store_bind_text(s, 1, phase_state_name(PHASE_QUEUED));
	sqlite3_bind_int(s, 2, with_failed);
	store_bind_text(s, 3, phase_state_name(PHASE_FAILED));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (fn(arg, (const char *)sqlite3_column_text(s, 0),
		        (const char *)sqlite3_column_text(s, 1), sqlite3_column_int64(s, 2)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
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
	    " AND (CASE WHEN ?1 THEN a.outcome = ?2"
	    "      ELSE a.outcome IN (?3, ?4, ?5, ?6, ?7) END)"
	    " ORDER BY a.attempt_id DESC LIMIT ?8";
	static const enum outcome ran[] = { OUTCOME_SUCCESS, OUTCOME_FAILED, OUTCOME_TIMEOUT,
		OUTCOME_WORKER_CRASHED, OUTCOME_HEARTBEAT_LOST };
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(d->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "attempt durations");
	sqlite3_bind_int(s, 1, dry_run);
	store_bind_text(s, 2, outcome_name(OUTCOME_DRY_RUN));
	for (size_t i = 0; i < ARRAY_SIZE(ran); i++)
		store_bind_text(s, 3 + (int)i, outcome_name(ran[i]));
	sqlite3_bind_int64(s, 8, limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (fn(arg, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1)) !=
		    0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return drain_fail(d, err, "attempt durations");
	return 0;
}

/* Call fn for the newest `limit` attempts that ended without doing what was asked,
 * newest first; STORE_EIO on failure. */
int store_drain_each_failure(struct store_drain *d, int64_t limit,
    int (*fn)(void *arg, const struct drain_failure *f), void *arg, struct store_err *err)
{
	static const char sql[] =
	    "SELECT a.attempt_id, a.run_id, a.phase_id, a.attempt_number, a.outcome,"
	    " a.failure_reason, a.message, a.ended_at, COALESCE(r.workspace, '')"
	    " FROM attempts a LEFT JOIN runs r ON r.id = a.run_id"
	    " WHERE a.ended_at IS NOT NULL AND a.outcome NOT IN (?1, ?2)"
	    " ORDER BY a.attempt_id DESC LIMIT ?3";
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(d->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "recent failures");
	store_bind_text(s, 1, outcome_name(OUTCOME_SUCCESS));
	store_bind_text(s, 2, outcome_name(OUTCOME_DRY_RUN));
	sqlite3_bind_int64(s, 3, limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct drain_failure f = {
			.attempt_id = (uint64_t)sqlite3_column_int64(s, 0),
			.run_id = (const char *)sqlite3_column_text(s, 1),
			.phase_id = (const char *)sqlite3_column_text(s, 2),
			.attempt_number = sqlite3_column_int64(s, 3),
			.outcome = outcome_parse((const char *)sqlite3_column_text(s, 4)),
			.reason = (const char *)sqlite3_column_text(s, 5),
			.message = (const char *)sqlite3_column_text(s, 6),
			.ended_at = (const char *)sqlite3_column_text(s, 7),
			.workspace = (const char *)sqlite3_column_text(s, 8),
		};
		if (fn(arg, &f) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return drain_fail(d, err, "recent failures");
	return 0;
}

/* Read attempt `att`'s phase's task category into *category (a heap string, NULL when the
 * phase has none); STORE_EINVAL when there is no such attempt, STORE_EIO on failure. */
int store_drain_attempt_category(
    struct store_drain *d, uint64_t att, char **category, struct store_err *err)
{
	static const char sql[] =
	    "SELECT p.task_category FROM attempts a"
	    " JOIN phases p ON p.run_id = a.run_id AND p.phase_id = a.phase_id"
	    " WHERE a.attempt_id = ?1";
	sqlite3_stmt *s;
	int rc;

	*category = NULL;
	if (sqlite3_prepare_v2(d->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "attempt category");
	sqlite3_bind_int64(s, 1, (sqlite3_int64)att);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*category = store_col_text(s, 0, NULL);
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return store_fail(
		    err, STORE_EINVAL, "%s: no attempt %llu", d->st->path, (unsigned long long)att);
	if (rc != SQLITE_ROW)
		return drain_fail(d, err, "attempt category");
	return 0;
}

/* Count a session's attempts that left their phase for good (*done: the phase is
 * COMPLETE, FAILED or SKIPPED after it, or it was a dry run) and those that did not do
 * what was asked (*failed); STORE_EIO on failure. */
int store_drain_session_tally(struct store_drain *d, const char *session_id, int64_t *done,
    int64_t *failed, struct store_err *err)
{
	static const char sql[] =
	    "SELECT COALESCE(sum(r.final_state IN (?2, ?3, ?4) OR a.dry_run = 1), 0),"
	    " COALESCE(sum(r.success = 0), 0)"
	    " FROM drain_session_results r JOIN attempts a ON a.attempt_id = r.attempt_id"
	    " WHERE r.session_id = ?1";
	sqlite3_stmt *s;
	int rc;

	*done = *failed = 0;
	if (sqlite3_prepare_v2(d->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "session tally");
	store_bind_text(s, 1, session_id);
	store_bind_text(s, 2, phase_state_name(PHASE_COMPLETE));
	store_bind_text(s, 3, phase_state_name(PHASE_FAILED));
	store_bind_text(s, 4, phase_state_name(PHASE_SKIPPED));
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*done = sqlite3_column_int64(s, 0);
		*failed = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return drain_fail(d, err, "session tally");
	return 0;
}
