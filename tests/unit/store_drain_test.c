/* The drain's store through its own types: the phase spec, the event key, the one
 * token-estimation insert, attempt ends and phase moves, and the tier states that follow
 * them. */
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_drain.h"
#include "common/store/store_drain_internal.h"
#include "common/store/store_estimation.h"
#include "common/store/store_failed.h"
#include "common/store/store_internal.h"
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

/* drain_setup, with the drain session "s" open. */
static void session_setup(struct store *st, struct store_drain **d)
{
	struct store_err err;
	char *id = NULL;

	drain_setup(st, d);
	CHECK_EQ_INT(store_drain_session_open(*d, "s", 1, "{}", &id, &err), 0);
	CHECK_EQ_STR(id, "s");
	free(id);
}

/* The token estimation an attempt's event carries here: 300 output tokens predicted and
 * 100 used, a budget of 4096 in a call allowed 8192, examples asked for. */
static const struct store_estimation sample_estimation = { .category = "implementation",
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

/* Whether SQLite's program for `sql` on `h` builds a temporary table (OpenEphemeral). */
static bool uses_temporary_table(sqlite3 *h, const char *sql)
{
	char *explain = xasprintf("EXPLAIN %s", sql);
	sqlite3_stmt *q = NULL;
	bool found = false;

	CHECK_EQ_INT(sqlite3_prepare_v2(h, explain, -1, &q, NULL), SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW)
		found = found ||
		    strcmp((const char *)sqlite3_column_text(q, 1), "OpenEphemeral") == 0;
	sqlite3_finalize(q);
	free(explain);
	return found;
}

/* The statements run for every phase (an attempt's opening and end, its events) build no
 * temporary table: SQLite allocates and zeroes one each time it runs such a statement (an
 * UPDATE that finds its rows through an index it rewrites gathers them in one first). */
TEST(store_drain_phase_statements_build_no_temporary_table)
{
	const struct drain_sql *sets[] = { drain_sql_attempt, drain_sql_event };
	const size_t ns[] = { drain_sql_attempt_n, drain_sql_event_n };
	struct store_drain *d;
	struct store st;

	drain_setup(&st, &d);
	for (size_t k = 0; k < ARRAY_SIZE(sets); k++)
		for (size_t i = 0; i < ns[k]; i++) {
			if (uses_temporary_table(db_sqlite_handle(st.db), sets[k][i].sql))
				fprintf(stderr, "builds a temporary table: %s\n", sets[k][i].sql);
			CHECK(!uses_temporary_table(db_sqlite_handle(st.db), sets[k][i].sql));
		}
	store_drain_close(d);
	store_close(&st);
}

TEST(store_drain_session_name_taken_gets_the_first_free_suffix)
{
	const char *want[] = { "s", "s-2", "s-3" };
	struct store_drain *d;
	struct store_err err;
	struct store st;
	char *id;
	size_t i;

	drain_setup(&st, &d);
	for (i = 0; i < ARRAY_SIZE(want); i++) {
		CHECK_EQ_INT(store_drain_session_open(d, "s", 1, "{\"k\":1}", &id, &err), 0);
		CHECK_EQ_STR(id, want[i]);
		free(id);
	}
	CHECK_EQ_INT(store_drain_session_close(d, "s-2", "done", &err), 0);
	CHECK_EQ_INT(store_drain_session_open(d, "s-2", 1, "{}", &id, &err), 0);
	CHECK_EQ_STR(id, "s-2-2");
	free(id);
	store_drain_close(d);
	store_close(&st);
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
	ev.u.est = sample_estimation;
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

/* Open a dry-run attempt of phase `phase` in session "s" in a group of its own, committed
 * (`commit`) or rolled back; its id. */
static uint64_t live_open(struct store_drain *d, const char *phase, bool commit)
{
	struct store_err err;
	uint64_t att;
	int64_t num;

	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, RUN, phase, 1, "s", true, &att, &num, &err), 0);
	if (commit)
		CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	else
		store_drain_rollback(d);
	return att;
}

/* End attempt `att` in a group of its own; whether it was stale. */
static bool live_close(struct store_drain *d, uint64_t att)
{
	struct drain_close c = { .outcome = OUTCOME_SUCCESS, .phase_state = PHASE_STATE_NONE };
	struct store_err err;
	bool stale;

	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &c, &stale, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	return stale;
}

/* An attempt's end finds its attempt open or stale, and its phase as it is, as the
 * database says, whatever the drain kept of the attempts it opened: through a
 * rolled-back opening, an end written by another connection, a second opening of the
 * phase, and a phase move. */
