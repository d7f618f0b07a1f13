#include "common/store/store_drain.h"
#include "common/calib/telemetry.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

enum {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_ATT_INSERT,
	S_ATT_PHASE,
	S_PHASE_EXEC,
	S_PHASE_FENCE,
	S_EV_KEY,
	S_EV_USAGE,
	S_EV_EST,
	S_ATT_GET,
	S_ATT_END,
	S_PHASE_SET,
	S_RUN_STATE,
	S_RESULT_ROW,
	S_CTL_LOG,
	S_META_SUP,
	S_JOB,
	S_COUNT
};

static const char *const drain_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_ATT_INSERT] =
	    "INSERT INTO attempts (run_id, phase_id, attempt_number, session_id, worker_pid,"
	    " dry_run, initial_state, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_ATT_PHASE] =
	    "SELECT state, builder_attempts FROM phases WHERE run_id = ?1 AND phase_id = ?2",
	[S_PHASE_EXEC] = "UPDATE phases SET state = ?5, current_attempt_id = ?3,"
	                 " builder_attempts = builder_attempts + 1, last_attempt_timestamp = ?4,"
	                 " started_at = COALESCE(started_at, ?4), updated_at = ?4"
	                 " WHERE run_id = ?1 AND phase_id = ?2",
	[S_PHASE_FENCE] =
	    "UPDATE phases SET current_attempt_id = ?3 WHERE run_id = ?1 AND phase_id = ?2",
	[S_EV_KEY] =
	    "INSERT OR IGNORE INTO events (attempt_id, seq, kind, created_at, level, message)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_EV_USAGE] =
	    "INSERT INTO llm_usage_events (provider, model, run_id, phase_id, role, total_tokens,"
	    " prompt_tokens, completion_tokens, created_at, attempt_id, seq, status, http_status,"
	    " error_class, latency_ms, try_number)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[S_EV_EST] =
	    "INSERT INTO token_estimation_v2_events (run_id, phase_id, timestamp, created_at,"
	    " category, complexity, deliverable_count, deliverables_json,"
	    " predicted_output_tokens, actual_output_tokens, selected_budget, actual_max_tokens,"
	    " success, truncated, is_truncated_output, stop_reason, model, smape_percent,"
	    " waste_ratio, underestimated, api_reference_required, examples_required,"
	    " research_required, usage_guide_required, context_quality, is_sot_file,"
	    " sot_file_name, sot_entry_count_hint, attempt_id, seq, estimator_version,"
	    " input_tokens, deliverables_detail_json)"
	    " VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15,"
	    " ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
	[S_ATT_GET] =
	    "SELECT a.run_id, a.phase_id, a.ended_at IS NULL, p.current_attempt_id"
	    " FROM attempts a JOIN phases p ON p.run_id = a.run_id AND p.phase_id = a.phase_id"
	    " WHERE a.attempt_id = ?1",
	[S_ATT_END] =
	    "UPDATE attempts SET ended_at = ?2, outcome = ?3, failure_reason = ?4, message = ?5,"
	    " fingerprint = ?6, zero_yield_reason = ?7, reached_llm_boundary = ?8,"
	    " duration_ms = ?9,"
	    " events_committed = (SELECT count(*) FROM events WHERE attempt_id = ?1)"
	    " WHERE attempt_id = ?1",
	[S_PHASE_SET] = "UPDATE phases SET state = ?3, updated_at = ?4,"
	                " last_failure_reason = COALESCE(?5, last_failure_reason),"
	                " completed_at = CASE WHEN ?6 THEN ?4 ELSE completed_at END"
	                " WHERE run_id = ?1 AND phase_id = ?2",
	[S_RUN_STATE] = "UPDATE runs SET updated_at = ?2, started_at = COALESCE(started_at, ?2),"
	                " state = CASE WHEN d.open THEN ?3 ELSE ?4 END,"
	                " completed_at = CASE WHEN d.open THEN NULL ELSE ?2 END"
	                " FROM (SELECT EXISTS (SELECT 1 FROM phases WHERE run_id = ?1"
	                "   AND state NOT IN (?5, ?6)) AS open) d"
	                " WHERE id = ?1",
	[S_RESULT_ROW] =
	    "INSERT OR REPLACE INTO drain_session_results (session_id, attempt_id, run_id,"
	    " phase_id, phase_index, initial_state, final_state, success, error_message,"
	    " timestamp, duration_seconds, failure_fingerprint, telemetry_events_collected,"
	    " telemetry_yield_per_minute, reached_llm_boundary, zero_yield_reason)"
	    " SELECT a.session_id, a.attempt_id, a.run_id, a.phase_id, p.phase_index,"
	    " a.initial_state, p.state, ?2,"
	    " CASE WHEN a.failure_reason IS NOT NULL AND a.message IS NOT NULL"
	    "   THEN a.failure_reason || ': ' || a.message"
	    "   ELSE COALESCE(a.failure_reason, a.message) END,"
	    " a.ended_at, a.duration_ms / 1000.0, a.fingerprint, v.n,"
	    " CASE WHEN v.n > 0 AND a.duration_ms > 0"
	    "   THEN round(v.n * 60000.0 / a.duration_ms, 2) END,"
	    " a.reached_llm_boundary, a.zero_yield_reason"
	    " FROM attempts a JOIN phases p ON p.run_id = a.run_id AND p.phase_id = a.phase_id,"
	    " (SELECT count(*) AS n FROM token_estimation_v2_events WHERE attempt_id = ?1) v"
	    " WHERE a.attempt_id = ?1 AND a.session_id IS NOT NULL",
	[S_CTL_LOG] = "INSERT INTO control_log (at, peer_pid, peer_uid, command, args, ok, result)"
	              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_META_SUP] = "UPDATE meta SET supervisor_pid = ?1, control_socket = ?2 WHERE id = 1",
	[S_JOB] = "SELECT p.name, p.description, p.task_category, p.complexity, p.scope,"
	          " p.check_command, p.max_builder_attempts, r.workspace"
	          " FROM phases p JOIN runs r ON r.id = p.run_id"
	          " WHERE p.run_id = ?1 AND p.phase_id = ?2",
};

