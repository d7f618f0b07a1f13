/* The outputs of `calibrate`: the Markdown report and the JSON proposal (docs/telemetry.md). */
#include "common/calib/calib.h"
#include "common/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Round to three decimals, as the original's JSON does. */
static double calib_r3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

/* Write the recommended action for a group's median ratio. */
static void calib_md_action(FILE *f, const struct calib_group *g)
{
	if (g->median_ratio > 1.2)
		fprintf(f, "- **Action**: increase by %.0f%%\n", (g->multiplier - 1.0) * 100.0);
	else if (g->median_ratio < 0.8)
		fprintf(f, "- **Action**: decrease by %.0f%%\n", (1.0 - g->multiplier) * 100.0);
	else
		fprintf(f, "- **Action**: none needed (within ±20%%)\n");
}

/* Write one high-confidence group's recommendation. */
static void calib_md_recommendation(FILE *f, const struct calib_group *g, enum calib_damping d)
{
	fprintf(f, "### %s / %s\n\n", g->category, g->complexity);
	fprintf(f, "- **Samples**: %zu\n- **Confidence**: %.1f%%\n", g->n, g->confidence * 100);
	fprintf(f, "- **Current avg estimate**: %.0f tokens\n- **Actual avg**: %.0f tokens\n",
	    g->avg_estimated, g->avg_actual);
	fprintf(f, "- **Median ratio** (actual/estimated): %.2fx\n", g->median_ratio);
	fprintf(f, "- **Proposed multiplier**: %.2fx\n", g->multiplier);
	calib_md_action(f, g);
	if (g->status == CALIB_PROPOSED)
		fprintf(f, "- **Overhead row %s/%s**: %d → %d (%s damping: × %.3f)\n",
		    g->row_category, g->row_complexity, g->old_overhead, g->new_overhead,
		    calib_damping_name(d), g->factor);
	else
		fprintf(f, "- **Not applied**: %s\n",
		    g->status == CALIB_NOT_OVERHEAD ?
		        "this category is estimated by a documentation model, not an overhead row" :
		        "another group with more samples sets the same overhead row");
	fputc('\n', f);
}

/* Whether a group reached the confidence threshold (proposed or not). */
static bool calib_high_conf(const struct calib_group *g)
{
	return g->status == CALIB_PROPOSED || g->status == CALIB_NOT_OVERHEAD ||
	    g->status == CALIB_SHARED_ROW;
}

/* Write the high-confidence groups' recommendations, most confident first. */
static void calib_md_recommendations(FILE *f, const struct calib_result *r)
{
	const struct calib_group **hc = xcalloc(r->n_groups + 1, sizeof *hc);
	size_t k = 0;

	if (r->n_high_confidence == 0)
		fprintf(f,
		    "No group met the confidence threshold. Collect more samples or "
		    "lower --confidence-threshold.\n\n");
	for (size_t i = 0; i < r->n_groups; i++)
		if (calib_high_conf(&r->groups[i]))
			hc[k++] = &r->groups[i];
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && hc[j - 1]->confidence < hc[j]->confidence; j--) {
			const struct calib_group *t = hc[j];

			hc[j] = hc[j - 1];
			hc[j - 1] = t;
		}
	for (size_t i = 0; i < k; i++)
		calib_md_recommendation(f, hc[i], r->opts.damping);
	free(hc);
}

/* Write the before/after table of the in-sample effect. */
static void calib_md_effect(FILE *f, const struct telem_metrics *b, const struct telem_metrics *a)
{
	fprintf(f,
	    "## Effect on these samples (in-sample)\n\n"
	    "Fitted and scored on the same %zu samples, so this flatters the proposal; "
	    "`autopack-ctl calibrate --evaluate` reports leave-one-out figures on samples each "
	    "fold did not see. Waste here is predicted ÷ actual.\n\n"
	    "| metric | before | after |\n|---|---|---|\n",
	    b->n);
	fprintf(f, "| SMAPE mean | %.1f %% | %.1f %% |\n", b->smape_mean, a->smape_mean);
	fprintf(f, "| SMAPE median | %.1f %% | %.1f %% |\n", b->smape_median, a->smape_median);
	fprintf(f, "| waste mean | %.2fx | %.2fx |\n", b->waste_mean, a->waste_mean);
	fprintf(f, "| waste median | %.2fx | %.2fx |\n", b->waste_median, a->waste_median);
	fprintf(f, "| waste p90 | %.2fx | %.2fx |\n", b->waste_p90, a->waste_p90);
	fprintf(f, "| underestimation | %.1f %% | %.1f %% |\n\n", b->under_pct, a->under_pct);
}

