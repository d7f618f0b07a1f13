/*
 * The fitted model's design, shared by the fit (estimator_loo.c) and its prediction
 * (estimator_fit.c): the columns of the categories, a design row, the normal equations
 * and their Cholesky solver. Not used outside common/estimate.
 */
#ifndef AUTOPACK_ESTIMATOR_DESIGN_H
#define AUTOPACK_ESTIMATOR_DESIGN_H

#include "common/estimate/estimator.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EST_FIT_COLS (1 + EST_FIT_CATS_MAX + EST_CPLX_COUNT + 1)

/* The normal equations of one design: A = XᵀX (without λ), b = Xᵀy. */
struct est_normal {
	size_t p;
	double a[EST_FIT_COLS][EST_FIT_COLS];
	double b[EST_FIT_COLS];
};

/* Order doubles ascending, for qsort. */
int est_fit_double_cmp(const void *a, const void *b);
/* The design row x of one observation under the fit's category list; returns p. */
size_t est_fit_row(
    const struct est_fit *f, const char *category, const char *complexity, int64_t d, double *x);
/* Add (sign = 1) or remove (sign = -1) one observation from the normal equations. */
void est_normal_add(struct est_normal *ne, const double *x, double y, double sign);
/* The Cholesky factor L (row-major, lower) of A + λD, D the identity but for the
 * intercept; 0, or -1 when the matrix is not positive definite. */
int est_chol(const double *a, size_t p, double lambda, double *l);
/* Solve L Lᵀ w = b with the factor of est_chol (z: p doubles of room). */
void est_chol_solve(const double *l, size_t p, const double *b, double *z, double *w);
/* Set the fit's weights from the solution w of its p normal equations. */
void est_fit_weights(const double *w, size_t p, struct est_fit *f);
/* Give a column to the categories of the observations, sorted by name: the
 * EST_FIT_CATS_MAX with the most observations when there are more (ties by name); the
 * others, and an empty name, get none and count as a category never seen. fragile[k]
 * (EST_FIT_CATS_MAX of room) is set for a column k whose category, one observation
 * fewer, would lose its column to the first category left without one. */
void est_fit_categories(const struct est_fit_obs *obs, size_t n, struct est_fit *f, bool *fragile);

#endif