struct store_drain {
	struct store *st;
	sqlite3_stmt *stmt[S_COUNT];
};

/* Fill err with the SQLite error of the store and the failed step. */
static int drain_fail(struct store_drain *d, struct store_err *err, const char *what)
{
	snprintf(err->text, sizeof err->text, "%s: %.120s: %s", d->st->path, what,
	    sqlite3_errmsg(d->st->db));
	return STORE_EIO;
}

/* Take prepared statement `i`, reset and unbound. */
static sqlite3_stmt *drain_stmt(struct store_drain *d, int i)
{
	sqlite3_stmt *s = d->stmt[i];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Bind a nullable string. */
static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Bind an integer, or NULL when negative (the wire's "unknown"). */
static void bind_count(sqlite3_stmt *s, int i, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, v);
}

/* Step a statement that returns no row. */
static int drain_exec(struct store_drain *d, int i, sqlite3_stmt *s, struct store_err *err)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return drain_fail(d, err, drain_sql[i]);
	return 0;
}

/* Step statement `s` that selects one phase row; STORE_EINVAL when there is no such phase,
 * STORE_EIO on an SQLite error (the statement is then reset). */
static int phase_row(struct store_drain *d, sqlite3_stmt *s, const char *run_id,
    const char *phase_id, const char *what, struct store_err *err)
{
	int rc;

	bind_text(s, 1, run_id);
	bind_text(s, 2, phase_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		return 0;
	sqlite3_reset(s);
	if (rc == SQLITE_DONE) {
		snprintf(
		    err->text, sizeof err->text, "phase %s/%s: no such phase", run_id, phase_id);
		return STORE_EINVAL;
	}
	return drain_fail(d, err, what);
}

/* Copy a column as a heap string, or NULL. */
static char *col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t == NULL ? NULL : xstrndup((const char *)t, (size_t)sqlite3_column_bytes(s, i));
}

int store_drain_open(struct store *st, struct store_drain **out, struct store_err *err)
{
	struct store_drain *d = xcalloc(1, sizeof *d);
	int i;

	d->st = st;
	for (i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, drain_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		        &d->stmt[i], NULL) != SQLITE_OK) {
			drain_fail(d, err, "prepare");
			store_drain_close(d);
			return STORE_EIO;
		}
	}
	*out = d;
	return 0;
}

