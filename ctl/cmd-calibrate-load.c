/* What every calibration reads (the active coefficient set, the samples, and the sets
 * the samples were estimated with) and what it computes from them. */
#include "ctl/cmd-calibrate.h"
#include "common/store/store_coef.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Load the active set into d->current (the defaults when none is active). */
static int cmd_calib_load_current(
    const struct cmd_ctx *ctx, struct store *st, struct cmd_calib_data *d)
{
	struct store_coef_set set;
	struct store_err err;
	char msg[256];
	bool found;
	int rc = store_coef_active(st, &set, &found, &err);

	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	est_coefs_default(&d->current);
	if (found &&
	    calib_coefs_from_json(set.overhead_json, set.model_json, (uint64_t)set.version,
	        &d->current, msg, sizeof msg) != 0)
		rc = cmd_fail(ctx, STORE_EINVAL, "%s: the active coefficient set is unusable: %s",
		    st->url, msg);
	store_coef_set_free(&set);
	return rc;
}

/* Add the set of `version` to the catalogue if the database has it; false if not. */
static bool cmd_calib_load_set(struct store *st, int64_t version, struct calib_coef_sets *cs)
{
	struct est_coefs *c = xmalloc(sizeof *c);
	struct store_coef_set set;
	struct store_err err;
	char msg[256];
	bool found = false;

	if (version == STORE_COEF_BUILTIN) {
		est_coefs_default(c);
		found = true;
	} else if (store_coef_get(st, version, &set, &found, &err) == 0 && found) {
		found = calib_coefs_from_json(set.overhead_json, set.model_json, (uint64_t)version,
		            c, msg, sizeof msg) == 0;
		store_coef_set_free(&set);
	}
	if (found)
		calib_coef_sets_add(cs, c);
	free(c);
	return found;
}

/* Move a sample's prediction onto the active set when the set it was estimated with is
 * known and differs; count samples whose set is unknown. */
static void cmd_calib_reexpress(struct store *st, struct cmd_calib_data *d, struct telem_sample *s)
{
	const struct est_coefs *at;
	int64_t v = s->estimator_version;
	bool moved;

	if (v <= 0 ||
	    (calib_coef_sets_find(&d->sets, v) == NULL && !cmd_calib_load_set(st, v, &d->sets))) {
		d->n_unknown_version++;
		return;
	}
	if ((uint64_t)v == d->current.version)
		return;
	at = calib_coef_sets_find(&d->sets, v);
	s->predicted = calib_reexpress(s, at, &d->current, &moved);
	if (moved) {
		s->estimator_version = (int64_t)d->current.version;
		d->n_reexpressed++;
	}
}

/* Read everything a calibration needs. */
int cmd_calib_load(const struct cmd_ctx *ctx, struct store *st, const struct cmd_calib *c,
    struct cmd_calib_data *d)
{
	struct store_err err;
	int rc;

	memset(d, 0, sizeof *d);
	rc = cmd_calib_load_current(ctx, st, d);
	if (rc != 0)
		return rc;
	rc = store_telemetry_read(st, &c->filter, &d->samples, &err);
	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	d->work = xcalloc(d->samples.n + 1, sizeof *d->work);
	d->ptrs = xcalloc(d->samples.n + 1, sizeof *d->ptrs);
	calib_coef_sets_add(&d->sets, &d->current);
	for (size_t i = 0; i < d->samples.n; i++) {
		d->work[i] = d->samples.v[i];
		d->ptrs[i] = &d->work[i];
		if ((telem_clean(&d->work[i]) || d->work[i].truncated) &&
		    telem_plausible(&d->work[i]))
			cmd_calib_reexpress(st, d, &d->work[i]);
	}
	calib_fitset_select(d->ptrs, d->samples.n, &d->fs);
	if (d->fs.n_clean == 0) {
		rc = cmd_fail(ctx, STORE_EINVAL,
		    "no clean samples (success, not truncated, "
		    "actual >= %d) among the %zu token_estimation_v2 events of %s%s; nothing to "
		    "calibrate on",
		    TELEM_CLEAN_MIN_ACTUAL, d->samples.n, st->url,
		    c->filter.n_run_ids > 0 ? " for the given --run-id" : "");
		cmd_calib_data_free(d);
		return rc;
	}
	return 0;
}

/* Free the loaded data. */
void cmd_calib_data_free(struct cmd_calib_data *d)
{
	telem_samples_free(&d->samples);
	free(d->work);
	free(d->ptrs);
	calib_fitset_free(&d->fs);
	calib_coef_sets_free(&d->sets);
	memset(d, 0, sizeof *d);
}

/* Describe the run filter, each --run-id as a terminal may show it (cmd_shown): UTF-8
 * whatever bytes the argument held, so that the report, the proposal and the JSON
 * result can always quote it. */
char *cmd_calib_runs_text(const struct cmd_calib *c)
{
	char *s = xstrdup(c->filter.n_run_ids == 0 ? "all runs" : "");

	for (size_t i = 0; i < c->filter.n_run_ids; i++) {
		char *t = xasprintf(
		    "%s%s%s", s, i > 0 ? ", " : "", cmd_shown(c->filter.run_ids[i]));

		free(s);
		s = t;
	}
	return s;
}

/* Fit, evaluate and group. */
int cmd_calib_compute(const struct cmd_ctx *ctx, const struct cmd_calib *c,
    const struct cmd_calib_data *d, struct cmd_calib_result *res)
{
	char msg[256];

	memset(res, 0, sizeof *res);
	if (calib_fit(d->fs.clean, d->fs.n_clean, c->eval.coverage, &res->fit, msg, sizeof msg) !=
	    0)
		return cmd_fail(ctx, STORE_EINVAL, "cannot fit the estimator: %s", msg);
	if (calib_evaluate(&d->fs, &d->current, &res->fit, &c->eval, &res->eval, msg, sizeof msg) !=
	    0)
		return cmd_fail(ctx, STORE_EINVAL, "evaluation failed: %s", msg);
	calib_compute(d->fs.clean, d->fs.n_clean, &c->opts, &res->groups);
	return 0;
}

/* Free a computed calibration. */
void cmd_calib_result_free(struct cmd_calib_result *res)
{
	calib_eval_free(&res->eval);
	calib_result_free(&res->groups);
}
