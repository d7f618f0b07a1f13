#include "common/store/schema.sql.h"
#include "common/store/sqlite/db_sqlite.h"
#include "common/store/store_internal.h"
#include "common/store/store_original.h"
#include "common/store/store_scope.h"
#include "common/store/store_values.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "tests/unit/test.h"
#include "tests/unit/testutil.h"

#include <stdlib.h>
#include <string.h>

/* The integer result of `sql` on an open connection. */
static int64_t test_count_db(struct db *db, const char *sql)
{
	int64_t n = -1;

	CHECK_EQ_INT(store_query_int(db, sql, &n, NULL), 0);
	return n;
}

/* Parse `text` as a stored scope, expecting success; return the deliverables joined by
 * ',' (static buffer) and the form in *form. */
static const char *scope_dels(const char *text, enum store_scope_form *form)
{
	static char out[512];
	struct store_scope sc;
	char why[256] = "";

	if (store_scope_parse_text(text, &sc, why, sizeof why) != 0) {
		fprintf(stderr, "scope %s: %s\n", text, why);
		CHECK(0);
	}
	out[0] = '\0';
	for (size_t i = 0; i < sc.deliverables.n; i++)
		snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "",
		    sc.deliverables.items[i]);
	*form = sc.form;
	store_scope_free(&sc);
	return out;
}

TEST(scope_every_shape_the_original_stores_is_read)
{
	enum store_scope_form f;
	struct store_scope sc;
	char why[256];

	CHECK_EQ_STR(scope_dels("{\"paths\": [\"src/\"], \"read_only_context\": [\"README.md\", "
	                        "{\"path\": \"docs/a.md\", \"reason\": \"style\"}], "
	                        "\"deliverables\": [\"src/a.py\", \"src/b.py\"]}",
	                 &f),
	    "src/a.py,src/b.py");
	CHECK_EQ_INT(f, STORE_SCOPE_OBJECT);
	CHECK_EQ_STR(scope_dels("{\"deliverables\": {\"code\": [\"src/a.py\"], \"tests\": "
	                        "[\"tests/test_a.py\", \"src/a.py\"], \"docs\": []}}",
	                 &f),
	    "src/a.py,tests/test_a.py");
	CHECK_EQ_STR(scope_dels("{\"paths\": [\"src/\"]}", &f), "");
	CHECK_EQ_STR(scope_dels("\"{\\\"paths\\\": [\\\"src/auth/\\\"], \\\"deliverables\\\": "
	                        "[\\\"src/auth/session.py\\\"]}\"",
	                 &f),
	    "src/auth/session.py");
	CHECK_EQ_INT(f, STORE_SCOPE_ENCODED);
	CHECK_EQ_STR(scope_dels("\"docs/auth.md\"", &f), "docs/auth.md");
	CHECK_EQ_INT(f, STORE_SCOPE_PATH);
	CHECK_EQ_STR(scope_dels("src/bare.py", &f), "src/bare.py");
	CHECK_EQ_STR(scope_dels("\"docs/\"", &f), "");
	CHECK_EQ_STR(scope_dels(NULL, &f), "");
	CHECK_EQ_INT(f, STORE_SCOPE_NONE);
	CHECK_EQ_STR(scope_dels("null", &f), "");

	CHECK_EQ_INT(store_scope_parse_text("{\"paths\": [\"a/\"], \"read_only_context\": "
	                                    "[\"x\"], \"deliverables\": [\"a/b.py\"]}",
	                 &sc, why, sizeof why),
	    0);
	CHECK_EQ_INT(sc.paths.n, 1);
	CHECK_EQ_STR(sc.context.items[0], "x");
	CHECK(sc.deliverables.items[1] == NULL);
	store_scope_free(&sc);
}

