/* The outputs of `calibrate`: the Markdown report and the JSON proposal
 * (docs/calibration.md). */
#include "common/calib/calib.h"
#include "common/jsonload.h"
#include "common/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const calib_method_titles[CALIB_METHOD_COUNT] = {
	"leave-one-out",
	"k-fold",
	"leave-one-run-out",
};

/* Write a text another program may have written (a category, a complexity) as one cell
 * of a Markdown table: a line break is a space, and a '|' or a backslash is escaped, so
 * that it neither ends the cell nor starts a row of its own; '<', '>' and '&' are written
 * as entities, so that a viewer shows a tag in the name (<img onerror=…>) as text rather
 * than as HTML; every other control character (ESC, DEL, U+0080 to U+009F) is written as
 * \xNN, so that the report shown in a terminal (cat) shows it rather than obeying it. */
static void calib_md_text(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\r')
			fputc(' ', f);
		else if (*p == '|' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '<')
			fputs("&lt;", f);
		else if (*p == '>')
			fputs("&gt;", f);
		else if (*p == '&')
			fputs("&amp;", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02X", *p);
		else if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
			fprintf(f, "\\xC2\\x%02X", *++p);
		else
			fputc(*p, f);
	}
}

/* Write the fitted model's weights. */
static void calib_md_fit(FILE *f, const struct est_fit *fit, double cap)
{
	static const char *const cplx[EST_CPLX_COUNT] = { "low", "medium", "high" };

	fprintf(f,
	    "## Proposal: fitted model\n\n"
	    "ln(estimate) = intercept + w(category) + w(complexity) + w_d × ln(1 + deliverables), "
	    "ridge regression with λ = %g on %zu samples (an unseen category adds nothing). "
	    "Budget = min(%.0f, ⌈estimate × F⌉) with the conformal factor **F = %.3f** "
	    "(coverage τ = %.2f of the leave-one-out residuals); no floors.\n\n"
	    "| term | weight |\n|---|---|\n| intercept | %.4f |\n| ln(1 + deliverables) | %.4f "
	    "|\n",
	    fit->lambda, fit->n_samples, cap, fit->factor, fit->coverage, fit->intercept,
	    fit->w_deliverables);
	for (int k = 0; k < EST_CPLX_COUNT; k++)
		fprintf(f, "| complexity %s | %.4f |\n", cplx[k], fit->w_cplx[k]);
	for (size_t k = 0; k < fit->n_cats; k++) {
		fputs("| category ", f);
		calib_md_text(f, fit->cats[k]);
		fprintf(f, " | %.4f |\n", fit->w_cat[k]);
	}
	fputc('\n', f);
}

/* Write one evaluation row. */
static void calib_md_score(FILE *f, const char *set, const struct calib_score *s)
{
	fprintf(f, "| %s | %.1f %% | %.1f %% | %.1f %% | %.2fx | %.2fx | %zu |\n", set,
	    s->smape_median, s->smape_mean, s->truncation_rate * 100.0, s->waste_p50, s->waste_p90,
	    s->n);
}

/* Write the held-out evaluation. */
static void calib_md_eval(FILE *f, const struct calib_eval *e, const struct calib_eval_opts *o)
{
	fprintf(f,
	    "## Held-out evaluation\n\n"
	    "The proposal is refitted on each training part and scored on the samples it did "
	    "not see; the active set is scored as it is. SMAPE is of the estimate; a "
	    "truncation is an actual output above the budget (a recorded truncated call counts "
	    "when the budget is at or below its recorded output); waste is budget ÷ actual. "
	    "k-fold: %d folds × %d repeats with fixed seeds.\n\n"
	    "| method | set | SMAPE median | SMAPE mean | truncation | waste p50 | waste p90 | n "
	    "|\n|---|---|---|---|---|---|---|---|\n",
	    o->folds, o->repeats);
	for (int m = 0; m < CALIB_METHOD_COUNT; m++) {
		if (!e->proposed[m].available) {
			fprintf(f, "| %s | – | not run: %s | | | | | |\n", calib_method_titles[m],
			    e->why[m]);
			continue;
		}
		fprintf(f, "| %s ", calib_method_titles[m]);
		calib_md_score(f, "active", &e->current[m]);
		fprintf(f, "| %s ", calib_method_titles[m]);
		calib_md_score(f, "proposed", &e->proposed[m]);
	}
	fputc('\n', f);
}