void store_drain_close(struct store_drain *d)
{
	int i;

	if (d == NULL)
		return;
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(d->stmt[i]);
	free(d);
}

int store_drain_begin(struct store_drain *d, struct store_err *err)
{
	return drain_exec(d, S_BEGIN, drain_stmt(d, S_BEGIN), err);
}

int store_drain_commit(struct store_drain *d, struct store_err *err)
{
	return drain_exec(d, S_COMMIT, drain_stmt(d, S_COMMIT), err);
}

void store_drain_rollback(struct store_drain *d)
{
	if (!sqlite3_get_autocommit(d->st->db))
		sqlite3_step(drain_stmt(d, S_ROLLBACK));
	sqlite3_reset(d->stmt[S_ROLLBACK]);
}

int store_drain_each_eligible(struct store_drain *d, const char *run_filter, bool with_failed,
    const char *session_id, int (*fn)(void *arg, const struct drain_phase *p), void *arg,
    struct store_err *err)
{
	static const char sql[] = "SELECT p.run_id, p.phase_id, t.tier_index, p.phase_index,"
	                          " (SELECT count(*) FROM attempts a WHERE a.run_id = p.run_id"
	                          "   AND a.phase_id = p.phase_id AND a.session_id = ?3),"
	                          " COALESCE(p.max_builder_attempts, 0), p.last_failure_reason"
	                          " FROM phases p JOIN tiers t ON t.id = p.tier_id"
	                          " WHERE (p.state = ?4 OR (?2 AND p.state = ?5))"
	                          " AND (?1 IS NULL OR p.run_id = ?1)"
	                          " ORDER BY p.run_id, t.tier_index, p.phase_index, p.id";
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(d->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "eligible phases");
	bind_text(s, 1, run_filter);
	sqlite3_bind_int(s, 2, with_failed);
	bind_text(s, 3, session_id);
	bind_text(s, 4, phase_state_name(PHASE_QUEUED));
	bind_text(s, 5, phase_state_name(PHASE_FAILED));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct drain_phase p = {
			.run_id = (char *)sqlite3_column_text(s, 0),
			.phase_id = (char *)sqlite3_column_text(s, 1),
			.tier_index = sqlite3_column_int64(s, 2),
			.phase_index = sqlite3_column_int64(s, 3),
			.attempts = sqlite3_column_int64(s, 4),
			.max_attempts = sqlite3_column_int64(s, 5),
			.last_failure_reason = (const char *)sqlite3_column_text(s, 6),
		};
		if (fn(arg, &p) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return drain_fail(d, err, "eligible phases");
	return 0;
}

int store_drain_recover(struct store_drain *d, int *closed, struct store_err *err)
{
	static const char *const sql[] = {
		"UPDATE phases SET state = ?2, updated_at = ?1"
		" WHERE state = ?3 AND current_attempt_id IN"
		" (SELECT attempt_id FROM attempts WHERE ended_at IS NULL)",
		"UPDATE attempts SET ended_at = ?1, outcome = ?2,"
		" failure_reason = ?3 WHERE ended_at IS NULL",
	};
	const char *const args[][2] = {
		{ phase_state_name(PHASE_QUEUED), phase_state_name(PHASE_EXECUTING) },
		{ outcome_name(OUTCOME_SUPERVISOR_RESTART),
		    reason_name(outcome_reason(OUTCOME_SUPERVISOR_RESTART)) },
	};
	char now[32];
	size_t i;

	time_iso8601(clock_wall_ms(), now);
	*closed = 0;
	for (i = 0; i < ARRAY_SIZE(sql); i++) {
		sqlite3_stmt *s;
		int rc;

		if (sqlite3_prepare_v2(d->st->db, sql[i], -1, &s, NULL) != SQLITE_OK)
			return drain_fail(d, err, "recover");
		sqlite3_bind_text(s, 1, now, -1, SQLITE_TRANSIENT);
		bind_text(s, 2, args[i][0]);
		bind_text(s, 3, args[i][1]);
		rc = sqlite3_step(s);
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE)
			return drain_fail(d, err, "recover");
		if (i == 1)
			*closed = sqlite3_changes(d->st->db);
	}
	return 0;
}

