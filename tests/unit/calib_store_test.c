/* Telemetry and coefficient sets in a real SQLite database; the report writers. */
#include "common/calib/calib.h"
#include "common/store/store_coef.h"
#include "common/store/store_internal.h"
#include "common/store/store_telemetry.h"
#include "common/util.h"
#include "tests/unit/test.h"
#include "tests/unit/testutil.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char tsv[] =
    "timestamp\tcategory\tcomplexity\tdeliverables\tpredicted_output\tactual_output\t"
    "selected_budget\tsuccess\ttruncated\tstop_reason\tmodel\n"
    "2025-12-29T19:04:18Z\timplementation\tlow\t1\t5200\t1157\t8192\ttrue\tfalse\tend_turn\tm\n"
    "2025-12-29T19:05:21Z\timplementation\tmedium\t1\t6500\t2033\t12288\ttrue\tfalse\tend_turn\tm\n"
    "2025-12-29T19:06:21Z\timplementation\tlow\t1\t5200\t1218\t8192\ttrue\tfalse\tend_turn\tm\n"
    "2025-12-29T20:14:55Z\tdocs\tlow\t1\t2600\t16384\t8192\tfalse\ttrue\tmax_tokens\tm\n"
    "2025-12-29T20:15:55Z\tdocs\tlow\t1\t0\t0\t8192\tfalse\tfalse\t\tm\n";

/* Parse the test TSV. */
static void parse(struct telem_samples *s)
{
	char err[256];

	CHECK(telem_tsv_parse(tsv, strlen(tsv), "t.tsv", s, err, sizeof err) == 0);
}

TEST(calib_store_import_writes_a_run_phases_and_derived_columns)
{
	struct store_telem_import sum;
	struct telem_samples s;
	struct store_err err;
	struct store st;

	test_store_new(&st, "t.db");
	parse(&s);
	CHECK(store_telemetry_import(&st, "imported-t", "t.tsv", &s, &sum, &err) == 0);
	CHECK_EQ_INT(sum.samples, 5);
	CHECK_EQ_INT(sum.phases, 3);
	CHECK_EQ_INT(sum.clean, 3);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM runs WHERE id = 'imported-t' AND state = "
	                 "'DONE_SUCCESS' AND workspace IS NULL"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM phases WHERE run_id = 'imported-t' AND "
	                 "state = 'COMPLETE'"),
	    3);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM phases WHERE phase_id = 'p02-implementation-"
	                 "medium' AND task_category = 'implementation'"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT count(*) FROM token_estimation_v2_events e JOIN phases p "
	                 "ON p.run_id = e.run_id AND p.phase_id = e.phase_id WHERE p.complexity = "
	                 "e.complexity AND p.task_category = e.category"),
	    5);
	/* 200·4043/6357 = 127.2 %; waste 5200/1157; underestimated 0. */
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT round(smape_percent * 10) FROM token_estimation_v2_events "
	                 "WHERE event_id = 1"),
	    1272);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT round(waste_ratio * 1000) FROM token_estimation_v2_events "
	                 "WHERE event_id = 1"),
	    4494);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT underestimated FROM token_estimation_v2_events WHERE "
	                 "event_id = 4"),
	    1);
	CHECK_EQ_INT(
	    test_query(&st,
	        "SELECT count(*) FROM token_estimation_v2_events WHERE event_id = 5 "
	        "AND smape_percent IS NULL AND waste_ratio IS NULL AND underestimated IS NULL "
	        "AND estimator_version IS NULL AND stop_reason IS NULL"),
	    1);
	CHECK_EQ_INT(test_query(&st,
	                 "SELECT is_truncated_output FROM token_estimation_v2_events WHERE "
	                 "event_id = 4"),
	    1);
	telem_samples_free(&s);
	store_close(&st);
}

