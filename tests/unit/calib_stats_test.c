/* The formulas and statistics conventions of docs/telemetry.md, against hand-computed
 * values (Python's statistics module gives the same numbers). */
#include "common/calib/calib.h"
#include "common/calib/telemetry.h"
#include "common/util.h"
#include "tests/unit/test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

TEST(calib_smape_matches_the_original_log_line)
{
	/* "predicted 5200 actual 1218 smape 124.1%" (docs/estimator.md): 200·3982/6418. */
	CHECK_NEAR(telem_smape(5200, 1218), 124.0885, 1e-3);
	CHECK_NEAR(telem_smape(1218, 5200), 124.0885, 1e-3);
	CHECK_NEAR(telem_smape(100, 100), 0.0, 1e-12);
}

TEST(calib_smape_guards_a_zero_denominator_with_one)
{
	/* max(1, (|p|+|a|)/2): (0+1)/2 = 0.5 becomes 1, so 100·1/1. */
	CHECK_NEAR(telem_smape(0, 1), 100.0, 1e-12);
	CHECK_NEAR(telem_smape(0, 0), 0.0, 1e-12);
}

TEST(calib_scored_requires_both_counts_positive)
{
	CHECK(telem_scored(1, 1));
	CHECK(!telem_scored(0, 10));
	CHECK(!telem_scored(10, 0));
}

TEST(calib_clean_means_success_untruncated_and_at_least_50_tokens)
{
	struct telem_sample s = { .success = true, .actual = 50 };

	CHECK(telem_clean(&s));
	s.actual = 49;
	CHECK(!telem_clean(&s));
	s.actual = 500;
	s.truncated = true;
	CHECK(!telem_clean(&s));
	s.truncated = false;
	s.success = false;
	CHECK(!telem_clean(&s));
}

TEST(calib_median_averages_the_middle_pair_but_upper_median_does_not)
{
	double even[] = { 1, 2, 3, 4 }, odd[] = { 1, 2, 3 };

	CHECK_NEAR(telem_median(even, 4), 2.5, 1e-12);
	CHECK_NEAR(telem_upper_median(even, 4), 3.0, 1e-12); /* sorted[4 // 2] */
	CHECK_NEAR(telem_median(odd, 3), 2.0, 1e-12);
	CHECK_NEAR(telem_upper_median(odd, 3), 2.0, 1e-12);
	CHECK_NEAR(telem_median(even, 0), 0.0, 1e-12);
}

TEST(calib_p90_decile_follows_statistics_quantiles_exclusive)
{
	double ten[10], twelve[12];
	double eleven[] = { 0.125, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 100 };

	for (int i = 0; i < 12; i++) {
		if (i < 10)
			ten[i] = i + 1;
		twelve[i] = i + 1;
	}
	/* statistics.quantiles(range(1, 11), n=10)[8] == 9.9; 1..12 gives 11.7. */
	CHECK_NEAR(telem_p90_decile(ten, 10), 9.9, 1e-9);
	CHECK_NEAR(telem_p90_decile(twelve, 12), 11.7, 1e-9);
	CHECK_NEAR(telem_p90_decile(eleven, 11), 81.6, 1e-9);
	/* Fewer than ten values: the maximum. */
	CHECK_NEAR(telem_p90_decile(ten, 9), 9.0, 1e-12);
}

TEST(calib_p90_index_is_sorted_at_int_of_0_9_n)
{
	double v[12];

	for (int i = 0; i < 12; i++)
		v[i] = i + 1;
	CHECK_NEAR(telem_p90_index(v, 10), 10.0, 1e-12); /* int(9.0) = 9 */
	CHECK_NEAR(telem_p90_index(v, 12), 11.0, 1e-12); /* int(10.8) = 10 */
	CHECK_NEAR(telem_p90_index(v, 5), 5.0, 1e-12);   /* int(4.5) = 4 */
	CHECK_NEAR(telem_p90_index(v, 1), 1.0, 1e-12);
}

TEST(calib_mean_and_population_stdev)
{
	double v[] = { 2, 4, 4, 4, 5, 5, 7, 9 };

	CHECK_NEAR(telem_mean(v, 8), 5.0, 1e-12);
	CHECK_NEAR(telem_pstdev(v, 8), 2.0, 1e-12);
	CHECK_NEAR(telem_pstdev(v, 1), 0.0, 1e-12);
}

TEST(calib_confidence_weights_count_and_spread_60_40)
{
	CHECK_NEAR(calib_confidence(12, 0.0), 1.0, 1e-12);
	CHECK_NEAR(calib_confidence(6, 1.0), 0.3 + 0.2, 1e-12);
	CHECK_NEAR(calib_confidence(24, 3.0), 0.6 + 0.1, 1e-12); /* count saturates at 12 */
	/* implementation/low of the 2025-12-29 example: n 8, confidence 77.1 % means
	 * 0.4/(1+σ) = 0.371, σ ≈ 0.078. */
	CHECK_NEAR(calib_confidence(8, 0.0782), 0.771, 1e-3);
}

/* Order doubles for qsort, the reference the sort is checked against. */
static int calib_test_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

TEST(calib_sort_orders_as_qsort_across_signs_zeros_and_infinities)
{
	static const size_t sizes[] = { 0, 1, 2, 63, 64, 65, 1000, 20000 };
	uint64_t state = 12345;

	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		size_t n = sizes[s];
		double *a = xcalloc(n + 1, sizeof *a), *b = xcalloc(n + 1, sizeof *b);

		for (size_t i = 0; i < n; i++) {
			state = state * 6364136223846793005ULL + 1442695040888963407ULL;
			switch ((state >> 60) & 7) {
			case 0: a[i] = -0.0; break;
			case 1: a[i] = (state >> 33) % 2 ? INFINITY : -INFINITY; break;
			case 2:
				a[i] = (double)((state >> 40) % 50); /* many equal values */
				break;
			case 3: a[i] = -(double)(state >> 20) * 1e-9; break;
			case 4:
				a[i] = 5e-324 * (double)((state >> 50) % 4); /* subnormal */
				break;
			default: a[i] = (double)(state >> 11) * 1e-6;
			}
			b[i] = a[i];
		}
		telem_sort(a, n);
		qsort(b, n, sizeof *b, calib_test_cmp);
		for (size_t i = 0; i < n; i++)
			CHECK(a[i] == b[i]); /* -0.0 == 0.0: qsort leaves their order open */
		free(a);
		free(b);
	}
}