int store_drain_attempt_open(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t worker_pid, const char *session_id, bool dry_run, uint64_t *attempt_id,
    int64_t *attempt_number, struct store_err *err)
{
	sqlite3_stmt *s = drain_stmt(d, S_ATT_PHASE);
	enum phase_state initial;
	char now[32], *state;
	int64_t made;
	int rc;

	if ((rc = phase_row(d, s, run_id, phase_id, "attempt phase", err)) != 0)
		return rc;
	state = col_dup(s, 0);
	made = sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	initial = phase_state_parse(state);
	if (initial != PHASE_QUEUED && initial != PHASE_FAILED) {
		snprintf(err->text, sizeof err->text, "phase %s/%s: state %s is not dispatchable",
		    run_id, phase_id, state != NULL ? state : "NULL");
		free(state);
		return STORE_EINVAL;
	}
	free(state);

	time_iso8601(clock_wall_ms(), now);
	s = drain_stmt(d, S_ATT_INSERT);
	bind_text(s, 1, run_id);
	bind_text(s, 2, phase_id);
	sqlite3_bind_int64(s, 3, made + 1);
	bind_text(s, 4, session_id);
	sqlite3_bind_int64(s, 5, worker_pid);
	sqlite3_bind_int(s, 6, dry_run);
	bind_text(s, 7, phase_state_name(initial));
	bind_text(s, 8, now);
	if ((rc = drain_exec(d, S_ATT_INSERT, s, err)) != 0)
		return rc;
	*attempt_id = (uint64_t)sqlite3_last_insert_rowid(d->st->db);
	*attempt_number = made + 1;

	s = drain_stmt(d, dry_run ? S_PHASE_FENCE : S_PHASE_EXEC);
	bind_text(s, 1, run_id);
	bind_text(s, 2, phase_id);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)*attempt_id);
	bind_text(s, 4, now);
	if (!dry_run)
		bind_text(s, 5, phase_state_name(PHASE_EXECUTING));
	return drain_exec(d, dry_run ? S_PHASE_FENCE : S_PHASE_EXEC, s, err);
}

/* Copy a JSON array of strings into `l`; anything else leaves it empty. */
static void strlist_from_json(json_t *arr, struct proto_strlist *l)
{
	size_t i, n = 0;
	json_t *v;

	l->items = NULL;
	l->n = 0;
	if (!json_is_array(arr))
		return;
	l->items = xcalloc(json_array_size(arr) + 1, sizeof *l->items);
	json_array_foreach(arr, i, v)
	{
		if (json_is_string(v))
			l->items[n++] = xstrndup(json_string_value(v), json_string_length(v));
	}
	l->n = n;
}

int store_drain_job_fill(struct store_drain *d, const char *run_id, const char *phase_id,
    struct proto_job *job, struct store_err *err)
{
	sqlite3_stmt *s = drain_stmt(d, S_JOB);
	struct proto_phase *p = &job->phase;
	const char *scope;
	json_t *js = NULL;
	int rc;

	if ((rc = phase_row(d, s, run_id, phase_id, "job", err)) != 0)
		return rc;
	job->run_id = xstrdup(run_id);
	job->phase_id = xstrdup(phase_id);
	p->name = col_dup(s, 0);
	if (p->name == NULL)
		p->name = xstrdup(phase_id);
	p->description = col_dup(s, 1);
	if (p->description == NULL)
		p->description = xstrdup("");
	p->task_category = col_dup(s, 2);
	p->complexity = col_dup(s, 3);
	scope = (const char *)sqlite3_column_text(s, 4);
	if (scope != NULL)
		js = json_loads(scope, JSON_DECODE_ANY, NULL);
	if (json_is_object(js)) {
		strlist_from_json(json_object_get(js, "paths"), &p->paths);
		strlist_from_json(json_object_get(js, "read_only_context"), &p->read_only_context);
		strlist_from_json(json_object_get(js, "deliverables"), &p->deliverables);
	} else if (scope != NULL && !json_is_null(js)) {
		/* A legacy bare-string scope names one path. */
		p->paths.items = xcalloc(2, sizeof *p->paths.items);
		p->paths.items[0] = xstrdup(json_is_string(js) ? json_string_value(js) : scope);
		p->paths.n = 1;
	}
	json_decref(js);
	p->check_command = col_dup(s, 5);
	p->max_builder_attempts = sqlite3_column_int64(s, 6);
	job->workspace = col_dup(s, 7);
	if (job->workspace == NULL)
		job->workspace = xstrdup("");
	sqlite3_reset(s);
	return 0;
}

