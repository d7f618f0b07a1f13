/* Each fit without one observation from the fit on all (est_loo_without) against the
 * fit made on the other observations (est_fit_train): weights and factor, on sets with a
 * category of one observation, residuals so close that the factor's rank moves beyond
 * the window first looked in, and more categories than get a column. */
#include "common/estimate/estimator.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <math.h>
#include <stdio.h>

/* A fixed-seed generator of the sets. */
static uint64_t loo_rand(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

/* Compare every fit without one observation with a refit; returns how many the kept fit
 * gave (the others it declined, and the refit is what the caller uses). */
static size_t loo_compare(const struct est_fit_obs *obs, size_t n, double coverage)
{
	struct est_fit_obs *rest = xcalloc(n, sizeof *rest);
	struct est_loo *all;
	struct est_fit f, g;
	char err[128];
	size_t given = 0;

	all = est_loo_new(obs, n, 1.0, coverage, err, sizeof err);
	CHECK(all != NULL);
	CHECK(est_fit_train(obs, n, 1.0, coverage, &f, err, sizeof err) == 0);
	CHECK_NEAR(est_loo_fit(all)->factor, f.factor, 1e-12);
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		for (size_t j = 0; j < n; j++)
			if (j != i)
				rest[k++] = obs[j];
		CHECK(est_fit_train(rest, k, 1.0, coverage, &g, err, sizeof err) == 0);
		if (est_loo_without(all, i, &f) != 0)
			continue;
		given++;
		CHECK(f.n_samples == n - 1);
		CHECK_NEAR(f.factor, g.factor, 1e-9 * g.factor);
		CHECK_NEAR(f.intercept, g.intercept, 1e-9);
		CHECK_NEAR(f.w_deliverables, g.w_deliverables, 1e-9);
		for (size_t c = 0; c < EST_CPLX_COUNT; c++)
			CHECK_NEAR(f.w_cplx[c], g.w_cplx[c], 1e-9);
		for (size_t j = 0; j < n; j++)
			CHECK_NEAR(est_fit_log_predict(
			               &f, obs[j].category, obs[j].complexity, obs[j].deliverables),
			    est_fit_log_predict(
			        &g, obs[j].category, obs[j].complexity, obs[j].deliverables),
			    1e-9);
	}
	est_loo_free(all);
	free(rest);
	return given;
}

static const char *const loo_cplx[] = { "low", "medium", "high" };

TEST(est_loo_without_matches_a_refit_with_a_category_of_one)
{
	static const char *const cats[] = { "docs", "tests", "impl", "config", "alone" };
	struct est_fit_obs obs[240];
	uint64_t seed = 7;

	for (size_t i = 0; i < 240; i++)
		obs[i] = (struct est_fit_obs){ cats[i == 17 ? 4 : loo_rand(&seed) % 4],
			loo_cplx[loo_rand(&seed) % 3], (int64_t)(loo_rand(&seed) % 9),
			(int64_t)(200 + loo_rand(&seed) % 5000) };
	CHECK(loo_compare(obs, 240, 0.95) == 240);
	CHECK(loo_compare(obs, 240, 0.5) == 240);
}

TEST(est_loo_without_matches_a_refit_when_the_rank_moves_far)
{
	/* Actuals on the model to within a part in 10⁴, and one far off: without it the
	 * intercept moves more than the residuals spread, so every residual changes rank. */
	struct est_fit_obs obs[300];
	uint64_t seed = 11;

	for (size_t i = 0; i < 300; i++) {
		double noise = 1.0 + (double)(loo_rand(&seed) % 100) * 1e-6;

		obs[i] = (struct est_fit_obs){ "impl", loo_cplx[i % 3], (int64_t)(i % 5),
			(int64_t)llround(1e5 * noise * (1.0 + (double)(i % 5))) };
	}
	obs[123].actual = 60;
	CHECK(loo_compare(obs, 300, 0.95) == 300);
}

TEST(est_loo_without_declines_when_another_category_would_take_a_column)
{
	/* 70 categories: 60 of 4 observations, 10 of 3; the 64 columns go to the 60 and the
	 * first four of the ten by name, and one observation fewer of those four hands a
	 * column to the fifth. */
	static char names[70][8];
	struct est_fit_obs obs[280];
	size_t n = 0, given;
	uint64_t seed = 3;

	for (int c = 0; c < 70; c++) {
		snprintf(names[c], sizeof names[c], "c%02d", c);
		for (int k = 0; k < (c < 60 ? 4 : 3); k++)
			obs[n++] = (struct est_fit_obs){ names[c], loo_cplx[loo_rand(&seed) % 3],
				(int64_t)(loo_rand(&seed) % 4),
				(int64_t)(300 + loo_rand(&seed) % 3000) };
	}
	given = loo_compare(obs, n, 0.9);
	CHECK(given == n - 4 * 3);
}

TEST(est_loo_new_refuses_what_est_fit_train_refuses)
{
	struct est_fit_obs obs[2] = { { "x", "low", 1, 100 }, { "x", "low", 2, 0 } };
	char err[128];

	CHECK(est_loo_new(obs, 1, 1.0, 0.9, err, sizeof err) == NULL);
	CHECK(est_loo_new(obs, 2, 1.0, 0.9, err, sizeof err) == NULL);
	CHECK(strstr(err, "sample 1") != NULL);
}

TEST(est_loo_without_matches_a_refit_and_gathers_little_when_residuals_tie)
{
	/* One design row, actuals of a few values only: the residuals tie in blocks wider
	 * than the first window, whose bounds are then equal, and the row's residuals move
	 * off them once one observation is taken out. */
	enum {
		N = 300,
		BIG = 20000
	};
	struct est_fit_obs *obs = xcalloc(BIG, sizeof *obs);
	struct est_loo *all;
	struct est_fit f;
	char err[128];
	uint64_t seed = 5;

	for (size_t i = 0; i < BIG; i++)
		obs[i] = (struct est_fit_obs){ "impl", "low", 1,
			(int64_t)(100 + 10 * (loo_rand(&seed) % 4)) };
	CHECK(loo_compare(obs, N, 0.95) == N);
	/* Equal residuals gathered as one with a count, in a window a few times wider at
	 * most: not all BIG, nor a block of thousands, for each observation. */
	all = est_loo_new(obs, BIG, 1.0, 0.95, err, sizeof err);
	CHECK(all != NULL);
	for (size_t i = 0; i < BIG; i++)
		CHECK(est_loo_without(all, i, &f) == 0);
	CHECK(est_loo_gathered(all) < (size_t)BIG * 100);
	est_loo_free(all);
	free(obs);
}
