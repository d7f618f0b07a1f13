#include "common/store/store_internal.h"
#include "common/strbuf.h"
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
	expect_invalid(
	    &st, append, "runs[0].tiers[0].tier_id: tier \"T2\" already exists in run \"r1\"");
	expect_invalid(&st,
	    PLAN("{\"run_id\": \"r1\", \"append\": true, \"tiers\": ["
	         "{\"tier_id\": \"T4\", \"name\": \"t\", \"phases\": [" PHASE("p2") "]}]}"),
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

/* Append to `b` a run `id` (appended to an existing one with `append`) whose tiers
 * T<first>... hold counts[0], counts[1]... phases <prefix>0, <prefix>1...; phase k sets
 * max_builder_attempts k + 1 when k % 3 == 0 and builder_mode "b<k>" when k % 5 == 0. */
static void many_phases_run(struct strbuf *b, const char *id, bool append, int first,
    const int *counts, size_t ntiers, const char *prefix)
{
	int k = 0;

	strbuf_printf(b, "{\"run_id\": \"%s\", %s\"tiers\": [", id,
	    append ? "\"append\": true, " : "\"workspace\": \"ws\", ");
	for (size_t t = 0; t < ntiers; t++) {
		strbuf_printf(b, "%s{\"tier_id\": \"T%zu\", \"name\": \"t\", \"phases\": [",
		    t > 0 ? ", " : "", first + t);
		for (int j = 0; j < counts[t]; j++, k++) {
			strbuf_printf(b, "%s{\"phase_id\": \"%s%d\", \"name\": \"n\", ",
			    j > 0 ? ", " : "", prefix, k);
			if (k % 3 == 0)
				strbuf_printf(b, "\"max_builder_attempts\": %d, ", k + 1);
			if (k % 5 == 0)
				strbuf_printf(b, "\"builder_mode\": \"b%d\", ", k);
			strbuf_printf(b,
			    "\"scope\": {\"paths\": [\"src/\"], \"deliverables\": "
			    "[\"src/%s%d.py\"]}}",
			    prefix, k);
		}
		strbuf_puts(b, "]}");
	}
	strbuf_puts(b, "]}");
}

/* The phases of run `id` (phase ids <prefix>k) whose row is the one many_phases_run
 * describes, k counted in the order of the rows' ids, in tiers T<first>... of `counts`
 * phases each. */
static int64_t many_phases_rows(
    struct store *st, const char *id, const char *prefix, int first, const int *counts)
{
	char *sql = xasprintf(
	    "WITH x AS (SELECT p.*, t.tier_id AS tname, t.run_id AS trun, t.tier_index AS tix, "
	    "p.id - (SELECT min(id) FROM phases WHERE run_id = p.run_id AND phase_id LIKE '%s%%') "
	    "AS k FROM phases p JOIN tiers t ON p.tier_id = t.id WHERE p.run_id = '%s' AND "
	    "p.phase_id LIKE '%s%%') "
	    "SELECT count(*) FROM x WHERE trun = run_id AND phase_id = '%s' || k AND "
	    "tname = CASE WHEN k < %d THEN 'T%d' WHEN k < %d THEN 'T%d' ELSE 'T%d' END AND "
	    "tix = %d - 1 + CASE WHEN k < %d THEN 0 WHEN k < %d THEN 1 ELSE 2 END AND "
	    "phase_index = CASE WHEN k < %d THEN k WHEN k < %d THEN k - %d ELSE k - %d END AND "
	    "coalesce(max_builder_attempts, -1) = CASE WHEN k %% 3 = 0 THEN k + 1 ELSE -1 END AND "
	    "coalesce(builder_mode, '') = CASE WHEN k %% 5 = 0 THEN 'b' || k ELSE '' END AND "
	    "scope LIKE '%%\"src/%s' || k || '.py\"%%' AND state = 'QUEUED'",
	    prefix, id, prefix, prefix, counts[0], first, counts[0] + counts[1], first + 1,
	    first + 2, first, counts[0], counts[0] + counts[1], counts[0], counts[0] + counts[1],
	    counts[0], counts[0] + counts[1], prefix);
	int64_t n = test_query(st, sql);

	free(sql);
	return n;
}

TEST(plan_import_writes_many_phases_a_run_in_the_plan_order)
{
	static const int r1[] = { 7, 20, 1 }, r2[] = { 17, 0, 0 }, r1more[] = { 18, 16, 3 };
	struct store_err err;
	struct strbuf b = { 0 };
	struct store st;

	/* more phases than one statement inserts, in tiers of every size around it */
	test_store_new(&st, "plan.db");
	strbuf_puts(&b, "{\"runs\": [");
	many_phases_run(&b, "r1", false, 1, r1, 3, "p");
	strbuf_puts(&b, ", ");
	many_phases_run(&b, "r2", false, 1, r2, 1, "p");
	strbuf_puts(&b, "]}");
	CHECK_EQ_INT(import(&st, b.s, &err), 0);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM phases"), 45);
	CHECK_EQ_INT(many_phases_rows(&st, "r1", "p", 1, r1), 28);
	CHECK_EQ_INT(many_phases_rows(&st, "r2", "p", 1, r2), 17);
	/* a run's phases come before the next run's, and a tier's before the next tier's */
	CHECK_EQ_INT(test_query(&st, "SELECT max(id) FROM phases WHERE run_id = 'r1'") <
	        test_query(&st, "SELECT min(id) FROM phases WHERE run_id = 'r2'"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM tiers t JOIN tiers u ON t.run_id = "
	                 "u.run_id AND t.tier_index < u.tier_index AND t.id > u.id"),
	    0);
	free(b.s);

	/* appended tiers, after the run's own */
	memset(&b, 0, sizeof b);
	strbuf_puts(&b, "{\"runs\": [");
	many_phases_run(&b, "r1", true, 4, r1more, 3, "q");
	strbuf_puts(&b, "]}");
	CHECK_EQ_INT(import(&st, b.s, &err), 0);
	CHECK_EQ_INT(many_phases_rows(&st, "r1", "q", 4, r1more), 37);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM phases WHERE run_id = 'r1'"), 65);
	free(b.s);
	store_close(&st);
}

TEST(plan_import_a_phase_the_database_refuses_writes_nothing_of_the_plan)
{
	static const int r3[] = { 20, 0, 0 };
	struct store_err err;
	struct strbuf b = { 0 };
	struct store st;

	/* the refused phase is in the middle of the run's first statement */
	test_store_new(&st, "plan.db");
	CHECK_EQ_INT(import(&st, PLAN(RUN("r1", PHASE("p1"))), &err), 0);
	CHECK_EQ_INT(db_exec(st.db,
	                 "CREATE TEMP TRIGGER refuse BEFORE INSERT ON phases WHEN "
	                 "NEW.phase_id = 'p5' BEGIN SELECT RAISE(ABORT, 'refused "
	                 "here'); END"),
	    DB_OK);
	strbuf_puts(&b, "{\"runs\": [");
	many_phases_run(&b, "r3", false, 1, r3, 1, "p");
	strbuf_puts(&b, "]}");
	CHECK_EQ_INT(import(&st, b.s, &err), STORE_EIO);
	CHECK(strstr(err.text, "writing a phase of run r3: refused here") != NULL);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM runs"), 1);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM tiers"), 1);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM phases"), 1);
	free(b.s);
	store_close(&st);
}

