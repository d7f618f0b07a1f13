#include "common/store/store_internal.h"
#include "common/util.h"
#include "tests/unit/test.h"
#include "tests/unit/testutil.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

/* A valid phase with id ID. */
#define PHASE(id)                                                                                  \
	"{\"phase_id\": \"" id "\", \"name\": \"n\", \"scope\": {\"paths\": [\"src/\"], "          \
	"\"deliverables\": [\"src/" id ".py\"]}}"
/* A valid run with id ID and one tier holding PHASES. */
#define RUN(id, phases)                                                                            \
	"{\"run_id\": \"" id "\", \"workspace\": \"ws\", \"tiers\": [{\"tier_id\": \"T1\", "       \
	"\"name\": \"t\", \"phases\": [" phases "]}]}"
#define PLAN(runs) "{\"runs\": [" runs "]}"

/* Import `text`; return the result code, with the message in err. */
static int import(struct store *st, const char *text, struct store_err *err)
{
	struct store_plan_summary sum;
	int rc = store_plan_import(st, text, strlen(text), "/plans", "plan.json", &sum, err);

	store_plan_summary_free(&sum);
	return rc;
}

/* Import `text`, expecting STORE_EINVAL with exactly `msg` and nothing written. */
static void expect_invalid(struct store *st, const char *text, const char *msg)
{
	struct store_err err;
	int64_t runs = test_query(st, "SELECT count(*) FROM runs");
	int64_t tiers = test_query(st, "SELECT count(*) FROM tiers");
	int64_t phases = test_query(st, "SELECT count(*) FROM phases");

	CHECK_EQ_INT(import(st, text, &err), STORE_EINVAL);
	if (strstr(err.text, msg) == NULL)
		fprintf(stderr, "got:    %s\nwanted: %s\n", err.text, msg);
	CHECK(strstr(err.text, msg) != NULL);
	CHECK_EQ_INT(test_query(st, "SELECT count(*) FROM runs"), runs);
	CHECK_EQ_INT(test_query(st, "SELECT count(*) FROM tiers"), tiers);
	CHECK_EQ_INT(test_query(st, "SELECT count(*) FROM phases"), phases);
}

TEST(plan_import_writes_runs_tiers_and_phases_in_order)
{
	struct store_plan_summary sum;
	struct store_err err;
	struct store st;
	const char *text =
	    "{\"runs\": [{\"run_id\": \"r1\", \"workspace\": \"../ws/./a\", "
	    "\"goal\": \"g\", \"token_cap\": 1000, \"tiers\": ["
	    "{\"tier_id\": \"T1\", \"name\": \"one\", \"phases\": [" PHASE("p1") ", " PHASE(
	        "p2") "]}, {\"tier_id\": \"T2\", \"name\": \"two\", \"ci_run_cap\": 4, "
	              "\"phases\": [" PHASE("p3") "]}]}]}";

	test_store_new(&st, "plan.db");
	CHECK_EQ_INT(
	    store_plan_import(&st, text, strlen(text), "/plans/x", "plan.json", &sum, &err), 0);
	CHECK_EQ_INT(sum.n_runs, 1);
	CHECK_EQ_STR(sum.run_ids[0], "r1");
	CHECK_EQ_INT(sum.tiers, 2);
	CHECK_EQ_INT(sum.phases, 3);
	store_plan_summary_free(&sum);
	CHECK_EQ_INT(
	    test_query(&st,
	        "SELECT count(*) FROM runs WHERE id = 'r1' AND workspace = "
	        "'/plans/ws/a' AND token_cap = 1000 AND max_phases = 25 AND goal_anchor = 'g' "
	        "AND state = 'RUN_CREATED'"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM tiers WHERE tier_id = 'T2' AND "
	                 "tier_index = 1 AND ci_run_cap = 4 AND state = 'PENDING'"),
	    1);
	CHECK_EQ_INT(
	    test_query(&st,
	        "SELECT count(*) FROM phases p JOIN tiers t ON p.tier_id = "
	        "t.id WHERE p.phase_id = 'p2' AND t.tier_id = 'T1' AND p.phase_index = 1 AND "
	        "p.state = 'QUEUED' AND p.scope = '{\"paths\":[\"src/\"],\"read_only_context\":[],"
	        "\"deliverables\":[\"src/p2.py\"]}'"),
	    1);
	store_close(&st);
}

TEST(plan_import_refuses_bad_json_with_its_position)
{
	struct store st;

	test_store_new(&st, "plan.db");
	expect_invalid(&st, "{\"runs\": [", "plan.json:1:");
	expect_invalid(&st, "{\"runs\": [], \"runs\": []}", "invalid JSON: duplicate object key");
	store_close(&st);
}