/* Insert the typed row of an llm_usage event. */
static int event_usage(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct proto_event *ev, const char *now, struct store_err *err)
{
	const struct proto_usage *u = &ev->body.usage;
	sqlite3_stmt *s = drain_stmt(d, S_EV_USAGE);

	bind_text(s, 1, u->provider);
	bind_text(s, 2, u->model);
	bind_text(s, 3, run_id);
	bind_text(s, 4, phase_id);
	bind_text(s, 5, u->role);
	sqlite3_bind_int64(s, 6, u->total_tokens < 0 ? 0 : u->total_tokens);
	bind_count(s, 7, u->prompt_tokens);
	bind_count(s, 8, u->completion_tokens);
	bind_text(s, 9, now);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)ev->attempt_id);
	sqlite3_bind_int64(s, 11, (sqlite3_int64)ev->seq);
	bind_text(s, 12, u->error_class == NULL ? "ok" : "error");
	bind_count(s, 13, u->http_status);
	bind_text(s, 14, u->error_class);
	bind_count(s, 15, u->latency_ms);
	bind_count(s, 16, u->try_number);
	return drain_exec(d, S_EV_USAGE, s, err);
}

/* Bind a doc-feature flag: NULL when the features were not computed. */
static void bind_feature(sqlite3_stmt *s, int i, int64_t set, int bit)
{
	if (set < 0)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int(s, i, (set & bit) != 0);
}

/* Insert the typed row of a token_estimation_v2 event; SMAPE, waste and underestimation
 * are derived here, and only when both counts are positive (docs/data-model.md). */
static int event_estimation(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct proto_event *ev, const char *now, struct store_err *err)
{
	const struct proto_estimation *e = &ev->body.est;
	sqlite3_stmt *s = drain_stmt(d, S_EV_EST);
	double a = (double)e->actual_output_tokens, p = (double)e->predicted_output_tokens;

	bind_text(s, 1, run_id);
	bind_text(s, 2, phase_id);
	bind_text(s, 3, now);
	bind_text(s, 4, e->category);
	bind_text(s, 5, e->complexity);
	sqlite3_bind_int64(s, 6, e->deliverable_count);
	bind_text(s, 7, e->deliverables_json);
	sqlite3_bind_int64(s, 8, e->predicted_output_tokens);
	sqlite3_bind_int64(s, 9, e->actual_output_tokens);
	sqlite3_bind_int64(s, 10, e->selected_budget);
	bind_count(s, 11, e->actual_max_tokens);
	sqlite3_bind_int(s, 12, e->success);
	sqlite3_bind_int(s, 13, e->truncated);
	bind_text(s, 14, e->stop_reason);
	bind_text(s, 15, e->model);
	if (a > 0 && p > 0) {
		sqlite3_bind_double(
		    s, 16, telem_smape(e->predicted_output_tokens, e->actual_output_tokens));
		sqlite3_bind_double(s, 17, p / a);
		sqlite3_bind_int(s, 18, a > p);
	}
	bind_feature(s, 19, e->doc_features, DOC_API_REFERENCE);
	bind_feature(s, 20, e->doc_features, DOC_EXAMPLES);
	bind_feature(s, 21, e->doc_features, DOC_RESEARCH);
	bind_feature(s, 22, e->doc_features, DOC_USAGE_GUIDE);
	bind_text(s, 23, e->context_quality);
	if (e->sot_file_name != NULL)
		sqlite3_bind_int(s, 24, 1);
	bind_text(s, 25, e->sot_file_name);
	bind_count(s, 26, e->sot_entry_count_hint);
	sqlite3_bind_int64(s, 27, (sqlite3_int64)ev->attempt_id);
	sqlite3_bind_int64(s, 28, (sqlite3_int64)ev->seq);
	sqlite3_bind_int64(s, 29, (sqlite3_int64)e->estimator_version);
	bind_count(s, 30, e->input_tokens);
	bind_text(s, 31, e->deliverables_detail_json);
	return drain_exec(d, S_EV_EST, s, err);
}