TEST(plan_import_judges_ids_and_field_names_byte_by_byte)
{
	struct store_err err;
	struct store st;
	char long_id[200], plan[600];

	test_store_new(&st, "plan.db");
	/* every character an id may hold, and the longest id */
	memset(long_id, 'x', 128);
	long_id[128] = '\0';
	snprintf(plan, sizeof plan, PLAN(RUN("%s", PHASE("A.z_0-9"))), long_id);
	CHECK_EQ_INT(import(&st, plan, &err), 0);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM phases WHERE phase_id = 'A.z_0-9'"), 1);
	/* one byte too many, a character outside the set, a leading '.' or '-' */
	long_id[128] = 'x';
	long_id[129] = '\0';
	snprintf(plan, sizeof plan, PLAN(RUN("%s", PHASE("p1"))), long_id);
	expect_invalid(&st, plan, "runs[0].run_id: \"xxxx");
	expect_invalid(&st, PLAN(RUN("r\xc3\xa9", PHASE("p1"))),
	    "runs[0].run_id: \"r\xc3\xa9\" is not a valid id (1-128 of A-Z a-z 0-9 . _ -, not "
	    "starting with . or -)");
	expect_invalid(&st, PLAN(RUN("r2", PHASE("p/1"))),
	    "runs[0].tiers[0].phases[0].phase_id: \"p/1\" is not a valid id");
	expect_invalid(&st, PLAN(RUN("r2", PHASE("p~"))),
	    "runs[0].tiers[0].phases[0].phase_id: \"p~\" is not a valid id");
	expect_invalid(
	    &st, PLAN(RUN(".r", PHASE("p1"))), "runs[0].run_id: \".r\" is not a valid id");
	expect_invalid(
	    &st, PLAN(RUN("-r", PHASE("p1"))), "runs[0].run_id: \"-r\" is not a valid id");
	/* names that share a first byte with a field's, and the empty name */
	expect_invalid(&st,
	    PLAN(RUN("r2",
	        "{\"phase_id\": \"p1\", \"names\": \"n\", \"scope\": {\"deliverables\": [\"a\"]}}")),
	    "runs[0].tiers[0].phases[0].names: unknown field");
	expect_invalid(&st,
	    PLAN(RUN("r2",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", \"s\": 1, "
	        "\"scope\": {\"deliverables\": [\"a\"]}}")),
	    "runs[0].tiers[0].phases[0].s: unknown field");
	expect_invalid(&st,
	    PLAN(RUN("r2",
	        "{\"phase_id\": \"p1\", \"name\": \"n\", \"\": 1, "
	        "\"scope\": {\"deliverables\": [\"a\"]}}")),
	    "runs[0].tiers[0].phases[0].: unknown field");
	store_close(&st);
}

