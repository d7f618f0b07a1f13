/*
 * The fit (docs/calibration.md "The conformal budget"): the ridge weights on all observations,
 * the conformal factor F of their leave-one-out residuals, and each fit without one
 * observation from the fit on all (Sherman–Morrison), for the held-out evaluation: exact
 * to rounding, and O(design rows × log n) each instead of a refit's O(n log n).
 */
#include "common/estimate/estimator.h"
#include "common/estimate/estimator_design.h"
#include "common/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The k of the conformal factor of n residuals: ⌈(n + 1) × coverage⌉ clamped to 1..n. */
static size_t est_conformal_k(size_t n, double coverage)
{
	size_t k = (size_t)ceil((double)(n + 1) * coverage - 1e-9);

	return k < 1 ? 1 : k > n ? n : k;
}

/* The k-th smallest (1-based, k <= n) of n doubles, which are reordered: quickselect
 * with a three-way partition, so equal values cost no more than distinct ones. */
static double est_select(double *a, size_t n, size_t k)
{
	size_t lo = 0, hi = n, want = k - 1;

	for (;;) {
		double pivot = a[lo + (hi - lo) / 2];
		size_t lt = lo, i = lo, gt = hi;

		while (i < gt) { /* [lo, lt) < pivot, [lt, i) == pivot, [gt, hi) > pivot */
			double t = a[i];

			if (t < pivot) {
				a[i++] = a[lt];
				a[lt++] = t;
			} else if (t > pivot) {
				a[i] = a[--gt];
				a[gt] = t;
			} else {
				i++;
			}
		}
		if (want < lt)
			hi = lt;
		else if (want >= gt)
			lo = gt;
		else
			return pivot;
	}
}

/* The k-th smallest (1-based, k <= the sum of w) of n doubles a[i], each w[i] times;
 * both arrays are reordered together. */
static double est_select_weighted(double *a, size_t *w, size_t n, size_t k)
{
	size_t lo = 0, hi = n, want = k - 1;

	for (;;) {
		double pivot = a[lo + (hi - lo) / 2];
		size_t lt = lo, i = lo, gt = hi, below = 0, equal = 0;

		while (i < gt) {
			double t = a[i];
			size_t tw = w[i];

			if (t < pivot) {
				a[i] = a[lt];
				w[i++] = w[lt];
				a[lt] = t;
				w[lt++] = tw;
			} else if (t > pivot) {
				a[i] = a[--gt];
				w[i] = w[gt];
				a[gt] = t;
				w[gt] = tw;
			} else {
				i++;
			}
		}
		for (size_t j = lo; j < lt; j++)
			below += w[j];
		for (size_t j = lt; j < gt; j++)
			equal += w[j];
		if (want < below) {
			hi = lt;
		} else if (want < below + equal) {
			return pivot;
		} else {
			want -= below + equal;
			lo = gt;
		}
	}
}

double est_conformal_factor(double *residuals, size_t n, double coverage)
{
	if (n == 0)
		return 1.0;
	return exp(est_select(residuals, n, est_conformal_k(n, coverage)));
}

/* One observation's design row by its columns that are not 0 (at most the intercept, a
 * category, a complexity and the deliverables). */
struct est_loo_row {
	unsigned m;
	unsigned col[4];
	double x[4];
};

struct est_loo {
	struct est_fit fit; /* on all n observations */
	size_t n, p;
	double *ainv; /* (XᵀX + λD)⁻¹, p × p */
	double w[EST_FIT_COLS];
	double *y, *pred, *h; /* each observation's ln(actual), w·x and leverage xᵀ(XᵀX + λD)⁻¹x */
	struct est_loo_row *rows;
	bool *recut;   /* the fit without the observation gives other categories columns */
	double *r;     /* n residuals of room */
	size_t *rw;    /* how many times each of r stands */
	double *rsort; /* the leave-one-out residuals of the fit on all, ascending */
	/* The observations grouped by design row, each group by ln(actual): order[t] is the
	 * observation at position t, ys[t] its ln(actual), at[i] the position of
	 * observation i; group G holds positions gstart[G] .. gstart[G + 1] − 1. */
	size_t *order, *at, *gstart, n_groups;
	double *ys;
	double v[EST_FIT_COLS], wi[EST_FIT_COLS];
	size_t gathered; /* residuals gathered by est_loo_without, all calls */
};