/* Write the detailed, cost and short-of-samples sections. */
static void calib_md_tables(FILE *f, const struct calib_result *r)
{
	bool short_any = false;

	fprintf(f,
	    "## Detailed results\n\nEvery group with at least %d samples, "
	    "low-confidence ones included:\n\n| Category | Complexity | Samples | Avg actual | "
	    "Avg est | Median ratio | Confidence | Proposed mult | Status |\n"
	    "|---|---|---|---|---|---|---|---|---|\n",
	    r->opts.min_samples);
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		if (g->status == CALIB_BELOW_MIN)
			continue;
		fprintf(f, "| %s | %s | %zu | %.0f | %.0f | %.2fx | %.1f%% | %.2fx | %s |\n",
		    g->category, g->complexity, g->n, g->avg_actual, g->avg_estimated,
		    g->median_ratio, g->confidence * 100, g->multiplier,
		    calib_status_name(g->status));
	}
	fprintf(f,
	    "\n## Cost\n\nBudget waste = (actual_max_tokens, else selected_budget) ÷ "
	    "actual; median = sorted[n/2], p90 = sorted[int(0.9 n)].\n\n"
	    "| group | median waste | p90 waste | avg budget | avg actual |\n"
	    "|---|---|---|---|---|\n");
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		if (g->status != CALIB_BELOW_MIN)
			fprintf(f, "| %s/%s | %.2fx | %.2fx | %.0f | %.0f |\n", g->category,
			    g->complexity, g->waste_median, g->waste_p90, g->avg_selected_budget,
			    g->avg_actual);
	}
	fprintf(f, "\n## Groups short of samples\n\n");
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		if (g->status != CALIB_BELOW_MIN)
			continue;
		fprintf(f, "- %s/%s: %zu of %d (%zu more needed)\n", g->category, g->complexity,
		    g->n, r->opts.min_samples, (size_t)r->opts.min_samples - g->n);
		short_any = true;
	}
	if (!short_any)
		fprintf(f, "None.\n");
	fputc('\n', f);
}

/* Write the whole Markdown report. */
void calib_md_write(FILE *f, const struct calib_result *r, const struct calib_meta *m)
{
	fprintf(f, "# Token estimator calibration report\n\n");
	fprintf(f, "- Generated: %s\n- Database: `%s`\n- Runs: %s\n", m->generated_at, m->db_url,
	    m->runs);
	fprintf(f, "- Active coefficient set: version %llu%s\n",
	    (unsigned long long)m->current_version,
	    m->current_version == 1 ? " (built-in defaults)" : "");
	fprintf(f, "- Options: min samples %d, confidence threshold %.0f%%, damping %s\n\n",
	    r->opts.min_samples, r->opts.confidence_threshold * 100,
	    calib_damping_name(r->opts.damping));
	fprintf(f,
	    "## Summary\n\n- Total samples analysed: %zu clean (success, not "
	    "truncated, actual ≥ %d) of %zu read\n",
	    r->n_clean, TELEM_CLEAN_MIN_ACTUAL, m->n_read);
	fprintf(f, "- Groups: %zu (%zu with at least %d samples)\n", r->n_groups, r->n_eligible,
	    r->opts.min_samples);
	fprintf(f,
	    "- High-confidence groups (≥ %.0f%%): %zu\n- Overhead rows changed by the "
	    "proposal: %zu\n",
	    r->opts.confidence_threshold * 100, r->n_high_confidence, r->n_proposed);
	if (m->n_reexpressed > 0)
		fprintf(f,
		    "- %zu samples estimated with an older coefficient set were "
		    "re-expressed under the active set (marginal part recovered, overhead "
		    "replaced), so every ratio is measured against what the active set predicts\n",
		    m->n_reexpressed);
	if (m->n_unknown_version > 0)
		fprintf(f,
		    "- %zu samples carry no known coefficient set (imported); their "
		    "recorded predictions are used as they are, so applying a proposal twice on "
		    "the same samples compounds\n",
		    m->n_unknown_version);
	if (r->n_clean > 0 && r->n_with_max_tokens * 5 < r->n_clean * 4)
		fprintf(f,
		    "- Warning: only %zu of %zu samples carry actual_max_tokens; their "
		    "budget waste uses selected_budget\n",
		    r->n_with_max_tokens, r->n_clean);
	fprintf(f, "\n## Recommendations\n\n");
	calib_md_recommendations(f, r);
	calib_md_tables(f, r);
	if (m->in_before != NULL && m->in_after != NULL)
		calib_md_effect(f, m->in_before, m->in_after);
	if (m->svg_name != NULL)
		fprintf(f,
		    "## Plot\n\nPredicted against actual output tokens, log axes; hollow: "
		    "recorded prediction, filled: under the proposal.\n\n![predicted vs actual "
		    "output tokens](%s)\n\n",
		    m->svg_name);
	fprintf(f,
	    "## Notes\n\n"
	    "- Median ratio > 1: underestimating (raise the overhead); < 1: overestimating.\n"
	    "- Confidence = 0.6 × min(1, n/12) + 0.4 / (1 + σ of the ratios).\n"
	    "- The multiplier applies to the group's overhead row only (damped: %s); the "
	    "per-deliverable marginal costs are unchanged.\n"
	    "- `autopack-ctl calibrate --apply` stores the proposal as a new coefficient set "
	    "that the supervisor sends with every job; `calibrate --rollback` returns to the "
	    "previous set.\n",
	    calib_damping_name(r->opts.damping));
}