TEST(calib_store_import_is_all_or_nothing_and_refuses_an_existing_run)
{
	struct store_telem_import sum;
	struct telem_samples s;
	struct store_err err;
	struct store st;

	test_store_new(&st, "t.db");
	parse(&s);
	CHECK(store_telemetry_import(&st, "imported-t", "t.tsv", &s, &sum, &err) == 0);
	CHECK(store_telemetry_import(&st, "imported-t", "t.tsv", &s, &sum, &err) == STORE_EEXIST);
	CHECK(strstr(err.text, "run imported-t already exists") != NULL);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM token_estimation_v2_events"), 5);
	/* A failure half-way (a NULL model breaks NOT NULL) leaves nothing behind. */
	free(s.v[4].model);
	s.v[4].model = NULL;
	CHECK(store_telemetry_import(&st, "imported-u", "t.tsv", &s, &sum, &err) == STORE_EIO);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM runs WHERE id = 'imported-u'"), 0);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM phases"), 3);
	CHECK_EQ_INT(test_query(&st, "SELECT count(*) FROM token_estimation_v2_events"), 5);
	telem_samples_free(&s);
	store_close(&st);
}

TEST(calib_store_read_returns_samples_filtered_by_run)
{
	struct store_telem_import sum;
	struct telem_samples s, got;
	struct store_err err;
	struct store st;
	char *runs[] = { "imported-b" };
	struct store_telem_filter all = { 0 }, only_b = { runs, 1 };

	test_store_new(&st, "t.db");
	parse(&s);
	CHECK(store_telemetry_import(&st, "imported-a", "a.tsv", &s, &sum, &err) == 0);
	CHECK(store_telemetry_import(&st, "imported-b", "b.tsv", &s, &sum, &err) == 0);
	CHECK(store_telemetry_read(&st, &all, &got, &err) == 0);
	CHECK_EQ_INT(got.n, 10);
	telem_samples_free(&got);
	CHECK(store_telemetry_read(&st, &only_b, &got, &err) == 0);
	CHECK_EQ_INT(got.n, 5);
	CHECK_EQ_STR(got.v[0].run_id, "imported-b");
	CHECK_EQ_INT(got.v[0].predicted, 5200);
	CHECK_EQ_INT(got.v[0].actual_max_tokens, -1);
	CHECK_EQ_INT(got.v[0].estimator_version, 0);
	CHECK(got.v[3].truncated && !got.v[3].success);
	CHECK_EQ_STR(got.v[3].stop_reason, "max_tokens");
	telem_samples_free(&got);
	telem_samples_free(&s);
	store_close(&st);
}

/* Count exported rows and keep the fourth. */
static int export_row(json_t *obj, void *arg)
{
	json_t **keep = arg;

	if (json_integer_value(json_object_get(obj, "event_id")) == 4)
		*keep = json_incref(obj);
	return 0;
}

TEST(calib_store_export_gives_every_column_with_flags_as_booleans)
{
	struct store_telem_import sum;
	struct store_telem_filter all = { 0 };
	struct telem_samples s;
	struct store_err err;
	struct store st;
	json_t *row = NULL;

	test_store_new(&st, "t.db");
	parse(&s);
	CHECK(store_telemetry_import(&st, "imported-t", "t.tsv", &s, &sum, &err) == 0);
	CHECK(store_telemetry_export(&st, &all, export_row, &row, &err) == 0);
	CHECK(row != NULL);
	CHECK(json_is_true(json_object_get(row, "truncated")));
	CHECK(json_is_false(json_object_get(row, "success")));
	CHECK(json_is_null(json_object_get(row, "estimator_version")));
	CHECK_EQ_STR(json_string_value(json_object_get(row, "category")), "docs");
	CHECK(json_is_real(json_object_get(row, "smape_percent")));
	CHECK(json_object_get(row, "deliverables_json") != NULL);
	json_decref(row);
	telem_samples_free(&s);
	store_close(&st);
}