TEST(plan_import_refuses_wrong_types_naming_the_json_path)
{
	struct store st;

	test_store_new(&st, "plan.db");
	expect_invalid(&st, "[]", "plan.json: (top level): expected object, got array");
	expect_invalid(&st, "{\"runs\": {}}", "plan.json: runs: expected array, got object");
	expect_invalid(&st, "{\"runs\": []}", "runs: expected a non-empty array");
	expect_invalid(
	    &st, PLAN("{\"run_id\": 5}"), "runs[0].run_id: expected string, got integer");
	expect_invalid(&st,
	    PLAN(RUN("r1",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", \"scope\": {\"deliverables\": [3]}}")),
	    "runs[0].tiers[0].phases[0].scope.deliverables[0]: expected string, got integer");
	expect_invalid(&st,
	    PLAN(RUN("r1",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", \"max_builder_attempts\": 0, "
	        "\"scope\": {\"deliverables\": [\"a\"]}}")),
	    "runs[0].tiers[0].phases[0].max_builder_attempts: expected a positive integer");
	expect_invalid(&st,
	    PLAN(RUN("r1",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", \"complexity\": \"huge\", "
	        "\"scope\": {\"deliverables\": [\"a\"]}}")),
	    "runs[0].tiers[0].phases[0].complexity: \"huge\" is not one of low, medium, high, "
	    "maintenance");
	expect_invalid(&st,
	    PLAN(RUN("r1",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", \"complexty\": \"low\", "
	        "\"scope\": {\"deliverables\": [\"a\"]}}")),
	    "runs[0].tiers[0].phases[0].complexty: unknown field");
	expect_invalid(
	    &st, PLAN(RUN("bad id", PHASE("p1"))), "runs[0].run_id: \"bad id\" is not a valid id");
	expect_invalid(&st,
	    PLAN("{\"run_id\": \"r1\", \"tiers\": [{\"tier_id\": \"T1\", "
	         "\"name\": \"t\", \"phases\": [" PHASE("p1") "]}]}"),
	    "runs[0].workspace: missing (required");
	expect_invalid(&st, PLAN(RUN("r1", "{\"phase_id\": \"p1\", \"name\": \"n\"}")),
	    "runs[0].tiers[0].phases[0].scope: missing (required)");
	store_close(&st);
}

TEST(plan_import_refuses_paths_that_leave_the_workspace_or_the_scope)
{
	struct store st;

	test_store_new(&st, "plan.db");
	expect_invalid(&st,
	    PLAN(RUN("r1",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", "
	        "\"scope\": {\"deliverables\": [\"/etc/passwd\"]}}")),
	    "scope.deliverables[0]: \"/etc/passwd\" is absolute");
	expect_invalid(&st,
	    PLAN(RUN("r1",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", "
	        "\"scope\": {\"read_only_context\": [\"a/../../x\"], \"deliverables\": [\"a\"]}}")),
	    "scope.read_only_context[0]: \"a/../../x\" leaves the workspace");
	expect_invalid(&st,
	    PLAN(RUN("r1",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", "
	        "\"scope\": {\"paths\": [\"src/\"], \"deliverables\": [\"srcx/a.py\"]}}")),
	    "scope.deliverables[0]: \"srcx/a.py\" is outside scope.paths");
	store_close(&st);
}

TEST(plan_import_refuses_duplicate_ids)
{
	struct store st;

	test_store_new(&st, "plan.db");
	expect_invalid(&st,
	    PLAN("{\"run_id\": \"r1\", \"workspace\": \"w\", \"tiers\": ["
	         "{\"tier_id\": \"T1\", \"name\": \"a\", \"phases\": [" PHASE(
	             "p1") "]}, "
	                   "{\"tier_id\": \"T2\", \"name\": \"b\", \"phases\": [" PHASE(
	                       "p1") "]}]}"),
	    "plan.json: runs[0].tiers[1].phases[0].phase_id: duplicate phase_id \"p1\" in run "
	    "\"r1\" (also at runs[0].tiers[0].phases[0].phase_id)");
	expect_invalid(&st, PLAN(RUN("r1", PHASE("p1")) "," RUN("r1", PHASE("p2"))),
	    "runs[1].run_id: duplicate run_id \"r1\" (also at runs[0])");
	expect_invalid(&st,
	    PLAN("{\"run_id\": \"r1\", \"workspace\": \"w\", \"tiers\": ["
	         "{\"tier_id\": \"T1\", \"name\": \"a\", \"phases\": [" PHASE(
	             "p1") "]}, "
	                   "{\"tier_id\": \"T1\", \"name\": \"b\", \"phases\": [" PHASE(
	                       "p2") "]}]}"),
	    "runs[0].tiers[1].tier_id: duplicate tier_id \"T1\"");
	store_close(&st);
}

