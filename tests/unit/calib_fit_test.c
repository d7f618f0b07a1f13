/* The fitted model (docs/calibration.md): the ridge solver, the fit, the conformal
 * quantile, the budget, the metrics and the held-out evaluation, against hand-computed
 * values. */
#include "common/calib/calib.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <math.h>

/* A clean sample; strings are literals that nothing frees. */
static struct telem_sample mk(
    const char *run, const char *cat, const char *cplx, int64_t d, int64_t actual)
{
	return (struct telem_sample){ .run_id = (char *)run,
		.phase_id = (char *)"p",
		.category = (char *)cat,
		.complexity = (char *)cplx,
		.deliverable_count = d,
		.predicted = 1000,
		.actual = actual,
		.selected_budget = 8192,
		.actual_max_tokens = -1,
		.success = true,
		.model = (char *)"m" };
}

TEST(est_ridge_solve_matches_a_hand_solved_system)
{
	/* (A + diag(0, 1)) w = b: [[2, 1], [1, 3]] w = [3, 3] gives w = (1.2, 0.6). */
	double a[] = { 2, 1, 1, 2 }, b[] = { 3, 3 }, w[2] = { 0, 0 }, z[] = { 0, 0, 0, 0 };

	CHECK(est_ridge_solve(a, b, 2, 1.0, w) == 0);
	CHECK_NEAR(w[0], 1.2, 1e-12);
	CHECK_NEAR(w[1], 0.6, 1e-12);
	w[0] = 7;
	CHECK(est_ridge_solve(z, b, 2, 0.0, w) == -1);
	CHECK_NEAR(w[0], 7, 0); /* unchanged */
}

TEST(est_fit_train_matches_the_hand_solved_ridge_weights)
{
	/* Categories a (100, 400) and b (1000, 1000), all medium, no deliverables. The
	 * intercept takes the mean log, medium's column equals the intercept's so its
	 * penalised weight is 0, and w_a = -w_b = ln(0.2) / 3 from (2 + λ) w_a + 2c = Σ_a y. */
	struct est_fit_obs obs[] = { { "a", "medium", 0, 100 }, { "A ", "medium", 0, 400 },
		{ "b", "medium", 0, 1000 }, { "b", "medium", 0, 1000 } };
	struct est_fit f;
	char err[128];

	CHECK(est_fit_train(obs, 4, 1.0, 0.95, &f, err, sizeof err) == 0);
	CHECK(f.active);
	CHECK_EQ_INT(f.n_cats, 2);
	CHECK_EQ_STR(f.cats[0], "a");
	CHECK_EQ_STR(f.cats[1], "b");
	CHECK_NEAR(f.intercept, (log(200.0) + log(1000.0)) / 2, 1e-9);
	CHECK_NEAR(f.w_cat[0], log(0.2) / 3, 1e-9);
	CHECK_NEAR(f.w_cat[1], -log(0.2) / 3, 1e-9);
	CHECK_NEAR(f.w_cplx[EST_MEDIUM], 0.0, 1e-9);
	CHECK_NEAR(f.w_cplx[EST_LOW], 0.0, 1e-12);
	CHECK_NEAR(f.w_deliverables, 0.0, 1e-12);
	/* exp(6.103036 - 0.536479) = 261.5 */
	CHECK_EQ_INT(est_fit_estimate(&f, "a", "medium", 0), 262);
	/* An unseen category adds nothing: exp(6.103036) = 447.2. */
	CHECK_EQ_INT(est_fit_estimate(&f, "docs", "low", 0), 447);
	CHECK(est_fit_train(obs, 1, 1.0, 0.95, &f, err, sizeof err) == -1);
	obs[2].actual = 0;
	CHECK(est_fit_train(obs, 4, 1.0, 0.95, &f, err, sizeof err) == -1);
	CHECK(strstr(err, "sample 2") != NULL);
}