TEST(calib_store_coefficient_sets_version_activate_and_roll_back)
{
	struct store_coef_set set, *list;
	struct store_err err;
	struct store st;
	int64_t v, parent, from, now;
	size_t n;
	bool found;

	test_store_new(&st, "t.db");
	CHECK(store_coef_active(&st, &set, &found, &err) == 0 && !found);
	CHECK(store_coef_rollback(&st, &from, &now, &err) == STORE_EINVAL);
	CHECK(strstr(err.text, "built-in defaults (version 1)") != NULL);
	CHECK(store_coef_activate_new(&st, "[[\"implementation\",\"low\",370]]", "{\"model\":1}",
	          "{\"n\":1}", &v, &parent, &err) == 0);
	CHECK(v == 2 && parent == 1);
	CHECK(store_coef_activate_new(&st, "[]", NULL, "{}", &v, &parent, &err) == 0);
	CHECK(v == 3 && parent == 2);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT count(*) FROM estimator_coefficients WHERE active = 1"), 1);
	CHECK(store_coef_active(&st, &set, &found, &err) == 0 && found && set.version == 3);
	store_coef_set_free(&set);
	CHECK(store_coef_rollback(&st, &from, &now, &err) == 0);
	CHECK(from == 3 && now == 2);
	CHECK(store_coef_active(&st, &set, &found, &err) == 0 && found && set.version == 2);
	CHECK_EQ_STR(set.overhead_json, "[[\"implementation\",\"low\",370]]");
	CHECK_EQ_STR(set.provenance_json, "{\"n\":1}");
	CHECK_EQ_STR(set.model_json, "{\"model\":1}");
	store_coef_set_free(&set);
	CHECK(store_coef_rollback(&st, &from, &now, &err) == 0);
	CHECK(from == 2 && now == 1);
	CHECK(store_coef_active(&st, &set, &found, &err) == 0 && !found);
	/* A new set after rolling back to the defaults: next version, parent 1. */
	CHECK(store_coef_activate_new(&st, "[]", NULL, "{}", &v, &parent, &err) == 0);
	CHECK(v == 4 && parent == 1);
	CHECK(store_coef_list(&st, &list, &n, &err) == 0);
	CHECK_EQ_INT(n, 3);
	CHECK(list[0].version == 4 && list[0].active && !list[1].active);
	CHECK(store_coef_get(&st, 3, &set, &found, &err) == 0 && found && set.parent_version == 2);
	CHECK(set.model_json == NULL);
	store_coef_set_free(&set);
	store_coef_list_free(list, n);
	store_close(&st);
}

TEST(calib_store_rollback_refuses_a_missing_parent_and_changes_nothing)
{
	struct store_err err;
	struct store st;
	int64_t v, parent, from, now;

	test_store_new(&st, "t.db");
	CHECK(store_coef_activate_new(&st, "[]", NULL, "{}", &v, &parent, &err) == 0);
	CHECK(store_coef_activate_new(&st, "[]", NULL, "{}", &v, &parent, &err) == 0);
	CHECK(store_exec(
	          st.db, "DELETE FROM estimator_coefficients WHERE version = 2", "x", &err) == 0);
	CHECK(store_coef_rollback(&st, &from, &now, &err) == STORE_EINVAL);
	CHECK(strstr(err.text, "names parent 2, which is not in the database") != NULL);
	CHECK_EQ_INT(
	    test_query(&st, "SELECT version FROM estimator_coefficients WHERE active = 1"), 3);
	store_close(&st);
}

/* Read a whole temporary file. */
static char *slurp(FILE *f)
{
	long n;
	char *buf;

	fflush(f);
	n = ftell(f);
	rewind(f);
	buf = xcalloc((size_t)n + 1, 1);
	CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
	return buf;
}

TEST(calib_svg_plot_has_axes_legend_markers_and_escapes_names)
{
	struct telem_sample s[] = {
		{ .category = (char *)"R&D <x>",
		    .complexity = (char *)"low",
		    .predicted = 5200,
		    .actual = 1218 },
		{ .category = (char *)"tests",
		    .complexity = (char *)"low",
		    .predicted = 4420,
		    .actual = 1448 },
	};
	const struct telem_sample *p[] = { &s[0], &s[1] };
	int64_t after[] = { 2600, 4420 };
	FILE *f = tmpfile();
	char *svg;

	CHECK(calib_svg_write(f, p, after, 2, NULL, "Plot & title") == 0);
	svg = slurp(f);
	CHECK(strncmp(svg, "<?xml", 5) == 0);
	CHECK(strstr(svg, "</svg>\n") != NULL);
	CHECK(strstr(svg, "Plot &amp; title") != NULL);
	CHECK(strstr(svg, "R&amp;D &lt;x&gt; (1)") != NULL);
	CHECK(strstr(svg, "stroke-dasharray") != NULL); /* y = x */
	CHECK(strstr(svg, "predicted output tokens (log scale)") != NULL);
	CHECK(strstr(svg, ">1k</text>") != NULL && strstr(svg, ">5k</text>") != NULL);
	CHECK(strstr(svg, "proposed 2600 (recorded 5200)") != NULL);
	CHECK(strstr(svg, "moved by the proposal") != NULL);
	CHECK(strstr(svg, "R&D") == NULL);
	free(svg);
	fclose(f);
}