/* Write the group table of the active set and the groups short of samples. */
static void calib_md_groups(FILE *f, const struct calib_result *r)
{
	bool short_any = false;

	fprintf(f,
	    "## The active set by group\n\nEvery group with at least %d samples: actual ÷ "
	    "predicted of the active set (median = sorted[n/2]), confidence = 0.6 × min(1, "
	    "n/12) + 0.4 / (1 + σ), and the recorded max_tokens (else selected budget) ÷ "
	    "actual.\n\n| Category | Complexity | Samples | Avg actual | Avg predicted | Median "
	    "actual ÷ predicted | Confidence | Median max_tokens ÷ actual | p90 max_tokens ÷ "
	    "actual |\n|---|---|---|---|---|---|---|---|---|\n",
	    r->opts.min_samples);
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		if (g->status == CALIB_BELOW_MIN)
			continue;
		fputs("| ", f);
		calib_md_text(f, g->category);
		fputs(" | ", f);
		calib_md_text(f, g->complexity);
		fprintf(f, " | %zu | %.0f | %.0f | %.2fx | %.1f%% | %.2fx | %.2fx |\n", g->n,
		    g->avg_actual, g->avg_estimated, g->median_ratio, g->confidence * 100,
		    g->waste_median, g->waste_p90);
	}
	fprintf(f, "\n## Groups short of samples\n\n");
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		if (g->status != CALIB_BELOW_MIN)
			continue;
		fputs("- ", f);
		calib_md_text(f, g->category);
		fputc('/', f);
		calib_md_text(f, g->complexity);
		fprintf(f, ": %zu of %d\n", g->n, r->opts.min_samples);
		short_any = true;
	}
	if (!short_any)
		fprintf(f, "None.\n");
	fputc('\n', f);
}

/* Describe the active set. */
static void calib_md_current(FILE *f, const struct est_coefs *c)
{
	fprintf(f, "- Active coefficient set: version %llu, ", (unsigned long long)c->version);
	if (c->fit.active)
		fprintf(f, "fitted model (F = %.3f, τ = %.2f, %zu samples)\n", c->fit.factor,
		    c->fit.coverage, c->fit.n_samples);
	else
		fprintf(f, "overhead + marginal model%s\n",
		    c->version == 1 ? " (built-in defaults)" : "");
}

/* Name one excluded event. */
char *calib_implausible_text(const struct telem_sample *s)
{
	int64_t v = 0;
	const char *col = telem_implausible_count(s, &v);

	if (s->unreadable_col != NULL)
		return xasprintf("run %s, phase %s, at %s: %s '%s' (not an integer)",
		    s->run_id ? s->run_id : "-", s->phase_id ? s->phase_id : "-",
		    s->timestamp ? s->timestamp : "-", col, s->unreadable_text);
	return xasprintf("run %s, phase %s, at %s: %s %lld", s->run_id ? s->run_id : "-",
	    s->phase_id ? s->phase_id : "-", s->timestamp ? s->timestamp : "-", col ? col : "-",
	    (long long)v);
}

/* The excluded events, each with the count that excluded it. */
json_t *calib_json_implausible(const struct telem_sample *const *events, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		const struct telem_sample *s = events[i];
		int64_t v = 0;
		const char *col = telem_implausible_count(s, &v);

		json_array_append_new(a,
		    json_pack("{s:s?, s:s?, s:s?, s:s?, s:o, s:s?}", "run_id", s->run_id,
		        "phase_id", s->phase_id, "timestamp", s->timestamp, "column", col, "value",
		        s->unreadable_col != NULL ? json_null() : json_integer((json_int_t)v),
		        "text", s->unreadable_text));
	}
	return a;
}