TEST(est_fit_train_factor_is_the_conformal_quantile_of_refitted_residuals)
{
	struct est_fit_obs obs[6];
	struct est_fit f, part;
	double r[6];
	char err[128];
	int64_t act[] = { 900, 1100, 1000, 1500, 700, 1300 };

	for (int i = 0; i < 6; i++)
		obs[i] = (struct est_fit_obs){ "x", "low", i % 3, act[i] };
	CHECK(est_fit_train(obs, 6, 1.0, 0.8, &f, err, sizeof err) == 0);
	/* Refit without each sample by hand, then take the ⌈7 × 0.8⌉ = 6th residual. */
	for (int i = 0; i < 6; i++) {
		struct est_fit_obs rest[5];
		int k = 0;

		for (int j = 0; j < 6; j++)
			if (j != i)
				rest[k++] = obs[j];
		CHECK(est_fit_train(rest, 5, 1.0, 0.8, &part, err, sizeof err) == 0);
		r[i] = log((double)act[i]) - est_fit_log_predict(&part, "x", "low", i % 3);
	}
	CHECK_NEAR(f.factor, est_conformal_factor(r, 6, 0.8), 1e-9);
	for (int i = 1; i < 6; i++)
		r[0] = fmax(r[0], r[i]);
	CHECK_NEAR(f.factor, exp(r[0]), 1e-9); /* the largest */
}

TEST(est_conformal_factor_takes_the_ceil_n_plus_1_tau_th_residual)
{
	double r[] = { 0.3, -0.1, 0.2, 0.5, 0.0 }, q[19];

	CHECK_NEAR(est_conformal_factor(r, 5, 0.5), exp(0.2), 1e-12);  /* ⌈3⌉ = 3rd */
	CHECK_NEAR(est_conformal_factor(r, 5, 0.8), exp(0.5), 1e-12);  /* ⌈4.8⌉ = 5th */
	CHECK_NEAR(est_conformal_factor(r, 5, 0.95), exp(0.5), 1e-12); /* 6 clamped to 5 */
	CHECK_NEAR(est_conformal_factor(r, 5, 0.1), exp(-0.1), 1e-12); /* ⌈0.6⌉ = 1st */
	for (int i = 0; i < 19; i++)
		q[i] = (19 - i) / 100.0;
	/* (19 + 1) × 0.95 = 19 exactly: the 19th, not the 20th clamped. */
	CHECK_NEAR(est_conformal_factor(q, 19, 0.95), exp(0.19), 1e-12);
	CHECK_NEAR(est_conformal_factor(q, 19, 0.9), exp(0.18), 1e-12);
	CHECK_NEAR(est_conformal_factor(NULL, 0, 0.95), 1.0, 0);
}

TEST(est_fitted_set_budget_has_no_floors_and_keeps_the_retry)
{
	struct est_coefs c;
	struct est_output o;
	char *d[] = { "utils/string_helper.py" };
	struct est_input in = { .deliverables = d,
		.n_deliverables = 1,
		.category = "implementation",
		.complexity = "low" };
	int b;

	est_coefs_default(&c);
	c.fit = (struct est_fit){ .active = true, .factor = 1.5, .intercept = log(1000.0) };
	est_estimate(&c, &in, ".", &o);
	CHECK_EQ_INT(o.model, EST_MODEL_FITTED);
	CHECK_EQ_INT(o.estimate, 1000);
	b = est_select_budget(&c, &o);
	CHECK_EQ_INT(b, 1500); /* the overhead model's floor would give 8192 */
	CHECK_EQ_INT(est_max_tokens(&c, &o, b, 0, 0), 1500); /* no 16384 full-file floor */
	CHECK_EQ_INT(est_max_tokens(&c, &o, b, 0, 1200), 1200);
	CHECK_EQ_INT(est_escalate(&c, 1500, 0), 1875);
	c.fit.factor = 2.5;
	CHECK_EQ_INT(est_fit_budget(&c.fit, 1001, 64000), 2503); /* ⌈2502.5⌉ */
	CHECK_EQ_INT(est_fit_budget(&c.fit, 1001, 2000), 2000);
	c.fit.factor = 2.0;
	CHECK_EQ_INT(est_fit_budget(&c.fit, 1000, 0), 2000); /* exact: no extra token */
}

