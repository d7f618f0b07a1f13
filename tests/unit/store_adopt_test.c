#include "common/store/schema.sql.h"
#include "common/store/store_adopt.h"
#include "common/store/store_drain.h"
#include "common/store/store_internal.h"
#include "common/util.h"
#include "tests/unit/test.h"
#include "tests/unit/testutil.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* An older legacy schema: only the columns adoption needs, no timestamps, no unique
 * (run_id, phase_id), two runs (one with an id that is not a plain name), one phase
 * left EXECUTING and a NULL counter. */
#define MINIMAL_LEGACY                                                                             \
	"CREATE TABLE runs (id VARCHAR NOT NULL PRIMARY KEY, state VARCHAR);"                      \
	"CREATE TABLE tiers (id INTEGER PRIMARY KEY, tier_id VARCHAR, run_id VARCHAR,"             \
	" tier_index INTEGER, name VARCHAR);"                                                      \
	"CREATE TABLE phases (id INTEGER PRIMARY KEY, phase_id VARCHAR, run_id VARCHAR,"           \
	" tier_id INTEGER, phase_index INTEGER, name VARCHAR, state VARCHAR,"                      \
	" builder_attempts INTEGER, scope JSON, last_failure_reason VARCHAR);"                     \
	"INSERT INTO runs VALUES ('alpha', 'PHASE_EXECUTION'), ('team/beta', NULL);"               \
	"INSERT INTO tiers VALUES (1, 'T1', 'alpha', 0, 'one'), (2, 'T1', 'team/beta', 0, 'b');"   \
	"INSERT INTO phases VALUES (1, 'p1', 'alpha', 1, 0, 'first', 'COMPLETE', 1,"               \
	" '{\"paths\":[\"src/\"],\"deliverables\":[\"src/a.py\"]}', NULL),"                        \
	" (2, 'p2', 'alpha', 1, 1, 'second', 'EXECUTING', NULL, 'src/b.py', 'CI_FAILED'),"         \
	" (3, 'p1', 'team/beta', 2, 0, 'other', 'QUEUED', 0, NULL, NULL);"

/* Return the column entry of the report for table.column, or NULL. */
static const struct store_adopt_column *added(
    const struct store_adopt_report *r, const char *table, const char *column)
{
	for (size_t i = 0; i < r->n_columns_added; i++)
		if (strcmp(r->columns_added[i].table, table) == 0 &&
		    strcmp(r->columns_added[i].column, column) == 0)
			return &r->columns_added[i];
	return NULL;
}

/* Return the fill entry of the report for table.column, or NULL. */
static const struct store_adopt_fill *filled(
    const struct store_adopt_report *r, const char *table, const char *column)
{
	for (size_t i = 0; i < r->n_fills; i++)
		if (strcmp(r->fills[i].table, table) == 0 &&
		    strcmp(r->fills[i].column, column) == 0)
			return &r->fills[i];
	return NULL;
}