TEST(scope_that_cannot_be_interpreted_says_why)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "[\"a.py\"]", "a JSON array" },
		{ "42", "a JSON number" },
		{ "{\"deliverables\": [\"a.py\", 7]}", "deliverables[1]: expected a path string" },
		{ "{\"deliverables\": {\"code\": [{\"x\": 1}]}}", "deliverables.code[0]" },
		{ "{\"read_only_context\": [{\"reason\": \"r\"}]}", "read_only_context[0].path" },
		{ "\"not json {\"", "neither a path nor JSON" },
		{ "this is prose", "not JSON and not a path" },
		{ "\"null\"", "holding null" },
	};
	struct store_scope sc;
	char why[256];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_EQ_INT(store_scope_parse_text(bad[i].text, &sc, why, sizeof why), -1);
		if (strstr(why, bad[i].why) == NULL) {
			fprintf(stderr, "%s: %s\n", bad[i].text, why);
			CHECK(0);
		}
		CHECK(sc.deliverables.n == 0 && sc.deliverables.items == NULL);
	}
}

/* Whether two lists hold the same paths, found at the same places. */
static bool scope_lists_equal(const struct store_scope_list *a, const struct store_scope_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->items[i], b->items[i]) != 0 || strcmp(a->where[i], b->where[i]) != 0)
			return false;
	return true;
}

TEST(scope_text_reads_as_its_json_does)
{
	/* Plain arrays of plain strings are read without a JSON tree; every other text goes
	 * to the full reader. Either way the result is the JSON value's. */
	static const char *const texts[] = {
		"{\"paths\":[\"out/\"],\"read_only_context\":[],\"deliverables\":[\"out/a.py\"]}",
		" { \"deliverables\" : [ \"b.py\" , \"a.py\", \"b.py\" ] ,\n\"paths\":[\"a/\",\"b/\"] } ",
		"{}",
		"{\"paths\": []}",
		"{\"read_only_context\": [\"README.md\", \"x y.md\"]}",
		"{\"paths\": [\"a/\"],}",
		"{\"paths\": [\"a/\"] \"deliverables\": []}",
		"{\"paths\": [\"a/\",]}",
		"{\"paths\": [\"a/\"]} x",
		"{\"paths\": [\"a/\"], \"paths\": [\"b/\"]}",
		"{\"paths\": [\"\"]}",
		"{\"paths\": null, \"other\": 1}",
		"{\"deliverables\": [\"a\\u00e9.py\", \"c\\\"d\"]}",
		"{\"deliverables\": [\"caf\xc3\xa9.py\"]}",
		"{\"deliverables\": {\"code\": [\"a.py\"]}}",
		"{\"paths\": [\"p0/\", \"p1/\", \"p2/\", \"p3/\", \"p4/\", \"p5/\", \"p6/\", \"p7/\","
		" \"p8/\", \"p9/\", \"p10/\", \"p11/\"], \"deliverables\": [\"a.py\"]}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct store_scope a, b;
		char why_a[256] = "", why_b[256] = "";
		json_error_t jerr;
		json_t *v = json_loads(texts[i], JSON_DECODE_ANY, &jerr);
		int ra = store_scope_parse_text(texts[i], &a, why_a, sizeof why_a);
		int rb = v != NULL ? store_scope_parse_json(v, &b, why_b, sizeof why_b) : -1;

		json_decref(v);
		if (v == NULL) {
			/* Not JSON, and not a path either (it starts with a brace). */
			CHECK_EQ_INT(ra, -1);
			store_scope_free(&a);
			continue;
		}
		if (ra != rb || a.form != b.form || a.buckets != b.buckets ||
		    !scope_lists_equal(&a.paths, &b.paths) ||
		    !scope_lists_equal(&a.context, &b.context) ||
		    !scope_lists_equal(&a.deliverables, &b.deliverables) ||
		    strcmp(why_a, why_b) != 0) {
			fprintf(stderr, "%s: %d (%s) against %d (%s)\n", texts[i], ra, why_a, rb,
			    why_b);
			CHECK(0);
		}
		store_scope_free(&a);
		store_scope_free(&b);
	}
}