TEST(calib_markdown_json_and_plot_carry_the_fit_and_its_evaluation)
{
	struct telem_sample s[24];
	const struct telem_sample *p[24];
	struct calib_opts o = { 5, 0.0 };
	struct calib_eval_opts eo = { 0.95, 5, 3 };
	struct calib_fitset fs;
	struct calib_eval e;
	struct est_coefs cur;
	struct est_fit fit;
	struct calib_meta meta = { .generated_at = "2026-01-01T00:00:00Z",
		.db_url = "sqlite:///x",
		.runs = "all runs",
		.n_read = 24,
		.current = &cur,
		.fs = &fs,
		.proposal = &fit,
		.eval = &e,
		.eo = &eo,
		.svg_name = "plot.svg" };
	struct calib_result r;
	FILE *f = tmpfile(), *g = tmpfile();
	json_t *j, *ev;
	char err[128], *md, *svg;

	for (int i = 0; i < 24; i++) {
		s[i] = (struct telem_sample){ .run_id = (char *)"r",
			.category = (char *)(i % 2 ? "implementation" : "tests"),
			.complexity = (char *)"low",
			.deliverable_count = 1 + i % 3,
			.predicted = 3424,
			.actual = 800 + 50 * i,
			.selected_budget = 8192,
			.actual_max_tokens = -1,
			.success = true };
		p[i] = &s[i];
	}
	est_coefs_default(&cur);
	calib_fitset_select(p, 24, &fs);
	CHECK(calib_fit(fs.clean, fs.n_clean, eo.coverage, &fit, err, sizeof err) == 0);
	CHECK(calib_evaluate(&fs, &cur, &fit, &eo, &e, err, sizeof err) == 0);
	calib_compute(fs.clean, fs.n_clean, &o, &r);
	calib_md_write(f, &r, &meta);
	md = slurp(f);
	CHECK(strstr(md, "## Proposal: fitted model") != NULL);
	CHECK(strstr(md, "| category implementation |") != NULL);
	CHECK(strstr(md, "## Held-out evaluation") != NULL);
	CHECK(strstr(md, "| leave-one-run-out | – | not run: needs 3 runs") != NULL);
	CHECK(strstr(md, "![calibration plot](plot.svg)") != NULL);
	j = calib_json_proposal(&r, &meta);
	ev = json_object_get(json_object_get(j, "evaluation"), "proposed");
	CHECK_EQ_INT(json_object_size(json_object_get(ev, "kfold")), 6);
	CHECK(json_is_real(json_object_get(json_object_get(ev, "kfold"), "waste_p90")));
	CHECK(json_is_null(json_object_get(ev, "lorun")));
	CHECK_NEAR(json_real_value(json_object_get(json_object_get(j, "model"), "factor")),
	    fit.factor, 1e-12);
	json_decref(j);
	CHECK(calib_svg_write(g, fs.clean, e.loo_pred, fs.n_clean, &e, "t") == 0);
	svg = slurp(g);
	CHECK(strstr(svg, "truncation against waste, by budget factor") != NULL);
	CHECK(strstr(svg, "<polyline") != NULL);
	CHECK(strstr(svg, "active set (◆ chosen") != NULL);
	CHECK(strstr(svg, "proposal (◆ chosen") != NULL);
	free(svg);
	calib_eval_free(&e);
	calib_result_free(&r);
	calib_fitset_free(&fs);
	free(md);
	fclose(f);
	fclose(g);
}
