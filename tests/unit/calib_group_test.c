/* Calibration groups and re-expression (docs/telemetry.md) against hand-computed values. */
#include "common/calib/calib.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A clean sample of (category, complexity) with the given counts; strings are literals
 * that nothing frees. */
static struct telem_sample mk(const char *cat, const char *cplx, int64_t predicted, int64_t actual)
{
	return (struct telem_sample){ .category = (char *)cat,
		.complexity = (char *)cplx,
		.deliverable_count = 1,
		.predicted = predicted,
		.actual = actual,
		.selected_budget = 8192,
		.actual_max_tokens = -1,
		.success = true };
}

/* Pointers to n samples. */
static const struct telem_sample **ptrs(struct telem_sample *s, size_t n)
{
	const struct telem_sample **p = xcalloc(n + 1, sizeof *p);

	for (size_t i = 0; i < n; i++)
		p[i] = &s[i];
	return p;
}

static const struct calib_opts opts5 = { 5, 0.7 };

TEST(calib_group_figures_match_hand_computation)
{
	/* Ratios actual/predicted: 0.5, 1, 2, 0.25, 4. */
	struct telem_sample s[] = {
		mk("implementation", "low", 1000, 500),
		mk("implementation", "low", 1000, 1000),
		mk("implementation", "low", 1000, 2000),
		mk("implementation", "low", 2000, 500),
		mk("implementation", "low", 500, 2000),
	};
	const struct telem_sample **p = ptrs(s, 5);
	struct calib_result r;
	const struct calib_group *g;
	double mean = (0.5 + 1 + 2 + 0.25 + 4) / 5, var = 0;
	double rs[] = { 0.5, 1, 2, 0.25, 4 };

	for (int i = 0; i < 5; i++)
		var += (rs[i] - mean) * (rs[i] - mean);
	calib_compute(p, 5, &opts5, &r);
	CHECK_EQ_INT(r.n_groups, 1);
	g = &r.groups[0];
	CHECK_EQ_INT(g->n, 5);
	CHECK_NEAR(g->avg_ratio, 1.55, 1e-12);
	CHECK_NEAR(g->median_ratio, 1.0, 1e-12); /* sorted[5 // 2] */
	CHECK_NEAR(g->min_ratio, 0.25, 1e-12);
	CHECK_NEAR(g->max_ratio, 4.0, 1e-12);
	CHECK_NEAR(g->stdev_ratio, sqrt(var / 5), 1e-12);
	CHECK_NEAR(g->confidence, 0.6 * 5.0 / 12.0 + 0.4 / (1 + sqrt(var / 5)), 1e-12);
	CHECK_NEAR(g->avg_actual, 1200, 1e-9);
	CHECK_NEAR(g->avg_estimated, 1100, 1e-9);
	CHECK(g->status == CALIB_LOW_CONFIDENCE); /* 0.25 + 0.4/(1+1.36) < 0.7 */
	calib_result_free(&r);
	free(p);
}

TEST(calib_group_median_ratio_is_the_upper_median_for_even_counts)
{
	struct telem_sample s[] = {
		mk("a", "low", 100, 50),
		mk("a", "low", 100, 100),
		mk("a", "low", 100, 200),
		mk("a", "low", 100, 400),
	};
	const struct telem_sample **p = ptrs(s, 4);
	struct calib_opts o = { 1, 0.0 };
	struct calib_result r;

	calib_compute(p, 4, &o, &r);
	CHECK_NEAR(r.groups[0].median_ratio, 2.0, 1e-12); /* not (1 + 2) / 2 */
	calib_result_free(&r);
	free(p);
}

TEST(calib_group_waste_uses_actual_max_tokens_else_selected_budget)
{
	struct telem_sample s[] = {
		mk("a", "low", 1000, 2048),
		mk("a", "low", 1000, 1024),
		mk("a", "low", 1000, 4096),
	};
	const struct telem_sample **p = ptrs(s, 3);
	struct calib_opts o = { 1, 0.0 };
	struct calib_result r;

	s[0].actual_max_tokens = 16384; /* 16384 / 2048 = 8 */
	s[1].selected_budget = 4096;    /* 4096 / 1024 = 4 */
	s[2].actual_max_tokens = 0;     /* 0 counts as absent: 8192 / 4096 = 2 */
	calib_compute(p, 3, &o, &r);
	CHECK_NEAR(r.groups[0].waste_median, 4.0, 1e-12);
	CHECK_NEAR(r.groups[0].waste_p90, 8.0, 1e-12); /* sorted[int(2.7)] = sorted[2] */
	CHECK_NEAR(r.groups[0].avg_selected_budget, (8192 + 4096 + 8192) / 3.0, 1e-9);
	CHECK_EQ_INT(r.n_with_max_tokens, 1);
	calib_result_free(&r);
	free(p);
}