TEST(store_drain_attempt_end_reads_its_attempt_as_the_database_has_it)
{
	struct store_drain *d;
	struct store_err err;
	struct store st;
	uint64_t a, b;
	char *sql, *path;

	session_setup(&st, &d);
	path = test_path("drain.db");

	/* Its opening rolled back: no such attempt. */
	a = live_open(d, P1, false);
	CHECK(live_close(d, a));

	/* Ended by another connection between two groups. */
	a = live_open(d, P1, true);
	sql = xasprintf(
	    "UPDATE attempts SET ended_at = 'x' WHERE attempt_id = %llu", (unsigned long long)a);
	test_sql(path, sql);
	free(sql);
	CHECK(live_close(d, a));
	test_sql(path, "UPDATE phases SET current_attempt_id = NULL");

	/* Its phase opened again: the first attempt is no longer its current one. */
	a = live_open(d, P1, true);
	b = live_open(d, P1, true);
	CHECK(live_close(d, a));
	CHECK(!live_close(d, b));

	/* Its phase skipped meanwhile: its result row says so. */
	a = live_open(d, P1, true);
	CHECK_EQ_INT(
	    store_drain_phase_move(d, RUN, P1, 1u << PHASE_QUEUED, PHASE_SKIPPED, &err), 0);
	CHECK(!live_close(d, a));
	sql = xasprintf("SELECT count(*) FROM drain_session_results WHERE attempt_id = %llu"
	                " AND final_state = 'SKIPPED' AND initial_state = 'QUEUED'",
	    (unsigned long long)a);
	CHECK_EQ_INT(test_query(&st, sql), 1);
	free(sql);

	/* Every end that was not stale wrote its result row, from the attempt and its
	 * phase. */
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM drain_session_results r JOIN phases p"
	                 " ON p.run_id = r.run_id AND p.phase_id = r.phase_id"
	                 " WHERE r.session_id = 's' AND r.phase_index = p.phase_index"),
	    2);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM phases WHERE current_attempt_id IS NOT NULL"), 0);
	free(path);
	store_drain_close(d);
	store_close(&st);
}

/* A dry run's attempt is fenced by its open row alone: its phase's row is not written
 * while it runs nor at its end, and it is its phase's current attempt until it ends or a
 * later attempt of the phase opens, as the drain keeps it and as the database says once
 * another connection's write made the drain forget it. */
TEST(store_drain_dry_run_attempt_writes_nothing_to_its_phase)
{
	static const char phase_row[] =
	    "SELECT count(*) FROM phases WHERE phase_id = '" P1 "' AND state = 'QUEUED'"
	    " AND current_attempt_id IS NULL AND builder_attempts = 0 AND started_at IS NULL";
	struct store_drain *d;
	struct store st;
	uint64_t a, b;
	char *path;

	session_setup(&st, &d);
	path = test_path("drain.db");
	a = live_open(d, P1, true);
	CHECK_EQ_INT(test_query(&st, phase_row), 1);
	CHECK(!live_close(d, a));
	CHECK_EQ_INT(test_query(&st, phase_row), 1);

	/* Opened again with the drain's memory of the first forgotten: the first is stale. */
	a = live_open(d, P1, true);
	test_sql(path, "UPDATE runs SET updated_at = updated_at");
	b = live_open(d, P1, true);
	test_sql(path, "UPDATE runs SET updated_at = updated_at");
	CHECK(live_close(d, a));
	CHECK(!live_close(d, b));
	CHECK_EQ_INT(test_query(&st, phase_row), 1);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM attempts WHERE ended_at IS NULL"), 1);
	free(path);
	store_drain_close(d);
	store_close(&st);
}

/* A claim opens the phase it names, whatever row id it carries: the queue's (found
 * without the phase's index), another phase's, or none. */
TEST(store_drain_claim_opens_the_phase_it_names)
{
	struct drain_claim c[3] = {
		{ .run_id = RUN, .phase_id = P1 },
		{ .run_id = RUN, .phase_id = "telemetry-p2-number-util" },
		{ .run_id = RUN, .phase_id = "telemetry-p3-list-util" },
	};
	struct store_drain *d;
	struct store_err err;
	struct store st;
	char *sql;

	drain_setup(&st, &d);
	c[0].phase_row = test_query(&st, "SELECT id FROM phases WHERE phase_id = '" P1 "'");
	c[1].phase_row = c[0].phase_row; /* P1's */
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempts_open(d, c, 3, NULL, false, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(c[i].rc, 0);
		sql = xasprintf("SELECT count(*) FROM phases p JOIN attempts a ON a.attempt_id ="
		                " p.current_attempt_id AND a.run_id = p.run_id AND a.phase_id ="
		                " p.phase_id WHERE p.phase_id = '%s' AND a.attempt_id = %llu",
		    c[i].phase_id, (unsigned long long)c[i].attempt_id);
		CHECK_EQ_INT(test_query(&st, sql), 1);
		free(sql);
	}
	store_drain_close(d);
	store_close(&st);
}