/* Write the excluded events' lines of the summary. */
static void calib_md_implausible(FILE *f, const struct calib_fitset *fs)
{
	if (fs->n_implausible == 0)
		return;
	fprintf(f,
	    "- Excluded: %zu events recording a count no call can (a token or deliverable "
	    "count that is not an integer, below 0 or above %d, written by another program):\n",
	    fs->n_implausible, TELEM_COUNT_MAX);
	for (size_t i = 0; i < fs->n_implausible && i < CALIB_IMPLAUSIBLE_NAMED; i++) {
		char *t = calib_implausible_text(fs->implausible[i]);

		fputs("  - ", f);
		calib_md_text(f, t); /* its run, phase and text are another program's */
		fputc('\n', f);
		free(t);
	}
	if (fs->n_implausible > CALIB_IMPLAUSIBLE_NAMED)
		fprintf(f, "  - and %zu more (all in the JSON proposal)\n",
		    fs->n_implausible - CALIB_IMPLAUSIBLE_NAMED);
}

/* Write the whole Markdown report. */
void calib_md_write(FILE *f, const struct calib_result *r, const struct calib_meta *m)
{
	const struct calib_fitset *fs = m->fs;

	fprintf(f, "# Token estimator calibration report\n\n");
	fprintf(f, "- Generated: %s\n- Database: `%s`\n- Runs: %s\n", m->generated_at, m->db_url,
	    m->runs);
	calib_md_current(f, m->current);
	fprintf(f,
	    "\n## Summary\n\n- Samples read: %zu\n- Clean samples used (success, not "
	    "truncated, actual ≥ %d; one per attempt; exact duplicates dropped): %zu\n"
	    "- Dropped: %zu exact duplicates, %zu earlier calls of the same attempt\n"
	    "- Recorded truncated calls (scored for truncation only): %zu\n",
	    m->n_read, TELEM_CLEAN_MIN_ACTUAL, fs->n_clean, fs->n_duplicates, fs->n_repeats,
	    fs->n_truncated);
	calib_md_implausible(f, fs);
	if (m->n_reexpressed > 0)
		fprintf(f,
		    "- %zu samples estimated with an older coefficient set were re-expressed "
		    "under the active set (marginal part recovered, overhead replaced)\n",
		    m->n_reexpressed);
	if (m->n_unknown_version > 0)
		fprintf(f,
		    "- %zu samples carry no known coefficient set (imported); the active set "
		    "is scored on their recorded predictions\n",
		    m->n_unknown_version);
	fputc('\n', f);
	calib_md_fit(f, m->proposal, m->current->cap);
	calib_md_eval(f, m->eval, m->eo);
	calib_md_groups(f, r);
	if (m->svg_name != NULL)
		fprintf(f,
		    "## Plot\n\nLeft: estimate against actual output tokens, log axes; hollow: "
		    "the active set's estimate, filled: the proposal's leave-one-out estimate. "
		    "Right: truncation rate against waste p90 as the budget factor goes from 1 to "
		    "8, each set's chosen budget marked.\n\n![calibration plot](%s)\n\n",
		    m->svg_name);
	fprintf(f,
	    "## Notes\n\n"
	    "- `autopack-ctl calibrate --apply` stores the proposal as a new coefficient set "
	    "(refused when its k-fold truncation or waste p90 is worse than the active set's, "
	    "unless `--force`); the supervisor sends the active set with every job from its "
	    "next start. `calibrate --rollback` returns to the previous set.\n"
	    "- A truncated call is retried once with max_tokens × 1.25.\n");
}

/* One method's score, or null when it did not run. */
static json_t *calib_json_score_or_null(const struct calib_score *s)
{
	return s->available ? calib_json_score(s) : json_null();
}

/* The evaluation object. */
json_t *calib_json_evaluation(const struct calib_eval *e)
{
	json_t *cur = json_object(), *prop = json_object();

	for (int m = 0; m < CALIB_METHOD_COUNT; m++) {
		json_object_set_new(
		    cur, calib_method_name(m), calib_json_score_or_null(&e->current[m]));
		json_object_set_new(
		    prop, calib_method_name(m), calib_json_score_or_null(&e->proposed[m]));
	}
	return json_pack("{s:o, s:o}", "current", cur, "proposed", prop);
}