TEST(est_fit_json_round_trips_and_names_what_is_wrong)
{
	struct est_fit_obs obs[] = { { "docs", "low", 3, 5000 }, { "tests", "medium", 1, 2000 },
		{ "implementation", "high", 2, 3000 } };
	struct est_fit f, g;
	struct est_coefs c;
	char err[256], *text;

	CHECK(est_fit_train(obs, 3, 1.0, 0.9, &f, err, sizeof err) == 0);
	text = est_fit_to_json(&f);
	CHECK(est_fit_from_json(text, &g, err, sizeof err) == 0);
	CHECK(g.active && g.n_cats == 3 && g.n_samples == 3);
	for (size_t k = 0; k < 3; k++) {
		CHECK_EQ_STR(g.cats[k], f.cats[k]);
		CHECK_NEAR(g.w_cat[k], f.w_cat[k], 0);
	}
	CHECK_NEAR(g.factor, f.factor, 0);
	CHECK_NEAR(g.intercept, f.intercept, 0);
	CHECK_NEAR(g.w_deliverables, f.w_deliverables, 0);
	CHECK(calib_coefs_from_json("[]", text, 4, &c, err, sizeof err) == 0);
	CHECK(c.fit.active && c.version == 4);
	free(text);
	CHECK(est_fit_from_json("[1]", &g, err, sizeof err) == -1 && !g.active);
	CHECK(est_fit_from_json("{\"model\":\"other\"}", &g, err, sizeof err) == -1);
	CHECK(strstr(err, "ridge_log") != NULL);
	CHECK(est_fit_from_json("{\"model\":\"ridge_log\",\"samples\":3,\"complexity\":{},"
	                        "\"lambda\":1,\"coverage\":0.9}",
	          &g, err, sizeof err) == -1);
	CHECK(strstr(err, "\"factor\"") != NULL);
	CHECK(est_fit_from_json("{\"model\":\"ridge_log\",\"samples\":3,\"lambda\":1,"
	                        "\"coverage\":0.9,\"factor\":2,\"intercept\":7,\"deliverables\":0,"
	                        "\"complexity\":{\"low\":0,\"medium\":0,\"high\":0},"
	                        "\"categories\":{\"Docs\":1}}",
	          &g, err, sizeof err) == -1);
	CHECK(strstr(err, "Docs") != NULL);
	CHECK(calib_coefs_from_json("{}", NULL, 3, &c, err, sizeof err) == -1);
	CHECK(strstr(err, "not a JSON array") != NULL);
	CHECK(calib_coefs_from_json("[[\"a\",\"low\",0]]", NULL, 3, &c, err, sizeof err) == -1);
	CHECK(!c.fit.active && c.version == 1);
}

TEST(calib_score_counts_truncations_waste_and_smape_by_hand)
{
	struct telem_sample s[4] = { mk("r", "x", "low", 1, 1000), mk("r", "x", "low", 1, 500),
		mk("r", "x", "low", 1, 3000), mk("r", "x", "low", 1, 3000) };
	const struct telem_sample *p[4] = { &s[0], &s[1], &s[2], &s[3] };
	int64_t est[4] = { 800, 500, 900, 900 }, budget[4] = { 2000, 400, 3000, 4000 };
	struct calib_score sc;

	s[2].truncated = s[3].truncated = true;
	s[2].success = s[3].success = false;
	calib_score_compute(p, est, budget, 4, &sc);
	/* SMAPE 200/900 = 22.2 % and 0 %; truncations: 500 > 400, and 3000 <= 3000 for the
	 * recorded truncated call; waste 2.0 and 0.8. */
	CHECK_EQ_INT(sc.truncations, 2);
	CHECK_NEAR(sc.truncation_rate, 0.5, 1e-12);
	CHECK_NEAR(sc.smape_mean, 100.0 * 200 / 900 / 2, 1e-9);
	CHECK_NEAR(sc.smape_median, 100.0 * 200 / 900 / 2, 1e-9);
	CHECK_NEAR(sc.waste_p50, 1.4, 1e-12);
	CHECK_NEAR(sc.waste_p90, 2.0, 1e-12); /* sorted[int(0.9 × 2)] */
}