/* A round's claims opened together: each claim gets the attempt row of its own phase,
 * numbered after the phase's earlier attempts, fenced and moved to EXECUTING, and its
 * end finds it live; a claim of a phase that is not dispatchable is refused alone. */
TEST(store_drain_claims_opened_together_each_get_their_own_attempt)
{
	static const char *const ids[] = { P1, "telemetry-p2-number-util", "telemetry-p3-list-util",
		"telemetry-p4-date-util", "telemetry-p5-dict-util" };
	struct drain_claim c[ARRAY_SIZE(ids)];
	struct drain_close end = { .outcome = OUTCOME_SUCCESS, .phase_state = PHASE_COMPLETE };
	struct store_drain *d;
	struct store_err err;
	struct store st;
	char *path, *sql;
	bool stale;

	session_setup(&st, &d);
	path = test_path("drain.db");
	test_sql(
	    path, "UPDATE phases SET state = 'SKIPPED' WHERE phase_id = 'telemetry-p3-list-util'");
	test_sql(path,
	    "UPDATE phases SET builder_attempts = 2 WHERE phase_id = 'telemetry-p4-date-util'");
	memset(c, 0, sizeof c);
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		c[i].run_id = RUN;
		c[i].phase_id = ids[i];
		c[i].worker_pid = i == 1 ? 0 : 100 + (int64_t)i;
	}
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempts_open(d, c, ARRAY_SIZE(c), "s", false, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(c[2].rc, STORE_EINVAL);
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		if (i == 2)
			continue;
		CHECK_EQ_INT(c[i].rc, 0);
		CHECK_EQ_INT(c[i].attempt_number, i == 3 ? 3 : 1);
		sql = xasprintf("SELECT count(*) FROM phases p JOIN attempts a ON a.attempt_id ="
		                " p.current_attempt_id AND a.run_id = p.run_id AND a.phase_id ="
		                " p.phase_id WHERE p.phase_id = '%s' AND a.attempt_id = %llu"
		                " AND p.state = 'EXECUTING' AND a.attempt_number = %lld"
		                " AND a.session_id = 's' AND a.dry_run = 0"
		                " AND a.initial_state = 'QUEUED' AND a.worker_pid IS %s",
		    c[i].phase_id, (unsigned long long)c[i].attempt_id,
		    (long long)c[i].attempt_number,
		    i == 1     ? "NULL" :
		        i == 0 ? "100" :
		        i == 3 ? "103" :
		                 "104");
		CHECK_EQ_INT(test_query(&st, sql), 1);
		free(sql);
	}
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM attempts"), 4);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM tiers WHERE state = 'IN_PROGRESS'"),
	    test_query(
	        &st, "SELECT count(DISTINCT tier_id) FROM phases WHERE state = 'EXECUTING'"));
	/* Each end is its own attempt's: its phase COMPLETE, its result row written. */
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
		if (i != 2) {
			CHECK_EQ_INT(
			    store_drain_attempt_close(d, c[i].attempt_id, &end, &stale, &err), 0);
			CHECK(!stale);
		}
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM drain_session_results r JOIN attempts a USING"
	                 " (attempt_id) JOIN phases p ON p.run_id = a.run_id AND p.phase_id ="
	                 " a.phase_id WHERE r.phase_id = a.phase_id AND p.state = 'COMPLETE'"
	                 " AND p.current_attempt_id IS NULL"),
	    4);
	free(path);
	store_drain_close(d);
	store_close(&st);
}

/* Open a dry-run attempt of `phase` in session "s", give it two log events (one sent
 * twice) and two token estimations in a later group, and end it after `ms`; its id. With
 * `forget`, another connection writes between its opening and its events, so that its
 * end reads the attempt back instead of using what the drain kept. */