/* The fitted model as JSON. */
json_t *calib_json_fit(const struct est_fit *f)
{
	char *text = est_fit_to_json(f);
	json_t *j = json_loads_bounded(text, 0, NULL);

	free(text);
	return j;
}

/* Every group with its figures. */
static json_t *calib_json_groups(const struct calib_result *r)
{
	json_t *a = json_array();

	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		json_array_append_new(a,
		    json_pack("{s:s, s:s, s:I, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
		              "s:f, s:f}",
		        "category", g->category, "complexity", g->complexity, "sample_count",
		        (json_int_t)g->n, "status", calib_status_name(g->status), "avg_actual",
		        g->avg_actual, "avg_predicted", g->avg_estimated, "avg_ratio", g->avg_ratio,
		        "median_ratio", g->median_ratio, "min_ratio", g->min_ratio, "max_ratio",
		        g->max_ratio, "stdev_ratio", g->stdev_ratio, "confidence", g->confidence,
		        "median_max_tokens_per_actual", g->waste_median,
		        "p90_max_tokens_per_actual", g->waste_p90, "avg_selected_budget",
		        g->avg_selected_budget));
	}
	return a;
}

/* The chosen points and curves of the evaluation. */
static json_t *calib_json_curves(const struct calib_eval *e)
{
	json_t *cur = json_array(), *prop = json_array();

	for (int k = 0; k < CALIB_CURVE_POINTS; k++) {
		json_array_append_new(cur,
		    json_pack("[f, f, f]", e->curve_current[k].factor,
		        e->curve_current[k].truncation_rate, e->curve_current[k].waste_p90));
		json_array_append_new(prop,
		    json_pack("[f, f, f]", e->curve_proposed[k].factor,
		        e->curve_proposed[k].truncation_rate, e->curve_proposed[k].waste_p90));
	}
	return json_pack("{s:s, s:o, s:o, s:{s:f, s:f}, s:{s:f, s:f, s:f}}", "points",
	    "[budget factor, truncation rate, waste p90] over the leave-one-out estimates",
	    "current", cur, "proposed", prop, "current_chosen", "truncation_rate",
	    e->chosen_current.truncation_rate, "waste_p90", e->chosen_current.waste_p90,
	    "proposed_chosen", "factor", e->chosen_proposed.factor, "truncation_rate",
	    e->chosen_proposed.truncation_rate, "waste_p90", e->chosen_proposed.waste_p90);
}

/* The whole JSON proposal. */
json_t *calib_json_proposal(const struct calib_result *r, const struct calib_meta *m)
{
	return json_pack("{s:{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, "
	                 "s:f, s:i, s:i}, s:o, s:o, s:o, s:o}",
	    "metadata", "generated_at", m->generated_at, "database", m->db_url, "runs", m->runs,
	    "current_version", (json_int_t)m->current->version, "samples_read",
	    (json_int_t)m->n_read, "samples_used", (json_int_t)m->fs->n_clean, "duplicates_dropped",
	    (json_int_t)m->fs->n_duplicates, "attempt_repeats_dropped",
	    (json_int_t)m->fs->n_repeats, "truncated_events", (json_int_t)m->fs->n_truncated,
	    "implausible_excluded", (json_int_t)m->fs->n_implausible, "implausible_events",
	    calib_json_implausible(m->fs->implausible, m->fs->n_implausible), "samples_reexpressed",
	    (json_int_t)m->n_reexpressed, "samples_unknown_version",
	    (json_int_t)m->n_unknown_version, "coverage", m->eo->coverage, "folds", m->eo->folds,
	    "repeats", m->eo->repeats, "model", calib_json_fit(m->proposal), "evaluation",
	    calib_json_evaluation(m->eval), "curves", calib_json_curves(m->eval), "groups",
	    calib_json_groups(r));
}