TEST(original_inserts_name_every_python_side_value)
{
	struct db *db = NULL;
	char msg[256], *sql;

	CHECK(db_sqlite_open(":memory:", SQLITE_OPEN_READWRITE, 0, &db, msg, sizeof msg) == DB_OK);
	sql = store_original_insert_sql(
	    db, "runs", "id, state, created_at, updated_at", "?1, 'DONE_SUCCESS', ?2, ?2");
	db_close(db);

	CHECK(strstr(sql, "INSERT INTO runs (id, state, created_at, updated_at, safety_profile,") ==
	    sql);
	CHECK(strstr(sql,
	          "promotion_eligible_to_main) VALUES (?1, 'DONE_SUCCESS', ?2, ?2, "
	          "'normal',") != NULL);
	CHECK(strstr(sql, "'RUN_CREATED'") == NULL);
	free(sql);
}

TEST(original_values_are_the_defaults_of_autopacks_schema)
{
	struct store st;

	test_store_new(&st, "fresh.db");
	for (size_t i = 0; i < store_n_original_fills; i++) {
		const struct store_original_fill *f = &store_original_fills[i];
		struct db_stmt *q = NULL;

		if (f->value == NULL || strcmp(f->column, "deliverables_json") == 0 ||
		    strcmp(f->column, "truncated") == 0 ||
		    strcmp(f->column, "is_truncated_output") == 0)
			continue;
		CHECK(
		    db_prepare(st.db,
		        "SELECT dflt_value FROM pragma_table_info(?1) WHERE name = ?2 AND \"notnull\"",
		        &q) == DB_OK);
		db_bind_text(q, 1, f->table);
		db_bind_text(q, 2, f->column);
		if (db_step(q) != DB_ROW || db_column_text(q, 0) == NULL ||
		    strcmp(db_column_text(q, 0), f->value) != 0) {
			fprintf(stderr, "%s.%s: default %s, the original writes %s\n", f->table,
			    f->column, db_column_text(q, 0) ? db_column_text(q, 0) : "-", f->value);
			CHECK(0);
		}
		db_finalize(q);
	}
	store_close(&st);
}

TEST(db_text_int64_reads_only_a_whole_integer)
{
	int64_t v = -1;

	CHECK(db_text_int64("12", &v) && v == 12);
	CHECK(db_text_int64(" -7 ", &v) && v == -7);
	CHECK(db_text_int64("+3", &v) && v == 3);
	CHECK(db_text_int64("9223372036854775807", &v) && v == INT64_MAX);
	CHECK(db_text_int64("-9223372036854775808", &v) && v == INT64_MIN);
	CHECK(!db_text_int64("9223372036854775808", &v));
	CHECK(!db_text_int64("12abc", &v));
	CHECK(!db_text_int64("1.5", &v));
	CHECK(!db_text_int64("", &v));
	CHECK(!db_text_int64("-", &v));
	CHECK(!db_text_int64("1 2", &v));
}

TEST(db_column_int64_reads_a_text_only_when_it_is_wholly_an_integer)
{
	struct db_stmt *q = NULL;
	struct db *db = NULL;
	char msg[256];
	int64_t v = -1;

	CHECK(db_sqlite_open(":memory:", SQLITE_OPEN_READWRITE, 0, &db, msg, sizeof msg) == DB_OK);
	CHECK(db_prepare(db, "SELECT '12abc', ' 12 ', 7, 2.9, NULL", &q) == DB_OK);
	CHECK(db_step(q) == DB_ROW);
	CHECK(db_column_int64(q, 0) == 0);
	CHECK(!db_column_int64_ok(q, 0, &v) && v == 0);
	CHECK(db_column_int64(q, 1) == 12);
	CHECK(db_column_int64_ok(q, 2, &v) && v == 7);
	CHECK(db_column_int64(q, 3) == 2);
	CHECK(db_column_int64_ok(q, 4, &v) && v == 0);
	db_finalize(q);
	db_close(db);
}

