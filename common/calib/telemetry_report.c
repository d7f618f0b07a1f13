/* The metrics of `telemetry report` (docs/telemetry.md, "The report"), over samples
 * read from the database. */
#include "common/calib/telemetry.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Percentage of k in n, 0 when n is 0. */
static double telem_pct(size_t k, size_t n)
{
	return n > 0 ? 100.0 * (double)k / (double)n : 0.0;
}

/* Fill the SMAPE and token-distribution fields from the non-truncated scored rows. */
static void telem_metrics_smape(
    const struct telem_sample *const *rows, size_t n, struct telem_metrics *m)
{
	double *smape = xcalloc(n + 1, sizeof *smape);
	double *pred = xcalloc(n + 1, sizeof *pred);
	double *act = xcalloc(n + 1, sizeof *act);
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const struct telem_sample *s = rows[i];

		if (s->truncated || !telem_scored(s->predicted, s->actual))
			continue;
		smape[k] = telem_smape(s->predicted, s->actual);
		pred[k] = (double)s->predicted;
		act[k] = (double)s->actual;
		k++;
	}
	m->n_smape = k;
	m->smape_mean = telem_mean(smape, k);
	m->predicted_mean = telem_mean(pred, k);
	m->actual_mean = telem_mean(act, k);
	telem_sort(smape, k);
	telem_sort(pred, k);
	telem_sort(act, k);
	m->smape_median = telem_median(smape, k);
	m->smape_min = k > 0 ? smape[0] : 0.0;
	m->smape_max = k > 0 ? smape[k - 1] : 0.0;
	m->predicted_median = telem_median(pred, k);
	m->actual_median = telem_median(act, k);
	free(smape);
	free(pred);
	free(act);
}

/* Fill the waste fields (predicted ÷ actual over scored rows) and the truncated
 * lower-bound fields. */
static void telem_metrics_waste(
    const struct telem_sample *const *rows, size_t n, struct telem_metrics *m)
{
	double *waste = xcalloc(n + 1, sizeof *waste);
	double tp = 0.0, ta = 0.0;
	size_t k = 0, tu = 0;

	for (size_t i = 0; i < n; i++) {
		const struct telem_sample *s = rows[i];

		if (telem_scored(s->predicted, s->actual))
			waste[k++] = (double)s->predicted / (double)s->actual;
		if (s->truncated) {
			tp += (double)s->predicted;
			ta += (double)s->actual;
			tu += s->actual > s->predicted;
		}
	}
	m->n_waste = k;
	m->waste_mean = telem_mean(waste, k);
	telem_sort(waste, k);
	m->waste_median = telem_median(waste, k);
	m->waste_p90 = telem_p90_decile(waste, k);
	if (m->truncated > 0) {
		m->trunc_predicted_mean = tp / (double)m->truncated;
		m->trunc_actual_mean = ta / (double)m->truncated;
		m->trunc_under_pct = telem_pct(tu, m->truncated);
	}
	free(waste);
}

/* Compute every metric of the rows. */
void telem_metrics_compute(const struct telem_sample *const *rows, size_t n,
    double under_multiplier, struct telem_metrics *m)
{
	memset(m, 0, sizeof *m);
	if (under_multiplier <= 0.0)
		under_multiplier = 1.0;
	m->n = n;
	for (size_t i = 0; i < n; i++) {
		const struct telem_sample *s = rows[i];

		m->underestimated += (double)s->actual > (double)s->predicted * under_multiplier;
		m->truncated += s->truncated;
		m->success += s->success;
	}
	m->under_pct = telem_pct(m->underestimated, n);
	m->trunc_pct = telem_pct(m->truncated, n);
	m->success_pct = telem_pct(m->success, n);
	telem_metrics_waste(rows, n, m);
	telem_metrics_smape(rows, n, m);
	m->under_above_target = m->under_pct > TELEM_TARGET_UNDER_PCT;
	m->trunc_above_target = m->trunc_pct > TELEM_TARGET_TRUNC_PCT;
	m->waste_above_target = m->n_waste > 0 && m->waste_p90 >= TELEM_TARGET_WASTE_P90;
	m->tuning_needed = m->under_above_target || m->trunc_above_target;
}

/* Name a dimension. */
const char *telem_dim_name(enum telem_dim d)
{
	static const char *const names[TELEM_DIM_COUNT] = {
		"category",
		"complexity",
		"deliverables",
		"estimator_version",
	};

	return names[d];
}

/* Bucket of a deliverable count; 0 counts with 1, as in the original. */
const char *telem_deliverable_bucket(int64_t count)
{
	if (count <= 1)
		return "0-1";
	if (count <= 5)
		return "2-5";
	return "6+";
}