int store_drain_event_insert(struct store_drain *d, const char *run_id, const char *phase_id,
    const struct proto_event *ev, bool *dup, struct store_err *err)
{
	sqlite3_stmt *s = drain_stmt(d, S_EV_KEY);
	char now[32];
	int rc;

	time_iso8601(clock_wall_ms(), now);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)ev->attempt_id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)ev->seq);
	bind_text(s, 3, event_kind_name((enum event_kind)ev->kind));
	bind_text(s, 4, now);
	if (ev->kind == PROTO_EV_LOG) {
		bind_text(s, 5, ev->body.log.level);
		bind_text(s, 6, ev->body.log.message);
	}
	if ((rc = drain_exec(d, S_EV_KEY, s, err)) != 0)
		return rc;
	*dup = sqlite3_changes(d->st->db) == 0;
	if (*dup)
		return 0;
	if (ev->kind == PROTO_EV_LLM_USAGE)
		rc = event_usage(d, run_id, phase_id, ev, now, err);
	else if (ev->kind == PROTO_EV_TOKEN_ESTIMATION)
		rc = event_estimation(d, run_id, phase_id, ev, now, err);
	return rc;
}

int store_drain_attempt_close(struct store_drain *d, uint64_t att, const struct drain_close *c,
    bool *stale, struct store_err *err)
{
	sqlite3_stmt *s = drain_stmt(d, S_ATT_GET);
	char now[32], *run_id, *phase_id;
	bool open, current;
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)att);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		if (rc == SQLITE_DONE) {
			*stale = true;
			return 0;
		}
		return drain_fail(d, err, "attempt lookup");
	}
	run_id = col_dup(s, 0);
	phase_id = col_dup(s, 1);
	open = sqlite3_column_int(s, 2) != 0;
	current = (uint64_t)sqlite3_column_int64(s, 3) == att;
	sqlite3_reset(s);
	*stale = !open || !current;
	if (*stale)
		goto out;

	time_iso8601(clock_wall_ms(), now);
	s = drain_stmt(d, S_ATT_END);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)att);
	bind_text(s, 2, now);
	bind_text(s, 3, outcome_name(c->outcome));
	bind_text(s, 4, reason_name(c->reason));
	bind_text(s, 5, c->message);
	bind_text(s, 6, c->fingerprint);
	bind_text(s, 7, zero_yield_name(c->zero_yield));
	sqlite3_bind_int(s, 8, c->reached_llm_boundary);
	sqlite3_bind_int64(s, 9, c->duration_ms);
	if ((rc = drain_exec(d, S_ATT_END, s, err)) != 0)
		goto out;
	if (c->phase_state != PHASE_STATE_NONE) {
		bool done = c->phase_state == PHASE_COMPLETE || c->phase_state == PHASE_FAILED;

		s = drain_stmt(d, S_PHASE_SET);
		bind_text(s, 1, run_id);
		bind_text(s, 2, phase_id);
		bind_text(s, 3, phase_state_name(c->phase_state));
		bind_text(s, 4, now);
		/* A completed phase keeps the reason of its last failure. */
		if (c->phase_state != PHASE_COMPLETE)
			bind_text(s, 5, reason_name(c->reason));
		sqlite3_bind_int(s, 6, done);
		if ((rc = drain_exec(d, S_PHASE_SET, s, err)) != 0)
			goto out;
		/* The run is DONE_SUCCESS once every phase is COMPLETE or SKIPPED. */
		s = drain_stmt(d, S_RUN_STATE);
		bind_text(s, 1, run_id);
		bind_text(s, 2, now);
		bind_text(s, 3, run_state_name(RUN_PHASE_EXECUTION));
		bind_text(s, 4, run_state_name(RUN_DONE_SUCCESS));
		bind_text(s, 5, phase_state_name(PHASE_COMPLETE));
		bind_text(s, 6, phase_state_name(PHASE_SKIPPED));
		if ((rc = drain_exec(d, S_RUN_STATE, s, err)) != 0)
			goto out;
	}
	s = drain_stmt(d, S_RESULT_ROW);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)att);
	sqlite3_bind_int(s, 2, outcome_ok(c->outcome));
	rc = drain_exec(d, S_RESULT_ROW, s, err);
out:
	free(run_id);
	free(phase_id);
	return rc == SQLITE_ROW ? 0 : rc;
}