static uint64_t counted_attempt(struct store_drain *d, const char *phase, int64_t ms, bool forget)
{
	struct drain_event ev = { .kind = EVENT_LOG };
	struct drain_close c = {
		.outcome = OUTCOME_DRY_RUN, .phase_state = PHASE_STATE_NONE, .duration_ms = ms
	};
	struct store_err err;
	uint64_t att;
	bool dup;
	char *path = test_path("drain.db");

	att = live_open(d, phase, true);
	if (forget)
		test_sql(path, "INSERT INTO control_log (at, command, ok) VALUES ('t', 'c', 1)");
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	ev.attempt_id = att;
	ev.u.log.level = "info";
	ev.u.log.message = "m";
	for (uint64_t seq = 1; seq <= 3; seq++) {
		ev.seq = seq < 3 ? seq : 1;
		CHECK_EQ_INT(store_drain_event_insert(d, RUN, phase, &ev, &dup, &err), 0);
		CHECK(dup == (seq == 3));
	}
	ev.kind = EVENT_TOKEN_ESTIMATION_V2;
	ev.u.est = sample_estimation;
	for (uint64_t seq = 4; seq <= 5; seq++) {
		ev.seq = seq;
		CHECK_EQ_INT(store_drain_event_insert(d, RUN, phase, &ev, &dup, &err), 0);
	}
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &c, &dup, &err), 0);
	CHECK(!dup);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	free(path);
	return att;
}

/* An attempt's end records the events and token estimations the database holds for it,
 * whether the drain counted them as it inserted them or they are read back. */
TEST(store_drain_attempt_end_counts_its_events_as_the_database_has_them)
{
	struct store_drain *d;
	struct store st;
	uint64_t a[4];
	char *sql;

	session_setup(&st, &d);
	a[0] = counted_attempt(d, P1, 30000, false);
	a[1] = counted_attempt(d, "telemetry-p2-number-util", 30000, true);
	a[2] = counted_attempt(d, "telemetry-p3-list-util", 7000, false);
	a[3] = counted_attempt(d, "telemetry-p4-date-util", 0, false);
	for (int i = 0; i < 4; i++) {
		sql = xasprintf(
		    "SELECT a.events_committed = 4 AND r.telemetry_events_collected = 2"
		    " AND r.telemetry_yield_per_minute IS %s FROM attempts a JOIN"
		    " drain_session_results r USING (attempt_id) WHERE attempt_id = %llu",
		    i < 2      ? "4.0" :
		        i == 2 ? "17.14" :
		                 "NULL",
		    (unsigned long long)a[i]);
		CHECK_EQ_INT(test_query(&st, sql), 1);
		free(sql);
	}
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

/* A phase ID of run "r" of the tier test, and a tier ID holding PHASES. */
#define TPHASE(id)                                                                                 \
	"{\"phase_id\": \"" id "\", \"name\": \"n\", \"scope\": {\"paths\": [\"src/\"], "          \
	"\"deliverables\": [\"src/" id ".py\"]}}"
#define TTIER(id, phases) "{\"tier_id\": \"" id "\", \"name\": \"t\", \"phases\": [" phases "]}"

/* How many tiers do not follow their phases: the state the tiers' phases, counted again
 * in SQL (store_tier_state_sql), put each in, against the one it holds. */
static int64_t tiers_astray(struct store *st)
{
	struct db_stmt *ids, *q;
	int64_t astray = 0;

	CHECK_EQ_INT(db_prepare(st->db, "SELECT id FROM tiers", &ids), DB_OK);
	CHECK_EQ_INT(db_prepare(st->db, store_tier_state_sql, &q), DB_OK);
	while (db_step(ids) == DB_ROW) {
		const char *held, *due;

		db_reset(q);
		db_bind_int64(q, 1, db_column_int64(ids, 0));
		CHECK_EQ_INT(db_step(q), DB_ROW);
		held = db_column_text(q, 1);
		due = db_column_text(q, 2);
		if (due != NULL && (held == NULL || strcmp(held, due) != 0)) {
			fprintf(stderr, "tier %lld is %s, its phases say %s\n",
			    (long long)db_column_int64(ids, 0), held != NULL ? held : "NULL", due);
			astray++;
		}
	}
	db_finalize(q);
	db_finalize(ids);
	return astray;
}

/* The state of tier `tier` of run "r". */
static char *tier_state(struct store *st, const char *tier)
{
	struct db_stmt *q;
	char *state;

	CHECK_EQ_INT(
	    db_prepare(st->db, "SELECT state FROM tiers WHERE run_id = 'r' AND tier_id = ?1", &q),
	    DB_OK);
	db_bind_text(q, 1, tier);
	CHECK_EQ_INT(db_step(q), DB_ROW);
	state = xstrdup(db_column_text(q, 0));
	db_finalize(q);
	return state;
}

/* Check tier `tier` is in `state` and every tier follows its phases. */
#define CHECK_TIER(st, tier, state)                                                                \
	do {                                                                                       \
		char *held_ = tier_state(st, tier);                                                \
		CHECK_EQ_STR(held_, state);                                                        \
		free(held_);                                                                       \
		CHECK_EQ_INT(tiers_astray(st), 0);                                                 \
	} while (0)

/* Open an attempt of phase `id` of run "r" and end it moving the phase to `to`, in a
 * group of its own that is committed (`commit`) or rolled back. */
static void tier_attempt(struct store_drain *d, const char *id, enum phase_state to, bool commit)
{
	struct drain_close c = { .outcome = to == PHASE_COMPLETE ? OUTCOME_SUCCESS : OUTCOME_FAILED,
		.reason = to == PHASE_COMPLETE ? REASON_NONE : REASON_CHECK_FAILED,
		.phase_state = to };
	struct store_err err;
	uint64_t att;
	int64_t num;
	bool stale;

	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, "r", id, 1, NULL, false, &att, &num, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &c, &stale, &err), 0);
	CHECK(!stale);
	if (commit)
		CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	else
		store_drain_rollback(d);
}