/* The key of a sample in dimension d, in buf. */
static const char *telem_key(const struct telem_sample *s, enum telem_dim d, char *buf, size_t len)
{
	switch (d) {
	case TELEM_DIM_CATEGORY: return s->category;
	case TELEM_DIM_COMPLEXITY: return s->complexity;
	case TELEM_DIM_DELIVERABLES: return telem_deliverable_bucket(s->deliverable_count);
	case TELEM_DIM_VERSION:
		if (s->estimator_version <= 0)
			return "unknown";
		snprintf(buf, len, "%" PRId64, s->estimator_version);
		return buf;
	case TELEM_DIM_COUNT: break;
	}
	return "";
}

/* Order of keys within a dimension: deliverable buckets and versions numerically,
 * everything else by name. */
static int telem_key_cmp(enum telem_dim d, const char *a, const char *b)
{
	if (d == TELEM_DIM_DELIVERABLES || d == TELEM_DIM_VERSION) {
		long x = strcmp(a, "unknown") == 0 ? -1 : strtol(a, NULL, 10);
		long y = strcmp(b, "unknown") == 0 ? -1 : strtol(b, NULL, 10);

		return (x > y) - (x < y);
	}
	return strcmp(a, b);
}

/* A row of a stratification: its key in one dimension and its place among the rows. */
struct telem_keyed {
	const char *key;
	size_t at;
};

/* Order keyed rows by key (telem_key_cmp, then byte order), then by place; `dim` points
 * to the dimension. */
static int telem_keyed_cmp(const void *a, const void *b, void *dim)
{
	const struct telem_keyed *x = a, *y = b;
	int c = telem_key_cmp(*(const enum telem_dim *)dim, x->key, y->key);

	if (c == 0)
		c = strcmp(x->key, y->key);
	return c != 0 ? c : (x->at > y->at) - (x->at < y->at);
}

/* Add the strata of dimension d over rows to the report: the rows sorted by key, each
 * run of one key a stratum (its rows in their order), so that n rows of n keys (a file
 * of one category a line) take O(n log n), not the n² of looking each key up. */
static void telem_stratify(const struct telem_sample *const *rows, size_t n, enum telem_dim d,
    double under_multiplier, struct telem_report *r)
{
	const struct telem_sample **sub = xcalloc(n + 1, sizeof *sub);
	struct telem_keyed *k = xcalloc(n + 1, sizeof *k);
	char(*bufs)[32] = xcalloc(n + 1, sizeof *bufs);
	size_t nk = 0;

	for (size_t i = 0; i < n; i++)
		k[i] = (struct telem_keyed){ telem_key(rows[i], d, bufs[i], sizeof bufs[i]), i };
	qsort_r(k, n, sizeof *k, telem_keyed_cmp, &d);
	for (size_t i = 0; i < n; i++)
		nk += i == 0 || strcmp(k[i].key, k[i - 1].key) != 0;
	r->strata = xrealloc(r->strata, (r->n_strata + nk + 1) * sizeof *r->strata);
	for (size_t i = 0, j; i < n; i = j) {
		struct telem_stratum *st = &r->strata[r->n_strata++];
		size_t m = 0;

		for (j = i; j < n && strcmp(k[j].key, k[i].key) == 0; j++)
			sub[m++] = rows[k[j].at];
		st->dim = d;
		st->key = xstrdup(k[i].key);
		telem_metrics_compute(sub, m, under_multiplier, &st->m);
	}
	free(bufs);
	free(k);
	free(sub);
}

/* Build the overall metrics and, if asked, the strata. */
void telem_report_build(
    const struct telem_samples *s, const struct telem_report_opts *o, struct telem_report *r)
{
	const struct telem_sample **rows = xcalloc(s->n + 1, sizeof *rows);
	size_t n = 0;

	memset(r, 0, sizeof *r);
	r->n_read = s->n;
	r->under_multiplier = o->under_multiplier > 0.0 ? o->under_multiplier : 1.0;
	r->implausible = xcalloc(s->n + 1, sizeof *r->implausible);
	for (size_t i = 0; i < s->n; i++) {
		if (!telem_plausible(&s->v[i]))
			r->implausible[r->n_implausible++] = &s->v[i];
		else if (!o->success_only || s->v[i].success)
			rows[n++] = &s->v[i];
	}
	telem_metrics_compute(rows, n, r->under_multiplier, &r->all);
	if (o->stratify)
		for (int d = 0; d < TELEM_DIM_COUNT; d++)
			telem_stratify(rows, n, (enum telem_dim)d, r->under_multiplier, r);
	free(rows);
}

/* Free the strata. */
void telem_report_free(struct telem_report *r)
{
	for (size_t i = 0; i < r->n_strata; i++)
		free(r->strata[i].key);
	free(r->strata);
	free(r->implausible);
	memset(r, 0, sizeof *r);
}