TEST(plan_import_refuses_an_existing_run_and_writes_nothing_of_the_plan)
{
	struct store_err err;
	struct store st;

	test_store_new(&st, "plan.db");
	CHECK_EQ_INT(import(&st, PLAN(RUN("r1", PHASE("p1"))), &err), 0);
	expect_invalid(&st, PLAN(RUN("r0", PHASE("p1")) "," RUN("r1", PHASE("p9"))),
	    "runs[1].run_id: run \"r1\" already exists");
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM runs WHERE id = 'r0'"), 0);
	store_close(&st);
}

TEST(plan_import_append_to_an_unknown_run_is_refused)
{
	struct store st;

	test_store_new(&st, "plan.db");
	expect_invalid(&st,
	    PLAN(RUN("r0",
	        PHASE("p1")) ", {\"run_id\": \"ghost\", "
	                     "\"append\": true, \"tiers\": [{\"tier_id\": \"T9\", \"name\": \"t\", "
	                     "\"phases\": [" PHASE("p1") "]}]}"),
	    "runs[1].run_id: unknown run \"ghost\"");
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM runs"), 0);
	store_close(&st);
}

TEST(plan_import_append_adds_tiers_after_the_existing_ones)
{
	struct store_err err;
	struct store st;
	const char *append = PLAN(
	    "{\"run_id\": \"r1\", \"append\": true, \"tiers\": ["
	    "{\"tier_id\": \"T2\", \"name\": \"more\", \"phases\": [" PHASE("p2") "]}]}");

	test_store_new(&st, "plan.db");
	CHECK_EQ_INT(import(&st, PLAN(RUN("r1", PHASE("p1"))), &err), 0);
	CHECK_EQ_INT(import(&st, append, &err), 0);
	CHECK_EQ_INT(test_query(&st, "SELECT tier_index FROM tiers WHERE tier_id = 'T2'"), 1);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM phases WHERE run_id = 'r1'"), 2);
	expect_invalid(&st, append,
	    "runs[0].tiers[0].phases[0].phase_id: phase \"p2\" "
	    "already exists in run \"r1\"");
	expect_invalid(&st,
	    PLAN("{\"run_id\": \"r1\", \"append\": true, \"workspace\": \"w\", "
	         "\"tiers\": [{\"tier_id\": \"T3\", \"name\": \"t\", \"phases\": [" PHASE(
	             "p3") "]}]}"),
	    "runs[0].workspace: not allowed with \"append\": true");
	store_close(&st);
}

TEST(plan_seed_creates_the_ten_phase_run_once)
{
	struct store_plan_summary sum;
	struct store_err err;
	struct store st;

	test_store_new(&st, "plan.db");
	CHECK_EQ_INT(store_seed_telemetry_run(&st, "/w", &sum, &err), 0);
	CHECK_EQ_INT(sum.phases, 10);
	CHECK_EQ_INT(sum.tiers, 1);
	store_plan_summary_free(&sum);
	CHECK_EQ_INT(
	    test_query(&st,
	        "SELECT count(*) FROM runs WHERE id = '" STORE_SEED_RUN_ID
	        "' AND token_cap = 500000 AND max_phases = 15 AND max_duration_minutes = 120 AND "
	        "workspace = '/w'"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM tiers WHERE tier_id = 'T1' AND name = "
	                 "'Telemetry Collection Tier' AND token_cap = 500000 AND ci_run_cap = 20"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM phases WHERE task_category = "
	                 "'implementation' AND complexity = 'low'"),
	    2);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM phases WHERE task_category = "
	                 "'implementation' AND complexity = 'medium'"),
	    4);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM phases WHERE task_category = 'tests'"), 3);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM phases WHERE task_category = 'docs'"), 1);
	CHECK_EQ_INT(
	    test_query(&st,
	        "SELECT count(*) FROM phases WHERE max_builder_attempts = 3 "
	        "AND max_auditor_attempts = 2 AND incident_token_cap = 50000 AND state = 'QUEUED' "
	        "AND check_command IS NOT NULL"),
	    10);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT phase_index FROM phases WHERE phase_id = "
	                 "'telemetry-p10-file-util'"),
	    9);
	CHECK_EQ_INT(
	    test_query(&st,
	        "SELECT count(*) FROM phases WHERE phase_id = "
	        "'telemetry-p6-string-tests' AND scope LIKE '%test_string_helper.py%conftest.py%'"),
	    1);
	CHECK_EQ_INT(store_seed_telemetry_run(&st, "/w", &sum, &err), STORE_EEXIST);
	CHECK(strstr(err.text, "already exists") != NULL);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM phases"), 10);
	store_close(&st);
}
