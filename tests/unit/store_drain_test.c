/* The drain's store through its own types: the phase spec, the event key, the one
 * token-estimation insert, attempt ends and phase moves. */
#include "common/store/store_drain.h"
#include "common/store/store_estimation.h"
#include "common/util.h"
#include "tests/unit/test.h"
#include "tests/unit/testutil.h"

#define RUN STORE_SEED_RUN_ID
#define P1 "telemetry-p1-string-util"

/* A seeded database and its drain store. */
static void drain_setup(struct store *st, struct store_drain **d)
{
	struct store_plan_summary sum;
	struct store_err err;
	char *ws = test_path("ws");

	test_store_new(st, "drain.db");
	CHECK_EQ_INT(store_seed_telemetry_run(st, ws, &sum, &err), 0);
	store_plan_summary_free(&sum);
	CHECK_EQ_INT(store_drain_open(st, d, &err), 0);
	free(ws);
}

TEST(store_drain_spec_is_the_phase_row)
{
	struct drain_spec spec;
	struct store_drain *d;
	struct store_err err;
	struct store st;

	drain_setup(&st, &d);
	CHECK_EQ_INT(store_drain_spec(d, RUN, P1, &spec, &err), 0);
	CHECK_EQ_STR(spec.name, "String utilities");
	CHECK_EQ_STR(spec.task_category, "implementation");
	CHECK_EQ_STR(spec.complexity, "low");
	CHECK_EQ_INT(spec.deliverables.n, 1);
	CHECK(strstr(spec.deliverables.v[0], "string_helper.py") != NULL);
	CHECK(spec.workspace[0] == '/');
	store_drain_spec_free(&spec);
	CHECK_EQ_INT(store_drain_spec(d, RUN, "no-such-phase", &spec, &err), STORE_EINVAL);
	CHECK(strstr(err.text, "no such phase") != NULL);
	store_drain_close(d);
	store_close(&st);
}

TEST(store_drain_event_key_and_the_one_estimation_insert)
{
	struct drain_event ev = { .seq = 1, .kind = EVENT_TOKEN_ESTIMATION_V2 };
	struct store_drain *d;
	struct store_err err;
	struct store st;
	struct db_stmt *q;
	uint64_t att;
	int64_t num;
	bool dup;

	drain_setup(&st, &d);
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, RUN, P1, 1, NULL, false, &att, &num, &err), 0);
	ev.attempt_id = att;
	ev.u.est = (struct store_estimation){ .category = "implementation",
		.complexity = "low",
		.deliverable_count = 1,
		.deliverables_json = "[\"a.py\"]",
		.predicted_output_tokens = 300,
		.actual_output_tokens = 100,
		.selected_budget = 4096,
		.actual_max_tokens = 8192,
		.success = true,
		.model = "m",
		.estimator_version = 3,
		.doc_features = DOC_EXAMPLES,
		.sot_entry_count_hint = -1 };
	CHECK_EQ_INT(store_drain_event_insert(d, RUN, P1, &ev, &dup, &err), 0);
	CHECK(!dup);
	CHECK_EQ_INT(store_drain_event_insert(d, RUN, P1, &ev, &dup, &err), 0);
	CHECK(dup);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM token_estimation_v2_events"), 1);
	/* SMAPE |100-300| / 200 = 100 %, waste 3, not underestimated; features as bits. */
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT smape_percent = 100.0 AND waste_ratio = 3.0 AND"
	                 " underestimated = 0 AND examples_required = 1 AND research_required = 0"
	                 " AND estimator_version = 3 AND seq = 1 AND is_sot_file IS NULL"
	                 " FROM token_estimation_v2_events"),
	    1);

	/* The same insert serves a sample from elsewhere: no attempt, no version, no features. */
	CHECK_EQ_INT(store_estimation_prepare(&st, &q, &err), 0);
	CHECK_EQ_INT(store_estimation_insert(&st, q,
	                 &(struct store_estimation){ .run_id = RUN,
	                     .phase_id = P1,
	                     .timestamp = "t",
	                     .created_at = "t",
	                     .category = "c",
	                     .complexity = "low",
	                     .predicted_output_tokens = 0,
	                     .actual_output_tokens = 50,
	                     .actual_max_tokens = -1,
	                     .model = "m",
	                     .doc_features = -1,
	                     .sot_entry_count_hint = -1 },
	                 &err),
	    0);
	db_finalize(q);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT smape_percent IS NULL AND attempt_id IS NULL AND"
	                 " estimator_version IS NULL AND examples_required IS NULL AND"
	                 " deliverables_json = '[]' FROM token_estimation_v2_events WHERE"
	                 " category = 'c'"),
	    1);
	store_drain_close(d);
	store_close(&st);
}

TEST(store_drain_attempt_close_moves_phase_and_run_once)
{
	struct drain_close c = { .outcome = OUTCOME_FAILED,
		.reason = REASON_CHECK_FAILED,
		.message = "boom",
		.phase_state = PHASE_FAILED };
	struct store_drain *d;
	struct store_err err;
	struct store st;
	uint64_t att;
	int64_t num;
	bool stale;

	drain_setup(&st, &d);
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, RUN, P1, 1, NULL, false, &att, &num, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &c, &stale, &err), 0);
	CHECK(!stale);
	/* A second end of the same attempt is stale and writes nothing. */
	c.reason = REASON_PARSE_FAILED;
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &c, &stale, &err), 0);
	CHECK(stale);
	CHECK_EQ_INT(store_drain_attempt_close(d, att + 100, &c, &stale, &err), 0);
	CHECK(stale);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM attempts WHERE outcome = 'failed' AND"
	                 " failure_reason = 'CHECK_FAILED' AND ended_at IS NOT NULL"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM phases WHERE phase_id = '" P1 "' AND state ="
	                 " 'FAILED' AND last_failure_reason = 'CHECK_FAILED'"),
	    1);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM runs WHERE state = 'PHASE_EXECUTION'"), 1);
	store_drain_close(d);
	store_close(&st);
}

TEST(store_drain_phase_move_names_the_states)
{
	int64_t counts[PHASE_STATE_COUNT];
	struct store_drain *d;
	struct store_err err;
	struct store st;

	drain_setup(&st, &d);
	CHECK_EQ_INT(store_drain_phase_move(
	                 d, RUN, P1, 1u << PHASE_FAILED | 1u << PHASE_SKIPPED, PHASE_QUEUED, &err),
	    STORE_EINVAL);
	CHECK_EQ_STR(err.text, "phase " RUN "/" P1 " is QUEUED, not FAILED or SKIPPED");
	CHECK_EQ_INT(store_drain_phase_move(
	                 d, RUN, P1, 1u << PHASE_QUEUED | 1u << PHASE_FAILED, PHASE_SKIPPED, &err),
	    0);
	CHECK_EQ_INT(
	    store_drain_phase_move(d, RUN, "nope", 1u << PHASE_QUEUED, PHASE_SKIPPED, &err),
	    STORE_EINVAL);
	CHECK_EQ_INT(store_drain_phase_counts(d, counts, &err), 0);
	CHECK_EQ_INT(counts[PHASE_SKIPPED], 1);
	CHECK_EQ_INT(counts[PHASE_QUEUED], 9);
	store_drain_close(d);
	store_close(&st);
}
