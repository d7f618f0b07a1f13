/* The formulas and statistics conventions of the Python original (docs/telemetry.md). */
#include "common/calib/telemetry.h"
#include "common/util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Append a zeroed sample, growing the list. */
struct telem_sample *telem_samples_add(struct telem_samples *s)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n] = (struct telem_sample){ .actual_max_tokens = -1 };
	return &s->v[s->n++];
}

/* Free every sample's strings and the list itself. */
void telem_samples_free(struct telem_samples *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct telem_sample *x = &s->v[i];

		free(x->run_id);
		free(x->phase_id);
		free(x->timestamp);
		free(x->category);
		free(x->complexity);
		free(x->stop_reason);
		free(x->model);
		free(x->unreadable_text);
	}
	free(s->v);
	*s = (struct telem_samples){ 0 };
}

/* SMAPE in percent, guarded against a zero denominator. */
double telem_smape(int64_t predicted, int64_t actual)
{
	double p = fabs((double)predicted), a = fabs((double)actual);
	double den = (p + a) / 2.0;

	return 100.0 * fabs((double)predicted - (double)actual) / (den < 1.0 ? 1.0 : den);
}

/* Whether the derived columns are defined for this pair. */
bool telem_scored(int64_t predicted, int64_t actual)
{
	return predicted > 0 && actual > 0;
}

/* The first count of a sample outside what a call records, and its value. */
const char *telem_implausible_count(const struct telem_sample *s, int64_t *value)
{
	const struct {
		const char *name;
		int64_t v, lo;
	} c[] = {
		{ "deliverable_count", s->deliverable_count, 0 },
		{ "predicted_output_tokens", s->predicted, 0 },
		{ "actual_output_tokens", s->actual, 0 },
		{ "selected_budget", s->selected_budget, 0 },
		{ "actual_max_tokens", s->actual_max_tokens, -1 },
	};

	if (s->unreadable_col != NULL) {
		*value = 0;
		return s->unreadable_col;
	}
	for (size_t i = 0; i < ARRAY_SIZE(c); i++)
		if (c[i].v < c[i].lo || c[i].v > TELEM_COUNT_MAX) {
			*value = c[i].v;
			return c[i].name;
		}
	return NULL;
}

/* Whether every count of a sample is one a call could record. */
bool telem_plausible(const struct telem_sample *s)
{
	int64_t v;

	return telem_implausible_count(s, &v) == NULL;
}

/* Whether a sample may be used for calibration. */
bool telem_clean(const struct telem_sample *s)
{
	return s->success && !s->truncated && s->actual >= TELEM_CLEAN_MIN_ACTUAL &&
	    telem_plausible(s);
}

/* Mean of n values, 0 when empty. */
double telem_mean(const double *v, size_t n)
{
	double sum = 0.0;

	for (size_t i = 0; i < n; i++)
		sum += v[i];
	return n > 0 ? sum / (double)n : 0.0;
}

/* Population standard deviation, 0 when empty. */
double telem_pstdev(const double *v, size_t n)
{
	double mean = telem_mean(v, n), sum = 0.0;

	for (size_t i = 0; i < n; i++)
		sum += (v[i] - mean) * (v[i] - mean);
	return n > 0 ? sqrt(sum / (double)n) : 0.0;
}

/* The key of a double whose unsigned order is the number's: the sign bit flipped for
 * positive numbers, every bit for negative ones. */
static uint64_t telem_key(double x)
{
	uint64_t u;

	memcpy(&u, &x, sizeof u);
	return (u >> 63) != 0 ? ~u : u | (UINT64_C(1) << 63);
}

static double telem_unkey(uint64_t u)
{
	double x;

	u = (u >> 63) != 0 ? u & ~(UINT64_C(1) << 63) : ~u;
	memcpy(&x, &u, sizeof x);
	return x;
}

/* Sort values that are not NaN ascending in place: an insertion
 * sort for a few values, else a least significant byte first radix sort of the keys,
 * which skips the bytes every key shares. */
void telem_sort(double *v, size_t n)
{
	uint64_t *a, *b, *t;
	size_t count[256];

	if (n < 64) {
		for (size_t i = 1; i < n; i++) {
			double x = v[i];
			size_t j = i;

			for (; j > 0 && v[j - 1] > x; j--)
				v[j] = v[j - 1];
			v[j] = x;
		}
		return;
	}
	a = xmalloc(2 * n * sizeof *a);
	b = a + n;
	for (size_t i = 0; i < n; i++)
		a[i] = telem_key(v[i]);
	for (int shift = 0; shift < 64; shift += 8) {
		size_t sum = 0;

		memset(count, 0, sizeof count);
		for (size_t i = 0; i < n; i++)
			count[(a[i] >> shift) & 0xff]++;
		if (count[(a[0] >> shift) & 0xff] == n)
			continue;
		for (size_t d = 0; d < 256; d++) {
			size_t c = count[d];

			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			b[count[(a[i] >> shift) & 0xff]++] = a[i];
		t = a;
		a = b;
		b = t;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = telem_unkey(a[i]);
	free(a < b ? a : b);
}

/* The median, averaging the two middle values of an even count; 0 when empty. */
double telem_median(const double *sorted, size_t n)
{
	if (n == 0)
		return 0.0;
	if (n % 2 == 1)
		return sorted[n / 2];
	return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
}

/* The upper median sorted[n / 2]; 0 when empty. */
double telem_upper_median(const double *sorted, size_t n)
{
	return n > 0 ? sorted[n / 2] : 0.0;
}

/* The ninth decile cut point of statistics.quantiles(n=10), exclusive method, for at
 * least ten values; the maximum for fewer; 0 when empty. */
double telem_p90_decile(const double *sorted, size_t n)
{
	size_t m = n + 1, j, delta;

	if (n == 0)
		return 0.0;
	if (n < 10)
		return sorted[n - 1];
	j = 9 * m / 10;
	if (j < 1)
		j = 1;
	if (j > n - 1)
		j = n - 1;
	delta = 9 * m - j * 10;
	return (sorted[j - 1] * (double)(10 - delta) + sorted[j] * (double)delta) / 10.0;
}

/* sorted[int(0.9 n)], or the last value when that index is past the end; 0 when empty. */
double telem_p90_index(const double *sorted, size_t n)
{
	size_t i = (size_t)((double)n * 0.9);

	if (n == 0)
		return 0.0;
	return i < n ? sorted[i] : sorted[n - 1];
}