void est_loo_free(struct est_loo *L)
{
	if (L == NULL)
		return;
	free(L->ainv);
	free(L->y);
	free(L->pred);
	free(L->h);
	free(L->rows);
	free(L->recut);
	free(L->r);
	free(L->rw);
	free(L->rsort);
	free(L->order);
	free(L->at);
	free(L->gstart);
	free(L->ys);
	free(L);
}

/* Order the observations of kept fit `ctx` by design row, then by ln(actual), for
 * qsort_r. */
static int est_loo_by_row(const void *a, const void *b, void *ctx)
{
	const struct est_loo *L = ctx;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct est_loo_row *x = &L->rows[i], *y = &L->rows[j];
	int c = memcmp(x->col, y->col, sizeof x->col);

	if (x->m != y->m)
		return x->m < y->m ? -1 : 1;
	if (c != 0)
		return c;
	for (size_t s = 0; s < x->m; s++)
		if (x->x[s] != y->x[s])
			return x->x[s] < y->x[s] ? -1 : 1;
	return est_fit_double_cmp(&L->y[i], &L->y[j]);
}

/* Group L's observations by design row (est_loo.order). */
static void est_loo_group(struct est_loo *L)
{
	size_t n = L->n;

	L->order = xcalloc(n + 1, sizeof *L->order);
	L->at = xcalloc(n + 1, sizeof *L->at);
	L->gstart = xcalloc(n + 2, sizeof *L->gstart);
	L->ys = xcalloc(n + 1, sizeof *L->ys);
	for (size_t i = 0; i < n; i++)
		L->order[i] = i;
	qsort_r(L->order, n, sizeof *L->order, est_loo_by_row, L);
	L->n_groups = 0;
	for (size_t t = 0; t < n; t++) {
		const struct est_loo_row *x = &L->rows[L->order[t]];
		const struct est_loo_row *prev = t > 0 ? &L->rows[L->order[t - 1]] : NULL;

		if (prev == NULL || prev->m != x->m ||
		    memcmp(prev->col, x->col, sizeof x->col) != 0 ||
		    memcmp(prev->x, x->x, x->m * sizeof x->x[0]) != 0)
			L->gstart[L->n_groups++] = t;
		L->at[L->order[t]] = t;
		L->ys[t] = L->y[L->order[t]];
	}
	L->gstart[L->n_groups] = n;
}

/* Fit on all observations into L: the weights, (XᵀX + λD)⁻¹, each observation's
 * prediction and leverage, and the conformal factor of the leave-one-out residuals, each
 * exactly that of the fit without the observation: its residual under the fit on all
 * divided by 1 − h (the row's removal is a rank-one change of the normal equations).
 * Returns 0, or -1 with err. */
static int est_loo_fit_all(const struct est_fit_obs *obs, size_t n, double lambda, double coverage,
    struct est_loo *L, char *err, size_t errlen)
{
	struct est_normal *ne = xcalloc(1, sizeof *ne);
	double *a = NULL, *l = NULL, x[EST_FIT_COLS], z[EST_FIT_COLS], u[EST_FIT_COLS];
	bool fragile[EST_FIT_CATS_MAX];
	struct est_fit *f = &L->fit;
	size_t p = 0;
	int rc = 0;