TEST(values_are_rewritten_into_the_originals_formats)
{
	struct store_value_cols cols;
	struct store_err err;
	struct db *db = NULL;
	char msg[256];

	CHECK(db_sqlite_open(":memory:", SQLITE_OPEN_READWRITE, 0, &db, msg, sizeof msg) == DB_OK);
	CHECK_EQ_INT(store_values_register(db, &err), 0);
	CHECK_EQ_INT(store_exec(db,
	                 "CREATE TABLE runs (id TEXT, state VARCHAR, created_at DATETIME);"
	                 "CREATE TABLE flags (ok BOOLEAN, at DATETIME);"
	                 "INSERT INTO runs VALUES ('a', 'RunState.phase_execution', "
	                 "'2026-12-01T19:31:27.480Z'), ('b', 'DONE_FAILED_X', "
	                 "'2026-12-01 19:31:27.480000'), ('c', 'WHATEVER', 'soon');"
	                 "INSERT INTO flags VALUES ('true', NULL), (1, NULL), ('maybe', NULL), "
	                 "(0.0, NULL);",
	                 "setup", &err),
	    0);
	CHECK_EQ_INT(store_values_columns(db, true, &cols, &err), 0);
	CHECK_EQ_INT(store_values_survey(db, &cols, &err), 0);
	CHECK_EQ_INT(cols.n, 3);
	CHECK_EQ_STR(cols.items[0].column, "created_at");
	CHECK_EQ_INT(cols.items[0].rewrite, 1);
	CHECK_EQ_STR(cols.items[0].from, "2026-12-01T19:31:27.480Z");
	CHECK_EQ_STR(cols.items[0].to, "2026-12-01 19:31:27.480000");
	CHECK_EQ_INT(cols.items[0].unreadable, 1);
	CHECK_EQ_STR(cols.items[0].bad, "soon");
	CHECK_EQ_STR(cols.items[1].column, "ok");
	CHECK_EQ_INT(cols.items[1].rewrite, 1);
	CHECK_EQ_INT(cols.items[1].unreadable, 1);
	CHECK_EQ_INT(cols.items[2].kind, STORE_VALUE_RUN_STATE);
	CHECK_EQ_INT(cols.items[2].rewrite, 1);
	CHECK_EQ_STR(cols.items[2].to, "PHASE_EXECUTION");
	CHECK_EQ_INT(cols.items[2].unreadable, 1);
	CHECK_EQ_INT(store_values_rewrite(db, &cols, &err), 0);
	CHECK_EQ_INT(cols.items[1].rewrite, 1);
	CHECK_EQ_INT(test_count_db(db, "SELECT count(*) FROM flags WHERE ok = 1"), 2);
	store_value_cols_free(&cols);
	CHECK_EQ_INT(store_values_columns(db, true, &cols, &err), 0);
	CHECK_EQ_INT(store_values_survey(db, &cols, &err), 0);
	for (size_t i = 0; i < cols.n; i++)
		CHECK_EQ_INT(cols.items[i].rewrite, 0);
	store_value_cols_free(&cols);
	db_close(db);
}

