/* The one insert into token_estimation_v2_events (see store_estimation.h). */
#include "common/store/store_estimation.h"
#include "common/calib/telemetry.h"
#include "common/store/store_internal.h"
#include "common/vocab.h"

static const char estimation_sql[] =
    "INSERT INTO token_estimation_v2_events (run_id, phase_id, timestamp, created_at,"
    " category, complexity, deliverable_count, deliverables_json,"
    " predicted_output_tokens, actual_output_tokens, selected_budget, actual_max_tokens,"
    " success, truncated, is_truncated_output, stop_reason, model, smape_percent,"
    " waste_ratio, underestimated, api_reference_required, examples_required,"
    " research_required, usage_guide_required, context_quality, is_sot_file,"
    " sot_file_name, sot_entry_count_hint, attempt_id, seq, estimator_version,"
    " input_tokens, deliverables_detail_json)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16,"
    " ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)";

/* Prepare the insert. */
int store_estimation_prepare(struct store *st, struct db_stmt **q, struct store_err *err)
{
	if (db_prepare_persistent(st->db, estimation_sql, q) != DB_OK) {
		db_finalize(*q);
		*q = NULL;
		return store_fail(err, STORE_EIO,
		    "%s: preparing the token_estimation_v2 insert: %s", st->path,
		    db_errmsg(st->db));
	}
	return 0;
}

/* Bind a count, or NULL when it is negative (unknown). */
static void estimation_bind_count(struct db_stmt *q, int i, int64_t v)
{
	if (v >= 0)
		db_bind_int64(q, i, v);
}

/* Bind an id, or NULL when it is 0 (none). */
static void estimation_bind_id(struct db_stmt *q, int i, uint64_t v)
{
	if (v > 0)
		db_bind_int64(q, i, (int64_t)v);
}

/* Bind one doc-feature flag: NULL when the features were not computed. */
static void estimation_bind_feature(struct db_stmt *q, int i, int64_t set, int bit)
{
	if (set >= 0)
		db_bind_int64(q, i, (set & bit) != 0);
}

/* Insert one row; STORE_EIO on failure. */
int store_estimation_insert(
    struct store *st, struct db_stmt *q, const struct store_estimation *e, struct store_err *err)
{
	double a = (double)e->actual_output_tokens, p = (double)e->predicted_output_tokens;
	int rc;

	db_reset(q);
	db_clear_bindings(q);
	store_bind_text(q, 1, e->run_id);
	store_bind_text(q, 2, e->phase_id);
	store_bind_text(q, 3, e->timestamp);
	store_bind_text(q, 4, e->created_at);
	store_bind_text(q, 5, e->category);
	store_bind_text(q, 6, e->complexity);
	db_bind_int64(q, 7, e->deliverable_count);
	store_bind_text(q, 8, e->deliverables_json != NULL ? e->deliverables_json : "[]");
	db_bind_int64(q, 9, e->predicted_output_tokens);
	db_bind_int64(q, 10, e->actual_output_tokens);
	db_bind_int64(q, 11, e->selected_budget);
	estimation_bind_count(q, 12, e->actual_max_tokens);
	db_bind_int64(q, 13, e->success);
	db_bind_int64(q, 14, e->truncated);
	store_bind_text(q, 15, e->stop_reason);
	store_bind_text(q, 16, e->model);
	if (a > 0 && p > 0) {
		db_bind_double(
		    q, 17, telem_smape(e->predicted_output_tokens, e->actual_output_tokens));
		db_bind_double(q, 18, p / a);
		db_bind_int64(q, 19, a > p);
	}
	estimation_bind_feature(q, 20, e->doc_features, DOC_API_REFERENCE);
	estimation_bind_feature(q, 21, e->doc_features, DOC_EXAMPLES);
	estimation_bind_feature(q, 22, e->doc_features, DOC_RESEARCH);
	estimation_bind_feature(q, 23, e->doc_features, DOC_USAGE_GUIDE);
	store_bind_text(q, 24, e->context_quality);
	if (e->sot_file_name != NULL)
		db_bind_int64(q, 25, 1);
	store_bind_text(q, 26, e->sot_file_name);
	estimation_bind_count(q, 27, e->sot_entry_count_hint);
	estimation_bind_id(q, 28, e->attempt_id);
	estimation_bind_id(q, 29, e->seq);
	estimation_bind_id(q, 30, e->estimator_version);
	estimation_bind_count(q, 31, e->input_tokens);
	store_bind_text(q, 32, e->deliverables_detail_json);
	rc = db_step(q);
	db_reset(q);
	if (rc != DB_DONE)
		return store_fail(err, STORE_EIO, "%s: writing a token_estimation_v2 event: %s",
		    st->path, db_errmsg(st->db));
	return 0;
}