/* The tier states an attempt's end writes from the counts the drain keeps are the ones
 * counting the tier's phases again gives, through failures, requeues, skips, a retry, a
 * rolled-back group, a bare end, a phase moved and another connection's write. */
TEST(store_drain_tier_counts_agree_with_a_recount)
{
	const char *text =
	    "{\"runs\": [{\"run_id\": \"r\", \"workspace\": \"ws\", \"tiers\": [" TTIER(
	        "T1", TPHASE("a1") "," TPHASE("a2") "," TPHASE("a3")) "," TTIER("T2",
	        TPHASE("b1") "," TPHASE("b2")) "," TTIER("T3",
	        TPHASE("c1") "," TPHASE("c2")) "," TTIER("T4",
	        TPHASE("d1") "," TPHASE("d2") "," TPHASE("d3")) "," TTIER("T5",
	        TPHASE("e1") "," TPHASE("e2")) "," TTIER("T6",
	        TPHASE("f1") "," TPHASE("f2")) "," TTIER("T7",
	        TPHASE("g1") "," TPHASE("g2")) "," TTIER("T8",
	        TPHASE("h1") "," TPHASE("h2")) "]}]}";
	struct store_failed_filter only_r = { .run_id = "r", .failed_only = true };
	struct store_retry_who who = { .via = "offline", .selector = "--run r" };
	struct drain_close bare = { .outcome = OUTCOME_FAILED, .reason = REASON_CHECK_FAILED };
	struct drain_close done = { .outcome = OUTCOME_SUCCESS, .phase_state = PHASE_COMPLETE };
	struct store_plan_summary sum;
	struct store_failed *failed;
	struct store_drain *d;
	struct store_err err;
	struct store st;
	size_t n, moved;
	uint64_t att;
	int64_t num;
	bool stale;
	char *db;

	test_store_new(&st, "tiers.db");
	CHECK_EQ_INT(
	    store_plan_import(&st, text, strlen(text), "/plans", "plan.json", &sum, &err), 0);
	store_plan_summary_free(&sum);
	CHECK_EQ_INT(store_drain_open(&st, &d, &err), 0);

	/* A failure, a requeue (all QUEUED again: a tier that has not ended stays), then
	 * every phase complete. */
	tier_attempt(d, "a1", PHASE_FAILED, true);
	CHECK_TIER(&st, "T1", "IN_PROGRESS");
	tier_attempt(d, "a1", PHASE_QUEUED, true);
	CHECK_TIER(&st, "T1", "IN_PROGRESS");
	tier_attempt(d, "a1", PHASE_COMPLETE, true);
	/* a3 fails while a2 runs: IN_PROGRESS, not FAILED. */
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, "r", "a2", 1, NULL, false, &att, &num, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	tier_attempt(d, "a3", PHASE_FAILED, true);
	CHECK_TIER(&st, "T1", "IN_PROGRESS");
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &done, &stale, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_TIER(&st, "T1", "FAILED");
	tier_attempt(d, "a3", PHASE_COMPLETE, true);
	CHECK_TIER(&st, "T1", "COMPLETE");
	/* Skips: all SKIPPED, and SKIPPED with COMPLETE. */
	tier_attempt(d, "b1", PHASE_SKIPPED, true);
	tier_attempt(d, "b2", PHASE_SKIPPED, true);
	CHECK_TIER(&st, "T2", "SKIPPED");
	tier_attempt(d, "c1", PHASE_SKIPPED, true);
	tier_attempt(d, "c2", PHASE_COMPLETE, true);
	CHECK_TIER(&st, "T3", "COMPLETE");

	/* Every phase FAILED, then a retry of the run (a write of this connection outside
	 * the drain) queues them again one by one: the tier is IN_PROGRESS, and a requeued
	 * attempt leaves it so (counts kept from before the retry would make it FAILED). */
	tier_attempt(d, "d1", PHASE_FAILED, true);
	tier_attempt(d, "d2", PHASE_FAILED, true);
	tier_attempt(d, "d3", PHASE_FAILED, true);
	CHECK_TIER(&st, "T4", "FAILED");
	CHECK_EQ_INT(store_failed_list(&st, &only_r, &failed, &n, &err), 0);
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(store_failed_retry(&st, failed, n, &who, &moved, &err), 0);
	CHECK_EQ_INT(moved, 3);
	store_failed_free(failed, n);
	CHECK_TIER(&st, "T4", "IN_PROGRESS");
	tier_attempt(d, "d1", PHASE_QUEUED, true);
	CHECK_TIER(&st, "T4", "IN_PROGRESS");

	/* A group rolled back: its completed phase is QUEUED again, so the tier's other
	 * phase completing leaves the tier IN_PROGRESS. */
	tier_attempt(d, "e1", PHASE_COMPLETE, false);
	CHECK_TIER(&st, "T5", "PENDING");
	tier_attempt(d, "e2", PHASE_COMPLETE, true);
	CHECK_TIER(&st, "T5", "IN_PROGRESS");

	/* Another connection completes f2 between two groups. */
	tier_attempt(d, "f1", PHASE_QUEUED, true);
	CHECK_TIER(&st, "T6", "IN_PROGRESS");
	db = test_path("tiers.db");
	test_sql(db, "UPDATE phases SET state = 'COMPLETE' WHERE phase_id = 'f2'");
	free(db);
	tier_attempt(d, "f1", PHASE_COMPLETE, true);
	CHECK_TIER(&st, "T6", "COMPLETE");

	/* A phase moved by the control socket's command. */
	tier_attempt(d, "g1", PHASE_FAILED, true);
	CHECK_EQ_INT(
	    store_drain_phase_move(d, "r", "g1", 1u << PHASE_FAILED, PHASE_QUEUED, &err), 0);
	tier_attempt(d, "g2", PHASE_FAILED, true);
	CHECK_TIER(&st, "T7", "IN_PROGRESS");

	/* A bare end (the phase back to QUEUED, its tier left as it is), then both phases
	 * fail. */
	tier_attempt(d, "h1", PHASE_QUEUED, true);
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, "r", "h1", 1, NULL, false, &att, &num, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_close_bare(d, att, &bare, "test", &stale, &err), 0);
	CHECK(!stale);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM phases WHERE phase_id = 'h1' AND"
	                 " state = 'QUEUED'"),
	    1);
	tier_attempt(d, "h1", PHASE_FAILED, true);
	tier_attempt(d, "h2", PHASE_FAILED, true);
	CHECK_TIER(&st, "T8", "FAILED");

	store_drain_close(d);
	store_close(&st);
}