/* A metrics object for the JSON outputs. */
json_t *calib_json_metrics(const struct telem_metrics *m)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "samples", (json_int_t)m->n,
	    "smape_mean_pct", m->smape_mean, "smape_median_pct", m->smape_median, "waste_mean",
	    m->waste_mean, "waste_median", m->waste_median, "waste_p90", m->waste_p90,
	    "underestimation_pct", m->under_pct);
}

/* One high-confidence group as a proposed change. */
static json_t *calib_json_change(const struct calib_group *g, enum calib_damping d)
{
	char reasoning[128];
	json_t *c;

	snprintf(reasoning, sizeof reasoning, "Actual tokens are %.2fx estimated (median)",
	    g->median_ratio);
	c = json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:s, s:s, s:s}", "category", g->category,
	    "complexity", g->complexity, "sample_count", (json_int_t)g->n, "confidence",
	    calib_r3(g->confidence), "median_ratio", calib_r3(g->median_ratio),
	    "proposed_multiplier", calib_r3(g->multiplier), "action",
	    "multiply PHASE_OVERHEAD[(category, complexity)] by proposed_multiplier", "reasoning",
	    reasoning, "status", calib_status_name(g->status));
	if (g->status == CALIB_PROPOSED)
		json_object_update_new(c,
		    json_pack("{s:[s, s], s:s, s:f, s:i, s:i}", "overhead_row", g->row_category,
		        g->row_complexity, "damping", calib_damping_name(d), "applied_factor",
		        calib_r3(g->factor), "old_overhead", g->old_overhead, "new_overhead",
		        g->new_overhead));
	return c;
}

/* The high-confidence groups as changes. */
json_t *calib_json_changes(const struct calib_result *r)
{
	json_t *a = json_array();

	for (size_t i = 0; i < r->n_groups; i++)
		if (calib_high_conf(&r->groups[i]))
			json_array_append_new(a, calib_json_change(&r->groups[i], r->opts.damping));
	return a;
}

/* Every group with its figures. */
static json_t *calib_json_groups(const struct calib_result *r)
{
	json_t *a = json_array();

	for (size_t i = 0; i < r->n_groups; i++) {
		const struct calib_group *g = &r->groups[i];

		json_array_append_new(a,
		    json_pack("{s:s, s:s, s:I, s:s, s:f, s:f, s:f, s:f, "
		              "s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
		        "category", g->category, "complexity", g->complexity, "sample_count",
		        (json_int_t)g->n, "status", calib_status_name(g->status), "avg_actual",
		        g->avg_actual, "avg_estimated", g->avg_estimated, "avg_ratio", g->avg_ratio,
		        "median_ratio", g->median_ratio, "min_ratio", g->min_ratio, "max_ratio",
		        g->max_ratio, "confidence", g->confidence, "proposed_multiplier",
		        g->multiplier, "median_budget_waste", g->waste_median, "p90_budget_waste",
		        g->waste_p90, "avg_selected_budget", g->avg_selected_budget));
	}
	return a;
}

/* The whole JSON proposal. */
json_t *calib_json_proposal(const struct calib_result *r, const struct calib_meta *m)
{
	json_t *j = json_pack("{s:{s:s, s:s, s:s, s:f, s:i, s:s, s:I, s:I, s:I, s:I, s:I, "
	                      "s:I, s:I, s:s, s:s}, s:o, s:o}",
	    "metadata", "generated_at", m->generated_at, "database", m->db_url, "runs", m->runs,
	    "confidence_threshold", r->opts.confidence_threshold, "min_samples",
	    r->opts.min_samples, "damping", calib_damping_name(r->opts.damping), "total_samples",
	    (json_int_t)r->n_clean, "samples_read", (json_int_t)m->n_read, "high_confidence_groups",
	    (json_int_t)r->n_high_confidence, "proposed_groups", (json_int_t)r->n_proposed,
	    "current_version", (json_int_t)m->current_version, "samples_reexpressed",
	    (json_int_t)m->n_reexpressed, "samples_unknown_version",
	    (json_int_t)m->n_unknown_version, "waste_rule",
	    "(actual_max_tokens or selected_budget) / actual", "median_rule",
	    "upper median sorted[n//2]; p90 sorted[int(0.9n)]", "proposed_changes",
	    calib_json_changes(r), "groups", calib_json_groups(r));

	if (j != NULL && m->in_before != NULL && m->in_after != NULL)
		json_object_set_new(j, "in_sample",
		    json_pack("{s:o, s:o}", "before", calib_json_metrics(m->in_before), "after",
		        calib_json_metrics(m->in_after)));
	return j;
}
