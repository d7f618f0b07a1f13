/* The vocabulary: every value has one name, and every name parses back to its value. */
#include "common/vocab.h"
#include "tests/unit/test.h"

TEST(vocab_names_parse_back)
{
	for (int i = 1; i < OUTCOME_COUNT; i++)
		CHECK_EQ_INT(outcome_parse(outcome_name(i)), i);
	for (int i = 1; i < REASON_COUNT; i++)
		CHECK_EQ_INT(reason_parse(reason_name(i)), i);
	for (int i = 1; i < ZERO_YIELD_COUNT; i++)
		CHECK_EQ_INT(zero_yield_parse(zero_yield_name(i)), i);
	for (int i = 1; i < PHASE_STATE_COUNT; i++)
		CHECK_EQ_INT(phase_state_parse(phase_state_name(i)), i);
	for (int i = 1; i < EVENT_KIND_COUNT; i++)
		CHECK_EQ_INT(event_kind_parse(event_kind_name(i)), i);
	for (int i = 1; i < RUN_STATE_COUNT; i++)
		CHECK(run_state_name(i) != NULL);
	for (int i = 1; i < TIER_STATE_COUNT; i++)
		CHECK(tier_state_name(i) != NULL);
	for (int i = 0; i < BUCKET_COUNT; i++)
		CHECK(bucket_name(i) != NULL);
}

TEST(vocab_unknown_names_are_none)
{
	CHECK_EQ_INT(outcome_parse("banana"), OUTCOME_NONE);
	CHECK_EQ_INT(outcome_parse(NULL), OUTCOME_NONE);
	CHECK_EQ_INT(outcome_parse("SUCCESS"), OUTCOME_NONE);
	CHECK_EQ_INT(reason_parse("check_failed"), REASON_NONE);
	CHECK_EQ_INT(phase_state_parse("queued"), PHASE_STATE_NONE);
	CHECK(outcome_name(OUTCOME_NONE) == NULL);
	CHECK(reason_name(REASON_NONE) == NULL);
	CHECK(phase_state_name(PHASE_STATE_NONE) == NULL);
}

TEST(vocab_outcome_properties)
{
	CHECK(outcome_ok(OUTCOME_SUCCESS) && outcome_ok(OUTCOME_DRY_RUN));
	CHECK(!outcome_ok(OUTCOME_FAILED) && !outcome_ok(OUTCOME_TIMEOUT));
	/* A worker reports four outcomes; the others only the supervisor records. */
	CHECK(outcome_reportable(OUTCOME_SUCCESS) && outcome_reportable(OUTCOME_FAILED));
	CHECK(outcome_reportable(OUTCOME_TIMEOUT) && outcome_reportable(OUTCOME_DRY_RUN));
	CHECK(!outcome_reportable(OUTCOME_WORKER_CRASHED));
	CHECK(!outcome_reportable(OUTCOME_SUPERVISOR_RESTART));
	CHECK(!outcome_reportable(OUTCOME_NONE));
	CHECK_EQ_STR(reason_name(outcome_reason(OUTCOME_WORKER_CRASHED)), "WORKER_CRASHED");
	CHECK_EQ_STR(reason_name(outcome_reason(OUTCOME_SCALED_DOWN)), "SCALED_DOWN");
	CHECK_EQ_STR(reason_name(outcome_reason(OUTCOME_TIMEOUT)), "TIMEOUT");
	CHECK_EQ_INT(outcome_reason(OUTCOME_SUCCESS), REASON_NONE);
	CHECK_EQ_STR(outcome_label(OUTCOME_HEARTBEAT_LOST), "HEARTBEAT_LOST");
}