TEST(calib_fitset_drops_duplicates_and_earlier_calls_of_an_attempt)
{
	struct telem_sample s[6] = { mk("r", "a", "low", 1, 700), mk("r", "a", "low", 1, 700),
		mk("r", "a", "low", 1, 800), mk("r", "a", "low", 1, 900),
		mk("r", "a", "low", 1, 60), mk("r", "a", "low", 1, 990) };
	const struct telem_sample *p[6];
	struct calib_fitset fs;

	s[1].timestamp = (char *)"later"; /* the time does not make it another call */
	s[2].attempt_id = s[3].attempt_id = 5;
	s[4].truncated = true;
	s[5].success = false;
	for (int i = 0; i < 6; i++)
		p[i] = &s[i];
	calib_fitset_select(p, 6, &fs);
	CHECK_EQ_INT(fs.n_clean, 2);
	CHECK(fs.clean[0] == &s[0] && fs.clean[1] == &s[3]);
	CHECK_EQ_INT(fs.n_duplicates, 1);
	CHECK_EQ_INT(fs.n_repeats, 1);
	CHECK_EQ_INT(fs.n_truncated, 1);
	CHECK(fs.truncated[0] == &s[4]);
	calib_fitset_free(&fs);
}

TEST(calib_fitset_excludes_counts_no_call_records)
{
	struct telem_sample s[5] = { mk("r", "a", "low", 1, 700),
		mk("r", "a", "low", 1, 5000000000), mk("r", "a", "low", 1, 800),
		mk("r", "a", "low", 1, 900), mk("r", "a", "low", 1, 1000) };
	const struct telem_sample *p[5];
	struct calib_fitset fs;
	int64_t v = 0;

	s[2].predicted = -1;
	s[3].truncated = true;
	s[3].actual_max_tokens = INT64_MAX;
	s[4].actual = 1000000000; /* the most a call records */
	for (int i = 0; i < 5; i++)
		p[i] = &s[i];
	calib_fitset_select(p, 5, &fs);
	CHECK_EQ_INT(fs.n_clean, 2);
	CHECK(fs.clean[0] == &s[0] && fs.clean[1] == &s[4]);
	CHECK_EQ_INT(fs.n_truncated, 0);
	CHECK_EQ_INT(fs.n_implausible, 3);
	CHECK(fs.implausible[0] == &s[1] && fs.implausible[2] == &s[3]);
	CHECK(strcmp(telem_implausible_count(&s[1], &v), "actual_output_tokens") == 0);
	CHECK(v == 5000000000);
	CHECK(strcmp(telem_implausible_count(&s[2], &v), "predicted_output_tokens") == 0);
	CHECK(telem_implausible_count(&s[0], &v) == NULL);
	calib_fitset_free(&fs);
}

/* Thirty samples in three runs of ten. */
static void three_runs(struct telem_sample *s, const struct telem_sample **p)
{
	static const char *const runs[] = { "r1", "r2", "r3" };
	static const char *const cats[] = { "implementation", "tests", "docs" };
	static const char *const cplx[] = { "low", "medium", "high" };

	for (int i = 0; i < 30; i++) {
		s[i] = mk(runs[i / 10], cats[i % 3], cplx[(i / 3) % 3], 1 + i % 4,
		    800 + 97 * ((i * 7) % 13) + 400 * (i % 4));
		p[i] = &s[i];
	}
}