TEST(migration_to_v3_adds_the_originals_columns_and_rewrites_timestamps)
{
	struct store_err err;
	struct store st;
	char *p = test_path("v2.db");

	CHECK_EQ_INT(store_init_sql(p, SCHEMA_V1_SQL SCHEMA_V2_SQL, 2, NULL, &err), 0);
	test_sql(p,
	    "UPDATE meta SET created_at = '2026-11-30T08:00:00.001Z';"
	    "INSERT INTO runs (id, created_at, updated_at) VALUES ('r',"
	    " '2026-12-01T19:31:27.480Z', '2026-12-01T19:31:28.000Z');"
	    "INSERT INTO tiers (tier_id, run_id, tier_index, name, created_at, updated_at)"
	    " VALUES ('T1', 'r', 0, 't', '2026-12-01T19:31:27.480Z', '2026-12-01T19:31:27.480Z');"
	    "INSERT INTO phases (phase_id, run_id, tier_id, phase_index, name, created_at,"
	    " updated_at) VALUES ('p', 'r', 1, 0, 'p', '2026-12-01T19:31:27.480Z',"
	    " '2026-12-01T23:59:59.999Z');"
	    "INSERT INTO attempts (run_id, phase_id, attempt_number, started_at, ended_at)"
	    " VALUES ('r', 'p', 1, '2026-12-01T19:31:27.480Z', '2026-12-01T19:31:29.480Z');"
	    "INSERT INTO events (attempt_id, seq, kind, created_at) VALUES"
	    " (1, 1, 'log', '2026-12-01T19:31:27.481Z');"
	    "INSERT INTO llm_usage_events (provider, model, role, created_at) VALUES"
	    " ('anthropic', 'm', 'builder', '2026-12-01T19:31:27.482Z');");
	CHECK_EQ_INT(store_open(&st, p, "u", STORE_WRITE, &err), 0);
	CHECK_EQ_INT(st.migrated_from, 2);
	CHECK_EQ_INT(
	    test_query(
	        &st, "SELECT count(*) FROM meta WHERE created_at = '2026-11-30 08:00:00.001000'"),
	    1);
	CHECK_EQ_INT(
	    test_query(&st,
	        "SELECT count(*) FROM phases WHERE updated_at = '2026-12-01 23:59:59.999000'"
	        " AND issue_state = 'no_issues' AND quality_blocked = 0"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM llm_usage_events WHERE is_doctor_call = 0"
	                 " AND created_at = '2026-12-01 19:31:27.482000'"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM runs WHERE ci_runs_used = 0"
	                 " AND promotion_eligible_to_main = 'false'"),
	    1);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM tiers WHERE cleanliness = 'clean'"), 1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT (SELECT count(*) FROM attempts WHERE ended_at LIKE '%T%')"
	                 " + (SELECT count(*) FROM events WHERE created_at LIKE '%Z')"
	                 " + (SELECT count(*) FROM runs WHERE updated_at LIKE '%T%')"),
	    0);
	store_close(&st);
	free(p);
}

/* Set the phases of tier 1 to `states` (comma-separated, one per phase p1, p2, ...), let
 * the tier follow, and return its state (static buffer). */
static const char *tier_after(struct store *st, const char *tier_state, const char *states)
{
	static char out[32];
	struct store_err err;
	struct db_stmt *q = NULL;
	char *copy = xstrdup(states), *save = NULL, *sql;
	int i = 0;

	sql = db_sqlf("DELETE FROM phases; UPDATE tiers SET state = %Q, completed_at = NULL"
	              " WHERE id = 1",
	    tier_state);
	CHECK_EQ_INT(store_exec(st->db, sql, "reset", &err), 0);
	free(sql);
	for (char *s = strtok_r(copy, ",", &save); s != NULL; s = strtok_r(NULL, ",", &save)) {
		sql = db_sqlf("INSERT INTO phases (phase_id, run_id, tier_id, phase_index,"
		              " name, state, created_at, updated_at) VALUES ('p%d', 'r', 1, %d,"
		              " 'n', %Q, 'x', 'x')",
		    i, i, s);
		CHECK_EQ_INT(store_exec(st->db, sql, "phase", &err), 0);
		free(sql);
		i++;
	}
	free(copy);
	CHECK_EQ_INT(store_tier_follow(st->db, 1, "2026-12-01 10:00:00.000000", &err), 0);
	CHECK(db_prepare(st->db, "SELECT state FROM tiers WHERE id = 1", &q) == DB_OK);
	CHECK(db_step(q) == DB_ROW);
	snprintf(out, sizeof out, "%s", db_column_text(q, 0));
	db_finalize(q);
	return out;
}