/* Announce try `try` of attempt `att` as event `seq`. */
static void try_sent(struct store_drain *d, uint64_t att, uint64_t seq, int64_t try)
{
	struct drain_event ev = { .attempt_id = att, .seq = seq, .kind = EVENT_LLM_REQUEST };
	struct store_err err;
	bool dup;

	ev.u.request = (struct drain_request){ .provider = "anthropic",
		.model = "m",
		.role = "builder",
		.max_tokens = 100,
		.try_number = try };
	CHECK_EQ_INT(store_drain_event_insert(d, RUN, P1, &ev, &dup, &err), 0);
	CHECK(!dup);
}

/* Report try `try` of attempt `att` as event `seq`. */
static void try_done(struct store_drain *d, uint64_t att, uint64_t seq, int64_t try)
{
	struct drain_event ev = { .attempt_id = att, .seq = seq, .kind = EVENT_LLM_USAGE };
	struct store_err err;
	bool dup;

	ev.u.usage = (struct drain_usage){ .provider = "anthropic",
		.model = "m",
		.role = "builder",
		.prompt_tokens = 1,
		.completion_tokens = 2,
		.total_tokens = 3,
		.http_status = 200,
		.try_number = try };
	CHECK_EQ_INT(store_drain_event_insert(d, RUN, P1, &ev, &dup, &err), 0);
	CHECK(!dup);
}