int store_drain_control_log(struct store_drain *d, int64_t peer_pid, int64_t peer_uid,
    const char *command, const char *args, bool ok, const char *result, struct store_err *err)
{
	sqlite3_stmt *s = drain_stmt(d, S_CTL_LOG);
	char now[32];

	time_iso8601(clock_wall_ms(), now);
	bind_text(s, 1, now);
	sqlite3_bind_int64(s, 2, peer_pid);
	sqlite3_bind_int64(s, 3, peer_uid);
	bind_text(s, 4, command);
	bind_text(s, 5, args);
	sqlite3_bind_int(s, 6, ok);
	bind_text(s, 7, result);
	return drain_exec(d, S_CTL_LOG, s, err);
}

int store_drain_set_supervisor(
    struct store_drain *d, int64_t pid, const char *socket_path, struct store_err *err)
{
	sqlite3_stmt *s = drain_stmt(d, S_META_SUP);

	if (pid > 0)
		sqlite3_bind_int64(s, 1, pid);
	bind_text(s, 2, pid > 0 ? socket_path : NULL);
	return drain_exec(d, S_META_SUP, s, err);
}

int store_drain_phase_counts(
    struct store_drain *d, int64_t counts[PHASE_STATE_COUNT], struct store_err *err)
{
	sqlite3_stmt *s;
	int rc, i;

	if (sqlite3_prepare_v2(d->st->db, "SELECT state, count(*) FROM phases GROUP BY state", -1,
	        &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "phase counts");
	for (i = 0; i < PHASE_STATE_COUNT; i++)
		counts[i] = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		counts[phase_state_parse((const char *)sqlite3_column_text(s, 0))] +=
		    sqlite3_column_int64(s, 1);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return drain_fail(d, err, "phase counts");
	return 0;
}

/* Run one statement with up to three text parameters (NULLs allowed) and no result. */
static int drain_run(struct store_drain *d, const char *sql, const char *a, const char *b,
    const char *c, struct store_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(d->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, sql);
	bind_text(s, 1, a);
	bind_text(s, 2, b);
	bind_text(s, 3, c);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return drain_fail(d, err, sql);
	return 0;
}

int store_drain_set_synchronous(struct store_drain *d, bool full, struct store_err *err)
{
	return drain_run(d, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
	    NULL, NULL, NULL, err);
}

int store_drain_session_open(struct store_drain *d, const char *session_id, int64_t pid,
    const char *settings_json, struct store_err *err)
{
	char now[32], spid[24];

	time_iso8601(clock_wall_ms(), now);
	snprintf(spid, sizeof spid, "%lld", (long long)pid);
	return drain_run(d,
	           "INSERT INTO drain_sessions (session_id, started_at, supervisor_pid"
	           ")"
	           " VALUES (?1, ?2, CAST(?3 AS INTEGER))",
	           session_id, now, spid, err) != 0 ?
	    STORE_EIO :
	    drain_run(d,
	        "UPDATE drain_sessions SET settings_json = ?2"
	        " WHERE session_id = ?1",
	        session_id, settings_json, NULL, err);
}

int store_drain_session_state(
    struct store_drain *d, const char *session_id, const char *state_json, struct store_err *err)
{
	return drain_run(d, "UPDATE drain_sessions SET state_json = ?2 WHERE session_id = ?1",
	    session_id, state_json, NULL, err);
}

int store_drain_session_find_open(
    struct store_drain *d, char **session_id, char **state_json, struct store_err *err)
{
	sqlite3_stmt *s;
	int rc;