TEST(calib_evaluate_holds_each_sample_out_and_scores_both_sets)
{
	struct telem_sample s[31];
	const struct telem_sample *p[31];
	struct calib_eval_opts o = { 0.9, 5, 2 };
	struct calib_fitset fs;
	struct calib_eval e;
	struct est_coefs cur;
	struct est_fit all;
	char err[128];

	three_runs(s, p);
	s[30] = mk("r1", "tests", "low", 2, 20000);
	s[30].truncated = true;
	p[30] = &s[30];
	est_coefs_default(&cur);
	calib_fitset_select(p, 31, &fs);
	CHECK(calib_fit(fs.clean, fs.n_clean, o.coverage, &all, err, sizeof err) == 0);
	CHECK(calib_evaluate(&fs, &cur, &all, &o, &e, err, sizeof err) == 0);
	/* Leave-one-out: sample 7's estimate comes from a fit on the other 29. */
	{
		struct est_fit_obs obs[29];
		struct est_fit f;
		int k = 0;

		for (int i = 0; i < 30; i++)
			if (i != 7)
				obs[k++] = (struct est_fit_obs){ s[i].category, s[i].complexity,
					s[i].deliverable_count, s[i].actual };
		CHECK(est_fit_train(obs, 29, 1.0, 0.9, &f, err, sizeof err) == 0);
		CHECK_EQ_INT(e.loo_pred[7], est_fit_estimate(&f, "tests", "high", 4));
	}
	for (int m = 0; m < CALIB_METHOD_COUNT; m++) {
		CHECK(e.proposed[m].available && e.current[m].available);
		CHECK_EQ_INT(e.proposed[m].n, 31);
	}
	CHECK_EQ_INT(e.proposed[CALIB_KFOLD].predictions, 62); /* 31 × 2 repeats */
	/* The current set's max_tokens carry the 16384 full-file floor: no clean sample (at
	 * most 6000) is truncated, but the recorded truncated call at 20000 is. */
	CHECK_EQ_INT(e.current[CALIB_LOO].truncations, 1);
	CHECK_EQ_INT(e.n_runs_eligible, 3);
	CHECK_NEAR(e.chosen_proposed.factor, all.factor, 0);
	calib_eval_free(&e);
	/* One run only: no leave-one-run-out. */
	for (int i = 0; i < 30; i++)
		s[i].run_id = (char *)"r1";
	CHECK(calib_evaluate(&fs, &cur, &all, &o, &e, err, sizeof err) == 0);
	CHECK(!e.proposed[CALIB_LORUN].available);
	CHECK(strstr(e.why[CALIB_LORUN], "needs 3 runs") != NULL);
	calib_eval_free(&e);
	CHECK(calib_fit(fs.clean, 19, o.coverage, &all, err, sizeof err) == -1);
	CHECK(strstr(err, "at least 20") != NULL);
	calib_fitset_free(&fs);
}

TEST(calib_evaluate_finds_the_runs_of_ten_among_thousands)
{
	/* 6,000 events: six runs of ten clean samples and ten truncated events each, a run of
	 * nine, 5,811 runs of one, and 60 truncated events of runs without a clean sample.
	 * Equal run ids are separate strings, and each run's samples lie far apart. */
	enum {
		N = 6000
	};
	struct telem_sample *s = xcalloc(N, sizeof *s);
	const struct telem_sample **p = xcalloc(N, sizeof *p);
	char(*id)[24] = xcalloc(N, sizeof *id);
	struct calib_eval_opts o = { 0.9, 2, 1 };
	struct calib_fitset fs;
	struct calib_eval e;
	struct est_coefs cur;
	struct est_fit all;
	char err[128];

	for (int i = 0; i < N; i++) {
		if (i % 100 == 0 || i % 100 == 50)
			snprintf(id[i], sizeof id[i], "big-%d", i / 100 % 6);
		else if (i % 100 == 1 && i < 900)
			snprintf(id[i], sizeof id[i], "nine");
		else if (i % 100 == 51)
			snprintf(id[i], sizeof id[i], "none-%d", i);
		else
			snprintf(id[i], sizeof id[i], "one-%d", i);
		s[i] = mk(
		    id[i], i % 2 ? "tests" : "docs", "medium", 1 + i % 4, 800 + (i * 37) % 5000);
		s[i].truncated = i % 100 == 50 || i % 100 == 51;
		p[i] = &s[i];
	}
	est_coefs_default(&cur);
	calib_fitset_select(p, N, &fs);
	CHECK_EQ_INT(fs.n_clean, N - 120);
	CHECK(calib_fit(fs.clean, fs.n_clean, o.coverage, &all, err, sizeof err) == 0);
	CHECK(calib_evaluate(&fs, &cur, &all, &o, &e, err, sizeof err) == 0);
	CHECK_EQ_INT(e.n_runs_eligible, 6);
	CHECK(e.proposed[CALIB_LORUN].available);
	CHECK_EQ_INT(e.proposed[CALIB_LORUN].n, 6 * 10 + 6 * 10); /* clean and truncated */
	CHECK_EQ_INT(e.proposed[CALIB_LORUN].predictions, 120);
	calib_eval_free(&e);
	calib_fitset_free(&fs);
	free(id);
	free(p);
	free(s);
}
