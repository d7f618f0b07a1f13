/* The samples a fit uses (clean, one per attempt, no exact duplicates), the fit itself,
 * and the estimate and budget a coefficient set gives a recorded sample. */
#include "common/calib/calib.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether two nullable strings are equal. */
static bool calib_str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether two samples record the same call: every field but the time and the attempt. */
static bool calib_duplicate(const struct telem_sample *a, const struct telem_sample *b)
{
	return calib_str_eq(a->run_id, b->run_id) && calib_str_eq(a->phase_id, b->phase_id) &&
	    calib_str_eq(a->category, b->category) && calib_str_eq(a->complexity, b->complexity) &&
	    a->deliverable_count == b->deliverable_count && a->predicted == b->predicted &&
	    a->actual == b->actual && a->selected_budget == b->selected_budget &&
	    a->actual_max_tokens == b->actual_max_tokens && a->success == b->success &&
	    a->truncated == b->truncated && calib_str_eq(a->stop_reason, b->stop_reason) &&
	    calib_str_eq(a->model, b->model) && a->estimator_version == b->estimator_version;
}

/* Whether a later clean sample of the same known attempt follows sample i. */
static bool calib_superseded(const struct telem_sample *const *s, size_t n, size_t i)
{
	if (s[i]->attempt_id <= 0)
		return false;
	for (size_t j = i + 1; j < n; j++)
		if (telem_clean(s[j]) && s[j]->attempt_id == s[i]->attempt_id &&
		    calib_str_eq(s[j]->run_id, s[i]->run_id) &&
		    calib_str_eq(s[j]->phase_id, s[i]->phase_id))
			return true;
	return false;
}

/* Select the clean and the truncated samples. */
void calib_fitset_select(const struct telem_sample *const *s, size_t n, struct calib_fitset *fs)
{
	memset(fs, 0, sizeof *fs);
	fs->clean = xcalloc(n + 1, sizeof *fs->clean);
	fs->truncated = xcalloc(n + 1, sizeof *fs->truncated);
	fs->implausible = xcalloc(n + 1, sizeof *fs->implausible);
	for (size_t i = 0; i < n; i++) {
		bool dup = false;

		if ((s[i]->truncated ||
		        (s[i]->success &&
		            (s[i]->actual >= TELEM_CLEAN_MIN_ACTUAL ||
		                s[i]->unreadable_col != NULL))) &&
		    !telem_plausible(s[i])) {
			fs->implausible[fs->n_implausible++] = s[i];
			continue;
		}
		if (s[i]->truncated) {
			fs->truncated[fs->n_truncated++] = s[i];
			continue;
		}
		if (!telem_clean(s[i]))
			continue;
		if (calib_superseded(s, n, i)) {
			fs->n_repeats++;
			continue;
		}
		for (size_t k = 0; k < fs->n_clean && !dup; k++)
			dup = calib_duplicate(fs->clean[k], s[i]);
		if (dup)
			fs->n_duplicates++;
		else
			fs->clean[fs->n_clean++] = s[i];
	}
}

/* Free the arrays. */
void calib_fitset_free(struct calib_fitset *fs)
{
	free(fs->clean);
	free(fs->truncated);
	free(fs->implausible);
	memset(fs, 0, sizeof *fs);
}

/* Fit on the clean samples. */
int calib_fit(const struct telem_sample *const *clean, size_t n, double coverage, struct est_fit *f,
    char *err, size_t errlen)
{
	struct est_fit_obs *obs;
	int rc;

	if (n < EST_FIT_MIN_SAMPLES) {
		snprintf(err, errlen,
		    "%zu clean samples (one per attempt, duplicates dropped); the fit needs at "
		    "least %d",
		    n, EST_FIT_MIN_SAMPLES);
		memset(f, 0, sizeof *f);
		return -1;
	}
	obs = xcalloc(n, sizeof *obs);
	for (size_t i = 0; i < n; i++)
		obs[i] = (struct est_fit_obs){ clean[i]->category, clean[i]->complexity,
			clean[i]->deliverable_count, clean[i]->actual };
	rc = est_fit_train(obs, n, EST_FIT_LAMBDA, coverage, f, err, errlen);
	free(obs);
	return rc;
}

/* The estimate and the budget of a set for a sample. */
void calib_set_budget(
    const struct est_coefs *c, const struct telem_sample *s, int64_t *estimate, int64_t *budget)
{
	struct est_output est = { 0 };

	if (c->fit.active) {
		*estimate = est_fit_estimate(
		    &c->fit, s->category, s->complexity, s->deliverable_count);
		*budget = est_fit_budget(&c->fit, (int)*estimate, c->cap);
		return;
	}
	est.estimate = s->predicted > INT32_MAX ? INT32_MAX : (int)s->predicted;
	est_name_normalise(s->category, est.category, sizeof est.category);
	est.cplx = est_cplx_of(s->complexity);
	est.confidence = 1.0;
	est.deliverable_count = s->deliverable_count > INT32_MAX ? INT32_MAX :
	                                                           (int)s->deliverable_count;
	*estimate = s->predicted;
	*budget = est_max_tokens(c, &est, est_select_budget(c, &est), 0, 0);
}
