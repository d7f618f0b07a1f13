/* The samples a fit uses (clean, one per attempt, no exact duplicates), the fit itself,
 * and the estimate and budget a coefficient set gives a recorded sample. */
#include "common/calib/calib.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

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

/* FNV-1a of a nullable string into h (NULL and "" differ). */
static uint64_t calib_hash_str(uint64_t h, const char *s)
{
	if (s == NULL)
		return (h ^ 0x1ffu) * 0x100000001b3ULL;
	for (;; s++) {
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
		if (*s == '\0')
			return h;
	}
}

/* FNV-1a of an integer's eight bytes into h. */
static uint64_t calib_hash_int(uint64_t h, int64_t v)
{
	for (int k = 0; k < 8; k++)
		h = (h ^ (((uint64_t)v >> (8 * k)) & 0xff)) * 0x100000001b3ULL;
	return h;
}

/* A hash of the fields calib_duplicate compares. */
static uint64_t calib_dup_hash(const struct telem_sample *a)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = calib_hash_str(h, a->run_id);
	h = calib_hash_str(h, a->phase_id);
	h = calib_hash_str(h, a->category);
	h = calib_hash_str(h, a->complexity);
	h = calib_hash_str(h, a->stop_reason);
	h = calib_hash_str(h, a->model);
	h = calib_hash_int(h, a->deliverable_count);
	h = calib_hash_int(h, a->predicted);
	h = calib_hash_int(h, a->actual);
	h = calib_hash_int(h, a->selected_budget);
	h = calib_hash_int(h, a->actual_max_tokens);
	h = calib_hash_int(h, a->estimator_version);
	return calib_hash_int(h, (int64_t)a->success << 1 | (int64_t)a->truncated);
}

/* A clean sample of a known attempt and where it stands among the samples. */
struct calib_attempt_ref {
	const struct telem_sample *s;
	size_t pos;
};

/* Order by attempt (id, run, phase), then by position, for qsort. */
static int calib_attempt_cmp(const void *a, const void *b)
{
	const struct calib_attempt_ref *x = a, *y = b;
	int c;

	if (x->s->attempt_id != y->s->attempt_id)
		return x->s->attempt_id < y->s->attempt_id ? -1 : 1;
	if ((c = strcmp(x->s->run_id ? x->s->run_id : "", y->s->run_id ? y->s->run_id : "")) != 0 ||
	    (c = (x->s->run_id == NULL) - (y->s->run_id == NULL)) != 0)
		return c;
	if ((c = strcmp(x->s->phase_id ? x->s->phase_id : "",
	         y->s->phase_id ? y->s->phase_id : "")) != 0 ||
	    (c = (x->s->phase_id == NULL) - (y->s->phase_id == NULL)) != 0)
		return c;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Mark in superseded[i] each sample that a later clean sample of the same known attempt
 * follows. */
static void calib_mark_superseded(const struct telem_sample *const *s, size_t n, bool *superseded)
{
	struct calib_attempt_ref *ref = xcalloc(n + 1, sizeof *ref);
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		if (s[i]->attempt_id > 0 && telem_clean(s[i]))
			ref[m++] = (struct calib_attempt_ref){ s[i], i };
	qsort(ref, m, sizeof *ref, calib_attempt_cmp);
	for (size_t k = 0; k + 1 < m; k++) {
		struct calib_attempt_ref next = ref[k + 1];

		next.pos = ref[k].pos;
		superseded[ref[k].pos] = calib_attempt_cmp(&ref[k], &next) == 0;
	}
	free(ref);
}

/* Select the clean and the truncated samples: the repeats of an attempt found by
 * sorting, the exact duplicates by a hash table of the samples kept. */
void calib_fitset_select(const struct telem_sample *const *s, size_t n, struct calib_fitset *fs)
{
	bool *superseded = xcalloc(n + 1, sizeof *superseded);
	size_t mask = 1;
	ssize_t *slot;

	while (mask < 2 * n + 1)
		mask <<= 1;
	slot = xmalloc(mask * sizeof *slot);
	memset(slot, 0xff, mask * sizeof *slot); /* -1: empty */
	mask--;
	memset(fs, 0, sizeof *fs);
	fs->clean = xcalloc(n + 1, sizeof *fs->clean);
	fs->truncated = xcalloc(n + 1, sizeof *fs->truncated);
	fs->implausible = xcalloc(n + 1, sizeof *fs->implausible);
	calib_mark_superseded(s, n, superseded);
	for (size_t i = 0; i < n; i++) {
		size_t h;

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
		if (superseded[i]) {
			fs->n_repeats++;
			continue;
		}
		for (h = calib_dup_hash(s[i]) & mask;
		     slot[h] >= 0 && !calib_duplicate(fs->clean[slot[h]], s[i]); h = (h + 1) & mask)
			;
		if (slot[h] >= 0) {
			fs->n_duplicates++;
			continue;
		}
		slot[h] = (ssize_t)fs->n_clean;
		fs->clean[fs->n_clean++] = s[i];
	}
	free(slot);
	free(superseded);
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