TEST(store_adopt_of_an_older_legacy_schema_adds_nullable_columns_and_stamps_nulls)
{
	struct store_adopt_report rep;
	const struct store_adopt_column *c;
	const struct store_adopt_fill *f;
	struct store_err err;
	char *p = test_path("legacy.db"), *ws = test_path("ws");

	test_sql(p, MINIMAL_LEGACY);
	CHECK_EQ_INT(store_adopt_check(p, &err), 0);
	CHECK_EQ_INT(store_adopt(p, ws, &rep, &err), 0);
	CHECK_EQ_INT(rep.runs, 2);
	CHECK_EQ_INT(rep.phases, 3);
	CHECK_EQ_INT(rep.executing_requeued, 1);
	CHECK_EQ_INT(rep.workspaces_set, 2);
	CHECK_EQ_INT(rep.bare_scopes, 1);
	/* NOT NULL without a default: added nullable, and said so. */
	c = added(&rep, "phases", "created_at");
	CHECK(c != NULL && c->relaxed);
	c = added(&rep, "runs", "token_cap");
	CHECK(c != NULL && !c->relaxed);
	CHECK_EQ_STR(c->decl, "INTEGER NOT NULL DEFAULT 5000000");
	/* NULL timestamps get the adoption time; NULL counters and states their default. */
	f = filled(&rep, "phases", "created_at");
	CHECK(f != NULL && f->rows == 3 && f->value != NULL);
	CHECK_EQ_INT(test_count(p,
	                 "SELECT count(*) FROM phases, meta WHERE phases.created_at "
	                 "= meta.created_at"),
	    3);
	f = filled(&rep, "phases", "builder_attempts");
	CHECK(f != NULL && f->rows == 1);
	CHECK_EQ_STR(f->value, "0");
	CHECK_EQ_INT(test_count(p, "SELECT count(*) FROM runs WHERE state = 'RUN_CREATED'"), 1);
	/* The pair became unique so attempts can reference it. */
	CHECK_EQ_INT(test_count(p,
	                 "SELECT count(*) FROM sqlite_master WHERE name = "
	                 "'ux_phases_run_phase'"),
	    1);
	CHECK_EQ_INT(test_count(p,
	                 "SELECT count(*) FROM phases WHERE phase_id = 'p2' AND "
	                 "state = 'QUEUED' AND last_failure_reason = 'CI_FAILED'"),
	    1);
	/* Workspaces: plain ids as they are; others made safe and unique. */
	{
		char *a = xasprintf("%s/alpha", ws), *b = xasprintf("%s/run_team_beta-2", ws);
		char *q = xasprintf("SELECT count(*) FROM runs WHERE (id = 'alpha' AND workspace"
		                    " = '%s') OR (id = 'team/beta' AND workspace = '%s')",
		    a, b);
		struct stat sb;

		CHECK_EQ_INT(test_count(p, q), 2);
		CHECK(stat(a, &sb) == 0 && S_ISDIR(sb.st_mode));
		CHECK(stat(b, &sb) == 0 && S_ISDIR(sb.st_mode));
		free(q);
		free(a);
		free(b);
	}
	store_adopt_report_free(&rep);
	free(ws);
	free(p);
}

TEST(store_adopt_result_opens_for_writing_and_takes_attempts)
{
	struct store_adopt_report rep;
	struct store_drain *d;
	struct store_err err;
	struct store st;
	uint64_t att;
	int64_t num;
	char *p = test_path("legacy.db"), *ws = test_path("ws");

	test_sql(p, MINIMAL_LEGACY);
	CHECK_EQ_INT(store_adopt(p, ws, &rep, &err), 0);
	CHECK_EQ_INT(store_open(&st, p, "sqlite:///u", STORE_WRITE, &err), 0);
	CHECK_EQ_INT(st.schema_version, SCHEMA_VERSION);
	CHECK_EQ_STR(st.uuid, rep.uuid);
	CHECK_EQ_INT(store_drain_open(&st, &d, &err), 0);
	CHECK_EQ_INT(store_drain_begin(d, &err), 0);
	CHECK_EQ_INT(
	    store_drain_attempt_open(d, "team/beta", "p1", 1, NULL, false, &att, &num, &err), 0);
	CHECK_EQ_INT(store_drain_commit(d, &err), 0);
	CHECK_EQ_INT(num, 1);
	store_drain_close(d);
	store_close(&st);
	CHECK_EQ_INT(test_count(p,
	                 "SELECT count(*) FROM phases WHERE run_id = 'team/beta' AND "
	                 "state = 'EXECUTING'"),
	    1);
	store_adopt_report_free(&rep);
	free(ws);
	free(p);
}

