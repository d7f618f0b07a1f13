/* Leave-one-out evaluation: every clean sample is predicted by a proposal fitted on
 * the other samples, so the figures come from samples the proposal did not see. */
#include "common/calib/calib.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Calibrate on all samples but `out` and predict that one; -1 with err on failure. */
static int calib_eval_one(const struct telem_sample *const *clean, size_t n, size_t out,
    const struct calib_opts *o, const struct est_coefs *current, const struct calib_coef_sets *sets,
    const struct telem_sample **train, struct calib_eval *e, char *err, size_t errlen)
{
	const struct telem_sample *s = clean[out];
	struct calib_result r;
	struct est_coefs *proposed = xmalloc(sizeof *proposed);
	enum calib_pred_how how;
	size_t k = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (i != out)
			train[k++] = clean[i];
	calib_compute(train, k, o, &r);
	rc = calib_propose(&r, current, proposed, err, errlen);
	if (rc == 0) {
		e->after_pred[out] = calib_predict(
		    &r, s, proposed, calib_coef_sets_find(sets, s->estimator_version), &how);
		e->n_folds_empty += r.n_proposed == 0;
		if (e->after_pred[out] != s->predicted) {
			e->n_changed++;
			e->n_overhead += how == CALIB_PRED_OVERHEAD;
			e->n_scaled += how == CALIB_PRED_SCALED;
		}
	}
	calib_result_free(&r);
	free(proposed);
	return rc;
}

/* Run every fold, then score the recorded and the held-out predictions. */
int calib_evaluate(const struct telem_sample *const *clean, size_t n, const struct calib_opts *o,
    const struct est_coefs *current, const struct calib_coef_sets *sets, struct calib_eval *e,
    char *err, size_t errlen)
{
	const struct telem_sample **train = xcalloc(n + 1, sizeof *train);
	struct telem_sample *moved = xcalloc(n + 1, sizeof *moved);
	const struct telem_sample **rows = xcalloc(n + 1, sizeof *rows);
	int rc = 0;

	memset(e, 0, sizeof *e);
	e->n = n;
	e->after_pred = xcalloc(n + 1, sizeof *e->after_pred);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = calib_eval_one(clean, n, i, o, current, sets, train, e, err, errlen);
	if (rc == 0) {
		telem_metrics_compute(clean, n, 1.0, &e->before);
		for (size_t i = 0; i < n; i++) {
			moved[i] = *clean[i];
			moved[i].predicted = e->after_pred[i];
			rows[i] = &moved[i];
		}
		telem_metrics_compute(rows, n, 1.0, &e->after);
	} else {
		calib_eval_free(e);
	}
	free(train);
	free(moved);
	free(rows);
	return rc;
}

/* Free the per-sample predictions. */
void calib_eval_free(struct calib_eval *e)
{
	free(e->after_pred);
	memset(e, 0, sizeof *e);
}