	memset(f, 0, sizeof *f);
	f->lambda = lambda;
	f->coverage = coverage;
	f->n_samples = L->n = n;
	if (n < 2) {
		snprintf(err, errlen, "%zu samples; the fit needs at least 2", n);
		rc = -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		if (obs[i].actual <= 0) {
			snprintf(err, errlen, "sample %zu has actual output %lld; must be positive",
			    i, (long long)obs[i].actual);
			rc = -1;
		}
	if (rc == 0) {
		est_fit_categories(obs, n, f, fragile);
		ne->p = L->p = p = 1 + f->n_cats + EST_CPLX_COUNT + 1;
		L->y = xcalloc(n, sizeof *L->y);
		L->pred = xcalloc(n, sizeof *L->pred);
		L->h = xcalloc(n, sizeof *L->h);
		L->r = xcalloc(n, sizeof *L->r);
		L->rw = xcalloc(n, sizeof *L->rw);
		L->rows = xcalloc(n, sizeof *L->rows);
		L->recut = xcalloc(n, sizeof *L->recut);
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct est_loo_row *row = &L->rows[i];

		est_fit_row(f, obs[i].category, obs[i].complexity, obs[i].deliverables, x);
		L->y[i] = log((double)obs[i].actual);
		est_normal_add(ne, x, L->y[i], 1.0);
		for (size_t k = 0; k < p; k++)
			if (x[k] != 0.0) {
				row->col[row->m] = (unsigned)k;
				row->x[row->m++] = x[k];
				L->recut[i] |= k >= 1 && k <= f->n_cats && fragile[k - 1];
			}
	}
	if (rc == 0) {
		a = xcalloc(p * p, sizeof *a);
		l = xcalloc(p * p, sizeof *l);
		L->ainv = xcalloc(p * p, sizeof *L->ainv);
		for (size_t i = 0; i < p; i++)
			for (size_t j = 0; j < p; j++)
				a[i * p + j] = ne->a[i][j];
		if (est_chol(a, p, lambda, l) != 0) {
			snprintf(err, errlen, "the normal equations are singular");
			rc = -1;
		} else {
			est_chol_solve(l, p, ne->b, z, L->w);
			est_fit_weights(L->w, p, f);
			for (size_t j = 0; j < p; j++) { /* column by column */
				memset(u, 0, p * sizeof *u);
				u[j] = 1.0;
				est_chol_solve(l, p, u, z, &L->ainv[j * p]);
			}
		}
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct est_loo_row *row = &L->rows[i];
		double h = 0.0, e = 0.0;

		for (size_t s = 0; s < row->m; s++) {
			e += row->x[s] * L->w[row->col[s]];
			for (size_t t = 0; t < row->m; t++)
				h += row->x[s] * row->x[t] * L->ainv[row->col[s] * p + row->col[t]];
		}
		if (!(1.0 - h > 1e-12)) {
			snprintf(
			    err, errlen, "the normal equations without sample %zu are singular", i);
			rc = -1;
			break;
		}
		L->pred[i] = e;
		L->h[i] = h;
		L->r[i] = (L->y[i] - e) / (1.0 - h);
	}
	if (rc == 0) {
		f->factor = est_conformal_factor(L->r, n, coverage);
		f->active = true;
	}
	free(ne);
	free(a);
	free(l);
	return rc;
}

int est_fit_train(const struct est_fit_obs *obs, size_t n, double lambda, double coverage,
    struct est_fit *f, char *err, size_t errlen)
{
	struct est_loo *L = xcalloc(1, sizeof *L);
	int rc = est_loo_fit_all(obs, n, lambda, coverage, L, err, errlen);