TEST(calib_group_statuses_follow_min_samples_and_inclusive_threshold)
{
	struct telem_sample s[14];
	const struct telem_sample **p;
	struct calib_opts o = { 12, 1.0 };
	struct calib_result r;

	/* Twelve identical ratios: confidence exactly 1.0, which meets a 1.0 threshold. */
	for (int i = 0; i < 12; i++)
		s[i] = mk("implementation", "medium", 1000, 500);
	s[12] = mk("tests", "low", 1000, 500);
	s[13] = mk("tests", "low", 1000, 500);
	p = ptrs(s, 14);
	calib_compute(p, 14, &o, &r);
	CHECK_EQ_INT(r.n_groups, 2);
	CHECK_EQ_STR(r.groups[0].category, "implementation"); /* most samples first */
	CHECK(r.groups[0].status == CALIB_HIGH_CONFIDENCE);
	CHECK(r.groups[1].status == CALIB_BELOW_MIN);
	CHECK_EQ_INT(r.n_eligible, 1);
	CHECK_EQ_INT(r.n_high_confidence, 1);
	calib_result_free(&r);
	free(p);
}

TEST(calib_reexpress_moves_a_prediction_between_coefficient_sets)
{
	struct est_coef_row old[] = { { "implementation", "low", 1120 } };
	struct telem_sample s = mk("implementation", "low", 4056, 1000); /* (1120+2000)×1.3 */
	struct est_coefs v1, v0;
	bool moved;
	char err[128];

	est_coefs_default(&v1);
	est_coefs_default(&v0);
	CHECK(est_coefs_apply(&v0, old, 1, 7, err, sizeof err) == 0);
	CHECK_EQ_INT(calib_reexpress(&s, &v0, &v1, &moved), 3424);
	CHECK(moved);
	CHECK_EQ_INT(calib_reexpress(&s, NULL, &v1, &moved), 4056);
	CHECK(!moved);
	s.category = (char *)"doc_sot_update";
	CHECK_EQ_INT(calib_reexpress(&s, &v0, &v1, &moved), 4056);
	CHECK(!moved);
}

TEST(calib_reexpress_leaves_fitted_sets_alone)
{
	struct telem_sample s = mk("implementation", "low", 4056, 1000);
	struct est_coefs a, b;
	bool moved;

	est_coefs_default(&a);
	est_coefs_default(&b);
	b.fit.active = true;
	b.fit.factor = 2.0;
	CHECK_EQ_INT(calib_reexpress(&s, &a, &b, &moved), 4056);
	CHECK(!moved);
	CHECK_EQ_INT(calib_reexpress(&s, &b, &a, &moved), 4056);
	CHECK(!moved);
}

TEST(calib_group_interleaved_samples_fall_in_their_own_pair)
{
	/* Three pairs, two of one category, their samples interleaved; and many pairs of
	 * one sample each, which the lookup of a pair must not scan one by one. */
	enum {
		MANY = 3000
	};
	struct telem_sample *s = xcalloc(6 + MANY, sizeof *s);
	char(*names)[16] = xcalloc(MANY, sizeof *names);
	const struct telem_sample **p;
	struct calib_result r;

	s[0] = mk("tests", "low", 100, 50);
	s[1] = mk("tests", "high", 100, 300);
	s[2] = mk("docs", "low", 100, 100);
	s[3] = mk("tests", "low", 100, 200);
	s[4] = mk("tests", "high", 100, 100);
	s[5] = mk("tests", "low", 100, 100);
	for (size_t i = 0; i < MANY; i++) {
		snprintf(names[i], sizeof names[i], "c%zu", i);
		s[6 + i] = mk(names[i], "low", 100, 100);
	}
	p = ptrs(s, 6 + MANY);
	calib_compute(p, 6 + MANY, &opts5, &r);
	CHECK_EQ_INT(r.n_groups, 3 + MANY);
	CHECK(strcmp(r.groups[0].category, "tests") == 0);
	CHECK(strcmp(r.groups[0].complexity, "low") == 0);
	CHECK_EQ_INT(r.groups[0].n, 3);
	CHECK_NEAR(r.groups[0].median_ratio, 1.0, 1e-12); /* 0.5, 2, 1: the middle */
	CHECK(strcmp(r.groups[1].complexity, "high") == 0);
	CHECK_EQ_INT(r.groups[1].n, 2);
	CHECK_NEAR(r.groups[1].median_ratio, 3.0, 1e-12); /* upper median of 3, 1 */
	for (size_t g = 2; g < r.n_groups; g++)
		CHECK_EQ_INT(r.groups[g].n, 1);
	CHECK(strcmp(r.groups[2].category, "c0") == 0); /* ties by name: "c0" < "c1" < "docs" */
	calib_result_free(&r);
	free(p);
	free(names);
	free(s);
}