TEST(tier_state_follows_its_phases)
{
	struct store_err err;
	struct store st;

	test_store_new(&st, "tiers.db");
	CHECK_EQ_INT(store_exec(st.db,
	                 "INSERT INTO runs (id, created_at, updated_at) VALUES ('r', 'x', 'x');"
	                 "INSERT INTO tiers (id, tier_id, run_id, tier_index, name, created_at,"
	                 " updated_at) VALUES (1, 'T1', 'r', 0, 't', 'x', 'x')",
	                 "setup", &err),
	    0);
	CHECK_EQ_STR(tier_after(&st, "PENDING", "QUEUED,QUEUED"), "PENDING");
	CHECK_EQ_STR(tier_after(&st, "PENDING", "EXECUTING,QUEUED"), "IN_PROGRESS");
	CHECK_EQ_STR(tier_after(&st, "PENDING", "COMPLETE,QUEUED"), "IN_PROGRESS");
	CHECK_EQ_STR(tier_after(&st, "PENDING", "FAILED,QUEUED"), "IN_PROGRESS");
	CHECK_EQ_STR(tier_after(&st, "IN_PROGRESS", "COMPLETE,SKIPPED"), "COMPLETE");
	CHECK_EQ_STR(tier_after(&st, "PENDING", "SKIPPED,SKIPPED"), "SKIPPED");
	CHECK_EQ_STR(tier_after(&st, "IN_PROGRESS", "COMPLETE,FAILED"), "FAILED");
	CHECK_EQ_STR(tier_after(&st, "FAILED", "QUEUED,QUEUED"), "PENDING");
	CHECK_EQ_STR(tier_after(&st, "IN_PROGRESS", "QUEUED"), "IN_PROGRESS");
	CHECK_EQ_INT(
	    test_query(&st,
	        "SELECT count(*) FROM tiers WHERE updated_at = '2026-12-01 10:00:00.000000'"
	        " AND started_at IS NOT NULL AND completed_at IS NULL"),
	    1);
	tier_after(&st, "IN_PROGRESS", "COMPLETE");
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM tiers WHERE state = 'COMPLETE' AND completed_at ="
	                 " '2026-12-01 10:00:00.000000'"),
	    1);
	store_close(&st);
}

TEST(scope_lists_keep_each_path_once_with_its_place)
{
	struct store_scope sc;
	struct strbuf b = { 0 };
	char why[256], want[32];

	/* lists of every length around the steps their arrays grow by, a path given twice */
	for (int n = 1; n <= 20; n++) {
		strbuf_puts(&b, "{\"deliverables\": {\"code\": [");
		for (int i = 0; i < n; i++)
			strbuf_printf(&b, "%s\"d%d.py\"", i > 0 ? ", " : "", i);
		strbuf_printf(&b, "], \"tests\": [\"d%d.py\", \"t.py\"]}}", n / 2);
		CHECK_EQ_INT(store_scope_parse_text(b.s, &sc, why, sizeof why), 0);
		CHECK_EQ_INT(sc.deliverables.n, n + 1);
		for (int i = 0; i < n; i++) {
			snprintf(want, sizeof want, "d%d.py", i);
			CHECK_EQ_STR(sc.deliverables.items[i], want);
			snprintf(want, sizeof want, "deliverables.code[%d]", i);
			CHECK_EQ_STR(sc.deliverables.where[i], want);
		}
		CHECK_EQ_STR(sc.deliverables.items[n], "t.py");
		CHECK_EQ_STR(sc.deliverables.where[n], "deliverables.tests[1]");
		CHECK(sc.deliverables.items[n + 1] == NULL && sc.deliverables.where[n + 1] == NULL);
		store_scope_free(&sc);
		free(b.s);
		memset(&b, 0, sizeof b);
	}
}
