/* Leave-one-out evaluation and coefficient sets as stored. */
#include "common/calib/calib.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <stdlib.h>
#include <string.h>

/* Six samples of one group, predicted 1000, actual 500..1000: ratios 0.5 .. 1.0. */
static void six(struct telem_sample *s, const struct telem_sample **p)
{
	for (int i = 0; i < 6; i++) {
		s[i] = (struct telem_sample){ .category = (char *)"implementation",
			.complexity = (char *)"low",
			.deliverable_count = 1,
			.predicted = 1000,
			.actual = 500 + 100 * i,
			.selected_budget = 8192,
			.actual_max_tokens = -1,
			.success = true };
		p[i] = &s[i];
	}
}

TEST(calib_eval_predicts_each_sample_from_the_others_only)
{
	struct telem_sample s[6];
	const struct telem_sample *p[6];
	struct calib_opts o = { 5, 0.0, CALIB_DAMP_NONE };
	struct calib_coef_sets sets = { 0 };
	struct est_coefs cur;
	struct calib_eval e;
	char err[128];
	/* Holding out 0.5, 0.6 or 0.7 leaves an upper median of 0.8; holding out 0.8, 0.9
	 * or 1.0 leaves 0.7. Unknown sets: the whole prediction is scaled. */
	int64_t want[] = { 800, 800, 800, 700, 700, 700 };

	six(s, p);
	est_coefs_default(&cur);
	CHECK(calib_evaluate(p, 6, &o, &cur, &sets, &e, err, sizeof err) == 0);
	for (int i = 0; i < 6; i++)
		CHECK_EQ_INT(e.after_pred[i], want[i]);
	CHECK_EQ_INT(e.n_changed, 6);
	CHECK_EQ_INT(e.n_scaled, 6);
	CHECK_EQ_INT(e.n_folds_empty, 0);
	/* Before: every prediction 1000 ≥ actual; after: 800, 900 and 1000 exceed 700. */
	CHECK_NEAR(e.before.under_pct, 0.0, 1e-12);
	CHECK_NEAR(e.after.under_pct, 50.0, 1e-12);
	CHECK_NEAR(e.before.waste_mean,
	    (2.0 + 1000.0 / 600 + 1000.0 / 700 + 1.25 + 1000.0 / 900 + 1.0) / 6, 1e-9);
	/* After: SMAPE 46.2, 28.6, 13.3, 13.3, 25.0, 35.3; the middle pair is 25.0, 28.6. */
	CHECK_NEAR(e.after.smape_median, (200.0 * 200 / 1600 + 200.0 * 200 / 1400) / 2, 1e-9);
	calib_eval_free(&e);
}

TEST(calib_eval_changes_nothing_when_no_training_part_qualifies)
{
	struct telem_sample s[6];
	const struct telem_sample *p[6];
	struct calib_opts o = { 6, 0.0, CALIB_DAMP_SQRT }; /* each fold has only 5 */
	struct calib_coef_sets sets = { 0 };
	struct est_coefs cur;
	struct calib_eval e;
	char err[128];

	six(s, p);
	est_coefs_default(&cur);
	CHECK(calib_evaluate(p, 6, &o, &cur, &sets, &e, err, sizeof err) == 0);
	CHECK_EQ_INT(e.n_changed, 0);
	CHECK_EQ_INT(e.n_folds_empty, 6);
	CHECK(memcmp(&e.before, &e.after, sizeof e.before) == 0);
	calib_eval_free(&e);
}

TEST(calib_eval_recovers_the_overhead_part_for_samples_of_a_known_set)
{
	struct telem_sample s[6];
	const struct telem_sample *p[6];
	struct calib_opts o = { 5, 0.0, CALIB_DAMP_NONE };
	struct calib_coef_sets sets = { 0 };
	struct est_coefs cur;
	struct calib_eval e;
	char err[128];

	six(s, p);
	est_coefs_default(&cur);
	for (int i = 0; i < 6; i++) {
		s[i].predicted = 3424; /* int((634 + 2000) × 1.3) */
		s[i].actual = 1712 + 342 * i;
		s[i].estimator_version = 1;
	}
	calib_coef_sets_add(&sets, &cur);
	CHECK(calib_evaluate(p, 6, &o, &cur, &sets, &e, err, sizeof err) == 0);
	CHECK_EQ_INT(e.n_overhead, 6);
	/* Holding out the first leaves actuals 2054..3422, upper median 2738: overhead
	 * round(634 × 2738/3424) = 507, prediction int((507 + 2000) × 1.3) = 3259. */
	CHECK_EQ_INT(e.after_pred[0], 3259);
	calib_eval_free(&e);
	calib_coef_sets_free(&sets);
}

TEST(calib_coefs_round_trip_through_overhead_json)
{
	struct est_coef_row rows[] = { { "implementation", "low", 370 },
		{ "implement_feature", "high", 1000 } };
	struct est_coefs a, b;
	char err[128], *text;

	est_coefs_default(&a);
	CHECK(est_coefs_apply(&a, rows, 2, 5, err, sizeof err) == 0);
	text = calib_coefs_to_json(&a);
	CHECK(strstr(text, "[\"implementation\",\"low\",370]") != NULL);
	CHECK(calib_coefs_from_json(text, 5, &b, err, sizeof err) == 0);
	CHECK_EQ_INT(b.version, 5);
	CHECK_EQ_INT(b.n_overhead, a.n_overhead);
	for (size_t i = 0; i < a.n_overhead; i++)
		CHECK_EQ_INT(
		    est_overhead_lookup(&b, a.overhead[i].category, a.overhead[i].complexity),
		    a.overhead[i].overhead);
	free(text);
}

TEST(calib_coefs_from_json_names_the_bad_element)
{
	struct est_coefs c;
	char err[256];

	CHECK(calib_coefs_from_json("{}", 3, &c, err, sizeof err) == -1);
	CHECK(strstr(err, "set 3 is not a JSON array") != NULL);
	CHECK(calib_coefs_from_json(
	          "[[\"a\",\"low\",5],[\"b\",\"low\"]]", 3, &c, err, sizeof err) == -1);
	CHECK(strstr(err, "element 1") != NULL);
	CHECK(calib_coefs_from_json("[[\"a\",\"low\",0]]", 3, &c, err, sizeof err) == -1);
	CHECK(strstr(err, "outside 1..1000000") != NULL);
	CHECK_EQ_INT(c.version, 1); /* left at the defaults */
}

TEST(calib_coef_sets_find_by_version)
{
	struct calib_coef_sets sets = { 0 };
	struct est_coefs c;

	est_coefs_default(&c);
	calib_coef_sets_add(&sets, &c);
	c.version = 4;
	calib_coef_sets_add(&sets, &c);
	CHECK(calib_coef_sets_find(&sets, 4) == &sets.sets[1]);
	CHECK(calib_coef_sets_find(&sets, 1) == &sets.sets[0]);
	CHECK(calib_coef_sets_find(&sets, 0) == NULL);
	CHECK(calib_coef_sets_find(&sets, 2) == NULL);
	calib_coef_sets_free(&sets);
}