/* An attempt's end marks 'lost' exactly the tries it announced and never reported, also
 * when the report of one was rolled back or another try was reported, and marks none when
 * every try was reported. */
TEST(store_drain_attempt_end_marks_the_unreported_tries_lost)
{
	struct drain_close c = { .outcome = OUTCOME_FAILED,
		.reason = REASON_CHECK_FAILED,
		.phase_state = PHASE_FAILED };
	struct store_drain *d;
	struct store_err err;
	struct store st;
	uint64_t att;
	int64_t num;
	bool stale;

	drain_setup(&st, &d);
	/* Two tries, both reported: nothing lost. */
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, RUN, P1, 1, NULL, false, &att, &num, &err), 0);
	try_sent(d, att, 1, 1);
	try_done(d, att, 2, 1);
	try_sent(d, att, 3, 2);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	try_done(d, att, 4, 2);
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &c, &stale, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM llm_usage_events WHERE status = 'ok'"), 2);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM llm_usage_events WHERE status <> 'ok'"), 0);

	/* The report of the second try is rolled back: the try is lost at the end. */
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, RUN, P1, 1, NULL, false, &att, &num, &err), 0);
	try_sent(d, att, 1, 1);
	try_done(d, att, 2, 1);
	try_sent(d, att, 3, 2);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	try_done(d, att, 4, 2);
	store_drain_rollback(d);
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &c, &stale, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM llm_usage_events WHERE status = 'lost'"), 1);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT try_number FROM llm_usage_events WHERE status = 'lost'"), 2);

	/* A report of a try that was not announced completes no 'sent' row: the announced
	 * one is lost all the same. */
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(store_drain_attempt_open(d, RUN, P1, 1, NULL, false, &att, &num, &err), 0);
	try_sent(d, att, 1, 1);
	try_done(d, att, 2, 2);
	CHECK_EQ_INT(store_drain_attempt_close(d, att, &c, &stale, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM llm_usage_events WHERE status = 'lost'"), 2);
	store_drain_close(d);
	store_close(&st);
}

/* The attempts of the many-phase test below, as the database says they are. */
struct live_model {
	uint64_t id[4096];
	int phase[4096];
	bool ended[4096];
	size_t n;
};

/* Whether attempt i of `m` is open and no later attempt of its phase is: its end is then
 * not stale. */
static bool model_live(const struct live_model *m, size_t i)
{
	if (m->ended[i])
		return false;
	for (size_t j = 0; j < m->n; j++)
		if (m->phase[j] == m->phase[i] && m->id[j] > m->id[i] && !m->ended[j])
			return false;
	return true;
}

/* The next number of a fixed xorshift sequence. */
static uint64_t model_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Dry-run attempts of 150 phases opened each in turn, then again and again, one by one or
 * several together (a phase more than once among them), and ended in a random order, some
 * in groups rolled back and some after another connection's write: each end is stale
 * exactly when the attempt was ended already or a later attempt of its phase is open, as
 * the database says, however many attempts the drain keeps live at once. */
TEST(store_drain_dry_run_ends_agree_with_the_database_over_many_phases)
{
	enum {
		PHASES = 150,
		STEPS = 2000
	};
	static struct live_model m, saved;
	struct drain_close end = { .outcome = OUTCOME_DRY_RUN, .phase_state = PHASE_STATE_NONE };
	struct drain_claim c[6];
	char *ids[PHASES], *path, *sql;
	struct store_drain *d;
	struct store_err err;
	struct store st;
	uint64_t x = 0x9E3779B97F4A7C15u;
	size_t open = 0, most = 0, stale_ends = 0, since = 0, latest[PHASES];
	bool stale;

	session_setup(&st, &d);
	path = test_path("drain.db");
	/* Phases whose row ids are spread over the table's slots, consecutive and not. */
	sql = xasprintf("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n"
	                " WHERE i < %d) INSERT INTO phases (id, phase_id, run_id, tier_id,"
	                " phase_index, name, state, created_at, updated_at) SELECT CASE WHEN"
	                " i %% 2 = 0 THEN 5000 + i ELSE 100000 + i * 4096 END, 'h' || i, run_id,"
	                " tier_id, 1000 + i, 'h' || i, 'QUEUED', created_at, updated_at FROM"
	                " phases, n WHERE phase_id = '" P1 "'",
	    PHASES - 1);
	test_sql(path, sql);
	free(sql);
	for (int i = 0; i < PHASES; i++)
		ids[i] = xasprintf("h%d", i);
	/* Every phase opened and ended in turn: one live attempt at a time, each of another
	 * phase. */
	for (int i = 0; i < PHASES; i++) {
		int64_t num;

		CHECK_EQ_INT(store_drain_begin(d, &err), 0);
		CHECK_EQ_INT(
		    store_drain_attempt_open(d, RUN, ids[i], 1, "s", true, &m.id[m.n], &num, &err),
		    0);
		CHECK_EQ_INT(store_drain_attempt_close(d, m.id[m.n], &end, &stale, &err), 0);
		CHECK(!stale);
		CHECK_EQ_INT(store_drain_commit(d, &err), 0);
		m.phase[m.n] = i;
		m.ended[m.n++] = true;
	}
	for (int step = 0; step < STEPS; step++) {
		size_t ops = 1 + model_rand(&x) % 6;
		bool commit = model_rand(&x) % 400 != 0;

		if (model_rand(&x) % 400 == 0) {
			test_sql(path, "UPDATE runs SET updated_at = updated_at");
			since = m.n;
		}
		saved = m;
		CHECK_EQ_INT(store_drain_begin(d, &err), 0);
		for (size_t k = 0; k < ops; k++) {
			unsigned r = (unsigned)(model_rand(&x) % 100);
			/* More openings than ends in the first half, fewer in the second. */
			bool opening = m.n == 0 || r < (step < STEPS / 2 ? 70u : 30u);

			if (opening && m.n + 6 >= ARRAY_SIZE(m.id))
				opening = false;
			if (opening && r % 3 == 0) {
				size_t n = 2 + model_rand(&x) % ARRAY_SIZE(c);

				n = n > ARRAY_SIZE(c) ? ARRAY_SIZE(c) : n;
				memset(c, 0, sizeof c);
				for (size_t j = 0; j < n; j++) {
					/* Now and then the phase of the claim before. */
					int p = j > 0 && model_rand(&x) % 4 == 0 ?
					    m.phase[m.n - 1] :
					    (int)(model_rand(&x) % PHASES);

					c[j].run_id = RUN;
					c[j].phase_id = ids[p];
					c[j].worker_pid = 1;
					m.phase[m.n] = p;
					m.ended[m.n] = false;
					m.n++;
				}
				CHECK_EQ_INT(
				    store_drain_attempts_open(d, c, n, "s", true, &err), 0);
				for (size_t j = 0; j < n; j++) {
					CHECK_EQ_INT(c[j].rc, 0);
					m.id[m.n - n + j] = c[j].attempt_id;
				}
			} else if (opening) {
				int p = (int)(model_rand(&x) % PHASES);
				int64_t num;

				CHECK_EQ_INT(store_drain_attempt_open(d, RUN, ids[p], 1, "s", true,
				                 &m.id[m.n], &num, &err),
				    0);
				m.phase[m.n] = p;
				m.ended[m.n] = false;
				m.n++;
			} else {
				size_t i = (size_t)(model_rand(&x) % m.n);
				bool live = model_live(&m, i);

				CHECK_EQ_INT(
				    store_drain_attempt_close(d, m.id[i], &end, &stale, &err), 0);
				if (stale != !live)
					fprintf(stderr, "step %d: attempt %llu of h%d: stale %d\n",
					    step, (unsigned long long)m.id[i], m.phase[i], stale);
				CHECK_EQ_INT(stale, !live);
				m.ended[i] = m.ended[i] || live;
				stale_ends += stale;
			}
		}
		if (commit) {
			CHECK_EQ_INT(store_drain_commit(d, &err), 0);
		} else {
			store_drain_rollback(d);
			m = saved;
			since = m.n;
		}
		/* The live attempts the drain keeps: each phase's latest open one, opened since
		 * the drain last forgot what it kept. */
		for (int i = 0; i < PHASES; i++)
			latest[i] = SIZE_MAX;
		for (size_t i = 0; i < m.n; i++)
			if (!m.ended[i])
				latest[m.phase[i]] = i;
		open = 0;
		for (int i = 0; i < PHASES; i++)
			open += latest[i] != SIZE_MAX && latest[i] >= since;
		most = open > most ? open : most;
	}
	/* The drain kept more live attempts at once than its first table holds, and some ends
	 * were stale. */
	CHECK(most > 64);
	CHECK(stale_ends > 0);
	open = 0;
	for (size_t i = 0; i < m.n; i++)
		open += m.ended[i];
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM attempts WHERE ended_at IS NOT NULL"), open);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM attempts"), m.n);
	for (int i = 0; i < PHASES; i++)
		free(ids[i]);
	free(path);
	store_drain_close(d);
	store_close(&st);
}
