/* calibrate --evaluate: held-out figures of the active set and of the proposal. */
#include "ctl/cmd-calibrate.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const cmd_calib_method_titles[CALIB_METHOD_COUNT] = {
	"leave-one-out",
	"k-fold",
	"leave-one-run-out",
};

/* Print one row of the table. */
static void cmd_calib_score_print(
    FILE *out, const char *method, const char *set, const struct calib_score *s)
{
	fprintf(out, "  %-18s %-9s %8.1f %% %8.1f %% %9.1f %% %8.2fx %8.2fx %6zu\n", method, set,
	    s->smape_median, s->smape_mean, s->truncation_rate * 100.0, s->waste_p50, s->waste_p90,
	    s->n);
}

/* Print the held-out evaluation. */
void cmd_calib_eval_print(FILE *out, const struct cmd_calib *c, const struct cmd_calib_data *d,
    const struct cmd_calib_result *res)
{
	const struct calib_eval *e = &res->eval;

	fprintf(out,
	    "\nHeld-out evaluation on %zu clean samples (%zu exact duplicates and %zu earlier "
	    "calls of the same attempt dropped) and %zu recorded truncated calls\n",
	    d->fs.n_clean, d->fs.n_duplicates, d->fs.n_repeats, d->fs.n_truncated);
	cmd_print_implausible(out, d->fs.implausible, d->fs.n_implausible);
	fprintf(out,
	    "active set: version %llu (%s); proposal: fitted model, F = %.3f at coverage %.2f\n"
	    "k-fold: %d folds x %d repeats, fixed seeds; truncation: actual > budget (a "
	    "recorded truncated call: budget <= its output); waste: budget / actual\n\n",
	    (unsigned long long)d->current.version,
	    d->current.fit.active ? "fitted model" : "overhead + marginal model", res->fit.factor,
	    c->eval.coverage, c->eval.folds, c->eval.repeats);
	fprintf(out, "  %-18s %-9s %10s %10s %11s %9s %9s %6s\n", "method", "set", "SMAPE med",
	    "SMAPE mean", "truncation", "waste p50", "waste p90", "n");
	for (int m = 0; m < CALIB_METHOD_COUNT; m++) {
		if (!e->proposed[m].available) {
			fprintf(
			    out, "  %-18s not run: %s\n", cmd_calib_method_titles[m], e->why[m]);
			continue;
		}
		cmd_calib_score_print(out, cmd_calib_method_titles[m], "active", &e->current[m]);
		cmd_calib_score_print(out, cmd_calib_method_titles[m], "proposed", &e->proposed[m]);
	}
}

/* Run the evaluation and report it. */
int cmd_calib_evaluate(struct cmd_ctx *ctx, const struct cmd_calib *c)
{
	struct cmd_calib_result res;
	struct cmd_calib_data d;
	struct store st;
	char *runs;
	int ret = cmd_open_read(ctx, &st, true);

	if (ret != 0)
		return ret;
	ret = cmd_calib_load(ctx, &st, c, &d);
	if (ret != 0) {
		store_close(&st);
		return ret;
	}
	runs = cmd_calib_runs_text(c);
	ret = cmd_calib_compute(ctx, c, &d, &res);
	if (ret == 0) {
		cmd_calib_eval_print(cmd_text_out(ctx), c, &d, &res);
		if (ctx->json)
			cmd_json_print(json_pack(
			    "{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:{s:f, s:i, s:i}, "
			    "s:I, s:o, s:o, s:o}",
			    "ok", 1, "runs", runs, "samples_read", (json_int_t)d.samples.n,
			    "samples_used", (json_int_t)d.fs.n_clean, "duplicates_dropped",
			    (json_int_t)d.fs.n_duplicates, "truncated_events",
			    (json_int_t)d.fs.n_truncated, "implausible_excluded",
			    (json_int_t)d.fs.n_implausible, "implausible_events",
			    calib_json_implausible(d.fs.implausible, d.fs.n_implausible), "options",
			    "coverage", c->eval.coverage, "folds", c->eval.folds, "repeats",
			    c->eval.repeats, "current_version", (json_int_t)d.current.version,
			    "proposed", calib_json_fit(&res.fit), "evaluation",
			    calib_json_evaluation(&res.eval), "database", cmd_identity_json(&st)));
	}
	cmd_calib_result_free(&res);
	free(runs);
	cmd_calib_data_free(&d);
	store_close(&st);
	return ret;
}
