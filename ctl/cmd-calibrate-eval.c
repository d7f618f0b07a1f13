/* calibrate --evaluate: leave-one-out figures before and after calibration. */
#include "ctl/cmd-calibrate.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>

/* Explain how held-out predictions were made. */
static const char *cmd_calib_eval_method(const struct cmd_calib_data *d)
{
	if (d->n_unknown_version == 0)
		return "every sample carries the coefficient set it was estimated with, so its "
		       "marginal part was recovered and only its overhead replaced";
	if (d->n_unknown_version == d->n_clean)
		return "no sample carries a known coefficient set (imported samples), so the "
		       "split into overhead and marginal cannot be recovered from the stored rows: "
		       "each moved prediction is the whole recorded prediction scaled by its "
		       "group's factor (the multiplier after --damping)";
	return "samples with a known coefficient set had their overhead part replaced; for "
	       "the others (imported, set unknown) the whole recorded prediction was scaled by "
	       "the group's factor (the multiplier after --damping)";
}

/* Print the before/after table. */
static void cmd_calib_eval_print(FILE *out, const struct cmd_calib *c,
    const struct cmd_calib_data *d, const struct calib_eval *e, const char *runs)
{
	const struct telem_metrics *b = &e->before, *a = &e->after;

	fprintf(out, "\nLeave-one-out evaluation on %zu clean samples (%s)\n", e->n, runs);
	fprintf(out,
	    "each sample predicted by a proposal fitted on the other %zu "
	    "(min samples %d, confidence threshold %.2f, damping %s, on top of set %llu)\n",
	    e->n - 1, c->opts.min_samples, c->opts.confidence_threshold,
	    calib_damping_name(c->opts.damping), (unsigned long long)d->current.version);
	fprintf(out, "folds that proposed no change: %zu of %zu\n", e->n_folds_empty, e->n);
	fprintf(out,
	    "held-out predictions moved: %zu (%zu by replacing the overhead part, "
	    "%zu by scaling the whole prediction)\n",
	    e->n_changed, e->n_overhead, e->n_scaled);
	fprintf(out, "method: %s\n\n", cmd_calib_eval_method(d));
	fprintf(out, "  %-38s %10s %10s\n", "metric", "before", "after");
	fprintf(out, "  %-38s %8.1f %% %8.1f %%\n", "SMAPE mean", b->smape_mean, a->smape_mean);
	fprintf(
	    out, "  %-38s %8.1f %% %8.1f %%\n", "SMAPE median", b->smape_median, a->smape_median);
	fprintf(out, "  %-38s %9.2fx %9.2fx\n", "waste mean (predicted / actual)", b->waste_mean,
	    a->waste_mean);
	fprintf(out, "  %-38s %9.2fx %9.2fx\n", "waste median", b->waste_median, a->waste_median);
	fprintf(out, "  %-38s %9.2fx %9.2fx\n", "waste p90", b->waste_p90, a->waste_p90);
	fprintf(out, "  %-38s %8.1f %% %8.1f %%\n", "underestimation (actual > predicted)",
	    b->under_pct, a->under_pct);
}

/* Run the evaluation and report it. */
int cmd_calib_evaluate(struct cmd_ctx *ctx, const struct cmd_calib *c)
{
	struct cmd_calib_data d;
	struct calib_eval e;
	struct store st;
	char msg[256], *runs;
	int ret = cmd_open_read(ctx, &st, true);

	if (ret != 0)
		return ret;
	ret = cmd_calib_load(ctx, &st, c, &d);
	if (ret != 0) {
		store_close(&st);
		return ret;
	}
	runs = cmd_calib_runs_text(c);
	if (calib_evaluate(
	        d.clean, d.n_clean, &c->opts, &d.current, &d.sets, &e, msg, sizeof msg) != 0) {
		ret = cmd_fail(ctx, STORE_EINVAL, "evaluation failed: %s", msg);
	} else {
		cmd_calib_eval_print(cmd_text_out(ctx), c, &d, &e, runs);
		if (ctx->json)
			cmd_json_print(json_pack("{s:b, s:s, s:I, s:s, s:{s:i, s:f, s:s}, s:I, "
			                         "s:I, s:I, s:I, s:I, s:s, s:o, s:o, s:o}",
			    "ok", 1, "method", "leave-one-out", "samples", (json_int_t)e.n, "runs",
			    runs, "options", "min_samples", c->opts.min_samples,
			    "confidence_threshold", c->opts.confidence_threshold, "damping",
			    calib_damping_name(c->opts.damping), "based_on_version",
			    (json_int_t)d.current.version, "folds_without_change",
			    (json_int_t)e.n_folds_empty, "moved", (json_int_t)e.n_changed,
			    "moved_by_overhead", (json_int_t)e.n_overhead, "moved_by_scaling",
			    (json_int_t)e.n_scaled, "prediction_method", cmd_calib_eval_method(&d),
			    "before", calib_json_metrics(&e.before), "after",
			    calib_json_metrics(&e.after), "database", cmd_identity_json(&st)));
		calib_eval_free(&e);
	}
	free(runs);
	cmd_calib_data_free(&d);
	store_close(&st);
	return ret;
}