TEST(store_adopt_that_fails_midway_leaves_the_database_unchanged)
{
	struct store_adopt_report rep;
	struct store_err err;
	char *p = test_path("legacy.db"), *blocker = test_path("blocker"), *ws;
	char *before, *after;
	size_t n0, n1;
	FILE *f;

	test_sql(p, MINIMAL_LEGACY);
	/* A workspace base under a regular file cannot be created: the last step fails. */
	f = fopen(blocker, "w");
	CHECK(f != NULL);
	fclose(f);
	ws = xasprintf("%s/ws", blocker);
	before = test_slurp(p, &n0);
	CHECK_EQ_INT(store_adopt(p, ws, &rep, &err), STORE_EIO);
	CHECK(strstr(err.text, "cannot create workspace") != NULL);
	CHECK(strstr(err.text, "the database is unchanged") != NULL);
	CHECK(strstr(err.text, ".pre-adopt-") != NULL);
	after = test_slurp(p, &n1);
	CHECK(n0 == n1 && memcmp(before, after, n0) == 0);
	CHECK_EQ_INT(test_count(p, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'"), 0);
	CHECK_EQ_INT(store_adopt_check(p, &err), 0);
	free(before);
	free(after);
	free(ws);
	free(blocker);
	free(p);
}

TEST(store_adopt_check_names_missing_tables_and_columns_and_null_keys)
{
	struct store_err err;
	char *a = test_path("a.db"), *b = test_path("b.db"), *c = test_path("c.db"),
	     *d = test_path("d.db");

	test_sql(a, "CREATE TABLE runs (id TEXT PRIMARY KEY, state TEXT);");
	CHECK_EQ_INT(store_adopt_check(a, &err), STORE_ENOTDB);
	CHECK(strstr(err.text, "no tiers, phases tables") != NULL);
	test_sql(b,
	    "CREATE TABLE runs (id TEXT PRIMARY KEY);"
	    "CREATE TABLE tiers (id INTEGER PRIMARY KEY, tier_id, run_id, tier_index, name);"
	    "CREATE TABLE phases (id INTEGER PRIMARY KEY, phase_id, run_id, tier_id,"
	    " phase_index, name, state);");
	CHECK_EQ_INT(store_adopt_check(b, &err), STORE_ENOTDB);
	CHECK(strstr(err.text, "table runs lacks column state") != NULL);
	test_sql(c, MINIMAL_LEGACY "UPDATE phases SET phase_id = NULL WHERE id = 3;");
	CHECK_EQ_INT(store_adopt_check(c, &err), STORE_ENOTDB);
	CHECK(strstr(err.text, "1 row of phases has NULL in phase_id") != NULL);
	CHECK_EQ_INT(store_init(d, NULL, &err), 0);
	CHECK_EQ_INT(store_adopt_check(d, &err), STORE_EEXIST);
	CHECK(strstr(err.text, "already an autopack database") != NULL);
	free(a);
	free(b);
	free(c);
	free(d);
}

TEST(store_adopt_skips_an_index_it_cannot_build_and_says_why)
{
	struct store_adopt_report rep;
	struct store_err err;
	char *p = test_path("legacy.db"), *ws = test_path("ws");
	bool seen = false;

	/* Legacy usage rows that already carry duplicate (attempt_id, seq) keys: the unique
	 * index on them cannot be built, everything else is. */
	test_sql(p,
	    MINIMAL_LEGACY
	    "CREATE TABLE llm_usage_events (id INTEGER PRIMARY KEY, provider, model, role,"
	    " total_tokens, attempt_id, seq);"
	    "INSERT INTO llm_usage_events VALUES (1, 'openai', 'm', 'builder', 5, 7, 1),"
	    " (2, 'openai', 'm', 'builder', 5, 7, 1);");
	CHECK_EQ_INT(store_adopt(p, ws, &rep, &err), 0);
	for (size_t i = 0; i < rep.n_indexes_skipped; i++)
		seen |= strcmp(rep.indexes_skipped[i].name, "ux_usage_event") == 0 &&
		    strstr(rep.indexes_skipped[i].why, "UNIQUE") != NULL;
	CHECK(seen);
	CHECK_EQ_INT(rep.n_indexes_skipped, 1);
	CHECK_EQ_INT(rep.usage_without_split, 2);
	CHECK_EQ_INT(test_count(p,
	                 "SELECT count(*) FROM sqlite_master WHERE name = "
	                 "'ux_v2_event'"),
	    1);
	store_adopt_report_free(&rep);
	free(ws);
	free(p);
}
