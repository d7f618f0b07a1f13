#include "common/store/store_session.h"
#include "common/util.h"
#include "tests/unit/test.h"

/* A result row for the summary: run, outcome, seconds, events, yield (-1 = NULL),
 * fingerprint, zero-yield reason. */
static struct store_session_result row(const char *run, const char *outcome, double secs,
    int64_t events, double yield, const char *fp, const char *zy)
{
	struct store_session_result r = {
		.run_id = (char *)run,
		.outcome = (char *)outcome,
		.success = strcmp(outcome, "success") == 0 || strcmp(outcome, "dry_run") == 0,
		.timeout = strcmp(outcome, "timeout") == 0,
		.duration_s = secs,
		.events = events,
		.yield_per_min = yield,
		.fingerprint = (char *)fp,
		.zero_yield_reason = (char *)zy,
	};
	return r;
}

/* Return true if the summary carries recommendation `id`. */
static bool has_rec(const struct store_session_summary *m, const char *id)
{
	for (size_t i = 0; i < m->n_recs; i++)
		if (strcmp(m->recs[i].id, id) == 0)
			return true;
	return false;
}

TEST(store_session_summary_counts_yields_and_recommends_as_the_original)
{
	struct store_session s = {
		.state_json = "{\"stopped_runs\":[\"a\",\"b\"],\"stopped_fingerprints\":[\"F1\"]}",
	};
	struct store_session_result r[] = {
		row("a", "failed", 60, 0, -1, "F1", "provider_error"),
		row("a", "failed", 60, 0, -1, "F1", "provider_error"),
		row("a", "timeout", 900, 0, -1, "T", "timeout"),
		row("b", "timeout", 900, 0, -1, "T", "timeout"),
		row("b", "success", 120, 10, 5.0, NULL, NULL),
		row("c", "success", 30, 20, 40.0, NULL, NULL),
		row("c", "success", 30, 6, 12.0, NULL, NULL),
		row("c", "failed", 60, 24, 24.0, "F2", "check_failed"),
		row("c", "timeout", 900, 0, -1, "T", "timeout"),
		row("c", "success", 60, 2, 2.0, NULL, NULL),
	};
	struct store_session_summary m;

	store_session_summarize(&s, r, ARRAY_SIZE(r), &m);
	CHECK_EQ_INT(m.processed, 10);
	CHECK_EQ_INT(m.succeeded, 4);
	CHECK_EQ_INT(m.failed, 6);
	CHECK_EQ_INT(m.timeouts, 3);
	CHECK_NEAR(m.success_pct, 40.0, 1e-9);
	CHECK_EQ_INT(m.events, 62);
	CHECK_EQ_INT(m.with_events, 5);
	/* Overall yield: events over the minutes of non-timeout results only (7 min). */
	CHECK_NEAR(m.minutes_non_timeout, 7.0, 1e-9);
	CHECK_NEAR(m.overall_yield, 62.0 / 7.0, 1e-9);
	/* Yields per result, no events = 0: 0 0 0 0 0 2 5 12 24 40. */
	CHECK_NEAR(m.yield_median, 1.0, 1e-9);
	CHECK_NEAR(m.yield_p90, 24.0, 1e-9);
	CHECK_NEAR(m.yield_max, 40.0, 1e-9);
	/* Zero-yield reasons most first, ties by name. */
	CHECK_EQ_INT(m.zero_yield.n, 3);
	CHECK_EQ_STR(m.zero_yield.items[0].key, "timeout");
	CHECK_EQ_INT(m.zero_yield.items[0].n, 3);
	CHECK_EQ_STR(m.zero_yield.items[1].key, "provider_error");
	CHECK_EQ_STR(m.zero_yield.items[2].key, "check_failed");
	CHECK_EQ_INT(m.unique_fingerprints, 3);
	CHECK_EQ_STR(m.top_fingerprints.items[0].key, "T");
	CHECK_EQ_STR(m.top_fingerprints.items[1].key, "F1");
	/* Runs by id, stopped ones marked. */
	CHECK_EQ_INT(m.n_runs, 3);
	CHECK_EQ_STR(m.runs[0].run_id, "a");
	CHECK(m.runs[0].stopped && m.runs[1].stopped && !m.runs[2].stopped);
	CHECK_EQ_INT(m.runs[2].total, 5);
	CHECK_EQ_INT(m.runs[2].succeeded, 3);
	CHECK_EQ_INT(m.runs[2].timeouts, 1);
	CHECK_EQ_INT(m.runs[2].events, 52);
	CHECK_EQ_INT(m.runs_stopped, 2);
	/* 30% timeouts is not above 30%; 6.2 events per phase is good; 2 of 3 runs stopped. */
	CHECK(!has_rec(&m, "timeouts_high") && !has_rec(&m, "timeouts_low"));
	CHECK(has_rec(&m, "yield_good"));
	CHECK(has_rec(&m, "runs_stopped"));
	CHECK_EQ_INT(m.n_recs, 2);
	store_session_summary_free(&m);
}

TEST(store_session_summary_recommends_longer_timeouts_and_flags_low_yield)
{
	struct store_session s = { .state_json = "{}" };
	struct store_session_result r[] = {
		row("a", "timeout", 900, 0, -1, "T", "timeout"),
		row("a", "failed", 10, 0, -1, "F", "parse_failed"),
		row("b", "timeout", 900, 1, -1, "T", "timeout"),
	};
	struct store_session_summary m;

	store_session_summarize(&s, r, ARRAY_SIZE(r), &m);
	CHECK(has_rec(&m, "timeouts_high"));
	CHECK(has_rec(&m, "yield_low"));
	CHECK(!has_rec(&m, "runs_stopped"));
	CHECK_NEAR(m.yield_median, 0.0, 1e-9);
	CHECK_NEAR(m.yield_p90, 0.0, 1e-9);
	store_session_summary_free(&m);
}

TEST(store_session_summary_of_nothing_and_of_a_bad_state_is_empty)
{
	struct store_session s = { .state_json = "not json" };
	struct store_session_summary m;

	store_session_summarize(&s, NULL, 0, &m);
	CHECK(json_is_object(m.state) && json_object_size(m.state) == 0);
	CHECK_EQ_INT(m.processed, 0);
	CHECK_NEAR(m.success_pct, 0.0, 1e-9);
	CHECK(m.overall_yield < 0 && m.yield_median < 0 && m.yield_p90 < 0 && m.yield_max < 0);
	CHECK_EQ_INT(m.n_recs, 0);
	CHECK_EQ_INT(m.n_runs, 0);
	store_session_summary_free(&m);
}