	*session_id = *state_json = NULL;
	if (sqlite3_prepare_v2(d->st->db,
	        "SELECT session_id, state_json FROM drain_sessions"
	        " WHERE completed_at IS NULL ORDER BY started_at DESC, rowid DESC LIMIT 1",
	        -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "unfinished session");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*session_id = col_dup(s, 0);
		*state_json = col_dup(s, 1);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return drain_fail(d, err, "unfinished session");
	return 0;
}

int64_t store_drain_session_attempts(struct store_drain *d, const char *session_id)
{
	sqlite3_stmt *s;
	int64_t n = 0;

	if (sqlite3_prepare_v2(d->st->db, "SELECT count(*) FROM attempts WHERE session_id = ?1", -1,
	        &s, NULL) != SQLITE_OK)
		return 0;
	bind_text(s, 1, session_id);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

int store_drain_session_close(
    struct store_drain *d, const char *session_id, const char *stop_reason, struct store_err *err)
{
	char now[32];

	time_iso8601(clock_wall_ms(), now);
	return drain_run(d,
	    "UPDATE drain_sessions SET completed_at = ?2, stop_reason = ?3"
	    " WHERE session_id = ?1",
	    session_id, now, stop_reason, err);
}

int store_drain_active_coefs(struct store_drain *d, uint64_t *version, struct proto_coef **rows,
    size_t *n, char **model_json, struct store_err *err)
{
	sqlite3_stmt *s;
	json_t *arr = NULL, *row;
	size_t i;
	int rc;

	*version = 1;
	*rows = NULL;
	*n = 0;
	*model_json = NULL;
	if (sqlite3_prepare_v2(d->st->db,
	        "SELECT version, overhead_json, model_json FROM"
	        " estimator_coefficients WHERE active = 1",
	        -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "estimator coefficients");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*version = (uint64_t)sqlite3_column_int64(s, 0);
		arr = json_loads((const char *)sqlite3_column_text(s, 1), 0, NULL);
		*model_json = col_dup(s, 2);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return drain_fail(d, err, "estimator coefficients");
	if (rc == SQLITE_ROW && !json_is_array(arr)) {
		json_decref(arr);
		snprintf(err->text, sizeof err->text,
		    "%s: estimator coefficient set %llu:"
		    " overhead_json is not an array",
		    d->st->path, (unsigned long long)*version);
		return STORE_EINVAL;
	}
	*rows = xcalloc(json_array_size(arr) + 1, sizeof **rows);
	json_array_foreach(arr, i, row)
	{
		const char *cat = json_string_value(json_array_get(row, 0));
		const char *cplx = json_string_value(json_array_get(row, 1));
		json_t *v = json_array_get(row, 2);

		if (cat == NULL || cplx == NULL || !json_is_integer(v))
			continue;
		(*rows)[*n].category = xstrdup(cat);
		(*rows)[*n].complexity = xstrdup(cplx);
		(*rows)[*n].overhead = json_integer_value(v);
		(*n)++;
	}
	json_decref(arr);
	return 0;
}

/* Write the names of the states in `set` as "A, B or C" into buf. */
static void state_set_text(unsigned set, char *buf, size_t n)
{
	size_t len = 0, left = 0;
	int i;

	for (i = 1; i < PHASE_STATE_COUNT; i++)
		left += (set >> i) & 1u;
	buf[0] = '\0';
	for (i = 1; i < PHASE_STATE_COUNT && len < n; i++) {
		if (!((set >> i) & 1u))
			continue;
		left--;
		len += (size_t)snprintf(buf + len, n - len, "%s%s", phase_state_name(i),
		    left > 1      ? ", " :
		        left == 1 ? " or " :
		                    "");
	}
}

int store_drain_phase_move(struct store_drain *d, const char *run_id, const char *phase_id,
    unsigned from, enum phase_state to, struct store_err *err)
{
	sqlite3_stmt *s;
	char *state = NULL, allowed[128];
	int rc;

	if (sqlite3_prepare_v2(d->st->db,
	        "SELECT state FROM phases WHERE run_id = ?1 AND"
	        " phase_id = ?2",
	        -1, &s, NULL) != SQLITE_OK)
		return drain_fail(d, err, "phase state");
	bind_text(s, 1, run_id);
	bind_text(s, 2, phase_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		state = col_dup(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return drain_fail(d, err, "phase state");
	if (rc == SQLITE_DONE) {
		snprintf(err->text, sizeof err->text, "no phase %s in run %s", phase_id, run_id);
		return STORE_EINVAL;
	}
	if (!((from >> phase_state_parse(state)) & 1u) || phase_state_parse(state) == 0) {
		state_set_text(from, allowed, sizeof allowed);
		snprintf(err->text, sizeof err->text, "phase %s/%s is %s, not %s", run_id, phase_id,
		    state != NULL ? state : "NULL", allowed);
		free(state);
		return STORE_EINVAL;
	}
	free(state);
	return drain_run(d,
	    "UPDATE phases SET state = ?3, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ')"
	    " WHERE run_id = ?1 AND phase_id = ?2",
	    run_id, phase_id, phase_state_name(to), err);
}