/* The write system calls this process has made (/proc/self/io), or -1. */
static long long writes_made(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	long long n = -1;

	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "syscw: %lld", &n) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return n;
}

TEST(plan_import_writes_each_page_about_once)
{
	static const int counts[] = { 10, 0, 0 };
	struct store_err err;
	struct strbuf b = { 0 };
	struct store st;
	long long before, writes;
	int64_t pages;

	/* 10,000 phases: a statement's journal of the pages it changed passed SQLite's 64 KiB
	 * in memory, and from then on every statement wrote its journal to a temporary file, a
	 * write per page, ten times the writes of the pages themselves */
	test_store_new(&st, "plan.db");
	strbuf_puts(&b, "{\"runs\": [");
	for (int r = 0; r < 1000; r++) {
		char id[16];

		snprintf(id, sizeof id, "run-%d", r);
		if (r > 0)
			strbuf_puts(&b, ", ");
		many_phases_run(&b, id, false, 1, counts, 1, "p");
	}
	strbuf_puts(&b, "]}");
	before = writes_made();
	CHECK(before >= 0);
	CHECK_EQ_INT(import(&st, b.s, &err), 0);
	writes = writes_made() - before;
	pages = test_query(&st, "PRAGMA page_count");
	if (writes > 2 * pages + 100)
		fprintf(stderr, "%lld writes for %lld pages\n", writes, (long long)pages);
	CHECK(writes <= 2 * pages + 100);
	free(b.s);
	store_close(&st);
}
