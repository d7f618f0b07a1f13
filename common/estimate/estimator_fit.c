/*
 * The fitted model (docs/calibration.md): ln(actual) = w·x with x = [1, category one-hot,
 * complexity one-hot, ln(1 + deliverable count)], solved as ridge regression
 * (XᵀX + λD)w = Xᵀy with the intercept not penalised: the design's columns and rows, the
 * normal equations and their solver, and a fit's prediction and budget. The fit itself
 * and its leave-one-out residuals are in estimator_loo.c.
 */
#include "common/estimate/estimator.h"
#include "common/estimate/estimator_design.h"
#include "common/strtab.h"
#include "common/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define EST_FIT_ESTIMATE_MAX 10000000.0 /* no prediction above this many tokens */

/* Index of a normalised category in the fit's list (sorted by name), or -1. */
static int est_fit_cat_index(const struct est_fit *f, const char *norm)
{
	size_t lo = 0, hi = f->n_cats;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(f->cats[mid], norm);

		if (c == 0)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Order doubles ascending for qsort. */
int est_fit_double_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Order category names for qsort. */
static int est_fit_cat_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The design row of one observation under the fit's category list; returns p. */
size_t est_fit_row(
    const struct est_fit *f, const char *category, const char *complexity, int64_t d, double *x)
{
	char norm[EST_NAME_MAX];
	size_t p = 1 + f->n_cats + EST_CPLX_COUNT + 1;
	int k;

	memset(x, 0, p * sizeof *x);
	x[0] = 1.0;
	est_name_normalise(category, norm, sizeof norm);
	k = est_fit_cat_index(f, norm);
	if (k >= 0)
		x[1 + k] = 1.0;
	x[1 + f->n_cats + est_cplx_of(complexity)] = 1.0;
	x[p - 1] = log1p((double)(d > 0 ? d : 0));
	return p;
}

/* Add (sign = 1) or remove (sign = -1) one observation from the normal equations. */
void est_normal_add(struct est_normal *ne, const double *x, double y, double sign)
{
	for (size_t i = 0; i < ne->p; i++) {
		if (x[i] == 0.0)
			continue;
		ne->b[i] += sign * x[i] * y;
		for (size_t j = 0; j < ne->p; j++)
			if (x[j] != 0.0)
				ne->a[i][j] += sign * x[i] * x[j];
	}
}

/* The Cholesky factor L (row-major, lower) of A + λD, D the identity but for the
 * intercept; 0, or -1 when the matrix is not positive definite. */
int est_chol(const double *a, size_t p, double lambda, double *l)
{
	for (size_t i = 0; i < p; i++) {
		for (size_t j = 0; j <= i; j++) {
			double s = a[i * p + j] + (i == j && i > 0 ? lambda : 0.0);

			for (size_t k = 0; k < j; k++)
				s -= l[i * p + k] * l[j * p + k];
			if (i == j) {
				if (!(s > 1e-12))
					return -1;
				l[i * p + i] = sqrt(s);
			} else {
				l[i * p + j] = s / l[j * p + j];
			}
		}
	}
	return 0;
}

/* Solve L Lᵀ w = b with the factor of est_chol (z: p doubles of room). */
void est_chol_solve(const double *l, size_t p, const double *b, double *z, double *w)
{
	for (size_t i = 0; i < p; i++) {
		double s = b[i];

		for (size_t k = 0; k < i; k++)
			s -= l[i * p + k] * z[k];
		z[i] = s / l[i * p + i];
	}
	for (size_t i = p; i-- > 0;) {
		double s = z[i];

		for (size_t k = i + 1; k < p; k++)
			s -= l[k * p + i] * w[k];
		w[i] = s / l[i * p + i];
	}
}

int est_ridge_solve(const double *a, const double *b, size_t p, double lambda, double *w)
{
	double *l = xcalloc(p * p + 1, sizeof *l), *z = xcalloc(p + 1, sizeof *z);
	int rc = est_chol(a, p, lambda, l);

	if (rc == 0)
		est_chol_solve(l, p, b, z, w);
	free(l);
	free(z);
	return rc;
}

/* Set the fit's weights from the solution w of its p normal equations. */
void est_fit_weights(const double *w, size_t p, struct est_fit *f)
{
	f->intercept = w[0];
	for (size_t k = 0; k < f->n_cats; k++)
		f->w_cat[k] = w[1 + k];
	for (size_t k = 0; k < EST_CPLX_COUNT; k++)
		f->w_cplx[k] = w[1 + f->n_cats + k];
	f->w_deliverables = w[p - 1];
}

/* A category of the observations and how many it has. */
struct est_fit_cat_count {
	char name[EST_NAME_MAX];
	size_t n;
};

/* Order categories by count, the most first, then by name, for qsort. */
static int est_fit_cat_count_cmp(const void *a, const void *b)
{
	const struct est_fit_cat_count *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* Give a column to the categories of the observations, sorted by name: the
 * EST_FIT_CATS_MAX with the most observations when there are more (ties by name); the
 * others, and an empty name, get none and count as a category never seen. fragile[k] is
 * set for a column k whose category, one observation fewer, would lose its column to
 * the first category left without one. */
void est_fit_categories(const struct est_fit_obs *obs, size_t n, struct est_fit *f, bool *fragile)
{
	struct est_fit_cat_count *c = xcalloc(n + 1, sizeof *c);
	struct strtab names; /* c[i].name has index i */
	size_t k;

	strtab_init(&names, n, false);
	for (size_t i = 0; i < n; i++) {
		/* The name goes into the first unused count, which it keeps if it is new. */
		est_name_normalise(obs[i].category, c[names.n].name, sizeof c[names.n].name);
		if (c[names.n].name[0] != '\0')
			c[strtab_add(&names, c[names.n].name, NULL)].n++;
	}
	k = names.n;
	strtab_free(&names);
	qsort(c, k, sizeof *c, est_fit_cat_count_cmp);
	f->n_cats = k < EST_FIT_CATS_MAX ? k : EST_FIT_CATS_MAX;
	for (size_t i = 0; i < f->n_cats; i++)
		strlcpy_ap(f->cats[i], c[i].name, EST_NAME_MAX);
	qsort(f->cats, f->n_cats, sizeof f->cats[0], est_fit_cat_cmp);
	memset(fragile, 0, EST_FIT_CATS_MAX * sizeof *fragile);
	for (size_t i = 0; i < f->n_cats && k > f->n_cats; i++) {
		const struct est_fit_cat_count *out = &c[f->n_cats];

		if (c[i].n - 1 < out->n ||
		    (c[i].n - 1 == out->n && strcmp(c[i].name, out->name) > 0))
			fragile[est_fit_cat_index(f, c[i].name)] = true;
	}
	free(c);
}

double est_fit_log_predict(
    const struct est_fit *f, const char *category, const char *complexity, int64_t deliverables)
{
	double x[EST_FIT_COLS], w[EST_FIT_COLS], s = 0.0;
	size_t p = est_fit_row(f, category, complexity, deliverables, x);

	w[0] = f->intercept;
	for (size_t k = 0; k < f->n_cats; k++)
		w[1 + k] = f->w_cat[k];
	for (size_t k = 0; k < EST_CPLX_COUNT; k++)
		w[1 + f->n_cats + k] = f->w_cplx[k];
	w[p - 1] = f->w_deliverables;
	for (size_t i = 0; i < p; i++)
		s += w[i] * x[i];
	return s;
}

int est_fit_estimate(
    const struct est_fit *f, const char *category, const char *complexity, int64_t deliverables)
{
	double v = exp(est_fit_log_predict(f, category, complexity, deliverables));

	if (!(v >= 1.0))
		return 1;
	return v > EST_FIT_ESTIMATE_MAX ? (int)EST_FIT_ESTIMATE_MAX : (int)lround(v);
}

int est_fit_budget(const struct est_fit *f, int estimate, int cap)
{
	double v = ceil((double)estimate * f->factor - 1e-9);

	if (cap > 0 && v > (double)cap)
		return cap;
	return v < 1.0 ? 1 : (int)v;
}