	*f = L->fit;
	est_loo_free(L);
	return rc;
}

struct est_loo *est_loo_new(const struct est_fit_obs *obs, size_t n, double lambda, double coverage,
    char *err, size_t errlen)
{
	struct est_loo *L = xcalloc(1, sizeof *L);

	if (est_loo_fit_all(obs, n, lambda, coverage, L, err, errlen) != 0) {
		est_loo_free(L);
		return NULL;
	}
	L->rsort = xmalloc(n * sizeof *L->rsort); /* L->r: the same residuals, reordered */
	memcpy(L->rsort, L->r, n * sizeof *L->rsort);
	qsort(L->rsort, n, sizeof *L->rsort, est_fit_double_cmp);
	est_loo_group(L);
	return L;
}

size_t est_loo_gathered(const struct est_loo *L)
{
	return L->gathered;
}

const struct est_fit *est_loo_fit(const struct est_loo *L)
{
	return &L->fit;
}

/* The number of the n ascending values below x (strictly when `strict`, else at most x). */
static size_t est_count_below(const double *v, size_t n, double x, bool strict)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strict ? v[mid] < x : v[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The fit without observation i, by Sherman–Morrison: with v = (XᵀX + λD)⁻¹xᵢ,
 * g = eᵢ / (1 − hᵢ), its weights are w − g·v; in it another observation's prediction
 * drops by (xⱼ·v)·g and its leverage grows by (xⱼ·v)² / (1 − hᵢ), which give its
 * leave-one-out residual (y − c)/d, the same c and d for a whole design row: a row's
 * residuals are in the order of its ln(actual). The factor is their conformal quantile,
 * looked for first among the residuals between the fit on all's, EST_LOO_WINDOW ranks
 * either side of the same rank (one observation fewer moves each little), counted and
 * gathered from each row by bisection; when it is not there, in a window four times as
 * wide, until one spans every rank and then all are gathered. Equal residuals make the
 * bounds equal, and a whole row that moves off them is found in a wider window, not by
 * gathering all n for each observation; equal actuals of a row, whose residuals are
 * equal, are gathered as one residual and a count. */
#define EST_LOO_WINDOW 64
int est_loo_without(struct est_loo *L, size_t i, struct est_fit *f)
{
	const struct est_loo_row *ri = &L->rows[i];
	size_t p = L->p, n = L->n, k, below = 0, m = 0, total = 0, total_m = 0, at_i = L->at[i];
	double den = 1.0 - L->h[i], g, lo, hi;
	bool all = false;

	if (L->recut[i] || n < 3 || !(den > 1e-12))
		return -1;
	g = (L->y[i] - L->pred[i]) / den;
	for (size_t c = 0; c < p; c++) {
		L->v[c] = 0.0;
		for (size_t s = 0; s < ri->m; s++)
			L->v[c] += ri->x[s] * L->ainv[ri->col[s] * p + c];
		L->wi[c] = L->w[c] - g * L->v[c];
	}
	k = est_conformal_k(n - 1, L->fit.coverage);
	for (size_t w = EST_LOO_WINDOW;; w *= 4) {
		lo = L->rsort[k - 1 > w ? k - 1 - w : 0];
		hi = L->rsort[k - 1 + w < n ? k - 1 + w : n - 1];
		below = m = total = total_m = 0;
		for (size_t G = 0; G < L->n_groups; G++) {
			size_t s0 = L->gstart[G], cnt = L->gstart[G + 1] - s0, rep = L->order[s0];
			const struct est_loo_row *rg = &L->rows[rep];
			double mg = 0.0, d, c, last = 0.0;
			size_t a = 0, b = cnt;

			if (cnt == 1 && s0 == at_i)
				continue;
			for (size_t s = 0; s < rg->m; s++)
				mg += rg->x[s] * L->v[rg->col[s]];
			d = 1.0 - L->h[rep] - mg * mg / den;
			if (!(d > 1e-12))
				return -1;
			c = L->pred[rep] - mg * g;
			if (!all) {
				a = est_count_below(&L->ys[s0], cnt, c + lo * d, true);
				b = est_count_below(&L->ys[s0], cnt, c + hi * d, false);
				below += a - (at_i >= s0 && at_i < s0 + a);
			}
			for (size_t t = s0 + a, first = m; t < s0 + b; t++) {
				if (t == at_i)
					continue;
				if (m > first && L->ys[t] == last) {
					L->rw[m - 1]++; /* the same residual as the one before */
					continue;
				}
				last = L->ys[t];
				L->r[m] = (L->ys[t] - c) / d;
				L->rw[m++] = 1;
			}
			for (size_t j = total_m; j < m; j++)
				total += L->rw[j];
			total_m = m;
		}
		L->gathered += m;
		if (all || (below < k && k <= below + total))
			break;
		all = k - 1 <= w && k - 1 + w >= n - 1; /* the last window spanned every rank */
	}
	*f = L->fit;
	f->n_samples = n - 1;
	est_fit_weights(L->wi, p, f);
	f->factor = exp(est_select_weighted(L->r, L->rw, m, k - below));
	return 0;
}
